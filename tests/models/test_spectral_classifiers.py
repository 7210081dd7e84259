"""Tests of deephyp's 1-D CNN classifier, its class balancing, and the HybridSN spectral–spatial CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, InvalidLabelsError, ShapeMismatchError
from hsikit.models import create_model, list_models, model_spec, tiny_model_arguments
from hsikit.models.spectral.classifiers import DeephypCNNClassifier, HybridSN, class_balance_weights


# ------------------------------------------------------------------ 1-D CNN
def test_cnn1d_layers_follow_deephyp_numbering_and_layout() -> None:
    model = DeephypCNNClassifier(in_bands=103, num_classes=9)
    assert model.num_layers == 6 and model.layer_names == ["conv1", "conv2", "conv3", "fc1", "fc2", "logits"]
    x = torch.rand(4, 103)
    shapes = {name: tuple(v.shape) for name, v in model.forward_features(x).items()}
    # conv layers in TF's (N, L, F) layout, the last one flattened
    assert shapes == {"conv1": (4, 84, 10), "conv2": (4, 75, 10), "conv3": (4, 660), "fc1": (4, 20), "fc2": (4, 20),
                      "logits": (4, 9)}  # fmt: skip
    assert model(x).shape == (4, 9)
    # deephyp's example extracts numLayers - 1: the last hidden dense layer
    torch.testing.assert_close(model.features(x, model.num_layers - 1), model.features(x, "fc2"))
    with pytest.raises(ConfigError, match="numbered 1..6"):
        model.features(x, 7)
    with pytest.raises(ConfigError, match="no layer named"):
        model.features(x, "fc3")


def test_cnn1d_forward_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    model = DeephypCNNClassifier(in_bands=30, num_classes=3, conv_filter_sizes=[5], conv_num_filters=[2],
                                 conv_strides=[2], fc_sizes=[4], padding="SAME").double()  # fmt: skip
    x = torch.rand(5, 30, dtype=torch.float64)
    # SAME, L = 30, k = 5, s = 2: out 15, total padding (15 - 1) * 2 + 5 - 30 = 3 -> (1, 2)
    conv = torch.relu(F.conv1d(F.pad(x[:, None], (1, 2)), model.conv_w1, model.conv_b1, stride=2))
    assert conv.shape == (5, 2, 15)
    flat = conv.permute(0, 2, 1).reshape(5, 30)  # length-major
    hidden = torch.relu(flat @ model.fc_w1 + model.fc_b1)
    torch.testing.assert_close(model(x), hidden @ model.logits_w + model.logits_b)


@pytest.mark.parametrize("fc_sizes", [[], [7], [16, 8, 4]])
def test_cnn1d_supports_any_number_of_dense_layers(fc_sizes: list[int]) -> None:
    model = DeephypCNNClassifier(in_bands=50, num_classes=5, conv_filter_sizes=[7, 5], conv_num_filters=[3, 4],
                                 conv_strides=[1, 2], fc_sizes=fc_sizes)  # fmt: skip
    assert model(torch.rand(3, 50)).shape == (3, 5)
    assert model.num_layers == 2 + len(fc_sizes) + 1


def test_cnn1d_classifies_tiles_pixel_by_pixel_and_checks_shapes() -> None:
    model = DeephypCNNClassifier(in_bands=40, num_classes=4, **tiny_model_arguments("cnn1d_classifier"))
    tiles = torch.rand(2, 40, 3, 5)
    logits = model(tiles)
    assert logits.shape == (2, 4, 3, 5)
    torch.testing.assert_close(logits[1, :, 2, 3], model(tiles[1, :, 2, 3][None])[0])
    with pytest.raises(ShapeMismatchError, match=r"\(N, 40\)"):
        model(torch.rand(2, 41))
    with pytest.raises(ConfigError, match="too few"):
        DeephypCNNClassifier(in_bands=15, num_classes=3)


def test_cnn1d_deephyp_config_round_trip() -> None:
    config = {"inputSize": 103, "numClasses": 9, "activationFunc": "relu", "weightInitOpt": "xavier",
              "weightStd": 0.1, "convFilterSize": [20, 10, 10], "convNumFilters": [10, 10, 10],
              "convStride": [1, 1, 1], "padding": "VALID", "fcSize": [20, 20]}  # fmt: skip
    model = DeephypCNNClassifier.from_deephyp_config(config)
    assert model.deephyp_config() == config
    assert torch.all(model.conv_b1 == 0)  # xavier: zero biases
    with pytest.raises(ConfigError, match="numClasses"):
        DeephypCNNClassifier.from_deephyp_config({"inputSize": 103})


# ------------------------------------------------------------------ class balancing
def test_class_balance_weights_from_label_frequencies() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2, -100, -1])
    # counts + 1 = (4, 2, 3, 1); w_k = max / count_k
    expected = [1.0, 2.0, 4.0 / 3.0, 4.0]
    assert class_balance_weights(labels, 4).tolist() == pytest.approx(expected)
    onehot = np.zeros((7, 4))
    onehot[np.arange(6), [0, 0, 0, 1, 2, 2]] = 1  # last row all zero: background
    assert class_balance_weights(onehot, 4).tolist() == pytest.approx(expected)
    assert class_balance_weights(torch.tensor([1, 1]), 2).tolist() == pytest.approx([3.0, 1.0])
    with pytest.raises(InvalidLabelsError, match="label 5 is out of range"):
        class_balance_weights([0, 5], 4)
    with pytest.raises(InvalidLabelsError, match="3 columns"):
        class_balance_weights(np.zeros((2, 3)), 4)


def test_class_balance_weights_on_indian_pines_labels(shared_data) -> None:
    ground_truth = np.load(shared_data / "indian_pines" / "Indian_pines_gt.npy")
    labels = ground_truth.reshape(-1).astype(np.int64) - 1  # 0 (unlabelled) -> -1
    weights = class_balance_weights(labels, 16)
    counts = np.bincount(labels[labels >= 0], minlength=16)
    assert counts.sum() == 10249
    assert weights[int(np.argmax(counts))].item() == 1.0
    # the rarest class (Oats, 20 pixels) weighs (max + 1) / 21
    assert weights.max().item() == pytest.approx((counts.max() + 1) / (counts.min() + 1), rel=1e-6)


# ------------------------------------------------------------------ HybridSN
def test_hybridsn_paper_configuration() -> None:
    model = HybridSN(in_bands=30, num_classes=16)
    # Roy et al. (2020), Table I: Indian Pines, 25 x 25 x 30 input, 5,122,176 trainable parameters
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 5_122_176
    shapes = {name: tuple(v.shape) for name, v in model.forward_features(torch.rand(2, 30, 25, 25)).items()}
    assert shapes == {"conv3d1": (2, 8, 24, 23, 23), "conv3d2": (2, 16, 20, 21, 21), "conv3d3": (2, 32, 18, 19, 19),
                      "conv2d": (2, 64, 17, 17), "fc1": (2, 256), "fc2": (2, 128), "logits": (2, 16)}  # fmt: skip


@pytest.mark.parametrize("components, patch", [(15, 25), (30, 11), (13, 9)])
def test_hybridsn_shapes_for_several_inputs(components: int, patch: int) -> None:
    model = HybridSN(in_bands=components, num_classes=7, patch_size=patch, conv3d_filters=[2, 2, 4],
                     conv2d_filters=4, fc_sizes=[8])  # fmt: skip
    assert model(torch.rand(3, components, patch, patch)).shape == (3, 7)


def test_hybridsn_dropout_only_in_training_and_shape_errors() -> None:
    torch.manual_seed(0)
    model = HybridSN(in_bands=16, num_classes=4, patch_size=9, conv3d_filters=[2, 2, 2],
                     conv3d_spectral_kernels=[3, 3, 3], conv2d_filters=4, fc_sizes=[32], dropout=0.5)  # fmt: skip
    x = torch.rand(6, 16, 9, 9)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    with pytest.raises(ShapeMismatchError, match=r"\(N, 16, 9, 9\)"):
        model(torch.rand(2, 16, 11, 11))
    with pytest.raises(ConfigError, match="patch_size >= 9"):
        HybridSN(in_bands=30, num_classes=4, patch_size=7)
    with pytest.raises(ConfigError, match="at least 13"):
        HybridSN(in_bands=10, num_classes=4)


def test_hybridsn_learns_to_separate_two_patch_classes(single_torch_thread) -> None:
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(24, 12, 9, 9, generator=generator) * 0.3
    labels = torch.arange(24) % 2
    pattern = torch.linspace(-1, 1, 12)[None, :, None, None]
    patches = noise + torch.where(labels[:, None, None, None] == 1, pattern, -pattern)
    torch.manual_seed(0)
    model = create_model("hybridsn", in_bands=12, num_classes=2, **tiny_model_arguments("hybridsn"))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(20):
        optimiser.zero_grad()
        loss = F.cross_entropy(model(patches), labels)
        loss.backward()
        optimiser.step()
    model.eval()
    assert (model(patches).argmax(dim=1) == labels).float().mean().item() == 1.0


def test_classifiers_are_registered() -> None:
    assert {"cnn1d_classifier", "hybridsn"} <= set(list_models(task="classification"))
    model = create_model("cnn1d_classifier", in_bands=60, num_classes=3, **tiny_model_arguments("cnn1d_classifier"))
    name, arguments = model_spec(model)
    assert name == "cnn1d_classifier" and arguments["fc_sizes"] == [8]
    tiny = create_model("hybridsn", in_bands=8, num_classes=3, **tiny_model_arguments("hybridsn"))
    assert sum(p.numel() for p in tiny.parameters()) < 5000
