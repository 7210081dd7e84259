"""HSIFusionNet: a window-attention encoder-decoder for RGB → hyperspectral reconstruction.

HSIFusionNet v2.5.3 "Lightning Pro" by T. S. C. Soreze, from the *Hyperspectral-Imaging-Toolkit*
repository (``TSOR666/Hyperspectral-Imaging-Toolkit``, folder ``HSIFUSION&SHARP/``, file
``hsifusion_v252_complete.py``, MIT). Written for hsikit from the description in
``specs/001_hsifusion_sharp.md`` §2, with the fixes of its §4.

Shapes: ``(B, 3, H, W)`` RGB → ``(B, 31, H, W)`` spectra for any ``H, W >= 1``: the input
is padded on the right/bottom to a multiple of 8 (reflect, or replicate where the image is
too small to reflect) and the output cropped back.

Topology (``C = base_channels``, stage widths ``d_i = C·2^i``, GroupNorm groups
``g(d) = max(1, min(32, d // 8))``)::

    stem     Conv3x3(in→C/2)+BN+GELU → Conv3x3(C/2→C/2)+BN+GELU → Conv3x3(C/2→C)+BN
    stage i  downsample (i > 0): GN → Conv3x3 stride 2 (d_{i-1}→d_i) → GN
             depths[i] × LightningProBlock(d_i, heads = num_heads·2^min(i,2),
                                          window = max(window_size // 2^i, 4)); keep skip_i
             attention: sliding window (stages 0-1 with use_sliding_window), else global
             (top-k sparse at stages 2-3 with use_sparse_attention); FFN: mixture of
             experts in the odd blocks of a stage with use_moe, else an MLP
    decoder  i = 3, 2, 1: ConvT2x2 stride 2 (d_i→d_{i-1})+GN+GELU;
             x += CrossAttention(LN(x), LN(skip_{i-1})) (use_cross_attention);
             x = [Conv3x3(2d→d)+BN+GELU → Conv3x3(d→d)+BN+GELU](cat[x, skip_{i-1}])
    head     Conv3x3(C→C/2)+BN+GELU → Conv1x1(C/2→out)      (linear output)
    optional uncertainty head Conv3x3(C→C/2)+BN+ReLU → Conv1x1 → Softplus(β=5)

A :class:`LightningProBlock` on tokens ``X`` is ``X += DP(ls1 ⊙ Attn(LN(X)))``;
``Y += DP(ls2 ⊙ SpectralAttention(Y))`` on the map; ``X += DP(ls3 ⊙ FFN(LN(X)))``, with
layer scales initialised to 1e-5.

Fixes relative to the reference (spec §2 and §4):

* RoPE is a true rotation and 2-D (row and column inside the window,
  :class:`~hsikit.models.layers.rotary.RotaryEmbedding2D`); the reference mixed a half-split
  table with interleaved pairs over the 1-D raster index;
* sliding windows are padded so that every pixel is covered (the reference's stride grid left
  the last rows/columns uncovered for odd windows), padded pixels are masked out of the keys
  (they took part in attention), and overlapping window outputs are averaged;
* the decoder cross-attention is residual (``x + CrossAttn``; the reference replaced ``x``) and
  pools its keys/values to at most ``kv_token_cap`` tokens (it attended 246 k × 246 k pairs
  at full ARAD resolution);
* the spectral block is channel ("transposed") attention over the real feature channels
  (:class:`SpectralChannelAttention`, as MST++'s S-MSA / Restormer's MDTA); the reference's
  softmax ran over a degenerate 2-9 entry axis of reshaped features;
* the mixture-of-experts balance loss is differentiable (Switch-style,
  :mod:`hsikit.models.layers.moe`); the reference's was built from counts;
* the uncertainty head is off by default (the reference built it but never trained it);
* any input size works (padding); the reference needed ``H, W >= 64``.

Auxiliary losses: after each forward pass, :meth:`HSIFusionNet.auxiliary_loss` returns
``auxiliary_loss_weight × mean`` of the mixture-of-experts balance losses of that pass (a
differentiable scalar, 0 without experts); add it to the reconstruction loss.
:meth:`HSIFusionNet.auxiliary_metrics` gives detached values for logging. ``forward``
always returns the spectra tensor; :meth:`HSIFusionNet.forward_with_uncertainty` also
returns the uncertainty map when the head is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models.layers.drop import DropPath, linear_drop_path_rates
from hsikit.models.layers.moe import MixtureOfExperts
from hsikit.models.layers.padding import pad_to_multiple
from hsikit.models.layers.presets import register_presets
from hsikit.models.layers.rotary import RotaryEmbedding2D
from hsikit.models.layers.sparse_attention import dense_attention, topk_attention
from hsikit.models.layers.token_pool import pool_to_token_cap

PAD_MULTIPLE = 8
"""Three stride-2 downsamplings: H and W are padded to a multiple of 2³."""


def group_norm_groups(channels: int) -> int:
    """GroupNorm groups of HSIFusionNet: ``max(1, min(32, channels // 8))``, lowered until it divides ``channels``."""
    groups = max(1, min(32, channels // 8))
    while channels % groups:
        groups -= 1
    return groups


def _map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H·W, C)


def _tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


def _conv_bn(in_channels: int, out_channels: int, activation: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(activation)
    return nn.Sequential(*layers)


def sliding_window_padded_size(size: int, window: int, stride: int) -> int:
    """Smallest padded length ``P >= max(size, window)`` whose stride grid of windows ends exactly at ``P``.

    Windows start at ``0, stride, 2·stride, ...`` up to ``P - window``; ``(P - window)``
    being a multiple of ``stride`` guarantees every position ``< size`` is covered.
    """
    if size <= window:
        return window
    return window + math.ceil((size - window) / stride) * stride


class SlidingWindowAttention(nn.Module):
    """Self-attention inside overlapping ``window × window`` windows, merged by averaging.

    Windows move by ``stride = window - window // 2`` (half-overlapping). The map is
    zero-padded on the bottom/right to :func:`sliding_window_padded_size`, padded pixels are
    masked out of the keys, and each pixel's output is the mean of the outputs of the
    windows that contain it. Inside a window, positions are encoded by 2-D RoPE on queries
    and keys (``use_rope``) or by a learned Swin relative-position bias table.

    Args:
        dim: token channels ``C``; heads: attention heads (``C`` divisible; with RoPE
            ``C / heads`` a multiple of 4); window: window side (>= 2).

    Shapes: ``forward(tokens (B, H·W, C), height, width)`` → ``(B, H·W, C)``.
    """

    def __init__(self, dim: int, heads: int, window: int, use_rope: bool = True) -> None:
        super().__init__()
        if window < 2:
            raise ConfigError(f"sliding windows need a side >= 2, got {window}")
        self.heads = heads
        self.head_dim = dim // heads
        self.window = window
        self.stride = window - window // 2
        self.windows_per_chunk = 4096
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rope = RotaryEmbedding2D(self.head_dim) if use_rope else None
        if use_rope:
            self.relative_bias_table = None
        else:
            self.relative_bias_table = nn.Parameter(torch.empty((2 * window - 1) ** 2, heads))
            nn.init.trunc_normal_(self.relative_bias_table, std=0.02)
            rows = torch.arange(window).repeat_interleave(window)
            cols = torch.arange(window).repeat(window)
            relative_rows = rows[:, None] - rows[None, :] + window - 1
            relative_cols = cols[:, None] - cols[None, :] + window - 1
            self.register_buffer(
                "relative_index", relative_rows * (2 * window - 1) + relative_cols, persistent=False
            )

    def window_attention(self, windows: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        """Attention within each window: ``(W_n, T, C)`` tokens, ``(W_n, T)`` key mask → ``(W_n, T, C)``.

        ``T = window²`` tokens per window in raster order; keys with ``key_valid`` False are ignored.
        """
        count, tokens, channels = windows.shape
        q, k, v = self.qkv(windows).reshape(count, tokens, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        keep = key_valid[:, None, None, :]
        if self.rope is not None:
            q = self.rope(q, self.window, self.window)
            k = self.rope(k, self.window, self.window)
            mask: torch.Tensor = keep
        else:
            assert self.relative_bias_table is not None
            bias = self.relative_bias_table[self.relative_index.reshape(-1)].reshape(tokens, tokens, self.heads)
            bias = bias.permute(2, 0, 1).unsqueeze(0).to(q.dtype)
            mask = bias.masked_fill(~keep, float("-inf"))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(attended.transpose(1, 2).reshape(count, tokens, channels))

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``(B, H·W, C)`` → ``(B, H·W, C)``."""
        batch, _, channels = tokens.shape
        window, stride = self.window, self.stride
        padded_height = sliding_window_padded_size(height, window, stride)
        padded_width = sliding_window_padded_size(width, window, stride)
        padding = [0, padded_width - width, 0, padded_height - height]
        feature_map = F.pad(_tokens_to_map(tokens, height, width), padding)
        valid = F.pad(tokens.new_ones(1, 1, height, width), padding)

        columns = F.unfold(feature_map, window, stride=stride)  # (B, C·T, L), channel-major
        window_count, window_tokens = columns.shape[-1], window * window
        windows = columns.reshape(batch, channels, window_tokens, window_count).permute(0, 3, 2, 1)
        key_valid = F.unfold(valid, window, stride=stride)[0].transpose(0, 1) > 0.5  # (L, T)
        windows = windows.reshape(batch * window_count, window_tokens, channels)
        key_valid = key_valid.repeat(batch, 1)
        # Chunks of windows bound the memory of the qkv projections on large images.
        chunk = self.windows_per_chunk
        attended = torch.cat(
            [
                self.window_attention(windows[start : start + chunk], key_valid[start : start + chunk])
                for start in range(0, windows.shape[0], chunk)
            ]
        )

        attended_columns = attended.reshape(batch, window_count, window_tokens, channels).permute(0, 3, 2, 1)
        output_size = (padded_height, padded_width)
        attended_columns = attended_columns.reshape(batch, channels * window_tokens, window_count)
        summed = F.fold(attended_columns, output_size, window, stride=stride)
        coverage = F.fold(valid.new_ones(1, window_tokens, window_count), output_size, window, stride=stride)
        merged = summed / coverage  # every pixel lies in >= 1 window by construction of the padding
        return _map_to_tokens(merged[:, :, :height, :width])


class GlobalAttention(nn.Module):
    """Multi-head self-attention over all ``N`` tokens (qkv with bias, linear projection).

    Shapes: ``forward(tokens (B, N, C), height, width)`` → ``(B, N, C)``.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def split(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(q, k, v)``, each ``(B, heads, N, C / heads)``."""
        batch, count, channels = tokens.shape
        qkv = self.qkv(tokens).reshape(batch, count, 3, self.heads, channels // self.heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``(B, N, C)`` → ``(B, N, C)``."""
        q, k, v = self.split(tokens)
        attended = dense_attention(q, k, v)
        return self.proj(attended.transpose(1, 2).reshape(tokens.shape))


class DynamicSparseAttention(GlobalAttention):
    """Global attention where each query keeps its ``⌊N·keep_ratio⌋`` best keys (at least 1).

    Queries are divided by a learnable temperature ``τ`` (initialised to 0.1, clamped
    ``>= 0.01``); scores ``(q/τ)·kᵀ / sqrt(d_h)``; softmax over the kept scores
    (:func:`~hsikit.models.layers.sparse_attention.topk_attention`, streamed in blocks, so
    the ``N × N`` score matrix is never materialised).
    """

    def __init__(self, dim: int, heads: int, keep_ratio: float = 0.5) -> None:
        super().__init__(dim, heads)
        if not 0.0 < keep_ratio <= 1.0:
            raise ConfigError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
        self.keep_ratio = keep_ratio
        self.temperature = nn.Parameter(torch.tensor(0.1))

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``(B, N, C)`` → ``(B, N, C)``."""
        q, k, v = self.split(tokens)
        keep = max(1, math.floor(tokens.shape[1] * self.keep_ratio))
        attended = topk_attention(q / self.temperature.clamp_min(0.01), k, v, keep)
        return self.proj(attended.transpose(1, 2).reshape(tokens.shape))


class SpectralChannelAttention(nn.Module):
    """Channel ("transposed") attention over the ``C`` feature channels of ``(B, C, H, W)`` maps.

    ``q, k, v = Conv1x1(C → 3C, no bias)``, split into ``heads`` groups of ``d = C/heads``
    channels; ``q`` and ``k`` are L2-normalised along the pixels; per head the ``d × d`` map
    ``softmax(t_h · q kᵀ)`` (``t_h`` a learnable temperature, initialised to 1) mixes the value
    channels; ``Conv1x1`` projection. Cost is linear in the number of pixels. The block adds
    the residual; this module returns only the attention output.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        batch, channels, height, width = x.shape
        q, k, v = (
            part.reshape(batch, self.heads, channels // self.heads, height * width)
            for part in self.qkv(x).chunk(3, dim=1)
        )
        q = F.normalize(q.float(), dim=-1)
        k = F.normalize(k.float(), dim=-1)
        weights = torch.softmax(self.temperature * (q @ k.transpose(-2, -1)), dim=-1)  # (B, h, d, d)
        mixed = (weights.to(v.dtype) @ v).reshape(batch, channels, height, width)
        return self.proj(mixed)


class FeedForward(nn.Module):
    """``Linear(C, rC) → GELU → Dropout → Linear(rC, C) → Dropout`` on ``(..., C)`` tokens."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = max(1, round(mlp_ratio * dim))
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., C)`` → ``(..., C)``."""
        return self.net(x)


class LightningProBlock(nn.Module):
    """HSIFusionNet's transformer block on ``(B, C, H, W)`` maps (see the module docstring)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        *,
        attention: str,
        use_rope: bool,
        enable_spectral: bool,
        use_moe: bool,
        num_experts: int,
        mlp_ratio: float,
        dropout: float,
        drop_path: float,
        layer_scale_init: float = 1e-5,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention: nn.Module
        if attention == "sliding":
            self.attention = SlidingWindowAttention(dim, heads, window, use_rope)
        elif attention == "sparse":
            self.attention = DynamicSparseAttention(dim, heads)
        else:
            self.attention = GlobalAttention(dim, heads)
        self.layer_scale1 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.spectral = SpectralChannelAttention(dim, heads) if enable_spectral else None
        self.layer_scale2 = nn.Parameter(torch.full((dim,), layer_scale_init)) if enable_spectral else None
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.ffn: nn.Module = (
            MixtureOfExperts(dim, num_experts, mlp_ratio, dropout) if use_moe else FeedForward(dim, mlp_ratio, dropout)
        )
        self.layer_scale3 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.drop_path = DropPath(drop_path)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        tokens = _map_to_tokens(x)
        tokens = tokens + self.drop_path(self.layer_scale1 * self.attention(self.norm1(tokens), height, width))
        if self.spectral is not None and self.layer_scale2 is not None:
            feature_map = _tokens_to_map(tokens, height, width)
            scale = self.layer_scale2.view(1, -1, 1, 1)
            feature_map = feature_map + self.drop_path(scale * self.spectral(feature_map))
            tokens = _map_to_tokens(feature_map)
        tokens = tokens + self.drop_path(self.layer_scale3 * self.ffn(self.norm3(tokens)))
        return _tokens_to_map(tokens, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class DecoderCrossAttention(nn.Module):
    """Residual cross-attention from decoder tokens to encoder skip tokens.

    ``x + proj(Attn(q = Linear(LN(x)), k, v = Linear(pool(LN(skip)))))``: the skip map is
    layer-normalised, average-pooled to at most ``kv_token_cap`` tokens
    (:func:`~hsikit.models.layers.token_pool.pool_to_token_cap`) and projected to keys and values.

    Shapes: ``x`` and ``skip`` ``(B, C, H, W)`` → ``(B, C, H, W)``.
    """

    def __init__(self, dim: int, heads: int, kv_token_cap: int | None = 1024) -> None:
        super().__init__()
        self.heads = heads
        self.kv_token_cap = kv_token_cap
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W), (B, C, H, W)`` → ``(B, C, H, W)``."""
        batch, channels, height, width = x.shape
        head_dim = channels // self.heads
        tokens = _map_to_tokens(x)
        context_map = _tokens_to_map(self.norm_context(_map_to_tokens(skip)), skip.shape[-2], skip.shape[-1])
        context = _map_to_tokens(pool_to_token_cap(context_map, self.kv_token_cap))
        q = self.q(self.norm_query(tokens)).reshape(batch, -1, self.heads, head_dim).transpose(1, 2)
        k, v = self.kv(context).reshape(batch, -1, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        attended = dense_attention(q, k, v).transpose(1, 2).reshape(batch, -1, channels)
        return _tokens_to_map(tokens + self.proj(attended), height, width)


class HSIFusionNet(nn.Module):
    """HSIFusionNet v2.5.3 "Lightning Pro" (Soreze, Hyperspectral-Imaging-Toolkit): RGB → 31-band spectra.

    Build it through the registry (``create_model("hsifusion_base")``; presets
    ``hsifusion_tiny``, ``_small``, ``_base``, ``_large``, ``_xlarge``); the defaults here are
    the reference ``LightningProConfig`` (the base size) with the fixes of the module docstring.

    Args:
        in_channels: input channels (3).
        out_channels: output bands (31).
        base_channels: width ``C`` of stage 0 (128, even); stage ``i`` has ``C·2^i`` channels.
        depths: blocks per stage (2, 2, 8, 2).
        num_heads: heads of stage 0; stage ``i`` has ``num_heads·2^min(i, 2)`` (8).
        window_size: sliding window of stage 0; stage ``i`` uses ``max(window_size // 2^i, 4)`` (8).
        mlp_ratio: MLP / expert expansion (4.0).
        use_sliding_window: sliding-window attention at stages 0 and 1 (True); else global.
        use_sparse_attention: top-k sparse global attention at stages 2 and 3 (False).
        use_moe: mixture of experts in the odd-indexed blocks of every stage (True).
        num_experts: experts per mixture (4; >= 2 with ``use_moe``).
        use_rope: 2-D RoPE in the sliding windows (True); else a relative-position bias table.
        use_cross_attention: residual decoder cross-attention to the skips (True).
        enable_spectral: channel attention in every block (True).
        dropout: dropout in MLPs and experts (0.0).
        drop_path: stochastic depth, rising linearly from 0 to this over all blocks (0.1).
        estimate_uncertainty: build the uncertainty head (False).
        auxiliary_loss_weight: weight of the balance loss in :meth:`auxiliary_loss` (0.01).
        kv_token_cap: the decoder cross-attention pools its keys/values to at most this
            many tokens (1024; None: attend every skip pixel).
        use_checkpoint: gradient checkpointing per block.

    Shapes: ``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)`` for any ``H, W >= 1``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 31,
        base_channels: int = 128,
        depths: Sequence[int] = (2, 2, 8, 2),
        num_heads: int = 8,
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        use_sliding_window: bool = True,
        use_sparse_attention: bool = False,
        use_moe: bool = True,
        num_experts: int = 4,
        use_rope: bool = True,
        use_cross_attention: bool = True,
        enable_spectral: bool = True,
        dropout: float = 0.0,
        drop_path: float = 0.1,
        estimate_uncertainty: bool = False,
        auxiliary_loss_weight: float = 0.01,
        kv_token_cap: int | None = 1024,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        depths = [int(depth) for depth in depths]
        widths = [base_channels * 2**stage for stage in range(4)]
        stage_heads = [num_heads * 2 ** min(stage, 2) for stage in range(4)]
        stage_windows = [max(window_size // 2**stage, 4) for stage in range(4)]
        self._check_arguments(
            in_channels, out_channels, base_channels, depths, widths, stage_heads, use_sliding_window, use_rope,
            use_moe, num_experts, mlp_ratio, dropout, drop_path, auxiliary_loss_weight, kv_token_cap,
        )  # fmt: skip
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.auxiliary_loss_weight = auxiliary_loss_weight
        half = base_channels // 2
        self.stem = nn.Sequential(
            _conv_bn(in_channels, half, nn.GELU()), _conv_bn(half, half, nn.GELU()), _conv_bn(half, base_channels, None)
        )
        drop_rates = linear_drop_path_rates(drop_path, sum(depths))
        self.downsamples = nn.ModuleList([nn.Identity()])
        for stage in range(1, 4):
            self.downsamples.append(
                nn.Sequential(
                    nn.GroupNorm(group_norm_groups(widths[stage - 1]), widths[stage - 1]),
                    nn.Conv2d(widths[stage - 1], widths[stage], 3, stride=2, padding=1),
                    nn.GroupNorm(group_norm_groups(widths[stage]), widths[stage]),
                )
            )
        self.stages = nn.ModuleList()
        block_index = 0
        for stage in range(4):
            if use_sliding_window and stage < 2:
                attention = "sliding"
            elif use_sparse_attention and stage >= 2:
                attention = "sparse"
            else:
                attention = "global"
            blocks = []
            for position in range(depths[stage]):
                blocks.append(
                    LightningProBlock(
                        widths[stage],
                        stage_heads[stage],
                        stage_windows[stage],
                        attention=attention,
                        use_rope=use_rope,
                        enable_spectral=enable_spectral,
                        use_moe=use_moe and position % 2 == 1,
                        num_experts=num_experts,
                        mlp_ratio=mlp_ratio,
                        dropout=dropout,
                        drop_path=drop_rates[block_index],
                        use_checkpoint=use_checkpoint,
                    )
                )
                block_index += 1
            self.stages.append(nn.Sequential(*blocks))
        self.upsamples = nn.ModuleList()
        self.cross_attentions = nn.ModuleList()
        self.fusions = nn.ModuleList()
        for stage in (3, 2, 1):
            target = widths[stage - 1]
            self.upsamples.append(
                nn.Sequential(
                    nn.ConvTranspose2d(widths[stage], target, 2, stride=2),
                    nn.GroupNorm(group_norm_groups(target), target),
                    nn.GELU(),
                )
            )
            self.cross_attentions.append(
                DecoderCrossAttention(target, stage_heads[stage - 1], kv_token_cap)
                if use_cross_attention
                else nn.Identity()
            )
            self.fusions.append(
                nn.Sequential(_conv_bn(2 * target, target, nn.GELU()), _conv_bn(target, target, nn.GELU()))
            )
        self.head = nn.Sequential(_conv_bn(base_channels, half, nn.GELU()), nn.Conv2d(half, out_channels, 1))
        self.uncertainty_head = (
            nn.Sequential(
                _conv_bn(base_channels, half, nn.ReLU()), nn.Conv2d(half, out_channels, 1), nn.Softplus(beta=5)
            )
            if estimate_uncertainty
            else None
        )
        self._initialize()

    @staticmethod
    def _check_arguments(
        in_channels: int, out_channels: int, base_channels: int, depths: list[int], widths: list[int],
        stage_heads: list[int], use_sliding_window: bool, use_rope: bool, use_moe: bool, num_experts: int,
        mlp_ratio: float, dropout: float, drop_path: float, auxiliary_loss_weight: float, kv_token_cap: int | None,
    ) -> None:  # fmt: skip
        if in_channels < 1 or out_channels < 1:
            raise ConfigError(
                f"HSIFusionNet needs in_channels and out_channels >= 1, got {in_channels} and {out_channels}"
            )
        if base_channels < 2 or base_channels % 2:
            raise ConfigError(
                f"HSIFusionNet base_channels must be even and >= 2 (the stem halves it), got {base_channels}"
            )
        if len(depths) != 4 or min(depths) < 1:
            raise ConfigError(f"HSIFusionNet has 4 stages: depths needs 4 entries >= 1, got {depths}")
        for stage, (width, heads) in enumerate(zip(widths, stage_heads)):
            if heads < 1 or width % heads:
                raise ConfigError(
                    f"HSIFusionNet stage {stage} has {width} channels and num_heads·2^{min(stage, 2)} = {heads} "
                    "heads, which do not divide them; choose num_heads dividing base_channels"
                )
            if use_sliding_window and use_rope and stage < 2 and (width // heads) % 4:
                raise ConfigError(
                    f"2-D RoPE needs a head dimension divisible by 4; stage {stage} has {width} channels in {heads} "
                    f"heads = {width // heads} per head. Choose base_channels / num_heads divisible by 4, or "
                    "use_rope=False"
                )
        if use_moe and num_experts < 2:
            raise ConfigError(f"use_moe needs num_experts >= 2, got {num_experts}; set use_moe=False for plain MLPs")
        if mlp_ratio <= 0 or not 0.0 <= dropout < 1.0 or not 0.0 <= drop_path < 1.0 or auxiliary_loss_weight < 0:
            raise ConfigError(
                "HSIFusionNet needs mlp_ratio > 0, dropout and drop_path in [0, 1) and auxiliary_loss_weight >= 0, "
                f"got {mlp_ratio}, {dropout}, {drop_path}, {auxiliary_loss_weight}"
            )
        if kv_token_cap is not None and kv_token_cap < 1:
            raise ConfigError(f"kv_token_cap must be >= 1 or None (no cap), got {kv_token_cap}")

    def _initialize(self) -> None:
        # Reference: Linear trunc-normal(0.02), bias 0; Conv2d Kaiming-normal (fan_out, ReLU),
        # bias 0; LayerNorm / BatchNorm / GroupNorm weight 1, bias 0; ConvTranspose default.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output ``(B, base_channels, H8, W8)`` of a batch padded to ``(H8, W8)`` (multiples of 8)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeMismatchError(
                f"HSIFusionNet expects a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}; "
                "add the batch axis with x[None] and pass channels first"
            )
        features = self.stem(pad_to_multiple(x, PAD_MULTIPLE))
        skips = []
        for downsample, blocks in zip(self.downsamples, self.stages):
            features = blocks(downsample(features))
            skips.append(features)
        for upsample, cross_attention, fusion, skip in zip(
            self.upsamples, self.cross_attentions, self.fusions, reversed(skips[:-1])
        ):
            features = upsample(features)
            if isinstance(cross_attention, DecoderCrossAttention):
                features = cross_attention(features, skip)
            features = fusion(torch.cat([features, skip], dim=1))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)`` (linear output, not clamped)."""
        height, width = int(x.shape[-2]), int(x.shape[-1])
        return self.head(self.features(x))[:, :, :height, :width]

    def forward_with_uncertainty(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(spectra, uncertainty)``, both ``(B, out_channels, H, W)``; uncertainty > 0 (Softplus, β = 5).

        Raises:
            ConfigError: the model was built with ``estimate_uncertainty=False``.
        """
        if self.uncertainty_head is None:
            raise ConfigError(
                "this HSIFusionNet has no uncertainty head; build it with estimate_uncertainty=True (and train the "
                "head with a loss that uses it, e.g. a Gaussian negative log-likelihood)"
            )
        height, width = int(x.shape[-2]), int(x.shape[-1])
        features = self.features(x)
        spectra = self.head(features)[:, :, :height, :width]
        return spectra, self.uncertainty_head(features)[:, :, :height, :width]

    def mixture_layers(self) -> list[MixtureOfExperts]:
        """The mixture-of-experts layers of the encoder, in order."""
        return [module for module in self.modules() if isinstance(module, MixtureOfExperts)]

    def auxiliary_loss(self) -> torch.Tensor:
        """``auxiliary_loss_weight ×`` mean balance loss of the mixtures in the last forward pass (scalar).

        Differentiable with respect to the routers; a zero scalar when the model has no
        mixtures or has not run yet. Add it to the reconstruction loss of the same pass.
        """
        losses = [layer.balance_loss for layer in self.mixture_layers() if layer.balance_loss is not None]
        if not losses:
            return next(self.parameters()).new_zeros(())
        return self.auxiliary_loss_weight * torch.stack(losses).mean()

    def auxiliary_metrics(self) -> dict[str, float]:
        """Detached values of the last forward pass for logging: ``moe_balance_loss``, ``moe_overflow_fraction``."""
        layers = [layer for layer in self.mixture_layers() if layer.balance_loss is not None]
        if not layers:
            return {}
        balance = torch.stack([layer.balance_loss.detach() for layer in layers if layer.balance_loss is not None])
        overflow = torch.stack(
            [layer.overflow_fraction for layer in layers if layer.overflow_fraction is not None]
        )
        return {"moe_balance_loss": float(balance.mean()), "moe_overflow_fraction": float(overflow.mean())}


# ----------------------------------------------------------------------------- presets
HSIFUSION_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"base_channels": 64, "depths": (2, 2, 4, 2), "num_heads": 4, "num_experts": 2, "use_moe": False},
    "small": {"base_channels": 96, "depths": (2, 2, 6, 2), "num_heads": 6, "num_experts": 4, "use_moe": False},
    "base": {"base_channels": 128, "depths": (2, 2, 8, 2), "num_heads": 8, "num_experts": 4, "use_moe": True},
    "large": {"base_channels": 192, "depths": (2, 2, 12, 2), "num_heads": 12, "num_experts": 6, "use_moe": True},
    "xlarge": {"base_channels": 256, "depths": (2, 4, 16, 2), "num_heads": 16, "num_experts": 8, "use_moe": True},
}
"""``create_hsifusion_lightning_pro(model_size)`` of the reference (head_dim 16 at stages 0-2, 32 at stage 3)."""

HSIFUSION_TEST_CONFIGURATION: dict[str, Any] = {
    "base_channels": 8,
    "depths": [1, 2, 1, 1],
    "num_heads": 2,
    "window_size": 4,
    "mlp_ratio": 1.0,
    "use_moe": True,
    "num_experts": 2,
}
"""A small configuration (about 100 k parameters, with one mixture of experts) for fast tests."""

_PRESET_CLASSES = register_presets(
    HSIFusionNet,
    "hsifusion",
    HSIFUSION_PRESETS,
    task="reconstruction",
    test_configuration=HSIFUSION_TEST_CONFIGURATION,
    module_name=__name__,
)
HSIFusionNetTiny = _PRESET_CLASSES["tiny"]
HSIFusionNetSmall = _PRESET_CLASSES["small"]
HSIFusionNetBase = _PRESET_CLASSES["base"]
HSIFusionNetLarge = _PRESET_CLASSES["large"]
HSIFusionNetXlarge = _PRESET_CLASSES["xlarge"]

__all__ = [
    "HSIFUSION_PRESETS",
    "HSIFUSION_TEST_CONFIGURATION",
    "DecoderCrossAttention",
    "DynamicSparseAttention",
    "FeedForward",
    "GlobalAttention",
    "HSIFusionNet",
    "HSIFusionNetBase",
    "HSIFusionNetLarge",
    "HSIFusionNetSmall",
    "HSIFusionNetTiny",
    "HSIFusionNetXlarge",
    "LightningProBlock",
    "SlidingWindowAttention",
    "SpectralChannelAttention",
    "group_norm_groups",
    "sliding_window_padded_size",
]
