"""Band-wise normalisation fitted on training pixels only.

Every normaliser is an affine map per band, ``y = (x - shift) / scale``:

============================  ======================  =====================================
name (:func:`create_normalizer`)  class                 shift, scale
============================  ======================  =====================================
``"none"``                    :class:`Identity`        0, 1
``"scale"``                   :class:`FixedScale`      0, ``scale`` (e.g. 10000 for reflectance x 1e4)
``"standardize"``             :class:`PerBandStandardize`  band mean, band standard deviation
``"minmax"``                  :class:`PerBandMinMax`   band min, band max - min
``"global_minmax"``           :class:`GlobalMinMax`    min, max - min over all bands
============================  ======================  =====================================

Statistics come from :meth:`Normalizer.fit`, which streams through the cube in
chunks of rows with float64 accumulators (per-chunk mean and squared deviations
merged with Chan et al.'s parallel update), so a memory-mapped cube is never
loaded whole. ``fit(cube, mask=train_mask)`` uses only the pixels where the mask
is True (the training split), skips the cube's nodata pixels and skips NaN/Inf
values band by band. A band whose spread is zero (constant band) gets a scale of
1, so it maps to 0 instead of NaN and the inverse still restores it.

:meth:`Normalizer.transform` and :meth:`Normalizer.inverse_transform` take numpy
arrays or torch tensors whose band axis is ``band_axis`` (default 0, i.e.
``(C, ...)``; pass ``band_axis=1`` for ``(B, C, H, W)`` batches).
:meth:`Normalizer.to_dict` / :meth:`Normalizer.from_dict` (and ``to_json`` /
``from_json``) store the statistics with a run.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hsikit.cube import Cube
from hsikit.errors import (
    ConfigError,
    CorruptFileError,
    DataFileNotFoundError,
    InvalidCubeError,
    ShapeMismatchError,
    UnknownNameError,
)
from hsikit.io.atomic import atomic_path

NORMALIZER_FORMAT = "hsikit.normalizer"

# float64 elements read per chunk while fitting (32 MiB), whatever the cube's size.
_CHUNK_ELEMENTS = 4_000_000


# ---------------------------------------------------------------------------- statistics
@dataclass
class BandStatistics:
    """Per-band statistics of the selected pixels; every array has shape ``(bands,)``.

    ``count`` is the number of finite values used per band; ``mean``, ``std``
    (population, ddof=0), ``min`` and ``max`` are float64 in the cube's units.
    """

    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @property
    def bands(self) -> int:
        return int(self.count.shape[0])


def compute_band_statistics(
    source: Cube | np.ndarray,
    mask: np.ndarray | None = None,
    *,
    nodata: float | None = None,
    chunk_rows: int | None = None,
) -> BandStatistics:
    """Per-band count, mean, std, min and max over the pixels selected by ``mask``.

    Args:
        source: a :class:`Cube`, or an array ``(bands, H, W)`` (or ``(bands, N)``), possibly a
            ``numpy.memmap``. It is read ``chunk_rows`` rows at a time.
        mask: bool array of the spatial shape (``(H, W)``), True on the pixels to use
            (e.g. ``split.mask("train")``). None: every pixel.
        nodata: for arrays, the fill value of invalid pixels (a pixel whose bands all equal it is
            skipped). A Cube brings its own ``nodata`` / nodata mask.
        chunk_rows: rows per chunk; default keeps a chunk near 32 MiB of float64.

    Raises:
        ShapeMismatchError: the mask does not have the spatial shape.
        InvalidCubeError: no usable value in some band (the mask selects nothing valid).
    """
    data, nodata_value, nodata_mask, label = _unpack_source(source, nodata)
    spatial = data.shape[1:]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != spatial or mask.dtype != bool:
            raise ShapeMismatchError(
                f"{label}: the fit mask must be a bool array of the cube's spatial shape {spatial}, got "
                f"{mask.dtype} {mask.shape}; pass split.mask('train') made from labels of this scene"
            )
    bands = data.shape[0]
    count = np.zeros(bands, dtype=np.int64)
    mean = np.zeros(bands, dtype=np.float64)
    sum_sq_dev = np.zeros(bands, dtype=np.float64)
    band_min = np.full(bands, np.inf)
    band_max = np.full(bands, -np.inf)
    floating = data.dtype.kind == "f"
    for start, stop in _row_chunks(data.shape, chunk_rows):
        selected = np.ones((stop - start, *spatial[1:]), dtype=bool) if mask is None else mask[start:stop].copy()
        if nodata_mask is not None:
            selected &= ~nodata_mask[start:stop]
        if not selected.any():
            continue
        block = np.asarray(data[:, start:stop], dtype=np.float64)
        if nodata_value is not None:
            selected &= ~_equals_nodata(block, nodata_value, data.dtype).all(axis=0)
        values = block[:, selected]  # (bands, n)
        if values.shape[1] == 0:
            continue
        if floating:
            finite = np.isfinite(values)
            chunk_count = finite.sum(axis=1)
            values = np.where(finite, values, 0.0)
            chunk_mean = np.divide(values.sum(axis=1), chunk_count, out=np.zeros(bands), where=chunk_count > 0)
            deviations = np.where(finite, values - chunk_mean[:, None], 0.0)
            band_min = np.minimum(band_min, np.where(finite, values, np.inf).min(axis=1))
            band_max = np.maximum(band_max, np.where(finite, values, -np.inf).max(axis=1))
        else:
            chunk_count = np.full(bands, values.shape[1], dtype=np.int64)
            chunk_mean = values.mean(axis=1)
            deviations = values - chunk_mean[:, None]
            band_min = np.minimum(band_min, values.min(axis=1))
            band_max = np.maximum(band_max, values.max(axis=1))
        chunk_sum_sq = np.einsum("bn,bn->b", deviations, deviations)
        # Chan, Golub & LeVeque: merge (count, mean, M2) of two disjoint sets.
        total = count + chunk_count
        delta = chunk_mean - mean
        safe_total = np.maximum(total, 1)
        mean = mean + delta * chunk_count / safe_total
        sum_sq_dev = sum_sq_dev + chunk_sum_sq + delta * delta * count * chunk_count / safe_total
        count = total
    empty = np.flatnonzero(count == 0)
    if empty.size:
        raise InvalidCubeError(
            f"{label}: no valid value to fit in band(s) {empty[:10].tolist()}{'...' if empty.size > 10 else ''} "
            f"({'the mask selects ' + str(int(mask.sum())) + ' pixel(s)' if mask is not None else 'no mask'}); "
            "check that the training mask covers valid pixels of this cube"
        )
    return BandStatistics(
        count=count,
        mean=mean,
        std=np.sqrt(np.maximum(sum_sq_dev / count, 0.0)),
        min=band_min,
        max=band_max,
    )


def valid_pixel_mask(
    source: Cube | np.ndarray, *, nodata: float | None = None, chunk_rows: int | None = None
) -> np.ndarray:
    """``(H, W)`` bool, True where a pixel is valid, computed chunk by chunk.

    Same result as ``cube.valid_mask``, but a memory-mapped cube with a nodata
    value is read a few rows at a time instead of through a full ``(C, H, W)``
    comparison.
    """
    data, nodata_value, nodata_mask, _ = _unpack_source(source, nodata)
    valid = np.ones(data.shape[1:], dtype=bool) if nodata_mask is None else ~nodata_mask
    if nodata_value is None:
        return valid
    for start, stop in _row_chunks(data.shape, chunk_rows):
        block = np.asarray(data[:, start:stop])
        valid[start:stop] &= ~_equals_nodata(block, nodata_value, data.dtype).all(axis=0)
    return valid


# ---------------------------------------------------------------------------- normalisers
class Normalizer:
    """Base class: ``y = (x - shift) / scale`` per band; subclasses set shift and scale in ``fit``.

    Attributes:
        name: registry name (``create_normalizer(name)``).
        bands: number of bands the statistics were fitted on (None for band-free maps).
    """

    name: ClassVar[str] = ""
    needs_fit: ClassVar[bool] = True

    def __init__(self) -> None:
        self.shift: np.ndarray | None = None  # float64, shape (bands,) or (1,)
        self.scale: np.ndarray | None = None  # float64, strictly positive
        self.bands: int | None = None
        self.statistics: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ fitting
    @property
    def fitted(self) -> bool:
        return self.shift is not None and self.scale is not None

    def fit(
        self,
        source: Cube | np.ndarray,
        mask: np.ndarray | None = None,
        *,
        nodata: float | None = None,
        chunk_rows: int | None = None,
    ) -> Normalizer:
        """Compute the statistics from the pixels of ``source`` where ``mask`` is True.

        ``source`` is a Cube or a ``(bands, H, W)`` array; ``mask`` the ``(H, W)``
        training mask. See :func:`compute_band_statistics`. Returns ``self``.
        """
        stats = compute_band_statistics(source, mask, nodata=nodata, chunk_rows=chunk_rows)
        self._set_from_statistics(stats)
        self.bands = stats.bands
        self.statistics = {
            "count": stats.count.tolist(),
            "mean": stats.mean.tolist(),
            "std": stats.std.tolist(),
            "min": stats.min.tolist(),
            "max": stats.max.tolist(),
        }
        return self

    def _set_from_statistics(self, stats: BandStatistics) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ applying
    def transform(self, x: Any, band_axis: int = 0) -> Any:
        """``(x - shift) / scale`` for a numpy array or torch tensor with bands on ``band_axis``.

        numpy: computed in float64, returned as float64 for float64 input and float32
        otherwise. torch: computed in the tensor's floating dtype (float32 for integer
        input), on its device.
        """
        shift, scale = self._broadcast(x, band_axis)
        if _is_tensor(x):
            x = x if x.is_floating_point() else x.float()
            return (x - shift) / scale
        array = np.asarray(x)
        # float64 arithmetic, so that x - mean does not lose digits to float32 cancellation
        return ((array.astype(np.float64, copy=False) - shift) / scale).astype(_numpy_float(array), copy=False)

    def inverse_transform(self, y: Any, band_axis: int = 0) -> Any:
        """``y * scale + shift``: back to the cube's units (same types as :meth:`transform`)."""
        shift, scale = self._broadcast(y, band_axis)
        if _is_tensor(y):
            y = y if y.is_floating_point() else y.float()
            return y * scale + shift
        array = np.asarray(y)
        return (array.astype(np.float64, copy=False) * scale + shift).astype(_numpy_float(array), copy=False)

    __call__ = transform

    def _broadcast(self, x: Any, band_axis: int) -> tuple[Any, Any]:
        if not self.fitted:
            raise ConfigError(
                f"{type(self).__name__} is not fitted: call fit(cube, mask=train_mask) first, "
                "or restore saved statistics with Normalizer.from_dict / from_json"
            )
        assert self.shift is not None and self.scale is not None
        ndim = len(x.shape)
        axis = band_axis + ndim if band_axis < 0 else band_axis
        if not 0 <= axis < max(ndim, 1):
            raise ShapeMismatchError(f"band_axis={band_axis} is out of range for an array of shape {tuple(x.shape)}")
        shape = [1] * ndim
        if self.shift.size > 1:
            if x.shape[axis] != self.shift.size:
                raise ShapeMismatchError(
                    f"{type(self).__name__} was fitted on {self.shift.size} bands, but the array of shape "
                    f"{tuple(x.shape)} has {x.shape[axis]} on axis {band_axis}; pass band_axis= for batched "
                    "input, or fit on a cube with these bands"
                )
            shape[axis] = self.shift.size
        if _is_tensor(x):
            import torch

            dtype = x.dtype if x.is_floating_point() else torch.float32
            shift = torch.as_tensor(self.shift, dtype=dtype, device=x.device).reshape(shape)
            scale = torch.as_tensor(self.scale, dtype=dtype, device=x.device).reshape(shape)
            return shift, scale
        return self.shift.reshape(shape), self.scale.reshape(shape)

    # ------------------------------------------------------------------ serialisation
    def params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-friendly)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly state: name, constructor params, fitted shift/scale and statistics."""
        return {
            "format": NORMALIZER_FORMAT,
            "name": self.name,
            "params": self.params(),
            "bands": self.bands,
            "shift": None if self.shift is None else self.shift.tolist(),
            "scale": None if self.scale is None else self.scale.tolist(),
            "statistics": self.statistics,
        }

    state_dict = to_dict

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], source: str = "<memory>") -> Normalizer:
        """Rebuild any normaliser from :meth:`to_dict` output (dispatches on ``state["name"]``)."""
        if not isinstance(state, Mapping) or "name" not in state:
            raise ConfigError(f"{source}: a normaliser state needs a 'name' key (one of {sorted(NORMALIZERS)})")
        normalizer = create_normalizer(str(state["name"]), **dict(state.get("params") or {}))
        if cls is not Normalizer and not isinstance(normalizer, cls):
            raise ConfigError(f"{source}: the state is for {state['name']!r}, not {cls.__name__}")
        shift, scale = state.get("shift"), state.get("scale")
        if (shift is None) != (scale is None):
            raise ConfigError(f"{source}: normaliser state has only one of 'shift' and 'scale'; save it again")
        if shift is not None:
            shift_array = np.asarray(shift, dtype=np.float64).reshape(-1)
            scale_array = np.asarray(scale, dtype=np.float64).reshape(-1)
            if shift_array.shape != scale_array.shape or not np.all(np.isfinite(shift_array)):
                raise ConfigError(f"{source}: normaliser 'shift' and 'scale' must be finite vectors of one length")
            if not np.all(np.isfinite(scale_array)) or np.any(scale_array <= 0):
                raise ConfigError(f"{source}: normaliser 'scale' must be positive and finite, got {scale_array[:5]}")
            normalizer.shift, normalizer.scale = shift_array, scale_array
        normalizer.bands = None if state.get("bands") is None else int(state["bands"])
        normalizer.statistics = {key: list(value) for key, value in (state.get("statistics") or {}).items()}
        return normalizer

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically; returns the path."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Normalizer:
        """Read a normaliser saved by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise DataFileNotFoundError(path, "save the normaliser first with Normalizer.to_json(path)")
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"'{path}': not valid JSON ({exc}); the normaliser file is damaged") from None
        return cls.from_dict(state, source=f"'{path}'")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        state = f"bands={self.bands}" if self.fitted else "not fitted"
        return f"{type(self).__name__}({params}) [{state}]"


