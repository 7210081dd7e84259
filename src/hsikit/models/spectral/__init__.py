"""Spectral models: networks that look at one pixel's spectrum at a time (classifiers, autoencoders).

Importing this package registers its architectures.
"""

from hsikit.models.spectral.mlp import SpectralMLP

__all__ = ["SpectralMLP"]
