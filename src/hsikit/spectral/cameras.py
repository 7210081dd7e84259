"""RGB camera spectral sensitivities: the :class:`CameraResponse` table and its loaders.

A camera response is three curves (R, G, B) sampled at wavelengths in nm. The loaders
read the tables of the shared data folder (``<shared>/color``, see
:func:`hsikit.data.paths.shared_data_dir`) or any file given by path; nothing is copied
into the package:

* :func:`load_camera_csv`: any CSV with a wavelength column and R, G, B columns (a pair
  of green columns ``G1``, ``G2`` is averaged); ``#`` lines are comments.
* :func:`load_ntire2022_camera`: ``ntire2022_RGB_Camera_QE.csv`` (R, G1, G2, B), the
  camera used to simulate the ARAD-1K RGB images of NTIRE 2022.
* :func:`load_camspec_camera` / :func:`camspec_camera_names`: the 28-camera database of
  Jiang et al. (WACV 2013), ``camspec_28cameras_RGB_400-720nm_10nm_parsed.csv``.
* :func:`load_canon_5d_mark_ii` (rawtoaces table) and :func:`load_nikon_d700` (luxpy table).
* :func:`load_camera`: any of the above by name.

Curves keep the scale of their file (relative sensitivities or quantum efficiency);
:func:`hsikit.spectral.color.cube_to_camera_rgb` normalises the rendered RGB.
"""

from __future__ import annotations

import csv
import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hsikit.data import paths
from hsikit.errors import CorruptFileError, ShapeMismatchError, UnknownNameError, WavelengthError

PathLike = str | os.PathLike

NTIRE2022_RGB_FILE = "color/ntire2022_RGB_Camera_QE.csv"
CAMSPEC_FILE = "color/camspec_28cameras_RGB_400-720nm_10nm_parsed.csv"
CANON_5D_MARK_II_FILE = "color/CANON_EOS_5DMark_II_RGB_Sensitivities_rawtoaces.csv"
NIKON_D700_FILE = "color/nikon_d700_csf_400-700nm_10nm_luxpy.csv"


@dataclass(frozen=True, eq=False)
class CameraResponse:
    """Spectral sensitivities of an RGB camera.

    Attributes:
        name: camera name.
        wavelengths: sample wavelengths in nm, ``(N,)``, strictly increasing.
        curves: sensitivities ``(3, N)``, rows R, G, B, non-negative.
        source: the file the table came from (None when built in memory).
    """

    name: str
    wavelengths: np.ndarray
    curves: np.ndarray
    source: str | None = None

    def __post_init__(self) -> None:
        wavelengths = np.asarray(self.wavelengths, dtype=np.float64).reshape(-1)
        curves = np.asarray(self.curves, dtype=np.float64)
        where = f"camera {self.name!r}" + (f" ({self.source})" if self.source else "")
        if curves.shape != (3, wavelengths.size):
            raise ShapeMismatchError(
                f"{where}: curves must have shape (3, {wavelengths.size}) (R, G, B rows, one column per "
                f"wavelength), got {curves.shape}"
            )
        if wavelengths.size < 2 or not np.all(np.diff(wavelengths) > 0):
            raise WavelengthError(f"{where}: wavelengths must be at least 2 strictly increasing values in nm")
        if not np.all(np.isfinite(curves)):
            raise CorruptFileError(f"{where}: the sensitivity curves hold NaN or Inf")
        if np.any(curves < 0):
            raise CorruptFileError(f"{where}: sensitivities must be non-negative (min {curves.min():g})")
        object.__setattr__(self, "wavelengths", wavelengths)
        object.__setattr__(self, "curves", curves)

    def sample(self, wavelengths: Sequence[float] | np.ndarray) -> np.ndarray:
        """The curves linearly interpolated at ``wavelengths`` (nm), zero outside the table: ``(3, M)``."""
        query = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
        return np.stack([np.interp(query, self.wavelengths, row, left=0.0, right=0.0) for row in self.curves])


