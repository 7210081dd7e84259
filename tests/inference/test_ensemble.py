"""Eight-way dihedral self-ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit import Cube
from hsikit.errors import ShapeMismatchError
from hsikit.inference import DIHEDRAL_TRANSFORMS, apply_dihedral, dihedral_ensemble, invert_dihedral, predict_scene


def test_transforms_are_the_eight_distinct_symmetries_and_invert() -> None:
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    seen = set()
    for turns, flip in DIHEDRAL_TRANSFORMS:
        moved = apply_dihedral(image, turns, flip)
        assert moved.shape[-2:] == ((3, 4) if turns % 2 == 0 else (4, 3))
        seen.add((tuple(moved.shape), tuple(moved.flatten().tolist())))
        torch.testing.assert_close(invert_dihedral(moved, turns, flip), image, rtol=0, atol=0)
    assert len(seen) == 8


class _SymmetricConv(torch.nn.Module):
    """Equivariant under flips and quarter turns: a kernel with the square's symmetry, then a 1x1 mix."""

    def __init__(self) -> None:
        super().__init__()
        corner, edge, centre = torch.tensor([0.3, -0.5]), torch.tensor([0.7, 0.2]), torch.tensor([-1.0, 0.4])
        kernel = torch.empty(2, 1, 3, 3, dtype=torch.float64)
        for channel in range(2):
            c, e, m = corner[channel], edge[channel], centre[channel]
            kernel[channel, 0] = torch.tensor([[c, e, c], [e, m, e], [c, e, c]])
        self.register_buffer("kernel", kernel.repeat(1, 3, 1, 1) / 3)
        self.mix = torch.nn.Conv2d(2, 3, 1).double()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(torch.nn.functional.conv2d(batch, self.kernel, padding=1))
        return self.mix(hidden)


def test_equivariant_model_is_unchanged_by_the_ensemble(rng) -> None:
    torch.manual_seed(0)
    model = _SymmetricConv()
    cube = Cube(rng.random((3, 45, 38)))
    options = {"tile": 24, "overlap": 8, "margin": 2, "progress": False}
    plain = predict_scene(model, cube, **options)
    ensembled = predict_scene(model, cube, ensemble=True, **options)
    np.testing.assert_allclose(ensembled.data, plain.data, rtol=0, atol=1e-6)


def test_ensemble_equals_mean_of_transformed_whole_image_outputs(rng, conv_stack) -> None:
    model = conv_stack(bands=3, outputs=2, layers=2, seed=5)  # radius 2 <= margin 2
    image = torch.from_numpy(rng.random((3, 40, 33)))
    tiled = predict_scene(
        model, Cube(image.numpy()), tile=20, overlap=6, margin=2, padding="none", ensemble=True, progress=False
    )
    outputs = []
    with torch.no_grad():
        for flip in (False, True):
            flipped = torch.flip(image, dims=(-1,)) if flip else image
            for turns in range(4):
                output = model(torch.rot90(flipped, turns, dims=(1, 2))[None])[0]
                output = torch.rot90(output, 4 - turns, dims=(1, 2))
                outputs.append(torch.flip(output, dims=(-1,)) if flip else output)
    expected = torch.stack(outputs).mean(dim=0).numpy()
    np.testing.assert_allclose(tiled.data, expected, rtol=0, atol=1e-6)
    plain = predict_scene(model, Cube(image.numpy()), tile=20, overlap=6, margin=2, padding="none", progress=False)
    assert np.abs(plain.data - expected).max() > 1e-2, "this model is not equivariant: the ensemble must change it"


def test_ensemble_refuses_models_that_change_size() -> None:
    with pytest.raises(ShapeMismatchError, match="ensemble=False"):
        dihedral_ensemble(lambda x: x[..., :-1, :], torch.zeros(1, 1, 4, 4))
