"""``hsikit fit | validate | test | predict`` through hsikit.engine.cli.main, on the shipped config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import hsikit
from hsikit.engine.cli import main
from hsikit.errors import CheckpointError, ConfigError, UnknownNameError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "indian_pines_mlp.yaml"


def _small_run_arguments(shared_data: Path, root: Path) -> list[str]:
    """Overrides that shrink the shipped experiment to a few seconds."""
    return [
        "--config", str(CONFIG),
        "--data.init_args.root", str(shared_data),
        "--data.init_args.split", "count",
        "--data.init_args.train", "10",
        "--data.init_args.val", "5",
        "--data.init_args.test", "5",
        "--data.init_args.batch_size", "32",
        "--model.init_args.lr", "1e-4",
        "--model.init_args.warmup_steps", "2",
        "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--run.root", str(root),
        "--run.version", "v1",
        "--run.checkpoint_every_n_steps", "4",
    ]


def test_print_config_shows_the_resolved_overrides(
    capsys: pytest.CaptureFixture[str], shared_data: Path, tmp_path: Path
) -> None:
    assert main(["fit", *_small_run_arguments(shared_data, tmp_path), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "hsikit.tasks.ClassificationTask"
    assert printed["model"]["init_args"]["lr"] == pytest.approx(1e-4)  # the dotted override
    assert printed["model"]["init_args"]["model_args"]["hidden_sizes"] == [256, 128]  # from the file
    assert printed["trainer"]["max_epochs"] == 2
    assert printed["run"]["ema_decay"] == pytest.approx(0.99)
    assert not (tmp_path / "indian_pines_mlp").exists()  # printing the config runs nothing


@pytest.fixture(scope="module")
def fitted_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["fit", *_small_run_arguments(shared_data, root)]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "indian_pines_mlp" / "v1"


def test_fit_writes_one_complete_run_folder(fitted_run: Path) -> None:
    names = {p.name for p in fitted_run.iterdir()}
    assert {"config.yaml", "metrics.json", "report.html", "checkpoints", "csv", "tensorboard", "model",
            "figures", "split.json", "normalization.json"} <= names
    resolved = yaml.safe_load((fitted_run / "config.yaml").read_text())
    assert resolved["model"]["init_args"]["lr"] == pytest.approx(1e-4)
    assert resolved["seed_everything"] == 0
    metrics = json.loads((fitted_run / "metrics.json").read_text())["fit"]
    assert metrics["global_step"] == 10 and metrics["monitor"] == "val/accuracy"
    assert 0.0 <= metrics["metrics"]["val/accuracy"] <= 1.0
    checkpoints = sorted(p.name for p in (fitted_run / "checkpoints").iterdir())
    assert checkpoints == ["epoch000-step000005.ckpt", "epoch001-step000010.ckpt", "last.ckpt"]
    assert list((fitted_run / "tensorboard" / "version_0").glob("events.out.tfevents.*"))
    header = (fitted_run / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "step", "train/loss", "val/accuracy"} <= set(header)
    model = hsikit.load_model(fitted_run, expected_bands=200)
    config = model.hsikit_config
    assert config.class_names[0] == "Alfalfa" and len(config.class_names) == 16
    assert len(config.wavelengths) == 200 and config.normalization["name"] == "standardize"
    report = (fitted_run / "report.html").read_text()
    assert "val/accuracy" in report and report.count("data:image/png;base64,") >= 2


def test_test_subcommand_adds_to_the_same_run(fitted_run: Path) -> None:
    checkpoint = fitted_run / "checkpoints" / "epoch001-step000010.ckpt"
    status = main(["test", "--config", str(fitted_run / "config.yaml"), "--ckpt_path", str(checkpoint),
                   "--trainer.enable_progress_bar", "false"])
    assert status == 0
    metrics = json.loads((fitted_run / "metrics.json").read_text())
    assert {"fit", "test"} <= set(metrics)
    assert 0.0 <= metrics["test"]["metrics"]["test/accuracy"] <= 1.0
    assert (fitted_run / "figures" / "confusion_matrix_test.png").is_file()
    assert not (fitted_run.parent / "v1-2").exists()


def test_predict_subcommand_writes_a_class_map(fitted_run: Path) -> None:
    status = main(["predict", "--config", str(fitted_run / "config.yaml"), "--ckpt_path",
                   str(fitted_run / "checkpoints" / "last.ckpt"), "--trainer.enable_progress_bar", "false"])
    assert status == 0
    class_map = np.load(fitted_run / "predictions" / "class_map.npy")
    assert class_map.shape == (145, 145)
    assert class_map.min() >= 1 and class_map.max() <= 16  # every pixel predicted, labels 1..16
    assert (fitted_run / "figures" / "predicted_class_map.png").is_file()
    assert json.loads((fitted_run / "metrics.json").read_text())["predict"]["pixels"] == 145 * 145


def test_tiled_predict_of_the_exported_model(fitted_run: Path, tmp_path: Path, indian_pines: object) -> None:
    from hsikit.io import open_cube, save_cube
    from hsikit.spectral.normalize import Normalizer

    scene = tmp_path / "scene.tif"
    save_cube(indian_pines.cube, scene)
    output = tmp_path / "classes.tif"
    status = main(["predict", "--model", str(fitted_run / "model"), "--input", str(scene), "--output", str(output),
                   "--tile", "64", "--overlap", "8", "--no-progress"])
    assert status == 0
    tiled = np.asarray(open_cube(output).data[0])
    model = hsikit.load_model(fitted_run / "model")
    normalizer = Normalizer.from_dict(model.hsikit_config.normalization)
    pixels = normalizer.transform(np.asarray(indian_pines.cube.data, dtype=np.float32).reshape(200, -1), band_axis=0)
    with torch.no_grad():
        direct = model(torch.from_numpy(np.ascontiguousarray(pixels.T))).argmax(1).reshape(145, 145).numpy()
    # the class raster uses the same label values as the training labels and the Lightning predict path
    offset = model.hsikit_config.extra["label_offset"]
    assert offset == 1
    np.testing.assert_array_equal(tiled, direct + offset)


def test_unsafe_or_unknown_settings_are_refused(shared_data: Path, tmp_path: Path) -> None:
    arguments = _small_run_arguments(shared_data, tmp_path)
    with pytest.raises(ConfigError, match="weights_only false is refused"):
        main(["fit", *arguments, "--weights_only", "false"])
    with pytest.raises(UnknownNameError, match="unknown model 'resnet9000'"):
        main(["fit", *arguments, "--model.init_args.model", "resnet9000"])
    assert main(["fit", *arguments, "--trainer.max_epochs", "not-a-number"]) == 2  # parser error status
    with pytest.raises(ConfigError, match="runs one of fit, validate, test, predict"):
        main(["train"])


def test_tiled_predict_refuses_a_cube_with_other_bands(fitted_run: Path, tmp_path: Path, indian_pines: object) -> None:
    from hsikit.io import save_cube

    scene = tmp_path / "subset.tif"
    save_cube(indian_pines.cube.select_bands(slice(0, 100)), scene)
    with pytest.raises(CheckpointError, match="trained on 200 bands, the input has 100"):
        main(["predict", "--model", str(fitted_run / "model"), "--input", str(scene), "--output",
              str(tmp_path / "out.tif"), "--no-progress"])
    assert not (tmp_path / "out.tif").exists()
    # a model folder without --input/--output is a usage error, not a LightningCLI run
    assert main(["predict", "--model", str(fitted_run / "model")]) == 2
