"""Band resampling: move a cube or spectra from one wavelength grid to another.

The source spectrum is modelled as the piecewise-linear function through its band
values (band centres sorted by wavelength; bands with the same centre averaged),
continued linearly beyond the first and last band. Each target band is then either

* ``method="gaussian"`` (default): the integral of that function against a Gaussian
  spectral response function (SRF) of the target band's centre and FWHM, normalised to
  unit area. The integral is computed in closed form (error functions), so there is no
  fine grid and no truncation, and the result is **exact** for any spectrum that is
  constant or linear in wavelength: the weights of a target band sum to 1 and their
  first moment equals the band centre.
* ``method="linear"``: the value of the piecewise-linear function at the target centre
  (plain linear interpolation).

Source bands already integrate light over their own FWHM. When the source FWHM is known
and ``subtract_source_fwhm=True`` (default), the Gaussian applied to the interpolated
spectrum has width ``sqrt(fwhm_target**2 - fwhm_source**2)`` (source FWHM interpolated at
the target centre), so that a target band ends up with about its nominal width instead
of the two widths combined. When the target is not wider than the source, this falls
back to linear interpolation.

Resampling is linear, so it is one ``(T, S)`` matrix (:func:`spectral_response_matrix`)
applied to the band axis; :func:`apply_band_matrix` applies it in chunks of rows, so a
cube (even a ``numpy.memmap``) is never held twice in memory.

Spectral coverage: the source covers ``[first centre - h_first, last centre + h_last]``
where ``h`` is half the band's FWHM (or, without FWHM, half the spacing to its
neighbour). A target centre outside that range raises :class:`WavelengthError` unless
``extrapolate=True`` (then the end segments are continued linearly, which can overshoot
far from the data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.special import ndtr

from hsikit.cube import Cube
from hsikit.errors import ConfigError, ShapeMismatchError, WavelengthError
from hsikit.spectral.normalize import valid_pixel_mask

ResampleMethod = Literal["gaussian", "linear"]
OutsidePolicy = Literal["linear", "nearest", "zero"]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
"""Multiply a full width at half maximum by this to get a Gaussian's standard deviation."""

# Below this effective Gaussian width (nm) the response is a delta: use interpolation.
_MIN_SIGMA_NM = 1e-6
# Working-memory budget of one chunk in apply_band_matrix.
_DEFAULT_CHUNK_BYTES = 64 * 2**20
# Wavelength grids below this maximum are micrometres (mirrors hsikit.cube).
_MICROMETRE_CEILING = 20.0


