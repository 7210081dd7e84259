"""Result-folder conventions of ``hsikit viz``: what a file is, where targets are, which goes with which."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.errors import ConfigError, DataFileNotFoundError, LayoutError, ShapeMismatchError
from hsikit.io import save_cube, save_labels
from hsikit.viz.results import (
    load_cube,
    load_labels,
    open_result_folder,
    pair_scenes,
    per_scene_scores,
    scene_key,
    target_files,
)


@pytest.fixture(scope="module")
def scenes(reconstruction_set) -> dict[str, tuple[Cube, np.ndarray]]:
    target = reconstruction_set["target"]
    prediction = reconstruction_set["quadratic"]
    return {
        f"scene_{k}": (target[:, 30 * k : 30 * k + 30, :40], prediction[:, 30 * k : 30 * k + 30, :40])
        for k in range(4)
    }


def test_every_cube_format_is_read_and_paired(scenes, tmp_path: Path) -> None:
    results, targets = tmp_path / "method", tmp_path / "targets"
    formats = {"scene_0": ".npy", "scene_1": ".mat", "scene_2": ".tif", "scene_3": ".hdr"}
    for index, (name, (target, prediction)) in enumerate(scenes.items()):
        # targets: MATLAB v5 and v7.3 with cube (H x W x C), bands and norm_factor (the ARAD-1K layout)
        stored = target.replace(metadata={"norm_factor": 2.5})
        save_cube(stored, targets / f"{name}.mat", mat_format="v7.3" if index % 2 else "v5")
        suffix = formats[name]
        cube = Cube(prediction)  # predictions without wavelengths: taken from the target
        if suffix == ".npy":
            save_cube(cube, results / "hsi" / f"{name}_pred.npy", layout="HWC")  # H x W x C, as MST++ saves
        else:
            save_cube(cube, results / "hsi" / f"{name}{suffix}")
    save_cube(Cube(scenes["scene_0"][1]), results / "hsi" / "extra.npz")  # a prediction without a target
    result = open_result_folder(results)
    assert result.kind == "reconstruction" and result.name == "method"
    assert sorted(result.cubes) == ["extra", "scene_0_pred", "scene_1", "scene_2", "scene_3"]
    pairs = pair_scenes(result.cubes, target_files(targets, result))
    by_scene = {pair.scene: pair for pair in pairs}
    assert by_scene["scene_0_pred"].target == targets / "scene_0.mat" and by_scene["extra"].target is None
    for name, (target, prediction) in scenes.items():
        pair = next(p for p in pairs if scene_key(p.scene) == name)
        truth = load_cube(pair.target)
        assert truth.metadata["norm_factor"] == pytest.approx(2.5)
        np.testing.assert_allclose(truth.wavelengths, target.wavelengths)
        loaded = load_cube(pair.prediction, reference=truth)  # the .npy layout is told by the target's shape
        assert loaded.shape == (31, 30, 40)
        np.testing.assert_allclose(loaded.data, prediction, rtol=1e-6)
        np.testing.assert_allclose(loaded.wavelengths, target.wavelengths)
    with pytest.raises(LayoutError, match="layout"):
        load_cube(results / "hsi" / "scene_0_pred.npy")  # (30, 40, 31) alone is ambiguous


def test_roles_from_names_and_configs(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    predictions = folder / "predictions"
    predictions.mkdir(parents=True)
    labels = np.array([[1, 2], [2, 0]], dtype=np.uint8)
    save_labels(labels, predictions / "class_map.npy")
    save_labels(labels, predictions / "tile_7_clusters.npy")
    save_cube(Cube(np.ones((4, 2, 2))), predictions / "latent_tile_7.npy")
    save_cube(Cube(np.ones((3, 2, 2))), predictions / "tile_7_reconstruction.npy")
    save_cube(Cube(np.ones((3, 2, 2))), predictions / "tile_7_probabilities.npy")
    (folder / "metrics.json").write_text(json.dumps({
        "test": {"metrics": {"test/mrae": 0.1}, "per_scene": {"tile_7": {"mrae": 0.1, "sam": 2.0}}}}))
    (folder / "model").mkdir()
    (folder / "model" / "config.json").write_text(json.dumps({
        "format": "hsikit.model", "task": "autoencoder", "class_names": ["a", "b"],
        "wavelengths": [500.0, 600.0, 700.0], "extra": {"label_offset": 1}}))
    result = open_result_folder(folder)
    assert result.is_run and result.kind == "autoencoder" and result.class_names == ["a", "b"]
    assert result.class_maps == {"class_map": predictions / "class_map.npy"}
    assert result.cluster_maps == {"tile_7": predictions / "tile_7_clusters.npy"}
    assert result.latents == {"tile_7": predictions / "latent_tile_7.npy"}
    assert result.reconstructions == {"tile_7": predictions / "tile_7_reconstruction.npy"}
    assert not result.cubes  # probabilities are skipped
    assert result.per_scene_scores() == {"tile_7": {"mrae": 0.1, "sam": 2.0}}
    assert result.wavelengths == [500.0, 600.0, 700.0]
    # a folder config.json names the kind: unnamed files are then class maps
    plain = tmp_path / "segmentation"
    plain.mkdir()
    save_labels(labels, plain / "tile_1.tif")
    (plain / "config.json").write_text(json.dumps({"kind": "segmentation", "class_names": {"1": "ice", "2": "rock"},
                                                   "method": "U-Net"}))
    segmentation = open_result_folder(plain)
    assert segmentation.name == "U-Net" and segmentation.class_maps == {"tile_1": plain / "tile_1.tif"}
    assert segmentation.class_names == {1: "ice", 2: "rock"}
    np.testing.assert_array_equal(load_labels(plain / "tile_1.tif"), labels)


def test_scores_and_errors_name_the_fix(tmp_path: Path) -> None:
    assert per_scene_scores({"per_scene": {"a": {"mrae": 1, "note": "x"}}}) == {"a": {"mrae": 1.0}}
    with pytest.raises(DataFileNotFoundError, match="no such file"):
        open_result_folder(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"config.json': not valid JSON"):
        open_result_folder(tmp_path / "bad")
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"kind": "detection"}))
    with pytest.raises(ConfigError, match="unknown kind 'detection'"):
        open_result_folder(tmp_path / "bad")
    with pytest.raises(ShapeMismatchError, match=r"no prediction matches a target by name.*scene_01.npy"):
        pair_scenes({"a": tmp_path / "a.npy", "b": tmp_path / "b.npy"}, {"c": tmp_path / "c.mat", "d": tmp_path / "d"})
    assert scene_key("ARAD_1K_0901_crop") == "arad_1k_0901" and scene_key("x_pred_gt") == "x"
