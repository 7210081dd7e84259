"""GAN losses: log-domain Sinkhorn divergence, adversarial pairs, R1, perceptual-style term, generator total."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError
from hsikit.losses.gan import (
    HingeAdversarialLoss,
    NonSaturatingAdversarialLoss,
    R1Regularizer,
    SinkhornAdversarialLoss,
    SinkhornDivergence,
    SinkhornGANGeneratorLoss,
    SpectralPerceptualLoss,
    charbonnier_loss,
    entropic_transport_cost,
    make_adversarial_loss,
    r1_gradient_penalty,
    score_point_clouds,
    sinkhorn_divergence,
    soft_cap,
    spectral_rendering_matrix,
    subsample_points,
)
from hsikit.losses.reconstruction import sam_loss


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def cloud(n: int, d: int = 2, seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=generator, dtype=torch.float64) + shift


def exact_w2_squared(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact optimal transport between equal-size uniform clouds: a Hungarian assignment."""
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).numpy()
    rows, columns = linear_sum_assignment(cost)
    return float(cost[rows, columns].mean())


def reference_clamped_kernel_divergence(x: torch.Tensor, y: torch.Tensor, epsilon: float) -> float:
    """CSWIN v2's Sinkhorn (spec §4): clamped kernel exp(clamp(-C/ε, -60, 0)) floored at 1e-6, primal cost."""

    def transport(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        cost = ((p[:, None, :] - q[None, :, :]) ** 2).sum(-1)
        kernel = torch.exp((-cost / epsilon).clamp(-60.0, 0.0)).clamp_min(1e-6)
        a = torch.full((p.shape[0],), 1 / p.shape[0], dtype=p.dtype)
        b = torch.full((q.shape[0],), 1 / q.shape[0], dtype=p.dtype)
        u, v = torch.ones_like(a), torch.ones_like(b)
        for _ in range(50):
            u = a / (kernel @ v).clamp_min(1e-6)
            v = b / (kernel.T @ u).clamp_min(1e-6)
        return ((u[:, None] * kernel * v[None, :]) * cost).sum().clamp_min(0.0)

    return float(transport(x, y) - 0.5 * (transport(x, x) + transport(y, y)))


# --------------------------------------------------------------------------- Sinkhorn divergence
def test_divergence_of_a_cloud_with_itself_is_zero() -> None:
    x = cloud(12, 3)
    assert abs(sinkhorn_divergence(x, x).item()) < 1e-10
    batch = torch.stack([cloud(10, 1, seed) for seed in range(3)]).float()
    assert sinkhorn_divergence(batch, batch).abs().max().item() < 1e-5


@pytest.mark.parametrize("epsilon", [0.05, 0.1, 1.0])
def test_divergence_to_a_translated_cloud_is_the_squared_shift(epsilon: float) -> None:
    # Translation adds |t|^2 to every coupling's cost and nothing to the self terms: S = |t|^2 exactly.
    x = cloud(8)
    values = []
    for length in (0.1, 0.5, 1.0, 2.0):
        shift = torch.tensor([0.6, -0.8], dtype=torch.float64) * length
        value = sinkhorn_divergence(x, x + shift, epsilon, iterations=100, scaling=0.7).item()
        assert value == pytest.approx(length**2, rel=1e-5, abs=1e-8)
        values.append(value)
    assert values == sorted(values) and values[0] > 0


def test_divergence_is_positive_between_different_clouds() -> None:
    for seed in range(5):
        assert sinkhorn_divergence(cloud(9, 2, seed), cloud(7, 2, seed + 10)).item() > 0


def test_small_epsilon_matches_exact_optimal_transport_and_the_reference_does_not() -> None:
    x, y = cloud(6, 2, seed=1), cloud(6, 2, seed=2, shift=0.5)
    exact = exact_w2_squared(x, y)
    ours = sinkhorn_divergence(x, y, epsilon=1e-3, iterations=200, scaling=0.7).item()
    assert ours == pytest.approx(exact, abs=1e-4)
    raw = entropic_transport_cost(x[None], y[None], epsilon=1e-3, iterations=200, scaling=0.7).item()
    assert abs(raw - exact) <= 1e-3 * math.log(6) + 1e-6  # OT_ε is within ε·log n of the exact cost
    # The reference's clamped kernel (all entries >= 1e-6) gives an almost uniform plan at this ε.
    assert abs(reference_clamped_kernel_divergence(x, y, 1e-3) - exact) > 0.1


def brute_force_entropic_ot(x: np.ndarray, y: np.ndarray, epsilon: float, iterations: int = 20000) -> float:
    """⟨π, C⟩ + ε KL(π | a⊗b) with π from plain matrix scaling in float64."""
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    kernel = np.exp(-cost / epsilon)
    u, v = np.ones_like(a), np.ones_like(b)
    for _ in range(iterations):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
    plan = u[:, None] * kernel * v[None, :]
    return float((plan * cost).sum() + epsilon * (plan * np.log(plan / np.outer(a, b))).sum())


def test_entropic_cost_matches_brute_force_matrix_scaling_for_unequal_clouds() -> None:
    x, y = cloud(5, 2, seed=3), cloud(7, 2, seed=4, shift=0.3)
    expected = brute_force_entropic_ot(x.numpy(), y.numpy(), 0.5)
    ours = sinkhorn_divergence(x, y, epsilon=0.5, iterations=500, debiased=False).item()
    assert ours == pytest.approx(expected, rel=1e-9)
    debiased = sinkhorn_divergence(x, y, epsilon=0.5, iterations=500).item()
    expected_debiased = expected - 0.5 * (
        brute_force_entropic_ot(x.numpy(), x.numpy(), 0.5) + brute_force_entropic_ot(y.numpy(), y.numpy(), 0.5)
    )
    assert debiased == pytest.approx(expected_debiased, rel=1e-8)


@pytest.mark.parametrize("gradient", ["envelope", "unrolled"])
def test_gradients_match_finite_differences(gradient: str) -> None:
    # Both clouds move: the self terms must be differentiated through both of their arguments
    # (the reference detached one of them, which halves their gradient).
    x, y = cloud(5, 2, seed=5), cloud(4, 2, seed=6, shift=0.4)

    def divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return sinkhorn_divergence(p, q, epsilon=0.3, iterations=300, gradient=gradient)  # type: ignore[arg-type]

    px, py = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    grad_x, grad_y = torch.autograd.grad(divergence(px, py), (px, py))
    step = 1e-6
    for point, analytic, other_is_x in ((x, grad_x, False), (y, grad_y, True)):
        numeric = torch.zeros_like(point)
        for index in np.ndindex(*point.shape):
            bump = torch.zeros_like(point)
            bump[index] = step
            if other_is_x:
                numeric[index] = (divergence(x, point + bump) - divergence(x, point - bump)) / (2 * step)
            else:
                numeric[index] = (divergence(point + bump, y) - divergence(point - bump, y)) / (2 * step)
        torch.testing.assert_close(analytic, numeric, atol=1e-7, rtol=1e-6)


def test_small_epsilon_and_huge_costs_stay_finite() -> None:
    x = (torch.randn(2, 40, 3) * 1e3).requires_grad_(True)
    y = torch.randn(2, 30, 3) * 1e3 + 500.0
    value = sinkhorn_divergence(x, y, epsilon=1e-3, iterations=50)
    value.sum().backward()
    assert torch.isfinite(value).all() and (value > 0).all()
    assert torch.isfinite(x.grad).all()
    unrolled = sinkhorn_divergence(x.detach().requires_grad_(True), y, epsilon=1e-3, iterations=20, gradient="unrolled")
    assert torch.isfinite(unrolled).all()


def test_half_precision_inputs_are_computed_in_float32() -> None:
    x, y = cloud(6, 1).half(), cloud(6, 1, seed=9).half()
    value = sinkhorn_divergence(x, y)
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_large_clouds_are_subsampled_evenly() -> None:
    points = torch.arange(2000.0).view(1, 2000, 1)
    kept = subsample_points(points, 1024)
    assert kept.shape == (1, 1024, 1)
    expected = np.round(np.linspace(0, 1999, 1024))
    assert kept[0, :, 0].numpy().tolist() == expected.tolist()
    assert subsample_points(points, None) is points


def test_sinkhorn_argument_errors() -> None:
    x = cloud(4)
    with pytest.raises(ConfigError, match="epsilon"):
        sinkhorn_divergence(x, x, epsilon=0.0)
    with pytest.raises(ConfigError, match="iterations"):
        SinkhornDivergence(iterations=0)
    with pytest.raises(ConfigError, match="scaling"):
        sinkhorn_divergence(x, x, scaling=1.5)
    with pytest.raises(ShapeMismatchError, match="same B and d"):
        sinkhorn_divergence(cloud(4, 2), cloud(4, 3))


# --------------------------------------------------------------------------- adversarial losses
def constant_scores(*values: float, size: int = 4) -> torch.Tensor:
    return torch.stack([torch.full((1, size, size), v) for v in values]).double()


def test_sinkhorn_generator_loss_by_hand_for_constant_score_maps() -> None:
    # Each map is one point repeated: S = (fake − real)^2 after dividing both by max(|fake|, |real|).
    loss = SinkhornAdversarialLoss()
    real, fake = constant_scores(2.0, 1.0), constant_scores(-1.0, 0.5)
    expected = 0.5 * (((-1.0 - 2.0) / 2.0) ** 2 + ((0.5 - 1.0) / 1.0) ** 2)
    assert loss.generator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(-expected, rel=1e-6)
    clipped = SinkhornAdversarialLoss(generator_clip=1.0)
    assert clipped.generator_loss(real, fake).item() == pytest.approx(1.0)
    raw = SinkhornAdversarialLoss(joint_rescale=False)
    assert raw.generator_loss(real, fake).item() == pytest.approx(0.5 * (9.0 + 0.25), rel=1e-6)


def test_joint_rescaling_makes_the_loss_scale_invariant() -> None:
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 1, 4, 4, generator=generator), torch.randn(2, 1, 4, 4, generator=generator) + 1
    loss = SinkhornAdversarialLoss()
    expected = loss.generator_loss(real, fake).item()
    assert loss.generator_loss(3.0 * real, 3.0 * fake).item() == pytest.approx(expected, rel=1e-5)


