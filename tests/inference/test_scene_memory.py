"""Whole-scene segmentation runs in memory that does not grow with the scene, with the CRS kept.

Two scenes of the same width and 4x different height (made of flipped copies of the real
glacier tile 1) are segmented by ``segment_scene`` (streaming tiles, class GeoTIFF,
strip-by-strip GeoPackage) in child processes. Each child first segments tile 2 (so every
library is loaded and every buffer size has been used once), then reports its peak resident
memory during the measured scene above its level before it. Loading the larger scene whole
would need at least 60 MiB more than the smaller one; the bound allows a quarter of that.
The model is an SSMGNet whose weights are set by hand to a threshold on band 10 (clean ice
and snow are bright there), so that the class map has realistic regions without training.
The several-GB run is in ``benchmarks/bench_segmentation.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine

from hsikit.cube import Window
from hsikit.engine.export import export_model
from hsikit.io import create_writer, open_cube
from hsikit.models import create_model
from hsikit.spectral.normalize import create_normalizer

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


def _band_threshold_ssmgnet(band: int = 9, threshold: float = 0.6) -> torch.nn.Module:
    """SSMGNet (width 1) computing "clean glacier where band > threshold, else background"."""
    model = create_model("ssmgnet", in_bands=10, num_classes=3, width=1, atten_kernel=1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for stage in (model.stage2, model.stage3, model.stage4):
            stage[0].weight[:, 0, 1, 1] = 1.0  # pass the first channel on (BatchNorm at its identity start)
            stage[1].weight.fill_(1.0)
        model.stage1[0].weight[0, band, 1, 1] = 1.0
        model.stage1[1].weight.fill_(1.0)
        # attention conv = 0: w4 = sigmoid(0) = 0.5, so the head sees half the band value
        model.final.weight[1, 0] = 20.0
        model.final.bias.copy_(torch.tensor([0.0, -20.0 * 0.5 * threshold, -100.0]))
    return model.eval()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure peak memory")
def test_memory_does_not_grow_with_the_scene(tmp_path: Path, shared_data: Path) -> None:
    tile = open_cube(shared_data / "glacier" / "images" / "1.tif").data.astype(np.float32)
    data = {"bands": 10, "class_names": ["background", "clean_glacier", "debris_glacier"],
            "normalization": create_normalizer("none").to_dict()}  # fmt: skip
    export_model(_band_threshold_ssmgnet(), tmp_path / "model", task="segmentation", data=data)
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
