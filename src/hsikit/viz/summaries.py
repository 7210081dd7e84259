"""Quantitative summaries: errors per band, prediction-vs-target density, ECDFs and a metric heatmap.

Inputs are plain mappings so that any source can feed them (a result folder, a
benchmark, a notebook):

* band errors: ``{method: {"mrae": (bands,), "rmse": (bands,)}}`` (see
  :func:`hsikit.viz.errors.band_errors`, averaged over scenes with :func:`mean_band_errors`);
* per-scene scores: ``{method: {metric: [value per scene]}}`` (see
  :func:`hsikit.viz.errors.scene_scores`).

Whether a metric is better high or low comes from
:data:`hsikit.metrics.reconstruction.HIGHER_IS_BETTER` (unknown metrics: lower is better,
as for errors), so the heatmap marks the best method of each column the right way round.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from hsikit.cube import Cube
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.metrics.reconstruction import HIGHER_IS_BETTER
from hsikit.viz.errors import ERROR_LABELS, check_pair
from hsikit.viz.panels import PREDICTION_COLOURS
from hsikit.viz.style import FigureStyle, figure_style, get_style, save_figure_formats, styled_figure

#: Largest number of pixel values a density scatter bins per method (a regular subsample beyond).
DENSITY_MAX_VALUES = 4_000_000

#: Axis text of per-scene metrics.
METRIC_LABELS: dict[str, str] = {
    "mrae": "MRAE",
    "rmse": "RMSE",
    "psnr": "PSNR (dB)",
    "sam": "SAM (degrees)",
    "ssim": "SSIM",
    "back_projection_mrae": "back-projection MRAE",
}


def higher_is_better(metric: str) -> bool:
    """True when a larger value of ``metric`` is better (PSNR, SSIM, accuracy...)."""
    name = metric.split("/")[-1].lower()
    if name in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[name]
    return any(word in name for word in ("accuracy", "kappa", "iou", "f1", "dice", "nmi", "ari", "psnr", "ssim"))


def method_colour(index: int) -> str:
    """The colour of the ``index``-th method in every summary figure."""
    return PREDICTION_COLOURS[index % len(PREDICTION_COLOURS)]


def mean_band_errors(per_scene: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean over scenes of :func:`~hsikit.viz.errors.band_errors` results (each metric ``(bands,)``)."""
    if not per_scene:
        raise ConfigError("no scene to average band errors over")
    names = list(per_scene[0])
    return {name: np.mean(np.stack([np.asarray(scene[name], dtype=np.float64) for scene in per_scene]), axis=0)
            for name in names}


def _save(figure: Figure, path: str | os.PathLike | None, dpi: int | None, caption: str) -> None:
    if path is not None:
        save_figure_formats(figure, path, dpi=dpi, metadata={"Description": caption})


