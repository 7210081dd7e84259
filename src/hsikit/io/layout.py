"""Axis order of 3-D arrays at the I/O boundary: ``"CHW"``, ``"HWC"`` or ``"auto"``.

Inside hsikit a cube is ``(bands, H, W)``. Files store either that order
(``"CHW"``: ENVI BSQ, hsikit's ``.npy``) or ``(H, W, bands)`` (``"HWC"``: most
``.mat`` and ``.npy`` datasets, MST++'s ``cube`` key). Readers take an explicit
``layout=`` argument; ``"auto"`` is resolved by :func:`resolve_layout` with the
rule below and *only* when the answer is unambiguous.

The ``"auto"`` rule, for an array of shape ``(a, b, c)`` (first rule that decides wins):

1. **Band count known** (``band_count``: the length of the wavelengths passed
   in or stored in the file). If exactly one of ``a`` (CHW) and ``c`` (HWC)
   equals it, that axis holds the bands. If both do, the layout is ambiguous;
   if neither does, the wavelengths contradict the array: both raise
   :class:`~hsikit.errors.LayoutError`.
2. **Companion map** (``spatial_shapes``: shapes of 2-D label/ground-truth maps
   stored in the same file). If ``(b, c)`` matches a map and ``(a, b)`` matches
   none, the layout is CHW; if only ``(a, b)`` matches, HWC.
3. **Named convention** (``convention``): a caller-supplied layout implied by
   the variable name (e.g. MATLAB key ``cube`` = ``(H, W, C)`` in ARAD/CAVE/MST++ files).
4. **Odd axis out**: if exactly two axes have equal length and the third
   differs, and the odd axis is the first (``b == c != a``: CHW) or the last
   (``a == b != c``: HWC), the odd axis holds the bands (images are usually
   square crops; band counts rarely equal the side).
5. Otherwise :class:`~hsikit.errors.LayoutError` asks for ``layout="CHW"`` or ``"HWC"``.

An explicit ``"CHW"``/``"HWC"`` is always obeyed, but checked against the band
count when one is known: a contradiction raises :class:`LayoutError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

from hsikit.errors import LayoutError

Layout = Literal["CHW", "HWC", "auto"]
ResolvedLayout = Literal["CHW", "HWC"]

_LAYOUT_HINT = "pass layout='CHW' (bands, H, W) or layout='HWC' (H, W, bands)"


def normalise_layout(layout: str) -> Layout:
    """Upper-case and check a ``layout=`` argument ("chw" → "CHW"; "auto" stays)."""
    if not isinstance(layout, str) or layout.upper() not in ("CHW", "HWC", "AUTO"):
        raise LayoutError(f"layout must be 'CHW', 'HWC' or 'auto', got {layout!r}")
    return "auto" if layout.upper() == "AUTO" else layout.upper()  # type: ignore[return-value]


def resolve_layout(
    shape: tuple[int, ...],
    layout: str = "auto",
    *,
    band_count: int | None = None,
    spatial_shapes: Iterable[tuple[int, int]] = (),
    convention: ResolvedLayout | None = None,
    source: str = "<memory>",
) -> ResolvedLayout:
    """Decide which axis of a 3-D array holds the bands (see the module docstring for the rule).

    Args:
        shape: the array's shape ``(a, b, c)``.
        layout: ``"CHW"``, ``"HWC"`` or ``"auto"``.
        band_count: number of wavelengths that must match the band axis, if known.
        spatial_shapes: ``(H, W)`` shapes of maps stored with the array.
        convention: layout implied by a naming convention, used by rule 3.
        source: file (and key) named in error messages.

    Returns:
        ``"CHW"`` or ``"HWC"``.

    Raises:
        LayoutError: not 3-D, ambiguous, or contradicting ``band_count``.
    """
    layout = normalise_layout(layout)
    if len(shape) != 3:
        raise LayoutError(f"{source}: expected a 3-D cube, got shape {tuple(shape)}")
    first, middle, last = (int(v) for v in shape)
    if layout != "auto":
        band_axis_length = first if layout == "CHW" else last
        if band_count is not None and band_axis_length != band_count:
            other = "HWC" if layout == "CHW" else "CHW"
            raise LayoutError(
                f"{source}: layout={layout!r} puts {band_axis_length} bands on the band axis of shape "
                f"{tuple(shape)}, but there are {band_count} wavelengths; check the layout "
                f"(did you mean layout={other!r}?) or the wavelength list"
            )
        return layout

    if band_count is not None:
        matches = [name for name, length in (("CHW", first), ("HWC", last)) if length == band_count]
        if len(matches) == 1:
            return matches[0]  # type: ignore[return-value]
        if not matches:
            raise LayoutError(
                f"{source}: {band_count} wavelengths match neither the first nor the last axis of shape "
                f"{tuple(shape)}; the wavelength list belongs to another cube (or needs a band subset), "
                f"or the array is not (bands, H, W) / (H, W, bands)"
            )
        raise LayoutError(
            f"{source}: shape {tuple(shape)} has {band_count} on both the first and the last axis, so "
            f"the band axis cannot be told from the {band_count} wavelengths; {_LAYOUT_HINT}"
        )

    shapes = {tuple(int(v) for v in s) for s in spatial_shapes}
    chw_match = (middle, last) in shapes
    hwc_match = (first, middle) in shapes
    if chw_match != hwc_match:
        return "CHW" if chw_match else "HWC"

    if convention is not None:
        return convention

    if middle == last and first != middle:
        return "CHW"
    if first == middle and last != middle:
        return "HWC"
    raise LayoutError(
        f"{source}: cannot tell the band axis of shape {tuple(shape)} (no wavelengths, no map of the "
        f"same size, no axis that is clearly the odd one); {_LAYOUT_HINT}, or give wavelengths="
    )


def to_chw(array: np.ndarray, layout: ResolvedLayout) -> np.ndarray:
    """``(bands, H, W)`` view of a 3-D array stored in ``layout`` (no copy)."""
    return array if layout == "CHW" else np.moveaxis(array, -1, 0)


def from_chw(array: np.ndarray, layout: ResolvedLayout) -> np.ndarray:
    """A ``(bands, H, W)`` array as ``layout`` (a view; ``"HWC"`` moves the band axis last)."""
    return array if layout == "CHW" else np.moveaxis(array, 0, -1)
