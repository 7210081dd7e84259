"""Learning-rate schedules.

:class:`WarmupCosineSchedule`: the learning rate rises linearly during a warm-up,
then follows a half cosine down to ``min_lr_ratio`` times the base rate. It is a
closed-form function of the step count, so its state is two integers and it
resumes exactly from a checkpoint.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from hsikit.errors import ConfigError


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    * warm-up, ``step < warmup_steps``: ``(step + 1) / warmup_steps`` (the first
      step already trains, the last warm-up step reaches 1);
    * afterwards: ``min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * p)) / 2`` with
      ``p = (step - warmup_steps) / (total_steps - warmup_steps)`` clipped to [0, 1].
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(max((step - warmup_steps) / decay_steps, 0.0), 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosineSchedule(LRScheduler):
    """Linear warm-up over ``warmup_steps`` optimizer steps, then cosine decay until ``total_steps``.

    Step it once per optimizer step (Lightning: ``"interval": "step"``).

    Args:
        optimizer: the optimizer whose groups' ``lr`` is the base (peak) rate.
        warmup_steps: steps of linear warm-up (0: none).
        total_steps: step at which the cosine reaches its minimum (stays there after).
        min_lr_ratio: final learning rate as a fraction of the base rate, in [0, 1].
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        total_steps: int,
        min_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if warmup_steps < 0 or total_steps < 1:
            raise ConfigError(f"need warmup_steps >= 0 and total_steps >= 1, got {warmup_steps}, {total_steps}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must lie in [0, 1], got {min_lr_ratio}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = warmup_cosine_factor(self.last_epoch, self.warmup_steps, self.total_steps, self.min_lr_ratio)
        return [base_lr * factor for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()