def test_flatten_spatial_option_is_honoured() -> None:
    # The reference accepted sinkhorn_flatten_spatial but always flattened.
    real, fake = constant_scores(1.0, 1.0, size=2), constant_scores(0.0, 0.0, size=2)
    per_pixel = SinkhornAdversarialLoss(flatten_spatial=True).generator_loss(real, fake).item()
    per_map = SinkhornAdversarialLoss(flatten_spatial=False).generator_loss(real, fake).item()
    assert per_pixel == pytest.approx(1.0, rel=1e-6)  # two clouds of 4 points at 1 vs 0
    assert per_map == pytest.approx(4.0, rel=1e-6)  # one cloud of two 4-D points (1,1,1,1) vs (0,0,0,0)
    assert score_point_clouds(real, True).shape == (2, 4, 1)
    assert score_point_clouds(real, False).shape == (1, 2, 4)


def test_generator_loss_does_not_train_the_critic_on_real_scores() -> None:
    real = torch.randn(2, 1, 3, 3, requires_grad=True)
    fake = torch.randn(2, 1, 3, 3, requires_grad=True)
    SinkhornAdversarialLoss().generator_loss(real, fake).backward()
    assert real.grad is None and fake.grad is not None and fake.grad.abs().sum() > 0


def test_logistic_and_hinge_pairs_by_hand() -> None:
    real, fake = torch.tensor([[[[2.0]]], [[[0.0]]]]), torch.tensor([[[[-1.0]]], [[[1.0]]]])
    logistic = NonSaturatingAdversarialLoss()
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert logistic.discriminator_loss(real, fake).item() == pytest.approx(
        (softplus(-2) + softplus(0)) / 2 + (softplus(-1) + softplus(1)) / 2
    )
    assert logistic.generator_loss(None, fake).item() == pytest.approx((softplus(1) + softplus(-1)) / 2)
    hinge = HingeAdversarialLoss()
    assert hinge.discriminator_loss(real, fake).item() == pytest.approx((0 + 1) / 2 + (0 + 2) / 2)
    assert hinge.generator_loss(None, fake).item() == pytest.approx(0.0)
    assert isinstance(make_adversarial_loss("hinge"), HingeAdversarialLoss)
    assert make_adversarial_loss("sinkhorn", epsilon=0.2).divergence.epsilon == 0.2
    with pytest.raises(ConfigError, match="takes no arguments"):
        make_adversarial_loss("hinge", epsilon=0.2)
    with pytest.raises(ConfigError, match="unknown adversarial loss"):
        make_adversarial_loss("wgan")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- R1
