"""Deep Global Clustering model: encoder modes, windowed/global mean-shift, EMA dictionary, registry, real data."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from hsikit.errors import CheckpointError, ConfigError, ShapeMismatchError
from hsikit.models import create_model, list_models, model_spec, tiny_model_arguments
from hsikit.models.clustering import (
    CentroidDictionary,
    ClusteringOutput,
    GlobalClusteringModel,
    SpectralSpatialEncoder,
    UnrolledMeanShift,
    convert_reference_state_dict,
    flatten_pixels,
    inverse_softplus,
    spectral_output_length,
)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def unit_map(batch: int, channels: int, height: int, width: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(batch, channels, height, width, generator=generator, dtype=dtype), dim=1)


# --------------------------------------------------------------------------- registry and forward
def test_registered_for_the_clustering_task_and_tiny_forward_shapes() -> None:
    assert "global_clustering" in list_models(task="clustering")
    torch.manual_seed(0)
    model = create_model("global_clustering", in_bands=12, **tiny_model_arguments("global_clustering"))
    assert isinstance(model, GlobalClusteringModel)
    cube = torch.rand(2, 12, 7, 9)
    out = model(cube)
    assert isinstance(out, ClusteringOutput)
    assert out.embeddings.shape == (2, 8, 7, 9) and out.shifted.shape == (2, 8, 7, 9)
    assert out.logits.shape == (2, 3, 7, 9) and out.probs.shape == (2, 3, 7, 9)
    assert out.labels.shape == (2, 7, 9) and out.labels.dtype == torch.int64
    torch.testing.assert_close(out.embeddings.norm(dim=1), torch.ones(2, 7, 9))
    torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(2, 7, 9))
    assert torch.equal(out.labels, out.probs.argmax(dim=1))
    # logits are cos(normalize(shifted), c_k) / temp
    expected = torch.einsum("bdhw,kd->bkhw", F.normalize(out.shifted, dim=1), model.centroids) / 0.05
    torch.testing.assert_close(out.logits, expected)


def test_reference_defaults_and_json_config_round_trip() -> None:
    model = create_model("global_clustering", in_bands=5)
    name, arguments = model_spec(model)
    assert name == "global_clustering"
    # the reference's defaults (constructor + trainer); hsikit's fixes are the documented exceptions
    for key, value in {
        "n_clusters": 4, "embed_dim": 32, "n_spectral_layers": 3, "spectral_kernel_size": 3, "bias": True,
        "num_iters": 5, "window": 5, "init_bandwidth": 1.0, "learn_bandwidth": True, "temp": 0.05,
        "ema_decay": 0.99, "ema_kick": 0.05, "final_relu": True, "encoder_mode": "spectral", "mask_border": True,
    }.items():
        assert arguments[key] == value, key
    rebuilt = create_model(name, **json.loads(json.dumps(arguments)))
    rebuilt.load_state_dict(model.state_dict())
    cube = torch.rand(1, 5, 6, 6)
    torch.testing.assert_close(rebuilt(cube).probs, model(cube).probs)


def test_bad_input_and_configuration_errors_name_the_fix() -> None:
    model = GlobalClusteringModel(in_bands=6, **tiny_model_arguments("global_clustering"))
    with pytest.raises(ShapeMismatchError, match=r"\(B, 6, H, W\)"):
        model(torch.rand(1, 5, 4, 4))
    with pytest.raises(ShapeMismatchError, match="float"):
        model(torch.ones(1, 6, 4, 4, dtype=torch.int64))
    with pytest.raises(ConfigError, match="window must be an odd"):
        GlobalClusteringModel(in_bands=6, window=4)
    with pytest.raises(ConfigError, match="mode must be one of"):
        GlobalClusteringModel(in_bands=6, encoder_mode="spectrum")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dead_fraction"):
        GlobalClusteringModel(in_bands=6, n_clusters=4, dead_fraction=0.3)


# --------------------------------------------------------------------------- encoder
def reference_raster_encoder(encoder: SpectralSpatialEncoder, cube: torch.Tensor) -> torch.Tensor:
    """The reference forward written out: Conv1d over the flattened raster, bands as channels."""
    batch, bands, height, width = cube.shape
    features = cube.view(batch, bands, height * width)
    for layer in encoder.spectral_net:
        if isinstance(layer, torch.nn.Conv1d):
            features = F.relu(F.conv1d(features, layer.weight, layer.bias, padding=layer.kernel_size[0] // 2))
    features = features.view(batch, -1, height, width)
    conv0, conv2 = encoder.spatial_net[0], encoder.spatial_net[2]
    features = F.relu(F.conv2d(features, conv0.weight, conv0.bias, padding=1))
    features = F.relu(F.conv2d(features, conv2.weight, conv2.bias, padding=1))
    return F.normalize(features, dim=1)


def test_raster_mode_reproduces_the_reference_computation_and_checkpoint_layout() -> None:
    torch.manual_seed(1)
    encoder = SpectralSpatialEncoder(10, embed_dim=6, spectral_kernel_size=9, bias=False, mode="raster")
    shapes = {key: tuple(value.shape) for key, value in encoder.state_dict().items()}
    assert shapes == {
        "spectral_net.0.weight": (6, 10, 9),
        "spectral_net.2.weight": (6, 6, 9),
        "spectral_net.4.weight": (6, 6, 9),
        "spatial_net.0.weight": (6, 6, 3, 3),
        "spatial_net.2.weight": (6, 6, 3, 3),
    }
    cube = torch.rand(2, 10, 5, 7)
    torch.testing.assert_close(encoder(cube), reference_raster_encoder(encoder, cube))


def test_raster_mode_wraps_across_row_ends_but_spectral_mode_keeps_pixels_apart() -> None:
    torch.manual_seed(2)
    cube = torch.rand(1, 8, 4, 5)
    poked = cube.clone()
    poked[0, :, 1, 4] += 1.0  # last pixel of row 1
    raster = SpectralSpatialEncoder(8, embed_dim=4, mode="raster")
    spectral = SpectralSpatialEncoder(8, embed_dim=4, mode="spectral", spectral_channels=3)
    raster_change = (raster.spectral_features(poked) - raster.spectral_features(cube)).abs().sum(dim=1)[0]
    spectral_change = (spectral.spectral_features(poked) - spectral.spectral_features(cube)).abs().sum(dim=1)[0]
    # the reference's "spectral" Conv1d reaches the first pixel of the NEXT row
    assert raster_change[2, 0] > 0
    # the true spectral stack changes only the poked pixel
    changed = torch.nonzero(spectral_change > 0).tolist()
    assert changed == [[1, 4]]


def test_spectral_mode_convolves_along_wavelength() -> None:
    torch.manual_seed(3)
    encoder = SpectralSpatialEncoder(40, embed_dim=4, n_spectral_layers=1, spectral_kernel_size=3, spectral_stride=2)
    first = encoder.spectral_net[0]
    assert isinstance(first, torch.nn.Conv1d) and first.in_channels == 1  # one input channel: the spectrum
    spectrum = torch.rand(1, 1, 40)
    shifted = torch.roll(spectrum, shifts=2, dims=2)  # move the spectrum up by two bands
    out, out_shifted = first(spectrum), first(shifted)
    # stride 2: a shift by two bands is a shift by one output position (away from the edges)
    torch.testing.assert_close(out_shifted[..., 2:-1], out[..., 1:-2])
    assert spectral_output_length(301, 3, 9, 2) == 38
    assert encoder.spectral_projection is not None
    assert encoder.spectral_projection[0].in_features == 16 * spectral_output_length(40, 1, 3, 2)


def test_final_relu_confines_embeddings_to_the_nonnegative_orthant() -> None:
    torch.manual_seed(4)
    cube = torch.randn(1, 6, 6, 6)
    with_relu = SpectralSpatialEncoder(6, embed_dim=8, final_relu=True)(cube)
    without = SpectralSpatialEncoder(6, embed_dim=8, final_relu=False)(cube)
    assert bool((with_relu >= 0).all())
    assert bool((without < 0).any())
    torch.testing.assert_close(without.norm(dim=1), torch.ones(1, 6, 6))


def test_centred_embeddings_spread_over_the_sphere_instead_of_a_narrow_cone(tmp_path: Path) -> None:
    """A fresh encoder maps every pixel into a narrow cone (the collapse-prone start); centring spreads them.

    The mean resultant length ‖mean_n z_n‖ of unit embeddings is 1 when all point the same way
    and near 0 when they spread over the sphere. Input: standardised pixels of realistic
    mixtures (three endmembers, Dirichlet abundances, 0.5 % noise).
    """
    from hsikit.engine.export import export_model, load_model

    generator = np.random.default_rng(0)
    endmembers = np.abs(generator.normal(0.4, 0.15, (3, 40))).cumsum(axis=1) / 40
    abundances = generator.dirichlet([0.5, 0.5, 0.5], size=(16, 16))
    cube = np.einsum("hwk,kc->chw", abundances, endmembers) * (1 + 0.005 * generator.standard_normal((40, 16, 16)))
    cube = (cube - cube.mean(axis=(1, 2), keepdims=True)) / cube.std(axis=(1, 2), keepdims=True)
    batch = torch.from_numpy(cube.astype(np.float32))[None]

    def resultant_length(embeddings: torch.Tensor) -> float:
        return float(embeddings.mean(dim=(0, 2, 3)).norm())

    torch.manual_seed(0)
    plain = SpectralSpatialEncoder(40, embed_dim=16, final_relu=False)
    torch.manual_seed(0)
    centred = SpectralSpatialEncoder(40, embed_dim=16, final_relu=False, centre_embeddings=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    with torch.no_grad():
        assert resultant_length(plain(batch)) > 0.8
        spread = centred(batch)  # training mode: batch statistics, which also update the running ones
    assert resultant_length(spread) < 0.35
    torch.testing.assert_close(spread.norm(dim=1), torch.ones(1, 16, 16))

    # inference uses the running statistics, and they survive export (a buffer, loaded without pickle)
    model = GlobalClusteringModel(in_bands=40, n_clusters=3, embed_dim=16, final_relu=False, centre_embeddings=True)
    model.train()
    with torch.no_grad():
        for _ in range(30):
            model(batch)
    model.eval()
    with torch.no_grad():
        assert resultant_length(model.encoder(batch)) < 0.35
    export_model(model, tmp_path / "model", task="clustering")
    loaded = load_model(tmp_path / "model", expected_model="global_clustering").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).probs, model(batch).probs)


# --------------------------------------------------------------------------- mean-shift
def reference_windowed_mean_shift(
    embeddings: torch.Tensor, bandwidth: torch.Tensor, iters: int, k: int
) -> torch.Tensor:
    """The reference's unfold implementation (zero padding votes), for comparison."""
    batch, channels, height, width = embeddings.shape
    z = embeddings.view(batch, channels, height * width).permute(0, 2, 1)
    for _ in range(iters):
        patches = F.unfold(embeddings, kernel_size=k, padding=k // 2).view(batch, channels, k * k, -1)
        patches = patches.permute(0, 3, 2, 1)
        query = z.detach()
        sq = ((patches - query.unsqueeze(2)) ** 2).sum(-1)
        weights = torch.exp(-sq / (2 * bandwidth**2))
        z = (weights.unsqueeze(-1) * patches).sum(2) / (weights.sum(2, keepdim=True) + 1e-6)
    return z.permute(0, 2, 1).reshape(batch, channels, height, width)


def test_inverse_softplus_initialises_the_bandwidth_like_the_reference() -> None:
    assert inverse_softplus(1.0) == pytest.approx(math.log(math.e - 1), abs=1e-12)
    assert inverse_softplus(1.0) == pytest.approx(0.5413, abs=1e-4)
    shift = UnrolledMeanShift(init_bandwidth=0.3)
    assert shift.bandwidth.item() == pytest.approx(0.3, rel=1e-6)
    assert "log_bandwidth" in dict(shift.named_parameters())
    frozen = UnrolledMeanShift(learn_bandwidth=False)
    assert "log_bandwidth" not in dict(frozen.named_parameters()) and "log_bandwidth" in frozen.state_dict()


def test_windowed_mean_shift_without_masking_matches_the_reference_values_and_gradients() -> None:
    embeddings = unit_map(2, 4, 6, 7, seed=5).requires_grad_(True)
    shift = UnrolledMeanShift(num_iters=3, window=3, mask_border=False, init_bandwidth=0.7).double()
    ours = shift(embeddings)
    reference_input = embeddings.detach().clone().requires_grad_(True)
    reference = reference_windowed_mean_shift(reference_input, shift.bandwidth, 3, 3)
    torch.testing.assert_close(ours, reference)
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (reference * weights).sum().backward()
    torch.testing.assert_close(embeddings.grad, reference_input.grad)
    assert shift.log_bandwidth.grad is not None and shift.log_bandwidth.grad != 0


def test_border_masking_fixes_the_pull_towards_the_origin() -> None:
    # a constant field of one unit vector: every pixel is already at the mode
    vector = F.normalize(torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64), dim=0)
    field = vector.view(1, 3, 1, 1).expand(1, 3, 6, 6).contiguous()
    masked = UnrolledMeanShift(num_iters=5, window=5, mask_border=True).double()(field)
    reference = reference_windowed_mean_shift(field, torch.tensor(1.0, dtype=torch.float64), 5, 5)
    torch.testing.assert_close(masked, field, atol=1e-6, rtol=0)  # nothing moves (up to the 1e-6 guard)
    # the reference's zero padding votes for the origin: the corner shrinks by the zero-vector share
    corner_norm = float(reference[0, :, 0, 0].norm())
    assert corner_norm < 0.75
    assert float(reference[0, :, 3, 3].norm()) < 1.0 and float(reference[0, :, 2, 2].norm()) == pytest.approx(1.0)
    # one iteration by hand at the corner: 9 real neighbours (d² = 0) and 16 zero vectors (d² = 1)
    one = reference_windowed_mean_shift(field, torch.tensor(1.0, dtype=torch.float64), 1, 5)
    expected = 9 / (9 + 16 * math.exp(-0.5) + 1e-6)
    assert float(one[0, :, 0, 0].norm()) == pytest.approx(expected, rel=1e-9)


