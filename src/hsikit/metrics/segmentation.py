"""Semantic-segmentation metrics from one confusion matrix (SSMGNet's ``utils/metrics.py``, fixed).

Everything is computed from a ``(K, K)`` confusion matrix ``CM`` with **rows = ground truth,
columns = prediction**. With ``N = ΣCM``, row sums ``r_k`` (true pixels of class k), column
sums ``c_k`` (predicted pixels of class k) and ``tp_k = CM[k, k]``:

==============  ===========================================================================
``Acc``         overall accuracy ``Σ tp_k / N``.
``Kappa``       Cohen's κ ``(p_o − p_e) / (1 − p_e)`` with ``p_o = Acc`` and
                ``p_e = Σ r_k c_k / N²``; 1 when ``p_e = 1`` (one class in both maps, all
                agreeing — the reference's convention; scikit-learn returns NaN there).
``IoU_k``       ``tp_k / (r_k + c_k − tp_k)``; ``mIoU`` is their mean.
``FWIoU``       ``Σ_{k: r_k > 0} (r_k / N) · IoU_k``.
``Precision_k`` ``tp_k / c_k`` (0 when the class is never predicted but present).
``Recall_k``    ``tp_k / r_k`` (0 when the class is predicted but absent from the truth).
``F1_k``        ``2 P R / (P + R)``; ``F2_k`` is ``5 P R / (4 P + R)`` (0 when P = R = 0).
==============  ===========================================================================

**Absent classes.** A class with no true and no predicted pixel (``r_k = c_k = 0``) has no
defined score: every per-class value is NaN and it is left out of every class mean
(``mIoU``, ``Precision``, ``Recall``, ``F1_score``, ``F2_score``). The reference left it out
of ``mIoU`` (0/0 = NaN, then ``nanmean``) but gave it Precision = Recall = F1 = F2 = 0, which
*did* enter the means: a perfect prediction of an all-background tile scored mIoU 1 but
mean precision, recall, F1 and F2 of 1/K. That bug is fixed here, and the reference's
``1e-8`` guards are gone, so a perfect prediction scores exactly 1. Per-class values equal
scikit-learn's ``precision_score`` / ``recall_score`` / ``fbeta_score`` with
``zero_division=0``, and the means equal its macro average over the classes present in
the truth or the prediction. With no scored pixel (N = 0) every score is NaN.

The reference's CSV columns (``Acc, Kappa, mIoU, mIoU0.., FWIoU, Precision, Precision0..,
Recall, Recall0.., F1_score, F1_score0.., F2_score, F2_score0..``; per-class columns for any
K, not only 3) come from :func:`reference_columns`.

:class:`SegmentationMetrics` accumulates the matrix as a torchmetrics state reduced with
``dist_reduce_fx="sum"``: under DDP the scores equal those of one process that saw every
pixel. Pixels whose truth or prediction is outside ``[0, K)`` (e.g. ``ignore_index = -100``)
are not counted, as in the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchmetrics import Metric

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError

#: scalar scores of :func:`confusion_scores`, in the reference's column order
SCALAR_SCORES: tuple[str, ...] = ("Acc", "Kappa", "mIoU", "FWIoU", "Precision", "Recall", "F1_score", "F2_score")
#: per-class scores of :func:`confusion_scores` (vectors of length K)
PER_CLASS_SCORES: tuple[str, ...] = ("IoU", "Precision_per_class", "Recall_per_class", "F1_per_class", "F2_per_class")


def _f_beta(precision: torch.Tensor, recall: torch.Tensor, beta: float) -> torch.Tensor:
    """``(1 + β²) P R / (β² P + R)``, 0 where ``P = R = 0`` (NaN stays NaN)."""
    squared = beta * beta
    denominator = squared * precision + recall
    score = (1.0 + squared) * precision * recall / denominator
    return torch.where(denominator == 0, torch.zeros_like(score), score)


def confusion_scores(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """All segmentation scores of a ``(K, K)`` confusion matrix (rows = truth, columns = prediction).

    Returns:
        float64 tensors: the 0-d scalars of :data:`SCALAR_SCORES` and the ``(K,)`` vectors of
        :data:`PER_CLASS_SCORES` (NaN for classes absent from truth and prediction).

    Raises:
        MetricInputError: not a square matrix, or negative counts.
    """
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.shape[0] < 1:
        raise MetricInputError(
            f"a confusion matrix must be square (K, K) with rows = truth, got shape {tuple(confusion.shape)}"
        )
    matrix = confusion.detach().to(device="cpu", dtype=torch.float64)
    if bool((matrix < 0).any()):
        raise MetricInputError("the confusion matrix holds negative counts; it must count pixels")
    total = matrix.sum()
    true_count = matrix.sum(dim=1)  # r_k
    predicted_count = matrix.sum(dim=0)  # c_k
    hits = torch.diagonal(matrix)
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    present = (true_count + predicted_count) > 0

    def ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
        # 0 where the denominator is 0 but the class is present, NaN where the class is absent
        value = numerator / torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        value = torch.where(denominator > 0, value, torch.zeros_like(value))
        return torch.where(present, value, nan)

    iou = ratio(hits, true_count + predicted_count - hits)
    precision = ratio(hits, predicted_count)
    recall = ratio(hits, true_count)
    f1 = _f_beta(precision, recall, 1.0)
    f2 = _f_beta(precision, recall, 2.0)

    if total == 0:
        scalars = {name: nan.clone() for name in SCALAR_SCORES}
    else:
        accuracy = hits.sum() / total
        chance = (true_count * predicted_count).sum() / (total * total)
        kappa = torch.tensor(1.0, dtype=torch.float64) if chance == 1 else (accuracy - chance) / (1 - chance)
        frequency = true_count / total
        scalars = {
            "Acc": accuracy,
            "Kappa": kappa,
            "mIoU": torch.nanmean(iou),
            "FWIoU": (frequency[true_count > 0] * iou[true_count > 0]).sum(),
            "Precision": torch.nanmean(precision),
            "Recall": torch.nanmean(recall),
            "F1_score": torch.nanmean(f1),
            "F2_score": torch.nanmean(f2),
        }
    return {
        **scalars,
        "IoU": iou,
        "Precision_per_class": precision,
        "Recall_per_class": recall,
        "F1_per_class": f1,
        "F2_per_class": f2,
    }


def confusion_matrix(
    prediction: torch.Tensor, target: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """``(K, K)`` int64 counts (rows = truth) of class-index maps of one shape.

    Pixels whose truth or prediction lies outside ``[0, K)`` are not counted.
    """
    if prediction.shape != target.shape:
        raise ShapeMismatchError(
            f"prediction of shape {tuple(prediction.shape)} and target of shape {tuple(target.shape)} differ; "
            "give class-index maps of the same shape (argmax the logits over the class axis first)"
        )
    predicted = prediction.reshape(-1).long()
    truth = target.reshape(-1).long()
    scored = (truth >= 0) & (truth < num_classes) & (predicted >= 0) & (predicted < num_classes)
    index = truth[scored] * num_classes + predicted[scored]
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def reference_columns(scores: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The scores under the reference CSV's column names, per-class columns for every class.

    ``{"Acc", "Kappa", "mIoU", "mIoU0", …, "FWIoU", "Precision", "Precision0", …, "Recall", …,
    "F1_score", …, "F2_score", "F2_score0", …}`` as Python floats (NaN for undefined values).
    """
    columns: dict[str, float] = {"Acc": float(scores["Acc"]), "Kappa": float(scores["Kappa"])}
    for scalar, vector in (
        ("mIoU", "IoU"),
        ("FWIoU", None),
        ("Precision", "Precision_per_class"),
        ("Recall", "Recall_per_class"),
        ("F1_score", "F1_per_class"),
        ("F2_score", "F2_per_class"),
    ):
        columns[scalar] = float(scores[scalar])
        if vector is not None:
            for index, value in enumerate(scores[vector].tolist()):
                columns[f"{scalar}{index}"] = float(value)
    return columns


