"""A small clustering training job for the exact-resume test (imported by the test, and run as a script).

``python clustering_resume_job.py RUN_DIR --kill-at-step K`` trains and SIGKILLs itself right after
optimizer step K, as a scheduler or the OOM killer would: no clean-up runs.
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

from hsikit.data.clustering_datamodule import ClusteringDataModule
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.tasks.clustering import ClusteringTask

SCENES, PAIRS_PER_BATCH, EPOCHS, CHECKPOINT_EVERY = 2, 3, 3, 4
STEPS_PER_EPOCH = SCENES * PAIRS_PER_BATCH  # one scene per loaded batch
MODEL = {"n_clusters": 3, "embed_dim": 8, "spectral_channels": 4, "n_spectral_layers": 2, "num_iters": 2,
         "window": 3, "temp": 0.01, "dead_policy": "kick"}  # fmt: skip


class KillAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def scenes() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[0:28, 0:28]
    out = []
    for index in range(SCENES):
        regions = ((rows + 7 * index) // 9 + cols // 11) % 3
        spectra = np.stack([np.sin(np.arange(10) * (k + 1) / 3.0) for k in range(3)])
        out.append((spectra[regions].transpose(2, 0, 1) + rng.normal(0, 0.05, (10, 28, 28))).astype(np.float32))
    return out


def train(run_dir: Path, kill_at_step: int | None = None, resume: bool = False) -> tuple[Any, Any]:
    torch.set_num_threads(1)
    L.seed_everything(3, verbose=False)
    datamodule = ClusteringDataModule.from_cubes(scenes(), batch_size=1, pairs_per_batch=PAIRS_PER_BATCH)
    task = ClusteringTask(model_args=dict(MODEL), crop_size=16, crops_per_scene=2, lr=3e-3,
                          scheduled_weights=["orthogonality"], refresh_assignments=True)  # fmt: skip
    options = RunOptions(checkpoint_every_n_steps=CHECKPOINT_EVERY, save_top_k=1, report=False)
    callbacks = [KillAtStep(kill_at_step)] if kill_at_step is not None else []
    trainer = create_trainer(run_dir, options, task=task, callbacks=callbacks, max_epochs=EPOCHS,
                             enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)  # fmt: skip
    checkpoint = run_dir / "checkpoints" / "last.ckpt" if resume else None
    trainer.fit(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    return task, trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--kill-at-step", type=int, default=None)
    arguments = parser.parse_args()
    train(arguments.run_dir, arguments.kill_at_step)
    sys.exit(0)
