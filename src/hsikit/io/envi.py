"""ENVI raster files (a text ``.hdr`` header beside a raw data file) through the ``spectral`` package.

Reading uses ``spectral.io.envi`` to parse the header and to memory-map the data
file, so nothing is loaded until used: the cube's array is a ``(bands, H, W)``
view of the ``numpy.memmap`` (a plain view for BSQ; a transposed view for BIL
``(H, bands, W)`` and BIP ``(H, W, bands)``). :class:`EnviReader` reads windows
as in-memory copies and releases the mapped pages afterwards, so a window-by-window
scan of a file larger than RAM stays at a bounded resident size; when the windows
follow a raster scan, the next windows of a strip of rows are cut from the rows
already mapped, within a fixed memory budget
(:class:`~hsikit.io.common.MappedWindowCopier`).

Header fields understood: ``wavelength``, ``fwhm``, ``band names``,
``wavelength units`` (Micrometers, Nanometers, Millimeters, Wavenumber, Index),
``map info`` (→ affine transform and, for UTM / geographic WGS-84, the CRS),
``coordinate system string`` (WKT, preferred for the CRS), ``data ignore value``
(→ nodata). Other fields are kept in ``metadata["envi"]``.

Writing is atomic: header and data go to temporary siblings that are renamed
together (:func:`hsikit.io.atomic.atomic_paths`), data file first, header last.
The header is written by this module (not ``spectral``) so that WKT strings and
band names keep their commas inside ``{...}``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from affine import Affine

from hsikit.cube import Cube, Window, as_affine, crs_to_string
from hsikit.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    InvalidCubeError,
    UnsupportedFormatError,
)
from hsikit.io.atomic import atomic_paths
from hsikit.io.base import CubeReader, CubeWriter
from hsikit.io.common import (
    PREFETCH_BYTES,
    MappedWindowCopier,
    check_bands,
    check_window,
    release_pages,
    require_file,
    rows_per_chunk,
)

Interleave = Literal["bsq", "bil", "bip"]

# Data-file extensions tried beside a header (and the reverse), in this order.
DATA_EXTENSIONS = ("", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin", ".hyspex", ".sli")
_ENVI_DTYPES = {
    "uint8": 1,
    "int16": 2,
    "int32": 3,
    "float32": 4,
    "float64": 5,
    "complex64": 6,
    "complex128": 9,
    "uint16": 12,
    "uint32": 13,
    "int64": 14,
    "uint64": 15,
}
_WAVELENGTH_FACTORS = {
    "nanometers": 1.0,
    "nanometer": 1.0,
    "nm": 1.0,
    "micrometers": 1000.0,
    "micrometer": 1000.0,
    "microns": 1000.0,
    "micron": 1000.0,
    "um": 1000.0,
    "µm": 1000.0,
    "millimeters": 1.0e6,
    "millimeter": 1.0e6,
    "mm": 1.0e6,
}
_KNOWN_FIELDS = {
    "samples",
    "lines",
    "bands",
    "header offset",
    "file type",
    "data type",
    "interleave",
    "byte order",
    "wavelength",
    "fwhm",
    "band names",
    "wavelength units",
    "map info",
    "coordinate system string",
    "data ignore value",
    "hsikit transform",
}


# ---------------------------------------------------------------------- file pairs
def header_for_data(data_path: str | os.PathLike) -> Path | None:
    """The ``.hdr`` beside a data file (``x.img`` → ``x.hdr`` or ``x.img.hdr``), or None."""
    data_path = Path(data_path)
    candidates = []
    if data_path.suffix:
        candidates += [data_path.with_suffix(".hdr"), data_path.with_suffix(".HDR")]
    candidates += [Path(str(data_path) + ".hdr"), Path(str(data_path) + ".HDR")]
    return next((c for c in candidates if c.is_file()), None)


def data_for_header(header_path: str | os.PathLike) -> Path:
    """The data file beside an ENVI header.

    Raises:
        DataFileNotFoundError: none of the usual names exists; the message names
            the header and every file name tried.
    """
    header_path = Path(header_path)
    stem = header_path.with_suffix("")
    tried = []
    for extension in DATA_EXTENSIONS:
        for variant in dict.fromkeys((extension, extension.upper())):
            candidate = Path(str(stem) + variant)
            tried.append(candidate.name)
            if candidate.is_file():
                return candidate
    raise DataFileNotFoundError(
        Path(str(stem) + ".img"),
        f"The ENVI header '{header_path}' has no data file beside it (tried {', '.join(tried)}); "
        "put the data file next to the header with the same name",
    )


def find_envi_pair(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(header, data)`` for a path naming either file of an ENVI pair."""
    path = require_file(path)
    if path.suffix.lower() == ".hdr":
        return path, data_for_header(path)
    header = header_for_data(path)
    if header is None:
        raise DataFileNotFoundError(
            path.with_suffix(".hdr"),
            f"'{path}' is read as ENVI but has no header beside it; put its .hdr file next to it",
        )
    return header, path


