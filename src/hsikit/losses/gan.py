"""GAN losses for RGB → hyperspectral reconstruction: the CSWIN v2 Sinkhorn-GAN objective, fixed.

Written for hsikit from ``specs/003_cswin_gan.md`` §4. Tensors are ``(B, C, H, W)`` cubes
(prediction first) and ``(B, 1, h, w)`` discriminator score maps; every loss returns a 0-d
tensor and is computed in float32 (float64 inputs stay float64), outside autocast.

Terms
    * **Reconstruction**: Charbonnier ``mean(sqrt((ŷ − y)² + ε²))`` with ε = 1e-3 (the
      reference), L1, or the MST++ MRAE (:func:`hsikit.losses.reconstruction.mrae_loss`).
    * **SAM**: :func:`hsikit.losses.reconstruction.sam_loss`, the mean spectral angle in
      radians (atan2 form: exactly 0 for identical spectra, with a gradient at every angle;
      the reference's ``arccos(clamp(cos, ±0.999))`` had a floor of 0.0447 rad and no
      gradient below it).
    * **Perceptual-style spectral term** (:class:`SpectralPerceptualLoss`): Charbonnier
      distances between features of the two cubes: their colour (linear sRGB rendered with
      the CIE 1931 observer under D65, white balanced), their spectral shape (first
      differences along the bands), and optionally the features of a frozen RGB network of
      your choice (ImageNet-normalised input). The reference needed a VGG feature
      extractor and silently set the weight to 0 without one; here the network-free
      features always exist, so ``lambda_perceptual > 0`` always acts.
    * **Adversarial** (:class:`SinkhornAdversarialLoss`, :class:`NonSaturatingAdversarialLoss`,
      :class:`HingeAdversarialLoss`): each object gives a *consistent pair* of generator and
      discriminator losses (the reference's ``train_optimized.py`` paired a Sinkhorn
      generator loss with a BCE discriminator).
    * **R1** (:func:`r1_gradient_penalty`, :class:`R1Regularizer`).
    * **Total** (:class:`SinkhornGANGeneratorLoss`): ``w_rec·rec + w_perc·perc + w_adv·adv + w_sam·sam``
      with the reference's adaptive weight schedule.

Sinkhorn divergence (Feydy et al., AISTATS 2019)
    For point clouds ``x (n, d)`` and ``y (m, d)`` with uniform weights ``a = 1/n``, ``b = 1/m``
    and cost ``C_ij = ‖x_i − y_j‖²``, the entropic transport cost is the value of the dual
    problem, found by Sinkhorn iterations in the **log domain**::

        f_i = −ε · logsumexp_j(log b_j + (g_j − C_ij) / ε)
        g_j = −ε · logsumexp_i(log a_i + (f_i − C_ij) / ε)
        OT_ε(x, y) = Σ_i a_i f_i + Σ_j b_j g_j

    and the (debiased) divergence is ``S_ε(x, y) = OT_ε(x, y) − ½ OT_ε(x, x) − ½ OT_ε(y, y)``:
    exactly 0 for identical clouds, positive otherwise, and equal to ``‖t‖²`` for a cloud
    and its translate by ``t`` (for every ε). As ε → 0, ``OT_ε`` tends to the exact optimal
    transport cost (the squared 2-Wasserstein distance). Log-domain updates never form
    ``exp(−C/ε)``, so there is no kernel underflow and no need for the reference's kernel
    clamp (``exp(clamp(−C/ε, −60, 0))`` floored at 1e-6, which replaced every large cost
    by ``13.8·ε`` and gave wrong plans for small ε).

    Gradients: ``"envelope"`` (default) runs the iterations without autograd and
    differentiates ``Σ π_ij C_ij`` with the converged plan ``π`` held fixed — the exact
    gradient of ``OT_ε`` at convergence (envelope theorem), in O(n·m) memory whatever the
    number of iterations. ``"unrolled"`` differentiates through every iteration (the
    reference's choice; memory grows with ``iterations``). The self terms are
    differentiated through both of their arguments (the reference detached one, which
    halves their gradient).

    ``scaling`` (ε-scaling, Schmitzer 2019) starts at ``ε_0 = max C`` and multiplies ε by
    ``scaling`` each iteration until it reaches ε; then ``iterations`` more run at ε.
    It makes small ε converge in few iterations. ``None`` (default) runs ``iterations``
    iterations at ε, as the reference did.

Non-finite inputs are not silently replaced by 0 (the reference's choice, which hid a
diverging discriminator): they propagate, and the trainer's non-finite guard sees them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal, Protocol, get_args

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.reconstruction import mrae_loss, sam_loss
from hsikit.metrics.reconstruction import MraeVariant

CHARBONNIER_EPSILON = 1e-3
"""ε of the Charbonnier loss (CSWIN v2's ``CHARBONNIER_EPSILON``)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SinkhornGradient = Literal["envelope", "unrolled"]
ReconstructionKind = Literal["charbonnier", "l1", "mrae"]
AdversarialKind = Literal["sinkhorn", "nonsaturating", "hinge"]
ADVERSARIAL_KINDS: tuple[str, ...] = get_args(AdversarialKind)


# --------------------------------------------------------------------------- helpers
def _loss_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def soft_cap(loss: torch.Tensor, cap: float | None) -> torch.Tensor:
    """``loss`` scaled down to ``cap`` when above it, keeping a gradient (a hard clamp would have none).

    Returns ``loss · min(1, cap / loss)`` with the ratio treated as a constant: the value is
    ``min(loss, cap)`` and the gradient points the same way as the gradient of ``loss``.
    """
    if cap is None:
        return loss
    factor = (cap / loss.detach().clamp_min(cap)).to(loss.dtype)
    return loss * factor


def charbonnier_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = CHARBONNIER_EPSILON) -> torch.Tensor:
    """``mean(sqrt((ŷ − y)² + eps²))`` over every element (0-d tensor)."""
    if prediction.shape != target.shape:
        raise ShapeMismatchError(
            f"charbonnier_loss: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape"
        )
    return torch.sqrt((prediction - target).pow(2) + eps * eps).mean()


