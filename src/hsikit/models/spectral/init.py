"""Weight initialisation and activations of the deephyp networks (Windrim et al.).

deephyp initialises every weight *and* bias with one option (``weightInitOpt``):

====================  ==========================================================================
name                  distribution (``std`` = the ``weight_std`` argument, 0.1 by default)
====================  ==========================================================================
``truncated_normal``  N(0, std²) truncated at ±2·std (the deephyp default); weights and biases
``gaussian``          N(0, std²); weights and biases
``constant``          every value = ``std`` (deephyp: the constant 0.1); weights and biases
``xavier``            U(−sqrt(3 / fan_in), +sqrt(3 / fan_in)) (variance 1 / fan_in); biases 0
``xavier_improved``   N(0, 2 / fan_out) (He initialisation on the fan-out); biases 0
====================  ==========================================================================

Differences from the TensorFlow original, on purpose (spec 004 §2 and §7): ``weight_std``
is honoured (the original always used 0.1), ``xavier`` draws the uniform distribution its
formula was written for (the original fed a normal sample into it), and the xavier
variants set biases to 0 (the original crashed on 1-D bias shapes). ``fan_in`` and
``fan_out`` are ``kernel_size × input channels`` and ``kernel_size × output channels``
(for dense layers, kernel_size = 1).

These schemes act on raw parameters (deephyp's dense weights are stored ``(in, out)``, and
tied decoder layers have no weight of their own), and none of them is one of the generic
schemes of :func:`hsikit.models.layers.initialize_weights`, which walks ``nn.Conv``/``nn.Linear``
modules; hence this small deephyp-specific helper.

Activations are the three deephyp allows: ``relu``, ``sigmoid`` and ``linear``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn as nn

from hsikit.errors import ConfigError

WeightInit = Literal["truncated_normal", "gaussian", "constant", "xavier", "xavier_improved"]
Activation = Literal["relu", "sigmoid", "linear"]
Padding = Literal["VALID", "SAME"]

WEIGHT_INIT_OPTIONS: tuple[str, ...] = ("truncated_normal", "gaussian", "constant", "xavier", "xavier_improved")
ACTIVATIONS: tuple[str, ...] = ("relu", "sigmoid", "linear")


def check_weight_init(option: str, weight_std: float, owner: str) -> None:
    """Raise :class:`ConfigError` for an unknown option or a non-positive ``weight_std``."""
    if option not in WEIGHT_INIT_OPTIONS:
        raise ConfigError(
            f"{owner}: unknown weight_init {option!r}; choose one of {', '.join(WEIGHT_INIT_OPTIONS)} "
            "(deephyp's weightInitOpt names)"
        )
    if not (math.isfinite(weight_std) and weight_std > 0):
        raise ConfigError(f"{owner}: weight_std must be a positive finite number, got {weight_std!r}")


@torch.no_grad()
def init_weight_(tensor: torch.Tensor, option: str, *, fan_in: int, fan_out: int, weight_std: float = 0.1) -> None:
    """Fill a weight tensor in place with the deephyp option ``option`` (see the module table).

    Args:
        tensor: the weight, any shape.
        option: one of :data:`WEIGHT_INIT_OPTIONS`.
        fan_in: number of inputs feeding one output unit (kernel_size × input channels).
        fan_out: number of outputs one input unit feeds (kernel_size × output channels).
        weight_std: standard deviation of ``gaussian`` / ``truncated_normal``, value of ``constant``.
    """
    check_weight_init(option, weight_std, "init_weight_")
    if option == "truncated_normal":
        nn.init.trunc_normal_(tensor, mean=0.0, std=weight_std, a=-2.0 * weight_std, b=2.0 * weight_std)
    elif option == "gaussian":
        nn.init.normal_(tensor, mean=0.0, std=weight_std)
    elif option == "constant":
        nn.init.constant_(tensor, weight_std)
    elif option == "xavier":
        bound = math.sqrt(3.0 / max(fan_in, 1))
        nn.init.uniform_(tensor, -bound, bound)
    else:  # xavier_improved
        nn.init.normal_(tensor, mean=0.0, std=math.sqrt(2.0 / max(fan_out, 1)))


@torch.no_grad()
def init_bias_(tensor: torch.Tensor, option: str, *, weight_std: float = 0.1) -> None:
    """Fill a bias in place: the same distribution as the weights, except 0 for the xavier variants."""
    check_weight_init(option, weight_std, "init_bias_")
    if option in ("xavier", "xavier_improved"):
        nn.init.zeros_(tensor)
    else:
        init_weight_(tensor, option, fan_in=1, fan_out=1, weight_std=weight_std)


def activation_function(name: str, owner: str = "activation") -> Callable[[torch.Tensor], torch.Tensor]:
    """The element-wise function of a deephyp activation name (``relu``, ``sigmoid``, ``linear``)."""
    if name == "relu":
        return torch.relu
    if name == "sigmoid":
        return torch.sigmoid
    if name == "linear":
        return _identity
    raise ConfigError(f"{owner}: unknown activation {name!r}; deephyp networks use one of {', '.join(ACTIVATIONS)}")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


__all__ = [
    "ACTIVATIONS",
    "WEIGHT_INIT_OPTIONS",
    "Activation",
    "Padding",
    "WeightInit",
    "activation_function",
    "check_weight_init",
    "init_bias_",
    "init_weight_",
]