def logged_scores(scores: Mapping[str, torch.Tensor], class_names: Sequence[str] | None = None) -> dict[str, float]:
    """The scores with readable names for loggers: scalars as they are, per-class ones as
    ``IoU/<k>_<class name>``, ``Precision/<k>_<name>``, ``Recall/…``, ``F1/…``, ``F2/…``."""
    count = int(scores["IoU"].numel())
    names = list(class_names) if class_names is not None and len(class_names) == count else None
    labels = [f"{k}_{names[k]}" if names else str(k) for k in range(count)]
    values: dict[str, float] = {name: float(scores[name]) for name in SCALAR_SCORES}
    for prefix, vector in (
        ("IoU", "IoU"),
        ("Precision", "Precision_per_class"),
        ("Recall", "Recall_per_class"),
        ("F1", "F1_per_class"),
        ("F2", "F2_per_class"),
    ):
        for label, value in zip(labels, scores[vector].tolist()):
            values[f"{prefix}/{label}"] = float(value)
    return values


class SegmentationMetrics(Metric):
    """Accumulates the ``(K, K)`` confusion matrix of class maps and computes every score.

    Args:
        num_classes: K; truth and prediction indices ``0..K-1`` are scored.
        ignore_index: truth value of unscored pixels (anything outside ``[0, K)`` is skipped anyway;
            naming it documents the convention and refuses a clash with a real class).

    ``update(prediction, target)``: ``prediction`` is a class-index map ``(B, H, W)`` or
    logits/probabilities ``(B, K, H, W)`` (arg-maxed over axis 1); ``target`` is ``(B, H, W)``.
    ``compute()`` returns the dictionary of :func:`confusion_scores` (float64 tensors).
    The state ``confusion`` is an int64 matrix summed across processes under DDP.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    confusion: torch.Tensor

    def __init__(self, num_classes: int, ignore_index: int = -100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(num_classes) != num_classes or num_classes < 1:
            raise ConfigError(f"SegmentationMetrics: num_classes must be a positive integer, got {num_classes!r}")
        if 0 <= ignore_index < num_classes:
            raise ConfigError(
                f"SegmentationMetrics: ignore_index={ignore_index} is a real class index (0..{num_classes - 1}); "
                "use a negative value such as -100 for unlabelled pixels"
            )
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.add_state(
            "confusion",
            default=torch.zeros(self.num_classes, self.num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add the pixels of one batch (see the class docstring for the shapes)."""
        if prediction.is_floating_point():
            if prediction.ndim != target.ndim + 1 or prediction.shape[1] != self.num_classes:
                raise ShapeMismatchError(
                    f"SegmentationMetrics: float predictions must be (B, {self.num_classes}, H, W) scores for "
                    f"targets {tuple(target.shape)}, got {tuple(prediction.shape)}"
                )
            prediction = prediction.argmax(dim=1)
        if target.is_floating_point():
            raise MetricInputError("SegmentationMetrics: the target must hold integer class indices, got floats")
        self.confusion += confusion_matrix(prediction, target, self.num_classes).to(self.confusion.device)

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Scores of every pixel seen (see :func:`confusion_scores`)."""
        return confusion_scores(self.confusion)


__all__ = [
    "PER_CLASS_SCORES",
    "SCALAR_SCORES",
    "SegmentationMetrics",
    "confusion_matrix",
    "confusion_scores",
    "logged_scores",
    "reference_columns",
]