# ---------------------------------------------------------------------- header fields
def _floats(values: Any) -> np.ndarray | None:
    if values is None:
        return None
    items = values if isinstance(values, list) else str(values).strip("{}").split(",")
    try:
        return np.asarray([float(v) for v in items if str(v).strip() != ""], dtype=np.float64)
    except ValueError:
        return None


def _wavelength_factor(units: str | None, values: np.ndarray) -> float | None:
    """Factor to nanometres for ``wavelength units``; None when the values are not wavelengths."""
    name = (units or "").strip().lower()
    if name in _WAVELENGTH_FACTORS:
        return _WAVELENGTH_FACTORS[name]
    if name in ("index", "ghz", "mhz", "wavenumber"):
        return None  # handled separately (wavenumber) or not a wavelength at all
    return 1000.0 if values.size and np.nanmax(values) < 20 else 1.0


def parse_band_info(header: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None, list[str] | None]:
    """Band centres and FWHM in nm and band names from a parsed header."""
    centers = _floats(header.get("wavelength"))
    fwhm = _floats(header.get("fwhm"))
    units = header.get("wavelength units")
    names = header.get("band names")
    band_names = [str(n) for n in names] if isinstance(names, list) else None
    if centers is not None and str(units or "").strip().lower() == "wavenumber":
        # cm^-1 → nm; a width converts around its centre.
        nm = 1.0e7 / centers
        if fwhm is not None and fwhm.size == centers.size:
            fwhm = np.abs(1.0e7 / (centers - fwhm / 2) - 1.0e7 / (centers + fwhm / 2))
        return nm, fwhm, band_names
    if centers is None:
        return None, None, band_names
    factor = _wavelength_factor(units, centers)
    if factor is None:
        return None, None, band_names
    return centers * factor, None if fwhm is None else fwhm * factor, band_names


def parse_map_info(header: dict[str, Any], source: str = "") -> tuple[Affine | None, str | None]:
    """Affine transform and CRS from ``map info`` / ``coordinate system string``.

    ENVI's reference pixel is 1-based with (1, 1) the upper-left *corner* of the
    upper-left pixel, so the top-left corner is ``x - (ref_x - 1) * size_x``.
    """
    crs = None
    wkt = header.get("coordinate system string")
    if wkt:
        crs = _compact_crs(",".join(wkt) if isinstance(wkt, list) else str(wkt).strip("{}"))
    transform = None
    custom = _floats(header.get("hsikit transform"))
    info = header.get("map info")
    if isinstance(info, list) and len(info) >= 7:
        fields = [str(v).strip() for v in info]
        try:
            ref_x, ref_y, map_x, map_y, size_x, size_y = (float(v) for v in fields[1:7])
        except ValueError:
            warnings.warn(f"{source}: unreadable ENVI 'map info' {info}; the cube has no transform", stacklevel=3)
        else:
            rotation = next((f.split("=", 1)[1] for f in fields if f.lower().startswith("rotation")), None)
            if rotation is not None and float(rotation) != 0.0:
                warnings.warn(
                    f"{source}: ENVI 'map info' has rotation={rotation}, which hsikit does not convert; "
                    "the cube has no transform (reproject the file to a north-up grid)",
                    stacklevel=3,
                )
            else:
                transform = Affine(
                    size_x, 0.0, map_x - (ref_x - 1.0) * size_x, 0.0, -size_y, map_y + (ref_y - 1.0) * size_y
                )
            from_map_info = _crs_from_map_info(fields)
            if crs is None or (from_map_info is not None and not crs.startswith("EPSG:")):
                crs = from_map_info or crs
    elif custom is not None and custom.size == 6:
        transform = Affine(*custom)
    return transform, crs


