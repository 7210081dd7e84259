"""Autoencoder figures: the latent space as a scatter, and reconstruction-error maps.

A latent cube is ``(D, H, W)`` (one D-dimensional code per pixel, written like any
cube) or a ``(N, D)`` matrix of codes. :func:`latent_coordinates` reduces the codes to
two dimensions with :class:`hsikit.spectral.pca.SpectralPCA` when ``D > 2`` (the axes
then say how much variance each component explains) and subsamples at most
``max_points`` codes with a fixed seed, so the figure is the same on every run.
Reconstruction errors are the per-pixel maps of :mod:`hsikit.viz.errors`;
:func:`plot_reconstructions` draws example spectra and their reconstructions (the
autoencoder task's report figure).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hsikit.cube import Cube
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.viz.errors import plot_error_maps
from hsikit.viz.maps import ClassNames, _check_labels, _colour_table, class_name_table
from hsikit.viz.style import FigureStyle, figure_style, get_style, save_figure_formats, styled_figure

#: Most codes drawn in a latent scatter (a seeded random subset beyond).
LATENT_MAX_POINTS = 20_000


def _codes(latent: Cube | np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
    """``(N, D)`` float64 codes and the ``(H, W)`` shape they came from (None for a matrix)."""
    array = latent.data if isinstance(latent, Cube) else np.asarray(latent)
    if array.ndim == 3:
        dims, height, width = array.shape
        return np.asarray(array, dtype=np.float64).reshape(dims, -1).T, (height, width)
    if array.ndim == 2:
        return np.asarray(array, dtype=np.float64), None
    raise ShapeMismatchError(
        f"a latent space is a (D, H, W) cube or an (N, D) matrix of codes, got shape {array.shape}"
    )


def latent_coordinates(
    latent: Cube | np.ndarray,
    labels: np.ndarray | None = None,
    max_points: int = LATENT_MAX_POINTS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Two coordinates per code for a scatter, the labels of the codes kept, and the axis names.

    Args:
        latent: ``(D, H, W)`` cube or ``(N, D)`` codes.
        labels: ``(H, W)`` class map (cube) or ``(N,)`` labels (matrix), or None.
        max_points: codes kept at most (a random subset with ``seed``).
        seed: seed of the subset.

    Returns:
        ``(M, 2)`` coordinates, ``(M,)`` labels (or None), and the two axis labels.
    """
    codes, shape = _codes(latent)
    flat_labels = None
    if labels is not None:
        label_array = np.asarray(labels)
        if shape is not None:
            label_array = _check_labels(label_array, shape, source="labels of the latent cube")
        flat_labels = label_array.reshape(-1)
        if flat_labels.size != codes.shape[0]:
            raise ShapeMismatchError(f"{flat_labels.size} labels for {codes.shape[0]} latent codes; give one per code")
    finite = np.isfinite(codes).all(axis=1)
    index = np.flatnonzero(finite)
    if index.size == 0:
        raise ShapeMismatchError("the latent codes hold no finite value")
    if index.size > max_points:
        index = np.sort(np.random.default_rng(seed).choice(index, size=max_points, replace=False))
    kept = codes[index]
    dims = kept.shape[1]
    if dims == 1:
        coordinates = np.column_stack([kept[:, 0], np.zeros(len(kept))])
        names = ["latent 1", ""]
    elif dims == 2:
        coordinates, names = kept, ["latent 1", "latent 2"]
    else:
        from hsikit.spectral.pca import SpectralPCA

        pca = SpectralPCA(n_components=2).fit(kept.T[:, :, np.newaxis])
        coordinates = pca.transform(kept.T[:, :, np.newaxis])[:, :, 0].T.astype(np.float64)
        ratios = np.asarray(pca.explained_variance_ratio_)
        names = [f"PC {k + 1} of {dims} latent dims ({100 * ratios[k]:.0f} % variance)" for k in range(2)]
    return coordinates, None if flat_labels is None else flat_labels[index], names


