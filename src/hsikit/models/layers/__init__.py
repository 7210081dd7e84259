"""Building blocks shared by several architectures (initialisation, common layers)."""

from hsikit.models.layers.init import INIT_KINDS, InitKind, check_init_kind, initialize_weights

__all__ = ["INIT_KINDS", "InitKind", "check_init_kind", "initialize_weights"]
