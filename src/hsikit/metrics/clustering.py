"""Clustering metrics: information measures, pair counting, cluster → class alignment, segmentation scores.

Everything is computed from one **contingency matrix** ``n[k, c]`` = number of pixels with
cluster (prediction) ``k`` and class (target) ``c``, rows = clusters, columns = classes. The
:class:`torchmetrics.Metric` classes accumulate that matrix (an int64 state reduced with
``dist_reduce_fx="sum"``), so under DDP the result is exactly the one of a single process
that saw every pixel. Label maps may have any shape; they are flattened. Target pixels equal
to ``ignore_index`` (e.g. 0 = unlabelled in Indian Pines) are left out everywhere.

With N pixels, row sums ``a_k``, column sums ``b_c`` (natural logarithms, nats):

==================  ========================================================================
entropy             ``H(a) = −Σ_k (a_k/N) log(a_k/N)`` (empty bins skipped).
MI                  ``Σ_{k,c: n>0} (n/N) log(N·n / (a_k b_c))``.
NMI                 ``MI / mean(H(a), H(b))`` with the mean ``"geometric"`` (√(H₁H₂), the
                    reference's), ``"arithmetic"`` (scikit-learn's default), ``"min"`` or
                    ``"max"``; 1 when both labelings are constant, 0 when MI = 0 (the
                    conventions of ``sklearn.metrics.normalized_mutual_info_score``).
VI                  ``H(a) + H(b) − 2·MI`` (Meilă's variation of information).
ARI                 Hubert–Arabie adjusted Rand index from the pair confusion counts,
                    computed with exact integers (1 for identical trivial partitions, as
                    scikit-learn).
alignment           a map ``cluster → class`` (−1 = unassigned): ``"hungarian"`` solves the
                    rectangular assignment maximising matched pixels
                    (``scipy.optimize.linear_sum_assignment``) — one class per cluster; when
                    K > C the clusters left over go to their majority class
                    (``unmatched="majority"``, many-to-one) or stay unassigned
                    (``unmatched="unassigned"``); ``"majority"`` maps every cluster to its
                    majority class; ``"none"`` keeps cluster ids as class ids; a manual
                    ``{class: [clusters]}`` dict (:func:`mapping_from_manual`). The
                    reference wrote ``mapping[c] = r`` (class → cluster) and used it as
                    cluster → class, correct only for self-inverse permutations; it also
                    skipped the alignment whenever K ≠ C.
accuracy            matched pixels / N after alignment (Hungarian accuracy).
Cohen's κ           ``(p_o − p_e) / (1 − p_e)`` on the aligned labels (NaN when p_e = 1, like
                    scikit-learn); unassigned pixels count as disagreement.
IoU, Dice           per class ``TP / (P + T − TP)`` and ``(1+β²)TP / ((1+β²)TP + β²FN + FP)``
                    (the F-β score; β = 1 is Dice) from the aligned confusion; the means are
                    over classes whose denominator is > 0 (the reference's convention). The
                    reference divided by ``TP + β²(FP + FN)``, which for β = 1 is 2·IoU
                    (up to 2), not Dice.
area RMSE           ``sqrt(mean_c (P_c/N − T_c/N)²)`` over the classes (the reference's).
==================  ========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchmetrics import Metric

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError

AverageMethod = Literal["geometric", "arithmetic", "min", "max"]
AVERAGE_METHODS: tuple[str, ...] = ("geometric", "arithmetic", "min", "max")
AlignmentMethod = Literal["hungarian", "majority", "none"]
ALIGNMENT_METHODS: tuple[str, ...] = ("hungarian", "majority", "none")
Unmatched = Literal["majority", "unassigned"]
UNMATCHED_POLICIES: tuple[str, ...] = ("majority", "unassigned")
UNASSIGNED = -1
"""Class id given to clusters that an alignment leaves without a class."""


# --------------------------------------------------------------------------- inputs
def _as_labels(values: Any, role: str, metric: str) -> torch.Tensor:
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    if tensor.is_floating_point():
        if not bool(torch.all(tensor == tensor.round())):
            raise MetricInputError(
                f"{metric}: the {role} holds fractional values; give integer label maps (argmax probabilities first)"
            )
        tensor = tensor.long()
    if tensor.dtype == torch.bool:
        tensor = tensor.long()
    return tensor.reshape(-1).long()


def contingency_matrix(
    prediction: Any,
    target: Any,
    num_clusters: int | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """``(K, C)`` int64 counts of (cluster, class) pairs; rows = clusters (prediction), columns = classes.

    Args:
        prediction, target: integer label maps of the same number of elements (any shape).
        num_clusters, num_classes: K and C (default: largest id + 1).
        ignore_index: target value whose pixels are left out.

    Raises:
        ShapeMismatchError: different numbers of elements.
        MetricInputError: a negative id, or an id ≥ K / C.
    """
    predicted = _as_labels(prediction, "prediction", "contingency_matrix")
    true = _as_labels(target, "target", "contingency_matrix").to(predicted.device)
    if predicted.numel() != true.numel():
        raise ShapeMismatchError(
            f"contingency_matrix: prediction has {predicted.numel()} elements, target {true.numel()}; "
            "give label maps of the same size"
        )
    if ignore_index is not None:
        keep = true != ignore_index
        predicted, true = predicted[keep], true[keep]
    clusters = _size("num_clusters", num_clusters, predicted, "prediction")
    classes = _size("num_classes", num_classes, true, "target")
    counts = torch.bincount(predicted * classes + true, minlength=clusters * classes)
    return counts.reshape(clusters, classes)


def _size(name: str, given: int | None, labels: torch.Tensor, role: str) -> int:
    largest = int(labels.max()) if labels.numel() else -1
    smallest = int(labels.min()) if labels.numel() else 0
    if smallest < 0:
        raise MetricInputError(
            f"contingency_matrix: the {role} holds the negative id {smallest}; ids must be 0..{name}-1 "
            "(remap unassigned pixels or pass them as ignore_index in the target)"
        )
    if given is None:
        return max(largest + 1, 1)
    if largest >= given:
        raise MetricInputError(
            f"contingency_matrix: the {role} holds id {largest} but {name}={given}; raise {name} to at least "
            f"{largest + 1} or fix the labels"
        )
    return int(given)


# --------------------------------------------------------------------------- information measures
def _entropy_of_counts(counts: torch.Tensor) -> float:
    counts = counts.double()
    counts = counts[counts > 0]
    total = counts.sum()
    if total <= 0:
        return 0.0
    share = counts / total
    return float(-(share * share.log()).sum())


def _mutual_information_of(contingency: torch.Tensor) -> float:
    table = contingency.double()
    total = table.sum()
    if total <= 0:
        return 0.0
    rows = table.sum(dim=1, keepdim=True)
    cols = table.sum(dim=0, keepdim=True)
    nonzero = table > 0
    terms = table / total * (table.log() + total.log() - (rows @ cols).log())
    return max(float(terms[nonzero].sum()), 0.0)


def _nmi_of(contingency: torch.Tensor, average_method: str) -> float:
    if average_method not in AVERAGE_METHODS:
        raise ConfigError(
            f"normalized_mutual_info: average_method must be one of {AVERAGE_METHODS}, got {average_method!r}"
        )
    used_rows = int((contingency.sum(dim=1) > 0).sum())
    used_cols = int((contingency.sum(dim=0) > 0).sum())
    if used_rows == used_cols and used_rows <= 1:
        return 1.0
    information = _mutual_information_of(contingency)
    if information == 0.0:
        return 0.0
    first, second = _entropy_of_counts(contingency.sum(dim=1)), _entropy_of_counts(contingency.sum(dim=0))
    if first <= 0.0 or second <= 0.0:  # one labeling is constant: nothing to share (MI is rounding noise)
        return 0.0
    if average_method == "geometric":
        normaliser = math.sqrt(first * second)
    elif average_method == "arithmetic":
        normaliser = (first + second) / 2
    elif average_method == "min":
        normaliser = min(first, second)
    else:
        normaliser = max(first, second)
    return min(max(information / max(normaliser, 1e-300), 0.0), 1.0)


def _ari_of(contingency: torch.Tensor) -> float:
    table = [[int(v) for v in row] for row in contingency.tolist()]
    total = sum(map(sum, table))
    rows = [sum(row) for row in table]
    cols = [sum(col) for col in zip(*table)] if table else []
    sum_squares = sum(v * v for row in table for v in row)
    same_both = sum_squares - total
    same_row_only = sum(r * r for r in rows) - sum_squares
    same_col_only = sum(c * c for c in cols) - sum_squares
    different_both = total * total - same_row_only - same_col_only - sum_squares
    if same_row_only == 0 and same_col_only == 0:
        return 1.0
    numerator = 2 * (same_both * different_both - same_row_only * same_col_only)
    denominator = (same_both + same_row_only) * (same_row_only + different_both) + (same_both + same_col_only) * (
        same_col_only + different_both
    )
    return numerator / denominator


def label_entropy(labels: Any, ignore: int | None = None) -> float:
    """Shannon entropy (nats) of the histogram of an integer label map (``ignore`` ids left out)."""
    values = _as_labels(labels, "labels", "label_entropy")
    if ignore is not None:
        values = values[values != ignore]
    if values.numel() == 0:
        return 0.0
    return _entropy_of_counts(torch.bincount(values - values.min()))


def mutual_information(first: Any, second: Any) -> float:
    """Mutual information (nats) between two label maps of the same size."""
    return _mutual_information_of(contingency_matrix(*_shifted_pair(first, second)))


def normalized_mutual_info(first: Any, second: Any, average_method: AverageMethod = "geometric") -> float:
    """NMI of two label maps; ``"geometric"`` is the reference's, ``"arithmetic"`` scikit-learn's default."""
    return _nmi_of(contingency_matrix(*_shifted_pair(first, second)), average_method)


def variation_of_information(first: Any, second: Any) -> float:
    """``H(first) + H(second) − 2·MI`` (nats); 0 iff the partitions are identical up to renaming."""
    table = contingency_matrix(*_shifted_pair(first, second))
    return max(
        _entropy_of_counts(table.sum(dim=1)) + _entropy_of_counts(table.sum(dim=0)) - 2 * _mutual_information_of(table),
        0.0,
    )


def adjusted_rand_index(first: Any, second: Any) -> float:
    """Adjusted Rand index of two label maps (exact integer pair counts)."""
    return _ari_of(contingency_matrix(*_shifted_pair(first, second)))


def _shifted_pair(first: Any, second: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps with their smallest id moved to 0 (label names do not matter to partition measures)."""
    a = _as_labels(first, "first labels", "clustering metric")
    b = _as_labels(second, "second labels", "clustering metric").to(a.device)
    if a.numel() != b.numel():
        raise ShapeMismatchError(
            f"clustering metric: the label maps have {a.numel()} and {b.numel()} elements; give maps of the same size"
        )
    if a.numel() == 0:
        return a, b
    return a - a.min(), b - b.min()


