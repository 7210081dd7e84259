"""Tests of simulate_rgb: the NTIRE 2022 RGB recipe (QE x gains, Poisson noise, auto-exposure, JPEG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit.cube import Cube
from hsikit.errors import ConfigError, InvalidCubeError, ShapeMismatchError, WavelengthError
from hsikit.spectral.cameras import CameraResponse
from hsikit.spectral.simulate import (
    NTIRE2022_GAINS,
    band_widths,
    decode_jpeg,
    encode_jpeg,
    load_ntire2022_qe,
    projection_matrix,
    simulate_rgb,
)

ARAD_GRID = np.arange(400.0, 701.0, 10.0)


@pytest.fixture(scope="module")
def ntire(shared_data: Path) -> CameraResponse:
    return load_ntire2022_qe(shared_data / "color" / "ntire2022_RGB_Camera_QE.csv")


@pytest.fixture
def triangle_camera() -> CameraResponse:
    """Three triangular curves on 380..720 nm (1 nm), peaks 600 / 540 / 460 nm."""
    wavelengths = np.arange(380.0, 721.0)
    curves = np.stack([np.clip(1 - np.abs(wavelengths - peak) / 60.0, 0, None) for peak in (600.0, 540.0, 460.0)])
    return CameraResponse("triangles", wavelengths, curves)


def flat_cube(level: float, wavelengths: np.ndarray, size: int = 4) -> Cube:
    return Cube(np.full((wavelengths.size, size, size), level, dtype=np.float32), wavelengths=wavelengths)


# ---------------------------------------------------------------------------- camera and projection
def test_ntire_qe_is_r_g1_b_of_the_table(ntire: CameraResponse) -> None:
    # the protocol's sample values (before gain) at 450, 550, 600, 650 nm, rows R, G1, B
    expected = np.array(
        [[0.0173, 0.0193, 0.4573, 0.3110], [0.1009, 0.5579, 0.3489, 0.1063], [0.5228, 0.0568, 0.0129, 0.0163]]
    )
    np.testing.assert_allclose(ntire.sample([450, 550, 600, 650]), expected, atol=5e-5)
    assert ntire.wavelengths[0] == 360 and ntire.wavelengths[-1] == 750


def test_projection_on_the_arad_grid_is_gained_qe(ntire: CameraResponse) -> None:
    matrix = projection_matrix(ARAD_GRID, ntire)  # NTIRE gains by default for the NTIRE camera
    np.testing.assert_allclose(matrix, ntire.sample(ARAD_GRID) * np.array(NTIRE2022_GAINS)[:, None], rtol=1e-12)
    np.testing.assert_array_equal(band_widths(ARAD_GRID), np.full(31, 10.0))
    np.testing.assert_allclose(band_widths([400, 410, 430]), [10.0, 15.0, 20.0])


def test_flat_spectrum_channel_ratios_are_curve_integral_ratios(ntire: CameraResponse) -> None:
    fine = np.arange(400.0, 701.0, 1.0)
    image = simulate_rgb(flat_cube(0.4, fine), ntire, clean=True, exposure=0.05, output="float")
    pixel = image[:, 0, 0].astype(np.float64)
    assert np.all(image == image[:, :1, :1])  # a flat cube gives a flat image
    inside = (ntire.wavelengths >= 400) & (ntire.wavelengths <= 700)
    integrals = np.array([np.trapezoid(curve[inside], ntire.wavelengths[inside]) for curve in ntire.curves])
    integrals *= np.array(NTIRE2022_GAINS)
    np.testing.assert_allclose(pixel / pixel[1], integrals / integrals[1], rtol=5e-3)
    # absolute level: 0.4 x (integral / 10 nm) x exposure
    np.testing.assert_allclose(pixel, 0.4 * integrals / 10.0 * 0.05, rtol=5e-3)
    # on the 10 nm grid the image is exactly the sum over bands of gain x QE (NTIRE's cube @ QE)
    coarse = simulate_rgb(flat_cube(0.4, ARAD_GRID), ntire, clean=True, exposure=0.05, output="float")[:, 0, 0]
    by_hand = 0.4 * (ntire.sample(ARAD_GRID) * np.array(NTIRE2022_GAINS)[:, None]).sum(axis=1) * 0.05
    np.testing.assert_allclose(coarse, by_hand, rtol=1e-6)


def test_any_camera_table_form(triangle_camera: CameraResponse, rng: np.random.Generator) -> None:
    cube = Cube(rng.uniform(0.1, 1.0, (31, 6, 7)).astype(np.float32), wavelengths=ARAD_GRID)
    reference = simulate_rgb(cube, triangle_camera, clean=True)
    table = np.column_stack([triangle_camera.wavelengths, triangle_camera.curves.T])
    np.testing.assert_array_equal(simulate_rgb(cube, table[::-1], clean=True), reference)  # rows in any order
    pair = (triangle_camera.wavelengths, triangle_camera.curves.T)  # curves (N, 3)
    np.testing.assert_array_equal(simulate_rgb(cube, pair, clean=True), reference)
    # an array cube with explicit wavelengths gives the same image as the Cube
    from_array = simulate_rgb(cube.data, triangle_camera, wavelengths=ARAD_GRID, clean=True)
    np.testing.assert_array_equal(from_array, reference)


def test_named_camera_from_the_shared_tables(shared_data: Path, rng: np.random.Generator) -> None:
    cube = Cube(rng.uniform(0.1, 1.0, (31, 5, 5)).astype(np.float32), wavelengths=ARAD_GRID)
    image = simulate_rgb(cube, "nikon_d700_luxpy", clean=True)
    assert image.shape == (3, 5, 5) and image.dtype == np.uint8
    np.testing.assert_array_equal(projection_matrix(ARAD_GRID, "nikon_d700_luxpy", gains=(1, 1, 1)),
                                  projection_matrix(ARAD_GRID, "nikon_d700_luxpy"))  # other cameras: unit gains


# ---------------------------------------------------------------------------- clean, noise, exposure
def test_clean_variant_is_deterministic_and_matches_hand_computation(
    triangle_camera: CameraResponse, rng: np.random.Generator
) -> None:
    cube = Cube(rng.uniform(0.05, 1.0, (31, 12, 10)).astype(np.float32), wavelengths=ARAD_GRID)
    first = simulate_rgb(cube, triangle_camera, clean=True)
    assert first.dtype == np.uint8 and first.shape == (3, 12, 10)
    np.testing.assert_array_equal(simulate_rgb(cube, triangle_camera, clean=True, seed=99), first)
    weights = triangle_camera.sample(ARAD_GRID)  # unit gains, 10 nm bands
    linear = np.einsum("kc,chw->khw", weights, cube.data.astype(np.float64))
    expected = np.clip(linear * (0.18 / linear.mean()) * 255.0, 0, 255).astype(np.uint8)
    assert np.abs(first.astype(int) - expected).max() <= 1  # float rounding at integer boundaries only
    assert np.mean(first == expected) > 0.99


def test_poisson_noise_variance_is_proportional_to_the_mean(triangle_camera: CameraResponse) -> None:
    exposure, npe = 0.002, 40.0
    variances, means = [], []
    for level in (0.1, 0.4):
        cube = flat_cube(level, ARAD_GRID, size=96)
        image = simulate_rgb(cube, triangle_camera, noise="poisson", npe=npe, exposure=exposure,
                             jpeg_quality=None, output="float", seed=7).astype(np.float64)
        signal = image.reshape(3, -1) * 255.0 / (255.0 * exposure)  # back to projected units
        assert signal.max() * exposure < 1.0  # nothing clipped
        means.append(signal.mean(axis=1))
        variances.append(signal.var(axis=1))
        # Poisson(x * npe) / npe has mean x and variance x / npe
        clean = simulate_rgb(cube, triangle_camera, clean=True, exposure=exposure, output="float")[:, 0, 0] / exposure
        np.testing.assert_allclose(means[-1], clean, rtol=0.01)
        np.testing.assert_allclose(variances[-1], means[-1] / npe, rtol=0.08)
    ratio = np.array(variances[1]) / np.array(variances[0])
    np.testing.assert_allclose(ratio, np.array(means[1]) / np.array(means[0]), rtol=0.12)


def test_noise_is_seeded(triangle_camera: CameraResponse) -> None:
    cube = flat_cube(0.5, ARAD_GRID, size=16)
    one = simulate_rgb(cube, triangle_camera, jpeg_quality=None, seed=1)
    np.testing.assert_array_equal(simulate_rgb(cube, triangle_camera, jpeg_quality=None, seed=1), one)
    assert not np.array_equal(simulate_rgb(cube, triangle_camera, jpeg_quality=None, seed=2), one)


def test_auto_exposure_maps_the_statistic_to_the_target(
    triangle_camera: CameraResponse, rng: np.random.Generator
) -> None:
    cube = Cube(rng.uniform(0.2, 0.6, (31, 32, 32)).astype(np.float32), wavelengths=ARAD_GRID)
    by_mean = simulate_rgb(cube, triangle_camera, clean=True, output="float")
    assert by_mean.max() < 1.0  # no clipping, so the mean is exactly the target
    assert by_mean.mean(dtype=np.float64) == pytest.approx(0.18, rel=1e-5)
    by_percentile = simulate_rgb(cube, triangle_camera, clean=True, output="float",
                                 exposure_statistic=99.0, exposure_target=0.9)
    assert np.percentile(by_percentile.astype(np.float64), 99.0) == pytest.approx(0.9, rel=1e-5)
    assert np.mean(by_percentile <= 0.9 + 1e-6) == pytest.approx(0.99, abs=1e-3)  # 99 % of values at or below


def test_jpeg_output_is_8_bit_and_close_to_the_clean_image(triangle_camera: CameraResponse) -> None:
    yy, xx = np.mgrid[0:64, 0:80]
    shape = 0.5 + 0.3 * np.sin(yy / 9.0)[None] * np.cos(xx / 11.0)[None] * np.linspace(0.5, 1.0, 31)[:, None, None]
    cube = Cube(shape.astype(np.float32), wavelengths=ARAD_GRID)
    clean = simulate_rgb(cube, triangle_camera, clean=True)
    compressed = simulate_rgb(cube, triangle_camera, noise="none", jpeg_quality=65)
    assert compressed.dtype == np.uint8 and compressed.shape == clean.shape
    difference = np.abs(compressed.astype(int) - clean.astype(int))
    assert 0 < difference.mean() < 2.0 and difference.max() < 20
    noisy = simulate_rgb(cube, triangle_camera, seed=4)  # noise + JPEG (the NTIRE defaults)
    assert np.abs(noisy.astype(int) - clean.astype(int)).mean() < 4.0
    # the JPEG step is Pillow's encoder and decoder applied to the 8-bit image
    before = simulate_rgb(cube, triangle_camera, seed=4, jpeg_quality=None)
    np.testing.assert_array_equal(decode_jpeg(encode_jpeg(before, 65)), noisy)


# ---------------------------------------------------------------------------- errors
def test_errors_name_the_problem(triangle_camera: CameraResponse, rng: np.random.Generator) -> None:
    data = rng.uniform(0.1, 1.0, (31, 4, 4)).astype(np.float32)
    with pytest.raises(WavelengthError, match="no band wavelengths.*pass wavelengths="):
        simulate_rgb(Cube(data), triangle_camera)
    with pytest.raises(WavelengthError, match="no band wavelengths"):
        simulate_rgb(data, triangle_camera)
    infrared = Cube(data, wavelengths=np.linspace(800, 1000, 31))
    no_overlap = r"800.0..1000.0 nm\) do not overlap the range of camera 'triangles' \(380.0..720.0 nm\)"
    with pytest.raises(WavelengthError, match=no_overlap):
        simulate_rgb(infrared, triangle_camera)
    red_only = Cube(data, wavelengths=np.linspace(650, 720, 31))
    with pytest.raises(WavelengthError, match="no signal in channel.*G, B"):
        simulate_rgb(red_only, triangle_camera)
    with pytest.raises(ShapeMismatchError, match="30 wavelengths for a cube with 31 bands"):
        simulate_rgb(data, triangle_camera, wavelengths=ARAD_GRID[:30])
    with pytest.raises(InvalidCubeError, match="auto-exposure is undefined"):
        simulate_rgb(Cube(np.zeros_like(data), wavelengths=ARAD_GRID), triangle_camera, clean=True)
    cube = Cube(data, wavelengths=ARAD_GRID)
    with pytest.raises(ConfigError, match="jpeg_quality=None"):
        simulate_rgb(cube, triangle_camera, output="float")
    with pytest.raises(ConfigError, match="gains must be 3 positive numbers"):
        simulate_rgb(cube, triangle_camera, gains=(1.0, 2.0))
    with pytest.raises(ConfigError, match="exposure must be 'auto' or a positive factor"):
        simulate_rgb(cube, triangle_camera, clean=True, exposure="bright")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="percentile"):
        simulate_rgb(cube, triangle_camera, clean=True, exposure_statistic=150.0)
    with pytest.raises(ShapeMismatchError, match=r"\(3, H, W\) uint8"):
        encode_jpeg(np.zeros((4, 4, 3), np.uint8))
