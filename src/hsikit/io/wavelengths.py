"""Band-centre tables: CSV or plain-text files listing the wavelength (and FWHM) of each band.

Sensors ship their band list as a small table: AVIRIS ``.spc`` files
(whitespace separated: centre, FWHM, ...), CSV files with a header row
(``band,center_nm,fwhm_nm,...``) or a single column of centres.
:func:`read_wavelength_table` reads all of them; :func:`load_wavelengths` turns
the ``wavelengths=`` argument of :func:`hsikit.io.open_cube` (an array, a table
or a path) into centres and widths in nanometres.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hsikit.cube import as_wavelengths_nm
from hsikit.errors import CorruptFileError, DataFileNotFoundError, UnknownNameError

_CENTER_NAMES = ("center", "centre", "wavelength", "lambda", "wl")
_FWHM_NAMES = ("fwhm", "bandwidth", "width")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.IGNORECASE)


@dataclass(frozen=True)
class WavelengthTable:
    """Band centres read from a table file.

    Attributes:
        centers: band centres in nm, shape ``(bands,)``.
        fwhm: band widths in nm, shape ``(bands,)``, or None when the table has none.
        columns: every column of the table (after ``keep_column`` filtering), by header
            name (or ``"col0"``, ``"col1"``... when there is no header), shape ``(bands,)`` each.
        source: the file read.
    """

    centers: np.ndarray
    fwhm: np.ndarray | None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return int(self.centers.size)


def read_wavelength_table(
    path: str | os.PathLike,
    *,
    center_column: str | int | None = None,
    fwhm_column: str | int | Literal[False] | None = None,
    keep_column: str | int | None = None,
    unit: str = "auto",
) -> WavelengthTable:
    """Read band centres (and FWHM) from a CSV / whitespace-separated text file.

    Lines starting with ``#`` are comments. Leading lines that are not numbers
    are skipped; the last of them is taken as the header row when it has as many
    fields as the data rows.

    Args:
        path: the table file.
        center_column: header name or 0-based index of the centre column. Default:
            the first column whose name contains "center"/"centre"/"wavelength"/"lambda"
            (not "fwhm"), else column 0.
        fwhm_column: name or index of the FWHM column; default: the first column named
            like "fwhm"/"bandwidth"/"width", else column 1 of a header-less table with
            two or more columns; ``False`` for none.
        keep_column: name or index of a 0/1 flag column; only rows with a non-zero
            flag are returned (e.g. ``"in_corrected_200"`` for the 200 bands kept in
            the corrected Indian Pines cube).
        unit: ``"nm"``, ``"um"`` or ``"auto"``: a column name ending in ``_nm``/``_um``
            decides, else micrometres when every centre is below 20.

    Returns:
        A :class:`WavelengthTable` with centres/FWHM in nm, shape ``(bands,)``.

    Raises:
        DataFileNotFoundError: ``path`` does not exist.
        CorruptFileError: no numeric rows, or rows of different lengths.
        UnknownNameError: a named column is not in the header.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(path, "Give the CSV/text file listing one band centre (nm) per row.")
    header, rows = _parse_rows(path)
    names = header if header is not None else [f"col{i}" for i in range(len(rows[0]))]
    table = np.asarray(rows, dtype=np.float64)
    columns = {name: table[:, i] for i, name in enumerate(names)}

    if keep_column is not None:
        keep_index = _column_index(keep_column, names, path)
        keep = table[:, keep_index] != 0
        if not keep.any():
            raise CorruptFileError(f"'{path}': keep_column {keep_column!r} flags no band (all zero)")
        table = table[keep]
        columns = {name: values[keep] for name, values in columns.items()}

    center_index = (
        _column_index(center_column, names, path)
        if center_column is not None
        else _find_column(names, _CENTER_NAMES, exclude=_FWHM_NAMES) or 0
    )
    fwhm_index: int | None
    if fwhm_column is False:
        fwhm_index = None
    elif fwhm_column is not None:
        fwhm_index = _column_index(fwhm_column, names, path)
    else:
        fwhm_index = _find_column(names, _FWHM_NAMES)
        if fwhm_index is None and header is None and table.shape[1] >= 2 and center_index == 0:
            fwhm_index = 1

    center_unit = _unit_from_name(names[center_index], unit)
    if center_unit == "auto":
        center_unit = "um" if np.nanmax(table[:, center_index]) < 20 else "nm"
    centers = as_wavelengths_nm(table[:, center_index], center_unit)
    fwhm = None
    if fwhm_index is not None:
        fwhm_unit = _unit_from_name(names[fwhm_index], unit)
        fwhm = as_wavelengths_nm(table[:, fwhm_index], center_unit if fwhm_unit == "auto" else fwhm_unit)
    assert centers is not None
    return WavelengthTable(centers=centers, fwhm=fwhm, columns=columns, source=str(path))


