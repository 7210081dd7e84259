"""Tests of colour rendering (cube -> XYZ -> sRGB, camera RGB) and the camera tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hsikit import Cube
from hsikit.data import paths
from hsikit.errors import ConfigError, DatasetNotAvailableError, UnknownNameError, WavelengthError
from hsikit.spectral.cameras import (
    CameraResponse,
    camera_names,
    camspec_camera_names,
    load_camera,
    load_camera_csv,
    load_camspec_camera,
    load_canon_5d_mark_ii,
    load_nikon_d700,
    load_ntire2022_camera,
)
from hsikit.spectral.color import (
    XYZ_TO_LINEAR_SRGB,
    builtin_cmf,
    builtin_d65,
    cube_to_camera_rgb,
    cube_to_srgb,
    cube_to_xyz,
    load_cmf,
    load_illuminant,
    spectral_integration_weights,
    srgb_decode,
    srgb_encode,
    xyz_to_srgb,
)

VISIBLE = np.arange(400.0, 701.0, 10.0)
FULL_1NM = np.arange(360.0, 831.0, 1.0)


def flat_cube(value: float, wavelengths: np.ndarray, size: int = 2) -> np.ndarray:
    return np.full((wavelengths.size, size, size), value)


# ------------------------------------------------------------------ tables
def test_builtin_cmf_agrees_with_the_cie_table(shared_data: Path) -> None:
    table = load_cmf(shared_data / "color" / "cie1931_2deg_xyz_cmf_360-830nm_1nm_colour-science.csv")
    assert table.xyz.shape == (3, 471) and table.wavelengths[0] == 360.0
    fitted = builtin_cmf()
    np.testing.assert_array_equal(fitted.wavelengths, table.wavelengths)
    # stated accuracy of the Wyman-Sloan-Shirley fit: 0.025 absolute, integrals within 0.2 %
    assert np.abs(fitted.xyz - table.xyz).max() < 0.025
    np.testing.assert_allclose(fitted.xyz.sum(axis=1), table.xyz.sum(axis=1), rtol=2e-3)
    # the CVRL file holds the same CIE numbers (380-780 nm)
    cvrl = load_cmf(shared_data / "color" / "ciexyz31_1.csv")
    overlap = np.isin(table.wavelengths, cvrl.wavelengths)
    np.testing.assert_allclose(table.xyz[:, overlap], cvrl.xyz, atol=1e-9)


def test_builtin_d65_equals_the_cie_table_at_10nm(shared_data: Path) -> None:
    exact = load_illuminant(shared_data / "color" / "D_illuminants.mat", "D65")
    builtin = builtin_d65()
    at_builtin = np.interp(builtin.wavelengths, exact.wavelengths, exact.spd)
    np.testing.assert_allclose(builtin.spd, at_builtin, rtol=1e-6)
    assert exact.spd[exact.wavelengths == 560.0][0] == pytest.approx(100.0)
    d50 = load_illuminant(name="d50")
    assert d50.name == "D50" and d50.spd[0] == pytest.approx(0.019)  # CIE D50 at 300 nm
    with pytest.raises(UnknownNameError, match="D65"):
        load_illuminant(name="A")


def test_srgb_matrix_matches_the_standard_and_the_transfer_curve_round_trips() -> None:
    published = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    np.testing.assert_allclose(XYZ_TO_LINEAR_SRGB, published, atol=5e-4)
    np.testing.assert_allclose(XYZ_TO_LINEAR_SRGB @ [0.3127 / 0.3290, 1.0, (1 - 0.3127 - 0.3290) / 0.3290], 1.0)
    # hand values: 12.92 * 0.002 below the knee, 1.055 * 0.5^(1/2.4) - 0.055 above it
    np.testing.assert_allclose(srgb_encode(np.array([0.0, 0.002, 0.5, 1.0])), [0.0, 0.02584, 0.735357, 1.0], atol=1e-5)
    values = np.linspace(0, 1, 101)
    np.testing.assert_allclose(srgb_decode(srgb_encode(values)), values, atol=1e-6)


# ------------------------------------------------------------------ sRGB
@pytest.mark.parametrize("wavelengths", [VISIBLE, np.arange(400.0, 2501.0, 10.0), np.linspace(380, 780, 17)])
def test_perfect_white_is_srgb_one_and_grey_is_neutral(wavelengths: np.ndarray) -> None:
    white = cube_to_srgb(flat_cube(1.0, wavelengths), wavelengths)
    np.testing.assert_allclose(white, 1.0, atol=1e-6)
    xyz = cube_to_xyz(flat_cube(1.0, wavelengths), wavelengths)
    np.testing.assert_allclose(xyz[1], 1.0, atol=1e-6)  # Y = 1 for the perfect reflector
    grey = cube_to_srgb(flat_cube(0.18, wavelengths), wavelengths)
    np.testing.assert_allclose(grey[0], grey[1], atol=1e-6)
    np.testing.assert_allclose(grey[2], grey[1], atol=1e-6)
    np.testing.assert_allclose(grey, srgb_encode(np.float32(0.18)), atol=1e-5)


def test_exact_cie_tables_give_the_d65_white_point_without_white_balance(shared_data: Path) -> None:
    cmf = load_cmf()
    d65 = load_illuminant()
    xyz = cube_to_xyz(flat_cube(1.0, FULL_1NM, 1), FULL_1NM, cmf=cmf, illuminant=d65)[:, 0, 0]
    np.testing.assert_allclose(xyz, [0.95047, 1.0, 1.08883], atol=2e-4)  # the CIE D65 white point
    rgb = cube_to_srgb(flat_cube(1.0, FULL_1NM, 1), FULL_1NM, cmf=cmf, illuminant=d65, white_balance=False, clip=False)
    np.testing.assert_allclose(rgb[:, 0, 0], 1.0, atol=1e-3)


def test_coloured_reflectances_have_the_expected_hue() -> None:
    red = np.where(VISIBLE >= 600, 0.8, 0.05)
    green = np.where((VISIBLE >= 500) & (VISIBLE <= 570), 0.8, 0.05)
    blue = np.where(VISIBLE <= 480, 0.8, 0.05)
    cube = np.stack([red, green, blue], axis=1)[:, :, None]  # (31, 3, 1): three pixels
    rgb = cube_to_srgb(cube, VISIBLE)[:, :, 0]
    assert np.argmax(rgb[:, 0]) == 0 and np.argmax(rgb[:, 1]) == 1 and np.argmax(rgb[:, 2]) == 2


def test_radiance_percentile_and_exposure_normalisation(rng: np.random.Generator) -> None:
    radiance = rng.uniform(100, 4000, size=(1, 8, 8)) * np.ones((VISIBLE.size, 1, 1))  # flat spectra
    linear = cube_to_srgb(radiance, VISIBLE, illuminant=None, percentile=100, encode=False)
    brightest = np.unravel_index(np.argmax(radiance[0]), (8, 8))
    np.testing.assert_allclose(linear[:, brightest[0], brightest[1]], 1.0, atol=1e-5)
    np.testing.assert_allclose(linear[0], radiance[0] / radiance[0].max(), rtol=1e-5)
    exposed = cube_to_srgb(radiance, VISIBLE, illuminant=None, exposure=1 / 4000, encode=False, clip=False)
    np.testing.assert_allclose(exposed[1], radiance[0] / 4000, rtol=1e-5)
    with pytest.raises(ConfigError, match="not both"):
        cube_to_srgb(radiance, VISIBLE, exposure=1.0, percentile=99)


def test_cube_input_layout_and_nodata(rng: np.random.Generator) -> None:
    data = rng.random((VISIBLE.size, 4, 5)).astype(np.float32)
    mask = np.zeros((4, 5), dtype=bool)
    mask[1, 2] = True
    cube = Cube(data, wavelengths=VISIBLE, nodata_mask=mask)
    chw = cube_to_srgb(cube)
    hwc = cube_to_srgb(cube, layout="hwc")
    assert chw.shape == (3, 4, 5) and hwc.shape == (4, 5, 3) and chw.dtype == np.float32
    np.testing.assert_array_equal(np.moveaxis(chw, 0, -1), hwc)
    assert np.all(chw[:, 1, 2] == 0) and np.all(chw[:, 0, 0] > 0)
    np.testing.assert_allclose(
        cube_to_srgb(np.moveaxis(data, 0, -1), VISIBLE, axis=-1)[:, 0, 0], chw[:, 0, 0], atol=1e-6
    )
    np.testing.assert_allclose(xyz_to_srgb(cube_to_xyz(cube), clip=True)[:, 0, 0], chw[:, 0, 0], atol=2e-2)


def test_cube_without_the_visible_range_is_refused() -> None:
    swir = np.arange(1000.0, 2501.0, 10.0)
    with pytest.raises(WavelengthError, match=r"cover 1000.0..2500.0 nm.*0%"):
        cube_to_srgb(flat_cube(0.5, swir), swir)
    with pytest.raises(WavelengthError, match="wavelengths="):
        cube_to_srgb(Cube(np.ones((3, 2, 2))))


def test_integration_is_exact_for_piecewise_linear_spectra() -> None:
    """Weights against a 0.01 nm numerical integral of curve x illuminant x interpolated spectrum."""
    curve_wavelengths = np.array([420.0, 455.0, 530.0, 610.0, 680.0])
    curve = np.array([[0.0, 0.7, 1.0, 0.4, 0.0]])
    d65 = builtin_d65()
    spectrum = 0.3 + 0.2 * np.sin(VISIBLE / 37.0)
    weights = spectral_integration_weights(VISIBLE, curve_wavelengths, curve, d65)
    x = np.arange(400.0, 700.0 + 1e-9, 0.01)
    integrand = np.interp(x, curve_wavelengths, curve[0], left=0, right=0) * np.interp(x, d65.wavelengths, d65.spd)
    expected = np.trapezoid(integrand * np.interp(x, VISIBLE, spectrum), x)
    assert (weights @ spectrum)[0] == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ camera RGB
def test_camera_rgb_equals_the_integral_of_the_camera_curves(shared_data: Path) -> None:
    camera = load_ntire2022_camera()
    spectrum = 0.3 + 0.2 * np.sin(VISIBLE / 40.0)
    raw = cube_to_camera_rgb(spectrum[:, None, None], camera, VISIBLE, normalize="none")[:, 0, 0]
    x = np.arange(400.0, 700.0 + 1e-9, 0.01)
    expected = np.trapezoid(camera.sample(x) * np.interp(x, VISIBLE, spectrum), x, axis=1)
    np.testing.assert_allclose(raw, expected, rtol=1e-5)


def test_camera_rgb_normalisation_modes(shared_data: Path) -> None:
    camera = load_ntire2022_camera()
    white = flat_cube(1.0, VISIBLE)
    balanced = cube_to_camera_rgb(white, camera, VISIBLE, normalize="white")
    np.testing.assert_allclose(balanced, 1.0, atol=1e-6)
    raw_ratio = cube_to_camera_rgb(white, camera, VISIBLE)  # "max": green of white is 1, ratios kept
    assert raw_ratio[1, 0, 0] == pytest.approx(1.0) and raw_ratio[0, 0, 0] < 1 and raw_ratio[2, 0, 0] < 1
    np.testing.assert_allclose(
        cube_to_camera_rgb(flat_cube(0.25, VISIBLE), camera, VISIBLE), 0.25 * raw_ratio, rtol=1e-6
    )
    under_d65 = cube_to_camera_rgb(white, camera, VISIBLE, illuminant="D65", normalize="white", layout="hwc")
    assert under_d65.shape == (2, 2, 3)
    np.testing.assert_allclose(under_d65, 1.0, atol=1e-6)


# ------------------------------------------------------------------ camera tables
def test_ntire_camera_averages_the_two_greens(shared_data: Path) -> None:
    camera = load_ntire2022_camera()
    header = (shared_data / "color" / "ntire2022_RGB_Camera_QE.csv").read_text().splitlines()
    row_550 = next(line for line in header if line.startswith("550,")).split(",")
    red, green_1, green_2, blue = (float(v) for v in row_550[1:5])
    index = int(np.flatnonzero(camera.wavelengths == 550.0)[0])
    np.testing.assert_allclose(camera.curves[:, index], [red, (green_1 + green_2) / 2, blue])
    assert camera.curves.shape == (3, 391) and camera.wavelengths[[0, -1]].tolist() == [360.0, 750.0]


def test_camspec_database_lists_and_selects_cameras(shared_data: Path) -> None:
    names = camspec_camera_names()
    assert len(names) == 28 and "Nikon D700" in names and "Canon 5DMarkII" in names
    camera = load_camspec_camera("nikon d700")  # case-insensitive
    assert camera.name == "Nikon D700" and camera.curves.shape == (3, 33)
    np.testing.assert_allclose(camera.wavelengths, np.arange(400.0, 721.0, 10.0))
    assert np.argmax(camera.curves[0]) > np.argmax(camera.curves[1]) > np.argmax(camera.curves[2])  # R, G, B peaks
    # first value of the Canon 1DMarkIII red row in the original database text
    assert load_camspec_camera("Canon 1DMarkIII").curves[0, 0] == pytest.approx(0.0005826)
    with pytest.raises(UnknownNameError, match=r"Did you mean 'Nikon D700'.*Available: Canon 1DMarkIII"):
        load_camspec_camera("Nikon D7000")


def test_canon_and_nikon_tables(shared_data: Path) -> None:
    canon = load_canon_5d_mark_ii()
    assert canon.wavelengths[[0, -1]].tolist() == [380.0, 780.0] and canon.curves[1].max() == pytest.approx(1.0)
    nikon = load_nikon_d700()
    assert nikon.wavelengths.size == 31
    assert nikon.wavelengths[np.argmax(nikon.curves, axis=1)].tolist() == [610.0, 550.0, 460.0]
    np.testing.assert_array_equal(load_camera("canon_5d_mark_ii_rawtoaces").curves, canon.curves)
    assert load_camera("NIKON D700").name == "Nikon D700"  # the camspec one
    assert len(camera_names()) == 31
    with pytest.raises(UnknownNameError, match="ntire2022"):
        load_camera("no such camera")


def test_any_rgb_csv_loads_and_bad_tables_are_refused(tmp_path: Path) -> None:
    table = tmp_path / "sensor.csv"
    table.write_text("# my sensor\nnm,Red,Green,Blue\n500,0.1,0.8,0.3\n400,0.0,0.1,0.9\n600,0.9,0.2,0.0\n")
    camera = load_camera_csv(table)
    assert camera.name == "sensor"
    np.testing.assert_array_equal(camera.wavelengths, [400.0, 500.0, 600.0])  # sorted
    np.testing.assert_array_equal(camera.curves[:, 0], [0.0, 0.1, 0.9])
    bad = tmp_path / "bad.csv"
    bad.write_text("nm,X,Y\n400,1,2\n")
    with pytest.raises(Exception, match=r"R, G \(or G1 and G2\), B"):
        load_camera_csv(bad)
    with pytest.raises(Exception, match=r"shape \(3, 2\)"):
        CameraResponse("x", [400.0, 500.0], np.ones((2, 2)))


def test_loaders_without_shared_data_ask_for_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "shared_data_dir", lambda: None)
    with pytest.raises(DatasetNotAvailableError, match="pass path="):
        load_ntire2022_camera()
    with pytest.raises(DatasetNotAvailableError, match="HSIKIT_SHARED_DATA"):
        load_cmf()
    # the built-in tables need no data
    np.testing.assert_allclose(cube_to_srgb(flat_cube(1.0, VISIBLE), VISIBLE), 1.0, atol=1e-6)


def test_d_illuminant_file_with_another_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "D.mat"
    scipy.io.savemat(path, {"spd": np.ones((10, 2))})
    with pytest.raises(Exception, match="key 'D'"):
        load_illuminant(path)
