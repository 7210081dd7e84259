"""The linear warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch

from hsikit.engine.schedulers import WarmupCosineSchedule, warmup_cosine_factor


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.25),  # (0 + 1) / 4
        (2, 0.75),
        (3, 1.0),  # last warm-up step reaches the peak
        (4, 1.0),  # cosine starts at its top
        (8, 0.5),  # half-way through the 8 decay steps: (1 + cos(pi / 2)) / 2
        (10, (1 + math.cos(math.pi * 0.75)) / 2),
        (12, 0.0),
        (40, 0.0),  # stays at the minimum after total_steps
    ],
)
def test_factor_by_hand(step: int, expected: float) -> None:
    assert warmup_cosine_factor(step, warmup_steps=4, total_steps=12) == pytest.approx(expected)


def test_min_lr_ratio_lifts_the_floor() -> None:
    assert warmup_cosine_factor(8, 4, 12, min_lr_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine_factor(12, 4, 12, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(0, 0, 10) == pytest.approx(1.0)  # no warm-up


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.2)


def test_scheduler_follows_the_factor_and_resumes_from_its_state() -> None:
    optimizer = _optimizer()
    schedule = WarmupCosineSchedule(optimizer, warmup_steps=3, total_steps=10, min_lr_ratio=0.05)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.2 * warmup_cosine_factor(s, 3, 10, 0.05) for s in range(6)])

    state = schedule.state_dict()
    resumed_optimizer = _optimizer()
    resumed = WarmupCosineSchedule(resumed_optimizer, warmup_steps=3, total_steps=10, min_lr_ratio=0.05)
    resumed.load_state_dict(state)
    resumed_optimizer.param_groups[0]["lr"] = resumed.get_last_lr()[0]
    for step in range(6, 10):
        assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(0.2 * warmup_cosine_factor(step, 3, 10, 0.05))
        resumed_optimizer.step()
        resumed.step()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="min_lr_ratio"):
        WarmupCosineSchedule(_optimizer(), warmup_steps=1, total_steps=5, min_lr_ratio=1.5)
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosineSchedule(_optimizer(), warmup_steps=1, total_steps=0)
