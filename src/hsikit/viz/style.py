"""Shared figure style and saving for every hsikit picture.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through
``pyplot``: no global figure registry (no memory growth in long loops), no GUI
backend, and the same result under any ``MPLBACKEND``. PNG output goes through
the Agg renderer and is written atomically (temporary sibling + rename).

Two named styles set fonts, line widths and default resolution for a purpose
(:data:`STYLES`, :func:`figure_style`): ``"paper"`` (8 pt type, thin lines, 300 dpi,
TrueType fonts embedded in PDFs so journals and vector editors accept them) and
``"screen"`` (larger type, light grid, 110 dpi). :func:`save_figure_formats` writes one
figure as PNG *and* PDF; every saved file records in its metadata how many data panels
the figure has (colour bars not counted), so a reader or a test can check a figure's
layout without looking at the pixels.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
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


def save_figure(
    figure: Figure,
    path: str | os.PathLike,
    dpi: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``figure`` to ``path`` atomically; the format follows the extension (.png, .pdf, .svg, .jpg).

    ``dpi`` defaults to the figure's style (:func:`styled_figure`) or :data:`DEFAULT_DPI`.
    A pixel-exact image figure (:func:`pixel_exact_figure`) is saved at the dpi it was
    built for, so the PNG keeps one pixel per image pixel. PNG and PDF files record the
    number of data panels (:func:`count_panels`) and the style in their metadata (PNG text
    chunks ``hsikit:panels`` / ``hsikit:style``; the PDF ``Keywords`` entry
    ``hsikit panels=N style=S``); ``metadata`` adds a ``Title`` or ``Description``.
    Returns the path written.
    """
    target = Path(path)
    file_format = _FORMATS.get(target.suffix.lower())
    if file_format is None:
        raise UnsupportedFormatError(
            f"{target}: cannot tell the picture format from the extension {target.suffix!r}; "
            f"use one of {', '.join(sorted(_FORMATS))}"
        )
    style = getattr(figure, "hsikit_style", None)
    if getattr(figure, "hsikit_pixel_exact", False):
        dpi = int(figure.dpi)
    default_dpi = STYLES[style].dpi if style in STYLES else DEFAULT_DPI
    resolution = default_dpi if dpi is None else dpi
    if resolution <= 0:
        raise ConfigError(f"{target}: dpi must be positive, got {dpi}")
    file_metadata = _file_metadata(figure, file_format, style, metadata)
    settings = STYLES[style].rc if style in STYLES else {}
    with matplotlib.rc_context(settings), atomic_path(target) as temporary:
        figure.savefig(
            temporary, format=file_format, dpi=resolution, facecolor=figure.get_facecolor(), metadata=file_metadata
        )
    return target


def _file_metadata(
    figure: Figure, file_format: str, style: str | None, extra: Mapping[str, str] | None
) -> dict[str, Any] | None:
    """The metadata matplotlib writes into a PNG (free text keys) or a PDF (its Info keys)."""
    panels = count_panels(figure)
    extra = dict(extra or {})
    if file_format == "png":
        entries = {"Software": "hsikit", "hsikit:panels": str(panels), "hsikit:style": style or "default"}
        entries.update({key: str(value) for key, value in extra.items()})
        return entries
    if file_format == "pdf":
        entries = {"Creator": "hsikit", "Keywords": f"hsikit panels={panels} style={style or 'default'}"}
        if "Title" in extra:
            entries["Title"] = str(extra["Title"])
        if "Description" in extra:
            entries["Subject"] = str(extra["Description"])
        return entries
    return None


def count_panels(figure: Figure) -> int:
    """Number of data panels of ``figure``: visible axes that are not colour bars.

    Colour-bar axes carry matplotlib's label ``"<colorbar>"``; axes switched off *and*
    empty (no image, line, patch or text) are layout fillers and do not count either.
    """
    count = 0
    for axes in figure.axes:
        if axes.get_label() == "<colorbar>" or not axes.get_visible():
            continue
        has_content = bool(axes.images or axes.lines or axes.collections or axes.patches or axes.texts)
        if axes.axison or has_content:
            count += 1
    return count


