"""Tests of band resampling by Gaussian spectral response and by linear interpolation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from hsikit import Cube
from hsikit.errors import ShapeMismatchError, WavelengthError
from hsikit.spectral.resample import (
    FWHM_TO_SIGMA,
    default_fwhm,
    linear_interpolation_matrix,
    resample,
    spectral_coverage,
    spectral_response_matrix,
)

TARGET_VISIBLE = np.arange(400.0, 701.0, 10.0)  # 31 bands


@pytest.fixture(scope="module")
def aviris_bands(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Centres and FWHM (nm) of the 200 bands kept in Indian_pines_corrected (file order)."""
    table = np.genfromtxt(shared_data / "indian_pines" / "indian_pines_wavelengths.csv", delimiter=",", skip_header=2)
    kept = table[:, 6] == 1
    return table[kept, 1], table[kept, 2]


@pytest.fixture(scope="module")
def indian_pines(shared_data: Path, aviris_bands: tuple[np.ndarray, np.ndarray]) -> Cube:
    centres, widths = aviris_bands
    data = np.load(shared_data / "indian_pines" / "Indian_pines_corrected.npy", mmap_mode="r")
    return Cube.from_hwc(
        data,
        wavelengths=centres,
        fwhm=widths,
        crs="EPSG:32616",
        transform=Affine(20.0, 0.0, 600000.0, 0.0, -20.0, 4500000.0),
        metadata={"source": "Indian_pines_corrected.npy"},
    )