def plot_bandwise_errors(
    band_errors: Mapping[str, Mapping[str, np.ndarray]],
    wavelengths: Sequence[float] | np.ndarray | None = None,
    metrics: Sequence[str] = ("mrae", "rmse"),
    *,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """MRAE and RMSE per band, one line per method, one panel per metric.

    Args:
        band_errors: ``{method: {metric: (bands,) values}}``.
        wavelengths: band centres in nm for the x axis (default: band index).
        metrics: panels to draw.
        title, style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.
    """
    if not band_errors:
        raise ConfigError("plot_bandwise_errors needs at least one method's band errors")
    bands = {len(np.asarray(values[metric])) for values in band_errors.values() for metric in metrics}
    if len(bands) != 1:
        raise ShapeMismatchError(f"the methods' band errors have different band counts {sorted(bands)}")
    count = bands.pop()
    if wavelengths is not None and len(wavelengths) != count:
        raise ShapeMismatchError(f"{len(wavelengths)} wavelengths for band errors of {count} bands")
    x = np.arange(count) if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    chosen = get_style(style)
    with figure_style(chosen):
        figure = styled_figure(chosen, chosen.panel_in * 1.7 * len(metrics), chosen.panel_in * 1.3 + 0.3)
        for number, metric in enumerate(metrics, start=1):
            axes = figure.add_subplot(1, len(metrics), number)
            for index, (method, values) in enumerate(band_errors.items()):
                y = np.asarray(values[metric], dtype=np.float64)
                axes.plot(x[order], y[order], marker="o" if count <= 40 else None, markersize=2.5,
                          color=method_colour(index), label=method)
            axes.set_xlabel("wavelength (nm)" if wavelengths is not None else "band index")
            axes.set_ylabel(ERROR_LABELS.get(metric, metric))
            axes.set_ylim(bottom=0)
            axes.set_title(f"{metric.upper()} per band")
            if number == 1:
                axes.legend(frameon=False)
        if title:
            figure.suptitle(title)
        _save(figure, path, dpi, "Errors of each band averaged over pixels and scenes, one line per method: where in "
              "the spectrum a method errs most.")
    return figure


def _paired_values(prediction: Cube | np.ndarray, target: Cube | np.ndarray, limit: int) -> tuple[np.ndarray, ...]:
    predicted, true = check_pair(prediction, target)
    valid = np.ones(true.shape[1:], dtype=bool)
    for source in (prediction, target):
        if isinstance(source, Cube):
            valid &= source.valid_mask
    x = np.asarray(true, dtype=np.float64)[:, valid].reshape(-1)
    y = np.asarray(predicted, dtype=np.float64)[:, valid].reshape(-1)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size > limit:
        step = int(math.ceil(x.size / limit))
        x, y = x[::step], y[::step]
    return x, y


def plot_density_scatter(
    pairs: Mapping[str, tuple[Cube | np.ndarray, Cube | np.ndarray]]
    | Mapping[str, Sequence[tuple[Cube | np.ndarray, Cube | np.ndarray]]],
    *,
    bins: int = 160,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Predicted against true values of every band and pixel as a 2-D histogram, one panel per method.

    Counts are on a log colour scale (a scatter of millions of points would hide the
    density). The dashed line is y = x; the panel title gives the Pearson correlation r and
    the slope of the least-squares line through the origin.

    Args:
        pairs: ``{method: (prediction, target)}`` or ``{method: [(prediction, target), ...]}``.
        bins: histogram bins per axis.
        title, style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.
    """
    if not pairs:
        raise ConfigError("plot_density_scatter needs at least one (prediction, target) pair")
    values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for method, item in pairs.items():
        scenes = [item] if isinstance(item, tuple) else list(item)
        limit = max(1, DENSITY_MAX_VALUES // max(1, len(scenes)))
        xs, ys = zip(*(_paired_values(p, t, limit) for p, t in scenes))
        values[method] = (np.concatenate(xs), np.concatenate(ys))
    everything = np.concatenate([np.concatenate(v) for v in values.values()])
    low, high = np.percentile(everything, [0.1, 99.9]) if everything.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    chosen = get_style(style)
    columns = len(values)
    with figure_style(chosen):
        figure = styled_figure(chosen, chosen.panel_in * 1.35 * columns + 0.8, chosen.panel_in * 1.3 + 0.3)
        image = None
        peak = max(1.0, max(float(np.histogram2d(x, y, bins=[edges, edges])[0].max()) for x, y in values.values()))
        for number, (method, (x, y)) in enumerate(values.items(), start=1):
            axes = figure.add_subplot(1, columns, number)
            counts, _, _ = np.histogram2d(x, y, bins=[edges, edges])
            image = axes.pcolormesh(edges, edges, np.ma.masked_equal(counts.T, 0), cmap="viridis",
                                    norm=LogNorm(vmin=1, vmax=peak), rasterized=True)
            axes.plot([low, high], [low, high], linestyle="--", color="0.3", linewidth=0.8)
            axes.set_xlim(low, high)
            axes.set_ylim(low, high)
            axes.set_aspect("equal")
            correlation = float(np.corrcoef(x, y)[0, 1]) if x.size > 1 and x.std() > 0 and y.std() > 0 else math.nan
            slope = float(np.dot(x, y) / np.dot(x, x)) if np.dot(x, x) > 0 else math.nan
            axes.set_title(f"{method}\nr = {correlation:.3f}, slope = {slope:.3f}")
            axes.set_xlabel("target value")
            if number == 1:
                axes.set_ylabel("predicted value")
        if image is not None:
            figure.colorbar(image, ax=figure.axes, shrink=0.85, label="values per bin")
        if title:
            figure.suptitle(title)
        _save(figure, path, dpi, "Predicted against true values of every band and pixel (log-scaled counts); a "
              "perfect prediction lies on the dashed diagonal.")
    return figure


def _check_scores(per_scene: Mapping[str, Mapping[str, Sequence[float]]], what: str) -> list[str]:
    if not per_scene:
        raise ConfigError(f"{what} needs per-scene scores of at least one method")
    metrics: list[str] = []
    for scores in per_scene.values():
        for metric in scores:
            if metric not in metrics:
                metrics.append(metric)
    return metrics


def plot_metric_ecdf(
    per_scene: Mapping[str, Mapping[str, Sequence[float]]],
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Empirical cumulative distribution of per-scene scores, one panel per metric, a step line per method.

    A curve to the left (lower-is-better metrics) or right (higher-is-better) is the better
    method on most scenes; the x label says which way is better.

    Args:
        per_scene: ``{method: {metric: [value per scene]}}``.
        metrics: panels to draw (default: every metric present).
        title, style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.
    """
    names = list(metrics) if metrics is not None else _check_scores(per_scene, "plot_metric_ecdf")
    _check_scores(per_scene, "plot_metric_ecdf")
    chosen = get_style(style)
    columns = min(4, len(names))
    rows = int(math.ceil(len(names) / columns))
    with figure_style(chosen):
        figure = styled_figure(chosen, chosen.panel_in * 1.4 * columns, chosen.panel_in * 1.15 * rows + 0.3)
        for number, metric in enumerate(names, start=1):
            axes = figure.add_subplot(rows, columns, number)
            for index, (method, scores) in enumerate(per_scene.items()):
                values = np.sort(np.asarray([v for v in scores.get(metric, []) if np.isfinite(v)], dtype=np.float64))
                if values.size == 0:
                    continue
                fraction = np.arange(1, values.size + 1) / values.size
                axes.step(np.concatenate([[values[0]], values]), np.concatenate([[0.0], fraction]), where="post",
                          color=method_colour(index), label=f"{method} (n={values.size})")
            better = "higher" if higher_is_better(metric) else "lower"
            axes.set_xlabel(f"{METRIC_LABELS.get(metric, metric)} — {better} is better")
            axes.set_ylim(0, 1.02)
            if (number - 1) % columns == 0:
                axes.set_ylabel("fraction of scenes")
            if number == 1:
                axes.legend(frameon=False)
        if title:
            figure.suptitle(title)
        _save(figure, path, dpi, "Cumulative distribution of the per-scene scores: the fraction of scenes with a "
              "score up to each value, one curve per method.")
    return figure


def score_table(per_scene: Mapping[str, Mapping[str, Sequence[float]]],
                metrics: Sequence[str] | None = None) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Methods, metrics, and the ``(methods, metrics)`` means and sample standard deviations.

    NaN where a method has no score of a metric (both) or a single one (the deviation).
    """
    names = list(metrics) if metrics is not None else _check_scores(per_scene, "score_table")
    methods = list(per_scene)
    means = np.full((len(methods), len(names)), np.nan)
    deviations = np.full_like(means, np.nan)
    for row, method in enumerate(methods):
        for column, metric in enumerate(names):
            values = np.asarray([v for v in per_scene[method].get(metric, []) if np.isfinite(v)], dtype=np.float64)
            if values.size:
                means[row, column] = values.mean()
                deviations[row, column] = values.std(ddof=1) if values.size > 1 else np.nan  # undefined for one
    return methods, names, means, deviations


def plot_metric_heatmap(
    per_scene: Mapping[str, Mapping[str, Sequence[float]]],
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Mean ± standard deviation over scenes of each metric (columns) for each method (rows).

    Cells are coloured by how good the mean is within its column (1 = the best method,
    0 = the worst, respecting higher/lower-is-better), so columns of different units share
    one colour scale (a single method is not coloured); the text in each cell is the mean ±
    sample standard deviation ("(1 scene)" when there is only one value).

    Args:
        per_scene: ``{method: {metric: [value per scene]}}``.
        metrics: columns (default: every metric present).
        title, style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.
    """
    methods, names, means, deviations = score_table(per_scene, metrics)
    goodness = np.full_like(means, np.nan)
    for column, metric in enumerate(names):
        values = means[:, column]
        finite = np.isfinite(values)
        if not finite.any():
            continue
        low, high = values[finite].min(), values[finite].max()
        span = high - low
        relative = np.where(finite, (values - low) / span if span > 0 else 1.0, np.nan)
        goodness[:, column] = relative if higher_is_better(metric) else np.where(finite, 1.0 - relative, np.nan)
        if span == 0:
            goodness[finite, column] = 1.0
    chosen = get_style(style)
    with figure_style(chosen):
        unit = chosen.panel_in / 1.75  # 1 for paper, larger on screen
        width = min(chosen.page_width_in, 1.05 * unit * len(names) + 0.09 * unit * max(len(m) for m in methods) + 1.6)
        figure = styled_figure(chosen, max(3.0, width), 0.42 * unit * len(methods) + 1.2)
        axes = figure.add_subplot()
        if len(methods) == 1:
            goodness[:] = np.nan  # one method: nothing to rank, no colour
        colour_map = matplotlib.colormaps["RdYlGn"].with_extremes(bad=(0.96, 0.96, 0.96))
        image = axes.imshow(np.ma.masked_invalid(goodness), cmap=colour_map, vmin=0.0, vmax=1.0, aspect="auto")
        for row in range(len(methods)):
            for column in range(len(names)):
                if np.isfinite(means[row, column]):
                    spread = deviations[row, column]
                    text = f"{means[row, column]:.4g}\n" + (f"± {spread:.2g}" if np.isfinite(spread) else "(1 scene)")
                    axes.text(column, row, text, ha="center", va="center", fontsize="small")
        axes.set_xticks(range(len(names)), labels=[
            f"{METRIC_LABELS.get(m, m)} {'↑' if higher_is_better(m) else '↓'}" for m in names])
        axes.set_yticks(range(len(methods)), labels=methods)
        axes.tick_params(length=0)
        axes.grid(False)
        if len(methods) > 1:
            bar = figure.colorbar(image, ax=axes, shrink=0.9)
            bar.set_label("1 = best, 0 = worst")
        if title:
            axes.set_title(title)
        _save(figure, path, dpi, "Mean ± standard deviation over scenes of each metric and method; green marks the "
              "best method of each column (arrows: which way is better).")
    return figure