# --------------------------------------------------------------------------- validation
def _as_wavelength_vector(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1 or array.size == 0:
        raise WavelengthError(f"{what} must be a non-empty 1-D sequence of nm values, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise WavelengthError(f"{what} must be positive finite numbers in nm; got {array.min():g}..{array.max():g}")
    return array


def _check_nanometres(wavelengths: np.ndarray, what: str) -> None:
    if wavelengths.max() < _MICROMETRE_CEILING:
        raise WavelengthError(
            f"{what} {wavelengths.min():g}..{wavelengths.max():g} look like micrometres; "
            "hsikit works in nanometres — multiply by 1000"
        )


def _unique_knots(wavelengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct band centres ``(U,)`` and the ``(U, S)`` matrix averaging bands onto them.

    Real sensors list overlapping spectrometers out of order (AVIRIS) and may repeat a
    centre; sorting makes the piecewise-linear model well defined and averaging merges
    bands that share a centre.
    """
    knots, inverse = np.unique(wavelengths, return_inverse=True)
    averaging = np.zeros((knots.size, wavelengths.size))
    averaging[inverse, np.arange(wavelengths.size)] = 1.0
    averaging /= averaging.sum(axis=1, keepdims=True)
    return knots, averaging


def spectral_coverage(
    wavelengths: Sequence[float] | np.ndarray, fwhm: Sequence[float] | np.ndarray | None = None
) -> tuple[float, float]:
    """The wavelength range ``(low, high)`` in nm that bands at ``wavelengths`` measure.

    ``low`` is the shortest centre minus half its FWHM, ``high`` the longest centre plus
    half its FWHM; without FWHM, half the spacing to the neighbouring band is used (and
    a single band without FWHM covers only its centre).
    """
    centres = _as_wavelength_vector(wavelengths, "wavelengths")
    order = np.argsort(centres, kind="stable")
    first, last = int(order[0]), int(order[-1])
    if fwhm is not None:
        widths = _as_wavelength_vector(fwhm, "fwhm")
        if widths.shape != centres.shape:
            raise ShapeMismatchError(f"{widths.size} FWHM values for {centres.size} wavelengths; give one per band")
        return float(centres[first] - widths[first] / 2), float(centres[last] + widths[last] / 2)
    knots = np.unique(centres)
    if knots.size == 1:
        return float(knots[0]), float(knots[0])
    return float(knots[0] - (knots[1] - knots[0]) / 2), float(knots[-1] + (knots[-1] - knots[-2]) / 2)


def default_fwhm(wavelengths: Sequence[float] | np.ndarray) -> np.ndarray:
    """FWHM equal to the local band spacing (central differences, one-sided at the ends), ``(T,)`` nm."""
    centres = _as_wavelength_vector(wavelengths, "target wavelengths")
    if centres.size < 2:
        raise WavelengthError("a single target band has no spacing to take its FWHM from; pass target_fwhm= explicitly")
    order = np.argsort(centres, kind="stable")
    spacing = np.empty_like(centres)
    spacing[order] = np.abs(np.gradient(centres[order]))
    if np.any(spacing <= 0):
        raise WavelengthError("target wavelengths repeat a value; give distinct band centres or target_fwhm=")
    return spacing


def check_coverage(
    target_wavelengths: Sequence[float] | np.ndarray,
    source_wavelengths: Sequence[float] | np.ndarray,
    source_fwhm: Sequence[float] | np.ndarray | None = None,
) -> None:
    """Raise :class:`WavelengthError` when a target centre lies outside :func:`spectral_coverage`."""
    targets = _as_wavelength_vector(target_wavelengths, "target wavelengths")
    source_wavelengths = _as_wavelength_vector(source_wavelengths, "source wavelengths")
    low, high = spectral_coverage(source_wavelengths, source_fwhm)
    tolerance = 1e-6 * max(high, 1.0)
    outside = (targets < low - tolerance) | (targets > high + tolerance)
    if outside.any():
        bad = targets[outside]
        raise WavelengthError(
            f"target band centres {bad.min():g}..{bad.max():g} nm ({int(outside.sum())} of {targets.size}) lie outside "
            f"the source coverage {low:.2f}..{high:.2f} nm (source band centres "
            f"{source_wavelengths.min():.2f}..{source_wavelengths.max():.2f} nm); choose target wavelengths inside "
            "that range, or pass extrapolate=True to continue the end bands linearly"
        )


# --------------------------------------------------------------------------- matrices
def linear_interpolation_matrix(
    source_wavelengths: Sequence[float] | np.ndarray,
    query_wavelengths: Sequence[float] | np.ndarray,
    *,
    outside: OutsidePolicy = "linear",
) -> np.ndarray:
    """Weights ``(Q, S)`` that linearly interpolate band values at ``query_wavelengths``.

    ``weights @ spectrum`` (spectrum ``(S,)`` on ``source_wavelengths``, any order) gives the
    piecewise-linear interpolant at each query wavelength. Beyond the first/last band,
    ``outside`` selects ``"linear"`` (continue the end segment), ``"nearest"`` (hold the end
    value) or ``"zero"``. A single source band is constant inside/"nearest", zero otherwise.
    """
    source = _as_wavelength_vector(source_wavelengths, "source wavelengths")
    query = np.asarray(query_wavelengths, dtype=np.float64).reshape(-1)
    if outside not in ("linear", "nearest", "zero"):
        raise ConfigError(f"outside must be 'linear', 'nearest' or 'zero', got {outside!r}")
    knots, averaging = _unique_knots(source)
    weights = np.zeros((query.size, knots.size))
    rows = np.arange(query.size)
    if knots.size == 1:
        inside = query == knots[0]
        weights[:, 0] = 1.0 if outside != "zero" else inside.astype(np.float64)
        return weights @ averaging
    segment = np.clip(np.searchsorted(knots, query, side="right") - 1, 0, knots.size - 2)
    left, right = knots[segment], knots[segment + 1]
    position = (query - left) / (right - left)  # 0 at the left knot, 1 at the right one
    below, above = query < knots[0], query > knots[-1]
    if outside == "nearest":
        position = np.where(below, 0.0, np.where(above, 1.0, position))
    weights[rows, segment] = 1.0 - position
    weights[rows, segment + 1] += position
    if outside == "zero":
        weights[below | above] = 0.0
    return weights @ averaging


def _gaussian_knot_weights(knots: np.ndarray, centres: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Exact integrals ``(T, U)`` of unit-area Gaussians against the linear hat basis on ``knots``.

    The basis is piecewise linear between knots and continued linearly beyond the end
    knots, so every segment's contribution has a closed form in the normal CDF ``Phi`` and
    pdf ``phi``: for a segment ``[a, b]`` with knots ``(l, r)`` and ``z = (x - c) / sigma``,
    ``I0 = Phi(z_b) - Phi(z_a)`` and ``I1 = sigma * (phi(z_a) - phi(z_b))`` give
    ``int N(x) (r - x) dx = (r - c) I0 - I1`` and ``int N(x) (x - l) dx = (c - l) I0 + I1``.
    """
    count = knots.size
    weights = np.zeros((centres.size, count))
    if count == 1:
        weights[:, 0] = 1.0
        return weights
    lefts, rights = knots[:-1], knots[1:]
    bounds_low = lefts.copy()
    bounds_high = rights.copy()
    bounds_low[0], bounds_high[-1] = -np.inf, np.inf  # linear continuation beyond the ends
    c = centres[:, None]
    s = sigmas[:, None]
    z_low = (bounds_low[None, :] - c) / s
    z_high = (bounds_high[None, :] - c) / s
    mass = ndtr(z_high) - ndtr(z_low)
    with np.errstate(over="ignore", under="ignore"):
        pdf_low = np.exp(-0.5 * z_low**2) / np.sqrt(2.0 * np.pi)
        pdf_high = np.exp(-0.5 * z_high**2) / np.sqrt(2.0 * np.pi)
    first_moment = s * (pdf_low - pdf_high)
    width = rights - lefts
    left_part = ((rights[None, :] - c) * mass - first_moment) / width
    right_part = ((c - lefts[None, :]) * mass + first_moment) / width
    weights[:, :-1] += left_part
    weights[:, 1:] += right_part
    return weights


def spectral_response_matrix(
    source_wavelengths: Sequence[float] | np.ndarray,
    target_wavelengths: Sequence[float] | np.ndarray,
    target_fwhm: Sequence[float] | np.ndarray | float | None = None,
    *,
    source_fwhm: Sequence[float] | np.ndarray | None = None,
    method: ResampleMethod = "gaussian",
    subtract_source_fwhm: bool = True,
    extrapolate: bool = False,
) -> np.ndarray:
    """The ``(T, S)`` matrix that resamples spectra on ``source_wavelengths`` to the targets.

    Args:
        source_wavelengths: source band centres, nm, ``(S,)``, any order (duplicates averaged).
        target_wavelengths: target band centres, nm, ``(T,)``.
        target_fwhm: target FWHM in nm, ``(T,)`` or one number; default: the local spacing
            of the target centres (:func:`default_fwhm`). Only used by ``"gaussian"``.
        source_fwhm: source FWHM in nm, ``(S,)``; narrows the target Gaussians (see module
            docstring) and widens the coverage check to half a FWHM beyond the end bands.
        method: ``"gaussian"`` (spectral response integration) or ``"linear"``.
        subtract_source_fwhm: apply ``sqrt(fwhm_t^2 - fwhm_s^2)`` instead of ``fwhm_t``.
        extrapolate: allow target centres outside the source coverage.

    Returns:
        float64 ``(T, S)``; each row sums to 1.

    Raises:
        WavelengthError: a target lies outside the source coverage (message gives both
            ranges), or the wavelengths are invalid.
    """
    source = _as_wavelength_vector(source_wavelengths, "source wavelengths")
    targets = _as_wavelength_vector(target_wavelengths, "target wavelengths")
    _check_nanometres(source, "source wavelengths")
    _check_nanometres(targets, "target wavelengths")
    source_widths = None
    if source_fwhm is not None:
        source_widths = _as_wavelength_vector(source_fwhm, "source fwhm")
        if source_widths.shape != source.shape:
            raise ShapeMismatchError(
                f"{source_widths.size} source FWHM values for {source.size} source bands; give one per band"
            )
    if method not in ("gaussian", "linear"):
        raise ConfigError(f"unknown resampling method {method!r}; use 'gaussian' or 'linear'")
    if not extrapolate:
        check_coverage(targets, source, source_widths)
    if method == "linear":
        return linear_interpolation_matrix(source, targets, outside="linear")

    if target_fwhm is None:
        widths = default_fwhm(targets)
    else:
        widths = np.broadcast_to(np.asarray(target_fwhm, dtype=np.float64), targets.shape).copy()
        if not np.all(np.isfinite(widths)) or np.any(widths <= 0):
            raise WavelengthError("target_fwhm must be positive finite numbers in nm")
    if subtract_source_fwhm and source_widths is not None:
        knots_fwhm = linear_interpolation_matrix(source, targets, outside="nearest") @ source_widths
        widths = np.sqrt(np.clip(widths**2 - knots_fwhm**2, 0.0, None))
    sigmas = widths * FWHM_TO_SIGMA
    knots, averaging = _unique_knots(source)
    matrix = np.empty((targets.size, knots.size))
    sharp = sigmas < _MIN_SIGMA_NM
    if sharp.any():
        matrix[sharp] = linear_interpolation_matrix(knots, targets[sharp], outside="linear")
    if (~sharp).any():
        matrix[~sharp] = _gaussian_knot_weights(knots, targets[~sharp], sigmas[~sharp])
    return matrix @ averaging


# --------------------------------------------------------------------------- application
def _chunk_rows(bytes_per_row: int, chunk_rows: int | None) -> int:
    if chunk_rows is not None:
        if chunk_rows < 1:
            raise ConfigError(f"chunk_rows must be a positive number of rows, got {chunk_rows}")
        return int(chunk_rows)
    return max(1, _DEFAULT_CHUNK_BYTES // max(bytes_per_row, 1))


def apply_band_matrix(
    matrix: np.ndarray,
    data: np.ndarray,
    *,
    axis: int = 0,
    chunk_rows: int | None = None,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """``matrix`` ``(T, S)`` applied along the band axis of ``data`` (S bands at ``axis``).

    The work is done in chunks along the first non-band axis ("rows"), so only the output
    and one chunk are in memory; ``data`` may be a memory map. ``chunk_rows`` fixes the
    chunk height (default: about 64 MiB of working memory per chunk).

    Returns:
        array with the band axis replaced by T values, dtype ``dtype`` (default: float64 for
        float64 input, else float32).
    """
    matrix = np.asarray(matrix)
    array = data if isinstance(data, np.ndarray) else np.asarray(data)
    if array.ndim == 0:
        raise ShapeMismatchError("cannot resample a 0-d value; give an array with a band axis")
    band_axis = axis + array.ndim if axis < 0 else axis
    if not 0 <= band_axis < array.ndim:
        raise ShapeMismatchError(f"band axis {axis} does not exist in an array of shape {array.shape}")
    if array.shape[band_axis] != matrix.shape[1]:
        raise ShapeMismatchError(
            f"the band axis {axis} of the array (shape {array.shape}) has {array.shape[band_axis]} values but the "
            f"wavelength grid has {matrix.shape[1]}; give one wavelength per band (and check axis=)"
        )
    out_dtype = (
        np.dtype(dtype) if dtype is not None else np.dtype(np.float64 if array.dtype == np.float64 else np.float32)
    )
    work_matrix = matrix.astype(np.result_type(out_dtype, np.float32), copy=False)
    bands_first = np.moveaxis(array, band_axis, 0)
    if bands_first.ndim == 1:
        return (work_matrix @ bands_first.astype(work_matrix.dtype)).astype(out_dtype, copy=False)
    rest = bands_first.shape[1:]
    out = np.empty((matrix.shape[0], *rest), dtype=out_dtype)
    per_row = int(np.prod(rest[1:], dtype=np.int64)) * (matrix.shape[0] + matrix.shape[1]) * work_matrix.itemsize
    step = _chunk_rows(per_row, chunk_rows)
    for start in range(0, rest[0], step):
        stop = min(start + step, rest[0])
        chunk = np.asarray(bands_first[:, start:stop], dtype=work_matrix.dtype)
        out[:, start:stop] = np.tensordot(work_matrix, chunk, axes=(1, 0))
    return np.moveaxis(out, 0, band_axis)


def resample(
    source: Cube | np.ndarray,
    target_wavelengths: Sequence[float] | np.ndarray,
    target_fwhm: Sequence[float] | np.ndarray | float | None = None,
    *,
    source_wavelengths: Sequence[float] | np.ndarray | None = None,
    source_fwhm: Sequence[float] | np.ndarray | None = None,
    method: ResampleMethod = "gaussian",
    subtract_source_fwhm: bool = True,
    extrapolate: bool = False,
    axis: int = 0,
    chunk_rows: int | None = None,
    dtype: np.dtype | type | None = None,
) -> Cube | np.ndarray:
    """Resample a cube (or an array with a band axis) to new band centres.

    Args:
        source: a :class:`~hsikit.cube.Cube` ``(S, H, W)`` with wavelengths, or an array
            with S bands along ``axis`` (``(S, ...)`` by default; ``axis=-1`` for ``(N, S)``
            spectra).
        target_wavelengths: new band centres, nm, ``(T,)``.
        target_fwhm: new band widths, nm (default: target spacing). See
            :func:`spectral_response_matrix` for this and the other options.
        source_wavelengths, source_fwhm: the source bands (nm); taken from the cube when
            ``source`` is a Cube (an explicit value wins).
        axis: band axis of an array ``source`` (a Cube is always band-first).
        chunk_rows, dtype: see :func:`apply_band_matrix`.

    Returns:
        For a Cube: a new Cube ``(T, H, W)`` with ``wavelengths=target``, ``fwhm`` = the
        target FWHM (``"gaussian"``) or the interpolated source FWHM (``"linear"``), and
        the same CRS, transform, nodata and mask (masked pixels hold ``nodata`` or 0).
        For an array: the resampled array, band axis at ``axis``.
    """
    if isinstance(source, Cube):
        wavelengths = source_wavelengths if source_wavelengths is not None else source.wavelengths
        if wavelengths is None:
            raise WavelengthError(
                f"{source.source_label}: the cube has no band wavelengths to resample from; "
                "pass source_wavelengths= (nm) or open it with a wavelength file"
            )
        widths = source_fwhm if source_fwhm is not None else source.fwhm
    else:
        if source_wavelengths is None:
            raise WavelengthError("resampling an array needs source_wavelengths= (nm), one per band along axis")
        wavelengths, widths = source_wavelengths, source_fwhm
    matrix = spectral_response_matrix(
        wavelengths,
        target_wavelengths,
        target_fwhm,
        source_fwhm=widths,
        method=method,
        subtract_source_fwhm=subtract_source_fwhm,
        extrapolate=extrapolate,
    )
    if not isinstance(source, Cube):
        return apply_band_matrix(matrix, source, axis=axis, chunk_rows=chunk_rows, dtype=dtype)

    data = apply_band_matrix(matrix, source.data, axis=0, chunk_rows=chunk_rows, dtype=dtype)
    mask = ~valid_pixel_mask(source, chunk_rows=chunk_rows)  # read in chunks: never a (C, H, W) comparison
    if mask.any():
        data[:, mask] = source.nodata if source.nodata is not None else 0.0
    targets = _as_wavelength_vector(target_wavelengths, "target wavelengths")
    if method == "gaussian":
        new_fwhm = (
            default_fwhm(targets)
            if target_fwhm is None
            else np.broadcast_to(np.asarray(target_fwhm, dtype=np.float64), targets.shape).copy()
        )
    elif widths is not None:
        new_fwhm = linear_interpolation_matrix(wavelengths, targets, outside="nearest") @ np.asarray(widths, float)
    else:
        new_fwhm = None
    metadata = dict(source.metadata)
    metadata["spectral_resampling"] = {
        "method": method,
        "source_bands": int(source.bands),
        "source_range_nm": [float(np.min(wavelengths)), float(np.max(wavelengths))],
        "subtract_source_fwhm": bool(subtract_source_fwhm and widths is not None and method == "gaussian"),
    }
    return source.replace(
        data=data,
        wavelengths=targets,
        fwhm=new_fwhm,
        band_names=None,
        nodata_mask=mask if mask.any() else None,
        metadata=metadata,
    )


__all__ = [
    "FWHM_TO_SIGMA",
    "apply_band_matrix",
    "check_coverage",
    "default_fwhm",
    "linear_interpolation_matrix",
    "resample",
    "spectral_coverage",
    "spectral_response_matrix",
]
