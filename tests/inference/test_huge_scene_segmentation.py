"""A small version of the huge-scene check (benchmarks/bench_huge_scene.py): a ~20 MB GeoTIFF segmented by
an exported SSMGNet through ``hsikit predict`` with a tile budget forcing many tiles: the class raster and the
polygons keep the input's CRS, every read and write touches at most one strip of tiles, and the numpy memory
allocated during the run stays a small fraction of the scene."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

import hsikit.io
from hsikit.cube import Cube
from hsikit.engine.cli import main
from hsikit.engine.export import export_model, load_model
from hsikit.inference.predict import predict_with_model
from hsikit.io import open_reader
from hsikit.models import create_model
from hsikit.spectral.normalize import create_normalizer

BANDS, HEIGHT, WIDTH = 16, 640, 512  # 21 MB of float32
TILE, OVERLAP = 64, 16
NAMES = ["background", "clean_glacier", "debris_glacier"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Blobs of three spectra plus noise, written strip by strip as a tiled GeoTIFF in EPSG:32645 (30 m)."""
    path = tmp_path_factory.mktemp("huge") / "scene.tif"
    profile = {"driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": BANDS, "dtype": "float32",
               "crs": "EPSG:32645", "transform": from_origin(400000.0, 3000000.0, 30.0, 30.0), "tiled": True,
               "blockxsize": 128, "blockysize": 128}  # fmt: skip
    spectra = np.stack([np.linspace(0.1, 0.3, BANDS), np.linspace(0.9, 0.5, BANDS), np.linspace(0.3, 0.5, BANDS)])
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dataset:
        for row0 in range(0, HEIGHT, 128):
            rows, cols = np.mgrid[row0 : row0 + 128, 0:WIDTH]
            field = np.sin(rows / 37.0) + np.cos(cols / 29.0)
            classes = (field > 0.6).astype(int) + (field > 1.3).astype(int)
            block = np.moveaxis(spectra[classes], -1, 0) + 0.02 * rng.standard_normal((BANDS, 128, WIDTH))
            dataset.write(block.astype(np.float32), window=rasterio.windows.Window(0, row0, WIDTH, 128))
    return path


@pytest.fixture(scope="module")
def model_dir(scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(5)
    model = create_model("ssmgnet", in_bands=BANDS, num_classes=3, width=4, atten_kernel=3)
    with rasterio.open(scene) as dataset:
        sample = dataset.read(window=rasterio.windows.Window(0, 0, 128, 128))
    normalizer = create_normalizer("standardize").fit(Cube(sample))
    folder = tmp_path_factory.mktemp("model")
    export_model(model, folder, task="segmentation",
                 data={"bands": BANDS, "class_names": NAMES, "normalization": normalizer.to_dict()})  # fmt: skip
    return folder


def test_many_tiles_keep_the_crs_in_raster_and_polygons(scene: Path, model_dir: Path, tmp_path: Path) -> None:
    output, vector = tmp_path / "classes.tif", tmp_path / "classes.shp"
    assert main(["predict", "--model", str(model_dir), "--input", str(scene), "--output", str(output),
                 "--vector", str(vector), "--tile", str(TILE), "--overlap", str(OVERLAP), "--compress", "deflate",
                 "--no-progress"]) == 0  # fmt: skip
    with rasterio.open(scene) as source, rasterio.open(output) as classes:
        assert classes.crs == source.crs and classes.crs.to_epsg() == 32645
        assert classes.transform == source.transform and (classes.height, classes.width) == (HEIGHT, WIDTH)
        assert classes.dtypes[0] == "uint8" and classes.descriptions == ("class",)
        labels = classes.read(1)
    counts = np.bincount(labels.ravel(), minlength=3)
    assert counts[3:].sum() == 0 and (counts[1:3] > 0).all()  # every pixel predicted, glacier classes present
    polygons = gpd.read_file(vector)
    assert polygons.crs.to_epsg() == 32645
    assert set(polygons.class_name) == {"clean_glacier", "debris_glacier"}  # background (0) is not traced
    areas = polygons.geometry.area.groupby(polygons["class_id"]).sum()
    for class_id in (1, 2):
        assert areas[class_id] == pytest.approx(900.0 * counts[class_id])


def test_reads_and_writes_stay_within_one_strip(
    scene: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = open_reader(scene)
    read_windows: list[tuple[int, int]] = []
    written_rows: list[int] = []
    read_array = reader.read_array

    def spy_read(window=None, bands=None):  # type: ignore[no-untyped-def]
        assert window is not None, "the whole scene was read at once"
        read_windows.append((window.height, window.width))
        return read_array(window, bands)

    reader.read_array = spy_read  # type: ignore[method-assign]
    create_writer = hsikit.io.create_writer

    def spy_create_writer(*args, **kwargs):  # type: ignore[no-untyped-def]
        writer = create_writer(*args, **kwargs)
        write_window = writer.write_window

        def spy_write(array, window):  # type: ignore[no-untyped-def]
            written_rows.append(window.height)
            return write_window(array, window)

        writer.write_window = spy_write
        return writer

    monkeypatch.setattr(hsikit.io, "create_writer", spy_create_writer)
    model = load_model(model_dir, expected_bands=BANDS)
    scene_bytes = BANDS * HEIGHT * WIDTH * 4
    strip_bytes = BANDS * TILE * (WIDTH + 2 * (OVERLAP // 4)) * 4
    tracemalloc.start()
    try:
        predict_with_model(model, reader, tmp_path / "classes.tif", tile=TILE, overlap=OVERLAP, batch_size=2,
                           progress=False)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        reader.close()
    stride = TILE - OVERLAP
    strips = -(-(HEIGHT + 2 * (OVERLAP // 4) - TILE) // stride) + 1
    assert len(written_rows) >= strips - 1 >= 12  # many strips, each written as it is finished
    assert max(height for height, _ in read_windows) <= TILE
    assert max(written_rows) <= TILE
    # numpy memory (tracemalloc sees numpy's buffers): a few strips, far below the scene's 21 MB
    assert peak < 4 * strip_bytes < scene_bytes / 2, (peak, strip_bytes, scene_bytes)
    with rasterio.open(tmp_path / "classes.tif") as classes:
        assert classes.crs.to_epsg() == 32645
