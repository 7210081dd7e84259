"""HSCNN-R style residual CNN baseline: size, shapes, global residual, learning on real spectra."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.reconstruction import MRAESAMLoss
from hsikit.models import create_model, list_models, model_spec, tiny_model_arguments
from hsikit.models.reconstruction import HSCNNR


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def expected_parameters(in_channels: int, out_channels: int, features: int, blocks: int) -> int:
    conv_in = in_channels * features * 9 + features
    block = 2 * (features * features * 9 + features)
    conv_out = features * out_channels * 9 + out_channels
    projection = in_channels * out_channels + out_channels
    return conv_in + blocks * block + conv_out + projection


def test_default_size_is_the_documented_one() -> None:
    model = HSCNNR()
    assert sum(p.numel() for p in model.parameters()) == expected_parameters(3, 31, 64, 16) == 1_201_499
    assert len(model.blocks) == 16 and model.conv_in.out_channels == 64


@pytest.mark.parametrize("size", [(32, 32), (37, 53), (1, 1)])
def test_any_size_maps_rgb_to_31_bands(size: tuple[int, int]) -> None:
    model = create_model("hscnn_r", **tiny_model_arguments("hscnn_r")).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, *size)).shape == (2, 31, *size)


def test_full_size_forward() -> None:
    with torch.no_grad():
        spectra = HSCNNR().eval()(torch.rand(1, 3, 32, 40))
    assert spectra.shape == (1, 31, 32, 40) and torch.isfinite(spectra).all()


def test_global_residual_is_the_learned_linear_rgb_to_spectra_map() -> None:
    model = HSCNNR(features=8, num_blocks=1).eval()
    with torch.no_grad():
        model.conv_out.weight.zero_()
        model.conv_out.bias.zero_()
        rgb = torch.rand(1, 3, 6, 7)
        weight = model.spectral_projection.weight[:, :, 0, 0]  # (31, 3)
        expected = torch.einsum("oc,bchw->bohw", weight, rgb) + model.spectral_projection.bias.view(1, 31, 1, 1)
        torch.testing.assert_close(model(rgb), expected)


def test_wrong_input_and_arguments_are_refused() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(B, 3, H, W\)"):
        HSCNNR()(torch.rand(1, 31, 8, 8))
    with pytest.raises(ConfigError, match="num_blocks >= 0"):
        HSCNNR(features=0)


def test_registry_entry() -> None:
    assert "hscnn_r" in list_models(task="reconstruction")
    name, arguments = model_spec(create_model("hscnn_r", features=16, num_blocks=2))
    assert (name, arguments) == ("hscnn_r", {"in_channels": 3, "out_channels": 31, "features": 16, "num_blocks": 2})


def test_learns_to_reconstruct_real_spectra_from_simulated_rgb(shared_data: Path) -> None:
    """Indian Pines 400..694 nm (31 bands) as target, RGB through the NTIRE 2022 camera as input."""
    cube = np.load(shared_data / "indian_pines" / "Indian_pines_corrected.npy")[:32, :32, :31].astype(np.float64)
    with open(shared_data / "indian_pines" / "indian_pines_wavelengths.csv") as handle:
        rows = [row for row in csv.reader(line for line in handle if not line.startswith("#"))][1:]
    wavelengths = np.array([float(row[1]) for row in rows if row[6] == "1"][:31])
    table = np.genfromtxt(shared_data / "color" / "ntire2022_RGB_Camera_QE.csv", delimiter=",", names=True)
    names = table.dtype.names
    camera = np.stack([np.interp(wavelengths, table[names[0]], table[c]) for c in (names[1], names[2], names[4])])
    spectra = np.ascontiguousarray(np.moveaxis(cube / cube.max(), -1, 0))  # (31, 32, 32), strictly positive
    rgb = np.einsum("kc,chw->khw", camera, spectra)
    rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min())  # MST++ per-image min-max input normalisation
    target = torch.from_numpy(spectra).float()[None]
    inputs = torch.from_numpy(rgb).float()[None]

    torch.manual_seed(0)
    model = create_model("hscnn_r", **tiny_model_arguments("hscnn_r"))
    loss_fn = MRAESAMLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        initial = loss_fn(model(inputs), target).item()
    for _ in range(40):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), target)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = loss_fn.components(model(inputs), target)
    assert final["loss"].item() < 0.2 * initial  # about 0.1 of the initial loss over seeds 0..2
    assert final["mrae"].item() < 0.15
