"""ClassificationTask's deephyp options (class balancing, L2 penalty, step schedules) and per-class metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import precision_score, recall_score

from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import ConfigError
from hsikit.tasks import ClassificationTask
from hsikit.tasks.optim import StepSchedule, l2_penalty

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, "logger": False}
CNN = {"conv_filter_sizes": [9, 5], "conv_num_filters": [4, 4], "conv_strides": [2, 2], "fc_sizes": [16]}


def _fit(tmp_path: Path, task: ClassificationTask, datamodule: Any, epochs: int = 1) -> L.Trainer:
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=epochs, **QUIET)
    trainer.fit(task, datamodule=datamodule)
    return trainer


def test_balance_classes_weighs_samples_by_training_frequency(tmp_path: Path, small_datamodule: Any) -> None:
    datamodule = small_datamodule(split="random", train=0.05, val=0.02, test=None)
    task = ClassificationTask(model="cnn1d_classifier", model_args=CNN, balance_classes=True, optimizer="adam")
    _fit(tmp_path, task, datamodule)
    counts = np.bincount(datamodule.datasets["train"].targets.numpy(), minlength=16) + 1.0
    np.testing.assert_allclose(task.loss_weights.numpy(), counts.max() / counts, rtol=1e-6)
    # the loss: sum of weighted cross-entropies over the number of weighted samples (deephyp's reduction)
    logits = torch.randn(6, 16)
    targets = torch.tensor([0, 1, 1, 10, -100, 15])
    weights = task.loss_weights[targets[targets >= 0]]
    expected = (weights * F.cross_entropy(logits[targets >= 0], targets[targets >= 0], reduction="none")).sum() / 5
    torch.testing.assert_close(task.classification_loss(logits, targets), expected)


def test_l2_penalty_is_added_to_the_training_loss_only(small_datamodule: Any) -> None:
    datamodule = small_datamodule()
    datamodule.setup()
    spectra, targets = datamodule.datasets["train"].spectra[:32], datamodule.datasets["train"].targets[:32]
    arguments = {"in_bands": 200, "num_classes": 16, **CNN}
    plain = ClassificationTask(model="cnn1d_classifier", model_args=arguments)
    penalised = ClassificationTask(model="cnn1d_classifier", model_args=arguments, l2_penalty=0.5)
    penalised.model.load_state_dict(plain.model.state_dict())
    for task in (plain, penalised):
        task.configure_metrics()
        task.log = lambda *args, **kwargs: None  # outside a Trainer
    train_gap = penalised.shared_step((spectra, targets), "train") - plain.shared_step((spectra, targets), "train")
    penalty = 0.5 * 0.5 * sum(float((p.detach() ** 2).sum()) for p in plain.model.parameters())
    assert float(train_gap.detach()) == pytest.approx(penalty, rel=1e-5)
    assert float(l2_penalty(plain.model)) == pytest.approx(penalty / 0.5, rel=1e-6)
    val_gap = penalised.shared_step((spectra, targets), "val") - plain.shared_step((spectra, targets), "val")
    assert float(val_gap.detach()) == pytest.approx(0.0, abs=1e-6)


def test_per_class_scores_are_logged_and_match_scikit_learn(tmp_path: Path, small_datamodule: Any) -> None:
    L.seed_everything(0)
    datamodule = small_datamodule(batch_size=16)
    task = ClassificationTask(model_args={"hidden_sizes": [32], "dropout": 0.0}, lr=5e-3)
    trainer = _fit(tmp_path, task, datamodule, epochs=3)
    results = trainer.validate(task, datamodule=datamodule, verbose=False)[0]
    val = datamodule.datasets["val"]
    task.model.eval()
    with torch.no_grad():
        predictions = task.model(val.spectra).argmax(1).numpy()
    truth = val.targets.numpy()
    recall = recall_score(truth, predictions, labels=range(16), average=None, zero_division=0)
    precision = precision_score(truth, predictions, labels=range(16), average=None, zero_division=0)
    for k in (0, 5, 15):  # logged under the raster label value k + 1
        assert results[f"val/per_class/recall_{k + 1:02d}"] == pytest.approx(recall[k], abs=1e-6)
        assert results[f"val/per_class/precision_{k + 1:02d}"] == pytest.approx(precision[k], abs=1e-6)
    assert sum(key.startswith("val/per_class/f1_") for key in results) == 16
    figures = task.figures("val")
    assert set(figures) == {"confusion_matrix_val", "per_class_scores_val"}
    assert "OA" in figures["per_class_scores_val"].axes[0].get_title()


def test_piecewise_schedule_counts_optimizer_steps(tmp_path: Path, small_datamodule: Any) -> None:
    task = ClassificationTask(
        model_args={"hidden_sizes": [8]}, optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0,
        scheduler="piecewise", lr_piecewise_bounds=[3, 7], lr_piecewise_values=[0.05, 0.01],
    )
    rates: list[float] = []

    class Recorder(L.Callback):
        def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=2,
                             callbacks=[Recorder()], **QUIET)
    trainer.fit(task, datamodule=small_datamodule(batch_size=32))  # 160 pixels: 5 steps per epoch
    # TF piecewise_constant(step, [3, 7], [0.1, 0.05, 0.01]): step <= 3 -> 0.1, 3 < step <= 7 -> 0.05, then 0.01
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.01, 0.01])


def test_step_schedule_values_and_errors() -> None:
    exponential = StepSchedule("exponential", 1e-3, decay_steps=100, decay_rate=0.9)
    assert exponential.learning_rate(99) == pytest.approx(1e-3)
    assert exponential.learning_rate(250) == pytest.approx(1e-3 * 0.9**2)
    smooth = StepSchedule("exponential", 1e-3, decay_steps=100, decay_rate=0.9, staircase=False)
    assert smooth.learning_rate(250) == pytest.approx(1e-3 * 0.9**2.5)
    with pytest.raises(ConfigError, match="increasing"):
        StepSchedule("piecewise", 1e-3, piecewise_bounds=[5, 2], piecewise_values=[1e-4, 1e-5])
    with pytest.raises(ConfigError, match="balance_classes computes"):
        ClassificationTask(balance_classes=True, class_weights=[1.0] * 16)
    with pytest.raises(ConfigError, match="scheduler must be one of"):
        ClassificationTask(scheduler="cyclic")
