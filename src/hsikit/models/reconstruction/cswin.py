"""The noise-robust CSWin generator of CSWIN v2: RGB → 31-band spectra, a U-Net of dual-attention blocks.

Reimplemented for hsikit from the description of ``TSOR666/Hyperspectral-Imaging-Toolkit``,
folder ``CSWIN v2/`` (``generator_v3.py``) in ``specs/003_cswin_gan.md`` §2, with the fixes
of its §7: the spatial attention is real cross-shaped-window attention (Dong et al., CVPR
2022; :class:`~hsikit.models.layers.cswin_attention.CSWinAttention`) and the spectral
attention is transposed channel attention (MST++ S-MSA / Restormer MDTA;
:class:`~hsikit.models.layers.channel_attention.ChannelSelfAttention`).
``cswin_mode="axial_legacy"`` restores the reference's row/column attention for comparison.

Architecture (C = ``base_channels``, ``s0, s1, s2`` = ``split_sizes``, every norm an
:class:`~hsikit.models.layers.normalization.AdaptiveGroupNorm` with ``gcd(channels, norm_groups)`` groups)::

    x   = rgb + Denoise(rgb)                       Conv3×3(3→C/2)-GELU-Conv3×3(C/2→C/2)-GELU-Conv3×3(C/2→3)
    emb = GELU(GN(Conv3×3(3→C)(x)))
    e1  = DTB(C, s0)²(emb)                         encoder stage 1
    e2  = DTB(2C, s1)²(Down(C→2C)(e1))             encoder stage 2
    b   = DTB(4C, s2)²(Down(2C→4C)(e2))            transformer bottleneck
    d2  = DTB(2C, s1)²(Conv1×1(4C→2C)(cat[Up(4C→2C)(b), e2]))      symmetric decoder (default)
    d1  = DTB(C, s0)²(Conv1×1(2C→C)(cat[Up(2C→C)(d2), e1]))
    y   = Conv3×3(C→out)(d1 + emb), then the output activation

``Down`` resizes bilinearly to ``(max(1, ⌊h/2⌋), max(1, ⌊w/2⌋))`` then Conv3×3-GN-GELU;
``Up`` resizes bilinearly to the skip's size then Conv3×3-GN-GELU, so any ``H × W``
(down to 1 × 1) works without padding the image. With ``symmetric_decoder=False`` the
second decoder level runs its blocks on the 4C concatenation and compresses afterwards,
as the reference does (``d2 = Conv1×1(4C→2C)(DTB(4C, s1)²(cat[...]))``).

Dual transformer block ``DTB(c, s)``::

    x = x + ChannelSelfAttention(GN(x))            spectral attention, heads = num_heads
    x = x + CSWinAttention(GN(x))                  spatial attention, stripes of width s
    x = x + FFN(GN(x))                             Conv1×1(c→4c)-GELU-DWBlock(4c→4c)-Conv1×1(4c→c)
    x = NoiseAware(x)

``DWBlock(i→o)`` = DWConv3×3(i)-Conv1×1(i→o)-GN-GELU. ``NoiseAware(x)``: noise map
``n = σ(Conv3×3(c/4→1)(GELU(Conv3×3(c→c/4)(x))))``, features ``f = DWBlock(c→c)²(x)``, gate
``g = σ(Conv1×1(c+1→c)(cat[f, n]))``, output ``x + g ⊙ f``.

Output activation and warm-up schedule (``output_activation``):

* ``"none"`` (default): linear output; ``"sigmoid"``: ``σ(y)``; ``"tanh"``: ``(tanh(y) + 1) / 2``;
* ``"delayed_sigmoid"``: linear while ``iteration_count <= activation_delay_iters``, ``σ(y)``
  from the next step on (the switch is abrupt, as in the reference);
* while the output is linear (``"none"``, or ``"delayed_sigmoid"`` before its switch) the raw
  output is clamped to ``[−clamp_range, clamp_range]`` — for every step when
  ``clamp_after_iters = 0``, otherwise only while ``iteration_count < clamp_after_iters``.
  The reference clamped in training only; here the clamp depends on the step alone, so
  evaluation sees the same function as training. ``clamp_range=None`` disables it.

``iteration_count`` is a saved ``long`` buffer. A trainer sets it with :meth:`set_iteration`
every step; otherwise every forward pass in training mode adds 1 after computing its output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models.layers.channel_attention import ChannelSelfAttention
from hsikit.models.layers.cswin_attention import CHECKPOINT_MIN_TOKENS, CSWIN_MODES, CSWinMode, build_spatial_attention
from hsikit.models.layers.normalization import AdaptiveGroupNorm
from hsikit.models.layers.safe_padding import PadMode, check_pad_mode
from hsikit.models.registry import register_model

OutputActivation = Literal["none", "sigmoid", "tanh", "delayed_sigmoid"]
OUTPUT_ACTIVATIONS: tuple[str, ...] = get_args(OutputActivation)


class DepthwiseBlock(nn.Module):
    """``DWConv3×3(i) → Conv1×1(i→o) → GN(o) → GELU`` on ``(B, i, H, W)`` → ``(B, o, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int = 8) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)
        self.norm = AdaptiveGroupNorm(out_channels, norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, i, H, W)`` → ``(B, o, H, W)``."""
        return F.gelu(self.norm(self.pointwise(self.depthwise(x))))


class FeedForward(nn.Module):
    """``Conv1×1(c→e·c) → GELU → DepthwiseBlock(e·c→e·c) → Conv1×1(e·c→c)`` on ``(B, c, H, W)``."""

    def __init__(self, channels: int, expansion: int = 4, norm_groups: int = 8) -> None:
        super().__init__()
        hidden = channels * expansion
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.mix = DepthwiseBlock(hidden, hidden, norm_groups)
        self.reduce = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c, H, W)`` → ``(B, c, H, W)``."""
        return self.reduce(self.mix(F.gelu(self.expand(x))))


