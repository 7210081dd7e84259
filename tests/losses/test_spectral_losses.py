"""Tests of the deephyp reconstruction losses (SSE, SA, SID, CSA) and the balanced cross-entropy."""

from __future__ import annotations

import math

import pytest
import torch

from hsikit.errors import ConfigError, ShapeMismatchError, UnknownNameError
from hsikit.losses.spectral import (
    CSALoss,
    SIDLoss,
    SpectralAngleLoss,
    SSELoss,
    balanced_cross_entropy,
    create_reconstruction_loss,
    csa_loss,
    sid_loss,
    spectral_angle_loss,
    sse_loss,
)
from hsikit.spectral.metrics import cosine_spectral_angle, spectral_angle, spectral_information_divergence

LOSS_FUNCTIONS = (sse_loss, csa_loss, spectral_angle_loss, sid_loss)


def _t(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# ------------------------------------------------------------------ hand-computed values
def test_sse_of_hand_computed_spectra() -> None:
    reconstruction = _t([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    target = _t([[2.0, 2.0, 5.0], [0.0, 1.0, 1.0]])
    # per spectrum: 1 + 0 + 4 = 5 and 0 + 0 + 1 = 1
    assert sse_loss(reconstruction, target, reduction="none").tolist() == [5.0, 1.0]
    assert sse_loss(reconstruction, target).item() == pytest.approx(3.0)
    assert sse_loss(reconstruction, target, reduction="sum").item() == pytest.approx(6.0)


def test_spectral_angle_of_hand_computed_spectra() -> None:
    reconstruction = _t([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 2.0]])
    target = _t([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [3.0, 1.0]])
    expected = [math.pi / 2, math.pi / 4, math.pi, math.pi / 4]  # last: cos = 5 / sqrt(50)
    for method in ("atan2", "arccos"):
        values = spectral_angle_loss(reconstruction, target, reduction="none", method=method)
        # arccos clamps the cosine to [-1 + 1e-7, 1 - 1e-7]: pi comes out 4.5e-4 short
        assert values.tolist() == pytest.approx(expected, abs=5e-4 if method == "arccos" else 1e-12)
    assert spectral_angle_loss(reconstruction, target).item() == pytest.approx(sum(expected) / 4)


def test_spectral_angle_of_identical_spectra_atan2_is_zero_arccos_is_the_clamp() -> None:
    spectra = _t([[0.2, 0.5, 0.9]])
    assert spectral_angle_loss(spectra, spectra.clone()).item() == 0.0
    clamped = spectral_angle_loss(spectra, spectra.clone(), method="arccos").item()
    assert clamped == pytest.approx(math.acos(1.0 - 1e-7), rel=1e-6)  # deephyp's form, clamped


def test_sid_of_a_hand_computed_pair() -> None:
    # p = t / sum t = (1/4, 1/2, 1/4), q = r / sum r = (1/4, 1/4, 1/2):
    # KL(p||q) + KL(q||p) = sum (p - q) ln(p / q) = 1/4 ln 2 - 1/4 ln(1/2) = (1/2) ln 2
    target = _t([[1.0, 2.0, 1.0]])
    reconstruction = _t([[2.0, 2.0, 4.0]])  # a different scale: SID only sees the shape
    assert sid_loss(reconstruction, target).item() == pytest.approx(0.5 * math.log(2.0), rel=1e-5)


def test_csa_of_hand_computed_spectra() -> None:
    reconstruction = _t([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [2.0, 4.0]])
    target = _t([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 2.0]])
    expected = [1.0, 1.0 - 1.0 / math.sqrt(2.0), 2.0, 0.0]  # 1 - cos
    assert csa_loss(reconstruction, target, reduction="none").tolist() == pytest.approx(expected, abs=1e-12)


def test_losses_match_the_spectral_metrics_they_are_built_on() -> None:
    generator = torch.Generator().manual_seed(0)
    reconstruction = torch.rand(16, 30, generator=generator, dtype=torch.float64) + 0.05
    target = torch.rand(16, 30, generator=generator, dtype=torch.float64) + 0.05
    torch.testing.assert_close(
        spectral_angle_loss(reconstruction, target, reduction="none"), spectral_angle(reconstruction, target)
    )
    torch.testing.assert_close(
        spectral_angle_loss(reconstruction, target, reduction="none", method="arccos"),
        spectral_angle(reconstruction, target),
    )
    torch.testing.assert_close(
        csa_loss(reconstruction, target, reduction="none"), cosine_spectral_angle(reconstruction, target)
    )
    # every value is above the SID floor, so the floor changes nothing
    torch.testing.assert_close(
        sid_loss(reconstruction, target, reduction="none"), spectral_information_divergence(reconstruction, target)
    )


# ------------------------------------------------------------------ reductions and layouts
@pytest.mark.parametrize("loss", LOSS_FUNCTIONS)
def test_mean_reduction_does_not_scale_with_the_batch(loss) -> None:
    generator = torch.Generator().manual_seed(1)
    reconstruction = torch.rand(5, 12, generator=generator) + 0.1
    target = torch.rand(5, 12, generator=generator) + 0.1
    single = loss(reconstruction, target)
    repeated = loss(reconstruction.repeat(4, 1), target.repeat(4, 1))
    assert repeated.item() == pytest.approx(single.item(), rel=1e-5)
    total = loss(reconstruction.repeat(4, 1), target.repeat(4, 1), reduction="sum")
    assert total.item() == pytest.approx(20 * single.item(), rel=1e-5)
    assert loss(reconstruction, target, reduction="none").shape == (5,)


@pytest.mark.parametrize("loss", LOSS_FUNCTIONS)
def test_tiles_with_bands_on_axis_one_equal_the_flattened_spectra(loss) -> None:
    generator = torch.Generator().manual_seed(2)
    reconstruction = torch.rand(2, 7, 3, 4, generator=generator) + 0.1
    target = torch.rand(2, 7, 3, 4, generator=generator) + 0.1
    flat_reconstruction = reconstruction.permute(0, 2, 3, 1).reshape(-1, 7)
    flat_target = target.permute(0, 2, 3, 1).reshape(-1, 7)
    assert loss(reconstruction, target, reduction="none").shape == (2, 3, 4)
    assert loss(reconstruction, target).item() == pytest.approx(loss(flat_reconstruction, flat_target).item(), rel=1e-5)


# ------------------------------------------------------------------ numerical safety
@pytest.mark.parametrize("loss", LOSS_FUNCTIONS)
@pytest.mark.parametrize("case", ["identical", "zero_reconstruction", "both_zero", "negative_reconstruction"])
def test_gradients_are_finite(loss, case: str) -> None:
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(4, 20, generator=generator) + 0.05
    if case == "identical":
        start = target.clone()
    elif case == "zero_reconstruction":
        start = torch.zeros_like(target)
    elif case == "both_zero":
        start, target = torch.zeros_like(target), torch.zeros_like(target)
    else:
        start = target - 0.5
    reconstruction = start.clone().requires_grad_(True)
    value = loss(reconstruction, target)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(reconstruction.grad).all()
    if case == "identical":
        assert value.item() == pytest.approx(0.0, abs=1e-6)
        assert reconstruction.grad.abs().max().item() < 1e-5  # a minimum: no push away from the target


def test_gradients_flow_when_the_spectra_differ() -> None:
    generator = torch.Generator().manual_seed(4)
    target = torch.rand(3, 10, generator=generator) + 0.1
    for loss in LOSS_FUNCTIONS:
        reconstruction = (torch.rand(3, 10, generator=generator) + 0.1).requires_grad_(True)
        loss(reconstruction, target).backward()
        assert reconstruction.grad.abs().sum().item() > 0, loss.__name__


def test_sid_is_finite_for_non_positive_outputs_through_the_floor() -> None:
    target = torch.tensor([[0.2, 0.4, 0.4]])
    reconstruction = torch.tensor([[-0.3, 0.0, 0.5]])
    floored = torch.tensor([[1e-6, 1e-6, 0.5]])
    value = sid_loss(reconstruction, target)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(sid_loss(floored, target).item(), rel=1e-6)
    # a larger floor is a different (smoother) loss
    assert sid_loss(reconstruction, target, eps=1e-2).item() < value.item()


def test_scale_invariant_losses_ignore_magnitude_and_sse_does_not() -> None:
    target = torch.tensor([[0.1, 0.3, 0.6, 0.2]])
    scaled = 3.0 * target
    for loss in (csa_loss, spectral_angle_loss, sid_loss):
        assert loss(scaled, target).item() == pytest.approx(0.0, abs=1e-6)
    assert sse_loss(scaled, target).item() == pytest.approx(4.0 * float((target**2).sum()), rel=1e-6)


# ------------------------------------------------------------------ modules and errors
def test_modules_equal_the_functions_and_are_created_by_deephyp_name() -> None:
    generator = torch.Generator().manual_seed(5)
    reconstruction = torch.rand(6, 9, generator=generator) + 0.1
    target = torch.rand(6, 9, generator=generator) + 0.1
    pairs = [
        (SSELoss(), sse_loss),
        (CSALoss(), csa_loss),
        (SpectralAngleLoss(), spectral_angle_loss),
        (SIDLoss(), sid_loss),
    ]
    for module, function in pairs:
        assert module(reconstruction, target).item() == pytest.approx(function(reconstruction, target).item())
    assert isinstance(create_reconstruction_loss("csa"), CSALoss)
    summed = create_reconstruction_loss("SSE", reduction="sum")
    expected_sum = sse_loss(reconstruction, target, reduction="sum").item()
    assert summed(reconstruction, target).item() == pytest.approx(expected_sum)
    arccos = create_reconstruction_loss("SA", method="arccos")
    assert arccos.method == "arccos"
    with pytest.raises(UnknownNameError, match="SSE, CSA, SA, SID"):
        create_reconstruction_loss("MSE")
    with pytest.raises(ConfigError, match="reduction"):
        SSELoss(reduction="batchmean")
    with pytest.raises(ConfigError, match="method"):
        SpectralAngleLoss(method="acos")


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(2, 5\).*\(2, 6\)"):
        sse_loss(torch.zeros(2, 5), torch.zeros(2, 6))
    with pytest.raises(ShapeMismatchError, match="band_axis=3"):
        csa_loss(torch.zeros(2, 5), torch.zeros(2, 5), band_axis=3)
    with pytest.raises(ConfigError, match="reduction"):
        sid_loss(torch.ones(2, 5), torch.ones(2, 5), reduction="avg")


# ------------------------------------------------------------------ classifier loss
def test_balanced_cross_entropy_averages_over_weighted_samples() -> None:
    logits = torch.zeros(4, 2)  # CE = ln 2 for every sample
    targets = torch.tensor([0, 1, 1, -100])
    weights = torch.tensor([1.0, 3.0])
    # s = (1, 3, 3, 0): sum s CE / #{s > 0} = 7 ln 2 / 3
    assert balanced_cross_entropy(logits, targets, weights).item() == pytest.approx(7 * math.log(2) / 3)
    assert balanced_cross_entropy(logits, targets).item() == pytest.approx(math.log(2))
    assert balanced_cross_entropy(logits, torch.full((4,), -100)).item() == 0.0


def test_balanced_cross_entropy_gradient_and_errors() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5]], requires_grad=True)
    value = balanced_cross_entropy(logits, torch.tensor([1]), torch.tensor([1.0, 2.0, 1.0]))
    expected = 2.0 * -torch.log_softmax(logits.detach(), dim=1)[0, 1]
    assert value.item() == pytest.approx(expected.item())
    value.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ShapeMismatchError, match="class_weights"):
        balanced_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), torch.ones(4))
    with pytest.raises(ShapeMismatchError, match="0-based"):
        balanced_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3]))
