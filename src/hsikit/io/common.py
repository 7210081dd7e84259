"""Helpers shared by the format modules: path checks, in-memory/memory-mapped readers,
the chunked NaN/Inf scan, page release for memory maps, and label-map normalisation."""

from __future__ import annotations

import math
import mmap
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
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

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

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


# Bytes of file rows a window copy may have mapped before it releases the pages (small steps, one
# band of a narrow window, are batched up to it). The kernel maps more than the bytes read (whole
# pages, "fault-around", large page-cache folios of up to 2 MB), so steps are laid out along the
# file's own byte order (see MappedWindowCopier): each step then touches one contiguous run, and
# the slop is a few MB per release, not per band.
MAPPED_BYTES = 16 * 1024 * 1024

# Default memory for windows prepared ahead of a raster scan (see MappedWindowCopier).
PREFETCH_BYTES = 256 * 1024 * 1024

# Page faults per MiB of file rows above which mapping pages counts as costly (MappedWindowCopier
# prepares windows ahead only then). 4 KB page-cache pages fault 64 KB at a time (16 per MiB);
# large folios, mapped up to 2 MB at a time, take a few per MiB, and re-mapping them is cheap.
COSTLY_FAULTS_PER_MIB = 8.0
# Fewest bytes of file rows a copy must map for its fault count to be measured.
MEASURED_BYTES = 8 * 1024 * 1024


def minor_page_faults() -> int | None:
    """Page faults of this process so far (None where ``resource`` is missing, e.g. Windows)."""
    if resource is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt + usage.ru_majflt


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


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive True values of a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    return [(int(start), int(stop)) for start, stop in zip(edges[::2], edges[1::2])]


def band_runs(sources: Sequence[int], wanted: np.ndarray) -> list[tuple[int, int, int]]:
    """Group output bands into runs that read consecutive file bands.

    Args:
        sources: the file band of each output band (``(n,)``).
        wanted: ``(n,)`` bool, the output bands to copy.

    Returns:
        ``(first, stop, first_source)`` per run: output bands ``first..stop-1`` come from
        file bands ``first_source..first_source + stop - first - 1``.
    """
    runs: list[tuple[int, int, int]] = []
    for start, stop in true_runs(wanted):
        first = start
        for position in range(start + 1, stop + 1):
            if position == stop or sources[position] != sources[position - 1] + 1:
                runs.append((first, position, int(sources[first])))
                first = position
    return runs


WindowKey = tuple[int, int, int, int, tuple[int, ...] | None]  # rows start/stop, cols start/stop, bands


@dataclass
class PreparedWindow:
    """A window of a detected raster scan whose bands are copied ahead of its request.

    Attributes:
        plane_bytes: bytes of one band of the window (``h * w * itemsize``).
        filled: ``(bands,)`` bool, the output bands already copied (or being copied in this pass).
        array: the ``(bands, h, w)`` window, allocated when its first band is reserved.
    """

    plane_bytes: int
    filled: np.ndarray
    array: np.ndarray | None = None