# --------------------------------------------------------------------------- CSV reading
def read_csv_table(path: PathLike) -> tuple[list[str], np.ndarray]:
    """A numeric CSV table: its column names and a float64 ``(rows, columns)`` array.

    Lines starting with ``#`` are skipped; the first remaining line is the header; empty
    trailing columns are dropped.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(line for line in handle if not line.lstrip().startswith("#"))]
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"'{path}': cannot read the CSV table ({error})") from error
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise CorruptFileError(f"'{path}': expected a header line and at least one row of numbers")
    header = [cell.strip() for cell in rows[0]]
    while header and not header[-1]:
        header.pop()
    try:
        values = np.array([[float(cell) for cell in row[: len(header)]] for row in rows[1:]], dtype=np.float64)
    except ValueError as error:
        raise CorruptFileError(
            f"'{path}': a row holds a non-numeric value ({error}); expected a numeric table"
        ) from error
    if values.ndim != 2 or values.shape[1] != len(header):
        raise CorruptFileError(f"'{path}': rows do not all have the {len(header)} columns of the header")
    return header, values


def _column(header: list[str], names: Sequence[str]) -> int | None:
    lowered = [name.lower() for name in header]
    for name in names:
        if name.lower() in lowered:
            return lowered.index(name.lower())
    return None


def load_camera_csv(path: PathLike, name: str | None = None) -> CameraResponse:
    """A camera response from a CSV with a wavelength column (first) and R, G, B columns.

    Columns are found by name, case-insensitively: ``R``/``red``, ``G``/``green`` (or
    ``G1`` and ``G2``, averaged: the two greens of a Bayer sensor), ``B``/``blue``. Rows
    are sorted by wavelength. ``name`` defaults to the file stem.
    """
    path = Path(path)
    header, values = read_csv_table(path)
    red = _column(header, ("r", "red"))
    green = _column(header, ("g", "green"))
    blue = _column(header, ("b", "blue"))
    greens = [_column(header, ("g1",)), _column(header, ("g2",))]
    if red is None or blue is None or (green is None and None in greens):
        raise CorruptFileError(
            f"'{path}': expected a wavelength column and R, G (or G1 and G2), B columns; found {header}"
        )
    wavelengths = values[:, 0]
    order = np.argsort(wavelengths, kind="stable")
    green_curve = values[:, green] if green is not None else values[:, greens].mean(axis=1)
    curves = np.stack([values[:, red], green_curve, values[:, blue]])[:, order]
    return CameraResponse(name or path.stem, wavelengths[order], curves, source=str(path))


# --------------------------------------------------------------------------- named tables
# name accepted by load_camera -> (file in the shared data folder, display name)
_NAMED_TABLES = {
    "ntire2022": (NTIRE2022_RGB_FILE, "NTIRE 2022 RGB camera"),
    "canon_5d_mark_ii_rawtoaces": (CANON_5D_MARK_II_FILE, "Canon EOS 5D Mark II"),
    "nikon_d700_luxpy": (NIKON_D700_FILE, "Nikon D700"),
}


def _load_named(key: str, path: PathLike | None) -> CameraResponse:
    relative, display_name = _NAMED_TABLES[key]
    return load_camera_csv(paths.shared_data_file(relative, path), name=display_name)


def load_ntire2022_camera(path: PathLike | None = None) -> CameraResponse:
    """The NTIRE 2022 RGB camera (R, G1, G2, B quantum efficiency; greens averaged), 360-750 nm at 1 nm."""
    return _load_named("ntire2022", path)


def load_canon_5d_mark_ii(path: PathLike | None = None) -> CameraResponse:
    """Canon EOS 5D Mark II sensitivities (rawtoaces table), 380-780 nm at 5 nm."""
    return _load_named("canon_5d_mark_ii_rawtoaces", path)


def load_nikon_d700(path: PathLike | None = None) -> CameraResponse:
    """Nikon D700 sensitivities (luxpy table; relative, unnormalised), 400-700 nm at 10 nm."""
    return _load_named("nikon_d700_luxpy", path)


def _read_camspec(path: PathLike | None) -> tuple[Path, dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]]:
    """The camspec database: ``{camera: (wavelengths, {channel: curve})}``, in file order."""
    file = paths.shared_data_file(CAMSPEC_FILE, path)
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(line for line in handle if not line.lstrip().startswith("#")))
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"'{file}': cannot read the camera database ({error})") from error
    if not rows or [cell.strip().lower() for cell in rows[0][:2]] != ["camera", "channel"]:
        raise CorruptFileError(f"'{file}': expected a header 'camera,channel,<wavelengths...>'")
    try:
        wavelengths = np.array([float(cell) for cell in rows[0][2:]])
        cameras: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        for row in rows[1:]:
            if not row:
                continue
            camera, channel = row[0].strip(), row[1].strip().upper()
            cameras.setdefault(camera, (wavelengths, {}))[1][channel] = np.array([float(v) for v in row[2:]])
    except (ValueError, IndexError) as error:
        raise CorruptFileError(f"'{file}': malformed row in the camera database ({error})") from error
    return file, cameras


def camspec_camera_names(path: PathLike | None = None) -> list[str]:
    """Names of the cameras in the camspec database (file order)."""
    return list(_read_camspec(path)[1])


def _match_name(name: str, choices: Sequence[str], what: str) -> str:
    def key(text: str) -> str:
        return "".join(text.lower().split())

    wanted = key(name)
    for choice in choices:
        if key(choice) == wanted:
            return choice
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"no {what} named {name!r}.{hint} Available: {', '.join(choices)}")


def load_camspec_camera(name: str, path: PathLike | None = None) -> CameraResponse:
    """One camera of the camspec database, matched case- and space-insensitively (400-720 nm, 10 nm)."""
    file, cameras = _read_camspec(path)
    match = _match_name(name, list(cameras), f"camera in the camspec database '{file}'")
    wavelengths, channels = cameras[match]
    missing = {"R", "G", "B"} - set(channels)
    if missing:
        raise CorruptFileError(f"'{file}': camera {match!r} lacks channel(s) {sorted(missing)}")
    return CameraResponse(match, wavelengths, np.stack([channels["R"], channels["G"], channels["B"]]), source=str(file))


def camera_names(data_dir: PathLike | None = None) -> list[str]:
    """All names :func:`load_camera` accepts: the named tables, then the camspec cameras."""
    path = None if data_dir is None else Path(data_dir) / CAMSPEC_FILE
    return [*_NAMED_TABLES, *camspec_camera_names(path)]


def load_camera(name: str, data_dir: PathLike | None = None) -> CameraResponse:
    """A camera by name: ``"ntire2022"``, ``"canon_5d_mark_ii_rawtoaces"``, ``"nikon_d700_luxpy"``,
    or any camspec camera (``"Nikon D700"``, ``"canon 5dmarkii"``...), case-insensitively.

    ``data_dir`` is the shared data folder (default :func:`hsikit.data.paths.shared_data_dir`).
    """
    key = name.strip().lower()
    if key in _NAMED_TABLES:
        relative = _NAMED_TABLES[key][0]
        return _load_named(key, None if data_dir is None else Path(data_dir) / relative)
    camspec_path = None if data_dir is None else Path(data_dir) / CAMSPEC_FILE
    file, cameras = _read_camspec(camspec_path)
    _match_name(name, [*_NAMED_TABLES, *cameras], "camera")  # raises with every accepted name
    return load_camspec_camera(name, file)


__all__ = [
    "CameraResponse",
    "camera_names",
    "camspec_camera_names",
    "load_camera",
    "load_camera_csv",
    "load_camspec_camera",
    "load_canon_5d_mark_ii",
    "load_nikon_d700",
    "load_ntire2022_camera",
    "read_csv_table",
]
