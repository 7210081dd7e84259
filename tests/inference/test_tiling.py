"""Tile layout and blending weights."""

from __future__ import annotations

import numpy as np
import pytest

from hsikit.errors import ConfigError, HsikitError
from hsikit.inference.tiling import TileGrid, tile_starts, tile_weight_profile


def test_tile_starts_end_on_the_edge() -> None:
    assert tile_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    assert tile_starts(64, 32, 16) == [0, 16, 32]  # exact fit: no extra tile
    assert tile_starts(32, 32, 16) == [0]
    assert tile_starts(10, 32, 16) == [0]


def test_cosine_ramp_values_and_partition_of_unity() -> None:
    # ramp of 3 pixels: 0.5 - 0.5 cos(pi * k / 4) for k = 1, 2, 3
    profile = tile_weight_profile(12, margin=2, ramp=3, blend="cosine", at_start=False, at_end=False)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.array([1, 2, 3]) / 4)
    np.testing.assert_allclose(profile[:5], [0, 0, *ramp])
    np.testing.assert_allclose(profile[5:7], [1, 1])
    np.testing.assert_allclose(profile[7:], [*ramp[::-1], 0, 0])
    # two tiles 12 px long overlapping by 2 * margin + ramp = 7 px: the weights sum to 1 where both count
    stride = 12 - 7
    both = profile[stride + 2 : 12 - 2] + profile[2 : 12 - stride - 2]
    np.testing.assert_allclose(both, 1.0)


@pytest.mark.parametrize("blend", ["linear", "mean"])
def test_other_ramps(blend: str) -> None:
    profile = tile_weight_profile(10, margin=1, ramp=4, blend=blend, at_start=False, at_end=True)
    expected_ramp = [0.2, 0.4, 0.6, 0.8] if blend == "linear" else [1, 1, 1, 1]
    np.testing.assert_allclose(profile, [0, *expected_ramp, 1, 1, 1, 1, 1])


def test_border_tiles_keep_full_weight_at_the_canvas_edge() -> None:
    profile = tile_weight_profile(8, margin=2, ramp=2, blend="cosine", at_start=True, at_end=True)
    np.testing.assert_array_equal(profile, np.ones(8))


@pytest.mark.parametrize("padding", ["reflect", "replicate", "zeros", "none"])
@pytest.mark.parametrize(("height", "width"), [(100, 70), (37, 53), (20, 150), (5, 9)])
def test_every_pixel_gets_positive_weight(padding: str, height: int, width: int) -> None:
    grid = TileGrid.create(height, width, tile=32, overlap=16, margin=4, padding=padding)
    total = np.zeros((grid.canvas_height, grid.canvas_width))
    for row, col in grid.tiles():
        weights = grid.weights(row, col)
        assert weights.shape == (grid.tile_height, grid.tile_width)
        total[row : row + grid.tile_height, col : col + grid.tile_width] += weights
    assert total.min() > 0
    row_sums, col_sums = grid.weight_sums()  # the separable form used when blending
    np.testing.assert_allclose(np.outer(row_sums, col_sums), total, rtol=1e-6)
    # tiles are full size and the last ones end on the canvas edge
    assert grid.row_starts[-1] + grid.tile_height == grid.canvas_height
    assert grid.col_starts[-1] + grid.tile_width == grid.canvas_width
    if padding == "none":
        assert (grid.canvas_height, grid.canvas_width) == (height, width)
        assert grid.tile_height == min(32, height)
    else:
        assert grid.pad_top == grid.pad_left == 4
        assert grid.canvas_height >= 32 and grid.canvas_width >= 32


def test_pad_image_modes() -> None:
    image = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    reflect = TileGrid.create(3, 4, tile=8, overlap=2, margin=1, padding="reflect")
    padded = reflect.pad_image(image)
    assert padded.shape == (1, reflect.canvas_height, reflect.canvas_width) == (1, 8, 8)
    np.testing.assert_array_equal(padded[0, 0, 1:5], image[0, 1])  # row above the image mirrors row 1
    np.testing.assert_array_equal(padded[0, 1:4, 1:5], image[0])
    zeros = TileGrid.create(3, 4, tile=8, overlap=2, margin=1, padding="zeros").pad_image(image)
    assert zeros[0, 0].sum() == 0 and zeros[0, 1:4, 1:5].sum() == image.sum()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 16, "overlap": 16}, "larger than overlap"),
        ({"tile": 32, "overlap": 8, "margin": 5}, "2 \\* margin <= overlap"),
        ({"blend": "gaussian"}, "blend='gaussian' is not known"),
        ({"padding": "wrap"}, "padding='wrap' is not known"),
        ({"overlap": -1}, "overlap=-1"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        TileGrid.create(100, 100, **kwargs)
    assert isinstance(caught.value, HsikitError)


@pytest.mark.parametrize("padding", ["reflect", "replicate", "zeros"])
@pytest.mark.parametrize(("top", "rows"), [(3, 5), (4, 1), (0, 2), (0, 12)])
def test_fill_padding_in_place_matches_numpy_pad(rng, padding: str, top: int, rows: int) -> None:
    grid = TileGrid.create(height=20, width=3, tile=12, overlap=6, margin=3, padding=padding)
    assert (grid.pad_left, grid.canvas_width) == (3, 12)  # 3 image columns, padded 3 left and 6 right
    image = rng.random((2, rows, 3))
    array = np.full((2, 12, 12), -1.0)
    array[:, top : top + rows, 3:6] = image
    grid.fill_padding(array, top, rows)
    mode = {"reflect": "reflect", "replicate": "edge", "zeros": "constant"}[padding]
    np.testing.assert_array_equal(array, np.pad(image, ((0, 0), (top, 12 - top - rows), (3, 6)), mode=mode))
