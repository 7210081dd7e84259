"""Classification scores of hyperspectral maps, all derived from one confusion matrix.

The scores reported for pixel classification (overall accuracy OA, average accuracy AA,
Cohen's kappa, per-class precision / recall / F1, macro F1) are functions of the
``(K, K)`` confusion matrix ``C`` (rows: true class, columns: predicted class):

* ``OA = trace(C) / sum(C)``;
* per-class recall ``R_k = C_kk / sum_j C_kj`` and precision ``P_k = C_kk / sum_i C_ik``;
  ``F1_k = 2 P_k R_k / (P_k + R_k)`` (0 when ``P_k + R_k = 0``);
* ``AA`` = mean recall over the classes present in the targets (a class with no test pixel
  has no accuracy; scikit-learn's ``balanced_accuracy_score`` drops it the same way);
* macro F1 = mean F1 over the classes present in the targets or the predictions
  (scikit-learn's ``f1_score(average="macro")`` with its default labels);
* ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o = OA`` and
  ``p_e = sum_k (row_k / n)(col_k / n)``.

:class:`ClassificationScores` is a :class:`torchmetrics.Metric` whose only state is that
matrix, summed across processes, so the scores accumulate over an epoch and agree under
DDP; :func:`scores_from_confusion` and :func:`classification_scores` give the same numbers
for arrays (the SVM baseline and the benchmarks use them, so every model is scored by
the same code).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from hsikit.errors import MetricInputError, ShapeMismatchError

#: scalar scores, in the order they are reported
SCALAR_SCORES: tuple[str, ...] = ("accuracy", "average_accuracy", "kappa", "f1")
#: per-class scores (vectors of length K)
PER_CLASS_SCORES: tuple[str, ...] = ("precision", "recall", "f1")


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.zeros_like(numerator))


def scores_from_confusion(matrix: Any) -> dict[str, Any]:
    """Every score of a ``(K, K)`` confusion matrix (rows true class, columns prediction).

    Returns:
        ``{"accuracy", "average_accuracy", "kappa", "f1"}`` as floats (NaN for an empty
        matrix), ``"precision"``, ``"recall"``, ``"per_class_f1"`` as float64 tensors ``(K,)``,
        and ``"support"`` (true pixels per class) as an int64 tensor ``(K,)``.
    """
    counts = torch.as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ShapeMismatchError(f"a confusion matrix is square (K, K), got shape {tuple(counts.shape)}")
    counts = counts.to(torch.float64)
    total = counts.sum()
    diagonal = torch.diagonal(counts)
    support = counts.sum(dim=1)
    predicted = counts.sum(dim=0)
    recall = _safe_divide(diagonal, support)
    precision = _safe_divide(diagonal, predicted)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    if total <= 0:
        nan = float("nan")
        scalars = {"accuracy": nan, "average_accuracy": nan, "kappa": nan, "f1": nan}
    else:
        accuracy = float(diagonal.sum() / total)
        present = support > 0
        seen = present | (predicted > 0)
        chance = float((support / total * predicted / total).sum())
        kappa = 1.0 if chance >= 1.0 else (accuracy - chance) / (1.0 - chance)
        scalars = {
            "accuracy": accuracy,
            "average_accuracy": float(recall[present].mean()),
            "kappa": float(kappa),
            "f1": float(f1[seen].mean()),
        }
    return {
        **scalars,
        "precision": precision,
        "recall": recall,
        "per_class_f1": f1,
        "support": support.to(torch.int64),
    }


def confusion_matrix(predictions: Any, targets: Any, num_classes: int, ignore_index: int | None = -100) -> np.ndarray:
    """``(K, K)`` int64 confusion matrix of 0-based class indices (rows: target); ``ignore_index`` targets skipped."""
    prediction = np.asarray(predictions).reshape(-1).astype(np.int64)
    target = np.asarray(targets).reshape(-1).astype(np.int64)
    if prediction.shape != target.shape:
        raise ShapeMismatchError(
            f"predictions ({prediction.size} values) and targets ({target.size} values) differ in size; score the "
            "same pixels"
        )
    keep = target >= 0 if ignore_index is None else (target != ignore_index) & (target >= 0)
    prediction, target = prediction[keep], target[keep]
    if prediction.size and (prediction.min() < 0 or prediction.max() >= num_classes or target.max() >= num_classes):
        raise MetricInputError(
            f"class indices must lie in 0..{num_classes - 1}; got predictions {prediction.min()}..{prediction.max()} "
            f"and targets {target.min()}..{target.max()} (convert raster labels 1..K to 0-based indices first)"
        )
    return np.bincount(target * num_classes + prediction, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def classification_scores(
    predictions: Any,
    targets: Any,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = -100,
) -> dict[str, Any]:
    """A JSON-ready report of 0-based predictions against targets.

    Returns:
        ``{"overall_accuracy", "average_accuracy", "kappa", "macro_f1", "pixels",
        "per_class": [{"class", "precision", "recall", "f1", "support"}...],
        "confusion_matrix": [[...]...]}``.
    """
    matrix = confusion_matrix(predictions, targets, num_classes, ignore_index)
    return report_from_confusion(matrix, class_names)


def report_from_confusion(matrix: Any, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON-ready report of :func:`classification_scores` from a confusion matrix."""
    scores = scores_from_confusion(matrix)
    counts = np.asarray(torch.as_tensor(matrix).cpu(), dtype=np.int64)
    names = list(class_names) if class_names is not None else [f"class {k}" for k in range(counts.shape[0])]
    if len(names) != counts.shape[0]:
        raise ShapeMismatchError(f"{len(names)} class names for a {counts.shape[0]}-class confusion matrix")
    return {
        "overall_accuracy": scores["accuracy"],
        "average_accuracy": scores["average_accuracy"],
        "kappa": scores["kappa"],
        "macro_f1": scores["f1"],
        "pixels": int(counts.sum()),
        "per_class": [
            {
                "class": str(name),
                "precision": float(scores["precision"][k]),
                "recall": float(scores["recall"][k]),
                "f1": float(scores["per_class_f1"][k]),
                "support": int(scores["support"][k]),
            }
            for k, name in enumerate(names)
        ],
        "confusion_matrix": counts.tolist(),
    }


