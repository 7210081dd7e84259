"""Whole-scene inference: tiling with overlap and blending, streaming reader → model → writer,
dihedral self-ensemble.

>>> from hsikit.inference import predict_scene
>>> predict_scene(model, "scene.tif", "classes.tif", output_kind="classes", tile=512, overlap=64)  # doctest: +SKIP

Vectorising class maps lives in :mod:`hsikit.io.vector`.
"""

from hsikit.inference.ensemble import DIHEDRAL_TRANSFORMS, apply_dihedral, dihedral_ensemble, invert_dihedral
from hsikit.inference.streaming import CubeArrayReader, argmax_channels, class_dtype_and_nodata, predict_scene
from hsikit.inference.tiling import TileGrid, tile_starts, tile_weight_profile

__all__ = [
    "DIHEDRAL_TRANSFORMS",
    "CubeArrayReader",
    "TileGrid",
    "apply_dihedral",
    "argmax_channels",
    "class_dtype_and_nodata",
    "dihedral_ensemble",
    "invert_dihedral",
    "predict_scene",
    "tile_starts",
    "tile_weight_profile",
]
