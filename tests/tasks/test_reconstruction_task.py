"""ReconstructionTask and ReconstructionDataModule on a tiny generated ARAD-style tree and on the real proxy set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Callback
from PIL import Image

from hsikit.cli import main
from hsikit.cube import Cube
from hsikit.data.reconstruction_datamodule import ReconstructionDataModule
from hsikit.engine.export import load_model, read_checkpoint
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import ConfigError
from hsikit.io.matlab import write_mat
from hsikit.tasks import get_task
from hsikit.tasks.reconstruction import MSTPP_MIN_LR_RATIO, ReconstructionTask

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, "logger": False}
TINY_MSTPP = {"stage": 1, "num_blocks": [1, 1]}
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRAIN = ["scene_a", "scene_b", "scene_c"]
VALID = {"scene_v1": (24, 28), "scene_v2": (32, 24)}  # two sizes: the mean over images is unweighted


def write_scene(root: Path, name: str, height: int, width: int, bands: int, seed: int) -> None:
    """A smooth random cube (v7.3, ``cube`` H x W x C, ``bands``) and its RGB, a fixed projection (lossless PNG)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / 8.0
    phases = rng.uniform(0, 2 * np.pi, size=(bands, 1, 1))
    cube = 0.5 + 0.3 * np.sin(yy[None] + phases) * np.cos(xx[None] * (1 + phases / 7))
    cube = np.clip(cube + rng.normal(0, 0.02, cube.shape), 0.05, 1.0).astype(np.float32)
    projection = np.abs(np.sin(np.arange(3)[:, None] + np.linspace(0, 3, bands)[None]))
    rgb = np.einsum("kc,chw->hwk", projection / projection.sum(1, keepdims=True), cube)
    wavelengths = np.linspace(400.0, 700.0, bands)
    write_mat(Cube(cube, wavelengths=wavelengths), root / "Train_Spec" / f"{name}.mat", format="v7.3")
    (root / "Train_RGB").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(root / "Train_RGB" / f"{name}.png")


