"""Transformer training through ReconstructionTask (issue #8): presets by size, parameter groups,
warm-up in epochs, gradient accumulation, channels-last / compile, bf16 autocast, auxiliary losses
(the experiment configs: test_transformer_configs.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn as nn
from lightning.pytorch import Callback
from PIL import Image

from hsikit.cube import Cube
from hsikit.data.reconstruction_datamodule import ReconstructionDataModule
from hsikit.engine.schedulers import warmup_cosine_factor
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import ConfigError
from hsikit.io.matlab import write_mat
from hsikit.losses.reconstruction import MRAELoss
from hsikit.models.layers.norm import ChannelRMSNorm
from hsikit.models.reconstruction.hsifusion import HSIFUSION_TEST_CONFIGURATION
from hsikit.models.reconstruction.sharp import SHARP_TEST_CONFIGURATION, spectral_curvature_penalty
from hsikit.tasks.reconstruction import ReconstructionTask, resolve_model_name

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, "logger": False}
TRAIN_SCENES = ["t1", "t2", "t3"]  # 24 x 24 px: 4 patches of 16 px on the stride-8 grid each -> 12 patches


def _scene(root: Path, name: str, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / 6.0
    phase = rng.uniform(0, 6.3, size=(31, 1, 1))
    cube = np.clip(0.5 + 0.3 * np.sin(yy[None] + phase) * np.cos(xx[None] + phase / 5), 0.05, 1.0).astype(np.float32)
    weights = np.abs(np.sin(np.arange(3)[:, None] + np.linspace(0, 3, 31)[None]))
    rgb = np.einsum("kc,chw->hwk", weights / weights.sum(1, keepdims=True), cube)
    write_mat(Cube(cube, wavelengths=np.linspace(400, 700, 31)), root / "Train_Spec" / f"{name}.mat", format="v7.3")
    (root / "Train_RGB").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(root / "Train_RGB" / f"{name}.png")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("transformer_tree")
    for seed, name in enumerate(TRAIN_SCENES):
        _scene(root, name, 24, seed)
    _scene(root, "v1", 24, 10)
    (root / "split_txt").mkdir()
    (root / "split_txt" / "train_list.txt").write_text("\n".join(TRAIN_SCENES) + "\n")
    (root / "split_txt" / "valid_list.txt").write_text("v1\n")
    return root


def datamodule(root: Path, **overrides: Any) -> ReconstructionDataModule:
    options = {"patch_size": 16, "stride": 8, "batch_size": 4, "num_workers": 0, **overrides}
    return ReconstructionDataModule(root=str(root), **options)


def hsifusion_task(**overrides: Any) -> ReconstructionTask:
    options: dict[str, Any] = {
        "model": "hsifusion", "model_size": "tiny", "model_args": dict(HSIFUSION_TEST_CONFIGURATION),
        "eval_crop": 4, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, **overrides,
    }  # fmt: skip
    return ReconstructionTask(**options)


# ---------------------------------------------------------------------------- model_size
def test_model_size_names_the_preset_and_bad_sizes_are_refused() -> None:
    assert resolve_model_name("hsifusion", "tiny") == "hsifusion_tiny"
    assert resolve_model_name("sharp", "large") == "sharp_large"
    assert resolve_model_name("sharp_tiny", "tiny") == "sharp_tiny"
    assert resolve_model_name("mst_plus_plus", None) == "mst_plus_plus"
    with pytest.raises(ConfigError, match="no size 'huge'.*base, large, small, tiny"):
        resolve_model_name("sharp", "huge")
    with pytest.raises(ConfigError, match="needs a model family"):
        resolve_model_name("sharp_tiny", "base")
    task = hsifusion_task(model_args={**HSIFUSION_TEST_CONFIGURATION, "in_channels": 3, "out_channels": 31})
    assert task.model_name == "hsifusion_tiny" and task.hparams.model_size == "tiny"
    assert type(task.model).__name__ == "HSIFusionNetTiny"


# ---------------------------------------------------------------------------- optimizer groups
@pytest.mark.parametrize(
    ("family", "arguments"), [("hsifusion", HSIFUSION_TEST_CONFIGURATION), ("sharp", SHARP_TEST_CONFIGURATION)]
)
def test_adamw_decays_weights_only_not_biases_norms_or_layer_scales(family: str, arguments: dict[str, Any]) -> None:
    task = ReconstructionTask(
        model=family, model_size="tiny", model_args={**arguments, "in_channels": 3, "out_channels": 31},
        optimizer="adamw", weight_decay=0.05, scheduler="constant",
    )  # fmt: skip
    optimizer = task.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    decay = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0.05 for p in group["params"]}
    no_decay = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0.0 for p in group["params"]}
    assert decay and no_decay and not decay & no_decay
    assert decay | no_decay == {id(p) for p in task.model.parameters()}
    norms = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, ChannelRMSNorm)
    checked = 0
    for module in task.model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if isinstance(module, norms) or name == "bias" or parameter.ndim < 2:
                assert id(parameter) in no_decay, f"{type(module).__name__}.{name} must not be decayed"
                checked += 1
            elif isinstance(module, (nn.Conv2d, nn.Linear)) and name == "weight":
                assert id(parameter) in decay
    assert checked > 10


# ---------------------------------------------------------------------------- warm-up epochs and accumulation
class LearningRates(Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        self.rates.append(float(optimizer.param_groups[0]["lr"]))


def test_warmup_epochs_become_optimizer_steps_under_gradient_accumulation(tree: Path, tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    task = ReconstructionTask(
        model="mst_plus_plus", model_args={"stage": 1, "num_blocks": [1, 1]}, eval_crop=4, lr=1e-3,
        warmup_epochs=1.5, min_lr_ratio=0.1,
    )  # fmt: skip
    rates = LearningRates()
    trainer = create_trainer(
        tmp_path, RunOptions(accumulate_steps=2, export=False, report=False, save_top_k=0), task=task,
        max_epochs=3, limit_val_batches=0, callbacks=[rates], **QUIET,
    )  # fmt: skip
    trainer.fit(task, datamodule=datamodule(tree))
    # 12 patches / batch 4 = 3 micro-batches per epoch -> ceil(3 / 2) = 2 optimizer steps per epoch
    assert trainer.accumulate_grad_batches == 2 and trainer.num_training_batches == 3
    assert trainer.global_step == 6
    assert task.warmup_steps_from_epochs() == 3  # round(1.5 x 2)
    expected = [1e-3 * warmup_cosine_factor(step, 3, 6, 0.1) for step in range(6)]
    np.testing.assert_allclose(rates.rates, expected, rtol=1e-6)
    assert rates.rates[0] == pytest.approx(1e-3 / 3) and rates.rates[2] == pytest.approx(1e-3)


def test_accumulate_steps_must_agree_with_the_trainer_setting(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="accumulate_steps"):
        RunOptions(accumulate_steps=0)
    with pytest.raises(ConfigError, match="ema_update_every"):
        RunOptions(ema_update_every=0)
    task = ReconstructionTask(model="mst_plus_plus", model_args={"stage": 1, "num_blocks": [1, 1]}, eval_crop=4)
    trainer = create_trainer(
        tmp_path, RunOptions(accumulate_steps=2, export=False, report=False), task=task, max_steps=1,
        accumulate_grad_batches=3, **QUIET,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="contradicts trainer.accumulate_grad_batches=3"):
        trainer.fit(task, datamodule=datamodule(tree))


def test_accumulated_gradients_equal_the_gradient_of_the_full_batch(tree: Path, tmp_path: Path) -> None:
    """Two micro-batches of 2 give the same update as one batch of 4 (SGD, MRAE is a per-element mean)."""
    weights = []
    for accumulate, batch in ((1, 4), (2, 2)):
        L.seed_everything(0, verbose=False)
        task = ReconstructionTask(
            model="mst_plus_plus", model_args={"stage": 1, "num_blocks": [1, 1]}, eval_crop=4, optimizer="sgd",
            momentum=0.0, lr=0.1, scheduler="constant",
        )  # fmt: skip
        trainer = create_trainer(
            tmp_path / str(accumulate), RunOptions(accumulate_steps=accumulate, export=False, report=False),
            task=task, max_steps=1, limit_val_batches=0, **QUIET,
        )  # fmt: skip
        trainer.fit(task, datamodule=datamodule(tree, batch_size=batch, augment=False, shuffle_seed=3))
        weights.append(torch.cat([p.detach().flatten() for p in task.model.parameters()]))
    # with accumulation Lightning divides each micro-batch loss by 2: the sum is the mean over 4 patches
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- auxiliary losses
def test_training_loss_adds_the_moe_balance_and_spectral_terms_and_logs_them(tree: Path) -> None:
    task = hsifusion_task(
        model_args={
            **HSIFUSION_TEST_CONFIGURATION, "in_channels": 3, "out_channels": 31, "auxiliary_loss_weight": 0.5,
            "num_experts": 4,  # with 2 experts and top-2 routing every token goes to both: a constant balance loss
        },
        spectral_reg_weight=0.2, auxiliary_loss_scale=2.0,
    )  # fmt: skip
    assert task.model.mixture_layers(), "the test configuration must hold a mixture of experts"
    module = datamodule(tree)
    module.setup("fit")
    rgb, target = next(iter(module.train_dataloader()))
    logged: dict[str, torch.Tensor] = {}
    task.log = lambda name, value, **kwargs: logged.__setitem__(name, value)  # type: ignore[method-assign]
    task.log_loss = lambda stage, loss, batch_size: logged.__setitem__(f"{stage}/loss", loss)  # type: ignore
    task.train()
    torch.manual_seed(0)
    loss = task.shared_step((rgb, target), "train")
    # recompute the same pass by hand (the router noise is random: same seed)
    torch.manual_seed(0)
    prediction = task.model(rgb)
    balances = torch.stack([layer.balance_loss for layer in task.model.mixture_layers()])
    mrae = MRAELoss("mstpp")(prediction, target)
    curvature = spectral_curvature_penalty(prediction, target)
    expected = mrae + 2.0 * 0.5 * balances.mean() + 0.2 * curvature
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logged["train/aux/moe_balance"].item() == pytest.approx(balances.mean().item(), rel=1e-5)
    assert logged["train/aux/network"].item() == pytest.approx(0.5 * balances.mean().item(), rel=1e-5)
    assert logged["train/aux/spectral_curvature"].item() == pytest.approx(curvature.item(), rel=1e-5)
    assert 0.0 <= logged["train/aux/moe_overflow"].item() <= 1.0
    # the balance term reaches the routers: their gradient changes when it is switched off
    loss.backward()
    with_balance = [layer.router.weight.grad.clone() for layer in task.model.mixture_layers()]
    task.zero_grad()
    task.auxiliary_loss_scale = 0.0
    torch.manual_seed(0)
    task.shared_step((rgb, target), "train").backward()
    without = [layer.router.weight.grad for layer in task.model.mixture_layers()]
    assert any(not torch.allclose(a, b) for a, b in zip(with_balance, without))
    # validation neither trains nor logs the network term
    logged.clear()
    task.eval()
    with torch.no_grad():
        task.shared_step((rgb, target), "val")
    assert "val/aux/network" not in logged and "val/aux/spectral_curvature" in logged


def test_bad_auxiliary_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="spectral_reg_kind"):
        hsifusion_task(spectral_reg_kind="wiggle")
    with pytest.raises(ConfigError, match=">= 0"):
        hsifusion_task(spectral_reg_weight=-1.0)


# ---------------------------------------------------------------------------- channels-last, compile, bf16
def test_channels_last_changes_the_layout_not_the_result() -> None:
    arguments = {**SHARP_TEST_CONFIGURATION, "in_channels": 3, "out_channels": 31}
    torch.manual_seed(0)
    plain = ReconstructionTask(model="sharp", model_size="tiny", model_args=arguments)
    torch.manual_seed(0)
    fast = ReconstructionTask(model="sharp", model_size="tiny", model_args=arguments, channels_last=True)
    fast.model.load_state_dict(plain.model.state_dict())
    convolutions = [m for m in fast.model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convolutions and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convolutions)
    rgb = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(fast.eval().predict_cube(rgb), plain.eval().predict_cube(rgb), rtol=1e-4, atol=1e-5)


def test_compile_model_compiles_in_place_and_keeps_the_parameter_names() -> None:
    arguments = {**HSIFUSION_TEST_CONFIGURATION, "in_channels": 3, "out_channels": 31}
    plain = hsifusion_task(model_args=arguments)
    compiled = hsifusion_task(model_args=arguments, compile_model=True)
    assert compiled.model._compiled_call_impl is not None and plain.model._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())


@pytest.mark.slow
def test_a_compiled_model_trains(tree: Path, tmp_path: Path) -> None:
    task = hsifusion_task(compile_model=True)
    trainer = create_trainer(
        tmp_path, RunOptions(export=False, report=False), task=task, max_steps=2, limit_train_batches=2, **QUIET
    )
    trainer.fit(task, datamodule=datamodule(tree))  # 16-px patches, then the 24 x 24 validation frame
    assert trainer.global_step == 2 and math.isfinite(float(trainer.callback_metrics["val/mrae"]))
    assert list(task.state_dict()) == list(hsifusion_task(model_args=dict(task.model_args)).state_dict())


def test_bf16_mixed_precision_trains_under_cpu_autocast(tree: Path, tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    task = hsifusion_task(spectral_reg_weight=0.1)
    dtypes: list[torch.dtype] = []

    class OutputDtype(Callback):
        def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if not dtypes:
                pl_module.model.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))

    trainer = create_trainer(
        tmp_path, RunOptions(export=False, report=False), task=task, max_steps=3, precision="bf16-mixed",
        callbacks=[OutputDtype()], **QUIET,
    )  # fmt: skip
    trainer.fit(task, datamodule=datamodule(tree))
    assert dtypes and dtypes[0] == torch.bfloat16, "the forward pass must run under bf16 autocast"
    assert all(p.dtype == torch.float32 for p in task.model.parameters()), "master weights stay fp32"
    metrics = trainer.callback_metrics
    assert math.isfinite(float(metrics["train/loss_epoch"])) and 0 < float(metrics["val/mrae"]) < 10
