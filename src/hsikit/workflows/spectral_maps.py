"""Whole-scene outputs of spectral models: class maps of classifiers, latent cubes and error maps of autoencoders.

Both functions take a model rebuilt by :func:`hsikit.load_model` (its ``hsikit_config``
says how the training data was prepared) and a :class:`~hsikit.cube.Cube`, and read the
cube a block of rows at a time, so a memory-mapped scene is never loaded whole:

* :func:`classify_cube` → :class:`ClassifiedScene`: the label value of every valid pixel
  (``(H, W)``, 0 where the cube has no data) and the softmax confidence. Pixel models
  (``spectral_mlp``, ``cnn1d_classifier``) see each normalised spectrum; patch models
  (``hybridsn``) see the ``p × p`` window of the normalised, PCA-reduced scene around
  each pixel, exactly as :class:`~hsikit.data.spectral_datamodules.PatchClassificationDataModule`
  served them in training.
* :func:`autoencode_cube` → :class:`AutoencodedScene`: the latent vector of every pixel
  as a ``(latent, H, W)`` cube with the source's georeference, and the per-pixel spectral
  angle (degrees) and spectral information divergence between the preprocessed spectrum
  and its reconstruction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from hsikit.cube import Cube
from hsikit.errors import CheckpointError, ShapeMismatchError
from hsikit.spectral.metrics import spectral_angle, spectral_information_divergence
from hsikit.spectral.preprocess import SpectralPreprocessing

#: spectra per forward pass
DEFAULT_CHUNK_PIXELS = 65536
#: patches per forward pass of a patch model
DEFAULT_PATCH_BATCH = 1024


def _config(model: nn.Module) -> Any:
    config = getattr(model, "hsikit_config", None)
    if config is None:
        raise CheckpointError(
            "the model carries no hsikit_config (how its data was prepared): load it with hsikit.load_model(folder)"
        )
    return config


def _row_blocks(height: int, width: int, chunk_pixels: int) -> list[tuple[int, int]]:
    rows = max(1, chunk_pixels // max(width, 1))
    return [(start, min(start + rows, height)) for start in range(0, height, rows)]


def _check_bands(cube: Cube, config: Any) -> None:
    if config.bands is not None and int(config.bands) != cube.bands:
        raise ShapeMismatchError(
            f"{cube.source_label}: the model was trained on {config.bands} bands, the cube has {cube.bands}; use a "
            "cube of the same sensor and band selection"
        )


# ============================================================================ classification
@dataclass
class ClassifiedScene:
    """A classified scene.

    Attributes:
        labels: ``(H, W)`` int32 label values (the training labels' values; 0 = no data).
        confidence: ``(H, W)`` float32 softmax probability of the chosen class (NaN = no data).
        class_names: names of label values ``first_label, first_label + 1, ...`` (or None).
        first_label: label value of ``class_names[0]``.
        label_values: the label value of each class index of the model.
    """

    labels: np.ndarray
    confidence: np.ndarray
    class_names: list[str] | None
    first_label: int
    label_values: np.ndarray


def _label_table(config: Any, classes: int) -> np.ndarray:
    extra = config.extra or {}
    if extra.get("label_values"):
        table = np.asarray(extra["label_values"], dtype=np.int64)
    else:
        table = np.arange(classes, dtype=np.int64) + int(extra.get("label_offset", 1))
    if table.size != classes:
        raise CheckpointError(f"the model's label table has {table.size} values for its {classes} classes")
    return table


def _normalizer(config: Any) -> Any:
    if not config.normalization:
        return None
    from hsikit.spectral.normalize import Normalizer

    return Normalizer.from_dict(config.normalization, source="the model's config.json")


@torch.no_grad()
def classify_cube(
    model: nn.Module,
    cube: Cube,
    *,
    chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
    patch_batch: int = DEFAULT_PATCH_BATCH,
    device: str | torch.device = "cpu",
) -> ClassifiedScene:
    """Classify every valid pixel of ``cube`` ``(C, H, W)`` with an exported classifier (see the module docstring)."""
    config = _config(model)
    _check_bands(cube, config)
    extra = config.extra or {}
    normalizer = _normalizer(config)
    preprocessing = extra.get("preprocessing")
    per_spectrum = None if preprocessing is None else SpectralPreprocessing.from_dict(preprocessing)
    model = model.to(device).eval()
    height, width = cube.height, cube.width
    valid = cube.valid_mask
    index_map = np.full((height, width), -1, dtype=np.int64)
    confidence = np.full((height, width), np.nan, dtype=np.float32)

    def prepare(block: np.ndarray) -> np.ndarray:
        values = np.asarray(block, dtype=np.float32)
        if per_spectrum is not None:
            return np.asarray(per_spectrum.transform(values, band_axis=0), dtype=np.float32)
        if normalizer is not None:
            return np.asarray(normalizer.transform(values, band_axis=0), dtype=np.float32)
        return values

    def record(rows: np.ndarray, cols: np.ndarray, logits: torch.Tensor) -> None:
        probabilities = torch.softmax(logits.float(), dim=1)
        best, label = probabilities.max(dim=1)
        index_map[rows, cols] = label.cpu().numpy()
        confidence[rows, cols] = best.cpu().numpy()

    if extra.get("input") == "patch":
        from hsikit.data.spectral_datamodules import InMemoryPatches
        from hsikit.spectral.pca import SpectralPCA

        patch_size = int(extra.get("patch_size") or getattr(model, "patch_size", 0))
        if patch_size < 1:
            raise CheckpointError("a patch model's config must record its patch_size")
        pca = None if not extra.get("pca") else SpectralPCA.from_dict(extra["pca"], source="the model's config.json")
        channels = int(extra.get("model_bands") or cube.bands)
        reduced = np.empty((channels, height, width), dtype=np.float32)
        for start, stop in _row_blocks(height, width, chunk_pixels):
            block = prepare(cube.data[:, start:stop])
            reduced[:, start:stop] = block if pca is None else pca.transform(block)
        half = patch_size // 2
        pad_mode = {"reflect": "reflect", "edge": "edge", "zero": "constant"}[str(extra.get("padding", "reflect"))]
        padded = torch.from_numpy(np.pad(reduced, ((0, 0), (half, half), (half, half)), mode=pad_mode))
        rows, cols = np.nonzero(valid)
        patches = InMemoryPatches(padded, rows, cols, np.zeros(rows.size, dtype=np.int64), patch_size)
        for start in range(0, rows.size, patch_batch):
            index = torch.arange(start, min(start + patch_batch, rows.size))
            logits = model(patches.patches(index).to(device))
            record(rows[start : start + index.numel()], cols[start : start + index.numel()], logits)
    else:
        for start, stop in _row_blocks(height, width, chunk_pixels):
            block = prepare(cube.data[:, start:stop])
            block_valid = valid[start:stop]
            rows, cols = np.nonzero(block_valid)
            if rows.size == 0:
                continue
            spectra = torch.from_numpy(np.ascontiguousarray(block[:, rows, cols].T)).to(device)
            record(rows + start, cols, model(spectra))
    classes = int(getattr(model, "num_classes", 0) or (int(index_map.max()) + 1))
    table = _label_table(config, classes)
    labels = np.zeros((height, width), dtype=np.int32)
    predicted = index_map >= 0
    labels[predicted] = table[index_map[predicted]]
    names = list(config.class_names) if config.class_names else None
    first = int(table[0]) if table.size and np.array_equal(table, np.arange(table[0], table[0] + table.size)) else 1
    if names is not None and first != int(table[0]):
        names = None  # a non-contiguous table: names cannot be listed from one first label
    return ClassifiedScene(labels, confidence, names, first, table)


# ============================================================================ autoencoders
@dataclass
class AutoencodedScene:
    """An autoencoded scene.

    Attributes:
        latent: ``(latent, H, W)`` float32 cube of the latent vectors, with the source's
            georeference (NaN and the nodata mask where the source has no data).
        sam_deg: ``(H, W)`` float32 spectral angle in degrees between each preprocessed
            spectrum and its reconstruction (NaN = no data).
        sid: ``(H, W)`` float32 spectral information divergence of the same pair.
        reconstruction: ``(C, H, W)`` float32 reconstructions (preprocessed units), when asked.
    """

    latent: Cube
    sam_deg: np.ndarray
    sid: np.ndarray
    reconstruction: np.ndarray | None = None

    def summary(self) -> dict[str, float]:
        """Mean and median SAM (degrees) and mean SID over the valid pixels."""
        sam = self.sam_deg[np.isfinite(self.sam_deg)]
        sid = self.sid[np.isfinite(self.sid)]
        return {
            "pixels": int(sam.size),
            "mean_sam_deg": float(sam.mean()) if sam.size else float("nan"),
            "median_sam_deg": float(np.median(sam)) if sam.size else float("nan"),
            "mean_sid": float(sid.mean()) if sid.size else float("nan"),
        }


def model_preprocessing(config: Any) -> SpectralPreprocessing | None:
    """The :class:`SpectralPreprocessing` recorded in a model's config (``extra.preprocessing``), or its normaliser."""
    extra: Mapping[str, Any] = config.extra or {}
    if extra.get("preprocessing"):
        return SpectralPreprocessing.from_dict(extra["preprocessing"], source="the model's config.json")
    if config.normalization:
        preprocessing = SpectralPreprocessing.__new__(SpectralPreprocessing)
        preprocessing.normalizer = _normalizer(config)
        preprocessing.method = preprocessing.normalizer.name
        return preprocessing
    return None


@torch.no_grad()
def autoencode_cube(
    model: nn.Module,
    cube: Cube,
    *,
    keep_reconstruction: bool = False,
    chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
    sid_floor: float = 1e-6,
    device: str | torch.device = "cpu",
) -> AutoencodedScene:
    """Encode and reconstruct every valid pixel of ``cube`` with an exported autoencoder (module docstring)."""
    config = _config(model)
    _check_bands(cube, config)
    preprocessing = model_preprocessing(config)
    model = model.to(device).eval()
    height, width = cube.height, cube.width
    valid = cube.valid_mask
    latent_size = int(getattr(model, "latent_dim"))
    latent = np.full((latent_size, height, width), np.nan, dtype=np.float32)
    sam = np.full((height, width), np.nan, dtype=np.float32)
    sid = np.full((height, width), np.nan, dtype=np.float32)
    reconstruction = np.full((cube.bands, height, width), np.nan, dtype=np.float32) if keep_reconstruction else None
    for start, stop in _row_blocks(height, width, chunk_pixels):
        rows, cols = np.nonzero(valid[start:stop])
        if rows.size == 0:
            continue
        spectra = np.asarray(cube.data[:, start:stop], dtype=np.float32)[:, rows, cols].T
        if preprocessing is not None:
            spectra = np.asarray(preprocessing.transform(spectra, band_axis=1), dtype=np.float32)
        inputs = torch.from_numpy(np.ascontiguousarray(spectra)).to(device)
        codes = model.encode(inputs)  # type: ignore[operator]
        # a skip-connected decoder needs the encoder's activations: run the whole network then
        skip = getattr(model, "skip_connect", False)
        outputs = model(inputs) if skip else model.decode(codes)  # type: ignore[operator]
        rows = rows + start
        latent[:, rows, cols] = codes.float().cpu().numpy().T
        target, output = inputs.float(), outputs.float()
        sam[rows, cols] = spectral_angle(output, target, axis=1, degrees=True).cpu().numpy()
        sid[rows, cols] = (
            spectral_information_divergence(target.clamp_min(sid_floor), output.clamp_min(sid_floor), axis=1)
            .cpu()
            .numpy()
        )
        if reconstruction is not None:
            reconstruction[:, rows, cols] = output.cpu().numpy().T
    mask = None if valid.all() else ~valid
    latent_cube = Cube(
        latent,
        band_names=[f"latent_{k + 1}" for k in range(latent_size)],
        crs=cube.crs,
        transform=cube.transform,
        nodata=float("nan") if mask is not None else None,
        nodata_mask=mask,
        nonfinite="mask" if mask is not None else "error",
        metadata={"description": "autoencoder latent vectors", "source": cube.source_label},
    )
    return AutoencodedScene(latent_cube, sam, sid, reconstruction)


def latent_separation(latent: Any, spectra: Any, labels: Any, seed: int = 0, max_pixels: int = 20000) -> dict[str, Any]:
    """How well k-means on the latent vectors recovers the classes, against k-means on the spectra.

    Args:
        latent: ``(N, D)`` latent vectors.
        spectra: ``(N, B)`` the (preprocessed) spectra of the same pixels.
        labels: ``(N,)`` label values; pixels with a label <= 0 are left out.
        seed: k-means seed; at most ``max_pixels`` labelled pixels (a seeded subset) are clustered.

    Returns:
        ``{"classes", "pixels", "nmi_latent", "nmi_spectra"}``: NMI (geometric mean
        normalisation) between the classes and k-means with k = the number of classes.
    """
    from sklearn.cluster import KMeans

    from hsikit.metrics.clustering import normalized_mutual_info

    values = np.asarray(labels).reshape(-1)
    keep = np.flatnonzero(values > 0)
    if keep.size > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_pixels, replace=False))
    classes = int(np.unique(values[keep]).size)
    result: dict[str, Any] = {"classes": classes, "pixels": int(keep.size)}
    for name, features in (("latent", latent), ("spectra", spectra)):
        points = np.asarray(features, dtype=np.float64)[keep]
        clusters = KMeans(n_clusters=max(classes, 2), n_init=4, random_state=seed).fit_predict(points)
        result[f"nmi_{name}"] = float(normalized_mutual_info(values[keep], clusters))
    return result


__all__ = [
    "AutoencodedScene",
    "ClassifiedScene",
    "autoencode_cube",
    "classify_cube",
    "latent_separation",
    "model_preprocessing",
]
