"""CSWIN v2 discriminator: spectral norm everywhere, NaN-safe attention, conditioning, output map."""

from __future__ import annotations

import math

import pytest
import torch

from hsikit.errors import ConfigError, NonFiniteError, ShapeMismatchError
from hsikit.models import create_model, list_models, model_spec, tiny_model_arguments
from hsikit.models.layers.channel_attention import channel_attention
from hsikit.models.layers.spectral_norm import has_spectral_norm, layers_without_spectral_norm, spectral_normalized
from hsikit.models.reconstruction import SNTransformerDiscriminator
from hsikit.models.reconstruction.cswin_discriminator import SpectralSelfAttention

DEFAULT_PARAMETERS = 2_178_545  # the spec's "2.18 M"


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def tiny(**overrides) -> SNTransformerDiscriminator:
    torch.manual_seed(0)
    return create_model("cswin_discriminator", **{**tiny_model_arguments("cswin_discriminator"), **overrides})


def test_registered_as_a_gan_discriminator_not_a_reconstruction_model() -> None:
    assert "cswin_discriminator" in list_models(task="gan_discriminator")
    assert "cswin_discriminator" not in list_models(task="reconstruction")
    name, arguments = model_spec(tiny())
    assert name == "cswin_discriminator" and arguments["num_blocks"] == [1, 1, 1]


def test_every_convolution_and_linear_layer_is_spectrally_normalised() -> None:
    for model in (SNTransformerDiscriminator(), tiny(num_blocks=[2, 0, 1])):
        weighted = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert len(weighted) > 10
        assert layers_without_spectral_norm(model) == []
        for layer in weighted:
            (normaliser,) = layer.parametrizations.weight
            assert normaliser.n_power_iterations == 1 and normaliser.eps == 1e-6


def test_spectral_norm_helpers_detect_a_missing_normalisation() -> None:
    model = torch.nn.Sequential(spectral_normalized(torch.nn.Conv2d(2, 3, 3)), torch.nn.Linear(3, 1))
    assert layers_without_spectral_norm(model) == ["1"]
    assert has_spectral_norm(model[0]) and not has_spectral_norm(model[1])
    with pytest.raises(ConfigError):
        spectral_normalized(torch.nn.GELU())  # type: ignore[arg-type]


def test_training_forwards_drive_every_weight_to_unit_spectral_norm() -> None:
    model = tiny().train()
    rgb, hsi = torch.rand(1, 3, 8, 8), torch.rand(1, 31, 8, 8)
    with torch.no_grad():
        for _ in range(60):  # one power iteration per forward
            model(rgb, hsi)
    model.eval()
    for layer in model.modules():
        if isinstance(layer, torch.nn.Conv2d):
            weight = layer.weight.reshape(layer.weight.shape[0], -1)
            assert torch.linalg.matrix_norm(weight, ord=2).item() == pytest.approx(1.0, abs=2e-2)


def test_default_parameter_count_matches_the_reference() -> None:
    model = SNTransformerDiscriminator()
    assert sum(p.numel() for p in model.parameters()) == DEFAULT_PARAMETERS
    assert round(DEFAULT_PARAMETERS / 1e6, 2) == 2.18


@pytest.mark.parametrize(
    ("size", "expected"), [((32, 32), (8, 8)), ((9, 11), (3, 3)), ((128, 96), (32, 24)), ((1, 2), (1, 1))]
)
def test_output_is_a_spatial_score_map(size: tuple[int, int], expected: tuple[int, int]) -> None:
    model = tiny().eval()
    with torch.no_grad():
        scores = model(torch.rand(2, 3, *size), torch.rand(2, 31, *size))
    assert scores.shape == (2, 1, *expected)
    assert torch.isfinite(scores).all()


def test_two_stage_discriminator_downsamples_once() -> None:
    model = tiny(num_blocks=[1, 1]).eval()
    assert model(torch.rand(1, 3, 16, 16), torch.rand(1, 31, 16, 16)).shape == (1, 1, 8, 8)


