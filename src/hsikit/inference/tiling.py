"""Sliding-window layout and blending weights for tiled inference.

The image (``H`` x ``W`` pixels) is first padded into a *canvas*: ``margin``
pixels on every side (``padding="reflect"``, ``"replicate"`` or ``"zeros"``), plus
whatever extra rows/columns at the bottom/right make the canvas at least one tile
big, so every tile the model sees is full size. With ``padding="none"`` the canvas
is the image itself and a tile larger than the image shrinks to it.

Tiles of ``tile_height`` x ``tile_width`` pixels step by ``stride = tile - overlap``;
the last row and column of tiles are aligned to the canvas edge (so the last
step can be shorter). Each tile's output is multiplied by a weight map and
accumulated; the final value is the weighted sum divided by the sum of weights.

The weight of a tile along one axis (``tile_weight_profile``) is:

* 0 over the ``margin`` pixels at each edge that lies *inside* the canvas: the
  model's own border effects (zero padding of its convolutions) live there, and
  a neighbouring tile covers those pixels with real context;
* a ramp over the next ``overlap - 2 * margin`` pixels, rising from a small
  positive value to 1 (``"cosine"``: raised cosine, ``"linear"``: straight line,
  ``"mean"``: no ramp, all 1);
* 1 elsewhere, including right up to an edge that lies on the canvas border.

Adjacent tiles overlap by at least ``overlap`` pixels, so the ramp-down of one
tile lies exactly over the ramp-up of the next and the two raised-cosine (or
linear) ramps sum to 1 there. Every canvas pixel gets a strictly positive total
weight. If a model's receptive-field radius is at most ``margin``, every
contribution that reaches a pixel equals the whole-canvas output there, so the
tiled result equals whole-image inference (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hsikit.errors import ConfigError

BlendMode = Literal["cosine", "linear", "mean"]
PaddingMode = Literal["reflect", "replicate", "zeros", "none"]

BLEND_MODES: tuple[str, ...] = ("cosine", "linear", "mean")
PADDING_MODES: tuple[str, ...] = ("reflect", "replicate", "zeros", "none")

# numpy.pad mode for each padding option
_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "zeros": "constant"}


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` stepping by ``stride`` over ``length`` pixels.

    The last tile ends exactly at ``length`` (its step may be shorter than
    ``stride``). A ``length`` of at most ``tile`` gives the single start 0.
    """
    if tile <= 0 or stride <= 0:
        raise ConfigError(f"tile ({tile}) and stride ({stride}) must be positive")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(length: int, blend: str) -> np.ndarray:
    """Rising weights for ``length`` pixels, strictly between 0 and 1 (empty when length is 0).

    Reversed, the ramp is its complement: ``ramp + ramp[::-1] == 1``.
    """
    position = np.arange(1, length + 1, dtype=np.float64) / (length + 1)
    if blend == "cosine":
        return 0.5 - 0.5 * np.cos(np.pi * position)
    if blend == "linear":
        return position
    return np.ones(length, dtype=np.float64)


