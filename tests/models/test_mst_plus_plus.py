"""MST++: parameter count, reference weight names, S-MSA maths, padding, shapes, registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import CheckpointError, ConfigError, ShapeMismatchError
from hsikit.models import create_model, list_models, model_spec, tiny_model_arguments
from hsikit.models.reconstruction import MSTPlusPlus, load_reference_state_dict
from hsikit.models.reconstruction.mst_plus_plus import SpectralMSA

REFERENCE_PARAMETERS = 1_619_625  # specs/mstpp_protocol.md §3 (paper: 1.62 M)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def spec_state_dict_shapes(stages: int = 3, base: int = 31) -> dict[str, tuple[int, ...]]:
    """Every key and shape of the reference MST_Plus_Plus state dict, written from the spec's module tree."""
    shapes: dict[str, tuple[int, ...]] = {
        "conv_in.weight": (base, 3, 3, 3),
        "conv_out.weight": (base, base, 3, 3),
    }

    def attention_block(prefix: str, channels: int) -> None:
        heads = channels // base
        inner = heads * base
        attention, feed_forward = f"{prefix}.blocks.0.0", f"{prefix}.blocks.0.1"
        shapes[f"{attention}.to_q.weight"] = (inner, channels)
        shapes[f"{attention}.to_k.weight"] = (inner, channels)
        shapes[f"{attention}.to_v.weight"] = (inner, channels)
        shapes[f"{attention}.rescale"] = (heads, 1, 1)
        shapes[f"{attention}.proj.weight"] = (channels, inner)
        shapes[f"{attention}.proj.bias"] = (channels,)
        shapes[f"{attention}.pos_emb.0.weight"] = (channels, 1, 3, 3)
        shapes[f"{attention}.pos_emb.2.weight"] = (channels, 1, 3, 3)
        shapes[f"{feed_forward}.norm.weight"] = (channels,)
        shapes[f"{feed_forward}.norm.bias"] = (channels,)
        shapes[f"{feed_forward}.fn.net.0.weight"] = (4 * channels, channels, 1, 1)
        shapes[f"{feed_forward}.fn.net.2.weight"] = (4 * channels, 1, 3, 3)
        shapes[f"{feed_forward}.fn.net.4.weight"] = (channels, 4 * channels, 1, 1)

    for stage in range(stages):
        body = f"body.{stage}"
        shapes[f"{body}.embedding.weight"] = (base, base, 3, 3)
        attention_block(f"{body}.encoder_layers.0.0", base)
        shapes[f"{body}.encoder_layers.0.1.weight"] = (2 * base, base, 4, 4)
        attention_block(f"{body}.encoder_layers.1.0", 2 * base)
        shapes[f"{body}.encoder_layers.1.1.weight"] = (4 * base, 2 * base, 4, 4)
        attention_block(f"{body}.bottleneck", 4 * base)
        # ConvTranspose2d weights are (in, out, k, k)
        shapes[f"{body}.decoder_layers.0.0.weight"] = (4 * base, 2 * base, 2, 2)
        shapes[f"{body}.decoder_layers.0.0.bias"] = (2 * base,)
        shapes[f"{body}.decoder_layers.0.1.weight"] = (2 * base, 4 * base, 1, 1)
        attention_block(f"{body}.decoder_layers.0.2", 2 * base)
        shapes[f"{body}.decoder_layers.1.0.weight"] = (2 * base, base, 2, 2)
        shapes[f"{body}.decoder_layers.1.0.bias"] = (base,)
        shapes[f"{body}.decoder_layers.1.1.weight"] = (base, 2 * base, 1, 1)
        attention_block(f"{body}.decoder_layers.1.2", base)
        shapes[f"{body}.mapping.weight"] = (base, base, 3, 3)
    return shapes


@pytest.fixture(scope="module")
def full_model() -> MSTPlusPlus:
    torch.manual_seed(0)
    return MSTPlusPlus().eval()