_TOP_LEVEL_EPSG = re.compile(r'AUTHORITY\[\s*"EPSG"\s*,\s*"(\d+)"\s*\]\s*\]\s*$')


def _compact_crs(wkt: str) -> str:
    """``"EPSG:n"`` when a WKT1 string ends with its own EPSG authority, else the WKT unchanged."""
    match = _TOP_LEVEL_EPSG.search(wkt.strip())
    return f"EPSG:{match.group(1)}" if match else wkt


def _crs_from_map_info(fields: list[str]) -> str | None:
    projection = fields[0].lower()
    datum = next((f for f in fields[7:] if "wgs" in f.lower() or "nad" in f.lower()), "")
    if projection == "utm" and len(fields) >= 9:
        try:
            zone = int(float(fields[7]))
        except ValueError:
            return None
        north = fields[8].lower().startswith("n")
        if datum.lower().replace("-", "").replace(" ", "") == "wgs84":
            return f"EPSG:{32600 + zone if north else 32700 + zone}"
        if "nad" in datum.lower() and "83" in datum and north:
            return f"EPSG:{26900 + zone}"
        return None
    if projection.startswith("geographic") and datum.lower().replace("-", "").replace(" ", "") == "wgs84":
        return "EPSG:4326"
    return None


def _nodata(header: dict[str, Any]) -> float | None:
    value = header.get("data ignore value")
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------- reading
class EnviReader(CubeReader):
    """Memory-mapped ENVI cube; windows are read as in-memory copies.

    Args:
        path: the header or the data file.
        release_pages: release the mapped pages after each block of a window (default):
            a window-by-window scan then stays at about one window plus ``prefetch_bytes``
            plus 16 MB resident, whatever the file size. False keeps them mapped, which
            lets the resident size grow towards the file size, as a plain numpy.memmap does.
        prefetch_bytes: memory (bytes) for windows prepared ahead when the requests follow
            a raster scan (default 256 MiB; 0 prepares none). In BSQ and BIL files the
            windows of one strip of rows share file pages; while mapping them is costly
            (4 KB page-cache pages), cutting the next windows from the rows mapped for the
            current one maps each page about once per strip instead of once per window
            (see :class:`hsikit.io.common.MappedWindowCopier`).

    Attributes:
        header_path, data_path: the two files.
        interleave: ``"bsq"``, ``"bil"`` or ``"bip"``.
        header: the parsed header (lower-case keys; strings or lists of strings).
    """

    def __init__(
        self, path: str | os.PathLike, *, release_pages: bool = True, prefetch_bytes: int = PREFETCH_BYTES
    ) -> None:
        import spectral.io.envi as envi

        self.release_pages = release_pages
        self.prefetch_bytes = prefetch_bytes
        self.header_path, self.data_path = find_envi_pair(path)
        self.path = Path(path)
        try:
            image = envi.open(str(self.header_path), str(self.data_path))
        except envi.MissingEnviHeaderParameter as error:
            raise CorruptFileError(
                f"'{self.header_path}': the ENVI header lacks the required field {error}; "
                "add it (samples, lines, bands, data type, interleave, byte order)"
            ) from error
        except (envi.EnviException, ValueError, KeyError, UnicodeDecodeError) as error:
            raise CorruptFileError(
                f"'{self.header_path}': not a readable ENVI header ({type(error).__name__}: {error})"
            ) from error
        if isinstance(image, envi.SpectralLibrary):
            raise UnsupportedFormatError(
                f"'{self.header_path}' is an ENVI spectral library, not an image; read it with spectral.envi.open"
            )
        header: dict[str, Any] = dict(image.metadata)
        self.header = header
        self.interleave: Interleave = str(header["interleave"]).strip().lower()  # type: ignore[assignment]
        if self.interleave not in ("bsq", "bil", "bip"):
            raise CorruptFileError(f"'{self.header_path}': unknown interleave {self.interleave!r} (bsq, bil or bip)")
        bands, rows, cols = int(image.nbands), int(image.nrows), int(image.ncols)
        dtype = np.dtype(image.dtype)
        needed = int(image.offset) + bands * rows * cols * dtype.itemsize
        actual = self.data_path.stat().st_size
        if actual < needed:
            raise CorruptFileError(
                f"'{self.data_path}' holds {actual} bytes but its header '{self.header_path.name}' describes "
                f"{bands} bands x {rows} lines x {cols} samples of {dtype.name} ({needed} bytes with the offset); "
                "the data file is truncated: copy or download it again"
            )
        self._memmap: np.memmap = image.open_memmap(interleave="source", writable=False)
        if self.interleave == "bsq":
            view = self._memmap
        elif self.interleave == "bil":
            view = self._memmap.transpose(1, 0, 2)
        else:
            view = self._memmap.transpose(2, 0, 1)
        self._view: np.ndarray = view
        self._copier = MappedWindowCopier(view, self._memmap)
        self.shape = (bands, rows, cols)
        self.dtype = dtype
        self.wavelengths, self.fwhm, self.band_names = parse_band_info(header)
        if self.band_names is not None and len(self.band_names) != bands:
            self.band_names = None
        for name in ("wavelengths", "fwhm"):
            vector = getattr(self, name)
            if vector is not None and vector.size != bands:
                warnings.warn(
                    f"'{self.header_path}': {vector.size} {name} for {bands} bands; ignoring them", stacklevel=2
                )
                setattr(self, name, None)
        self.transform, self.crs = parse_map_info(header, f"'{self.header_path}'")
        self.nodata = _nodata(header)
        extra = {k: v for k, v in header.items() if k not in _KNOWN_FIELDS}
        self.metadata = {
            "source": os.fspath(path),
            "format": "envi",
            "interleave": self.interleave,
            "header": str(self.header_path),
            "data_file": str(self.data_path),
            "envi": extra,
        }

    def view(self) -> np.ndarray:
        """The whole cube as a ``(bands, H, W)`` view of the memory map (nothing is loaded)."""
        return self._view

    def read_array(self, window: Window | None = None, bands: list[int] | None = None) -> np.ndarray:
        """Pixels of ``window`` (all when None) as an in-memory ``(bands, h, w)`` array."""
        rows, cols = check_window(window, self.height, self.width, str(self.path))
        indices = check_bands(bands, self.bands, str(self.path))
        return self._copier.read(
            rows, cols, indices, release=self.release_pages, prefetch_bytes=self.prefetch_bytes
        )

    def close(self) -> None:
        handle = getattr(self._memmap, "_mmap", None)
        self._view = self._memmap = np.empty((0, 0, 0), dtype=self.dtype)  # type: ignore[assignment]
        self._copier = MappedWindowCopier(self._view, None)  # drops the prepared windows and the map's views
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()


