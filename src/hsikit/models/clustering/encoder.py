"""Spectral–spatial pixel encoder of Deep Global Clustering (b05611038/HSI_global_clustering).

The encoder maps a cube batch ``(B, C, H, W)`` to unit-norm pixel embeddings
``(B, D, H, W)``: a *spectral* stack, then two ``3 × 3`` convolution + ReLU layers
(the *spatial* stack), then L2 normalisation over the channel axis.

Two spectral stacks are offered (``mode``):

``"spectral"`` (default, a true spectral CNN)
    Each pixel's spectrum is a 1-channel sequence of length C. ``n_spectral_layers``
    layers ``Conv1d(k, stride) → ReLU`` run along the **wavelength axis** (no pixel
    sees another pixel here), the resulting ``(F, C')`` feature map is flattened and
    projected by a linear layer (+ ReLU) to D channels. Memory of this stage is
    about ``B·H·W·F·C/stride`` floats.

``"raster"`` (parity with the reference code)
    The reference feeds ``x.view(B, C, H·W)`` to ``Conv1d(C → D, k)`` layers: the
    bands are the *channels* and the flattened pixel raster is the *length* axis. That
    is a horizontal ``1 × k`` spatial convolution which mixes all bands at once and
    wraps across row ends (pixel ``(r, W−1)`` is a neighbour of ``(r+1, 0)``). It is
    reproduced exactly, with the reference's module names, so its checkpoints load:
    ``spectral_net.{0,2,4}.weight`` of shape ``(D, C_in, k)`` and
    ``spatial_net.{0,2}.weight`` of shape ``(D, D, 3, 3)``.

The reference keeps a ReLU right before the normalisation, so every embedding lies in
the non-negative orthant (cosine similarities ≥ 0). ``final_relu=False`` drops it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError

EncoderMode = Literal["spectral", "raster"]
ENCODER_MODES: tuple[str, ...] = ("spectral", "raster")
PaddingMode = Literal["zeros", "reflect", "replicate"]
PADDING_MODES: tuple[str, ...] = ("zeros", "reflect", "replicate")


def spectral_output_length(in_bands: int, n_layers: int, kernel_size: int, stride: int) -> int:
    """Length of the band axis after ``n_layers`` ``Conv1d(kernel_size, stride, padding=kernel_size // 2)``."""
    length = in_bands
    for _ in range(n_layers):
        length = (length + 2 * (kernel_size // 2) - kernel_size) // stride + 1
    return length


def _check_positive_int(owner: str, name: str, value: int, lowest: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or value < lowest:
        raise ConfigError(f"{owner}: {name} must be an integer >= {lowest}, got {value!r}")
    return int(value)


class SpectralSpatialEncoder(nn.Module):
    """Pixel encoder ``(B, C, H, W)`` → unit-norm embeddings ``(B, D, H, W)``.

    Args:
        in_bands: spectral bands C of the input.
        embed_dim: embedding channels D (reference 32).
        n_spectral_layers: convolution layers of the spectral stack (reference 3).
        spectral_kernel_size: kernel of those convolutions (reference constructor 3; its
            scripts use 9). Odd values keep the length (``padding = k // 2``).
        bias: whether convolutions (and the projection) have a bias (reference
            constructor True; its scripts use False).
        mode: ``"spectral"`` (convolution along wavelengths per pixel) or ``"raster"``
            (the reference's flattened-raster Conv1d, for checkpoint parity).
        spectral_channels: feature maps F of the ``"spectral"`` stack (unused by ``"raster"``).
        spectral_stride: stride of each spectral convolution in ``"spectral"`` mode, so the
            band axis shrinks by about this factor per layer.
        final_relu: keep the ReLU before the L2 normalisation (the reference does).
        centre_embeddings: batch-normalise the last spatial convolution's output (no affine
            parameters; running statistics at inference) before the L2 normalisation (hsikit
            option, off by default). A fresh encoder's outputs lie in a narrow cone; centred
            and scaled per channel they spread over the sphere, and training cannot shrink
            every pixel onto one direction (the collapse that batch normalisation prevents in
            SimSiam-style self-supervision).
        padding_mode: padding of the 3 × 3 spatial convolutions (reference ``"zeros"``).

    Shapes:
        ``(B, C, H, W)`` float → ``(B, D, H, W)`` with ``‖e[b, :, i, j]‖₂ = 1`` (a pixel
        whose features are all zero stays zero).
    """

    def __init__(
        self,
        in_bands: int,
        embed_dim: int = 32,
        n_spectral_layers: int = 3,
        spectral_kernel_size: int = 3,
        bias: bool = True,
        mode: EncoderMode = "spectral",
        spectral_channels: int = 16,
        spectral_stride: int = 2,
        final_relu: bool = True,
        padding_mode: PaddingMode = "zeros",
        centre_embeddings: bool = False,
    ) -> None:
        super().__init__()
        owner = "SpectralSpatialEncoder"
        self.in_bands = _check_positive_int(owner, "in_bands", in_bands)
        self.embed_dim = _check_positive_int(owner, "embed_dim", embed_dim)
        n_spectral_layers = _check_positive_int(owner, "n_spectral_layers", n_spectral_layers)
        kernel = _check_positive_int(owner, "spectral_kernel_size", spectral_kernel_size)
        if kernel % 2 == 0:
            raise ConfigError(f"{owner}: spectral_kernel_size must be odd (the padding keeps the length), got {kernel}")
        if mode not in ENCODER_MODES:
            raise ConfigError(f"{owner}: mode must be one of {ENCODER_MODES}, got {mode!r}")
        if padding_mode not in PADDING_MODES:
            raise ConfigError(f"{owner}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.mode = mode
        self.final_relu = bool(final_relu)
        self.centre_embeddings = bool(centre_embeddings)

        layers: list[nn.Module] = []
        if mode == "raster":
            for index in range(n_spectral_layers):
                in_channels = self.in_bands if index == 0 else self.embed_dim
                layers += [nn.Conv1d(in_channels, self.embed_dim, kernel, padding=kernel // 2, bias=bias), nn.ReLU()]
            self.spectral_net = nn.Sequential(*layers)
            self.spectral_projection: nn.Module | None = None
        else:
            channels = _check_positive_int(owner, "spectral_channels", spectral_channels)
            stride = _check_positive_int(owner, "spectral_stride", spectral_stride)
            for index in range(n_spectral_layers):
                in_channels = 1 if index == 0 else channels
                layers += [
                    nn.Conv1d(in_channels, channels, kernel, stride=stride, padding=kernel // 2, bias=bias),
                    nn.ReLU(),
                ]
            self.spectral_net = nn.Sequential(*layers)
            length = spectral_output_length(self.in_bands, n_spectral_layers, kernel, stride)
            self.spectral_projection = nn.Sequential(nn.Linear(channels * length, self.embed_dim, bias=bias), nn.ReLU())

        spatial: list[nn.Module] = [
            nn.Conv2d(self.embed_dim, self.embed_dim, 3, padding=1, bias=bias, padding_mode=padding_mode),
            nn.ReLU(),
            nn.Conv2d(self.embed_dim, self.embed_dim, 3, padding=1, bias=bias, padding_mode=padding_mode),
        ]
        if self.centre_embeddings:
            spatial.append(nn.BatchNorm2d(self.embed_dim, affine=False))
        if self.final_relu:
            spatial.append(nn.ReLU())
        self.spatial_net = nn.Sequential(*spatial)

    def check_input(self, cube: torch.Tensor) -> None:
        """Raise :class:`ShapeMismatchError` unless ``cube`` is a float ``(B, in_bands, H, W)`` tensor."""
        if not isinstance(cube, torch.Tensor) or cube.ndim != 4 or cube.shape[1] != self.in_bands:
            shape = tuple(cube.shape) if isinstance(cube, torch.Tensor) else type(cube).__name__
            raise ShapeMismatchError(
                f"{type(self).__name__}: expected a (B, {self.in_bands}, H, W) batch (bands on axis 1), got {shape}; "
                "give a batch of cubes in (B, C, H, W) layout with the band count the model was built for"
            )
        if not cube.is_floating_point():
            raise ShapeMismatchError(
                f"{type(self).__name__}: expected a floating-point cube, got dtype {cube.dtype}; "
                "convert it with .float()"
            )

    def spectral_features(self, cube: torch.Tensor) -> torch.Tensor:
        """Output of the spectral stack, ``(B, C, H, W)`` → ``(B, D, H, W)`` (before the spatial stack)."""
        batch, bands, height, width = cube.shape
        if self.mode == "raster":
            # Bands are Conv1d channels, the flattened raster is the length: the reference's computation.
            features = self.spectral_net(cube.reshape(batch, bands, height * width))
            return features.reshape(batch, self.embed_dim, height, width)
        spectra = cube.permute(0, 2, 3, 1).reshape(batch * height * width, 1, bands)
        features = self.spectral_net(spectra).flatten(1)
        assert self.spectral_projection is not None
        projected = self.spectral_projection(features)
        return projected.reshape(batch, height, width, self.embed_dim).permute(0, 3, 1, 2)

    def forward(self, cube: torch.Tensor) -> torch.Tensor:
        """Unit-norm pixel embeddings ``(B, D, H, W)`` of a ``(B, C, H, W)`` batch."""
        self.check_input(cube)
        return F.normalize(self.spatial_net(self.spectral_features(cube)), p=2, dim=1)


__all__ = ["ENCODER_MODES", "EncoderMode", "SpectralSpatialEncoder", "spectral_output_length"]
