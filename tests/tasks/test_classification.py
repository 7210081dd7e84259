"""ClassificationTask and the task registry, on real Indian Pines pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, f1_score

from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import CheckpointError, ConfigError, UnknownNameError
from hsikit.models import model_spec
from hsikit.tasks import BaseTask, ClassificationTask, get_task, list_tasks

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, "logger": False}


def test_registry_finds_the_task() -> None:
    assert get_task("classification") is ClassificationTask
    assert "classification" in list_tasks()
    assert issubclass(ClassificationTask, BaseTask) and ClassificationTask.task_name == "classification"
    with pytest.raises(UnknownNameError, match="Did you mean 'classification'"):
        get_task("clasification")


def test_model_arguments_come_from_the_data(tmp_path: Path, small_datamodule: Any) -> None:
    task = ClassificationTask(model_args={"hidden_sizes": [8]})
    assert task.model is None  # bands and classes are not known yet
    with pytest.raises(ConfigError, match="not built yet"):
        task(torch.zeros(1, 200))
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=1, **QUIET)
    trainer.fit(task, datamodule=small_datamodule())
    assert task.model_args == {"in_bands": 200, "num_classes": 16, "hidden_sizes": [8]}
    recorded = model_spec(task.model)[1]
    assert recorded == {"in_bands": 200, "num_classes": 16, "hidden_sizes": [8], "dropout": 0.1, "norm": "batch"}
    assert task.data_description["class_names"][-1] == "Stone-Steel-Towers"


def test_arguments_that_contradict_the_data_are_refused(tmp_path: Path, small_datamodule: Any) -> None:
    task = ClassificationTask(model_args={"in_bands": 100, "num_classes": 16})
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=1, **QUIET)
    with pytest.raises(ConfigError, match="in_bands: model 100 vs data 200"):
        trainer.fit(task, datamodule=small_datamodule())


def test_bad_settings_fail_before_any_data_is_read() -> None:
    with pytest.raises(UnknownNameError, match="unknown model 'mlp9'"):
        ClassificationTask(model="mlp9")
    with pytest.raises(ConfigError, match="optimizer must be"):
        ClassificationTask(optimizer="lion")
    with pytest.raises(ConfigError, match="label_smoothing"):
        ClassificationTask(label_smoothing=1.5)
    with pytest.raises(ConfigError, match="class_weights has 3 values for 4 classes"):
        ClassificationTask(model_args={"in_bands": 5, "num_classes": 4}, class_weights=[1.0, 2.0, 3.0])


def test_validation_metrics_match_scikit_learn(tmp_path: Path, small_datamodule: Any) -> None:
    L.seed_everything(0)
    datamodule = small_datamodule(batch_size=16)
    task = ClassificationTask(model_args={"hidden_sizes": [32], "dropout": 0.0}, lr=5e-3)
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=3, **QUIET)
    trainer.fit(task, datamodule=datamodule)
    results = trainer.validate(task, datamodule=datamodule, verbose=False)[0]

    val = datamodule.datasets["val"]
    task.model.eval()
    with torch.no_grad():
        predictions = task.model(val.spectra).argmax(1).numpy()
    truth = val.targets.numpy()
    assert results["val/accuracy"] == pytest.approx(accuracy_score(truth, predictions), abs=1e-6)
    assert results["val/average_accuracy"] == pytest.approx(balanced_accuracy_score(truth, predictions), abs=1e-6)
    assert results["val/kappa"] == pytest.approx(cohen_kappa_score(truth, predictions), abs=1e-5)
    assert results["val/f1"] == pytest.approx(f1_score(truth, predictions, average="macro", labels=range(16)), abs=1e-6)
    confusion = task.confusion["val"].numpy()
    assert confusion.sum() == len(truth) == 80
    np.testing.assert_array_equal(np.diag(confusion), [np.sum((truth == k) & (predictions == k)) for k in range(16)])
    figure = task.figures("val")["confusion_matrix_val"]
    assert "Confusion matrix" in figure.axes[0].get_title()


def test_checkpoint_reloads_without_data(tmp_path: Path, small_datamodule: Any) -> None:
    L.seed_everything(0)
    task = ClassificationTask(model_args={"hidden_sizes": [8]})
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=1, **QUIET)
    trainer.fit(task, datamodule=small_datamodule())
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    # model_args lacked in_bands / num_classes: the hsikit record in the checkpoint supplies them
    reloaded = ClassificationTask.load_from_checkpoint(checkpoint, weights_only=True)
    for key, value in task.model.state_dict().items():
        torch.testing.assert_close(reloaded.model.state_dict()[key], value)
    assert reloaded.data_description["bands"] == 200
    foreign = torch.load(checkpoint, weights_only=True)
    foreign["hsikit"]["model"]["name"] = "other_net"
    with pytest.raises(CheckpointError, match="holds a 'other_net' model but the task is configured for 'spectral_mlp'"):
        ClassificationTask().on_load_checkpoint(foreign)
