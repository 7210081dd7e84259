"""CSWIN v2 generator: any input size, output schedule, parameter counts, spectral attention, real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models import create_model, list_models, model_spec, tiny_model_arguments
from hsikit.models.layers.channel_attention import ChannelSelfAttention, channel_attention
from hsikit.models.layers.cswin_attention import AxialLegacyAttention, CSWinAttention
from hsikit.models.layers.normalization import adaptive_group_count
from hsikit.models.reconstruction import NoiseRobustCSWinGenerator

DEFAULT_PARAMETERS = 8_917_140  # stripe attention, symmetric decoder (hsikit defaults)
REFERENCE_LAYOUT_PARAMETERS = 13_580_772  # axial attention + asymmetric decoder: the spec's "13.58 M"


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def tiny(**overrides) -> NoiseRobustCSWinGenerator:
    torch.manual_seed(0)
    return create_model("cswin_generator", **{**tiny_model_arguments("cswin_generator"), **overrides})


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_as_a_reconstruction_model_with_its_arguments() -> None:
    assert "cswin_generator" in list_models(task="reconstruction")
    model = tiny()
    name, arguments = model_spec(model)
    assert name == "cswin_generator"
    assert arguments["split_sizes"] == [2, 2, 2] and arguments["output_activation"] == "none"
    rebuilt = create_model(name, **arguments)
    rebuilt.load_state_dict(model.state_dict())
    rgb = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(rebuilt.eval()(rgb), model.eval()(rgb))


@pytest.mark.parametrize("size", [(9, 11), (1, 1), (2, 3), (5, 17), (16, 16)])
def test_any_input_size_gives_31_bands_of_the_same_size(size: tuple[int, int]) -> None:
    model = tiny(split_sizes=[7, 7, 7]).eval()  # stripes wider than the deep maps: the padding fallbacks run
    with torch.no_grad():
        output = model(torch.rand(2, 3, *size))
    assert output.shape == (2, 31, *size)
    assert torch.isfinite(output).all()


def test_parameter_counts_at_the_defaults_and_in_the_reference_layout() -> None:
    default = NoiseRobustCSWinGenerator()
    assert parameter_count(default) == DEFAULT_PARAMETERS
    reference = NoiseRobustCSWinGenerator(cswin_mode="axial_legacy", symmetric_decoder=False)
    assert parameter_count(reference) == REFERENCE_LAYOUT_PARAMETERS
    assert round(REFERENCE_LAYOUT_PARAMETERS / 1e6, 2) == 13.58  # specs/003_cswin_gan.md §0


def test_every_block_uses_real_cswin_stripes_with_the_configured_widths() -> None:
    model = tiny(split_sizes=[1, 2, 3])
    widths = {
        "encoder1": 1, "decoder1": 1, "encoder2": 2, "decoder2": 2, "bottleneck": 3,
    }  # fmt: skip
    for stage, width in widths.items():
        for block in getattr(model, stage):
            assert isinstance(block.spatial_attention, CSWinAttention)
            assert block.spatial_attention.split_size == width
            assert isinstance(block.spectral_attention, ChannelSelfAttention)
    legacy = tiny(cswin_mode="axial_legacy")
    assert isinstance(legacy.bottleneck[0].spatial_attention, AxialLegacyAttention)


def test_symmetric_and_reference_decoders_differ_only_in_the_second_level() -> None:
    symmetric, reference = tiny(), tiny(symmetric_decoder=False)
    assert symmetric.decoder2[0].norm_spectral.num_channels == 16  # 2C, compressed first
    assert reference.decoder2[0].norm_spectral.num_channels == 32  # 4C, compressed after the blocks
    rgb = torch.rand(1, 3, 10, 12)
    assert reference.eval()(rgb).shape == (1, 31, 10, 12)


def test_every_parameter_receives_a_gradient() -> None:
    model = tiny().train()
    model(torch.rand(2, 3, 9, 11)).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_adaptive_group_norm_group_counts() -> None:
    assert [adaptive_group_count(c, 8) for c in (64, 12, 31, 6, 256)] == [8, 4, 1, 2, 8]
    model = tiny(base_channels=12, num_heads=2)
    assert model.embed[1].num_groups == 4 and model.encoder2[0].norm_ffn.num_groups == 8  # 12 -> 4, 24 -> 8


# --------------------------------------------------------------------------- output schedule
def constant_head(model: NoiseRobustCSWinGenerator, value: float) -> NoiseRobustCSWinGenerator:
    """Make the raw output the constant ``value`` everywhere."""
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.constant_(model.head.bias, value)
    return model


def output_value(model: NoiseRobustCSWinGenerator, step: int, training: bool = False) -> float:
    model.set_iteration(step)
    model.train(training)
    with torch.no_grad():
        return model(torch.rand(1, 3, 4, 4))[0, 0, 0, 0].item()


def test_linear_output_is_clamped_at_every_step_by_default() -> None:
    model = constant_head(tiny(), 25.0)
    assert output_value(model, 0) == 10.0
    assert output_value(model, 10**6) == 10.0
    assert output_value(model, 10**6, training=True) == 10.0
    assert output_value(constant_head(tiny(), -0.3), 0) == pytest.approx(-0.3)
    assert output_value(constant_head(tiny(clamp_range=None), 25.0), 0) == 25.0


def test_clamp_after_iters_limits_the_clamp_to_the_warm_up() -> None:
    model = constant_head(tiny(clamp_after_iters=100), 25.0)
    assert output_value(model, 99) == 10.0
    assert output_value(model, 100) == 25.0


def test_delayed_sigmoid_switches_on_after_the_delay() -> None:
    model = constant_head(tiny(output_activation="delayed_sigmoid", activation_delay_iters=50), 25.0)
    assert not model.sigmoid_active()
    assert output_value(model, 50) == 10.0  # still linear (clamped) at the delay itself
    assert output_value(model, 51) == pytest.approx(1 / (1 + math.exp(-25.0)))
    model = constant_head(tiny(output_activation="delayed_sigmoid", activation_delay_iters=50), 0.5)
    assert output_value(model, 10) == pytest.approx(0.5)
    assert output_value(model, 60) == pytest.approx(1 / (1 + math.exp(-0.5)))


def test_sigmoid_and_tanh_outputs_are_never_clamped() -> None:
    assert output_value(constant_head(tiny(output_activation="sigmoid"), 0.7), 0) == pytest.approx(
        1 / (1 + math.exp(-0.7))
    )
    assert output_value(constant_head(tiny(output_activation="tanh"), 0.7), 0) == pytest.approx(
        0.5 * (math.tanh(0.7) + 1)
    )


def test_iteration_count_increments_in_training_and_is_saved() -> None:
    model = tiny()
    model.train()
    model(torch.rand(1, 3, 4, 4))
    model(torch.rand(1, 3, 4, 4))
    assert int(model.iteration_count) == 2
    model.eval()
    with torch.no_grad():
        model(torch.rand(1, 3, 4, 4))
    assert int(model.iteration_count) == 2
    model.set_iteration(1234)
    state = model.state_dict()
    assert state["iteration_count"].dtype == torch.long and int(state["iteration_count"]) == 1234
    fresh = tiny()
    fresh.load_state_dict(state)
    assert int(fresh.iteration_count) == 1234
    with pytest.raises(ConfigError):
        model.set_iteration(-1)


# --------------------------------------------------------------------------- spectral attention
def test_channel_attention_matches_the_hand_computed_map() -> None:
    # Orthonormal, zero-mean channel patterns: q̂_i · k̂_j = δ_ij, so A_ij = e^{τδ_ij} / (e^τ + d − 1).
    pixels = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]])
    query = pixels.view(1, 1, 3, 4)
    value = torch.eye(3).repeat(1, 2)[:, :4].reshape(1, 1, 3, 4)
    tau = 3.0
    out = channel_attention(query, query, value, torch.full((1, 1, 1), tau))
    diagonal = math.exp(tau) / (math.exp(tau) + 2)
    off = 1 / (math.exp(tau) + 2)
    expected_map = torch.full((3, 3), off) + torch.eye(3) * (diagonal - off)
    torch.testing.assert_close(out[0, 0], expected_map @ value[0, 0])


def test_spectral_attention_is_not_the_references_near_uniform_pooled_map() -> None:
    # The reference pooled q and k over the image before the attention: for zero-mean channel
    # patterns the pooled vectors vanish and its map is uniform (1/d), whatever the patterns.
    pixels = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]).view(1, 1, 3, 4)
    value = torch.eye(3).repeat(1, 2)[:, :4].reshape(1, 1, 3, 4)
    ours = channel_attention(pixels, pixels, value, torch.full((1, 1, 1), 3.0))
    pooled = F.normalize(pixels.mean(-1), dim=-1)  # the reference's GAP -> L2 normalise
    reference_map = torch.softmax(pooled[..., :, None] * pooled[..., None, :] / math.sqrt(3), dim=-1)
    assert torch.allclose(reference_map, torch.full_like(reference_map, 1 / 3))
    assert (ours[0, 0] - (reference_map[0, 0] @ value[0, 0])).abs().max() > 0.5


def test_generator_spectral_attention_mixes_channels_per_head() -> None:
    torch.manual_seed(0)
    attention = ChannelSelfAttention(8, num_heads=2).double()
    x = torch.randn(1, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    out = attention(x)
    assert out.shape == x.shape
    # a pixel's output depends on every pixel of the image (the attention map is global)
    (gradient,) = torch.autograd.grad(out[0, :, 0, 0].sum(), x)
    assert (gradient.abs().sum(1)[0] > 0).all()


# --------------------------------------------------------------------------- errors
def test_bad_inputs_and_configurations_are_refused() -> None:
    model = tiny()
    with pytest.raises(ShapeMismatchError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 8, 8))
    with pytest.raises(ConfigError, match="output_activation"):
        tiny(output_activation="relu")
    with pytest.raises(ConfigError, match="split_sizes"):
        tiny(split_sizes=[7, 7])
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        tiny(base_channels=10, num_heads=4)
    with pytest.raises(ConfigError, match="cswin_mode"):
        tiny(cswin_mode="swin")
    with pytest.raises(ConfigError, match="clamp_range"):
        tiny(clamp_range=0.0)


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real_pair(shared_data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A 24 x 24 Indian Pines patch at 400:10:700 nm (31 bands, scaled to <= 1) and its NTIRE-camera RGB."""
    from hsikit.data.proxy import (
        INDIAN_PINES_CUBE,
        INDIAN_PINES_DN_OFFSET,
        INDIAN_PINES_WAVELENGTHS,
        PROXY_FWHM_NM,
        PROXY_WAVELENGTHS_NM,
    )
    from hsikit.io import open_cube, read_wavelength_table
    from hsikit.spectral.cameras import load_ntire2022_camera
    from hsikit.spectral.resample import resample

    table = read_wavelength_table(shared_data / INDIAN_PINES_WAVELENGTHS, keep_column="in_corrected_200")
    cube = open_cube(shared_data / INDIAN_PINES_CUBE, layout="HWC", wavelengths=table)
    patch = cube.replace(data=cube.data[:, 40:64, 60:84].astype(np.float64) - INDIAN_PINES_DN_OFFSET)
    spectra = resample(patch, PROXY_WAVELENGTHS_NM, PROXY_FWHM_NM, method="gaussian", dtype=np.float64).data
    spectra = spectra / spectra.max()
    camera = load_ntire2022_camera().sample(PROXY_WAVELENGTHS_NM)
    rgb = np.einsum("kc,chw->khw", camera / camera.sum(axis=1, keepdims=True), spectra)
    return torch.as_tensor(rgb, dtype=torch.float32)[None], torch.as_tensor(spectra, dtype=torch.float32)[None]