def save_figure_formats(
    figure: Figure,
    path: str | os.PathLike,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> list[Path]:
    """Save ``figure`` once per format beside each other: ``path`` with each extension.

    ``path`` may carry an extension of one of the formats (it is replaced) or none
    (``figures/error_maps`` gives ``figures/error_maps.png`` and ``.pdf``). Returns
    the paths written, in the order of ``formats``.
    """
    base = Path(path)
    if base.suffix.lower() in _FORMATS:
        base = base.with_suffix("")
    extensions = ["." + str(file_format).lower().lstrip(".") for file_format in formats]
    for file_format, extension in zip(formats, extensions):
        if extension not in _FORMATS:  # checked before anything is written: no partial set of files
            raise UnsupportedFormatError(
                f"{base}: cannot save a figure as {file_format!r}; use formats among {', '.join(sorted(_FORMATS))}"
            )
    return [save_figure(figure, base.with_name(base.name + extension), dpi, metadata) for extension in extensions]


def finish(figure: Figure, path: str | os.PathLike | None, dpi: int | None) -> Figure:
    """Save ``figure`` when ``path`` is given; return it either way (the tail of every plot function)."""
    if path is not None:
        save_figure(figure, path, dpi)
    return figure


# ---------------------------------------------------------------------------- named styles
@dataclass(frozen=True)
class FigureStyle:
    """A named look for figures.

    Attributes:
        name: ``"paper"`` or ``"screen"``.
        dpi: default resolution of saved raster files (dots per inch).
        panel_in: width of one image panel in a grid, inches.
        page_width_in: widest figure of the style (a two-column journal page for paper), inches.
        rc: matplotlib settings applied while a figure is built and saved.
    """

    name: str
    dpi: int
    panel_in: float
    page_width_in: float
    rc: dict[str, Any] = field(default_factory=dict)


_COMMON_RC: dict[str, Any] = {
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "image.interpolation": "nearest",
    "font.family": "DejaVu Sans",
}

#: The styles of ``--style``: fonts, widths and resolution for a journal page or a screen.
STYLES: dict[str, FigureStyle] = {
    "paper": FigureStyle(
        "paper",
        dpi=300,
        panel_in=1.75,
        page_width_in=7.16,  # two-column width of IEEE / Elsevier pages
        rc={
            **_COMMON_RC,
            "font.size": 8.0,
            "axes.titlesize": 8.0,
            "axes.labelsize": 8.0,
            "xtick.labelsize": 7.0,
            "ytick.labelsize": 7.0,
            "legend.fontsize": 7.0,
            "figure.titlesize": 9.0,
            "lines.linewidth": 1.0,
            "axes.linewidth": 0.6,
            "xtick.major.width": 0.6,
            "ytick.major.width": 0.6,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": False,
            "pdf.fonttype": 42,  # TrueType, not Type 3: text stays text for journals and vector editors
            "ps.fonttype": 42,
        },
    ),
    "screen": FigureStyle(
        "screen",
        dpi=110,
        panel_in=3.0,
        page_width_in=13.0,
        rc={
            **_COMMON_RC,
            "font.size": 10.0,
            "axes.titlesize": 11.0,
            "axes.labelsize": 10.0,
            "legend.fontsize": 9.0,
            "figure.titlesize": 12.0,
            "lines.linewidth": 1.4,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "pdf.fonttype": 42,
        },
    ),
}


def get_style(style: str | FigureStyle | None) -> FigureStyle:
    """The :class:`FigureStyle` named ``style`` (None: ``"screen"``)."""
    if isinstance(style, FigureStyle):
        return style
    name = "screen" if style is None else str(style).lower()
    if name not in STYLES:
        raise ConfigError(f"unknown figure style {style!r}; use one of {', '.join(STYLES)} (--style paper|screen)")
    return STYLES[name]


@contextlib.contextmanager
def figure_style(style: str | FigureStyle | None) -> Iterator[FigureStyle]:
    """Apply a style's matplotlib settings while figures are built (``with figure_style("paper"):``)."""
    chosen = get_style(style)
    with matplotlib.rc_context(chosen.rc):
        yield chosen


def styled_figure(style: str | FigureStyle | None, width_in: float, height_in: float) -> Figure:
    """A constrained-layout figure tagged with ``style`` (call inside :func:`figure_style`).

    The tag makes :func:`save_figure` use the style's dpi and settings when saving.
    """
    chosen = get_style(style)
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    figure.hsikit_style = chosen.name  # type: ignore[attr-defined]
    return figure
