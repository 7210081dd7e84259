"""Stochastic depth ("drop path"): skip a residual branch for whole samples during training."""

from __future__ import annotations

import torch
import torch.nn as nn

from hsikit.errors import ConfigError


def drop_path(x: torch.Tensor, probability: float, training: bool) -> torch.Tensor:
    """Zero the branch output ``x`` ``(B, ...)`` of each sample with ``probability``, scale the rest by ``1/(1-p)``.

    Huang, Sun, Liu, Sedra, Weinberger, *Deep Networks with Stochastic Depth*, ECCV 2016.
    The expectation over the random mask equals ``x``; outside training (or with
    ``probability == 0``) ``x`` is returned unchanged.
    """
    if not training or probability == 0.0:
        return x
    keep = 1.0 - probability
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = torch.empty(mask_shape, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


def linear_drop_path_rates(maximum: float, blocks: int) -> list[float]:
    """Drop-path probabilities rising linearly from 0 (first block) to ``maximum`` (last block)."""
    if blocks <= 1:
        return [0.0] * blocks
    return [maximum * index / (blocks - 1) for index in range(blocks)]


class DropPath(nn.Module):
    """Module form of :func:`drop_path` (``probability`` in [0, 1))."""

    def __init__(self, probability: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= probability < 1.0:
            raise ConfigError(f"drop-path probability must be in [0, 1), got {probability}")
        self.probability = float(probability)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, ...)`` → ``(B, ...)``."""
        return drop_path(x, self.probability, self.training)

    def extra_repr(self) -> str:
        return f"probability={self.probability}"


__all__ = ["DropPath", "drop_path", "linear_drop_path_rates"]