def tile_weight_profile(
    length: int, margin: int, ramp: int, blend: str, at_start: bool, at_end: bool
) -> np.ndarray:
    """One-dimensional blending weights of a tile, shape ``(length,)`` float64.

    Args:
        length: tile size along this axis (pixels).
        margin: pixels discarded (weight 0) at an edge inside the canvas.
        ramp: pixels over which the weight rises after the margin.
        blend: ``"cosine"``, ``"linear"`` or ``"mean"``.
        at_start: the tile's first pixel is on the canvas border (no margin, no ramp there).
        at_end: the tile's last pixel is on the canvas border.
    """
    if blend not in BLEND_MODES:
        raise ConfigError(f"blend={blend!r} is not known; use one of {', '.join(BLEND_MODES)}")
    rising = np.ones(length, dtype=np.float64)
    falling = np.ones(length, dtype=np.float64)
    rise = np.concatenate([np.zeros(margin), _ramp(ramp, blend)])[:length]
    if not at_start:
        rising[: rise.size] = rise
    if not at_end:
        falling[length - rise.size :] = rise[::-1]
    return np.minimum(rising, falling)


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one image go, in canvas coordinates.

    Canvas row ``r`` is image row ``r - pad_top``; canvas column ``c`` is image
    column ``c - pad_left``. Build with :meth:`TileGrid.create`.

    Attributes:
        height, width: image size (pixels).
        tile_height, tile_width: the model's input size (pixels).
        overlap: minimum overlap of neighbouring tiles (pixels).
        margin: pixels discarded at tile edges inside the canvas.
        padding: how the image border is extended (see module docstring).
        blend: the ramp shape.
        pad_top, pad_bottom, pad_left, pad_right: canvas padding (pixels).
        row_starts, col_starts: tile offsets in the canvas.
    """

    height: int
    width: int
    tile_height: int
    tile_width: int
    overlap: int
    margin: int
    padding: str
    blend: str
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]
    _weights: dict[tuple[bool, bool, bool, bool], np.ndarray] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def create(
        cls,
        height: int,
        width: int,
        tile: int | tuple[int, int] = 512,
        overlap: int = 64,
        margin: int | None = None,
        padding: str = "reflect",
        blend: str = "cosine",
    ) -> TileGrid:
        """Lay out tiles over an ``height`` x ``width`` image.

        Args:
            tile: model input size, one int (square) or ``(rows, cols)``.
            overlap: minimum overlap of neighbouring tiles; must be smaller than the tile.
            margin: pixels discarded at inner tile edges; default ``overlap // 4``.
                Must satisfy ``2 * margin <= overlap``. Choose it at least the
                model's receptive-field radius for results identical to
                whole-image inference.
            padding: ``"reflect"`` (default), ``"replicate"``, ``"zeros"`` or ``"none"``.
            blend: ``"cosine"`` (default), ``"linear"`` or ``"mean"``.
        """
        if padding not in PADDING_MODES:
            raise ConfigError(f"padding={padding!r} is not known; use one of {', '.join(PADDING_MODES)}")
        if blend not in BLEND_MODES:
            raise ConfigError(f"blend={blend!r} is not known; use one of {', '.join(BLEND_MODES)}")
        if height <= 0 or width <= 0:
            raise ConfigError(f"cannot tile an empty image of {height}x{width} pixels")
        tile_height, tile_width = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
        if overlap < 0:
            raise ConfigError(f"overlap={overlap} must be >= 0")
        if margin is None:
            margin = overlap // 4
        if margin < 0 or 2 * margin > overlap:
            raise ConfigError(
                f"margin={margin} must satisfy 0 <= 2 * margin <= overlap ({overlap}); "
                f"increase overlap to at least {2 * max(margin, 0)} or lower the margin"
            )
        if min(tile_height, tile_width) <= overlap:
            raise ConfigError(
                f"tile {tile_height}x{tile_width} must be larger than overlap={overlap}; "
                "use a bigger tile or a smaller overlap"
            )
        pad = 0 if padding == "none" else margin
        if padding == "none":
            tile_height, tile_width = min(tile_height, height), min(tile_width, width)
            extra_rows = extra_cols = 0
        else:
            extra_rows = max(0, tile_height - (height + 2 * pad))
            extra_cols = max(0, tile_width - (width + 2 * pad))
        stride_rows, stride_cols = tile_height - overlap, tile_width - overlap
        canvas_height = height + 2 * pad + extra_rows
        canvas_width = width + 2 * pad + extra_cols
        # a tile shrunk to a small image may be no longer than the overlap: one tile then covers it
        row_starts = tile_starts(canvas_height, tile_height, max(stride_rows, 1))
        col_starts = tile_starts(canvas_width, tile_width, max(stride_cols, 1))
        return cls(
            height=height,
            width=width,
            tile_height=tile_height,
            tile_width=tile_width,
            overlap=overlap,
            margin=margin,
            padding=padding,
            blend=blend,
            pad_top=pad,
            pad_bottom=pad + extra_rows,
            pad_left=pad,
            pad_right=pad + extra_cols,
            row_starts=tuple(row_starts),
            col_starts=tuple(col_starts),
        )

    # ------------------------------------------------------------------ geometry
    @property
    def canvas_height(self) -> int:
        """Rows of the padded image."""
        return self.height + self.pad_top + self.pad_bottom

    @property
    def canvas_width(self) -> int:
        """Columns of the padded image."""
        return self.width + self.pad_left + self.pad_right

    @property
    def ramp(self) -> int:
        """Pixels over which a tile's weight rises after its margin."""
        return self.overlap - 2 * self.margin

    @property
    def tile_count(self) -> int:
        """Number of tiles."""
        return len(self.row_starts) * len(self.col_starts)

    def tiles(self) -> Iterator[tuple[int, int]]:
        """``(row_start, col_start)`` of every tile, row by row, in canvas coordinates."""
        for row in self.row_starts:
            for col in self.col_starts:
                yield row, col

    def border_key(self, row_start: int, col_start: int) -> tuple[bool, bool, bool, bool]:
        """Which canvas borders the tile at ``(row_start, col_start)`` touches: (top, bottom, left, right).

        Tiles with the same key have the same weights.
        """
        return (
            row_start == 0,
            row_start + self.tile_height >= self.canvas_height,
            col_start == 0,
            col_start + self.tile_width >= self.canvas_width,
        )

    def _row_profile(self, row_start: int) -> np.ndarray:
        at_end = row_start + self.tile_height >= self.canvas_height
        return tile_weight_profile(self.tile_height, self.margin, self.ramp, self.blend, row_start == 0, at_end)

    def _col_profile(self, col_start: int) -> np.ndarray:
        at_end = col_start + self.tile_width >= self.canvas_width
        return tile_weight_profile(self.tile_width, self.margin, self.ramp, self.blend, col_start == 0, at_end)

    def weights(self, row_start: int, col_start: int) -> np.ndarray:
        """Blending weights of the tile at ``(row_start, col_start)``, shape ``(tile_height, tile_width)`` float32."""
        key = self.border_key(row_start, col_start)
        cached = self._weights.get(key)
        if cached is None:
            cached = np.outer(self._row_profile(row_start), self._col_profile(col_start)).astype(np.float32)
            self._weights[key] = cached
        return cached

    def weight_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Total blending weight of every canvas row and column: float64 ``(canvas_height,)``, ``(canvas_width,)``.

        A tile's weights are the outer product of a row and a column profile and
        the tiles form a full grid, so the summed weight at canvas pixel
        ``(r, c)`` is ``rows[r] * cols[c]``. Both are positive everywhere.
        """
        rows = np.zeros(self.canvas_height)
        for start in self.row_starts:
            rows[start : start + self.tile_height] += self._row_profile(start)
        cols = np.zeros(self.canvas_width)
        for start in self.col_starts:
            cols[start : start + self.tile_width] += self._col_profile(start)
        return rows, cols

    def pad_block(self, block: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """Extend a ``(..., h, w)`` block cut from the image by the given pixel counts with this grid's padding."""
        if top == bottom == left == right == 0:
            return block
        widths = [(0, 0)] * (block.ndim - 2) + [(top, bottom), (left, right)]
        mode = _NUMPY_PAD_MODE.get(self.padding, "constant")
        return np.pad(block, widths, mode=mode)  # type: ignore[call-overload]

    def fill_padding(self, array: np.ndarray, top: int, rows: int) -> None:
        """Fill, in place, the padding around image pixels already placed in a ``(..., h, canvas_width)`` block.

        The image occupies rows ``top .. top + rows - 1`` and columns
        ``pad_left .. pad_left + width - 1`` of ``array``; every other element is
        set as :meth:`pad_block` would set it (same mirror/edge/zero rule).
        """
        height, width, left = array.shape[-2], self.width, self.pad_left
        bottom = height - top - rows
        right = array.shape[-1] - left - width
        centre_cols = slice(left, left + width)
        if self.padding in ("zeros", "none"):
            array[..., :top, :] = 0
            array[..., top + rows :, :] = 0
            array[..., :, :left] = 0
            array[..., :, left + width :] = 0
            return
        mode = _NUMPY_PAD_MODE[self.padding]
        # where each padded row/column takes its value from, with numpy.pad's rules for any pad size
        row_source = top + np.pad(np.arange(rows), (top, bottom), mode=mode)  # type: ignore[call-overload]
        col_source = left + np.pad(np.arange(width), (left, right), mode=mode)  # type: ignore[call-overload]
        if top:
            array[..., :top, centre_cols] = array[..., row_source[:top], centre_cols]
        if bottom:
            array[..., top + rows :, centre_cols] = array[..., row_source[top + rows :], centre_cols]
        if left:
            array[..., :, :left] = array[..., :, col_source[:left]]
        if right:
            array[..., :, left + width :] = array[..., :, col_source[left + width :]]

    def pad_image(self, image: np.ndarray) -> np.ndarray:
        """The whole ``(..., H, W)`` image padded into the canvas (for reference computations)."""
        return self.pad_block(image, self.pad_top, self.pad_bottom, self.pad_left, self.pad_right)
