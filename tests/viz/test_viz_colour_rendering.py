"""True colour from wavelengths through the CIE tables, checked on known spectra, through the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.errors import ShapeMismatchError, WavelengthError
from hsikit.spectral.color import srgb_encode
from hsikit.viz.panels import apply_colour, colour_matching_functions, fit_colour, plot_prediction_panels

GRID = np.arange(400.0, 701.0, 10.0)


def _patches(values: dict[str, np.ndarray], size: int = 8) -> Cube:
    """A reflectance cube of side-by-side square patches, one spectrum each."""
    data = np.zeros((GRID.size, size, size * len(values)), dtype=np.float32)
    for number, spectrum in enumerate(values.values()):
        data[:, :, number * size : (number + 1) * size] = spectrum[:, None, None]
    return Cube(data, wavelengths=GRID, metadata={"units": "reflectance"})


def _panel_pixels(figure, title_start: str) -> np.ndarray:
    axes = next(a for a in figure.axes if a.get_title().startswith(title_start))
    return np.asarray(axes.images[0].get_array())


def test_the_cie_table_of_the_shared_data_is_used(shared_data: Path) -> None:
    observer = colour_matching_functions()
    assert "cie1931_2deg" in observer.name and observer.source is not None
    assert observer.wavelengths[0] == 360 and observer.wavelengths[-1] == 830


def test_flat_spectra_are_grey_and_a_650_nm_band_is_red(shared_data: Path, tmp_path: Path, read_png) -> None:
    narrow = np.where(GRID == 650.0, 0.8, 0.0)
    cube = _patches({"grey": np.full(GRID.size, 0.5), "dark grey": np.full(GRID.size, 0.2), "red": narrow})
    # absolute rendering: reflectance 0.5 under D65 is linear sRGB 0.5 on every channel
    figure = plot_prediction_panels(cube, cube, colour="true", path=tmp_path / "panels.png")
    transform = fit_colour(cube, "true", white_percentile=None)
    absolute = apply_colour(transform, cube)
    np.testing.assert_allclose(absolute[:, :8], srgb_encode(np.float32(0.5)), atol=2e-3)
    np.testing.assert_allclose(absolute[:, 8:16], srgb_encode(np.float32(0.2)), atol=2e-3)
    red = absolute[:, 16:].reshape(-1, 3)
    assert red[:, 0].min() > 0.2 and red[:, 1:].max() < 0.02  # out of gamut towards red: only R remains
    # the figure path (white = the 99th luminance percentile): still neutral greys and a red patch
    for title in ("target", "prediction"):
        shown = _panel_pixels(figure, title).astype(np.float64)
        grey, dark, patch = shown[:, :8].reshape(-1, 3), shown[:, 8:16].reshape(-1, 3), shown[:, 16:].reshape(-1, 3)
        assert np.ptp(grey, axis=1).max() < 2e-3 and np.ptp(dark, axis=1).max() < 2e-3
        assert grey.mean() > dark.mean() + 0.2
        assert patch[:, 0].min() > 0.2 and patch[:, 1:].max() < 0.02
    # and the saved PNG shows the same: sample the middle of the red patch in each panel
    image = read_png(tmp_path / "panels.png")[..., :3].astype(int)
    reddish = (image[..., 0] > 60) & (image[..., 1] < 15) & (image[..., 2] < 15)
    assert reddish.sum() > 200
    greyish = (np.ptp(image, axis=2) <= 2) & (image[..., 0] > 60) & (image[..., 0] < 250)
    assert greyish.sum() > 400


def test_prediction_and_target_share_one_transform(reconstruction_set) -> None:
    target = reconstruction_set["target"]
    tile = target[:, :48, :48]
    darker = tile.replace(data=np.asarray(tile.data) * 0.5)
    figure = plot_prediction_panels(darker, tile, colour="both")
    truth, predicted = _panel_pixels(figure, "target — true"), _panel_pixels(figure, "prediction")
    # half the light gives about half the linear luminance: the prediction is not re-stretched
    from hsikit.spectral.color import srgb_decode

    ratio = srgb_decode(predicted).mean() / srgb_decode(truth).mean()
    assert 0.45 < ratio < 0.55
    assert len([a for a in figure.axes if a.images]) == 4  # two rows (true and false colour) of two panels


def test_false_colour_and_errors(reconstruction_set) -> None:
    target = reconstruction_set["target"][:, :20, :20]
    transform = fit_colour(target, "false", wavelengths=(650.0, 550.0, 450.0))
    assert transform.mode == "false" and transform.band_indices == (25, 15, 5)
    image = apply_colour(transform, target)
    assert image.shape == (20, 20, 3) and image.min() >= 0 and image.max() <= 1
    near_infrared = Cube(np.ones((3, 4, 4)), wavelengths=[750.0, 800.0, 850.0])
    with pytest.raises(WavelengthError, match=r"true colour needs bands across 400-700 nm.*750.0..850.0 nm"):
        fit_colour(near_infrared, "true")
    assert fit_colour(near_infrared, "auto").mode == "false"  # auto falls back to three bands
    with pytest.raises(ShapeMismatchError, match="fitted on a cube of 31 bands"):
        apply_colour(fit_colour(target, "true"), near_infrared)
