"""Tests of the spectral library: the USGS 1995 reader, selection, gaps and resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hsikit.data import paths
from hsikit.errors import (
    DataFileNotFoundError,
    DatasetNotAvailableError,
    MatKeyError,
    UnknownNameError,
    WavelengthError,
)
from hsikit.spectral.library import SpectralLibrary, load_usgs_library
from hsikit.spectral.resample import resample

NO_DATA = -1.23e34


@pytest.fixture(scope="module")
def usgs(shared_data: Path) -> SpectralLibrary:
    return load_usgs_library(shared_data / "usgs" / "USGS_1995_Library.mat")


@pytest.fixture(scope="module")
def raw_datalib(shared_data: Path) -> np.ndarray:
    return scipy.io.loadmat(shared_data / "usgs" / "USGS_1995_Library.mat")["datalib"]


def _char_rows(names: list[str], width: int = 29) -> np.ndarray:
    return np.array([list(name.ljust(width).encode("latin-1")) for name in names], dtype=np.uint8)


def test_usgs_library_layout(usgs: SpectralLibrary, raw_datalib: np.ndarray) -> None:
    assert len(usgs) == 498 and usgs.spectra.shape == (498, 224)
    assert usgs.names[0] == "Acmite NMNH133746" and usgs.names[-1] == "Walnut_Leaf SUN (Green)"
    np.testing.assert_allclose(usgs.wavelengths, raw_datalib[:, 0] * 1000.0)  # micrometres -> nm
    assert usgs.wavelengths.min() == pytest.approx(383.15, abs=0.01)
    assert usgs.wavelengths.max() == pytest.approx(2508.2, abs=0.01)
    np.testing.assert_allclose(usgs.fwhm, raw_datalib[:, 1] * 1000.0)
    # spectrum i is column 3 + i of datalib
    np.testing.assert_array_equal(usgs.spectra[0], raw_datalib[:, 3])
    np.testing.assert_array_equal(usgs.spectra[250], raw_datalib[:, 253])
    assert np.isfinite(usgs.spectra).all() and usgs.spectra.min() > 0 and usgs.spectra.max() < 1.1
    assert not usgs.spectra.flags.writeable  # cached and shared


def test_select_by_substring_and_exact_name(usgs: SpectralLibrary) -> None:
    kaolinite = usgs.select("KAOLINITE")
    assert len(kaolinite) >= 8 and all("kaolinite" in name.lower() for name in kaolinite.names)
    both = usgs.select(["Alunite", "Calcite"])
    assert {name.split()[0] for name in both.names} >= {"Alunite", "Calcite"}
    assert len(usgs.select("Kaolinite", case_sensitive=True)) == len(kaolinite)
    index = usgs.names.index("Kaolinite CM9")
    np.testing.assert_array_equal(usgs.spectrum("kaolinite cm9"), usgs.spectra[index])
    with pytest.raises(UnknownNameError, match="Kaolinite CM9"):
        usgs.spectrum("Kaolinite")  # not exact: the message lists the names containing it
    with pytest.raises(UnknownNameError, match="close names"):
        usgs.select("Kaolinitte CM9")


def test_resample_to_a_regular_grid(usgs: SpectralLibrary) -> None:
    grid = np.arange(400.0, 2501.0, 10.0)
    resampled = usgs.resample(grid)
    assert resampled.spectra.shape == (498, 211) and np.isfinite(resampled.spectra).all()
    np.testing.assert_allclose(resampled.fwhm, 10.0)
    # the same numbers as resampling the (N, B) array directly
    direct = resample(usgs.spectra, grid, source_wavelengths=usgs.wavelengths, source_fwhm=usgs.fwhm, axis=-1)
    np.testing.assert_allclose(resampled.spectra, direct, rtol=1e-12)
    # for these ~10 nm bands the 10 nm Gaussian is close to linear interpolation
    linear = usgs.resample(grid, method="linear").spectra
    assert np.median(np.abs(resampled.spectra - linear)) < 2e-3
    with pytest.raises(WavelengthError, match=r"350\.\.370 nm"):
        usgs.resample(np.arange(350.0, 700.0, 10.0))


def test_gaps_are_dropped_or_kept_as_nan() -> None:
    wavelengths = np.arange(400.0, 1000.0, 20.0)  # 30 bands
    spectra = np.stack([0.1 + wavelengths * 1e-4, 0.5 - wavelengths * 1e-4, np.full(30, 0.3)])
    spectra[1, 10:13] = np.nan  # 600, 620, 640 nm missing
    library = SpectralLibrary(("rising", "falling with gap", "flat"), wavelengths, spectra)
    np.testing.assert_array_equal(library.gap_mask(), [False, True, False])
    assert library.without_gaps().names == ("rising", "flat")
    assert library.without_gaps(400, 590).names == library.names  # the gap lies outside 400-590 nm
    grid = np.arange(410.0, 981.0, 10.0)
    resampled = library.resample(grid, 20.0, method="linear")
    missing = grid[np.isnan(resampled.spectra[1])]
    np.testing.assert_array_equal(missing, np.arange(590.0, 651.0, 10.0))  # bracketed by a missing band
    valid = ~np.isnan(resampled.spectra[1])
    np.testing.assert_allclose(resampled.spectra[1, valid], 0.5 - grid[valid] * 1e-4, rtol=1e-12)
    np.testing.assert_allclose(resampled.spectra[0], 0.1 + grid * 1e-4, rtol=1e-12)


def test_a_generated_usgs_file_with_no_data_values(tmp_path: Path) -> None:
    bands = 6
    datalib = np.zeros((bands, 5))
    datalib[:, 0] = np.linspace(0.4, 0.9, bands)  # micrometres
    datalib[:, 1] = 0.01
    datalib[:, 2] = np.arange(1, bands + 1)
    datalib[:, 3] = np.linspace(0.2, 0.3, bands)
    datalib[:, 4] = 0.4
    datalib[4:, 4] = NO_DATA
    path = tmp_path / "lib.mat"
    names = ["Wavelengths in microns", "Resolution in microns", "channel", "Mineral A", "Mineral B"]
    scipy.io.savemat(path, {"datalib": datalib, "names": _char_rows(names)})
    library = load_usgs_library(path)
    assert library.names == ("Mineral A", "Mineral B")
    np.testing.assert_allclose(library.wavelengths, np.linspace(400.0, 900.0, bands))
    np.testing.assert_allclose(library.fwhm, 10.0)
    assert np.isnan(library.spectra[1, 4:]).all() and np.isfinite(library.spectra[1, :4]).all()
    assert library.without_gaps().names == ("Mineral A",)
    assert library.without_gaps(400, 650).names == ("Mineral A", "Mineral B")


def test_missing_or_wrong_files_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataFileNotFoundError, match=r"USGS_1995_Library\.mat"):
        load_usgs_library(tmp_path / "absent.mat")
    wrong = tmp_path / "wrong.mat"
    scipy.io.savemat(wrong, {"spectra": np.ones((3, 3))})
    with pytest.raises(MatKeyError, match="'datalib' and 'names'"):
        load_usgs_library(wrong)
    monkeypatch.setattr(paths, "shared_data_dir", lambda: None)
    with pytest.raises(DatasetNotAvailableError, match="pass path="):
        load_usgs_library()
