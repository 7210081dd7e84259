"""Maps: class (or cluster) maps with a legend, and a single band with a colour bar.

Class colours come from one fixed table (:func:`class_colour_table`), indexed by
label value, so class 3 has the same colour in every map and spectra plot of a
project. Label 0 is "unlabelled" by default and drawn black (or transparent, or
as the background image when one is given).
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import matplotlib
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from hsikit.cube import Cube
from hsikit.errors import ConfigError, InvalidCubeError, InvalidLabelsError, ShapeMismatchError, WavelengthError
from hsikit.viz.composite import DEFAULT_PERCENTILES, composite_rgb, nearest_band_index, percentile_limits, stretch
from hsikit.viz.style import DEFAULT_DPI, figure_height_for_image, finish, new_figure

ClassNames = Sequence[str] | Mapping[int, str] | None

#: Colour of unlabelled pixels (label 0) when there is no background image.
UNLABELLED_COLOUR = (0.0, 0.0, 0.0)

# The first 20 class colours: matplotlib's tab20 with its saturated shades first
# and the pale ones after, so the first ten classes are the easiest to tell apart.
_BASE_PALETTE_SIZE = 20

# Beyond the base palette, hues advance by the golden ratio (never repeating,
# always far from the previous one) at alternating lightness.
_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def _base_palette() -> list[tuple[float, float, float]]:
    tab20 = matplotlib.colormaps["tab20"]
    order = list(range(0, _BASE_PALETTE_SIZE, 2)) + list(range(1, _BASE_PALETTE_SIZE, 2))
    return [tuple(float(c) for c in tab20(i)[:3]) for i in order]  # type: ignore[misc]


def class_colour_table(size: int, zero_is_class: bool = False) -> np.ndarray:
    """Colours of label values ``0 .. size-1`` as a float ``(size, 3)`` RGB array in [0, 1].

    Row ``v`` is the colour of label value ``v``. Row 0 is black (unlabelled)
    unless ``zero_is_class`` (cluster maps, where 0 is a cluster): then every
    row is a class colour and the palette starts at 0. The table is fixed: the
    same value always gets the same colour.
    """
    if size < 0:
        raise ConfigError(f"a colour table needs a non-negative size, got {size}")
    palette = _base_palette()
    colours = np.zeros((size, 3), dtype=np.float64)
    first = 0 if zero_is_class else 1
    for value in range(first, size):
        position = value - first
        if position < len(palette):
            colours[value] = palette[position]
        else:
            extra = position - len(palette)
            hue = (0.11 + extra * _GOLDEN_RATIO_CONJUGATE) % 1.0
            lightness = 0.45 if extra % 2 == 0 else 0.65
            colours[value] = colorsys.hls_to_rgb(hue, lightness, 0.75)
    return colours


def class_name_table(class_names: ClassNames, class_ids: Sequence[int] = (), first_label: int = 1) -> dict[int, str]:
    """Label value -> name for every named class and every id in ``class_ids``.

    ``class_names`` is a mapping ``{value: name}`` taken as is, or a sequence whose
    ``i``-th name belongs to label value ``i + first_label`` (default 1: label 0 is
    unlabelled and unnamed, as in Indian Pines). Ids without a name get ``"class <id>"``.
    """
    table: dict[int, str] = {}
    if isinstance(class_names, Mapping):
        table.update({int(key): str(value) for key, value in class_names.items()})
    elif class_names is not None:
        if isinstance(class_names, str):
            raise ConfigError(f"class_names must be a list of names or a mapping, got the string {class_names!r}")
        table.update({first_label + i: str(name) for i, name in enumerate(class_names)})
    for class_id in class_ids:
        table.setdefault(int(class_id), f"class {int(class_id)}")
    return dict(sorted(table.items()))


def _colour_table(
    top_label: int, unlabelled_value: int | None, colours: Mapping[int, Sequence[float] | str] | None
) -> np.ndarray:
    """The colour table for label values ``0..top_label`` with the caller's overrides applied."""
    table = class_colour_table(max(top_label, 0) + 1, zero_is_class=unlabelled_value != 0)
    for value, colour in (colours or {}).items():
        if 0 <= int(value) < len(table):
            table[int(value)] = to_rgb(colour)  # type: ignore[arg-type]
    return table


def _check_labels(labels: np.ndarray, shape: tuple[int, int] | None = None, source: str = "labels") -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise InvalidLabelsError(f"{source}: a class map must be an (H, W) array, got shape {array.shape}")
    if array.dtype.kind not in "iub":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise InvalidLabelsError(
                f"{source}: a class map must hold integer labels, got dtype {array.dtype}; "
                "round or argmax the prediction first"
            )
    if shape is not None and array.shape != tuple(shape):
        raise ShapeMismatchError(
            f"{source}: labels of shape {array.shape} do not match the image's {tuple(shape)} pixels; "
            "the labels must be (H, W) of the same scene"
        )
    return array.astype(np.int64, copy=False)