def make_tree(root: Path, bands: int = 31) -> Path:
    for seed, name in enumerate(TRAIN):
        write_scene(root, name, 24, 24, bands, seed)
    for seed, (name, (height, width)) in enumerate(VALID.items(), start=10):
        write_scene(root, name, height, width, bands, seed)
    (root / "split_txt").mkdir(parents=True, exist_ok=True)
    (root / "split_txt" / "train_list.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "split_txt" / "valid_list.txt").write_text("\n".join(VALID) + "\n")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("recon_tree"))


def datamodule(root: Path, **overrides: Any) -> ReconstructionDataModule:
    options = {"patch_size": 16, "stride": 8, "batch_size": 4, "num_workers": 0, **overrides}
    return ReconstructionDataModule(root=str(root), **options)


def hand_metrics(prediction: np.ndarray, target: np.ndarray, crop: int) -> dict[str, float]:
    """The MST++ protocol for one (C, H, W) image, written out with numpy."""
    p = prediction[:, crop:-crop, crop:-crop].astype(np.float64)
    t = target[:, crop:-crop, crop:-crop].astype(np.float64)
    mse_255 = np.mean((np.clip(p, 0, 1) * 255 - np.clip(t, 0, 1) * 255) ** 2)
    cosine = (p * t).sum(0) / (np.linalg.norm(p, axis=0) * np.linalg.norm(t, axis=0))
    return {
        "mrae": float(np.mean(np.abs(p - t) / t)),
        "rmse": float(np.sqrt(np.mean((p - t) ** 2))),
        "psnr": float(10 * np.log10(255.0**2 / mse_255)),
        "sam": float(np.mean(np.arccos(np.clip(cosine, -1, 1)))),
    }


def validation_by_hand(model: torch.nn.Module, module: ReconstructionDataModule, crop: int) -> dict[str, float]:
    dataset = module.datasets["val"]
    scores = []
    model.eval()
    for index in range(len(dataset)):
        rgb, cube = dataset[index]
        with torch.no_grad():
            prediction = model(rgb[None])[0].numpy()
        scores.append(hand_metrics(prediction, cube.numpy(), crop))
    return {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}


# ---------------------------------------------------------------------------- registration and settings
def test_the_task_is_registered_and_checks_its_settings() -> None:
    assert get_task("reconstruction") is ReconstructionTask
    with pytest.raises(ConfigError, match="'spectral_mlp' is a 'classification' model"):
        ReconstructionTask(model="spectral_mlp")
    with pytest.raises(ConfigError, match="loss weights must be >= 0 and not all 0"):
        ReconstructionTask(mrae_weight=0.0)
    with pytest.raises(ConfigError, match="eval_crop"):
        ReconstructionTask(eval_crop=-1)
    with pytest.raises(ConfigError, match="ensemble must be one of"):
        ReconstructionTask(test_ensemble="max")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs root="):
        ReconstructionDataModule()
    task = ReconstructionTask()
    assert task.model is None  # the band counts come from the data
    assert task.hparams.lr == 4e-4 and task.hparams.optimizer == "adam" and task.hparams.weight_decay == 0.0
    assert MSTPP_MIN_LR_RATIO * 4e-4 == pytest.approx(1e-6)


def test_loss_terms_combine_mrae_sam_and_ssim(rng: np.random.Generator) -> None:
    task = ReconstructionTask(model_args={"in_channels": 3, "out_channels": 31, "n_feat": 31, **TINY_MSTPP},
                              sam_weight=0.1, ssim_weight=0.5)
    target = torch.from_numpy(rng.uniform(0.1, 1.0, (2, 31, 16, 16)).astype(np.float32))
    prediction = target + torch.from_numpy(rng.normal(0, 0.05, (2, 31, 16, 16)).astype(np.float32))
    terms = task.loss_terms(prediction, target)
    p, t = prediction.double().numpy(), target.double().numpy()
    mrae = np.mean(np.abs(p - t) / t)
    cosine = (p * t).sum(1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1))
    sam = np.mean(np.arccos(cosine))
    assert float(terms["mrae"]) == pytest.approx(mrae, rel=1e-5)
    assert float(terms["sam"]) == pytest.approx(sam, rel=1e-4)
    assert 0.5 < float(terms["ssim"]) < 1.0
    expected = mrae + 0.1 * sam + 0.5 * (1 - float(terms["ssim"]))
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ConfigError, match="at least 11 px"):
        task.loss_terms(prediction[..., :8, :8], target[..., :8, :8])


# ---------------------------------------------------------------------------- training and the protocol
def test_training_validates_with_the_exact_protocol(tree: Path, tmp_path: Path) -> None:
    L.seed_everything(0)
    module = datamodule(tree)
    task = ReconstructionTask(model_args=TINY_MSTPP, eval_crop=4, lr=2e-3)
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_steps=4, **QUIET)
    trainer.fit(task, datamodule=module)
    assert task.model_args == {**TINY_MSTPP, "in_channels": 3, "out_channels": 31, "n_feat": 31}
    description = task.data_description
    assert description["bands"] == 3 and description["output_bands"] == 31 and description["proxy"] is False
    np.testing.assert_allclose(description["output_wavelengths"], np.linspace(400, 700, 31))
    assert len(module.datasets["train"]) == 3 * 4  # 24 px images, 16-px patches, stride 8: 2 x 2 per image

    results = trainer.validate(task, datamodule=module, verbose=False)[0]
    expected = validation_by_hand(task.model, module, crop=4)
    for name in ("mrae", "rmse", "psnr", "sam"):
        assert results[f"val/{name}"] == pytest.approx(expected[name], rel=1e-5), name
    # per-image scores averaged without weights (the two images differ in size): not the pooled-pixel score
    errors = []
    for index in range(2):
        rgb, cube = module.datasets["val"][index]
        with torch.no_grad():
            prediction = task.model(rgb[None])[0].numpy()
        target = cube.numpy()[:, 4:-4, 4:-4]
        errors.append((np.abs(prediction[:, 4:-4, 4:-4] - target) / target).ravel())
    pooled = float(np.mean(np.concatenate(errors)))
    assert abs(results["val/mrae"] - pooled) > 1e-6


