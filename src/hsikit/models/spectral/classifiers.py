"""Spectral and spectral–spatial classifiers: deephyp's 1-D CNN and a HybridSN-style 3-D/2-D CNN.

* :class:`DeephypCNNClassifier` (registry ``"cnn1d_classifier"``, deephyp ``classifier.cnn_1D_network``;
  Windrim et al., BMVC 2017): 1-D convolutions over one pixel's spectrum, fully connected
  layers, linear logits. :func:`class_balance_weights` gives deephyp's class-balancing
  weights for the loss (:func:`hsikit.losses.spectral.balanced_cross_entropy`).
* :class:`HybridSN` (registry ``"hybridsn"``; Roy et al., "HybridSN: Exploring 3-D–2-D CNN
  Feature Hierarchy for Hyperspectral Image Classification", IEEE GRSL 17(2), 2020): a patch
  of PCA-reduced bands around the pixel to classify → three 3-D convolutions (spectral and
  spatial) → one 2-D convolution over the spectral features stacked as channels → dense
  layers with dropout → logits. The PCA comes from :class:`hsikit.spectral.pca.SpectralPCA`,
  fitted on training pixels only.
* :class:`SpectralSpatialCNN` (registry ``"spectral_spatial_cnn"``): a lighter spectral–spatial
  CNN for spatially disjoint evaluation: a per-pixel spectral stem (1 × 1 convolutions shared
  by every pixel of the patch), a spectral branch on the centre pixel and a small spatial
  branch (3 × 3 convolutions, centre-weighted pooling) over the patch, concatenated into the
  logits. It reads patches of many components (or every band) and relies less on the patch's
  texture than HybridSN, which memorises the neighbourhood of its training blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from hsikit.errors import ConfigError, InvalidLabelsError, ShapeMismatchError
from hsikit.models.layers import initialize_weights
from hsikit.models.registry import register_model
from hsikit.models.spectral.autoencoders import (
    _int_list,
    _select_feature,
    conv1d_tf,
    conv_output_length,
)
from hsikit.models.spectral.init import (
    Activation,
    Padding,
    WeightInit,
    activation_function,
    check_weight_init,
    init_bias_,
    init_weight_,
)

# --------------------------------------------------------------------------- class balancing


def class_balance_weights(
    labels: Any, num_classes: int, *, ignore_index: int | None = -100
) -> torch.Tensor:
    """deephyp's class-balancing weights from training label frequencies.

    ``count_k = n_k + 1`` (the +1 keeps absent classes finite) and
    ``w_k = max_j count_j / count_k``: the most frequent class weighs 1, a class ten times
    rarer about 10. deephyp computes them per batch from one-hot targets; computed once on
    the training labels they give the loss weights of the whole training set.

    Args:
        labels: 0-based class indices ``(N,)`` (any integer array or tensor; values < 0 or equal
            to ``ignore_index`` are unlabelled and not counted), or one-hot targets ``(N, K)``
            whose all-zero rows are background (deephyp's ``labelsOnehot``).
        num_classes: K.
        ignore_index: label of unlabelled samples (in addition to negative values).

    Returns:
        float32 tensor ``(K,)`` of weights >= 1.

    Raises:
        InvalidLabelsError: a label >= K, non-integer labels, or a one-hot array with K' != K columns.
    """
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
        raise ConfigError(f"class_balance_weights: num_classes must be a positive integer, got {num_classes!r}")
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim == 2:
        if array.shape[1] != num_classes:
            raise InvalidLabelsError(
                f"class_balance_weights: one-hot targets have {array.shape[1]} columns but num_classes={num_classes}; "
                "pass the matching num_classes or 0-based class indices (N,)"
            )
        counts = array.astype(np.float64).sum(axis=0)
    elif array.ndim == 1:
        if array.size and array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
            raise InvalidLabelsError("class_balance_weights: labels must be whole class indices, got fractional values")
        values = array.astype(np.int64)
        valid = values >= 0
        if ignore_index is not None:
            valid &= values != ignore_index
        values = values[valid]
        if values.size and values.max() >= num_classes:
            raise InvalidLabelsError(
                f"class_balance_weights: label {int(values.max())} is out of range for num_classes={num_classes}; "
                "labels must be 0-based class indices (map raster ids with an explicit label → index table first)"
            )
        counts = np.bincount(values, minlength=num_classes).astype(np.float64)
    else:
        raise InvalidLabelsError(
            "class_balance_weights: labels must be class indices (N,) or one-hot targets (N, K), got shape "
            f"{array.shape}"
        )
    counts = counts + 1.0
    return torch.as_tensor(counts.max() / counts, dtype=torch.float32)


# --------------------------------------------------------------------------- deephyp 1-D CNN


@register_model(
    "cnn1d_classifier",
    task="classification",
    tiny={"conv_filter_sizes": [5, 3], "conv_num_filters": [4, 4], "conv_strides": [1, 1], "fc_sizes": [8]},
)
class DeephypCNNClassifier(nn.Module):
    """deephyp's 1-D CNN classifier (``classifier.cnn_1D_network``), in PyTorch.

    n × [conv1d over the band axis → act], flatten (length-major, TF's ``(L, C)`` order),
    ``fc_sizes`` dense layers with ``act``, then a linear layer to the class logits.

    Args:
        in_bands: number of bands B (``inputSize``).
        num_classes: number of classes K (``numClasses``).
        conv_filter_sizes: kernel sizes (``convFilterSize``).
        conv_num_filters: filters per conv layer (``convNumFilters``).
        conv_strides: strides (``convStride``).
        fc_sizes: widths of the hidden dense layers (``fcSize``); any length, 0 = the
            logits come straight from the flattened conv features (the original needed >= 2).
        activation: ``relu``, ``sigmoid`` or ``linear`` (``activationFunc``).
        weight_init, weight_std: deephyp initialisation (``weightInitOpt``, ``weightStd``).
        padding: ``"VALID"`` or ``"SAME"`` (TF semantics).

    Shapes:
        ``(N, B)`` spectra → ``(N, K)`` logits; ``(N, B, H, W)`` tiles → ``(N, K, H, W)`` (pixel by pixel).
        deephyp predicts ``argmax + 1`` (1-based labels); here logits index 0-based classes.
    """

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        conv_filter_sizes: Sequence[int] = (20, 10, 10),
        conv_num_filters: Sequence[int] = (10, 10, 10),
        conv_strides: Sequence[int] = (1, 1, 1),
        fc_sizes: Sequence[int] = (20, 20),
        activation: Activation = "relu",
        weight_init: WeightInit = "truncated_normal",
        weight_std: float = 0.1,
        padding: Padding = "VALID",
    ) -> None:
        super().__init__()
        owner = "DeephypCNNClassifier"
        for name, value, minimum in (("in_bands", in_bands, 1), ("num_classes", num_classes, 2)):
            if isinstance(value, bool) or int(value) != value or value < minimum:
                raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
        kernels = _int_list(conv_filter_sizes, "conv_filter_sizes", owner)
        filters = _int_list(conv_num_filters, "conv_num_filters", owner)
        strides = _int_list(conv_strides, "conv_strides", owner)
        hidden = _int_list(fc_sizes, "fc_sizes", owner)
        if not (len(kernels) == len(filters) == len(strides)):
            raise ConfigError(
                f"{owner}: conv_filter_sizes, conv_num_filters and conv_strides need one entry per conv layer, got "
                f"{kernels}, {filters}, {strides}"
            )
        if padding not in ("VALID", "SAME"):
            raise ConfigError(f"{owner}: padding must be 'VALID' or 'SAME', got {padding!r}")
        activation_function(activation, owner)
        check_weight_init(weight_init, weight_std, owner)
        self.in_bands = int(in_bands)
        self.num_classes = int(num_classes)
        self.kernels, self.filters, self.strides, self.fc_sizes = kernels, filters, strides, hidden
        self.padding = padding
        self.activation_name = activation
        self.weight_init = weight_init
        self.weight_std = float(weight_std)
        self._act = activation_function(activation)

        self.lengths = [self.in_bands]
        for kernel, stride in zip(kernels, strides):
            length = conv_output_length(self.lengths[-1], kernel, stride, padding)
            if length < 1:
                raise ConfigError(
                    f"{owner}: {self.in_bands} bands are too few for kernels {kernels} with strides {strides} and "
                    f"{padding} padding; use smaller conv_filter_sizes or padding='SAME'"
                )
            self.lengths.append(length)
        channels = [1, *filters]
        self._fans: dict[str, tuple[int, int]] = {}
        for i, kernel in enumerate(kernels, start=1):
            shape = (channels[i], channels[i - 1], kernel)
            self._add_weight(f"conv_w{i}", shape, kernel * channels[i - 1], kernel * channels[i])
            self.register_parameter(f"conv_b{i}", nn.Parameter(torch.empty(channels[i])))
        widths = [self.lengths[-1] * channels[-1], *hidden]
        for j in range(1, len(hidden) + 1):
            self._add_weight(f"fc_w{j}", (widths[j - 1], widths[j]), widths[j - 1], widths[j])
            self.register_parameter(f"fc_b{j}", nn.Parameter(torch.empty(widths[j])))
        self._add_weight("logits_w", (widths[-1], self.num_classes), widths[-1], self.num_classes)
        self.logits_b = nn.Parameter(torch.empty(self.num_classes))
        self.reset_parameters()

    def _add_weight(self, name: str, shape: tuple[int, ...], fan_in: int, fan_out: int) -> None:
        self.register_parameter(name, nn.Parameter(torch.empty(shape)))
        self._fans[name] = (fan_in, fan_out)

    def reset_parameters(self) -> None:
        """Draw every weight and bias again with ``weight_init`` / ``weight_std``."""
        for name, parameter in self.named_parameters():
            if name in self._fans:
                fan_in, fan_out = self._fans[name]
                init_weight_(parameter, self.weight_init, fan_in=fan_in, fan_out=fan_out, weight_std=self.weight_std)
            else:
                init_bias_(parameter, self.weight_init, weight_std=self.weight_std)

    @property
    def num_layers(self) -> int:
        """deephyp's ``numLayers``: conv layers + hidden dense layers + the logits layer."""
        return len(self.kernels) + len(self.fc_sizes) + 1

    @property
    def layer_names(self) -> list[str]:
        """Names of the layers in order: ``conv1``…, ``fc1``…, ``logits`` (numbered 1..num_layers)."""
        return [f"conv{i}" for i in range(1, len(self.kernels) + 1)] + [
            f"fc{j}" for j in range(1, len(self.fc_sizes) + 1)
        ] + ["logits"]

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output for spectra ``(N, B)``, in deephyp's layout.

        Conv layers give ``(N, L_i, F_i)`` (TF order), except the last conv layer, which gives
        its flattened ``(N, L_n·F_n)``; dense layers ``(N, units)``; ``logits`` ``(N, K)``.
        """
        if x.ndim != 2 or x.shape[1] != self.in_bands:
            raise ShapeMismatchError(
                f"DeephypCNNClassifier.forward_features takes spectra (N, {self.in_bands}), got shape {tuple(x.shape)}"
            )
        features: dict[str, torch.Tensor] = {}
        a = x.unsqueeze(1)
        conv_layers = len(self.kernels)
        for i in range(1, conv_layers + 1):
            weight, bias = getattr(self, f"conv_w{i}"), getattr(self, f"conv_b{i}")
            a = self._act(conv1d_tf(a, weight, bias, self.strides[i - 1], self.padding))
            features[f"conv{i}"] = a.transpose(1, 2)
        flat = a.transpose(1, 2).reshape(a.shape[0], -1)
        if conv_layers:
            features[f"conv{conv_layers}"] = flat
        hidden = flat
        for j in range(1, len(self.fc_sizes) + 1):
            hidden = self._act(torch.addmm(getattr(self, f"fc_b{j}"), hidden, getattr(self, f"fc_w{j}")))
            features[f"fc{j}"] = hidden
        features["logits"] = torch.addmm(self.logits_b, hidden, self.logits_w)
        return features

    def features(self, x: torch.Tensor, layer: int | str) -> torch.Tensor:
        """One layer's output (deephyp ``predict_features``): a name of :attr:`layer_names` or its number 1..num_layers.

        deephyp's example takes ``layer = num_layers - 1``, the last hidden dense layer.
        """
        return _select_feature(self.forward_features(x), layer, type(self).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` of spectra ``(N, B)``, or ``(N, K, H, W)`` of tiles ``(N, B, H, W)``."""
        if x.ndim == 4 and x.shape[1] == self.in_bands:
            batch, bands, height, width = x.shape
            logits = self.forward_features(x.permute(0, 2, 3, 1).reshape(-1, bands))["logits"]
            return logits.reshape(batch, height, width, self.num_classes).permute(0, 3, 1, 2)
        return self.forward_features(x)["logits"]

    @classmethod
    def from_deephyp_config(cls, config: Mapping[str, Any]) -> DeephypCNNClassifier:
        """Build from the keys of a deephyp classifier ``config.json`` (``inputSize``, ``numClasses``...)."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"deephyp classifier config: expected a JSON object, got {type(config).__name__}")
        unknown = sorted(set(config) - set(_CLASSIFIER_CONFIG_KEYS))
        if unknown:
            raise ConfigError(
                f"deephyp classifier config: unknown key(s) {', '.join(unknown)}; deephyp writes "
                f"{', '.join(_CLASSIFIER_CONFIG_KEYS)}"
            )
        for required in ("inputSize", "numClasses"):
            if config.get(required) is None:
                raise ConfigError(f"deephyp classifier config: {required!r} is missing; add it to the config")
        return cls(**{_CLASSIFIER_CONFIG_KEYS[k]: v for k, v in config.items() if v is not None})

    def deephyp_config(self) -> dict[str, Any]:
        """This model's architecture as deephyp's ``config.json`` keys."""
        return {
            "inputSize": self.in_bands,
            "numClasses": self.num_classes,
            "activationFunc": self.activation_name,
            "weightInitOpt": self.weight_init,
            "weightStd": self.weight_std,
            "convFilterSize": list(self.kernels),
            "convNumFilters": list(self.filters),
            "convStride": list(self.strides),
            "padding": self.padding,
            "fcSize": list(self.fc_sizes),
        }


_CLASSIFIER_CONFIG_KEYS: dict[str, str] = {
    "inputSize": "in_bands",
    "numClasses": "num_classes",
    "activationFunc": "activation",
    "weightInitOpt": "weight_init",
    "weightStd": "weight_std",
    "convFilterSize": "conv_filter_sizes",
    "convNumFilters": "conv_num_filters",
    "convStride": "conv_strides",
    "padding": "padding",
    "fcSize": "fc_sizes",
}


# --------------------------------------------------------------------------- HybridSN


@register_model(
    "hybridsn",
    task="classification",
    tiny={
        "patch_size": 9,
        "conv3d_filters": [2, 4, 4],
        "conv3d_spectral_kernels": [3, 3, 3],
        "conv2d_filters": 8,
        "fc_sizes": [16, 8],
        "dropout": 0.0,
    },
)
class HybridSN(nn.Module):
    """HybridSN-style spectral–spatial CNN (Roy et al., IEEE GRSL 2020) on PCA-reduced patches.

    ``(N, k, p, p)`` patch → add a channel axis ``(N, 1, k, p, p)`` → three 3-D convolutions
    (no padding, kernels ``spectral × s × s``, ReLU) → the spectral axis folded into channels
    → one 2-D convolution (ReLU) → flatten → dense layers with ReLU and dropout → logits.
    The paper's setting, and these defaults: 25 × 25 patches, 3-D kernels 7/5/3 (spectral)
    × 3 × 3 with 8/16/32 filters, a 3 × 3 2-D conv with 64 filters, dense 256 and 128 with
    dropout 0.4; 30 PCA components for Indian Pines and 15 for the other scenes
    (``in_bands`` is that k). Weights start with Glorot's variance and zero biases, as with
    the Keras defaults of the paper's implementation (the shared
    :func:`~hsikit.models.layers.initialize_weights`, normal form).

    Args:
        in_bands: number of PCA components k of the input patches.
        num_classes: number of classes K.
        patch_size: side p of the square patches (odd, centred on the pixel to classify).
        conv3d_filters: filters of the three (or more) 3-D convolutions.
        conv3d_spectral_kernels: their kernel sizes along the spectral axis (same length).
        conv3d_spatial_kernel: their (square) spatial kernel size.
        conv2d_filters: filters of the 2-D convolution.
        conv2d_kernel: its square kernel size.
        fc_sizes: widths of the hidden dense layers.
        dropout: dropout probability after each hidden dense layer.

    Shapes:
        ``(N, in_bands, patch_size, patch_size)`` → ``(N, num_classes)`` logits.
    """

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        patch_size: int = 25,
        conv3d_filters: Sequence[int] = (8, 16, 32),
        conv3d_spectral_kernels: Sequence[int] = (7, 5, 3),
        conv3d_spatial_kernel: int = 3,
        conv2d_filters: int = 64,
        conv2d_kernel: int = 3,
        fc_sizes: Sequence[int] = (256, 128),
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        owner = "HybridSN"
        for name, value, minimum in (
            ("in_bands", in_bands, 1),
            ("num_classes", num_classes, 2),
            ("patch_size", patch_size, 1),
            ("conv3d_spatial_kernel", conv3d_spatial_kernel, 1),
            ("conv2d_filters", conv2d_filters, 1),
            ("conv2d_kernel", conv2d_kernel, 1),
        ):
            if isinstance(value, bool) or int(value) != value or value < minimum:
                raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
        filters = _int_list(conv3d_filters, "conv3d_filters", owner)
        spectral_kernels = _int_list(conv3d_spectral_kernels, "conv3d_spectral_kernels", owner)
        hidden = _int_list(fc_sizes, "fc_sizes", owner)
        if not filters or len(filters) != len(spectral_kernels):
            raise ConfigError(
                f"{owner}: conv3d_filters and conv3d_spectral_kernels need the same non-zero length, got "
                f"{filters} and {spectral_kernels}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{owner}: dropout must lie in [0, 1), got {dropout!r}")
        self.in_bands = int(in_bands)
        self.num_classes = int(num_classes)
        self.patch_size = int(patch_size)

        depth = self.in_bands - sum(k - 1 for k in spectral_kernels)
        side_3d = self.patch_size - len(filters) * (conv3d_spatial_kernel - 1)
        side_2d = side_3d - (conv2d_kernel - 1)
        if depth < 1:
            raise ConfigError(
                f"{owner}: {self.in_bands} PCA components are too few for spectral kernels {spectral_kernels} "
                f"(needs at least {sum(k - 1 for k in spectral_kernels) + 1}); keep more components or use smaller "
                "conv3d_spectral_kernels"
            )
        if side_2d < 1:
            minimum_side = len(filters) * (conv3d_spatial_kernel - 1) + conv2d_kernel
            raise ConfigError(
                f"{owner}: patches of {self.patch_size} px are too small for the convolutions (needs at least "
                f"{minimum_side} px); use patch_size >= {minimum_side} or smaller kernels"
            )
        self.spectral_depth = depth
        self.feature_side = side_2d

        convs3d: list[nn.Module] = []
        channels = 1
        for count, kernel in zip(filters, spectral_kernels):
            convs3d.append(nn.Conv3d(channels, count, (kernel, conv3d_spatial_kernel, conv3d_spatial_kernel)))
            channels = count
        self.conv3d = nn.ModuleList(convs3d)
        self.conv2d = nn.Conv2d(channels * depth, int(conv2d_filters), int(conv2d_kernel))
        widths = [int(conv2d_filters) * side_2d * side_2d, *hidden]
        self.fc = nn.ModuleList(nn.Linear(widths[j], widths[j + 1]) for j in range(len(hidden)))
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(widths[-1], self.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weights (normal form: the variance of Keras' Glorot-uniform default) and zero biases."""
        initialize_weights(self, "xavier", gain=1.0, bias=0.0)

    @property
    def layer_names(self) -> list[str]:
        """``conv3d1``…, ``conv2d``, ``fc1``…, ``logits``."""
        return [f"conv3d{i}" for i in range(1, len(self.conv3d) + 1)] + ["conv2d"] + [
            f"fc{j}" for j in range(1, len(self.fc) + 1)
        ] + ["logits"]

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output: ``conv3d{i}`` ``(N, F_i, d_i, s_i, s_i)``, ``conv2d`` ``(N, F, s, s)``,
        ``fc{j}`` ``(N, units)`` (after dropout), ``logits`` ``(N, K)``."""
        expected = (self.in_bands, self.patch_size, self.patch_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ShapeMismatchError(
                f"HybridSN takes PCA patches (N, {self.in_bands}, {self.patch_size}, {self.patch_size}), got shape "
                f"{tuple(x.shape)}; reduce the cube to in_bands={self.in_bands} components with SpectralPCA and cut "
                f"patches of patch_size={self.patch_size}"
            )
        features: dict[str, torch.Tensor] = {}
        a = x.unsqueeze(1)
        for i, conv in enumerate(self.conv3d, start=1):
            a = torch.relu(conv(a))
            features[f"conv3d{i}"] = a
        a = a.reshape(a.shape[0], -1, a.shape[-2], a.shape[-1])  # (N, F·d, s, s)
        a = torch.relu(self.conv2d(a))
        features["conv2d"] = a
        a = a.flatten(1)
        for j, layer in enumerate(self.fc, start=1):
            a = self.dropout(torch.relu(layer(a)))
            features[f"fc{j}"] = a
        features["logits"] = self.head(a)
        return features

    def features(self, x: torch.Tensor, layer: int | str) -> torch.Tensor:
        """One layer's output, by name (:attr:`layer_names`) or 1-based number."""
        return _select_feature(self.forward_features(x), layer, type(self).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of patches ``(N, in_bands, patch_size, patch_size)``."""
        return self.forward_features(x)["logits"]


# --------------------------------------------------------------------------- spectral–spatial CNN


@register_model(
    "spectral_spatial_cnn",
    task="classification",
    tiny={"patch_size": 5, "spectral_sizes": [8], "spatial_filters": [4], "dropout": 0.0},
)
class SpectralSpatialCNN(nn.Module):
    """Two-branch spectral–spatial CNN: a spectral branch on the centre pixel and a spatial branch on the patch.

    ``(N, k, p, p)`` patch → spectral stem: ``len(spectral_sizes)`` 1 × 1 convolutions (each
    followed by batch normalisation and ReLU), the same per-pixel spectral transform for every
    pixel of the patch → two branches on the stem features ``(N, S, p, p)``:

    * spectral: the centre pixel's features ``(N, S)``;
    * spatial: ``len(spatial_filters)`` 3 × 3 convolutions (same padding, BN, ReLU), then a
      weighted mean over the patch with Gaussian weights ``exp(-d² / (2 σ²))`` of the distance
      d (px) to the centre pixel (``sigma`` px; None = plain mean), ``(N, F)``;

    then dropout on the concatenation ``(N, S + F)`` and a linear layer to the logits. Batch
    normalisation makes the net train in a few epochs; the centre-weighted pooling keeps the
    decision close to the pixel being classified.

    Args:
        in_bands: channels k of the input patches (PCA components, or every band).
        num_classes: number of classes K.
        patch_size: odd side p of the patches.
        spectral_sizes: widths of the 1 × 1 convolutions of the spectral stem (>= 1 layer).
        spatial_filters: filters of the 3 × 3 convolutions of the spatial branch (>= 1 layer).
        sigma: standard deviation (px) of the Gaussian pooling weights, or None for a plain mean.
        dropout: dropout probability before the classifier layer, in [0, 1).

    Shapes:
        ``(N, in_bands, patch_size, patch_size)`` → ``(N, num_classes)`` logits.
    """

    def __init__(
        self,
        in_bands: int,
        num_classes: int,
        patch_size: int = 9,
        spectral_sizes: Sequence[int] = (128, 64),
        spatial_filters: Sequence[int] = (64, 64),
        sigma: float | None = 2.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        owner = "SpectralSpatialCNN"
        for name, value, minimum in (("in_bands", in_bands, 1), ("num_classes", num_classes, 2),
                                     ("patch_size", patch_size, 1)):
            if isinstance(value, bool) or int(value) != value or value < minimum:
                raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
        if int(patch_size) % 2 == 0:
            raise ConfigError(f"{owner}: patch_size must be odd (patches are centred on the pixel), got {patch_size}")
        spectral = _int_list(spectral_sizes, "spectral_sizes", owner)
        spatial = _int_list(spatial_filters, "spatial_filters", owner)
        if not spectral or not spatial:
            raise ConfigError(f"{owner}: spectral_sizes and spatial_filters need at least one layer each, got "
                              f"{spectral} and {spatial}")
        if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"{owner}: sigma must be a positive number of pixels or None, got {sigma!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{owner}: dropout must lie in [0, 1), got {dropout!r}")
        self.in_bands = int(in_bands)
        self.num_classes = int(num_classes)
        self.patch_size = int(patch_size)
        self.sigma = None if sigma is None else float(sigma)
        stem: list[nn.Module] = []
        channels = self.in_bands
        for width in spectral:
            stem += [nn.Conv2d(channels, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.stem = nn.Sequential(*stem)
        layers: list[nn.Module] = []
        spatial_channels = channels
        for count in spatial:
            layers += [nn.Conv2d(spatial_channels, count, 3, padding=1), nn.BatchNorm2d(count), nn.ReLU(inplace=True)]
            spatial_channels = count
        self.spatial = nn.Sequential(*layers)
        offsets = torch.arange(self.patch_size, dtype=torch.float32) - self.patch_size // 2
        distance2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
        weights = torch.ones_like(distance2) if self.sigma is None else torch.exp(-distance2 / (2 * self.sigma**2))
        self.register_buffer("pool_weights", weights / weights.sum(), persistent=False)
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(channels + spatial_channels, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``stem`` ``(N, S, p, p)``, ``spectral`` ``(N, S)``, ``spatial`` ``(N, F)``, ``logits`` ``(N, K)``."""
        expected = (self.in_bands, self.patch_size, self.patch_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ShapeMismatchError(
                f"SpectralSpatialCNN takes patches (N, {self.in_bands}, {self.patch_size}, {self.patch_size}), got "
                f"shape {tuple(x.shape)}; cut patches of patch_size={self.patch_size} with in_bands={self.in_bands} "
                "channels"
            )
        centre = self.patch_size // 2
        stem = self.stem(x)
        spectral = stem[:, :, centre, centre]
        spatial = (self.spatial(stem) * self.pool_weights).sum(dim=(-2, -1))
        logits = self.head(self.dropout(torch.cat([spectral, spatial], dim=1)))
        return {"stem": stem, "spectral": spectral, "spatial": spatial, "logits": logits}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of patches ``(N, in_bands, patch_size, patch_size)``."""
        return self.forward_features(x)["logits"]


__all__ = ["DeephypCNNClassifier", "HybridSN", "SpectralSpatialCNN", "class_balance_weights"]
