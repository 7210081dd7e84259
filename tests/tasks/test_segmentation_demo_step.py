"""The segmentation demo step: trains briefly on glacier tile 1, maps tile 2 (GeoTIFF, shapefile, PNG)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

import hsikit.data.paths
from hsikit.demo import DemoContext, default_demo_steps
from hsikit.demo_steps.segmentation import STEPS


def _context(tmp_path: Path, lines: list[str]) -> DemoContext:
    return DemoContext(scene=None, output_dir=tmp_path, echo=lines.append)  # type: ignore[arg-type]


def test_the_step_maps_a_glacier_tile(shared_data: Path, tmp_path: Path) -> None:
    assert STEPS[0] in default_demo_steps()
    lines: list[str] = []
    files = STEPS[0].run(_context(tmp_path, lines))
    names = {path.name for path in files}
    assert {"seg_glacier_2_class.tif", "seg_glacier_2.png", "seg_glacier_2_class.shp"} <= names
    assert all(path.parent == tmp_path / "segmentation" and path.is_file() for path in files)
    with rasterio.open(tmp_path / "segmentation" / "seg_glacier_2_class.tif") as classes, rasterio.open(
        shared_data / "glacier" / "images" / "2.tif"
    ) as source:
        assert classes.crs == source.crs and classes.transform == source.transform
        assert set(np.unique(classes.read(1))) <= {0, 1, 2}
    polygons = gpd.read_file(tmp_path / "segmentation" / "seg_glacier_2_class.shp")
    assert polygons.crs.to_epsg() == 32647 and set(polygons.class_name) <= {"clean_glacier", "debris_glacier"}
    assert any("mIoU" in line for line in lines)


def test_the_step_skips_without_the_glacier_tiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hsikit.data.paths, "shared_data_dir", lambda: None)
    lines: list[str] = []
    assert STEPS[0].run(_context(tmp_path, lines)) == []
    assert "skipped" in lines[0]
