"""Step-based learning-rate schedules and an explicit L2 penalty, for tasks with deephyp-style training options.

deephyp (spec 004 §2) trains with a constant learning rate, an exponential decay
``lr · rate^floor(step / decay_steps)`` (TF ``exponential_decay`` with ``staircase=True``)
or a piecewise-constant schedule (TF ``piecewise_constant(step, bounds, [lr] + values)``).
Its ``step`` counts **optimizer steps** (batches), not epochs, whatever its docstrings say;
:class:`StepSchedule` keeps that unit and says so in its name. The step ``t`` passed to
:meth:`StepSchedule.factor` is the number of optimizer steps already taken, so the first
update uses ``t = 0``, as TF's ``global_step`` before its first increment.

deephyp's weight decay was meant as ``wd_lambda · Σ_params ||p||² / 2`` over every weight
**and** bias, added to the loss, but it was computed on the initialiser tensors and never
reached the gradients. :func:`l2_penalty` computes it on the live parameters; a task adds
``l2_penalty_weight · l2_penalty(model)`` to its objective (an L2 penalty, not AdamW's
decoupled decay).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from hsikit.errors import ConfigError

ScheduleName = Literal["warmup_cosine", "constant", "exponential", "piecewise"]
#: schedules built here; the other two come from :class:`~hsikit.tasks.base.BaseTask`
STEP_SCHEDULES: tuple[str, ...] = ("exponential", "piecewise")


def l2_penalty(module: nn.Module) -> torch.Tensor:
    """``Σ_p ||p||² / 2`` over every trainable parameter of ``module`` (weights and biases), a 0-d tensor.

    A parameter shared by two layers (tied weights) is counted once.
    """
    terms = [parameter.pow(2).sum() for parameter in module.parameters() if parameter.requires_grad]
    if not terms:
        return torch.zeros(())
    return 0.5 * torch.stack(terms).sum()


@dataclass
class StepSchedule:
    """A learning-rate multiplier as a function of the optimizer step (deephyp's decay options).

    Args:
        kind: ``"exponential"`` or ``"piecewise"``.
        lr: the base learning rate (piecewise values are absolute rates; the factor divides by it).
        decay_steps: exponential: optimizer steps per decay (> 0).
        decay_rate: exponential: multiplier per ``decay_steps`` (> 0).
        staircase: exponential: decay in whole steps of ``decay_steps`` (deephyp) or continuously.
        piecewise_bounds: piecewise: increasing step counts where the rate changes.
        piecewise_values: piecewise: the rates after each bound (one per bound).
    """

    kind: str
    lr: float
    decay_steps: int | None = None
    decay_rate: float | None = None
    staircase: bool = True
    piecewise_bounds: list[int] = field(default_factory=list)
    piecewise_values: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind == "exponential":
            if self.decay_steps is None or self.decay_rate is None:
                raise ConfigError(
                    "the 'exponential' schedule needs lr_decay_steps (optimizer steps per decay) and lr_decay_rate; "
                    f"got lr_decay_steps={self.decay_steps}, lr_decay_rate={self.decay_rate}"
                )
            if int(self.decay_steps) != self.decay_steps or self.decay_steps < 1:
                raise ConfigError(
                    f"lr_decay_steps must be a positive integer (optimizer steps), got {self.decay_steps}"
                )
            if not (math.isfinite(self.decay_rate) and self.decay_rate > 0):
                raise ConfigError(f"lr_decay_rate must be a positive number, got {self.decay_rate}")
            self.decay_steps = int(self.decay_steps)
        elif self.kind == "piecewise":
            bounds, values = list(self.piecewise_bounds or []), list(self.piecewise_values or [])
            if not bounds or len(bounds) != len(values):
                raise ConfigError(
                    "the 'piecewise' schedule needs lr_piecewise_bounds (optimizer steps) and one lr_piecewise_values "
                    f"rate per bound; got bounds={bounds}, values={values}"
                )
            if any(int(b) != b or b < 0 for b in bounds) or any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:])):
                raise ConfigError(f"lr_piecewise_bounds must be increasing step counts >= 0, got {bounds}")
            if any(not (math.isfinite(v) and v > 0) for v in values):
                raise ConfigError(f"lr_piecewise_values must be positive learning rates, got {values}")
            self.piecewise_bounds = [int(b) for b in bounds]
            self.piecewise_values = [float(v) for v in values]
        else:
            raise ConfigError(f"a step schedule is 'exponential' or 'piecewise', got {self.kind!r}")

    def learning_rate(self, step: int) -> float:
        """The learning rate of the update after ``step`` optimizer steps."""
        if self.kind == "exponential":
            assert self.decay_steps is not None and self.decay_rate is not None
            exponent = step // self.decay_steps if self.staircase else step / self.decay_steps
            return self.lr * self.decay_rate**exponent
        rate = self.lr
        for bound, value in zip(self.piecewise_bounds, self.piecewise_values):
            if step > bound:
                rate = value
        return rate

    def factor(self, step: int) -> float:
        """``learning_rate(step) / lr``: the multiplier ``torch.optim.lr_scheduler.LambdaLR`` expects."""
        return self.learning_rate(step) / self.lr

    __call__ = factor


def step_schedule_from_options(
    scheduler: str,
    lr: float,
    lr_decay_steps: int | None,
    lr_decay_rate: float | None,
    lr_piecewise_bounds: Sequence[int] | None,
    lr_piecewise_values: Sequence[float] | None,
) -> StepSchedule | None:
    """The :class:`StepSchedule` of a task's options, or None for BaseTask's own schedules.

    Raises :class:`ConfigError` for an unknown schedule name or decay options given to a
    schedule that does not use them (so a misplaced option is never silently ignored).
    """
    if scheduler not in ("warmup_cosine", "constant", *STEP_SCHEDULES):
        raise ConfigError(
            f"scheduler must be one of 'warmup_cosine', 'constant', 'exponential', 'piecewise'; got {scheduler!r}"
        )
    if scheduler in STEP_SCHEDULES:
        return StepSchedule(
            scheduler,
            lr,
            decay_steps=lr_decay_steps,
            decay_rate=lr_decay_rate,
            piecewise_bounds=list(lr_piecewise_bounds or []),
            piecewise_values=list(lr_piecewise_values or []),
        )
    given = [
        name
        for name, value in (
            ("lr_decay_steps", lr_decay_steps),
            ("lr_decay_rate", lr_decay_rate),
            ("lr_piecewise_bounds", lr_piecewise_bounds),
            ("lr_piecewise_values", lr_piecewise_values),
        )
        if value
    ]
    if given:
        raise ConfigError(
            f"{', '.join(given)} only apply to scheduler='exponential' or 'piecewise' (got scheduler={scheduler!r}); "
            "set the scheduler or remove them"
        )
    return None


def optimizer_with_step_schedule(task: Any, schedule: StepSchedule) -> dict[str, Any]:
    """Lightning's optimizer config: the task's optimizer (BaseTask's groups) with ``schedule`` stepped per update."""
    from hsikit.tasks.base import BaseTask

    hparams = task.hparams
    original = hparams.scheduler, hparams.warmup_steps
    hparams.scheduler, hparams.warmup_steps = "constant", 0
    try:
        optimizer = BaseTask.configure_optimizers(task)  # constant, no warm-up: the bare optimizer
    finally:
        hparams.scheduler, hparams.warmup_steps = original
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}


__all__ = [
    "STEP_SCHEDULES",
    "ScheduleName",
    "StepSchedule",
    "l2_penalty",
    "optimizer_with_step_schedule",
    "step_schedule_from_options",
]
