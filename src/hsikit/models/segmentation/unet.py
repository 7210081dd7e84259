"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015, arXiv:1505.04597), the segmentation baseline.

An encoder of ``depth`` levels (2 × 2 max-pooling, then two 3 × 3 conv-norm-ReLU
layers with doubled width) and a mirrored decoder (2× up-sampling, concatenation with
the encoder feature map of the same size, two 3 × 3 layers with halved width), then a
1 × 1 head. Unlike the paper the convolutions are padded ("same"), so the logits have the
input's size; an input whose sides are not multiples of ``2**depth`` is padded (reflect,
or replicate for sides too short to reflect) and the logits are cropped back.

The paper's network is ``base_width=64, depth=4`` with transposed-convolution
up-sampling, which are the defaults here.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError
from hsikit.models.layers.init import InitKind, check_init_kind, initialize_weights
from hsikit.models.registry import register_model
from hsikit.models.segmentation.output import SegmentationOutput, check_segmentation_input

Upsampling = Literal["transpose", "bilinear"]
NormKind = Literal["batch", "instance", "none"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class DoubleConv(nn.Sequential):
    """Two ``Conv 3 × 3 → norm → ReLU`` layers: ``(B, in, H, W)`` → ``(B, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormKind = "batch", dropout: float = 0.0) -> None:
        use_bias = norm == "none"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=use_bias),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=use_bias),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class UpBlock(nn.Module):
    """Up-sample ``(B, c, h, w)`` to ``(B, c/2, 2h, 2w)``, concatenate the skip ``(B, c/2, 2h, 2w)``, DoubleConv to c/2."""

    def __init__(self, in_channels: int, upsampling: Upsampling, norm: NormKind) -> None:
        super().__init__()
        half = in_channels // 2
        if upsampling == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, half, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, half, kernel_size=1),
            )
        self.conv = DoubleConv(2 * half, half, norm)

    def forward(self, features: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Decoder step; ``skip`` is the encoder map at twice the resolution of ``features``."""
        return self.conv(torch.cat([skip, self.up(features)], dim=1))


@register_model("unet", task="segmentation", tiny={"base_width": 4, "depth": 2})
class UNet(nn.Module):
    """U-Net for per-pixel classification of multi/hyperspectral tiles.

    Args:
        in_bands: spectral bands C of the input.
        num_classes: classes K.
        base_width: channels of the first level (then doubled at every level down).
        depth: number of 2× down-samplings (input sides are padded to multiples of ``2**depth``).
        upsampling: ``"transpose"`` (2 × 2 transposed conv, the paper) or ``"bilinear"`` (+ 1 × 1 conv).
        norm: ``"batch"``, ``"instance"`` or ``"none"`` after each 3 × 3 convolution.
        dropout: channel dropout after the bottleneck (the paper's drop-out at the deepest level).
        init: weight initialisation scheme (:func:`~hsikit.models.layers.init.initialize_weights`).
        init_gain: gain/std of the ``normal``, ``xavier`` and ``orthogonal`` schemes.

    Shapes:
        ``(B, C, H, W)`` → :class:`SegmentationOutput` with logits ``(B, K, H, W)`` and
        ``attention=None``. Any H, W ≥ 1.
    """

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        base_width: int = 64,
        depth: int = 4,
        upsampling: Upsampling = "transpose",
        norm: NormKind = "batch",
        dropout: float = 0.0,
        init: InitKind = "kaiming",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        for name, value, lowest in (
            ("in_bands", in_bands, 1),
            ("num_classes", num_classes, 1),
            ("base_width", base_width, 2),
            ("depth", depth, 0),
        ):
            if int(value) != value or value < lowest:
                raise ConfigError(f"UNet: {name} must be an integer >= {lowest}, got {value!r}")
        if base_width % 2:
            raise ConfigError(f"UNet: base_width must be even (the decoder halves it), got {base_width}")
        if upsampling not in ("transpose", "bilinear"):
            raise ConfigError(f"UNet: upsampling must be 'transpose' or 'bilinear', got {upsampling!r}")
        if norm not in ("batch", "instance", "none"):
            raise ConfigError(f"UNet: norm must be 'batch', 'instance' or 'none', got {norm!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"UNet: dropout must be in [0, 1), got {dropout!r}")
        check_init_kind(init, "UNet")
        self.in_bands = int(in_bands)
        self.num_classes = int(num_classes)
        self.depth = int(depth)
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.inc = DoubleConv(in_bands, widths[0], norm, dropout if depth == 0 else 0.0)
        self.down = nn.ModuleList(
            DoubleConv(widths[level - 1], widths[level], norm, dropout if level == depth else 0.0)
            for level in range(1, depth + 1)
        )
        self.up = nn.ModuleList(UpBlock(widths[level], upsampling, norm) for level in range(depth, 0, -1))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        initialize_weights(self, init, gain=init_gain, norm_weight_std=0.0)

    @property
    def size_multiple(self) -> int:
        """Input sides are padded internally to multiples of this (``2**depth``)."""
        return 2**self.depth

    def forward(self, image: torch.Tensor) -> SegmentationOutput:
        """Logits ``(B, K, H, W)`` of a ``(B, C, H, W)`` batch (``attention`` is None)."""
        check_segmentation_input(image, self.in_bands, "UNet")
        height, width = image.shape[-2:]
        padded, (top, left) = _pad_to_multiple(image, self.size_multiple)
        skips = [self.inc(padded)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        features = skips.pop()
        for block in self.up:
            features = block(features, skips.pop())
        logits = self.head(features)[..., top : top + height, left : left + width]
        return SegmentationOutput(logits=logits, attention=None)


def _pad_to_multiple(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W (split between both sides) up to multiples of ``multiple``; return the top/left offsets."""
    height, width = image.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if pad_h == 0 and pad_w == 0:
        return image, (0, 0)
    top, left = pad_h // 2, pad_w // 2
    bottom, right = pad_h - top, pad_w - left
    # Reflection needs a pad smaller than the side it mirrors.
    mode = "reflect" if max(top, bottom) < height and max(left, right) < width else "replicate"
    return F.pad(image, (left, right, top, bottom), mode=mode), (top, left)


__all__ = ["DoubleConv", "UNet", "UpBlock"]