def test_validation_uses_the_ema_weights(tree: Path, tmp_path: Path) -> None:
    L.seed_everything(1)
    module = datamodule(tree)
    task = ReconstructionTask(model_args=TINY_MSTPP, eval_crop=4, lr=5e-3)
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False, ema_decay=0.5), task=task,
                             max_steps=3, **QUIET)
    trainer.fit(task, datamodule=module)
    results = trainer.validate(task, datamodule=module, verbose=False)[0]
    ema = next(c for c in trainer.callbacks if type(c).__name__ == "WeightEMA")
    raw = validation_by_hand(task.model, module, crop=4)
    averaged = type(task.model)(**task.model_args)
    averaged.load_state_dict(ema.ema_state)
    with_ema = validation_by_hand(averaged, module, crop=4)
    assert results["val/mrae"] == pytest.approx(with_ema["mrae"], rel=1e-5)
    assert abs(with_ema["mrae"] - raw["mrae"]) > 1e-4  # the check can tell the two apart


def test_the_schedule_is_the_mstpp_cosine_to_eta_min(tree: Path, tmp_path: Path) -> None:
    rates: list[float] = []

    class RecordRate(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    task = ReconstructionTask(model_args=TINY_MSTPP, eval_crop=4)
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_steps=6,
                             callbacks=[RecordRate()], limit_val_batches=0, **QUIET)
    trainer.fit(task, datamodule=datamodule(tree))
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["betas"] == (0.9, 0.999)
    assert all(group["weight_decay"] == 0.0 for group in optimizer.param_groups)
    eta_min, peak, total = 1e-6, 4e-4, 6
    expected = [eta_min + (peak - eta_min) * (1 + np.cos(np.pi * step / total)) / 2 for step in range(total)]
    np.testing.assert_allclose(rates, expected, rtol=1e-9)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(eta_min, rel=1e-9)  # after the last step


def test_a_run_resumed_mid_epoch_ends_like_an_uninterrupted_one(tree: Path, tmp_path: Path) -> None:
    class Interrupt(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if trainer.global_step == 4:
                raise RuntimeError("interrupted on purpose")

    def run(folder: Path, resume_from: Path | None = None, callbacks: list | None = None) -> ReconstructionTask:
        L.seed_everything(3)
        task = ReconstructionTask(model_args=TINY_MSTPP, eval_crop=4, lr=2e-3)
        options = RunOptions(export=False, report=False, checkpoint_every_n_steps=2)
        trainer = create_trainer(folder, options, task=task, max_steps=6, limit_val_batches=0,
                                 callbacks=callbacks or [], **QUIET)
        trainer.fit(task, datamodule=datamodule(tree), ckpt_path=None if resume_from is None else str(resume_from))
        return task

    # 12 patches in batches of 4: 3 steps per epoch; the last checkpoint (step 4) is in the middle of epoch 1
    reference = run(tmp_path / "reference")
    with pytest.raises(RuntimeError, match="interrupted on purpose"):
        run(tmp_path / "interrupted", callbacks=[Interrupt()])
    last = tmp_path / "interrupted" / "checkpoints" / "last.ckpt"
    checkpoint = read_checkpoint(last)
    assert checkpoint["global_step"] == 4 and checkpoint["epoch"] == 1  # one batch into epoch 1
    resumed = run(tmp_path / "interrupted", resume_from=last)
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=1e-6, atol=1e-7)


def test_each_epoch_draws_new_augmentations_and_a_new_order(tree: Path) -> None:
    module = datamodule(tree, shuffle_seed=5, augment_seed=5)
    loader = module.train_dataloader()
    dataset = module.datasets["train"]
    loader.sampler.set_epoch(0)  # what Lightning does before each training epoch
    order_0 = list(loader.sampler)
    augment_0 = [(p.rotations, p.flip_w, p.flip_h) for p in map(dataset.locate, range(len(dataset)))]
    loader.sampler.set_epoch(1)
    assert dataset.epoch == 1
    augment_1 = [(p.rotations, p.flip_w, p.flip_h) for p in map(dataset.locate, range(len(dataset)))]
    assert list(loader.sampler) != order_0 and augment_1 != augment_0
    assert sorted(order_0) == list(range(len(dataset)))
    batch = next(iter(loader))
    assert batch[0].shape == (4, 3, 16, 16) and batch[1].shape == (4, 31, 16, 16)


