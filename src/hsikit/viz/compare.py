"""Comparison grids: several methods' predictions of one scene next to the target.

Columns are the (optional) input RGB, the target, and one column per method. The first
row shows every cube in colour with one transform fitted on the target
(:mod:`hsikit.viz.panels`); the second row shows each method's per-pixel error map
(:mod:`hsikit.viz.errors`) on one shared colour scale (the 99th percentile of all
methods' errors), with a single colour bar, so the maps compare directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from hsikit.cube import Cube
from hsikit.errors import ConfigError
from hsikit.viz.errors import ERROR_LABELS, ERROR_METRICS, draw_error_map, error_limit, pixel_error_maps
from hsikit.viz.panels import ColourMode, _input_image, apply_colour, fit_colour, with_wavelengths_of
from hsikit.viz.style import FigureStyle, figure_style, get_style, save_figure_formats, styled_figure


def plot_comparison_grid(
    target: Cube,
    predictions: Mapping[str, Cube | np.ndarray],
    *,
    metric: str = "sam",
    rgb_input: np.ndarray | Cube | None = None,
    colour: ColourMode = "auto",
    dark_percentile: float | None = None,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """A grid comparing methods on one scene: colour images on top, error maps below.

    Args:
        target: the target cube ``(bands, H, W)``.
        predictions: ``{method name: predicted cube}``, in column order.
        metric: the error map of the second row: ``"mrae"``, ``"rmse"`` or ``"sam"`` (degrees).
        rgb_input: the input image ``(H, W, 3)``, shown in the first column when given.
        colour: colour mode of the first row (see :func:`hsikit.viz.panels.fit_colour`).
        dark_percentile: haze removal of true colour (see :func:`hsikit.viz.panels.fit_colour`).
        title, style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.

    Returns:
        The figure: ``1 + len(predictions)`` colour panels (plus the input) and
        ``len(predictions)`` error panels.
    """
    if not predictions:
        raise ConfigError("a comparison grid needs at least one method's prediction")
    if metric not in ERROR_METRICS:
        raise ConfigError(f"unknown error map {metric!r}; choose among {', '.join(ERROR_METRICS)}")
    cubes = {name: with_wavelengths_of(cube, target) for name, cube in predictions.items()}
    maps = {name: pixel_error_maps(cube, target, (metric,))[metric] for name, cube in cubes.items()}
    shared_limit = error_limit(np.concatenate([values.reshape(-1) for values in maps.values()]))
    transform = fit_colour(target, colour, dark_percentile=dark_percentile)
    offset = 1 if rgb_input is not None else 0
    columns = offset + 1 + len(cubes)
    chosen = get_style(style)
    aspect = target.height / max(target.width, 1)
    with figure_style(chosen):
        figure = styled_figure(chosen, chosen.panel_in * columns + 0.9, 2 * (chosen.panel_in * aspect + 0.45) + 0.3)
        grid = figure.add_gridspec(2, columns)

        def image_panel(row: int, column: int, image: np.ndarray, heading: str) -> None:
            axes = figure.add_subplot(grid[row, column])
            axes.imshow(image, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(heading)

        if rgb_input is not None:
            image_panel(0, 0, _input_image(rgb_input), "input RGB")
        image_panel(0, offset, apply_colour(transform, target), "target")
        error_axes = []
        for number, (name, cube) in enumerate(cubes.items()):
            column = offset + 1 + number
            image_panel(0, column, apply_colour(transform, cube), name)
            axes = figure.add_subplot(grid[1, column])
            draw_error_map(figure, axes, maps[name], metric, shared_limit, colour_bar=False)
            axes.set_title(f"{metric.upper()} mean {np.nanmean(maps[name]):.4g}")
            error_axes.append(axes)
        bar = figure.colorbar(error_axes[-1].images[0], ax=error_axes, shrink=0.85, location="right")
        bar.set_label(ERROR_LABELS.get(metric, metric))
        heading = title or "methods compared"
        figure.suptitle(f"{heading} — {transform.description}")
        if path is not None:
            caption = (
                f"Each method's prediction of one scene (top, same colour transform as the target) and its per-pixel "
                f"{metric.upper()} (bottom, one shared colour scale)."
            )
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": caption})
    return figure