class Identity(Normalizer):
    """No normalisation (values are only cast to float)."""

    name = "none"
    needs_fit = False

    def __init__(self) -> None:
        super().__init__()
        self.shift, self.scale = np.zeros(1), np.ones(1)

    def fit(self, source: Cube | np.ndarray, mask: np.ndarray | None = None, **kwargs: Any) -> Identity:
        """Nothing to learn; returns ``self``."""
        return self


class FixedScale(Normalizer):
    """Divide by a constant: ``y = x / scale`` (e.g. 10000 for reflectance stored x 1e4, 255 for 8-bit RGB)."""

    name = "scale"
    needs_fit = False

    def __init__(self, scale: float = 10000.0) -> None:
        super().__init__()
        if not math.isfinite(scale) or scale <= 0:
            raise ConfigError(f"FixedScale needs a positive finite scale, got {scale!r}")
        self.scale_value = float(scale)
        self.shift, self.scale = np.zeros(1), np.full(1, self.scale_value)

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale_value}

    def fit(self, source: Cube | np.ndarray, mask: np.ndarray | None = None, **kwargs: Any) -> FixedScale:
        """Nothing to learn; returns ``self``."""
        return self


class PerBandStandardize(Normalizer):
    """Per-band standardisation: ``y = (x - mean_b) / std_b``, population std over training pixels."""

    name = "standardize"

    def _set_from_statistics(self, stats: BandStatistics) -> None:
        self.shift = stats.mean.copy()
        self.scale = _safe_spread(stats.std, stats.mean)