def test_model_band_counts_follow_the_data(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "sixteen", bands=16)
    module = datamodule(root)
    task = ReconstructionTask(model_args=TINY_MSTPP, eval_crop=4)
    trainer = create_trainer(tmp_path / "run", RunOptions(export=False, report=False), task=task, max_steps=1,
                             limit_val_batches=0, **QUIET)
    trainer.fit(task, datamodule=module)
    assert task.model_args["out_channels"] == task.model_args["n_feat"] == 16
    with torch.no_grad():
        assert task.model(torch.zeros(1, 3, 16, 16)).shape == (1, 16, 16, 16)
    contradicting = ReconstructionTask(model_args={**TINY_MSTPP, "out_channels": 31, "n_feat": 31}, eval_crop=4)
    trainer = create_trainer(tmp_path / "run2", RunOptions(export=False, report=False), task=contradicting,
                             max_steps=1, **QUIET)
    with pytest.raises(ConfigError, match="out_channels: model 31 vs data 16"):
        trainer.fit(contradicting, datamodule=datamodule(root))


def test_test_stage_self_ensemble(tree: Path, tmp_path: Path) -> None:
    L.seed_everything(2)
    task = ReconstructionTask(model_args=TINY_MSTPP, eval_crop=4, test_ensemble="median")
    module = datamodule(tree)
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_steps=2,
                             limit_val_batches=0, **QUIET)
    trainer.fit(task, datamodule=module)
    tested = trainer.test(task, datamodule=module, verbose=False)[0]
    from hsikit.inference.reconstruction import self_ensemble_x8

    scores = []
    for rgb, cube in (module.datasets["test"][i] for i in range(2)):
        with torch.no_grad():
            prediction = self_ensemble_x8(task.model.eval(), rgb[None], "median")[0].numpy()
        scores.append(hand_metrics(prediction, cube.numpy(), 4)["mrae"])
    assert tested["test/mrae"] == pytest.approx(np.mean(scores), rel=1e-5)


# ---------------------------------------------------------------------------- configs, export and the command
@pytest.fixture(scope="module")
def proxy_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hsikit.data.proxy import build_proxy_set

    scenes = ["proxy_abu_airport_1", "proxy_abu_urban_2", "proxy_abu_beach_3"]  # 2 training scenes, 1 validation
    return build_proxy_set(tmp_path_factory.mktemp("proxy_subset"), shared_data=shared_data, scenes=scenes)


def test_the_arad_config_is_the_published_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", str(CONFIGS / "reconstruction_mstpp_arad.yaml"), "--print_config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    task, data, trainer = config["model"]["init_args"], config["data"]["init_args"], config["trainer"]
    assert config["model"]["class_path"] == "hsikit.tasks.reconstruction.ReconstructionTask"
    assert (task["model"], task["lr"], task["optimizer"], task["weight_decay"]) == ("mst_plus_plus", 4e-4, "adam", 0.0)
    assert task["lr"] * task["min_lr_ratio"] == pytest.approx(1e-6)
    assert task["eval_crop"] == 128 and task["metrics"] == ["mrae", "rmse", "psnr", "sam"]
    assert (data["patch_size"], data["stride"], data["batch_size"], data["rgb_norm"]) == (128, 8, 20, "minmax")
    assert trainer["max_steps"] == 300000 and trainer["limit_train_batches"] == 1000
    assert trainer["precision"] == "32-true" and trainer["gradient_clip_val"] is None
    for name in ("reconstruction_mstpp_proxy.yaml", "reconstruction_hscnn_proxy.yaml"):
        assert main(["fit", "--config", str(CONFIGS / name), "--print_config"]) == 0
        proxy = yaml.safe_load(capsys.readouterr().out)
        assert proxy["data"]["init_args"]["proxy"] is True and proxy["model"]["init_args"]["eval_crop"] == 25


