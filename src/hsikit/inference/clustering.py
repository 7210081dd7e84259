"""Cluster maps of whole scenes with a Deep Global Clustering model, tile by tile, probabilities merged.

One model holds one global centroid dictionary, so the cluster ids it gives are the same
in every scene it labels. :func:`cluster_scene` runs it over a scene of any size through
:func:`hsikit.inference.predict_scene`:

* the model is wrapped (:class:`ClusterProbabilityModel`) to return one ``(B, K, h, w)``
  tensor instead of its ``ClusteringOutput``: log-probabilities ``log_softmax(cos / temp)``
  (``−inf`` for pruned clusters). ``predict_scene`` takes the softmax of each tile's output,
  which turns them back into the cluster probabilities *exactly*, blends the overlapping
  tiles' **probabilities** and takes the argmax only then. The reference's tiled
  inference (``split_patches``/``merge_patches``) averaged integer labels in the
  overlaps, which produces ids no tile predicted;
* tiles are cut with ``padding="none"`` and a margin of at least the model's receptive
  radius (encoder 3 × 3 convolutions plus the mean-shift window), so the tiled map equals
  the whole-image map up to float rounding — also at the image border;
* the scene is normalised like the training scenes: the pooled statistics recorded in the
  model's ``config.json`` (``normalization``), or the scene's own statistics when the model
  was trained with ``scene_normalization="per_scene"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from hsikit.cube import Cube
from hsikit.errors import ConfigError
from hsikit.io.base import CubeReader

Source = str | os.PathLike | Cube | CubeReader
ProbabilityOutput = Literal["log_probabilities", "probabilities"]
UNCLUSTERED = -1
"""Label given to nodata pixels in cluster maps held in memory."""


class ClusterProbabilityModel(nn.Module):
    """Wrap a clustering model ``(B, C, H, W) → ClusteringOutput`` as ``(B, C, H, W) → (B, K, H, W)``.

    Args:
        model: a :class:`~hsikit.models.clustering.GlobalClusteringModel` (anything whose
            output has ``logits`` ``(B, K, H, W)``).
        output: ``"log_probabilities"`` (for ``predict_scene``, which applies a softmax per
            tile) or ``"probabilities"`` (softmax already applied).
    """

    def __init__(self, model: nn.Module, output: ProbabilityOutput = "log_probabilities") -> None:
        super().__init__()
        if output not in ("log_probabilities", "probabilities"):
            raise ConfigError(f"ClusterProbabilityModel: output must be 'log_probabilities' or 'probabilities', got {output!r}")
        self.model = model
        self.output = output

    def forward(self, cube: torch.Tensor) -> torch.Tensor:
        logits = self.model(cube).logits.float()
        return torch.log_softmax(logits, dim=1) if self.output == "log_probabilities" else torch.softmax(logits, dim=1)


def receptive_radius(model: nn.Module) -> int:
    """Pixels of context one output pixel of a Deep Global Clustering model depends on (per side).

    Two ``3 × 3`` convolutions (2) plus the mean-shift window radius (its neighbours are
    taken from the encoder output at every step). The ``"raster"`` encoder mixes pixels
    along the flattened raster and has no bounded 2-D radius; its horizontal kernel radius
    is added as the best available bound.
    """
    radius = 2
    mean_shift = getattr(model, "mean_shift", None)
    if mean_shift is not None and getattr(mean_shift, "num_iters", 0) > 0:
        radius += int(getattr(mean_shift, "window", 1)) // 2
    encoder = getattr(model, "encoder", None)
    if encoder is not None and getattr(encoder, "mode", "spectral") == "raster":
        convolutions = [layer for layer in encoder.spectral_net if isinstance(layer, nn.Conv1d)]
        radius += sum(int(layer.kernel_size[0]) // 2 for layer in convolutions)
    return radius


class _BatchNormalizer:
    """Applies a fitted normaliser to ``(B, C, h, w)`` tile batches on their device."""

    def __init__(self, normalizer: Any) -> None:
        self.normalizer = normalizer

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.normalizer.transform(batch, band_axis=1)


def scene_normalizer(
    source: Source,
    normalization: Mapping[str, Any] | None,
    scene_normalization: str | None,
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The tile normaliser for ``source``: pooled statistics (``"global"``), the scene's own (``"per_scene"``), or None."""
    from hsikit.spectral.normalize import Normalizer

    mode = scene_normalization or ("global" if normalization else "none")
    if mode == "global":
        if not normalization:
            raise ConfigError(
                "the model was trained with global normalisation but its config holds no 'normalization' "
                "statistics; export the model again from its run"
            )
        return _BatchNormalizer(Normalizer.from_dict(normalization, source="model config"))
    if mode == "per_scene":
        from hsikit.data.clustering_datamodule import scene_standardizer

        cube = _as_cube(source)
        return _BatchNormalizer(scene_standardizer(cube, cube.valid_mask))
    if mode == "none":
        return None
    raise ConfigError(f"unknown scene normalisation {mode!r}; expected 'global', 'per_scene' or 'none'")