class NoiseAwareGate(nn.Module):
    """Noise-aware gating: ``x + σ(Conv1×1(cat[f, n])) ⊙ f`` with a per-pixel noise estimate ``n``.

    ``n = σ(Conv3×3(c/4→1)(GELU(Conv3×3(c→c/4)(x))))`` is a ``(B, 1, H, W)`` map in (0, 1);
    ``f = DepthwiseBlock(c→c)(DepthwiseBlock(c→c)(x))``. The gate lets the block suppress its
    refinement where the estimated noise is high.
    """

    def __init__(self, channels: int, norm_groups: int = 8) -> None:
        super().__init__()
        reduced = max(1, channels // 4)
        self.noise = nn.Sequential(
            nn.Conv2d(channels, reduced, 3, padding=1), nn.GELU(), nn.Conv2d(reduced, 1, 3, padding=1), nn.Sigmoid()
        )
        self.features = nn.Sequential(
            DepthwiseBlock(channels, channels, norm_groups), DepthwiseBlock(channels, channels, norm_groups)
        )
        self.gate = nn.Conv2d(channels + 1, channels, 1)

    def noise_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c, H, W)`` → the estimated noise level ``(B, 1, H, W)`` in (0, 1)."""
        return self.noise(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c, H, W)`` → ``(B, c, H, W)``."""
        features = self.features(x)
        gate = torch.sigmoid(self.gate(torch.cat([features, self.noise_map(x)], dim=1)))
        return x + gate * features


