"""The spectral-normalised transformer discriminator of CSWIN v2 (a conditional PatchGAN-style critic).

Reimplemented for hsikit from ``specs/003_cswin_gan.md`` §3 (CSWIN v2 ``discriminator_v2.py``,
``SNTransformerDiscriminator``). It scores a hyperspectral cube *given* its RGB image: the
two are concatenated along the channels, so the critic judges whether the spectra fit the
RGB, and it returns a spatial map of scores (no global pooling) for patch-wise adversarial
losses such as the Sinkhorn divergence of :mod:`hsikit.losses.gan`.

Every convolution is spectrally normalised (1 power iteration per training forward,
eps 1e-6; :func:`~hsikit.models.layers.spectral_norm.spectral_normalized`). With
``d_i = base_dim · 2^i`` for the ``len(num_blocks)`` stages::

    x = cat[rgb, hsi]                                   (B, 3 + 31, H, W)
    x = GELU(SN Conv7×7(34 → d_0))
    stage 0: num_blocks[0] × SNTransformerBlock(d_0)
    stage i: GELU(SN Conv3×3 stride 2 (d_{i−1} → d_i)) → num_blocks[i] × SNTransformerBlock(d_i)
    out = SN Conv1×1(d_last/2 → 1)(GELU(SN Conv3×3(d_last → d_last/2)(x)))
    return clamp(out, −output_clamp, output_clamp)      (B, 1, ⌈H/4⌉, ⌈W/4⌉) with 3 stages

``SNTransformerBlock(d)``: ``x + 0.1·SpectralSelfAttention(LN_C(x))``, then
``x + 0.1·MLP(LN_C(x))`` with ``MLP = SN Conv1×1(d→r·d) → GELU → Dropout → SN Conv1×1(r·d→d) → Dropout``
and ``LN_C`` a layer norm over the channels of each pixel.

``SpectralSelfAttention(d, h)``: ``qkv = SN DWConv3×3(SN Conv1×1(d → 3d))`` (no biases), then
:func:`~hsikit.models.layers.channel_attention.channel_attention` with a learnable
temperature per head (initialised to 1) and NaN-safe logits (NaN → 0, clamped to ±50,
softmax in float32), then ``SN Conv1×1(d → d)``. Weights are Xavier-uniform (gain 1;
stem gain √2, head gain 0.1), biases 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, NonFiniteError, ShapeMismatchError
from hsikit.models.layers.channel_attention import channel_attention
from hsikit.models.layers.normalization import ChannelLayerNorm2d
from hsikit.models.layers.spectral_norm import spectral_normalized
from hsikit.models.registry import register_model

LOGIT_CLAMP = 50.0
"""Bound of the attention logits of :class:`SpectralSelfAttention`."""
RESIDUAL_SCALE = 0.1
"""Scale of the attention and MLP branches in :class:`SNTransformerBlock`."""


def _xavier(layer: nn.Module, gain: float) -> None:
    # Initialise the raw weight under the spectral-norm parametrisation.
    weight = layer.parametrizations.weight.original if hasattr(layer, "parametrizations") else layer.weight
    nn.init.xavier_uniform_(weight, gain=gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def sn_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
            bias: bool = True, gain: float = 1.0) -> nn.Conv2d:  # fmt: skip
    """A spectrally normalised ``Conv2d`` with "same" padding for odd kernels and Xavier-uniform init."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                     groups=groups, bias=bias)  # fmt: skip
    _xavier(conv, gain)
    return spectral_normalized(conv)


