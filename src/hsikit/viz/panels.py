"""Qualitative panels: prediction and target rendered the same way, side by side, and their spectra.

Colour from wavelengths
-----------------------
:func:`fit_colour` decides once, on a *reference* cube (the target), how cubes become
display RGB, and :func:`apply_colour` applies that same transform to the target and to
every prediction, so a difference in the panels is a difference in the data, never in
the display stretch:

* true colour (``mode="true"``): the bands across 400-700 nm are integrated against the
  CIE 1931 colour-matching functions (the CIE table of the shared data folder when present,
  see :func:`colour_matching_functions`; :func:`hsikit.spectral.color.cube_to_srgb`) into
  linear sRGB, lit by D65 for reflectance-like data (radiance is integrated as it is),
  white-balanced so a flat spectrum has R = G = B. One brightness factor for all three
  channels maps the reference's 99th percentile of luminance to white (``white_percentile``;
  None keeps absolute reflectance: a perfect reflector is white), then the sRGB transfer
  curve. A flat spectrum therefore renders neutral grey and a narrow band at 650 nm red.
  For hazy at-sensor radiance, ``dark_percentile`` (e.g. 1) first subtracts from each
  linear channel that percentile of the reference (dark-object subtraction): the haze cast
  goes, at the price of colourimetric accuracy, so it is off by default.
* false colour (``mode="false"``): three bands nearest the given wavelengths (colour
  infrared 860/650/550 nm by default; three bands spread over the range when the cube does
  not reach them) or band indices, each stretched between the 2nd and 98th percentile of
  the reference.
* ``mode="auto"``: true colour when the reference covers 400-700 nm, else false colour,
  else three bands spread over the band range (cubes without wavelengths).

Images are ``(H, W, 3)`` float32 in [0, 1]; nodata pixels are black.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from matplotlib.figure import Figure

from hsikit.cube import Cube
from hsikit.errors import ConfigError, HsikitError, InvalidCubeError, ShapeMismatchError, WavelengthError
from hsikit.viz.composite import (
    COLOUR_INFRARED_NM,
    DEFAULT_PERCENTILES,
    _looks_like_reflectance,
    covers_visible,
    percentile_limits,
    select_rgb_bands,
)
from hsikit.viz.errors import as_array, pixel_error_maps
from hsikit.viz.spectra import _with_gaps
from hsikit.viz.style import FigureStyle, figure_style, get_style, save_figure_formats, styled_figure

if TYPE_CHECKING:
    from hsikit.spectral.color import ColorMatchingFunctions

ColourMode = Literal["true", "false", "auto"]

#: Luminance percentile of the reference that becomes white in true colour.
WHITE_PERCENTILE = 99.0

# Bands within this margin outside 400-700 nm take part in the CIE integration.
_VISIBLE_NM = (390.0, 710.0)

# Rec. 709 / sRGB luminance weights of linear R, G, B.
_LUMINANCE = np.array([0.2126, 0.7152, 0.0722])

#: Colours of predicted spectra in curve plots (the target is drawn in black).
PREDICTION_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class ColourTransform:
    """How a cube becomes display RGB, fitted on a reference cube (see the module docstring).

    Attributes:
        mode: ``"true"`` (CIE) or ``"false"`` (three bands).
        bands: band count the transform expects.
        band_indices: true colour: the bands integrated (those within 390-710 nm);
            false colour: the red, green, blue band indices.
        wavelengths: centres (nm) of ``band_indices`` (None for bands chosen without wavelengths).
        illuminant: ``"D65"`` (reflectance) or None (radiance), true colour only.
        scale: factor on linear light (true colour) so the reference's white is 1.
        offset: linear light subtracted from each channel before scaling (true colour), ``(3,)``.
        low, high: per-channel stretch limits (false colour), shape ``(3,)``.
        description: human text for titles and captions.
    """

    mode: str
    bands: int
    band_indices: tuple[int, ...]
    wavelengths: tuple[float, ...] | None
    illuminant: str | None
    scale: float
    offset: tuple[float, float, float]
    low: tuple[float, float, float]
    high: tuple[float, float, float]
    description: str


@functools.lru_cache(maxsize=1)
def colour_matching_functions() -> ColorMatchingFunctions:
    """The CIE 1931 2-degree observer: the CIE 1 nm table of the shared data folder when it is there,
    else hsikit's built-in analytic fit of that table (within 0.025 of it)."""
    from hsikit.spectral.color import builtin_cmf, load_cmf

    try:
        return load_cmf()
    except HsikitError:
        return builtin_cmf()


