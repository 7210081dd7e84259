"""Clustering metrics against scikit-learn and hand-computed cases; alignment direction; K ≠ C; DDP merging."""

from __future__ import annotations

import itertools
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_rand_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    mutual_info_score,
    normalized_mutual_info_score,
)

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError
from hsikit.metrics.clustering import (
    UNASSIGNED,
    AdjustedRandIndex,
    ClusteringMetrics,
    CohenKappa,
    HungarianAccuracy,
    NormalizedMutualInfo,
    VariationOfInformation,
    adjusted_rand_index,
    apply_mapping,
    area_rmse,
    clustering_scores,
    cohen_kappa,
    contingency_matrix,
    hungarian_accuracy,
    label_entropy,
    mapping_from_manual,
    match_clusters,
    mean_dice,
    mean_iou,
    mutual_information,
    normalized_mutual_info,
    variation_of_information,
)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def random_pair(seed: int, clusters: int = 5, classes: int = 3, size: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A cluster map correlated with a class map (ids need not be contiguous)."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, size)
    prediction = (target * 2 + rng.integers(0, 2, size)) % clusters
    noise = rng.random(size) < 0.25
    prediction[noise] = rng.integers(0, clusters, int(noise.sum()))
    return prediction, target


# --------------------------------------------------------------------------- against scikit-learn
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_information_and_pair_measures_match_scikit_learn(seed: int) -> None:
    prediction, target = random_pair(seed)
    prediction = prediction + 3  # ids need not start at 0
    for method in ("geometric", "arithmetic", "min", "max"):
        assert normalized_mutual_info(prediction, target, method) == pytest.approx(
            normalized_mutual_info_score(target, prediction, average_method=method), abs=1e-12
        )
    assert mutual_information(prediction, target) == pytest.approx(mutual_info_score(target, prediction), abs=1e-12)
    assert adjusted_rand_index(prediction, target) == pytest.approx(adjusted_rand_score(target, prediction), abs=1e-12)


def test_degenerate_partitions_follow_scikit_learn_conventions() -> None:
    constant, other_constant = np.zeros(10, int), np.full(10, 4)
    varied = np.arange(10) % 3
    assert normalized_mutual_info(constant, other_constant) == 1.0
    assert normalized_mutual_info_score(constant, other_constant) == 1.0
    assert normalized_mutual_info(constant, varied) == normalized_mutual_info_score(varied, constant) == 0.0
    assert adjusted_rand_index(constant, other_constant) == adjusted_rand_score(constant, other_constant) == 1.0
    assert adjusted_rand_index(constant, varied) == pytest.approx(adjusted_rand_score(varied, constant))
    assert variation_of_information(constant, other_constant) == 0.0


def test_ari_is_exact_for_large_counts() -> None:
    # 3 million pixels: pair counts near 4.5e12, exact in Python integers
    table = torch.tensor([[1_000_000, 200_000], [300_000, 1_500_000]])
    prediction = np.repeat([0, 0, 1, 1], table.flatten().numpy())
    target = np.repeat([0, 1, 0, 1], table.flatten().numpy())
    assert adjusted_rand_index(prediction, target) == pytest.approx(adjusted_rand_score(target, prediction), rel=1e-12)


# --------------------------------------------------------------------------- hand-computed
def test_variation_of_information_of_a_known_pair() -> None:
    first = [0, 0, 1, 1]
    second = [0, 0, 0, 1]
    # H(first) = log 2, H(second) = 2 log 2 − ¾ log 3, H(joint) = 1.5 log 2
    # → VI = 2 H(joint) − H1 − H2 = ¾ log 3
    assert variation_of_information(first, second) == pytest.approx(0.75 * math.log(3), abs=1e-12)
    assert label_entropy(second) == pytest.approx(2 * math.log(2) - 0.75 * math.log(3), abs=1e-12)
    # symmetric, and 0 for the same partition under other names
    assert variation_of_information(second, first) == pytest.approx(0.75 * math.log(3), abs=1e-12)
    assert variation_of_information([0, 0, 1, 2], [5, 5, 9, 7]) == pytest.approx(0.0, abs=1e-15)
    # VI = H1 + H2 − 2 MI with scikit-learn's MI
    entropy_first, entropy_second = math.log(2), 2 * math.log(2) - 0.75 * math.log(3)
    expected = entropy_first + entropy_second - 2 * mutual_info_score(first, second)
    assert variation_of_information(first, second) == pytest.approx(expected, abs=1e-12)


def test_iou_dice_and_area_rmse_by_hand() -> None:
    prediction = [0, 0, 1, 1, 2, 2]
    target = [0, 1, 1, 1, 2, 0]
    # class 0: TP 1, |P| 2, |T| 2 → IoU 1/3, Dice 1/2; class 1: TP 2, |P| 2, |T| 3 → 2/3, 4/5;
    # class 2: TP 1, |P| 2, |T| 1 → 1/2, 2/3
    assert mean_iou(prediction, target) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert mean_dice(prediction, target) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert mean_iou(prediction, target) == pytest.approx(jaccard_score(target, prediction, average="macro"))
    assert mean_dice(prediction, target) == pytest.approx(f1_score(target, prediction, average="macro"))
    # area shares: predicted (2, 2, 2)/6, true (2, 3, 1)/6
    assert area_rmse(prediction, target) == pytest.approx(math.sqrt((0 + 1 / 36 + 1 / 36) / 3))

    # the reference's "Dice" (1+β²)TP / (TP + β²(FP+FN)) is 2·IoU, not Dice (it reaches 2)
    def reference_dice_class0() -> float:
        tp, fp, fn = 1, 1, 1
        return 2 * tp / (tp + fp + fn)

    scores = clustering_scores(prediction, target, alignment="none")
    assert scores["dice_per_class"][0].item() == pytest.approx(0.5)
    assert reference_dice_class0() == pytest.approx(2 / 3) != scores["dice_per_class"][0].item()


def test_classes_without_pixels_are_left_out_of_the_means() -> None:
    # class 3 appears in neither map: its union is 0 and it does not count
    assert mean_iou([0, 1], [0, 1], num_classes=4) == 1.0
    assert mean_dice([0, 1], [0, 1], num_classes=4) == 1.0


# --------------------------------------------------------------------------- alignment
def reference_hungarian_mapping(contingency: np.ndarray) -> np.ndarray:
    """The reference: rows = clusters, columns = labels, but it stores mapping[c] = r."""
    rows, cols = linear_sum_assignment(-contingency)
    mapping = np.zeros(contingency.shape[0], dtype=np.int64)
    for r, c in zip(rows, cols):
        mapping[c] = r
    return mapping


def test_hungarian_maps_cluster_to_class_not_the_inverse() -> None:
    rng = np.random.default_rng(3)
    target = rng.integers(0, 3, 300)
    prediction = (target + 2) % 3  # cluster k is class (k + 1) % 3: a 3-cycle, not its own inverse
    table = contingency_matrix(prediction, target)
    mapping = match_clusters(table)
    assert mapping.tolist() == [1, 2, 0]
    assert hungarian_accuracy(prediction, target) == 1.0
    assert torch.equal(apply_mapping(torch.as_tensor(prediction), mapping), torch.as_tensor(target))
    # the reference's inverted table relabels every pixel wrongly
    wrong = reference_hungarian_mapping(table.numpy())
    assert wrong.tolist() == [2, 0, 1]
    assert float((wrong[prediction] == target).mean()) == 0.0
    # the scikit-learn recipe: confusion_matrix(target, prediction) (rows = classes) + linear_sum_assignment
    confusion = confusion_matrix(target, prediction)
    class_index, cluster_index = linear_sum_assignment(-confusion)
    assert {int(k): int(c) for c, k in zip(class_index, cluster_index)} == dict(enumerate(mapping.tolist()))


def brute_force_accuracy(table: np.ndarray) -> float:
    """Best one-to-one cluster → class matching by enumeration (K ≤ C)."""
    clusters, classes = table.shape
    choices = itertools.permutations(range(classes), clusters)
    best = max(sum(table[k, c] for k, c in enumerate(choice)) for choice in choices)
    return best / table.sum()


def test_fewer_clusters_than_classes_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    target = rng.integers(0, 4, 200)
    prediction = np.where(target < 2, 0, 1)
    prediction[rng.random(200) < 0.2] = 2
    table = contingency_matrix(prediction, target)
    scores = clustering_scores(prediction, target)
    assert scores["accuracy"] == pytest.approx(brute_force_accuracy(table.numpy()))
    assert len(set(scores["mapping"].tolist())) == 3  # one class each


def test_more_clusters_than_classes_many_to_one_options() -> None:
    rng = np.random.default_rng(5)
    target = rng.integers(0, 2, 500)
    # 4 clusters: 0, 1 split class 0; 2, 3 split class 1 (with noise)
    prediction = target * 2 + rng.integers(0, 2, 500)
    prediction[rng.random(500) < 0.1] = rng.integers(0, 4, 1)[0]
    table = contingency_matrix(prediction, target).numpy()
    majority = table.argmax(axis=1)
    unassigned = match_clusters(torch.as_tensor(table), unmatched="unassigned")
    assert (unassigned == UNASSIGNED).sum() == 2  # two clusters have no one-to-one partner
    matched = unassigned[unassigned != UNASSIGNED]
    assert sorted(matched.tolist()) == [0, 1]
    filled = match_clusters(torch.as_tensor(table), unmatched="majority")
    assert filled.tolist() == [
        int(unassigned[k]) if unassigned[k] != UNASSIGNED else int(majority[k]) for k in range(4)
    ]
    assert match_clusters(torch.as_tensor(table), method="majority").tolist() == majority.tolist()
    # accuracy of the many-to-one map, by hand
    by_hand = sum(table[k, filled[k]] for k in range(4)) / table.sum()
    assert clustering_scores(prediction, target)["accuracy"] == pytest.approx(by_hand)
    strict = clustering_scores(prediction, target, unmatched="unassigned")
    matched_pixels = sum(table[k, unassigned[k]] for k in range(4) if unassigned[k] >= 0)
    assert strict["accuracy"] == pytest.approx(matched_pixels / 500)


def test_pixels_of_unassigned_clusters_count_as_misses_by_hand() -> None:
    prediction = [0, 0, 1, 1, 2]
    target = [0, 0, 1, 1, 1]
    strict = clustering_scores(prediction, target, unmatched="unassigned")
    assert strict["mapping"].tolist() == [0, 1, UNASSIGNED]
    # class 1: TP 2, predicted 2, true 3 (the unassigned pixel is a miss) → IoU 2/3, Dice 4/5
    assert strict["iou_per_class"].tolist() == pytest.approx([1.0, 2 / 3])
    assert strict["dice_per_class"].tolist() == pytest.approx([1.0, 0.8])
    # p_o = 4/5, p_e = (2/5)(2/5) + (3/5)(2/5) = 2/5 → κ = (4/5 − 2/5) / (3/5) = 2/3
    assert strict["accuracy"] == pytest.approx(0.8) and strict["kappa"] == pytest.approx(2 / 3)
    filled = clustering_scores(prediction, target, unmatched="majority")
    assert filled["mapping"].tolist() == [0, 1, 1] and filled["miou"] == 1.0 and filled["kappa"] == pytest.approx(1.0)


def test_kappa_matches_scikit_learn_after_alignment() -> None:
    for seed, unmatched in ((6, "majority"), (7, "unassigned")):
        prediction, target = random_pair(seed, clusters=5, classes=3)
        scores = clustering_scores(prediction, target, unmatched=unmatched)
        aligned = apply_mapping(prediction, scores["mapping"]).numpy()
        assert scores["kappa"] == pytest.approx(cohen_kappa_score(target, aligned), abs=1e-12)
        assert scores["accuracy"] == pytest.approx(float((aligned == target).mean()), abs=1e-15)
    prediction, target = random_pair(8, clusters=3, classes=3)
    assert cohen_kappa(prediction, target) == pytest.approx(cohen_kappa_score(target, prediction), abs=1e-12)
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))  # undefined, as in scikit-learn


