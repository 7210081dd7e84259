"""Transposed (channel) self-attention: each head mixes its channels with a ``d × d`` attention map.

The form of MST++'s S-MSA (Cai et al., CVPRW 2022) and Restormer's MDTA (Zamir et al.,
CVPR 2022): queries, keys and values are per-pixel feature maps split into heads of ``d``
channels, flattened to ``(B, h, d, N)`` with ``N = H · W`` pixels. Queries and keys are
L2-normalised along the pixel axis, so ``q̂_i · k̂_j`` is the cosine similarity of the
spatial patterns of channels ``i`` and ``j`` (in [-1, 1]), scaled by a learnable per-head
temperature ``τ_h``::

    A = softmax_j(τ_h · q̂ k̂ᵀ)      (B, h, d, d)
    out = A v                        (B, h, d, N)

The cost is linear in the number of pixels. The attention map depends on the spatial
structure of every channel, unlike a map built from globally pooled queries and keys
(CSWIN v2's ``EfficientSpectralAttention``), whose logits are a rank-1 outer product of
two pooled vectors and almost uniform.

NaN-safe logits: with ``logit_clamp`` set, NaN logits become 0 and ±inf / huge logits are
clamped to ``±logit_clamp`` before a float32 softmax, so a diverging temperature or a
degenerate input cannot produce NaN attention weights.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError
from hsikit.models.layers.normalization import AdaptiveGroupNorm

NORMALIZE_EPS = 1e-12
"""Floor of the norms when queries and keys are L2-normalised along the pixels."""


def channel_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    temperature: torch.Tensor,
    logit_clamp: float | None = None,
) -> torch.Tensor:
    """Transposed attention over channels.

    Args:
        query, key, value: ``(B, h, d, N)`` (heads, channels per head, pixels).
        temperature: ``(h, 1, 1)`` per-head scale of the cosine logits.
        logit_clamp: if set, NaN logits → 0 and logits clamped to ``[-logit_clamp, logit_clamp]``.

    Returns:
        ``(B, h, d, N)``: each output channel is a convex combination of the value channels of its head.
    """
    query = F.normalize(query, dim=-1, eps=NORMALIZE_EPS)
    key = F.normalize(key, dim=-1, eps=NORMALIZE_EPS)
    logits = (query @ key.transpose(-2, -1)) * temperature  # (B, h, d, d)
    if logit_clamp is not None:
        logits = torch.nan_to_num(logits.float(), nan=0.0, posinf=logit_clamp, neginf=-logit_clamp)
        logits = logits.clamp(-logit_clamp, logit_clamp)
    attention = torch.softmax(logits.float(), dim=-1).to(value.dtype)
    return attention @ value


class ChannelSelfAttention(nn.Module):
    """Channel self-attention block for ``(B, C, H, W)`` maps (the generator's spectral attention).

    ``q = GN(Conv1×1(x))``, ``k = GN(Conv1×1(x))``, ``v = Conv1×1(x)`` (no biases), split into
    ``num_heads`` heads; ``out = proj(channel_attention(q, k, v, τ) + pos(x))`` with
    ``pos = DWConv3×3 → GELU → DWConv3×3`` and ``proj = Conv1×1 → GN``. GN is
    :class:`AdaptiveGroupNorm`; ``τ`` starts at 1 per head.

    Args:
        dim: channels C (divisible by ``num_heads``).
        num_heads: heads h; each mixes ``C / h`` channels.
        max_groups: group-norm group bound.
        logit_clamp: see :func:`channel_attention` (None: no clamp).
    """

    def __init__(self, dim: int, num_heads: int = 4, max_groups: int = 8, logit_clamp: float | None = None) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ConfigError(
                f"ChannelSelfAttention needs dim divisible by num_heads, got dim={dim}, num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.logit_clamp = logit_clamp
        self.to_q = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), AdaptiveGroupNorm(dim, max_groups))
        self.to_k = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), AdaptiveGroupNorm(dim, max_groups))
        self.to_v = nn.Conv2d(dim, dim, 1, bias=False)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.pos = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.GELU(), nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        )
        self.proj = nn.Sequential(nn.Conv2d(dim, dim, 1), AdaptiveGroupNorm(dim, max_groups))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        return x.reshape(batch, self.num_heads, channels // self.num_heads, height * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        mixed = channel_attention(
            self._heads(self.to_q(x)), self._heads(self.to_k(x)), self._heads(self.to_v(x)),
            self.temperature, self.logit_clamp,
        )  # fmt: skip
        return self.proj(mixed.reshape(x.shape) + self.pos(x))


__all__ = ["NORMALIZE_EPS", "ChannelSelfAttention", "channel_attention"]