class PerBandMinMax(Normalizer):
    """Per-band min-max: ``y = (x - min_b) / (max_b - min_b)``, in [0, 1] on the training pixels."""

    name = "minmax"

    def _set_from_statistics(self, stats: BandStatistics) -> None:
        self.shift = stats.min.copy()
        self.scale = _safe_spread(stats.max - stats.min, stats.min)


class GlobalMinMax(Normalizer):
    """Global min-max: one min and max over all bands, so band ratios (spectral shape) are kept."""

    name = "global_minmax"

    def _set_from_statistics(self, stats: BandStatistics) -> None:
        low, high = float(stats.min.min()), float(stats.max.max())
        self.shift = np.array([low])
        self.scale = _safe_spread(np.array([high - low]), np.array([low]))


NORMALIZERS: dict[str, type[Normalizer]] = {
    cls.name: cls for cls in (Identity, FixedScale, PerBandStandardize, PerBandMinMax, GlobalMinMax)
}


def create_normalizer(name: str, **kwargs: Any) -> Normalizer:
    """A new normaliser by name: ``"none"``, ``"scale"``, ``"standardize"``, ``"minmax"``, ``"global_minmax"``."""
    try:
        cls = NORMALIZERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown normaliser {name!r}; choose one of {sorted(NORMALIZERS)}") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"normaliser {name!r}: {exc}") from None


