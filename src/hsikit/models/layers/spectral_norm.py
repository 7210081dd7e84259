"""Spectral normalisation helpers (Miyato et al., ICLR 2018) on top of ``torch.nn.utils.parametrizations``.

:func:`spectral_normalized` wraps a convolution or linear layer so that its weight, reshaped
to ``(out, in · kernel)``, is divided by its largest singular value, estimated by power
iteration (one iteration per training forward; the estimate is frozen in eval mode).
:func:`layers_without_spectral_norm` lists the weighted layers of a model that lack it, so
a test can check a discriminator is normalised everywhere.
"""

from __future__ import annotations

from typing import TypeVar

import torch.nn as nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from hsikit.errors import ConfigError

WeightedLayer = TypeVar("WeightedLayer", bound=nn.Module)

SPECTRAL_NORM_ITERATIONS = 1
"""Power iterations per training forward (the CSWIN v2 discriminator's value)."""
SPECTRAL_NORM_EPS = 1e-6
"""Floor of the norms inside the power iteration (the CSWIN v2 discriminator's value)."""

_WEIGHTED_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


def spectral_normalized(
    layer: WeightedLayer, n_power_iterations: int = SPECTRAL_NORM_ITERATIONS, eps: float = SPECTRAL_NORM_EPS
) -> WeightedLayer:
    """``layer`` (a convolution or ``nn.Linear``) with a spectral-norm parametrisation of its weight."""
    if not isinstance(layer, _WEIGHTED_LAYERS):
        raise ConfigError(f"spectral_normalized wraps convolutions and nn.Linear layers, got {type(layer).__name__}")
    if n_power_iterations < 1 or eps <= 0:
        raise ConfigError(f"spectral norm needs n_power_iterations >= 1 and eps > 0, got {n_power_iterations}, {eps}")
    return spectral_norm(layer, n_power_iterations=n_power_iterations, eps=eps)


def has_spectral_norm(layer: nn.Module) -> bool:
    """Whether ``layer.weight`` is computed by a spectral-norm parametrisation."""
    if not parametrize.is_parametrized(layer, "weight"):
        return False
    return any(type(p).__name__ == "_SpectralNorm" for p in layer.parametrizations.weight)


def layers_without_spectral_norm(model: nn.Module) -> list[str]:
    """Qualified names of the convolutions and linear layers of ``model`` whose weight is not spectrally normalised."""
    return [
        name
        for name, layer in model.named_modules()
        if isinstance(layer, _WEIGHTED_LAYERS) and not has_spectral_norm(layer)
    ]


__all__ = [
    "SPECTRAL_NORM_EPS",
    "SPECTRAL_NORM_ITERATIONS",
    "has_spectral_norm",
    "layers_without_spectral_norm",
    "spectral_normalized",
]