class DualTransformerBlock(nn.Module):
    """Spectral attention, CSWin spatial attention, feed-forward (each pre-normed, residual), then the noise gate.

    Args:
        channels: channels c.
        num_heads: heads of both attentions (divide c; >= 2 for stripe mode).
        split_size: CSWin stripe width.
        norm_groups: group-norm group bound.
        cswin_mode: ``"stripe"`` (CSWin) or ``"axial_legacy"`` (the reference's row/column attention).
        pad_mode: padding of partial stripes.
        ffn_expansion: hidden width factor of the feed-forward.
        checkpoint_min_tokens: gradient-checkpoint threshold of the spatial attention.

    Shapes: ``(B, c, H, W)`` → ``(B, c, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        split_size: int,
        norm_groups: int = 8,
        cswin_mode: CSWinMode = "stripe",
        pad_mode: PadMode = "reflect",
        ffn_expansion: int = 4,
        checkpoint_min_tokens: int | None = CHECKPOINT_MIN_TOKENS,
    ) -> None:
        super().__init__()
        self.norm_spectral = AdaptiveGroupNorm(channels, norm_groups)
        self.spectral_attention = ChannelSelfAttention(channels, num_heads, norm_groups)
        self.norm_spatial = AdaptiveGroupNorm(channels, norm_groups)
        self.spatial_attention = build_spatial_attention(
            cswin_mode, channels, num_heads, split_size, pad_mode, checkpoint_min_tokens
        )
        self.norm_ffn = AdaptiveGroupNorm(channels, norm_groups)
        self.ffn = FeedForward(channels, ffn_expansion, norm_groups)
        self.noise_gate = NoiseAwareGate(channels, norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c, H, W)`` → ``(B, c, H, W)``."""
        x = x + self.spectral_attention(self.norm_spectral(x))
        x = x + self.spatial_attention(self.norm_spatial(x))
        x = x + self.ffn(self.norm_ffn(x))
        return self.noise_gate(x)