@pytest.fixture(scope="module")
def tiny_model() -> MSTPlusPlus:
    torch.manual_seed(0)
    return create_model("mst_plus_plus", **tiny_model_arguments("mst_plus_plus")).eval()


def test_parameter_count_is_the_published_1_62_million(full_model: MSTPlusPlus) -> None:
    assert sum(p.numel() for p in full_model.parameters()) == REFERENCE_PARAMETERS
    assert sum(math.prod(shape) for shape in spec_state_dict_shapes().values()) == REFERENCE_PARAMETERS


def test_state_dict_keys_and_shapes_are_exactly_the_reference_ones(full_model: MSTPlusPlus) -> None:
    ours = {key: tuple(value.shape) for key, value in full_model.state_dict().items()}
    expected = spec_state_dict_shapes()
    assert sorted(set(ours) - set(expected)) == []
    assert sorted(set(expected) - set(ours)) == []
    assert ours == expected


def test_a_reference_checkpoint_loads_strictly_with_or_without_dataparallel_prefix() -> None:
    generator = torch.Generator().manual_seed(5)
    reference = {key: torch.randn(shape, generator=generator) for key, shape in spec_state_dict_shapes().items()}
    model = MSTPlusPlus()
    model.load_state_dict(reference, strict=True)
    key = "body.2.bottleneck.blocks.0.0.to_v.weight"
    assert torch.equal(model.body[2].bottleneck.blocks[0][0].to_v.weight, reference[key])
    fresh = MSTPlusPlus()
    checkpoint = {"epoch": 300, "iter": 300000, "state_dict": {f"module.{k}": v for k, v in reference.items()}}
    load_reference_state_dict(fresh, checkpoint)
    assert torch.equal(fresh.conv_out.weight, reference["conv_out.weight"])


def test_a_checkpoint_of_another_configuration_is_refused_with_the_fix() -> None:
    reference = {key: torch.zeros(shape) for key, shape in spec_state_dict_shapes().items()}
    with pytest.raises(CheckpointError, match=r"missing key.*unexpected key.*the checkpoint was trained with"):
        load_reference_state_dict(MSTPlusPlus(stage=2), reference)


def test_full_size_forward_shape(full_model: MSTPlusPlus) -> None:
    rgb = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        spectra = full_model(rgb)
    assert spectra.shape == (1, 31, 64, 64)
    assert torch.isfinite(spectra).all()


@pytest.mark.parametrize("size", [(482, 512), (37, 53), (5, 5), (8, 17)])
def test_any_size_comes_back_at_its_own_size(tiny_model: MSTPlusPlus, size: tuple[int, int]) -> None:
    with torch.no_grad():
        spectra = tiny_model(torch.rand(1, 3, *size))
    assert spectra.shape == (1, 31, *size)
    assert torch.isfinite(spectra).all()


def test_odd_sizes_are_reflect_padded_to_a_multiple_of_8_then_cropped(tiny_model: MSTPlusPlus) -> None:
    rgb = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    padded = F.pad(rgb, [0, 56 - 53, 0, 40 - 37], mode="reflect")
    with torch.no_grad():
        direct = tiny_model(rgb)
        via_padding = tiny_model(padded)[:, :, :37, :53]
        replicated = tiny_model(F.pad(rgb, [0, 3, 0, 3], mode="replicate"))[:, :, :37, :53]
    torch.testing.assert_close(direct, via_padding, rtol=1e-5, atol=1e-6)
    assert (direct - replicated).abs().max() > 1e-4  # the padding mode matters, and it is reflect


