"""Class raster → polygons → GeoPackage / shapefile."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from hsikit import Cube
from hsikit.errors import InvalidCubeError, UnsupportedFormatError
from hsikit.io.vector import polygonize, vectorize, write_vector

# 30 m pixels, top-left corner at (500000 E, 3000000 N) in UTM zone 47N
TRANSFORM = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 3000000.0)
NAMES = ["background", "forest", "water"]


def _pixel_box(row0: int, col0: int, row1: int, col1: int):
    """The map-coordinate rectangle covering pixel rows row0..row1-1 and columns col0..col1-1."""
    return box(500000.0 + 30 * col0, 3000000.0 - 30 * row1, 500000.0 + 30 * col1, 3000000.0 - 30 * row0)


@pytest.fixture
def two_rectangles() -> np.ndarray:
    classes = np.zeros((20, 30), dtype=np.uint8)
    classes[2:6, 3:8] = 1  # 4 x 5 pixels = 20 * 900 m2
    classes[10:18, 10:25] = 2  # 8 x 15 pixels = 120 * 900 m2
    return classes


def _check_rectangles(frame: gpd.GeoDataFrame) -> None:
    assert list(frame.columns) == ["class_id", "class_name", "area", "geometry"]
    assert frame.crs.to_epsg() == 32647
    rows = frame.sort_values("class_id").reset_index(drop=True)
    assert rows["class_id"].tolist() == [1, 2]
    assert rows["class_name"].tolist() == ["forest", "water"]
    assert rows["area"].tolist() == [18000.0, 108000.0]
    assert rows.geometry[0].equals(_pixel_box(2, 3, 6, 8))
    assert rows.geometry[1].equals(_pixel_box(10, 10, 18, 25))


def test_polygons_of_two_rectangles(two_rectangles: np.ndarray) -> None:
    frame = polygonize(two_rectangles, TRANSFORM, "EPSG:32647", class_names=NAMES)
    _check_rectangles(frame)


@pytest.mark.parametrize("extension", [".gpkg", ".shp"])
def test_written_file_round_trips(tmp_path: Path, two_rectangles: np.ndarray, extension: str) -> None:
    target = tmp_path / f"classes{extension}"
    cube = Cube(two_rectangles, crs="EPSG:32647", transform=TRANSFORM)
    written = vectorize(cube, target, class_names=NAMES)
    _check_rectangles(written)
    _check_rectangles(gpd.read_file(target))
    # only the finished file(s) remain, no temporary folder
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    if extension == ".shp":
        assert {p.suffix for p in tmp_path.iterdir()} >= {".shp", ".shx", ".dbf", ".prj"}


def test_min_area_removes_small_blob(two_rectangles: np.ndarray) -> None:
    two_rectangles[0, 29] = 2  # a lone 900 m2 pixel of class 2
    everything = polygonize(two_rectangles, TRANSFORM, "EPSG:32647")
    assert sorted(everything["area"].tolist()) == [900.0, 18000.0, 108000.0]
    filtered = polygonize(two_rectangles, TRANSFORM, "EPSG:32647", min_area=1000.0)
    assert sorted(filtered["area"].tolist()) == [18000.0, 108000.0]
    assert set(filtered["class_name"]) == {"class_1", "class_2"}


def test_dissolve_merges_each_class(two_rectangles: np.ndarray) -> None:
    two_rectangles[0:2, 27:30] = 1  # a second, separate forest patch of 6 pixels
    frame = polygonize(two_rectangles, TRANSFORM, "EPSG:32647", dissolve=True, class_names=NAMES)
    assert frame["class_id"].tolist() == [1, 2]
    forest = frame.iloc[0]
    assert forest.geometry.geom_type == "MultiPolygon" and len(forest.geometry.geoms) == 2
    assert forest["area"] == 18000.0 + 6 * 900.0


def test_background_and_nodata_options(two_rectangles: np.ndarray) -> None:
    two_rectangles[19, :] = 255
    kept = polygonize(two_rectangles, TRANSFORM, "EPSG:32647", background=None, nodata=255)
    background_area = kept.loc[kept["class_id"] == 0, "area"].sum()
    assert background_area == (20 * 30 - 20 - 120 - 30) * 900.0
    assert 255 not in kept["class_id"].tolist()
    both_dropped = polygonize(two_rectangles, TRANSFORM, "EPSG:32647", background=[0, 1], nodata=255)
    assert both_dropped["class_id"].tolist() == [2]


def test_real_label_map_areas_match_pixel_counts(shared_data: Path, tmp_path: Path) -> None:
    import rasterio

    label_file = shared_data / "glacier" / "labels" / "1.tif"
    with rasterio.open(label_file) as dataset:
        labels = dataset.read(1)
        transform = dataset.transform
    pixel_area = abs(transform.a * transform.e)
    frame = vectorize(
        label_file, tmp_path / "glacier.gpkg", class_names={1: "clean glacier", 2: "debris-covered glacier"}
    )
    for class_id, name in ((1, "clean glacier"), (2, "debris-covered glacier")):
        rows = frame[frame["class_id"] == class_id]
        assert (rows["class_name"] == name).all()
        assert rows["area"].sum() == pytest.approx(np.count_nonzero(labels == class_id) * pixel_area, rel=1e-9)
    assert 0 not in frame["class_id"].tolist()
    read_back = gpd.read_file(tmp_path / "glacier.gpkg")
    assert read_back.crs.to_epsg() == 32647 and len(read_back) == len(frame)


def test_overwriting_a_shapefile_replaces_all_parts(tmp_path: Path, two_rectangles: np.ndarray) -> None:
    target = tmp_path / "out.shp"
    write_vector(polygonize(two_rectangles, TRANSFORM, "EPSG:32647"), target)
    stale_index = tmp_path / "out.qix"
    stale_index.write_bytes(b"an old spatial index")
    write_vector(polygonize(two_rectangles, TRANSFORM, "EPSG:32647", background=[0, 1]), target)
    assert not stale_index.exists()
    assert gpd.read_file(target)["class_id"].tolist() == [2]


def test_failed_write_leaves_nothing(tmp_path: Path, two_rectangles: np.ndarray, monkeypatch) -> None:
    frame = polygonize(two_rectangles, TRANSFORM, "EPSG:32647")

    def crash_after_partial_write(self, path, **options):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", crash_after_partial_write)
    with pytest.raises(OSError, match="disk full"):
        write_vector(frame, tmp_path / "out.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidCubeError, match="must hold integers, got float32"):
        polygonize(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(InvalidCubeError, match=r"\(H, W\) or \(1, H, W\); got shape \(3, 4, 4\)"):
        polygonize(np.zeros((3, 4, 4), dtype=np.uint8))
    with pytest.raises(UnsupportedFormatError, match="'.kml'"):
        write_vector(polygonize(np.ones((2, 2), dtype=np.uint8)), tmp_path / "out.kml")


def test_empty_result_is_a_valid_layer(tmp_path: Path) -> None:
    frame = polygonize(np.zeros((5, 5), dtype=np.uint8), TRANSFORM, "EPSG:32647")
    assert len(frame) == 0 and list(frame.columns) == ["class_id", "class_name", "area", "geometry"]
    write_vector(frame, tmp_path / "empty.gpkg")
    assert len(gpd.read_file(tmp_path / "empty.gpkg")) == 0
