"""Per-spectrum preprocessing (deephyp's min-max and others) and fitted band normalisers, one interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hsikit.errors import ConfigError, UnknownNameError
from hsikit.spectral.preprocess import SpectralPreprocessing, list_preprocessing_methods, preprocess_spectra


@pytest.fixture(scope="module")
def samson_spectra(shared_data: Path) -> np.ndarray:
    from hsikit.data import load_dataset

    scene = load_dataset("samson", root=shared_data, download=False, progress=False)
    return np.asarray(scene.cube.data, dtype=np.float64).reshape(scene.cube.bands, -1).T[::7]  # (N, 156)


def test_deephyp_minmax_is_reproduced_exactly(samson_spectra: np.ndarray) -> None:
    result = preprocess_spectra(samson_spectra, "deephyp_minmax")
    for row in (0, 100, 500):
        x = samson_spectra[row]
        expected = (x - (x.min() - 1e-3)) / x.max()  # deephyp data.py: divides by max, not max - min
        np.testing.assert_allclose(result[row], expected, rtol=1e-12)
    minimum = result.min(axis=1)
    np.testing.assert_allclose(minimum, 1e-3 / samson_spectra.max(axis=1), rtol=1e-9)
    # not [0, 1]: the top is (max - min + 1e-3) / max, below 1 whenever min > 1e-3
    low, high = samson_spectra.min(axis=1), samson_spectra.max(axis=1)
    np.testing.assert_allclose(result.max(axis=1), (high - low + 1e-3) / high, rtol=1e-9)


def test_other_per_spectrum_methods(samson_spectra: np.ndarray) -> None:
    scaled = preprocess_spectra(samson_spectra.astype(np.float32), "spectrum_minmax")
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.min(axis=1), 0.0, atol=1e-7)
    np.testing.assert_allclose(scaled.max(axis=1), 1.0, atol=1e-6)
    unit = preprocess_spectra(samson_spectra, "spectrum_l2")
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-12)
    # the band axis can be anywhere: a (B, H, W) cube gives the same numbers pixel by pixel
    cube = samson_spectra[:12].T.reshape(-1, 3, 4)
    per_pixel = preprocess_spectra(cube, "deephyp_minmax", band_axis=0).reshape(samson_spectra.shape[1], -1).T
    np.testing.assert_allclose(per_pixel, preprocess_spectra(samson_spectra[:12], "deephyp_minmax"))


def test_torch_and_numpy_agree(samson_spectra: np.ndarray) -> None:
    for method in ("deephyp_minmax", "spectrum_minmax", "spectrum_l2"):
        expected = preprocess_spectra(samson_spectra, method)
        actual = preprocess_spectra(torch.from_numpy(samson_spectra), method).numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


def test_band_normaliser_is_fitted_on_the_given_pixels_and_round_trips(samson_spectra: np.ndarray) -> None:
    preprocessing = SpectralPreprocessing("standardize").fit_spectra(samson_spectra[:300])
    out = preprocessing.transform(samson_spectra[:300], band_axis=1)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-4)
    restored = SpectralPreprocessing.from_dict(preprocessing.to_dict())
    np.testing.assert_array_equal(restored.transform(samson_spectra, band_axis=1),
                                  preprocessing.transform(samson_spectra, band_axis=1))
    per_spectrum = SpectralPreprocessing.from_dict(SpectralPreprocessing("deephyp_minmax").to_dict())
    assert per_spectrum.per_spectrum and per_spectrum.method == "deephyp_minmax"


def test_names_and_states_are_checked() -> None:
    assert {"deephyp_minmax", "standardize", "minmax"} <= set(list_preprocessing_methods())
    with pytest.raises(UnknownNameError, match="deephyp_minmax reproduces deephyp"):
        SpectralPreprocessing("min_max")
    with pytest.raises(ConfigError, match="takes no options"):
        SpectralPreprocessing("spectrum_l2", scale=2)
    with pytest.raises(ConfigError, match="not a spectral preprocessing state"):
        SpectralPreprocessing.from_dict({"method": "standardize"})
    with pytest.raises(ConfigError, match="not fitted"):
        SpectralPreprocessing("standardize").transform(np.ones((2, 3)), band_axis=1)