def test_interior_pixels_do_not_depend_on_border_masking() -> None:
    embeddings = unit_map(1, 5, 9, 9, seed=6)
    masked = UnrolledMeanShift(num_iters=4, window=3, mask_border=True).double()(embeddings)
    unmasked = UnrolledMeanShift(num_iters=4, window=3, mask_border=False).double()(embeddings)
    torch.testing.assert_close(masked[..., 1:-1, 1:-1], unmasked[..., 1:-1, 1:-1])
    assert not torch.allclose(masked[..., 0, :], unmasked[..., 0, :])


def test_global_mean_shift_is_the_exact_blurring_variant_and_refuses_large_inputs() -> None:
    embeddings = unit_map(2, 3, 4, 5, seed=7)
    shift = UnrolledMeanShift(num_iters=3, mode="global", init_bandwidth=0.5).double()
    points = embeddings.reshape(2, 3, 20).transpose(1, 2)
    for _ in range(3):  # by hand: all-pairs Gaussian weights, the iterate attends to itself
        sq = torch.cdist(points, points) ** 2
        kernel = torch.exp(-sq / (2 * 0.5**2))
        points = kernel @ points / (kernel.sum(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(shift(embeddings), points.transpose(1, 2).reshape(2, 3, 4, 5))
    small = UnrolledMeanShift(mode="global", max_global_pixels=100)
    with pytest.raises(ConfigError, match=r"11×10 = 110 pixels.*mode='window'"):
        small(unit_map(1, 3, 11, 10, dtype=torch.float32))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator returns (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        result = func(*args, **(kwargs or {}))
        for item in tree_flatten(result)[0]:
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return result


def saved_bytes(function, *inputs: torch.Tensor) -> int:
    """Bytes of distinct storages autograd keeps for the backward pass of ``function(*inputs)``."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function(*inputs).sum()
    return sum(storages.values())


def test_windowed_mean_shift_memory_is_linear_in_pixels_and_never_builds_window_patches() -> None:
    batch, channels, side, window = 1, 8, 48, 5
    pixels = side * side
    shift = UnrolledMeanShift(num_iters=3, window=window)
    embeddings = unit_map(batch, channels, side, side, seed=8, dtype=torch.float32).requires_grad_(True)
    with LargestTensor() as probe:
        shift(embeddings).square().sum().backward()
    padded = batch * channels * (side + window - 1) ** 2
    assert probe.largest <= padded  # the padded map is the biggest thing ever allocated
    assert probe.largest < window * window * pixels * channels  # the reference's unfold output
    assert probe.largest < pixels * pixels  # and nothing (N, N)
    with LargestTensor() as reference_probe:
        reference_windowed_mean_shift(embeddings.detach(), torch.tensor(1.0), 3, window)
    assert reference_probe.largest >= window * window * pixels * channels  # the bound bites on the reference
    # what autograd keeps grows like the pixel count (×4 for twice the side), not its square
    small = saved_bytes(shift, unit_map(1, channels, 24, 24, dtype=torch.float32).requires_grad_(True))
    large = saved_bytes(shift, unit_map(1, channels, 48, 48, dtype=torch.float32).requires_grad_(True))
    assert large / small < 4.5
    # per padded pixel: three float32 maps per window offset (distance, weight, masked weight) + a few D-vectors
    assert large < (3 * window * window + 4 * channels) * 4 * (side + window - 1) ** 2


# --------------------------------------------------------------------------- EMA dictionary
def test_ema_update_is_the_per_centroid_weighted_mean_computed_by_hand() -> None:
    torch.manual_seed(9)
    batch, dim, height, width, clusters = 2, 3, 2, 3, 2
    model = GlobalClusteringModel(
        in_bands=4, n_clusters=clusters, embed_dim=dim, ema_decay=0.9, dead_fraction=0.0, orthogonality_step=0.0
    )
    shifted = torch.randn(batch, dim, height, width) * 0.5
    probs = torch.softmax(torch.randn(batch, clusters, height, width), dim=1)
    before = model.centroids.clone()
    output = ClusteringOutput(shifted, shifted, probs.log(), probs, probs.argmax(1))
    model.update_centroids(output)
    # by hand, pixel by pixel
    expected = []
    for k in range(clusters):
        numerator, mass = torch.zeros(dim), 0.0
        for b in range(batch):
            for i in range(height):
                for j in range(width):
                    z = shifted[b, :, i, j] / shifted[b, :, i, j].norm()
                    numerator += probs[b, k, i, j] * z
                    mass += float(probs[b, k, i, j])
        mean = numerator / (mass + 1e-6)
        updated = 0.9 * before[k] + 0.1 * mean
        expected.append(updated / updated.norm())
    torch.testing.assert_close(model.centroids, torch.stack(expected))

    # the reference flattened (B, D, h, w) with reshape(-1, D) — no permute — and did not normalise
    def reference_update(centroids: torch.Tensor) -> torch.Tensor:
        points = shifted.reshape(-1, dim)
        weights = probs.permute(0, 2, 3, 1).reshape(-1, clusters)
        mass = weights.sum(0) + 1e-8
        means = weights.t() @ points / (mass.unsqueeze(1) + 1e-6)
        return F.normalize(0.9 * centroids + 0.1 * means, dim=1)

    assert (reference_update(before) - model.centroids).abs().max() > 1e-3


def test_flatten_pixels_keeps_each_pixels_channels_together() -> None:
    maps = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    rows = flatten_pixels(maps)
    assert rows.shape == (8, 3)
    torch.testing.assert_close(rows[5], maps[1, :, 0, 1])
    mask = torch.zeros(2, 2, 2, dtype=torch.bool)
    mask[1, 1, 1] = True
    torch.testing.assert_close(flatten_pixels(maps, mask), maps[1, :, 1, 1].unsqueeze(0))


def test_centroids_are_a_buffer_that_gradients_and_weight_decay_never_touch() -> None:
    torch.manual_seed(10)
    model = GlobalClusteringModel(in_bands=6, **tiny_model_arguments("global_clustering"))
    assert "dictionary.centroids" not in dict(model.named_parameters())
    assert "dictionary.centroids" in model.state_dict()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    before = model.centroids.clone()
    out = model(torch.rand(2, 6, 5, 5))
    loss = (out.probs * torch.rand_like(out.probs)).sum() + out.embeddings.sum()
    loss.backward()
    optimizer.step()
    assert torch.equal(model.centroids, before)
    assert model.encoder.spatial_net[0].weight.grad is not None


def test_fractional_dead_threshold_catches_what_the_reference_absolute_threshold_misses() -> None:
    dictionary = CentroidDictionary(n_clusters=3, embed_dim=2, dead_fraction=0.005, dead_policy="prune")
    pixels = 2 * 4 * 64 * 64  # the reference's 2·B·64·64 pixels per update
    probs = torch.zeros(pixels, 3)
    probs[:, 0] = 0.6
    probs[:, 1] = 0.399
    probs[:, 2] = 0.001  # 0.1 % of the mass: about 33 pixels' worth
    embeddings = F.normalize(torch.randn(pixels, 2), dim=1)
    reference_valid = probs.sum(0) + 1e-8 > 1e-3  # the reference's rule
    assert bool(reference_valid.all())  # it never flags cluster 2
    update = dictionary.ema_update(embeddings, probs)
    assert update.dead.tolist() == [False, False, True]
    torch.testing.assert_close(update.mass_fraction, torch.tensor([0.6, 0.399, 0.001]))
    assert update.pruned.tolist() == [False, False, True] and dictionary.active.tolist() == [True, True, False]


def test_dead_cluster_is_reseeded_on_a_poorly_explained_pixel() -> None:
    dictionary = CentroidDictionary(
        n_clusters=3, embed_dim=3, dead_fraction=0.01, reseed_pool_fraction=0.15, orthogonality_step=0.0
    )
    dictionary.centroids.copy_(torch.eye(3))
    embeddings = torch.tensor([[1.0, 0.0, 0.0]] * 6 + [[0.0, 1.0, 0.0]] * 6 + [[0.0, 0.6, 0.8], [0.0, 0.0, -1.0]])
    probs = torch.zeros(14, 3)
    probs[:6, 0] = 1.0
    probs[6:, 1] = 1.0  # cluster 2 gets nothing: dead
    update = dictionary.ema_update(embeddings, probs, generator=torch.Generator().manual_seed(0))
    assert update.reseeded.tolist() == [False, False, True]
    # the pool is the 2 worst-explained pixels (lowest best cosine to live centroids 0, 1): [0, .6, .8], [0, 0, -1]
    seeded = dictionary.centroids[2]
    assert any(torch.allclose(seeded, candidate) for candidate in embeddings[12:])
    # live clusters moved by the EMA rule towards their (unit) means
    torch.testing.assert_close(dictionary.centroids[0], torch.tensor([1.0, 0.0, 0.0]))


def test_an_update_without_pixels_changes_nothing() -> None:
    dictionary = CentroidDictionary(n_clusters=3, embed_dim=4)
    before = dictionary.centroids.clone()
    update = dictionary.ema_update(torch.zeros(0, 4), torch.zeros(0, 3))
    assert torch.equal(dictionary.centroids, before) and not bool(update.reseeded.any())
    assert dictionary.dead_steps.tolist() == [0, 0, 0]
    with pytest.raises(ShapeMismatchError, match=r"permute\(0, 2, 3, 1\)"):
        dictionary.ema_update(torch.zeros(2, 4, 3, 3), torch.zeros(2, 3, 3, 3))


def test_dead_patience_and_kick_policy() -> None:
    dictionary = CentroidDictionary(n_clusters=2, embed_dim=2, dead_fraction=0.1, dead_policy="kick", dead_patience=2)
    dictionary.centroids.copy_(torch.eye(2))
    embeddings = torch.tensor([[1.0, 0.0]] * 4)
    probs = torch.tensor([[1.0, 0.0]] * 4)
    first = dictionary.ema_update(embeddings, probs, kick=0.5, generator=torch.Generator().manual_seed(1))
    assert first.dead.tolist() == [False, True] and not bool(first.reseeded.any())
    torch.testing.assert_close(dictionary.centroids[1], torch.tensor([0.0, 1.0]))  # waits one more update
    second = dictionary.ema_update(embeddings, probs, kick=0.5, generator=torch.Generator().manual_seed(1))
    assert second.reseeded.tolist() == [False, True]
    assert not torch.allclose(dictionary.centroids[1], torch.tensor([0.0, 1.0]))
    assert float(dictionary.centroids[1].norm()) == pytest.approx(1.0)
    assert dictionary.dead_steps.tolist() == [0, 0]


def test_pruning_is_a_mask_not_a_deletion() -> None:
    torch.manual_seed(11)
    model = GlobalClusteringModel(in_bands=6, **tiny_model_arguments("global_clustering"))
    probs = torch.zeros(1, 3, 4, 4)
    probs[:, 0] = 0.7
    probs[:, 1] = 0.3  # cluster 2 unused
    kept = model.prune_clusters(probs, threshold=0.005)
    assert kept.tolist() == [0, 1]
    assert model.centroids.shape == (3, 8)  # no row deleted
    out = model(torch.rand(1, 6, 4, 4))
    assert bool((out.probs[:, 2] == 0).all()) and bool(torch.isneginf(out.logits[:, 2]).all())
    torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(1, 4, 4))
    # the state dict (with the mask) still loads into a fresh model of the same configuration
    fresh = GlobalClusteringModel(in_bands=6, **tiny_model_arguments("global_clustering"))
    fresh.load_state_dict(model.state_dict())
    assert fresh.active.tolist() == [True, True, False]
    # pruning everything keeps the most used cluster
    assert model.prune_clusters(probs, threshold=0.9).tolist() == [0]
    model.dictionary.reactivate()
    assert model.active.all()


def test_export_and_load_keep_the_dictionary_and_its_mask(tmp_path: Path) -> None:
    from hsikit.engine.export import export_model, load_model

    torch.manual_seed(17)
    model = GlobalClusteringModel(in_bands=7, **tiny_model_arguments("global_clustering"))
    model.prune_clusters(torch.tensor([0.6, 0.4, 0.0]).view(1, 3, 1, 1))
    export_model(model, tmp_path / "model", task="clustering")
    loaded = load_model(tmp_path / "model", expected_model="global_clustering")
    assert isinstance(loaded, GlobalClusteringModel)
    assert loaded.active.tolist() == [True, True, False]
    assert torch.equal(loaded.centroids, model.centroids)
    cube = torch.rand(1, 7, 5, 5)
    torch.testing.assert_close(loaded(cube).probs, model(cube).probs)


def test_gradient_free_orthogonalisation_reduces_the_gram_error() -> None:
    torch.manual_seed(12)
    dictionary = CentroidDictionary(n_clusters=4, embed_dim=6, decay=0.99, dead_fraction=0.0, orthogonality_step=0.2)
    plain = CentroidDictionary(n_clusters=4, embed_dim=6, decay=0.99, dead_fraction=0.0, orthogonality_step=0.0)
    start = F.normalize(torch.randn(4, 6) + 2.0, dim=1)  # strongly correlated rows
    dictionary.centroids.copy_(start)
    plain.centroids.copy_(start)
    embeddings = torch.randn(50, 6)
    probs = torch.softmax(torch.randn(50, 4), dim=1)
    for _ in range(5):
        dictionary.ema_update(embeddings, probs)
        plain.ema_update(embeddings, probs)

    def gram_error(c: torch.Tensor) -> float:
        return float((c @ c.t() - torch.eye(4)).pow(2).sum())

    assert gram_error(dictionary.centroids) < 0.5 * gram_error(plain.centroids)


def test_default_orthogonalisation_prevents_the_ema_collapse_under_uniform_assignments() -> None:
    # nearly uniform soft assignments (what a collapsed encoder produces): every centroid's EMA target is
    # the same mean, so an EMA-only dictionary merges all its centroids
    torch.manual_seed(16)
    embeddings = F.normalize(torch.rand(200, 6) + 0.5, dim=1)
    probs = torch.full((200, 4), 0.25)
    start = F.normalize(torch.randn(4, 6), dim=1)
    merged = CentroidDictionary(n_clusters=4, embed_dim=6, decay=0.9, orthogonality_step=0.0)
    default = CentroidDictionary(n_clusters=4, embed_dim=6, decay=0.9)
    assert default.orthogonality_step == 0.1
    merged.centroids.copy_(start)
    default.centroids.copy_(start)
    for _ in range(100):
        merged.ema_update(embeddings, probs)
        default.ema_update(embeddings, probs)
    gram_merged = merged.centroids @ merged.centroids.t()
    gram_default = default.centroids @ default.centroids.t()
    assert float(gram_merged.min()) > 0.999  # all four centroids are (almost) the same vector
    off_diagonal = gram_default - torch.diag(torch.diagonal(gram_default))
    assert float(off_diagonal.abs().max()) < 0.5  # the default keeps them apart


def test_reference_checkpoints_load_in_raster_mode() -> None:
    torch.manual_seed(13)
    bands, dim, clusters, kernel = 12, 6, 4, 9
    reference_state = {
        "encoder.spectral_net.0.weight": torch.randn(dim, bands, kernel),
        "encoder.spectral_net.2.weight": torch.randn(dim, dim, kernel),
        "encoder.spectral_net.4.weight": torch.randn(dim, dim, kernel),
        "encoder.spatial_net.0.weight": torch.randn(dim, dim, 3, 3),
        "encoder.spatial_net.2.weight": torch.randn(dim, dim, 3, 3),
        "cluster.log_bandwidth": torch.tensor(0.5413),
        "cluster.cluster_centers": torch.randn(clusters, dim) * 3,
    }
    model = GlobalClusteringModel(
        in_bands=bands, n_clusters=clusters, embed_dim=dim, encoder_mode="raster", spectral_kernel_size=kernel,
        bias=False, mask_border=False, dead_policy="kick",
    )
    model.load_state_dict(convert_reference_state_dict(reference_state), strict=True)
    torch.testing.assert_close(model.centroids, F.normalize(reference_state["cluster.cluster_centers"], dim=1))
    torch.testing.assert_close(model.mean_shift.log_bandwidth.detach(), torch.tensor(0.5413))
    with pytest.raises(CheckpointError, match="unexpected key 'optimizer.state'"):
        convert_reference_state_dict({**reference_state, "optimizer.state": torch.zeros(1)})


# --------------------------------------------------------------------------- real data
def test_realistic_forward_and_ema_step_on_samson(shared_data: Path) -> None:
    from hsikit.data import load_dataset

    scene = load_dataset("samson", root=shared_data, download=False)
    cube = torch.as_tensor(np.asarray(scene.cube.data), dtype=torch.float32)  # (156, 95, 95)
    bands = cube.shape[0]
    assert bands == 156
    # the reference's per-sample, per-band standardisation
    cube = (cube - cube.mean(dim=(1, 2), keepdim=True)) / (cube.std(dim=(1, 2), keepdim=True) + 1e-6)
    torch.manual_seed(14)
    model = GlobalClusteringModel(in_bands=bands, spectral_kernel_size=9, bias=False)
    out = model(cube[None])
    assert out.probs.shape == (1, 4, 95, 95) and bool(torch.isfinite(out.shifted).all())
    torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(1, 95, 95))
    assert float(out.shifted.detach().norm(dim=1).max()) <= 1.0 + 1e-5  # means of unit vectors
    update = model.update_centroids(out, generator=torch.Generator().manual_seed(0))
    assert float(update.mass_fraction.sum()) == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(model.centroids.norm(dim=1), torch.ones(4))
    labels = np.asarray(scene.labels)
    probs, predicted = model.predict(cube[None])
    assert predicted.shape == labels[None].shape and torch.equal(probs.argmax(1), predicted)


# --------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ddp_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(15)
    embeddings = torch.randn(40, 4, generator=generator)
    probs = torch.softmax(3 * torch.randn(40, 3, generator=generator), dim=1)
    return embeddings, probs


def _ddp_dictionary_worker(rank: int, world_size: int, port: int, output: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)  # same initial centroids on every process
        dictionary = CentroidDictionary(n_clusters=3, embed_dim=4, decay=0.5, dead_fraction=0.0)
        embeddings, probs = _ddp_data()
        half = slice(0, 20) if rank == 0 else slice(20, 40)
        dictionary.ema_update(embeddings[half], probs[half])
        gathered = [torch.zeros(3, 4) for _ in range(world_size)]
        dist.all_gather(gathered, dictionary.centroids)
        if rank == 0:
            torch.save(torch.stack(gathered), output)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes re-import torch: ~30 s on 2 busy cores
def test_ddp_dictionary_update_equals_one_process_on_all_pixels(tmp_path: Path) -> None:
    output = str(tmp_path / "centroids.pt")
    mp.spawn(_ddp_dictionary_worker, args=(2, _free_port(), output), nprocs=2, join=True)
    per_rank = torch.load(output, weights_only=True)
    torch.testing.assert_close(per_rank[0], per_rank[1])
    torch.manual_seed(0)
    single = CentroidDictionary(n_clusters=3, embed_dim=4, decay=0.5, dead_fraction=0.0)
    single.ema_update(*_ddp_data())
    torch.testing.assert_close(per_rank[0], single.centroids)


@pytest.mark.slow  # ~1 min of CPU training
def test_short_training_on_samson_separates_the_materials(shared_data: Path) -> None:
    """End-to-end regression: model + losses + EMA dictionary learn Samson's soil/tree/water without labels."""
    from hsikit.data import load_dataset
    from hsikit.losses.clustering import ClusteringLoss, ViewGeometry
    from hsikit.metrics.clustering import clustering_scores

    scene = load_dataset("samson", root=shared_data, download=False)
    cube = torch.as_tensor(np.asarray(scene.cube.data), dtype=torch.float32)
    cube = (cube - cube.mean(dim=(1, 2), keepdim=True)) / (cube.std(dim=(1, 2), keepdim=True) + 1e-6)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = GlobalClusteringModel(
        in_bands=156, n_clusters=4, embed_dim=16, spectral_channels=8, spectral_kernel_size=9, num_iters=3
    )
    objective = ClusteringLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    _, height, width = cube.shape
    crop, batch = 32, 4
    for _ in range(120):
        rows = torch.randint(0, height - crop + 1, (batch,), generator=generator)
        cols = torch.randint(0, width - crop + 1, (batch,), generator=generator)
        rows2 = (rows + torch.randint(-12, 13, (batch,), generator=generator)).clamp(0, height - crop)
        cols2 = (cols + torch.randint(-12, 13, (batch,), generator=generator)).clamp(0, width - crop)
        view1 = torch.stack([cube[:, r : r + crop, c : c + crop] for r, c in zip(rows.tolist(), cols.tolist())])
        view2 = torch.stack([cube[:, r : r + crop, c : c + crop] for r, c in zip(rows2.tolist(), cols2.tolist())])
        out1, out2 = model(view1), model(view2)
        loss = objective(
            out1, out2, model.centroids, active=model.active,
            geometry1=ViewGeometry(torch.stack([rows, cols], 1).float()),
            geometry2=ViewGeometry(torch.stack([rows2, cols2], 1).float()),
        )
        optimizer.zero_grad()
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        model.update_centroids(out1, out2, generator=generator)
    _, predicted = model.predict(cube[None])
    scores = clustering_scores(predicted[0].numpy(), np.asarray(scene.labels))
    used = torch.bincount(predicted.flatten(), minlength=4)
    assert int((used > 0.05 * predicted.numel()).sum()) >= 3  # no collapse onto one or two clusters
    assert scores["nmi"] > 0.4 and scores["accuracy"] > 0.6
