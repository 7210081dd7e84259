"""MST++: Multi-stage Spectral-wise Transformer for RGB → hyperspectral reconstruction.

Cai, Lin, Lin, Wang, Zhang, Pfister, Timofte, Van Gool, *MST++: Multi-stage Spectral-wise
Transformer for Efficient Spectral Reconstruction*, CVPR Workshops 2022 (arXiv 2204.07908),
winner of the NTIRE 2022 spectral recovery challenge. Reference code:
``caiyuanhao1998/MST-plus-plus`` (``architecture/MST_Plus_Plus.py``). Written for hsikit
from the description in ``specs/mstpp_protocol.md`` §3.

Shapes: ``(B, 3, H, W)`` RGB → ``(B, 31, H, W)`` spectra, for any ``H, W >= 5``: the input
is reflect-padded on the right/bottom to a multiple of 8 and the output cropped back.

The module tree and parameter names are those of the reference implementation
(``conv_in``, ``body.{i}.embedding``, ``body.{i}.encoder_layers.{l}.{0|1}``,
``body.{i}.bottleneck``, ``body.{i}.decoder_layers.{l}.{0|1|2}``, ``body.{i}.mapping``,
``conv_out``; inside an attention block ``blocks.{k}.0.{to_q,to_k,to_v,rescale,proj,pos_emb}``
and ``blocks.{k}.1.{norm,fn.net}``), so a published MST++ state dict loads with
``load_state_dict(strict=True)`` (see :func:`load_reference_state_dict` for
``DataParallel`` checkpoints). At the defaults the model has 1,619,625 parameters.

Model card (defaults: 3 stages, ``num_blocks=(1, 1, 1)``; measured by
:func:`hsikit.models.complexity.model_card` with ``torch.utils.flop_counter``, FLOPs = 2 × MACs of
the convolutions and matrix products; ``benchmarks/bench_reconstruction.py``):

================  ============  ==========================  ==========================
input (H × W)     parameters    GFLOPs (2 × MACs)           G MACs (decimal / binary)
================  ============  ==========================  ==========================
256 × 256         1,619,625     44.38                       22.19 / 20.67
482 × 512         1,619,625     169.21                      84.60 / 78.79
================  ============  ==========================  ==========================

The paper's "23.05 GFLOPs" at 256 × 256 is a MAC count from another counting tool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import CheckpointError, ConfigError, ShapeMismatchError
from hsikit.models.registry import register_model

PAD_MULTIPLE = 8
"""MST++ pads height and width to a multiple of 8 (reflect) before the network."""


class SpectralMSA(nn.Module):
    """Spectral-wise multi-head self-attention (S-MSA) on ``(B, H, W, C)`` tokens.

    Each head attends across its ``dim_head`` channels instead of across pixels: queries
    and keys are L2-normalised along the pixel axis, the ``dim_head × dim_head`` map
    ``softmax(σ_h · K̂ Q̂ᵀ)`` (σ_h learnable, one per head, initialised to 1) mixes the
    value channels, and a depthwise positional branch on the values is added. Cost is
    linear in the number of pixels.

    Args:
        dim: token channels C (must equal ``heads · dim_head``).
        dim_head: channels per head d.
        heads: number of heads h.
    """

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        if heads * dim_head != dim:
            raise ConfigError(f"SpectralMSA needs dim == heads * dim_head, got {dim} != {heads} * {dim_head}")
        self.num_heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(dim, dim_head * heads, bias=False)
        self.to_k = nn.Linear(dim, dim_head * heads, bias=False)
        self.to_v = nn.Linear(dim, dim_head * heads, bias=False)
        self.rescale = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj = nn.Linear(dim_head * heads, dim, bias=True)
        self.pos_emb = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim),
        )

    def _split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        # (B, N, h*d) -> (B, h, d, N): one row per channel of each head.
        batch, pixels, _ = tokens.shape
        return tokens.reshape(batch, pixels, self.num_heads, self.dim_head).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` → ``(B, H, W, C)``."""
        batch, height, width, channels = x.shape
        tokens = x.reshape(batch, height * width, channels)
        q_tokens, k_tokens, v_tokens = self.to_q(tokens), self.to_k(tokens), self.to_v(tokens)
        query = F.normalize(self._split_heads(q_tokens), dim=-1, p=2)
        key = F.normalize(self._split_heads(k_tokens), dim=-1, p=2)
        value = self._split_heads(v_tokens)
        attention = (key @ query.transpose(-2, -1)) * self.rescale  # (B, h, d, d)
        mixed = attention.softmax(dim=-1) @ value  # (B, h, d, N)
        mixed = mixed.permute(0, 3, 1, 2).reshape(batch, height * width, self.num_heads * self.dim_head)
        attended = self.proj(mixed).reshape(batch, height, width, channels)
        value_map = v_tokens.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        positional = self.pos_emb(value_map).permute(0, 2, 3, 1)
        return attended + positional


