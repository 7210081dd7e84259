"""hsikit.viz: pictures of cubes, spectra and class maps.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` and saves
it when given ``path=`` (PNG, PDF, SVG or JPEG by extension; ``dpi=`` sets the
resolution). Figures are made without ``pyplot``, so nothing needs closing and
no display is required.

>>> from hsikit.viz import composite_rgb, plot_true_colour, plot_class_map
>>> rgb = composite_rgb(cube)                                   # doctest: +SKIP
>>> plot_true_colour(cube, path="true_colour.png")              # doctest: +SKIP
>>> plot_class_map(labels, class_names, path="classes.png")     # doctest: +SKIP

The figure suite of ``hsikit viz`` lives in submodules that import torch, so they are not
loaded here: :mod:`hsikit.viz.panels` (colour panels, spectra), :mod:`hsikit.viz.errors`
(error maps), :mod:`hsikit.viz.summaries` (bandwise, density, ECDF, heatmap),
:mod:`hsikit.viz.compare`, :mod:`hsikit.viz.classes`, :mod:`hsikit.viz.latent`,
:mod:`hsikit.viz.results` (result folders) and :mod:`hsikit.viz.suite` (everything at once).
See ``docs/visualisation.md``.
"""

from __future__ import annotations

from hsikit.viz.composite import (
    COLOUR_INFRARED_NM,
    DEFAULT_PERCENTILES,
    TRUE_COLOUR_NM,
    composite_rgb,
    composite_rgba,
    covers_visible,
    describe_bands,
    nearest_band_index,
    percentile_limits,
    plot_composite,
    plot_false_colour,
    plot_true_colour,
    select_rgb_bands,
    stretch,
    uses_cie_rendering,
)
from hsikit.viz.maps import (
    class_colour_table,
    class_map_rgba,
    class_name_table,
    plot_band,
    plot_class_map,
    resolve_band,
)
from hsikit.viz.spectra import ClassSpectra, class_mean_spectra, plot_class_spectra, plot_spectra, spectral_axis
from hsikit.viz.style import (
    DEFAULT_DPI,
    STYLES,
    count_panels,
    figure_style,
    get_style,
    pixel_exact_figure,
    save_figure,
    save_figure_formats,
    styled_figure,
)

__all__ = [
    "COLOUR_INFRARED_NM",
    "DEFAULT_DPI",
    "DEFAULT_PERCENTILES",
    "STYLES",
    "TRUE_COLOUR_NM",
    "ClassSpectra",
    "class_colour_table",
    "class_map_rgba",
    "class_mean_spectra",
    "class_name_table",
    "composite_rgb",
    "composite_rgba",
    "count_panels",
    "covers_visible",
    "describe_bands",
    "figure_style",
    "get_style",
    "nearest_band_index",
    "percentile_limits",
    "pixel_exact_figure",
    "plot_band",
    "plot_class_map",
    "plot_class_spectra",
    "plot_composite",
    "plot_false_colour",
    "plot_spectra",
    "plot_true_colour",
    "resolve_band",
    "save_figure",
    "save_figure_formats",
    "select_rgb_bands",
    "spectral_axis",
    "stretch",
    "styled_figure",
    "uses_cie_rendering",
]