class SpectralSelfAttention(nn.Module):
    """Spectrally normalised channel self-attention (MDTA form) with temperature and NaN-safe logits.

    Args:
        dim: channels d (divisible by ``num_heads``).
        num_heads: heads h; each mixes ``d / h`` channels.
        logit_clamp: bound of the logits before the softmax (50).

    Shapes: ``(B, d, H, W)`` → ``(B, d, H, W)``.
    """

    def __init__(self, dim: int, num_heads: int = 8, logit_clamp: float = LOGIT_CLAMP) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ConfigError(f"SpectralSelfAttention needs dim divisible by num_heads, got {dim} and {num_heads}")
        self.num_heads = num_heads
        self.logit_clamp = float(logit_clamp)
        self.qkv = sn_conv(dim, 3 * dim, 1, bias=False)
        self.qkv_dw = sn_conv(3 * dim, 3 * dim, 3, groups=3 * dim, bias=False)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.proj = sn_conv(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, d, H, W)`` → ``(B, d, H, W)``."""
        batch, channels, height, width = x.shape
        qkv = self.qkv_dw(self.qkv(x)).reshape(batch, 3, self.num_heads, channels // self.num_heads, height * width)
        query, key, value = qkv.unbind(dim=1)
        mixed = channel_attention(query, key, value, self.temperature, self.logit_clamp)
        return self.proj(mixed.reshape(batch, channels, height, width))


class SNTransformerBlock(nn.Module):
    """``x + 0.1·Attn(LN(x))`` then ``x + 0.1·MLP(LN(x))``, all convolutions spectrally normalised.

    Args:
        dim: channels d; num_heads: attention heads; mlp_ratio: MLP hidden width factor; dropout: MLP dropout.

    Shapes: ``(B, d, H, W)`` → ``(B, d, H, W)``.
    """

    def __init__(self, dim: int, num_heads: int = 8, mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.norm_attention = ChannelLayerNorm2d(dim)
        self.attention = SpectralSelfAttention(dim, num_heads)
        self.norm_mlp = ChannelLayerNorm2d(dim)
        self.mlp = nn.Sequential(
            sn_conv(dim, hidden, 1), nn.GELU(), nn.Dropout(dropout), sn_conv(hidden, dim, 1), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, d, H, W)`` → ``(B, d, H, W)``."""
        x = x + RESIDUAL_SCALE * self.attention(self.norm_attention(x))
        return x + RESIDUAL_SCALE * self.mlp(self.norm_mlp(x))


