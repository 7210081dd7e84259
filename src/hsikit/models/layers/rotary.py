"""Rotary position embedding (RoPE) for attention queries and keys, 1-D and 2-D axial.

RoPE (Su, Lu, Pan, Murtadha, Wen, Liu, *RoFormer: Enhanced Transformer with Rotary
Position Embedding*, Neurocomputing 2024, arXiv 2104.09864) encodes a token's position
``p`` by rotating each pair of channels ``(x[2i], x[2i+1])`` of its query and key by the
angle ``p · θ_i`` with ``θ_i = base^(-2i / D)`` (``D`` rotated channels). A rotation
preserves the vector's norm, and since rotations compose,
``<R(p) q, R(p') k> = <q, R(p' - p) k>``: the attention score depends on the two
positions only through their offset.

The pairs are *interleaved* here (channels 2i and 2i+1 share frequency ``θ_i``). The cos
and sin tables and the pairing must agree; the HSIFusionNet reference laid its tables out
half-split (``cat(freqs, freqs)``) while rotating adjacent pairs, which is not a rotation
(``specs/001_hsifusion_sharp.md`` §2.3).

2-D axial RoPE, for tokens on an ``H × W`` grid in raster order: the first half of the
channels is rotated by the row index and the second half by the column index, each half
with its own frequency ladder over ``D / 2`` channels. Scores then depend only on the
offset ``(Δrow, Δcol)``.

Angles are computed in float64 and applied in float32 (float64 for float64 inputs), so
half-precision training does not lose the position signal; the result is cast back to
the input dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from hsikit.errors import ConfigError, ShapeMismatchError

DEFAULT_ROPE_BASE = 10000.0
"""The wavelength base of RoFormer: frequencies go from 1 down to ``1 / base`` radians per position."""


def rotary_frequencies(dim: int, base: float = DEFAULT_ROPE_BASE) -> torch.Tensor:
    """``θ_i = base^(-2i / dim)`` for ``i = 0 .. dim/2 - 1`` (radians per position), float64, shape ``(dim // 2,)``.

    Raises:
        ConfigError: ``dim`` is not a positive even number or ``base`` is not > 1.
    """
    if dim < 2 or dim % 2:
        raise ConfigError(f"rotary embedding needs an even number of channels >= 2, got {dim}; use an even head_dim")
    if not base > 1.0:
        raise ConfigError(f"rotary embedding base must be > 1, got {base}")
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def rotary_angles_1d(positions: torch.Tensor, dim: int, base: float = DEFAULT_ROPE_BASE) -> torch.Tensor:
    """Rotation angles ``p · θ_i`` of 1-D ``positions`` ``(N,)``: shape ``(N, dim // 2)``, float64 radians."""
    return positions.to(torch.float64)[:, None] * rotary_frequencies(dim, base)[None, :]


def rotary_angles_2d(height: int, width: int, dim: int, base: float = DEFAULT_ROPE_BASE) -> torch.Tensor:
    """Angles of 2-D axial RoPE for an ``height × width`` grid in raster order: ``(height·width, dim // 2)``.

    Columns ``0 .. dim/4 - 1`` hold ``row · θ_i`` and columns ``dim/4 .. dim/2 - 1`` hold
    ``col · θ_i``, with ``θ_i`` the ladder of :func:`rotary_frequencies` for ``dim / 2``
    channels. So channels ``0 .. dim/2 - 1`` of a vector are rotated by its row and
    channels ``dim/2 .. dim - 1`` by its column.

    Raises:
        ConfigError: ``dim`` is not a multiple of 4.
    """
    if dim < 4 or dim % 4:
        raise ConfigError(
            f"2-D rotary embedding splits the channels into a row half and a column half of even size, so it needs "
            f"a multiple of 4 channels, got {dim}; choose a head_dim divisible by 4"
        )
    rows = torch.arange(height).repeat_interleave(width)
    cols = torch.arange(width).repeat(height)
    return torch.cat([rotary_angles_1d(rows, dim // 2, base), rotary_angles_1d(cols, dim // 2, base)], dim=1)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the interleaved channel pairs of ``x`` ``(..., N, D)`` by angles given as ``cos, sin`` ``(N, D // 2)``.

    Returns ``(..., N, D)`` in the dtype of ``x``: ``x'[2i] = x[2i]·cos - x[2i+1]·sin``,
    ``x'[2i+1] = x[2i]·sin + x[2i+1]·cos`` (computed in the dtype of ``cos``).
    """
    tokens, channels = x.shape[-2], x.shape[-1]
    if channels % 2 or tuple(cos.shape) != (tokens, channels // 2) or cos.shape != sin.shape:
        raise ShapeMismatchError(
            f"rotary embedding: x of shape {tuple(x.shape)} needs angles of shape ({tokens}, {channels // 2}), "
            f"got {tuple(cos.shape)}; build the angles for the same token count and channel count"
        )
    pairs = x.to(cos.dtype).unflatten(-1, (channels // 2, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the interleaved channel pairs of ``x`` by ``angles``.

    Args:
        x: ``(..., N, D)`` queries or keys, ``D`` even.
        angles: ``(N, D // 2)`` radians; pair ``(2i, 2i+1)`` of token ``n`` turns by ``angles[n, i]``.

    Returns:
        ``(..., N, D)`` in the dtype of ``x`` (see :func:`rotate_pairs`).
    """
    dtype = _compute_dtype(x)
    return rotate_pairs(x, angles.cos().to(x.device, dtype), angles.sin().to(x.device, dtype))


class _CosSinCache:
    """cos/sin tables per (grid, device, dtype), built once from float64 angles."""

    def __init__(self) -> None:
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(
        self, key: tuple, angles: Callable[[], torch.Tensor], x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = _compute_dtype(x)
        full_key = (*key, x.device, dtype)
        if full_key not in self._tables:
            values = angles()
            self._tables[full_key] = (values.cos().to(x.device, dtype), values.sin().to(x.device, dtype))
        return self._tables[full_key]


class RotaryEmbedding1D(nn.Module):
    """RoPE over a 1-D sequence: ``forward(x)`` rotates ``(..., N, D)`` by positions ``0 .. N-1``.

    Args:
        dim: rotated channels ``D`` (even; usually the head dimension).
        base: frequency base (10000).
    """

    def __init__(self, dim: int, base: float = DEFAULT_ROPE_BASE) -> None:
        super().__init__()
        rotary_frequencies(dim, base)  # validates
        self.dim = dim
        self.base = base
        self._tables = _CosSinCache()

    def angles(self, length: int) -> torch.Tensor:
        """``(length, dim // 2)`` float64 angles."""
        return rotary_angles_1d(torch.arange(length), self.dim, self.base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., N, dim)`` → ``(..., N, dim)``, token ``n`` rotated by position ``n``."""
        length = int(x.shape[-2])
        cos, sin = self._tables.get((length,), lambda: self.angles(length), x)
        return rotate_pairs(x, cos, sin)


class RotaryEmbedding2D(nn.Module):
    """2-D axial RoPE: ``forward(x, height, width)`` rotates ``(..., height·width, D)`` raster-order tokens.

    Channels ``0 .. D/2 - 1`` turn with the token's row, ``D/2 .. D - 1`` with its column
    (see :func:`rotary_angles_2d`).

    Args:
        dim: rotated channels ``D`` (a multiple of 4; usually the head dimension).
        base: frequency base (10000).
    """

    def __init__(self, dim: int, base: float = DEFAULT_ROPE_BASE) -> None:
        super().__init__()
        rotary_angles_2d(1, 1, dim, base)  # validates
        self.dim = dim
        self.base = base
        self._tables = _CosSinCache()

    def angles(self, height: int, width: int) -> torch.Tensor:
        """``(height·width, dim // 2)`` float64 angles."""
        return rotary_angles_2d(height, width, self.dim, self.base)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``(..., height·width, dim)`` → same shape, each token rotated by its (row, column)."""
        if x.shape[-2] != height * width:
            raise ShapeMismatchError(
                f"RotaryEmbedding2D: {x.shape[-2]} tokens cannot lie on a {height} x {width} grid "
                f"(x of shape {tuple(x.shape)}); pass the grid the tokens were flattened from"
            )
        cos, sin = self._tables.get((int(height), int(width)), lambda: self.angles(height, width), x)
        return rotate_pairs(x, cos, sin)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base={self.base}"


__all__ = [
    "DEFAULT_ROPE_BASE",
    "RotaryEmbedding1D",
    "RotaryEmbedding2D",
    "apply_rotary",
    "rotary_angles_1d",
    "rotary_angles_2d",
    "rotary_frequencies",
    "rotate_pairs",
]
