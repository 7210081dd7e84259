"""SSMGNet's segmentation network ``SegModel`` (Lecheng-Wang/SSMGNet, ``model/model_spatial_sfcnm.py``).

SSMGNet (Spectral-Similarity-Measurement-Guided attention network) segments glaciers
in 10-band multispectral tiles. The network is a plain fully convolutional stack with
**no down-sampling**: every feature map keeps the input's H × W, so any input size
works (odd sizes included) and nothing needs padding or cropping.

=====================  ==========================================================  ========
stage                  layers                                                      channels
=====================  ==========================================================  ========
``stage1``             Conv(k, dilation d, "same" padding, no bias) → BN → ReLU    w
``stage2``             same                                                        2w
``stage3``             same                                                        4w
``stage4``             same                                                        4w
``sa_module4``         [channel max, channel mean] → Conv(2 → 1, atten_kernel,      1
                       no bias) → sigmoid = attention ``w4``
re-weight              ``feat4 ← w4 ⊙ feat4``                                      4w
``final``              Conv 1 × 1 (bias) → class logits                            K
=====================  ==========================================================  ========

During training ``w4`` is pulled towards the spectral-similarity target of
:mod:`hsikit.losses.attention` (MSE). With the scripts' settings (10 bands, 3 classes,
w = 16) the model has 62 053 parameters. The sub-module names follow the reference
(``stage1``…``stage4``, ``sa_module4.conv``, ``final``) so a ``state_dict`` saved by the
reference's ``train.py`` loads unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hsikit.errors import ConfigError
from hsikit.models.layers.init import InitKind, check_init_kind, initialize_weights
from hsikit.models.registry import register_model
from hsikit.models.segmentation.output import SegmentationOutput, check_segmentation_input


class SpatialAttention(nn.Module):
    """CBAM-style spatial attention: one weight in [0, 1] per pixel.

    Shapes:
        ``(B, C, H, W)`` features → ``(B, 1, H, W)`` weights (sigmoid of a conv over the
        per-pixel channel maximum and channel mean).
    """

    def __init__(self, kernel_size: int = 9) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, 1, H, W)`` of ``(B, C, H, W)`` features."""
        channel_max = features.amax(dim=1, keepdim=True)
        channel_mean = features.mean(dim=1, keepdim=True)
        return torch.sigmoid(self.conv(torch.cat([channel_max, channel_mean], dim=1)))


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, dilation: int) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


@register_model("ssmgnet", task="segmentation", tiny={"width": 4, "atten_kernel": 3})
class SSMGNet(nn.Module):
    """SSMGNet ``SegModel``: four conv-BN-ReLU stages, a supervised spatial attention, a 1 × 1 head.

    Args:
        in_bands: spectral bands C of the input (the reference's default is 6; its scripts use 10).
        num_classes: classes K (glacier data: background, clean glacier, debris-covered glacier).
        width: channels w of the first stage (then 2w, 4w, 4w).
        conv_kernel: kernel size k of the stage convolutions.
        dilation_rate: dilation d of the stage convolutions; ``d·(k − 1)`` must be even so
            that the "same" padding ``d·(k − 1)/2`` keeps H × W.
        atten_kernel: kernel size of the attention convolution (odd).
        init: weight initialisation of convolutions (:func:`~hsikit.models.layers.init.initialize_weights`);
            the default ``"kaiming"`` with batch-norm weights at exactly 1 is the reference's
            internal initialisation.
        init_gain: gain/std of the ``normal``, ``xavier`` and ``orthogonal`` schemes.

    Shapes:
        ``forward``: ``(B, C, H, W)`` → :class:`SegmentationOutput` with logits ``(B, K, H, W)``
        and attention ``(B, 1, H, W)`` in [0, 1]. Any H, W ≥ 1.
    """

    def __init__(
        self,
        in_bands: int = 6,
        num_classes: int = 3,
        width: int = 16,
        conv_kernel: int = 3,
        dilation_rate: int = 1,
        atten_kernel: int = 9,
        init: InitKind = "kaiming",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_bands", in_bands),
            ("num_classes", num_classes),
            ("width", width),
            ("conv_kernel", conv_kernel),
            ("dilation_rate", dilation_rate),
            ("atten_kernel", atten_kernel),
        ):
            if int(value) != value or value < 1:
                raise ConfigError(f"SSMGNet: {name} must be a positive integer, got {value!r}")
        if dilation_rate * (conv_kernel - 1) % 2:
            raise ConfigError(
                f"SSMGNet: dilation_rate·(conv_kernel − 1) = {dilation_rate * (conv_kernel - 1)} is odd, so the "
                "convolutions cannot keep H × W; use an odd conv_kernel (or an even dilation_rate)"
            )
        if atten_kernel % 2 == 0:
            raise ConfigError(
                f"SSMGNet: atten_kernel must be odd so the attention map keeps H × W, got {atten_kernel}"
            )
        check_init_kind(init, "SSMGNet")
        self.in_bands = int(in_bands)
        self.num_classes = int(num_classes)
        self.stage1 = _conv_bn_relu(in_bands, width, conv_kernel, dilation_rate)
        self.stage2 = _conv_bn_relu(width, 2 * width, conv_kernel, dilation_rate)
        self.stage3 = _conv_bn_relu(2 * width, 4 * width, conv_kernel, dilation_rate)
        self.stage4 = _conv_bn_relu(4 * width, 4 * width, conv_kernel, dilation_rate)
        self.sa_module4 = SpatialAttention(atten_kernel)
        self.final = nn.Conv2d(4 * width, num_classes, kernel_size=1, bias=True)
        initialize_weights(self, init, gain=init_gain, norm_weight_std=0.0)

    def forward_features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The reference's three outputs: logits ``(B, K, H, W)``, attended stage-4 features
        ``(B, 4w, H, W)`` (what Grad-CAM differentiates) and attention ``(B, 1, H, W)``."""
        check_segmentation_input(image, self.in_bands, "SSMGNet")
        features = self.stage4(self.stage3(self.stage2(self.stage1(image))))
        attention = self.sa_module4(features)
        attended = attention * features
        return self.final(attended), attended, attention

    def forward(self, image: torch.Tensor) -> SegmentationOutput:
        """Class logits ``(B, K, H, W)`` and the attention map ``(B, 1, H, W)`` of a ``(B, C, H, W)`` batch."""
        logits, _, attention = self.forward_features(image)
        return SegmentationOutput(logits=logits, attention=attention)

    @torch.no_grad()
    def attention_map(self, image: torch.Tensor) -> torch.Tensor:
        """The attention map ``(B, 1, H, W)`` alone, without gradients (the reference's ``get_atten_map``)."""
        return self.forward_features(image)[2]


__all__ = ["SSMGNet", "SpatialAttention"]