class ClassificationScores(Metric):
    """OA, AA, kappa, macro F1 and per-class precision / recall / F1, accumulated as a confusion matrix.

    ``update(predictions, targets)`` takes 0-based class indices of any (equal) shape;
    targets equal to ``ignore_index`` (or negative) are skipped. ``compute()`` returns
    :func:`scores_from_confusion` of the matrix summed over batches and, under DDP, over
    processes. ``confusion`` (the state) is the ``(K, K)`` int64 matrix.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, ignore_index: int | None = -100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise MetricInputError(f"ClassificationScores needs num_classes >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.add_state(
            "confusion",
            default=torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64),
            dist_reduce_fx="sum",
        )

    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        prediction = predictions.reshape(-1).long()
        target = targets.reshape(-1).long()
        if prediction.shape != target.shape:
            raise ShapeMismatchError(
                f"ClassificationScores: {prediction.numel()} predictions for {target.numel()} targets"
            )
        keep = target >= 0
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        prediction, target = prediction[keep], target[keep]
        if target.numel() and (int(target.max()) >= self.num_classes or int(prediction.max()) >= self.num_classes):
            raise MetricInputError(
                f"ClassificationScores: class index >= num_classes={self.num_classes} (targets up to "
                f"{int(target.max())}, predictions up to {int(prediction.max())})"
            )
        flat = target * self.num_classes + prediction
        self.confusion += torch.bincount(flat, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def compute(self) -> dict[str, Any]:
        return scores_from_confusion(self.confusion)


__all__ = [
    "PER_CLASS_SCORES",
    "SCALAR_SCORES",
    "ClassificationScores",
    "classification_scores",
    "confusion_matrix",
    "report_from_confusion",
    "scores_from_confusion",
]
