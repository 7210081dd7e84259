"""Map image tiles and whole scenes with a trained segmentation model (SSMGNet's ``predict_small.py``
and ``predict_huge.py``, with their bugs fixed).

* :func:`segment_tile` - a tile that fits in memory, in one forward pass: the class GeoTIFF
  (georeference kept), a colour PNG, the learned-attention heat map (models with an
  attention map) and Grad-CAM heat maps (PNG, and float32 GeoTIFF with the georeference),
  optionally polygons.
* :func:`segment_scene` - a scene of any size through
  :func:`hsikit.inference.predict_scene` (streaming tiles, merged softmax probabilities,
  argmax at the end: never averaged labels), the class GeoTIFF written window by window
  with the input's CRS and transform, polygons traced strip by strip
  (:func:`hsikit.inference.vectorize.vectorize_raster`) and a colour preview PNG read
  decimated from the class raster, so memory stays bounded.

Class rasters are uint8 (uint16 above 255 classes) with nodata 255 (65535) where the
input holds no data. Colours: SSMGNet's palette for classes 0–2 (black background,
light grey clean glacier, green debris-covered glacier), then a qualitative colour map.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from hsikit.cube import Window
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.io.atomic import atomic_path

#: SSMGNet's colours: 0 background, 1 clean glacier, 2 debris-covered glacier (RGB, 0-255)
GLACIER_PALETTE: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (218, 218, 218), (0, 153, 0))
NODATA_COLOUR: tuple[int, int, int] = (255, 255, 255)
SegmentMode = Literal["auto", "small", "huge"]
VectorFormat = Literal["gpkg", "shp"]


# ---------------------------------------------------------------------------- colours and pictures
def class_palette(
    num_classes: int, palette: Mapping[int, Sequence[int]] | Sequence[Sequence[int]] | None = None
) -> np.ndarray:
    """``(K, 3)`` uint8 colours: ``palette`` entries where given, SSMGNet's for classes 0–2, tab20 after.

    Raises:
        ConfigError: a colour that is not three values in 0..255.
    """
    import matplotlib

    colours = np.zeros((num_classes, 3), dtype=np.uint8)
    qualitative = matplotlib.colormaps["tab20"]
    for index in range(num_classes):
        if index < len(GLACIER_PALETTE):
            colours[index] = GLACIER_PALETTE[index]
        else:
            colours[index] = np.round(np.asarray(qualitative((index - len(GLACIER_PALETTE)) % 20)[:3]) * 255)
    given: Mapping[int, Sequence[int]] = (
        palette if isinstance(palette, Mapping) else dict(enumerate(palette or []))
    )
    for key, colour in given.items():
        values = [int(v) for v in colour]
        if len(values) != 3 or min(values) < 0 or max(values) > 255:
            raise ConfigError(f"palette colour of class {key} must be three values in 0..255, got {list(colour)}")
        if 0 <= int(key) < num_classes:
            colours[int(key)] = values
    return colours


def colorize(classes: np.ndarray, colours: np.ndarray, nodata: int | None = None) -> np.ndarray:
    """``(H, W)`` class ids → ``(H, W, 3)`` uint8 RGB; ``nodata`` (and ids without a colour) are white."""
    ids = np.asarray(classes)
    rgb = np.empty(ids.shape + (3,), dtype=np.uint8)
    rgb[:] = NODATA_COLOUR
    known = (ids >= 0) & (ids < len(colours))
    if nodata is not None:
        known &= ids != nodata
    rgb[known] = colours[ids[known].astype(np.int64)]
    return rgb


def heatmap_rgb(values: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """``(H, W)`` values in [0, 1] → ``(H, W, 3)`` uint8 through a matplotlib colour map (the reference: JET)."""
    import matplotlib

    clipped = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return (matplotlib.colormaps[colormap](clipped)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def write_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``(H, W, 3)`` uint8 image as PNG, atomically."""
    from PIL import Image

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(tmp, format="PNG")
    return target


