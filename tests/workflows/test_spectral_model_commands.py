"""``hsikit autoencoder`` and ``hsikit classifier``: train through ``hsikit fit``, then map a georeferenced tile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from hsikit.cli import main

GLACIER = ("glacier", "images", "1.tif")
LABELS = ("glacier", "labels", "1.tif")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

AUTOENCODER_CONFIG = """
seed_everything: 0
model:
  class_path: hsikit.tasks.autoencoder.AutoencoderTask
  init_args:
    model: deephyp_mlp_ae
    model_args: {encoder_sizes: [8, 3], activation: relu}
    loss: CSA
    lr: 3.0e-3
data:
  class_path: hsikit.data.spectral_datamodules.SpectraDataModule
  init_args: {preprocessing: spectrum_minmax, train: 1500, val: 300, batch_size: 250}
trainer: {max_epochs: 2, accelerator: cpu, devices: 1, log_every_n_steps: 2}
run: {name: ae, version: v1, save_top_k: 1}
"""

CLASSIFIER_CONFIG = """
seed_everything: 0
model:
  class_path: hsikit.tasks.classification.ClassificationTask
  init_args:
    model: cnn1d_classifier
    model_args: {conv_filter_sizes: [3], conv_num_filters: [4], conv_strides: [1], fc_sizes: [8]}
    balance_classes: true
    optimizer: adam
    lr: 1.0e-2
    scheduler: constant
data:
  class_path: hsikit.data.spectral_datamodules.SceneClassificationDataModule
  init_args: {split: count, train: 30, val: 10, test: 100, normalization: standardize, batch_size: 20}
trainer: {max_epochs: 2, accelerator: cpu, devices: 1, log_every_n_steps: 2}
run: {name: clf, version: v1, save_top_k: 1}
"""


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_the_commands_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "autoencoder" in text and "classifier" in text


def test_autoencoder_train_and_apply_on_a_georeferenced_tile(shared_data: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ae.yaml"
    config.write_text(AUTOENCODER_CONFIG)
    tile = shared_data.joinpath(*GLACIER)
    status = main(["autoencoder", "train", "--config", str(config), "--input", str(tile), "--run-root",
                   str(tmp_path / "runs"), "--", *QUIET])
    assert status == 0
    run = tmp_path / "runs" / "ae" / "v1"
    assert (run / "model" / "config.json").is_file() and (run / "figures" / "latent_space_val.png").is_file()
    out = tmp_path / "out"
    status = main(["autoencoder", "apply", "--model", str(run / "model"), "--input", str(tile), "--labels",
                   str(shared_data.joinpath(*LABELS)), "--output-dir", str(out), "--max-points", "2000"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "mean SAM" in printed and "k-means NMI" in printed
    with rasterio.open(tile) as source, rasterio.open(out / "latent.tif") as latent, \
            rasterio.open(out / "sam.tif") as sam:
        assert latent.count == 3 and latent.crs == source.crs and latent.transform == source.transform
        assert sam.crs == source.crs and sam.count == 1
        angles = sam.read(1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pixels"] == 256 * 256
    assert summary["mean_sam_deg"] == pytest.approx(float(angles.mean()), rel=1e-4)
    assert summary["separation"]["classes"] == 2 and 0.0 <= summary["separation"]["nmi_latent"] <= 1.0
    assert (out / "latent_scatter.png").is_file() and (out / "sam.png").is_file()


def test_classifier_train_predict_and_svm(shared_data: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "clf.yaml"
    config.write_text(CLASSIFIER_CONFIG)
    tile, labels = shared_data.joinpath(*GLACIER), shared_data.joinpath(*LABELS)
    status = main(["classifier", "train", "--config", str(config), "--input", str(tile), "--labels", str(labels),
                   "--run-root", str(tmp_path / "runs"), "--", *QUIET])
    assert status == 0
    run = tmp_path / "runs" / "clf" / "v1"
    metrics = json.loads((run / "metrics.json").read_text())["fit"]["metrics"]
    assert "val/per_class/recall_02" in metrics and "val/kappa" in metrics
    assert (run / "figures" / "per_class_scores_val.png").is_file()

    output = tmp_path / "map" / "classes.tif"
    status = main(["classifier", "predict", "--model", str(run / "model"), "--input", str(tile), "--output",
                   str(output), "--confidence", str(tmp_path / "map" / "confidence.tif")])
    assert status == 0
    with rasterio.open(tile) as source, rasterio.open(output) as result:
        assert result.crs == source.crs and result.transform == source.transform
        classes = result.read(1)
    assert set(np.unique(classes)) <= {1, 2}  # the label values of the training classes
    assert output.with_suffix(".png").is_file() and "pixels/s" in capsys.readouterr().out

    svm_out = tmp_path / "svm"
    status = main(["classifier", "svm", "--dataset", "indian_pines", "--root", str(shared_data), "--split", "count",
                   "--train", "15", "--c", "10", "100", "--gamma", "0.01", "--folds", "2", "--output-dir",
                   str(svm_out)])
    assert status == 0
    result = json.loads((svm_out / "metrics.json").read_text())
    matrix = np.asarray(result["test"]["confusion_matrix"])
    assert result["train_pixels"] == 16 * 15 and matrix.sum() == result["test_pixels"]
    assert result["test"]["overall_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert "OA" in capsys.readouterr().out
    for name in ("confusion_matrix.png", "per_class_scores.png", "class_map.tif", "class_map.png", "split.json"):
        assert (svm_out / name).is_file(), name


def test_train_needs_an_existing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classifier", "train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
