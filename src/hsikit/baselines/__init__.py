"""hsikit.baselines: classical (non-deep) reference methods, e.g. the RBF SVM on spectra."""

from hsikit.baselines.svm import SpectralSVM

__all__ = ["SpectralSVM"]
