"""``hsikit cluster run | eval | layout`` on a folder of .mat cubes with LabelMe annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hsikit.cli import main
from hsikit.commands.cluster import cluster_colours
from hsikit.data.synthetic import make_synthetic_scene
from hsikit.io.matlab import write_mat
from hsikit.metrics.clustering import clustering_scores, contingency_matrix, match_clusters
from hsikit.viz.maps import class_colour_table

WAVELENGTHS = np.arange(400.0, 1000.0, 25.0)


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scenes (v5 and v7.3 .mat, key ``cube``, (C, H, W)) with LabelMe halves and label rasters."""
    root = tmp_path_factory.mktemp("scenes")
    for folder in ("mat", "json", "labels"):
        (root / folder).mkdir()
    for index, version in enumerate(("v5", "v7.3")):
        scene = make_synthetic_scene(24, 30, WAVELENGTHS, n_endmembers=3, seed=index, endmember_seed=0,
                                     library="analytic", sharpness=10)  # fmt: skip
        write_mat(scene.cube, root / "mat" / f"s{index}.mat", format=version, key="cube", layout="CHW")
        np.save(root / "labels" / f"s{index}.npy", scene.labels)
        halves = [{"label": name, "shape_type": "rectangle", "points": [[x0, 0], [x1, 24]]}
                  for name, x0, x1 in (("left", 0, 15), ("right", 15, 30))]  # fmt: skip
        (root / "json" / f"s{index}.json").write_text(json.dumps({"imageHeight": 24, "imageWidth": 30, "shapes": halves}))
    return root