def _piecewise_linear(x: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation through sorted knots, continued linearly beyond both ends."""
    inside = np.interp(x, knots, values)
    left_slope = (values[1] - values[0]) / (knots[1] - knots[0])
    right_slope = (values[-1] - values[-2]) / (knots[-1] - knots[-2])
    inside = np.where(x < knots[0], values[0] + (x - knots[0]) * left_slope, inside)
    return np.where(x > knots[-1], values[-1] + (x - knots[-1]) * right_slope, inside)


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_constant_and_linear_spectra_are_preserved_on_the_aviris_grid(
    method: str, aviris_bands: tuple[np.ndarray, np.ndarray]
) -> None:
    centres, widths = aviris_bands  # unsorted: the AVIRIS spectrometers overlap
    assert np.any(np.diff(centres) < 0)
    targets = np.concatenate([TARGET_VISIBLE, np.arange(705.0, 2490.0, 15.0)])
    spectra = np.stack([np.full_like(centres, 0.37), 0.05 + 2e-4 * centres, 1.3 - 4e-4 * centres])  # (3, S)
    result = resample(spectra, targets, source_wavelengths=centres, source_fwhm=widths, method=method, axis=-1)
    expected = np.stack([np.full_like(targets, 0.37), 0.05 + 2e-4 * targets, 1.3 - 4e-4 * targets])
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


def test_matrix_rows_sum_to_one_and_have_the_target_centre_as_first_moment() -> None:
    source = np.sort(np.random.default_rng(3).uniform(380, 1020, 90))
    targets = np.arange(400.0, 1001.0, 7.0)
    matrix = spectral_response_matrix(source, targets, 12.0)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(matrix @ source, targets, atol=1e-9)


def test_gaussian_weights_equal_a_brute_force_integral(indian_pines: Cube) -> None:
    """The closed-form weights against a 0.005 nm numerical integral of the interpolated spectrum."""
    spectrum = np.asarray(indian_pines.data[:, 70, 80], dtype=np.float64)
    order = np.argsort(indian_pines.wavelengths)
    knots, values = indian_pines.wavelengths[order], spectrum[order]
    sigma = 10.0 * FWHM_TO_SIGMA
    result = resample(
        spectrum, TARGET_VISIBLE, 10.0, source_wavelengths=indian_pines.wavelengths, subtract_source_fwhm=False
    )
    for centre, value in zip(TARGET_VISIBLE, result, strict=True):
        x = np.arange(centre - 8 * sigma, centre + 8 * sigma, 0.005)
        weight = np.exp(-0.5 * ((x - centre) / sigma) ** 2)
        expected = np.sum(weight * _piecewise_linear(x, knots, values)) / np.sum(weight)
        assert value == pytest.approx(expected, rel=1e-6)


def test_narrow_absorption_feature_lands_in_the_right_band_with_the_convolved_depth() -> None:
    source = np.arange(380.0, 760.0, 0.5)
    feature_sigma, feature_centre, depth = 2.0, 553.0, 0.5
    spectrum = 1.0 - depth * np.exp(-0.5 * ((source - feature_centre) / feature_sigma) ** 2)
    result = resample(spectrum, TARGET_VISIBLE, 10.0, source_wavelengths=source)
    assert TARGET_VISIBLE[np.argmin(result)] == 550.0
    # a Gaussian dip convolved with the unit-area Gaussian SRF is a Gaussian dip of variance s_f^2 + s_t^2
    variance = feature_sigma**2 + (10.0 * FWHM_TO_SIGMA) ** 2
    expected = 1.0 - depth * feature_sigma / math.sqrt(variance) * np.exp(
        -0.5 * (TARGET_VISIBLE - feature_centre) ** 2 / variance
    )
    np.testing.assert_allclose(result, expected, atol=2e-4)
    moved = resample(
        1.0 - depth * np.exp(-0.5 * ((source - 557.0) / 2.0) ** 2), TARGET_VISIBLE, source_wavelengths=source
    )
    assert TARGET_VISIBLE[np.argmin(moved)] == 560.0
    linear = resample(spectrum, TARGET_VISIBLE, source_wavelengths=source, method="linear")
    np.testing.assert_allclose(linear, np.interp(TARGET_VISIBLE, source, spectrum), atol=1e-12)


def test_source_fwhm_is_subtracted_in_quadrature() -> None:
    source = np.arange(400.0, 800.0, 1.0)
    spectrum = np.exp(-0.5 * ((source - 600.0) / 3.0) ** 2)
    wide = resample(spectrum, [600.0], 10.0, source_wavelengths=source, source_fwhm=np.full(source.size, 6.0))
    direct = resample(spectrum, [600.0], 8.0, source_wavelengths=source, subtract_source_fwhm=False)
    np.testing.assert_allclose(wide, direct, rtol=1e-12)  # sqrt(10^2 - 6^2) = 8


# ------------------------------------------------------------------ real cube
def test_indian_pines_to_31_visible_bands(indian_pines: Cube) -> None:
    result = resample(indian_pines, TARGET_VISIBLE)
    assert result.shape == (31, 145, 145) and result.dtype == np.float32
    np.testing.assert_array_equal(result.wavelengths, TARGET_VISIBLE)
    np.testing.assert_allclose(result.fwhm, 10.0)
    assert result.crs == indian_pines.crs and result.transform == indian_pines.transform
    assert result.metadata["source"] == "Indian_pines_corrected.npy"
    assert result.metadata["spectral_resampling"]["source_bands"] == 200

    linear = resample(indian_pines, TARGET_VISIBLE, method="linear").data
    relative = np.abs(result.data - linear) / linear
    assert np.median(relative) < 1e-3 and np.percentile(relative, 99) < 0.02
    # without the source-width correction the bands are wider (~14 nm) but still close for smooth spectra
    wider = resample(indian_pines, TARGET_VISIBLE, subtract_source_fwhm=False).data
    relative = np.abs(wider - linear) / linear
    assert np.median(relative) < 0.01 and np.percentile(relative, 90) < 0.03


def test_chunking_and_memory_maps_give_the_same_result(indian_pines: Cube) -> None:
    assert isinstance(indian_pines.data.base, np.memmap) or isinstance(indian_pines.data, np.memmap)
    whole = resample(indian_pines, TARGET_VISIBLE, chunk_rows=1000).data
    in_memory = resample(indian_pines.replace(data=np.array(indian_pines.data)), TARGET_VISIBLE, chunk_rows=7).data
    np.testing.assert_allclose(in_memory, whole, rtol=1e-6)


def test_target_outside_coverage_is_refused_with_both_ranges(
    indian_pines: Cube, aviris_bands: tuple[np.ndarray, np.ndarray]
) -> None:
    centres, widths = aviris_bands
    low = centres.min() - widths[np.argmin(centres)] / 2  # 400.02 - 9.78 / 2
    assert spectral_coverage(centres, widths)[0] == pytest.approx(low)
    with pytest.raises(WavelengthError, match=rf"380..390 nm .*coverage {low:.2f}\.\..*extrapolate=True"):
        resample(indian_pines, np.arange(380.0, 701.0, 10.0))
    extended = resample(indian_pines[:, :4, :4], np.arange(380.0, 701.0, 10.0), extrapolate=True)
    assert extended.shape == (33, 4, 4) and np.isfinite(extended.data).all()


def test_nodata_pixels_keep_their_fill_value_and_mask(rng: np.random.Generator) -> None:
    data = rng.random((20, 6, 5)).astype(np.float32)
    data[:, 2, 3] = -9999.0
    cube = Cube(data, wavelengths=np.linspace(400, 780, 20), nodata=-9999.0)
    result = resample(cube, np.arange(410.0, 771.0, 20.0))
    assert np.all(result.data[:, 2, 3] == -9999.0)
    assert result.nodata_mask[2, 3] and result.nodata_mask.sum() == 1


# ------------------------------------------------------------------ helpers and errors
def test_linear_interpolation_matrix_outside_policies() -> None:
    source, values = np.array([500.0, 400.0, 600.0]), np.array([2.0, 1.0, 4.0])  # unsorted on purpose
    query = np.array([350.0, 450.0, 550.0, 650.0])
    np.testing.assert_allclose(
        linear_interpolation_matrix(source, query, outside="linear") @ values, [0.5, 1.5, 3.0, 5.0]
    )
    np.testing.assert_allclose(
        linear_interpolation_matrix(source, query, outside="nearest") @ values, [1.0, 1.5, 3.0, 4.0]
    )
    np.testing.assert_allclose(
        linear_interpolation_matrix(source, query, outside="zero") @ values, [0.0, 1.5, 3.0, 0.0]
    )
    # a repeated centre is averaged
    repeated = linear_interpolation_matrix([400.0, 500.0, 500.0], [500.0]) @ np.array([0.0, 1.0, 3.0])
    assert repeated[0] == pytest.approx(2.0)


def test_default_fwhm_is_the_local_spacing() -> None:
    np.testing.assert_allclose(default_fwhm([400.0, 410.0, 430.0, 460.0]), [10.0, 15.0, 25.0, 30.0])
    with pytest.raises(WavelengthError, match="target_fwhm"):
        default_fwhm([550.0])


def test_bad_inputs_are_explained(rng: np.random.Generator) -> None:
    with pytest.raises(WavelengthError, match="micrometres"):
        spectral_response_matrix([400.0, 500.0, 600.0], [0.45, 0.55])
    with pytest.raises(WavelengthError, match="source_wavelengths"):
        resample(rng.random((3, 2, 2)), [450.0])
    with pytest.raises(ShapeMismatchError, match="has 3 values but the wavelength grid has 4"):
        resample(rng.random((3, 2, 2)), [450.0, 460.0], source_wavelengths=[400, 450, 500, 550])
    with pytest.raises(WavelengthError, match="no band wavelengths"):
        resample(Cube(rng.random((3, 2, 2))), [450.0, 460.0])
