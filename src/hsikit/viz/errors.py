"""Error maps of a predicted cube against its target: MRAE, RMSE and SAM per pixel, and per band.

The definitions are those of :mod:`hsikit.metrics.reconstruction` (the MST++ protocol),
evaluated per pixel instead of per image, from the same building blocks:

* MRAE per pixel: mean over bands of ``|ŷ − y| / d(y)``, with ``d`` =
  :func:`~hsikit.metrics.reconstruction.relative_error_denominator` (``variant="custom"``
  by default: a zero target value counts as 1e-8, so a map never fails on real data;
  ``"mstpp"`` refuses zeros). The mean of the map over pixels is exactly the per-image
  MRAE with ``crop=0``.
* RMSE per pixel: ``sqrt(mean over bands of (ŷ − y)²)``. (The image RMSE is the square
  root of the mean of the squared map, not the mean of the map.)
* SAM per pixel: :func:`hsikit.spectral.metrics.spectral_angle` with ``eps=0`` as the
  protocol uses it, in degrees by default. The mean of the map is the per-image SAM.

Per band (:func:`band_errors`): MRAE and RMSE over the valid pixels of each band.
Nodata pixels (the target's ``nodata_mask``) are NaN in every map and left out of every mean.
Arrays are ``(bands, H, W)``; maps are ``(H, W)`` float64.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from hsikit.cube import Cube
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.metrics.reconstruction import MraeVariant, reconstruction_metrics, relative_error_denominator
from hsikit.spectral.metrics import spectral_angle
from hsikit.viz.style import FigureStyle, figure_style, get_style, save_figure_formats, styled_figure

#: The per-pixel error maps hsikit draws, in their usual order.
ERROR_METRICS: tuple[str, ...] = ("mrae", "rmse", "sam")

#: Axis/colour-bar text of each error map.
ERROR_LABELS: dict[str, str] = {
    "mrae": "MRAE (relative)",
    "rmse": "RMSE (data units)",
    "sam": "SAM (degrees)",
    "sam_rad": "SAM (radians)",
}

#: Colour map of error maps: dark = small error, bright = large.
ERROR_CMAP = "inferno"

#: Upper end of the colour scale of an error map: this percentile of its valid pixels.
ERROR_PERCENTILE = 99.0

# Maps are computed over blocks of rows holding about this many values, so a large
# scene does not need several float64 copies of itself at once.
_BLOCK_VALUES = 8_000_000


def as_array(source: Cube | np.ndarray) -> np.ndarray:
    """The ``(bands, H, W)`` array of a cube or an array (a 2-D array is one band)."""
    array = source.data if isinstance(source, Cube) else np.asarray(source)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ShapeMismatchError(f"expected a (bands, H, W) cube, got an array of shape {array.shape}")
    return array


def _label(source: Cube | np.ndarray, fallback: str) -> str:
    return source.source_label if isinstance(source, Cube) else fallback


def check_pair(prediction: Cube | np.ndarray, target: Cube | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays ``(bands, H, W)``, refused with the two shapes named when they differ."""
    predicted, true = as_array(prediction), as_array(target)
    if predicted.shape != true.shape:
        raise ShapeMismatchError(
            f"prediction {_label(prediction, '<prediction>')} of shape {predicted.shape} and target "
            f"{_label(target, '<target>')} of shape {true.shape} differ; compare cubes of the same scene, bands "
            "and size (check the layout= of .npy files: (bands, H, W) vs (H, W, bands))"
        )
    return predicted, true


