"""Strip-by-strip vectorisation gives exactly the polygons of whole-raster polygonisation."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from hsikit.cube import Window
from hsikit.errors import ConfigError, InvalidCubeError
from hsikit.inference.vectorize import vectorize_raster
from hsikit.io.geotiff import GeoTiffWriter
from hsikit.io.vector import polygonize

TRANSFORM = Affine(30.0, 0.0, 186555.0, 0.0, -30.0, 3298065.0)
NAMES = ["background", "clean_glacier", "debris_glacier", "water"]


def _class_raster(path: Path, rng: np.random.Generator, shape: tuple[int, int] = (150, 131)) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=shape), 3)
    classes = np.digitize(field, np.quantile(field, [0.45, 0.7, 0.9])).astype(np.uint8)
    classes[40:60, 30:70] = 1
    classes[45:55, 40:50] = 0  # a hole crossing strip edges
    classes[100:103, 5:9] = 255  # nodata
    with GeoTiffWriter(path, (1, *shape), np.uint8, crs="EPSG:32647", transform=TRANSFORM, nodata=255) as writer:
        writer.write_window(classes[None], Window(0, 0, *shape))
    return classes


def _signature(frame: gpd.GeoDataFrame) -> list[tuple[int, float, tuple[float, ...]]]:
    return sorted((int(c), round(float(a), 3), tuple(round(v, 3) for v in g.bounds))
                  for c, a, g in zip(frame.class_id, frame.area, frame.geometry))  # fmt: skip


@pytest.mark.parametrize("strip_rows", [3, 17, 500])
def test_strips_reproduce_whole_raster_polygons(tmp_path: Path, rng: np.random.Generator, strip_rows: int) -> None:
    classes = _class_raster(tmp_path / "classes.tif", rng)
    summary = vectorize_raster(tmp_path / "classes.tif", tmp_path / "polygons.gpkg", class_names=NAMES,
                               strip_rows=strip_rows, batch_features=40)  # fmt: skip
    written = gpd.read_file(tmp_path / "polygons.gpkg")
    masked = np.where(classes == 255, 0, classes)
    whole = polygonize(masked, TRANSFORM, "EPSG:32647", class_names=NAMES)
    assert _signature(written) == _signature(whole)
    for class_id in (1, 2, 3):
        difference = written[written.class_id == class_id].union_all().symmetric_difference(
            whole[whole.class_id == class_id].union_all()
        )
        assert difference.area == 0.0
    assert written.crs.to_epsg() == 32647 and summary.crs == "EPSG:32647"
    assert list(written.columns) == ["class_id", "class_name", "area", "geometry"]
    assert set(written.class_name) == {"clean_glacier", "debris_glacier", "water"}
    assert summary.polygons == len(written)
    assert summary.area_per_class[1] == pytest.approx(900.0 * int((classes == 1).sum()))


def test_min_area_shapefile_and_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    _class_raster(tmp_path / "classes.tif", rng)
    summary = vectorize_raster(tmp_path / "classes.tif", tmp_path / "big.shp", min_area=900.0 * 40, strip_rows=16,
                               batch_features=5)  # several appends to the shapefile
    frame = gpd.read_file(tmp_path / "big.shp")
    assert len(frame) == summary.polygons > 0 and frame.area.min() >= 900.0 * 40
    assert frame.crs.to_epsg() == 32647 and set(frame.class_name) <= {"class_1", "class_2", "class_3"}
    assert not list(tmp_path.glob(".big.shp.*"))  # the staging folder is gone
    with pytest.raises(ConfigError, match="extension"):
        vectorize_raster(tmp_path / "classes.tif", tmp_path / "out.txt")
    with GeoTiffWriter(tmp_path / "float.tif", (2, 4, 4), np.float32) as writer:
        writer.write_window(np.zeros((2, 4, 4), np.float32), Window(0, 0, 4, 4))
    with pytest.raises(InvalidCubeError, match="1 band"):
        vectorize_raster(tmp_path / "float.tif", tmp_path / "out.gpkg")
    assert not (tmp_path / "out.gpkg").exists()