@register_model(
    "cswin_discriminator",
    task="gan_discriminator",
    tiny={"base_dim": 8, "num_heads": 2, "num_blocks": [1, 1, 1]},
)
class SNTransformerDiscriminator(nn.Module):
    """CSWIN v2 spectral-normalised transformer discriminator: (RGB, HSI) → a map of realism scores.

    Args:
        rgb_channels: channels of the conditioning image (3).
        hsi_channels: bands of the scored cube (31).
        base_dim: channels of the first stage; stage ``i`` has ``base_dim · 2^i``.
        num_heads: attention heads (divide every stage width).
        num_blocks: transformer blocks per stage; stages after the first halve the resolution.
        mlp_ratio: MLP hidden width factor (2.0).
        dropout: MLP dropout (0.0).
        output_clamp: scores are clamped to ``[−output_clamp, output_clamp]`` (10; None: no clamp).
        check_finite: in training, refuse non-finite inputs with :class:`~hsikit.errors.NonFiniteError`.

    Shapes: ``rgb (B, 3, H, W)``, ``hsi (B, 31, H, W)`` → ``(B, 1, h, w)`` with ``h = ⌈H / 2^(S−1)⌉``
    for ``S = len(num_blocks)`` stages (``⌈H/4⌉ × ⌈W/4⌉`` at the defaults: 32 × 32 for 128² patches).

    Tiny configuration (tests): ``base_dim=8, num_heads=2, num_blocks=[1, 1, 1]``.
    """

    def __init__(
        self,
        rgb_channels: int = 3,
        hsi_channels: int = 31,
        base_dim: int = 64,
        num_heads: int = 8,
        num_blocks: Sequence[int] = (2, 2, 2),
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        output_clamp: float | None = 10.0,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        num_blocks = [int(count) for count in num_blocks]
        if rgb_channels < 1 or hsi_channels < 1:
            raise ConfigError(
                f"SNTransformerDiscriminator needs rgb/hsi channels >= 1, got {rgb_channels}, {hsi_channels}"
            )
        if not num_blocks or min(num_blocks) < 0:
            raise ConfigError(f"num_blocks lists the transformer blocks of each stage (>= 0), got {num_blocks}")
        dims = [base_dim * 2**stage for stage in range(len(num_blocks))]
        if base_dim < 2 or any(dim % num_heads for dim in dims) or base_dim % 2:
            raise ConfigError(
                f"base_dim must be even and divisible by num_heads (every stage width {dims} must be), got "
                f"base_dim={base_dim}, num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0 or mlp_ratio <= 0:
            raise ConfigError(f"need 0 <= dropout < 1 and mlp_ratio > 0, got dropout={dropout}, mlp_ratio={mlp_ratio}")
        if output_clamp is not None and not output_clamp > 0:
            raise ConfigError(f"output_clamp must be > 0 or None, got {output_clamp!r}")
        self.rgb_channels = rgb_channels
        self.hsi_channels = hsi_channels
        self.output_clamp = output_clamp
        self.check_finite = check_finite
        self.stem = sn_conv(rgb_channels + hsi_channels, dims[0], 7, gain=math.sqrt(2.0))
        self.stages = nn.ModuleList()
        for stage, (dim, count) in enumerate(zip(dims, num_blocks)):
            layers: list[nn.Module] = []
            if stage > 0:
                layers += [sn_conv(dims[stage - 1], dim, 3, stride=2), nn.GELU()]
            layers += [SNTransformerBlock(dim, num_heads, mlp_ratio, dropout) for _ in range(count)]
            self.stages.append(nn.Sequential(*layers))
        self.head_conv = sn_conv(dims[-1], dims[-1] // 2, 3, gain=0.1)
        self.head_out = sn_conv(dims[-1] // 2, 1, 1, gain=0.1)

    def forward(self, rgb: torch.Tensor, hsi: torch.Tensor) -> torch.Tensor:
        """``rgb (B, 3, H, W)`` and ``hsi (B, 31, H, W)`` → scores ``(B, 1, h, w)`` (higher = judged real)."""
        if (
            rgb.ndim != 4 or hsi.ndim != 4 or rgb.shape[1] != self.rgb_channels or hsi.shape[1] != self.hsi_channels
            or rgb.shape[0] != hsi.shape[0] or rgb.shape[-2:] != hsi.shape[-2:]
        ):  # fmt: skip
            raise ShapeMismatchError(
                f"SNTransformerDiscriminator expects rgb (B, {self.rgb_channels}, H, W) and hsi "
                f"(B, {self.hsi_channels}, H, W) of the same batch and size, got {tuple(rgb.shape)} and "
                f"{tuple(hsi.shape)}; pass the RGB image the cube was reconstructed from"
            )
        if self.training and self.check_finite and not (torch.isfinite(rgb).all() and torch.isfinite(hsi).all()):
            raise NonFiniteError(
                f"SNTransformerDiscriminator got NaN/Inf in its input (rgb {tuple(rgb.shape)}, "
                f"hsi {tuple(hsi.shape)}); "
                "check the data and the generator output (a diverging generator produces Inf)"
            )
        x = F.gelu(self.stem(torch.cat([rgb, hsi], dim=1)))
        for stage in self.stages:
            x = stage(x)
        scores = self.head_out(F.gelu(self.head_conv(x)))
        if self.output_clamp is not None:
            scores = scores.clamp(-self.output_clamp, self.output_clamp)
        return scores


SpatialSpectralDiscriminator = SNTransformerDiscriminator
"""Alias used by the CSWIN v2 reference."""

__all__ = [
    "LOGIT_CLAMP",
    "SNTransformerBlock",
    "SNTransformerDiscriminator",
    "SpatialSpectralDiscriminator",
    "SpectralSelfAttention",
    "sn_conv",
]