def test_r1_of_a_linear_critic_is_the_squared_weight_norm() -> None:
    weight = torch.tensor([0.5, -1.0, 2.0, 0.25], requires_grad=True)
    inputs = torch.randn(3, 4, requires_grad=True)
    scores = inputs @ weight  # D(x) = w · x
    penalty = r1_gradient_penalty(scores, inputs)
    assert penalty.item() == pytest.approx(0.25 + 1.0 + 4.0 + 0.0625)
    (weight_grad,) = torch.autograd.grad(penalty, weight)  # d‖w‖²/dw = 2w: the graph is kept
    torch.testing.assert_close(weight_grad, 2 * weight.detach())


def test_r1_of_a_quadratic_critic_averages_the_squared_input_norms() -> None:
    inputs = torch.tensor([[1.0, 2.0], [3.0, 0.0]], requires_grad=True)
    scores = 0.5 * inputs.pow(2).sum(dim=1)  # ∇D(x) = x
    assert r1_gradient_penalty(scores, inputs).item() == pytest.approx((5.0 + 9.0) / 2)
    other = torch.ones(2, 3, requires_grad=True)
    scores = 0.5 * inputs.pow(2).sum(dim=1) + (other * 2.0).sum(dim=1)  # two inputs: norms add up
    assert r1_gradient_penalty(scores, [inputs, other]).item() == pytest.approx(7.0 + 12.0)
    with pytest.raises(ConfigError, match="requires_grad"):
        r1_gradient_penalty(scores, torch.ones(2, 2))


