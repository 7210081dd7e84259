"""Noise robustness of an RGB → hyperspectral model: scores per camera shot-noise level.

:func:`evaluate_noise_robustness` re-simulates the camera RGB of every validation cube with
:func:`hsikit.spectral.simulate.simulate_rgb` (the NTIRE 2022 recipe: camera response,
Poisson shot noise with ``npe`` photo-electrons per unit signal, auto-exposure, 8-bit
quantisation, optional JPEG) at several noise levels, prepares it as the model was trained
(:func:`hsikit.inference.reconstruction.prepare_rgb`), reconstructs the cube on the full frame
and scores it with the MST++ protocol metrics after a border crop
(:func:`hsikit.metrics.reconstruction.reconstruction_metrics`): MRAE, RMSE, PSNR and SAM
(radians), averaged over images. Fewer photo-electrons mean more noise: the relative noise
of a pixel with signal ``s`` is ``1 / sqrt(s · npe)``. ``None`` is the noise-free image
(projection, exposure and quantisation only).

The same seed gives the same noise draw for every model, so models are compared on
identical inputs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hsikit.errors import ConfigError, ShapeMismatchError

DEFAULT_NPE_LEVELS: tuple[float | None, ...] = (None, 3000.0, 750.0, 200.0, 50.0)
"""Photo-electrons per unit signal: noise-free, 4x NTIRE's photon count, NTIRE's 750, then 3.75x and 15x fewer."""


@dataclass(frozen=True)
class NoiseLevelScores:
    """Scores of one noise level, averaged over the images.

    Attributes:
        npe: photo-electrons per unit signal (None: noise-free).
        images: number of images scored.
        mrae, rmse, psnr, sam: protocol metrics (SAM in radians, PSNR in dB after clamping to [0, 1]).
    """

    npe: float | None
    images: int
    mrae: float
    rmse: float
    psnr: float
    sam: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``npe`` None for the noise-free level)."""
        return {"npe": self.npe, "images": self.images, "mrae": self.mrae, "rmse": self.rmse,
                "psnr": self.psnr, "sam": self.sam}  # fmt: skip


def _check_levels(levels: Sequence[float | None]) -> list[float | None]:
    checked: list[float | None] = []
    for level in levels:
        if level is not None and not (math.isfinite(float(level)) and float(level) > 0):
            raise ConfigError(f"noise levels are photo-electrons per unit signal (> 0) or None, got {level!r}")
        checked.append(None if level is None else float(level))
    if not checked:
        raise ConfigError("give at least one noise level")
    return checked


def load_validation_cubes(root: str | os.PathLike, split: str = "valid") -> list[tuple[str, np.ndarray]]:
    """``[(name, cube (C, H, W) float32)]`` of a split of an ARAD-style folder (ARAD-1K or the proxy set)."""
    from hsikit.data.arad import read_spectra, spectra_path, split_names

    names = split_names(Path(root), split, check_split=False)
    return [(name, read_spectra(spectra_path(root, name))) for name in names]


def evaluate_noise_robustness(
    model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    cubes: Sequence[np.ndarray] | Sequence[tuple[str, np.ndarray]],
    *,
    npe_levels: Sequence[float | None] = DEFAULT_NPE_LEVELS,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    crop: int = 128,
    jpeg_quality: int | None = None,
    rgb_norm: str = "minmax",
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[NoiseLevelScores]:
    """Reconstruction scores of ``model`` per shot-noise level (module docstring).

    Args:
        model: maps ``(1, 3, H, W)`` prepared RGB to ``(1, C, H, W)`` cubes (an exported model,
            a task's generator...); a module is put in eval mode.
        cubes: ground-truth cubes ``(C, H, W)`` (or ``(name, cube)`` pairs, as
            :func:`load_validation_cubes` returns).
        npe_levels: photo-electrons per unit signal, None for noise-free.
        wavelengths: band centres in nm (default: 400..700 nm for 31 bands, else required).
        crop: border removed on every side before scoring (128 for ARAD-1K, 25 for the proxy set).
        jpeg_quality: JPEG quality of the simulated images (None: no JPEG, to isolate the shot noise).
        rgb_norm: the model's input normalisation (``"minmax"``: MST++).
        seed: base seed of the noise (image ``i`` uses ``seed + i``, the same for every level and model).
        device: torch device of the model.

    Returns:
        One :class:`NoiseLevelScores` per level, in the order given.
    """
    from hsikit.inference.reconstruction import InputPreparation, prepare_rgb
    from hsikit.metrics.reconstruction import reconstruction_metrics
    from hsikit.spectral.simulate import simulate_rgb

    levels = _check_levels(npe_levels)
    arrays = [item[1] if isinstance(item, tuple) else item for item in cubes]
    if not arrays:
        raise ConfigError("evaluate_noise_robustness needs at least one cube")
    bands = int(np.asarray(arrays[0]).shape[0])
    if wavelengths is None:
        if bands != 31:
            raise ConfigError(f"the cubes have {bands} bands; pass wavelengths= (nm, one per band)")
        wavelengths = np.linspace(400.0, 700.0, 31)
    preparation = InputPreparation(rgb_norm=rgb_norm)
    device = torch.device(device)
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    results: list[NoiseLevelScores] = []
    for level in levels:
        per_image: dict[str, list[float]] = {"mrae": [], "rmse": [], "psnr": [], "sam": []}
        for index, cube in enumerate(arrays):
            cube = np.asarray(cube, dtype=np.float32)
            if cube.ndim != 3 or cube.shape[0] != bands:
                raise ShapeMismatchError(f"cube {index} has shape {cube.shape}; all cubes must be ({bands}, H, W)")
            image = simulate_rgb(
                cube, "ntire2022", wavelengths=wavelengths, noise="none" if level is None else "poisson",
                npe=750.0 if level is None else level, jpeg_quality=jpeg_quality, seed=seed + index,
            )  # fmt: skip
            rgb = torch.from_numpy(prepare_rgb(image, preparation))[None].to(device)
            with torch.inference_mode():
                prediction = model(rgb).float().cpu()
            if prediction.shape[1:] != cube.shape:
                raise ShapeMismatchError(
                    f"the model returned {tuple(prediction.shape)} for a cube of shape {cube.shape}"
                )
            scores = reconstruction_metrics(prediction, torch.from_numpy(cube)[None], crop=crop)
            for name in per_image:
                per_image[name].append(float(scores[name][0]))
        results.append(NoiseLevelScores(level, len(arrays), *(float(np.mean(per_image[n])) for n in per_image)))
    return results


def format_noise_table(rows: Sequence[NoiseLevelScores]) -> str:
    """A plain-text table of :func:`evaluate_noise_robustness` results."""
    lines = [f"{'npe':>8} {'MRAE':>8} {'RMSE':>8} {'PSNR':>7} {'SAM':>7}"]
    for row in rows:
        npe = "clean" if row.npe is None else f"{row.npe:g}"
        lines.append(f"{npe:>8} {row.mrae:8.4f} {row.rmse:8.4f} {row.psnr:7.2f} {row.sam:7.4f}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_NPE_LEVELS",
    "NoiseLevelScores",
    "evaluate_noise_robustness",
    "format_noise_table",
    "load_validation_cubes",
]
