"""Cross-shaped window (CSWin) self-attention for ``(B, C, H, W)`` maps.

:class:`CSWinAttention` follows Dong et al., *CSWin Transformer: A General Vision
Transformer Backbone with Cross-Shaped Windows*, CVPR 2022:

* one ``Conv1×1(C → 3C)`` gives queries, keys and values; the ``h`` heads are split in two
  halves. The first ``⌊h/2⌋`` heads (the first channels) attend inside **horizontal
  stripes**: the rows are cut into bands of ``s`` consecutive rows spanning the full width,
  and a token attends to the ``s × W`` tokens of its band. The other heads attend inside
  **vertical stripes** of ``s`` consecutive columns (``H × s`` tokens). Together a token sees
  a cross-shaped window;
* the positional encoding is LePE: a depthwise 3×3 convolution of the values, computed
  inside each stripe (zero padded at the stripe borders) and added to that branch's
  attention output, so the output of a head depends on its stripe only;
* the two halves are concatenated (heads in order) and projected by ``Conv1×1(C → C)``.

A stripe is never wider than the map: ``s_eff = min(s, H)`` rows for the horizontal
stripes and ``min(s, W)`` columns for the vertical ones (on a map smaller than ``s`` the
stripe is the whole map, i.e. global attention). When ``H`` is not a multiple of
``s_eff``, the last, partial band of ``r`` rows is padded to ``s_eff`` rows with
:func:`~hsikit.models.layers.safe_padding.safe_pad2d` applied to that band alone: reflect
(the default ``pad_mode``) when the band is tall enough (``s_eff − r < r``), replicate
otherwise, so padding never fails and never copies rows from a neighbouring band. Padded
tokens are masked out of the keys, so they receive no attention weight; they only feed
the LePE convolution of the band's last real row (as an image border would) and are
cropped from the output. The same holds for columns.

:class:`AxialLegacyAttention` is the attention of the CSWIN v2 reference at commit
56c126d (``cswin_mode="axial_legacy"``), kept for comparison: despite its name, every image
row is one sequence for all heads (and every column one sequence), with a relative bias
that repeats with period ``s``, LePE on the attention output, and the two branches
averaged. A token there sees its row and its column only, not a stripe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from hsikit.errors import ConfigError
from hsikit.models.layers.safe_padding import PadMode, check_pad_mode, safe_pad2d

CSWinMode = Literal["stripe", "axial_legacy"]
CSWIN_MODES: tuple[str, ...] = get_args(CSWinMode)

CHECKPOINT_MIN_TOKENS = 4096
"""In training, maps with at least this many pixels are gradient-checkpointed per branch (CSWIN v2's
``ckpt_min_tokens``)."""


def _pad_last_stripe(x: torch.Tensor, rows_in_last: int, pad: int, pad_mode: PadMode) -> torch.Tensor:
    """Pad the last ``rows_in_last`` rows of ``x`` (B, C, H, W) by ``pad`` rows, using only those rows."""
    height = x.shape[-2]
    tail = safe_pad2d(x[:, :, height - rows_in_last :], (0, 0, 0, pad), mode=pad_mode)
    return torch.cat([x[:, :, : height - rows_in_last], tail], dim=2)


def horizontal_stripe_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    num_heads: int,
    split_size: int,
    lepe: nn.Module,
    pad_mode: PadMode = "reflect",
) -> torch.Tensor:
    """Multi-head attention inside horizontal stripes of ``min(split_size, H)`` rows, plus LePE.

    Args:
        query, key, value: ``(B, C, H, W)`` with ``C`` divisible by ``num_heads``.
        num_heads: heads h (channel ``c`` belongs to head ``c // (C / h)``).
        split_size: stripe height s.
        lepe: depthwise convolution ``(B', C, s, W) → (B', C, s, W)`` applied to the values of each stripe.
        pad_mode: how the last partial stripe is padded (see the module docstring).

    Returns:
        ``(B, C, H, W)``: softmax attention over the ``s × W`` tokens of each token's stripe
        (scale ``(C/h)^-1/2``) plus the stripe's LePE.
    """
    batch, channels, height, width = query.shape
    stripe = min(split_size, height)
    rows_in_last = height % stripe
    pad = (stripe - rows_in_last) % stripe
    if pad:
        query, key, value = (_pad_last_stripe(t, rows_in_last, pad, pad_mode) for t in (query, key, value))
    stripes = (height + pad) // stripe
    head_dim = channels // num_heads
    tokens_per_stripe = stripe * width

    def to_tokens(t: torch.Tensor) -> torch.Tensor:
        # (B, h·d, n·s, W) -> (B·n, h, s·W, d)
        t = t.reshape(batch, num_heads, head_dim, stripes, stripe, width).permute(0, 3, 1, 4, 5, 2)
        return t.reshape(batch * stripes, num_heads, tokens_per_stripe, head_dim)

    mask = None
    if pad:
        valid = torch.ones(stripes, stripe, width, dtype=torch.bool, device=query.device)
        valid[-1, rows_in_last:] = False
        mask = valid.reshape(stripes, 1, 1, tokens_per_stripe).repeat(batch, 1, 1, 1)
    attended = F.scaled_dot_product_attention(to_tokens(query), to_tokens(key), to_tokens(value), attn_mask=mask)
    attended = attended.reshape(batch, stripes, num_heads, stripe, width, head_dim).permute(0, 2, 5, 1, 3, 4)
    attended = attended.reshape(batch, channels, stripes * stripe, width)

    value_stripes = value.reshape(batch, channels, stripes, stripe, width).transpose(1, 2)
    positional = lepe(value_stripes.reshape(batch * stripes, channels, stripe, width))
    positional = positional.reshape(batch, stripes, channels, stripe, width).transpose(1, 2)
    positional = positional.reshape(batch, channels, stripes * stripe, width)
    return (attended + positional)[:, :, :height]


def vertical_stripe_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    num_heads: int,
    split_size: int,
    lepe: nn.Module,
    pad_mode: PadMode = "reflect",
) -> torch.Tensor:
    """Attention inside vertical stripes of ``min(split_size, W)`` columns (horizontal stripes of the transpose)."""
    transposed = horizontal_stripe_attention(
        query.transpose(-1, -2), key.transpose(-1, -2), value.transpose(-1, -2), num_heads, split_size, lepe, pad_mode
    )
    return transposed.transpose(-1, -2)


def _maybe_checkpoint(
    module: nn.Module, function: Callable[..., torch.Tensor], *tensors: torch.Tensor, min_tokens: int | None
) -> torch.Tensor:
    height, width = tensors[0].shape[-2:]
    if (
        min_tokens is not None
        and module.training
        and torch.is_grad_enabled()
        and height * width >= min_tokens
        and any(t.requires_grad for t in tensors)
    ):
        return checkpoint(function, *tensors, use_reentrant=False)
    return function(*tensors)


def _check_heads(dim: int, num_heads: int, split_size: int, owner: str, minimum_heads: int) -> None:
    if num_heads < minimum_heads or dim % num_heads != 0:
        raise ConfigError(
            f"{owner} needs at least {minimum_heads} heads dividing dim, got dim={dim}, num_heads={num_heads}; "
            "choose num_heads among the divisors of dim"
        )
    if split_size < 1:
        raise ConfigError(f"{owner}: split_size (stripe width) must be >= 1, got {split_size}")


class CSWinAttention(nn.Module):
    """Cross-shaped window attention (Dong et al., CVPR 2022) on ``(B, C, H, W)`` maps.

    Args:
        dim: channels C (divisible by ``num_heads``).
        num_heads: heads h >= 2; the first ``⌊h/2⌋`` attend in horizontal stripes, the rest in vertical ones.
        split_size: stripe width s (rows per horizontal stripe, columns per vertical stripe).
        qkv_bias: bias of the query/key/value projection.
        pad_mode: padding of a partial last stripe (``"reflect"``, ``"replicate"``, ``"circular"``
            or ``"zeros"``; reflect and circular fall back to replicate when the stripe is too short).
        checkpoint_min_tokens: in training, maps with at least this many pixels recompute each
            branch in the backward pass instead of storing its attention (None: never).

    Shapes: ``(B, C, H, W)`` → ``(B, C, H, W)`` for any ``H, W >= 1``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        split_size: int = 7,
        qkv_bias: bool = True,
        pad_mode: PadMode = "reflect",
        checkpoint_min_tokens: int | None = CHECKPOINT_MIN_TOKENS,
    ) -> None:
        super().__init__()
        _check_heads(dim, num_heads, split_size, "CSWinAttention", minimum_heads=2)
        check_pad_mode(pad_mode, "CSWinAttention")
        head_dim = dim // num_heads
        self.dim = dim
        self.num_heads = num_heads
        self.split_size = int(split_size)
        self.pad_mode: PadMode = pad_mode
        self.checkpoint_min_tokens = checkpoint_min_tokens
        self.horizontal_heads = num_heads // 2
        self.vertical_heads = num_heads - self.horizontal_heads
        self.horizontal_channels = self.horizontal_heads * head_dim
        vertical_channels = dim - self.horizontal_channels
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)
        self.lepe_h = nn.Conv2d(self.horizontal_channels, self.horizontal_channels, 3, padding=1,
                                groups=self.horizontal_channels)  # fmt: skip
        self.lepe_v = nn.Conv2d(vertical_channels, vertical_channels, 3, padding=1, groups=vertical_channels)
        self.proj = nn.Conv2d(dim, dim, 1)

    def _horizontal(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return horizontal_stripe_attention(
            query, key, value, self.horizontal_heads, self.split_size, self.lepe_h, self.pad_mode
        )

    def _vertical(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return vertical_stripe_attention(
            query, key, value, self.vertical_heads, self.split_size, self.lepe_v, self.pad_mode
        )

    def branch_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two halves before the output projection.

        Returns:
            ``(horizontal, vertical)``: ``(B, C_h, H, W)`` from the horizontal-stripe heads and
            ``(B, C − C_h, H, W)`` from the vertical-stripe heads (``C_h`` = :attr:`horizontal_channels`).
        """
        query, key, value = self.qkv(x).chunk(3, dim=1)
        split = self.horizontal_channels
        horizontal = _maybe_checkpoint(
            self, self._horizontal, query[:, :split], key[:, :split], value[:, :split],
            min_tokens=self.checkpoint_min_tokens,
        )  # fmt: skip
        vertical = _maybe_checkpoint(
            self, self._vertical, query[:, split:], key[:, split:], value[:, split:],
            min_tokens=self.checkpoint_min_tokens,
        )  # fmt: skip
        return horizontal, vertical

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        return self.proj(torch.cat(self.branch_outputs(x), dim=1))


class AxialLegacyAttention(nn.Module):
    """The CSWIN v2 (56c126d) "CSWin" block: axial row/column attention with a periodic bias.

    Kept to compare against the reference; prefer :class:`CSWinAttention`.

    ``x`` is zero-padded right/bottom to multiples of ``s``. Horizontal branch: ``qkv_h``
    (Conv1×1, all ``h`` heads); every row is a sequence of ``W'`` tokens; the bias between
    positions ``i, j`` of a row is ``T_h[s−1, (i mod s) − (j mod s) + s − 1]``; then
    ``y + GELU(DWConv3×3(y))``. Vertical branch: the same per column with
    ``T_v[(i mod s) − (j mod s) + s − 1, s−1]``. Output ``proj((h + v) / 2)`` cropped back.
    Padded tokens are not masked (as in the reference).

    Args:
        dim: channels C; num_heads: heads (divide C); split_size: bias period s.
        checkpoint_min_tokens: as in :class:`CSWinAttention`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        split_size: int = 7,
        checkpoint_min_tokens: int | None = CHECKPOINT_MIN_TOKENS,
    ) -> None:
        super().__init__()
        _check_heads(dim, num_heads, split_size, "AxialLegacyAttention", minimum_heads=1)
        self.num_heads = num_heads
        self.split_size = int(split_size)
        self.checkpoint_min_tokens = checkpoint_min_tokens
        self.qkv_h = nn.Conv2d(dim, 3 * dim, 1)
        self.qkv_v = nn.Conv2d(dim, 3 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.lepe_h = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.lepe_v = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        span = 2 * self.split_size - 1
        self.bias_table_h = nn.Parameter(torch.empty(span, span, num_heads))
        self.bias_table_v = nn.Parameter(torch.empty(span, span, num_heads))
        nn.init.trunc_normal_(self.bias_table_h, std=0.02)
        nn.init.trunc_normal_(self.bias_table_v, std=0.02)

    def _periodic_index(self, length: int, device: torch.device) -> torch.Tensor:
        position = torch.arange(length, device=device) % self.split_size
        return position[:, None] - position[None, :] + self.split_size - 1

    def _rows(self, qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        # qkv (B, 3C, H, W): every row is one sequence of W tokens; bias (heads, W, W).
        batch, triple, height, width = qkv.shape
        channels = triple // 3
        head_dim = channels // self.num_heads
        tokens = qkv.reshape(batch, 3, self.num_heads, head_dim, height, width).permute(1, 0, 4, 2, 5, 3)
        query, key, value = tokens.reshape(3, batch * height, self.num_heads, width, head_dim)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias.to(query.dtype))
        return out.reshape(batch, height, self.num_heads, width, head_dim).permute(0, 2, 4, 1, 3).reshape(
            batch, channels, height, width
        )

    def _horizontal(self, x: torch.Tensor) -> torch.Tensor:
        index = self._periodic_index(x.shape[-1], x.device)
        bias = self.bias_table_h[self.split_size - 1][index].permute(2, 0, 1)
        out = self._rows(self.qkv_h(x), bias)
        return out + F.gelu(self.lepe_h(out))

    def _vertical(self, x: torch.Tensor) -> torch.Tensor:
        index = self._periodic_index(x.shape[-2], x.device)
        bias = self.bias_table_v[:, self.split_size - 1][index].permute(2, 0, 1)
        out = self._rows(self.qkv_v(x).transpose(-1, -2), bias).transpose(-1, -2)
        return out + F.gelu(self.lepe_v(out))

    def branch_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(horizontal, vertical)`` branch outputs ``(B, C, H, W)`` before averaging and projection."""
        height, width = x.shape[-2:]
        pad_bottom, pad_right = (-height) % self.split_size, (-width) % self.split_size
        padded = F.pad(x, [0, pad_right, 0, pad_bottom]) if pad_bottom or pad_right else x
        horizontal = _maybe_checkpoint(self, self._horizontal, padded, min_tokens=self.checkpoint_min_tokens)
        vertical = _maybe_checkpoint(self, self._vertical, padded, min_tokens=self.checkpoint_min_tokens)
        return horizontal[:, :, :height, :width], vertical[:, :, :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        horizontal, vertical = self.branch_outputs(x)
        return self.proj((horizontal + vertical) / 2)


def build_spatial_attention(
    mode: CSWinMode,
    dim: int,
    num_heads: int,
    split_size: int,
    pad_mode: PadMode = "reflect",
    checkpoint_min_tokens: int | None = CHECKPOINT_MIN_TOKENS,
) -> nn.Module:
    """:class:`CSWinAttention` for ``mode="stripe"``, :class:`AxialLegacyAttention` for ``"axial_legacy"``."""
    if mode == "stripe":
        return CSWinAttention(
            dim, num_heads, split_size, pad_mode=pad_mode, checkpoint_min_tokens=checkpoint_min_tokens
        )
    if mode == "axial_legacy":
        return AxialLegacyAttention(dim, num_heads, split_size, checkpoint_min_tokens=checkpoint_min_tokens)
    raise ConfigError(f"unknown cswin_mode {mode!r}; choose one of {', '.join(CSWIN_MODES)}")


__all__ = [
    "CHECKPOINT_MIN_TOKENS",
    "CSWIN_MODES",
    "AxialLegacyAttention",
    "CSWinAttention",
    "CSWinMode",
    "build_spatial_attention",
    "horizontal_stripe_attention",
    "vertical_stripe_attention",
]
