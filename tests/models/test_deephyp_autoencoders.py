"""Tests of the deephyp MLP and 1-D convolutional autoencoders and their building blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.spectral import sse_loss
from hsikit.models import create_model, list_models, model_spec, tiny_model_arguments
from hsikit.models.spectral.autoencoders import (
    DeephypConvAutoencoder,
    DeephypMLPAutoencoder,
    conv1d_tf,
    conv_output_length,
    conv_transpose1d_tf,
    same_padding,
)
from hsikit.models.spectral.init import init_bias_, init_weight_


def _act(name: str, x: np.ndarray) -> np.ndarray:
    return {"relu": np.maximum(x, 0.0), "sigmoid": 1.0 / (1.0 + np.exp(-x)), "linear": x}[name]


def _reference_mlp(model: DeephypMLPAutoencoder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spec's equations (004 §4.1) in NumPy, from the model's named parameters."""
    p = {name: value.detach().double().numpy() for name, value in model.named_parameters()}
    n = model.num_layers
    pre, a = [], x
    for i in range(1, n + 1):
        h = a @ p[f"encoder_w{i}"] + p[f"encoder_b{i}"]
        pre.append(h)
        a = _act(model.activation_name, h)
    z = a
    for j in range(1, n + 1):
        weight = p[f"encoder_w{n - j + 1}"].T if model.tied[j - 1] else p[f"decoder_w{n + j}"]
        h = a @ weight + p[f"decoder_b{n + j}"]
        if model.skip_connect:
            h = h + (pre[n - j - 1] if j < n else x)
        a = _act(model.activation_name if j < n else model.final_activation_name, h)
    return z, a


# ------------------------------------------------------------------ MLP autoencoder
@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"encoder_sizes": [50, 30, 10, 3], "activation": "relu", "tied_weights": [1, 0, 0, 0]},
        {"encoder_sizes": [20, 5], "skip_connect": True, "tied_weights": [1, 1], "final_activation": "sigmoid"},
        {"encoder_sizes": [4], "activation": "linear", "weight_init": "xavier_improved"},
    ],
)
def test_mlp_forward_follows_the_spec_equations(arguments: dict) -> None:
    torch.manual_seed(0)
    model = DeephypMLPAutoencoder(in_bands=103, **arguments).double()
    x = np.random.default_rng(0).random((6, 103))
    z_expected, y_expected = _reference_mlp(model, x)
    spectra = torch.from_numpy(x)
    assert model(spectra).shape == (6, 103)
    np.testing.assert_allclose(model(spectra).detach().numpy(), y_expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.encode(spectra).detach().numpy(), z_expected, rtol=1e-10, atol=1e-12)
    assert model.encode(spectra).shape == (6, model.encoder_sizes[-1])
    if not model.skip_connect:
        torch.testing.assert_close(model.decode(model.encode(spectra)), model(spectra))


def test_mlp_parameter_names_follow_deephyp() -> None:
    model = DeephypMLPAutoencoder(in_bands=103, tied_weights=[1, 0, 0])
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "encoder_w1": (103, 50), "encoder_b1": (50,),
        "encoder_w2": (50, 30), "encoder_b2": (30,),
        "encoder_w3": (30, 10), "encoder_b3": (10,),
        "decoder_b4": (30,),  # decoder layer 1 is tied to encoder layer 3: no decoder_w4
        "decoder_w5": (30, 50), "decoder_b5": (50,),
        "decoder_w6": (50, 103), "decoder_b6": (103,),
    }  # fmt: skip