# --------------------------------------------------------------------------- Sinkhorn
def squared_euclidean_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``C[b, i, j] = ‖x[b, i] − y[b, j]‖²`` for ``x (B, n, d)``, ``y (B, m, d)`` → ``(B, n, m)``.

    Computed from the differences (exact, exactly 0 on the diagonal of ``C(x, x)``) when
    ``n·m·d`` is small, otherwise by expanding the square (clamped at 0).
    """
    batch, n, dim = x.shape
    m = y.shape[1]
    if n * m * dim <= 1 << 22:
        return (x[:, :, None, :] - y[:, None, :, :]).pow(2).sum(-1)
    cross = x @ y.transpose(1, 2)
    return (x.pow(2).sum(-1)[:, :, None] + y.pow(2).sum(-1)[:, None, :] - 2 * cross).clamp_min(0.0)


def subsample_points(points: torch.Tensor, max_points: int | None) -> torch.Tensor:
    """At most ``max_points`` of the ``n`` points of ``(B, n, d)``: rows ``round(linspace(0, n − 1, max_points))``."""
    n = points.shape[1]
    if max_points is None or n <= max_points:
        return points
    index = torch.linspace(0, n - 1, max_points, device=points.device).round().long()
    return points[:, index]


def _epsilon_schedule(cost: torch.Tensor, epsilon: float, iterations: int, scaling: float | None) -> list[float]:
    if scaling is None:
        return [epsilon] * iterations
    start = max(float(cost.detach().amax()), epsilon)  # one device sync, only with ε-scaling
    steps = max(0, math.ceil(math.log(epsilon / start) / math.log(scaling))) if start > epsilon else 0
    return [max(epsilon, start * scaling**step) for step in range(steps)] + [epsilon] * iterations


def _sinkhorn_loop(cost: torch.Tensor, schedule: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    batch, n, m = cost.shape
    log_a = torch.full((1, n, 1), -math.log(n), dtype=cost.dtype, device=cost.device)
    log_b = torch.full((1, 1, m), -math.log(m), dtype=cost.dtype, device=cost.device)
    f = cost.new_zeros(batch, n)
    g = cost.new_zeros(batch, m)
    for eps in schedule:
        f = -eps * torch.logsumexp(log_b + (g[:, None, :] - cost) / eps, dim=2)
        g = -eps * torch.logsumexp(log_a + (f[:, :, None] - cost) / eps, dim=1)
    return f, g


def _symmetric_sinkhorn_loop(cost: torch.Tensor, schedule: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    # OT(x, x): one potential, averaged updates f <- (f + T(f)) / 2, which converge much
    # faster than alternating updates on a symmetric problem (Feydy et al. 2019).
    batch, n, _ = cost.shape
    log_a = torch.full((1, 1, n), -math.log(n), dtype=cost.dtype, device=cost.device)
    f = cost.new_zeros(batch, n)
    for eps in schedule:
        f = 0.5 * (f - eps * torch.logsumexp(log_a + (f[:, None, :] - cost) / eps, dim=2))
    return f, f


def entropic_transport_cost(
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float = 0.1,
    iterations: int = 50,
    scaling: float | None = None,
    gradient: SinkhornGradient = "envelope",
    symmetric: bool = False,
) -> torch.Tensor:
    """Entropic optimal transport cost ``OT_ε`` between uniform clouds, log-domain Sinkhorn.

    Args:
        x: ``(B, n, d)`` points; y: ``(B, m, d)`` points (the same ``B`` and ``d``).
        epsilon: entropic regularisation ε (in units of the squared distance).
        iterations: Sinkhorn iterations at ε (after the ε-scaling phase, if any).
        scaling: ε-scaling factor in (0, 1), or None.
        gradient: ``"envelope"`` or ``"unrolled"`` (module docstring).
        symmetric: ``y`` is ``x`` (the self terms of the divergence): use the symmetric update.

    Returns:
        ``(B,)``: ``Σ a f + Σ b g``, the dual value (for alternating updates a lower bound
        that increases to ``OT_ε``).
    """
    cost = squared_euclidean_cost(x, y)
    schedule = _epsilon_schedule(cost, epsilon, iterations, scaling)
    loop = _symmetric_sinkhorn_loop if symmetric else _sinkhorn_loop
    if gradient == "unrolled":
        f, g = loop(cost, schedule)
        return f.mean(-1) + g.mean(-1)
    with torch.no_grad():
        fixed_cost = cost.detach()
        f, g = loop(fixed_cost, schedule)
        value = f.mean(-1) + g.mean(-1)
        if not cost.requires_grad:
            return value
        # Column-normalised plan from the final potential: columns sum exactly to b and no entry
        # can overflow, even where f + g − C has lost precision against huge costs.
        m = cost.shape[2]
        log_plan = torch.log_softmax((f[:, :, None] - fixed_cost) / epsilon, dim=1) - math.log(m)
        plan = log_plan.exp()
    return value + (plan * (cost - fixed_cost)).sum(dim=(1, 2))


def _check_sinkhorn_arguments(epsilon: float, iterations: int, scaling: float | None, gradient: str) -> None:
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError(f"Sinkhorn epsilon must be a finite number > 0, got {epsilon!r}")
    if iterations < 1:
        raise ConfigError(f"Sinkhorn needs iterations >= 1, got {iterations}")
    if scaling is not None and not 0.0 < scaling < 1.0:
        raise ConfigError(f"Sinkhorn epsilon scaling must be in (0, 1) or None, got {scaling!r}")
    if gradient not in ("envelope", "unrolled"):
        raise ConfigError(f"Sinkhorn gradient must be 'envelope' or 'unrolled', got {gradient!r}")


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float = 0.1,
    iterations: int = 50,
    debiased: bool = True,
    max_points: int | None = 1024,
    scaling: float | None = None,
    gradient: SinkhornGradient = "envelope",
) -> torch.Tensor:
    """Sinkhorn divergence between point clouds with uniform weights (module docstring).

    Args:
        x: ``(n, d)`` or ``(B, n, d)``; y: ``(m, d)`` or ``(B, m, d)``.
        epsilon, iterations, scaling, gradient: see :func:`entropic_transport_cost`.
        debiased: ``OT(x, y) − ½OT(x, x) − ½OT(y, y)`` (True) or the raw ``OT_ε(x, y)``.
        max_points: clouds larger than this are subsampled (:func:`subsample_points`); None keeps all.

    Returns:
        ``()`` for unbatched input, ``(B,)`` for batched input.
    """
    _check_sinkhorn_arguments(epsilon, iterations, scaling, gradient)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
        y = y[None] if y.ndim == 2 else y
    if (
        x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]
        or x.shape[1] == 0 or y.shape[1] == 0
    ):  # fmt: skip
        raise ShapeMismatchError(
            f"sinkhorn_divergence needs point clouds (n, d) / (m, d) or (B, n, d) / (B, m, d) with the same B and d "
            f"and at least one point, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    dtype = _loss_dtype(x, y)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = subsample_points(x.to(dtype), max_points)
        y = subsample_points(y.to(dtype), max_points)
        value = entropic_transport_cost(x, y, epsilon, iterations, scaling, gradient)
        if debiased:
            value = value - 0.5 * entropic_transport_cost(x, x, epsilon, iterations, scaling, gradient, True)
            value = value - 0.5 * entropic_transport_cost(y, y, epsilon, iterations, scaling, gradient, True)
    return value[0] if unbatched else value


class SinkhornDivergence(nn.Module):
    """:func:`sinkhorn_divergence` with its settings stored (CSWIN v2 defaults: ε 0.1, 50 iterations, 1024 points)."""

    def __init__(
        self,
        epsilon: float = 0.1,
        iterations: int = 50,
        debiased: bool = True,
        max_points: int | None = 1024,
        scaling: float | None = None,
        gradient: SinkhornGradient = "envelope",
    ) -> None:
        super().__init__()
        _check_sinkhorn_arguments(epsilon, iterations, scaling, gradient)
        if max_points is not None and max_points < 1:
            raise ConfigError(f"max_points must be >= 1 or None, got {max_points}")
        self.epsilon = float(epsilon)
        self.iterations = int(iterations)
        self.debiased = debiased
        self.max_points = max_points
        self.scaling = scaling
        self.gradient: SinkhornGradient = gradient

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(n, d)``/``(m, d)`` → ``()``; ``(B, n, d)``/``(B, m, d)`` → ``(B,)``."""
        return sinkhorn_divergence(
            x, y, self.epsilon, self.iterations, self.debiased, self.max_points, self.scaling, self.gradient
        )


