"""Helpers shared by the format modules: path checks, in-memory/memory-mapped readers,
the chunked NaN/Inf scan, page release for memory maps, and label-map normalisation."""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from hsikit.cube import Window, as_affine, crs_to_string
from hsikit.errors import (
    DataFileNotFoundError,
    InvalidCubeError,
    InvalidLabelsError,
    NonFiniteError,
)
from hsikit.io.base import CubeReader

# A chunk of the NaN scan (and of row-block copies) holds at most this many bytes.
CHUNK_BYTES = 64 * 1024 * 1024


def require_file(path: str | os.PathLike, hint: str = "") -> Path:
    """``path`` as a Path; :class:`DataFileNotFoundError` (naming it) when it is not a file."""
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(path, hint or "Check the path (and the working directory).")
    if path.is_dir():
        raise DataFileNotFoundError(path, "It is a folder; give the path of a file inside it.")
    return path


def release_pages(array: Any) -> None:
    """Drop the pages of a memory map from this process's resident set (Linux/macOS).

    The data stay in the operating system's page cache (so re-reading is cheap),
    but they no longer count in the process's RSS. This is what keeps a window-by-window
    scan of a file larger than memory at a bounded resident size. No-op for arrays
    that are not memory-mapped or on platforms without ``madvise``.
    """
    handle = getattr(array, "_mmap", None)
    if handle is None or not hasattr(handle, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        handle.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # pragma: no cover - closed map or refused advice: harmless
        pass


# Bytes of a memory map that one step of a copy or scan may touch before its pages are released.
# The kernel maps more than the bytes read (whole pages, "fault-around", large page-cache folios
# of up to 2 MB), so steps are laid out along the file's own byte order (see copy_from_map):
# each step then touches one contiguous run, and the slop is a few MB per step, not per band.
MAPPED_BYTES = 64 * 1024 * 1024


def is_band_major(view: np.ndarray) -> bool:
    """True when a ``(bands, h, w)`` view stores each band contiguously (BSQ, CHW) rather than rows."""
    return abs(view.strides[0]) > abs(view.strides[1])


def row_blocks(view: np.ndarray, budget: int = MAPPED_BYTES) -> list[slice]:
    """Row slices of a ``(bands, h, w)`` view, each spanning about ``budget`` bytes of file rows.

    A file row is one band's row for a band-major file, all bands' for a row-major one
    (the view's row stride either way), so each block is one contiguous run of the file.
    """
    rows = max(1, budget // max(1, abs(view.strides[1])))
    return [slice(start, start + rows) for start in range(0, view.shape[1], rows)]


def copy_from_map(spatial: np.ndarray, indices: list[int] | None, mapped: Any) -> np.ndarray:
    """Copy a ``(bands, h, w)`` view of a memory map into memory, releasing pages as it goes.

    The copy follows the file's byte order (band by band for BSQ, row blocks of all bands
    for BIL/BIP), one contiguous run of at most :data:`MAPPED_BYTES` of file rows at a time,
    and the map's pages are released after each run.

    Args:
        spatial: the window as a view of the map (any axis order on disk).
        indices: bands to keep, in order, repeats allowed (None: all).
        mapped: the memory map whose pages are released (None: keep them mapped).

    Returns:
        A C-contiguous, native-byte-order array of shape ``(len(indices) or bands, h, w)``.
    """
    chosen = list(range(spatial.shape[0])) if indices is None else list(indices)
    out = np.empty((len(chosen), *spatial.shape[1:]), dtype=spatial.dtype.newbyteorder("="))
    blocks = row_blocks(spatial)
    if is_band_major(spatial):
        for position, band in enumerate(chosen):
            for rows in blocks:
                out[position, rows] = spatial[band, rows]
                release_pages(mapped)
    else:
        for rows in blocks:
            block = spatial[:, rows]
            out[:, rows] = block if indices is None else block[chosen]
            release_pages(mapped)
    return out


def rows_per_chunk(array: np.ndarray, budget: int = CHUNK_BYTES) -> int:
    """How many rows of a ``(bands, H, W)`` array fit in ``budget`` bytes (at least 1)."""
    bands, _, width = array.shape
    return max(1, budget // max(1, bands * width * array.dtype.itemsize))


def scan_nonfinite(array: np.ndarray, policy: str, source: str) -> np.ndarray | None:
    """Find pixels holding NaN/Inf in a ``(bands, H, W)`` array, a block of rows at a time.

    Memory stays bounded (a step reads at most :data:`CHUNK_BYTES` of file rows, in the
    file's own order, see :func:`row_blocks`), so this works on memory maps larger than RAM.

    Args:
        array: ``(bands, H, W)`` array (memory map or in memory).
        policy: ``"error"``, ``"mask"`` or ``"ignore"``.
        source: file named in the error message.

    Returns:
        ``(H, W)`` bool mask of bad pixels when some were found and ``policy="mask"``;
        None when the array is clean, not floating point, or ``policy="ignore"``.

    Raises:
        NonFiniteError: bad pixels found and ``policy="error"``.
        InvalidCubeError: unknown policy.
    """
    if policy not in ("error", "mask", "ignore"):
        raise InvalidCubeError(f"nonfinite must be 'error', 'mask' or 'ignore', got {policy!r}")
    if policy == "ignore" or array.dtype.kind not in "fc":
        return None
    bad = np.zeros(array.shape[1:], dtype=bool)
    blocks = row_blocks(array, CHUNK_BYTES)
    if is_band_major(array):
        for band in range(array.shape[0]):
            for rows in blocks:
                bad[rows] |= ~np.isfinite(np.asarray(array[band, rows]))
                release_pages(array)
    else:
        for rows in blocks:
            bad[rows] = ~np.isfinite(np.asarray(array[:, rows])).all(axis=0)
            release_pages(array)
    if not bad.any():
        return None
    if policy == "error":
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise NonFiniteError(
            f"'{source}': {int(bad.sum())} pixel(s) hold NaN or Inf (first at row {row}, col {col}); "
            "clean the data, or pass nonfinite='mask' to mark them as nodata "
            "(or nonfinite='ignore' to keep them)"
        )
    return bad


def check_window(window: Window | None, height: int, width: int, source: str) -> tuple[slice, slice]:
    """Row/column slices of ``window``; :class:`InvalidCubeError` when it leaves the image."""
    if window is None:
        return slice(0, height), slice(0, width)
    if not isinstance(window, Window):
        window = Window(*window)
    if window.height <= 0 or window.width <= 0 or window.clip(height, width) != window:
        raise InvalidCubeError(
            f"'{source}': window {window} reaches outside the {height}x{width} image; "
            "use Window(row_off, col_off, height, width) inside it"
        )
    return window.slices


def check_bands(bands: Sequence[int] | None, count: int, source: str) -> list[int] | None:
    """Validated band indices (negative ones counted from the end)."""
    if bands is None:
        return None
    indices = [int(b) for b in np.atleast_1d(np.asarray(bands))]
    for index in indices:
        if not -count <= index < count:
            raise InvalidCubeError(f"'{source}': band index {index} outside the cube's {count} bands (0..{count - 1})")
    if not indices:
        raise InvalidCubeError(f"'{source}': bands= selects no band")
    return [i % count for i in indices]


class ArrayCubeReader(CubeReader):
    """A :class:`CubeReader` over a ``(bands, H, W)`` array already in memory or memory-mapped.

    ``read_array`` returns an in-memory copy of the window; for memory maps the pages
    touched are released afterwards (see :func:`release_pages`), so scanning a
    large file window by window keeps the resident size bounded. Set ``release_pages``
    to False to keep them mapped instead (faster when neighbouring windows share file
    pages; the resident size then grows towards the file size, as with a plain numpy.memmap).
    """

    release_pages: bool = True

    def __init__(
        self,
        array: np.ndarray,
        path: str | os.PathLike,
        *,
        wavelengths: np.ndarray | None = None,
        fwhm: np.ndarray | None = None,
        band_names: list[str] | None = None,
        crs: str | None = None,
        transform: Affine | Sequence[float] | None = None,
        nodata: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if array.ndim != 3:
            raise InvalidCubeError(f"'{path}': expected a (bands, H, W) array, got shape {array.shape}")
        self.path = Path(path)
        self._array = array
        self.shape = (int(array.shape[0]), int(array.shape[1]), int(array.shape[2]))
        self.dtype = array.dtype
        self.wavelengths = wavelengths
        self.fwhm = fwhm
        self.band_names = band_names
        self.crs = crs_to_string(crs)
        self.transform = as_affine(transform)
        self.nodata = nodata
        self.metadata = dict(metadata or {})
        self.metadata.setdefault("source", os.fspath(path))

    def view(self) -> np.ndarray:
        """The whole ``(bands, H, W)`` array without copying (a memory-map view when file-backed)."""
        return self._array

    def read_array(self, window: Window | None = None, bands: list[int] | None = None) -> np.ndarray:
        """Pixels of ``window`` as an in-memory ``(bands, h, w)`` array."""
        rows, cols = check_window(window, self.height, self.width, str(self.path))
        indices = check_bands(bands, self.bands, str(self.path))
        spatial = self._array[:, rows, cols]
        if getattr(self._array, "_mmap", None) is not None:
            return copy_from_map(spatial, indices, self._array if self.release_pages else None)
        return np.array(spatial if indices is None else spatial[indices])

    def close(self) -> None:
        self._array = np.empty((0, 0, 0), dtype=self.dtype)


def smallest_label_dtype(minimum: int, maximum: int) -> np.dtype:
    """The smallest integer dtype holding ``minimum..maximum`` (unsigned when non-negative)."""
    candidates = (np.uint8, np.uint16, np.uint32) if minimum >= 0 else (np.int8, np.int16, np.int32)
    for candidate in candidates:
        info = np.iinfo(candidate)
        if info.min <= minimum and maximum <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.int64)


def as_label_map(array: Any, source: str) -> np.ndarray:
    """Normalise a label raster to an ``(H, W)`` integer array.

    Integer arrays keep their dtype; booleans become ``uint8``; floating-point arrays
    must hold whole, finite numbers and become the smallest integer dtype holding
    their range. A 3-D array with a single band/channel is squeezed.

    Raises:
        InvalidLabelsError: not 2-D, or fractional / non-finite / non-numeric values.
    """
    labels = np.asarray(array)
    if labels.ndim == 3 and 1 in (labels.shape[0], labels.shape[-1]):
        labels = labels.reshape(labels.shape[:2] if labels.shape[-1] == 1 else labels.shape[1:])
    if labels.ndim != 2:
        raise InvalidLabelsError(
            f"'{source}': labels must be a 2-D (H, W) map of class ids, got shape {labels.shape}; "
            "colour-coded (RGB) masks must be converted to class ids first"
        )
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype.kind in "iu":
        return labels
    if labels.dtype.kind != "f":
        raise InvalidLabelsError(f"'{source}': labels of dtype {labels.dtype} are not numeric class ids")
    if not np.isfinite(labels).all():
        raise InvalidLabelsError(f"'{source}': labels hold NaN/Inf; fill unlabelled pixels with 0 (or another id)")
    if not np.array_equal(labels, np.round(labels)):
        raise InvalidLabelsError(
            f"'{source}': labels hold fractional values (e.g. {labels[labels != np.round(labels)].flat[0]!r}); "
            "this is not a class map (abundances? pass key= naming the label variable)"
        )
    if labels.size == 0:
        return labels.astype(np.uint8)
    return labels.astype(smallest_label_dtype(int(labels.min()), int(labels.max())))


def is_label_like(array: np.ndarray) -> bool:
    """True for a 2-D numeric array of whole numbers (candidate label map)."""
    if array.ndim != 2 or min(array.shape) < 2:
        return False
    if array.dtype == bool or array.dtype.kind in "iu":
        return True
    if array.dtype.kind != "f":
        return False
    return bool(np.isfinite(array).all() and np.array_equal(array, np.round(array)))