# --------------------------------------------------------------------------- alignment
def match_clusters(
    contingency: torch.Tensor,
    method: AlignmentMethod = "hungarian",
    unmatched: Unmatched = "majority",
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Map every cluster to a class: ``(K,)`` int64, ``UNASSIGNED`` (−1) for none.

    Args:
        contingency: ``(K, C)`` counts, rows = clusters, columns = classes.
        method: ``"hungarian"``, ``"majority"`` or ``"none"`` (see the module docstring).
        unmatched: for ``"hungarian"`` with more clusters than classes, what the clusters
            without a one-to-one partner get: ``"majority"`` (their majority class) or
            ``"unassigned"``.
        ignore_index: a class id never assigned (the unlabelled class).
    """
    if method not in ALIGNMENT_METHODS:
        raise ConfigError(f"match_clusters: method must be one of {ALIGNMENT_METHODS}, got {method!r}")
    if unmatched not in UNMATCHED_POLICIES:
        raise ConfigError(f"match_clusters: unmatched must be one of {UNMATCHED_POLICIES}, got {unmatched!r}")
    table = contingency.detach().cpu().double().numpy()
    clusters, classes = table.shape
    candidates = np.array([c for c in range(classes) if c != ignore_index], dtype=np.int64)
    mapping = np.full(clusters, UNASSIGNED, dtype=np.int64)
    if method == "none":
        identity = np.arange(clusters)
        keep = np.isin(identity, candidates)
        mapping[keep] = identity[keep]
        return torch.from_numpy(mapping)
    if candidates.size == 0:
        return torch.from_numpy(mapping)
    scores = table[:, candidates]
    majority = candidates[scores.argmax(axis=1)]
    if method == "majority":
        return torch.from_numpy(majority)
    cluster_index, class_index = linear_sum_assignment(scores, maximize=True)
    mapping[cluster_index] = candidates[class_index]  # cluster r → class c (the reference inverted this)
    if unmatched == "majority":
        left = mapping == UNASSIGNED
        mapping[left] = majority[left]
    return torch.from_numpy(mapping)


def mapping_from_manual(manual: Mapping[Any, Sequence[int] | int], num_clusters: int) -> torch.Tensor:
    """``(K,)`` cluster → class table from a ``{class: [cluster ids]}`` mapping (many clusters per class).

    Keys may be ints or strings of ints (JSON). Every cluster 0..K−1 must appear exactly once.

    Raises:
        ConfigError: a non-integer key, a cluster id outside 0..K−1, a cluster listed under
            two classes, or clusters missing from the mapping.
    """
    mapping = np.full(int(num_clusters), UNASSIGNED, dtype=np.int64)
    for key, clusters in manual.items():
        try:
            label = int(key)
        except (TypeError, ValueError):
            raise ConfigError(f"manual cluster mapping: class key {key!r} is not an integer id") from None
        members = [clusters] if isinstance(clusters, (int, np.integer)) else list(clusters)
        for cluster in members:
            cluster = int(cluster)
            if not 0 <= cluster < num_clusters:
                raise ConfigError(
                    f"manual cluster mapping: cluster {cluster} (under class {label}) is outside 0..{num_clusters - 1}"
                )
            if mapping[cluster] != UNASSIGNED and mapping[cluster] != label:
                raise ConfigError(
                    f"manual cluster mapping: cluster {cluster} is listed under classes {mapping[cluster]} and "
                    f"{label}; "
                    "give each cluster one class"
                )
            mapping[cluster] = label
    missing = np.flatnonzero(mapping == UNASSIGNED).tolist()
    if missing:
        raise ConfigError(
            f"manual cluster mapping: clusters {missing} are not mapped to any class; add them, e.g. "
            f"{{<class>: {missing}}}"
        )
    return torch.from_numpy(mapping)


def apply_mapping(prediction: Any, mapping: torch.Tensor) -> torch.Tensor:
    """Replace each cluster id of ``prediction`` (any shape) by ``mapping[id]`` (same shape, int64)."""
    tensor = prediction if isinstance(prediction, torch.Tensor) else torch.as_tensor(np.asarray(prediction))
    flat = _as_labels(tensor, "prediction", "apply_mapping")
    table = torch.as_tensor(mapping, dtype=torch.int64).to(flat.device)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= table.numel()):
        raise MetricInputError(
            f"apply_mapping: cluster ids span {int(flat.min())}..{int(flat.max())} but the mapping covers "
            f"0..{table.numel() - 1}"
        )
    return table[flat].reshape(tensor.shape)


def aligned_confusion(contingency: torch.Tensor, mapping: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """``(C, C)`` float64 confusion ``[true class, predicted class]`` after mapping the clusters.

    Pixels of unassigned clusters are counted in no predicted column (they are misses), so
    the row sums can be smaller than the class sizes ``contingency.sum(0)``.
    """
    table = contingency.detach().double().cpu()
    classes = table.shape[1] if num_classes is None else int(num_classes)
    confusion = torch.zeros(classes, classes, dtype=torch.float64)
    for cluster, label in enumerate(torch.as_tensor(mapping).tolist()):
        if label != UNASSIGNED:
            confusion[:, label] += table[cluster, :classes]
    return confusion


def _class_scores(
    confusion: torch.Tensor, class_sizes: torch.Tensor, classes: list[int], beta: float
) -> dict[str, torch.Tensor]:
    """Per-class IoU and Dice over the listed classes from a ``[true, pred]`` confusion.

    ``class_sizes`` are the true pixel counts per class, which include the pixels of
    unassigned clusters (absent from the confusion's columns).
    """
    true_positive = confusion.diagonal()[classes]
    true_count = class_sizes[classes]
    predicted_count = confusion.sum(dim=0)[classes]
    union = true_count + predicted_count - true_positive
    iou = torch.where(union > 0, true_positive / union.clamp_min(1e-300), torch.full_like(union, float("nan")))
    beta2 = beta * beta
    false_negative = true_count - true_positive
    false_positive = predicted_count - true_positive
    dice_denominator = (1 + beta2) * true_positive + beta2 * false_negative + false_positive
    dice = torch.where(
        dice_denominator > 0,
        (1 + beta2) * true_positive / dice_denominator.clamp_min(1e-300),
        torch.full_like(dice_denominator, float("nan")),
    )
    return {"iou_per_class": iou, "dice_per_class": dice}


def _nanmean(values: torch.Tensor) -> float:
    kept = values[~torch.isnan(values)]
    return float(kept.mean()) if kept.numel() else float("nan")


def scores_from_contingency(
    contingency: torch.Tensor,
    *,
    mapping: torch.Tensor | None = None,
    alignment: AlignmentMethod = "hungarian",
    unmatched: Unmatched = "majority",
    ignore_index: int | None = None,
    average_method: AverageMethod = "geometric",
    beta: float = 1.0,
) -> dict[str, Any]:
    """Every clustering score of a ``(K, C)`` contingency (rows clusters, columns classes).

    ``mapping`` (a ``(K,)`` cluster → class table, e.g. from :func:`mapping_from_manual`)
    overrides ``alignment``. Returns floats ``nmi, ari, vi, mutual_information,
    entropy_prediction, entropy_target, accuracy, kappa, miou, mdice, area_rmse`` plus
    ``iou_per_class`` / ``dice_per_class`` ``(C,)`` float64 tensors (NaN for classes without
    pixels and for ``ignore_index``) and the ``mapping`` used.
    """
    table = contingency.detach().cpu().to(torch.int64)
    clusters, classes = table.shape
    if mapping is None:
        mapping = match_clusters(table, alignment, unmatched, ignore_index)
    else:
        mapping = torch.as_tensor(mapping, dtype=torch.int64).cpu()
        if mapping.shape != (clusters,):
            raise ShapeMismatchError(
                f"scores_from_contingency: the mapping must have one entry per cluster ({clusters})"
            )
        if int(mapping.max()) >= classes:
            raise MetricInputError(
                f"scores_from_contingency: the mapping names class {int(mapping.max())} but there are {classes} classes"
            )
    total = float(table.sum())
    confusion = aligned_confusion(table, mapping, classes)
    class_sizes = table.sum(dim=0).double()
    listed = [c for c in range(classes) if c != ignore_index]
    per_class = _class_scores(confusion, class_sizes, listed, beta)
    iou = torch.full((classes,), float("nan"), dtype=torch.float64)
    dice = iou.clone()
    iou[listed] = per_class["iou_per_class"]
    dice[listed] = per_class["dice_per_class"]
    agreed = float(confusion.diagonal().sum())
    true_share = class_sizes / max(total, 1.0)
    predicted_share = confusion.sum(dim=0) / max(total, 1.0)
    accuracy = agreed / total if total > 0 else float("nan")
    expected = float((true_share * predicted_share).sum())
    kappa = (accuracy - expected) / (1.0 - expected) if total > 0 and expected < 1.0 else float("nan")
    area_rmse = float(((predicted_share[listed] - true_share[listed]) ** 2).mean().sqrt()) if listed else float("nan")
    information = _mutual_information_of(table)
    entropy_prediction = _entropy_of_counts(table.sum(dim=1))
    entropy_target = _entropy_of_counts(table.sum(dim=0))
    return {
        "nmi": _nmi_of(table, average_method),
        "ari": _ari_of(table),
        "vi": max(entropy_prediction + entropy_target - 2 * information, 0.0),
        "mutual_information": information,
        "entropy_prediction": entropy_prediction,
        "entropy_target": entropy_target,
        "accuracy": accuracy,
        "kappa": kappa,
        "miou": _nanmean(per_class["iou_per_class"]),
        "mdice": _nanmean(per_class["dice_per_class"]),
        "area_rmse": area_rmse,
        "iou_per_class": iou,
        "dice_per_class": dice,
        "mapping": mapping,
    }


def clustering_scores(
    prediction: Any,
    target: Any,
    *,
    num_clusters: int | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    alignment: AlignmentMethod = "hungarian",
    unmatched: Unmatched = "majority",
    mapping: Mapping[Any, Sequence[int] | int] | torch.Tensor | None = None,
    average_method: AverageMethod = "geometric",
    beta: float = 1.0,
) -> dict[str, Any]:
    """All scores of a cluster map against a class map (see :func:`scores_from_contingency`).

    ``mapping`` may be a manual ``{class: [clusters]}`` dict or a ``(K,)`` table; it
    overrides ``alignment``.
    """
    table = contingency_matrix(prediction, target, num_clusters, num_classes, ignore_index)
    if isinstance(mapping, Mapping):
        mapping = mapping_from_manual(mapping, table.shape[0])
    return scores_from_contingency(
        table,
        mapping=mapping,
        alignment=alignment,
        unmatched=unmatched,
        ignore_index=ignore_index,
        average_method=average_method,
        beta=beta,
    )


def hungarian_accuracy(
    prediction: Any,
    target: Any,
    *,
    ignore_index: int | None = None,
    unmatched: Unmatched = "majority",
) -> float:
    """Share of pixels whose cluster's Hungarian-matched class is their class."""
    return float(
        clustering_scores(prediction, target, ignore_index=ignore_index, unmatched=unmatched)["accuracy"]
    )


def cohen_kappa(prediction: Any, target: Any, ignore_index: int | None = None) -> float:
    """Cohen's κ of two label maps over the same class ids (no alignment; NaN when undefined)."""
    predicted = _as_labels(prediction, "prediction", "cohen_kappa")
    true = _as_labels(target, "target", "cohen_kappa").to(predicted.device)
    if predicted.numel() != true.numel():
        raise ShapeMismatchError(f"cohen_kappa: {predicted.numel()} predicted and {true.numel()} true labels")
    if ignore_index is not None:
        keep = true != ignore_index
        predicted, true = predicted[keep], true[keep]
    low = int(torch.minimum(predicted.min(), true.min())) if predicted.numel() else 0
    classes = int(torch.maximum(predicted.max(), true.max())) - low + 1 if predicted.numel() else 1
    table = contingency_matrix(predicted - low, true - low, classes, classes)
    return float(scores_from_contingency(table, alignment="none")["kappa"])


def _class_map_scores(
    prediction: Any, target: Any, num_classes: int | None, ignore_index: int | None
) -> dict[str, Any]:
    predicted = _as_labels(prediction, "prediction", "segmentation score")
    true = _as_labels(target, "target", "segmentation score")
    largest = max(int(predicted.max()) if predicted.numel() else 0, int(true.max()) if true.numel() else 0)
    classes = largest + 1 if num_classes is None else int(num_classes)
    table = contingency_matrix(predicted, true, classes, classes, ignore_index)
    return scores_from_contingency(table, alignment="none", ignore_index=ignore_index)


def mean_iou(prediction: Any, target: Any, num_classes: int | None = None, ignore_index: int | None = None) -> float:
    """Mean over classes with a non-empty union of ``|P_c ∩ T_c| / |P_c ∪ T_c|`` (ids compared as they are)."""
    return _class_map_scores(prediction, target, num_classes, ignore_index)["miou"]


def mean_dice(prediction: Any, target: Any, num_classes: int | None = None, ignore_index: int | None = None) -> float:
    """Mean over classes with a non-empty denominator of ``2TP / (|P_c| + |T_c|)`` (ids compared as they are)."""
    return _class_map_scores(prediction, target, num_classes, ignore_index)["mdice"]


def area_rmse(prediction: Any, target: Any, num_classes: int | None = None, ignore_index: int | None = None) -> float:
    """``sqrt(mean_c (|P_c|/N − |T_c|/N)²)`` over classes 0..C−1 (ids compared as they are)."""
    return _class_map_scores(prediction, target, num_classes, ignore_index)["area_rmse"]


# --------------------------------------------------------------------------- torchmetrics classes
SCALAR_SCORES: tuple[str, ...] = (
    "nmi",
    "ari",
    "vi",
    "mutual_information",
    "entropy_prediction",
    "entropy_target",
    "accuracy",
    "kappa",
    "miou",
    "mdice",
    "area_rmse",
)
HIGHER_IS_BETTER: dict[str, bool] = {
    "nmi": True,
    "ari": True,
    "vi": False,
    "mutual_information": True,
    "accuracy": True,
    "kappa": True,
    "miou": True,
    "mdice": True,
    "area_rmse": False,
}


class ClusteringMetrics(Metric):
    """Accumulates a ``(K, C)`` cluster × class contingency matrix and scores it.

    Args:
        num_clusters: K (ids 0..K−1 in the predictions).
        num_classes: C (ids 0..C−1 in the targets, ``ignore_index`` included).
        ignore_index: target id left out (e.g. 0 = unlabelled).
        alignment: ``"hungarian"``, ``"majority"`` or ``"none"``.
        unmatched: ``"majority"`` or ``"unassigned"`` for clusters a one-to-one match leaves over.
        mapping: manual ``{class: [clusters]}`` or a ``(K,)`` table (overrides ``alignment``).
        scores: names among :data:`SCALAR_SCORES` returned by ``compute()`` (default all).
        average_method: NMI normalisation (default the reference's ``"geometric"``).
        prefix: prepended to every key of ``compute()`` (e.g. ``"val/"``).

    ``update(prediction, target)`` takes label maps of the same shape, or probabilities /
    logits ``(B, K, H, W)`` with targets ``(B, H, W)`` (arg-maxed over axis 1).
    ``compute()`` returns ``{prefix + name: float64 scalar}``; :meth:`per_class` the
    per-class IoU / Dice and the mapping. The state is one int64 matrix summed across
    processes under DDP, so scores over several processes equal the single-process ones.
    Comparing two clusterings (e.g. this epoch's labels against last epoch's, NMI/VI
    stability) is ``ClusteringMetrics(K, K, alignment="none")``.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    contingency: torch.Tensor

    def __init__(
        self,
        num_clusters: int,
        num_classes: int,
        *,
        ignore_index: int | None = None,
        alignment: AlignmentMethod = "hungarian",
        unmatched: Unmatched = "majority",
        mapping: Mapping[Any, Sequence[int] | int] | torch.Tensor | None = None,
        scores: Sequence[str] = SCALAR_SCORES,
        average_method: AverageMethod = "geometric",
        prefix: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("num_clusters", num_clusters), ("num_classes", num_classes)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"{type(self).__name__}: {name} must be an integer >= 1, got {value!r}")
        if alignment not in ALIGNMENT_METHODS:
            raise ConfigError(f"{type(self).__name__}: alignment must be one of {ALIGNMENT_METHODS}, got {alignment!r}")
        if unmatched not in UNMATCHED_POLICIES:
            raise ConfigError(
                f"{type(self).__name__}: unmatched must be one of {UNMATCHED_POLICIES}, got {unmatched!r}"
            )
        if average_method not in AVERAGE_METHODS:
            raise ConfigError(
                f"{type(self).__name__}: average_method must be one of {AVERAGE_METHODS}, got {average_method!r}"
            )
        unknown = sorted(set(scores) - set(SCALAR_SCORES))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}: unknown scores {unknown}; choose among {', '.join(SCALAR_SCORES)}"
            )
        self.num_clusters = int(num_clusters)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.alignment = alignment
        self.unmatched = unmatched
        self.mapping = mapping_from_manual(mapping, self.num_clusters) if isinstance(mapping, Mapping) else mapping
        self.score_names = tuple(scores)
        self.average_method = average_method
        self.prefix = prefix
        self.add_state(
            "contingency",
            default=torch.zeros(self.num_clusters, self.num_classes, dtype=torch.int64),
            dist_reduce_fx="sum",
        )

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add the pixels of one batch (label maps, or ``(B, K, ...)`` scores with ``(B, ...)`` targets)."""
        if (
            isinstance(prediction, torch.Tensor)
            and prediction.is_floating_point()
            and prediction.ndim == target.ndim + 1
        ):
            prediction = prediction.argmax(dim=1)
        if tuple(prediction.shape) != tuple(target.shape):
            raise ShapeMismatchError(
                f"{type(self).__name__}.update: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} "
                "must have the same shape (or prediction (B, K, ...) scores for targets (B, ...))"
            )
        table = contingency_matrix(prediction, target, self.num_clusters, self.num_classes, self.ignore_index)
        self.contingency += table.to(self.contingency.device)

    def _scores(self) -> dict[str, Any]:
        return scores_from_contingency(
            self.contingency,
            mapping=self.mapping,
            alignment=self.alignment,
            unmatched=self.unmatched,
            ignore_index=self.ignore_index,
            average_method=self.average_method,
        )

    def compute(self) -> dict[str, torch.Tensor]:
        """``{prefix + score: float64 0-d tensor}`` over every pixel seen (all processes under DDP)."""
        values = self._scores()
        return {
            f"{self.prefix}{name}": torch.tensor(values[name], dtype=torch.float64) for name in self.score_names
        }

    def per_class(self) -> dict[str, torch.Tensor]:
        """``iou_per_class`` and ``dice_per_class`` ``(C,)`` float64 and the cluster → class ``mapping`` ``(K,)``."""
        values = self._scores()
        return {name: values[name] for name in ("iou_per_class", "dice_per_class", "mapping")}


class _SingleScore(ClusteringMetrics):
    score: str = ""

    def __init__(self, num_clusters: int, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_clusters, num_classes, scores=(self.score,), **kwargs)

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        """The score over every pixel seen, a float64 0-d tensor."""
        return torch.tensor(self._scores()[self.score], dtype=torch.float64)


class NormalizedMutualInfo(_SingleScore):
    """NMI between clusters and classes (geometric normalisation by default)."""

    score = "nmi"
    higher_is_better = True


class AdjustedRandIndex(_SingleScore):
    """Adjusted Rand index between clusters and classes."""

    score = "ari"
    higher_is_better = True


class VariationOfInformation(_SingleScore):
    """Variation of information (nats) between clusters and classes."""

    score = "vi"
    higher_is_better = False


class HungarianAccuracy(_SingleScore):
    """Pixel accuracy after the cluster → class alignment."""

    score = "accuracy"
    higher_is_better = True


class CohenKappa(_SingleScore):
    """Cohen's κ after the cluster → class alignment."""

    score = "kappa"
    higher_is_better = True


class ClusterMeanIoU(_SingleScore):
    """Mean IoU over classes after the cluster → class alignment."""

    score = "miou"
    higher_is_better = True


__all__ = [
    "ALIGNMENT_METHODS",
    "AVERAGE_METHODS",
    "AdjustedRandIndex",
    "ClusterMeanIoU",
    "ClusteringMetrics",
    "CohenKappa",
    "HIGHER_IS_BETTER",
    "HungarianAccuracy",
    "NormalizedMutualInfo",
    "SCALAR_SCORES",
    "UNASSIGNED",
    "UNMATCHED_POLICIES",
    "VariationOfInformation",
    "adjusted_rand_index",
    "aligned_confusion",
    "apply_mapping",
    "area_rmse",
    "clustering_scores",
    "cohen_kappa",
    "contingency_matrix",
    "hungarian_accuracy",
    "label_entropy",
    "mapping_from_manual",
    "match_clusters",
    "mean_dice",
    "mean_iou",
    "mutual_information",
    "normalized_mutual_info",
    "scores_from_contingency",
    "variation_of_information",
]
