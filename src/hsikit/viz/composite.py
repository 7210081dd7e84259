"""Colour composites of a cube: true colour, false colour, any three bands.

A composite takes three bands of a ``(bands, H, W)`` cube as red, green and blue,
stretches each between robust percentiles of its valid pixels (2-98 % by
default), and returns an ``(H, W, 3)`` uint8 image (:func:`composite_rgb`) or a
figure (:func:`plot_composite`, :func:`plot_true_colour`, :func:`plot_false_colour`).
Bands are chosen by 0-based index or by wavelength (nearest band centre).
Nodata pixels come out black in arrays and transparent in PNG figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
from matplotlib.figure import Figure

from hsikit.cube import Cube
from hsikit.errors import ConfigError, InvalidCubeError, WavelengthError
from hsikit.viz.style import DEFAULT_DPI, finish, pixel_exact_figure

#: Band centres (nm) of a true-colour composite: red, green, blue.
TRUE_COLOUR_NM: tuple[float, float, float] = (640.0, 550.0, 460.0)

#: Band centres (nm) of the colour-infrared (CIR) false colour: NIR, red, green.
COLOUR_INFRARED_NM: tuple[float, float, float] = (860.0, 650.0, 550.0)

#: Default robust stretch: lower and upper percentile of the valid pixels.
DEFAULT_PERCENTILES: tuple[float, float] = (2.0, 98.0)

#: A requested wavelength farther than this from every band centre is refused (nm).
MAX_BAND_DISTANCE_NM = 50.0

# Percentiles are estimated from at most about this many pixels (a regular grid
# through the image): exact enough for display, and fast on scenes of 10^8 pixels.
_PERCENTILE_SAMPLE = 1_000_000

# The CIE rendering needs the visible range; a band within this margin of
# 400 nm and of 700 nm counts as covering it.
_VISIBLE_RANGE_NM = (400.0, 700.0)
_VISIBLE_MARGIN_NM = 10.0

CompositeMethod = Literal["nearest", "cie", "auto"]


# ---------------------------------------------------------------------------- band choice
def select_rgb_bands(
    cube: Cube,
    bands: Sequence[int] | None = None,
    wavelengths: Sequence[float] | None = None,
    max_distance_nm: float = MAX_BAND_DISTANCE_NM,
) -> tuple[int, int, int]:
    """The 0-based band indices shown as red, green and blue.

    Args:
        cube: the cube, ``(bands, H, W)``.
        bands: three band indices (0-based); wins over ``wavelengths``.
        wavelengths: three wavelengths in nm; each picks the band with the nearest
            centre. Defaults to :data:`TRUE_COLOUR_NM` when ``bands`` is None.
        max_distance_nm: refuse a wavelength farther than this from every band.

    Raises:
        InvalidCubeError: an index outside ``0..bands-1``, a cube without
            wavelengths asked for wavelengths, or a wavelength the cube does not cover.
    """
    if bands is not None:
        indices = [int(band) for band in bands]
        if len(indices) != 3:
            raise ConfigError(f"a colour composite needs 3 bands (red, green, blue), got {len(indices)}: {indices}")
        for index in indices:
            if not 0 <= index < cube.bands:
                raise InvalidCubeError(
                    f"{cube.source_label}: band {index} does not exist; the cube has {cube.bands} bands, "
                    f"numbered 0..{cube.bands - 1}"
                )
        return (indices[0], indices[1], indices[2])
    targets = [float(w) for w in (TRUE_COLOUR_NM if wavelengths is None else wavelengths)]
    if len(targets) != 3:
        raise ConfigError(f"a colour composite needs 3 wavelengths (red, green, blue), got {len(targets)}: {targets}")
    if cube.wavelengths is None:
        raise WavelengthError(
            f"{cube.source_label} has no band wavelengths, so bands cannot be chosen by wavelength "
            f"({', '.join(f'{w:g}' for w in targets)} nm); choose band indices instead "
            "(bands=(r, g, b); command line: --bands R G B) or give the wavelengths when opening the file"
        )
    return (
        nearest_band_index(cube, targets[0], max_distance_nm),
        nearest_band_index(cube, targets[1], max_distance_nm),
        nearest_band_index(cube, targets[2], max_distance_nm),
    )


def nearest_band_index(cube: Cube, wavelength: float, max_distance_nm: float = MAX_BAND_DISTANCE_NM) -> int:
    """Index of the band whose centre is nearest ``wavelength`` (nm), refused beyond ``max_distance_nm``."""
    if cube.wavelengths is None:
        raise WavelengthError(
            f"{cube.source_label} has no band wavelengths, so no band can be chosen at {wavelength:g} nm; "
            "choose band indices instead or give the wavelengths when opening the file"
        )
    index = cube.band_index(wavelength)
    distance = abs(float(cube.wavelengths[index]) - wavelength)
    if distance > max_distance_nm:
        raise WavelengthError(
            f"{cube.source_label}: no band within {max_distance_nm:g} nm of {wavelength:g} nm (the nearest is "
            f"band {index} at {cube.wavelengths[index]:.1f} nm; the cube covers "
            f"{cube.wavelengths.min():.1f}..{cube.wavelengths.max():.1f} nm); ask for wavelengths inside that "
            "range or choose band indices"
        )
    return index


def describe_bands(cube: Cube, bands: Sequence[int], channel_names: str = "RGB") -> str:
    """A short text such as ``"R: band 29 (639.8 nm), G: band 17 (548.6 nm), B: band 6 (458.7 nm)"``."""
    parts = []
    for channel, band in zip(channel_names, bands):
        text = f"{channel}: band {band}"
        if cube.wavelengths is not None:
            text += f" ({cube.wavelengths[band]:.1f} nm)"
        parts.append(text)
    return ", ".join(parts)


# ---------------------------------------------------------------------------- stretching
def _check_percentiles(percentiles: Sequence[float]) -> tuple[float, float]:
    values = [float(p) for p in percentiles]
    if len(values) != 2 or not 0.0 <= values[0] < values[1] <= 100.0:
        raise ConfigError(
            f"a stretch needs two percentiles low < high within 0..100, got {list(percentiles)}; e.g. (2, 98)"
        )
    return values[0], values[1]


def _spatial_step(height: int, width: int) -> int:
    """Row/column stride that leaves at most about ``_PERCENTILE_SAMPLE`` pixels."""
    return max(1, int(np.ceil(np.sqrt(height * width / _PERCENTILE_SAMPLE))))


def percentile_limits(
    data: np.ndarray,
    valid_mask: np.ndarray | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    per_channel: bool = True,
) -> np.ndarray:
    """Lower and upper display limits of each channel, shape ``(channels, 2)``.

    ``data`` is ``(channels, H, W)``; only pixels that are valid (``valid_mask``,
    ``(H, W)`` bool) and finite in every channel count. With ``per_channel=False``
    every channel gets the limits of all channels pooled (keeps their ratios:
    grey stays grey). Channels without a valid pixel get ``(0, 0)``.
    """
    low_pct, high_pct = _check_percentiles(percentiles)
    step = _spatial_step(data.shape[-2], data.shape[-1])
    sample = np.asarray(data[:, ::step, ::step])  # a regular grid of pixels bounds time and memory
    valid = np.isfinite(sample).all(axis=0)
    if valid_mask is not None:
        valid &= np.asarray(valid_mask, dtype=bool)[::step, ::step]
    channels = data.shape[0]
    if not valid.any():
        return np.zeros((channels, 2))
    values = sample[:, valid].astype(np.float64)
    if per_channel:
        limits = np.percentile(values, [low_pct, high_pct], axis=1).T
    else:
        limits = np.tile(np.percentile(values.reshape(-1), [low_pct, high_pct]), (channels, 1))
    return np.asarray(limits, dtype=np.float64)


def stretch(
    data: np.ndarray,
    valid_mask: np.ndarray | None = None,
    percentiles: Sequence[float] | None = DEFAULT_PERCENTILES,
    per_channel: bool = True,
) -> np.ndarray:
    """Scale ``data`` to [0, 1] between robust percentiles, channel by channel.

    Args:
        data: ``(channels, H, W)`` or ``(H, W)`` array, any numeric dtype.
        valid_mask: ``(H, W)`` bool, True where the pixel holds data.
        percentiles: ``(low, high)`` in percent; values at or below the low
            percentile map to 0, at or above the high one to 1. None: no stretch,
            the data are only clipped to [0, 1] (for images already in that range).
        per_channel: stretch each channel with its own limits (default) or all
            with the pooled limits.

    Returns:
        float32 array of the input's shape in [0, 1]; invalid and non-finite
        pixels are 0. A channel whose limits coincide (constant) is 0.
    """
    array = np.asarray(data, dtype=np.float32)
    single = array.ndim == 2
    if single:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ConfigError(f"stretch expects a (channels, H, W) or (H, W) array, got shape {np.shape(data)}")
    valid = np.isfinite(array).all(axis=0)
    if valid_mask is not None:
        valid &= np.asarray(valid_mask, dtype=bool)
    if percentiles is None:
        result = np.clip(array, 0.0, 1.0)
    else:
        limits = percentile_limits(array, valid, percentiles, per_channel).astype(np.float32)
        low = limits[:, 0, None, None]
        span = (limits[:, 1] - limits[:, 0])[:, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            result = np.where(span > 0, (array - low) / np.where(span > 0, span, 1.0), 0.0)
        result = np.clip(result, 0.0, 1.0).astype(np.float32)
    result[:, ~valid] = 0.0
    return result[0] if single else result


# ---------------------------------------------------------------------------- composites
def covers_visible(cube: Cube) -> bool:
    """True when the cube's band centres span 400-700 nm (within 10 nm at each end)."""
    if cube.wavelengths is None:
        return False
    low, high = _VISIBLE_RANGE_NM
    return bool(
        cube.wavelengths.min() <= low + _VISIBLE_MARGIN_NM and cube.wavelengths.max() >= high - _VISIBLE_MARGIN_NM
    )


