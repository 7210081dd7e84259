"""The deephyp spectral autoencoders (Windrim et al., Remote Sensing 11(7):864, 2019), in PyTorch.

Two architectures that compress one pixel's spectrum ``(B,)`` bands into a short latent
vector and reconstruct it:

* :class:`DeephypMLPAutoencoder` (registry ``"deephyp_mlp_ae"``, deephyp ``mlp_1D_network``):
  fully connected encoder ``[in_bands] + encoder_sizes`` and its mirror as decoder, with
  optional tied weights and skip connections.
* :class:`DeephypConvAutoencoder` (registry ``"deephyp_conv_ae"``, deephyp ``cnn_1D_network``):
  1-D convolutions over the band axis, a dense layer to the latent vector, and a decoder of
  a dense layer and transposed convolutions that returns exactly ``in_bands`` values for any
  band count.

Both take spectra ``(N, in_bands)`` (or image tiles ``(N, in_bands, H, W)``, reconstructed
pixel by pixel) and return reconstructions of the same shape. ``encode`` gives the latent
vectors ``(N, latent)``, ``decode`` maps them back, ``forward_features`` returns every
layer's activation by name (for deephyp's ``predict_features``). The constructor defaults
are deephyp's; :meth:`from_deephyp_config` / :meth:`deephyp_config` read and write the keys
of deephyp's ``config.json``.

Weights of dense layers are stored as deephyp stores them, ``(in, out)`` with
``y = x W + b``, under deephyp's names (``encoder_w1``, ``decoder_b4``...), so weights exported
from the TensorFlow original map one to one. Convolution kernels use PyTorch's layout.
The TF padding modes are reproduced exactly: ``"VALID"`` (no padding) and ``"SAME"`` (output
length ``ceil(L / stride)``, extra padding element on the right).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models.registry import register_model
from hsikit.models.spectral.init import (
    Activation,
    Padding,
    WeightInit,
    activation_function,
    check_weight_init,
    init_bias_,
    init_weight_,
)

# --------------------------------------------------------------------------- 1-D conv helpers (TF semantics)


def conv_output_length(length: int, kernel_size: int, stride: int, padding: str) -> int:
    """Output length of a TF-style 1-D convolution: ``VALID`` ``ceil((L - k + 1) / s)``, ``SAME`` ``ceil(L / s)``."""
    if padding == "SAME":
        return math.ceil(length / stride)
    if padding == "VALID":
        return math.ceil((length - kernel_size + 1) / stride)
    raise ConfigError(f"padding must be 'VALID' or 'SAME' (deephyp's TF padding names), got {padding!r}")


def same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """``(left, right)`` zero padding of TF ``SAME`` for an input of ``length``: the odd element goes right."""
    output = math.ceil(length / stride)
    total = max((output - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


def conv1d_tf(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: str
) -> torch.Tensor:
    """1-D convolution with TF padding semantics.

    Args:
        x: ``(N, C_in, L)``.
        weight: ``(C_out, C_in, k)``.
        bias: ``(C_out,)`` or None.
        stride: step along L.
        padding: ``"VALID"`` or ``"SAME"``.

    Returns:
        ``(N, C_out, conv_output_length(L, k, stride, padding))``.
    """
    if padding == "SAME":
        left, right = same_padding(x.shape[-1], weight.shape[-1], stride)
        x = F.pad(x, (left, right))
    return F.conv1d(x, weight, bias, stride=stride)


def conv_transpose1d_tf(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: str,
    output_length: int,
) -> torch.Tensor:
    """The transpose (adjoint) of :func:`conv1d_tf`, with an explicit output length as in TF's ``conv1d_transpose``.

    For a convolution that maps length ``output_length`` to ``x``'s length with ``weight``,
    this maps back: the full transposed convolution, padded with zeros on the right when
    it is shorter than the padded input (VALID with stride > 1), then cropped by the SAME
    padding. Without bias it is exactly the adjoint of :func:`conv1d_tf`.

    Args:
        x: ``(N, C_out, L_out)``.
        weight: ``(C_out, C_in, k)``: the layout of the mirrored convolution's kernel, which
            is also ``conv_transpose1d``'s layout, so a tied kernel is used as is.
        bias: ``(C_in,)`` or None.
        output_length: the length L of the convolution's input.

    Returns:
        ``(N, C_in, output_length)``.
    """
    kernel_size = weight.shape[-1]
    full = F.conv_transpose1d(x, weight, None, stride=stride)
    left, right = same_padding(output_length, kernel_size, stride) if padding == "SAME" else (0, 0)
    padded_length = output_length + left + right
    if full.shape[-1] < padded_length:
        full = F.pad(full, (0, padded_length - full.shape[-1]))
    out = full[..., left : left + output_length]
    if bias is not None:
        out = out + bias[:, None]
    return out


# --------------------------------------------------------------------------- shared checks


def _int_list(values: Sequence[Any] | None, name: str, owner: str, *, minimum: int = 1) -> list[int]:
    if values is None or isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"{owner}: {name} must be a list of integers, got {values!r}")
    result: list[int] = []
    for value in values:
        if isinstance(value, bool) or int(value) != value or int(value) < minimum:
            raise ConfigError(f"{owner}: every entry of {name} must be an integer >= {minimum}, got {list(values)!r}")
        result.append(int(value))
    return result


def _tied_flags(tied_weights: Sequence[Any] | None, layers: int, owner: str) -> list[bool]:
    if tied_weights is None:
        return [False] * layers
    if isinstance(tied_weights, (str, bytes)) or not isinstance(tied_weights, Sequence):
        raise ConfigError(f"{owner}: tied_weights must be a list of {layers} flags (0/1), got {tied_weights!r}")
    if len(tied_weights) != layers:
        raise ConfigError(
            f"{owner}: tied_weights has {len(tied_weights)} flag(s) but the decoder has {layers} layer(s); give one "
            f"0/1 flag per decoder layer (e.g. {[1] + [0] * (layers - 1)} ties the first decoder layer)"
        )
    flags = []
    for flag in tied_weights:
        if flag not in (0, 1):  # True/False compare equal to 1/0
            raise ConfigError(f"{owner}: tied_weights flags must be 0 or 1, got {list(tied_weights)!r}")
        flags.append(bool(flag))
    return flags


def _check_activations(owner: str, *names: str) -> None:
    for name in names:
        activation_function(name, owner)


def _flatten_pixels(x: torch.Tensor, bands: int, owner: str) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """``(N, bands)`` spectra from ``(N, bands)`` or ``(N, bands, H, W)``; the second value restores the layout."""
    if x.ndim == 2 and x.shape[1] == bands:
        return x, None
    if x.ndim == 4 and x.shape[1] == bands:
        batch, _, height, width = x.shape
        return x.permute(0, 2, 3, 1).reshape(-1, bands), (batch, height, width)
    raise ShapeMismatchError(
        f"{owner} was built for {bands} bands and takes spectra (N, {bands}) or tiles (N, {bands}, H, W), got shape "
        f"{tuple(x.shape)}; build the model with in_bands={x.shape[1] if x.ndim in (2, 4) else '<bands>'} or "
        "select the bands it was trained on"
    )


def _restore_pixels(y: torch.Tensor, layout: tuple[int, ...] | None) -> torch.Tensor:
    if layout is None:
        return y
    batch, height, width = layout
    return y.reshape(batch, height, width, y.shape[-1]).permute(0, 3, 1, 2)


def _select_feature(features: Mapping[str, torch.Tensor], layer: int | str, owner: str) -> torch.Tensor:
    names = list(features)
    if isinstance(layer, bool):
        raise ConfigError(f"{owner}: layer must be a name or a number, got {layer!r}")
    if isinstance(layer, int):
        if not 1 <= layer <= len(names):
            raise ConfigError(
                f"{owner}: layer {layer} does not exist; layers are numbered 1..{len(names)} ({', '.join(names)})"
            )
        return features[names[layer - 1]]
    if layer not in features:
        raise ConfigError(f"{owner}: no layer named {layer!r}; choose one of {', '.join(names)} or a number")
    return features[layer]


# --------------------------------------------------------------------------- MLP autoencoder


@register_model("deephyp_mlp_ae", task="autoencoder", tiny={"encoder_sizes": [8, 3]})
class DeephypMLPAutoencoder(nn.Module):
    """deephyp's MLP autoencoder (``mlp_1D_network``): dense encoder, mirrored dense decoder.

    With ``E = [in_bands] + encoder_sizes`` (n layers): encoder layer i computes
    ``h_i = a_{i-1} W_i + b_i``, ``a_i = act(h_i)`` (the latent layer too, ``z = a_n``);
    decoder layer j maps ``E[n-j+1] → E[n-j]``; with ``skip_connect`` it adds the matching
    encoder pre-activation ``h_{n-j}`` (the input x at the output layer) before its
    activation; the output layer uses ``final_activation``.

    Args:
        in_bands: number of spectral bands B (deephyp ``inputSize``).
        encoder_sizes: widths of the encoder layers; the last one is the latent size
            (``encoderSize``).
        activation: ``relu``, ``sigmoid`` or ``linear``, after every layer but the output
            (``activationFunc``).
        tied_weights: one 0/1 flag per *decoder* layer (``tiedWeights``); flag j = 1 makes
            decoder layer j use the transpose of encoder layer ``n - j + 1``'s weight (the
            same tensor: no new parameter, gradients from both uses add up). Every decoder
            layer keeps its own bias. None: nothing tied.
        weight_init: deephyp initialisation name (``weightInitOpt``), see
            :mod:`hsikit.models.spectral.init`.
        weight_std: standard deviation of ``gaussian`` / ``truncated_normal`` (``weightStd``).
        skip_connect: add encoder pre-activations to the decoder (``skipConnect``). The
            decoder then needs the encoder's values, so :meth:`decode` alone is unavailable.
        final_activation: activation of the output layer (``activationFuncFinal``); use
            ``sigmoid`` with the SID loss, which needs positive reconstructions.

    Shapes:
        ``forward``: ``(N, B)`` → ``(N, B)`` (or ``(N, B, H, W)`` → ``(N, B, H, W)``);
        ``encode``: ``(N, B)`` → ``(N, encoder_sizes[-1])``; ``decode``: the reverse.
    """

    def __init__(
        self,
        in_bands: int,
        encoder_sizes: Sequence[int] = (50, 30, 10),
        activation: Activation = "sigmoid",
        tied_weights: Sequence[int] | None = None,
        weight_init: WeightInit = "truncated_normal",
        weight_std: float = 0.1,
        skip_connect: bool = False,
        final_activation: Activation = "linear",
    ) -> None:
        super().__init__()
        owner = "DeephypMLPAutoencoder"
        if isinstance(in_bands, bool) or int(in_bands) != in_bands or in_bands < 1:
            raise ConfigError(f"{owner}: in_bands must be a positive integer (the band count), got {in_bands!r}")
        sizes = _int_list(encoder_sizes, "encoder_sizes", owner)
        if not sizes:
            raise ConfigError(f"{owner}: encoder_sizes needs at least one layer (the latent size), got []")
        _check_activations(owner, activation, final_activation)
        check_weight_init(weight_init, weight_std, owner)
        self.in_bands = int(in_bands)
        self.encoder_sizes = sizes
        self.num_layers = len(sizes)
        self.activation_name = activation
        self.final_activation_name = final_activation
        self.tied = _tied_flags(tied_weights, self.num_layers, owner)
        self.weight_init = weight_init
        self.weight_std = float(weight_std)
        self.skip_connect = bool(skip_connect)
        self._act = activation_function(activation)
        self._final_act = activation_function(final_activation)

        widths = [self.in_bands, *sizes]
        n = self.num_layers
        for i in range(1, n + 1):
            self.register_parameter(f"encoder_w{i}", nn.Parameter(torch.empty(widths[i - 1], widths[i])))
            self.register_parameter(f"encoder_b{i}", nn.Parameter(torch.empty(widths[i])))
        for j in range(1, n + 1):
            fan_in, fan_out = widths[n - j + 1], widths[n - j]
            if not self.tied[j - 1]:
                self.register_parameter(f"decoder_w{n + j}", nn.Parameter(torch.empty(fan_in, fan_out)))
            self.register_parameter(f"decoder_b{n + j}", nn.Parameter(torch.empty(fan_out)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight and bias again with ``weight_init`` / ``weight_std``."""
        for name, parameter in self.named_parameters():
            if "_w" in name:
                init_weight_(
                    parameter,
                    self.weight_init,
                    fan_in=parameter.shape[0],
                    fan_out=parameter.shape[1],
                    weight_std=self.weight_std,
                )
            else:
                init_bias_(parameter, self.weight_init, weight_std=self.weight_std)

    # ------------------------------------------------------------------ weights
    @property
    def latent_dim(self) -> int:
        """Size of the latent vector (``encoder_sizes[-1]``)."""
        return self.encoder_sizes[-1]

    def encoder_weight(self, i: int) -> torch.Tensor:
        """Weight ``(in, out)`` of encoder layer ``i`` (1..n)."""
        return getattr(self, f"encoder_w{i}")

    def decoder_weight(self, j: int) -> torch.Tensor:
        """Effective weight ``(in, out)`` of decoder layer ``j`` (1..n): its own, or the tied encoder's transpose."""
        n = self.num_layers
        if self.tied[j - 1]:
            return self.encoder_weight(n - j + 1).t()
        return getattr(self, f"decoder_w{n + j}")

    # ------------------------------------------------------------------ passes
    def _encoder_pass(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pre-activations ``h_1..h_n`` and activations ``a_1..a_n`` of the encoder for ``(N, B)`` spectra."""
        pre: list[torch.Tensor] = []
        post: list[torch.Tensor] = []
        a = x
        for i in range(1, self.num_layers + 1):
            h = torch.addmm(getattr(self, f"encoder_b{i}"), a, self.encoder_weight(i))
            a = self._act(h)
            pre.append(h)
            post.append(a)
        return pre, post

    def _decoder_pass(
        self, z: torch.Tensor, encoder_pre: list[torch.Tensor] | None, x: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """Activations of decoder layers 1..n; the last is the reconstruction."""
        n = self.num_layers
        outputs: list[torch.Tensor] = []
        a = z
        for j in range(1, n + 1):
            h = torch.addmm(getattr(self, f"decoder_b{n + j}"), a, self.decoder_weight(j))
            if self.skip_connect:
                assert encoder_pre is not None and x is not None
                h = h + (encoder_pre[n - j - 1] if j < n else x)
            a = self._act(h) if j < n else self._final_act(h)
            outputs.append(a)
        return outputs

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's activation for spectra ``(N, B)``, in order.

        Keys: ``encoder1`` … ``encoder{n}`` (``encoder{n}`` is the latent vector, also under
        ``latent``), then ``decoder1`` … ``decoder{n}`` (the last is the reconstruction).
        Layer numbers 1..2n in :meth:`features` follow this order (``latent`` excluded).
        """
        spectra, _ = _flatten_pixels(x, self.in_bands, type(self).__name__)
        pre, post = self._encoder_pass(spectra)
        decoded = self._decoder_pass(post[-1], pre, spectra)
        features = {f"encoder{i}": a for i, a in enumerate(post, start=1)}
        features.update({f"decoder{j}": a for j, a in enumerate(decoded, start=1)})
        features["latent"] = post[-1]
        return features

    def features(self, x: torch.Tensor, layer: int | str) -> torch.Tensor:
        """The activation of one layer (a name of :meth:`forward_features` or a number 1..2n)."""
        features = self.forward_features(x)
        if isinstance(layer, int) and not isinstance(layer, bool):
            features.pop("latent")
        return _select_feature(features, layer, type(self).__name__)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent vectors: ``(N, B)`` → ``(N, latent_dim)`` (``(N, B, H, W)`` → ``(N, latent_dim, H, W)``)."""
        spectra, layout = _flatten_pixels(x, self.in_bands, type(self).__name__)
        _, post = self._encoder_pass(spectra)
        return _restore_pixels(post[-1], layout)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions from latent vectors: ``(N, latent_dim)`` → ``(N, B)`` (or the tile layout).

        Raises:
            ConfigError: with ``skip_connect`` the decoder needs the encoder's values; use
                :meth:`forward` on the spectra instead.
        """
        if self.skip_connect:
            raise ConfigError(
                "DeephypMLPAutoencoder.decode: this model has skip_connect=True, so its decoder adds encoder "
                "activations and cannot run from the latent vector alone; call the model on the spectra (forward)"
            )
        latent, layout = _flatten_pixels(z, self.latent_dim, "DeephypMLPAutoencoder.decode")
        return _restore_pixels(self._decoder_pass(latent, None, None)[-1], layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``(N, B)`` spectra (or ``(N, B, H, W)`` tiles), same shape as ``x``."""
        spectra, layout = _flatten_pixels(x, self.in_bands, type(self).__name__)
        pre, post = self._encoder_pass(spectra)
        return _restore_pixels(self._decoder_pass(post[-1], pre, spectra)[-1], layout)

    # ------------------------------------------------------------------ deephyp config.json
    @classmethod
    def from_deephyp_config(cls, config: Mapping[str, Any]) -> DeephypMLPAutoencoder:
        """Build from the keys of a deephyp ``mlp_1D_network`` ``config.json`` (``inputSize``, ``encodersize``...)."""
        arguments = _translate_config(config, _MLP_CONFIG_KEYS, "deephyp mlp_1D_network config")
        return cls(**arguments)

    def deephyp_config(self) -> dict[str, Any]:
        """This model's architecture as deephyp's ``config.json`` keys (values JSON-ready)."""
        return {
            "inputSize": self.in_bands,
            "encodersize": list(self.encoder_sizes),
            "activationFunc": self.activation_name,
            "tiedWeights": [int(flag) for flag in self.tied],
            "weightInitOpt": self.weight_init,
            "weightStd": self.weight_std,
            "skipConnect": self.skip_connect,
            "activationFuncFinal": self.final_activation_name,
        }


# --------------------------------------------------------------------------- conv autoencoder


@register_model(
    "deephyp_conv_ae",
    task="autoencoder",
    tiny={"latent_dim": 3, "encoder_num_filters": [4, 4], "encoder_filter_sizes": [5, 3], "encoder_strides": [1, 2]},
)
class DeephypConvAutoencoder(nn.Module):
    """deephyp's 1-D convolutional autoencoder (``cnn_1D_network``).

    Encoder: the spectrum as a one-channel signal ``(N, 1, B)``; n × [conv1d → act]
    (lengths ``L_i = conv_output_length(L_{i-1}, k_i, s_i, padding)``); flatten in
    length-major order (TF's ``(L, C)`` layout); dense → act gives ``z``. Decoder: dense →
    act, reshape to ``(L_n, F_n)``, then n transposed convolutions mirroring the encoder,
    each back to the exact length of the matching encoder input, so the output has
    ``in_bands`` values for any band count (odd ones included). The last one uses
    ``final_activation``. With ``skip_connect`` the decoder adds the matching encoder
    pre-activations (the input at the output layer), as in the MLP.

    Example (deephyp's worked example, 103 bands, VALID, kernels [20, 10, 10]): lengths
    103 → 84 → 75 → 66, flat 660 → z, decoder 660 → (66, 10) → 75 → 84 → 103.

    Args:
        in_bands: number of bands B (``inputSize``).
        latent_dim: latent size (``zDim``).
        encoder_num_filters: filters per conv layer (``encoderNumFilters``).
        encoder_filter_sizes: kernel sizes (``encoderFilterSize``).
        activation, final_activation, weight_init, weight_std, skip_connect: as in
            :class:`DeephypMLPAutoencoder`.
        tied_weights: one 0/1 flag per transposed conv layer; flag j = 1 makes it reuse the
            kernel of encoder conv ``n - j + 1`` (the same tensor). The dense layers are never tied.
        padding: ``"VALID"`` or ``"SAME"`` (TF semantics), for every conv layer.
        encoder_strides: strides (``encoderStride``).

    Shapes:
        ``forward``: ``(N, B)`` → ``(N, B)`` (or ``(N, B, H, W)`` tiles);
        ``encode``: ``(N, B)`` → ``(N, latent_dim)``; ``decode``: the reverse.
    """

    def __init__(
        self,
        in_bands: int,
        latent_dim: int = 5,
        encoder_num_filters: Sequence[int] = (10, 10, 10),
        encoder_filter_sizes: Sequence[int] = (20, 10, 10),
        activation: Activation = "sigmoid",
        tied_weights: Sequence[int] | None = None,
        weight_init: WeightInit = "truncated_normal",
        weight_std: float = 0.1,
        skip_connect: bool = False,
        padding: Padding = "VALID",
        encoder_strides: Sequence[int] = (1, 1, 1),
        final_activation: Activation = "linear",
    ) -> None:
        super().__init__()
        owner = "DeephypConvAutoencoder"
        if isinstance(in_bands, bool) or int(in_bands) != in_bands or in_bands < 1:
            raise ConfigError(f"{owner}: in_bands must be a positive integer (the band count), got {in_bands!r}")
        if isinstance(latent_dim, bool) or int(latent_dim) != latent_dim or latent_dim < 1:
            raise ConfigError(f"{owner}: latent_dim must be a positive integer, got {latent_dim!r}")
        filters = _int_list(encoder_num_filters, "encoder_num_filters", owner)
        kernels = _int_list(encoder_filter_sizes, "encoder_filter_sizes", owner)
        strides = _int_list(encoder_strides, "encoder_strides", owner)
        if not filters or not (len(filters) == len(kernels) == len(strides)):
            raise ConfigError(
                f"{owner}: encoder_num_filters, encoder_filter_sizes and encoder_strides need the same non-zero "
                f"length (one entry per conv layer), got {filters}, {kernels}, {strides}"
            )
        if padding not in ("VALID", "SAME"):
            raise ConfigError(f"{owner}: padding must be 'VALID' or 'SAME', got {padding!r}")
        _check_activations(owner, activation, final_activation)
        check_weight_init(weight_init, weight_std, owner)
        self.in_bands = int(in_bands)
        self.latent_dim = int(latent_dim)
        self.filters = filters
        self.kernels = kernels
        self.strides = strides
        self.padding = padding
        self.num_layers = len(filters)
        self.activation_name = activation
        self.final_activation_name = final_activation
        self.tied = _tied_flags(tied_weights, self.num_layers, owner)
        self.weight_init = weight_init
        self.weight_std = float(weight_std)
        self.skip_connect = bool(skip_connect)
        self._act = activation_function(activation)
        self._final_act = activation_function(final_activation)

        self.lengths = [self.in_bands]
        for kernel, stride in zip(kernels, strides):
            length = conv_output_length(self.lengths[-1], kernel, stride, padding)
            if length < 1:
                raise ConfigError(
                    f"{owner}: {self.in_bands} bands are too few for kernels {kernels} with strides {strides} and "
                    f"{padding} padding (lengths {self.lengths + [length]}); use smaller encoder_filter_sizes or "
                    "padding='SAME'"
                )
            self.lengths.append(length)
        channels = [1, *filters]
        n = self.num_layers
        self.flat_size = self.lengths[-1] * channels[-1]
        # Kernel shapes kept for initialisation: name -> (fan_in, fan_out).
        self._fans: dict[str, tuple[int, int]] = {}
        for i in range(1, n + 1):
            shape = (channels[i], channels[i - 1], kernels[i - 1])
            self._add_weight(f"encoder_w{i}", shape, kernels[i - 1] * channels[i - 1], kernels[i - 1] * channels[i])
            self.register_parameter(f"encoder_b{i}", nn.Parameter(torch.empty(channels[i])))
        self._add_weight(f"encoder_w{n + 1}", (self.flat_size, self.latent_dim), self.flat_size, self.latent_dim)
        self.register_parameter(f"encoder_b{n + 1}", nn.Parameter(torch.empty(self.latent_dim)))
        self._add_weight(f"decoder_w{n + 2}", (self.latent_dim, self.flat_size), self.latent_dim, self.flat_size)
        self.register_parameter(f"decoder_b{n + 2}", nn.Parameter(torch.empty(self.flat_size)))
        for j in range(1, n + 1):
            mirrored = n - j + 1  # the encoder conv this layer inverts
            kernel = kernels[mirrored - 1]
            if not self.tied[j - 1]:
                shape = (channels[mirrored], channels[mirrored - 1], kernel)
                self._add_weight(
                    f"decoder_w{n + 2 + j}", shape, kernel * channels[mirrored], kernel * channels[mirrored - 1]
                )
            self.register_parameter(f"decoder_b{n + 2 + j}", nn.Parameter(torch.empty(channels[mirrored - 1])))
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

    def deconv_weight(self, j: int) -> torch.Tensor:
        """Kernel ``(F_{n-j+1}, F_{n-j}, k)`` of transposed conv ``j`` (1..n): its own, or the tied encoder kernel."""
        n = self.num_layers
        if self.tied[j - 1]:
            return getattr(self, f"encoder_w{n - j + 1}")
        return getattr(self, f"decoder_w{n + 2 + j}")

    # ------------------------------------------------------------------ passes
    def _encoder_pass(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pre-activations and activations: conv layers ``(N, F_i, L_i)``, then the latent ``(N, latent_dim)``."""
        n = self.num_layers
        pre: list[torch.Tensor] = []
        post: list[torch.Tensor] = []
        a = x.unsqueeze(1)
        for i in range(1, n + 1):
            weight, bias = getattr(self, f"encoder_w{i}"), getattr(self, f"encoder_b{i}")
            h = conv1d_tf(a, weight, bias, self.strides[i - 1], self.padding)
            a = self._act(h)
            pre.append(h)
            post.append(a)
        flat = a.transpose(1, 2).reshape(a.shape[0], -1)  # length-major, as TF's (N, L, C)
        h = torch.addmm(getattr(self, f"encoder_b{n + 1}"), flat, getattr(self, f"encoder_w{n + 1}"))
        pre.append(h)
        post.append(self._act(h))
        return pre, post

    def _decoder_pass(
        self, z: torch.Tensor, encoder_pre: list[torch.Tensor] | None, x: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """Activations of the dense decoder layer ``(N, L_n·F_n)`` and of each transposed conv ``(N, F, L)``."""
        n = self.num_layers
        outputs: list[torch.Tensor] = []
        h = torch.addmm(getattr(self, f"decoder_b{n + 2}"), z, getattr(self, f"decoder_w{n + 2}"))
        if self.skip_connect:
            assert encoder_pre is not None
            last = encoder_pre[n - 1]
            h = h + last.transpose(1, 2).reshape(last.shape[0], -1)
        a = self._act(h)
        outputs.append(a)
        a = a.reshape(a.shape[0], self.lengths[-1], self.filters[-1]).transpose(1, 2)
        for j in range(1, n + 1):
            mirrored = n - j + 1
            h = conv_transpose1d_tf(
                a,
                self.deconv_weight(j),
                getattr(self, f"decoder_b{n + 2 + j}"),
                self.strides[mirrored - 1],
                self.padding,
                self.lengths[mirrored - 1],
            )
            if self.skip_connect:
                assert encoder_pre is not None and x is not None
                h = h + (encoder_pre[mirrored - 2] if j < n else x.unsqueeze(1))
            a = self._act(h) if j < n else self._final_act(h)
            outputs.append(a)
        outputs[-1] = outputs[-1].squeeze(1)
        return outputs

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's activation for spectra ``(N, B)``, in order.

        Keys: ``encoder1`` … ``encoder{n}`` (conv, ``(N, F_i, L_i)``), ``latent``
        ``(N, latent_dim)``, ``decoder_dense`` ``(N, L_n·F_n)``, ``decoder1`` … ``decoder{n}``
        (transposed convs ``(N, F, L)``; the last is the reconstruction ``(N, B)``).
        """
        spectra, _ = _flatten_pixels(x, self.in_bands, type(self).__name__)
        pre, post = self._encoder_pass(spectra)
        decoded = self._decoder_pass(post[-1], pre, spectra)
        features = {f"encoder{i}": a for i, a in enumerate(post[:-1], start=1)}
        features["latent"] = post[-1]
        features["decoder_dense"] = decoded[0]
        features.update({f"decoder{j}": a for j, a in enumerate(decoded[1:], start=1)})
        return features

    def features(self, x: torch.Tensor, layer: int | str) -> torch.Tensor:
        """The activation of one layer (a name of :meth:`forward_features` or its 1-based position)."""
        return _select_feature(self.forward_features(x), layer, type(self).__name__)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent vectors: ``(N, B)`` → ``(N, latent_dim)`` (``(N, B, H, W)`` → ``(N, latent_dim, H, W)``)."""
        spectra, layout = _flatten_pixels(x, self.in_bands, type(self).__name__)
        return _restore_pixels(self._encoder_pass(spectra)[1][-1], layout)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions from latent vectors ``(N, latent_dim)`` → ``(N, B)``; unavailable with ``skip_connect``."""
        if self.skip_connect:
            raise ConfigError(
                "DeephypConvAutoencoder.decode: this model has skip_connect=True, so its decoder adds encoder "
                "activations and cannot run from the latent vector alone; call the model on the spectra (forward)"
            )
        latent, layout = _flatten_pixels(z, self.latent_dim, "DeephypConvAutoencoder.decode")
        return _restore_pixels(self._decoder_pass(latent, None, None)[-1], layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``(N, B)`` spectra (or ``(N, B, H, W)`` tiles), same shape as ``x``."""
        spectra, layout = _flatten_pixels(x, self.in_bands, type(self).__name__)
        pre, post = self._encoder_pass(spectra)
        return _restore_pixels(self._decoder_pass(post[-1], pre, spectra)[-1], layout)

    # ------------------------------------------------------------------ deephyp config.json
    @classmethod
    def from_deephyp_config(cls, config: Mapping[str, Any]) -> DeephypConvAutoencoder:
        """Build from the keys of a deephyp ``cnn_1D_network`` autoencoder ``config.json``."""
        arguments = _translate_config(config, _CONV_CONFIG_KEYS, "deephyp autoencoder cnn_1D_network config")
        return cls(**arguments)

    def deephyp_config(self) -> dict[str, Any]:
        """This model's architecture as deephyp's ``config.json`` keys."""
        return {
            "inputSize": self.in_bands,
            "zDim": self.latent_dim,
            "encoderNumfilters": list(self.filters),
            "encoderFiltersize": list(self.kernels),
            "activationFunc": self.activation_name,
            "tiedWeights": [int(flag) for flag in self.tied],
            "weightInitOpt": self.weight_init,
            "weightStd": self.weight_std,
            "skipConnect": self.skip_connect,
            "padding": self.padding,
            "encoderStride": list(self.strides),
            "activationFuncFinal": self.final_activation_name,
        }


# --------------------------------------------------------------------------- config translation

_MLP_CONFIG_KEYS: dict[str, str] = {
    "inputSize": "in_bands",
    "encodersize": "encoder_sizes",
    "activationFunc": "activation",
    "tiedWeights": "tied_weights",
    "weightInitOpt": "weight_init",
    "weightStd": "weight_std",
    "skipConnect": "skip_connect",
    "activationFuncFinal": "final_activation",
}

_CONV_CONFIG_KEYS: dict[str, str] = {
    "inputSize": "in_bands",
    "zDim": "latent_dim",
    "encoderNumfilters": "encoder_num_filters",
    "encoderFiltersize": "encoder_filter_sizes",
    "activationFunc": "activation",
    "tiedWeights": "tied_weights",
    "weightInitOpt": "weight_init",
    "weightStd": "weight_std",
    "skipConnect": "skip_connect",
    "padding": "padding",
    "encoderStride": "encoder_strides",
    "activationFuncFinal": "final_activation",
}


def _translate_config(config: Mapping[str, Any], keys: Mapping[str, str], what: str) -> dict[str, Any]:
    """Constructor arguments from deephyp config keys; unknown keys are an error, missing ones keep defaults."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{what}: expected a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(unknown)}; deephyp writes {', '.join(keys)}")
    if "inputSize" not in config or config["inputSize"] is None:
        raise ConfigError(f"{what}: 'inputSize' (the band count) is missing; add it to the config")
    return {keys[key]: value for key, value in config.items() if value is not None or key == "tiedWeights"}


__all__ = [
    "DeephypConvAutoencoder",
    "DeephypMLPAutoencoder",
    "conv1d_tf",
    "conv_output_length",
    "conv_transpose1d_tf",
    "same_padding",
]
