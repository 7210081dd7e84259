"""``hsikit predict``: run any exported model over a whole scene, dispatched on its task.

An exported model folder records its task (``config.json`` ``task``) and how its input was
prepared (``normalization``, ``extra.preprocessing``, ``extra.pca``, ``extra.input``...).
:func:`plan_prediction` turns a model loaded by :func:`hsikit.engine.export.load_model` into
a :class:`PredictionPlan`: a *tile model* ``(B, C, h, w) → (B, K, h, w)`` that
:func:`hsikit.inference.streaming.predict_scene` can run in bounded memory, plus what the
output needs (class names, first label value, margin, border padding).
:func:`predict_with_model` runs the plan and optionally traces the class raster into polygons.

===============  ==============================================================================
task             how the scene is predicted
===============  ==============================================================================
segmentation     the logits of the model's output (SSMGNet returns ``(logits, attention)``),
                 the stored normaliser per tile; classes 0..K-1 (``extra.label_offset`` added)
classification   *pixel* models (``spectral_mlp``, ``cnn1d_classifier``): every spectrum is
                 preprocessed as in training (``extra.preprocessing``, else ``normalization``)
                 and classified on its own; *patch* models (``hybridsn``, ``extra.input ==
                 "patch"``): every pixel's ``p × p`` window of the preprocessed, PCA-projected
                 scene is classified, tiles carry a halo of ``p // 2`` pixels (the tile margin)
                 and the scene border is padded as in training (``extra.padding``). Classes are
                 written as the training label values (``extra.label_values`` or
                 ``label_offset``, default 1)
clustering       Deep Global Clustering: cluster probabilities merged over tiles, the model's
                 receptive radius as margin, no border padding (as ``hsikit cluster``)
reconstruction   refused: the input is an RGB photo, use ``hsikit reconstruct``
autoencoder      refused: use ``hsikit autoencoder apply`` (latent cube, SAM map)
(none recorded)  the raw ``(B, K, h, w)`` output (regression), as before tasks were recorded
===============  ==============================================================================

Nodata pixels (the source's mask, NaN/Inf) enter every model as 0 and are written as nodata.
For patch models this also changes the windows of valid pixels next to nodata, which
:func:`hsikit.workflows.spectral_maps.classify_cube` (the in-memory path) fills with the
nodata pixels' own values instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from hsikit.errors import CheckpointError, ConfigError, ShapeMismatchError

#: tasks ``hsikit predict`` runs itself
PREDICT_TASKS: tuple[str, ...] = ("segmentation", "classification", "clustering")
#: tasks another command serves, with the command to use
OTHER_COMMANDS: dict[str, str] = {
    "reconstruction": "hsikit reconstruct --model DIR --input photo.jpg --output cube.mat "
    "(RGB photos to hyperspectral cubes)",
    "autoencoder": "hsikit autoencoder apply --model DIR --input cube.tif ... (latent cube and reconstruction "
    "error maps)",
}
#: logit given to label values a classifier never predicts (softmax gives them exactly 0)
ABSENT_LOGIT = -1.0e9
#: padding names of the patch data module → tiling padding names
_PATCH_PADDING = {"reflect": "reflect", "edge": "replicate", "zero": "zeros"}


# ---------------------------------------------------------------------------- spectral preparation
class SpectralPreparation:
    """The per-pixel preparation of a classifier's input: preprocessing (or normaliser), then PCA.

    Applied with numpy on the CPU to ``(C, h, w)`` blocks, exactly as
    :func:`~hsikit.workflows.spectral_maps.classify_cube` does, so tiled and in-memory
    predictions see the same numbers.

    Args:
        preprocessing: a :class:`~hsikit.spectral.preprocess.SpectralPreprocessing` (per-spectrum
            scaling or fitted band normaliser), or None.
        pca: a fitted :class:`~hsikit.spectral.pca.SpectralPCA` (``C → k`` components), or None.
    """

    def __init__(self, preprocessing: Any = None, pca: Any = None) -> None:
        self.preprocessing = preprocessing
        self.pca = pca

    @classmethod
    def from_config(cls, config: Any) -> SpectralPreparation:
        """The preparation a classifier's ``config.json`` records.

        ``extra.preprocessing`` (else ``normalization``), then ``extra.pca`` when present.
        """
        from hsikit.workflows.spectral_maps import model_preprocessing

        extra: Mapping[str, Any] = config.extra or {}
        pca = None
        if extra.get("pca"):
            from hsikit.spectral.pca import SpectralPCA

            pca = SpectralPCA.from_dict(extra["pca"], source="the model's config.json")
        return cls(model_preprocessing(config), pca)

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` raw tiles → ``(B, k, h, w)`` prepared float32 tiles on the same device."""
        if self.preprocessing is None and self.pca is None:
            return tiles.float()
        prepared = []
        for tile in tiles.detach().to("cpu", torch.float32).numpy():
            block = tile
            if self.preprocessing is not None:
                block = np.asarray(self.preprocessing.transform(block, band_axis=0), dtype=np.float32)
            if self.pca is not None:
                block = np.asarray(self.pca.transform(block), dtype=np.float32)
            prepared.append(torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)))
        return torch.stack(prepared).to(tiles.device)