def test_images_in_a_batch_do_not_interact(tiny_model: MSTPlusPlus) -> None:
    rgb = torch.rand(3, 3, 24, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        batched = tiny_model(rgb)
        single = torch.cat([tiny_model(rgb[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_too_small_or_wrong_inputs_are_refused(tiny_model: MSTPlusPlus) -> None:
    with pytest.raises(ShapeMismatchError, match=r"4 x 53 input is too small"):
        tiny_model(torch.rand(1, 3, 4, 53))
    with pytest.raises(ShapeMismatchError, match=r"\(B, 3, H, W\)"):
        tiny_model(torch.rand(3, 16, 16))
    with pytest.raises(ConfigError, match="n_feat equal to out_channels"):
        MSTPlusPlus(out_channels=28)


def reference_spectral_msa(module: SpectralMSA, tokens: torch.Tensor) -> torch.Tensor:
    """S-MSA written from the spec formulas, one head at a time (tokens (B, H, W, C))."""
    batch, height, width, channels = tokens.shape
    d, heads = module.dim_head, module.num_heads
    x = tokens.reshape(batch, height * width, channels)
    q_all, k_all, v_all = x @ module.to_q.weight.T, x @ module.to_k.weight.T, x @ module.to_v.weight.T
    outputs = []
    for head in range(heads):
        cols = slice(head * d, (head + 1) * d)
        q = q_all[:, :, cols].transpose(1, 2)  # (B, d, N)
        k = k_all[:, :, cols].transpose(1, 2)
        v = v_all[:, :, cols].transpose(1, 2)
        q = q / q.norm(dim=-1, keepdim=True)  # unit norm over pixels
        k = k / k.norm(dim=-1, keepdim=True)
        attention = torch.softmax(module.rescale[head] * (k @ q.transpose(1, 2)), dim=-1)  # (B, d, d)
        outputs.append((attention @ v).transpose(1, 2))  # (B, N, d)
    merged = torch.cat(outputs, dim=-1) @ module.proj.weight.T + module.proj.bias
    value_map = v_all.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
    positional = module.pos_emb(value_map).permute(0, 2, 3, 1)
    return merged.reshape(batch, height, width, channels) + positional


def test_spectral_attention_matches_the_spec_formula() -> None:
    torch.manual_seed(3)
    module = SpectralMSA(dim=12, dim_head=4, heads=3)
    with torch.no_grad():
        module.rescale.copy_(torch.tensor([0.5, 1.0, 2.0]).view(3, 1, 1))
        module.proj.bias.normal_()
    tokens = torch.randn(2, 5, 7, 12)
    with torch.no_grad():
        torch.testing.assert_close(module(tokens), reference_spectral_msa(module, tokens), rtol=1e-5, atol=1e-5)


def test_reference_initialisation(full_model: MSTPlusPlus) -> None:
    linear = full_model.body[0].bottleneck.blocks[0][0].to_q.weight  # 124 x 124 values
    assert 0.017 < linear.std().item() < 0.023
    assert linear.abs().max().item() <= 2.0
    assert torch.count_nonzero(full_model.body[1].encoder_layers[0][0].blocks[0][0].proj.bias) == 0
    norm = full_model.body[2].decoder_layers[1][2].blocks[0][1].norm
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
    assert torch.all(full_model.body[0].bottleneck.blocks[0][0].rescale == 1)
    # the outer convolutions keep PyTorch's default (kaiming-uniform, bound 1/sqrt(fan_in))
    assert full_model.conv_in.weight.abs().max().item() <= 1 / math.sqrt(27)


def test_every_parameter_receives_a_gradient(tiny_model: MSTPlusPlus) -> None:
    model = create_model("mst_plus_plus", **tiny_model_arguments("mst_plus_plus"))
    model(torch.rand(2, 3, 16, 16)).abs().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_registry_entry_and_spec_round_trip() -> None:
    assert "mst_plus_plus" in list_models(task="reconstruction")
    model = create_model("mst_plus_plus", stage=1, num_blocks=(1, 1))
    name, arguments = model_spec(model)
    assert name == "mst_plus_plus"
    assert arguments == {"in_channels": 3, "out_channels": 31, "n_feat": 31, "stage": 1, "num_blocks": [1, 1]}
    rebuilt = create_model(name, **arguments)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())
    assert isinstance(rebuilt, nn.Module) and len(rebuilt.body) == 1
