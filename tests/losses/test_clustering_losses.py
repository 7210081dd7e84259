"""Deep Global Clustering losses: hand-computed values and the reference's bugs (balance sign, misaligned views)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.clustering import (
    ClusteringLoss,
    ViewGeometry,
    balance_loss,
    cluster_usage,
    compactness_loss,
    consistency_loss,
    orthogonality_loss,
    sinkhorn_balanced_loss,
    sinkhorn_targets,
    symmetric_kl,
    uniform_assignment_loss,
    view_correspondence,
)
from hsikit.models import tiny_model_arguments
from hsikit.models.clustering import GlobalClusteringModel


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def probs_map(rows: list[list[float]], height: int, width: int) -> torch.Tensor:
    """``(1, K, H, W)`` from a list of H·W per-pixel distributions (row-major)."""
    return torch.tensor(rows, dtype=torch.float64).T.reshape(1, -1, height, width)


# --------------------------------------------------------------------------- balance (sign bug)
def reference_balance(probs: torch.Tensor) -> torch.Tensor:
    """The reference's "balance" term: the ENTROPY of mean usage, added to a minimised loss."""
    usage = probs.mean(dim=(0, 2, 3)) + 1e-6
    return -(usage * usage.log()).sum()


def test_balance_is_kl_to_uniform_by_hand() -> None:
    uniform = torch.full((1, 4, 2, 2), 0.25, dtype=torch.float64)
    assert balance_loss(uniform).item() == pytest.approx(0.0, abs=1e-15)
    half = probs_map([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], 2, 2)
    # p̄ = (½, ½, 0, 0): Σ p̄ log p̄ + log 4 = −log 2 + log 4 = log 2
    assert balance_loss(half).item() == pytest.approx(math.log(2), abs=1e-12)
    collapsed = probs_map([[1, 0, 0, 0]] * 4, 2, 2)
    assert balance_loss(collapsed).item() == pytest.approx(math.log(4), abs=1e-12)
    # only active clusters count: with clusters 2 and 3 switched off, (½, ½) is balanced
    active = torch.tensor([True, True, False, False])
    assert balance_loss(half, active=active).item() == pytest.approx(0.0, abs=1e-12)


def test_balance_sign_penalises_collapse_where_the_reference_rewards_it() -> None:
    uniform = torch.full((1, 4, 2, 2), 0.25, dtype=torch.float64)
    collapsed = probs_map([[1, 0, 0, 0]] * 4, 2, 2)
    assert balance_loss(collapsed) > balance_loss(uniform)  # hsikit: collapse costs more
    assert reference_balance(collapsed) < reference_balance(uniform)  # reference: collapse is *cheaper*
    # one gradient step on the logits: ours spreads usage, the reference concentrates it
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(1, 3, 4, 4, generator=generator, dtype=torch.float64)
    start[:, 0] += 1.5

    def usage_entropy_after_step(loss_fn) -> float:
        logits = start.clone().requires_grad_(True)
        loss_fn(torch.softmax(logits, dim=1)).backward()
        with torch.no_grad():
            usage = cluster_usage(torch.softmax(logits - 0.5 * logits.grad, dim=1))
        return float(-(usage * usage.log()).sum())

    before = float(-(cluster_usage(torch.softmax(start, 1)) * cluster_usage(torch.softmax(start, 1)).log()).sum())
    assert usage_entropy_after_step(balance_loss) > before
    assert usage_entropy_after_step(reference_balance) < before


# --------------------------------------------------------------------------- compactness, orthogonality, uniform
def test_compactness_by_hand_and_with_a_mask() -> None:
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).T.reshape(1, 2, 1, 2)
    probs = probs_map([[0.75, 0.25], [0.5, 0.5]], 1, 2)
    centroids = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    # pixel 0: 0.75·(1−1) + 0.25·(1+1) = 0.5;  pixel 1: 0.5·1 + 0.5·1 = 1.0  → mean 0.75
    assert compactness_loss(embeddings, probs, centroids).item() == pytest.approx(0.75)
    mask = torch.tensor([[[False, True]]])
    assert compactness_loss(embeddings, probs, centroids, mask).item() == pytest.approx(1.0)
    with pytest.raises(ShapeMismatchError, match=r"centroids must be \(K, D\)"):
        compactness_loss(embeddings, probs, centroids.T[:1])


def test_orthogonality_by_hand() -> None:
    centroids = torch.tensor([[1.0, 0.0], [math.sqrt(0.5), math.sqrt(0.5)], [0.0, 2.0]], dtype=torch.float64)
    # Gram − I = [[0, .707, 0], [.707, 0, 1.414], [0, 1.414, 3]]
    expected = 2 * 0.5 + 2 * 2.0 + 9.0
    assert orthogonality_loss(centroids).item() == pytest.approx(expected)
    assert orthogonality_loss(centroids, torch.tensor([True, True, False])).item() == pytest.approx(1.0)
    assert orthogonality_loss(torch.eye(3)).item() == 0.0