def score_point_clouds(scores: torch.Tensor, flatten_spatial: bool = True) -> torch.Tensor:
    """Discriminator scores ``(B, C, h, w)`` as point clouds.

    * ``flatten_spatial=True``: one cloud per sample, its ``h·w`` pixels as points of
      dimension ``C`` → ``(B, h·w, C)`` (the divergence compares the score distributions
      of each real/fake pair);
    * ``flatten_spatial=False``: one cloud for the batch, each sample's whole map one point
      of dimension ``C·h·w`` → ``(1, B, C·h·w)`` (compares the batch of real maps with the
      batch of fake maps, ignoring which fake belongs to which real).
    """
    if scores.ndim != 4:
        raise ShapeMismatchError(f"discriminator scores must be (B, C, h, w) maps, got shape {tuple(scores.shape)}")
    batch, channels = scores.shape[:2]
    if flatten_spatial:
        return scores.reshape(batch, channels, -1).transpose(1, 2)
    return scores.reshape(1, batch, -1)


# --------------------------------------------------------------------------- adversarial losses
class AdversarialLoss(Protocol):
    """A matched pair of GAN objectives on discriminator score maps ``(B, 1, h, w)``."""

    def generator_loss(self, real_scores: torch.Tensor | None, fake_scores: torch.Tensor) -> torch.Tensor: ...

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor: ...


