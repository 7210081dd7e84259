"""hsikit.models.layers.init.initialize_weights: the statistics of every scheme."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from hsikit.errors import ConfigError
from hsikit.models.layers import INIT_KINDS, initialize_weights

# Conv2d(64 → 128, 3 × 3): fan_in = 64·9 = 576, fan_out = 128·9 = 1152, 73 728 weights, so a
# sample std is within ~0.3 % (1/sqrt(2n)) of the true one; 3 % tolerances are > 10 sigma.
IN_CHANNELS, OUT_CHANNELS, KERNEL = 64, 128, 3
FAN_IN, FAN_OUT = IN_CHANNELS * KERNEL**2, OUT_CHANNELS * KERNEL**2


@pytest.fixture
def conv() -> nn.Conv2d:
    torch.manual_seed(0)
    layer = nn.Conv2d(IN_CHANNELS, OUT_CHANNELS, KERNEL, bias=True)
    with torch.no_grad():
        layer.bias.fill_(5.0)  # must be reset by the initialisation
    return layer


def _std(tensor: torch.Tensor) -> float:
    return float(tensor.detach().double().std())


def test_kaiming_matches_he_fan_in(conv: nn.Conv2d) -> None:
    initialize_weights(conv, "kaiming")
    assert _std(conv.weight) == pytest.approx(math.sqrt(2.0 / FAN_IN), rel=0.03)
    assert abs(float(conv.weight.detach().mean())) < 3 * math.sqrt(2.0 / FAN_IN) / math.sqrt(conv.weight.numel())
    assert torch.all(conv.bias == 0)


def test_kaiming_fan_out_and_negative_slope(conv: nn.Conv2d) -> None:
    initialize_weights(conv, "kaiming", mode="fan_out")
    assert _std(conv.weight) == pytest.approx(math.sqrt(2.0 / FAN_OUT), rel=0.03)
    # leaky ReLU with slope a: gain² = 2 / (1 + a²); a = 1 is the linear case, std = sqrt(1 / fan_in)
    initialize_weights(conv, "kaiming", negative_slope=1.0)
    assert _std(conv.weight) == pytest.approx(math.sqrt(1.0 / FAN_IN), rel=0.03)


def test_normal_uses_gain_as_std_unless_std_given(conv: nn.Conv2d) -> None:
    initialize_weights(conv, "normal")
    assert _std(conv.weight) == pytest.approx(0.02, rel=0.03)
    initialize_weights(conv, "normal", std=0.1, bias=0.25)
    assert _std(conv.weight) == pytest.approx(0.1, rel=0.03)
    assert torch.all(conv.bias == 0.25)


def test_xavier_normal_std(conv: nn.Conv2d) -> None:
    initialize_weights(conv, "xavier", gain=0.02)
    assert _std(conv.weight) == pytest.approx(0.02 * math.sqrt(2.0 / (FAN_IN + FAN_OUT)), rel=0.03)
    initialize_weights(conv, "xavier", gain=1.0)
    assert _std(conv.weight) == pytest.approx(math.sqrt(2.0 / (FAN_IN + FAN_OUT)), rel=0.03)


def test_orthogonal_rows_are_orthonormal_times_gain(conv: nn.Conv2d) -> None:
    initialize_weights(conv, "orthogonal", gain=0.5)
    flat = conv.weight.detach().double().reshape(OUT_CHANNELS, -1)  # (128, 576): rows orthogonal
    torch.testing.assert_close(flat @ flat.T, 0.25 * torch.eye(OUT_CHANNELS, dtype=torch.float64), atol=1e-5, rtol=0)
    tall = nn.Linear(8, 32)  # weight (32, 8): more rows than columns, so the columns are orthogonal
    initialize_weights(tall, "orthogonal", gain=2.0)
    weight = tall.weight.detach().double()
    torch.testing.assert_close(weight.T @ weight, 4.0 * torch.eye(8, dtype=torch.float64), atol=1e-5, rtol=0)


def test_norm_layers_weight_around_one_and_bias_zero() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.BatchNorm1d(20000), nn.GroupNorm(2, 20000), nn.LayerNorm(20000), nn.InstanceNorm2d(4))
    with torch.no_grad():
        for layer in model[:3]:
            layer.bias.fill_(3.0)
    initialize_weights(model, "kaiming")  # default norm_weight_std = 0.02, as SSMGNet's weights_init
    for layer in model[:3]:
        assert float(layer.weight.detach().mean()) == pytest.approx(1.0, abs=0.001)
        assert _std(layer.weight) == pytest.approx(0.02, rel=0.03)
        assert torch.all(layer.bias == 0)
    initialize_weights(model, "kaiming", norm_weight_std=0.0)
    for layer in model[:3]:
        assert torch.all(layer.weight == 1)


def test_applies_to_every_layer_of_a_model_and_returns_it() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv1d(4, 256, 5), nn.ConvTranspose2d(8, 16, 2), nn.Conv3d(2, 512, 3), nn.Linear(300, 400),
        nn.LayerNorm(5, elementwise_affine=False),
    )
    assert initialize_weights(model, "normal", std=0.05) is model
    for layer in list(model)[:4]:
        assert _std(layer.weight) == pytest.approx(0.05, rel=0.05)
        assert torch.all(layer.bias == 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "he"}, "unknown initialisation 'he'"),
        ({"kind": "normal", "std": -1.0}, "std must be a finite number >= 0"),
        ({"kind": "kaiming", "mode": "fan_avg"}, "mode must be 'fan_in' or 'fan_out'"),
        ({"kind": "xavier", "gain": float("nan")}, "gain must be a finite number"),
    ],
)
def test_bad_options_raise_config_error(conv: nn.Conv2d, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        initialize_weights(conv, **options)
    if options["kind"] == "he":
        assert all(kind in str(caught.value) for kind in INIT_KINDS)
