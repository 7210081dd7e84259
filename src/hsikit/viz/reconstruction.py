"""Pictures of an RGB → hyperspectral reconstruction: predicted against true spectra, and where the error is.

:func:`plot_reconstruction` draws three panels: the RGB input with the chosen pixels
marked, the true (solid) and predicted (dashed) spectra of those pixels against
wavelength, and the per-pixel relative error map ``mean_c |ŷ − y| / |y|`` (the MRAE of
each pixel, the quantity the MST++ protocol averages).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.viz.style import DEFAULT_DPI, finish, new_figure

_MARKER_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:cyan")
_EXTRA_STYLES = (":", "-.", (0, (5, 1)), (0, (1, 2)))


def default_pixels(height: int, width: int, count: int = 4) -> list[tuple[int, int]]:
    """``count`` (row, col) pixels spread over an image: a grid of points at the centres of equal cells."""
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}")
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    points = [
        (int((r + 0.5) * height / rows), int((c + 0.5) * width / columns)) for r in range(rows) for c in range(columns)
    ]
    return points[:count]


def pixel_relative_error(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(H, W)`` per-pixel MRAE of ``(C, H, W)`` cubes, as :func:`hsikit.viz.errors.pixel_error_maps`
    defines it (the metrics' ``"custom"`` denominator: zeros in the target replaced by 1e-8)."""
    from hsikit.viz.errors import pixel_error_maps

    return pixel_error_maps(prediction, target, ("mrae",), mrae_variant="custom")["mrae"]


def plot_reconstruction(
    prediction: np.ndarray,
    target: np.ndarray,
    *,
    rgb: np.ndarray | None = None,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    pixels: Sequence[tuple[int, int]] | None = None,
    extra_predictions: Mapping[str, np.ndarray] | None = None,
    prediction_label: str = "predicted",
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
) -> Figure:
    """Predicted vs true spectra at a few pixels, the RGB input and the per-pixel error map.

    Args:
        prediction, target: ``(C, H, W)`` cubes.
        rgb: ``(3, H, W)`` input image (uint8, or float in [0, 1]), shown brightened so its 99th
            percentile is white; when None the target's band mean is shown in grey.
        wavelengths: band centres in nm, ``(C,)`` (default: band numbers).
        pixels: ``(row, col)`` pixels to plot (default: 4 spread over the image).
        extra_predictions: more ``(C, H, W)`` predictions by name (e.g. a baseline), dotted.
        prediction_label: legend text of ``prediction``.
        title: figure title.
        path, dpi: save the figure there (PNG/PDF/SVG by extension) at this resolution.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.ndim != 3 or prediction.shape != target.shape:
        raise ShapeMismatchError(
            f"plot_reconstruction needs prediction and target of one (C, H, W) shape, got {prediction.shape} "
            f"and {target.shape}"
        )
    bands, height, width = target.shape
    extras = {name: np.asarray(cube, dtype=np.float64) for name, cube in (extra_predictions or {}).items()}
    for name, cube in extras.items():
        if cube.shape != target.shape:
            raise ShapeMismatchError(f"extra prediction {name!r} has shape {cube.shape}, the target {target.shape}")
    points = [(int(r), int(c)) for r, c in (pixels if pixels is not None else default_pixels(height, width))]
    for row, col in points:
        if not (0 <= row < height and 0 <= col < width):
            raise ConfigError(f"pixel (row {row}, col {col}) lies outside the {height} x {width} image")
    x = np.arange(bands, dtype=np.float64) if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
    if x.shape != (bands,):
        raise ShapeMismatchError(f"{x.size} wavelengths for {bands} bands")

    figure = new_figure(12.0, 4.2)
    image_axes, spectra_axes, error_axes = figure.subplots(1, 3, width_ratios=(1.0, 1.5, 1.0))
    if rgb is not None:
        picture = np.moveaxis(np.asarray(rgb, dtype=np.float64), 0, -1)
        if np.asarray(rgb).dtype == np.uint8:
            picture = picture / 255.0
        # brightened for display: the 99th percentile becomes white (auto-exposed photos are dark)
        bright = float(np.percentile(picture, 99)) or 1.0
        image_axes.imshow(np.clip(picture / bright, 0.0, 1.0), interpolation="nearest")
        image_axes.set_title("RGB input (brightened)")
    else:
        image_axes.imshow(target.mean(axis=0), cmap="gray", interpolation="nearest")
        image_axes.set_title("target (band mean)")
    image_axes.set_axis_off()

    styles = [("true", "-", 1.6), (prediction_label, "--", 1.4)]
    styles += [(name, _EXTRA_STYLES[index % len(_EXTRA_STYLES)], 1.0) for index, name in enumerate(extras)]
    cubes = [target, prediction, *extras.values()]
    for number, (row, col) in enumerate(points):
        colour = _MARKER_COLOURS[number % len(_MARKER_COLOURS)]
        image_axes.plot(col, row, marker="o", markersize=7, markerfacecolor="none", markeredgecolor=colour, mew=2)
        for cube, (_, style, line_width) in zip(cubes, styles):
            spectra_axes.plot(x, cube[:, row, col], color=colour, linewidth=line_width, linestyle=style)
    # legend: one entry per pixel (colour) and one per series (line style)
    handles = [Line2D([], [], color=_MARKER_COLOURS[n % len(_MARKER_COLOURS)], linewidth=3) for n in range(len(points))]
    labels = [f"pixel ({row}, {col})" for row, col in points]
    handles += [Line2D([], [], color="black", linewidth=width, linestyle=style) for _, style, width in styles]
    labels += [name for name, _, _ in styles]
    spectra_axes.legend(handles, labels, fontsize=7, ncol=2)
    spectra_axes.set_xlabel("wavelength (nm)" if wavelengths is not None else "band")
    spectra_axes.set_ylabel("value")
    spectra_axes.set_title("spectra at the marked pixels")
    spectra_axes.grid(True, alpha=0.3)

    error = pixel_relative_error(prediction, target)
    top = float(np.percentile(error, 99))
    shown = error_axes.imshow(error, cmap="magma", vmin=0.0, vmax=top, interpolation="nearest")
    error_axes.set_title(f"per-pixel MRAE (mean {error.mean():.3f})")
    error_axes.set_axis_off()
    figure.colorbar(shown, ax=error_axes, fraction=0.046, pad=0.04)
    if title:
        figure.suptitle(title)
    return finish(figure, path, dpi)


__all__ = ["default_pixels", "pixel_relative_error", "plot_reconstruction"]