def _valid_mask(prediction: Cube | np.ndarray, target: Cube | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    valid = np.ones(shape, dtype=bool)
    for source in (prediction, target):
        if isinstance(source, Cube):
            valid &= source.valid_mask
    return valid


def pixel_error_maps(
    prediction: Cube | np.ndarray,
    target: Cube | np.ndarray,
    metrics: Sequence[str] = ERROR_METRICS,
    *,
    mrae_variant: MraeVariant = "custom",
    sam_degrees: bool = True,
) -> dict[str, np.ndarray]:
    """Per-pixel error maps ``{metric: (H, W) float64}`` of ``prediction`` against ``target``.

    Args:
        prediction, target: cubes or arrays ``(bands, H, W)`` of the same shape.
        metrics: names among ``mrae``, ``rmse``, ``sam``.
        mrae_variant: zero handling of the MRAE denominator (see the module docstring).
        sam_degrees: SAM in degrees (default) or radians.

    Nodata pixels of either cube are NaN.
    """
    names = tuple(metrics)
    unknown = [name for name in names if name not in ERROR_METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown error map(s) {unknown or list(names)}; choose among {', '.join(ERROR_METRICS)}")
    predicted, true = check_pair(prediction, target)
    bands, height, width = true.shape
    maps = {name: np.full((height, width), np.nan) for name in names}
    rows_per_block = max(1, _BLOCK_VALUES // max(1, bands * width))
    for start in range(0, height, rows_per_block):
        stop = min(height, start + rows_per_block)
        block_prediction = torch.from_numpy(np.asarray(predicted[:, start:stop], dtype=np.float64))
        block_target = torch.from_numpy(np.asarray(true[:, start:stop], dtype=np.float64))
        difference = block_prediction - block_target
        if "mrae" in maps:
            denominator = relative_error_denominator(block_target, mrae_variant, metric="mrae map")
            maps["mrae"][start:stop] = (difference.abs() / denominator).mean(dim=0).numpy()
        if "rmse" in maps:
            maps["rmse"][start:stop] = difference.square().mean(dim=0).sqrt().numpy()
        if "sam" in maps:
            angle = spectral_angle(block_prediction, block_target, axis=0, eps=0.0, degrees=sam_degrees)
            maps["sam"][start:stop] = angle.numpy()
    invalid = ~_valid_mask(prediction, target, (height, width))
    for values in maps.values():
        values[invalid] = np.nan
    return maps


def band_errors(
    prediction: Cube | np.ndarray, target: Cube | np.ndarray, *, mrae_variant: MraeVariant = "custom"
) -> dict[str, np.ndarray]:
    """MRAE and RMSE of each band over the valid pixels: ``{"mrae": (bands,), "rmse": (bands,)}`` float64."""
    predicted, true = check_pair(prediction, target)
    valid = _valid_mask(prediction, target, true.shape[1:])
    if not valid.any():
        raise ShapeMismatchError(
            f"{_label(target, '<target>')}: no valid pixel to score (every pixel is nodata in the prediction or target)"
        )
    bands = true.shape[0]
    mrae = np.empty(bands)
    rmse = np.empty(bands)
    for band in range(bands):
        y = torch.from_numpy(np.asarray(true[band], dtype=np.float64)[valid])
        difference = torch.from_numpy(np.asarray(predicted[band], dtype=np.float64)[valid]) - y
        mrae[band] = float((difference.abs() / relative_error_denominator(y, mrae_variant, metric="band MRAE")).mean())
        rmse[band] = float(difference.square().mean().sqrt())
    return {"mrae": mrae, "rmse": rmse}


def scene_scores(
    prediction: Cube | np.ndarray,
    target: Cube | np.ndarray,
    metrics: Sequence[str] = ("mrae", "rmse", "psnr", "sam"),
    *,
    crop: int = 0,
    mrae_variant: MraeVariant = "custom",
) -> dict[str, float]:
    """Whole-image scores of one scene, from :func:`hsikit.metrics.reconstruction.reconstruction_metrics`.

    SAM is in degrees here (as the maps); ``crop`` is the protocol's border crop (0: whole image).
    """
    predicted, true = check_pair(prediction, target)
    values = reconstruction_metrics(
        torch.from_numpy(np.asarray(predicted, dtype=np.float64)),
        torch.from_numpy(np.asarray(true, dtype=np.float64)),
        metrics=tuple(metrics),
        crop=crop,
        mrae_variant=mrae_variant,
        sam_degrees=True,
    )
    return {name: float(value[0]) for name, value in values.items()}


def error_limit(values: np.ndarray, percentile: float = ERROR_PERCENTILE) -> float:
    """Upper end of an error colour scale: the ``percentile`` of the finite values (1 when there are none)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 1.0
    upper = float(np.percentile(finite, percentile))
    return upper if upper > 0 else float(finite.max()) or 1.0


def draw_error_map(
    figure: Figure, axes: Any, values: np.ndarray, metric: str, vmax: float | None = None, colour_bar: bool = True
) -> Any:
    """Draw one error map into ``axes`` (0..vmax, NaN transparent) with an optional colour bar; returns the image."""
    import matplotlib

    colour_map = matplotlib.colormaps[ERROR_CMAP].with_extremes(bad=(0.85, 0.85, 0.85, 1.0))
    upper = error_limit(values) if vmax is None else float(vmax)
    image = axes.imshow(np.ma.masked_invalid(values), cmap=colour_map, vmin=0.0, vmax=upper, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    if colour_bar:
        bar = figure.colorbar(image, ax=axes, shrink=0.85, extend="max" if np.nanmax(values) > upper else "neither")
        bar.set_label(ERROR_LABELS.get(metric, metric))
    return image


def plot_error_maps(
    prediction: Cube | np.ndarray,
    target: Cube | np.ndarray,
    metrics: Sequence[str] = ERROR_METRICS,
    *,
    title: str | None = None,
    mrae_variant: MraeVariant = "custom",
    limits: Mapping[str, float] | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """One scene's error maps side by side, each with its colour bar and its mean in the title.

    Args:
        prediction, target: ``(bands, H, W)`` cubes or arrays of the same scene.
        metrics: maps to draw, among ``mrae``, ``rmse``, ``sam`` (degrees).
        title: figure title (e.g. the scene name).
        mrae_variant: see :func:`pixel_error_maps`.
        limits: upper colour limits by metric (default: the 99th percentile of each map),
            to give several figures the same scale.
        style: ``"paper"`` or ``"screen"``.
        path: when given, the figure is saved there as PNG and PDF (extension replaced).
        dpi: resolution of the PNG (default: the style's).
    """
    maps = pixel_error_maps(prediction, target, metrics, mrae_variant=mrae_variant)
    chosen = get_style(style)
    height, width = next(iter(maps.values())).shape
    panel = chosen.panel_in
    with figure_style(chosen):
        figure = styled_figure(chosen, panel * 1.3 * len(maps), panel * height / max(width, 1) + 0.7)
        for number, (name, values) in enumerate(maps.items(), start=1):
            axes = figure.add_subplot(1, len(maps), number)
            draw_error_map(figure, axes, values, name, None if limits is None else limits.get(name))
            axes.set_title(f"{name.upper()} (mean {np.nanmean(values):.4g})")
        if title:
            figure.suptitle(title)
        if path is not None:
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": _error_caption(title)})
    return figure


def _error_caption(title: str | None) -> str:
    text = (
        "Per-pixel errors of the prediction against the target: MRAE (mean relative absolute error over bands), "
        "RMSE (root mean squared error over bands) and SAM (angle between predicted and true spectra, degrees). "
        "Dark is small error; grey pixels are nodata."
    )
    return f"{title}: {text}" if title else text