@pytest.fixture(scope="module")
def trained_run(scene_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "run"
    try:
        status = main([
            "cluster", "run", "--mat_dir", str(scene_folder / "mat"), "--json_dir", str(scene_folder / "json"),
            "--class-map", '{"left": 1, "right": 2}', "--out_dir", str(out), "--n_clusters", "3",
            "--embed_dim", "8", "--num_iters", "2", "--spectral-kernel-size", "3", "--epochs", "2", "--batch", "2",
            "--reuse_iter", "2", "--crop_h", "16", "--crop_w", "16", "--lr", "1e-3", "--no-progress",
            "--save_prediction",
        ])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert status == 0
    return out


def test_run_writes_a_run_folder_a_model_and_the_predictions(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (trained_run / "model" / "config.json").is_file() and (trained_run / "metrics.json").is_file()
    config = json.loads((trained_run / "model" / "config.json").read_text())
    assert config["task"] == "clustering" and config["bands"] == len(WAVELENGTHS)
    assert config["arguments"]["n_clusters"] == 3 and config["arguments"]["encoder_mode"] == "spectral"
    assert config["normalization"]["name"] == "standardize"
    fit = json.loads((trained_run / "metrics.json").read_text())["fit"]
    assert fit["monitor"] == "val/selection" and fit["global_step"] == 2 * 1 * 2  # epochs x batches x pairs
    for name in ("s0", "s1"):
        labels = np.load(trained_run / "predictions" / f"{name}.npy")
        assert labels.shape == (24, 30) and labels.min() >= 0 and labels.max() <= 2
        assert (trained_run / "predictions" / f"{name}.png").is_file()


def test_eval_scores_against_label_rasters_and_writes_json(trained_run: Path, scene_folder: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    report_path = tmp_path / "scores.json"
    status = main(["cluster", "eval", "--checkpoint_path", str(trained_run), "--mat_dir", str(scene_folder / "mat"),
                   "--label_dir", str(scene_folder / "labels"), "--output", str(report_path)])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "Hungarian alignment on all scenes together" in printed and "all scenes" in printed
    report = json.loads(report_path.read_text())
    # recompute from the saved maps (same model, same scenes): one pooled Hungarian mapping
    maps = [np.load(trained_run / "predictions" / f"s{i}.npy") for i in range(2)]
    truths = [np.load(scene_folder / "labels" / f"s{i}.npy") for i in range(2)]
    pooled = sum(contingency_matrix(m, t, 3, 4, ignore_index=0) for m, t in zip(maps, truths))
    mapping = match_clusters(pooled, ignore_index=0)
    assert report["mapping"] == mapping.tolist()
    expected = clustering_scores(np.concatenate([m.ravel() for m in maps]), np.concatenate([t.ravel() for t in truths]),
                                 num_clusters=3, num_classes=4, ignore_index=0, mapping=mapping)  # fmt: skip
    assert report["overall"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert report["overall"]["nmi"] == pytest.approx(expected["nmi"])
    assert set(report["scenes"]) == {"s0", "s1"}


def test_eval_with_a_manual_mapping_and_with_the_mapping_of_one_scene(trained_run: Path, scene_folder: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    common = ["--checkpoint_path", str(trained_run / "model"), "--mat_dir", str(scene_folder / "mat")]
    assert main(["cluster", "eval", *common, "--json_dir", str(scene_folder / "json"), "--class-map",
                 '{"left": 1, "right": 2}', "--manual-mapping", "{1: [0], 2: [1, 2]}"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "manual mapping" in printed and "cluster -> class: {0: 1, 1: 2, 2: 2}" in printed
    assert main(["cluster", "eval", *common, "--label_dir", str(scene_folder / "labels"), "--mapping-scene", "s0"]) == 0
    assert "Hungarian alignment on scene s0, applied to every scene" in capsys.readouterr().out
    # a manual mapping that forgets a cluster is refused with the fix
    assert main(["cluster", "eval", *common, "--label_dir", str(scene_folder / "labels"),
                 "--manual-mapping", '{"1": [0, 1]}']) == 2  # fmt: skip
    assert "clusters [2] are not mapped" in capsys.readouterr().err


def test_layout_writes_pictures_and_label_maps(trained_run: Path, scene_folder: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    common = ["--checkpoint_path", str(trained_run / "model"), "--mat_dir", str(scene_folder / "mat")]
    assert main(["cluster", "layout", *common, "--out_dir", str(tmp_path / "a"), "--layout_image", "--layout_pth"]) == 0
    labels = np.load(tmp_path / "a" / "s1.npy")
    np.testing.assert_array_equal(labels, np.load(trained_run / "predictions" / "s1.npy"))
    picture = np.asarray(Image.open(tmp_path / "a" / "s1.png").convert("RGB"))
    table = np.round(class_colour_table(3, zero_is_class=True) * 255).astype(np.uint8)
    np.testing.assert_array_equal(picture, table[labels])
    assert main(["cluster", "layout", *common, "--out_dir", str(tmp_path / "b"), "--layout_pth", "--transpose"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "s1.npy"), labels.T)
    assert main(["cluster", "layout", *common, "--out_dir", str(tmp_path / "c")]) == 2
    assert "--layout-image" in capsys.readouterr().err


def test_cluster_pictures_have_a_colour_for_any_number_of_clusters() -> None:
    labels = np.arange(40).reshape(4, 10)
    labels[0, 0] = -1
    picture = cluster_colours(labels, 40)
    assert picture.shape == (4, 10, 3) and tuple(picture[0, 0]) == (0, 0, 0)
    assert len({tuple(c) for c in picture.reshape(-1, 3)[1:]}) == 39  # the reference's palette stopped at 8


def test_a_model_of_another_task_is_refused(tmp_path: Path, scene_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hsikit.engine.export import export_model
    from hsikit.models import create_model

    export_model(create_model("spectral_mlp", in_bands=len(WAVELENGTHS), num_classes=3), tmp_path / "m",
                 task="classification")  # fmt: skip
    status = main(["cluster", "layout", "--checkpoint_path", str(tmp_path / "m"), "--mat_dir",
                   str(scene_folder / "mat"), "--out_dir", str(tmp_path / "o"), "--layout_image"])  # fmt: skip
    assert status == 2 and "needs a model trained by 'hsikit cluster run'" in capsys.readouterr().err


def test_layout_of_a_georeferenced_cube_keeps_its_crs_and_transform(trained_run: Path, tmp_path: Path) -> None:
    from affine import Affine

    from hsikit.cube import Cube
    from hsikit.io import open_cube, save_cube

    scene = make_synthetic_scene(20, 26, WAVELENGTHS, n_endmembers=3, seed=5, endmember_seed=0, library="analytic")
    transform = Affine(30.0, 0.0, 186555.0, 0.0, -30.0, 3298065.0)
    folder = tmp_path / "tiles"
    folder.mkdir()
    save_cube(Cube(scene.cube.data, crs="EPSG:32647", transform=transform), folder / "tile.tif")
    assert main(["cluster", "layout", "--checkpoint_path", str(trained_run), "--mat_dir", str(folder),
                 "--out_dir", str(tmp_path / "out"), "--layout_pth"]) == 0  # fmt: skip
    raster = open_cube(tmp_path / "out" / "tile_clusters.tif")
    assert raster.crs == "EPSG:32647" and raster.transform == transform and raster.nodata == 255
    np.testing.assert_array_equal(raster.data[0].astype(np.int64), np.load(tmp_path / "out" / "tile.npy"))
