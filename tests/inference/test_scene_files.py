"""predict_scene from and to real files (GeoTIFF, ENVI) through hsikit.io."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS

from hsikit import Cube
from hsikit.inference import predict_scene
from hsikit.io import open_cube, open_reader, save_cube

OPTIONS = {"tile": 96, "overlap": 32, "batch_size": 2, "progress": False}


@pytest.fixture
def glacier_tif(shared_data: Path) -> Path:
    return shared_data / "glacier" / "images" / "1.tif"


def test_geotiff_in_geotiff_and_envi_out(glacier_tif: Path, tmp_path: Path, conv_stack) -> None:
    model = conv_stack(bands=10, outputs=3, layers=3, seed=11)
    source = open_cube(glacier_tif)
    expected = predict_scene(model, source, output_kind="probabilities", **OPTIONS)

    classes_path = predict_scene(
        model, glacier_tif, tmp_path / "classes.tif", output_kind="classes",
        probabilities_output=tmp_path / "probabilities.hdr", class_names=["clean", "debris", "background"], **OPTIONS,
    )
    assert classes_path == tmp_path / "classes.tif"
    with open_reader(classes_path) as reader:
        assert reader.crs == source.crs == "EPSG:32647"
        assert reader.transform == source.transform
        assert reader.dtype == np.uint8 and reader.nodata == 255
        np.testing.assert_array_equal(reader.read_array()[0], expected.data.argmax(axis=0))

    probabilities = open_cube(tmp_path / "probabilities.hdr")
    assert CRS.from_user_input(probabilities.crs) == CRS.from_user_input(source.crs)
    assert probabilities.transform.almost_equals(source.transform, precision=1e-9)
    assert probabilities.band_names == ["probability_clean", "probability_debris", "probability_background"]
    np.testing.assert_allclose(probabilities.data, expected.data, rtol=0, atol=1e-6)
    # nothing but the finished files is left in the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "probabilities.hdr", "probabilities.img"]


def test_envi_in_regression_geotiff_out(glacier_tif: Path, tmp_path: Path, conv_stack) -> None:
    source = open_cube(glacier_tif)
    save_cube(source, tmp_path / "scene.hdr")
    model = conv_stack(bands=10, outputs=2, layers=2, seed=12)
    predict_scene(model, tmp_path / "scene.hdr", tmp_path / "regression.tif", **OPTIONS)
    written = open_cube(tmp_path / "regression.tif")
    assert written.crs == "EPSG:32647" and written.transform == source.transform
    expected = predict_scene(model, source, **OPTIONS)
    np.testing.assert_allclose(written.data, expected.data, rtol=0, atol=1e-6)


def test_nodata_of_a_file_reaches_the_class_raster(glacier_tif: Path, tmp_path: Path, conv_stack) -> None:
    source = open_cube(glacier_tif)
    data = source.to_numpy()
    data[:, 100:140, 0:30] = -9999.0
    save_cube(source.replace(data=data, nodata=-9999.0), tmp_path / "holes.tif")
    model = conv_stack(bands=10, outputs=3, layers=2, seed=13)
    predict_scene(model, tmp_path / "holes.tif", tmp_path / "classes.tif", output_kind="classes", **OPTIONS)
    classes = open_cube(tmp_path / "classes.tif")
    assert classes.nodata == 255
    hole = np.zeros((256, 256), dtype=bool)
    hole[100:140, 0:30] = True
    np.testing.assert_array_equal(classes.nodata_mask, hole)
    assert (classes.data[0, ~hole] < 3).all()


def test_failed_run_leaves_no_output_file(glacier_tif: Path, tmp_path: Path) -> None:
    calls = {"count": 0}

    def crashes_on_the_third_batch(batch):
        calls["count"] += 1
        if calls["count"] == 3:
            raise RuntimeError("simulated crash")
        return batch[:, :2]

    with pytest.raises(RuntimeError, match="simulated crash"):
        predict_scene(crashes_on_the_third_batch, glacier_tif, tmp_path / "out.tif", **OPTIONS)
    assert list(tmp_path.iterdir()) == []


def test_in_memory_cube_source_keeps_its_georeference(glacier_tif: Path, conv_stack) -> None:
    source = open_cube(glacier_tif)
    result = predict_scene(conv_stack(bands=10, outputs=2, layers=1), source, **OPTIONS)
    assert isinstance(result, Cube)
    assert result.crs == source.crs and result.transform == source.transform
