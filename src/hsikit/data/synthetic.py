"""Synthetic hyperspectral scenes with known endmembers, abundances and labels.

:func:`make_synthetic_scene` mixes K endmember spectra with spatially coherent abundance
maps (linear mixing model) and adds white Gaussian noise at a given SNR:

* **Endmembers.** From a :class:`~hsikit.spectral.library.SpectralLibrary` (default: the
  USGS 1995 library of the shared data folder). The candidates are the spectra with data
  at every band of the requested range, resampled to the scene's wavelengths; they are
  visited in an order drawn from the seed and taken greedily when their spectral angle to
  every one already taken is at least ``min_angle`` radians. Without the shared data
  (e.g. after ``pip install``), or with ``library="analytic"``, a built-in set of eight
  smooth analytic spectra (:func:`analytic_library`: vegetation, dry grass, soil, water,
  concrete, iron oxide, snow, asphalt) is used instead — so the same seed gives different
  scenes with and without the data; ``scene.library_name`` says which was used.
* **Abundances.** One smooth Gaussian random field per endmember — white noise on a
  coarse lattice (spacing ``feature_size / 2`` pixels) smoothed by separable Gaussian
  kernels, i.e. two small matrix products per field, so a 2048 x 2048 scene takes about a
  second — turned into abundances by a softmax with ``sharpness``: non-negative, summing to
  1 at every pixel, regions dominated by one endmember with soft transitions.
* **Noise.** ``sigma^2 = mean(clean^2) / 10^(snr/10)`` over the whole cube, the same for
  every band (``noise_snr_db=None`` for none).
* **Labels.** ``argmax(abundances) + 1`` as int32, so labels run 1..K and 0 (hsikit's
  "unlabelled") never occurs.

Everything is drawn from ``numpy.random.SeedSequence(seed)`` (separate streams for the
endmember choice, the abundances and the noise), so the same arguments give identical
arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hsikit.cube import Cube
from hsikit.errors import ConfigError, DataFileNotFoundError, DatasetNotAvailableError, WavelengthError
from hsikit.spectral.library import SpectralLibrary, load_usgs_library
from hsikit.spectral.metrics import spectral_angle
from hsikit.spectral.resample import default_fwhm

DEFAULT_WAVELENGTHS = np.arange(400.0, 2500.0 + 5.0, 10.0)
"""Default band centres: 400-2500 nm every 10 nm (211 bands)."""

LibraryChoice = SpectralLibrary | Literal["usgs", "analytic"] | None

# Rows of the cube generated per step, bounding working memory (bands * rows * width floats).
_CHUNK_ELEMENTS = 8 * 2**20


@dataclass
class SyntheticScene:
    """A generated scene and its ground truth.

    Attributes:
        cube: the noisy scene, :class:`~hsikit.cube.Cube` ``(B, H, W)`` float32 with wavelengths (nm).
        labels: ``(H, W)`` int32, ``argmax(abundances) + 1`` (1..K).
        abundances: ``(K, H, W)`` float32, non-negative, summing to 1 over K.
        endmembers: ``(K, B)`` float32 reflectance spectra.
        endmember_names: K names (library names).
        noise_std: standard deviation of the added noise (0 when noise is off).
        library_name: ``"usgs"``, ``"analytic"`` or the given library's source.
        seed: the seed used.
    """

    cube: Cube
    labels: np.ndarray
    abundances: np.ndarray
    endmembers: np.ndarray
    endmember_names: list[str]
    noise_std: float
    library_name: str
    seed: int
    metadata: dict = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        """Names of labels 1..K (``class_names[k - 1]`` is label k): the endmember names."""
        return list(self.endmember_names)

    @property
    def wavelengths(self) -> np.ndarray:
        """Band centres in nm, ``(B,)``."""
        return self.cube.wavelengths

    def clean(self) -> np.ndarray:
        """The noise-free cube ``endmembers^T @ abundances``: ``(B, H, W)`` float32."""
        return np.tensordot(self.endmembers.T, self.abundances, axes=(1, 0)).astype(np.float32)


# --------------------------------------------------------------------------- analytic spectra
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _band(wavelengths: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((wavelengths - centre) / width) ** 2)


def analytic_library(wavelengths: Sequence[float] | np.ndarray = DEFAULT_WAVELENGTHS) -> SpectralLibrary:
    """Eight smooth, physically shaped reflectance spectra evaluated at ``wavelengths`` (nm).

    Hand-made analytic curves (not measurements) with the main features of common
    materials: chlorophyll absorption and the red edge of vegetation, leaf-water bands at
    970/1200/1450/1940 nm, the clay feature of soil near 2200 nm, the falling reflectance
    of water, the iron charge-transfer edge, the ice bands of snow. Values lie in (0, 1).
    Used by :func:`make_synthetic_scene` when no measured library is available.
    """
    w = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    leaf_water = (
        1 - 0.1 * _band(w, 970, 30) - 0.15 * _band(w, 1200, 40) - 0.55 * _band(w, 1450, 60) - 0.65 * _band(w, 1940, 70)
    )
    swir_decline = 1 - 0.35 * _sigmoid((w - 1600) / 250)
    vegetation = (0.04 + 0.06 * _band(w, 550, 35) + 0.46 * _sigmoid((w - 715) / 15)) * leaf_water * swir_decline
    dry_grass = (
        (0.08 + 0.34 * _sigmoid((w - 650) / 120))
        * (1 - 0.2 * _band(w, 1450, 60) - 0.25 * _band(w, 1940, 70))
        * (1 - 0.15 * _band(w, 2100, 40))
    )
    soil = (0.1 + 0.25 * (1 - np.exp(-(w - 350) / 600))) * (
        1 - 0.1 * _band(w, 1400, 40) - 0.15 * _band(w, 1900, 50) - 0.12 * _band(w, 2200, 30)
    )
    water = 0.005 + 0.055 * np.exp(-np.clip(w - 400, 0, None) / 150)
    concrete = (
        (0.28 + 0.06 * _sigmoid((w - 500) / 60)) * (1 - 0.08 * _band(w, 2330, 30)) * (1 - 0.05 * _band(w, 1900, 50))
    )
    iron_oxide = (
        (0.06 + 0.42 * _sigmoid((w - 575) / 25)) * (1 - 0.25 * _band(w, 880, 90)) * (1 - 0.1 * _band(w, 1900, 60))
    )
    snow = (0.95 - 0.9 * _sigmoid((w - 1300) / 150)) * (
        1 - 0.2 * _band(w, 1030, 40) - 0.35 * _band(w, 1250, 50) - 0.25 * _band(w, 2000, 80)
    ) + 0.02
    asphalt = (
        0.03 + 0.1 * (np.clip(w - 350, 0, None) / 2150) ** 2 - 0.008 * _band(w, 1730, 25) - 0.01 * _band(w, 2310, 30)
    )
    names = (
        "analytic green vegetation",
        "analytic dry grass",
        "analytic soil",
        "analytic water",
        "analytic concrete",
        "analytic iron oxide",
        "analytic snow",
        "analytic asphalt",
    )
    spectra = np.stack([vegetation, dry_grass, soil, water, concrete, iron_oxide, snow, asphalt])
    return SpectralLibrary(names, w, np.clip(spectra, 1e-3, 0.999), source="hsikit analytic spectra")


# --------------------------------------------------------------------------- endmembers
def _library_for(choice: LibraryChoice) -> tuple[SpectralLibrary | None, str]:
    """The library to draw from (None = analytic) and its name."""
    if isinstance(choice, SpectralLibrary):
        return choice, choice.source or "custom"
    if choice == "analytic":
        return None, "analytic"
    if choice in (None, "usgs"):
        try:
            return load_usgs_library(), "usgs"
        except (DatasetNotAvailableError, DataFileNotFoundError):
            if choice == "usgs":
                raise
            return None, "analytic"
    raise ConfigError(f"library must be a SpectralLibrary, 'usgs', 'analytic' or None, got {choice!r}")


def _candidate_spectra(
    library: SpectralLibrary | None, wavelengths: np.ndarray, fwhm: np.ndarray | None
) -> SpectralLibrary:
    if library is None:
        return analytic_library(wavelengths)
    complete = library.without_gaps(wavelengths.min(), wavelengths.max())
    if len(complete) == 0:
        raise WavelengthError(
            f"no spectrum of the library {library.source or ''} has data over {wavelengths.min():g}.."
            f"{wavelengths.max():g} nm; choose wavelengths inside its range"
        )
    resampled = complete.resample(wavelengths, fwhm)
    usable = np.isfinite(resampled.spectra).all(axis=1) & (resampled.spectra > 0).all(axis=1)
    return SpectralLibrary(
        tuple(n for n, keep in zip(resampled.names, usable, strict=True) if keep),
        resampled.wavelengths,
        resampled.spectra[usable],
        resampled.fwhm,
        resampled.source,
    )


def _pick_endmembers(
    candidates: SpectralLibrary, count: int, min_angle: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    chosen: list[int] = []
    for index in rng.permutation(len(candidates)):
        spectrum = candidates.spectra[index]
        if chosen and np.min(spectral_angle(candidates.spectra[chosen], spectrum[None, :])) < min_angle:
            continue
        chosen.append(int(index))
        if len(chosen) == count:
            break
    if len(chosen) < count:
        raise ConfigError(
            f"only {len(chosen)} of the {len(candidates)} candidate spectra ({candidates.source}) are at least "
            f"{min_angle:g} rad apart, but n_endmembers={count}; lower n_endmembers or min_angle"
        )
    return candidates.spectra[chosen], [candidates.names[i] for i in chosen]


# --------------------------------------------------------------------------- abundances
def _smoothing_matrix(size: int, spacing: float, padding: int) -> np.ndarray:
    """``(size, lattice)`` Gaussian kernel weights from lattice nodes to pixel centres, unit L2 rows.

    Unit-norm rows give every pixel the same field variance (1), so the field is
    stationary up to the image border.
    """
    lattice = math.ceil(size / spacing) + 2 * padding + 1
    node_positions = (np.arange(lattice) - padding) * spacing
    pixel_positions = np.arange(size) + 0.5
    weights = np.exp(-0.5 * ((pixel_positions[:, None] - node_positions[None, :]) / spacing) ** 2)
    return (weights / np.linalg.norm(weights, axis=1, keepdims=True)).astype(np.float32)


def _abundance_maps(
    rng: np.random.Generator, count: int, height: int, width: int, feature_size: float, sharpness: float
) -> np.ndarray:
    spacing = max(feature_size / 2.0, 0.5)
    padding = 4  # lattice nodes beyond the border: the kernel support (4 sigma) is always complete
    rows = _smoothing_matrix(height, spacing, padding)
    cols = _smoothing_matrix(width, spacing, padding)
    logits = np.empty((count, height, width), dtype=np.float32)
    for k in range(count):
        lattice = rng.standard_normal((rows.shape[1], cols.shape[1]), dtype=np.float32)
        logits[k] = rows @ lattice @ cols.T
    logits *= np.float32(sharpness)
    logits -= logits.max(axis=0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0, keepdims=True)
    return logits


# --------------------------------------------------------------------------- scene
def make_synthetic_scene(
    height: int,
    width: int,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    n_endmembers: int = 5,
    seed: int = 0,
    noise_snr_db: float | None = 40.0,
    library: LibraryChoice = None,
    *,
    feature_size: float = 16.0,
    sharpness: float = 4.0,
    min_angle: float = 0.1,
    endmember_seed: int | None = None,
) -> SyntheticScene:
    """A linear-mixing scene with known endmembers, abundances and labels.

    Args:
        height, width: image size in pixels (any size; 2048 x 2048 is fine).
        wavelengths: band centres in nm (default 400:10:2500, 211 bands). With a library,
            they must lie inside its range (USGS: 383-2508 nm).
        n_endmembers: number of materials K.
        seed: random seed; the same arguments give identical arrays.
        noise_snr_db: signal-to-noise ratio of the added white noise in dB
            (``10 log10(mean(clean^2) / sigma^2)``); None for no noise.
        library: a :class:`SpectralLibrary`, ``"usgs"`` (the shared-data USGS library;
            an error when it is absent), ``"analytic"`` (built-in spectra), or None (USGS
            when available, else analytic).
        feature_size: typical size of an abundance region in pixels (the correlation
            length of the fields).
        sharpness: softmax gain; higher gives purer regions and sharper borders.
        min_angle: smallest spectral angle (radians) between two chosen endmembers.
        endmember_seed: seed of the endmember choice alone (default: ``seed``). Scenes made
            with one ``endmember_seed`` and different ``seed`` values hold the same materials,
            in the same label order, in different layouts (label ``k`` is the same spectrum).

    Returns:
        A :class:`SyntheticScene`.
    """
    if height < 1 or width < 1:
        raise ConfigError(f"height and width must be positive, got {height} x {width}")
    if n_endmembers < 1:
        raise ConfigError(f"n_endmembers must be at least 1, got {n_endmembers}")
    if feature_size <= 0 or sharpness <= 0:
        raise ConfigError(f"feature_size and sharpness must be positive, got {feature_size} and {sharpness}")
    grid = DEFAULT_WAVELENGTHS if wavelengths is None else np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or grid.min() <= 0:
        raise WavelengthError("wavelengths must be positive finite band centres in nm")
    fwhm = default_fwhm(grid) if grid.size > 1 else None

    endmember_stream, abundance_stream, noise_stream = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
    )
    if endmember_seed is not None:
        endmember_stream = np.random.default_rng(np.random.SeedSequence(endmember_seed).spawn(3)[0])
    source_library, library_name = _library_for(library)
    candidates = _candidate_spectra(source_library, grid, fwhm)
    endmembers, names = _pick_endmembers(candidates, n_endmembers, min_angle, endmember_stream)
    endmembers = endmembers.astype(np.float32)
    abundances = _abundance_maps(abundance_stream, n_endmembers, height, width, feature_size, sharpness)
    labels = (np.argmax(abundances, axis=0) + 1).astype(np.int32)

    # mean(clean^2) = trace(E E^T . A A^T) / (B * H * W), without forming the clean cube
    flat = abundances.reshape(n_endmembers, -1).astype(np.float64)
    gram = endmembers.astype(np.float64) @ endmembers.astype(np.float64).T
    signal_power = float(np.sum(gram * (flat @ flat.T))) / (grid.size * flat.shape[1])
    noise_std = 0.0 if noise_snr_db is None else math.sqrt(signal_power / 10.0 ** (noise_snr_db / 10.0))

    data = np.empty((grid.size, height, width), dtype=np.float32)
    mixing = np.ascontiguousarray(endmembers.T)  # (B, K)
    step = max(1, _CHUNK_ELEMENTS // (grid.size * width))
    for start in range(0, height, step):
        stop = min(start + step, height)
        block = np.tensordot(mixing, abundances[:, start:stop], axes=(1, 0))
        if noise_std > 0:
            block += np.float32(noise_std) * noise_stream.standard_normal(block.shape, dtype=np.float32)
        data[:, start:stop] = block

    metadata = {
        "source": "synthetic",
        "seed": int(seed),
        "library": library_name,
        "endmembers": list(names),
        "noise_snr_db": noise_snr_db,
        "units": "reflectance",
    }
    cube = Cube(data, wavelengths=grid, fwhm=fwhm, metadata=metadata, nonfinite="ignore")  # finite by construction
    return SyntheticScene(
        cube=cube,
        labels=labels,
        abundances=abundances,
        endmembers=endmembers,
        endmember_names=list(names),
        noise_std=noise_std,
        library_name=library_name,
        seed=int(seed),
        metadata=dict(metadata),
    )


__all__ = ["DEFAULT_WAVELENGTHS", "SyntheticScene", "analytic_library", "make_synthetic_scene"]
