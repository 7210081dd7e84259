"""Colour composites: band choice, robust stretch, nodata, PNG output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.errors import ConfigError, InvalidCubeError, WavelengthError
from hsikit.viz import (
    composite_rgb,
    plot_composite,
    plot_false_colour,
    plot_true_colour,
    select_rgb_bands,
    stretch,
)

# 12 bands at 400, 450, ..., 950 nm: nearest to 640 is 650 nm (index 5), to 550 is
# 550 nm (index 3), to 460 is 450 nm (index 1), to 860 is 850 nm (index 9).
WAVELENGTHS = np.arange(400.0, 951.0, 50.0)
SQUARES = {  # band index -> (row slice, col slice) of its bright square
    5: (slice(0, 8), slice(0, 8)),
    3: (slice(0, 8), slice(16, 24)),
    1: (slice(16, 24), slice(0, 8)),
    4: (slice(16, 24), slice(16, 24)),  # 600 nm: a decoy next to red
    6: (slice(16, 24), slice(16, 24)),  # 700 nm: another decoy
    9: (slice(24, 32), slice(24, 32)),  # 850 nm: near infrared
}


def squares_cube(rng: np.random.Generator) -> Cube:
    """32 x 32 px of dim noise (0..0.1) in 12 bands; each band in SQUARES has one bright (1.0) square."""
    data = rng.uniform(0.0, 0.1, size=(12, 32, 32)).astype(np.float32)
    for band, (rows, cols) in SQUARES.items():
        data[band, rows, cols] = 1.0
    return Cube(data, wavelengths=WAVELENGTHS, metadata={"source": "squares"})


def square_mask(band: int) -> np.ndarray:
    mask = np.zeros((32, 32), dtype=bool)
    mask[SQUARES[band]] = True
    return mask


def test_true_colour_bands_are_the_nearest_to_640_550_460(rng: np.random.Generator) -> None:
    cube = squares_cube(rng)
    assert select_rgb_bands(cube) == (5, 3, 1)
    rgb = composite_rgb(cube)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    for channel, band in enumerate((5, 3, 1)):
        inside = square_mask(band)
        # the bright square is above the 98th percentile (it covers 6.25 % of the pixels): white
        assert np.all(rgb[..., channel][inside] == 255)
        # the noise elsewhere sits in the bottom tenth of the stretch
        assert rgb[..., channel][~inside].max() < 30
    # the decoy bands (600 and 700 nm) light no channel
    decoy = square_mask(4)
    assert rgb[decoy].max() < 30


def test_false_colour_infrared_uses_nir_red_green(rng: np.random.Generator) -> None:
    cube = squares_cube(rng)
    # CIR: 860 -> 850 nm (9), 650 -> 650 nm (5), 550 -> 550 nm (3)
    assert select_rgb_bands(cube, wavelengths=(860, 650, 550)) == (9, 5, 3)
    rgb = composite_rgb(cube, wavelengths=(860, 650, 550))
    assert np.all(rgb[..., 0][square_mask(9)] == 255)
    assert np.all(rgb[..., 1][square_mask(5)] == 255)
    np.testing.assert_array_equal(composite_rgb(cube, bands=(9, 5, 3)), rgb)


def test_stretch_maps_percentiles_to_0_and_1() -> None:
    values = np.arange(101, dtype=np.float64).reshape(1, 1, 101)  # 0..100: percentile p is the value p
    result = stretch(values, percentiles=(2, 98))
    expected = np.clip((np.arange(101) - 2.0) / 96.0, 0, 1)
    np.testing.assert_allclose(result[0, 0], expected, atol=1e-6)
    # pooled limits: a channel that is twice another keeps the ratio below saturation
    two = np.stack([values[0], 2 * values[0]])
    pooled = stretch(two, percentiles=(0, 100), per_channel=False)
    np.testing.assert_allclose(pooled[1, 0, :51], 2 * pooled[0, 0, :51], atol=1e-6)


def test_stretch_ignores_nodata_and_constant_channels() -> None:
    data = np.zeros((2, 4, 4), dtype=np.float32)
    data[0] = np.arange(16).reshape(4, 4)
    data[0, 0, 0] = 1e9  # a nodata pixel holding a huge fill value
    valid = np.ones((4, 4), dtype=bool)
    valid[0, 0] = False
    result = stretch(data, valid, percentiles=(0, 100))
    # limits come from the 15 valid values 1..15, not from the fill value
    np.testing.assert_allclose(result[0][valid], (data[0][valid] - 1) / 14, atol=1e-6)
    assert result[0, 0, 0] == 0 and np.all(result[1] == 0)


def test_nodata_is_black_in_arrays_and_transparent_in_png(rng: np.random.Generator, tmp_path: Path, read_png) -> None:
    data = rng.uniform(0.0, 1.0, size=(12, 32, 32)).astype(np.float32)
    data[:, :4, :] = -9999.0
    cube = Cube(data, wavelengths=WAVELENGTHS, nodata=-9999.0)
    rgb = composite_rgb(cube)
    assert np.all(rgb[:4] == 0)
    # the fill value does not enter the stretch: the valid part spans the whole range
    assert rgb[4:].max() == 255 and np.percentile(rgb[4:, :, 0], 50) > 80
    png = read_png(plot_composite(cube, path=tmp_path / "c.png") and tmp_path / "c.png")
    assert png.shape == (32, 32, 4)
    assert np.all(png[:4, :, 3] == 0) and np.all(png[4:, :, 3] == 255)


def test_png_is_pixel_exact_and_scaled(rng: np.random.Generator, tmp_path: Path, read_png) -> None:
    cube = squares_cube(rng)[:, :, :24]  # 32 rows x 24 columns: width and height differ
    figure = plot_true_colour(cube, path=tmp_path / "tc.png")
    png = read_png(tmp_path / "tc.png")
    assert png.shape[:2] == (32, 24)
    np.testing.assert_array_equal(png[..., :3], composite_rgb(cube))
    assert figure.axes  # a matplotlib Figure comes back
    plot_false_colour(cube, path=tmp_path / "fc.png", scale=3)
    scaled = read_png(tmp_path / "fc.png")
    assert scaled.shape[:2] == (96, 72)
    np.testing.assert_array_equal(scaled[::3, ::3, :3], composite_rgb(cube, wavelengths=(860, 650, 550)))
    plot_true_colour(cube, title="true colour", path=tmp_path / "titled.png")
    titled = read_png(tmp_path / "titled.png")
    assert titled.shape[1] == 24 and titled.shape[0] > 32


def test_real_scene_true_colour_is_not_blank(indian_pines, tmp_path: Path, read_png, distinct_colours) -> None:
    cube, _ = indian_pines
    assert select_rgb_bands(cube) == tuple(int(np.argmin(np.abs(cube.wavelengths - w))) for w in (640, 550, 460))
    plot_true_colour(cube, scale=2, path=tmp_path / "indian_pines.png", dpi=72)
    png = read_png(tmp_path / "indian_pines.png")
    assert png.shape == (290, 290, 4)
    assert png[..., :3].std() > 20
    assert distinct_colours(png) > 1000
    # fields differ: the red channel alone has many levels
    assert np.unique(png[..., 0]).size > 100


def test_band_choice_errors_name_the_fix(rng: np.random.Generator) -> None:
    no_wavelengths = Cube(rng.random((4, 8, 8)), metadata={"source": "tile.tif"})
    with pytest.raises(WavelengthError, match=r"'tile.tif' has no band wavelengths.*--bands R G B"):
        composite_rgb(no_wavelengths)
    assert composite_rgb(no_wavelengths, bands=(2, 1, 0)).shape == (8, 8, 3)
    with pytest.raises(InvalidCubeError, match=r"band 7 does not exist; the cube has 4 bands, numbered 0..3"):
        composite_rgb(no_wavelengths, bands=(7, 1, 0))
    swir = Cube(rng.random((3, 8, 8)), wavelengths=[1500.0, 1600.0, 1700.0])
    with pytest.raises(WavelengthError, match=r"no band within 50 nm of 640 nm.*1500.0..1700.0 nm"):
        composite_rgb(swir)
    with pytest.raises(ConfigError, match="3 bands"):
        composite_rgb(no_wavelengths, bands=(1, 0))
    with pytest.raises(ConfigError, match="low < high"):
        composite_rgb(no_wavelengths, bands=(2, 1, 0), percentiles=(98, 2))


def test_cie_rendering_sees_colours_between_the_rgb_bands() -> None:
    wavelengths = np.arange(400.0, 701.0, 10.0)  # 31 bands
    reflectance = np.zeros((31, 16, 16), dtype=np.float32)

    def paint(rows: slice, cols: slice, low: float, high: float) -> None:
        reflectance[(wavelengths >= low) & (wavelengths <= high), rows, cols] = 0.8

    paint(slice(0, 8), slice(0, 8), 590, 610)  # orange, between the 640 and 550 nm bands
    paint(slice(0, 8), slice(8, 16), 500, 560)  # green
    paint(slice(8, 16), slice(0, 8), 420, 470)  # blue
    paint(slice(8, 16), slice(8, 16), 400, 700)  # white
    cube = Cube(reflectance, wavelengths=wavelengths, metadata={"units": "reflectance"})
    orange = (slice(0, 8), slice(0, 8))
    nearest = composite_rgb(cube)
    assert nearest[orange].max() == 0  # 590-610 nm reflects at none of 640/550/460 nm
    cie = composite_rgb(cube, method="cie").astype(int)
    red, green, blue = (cie[orange][..., c].mean() for c in range(3))
    assert red > green + 40 > blue + 80  # orange: red above green above blue
    green_patch = cie[0:8, 8:16].reshape(-1, 3).mean(axis=0)
    assert green_patch[1] > green_patch[0] + 60 and green_patch[1] > green_patch[2] + 60
    blue_patch = cie[8:16, 0:8].reshape(-1, 3).mean(axis=0)
    assert blue_patch[2] > blue_patch[0] + 60 and blue_patch[2] > blue_patch[1] + 60
    np.testing.assert_array_equal(composite_rgb(cube, method="auto"), cie.astype(np.uint8))
    # explicit bands win over the method
    explicit = composite_rgb(cube, bands=(24, 15, 6), method="cie")
    np.testing.assert_array_equal(explicit, composite_rgb(cube, bands=(24, 15, 6)))


def test_cie_rendering_needs_the_visible_range(rng: np.random.Generator) -> None:
    near_infrared = Cube(rng.random((5, 4, 4)), wavelengths=[600.0, 700.0, 800.0, 900.0, 1000.0])
    with pytest.raises(WavelengthError, match=r"needs bands across 400-700 nm, the cube has 600.0..1000.0 nm"):
        composite_rgb(near_infrared, method="cie")
    # auto falls back to the nearest bands, and 460 nm is too far from 600 nm
    with pytest.raises(WavelengthError, match="no band within 50 nm of 460 nm"):
        composite_rgb(near_infrared, method="auto")


def test_real_scene_cie_true_colour(indian_pines, tmp_path: Path, distinct_colours) -> None:
    cube, _ = indian_pines
    rgb = composite_rgb(cube, method="cie")
    assert rgb.shape == (145, 145, 3) and rgb.std() > 30 and distinct_colours(rgb) > 1000
    # vegetation (Woods, class 14) is greener than bare soil fields are: the green share is higher
    _, labels = indian_pines
    share = rgb[..., 1].astype(float) / np.maximum(rgb.astype(float).sum(axis=2), 1)
    assert share[labels == 14].mean() > share[labels == 2].mean()


def test_percentiles_of_a_large_image_come_from_a_sample(rng: np.random.Generator) -> None:
    from hsikit.viz import percentile_limits

    uniform = rng.random((1, 2000, 2000), dtype=np.float32)  # 4 M pixels: sampled on a grid
    limits = percentile_limits(uniform, percentiles=(2, 98))
    np.testing.assert_allclose(limits[0], [0.02, 0.98], atol=0.003)


def test_saved_pictures_are_complete_and_readable(rng: np.random.Generator, tmp_path: Path) -> None:
    import os

    from hsikit.errors import UnsupportedFormatError
    from hsikit.viz import save_figure

    cube = squares_cube(rng)
    figure = plot_true_colour(cube, path=tmp_path / "deep" / "folder" / "tc.png")
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "deep" / "folder" / "tc.png").stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(UnsupportedFormatError, match=r"tc.bmp: cannot tell the picture format.*\.png"):
        save_figure(figure, tmp_path / "tc.bmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]  # no partial file left behind
    save_figure(figure, tmp_path / "tc.pdf")
    assert (tmp_path / "tc.pdf").read_bytes().startswith(b"%PDF")
