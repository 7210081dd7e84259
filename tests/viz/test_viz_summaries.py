"""Bandwise errors, density scatter, ECDF of per-scene scores, the mean ± sd heatmap, and comparison grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.viz.compare import plot_comparison_grid
from hsikit.viz.errors import band_errors, error_limit, pixel_error_maps, scene_scores
from hsikit.viz.summaries import (
    higher_is_better,
    plot_bandwise_errors,
    plot_density_scatter,
    plot_metric_ecdf,
    plot_metric_heatmap,
    score_table,
)

TILES = {"nw": (slice(0, 48), slice(0, 48)), "ne": (slice(0, 48), slice(97, 145)),
         "sw": (slice(97, 145), slice(0, 48)), "se": (slice(97, 145), slice(97, 145))}


@pytest.fixture(scope="module")
def tiles(reconstruction_set) -> dict[str, dict[str, object]]:
    """Four 48 x 48 corner scenes: target cube and both methods' predictions."""
    return {
        name: {
            "target": reconstruction_set["target"][:, rows, cols],
            "linear": reconstruction_set["linear"][:, rows, cols],
            "quadratic": reconstruction_set["quadratic"][:, rows, cols],
        }
        for name, (rows, cols) in TILES.items()
    }


@pytest.fixture(scope="module")
def per_scene(tiles) -> dict[str, dict[str, list[float]]]:
    table: dict[str, dict[str, list[float]]] = {"linear": {}, "quadratic": {}}
    for scene in tiles.values():
        for method in table:
            for metric, value in scene_scores(scene[method], scene["target"]).items():
                table[method].setdefault(metric, []).append(value)
    return table


def test_bandwise_errors_draw_the_band_means(tiles, tmp_path: Path, check_figure_files) -> None:
    errors = {method: band_errors(tiles["nw"][method], tiles["nw"]["target"]) for method in ("linear", "quadratic")}
    wavelengths = tiles["nw"]["target"].wavelengths
    figure = plot_bandwise_errors(errors, wavelengths, path=tmp_path / "bands")
    mrae_axes, rmse_axes = figure.axes
    assert mrae_axes.get_xlabel() == "wavelength (nm)"
    for line, method in zip(rmse_axes.get_lines(), ("linear", "quadratic")):
        assert line.get_label() == method
        np.testing.assert_allclose(line.get_xdata(), wavelengths)
        np.testing.assert_allclose(line.get_ydata(), errors[method]["rmse"])
    check_figure_files(tmp_path / "bands", panels=2)
    with pytest.raises(ShapeMismatchError, match="5 wavelengths for band errors of 31 bands"):
        plot_bandwise_errors(errors, wavelengths[:5])


def test_density_scatter_counts_every_value(tiles, tmp_path: Path, check_figure_files) -> None:
    pairs = {method: [(tiles[s][method], tiles[s]["target"]) for s in ("nw", "se")]
             for method in ("linear", "quadratic")}
    figure = plot_density_scatter(pairs, bins=50, path=tmp_path / "density")
    panels = [a for a in figure.axes if a.get_label() != "<colorbar>"]
    assert len(panels) == 2
    for axes, method in zip(panels, ("linear", "quadratic")):
        counts = axes.collections[0].get_array()
        x = np.concatenate([np.asarray(tiles[s]["target"].data).reshape(-1) for s in ("nw", "se")]).astype(float)
        y = np.concatenate([tiles[s][method].reshape(-1) for s in ("nw", "se")]).astype(float)
        # every value inside the drawn range is counted once (the range is the 0.1-99.9 % of all values)
        low, high = axes.get_xlim()
        inside = (x >= low) & (x <= high) & (y >= low) & (y <= high)
        assert int(counts.sum()) == int(inside.sum())
        assert axes.get_title().startswith(f"{method}\nr = {np.corrcoef(x, y)[0, 1]:.3f}")
    check_figure_files(tmp_path / "density", panels=2)


def test_ecdf_steps_through_the_sorted_scores(per_scene, tmp_path: Path, check_figure_files) -> None:
    figure = plot_metric_ecdf(per_scene, ["mrae", "psnr"], path=tmp_path / "ecdf")
    mrae_axes, psnr_axes = figure.axes
    assert mrae_axes.get_xlabel() == "MRAE — lower is better"
    assert psnr_axes.get_xlabel() == "PSNR (dB) — higher is better"
    line = mrae_axes.get_lines()[0]
    values = np.sort(per_scene["linear"]["mrae"])
    np.testing.assert_allclose(line.get_xdata()[1:], values)
    np.testing.assert_allclose(line.get_ydata()[1:], [0.25, 0.5, 0.75, 1.0])
    check_figure_files(tmp_path / "ecdf", panels=2)


def test_heatmap_shows_mean_and_sd_and_marks_the_best(per_scene, tmp_path: Path, check_figure_files) -> None:
    methods, metrics, means, deviations = score_table(per_scene)
    assert methods == ["linear", "quadratic"] and metrics == ["mrae", "rmse", "psnr", "sam"]
    np.testing.assert_allclose(means[0, 0], np.mean(per_scene["linear"]["mrae"]))
    np.testing.assert_allclose(deviations[1, 2], np.std(per_scene["quadratic"]["psnr"], ddof=1))
    figure = plot_metric_heatmap(per_scene, path=tmp_path / "heatmap")
    axes = figure.axes[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in axes.texts}
    assert texts[(1, 2)] == f"{means[1, 2]:.4g}\n± {deviations[1, 2]:.2g}"
    colours = axes.images[0].get_array()
    for column, metric in enumerate(metrics):
        best = np.argmax(means[:, column]) if higher_is_better(metric) else np.argmin(means[:, column])
        assert colours[best, column] == 1.0 and colours[1 - best, column] == 0.0
    check_figure_files(tmp_path / "heatmap", panels=1)
    with pytest.raises(ConfigError, match="needs per-scene scores"):
        plot_metric_heatmap({})


def test_comparison_grid_shares_one_error_scale(tiles, reconstruction_set, tmp_path: Path, check_figure_files,
                                                image_panels) -> None:
    scene = tiles["ne"]
    rgb = np.moveaxis(reconstruction_set["rgb"][:, 0:48, 97:145], 0, -1)
    predictions = {"linear": scene["linear"], "quadratic": scene["quadratic"]}
    figure = plot_comparison_grid(scene["target"], predictions, metric="mrae", rgb_input=rgb, title="ne",
                                  path=tmp_path / "grid")
    panels = [a for a in figure.axes if a.get_label() != "<colorbar>"]
    means = {name: np.nanmean(pixel_error_maps(cube, scene["target"], ("mrae",))["mrae"])
             for name, cube in predictions.items()}
    assert [a.get_title() for a in panels] == [
        "input RGB", "target", "linear", f"MRAE mean {means['linear']:.4g}", "quadratic",
        f"MRAE mean {means['quadratic']:.4g}"]
    limits = {a.images[0].get_clim() for a in panels[3::2]}
    pooled = np.concatenate([pixel_error_maps(p, scene["target"], ("mrae",))["mrae"].reshape(-1)
                             for p in predictions.values()])
    assert len(limits) == 1  # one colour scale for every method: the 99th percentile of all their errors
    assert next(iter(limits)) == pytest.approx((0.0, error_limit(pooled)))
    image = check_figure_files(tmp_path / "grid", panels=6)
    assert image_panels(image) == 6
