"""NumPy ``.npy`` (memory-mapped) and ``.npz`` files.

``.npy`` holds one array and nothing else, so its axis order comes from the
``layout=`` argument (``"auto"`` follows :mod:`hsikit.io.layout`). It is opened
with ``mmap_mode="r"``: the cube is a view of the file and only what is used is read.
The header is checked against the file size first, so a truncated file raises
:class:`~hsikit.errors.CorruptFileError` instead of a numpy error.

``.npz`` archives are read fully (they are zip files, possibly compressed). The
cube is the entry named ``cube``, else the single 3-D numeric entry (several →
:class:`~hsikit.errors.MatKeyError` asking for ``key=``). Entries ``wavelengths``
(or ``bands``), ``fwhm``, ``band_names``, ``layout``, ``crs``, ``transform`` and
``nodata`` are used when present; :func:`write_npz` writes them all, so an
``.npz`` written by hsikit reads back without arguments. Pickled objects are never loaded.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.cube import Cube, Window, as_wavelengths_nm
from hsikit.errors import CorruptFileError, InvalidCubeError, MatKeyError, UnsupportedFormatError
from hsikit.io.atomic import _fsync_file, atomic_path, temporary_sibling
from hsikit.io.base import CubeWriter
from hsikit.io.common import (
    PREFETCH_BYTES,
    ArrayCubeReader,
    as_label_map,
    check_window,
    is_label_like,
    require_file,
)
from hsikit.io.layout import ResolvedLayout, from_chw, resolve_layout, to_chw

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
_LABEL_NAMES = ("labels", "label", "gt", "groundtruth", "ground_truth", "map", "mask")


def read_npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data_offset)`` of a ``.npy`` file, checked against its size.

    Raises:
        CorruptFileError: not an ``.npy`` file, unreadable header, or fewer data bytes than the header says.
        UnsupportedFormatError: object (pickled) arrays.
    """
    path = require_file(path)
    fmt = np.lib.format
    with open(path, "rb") as handle:
        if handle.read(6) != NPY_MAGIC:
            raise CorruptFileError(f"'{path}' is not a NumPy .npy file (no \\x93NUMPY signature); check the extension")
        handle.seek(0)
        try:
            version = fmt.read_magic(handle)
            # Version 3 differs from 2 only by a UTF-8 header, the same for numeric dtypes.
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = reader(handle)
        except (ValueError, OSError, SyntaxError) as error:
            raise CorruptFileError(f"'{path}': unreadable .npy header ({error}); the file is damaged") from error
        offset = handle.tell()
    if dtype.hasobject:
        raise UnsupportedFormatError(f"'{path}' holds Python objects (pickle); hsikit reads numeric arrays only")
    needed = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual < needed:
        raise CorruptFileError(
            f"'{path}' holds {actual} bytes but its header describes a {dtype.name} array of shape {shape} "
            f"({needed} bytes); the file is truncated: copy or download it again"
        )
    return tuple(int(v) for v in shape), dtype, bool(fortran), offset


