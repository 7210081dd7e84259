"""GeoTIFF through rasterio: CRS, transform, nodata, band names and wavelengths; windowed read and write.

Band metadata conventions
-------------------------
Band names are the GDAL band descriptions. Wavelengths are written twice so
that both GDAL-era tools and hsikit find them:

* the GDAL ≥ 3.10 standard band items ``CENTRAL_WAVELENGTH_UM`` / ``FWHM_UM`` in the
  ``IMAGERY`` metadata domain (micrometres);
* ENVI-style band items ``wavelength`` / ``fwhm`` with ``wavelength_units=Nanometers``
  in the default domain (what GDAL's ENVI driver produces, e.g. after
  ``gdal_translate`` of an ENVI file).

Reading looks for them in that order, then for a dataset-level ``wavelength`` list
in the ``ENVI`` domain.

Writing goes to a temporary sibling file renamed into place by
:meth:`GeoTiffWriter.close`; the file is tiled (blocks of 256 or 512 pixels),
band-interleaved (a window of all bands touches one tile per band), optionally
compressed, and BigTIFF when the uncompressed size nears 4 GiB.

Memory: rasterio/GDAL keep recently read blocks in a cache bounded by the
``GDAL_CACHEMAX`` setting (default 5 % of RAM); set it (environment variable or
``rasterio.Env``) before the first read to bound the resident size of a scan.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from hsikit.cube import Cube, Window, as_affine, crs_to_string
from hsikit.errors import CorruptFileError, InvalidCubeError, UnsupportedFormatError
from hsikit.io.atomic import _fsync_file, temporary_sibling
from hsikit.io.base import CubeReader, CubeWriter
from hsikit.io.common import check_bands, check_window, release_pages, require_file, rows_per_chunk

TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_UNIT_FACTORS = {
    "nanometers": 1.0,
    "nanometer": 1.0,
    "nm": 1.0,
    "micrometers": 1000.0,
    "micrometer": 1000.0,
    "microns": 1000.0,
    "um": 1000.0,
    "µm": 1000.0,
    "millimeters": 1.0e6,
    "mm": 1.0e6,
}
# Uncompressed sizes above this become BigTIFF (classic TIFF offsets stop at 4 GiB).
_BIGTIFF_THRESHOLD = int(3.8 * 2**30)


def is_tiff(path: str | os.PathLike) -> bool:
    """True when the file starts with a TIFF or BigTIFF signature."""
    with open(path, "rb") as handle:
        return handle.read(4) in TIFF_MAGICS


def _require_tiff(path: str | os.PathLike) -> Path:
    path = require_file(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head not in TIFF_MAGICS:
        raise CorruptFileError(
            f"'{path}' is not a TIFF file (it starts with {head!r}, a TIFF starts with b'II*\\x00' or b'MM\\x00*'); "
            "check that the file is what its extension says, or download it again"
        )
    return path


def _rasterio_errors() -> tuple[type[BaseException], ...]:
    import rasterio.errors
    from rasterio._err import CPLE_BaseError

    return (rasterio.errors.RasterioError, CPLE_BaseError, OSError)


def _error_text(error: BaseException) -> str:
    """rasterio's message plus GDAL's underlying one ("Read failed" alone says little)."""
    cause = error.__cause__ or error.__context__
    return f"{error}: {cause}" if cause is not None and str(cause) not in str(error) else str(error)


def _unit_factor(units: str | None, values: np.ndarray) -> float:
    name = (units or "").strip().lower()
    if name in _UNIT_FACTORS:
        return _UNIT_FACTORS[name]
    return 1000.0 if values.size and np.nanmax(values) < 20 else 1.0


def _band_floats(dataset: Any, key: str, namespace: str | None = None) -> np.ndarray | None:
    values = []
    for index in range(1, dataset.count + 1):
        tags = dataset.tags(index, ns=namespace) if namespace else dataset.tags(index)
        lowered = {k.lower(): v for k, v in tags.items()}
        if key.lower() not in lowered:
            return None
        try:
            values.append(float(lowered[key.lower()]))
        except ValueError:
            return None
    return np.asarray(values, dtype=np.float64)


def read_band_wavelengths(dataset: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Band centres and FWHM in nm from a rasterio dataset's metadata (see module docstring)."""
    centers = _band_floats(dataset, "CENTRAL_WAVELENGTH_UM", "IMAGERY")
    if centers is not None:
        fwhm = _band_floats(dataset, "FWHM_UM", "IMAGERY")
        return centers * 1000.0, None if fwhm is None else fwhm * 1000.0
    centers = _band_floats(dataset, "wavelength")
    if centers is not None:
        band_units = {k.lower(): v for k, v in dataset.tags(1).items()}.get("wavelength_units")
        units = band_units or {k.lower(): v for k, v in dataset.tags().items()}.get("wavelength_units")
        factor = _unit_factor(units, centers)
        fwhm = _band_floats(dataset, "fwhm")
        return centers * factor, None if fwhm is None else fwhm * factor
    envi = {k.lower(): v for k, v in dataset.tags(ns="ENVI").items()} if "ENVI" in dataset.tag_namespaces() else {}
    if "wavelength" in envi:
        try:
            centers = np.asarray([float(v) for v in envi["wavelength"].strip("{} ").split(",")], dtype=np.float64)
        except ValueError:
            return None, None
        if centers.size != dataset.count:
            return None, None
        factor = _unit_factor(envi.get("wavelength_units"), centers)
        fwhm = None
        if "fwhm" in envi:
            with contextlib.suppress(ValueError):
                fwhm = np.asarray([float(v) for v in envi["fwhm"].strip("{} ").split(",")]) * factor
        return centers * factor, fwhm
    return None, None