def test_r1_regulariser_is_scaled_for_lazy_application() -> None:
    weight = torch.tensor([1.0, 2.0])
    inputs = torch.randn(5, 2, requires_grad=True)
    lazy = R1Regularizer(gamma=10.0, every=16)
    assert lazy.weight == 80.0  # γ/2 · 16
    assert lazy(inputs @ weight, inputs).item() == pytest.approx(80.0 * 5.0)
    assert R1Regularizer(gamma=10.0, every=16, lazy_scale=False)(inputs @ weight, inputs).item() == pytest.approx(25.0)
    assert [lazy.applies(step) for step in (0, 1, 15, 16, 32)] == [True, False, False, True, True]


def test_r1_on_the_discriminator_reaches_its_parameters() -> None:
    from hsikit.models import create_model, tiny_model_arguments

    torch.manual_seed(0)
    critic = create_model("cswin_discriminator", **tiny_model_arguments("cswin_discriminator"))
    hsi = torch.rand(2, 31, 8, 8, requires_grad=True)
    penalty = R1Regularizer()(critic(torch.rand(2, 3, 8, 8), hsi), hsi)
    penalty.backward()
    assert torch.isfinite(penalty) and penalty.item() > 0
    assert critic.stem.parametrizations.weight.original.grad.abs().sum() > 0


# --------------------------------------------------------------------------- reconstruction terms
def test_charbonnier_by_hand() -> None:
    prediction, target = torch.tensor([0.0, 3.0, 1.0]), torch.tensor([0.0, 0.0, 0.0])
    expected = (1e-3 + math.sqrt(9 + 1e-6) + math.sqrt(1 + 1e-6)) / 3
    assert charbonnier_loss(prediction, target).item() == pytest.approx(expected, rel=1e-6)


def test_sam_term_reaches_zero_and_keeps_its_gradient_for_small_angles() -> None:
    # The reference's arccos(clamp(cos, ±0.999)) is 0.0447 rad for identical spectra and flat below it.
    target = torch.rand(1, 31, 2, 2, dtype=torch.float64) + 0.1
    assert sam_loss(target, target).item() == 0.0
    reference_floor = math.acos(0.999)
    assert reference_floor == pytest.approx(0.0447, abs=1e-4)
    prediction = (target + 0.01 * torch.randn_like(target)).requires_grad_(True)
    angle = sam_loss(prediction, target)
    assert 0 < angle.item() < reference_floor
    (gradient,) = torch.autograd.grad(angle, prediction)
    assert gradient.abs().sum() > 0


