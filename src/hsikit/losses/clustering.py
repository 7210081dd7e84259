"""Self-supervised losses of Deep Global Clustering (b05611038/HSI_global_clustering), with the reference's bugs fixed.

Notation: per view, unit-norm encoder embeddings ``z`` ``(B, D, H, W)``, soft assignments
``p`` ``(B, K, H, W)`` (channels-first, as :class:`hsikit.models.clustering.ClusteringOutput`
gives them), centroids ``C`` ``(K, D)``; M is the number of (valid) pixels and
``p̄_k = (1/M) Σ_n p_{n,k}`` the cluster usage. Optional ``mask`` arguments ``(B, H, W)``
bool restrict a loss to valid pixels (e.g. not the padding of a padded batch).

=============  ===========================================================================
compactness    ``(1/M) Σ_{n,k} p_{n,k} · max(0, 1 − z_n · c_k)`` (pre-shift embeddings;
               as the reference).
balance        ``KL(p̄ ‖ U) = Σ_k p̄_k log p̄_k + log K`` over the active clusters, ≥ 0 and 0
               for uniform usage. **Fix:** the reference added ``+λ·H(p̄)`` (the entropy)
               to a loss it minimised, which *rewards* collapse onto few clusters.
orthogonality  ``‖C Cᵀ − I‖²_F`` over the active rows (diagonal terms included, as the
               reference). hsikit's centroids are an EMA buffer, so with them this term
               carries no gradient: it is a diagnostic (the gradient-free counterpart is
               ``CentroidDictionary(orthogonality_step=...)``); it trains centroids that
               require gradients.
consistency    ``mean_n ½[KL(p1_n ‖ p2_n) + KL(p2_n ‖ p1_n)]`` with 1e-6 added to both
               distributions, over the pixels of view 1 whose scene point is also seen by
               view 2, p2 being resampled (bilinear) at that point. **Fix:** the reference
               compared ``p1[i, j]`` with ``p2[i, j]`` although the crops are offset and
               independently warped, i.e. different scene points. The geometry of each
               view is a :class:`ViewGeometry` (crop origin + the ``affine_grid`` matrix).
uniform        optional. ``"expected"``: ``−(1/K) Σ_k log max(p_{n,k}, 1e-6)`` averaged
               over pixels, the expectation of the reference's CE against a random
               balanced label vector (``"sampled"`` reproduces that noisy version). It
               pulls every pixel towards a uniform assignment, against compactness.
sinkhorn       optional, the principled replacement (SwAV, Caron et al. 2020): targets
               ``q`` from a few Sinkhorn–Knopp iterations on ``exp(logits)`` give every
               active cluster equal total mass and every pixel a distribution; the loss
               is the cross-entropy ``−mean_n Σ_k q_{n,k} log p_{n,k}`` (targets without
               gradient).
recon          optional, hsikit (as IDEC adds to DEC): mean squared error between a view's
               input spectra and their decoding from the embeddings
               (:func:`reconstruction_error`); added by the training task, not by
               :class:`ClusteringLoss`, because the decoder belongs to the model.
=============  ===========================================================================

:class:`ClusteringLoss` sums them like the reference's ``train_step``::

    L = comp(1) + comp(2) + λ_unif·mean_v unif(v) + λ_sink·mean_v sink(v)
        + λ_orth·orth + λ_bal·mean_v bal(v) + λ_cons·cons
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError

PROBABILITY_EPSILON = 1e-6  # the reference's smoothing in KL and its clamp in the uniform CE
UNIFORM_MODES: tuple[str, ...] = ("expected", "sampled")


# --------------------------------------------------------------------------- helpers
def _check_probs(probs: torch.Tensor, name: str) -> None:
    if probs.ndim != 4:
        raise ShapeMismatchError(
            f"{name}: expected channels-first probabilities (B, K, H, W), got {tuple(probs.shape)}; "
            "a (B, H, W, K) map needs .permute(0, 3, 1, 2)"
        )


def _pixel_rows(maps: torch.Tensor, mask: torch.Tensor | None, name: str) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(M, C)`` rows (channels last before the reshape), masked if asked."""
    rows = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
    if mask is None:
        return rows
    if mask.shape != (maps.shape[0], *maps.shape[2:]):
        raise ShapeMismatchError(
            f"{name}: mask {tuple(mask.shape)} does not match maps {tuple(maps.shape)}; give a (B, H, W) bool mask"
        )
    return rows[mask.reshape(-1).to(torch.bool)]


