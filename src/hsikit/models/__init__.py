"""hsikit.models: pure-torch architectures (no Lightning inside) and their registry.

>>> from hsikit.models import create_model, list_models
>>> model = create_model("spectral_mlp", in_bands=200, num_classes=16)   # doctest: +SKIP
"""

from hsikit.models.registry import (
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
    model_spec,
    register_model,
    tiny_model_arguments,
)

__all__ = [
    "ModelEntry",
    "create_model",
    "get_model_entry",
    "list_models",
    "model_spec",
    "register_model",
    "tiny_model_arguments",
]
