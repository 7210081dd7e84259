"""Clustering losses keep finite gradients when a cluster is unused (found training 16 clusters at temp 0.005)."""

from __future__ import annotations

import math

import torch

from hsikit.losses.clustering import ClusteringLoss, balance_loss


def test_balance_gradient_is_finite_when_a_cluster_has_no_mass() -> None:
    probs = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    probs[:, 0], probs[:, 1] = 0.25, 0.75
    probs.requires_grad_(True)
    loss = balance_loss(probs)
    # p̄ = (0.25, 0.75, 0): KL to uniform over 3 clusters, 0 log 0 = 0
    expected = 0.25 * math.log(0.25) + 0.75 * math.log(0.75) + math.log(3)
    assert abs(float(loss.detach()) - expected) < 1e-12
    loss.backward()
    assert bool(torch.isfinite(probs.grad).all())
    # q = p̄ / Σp̄, so dL/dp̄_k = log q_k − Σ_j q_j log q_j, shared by the 4 pixels
    entropy_term = 0.25 * math.log(0.25) + 0.75 * math.log(0.75)
    assert abs(float(probs.grad[0, 0, 0, 0]) - (math.log(0.25) - entropy_term) / 4) < 1e-12
    # the empty cluster: log of the floor (the clamp passes no gradient), finite and pulling p̄_2 up
    floor = math.log(torch.finfo(torch.float64).tiny)
    assert abs(float(probs.grad[0, 2, 0, 0]) - (floor - entropy_term - 1) / 4) < 1e-9


def test_a_sharp_assignment_with_empty_clusters_trains_without_nan() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 16, 8, 8) * 200  # cos / 0.005
    logits[:, 15] = -400.0  # a cluster no pixel is near: its probability underflows to exactly 0
    logits.requires_grad_(True)
    probs = torch.softmax(logits, dim=1)
    assert bool((probs.sum(dim=(0, 2, 3)) == 0).any())
    view = type("View", (), {"embeddings": torch.nn.functional.normalize(torch.randn(2, 4, 8, 8), dim=1),
                             "logits": logits, "probs": probs})()  # fmt: skip
    result = ClusteringLoss()(view, view, torch.nn.functional.normalize(torch.randn(16, 4), dim=1))
    result.total.backward()
    assert bool(torch.isfinite(logits.grad).all())
