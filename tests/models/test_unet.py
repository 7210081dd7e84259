"""The U-Net segmentation baseline: shapes, padding/cropping, configuration, registry, real tile."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.io import open_cube, open_labels
from hsikit.models import create_model, list_models, model_spec, tiny_model_arguments
from hsikit.models.segmentation import SegmentationOutput, UNet


def _tiny(**overrides: object) -> UNet:
    torch.manual_seed(0)
    arguments = {"in_bands": 10, "num_classes": 3, **tiny_model_arguments("unet"), **overrides}
    model = create_model("unet", **arguments)
    assert isinstance(model, UNet)
    return model.eval()


def test_registered_for_segmentation() -> None:
    assert "unet" in list_models(task="segmentation")
    assert tiny_model_arguments("unet") == {"base_width": 4, "depth": 2}


def test_parameter_count_of_the_tiny_configuration() -> None:
    # in 10 → 4 → 8 → 16 (depth 2), 3 × 3 convs without bias (batch norm), BN γ/β per channel:
    #   inc   10·4·9 + 4·4·9 + 2·(4 + 4)            =   520
    #   down1 4·8·9 + 8·8·9 + 2·(8 + 8)             =   896
    #   down2 8·16·9 + 16·16·9 + 2·(16 + 16)        = 3 520
    #   up1   ConvT 16·8·4 + 8, then 16·8·9 + 8·8·9 + 2·(8 + 8)   = 520 + 1 760 = 2 280
    #   up2   ConvT 8·4·4 + 4,  then 8·4·9 + 4·4·9 + 2·(4 + 4)    = 132 + 448   =   580
    #   head  4·3 + 3                                =    15
    assert sum(p.numel() for p in _tiny().parameters()) == 520 + 896 + 3520 + 2280 + 580 + 15


@pytest.mark.parametrize("size", [(255, 257), (5, 3), (1, 1), (32, 32)])
def test_output_shape_for_any_input_size(size: tuple[int, int]) -> None:
    with torch.no_grad():
        output = _tiny()(torch.rand(1, 10, *size))
    assert isinstance(output, SegmentationOutput)
    assert output.logits.shape == (1, 3, *size)
    assert output.attention is None


def test_non_multiple_input_is_reflect_padded_centrally_and_cropped_back() -> None:
    model = _tiny()
    image = torch.rand(1, 10, 13, 10)  # padded to 16 × 12: 1 row on top, 2 below; 1 column each side
    padded = F.pad(image, (1, 1, 1, 2), mode="reflect")
    with torch.no_grad():
        expected = model(padded).logits[..., 1:14, 1:11]
        torch.testing.assert_close(model(image).logits, expected)


@pytest.mark.parametrize("overrides", [{"upsampling": "bilinear"}, {"norm": "none"}, {"norm": "instance"}, {"depth": 0}])
def test_variants_build_and_run(overrides: dict) -> None:
    model = _tiny(**overrides)
    with torch.no_grad():
        assert model(torch.rand(2, 10, 20, 12)).logits.shape == (2, 3, 20, 12)
    if overrides.get("norm") == "none":
        assert model.inc[0].bias is not None


def test_depth_and_width_set_the_bottleneck() -> None:
    model = _tiny(base_width=6, depth=3)
    assert model.size_multiple == 8
    assert model.down[-1][0].out_channels == 6 * 2**3
    assert len(model.up) == 3


def test_errors() -> None:
    with pytest.raises(ShapeMismatchError, match=r"UNet was built for 10 bands but the input has 4 bands"):
        _tiny()(torch.rand(1, 4, 8, 8))
    with pytest.raises(ConfigError, match="base_width must be even"):
        UNet(in_bands=10, num_classes=3, base_width=5)
    with pytest.raises(ConfigError, match="upsampling must be"):
        UNet(in_bands=10, num_classes=3, upsampling="nearest")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="in_bands"):
        create_model("unet", in_bands=0, num_classes=3)


def test_spec_round_trip_and_training_step_on_a_glacier_tile(shared_data: Path) -> None:
    model = _tiny()
    name, arguments = model_spec(model)
    twin = create_model(name, **arguments)
    twin.load_state_dict(model.state_dict())
    tile = open_cube(shared_data / "glacier" / "images" / "2.tif").to_tensor()[None, :, :40, :40]
    labels = torch.from_numpy(open_labels(shared_data / "glacier" / "labels" / "2.tif")).long()[None, :40, :40]
    assert set(labels.unique().tolist()) <= {0, 1, 2}
    with torch.no_grad():
        torch.testing.assert_close(twin.eval()(tile).logits, model(tile).logits)
    model.train()
    loss = F.cross_entropy(model(tile).logits, labels)
    loss.backward()
    assert torch.isfinite(loss) and model.inc[0].weight.grad.abs().sum() > 0