# --------------------------------------------------------------------------- perceptual-style term
def test_rendering_maps_white_to_one_and_uses_visible_bands() -> None:
    matrix = spectral_rendering_matrix(np.linspace(400, 700, 31))
    assert matrix.shape == (3, 31)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-12)
    # red draws from long wavelengths, blue from short ones
    assert np.argmax(matrix[0]) > np.argmax(matrix[1]) > np.argmax(matrix[2])


def test_perceptual_term_by_hand_for_a_constant_offset() -> None:
    loss = SpectralPerceptualLoss()
    target = torch.rand(2, 31, 3, 3, dtype=torch.float64)
    delta = 0.2
    parts = loss.components(target + delta, target)
    # rows of the rendering sum to 1: each channel moves by δ; spectral slopes do not change
    assert parts["colour"].item() == pytest.approx(math.sqrt(delta**2 + 1e-6), rel=1e-6)
    assert parts["shape"].item() == pytest.approx(1e-3, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(math.sqrt(delta**2 + 1e-6) + 1e-3, rel=1e-6)
    assert loss(target, target).item() == pytest.approx(2e-3, rel=1e-6)


def test_perceptual_term_with_a_frozen_feature_extractor() -> None:
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Dropout(0.5))
    loss = SpectralPerceptualLoss(feature_extractor=network).train()
    assert not network.training and all(not p.requires_grad for p in network.parameters())
    target = torch.rand(1, 31, 5, 5)
    prediction = (target + 0.1 * torch.rand_like(target)).requires_grad_(True)
    parts = loss.components(prediction, target)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    features = [network((loss.render(c).clamp(0, 1) - mean) / std) for c in (prediction, target)]
    assert parts["network"].item() == pytest.approx(charbonnier_loss(*features).item(), rel=1e-5)
    parts["loss"].backward()
    assert prediction.grad.abs().sum() > 0 and network[0].weight.grad is None


def test_perceptual_term_errors() -> None:
    with pytest.raises(ShapeMismatchError, match="one centre"):
        SpectralPerceptualLoss(num_bands=31, wavelengths=[400.0, 500.0])
    with pytest.raises(ShapeMismatchError, match="31 bands"):
        SpectralPerceptualLoss()(torch.rand(1, 30, 2, 2), torch.rand(1, 30, 2, 2))


# --------------------------------------------------------------------------- generator total
def test_default_weights_are_the_reference_ones() -> None:
    loss = SinkhornGANGeneratorLoss(use_adaptive_weights=False)
    assert loss.loss_weights() == {"reconstruction": 1.0, "perceptual": 0.0, "adversarial": 0.1, "sam": 0.05}


def test_adaptive_weight_schedule_by_hand() -> None:
    loss = SinkhornGANGeneratorLoss(lambda_perceptual=0.2)
    assert loss.loss_weights(0) == {"reconstruction": 1.0, "perceptual": 0.0, "adversarial": 0.0, "sam": 0.0}
    halfway = loss.loss_weights(2500)
    assert halfway == pytest.approx({"reconstruction": 1.0, "perceptual": 0.1, "adversarial": 0.025, "sam": 0.025})
    full = {"reconstruction": 1.0, "perceptual": 0.2, "adversarial": 0.1, "sam": 0.05}
    assert loss.loss_weights(5000) == pytest.approx(full)
    ramp = loss.loss_weights(30000)  # p = 0.5
    assert ramp == pytest.approx({"reconstruction": 0.85, "perceptual": 0.3, "adversarial": 0.125, "sam": 0.05})
    final = {"reconstruction": 0.7, "perceptual": 0.4, "adversarial": 0.15, "sam": 0.05}
    assert loss.loss_weights(10**6) == pytest.approx(final)


def test_adaptive_weights_require_the_step() -> None:
    # The reference's memory-optimised trainer omitted it, silently zeroing every term but the reconstruction.
    loss = SinkhornGANGeneratorLoss()
    cube = torch.rand(1, 31, 4, 4)
    with pytest.raises(ConfigError, match="iteration="):
        loss(cube, cube)