class GeoTiffReader(CubeReader):
    """Windowed reading of a (Geo)TIFF through rasterio; the file stays open until :meth:`close`.

    ``check_signature=False`` lets it open any raster GDAL reads (e.g. ERDAS Imagine ``.img``).
    """

    def __init__(self, path: str | os.PathLike, *, check_signature: bool = True) -> None:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        self.path = _require_tiff(path) if check_signature else require_file(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dataset = rasterio.open(self.path)
        except _rasterio_errors() as error:
            raise CorruptFileError(
                f"'{self.path}': cannot open the TIFF ({_error_text(error)}); the file is truncated or damaged, download it again"
            ) from error
        dataset = self._dataset
        dtypes = set(dataset.dtypes)
        self.dtype = np.dtype(dataset.dtypes[0]) if len(dtypes) == 1 else np.result_type(*dtypes)
        self.shape = (int(dataset.count), int(dataset.height), int(dataset.width))
        self.crs = crs_to_string(dataset.crs) if dataset.crs is not None else None
        georeferenced = dataset.crs is not None or not dataset.transform.is_identity
        self.transform = Affine(*tuple(dataset.transform)[:6]) if georeferenced else None
        self.nodata = None if dataset.nodata is None else float(dataset.nodata)
        descriptions = list(dataset.descriptions)
        self.band_names = (
            None
            if all(d is None for d in descriptions)
            else [d if d is not None else f"band {i + 1}" for i, d in enumerate(descriptions)]
        )
        self.wavelengths, self.fwhm = read_band_wavelengths(dataset)
        self.metadata = {
            "source": os.fspath(path),
            "format": "geotiff" if dataset.driver == "GTiff" else dataset.driver.lower(),
            "tags": dict(dataset.tags()),
            "block_shape": list(dataset.block_shapes[0]),
        }

    def read_array(self, window: Window | None = None, bands: list[int] | None = None) -> np.ndarray:
        """Pixels of ``window`` (all when None) as a ``(bands, h, w)`` array."""
        from rasterio.windows import Window as RioWindow

        rows, cols = check_window(window, self.height, self.width, str(self.path))
        indices = check_bands(bands, self.bands, str(self.path))
        rio_window = RioWindow(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        indexes = list(range(1, self.bands + 1)) if indices is None else [i + 1 for i in indices]
        try:
            return self._dataset.read(indexes, window=rio_window, out_dtype=self.dtype)
        except _rasterio_errors() as error:
            raise CorruptFileError(
                f"'{self.path}': cannot read pixels ({_error_text(error)}); the file is truncated or damaged, download it again"
            ) from error

    def close(self) -> None:
        self._dataset.close()


def read_geotiff_labels(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """The first band of a single-band TIFF as ``(H, W)`` and its georeference ``{crs, transform, nodata}``."""
    with GeoTiffReader(path) as reader:
        if reader.bands != 1:
            raise InvalidCubeError(
                f"'{path}': a label raster needs 1 band, this TIFF has {reader.bands}; open it with open_cube instead"
            )
        array = reader.read_array()[0]
        return array, {"crs": reader.crs, "transform": reader.transform, "nodata": reader.nodata}


class GeoTiffWriter(CubeWriter):
    """Create a tiled GeoTIFF and fill it window by window; :meth:`close` renames it into place.

    Args:
        path: target ``.tif``.
        shape: ``(bands, H, W)``.
        dtype: element type.
        crs, transform: georeference (CRS string/EPSG int/rasterio CRS; affine transform).
        wavelengths, fwhm: band centres/widths in nm, stored as band metadata.
        band_names: band descriptions.
        nodata: fill value.
        blocksize: tile side in pixels (multiple of 16; 256 or 512 are typical). Images
            smaller than a tile get the smallest multiple of 16 covering them.
        compress: None (default, fastest), ``"deflate"``, ``"lzw"``, ``"zstd"``...
        predictor: TIFF predictor for compression (2 integers, 3 floats).
        interleave: ``"band"`` (default) or ``"pixel"``.
        bigtiff: ``"YES"``/``"NO"``/``"IF_SAFER"``; default: YES above 3.8 GiB uncompressed.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: tuple[int, int, int],
        dtype: Any,
        *,
        crs: Any = None,
        transform: Any = None,
        wavelengths: Sequence[float] | np.ndarray | None = None,
        fwhm: Sequence[float] | np.ndarray | None = None,
        band_names: Sequence[str] | None = None,
        nodata: float | None = None,
        blocksize: int = 256,
        compress: str | None = None,
        predictor: int | None = None,
        interleave: str = "band",
        bigtiff: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        import rasterio

        if len(shape) != 3 or min(shape) <= 0:
            raise InvalidCubeError(f"'{path}': GeoTIFF shape must be (bands, H, W) with positive sizes, got {shape}")
        if blocksize % 16 or blocksize <= 0:
            raise UnsupportedFormatError(f"'{path}': blocksize must be a positive multiple of 16, got {blocksize}")
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        bands, height, width = self.shape
        dtype = np.dtype(dtype)
        block_x = min(blocksize, -(-width // 16) * 16)
        block_y = min(blocksize, -(-height // 16) * 16)
        if bigtiff is None:
            bigtiff = "YES" if bands * height * width * dtype.itemsize > _BIGTIFF_THRESHOLD else "IF_SAFER"
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": bands,
            "dtype": dtype.name,
            "tiled": True,
            "blockxsize": block_x,
            "blockysize": block_y,
            "interleave": interleave,
            "BIGTIFF": bigtiff,
        }
        crs_text = crs_to_string(crs)
        affine = as_affine(transform)
        if crs_text is not None:
            profile["crs"] = crs_text
        if affine is not None:
            profile["transform"] = affine
        if nodata is not None:
            profile["nodata"] = nodata
        if compress:
            profile["compress"] = compress
            if predictor is not None:
                profile["predictor"] = predictor
        self._tmp = temporary_sibling(self.path)
        self._closed = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._dataset = rasterio.open(self._tmp, "w", **profile)
            self._write_band_metadata(wavelengths, fwhm, band_names, tags)
        except BaseException:
            self.abort()
            raise

    def _write_band_metadata(
        self,
        wavelengths: Sequence[float] | np.ndarray | None,
        fwhm: Sequence[float] | np.ndarray | None,
        band_names: Sequence[str] | None,
        tags: dict[str, str] | None,
    ) -> None:
        dataset = self._dataset
        bands = self.shape[0]
        for name, vector in (("wavelengths", wavelengths), ("fwhm", fwhm), ("band_names", band_names)):
            if vector is not None and len(vector) != bands:
                raise InvalidCubeError(f"'{self.path}': {len(vector)} {name} for {bands} bands")
        for index in range(bands):
            if band_names is not None:
                dataset.set_band_description(index + 1, str(band_names[index]))
            imagery: dict[str, str] = {}
            default: dict[str, str] = {}
            if wavelengths is not None:
                imagery["CENTRAL_WAVELENGTH_UM"] = repr(float(wavelengths[index]) / 1000.0)
                default["wavelength"] = repr(float(wavelengths[index]))
                default["wavelength_units"] = "Nanometers"
            if fwhm is not None:
                imagery["FWHM_UM"] = repr(float(fwhm[index]) / 1000.0)
                default["fwhm"] = repr(float(fwhm[index]))
            if imagery:
                dataset.update_tags(index + 1, ns="IMAGERY", **imagery)
            if default:
                dataset.update_tags(index + 1, **default)
        if tags:
            dataset.update_tags(**{str(k): str(v) for k, v in tags.items()})

    def write_window(self, array: np.ndarray, window: Window) -> None:
        """Write a ``(bands, h, w)`` array at ``window``."""
        from rasterio.windows import Window as RioWindow

        check_window(window, self.shape[1], self.shape[2], str(self.path))
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[np.newaxis]
        expected = (self.shape[0], window.height, window.width)
        if array.shape != expected:
            raise InvalidCubeError(f"'{self.path}': window data of shape {array.shape}, expected {expected}")
        self._dataset.write(array, window=RioWindow(window.col_off, window.row_off, window.width, window.height))

    def close(self) -> None:
        """Finish the file and rename it onto the target."""
        if self._closed:
            return
        try:
            self._dataset.close()
            _fsync_file(self._tmp)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Close and delete the temporary file; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        dataset = getattr(self, "_dataset", None)
        if dataset is not None:
            with contextlib.suppress(Exception):
                dataset.close()
        for leftover in (self._tmp, Path(str(self._tmp) + ".aux.xml")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def write_geotiff(
    cube: Cube,
    path: str | os.PathLike,
    *,
    dtype: Any = None,
    blocksize: int = 256,
    compress: str | None = None,
    predictor: int | None = None,
    interleave: str = "band",
    bigtiff: str | None = None,
) -> Path:
    """Write a cube as a tiled GeoTIFF (atomically); returns ``path``.

    The cube is copied a block of tile rows at a time, so memory-mapped cubes larger than RAM work.
    """
    writer = GeoTiffWriter(
        path,
        cube.shape,
        dtype or cube.dtype,
        crs=cube.crs,
        transform=cube.transform,
        wavelengths=cube.wavelengths,
        fwhm=cube.fwhm,
        band_names=cube.band_names,
        nodata=cube.nodata,
        blocksize=blocksize,
        compress=compress,
        predictor=predictor,
        interleave=interleave,
        bigtiff=bigtiff,
    )
    with writer:
        step = max(blocksize, rows_per_chunk(cube.data) // blocksize * blocksize)
        for start in range(0, cube.height, step):
            height = min(step, cube.height - start)
            block = np.asarray(cube.data[:, start : start + height])
            writer.write_window(block, Window(start, 0, height, cube.width))
            release_pages(cube.data)  # a memory-mapped source stays at a bounded resident size
    return Path(path)


__all__ = [
    "GeoTiffReader",
    "GeoTiffWriter",
    "write_geotiff",
    "read_geotiff_labels",
    "read_band_wavelengths",
    "is_tiff",
]