def _background_rgb(background: Cube | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The background as float ``(H, W, 3)`` in [0, 1]: a cube's true colour (or band mean), or an image."""
    if isinstance(background, Cube):
        if background.shape[1:] != shape:
            raise ShapeMismatchError(
                f"{background.source_label}: background of {background.height}x{background.width} pixels under "
                f"a class map of {shape[0]}x{shape[1]}; use the cube the labels belong to"
            )
        try:
            return composite_rgb(background).astype(np.float32) / 255.0
        except (InvalidCubeError, WavelengthError):
            # no wavelengths (or no visible bands): a grey image of the mean over bands
            grey = stretch(np.asarray(background.data, dtype=np.float32).mean(axis=0), background.valid_mask)
            return np.repeat(grey[..., np.newaxis], 3, axis=2)
    image = np.asarray(background)
    if image.shape[:2] != shape:
        raise ShapeMismatchError(
            f"background image of shape {image.shape} under a class map of {shape[0]}x{shape[1]}; "
            "give an (H, W) or (H, W, 3) image of the same scene"
        )
    if image.ndim == 2:
        grey = stretch(image)
        return np.repeat(grey[..., np.newaxis], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[..., :3]
        if rgb.dtype == np.uint8:
            return rgb.astype(np.float32) / 255.0
        return np.moveaxis(stretch(np.moveaxis(rgb, -1, 0)), 0, -1)
    raise ShapeMismatchError(f"background image must be (H, W) or (H, W, 3), got shape {image.shape}")


def class_map_rgba(
    labels: np.ndarray,
    background: Cube | np.ndarray | None = None,
    alpha: float = 0.6,
    unlabelled: Literal["black", "transparent"] = "black",
    unlabelled_value: int | None = 0,
    colours: Mapping[int, Sequence[float] | str] | None = None,
) -> np.ndarray:
    """The class map as float32 ``(H, W, 4)`` RGBA in [0, 1].

    Args:
        labels: ``(H, W)`` integer class map.
        background: optional cube (shown in true colour, or grey without
            wavelengths) or ``(H, W)`` / ``(H, W, 3)`` image under the classes.
        alpha: opacity of the class colours over the background (1 without one).
        unlabelled: colour of unlabelled pixels without a background.
        unlabelled_value: label value that means "no class" (negative values too);
            None when every value is a class (cluster maps).
        colours: optional overrides ``{label value: colour}`` (any matplotlib colour).
    """
    label_map = _check_labels(labels)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be within 0..1, got {alpha}")
    if unlabelled not in ("black", "transparent"):
        raise ConfigError(f"unlabelled must be 'black' or 'transparent', got {unlabelled!r}")
    is_unlabelled = label_map < 0
    if unlabelled_value is not None:
        is_unlabelled |= label_map == unlabelled_value
    table = _colour_table(int(label_map.max()), unlabelled_value, colours)
    class_rgb = table[np.clip(label_map, 0, None)]
    rgba = np.zeros(label_map.shape + (4,), dtype=np.float32)
    if background is None:
        rgba[..., :3] = class_rgb
        rgba[..., 3] = 1.0
        rgba[is_unlabelled, :3] = UNLABELLED_COLOUR
        if unlabelled == "transparent":
            rgba[is_unlabelled, 3] = 0.0
        return rgba
    base = _background_rgb(background, label_map.shape)
    blended = (1.0 - alpha) * base + alpha * class_rgb
    rgba[..., :3] = np.where(is_unlabelled[..., np.newaxis], base, blended)
    rgba[..., 3] = 1.0
    return rgba


def _legend_width_in(names: Iterable[str]) -> float:
    """Room for a one-column legend of ``names`` in small type (inches, from the longest name)."""
    longest = max((len(name) for name in names), default=0)
    return 0.6 + 0.075 * min(longest, 40)


def plot_class_map(
    labels: np.ndarray,
    class_names: ClassNames = None,
    background: Cube | np.ndarray | None = None,
    alpha: float = 0.6,
    unlabelled: Literal["black", "transparent"] = "black",
    unlabelled_value: int | None = 0,
    first_label: int = 1,
    legend: bool = True,
    title: str | None = None,
    colours: Mapping[int, Sequence[float] | str] | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
) -> Figure:
    """A class map with a legend of class names.

    Args:
        labels: ``(H, W)`` integer class map (ground truth, prediction or clusters).
        class_names: ``{value: name}``, or a list whose ``i``-th name is label
            value ``i + first_label``. The legend lists every named class and every
            class present in the map (unnamed ones as ``"class <id>"``).
        background, alpha, unlabelled, unlabelled_value, colours: see :func:`class_map_rgba`.
        first_label: label value of the first name in a ``class_names`` list.
        legend: draw the legend (to the right of the map).
        title: axes title.
        path, dpi: save the figure there at this resolution when ``path`` is given.
    """
    label_map = _check_labels(labels)
    rgba = class_map_rgba(label_map, background, alpha, unlabelled, unlabelled_value, colours)
    present = np.unique(label_map)
    present = present[present >= 0]
    if unlabelled_value is not None:
        present = present[present != unlabelled_value]
    names = class_name_table(class_names, present.tolist(), first_label)
    names = {k: v for k, v in names.items() if k >= 0 and k != unlabelled_value}
    height, width = label_map.shape
    image_width_in = 4.8
    legend_width_in = _legend_width_in(names.values()) if legend and names else 0.3
    figure = new_figure(image_width_in + legend_width_in, figure_height_for_image(height, width, image_width_in))
    axes = figure.add_subplot()
    axes.imshow(rgba, interpolation="nearest")
    axes.set_xlabel("column (pixel)")
    axes.set_ylabel("row (pixel)")
    if title:
        axes.set_title(title)
    if legend and names:
        table = _colour_table(max(max(names), int(label_map.max())), unlabelled_value, colours)
        handles = [
            Patch(facecolor=table[value], edgecolor="0.3", linewidth=0.5, label=name) for value, name in names.items()
        ]
        figure.legend(
            handles=handles,
            loc="outside right upper",
            fontsize="small",
            frameon=False,
            ncols=1 if len(handles) <= 24 else 2,
        )
    return finish(figure, path, dpi)


# ---------------------------------------------------------------------------- single band
def _band_title(cube: Cube, band: int) -> str:
    text = f"band {band}"
    if cube.band_names is not None and cube.band_names[band] not in (str(band), ""):
        text += f" ({cube.band_names[band]})"
    if cube.wavelengths is not None:
        text += f" — {cube.wavelengths[band]:.1f} nm"
    return text


def resolve_band(cube: Cube, band: int | None = None, wavelength: float | None = None) -> int:
    """A band index from a 0-based ``band`` or a ``wavelength`` in nm (nearest centre); exactly one is given."""
    if (band is None) == (wavelength is None):
        raise ConfigError("choose the band by index (band=) or by wavelength (wavelength=), exactly one of them")
    if band is not None:
        if not 0 <= int(band) < cube.bands:
            raise InvalidCubeError(
                f"{cube.source_label}: band {band} does not exist; the cube has {cube.bands} bands, "
                f"numbered 0..{cube.bands - 1}"
            )
        return int(band)
    return nearest_band_index(cube, float(wavelength))  # type: ignore[arg-type]


def plot_band(
    cube: Cube,
    band: int | None = None,
    wavelength: float | None = None,
    cmap: str = "viridis",
    percentiles: Sequence[float] | None = DEFAULT_PERCENTILES,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
) -> Figure:
    """One band as an image with a colour bar in data units.

    Args:
        cube: the cube, ``(bands, H, W)``.
        band: 0-based band index, or
        wavelength: a wavelength in nm (the band with the nearest centre is shown).
        cmap: matplotlib colour map name.
        percentiles: the colour range spans these percentiles of the valid pixels
            (robust to outliers); None: the full min..max.
        title: axes title; default names the band and its wavelength.
        path, dpi: save the figure there at this resolution when ``path`` is given.
    """
    index = resolve_band(cube, band, wavelength)
    values = np.asarray(cube.data[index], dtype=np.float64)
    valid = cube.valid_mask & np.isfinite(values)
    low_high = percentile_limits(values[np.newaxis], valid, percentiles if percentiles is not None else (0.0, 100.0))[0]
    shown = np.ma.masked_array(values, mask=~valid)
    if cmap not in matplotlib.colormaps:
        raise ConfigError(f"unknown colour map {cmap!r}; use a matplotlib colour map name such as 'viridis' or 'gray'")
    colour_map = matplotlib.colormaps[cmap].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))  # nodata: transparent
    image_width_in = 5.0
    figure = new_figure(image_width_in + 1.4, figure_height_for_image(cube.height, cube.width, image_width_in))
    axes = figure.add_subplot()
    vmin, vmax = float(low_high[0]), float(low_high[1])
    if vmax <= vmin:
        vmax = vmin + 1.0  # a constant band still gets a readable colour bar
    mappable = axes.imshow(shown, cmap=colour_map, vmin=vmin, vmax=vmax, interpolation="nearest")
    units = cube.metadata.get("units")
    figure.colorbar(mappable, ax=axes, label=str(units) if units else "value", shrink=0.9)
    axes.set_title(title if title is not None else _band_title(cube, index))
    axes.set_xlabel("column (pixel)")
    axes.set_ylabel("row (pixel)")
    return finish(figure, path, dpi)
