"""Two-process CPU DDP (gloo) run of the GAN reconstruction task, for ``test_gan_ddp.py``.

``python gan_ddp_job.py RUN_DIR DATA_ROOT`` trains on 2 CPU processes (Lightning relaunches this
script for rank 1). Every rank writes ``RUN_DIR/rank<r>.pt``: its final generator and critic
weights, the gradient checksums it stepped with (after averaging), and the checksums of the
training batches it saw.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import Callback

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from gan_resume_job import make_datamodule, make_task  # noqa: E402

from hsikit.engine.trainer import RunOptions, create_trainer  # noqa: E402

STEPS = 4


class RankRecord(Callback):
    """Collects what this rank did and saves it at the end of training."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.batches: list[float] = []
        self.gradients: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.batches.append(float(batch[1].double().sum()))

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        index = next(i for i, o in enumerate(trainer.optimizers) if o is getattr(optimizer, "optimizer", optimizer))
        grads = [p.grad.double().sum() for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]  # fmt: skip
        self.gradients.append((index, float(torch.stack(grads).sum())))

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        record = {
            "rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
            "d_steps": pl_module.d_steps_done, "batches": self.batches, "gradients": self.gradients,
            "generator": {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()},
            "critic": {k: v.detach().clone() for k, v in pl_module.discriminator.state_dict().items()},
        }  # fmt: skip
        torch.save(record, self.run_dir / f"rank{trainer.global_rank}.pt")


def main(run_dir: Path, data_root: Path) -> None:
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    task = make_task(accumulate_grad_batches=1, r1_every=2, sinkhorn_iters=5)
    trainer = create_trainer(
        run_dir, RunOptions(report=False, export=False), task=task, callbacks=[RankRecord(run_dir)],
        max_steps=STEPS, max_epochs=-1, accelerator="cpu", devices=2, strategy="ddp", logger=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(task, datamodule=make_datamodule(data_root, batch_size=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
