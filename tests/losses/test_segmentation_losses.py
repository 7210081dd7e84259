"""SSMGNet's segmentation losses: focal loss, weighted cross-entropy, attention-weight schedule, class weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.segmentation import (
    AttentionWeightSchedule,
    FocalLoss,
    class_weights_from_counts,
    segmentation_loss,
)


def test_focal_loss_matches_a_pixel_by_pixel_computation() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=generator)
    target = torch.randint(0, 3, (2, 4, 5), generator=generator)
    target[0, 0, :2] = -100
    alpha = [0.2, 0.5, 0.3]
    loss = FocalLoss(alpha, gamma=2.0, ignore_index=-100)(logits, target)

    total, count = 0.0, 0
    probabilities = torch.softmax(logits.double(), dim=1)
    for b in range(2):
        for y in range(4):
            for x in range(5):
                k = int(target[b, y, x])
                if k == -100:
                    continue
                p = float(probabilities[b, k, y, x])
                total += alpha[k] * (1 - p) ** 2 * -math.log(p)
                count += 1
    assert float(loss) == pytest.approx(total / count, rel=1e-5)


def test_focal_loss_without_focusing_is_cross_entropy_and_ignores_everything_gracefully() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 4, 6, 6, generator=generator)
    target = torch.randint(0, 4, (1, 6, 6), generator=generator)
    plain = FocalLoss(gamma=0.0)(logits, target)
    assert float(plain) == pytest.approx(float(F.cross_entropy(logits, target)), rel=1e-6)
    nothing = FocalLoss()(logits, torch.full_like(target, -100))
    assert float(nothing) == 0.0
    with pytest.raises(ShapeMismatchError, match="2 class weights"):
        FocalLoss([1.0, 2.0])(logits, target)
    with pytest.raises(ConfigError, match="gamma"):
        FocalLoss(gamma=-1.0)


def test_weighted_cross_entropy_divides_by_the_summed_weights() -> None:
    logits = torch.zeros(1, 3, 1, 2)  # uniform: every pixel's CE is log 3
    target = torch.tensor([[[0, 2]]])
    weights = [0.03247, 0.25926, 0.70827]
    loss = segmentation_loss("ce", weights)(logits, target)
    expected = (weights[0] + weights[2]) * math.log(3) / (weights[0] + weights[2])
    assert float(loss) == pytest.approx(expected)
    focal = segmentation_loss("focal", weights, focal_gamma=0.0)(logits, target)
    assert float(focal) == pytest.approx((weights[0] + weights[2]) * math.log(3) / 2)  # per pixel, not per weight
    with pytest.raises(ConfigError, match="unknown segmentation loss"):
        segmentation_loss("dice")


def test_attention_weight_is_halved_every_tenth_epoch() -> None:
    schedule = AttentionWeightSchedule(6.0, 10)
    assert [schedule(e) for e in (1, 9, 10, 19, 20, 29, 30)] == [6, 6, 3, 3, 1.5, 1.5, 0.75]
    assert AttentionWeightSchedule(2.0, 0)(55) == 2.0
    with pytest.raises(ConfigError, match="from 1"):
        schedule(0)
    with pytest.raises(ConfigError, match=">= 0"):
        AttentionWeightSchedule(-1.0)


def test_class_weights_from_the_glacier_tile_counts() -> None:
    counts = [59182, 4034, 2320]  # glacier tile 1
    weights = class_weights_from_counts(counts)
    inverse = 1 / np.array(counts, dtype=float)
    np.testing.assert_allclose(weights, inverse / inverse.sum())
    assert sum(weights) == pytest.approx(1.0) and weights[2] > weights[1] > weights[0]
    median = class_weights_from_counts(counts, "median_frequency")
    frequency = np.array(counts) / sum(counts)
    np.testing.assert_allclose(median, np.median(frequency) / frequency)
    assert class_weights_from_counts([10, 0, 30])[1] == 0.0
    with pytest.raises(ConfigError, match="at least one pixel"):
        class_weights_from_counts([0, 0])