def _write_raster(
    array: np.ndarray, path: Path, crs: Any, transform: Any, nodata: float | None, band_names: list[str] | None = None
) -> Path:
    """A ``(bands, H, W)`` array as a compressed GeoTIFF with the given georeference (atomic)."""
    from hsikit.io.geotiff import GeoTiffWriter

    with GeoTiffWriter(
        path, array.shape, array.dtype, crs=crs, transform=transform, nodata=nodata, band_names=band_names,
        compress="deflate",
    ) as writer:  # fmt: skip
        writer.write_window(array, Window(0, 0, array.shape[1], array.shape[2]))
    return path


# ---------------------------------------------------------------------------- model helpers
def input_normalizer(model: nn.Module) -> Any:
    """The model's input normaliser from its ``config.json`` (None when it has none)."""
    config = getattr(model, "hsikit_config", None)
    state = getattr(config, "normalization", None)
    if not state or state.get("name", "none") == "none":
        return None
    from hsikit.spectral.normalize import Normalizer

    normalizer = Normalizer.from_dict(state, source="model config.json")
    return lambda batch: normalizer.transform(batch, band_axis=1)


def _model_bands(model: nn.Module) -> int | None:
    config = getattr(model, "hsikit_config", None)
    bands = getattr(config, "bands", None)
    if bands is None:
        bands = getattr(model, "in_bands", None)
    return None if bands is None else int(bands)


def _class_names(model: nn.Module, class_names: Sequence[str] | None) -> list[str] | None:
    if class_names is not None:
        return [str(name) for name in class_names]
    config = getattr(model, "hsikit_config", None)
    names = getattr(config, "class_names", None)
    return None if not names else [str(name) for name in names]


def _check_bands(model: nn.Module, bands: int, source: str) -> None:
    expected = _model_bands(model)
    if expected is not None and expected != bands:
        raise ShapeMismatchError(
            f"'{source}' has {bands} bands but the model was trained on {expected}; use a model trained for this "
            "sensor, or give it a cube with the model's bands (config.json 'bands'/'wavelengths')"
        )


