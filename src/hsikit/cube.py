"""The :class:`Cube`: one data model for hyperspectral images.

A cube is an array of shape ``(bands, height, width)`` (channels first, like a
torch tensor without the batch axis) plus everything needed to interpret it:

* ``wavelengths``: band centres in nanometres, shape ``(bands,)``;
* ``fwhm``: full width at half maximum of each band in nanometres, shape ``(bands,)``;
* ``band_names``: one string per band;
* ``crs`` and ``transform``: the georeference (a CRS string such as ``"EPSG:32647"``
  or WKT, and an :class:`affine.Affine` mapping (col, row) pixel corners to map x, y);
* ``nodata`` (the fill value) and ``nodata_mask`` (``(H, W)`` bool, True = invalid);
* ``metadata``: free-form, JSON-friendly key/values (source file, sensor, units...).

Slicing by band, wavelength or spatial window returns a new Cube whose metadata
stays right: band-wise vectors are sliced with the bands, the transform is shifted
with the window, the mask is cut with the pixels. The array may be a
``numpy.memmap`` (ENVI, raw files); slicing never loads more than the slice.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from affine import Affine

from hsikit.errors import InvalidCubeError, LayoutError, NonFiniteError

NonFinitePolicy = Literal["error", "mask", "ignore"]

# Wavelength grids below this maximum are taken to be micrometres (no sensor in
# hsikit's scope measures beyond 20 um, and none in nanometres below 20 nm).
_MICROMETRE_CEILING = 20.0


@dataclass(frozen=True)
class Window:
    """A pixel window: ``row_off``, ``col_off`` of its top-left pixel, ``height``, ``width``."""

    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Row and column slices selecting this window from an (H, W) array."""
        return (
            slice(self.row_off, self.row_off + self.height),
            slice(self.col_off, self.col_off + self.width),
        )

    def clip(self, height: int, width: int) -> Window:
        """This window intersected with an image of ``height`` x ``width`` pixels."""
        r0, c0 = max(self.row_off, 0), max(self.col_off, 0)
        r1 = min(self.row_off + self.height, height)
        c1 = min(self.col_off + self.width, width)
        return Window(r0, c0, max(r1 - r0, 0), max(c1 - c0, 0))


def as_wavelengths_nm(values: Sequence[float] | np.ndarray | None, unit: str = "nm") -> np.ndarray | None:
    """Convert band centres (or widths) to a float64 vector in nanometres.

    ``unit`` is ``"nm"``, ``"um"``/``"micrometers"`` or ``"auto"`` (micrometres when
    every value is below 20). Returns None for None.
    """
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    unit = unit.lower()
    if unit in ("um", "µm", "micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns"):
        return array * 1000.0
    if unit in ("nm", "nanometer", "nanometers", "nanometre", "nanometres"):
        return array
    if unit == "auto":
        finite = array[np.isfinite(array)]
        if finite.size and finite.max() < _MICROMETRE_CEILING:
            return array * 1000.0
        return array
    raise InvalidCubeError(f"unknown wavelength unit {unit!r}; use 'nm', 'um' or 'auto'")


