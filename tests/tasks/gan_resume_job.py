"""A small GAN reconstruction job for the GAN task tests (imported by them, and run as a script).

``python gan_resume_job.py RUN_DIR DATA_ROOT --kill-at-step K`` trains and SIGKILLs itself right after
generator step K, as a scheduler or the OOM killer would: no clean-up runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch import Callback
from PIL import Image

from hsikit.cube import Cube
from hsikit.data.reconstruction_datamodule import ReconstructionDataModule
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.io.matlab import write_mat
from hsikit.tasks.gan_reconstruction import GANReconstructionTask

BANDS = 8
TRAIN = ["scene_a", "scene_b"]
VALID = ["scene_v", "scene_w"]
TINY_GENERATOR = {"base_channels": 8, "num_heads": 2, "split_sizes": [2, 2, 2], "checkpoint_min_tokens": None}
TINY_DISCRIMINATOR = {"base_dim": 8, "num_heads": 2, "num_blocks": [1, 1, 1]}
STEPS, CHECKPOINT_EVERY = 8, 3


class KillAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def write_scene(root: Path, name: str, size: int, seed: int) -> None:
    """A smooth positive cube (v7.3 ``cube`` H x W x C) and its RGB, a fixed projection (lossless PNG)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / 6.0
    phases = rng.uniform(0, 2 * np.pi, size=(BANDS, 1, 1))
    cube = 0.5 + 0.3 * np.sin(yy[None] + phases) * np.cos(xx[None] * (1 + phases / 7))
    cube = np.clip(cube + rng.normal(0, 0.02, cube.shape), 0.05, 1.0).astype(np.float32)
    projection = np.abs(np.sin(np.arange(3)[:, None] + np.linspace(0, 3, BANDS)[None]))
    rgb = np.einsum("kc,chw->hwk", projection / projection.sum(1, keepdims=True), cube)
    write_mat(Cube(cube, wavelengths=np.linspace(400.0, 700.0, BANDS)), root / "Train_Spec" / f"{name}.mat",
              format="v7.3")  # fmt: skip
    (root / "Train_RGB").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(root / "Train_RGB" / f"{name}.png")


def make_tree(root: Path) -> Path:
    """Two 24-px training scenes and two 20-px validation scenes with 8 bands (ARAD layout)."""
    for seed, name in enumerate(TRAIN):
        write_scene(root, name, 24, seed)
    for seed, name in enumerate(VALID, start=7):
        write_scene(root, name, 20, seed)
    (root / "split_txt").mkdir(parents=True, exist_ok=True)
    (root / "split_txt" / "train_list.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "split_txt" / "valid_list.txt").write_text("\n".join(VALID) + "\n")
    return root


def make_task(**overrides: Any) -> GANReconstructionTask:
    options: dict[str, Any] = {
        "model_args": dict(TINY_GENERATOR), "discriminator_args": dict(TINY_DISCRIMINATOR),
        "generator_lr": 2e-3, "discriminator_lr": 1e-3, "warmup_steps": 2, "n_critic": 1,
        "accumulate_grad_batches": 2, "sinkhorn_iters": 10, "use_adaptive_weights": False,
        "r1_every": 2, "eval_crop": 2, "lambda_perceptual": 0.1,
    }  # fmt: skip
    options.update(overrides)
    return GANReconstructionTask(**options)


def make_datamodule(data_root: Path, batch_size: int = 2) -> ReconstructionDataModule:
    return ReconstructionDataModule(root=str(data_root), patch_size=16, stride=8, batch_size=batch_size,
                                    num_workers=0, check_split=False)  # fmt: skip


def train(
    run_dir: Path, data_root: Path, kill_at_step: int | None = None, resume: bool = False, **trainer_options: Any
) -> tuple[GANReconstructionTask, Any]:
    torch.set_num_threads(1)
    L.seed_everything(3, verbose=False)
    task = make_task()
    options = RunOptions(checkpoint_every_n_steps=CHECKPOINT_EVERY, save_top_k=1, report=False, ema_decay=0.9)
    callbacks = [KillAtStep(kill_at_step)] if kill_at_step is not None else []
    settings: dict[str, Any] = {"max_steps": STEPS, "max_epochs": -1, "enable_progress_bar": False,
                                "enable_model_summary": False, "log_every_n_steps": 1, "num_sanity_val_steps": 0,
                                "val_check_interval": 4, "check_val_every_n_epoch": None}  # fmt: skip
    settings.update(trainer_options)
    trainer = create_trainer(run_dir, options, task=task, callbacks=callbacks, **settings)
    checkpoint = run_dir / "checkpoints" / "last.ckpt" if resume else None
    trainer.fit(task, datamodule=make_datamodule(data_root), ckpt_path=checkpoint, weights_only=True)
    return task, trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--kill-at-step", type=int, default=None)
    arguments = parser.parse_args()
    train(arguments.run_dir, arguments.data_root, arguments.kill_at_step)
    sys.exit(0)
