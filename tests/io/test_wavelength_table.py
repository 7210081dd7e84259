"""Band-centre tables: the Indian Pines CSV, the AVIRIS .spc file, and small generated tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hsikit.errors import CorruptFileError, DataFileNotFoundError, UnknownNameError
from hsikit.io import load_wavelengths, read_wavelength_table


def _csv_rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def test_indian_pines_csv_keep_column_gives_the_200_kept_bands(shared_data: Path) -> None:
    path = shared_data / "indian_pines" / "indian_pines_wavelengths.csv"
    rows = _csv_rows(path)
    kept = [r for r in rows if r["in_corrected_200"] == "1"]
    table = read_wavelength_table(path, keep_column="in_corrected_200")
    assert len(table) == len(kept) == 200
    np.testing.assert_allclose(table.centers, [float(r["center_nm"]) for r in kept])
    np.testing.assert_allclose(table.fwhm, [float(r["fwhm_nm"]) for r in kept])
    # the removed water-absorption bands (1-based 104-108, 150-163, 220) are gone
    removed = {int(r["band_1based"]) for r in rows} - {int(r["band_1based"]) for r in kept}
    assert removed == set(range(104, 109)) | set(range(150, 164)) | {220}
    np.testing.assert_array_equal(table.columns["corrected_index_0based"], np.arange(200))


def test_indian_pines_csv_without_keep_has_all_220(shared_data: Path) -> None:
    table = read_wavelength_table(shared_data / "indian_pines" / "indian_pines_wavelengths.csv")
    assert len(table) == 220
    assert table.centers[0] == pytest.approx(400.02) and table.fwhm[0] == pytest.approx(9.78)
    assert np.isnan(table.columns["corrected_index_0based"][103])  # empty field for a removed band


def test_headerless_spc_file_agrees_with_the_csv(shared_data: Path) -> None:
    spc = read_wavelength_table(shared_data / "indian_pines" / "92AV3C.spc")
    table = read_wavelength_table(shared_data / "indian_pines" / "indian_pines_wavelengths.csv")
    assert len(spc) == 220
    np.testing.assert_allclose(spc.centers, table.centers, atol=0.006)
    np.testing.assert_allclose(spc.fwhm, table.fwhm, atol=0.006)


def test_micrometre_tables_are_converted(tmp_path: Path) -> None:
    plain = tmp_path / "centres.txt"
    plain.write_text("# one centre per line, micrometres\n0.45\n0.55\n0.65\n")
    np.testing.assert_allclose(read_wavelength_table(plain).centers, [450.0, 550.0, 650.0])
    named = tmp_path / "bands.csv"
    named.write_text("band;wavelength_um;fwhm_um\n1;0.4;0.01\n2;0.5;0.02\n")
    table = read_wavelength_table(named)
    np.testing.assert_allclose(table.centers, [400.0, 500.0])
    np.testing.assert_allclose(table.fwhm, [10.0, 20.0])


def test_table_errors_name_the_file_and_line(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("400,10\n410,10\n420\n")
    with pytest.raises(CorruptFileError, match=r"ragged.csv' line 3: 1 values where earlier rows have 2"):
        read_wavelength_table(ragged)
    plain = tmp_path / "plain.csv"
    plain.write_text("400,10\n410,10\n")
    with pytest.raises(UnknownNameError, match=r"no column 'centre'; the columns are \['col0', 'col1'\]"):
        read_wavelength_table(plain, center_column="centre")
    with pytest.raises(DataFileNotFoundError, match="missing.csv"):
        read_wavelength_table(tmp_path / "missing.csv")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(CorruptFileError, match="no numeric rows"):
        read_wavelength_table(empty)


def test_load_wavelengths_accepts_arrays_tables_and_paths(tmp_path: Path) -> None:
    centres, fwhm = load_wavelengths([0.5, 0.6], unit="um")
    np.testing.assert_allclose(centres, [500.0, 600.0])
    assert fwhm is None
    path = tmp_path / "t.csv"
    path.write_text("center_nm,fwhm_nm\n500,5\n600,6\n")
    centres, fwhm = load_wavelengths(str(path))
    np.testing.assert_allclose(fwhm, [5.0, 6.0])
    assert load_wavelengths(None) == (None, None)
