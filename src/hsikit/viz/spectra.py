"""Spectra: chosen pixels, or the mean (± one standard deviation) of each class.

The x axis is wavelength in nm when the cube has wavelengths, else the band
index. Lines break over spectral gaps (bands removed for water absorption, as in
Indian Pines), instead of drawing a straight segment across them. Class colours
are those of :func:`hsikit.viz.maps.class_colour_table`, so a class has the same
colour here as in its map.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hsikit.cube import Cube
from hsikit.errors import ConfigError, InvalidCubeError
from hsikit.viz.maps import ClassNames, _check_labels, _colour_table, class_name_table
from hsikit.viz.style import DEFAULT_DPI, finish, new_figure

# A spacing between neighbouring band centres larger than this multiple of the
# median spacing is a gap (removed bands) and breaks the line.
_GAP_FACTOR = 2.5


@dataclass(frozen=True)
class ClassSpectra:
    """Per-class statistics of a cube's spectra.

    Attributes:
        class_ids: label values, shape ``(K,)``, ascending.
        mean: mean spectrum of each class, shape ``(K, bands)``.
        std: standard deviation of each class, shape ``(K, bands)`` (population, ddof=0).
        count: number of valid pixels of each class, shape ``(K,)``.
    """

    class_ids: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray


def class_mean_spectra(cube: Cube, labels: np.ndarray, unlabelled_value: int | None = 0) -> ClassSpectra:
    """Mean and standard deviation of the spectra of each class.

    Args:
        cube: the cube, ``(bands, H, W)``; nodata pixels are left out.
        labels: ``(H, W)`` integer class map of the same scene.
        unlabelled_value: label value left out (as are negative values); None
            keeps every value.

    Reads one band at a time, so a memory-mapped cube is never loaded whole.
    """
    label_map = _check_labels(labels, cube.shape[1:], source=f"labels of {cube.source_label}")
    keep = cube.valid_mask & (label_map >= 0)
    if unlabelled_value is not None:
        keep &= label_map != unlabelled_value
    flat_labels = label_map[keep]
    class_ids, inverse = np.unique(flat_labels, return_inverse=True)
    count = np.bincount(inverse, minlength=class_ids.size).astype(np.int64)
    mean = np.zeros((class_ids.size, cube.bands))
    std = np.zeros((class_ids.size, cube.bands))
    if class_ids.size == 0:
        return ClassSpectra(class_ids, mean, std, count)
    for band in range(cube.bands):
        values = np.asarray(cube.data[band], dtype=np.float64)[keep]
        band_mean = np.bincount(inverse, weights=values, minlength=class_ids.size) / count
        # two-pass variance: stable when the mean is large compared with the spread (radiance counts)
        deviation = values - band_mean[inverse]
        mean[:, band] = band_mean
        std[:, band] = np.sqrt(np.bincount(inverse, weights=deviation * deviation, minlength=class_ids.size) / count)
    return ClassSpectra(class_ids, mean, std, count)


def spectral_axis(cube: Cube) -> tuple[np.ndarray, str]:
    """The x values of a spectrum plot, shape ``(bands,)``, and the axis label."""
    if cube.wavelengths is not None:
        return np.asarray(cube.wavelengths, dtype=np.float64), "wavelength (nm)"
    return np.arange(cube.bands, dtype=np.float64), "band index"


def _with_gaps(x: np.ndarray, *series: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sort by ``x`` and insert NaN between bands separated by a spectral gap."""
    order = np.argsort(x, kind="stable")
    x_sorted = x[order]
    sorted_series = [s[..., order] for s in series]
    if x_sorted.size < 3:
        return (x_sorted, *sorted_series)
    steps = np.diff(x_sorted)
    median_step = float(np.median(steps))
    gap_after = np.flatnonzero(steps > _GAP_FACTOR * median_step) if median_step > 0 else np.array([], int)
    if gap_after.size == 0:
        return (x_sorted, *sorted_series)
    x_out = np.insert(x_sorted, gap_after + 1, np.nan)
    out = [np.insert(np.asarray(s, dtype=np.float64), gap_after + 1, np.nan, axis=-1) for s in sorted_series]
    return (x_out, *out)


def _value_label(cube: Cube) -> str:
    units = cube.metadata.get("units")
    return str(units) if units else "value"


def _spectra_figure(legend_entries: int) -> tuple[Figure, Axes]:
    figure = new_figure(8.0 if legend_entries > 8 else 7.0, 4.5)
    return figure, figure.add_subplot()


