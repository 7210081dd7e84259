"""A residual CNN baseline for RGB → hyperspectral reconstruction, in the HSCNN+ family.

HSCNN-R style (Shi, Chen, Xiong, Liu, Wu, *HSCNN+: Advanced CNN-Based Hyperspectral
Recovery from RGB Images*, CVPR Workshops 2018, NTIRE 2018): a 3×3 convolution lifts the
RGB image to ``features`` channels, ``num_blocks`` residual blocks
(``conv3×3 → ReLU → conv3×3`` plus identity) refine them, and a 3×3 convolution maps them
to the output bands. A learned per-pixel linear map RGB → bands (a 1×1 convolution with
bias) provides the global residual, so the network body learns the correction to the best
linear spectral upsampling rather than the spectra themselves.

This is hsikit's own baseline, not a port of a published checkpoint: layer names and the
global residual path are hsikit's. Default size: 64 channels and 16 residual blocks
(1,201,499 parameters for 3 → 31). Train it with
:class:`hsikit.losses.reconstruction.MRAESAMLoss` (MRAE plus a spectral-angle term).

Shapes: ``(B, 3, H, W)`` → ``(B, 31, H, W)`` for any ``H, W >= 1`` (zero padding keeps the size).

Model card (defaults: 64 features, 16 blocks; :func:`hsikit.models.complexity.model_card`,
``torch.utils.flop_counter``, FLOPs = 2 × MACs; ``benchmarks/bench_reconstruction.py``):

================  ============  ==========================  ==========================
input (H × W)     parameters    GFLOPs (2 × MACs)           G MACs (decimal / binary)
================  ============  ==========================  ==========================
256 × 256         1,201,499     157.20                      78.60 / 73.20
482 × 512         1,201,499     591.95                      295.97 / 275.65
================  ============  ==========================  ==========================

Fewer parameters than MST++ but 3.5 times its operations: every layer works at full resolution
with 64 channels.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models.registry import register_model


class ResidualBlock(nn.Module):
    """``x + conv3×3(ReLU(conv3×3(x)))`` with ``channels`` in and out, ``(B, C, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.activation = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        return x + self.conv2(self.activation(self.conv1(x)))


@register_model("hscnn_r", task="reconstruction", tiny={"features": 16, "num_blocks": 2})
class HSCNNR(nn.Module):
    """HSCNN-R style residual CNN: RGB ``(B, 3, H, W)`` → spectra ``(B, 31, H, W)``.

    ``out = conv_out(blocks(ReLU(conv_in(x)))) + spectral_projection(x)``.

    Args:
        in_channels: input channels (3 for RGB).
        out_channels: output bands (31).
        features: channels of the feature maps (64).
        num_blocks: residual blocks (16).

    Tiny configuration (tests): ``features=16, num_blocks=2``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 31, features: int = 64, num_blocks: int = 16) -> None:
        super().__init__()
        if min(in_channels, out_channels, features) < 1 or num_blocks < 0:
            raise ConfigError(
                "HSCNNR needs in_channels, out_channels, features >= 1 and num_blocks >= 0, got "
                f"{in_channels}, {out_channels}, {features}, {num_blocks}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_in = nn.Conv2d(in_channels, features, 3, padding=1)
        self.activation = nn.ReLU(inplace=True)
        self.blocks = nn.Sequential(*(ResidualBlock(features) for _ in range(num_blocks)))
        self.conv_out = nn.Conv2d(features, out_channels, 3, padding=1)
        self.spectral_projection = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeMismatchError(
                f"HSCNNR expects a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}; "
                "add the batch axis with x[None] and pass channels first"
            )
        features = self.blocks(self.activation(self.conv_in(x)))
        return self.conv_out(features) + self.spectral_projection(x)


__all__ = ["HSCNNR", "ResidualBlock"]
