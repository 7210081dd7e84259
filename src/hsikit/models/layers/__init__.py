"""Building blocks shared by several architectures (initialisation, common layers)."""

from hsikit.models.layers.init import INIT_KINDS, InitKind, check_init_kind, initialize_weights
from hsikit.models.layers.drop import DropPath, drop_path, linear_drop_path_rates
from hsikit.models.layers.moe import MixtureOfExperts, switch_balance_loss
from hsikit.models.layers.norm import ChannelRMSNorm
from hsikit.models.layers.padding import pad_to_multiple
from hsikit.models.layers.rotary import RotaryEmbedding1D, RotaryEmbedding2D, apply_rotary
from hsikit.models.layers.sparse_attention import (
    dense_attention,
    local_window_attention_2d,
    sparse_topk_attention,
    topk_attention,
)
from hsikit.models.layers.token_pool import capped_grid_size, pool_to_token_cap

__all__ = [
    "INIT_KINDS",
    "ChannelRMSNorm",
    "DropPath",
    "InitKind",
    "MixtureOfExperts",
    "RotaryEmbedding1D",
    "RotaryEmbedding2D",
    "apply_rotary",
    "capped_grid_size",
    "check_init_kind",
    "dense_attention",
    "drop_path",
    "initialize_weights",
    "linear_drop_path_rates",
    "local_window_attention_2d",
    "pad_to_multiple",
    "pool_to_token_cap",
    "sparse_topk_attention",
    "switch_balance_loss",
    "topk_attention",
]
