"""hsikit: deep learning on hyperspectral images.

The top-level namespace re-exports the objects most users need; heavy
submodules (torch, rasterio, Lightning) are imported only when first used.

>>> import hsikit
>>> cube = hsikit.open_cube("scene.tif")            # doctest: +SKIP
>>> cube.shape                                      # doctest: +SKIP
(10, 256, 256)
"""

from __future__ import annotations

import importlib
from typing import Any

from hsikit.cube import Cube, Window
from hsikit.errors import HsikitError

__version__ = "0.1.0"

_LAZY_ATTRIBUTES = {
    "open_cube": "hsikit.io",
    "save_cube": "hsikit.io",
    "open_labels": "hsikit.io",
    "save_labels": "hsikit.io",
    "open_reader": "hsikit.io",
    "create_writer": "hsikit.io",
    "load_dataset": "hsikit.data",
    "load_model": "hsikit.engine.export",
}

__all__ = ["Cube", "Window", "HsikitError", "__version__", *_LAZY_ATTRIBUTES]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_ATTRIBUTES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hsikit' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