def test_manual_mapping_many_clusters_per_class() -> None:
    mapping = mapping_from_manual({0: [0], 1: [1, 2, 3]}, num_clusters=4)
    assert mapping.tolist() == [0, 1, 1, 1]
    assert mapping_from_manual({"1": [0, 2], "0": 1}, 3).tolist() == [1, 0, 1]  # JSON keys, a bare id
    prediction = [0, 1, 2, 3, 3]
    target = [0, 1, 1, 1, 0]
    scores = clustering_scores(prediction, target, mapping={0: [0], 1: [1, 2, 3]})
    assert scores["accuracy"] == pytest.approx(0.8)
    with pytest.raises(ConfigError, match=r"clusters \[3\] are not mapped"):
        mapping_from_manual({0: [0], 1: [1, 2]}, 4)
    with pytest.raises(ConfigError, match="listed under classes 0 and 1"):
        mapping_from_manual({0: [0, 1], 1: [1]}, 2)
    with pytest.raises(ConfigError, match="outside 0..1"):
        mapping_from_manual({0: [0, 5]}, 2)


def test_ignore_index_leaves_unlabelled_pixels_out_and_never_maps_to_them() -> None:
    rng = np.random.default_rng(9)
    target = rng.integers(0, 4, 400)  # 0 = unlabelled
    prediction = np.where(target == 0, rng.integers(0, 3, 400), target - 1)
    scores = clustering_scores(prediction, target, ignore_index=0)
    assert scores["accuracy"] == 1.0 and 0 not in scores["mapping"].tolist()
    assert math.isnan(float(scores["iou_per_class"][0]))
    labelled = target != 0
    assert scores["nmi"] == pytest.approx(
        normalized_mutual_info_score(target[labelled], prediction[labelled], average_method="geometric")
    )


