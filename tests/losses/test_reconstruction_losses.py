"""Reconstruction losses: MRAE (MST++ training loss), spectral angle, and their weighted sum."""

from __future__ import annotations

import math

import pytest
import torch

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError
from hsikit.losses.reconstruction import MRAELoss, MRAESAMLoss, SAMLoss, mrae_loss, sam_loss
from hsikit.metrics.reconstruction import mrae


def test_mrae_loss_by_hand_pools_every_element_of_the_batch() -> None:
    target = torch.tensor([1.0, 2.0, 4.0, 5.0]).view(2, 1, 1, 2)
    prediction = torch.tensor([1.5, 2.0, 4.0, 4.0]).view(2, 1, 1, 2)
    # relative errors 0.5, 0, 0, 0.2 over all 4 elements
    assert MRAELoss()(prediction, target).item() == pytest.approx(0.175)


def test_mrae_loss_equals_the_metric_for_one_uncropped_image() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(1, 31, 12, 12, generator=generator) + 0.05
    prediction = target + 0.02 * torch.randn(1, 31, 12, 12, generator=generator)
    assert mrae_loss(prediction, target).item() == pytest.approx(mrae(prediction, target, crop=0).item(), rel=1e-6)


def test_mrae_loss_zero_targets_refused_or_floored() -> None:
    target = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)
    prediction = torch.tensor([3e-8, 2.5]).view(1, 1, 1, 2)
    with pytest.raises(MetricInputError, match="variant='custom'"):
        MRAELoss()(prediction, target)
    # custom: |3e-8| / 1e-8 = 3 and 0.5 / 2 = 0.25 -> mean 1.625
    assert MRAELoss("custom")(prediction, target).item() == pytest.approx(1.625, rel=1e-6)
    with pytest.raises(ConfigError):
        MRAELoss("eps")


def test_sam_loss_by_hand_in_radians() -> None:
    prediction = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]])  # pixels (1, 0) and (1, 1)
    target = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])  # pixels (0, 1) and (1, 0)
    # angles pi/2 and pi/4 -> mean 3*pi/8
    assert SAMLoss()(prediction, target).item() == pytest.approx(3 * math.pi / 8, abs=1e-6)


def test_sam_loss_has_finite_gradients_even_for_identical_spectra() -> None:
    target = torch.rand(2, 31, 4, 4) + 0.1
    prediction = target.clone().requires_grad_(True)
    loss = sam_loss(prediction, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(prediction.grad).all()


def test_combined_loss_is_the_weighted_sum_and_reports_its_terms() -> None:
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(2, 31, 8, 8, generator=generator) + 0.1
    prediction = (target * (1 + 0.1 * torch.randn(2, 31, 8, 8, generator=generator))).requires_grad_(True)
    loss_fn = MRAESAMLoss(mrae_weight=1.0, sam_weight=0.5)
    parts = loss_fn.components(prediction, target)
    expected = mrae_loss(prediction, target) + 0.5 * sam_loss(prediction, target)
    assert parts["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["mrae"].item() > 0.05 and parts["sam"].item() > 0.01
    loss_fn(prediction, target).backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0
    assert MRAESAMLoss().sam_weight == pytest.approx(0.1)


def test_loss_argument_and_shape_errors() -> None:
    with pytest.raises(ConfigError, match="not both 0"):
        MRAESAMLoss(mrae_weight=0.0, sam_weight=0.0)
    with pytest.raises(ConfigError, match=">= 0"):
        MRAESAMLoss(sam_weight=-1.0)
    with pytest.raises(ShapeMismatchError, match=r"\(1, 31, 4, 4\).*\(1, 30, 4, 4\)"):
        MRAELoss()(torch.rand(1, 31, 4, 4) + 0.1, torch.rand(1, 30, 4, 4) + 0.1)
