"""Model-card numbers: parameter counts and floating-point operations of one forward pass.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which records the
matrix products and convolutions (including transposed and grouped/depthwise ones) that
a forward pass dispatches. Its convention, used throughout hsikit:

* **FLOPs = 2 × MACs**: one multiply-accumulate counts as two floating-point operations;
* only matrix multiplications and convolutions are counted — bias additions, activations,
  normalisations, softmax, padding and element-wise sums are not (they are a few percent
  of the total for convolutional and transformer models).

Papers in spectral reconstruction usually quote **MACs** under the name "FLOPs" (tools
such as fvcore and thop count one per multiply-accumulate), sometimes divided by 2³⁰
instead of 10⁹. :func:`model_card` therefore reports, for each input size, ``flops``
(2 × MACs), ``macs``, ``gflops`` (flops / 10⁹), ``gmacs`` (macs / 10⁹) and
``gmacs_binary`` (macs / 2³⁰), so a number can be compared with a paper's in the paper's
own convention. Example, MST++ at 256 × 256: 44.38 GFLOPs here = 22.19 G MACs (decimal) =
20.67 Gi MACs (binary), equal to a hand count of its layers; the paper's "23.05 GFLOPs" is a
MAC-convention number from another counting tool, about 4 % above the convolution and
matrix-product MACs counted here.

The forward pass runs on the ``meta`` device by default (shapes only, no memory and no
arithmetic), so counting a 482 × 512 input is instant; models whose operators have no meta
implementation fall back to a real CPU pass.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from hsikit.errors import ConfigError, ShapeMismatchError

DEFAULT_CARD_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (482, 512))
"""Input sizes (H, W) of :func:`model_card`: the usual 256² benchmark and a full ARAD-1K image."""


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (shared parameters counted once).

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(size) for size in input_shape)
    if not shape or min(shape) < 1:
        raise ShapeMismatchError(
            f"input_shape must be positive sizes such as (1, 3, 256, 256), got {tuple(input_shape)}"
        )
    return shape


def _count(model: nn.Module, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> dict[str, int]:
    counter = FlopCounterMode(display=False)
    sample = torch.zeros(shape, device=device, dtype=dtype)
    with torch.no_grad(), counter:
        model(sample)
    by_operator: dict[str, int] = {}
    for operator, flops in counter.get_flop_counts().get("Global", {}).items():
        name = getattr(operator, "__name__", str(operator))
        by_operator[name] = by_operator.get(name, 0) + int(flops)
    by_operator["total"] = int(counter.get_total_flops())
    return by_operator


def flop_breakdown(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype = torch.float32,
) -> dict[str, int]:
    """FLOPs (2 × MACs) of one forward pass per counted operator, plus ``"total"``.

    Args:
        model: the module (not modified: the pass runs on a copy, in eval mode).
        input_shape: full input shape, e.g. ``(1, 3, 256, 256)``.
        device: ``"meta"`` (default, no arithmetic) or a real device to run on.
        dtype: input dtype.
    """
    shape = _input_shape(input_shape)
    target_device = torch.device(device)
    was_training = model.training
    try:
        if target_device.type == "meta":
            try:
                ghost = copy.deepcopy(model).to(device="meta").eval()
                return _count(ghost, shape, target_device, dtype)
            except (NotImplementedError, RuntimeError):
                target_device = torch.device("cpu")  # an operator without a meta kernel: count on a real pass
        model.eval()
        module_device = next((p.device for p in model.parameters()), target_device)
        return _count(model, shape, module_device, dtype)
    finally:
        model.train(was_training)


def count_flops(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype = torch.float32,
) -> int:
    """FLOPs of one forward pass at ``input_shape`` (e.g. ``(1, 3, 256, 256)``), **2 per MAC**.

    Counts matrix products and convolutions only (see the module docstring). Divide by 2
    for multiply-accumulates (:func:`count_macs`).
    """
    return flop_breakdown(model, input_shape, device=device, dtype=dtype)["total"]


def count_macs(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype = torch.float32,
) -> int:
    """Multiply-accumulates of one forward pass (``count_flops // 2``), the fvcore/thop "FLOPs"."""
    return count_flops(model, input_shape, device=device, dtype=dtype) // 2


def _infer_in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return int(module.in_channels)
        if isinstance(module, nn.Linear):
            return int(module.in_features)
    raise ConfigError(
        f"cannot infer the input channels of {type(model).__name__} (no convolution or linear layer found); "
        "pass in_channels= to model_card"
    )


def model_card(
    model: nn.Module,
    sizes: Sequence[tuple[int, int]] = DEFAULT_CARD_SIZES,
    *,
    in_channels: int | None = None,
    batch_size: int = 1,
) -> dict[str, Any]:
    """Parameter count and per-size operation counts of ``model``, JSON-friendly.

    Args:
        model: an image-to-image model taking ``(B, in_channels, H, W)``.
        sizes: input sizes ``(H, W)`` to count at.
        in_channels: input channels; default: those of the first convolution/linear layer.
        batch_size: images per forward pass.

    Returns:
        ``{"model", "parameters", "parameters_millions", "trainable_parameters",
        "flop_convention", "sizes": {"HxW": {"input_shape", "flops", "macs", "gflops",
        "gmacs", "gmacs_binary"}}}`` where ``flops = 2 · macs``, ``gflops = flops / 1e9``,
        ``gmacs = macs / 1e9`` and ``gmacs_binary = macs / 2**30``.
    """
    channels = _infer_in_channels(model) if in_channels is None else int(in_channels)
    parameters = count_parameters(model)
    card: dict[str, Any] = {
        "model": getattr(model, "registry_name", type(model).__name__),
        "parameters": parameters,
        "parameters_millions": parameters / 1e6,
        "trainable_parameters": count_parameters(model, trainable_only=True),
        "flop_convention": (
            "flops = 2 x multiply-accumulates (MACs) of matrix products and convolutions counted by "
            "torch.utils.flop_counter.FlopCounterMode; element-wise ops, norms, activations and softmax are not "
            "counted. Papers quoting fvcore/thop 'FLOPs' report MACs (gmacs, or gmacs_binary = MACs / 2**30)."
        ),
        "sizes": {},
    }
    for height, width in sizes:
        shape = (int(batch_size), channels, int(height), int(width))
        flops = count_flops(model, shape)
        macs = flops // 2
        card["sizes"][f"{int(height)}x{int(width)}"] = {
            "input_shape": list(shape),
            "flops": flops,
            "macs": macs,
            "gflops": flops / 1e9,
            "gmacs": macs / 1e9,
            "gmacs_binary": macs / 2**30,
        }
    return card


__all__ = ["DEFAULT_CARD_SIZES", "count_flops", "count_macs", "count_parameters", "flop_breakdown", "model_card"]
