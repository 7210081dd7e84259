"""Tests of the synthetic scene generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit.data import paths
from hsikit.data.synthetic import DEFAULT_WAVELENGTHS, analytic_library, make_synthetic_scene
from hsikit.errors import ConfigError, DatasetNotAvailableError, WavelengthError
from hsikit.spectral.library import load_usgs_library
from hsikit.spectral.metrics import spectral_angle


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the shared data folder, as after a plain ``pip install``."""
    monkeypatch.setattr(paths, "shared_data_dir", lambda: None)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def test_abundances_are_a_partition_of_unity_and_labels_their_argmax(shared_data: Path) -> None:
    scene = make_synthetic_scene(48, 40, n_endmembers=4, seed=3)
    assert scene.cube.shape == (DEFAULT_WAVELENGTHS.size, 48, 40) and scene.cube.dtype == np.float32
    np.testing.assert_array_equal(scene.cube.wavelengths, DEFAULT_WAVELENGTHS)
    assert scene.abundances.shape == (4, 48, 40) and scene.endmembers.shape == (4, DEFAULT_WAVELENGTHS.size)
    assert scene.abundances.min() >= 0
    np.testing.assert_allclose(scene.abundances.sum(axis=0), 1.0, atol=1e-5)
    assert scene.labels.dtype.kind == "i" and scene.labels.shape == (48, 40)
    np.testing.assert_array_equal(scene.labels, np.argmax(scene.abundances, axis=0) + 1)
    assert set(np.unique(scene.labels)) <= {1, 2, 3, 4}
    assert len(scene.endmember_names) == 4 and scene.class_names == scene.endmember_names


def test_endmembers_are_distinct_usgs_spectra(shared_data: Path) -> None:
    scene = make_synthetic_scene(16, 16, n_endmembers=6, seed=11, min_angle=0.15)
    assert scene.library_name == "usgs" and scene.cube.metadata["library"] == "usgs"
    library = load_usgs_library().resample(DEFAULT_WAVELENGTHS)
    for name, spectrum in zip(scene.endmember_names, scene.endmembers, strict=True):
        np.testing.assert_allclose(spectrum, library.spectrum(name), rtol=1e-6)
    angles = spectral_angle(scene.endmembers[:, None, :], scene.endmembers[None, :, :])
    off_diagonal = angles[~np.eye(6, dtype=bool)]
    assert off_diagonal.min() >= 0.15


def test_noise_matches_the_requested_snr(shared_data: Path) -> None:
    for snr in (20.0, 40.0):
        scene = make_synthetic_scene(64, 64, noise_snr_db=snr, seed=1)
        clean = scene.clean()
        noise = scene.cube.data.astype(np.float64) - clean
        measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))
        assert measured == pytest.approx(snr, abs=0.05)
        assert noise.std() == pytest.approx(scene.noise_std, rel=0.01)
        assert abs(noise.mean()) < 0.05 * scene.noise_std
    quiet = make_synthetic_scene(16, 16, noise_snr_db=None)
    assert quiet.noise_std == 0.0
    np.testing.assert_array_equal(quiet.cube.data, quiet.clean())


def test_abundances_are_spatially_coherent(offline: None) -> None:
    scene = make_synthetic_scene(128, 128, n_endmembers=5, seed=4, feature_size=16)
    shuffled = np.random.default_rng(0).permutation(128 * 128)
    for maps in scene.abundances:
        assert _correlation(maps[:, :-1], maps[:, 1:]) > 0.9  # horizontal neighbours
        assert _correlation(maps[:-1, :], maps[1:, :]) > 0.9  # vertical neighbours
        assert abs(_correlation(maps.ravel(), maps.ravel()[shuffled])) < 0.05  # random pairs
    # labels form regions: most pixels share the label of their right neighbour
    assert np.mean(scene.labels[:, :-1] == scene.labels[:, 1:]) > 0.9
    # every material is present and some pixels are nearly pure
    assert len(np.unique(scene.labels)) == 5 and np.mean(scene.abundances.max(axis=0) > 0.9) > 0.2


def test_same_seed_same_scene_and_different_seed_different_scene(offline: None) -> None:
    first = make_synthetic_scene(32, 24, n_endmembers=4, seed=7)
    again = make_synthetic_scene(32, 24, n_endmembers=4, seed=7)
    for name in ("abundances", "endmembers", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    np.testing.assert_array_equal(first.cube.data, again.cube.data)
    assert first.endmember_names == again.endmember_names
    other = make_synthetic_scene(32, 24, n_endmembers=4, seed=8)
    assert not np.array_equal(first.abundances, other.abundances)
    assert not np.array_equal(first.cube.data, other.cube.data)


def test_offline_fallback_uses_the_analytic_spectra(offline: None) -> None:
    scene = make_synthetic_scene(20, 20, n_endmembers=8)
    assert scene.library_name == "analytic"
    assert sorted(scene.endmember_names) == sorted(analytic_library().names)
    library = analytic_library(DEFAULT_WAVELENGTHS)
    for name, spectrum in zip(scene.endmember_names, scene.endmembers, strict=True):
        np.testing.assert_allclose(spectrum, library.spectrum(name), rtol=1e-6)
    with pytest.raises(DatasetNotAvailableError, match="HSIKIT_SHARED_DATA"):
        make_synthetic_scene(8, 8, library="usgs")


def test_analytic_spectra_are_valid_reflectances_with_their_features() -> None:
    wavelengths = np.arange(400.0, 2501.0, 5.0)
    library = analytic_library(wavelengths)
    assert np.all((library.spectra > 0) & (library.spectra < 1))
    vegetation = library.spectrum("analytic green vegetation")

    def value(nm: float) -> float:
        return float(vegetation[wavelengths == nm][0])

    assert value(850) > 5 * value(670)  # red edge
    assert value(550) > value(670) and value(550) > value(450)  # green peak
    assert value(1450) < value(1250)  # leaf water absorption
    water = library.spectrum("analytic water")
    assert water[0] > 5 * water[-1]


def test_custom_wavelengths_and_large_scenes(offline: None) -> None:
    visible = np.arange(400.0, 701.0, 10.0)
    scene = make_synthetic_scene(24, 24, wavelengths=visible, n_endmembers=5, seed=2)
    assert scene.cube.bands == 31 and scene.endmembers.shape == (5, 31)
    big = make_synthetic_scene(2048, 2048, wavelengths=[450.0, 550.0, 650.0], n_endmembers=3, feature_size=64)
    assert big.cube.shape == (3, 2048, 2048) and big.abundances.dtype == np.float32
    counts = np.bincount(big.labels.ravel(), minlength=4)
    assert counts[0] == 0 and np.all(counts[1:] > 0.05 * big.labels.size)


def test_impossible_requests_are_explained(shared_data: Path) -> None:
    with pytest.raises(ConfigError, match="n_endmembers=9"):
        make_synthetic_scene(8, 8, n_endmembers=9, library="analytic")
    with pytest.raises(WavelengthError, match="extrapolate"):
        make_synthetic_scene(8, 8, wavelengths=np.arange(300.0, 701.0, 10.0), library="usgs")
    with pytest.raises(ConfigError, match="height and width"):
        make_synthetic_scene(0, 8)
