"""Fixtures for the I/O tests."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from hsikit import Cube


@pytest.fixture
def small_cube(rng: np.random.Generator) -> Cube:
    """5 bands x 20 rows x 30 columns (all axes of different length), float32, UTM 47N, 30 m."""
    return Cube(
        rng.random((5, 20, 30), dtype=np.float32),
        wavelengths=[450.0, 550.0, 650.0, 750.0, 850.0],
        fwhm=[10.0, 11.0, 12.0, 13.0, 14.0],
        band_names=["blue", "green", "red", "red edge", "nir"],
        crs="EPSG:32647",
        transform=Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 3000000.0),
        metadata={"source": "synthetic"},
    )
