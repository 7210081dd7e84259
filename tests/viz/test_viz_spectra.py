"""Spectra of pixels and of classes: statistics, axes, gaps, legends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.errors import InvalidCubeError, ShapeMismatchError
from hsikit.viz import class_colour_table, class_mean_spectra, plot_class_spectra, plot_spectra


def test_class_mean_spectra_match_a_direct_computation(rng: np.random.Generator) -> None:
    data = rng.normal(1000.0, 5.0, size=(7, 20, 30))
    labels = rng.integers(0, 4, size=(20, 30))
    mask = np.zeros((20, 30), dtype=bool)
    mask[0, :] = True  # nodata row: left out of every class
    cube = Cube(data, nodata_mask=mask)
    statistics = class_mean_spectra(cube, labels)
    np.testing.assert_array_equal(statistics.class_ids, [1, 2, 3])
    for row, class_id in enumerate(statistics.class_ids):
        pixels = data[:, (labels == class_id) & ~mask]
        assert statistics.count[row] == pixels.shape[1]
        np.testing.assert_allclose(statistics.mean[row], pixels.mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(statistics.std[row], pixels.std(axis=1), rtol=1e-9)
    with pytest.raises(ShapeMismatchError, match=r"labels of shape \(20, 29\).*\(20, 30\)"):
        class_mean_spectra(cube, labels[:, :29])


def test_real_class_spectra_plot(indian_pines, indian_pines_class_names, tmp_path: Path, read_png) -> None:
    cube, labels = indian_pines
    figure = plot_class_spectra(cube, labels, indian_pines_class_names, path=tmp_path / "spectra.png")
    axes = figure.axes[0]
    assert axes.get_xlabel() == "wavelength (nm)"
    assert [t.get_text() for t in figure.legends[0].get_texts()] == indian_pines_class_names
    lines = axes.get_lines()
    assert len(lines) == 16
    # the water-absorption bands removed from Indian Pines leave two gaps inside the range:
    # each line is broken (NaN) exactly there, and elsewhere equals the class mean. AVIRIS
    # spectrometers overlap (centres are not monotonic), so lines run in wavelength order.
    order = np.argsort(cube.wavelengths, kind="stable")
    assert np.any(np.diff(cube.wavelengths) < 0)
    spacing = np.diff(cube.wavelengths[order])
    gaps = int((spacing > 2.5 * np.median(spacing)).sum())
    assert gaps == 2
    woods = lines[13]
    x, y = woods.get_xdata(), woods.get_ydata()
    assert np.isnan(x).sum() == gaps and x.size == cube.bands + gaps
    expected = cube.data[:, labels == 14].astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(y[~np.isnan(y)], expected[order])
    np.testing.assert_allclose(x[~np.isnan(x)], cube.wavelengths[order])
    assert np.isnan(y[np.flatnonzero(np.isnan(x))]).all()
    np.testing.assert_allclose(woods.get_color()[:3], class_colour_table(17)[14])
    png = read_png(tmp_path / "spectra.png")
    width_in, height_in = figure.get_size_inches()
    assert png.shape[:2] == (round(height_in * 100), round(width_in * 100))
    assert png[..., :3].std() > 20


def test_pixel_spectra_on_a_band_axis(rng: np.random.Generator, tmp_path: Path, read_png) -> None:
    cube = Cube(rng.random((9, 5, 6)))
    figure = plot_spectra(cube, [(0, 0), (4, 5)], names=["corner", "far corner"], path=tmp_path / "px.png", dpi=60)
    axes = figure.axes[0]
    assert axes.get_xlabel() == "band index"
    np.testing.assert_array_equal(axes.get_lines()[1].get_xdata(), np.arange(9))
    np.testing.assert_allclose(axes.get_lines()[1].get_ydata(), cube.data[:, 4, 5])
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["corner", "far corner"]
    width_in, height_in = figure.get_size_inches()
    assert read_png(tmp_path / "px.png").shape[:2] == (round(height_in * 60), round(width_in * 60))
    with pytest.raises(InvalidCubeError, match=r"pixel \(row 5, col 0\) is outside the 5x6 image"):
        plot_spectra(cube, [(5, 0)])


def test_class_spectra_of_a_missing_class_is_refused(rng: np.random.Generator) -> None:
    cube = Cube(rng.random((3, 4, 4)))
    labels = np.ones((4, 4), dtype=int)
    with pytest.raises(InvalidCubeError, match=r"no valid pixel of class\(es\) \[2\]; the classes present are \[1\]"):
        plot_class_spectra(cube, labels, classes=[1, 2])
