"""Class maps with legends, the colour table, and single-band pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.errors import ConfigError, InvalidCubeError, InvalidLabelsError, ShapeMismatchError, WavelengthError
from hsikit.viz import (
    class_colour_table,
    class_map_rgba,
    class_name_table,
    plot_band,
    plot_class_map,
)


def legend_texts(figure) -> list[str]:
    legends = figure.legends or [axes.get_legend() for axes in figure.axes if axes.get_legend()]
    assert len(legends) == 1
    return [text.get_text() for text in legends[0].get_texts()]


def test_colour_table_is_fixed_and_distinguishable() -> None:
    table = class_colour_table(41)
    assert table.shape == (41, 3)
    np.testing.assert_array_equal(table[0], [0, 0, 0])  # unlabelled
    np.testing.assert_array_equal(class_colour_table(17), table[:17])  # same value, same colour
    classes = table[1:]
    distances = np.linalg.norm(classes[:, None] - classes[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 0.05  # 40 classes, no two alike
    assert np.linalg.norm(classes[:16], axis=1).min() > 0.2  # no class is (nearly) black like label 0
    clusters = class_colour_table(4, zero_is_class=True)
    np.testing.assert_array_equal(clusters[0], table[1])


def test_class_name_table_conventions() -> None:
    assert class_name_table(["a", "b"]) == {1: "a", 2: "b"}
    assert class_name_table(["bg", "a"], first_label=0) == {0: "bg", 1: "a"}
    assert class_name_table({3: "water"}, class_ids=[1, 3]) == {1: "class 1", 3: "water"}
    with pytest.raises(ConfigError, match="list of names"):
        class_name_table("abc")


def test_class_map_pixels_take_their_class_colour() -> None:
    labels = np.array([[0, 1, 2], [3, 0, 1]])
    table = class_colour_table(4)
    rgba = class_map_rgba(labels)
    for value in range(4):
        np.testing.assert_allclose(rgba[labels == value][:, :3], np.tile(table[value], ((labels == value).sum(), 1)))
    assert np.all(rgba[..., 3] == 1)
    transparent = class_map_rgba(labels, unlabelled="transparent")
    np.testing.assert_array_equal(transparent[..., 3], labels != 0)


def test_class_map_over_a_background_blends_with_alpha() -> None:
    labels = np.array([[0, 1], [2, 0]])
    grey = np.array([[0.0, 1.0], [2.0, 4.0]])  # stretched 2-98 %: (v - 0.06) / 3.88
    rgba = class_map_rgba(labels, background=grey, alpha=0.25)
    low, high = np.percentile(grey, [2, 98])
    base = np.clip((grey - low) / (high - low), 0, 1)
    np.testing.assert_allclose(rgba[0, 0, :3], [base[0, 0]] * 3, atol=1e-6)  # unlabelled shows the background
    expected = 0.75 * base[0, 1] + 0.25 * class_colour_table(3)[1]
    np.testing.assert_allclose(rgba[0, 1, :3], expected, atol=1e-6)
    with pytest.raises(ShapeMismatchError, match=r"\(3, 2\).*2x2"):
        class_map_rgba(labels, background=np.zeros((3, 2)))


def test_labels_must_be_an_integer_map() -> None:
    with pytest.raises(InvalidLabelsError, match="integer labels"):
        class_map_rgba(np.array([[0.5, 1.0]]))
    with pytest.raises(InvalidLabelsError, match=r"\(H, W\) array, got shape \(2, 2, 2\)"):
        class_map_rgba(np.zeros((2, 2, 2), dtype=int))


def test_real_class_map_legend_lists_the_class_names(
    indian_pines, indian_pines_class_names, tmp_path: Path, read_png, distinct_colours
) -> None:
    cube, labels = indian_pines
    figure = plot_class_map(labels, indian_pines_class_names, title="Indian Pines", path=tmp_path / "map.png")
    assert legend_texts(figure) == indian_pines_class_names
    png = read_png(tmp_path / "map.png")
    width_in, height_in = figure.get_size_inches()
    assert png.shape[:2] == (round(height_in * 100), round(width_in * 100))
    assert png[..., :3].std() > 30
    assert distinct_colours(png) >= 17  # 16 classes + black + white at least
    # legend patches carry the table colours
    legend = figure.legends[0]
    table = class_colour_table(17)
    for value, patch in enumerate(legend.get_patches(), start=1):
        np.testing.assert_allclose(patch.get_facecolor()[:3], table[value])
    # over the true-colour image, at another dpi
    plot_class_map(labels, indian_pines_class_names, background=cube, path=tmp_path / "over.png", dpi=50)
    over = read_png(tmp_path / "over.png")
    assert over.shape[:2] == (round(height_in * 50), round(width_in * 50))
    assert distinct_colours(over) > 1000  # the background shows through


def test_legend_names_absent_and_unnamed_classes() -> None:
    labels = np.array([[0, 1], [5, 1]])
    figure = plot_class_map(labels, ["one", "two"])
    # every named class is listed (two is absent), and the unnamed class 5 present in the map
    assert legend_texts(figure) == ["one", "two", "class 5"]


def test_single_band_by_wavelength_and_index(indian_pines, tmp_path: Path, read_png, distinct_colours) -> None:
    cube, _ = indian_pines
    index = int(np.argmin(np.abs(cube.wavelengths - 800.0)))
    figure = plot_band(cube, wavelength=800.0, path=tmp_path / "band.png")
    axes = figure.axes[0]
    assert axes.get_title() == f"band {index} — {cube.wavelengths[index]:.1f} nm"
    image = axes.images[0]
    np.testing.assert_array_equal(image.get_array(), cube.data[index])
    low, high = np.percentile(cube.data[index].astype(np.float64), [2, 98])
    assert image.get_clim() == pytest.approx((low, high))
    assert len(figure.axes) == 2  # the image and its colour bar
    png = read_png(tmp_path / "band.png")
    width_in, height_in = figure.get_size_inches()
    assert png.shape[:2] == (round(height_in * 100), round(width_in * 100))
    assert png[..., :3].std() > 30 and distinct_colours(png) > 100
    assert plot_band(cube, band=index).axes[0].get_title() == axes.get_title()


def test_single_band_nodata_and_errors(rng: np.random.Generator) -> None:
    data = rng.random((3, 6, 6))
    data[:, 0, :] = -1.0
    cube = Cube(data, nodata=-1.0)
    image = plot_band(cube, band=1).axes[0].images[0]
    assert image.get_array().mask[0].all() and not image.get_array().mask[1:].any()
    assert plot_band(cube, band=1).axes[0].get_title() == "band 1"
    with pytest.raises(WavelengthError, match="no band wavelengths"):
        plot_band(cube, wavelength=650)
    with pytest.raises(InvalidCubeError, match="band 3 does not exist"):
        plot_band(cube, band=3)
    with pytest.raises(ConfigError, match="exactly one"):
        plot_band(cube)
