"""Spectral libraries: named reference spectra on one wavelength grid.

:class:`SpectralLibrary` holds ``names`` (N), ``wavelengths`` (B,) nm and ``spectra``
(N, B), with NaN where a spectrum has no data. :func:`load_usgs_library` reads the USGS
1995 library (``usgs/USGS_1995_Library.mat`` of the shared data folder, or a path):
``datalib`` (224, 501) holds the wavelength in micrometres (column 0), the spectral
resolution in micrometres (column 1, used as the band FWHM), the channel number
(column 2) and 498 reflectance spectra (columns 3..500); -1.23e34 marks missing values.
``names`` (501, 29) holds one fixed-width text row per column.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.io

from hsikit.data import paths
from hsikit.errors import CorruptFileError, MatKeyError, ShapeMismatchError, UnknownNameError
from hsikit.spectral.resample import (
    ResampleMethod,
    check_coverage,
    default_fwhm,
    linear_interpolation_matrix,
    spectral_response_matrix,
)

PathLike = str | os.PathLike

USGS_1995_FILE = "usgs/USGS_1995_Library.mat"
# The USGS files mark missing values with -1.23e34; anything below this is "no data".
_USGS_NO_DATA_BELOW = -1e30
_USGS_FIRST_SPECTRUM_COLUMN = 3


@dataclass(frozen=True, eq=False)
class SpectralLibrary:
    """Named spectra on a common wavelength grid.

    Attributes:
        names: one name per spectrum (N).
        wavelengths: band centres in nm, ``(B,)``.
        spectra: ``(N, B)`` float64; NaN = no data.
        fwhm: band widths in nm, ``(B,)``, or None.
        source: where the library came from.
    """

    names: tuple[str, ...]
    wavelengths: np.ndarray
    spectra: np.ndarray
    fwhm: np.ndarray | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        names = tuple(str(name) for name in self.names)
        wavelengths = np.asarray(self.wavelengths, dtype=np.float64).reshape(-1)
        spectra = np.asarray(self.spectra, dtype=np.float64)
        if spectra.ndim == 1:
            spectra = spectra[np.newaxis]
        if spectra.shape != (len(names), wavelengths.size):
            raise ShapeMismatchError(
                f"spectral library {self.source or ''}: spectra of shape {spectra.shape} for {len(names)} names and "
                f"{wavelengths.size} wavelengths; expected ({len(names)}, {wavelengths.size})"
            )
        fwhm = None if self.fwhm is None else np.asarray(self.fwhm, dtype=np.float64).reshape(-1)
        if fwhm is not None and fwhm.shape != wavelengths.shape:
            raise ShapeMismatchError(f"spectral library: {fwhm.size} FWHM values for {wavelengths.size} wavelengths")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "wavelengths", wavelengths)
        object.__setattr__(self, "spectra", spectra)
        object.__setattr__(self, "fwhm", fwhm)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return (
            f"SpectralLibrary({len(self)} spectra, {self.wavelengths.size} bands, "
            f"{self.wavelengths.min():.0f}..{self.wavelengths.max():.0f} nm"
            + (f", source={self.source!r}" if self.source else "")
            + ")"
        )

    def _subset(self, rows: Iterable[int]) -> SpectralLibrary:
        index = list(rows)
        return SpectralLibrary(
            tuple(self.names[i] for i in index), self.wavelengths, self.spectra[index], self.fwhm, self.source
        )

    def select(self, pattern: str | Sequence[str], *, case_sensitive: bool = False) -> SpectralLibrary:
        """The spectra whose name contains ``pattern`` (or any of several patterns), in library order.

        Raises:
            UnknownNameError: nothing matches; the message suggests close names.
        """
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)

        def normal(text: str) -> str:
            return text if case_sensitive else text.lower()

        wanted = [normal(p) for p in patterns]
        rows = [i for i, name in enumerate(self.names) if any(w in normal(name) for w in wanted)]
        if not rows:
            close = difflib.get_close_matches(patterns[0], list(self.names), n=5, cutoff=0.4)
            hint = f"; close names: {', '.join(repr(c) for c in close)}" if close else ""
            raise UnknownNameError(
                f"no spectrum in the library{f' {self.source!r}' if self.source else ''} has a name containing "
                f"{' or '.join(repr(p) for p in patterns)}{hint}"
            )
        return self._subset(rows)

    def spectrum(self, name: str) -> np.ndarray:
        """The ``(B,)`` spectrum with exactly this name (case-insensitive)."""
        lowered = [n.lower() for n in self.names]
        if name.lower() in lowered:
            return self.spectra[lowered.index(name.lower())]
        containing = [n for n in self.names if name.lower() in n.lower()]
        candidates = containing or difflib.get_close_matches(name, list(self.names), n=5, cutoff=0.4)
        hint = f"; did you mean one of {candidates[:10]}?" if candidates else "; see .names for the list"
        raise UnknownNameError(f"no spectrum named {name!r} in the library{hint}")

    def gap_mask(self, start: float | None = None, stop: float | None = None) -> np.ndarray:
        """``(N,)`` bool, True for spectra with missing values between ``start`` and ``stop`` nm."""
        in_range = np.ones(self.wavelengths.size, dtype=bool)
        if start is not None:
            in_range &= self.wavelengths >= start
        if stop is not None:
            in_range &= self.wavelengths <= stop
        return ~np.isfinite(self.spectra[:, in_range]).all(axis=1)

    def without_gaps(self, start: float | None = None, stop: float | None = None) -> SpectralLibrary:
        """The spectra with data at every band between ``start`` and ``stop`` nm (default: all bands)."""
        return self._subset(np.flatnonzero(~self.gap_mask(start, stop)))

    def resample(
        self,
        wavelengths: Sequence[float] | np.ndarray,
        fwhm: Sequence[float] | np.ndarray | float | None = None,
        *,
        method: ResampleMethod = "gaussian",
        extrapolate: bool = False,
    ) -> SpectralLibrary:
        """The library on new band centres (see :func:`hsikit.spectral.resample.resample`).

        ``fwhm`` is the target band width (default: the target spacing). Spectra with gaps
        are resampled from their valid bands only, and a new band is NaN where its centre
        lies between two library bands of which one has no data (or beyond the data).

        Raises:
            WavelengthError: a target lies outside the library's coverage and
                ``extrapolate`` is False.
        """
        targets = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
        if not extrapolate:
            check_coverage(targets, self.wavelengths, self.fwhm)
        out = np.full((len(self), targets.size), np.nan)
        valid = np.isfinite(self.spectra)
        patterns, which = np.unique(valid, axis=0, return_inverse=True)
        for pattern_index, pattern in enumerate(patterns):
            rows = np.flatnonzero(which.reshape(-1) == pattern_index)
            if pattern.sum() < 2:
                continue
            matrix = spectral_response_matrix(
                self.wavelengths[pattern],
                targets,
                fwhm,
                source_fwhm=None if self.fwhm is None else self.fwhm[pattern],
                method=method,
                extrapolate=True,  # coverage was checked on the full grid above
            )
            values = self.spectra[np.ix_(rows, np.flatnonzero(pattern))] @ matrix.T
            if not pattern.all():
                touches_gap = linear_interpolation_matrix(self.wavelengths, targets, outside="nearest") @ (~pattern)
                values[:, touches_gap > 0] = np.nan
            out[rows] = values
        new_fwhm = None
        if method == "gaussian":
            if fwhm is not None:
                new_fwhm = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), targets.shape).copy()
            elif targets.size > 1:
                new_fwhm = default_fwhm(targets)
        return SpectralLibrary(self.names, targets, out, new_fwhm, self.source)


def _decode_names(rows: np.ndarray) -> list[str]:
    """Char rows (uint8 codes or one string per row) to stripped strings."""
    if rows.dtype.kind in "US":
        return [str(row).strip() for row in np.atleast_1d(rows)]
    return [bytes(np.asarray(row, dtype=np.uint8)).decode("latin-1").strip() for row in rows]


@functools.lru_cache(maxsize=4)
def _load_usgs_cached(file: str, modified_ns: int) -> SpectralLibrary:
    del modified_ns  # part of the cache key only: a changed file is read again
    try:
        contents = scipy.io.loadmat(file)
    except (OSError, ValueError, NotImplementedError) as error:
        raise CorruptFileError(f"'{file}': cannot read the USGS library MATLAB file ({error})") from error
    if "datalib" not in contents or "names" not in contents:
        raise MatKeyError(
            f"'{file}': expected keys 'datalib' and 'names' (USGS 1995 library layout); "
            f"found {sorted(k for k in contents if not k.startswith('__'))}"
        )
    table = np.asarray(contents["datalib"], dtype=np.float64)
    names = _decode_names(np.asarray(contents["names"]))
    if table.ndim != 2 or table.shape[1] != len(names) or table.shape[1] <= _USGS_FIRST_SPECTRUM_COLUMN:
        raise CorruptFileError(
            f"'{file}': 'datalib' of shape {table.shape} does not match {len(names)} name rows; expected "
            "(bands, 3 + spectra)"
        )
    wavelengths = table[:, 0] * 1000.0  # micrometres -> nm
    resolution = table[:, 1] * 1000.0
    if not np.all(np.isfinite(wavelengths)) or wavelengths.min() <= 0:
        raise CorruptFileError(f"'{file}': column 0 of 'datalib' must hold positive wavelengths in micrometres")
    spectra = table[:, _USGS_FIRST_SPECTRUM_COLUMN:].T.copy()
    spectra[(spectra < _USGS_NO_DATA_BELOW) | ~np.isfinite(spectra)] = np.nan
    fwhm = resolution if np.all(np.isfinite(resolution)) and np.all(resolution > 0) else None
    library = SpectralLibrary(tuple(names[_USGS_FIRST_SPECTRUM_COLUMN:]), wavelengths, spectra, fwhm, source=file)
    for array in (library.wavelengths, library.spectra) + (() if library.fwhm is None else (library.fwhm,)):
        array.setflags(write=False)  # shared by the cache
    return library


def load_usgs_library(path: PathLike | None = None) -> SpectralLibrary:
    """The USGS 1995 spectral library: 498 spectra, 224 bands (383-2508 nm), reflectance.

    ``path`` defaults to ``usgs/USGS_1995_Library.mat`` in the shared data folder. The
    bands keep the file's order (AVIRIS spectrometers overlap, so wavelengths are not
    monotonic; resampling sorts them). The arrays are read-only (the result is cached).
    """
    file = paths.shared_data_file(USGS_1995_FILE, path)
    library = _load_usgs_cached(str(file.resolve()), file.stat().st_mtime_ns)
    return library


__all__ = ["USGS_1995_FILE", "SpectralLibrary", "load_usgs_library"]