def test_input_errors_name_the_problem() -> None:
    with pytest.raises(ShapeMismatchError, match="same size"):
        contingency_matrix([0, 1], [0, 1, 1])
    with pytest.raises(MetricInputError, match="num_clusters=2"):
        contingency_matrix([0, 2], [0, 1], num_clusters=2)
    with pytest.raises(MetricInputError, match="negative id -1"):
        contingency_matrix([0, -1], [0, 1])
    with pytest.raises(MetricInputError, match="fractional"):
        contingency_matrix([0.5, 1.0], [0, 1])


# --------------------------------------------------------------------------- torchmetrics classes
def batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for size in (2, 1, 3):
        target = torch.randint(0, 4, (size, 6, 5), generator=generator)
        prediction = (target + torch.randint(0, 2, (size, 6, 5), generator=generator)) % 5
        out.append((prediction, target))
    return out


def pooled(data: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    return (
        torch.cat([p.flatten() for p, _ in data]).numpy(),
        torch.cat([t.flatten() for _, t in data]).numpy(),
    )


def test_metric_accumulates_a_contingency_over_batches() -> None:
    data = batches(10)
    metric = ClusteringMetrics(num_clusters=5, num_classes=4, ignore_index=0, prefix="val/")
    singles = [NormalizedMutualInfo(5, 4, ignore_index=0), AdjustedRandIndex(5, 4, ignore_index=0),
               VariationOfInformation(5, 4, ignore_index=0), HungarianAccuracy(5, 4, ignore_index=0),
               CohenKappa(5, 4, ignore_index=0)]
    for prediction, target in data:
        metric.update(prediction, target)
        for single in singles:
            single.update(prediction, target)
    prediction, target = pooled(data)
    expected = clustering_scores(prediction, target, num_clusters=5, num_classes=4, ignore_index=0)
    result = metric.compute()
    for name in ("nmi", "ari", "vi", "accuracy", "kappa", "miou", "mdice", "area_rmse"):
        assert result[f"val/{name}"].item() == pytest.approx(expected[name], abs=1e-12), name
    for single, name in zip(singles, ("nmi", "ari", "vi", "accuracy", "kappa")):
        assert single.compute().item() == pytest.approx(expected[name], abs=1e-12)
    labelled = target != 0
    assert result["val/ari"].item() == pytest.approx(adjusted_rand_score(target[labelled], prediction[labelled]))
    assert int(metric.contingency.sum()) == int(labelled.sum())
    per_class = metric.per_class()
    assert per_class["iou_per_class"].shape == (4,) and per_class["mapping"].shape == (5,)


def test_metric_takes_probabilities_and_survives_half_precision_casts() -> None:
    generator = torch.Generator().manual_seed(11)
    scores = torch.randn(2, 3, 4, 4, generator=generator)
    target = torch.randint(0, 3, (2, 4, 4), generator=generator)
    metric = ClusteringMetrics(3, 3).to(torch.bfloat16)
    metric.update(scores, target)
    assert metric.contingency.dtype == torch.int64
    assert torch.equal(metric.contingency, contingency_matrix(scores.argmax(1), target, 3, 3))
    with pytest.raises(ShapeMismatchError, match="same shape"):
        metric.update(torch.zeros(2, 4, 5, dtype=torch.int64), target)


def test_summing_process_states_equals_one_process() -> None:
    data = batches(12)
    single = ClusteringMetrics(5, 4)
    first, second = ClusteringMetrics(5, 4), ClusteringMetrics(5, 4)
    for index, (prediction, target) in enumerate(data):
        single.update(prediction, target)
        (first if index % 2 == 0 else second).update(prediction, target)
    first.merge_state(second)
    for name, value in single.compute().items():
        assert first.compute()[name].item() == pytest.approx(value.item(), abs=1e-12)


def test_stability_between_two_clusterings_is_permutation_invariant() -> None:
    generator = torch.Generator().manual_seed(13)
    previous = torch.randint(0, 4, (3, 8, 8), generator=generator)
    current = torch.tensor([2, 0, 3, 1])[previous]  # same partition, other ids
    metric = ClusteringMetrics(4, 4, alignment="none", scores=("nmi", "vi", "entropy_prediction"))
    metric.update(current, previous)
    result = metric.compute()
    assert result["nmi"].item() == pytest.approx(1.0) and result["vi"].item() == pytest.approx(0.0, abs=1e-12)
    assert result["entropy_prediction"].item() == pytest.approx(label_entropy(previous))
    with pytest.raises(ConfigError, match="unknown scores"):
        ClusteringMetrics(4, 4, scores=("purity",))


# --------------------------------------------------------------------------- real data
def test_kmeans_clusters_of_indian_pines_scored_like_scikit_learn(shared_data: Path) -> None:
    from sklearn.cluster import KMeans

    folder = shared_data / "indian_pines"
    cube = np.load(folder / "Indian_pines_corrected.npy").astype(np.float32)  # (145, 145, 200)
    labels = np.load(folder / "Indian_pines_gt.npy").astype(np.int64)  # 0 = unlabelled, 16 classes
    pixels = cube.reshape(-1, cube.shape[-1])
    pixels = (pixels - pixels.mean(0)) / pixels.std(0)
    clusters = KMeans(n_clusters=20, n_init=1, max_iter=20, random_state=0).fit_predict(pixels).reshape(145, 145)
    metric = ClusteringMetrics(num_clusters=20, num_classes=17, ignore_index=0)
    metric.update(torch.as_tensor(clusters)[None], torch.as_tensor(labels)[None])
    result = metric.compute()
    labelled = labels != 0
    true, predicted = labels[labelled], clusters[labelled]
    expected_nmi = normalized_mutual_info_score(true, predicted, average_method="geometric")
    assert result["nmi"].item() == pytest.approx(expected_nmi)
    assert result["ari"].item() == pytest.approx(adjusted_rand_score(true, predicted))
    aligned = apply_mapping(predicted, metric.per_class()["mapping"]).numpy()
    assert result["accuracy"].item() == pytest.approx(float((aligned == true).mean()))
    assert result["kappa"].item() == pytest.approx(cohen_kappa_score(true, aligned))
    assert 0.2 < result["nmi"].item() < 0.9  # k-means finds some, not all, of the crop structure


# --------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ddp_worker(rank: int, world_size: int, port: int, output: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        metric = ClusteringMetrics(5, 4, ignore_index=0)
        for index, (prediction, target) in enumerate(batches(14)):
            if index % world_size == rank:
                metric.update(prediction, target)
        result = {name: value.item() for name, value in metric.compute().items()}
        if rank == 0:
            torch.save(result, output)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes re-import torch: ~30 s on 2 busy cores
def test_ddp_sync_over_two_gloo_processes_equals_one_process(tmp_path: Path) -> None:
    output = str(tmp_path / "ddp_result.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), output), nprocs=2, join=True)
    synced = torch.load(output, weights_only=True)
    prediction, target = pooled(batches(14))
    expected = clustering_scores(prediction, target, num_clusters=5, num_classes=4, ignore_index=0)
    for name, value in synced.items():
        assert value == pytest.approx(expected[name], abs=1e-12), name
