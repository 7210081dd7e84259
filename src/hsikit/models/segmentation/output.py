"""The output convention shared by hsikit's segmentation models.

Every segmentation model returns a :class:`SegmentationOutput` ``(logits, attention)``:
``logits`` ``(B, K, H, W)`` at the input's resolution and ``attention`` ``(B, 1, H, W)``
for models with a supervised attention map (SSMGNet), ``None`` otherwise. Code that
needs a plain tensor (tiled scene inference, export) wraps the model in
:class:`SegmentationLogits`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from hsikit.errors import ShapeMismatchError


class SegmentationOutput(NamedTuple):
    """What a segmentation model returns.

    Attributes:
        logits: ``(B, K, H, W)`` unnormalised class scores.
        attention: ``(B, 1, H, W)`` attention map in [0, 1], or None for models without one.
    """

    logits: torch.Tensor
    attention: torch.Tensor | None = None


def segmentation_logits(output: torch.Tensor | tuple) -> torch.Tensor:
    """The ``(B, K, H, W)`` logits of a model output (a tensor, a :class:`SegmentationOutput` or a tuple)."""
    logits = output if isinstance(output, torch.Tensor) else output[0]
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ShapeMismatchError(f"a segmentation model must return (B, K, H, W) logits first, got {shape}")
    return logits


class SegmentationLogits(nn.Module):
    """Wrap a segmentation model so that ``forward`` returns only its ``(B, K, H, W)`` logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` of a ``(B, C, H, W)`` batch."""
        return segmentation_logits(self.model(image))


def check_segmentation_input(image: torch.Tensor, expected_bands: int, model_name: str) -> None:
    """Raise :class:`ShapeMismatchError` unless ``image`` is ``(B, expected_bands, H, W)``."""
    if image.ndim != 4:
        raise ShapeMismatchError(
            f"{model_name} takes a (B, C, H, W) batch, got shape {tuple(image.shape)}; add the batch axis with "
            "image.unsqueeze(0) for a single (C, H, W) image"
        )
    if image.shape[1] != expected_bands:
        raise ShapeMismatchError(
            f"{model_name} was built for {expected_bands} bands but the input has {image.shape[1]} bands "
            f"(shape {tuple(image.shape)}); build the model with in_bands={image.shape[1]}, or select the "
            f"{expected_bands} bands it was trained on"
        )


__all__ = ["SegmentationLogits", "SegmentationOutput", "check_segmentation_input", "segmentation_logits"]
