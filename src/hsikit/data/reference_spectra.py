"""Matrices of reference spectra: the SSMGNet default, loading from ``.npy`` / ``.csv``, validation.

A *reference matrix* ``A`` has shape ``(bands, references)``: row ``k`` is band ``k`` and
**column** ``i`` is the reference spectrum of material ``i``, on the same radiometric
scale as the images it is compared with (reflectance 0–1 for the glacier tiles). It is
what the spectral-similarity attention supervision of SSMGNet
(:mod:`hsikit.losses.attention`) measures every pixel against.

Files store the matrix with an explicit ``layout``: ``"bands_by_references"`` (the
reference's convention, one column per spectrum) or ``"references_by_bands"`` (one row
per spectrum, as spectral-library exports usually are). Nothing is guessed from the shape.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Literal

import numpy as np

from hsikit.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    ReferenceMatrixError,
    ShapeMismatchError,
    UnsupportedFormatError,
)

ReferenceLayout = Literal["bands_by_references", "references_by_bands"]
REFERENCE_LAYOUTS: tuple[str, ...] = ("bands_by_references", "references_by_bands")
REFERENCE_FILE_EXTENSIONS: tuple[str, ...] = (".npy", ".csv", ".txt")

# The 10 × 10 matrix ``ill_cond_A`` of SSMGNet's train.py: rows are bands 1..10, columns are
# references 1..10 (reflectance). The values are data, reproduced as published.
_GLACIER_ROWS: tuple[tuple[float, ...], ...] = (
    (0.025108, 0.044775, 0.022713, 0.054517, 0.024255, 0.263413, 0.897558, 0.083041, 0.051523, 0.447467),
    (0.039021, 0.065726, 0.041806, 0.077207, 0.041771, 0.281572, 0.906344, 0.111226, 0.092698, 0.477236),
    (0.069077, 0.102917, 0.077322, 0.119946, 0.078582, 0.304236, 0.903852, 0.165515, 0.191769, 0.511057),
    (0.082601, 0.113206, 0.087972, 0.137899, 0.092967, 0.302216, 0.902451, 0.182020, 0.192265, 0.536082),
    (0.111036, 0.139278, 0.096018, 0.146704, 0.098742, 0.231165, 0.737299, 0.199735, 0.150488, 0.497987),
    (0.110326, 0.150545, 0.140082, 0.204880, 0.116332, 0.008532, 0.030921, 0.263537, 0.018009, 0.012086),
    (0.090256, 0.125565, 0.124102, 0.174439, 0.098414, 0.008140, 0.032178, 0.232524, 0.019361, 0.012560),
    (0.608871, 0.597479, 0.526987, 0.498610, 0.533335, 0.625007, 0.691949, 0.537595, 0.603780, 0.654422),
    (0.119021, 0.078705, 0.108357, 0.080463, 0.103712, 0.094274, 0.061560, 0.273285, 0.064751, 0.119046),
    (0.390516, 0.407727, 0.355867, 0.367505, 0.403623, 0.972147, 0.967130, 0.385322, 0.894642, 0.976719),
)


def glacier_reference_matrix() -> np.ndarray:
    """The default SSMGNet reference matrix, a fresh ``(10 bands, 10 references)`` float64 array."""
    return np.array(_GLACIER_ROWS, dtype=np.float64)


def validate_reference_matrix(
    matrix: np.ndarray | object,
    *,
    bands: int | None = None,
    source: str | os.PathLike | None = None,
) -> np.ndarray:
    """Check a reference matrix and return it as a float64 ``(bands, references)`` array.

    Args:
        matrix: array-like of shape ``(bands, references)`` (a torch tensor is accepted).
        bands: the band count of the images it will be compared with (None: not checked).
        source: where the matrix came from (a file name), used in messages.

    Raises:
        ReferenceMatrixError: not 2-D, fewer than 2 references, or NaN/Inf values.
        ShapeMismatchError: its number of rows differs from ``bands``.
    """
    where = "reference matrix" if source is None else f"reference matrix '{source}'"
    if hasattr(matrix, "detach"):  # torch tensor
        matrix = matrix.detach().cpu().numpy()  # type: ignore[union-attr]
    try:
        array = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ReferenceMatrixError(f"{where} is not a numeric array ({error}); give a 2-D array of numbers") from None
    if array.ndim != 2:
        raise ReferenceMatrixError(
            f"{where} has shape {array.shape}; it must be 2-D (bands, references), one reference spectrum per column"
        )
    n_bands, n_references = array.shape
    if n_bands < 1 or n_references < 2:
        raise ReferenceMatrixError(
            f"{where} has shape {array.shape}: at least 1 band and 2 reference spectra (columns) are needed, "
            "because each reference's threshold is its distance to the nearest other reference"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        rows, cols = np.nonzero(bad)
        cells = ", ".join(f"(band {r}, reference {c})" for r, c in zip(rows[:5], cols[:5]))
        more = f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""
        raise ReferenceMatrixError(
            f"{where} holds NaN/Inf at {cells}{more}; fill those values (every reference needs a full spectrum)"
        )
    if bands is not None and n_bands != bands:
        hint = (
            " It has that many references: if the file stores one spectrum per row, load it with "
            "layout='references_by_bands'."
            if n_references == bands
            else " Use a matrix measured on the same bands as the images."
        )
        raise ShapeMismatchError(
            f"{where} has {n_bands} bands (rows) but the images have {bands} bands.{hint}"
        )
    return array


def load_reference_matrix(
    path: str | os.PathLike,
    layout: ReferenceLayout = "bands_by_references",
    *,
    bands: int | None = None,
) -> np.ndarray:
    """Read a reference matrix from a ``.npy`` or ``.csv`` / ``.txt`` file.

    CSV/text files hold one matrix row per line, values separated by commas or white
    space; lines starting with ``#`` are comments and a first line that is not numeric
    (column names) is skipped.

    Args:
        path: the file.
        layout: ``"bands_by_references"`` (one reference spectrum per column, SSMGNet's
            convention) or ``"references_by_bands"`` (one spectrum per row; transposed on load).
        bands: expected band count of the images (None: not checked).

    Returns:
        float64 array ``(bands, references)``.

    Raises:
        DataFileNotFoundError, UnsupportedFormatError, CorruptFileError: file problems.
        ReferenceMatrixError, ShapeMismatchError: see :func:`validate_reference_matrix`.
    """
    if layout not in REFERENCE_LAYOUTS:
        raise ReferenceMatrixError(
            f"unknown reference matrix layout {layout!r}; use 'bands_by_references' (one spectrum per column) "
            "or 'references_by_bands' (one spectrum per row)"
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataFileNotFoundError(file, "give a .npy or .csv file holding the reference spectra")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise CorruptFileError(f"{_describe(file)} is not a readable .npy array ({error}); re-save it with numpy.save") from None
    elif suffix in (".csv", ".txt"):
        array = _read_delimited(file)
    else:
        raise UnsupportedFormatError(
            f"{_describe(file)}: reference matrices are read from {', '.join(REFERENCE_FILE_EXTENSIONS)} files, "
            f"not '{suffix or '(no extension)'}'; convert it (e.g. numpy.save or a CSV export)"
        )
    if np.ndim(array) == 2 and layout == "references_by_bands":
        array = np.asarray(array).T
    return validate_reference_matrix(array, bands=bands, source=file)


def _read_delimited(file: Path) -> np.ndarray:
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"{_describe(file)} cannot be read as text ({error}); give a UTF-8 CSV file") from None
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    rows: list[list[str]] = []
    for line in lines:
        if "," in line or ";" in line:
            cells = next(csv.reader([line], delimiter="," if "," in line else ";"))
        else:
            cells = line.split()
        rows.append([cell.strip() for cell in cells if cell.strip() != ""])
    if rows and not _is_numeric_row(rows[0]):
        rows = rows[1:]  # a header row of reference names
    if not rows:
        raise CorruptFileError(f"{_describe(file)} holds no numeric rows; write one matrix row per line")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise CorruptFileError(
            f"{_describe(file)} has rows of different lengths {sorted(widths)}; every row needs one value per column"
        )
    values = np.empty((len(rows), widths.pop()), dtype=np.float64)
    for row_index, row in enumerate(rows):
        for col_index, cell in enumerate(row):
            try:
                values[row_index, col_index] = float(cell)
            except ValueError:
                raise CorruptFileError(
                    f"{_describe(file)}: value {cell!r} in data row {row_index + 1}, column {col_index + 1} is not a "
                    "number; fix the cell (missing values are not allowed)"
                ) from None
    return values


def _is_numeric_row(cells: list[str]) -> bool:
    try:
        for cell in cells:
            float(cell)
    except ValueError:
        return False
    return True


def _describe(source: str | os.PathLike | None) -> str:
    return "<memory>" if source is None else f"'{source}'"


__all__ = [
    "REFERENCE_FILE_EXTENSIONS",
    "REFERENCE_LAYOUTS",
    "ReferenceLayout",
    "glacier_reference_matrix",
    "load_reference_matrix",
    "validate_reference_matrix",
]