def plot_latent_scatter(
    latent: Cube | np.ndarray,
    labels: np.ndarray | None = None,
    class_names: ClassNames = None,
    *,
    first_label: int = 1,
    unlabelled_value: int | None = 0,
    max_points: int = LATENT_MAX_POINTS,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """The latent codes in two dimensions, coloured by class (class colours of :mod:`hsikit.viz.maps`).

    Args:
        latent: ``(D, H, W)`` latent cube or ``(N, D)`` codes.
        labels: class labels of the codes (``(H, W)`` or ``(N,)``), or None (one colour).
        class_names, first_label, unlabelled_value: label conventions of :mod:`hsikit.viz.maps`;
            unlabelled codes are drawn in light grey underneath.
        max_points: codes drawn at most.
        title, style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.
    """
    coordinates, kept_labels, axis_names = latent_coordinates(latent, labels, max_points)
    chosen = get_style(style)
    with figure_style(chosen):
        figure = styled_figure(chosen, chosen.panel_in * 2.0 + 1.4, chosen.panel_in * 1.7 + 0.3)
        axes = figure.add_subplot()
        point_size = max(1.0, 6000.0 / max(len(coordinates), 1))
        point_size = min(point_size, 12.0)
        if kept_labels is None:
            axes.scatter(coordinates[:, 0], coordinates[:, 1], s=point_size, color="#1f77b4", linewidths=0,
                         alpha=0.6, rasterized=True)
        else:
            values = np.asarray(kept_labels).astype(np.int64)
            ids = sorted(int(v) for v in np.unique(values) if v >= 0 and v != unlabelled_value)
            table = _colour_table(max(ids + [0]), unlabelled_value, None)
            names = class_name_table(class_names, ids, first_label)
            unlabelled = ~np.isin(values, ids)
            if unlabelled.any():
                axes.scatter(coordinates[unlabelled, 0], coordinates[unlabelled, 1], s=point_size, color="0.85",
                             linewidths=0, rasterized=True)
            handles = []
            for value in ids:
                chosen_points = values == value
                axes.scatter(coordinates[chosen_points, 0], coordinates[chosen_points, 1], s=point_size,
                             color=table[value], linewidths=0, alpha=0.8, rasterized=True)
                handles.append(Line2D([], [], marker="o", linestyle="", color=table[value], label=names[value]))
            if unlabelled.any():
                handles.append(Line2D([], [], marker="o", linestyle="", color="0.85", label="unlabelled"))
            figure.legend(handles=handles, loc="outside right upper", frameon=False, fontsize="small",
                          ncols=1 if len(handles) <= 24 else 2)
        axes.set_xlabel(axis_names[0])
        axes.set_ylabel(axis_names[1])
        axes.set_title(title or f"latent space ({len(coordinates)} codes)")
        if path is not None:
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": (
                "The autoencoder's latent codes of the pixels, projected on their first two principal components and "
                "coloured by class: classes that form separate groups are easy to tell apart from the codes.")})
    return figure


def plot_reconstructions(
    spectra: np.ndarray,
    reconstructions: np.ndarray,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    *,
    count: int = 6,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Input spectra and their reconstructions, one panel per example.

    Args:
        spectra: ``(N, C)`` input spectra.
        reconstructions: ``(N, C)`` the autoencoder's outputs for them.
        wavelengths: band centres in nm (x axis), or None (band index).
        count: examples drawn at most; they are spread evenly over the ``N`` rows and each
            panel is titled with its spectral angle (degrees) and RMSE.
        title, style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.
    """
    from hsikit.viz.errors import pixel_error_maps
    from hsikit.viz.spectra import _with_gaps

    original = np.asarray(spectra, dtype=np.float64)
    rebuilt = np.asarray(reconstructions, dtype=np.float64)
    if original.ndim != 2 or original.shape != rebuilt.shape:
        raise ShapeMismatchError(
            f"spectra {original.shape} and reconstructions {rebuilt.shape} must both be (N, C) of the same shape"
        )
    if original.shape[0] == 0 or count < 1:
        raise ConfigError("plot_reconstructions needs at least one spectrum and count >= 1")
    bands = original.shape[1]
    if wavelengths is not None and len(wavelengths) != bands:
        raise ShapeMismatchError(f"{len(wavelengths)} wavelengths for spectra of {bands} bands")
    x = np.arange(bands, dtype=np.float64) if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
    rows = np.unique(np.linspace(0, original.shape[0] - 1, min(count, original.shape[0])).round().astype(int))
    errors = pixel_error_maps(rebuilt[rows].T[:, :, np.newaxis], original[rows].T[:, :, np.newaxis], ("sam", "rmse"))
    chosen = get_style(style)
    columns = min(3, rows.size)
    grid_rows = int(np.ceil(rows.size / columns))
    with figure_style(chosen):
        figure = styled_figure(chosen, chosen.panel_in * 1.3 * columns, chosen.panel_in * 1.0 * grid_rows + 0.4)
        for number, row in enumerate(rows):
            axes = figure.add_subplot(grid_rows, columns, number + 1)
            x_plot, y_in, y_out = _with_gaps(x, original[row], rebuilt[row])
            axes.plot(x_plot, y_in, color="black", label="input")
            axes.plot(x_plot, y_out, color="#d62728", linestyle="--", label="reconstruction")
            axes.set_title(f"sample {row}: SAM {errors['sam'][number, 0]:.2f}°, RMSE {errors['rmse'][number, 0]:.3g}")
            axes.set_xlabel("wavelength (nm)" if wavelengths is not None else "band index")
            if number == 0:
                axes.legend(frameon=False)
        if title:
            figure.suptitle(title)
        if path is not None:
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": (
                "Input spectra (black) and the autoencoder's reconstructions (dashed), with the spectral angle and "
                "RMSE between them.")})
    return figure


def plot_reconstruction_errors(
    reconstruction: Cube | np.ndarray,
    original: Cube | np.ndarray,
    metrics: Sequence[str] = ("rmse", "sam"),
    *,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Per-pixel reconstruction errors of an autoencoder (RMSE and spectral angle by default)."""
    if not metrics:
        raise ConfigError("plot_reconstruction_errors needs at least one error metric")
    return plot_error_maps(
        reconstruction, original, metrics, title=title or "reconstruction error", style=style, path=path, dpi=dpi
    )
