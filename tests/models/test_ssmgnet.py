"""SSMGNet's SegModel: architecture, shapes, errors, initialisation, registry, real glacier tiles."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.io import open_cube
from hsikit.losses.attention import SpectralAttentionTarget
from hsikit.models import create_model, get_model_entry, list_models, model_spec, tiny_model_arguments
from hsikit.models.segmentation import SegmentationLogits, SegmentationOutput, SSMGNet


def _tiny(in_bands: int = 10, num_classes: int = 3) -> SSMGNet:
    torch.manual_seed(0)
    model = create_model("ssmgnet", in_bands=in_bands, num_classes=num_classes, **tiny_model_arguments("ssmgnet"))
    assert isinstance(model, SSMGNet)
    return model


def test_registered_for_segmentation_with_the_reference_defaults() -> None:
    assert "ssmgnet" in list_models(task="segmentation")
    entry = get_model_entry("ssmgnet")
    defaults = {name: p.default for name, p in entry.signature.parameters.items()}
    assert defaults == {
        "in_bands": 6, "num_classes": 3, "width": 16, "conv_kernel": 3, "dilation_rate": 1, "atten_kernel": 9,
        "init": "kaiming", "init_gain": 0.02,
    }


def test_parameter_count_of_the_scripts_configuration() -> None:
    model = create_model("ssmgnet", in_bands=10, num_classes=3)
    # convs without bias: 10·16·9 + 16·32·9 + 32·64·9 + 64·64·9 = 61 344; BN γ, β: 2·(16 + 32 + 64 + 64) = 352;
    # attention conv 2·9·9 = 162; head 64·3 + 3 = 195  →  62 053 (the reference checkpoint is ~259 kB)
    assert sum(p.numel() for p in model.parameters()) == 61_344 + 352 + 162 + 195


def test_state_dict_keys_follow_the_reference_layout() -> None:
    keys = set(create_model("ssmgnet", in_bands=10).state_dict())
    expected = {"sa_module4.conv.weight", "final.weight", "final.bias"}
    for stage in range(1, 5):
        expected |= {f"stage{stage}.0.weight"}
        expected |= {f"stage{stage}.1.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert keys == expected


@pytest.mark.parametrize("size", [(255, 257), (1, 1), (17, 4)])
def test_output_shapes_for_any_input_size(size: tuple[int, int]) -> None:
    model = _tiny()
    with torch.no_grad():
        output = model(torch.rand(2, 10, *size))
    assert isinstance(output, SegmentationOutput)
    assert output.logits.shape == (2, 3, *size)
    assert output.attention.shape == (2, 1, *size)
    assert float(output.attention.min()) >= 0 and float(output.attention.max()) <= 1


def test_dilation_keeps_the_size_and_the_receptive_field_grows() -> None:
    torch.manual_seed(0)
    model = SSMGNet(in_bands=3, num_classes=2, width=4, dilation_rate=2, atten_kernel=3).eval()
    image = torch.rand(1, 3, 40, 40)
    changed = image.clone()
    changed[0, :, 20, 20] += 1.0
    difference = (model(changed).logits - model(image).logits).abs().sum(dim=(0, 1)) > 0
    rows = difference.any(dim=1).nonzero().reshape(-1)
    # four 3 × 3 convs with dilation 2 reach 4·2 = 8 pixels, the 3 × 3 attention one more
    assert model(image).logits.shape[-2:] == (40, 40)
    assert int(rows.min()) == 20 - 9 and int(rows.max()) == 20 + 9


def test_attention_reweights_the_stage4_features() -> None:
    model = _tiny().eval()
    image = torch.rand(1, 10, 12, 9)
    logits, attended, attention = model.forward_features(image)
    features = model.stage4(model.stage3(model.stage2(model.stage1(image))))
    pooled = torch.cat([features.amax(dim=1, keepdim=True), features.mean(dim=1, keepdim=True)], dim=1)
    expected_attention = torch.sigmoid(F.conv2d(pooled, model.sa_module4.conv.weight, padding=1))
    torch.testing.assert_close(attention, expected_attention)
    torch.testing.assert_close(attended, expected_attention * features)
    torch.testing.assert_close(logits, F.conv2d(attended, model.final.weight, model.final.bias))
    torch.testing.assert_close(model.attention_map(image), attention)
    assert not model.attention_map(image).requires_grad


def test_wrong_band_count_is_reported_with_both_counts() -> None:
    model = _tiny(in_bands=10)
    with pytest.raises(ShapeMismatchError, match=r"built for 10 bands but the input has 6 bands"):
        model(torch.rand(1, 6, 8, 8))
    with pytest.raises(ShapeMismatchError, match=r"\(B, C, H, W\) batch"):
        model(torch.rand(10, 8, 8))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"atten_kernel": 8}, "atten_kernel must be odd"),
        ({"conv_kernel": 4}, "is odd, so the convolutions cannot keep H × W"),
        ({"width": 0}, "width must be a positive integer"),
        ({"init": "uniform"}, "unknown initialisation 'uniform'"),
    ],
)
def test_invalid_configurations(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SSMGNet(in_bands=10, **options)


def test_default_initialisation_is_the_reference_internal_one() -> None:
    torch.manual_seed(3)
    model = SSMGNet(in_bands=10)
    weight = model.stage4[0].weight  # 64 → 64, 3 × 3: fan_in 576, 36 864 weights
    assert float(weight.detach().std()) == pytest.approx(math.sqrt(2 / 576), rel=0.03)
    for stage in (model.stage1, model.stage2, model.stage3, model.stage4):
        assert torch.all(stage[1].weight == 1) and torch.all(stage[1].bias == 0)
    assert torch.all(model.final.bias == 0)
    orthogonal = SSMGNet(in_bands=10, init="orthogonal", init_gain=0.5)
    flat = orthogonal.stage4[0].weight.detach().reshape(64, -1)
    torch.testing.assert_close(flat @ flat.T, 0.25 * torch.eye(64), atol=1e-5, rtol=0)


def test_rebuilt_from_its_spec_gives_the_same_outputs() -> None:
    model = _tiny().eval()
    name, arguments = model_spec(model)
    assert name == "ssmgnet" and arguments["width"] == 4 and arguments["in_bands"] == 10
    twin = create_model(name, **arguments).eval()
    twin.load_state_dict(model.state_dict())
    image = torch.rand(1, 10, 16, 16)
    torch.testing.assert_close(twin(image).logits, model(image).logits)
    torch.testing.assert_close(SegmentationLogits(model)(image), model(image).logits)


def test_glacier_tile_forward_and_attention_training(shared_data: Path) -> None:
    """On a real tile the attention map learns the spectral-similarity target (loss goes down)."""
    tile = open_cube(shared_data / "glacier" / "images" / "1.tif").to_tensor()[None]  # (1, 10, 256, 256)
    model = _tiny()
    model.eval()
    with torch.no_grad():
        full = model(tile)
    assert full.logits.shape == (1, 3, 256, 256) and torch.isfinite(full.logits).all()

    crop = tile[:, :, 64:96, 64:96]
    target = SpectralAttentionTarget()(crop).similarity
    assert 0 < float((target > 0).float().mean()) < 1
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.mse_loss(model(crop).attention, target)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert model.sa_module4.conv.weight.grad is not None
    assert losses[-1] < 0.7 * losses[0]