# ---------------------------------------------------------------------- header writing
def _list(values: Sequence[Any], fmt: str = "{}") -> str:
    return "{ " + ", ".join(fmt.format(v) for v in values) + " }"


def map_info_for(crs: str | None, transform: Affine) -> tuple[str | None, str | None]:
    """``(map info, coordinate system string)`` header values for a georeference.

    North-up grids become a ``map info`` (UTM/WGS-84 and geographic WGS-84 by name,
    other CRSs as ``Arbitrary``; the WKT goes to ``coordinate system string``).
    Rotated or south-up grids return ``(None, wkt)`` and the caller stores the
    transform in the ``hsikit transform`` field instead.
    """
    wkt = None
    epsg = None
    if crs is not None:
        from rasterio.crs import CRS

        parsed = CRS.from_user_input(crs)
        wkt = parsed.to_wkt()
        epsg = parsed.to_epsg()
    if transform.b != 0 or transform.d != 0 or transform.e >= 0:
        return None, wkt
    x, y, size_x, size_y = transform.c, transform.f, transform.a, -transform.e
    core = f"1, 1, {x!r}, {y!r}, {size_x!r}, {size_y!r}"
    if epsg is not None and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        zone, hemisphere = epsg % 100, "North" if epsg < 32700 else "South"
        return f"{{UTM, {core}, {zone}, {hemisphere}, WGS-84, units=Meters}}", wkt
    if epsg == 4326:
        return f"{{Geographic Lat/Lon, {core}, WGS-84, units=Degrees}}", wkt
    return f"{{Arbitrary, {core}}}", wkt


