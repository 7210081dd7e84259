"""Classification scores from one confusion matrix: against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    precision_score,
    recall_score,
)

from hsikit.errors import MetricInputError, ShapeMismatchError
from hsikit.metrics.classification import (
    ClassificationScores,
    classification_scores,
    confusion_matrix,
    scores_from_confusion,
)


def test_scores_of_a_hand_made_confusion_matrix() -> None:
    # rows: true class, columns: prediction
    matrix = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    scores = scores_from_confusion(matrix)
    assert scores["accuracy"] == pytest.approx(11 / 14)
    # class 2 has no true pixel: AA averages the recalls of classes 0 and 1 only
    assert scores["average_accuracy"] == pytest.approx((8 / 10 + 3 / 4) / 2)
    np.testing.assert_allclose(scores["precision"].numpy(), [8 / 9, 3 / 5, 0.0])
    np.testing.assert_allclose(scores["recall"].numpy(), [0.8, 0.75, 0.0])
    chance = (10 / 14) * (9 / 14) + (4 / 14) * (5 / 14)
    assert scores["kappa"] == pytest.approx((11 / 14 - chance) / (1 - chance))
    f1 = [2 * (8 / 9) * 0.8 / (8 / 9 + 0.8), 2 * 0.6 * 0.75 / 1.35]
    assert scores["f1"] == pytest.approx(np.mean(f1))  # class 2 is neither true nor predicted: left out
    assert scores["support"].tolist() == [10, 4, 0]


def test_scores_equal_scikit_learn_with_a_class_missing_from_the_targets(rng: np.random.Generator) -> None:
    targets = rng.integers(0, 5, 400)  # classes 0..4 present; class 5 only predicted
    predictions = np.where(rng.random(400) < 0.7, targets, rng.integers(0, 6, 400))
    report = classification_scores(predictions, targets, 6)
    assert report["overall_accuracy"] == pytest.approx(accuracy_score(targets, predictions))
    with pytest.warns(UserWarning):  # scikit-learn warns about the class absent from y_true, then drops it
        expected_aa = balanced_accuracy_score(targets, predictions)
    assert report["average_accuracy"] == pytest.approx(expected_aa)
    assert report["kappa"] == pytest.approx(cohen_kappa_score(targets, predictions))
    assert report["macro_f1"] == pytest.approx(f1_score(targets, predictions, average="macro"))
    per_class = report["per_class"]
    np.testing.assert_allclose(
        [row["precision"] for row in per_class[:5]],
        precision_score(targets, predictions, labels=range(5), average=None, zero_division=0),
    )
    np.testing.assert_allclose(
        [row["recall"] for row in per_class[:5]], recall_score(targets, predictions, labels=range(5), average=None)
    )
    assert per_class[5]["support"] == 0 and per_class[5]["precision"] == 0.0
    assert np.asarray(report["confusion_matrix"]).sum() == 400


def test_ignored_targets_are_not_counted() -> None:
    matrix = confusion_matrix([0, 1, 1, 0], [0, -100, 1, 1], num_classes=2)
    assert matrix.tolist() == [[1, 0], [1, 1]]


def test_the_metric_accumulates_batches_and_merges_processes(rng: np.random.Generator) -> None:
    targets = torch.from_numpy(rng.integers(0, 4, 300))
    predictions = torch.from_numpy(rng.integers(0, 4, 300))
    whole = ClassificationScores(4)
    whole.update(predictions, targets)
    first, second = ClassificationScores(4), ClassificationScores(4)
    first.update(predictions[:120], targets[:120])
    second.update(predictions[120:], targets[120:])
    first.merge_state(second)  # what the DDP sum of the confusion states does
    assert torch.equal(first.confusion, whole.confusion)
    assert first.compute()["kappa"] == pytest.approx(cohen_kappa_score(targets.numpy(), predictions.numpy()))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ShapeMismatchError, match="square"):
        scores_from_confusion(np.zeros((2, 3)))
    with pytest.raises(MetricInputError, match="0-based"):
        confusion_matrix([0, 3], [0, 1], num_classes=3)
    metric = ClassificationScores(3)
    with pytest.raises(MetricInputError, match="num_classes=3"):
        metric.update(torch.tensor([0, 1]), torch.tensor([0, 5]))
