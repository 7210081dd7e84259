"""Tests of the spectral similarity measures SAM, SID and CSA (NumPy and torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsikit.errors import ShapeMismatchError
from hsikit.spectral.metrics import (
    cosine_spectral_angle,
    csa,
    sam,
    sid,
    spectral_angle,
    spectral_information_divergence,
)

METRICS = (spectral_angle, spectral_information_divergence, cosine_spectral_angle)


# ------------------------------------------------------------------ hand-computed values
def test_spectral_angle_of_hand_computed_pairs() -> None:
    assert spectral_angle([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.pi / 2, abs=1e-7)
    assert spectral_angle([1.0, 1.0], [1.0, 0.0]) == pytest.approx(math.pi / 4, abs=1e-7)
    assert spectral_angle([1.0, 1.0], [1.0, 0.0], degrees=True) == pytest.approx(45.0, abs=1e-5)
    assert spectral_angle([1.0, 0.0], [-1.0, 0.0]) == pytest.approx(math.pi, abs=1e-7)
    # cos = (1*3 + 2*1) / (sqrt(5) * sqrt(10)) = 5 / sqrt(50) -> 45 degrees
    assert spectral_angle([1.0, 2.0], [3.0, 1.0], degrees=True) == pytest.approx(45.0, abs=1e-5)
    assert spectral_angle([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(0.0, abs=1e-7)  # scale invariant


def test_spectral_information_divergence_of_a_hand_computed_pair() -> None:
    # p = (1/4, 1/2, 1/4), q = (1/4, 1/4, 1/2):
    # SID = sum (p - q) ln(p / q) = 0 + (1/4) ln 2 + (-1/4) ln(1/2) = (1/2) ln 2
    assert sid([1.0, 2.0, 1.0], [1.0, 1.0, 2.0]) == pytest.approx(0.5 * math.log(2.0), rel=1e-6)
    assert sid([2.0, 4.0, 2.0], [3.0, 3.0, 6.0]) == pytest.approx(0.5 * math.log(2.0), rel=1e-6)  # sum-normalised


def test_sid_with_zeros_is_finite_and_follows_the_epsilon_formula() -> None:
    # p = (1, 0), q = (0, 1): SID = 2 * (ln(1 + eps) - ln(eps))
    eps = 1e-12
    expected = 2.0 * (math.log(1.0 + eps) - math.log(eps))
    value = spectral_information_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0]), eps=eps)
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-9)


def test_cosine_spectral_angle_of_hand_computed_pairs() -> None:
    assert csa([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1.0 - 1.0 / math.sqrt(2.0), abs=1e-7)
    assert csa([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0, abs=1e-7)
    assert csa([1.0, 0.0], [-2.0, 0.0]) == pytest.approx(2.0, abs=1e-7)


def test_zero_vectors_follow_the_deephyp_convention() -> None:
    zero, spectrum = np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4])
    assert sam(zero, spectrum) == pytest.approx(math.pi / 2)
    assert sam(zero, zero) == pytest.approx(math.pi / 2)
    assert csa(zero, spectrum) == pytest.approx(1.0)
    assert sid(zero, zero) == pytest.approx(0.0)
    assert np.isfinite(sid(zero, spectrum)) and sid(zero, spectrum) > 10


def test_csa_equals_one_minus_cosine_of_sam_and_sam_equals_arccos(rng: np.random.Generator) -> None:
    a, b = rng.random((50, 30)), rng.normal(size=(50, 30))
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(sam(a, b), np.arccos(cosine), atol=1e-12)
    np.testing.assert_allclose(csa(a, b), 1.0 - np.cos(sam(a, b)), atol=1e-12)


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize("metric", METRICS)
def test_symmetric_and_zero_for_identical_spectra(metric, rng: np.random.Generator) -> None:
    a, b = rng.random((20, 16)) + 0.01, rng.random((20, 16)) + 0.01
    np.testing.assert_allclose(metric(a, b), metric(b, a), rtol=1e-6, atol=1e-7)
    assert np.all(metric(a, b) > 0)
    np.testing.assert_allclose(metric(a, a), 0.0, atol=1e-6)


def test_identical_float32_spectra_give_an_exact_zero_angle(rng: np.random.Generator) -> None:
    spectra = rng.random((100, 200), dtype=np.float32)
    assert np.all(sam(spectra, spectra.copy()) == 0.0)
    assert bool((sam(torch.from_numpy(spectra), torch.from_numpy(spectra.copy())) == 0.0).all())
    # a float32 arccos of the cosine cannot resolve this 1e-4 rad angle; the half-angle formula does
    tilted = np.array([1.0, 1e-4], dtype=np.float32)
    assert sam(np.array([1.0, 0.0], dtype=np.float32), tilted) == pytest.approx(1e-4, rel=1e-3)


@pytest.mark.parametrize("metric", METRICS)
def test_batch_shapes_axis_and_broadcasting(metric, rng: np.random.Generator) -> None:
    cube = rng.random((12, 5, 7)) + 0.01  # (B, H, W)
    reference = rng.random(12) + 0.01
    per_pixel = metric(cube, reference[:, None, None], axis=0)
    assert per_pixel.shape == (5, 7)
    loop = np.array([[metric(cube[:, r, c], reference) for c in range(7)] for r in range(5)])
    np.testing.assert_allclose(per_pixel, loop, rtol=1e-10)
    pixels = rng.random((6, 1, 12)) + 0.01
    library = rng.random((1, 4, 12)) + 0.01
    table = metric(pixels, library)  # default axis -1
    assert table.shape == (6, 4)
    assert table[2, 3] == pytest.approx(metric(pixels[2, 0], library[0, 3]), rel=1e-10)
    assert metric(cube.reshape(12, -1).T, reference).shape == (35,)  # (N, B) against (B,)


def test_float32_input_gives_float32_and_float64_stays_float64(rng: np.random.Generator) -> None:
    a = rng.random((3, 8), dtype=np.float32)
    assert sam(a, a[::-1]).dtype == np.float32
    assert sid(a.astype(np.float64), a[::-1]).dtype == np.float64


def test_band_count_mismatch_names_both_shapes() -> None:
    with pytest.raises(ShapeMismatchError, match=r"5 and 4 bands along axis -1.*\(3, 5\) and \(3, 4\)"):
        sam(np.ones((3, 5)), np.ones((3, 4)))
    with pytest.raises(ShapeMismatchError, match="ambiguous"):
        sid(np.ones(5), np.ones((5, 2, 2)), axis=0)
    with pytest.raises(ShapeMismatchError, match="axis 3 does not exist"):
        csa(np.ones((2, 5)), np.ones((2, 5)), axis=3)


# ------------------------------------------------------------------ torch
@pytest.mark.parametrize("metric", METRICS)
def test_torch_agrees_with_numpy(metric, rng: np.random.Generator) -> None:
    prediction = rng.random((2, 10, 4, 3)) + 0.01  # (N, C, H, W)
    target = rng.random((2, 10, 4, 3)) + 0.01
    expected = metric(prediction, target, axis=1)
    result = metric(torch.from_numpy(prediction), torch.from_numpy(target), axis=1)
    assert isinstance(result, torch.Tensor) and tuple(result.shape) == (2, 4, 3)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-10, atol=1e-12)
    mixed = metric(torch.from_numpy(prediction), target, axis=1)  # a NumPy operand is converted
    np.testing.assert_allclose(mixed.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_torch_gradcheck(metric) -> None:
    generator = torch.Generator().manual_seed(0)
    a = (torch.rand(3, 6, generator=generator, dtype=torch.float64) + 0.05).requires_grad_()
    b = (torch.rand(3, 6, generator=generator, dtype=torch.float64) + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: metric(x, y), (a, b))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_gradients_are_finite_at_identical_and_zero_inputs(metric, dtype) -> None:
    spectra = torch.rand(4, 9, dtype=dtype) + 0.1
    spectra[3] = 0.0  # a zero spectrum
    prediction = spectra.clone().requires_grad_()
    metric(prediction, spectra).sum().backward()
    assert torch.isfinite(prediction.grad).all()
    # at the minimum (identical non-zero spectra) the gradient vanishes
    assert torch.allclose(prediction.grad[:3], torch.zeros_like(prediction.grad[:3]), atol=1e-4)


def test_torch_sam_gradient_matches_the_analytic_derivative() -> None:
    # angle of (cos t, sin t) against (1, 0) is t, so d angle / d t = 1
    t = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    angle = sam(torch.stack([torch.cos(t), torch.sin(t)]), torch.tensor([1.0, 0.0], dtype=torch.float64))
    angle.backward()
    assert angle.item() == pytest.approx(0.3, abs=1e-12)
    assert t.grad.item() == pytest.approx(1.0, abs=1e-10)


def test_degrees_work_for_tensors() -> None:
    value = spectral_angle(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), degrees=True)
    assert value.item() == pytest.approx(45.0, abs=1e-4)
