"""Whole-scene segmentation runs in memory that does not grow with the scene, with the CRS kept.

A small SSMGNet is trained for a few seconds on glacier tile 1; two scenes of the same width
and 4x different height (made of flipped copies of the real tile 1) are then segmented by
``segment_scene`` (streaming tiles, class GeoTIFF, strip-by-strip GeoPackage) in child
processes. Each child first segments tile 2 (so every library is loaded and every buffer
size has been used once), then reports its peak resident memory during the measured scene
above its level before it. Loading the larger scene whole would need at least 60 MiB more
than the smaller one; the bound allows a quarter of that. The several-GB run is in
``benchmarks/bench_segmentation.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from affine import Affine

from hsikit.cube import Window
from hsikit.data.segmentation_datamodule import SegmentationDataModule
from hsikit.engine.export import export_model
from hsikit.io import create_writer, open_cube
from hsikit.tasks.segmentation import SegmentationTask

WIDTH, HEIGHTS = 512, (1024, 4096)

CHILD = r"""
import json, sys, torch
torch.set_num_threads(1)
from hsikit.engine.export import load_model
from hsikit.inference.segmentation import segment_scene
import geopandas, rasterio, tqdm.auto  # imports belong to the baseline, not to the scene

def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0

scene, model_dir, out, warm_up = sys.argv[1:5]
model = load_model(model_dir)
segment_scene(model, warm_up, out + "_warm_up", tile=128, overlap=16, batch_size=2, vector="gpkg", progress=False)
baseline = status("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak (VmHWM) to the current resident size
result = segment_scene(model, scene, out, tile=128, overlap=16, batch_size=2, vector="gpkg", progress=False)
with rasterio.open(result["classes"]) as classes:
    raster_crs = classes.crs.to_string()
vector_crs = geopandas.read_file(result["vector"]).crs.to_string()
print(json.dumps({"growth_mb": status("VmHWM") - baseline, "raster_crs": raster_crs, "vector_crs": vector_crs,
                  "polygons": result["vector_summary"].polygons}))
"""


def _write_scene(path: Path, tile: np.ndarray, height: int) -> None:
    """A (10, height, WIDTH) float32 GeoTIFF tiled from flipped copies of a real 256 x 256 tile."""
    transform = Affine(30.0, 0.0, 186555.0, 0.0, -30.0, 3298065.0)
    with create_writer(path, (10, height, WIDTH), np.float32, crs="EPSG:32647", transform=transform) as writer:
        for row in range(0, height, 256):
            strip = np.concatenate([tile if (row // 256 + k) % 2 == 0 else tile[:, :, ::-1] for k in range(WIDTH // 256)], axis=2)
            writer.write_window(strip, Window(row, 0, 256, WIDTH))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure peak memory")
def test_memory_does_not_grow_with_the_scene(tmp_path: Path, shared_data: Path) -> None:
    tile = open_cube(shared_data / "glacier" / "images" / "1.tif").data.astype(np.float32)
    L.seed_everything(0, verbose=False)
    datamodule = SegmentationDataModule(
        dataset="glacier", root=str(shared_data), train=["1"], val=[], crop_size=64, samples_per_epoch=16,
        batch_size=8, shuffle_seed=0,
    )  # fmt: skip
    task = SegmentationTask(model_args={"width": 4, "atten_kernel": 3}, class_weights="inverse_frequency",
                            training_log=None)  # fmt: skip
    trainer = L.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=str(tmp_path))  # fmt: skip
    trainer.fit(task, datamodule=datamodule)
    export_model(task.model, tmp_path / "model", task="segmentation", data=task.export_data())
    environment = dict(os.environ, GDAL_CACHEMAX="16", OMP_NUM_THREADS="1")
    reports = []
    for height in HEIGHTS:
        scene = tmp_path / f"scene_{height}.tif"
        _write_scene(scene, tile, height)
        finished = subprocess.run(
            [sys.executable, "-c", CHILD, str(scene), str(tmp_path / "model"), str(tmp_path / f"out_{height}"),
             str(shared_data / "glacier" / "images" / "2.tif")],
            capture_output=True, text=True, env=environment, check=False, timeout=300,
        )  # fmt: skip
        assert finished.returncode == 0, finished.stderr[-3000:]
        reports.append(json.loads(finished.stdout.strip().splitlines()[-1]))
        scene.unlink()
    small, large = reports
    scene_growth_mb = 10 * (HEIGHTS[1] - HEIGHTS[0]) * WIDTH * 4 / 2**20  # 60 MiB more pixels
    assert large["growth_mb"] - small["growth_mb"] < scene_growth_mb / 4, reports
    for report in reports:
        assert report["raster_crs"] == "EPSG:32647" and report["vector_crs"] == "EPSG:32647"
        assert report["polygons"] > 0