def open_npy(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a checked ``.npy`` file read-only."""
    read_npy_header(path)
    return np.load(path, mmap_mode="r", allow_pickle=False)


class NpyReader(ArrayCubeReader):
    """A memory-mapped ``.npy`` cube as ``(bands, H, W)`` (a view of the file; windows are copies).

    ``release_pages`` and ``prefetch_bytes`` bound the resident size of a window-by-window
    scan as for ENVI files (see :class:`~hsikit.io.envi.EnviReader` and
    :class:`~hsikit.io.common.MappedWindowCopier`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        layout: str = "auto",
        *,
        band_count: int | None = None,
        release_pages: bool = True,
        prefetch_bytes: int = PREFETCH_BYTES,
    ) -> None:
        self.release_pages = release_pages
        self.prefetch_bytes = prefetch_bytes
        array = open_npy(path)
        metadata: dict[str, Any] = {"source": os.fspath(path), "format": "npy"}
        if array.ndim == 2:
            chw = array[np.newaxis]
            metadata["layout"] = "HW (single band)"
        else:
            resolved = resolve_layout(array.shape, layout, band_count=band_count, source=f"'{path}'")
            chw = to_chw(array, resolved)
            metadata["layout"] = resolved
        super().__init__(chw, path, metadata=metadata)


def _load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = require_file(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise UnsupportedFormatError(
                f"'{path}' holds Python objects (pickle); hsikit reads numeric arrays only"
            ) from error
        raise CorruptFileError(f"'{path}': unreadable .npz archive ({error})") from error
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as error:
        raise CorruptFileError(
            f"'{path}': not a readable .npz archive ({error}); the file is truncated or damaged"
        ) from error


def _describe(entries: dict[str, np.ndarray], names: Any = None) -> str:
    chosen = entries if names is None else {n: entries[n] for n in names}
    return ", ".join(f"{n} {'x'.join(map(str, a.shape)) or 'scalar'} {a.dtype}" for n, a in chosen.items()) or "nothing"


def _text(entry: np.ndarray | None) -> str | None:
    if entry is None or entry.dtype.kind not in "US" or entry.size != 1:
        return None
    return str(entry.ravel()[0])


class NpzReader(ArrayCubeReader):
    """A cube from an ``.npz`` archive (loaded in memory), see the module docstring for the keys."""

    def __init__(
        self, path: str | os.PathLike, key: str | None = None, layout: str = "auto", *, band_count: int | None = None
    ) -> None:
        entries = _load_npz(path)
        numeric = {n: a for n, a in entries.items() if a.dtype.kind in "biuf"}
        if key is not None:
            if key not in entries:
                raise MatKeyError(f"'{path}': no entry {key!r}; the archive holds {_describe(entries)}. Pass one as key=")
            name = key
        else:
            cubes = [n for n, a in numeric.items() if a.ndim == 3 and min(a.shape) > 1]
            if "cube" in cubes:
                name = "cube"
            elif len(cubes) == 1:
                name = cubes[0]
            elif cubes:
                raise MatKeyError(
                    f"'{path}': several 3-D arrays could be the cube: {_describe(entries, cubes)}; pass key= naming one"
                )
            else:
                raise MatKeyError(
                    f"'{path}': no 3-D numeric array to read as a cube; the archive holds {_describe(entries)}. "
                    "Pass key= naming the cube entry"
                )
        array = entries[name]
        if array.dtype.kind not in "biuf" or array.ndim != 3:
            raise MatKeyError(f"'{path}': entry {name!r} ({_describe(entries, [name])}) is not a 3-D numeric cube")
        stored_layout = _text(entries.get("layout"))
        wavelength_entry = next((entries[k] for k in ("wavelengths", "bands") if k in numeric), None)
        wavelengths = None
        if wavelength_entry is not None and wavelength_entry.ndim == 1 and wavelength_entry.size in (
            array.shape[0],
            array.shape[2],
        ):
            wavelengths = as_wavelengths_nm(wavelength_entry, "auto")
        if layout == "auto" and stored_layout in ("CHW", "HWC"):
            layout = stored_layout
        maps = [a.shape for n, a in numeric.items() if a.ndim == 2 and n != name]
        resolved = resolve_layout(
            array.shape,
            layout,
            band_count=band_count if band_count is not None else (None if wavelengths is None else wavelengths.size),
            spatial_shapes=maps,  # type: ignore[arg-type]
            source=f"'{path}' key '{name}'",
        )
        chw = np.ascontiguousarray(to_chw(array, resolved))
        if wavelengths is not None and wavelengths.size != chw.shape[0]:
            wavelengths = None
        fwhm = entries.get("fwhm")
        fwhm = None if fwhm is None or wavelengths is None or fwhm.size != chw.shape[0] else fwhm.astype(np.float64)
        names = entries.get("band_names")
        band_names = [str(v) for v in names] if names is not None and names.size == chw.shape[0] else None
        transform = entries.get("transform")
        nodata = entries.get("nodata")
        super().__init__(
            chw,
            path,
            wavelengths=wavelengths,
            fwhm=fwhm,
            band_names=band_names,
            crs=_text(entries.get("crs")),
            transform=None if transform is None or transform.size != 6 else tuple(float(v) for v in transform),
            nodata=None if nodata is None or nodata.size != 1 else float(nodata.ravel()[0]),
            metadata={"source": os.fspath(path), "format": "npz", "key": name, "layout": resolved},
        )


def read_npy_labels(path: str | os.PathLike) -> np.ndarray:
    """An ``(H, W)`` label map from a ``.npy`` file."""
    return as_label_map(np.asarray(open_npy(path)), str(path))


def read_npz_labels(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, str]:
    """The ``(H, W)`` label map of an ``.npz`` archive and its key (detection as for ``.mat``)."""
    entries = _load_npz(path)
    if key is not None:
        if key not in entries:
            raise MatKeyError(f"'{path}': no entry {key!r}; the archive holds {_describe(entries)}. Pass one as key=")
        return as_label_map(entries[key], f"{path}' key '{key}"), key
    candidates = [n for n, a in entries.items() if is_label_like(a)]
    if len(candidates) > 1:
        named = [n for n in candidates if n.lower() in _LABEL_NAMES]
        candidates = named if len(named) == 1 else candidates
    if len(candidates) == 1:
        return as_label_map(entries[candidates[0]], f"{path}' key '{candidates[0]}"), candidates[0]
    if candidates:
        raise MatKeyError(
            f"'{path}': several 2-D integer arrays could be the labels: {_describe(entries, candidates)}; "
            "pass key= naming one"
        )
    raise MatKeyError(
        f"'{path}': no 2-D array of whole numbers to read as labels; the archive holds {_describe(entries)}. "
        "Pass key= naming the label entry"
    )


class NpyWriter(CubeWriter):
    """Write a ``.npy`` cube window by window through a memory map; renamed into place on :meth:`close`.

    Args:
        path: target ``.npy``.
        shape: ``(bands, H, W)``.
        dtype: element type.
        layout: axis order stored in the file, ``"CHW"`` (default) or ``"HWC"``.
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int, int], dtype: Any, *, layout: str = "CHW") -> None:
        if layout not in ("CHW", "HWC"):
            raise InvalidCubeError(f"'{path}': layout must be 'CHW' or 'HWC' for writing, got {layout!r}")
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.layout: ResolvedLayout = layout  # type: ignore[assignment]
        stored_shape = self.shape if layout == "CHW" else (self.shape[1], self.shape[2], self.shape[0])
        self._tmp = temporary_sibling(self.path)
        self._closed = False
        try:
            self._memmap = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.dtype(dtype), shape=stored_shape)
        except BaseException:
            self.abort()
            raise
        self._view = to_chw(self._memmap, self.layout)

    def write_window(self, array: np.ndarray, window: Window) -> None:
        """Write a ``(bands, h, w)`` array at ``window``."""
        rows, cols = check_window(window, self.shape[1], self.shape[2], str(self.path))
        array = np.asarray(array)
        expected = (self.shape[0], window.height, window.width)
        if array.shape != expected:
            raise InvalidCubeError(f"'{self.path}': window data of shape {array.shape}, expected {expected}")
        self._view[:, rows, cols] = array

    def close(self) -> None:
        """Flush and rename the file onto the target."""
        if self._closed:
            return
        try:
            self._memmap.flush()
            del self._view, self._memmap
            _fsync_file(self._tmp)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Delete the temporary file; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        self.__dict__.pop("_view", None)
        self.__dict__.pop("_memmap", None)
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


def write_npy(cube: Cube, path: str | os.PathLike, *, layout: str = "CHW", dtype: Any = None) -> Path:
    """Write the cube's array to ``.npy`` (``layout`` ``"CHW"`` or ``"HWC"``), atomically; returns ``path``.

    Only the array is stored: pass the same ``layout=`` (and wavelengths) when reading it back.
    """
    writer = NpyWriter(path, cube.shape, dtype or cube.dtype, layout=layout)
    with writer:
        writer.write_window(cube.data, Window(0, 0, cube.height, cube.width))
    return Path(path)


def write_npz(
    cube: Cube, path: str | os.PathLike, *, layout: str = "CHW", key: str = "cube", compress: bool = False
) -> Path:
    """Write the cube and its metadata to an ``.npz`` archive, atomically; returns ``path``.

    Entries: ``key`` (the array in ``layout``), ``layout``, and when set ``wavelengths`` (nm),
    ``fwhm``, ``band_names``, ``crs``, ``transform`` (6 affine coefficients), ``nodata``.
    """
    if layout not in ("CHW", "HWC"):
        raise InvalidCubeError(f"'{path}': layout must be 'CHW' or 'HWC' for writing, got {layout!r}")
    entries: dict[str, np.ndarray] = {key: np.asarray(from_chw(np.asarray(cube.data), layout)), "layout": np.array(layout)}
    if cube.wavelengths is not None:
        entries["wavelengths"] = cube.wavelengths
    if cube.fwhm is not None:
        entries["fwhm"] = cube.fwhm
    if cube.band_names is not None:
        entries["band_names"] = np.array(cube.band_names)
    if cube.crs is not None:
        entries["crs"] = np.array(cube.crs)
    if cube.transform is not None:
        entries["transform"] = np.array(tuple(cube.transform)[:6], dtype=np.float64)
    if cube.nodata is not None:
        entries["nodata"] = np.array(cube.nodata)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **entries)
    return Path(path)


__all__ = [
    "NpyReader",
    "NpzReader",
    "NpyWriter",
    "open_npy",
    "read_npy_header",
    "read_npy_labels",
    "read_npz_labels",
    "write_npy",
    "write_npz",
]