class SinkhornAdversarialLoss(nn.Module):
    """CSWIN v2's Sinkhorn-GAN objective on discriminator score maps.

    Real and fake score maps become point clouds (:func:`score_point_clouds`), optionally
    jointly rescaled per cloud pair by ``max(max|fake|, max|real|, 1e-6)`` (so the
    divergence is invariant to the overall scale of the scores but keeps the gap between
    real and fake), and compared with :func:`sinkhorn_divergence`.

    * generator: ``clamp(mean S(fake, stopgrad real), max=generator_clip)``;
    * discriminator: ``−mean S(fake, real)`` (the critic maximises the divergence; the fake
      scores must come from a detached generator output).

    Args:
        epsilon, iterations, max_points, scaling, gradient: Sinkhorn settings (defaults 0.1, 50, 1024).
        flatten_spatial: per-sample clouds of pixels (True) or one batch cloud of maps (False).
        joint_rescale: apply the joint rescaling (True).
        generator_clip: upper clamp of the generator loss (5.0; None: no clamp).
    """

    def __init__(
        self,
        epsilon: float = 0.1,
        iterations: int = 50,
        flatten_spatial: bool = True,
        max_points: int | None = 1024,
        joint_rescale: bool = True,
        generator_clip: float | None = 5.0,
        scaling: float | None = None,
        gradient: SinkhornGradient = "envelope",
    ) -> None:
        super().__init__()
        if generator_clip is not None and not generator_clip > 0:
            raise ConfigError(f"generator_clip must be > 0 or None, got {generator_clip!r}")
        self.divergence = SinkhornDivergence(epsilon, iterations, True, max_points, scaling, gradient)
        self.flatten_spatial = flatten_spatial
        self.joint_rescale = joint_rescale
        self.generator_clip = generator_clip

    def per_cloud_divergence(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        """``(B,)`` divergences (flatten_spatial) or ``(1,)`` (one batch cloud) between fake and real scores."""
        if real_scores.shape != fake_scores.shape:
            raise ShapeMismatchError(
                f"real scores {tuple(real_scores.shape)} and fake scores {tuple(fake_scores.shape)} must have the "
                "same shape; score the real and the reconstructed cube of the same batch"
            )
        dtype = _loss_dtype(real_scores, fake_scores)
        real = score_point_clouds(real_scores.to(dtype), self.flatten_spatial)
        fake = score_point_clouds(fake_scores.to(dtype), self.flatten_spatial)
        if self.joint_rescale:
            scale = torch.maximum(fake.abs().amax(dim=(1, 2)), real.abs().amax(dim=(1, 2))).clamp_min(1e-6)
            real, fake = real / scale[:, None, None], fake / scale[:, None, None]
        return self.divergence(fake, real)

    def generator_loss(self, real_scores: torch.Tensor | None, fake_scores: torch.Tensor) -> torch.Tensor:
        """0-d generator loss; ``real_scores`` are detached here."""
        if real_scores is None:
            raise ConfigError("the Sinkhorn generator loss compares fake with real scores; pass real_scores")
        loss = self.per_cloud_divergence(real_scores.detach(), fake_scores).mean()
        if self.generator_clip is not None:
            loss = loss.clamp(max=self.generator_clip)
        return loss

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        """0-d discriminator loss ``−S`` (no clip)."""
        return -self.per_cloud_divergence(real_scores, fake_scores).mean()


class NonSaturatingAdversarialLoss(nn.Module):
    """The logistic GAN (Goodfellow et al. 2014), non-saturating form, on score logits.

    Discriminator: ``BCE(real → 1) + BCE(fake → 0)`` = ``mean softplus(−real) + mean softplus(fake)``;
    generator: ``BCE(fake → 1)`` = ``mean softplus(−fake)``.
    """

    def generator_loss(self, real_scores: torch.Tensor | None, fake_scores: torch.Tensor) -> torch.Tensor:
        """0-d generator loss (``real_scores`` unused)."""
        return F.softplus(-fake_scores.float()).mean()

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        """0-d discriminator loss."""
        return F.softplus(-real_scores.float()).mean() + F.softplus(fake_scores.float()).mean()


class HingeAdversarialLoss(nn.Module):
    """Hinge GAN loss (Lim & Ye 2017; Miyato et al. 2018).

    Discriminator: ``mean relu(1 − real) + mean relu(1 + fake)``; generator: ``−mean fake``.
    """

    def generator_loss(self, real_scores: torch.Tensor | None, fake_scores: torch.Tensor) -> torch.Tensor:
        """0-d generator loss (``real_scores`` unused)."""
        return -fake_scores.float().mean()

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        """0-d discriminator loss."""
        return F.relu(1.0 - real_scores.float()).mean() + F.relu(1.0 + fake_scores.float()).mean()


def make_adversarial_loss(kind: AdversarialKind = "sinkhorn", **sinkhorn_arguments: object) -> nn.Module:
    """An adversarial loss pair by name; keyword arguments go to :class:`SinkhornAdversarialLoss`."""
    if kind == "sinkhorn":
        return SinkhornAdversarialLoss(**sinkhorn_arguments)  # type: ignore[arg-type]
    if sinkhorn_arguments:
        raise ConfigError(f"the {kind!r} adversarial loss takes no arguments, got {sorted(sinkhorn_arguments)}")
    if kind == "nonsaturating":
        return NonSaturatingAdversarialLoss()
    if kind == "hinge":
        return HingeAdversarialLoss()
    raise ConfigError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(ADVERSARIAL_KINDS)}")


