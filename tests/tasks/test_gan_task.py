"""GANReconstructionTask: schedules over the whole run, n_critic, accumulation, bf16, EMA export, exact resume."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback

from gan_resume_job import (
    BANDS,
    CHECKPOINT_EVERY,
    STEPS,
    TINY_GENERATOR,
    make_datamodule,
    make_task,
    make_tree,
    train,
)
from hsikit.engine.export import load_model, read_checkpoint
from hsikit.engine.schedulers import warmup_cosine_factor
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import ConfigError
from hsikit.tasks import get_task
from hsikit.tasks.gan_reconstruction import GANReconstructionTask

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, "logger": False}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("gan_tree"))


class Recorder(Callback):
    """Learning rates after every batch, the losses, and whether any parameter went non-finite."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        optimizers = trainer.optimizers
        finite = all(bool(torch.isfinite(p).all()) for p in pl_module.parameters())
        self.rows.append({
            "step": trainer.global_step, "d_steps": pl_module.d_steps_done,
            "lr": [o.param_groups[0]["lr"] for o in optimizers],
            "loss": float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs),
            "finite": finite,
        })  # fmt: skip


def _fit(task: GANReconstructionTask, data_root: Path, run_dir: Path, **trainer_options: Any) -> Recorder:
    recorder = Recorder()
    settings = {"max_steps": 6, "max_epochs": -1, **QUIET, **trainer_options}
    trainer = create_trainer(run_dir, RunOptions(report=False, export=False), task=task, callbacks=[recorder],
                             **settings)  # fmt: skip
    trainer.fit(task, datamodule=make_datamodule(data_root))
    return recorder


