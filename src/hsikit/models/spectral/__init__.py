"""Spectral models: networks that look at one pixel's spectrum at a time (classifiers, autoencoders).

Importing this package registers its architectures.
"""

from hsikit.models.spectral.autoencoders import DeephypConvAutoencoder, DeephypMLPAutoencoder
from hsikit.models.spectral.classifiers import DeephypCNNClassifier, HybridSN, class_balance_weights
from hsikit.models.spectral.mlp import SpectralMLP

__all__ = [
    "DeephypCNNClassifier",
    "DeephypConvAutoencoder",
    "DeephypMLPAutoencoder",
    "HybridSN",
    "SpectralMLP",
    "class_balance_weights",
]