def test_tied_weights_share_storage_and_gradients_reach_the_one_parameter() -> None:
    torch.manual_seed(1)
    tied = DeephypMLPAutoencoder(in_bands=40, encoder_sizes=[16, 4], tied_weights=[1, 1])
    untied = DeephypMLPAutoencoder(in_bands=40, encoder_sizes=[16, 4])
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == 16 * 4 + 40 * 16
    # decoder layer 1 uses encoder layer 2's weight, decoder layer 2 encoder layer 1's, transposed
    assert tied.decoder_weight(1).data_ptr() == tied.encoder_w2.data_ptr()
    assert tied.decoder_weight(2).data_ptr() == tied.encoder_w1.data_ptr()
    assert tied.decoder_weight(1).shape == (4, 16)
    with torch.no_grad():
        tied.encoder_w2[0, 0] = 7.5
    assert tied.decoder_weight(1)[0, 0].item() == 7.5

    # the decoder alone (from a fixed latent vector) sends gradients into the encoder's weights
    z = torch.rand(3, 4)
    tied.decode(z).pow(2).sum().backward()
    assert tied.encoder_w2.grad is not None and tied.encoder_w2.grad.abs().sum() > 0
    assert tied.encoder_w1.grad is not None and tied.encoder_w1.grad.abs().sum() > 0
    assert tied.encoder_b1.grad is None  # encoder biases are not used by the decoder

    # a full pass: the gradient is the sum of the encoder use and the (transposed) decoder use
    tied.zero_grad()
    x = torch.rand(5, 40)
    weight = tied.encoder_w2.detach().clone().requires_grad_(True)
    h1 = torch.sigmoid(x @ tied.encoder_w1.detach() + tied.encoder_b1.detach())
    z = torch.sigmoid(h1 @ weight + tied.encoder_b2.detach())
    h3 = torch.sigmoid(z @ weight.t() + tied.decoder_b3.detach())
    y = h3 @ tied.encoder_w1.detach().t() + tied.decoder_b4.detach()
    y.sum().backward()
    tied(x).sum().backward()
    torch.testing.assert_close(tied.encoder_w2.grad, weight.grad)


def test_mlp_skip_connections_need_the_encoder() -> None:
    model = DeephypMLPAutoencoder(in_bands=10, encoder_sizes=[6, 2], skip_connect=True)
    with pytest.raises(ConfigError, match="skip_connect=True"):
        model.decode(torch.zeros(1, 2))
    # with linear activations, zero weights and biases the skip path alone reconstructs x
    linear = DeephypMLPAutoencoder(in_bands=10, encoder_sizes=[6, 2], skip_connect=True, activation="linear")
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.zero_()
    x = torch.rand(3, 10)
    torch.testing.assert_close(linear(x), x)