def test_schedules_span_the_whole_run_and_n_critic_counts_critic_steps(data_root: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    task = make_task(n_critic=2, accumulate_grad_batches=2, warmup_steps=2, sinkhorn_iters=5)
    rows = _fit(task, data_root, tmp_path / "run", max_steps=6).rows
    # 6 generator steps: global_step counts generator steps only; 2 critic steps precede each one
    assert rows[-1]["step"] == 6 and task.d_steps_done == 12 and len(rows) == 24  # 2 micro-batches per step
    floor_g, floor_d = 2e-3 * task.hparams.min_lr_ratio, 1e-3 * task.hparams.min_lr_ratio
    # learning rates in force after each generator step k (scheduler stepped k times)
    after = {row["step"]: row["lr"] for row in rows}
    for step in range(1, 7):
        expected_g = 2e-3 * warmup_cosine_factor(step, 2, 6, task.hparams.min_lr_ratio)
        assert after[step][0] == pytest.approx(expected_g, rel=1e-9)
    assert after[6][0] == pytest.approx(floor_g, rel=1e-9)  # the floor at the last step...
    assert all(after[step][0] > floor_g * 1.5 for step in range(1, 6))  # ...and not before (no halfway stop)
    assert after[6][1] == pytest.approx(floor_d, rel=1e-9)  # the critic's 12-step schedule ends with it
    assert after[5][1] > floor_d * 1.5
    assert all(row["finite"] for row in rows)


def test_without_the_adversarial_term_there_is_no_critic(data_root: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    task = make_task(lambda_adversarial=0.0, accumulate_grad_batches=1)
    rows = _fit(task, data_root, tmp_path / "run", max_steps=3).rows
    assert task.discriminator is None and len(rows[-1]["lr"]) == 1 and rows[-1]["step"] == 3
    assert all(math.isfinite(row["loss"]) for row in rows)


def test_bf16_autocast_on_cpu_trains_without_nan(data_root: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    L.seed_everything(1, verbose=False)
    task = make_task(accumulate_grad_batches=1, r1_every=1, model_args={**TINY_GENERATOR, "out_channels": BANDS})
    dtypes: set[torch.dtype] = set()
    task.model.head.register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))
    rows = _fit(task, data_root, tmp_path / "run", max_steps=4, precision="bf16-mixed").rows
    assert torch.bfloat16 in dtypes  # the generator really ran under bf16 autocast
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert all(row["finite"] and math.isfinite(row["loss"]) for row in rows)
    assert all(p.dtype == torch.float32 for p in task.parameters())  # autocast, not a bf16 model


def test_training_improves_validation_mrae_and_exports_the_ema_generator(data_root: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    L.seed_everything(2, verbose=False)
    task = make_task(accumulate_grad_batches=1, generator_lr=3e-3, warmup_steps=0)
    options = RunOptions(report=False, ema_decay=0.5, export_weights="last")
    trainer = create_trainer(tmp_path / "run", options, task=task, max_steps=40, max_epochs=-1,
                             check_val_every_n_epoch=None, val_check_interval=40, inference_mode=False,
                             **QUIET)  # fmt: skip
    datamodule = make_datamodule(data_root)
    initial = trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val/mrae"]
    trainer.fit(task, datamodule=datamodule)
    final = float(trainer.callback_metrics["val/mrae"])
    assert math.isfinite(final) and final < 0.7 * initial, (initial, final)
    model = load_model(tmp_path / "run" / "model")
    assert model.hsikit_config.task == "gan_reconstruction"
    assert not any(key.startswith("discriminator") for key in model.state_dict())  # the generator alone
    ema = next(c for c in trainer.callbacks if type(c).__name__ == "WeightEMA")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, ema.ema_state[key].to(value.dtype))


def test_a_killed_run_resumes_exactly(data_root: Path, tmp_path: Path) -> None:
    reference_task, reference_trainer = train(tmp_path / "reference", data_root)
    run_dir = tmp_path / "interrupted"
    job = Path(__file__).with_name("gan_resume_job.py")
    killed = subprocess.run(
        [sys.executable, str(job), str(run_dir), str(data_root), "--kill-at-step", str(CHECKPOINT_EVERY * 2 + 1)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2 * CHECKPOINT_EVERY and last["hsikit_gan"]["d_steps_done"] == 2 * CHECKPOINT_EVERY
    assert len(last["optimizer_states"]) == 2 and len(last["lr_schedulers"]) == 2
    assert any(key.startswith("discriminator.") for key in last["state_dict"]) and "hsikit_ema" in last

    resumed_task, resumed_trainer = train(run_dir, data_root, resume=True)
    assert resumed_trainer.global_step == reference_trainer.global_step == STEPS
    for network in ("model", "discriminator"):
        reference = getattr(reference_task, network).state_dict()
        for key, value in getattr(resumed_task, network).state_dict().items():
            torch.testing.assert_close(value, reference[key], rtol=1e-6, atol=1e-7, msg=f"{network}.{key}")
    for index in range(2):
        state = resumed_trainer.optimizers[index].state_dict()["state"]
        reference = reference_trainer.optimizers[index].state_dict()["state"]
        for key in reference:
            torch.testing.assert_close(state[key]["exp_avg_sq"], reference[key]["exp_avg_sq"], rtol=1e-6, atol=1e-9)
    final = {name: json.loads((tmp_path / name / "metrics.json").read_text())["fit"]
             for name in ("reference", "interrupted")}  # fmt: skip
    for key in ("val/mrae", "val/psnr"):
        value = final["reference"]["metrics"][key]
        assert abs(final["interrupted"]["metrics"][key] - value) <= 1e-6 * max(1.0, abs(value)), key


def test_the_task_is_registered_and_refuses_bad_settings() -> None:
    assert get_task("gan_reconstruction") is GANReconstructionTask
    with pytest.raises(ConfigError, match="n_critic"):
        GANReconstructionTask(n_critic=0)
    with pytest.raises(ConfigError, match="generator_betas"):
        GANReconstructionTask(generator_betas=(0.5, 1.2))
    with pytest.raises(ConfigError, match="adversarial_loss"):
        GANReconstructionTask(adversarial_loss="wasserstein")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a GAN discriminator"):
        GANReconstructionTask(discriminator="mst_plus_plus")
    with pytest.raises(ConfigError, match="discriminator_lr"):
        GANReconstructionTask(discriminator_lr=0.0)


@pytest.mark.slow
def test_a_short_gan_run_on_the_proxy_set_improves_validation_mrae_without_nan(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from hsikit.data.proxy import build_proxy_set
    from hsikit.data.reconstruction_datamodule import ReconstructionDataModule

    scenes = ["proxy_abu_airport_1", "proxy_abu_urban_2", "proxy_abu_beach_3"]  # 2 training scenes, 1 validation
    root = build_proxy_set(tmp_path_factory.mktemp("gan_proxy"), shared_data=shared_data, scenes=scenes)
    torch.set_num_threads(2)
    L.seed_everything(0, verbose=False)
    task = make_task(model_args={"base_channels": 8, "num_heads": 2, "split_sizes": [4, 4, 4],
                                 "checkpoint_min_tokens": None},
                     accumulate_grad_batches=1, generator_lr=2e-3, sinkhorn_iters=20, r1_every=8,
                     lambda_perceptual=0.0, eval_crop=25)  # fmt: skip
    recorder = Recorder()
    trainer = create_trainer(tmp_path / "run", RunOptions(report=False, export=False), task=task,
                             callbacks=[recorder], max_steps=60, max_epochs=-1, check_val_every_n_epoch=None,
                             val_check_interval=10**9, inference_mode=False, **QUIET)  # fmt: skip
    datamodule = ReconstructionDataModule(root=str(root), patch_size=32, stride=8, batch_size=4, num_workers=0)
    initial = trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val/mrae"]
    trainer.fit(task, datamodule=datamodule)
    final = trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val/mrae"]
    assert all(row["finite"] and math.isfinite(row["loss"]) for row in recorder.rows)
    assert math.isfinite(final) and final < 0.8 * initial, (initial, final)
