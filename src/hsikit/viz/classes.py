"""Figures of segmentation, classification and clustering results.

* :func:`plot_class_maps`: the predicted map beside the ground truth and a map of where
  they agree, all over a true-colour background when an image is given, with one legend;
* :func:`plot_confusion_matrix`: counts and row-normalised recall of a confusion matrix;
* :func:`plot_per_class_metrics`: precision, recall, F1 and IoU of each class as bars.

Scores come from the metrics package (defined once): precision / recall / F1 from
:func:`hsikit.metrics.classification.scores_from_confusion`, IoU from
:func:`hsikit.metrics.clustering.scores_from_contingency`. Cluster maps (ids without
meaning) are first matched to classes with the Hungarian assignment of
:func:`hsikit.metrics.clustering.match_clusters` (:func:`align_clusters`), so colours and
scores compare like with like.

Label conventions follow :mod:`hsikit.viz.maps`: label value 0 is unlabelled by default
(``unlabelled_value``), class names are a list for values ``first_label..`` or a mapping.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from hsikit.cube import Cube
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.viz.maps import ClassNames, _check_labels, _colour_table, class_map_rgba, class_name_table
from hsikit.viz.style import FigureStyle, figure_style, get_style, save_figure_formats, styled_figure

#: Colours of the agreement map: correct, wrong, not scored (no ground truth).
AGREEMENT_COLOURS = {"correct": (0.80, 0.80, 0.80), "wrong": (0.86, 0.08, 0.24)}


def _text_width_in(characters: int, font_pt: float) -> float:
    """Approximate width of a line of ``characters`` characters at ``font_pt`` points, in inches."""
    return 0.55 * font_pt / 72.0 * characters


def align_clusters(
    clusters: np.ndarray, target: np.ndarray, unlabelled_value: int | None = 0
) -> tuple[np.ndarray, dict[int, int]]:
    """Give each cluster the class it overlaps most under a one-to-one (Hungarian) matching.

    Args:
        clusters: ``(H, W)`` cluster ids (non-negative).
        target: ``(H, W)`` class labels of the same scene; ``unlabelled_value`` pixels are ignored.
        unlabelled_value: the "no class" label of ``target``.

    Returns:
        The map with cluster ids replaced by class labels (clusters left without a partner
        take their majority class), and the ``{cluster: class}`` table used.
    """
    import torch

    from hsikit.metrics.clustering import apply_mapping, contingency_matrix, match_clusters

    # writable copies: torch refuses to wrap read-only (memory-mapped) arrays without a warning
    cluster_map = np.array(_check_labels(clusters, source="cluster map"))
    truth = np.array(_check_labels(target, cluster_map.shape, source="ground truth"))
    counts = contingency_matrix(cluster_map, truth, ignore_index=unlabelled_value)
    mapping = match_clusters(counts, "hungarian", "majority", ignore_index=unlabelled_value)
    # a cluster without any labelled pixel keeps no class: give it a label of its own past the classes
    spare = max(int(truth.max()), int(mapping.max()) if mapping.numel() else 0) + 1
    fixed = mapping.clone()
    for cluster in range(fixed.numel()):
        if int(fixed[cluster]) < 0:
            fixed[cluster] = spare
            spare += 1
    aligned = apply_mapping(torch.from_numpy(cluster_map), fixed).numpy()
    return aligned, {cluster: int(label) for cluster, label in enumerate(fixed.tolist())}


def confusion_from_maps(
    prediction: np.ndarray,
    target: np.ndarray,
    class_ids: Sequence[int] | None = None,
    unlabelled_value: int | None = 0,
) -> tuple[np.ndarray, list[int]]:
    """``(K, K)`` int64 confusion matrix (rows: true class) over the labelled pixels, and its class ids.

    ``class_ids`` (label values, in order) default to every value in either map except
    ``unlabelled_value`` and negatives. Pixels whose prediction is outside ``class_ids``
    are counted in no column (misses).
    """
    from hsikit.metrics.classification import confusion_matrix

    predicted = _check_labels(prediction, source="prediction")
    truth = _check_labels(target, predicted.shape, source="ground truth")
    if class_ids is None:
        present = np.union1d(np.unique(predicted), np.unique(truth))
        present = present[present >= 0]
        if unlabelled_value is not None:
            present = present[present != unlabelled_value]
        ids = [int(v) for v in present]
    else:
        ids = [int(v) for v in class_ids]
    lookup = {value: index for index, value in enumerate(ids)}
    scored = np.isin(truth, ids)
    true_index = np.vectorize(lookup.get, otypes=[np.int64])(truth[scored]) if scored.any() else np.zeros(0, int)
    predicted_values = predicted[scored]
    known = np.isin(predicted_values, ids)
    predicted_index = np.full(predicted_values.shape, len(ids), dtype=np.int64)  # an extra "other" column
    if known.any():
        predicted_index[known] = np.vectorize(lookup.get, otypes=[np.int64])(predicted_values[known])
    matrix = confusion_matrix(predicted_index, true_index, len(ids) + 1, ignore_index=None)
    return matrix[: len(ids), : len(ids)].astype(np.int64), ids


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and IoU of each class, ``(K,)`` float64 each, from a ``(K, K)`` confusion."""
    import torch

    from hsikit.metrics.classification import scores_from_confusion
    from hsikit.metrics.clustering import scores_from_contingency

    counts = np.asarray(matrix, dtype=np.int64)
    scores = scores_from_confusion(counts)
    # the contingency is (prediction, target): the transposed confusion, clusters = classes one to one
    iou = scores_from_contingency(torch.from_numpy(counts.T.copy()), alignment="none")["iou_per_class"]
    return {
        "precision": scores["precision"].numpy(),
        "recall": scores["recall"].numpy(),
        "f1": scores["per_class_f1"].numpy(),
        "iou": np.nan_to_num(iou.numpy(), nan=0.0),
        "support": scores["support"].numpy(),
    }