def test_the_generator_learns_a_real_spectral_patch(real_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    rgb, spectra = real_pair
    model = tiny().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = ((model(rgb) - spectra).abs() / spectra).mean()  # MRAE
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-5:]) < 0.5 * losses[0]


def test_schedule_gradients_flow_through_the_selected_branch_only() -> None:
    model = constant_head(tiny(output_activation="delayed_sigmoid", activation_delay_iters=5, clamp_range=1.0), 2.0)
    model.set_iteration(3)  # linear phase, raw output 2 clamped to 1: no gradient to the head bias
    model.eval()(torch.rand(1, 3, 4, 4)).sum().backward()
    assert model.head.bias.grad.abs().sum().item() == 0.0
    model.zero_grad()
    model.set_iteration(6)  # sigmoid phase: σ'(2) > 0
    model(torch.rand(1, 3, 4, 4)).sum().backward()
    assert model.head.bias.grad.abs().sum().item() > 0.0


def test_export_round_trip_keeps_weights_and_step(tmp_path: Path) -> None:
    from hsikit.engine.export import export_model, load_model

    model = tiny().eval()
    model.set_iteration(4321)
    export_model(model, tmp_path / "generator", task="reconstruction")
    loaded = load_model(tmp_path / "generator", expected_model="cswin_generator").eval()
    rgb = torch.rand(1, 3, 7, 9)
    assert int(loaded.iteration_count) == 4321
    torch.testing.assert_close(loaded(rgb), model(rgb))
