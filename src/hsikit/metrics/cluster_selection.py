"""Label-free model selection for clustering: which checkpoint, and how many clusters, without labels.

Clustering is trained without labels, so its checkpoint and its number of clusters K must
be chosen without them too (labels, when a scene has some, are only reported). The
criterion (documented in ``docs/clustering.md``) is computed on a fixed *probe set* — the
validation scenes, by default the training scenes — at every validation round ``e``:

``stability``
    ``ARI(L_e, L_{e−1})``: the adjusted Rand index between this round's cluster map of
    the probe set and the previous round's. A model that keeps relabelling pixels between
    epochs has not converged; ARI is corrected for chance, so it does not reward many
    small random clusters, and it ignores how the ids are named.
``consistency``
    ``ARI(L_e, L̃_e)``: agreement of the cluster map with the map of a fixed perturbation of
    the probe set (spectrum shifted by one band, without wrap-around, and the image mirrored
    left–right, the map mirrored back). A clustering that follows noise changes under it.
``used clusters``
    clusters holding at least ``min_share`` (0.5 %) of the probe pixels. Collapse onto one
    cluster is perfectly stable and consistent, so a round qualifies only when at least
    ``max(2, ⌈min_used_fraction · K⌉)`` clusters are used (``min_used_fraction`` = 0.5).

``selection = min(stability, consistency)`` for a qualifying round; −1 (*not selectable*,
the lowest value ARI-based scores can approach) for a round that uses too few clusters and
for the first round, which has nothing to compare with. The **checkpoint** is the round
with the highest selection score (the latest among ties); the clustering task logs it as
``val/selection`` and checkpoints by it.

The **number of clusters**: train one model per candidate K and take each one's best
selection score ``S_K``. Stability criteria favour small K (fewer, larger clusters are
easier to reproduce), so instead of the arg-max the rule takes the *largest* K whose score
is within ``tolerance`` (0.05) of the best one (:func:`choose_num_clusters`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from hsikit.errors import ConfigError

MIN_SHARE = 0.005
MIN_USED_FRACTION = 0.5
K_TOLERANCE = 0.05


def perturb_probe(cube: torch.Tensor) -> torch.Tensor:
    """The fixed probe perturbation of a ``(B, C, H, W)`` batch: spectrum shifted by +1 band (edge), mirrored left–right."""
    from hsikit.data.clustering_augment import shift_bands

    shifted = shift_bands(cube, torch.ones(cube.shape[0], dtype=torch.int64), "edge")
    return torch.flip(shifted, dims=(-1,))


def unperturb_map(values: torch.Tensor) -> torch.Tensor:
    """Mirror a map computed on :func:`perturb_probe` input back (last axis = width)."""
    return torch.flip(values, dims=(-1,))


def used_clusters(counts: torch.Tensor, min_share: float = MIN_SHARE) -> int:
    """Clusters holding at least ``min_share`` of the pixels counted in ``counts`` ``(K,)``."""
    total = float(counts.sum())
    if total <= 0:
        return 0
    return int((counts.double() / total >= min_share).sum())


def required_clusters(active: int, min_used_fraction: float = MIN_USED_FRACTION) -> int:
    """Used clusters a round needs to qualify: ``max(2, ⌈min_used_fraction · active⌉)``, at most ``active``."""
    if not 0.0 <= min_used_fraction <= 1.0:
        raise ConfigError(f"min_used_fraction must lie in [0, 1], got {min_used_fraction!r}")
    return min(max(2, math.ceil(min_used_fraction * active)), max(active, 1))


NOT_SELECTABLE = -1.0


def selection_score(stability: float, consistency: float, used: int, required: int) -> float:
    """``min(stability, consistency)`` when ``used >= required``; :data:`NOT_SELECTABLE` (−1) when fewer
    clusters are used or ``stability`` is NaN (first round)."""
    if math.isnan(stability) or math.isnan(consistency) or used < required:
        return NOT_SELECTABLE
    return float(min(stability, consistency))


def choose_checkpoint(scores: Sequence[float]) -> int:
    """Index of the best selection score (the latest among ties; NaN never wins; all NaN → the last)."""
    best_index, best_value = len(scores) - 1, -math.inf
    for index, value in enumerate(scores):
        if not math.isnan(value) and value >= best_value:
            best_index, best_value = index, value
    return best_index


def choose_num_clusters(scores: Mapping[int, float], tolerance: float = K_TOLERANCE) -> int:
    """The largest K whose best selection score is within ``tolerance`` of the highest one."""
    finite = {int(k): float(v) for k, v in scores.items() if not math.isnan(float(v))}
    if not finite:
        raise ConfigError("choose_num_clusters: no finite selection score; train each K for at least two epochs")
    best = max(finite.values())
    return max(k for k, value in finite.items() if value >= best - tolerance)


__all__ = [
    "K_TOLERANCE",
    "MIN_SHARE",
    "MIN_USED_FRACTION",
    "NOT_SELECTABLE",
    "choose_checkpoint",
    "choose_num_clusters",
    "perturb_probe",
    "required_clusters",
    "selection_score",
    "unperturb_map",
    "used_clusters",
]