def plot_class_maps(
    prediction: np.ndarray,
    target: np.ndarray | None = None,
    class_names: ClassNames = None,
    *,
    background: Cube | np.ndarray | None = None,
    first_label: int = 1,
    unlabelled_value: int | None = 0,
    clusters: bool = False,
    alpha: float = 0.65,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Predicted map, ground truth and their agreement, side by side with one legend.

    Args:
        prediction: ``(H, W)`` predicted class (or cluster) labels.
        target: ``(H, W)`` ground truth of the same scene, or None (the prediction alone).
        class_names: names of the label values (list from ``first_label``, or a mapping).
        background: a cube (drawn in true colour) or image under the maps, or None.
        first_label, unlabelled_value: label conventions (see :mod:`hsikit.viz.maps`).
        clusters: the prediction holds cluster ids: with a target they are matched to
            classes first (:func:`align_clusters`); without one every id is a cluster
            (0 included) and the legend says "cluster k".
        alpha: opacity of class colours over the background.
        title, style, path, dpi: see :func:`hsikit.viz.errors.plot_error_maps`.
    """
    predicted = _check_labels(prediction, source="prediction")
    truth = None if target is None else _check_labels(target, predicted.shape, source="ground truth")
    names_source: ClassNames = class_names
    prediction_unlabelled = unlabelled_value
    heading = "prediction"
    if clusters and truth is not None:
        predicted, mapping = align_clusters(predicted, truth, unlabelled_value)
        heading = f"clusters matched to classes ({len(mapping)} clusters)"
    elif clusters:
        prediction_unlabelled = None
        names_source = {int(v): f"cluster {int(v)}" for v in np.unique(predicted) if v >= 0}
        heading = "clusters"
    panels: list[tuple[str, np.ndarray]] = []
    present = set(np.unique(predicted).tolist())
    if truth is not None:
        present |= set(np.unique(truth).tolist())
    if prediction_unlabelled is not None:
        present.discard(prediction_unlabelled)
    present = {v for v in present if v >= 0}
    top = max(present | {0})
    table = _colour_table(top, prediction_unlabelled, None)
    chosen = get_style(style)
    if truth is not None:
        panels.append(("ground truth", class_map_rgba(truth, background, alpha, unlabelled_value=unlabelled_value)))
    panels.append((heading, class_map_rgba(predicted, background, alpha, unlabelled_value=prediction_unlabelled)))
    agreement_text = ""
    if truth is not None:
        scored = truth >= 0 if unlabelled_value is None else (truth >= 0) & (truth != unlabelled_value)
        correct = scored & (predicted == truth)
        agreement = np.ones(predicted.shape + (4,), dtype=np.float32)
        if background is not None:  # unscored pixels show the scene, dimmed
            agreement[..., :3] = 0.25 + 0.5 * class_map_rgba(np.zeros_like(predicted), background, 0.0,
                                                             unlabelled_value=0)[..., :3]
        agreement[correct, :3] = AGREEMENT_COLOURS["correct"]
        agreement[scored & ~correct, :3] = AGREEMENT_COLOURS["wrong"]
        accuracy = float(correct.sum() / max(1, scored.sum()))
        agreement_text = f"agreement (accuracy {accuracy:.3f})"
        panels.append((agreement_text, agreement))
    names = class_name_table(names_source, sorted(present), first_label)
    names = {k: v for k, v in names.items() if k in present or (k >= 0 and k != prediction_unlabelled)}
    height, width = predicted.shape
    longest = max((len(n) for n in names.values()), default=8)
    legend_in = 0.5 + 0.0075 * float(chosen.rc.get("font.size", 10.0)) * min(longest, 40)
    with figure_style(chosen):
        figure = styled_figure(
            chosen, chosen.panel_in * len(panels) + legend_in, chosen.panel_in * height / max(width, 1) + 0.6
        )
        for number, (panel_title, rgba) in enumerate(panels, start=1):
            axes = figure.add_subplot(1, len(panels), number)
            axes.imshow(rgba, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(panel_title)
        handles = [Patch(facecolor=table[v] if v < len(table) else (0.5, 0.5, 0.5), edgecolor="0.3", linewidth=0.5,
                         label=name) for v, name in names.items() if v in present]
        if truth is not None:
            handles += [Patch(facecolor=AGREEMENT_COLOURS["correct"], label="correct"),
                        Patch(facecolor=AGREEMENT_COLOURS["wrong"], label="wrong")]
        if handles:
            figure.legend(handles=handles, loc="outside right upper", frameon=False, fontsize="small",
                          ncols=1 if len(handles) <= 24 else 2)
        if title:
            figure.suptitle(title)
        if path is not None:
            caption = (
                "Class maps: ground truth, prediction"
                + (" (clusters matched one-to-one to classes by the Hungarian assignment)" if clusters else "")
                + (", and where they agree (grey) or not (red); unlabelled pixels are not scored."
                   if truth is not None else ".")
            )
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": caption})
    return figure


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    normalise: bool = True,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """A ``(K, K)`` confusion matrix (rows: true class, columns: predicted class).

    Colours are the fraction of each true class (recall along the diagonal) when
    ``normalise``, else counts; cells show the counts (for up to 25 classes). The title
    gives the overall accuracy.
    """
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ShapeMismatchError(f"a confusion matrix is square (K, K), got shape {counts.shape}")
    size = counts.shape[0]
    names = list(class_names) if class_names is not None else [str(k) for k in range(size)]
    if len(names) != size:
        raise ConfigError(f"{len(names)} class names for a {size}-class confusion matrix; give one name per class")
    totals = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0) if normalise else counts
    chosen = get_style(style)
    font_pt = float(chosen.rc.get("font.size", 10.0))
    longest = max((len(n) for n in names), default=1)
    label_in = _text_width_in(min(longest, 40), font_pt) + 0.45
    cell_in = 0.32 * font_pt / 8.0
    heading = f"{title + ' — ' if title else ''}overall accuracy {float(np.trace(counts) / max(1, counts.sum())):.3f}"
    width = max(label_in + size * cell_in + 1.3, _text_width_in(len(heading), font_pt) + 1.0)
    height = 0.75 * label_in + size * cell_in + 0.8
    with figure_style(chosen):
        figure = styled_figure(chosen, width, height)
        axes = figure.add_subplot()
        image = axes.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalise else None)
        axes.set_xticks(range(size), labels=names, rotation=60, ha="right", rotation_mode="anchor")
        axes.set_yticks(range(size), labels=names)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        axes.grid(False)
        if size <= 25:
            for row in range(size):
                for column in range(size):
                    if counts[row, column]:
                        colour = "white" if shown[row, column] > 0.55 * (shown.max() or 1) else "black"
                        axes.text(column, row, str(int(counts[row, column])), ha="center", va="center",
                                  fontsize="x-small", color=colour)
        axes.set_title(heading)
        figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of the true class" if normalise else "pixels")
        if path is not None:
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": (
                "Confusion matrix: rows are true classes, columns predicted classes; numbers are pixel counts, "
                "colours the fraction of each true class.")})
    return figure


def plot_per_class_metrics(
    matrix: np.ndarray,
    class_names: Sequence[str] | None = None,
    metrics: Sequence[str] = ("precision", "recall", "f1", "iou"),
    *,
    title: str | None = None,
    style: str | FigureStyle | None = "screen",
    path: str | os.PathLike | None = None,
    dpi: int | None = None,
) -> Figure:
    """Grouped bars of per-class scores (precision, recall, F1, IoU) from a confusion matrix.

    Classes without a true pixel (support 0) are marked "n/a" instead of a zero bar.
    """
    scores = per_class_scores(matrix)
    size = np.asarray(matrix).shape[0]
    names = list(class_names) if class_names is not None else [str(k) for k in range(size)]
    if len(names) != size:
        raise ConfigError(f"{len(names)} class names for a {size}-class confusion matrix; give one name per class")
    unknown = [m for m in metrics if m not in scores or m == "support"]
    if unknown:
        raise ConfigError(f"unknown per-class score(s) {unknown}; choose among precision, recall, f1, iou")
    chosen = get_style(style)
    width = 0.8 / len(metrics)
    colours = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")
    font_pt = float(chosen.rc.get("font.size", 10.0))
    label_in = _text_width_in(min(max((len(n) for n in names), default=1), 40), font_pt)
    with figure_style(chosen):
        figure = styled_figure(chosen, max(4.0, 0.42 * size * font_pt / 8.0 + 1.5),
                               chosen.panel_in * 1.1 + 0.75 * label_in + 0.6)
        axes = figure.add_subplot()
        positions = np.arange(size)
        supported = scores["support"] > 0
        for number, metric in enumerate(metrics):
            values = np.where(supported, scores[metric], 0.0)
            axes.bar(positions + (number - (len(metrics) - 1) / 2) * width, values, width, label=metric,
                     color=colours[number % len(colours)])
        for position in positions[~supported]:
            axes.text(position, 0.02, "n/a", ha="center", va="bottom", fontsize="x-small", rotation=90)
        axes.set_xticks(positions, labels=names, rotation=60, ha="right", rotation_mode="anchor")
        axes.set_ylim(0, 1.05)
        axes.set_ylabel("score")
        axes.legend(frameon=False, ncols=len(metrics), loc="upper left", bbox_to_anchor=(0, 1.13))
        if title:
            figure.suptitle(title)
        if path is not None:
            save_figure_formats(figure, path, dpi=dpi, metadata={"Description": (
                "Per-class precision, recall, F1 and intersection over union (IoU) computed from the confusion "
                "matrix; n/a marks classes without ground-truth pixels.")})
    return figure


def class_names_for_ids(class_names: ClassNames, ids: Sequence[int], first_label: int = 1) -> list[str]:
    """The names of label values ``ids`` (``"class k"`` for unnamed ones), in order."""
    table = class_name_table(class_names, list(ids), first_label)
    return [table[int(i)] for i in ids]