def plot_spectra(
    cube: Cube,
    pixels: Sequence[tuple[int, int]],
    names: Sequence[str] | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
) -> Figure:
    """The spectra of chosen pixels.

    Args:
        cube: the cube, ``(bands, H, W)``.
        pixels: ``(row, col)`` pairs, 0-based.
        names: legend text per pixel (default ``"row r, col c"``).
        title: axes title.
        path, dpi: save the figure there at this resolution when ``path`` is given.
    """
    points = [(int(row), int(col)) for row, col in pixels]
    if not points:
        raise ConfigError("plot_spectra needs at least one (row, col) pixel")
    if names is not None and len(names) != len(points):
        raise ConfigError(f"{len(names)} names for {len(points)} pixels; give one name per pixel")
    for row, col in points:
        if not (0 <= row < cube.height and 0 <= col < cube.width):
            raise InvalidCubeError(
                f"{cube.source_label}: pixel (row {row}, col {col}) is outside the {cube.height}x{cube.width} image"
            )
    x, x_label = spectral_axis(cube)
    figure, axes = _spectra_figure(len(points))
    for number, (row, col) in enumerate(points):
        spectrum = np.asarray(cube.data[:, row, col], dtype=np.float64)
        x_plot, y_plot = _with_gaps(x, spectrum)
        label = names[number] if names is not None else f"row {row}, col {col}"
        axes.plot(x_plot, y_plot, linewidth=1.2, label=label)
    _decorate(figure, axes, x_label, _value_label(cube), title, len(points))
    return finish(figure, path, dpi)


def plot_class_spectra(
    cube: Cube,
    labels: np.ndarray,
    class_names: ClassNames = None,
    classes: Sequence[int] | None = None,
    show_std: bool = True,
    unlabelled_value: int | None = 0,
    first_label: int = 1,
    title: str | None = None,
    colours: Mapping[int, Sequence[float] | str] | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
) -> Figure:
    """The mean spectrum of each class with a ± one standard deviation band.

    Args:
        cube: the cube, ``(bands, H, W)``.
        labels: ``(H, W)`` integer class map of the same scene.
        class_names: ``{value: name}`` or a list whose ``i``-th name is label value
            ``i + first_label``.
        classes: label values to draw (default: every class present).
        show_std: shade mean ± std.
        unlabelled_value: label value left out (None keeps every value).
        first_label: label value of the first name in a ``class_names`` list.
        title: axes title.
        colours: optional overrides ``{label value: colour}``.
        path, dpi: save the figure there at this resolution when ``path`` is given.
    """
    statistics = class_mean_spectra(cube, labels, unlabelled_value)
    wanted = statistics.class_ids if classes is None else np.asarray([int(c) for c in classes])
    missing = sorted(set(wanted.tolist()) - set(statistics.class_ids.tolist()))
    if missing:
        raise InvalidCubeError(
            f"labels of {cube.source_label}: no valid pixel of class(es) {missing}; "
            f"the classes present are {statistics.class_ids.tolist()}"
        )
    names = class_name_table(class_names, statistics.class_ids.tolist(), first_label)
    top = int(statistics.class_ids.max()) if statistics.class_ids.size else 0
    table = _colour_table(top, unlabelled_value, colours)
    x, x_label = spectral_axis(cube)
    figure, axes = _spectra_figure(len(wanted))
    for class_id in wanted.tolist():
        row = int(np.flatnonzero(statistics.class_ids == class_id)[0])
        x_plot, mean_plot, std_plot = _with_gaps(x, statistics.mean[row], statistics.std[row])
        colour = table[class_id]
        axes.plot(x_plot, mean_plot, color=colour, linewidth=1.3, label=names[class_id])
        if show_std:
            axes.fill_between(x_plot, mean_plot - std_plot, mean_plot + std_plot, color=colour, alpha=0.18, linewidth=0)
    _decorate(figure, axes, x_label, _value_label(cube), title, len(wanted))
    return finish(figure, path, dpi)


def _decorate(figure: Figure, axes: Axes, x_label: str, y_label: str, title: str | None, entries: int) -> None:
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(True, linewidth=0.4, alpha=0.5)
    if title:
        axes.set_title(title)
    if entries:
        figure.legend(loc="outside right upper", fontsize="small", frameon=False, ncols=1 if entries <= 24 else 2)