def _linear_srgb(array: np.ndarray, band_indices: Sequence[int], wavelengths: Sequence[float],
                 illuminant: str | None) -> np.ndarray:
    from hsikit.spectral.color import cube_to_srgb

    visible = np.asarray(array[list(band_indices)], dtype=np.float32)
    return cube_to_srgb(visible, wavelengths=np.asarray(wavelengths), illuminant=illuminant,
                        cmf=colour_matching_functions(), clip=False, encode=False)


def fit_colour(
    reference: Cube,
    mode: ColourMode = "auto",
    *,
    wavelengths: Sequence[float] | None = None,
    bands: Sequence[int] | None = None,
    white_percentile: float | None = WHITE_PERCENTILE,
    dark_percentile: float | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> ColourTransform:
    """Fit the display transform on ``reference`` (the target; see the module docstring).

    Args:
        reference: the cube whose brightness and stretch define the display, ``(bands, H, W)``.
        mode: ``"true"``, ``"false"`` or ``"auto"``.
        wavelengths: false colour: three wavelengths (nm) for R, G, B (default colour infrared).
        bands: false colour: three band indices (win over ``wavelengths``).
        white_percentile: true colour: luminance percentile of the reference shown as white;
            None: absolute (reflectance 1 is white).
        dark_percentile: true colour: subtract this percentile of each linear channel of the
            reference first (haze removal); None (default) keeps the colours exact.
        percentiles: false colour: stretch percentiles of the reference.
    """
    if mode not in ("true", "false", "auto"):
        raise ConfigError(f"unknown colour mode {mode!r}; use 'true', 'false' or 'auto'")
    if mode == "true" or (mode == "auto" and bands is None and wavelengths is None and covers_visible(reference)):
        return _fit_true_colour(reference, white_percentile, dark_percentile)
    explicit = wavelengths is not None or bands is not None
    return _fit_false_colour(reference, wavelengths, bands, percentiles, strict=explicit)


def _fit_true_colour(reference: Cube, white_percentile: float | None, dark_percentile: float | None) -> ColourTransform:
    if not covers_visible(reference):
        covered = (
            "no wavelengths"
            if reference.wavelengths is None
            else f"{reference.wavelengths.min():.1f}..{reference.wavelengths.max():.1f} nm"
        )
        raise WavelengthError(
            f"{reference.source_label}: true colour needs bands across 400-700 nm, the cube has {covered}; use "
            "false colour (colour='false', command line: --colour false) or give the wavelengths (--wavelengths)"
        )
    assert reference.wavelengths is not None
    inside = (reference.wavelengths >= _VISIBLE_NM[0]) & (reference.wavelengths <= _VISIBLE_NM[1])
    indices = tuple(int(i) for i in np.flatnonzero(inside))
    centres = tuple(float(reference.wavelengths[i]) for i in indices)
    illuminant = "D65" if _looks_like_reflectance(reference) else None
    scale = 1.0
    offset = np.zeros(3)
    for name, value in (("white_percentile", white_percentile), ("dark_percentile", dark_percentile)):
        if value is not None and not 0.0 <= value <= 100.0:
            raise ConfigError(f"{name} must lie within 0..100, got {value}")
    if white_percentile is not None or dark_percentile is not None:
        linear = _linear_srgb(reference.data, indices, centres, illuminant)
        valid = reference.valid_mask & np.isfinite(linear).all(axis=0)
        if valid.any() and dark_percentile is not None:
            offset = np.maximum(np.percentile(linear[:, valid], dark_percentile, axis=1), 0.0)
        luminance = np.tensordot(_LUMINANCE, linear - offset[:, None, None], axes=(0, 0))
        if valid.any() and white_percentile is not None:
            white = float(np.percentile(luminance[valid], white_percentile))
            if np.isfinite(white) and white > 0:
                scale = 1.0 / white
    lit = "D65-lit reflectance" if illuminant else "radiance"
    return ColourTransform(
        "true", reference.bands, indices, centres, illuminant, scale, tuple(float(v) for v in offset),
        (0.0,) * 3, (1.0,) * 3, f"true colour (CIE 1931, {lit}{', haze removed' if offset.any() else ''})",
    )


def _fit_false_colour(
    reference: Cube,
    wavelengths: Sequence[float] | None,
    bands: Sequence[int] | None,
    percentiles: Sequence[float],
    strict: bool,
) -> ColourTransform:
    try:
        chosen = select_rgb_bands(reference, bands, COLOUR_INFRARED_NM if wavelengths is None and bands is None
                                  else wavelengths)
        described = "false colour"
    except HsikitError:
        if strict:
            raise
        last = reference.bands - 1
        chosen = (last * 3 // 4, last // 2, last // 4)  # red = the longest wavelengths
        described = "three spread bands"
    data = np.asarray(reference.data[list(chosen)])
    limits = percentile_limits(data, reference.valid_mask, percentiles)
    centres = None if reference.wavelengths is None else tuple(float(reference.wavelengths[i]) for i in chosen)
    if centres is not None:
        described += " (" + "/".join(f"{c:.0f}" for c in centres) + " nm)"
    else:
        described += f" (bands {chosen[0]}/{chosen[1]}/{chosen[2]})"
    low = (float(limits[0, 0]), float(limits[1, 0]), float(limits[2, 0]))
    high = (float(limits[0, 1]), float(limits[1, 1]), float(limits[2, 1]))
    return ColourTransform(
        "false", reference.bands, tuple(int(b) for b in chosen), centres, None, 1.0, (0.0, 0.0, 0.0), low, high,
        described,
    )


def apply_colour(transform: ColourTransform, cube: Cube | np.ndarray) -> np.ndarray:
    """Render ``cube`` with a fitted transform: ``(H, W, 3)`` float32 in [0, 1], nodata black."""
    array = as_array(cube)
    if array.shape[0] != transform.bands:
        source = cube.source_label if isinstance(cube, Cube) else "<array>"
        raise ShapeMismatchError(
            f"{source}: {array.shape[0]} bands, but the colour rendering was fitted on a cube of {transform.bands} "
            "bands; render prediction and target of the same band set"
        )
    valid = cube.valid_mask if isinstance(cube, Cube) else np.ones(array.shape[1:], dtype=bool)
    if transform.mode == "true":
        from hsikit.spectral.color import srgb_encode

        assert transform.wavelengths is not None
        linear = _linear_srgb(array, transform.band_indices, transform.wavelengths, transform.illuminant)
        linear -= np.asarray(transform.offset, dtype=np.float32)[:, None, None]
        linear *= np.float32(transform.scale)
        channels = srgb_encode(np.clip(linear, 0.0, 1.0))
    else:
        data = np.asarray(array[list(transform.band_indices)], dtype=np.float64)
        low = np.asarray(transform.low)[:, None, None]
        span = (np.asarray(transform.high) - np.asarray(transform.low))[:, None, None]
        span = np.where(span > 0, span, 1.0)
        channels = np.clip((data - low) / span, 0.0, 1.0)
    image = np.moveaxis(np.asarray(channels, dtype=np.float32), 0, -1).copy()
    image[~(valid & np.isfinite(image).all(axis=2))] = 0.0
    return image


def render_rgb(cube: Cube, mode: ColourMode = "auto", reference: Cube | None = None, **options: object) -> np.ndarray:
    """``cube`` as ``(H, W, 3)`` float32 RGB, with the transform fitted on ``reference`` (default: itself)."""
    transform = fit_colour(reference if reference is not None else cube, mode, **options)  # type: ignore[arg-type]
    return apply_colour(transform, cube)


def as_cube(source: Cube | np.ndarray) -> Cube:
    """``source`` as a Cube (an array becomes one without wavelengths)."""
    return source if isinstance(source, Cube) else Cube(as_array(source), nonfinite="ignore")


def with_wavelengths_of(cube: Cube | np.ndarray, reference: Cube) -> Cube:
    """``cube`` as a Cube; wavelengths (and FWHM) copied from ``reference`` when it has none and the bands agree."""
    cube = as_cube(cube)
    if cube.wavelengths is None and reference.wavelengths is not None and cube.bands == reference.bands:
        return cube.replace(wavelengths=reference.wavelengths, fwhm=reference.fwhm)
    return cube


# ---------------------------------------------------------------------------- panels
def _image_axes(figure: Figure, rows: int, columns: int, index: int, image: np.ndarray, title: str) -> None:
    axes = figure.add_subplot(rows, columns, index)
    axes.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title)


def _input_image(rgb_input: np.ndarray | Cube) -> np.ndarray:
    if isinstance(rgb_input, Cube):
        return render_rgb(rgb_input, "false", bands=(0, 1, 2) if rgb_input.bands >= 3 else None)
    image = np.asarray(rgb_input)
    if image.ndim == 3 and image.shape[0] in (3, 4) and image.shape[2] not in (3, 4):
        image = np.moveaxis(image, 0, -1)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ShapeMismatchError(f"the RGB input must be an (H, W, 3) image, got shape {image.shape}")
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    values = image.astype(np.float32)
    finite = values[np.isfinite(values)]
    # a float image (a simulated camera signal, often far below 1) is scaled by one factor for all
    # channels, its 99.5th percentile, so its colour balance is kept
    top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    return np.clip(values / (top if top > 0 else 1.0), 0.0, 1.0)


def plot_prediction_panels(
    prediction: Cube | np.ndarray,
    target: Cube | None = None,
    *,
    rgb_input: np.ndarray | Cube | None = None,
    colour: Literal["true", "false", "both", "auto"] = "auto",
    false_wavelengths: Sequence[float] | None = None,
    dark_percentile: float | None = None,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Prediction and target side by side, rendered with one transform fitted on the target.

    Args:
        prediction: predicted cube ``(bands, H, W)`` (wavelengths taken from the target when absent).
        target: the target cube of the same scene, or None to show the prediction alone.
        rgb_input: the network's input image ``(H, W, 3)`` shown first, or None: uint8 as it is,
            floats divided by their 99.5th percentile (one factor for all channels).
        colour: ``"true"``, ``"false"``, ``"both"`` (a row of each) or ``"auto"`` (true colour
            when the bands cover 400-700 nm, else false colour).
        false_wavelengths: R, G, B wavelengths (nm) of the false colour (default colour infrared).
        dark_percentile: haze removal of the true colour (see :func:`fit_colour`).
        title: figure title (e.g. the scene name).
        style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.

    Returns:
        The figure: one row per colour mode, columns input (when given), target, prediction.
    """
    reference = target if target is not None else as_cube(prediction)
    predicted = with_wavelengths_of(prediction, reference)
    if target is not None and predicted.shape != target.shape:
        raise ShapeMismatchError(
            f"prediction {predicted.source_label} of shape {predicted.shape} and target {target.source_label} "
            f"of shape {target.shape} differ; panels compare cubes of the same scene and bands"
        )
    if colour not in ("true", "false", "both", "auto"):
        raise ConfigError(f"unknown colour {colour!r}; use 'true', 'false', 'both' or 'auto'")
    modes: list[ColourMode] = ["true", "false"] if colour == "both" else [colour]  # type: ignore[list-item]
    transforms = [
        fit_colour(reference, mode, wavelengths=false_wavelengths if mode != "true" else None,
                   dark_percentile=dark_percentile)
        for mode in modes
    ]
    columns = (1 if rgb_input is not None else 0) + (1 if target is not None else 0) + 1
    chosen = get_style(style)
    height, width = reference.height, reference.width
    panel = chosen.panel_in
    with figure_style(chosen):
        figure = styled_figure(chosen, panel * columns, (panel * height / max(width, 1) + 0.45) * len(modes) + 0.3)
        index = 1
        for row, transform in enumerate(transforms):
            if rgb_input is not None:
                if row == 0:
                    _image_axes(figure, len(modes), columns, index, _input_image(rgb_input), "input RGB")
                index += 1
            if target is not None:
                _image_axes(figure, len(modes), columns, index, apply_colour(transform, target),
                            f"target — {transform.description}")
                index += 1
            _image_axes(figure, len(modes), columns, index, apply_colour(transform, predicted),
                        "prediction" + ("" if target is not None else f" — {transform.description}"))
            index += 1
        if title:
            figure.suptitle(title)
        if path is not None:
            caption = (
                "The prediction beside its target, both rendered with one colour transform fitted on the target "
                f"({'; '.join(t.description for t in transforms)}), so differences are in the data, not the display."
            )
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": caption})
    return figure


# ---------------------------------------------------------------------------- spectra
def pick_pixels(
    prediction: Cube | np.ndarray,
    target: Cube | np.ndarray | None = None,
    count: int = 3,
    metric: str = "sam",
    error_map: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """``count`` (row, col) pixels that show the range of errors.

    With a target: the pixels at evenly spaced quantiles (10 % ... 90 %) of the per-pixel
    ``metric`` error (low, typical and high error). Without: the same quantiles of the mean
    value over bands (dark to bright). Nodata and non-finite pixels are never picked.
    ``error_map`` (``(H, W)``) gives the ``metric`` map when it is already computed.
    """
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}")
    if error_map is not None:
        score = np.asarray(error_map, dtype=np.float64)
    elif target is not None:
        score = pixel_error_maps(prediction, target, (metric,))[metric]
    else:
        array = as_array(prediction)
        score = np.asarray(array, dtype=np.float64).mean(axis=0)
        if isinstance(prediction, Cube):
            score[~prediction.valid_mask] = np.nan
    flat = score.reshape(-1)
    candidates = np.flatnonzero(np.isfinite(flat))
    if candidates.size == 0:
        raise InvalidCubeError("no valid pixel to draw spectra of (every pixel is nodata or non-finite)")
    order = candidates[np.argsort(flat[candidates], kind="stable")]
    quantiles = [0.5] if count == 1 else np.linspace(0.1, 0.9, count)
    picks = [int(order[int(round(q * (order.size - 1)))]) for q in quantiles]
    width = score.shape[1]
    return [(p // width, p % width) for p in picks]


def plot_spectral_curves(
    prediction: Cube | np.ndarray,
    target: Cube | None = None,
    pixels: Sequence[tuple[int, int]] | None = None,
    *,
    count: int = 3,
    dark_percentile: float | None = None,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Predicted (and true) spectra at chosen or automatically picked pixels, on a wavelength axis.

    The first panel locates the pixels (numbered markers on the target's colour image);
    then one panel per pixel with the target spectrum (black) and the prediction (red,
    dashed), titled with the pixel's SAM (degrees) and MRAE.

    Args:
        prediction, target: cubes ``(bands, H, W)`` of the same scene (target optional).
        pixels: ``(row, col)`` pairs; default :func:`pick_pixels` (``count`` of them).
        count: pixels picked when ``pixels`` is None.
        dark_percentile: haze removal of the locator image (see :func:`fit_colour`).
        title, style, path, dpi: see :func:`plot_prediction_panels`.
    """
    reference = target if target is not None else as_cube(prediction)
    predicted = with_wavelengths_of(prediction, reference)
    maps = pixel_error_maps(predicted, target, ("sam", "mrae")) if target is not None else None
    if pixels is not None:
        points = [(int(r), int(c)) for r, c in pixels]
    else:
        points = pick_pixels(predicted, target, count, error_map=None if maps is None else maps["sam"])
    if not points:
        raise ConfigError("plot_spectral_curves needs at least one (row, col) pixel")
    for row, col in points:
        if not (0 <= row < reference.height and 0 <= col < reference.width):
            raise InvalidCubeError(
                f"{reference.source_label}: pixel (row {row}, col {col}) is outside the "
                f"{reference.height}x{reference.width} image; pixels are 0-based (row, col)"
            )
    if reference.wavelengths is not None:
        x, x_label = np.asarray(reference.wavelengths, dtype=np.float64), "wavelength (nm)"
    else:
        x, x_label = np.arange(reference.bands, dtype=np.float64), "band index"
    chosen = get_style(style)
    columns = min(4, len(points) + 1)
    rows = int(np.ceil((len(points) + 1) / columns))
    with figure_style(chosen):
        figure = styled_figure(chosen, chosen.panel_in * 1.25 * columns, chosen.panel_in * 1.05 * rows + 0.3)
        locator = figure.add_subplot(rows, columns, 1)
        locator.imshow(apply_colour(fit_colour(reference, dark_percentile=dark_percentile), reference),
                       interpolation="nearest")
        locator.set_xticks([])
        locator.set_yticks([])
        locator.set_title("pixels shown")
        for number, (row, col) in enumerate(points, start=1):
            locator.plot(col, row, marker="o", markersize=7, markerfacecolor="none", markeredgecolor="yellow",
                         markeredgewidth=1.5)
            locator.annotate(str(number), (col, row), xytext=(4, 4), textcoords="offset points", color="yellow",
                             fontweight="bold")
            axes = figure.add_subplot(rows, columns, number + 1)
            if target is not None:
                x_plot, y_true = _with_gaps(x, np.asarray(target.data[:, row, col], dtype=np.float64))
                axes.plot(x_plot, y_true, color="black", label="target")
            x_plot, y_predicted = _with_gaps(x, np.asarray(predicted.data[:, row, col], dtype=np.float64))
            axes.plot(x_plot, y_predicted, color=PREDICTION_COLOURS[0], linestyle="--", label="prediction")
            heading = f"{number}: row {row}, col {col}"
            if maps is not None:
                heading += f"\nSAM {maps['sam'][row, col]:.2f}°, MRAE {maps['mrae'][row, col]:.3f}"
            axes.set_title(heading)
            axes.set_xlabel(x_label)
            if number == 1:
                axes.set_ylabel(str(reference.metadata.get("units") or "value"))
                axes.legend(frameon=False)
        if title:
            figure.suptitle(title)
        if path is not None:
            caption = (
                "Spectra of single pixels: the target (black) and the prediction (dashed). The pixels are marked on "
                "the first panel; picked automatically they span low, typical and high spectral-angle error."
            )
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": caption})
    return figure
