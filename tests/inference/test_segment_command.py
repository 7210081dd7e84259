"""``hsikit segment`` on a real glacier tile: outputs, georeference, agreement of the two paths, bad input."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

from hsikit.cli import main
from hsikit.cube import Cube
from hsikit.engine.export import export_model, load_model
from hsikit.inference.segmentation import GLACIER_PALETTE, class_palette, colorize
from hsikit.io import open_cube, save_cube
from hsikit.models import create_model
from hsikit.spectral.normalize import create_normalizer

CLASS_NAMES = ["background", "clean_glacier", "debris_glacier"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SSMGNet (seeded random weights; the outputs' plumbing is under test, not its skill)."""
    torch.manual_seed(3)
    model = create_model("ssmgnet", in_bands=10, num_classes=3, width=4, atten_kernel=3)
    folder = tmp_path_factory.mktemp("model")
    data = {"bands": 10, "class_names": CLASS_NAMES, "normalization": create_normalizer("none").to_dict()}
    export_model(model, folder, task="segmentation", data=data)
    return folder


@pytest.fixture
def tile(shared_data: Path) -> Path:
    return shared_data / "glacier" / "images" / "2.tif"


def test_a_tile_gets_every_output(tmp_path: Path, model_dir: Path, tile: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(["segment", "--model", str(model_dir), "--input", str(tile), "--output-dir", str(tmp_path),
                   "--vector", "shp", "--gradcam-class", "2"])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "in one pass" in printed and "gradcam class 2" in printed

    model = load_model(model_dir)
    image = torch.from_numpy(open_cube(tile).data.astype(np.float32))[None]
    with torch.no_grad():
        output = model(image)
    expected = output.logits[0].argmax(0).numpy()
    with rasterio.open(tile) as source, rasterio.open(tmp_path / "seg_2_class.tif") as classes:
        np.testing.assert_array_equal(classes.read(1), expected)
        assert classes.crs == source.crs and classes.crs.to_epsg() == 32647
        assert classes.transform == source.transform and classes.nodata == 255 and classes.dtypes[0] == "uint8"
    with rasterio.open(tmp_path / "seg_2_attention.tif") as attention:
        np.testing.assert_allclose(attention.read(1), output.attention[0, 0].numpy(), atol=1e-6)
        assert attention.crs.to_epsg() == 32647
    png = np.asarray(Image.open(tmp_path / "seg_2.png"))
    np.testing.assert_array_equal(png, np.asarray(GLACIER_PALETTE, dtype=np.uint8)[expected])
    for name in ("seg_2_attention.png", "seg_2_gradcam_2.png", "seg_2_gradcam_2.tif"):
        assert (tmp_path / name).is_file()
    assert not (tmp_path / "seg_2_gradcam_1.png").exists()
    polygons = gpd.read_file(tmp_path / "seg_2_class.shp")
    assert polygons.crs.to_epsg() == 32647
    assert set(polygons.class_name) <= {"clean_glacier", "debris_glacier"}
    total = polygons.groupby("class_id").area.sum().to_dict()
    for class_id, area in total.items():
        assert area == pytest.approx(900.0 * int((expected == class_id).sum()))


def test_the_streaming_path_agrees_with_one_pass(tmp_path: Path, model_dir: Path, tile: Path) -> None:
    assert main(["segment", "--model", str(model_dir), "--input", str(tile), "--output-dir", str(tmp_path / "a"),
                 "--no-gradcam"]) == 0  # fmt: skip
    assert main(["segment", "--model", str(model_dir), "--input", str(tile), "--output-dir", str(tmp_path / "b"),
                 "--mode", "huge", "--tile", "96", "--overlap", "32", "--vector", "gpkg", "--no-progress"]) == 0  # fmt: skip
    whole = open_cube(tmp_path / "a" / "seg_2_class.tif").data[0]
    tiled = open_cube(tmp_path / "b" / "seg_2_class.tif").data[0]
    # the receptive-field radius (5 px) is inside the blending margin (8 px): away from the scene
    # border, where the one-pass run pads with zeros and the tiler reflects, the maps agree
    assert (whole[8:-8, 8:-8] == tiled[8:-8, 8:-8]).mean() > 0.999
    assert gpd.read_file(tmp_path / "b" / "seg_2_class.gpkg").crs.to_epsg() == 32647
    preview = np.asarray(Image.open(tmp_path / "b" / "seg_2.png"))
    assert preview.shape == (256, 256, 3)


def test_bad_input_is_refused_with_the_fix(
    tmp_path: Path, model_dir: Path, tile: Path, capsys: pytest.CaptureFixture
) -> None:
    seven = open_cube(tile)[:7]
    save_cube(Cube(seven.data, crs=seven.crs, transform=seven.transform), tmp_path / "seven.tif")
    status = main(["segment", "--model", str(model_dir), "--input", str(tmp_path / "seven.tif"),
                   "--output-dir", str(tmp_path / "out")])  # fmt: skip
    assert status == 2
    error = capsys.readouterr().err
    assert "trained on 10 bands, the input has 7" in error and "resample" in error
    assert not (tmp_path / "out").exists()
    assert main(["segment", "--model", str(model_dir), "--input", str(tile), "--output-dir", str(tmp_path),
                 "--palette", "{not json"]) == 2  # fmt: skip
    assert "--palette must be JSON" in capsys.readouterr().err


def test_palette_and_colours() -> None:
    colours = class_palette(5, {4: (1, 2, 3)})
    assert colours[:3].tolist() == [list(c) for c in GLACIER_PALETTE] and colours[4].tolist() == [1, 2, 3]
    rgb = colorize(np.array([[0, 2], [255, 4]]), colours, nodata=255)
    assert rgb[1, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [0, 153, 0]