def _as_cube(source: Source) -> Cube:
    if isinstance(source, Cube):
        return source
    if isinstance(source, CubeReader):
        return Cube(source.read_array(), wavelengths=source.wavelengths, nodata=source.nodata, nonfinite="mask")
    from hsikit.io import open_cube

    return open_cube(source, nonfinite="mask")


@dataclass
class ClusterMap:
    """A scene's cluster map: ``labels`` ``(H, W)`` int64 (−1 at nodata), ``probabilities`` ``(K, H, W)`` or None."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None


def cluster_scene(
    model: nn.Module,
    source: Source,
    *,
    normalization: Mapping[str, Any] | None = None,
    scene_normalization: str | None = None,
    tile: int = 256,
    overlap: int = 32,
    margin: int | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    keep_probabilities: bool = False,
    output: str | os.PathLike | None = None,
    probabilities_output: str | os.PathLike | None = None,
    progress: bool = False,
) -> ClusterMap | Path:
    """Cluster map of a whole scene (any size, bounded memory when written to a file).

    Args:
        model: a Deep Global Clustering model (``ClusteringOutput`` forward).
        source: scene file (any format :func:`hsikit.io.open_reader` reads), reader or Cube,
            in raw units (the normalisation is applied per tile).
        normalization: the model config's ``normalization`` (pooled per-band statistics).
        scene_normalization: ``"global"``, ``"per_scene"`` or ``"none"`` (default: ``"global"``
            when ``normalization`` is given, else ``"none"``).
        tile, overlap: tile size and minimum overlap in pixels.
        margin: pixels dropped at inner tile edges (default: the model's receptive radius,
            at least ``overlap // 4``; it must stay below ``overlap / 2``).
        batch_size: tiles per model call.
        device: torch device.
        keep_probabilities: also return the merged probabilities ``(K, H, W)``.
        output: write the cluster map there (GeoTIFF/ENVI/...; uint8/uint16, nodata = the
            dtype's largest value) instead of returning it; the source's georeference is kept.
        probabilities_output: with ``output``, also write the merged probabilities there.
        progress: show a progress bar.

    Returns:
        A :class:`ClusterMap` (in memory) or the path written.
    """
    from hsikit.inference.streaming import predict_scene

    radius = receptive_radius(model)
    if margin is None:
        margin = max(radius, overlap // 4)
    if 2 * margin >= overlap:
        raise ConfigError(
            f"cluster_scene: overlap={overlap} must exceed twice the margin ({margin}); the model sees {radius} "
            f"pixels of context per side, so use overlap >= {2 * radius + 2}"
        )
    normalizer = scene_normalizer(source, normalization, scene_normalization)
    wrapper = ClusterProbabilityModel(model, "log_probabilities")
    common = {
        "tile": tile,
        "overlap": overlap,
        "margin": margin,
        "padding": "none",
        "batch_size": batch_size,
        "device": device,
        "normalizer": normalizer,
        "progress": progress,
    }
    if output is not None:
        return predict_scene(
            wrapper, source, output, output_kind="classes", merge="probabilities",
            probabilities_output=probabilities_output, **common,
        )
    merged = predict_scene(wrapper, source, None, output_kind="probabilities", **common)
    assert isinstance(merged, Cube)
    probabilities = np.asarray(merged.data, dtype=np.float32)
    invalid = ~np.isfinite(probabilities).all(axis=0)
    labels = np.where(invalid, 0, probabilities).argmax(axis=0).astype(np.int64)
    labels[invalid] = UNCLUSTERED
    return ClusterMap(labels, probabilities if keep_probabilities else None)


__all__ = [
    "ClusterMap",
    "ClusterProbabilityModel",
    "UNCLUSTERED",
    "cluster_scene",
    "receptive_radius",
    "scene_normalizer",
]
