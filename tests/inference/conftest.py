"""Small models with a known receptive field for the inference tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def make_conv_stack(bands: int, outputs: int, layers: int, seed: int = 0, hidden: int = 6) -> torch.nn.Sequential:
    """``layers`` zero-padded 3x3 convolutions (tanh between), float64.

    Its receptive-field radius is ``layers`` pixels: an output pixel depends on
    the input pixels at most ``layers`` rows/columns away.
    """
    generator = torch.Generator().manual_seed(seed)
    modules: list[torch.nn.Module] = []
    channels = bands
    for index in range(layers):
        last = index == layers - 1
        conv = torch.nn.Conv2d(channels, outputs if last else hidden, kernel_size=3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.4)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator) * 0.1)
        modules.append(conv)
        if not last:
            modules.append(torch.nn.Tanh())
        channels = hidden
    return torch.nn.Sequential(*modules).double().eval()


@pytest.fixture
def conv_stack() -> Callable[..., torch.nn.Sequential]:
    """Factory: ``conv_stack(bands, outputs, layers, seed=0)``."""
    return make_conv_stack


def whole_image(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The model run once on a whole ``(bands, H, W)`` image: ``(K, H, W)``."""
    with torch.no_grad():
        return model(image[None])[0]


@pytest.fixture
def run_whole() -> Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]:
    """Reference: the model on the whole image at once."""
    return whole_image
