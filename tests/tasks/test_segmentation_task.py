"""SegmentationTask (SSMGNet training) on real glacier tiles: losses, metrics, CSV log, schedules, errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsikit.data.segmentation_datamodule import SegmentationDataModule
from hsikit.engine.export import load_model
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.attention import attention_label
from hsikit.data.reference_spectra import glacier_reference_matrix
from hsikit.metrics.segmentation import confusion_matrix, confusion_scores
from hsikit.tasks import get_task
from hsikit.tasks.segmentation import SegmentationTask, training_log_columns

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}
TINY = {"width": 4, "atten_kernel": 3}


@pytest.fixture
def glacier_module(shared_data: Path) -> Any:
    def make(**overrides: Any) -> SegmentationDataModule:
        options = {
            "dataset": "glacier", "root": str(shared_data), "train": ["1"], "val": ["2"], "crop_size": 32,
            "samples_per_epoch": 8, "batch_size": 4, "shuffle_seed": 0, **overrides,
        }  # fmt: skip
        return SegmentationDataModule(**options)

    return make


def test_training_logs_the_reference_columns_and_exports(tmp_path: Path, glacier_module: Any) -> None:
    L.seed_everything(0)
    assert get_task("segmentation") is SegmentationTask
    datamodule = glacier_module()
    task = SegmentationTask(model_args=TINY, class_weights="inverse_frequency")
    trainer = create_trainer(tmp_path, RunOptions(report=False, export_weights="last"), task=task, max_epochs=2,
                             **QUIET)  # fmt: skip
    trainer.fit(task, datamodule=datamodule)

    assert task.model_args["in_bands"] == 10 and task.model_args["num_classes"] == 3
    weights = task.segmentation_criterion.weight.numpy()
    inverse = 1 / np.array([59182, 4034, 2320])
    np.testing.assert_allclose(weights, inverse / inverse.sum(), rtol=1e-6)

    with open(tmp_path / "metric_training_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == training_log_columns(3)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert "mIoU2" in rows[0] and "F2_score2" in rows[0] and float(rows[1]["train_atten"]) > 0

    # the logged validation scores are those of the model's predictions on tile 2
    model = load_model(tmp_path / "model")
    assert model.hsikit_config.class_names == ["background", "clean_glacier", "debris_glacier"]
    tile = datamodule.tiles["val"][0]
    task.model.eval()
    with torch.no_grad():
        prediction = task.model(torch.from_numpy(tile.image)[None]).logits.argmax(1)
    scores = confusion_scores(confusion_matrix(prediction, torch.from_numpy(tile.target)[None], 3))
    assert float(rows[1]["mIoU"]) == pytest.approx(float(scores["mIoU"]), abs=2e-6)
    assert float(rows[1]["Kappa"]) == pytest.approx(float(scores["Kappa"]), abs=2e-6)
    assert trainer.callback_metrics["val/IoU/1_clean_glacier"] == pytest.approx(float(scores["IoU"][1]), abs=1e-6)
    assert (tmp_path / "checkpoints").is_dir()
    with torch.no_grad():
        exported = model(torch.from_numpy(tile.image)[None]).logits.argmax(1)
    assert torch.equal(exported, prediction)  # the export holds the trained weights


def test_one_step_loss_is_segmentation_plus_weighted_attention_mse() -> None:
    torch.manual_seed(0)
    task = SegmentationTask(model_args={"in_bands": 10, "num_classes": 3, **TINY}, class_weights=[0.2, 0.3, 0.5])
    image = torch.rand(2, 10, 12, 12) * 0.5
    target = torch.randint(0, 3, (2, 12, 12))
    loss = task.shared_step({"image": image, "label": target}, "val")
    output = task.model(image)
    seg = F.cross_entropy(output.logits, target, weight=torch.tensor([0.2, 0.3, 0.5]))
    similarity = attention_label(image, glacier_reference_matrix()).similarity
    expected = seg + 6.0 * F.mse_loss(output.attention, similarity)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert [task.attention_weight_at(e) for e in (0, 8, 9, 19)] == [6.0, 6.0, 3.0, 1.5]  # 1-based epochs 10, 20

    off = SegmentationTask(model_args={"in_bands": 10, "num_classes": 3, **TINY}, attention_weight=0.0)
    assert off.attention_target is None
    off_loss = off.shared_step((image, target), "val")
    assert float(off_loss) == pytest.approx(float(F.cross_entropy(off.model(image).logits, target)), rel=1e-6)


def test_reference_matrix_must_fit_the_bands(tmp_path: Path) -> None:
    matrix = tmp_path / "spectra.npy"
    np.save(matrix, np.random.default_rng(0).random((7, 7)))
    with pytest.raises(ShapeMismatchError, match=r"spectra.npy' has 7 bands \(rows\) but the images have 10"):
        SegmentationTask(model_args={"in_bands": 10, "num_classes": 3}, reference_matrix=str(matrix))
    with pytest.raises(ShapeMismatchError, match="set reference_matrix to a .npy/.csv file of 6-band"):
        SegmentationTask(model_args={"in_bands": 6, "num_classes": 3})
    task = SegmentationTask(model_args={"in_bands": 7, "num_classes": 3, **TINY}, reference_matrix=str(matrix))
    assert task.attention_target.bands == 7
    SegmentationTask(model_args={"in_bands": 6, "num_classes": 3}, attention_weight=0.0)  # no matrix needed


def test_bad_settings_fail_early(tmp_path: Path, glacier_module: Any) -> None:
    with pytest.raises(ConfigError, match="class_weights must be"):
        SegmentationTask(class_weights="balanced")
    with pytest.raises(ConfigError, match="scheduler must be"):
        SegmentationTask(scheduler="cosine")
    with pytest.raises(ConfigError, match="class_weights has 2 values for 3 classes"):
        SegmentationTask(model_args={"in_bands": 10, "num_classes": 3}, class_weights=[1.0, 2.0])
    task = SegmentationTask(model_args=TINY)
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=1,
                             logger=False, **QUIET)  # fmt: skip
    with pytest.raises(ConfigError, match="normalization: none"):
        trainer.fit(task, datamodule=glacier_module(normalization="standardize"))


class _LearningRates(L.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.values.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.parametrize(
    ("scheduler", "factor"),
    [
        ("step", lambda e: 0.94**e),
        ("exp", lambda e: 0.94**e),
        ("cos", lambda e: 0.5 * (1 + math.cos(math.pi * e / 4))),
        ("poly", lambda e: (1 - e / 4) ** 2.5),
    ],
)
def test_epoch_schedules(tmp_path: Path, glacier_module: Any, scheduler: str, factor: Any) -> None:
    task = SegmentationTask(model_args=TINY, scheduler=scheduler, attention_weight=0.0, training_log=None)
    rates = _LearningRates()
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, limit_val_batches=0,
                        default_root_dir=str(tmp_path), callbacks=[rates], **QUIET)  # fmt: skip
    trainer.fit(task, datamodule=glacier_module(samples_per_epoch=4, crop_size=16))
    np.testing.assert_allclose(rates.values, [5e-3 * factor(e) for e in range(4)], rtol=1e-9)


def test_unet_trains_without_attention_and_warns_when_asked_for_it(tmp_path: Path, glacier_module: Any) -> None:
    task = SegmentationTask(model="unet", model_args={"base_width": 4, "depth": 2}, training_log=None)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, limit_val_batches=0,
                        default_root_dir=str(tmp_path), **QUIET)  # fmt: skip
    with pytest.warns(UserWarning, match="has no attention map"):
        trainer.fit(task, datamodule=glacier_module(samples_per_epoch=4))
    assert task.attention_target is not None  # built, but the U-Net gives nothing to supervise


def test_config_files_train_through_the_command_line(tmp_path: Path, shared_data: Path) -> None:
    from hsikit.engine.cli import main

    repository = Path(__file__).resolve().parents[2]
    for config, model_args in (
        ("segmentation_ssmgnet_glacier.yaml", '{"width": 4, "atten_kernel": 3}'),
        ("segmentation_unet_glacier.yaml", '{"base_width": 4, "depth": 2}'),
    ):
        status = main([
            "fit", "--config", str(repository / "configs" / config),
            "--data.init_args.root", str(shared_data / "glacier"), "--data.init_args.crop_size", "32",
            "--data.init_args.samples_per_epoch", "4", "--data.init_args.batch_size", "4",
            "--model.init_args.model_args", model_args, "--model.init_args.class_weights", "inverse_frequency",
            "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--run.root", str(tmp_path), "--run.version", "v",
            "--run.report", "false",
        ])  # fmt: skip
        assert status == 0
        run = tmp_path / Path(config).stem / "v"
        model = load_model(run / "model", expected_bands=10)
        assert model.hsikit_config.task == "segmentation"
        assert (run / "metric_training_log.csv").read_text().startswith("epoch,train_loss,train_atten,val_loss")