def list_normalizers() -> list[str]:
    """Registered normaliser names."""
    return sorted(NORMALIZERS)


# ---------------------------------------------------------------------------- helpers
def _safe_spread(spread: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The spread, with 1 where it is zero (to float64 precision of ``level``): no division by zero."""
    tiny = 1e-12 * np.maximum(1.0, np.abs(level))
    return np.where(spread > tiny, spread, 1.0).astype(np.float64)


def _unpack_source(
    source: Cube | np.ndarray, nodata: float | None
) -> tuple[np.ndarray, float | None, np.ndarray | None, str]:
    """``(array (bands, ...), nodata value, explicit nodata mask or None, label for messages)``."""
    if isinstance(source, Cube):
        # The explicit mask is used as is; the value comparison is done chunk by chunk.
        explicit = source.explicit_nodata_mask  # Cube.nodata_mask would scan the whole cube
        return source.data, source.nodata, explicit, source.source_label
    if _is_tensor(source):
        source = source.detach().cpu().numpy()
    array = source if isinstance(source, np.ndarray) else np.asarray(source)
    if array.ndim < 2:
        raise ShapeMismatchError(
            f"statistics need a (bands, H, W) or (bands, N) array, got shape {array.shape}; "
            "use Cube.from_hwc for (H, W, bands) data"
        )
    if array.dtype.kind not in "biuf":
        raise InvalidCubeError(f"cannot compute statistics of a {array.dtype} array")
    return array, nodata, None, "<array>"


def _row_chunks(shape: tuple[int, ...], chunk_rows: int | None) -> list[tuple[int, int]]:
    rows = shape[1]
    if chunk_rows is None:
        per_row = max(1, int(np.prod(shape)) // max(rows, 1))
        chunk_rows = max(1, _CHUNK_ELEMENTS // per_row)
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be at least 1, got {chunk_rows}")
    return [(start, min(start + chunk_rows, rows)) for start in range(0, rows, chunk_rows)]


def _equals_nodata(block: np.ndarray, nodata: float, dtype: np.dtype) -> np.ndarray:
    """Where ``block`` (any dtype) equals ``nodata`` as stored in the cube's ``dtype``."""
    if math.isnan(nodata):
        return np.isnan(block)
    try:
        stored = dtype.type(nodata)  # e.g. float32(0.1) differs from the float 0.1
    except (OverflowError, ValueError):
        return np.zeros(block.shape, dtype=bool)
    return block == stored


def _numpy_float(array: np.ndarray) -> type:
    return np.float64 if array.dtype == np.float64 else np.float32


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)
