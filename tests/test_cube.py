"""Tests of the Cube data model."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from hsikit import Cube, Window
from hsikit.errors import InvalidCubeError, LayoutError, NonFiniteError


@pytest.fixture
def cube(rng: np.random.Generator) -> Cube:
    return Cube(
        rng.random((5, 20, 30), dtype=np.float32),
        wavelengths=[450.0, 550.0, 650.0, 750.0, 850.0],
        fwhm=[10.0, 11.0, 12.0, 13.0, 14.0],
        band_names=["b1", "b2", "b3", "b4", "b5"],
        crs="EPSG:32647",
        transform=Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 3000000.0),
        metadata={"source": "synthetic"},
    )


def test_band_slice_keeps_band_metadata(cube: Cube) -> None:
    sub = cube[1:4]
    assert sub.shape == (3, 20, 30)
    np.testing.assert_array_equal(sub.wavelengths, [550.0, 650.0, 750.0])
    np.testing.assert_array_equal(sub.fwhm, [11.0, 12.0, 13.0])
    assert sub.band_names == ["b2", "b3", "b4"]
    assert sub.transform == cube.transform and sub.crs == cube.crs
    np.testing.assert_array_equal(sub.data, cube.data[1:4])


def test_band_list_and_wavelength_selection(cube: Cube) -> None:
    sub = cube.select_bands([4, 0])
    np.testing.assert_array_equal(sub.wavelengths, [850.0, 450.0])
    assert cube.select_wavelengths(500, 700).band_names == ["b2", "b3"]
    assert cube.band_index(640) == 2
    assert cube.nearest_bands([840, 460]).band_names == ["b5", "b1"]


def test_window_shifts_transform(cube: Cube) -> None:
    sub = cube.window(Window(row_off=5, col_off=10, height=4, width=6))
    assert sub.shape == (5, 4, 6)
    # top-left corner of the window: x0 + 10 * 30, y0 - 5 * 30
    assert sub.transform.c == pytest.approx(500300.0)
    assert sub.transform.f == pytest.approx(2999850.0)
    assert sub.pixel_to_map(0, 0) == cube.pixel_to_map(5, 10)
    np.testing.assert_array_equal(sub.data, cube.data[:, 5:9, 10:16])


def test_strided_slice_scales_transform(cube: Cube) -> None:
    sub = cube[:, ::2, 3::3]
    assert sub.transform.a == pytest.approx(90.0) and sub.transform.e == pytest.approx(-60.0)
    # the top-left corner of sub pixel (row 1, col 1) is that of original pixel (row 2, col 6)
    assert sub.transform @ (1, 1) == pytest.approx(cube.transform @ (6, 2))


def test_window_outside_image_is_refused(cube: Cube) -> None:
    with pytest.raises(InvalidCubeError, match="outside"):
        cube.window((15, 25, 10, 10))


def test_wavelength_count_must_match_bands(rng: np.random.Generator) -> None:
    with pytest.raises(LayoutError, match="4 wavelengths for a cube with 5 bands"):
        Cube(rng.random((5, 4, 4)), wavelengths=[1, 2, 3, 4])


def test_micrometres_refused_unless_converted(rng: np.random.Generator) -> None:
    with pytest.raises(InvalidCubeError, match="micrometres"):
        Cube(rng.random((2, 4, 4)), wavelengths=[0.45, 0.55])
    cube = Cube(rng.random((2, 4, 4)), wavelengths=[0.45, 0.55], wavelength_unit="um")
    np.testing.assert_allclose(cube.wavelengths, [450.0, 550.0])


def test_nonfinite_policy(rng: np.random.Generator) -> None:
    data = rng.random((3, 4, 5)).astype(np.float32)
    data[1, 2, 3] = np.nan
    data[0, 0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="2 pixel"):
        Cube(data)
    masked = Cube(data, nonfinite="mask", nodata=-1.0)
    assert masked.nodata_mask[2, 3] and masked.nodata_mask[0, 0]
    assert masked.nodata_mask.sum() == 2
    assert masked.data[1, 2, 3] == -1.0 and np.isfinite(masked.data).all()
    assert np.isnan(data[1, 2, 3]), "the caller's array must not be modified"


def test_nodata_value_gives_mask(rng: np.random.Generator) -> None:
    data = rng.random((2, 3, 3))
    data[:, 1, 1] = -9999
    cube = Cube(data, nodata=-9999)
    assert cube.nodata_mask.sum() == 1 and cube.nodata_mask[1, 1]
    assert cube[:, 1:, 1:].nodata_mask[0, 0]


def test_from_hwc_and_bad_shapes(rng: np.random.Generator) -> None:
    hwc = rng.random((4, 6, 3))
    cube = Cube.from_hwc(hwc)
    assert cube.shape == (3, 4, 6)
    np.testing.assert_array_equal(cube.hwc(), hwc)
    with pytest.raises(InvalidCubeError, match="bands, H, W"):
        Cube(rng.random((2, 3, 4, 5)))
    with pytest.raises(InvalidCubeError, match="not numeric"):
        Cube(np.array([[["a"]]]))


def test_band_statistics_ignore_nodata() -> None:
    data = np.arange(2 * 2 * 2, dtype=np.float64).reshape(2, 2, 2)
    mask = np.array([[False, True], [False, False]])
    stats = Cube(data, nodata_mask=mask).band_statistics()
    np.testing.assert_allclose(stats["mean"], [np.mean([0, 2, 3]), np.mean([4, 6, 7])])
    np.testing.assert_allclose(stats["max"], [3, 7])
