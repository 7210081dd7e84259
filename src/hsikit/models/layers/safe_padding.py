"""Padding of ``(B, C, H, W)`` maps that never fails on small feature maps, in any mode.

``torch.nn.functional.pad`` refuses ``mode="reflect"`` when a pad is as large as the padded
dimension (reflection needs ``pad < size``: a 2-row map cannot be mirrored by 5 rows) and
``mode="circular"`` when it is larger (``pad <= size``). Windowed attention pads feature maps
to a multiple of the window, and deep in a U-Net those maps can be a few pixels wide, so
:func:`safe_pad2d` checks each axis and falls back, on that axis only, to a mode that always
works (``"replicate"`` by default, or ``"zeros"``). (:func:`hsikit.models.layers.padding.pad_to_multiple`
is the whole-image helper for reflect-or-replicate padding to a multiple.)

=============  ==========================================  ===============================
mode           padded values                               needs
=============  ==========================================  ===============================
``reflect``    mirror image without repeating the edge      ``pad < size`` on that axis
``circular``   wrap around                                  ``pad <= size`` on that axis
``replicate``  the edge row/column repeated                 ``size >= 1``
``zeros``      0                                            nothing
=============  ==========================================  ===============================
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError

PadMode = Literal["reflect", "replicate", "circular", "zeros"]
PAD_MODES: tuple[str, ...] = get_args(PadMode)
FallbackMode = Literal["replicate", "zeros"]


def check_pad_mode(mode: str, owner: str = "safe_pad2d") -> None:
    """Raise :class:`ConfigError` unless ``mode`` is one of :data:`PAD_MODES`."""
    if mode not in PAD_MODES:
        raise ConfigError(f"{owner}: unknown padding mode {mode!r}; choose one of {', '.join(PAD_MODES)}")


def mode_fits(mode: str, pad_before: int, pad_after: int, size: int) -> bool:
    """Whether ``F.pad`` in ``mode`` accepts these pads on an axis of ``size`` elements."""
    largest = max(pad_before, pad_after)
    if largest == 0 or mode == "zeros":
        return True
    if mode == "reflect":
        return largest < size
    if mode == "circular":
        return largest <= size
    return size >= 1  # replicate


def _pad_axis(x: torch.Tensor, before: int, after: int, axis: int, mode: str, fallback: str) -> torch.Tensor:
    if before == 0 and after == 0:
        return x
    chosen = mode if mode_fits(mode, before, after, x.shape[axis]) else fallback
    if chosen == "replicate" and x.shape[axis] == 0:
        chosen = "zeros"
    # F.pad lists pads from the last axis backwards: (left, right) for W, then (top, bottom) for H.
    pads = [before, after, 0, 0] if axis == x.ndim - 1 else [0, 0, before, after]
    if chosen == "zeros":
        return F.pad(x, pads, mode="constant", value=0.0)
    return F.pad(x, pads, mode=chosen)


def safe_pad2d(
    x: torch.Tensor,
    pads: tuple[int, int, int, int],
    mode: PadMode = "reflect",
    fallback: FallbackMode = "replicate",
) -> torch.Tensor:
    """Pad the last two axes of ``x``; an axis too small for ``mode`` is padded with ``fallback`` instead.

    Args:
        x: ``(B, C, H, W)`` (any tensor with at least 2 axes; the last two are padded).
        pads: ``(left, right, top, bottom)`` numbers of columns/rows to add (>= 0).
        mode: ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"zeros"``.
        fallback: ``"replicate"`` or ``"zeros"``, used on an axis where ``mode`` cannot pad.

    Returns:
        ``(..., H + top + bottom, W + left + right)``.
    """
    check_pad_mode(mode)
    if fallback not in ("replicate", "zeros"):
        raise ConfigError(f"safe_pad2d: fallback must be 'replicate' or 'zeros', got {fallback!r}")
    if len(pads) != 4 or min(pads) < 0:
        raise ConfigError(f"safe_pad2d: pads must be four numbers (left, right, top, bottom) >= 0, got {pads!r}")
    if x.ndim < 2:
        raise ShapeMismatchError(f"safe_pad2d pads the last two axes; got a tensor of shape {tuple(x.shape)}")
    left, right, top, bottom = (int(p) for p in pads)
    shape = x.shape
    work = x.reshape(-1, 1, *shape[-2:]) if x.ndim != 4 else x  # F.pad's non-constant modes want 4-D here
    work = _pad_axis(work, left, right, 3, mode, fallback)
    work = _pad_axis(work, top, bottom, 2, mode, fallback)
    return work.reshape(*shape[:-2], work.shape[-2], work.shape[-1])


__all__ = ["PAD_MODES", "FallbackMode", "PadMode", "check_pad_mode", "mode_fits", "safe_pad2d"]