def test_mlp_features_by_name_and_number_and_tiles() -> None:
    model = DeephypMLPAutoencoder(in_bands=12, encoder_sizes=[8, 3])
    x = torch.rand(4, 12)
    features = model.forward_features(x)
    assert list(features) == ["encoder1", "encoder2", "decoder1", "decoder2", "latent"]
    torch.testing.assert_close(model.features(x, "latent"), model.encode(x))
    torch.testing.assert_close(model.features(x, 2), model.encode(x))
    torch.testing.assert_close(model.features(x, 4), model(x))
    assert model.features(x, "decoder1").shape == (4, 8)
    with pytest.raises(ConfigError, match="numbered 1..4"):
        model.features(x, 5)
    tiles = torch.rand(2, 12, 3, 5)
    out = model(tiles)
    assert out.shape == tiles.shape
    torch.testing.assert_close(out[1, :, 2, 4], model(tiles[1, :, 2, 4][None])[0])
    assert model.encode(tiles).shape == (2, 3, 3, 5)
    with pytest.raises(ShapeMismatchError, match="in_bands=13"):
        model(torch.rand(4, 13))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"tied_weights": [1, 0]}, "2 flag"),
        ({"tied_weights": [2, 0, 0]}, "0 or 1"),
        ({"activation": "tanh"}, "relu, sigmoid, linear"),
        ({"weight_init": "he"}, "truncated_normal"),
        ({"weight_std": 0.0}, "weight_std"),
        ({"encoder_sizes": []}, "at least one layer"),
        ({"encoder_sizes": [10, 0]}, "encoder_sizes"),
    ],
)
def test_mlp_bad_configuration_is_refused(arguments: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DeephypMLPAutoencoder(in_bands=20, **arguments)


# ------------------------------------------------------------------ weight initialisation
@pytest.mark.parametrize("std", [0.1, 0.03])
def test_truncated_normal_and_gaussian_honour_weight_std(std: float) -> None:
    torch.manual_seed(2)
    model = DeephypMLPAutoencoder(in_bands=400, encoder_sizes=[300, 10], weight_std=std)
    weight = model.encoder_w1.detach()
    assert weight.abs().max().item() <= 2 * std + 1e-7
    # N(0, s) truncated at 2s has standard deviation 0.8796 s
    assert weight.std().item() == pytest.approx(0.8796 * std, rel=0.02)
    assert model.encoder_b1.detach().abs().max().item() <= 2 * std + 1e-7  # biases share the initialiser
    gaussian = DeephypMLPAutoencoder(in_bands=400, encoder_sizes=[300, 10], weight_init="gaussian", weight_std=std)
    assert gaussian.encoder_w1.detach().std().item() == pytest.approx(std, rel=0.02)
    assert gaussian.encoder_w1.detach().abs().max().item() > 3 * std  # not truncated


def test_constant_and_xavier_initialisations() -> None:
    torch.manual_seed(3)
    constant = DeephypMLPAutoencoder(in_bands=30, encoder_sizes=[20, 5], weight_init="constant", weight_std=0.25)
    assert all(torch.all(p == 0.25) for p in constant.parameters())
    xavier = DeephypMLPAutoencoder(in_bands=300, encoder_sizes=[400, 5], weight_init="xavier")
    bound = math.sqrt(3.0 / 300)  # uniform(-sqrt(3/fan_in), +sqrt(3/fan_in)): variance 1/fan_in
    weight = xavier.encoder_w1.detach()
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.99 * bound
    assert weight.std().item() == pytest.approx(math.sqrt(1.0 / 300), rel=0.02)
    assert torch.all(xavier.encoder_b1 == 0)
    improved = DeephypMLPAutoencoder(in_bands=300, encoder_sizes=[400, 5], weight_init="xavier_improved")
    assert improved.encoder_w1.detach().std().item() == pytest.approx(math.sqrt(2.0 / 400), rel=0.02)
    assert torch.all(improved.decoder_b4 == 0)
    conv = DeephypConvAutoencoder(in_bands=64, encoder_num_filters=[40], encoder_filter_sizes=[9], encoder_strides=[1],
                                  weight_init="xavier_improved")  # fmt: skip
    # conv kernel (F_out=40, F_in=1, k=9): fan_out = 9 * 40
    assert conv.encoder_w1.detach().std().item() == pytest.approx(math.sqrt(2.0 / 360), rel=0.1)


def test_init_helpers_fill_tensors_in_place() -> None:
    tensor = torch.empty(1000)
    init_weight_(tensor, "constant", fan_in=1, fan_out=1, weight_std=0.4)
    assert torch.all(tensor == 0.4)
    init_bias_(tensor, "xavier")
    assert torch.all(tensor == 0)
    with pytest.raises(ConfigError, match="weight_init"):
        init_weight_(tensor, "orthogonal", fan_in=1, fan_out=1)


# ------------------------------------------------------------------ TF conv semantics
def test_same_padding_and_output_lengths_follow_tensorflow() -> None:
    assert same_padding(5, 3, 2) == (1, 1)  # out 3: (3 - 1) * 2 + 3 - 5 = 2
    assert same_padding(6, 3, 2) == (0, 1)  # out 3: total 1, the extra element on the right
    assert same_padding(7, 4, 1) == (1, 2)
    assert same_padding(10, 2, 3) == (0, 1)
    assert conv_output_length(103, 20, 1, "VALID") == 84
    assert conv_output_length(10, 3, 3, "VALID") == 3  # ceil(8 / 3)
    assert conv_output_length(10, 3, 3, "SAME") == 4
    with pytest.raises(ConfigError, match="VALID"):
        conv_output_length(10, 3, 1, "same")


def test_conv1d_tf_same_padding_matches_a_hand_computed_convolution() -> None:
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]])
    weight = torch.tensor([[[1.0, 10.0, 100.0]]])
    # SAME, stride 2, L = 6: pad (0, 1) -> [1 2 3 4 5 6 0]; windows start at 0, 2, 4
    expected = [1 + 20 + 300, 3 + 40 + 500, 5 + 60 + 0]
    assert conv1d_tf(x, weight, None, 2, "SAME")[0, 0].tolist() == expected
    assert conv1d_tf(x, weight, torch.tensor([0.5]), 3, "VALID")[0, 0].tolist() == [321.5, 654.5]


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("length, kernel, stride", [(103, 20, 1), (200, 7, 3), (156, 10, 2), (31, 4, 4), (9, 9, 2)])
def test_transposed_conv_is_the_adjoint_of_the_conv(padding: str, length: int, kernel: int, stride: int) -> None:
    generator = torch.Generator().manual_seed(length + kernel)
    x = torch.randn(2, 3, length, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 3, kernel, generator=generator, dtype=torch.float64)
    y = conv1d_tf(x, weight, None, stride, padding)
    assert y.shape[-1] == conv_output_length(length, kernel, stride, padding)
    g = torch.randn(y.shape, generator=generator, dtype=torch.float64)
    back = conv_transpose1d_tf(g, weight, None, stride, padding, length)
    assert back.shape == x.shape
    # <conv(x), g> == <x, conv^T(g)>: the decoder mirrors the encoder exactly
    assert torch.sum(y * g).item() == pytest.approx(torch.sum(x * back).item(), rel=1e-10)