def format_envi_header(
    shape: tuple[int, int, int],
    dtype: Any,
    *,
    interleave: Interleave = "bsq",
    wavelengths: np.ndarray | None = None,
    fwhm: np.ndarray | None = None,
    band_names: Sequence[str] | None = None,
    crs: str | None = None,
    transform: Affine | None = None,
    nodata: float | None = None,
    description: str = "written by hsikit",
    byte_order: int | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Text of an ENVI header for a ``(bands, H, W)`` cube of ``dtype`` (wavelengths in nm)."""
    dtype = np.dtype(dtype)
    code = _ENVI_DTYPES.get(dtype.newbyteorder("=").name)
    if code is None:
        raise UnsupportedFormatError(f"ENVI cannot store dtype {dtype}; cast to float32, int16, uint16...")
    if byte_order is None:
        little = dtype.byteorder == "<" or (dtype.byteorder in "=|" and sys.byteorder == "little")
        byte_order = 0 if little else 1
    bands, rows, cols = shape
    lines = [
        "ENVI",
        f"description = {{{description}}}",
        f"samples = {cols}",
        f"lines = {rows}",
        f"bands = {bands}",
        "header offset = 0",
        "file type = ENVI Standard",
        f"data type = {code}",
        f"interleave = {interleave}",
        f"byte order = {byte_order}",
    ]
    if transform is not None:
        map_info, wkt = map_info_for(crs, transform)
        if map_info is not None:
            lines.append(f"map info = {map_info}")
        else:
            lines.append(f"hsikit transform = {_list(tuple(transform)[:6], '{!r}')}")
        if wkt is not None:
            lines.append(f"coordinate system string = {{{wkt}}}")
    elif crs is not None:
        from rasterio.crs import CRS

        lines.append(f"coordinate system string = {{{CRS.from_user_input(crs).to_wkt()}}}")
    if nodata is not None:
        lines.append(f"data ignore value = {float(nodata)!r}")
    if wavelengths is not None:
        lines.append("wavelength units = Nanometers")
        lines.append(f"wavelength = {_list([float(v) for v in wavelengths], '{!r}')}")
    if fwhm is not None:
        lines.append(f"fwhm = {_list([float(v) for v in fwhm], '{!r}')}")
    if band_names is not None:
        cleaned = [str(n).replace(",", ";").replace("{", "(").replace("}", ")") for n in band_names]
        lines.append(f"band names = {_list(cleaned)}")
    for key, value in (extra or {}).items():
        text = _list(value) if isinstance(value, (list, tuple)) else str(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- writing
def envi_output_paths(path: str | os.PathLike, data_extension: str | None = None) -> tuple[Path, Path]:
    """``(header, data)`` paths for writing to ``path`` (either the ``.hdr`` or the data file)."""
    path = Path(path)
    if path.suffix.lower() == ".hdr":
        return path, path.with_suffix(data_extension if data_extension is not None else ".img")
    header = path.with_suffix(".hdr") if path.suffix else Path(str(path) + ".hdr")
    return header, path


def interleave_for(path: str | os.PathLike, interleave: str | None) -> Interleave:
    """The interleave asked for, else the one named by a ``.bsq``/``.bil``/``.bip`` extension, else BSQ."""
    if interleave is None:
        suffix = Path(path).suffix.lower().lstrip(".")
        interleave = suffix if suffix in ("bsq", "bil", "bip") else "bsq"
    interleave = interleave.lower()
    if interleave not in ("bsq", "bil", "bip"):
        raise UnsupportedFormatError(f"'{path}': interleave must be 'bsq', 'bil' or 'bip', got {interleave!r}")
    return interleave  # type: ignore[return-value]


class EnviWriter(CubeWriter):
    """Write an ENVI cube window by window; header and data appear together on :meth:`close`.

    Args:
        path: target header (``.hdr``) or data file.
        shape: ``(bands, H, W)``.
        dtype: element type of the data file.
        interleave: ``"bsq"`` (default, or from a ``.bil``/``.bip`` extension), ``"bil"``, ``"bip"``.
        crs, transform, wavelengths (nm), fwhm (nm), band_names, nodata: written to the header.
        data_extension: extension of the data file when ``path`` is the header (default ``.img``).
        description: the header's description field.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: tuple[int, int, int],
        dtype: Any,
        *,
        interleave: str | None = None,
        crs: Any = None,
        transform: Any = None,
        wavelengths: Sequence[float] | np.ndarray | None = None,
        fwhm: Sequence[float] | np.ndarray | None = None,
        band_names: Sequence[str] | None = None,
        nodata: float | None = None,
        data_extension: str | None = None,
        description: str = "written by hsikit",
    ) -> None:
        if len(shape) != 3 or min(shape) <= 0:
            raise InvalidCubeError(f"'{path}': ENVI shape must be (bands, H, W) with positive sizes, got {shape}")
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.dtype = np.dtype(dtype)
        self.interleave = interleave_for(path, interleave)
        self.header_path, self.data_path = envi_output_paths(path, data_extension)
        self._header_text = format_envi_header(
            self.shape,
            self.dtype,
            interleave=self.interleave,
            wavelengths=None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64),
            fwhm=None if fwhm is None else np.asarray(fwhm, dtype=np.float64),
            band_names=band_names,
            crs=crs_to_string(crs),
            transform=as_affine(transform),
            nodata=nodata,
            description=description,
        )
        self._stack = contextlib.ExitStack()
        self._tmp_header, self._tmp_data = self._stack.enter_context(
            atomic_paths([self.header_path, self.data_path])
        )
        bands, rows, cols = self.shape
        source_shape = {"bsq": (bands, rows, cols), "bil": (rows, bands, cols), "bip": (rows, cols, bands)}
        try:
            self._memmap = np.memmap(self._tmp_data, dtype=self.dtype, mode="w+", shape=source_shape[self.interleave])
        except BaseException:
            self.abort()
            raise
        axes = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (2, 0, 1)}[self.interleave]
        self._view = self._memmap.transpose(axes)
        self._closed = False

    def write_window(self, array: np.ndarray, window: Window) -> None:
        """Write a ``(bands, h, w)`` array at ``window``."""
        rows, cols = check_window(window, self.shape[1], self.shape[2], str(self.path))
        array = np.asarray(array)
        expected = (self.shape[0], window.height, window.width)
        if array.shape != expected:
            raise InvalidCubeError(f"'{self.path}': window data of shape {array.shape}, expected {expected}")
        self._view[:, rows, cols] = array
        release_pages(self._memmap)

    def close(self) -> None:
        """Flush the data, write the header, and rename both into place."""
        if self._closed:
            return
        try:
            self._memmap.flush()
            del self._view
            self._release_memmap()
            self._tmp_header.write_text(self._header_text, encoding="ascii", errors="replace")
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._stack.close()

    def abort(self) -> None:
        """Delete the temporary files; the target (if it existed) is left as it was."""
        if self._closed:
            return
        self._closed = True
        self._release_memmap()
        error = RuntimeError("ENVI write aborted")
        self._stack.__exit__(type(error), error, None)

    def _release_memmap(self) -> None:
        memmap = getattr(self, "_memmap", None)
        if memmap is not None:
            handle = getattr(memmap, "_mmap", None)
            self._memmap = None  # type: ignore[assignment]
            del memmap
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()