def test_scores_depend_on_both_the_rgb_and_the_cube() -> None:
    model = tiny().eval()
    assert model.stem.in_channels == 34
    rgb = torch.rand(1, 3, 8, 8, requires_grad=True)
    hsi = torch.rand(1, 31, 8, 8, requires_grad=True)
    rgb_grad, hsi_grad = torch.autograd.grad(model(rgb, hsi).sum(), (rgb, hsi))
    assert rgb_grad.abs().sum() > 0 and hsi_grad.abs().sum() > 0


def test_scores_are_clamped() -> None:
    model = tiny().eval()
    torch.nn.init.constant_(model.head_out.bias, 25.0)
    assert model(torch.rand(1, 3, 8, 8), torch.rand(1, 31, 8, 8)).max().item() == 10.0
    unclamped = tiny(output_clamp=None).eval()
    torch.nn.init.constant_(unclamped.head_out.bias, 25.0)
    assert unclamped(torch.rand(1, 3, 8, 8), torch.rand(1, 31, 8, 8)).max().item() > 20.0


# --------------------------------------------------------------------------- NaN-safe attention
def test_clamped_logits_match_a_hand_computed_softmax() -> None:
    # q = k: cosine logits are +1 on the diagonal, -1 for the opposite channel; τ = +inf makes
    # them ±inf, which the clamp turns into ±50 before the softmax.
    patterns = torch.tensor([[1.0, 0.0], [-1.0, 0.0]]).view(1, 1, 2, 2)
    value = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    out = channel_attention(patterns, patterns, value, torch.full((1, 1, 1), math.inf), logit_clamp=50.0)
    weights = torch.softmax(torch.tensor([[50.0, -50.0], [-50.0, 50.0]]), dim=-1)
    torch.testing.assert_close(out[0, 0], weights @ value[0, 0])
    assert torch.isfinite(out).all()
    unclamped = channel_attention(patterns, patterns, value, torch.full((1, 1, 1), math.inf))
    assert not torch.isfinite(unclamped).all()  # what the clamp prevents


@pytest.mark.parametrize("temperature", [math.inf, -math.inf, math.nan, 1e30, -1e30])
def test_discriminator_attention_stays_finite_for_degenerate_temperatures(temperature: float) -> None:
    torch.manual_seed(0)
    attention = SpectralSelfAttention(8, num_heads=2).eval()
    with torch.no_grad():
        attention.temperature.fill_(temperature)
        out = attention(torch.randn(2, 8, 5, 5))
    assert torch.isfinite(out).all()


def test_discriminator_stays_finite_on_huge_and_zero_inputs() -> None:
    model = tiny().eval()
    with torch.no_grad():
        for scale in (0.0, 1e6, 1e15):
            scores = model(torch.full((1, 3, 8, 8), scale), torch.full((1, 31, 8, 8), scale))
            assert torch.isfinite(scores).all(), scale


def test_non_finite_inputs_are_refused_in_training() -> None:
    model = tiny().train()
    hsi = torch.rand(1, 31, 8, 8)
    hsi[0, 3, 2, 2] = math.nan
    with pytest.raises(NonFiniteError, match="NaN/Inf"):
        model(torch.rand(1, 3, 8, 8), hsi)


def test_bad_inputs_and_configurations_are_refused() -> None:
    model = tiny()
    with pytest.raises(ShapeMismatchError, match="same batch and size"):
        model(torch.rand(1, 3, 8, 8), torch.rand(1, 31, 8, 9))
    with pytest.raises(ShapeMismatchError):
        model(torch.rand(1, 3, 8, 8), torch.rand(1, 30, 8, 8))
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        tiny(base_dim=6, num_heads=4)
    with pytest.raises(ConfigError, match="dropout"):
        tiny(dropout=1.0)


def test_export_round_trip_keeps_the_spectral_norm_state(tmp_path) -> None:
    from hsikit.engine.export import export_model, load_model

    model = tiny().train()
    rgb, hsi = torch.rand(1, 3, 8, 8), torch.rand(1, 31, 8, 8)
    with torch.no_grad():
        model(rgb, hsi)  # advance the power iteration so u, v differ from their initial values
    export_model(model.eval(), tmp_path / "critic", task="gan_discriminator")
    loaded = load_model(tmp_path / "critic", expected_model="cswin_discriminator").eval()
    assert any(key.endswith("parametrizations.weight.0._u") for key in loaded.state_dict())
    torch.testing.assert_close(loaded(rgb, hsi), model(rgb, hsi))
