"""Noise-robustness evaluation: per-level protocol scores on re-simulated RGB with shot noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit.errors import ConfigError
from hsikit.inference.noise_robustness import evaluate_noise_robustness, format_noise_table
from hsikit.inference.reconstruction import prepare_rgb
from hsikit.spectral.simulate import simulate_rgb


def _cubes() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:24] / 5.0
    cubes = []
    for index in range(2):
        base = 0.4 + 0.25 * np.sin(yy + index)[None] * np.cos(xx)[None] * np.linspace(0.5, 1.0, 31)[:, None, None]
        cubes.append(np.clip(base + rng.normal(0, 0.01, base.shape), 0.02, 1.0).astype(np.float32))
    return cubes


class Constant(torch.nn.Module):
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return torch.full((rgb.shape[0], 31, *rgb.shape[-2:]), 0.4)


class Oracle(torch.nn.Module):
    """Returns the true cube whatever the input (the scores must then be perfect at every level)."""

    def __init__(self, cubes: list[np.ndarray]) -> None:
        super().__init__()
        self.cubes, self.calls = cubes, 0

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        cube = torch.from_numpy(self.cubes[self.calls % len(self.cubes)])[None]
        self.calls += 1
        return cube


class NoiseSensitiveOracle(torch.nn.Module):
    """The true cube, scaled by ``1 + |input − clean input|``: perfect on the clean RGB, worse with more noise."""

    def __init__(self, cubes: list[np.ndarray]) -> None:
        super().__init__()
        self.cubes, self.calls = cubes, 0
        wavelengths = np.linspace(400, 700, 31)
        self.clean = [
            torch.from_numpy(prepare_rgb(simulate_rgb(c, wavelengths=wavelengths, noise="none", jpeg_quality=None)))
            for c in cubes
        ]

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        index = self.calls % len(self.cubes)
        self.calls += 1
        deviation = (rgb[0] - self.clean[index]).abs().mean(0)
        return (torch.from_numpy(self.cubes[index]) * (1 + deviation))[None]


def test_scores_match_hand_computed_values_and_an_oracle_is_perfect_at_every_level() -> None:
    cubes = _cubes()
    rows = evaluate_noise_robustness(Oracle(cubes), cubes, npe_levels=(None, 750.0, 20.0), crop=3)
    assert [row.npe for row in rows] == [None, 750.0, 20.0]
    for row in rows:
        assert row.images == 2 and row.mrae == 0.0 and row.rmse == 0.0 and row.sam == pytest.approx(0.0, abs=1e-6)
    constant = evaluate_noise_robustness(Constant(), cubes, npe_levels=(None, 50.0), crop=3)
    expected = np.mean([np.mean(np.abs(0.4 - c[:, 3:-3, 3:-3]) / c[:, 3:-3, 3:-3]) for c in cubes])
    assert constant[0].mrae == pytest.approx(expected, rel=1e-5)
    assert constant[1].mrae == pytest.approx(expected, rel=1e-5)  # a constant model ignores the noise
    rmse = np.mean([np.sqrt(np.mean((0.4 - c[:, 3:-3, 3:-3]) ** 2)) for c in cubes])
    assert constant[0].rmse == pytest.approx(rmse, rel=1e-5)


def test_more_shot_noise_degrades_an_input_dependent_model_with_the_same_draw_for_every_model() -> None:
    cubes = _cubes()
    rows = evaluate_noise_robustness(NoiseSensitiveOracle(cubes), cubes, npe_levels=(None, 3000.0, 5.0), crop=3,
                                     seed=4)  # fmt: skip
    assert rows[0].mrae == 0.0 < rows[1].mrae < rows[2].mrae and rows[2].psnr < rows[1].psnr
    again = evaluate_noise_robustness(NoiseSensitiveOracle(cubes), cubes, npe_levels=(5.0,), crop=3, seed=4)
    assert again[0] == rows[2]  # same seed, same noise
    # the noisy input is the NTIRE simulation with Poisson noise and no JPEG
    clean = simulate_rgb(cubes[0], wavelengths=np.linspace(400, 700, 31), noise="none", jpeg_quality=None)
    noisy = simulate_rgb(cubes[0], wavelengths=np.linspace(400, 700, 31), npe=5.0, jpeg_quality=None, seed=4)
    assert np.abs(noisy.astype(float) - clean).mean() > 1.0
    assert "clean" in format_noise_table(rows) and "3000" in format_noise_table(rows)


def test_bad_levels_and_band_counts_are_refused() -> None:
    with pytest.raises(ConfigError, match="photo-electrons"):
        evaluate_noise_robustness(Constant(), _cubes(), npe_levels=(0.0,))
    with pytest.raises(ConfigError, match="wavelengths"):
        evaluate_noise_robustness(Constant(), [np.ones((8, 10, 10), np.float32)], crop=0)