def test_uniform_assignment_expected_and_sampled_agree_in_expectation() -> None:
    uniform = torch.full((1, 3, 4, 4), 1 / 3)
    assert uniform_assignment_loss(uniform).item() == pytest.approx(math.log(3), rel=1e-6)
    generator = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(2, 3, 6, 6, generator=generator), dim=1)
    expected = uniform_assignment_loss(probs, "expected").item()
    draws = [uniform_assignment_loss(probs, "sampled", generator=generator).item() for _ in range(400)]
    assert sum(draws) / len(draws) == pytest.approx(expected, rel=0.01)
    assert max(draws) - min(draws) > 0.05  # the reference's version is noisy
    with pytest.raises(ConfigError, match="mode must be one of"):
        uniform_assignment_loss(probs, "random")


# --------------------------------------------------------------------------- sinkhorn
def test_sinkhorn_targets_balance_the_clusters() -> None:
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(300, 4, generator=generator, dtype=torch.float64)
    logits[:, 0] += 3.0  # almost every pixel prefers cluster 0
    targets = sinkhorn_targets(logits, n_iters=50)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(300, dtype=torch.float64))
    torch.testing.assert_close(targets.sum(dim=0), torch.full((4,), 75.0, dtype=torch.float64), rtol=1e-4, atol=0)
    # the usage of the plain softmax is far from balanced
    assert float(torch.softmax(logits, 1).sum(0)[0]) > 200
    # inactive clusters get no mass, the others share it
    active = torch.tensor([True, True, False, True])
    masked = sinkhorn_targets(logits, n_iters=50, active=active)
    assert float(masked[:, 2].abs().max()) == 0.0
    balanced = torch.full((3,), 100.0, dtype=torch.float64)
    torch.testing.assert_close(masked.sum(dim=0)[active], balanced, rtol=1e-4, atol=0)


def test_sinkhorn_loss_is_cross_entropy_to_fixed_targets() -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 3, 4, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    loss = sinkhorn_balanced_loss(logits, n_iters=3)
    rows = logits.detach().permute(0, 2, 3, 1).reshape(-1, 3)
    targets = sinkhorn_targets(rows, 3)
    expected = -(targets * torch.log_softmax(rows, 1)).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert torch.isfinite(logits.grad).all()


