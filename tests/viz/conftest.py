"""Fixtures of the viz tests: the real Indian Pines scene, and PNG checks."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from hsikit import Cube

INDIAN_PINES_CLASSES = [
    "Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees", "Grass-pasture-mowed",
    "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill", "Soybean-clean", "Wheat", "Woods",
    "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers",
]


@pytest.fixture(scope="session")
def indian_pines(shared_data: Path) -> tuple[Cube, np.ndarray]:
    """Indian Pines (200 bands, 145 x 145) with its AVIRIS wavelengths, and its (H, W) labels."""
    folder = shared_data / "indian_pines"
    centres, widths = [], []
    with open(folder / "indian_pines_wavelengths.csv", newline="") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            if row["in_corrected_200"] == "1":  # the 200 bands kept in the corrected cube
                centres.append(float(row["center_nm"]))
                widths.append(float(row["fwhm_nm"]))
    cube = Cube.from_hwc(
        np.load(folder / "Indian_pines_corrected.npy"),
        wavelengths=centres,
        fwhm=widths,
        metadata={"source": str(folder / "Indian_pines_corrected.npy")},
    )
    return cube, np.load(folder / "Indian_pines_gt.npy").astype(np.int64)


@pytest.fixture(scope="session")
def indian_pines_class_names() -> list[str]:
    """The names of Indian Pines classes 1..16."""
    return list(INDIAN_PINES_CLASSES)


def read_png(path: Path) -> np.ndarray:
    """A PNG as uint8 (H, W, 4) RGBA."""
    image = imread(path)
    if image.dtype != np.uint8:
        image = np.round(image * 255).astype(np.uint8)
    if image.shape[2] == 3:
        image = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return image


def distinct_colours(image: np.ndarray) -> int:
    """Number of distinct RGB colours of an (H, W, 3|4) uint8 image."""
    return int(np.unique(image[..., :3].reshape(-1, 3), axis=0).shape[0])


@pytest.fixture(name="read_png")
def read_png_fixture() -> Callable[[Path], np.ndarray]:
    """:func:`read_png` for tests (fixtures work under every pytest import mode)."""
    return read_png


@pytest.fixture(name="distinct_colours")
def distinct_colours_fixture() -> Callable[[np.ndarray], int]:
    """:func:`distinct_colours` for tests."""
    return distinct_colours