def _active_mask(active: torch.Tensor | None, clusters: int, device: torch.device) -> torch.Tensor:
    if active is None:
        return torch.ones(clusters, dtype=torch.bool, device=device)
    if active.shape != (clusters,):
        raise ShapeMismatchError(f"active mask of shape {tuple(active.shape)} does not match K={clusters} clusters")
    return active.to(device=device, dtype=torch.bool)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where the 0/1 ``mask`` is 1; 0 (still connected to the graph) for an empty mask."""
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


# --------------------------------------------------------------------------- single terms
def compactness_loss(
    embeddings: torch.Tensor, probs: torch.Tensor, centroids: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``(1/M) Σ_{n,k} p_{n,k} · max(0, 1 − z_n · c_k)``; embeddings ``(B, D, H, W)``, probs ``(B, K, H, W)``."""
    _check_probs(probs, "compactness_loss")
    if embeddings.shape[0] != probs.shape[0] or embeddings.shape[2:] != probs.shape[2:]:
        raise ShapeMismatchError(
            f"compactness_loss: embeddings {tuple(embeddings.shape)} and probs {tuple(probs.shape)} must share B, H, W"
        )
    if centroids.shape != (probs.shape[1], embeddings.shape[1]):
        raise ShapeMismatchError(
            f"compactness_loss: centroids must be (K, D) = ({probs.shape[1]}, {embeddings.shape[1]}), "
            f"got {tuple(centroids.shape)}"
        )
    points = _pixel_rows(embeddings, mask, "compactness_loss")
    weights = _pixel_rows(probs, mask, "compactness_loss")
    distance = (1.0 - points @ centroids.to(points.dtype).t()).clamp_min(0.0)
    return (weights * distance).sum() / max(points.shape[0], 1)


