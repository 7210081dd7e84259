"""``open_cube`` / ``save_cube`` / ``open_reader`` / ``create_writer``: one entry point for every format.

The format is chosen from the extension *and* the content:

* ``.tif``/``.tiff`` → GeoTIFF (a file without a TIFF signature → :class:`CorruptFileError`);
* ``.hdr`` → ENVI; ``.img``/``.dat``/``.raw``/``.bsq``/``.bil``/``.bip``/``.bin`` → ENVI when a
  ``.hdr`` lies beside it (else a TIFF by content, an ``.img`` through GDAL, or a clear error);
* ``.mat`` → MATLAB, v5 or v7.3 (HDF5) by content, whatever the extension says;
* ``.npy`` / ``.npz`` → NumPy; ``.lan``/``.gis`` → ERDAS 7.x;
* any other extension: sniffed (TIFF, NumPy, zip, MATLAB, HDF5, ERDAS signatures, or a sibling ``.hdr``),
  else :class:`UnsupportedFormatError` listing the supported extensions.

Heavy libraries (rasterio, h5py, spectral, scipy.io) are imported only when a
file of their format is opened.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from hsikit.cube import Cube, Window
from hsikit.errors import DataFileNotFoundError, LayoutError, UnsupportedFormatError
from hsikit.io.base import CubeReader, CubeWriter
from hsikit.io.common import PREFETCH_BYTES, check_bands, check_window, require_file, scan_nonfinite
from hsikit.io.wavelengths import WavelengthTable, load_wavelengths

CUBE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "geotiff": (".tif", ".tiff"),
    "envi": (".hdr", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin"),
    "mat": (".mat",),
    "npy": (".npy",),
    "npz": (".npz",),
    "erdas-lan": (".lan", ".gis"),
}
WRITE_FORMATS: dict[str, tuple[str, ...]] = {
    "geotiff": (".tif", ".tiff"),
    "envi": (".hdr", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin"),
    "mat": (".mat",),
    "npy": (".npy",),
    "npz": (".npz",),
}
_ENVI_DATA_SUFFIXES = (".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin")
_FORMAT_ALIASES = {
    "tif": "geotiff",
    "tiff": "geotiff",
    "gtiff": "geotiff",
    "geotiff": "geotiff",
    "envi": "envi",
    "mat": "mat",
    "matlab": "mat",
    "v5": "mat",
    "v7.3": "mat",
    "mat-v5": "mat",
    "mat-v7.3": "mat",
    "npy": "npy",
    "npz": "npz",
    "lan": "erdas-lan",
    "gis": "erdas-lan",
    "erdas-lan": "erdas-lan",
}


def supported_extensions() -> list[str]:
    """Every extension :func:`open_cube` recognises."""
    return sorted({ext for extensions in CUBE_EXTENSIONS.values() for ext in extensions})


def _sniff(head: bytes) -> str | None:
    from hsikit.io.geotiff import TIFF_MAGICS
    from hsikit.io.labels import LAN_MAGICS, PNG_MAGIC
    from hsikit.io.matlab import HDF5_SIGNATURE
    from hsikit.io.numpy import NPY_MAGIC, ZIP_MAGIC

    if head[:4] in TIFF_MAGICS:
        return "geotiff"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if head.startswith(b"MATLAB") or head.startswith(HDF5_SIGNATURE):
        return "mat"
    if head[:6] in LAN_MAGICS:
        return "erdas-lan"
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(b"EHFA_HEA"):
        return "gdal"
    return None


def detect_format(path: str | os.PathLike, *, head: bytes | None = None) -> str:
    """The format of an existing file: ``geotiff``, ``envi``, ``mat``, ``npy``, ``npz``, ``erdas-lan``,
    ``png``, ``labelme`` or ``gdal`` (another raster GDAL reads, e.g. ERDAS Imagine ``.img``).

    Raises:
        DataFileNotFoundError: missing file, or an ENVI data file without its header.
        UnsupportedFormatError: an extension and content hsikit does not read.
    """
    from hsikit.io.envi import header_for_data

    path = require_file(path)
    if head is None:
        with open(path, "rb") as handle:
            head = handle.read(8)
    suffix = path.suffix.lower()
    for name, extensions in CUBE_EXTENSIONS.items():
        if suffix in extensions and name != "envi":
            return name
    if suffix == ".hdr":
        return "envi"
    if suffix == ".png":
        return "png"
    if suffix == ".json":
        return "labelme"
    if header_for_data(path) is not None:
        return "envi"
    sniffed = _sniff(head)
    if sniffed is not None:
        return sniffed
    if suffix in _ENVI_DATA_SUFFIXES:
        raise DataFileNotFoundError(
            path.with_suffix(".hdr"),
            f"'{path}' looks like raw ENVI data but has no header beside it; put its .hdr file next to it",
        )
    raise UnsupportedFormatError(
        f"'{path}': unknown format (extension {suffix or 'none'!r}, content not recognised); "
        f"hsikit reads {', '.join(supported_extensions())} (labels also .png, .json LabelMe)"
    )


def _canonical_format(path: Path, format: str | None, *, writing: bool) -> str:
    if format is not None:
        name = _FORMAT_ALIASES.get(format.lower())
        if name is None or (writing and name not in WRITE_FORMATS):
            choices = sorted(WRITE_FORMATS if writing else CUBE_EXTENSIONS)
            raise UnsupportedFormatError(f"'{path}': unknown format {format!r}; use one of {choices}")
        return name
    if not writing:
        return detect_format(path)
    suffix = path.suffix.lower()
    for name, extensions in WRITE_FORMATS.items():
        if suffix in extensions:
            return name
    listed = ", ".join(sorted({e for exts in WRITE_FORMATS.values() for e in exts}))
    raise UnsupportedFormatError(
        f"'{path}': cannot tell the output format from extension {suffix or 'none'!r}; use one of {listed} "
        "or pass format="
    )


# ---------------------------------------------------------------------- reading
def open_reader(
    path: str | os.PathLike,
    key: str | None = None,
    layout: str = "auto",
    *,
    wavelengths: Sequence[float] | np.ndarray | WavelengthTable | str | os.PathLike | None = None,
    wavelength_unit: str = "nm",
    spatial_shape: tuple[int, int] | None = None,
    format: str | None = None,
    release_pages: bool = True,
    prefetch_bytes: int = PREFETCH_BYTES,
) -> CubeReader:
    """Open a cube for windowed reading without loading its pixels (where the format allows).

    ENVI and ``.npy`` are memory-mapped, GeoTIFF is read window by window through GDAL;
    ``.mat``, ``.npz`` and ERDAS files are loaded in memory (their formats have no
    cheap random access) and then served window by window the same way.

    Args:
        path: the file (see :func:`detect_format`).
        key: variable/entry for ``.mat``/``.npz``.
        layout: ``"CHW"``, ``"HWC"`` or ``"auto"`` for ``.mat``/``.npy``/``.npz`` (see :mod:`hsikit.io.layout`).
        wavelengths: band centres (array, :class:`WavelengthTable` or table file) overriding the file's.
        wavelength_unit: unit of ``wavelengths`` when given as numbers.
        spatial_shape: ``(rows, cols)`` for ``(bands, pixels)`` matrices in ``.mat`` files.
        format: force a format instead of detecting it.
        release_pages: for memory-mapped formats (ENVI, ``.npy``), release the pages of each
            window once copied, so a scan stays at a bounded resident size (default). False
            keeps them mapped: faster when neighbouring windows share file pages, but the
            resident size grows towards the file size.
        prefetch_bytes: for memory-mapped formats, the most bytes of the following windows
            of a raster-order scan prepared while a strip's pages are mapped (0 turns it off;
            see :class:`hsikit.io.common.MappedWindowCopier`).

    Returns:
        A :class:`~hsikit.io.base.CubeReader` (``shape``, ``wavelengths``, ``crs``... and
        ``read(window, bands)``). Close it (or use ``with``) when done.
    """
    path = require_file(path)
    kind = _canonical_format(path, format, writing=False)
    centers, table_fwhm = load_wavelengths(wavelengths, wavelength_unit)
    band_count = None if centers is None else int(centers.size)
    reader: CubeReader
    if kind == "geotiff":
        from hsikit.io.geotiff import GeoTiffReader

        reader = GeoTiffReader(path)
    elif kind == "gdal":
        from hsikit.io.geotiff import GeoTiffReader

        reader = GeoTiffReader(path, check_signature=False)
    elif kind == "envi":
        from hsikit.io.envi import EnviReader

        reader = EnviReader(path, release_pages=release_pages, prefetch_bytes=prefetch_bytes)
    elif kind == "mat":
        from hsikit.io.matlab import MatReader

        reader = MatReader(path, key, layout, band_count=band_count, spatial_shape=spatial_shape)
    elif kind == "npy":
        from hsikit.io.numpy import NpyReader

        reader = NpyReader(
            path, layout, band_count=band_count, release_pages=release_pages, prefetch_bytes=prefetch_bytes
        )
    elif kind == "npz":
        from hsikit.io.numpy import NpzReader

        reader = NpzReader(path, key, layout, band_count=band_count)
    elif kind == "erdas-lan":
        from hsikit.io.labels import ErdasLanReader

        reader = ErdasLanReader(path)
    else:
        raise UnsupportedFormatError(
            f"'{path}' is a {kind} file, which holds labels, not a cube; read it with hsikit.io.open_labels"
        )
    reader.metadata["source"] = os.fspath(path)
    if centers is not None:
        if centers.size != reader.bands:
            reader.close()
            raise LayoutError(
                f"'{path}': {centers.size} wavelengths for a cube with {reader.bands} bands (shape {reader.shape}); "
                "the wavelength count must equal the band axis: check layout= or the wavelength list "
                "(read_wavelength_table(..., keep_column=...) selects a subset)"
            )
        reader.wavelengths = centers
        reader.fwhm = table_fwhm
    return reader


def open_cube(
    path: str | os.PathLike,
    key: str | None = None,
    layout: str = "auto",
    wavelengths: Sequence[float] | np.ndarray | WavelengthTable | str | os.PathLike | None = None,
    window: Window | tuple[int, int, int, int] | None = None,
    bands: Sequence[int] | None = None,
    nonfinite: str = "error",
    wavelength_unit: str = "nm",
    **kw: Any,
) -> Cube:
    """Open a hyperspectral cube from any supported file as a :class:`~hsikit.cube.Cube` ``(bands, H, W)``.

    Memory-mapped formats (ENVI, ``.npy``) return a cube whose array is a view of the
    file: nothing is loaded until used. Others are read in memory.

    Args:
        path: the file (GeoTIFF, ENVI, ``.mat`` v5/v7.3, ``.npy``, ``.npz``, ERDAS ``.lan``).
        key: variable/entry name in ``.mat``/``.npz`` (None: detected, see :mod:`hsikit.io.matlab`).
        layout: ``"CHW"``, ``"HWC"`` or ``"auto"`` (only when unambiguous, see :mod:`hsikit.io.layout`).
        wavelengths: band centres in ``wavelength_unit`` (array), a :class:`WavelengthTable`, or
            the path of a CSV/text table; overrides the file's. Their count must match the band axis.
        window: ``Window(row_off, col_off, height, width)`` to read only part of the scene.
        bands: band indices to keep.
        nonfinite: NaN/Inf policy: ``"error"`` (default; memory maps are scanned in bounded
            memory), ``"mask"`` (pixels set to nodata/0 and marked in ``nodata_mask``; loads the
            array), ``"ignore"`` (no scan: the lazy choice for huge files).
        wavelength_unit: ``"nm"`` (default) or ``"um"`` for ``wavelengths`` given as numbers.
        **kw: ``spatial_shape=(rows, cols)`` for ``(bands, pixels)`` ``.mat`` matrices;
            ``format=`` to force a format; ``fwhm=`` and ``band_names=`` to override the file's.

    Returns:
        The cube; ``metadata["source"]`` is ``path``, ``metadata["format"]`` the format read.

    Raises:
        DataFileNotFoundError, UnsupportedFormatError, CorruptFileError, MatKeyError,
        LayoutError, NonFiniteError (see :mod:`hsikit.errors`).
    """
    fwhm_override = kw.pop("fwhm", None)
    names_override = kw.pop("band_names", None)
    unknown = set(kw) - {"spatial_shape", "format"}
    if unknown:
        raise TypeError(f"open_cube() got unexpected keyword arguments {sorted(unknown)}")
    reader = open_reader(path, key, layout, wavelengths=wavelengths, wavelength_unit=wavelength_unit, **kw)
    source = os.fspath(path)
    try:
        cube, keep_open = _cube_from_reader(reader, source, window, bands, nonfinite, fwhm_override, names_override)
    except BaseException:
        reader.close()
        raise
    if not keep_open:
        reader.close()
    return cube


def _cube_from_reader(
    reader: CubeReader,
    source: str,
    window: Window | tuple[int, int, int, int] | None,
    bands: Sequence[int] | None,
    nonfinite: str,
    fwhm_override: Any,
    names_override: Any,
) -> tuple[Cube, bool]:
    """The cube of ``reader`` (window/bands applied) and whether its array still uses the reader's memory map."""
    rows, cols = check_window(window, reader.height, reader.width, source)
    indices = check_bands(bands, reader.bands, source)
    view = getattr(reader, "view", None)
    keep_open = False
    if view is not None:
        data = view()
        if window is not None:
            data = data[:, rows, cols]
        if indices is not None:
            data = data[indices]
        keep_open = getattr(data, "_mmap", None) is not None
    else:
        wanted = Window(rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start)
        data = reader.read_array(None if window is None else wanted, indices)

    def pick(vector: Any) -> Any:
        if vector is None or indices is None:
            return vector
        return [vector[i] for i in indices] if isinstance(vector, list) else np.asarray(vector)[indices]

    transform = reader.transform
    if window is not None and transform is not None:
        transform = transform @ Affine.translation(cols.start, rows.start)
    bad = scan_nonfinite(data, nonfinite, source)
    metadata = dict(reader.metadata)
    metadata["source"] = source
    cube = Cube(
        data,
        wavelengths=pick(reader.wavelengths),
        fwhm=fwhm_override if fwhm_override is not None else pick(reader.fwhm),
        band_names=names_override if names_override is not None else pick(reader.band_names),
        crs=reader.crs,
        transform=transform,
        nodata=reader.nodata,
        metadata=metadata,
        nonfinite="mask" if bad is not None else "ignore",
    )
    return cube, keep_open


