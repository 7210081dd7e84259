"""Figure styles (paper / screen), saving as PNG and PDF, and the panel count written into each file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit.errors import ConfigError, UnsupportedFormatError
from hsikit.viz.style import (
    STYLES,
    count_panels,
    figure_style,
    get_style,
    save_figure,
    save_figure_formats,
    styled_figure,
)


def _two_panels_and_a_colour_bar(style: str):
    with figure_style(style):
        figure = styled_figure(style, 6.0, 3.0)
        left = figure.add_subplot(1, 2, 1)
        image = left.imshow(np.arange(64.0).reshape(8, 8))
        figure.colorbar(image, ax=left)
        right = figure.add_subplot(1, 2, 2)
        right.plot([0, 1, 2], [2, 0, 1], label="line")
        right.set_title("a title")
    return figure


def test_panel_count_leaves_out_colour_bars_and_empty_fillers() -> None:
    figure = _two_panels_and_a_colour_bar("screen")
    assert len(figure.axes) == 3 and count_panels(figure) == 2
    filler = figure.add_axes((0.0, 0.0, 0.1, 0.1))
    filler.set_axis_off()
    assert count_panels(figure) == 2  # switched off and empty: layout only
    filler.text(0.5, 0.5, "note")
    assert count_panels(figure) == 3


def test_png_and_pdf_record_panels_style_and_caption(
    tmp_path: Path, read_png, png_metadata, pdf_is_valid
) -> None:
    figure = _two_panels_and_a_colour_bar("paper")
    written = save_figure_formats(figure, tmp_path / "sub" / "fig.png", metadata={"Description": "two panels — ±"})
    assert [p.name for p in written] == ["fig.png", "fig.pdf"]  # the extension given is replaced by each format
    entries = png_metadata(written[0])
    assert entries["hsikit:panels"] == "2" and entries["hsikit:style"] == "paper"
    assert entries["Description"] == "two panels — ±"
    image = read_png(written[0])
    # the paper style saves at 300 dpi: 6 x 3 inches are 1800 x 900 pixels
    assert image.shape[:2] == (900, 1800)
    assert pdf_is_valid(written[1])
    pdf = written[1].read_bytes()
    assert b"hsikit panels=2 style=paper" in pdf
    assert b"/FontFile2" in pdf  # TrueType fonts embedded (pdf.fonttype 42), not Type 3
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig.pdf", "fig.png"]  # no partial file left


def test_styles_differ_in_type_size_and_resolution(tmp_path: Path, read_png) -> None:
    paper, screen = _two_panels_and_a_colour_bar("paper"), _two_panels_and_a_colour_bar("screen")
    paper_title = paper.axes[-1].title.get_fontsize()
    screen_title = screen.axes[-1].title.get_fontsize()
    assert paper_title == STYLES["paper"].rc["axes.titlesize"] == 8.0
    assert screen_title == STYLES["screen"].rc["axes.titlesize"] > paper_title
    assert not paper.axes[-1].spines["top"].get_visible() and screen.axes[-1].spines["top"].get_visible()
    save_figure(screen, tmp_path / "screen.png")
    assert read_png(tmp_path / "screen.png").shape[:2] == (330, 660)  # 110 dpi
    save_figure(screen, tmp_path / "screen_72.png", dpi=72)  # an explicit dpi wins
    assert read_png(tmp_path / "screen_72.png").shape[:2] == (216, 432)


def test_bad_style_format_and_dpi_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown figure style 'poster'; use one of paper, screen"):
        get_style("poster")
    figure = _two_panels_and_a_colour_bar("screen")
    with pytest.raises(UnsupportedFormatError, match=r"cannot save a figure as 'bmp'"):
        save_figure_formats(figure, tmp_path / "fig", formats=("png", "bmp"))
    with pytest.raises(ConfigError, match="dpi must be positive"):
        save_figure(figure, tmp_path / "fig.png", dpi=0)
    assert list(tmp_path.iterdir()) == []  # formats are checked before any file is written