def test_fit_export_load_and_reconstruct_command_round_trip(
    proxy_subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = [
        "fit", "--config", str(CONFIGS / "reconstruction_mstpp_proxy.yaml"),
        "--data.init_args.proxy", "false", "--data.init_args.root", str(proxy_subset),
        "--data.init_args.patch_size", "32", "--data.init_args.batch_size", "2",
        "--model.init_args.model_args", json.dumps(TINY_MSTPP),
        "--trainer.max_steps", "2", "--trainer.limit_train_batches", "2", "--trainer.check_val_every_n_epoch", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--run.root", str(tmp_path / "runs"), "--run.version", "v",
    ]  # fmt: skip
    assert main(arguments) == 0
    run = tmp_path / "runs" / "reconstruction_mstpp_proxy" / "v"
    metrics = json.loads((run / "metrics.json").read_text())["fit"]
    assert metrics["monitor"] == "val/mrae" and 0 < metrics["metrics"]["val/mrae"] < 10
    assert (run / "figures" / "reconstruction_val.png").is_file()

    model = load_model(run / "model", expected_bands=3)
    config = model.hsikit_config
    assert config.task == "reconstruction" and config.extra["proxy"] is True and config.extra["rgb_norm"] == "minmax"
    assert config.arguments == {"in_channels": 3, "out_channels": 31, "n_feat": 31, **TINY_MSTPP}

    photo = proxy_subset / "Train_RGB" / "proxy_abu_beach_3.jpg"
    output = tmp_path / "beach.mat"
    capsys.readouterr()
    assert main(["reconstruct", "--model", str(run / "model"), "--input", str(photo), "--output", str(output)]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    rgb = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32)
    rgb = np.moveaxis((rgb - rgb.min()) / (rgb.max() - rgb.min()), -1, 0)
    with torch.no_grad():
        expected = np.clip(model(torch.from_numpy(rgb)[None])[0].numpy(), 0.0, 1.0)
    with h5py.File(output, "r") as handle:
        assert handle["cube"].shape == (31, 100, 100)
        back = np.array(handle["cube"]).T  # (H, W, C)
        np.testing.assert_allclose(np.array(handle["bands"]).ravel(), np.arange(400, 701, 10))
    np.testing.assert_allclose(back, np.moveaxis(expected, 0, -1), rtol=1e-5, atol=1e-6)

    # a folder of images with the self-ensemble, then the submission helper on the written cubes
    predictions = tmp_path / "predictions"
    assert main(["reconstruct", "--model", str(run / "model"), "--input", str(proxy_subset / "Train_RGB"),
                 "--output", str(predictions), "--ensemble", "mean", "--submission", str(tmp_path / "sub.zip"),
                 "--crop", "20"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert sorted(p.name for p in predictions.iterdir()) == [
        "proxy_abu_airport_1.mat", "proxy_abu_beach_3.mat", "proxy_abu_urban_2.mat"
    ]  # fmt: skip
    assert "3 cube(s) cropped by 20 px per side" in out
    assert main(["submission", "--predictions", str(predictions), "--output", str(tmp_path / "again.zip"),
                 "--crop", "20", "--limit-mb", "0.001"]) == 0  # fmt: skip
    assert "over the 0 MB upload limit" in capsys.readouterr().out
    assert main(["reconstruct", "--model", str(run / "model"), "--input", str(proxy_subset / "Train_RGB"),
                 "--output", str(tmp_path / "x.mat")]) == 2  # fmt: skip
    assert "must be a folder" in capsys.readouterr().err


def test_proxy_datamodule_labels_the_data_a_proxy(proxy_subset: Path) -> None:
    module = ReconstructionDataModule(root=str(proxy_subset), patch_size=64, batch_size=2, num_workers=0)
    module.setup("fit")
    description = module.data_description
    assert description["proxy"] is True and description["dataset"] == "proxy-aviris-ntire-rgb31"
    assert module.datasets["val"].names == ["proxy_abu_beach_3"]
    assert len(module.datasets["train"]) == 2 * 5 * 5  # two 100-px scenes, 64-px patches, stride 8
    rgb, cube = module.datasets["val"][0]
    assert rgb.shape == (3, 100, 100) and cube.shape == (31, 100, 100)
    assert float(cube.min()) >= 1e-3  # strictly positive: the MST++ MRAE is defined
