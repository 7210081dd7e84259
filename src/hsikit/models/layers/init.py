"""Weight initialisation for any hsikit model: one call, four classic schemes.

:func:`initialize_weights` walks a module tree and re-initialises

* every convolution (1-D/2-D/3-D, transposed too) and every ``nn.Linear`` with the chosen scheme;
* their biases with a constant (0 by default);
* every affine normalisation layer (batch, instance, group and layer norm): weight drawn from
  N(1, ``norm_weight_std``²) (the constant 1 when ``norm_weight_std`` is 0), bias 0.

=================  =========================================================================
``kind``           weight distribution (``fan_in`` = input channels × kernel elements)
=================  =========================================================================
``"kaiming"``      N(0, 2 / ((1 + a²) · fan)) with ``fan`` = fan_in (or fan_out with
                   ``mode="fan_out"``), ``a`` = ``negative_slope`` (He et al. 2015)
``"normal"``       N(0, std²), ``std`` defaulting to ``gain`` (0.02)
``"xavier"``       N(0, gain² · 2 / (fan_in + fan_out)) (Glorot & Bengio 2010, normal form)
``"orthogonal"``   the weight, flattened to (out_channels, fan_in), is a random (semi-)
                   orthogonal matrix scaled by ``gain`` (Saxe et al. 2014)
=================  =========================================================================

The defaults reproduce the SSMGNet ``weights_init`` helper (gain 0.02 for ``normal``,
``xavier`` and ``orthogonal``; kaiming on fan_in with a = 0; batch-norm weight N(1, 0.02)).
Models that want their norm weights at exactly 1 (the usual "internal" initialisation)
pass ``norm_weight_std=0``. Fans follow PyTorch's convention (``weight.shape[1]`` ×
kernel elements is the fan_in, which for a transposed convolution is its *output* width).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _NormBase

from hsikit.errors import ConfigError

InitKind = Literal["kaiming", "normal", "xavier", "orthogonal"]
INIT_KINDS: tuple[str, ...] = get_args(InitKind)

_WEIGHTED_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)
# _NormBase covers BatchNorm{1,2,3}d, SyncBatchNorm and InstanceNorm{1,2,3}d.
_NORM_LAYERS = (_NormBase, nn.GroupNorm, nn.LayerNorm)


def check_init_kind(kind: str, owner: str = "initialize_weights") -> None:
    """Raise :class:`ConfigError` unless ``kind`` is one of :data:`INIT_KINDS`."""
    if kind not in INIT_KINDS:
        raise ConfigError(f"{owner}: unknown initialisation {kind!r}; choose one of {', '.join(INIT_KINDS)}")


@torch.no_grad()
def initialize_weights(
    module: nn.Module,
    kind: InitKind = "kaiming",
    *,
    gain: float = 0.02,
    std: float | None = None,
    negative_slope: float = 0.0,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    bias: float = 0.0,
    norm_weight_std: float = 0.02,
) -> nn.Module:
    """Re-initialise the weights of ``module`` and all its sub-modules in place.

    Args:
        module: any ``nn.Module`` (a whole model or one layer).
        kind: ``"kaiming"``, ``"normal"``, ``"xavier"`` or ``"orthogonal"`` (table in the module docstring).
        gain: scale of ``xavier`` and ``orthogonal``, and the std of ``normal`` when ``std`` is None.
            Ignored by ``kaiming``, whose scale follows from the fan and ``negative_slope``.
        std: standard deviation of ``normal`` (None: ``gain``).
        negative_slope: ``a`` of the leaky ReLU that follows the layers (0 for ReLU), for ``kaiming``.
        mode: ``"fan_in"`` (preserves forward variance) or ``"fan_out"`` (backward), for ``kaiming``.
        bias: constant value of every convolution / linear bias.
        norm_weight_std: std of the normalisation weights around 1 (0: exactly 1).

    Returns:
        ``module`` itself, for chaining.

    Raises:
        ConfigError: an unknown ``kind`` or ``mode``, or a negative / non-finite scale.
    """
    check_init_kind(kind)
    if mode not in ("fan_in", "fan_out"):
        raise ConfigError(f"initialize_weights: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    normal_std = gain if std is None else std
    for name, value in (("gain", gain), ("std", normal_std), ("norm_weight_std", norm_weight_std)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"initialize_weights: {name} must be a finite number >= 0, got {value!r}")

    for layer in module.modules():
        if isinstance(layer, _WEIGHTED_LAYERS):
            weight = layer.weight
            if kind == "kaiming":
                nn.init.kaiming_normal_(weight, a=negative_slope, mode=mode, nonlinearity="leaky_relu")
            elif kind == "normal":
                nn.init.normal_(weight, mean=0.0, std=normal_std)
            elif kind == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            else:
                nn.init.orthogonal_(weight, gain=gain)
            if layer.bias is not None:
                nn.init.constant_(layer.bias, bias)
        elif isinstance(layer, _NORM_LAYERS):
            weight = getattr(layer, "weight", None)
            if weight is not None:  # affine=False / elementwise_affine=False layers have none
                if norm_weight_std > 0:
                    nn.init.normal_(weight, mean=1.0, std=norm_weight_std)
                else:
                    nn.init.ones_(weight)
            layer_bias = getattr(layer, "bias", None)
            if layer_bias is not None:
                nn.init.zeros_(layer_bias)
    return module


__all__ = ["INIT_KINDS", "InitKind", "check_init_kind", "initialize_weights"]