# ------------------------------------------------------------------ conv autoencoder
def test_conv_autoencoder_worked_example_of_the_spec() -> None:
    model = DeephypConvAutoencoder(in_bands=103, latent_dim=3, activation="relu")
    assert model.lengths == [103, 84, 75, 66]
    assert model.flat_size == 660
    features = model.forward_features(torch.rand(2, 103))
    shapes = {name: tuple(value.shape) for name, value in features.items()}
    assert shapes == {
        "encoder1": (2, 10, 84), "encoder2": (2, 10, 75), "encoder3": (2, 10, 66), "latent": (2, 3),
        "decoder_dense": (2, 660), "decoder1": (2, 10, 75), "decoder2": (2, 10, 84), "decoder3": (2, 103),
    }  # fmt: skip
    assert DeephypConvAutoencoder(in_bands=103).latent_dim == 5  # deephyp default zDim


@pytest.mark.parametrize("bands", [103, 200, 156, 31, 17])
@pytest.mark.parametrize(
    "padding, strides", [("VALID", [1, 1, 1]), ("VALID", [2, 1, 3]), ("SAME", [1, 1, 1]), ("SAME", [2, 3, 2])]
)
def test_conv_autoencoder_output_length_equals_the_band_count(bands: int, padding: str, strides: list[int]) -> None:
    kernels = [5, 3, 3] if bands < 40 else [20, 10, 10]
    model = DeephypConvAutoencoder(
        in_bands=bands, encoder_filter_sizes=kernels, encoder_num_filters=[4, 6, 3], encoder_strides=strides,
        padding=padding, tied_weights=[0, 1, 1], skip_connect=True,
    )  # fmt: skip
    x = torch.rand(3, bands)
    assert model(x).shape == (3, bands)
    assert model.encode(x).shape == (3, 5)
    untied = DeephypConvAutoencoder(
        in_bands=bands, encoder_filter_sizes=kernels, encoder_num_filters=[4, 6, 3], encoder_strides=strides,
        padding=padding,
    )  # fmt: skip
    assert untied.decode(untied.encode(x)).shape == (3, bands)


def test_conv_autoencoder_flattens_length_major_like_tensorflow() -> None:
    model = DeephypConvAutoencoder(in_bands=16, latent_dim=2, encoder_num_filters=[3], encoder_filter_sizes=[3],
                                   encoder_strides=[1], activation="linear")  # fmt: skip
    x = torch.rand(2, 16)
    conv = F.conv1d(x[:, None], model.encoder_w1, model.encoder_b1)  # (N, F=3, L=14)
    flat_tf = conv.permute(0, 2, 1).reshape(2, -1)  # (N, L, C) flattened: index l * 3 + c
    expected = flat_tf @ model.encoder_w2 + model.encoder_b2
    torch.testing.assert_close(model.encode(x), expected)


def test_conv_autoencoder_tied_kernels_share_storage() -> None:
    model = DeephypConvAutoencoder(in_bands=50, encoder_num_filters=[4, 8], encoder_filter_sizes=[5, 3],
                                   encoder_strides=[1, 2], tied_weights=[1, 0])  # fmt: skip
    names = {name for name, _ in model.named_parameters()}
    assert "decoder_w5" not in names and "decoder_w6" in names  # deconv 1 tied to encoder conv 2
    assert model.deconv_weight(1).data_ptr() == model.encoder_w2.data_ptr()
    model(torch.rand(2, 50)).sum().backward()
    assert model.encoder_w2.grad is not None and model.encoder_w2.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="skip_connect=True"):
        DeephypConvAutoencoder(in_bands=50, skip_connect=True).decode(torch.zeros(1, 5))


def test_conv_autoencoder_refuses_too_few_bands() -> None:
    with pytest.raises(ConfigError, match="12 bands are too few"):
        DeephypConvAutoencoder(in_bands=12)
    with pytest.raises(ConfigError, match="same non-zero length"):
        DeephypConvAutoencoder(in_bands=100, encoder_num_filters=[10, 10], encoder_filter_sizes=[5, 5, 5])
    with pytest.raises(ConfigError, match="'VALID' or 'SAME'"):
        DeephypConvAutoencoder(in_bands=100, padding="valid")


