"""Shared figure style and saving for every hsikit picture.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through
``pyplot``: no global figure registry (no memory growth in long loops), no GUI
backend, and the same result under any ``MPLBACKEND``. PNG output goes through
the Agg renderer and is written atomically (temporary sibling + rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from hsikit.errors import ConfigError, UnsupportedFormatError
from hsikit.io.atomic import atomic_path

#: Resolution of saved figures unless ``dpi=`` says otherwise (dots per inch).
DEFAULT_DPI = 100

#: Width of a figure with axes, colour bar or legend, in inches.
FIGURE_WIDTH_IN = 7.0

#: Smallest and largest height of such a figure, in inches.
MIN_HEIGHT_IN, MAX_HEIGHT_IN = 2.5, 9.0

_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpg", ".jpeg": "jpg"}


def new_figure(width_in: float = FIGURE_WIDTH_IN, height_in: float = 5.0, constrained: bool = True) -> Figure:
    """A white figure of ``width_in`` x ``height_in`` inches, laid out by matplotlib's constrained layout."""
    return Figure(figsize=(width_in, height_in), layout="constrained" if constrained else None)


def figure_height_for_image(height_px: int, width_px: int, axes_width_in: float) -> float:
    """A figure height (inches) that shows an image of ``height_px`` x ``width_px`` at ``axes_width_in`` wide.

    Clamped to ``[MIN_HEIGHT_IN, MAX_HEIGHT_IN]``; 0.8 in are added for the title and ticks.
    """
    aspect = height_px / max(width_px, 1)
    return float(np.clip(axes_width_in * aspect + 0.8, MIN_HEIGHT_IN, MAX_HEIGHT_IN))


def pixel_exact_figure(
    image: np.ndarray,
    scale: int = 1,
    dpi: int = DEFAULT_DPI,
    title: str | None = None,
) -> Figure:
    """A figure that shows ``image`` with one screen pixel per image pixel (times ``scale``).

    Args:
        image: ``(H, W, 3)`` or ``(H, W, 4)`` array, uint8 or float in [0, 1]; an
            alpha of 0 is saved as a transparent PNG pixel.
        scale: integer magnification (each image pixel becomes ``scale`` x ``scale``).
        dpi: resolution the figure is sized for; saving at the same dpi gives a PNG
            of exactly ``(W * scale) x (H * scale)`` pixels (plus a title band when
            ``title`` is given).
        title: optional text drawn in a band above the image.
    """
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ConfigError(f"an image figure needs an (H, W, 3|4) array, got shape {image.shape}")
    if int(scale) < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale}")
    if image.dtype != np.uint8:
        # rounded here: matplotlib would truncate floats, one level below composite_rgb's values
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    height_px, width_px = image.shape[0] * int(scale), image.shape[1] * int(scale)
    title_px = 0 if title is None else max(24, int(round(0.3 * dpi)))
    figure = Figure(figsize=(width_px / dpi, (height_px + title_px) / dpi), dpi=dpi)
    figure.patch.set_alpha(0.0)  # nodata pixels (alpha 0) stay transparent in the PNG
    image_fraction = height_px / (height_px + title_px)
    axes = figure.add_axes((0.0, 0.0, 1.0, image_fraction))
    axes.set_axis_off()
    axes.imshow(image, interpolation="nearest", aspect="auto")
    if title is not None:
        figure.text(0.5, 1.0 - 0.5 * (1.0 - image_fraction), title, ha="center", va="center", fontsize=9)
    figure.hsikit_pixel_exact = True  # type: ignore[attr-defined]  # tells save_figure to keep dpi
    return figure


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int | None = None) -> Path:
    """Write ``figure`` to ``path`` atomically; the format follows the extension (.png, .pdf, .svg, .jpg).

    ``dpi`` defaults to :data:`DEFAULT_DPI`. A pixel-exact image figure
    (:func:`pixel_exact_figure`) is saved at the dpi it was built for, so the PNG
    keeps one pixel per image pixel. Returns the path written.
    """
    target = Path(path)
    file_format = _FORMATS.get(target.suffix.lower())
    if file_format is None:
        raise UnsupportedFormatError(
            f"{target}: cannot tell the picture format from the extension {target.suffix!r}; "
            f"use one of {', '.join(sorted(_FORMATS))}"
        )
    if getattr(figure, "hsikit_pixel_exact", False):
        dpi = int(figure.dpi)
    resolution = DEFAULT_DPI if dpi is None else dpi
    if resolution <= 0:
        raise ConfigError(f"{target}: dpi must be positive, got {dpi}")
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format=file_format, dpi=resolution, facecolor=figure.get_facecolor())
    return target


def finish(figure: Figure, path: str | os.PathLike | None, dpi: int | None) -> Figure:
    """Save ``figure`` when ``path`` is given; return it either way (the tail of every plot function)."""
    if path is not None:
        save_figure(figure, path, dpi)
    return figure
