"""Parameter and FLOP counts (FlopCounterMode, FLOPs = 2 x MACs) against hand counts."""

from __future__ import annotations

import pytest
import torch.nn as nn

from hsikit.errors import ConfigError
from hsikit.models import create_model
from hsikit.models.complexity import count_flops, count_macs, count_parameters, flop_breakdown, model_card
from hsikit.models.reconstruction import MSTPlusPlus


def test_single_convolution_flops_equal_the_hand_count() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # every one of the 8 x 10 x 12 outputs needs 3 x 3 x 3 = 27 multiply-accumulates
    assert count_macs(conv, (1, 3, 10, 12)) == 8 * 10 * 12 * 27 == 25_920
    assert count_flops(conv, (1, 3, 10, 12)) == 2 * 25_920
    strided = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    assert count_flops(strided, (2, 3, 10, 12)) == 2 * 2 * (8 * 5 * 6) * 27  # batch 2, 5 x 6 outputs; bias not counted


def test_grouped_transposed_and_linear_layers() -> None:
    depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    assert count_macs(depthwise, (1, 4, 6, 6)) == 4 * 36 * 9
    transposed = nn.ConvTranspose2d(6, 3, kernel_size=2, stride=2)
    assert count_macs(transposed, (1, 6, 5, 5)) == 25 * 6 * 3 * 4  # each input pixel spreads to a 2 x 2 patch
    linear = nn.Linear(5, 7)
    assert count_flops(linear, (4, 5)) == 2 * 4 * 5 * 7


def test_parameter_counts() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 2, 1, bias=False))
    assert count_parameters(model) == (3 * 8 * 9 + 8) + 8 * 2
    model[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 16


def mst_plus_plus_macs(height: int, width: int, stages: int = 3) -> int:
    """Hand count of MST++ multiply-accumulates from the spec's layer list (matrix products and convolutions)."""
    d = 31
    n0, n1, n2 = height * width, height * width // 4, height * width // 16
    c0, c1, c2 = 31, 62, 124

    def attention_block(c: int, n: int) -> int:
        qkv_proj = 4 * c * c * n
        attention = 2 * c * d * n  # K Q^T and A V: heads * d * d * n each
        positional = 2 * 9 * c * n  # two depthwise 3x3
        feed_forward = 8 * c * c * n + 36 * c * n
        return qkv_proj + attention + positional + feed_forward

    stage = (
        2 * 9 * c0 * c0 * n0  # embedding + mapping
        + 2 * attention_block(c0, n0) + 2 * attention_block(c1, n1) + attention_block(c2, n2)
        + 16 * c0 * c1 * n1 + 16 * c1 * c2 * n2  # 4x4 stride-2 downsampling
        + 4 * c2 * c1 * n2 + 4 * c1 * c0 * n1  # 2x2 stride-2 transposed convolutions
        + 2 * c1 * c1 * n1 + 2 * c0 * c0 * n0  # 1x1 fusions
    )
    return 9 * 3 * c0 * n0 + 9 * c0 * c0 * n0 + stages * stage


def test_mst_plus_plus_operation_count_matches_the_hand_count() -> None:
    model = MSTPlusPlus()
    assert count_macs(model, (1, 3, 256, 256)) == mst_plus_plus_macs(256, 256) == 22_191_341_568
    assert count_macs(model, (1, 3, 482, 512)) == mst_plus_plus_macs(488, 512)  # padded to 488 rows


def test_meta_and_real_passes_count_the_same_and_leave_the_model_untouched() -> None:
    model = create_model("mst_plus_plus", stage=1, num_blocks=[1, 1])
    model.train()
    on_meta = flop_breakdown(model, (1, 3, 24, 32))
    on_cpu = flop_breakdown(model, (1, 3, 24, 32), device="cpu")
    assert on_meta == on_cpu
    assert on_meta["total"] == on_meta["convolution"] + on_meta["mm"] + on_meta["bmm"]
    assert model.training and next(model.parameters()).device.type == "cpu"


def test_model_card_reports_both_conventions() -> None:
    card = model_card(MSTPlusPlus())
    assert card["model"] == "mst_plus_plus"
    assert card["parameters"] == 1_619_625 and card["parameters_millions"] == pytest.approx(1.62, abs=0.005)
    assert set(card["sizes"]) == {"256x256", "482x512"}
    small = card["sizes"]["256x256"]
    assert small["input_shape"] == [1, 3, 256, 256]
    assert small["flops"] == 2 * small["macs"] == 2 * 22_191_341_568
    assert small["gmacs"] == pytest.approx(22.19, abs=0.005)
    assert small["gflops"] == pytest.approx(44.38, abs=0.005)
    assert small["gmacs_binary"] == pytest.approx(small["macs"] / 2**30)
    assert "2 x multiply-accumulates" in card["flop_convention"]


def test_model_card_needs_input_channels_when_they_cannot_be_inferred() -> None:
    with pytest.raises(ConfigError, match="in_channels="):
        model_card(nn.Sequential(nn.ReLU()))
    card = model_card(nn.Sequential(nn.ReLU()), sizes=[(4, 4)], in_channels=2)
    assert card["sizes"]["4x4"]["flops"] == 0 and card["parameters"] == 0
