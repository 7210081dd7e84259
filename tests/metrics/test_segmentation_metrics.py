"""Segmentation metrics (SSMGNet's columns) against scikit-learn and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix as sklearn_confusion,
    f1_score,
    fbeta_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError
from hsikit.metrics.segmentation import (
    SegmentationMetrics,
    confusion_matrix,
    confusion_scores,
    logged_scores,
    reference_columns,
)


def _random_maps(rng: np.random.Generator, classes: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.integers(0, classes, size=shape)
    prediction = np.where(rng.random(shape) < 0.6, truth, rng.integers(0, classes, size=shape))
    return prediction, truth


def test_scores_match_scikit_learn(rng: np.random.Generator) -> None:
    prediction, truth = _random_maps(rng, 4, (3, 17, 19))
    truth[0, :3] = -100  # unscored pixels
    metric = SegmentationMetrics(num_classes=4)
    metric.update(torch.from_numpy(prediction[:2]), torch.from_numpy(truth[:2]))
    metric.update(torch.from_numpy(prediction[2:]), torch.from_numpy(truth[2:]))
    scores = metric.compute()

    scored = truth.reshape(-1) != -100
    y_true, y_pred = truth.reshape(-1)[scored], prediction.reshape(-1)[scored]
    labels = list(range(4))
    np.testing.assert_array_equal(metric.confusion.numpy(), sklearn_confusion(y_true, y_pred, labels=labels))
    assert float(scores["Acc"]) == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert float(scores["Kappa"]) == pytest.approx(cohen_kappa_score(y_true, y_pred), abs=1e-12)
    iou = jaccard_score(y_true, y_pred, labels=labels, average=None)
    np.testing.assert_allclose(scores["IoU"].numpy(), iou, atol=1e-12)
    assert float(scores["mIoU"]) == pytest.approx(iou.mean(), abs=1e-12)
    frequency = np.bincount(y_true, minlength=4) / y_true.size
    assert float(scores["FWIoU"]) == pytest.approx((frequency * iou).sum(), abs=1e-12)
    for name, function in (("Precision", precision_score), ("Recall", recall_score), ("F1", f1_score)):
        per_class = function(y_true, y_pred, labels=labels, average=None, zero_division=0)
        key = f"{name}_per_class"
        np.testing.assert_allclose(scores[key].numpy(), per_class, atol=1e-12)
        mean_key = "F1_score" if name == "F1" else name
        assert float(scores[mean_key]) == pytest.approx(per_class.mean(), abs=1e-12)
    f2 = fbeta_score(y_true, y_pred, beta=2.0, labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose(scores["F2_per_class"].numpy(), f2, atol=1e-12)
    assert float(scores["F2_score"]) == pytest.approx(f2.mean(), abs=1e-12)


def test_hand_computed_three_class_matrix() -> None:
    # rows = truth, columns = prediction
    matrix = torch.tensor([[50, 2, 3], [4, 20, 1], [0, 5, 15]])
    scores = confusion_scores(matrix)
    total = 100.0
    assert float(scores["Acc"]) == pytest.approx(85 / total)
    rows, cols = np.array([55, 25, 20]), np.array([54, 27, 19])
    chance = (rows * cols).sum() / total**2
    assert float(scores["Kappa"]) == pytest.approx((0.85 - chance) / (1 - chance))
    iou = np.array([50 / (55 + 54 - 50), 20 / (25 + 27 - 20), 15 / (20 + 19 - 15)])
    np.testing.assert_allclose(scores["IoU"].numpy(), iou)
    assert float(scores["FWIoU"]) == pytest.approx((rows / total * iou).sum())
    precision, recall = np.array([50 / 54, 20 / 27, 15 / 19]), np.array([50 / 55, 20 / 25, 15 / 20])
    np.testing.assert_allclose(scores["Precision_per_class"].numpy(), precision)
    np.testing.assert_allclose(scores["Recall_per_class"].numpy(), recall)
    np.testing.assert_allclose(scores["F2_per_class"].numpy(), 5 * precision * recall / (4 * precision + recall))


def test_absent_classes_leave_every_mean_not_only_miou() -> None:
    """The reference's bug: on an all-background tile predicted perfectly, its mean precision,
    recall, F1 and F2 were 1/3 (absent classes scored 0) while its mIoU was 1."""
    truth = torch.zeros(1, 8, 8, dtype=torch.long)
    scores = SegmentationMetrics(3)(truth.clone(), truth)  # forward: update + compute
    for name in ("Acc", "Kappa", "mIoU", "FWIoU", "Precision", "Recall", "F1_score", "F2_score"):
        assert float(scores[name]) == 1.0, name
    assert math.isnan(float(scores["IoU"][1])) and math.isnan(float(scores["Precision_per_class"][2]))

    # what the reference computed: precision_k = 0 when nothing is predicted as k, then the nanmean
    matrix = confusion_matrix(truth, truth, 3).double()
    predicted = matrix.sum(0)
    reference_precision = torch.where(predicted > 0, matrix.diagonal() / predicted.clamp(min=1), torch.zeros(3))
    assert float(torch.nanmean(reference_precision)) == pytest.approx(1 / 3)


def test_missed_and_invented_classes_score_zero() -> None:
    truth = torch.tensor([[0, 0, 1, 1]])
    prediction = torch.tensor([[0, 0, 0, 2]])  # class 1 never predicted, class 2 never true
    scores = confusion_scores(confusion_matrix(prediction, truth, 3))
    assert scores["Precision_per_class"].tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    assert scores["Recall_per_class"].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert scores["IoU"].tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    assert float(scores["F1_score"]) == pytest.approx((2 * (2 / 3) / (2 / 3 + 1)) / 3)


def test_edge_cases_and_bad_input() -> None:
    empty = confusion_scores(torch.zeros(3, 3, dtype=torch.long))
    assert all(math.isnan(float(empty[name])) for name in ("Acc", "Kappa", "mIoU", "Precision"))
    # only unscored pixels: nothing is counted
    metric = SegmentationMetrics(2)
    metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), -100))
    assert int(metric.confusion.sum()) == 0
    with pytest.raises(ShapeMismatchError, match="same shape"):
        confusion_matrix(torch.zeros(2, 3), torch.zeros(3, 2), 2)
    with pytest.raises(MetricInputError, match="square"):
        confusion_scores(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="real class index"):
        SegmentationMetrics(3, ignore_index=1)
    with pytest.raises(ShapeMismatchError, match=r"\(B, 3, H, W\)"):
        SegmentationMetrics(3).update(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


def test_logits_are_arg_maxed_and_states_add_like_ddp(rng: np.random.Generator) -> None:
    logits = torch.from_numpy(rng.normal(size=(2, 3, 5, 6))).float()
    truth = torch.from_numpy(rng.integers(0, 3, size=(2, 5, 6)))
    whole = SegmentationMetrics(3)
    whole.update(logits, truth)
    # two "ranks", each with half of the batch: the summed states give the same scores
    first, second = SegmentationMetrics(3), SegmentationMetrics(3)
    first.update(logits[:1], truth[:1])
    second.update(logits[1:], truth[1:])
    first.merge_state(second)
    np.testing.assert_array_equal(first.confusion.numpy(), whole.confusion.numpy())
    assert float(first.compute()["mIoU"]) == float(whole.compute()["mIoU"])
    assert SegmentationMetrics(3)._reductions["confusion"].__name__ in ("dim_zero_sum", "sum")


def test_reference_columns_cover_every_class() -> None:
    scores = confusion_scores(torch.eye(4, dtype=torch.long) * 5)
    columns = reference_columns(scores)
    assert list(columns)[:3] == ["Acc", "Kappa", "mIoU"]
    for prefix in ("mIoU", "Precision", "Recall", "F1_score", "F2_score"):
        assert [f"{prefix}{k}" in columns for k in range(4)] == [True] * 4
    assert "FWIoU0" not in columns and columns["FWIoU"] == 1.0
    named = logged_scores(scores, ["background", "clean_glacier", "debris_glacier", "water"])
    assert named["IoU/1_clean_glacier"] == 1.0 and named["F2/3_water"] == 1.0
