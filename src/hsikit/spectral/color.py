"""Colour from spectra: cube -> CIE XYZ -> sRGB, and cube -> camera RGB.

**Tables.** The package needs no data files. Built in are

* :func:`builtin_cmf`: the CIE 1931 2-degree colour-matching functions as the analytic
  multi-lobe piecewise-Gaussian fit of Wyman, Sloan & Shirley, "Simple Analytic
  Approximations to the CIE XYZ Color Matching Functions", JCGT 2(2), 2013. Against the
  CIE 1 nm table it is within 0.025 absolute (peak values 1.06 / 1.00 / 1.78) and its
  integrals within 0.2 %.
* :func:`builtin_d65`: the CIE D65 relative spectral power distribution, 300-780 nm at
  10 nm (the CIE standard values; the colour-matching functions are negligible beyond).

The exact tables are read with :func:`load_cmf` (CIE 1 nm CSV:
``cie1931_2deg_xyz_cmf_360-830nm_1nm_colour-science.csv`` or ``ciexyz31_1.csv``) and
:func:`load_illuminant` (``D_illuminants.mat``: D65, D50, D55, D75 at 5 nm) from the
shared data folder or any path, and passed as ``cmf=`` / ``illuminant=``.

**Integration.** Band values are taken as samples of a piecewise-linear spectrum between
band centres, zero outside ``[first, last]`` band (nothing is assumed where the cube has
no bands). Colour-matching functions, illuminant and camera curves are piecewise linear
in their tables. The integral of their product against each band's linear "hat" function
is computed exactly (Simpson's rule on the merged grid of all knots is exact for these
piecewise cubics), giving a ``(3, C)`` weight matrix (:func:`spectral_integration_weights`)
that is applied to the cube in chunks of rows.

**Normalisation.** Reflectance (``illuminant`` given, default D65):
``XYZ = k * sum(R * S * cmf)`` with ``k`` chosen so that a perfect white reflector
(R = 1 at every band) has Y = 1 — on the cube's own bands, so the rule holds for any band
set. Radiance (``illuminant=None``): the same with S = 1, i.e. a flat spectrum of value 1
gives Y = 1; use ``exposure=`` or ``percentile=`` in :func:`cube_to_srgb` to bring the
brightness into display range.

**sRGB** (IEC 61966-2-1): linear sRGB = M @ XYZ, with M derived from the sRGB primaries
and the D65 white point (x, y) = (0.3127, 0.3290); then, with ``white_balance=True``
(default), each linear channel is divided by the value of the white (the perfect
reflector under the illuminant, or the flat spectrum for radiance), so white is exactly
(1, 1, 1) and any neutral grey has R = G = B. With D65 this only absorbs the small
mismatch between the tables' white and the sRGB white point (below 0.05 % per channel for
bands over 360-830 nm, with the CIE tables or the analytic fit; about 0.4 % for bands over
400-700 nm only); with another illuminant it acts as a von Kries white balance in sRGB
primaries. Finally clip to [0, 1] and apply the sRGB transfer curve.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.io

from hsikit.cube import Cube
from hsikit.data import paths
from hsikit.errors import (
    ConfigError,
    CorruptFileError,
    LayoutError,
    MatKeyError,
    ShapeMismatchError,
    UnknownNameError,
    WavelengthError,
)
from hsikit.spectral.cameras import CameraResponse, read_csv_table
from hsikit.spectral.normalize import valid_pixel_mask
from hsikit.spectral.resample import apply_band_matrix, linear_interpolation_matrix

PathLike = str | os.PathLike
OutputLayout = Literal["chw", "hwc"]
CameraNormalization = Literal["max", "white", "none"]

CIE1931_CMF_FILE = "color/cie1931_2deg_xyz_cmf_360-830nm_1nm_colour-science.csv"
D_ILLUMINANTS_FILE = "color/D_illuminants.mat"

# A cube must cover at least this fraction of a response's integral (e.g. of y-bar).
MIN_COVERAGE = 0.5


# --------------------------------------------------------------------------- tables
@dataclass(frozen=True, eq=False)
class ColorMatchingFunctions:
    """Colour-matching functions: ``wavelengths`` (N,) nm and ``xyz`` (3, N) = x-bar, y-bar, z-bar."""

    name: str
    wavelengths: np.ndarray
    xyz: np.ndarray
    source: str | None = None

    def __post_init__(self) -> None:
        wavelengths = np.asarray(self.wavelengths, dtype=np.float64).reshape(-1)
        xyz = np.asarray(self.xyz, dtype=np.float64)
        if xyz.shape != (3, wavelengths.size) or wavelengths.size < 2 or not np.all(np.diff(wavelengths) > 0):
            raise ShapeMismatchError(
                f"colour-matching functions {self.name!r}: need increasing wavelengths (N,) and xyz of shape "
                f"(3, N); got {wavelengths.shape} and {xyz.shape}"
            )
        object.__setattr__(self, "wavelengths", wavelengths)
        object.__setattr__(self, "xyz", xyz)


@dataclass(frozen=True, eq=False)
class Illuminant:
    """A light source: ``wavelengths`` (N,) nm and relative spectral power ``spd`` (N,)."""

    name: str
    wavelengths: np.ndarray
    spd: np.ndarray
    source: str | None = None

    def __post_init__(self) -> None:
        wavelengths = np.asarray(self.wavelengths, dtype=np.float64).reshape(-1)
        spd = np.asarray(self.spd, dtype=np.float64).reshape(-1)
        if spd.shape != wavelengths.shape or wavelengths.size < 2 or not np.all(np.diff(wavelengths) > 0):
            raise ShapeMismatchError(
                f"illuminant {self.name!r}: need increasing wavelengths and one power value per wavelength; "
                f"got {wavelengths.shape} and {spd.shape}"
            )
        if np.any(spd < 0) or not np.all(np.isfinite(spd)):
            raise CorruptFileError(f"illuminant {self.name!r}: spectral power must be finite and non-negative")
        object.__setattr__(self, "wavelengths", wavelengths)
        object.__setattr__(self, "spd", spd)


# Wyman, Sloan & Shirley (2013), multi-lobe fit of the CIE 1931 2-degree observer:
# each function is a sum of amplitude * g(lambda; mu, sigma_below, sigma_above), where g
# is a Gaussian whose width differs below and above its peak.
_WSS_LOBES: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "x": ((1.056, 599.8, 37.9, 31.0), (0.362, 442.0, 16.0, 26.7), (-0.065, 501.1, 20.4, 26.2)),
    "y": ((0.821, 568.8, 46.9, 40.5), (0.286, 530.9, 16.3, 31.1)),
    "z": ((1.217, 437.0, 11.8, 36.0), (0.681, 459.0, 26.0, 13.8)),
}

# CIE standard illuminant D65, relative spectral power, 300-780 nm every 10 nm.
_D65_START_NM, _D65_STEP_NM = 300.0, 10.0
_D65_10NM = (
    0.0341, 3.2945, 20.236, 37.0535, 39.9488, 44.9117, 46.6383, 52.0891, 49.9755, 54.6482,
    82.7549, 91.486, 93.4318, 86.6823, 104.865, 117.008, 117.812, 114.861, 115.923, 108.811,
    109.354, 107.802, 104.79, 107.689, 104.405, 104.046, 100.0, 96.3342, 95.788, 88.6856,
    90.0062, 89.5991, 87.6987, 83.2886, 83.6992, 80.0268, 80.2146, 82.2778, 78.2842, 69.7213,
    71.6091, 74.349, 61.604, 69.8856, 75.087, 63.5927, 46.4182, 66.8054, 63.3828,
)  # fmt: skip


def _piecewise_gaussian(wavelengths: np.ndarray, mu: float, sigma_below: float, sigma_above: float) -> np.ndarray:
    sigma = np.where(wavelengths < mu, sigma_below, sigma_above)
    return np.exp(-0.5 * ((wavelengths - mu) / sigma) ** 2)


def wyman_cmf(wavelengths: Sequence[float] | np.ndarray) -> np.ndarray:
    """The Wyman-Sloan-Shirley analytic CIE 1931 2-degree CMFs at ``wavelengths`` (nm): ``(3, N)``."""
    grid = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    return np.stack(
        [
            sum(amplitude * _piecewise_gaussian(grid, mu, below, above) for amplitude, mu, below, above in lobes)
            for lobes in _WSS_LOBES.values()
        ]
    )


def builtin_cmf(step_nm: float = 1.0) -> ColorMatchingFunctions:
    """The built-in CIE 1931 2-degree CMFs (analytic fit), 360-830 nm every ``step_nm``."""
    grid = np.arange(360.0, 830.0 + step_nm / 2, step_nm)
    return ColorMatchingFunctions("CIE 1931 2-degree (Wyman-Sloan-Shirley 2013 fit)", grid, wyman_cmf(grid))


def builtin_d65() -> Illuminant:
    """The built-in CIE D65 illuminant, 300-780 nm at 10 nm."""
    grid = _D65_START_NM + _D65_STEP_NM * np.arange(len(_D65_10NM))
    return Illuminant("D65", grid, np.array(_D65_10NM))


def load_cmf(path: PathLike | None = None) -> ColorMatchingFunctions:
    """CIE colour-matching functions from a CSV (wavelength, x-bar, y-bar, z-bar; header; ``#`` comments).

    Default: the CIE 1931 2-degree 1 nm table of the shared data folder. Reads
    ``ciexyz31_1.csv`` (CVRL) the same way.
    """
    file = paths.shared_data_file(CIE1931_CMF_FILE, path)
    header, values = read_csv_table(file)
    if values.shape[1] < 4:
        raise CorruptFileError(f"'{file}': expected 4 columns (wavelength, x-bar, y-bar, z-bar), found {header}")
    return ColorMatchingFunctions(file.stem, values[:, 0], values[:, 1:4].T, source=str(file))


# Column order of the "D" array of D_illuminants.mat after the wavelength column,
# identified by the CIE values at 300 nm (D65 0.0341, D50 0.019, D55 0.024, D75 0.043).
_D_ILLUMINANT_COLUMNS = ("D65", "D50", "D55", "D75")


def load_illuminant(path: PathLike | None = None, name: str = "D65") -> Illuminant:
    """A CIE D illuminant (``"D65"``, ``"D50"``, ``"D55"`` or ``"D75"``) from ``D_illuminants.mat``.

    The file's ``D`` array is ``(97, 5)``: wavelength 300-780 nm at 5 nm, then the four
    illuminants. Default path: the shared data folder.
    """
    key = name.strip().upper()
    if key not in _D_ILLUMINANT_COLUMNS:
        raise UnknownNameError(
            f"no illuminant named {name!r} in the D illuminant table; use one of {_D_ILLUMINANT_COLUMNS}"
        )
    file = paths.shared_data_file(D_ILLUMINANTS_FILE, path)
    try:
        contents = scipy.io.loadmat(file)
    except (OSError, ValueError) as error:
        raise CorruptFileError(f"'{file}': cannot read the MATLAB file ({error})") from error
    table = contents.get("D")
    if table is None or np.ndim(table) != 2 or table.shape[1] != 1 + len(_D_ILLUMINANT_COLUMNS):
        raise MatKeyError(
            f"'{file}': expected a key 'D' holding (N, 5) = wavelength, D65, D50, D55, D75; "
            f"found keys {sorted(k for k in contents if not k.startswith('__'))}"
        )
    column = 1 + _D_ILLUMINANT_COLUMNS.index(key)
    return Illuminant(key, table[:, 0], table[:, column], source=str(file))


# --------------------------------------------------------------------------- sRGB maths
def _xyz_from_xy(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def _srgb_matrix() -> np.ndarray:
    """XYZ -> linear sRGB from the sRGB primaries and the D65 white point (IEC 61966-2-1)."""
    primaries = np.stack([_xyz_from_xy(0.64, 0.33), _xyz_from_xy(0.30, 0.60), _xyz_from_xy(0.15, 0.06)], axis=1)
    white = _xyz_from_xy(0.3127, 0.3290)
    scale = np.linalg.solve(primaries, white)  # luminances making R = G = B = 1 the white point
    return np.linalg.inv(primaries * scale[None, :])


XYZ_TO_LINEAR_SRGB = _srgb_matrix()
"""``(3, 3)`` matrix from CIE XYZ (D65, Y = 1 for white) to linear sRGB."""
LINEAR_SRGB_TO_XYZ = np.linalg.inv(XYZ_TO_LINEAR_SRGB)
"""``(3, 3)`` inverse of :data:`XYZ_TO_LINEAR_SRGB`."""


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve: linear values in [0, 1] to display values (negatives are kept linear)."""
    linear = np.asarray(linear)
    threshold = 0.0031308
    safe = np.maximum(linear, threshold)
    return np.where(linear <= threshold, 12.92 * linear, 1.055 * safe ** (1 / 2.4) - 0.055).astype(
        np.result_type(linear.dtype, np.float32), copy=False
    )


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`srgb_encode`: display values to linear light."""
    encoded = np.asarray(encoded)
    safe = np.maximum(encoded, 0.04045)
    return np.where(encoded <= 0.04045, encoded / 12.92, ((safe + 0.055) / 1.055) ** 2.4).astype(
        np.result_type(encoded.dtype, np.float32), copy=False
    )


def xyz_to_srgb(xyz: np.ndarray, *, clip: bool = True, encode: bool = True) -> np.ndarray:
    """CIE XYZ ``(3, ...)`` (Y = 1 for white) to sRGB ``(3, ...)``: matrix, clip to [0, 1], transfer curve."""
    xyz = np.asarray(xyz)
    if xyz.ndim == 0 or xyz.shape[0] != 3:
        raise LayoutError(f"xyz_to_srgb expects XYZ on the first axis, shape (3, ...); got {xyz.shape}")
    rgb = np.tensordot(XYZ_TO_LINEAR_SRGB.astype(np.result_type(xyz.dtype, np.float32)), xyz, axes=(1, 0))
    if clip:
        rgb = np.clip(rgb, 0.0, 1.0)
    return srgb_encode(rgb) if encode else rgb


# --------------------------------------------------------------------------- integration
def spectral_integration_weights(
    band_wavelengths: Sequence[float] | np.ndarray,
    curve_wavelengths: Sequence[float] | np.ndarray,
    curves: np.ndarray,
    illuminant: Illuminant | None = None,
    *,
    min_coverage: float = MIN_COVERAGE,
    what: str = "response",
) -> np.ndarray:
    """Weights ``(K, C)`` with ``weights @ spectrum = integral(curve_k * illuminant * spectrum)``.

    The spectrum ``(C,)`` is the piecewise-linear function through the band values,
    zero outside the band range; ``curves`` ``(K, N)`` and the illuminant are linear between
    their samples and zero outside their tables. The integral over the merged grid of all
    sample points is exact (Simpson's rule; the integrand is a cubic on every interval).

    Raises:
        WavelengthError: when the bands cover less than ``min_coverage`` of the integral of
            some curve (times the illuminant); the message names the ranges.
    """
    bands = np.asarray(band_wavelengths, dtype=np.float64).reshape(-1)
    grid_curves = np.asarray(curve_wavelengths, dtype=np.float64).reshape(-1)
    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    if curves.shape[1] != grid_curves.size:
        raise ShapeMismatchError(f"{what}: {curves.shape[1]} curve samples for {grid_curves.size} wavelengths")
    if bands.size < 2:
        raise WavelengthError(f"{what}: integrating a spectrum needs at least 2 bands, got {bands.size}")
    knots = [grid_curves, bands]
    if illuminant is not None:
        knots.append(illuminant.wavelengths)
    all_knots = np.unique(np.concatenate(knots))

    def integrate_on(grid: np.ndarray, with_bands: bool) -> np.ndarray:
        middles = (grid[:-1] + grid[1:]) / 2
        step = np.diff(grid)
        totals = []
        for points, factor in ((grid[:-1], step / 6), (middles, 4 * step / 6), (grid[1:], step / 6)):
            values = np.stack([np.interp(points, grid_curves, row, left=0.0, right=0.0) for row in curves])
            if illuminant is not None:
                values = values * np.interp(points, illuminant.wavelengths, illuminant.spd, left=0.0, right=0.0)
            if with_bands:
                basis = linear_interpolation_matrix(bands, points, outside="zero")  # (P, C)
                totals.append((values * factor) @ basis)
            else:
                totals.append((values * factor).sum(axis=1))
        return sum(totals)

    low, high = max(bands.min(), all_knots[0]), min(bands.max(), all_knots[-1])
    inside = all_knots[(all_knots >= low) & (all_knots <= high)]
    if inside.size < 2:
        raise WavelengthError(
            f"{what}: the bands ({bands.min():.1f}..{bands.max():.1f} nm) do not overlap the response "
            f"({grid_curves.min():.1f}..{grid_curves.max():.1f} nm)"
        )
    weights = integrate_on(inside, with_bands=True)
    total = integrate_on(all_knots, with_bands=False)
    covered = integrate_on(inside, with_bands=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(total > 0, covered / total, 0.0)
    if np.any(fraction < min_coverage):
        worst = int(np.argmin(fraction))
        raise WavelengthError(
            f"{what}: the bands cover {bands.min():.1f}..{bands.max():.1f} nm, which holds only "
            f"{100 * fraction[worst]:.0f}% of channel {worst}'s response (it spans {grid_curves.min():.0f}.."
            f"{grid_curves.max():.0f} nm; at least {100 * min_coverage:.0f}% is needed); give a cube with bands "
            "across that range"
        )
    return weights


# --------------------------------------------------------------------------- cube helpers
def _source_parts(
    source: Cube | np.ndarray, wavelengths: Sequence[float] | np.ndarray | None, axis: int
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None, str]:
    """(data, wavelengths, band axis, nodata mask or None, label) of a Cube or an array."""
    if isinstance(source, Cube):
        band_wavelengths = wavelengths if wavelengths is not None else source.wavelengths
        if band_wavelengths is None:
            raise WavelengthError(
                f"{source.source_label}: colour rendering needs band wavelengths and this cube has none; "
                "pass wavelengths= (nm) or open the cube with its wavelength file"
            )
        mask = ~valid_pixel_mask(source)  # chunked: no (C, H, W) comparison on a memory map
        return source.data, np.asarray(band_wavelengths, float), 0, (mask if mask.any() else None), source.source_label
    if wavelengths is None:
        raise WavelengthError("colour rendering of an array needs wavelengths= (nm), one per band along axis")
    array = np.asarray(source) if not isinstance(source, np.ndarray) else source
    return array, np.asarray(wavelengths, float).reshape(-1), axis, None, "<memory>"


def _resolve_illuminant(illuminant: Illuminant | str | None) -> Illuminant | None:
    if illuminant is None or isinstance(illuminant, Illuminant):
        return illuminant
    if isinstance(illuminant, str) and illuminant.strip().upper() == "D65":
        return builtin_d65()
    raise ConfigError(
        f"illuminant {illuminant!r}: use 'D65' (built in), None (radiance), or an Illuminant "
        "(e.g. load_illuminant(name='D50'))"
    )


def _to_layout(channels: np.ndarray, layout: OutputLayout) -> np.ndarray:
    if layout == "chw":
        return channels
    if layout == "hwc":
        return np.moveaxis(channels, 0, -1)
    raise LayoutError(f"layout must be 'chw' (channels first) or 'hwc' (channels last), got {layout!r}")


def xyz_weights(
    band_wavelengths: Sequence[float] | np.ndarray,
    *,
    illuminant: Illuminant | str | None = "D65",
    cmf: ColorMatchingFunctions | None = None,
) -> np.ndarray:
    """The ``(3, C)`` matrix from band values to XYZ, normalised so a white spectrum has Y = 1.

    White is reflectance 1 under ``illuminant``, or a flat spectrum of 1 when
    ``illuminant`` is None (radiance).
    """
    observer = cmf if cmf is not None else builtin_cmf()
    weights = spectral_integration_weights(
        band_wavelengths, observer.wavelengths, observer.xyz, _resolve_illuminant(illuminant), what="CIE XYZ"
    )
    return weights / weights[1].sum()


def cube_to_xyz(
    source: Cube | np.ndarray,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    *,
    illuminant: Illuminant | str | None = "D65",
    cmf: ColorMatchingFunctions | None = None,
    axis: int = 0,
    chunk_rows: int | None = None,
) -> np.ndarray:
    """CIE XYZ of every pixel: ``(3, H, W)`` float32 (band axis replaced by X, Y, Z).

    Args:
        source: a Cube ``(C, H, W)`` with wavelengths, or an array with C bands on ``axis``
            (then ``wavelengths=`` is required).
        wavelengths: band centres in nm (overrides the cube's).
        illuminant: ``"D65"`` (built in, default) or an :class:`Illuminant` for reflectance
            data; None for radiance. See the module docstring for the normalisation.
        cmf: colour-matching functions (default: :func:`builtin_cmf`; pass
            ``load_cmf()`` for the CIE table).
    """
    data, band_wavelengths, band_axis, mask, _ = _source_parts(source, wavelengths, axis)
    weights = xyz_weights(band_wavelengths, illuminant=illuminant, cmf=cmf)
    xyz = apply_band_matrix(weights, data, axis=band_axis, chunk_rows=chunk_rows, dtype=np.float32)
    xyz = np.moveaxis(xyz, band_axis, 0)
    if mask is not None:
        xyz[:, mask] = 0.0
    return xyz


def cube_to_srgb(
    source: Cube | np.ndarray,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    *,
    illuminant: Illuminant | str | None = "D65",
    cmf: ColorMatchingFunctions | None = None,
    exposure: float | None = None,
    percentile: float | None = None,
    white_balance: bool = True,
    clip: bool = True,
    encode: bool = True,
    layout: OutputLayout = "chw",
    axis: int = 0,
    chunk_rows: int | None = None,
) -> np.ndarray:
    """True-colour sRGB of a cube: ``(3, H, W)`` (or ``(H, W, 3)`` with ``layout="hwc"``) float32.

    Args:
        source, wavelengths, illuminant, cmf, axis, chunk_rows: as in :func:`cube_to_xyz`.
        exposure: multiply linear light by this factor (e.g. for radiance data).
        percentile: instead, scale linear light so that this percentile (0-100) of the
            luminance Y over valid pixels becomes 1 (e.g. 99 for radiance scenes).
        white_balance: divide each linear channel by the white's value so white is
            exactly (1, 1, 1) (see the module docstring).
        clip: clip linear values to [0, 1] (else out-of-gamut values are kept).
        encode: apply the sRGB transfer curve (else return linear sRGB).
        layout: ``"chw"`` (default) or ``"hwc"`` (for image libraries).

    Returns:
        float32 sRGB values, in [0, 1] when ``clip``; nodata pixels are 0.
    """
    if exposure is not None and percentile is not None:
        raise ConfigError("give exposure= or percentile=, not both")
    data, band_wavelengths, band_axis, mask, label = _source_parts(source, wavelengths, axis)
    weights = xyz_weights(band_wavelengths, illuminant=illuminant, cmf=cmf)
    to_rgb = XYZ_TO_LINEAR_SRGB @ weights  # (3, C): band values -> linear sRGB
    if white_balance:
        to_rgb = to_rgb / to_rgb.sum(axis=1, keepdims=True)  # white (all ones) -> (1, 1, 1)
    linear = np.moveaxis(
        apply_band_matrix(to_rgb, data, axis=band_axis, chunk_rows=chunk_rows, dtype=np.float32), band_axis, 0
    )
    scale = 1.0
    if exposure is not None:
        scale = float(exposure)
    elif percentile is not None:
        if not 0 < percentile <= 100:
            raise ConfigError(f"percentile must be in (0, 100], got {percentile}")
        luminance = np.tensordot(LINEAR_SRGB_TO_XYZ[1].astype(np.float32), linear, axes=(0, 0))
        valid = np.isfinite(luminance) if mask is None else np.isfinite(luminance) & ~mask
        if not valid.any():
            raise ConfigError(f"{label}: no valid pixel to take the {percentile}th luminance percentile from")
        reference = float(np.percentile(luminance[valid], percentile))
        if reference <= 0:
            raise ConfigError(
                f"{label}: the {percentile}th percentile of the luminance is {reference:g} (dark image); "
                "choose a higher percentile or give exposure="
            )
        scale = 1.0 / reference
    if scale != 1.0:
        linear *= np.float32(scale)
    if clip:
        np.clip(linear, 0.0, 1.0, out=linear)
    result = srgb_encode(linear) if encode else linear
    if mask is not None:
        result[:, mask] = 0.0
    return _to_layout(result.astype(np.float32, copy=False), layout)


def cube_to_camera_rgb(
    source: Cube | np.ndarray,
    camera: CameraResponse,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    *,
    illuminant: Illuminant | str | None = None,
    normalize: CameraNormalization = "max",
    clip: bool = False,
    layout: OutputLayout = "chw",
    axis: int = 0,
    chunk_rows: int | None = None,
) -> np.ndarray:
    """Simulated camera RGB: ``RGB_c = k_c * integral(curve_c * illuminant * spectrum)``, float32.

    The camera curves are interpolated onto the cube's bands by the exact integration of
    :func:`spectral_integration_weights` (linear between samples, zero outside each table).

    Args:
        source, wavelengths, axis, chunk_rows: as in :func:`cube_to_xyz`.
        camera: a :class:`~hsikit.spectral.cameras.CameraResponse` (any table).
        illuminant: None (default: the cube holds radiance, i.e. the light reaching the
            sensor), ``"D65"`` or an :class:`Illuminant` (reflectance cubes).
        normalize: the white is reflectance 1 under the illuminant (or a flat spectrum of
            1 without one):

            * ``"max"`` (default): one factor for all channels so the white's largest
              channel is 1 — the camera's raw channel ratios (its white balance) are kept;
            * ``"white"``: a factor per channel so the white is (1, 1, 1) (white-balanced);
            * ``"none"``: the raw integral (curve units x data units x nm).
        clip: clip the result to [0, 1].
        layout: ``"chw"`` or ``"hwc"``.
    """
    data, band_wavelengths, band_axis, mask, _ = _source_parts(source, wavelengths, axis)
    weights = spectral_integration_weights(
        band_wavelengths,
        camera.wavelengths,
        camera.curves,
        _resolve_illuminant(illuminant),
        what=f"camera {camera.name!r}",
    )
    white = weights.sum(axis=1)
    if normalize == "max":
        weights = weights / white.max()
    elif normalize == "white":
        weights = weights / white[:, None]
    elif normalize != "none":
        raise ConfigError(f"normalize must be 'max', 'white' or 'none', got {normalize!r}")
    rgb = np.moveaxis(
        apply_band_matrix(weights, data, axis=band_axis, chunk_rows=chunk_rows, dtype=np.float32), band_axis, 0
    )
    if clip:
        np.clip(rgb, 0.0, 1.0, out=rgb)
    if mask is not None:
        rgb[:, mask] = 0.0
    return _to_layout(rgb, layout)


__all__ = [
    "LINEAR_SRGB_TO_XYZ",
    "XYZ_TO_LINEAR_SRGB",
    "ColorMatchingFunctions",
    "Illuminant",
    "builtin_cmf",
    "builtin_d65",
    "cube_to_camera_rgb",
    "cube_to_srgb",
    "cube_to_xyz",
    "load_cmf",
    "load_illuminant",
    "spectral_integration_weights",
    "srgb_decode",
    "srgb_encode",
    "wyman_cmf",
    "xyz_to_srgb",
    "xyz_weights",
]
