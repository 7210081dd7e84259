"""predict_scene: exactness against whole-image inference, seams, nodata, streaming order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine

from hsikit import Cube, Window
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.inference import TileGrid, predict_scene
from hsikit.io.base import CubeReader, CubeWriter

TRANSFORM = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 3000000.0)


def _random_cube(rng: np.random.Generator, bands: int, height: int, width: int) -> Cube:
    return Cube(rng.random((bands, height, width)), crs="EPSG:32647", transform=TRANSFORM)


# ---------------------------------------------------------------------- exactness
@pytest.mark.parametrize(("height", "width"), [(100, 70), (37, 53), (20, 150), (9, 11)])
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("blend", ["cosine", "mean"])
def test_tiles_equal_whole_image_when_receptive_field_fits(
    rng, conv_stack, run_whole, height: int, width: int, batch_size: int, blend: str
) -> None:
    model = conv_stack(bands=3, outputs=4, layers=3)  # receptive-field radius 3 <= margin 4
    cube = _random_cube(rng, 3, height, width)
    tiled = predict_scene(
        model, cube, tile=32, overlap=16, margin=4, padding="none", batch_size=batch_size, blend=blend, progress=False
    )
    expected = run_whole(model, torch.from_numpy(cube.data)).numpy()
    assert tiled.shape == (4, height, width)
    np.testing.assert_allclose(tiled.data, expected, rtol=0, atol=1e-6)
    assert tiled.crs == "EPSG:32647" and tiled.transform == TRANSFORM


def test_reflect_padding_equals_model_on_reflect_padded_image(rng, conv_stack, run_whole) -> None:
    model = conv_stack(bands=2, outputs=3, layers=4)
    cube = _random_cube(rng, 2, 61, 45)
    tiled = predict_scene(model, cube, tile=24, overlap=10, margin=4, padding="reflect", batch_size=2, progress=False)
    padded = np.pad(cube.data, ((0, 0), (4, 4), (4, 4)), mode="reflect")
    expected = run_whole(model, torch.from_numpy(padded)).numpy()[:, 4:-4, 4:-4]
    np.testing.assert_allclose(tiled.data, expected, rtol=0, atol=1e-6)


def test_without_margin_tile_borders_differ(rng, conv_stack, run_whole) -> None:
    """Negative control: tile edges inside the image change the result when nothing is discarded."""
    model = conv_stack(bands=3, outputs=4, layers=3)
    cube = _random_cube(rng, 3, 64, 64)
    tiled = predict_scene(model, cube, tile=32, overlap=16, margin=0, padding="none", progress=False)
    expected = run_whole(model, torch.from_numpy(cube.data)).numpy()
    assert np.abs(tiled.data - expected).max() > 1e-3


# ---------------------------------------------------------------------- seams
def _largest_step_at_tile_edges(output: np.ndarray, grid: TileGrid, border: int) -> float:
    """Largest difference between a pixel and its neighbour across any tile edge, away from the image border."""
    steps = [0.0]
    edges = {s for s in grid.col_starts} | {s + grid.tile_width for s in grid.col_starts}
    for edge in sorted(edges):
        col = edge - grid.pad_left
        if border < col < output.shape[2] - border:
            steps.append(float(np.abs(output[:, border:-border, col] - output[:, border:-border, col - 1]).max()))
    edges = {s for s in grid.row_starts} | {s + grid.tile_height for s in grid.row_starts}
    for edge in sorted(edges):
        row = edge - grid.pad_top
        if border < row < output.shape[1] - border:
            steps.append(float(np.abs(output[:, row, border:-border] - output[:, row - 1, border:-border]).max()))
    return max(steps)


def test_constant_input_gives_no_seams(conv_stack) -> None:
    # zero-padded convolutions: a tile's output bends near its own border (radius 6 > margin 0)
    model = conv_stack(bands=2, outputs=2, layers=6, seed=3)
    cube = Cube(np.full((2, 120, 120), 0.7))
    with torch.no_grad():
        lone_tile = model(torch.from_numpy(cube.data[None, :, :48, :48]))[0].numpy()
    border_bend = float(np.abs(lone_tile - lone_tile[:, 24:25, 24:25]).max())
    assert border_bend > 0.03, "the model must not be translation-invariant at tile borders for this test"

    grid = TileGrid.create(120, 120, tile=48, overlap=24, margin=0, padding="reflect")
    steps = {}
    for blend in ("cosine", "linear", "mean"):
        output = predict_scene(
            model, cube, tile=48, overlap=24, margin=0, padding="reflect", blend=blend, progress=False
        ).data
        steps[blend] = _largest_step_at_tile_edges(output, grid, border=8)
    assert steps["cosine"] < 0.02 * border_bend
    assert steps["linear"] < 0.1 * border_bend
    # plain averaging leaves visible steps: the measurement does detect seams
    assert steps["mean"] > 0.3 * border_bend


# ---------------------------------------------------------------------- nodata
def test_nodata_pixels_are_written_as_nodata_and_do_not_spread(rng, conv_stack) -> None:
    model = conv_stack(bands=3, outputs=3, layers=2)
    data = rng.random((3, 50, 40))
    data[:, 10:14, 5:9] = -9999.0
    data[1, 30, 30] = np.nan
    cube = Cube(data, nodata=-9999.0, nonfinite="ignore")
    regression = predict_scene(model, cube, tile=24, overlap=8, margin=2, progress=False)
    invalid = np.zeros((50, 40), dtype=bool)
    invalid[10:14, 5:9] = True
    invalid[30, 30] = True
    assert np.isnan(regression.data[:, invalid]).all()
    assert np.isfinite(regression.data[:, ~invalid]).all()
    np.testing.assert_array_equal(regression.nodata_mask, invalid)
    classes = predict_scene(model, cube, tile=24, overlap=8, margin=2, output_kind="classes", progress=False)
    assert classes.dtype == np.uint8 and classes.nodata == 255
    assert (classes.data[0, invalid] == 255).all() and (classes.data[0, ~invalid] < 3).all()


def test_explicit_mask_of_a_cube_is_used(rng, conv_stack) -> None:
    model = conv_stack(bands=2, outputs=2, layers=1)
    mask = np.zeros((30, 30), dtype=bool)
    mask[:3] = True
    cube = Cube(rng.random((2, 30, 30)), nodata_mask=mask)
    result = predict_scene(model, cube, tile=16, overlap=4, progress=False)
    assert np.isnan(result.data[:, :3]).all() and np.isfinite(result.data[:, 3:]).all()


# ---------------------------------------------------------------------- streaming order
class _RecordingReader(CubeReader):
    """Serves an in-memory array window by window and logs each read."""

    def __init__(self, array: np.ndarray, log: list) -> None:
        self.array, self.log = array, log
        self.path = Path("recording.tif")
        self.shape = array.shape
        self.dtype = array.dtype
        self.crs, self.transform, self.nodata = "EPSG:32647", TRANSFORM, None
        self.metadata = {}

    def read_array(self, window: Window | None = None, bands: list[int] | None = None) -> np.ndarray:
        assert window is not None, "the streaming path must never read the whole image"
        self.log.append(("read", window))
        rows, cols = window.slices
        return self.array[:, rows, cols].copy()


class _RecordingWriter(CubeWriter):
    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: np.dtype, log: list, **metadata) -> None:
        self.path, self.shape, self.log, self.metadata = Path(path), shape, log, metadata
        self.array = np.zeros(shape, dtype=dtype)
        self.closed = self.aborted = False

    def write_window(self, array: np.ndarray, window: Window) -> None:
        self.log.append(("write", window))
        rows, cols = window.slices
        self.array[:, rows, cols] = array

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


@pytest.fixture
def recording_writers(monkeypatch):
    """Replace hsikit.io.create_writer by one that records into _RecordingWriter objects."""
    import hsikit.io

    created: list[_RecordingWriter] = []
    log: list = []

    def create_writer(path, shape, dtype, **metadata):
        writer = _RecordingWriter(path, shape, dtype, log, **metadata)
        created.append(writer)
        return writer

    monkeypatch.setattr(hsikit.io, "create_writer", create_writer, raising=False)
    return created, log


def test_streaming_reads_strips_and_writes_rows_as_it_goes(rng, conv_stack, recording_writers) -> None:
    created, log = recording_writers
    model = conv_stack(bands=3, outputs=4, layers=2)
    array = rng.random((3, 130, 45)).astype(np.float32)
    reader = _RecordingReader(array, log)
    path = predict_scene(
        model, reader, "out.tif", tile=32, overlap=8, margin=2, output_kind="classes",
        probabilities_output="probabilities.tif", batch_size=2, prefetch=False, progress=False,
    )
    assert path == Path("out.tif")
    classes_writer, probability_writer = created
    assert classes_writer.closed and probability_writer.closed
    assert classes_writer.metadata["crs"] == "EPSG:32647" and classes_writer.metadata["transform"] == TRANSFORM
    assert classes_writer.metadata["nodata"] == 255 and classes_writer.array.dtype == np.uint8
    assert probability_writer.shape == (4, 130, 45)

    reads = [window for kind, window in log if kind == "read"]
    writes = [window for kind, window in log if kind == "write"]
    assert max(window.height for window in reads) <= 32
    assert all(window.width == 45 for window in reads + writes)
    # rows are written while later strips are still unread
    first_write = next(i for i, (kind, _) in enumerate(log) if kind == "write")
    last_read = max(i for i, (kind, _) in enumerate(log) if kind == "read")
    assert first_write < last_read
    # the written rows tile the image exactly once
    covered = np.zeros(130, dtype=int)
    for window in writes[::2]:
        covered[window.row_off : window.row_off + window.height] += 1
    np.testing.assert_array_equal(covered, 1)

    in_memory = predict_scene(
        model, Cube(array), tile=32, overlap=8, margin=2, output_kind="probabilities", progress=False
    )
    np.testing.assert_allclose(probability_writer.array, in_memory.data, atol=1e-6)
    np.testing.assert_array_equal(classes_writer.array[0], in_memory.data.argmax(axis=0))


def test_failure_aborts_the_outputs(rng, recording_writers) -> None:
    created, _ = recording_writers
    calls = {"count": 0}

    def failing_model(batch: torch.Tensor) -> torch.Tensor:
        calls["count"] += 1
        if calls["count"] == 3:
            raise RuntimeError("simulated crash")
        return batch[:, :2]

    with pytest.raises(RuntimeError, match="simulated crash"):
        predict_scene(
            failing_model, Cube(rng.random((3, 100, 30))), "out.tif", tile=16, overlap=4, batch_size=1, progress=False
        )
    assert created and all(writer.aborted and not writer.closed for writer in created)


# ---------------------------------------------------------------------- bad input
def test_model_changing_size_is_refused(rng) -> None:
    with pytest.raises(ShapeMismatchError, match="spatial size"):
        predict_scene(lambda x: x[:, :, ::2, ::2], Cube(rng.random((2, 40, 40))), tile=16, overlap=4, progress=False)


def test_bad_options_are_refused(rng, conv_stack) -> None:
    model = conv_stack(bands=2, outputs=2, layers=1)
    cube = Cube(rng.random((2, 20, 20)))
    with pytest.raises(ConfigError, match="output_kind='labels' is not known"):
        predict_scene(model, cube, output_kind="labels", progress=False)
    with pytest.raises(ConfigError, match="needs output_kind='classes'"):
        predict_scene(model, cube, output_kind="regression", probabilities_output="p.tif", progress=False)
    with pytest.raises(ConfigError, match="cannot read a ndarray"):
        predict_scene(model, cube.data, progress=False)
    with pytest.raises(ConfigError, match="batch_size=0"):
        predict_scene(model, cube, batch_size=0, progress=False)


# ---------------------------------------------------------------------- normaliser, integer input
def test_normalizer_is_applied_to_integer_scene(shared_data, conv_stack) -> None:
    radiance = np.load(shared_data / "indian_pines" / "Indian_pines_corrected.npy")  # (145, 145, 200) uint16
    cube = Cube.from_hwc(radiance)[:48]  # the first 48 bands keep the test fast
    model = conv_stack(bands=48, outputs=3, layers=2, seed=2)
    options = {"tile": 64, "overlap": 16, "batch_size": 2, "progress": False}
    normalised_on_the_fly = predict_scene(model, cube, normalizer=lambda tiles: tiles / 10000.0, **options)
    normalised_first = predict_scene(model, Cube(cube.data.astype(np.float64) / 10000.0), **options)
    np.testing.assert_allclose(normalised_on_the_fly.data, normalised_first.data, rtol=0, atol=1e-6)
    unnormalised = predict_scene(model, cube, **options)
    assert np.abs(unnormalised.data - normalised_first.data).max() > 0.1
