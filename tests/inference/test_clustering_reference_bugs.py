"""Two reference bugs shown against the reference's behaviour: label-averaging tile merges and alignment skipped for K ≠ C."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsikit.cube import Cube
from hsikit.inference.clustering import cluster_scene
from hsikit.metrics.clustering import clustering_scores
from hsikit.models.clustering import GlobalClusteringModel

TINY = {"n_clusters": 4, "embed_dim": 8, "spectral_channels": 4, "n_spectral_layers": 2, "num_iters": 2, "window": 3}


def smooth_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    waves = [np.sin(rows / (3 + k) + k) * np.cos(cols / (4 + k)) for k in range(12)]
    return (np.stack(waves) * 50 + rng.normal(0, 5, (12, height, width))).astype(np.float32)


def reference_tiled_labels(model: GlobalClusteringModel, cube: torch.Tensor, overlap: int = 16) -> torch.Tensor:
    """The reference's [HEAD] tiled inference: 2 × 2 tiles + overlap, **integer labels** averaged where tiles overlap."""
    _, height, width = cube.shape
    pad_h, pad_w = height % 2, width % 2
    padded = F.pad(cube[None], (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="reflect")[0]
    full_h, full_w = padded.shape[1:]
    tile_h, tile_w = full_h // 2, full_w // 2
    total = torch.zeros(full_h, full_w, dtype=torch.float64)
    count = torch.zeros(full_h, full_w, dtype=torch.float64)
    with torch.no_grad():
        for row in range(2):
            for col in range(2):
                top, left = max(row * tile_h - overlap, 0), max(col * tile_w - overlap, 0)
                bottom, right = min((row + 1) * tile_h + overlap, full_h), min((col + 1) * tile_w + overlap, full_w)
                labels = model(padded[None, :, top:bottom, left:right]).labels[0]
                total[top:bottom, left:right] += labels.double()
                count[top:bottom, left:right] += 1
    merged = total / count
    return merged[pad_h // 2 : pad_h // 2 + height, pad_w // 2 : pad_w // 2 + width]


def test_reference_label_averaging_invents_ids_where_merged_probabilities_do_not() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GlobalClusteringModel(in_bands=12, **TINY).eval()
    data = smooth_scene(70, 90)
    with torch.no_grad():
        whole = model(torch.from_numpy(data)[None]).labels[0].numpy()
    reference = reference_tiled_labels(model, torch.from_numpy(data)).numpy()
    invented = reference != np.round(reference)  # e.g. (0 + 3) / 2 = 1.5: an id no tile predicted
    assert invented.sum() > 0
    truncated = reference.astype(np.int64)  # cast back to ids: a third cluster, wrong where the tiles disagreed
    assert (truncated[invented] != whole[invented]).any()
    ours = cluster_scene(model, Cube(data), scene_normalization="none", tile=40, overlap=16).labels
    assert ours.dtype == np.int64 and set(np.unique(ours)) <= set(range(TINY["n_clusters"]))
    assert (ours == whole).mean() > 0.999  # probabilities merged: the whole-image map, border included


def test_alignment_is_not_skipped_when_there_are_more_clusters_than_classes() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    clusters = truth * 2 + rng.integers(0, 2, 400)  # a perfect over-clustering: 0, 1 → class 0; 2, 3 → class 1
    # the reference aligned only when K == C and otherwise scored the raw cluster ids as class ids
    reference_accuracy = float(np.mean(clusters == truth))
    assert reference_accuracy < 0.5
    scores = clustering_scores(clusters, truth, num_clusters=4, num_classes=2)
    assert scores["accuracy"] == pytest.approx(1.0) and scores["mapping"].tolist() == [0, 0, 1, 1]