def cluster_usage(probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``p̄`` ``(K,)``: the mean of probs ``(B, K, H, W)`` over (valid) pixels."""
    _check_probs(probs, "cluster_usage")
    rows = _pixel_rows(probs, mask, "cluster_usage")
    return rows.sum(dim=0) / max(rows.shape[0], 1)


def balance_loss(
    probs: torch.Tensor, active: torch.Tensor | None = None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``KL(p̄ ‖ U) = Σ_k p̄_k log p̄_k + log K`` over the active clusters (≥ 0; 0 for uniform usage).

    ``p̄`` is re-normalised over the active clusters (inactive ones have probability 0
    anyway), ``0 log 0 = 0``.
    """
    usage = cluster_usage(probs, mask)
    keep = _active_mask(active, usage.shape[0], usage.device)
    usage = usage[keep]
    tiny = torch.finfo(usage.dtype).tiny
    usage = usage / usage.sum().clamp_min(tiny)
    # p log p with the log's argument floored: the same value (0 log 0 = 0), but a finite gradient at p = 0,
    # where xlogy's gradient log(p) + 1 is -inf and turned every gradient NaN (an unused cluster, common at low
    # temperatures or with many clusters).
    return (usage * usage.clamp_min(tiny).log()).sum() + math.log(int(keep.sum()))


def orthogonality_loss(centroids: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
    """``‖C Cᵀ − I‖²_F`` over the active rows of ``centroids`` ``(K, D)``."""
    if centroids.ndim != 2:
        raise ShapeMismatchError(f"orthogonality_loss: centroids must be (K, D), got {tuple(centroids.shape)}")
    rows = centroids[_active_mask(active, centroids.shape[0], centroids.device)]
    gram = rows @ rows.t()
    return (gram - torch.eye(rows.shape[0], dtype=gram.dtype, device=gram.device)).pow(2).sum()


def uniform_assignment_loss(
    probs: torch.Tensor,
    mode: str = "expected",
    active: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cross-entropy of every pixel against a uniform cluster label (the reference's optional term).

    ``mode="expected"``: ``mean_n −(1/K) Σ_k log max(p_{n,k}, 1e-6)`` (deterministic);
    ``mode="sampled"``: the reference — NLL of ``log max(p, 1e-6)`` against a randomly
    permuted vector holding ⌊M/K⌋ copies of each cluster id (then ids 0, 1, … for the
    remainder). Only active clusters are used.
    """
    if mode not in UNIFORM_MODES:
        raise ConfigError(f"uniform_assignment_loss: mode must be one of {UNIFORM_MODES}, got {mode!r}")
    _check_probs(probs, "uniform_assignment_loss")
    keep = _active_mask(active, probs.shape[1], probs.device)
    rows = _pixel_rows(probs, mask, "uniform_assignment_loss")[:, keep]
    log_probs = rows.clamp_min(PROBABILITY_EPSILON).log()
    if rows.shape[0] == 0:
        return log_probs.sum() * 0.0
    if mode == "expected":
        return -log_probs.mean()
    pixels, clusters = rows.shape
    labels = torch.arange(clusters).repeat_interleave(pixels // clusters)
    labels = torch.cat([labels, torch.arange(pixels - labels.numel())])
    draw_device = generator.device if generator is not None else torch.device("cpu")
    labels = labels[torch.randperm(pixels, generator=generator, device=draw_device).cpu()]
    return F.nll_loss(log_probs, labels.to(rows.device))


@torch.no_grad()
def sinkhorn_targets(
    logits: torch.Tensor, n_iters: int = 3, active: torch.Tensor | None = None
) -> torch.Tensor:
    """Balanced soft targets ``(M, K)`` from logits ``(M, K)`` by Sinkhorn–Knopp (SwAV).

    Starting from ``Q ∝ exp(logits)``, alternately scale the columns (active clusters) to
    total mass ``M / K_active`` and the rows (pixels) to 1. The result ends on a row
    normalisation, so every row is a distribution; the column sums approach ``M / K``.
    Inactive clusters get 0. Computed in float64 in the log domain (no overflow).
    """
    if logits.ndim != 2:
        raise ShapeMismatchError(f"sinkhorn_targets: logits must be (M, K), got {tuple(logits.shape)}")
    keep = _active_mask(active, logits.shape[1], logits.device)
    scores = logits.double().masked_fill(~keep, float("-inf"))
    pixels, clusters = scores.shape[0], int(keep.sum())
    log_q = scores - scores.logsumexp(dim=1, keepdim=True)
    log_column_target = math.log(pixels / clusters)
    for _ in range(n_iters):
        column = log_q.logsumexp(dim=0, keepdim=True)
        log_q = torch.where(keep, log_q - column + log_column_target, log_q)
        log_q = log_q - log_q.logsumexp(dim=1, keepdim=True)
    return log_q.exp().to(logits.dtype)


def sinkhorn_balanced_loss(
    logits: torch.Tensor,
    n_iters: int = 3,
    active: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``−mean_n Σ_k q_{n,k} log p_{n,k}``: Sinkhorn targets ``q`` of logits ``(B, K, H, W)``, ``p = softmax``."""
    _check_probs(logits, "sinkhorn_balanced_loss")
    rows = _pixel_rows(logits, mask, "sinkhorn_balanced_loss")
    if rows.shape[0] == 0:
        return rows.sum() * 0.0
    keep = _active_mask(active, rows.shape[1], rows.device)
    targets = sinkhorn_targets(rows, n_iters, keep)
    log_probs = torch.log_softmax(rows.masked_fill(~keep, float("-inf")), dim=1)
    return -(targets[:, keep] * log_probs[:, keep]).sum(dim=1).mean()


def reconstruction_error(
    decoded: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error over (valid) pixels and bands of decoded spectra vs the input, both ``(B, C, H, W)``.

    The optional reconstruction term (IDEC's answer to DEC distorting its embedding space).
    """
    if decoded.shape != target.shape:
        raise ShapeMismatchError(
            f"reconstruction_error: decoded {tuple(decoded.shape)} and target {tuple(target.shape)} must match"
        )
    errors = _pixel_rows((decoded - target.to(decoded.dtype)).pow(2), mask, "reconstruction_error")
    if errors.shape[0] == 0:
        return errors.sum() * 0.0
    return errors.mean()


def symmetric_kl(p: torch.Tensor, q: torch.Tensor, dim: int = 1, eps: float = PROBABILITY_EPSILON) -> torch.Tensor:
    """``½[KL(p‖q) + KL(q‖p)]`` along ``dim`` with ``eps`` added to both (the reference's smoothing)."""
    p = p + eps
    q = q + eps
    log_ratio = p.log() - q.log()
    return 0.5 * ((p - q) * log_ratio).sum(dim=dim)


# --------------------------------------------------------------------------- view geometry
class ViewGeometry(NamedTuple):
    """Where each pixel of an augmented view comes from in the common scene frame.

    A view is made by cropping the scene (after any padding the augmentation applied to the
    whole image) at integer or real ``origin`` and warping the crop with
    ``grid_sample(crop, affine_grid(theta, crop.shape, align_corners=False))``; the view has
    the crop's size. Output pixel ``(i, j)`` then samples normalised crop coordinates
    ``theta @ [u, v, 1]`` with ``u = (2j + 1)/w − 1``, ``v = (2i + 1)/h − 1``.

    Attributes:
        origin: ``(B, 2)`` scene (row, column) of the crop's top-left pixel, pixels.
        theta: ``(B, 2, 3)`` affine matrices given to ``affine_grid``, or None for no warp.
    """

    origin: torch.Tensor
    theta: torch.Tensor | None = None


def _identity_theta(batch: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype, device=device).expand(batch, 2, 3)


def _check_geometry(geometry: ViewGeometry, batch: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    origin = torch.as_tensor(geometry.origin)
    if origin.shape != (batch, 2):
        raise ShapeMismatchError(
            f"{name}: origin must be (B, 2) = ({batch}, 2) (row, column), got {tuple(origin.shape)}"
        )
    origin = origin.double()
    if geometry.theta is None:
        theta = _identity_theta(batch, torch.float64, origin.device)
    else:
        theta = torch.as_tensor(geometry.theta).double().to(origin.device)
        if theta.shape != (batch, 2, 3):
            raise ShapeMismatchError(f"{name}: theta must be (B, 2, 3), got {tuple(theta.shape)}")
    return origin, theta


def view_correspondence(
    geometry1: ViewGeometry, geometry2: ViewGeometry, size1: tuple[int, int], size2: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each pixel of view 1, where its scene point lies in view 2.

    Args:
        geometry1, geometry2: the two views' geometry (batch B each).
        size1, size2: ``(h, w)`` of view 1 and view 2 (each equal to its crop's size).

    Returns:
        ``grid`` ``(B, h1, w1, 2)``: normalised ``(x, y)`` coordinates in view 2 for
        ``grid_sample(..., align_corners=False)``; ``valid`` ``(B, h1, w1)`` bool: the pixel
        samples a point inside crop 1 (not a reflected border) and its scene point lies
        inside crop 2 and inside view 2.
    """
    height1, width1 = size1
    height2, width2 = size2
    batch = torch.as_tensor(geometry1.origin).shape[0]
    origin1, theta1 = _check_geometry(geometry1, batch, "view_correspondence(geometry1)")
    origin2, theta2 = _check_geometry(geometry2, batch, "view_correspondence(geometry2)")
    device = origin1.device
    rows = torch.arange(height1, dtype=torch.float64, device=device)
    cols = torch.arange(width1, dtype=torch.float64, device=device)
    v, u = torch.meshgrid((2 * rows + 1) / height1 - 1, (2 * cols + 1) / width1 - 1, indexing="ij")
    homogeneous = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(-1, 3)  # (P, 3) as (x, y, 1)
    source1 = homogeneous @ theta1.transpose(1, 2)  # (B, P, 2) normalised (x, y) in crop 1
    scene_col = ((source1[..., 0] + 1) * width1 - 1) / 2 + origin1[:, 1:2]
    scene_row = ((source1[..., 1] + 1) * height1 - 1) / 2 + origin1[:, 0:1]
    # Into crop 2's normalised coordinates, then through the inverse of view 2's affine map.
    x2 = (2 * (scene_col - origin2[:, 1:2]) + 1) / width2 - 1
    y2 = (2 * (scene_row - origin2[:, 0:1]) + 1) / height2 - 1
    linear, shift = theta2[:, :, :2], theta2[:, :, 2]
    target = torch.stack([x2, y2], dim=-1) - shift.unsqueeze(1)
    output2 = target @ torch.linalg.inv(linear).transpose(1, 2)  # (B, P, 2)
    inside = (
        (source1.abs() <= 1).all(dim=-1)
        & (x2.abs() <= 1)
        & (y2.abs() <= 1)
        & (output2.abs() <= 1).all(dim=-1)
    )
    grid = output2.reshape(batch, height1, width1, 2)
    return grid, inside.reshape(batch, height1, width1)


def align_to_view(values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinearly resample view-2 maps ``(B, K, h2, w2)`` at ``grid`` ``(B, h1, w1, 2)`` → ``(B, K, h1, w1)``.

    Border padding (never zeros), so resampled probabilities still sum to 1.
    """
    return F.grid_sample(values, grid.to(values.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def consistency_loss(
    probs1: torch.Tensor,
    probs2: torch.Tensor,
    geometry1: ViewGeometry | None = None,
    geometry2: ViewGeometry | None = None,
    mask1: torch.Tensor | None = None,
    mask2: torch.Tensor | None = None,
    eps: float = PROBABILITY_EPSILON,
) -> torch.Tensor:
    """Symmetric KL between the two views' assignments at the same scene points.

    Args:
        probs1, probs2: ``(B, K, h1, w1)`` and ``(B, K, h2, w2)``.
        geometry1, geometry2: each view's :class:`ViewGeometry`. Both None means the
            views are already pixel-aligned (same scene point at the same index, e.g.
            only spectral augmentation); the reference *assumed* this for offset,
            independently warped crops, which is wrong.
        mask1, mask2: optional ``(B, h, w)`` valid-pixel masks of each view.

    Returns:
        mean over the overlapping pixels of view 1 of ``½[KL(p1‖p2) + KL(p2‖p1)]``
        (0 when the views do not overlap).
    """
    _check_probs(probs1, "consistency_loss")
    _check_probs(probs2, "consistency_loss")
    if probs1.shape[:2] != probs2.shape[:2]:
        raise ShapeMismatchError(
            f"consistency_loss: the views must share B and K, got {tuple(probs1.shape)} and {tuple(probs2.shape)}"
        )
    if (geometry1 is None) != (geometry2 is None):
        raise ConfigError(
            "consistency_loss: give the geometry of both views or of neither (neither = pixel-aligned views)"
        )
    if geometry1 is None or geometry2 is None:
        if probs1.shape != probs2.shape:
            raise ShapeMismatchError(
                f"consistency_loss: pixel-aligned views need the same shape, got {tuple(probs1.shape)} and "
                f"{tuple(probs2.shape)}; pass each view's ViewGeometry"
            )
        aligned = probs2
        valid = torch.ones(probs1.shape[0], *probs1.shape[2:], dtype=torch.bool, device=probs1.device)
        if mask2 is not None:
            valid = valid & mask2.to(torch.bool)
    else:
        grid, valid = view_correspondence(geometry1, geometry2, tuple(probs1.shape[2:]), tuple(probs2.shape[2:]))
        grid, valid = grid.to(probs1.device), valid.to(probs1.device)
        aligned = align_to_view(probs2, grid)
        if mask2 is not None:
            sampled_mask = align_to_view(mask2.to(probs2.dtype).unsqueeze(1), grid)[:, 0]
            valid = valid & (sampled_mask > 0.999)
    if mask1 is not None:
        valid = valid & mask1.to(torch.bool)
    divergence = symmetric_kl(probs1, aligned, dim=1, eps=eps)
    return _masked_mean(divergence, valid.to(divergence.dtype))


# --------------------------------------------------------------------------- the objective
class ClusteringView(Protocol):
    """What :class:`ClusteringLoss` needs of a view (a ``ClusteringOutput`` has it)."""

    embeddings: torch.Tensor
    logits: torch.Tensor
    probs: torch.Tensor


class ClusteringLossOutput(NamedTuple):
    """``total`` (0-d) and the unweighted ``parts``: comp1, comp2, unif, sink, orth, bal, cons."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


class ClusteringLoss(nn.Module):
    """The Deep Global Clustering objective on two augmented views.

    Args:
        compactness_weight: weight of each view's compactness term (reference 1).
        uniform_weight: λ_unif of the optional uniform-assignment term (reference scripts 1.0;
            hsikit 0 — it fights compactness, see the module docstring).
        uniform_mode: ``"expected"`` or ``"sampled"`` (the reference).
        sinkhorn_weight: λ of the Sinkhorn-balanced cross-entropy (hsikit option, 0 = off).
        sinkhorn_iters: Sinkhorn–Knopp iterations.
        orthogonality_weight: λ_orth (reference scripts 0.1).
        balance_weight: λ_bal of KL(p̄ ‖ U) (reference scripts 1.0, with the wrong sign there).
        consistency_weight: λ_cons (reference scripts 1.0).

    ``forward(view1, view2, centroids, ...)`` returns a :class:`ClusteringLossOutput`; terms
    whose weight is 0 are still reported (computed without gradient).
    """

    def __init__(
        self,
        compactness_weight: float = 1.0,
        uniform_weight: float = 0.0,
        uniform_mode: str = "expected",
        sinkhorn_weight: float = 0.0,
        sinkhorn_iters: int = 3,
        orthogonality_weight: float = 0.1,
        balance_weight: float = 1.0,
        consistency_weight: float = 1.0,
    ) -> None:
        super().__init__()
        weights = {
            "compactness_weight": compactness_weight,
            "uniform_weight": uniform_weight,
            "sinkhorn_weight": sinkhorn_weight,
            "orthogonality_weight": orthogonality_weight,
            "balance_weight": balance_weight,
            "consistency_weight": consistency_weight,
        }
        for name, value in weights.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"ClusteringLoss: {name} must be a finite number >= 0, got {value!r}")
        if uniform_mode not in UNIFORM_MODES:
            raise ConfigError(f"ClusteringLoss: uniform_mode must be one of {UNIFORM_MODES}, got {uniform_mode!r}")
        if int(sinkhorn_iters) != sinkhorn_iters or sinkhorn_iters < 1:
            raise ConfigError(f"ClusteringLoss: sinkhorn_iters must be an integer >= 1, got {sinkhorn_iters!r}")
        self.compactness_weight = float(compactness_weight)
        self.uniform_weight = float(uniform_weight)
        self.uniform_mode = uniform_mode
        self.sinkhorn_weight = float(sinkhorn_weight)
        self.sinkhorn_iters = int(sinkhorn_iters)
        self.orthogonality_weight = float(orthogonality_weight)
        self.balance_weight = float(balance_weight)
        self.consistency_weight = float(consistency_weight)

    def forward(
        self,
        view1: ClusteringView,
        view2: ClusteringView,
        centroids: torch.Tensor,
        *,
        active: torch.Tensor | None = None,
        geometry1: ViewGeometry | None = None,
        geometry2: ViewGeometry | None = None,
        mask1: torch.Tensor | None = None,
        mask2: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> ClusteringLossOutput:
        """Total loss and parts for two views (see :func:`consistency_loss` for the geometry)."""
        views = ((view1, mask1), (view2, mask2))

        def weighted(weight: float, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
            if weight > 0:
                return compute()
            with torch.no_grad():
                return compute()

        comp = [
            weighted(self.compactness_weight, lambda v=v, m=m: compactness_loss(v.embeddings, v.probs, centroids, m))
            for v, m in views
        ]
        unif = [
            weighted(
                self.uniform_weight,
                lambda v=v, m=m: uniform_assignment_loss(v.probs, self.uniform_mode, active, m, generator),
            )
            for v, m in views
        ]
        sink = [
            weighted(
                self.sinkhorn_weight, lambda v=v, m=m: sinkhorn_balanced_loss(v.logits, self.sinkhorn_iters, active, m)
            )
            for v, m in views
        ]
        bal = [weighted(self.balance_weight, lambda v=v, m=m: balance_loss(v.probs, active, m)) for v, m in views]
        orth = weighted(self.orthogonality_weight, lambda: orthogonality_loss(centroids, active))
        cons = weighted(
            self.consistency_weight,
            lambda: consistency_loss(view1.probs, view2.probs, geometry1, geometry2, mask1, mask2),
        )
        parts = {
            "comp1": comp[0],
            "comp2": comp[1],
            "unif": (unif[0] + unif[1]) / 2,
            "sink": (sink[0] + sink[1]) / 2,
            "orth": orth,
            "bal": (bal[0] + bal[1]) / 2,
            "cons": cons,
        }
        total = (
            self.compactness_weight * (parts["comp1"] + parts["comp2"])
            + self.uniform_weight * parts["unif"]
            + self.sinkhorn_weight * parts["sink"]
            + self.orthogonality_weight * parts["orth"]
            + self.balance_weight * parts["bal"]
            + self.consistency_weight * parts["cons"]
        )
        return ClusteringLossOutput(total, parts)


__all__ = [
    "ClusteringLoss",
    "ClusteringLossOutput",
    "ClusteringView",
    "ViewGeometry",
    "align_to_view",
    "balance_loss",
    "cluster_usage",
    "compactness_loss",
    "consistency_loss",
    "orthogonality_loss",
    "reconstruction_error",
    "sinkhorn_balanced_loss",
    "sinkhorn_targets",
    "symmetric_kl",
    "uniform_assignment_loss",
    "view_correspondence",
]