# ---------------------------------------------------------------------------- one tile
def segment_tile(
    model: nn.Module,
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    name: str | None = None,
    class_names: Sequence[str] | None = None,
    palette: Mapping[int, Sequence[int]] | Sequence[Sequence[int]] | None = None,
    gradcam_classes: Sequence[int] | None = None,
    vector: VectorFormat | None = None,
    min_area: float = 0.0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Segment one tile held in memory and write its pictures.

    Args:
        model: a segmentation model (``load_model`` output; returns logits or
            :class:`~hsikit.models.segmentation.SegmentationOutput`).
        source: the image file (GeoTIFF, ENVI...). NaN/Inf/nodata pixels enter the model as 0
            and are written as nodata.
        output_dir: folder for the outputs (created).
        name: output stem (default: the input's stem); files are ``seg_<name>_*``.
        class_names: names of the class ids (default: the model's config).
        palette: colours by class id (default: :func:`class_palette`).
        gradcam_classes: classes to explain with Grad-CAM (default: every class but 0; ``[]``: none).
        vector: also trace polygons into ``seg_<name>_class.gpkg`` / ``.shp``.
        min_area: smallest polygon kept, CRS units squared.
        device: torch device.

    Returns:
        ``{"classes": path, "png": path, "attention_png": path or None, "attention_tif": …,
        "gradcam": {class: {"png", "tif"}}, "vector": path or None, "milliseconds": model time,
        "class_counts": [...]}``.
    """
    from hsikit.inference.gradcam import grad_cam
    from hsikit.inference.streaming import class_dtype_and_nodata
    from hsikit.io import open_cube

    cube = open_cube(source, nonfinite="ignore")
    _check_bands(model, cube.bands, str(source))
    stem = name or Path(source).stem
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    image = np.array(cube.data, dtype=np.float32)
    invalid = ~np.isfinite(image).all(axis=0)
    if cube.nodata is not None and not np.isnan(cube.nodata):
        invalid |= (image == np.float32(cube.nodata)).all(axis=0)
    image[:, invalid] = 0.0
    batch = torch.from_numpy(image)[None].to(device)
    normalize = input_normalizer(model)
    if normalize is not None:
        batch = normalize(batch)
    model = model.to(device).eval()
    started = time.perf_counter()
    with torch.inference_mode():
        output = model(batch)
    milliseconds = (time.perf_counter() - started) * 1000.0
    logits = output if isinstance(output, torch.Tensor) else output[0]
    attention = None if isinstance(output, torch.Tensor) or len(output) < 2 else output[1]
    num_classes = int(logits.shape[1])
    dtype, nodata = class_dtype_and_nodata(num_classes)
    classes = logits[0].argmax(dim=0).cpu().numpy().astype(dtype)
    classes[invalid] = nodata
    names = _class_names(model, class_names)
    colours = class_palette(num_classes, palette)

    written: dict[str, Any] = {"milliseconds": milliseconds, "attention_png": None, "attention_tif": None}
    written["classes"] = _write_raster(
        classes[None], folder / f"seg_{stem}_class.tif", cube.crs, cube.transform, nodata, ["class"]
    )
    written["png"] = write_png(colorize(classes, colours, nodata), folder / f"seg_{stem}.png")
    if attention is not None:
        attention_map = attention[0, 0].float().cpu().numpy()
        written["attention_png"] = write_png(heatmap_rgb(attention_map), folder / f"seg_{stem}_attention.png")
        written["attention_tif"] = _write_raster(
            attention_map[None].astype(np.float32), folder / f"seg_{stem}_attention.tif", cube.crs, cube.transform,
            None, ["learned_attention"],
        )  # fmt: skip
    targets = list(range(1, num_classes)) if gradcam_classes is None else [int(k) for k in gradcam_classes]
    written["gradcam"] = {}
    for target_class in targets:
        cam = grad_cam(model, batch[0], target_class)
        label = names[target_class] if names and target_class < len(names) else str(target_class)
        written["gradcam"][target_class] = {
            "png": write_png(heatmap_rgb(cam), folder / f"seg_{stem}_gradcam_{target_class}.png"),
            "tif": _write_raster(
                cam[None], folder / f"seg_{stem}_gradcam_{target_class}.tif", cube.crs, cube.transform, None,
                [f"gradcam_{label}"],
            ),
        }  # fmt: skip
    written["vector"] = None
    if vector is not None:
        from hsikit.inference.vectorize import vectorize_raster

        written["vector"] = vectorize_raster(
            written["classes"], folder / f"seg_{stem}_class.{vector}", class_names=names, min_area=min_area
        ).path
    valid = classes[~invalid]
    written["class_counts"] = np.bincount(valid.astype(np.int64), minlength=num_classes).tolist()
    return written


# ---------------------------------------------------------------------------- a whole scene
def segment_scene(
    model: nn.Module,
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    name: str | None = None,
    class_names: Sequence[str] | None = None,
    palette: Mapping[int, Sequence[int]] | Sequence[Sequence[int]] | None = None,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    vector: VectorFormat | None = None,
    min_area: float = 0.0,
    preview_size: int = 2048,
    progress: bool = True,
) -> dict[str, Any]:
    """Segment a scene of any size in bounded memory.

    Args:
        model, source, output_dir, name, class_names, palette, device, vector, min_area:
            as :func:`segment_tile`.
        tile, overlap, batch_size: tiling of :func:`hsikit.inference.predict_scene`.
        preview_size: longest side of the colour preview PNG in pixels (the class map is read
            decimated, nearest neighbour; the full resolution is in the GeoTIFF).
        progress: show a progress bar over tiles.

    Returns:
        ``{"classes": path, "png": path, "vector": path or None, "seconds": inference time,
        "megapixels": scene size, "vector_summary": VectorSummary or None}``.
    """
    from hsikit.inference.streaming import predict_scene
    from hsikit.io import open_reader
    from hsikit.models.segmentation.output import SegmentationLogits

    stem = name or Path(source).stem
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    reader = open_reader(source)
    try:
        _check_bands(model, reader.bands, str(source))
        names = _class_names(model, class_names)
        megapixels = reader.height * reader.width / 1e6
        classes_path = folder / f"seg_{stem}_class.tif"
        started = time.perf_counter()
        predict_scene(
            SegmentationLogits(model),
            reader,
            classes_path,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            output_kind="classes",
            normalizer=input_normalizer(model),
            class_names=names,
            writer_options={"compress": "deflate", "blocksize": 512},
            progress=progress,
        )
        seconds = time.perf_counter() - started
    finally:
        reader.close()
    written: dict[str, Any] = {"classes": classes_path, "seconds": seconds, "megapixels": megapixels}
    written["png"] = _write_preview(
        classes_path, folder / f"seg_{stem}.png", palette, preview_size, None if names is None else len(names)
    )
    written["vector"] = written["vector_summary"] = None
    if vector is not None:
        from hsikit.inference.vectorize import vectorize_raster

        summary = vectorize_raster(classes_path, folder / f"seg_{stem}_class.{vector}", class_names=names,
                                   min_area=min_area)  # fmt: skip
        written["vector"], written["vector_summary"] = summary.path, summary
    return written


def _write_preview(
    classes_path: Path,
    target: Path,
    palette: Mapping[int, Sequence[int]] | Sequence[Sequence[int]] | None,
    preview_size: int,
    num_classes: int | None,
) -> Path:
    """A colour PNG of a class raster, read decimated (nearest) so that its long side is at most ``preview_size``."""
    import rasterio
    from rasterio.enums import Resampling

    if preview_size < 1:
        raise ConfigError(f"preview_size must be at least 1 pixel, got {preview_size}")
    with rasterio.open(classes_path) as dataset:
        factor = max(1.0, max(dataset.height, dataset.width) / preview_size)
        shape = (max(1, round(dataset.height / factor)), max(1, round(dataset.width / factor)))
        classes = dataset.read(1, out_shape=shape, resampling=Resampling.nearest)
        nodata = None if dataset.nodata is None else int(dataset.nodata)
    if num_classes is None:
        scored = classes if nodata is None else classes[classes != nodata]
        num_classes = int(scored.max(initial=0)) + 1
    return write_png(colorize(classes, class_palette(num_classes, palette), nodata), target)


def segment(
    model: nn.Module,
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    mode: SegmentMode = "auto",
    tile: int = 512,
    **options: Any,
) -> dict[str, Any]:
    """:func:`segment_tile` for an image that fits in one ``tile`` (``mode="auto"``) or ``"small"``,
    :func:`segment_scene` otherwise (``"huge"``). ``options`` go to the chosen function."""
    if mode not in ("auto", "small", "huge"):
        raise ConfigError(f"mode must be 'auto', 'small' or 'huge', got {mode!r}")
    if mode == "auto":
        from hsikit.io import open_reader

        with open_reader(source) as reader:
            mode = "small" if reader.height <= tile and reader.width <= tile else "huge"
    if mode == "small":
        for key in ("overlap", "batch_size", "preview_size", "progress"):
            options.pop(key, None)
        result = segment_tile(model, source, output_dir, **options)
    else:
        options.pop("gradcam_classes", None)
        result = segment_scene(model, source, output_dir, tile=tile, **options)
    result["mode"] = mode
    return result


__all__ = [
    "GLACIER_PALETTE",
    "class_palette",
    "colorize",
    "heatmap_rgb",
    "input_normalizer",
    "segment",
    "segment_scene",
    "segment_tile",
    "write_png",
]
