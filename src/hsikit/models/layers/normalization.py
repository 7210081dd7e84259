"""Normalisation layers for ``(B, C, H, W)`` maps: adaptive group norm and channel layer norm."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError


def adaptive_group_count(channels: int, max_groups: int = 8) -> int:
    """The largest ``g <= max_groups`` dividing both ``channels`` and ``max_groups``: ``gcd(channels, max_groups)``.

    Example: 64 channels → 8 groups, 12 channels → 4, 31 channels → 1 (layer norm over C, H, W).
    """
    if channels < 1 or max_groups < 1:
        raise ConfigError(f"adaptive_group_count needs channels >= 1 and max_groups >= 1, got {channels}, {max_groups}")
    return math.gcd(int(channels), int(max_groups))


class AdaptiveGroupNorm(nn.GroupNorm):
    """``GroupNorm`` with :func:`adaptive_group_count` groups, so any channel count works.

    Args:
        channels: channels C of the ``(B, C, H, W)`` input.
        max_groups: upper bound of the group count (8).
        eps: variance floor.
    """

    def __init__(self, channels: int, max_groups: int = 8, eps: float = 1e-5) -> None:
        super().__init__(adaptive_group_count(channels, max_groups), channels, eps=eps)


class ChannelLayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a ``(B, C, H, W)`` map, independently at every pixel.

    Args:
        channels: channels C.
        eps: variance floor.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        tokens = x.permute(0, 2, 3, 1)
        normalised = F.layer_norm(tokens, (tokens.shape[-1],), self.weight, self.bias, self.eps)
        return normalised.permute(0, 3, 1, 2)


__all__ = ["AdaptiveGroupNorm", "ChannelLayerNorm2d", "adaptive_group_count"]