class Downsample(nn.Module):
    """Bilinear resize to ``(max(1, ⌊h/2⌋), max(1, ⌊w/2⌋))`` → Conv3×3 → GN → GELU."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm = AdaptiveGroupNorm(out_channels, norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, i, h, w)`` → ``(B, o, max(1, h//2), max(1, w//2))``."""
        size = (max(1, x.shape[-2] // 2), max(1, x.shape[-1] // 2))
        resized = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.gelu(self.norm(self.conv(resized)))


class Upsample(nn.Module):
    """Bilinear resize to a target size (twice the input in a U-Net) → Conv3×3 → GN → GELU."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm = AdaptiveGroupNorm(out_channels, norm_groups)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B, i, h, w)`` → ``(B, o, *size)``."""
        resized = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.gelu(self.norm(self.conv(resized)))


def _block_pair(channels: int, split_size: int, **kwargs: object) -> nn.Sequential:
    return nn.Sequential(
        DualTransformerBlock(channels, split_size=split_size, **kwargs),  # type: ignore[arg-type]
        DualTransformerBlock(channels, split_size=split_size, **kwargs),  # type: ignore[arg-type]
    )


@register_model(
    "cswin_generator",
    task="reconstruction",
    tiny={"base_channels": 8, "num_heads": 2, "split_sizes": [2, 2, 2], "checkpoint_min_tokens": None},
)
class NoiseRobustCSWinGenerator(nn.Module):
    """CSWIN v2 noise-robust CSWin generator: RGB ``(B, 3, H, W)`` → spectra ``(B, 31, H, W)``, any ``H, W >= 1``.

    See the module docstring for the architecture and the output schedule.

    Args:
        in_channels: input channels (3 for RGB).
        out_channels: output bands (31).
        base_channels: channels C of the first level (levels have C, 2C, 4C); a multiple of ``num_heads``.
        split_sizes: CSWin stripe widths of the three levels (encoder 1 / decoder 1,
            encoder 2 / decoder 2, bottleneck); the CSWin paper uses 1, 2, 7, 7 at its stages.
        norm_groups: group bound of the adaptive group norms (``gcd(channels, norm_groups)`` groups).
        num_heads: heads of the spectral and spatial attentions (>= 2 in stripe mode: half per stripe direction).
        output_activation: ``"none"``, ``"sigmoid"``, ``"tanh"`` or ``"delayed_sigmoid"``.
        activation_delay_iters: steps of linear output before ``"delayed_sigmoid"`` switches on.
        clamp_range: bound of the raw-output clamp while the output is linear (None: no clamp).
        clamp_after_iters: 0 clamps at every step; N > 0 clamps only while ``iteration_count < N``.
        cswin_mode: ``"stripe"`` (cross-shaped windows) or ``"axial_legacy"`` (the reference's row/column attention).
        pad_mode: padding of partial stripes (``"reflect"`` with a safe fallback, ``"replicate"``,
            ``"circular"`` or ``"zeros"``).
        symmetric_decoder: compress the skip concatenation before the decoder blocks at both
            levels (True) or, at level 2, run the blocks at 4C first as the reference does (False).
        ffn_expansion: feed-forward width factor (4).
        checkpoint_min_tokens: gradient-checkpoint the attention branches of maps with at
            least this many pixels in training (4096; None: never).

    Tiny configuration (tests): ``base_channels=8, num_heads=2, split_sizes=[2, 2, 2]``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 31,
        base_channels: int = 64,
        split_sizes: Sequence[int] = (7, 7, 7),
        norm_groups: int = 8,
        num_heads: int = 4,
        output_activation: OutputActivation = "none",
        activation_delay_iters: int = 20000,
        clamp_range: float | None = 10.0,
        clamp_after_iters: int = 0,
        cswin_mode: CSWinMode = "stripe",
        pad_mode: PadMode = "reflect",
        symmetric_decoder: bool = True,
        ffn_expansion: int = 4,
        checkpoint_min_tokens: int | None = CHECKPOINT_MIN_TOKENS,
    ) -> None:
        super().__init__()
        split_sizes = [int(size) for size in split_sizes]
        if in_channels < 1 or out_channels < 1:
            raise ConfigError(
                f"NoiseRobustCSWinGenerator needs in/out channels >= 1, got {in_channels}, {out_channels}"
            )
        if len(split_sizes) != 3 or min(split_sizes) < 1:
            raise ConfigError(
                f"split_sizes lists the stripe widths of the 3 levels (>= 1 each), got {list(split_sizes)}"
            )
        if base_channels < 2 or base_channels % 2 or base_channels % num_heads:
            raise ConfigError(
                f"base_channels must be even and divisible by num_heads, got base_channels={base_channels}, "
                f"num_heads={num_heads}"
            )
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"unknown output_activation {output_activation!r}; choose one of {', '.join(OUTPUT_ACTIVATIONS)}"
            )
        if cswin_mode not in CSWIN_MODES:
            raise ConfigError(f"unknown cswin_mode {cswin_mode!r}; choose one of {', '.join(CSWIN_MODES)}")
        check_pad_mode(pad_mode, "NoiseRobustCSWinGenerator")
        if clamp_range is not None and not (math.isfinite(clamp_range) and clamp_range > 0):
            raise ConfigError(f"clamp_range must be a finite number > 0 or None, got {clamp_range!r}")
        if activation_delay_iters < 0 or clamp_after_iters < 0:
            raise ConfigError(
                f"activation_delay_iters and clamp_after_iters must be >= 0, got {activation_delay_iters}, "
                f"{clamp_after_iters}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.output_activation: OutputActivation = output_activation
        self.activation_delay_iters = int(activation_delay_iters)
        self.clamp_range = clamp_range
        self.clamp_after_iters = int(clamp_after_iters)
        self.symmetric_decoder = symmetric_decoder
        self.register_buffer("iteration_count", torch.zeros((), dtype=torch.long))

        c = base_channels
        s0, s1, s2 = split_sizes
        block = {
            "num_heads": num_heads,
            "norm_groups": norm_groups,
            "cswin_mode": cswin_mode,
            "pad_mode": pad_mode,
            "ffn_expansion": ffn_expansion,
            "checkpoint_min_tokens": checkpoint_min_tokens,
        }
        self.denoise = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, padding=1), nn.GELU(),
            nn.Conv2d(c // 2, c // 2, 3, padding=1), nn.GELU(),
            nn.Conv2d(c // 2, in_channels, 3, padding=1),
        )  # fmt: skip
        self.embed = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1), AdaptiveGroupNorm(c, norm_groups), nn.GELU()
        )
        self.encoder1 = _block_pair(c, s0, **block)
        self.down1 = Downsample(c, 2 * c, norm_groups)
        self.encoder2 = _block_pair(2 * c, s1, **block)
        self.down2 = Downsample(2 * c, 4 * c, norm_groups)
        self.bottleneck = _block_pair(4 * c, s2, **block)
        self.up2 = Upsample(4 * c, 2 * c, norm_groups)
        self.fuse2 = nn.Conv2d(4 * c, 2 * c, 1)
        self.decoder2 = _block_pair(2 * c if symmetric_decoder else 4 * c, s1, **block)
        self.up1 = Upsample(2 * c, c, norm_groups)
        self.fuse1 = nn.Conv2d(2 * c, c, 1)
        self.decoder1 = _block_pair(c, s0, **block)
        self.head = nn.Conv2d(c, out_channels, 3, padding=1)

    # ------------------------------------------------------------------ schedule
    def set_iteration(self, step: int) -> None:
        """Set the training step that drives the output schedule (call once per step from a trainer)."""
        if step < 0:
            raise ConfigError(f"set_iteration: the step must be >= 0, got {step}")
        self.iteration_count.fill_(int(step))

    def sigmoid_active(self) -> bool:
        """Whether the output currently goes through a sigmoid (always for ``"sigmoid"``)."""
        if self.output_activation == "sigmoid":
            return True
        if self.output_activation == "delayed_sigmoid":
            return int(self.iteration_count) > self.activation_delay_iters
        return False

    def clamp_active(self) -> bool:
        """Whether the raw output is clamped to ``±clamp_range`` at the current step."""
        if self.clamp_range is None or self.output_activation in ("sigmoid", "tanh") or self.sigmoid_active():
            return False
        return self.clamp_after_iters == 0 or int(self.iteration_count) < self.clamp_after_iters

    def _activate(self, raw: torch.Tensor) -> torch.Tensor:
        # Step-dependent choices use torch.where on the step buffer, so the forward pass never
        # waits for the device to report the step (no host synchronisation).
        if self.output_activation == "tanh":
            return 0.5 * (torch.tanh(raw) + 1.0)
        if self.output_activation == "sigmoid":
            return torch.sigmoid(raw)
        linear = raw
        if self.clamp_range is not None:
            clamped = raw.clamp(-self.clamp_range, self.clamp_range)
            if self.clamp_after_iters == 0:
                linear = clamped
            else:
                linear = torch.where(self.iteration_count < self.clamp_after_iters, clamped, raw)
        if self.output_activation == "delayed_sigmoid":
            return torch.where(self.iteration_count > self.activation_delay_iters, torch.sigmoid(raw), linear)
        return linear

    # ------------------------------------------------------------------ forward
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``."""
        if rgb.ndim != 4 or rgb.shape[1] != self.in_channels:
            raise ShapeMismatchError(
                f"NoiseRobustCSWinGenerator expects a (B, {self.in_channels}, H, W) batch, got shape "
                f"{tuple(rgb.shape)}; add the batch axis with x[None] and pass channels first"
            )
        x = rgb + self.denoise(rgb)
        embedded = self.embed(x)
        skip1 = self.encoder1(embedded)
        skip2 = self.encoder2(self.down1(skip1))
        features = self.bottleneck(self.down2(skip2))
        features = torch.cat([self.up2(features, tuple(skip2.shape[-2:])), skip2], dim=1)
        if self.symmetric_decoder:
            features = self.decoder2(self.fuse2(features))
        else:
            features = self.fuse2(self.decoder2(features))
        features = torch.cat([self.up1(features, tuple(skip1.shape[-2:])), skip1], dim=1)
        features = self.decoder1(self.fuse1(features))
        output = self._activate(self.head(features + embedded))
        if self.training:
            self.iteration_count += 1
        return output


__all__ = [
    "OUTPUT_ACTIVATIONS",
    "DepthwiseBlock",
    "Downsample",
    "DualTransformerBlock",
    "FeedForward",
    "NoiseAwareGate",
    "NoiseRobustCSWinGenerator",
    "OutputActivation",
    "Upsample",
]