class MappedWindowCopier:
    """Copies windows of a memory-mapped ``(bands, H, W)`` view into memory at a bounded resident size.

    Each copy walks the file in its own byte order (band by band for BSQ, blocks of rows
    for BIL/BIP), at most :data:`MAPPED_BYTES` of file rows at a time, and releases the
    map's pages after each step (``madvise(MADV_DONTNEED)``, see :func:`release_pages`).

    Releasing has a price when neighbouring windows share file pages: a window narrower
    than the image touches pages holding whole rows (BSQ and BIL store a band's row
    contiguously), so the windows to its right need the same pages again, and mapping a
    page costs a page fault. Keeping the pages instead makes the resident size grow to the
    file size. The copier avoids both: when the requests follow a raster scan (same rows,
    columns advancing by a constant step; detected from two consecutive requests, kept
    from one strip of rows to the next), it copies, while a block of rows is mapped
    anyway, the bands of the next windows of the same rows as well, into arrays that are
    handed out, without another copy, when those windows are requested. At most
    ``prefetch_bytes`` of such prepared windows exist at any time, so the resident size of
    a scan is bounded by ``prefetch_bytes`` + :data:`MAPPED_BYTES` + the window returned,
    whatever the file size. Each band goes ``2 * (prefetch_bytes // plane) // bands``
    windows ahead (``plane``: bytes of one band of a window), bands first come first served;
    this staggers the bands so that each is mapped about once per that many windows.
    Preparing ahead costs memory traffic of its own, so it is done only while mapping pages
    is measured to be costly: at least :data:`COSTLY_FAULTS_PER_MIB` page faults per MiB of
    file rows in the last copy (4 KB page-cache pages; files whose cached pages are large
    folios, as the kernel's readahead builds them, are re-mapped cheaply and read alone).

    Any other access pattern (random windows, a jump, another band selection) drops the
    prepared windows and reads the window alone, exactly as a plain copy would. Views whose
    columns are not the file's innermost axis (BIP, HWC) never prepare windows ahead: their
    windows do not share pages. The copier is safe to use from several threads (one copy at
    a time).

    Args:
        view: the whole image as a ``(bands, H, W)`` view of the map, any axis order on disk.
        mapped: the memory map whose pages are released.

    Attributes:
        steps: copies from the map so far, each of one band (band-major files) or one run of
            bands (row-major files) over at most :data:`MAPPED_BYTES` of file rows; each maps
            the pages of those rows, so this counts the mapping work.
        faults_per_mib: page faults per MiB of file rows of the last copy that mapped at least
            :data:`MEASURED_BYTES` (infinite until then: mapping is assumed costly).
    """

    def __init__(self, view: np.ndarray, mapped: Any) -> None:
        self.view = view.view(np.ndarray)  # slicing a plain ndarray skips numpy.memmap's Python hooks
        self.mapped = mapped
        strides = [abs(s) for s in view.strides]
        self.columns_innermost = view.shape[2] > 1 and strides[2] < min(strides[0], strides[1])
        self._prepared: dict[WindowKey, PreparedWindow] = {}
        self._prepared_bytes = 0
        self._previous: WindowKey | None = None
        self._step: int | None = None
        self._lock = threading.Lock()
        self.steps = 0
        self.faults_per_mib = math.inf

    @property
    def prepared_bytes(self) -> int:
        """Bytes of window data prepared ahead of their request (at most the ``prefetch_bytes`` last passed)."""
        return self._prepared_bytes

    def clear(self) -> None:
        """Drop the prepared windows (their memory is freed)."""
        self._prepared.clear()
        self._prepared_bytes = 0

    def read(
        self,
        rows: slice,
        cols: slice,
        indices: list[int] | None,
        *,
        release: bool = True,
        prefetch_bytes: int = PREFETCH_BYTES,
    ) -> np.ndarray:
        """The window ``rows`` x ``cols`` (bands ``indices``, all when None) as a new array.

        Args:
            rows, cols: the window as slices with explicit, in-range ``start``/``stop`` (step 1).
            indices: output bands as file band indices, in order, repeats allowed (None: all).
            release: release the map's pages after each step; False keeps them mapped
                (and prepares nothing: with the pages kept, the next windows cost no faults).
            prefetch_bytes: the most memory (bytes) of windows prepared ahead; 0 prepares none.

        Returns:
            A C-contiguous, native-byte-order ``(len(indices) or bands, h, w)`` array that
            the copier keeps no reference to.
        """
        with self._lock:
            try:
                return self._read(rows, cols, indices, release, prefetch_bytes)
            except BaseException:
                self.clear()
                self._previous = None
                raise

    def _read(
        self, rows: slice, cols: slice, indices: list[int] | None, release: bool, prefetch_bytes: int
    ) -> np.ndarray:
        bands, _, width = self.view.shape
        sources = list(range(bands)) if indices is None else [int(i) for i in indices]
        key: WindowKey = (rows.start, rows.stop, cols.start, cols.stop, None if indices is None else tuple(sources))
        prepared = self._prepared.pop(key, None)
        if prepared is None:
            self.clear()
        else:
            self._prepared_bytes -= prepared.plane_bytes * int(prepared.filled.sum())
        shape = (len(sources), rows.stop - rows.start, cols.stop - cols.start)
        if prepared is not None and prepared.array is not None:
            out, done = prepared.array, prepared.filled
        else:
            out, done = np.empty(shape, dtype=self.view.dtype.newbyteorder("=")), np.zeros(len(sources), dtype=bool)
        ahead: list[tuple[PreparedWindow, slice, np.ndarray]] = []
        if release and prefetch_bytes > 0 and self.columns_innermost:
            costly = self.faults_per_mib >= COSTLY_FAULTS_PER_MIB
            ahead = self._plan(key, width, ~done, out.itemsize, prefetch_bytes if costly else 0)
        else:
            self.clear()
            self._step = None
        self._previous = key
        self._copy(out, sources, ~done, rows, cols, ahead, release)
        return out

    def _plan(
        self, key: WindowKey, width: int, missing: np.ndarray, itemsize: int, budget: int
    ) -> list[tuple[PreparedWindow, slice, np.ndarray]]:
        """Update the scan step from the previous request and reserve bands of the next windows.

        Returns:
            ``(prepared window, its columns, bands to copy into it in this pass)`` per window ahead.
        """
        row_start, row_stop, col_start, col_stop, selection = key
        previous = self._previous
        same_rows = previous is not None and previous[:2] == key[:2]
        if previous is None or previous[4] != selection:
            self._step = None
        elif same_rows and col_start > previous[2]:
            self._step = col_start - previous[2]  # the next window of the same rows
        elif same_rows or col_start >= previous[2]:
            self._step = None  # neither that nor the first window of the next strip of rows
        count = missing.size
        plane_bytes = (row_stop - row_start) * (col_stop - col_start) * itemsize
        # Bands are mapped again every `depth + 1` windows; staggered, they hold about
        # `depth / 2` prepared planes each on average, hence the factor 2.
        depth = 2 * (budget // max(1, plane_bytes)) // max(1, count) if self._step is not None else 0
        keys: list[WindowKey] = []
        start = col_start + (self._step or 0)
        while len(keys) < depth and start < width:
            stop = min(start + col_stop - col_start, width)
            keys.append((row_start, row_stop, start, stop, selection))
            start += self._step or 0
        for stale in [k for k in self._prepared if k not in keys]:
            dropped = self._prepared.pop(stale)
            self._prepared_bytes -= dropped.plane_bytes * int(dropped.filled.sum())
        plans = []
        for ahead_key in keys:
            if ahead_key not in self._prepared:
                self._prepared[ahead_key] = PreparedWindow(
                    (row_stop - row_start) * (ahead_key[3] - ahead_key[2]) * itemsize, np.zeros(count, dtype=bool)
                )
            plans.append((self._prepared[ahead_key], slice(ahead_key[2], ahead_key[3]), np.zeros(count, dtype=bool)))
        full = False
        for position in np.flatnonzero(missing):
            for prepared, _, reserved in plans:
                if prepared.filled[position]:
                    continue
                if self._prepared_bytes + prepared.plane_bytes > budget:
                    full = True
                    break
                prepared.filled[position] = reserved[position] = True
                self._prepared_bytes += prepared.plane_bytes
            if full:
                break
        for prepared, columns, reserved in plans:
            if reserved.any() and prepared.array is None:
                shape = (count, row_stop - row_start, columns.stop - columns.start)
                prepared.array = np.empty(shape, dtype=self.view.dtype.newbyteorder("="))
        return [plan for plan in plans if plan[2].any()]

    def _copy(
        self,
        out: np.ndarray,
        sources: list[int],
        wanted: np.ndarray,
        rows: slice,
        cols: slice,
        ahead: list[tuple[PreparedWindow, slice, np.ndarray]],
        release: bool,
    ) -> None:
        """Copy the ``wanted`` output bands of the window (and the reserved bands ahead), step by step."""
        view = self.view
        step = max(1, MAPPED_BYTES // max(1, abs(view.strides[1])))
        height = rows.stop - rows.start
        units = []
        for first, stop, source in band_runs(sources, wanted):
            if is_band_major(view):  # a band's rows are contiguous: one band per step
                units += [(position, position + 1, source + position - first) for position in range(first, stop)]
            else:  # a file row holds every band: runs of bands per step
                units.append((first, stop, source))
        targets = []  # (window array, its columns, runs of output bands to copy into it)
        for prepared, columns, reserved in ahead:
            assert prepared.array is not None  # allocated by _plan for every window with a reservation
            targets.append((prepared.array, columns, true_runs(reserved)))
        mapped_bytes = 0  # file bytes spanned by the steps since the pages were last released
        total_bytes = 0
        faults_before = minor_page_faults()
        for first, stop, source in units:
            # bytes of one file row spanned by bands source..source + stop - first - 1, all columns
            row_span = (stop - first - 1) * abs(view.strides[0]) + (view.shape[2] - 1) * abs(view.strides[2])
            row_span += view.itemsize
            for top in range(0, height, step):
                bottom = min(top + step, height)
                # Each release is one system call that unmaps and flushes the TLB: small steps (a band
                # of a narrow window) are batched, at most MAPPED_BYTES mapped at a time.
                if release and mapped_bytes and mapped_bytes + (bottom - top) * row_span > MAPPED_BYTES:
                    release_pages(self.mapped)
                    total_bytes += mapped_bytes
                    mapped_bytes = 0
                block = view[source : source + stop - first, rows.start + top : rows.start + bottom]
                out[first:stop, top:bottom] = block[:, :, cols]
                self.steps += 1
                mapped_bytes += (bottom - top) * row_span
                for target, columns, runs in targets:
                    for start, end in runs:
                        start, end = max(start, first), min(end, stop)
                        if start < end:
                            target[start:end, top:bottom] = block[start - first : end - first, :, columns]
        if release and mapped_bytes:
            release_pages(self.mapped)
        total_bytes += mapped_bytes
        faults_after = minor_page_faults()
        if release and faults_before is not None and faults_after is not None and total_bytes >= MEASURED_BYTES:
            self.faults_per_mib = (faults_after - faults_before) * 2**20 / total_bytes


def copy_from_map(spatial: np.ndarray, indices: list[int] | None, mapped: Any) -> np.ndarray:
    """Copy a ``(bands, h, w)`` view of a memory map into memory, releasing pages as it goes.

    The copy follows the file's byte order (band by band for BSQ, row blocks of all bands
    for BIL/BIP), one contiguous run of at most :data:`MAPPED_BYTES` of file rows at a time,
    and the map's pages are released after each run. Nothing is prepared ahead (see
    :class:`MappedWindowCopier` for window-by-window scans).

    Args:
        spatial: the window as a view of the map (any axis order on disk).
        indices: bands to keep, in order, repeats allowed (None: all).
        mapped: the memory map whose pages are released (None: keep them mapped).

    Returns:
        A C-contiguous, native-byte-order array of shape ``(len(indices) or bands, h, w)``.
    """
    copier = MappedWindowCopier(spatial, mapped)
    _, height, width = spatial.shape
    return copier.read(slice(0, height), slice(0, width), indices, release=mapped is not None, prefetch_bytes=0)


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
    touched are released afterwards (see :class:`MappedWindowCopier`), so scanning a
    large file window by window keeps the resident size bounded: at most
    ``prefetch_bytes`` of windows prepared ahead of a raster scan, plus
    :data:`MAPPED_BYTES` of mapped file rows, plus the window returned. Set
    ``release_pages`` to False to keep the pages mapped instead (the resident size
    then grows towards the file size, as with a plain numpy.memmap).
    """

    release_pages: bool = True
    prefetch_bytes: int = PREFETCH_BYTES
    _copier: MappedWindowCopier | None = None

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
        if getattr(self._array, "_mmap", None) is not None:
            if self._copier is None:
                self._copier = MappedWindowCopier(self._array, self._array)
            return self._copier.read(rows, cols, indices, release=self.release_pages, prefetch_bytes=self.prefetch_bytes)
        spatial = self._array[:, rows, cols]
        return np.array(spatial if indices is None else spatial[indices])

    def close(self) -> None:
        self._copier = None
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
