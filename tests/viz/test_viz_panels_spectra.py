"""Qualitative panels (input, target, prediction) and spectral curves at chosen or picked pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.errors import InvalidCubeError
from hsikit.viz.errors import pixel_error_maps
from hsikit.viz.panels import pick_pixels, plot_prediction_panels, plot_spectral_curves


def _tile(reconstruction_set, name: str, rows: slice, cols: slice):
    return reconstruction_set["target"][:, rows, cols], reconstruction_set[name][:, rows, cols]


def test_panels_of_a_real_reconstruction(reconstruction_set, tmp_path: Path, check_figure_files, image_panels) -> None:
    target, prediction = _tile(reconstruction_set, "quadratic", slice(0, 72), slice(73, 145))
    rgb = np.moveaxis(reconstruction_set["rgb"][:, 0:72, 73:145], 0, -1)
    figure = plot_prediction_panels(prediction, target, rgb_input=rgb, title="ip_ne", path=tmp_path / "panels")
    titles = [a.get_title() for a in figure.axes]
    assert titles[0] == "input RGB" and titles[1].startswith("target — true colour (CIE 1931")
    assert titles[2] == "prediction"
    # a float input is shown divided by its 99.5th percentile, one factor for the three channels
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), np.clip(rgb / np.percentile(rgb, 99.5), 0, 1),
                               rtol=1e-5)
    image = check_figure_files(tmp_path / "panels", panels=3)
    assert image_panels(image) == 3
    # the prediction alone (no target, no wavelengths): its own transform on three bands spread over the range
    alone = plot_prediction_panels(Cube(prediction), colour="false")
    assert len(alone.axes) == 1 and alone.axes[0].get_title() == "prediction — three spread bands (bands 22/15/7)"


def test_picked_pixels_span_the_error_range(reconstruction_set) -> None:
    target, prediction = _tile(reconstruction_set, "linear", slice(0, 60), slice(0, 60))
    pixels = pick_pixels(prediction, target, count=3, metric="sam")
    errors = pixel_error_maps(prediction, target, ("sam",))["sam"]
    values = [errors[r, c] for r, c in pixels]
    assert values == sorted(values) and values[0] < np.median(errors) < values[-1]
    ordered = np.sort(errors.reshape(-1))
    for value, quantile in zip(values, (0.1, 0.5, 0.9)):
        assert value == ordered[int(round(quantile * (ordered.size - 1)))]
    bright = pick_pixels(Cube(np.asarray(target.data)), count=2)  # no target: dark to bright
    means = [np.asarray(target.data)[:, r, c].mean() for r, c in bright]
    assert means[0] < means[1]


def test_spectral_curves(reconstruction_set, tmp_path: Path, check_figure_files) -> None:
    target, prediction = _tile(reconstruction_set, "linear", slice(0, 60), slice(0, 60))
    figure = plot_spectral_curves(prediction, target, [(5, 7), (30, 41)], path=tmp_path / "spectra")
    locator, first, second = figure.axes
    assert locator.get_title() == "pixels shown" and len(locator.lines) == 2
    assert first.get_xlabel() == "wavelength (nm)"
    true_line, predicted_line = first.get_lines()
    np.testing.assert_allclose(true_line.get_xdata(), np.arange(400.0, 701.0, 10.0))
    np.testing.assert_allclose(true_line.get_ydata(), np.asarray(target.data)[:, 5, 7])
    np.testing.assert_allclose(predicted_line.get_ydata(), prediction[:, 5, 7])
    sam = pixel_error_maps(prediction, target, ("sam",))["sam"][30, 41]
    assert second.get_title().startswith("2: row 30, col 41") and f"SAM {sam:.2f}°" in second.get_title()
    check_figure_files(tmp_path / "spectra", panels=3)
    with pytest.raises(InvalidCubeError, match=r"pixel \(row 60, col 0\) is outside the 60x60 image"):
        plot_spectral_curves(prediction, target, [(60, 0)])
    # without wavelengths the axis is the band index, and a prediction without them borrows the target's
    borrowed = plot_spectral_curves(prediction, target, count=1)
    assert borrowed.axes[1].get_xlabel() == "wavelength (nm)"
    plain = plot_spectral_curves(Cube(prediction), None, [(0, 0)])
    assert plain.axes[1].get_xlabel() == "band index"