# ---------------------------------------------------------------------------- tile models
def _expand_labels(logits: torch.Tensor, positions: torch.Tensor | None, channels: int) -> torch.Tensor:
    """Logits ``(N, K)`` → ``(N, channels)``: class k goes to channel ``positions[k]``.

    The other channels (label values the model never predicts) get :data:`ABSENT_LOGIT`.
    """
    if positions is None:
        return logits
    expanded = logits.new_full((logits.shape[0], channels), ABSENT_LOGIT)
    expanded[:, positions.to(logits.device)] = logits
    return expanded


class PixelClassifierTiles(nn.Module):
    """A per-spectrum classifier ``(N, C) → (N, K)`` as a tile model ``(B, C, h, w) → (B, K', h, w)``.

    Args:
        model: the classifier (a pixel model: ``spectral_mlp``, ``cnn1d_classifier``).
        preparation: applied to every tile first.
        positions: output channel of each class (a non-contiguous label table), or None.
        channels: output channels K' (K when ``positions`` is None).
        chunk_pixels: spectra per forward call.
    """

    def __init__(
        self,
        model: nn.Module,
        preparation: SpectralPreparation,
        positions: torch.Tensor | None = None,
        channels: int | None = None,
        chunk_pixels: int = 65536,
    ) -> None:
        super().__init__()
        self.model = model
        self.preparation = preparation
        self.positions = positions
        self.channels = channels
        self.chunk_pixels = int(chunk_pixels)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` raw tiles → ``(B, K', h, w)`` logits."""
        prepared = self.preparation(tiles)
        batch, bands, height, width = prepared.shape
        spectra = prepared.permute(0, 2, 3, 1).reshape(-1, bands)
        outputs = [self.model(spectra[start : start + self.chunk_pixels])
                   for start in range(0, spectra.shape[0], self.chunk_pixels)]  # fmt: skip
        logits = torch.cat(outputs)
        if logits.ndim != 2:
            raise ShapeMismatchError(
                f"a pixel classifier must map spectra (N, {bands}) to logits (N, K); it returned {tuple(logits.shape)}"
            )
        logits = _expand_labels(logits, self.positions, self.channels or logits.shape[1])
        return logits.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


class PatchClassifierTiles(nn.Module):
    """A patch classifier ``(N, k, p, p) → (N, K)`` as a tile model ``(B, C, h, w) → (B, K', h, w)``.

    Every pixel at least ``radius = p // 2`` pixels inside the tile is classified from the
    ``p × p`` window of the prepared tile centred on it; the ``radius`` pixels along each
    tile edge get logits 0 (run it with a tile margin of at least ``radius`` and border
    padding of at least ``radius``, so these values are never used).

    Args:
        model: the classifier (``hybridsn``).
        preparation: applied to every tile first (normaliser, PCA).
        patch_size: odd window side p.
        positions, channels: as :class:`PixelClassifierTiles`.
        patch_batch: windows per forward call.
    """

    def __init__(
        self,
        model: nn.Module,
        preparation: SpectralPreparation,
        patch_size: int,
        positions: torch.Tensor | None = None,
        channels: int | None = None,
        patch_batch: int = 2048,
    ) -> None:
        super().__init__()
        if patch_size < 1 or patch_size % 2 == 0:
            raise CheckpointError(f"a patch model needs an odd patch_size, the config records {patch_size}")
        self.model = model
        self.preparation = preparation
        self.patch_size = int(patch_size)
        self.radius = self.patch_size // 2
        self.positions = positions
        self.channels = channels
        self.patch_batch = int(patch_batch)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` raw tiles → ``(B, K', h, w)`` logits (0 within ``radius`` of the tile edge)."""
        prepared = self.preparation(tiles)
        batch, _, height, width = prepared.shape
        p, r = self.patch_size, self.radius
        inner_h, inner_w = height - 2 * r, width - 2 * r
        if inner_h < 1 or inner_w < 1:
            raise ShapeMismatchError(
                f"tiles of {height} x {width} px are too small for {p} x {p} patches; use a tile larger than {p}"
            )
        rows_per_chunk = max(1, self.patch_batch // inner_w)
        output: torch.Tensor | None = None
        for index in range(batch):
            windows = prepared[index].unfold(1, p, 1).unfold(2, p, 1)  # (k, inner_h, inner_w, p, p), a view
            for top in range(0, inner_h, rows_per_chunk):
                bottom = min(top + rows_per_chunk, inner_h)
                patches = windows[:, top:bottom].permute(1, 2, 0, 3, 4).reshape(-1, windows.shape[0], p, p)
                logits = self.model(patches)
                if logits.ndim != 2:
                    raise ShapeMismatchError(
                        f"a patch classifier must map patches (N, k, {p}, {p}) to logits (N, K); it returned "
                        f"{tuple(logits.shape)}"
                    )
                logits = _expand_labels(logits, self.positions, self.channels or logits.shape[1])
                if output is None:
                    output = logits.new_zeros((batch, logits.shape[1], height, width))
                block = logits.reshape(bottom - top, inner_w, -1).permute(2, 0, 1)
                output[index, :, r + top : r + bottom, r : r + inner_w] = block
        assert output is not None
        return output


# ---------------------------------------------------------------------------- plans
@dataclass
class PredictionPlan:
    """How to run one exported model over a scene (see :func:`plan_prediction`).

    Attributes:
        task: the model's task (``"segmentation"``...; ``"raw"`` when none is recorded).
        tile_model: ``(B, C, h, w)`` → ``(B, K, h, w)`` raw tile batches to outputs.
        normalizer: applied to every tile batch before ``tile_model`` (or None).
        output_kind: default output (``"classes"`` for class models, else ``"regression"``).
        class_names: one name per output channel (or None).
        first_label: value written for output channel 0 in class rasters.
        margin: tile margin in pixels (None: ``overlap // 4``); at least the model's context radius.
        padding: scene border extension (``"reflect"``, ``"replicate"``, ``"zeros"``, ``"none"``).
        background: class value left out of polygons (None: every class is traced).
        description: one line for the user.
    """

    task: str
    tile_model: Callable[[torch.Tensor], torch.Tensor]
    normalizer: Callable[[torch.Tensor], torch.Tensor] | None = None
    output_kind: str = "regression"
    class_names: list[str] | None = None
    first_label: int = 0
    margin: int | None = None
    padding: str = "reflect"
    background: int | None = None
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def label_table(config: Any, classes: int) -> np.ndarray:
    """Label value of each class index of a classifier, ``(K,)`` int64.

    ``extra.label_values`` when recorded (deephyp), else ``index + label_offset`` (default 1).
    """
    extra = config.extra or {}
    if extra.get("label_values"):
        table = np.asarray(extra["label_values"], dtype=np.int64)
    else:
        table = np.arange(classes, dtype=np.int64) + int(extra.get("label_offset", 1))
    if table.size != classes:
        raise CheckpointError(
            f"the model's label table has {table.size} values for its {classes} output classes; export it again"
        )
    if table.min() < 0 or np.unique(table).size != table.size:
        raise CheckpointError(f"the model's label values {table.tolist()} must be distinct and non-negative")
    return table


def _classifier_plan(model: nn.Module, config: Any, overlap: int) -> PredictionPlan:
    extra: Mapping[str, Any] = config.extra or {}
    classes = int(getattr(model, "num_classes", 0) or 0)
    if classes < 2:
        raise CheckpointError(f"classifier {config.name!r} does not say how many classes it predicts (num_classes)")
    table = label_table(config, classes)
    first = int(table.min())
    contiguous = np.array_equal(table, np.arange(first, first + classes))
    positions = None if contiguous else torch.as_tensor(table - first, dtype=torch.long)
    channels = classes if contiguous else int(table.max()) - first + 1
    names = list(config.class_names) if config.class_names else None
    if names is not None and len(names) != classes:
        names = None
    if names is not None and not contiguous:
        by_value = dict(zip(table.tolist(), names))
        names = [by_value.get(first + k, f"unused_{first + k}") for k in range(channels)]
    preparation = SpectralPreparation.from_config(config)
    if extra.get("input") == "patch":
        patch_size = int(extra.get("patch_size") or getattr(model, "patch_size", 0))
        if patch_size < 1:
            raise CheckpointError(f"'{config.name}' is a patch model but its config records no patch_size")
        tiles = PatchClassifierTiles(model, preparation, patch_size, positions, channels)
        radius = tiles.radius
        margin = max(radius, overlap // 4)
        if 2 * margin > overlap:
            raise ConfigError(
                f"the {config.name} model classifies {patch_size} x {patch_size} patches, so tiles need a halo of "
                f"{radius} px on each side: use --overlap >= {2 * radius} (got {overlap})"
            )
        padding = _PATCH_PADDING.get(str(extra.get("padding", "reflect")))
        if padding is None:
            raise CheckpointError(f"unknown patch padding {extra.get('padding')!r} in the model's config")
        description = f"patch classifier {config.name} ({patch_size} x {patch_size} patches, halo {radius} px)"
        return PredictionPlan("classification", tiles, None, "classes", names, first, margin, padding,
                              None, description, {"patch_size": patch_size})  # fmt: skip
    tiles_model = PixelClassifierTiles(model, preparation, positions, channels)
    return PredictionPlan("classification", tiles_model, None, "classes", names, first, None, "reflect", None,
                          f"pixel classifier {config.name}")  # fmt: skip


def _segmentation_plan(model: nn.Module, config: Any) -> PredictionPlan:
    from hsikit.inference.segmentation import input_normalizer
    from hsikit.models.segmentation.output import SegmentationLogits

    extra: Mapping[str, Any] = config.extra or {}
    first = int(extra.get("label_offset", 0))
    names = list(config.class_names) if config.class_names else None
    return PredictionPlan("segmentation", SegmentationLogits(model), input_normalizer(model), "classes", names,
                          first, None, "reflect", first, f"segmentation model {config.name}")  # fmt: skip


def _clustering_plan(model: nn.Module, config: Any, source: Any, overlap: int) -> PredictionPlan:
    from hsikit.inference.clustering import ClusterProbabilityModel, receptive_radius, scene_normalizer

    radius = receptive_radius(model)
    margin = max(radius, overlap // 4)
    if 2 * margin >= overlap:
        raise ConfigError(
            f"the clustering model sees {radius} px of context per side; use --overlap >= {2 * radius + 2} "
            f"(got {overlap})"
        )
    normalizer = scene_normalizer(source, config.normalization, (config.extra or {}).get("scene_normalization"))
    clusters = getattr(model, "n_clusters", None)
    names = None if clusters is None else [f"cluster_{k}" for k in range(int(clusters))]
    return PredictionPlan("clustering", ClusterProbabilityModel(model, "log_probabilities"), normalizer, "classes",
                          names, 0, margin, "none", None, f"clustering model {config.name}")  # fmt: skip


def plan_prediction(model: nn.Module, *, source: Any = None, overlap: int = 64) -> PredictionPlan:
    """The :class:`PredictionPlan` of a model loaded by :func:`~hsikit.engine.export.load_model`.

    Args:
        model: the loaded model (``model.hsikit_config`` holds its ``config.json``).
        source: the scene (path, reader or Cube); needed by clustering models normalised per scene.
        overlap: the tile overlap the run will use (patch and clustering models check it covers their context).

    Raises:
        ConfigError: a task ``hsikit predict`` does not run (naming the command that does),
            or an overlap too small for the model's context.
        CheckpointError: a config that lacks what the task needs.
    """
    config = getattr(model, "hsikit_config", None)
    if config is None:
        raise CheckpointError("the model carries no hsikit_config: load it with hsikit.load_model(folder)")
    task = config.task
    if task in OTHER_COMMANDS:
        raise ConfigError(
            f"'{config.name}' is a {task} model, which 'hsikit predict' does not run on a scene; use "
            f"{OTHER_COMMANDS[task]}"
        )
    if task == "segmentation":
        return _segmentation_plan(model, config)
    if task == "classification":
        return _classifier_plan(model, config, overlap)
    if task == "clustering":
        return _clustering_plan(model, config, source, overlap)
    if task is None:
        from hsikit.spectral.normalize import Normalizer

        normalizer = None
        if config.normalization:
            state = Normalizer.from_dict(config.normalization, source="the model's config.json")
            normalizer = lambda batch: state.transform(batch, band_axis=1)  # noqa: E731
        return PredictionPlan("raw", model, normalizer, "regression", list(config.class_names or []) or None, 0,
                              description=f"model {config.name} (no task recorded: raw outputs)")  # fmt: skip
    raise ConfigError(
        f"'{config.name}' was exported for task {task!r}, which 'hsikit predict' does not know; it runs "
        f"{', '.join(PREDICT_TASKS)} models (reconstruction: hsikit reconstruct; autoencoder: hsikit autoencoder "
        "apply)"
    )


# ---------------------------------------------------------------------------- running
def predict_with_model(
    model: nn.Module,
    source: str | os.PathLike | Any,
    output: str | os.PathLike,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    output_kind: str | None = None,
    ensemble: bool = False,
    probabilities_output: str | os.PathLike | None = None,
    vector: str | os.PathLike | None = None,
    min_area: float = 0.0,
    writer_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict a whole scene with an exported model (dispatched on its task), tile by tile.

    Args:
        model: a model loaded by :func:`~hsikit.engine.export.load_model`.
        source: the scene: a file path, a :class:`~hsikit.io.base.CubeReader` or a Cube.
        output: output raster (format from the extension); keeps the source's CRS and transform.
        tile, overlap, batch_size, device, ensemble: as :func:`~hsikit.inference.streaming.predict_scene`.
        output_kind: ``"classes"``, ``"probabilities"``, ``"logits"`` or ``"regression"``
            (default: the plan's, ``"classes"`` for class models).
        probabilities_output: with classes, also write the merged probabilities there.
        vector: also trace the class raster into polygons (``.gpkg``, ``.shp``, ``.geojson``),
            in the raster's CRS, with a ``class_name`` column.
        min_area: smallest polygon kept (CRS units squared).
        writer_options: options of the raster writer (e.g. ``{"compress": "deflate"}``).
        progress: show a progress bar.

    Returns:
        ``{"plan": PredictionPlan, "output": Path, "vector": Path or None, "vector_summary": ... or None}``.
    """
    from hsikit.inference.streaming import predict_scene

    plan = plan_prediction(model, source=source, overlap=overlap)
    kind = output_kind or plan.output_kind
    if vector is not None and kind != "classes":
        raise ConfigError(f"--vector traces a class raster; it needs --output-kind classes, not {kind!r}")
    classes_like = kind in ("classes", "probabilities")
    if isinstance(plan.tile_model, nn.Module):
        plan.tile_model.to(device)
    predict_scene(
        plan.tile_model,
        source,
        output,
        tile=tile,
        overlap=overlap,
        margin=plan.margin,
        padding=plan.padding,
        batch_size=batch_size,
        device=device,
        output_kind=kind,
        ensemble=ensemble,
        normalizer=plan.normalizer,
        probabilities_output=probabilities_output,
        class_names=plan.class_names if classes_like else None,
        first_label=plan.first_label if kind == "classes" else 0,
        writer_options=writer_options,
        progress=progress,
    )
    result: dict[str, Any] = {"plan": plan, "output": Path(output), "vector": None, "vector_summary": None}
    if vector is not None:
        from hsikit.inference.vectorize import vectorize_raster

        names = None
        if plan.class_names:
            names = {plan.first_label + k: name for k, name in enumerate(plan.class_names)}
        summary = vectorize_raster(output, vector, class_names=names, background=plan.background, min_area=min_area)
        result["vector"], result["vector_summary"] = Path(summary.path), summary
    return result


__all__ = [
    "ABSENT_LOGIT",
    "OTHER_COMMANDS",
    "PREDICT_TASKS",
    "PatchClassifierTiles",
    "PixelClassifierTiles",
    "PredictionPlan",
    "SpectralPreparation",
    "label_table",
    "plan_prediction",
    "predict_with_model",
]