def test_total_is_the_weighted_sum_of_the_terms() -> None:
    torch.manual_seed(0)
    loss = SinkhornGANGeneratorLoss(lambda_perceptual=0.3, use_adaptive_weights=False)
    target = torch.rand(2, 31, 8, 8) + 0.1
    prediction = target + 0.05 * torch.randn_like(target)
    real, fake = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    parts = loss(prediction, target, fake_scores=fake, real_scores=real)
    assert parts["reconstruction"].item() == pytest.approx(charbonnier_loss(prediction, target).item(), rel=1e-6)
    assert parts["sam"].item() == pytest.approx(sam_loss(prediction, target).item(), rel=1e-6)
    assert parts["perceptual"].item() == pytest.approx(SpectralPerceptualLoss()(prediction, target).item(), rel=1e-6)
    assert parts["adversarial"].item() == pytest.approx(
        SinkhornAdversarialLoss().generator_loss(real, fake).item(), rel=1e-6
    )
    expected = parts["reconstruction"] + 0.3 * parts["perceptual"] + 0.1 * parts["adversarial"] + 0.05 * parts["sam"]
    assert parts["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["perceptual"].item() > 0  # the reference forced this term to 0 without a VGG extractor


def test_reconstruction_kinds() -> None:
    target = torch.tensor([1.0, 2.0, 4.0, 5.0]).view(1, 1, 2, 2)
    prediction = torch.tensor([1.5, 2.0, 4.0, 4.0]).view(1, 1, 2, 2)
    terms = {
        kind: SinkhornGANGeneratorLoss(reconstruction=kind, lambda_adversarial=0, lambda_sam=0,
                                       use_adaptive_weights=False)(prediction, target)["reconstruction"].item()
        for kind in ("l1", "mrae")
    }  # fmt: skip
    assert terms == pytest.approx({"l1": 0.375, "mrae": 0.175})
    with pytest.raises(MetricInputError):
        SinkhornGANGeneratorLoss(reconstruction="mrae", lambda_adversarial=0, use_adaptive_weights=False)(
            prediction, torch.zeros_like(target)
        )


def test_cap_keeps_a_gradient_above_the_maximum() -> None:
    # The reference clamped the total to [0, 100], which zeroed every gradient above 100.
    prediction = torch.full((1, 31, 2, 2), 600.0, requires_grad=True)
    target = torch.full((1, 31, 2, 2), 0.5)
    loss = SinkhornGANGeneratorLoss(lambda_adversarial=0, lambda_sam=0, use_adaptive_weights=False)
    total = loss(prediction, target)["loss"]
    assert total.item() == pytest.approx(100.0)
    total.backward()
    assert prediction.grad.abs().sum() > 0
    value = torch.tensor(50.0, requires_grad=True)
    assert soft_cap(value, 100.0) is not None and soft_cap(value, 100.0).item() == 50.0


def test_missing_scores_are_reported_when_the_adversarial_weight_is_on() -> None:
    loss = SinkhornGANGeneratorLoss(use_adaptive_weights=False)
    cube = torch.rand(1, 31, 4, 4)
    with pytest.raises(ConfigError, match="fake_scores"):
        loss(cube, cube)
    # at step 0 the adaptive adversarial weight is 0, so the scores are not needed yet
    assert SinkhornGANGeneratorLoss()(cube, cube, iteration=0)["adversarial"].item() == 0.0


def test_a_full_generator_step_with_the_tiny_models_is_finite() -> None:
    from hsikit.models import create_model, tiny_model_arguments

    torch.manual_seed(0)
    generator = create_model("cswin_generator", **tiny_model_arguments("cswin_generator"))
    critic = create_model("cswin_discriminator", **tiny_model_arguments("cswin_discriminator"))
    rgb, target = torch.rand(2, 3, 8, 8), torch.rand(2, 31, 8, 8) + 0.1
    fake = generator(rgb)
    critic.requires_grad_(False)
    parts = SinkhornGANGeneratorLoss()(fake, target, critic(rgb, fake), critic(rgb, target), iteration=6000)
    parts["loss"].backward()
    assert all(torch.isfinite(value) for value in parts.values())
    assert parts["adversarial"].item() > 0
    assert generator.head.weight.grad.abs().sum() > 0
