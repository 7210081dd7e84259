"""A small training job for the exact-resume test (imported by the test, and run as a script).

``python resume_job.py RUN_DIR DATA_ROOT --kill-at-step K`` trains and SIGKILLs itself right
after optimizer step K: no clean-up runs, as when a job is killed by a scheduler or the OOM killer.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import Callback

from hsikit.data.datamodules import PixelClassificationDataModule
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.tasks import ClassificationTask

STEPS_PER_EPOCH = 8  # 8 training pixels x 16 classes / batch 16
EPOCHS = 3
CHECKPOINT_EVERY = 5


class KillAtStep(Callback):
    """SIGKILL this process right after optimizer step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def train(run_dir: Path, data_root: Path, kill_at_step: int | None = None, resume: bool = False) -> Any:
    """Train (or resume) the job in ``run_dir``; returns ``(task, trainer)``."""
    torch.set_num_threads(1)
    L.seed_everything(7)
    datamodule = PixelClassificationDataModule(
        dataset="indian_pines", root=str(data_root), split="count", train=8, val=4, test=4, batch_size=16
    )
    task = ClassificationTask(
        model_args={"hidden_sizes": [32], "dropout": 0.3, "norm": "batch"}, lr=3e-3, warmup_steps=4, min_lr_ratio=0.1
    )
    options = RunOptions(ema_decay=0.8, checkpoint_every_n_steps=CHECKPOINT_EVERY, save_top_k=1, report=False)
    callbacks = [KillAtStep(kill_at_step)] if kill_at_step is not None else []
    trainer = create_trainer(
        run_dir,
        options,
        task=task,
        callbacks=callbacks,
        max_epochs=EPOCHS,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    checkpoint = run_dir / "checkpoints" / "last.ckpt" if resume else None
    trainer.fit(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    return task, trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--kill-at-step", type=int, default=None)
    arguments = parser.parse_args()
    train(arguments.run_dir, arguments.data_root, arguments.kill_at_step)
    sys.exit(0)
