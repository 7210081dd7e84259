"""Helpers of the viz tests: read a PNG back, count its colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.image import imread


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
