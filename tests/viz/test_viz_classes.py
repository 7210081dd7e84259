"""Class and cluster maps, confusion matrices and per-class scores on real labelled scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.viz.classes import (
    AGREEMENT_COLOURS,
    align_clusters,
    confusion_from_maps,
    per_class_scores,
    plot_class_maps,
    plot_confusion_matrix,
    plot_per_class_metrics,
)

GLACIER_CLASSES = ["background", "clean glacier", "debris-covered glacier"]


@pytest.fixture(scope="module")
def glacier(shared_data: Path) -> dict[str, object]:
    """Glacier tile 1 (10 bands, 256 x 256, GeoTIFF), its labels, and a nearest-class-mean prediction."""
    from hsikit.io import open_cube, open_labels

    cube = open_cube(shared_data / "glacier" / "images" / "1.tif")
    labels = np.asarray(open_labels(shared_data / "glacier" / "labels" / "1.tif")).astype(np.int64)
    pixels = np.asarray(cube.data, dtype=np.float64).reshape(cube.bands, -1).T
    flat = labels.reshape(-1)
    rng = np.random.default_rng(0)
    means = np.stack([pixels[rng.choice(np.flatnonzero(flat == k), 200, replace=False)].mean(axis=0) for k in range(3)])
    distances = ((pixels[:, None, :] - means[None]) ** 2).sum(axis=2)
    return {"cube": cube, "labels": labels, "prediction": distances.argmin(axis=1).reshape(labels.shape)}


def test_confusion_and_per_class_scores_match_scikit_learn(glacier) -> None:
    from sklearn.metrics import jaccard_score, precision_recall_fscore_support

    truth, predicted = glacier["labels"], glacier["prediction"]
    matrix, ids = confusion_from_maps(predicted, truth, unlabelled_value=None)
    assert ids == [0, 1, 2]
    for true_class in ids:
        for predicted_class in ids:
            assert matrix[true_class, predicted_class] == np.sum((truth == true_class) & (predicted == predicted_class))
    scores = per_class_scores(matrix)
    precision, recall, f1, support = precision_recall_fscore_support(truth.reshape(-1), predicted.reshape(-1))
    np.testing.assert_allclose(scores["precision"], precision)
    np.testing.assert_allclose(scores["recall"], recall)
    np.testing.assert_allclose(scores["f1"], f1)
    np.testing.assert_array_equal(scores["support"], support)
    np.testing.assert_allclose(scores["iou"], jaccard_score(truth.reshape(-1), predicted.reshape(-1), average=None))
    # with label 0 unlabelled (Indian Pines style) its pixels are not scored, and unknown predictions are misses
    matrix, ids = confusion_from_maps(predicted, truth, class_ids=[1, 2])
    assert ids == [1, 2] and matrix.sum() == np.sum(truth > 0) - np.sum((truth > 0) & (predicted == 0))


def test_class_maps_over_the_scene(glacier, tmp_path: Path, check_figure_files, image_panels) -> None:
    figure = plot_class_maps(glacier["prediction"], glacier["labels"], GLACIER_CLASSES, background=glacier["cube"],
                             first_label=0, unlabelled_value=None, path=tmp_path / "maps")
    titles = [a.get_title() for a in figure.axes]
    accuracy = np.mean(glacier["prediction"] == glacier["labels"])
    assert titles == ["ground truth", "prediction", f"agreement (accuracy {accuracy:.3f})"]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == GLACIER_CLASSES + ["correct", "wrong"]
    agreement = figure.axes[2].images[0].get_array()
    wrong = glacier["prediction"] != glacier["labels"]
    np.testing.assert_allclose(agreement[wrong][:, :3], np.tile(AGREEMENT_COLOURS["wrong"], (wrong.sum(), 1)))
    np.testing.assert_allclose(agreement[~wrong][:, :3], np.tile(AGREEMENT_COLOURS["correct"], ((~wrong).sum(), 1)))
    image = check_figure_files(tmp_path / "maps", panels=3)
    assert image_panels(image) == 3


def test_confusion_matrix_and_per_class_bars(glacier, tmp_path: Path, check_figure_files) -> None:
    matrix, ids = confusion_from_maps(glacier["prediction"], glacier["labels"], unlabelled_value=None)
    figure = plot_confusion_matrix(matrix, GLACIER_CLASSES, title="nearest mean", path=tmp_path / "confusion")
    axes = figure.axes[0]
    np.testing.assert_allclose(axes.images[0].get_array(), matrix / matrix.sum(axis=1, keepdims=True))
    assert axes.get_title() == f"nearest mean — overall accuracy {np.trace(matrix) / matrix.sum():.3f}"
    assert sorted(int(t.get_text()) for t in axes.texts) == sorted(int(v) for v in matrix.reshape(-1) if v)
    check_figure_files(tmp_path / "confusion", panels=1)
    figure = plot_per_class_metrics(matrix, GLACIER_CLASSES, path=tmp_path / "per_class")
    bars = figure.axes[0].patches
    scores = per_class_scores(matrix)
    heights = np.array([bar.get_height() for bar in bars]).reshape(4, 3)
    for row, metric in enumerate(("precision", "recall", "f1", "iou")):
        np.testing.assert_allclose(heights[row], scores[metric])
    check_figure_files(tmp_path / "per_class", panels=1)
    with pytest.raises(ConfigError, match="2 class names for a 3-class confusion matrix"):
        plot_confusion_matrix(matrix, GLACIER_CLASSES[:2])


def test_clusters_are_matched_to_classes(indian_pines, indian_pines_class_names, tmp_path: Path,
                                         check_figure_files) -> None:
    _, labels = indian_pines
    rng = np.random.default_rng(3)
    permutation = rng.permutation(17)  # cluster ids are arbitrary: relabel every class, background included
    clusters = permutation[labels]
    aligned, mapping = align_clusters(clusters, labels)
    labelled = labels > 0
    np.testing.assert_array_equal(aligned[labelled], labels[labelled])
    assert all(mapping[int(permutation[k])] == k for k in range(1, 17))
    with pytest.raises(ShapeMismatchError, match=r"labels of shape \(145, 144\)"):
        align_clusters(clusters, labels[:, :144])
    # clusters drawn alone: every id is a cluster (0 included), the legend says so
    figure = plot_class_maps(clusters[:60, :60], clusters=True, path=tmp_path / "clusters")
    names = [t.get_text() for t in figure.legends[0].get_texts()]
    assert names == [f"cluster {v}" for v in np.unique(clusters[:60, :60])]
    check_figure_files(tmp_path / "clusters", panels=1)
