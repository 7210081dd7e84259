"""A multilayer perceptron that classifies each pixel from its spectrum alone.

The classic spectral baseline of hyperspectral classification (a pixel's band
vector → fully connected layers → class scores); hsikit uses it to exercise the
training engine on Indian Pines. It has no spatial context: a ``(B, C, H, W)``
tile is classified pixel by pixel, so tiled scene inference needs no overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models.registry import register_model

NormKind = Literal["batch", "layer", "none"]


@register_model("spectral_mlp", task="classification", tiny={"hidden_sizes": [16], "dropout": 0.0})
class SpectralMLP(nn.Module):
    """Per-pixel spectral classifier: ``Linear → norm → ReLU → dropout`` blocks, then a linear head.

    Args:
        in_bands: number of spectral bands C of the input.
        num_classes: number of classes K.
        hidden_sizes: widths of the hidden layers (empty: a linear classifier).
        dropout: dropout probability after each hidden layer.
        norm: normalisation after each hidden linear layer: ``"batch"``, ``"layer"`` or ``"none"``.

    Shapes:
        ``(B, C)`` spectra → ``(B, K)`` logits, or ``(B, C, H, W)`` tiles → ``(B, K, H, W)`` logits.
    """

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        hidden_sizes: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        if in_bands < 1 or num_classes < 2:
            raise ConfigError(
                f"SpectralMLP needs in_bands >= 1 and num_classes >= 2, got {in_bands}, {num_classes}"
            )
        if norm not in ("batch", "layer", "none"):
            raise ConfigError(f"norm must be 'batch', 'layer' or 'none', got {norm!r}")
        self.in_bands = int(in_bands)
        self.num_classes = int(num_classes)
        layers: list[nn.Module] = []
        width = self.in_bands
        for hidden in hidden_sizes:
            layers.append(nn.Linear(width, int(hidden)))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(int(hidden)))
            elif norm == "layer":
                layers.append(nn.LayerNorm(int(hidden)))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(hidden)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, self.num_classes)

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        """Class logits of ``(B, C)`` spectra or of every pixel of ``(B, C, H, W)`` tiles."""
        if spectra.ndim == 2:
            return self.head(self.features(spectra))
        if spectra.ndim == 4:
            batch, bands, height, width = spectra.shape
            flat = spectra.permute(0, 2, 3, 1).reshape(-1, bands)
            logits = self.head(self.features(flat))
            return logits.reshape(batch, height, width, self.num_classes).permute(0, 3, 1, 2)
        raise ShapeMismatchError(
            f"SpectralMLP takes (B, C) spectra or (B, C, H, W) tiles, got shape {tuple(spectra.shape)}"
        )
