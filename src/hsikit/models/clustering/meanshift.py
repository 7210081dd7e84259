"""Unrolled differentiable mean-shift of Deep Global Clustering (b05611038/HSI_global_clustering).

A fixed number of Gaussian mean-shift steps pull every pixel embedding towards a mode of
the embedding density, with a bandwidth ``h = softplus(log_bandwidth)`` that is learned by
default. The parameter keeps the reference's name ``log_bandwidth``: it holds
``softplus⁻¹(h₀) = log(e^{h₀} − 1)`` (≈ 0.5413 for ``h₀ = 1``), not ``log h``.

Windowed mode (``mode="window"``, the default)
    Each pixel ``n`` moves to the kernel-weighted mean of the *original* embeddings in its
    ``window × window`` neighbourhood, the weights being computed against the current
    iterate ``q_n``, which is detached (as in the reference)::

        w_{n,j} = exp(−‖E_j − q_n‖² / (2h²)) · valid_j,     q_n ← Σ_j w_{n,j} E_j / (Σ_j w_{n,j} + 1e-6)

    ``valid_j`` is 0 for window positions outside the image when ``mask_border=True``. The
    reference zero-pads instead and lets those zero vectors vote (weight
    ``exp(−‖q‖²/(2h²)) ≈ exp(−1/(2h²))``), which drags border pixels towards the origin;
    ``mask_border=False`` reproduces that.

    Because the iterate is detached, only the last step carries gradients (to the
    embeddings through the neighbour values and weights, and to ``h``); the earlier steps
    run without autograd. The window is visited one offset at a time, so no
    ``(B, N, window², D)`` patch tensor (the reference's ``unfold``) and no ``(N, N)``
    matrix is ever built: the largest tensor is the padded embedding map
    ``(B, D, H + window − 1, W + window − 1)`` and autograd keeps ``window²`` weight maps of
    ``(B, H, W)`` plus a few ``(B, D, H, W)`` tensors.

Global mode (``mode="global"``, exact, small inputs only)
    The reference's "blurring" variant over all pixels of each image: the iterate attends to
    itself (``z ← W z / (rowsum W + 1e-6)`` with ``W = exp(−‖z_i − z_j‖² / (2h²))``), no
    detaching. It builds a ``(B, N, N)`` kernel, so inputs with more than
    ``max_global_pixels`` pixels are refused.

Both return the shifted embeddings ``(B, D, H, W)`` (not re-normalised; their norm is ≤ 1
for unit-norm inputs).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError

MeanShiftMode = Literal["window", "global"]
MEAN_SHIFT_MODES: tuple[str, ...] = ("window", "global")
DENOMINATOR_EPSILON = 1e-6  # the reference's guard in the weighted mean


def inverse_softplus(value: float) -> float:
    """``softplus⁻¹(value) = log(e^value − 1)`` for ``value > 0`` (stable for large values)."""
    if value <= 0 or not math.isfinite(value):
        raise ConfigError(f"the bandwidth must be a finite number > 0, got {value!r}")
    return value + math.log(-math.expm1(-value))


class UnrolledMeanShift(nn.Module):
    """``num_iters`` unrolled Gaussian mean-shift steps on pixel embeddings.

    Args:
        num_iters: mean-shift steps (reference 5). 0 returns the embeddings unchanged.
        learn_bandwidth: make ``log_bandwidth`` a parameter (else a buffer).
        init_bandwidth: initial bandwidth h₀ > 0 (reference 1.0).
        mode: ``"window"`` (local, memory ``O(B·D·H·W)``) or ``"global"`` (all pixels, ``O(B·N²)``).
        window: odd side of the local window (the reference's ``kernel_size`` 5).
        mask_border: give window positions outside the image zero weight (the reference
            does not: its zero padding pulls border pixels towards the origin).
        max_global_pixels: largest ``H·W`` the global mode accepts.

    Shapes:
        embeddings ``(B, D, H, W)`` → shifted embeddings ``(B, D, H, W)``.
    """

    def __init__(
        self,
        num_iters: int = 5,
        learn_bandwidth: bool = True,
        init_bandwidth: float = 1.0,
        mode: MeanShiftMode = "window",
        window: int = 5,
        mask_border: bool = True,
        max_global_pixels: int = 4096,
    ) -> None:
        super().__init__()
        owner = "UnrolledMeanShift"
        if isinstance(num_iters, bool) or int(num_iters) != num_iters or num_iters < 0:
            raise ConfigError(f"{owner}: num_iters must be an integer >= 0, got {num_iters!r}")
        if isinstance(window, bool) or int(window) != window or window < 1 or window % 2 == 0:
            raise ConfigError(f"{owner}: window must be an odd integer >= 1, got {window!r}")
        if mode not in MEAN_SHIFT_MODES:
            raise ConfigError(f"{owner}: mode must be one of {MEAN_SHIFT_MODES}, got {mode!r}")
        if int(max_global_pixels) != max_global_pixels or max_global_pixels < 1:
            raise ConfigError(f"{owner}: max_global_pixels must be a positive integer, got {max_global_pixels!r}")
        self.num_iters = int(num_iters)
        self.mode = mode
        self.window = int(window)
        self.mask_border = bool(mask_border)
        self.max_global_pixels = int(max_global_pixels)
        initial = torch.tensor(inverse_softplus(float(init_bandwidth)), dtype=torch.float32)
        if learn_bandwidth:
            self.log_bandwidth = nn.Parameter(initial)
        else:
            self.register_buffer("log_bandwidth", initial)

    @property
    def bandwidth(self) -> torch.Tensor:
        """The kernel bandwidth ``h = softplus(log_bandwidth)`` (0-d tensor)."""
        return F.softplus(self.log_bandwidth)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Shifted embeddings ``(B, D, H, W)`` of ``embeddings`` ``(B, D, H, W)``."""
        if embeddings.ndim != 4:
            raise ShapeMismatchError(
                f"UnrolledMeanShift: expected embeddings of shape (B, D, H, W), got {tuple(embeddings.shape)}"
            )
        if self.num_iters == 0:
            return embeddings
        bandwidth = self.bandwidth.to(embeddings.dtype)
        if self.mode == "global":
            return self._global(embeddings, bandwidth)
        return self._windowed(embeddings, bandwidth)

    # ------------------------------------------------------------------ windowed
    def _windowed(self, embeddings: torch.Tensor, bandwidth: torch.Tensor) -> torch.Tensor:
        radius = self.window // 2
        padded = F.pad(embeddings, (radius, radius, radius, radius))
        padded_sq_norm = (padded * padded).sum(dim=1)
        valid = None
        if self.mask_border:
            height, width = embeddings.shape[-2:]
            ones = embeddings.new_ones(1, height, width)
            valid = F.pad(ones, (radius, radius, radius, radius))
        query = embeddings.detach()
        with torch.no_grad():
            for _ in range(self.num_iters - 1):
                query = self._window_step(padded, padded_sq_norm, valid, query, bandwidth)
        return self._window_step(padded, padded_sq_norm, valid, query.detach(), bandwidth)

    def _window_step(
        self,
        padded: torch.Tensor,
        padded_sq_norm: torch.Tensor,
        valid: torch.Tensor | None,
        query: torch.Tensor,
        bandwidth: torch.Tensor,
    ) -> torch.Tensor:
        """One step: ``query`` ``(B, D, H, W)`` → kernel-weighted window mean ``(B, D, H, W)``."""
        height, width = query.shape[-2:]
        two_h2 = 2.0 * bandwidth * bandwidth
        query_sq_norm = (query * query).sum(dim=1)
        numerator = torch.zeros_like(query)
        denominator = torch.zeros_like(query_sq_norm)
        for dy in range(self.window):
            for dx in range(self.window):
                neighbour = padded[:, :, dy : dy + height, dx : dx + width]
                sq_distance = (
                    padded_sq_norm[:, dy : dy + height, dx : dx + width]
                    + query_sq_norm
                    - 2.0 * (neighbour * query).sum(dim=1)
                ).clamp_min(0.0)
                weight = torch.exp(-sq_distance / two_h2)
                # Outside the image the padded neighbour is a zero vector, so it adds nothing to the
                # numerator; masking only the denominator keeps one saved weight map per offset.
                numerator = numerator + weight.unsqueeze(1) * neighbour
                if valid is not None:
                    weight = weight * valid[:, dy : dy + height, dx : dx + width]
                denominator = denominator + weight
        return numerator / (denominator.unsqueeze(1) + DENOMINATOR_EPSILON)

    # ------------------------------------------------------------------ global
    def _global(self, embeddings: torch.Tensor, bandwidth: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = embeddings.shape
        pixels = height * width
        if pixels > self.max_global_pixels:
            gib = batch * pixels * pixels * embeddings.element_size() / 2**30
            raise ConfigError(
                f"UnrolledMeanShift(mode='global'): an input of {height}×{width} = {pixels} pixels needs a "
                f"(B, N, N) = ({batch}, {pixels}, {pixels}) kernel (≈{gib:.2f} GiB per step), over "
                f"max_global_pixels={self.max_global_pixels}; use mode='window', crop or tile the input, "
                "or raise max_global_pixels if the memory is there"
            )
        two_h2 = 2.0 * bandwidth * bandwidth
        points = embeddings.reshape(batch, channels, pixels).transpose(1, 2)
        for _ in range(self.num_iters):
            sq_norm = (points * points).sum(dim=-1, keepdim=True)
            sq_distance = (sq_norm + sq_norm.transpose(1, 2) - 2.0 * points @ points.transpose(1, 2)).clamp_min(0.0)
            kernel = torch.exp(-sq_distance / two_h2)
            points = (kernel @ points) / (kernel.sum(dim=-1, keepdim=True) + DENOMINATOR_EPSILON)
        return points.transpose(1, 2).reshape(batch, channels, height, width)


__all__ = ["MEAN_SHIFT_MODES", "MeanShiftMode", "UnrolledMeanShift", "inverse_softplus"]
