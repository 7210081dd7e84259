"""Label-free model selection: used clusters, the selection score, checkpoint and K choice, the probe perturbation."""

from __future__ import annotations

import math

import pytest
import torch

from hsikit.errors import ConfigError
from hsikit.metrics.cluster_selection import (
    NOT_SELECTABLE,
    choose_checkpoint,
    choose_num_clusters,
    perturb_probe,
    required_clusters,
    selection_score,
    unperturb_map,
    used_clusters,
)


def test_used_clusters_counts_those_above_half_a_percent() -> None:
    assert used_clusters(torch.tensor([100, 0, 3, 897])) == 2  # 3 / 1000 < 0.005
    assert used_clusters(torch.tensor([100, 0, 5, 895])) == 3  # 5 / 1000 = 0.005 counts
    assert used_clusters(torch.zeros(4, dtype=torch.int64)) == 0


def test_required_clusters_is_half_the_active_ones_and_at_least_two() -> None:
    assert [required_clusters(k) for k in (1, 2, 3, 4, 5, 16)] == [1, 2, 2, 2, 3, 8]
    assert required_clusters(16, 0.25) == 4
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        required_clusters(4, 1.5)


def test_selection_is_the_smaller_agreement_when_enough_clusters_are_used() -> None:
    assert selection_score(0.8, 0.6, used=3, required=2) == 0.6
    assert selection_score(0.4, 0.9, used=2, required=2) == 0.4
    # collapse is perfectly stable and consistent, and still not selectable
    assert selection_score(1.0, 1.0, used=1, required=2) == NOT_SELECTABLE
    assert selection_score(float("nan"), 0.9, used=3, required=2) == NOT_SELECTABLE  # first round


def test_checkpoint_choice_takes_the_latest_best_and_skips_nan() -> None:
    assert choose_checkpoint([NOT_SELECTABLE, 0.5, 0.7, 0.7, float("nan"), 0.2]) == 3
    assert choose_checkpoint([float("nan"), float("nan")]) == 1


def test_number_of_clusters_is_the_largest_within_the_tolerance_of_the_best() -> None:
    scores = {2: 0.90, 3: 0.88, 4: 0.70, 6: float("nan")}
    assert choose_num_clusters(scores) == 3  # 0.88 >= 0.90 - 0.05; 4 is far below
    assert choose_num_clusters(scores, tolerance=0.0) == 2
    assert choose_num_clusters(scores, tolerance=0.25) == 4
    with pytest.raises(ConfigError, match="at least two epochs"):
        choose_num_clusters({3: math.nan})


def test_probe_perturbation_shifts_one_band_without_wrapping_and_mirrors() -> None:
    cube = torch.arange(2 * 4 * 2 * 3, dtype=torch.float32).reshape(2, 4, 2, 3)
    perturbed = perturb_probe(cube)
    # band c holds band c - 1 (band 0 repeated), columns mirrored
    torch.testing.assert_close(perturbed[:, 1:], torch.flip(cube[:, :-1], dims=(-1,)))
    torch.testing.assert_close(perturbed[:, 0], torch.flip(cube[:, 0], dims=(-1,)))
    labels = torch.tensor([[[0, 1, 2]]])
    torch.testing.assert_close(unperturb_map(torch.flip(labels, dims=(-1,))), labels)
