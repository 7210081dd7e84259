"""Segmentation models: ``(B, C, H, W)`` tiles → :class:`SegmentationOutput` ``(logits (B, K, H, W), attention)``.

Importing this package registers ``"ssmgnet"`` (SSMGNet's SegModel, with a supervised
spatial-attention map) and ``"unet"`` (the U-Net baseline, ``attention=None``).
"""

from hsikit.models.segmentation.output import (
    SegmentationLogits,
    SegmentationOutput,
    check_segmentation_input,
    segmentation_logits,
)
from hsikit.models.segmentation.ssmgnet import SSMGNet, SpatialAttention
from hsikit.models.segmentation.unet import UNet

__all__ = [
    "SSMGNet",
    "SegmentationLogits",
    "SegmentationOutput",
    "SpatialAttention",
    "UNet",
    "check_segmentation_input",
    "segmentation_logits",
]
