"""SHARP: a sparse-attention encoder-decoder for RGB → hyperspectral reconstruction.

SHARP v3.2.2 "Hardened" by T. S. C. Soreze, from the *Hyperspectral-Imaging-Toolkit*
repository (``TSOR666/Hyperspectral-Imaging-Toolkit``, folder ``HSIFUSION&SHARP/``, file
``sharp_v322_hardened.py``, MIT). Written for hsikit from the description in
``specs/001_hsifusion_sharp.md`` §3, with the fixes of its §4.

Shapes: ``(B, 3, H, W)`` RGB → ``(B, 31, H, W)`` spectra for any ``H, W >= 1``: the input
is padded on the right/bottom to a multiple of 8 (reflect, or replicate where the image is
too small to reflect) and the output cropped back.

Topology (``D = base_dim``, stage widths ``d_i = D·2^i``, ``RMS_c`` = :class:`ChannelRMSNorm`,
``g(a, b)`` = :func:`gcd_groups`)::

    stem    Conv3x3(in→D/2, groups g(in, D/2)) → RMS_c → GELU
            → Conv3x3(D/2→D, groups g(D/2, D)) → RMS_c → GELU
    stages  i = 0..3: depths[i] × DualAttentionBlock(d_i, heads[i], mlp_ratios[i]); keep the output f_i;
            after stages 0..2: Conv2x2 stride 2 (d_i → 2 d_i) → RMS_c
    decoder i = 3, 2, 1: ConvT2x2 stride 2 (d_i → d_{i-1}) → RMS_c → GELU, then CrossAttentionFusion(x, f_{i-1})
    head    Conv3x3(D→D) → RMS_c → GELU → Conv1x1(D → 2·out); (a, gate) = split; y = act(a · σ(gate))

A :class:`DualAttentionBlock` is ``x += DP(MultiScaleAttention(RMS_c(x)))``;
``x += DP(SparseTokenAttention(x))`` (no pre-norm, as in the reference);
``x += DP(MLP(x))``. :class:`SparseTokenAttention` projects queries through a shared
Gaussian RBF kernel and keys by ``key_rbf_mode``, then runs
:func:`~hsikit.models.layers.sparse_attention.sparse_topk_attention` (dense for sparsity 0,
streaming top-k, or a 2-D local window above ``sparse_max_tokens`` tokens).

Changes from the reference (all from the spec's §3.2 and §4):

* padding to a multiple of 8, so 482 × 512 ARAD-1K frames work (the reference raised);
* ``key_rbf_mode`` defaults to ``"linear"``: with ``"mean"`` every key is a constant vector, so
  all queries rank the keys identically (kept as an option);
* the local fallback is a 2-D ``s × s`` window (``s`` from ``sparse_window_size`` as a token
  count: 49 → 7 × 7, the same 49 keys per query) instead of a 1-D raster window that wraps
  across image rows;
* the global branch of :class:`MultiScaleAttention` and the decoder cross-attention pool
  their keys/values to at most ``kv_token_cap`` tokens (the reference attended all ``N``);
* ``output_activation`` offers ``"sigmoid"`` (default: spectra are in [0, 1]), ``"tanh"``
  (the reference; its range (-1, 1) wastes half the codomain and allows negative radiance)
  and ``"none"``;
* the spectral regulariser compares the prediction with the target
  (:func:`spectral_basis_penalty`, :func:`spectral_curvature_penalty`); the reference's
  ``MSE(BᵀB·pred, pred)`` (:func:`legacy_spectral_basis_penalty`) penalises a perfect prediction;
* the unused learnable threshold and sparsemax of the reference are not built, and
  ``base_dim`` must already be a multiple of 8 (the reference rounded it up silently).

Auxiliary losses: SHARP has none inside the network; :meth:`SHARP.auxiliary_loss` returns 0
so that tasks treat every reconstruction model alike. The spectral regulariser needs the
target and is computed by :meth:`SHARP.regularization_loss` or :func:`sharp_objective`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models.layers.drop import DropPath, linear_drop_path_rates
from hsikit.models.layers.norm import ChannelRMSNorm
from hsikit.models.layers.padding import pad_to_multiple
from hsikit.models.layers.presets import register_presets
from hsikit.models.layers.sparse_attention import dense_attention, sparse_topk_attention
from hsikit.models.layers.token_pool import pool_to_token_cap

KeyRBFMode = Literal["mean", "linear", "none"]
KEY_RBF_MODES: tuple[str, ...] = get_args(KeyRBFMode)
OutputActivation = Literal["sigmoid", "tanh", "none"]
OUTPUT_ACTIVATIONS: tuple[str, ...] = get_args(OutputActivation)
RegularizerKind = Literal["basis", "curvature"]

PAD_MULTIPLE = 8
"""Three stride-2 downsamplings: H and W are padded to a multiple of 2³."""


def gcd_groups(channels_a: int, channels_b: int) -> int:
    """The largest of 32, 16, 8, 4, 2, 1 dividing ``gcd(channels_a, channels_b)`` (SHARP's convolution groups)."""
    common = math.gcd(channels_a, channels_b)
    return next(groups for groups in (32, 16, 8, 4, 2, 1) if common % groups == 0)


def _conv1x1(in_channels: int, out_channels: int, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, groups=groups, bias=bias)


def _split_heads(feature_map: torch.Tensor, heads: int) -> torch.Tensor:
    # (B, h·d, H, W) -> (B, h, H·W, d)
    batch, channels = feature_map.shape[:2]
    return feature_map.reshape(batch, heads, channels // heads, -1).transpose(-2, -1)


def _merge_heads(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # (B, h, H·W, d) -> (B, h·d, H, W)
    batch, heads, _, head_dim = tokens.shape
    return tokens.transpose(-2, -1).reshape(batch, heads * head_dim, height, width)


class RBFKernel(nn.Module):
    """Gaussian radial-basis features ``φ_m(x) = w_m · exp(-‖x - c_m‖² / (2 σ_m²))``, ``m = 1..M``.

    Centres ``c_m ~ N(0, I)``, ``σ_m = exp(s_m)`` with ``s_m = 0`` and ``w_m = 1`` at
    initialisation; all learnable. Computed in float32.

    Args:
        dim: input channels (the head dimension).
        centers: ``M``.

    Shapes: ``(..., dim)`` → ``(..., M)``.
    """

    def __init__(self, dim: int, centers: int) -> None:
        super().__init__()
        if dim < 1 or centers < 1:
            raise ConfigError(f"RBFKernel needs dim >= 1 and centers >= 1, got {dim} and {centers}")
        self.centers = nn.Parameter(torch.randn(centers, dim))
        self.log_sigma = nn.Parameter(torch.zeros(centers))
        self.weights = nn.Parameter(torch.ones(centers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` → ``(..., M)`` float32."""
        values = x.float()
        centers = self.centers.float()
        squared_distance = (
            values.pow(2).sum(dim=-1, keepdim=True) - 2.0 * values @ centers.T + centers.pow(2).sum(dim=-1)
        ).clamp_min(0.0)
        variance = torch.exp(2.0 * self.log_sigma.float())
        return self.weights.float() * torch.exp(-squared_distance / (2.0 * variance))


class SparseTokenAttention(nn.Module):
    """SHARP's ``OptimizedSparseAttention`` on ``(B, C, H, W)`` maps.

    ``qkv = Conv1x1(C → 3C, groups g(C, 3C), no bias)`` split into ``heads``; queries become
    RBF features ``φ(q)`` (one :class:`RBFKernel` shared by all heads) and keys, by
    ``key_rbf_mode``: ``"linear"`` ``W k`` (``W`` ``M × d_h``, orthogonal initialisation),
    ``"mean"`` ``mean_d(k) · 1_M``, ``"none"`` raw ``q`` and ``k`` (no RBF). Attention is
    :func:`~hsikit.models.layers.sparse_attention.sparse_topk_attention` with scale
    ``1/sqrt(dim(q'))``, followed by ``proj = Conv1x1(C → C)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        sparsity: float = 0.9,
        block_size: int = 2048,
        max_tokens: int = 8192,
        window_size: int = 49,
        k_cap: int | None = 1024,
        q_block_size: int = 1024,
        rbf_centers: int = 32,
        key_rbf_mode: KeyRBFMode = "linear",
    ) -> None:
        super().__init__()
        if key_rbf_mode not in KEY_RBF_MODES:
            raise ConfigError(f"key_rbf_mode must be one of {', '.join(KEY_RBF_MODES)}, got {key_rbf_mode!r}")
        self.heads = heads
        self.head_dim = dim // heads
        self.sparsity = sparsity
        self.block_size = block_size
        self.max_tokens = max_tokens
        self.window_size = window_size
        self.k_cap = k_cap
        self.q_block_size = q_block_size
        self.key_rbf_mode = key_rbf_mode
        self.qkv = _conv1x1(dim, 3 * dim, groups=gcd_groups(dim, 3 * dim), bias=False)
        self.rbf = RBFKernel(self.head_dim, rbf_centers) if key_rbf_mode != "none" else None
        self.key_projection = (
            nn.Parameter(nn.init.orthogonal_(torch.empty(rbf_centers, self.head_dim)))
            if key_rbf_mode == "linear"
            else None
        )
        self.rbf_centers = rbf_centers
        self.proj = _conv1x1(dim, dim)

    def query_key_features(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q', k')`` of ``(B, h, N, d_h)`` queries and keys: ``(B, h, N, M)`` each (``d_h`` for mode ``"none"``)."""
        if self.rbf is None:
            return q, k
        query_features = self.rbf(q)
        if self.key_rbf_mode == "linear":
            assert self.key_projection is not None
            key_features = k.float() @ self.key_projection.float().T
        else:
            key_features = k.float().mean(dim=-1, keepdim=True).expand(*k.shape[:-1], self.rbf_centers)
        return query_features, key_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        height, width = int(x.shape[-2]), int(x.shape[-1])
        q, k, v = (_split_heads(part, self.heads) for part in self.qkv(x).chunk(3, dim=1))
        query_features, key_features = self.query_key_features(q, k)
        attended = sparse_topk_attention(
            query_features,
            key_features,
            v,
            sparsity=self.sparsity,
            spatial_shape=(height, width),
            block_size=self.block_size,
            max_tokens=self.max_tokens,
            window_size=self.window_size,
            k_cap=self.k_cap,
            q_block_size=self.q_block_size,
        )
        return self.proj(_merge_heads(attended, height, width))


class MultiScaleAttention(nn.Module):
    """Local depthwise branch mixed with a global attention branch, on ``(B, C, H, W)`` maps.

    ``local = Conv1x1(GELU(RMS_c(DWConv k×k(x))))``; ``global``: ``qkv = Conv1x1(C → 3C,
    groups g(C, 3C), no bias)``, keys and values average-pooled to at most
    ``kv_token_cap`` tokens, softmax attention (scale ``d_h^-1/2``), ``Conv1x1`` projection.
    Output ``m·local + (1-m)·global`` with ``m = σ(α)``, ``α ~ U(-0.1, 0.1)`` learnable.
    """

    def __init__(self, dim: int, heads: int, local_window: int = 7, kv_token_cap: int | None = 1024) -> None:
        super().__init__()
        self.heads = heads
        self.kv_token_cap = kv_token_cap
        self.local = nn.Sequential(
            nn.Conv2d(dim, dim, local_window, padding=local_window // 2, groups=dim),
            ChannelRMSNorm(dim),
            nn.GELU(),
            _conv1x1(dim, dim),
        )
        self.qkv = _conv1x1(dim, 3 * dim, groups=gcd_groups(dim, 3 * dim), bias=False)
        self.proj = _conv1x1(dim, dim)
        self.mix_logit = nn.Parameter(torch.empty(()).uniform_(-0.1, 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        height, width = int(x.shape[-2]), int(x.shape[-1])
        local = self.local(x)
        query_map, key_value_map = self.qkv(x).split([x.shape[1], 2 * x.shape[1]], dim=1)
        key_map, value_map = pool_to_token_cap(key_value_map, self.kv_token_cap).chunk(2, dim=1)
        attended = dense_attention(
            _split_heads(query_map, self.heads), _split_heads(key_map, self.heads), _split_heads(value_map, self.heads)
        )
        global_branch = self.proj(_merge_heads(attended, height, width))
        mix = torch.sigmoid(self.mix_logit)
        return mix * local + (1.0 - mix) * global_branch


class CrossAttentionFusion(nn.Module):
    """Decoder fusion: the upsampled map queries the encoder skip map, with a learned gate.

    ``q = Conv1x1(RMS_c(x))``, ``k, v = Conv1x1(pool(RMS_c(skip)))`` (grouped, no bias; the
    skip is average-pooled to at most ``kv_token_cap`` tokens), softmax attention,
    ``out = Conv1x1`` projection; ``g = σ(Conv1x1(cat[x, out]) → 1 channel)`` and
    ``y = (1 - g)·x + g·out``. The skip enters only as keys and values.

    Shapes: ``x`` and ``skip`` ``(B, C, H, W)`` → ``(B, C, H, W)``.
    """

    def __init__(self, dim: int, heads: int, kv_token_cap: int | None = 1024) -> None:
        super().__init__()
        self.heads = heads
        self.kv_token_cap = kv_token_cap
        self.norm_x = ChannelRMSNorm(dim)
        self.norm_skip = ChannelRMSNorm(dim)
        self.q = _conv1x1(dim, dim, groups=gcd_groups(dim, dim), bias=False)
        self.kv = _conv1x1(dim, 2 * dim, groups=gcd_groups(dim, 2 * dim), bias=False)
        self.proj = _conv1x1(dim, dim)
        self.gate = _conv1x1(2 * dim, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W), (B, C, H, W)`` → ``(B, C, H, W)``."""
        if x.shape != skip.shape:
            raise ShapeMismatchError(
                f"CrossAttentionFusion needs the decoder map and the skip map at the same shape, got "
                f"{tuple(x.shape)} and {tuple(skip.shape)}"
            )
        height, width = int(x.shape[-2]), int(x.shape[-1])
        query = _split_heads(self.q(self.norm_x(x)), self.heads)
        key_map, value_map = self.kv(pool_to_token_cap(self.norm_skip(skip), self.kv_token_cap)).chunk(2, dim=1)
        attended = dense_attention(query, _split_heads(key_map, self.heads), _split_heads(value_map, self.heads))
        out = self.proj(_merge_heads(attended, height, width))
        gate = torch.sigmoid(self.gate(torch.cat([x, out], dim=1)))
        return (1.0 - gate) * x + gate * out


class DualAttentionBlock(nn.Module):
    """SHARP's ``EnhancedDualAttentionBlock`` on ``(B, C, H, W)`` maps.

    ``x += DP(MultiScaleAttention(RMS_c(x)))``; ``x += DP(SparseTokenAttention(x))``;
    ``x += DP(MLP(x))`` with ``MLP = RMS_c → Conv1x1(C → 2rC) → GELU →
    Conv1x1(2rC → rC, groups g(2rC, rC)) → GELU → Conv1x1(rC → C)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        drop_path: float,
        sparse_arguments: dict[str, Any],
        kv_token_cap: int | None,
        local_window: int = 7,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.norm = ChannelRMSNorm(dim)
        self.multi_scale = MultiScaleAttention(dim, heads, local_window, kv_token_cap)
        self.sparse = SparseTokenAttention(dim, heads, **sparse_arguments)
        hidden = max(1, round(mlp_ratio * dim))
        self.mlp = nn.Sequential(
            ChannelRMSNorm(dim),
            _conv1x1(dim, 2 * hidden),
            nn.GELU(),
            _conv1x1(2 * hidden, hidden, groups=gcd_groups(2 * hidden, hidden)),
            nn.GELU(),
            _conv1x1(hidden, dim),
        )
        self.drop_path = DropPath(drop_path)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.multi_scale(self.norm(x)))
        x = x + self.drop_path(self.sparse(x))
        return x + self.drop_path(self.mlp(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class SHARP(nn.Module):
    """SHARP v3.2.2 (Soreze, Hyperspectral-Imaging-Toolkit): RGB ``(B, 3, H, W)`` → spectra ``(B, 31, H, W)``.

    Build it through the registry (``create_model("sharp_base")``, presets ``sharp_tiny``,
    ``sharp_small``, ``sharp_base``, ``sharp_large``); the defaults here are the
    reference's ``SHARPv32Config`` (with the §4 changes listed in the module docstring).

    Args:
        in_channels: input channels (3).
        out_channels: output bands (31).
        base_dim: width ``D`` of stage 0 (64; a multiple of 8); stage ``i`` has ``D·2^i`` channels.
        depths: blocks per stage (2, 2, 6, 2).
        heads: attention heads per stage (4, 8, 16, 32); each stage width must divide by its heads.
        mlp_ratios: MLP expansion per stage (4 each).
        drop_path_rate: stochastic depth, rising linearly from 0 to this over all blocks (0.1).
        use_checkpoint: gradient checkpointing per block (saves memory, costs a second forward).
        sparse_block_size: keys per streamed block (2048).
        sparse_max_tokens: above this many tokens a stage uses the 2-D local window (8192).
        sparse_window_size: keys per query of the local window, as a token count (49 → 7 × 7).
        sparse_k_cap: at most this many kept keys per query when sparsity > 0 (1024; None: no cap).
        sparse_q_block_size: queries per streamed block (1024).
        sparse_sparsity_ratio: fraction of keys each query drops, in [0, 1) (0.9; 0 = dense attention).
        rbf_centers_per_head: RBF features ``M`` of queries and keys (32).
        key_rbf_mode: key projection, ``"linear"`` (default), ``"mean"`` (reference) or ``"none"``.
        kv_token_cap: keys/values of the global and cross attentions are pooled to at most this
            many tokens (1024; None: attend every pixel, O(N²)).
        local_window: kernel of the depthwise local branch (7).
        output_activation: ``"sigmoid"`` (default), ``"tanh"`` (reference) or ``"none"``,
            applied to ``a · σ(gate)``.

    Shapes: ``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)`` for any ``H, W >= 1``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 31,
        base_dim: int = 64,
        depths: Sequence[int] = (2, 2, 6, 2),
        heads: Sequence[int] = (4, 8, 16, 32),
        mlp_ratios: Sequence[float] = (4.0, 4.0, 4.0, 4.0),
        drop_path_rate: float = 0.1,
        use_checkpoint: bool = False,
        sparse_block_size: int = 2048,
        sparse_max_tokens: int = 8192,
        sparse_window_size: int = 49,
        sparse_k_cap: int | None = 1024,
        sparse_q_block_size: int = 1024,
        sparse_sparsity_ratio: float = 0.9,
        rbf_centers_per_head: int = 32,
        key_rbf_mode: KeyRBFMode = "linear",
        kv_token_cap: int | None = 1024,
        local_window: int = 7,
        output_activation: OutputActivation = "sigmoid",
    ) -> None:
        super().__init__()
        depths = [int(depth) for depth in depths]
        heads = [int(count) for count in heads]
        mlp_ratios = [float(ratio) for ratio in mlp_ratios]
        self._check_arguments(
            in_channels, out_channels, base_dim, depths, heads, mlp_ratios, drop_path_rate, sparse_sparsity_ratio,
            sparse_block_size, sparse_max_tokens, sparse_window_size, sparse_q_block_size, rbf_centers_per_head,
            key_rbf_mode, kv_token_cap, local_window, output_activation,
        )  # fmt: skip
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.output_activation = output_activation
        widths = [base_dim * 2**stage for stage in range(4)]
        half = base_dim // 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, half, 3, padding=1, groups=gcd_groups(in_channels, half)),
            ChannelRMSNorm(half),
            nn.GELU(),
            nn.Conv2d(half, base_dim, 3, padding=1, groups=gcd_groups(half, base_dim)),
            ChannelRMSNorm(base_dim),
            nn.GELU(),
        )
        sparse_arguments = {
            "sparsity": sparse_sparsity_ratio,
            "block_size": sparse_block_size,
            "max_tokens": sparse_max_tokens,
            "window_size": sparse_window_size,
            "k_cap": sparse_k_cap,
            "q_block_size": sparse_q_block_size,
            "rbf_centers": rbf_centers_per_head,
            "key_rbf_mode": key_rbf_mode,
        }
        drop_rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        self.stages = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        block_index = 0
        for stage, (width, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for _ in range(depth):
                blocks.append(
                    DualAttentionBlock(
                        width, heads[stage], mlp_ratios[stage], drop_rates[block_index], sparse_arguments,
                        kv_token_cap, local_window, use_checkpoint,
                    )  # fmt: skip
                )
                block_index += 1
            self.stages.append(nn.Sequential(*blocks))
            if stage < 3:
                self.downsamples.append(
                    nn.Sequential(nn.Conv2d(width, 2 * width, 2, stride=2), ChannelRMSNorm(2 * width))
                )
        self.upsamples = nn.ModuleList()
        self.fusions = nn.ModuleList()
        for stage in (3, 2, 1):
            self.upsamples.append(
                nn.Sequential(
                    nn.ConvTranspose2d(widths[stage], widths[stage - 1], 2, stride=2),
                    ChannelRMSNorm(widths[stage - 1]),
                    nn.GELU(),
                )
            )
            self.fusions.append(CrossAttentionFusion(widths[stage - 1], heads[stage - 1], kv_token_cap))
        self.head = nn.Sequential(
            nn.Conv2d(base_dim, base_dim, 3, padding=1),
            ChannelRMSNorm(base_dim),
            nn.GELU(),
            _conv1x1(base_dim, 2 * out_channels),
        )
        self._initialize()

    @staticmethod
    def _check_arguments(
        in_channels: int, out_channels: int, base_dim: int, depths: list[int], heads: list[int],
        mlp_ratios: list[float], drop_path_rate: float, sparsity: float, block_size: int, max_tokens: int,
        window_size: int, q_block_size: int, rbf_centers: int, key_rbf_mode: str, kv_token_cap: int | None,
        local_window: int, output_activation: str,
    ) -> None:  # fmt: skip
        if in_channels < 1 or out_channels < 1:
            raise ConfigError(f"SHARP needs in_channels and out_channels >= 1, got {in_channels} and {out_channels}")
        if base_dim < 8 or base_dim % 8:
            raise ConfigError(
                f"SHARP base_dim must be a positive multiple of 8, got {base_dim}; the reference rounded it up, "
                f"pass base_dim={max(8, -(-base_dim // 8) * 8)}"
            )
        if len(depths) != 4 or len(heads) != 4 or len(mlp_ratios) != 4:
            raise ConfigError(
                f"SHARP has 4 stages: depths, heads and mlp_ratios need 4 entries each, got {depths}, {heads}, "
                f"{mlp_ratios}"
            )
        if min(depths) < 1 or min(heads) < 1 or min(mlp_ratios) <= 0:
            raise ConfigError(
                f"SHARP needs depths >= 1, heads >= 1 and mlp_ratios > 0, got {depths}, {heads}, {mlp_ratios}"
            )
        for stage, count in enumerate(heads):
            width = base_dim * 2**stage
            if width % count:
                raise ConfigError(
                    f"SHARP stage {stage} has {width} channels, which {count} heads do not divide; choose heads that "
                    f"divide base_dim·2^stage (head_dim 16: heads = base_dim·2^stage / 16)"
                )
        if not 0.0 <= drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if not 0.0 <= sparsity < 1.0:
            raise ConfigError(
                f"sparse_sparsity_ratio is the fraction of keys each query drops and must be in [0, 1), got {sparsity}"
            )
        if min(block_size, max_tokens, window_size, q_block_size, rbf_centers, local_window) < 1:
            raise ConfigError(
                "sparse_block_size, sparse_max_tokens, sparse_window_size, sparse_q_block_size, rbf_centers_per_head "
                f"and local_window must be >= 1, got {block_size}, {max_tokens}, {window_size}, {q_block_size}, "
                f"{rbf_centers}, {local_window}"
            )
        if local_window % 2 == 0:
            raise ConfigError(f"local_window is a centred depthwise kernel and must be odd, got {local_window}")
        if key_rbf_mode not in KEY_RBF_MODES:
            raise ConfigError(f"key_rbf_mode must be one of {', '.join(KEY_RBF_MODES)}, got {key_rbf_mode!r}")
        if kv_token_cap is not None and kv_token_cap < 1:
            raise ConfigError(f"kv_token_cap must be >= 1 or None (no cap), got {kv_token_cap}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}, got {output_activation!r}"
            )

    def _initialize(self) -> None:
        # Reference: Conv2d and Linear Kaiming-normal (fan_out, ReLU), bias 0. Transposed
        # convolutions, RMS-norm weights and the RBF / key-projection parameters keep their
        # own initialisation.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeMismatchError(
                f"SHARP expects a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}; "
                "add the batch axis with x[None] and pass channels first"
            )
        height, width = int(x.shape[-2]), int(x.shape[-1])
        features = self.stem(pad_to_multiple(x, PAD_MULTIPLE))
        skips = []
        for stage, blocks in enumerate(self.stages):
            features = blocks(features)
            skips.append(features)
            if stage < len(self.downsamples):
                features = self.downsamples[stage](features)
        for upsample, fusion, skip in zip(self.upsamples, self.fusions, reversed(skips[:-1])):
            features = fusion(upsample(features), skip)
        amplitude, gate = self.head(features).chunk(2, dim=1)
        gated = amplitude * torch.sigmoid(gate)
        if self.output_activation == "sigmoid":
            gated = torch.sigmoid(gated)
        elif self.output_activation == "tanh":
            gated = torch.tanh(gated)
        return gated[:, :, :height, :width]

    def auxiliary_loss(self) -> torch.Tensor:
        """Loss terms produced inside the network by the last forward pass: none for SHARP (a zero scalar)."""
        reference = next(self.parameters())
        return reference.new_zeros(())

    def regularization_loss(
        self, prediction: torch.Tensor, target: torch.Tensor, kind: RegularizerKind = "curvature"
    ) -> torch.Tensor:
        """The corrected spectral regulariser between ``prediction`` and ``target`` ``(B, bands, H, W)``.

        ``kind="curvature"``: :func:`spectral_curvature_penalty`; ``"basis"``:
        :func:`spectral_basis_penalty`. Both are 0 for a perfect prediction.
        """
        return spectral_regularizer(prediction, target, kind)


# ----------------------------------------------------------------------------- spectral regularisers
def reference_spectral_basis(num_bands: int = 31) -> torch.Tensor:
    """The reference's "spectral basis" ``B`` ``(num_bands, num_bands)``, float64.

    Rows ``sin(2πk x)`` for ``k = 0..15`` then ``cos(2πk x)`` for ``k = 0..15``, at
    ``x = linspace(0, 1, num_bands)``, truncated to ``num_bands`` rows. For 31 bands its
    first row (``sin 0``) is zero, its rank is 29 and it is not orthonormal. Kept to show the
    reference regulariser's flaw (:func:`legacy_spectral_basis_penalty`).
    """
    positions = torch.linspace(0.0, 1.0, num_bands, dtype=torch.float64)
    frequencies = torch.arange(16, dtype=torch.float64)[:, None]
    phases = 2 * math.pi * frequencies * positions
    rows = torch.cat([torch.sin(phases), torch.cos(phases)])
    return rows[:num_bands]


def legacy_spectral_basis_penalty(prediction: torch.Tensor) -> torch.Tensor:
    """The reference regulariser ``MSE(BᵀB · pred, pred)`` over the band axis of ``(B, bands, H, W)``.

    It depends on the prediction alone, so it is non-zero for a perfect prediction of any
    spectrum outside ``B``'s fixed points: **do not train with it**. Provided to document
    and test the flaw (``specs/001_hsifusion_sharp.md`` §3.3).
    """
    basis = reference_spectral_basis(prediction.shape[1]).to(device=prediction.device, dtype=torch.float32)
    projected = torch.einsum("ij,bjhw->bihw", basis.T @ basis, prediction.float())
    return F.mse_loss(projected, prediction.float())


def low_frequency_spectral_basis(num_bands: int, rank: int) -> torch.Tensor:
    """``Q`` ``(num_bands, rank)``, float64 with orthonormal columns spanning the ``rank`` lowest cosine frequencies.

    Column ``k`` starts as ``cos(π k (j + ½) / num_bands)`` (``j`` the band index, the DCT-II
    vectors) and the columns are orthonormalised by QR.
    """
    if not 1 <= rank <= num_bands:
        raise ConfigError(f"the spectral basis rank must be in 1..{num_bands} (the band count), got {rank}")
    bands = torch.arange(num_bands, dtype=torch.float64)[:, None] + 0.5
    frequencies = torch.arange(rank, dtype=torch.float64)[None, :]
    cosines = torch.cos(math.pi * frequencies * bands / num_bands)
    orthonormal, _ = torch.linalg.qr(cosines)
    return orthonormal


def spectral_basis_penalty(prediction: torch.Tensor, target: torch.Tensor, rank: int = 10) -> torch.Tensor:
    """Mean squared high-frequency part of the spectral error: ``mean ‖(I - QQᵀ)(pred - target)‖² / bands``.

    ``Q`` is :func:`low_frequency_spectral_basis` of ``rank`` (10: cosines up to 9 half
    periods over the spectrum). The penalty is 0 for a perfect prediction and for errors that
    are smooth across bands (inside span ``Q``, left to the main loss), and positive for any
    error with band-to-band ripple. Inputs ``(B, bands, H, W)``; float32 scalar.
    """
    _check_pair(prediction, target, "spectral_basis_penalty")
    basis = low_frequency_spectral_basis(prediction.shape[1], rank).to(device=prediction.device, dtype=torch.float32)
    error = (prediction.float() - target.float()).movedim(1, -1)  # (B, H, W, bands)
    rough = error - (error @ basis) @ basis.T
    return rough.pow(2).mean()


def spectral_curvature_penalty(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``MSE(Δ²_λ pred, Δ²_λ target)``: mean squared difference of the second differences along bands.

    ``Δ²_λ s[k] = s[k+1] - 2 s[k] + s[k-1]``. Zero for a perfect prediction, and for errors
    that are affine in the band index (a constant or linear tilt, left to the main loss);
    positive otherwise. Inputs ``(B, bands >= 3, H, W)``; float32 scalar.
    """
    _check_pair(prediction, target, "spectral_curvature_penalty")
    if prediction.shape[1] < 3:
        raise ShapeMismatchError(
            f"spectral_curvature_penalty needs >= 3 bands for a second difference, got shape {tuple(prediction.shape)}"
        )

    def second_difference(spectra: torch.Tensor) -> torch.Tensor:
        spectra = spectra.float()
        return spectra[:, 2:] - 2.0 * spectra[:, 1:-1] + spectra[:, :-2]

    return F.mse_loss(second_difference(prediction), second_difference(target))


def spectral_regularizer(
    prediction: torch.Tensor, target: torch.Tensor, kind: RegularizerKind = "curvature", rank: int = 10
) -> torch.Tensor:
    """:func:`spectral_curvature_penalty` (``kind="curvature"``) or :func:`spectral_basis_penalty` (``"basis"``)."""
    if kind == "curvature":
        return spectral_curvature_penalty(prediction, target)
    if kind == "basis":
        return spectral_basis_penalty(prediction, target, rank)
    raise ConfigError(f"unknown spectral regulariser {kind!r}; choose 'curvature' or 'basis'")


def sharp_objective(
    prediction: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.1,
    kind: RegularizerKind = "curvature",
    rank: int = 10,
) -> torch.Tensor:
    """SHARP's training objective with the corrected regulariser: ``L1(pred, target) + α · regulariser``.

    The reference used ``L1 + α·MSE(BᵀB·pred, pred)``; hsikit's reconstruction task
    defaults to MRAE, as the spec recommends — this is for reproducing SHARP's recipe.
    """
    _check_pair(prediction, target, "sharp_objective")
    return F.l1_loss(prediction.float(), target.float()) + alpha * spectral_regularizer(prediction, target, kind, rank)


def _check_pair(prediction: torch.Tensor, target: torch.Tensor, owner: str) -> None:
    if prediction.shape != target.shape or prediction.ndim != 4:
        raise ShapeMismatchError(
            f"{owner} needs prediction and target of the same (B, bands, H, W) shape, got {tuple(prediction.shape)} "
            f"and {tuple(target.shape)}"
        )


# ----------------------------------------------------------------------------- presets
SHARP_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"base_dim": 48, "depths": (2, 2, 2, 2), "heads": (3, 6, 12, 24)},
    "small": {"base_dim": 64, "depths": (2, 2, 4, 2), "heads": (4, 8, 16, 32)},
    "base": {"base_dim": 96, "depths": (2, 2, 6, 2), "heads": (6, 12, 24, 48)},
    "large": {"base_dim": 128, "depths": (2, 2, 8, 2), "heads": (8, 16, 32, 64)},
}
"""``create_sharp_v32(model_size)`` of the reference (mlp_ratios 4 everywhere, head_dim 16)."""

SHARP_TEST_CONFIGURATION: dict[str, Any] = {
    "base_dim": 8,
    "depths": [1, 1, 1, 1],
    "heads": [1, 1, 2, 4],
    "mlp_ratios": [1.0, 1.0, 1.0, 1.0],
    "rbf_centers_per_head": 4,
}
"""A few-thousand-parameter configuration for fast tests (the registry's ``tiny`` arguments)."""

_PRESET_CLASSES = register_presets(
    SHARP,
    "sharp",
    SHARP_PRESETS,
    task="reconstruction",
    test_configuration=SHARP_TEST_CONFIGURATION,
    module_name=__name__,
)
SHARPTiny = _PRESET_CLASSES["tiny"]
SHARPSmall = _PRESET_CLASSES["small"]
SHARPBase = _PRESET_CLASSES["base"]
SHARPLarge = _PRESET_CLASSES["large"]

__all__ = [
    "KEY_RBF_MODES",
    "OUTPUT_ACTIVATIONS",
    "SHARP",
    "SHARP_PRESETS",
    "SHARP_TEST_CONFIGURATION",
    "CrossAttentionFusion",
    "DualAttentionBlock",
    "MultiScaleAttention",
    "RBFKernel",
    "SHARPBase",
    "SHARPLarge",
    "SHARPSmall",
    "SHARPTiny",
    "SparseTokenAttention",
    "gcd_groups",
    "legacy_spectral_basis_penalty",
    "low_frequency_spectral_basis",
    "reference_spectral_basis",
    "sharp_objective",
    "spectral_basis_penalty",
    "spectral_curvature_penalty",
    "spectral_regularizer",
]