# ------------------------------------------------------------------ configs and registry
def test_deephyp_config_round_trip() -> None:
    config = {
        "inputSize": 103, "encodersize": [50, 30, 10, 3], "activationFunc": "relu", "tiedWeights": [1, 0, 0, 0],
        "weightInitOpt": "truncated_normal", "weightStd": 0.1, "skipConnect": False, "activationFuncFinal": "linear",
    }  # fmt: skip
    mlp = DeephypMLPAutoencoder.from_deephyp_config(config)
    assert mlp.encoder_sizes == [50, 30, 10, 3] and mlp.tied == [True, False, False, False]
    assert mlp.deephyp_config() == config
    conv = DeephypConvAutoencoder(in_bands=103, latent_dim=3, padding="SAME", encoder_strides=[1, 2, 1])
    rebuilt = DeephypConvAutoencoder.from_deephyp_config(conv.deephyp_config())
    assert rebuilt.deephyp_config() == conv.deephyp_config()
    assert rebuilt.lengths == conv.lengths
    with pytest.raises(ConfigError, match="encoderSize"):
        DeephypMLPAutoencoder.from_deephyp_config({"inputSize": 10, "encoderSize": [5]})
    with pytest.raises(ConfigError, match="inputSize"):
        DeephypConvAutoencoder.from_deephyp_config({"zDim": 3})


def test_autoencoders_are_registered_with_tiny_configurations() -> None:
    assert {"deephyp_mlp_ae", "deephyp_conv_ae"} <= set(list_models(task="autoencoder"))
    for name in ("deephyp_mlp_ae", "deephyp_conv_ae"):
        model = create_model(name, in_bands=24, **tiny_model_arguments(name))
        assert model(torch.rand(2, 24)).shape == (2, 24)
        assert sum(p.numel() for p in model.parameters()) < 1000
        registered, arguments = model_spec(model)
        assert registered == name and arguments["in_bands"] == 24


def test_mlp_autoencoder_learns_real_indian_pines_spectra(shared_data, single_torch_thread) -> None:
    cube = np.load(shared_data / "indian_pines" / "Indian_pines_corrected.npy", mmap_mode="r")
    spectra = np.asarray(cube[::12, ::12], dtype=np.float32).reshape(-1, cube.shape[-1])  # 169 pixels
    # deephyp's per-spectrum 'minmax' pre-processing
    low = spectra.min(axis=1, keepdims=True) - 1e-3
    spectra = (spectra - low) / spectra.max(axis=1, keepdims=True)
    x = torch.from_numpy(spectra)
    mean_baseline = sse_loss(x.mean(dim=0, keepdim=True).expand_as(x), x).item()
    # a linear autoencoder with a 4-d bottleneck cannot beat the rank-4 PCA reconstruction
    singular = np.linalg.svd(spectra - spectra.mean(axis=0), compute_uv=False).astype(np.float64)
    pca_optimum = float((singular[4:] ** 2).sum() / len(spectra))
    torch.manual_seed(0)
    model = DeephypMLPAutoencoder(in_bands=200, encoder_sizes=[32, 4], activation="linear")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(120):
        optimiser.zero_grad()
        loss = sse_loss(model(x), x)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = sse_loss(model(x), x).item()
    assert final < 0.25 * mean_baseline  # learnt far more than the mean spectrum (~0.13 in practice)
    assert final > 0.99 * pca_optimum


@pytest.mark.parametrize("name", ["deephyp_mlp_ae", "deephyp_conv_ae"])
def test_tied_models_round_trip_through_safetensors(name: str, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    arguments = {"in_bands": 30, **tiny_model_arguments(name), "tied_weights": [1, 1], "skip_connect": True}
    torch.manual_seed(5)
    model = create_model(name, **arguments)
    save_file(model.state_dict(), tmp_path / "weights.safetensors")  # refuses tensors that share memory
    torch.manual_seed(6)
    restored = create_model(name, **arguments)
    restored.load_state_dict(load_file(tmp_path / "weights.safetensors"), strict=True)
    x = torch.rand(4, 30)
    torch.testing.assert_close(restored(x), model(x))
