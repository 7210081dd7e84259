"""SHARP: streaming top-k sparse attention, 2-D local window, RBF projections, RMS norm, spectral
regularisers (against the reference's flawed one), padding, presets and registry."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models import create_model, get_model_entry, list_models, model_spec, tiny_model_arguments
from hsikit.models.complexity import count_parameters
from hsikit.models.layers.norm import ChannelRMSNorm
from hsikit.models.layers.sparse_attention import (
    dense_attention,
    kept_keys,
    local_window_attention_2d,
    local_window_neighbours,
    sparse_topk_attention,
    streaming_topk_keys,
    topk_attention,
    window_side_for_tokens,
)
from hsikit.models.layers.token_pool import capped_grid_size, pool_to_token_cap
from hsikit.models.reconstruction.sharp import (
    SHARP,
    SHARP_PRESETS,
    CrossAttentionFusion,
    RBFKernel,
    SparseTokenAttention,
    gcd_groups,
    legacy_spectral_basis_penalty,
    low_frequency_spectral_basis,
    reference_spectral_basis,
    sharp_objective,
    spectral_basis_penalty,
    spectral_curvature_penalty,
)

# specs/001_hsifusion_sharp.md §0: parameters measured by instantiating the reference code.
REFERENCE_PARAMETERS_MILLIONS = {"tiny": 7.30, "small": 15.09, "base": 38.63, "large": 77.08}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def small_model() -> SHARP:
    torch.manual_seed(0)
    return create_model("sharp_tiny", **tiny_model_arguments("sharp_tiny"))


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """softmax over the allowed keys only, written out: q, k (G, N, D), v (G, N, Dv), allowed (G, N, N) bool."""
    scores = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v.double()).to(v.dtype)


# ----------------------------------------------------------------------------- sparse attention
def test_sparsity_zero_is_dense_attention_whatever_the_cap() -> None:
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 40, 8, generator=generator), torch.randn(2, 3, 40, 8, generator=generator)
    v = torch.randn(2, 3, 40, 5, generator=generator)
    everything = torch.ones(6, 40, 40, dtype=torch.bool)
    dense = reference_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), everything)
    out = sparse_topk_attention(q, k, v, sparsity=0.0, k_cap=3, block_size=7, q_block_size=9)
    torch.testing.assert_close(out, dense.reshape(2, 3, 40, 5), rtol=1e-5, atol=1e-5)
    # topk_attention keeping every key, streamed in uneven blocks, is the same dense attention
    streamed = topk_attention(q, k, v, 40, block_size=7, q_block_size=9)
    torch.testing.assert_close(streamed, dense.reshape(2, 3, 40, 5), rtol=1e-5, atol=1e-5)


def test_dense_attention_in_query_chunks_equals_one_pass() -> None:
    generator = torch.Generator().manual_seed(13)
    q, k = torch.randn(2, 50, 8, generator=generator), torch.randn(2, 30, 8, generator=generator)
    v = torch.randn(2, 30, 4, generator=generator).to(torch.bfloat16)
    one_pass = F.scaled_dot_product_attention(q, k, v.float()).to(torch.bfloat16)
    chunked = dense_attention(q, k, v, score_budget=2 * 30 * 7)  # chunks of 7 queries
    assert chunked.dtype == torch.bfloat16
    torch.testing.assert_close(chunked, one_pass)


def test_topk_attention_equals_a_full_score_matrix_top_k_and_streaming_does_not_change_it() -> None:
    generator = torch.Generator().manual_seed(1)
    q, k = torch.randn(4, 37, 6, generator=generator), torch.randn(4, 37, 6, generator=generator)
    v = torch.randn(4, 37, 3, generator=generator)
    keep = 5
    scores = q @ k.transpose(-2, -1)
    allowed = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, scores.topk(keep, dim=-1).indices, True)
    expected = reference_attention(q, k, v, allowed)
    unstreamed = topk_attention(q, k, v, keep, block_size=37, q_block_size=37)
    torch.testing.assert_close(unstreamed, expected, rtol=1e-5, atol=1e-5)
    for block_size, q_block_size in [(1, 1), (4, 5), (10, 36), (36, 2)]:
        streamed = topk_attention(q, k, v, keep, block_size=block_size, q_block_size=q_block_size)
        torch.testing.assert_close(streamed, unstreamed, rtol=1e-5, atol=1e-6)


def test_streaming_top_k_selects_the_right_keys_on_a_constructed_case() -> None:
    # Scalar features: key j has value key_values[j]. A positive query prefers the largest
    # key values, a negative one the smallest; the answer is known without any attention code.
    key_values = torch.tensor([0.3, -1.2, 2.5, 0.9, -0.4, 1.7, -2.2, 0.1, 3.1, -0.8, 1.1])
    queries = torch.tensor([[1.0], [-1.0], [0.5]])
    scores, indices = streaming_topk_keys(queries[None], key_values[None, :, None], k_keep=3, scale=1.0, block_size=4)
    assert set(indices[0, 0].tolist()) == {8, 2, 5}  # values 3.1, 2.5, 1.7
    assert set(indices[0, 1].tolist()) == {6, 1, 9}  # values -2.2, -1.2, -0.8
    assert set(indices[0, 2].tolist()) == {8, 2, 5}
    torch.testing.assert_close(scores[0, 0].sort(descending=True).values, torch.tensor([3.1, 2.5, 1.7]))
    torch.testing.assert_close(scores[0, 1].sort(descending=True).values, torch.tensor([2.2, 1.2, 0.8]))
    torch.testing.assert_close(scores, torch.gather(queries[None] * key_values[None, None, :], -1, indices))
    # one block at a time, with k_keep larger than the block: the running merge keeps the best
    _, one_by_one = streaming_topk_keys(queries[None], key_values[None, :, None], k_keep=4, scale=1.0, block_size=1)
    assert set(one_by_one[0, 0].tolist()) == {8, 2, 5, 10}


def test_kept_key_count_follows_the_sparsity_and_the_cap() -> None:
    assert kept_keys(100, 0.9, None) == 10
    assert kept_keys(100, 0.9, 4) == 4
    assert kept_keys(100, 0.0, 4) == 100  # the cap is off for dense attention
    assert kept_keys(5, 0.99, 1024) == 1  # at least one key
    with pytest.raises(ConfigError, match=r"in \[0, 1\)"):
        kept_keys(10, 1.0, None)


def test_local_window_is_a_clamped_2d_neighbourhood_without_row_wrap() -> None:
    height, width = 5, 6
    # the last pixel of row 1 sees rows 0..2 and columns 3..5: never the start of row 2
    neighbours = local_window_neighbours(height, width, 3, torch.tensor([1 * width + 5]))[0]
    expected = {r * width + c for r in (0, 1, 2) for c in (3, 4, 5)}
    assert set(neighbours.tolist()) == expected
    # a corner pixel still sees 9 distinct pixels (the window shifts inwards)
    corner = local_window_neighbours(height, width, 3, torch.tensor([0]))[0]
    assert sorted(corner.tolist()) == [0, 1, 2, 6, 7, 8, 12, 13, 14]
    # a window wider than the image is clamped to the image
    assert local_window_neighbours(2, 3, 5, torch.tensor([4]))[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert window_side_for_tokens(49) == 7 and window_side_for_tokens(64) == 9 and window_side_for_tokens(1) == 1


def test_local_window_attention_equals_masked_dense_attention() -> None:
    generator = torch.Generator().manual_seed(2)
    height, width, side = 6, 7, 3
    tokens = height * width
    q, k = torch.randn(2, tokens, 4, generator=generator), torch.randn(2, tokens, 4, generator=generator)
    v = torch.randn(2, tokens, 3, generator=generator)
    allowed = torch.zeros(tokens, tokens, dtype=torch.bool)
    for index in range(tokens):
        row, col = divmod(index, width)
        r0 = min(max(row - 1, 0), height - side)
        c0 = min(max(col - 1, 0), width - side)
        for r in range(r0, r0 + side):
            for c in range(c0, c0 + side):
                allowed[index, r * width + c] = True
    expected = reference_attention(q, k, v, allowed.expand(2, -1, -1))
    out = local_window_attention_2d(q, k, v, height, width, side, q_block_size=5)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # above max_tokens, sparse_topk_attention takes this path (window_size 9 tokens → 3 × 3)
    dispatched = sparse_topk_attention(
        q, k, v, sparsity=0.5, spatial_shape=(height, width), max_tokens=10, window_size=9
    )
    torch.testing.assert_close(dispatched, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ShapeMismatchError, match="needs spatial_shape"):
        sparse_topk_attention(q, k, v, sparsity=0.5, max_tokens=10)


def test_token_cap_pools_to_at_most_the_cap_keeping_the_aspect() -> None:
    assert capped_grid_size(482, 512, 1024) == (32, 32)
    assert capped_grid_size(30, 30, 1024) == (30, 30)
    assert capped_grid_size(4, 6, 4) == (2, 2)  # 4 cells; 2 × 2 is nearer 4:6 than 1 × 4
    # an elongated map: of the 100-cell grids, 1 × 100 is nearest the 2:4000 aspect (2 × 50 is farther)
    assert capped_grid_size(2, 4000, 100) == (1, 100)
    assert capped_grid_size(100, 3, 10) == (10, 1)
    assert capped_grid_size(10, 10, None) == (10, 10)
    feature_map = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).reshape(2, 1, 4, 6)
    pooled = pool_to_token_cap(feature_map, 6)
    assert pooled.shape == (2, 1, 2, 3)
    assert pooled[0, 0, 0, 0].item() == pytest.approx(float(np.mean([0, 1, 6, 7])))


# ----------------------------------------------------------------------------- SHARP components
def test_gcd_groups() -> None:
    assert gcd_groups(3, 24) == 1
    assert gcd_groups(24, 48) == 8
    assert gcd_groups(48, 96) == 16  # the base preset's stem capacity cut, kept as in the reference
    assert gcd_groups(64, 192) == 32


def test_channel_rms_norm_formula() -> None:
    norm = ChannelRMSNorm(3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    x = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)  # pixel 0: (3,4,0); pixel 1: zeros
    y = norm(x)
    rms = math.sqrt((9 + 16) / 3)
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([3 / rms, 2 * 4 / rms, 0.0]))
    assert torch.equal(y[0, :, 0, 1], torch.zeros(3))  # the eps floor keeps zeros finite
    assert norm(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_rbf_kernel_formula() -> None:
    torch.manual_seed(3)
    kernel = RBFKernel(dim=4, centers=5)
    with torch.no_grad():
        kernel.log_sigma.copy_(torch.linspace(-0.5, 0.5, 5))
        kernel.weights.copy_(torch.linspace(0.5, 1.5, 5))
    x = torch.randn(2, 7, 4)
    expected = kernel.weights * torch.exp(
        -((x[..., None, :] - kernel.centers) ** 2).sum(-1) / (2 * torch.exp(kernel.log_sigma) ** 2)
    )
    torch.testing.assert_close(kernel(x), expected, rtol=1e-5, atol=1e-6)


def _topk_indices(attention: SparseTokenAttention, x: torch.Tensor, keep: int) -> torch.Tensor:
    q, k, _ = (
        part.reshape(1, attention.heads, attention.head_dim, -1).transpose(-2, -1)
        for part in attention.qkv(x).chunk(3, 1)
    )
    query_features, key_features = attention.query_key_features(q, k)
    _, indices = streaming_topk_keys(query_features[0], key_features[0], keep, 1.0, 64)
    return indices


def test_mean_key_mode_ranks_keys_the_same_for_every_query_and_linear_does_not() -> None:
    torch.manual_seed(4)
    x = torch.randn(1, 16, 6, 6)
    mean_mode = SparseTokenAttention(16, 2, key_rbf_mode="mean", rbf_centers=8)
    linear_mode = SparseTokenAttention(16, 2, key_rbf_mode="linear", rbf_centers=8)
    with torch.no_grad():
        mean_indices = _topk_indices(mean_mode, x, keep=4)
        linear_indices = _topk_indices(linear_mode, x, keep=4)
    # the reference default: score = mean(k) · Σφ(q), so within a head every query keeps the same keys
    for head in range(2):
        assert all(set(row.tolist()) == set(mean_indices[head, 0].tolist()) for row in mean_indices[head])
        assert len({tuple(sorted(row.tolist())) for row in linear_indices[head]}) > 1


def test_key_modes_and_sparsity_settings_run_and_the_default_is_linear() -> None:
    x = torch.randn(2, 8, 5, 7)
    for mode in ("mean", "linear", "none"):
        attention = SparseTokenAttention(
            8, 2, key_rbf_mode=mode, rbf_centers=4, sparsity=0.5, block_size=8, q_block_size=6
        )
        assert attention(x).shape == x.shape
    assert get_model_entry("sharp_base").signature.parameters["key_rbf_mode"].default == "linear"
    with pytest.raises(ConfigError, match="key_rbf_mode must be one of"):
        SparseTokenAttention(8, 2, key_rbf_mode="cosine")  # type: ignore[arg-type]


def test_cross_attention_fusion_formula() -> None:
    torch.manual_seed(5)
    fusion = CrossAttentionFusion(dim=8, heads=2, kv_token_cap=4)
    x, skip = torch.randn(1, 8, 4, 6), torch.randn(1, 8, 4, 6)
    with torch.no_grad():
        out = fusion(x, skip)
        query = fusion.q(fusion.norm_x(x)).reshape(1, 2, 4, 24).transpose(-2, -1)
        pooled = F.adaptive_avg_pool2d(fusion.norm_skip(skip), (2, 2))  # 4 × 6 capped at 4 tokens → 2 × 2
        key, value = (part.reshape(1, 2, 4, 4).transpose(-2, -1) for part in fusion.kv(pooled).chunk(2, 1))
        attended = torch.softmax(query @ key.transpose(-2, -1) / 2.0, dim=-1) @ value
        attended_map = fusion.proj(attended.transpose(-2, -1).reshape(1, 8, 4, 6))
        gate = torch.sigmoid(fusion.gate(torch.cat([x, attended_map], 1)))
    torch.testing.assert_close(out, (1 - gate) * x + gate * attended_map, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- spectral regularisers
def usgs_spectra_31_bands(shared_data: Path) -> torch.Tensor:
    """Real reflectance spectra (USGS 1995 library) resampled to 400:10:700 nm, shape (N, 31)."""
    from hsikit.spectral.library import load_usgs_library

    library = load_usgs_library(shared_data / "usgs" / "USGS_1995_Library.mat")
    order = np.argsort(library.wavelengths)
    wavelengths, spectra = library.wavelengths[order], library.spectra[:, order]
    inside = (wavelengths > 380) & (wavelengths < 720)
    complete = np.isfinite(spectra[:, inside]).all(axis=1) & (spectra[:, inside] > 0).all(axis=1)
    targets = np.arange(400, 701, 10, dtype=np.float64)
    resampled = np.stack([np.interp(targets, wavelengths[inside], row[inside]) for row in spectra[complete][:40]])
    return torch.from_numpy(resampled).float()


def test_the_reference_basis_is_rank_29_with_a_zero_row_and_not_orthonormal() -> None:
    basis = reference_spectral_basis(31)
    assert basis.shape == (31, 31)
    assert torch.count_nonzero(basis[0]) == 0
    assert torch.linalg.matrix_rank(basis).item() == 29
    assert not torch.allclose(basis @ basis.T, torch.eye(31, dtype=torch.float64), atol=1e-3)


def test_the_reference_regulariser_penalises_a_perfect_prediction_and_ours_do_not(shared_data: Path) -> None:
    spectra = usgs_spectra_31_bands(shared_data)
    assert spectra.shape[0] >= 20
    target = spectra.T.reshape(1, 31, spectra.shape[0], 1)  # (B, 31, H, W): one column of real spectra
    perfect = target.clone()
    legacy = legacy_spectral_basis_penalty(perfect)
    assert legacy.item() > 0.01  # the reference's loss is non-zero with zero error
    assert spectral_basis_penalty(perfect, target).item() == 0.0
    assert spectral_curvature_penalty(perfect, target).item() == 0.0
    noisy = target + 0.02 * torch.randn(target.shape, generator=torch.Generator().manual_seed(6))
    assert spectral_basis_penalty(noisy, target).item() > 1e-5
    assert spectral_curvature_penalty(noisy, target).item() > 1e-5
    l1 = (noisy - target).abs().mean()
    expected = l1 + 0.1 * spectral_curvature_penalty(noisy, target)
    torch.testing.assert_close(sharp_objective(noisy, target, alpha=0.1), expected)


def test_the_regularisers_ignore_smooth_errors_and_match_their_formulas() -> None:
    generator = torch.Generator().manual_seed(7)
    target = torch.rand(2, 31, 3, 4, generator=generator)
    bands = torch.arange(31, dtype=torch.float32).view(1, 31, 1, 1)
    tilted = target + 0.05 + 0.002 * bands  # an affine error across bands
    assert spectral_curvature_penalty(tilted, target).item() == pytest.approx(0.0, abs=1e-10)
    assert spectral_basis_penalty(target + 0.05, target).item() == pytest.approx(0.0, abs=1e-12)
    prediction = target + 0.1 * torch.rand(target.shape, generator=generator)
    error = (prediction - target).double()
    curvature = (error[:, 2:] - 2 * error[:, 1:-1] + error[:, :-2]).pow(2).mean()
    assert spectral_curvature_penalty(prediction, target).item() == pytest.approx(curvature.item(), rel=1e-5)
    basis = low_frequency_spectral_basis(31, 10)
    torch.testing.assert_close(basis.T @ basis, torch.eye(10, dtype=torch.float64))
    flat = error.movedim(1, -1).reshape(-1, 31)
    rough = flat - flat @ basis @ basis.T
    assert spectral_basis_penalty(prediction, target).item() == pytest.approx(rough.pow(2).mean().item(), rel=1e-5)
    with pytest.raises(ShapeMismatchError, match="same"):
        spectral_curvature_penalty(prediction, target[:, :30])


# ----------------------------------------------------------------------------- the model
def test_registered_presets_and_their_sizes() -> None:
    names = set(list_models(task="reconstruction"))
    assert {"sharp_tiny", "sharp_small", "sharp_base", "sharp_large"} <= names
    for size, preset in SHARP_PRESETS.items():
        parameters = get_model_entry(f"sharp_{size}").signature.parameters
        for key, value in preset.items():
            assert parameters[key].default == value
        for stage, heads in enumerate(preset["heads"]):
            assert preset["base_dim"] * 2**stage // heads == 16  # head_dim 16 throughout


@pytest.mark.parametrize("size", ["tiny", "small", "base", "large"])
def test_parameter_counts_match_the_reference_within_0_1_percent(size: str) -> None:
    with torch.device("meta"):
        model = create_model(f"sharp_{size}")
    millions = count_parameters(model) / 1e6
    assert millions == pytest.approx(REFERENCE_PARAMETERS_MILLIONS[size], rel=1e-3)


def test_odd_frame_sizes_come_back_at_their_own_size() -> None:
    model = small_model().eval()
    with torch.no_grad():
        for size in [(61, 67), (5, 3), (1, 1), (8, 8)]:
            spectra = model(torch.rand(1, 3, *size))
            assert spectra.shape == (1, 31, *size)
            assert torch.isfinite(spectra).all()
            assert 0.0 < spectra.min() and spectra.max() < 1.0  # sigmoid output


def test_odd_sizes_are_reflect_padded_to_a_multiple_of_8_then_cropped() -> None:
    model = small_model().eval()
    rgb = torch.rand(1, 3, 21, 27, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        direct = model(rgb)
        padded = model(F.pad(rgb, [0, 5, 0, 3], mode="reflect"))[:, :, :21, :27]
        replicated = model(F.pad(rgb, [0, 5, 0, 3], mode="replicate"))[:, :, :21, :27]
    torch.testing.assert_close(direct, padded, rtol=1e-5, atol=1e-6)
    assert (direct - replicated).abs().max() > 1e-6


def test_images_in_a_batch_do_not_interact() -> None:
    model = small_model().eval()
    rgb = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        batched = model(rgb)
        single = torch.cat([model(rgb[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_training_step_reaches_every_parameter_and_the_sparse_paths_run() -> None:
    # 24 × 32 → stage 0 has 768 tokens: with max_tokens 500 it uses the local window; stages 1-3
    # use streaming top-k (sparsity 0.9) — every attention path takes part.
    model = create_model("sharp_tiny", **{**tiny_model_arguments("sharp_tiny"), "sparse_max_tokens": 500})
    model.train()
    rgb, target = torch.rand(2, 3, 24, 32), torch.rand(2, 31, 24, 32)
    loss = sharp_objective(model(rgb), target)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    assert model.auxiliary_loss().item() == 0.0


def test_output_activations() -> None:
    torch.manual_seed(10)
    rgb = torch.rand(1, 3, 8, 8)
    for activation, low, high in [("tanh", -1.0, 1.0), ("sigmoid", 0.0, 1.0)]:
        model = create_model("sharp_tiny", **tiny_model_arguments("sharp_tiny"), output_activation=activation).eval()
        with torch.no_grad():
            out = model(rgb)
        assert low < out.min().item() and out.max().item() < high
    torch.manual_seed(11)
    linear = create_model("sharp_tiny", **tiny_model_arguments("sharp_tiny"), output_activation="none").eval()
    torch.manual_seed(11)
    squashed = create_model("sharp_tiny", **tiny_model_arguments("sharp_tiny"), output_activation="tanh").eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.tanh(linear(rgb)), squashed(rgb))


def test_model_spec_round_trip() -> None:
    model = small_model()
    name, arguments = model_spec(model)
    assert name == "sharp_tiny"
    assert arguments["base_dim"] == 8 and arguments["key_rbf_mode"] == "linear"
    rebuilt = create_model(name, **arguments)
    rebuilt.load_state_dict(model.state_dict())
    rgb = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(rgb), model.eval()(rgb))


def test_export_and_load_without_unpickling(tmp_path: Path) -> None:
    from hsikit.engine.export import export_model, load_model

    model = small_model().eval()
    export_model(model, tmp_path / "model", task="reconstruction")
    loaded = load_model(tmp_path / "model", expected_model="sharp_tiny")
    rgb = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        torch.testing.assert_close(loaded(rgb), model(rgb))


def test_bad_configurations_and_inputs_are_refused_with_the_fix() -> None:
    arguments = tiny_model_arguments("sharp_tiny")
    with pytest.raises(ConfigError, match="pass base_dim=16"):
        create_model("sharp_tiny", **{**arguments, "base_dim": 12})
    with pytest.raises(ConfigError, match="heads do not divide"):
        create_model("sharp_tiny", **{**arguments, "heads": [3, 1, 2, 4]})
    with pytest.raises(ConfigError, match=r"in \[0, 1\)"):
        create_model("sharp_tiny", **{**arguments, "sparse_sparsity_ratio": 1.0})
    with pytest.raises(ConfigError, match="output_activation"):
        create_model("sharp_tiny", **{**arguments, "output_activation": "relu"})
    with pytest.raises(ShapeMismatchError, match=r"\(B, 3, H, W\)"):
        small_model()(torch.rand(3, 16, 16))


def test_bfloat16_autocast_forward_and_backward() -> None:
    model = small_model().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spectra = model(torch.rand(2, 3, 20, 28))
        loss = spectra.float().mean() + model.auxiliary_loss()
    loss.backward()
    assert spectra.dtype == torch.bfloat16 and torch.isfinite(spectra).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_the_tiny_preset_at_an_odd_frame_size() -> None:
    torch.manual_seed(16)
    model = create_model("sharp_tiny").eval()
    with torch.no_grad():
        spectra = model(torch.rand(1, 3, 61, 67))
    assert spectra.shape == (1, 31, 61, 67)
    assert torch.isfinite(spectra).all()


@pytest.mark.slow
def test_a_full_arad_frame_through_the_tiny_preset() -> None:
    torch.manual_seed(12)
    model = create_model("sharp_tiny").eval()
    with torch.no_grad():
        spectra = model(torch.rand(1, 3, 482, 512))
    assert spectra.shape == (1, 31, 482, 512)
    assert torch.isfinite(spectra).all()