def uses_cie_rendering(
    cube: Cube,
    bands: Sequence[int] | None = None,
    wavelengths: Sequence[float] | None = None,
    method: CompositeMethod = "nearest",
) -> bool:
    """True when a composite with these arguments is the CIE sRGB rendering rather than three bands."""
    if method not in ("nearest", "cie", "auto"):
        raise ConfigError(f"unknown composite method {method!r}; use 'nearest', 'cie' or 'auto'")
    if bands is not None or wavelengths is not None:
        return False
    return method == "cie" or (method == "auto" and covers_visible(cube))


def _looks_like_reflectance(cube: Cube) -> bool:
    """True for reflectance: said so in the metadata, or (else) values within -0.5..2."""
    for key in ("units", "quantity", "data_type"):
        text = str(cube.metadata.get(key, "")).lower()
        if "reflectance" in text:
            return True
        if "radiance" in text:
            return False
    if cube.dtype.kind in "iu":
        return False
    sample = np.asarray(cube.data[:, :: max(1, cube.height // 64), :: max(1, cube.width // 64)], dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    return bool(sample.size and sample.min() >= -0.5 and sample.max() <= 2.0)


def _render_cie_linear_srgb(cube: Cube) -> np.ndarray:
    """Linear-light sRGB of the cube through the CIE 1931 observer, ``(3, H, W)`` float32, not clipped.

    Reflectance is lit by D65; radiance (which already holds its light source) is
    integrated as it is. Brightness is left to the stretch that follows.
    """
    if not covers_visible(cube):
        covered = (
            "no wavelengths"
            if cube.wavelengths is None
            else f"{cube.wavelengths.min():.1f}..{cube.wavelengths.max():.1f} nm"
        )
        raise WavelengthError(
            f"{cube.source_label}: the CIE sRGB rendering needs bands across 400-700 nm, the cube has {covered}; "
            "use method='nearest' (command line: --method nearest)"
        )
    from hsikit.spectral.color import cube_to_srgb

    low, high = _VISIBLE_RANGE_NM
    visible = cube.select_wavelengths(low - _VISIBLE_MARGIN_NM, high + _VISIBLE_MARGIN_NM)
    illuminant = "D65" if _looks_like_reflectance(cube) else None
    return cube_to_srgb(visible, illuminant=illuminant, clip=False, encode=False)


def composite_rgba(
    cube: Cube,
    bands: Sequence[int] | None = None,
    wavelengths: Sequence[float] | None = None,
    percentiles: Sequence[float] | None = DEFAULT_PERCENTILES,
    method: CompositeMethod = "nearest",
    per_channel: bool = True,
) -> np.ndarray:
    """The composite as float32 ``(H, W, 4)`` in [0, 1]; alpha is 0 on nodata pixels.

    See :func:`composite_rgb` for the arguments.
    """
    cie = uses_cie_rendering(cube, bands, wavelengths, method)
    if cie:
        # stretched per channel on linear light: subtracts haze/dark offsets and balances white,
        # as a camera's auto white balance does (radiance scenes come out blue otherwise)
        raw = _render_cie_linear_srgb(cube)
    else:
        raw = np.asarray(cube.data[list(select_rgb_bands(cube, bands, wavelengths))])
    valid = cube.valid_mask & np.isfinite(raw).all(axis=0)
    channels = stretch(raw, valid, percentiles, per_channel)
    if cie:
        from hsikit.spectral.color import srgb_encode

        channels = srgb_encode(channels)  # the stretch ran on linear light; the display wants sRGB values
    rgba = np.empty(channels.shape[1:] + (4,), dtype=np.float32)
    rgba[..., :3] = np.moveaxis(channels, 0, -1)
    rgba[..., 3] = valid
    rgba[~valid, :3] = 0.0
    return rgba


def composite_rgb(
    cube: Cube,
    bands: Sequence[int] | None = None,
    wavelengths: Sequence[float] | None = None,
    percentiles: Sequence[float] | None = DEFAULT_PERCENTILES,
    method: CompositeMethod = "nearest",
    per_channel: bool = True,
    nodata_colour: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """A colour composite as an ``(H, W, 3)`` uint8 array.

    Args:
        cube: the cube, ``(bands, H, W)``.
        bands: three 0-based band indices for red, green, blue (wins over the rest).
        wavelengths: three wavelengths (nm) for red, green, blue; the nearest band
            centre of each is used. Default: true colour, :data:`TRUE_COLOUR_NM`.
        percentiles: robust stretch limits in percent, ``(2, 98)`` by default;
            None when the bands already hold values in [0, 1].
        method: ``"nearest"`` (three bands), ``"cie"`` (true colour rendered through
            the CIE 1931 colour-matching functions into sRGB; needs 400-700 nm), or
            ``"auto"`` (CIE when the cube covers 400-700 nm, else nearest). Ignored
            when ``bands`` or ``wavelengths`` is given.
        per_channel: stretch each channel on its own (default) or with pooled limits.
        nodata_colour: RGB given to nodata pixels.

    Returns:
        uint8 array ``(H, W, 3)``.
    """
    rgba = composite_rgba(cube, bands, wavelengths, percentiles, method, per_channel)
    rgb = np.round(rgba[..., :3] * 255.0).astype(np.uint8)
    rgb[rgba[..., 3] == 0] = np.asarray(nodata_colour, dtype=np.uint8)
    return rgb


def plot_composite(
    cube: Cube,
    bands: Sequence[int] | None = None,
    wavelengths: Sequence[float] | None = None,
    percentiles: Sequence[float] | None = DEFAULT_PERCENTILES,
    method: CompositeMethod = "nearest",
    per_channel: bool = True,
    title: str | None = None,
    scale: int = 1,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
) -> Figure:
    """A figure of the composite, one PNG pixel per image pixel (times ``scale``).

    The arguments are those of :func:`composite_rgb`, plus ``title`` (drawn in a
    band above the image), ``scale`` (integer magnification), ``path`` (save
    there when given) and ``dpi``. Without a title, the PNG is exactly
    ``(W * scale) x (H * scale)`` pixels. Nodata pixels are transparent.
    """
    rgba = composite_rgba(cube, bands, wavelengths, percentiles, method, per_channel)
    figure = pixel_exact_figure(rgba, scale=scale, dpi=dpi, title=title)
    return finish(figure, path, dpi)


def plot_true_colour(
    cube: Cube,
    method: CompositeMethod = "nearest",
    percentiles: Sequence[float] | None = DEFAULT_PERCENTILES,
    title: str | None = None,
    scale: int = 1,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
) -> Figure:
    """True colour: the bands nearest 640/550/460 nm, or the CIE sRGB rendering (``method="cie"``)."""
    return plot_composite(cube, None, None, percentiles, method, True, title, scale, path, dpi)


def plot_false_colour(
    cube: Cube,
    wavelengths: Sequence[float] | None = COLOUR_INFRARED_NM,
    bands: Sequence[int] | None = None,
    percentiles: Sequence[float] | None = DEFAULT_PERCENTILES,
    title: str | None = None,
    scale: int = 1,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
) -> Figure:
    """False colour from three wavelengths (colour infrared NIR/red/green by default) or band indices."""
    return plot_composite(cube, bands, None if bands is not None else wavelengths, percentiles, "nearest", True,
                          title, scale, path, dpi)