# ---------------------------------------------------------------------- writing
def save_cube(cube: Cube, path: str | os.PathLike, format: str | None = None, **options: Any) -> Path:
    """Write a cube, atomically (a temporary file renamed into place); returns ``path``.

    The format comes from ``format=`` or the extension: GeoTIFF (``.tif``), ENVI
    (``.hdr``/``.img``/``.bsq``/``.bil``/``.bip``...), MATLAB (``.mat``; ``format="v7.3"`` for
    HDF5-based files), ``.npy``, ``.npz``.

    Options by format:
        GeoTIFF: ``blocksize`` (256), ``compress`` (None), ``predictor``, ``interleave`` ("band"),
        ``bigtiff``, ``dtype``. ENVI: ``interleave`` (from extension, else "bsq"), ``dtype``,
        ``data_extension``, ``description``. MATLAB: ``key`` ("cube"), ``layout`` ("HWC"),
        ``compress`` (True), ``mat_format`` ("v5"/"v7.3"). NumPy: ``layout`` ("CHW"); ``.npz`` also
        ``key``, ``compress``.
    """
    path = Path(path)
    kind = _canonical_format(path, format, writing=True)
    if kind == "geotiff":
        from hsikit.io.geotiff import write_geotiff

        return write_geotiff(cube, path, **options)
    if kind == "envi":
        from hsikit.io.envi import write_envi

        return write_envi(cube, path, **options)
    if kind == "mat":
        from hsikit.io.matlab import write_mat

        mat_format = options.pop("mat_format", None)
        if mat_format is None:
            mat_format = "v7.3" if format is not None and "7.3" in format else "v5"
        return write_mat(cube, path, format=mat_format, **options)
    if kind == "npy":
        from hsikit.io.numpy import write_npy

        return write_npy(cube, path, **options)
    from hsikit.io.numpy import write_npz

    return write_npz(cube, path, **options)