class Cube:
    """A hyperspectral image: array ``(bands, H, W)`` plus wavelengths, georeference and masks.

    Args:
        data: array of shape ``(bands, H, W)``. Use :meth:`Cube.from_hwc` for
            ``(H, W, bands)`` arrays; a 2-D array is taken as a single band.
        wavelengths: band centres in nm, shape ``(bands,)``. Values that look like
            micrometres are refused (pass ``wavelength_unit="um"`` to convert).
        fwhm: band widths in nm, shape ``(bands,)``.
        band_names: one name per band.
        crs: coordinate reference system as a string (``"EPSG:32647"`` or WKT) or any
            object with ``to_string()`` (rasterio ``CRS``).
        transform: affine pixel-to-map transform (``affine.Affine`` or 6/9 numbers in
            GDAL or affine order, see :func:`as_affine`).
        nodata: fill value marking invalid pixels in ``data``.
        nodata_mask: ``(H, W)`` bool, True where the pixel is invalid. When None and
            ``nodata`` is set, it is derived lazily from pixels whose bands all equal
            ``nodata``.
        metadata: JSON-friendly dictionary; ``metadata["source"]`` names the file.
        nonfinite: what to do with NaN/Inf: ``"error"`` (default) raises
            :class:`NonFiniteError`; ``"mask"`` sets those pixels to ``nodata`` (or 0),
            and marks them in ``nodata_mask``; ``"ignore"`` skips the check (used for
            memory maps of huge files, which are checked window by window instead).
        wavelength_unit: unit of ``wavelengths``/``fwhm``: ``"nm"`` (default), ``"um"``.
    """

    def __init__(
        self,
        data: np.ndarray,
        wavelengths: Sequence[float] | np.ndarray | None = None,
        fwhm: Sequence[float] | np.ndarray | None = None,
        band_names: Sequence[str] | None = None,
        crs: Any = None,
        transform: Any = None,
        nodata: float | None = None,
        nodata_mask: np.ndarray | None = None,
        metadata: Mapping[str, Any] | None = None,
        nonfinite: NonFinitePolicy = "error",
        wavelength_unit: str = "nm",
    ) -> None:
        array = data if isinstance(data, np.ndarray) else np.asarray(data)
        if array.ndim == 2:
            array = array[np.newaxis]
        self.data: np.ndarray = array
        self.wavelengths = as_wavelengths_nm(wavelengths, wavelength_unit)
        self.fwhm = as_wavelengths_nm(fwhm, wavelength_unit)
        self.band_names = None if band_names is None else [str(name) for name in band_names]
        self.crs = crs_to_string(crs)
        self.transform = as_affine(transform)
        self.nodata = None if nodata is None else float(nodata)
        self._nodata_mask = None if nodata_mask is None else np.asarray(nodata_mask, dtype=bool)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.validate()
        self._apply_nonfinite_policy(nonfinite)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_hwc(cls, data: np.ndarray, **kwargs: Any) -> Cube:
        """Build a cube from an ``(H, W, bands)`` array (band-interleaved-by-pixel order)."""
        array = np.asarray(data) if not isinstance(data, np.ndarray) else data
        if array.ndim != 3:
            raise LayoutError(f"from_hwc expects a 3-D (H, W, bands) array, got shape {array.shape}")
        return cls(np.moveaxis(array, -1, 0), **kwargs)

    def replace(self, **changes: Any) -> Cube:
        """A new cube with some fields replaced (``data=``, ``wavelengths=``...); others are kept.

        The nodata mask is kept only when the spatial size is unchanged.
        """
        fields: dict[str, Any] = {
            "data": self.data,
            "wavelengths": self.wavelengths,
            "fwhm": self.fwhm,
            "band_names": self.band_names,
            "crs": self.crs,
            "transform": self.transform,
            "nodata": self.nodata,
            "nodata_mask": self._nodata_mask,
            "metadata": copy.deepcopy(self.metadata),
            "nonfinite": "ignore",
        }
        fields.update(changes)
        new_data = np.asarray(fields["data"])
        if "nodata_mask" not in changes and new_data.shape[-2:] != self.data.shape[-2:]:
            fields["nodata_mask"] = None
        new_bands = new_data.shape[0] if new_data.ndim == 3 else 1
        if new_bands != self.bands:
            for key in ("wavelengths", "fwhm", "band_names"):
                if key not in changes:
                    fields[key] = None
        return Cube(**fields)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check shapes and metadata; raise :class:`InvalidCubeError` naming the fix."""
        source = self.source_label
        if self.data.ndim != 3:
            raise InvalidCubeError(
                f"{source}: a Cube needs a (bands, H, W) array, got shape {self.data.shape}; "
                "use Cube.from_hwc for (H, W, bands) arrays"
            )
        if self.data.dtype.kind not in "biuf":
            raise InvalidCubeError(f"{source}: cube dtype {self.data.dtype} is not numeric")
        if min(self.data.shape) == 0:
            raise InvalidCubeError(f"{source}: cube has an empty axis, shape {self.data.shape}")
        bands = self.data.shape[0]
        for name, vector in (("wavelengths", self.wavelengths), ("fwhm", self.fwhm)):
            if vector is None:
                continue
            if vector.shape != (bands,):
                raise LayoutError(
                    f"{source}: {vector.size} {name} for a cube with {bands} bands (shape {self.data.shape}); "
                    "the wavelength count must equal the band axis — check the layout= argument "
                    "(CHW vs HWC) or the wavelength file"
                )
            if not np.all(np.isfinite(vector)) or np.any(vector <= 0):
                raise InvalidCubeError(f"{source}: {name} must be positive finite numbers in nm")
        if self.wavelengths is not None and self.wavelengths.max() < _MICROMETRE_CEILING:
            raise InvalidCubeError(
                f"{source}: wavelengths {self.wavelengths.min():g}..{self.wavelengths.max():g} look like "
                "micrometres; hsikit stores nanometres — pass wavelength_unit='um' to convert"
            )
        if self.band_names is not None and len(self.band_names) != bands:
            raise InvalidCubeError(f"{source}: {len(self.band_names)} band names for {bands} bands")
        if self._nodata_mask is not None and self._nodata_mask.shape != self.data.shape[1:]:
            raise InvalidCubeError(
                f"{source}: nodata_mask of shape {self._nodata_mask.shape} does not match the "
                f"cube's spatial size {self.data.shape[1:]}"
            )

    def _apply_nonfinite_policy(self, policy: NonFinitePolicy) -> None:
        if policy == "ignore" or self.data.dtype.kind != "f":
            return
        if policy not in ("error", "mask"):
            raise InvalidCubeError(f"nonfinite must be 'error', 'mask' or 'ignore', got {policy!r}")
        bad_pixels = ~np.isfinite(self.data).all(axis=0)
        if not bad_pixels.any():
            return
        if policy == "error":
            count = int(bad_pixels.sum())
            row, col = (int(v) for v in np.argwhere(bad_pixels)[0])
            raise NonFiniteError(
                f"{self.source_label}: {count} pixel(s) hold NaN or Inf (first at row {row}, col {col}); "
                "clean the data, or pass nonfinite='mask' to mark them as nodata"
            )
        fill = self.nodata if self.nodata is not None else 0.0
        data = np.array(self.data, copy=True)  # never modify a memory map or the caller's array
        data[:, bad_pixels] = fill
        self.data = data
        self._nodata_mask = bad_pixels | self.nodata_mask

    # ------------------------------------------------------------------ properties
    @property
    def bands(self) -> int:
        """Number of spectral bands (C)."""
        return int(self.data.shape[0])

    @property
    def height(self) -> int:
        """Rows (H)."""
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        """Columns (W)."""
        return int(self.data.shape[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(bands, H, W)``."""
        return (self.bands, self.height, self.width)

    @property
    def dtype(self) -> np.dtype:
        """Element type of the array."""
        return self.data.dtype

    @property
    def source_label(self) -> str:
        """The source file in quotes, or ``<memory>``, for error messages."""
        source = self.metadata.get("source") if hasattr(self, "metadata") else None
        return f"'{source}'" if source else "<memory>"

    @property
    def is_georeferenced(self) -> bool:
        """True when the cube has both a CRS and a transform."""
        return self.crs is not None and self.transform is not None

    @property
    def nodata_mask(self) -> np.ndarray:
        """``(H, W)`` bool, True where the pixel is invalid (all-False when nothing is masked)."""
        if self._nodata_mask is not None:
            return self._nodata_mask
        if self.nodata is None:
            return np.zeros(self.data.shape[1:], dtype=bool)
        if np.isnan(self.nodata):
            return np.isnan(self.data).all(axis=0)
        return (self.data == self.data.dtype.type(self.nodata)).all(axis=0)

    @property
    def explicit_nodata_mask(self) -> np.ndarray | None:
        """The stored ``(H, W)`` invalid-pixel mask, or None when none was given.

        Unlike :attr:`nodata_mask` this never scans the array, so it is cheap on a
        memory-mapped cube.
        """
        return self._nodata_mask

    @property
    def valid_mask(self) -> np.ndarray:
        """``(H, W)`` bool, True where the pixel holds data."""
        return ~self.nodata_mask

    def hwc(self) -> np.ndarray:
        """The array as ``(H, W, bands)`` (a view, not a copy)."""
        return np.moveaxis(self.data, 0, -1)

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        """The array loaded in memory as ``(bands, H, W)``, optionally cast."""
        return np.array(self.data, dtype=dtype, copy=True)

    def to_tensor(self, dtype: Any = None):  # -> torch.Tensor, import kept lazy
        """The array as a float32 ``torch.Tensor`` of shape ``(bands, H, W)``."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.data, dtype=np.float32 if dtype is None else dtype))

    def astype(self, dtype: Any) -> Cube:
        """A copy with the array cast to ``dtype``."""
        return self.replace(data=self.data.astype(dtype))

    # ------------------------------------------------------------------ selection
    def __getitem__(self, key: Any) -> Cube:
        """Slice as ``cube[bands, rows, cols]`` with ints, slices or index arrays.

        Band selections carry the wavelengths, FWHM and names; row/column slices
        (step 1) shift the transform; strided slices scale it.
        """
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) > 3:
            raise IndexError(f"a Cube has 3 axes (bands, rows, cols); got {len(key)} indices")
        key = key + (slice(None),) * (3 - len(key))
        band_key, row_key, col_key = (_as_slice_if_int(k) for k in key)
        cube = self.select_bands(band_key) if not _is_full_slice(band_key) else self
        if _is_full_slice(row_key) and _is_full_slice(col_key):
            return cube
        return cube._spatial_subset(row_key, col_key)

    def select_bands(self, selection: Any) -> Cube:
        """Bands by index, slice, boolean mask or list of indices; metadata follows."""
        index = np.arange(self.bands)[selection]
        index = np.atleast_1d(index)
        if index.size == 0:
            raise InvalidCubeError(f"{self.source_label}: band selection {selection!r} selects no band")
        if isinstance(selection, slice):
            data = self.data[selection]
        else:
            data = self.data[index]
        return self.replace(
            data=data,
            wavelengths=None if self.wavelengths is None else self.wavelengths[index],
            fwhm=None if self.fwhm is None else self.fwhm[index],
            band_names=None if self.band_names is None else [self.band_names[i] for i in index],
        )

    def select_wavelengths(self, start: float | None = None, stop: float | None = None) -> Cube:
        """Bands whose centre lies in ``[start, stop]`` nm (either end may be None)."""
        wavelengths = self._require_wavelengths("select_wavelengths")
        keep = np.ones(self.bands, dtype=bool)
        if start is not None:
            keep &= wavelengths >= start
        if stop is not None:
            keep &= wavelengths <= stop
        if not keep.any():
            raise InvalidCubeError(
                f"{self.source_label}: no band between {start} and {stop} nm "
                f"(the cube covers {wavelengths.min():.1f}..{wavelengths.max():.1f} nm)"
            )
        return self.select_bands(np.flatnonzero(keep))

    def band_index(self, wavelength: float) -> int:
        """Index of the band whose centre is nearest to ``wavelength`` (nm)."""
        wavelengths = self._require_wavelengths("band_index")
        return int(np.argmin(np.abs(wavelengths - wavelength)))

    def nearest_bands(self, wavelengths: Sequence[float]) -> Cube:
        """The bands nearest to each requested wavelength, in the order asked."""
        return self.select_bands([self.band_index(w) for w in wavelengths])

    def window(self, window: Window | tuple[int, int, int, int]) -> Cube:
        """The spatial window ``(row_off, col_off, height, width)``; the transform is shifted."""
        if not isinstance(window, Window):
            window = Window(*window)
        clipped = window.clip(self.height, self.width)
        if clipped != window:
            raise InvalidCubeError(
                f"{self.source_label}: window {window} reaches outside the {self.height}x{self.width} image"
            )
        rows, cols = window.slices
        return self._spatial_subset(rows, cols)

    def _spatial_subset(self, row_key: Any, col_key: Any) -> Cube:
        if not isinstance(row_key, slice) or not isinstance(col_key, slice):
            raise IndexError("spatial indices of a Cube must be ints or slices (use .data for fancy indexing)")
        row_start, row_stop, row_step = row_key.indices(self.height)
        col_start, col_stop, col_step = col_key.indices(self.width)
        if row_step <= 0 or col_step <= 0:
            raise IndexError("spatial slices of a Cube must have a positive step")
        data = self.data[:, row_key, col_key]
        if 0 in data.shape:
            raise InvalidCubeError(f"{self.source_label}: spatial selection [{row_key}, {col_key}] is empty")
        transform = None
        if self.transform is not None:
            transform = self.transform @ Affine.translation(col_start, row_start) @ Affine.scale(col_step, row_step)
        mask = None if self._nodata_mask is None else self._nodata_mask[row_key, col_key]
        return self.replace(data=data, transform=transform, nodata_mask=mask)

    def _require_wavelengths(self, operation: str) -> np.ndarray:
        if self.wavelengths is None:
            raise InvalidCubeError(
                f"{self.source_label}: {operation} needs band wavelengths, and this cube has none; "
                "pass wavelengths= when opening it (or a wavelength file)"
            )
        return self.wavelengths

    # ------------------------------------------------------------------ georeference
    def pixel_to_map(self, row: float, col: float) -> tuple[float, float]:
        """Map coordinates (x, y) of the centre of pixel ``(row, col)``."""
        if self.transform is None:
            raise InvalidCubeError(f"{self.source_label}: the cube has no transform")
        return self.transform @ (col + 0.5, row + 0.5)

    # ------------------------------------------------------------------ misc
    def band_statistics(self) -> dict[str, np.ndarray]:
        """Per-band min, max, mean and std over valid pixels (float64 arrays of shape (bands,))."""
        valid = self.valid_mask
        stats: dict[str, list[float]] = {"min": [], "max": [], "mean": [], "std": []}
        for band in range(self.bands):
            values = np.asarray(self.data[band], dtype=np.float64)[valid]
            values = values[np.isfinite(values)]
            if values.size == 0:
                for key in stats:
                    stats[key].append(float("nan"))
                continue
            stats["min"].append(float(values.min()))
            stats["max"].append(float(values.max()))
            stats["mean"].append(float(values.mean()))
            stats["std"].append(float(values.std()))
        return {key: np.asarray(value) for key, value in stats.items()}

    def __repr__(self) -> str:
        parts = [f"shape=(bands={self.bands}, H={self.height}, W={self.width})", f"dtype={self.dtype}"]
        if self.wavelengths is not None:
            parts.append(f"wavelengths={self.wavelengths.min():.1f}..{self.wavelengths.max():.1f} nm")
        if self.crs is not None:
            parts.append(f"crs={self.crs if len(self.crs) < 40 else self.crs[:37] + '...'}")
        if self.metadata.get("source"):
            parts.append(f"source={self.metadata['source']!r}")
        return f"Cube({', '.join(parts)})"


# ---------------------------------------------------------------------- helpers
def crs_to_string(crs: Any) -> str | None:
    """Normalise a CRS (string, int EPSG code, rasterio/pyproj CRS) to a string or None."""
    if crs is None or crs == "":
        return None
    if isinstance(crs, int):
        return f"EPSG:{crs}"
    if isinstance(crs, str):
        return crs
    if hasattr(crs, "to_string"):
        text = crs.to_string()
        return text or None
    raise InvalidCubeError(f"cannot interpret {crs!r} as a coordinate reference system")


def as_affine(transform: Any) -> Affine | None:
    """Normalise a transform to :class:`affine.Affine`.

    Accepts an ``Affine``, 6 numbers in affine order ``(a, b, c, d, e, f)`` or a
    9-tuple. GDAL-ordered geotransforms must be converted with
    ``Affine.from_gdal`` by the caller, since the two orders cannot be told apart.
    """
    if transform is None:
        return None
    if isinstance(transform, Affine):
        return transform
    values = [float(v) for v in transform]
    if len(values) in (6, 9):
        return Affine(*values[:6])
    raise InvalidCubeError(f"a transform needs 6 coefficients (a, b, c, d, e, f), got {len(values)}")


def _as_slice_if_int(key: Any) -> Any:
    if isinstance(key, (int, np.integer)):
        index = int(key)
        return slice(index, index + 1) if index != -1 else slice(index, None)
    return key


def _is_full_slice(key: Any) -> bool:
    return isinstance(key, slice) and key == slice(None)
