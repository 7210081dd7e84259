"""Per-pixel and per-band error maps: the metric definitions of hsikit.metrics, and their figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hsikit import Cube
from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError
from hsikit.metrics.reconstruction import mrae, rmse, sam
from hsikit.viz.errors import band_errors, pixel_error_maps, plot_error_maps, scene_scores


def test_maps_average_to_the_protocol_scores(reconstruction_set) -> None:
    target = reconstruction_set["target"]
    prediction = reconstruction_set["linear"]
    maps = pixel_error_maps(prediction, target)
    assert set(maps) == {"mrae", "rmse", "sam"} and maps["sam"].shape == (145, 145)
    truth, predicted = torch.from_numpy(np.asarray(target.data)), torch.from_numpy(prediction)
    # MRAE and SAM are means over pixels of the per-pixel values: the maps average to the image scores
    assert maps["mrae"].mean() == pytest.approx(float(mrae(predicted, truth, crop=0)[0]), rel=1e-10)
    assert maps["sam"].mean() == pytest.approx(float(sam(predicted, truth, crop=0, degrees=True)[0]), rel=1e-10)
    # RMSE: the image value is the root of the mean squared map
    assert np.sqrt((maps["rmse"] ** 2).mean()) == pytest.approx(float(rmse(predicted, truth, crop=0)[0]), rel=1e-10)
    # one pixel by hand
    y = np.asarray(target.data[:, 40, 100], dtype=np.float64)
    y_hat = prediction[:, 40, 100].astype(np.float64)
    assert maps["mrae"][40, 100] == pytest.approx(np.mean(np.abs(y_hat - y) / y), rel=1e-12)
    assert maps["rmse"][40, 100] == pytest.approx(np.sqrt(np.mean((y_hat - y) ** 2)), rel=1e-12)
    cosine = y @ y_hat / np.linalg.norm(y) / np.linalg.norm(y_hat)
    assert maps["sam"][40, 100] == pytest.approx(np.degrees(np.arccos(cosine)), rel=1e-6)
    scores = scene_scores(prediction, target)
    assert scores["mrae"] == pytest.approx(maps["mrae"].mean(), rel=1e-10)
    assert scores["sam"] == pytest.approx(maps["sam"].mean(), rel=1e-10)
    assert 20 < scores["psnr"] < 60


def test_band_errors_and_nodata(reconstruction_set) -> None:
    target = reconstruction_set["target"][:, :30, :40]
    prediction = reconstruction_set["quadratic"][:, :30, :40]
    mask = np.zeros((30, 40), dtype=bool)
    mask[:5] = True  # five nodata rows: NaN in the maps, left out of the band means
    masked = target.replace(nodata_mask=mask)
    maps = pixel_error_maps(prediction, masked, ("rmse",))
    assert np.isnan(maps["rmse"][:5]).all() and np.isfinite(maps["rmse"][5:]).all()
    per_band = band_errors(prediction, masked)
    y = np.asarray(target.data, dtype=np.float64)[:, 5:]
    y_hat = prediction.astype(np.float64)[:, 5:]
    np.testing.assert_allclose(per_band["mrae"], (np.abs(y_hat - y) / y).mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(per_band["rmse"], np.sqrt(((y_hat - y) ** 2).mean(axis=(1, 2))), rtol=1e-12)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(3, 4, 5\).*\(3, 5, 4\).*layout"):
        pixel_error_maps(np.ones((3, 4, 5)), np.ones((3, 5, 4)))
    with pytest.raises(ConfigError, match=r"unknown error map\(s\) \['psnr'\]"):
        pixel_error_maps(np.ones((3, 4, 5)), np.ones((3, 4, 5)), ("psnr",))
    zeros = Cube(np.zeros((3, 4, 5)))
    with pytest.raises(MetricInputError, match="zero value"):
        pixel_error_maps(np.ones((3, 4, 5)), zeros, ("mrae",), mrae_variant="mstpp")
    assert np.isfinite(pixel_error_maps(np.ones((3, 4, 5)), zeros, ("mrae",))["mrae"]).all()  # custom: 1e-8 floor


def test_error_map_figure(reconstruction_set, tmp_path: Path, check_figure_files, image_panels) -> None:
    target = reconstruction_set["target"][:, :64, :64]
    prediction = reconstruction_set["linear"][:, :64, :64]
    figure = plot_error_maps(prediction, target, title="north-west tile", path=tmp_path / "errors.png")
    data_axes = [a for a in figure.axes if a.get_label() != "<colorbar>"]
    assert len(data_axes) == 3 and len(figure.axes) == 6  # three maps, each with its colour bar
    maps = pixel_error_maps(prediction, target)
    for axes, name in zip(data_axes, ("mrae", "rmse", "sam")):
        assert axes.get_title() == f"{name.upper()} (mean {maps[name].mean():.4g})"
        shown = axes.images[0]
        np.testing.assert_array_equal(shown.get_array(), maps[name])
        assert shown.get_clim() == pytest.approx((0.0, np.percentile(maps[name], 99.0)))
    image = check_figure_files(tmp_path / "errors", panels=3)
    assert image_panels(image) == 3
