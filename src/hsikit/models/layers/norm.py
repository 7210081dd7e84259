"""Normalisation layers for channel-first feature maps."""

from __future__ import annotations

import torch
import torch.nn as nn

from hsikit.errors import ConfigError, ShapeMismatchError


class ChannelRMSNorm(nn.Module):
    """RMS normalisation over the channel axis of ``(B, C, ...)`` maps (SHARP's ``RMS_c``).

    ``y = x / sqrt(max(mean_c x², eps)) · w_c``: no mean subtraction and no bias, computed
    in float32 whatever the input dtype (the result is cast back), with ``w`` initialised
    to 1. Every pixel is normalised on its own, so the layer does not depend on the image
    size or the batch.

    Args:
        channels: ``C``.
        eps: floor of the mean square (1e-8, so an all-zero pixel stays zero instead of NaN).
    """

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        if channels < 1 or not eps > 0:
            raise ConfigError(f"ChannelRMSNorm needs channels >= 1 and eps > 0, got channels={channels}, eps={eps}")
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, ...)`` → ``(B, C, ...)``."""
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise ShapeMismatchError(
                f"ChannelRMSNorm({self.channels}) expects (B, {self.channels}, ...) maps, got shape {tuple(x.shape)}"
            )
        values = x.float()
        inverse_rms = values.pow(2).mean(dim=1, keepdim=True).clamp_min(self.eps).rsqrt()
        scale = self.weight.float().view(1, -1, *([1] * (x.ndim - 2)))
        return (values * inverse_rms * scale).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


__all__ = ["ChannelRMSNorm"]