def write_envi(
    cube: Cube,
    path: str | os.PathLike,
    *,
    interleave: str | None = None,
    dtype: Any = None,
    data_extension: str | None = None,
    description: str = "written by hsikit",
) -> Path:
    """Write a cube as ENVI (header + data, atomically); returns ``path``.

    The cube is copied a block of rows at a time, so a memory-mapped cube larger
    than RAM can be converted. Wavelengths are written in nanometres.
    """
    writer = EnviWriter(
        path,
        cube.shape,
        dtype or cube.dtype,
        interleave=interleave,
        crs=cube.crs,
        transform=cube.transform,
        wavelengths=cube.wavelengths,
        fwhm=cube.fwhm,
        band_names=cube.band_names,
        nodata=cube.nodata,
        data_extension=data_extension,
        description=description,
    )
    with writer:
        step = rows_per_chunk(cube.data)
        for start in range(0, cube.height, step):
            height = min(step, cube.height - start)
            writer.write_window(cube.data[:, start : start + height], Window(start, 0, height, cube.width))
            release_pages(cube.data)  # a memory-mapped source stays at a bounded resident size
    return Path(path)


__all__ = [
    "EnviReader",
    "EnviWriter",
    "write_envi",
    "find_envi_pair",
    "header_for_data",
    "data_for_header",
    "format_envi_header",
    "parse_band_info",
    "parse_map_info",
    "map_info_for",
]