# --------------------------------------------------------------------------- R1
def r1_gradient_penalty(scores: torch.Tensor, inputs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """``mean_b ‖∂(Σ scores) / ∂inputs_b‖²``: the squared input gradient of the critic on real data.

    Args:
        scores: discriminator output on the real inputs, ``(B, ...)``.
        inputs: the real input tensor(s) ``(B, ...)`` the scores were computed from, with
            ``requires_grad=True`` (several tensors: their squared norms add up).

    Returns:
        0-d tensor, differentiable with respect to the discriminator's parameters (the
        gradient graph is kept). For ``D(x) = w·x`` it is ``‖w‖²``.
    """
    tensors = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    if any(not t.requires_grad for t in tensors):
        raise ConfigError("r1_gradient_penalty: call inputs.requires_grad_(True) before the discriminator forward")
    gradients = torch.autograd.grad(scores.sum(), tensors, create_graph=True)
    squared = sum(g.float().pow(2).reshape(g.shape[0], -1).sum(dim=1) for g in gradients)
    return squared.mean()  # type: ignore[union-attr]


class R1Regularizer(nn.Module):
    """R1 penalty (Mescheder et al., ICML 2018), with lazy application (Karras et al., StyleGAN2).

    ``value = (γ / 2) · every · r1_gradient_penalty`` on the steps where :meth:`applies`
    (``step % every == 0``); the factor ``every`` keeps the average strength of a penalty
    applied one step in ``every`` equal to an every-step penalty (``lazy_scale=False``
    drops it). The CSWIN v2 reference used ``γ · penalty`` every 16 steps without the
    compensation: its per-application weight (10 at γ = 10) is reproduced by
    ``R1Regularizer(gamma=20, every=16, lazy_scale=False)``.

    Args:
        gamma: γ (10).
        every: apply every N discriminator steps (16).
        lazy_scale: multiply by ``every`` (True).
    """

    def __init__(self, gamma: float = 10.0, every: int = 16, lazy_scale: bool = True) -> None:
        super().__init__()
        if not (math.isfinite(gamma) and gamma >= 0) or every < 1:
            raise ConfigError(f"R1Regularizer needs gamma >= 0 and every >= 1, got gamma={gamma}, every={every}")
        self.gamma = float(gamma)
        self.every = int(every)
        self.lazy_scale = lazy_scale

    @property
    def weight(self) -> float:
        """The factor applied to the raw penalty on the steps where it applies."""
        return 0.5 * self.gamma * (self.every if self.lazy_scale else 1)

    def applies(self, step: int) -> bool:
        """Whether the penalty is added at discriminator step ``step``."""
        return step % self.every == 0

    def forward(self, scores: torch.Tensor, inputs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """The weighted penalty (0-d); see :func:`r1_gradient_penalty` for the arguments."""
        return self.weight * r1_gradient_penalty(scores, inputs)


# --------------------------------------------------------------------------- perceptual-style term
def spectral_rendering_matrix(wavelengths: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(3, C)`` matrix from band values (reflectance) to linear sRGB under D65, white → (1, 1, 1).

    CIE 1931 2° observer (hsikit's built-in analytic fit) integrated over the bands
    (:func:`hsikit.spectral.color.xyz_weights`), then XYZ → linear sRGB; each row is
    rescaled so that a flat spectrum of 1 renders as exactly 1 in every channel.
    """
    from hsikit.spectral.color import XYZ_TO_LINEAR_SRGB, xyz_weights

    matrix = XYZ_TO_LINEAR_SRGB @ xyz_weights(np.asarray(wavelengths, dtype=np.float64), illuminant="D65")
    return matrix / matrix.sum(axis=1, keepdims=True)


class SpectralPerceptualLoss(nn.Module):
    """Perceptual-style spectral term: Charbonnier distances between features of two cubes.

    ``loss = colour + shape (+ network)``, capped at ``max_value`` (:func:`soft_cap`):

    * colour: Charbonnier between the renderings ``M ŷ`` and ``M y`` (``M`` =
      :func:`spectral_rendering_matrix`, linear sRGB, 3 channels);
    * shape: Charbonnier between the spectral first differences ``ŷ[c+1] − ŷ[c]`` and
      ``y[c+1] − y[c]`` (spectral gradient: the slopes that define a material);
    * network (if ``feature_extractor`` is given): Charbonnier between the features of the
      frozen network on both renderings, clamped to [0, 1] and ImageNet-normalised. The
      network must map ``(B, 3, H, W)`` to a tensor or a list of tensors; its parameters
      are frozen and it is kept in eval mode.

    Args:
        num_bands: bands C (31); wavelengths: band centres in nm (default ``linspace(400, 700, C)``).
        feature_extractor: optional frozen RGB network (e.g. VGG16 ``features`` loaded by the user).
        eps: Charbonnier ε (1e-3).
        max_value: cap of the loss (10; None: none).
    """

    def __init__(
        self,
        num_bands: int = 31,
        wavelengths: Sequence[float] | None = None,
        feature_extractor: nn.Module | None = None,
        eps: float = CHARBONNIER_EPSILON,
        max_value: float | None = 10.0,
    ) -> None:
        super().__init__()
        if num_bands < 2:
            raise ConfigError(f"SpectralPerceptualLoss needs at least 2 bands, got {num_bands}")
        grid = np.linspace(400.0, 700.0, num_bands) if wavelengths is None else np.asarray(wavelengths, np.float64)
        if grid.shape != (num_bands,):
            raise ShapeMismatchError(
                f"SpectralPerceptualLoss: {grid.size} wavelengths for {num_bands} bands; give one centre (nm) per band"
            )
        self.num_bands = num_bands
        self.eps = float(eps)
        self.max_value = max_value
        self.register_buffer("rendering", torch.as_tensor(spectral_rendering_matrix(grid), dtype=torch.float32))
        self.register_buffer("imagenet_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("imagenet_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.feature_extractor = feature_extractor
        if feature_extractor is not None:
            feature_extractor.eval()
            feature_extractor.requires_grad_(False)

    def train(self, mode: bool = True) -> SpectralPerceptualLoss:
        """Switch mode; the feature extractor stays in eval mode."""
        super().train(mode)
        if self.feature_extractor is not None:
            self.feature_extractor.eval()
        return self

    def render(self, cube: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` cube → ``(B, 3, H, W)`` linear sRGB (not clamped)."""
        return torch.einsum("kc,bchw->bkhw", self.rendering.to(cube.dtype), cube)

    def _network_term(self, prediction_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
        assert self.feature_extractor is not None

        def features(rgb: torch.Tensor) -> list[torch.Tensor]:
            normalised = (rgb.clamp(0.0, 1.0) - self.imagenet_mean.to(rgb.dtype)) / self.imagenet_std.to(rgb.dtype)
            output = self.feature_extractor(normalised)  # type: ignore[misc]
            return list(output) if isinstance(output, (list, tuple)) else [output]

        pairs = zip(features(prediction_rgb), features(target_rgb))
        return sum(charbonnier_loss(p, t.detach(), self.eps) for p, t in pairs)  # type: ignore[return-value]

    def components(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"colour", "shape", "network" (if any), "loss"}`` as 0-d tensors."""
        if prediction.shape != target.shape or prediction.ndim != 4 or prediction.shape[1] != self.num_bands:
            raise ShapeMismatchError(
                f"SpectralPerceptualLoss({self.num_bands} bands) expects prediction and target (B, "
                f"{self.num_bands}, H, W) of the same shape, got {tuple(prediction.shape)} and {tuple(target.shape)}"
            )
        prediction_rgb, target_rgb = self.render(prediction), self.render(target)
        parts = {
            "colour": charbonnier_loss(prediction_rgb, target_rgb, self.eps),
            "shape": charbonnier_loss(torch.diff(prediction, dim=1), torch.diff(target, dim=1), self.eps),
        }
        if self.feature_extractor is not None:
            parts["network"] = self._network_term(prediction_rgb, target_rgb)
        parts["loss"] = soft_cap(sum(parts.values()), self.max_value)  # type: ignore[arg-type]
        return parts

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` prediction and target → 0-d loss."""
        return self.components(prediction, target)["loss"]


# --------------------------------------------------------------------------- total generator loss
class SinkhornGANGeneratorLoss(nn.Module):
    """CSWIN v2 generator objective ``w_rec·rec + w_perc·perc + w_adv·adv + w_sam·SAM``, capped.

    Adaptive weights (``use_adaptive_weights``; ``it`` = training step, ``W`` =
    ``warmup_iterations``, ``p = min(1, (it − W) / ramp_iterations)``):

    ==========  ========  =================  ====================  ==========
    phase       w_rec     w_perc             w_adv                 w_sam
    ==========  ========  =================  ====================  ==========
    it < W      λ_rec     λ_perc · it/W      λ_adv · 0.5 · it/W    λ_sam · it/W
    it >= W     λ_rec ·   λ_perc · (1 + p)   λ_adv · (1 + 0.5p)    λ_sam
                (1 − d·p)
    ==========  ========  =================  ====================  ==========

    with ``d = rec_decay`` (0.3 in the reference, whose selection metric is nevertheless
    MRAE; set 0 to keep the reconstruction weight). With adaptive weights the step is
    required (the reference's memory-optimised trainer omitted it, so every weight but
    the reconstruction stayed 0): calling without ``iteration`` raises :class:`ConfigError`.

    The total is capped at ``max_loss_value`` by :func:`soft_cap` (the reference clamped
    it, which zeroed every gradient above the cap). Terms whose weight is 0 are not computed.

    Args:
        lambda_rec, lambda_perceptual, lambda_adversarial, lambda_sam: base weights
            (1.0, 0.0, 0.1, 0.05: the reference defaults at 56c126d).
        reconstruction: ``"charbonnier"`` (reference), ``"l1"`` or ``"mrae"``.
        mrae_variant: zero handling of the MRAE (``"mstpp"`` refuses zero targets).
        adversarial: the adversarial pair (default :class:`SinkhornAdversarialLoss` with the reference settings).
        perceptual: the perceptual-style term (default :class:`SpectralPerceptualLoss` with ``num_bands`` bands).
        num_bands: bands of the default perceptual term (31).
        use_adaptive_weights: apply the schedule above (True).
        warmup_iterations: W (5000); ramp_iterations: length of the ramp after W (50000).
        rec_decay: d (0.3).
        max_loss_value: cap of the total (100; None: none).
    """

    def __init__(
        self,
        lambda_rec: float = 1.0,
        lambda_perceptual: float = 0.0,
        lambda_adversarial: float = 0.1,
        lambda_sam: float = 0.05,
        reconstruction: ReconstructionKind = "charbonnier",
        mrae_variant: MraeVariant = "mstpp",
        adversarial: nn.Module | None = None,
        perceptual: nn.Module | None = None,
        num_bands: int = 31,
        use_adaptive_weights: bool = True,
        warmup_iterations: int = 5000,
        ramp_iterations: int = 50000,
        rec_decay: float = 0.3,
        max_loss_value: float | None = 100.0,
    ) -> None:
        super().__init__()
        lambdas = {"lambda_rec": lambda_rec, "lambda_perceptual": lambda_perceptual,
                   "lambda_adversarial": lambda_adversarial, "lambda_sam": lambda_sam}  # fmt: skip
        bad = {key: value for key, value in lambdas.items() if not (math.isfinite(value) and value >= 0)}
        if bad:
            raise ConfigError(f"loss weights must be finite and >= 0, got {bad}")
        if reconstruction not in ("charbonnier", "l1", "mrae"):
            raise ConfigError(f"reconstruction must be 'charbonnier', 'l1' or 'mrae', got {reconstruction!r}")
        if warmup_iterations < 0 or ramp_iterations < 1 or not 0.0 <= rec_decay <= 1.0:
            raise ConfigError(
                f"need warmup_iterations >= 0, ramp_iterations >= 1 and 0 <= rec_decay <= 1, got {warmup_iterations}, "
                f"{ramp_iterations}, {rec_decay}"
            )
        if max_loss_value is not None and not max_loss_value > 0:
            raise ConfigError(f"max_loss_value must be > 0 or None, got {max_loss_value!r}")
        self.lambdas = {"reconstruction": float(lambda_rec), "perceptual": float(lambda_perceptual),
                        "adversarial": float(lambda_adversarial), "sam": float(lambda_sam)}  # fmt: skip
        self.reconstruction = reconstruction
        self.mrae_variant: MraeVariant = mrae_variant
        self.adversarial = adversarial if adversarial is not None else SinkhornAdversarialLoss()
        if perceptual is None and lambda_perceptual > 0:
            perceptual = SpectralPerceptualLoss(num_bands)
        elif perceptual is not None and lambda_perceptual == 0:
            warnings.warn("a perceptual term was given but lambda_perceptual is 0, so it is not used", stacklevel=2)
        self.perceptual = perceptual
        self.use_adaptive_weights = use_adaptive_weights
        self.warmup_iterations = int(warmup_iterations)
        self.ramp_iterations = int(ramp_iterations)
        self.rec_decay = float(rec_decay)
        self.max_loss_value = max_loss_value

    def loss_weights(self, iteration: int | None = None) -> dict[str, float]:
        """The weights ``{"reconstruction", "perceptual", "adversarial", "sam"}`` at training step ``iteration``."""
        weights = dict(self.lambdas)
        if not self.use_adaptive_weights:
            return weights
        if iteration is None:
            raise ConfigError(
                "SinkhornGANGeneratorLoss uses adaptive weights, which depend on the training step: pass "
                "iteration=<global step> (or build it with use_adaptive_weights=False)"
            )
        if iteration < self.warmup_iterations:
            ramp = iteration / self.warmup_iterations
            weights["perceptual"] *= ramp
            weights["adversarial"] *= 0.5 * ramp
            weights["sam"] *= ramp
            return weights
        progress = min(1.0, (iteration - self.warmup_iterations) / self.ramp_iterations)
        weights["reconstruction"] *= 1.0 - self.rec_decay * progress
        weights["perceptual"] *= 1.0 + progress
        weights["adversarial"] *= 1.0 + 0.5 * progress
        return weights

    def _reconstruction_term(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.reconstruction == "charbonnier":
            return charbonnier_loss(prediction, target)
        if self.reconstruction == "l1":
            return (prediction - target).abs().mean()
        return mrae_loss(prediction, target, self.mrae_variant)

    def forward(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        fake_scores: torch.Tensor | None = None,
        real_scores: torch.Tensor | None = None,
        iteration: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The generator loss and its parts.

        Args:
            prediction, target: ``(B, C, H, W)`` generated and true cubes.
            fake_scores: discriminator scores of ``prediction`` ``(B, 1, h, w)``, with the
                graph to the generator (the discriminator's parameters frozen by the caller).
            real_scores: scores of the true cube (detached here).
            iteration: training step (required with adaptive weights).

        Returns:
            ``{"loss", "reconstruction", "perceptual", "adversarial", "sam"}``: the capped
            weighted total and the unweighted terms (0 for a term whose weight is 0).
        """
        if prediction.shape != target.shape or prediction.ndim != 4:
            raise ShapeMismatchError(
                f"generator loss: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must both be "
                "(B, C, H, W) tensors of the same shape"
            )
        weights = self.loss_weights(iteration)
        dtype = _loss_dtype(prediction, target)
        zero = prediction.new_zeros((), dtype=dtype)
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            prediction, target = prediction.to(dtype), target.to(dtype)
            parts = {"reconstruction": zero, "perceptual": zero, "adversarial": zero, "sam": zero}
            if weights["reconstruction"] > 0:
                parts["reconstruction"] = self._reconstruction_term(prediction, target)
            if weights["sam"] > 0:
                parts["sam"] = sam_loss(prediction, target)
            if weights["perceptual"] > 0:
                assert self.perceptual is not None
                parts["perceptual"] = self.perceptual(prediction, target).to(dtype)
            if weights["adversarial"] > 0:
                needs_real = isinstance(self.adversarial, SinkhornAdversarialLoss)
                if fake_scores is None or (real_scores is None and needs_real):
                    raise ConfigError(
                        f"the adversarial weight is {weights['adversarial']:.4g} at this step: pass fake_scores "
                        "(and real_scores for the Sinkhorn loss) from the discriminator"
                    )
                parts["adversarial"] = self.adversarial.generator_loss(real_scores, fake_scores).to(dtype)
            total = sum(weights[name] * value for name, value in parts.items())
            parts["loss"] = soft_cap(total, self.max_loss_value)  # type: ignore[arg-type]
        return parts


__all__ = [
    "ADVERSARIAL_KINDS",
    "CHARBONNIER_EPSILON",
    "AdversarialLoss",
    "HingeAdversarialLoss",
    "NonSaturatingAdversarialLoss",
    "R1Regularizer",
    "SinkhornAdversarialLoss",
    "SinkhornDivergence",
    "SinkhornGANGeneratorLoss",
    "SpectralPerceptualLoss",
    "charbonnier_loss",
    "entropic_transport_cost",
    "make_adversarial_loss",
    "r1_gradient_penalty",
    "score_point_clouds",
    "sinkhorn_divergence",
    "soft_cap",
    "spectral_rendering_matrix",
    "squared_euclidean_cost",
    "subsample_points",
]