# --------------------------------------------------------------------------- consistency (alignment bug)
def reference_consistency(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """The reference: symmetric KL between p1[i, j] and p2[i, j], whatever the crops' offsets and warps."""
    return symmetric_kl(p1, p2, dim=1).mean()


def smooth_scene(classes: int, size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = 4.0 * torch.randn(1, classes, 6, 6, generator=generator, dtype=torch.float64)
    return torch.softmax(F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False), dim=1)


def make_view(scene: torch.Tensor, origin: tuple[int, int], size: int, theta: torch.Tensor | None) -> torch.Tensor:
    """Crop the scene and warp it the way the augmentation does (affine_grid + reflection grid_sample)."""
    crop = scene[:, :, origin[0] : origin[0] + size, origin[1] : origin[1] + size]
    if theta is None:
        return crop
    grid = F.affine_grid(theta.to(crop.dtype), list(crop.shape), align_corners=False)
    return F.grid_sample(crop, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def affine(angle_degrees: float, scale: float, tx: float, ty: float) -> torch.Tensor:
    angle = math.radians(angle_degrees)
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    return torch.tensor([[[cos, -sin, tx], [sin, cos, ty]]], dtype=torch.float64)


def test_offset_crops_agree_exactly_on_their_true_overlap() -> None:
    scene = smooth_scene(3, 40, seed=4)
    p1 = make_view(scene, (4, 6), 16, None)
    p2 = make_view(scene, (9, 2), 16, None)
    geometry1 = ViewGeometry(origin=torch.tensor([[4.0, 6.0]]))
    geometry2 = ViewGeometry(origin=torch.tensor([[9.0, 2.0]]))
    grid, valid = view_correspondence(geometry1, geometry2, (16, 16), (16, 16))
    assert int(valid.sum()) == (16 - 5) * (16 - 4)  # the overlap of the two windows
    assert consistency_loss(p1, p2, geometry1, geometry2).item() == pytest.approx(0.0, abs=1e-12)
    assert reference_consistency(p1, p2).item() > 0.1  # the reference compares different scene points


def test_independently_warped_crops_agree_on_the_overlap() -> None:
    scene = smooth_scene(4, 80, seed=5)
    theta1 = affine(9.0, 1.06, 0.04, -0.05)
    theta2 = affine(-7.0, 0.93, -0.06, 0.03)
    p1 = make_view(scene, (12, 20), 40, theta1)
    p2 = make_view(scene, (22, 14), 40, theta2)
    geometry1 = ViewGeometry(origin=torch.tensor([[12.0, 20.0]]), theta=theta1)
    geometry2 = ViewGeometry(origin=torch.tensor([[22.0, 14.0]]), theta=theta2)
    ours = consistency_loss(p1, p2, geometry1, geometry2).item()
    reference = reference_consistency(p1, p2).item()
    assert ours < 2e-3  # only bilinear interpolation error remains
    assert reference > 50 * ours


def test_correspondence_of_a_quarter_turn_is_an_exact_pixel_permutation() -> None:
    scene = smooth_scene(3, 20, seed=6)
    quarter = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    p1 = make_view(scene, (0, 0), 8, quarter)
    torch.testing.assert_close(p1, torch.rot90(scene[:, :, :8, :8], k=1, dims=(2, 3)))  # a pure rotation
    p2 = make_view(scene, (3, 2), 8, None)
    geometry1 = ViewGeometry(torch.tensor([[0.0, 0.0]]), quarter)
    geometry2 = ViewGeometry(torch.tensor([[3.0, 2.0]]))
    grid, valid = view_correspondence(geometry1, geometry2, (8, 8), (8, 8))
    assert int(valid.sum()) == 5 * 6
    resampled = F.grid_sample(p2, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(resampled[0][:, valid[0]], p1[0][:, valid[0]])
    assert consistency_loss(p1, p2, geometry1, geometry2).item() == pytest.approx(0.0, abs=1e-12)


def test_disjoint_crops_and_masks() -> None:
    scene = smooth_scene(2, 40, seed=7)
    p1 = make_view(scene, (0, 0), 10, None).requires_grad_(True)
    p2 = make_view(scene, (20, 20), 10, None)
    geometry1 = ViewGeometry(torch.tensor([[0.0, 0.0]]))
    geometry2 = ViewGeometry(torch.tensor([[20.0, 20.0]]))
    loss = consistency_loss(p1, p2, geometry1, geometry2)
    assert loss.item() == 0.0 and loss.requires_grad  # no overlap: zero, still in the graph
    # pixel-aligned views (no geometry) with a mask: only unmasked pixels count
    q = torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=torch.float64).T.reshape(1, 2, 1, 2)
    r = torch.tensor([[0.1, 0.9], [0.5, 0.5]], dtype=torch.float64).T.reshape(1, 2, 1, 2)
    both = symmetric_kl(q, r, dim=1)
    assert consistency_loss(q, r).item() == pytest.approx(both.mean().item())
    mask = torch.tensor([[[True, False]]])
    assert consistency_loss(q, r, mask1=mask).item() == pytest.approx(both[0, 0, 0].item())
    with pytest.raises(ConfigError, match="both views or of neither"):
        consistency_loss(q, r, geometry1=ViewGeometry(torch.zeros(1, 2)))


def test_symmetric_kl_by_hand() -> None:
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    q = torch.tensor([0.25, 0.75], dtype=torch.float64)
    kl_pq = 0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)
    kl_qp = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert symmetric_kl(p, q, dim=0, eps=0.0).item() == pytest.approx(0.5 * (kl_pq + kl_qp))


# --------------------------------------------------------------------------- the objective
def test_clustering_loss_total_is_the_weighted_sum_and_trains_the_encoder_not_the_centroids() -> None:
    torch.manual_seed(8)
    model = GlobalClusteringModel(in_bands=6, **tiny_model_arguments("global_clustering"))
    cube = torch.rand(2, 6, 10, 10)
    view1, view2 = model(cube[..., :8, :8]), model(cube[..., 2:, 1:9])
    geometry1 = ViewGeometry(torch.tensor([[0.0, 0.0], [0.0, 0.0]]))
    geometry2 = ViewGeometry(torch.tensor([[2.0, 1.0], [2.0, 1.0]]))
    loss = ClusteringLoss(uniform_weight=0.5, sinkhorn_weight=0.25, orthogonality_weight=0.1)
    result = loss(view1, view2, model.centroids, active=model.active, geometry1=geometry1, geometry2=geometry2)
    parts = result.parts
    assert set(parts) == {"comp1", "comp2", "unif", "sink", "orth", "bal", "cons"}
    expected = (
        parts["comp1"] + parts["comp2"] + 0.5 * parts["unif"] + 0.25 * parts["sink"] + 0.1 * parts["orth"]
        + parts["bal"] + parts["cons"]
    )
    assert result.total.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(parts["cons"], consistency_loss(view1.probs, view2.probs, geometry1, geometry2))
    result.total.backward()
    assert model.encoder.spectral_net[0].weight.grad is not None
    assert model.mean_shift.log_bandwidth.grad is not None
    assert model.centroids.grad is None and not model.centroids.requires_grad


def test_zero_weight_terms_are_reported_without_gradient() -> None:
    torch.manual_seed(9)
    model = GlobalClusteringModel(in_bands=4, **tiny_model_arguments("global_clustering"))
    view = model(torch.rand(1, 4, 6, 6))
    result = ClusteringLoss()(view, view, model.centroids)
    assert not result.parts["unif"].requires_grad and not result.parts["sink"].requires_grad
    assert result.parts["cons"].item() == pytest.approx(0.0, abs=1e-9)  # the same view twice
    with pytest.raises(ConfigError, match="balance_weight"):
        ClusteringLoss(balance_weight=-1.0)