class SpectralFeedForward(nn.Module):
    """``Conv1x1(C→4C) → GELU → depthwise Conv3x3 → GELU → Conv1x1(4C→C)``, all without bias.

    Takes and returns ``(B, H, W, C)`` tokens (convolves in ``(B, C, H, W)``).
    """

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        hidden = dim * mult
        self.net = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, 1, bias=False),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False, groups=hidden),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` → ``(B, H, W, C)``."""
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PreNorm(nn.Module):
    """LayerNorm over channels, then ``fn`` (``(B, H, W, C)`` tokens)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``fn(LayerNorm(x))``."""
        return self.fn(self.norm(x))


class SpectralAttentionBlock(nn.Module):
    """Spectral attention block (SAB): ``num_blocks`` × [``x = S-MSA(x) + x``; ``x = FFN(LN(x)) + x``].

    There is no LayerNorm before the attention (as in the reference). Takes and returns
    ``(B, C, H, W)`` maps.
    """

    def __init__(self, dim: int, dim_head: int, heads: int, num_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList([SpectralMSA(dim, dim_head, heads), PreNorm(dim, SpectralFeedForward(dim))])
            for _ in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        tokens = x.permute(0, 2, 3, 1)
        for attention, feed_forward in self.blocks:
            tokens = attention(tokens) + tokens
            tokens = feed_forward(tokens) + tokens
        return tokens.permute(0, 3, 1, 2)


class SingleStageSpectralTransformer(nn.Module):
    """One MST++ stage (the reference's ``MST``): a U-shaped spectral transformer with a stage residual.

    ``embedding`` (Conv3x3) → per level: SAB, then a 4×4 stride-2 convolution doubling the
    channels → bottleneck SAB → per level: 2×2 stride-2 transposed convolution, 1×1 fusion
    with the encoder features of that level, SAB → ``mapping`` (Conv3x3) + input.

    Args:
        in_dim, out_dim: input/output channels (equal, for the stage residual).
        dim: channels of the first level; level ``l`` has ``dim·2^l`` channels and
            ``2^l`` heads of ``dim`` channels each.
        num_blocks: SAB repetitions per level, encoder levels then bottleneck
            (``len(num_blocks) - 1`` levels); the decoder reuses the encoder's counts.

    Shapes: ``(B, in_dim, H, W)`` → ``(B, out_dim, H, W)``; H and W must be multiples of
    ``2^levels``.
    """

    def __init__(self, in_dim: int, out_dim: int, dim: int, num_blocks: Sequence[int]) -> None:
        super().__init__()
        levels = len(num_blocks) - 1
        self.dim = dim
        self.stage = levels
        self.embedding = nn.Conv2d(in_dim, dim, 3, 1, 1, bias=False)
        self.encoder_layers = nn.ModuleList()
        width = dim
        for level in range(levels):
            self.encoder_layers.append(
                nn.ModuleList(
                    [
                        SpectralAttentionBlock(width, dim, width // dim, num_blocks[level]),
                        nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                    ]
                )
            )
            width *= 2
        self.bottleneck = SpectralAttentionBlock(width, dim, width // dim, num_blocks[-1])
        self.decoder_layers = nn.ModuleList()
        for level in range(levels):
            self.decoder_layers.append(
                nn.ModuleList(
                    [
                        nn.ConvTranspose2d(width, width // 2, kernel_size=2, stride=2, padding=0, output_padding=0),
                        nn.Conv2d(width, width // 2, 1, 1, bias=False),
                        SpectralAttentionBlock(width // 2, dim, (width // 2) // dim, num_blocks[levels - 1 - level]),
                    ]
                )
            )
            width //= 2
        self.mapping = nn.Conv2d(dim, out_dim, 3, 1, 1, bias=False)
        self.apply(_init_transformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_dim, H, W)`` → ``(B, out_dim, H, W)``."""
        features = self.embedding(x)
        skips = []
        for attention, downsample in self.encoder_layers:
            features = attention(features)
            skips.append(features)
            features = downsample(features)
        features = self.bottleneck(features)
        for (upsample, fusion, attention), skip in zip(self.decoder_layers, reversed(skips)):
            features = upsample(features)
            features = fusion(torch.cat([features, skip], dim=1))
            features = attention(features)
        return self.mapping(features) + x


def _init_transformer_weights(module: nn.Module) -> None:
    # Reference init inside each stage: Linear ~ trunc-normal(std 0.02, cut at ±2), bias 0;
    # LayerNorm weight 1, bias 0; convolutions keep the PyTorch defaults.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@register_model("mst_plus_plus", task="reconstruction", tiny={"stage": 1, "num_blocks": [1, 1]})
class MSTPlusPlus(nn.Module):
    """MST++ (Cai et al., CVPRW 2022): RGB ``(B, 3, H, W)`` → spectra ``(B, 31, H, W)``.

    ``f0 = conv_in(pad(x))``; ``h = body(f0)`` (``stage`` single-stage spectral
    transformers); ``out = conv_out(h) + f0``, cropped back to ``H × W``. The global
    residual comes from the embedded features ``f0``, not from the RGB input.

    Args:
        in_channels: input channels (3 for RGB).
        out_channels: output bands (31); must equal ``n_feat`` because of the global residual.
        n_feat: feature channels of the stages (31 in the reference; each stage's level
            ``l`` has ``n_feat·2^l`` channels in ``2^l`` heads of ``n_feat``).
        stage: number of single-stage transformers in ``body`` (3).
        num_blocks: SAB repetitions per level inside each stage, encoder levels then
            bottleneck (``(1, 1, 1)``: two levels plus the bottleneck).

    Shapes: ``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)`` for any ``H, W >= 5``
    (reflect padding needs fewer padded rows than the image has). Values are not clamped.

    Tiny configuration (tests): ``stage=1, num_blocks=(1, 1)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 31,
        n_feat: int = 31,
        stage: int = 3,
        num_blocks: Sequence[int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        num_blocks = [int(count) for count in num_blocks]
        if in_channels < 1 or n_feat < 1 or stage < 1:
            raise ConfigError(
                f"MSTPlusPlus needs in_channels, n_feat and stage >= 1, got {in_channels}, {n_feat}, {stage}"
            )
        if out_channels != n_feat:
            raise ConfigError(
                f"MSTPlusPlus adds the embedded input (n_feat={n_feat} channels) to its output "
                f"(out_channels={out_channels}); set n_feat equal to out_channels"
            )
        if len(num_blocks) < 1 or min(num_blocks) < 1:
            raise ConfigError(
                f"num_blocks lists the SAB repetitions of each level and the bottleneck (>= 1 each), got {num_blocks}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stage = stage
        # The reference pads to 8 for its 2 levels; deeper stages need 2**levels.
        self.pad_multiple = max(PAD_MULTIPLE, 2 ** (len(num_blocks) - 1))
        self.conv_in = nn.Conv2d(in_channels, n_feat, kernel_size=3, padding=1, bias=False)
        self.body = nn.Sequential(
            *(SingleStageSpectralTransformer(n_feat, n_feat, n_feat, num_blocks) for _ in range(stage))
        )
        self.conv_out = nn.Conv2d(n_feat, out_channels, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeMismatchError(
                f"MSTPlusPlus expects a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}; "
                "add the batch axis with x[None] and pass channels first"
            )
        height, width = int(x.shape[-2]), int(x.shape[-1])
        pad_bottom = (-height) % self.pad_multiple
        pad_right = (-width) % self.pad_multiple
        if pad_bottom >= height or pad_right >= width:
            raise ShapeMismatchError(
                f"MSTPlusPlus reflect-pads H and W to a multiple of {self.pad_multiple}, which needs fewer padded "
                f"rows/columns than the image has; a {height} x {width} input is too small — use tiles of at "
                f"least {self.pad_multiple} x {self.pad_multiple} pixels"
            )
        if pad_bottom or pad_right:
            x = F.pad(x, [0, pad_right, 0, pad_bottom], mode="reflect")
        embedded = self.conv_in(x)
        features = self.conv_out(self.body(embedded)) + embedded
        return features[:, :, :height, :width]


def load_reference_state_dict(model: MSTPlusPlus, checkpoint: Mapping[str, Any]) -> None:
    """Load MST++ weights from a reference checkpoint, strictly.

    Accepts a plain state dict or the reference training checkpoint
    ``{"epoch", "iter", "state_dict", "optimizer"}`` (load it with
    ``torch.load(path, map_location="cpu", weights_only=True)``), with or without the
    ``module.`` prefix that ``DataParallel`` adds. Raises :class:`CheckpointError`
    listing missing/unexpected keys when the weights are for another configuration.
    """
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
    if not isinstance(state, Mapping):
        raise CheckpointError("an MST++ checkpoint must be a state dict or a dict with a 'state_dict' entry")
    cleaned = {(key[len("module.") :] if key.startswith("module.") else key): value for key, value in state.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(cleaned))
    unexpected = sorted(set(cleaned) - set(expected))
    mismatched = [
        f"{key}: {tuple(cleaned[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in cleaned and tuple(cleaned[key].shape) != tuple(expected[key].shape)
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            "the checkpoint does not match this MSTPlusPlus configuration: "
            f"{len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected key(s) {unexpected[:5]}, "
            f"{len(mismatched)} shape mismatch(es) {mismatched[:5]}; build the model with the arguments the "
            "checkpoint was trained with (the reference MST++ is the default MSTPlusPlus())"
        )
    model.load_state_dict(cleaned, strict=True)


__all__ = [
    "MSTPlusPlus",
    "PreNorm",
    "SingleStageSpectralTransformer",
    "SpectralAttentionBlock",
    "SpectralFeedForward",
    "SpectralMSA",
    "load_reference_state_dict",
]
