"""Cap the number of key/value tokens of an attention by average-pooling the feature map.

Global attention from ``N`` queries to ``M`` keys costs ``O(N·M)``. When the keys and
values come from a large map (a full 482 × 512 image has 246,784 pixels), pooling that map
to at most ``max_tokens`` cells keeps the cost linear in the number of queries. The pooled
grid keeps the map's aspect ratio; :func:`torch.nn.functional.adaptive_avg_pool2d` averages
the pixels of each cell, so for a linear key/value projection (with or without bias)
pooling before or after the projection gives the same tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError


def capped_grid_size(height: int, width: int, max_tokens: int | None) -> tuple[int, int]:
    """The ``(rows, cols)`` grid with the most cells ``<= max_tokens``, closest in aspect to ``height × width``.

    Among all grids no larger than the map in either axis, the one with the largest
    ``rows·cols <= max_tokens`` is chosen; ties go to the aspect ratio nearest the map's
    (482 × 512 with 1024 tokens → 32 × 32). Returns ``(height, width)`` unchanged when the
    map already has at most ``max_tokens`` pixels or when ``max_tokens`` is None (no cap).

    Raises:
        ConfigError: ``max_tokens`` is given and < 1.
    """
    if max_tokens is None or height * width <= max_tokens:
        return height, width
    if max_tokens < 1:
        raise ConfigError(f"a key/value token cap must be >= 1 (or None for no cap), got {max_tokens}")
    target_aspect = math.log(height / width)
    best: tuple[int, float, int, int] | None = None
    for rows in range(1, min(height, max_tokens) + 1):
        cols = min(width, max_tokens // rows)
        key = (rows * cols, -abs(math.log(rows / cols) - target_aspect), rows, cols)
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    return best[2], best[3]


def pool_to_token_cap(feature_map: torch.Tensor, max_tokens: int | None) -> torch.Tensor:
    """Average-pool ``(B, C, H, W)`` to the grid of :func:`capped_grid_size` (unchanged if small enough)."""
    height, width = int(feature_map.shape[-2]), int(feature_map.shape[-1])
    rows, cols = capped_grid_size(height, width, max_tokens)
    if (rows, cols) == (height, width):
        return feature_map
    return F.adaptive_avg_pool2d(feature_map, (rows, cols))


__all__ = ["capped_grid_size", "pool_to_token_cap"]