def create_writer(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    dtype: Any,
    *,
    crs: Any = None,
    transform: Any = None,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    band_names: Sequence[str] | None = None,
    nodata: float | None = None,
    format: str | None = None,
    fwhm: Sequence[float] | np.ndarray | None = None,
    **options: Any,
) -> CubeWriter:
    """A :class:`~hsikit.io.base.CubeWriter` to fill a ``(bands, H, W)`` raster window by window.

    Supported: GeoTIFF (options as :class:`~hsikit.io.geotiff.GeoTiffWriter`), ENVI
    (:class:`~hsikit.io.envi.EnviWriter`), ``.npy`` (:class:`~hsikit.io.numpy.NpyWriter`; no
    georeference). Use it as a context manager: leaving the block normally renames the
    finished file into place; an exception deletes it and leaves any existing target untouched.
    """
    path = Path(path)
    kind = _canonical_format(path, format, writing=True)
    if kind == "geotiff":
        from hsikit.io.geotiff import GeoTiffWriter

        return GeoTiffWriter(
            path, shape, dtype, crs=crs, transform=transform, wavelengths=wavelengths, fwhm=fwhm,
            band_names=band_names, nodata=nodata, **options,
        )
    if kind == "envi":
        from hsikit.io.envi import EnviWriter

        return EnviWriter(
            path, shape, dtype, crs=crs, transform=transform, wavelengths=wavelengths, fwhm=fwhm,
            band_names=band_names, nodata=nodata, **options,
        )
    if kind == "npy":
        if any(v is not None for v in (crs, transform, wavelengths, band_names, nodata, fwhm)):
            raise UnsupportedFormatError(
                f"'{path}': .npy stores only the array (no CRS, wavelengths, band names or nodata); "
                "write GeoTIFF or ENVI to keep them"
            )
        from hsikit.io.numpy import NpyWriter

        return NpyWriter(path, shape, dtype, **options)
    raise UnsupportedFormatError(
        f"'{path}': window-by-window writing supports GeoTIFF (.tif), ENVI (.hdr/.img) and .npy; "
        f"write {kind} files whole with save_cube"
    )


__all__ = [
    "open_cube",
    "open_reader",
    "save_cube",
    "create_writer",
    "detect_format",
    "supported_extensions",
    "CUBE_EXTENSIONS",
]