def load_wavelengths(
    wavelengths: Sequence[float] | np.ndarray | WavelengthTable | str | os.PathLike | None,
    unit: str = "nm",
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Normalise a ``wavelengths=`` argument to ``(centres_nm, fwhm_nm or None)``.

    Accepts None, a sequence/array of centres (in ``unit``), a
    :class:`WavelengthTable`, or the path of a table file (read with
    :func:`read_wavelength_table` and its defaults; the table's own unit rule applies).
    """
    if wavelengths is None:
        return None, None
    if isinstance(wavelengths, WavelengthTable):
        return wavelengths.centers, wavelengths.fwhm
    if isinstance(wavelengths, (str, os.PathLike)):
        table = read_wavelength_table(wavelengths, unit="auto" if unit == "nm" else unit)
        return table.centers, table.fwhm
    return as_wavelengths_nm(wavelengths, unit), None


# ---------------------------------------------------------------------- parsing
def _split(line: str) -> list[str]:
    """Fields of a line; an empty field between separators (a missing value) becomes "nan"."""
    for separator in (",", ";", "\t"):
        if separator in line:
            return [part.strip() or "nan" for part in line.split(separator)]
    return line.split()


def _is_numeric_row(fields: list[str]) -> bool:
    return bool(fields) and all(_NUMBER.match(value) for value in fields)


def _parse_rows(path: Path) -> tuple[list[str] | None, list[list[float]]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise CorruptFileError(f"'{path}': cannot read the wavelength table ({error})") from error
    preamble: list[list[str]] = []
    rows: list[list[float]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = _split(line)
        if _is_numeric_row(fields):
            if rows and len(fields) != len(rows[0]):
                raise CorruptFileError(
                    f"'{path}' line {number}: {len(fields)} values where earlier rows have {len(rows[0])}; "
                    "every row of a wavelength table needs the same columns"
                )
            rows.append([float(value) for value in fields])
        elif rows:
            raise CorruptFileError(f"'{path}' line {number}: {raw!r} is not a row of numbers")
        else:
            preamble.append(fields)
    if not rows:
        raise CorruptFileError(f"'{path}': no numeric rows found; expected one band centre (nm) per line")
    header = preamble[-1] if preamble and len(preamble[-1]) == len(rows[0]) else None
    return header, rows


def _find_column(names: list[str], wanted: tuple[str, ...], exclude: tuple[str, ...] = ()) -> int | None:
    for index, name in enumerate(names):
        lowered = name.lower()
        if any(token in lowered for token in exclude):
            continue
        if any(token in lowered for token in wanted):
            return index
    return None


def _column_index(column: Any, names: list[str], path: Path) -> int:
    if isinstance(column, (int, np.integer)):
        if not 0 <= int(column) < len(names):
            raise UnknownNameError(f"'{path}': column index {column} outside the table's {len(names)} columns")
        return int(column)
    lowered = [name.lower() for name in names]
    if str(column).lower() not in lowered:
        raise UnknownNameError(f"'{path}': no column {column!r}; the columns are {names}")
    return lowered.index(str(column).lower())


def _unit_from_name(name: str, unit: str) -> str:
    if unit != "auto":
        return unit
    lowered = name.lower()
    if lowered.endswith(("_nm", "(nm)", "[nm]", " nm")):
        return "nm"
    if lowered.endswith(("_um", "(um)", "[um]", " um", "_micrometers", "(µm)")):
        return "um"
    return "auto"
