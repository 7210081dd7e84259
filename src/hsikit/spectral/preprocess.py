"""Preprocessing of spectra before a spectral network: per-spectrum scalings and fitted band normalisers.

Two families, one interface (:class:`SpectralPreprocessing`):

* **per spectrum** (nothing to fit; each pixel's spectrum is scaled on its own):

  ====================  =====================================================================
  ``deephyp_minmax``    deephyp's ``pre_process('minmax')``, reproduced exactly:
                        ``x' = (x - (min(x) - 1e-3)) / max(x)``. It divides by ``max(x)``, not
                        by ``max - min``, so the result is not exactly in [0, 1]; its smallest
                        value is ``1e-3 / max(x)`` > 0 for positive spectra (SID needs that).
                        A spectrum whose maximum is 0 is divided by 1 instead of 0.
  ``spectrum_minmax``   ``(x - min(x)) / (max(x) - min(x) + 1e-12)``: each spectrum in [0, 1].
  ``spectrum_l2``       ``x / ||x||_2`` (unit norm; 0 stays 0): keeps only the spectral shape.
  ====================  =====================================================================

* **per band**, fitted on training pixels: any :mod:`hsikit.spectral.normalize` name
  (``standardize``, ``minmax`` = per-band min-max, ``global_minmax``, ``scale``, ``none``).

:meth:`SpectralPreprocessing.transform` takes numpy arrays or torch tensors with the bands
on ``band_axis`` (``-1`` for ``(N, B)`` spectra, ``0`` for a ``(B, H, W)`` cube); the
state is plain JSON (:meth:`~SpectralPreprocessing.to_dict`), stored in a model's
``config.json`` so the same preprocessing is applied at inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hsikit.cube import Cube
from hsikit.errors import ConfigError, UnknownNameError
from hsikit.spectral.normalize import Normalizer, create_normalizer, list_normalizers

PREPROCESSING_FORMAT = "hsikit.spectral_preprocessing"
#: the per-spectrum methods (no fitting)
SPECTRUM_METHODS: tuple[str, ...] = ("deephyp_minmax", "spectrum_minmax", "spectrum_l2")
#: deephyp's offset below the spectrum minimum
DEEPHYP_MINMAX_OFFSET = 1e-3
_RANGE_EPS = 1e-12


def list_preprocessing_methods() -> list[str]:
    """Every method name :class:`SpectralPreprocessing` accepts."""
    return [*SPECTRUM_METHODS, *list_normalizers()]


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch")


def preprocess_spectra(spectra: Any, method: str, band_axis: int = -1) -> Any:
    """Apply a per-spectrum method (:data:`SPECTRUM_METHODS`) along ``band_axis``.

    Args:
        spectra: numpy array or torch tensor, any shape with bands on ``band_axis``
            (``(N, B)`` spectra, ``(B, H, W)`` cube...).
        method: ``"deephyp_minmax"``, ``"spectrum_minmax"`` or ``"spectrum_l2"``.
        band_axis: the band axis.

    Returns:
        The same shape: float32 numpy (float64 input stays float64) or a floating tensor.
    """
    if method not in SPECTRUM_METHODS:
        raise UnknownNameError(
            f"unknown per-spectrum preprocessing {method!r}; choose one of {', '.join(SPECTRUM_METHODS)}"
        )
    if _is_tensor(spectra):
        import torch

        x = spectra if spectra.is_floating_point() else spectra.float()
        low = x.amin(dim=band_axis, keepdim=True)
        high = x.amax(dim=band_axis, keepdim=True)
        if method == "deephyp_minmax":
            return (x - (low - DEEPHYP_MINMAX_OFFSET)) / torch.where(high == 0, torch.ones_like(high), high)
        if method == "spectrum_minmax":
            return (x - low) / (high - low + _RANGE_EPS)
        norm = torch.linalg.vector_norm(x, dim=band_axis, keepdim=True)
        return x / torch.where(norm > 0, norm, torch.ones_like(norm))
    array = np.asarray(spectra)
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    x = array.astype(np.float64, copy=False)
    low = x.min(axis=band_axis, keepdims=True)
    high = x.max(axis=band_axis, keepdims=True)
    if method == "deephyp_minmax":
        result = (x - (low - DEEPHYP_MINMAX_OFFSET)) / np.where(high == 0, 1.0, high)
    elif method == "spectrum_minmax":
        result = (x - low) / (high - low + _RANGE_EPS)
    else:
        norm = np.sqrt((x * x).sum(axis=band_axis, keepdims=True))
        result = x / np.where(norm > 0, norm, 1.0)
    return result.astype(dtype, copy=False)


class SpectralPreprocessing:
    """A named preprocessing of spectra, fitted when it needs statistics (see the module docstring).

    Args:
        method: a per-spectrum method or a band normaliser name.
        **options: constructor arguments of a band normaliser (e.g. ``scale=10000`` for ``"scale"``).

    Attributes:
        normalizer: the band :class:`~hsikit.spectral.normalize.Normalizer`, or None for
            per-spectrum methods.
    """

    def __init__(self, method: str = "deephyp_minmax", **options: Any) -> None:
        self.method = str(method)
        self.normalizer: Normalizer | None = None
        if self.method in SPECTRUM_METHODS:
            if options:
                raise ConfigError(f"preprocessing {self.method!r} takes no options, got {sorted(options)}")
        elif self.method in list_normalizers():
            self.normalizer = create_normalizer(self.method, **options)
        else:
            raise UnknownNameError(
                f"unknown preprocessing {self.method!r}; choose one of {', '.join(list_preprocessing_methods())} "
                "(deephyp_minmax reproduces deephyp's 'minmax'; 'minmax' here is the per-band min-max)"
            )

    @property
    def per_spectrum(self) -> bool:
        """True for the per-spectrum methods (no statistics)."""
        return self.normalizer is None

    @property
    def fitted(self) -> bool:
        return self.normalizer is None or self.normalizer.fitted

    def fit(self, source: Cube | np.ndarray, mask: np.ndarray | None = None) -> SpectralPreprocessing:
        """Fit a band normaliser on the pixels of ``source`` ``(B, H, W)`` where ``mask`` ``(H, W)`` is True."""
        if self.normalizer is not None:
            self.normalizer.fit(source, mask=mask)
        return self

    def fit_spectra(self, spectra: np.ndarray) -> SpectralPreprocessing:
        """Fit a band normaliser on training spectra ``(N, B)``."""
        if self.normalizer is not None:
            array = np.asarray(spectra)
            self.normalizer.fit(array.T[:, :, np.newaxis])
        return self

    def transform(self, x: Any, band_axis: int = -1) -> Any:
        """Preprocess ``x`` (numpy or torch) whose bands lie on ``band_axis``; same shape, floating point."""
        if self.normalizer is None:
            return preprocess_spectra(x, self.method, band_axis=band_axis)
        return self.normalizer.transform(x, band_axis=band_axis)

    __call__ = transform

    def to_dict(self) -> dict[str, Any]:
        """JSON state (method and, for band normalisers, the fitted statistics)."""
        return {
            "format": PREPROCESSING_FORMAT,
            "method": self.method,
            "normalizer": None if self.normalizer is None else self.normalizer.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], source: str = "<memory>") -> SpectralPreprocessing:
        """Rebuild from :meth:`to_dict` output."""
        if not isinstance(state, Mapping) or state.get("format") != PREPROCESSING_FORMAT or "method" not in state:
            raise ConfigError(
                f"{source}: not a spectral preprocessing state (expected format {PREPROCESSING_FORMAT!r} and a "
                "'method'); it was not written by SpectralPreprocessing.to_dict"
            )
        method = str(state["method"])
        if method in SPECTRUM_METHODS:
            return cls(method)
        normalizer_state = state.get("normalizer")
        if not isinstance(normalizer_state, Mapping):
            raise ConfigError(f"{source}: preprocessing {method!r} needs its fitted 'normalizer' state")
        preprocessing = cls.__new__(cls)
        preprocessing.method = method
        preprocessing.normalizer = Normalizer.from_dict(normalizer_state, source=source)
        return preprocessing

    def __repr__(self) -> str:
        state = "" if self.per_spectrum else (" [fitted]" if self.fitted else " [not fitted]")
        return f"SpectralPreprocessing({self.method!r}){state}"


__all__ = [
    "DEEPHYP_MINMAX_OFFSET",
    "PREPROCESSING_FORMAT",
    "SPECTRUM_METHODS",
    "SpectralPreprocessing",
    "list_preprocessing_methods",
    "preprocess_spectra",
]
