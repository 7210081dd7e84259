"""``hsikit cluster``: --save-interval snapshots, --full-load-ds (memory vs disk) and the layout's --img-dir / --source."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from hsikit.cli import main
from hsikit.commands.cluster import (
    SIDE_GAP,
    _scene_source,
    build_run_datamodule,
    cluster_colours,
    layout_picture,
    register,
    source_rgb,
)
from hsikit.data.clustering_datamodule import read_cube_file
from hsikit.data.synthetic import make_synthetic_scene
from hsikit.engine.export import load_model
from hsikit.errors import ConfigError, HsikitError
from hsikit.io.matlab import write_mat

WAVELENGTHS = np.arange(400.0, 1000.0, 25.0)
HEIGHT, WIDTH = 20, 26


def _write_scenes(folder: Path, count: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        scene = make_synthetic_scene(HEIGHT, WIDTH, WAVELENGTHS, n_endmembers=3, seed=index, endmember_seed=0,
                                     library="analytic", sharpness=10)  # fmt: skip
        write_mat(scene.cube, folder / f"s{index}.mat", format="v5", key="cube", layout="CHW")
    return folder


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_scenes(tmp_path_factory.mktemp("scenes") / "mat")


def _train(scene_folder: Path, out: Path, *extra: str) -> int:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main([
            "cluster", "run", "--mat_dir", str(scene_folder), "--out_dir", str(out), "--n_clusters", "3",
            "--embed_dim", "8", "--num_iters", "2", "--spectral-kernel-size", "3", "--batch", "2",
            "--reuse_iter", "2", "--crop_h", "12", "--crop_w", "12", "--lr", "1e-2", "--no-progress", *extra,
        ])  # fmt: skip
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def snapshot_run(scene_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert _train(scene_folder, out, "--epochs", "3", "--save_interval", "2") == 0
    return out


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["cluster", *argv])


# ---------------------------------------------------------------------------- --save-interval
def test_save_interval_writes_a_snapshot_every_n_epochs_and_a_final_one(snapshot_run: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    folder = snapshot_run / "snapshots"
    # 3 epochs, interval 2: epoch 2 only (epochs counted from 1 as in the reference), plus final
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_2", "final"]
    for name in ("epoch_2", "final"):
        model = load_model(folder / name)
        assert model.hsikit_config.task == "clustering" and int(model.n_clusters) == 3
        assert json.loads((folder / name / "config.json").read_text())["normalization"]["name"] == "standardize"
        labels = np.load(folder / name / "cluster_map.npy")
        assert labels.shape == (HEIGHT, WIDTH) and labels.min() >= 0 and labels.max() <= 2
        picture = np.asarray(Image.open(folder / name / "cluster_map.png").convert("RGB"))
        np.testing.assert_array_equal(picture, cluster_colours(labels, 3))
    # the snapshot of epoch 2 holds the weights of that moment: epoch 3 trained on, so the final weights differ
    middle = load_file(folder / "epoch_2" / "model.safetensors")
    final = load_file(folder / "final" / "model.safetensors")
    assert middle.keys() == final.keys()
    assert any(not torch.equal(middle[key], final[key]) for key in middle if middle[key].is_floating_point())


def test_a_snapshot_is_a_model_the_layout_command_reads(snapshot_run: Path, scene_folder: Path, tmp_path: Path) -> None:
    # the reference's run_layout.sh loops over the saved checkpoints with the layout script
    assert main(["cluster", "layout", "--checkpoint_path", str(snapshot_run / "snapshots" / "epoch_2"),
                 "--mat_dir", str(scene_folder), "--out_dir", str(tmp_path), "--layout_pth"]) == 0  # fmt: skip
    assert np.load(tmp_path / "s0.npy").shape == (HEIGHT, WIDTH)


def test_save_interval_zero_writes_no_snapshot_and_negative_is_refused(scene_folder: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert _train(scene_folder, tmp_path / "none", "--epochs", "1", "--save_interval", "0") == 0
    assert not (tmp_path / "none" / "snapshots").exists() and (tmp_path / "none" / "model").is_dir()
    assert _train(scene_folder, tmp_path / "bad", "--epochs", "1", "--save_interval", "-1") == 2
    assert "--save-interval must be >= 0" in capsys.readouterr().err


# ---------------------------------------------------------------------------- --full-load-ds
def test_full_load_holds_the_scenes_in_memory_and_streaming_reads_the_files(tmp_path: Path) -> None:
    folder = _write_scenes(tmp_path / "mat")
    common = ["run", "--mat_dir", str(folder), "--out_dir", str(tmp_path / "o"), "--ds_n_workers", "2"]
    loaded = build_run_datamodule(_parse(*common, "--full_load_ds"))
    streamed = build_run_datamodule(_parse(*common))
    assert loaded.full_load and loaded.num_workers == 0  # the reference also drops the workers
    assert not streamed.full_load and streamed.num_workers == 2
    assert loaded.datasets["train"].cache is not None and streamed.datasets["train"].cache is None
    before = loaded.datasets["train"][1]["cube"].clone()
    np.testing.assert_allclose(streamed.datasets["train"][1]["cube"].numpy(), before.numpy(), rtol=1e-6)
    # replace scene s1 on disk by a brighter copy: only the streaming dataset sees the change
    cube = read_cube_file(folder / "s1.mat")
    write_mat(type(cube)(np.asarray(cube.data) * 2.0 + 1.0), folder / "s1.mat", format="v5", key="cube", layout="CHW")
    assert torch.equal(loaded.datasets["train"][1]["cube"], before)
    assert not torch.allclose(streamed.datasets["train"][1]["cube"], before)


def test_full_load_and_prefetch_exclude_each_other(tmp_path: Path) -> None:
    folder = _write_scenes(tmp_path / "mat", count=1)
    with pytest.raises(ConfigError, match="choose one"):
        build_run_datamodule(_parse("run", "--mat_dir", str(folder), "--out_dir", "x", "--full_load_ds", "--prefetch"))


def test_eval_and_layout_read_every_scene_up_front_only_with_full_load(tmp_path: Path) -> None:
    folder = _write_scenes(tmp_path / "mat")
    common = ["layout", "--checkpoint_path", "m", "--mat_dir", str(folder), "--out_dir", "o", "--layout_pth"]
    loaded = _scene_source(_parse(*common, "--full_load_ds"), labels=False)
    streamed = iter(_scene_source(_parse(*common), labels=False))
    assert isinstance(loaded, list)
    assert next(streamed).name == "s0"  # the files are listed and the first scene read
    (folder / "s1.mat").unlink()  # then s1 goes away before it is used
    assert [scene.name for scene in loaded] == ["s0", "s1"]  # already in memory
    with pytest.raises((HsikitError, OSError)):  # streaming reads s1 only now, and it is gone
        next(streamed)


# ---------------------------------------------------------------------------- layout --img-dir / --source
@pytest.fixture(scope="module")
def layout_inputs(snapshot_run: Path, scene_folder: Path) -> list[str]:
    return ["cluster", "layout", "--checkpoint_path", str(snapshot_run / "model"), "--mat_dir", str(scene_folder)]


def test_img_dir_receives_the_pictures_and_out_dir_the_label_maps(layout_inputs: list[str], tmp_path: Path) -> None:
    out, pictures = tmp_path / "maps", tmp_path / "pictures"
    assert main([*layout_inputs, "--out_dir", str(out), "--img_dir", str(pictures), "--layout_image", "--layout_pth"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["s0.npy", "s1.npy"]
    assert sorted(p.name for p in pictures.iterdir()) == ["s0.png", "s1.png"]
    labels = np.load(out / "s0.npy")
    np.testing.assert_array_equal(np.asarray(Image.open(pictures / "s0.png").convert("RGB")), cluster_colours(labels, 3))
    # without --img-dir the pictures go to --out-dir, as in the reference
    assert main([*layout_inputs, "--out_dir", str(tmp_path / "same"), "--layout_image"]) == 0
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["s0.png", "s1.png"]


def test_source_side_and_overlay_draw_the_scene_with_its_clusters(layout_inputs: list[str], scene_folder: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    labels_dir = tmp_path / "labels"
    assert main([*layout_inputs, "--out_dir", str(labels_dir), "--layout_pth"]) == 0
    labels = np.load(labels_dir / "s1.npy")
    cube = read_cube_file(scene_folder / "s1.mat")
    source = source_rgb(cube, [20, 10, 2])
    colours = cluster_colours(labels, 3)
    bands = ["--rgb-bands", "20", "10", "2"]
    assert main([*layout_inputs, "--out_dir", str(tmp_path / "side"), "--layout_image", "--source", "side", *bands]) == 0
    side = np.asarray(Image.open(tmp_path / "side" / "s1.png").convert("RGB"))
    assert side.shape == (HEIGHT, 2 * WIDTH + SIDE_GAP, 3)
    np.testing.assert_array_equal(side[:, :WIDTH], source)
    assert (side[:, WIDTH : WIDTH + SIDE_GAP] == 128).all()
    np.testing.assert_array_equal(side[:, WIDTH + SIDE_GAP :], colours)
    assert main([*layout_inputs, "--out_dir", str(tmp_path / "over"), "--layout_image", "--source", "overlay", *bands]) == 0
    over = np.asarray(Image.open(tmp_path / "over" / "s1.png").convert("RGB")).astype(int)
    expected = np.round(0.5 * source.astype(np.float32) + 0.5 * colours.astype(np.float32)).astype(int)
    np.testing.assert_array_equal(over, expected)
    # orientation options turn the source picture with the map
    assert main([*layout_inputs, "--out_dir", str(tmp_path / "t"), "--layout_image", "--source", "side", "--transpose",
                 *bands]) == 0  # fmt: skip
    turned = np.asarray(Image.open(tmp_path / "t" / "s1.png").convert("RGB"))
    np.testing.assert_array_equal(turned[:, :HEIGHT], source.transpose(1, 0, 2))
    np.testing.assert_array_equal(turned[:, HEIGHT + SIDE_GAP :], cluster_colours(labels.T, 3))


def test_source_options_are_checked(layout_inputs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*layout_inputs, "--out_dir", str(tmp_path), "--layout_pth", "--source", "side"]) == 2
    assert "add --layout-image" in capsys.readouterr().err
    assert main([*layout_inputs, "--out_dir", str(tmp_path), "--layout_image", "--rgb-bands", "1", "2", "3"]) == 2
    assert "add --source side or --source overlay" in capsys.readouterr().err


def test_layout_picture_by_hand() -> None:
    labels = np.array([[0, 1], [-1, 2]])
    source = np.full((2, 2, 3), 100, dtype=np.uint8)
    colours = cluster_colours(labels, 3)
    over = layout_picture(labels, 3, source, "overlay", alpha=0.25)
    np.testing.assert_array_equal(over[0, 0], np.round(0.75 * 100 + 0.25 * colours[0, 0].astype(float)))
    np.testing.assert_array_equal(over[1, 0], [100, 100, 100])  # nodata shows the source
    with pytest.raises(HsikitError, match="source picture must be"):
        layout_picture(labels, 3, source[:1], "side")
    with pytest.raises(ConfigError, match="source mode"):
        layout_picture(labels, 3, source, "beside")


# ---------------------------------------------------------------------------- hsikit additions: centring, reconstruction
def test_run_trains_with_centred_embeddings_and_the_reconstruction_term(scene_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(scene_folder, out, "--epochs", "1", "--centre-embeddings", "--coef-recon", "2",
                  "--decoder-hidden", "16", "--save_interval", "0", "--log-interval", "1") == 0  # fmt: skip
    config = json.loads((out / "model" / "config.json").read_text())
    arguments = config["arguments"]
    assert arguments["centre_embeddings"] is True and arguments["decoder_hidden"] == 16
    weights = load_file(str(out / "model" / "model.safetensors"))
    assert weights["decoder.2.weight"].shape == (len(WAVELENGTHS), 16, 1, 1)
    assert "encoder.spatial_net.3.running_mean" in weights  # the centring's statistics travel with the model
    metrics = next(out.glob("csv/version_*/metrics.csv")).read_text()
    assert "train/recon" in metrics.splitlines()[0]
    assert isinstance(load_model(out / "model"), torch.nn.Module)
