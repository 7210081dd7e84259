"""Spectral similarity: spectral angle (SAM), spectral information divergence (SID), cosine
spectral angle (CSA).

Each function compares spectra ``a`` and ``b`` along one axis (``axis``, default -1: rows
of ``(N, B)`` spectra; use ``axis=0`` for a ``(B, H, W)`` cube, ``axis=1`` for a
``(N, B, H, W)`` tensor). The other axes broadcast, so one reference spectrum of shape
``(B,)`` can be compared with every pixel of ``(H, W, B)`` spectra, or ``(N, 1, B)``
pixels with ``(1, K, B)`` library spectra. The result has the broadcast shape without
the spectral axis.

The functions accept NumPy arrays (computed in float32, or float64 for float64 input)
and torch tensors (computed in the tensor's dtype and device, differentiable). The
definitions follow the deephyp losses (Windrim et al., Remote Sensing 11(7):864, 2019;
ICIP 2016), with ``x_hat = x / sqrt(max(||x||^2, eps))``:

* CSA = ``1 - <a_hat, b_hat>``  — exactly the deephyp formula; in [0, 2].
* SAM = the angle between ``a`` and ``b`` in radians (or degrees), in [0, pi]. deephyp
  writes ``arccos(clamp(<a_hat, b_hat>, -1 + 1e-7, 1 - 1e-7))``; here the same angle is
  computed as ``2 * atan2(||a_hat - b_hat||, ||a_hat + b_hat||)``, which is exact where
  ``arccos`` loses precision (identical spectra give exactly 0 instead of
  ``arccos(1 - 1e-7) = 4.5e-4`` rad, and float32 resolves angles far below 3e-4 rad),
  and has finite gradients everywhere, including identical spectra, without a clamp.
* SID = ``sum_b (p_b - q_b) * (log(p_b + eps) - log(q_b + eps))`` with
  ``p = a / max(sum(a), eps)``, ``q = b / max(sum(b), eps)``: the symmetric
  Kullback-Leibler divergence ``KL(p||q) + KL(q||p)`` of the spectra normalised to sum 1,
  with ``eps`` inside the logs and divisions as in deephyp. SID is defined for
  non-negative spectra: negative values are clipped to 0 first.

Zero vectors: a spectrum with ``||x||^2 <= eps`` has ``x_hat = 0``, so its cosine with
anything is 0: SAM = pi/2 and CSA = 1 (as in deephyp). For SID a zero spectrum has
``p = 0``, giving a large but finite divergence (0 against another zero spectrum).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from hsikit.errors import ShapeMismatchError

SAM_EPS = 1e-12
"""Floor of the squared norm in SAM/CSA (the deephyp value)."""
SID_EPS = 1e-12
"""Floor of the sums and offset inside the logarithms of SID."""


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor cannot exist unless torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def _check_spectral_axis(a_shape: tuple[int, ...], b_shape: tuple[int, ...], axis: int, name: str) -> None:
    for shape in (a_shape, b_shape):
        if not -len(shape) <= axis < len(shape):
            raise ShapeMismatchError(
                f"{name}: spectral axis {axis} does not exist for inputs of shapes {a_shape} and {b_shape}; "
                "pass axis= pointing at the band axis"
            )
    if axis >= 0 and len(a_shape) != len(b_shape):
        raise ShapeMismatchError(
            f"{name}: inputs of shapes {a_shape} and {b_shape} have different numbers of axes, so axis={axis} "
            "is ambiguous; use a negative axis (counted from the end) or add the missing axes "
            "(e.g. spectrum[:, None, None] against a (B, H, W) cube)"
        )
    if a_shape[axis] != b_shape[axis]:
        raise ShapeMismatchError(
            f"{name}: the spectra have {a_shape[axis]} and {b_shape[axis]} bands along axis {axis} "
            f"(shapes {a_shape} and {b_shape}); compare spectra on the same bands (resample first) "
            "or fix axis="
        )


def _numpy_inputs(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a_array, b_array = np.asarray(a), np.asarray(b)
    dtype = np.float64 if np.float64 in (a_array.dtype, b_array.dtype) else np.float32
    return a_array.astype(dtype, copy=False), b_array.astype(dtype, copy=False)


# --------------------------------------------------------------------------- numpy
def _unit_numpy(x: np.ndarray, axis: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    squared = np.sum(x * x, axis=axis, keepdims=True)
    return x / np.sqrt(np.maximum(squared, eps)), squared <= eps


def _sam_numpy(a: np.ndarray, b: np.ndarray, axis: int, eps: float) -> np.ndarray:
    unit_a, zero_a = _unit_numpy(a, axis, eps)
    unit_b, zero_b = _unit_numpy(b, axis, eps)
    difference = np.sqrt(np.sum((unit_a - unit_b) ** 2, axis=axis))
    total = np.sqrt(np.sum((unit_a + unit_b) ** 2, axis=axis))
    angle = 2.0 * np.arctan2(difference, total)
    degenerate = np.squeeze(zero_a | zero_b, axis=axis)
    return np.where(degenerate, np.asarray(np.pi / 2, dtype=angle.dtype), angle)


def _csa_numpy(a: np.ndarray, b: np.ndarray, axis: int, eps: float) -> np.ndarray:
    unit_a, _ = _unit_numpy(a, axis, eps)
    unit_b, _ = _unit_numpy(b, axis, eps)
    return 1.0 - np.sum(unit_a * unit_b, axis=axis)


def _sid_numpy(a: np.ndarray, b: np.ndarray, axis: int, eps: float) -> np.ndarray:
    a = np.clip(a, 0.0, None)
    b = np.clip(b, 0.0, None)
    p = a / np.maximum(np.sum(a, axis=axis, keepdims=True), eps)
    q = b / np.maximum(np.sum(b, axis=axis, keepdims=True), eps)
    return np.sum((p - q) * (np.log(p + eps) - np.log(q + eps)), axis=axis)


# --------------------------------------------------------------------------- torch
def _sam_torch(a: Any, b: Any, axis: int, eps: float) -> Any:
    import torch

    norm_a = torch.linalg.vector_norm(a, dim=axis, keepdim=True)
    norm_b = torch.linalg.vector_norm(b, dim=axis, keepdim=True)
    floor = math.sqrt(eps)
    unit_a = a / norm_a.clamp_min(floor)
    unit_b = b / norm_b.clamp_min(floor)
    difference = torch.linalg.vector_norm(unit_a - unit_b, dim=axis)
    total = torch.linalg.vector_norm(unit_a + unit_b, dim=axis)
    degenerate = ((norm_a <= floor) | (norm_b <= floor)).squeeze(axis)
    # Replace the (0, 0) point of atan2 before calling it: torch.where alone would still
    # propagate its NaN derivative into the gradient.
    safe_total = torch.where(degenerate, torch.ones_like(total), total)
    angle = 2.0 * torch.atan2(difference, safe_total)
    return torch.where(degenerate, torch.full_like(angle, math.pi / 2), angle)


def _csa_torch(a: Any, b: Any, axis: int, eps: float) -> Any:
    unit_a = a / (a * a).sum(dim=axis, keepdim=True).clamp_min(eps).sqrt()
    unit_b = b / (b * b).sum(dim=axis, keepdim=True).clamp_min(eps).sqrt()
    return 1.0 - (unit_a * unit_b).sum(dim=axis)


def _sid_torch(a: Any, b: Any, axis: int, eps: float) -> Any:
    import torch

    a = a.clamp_min(0.0)
    b = b.clamp_min(0.0)
    p = a / a.sum(dim=axis, keepdim=True).clamp_min(eps)
    q = b / b.sum(dim=axis, keepdim=True).clamp_min(eps)
    return ((p - q) * (torch.log(p + eps) - torch.log(q + eps))).sum(dim=axis)


# --------------------------------------------------------------------------- dispatch
def _prepare(a: Any, b: Any, axis: int, name: str) -> tuple[Any, Any, bool]:
    """Both inputs as same-dtype, broadcast arrays or tensors; True when they are tensors."""
    if _is_tensor(a) or _is_tensor(b):
        import torch

        device = a.device if isinstance(a, torch.Tensor) else b.device
        a_tensor = torch.as_tensor(a, device=device)
        b_tensor = torch.as_tensor(b, device=device)
        dtype = torch.promote_types(a_tensor.dtype, b_tensor.dtype)
        if not dtype.is_floating_point:
            dtype = torch.float32
        _check_spectral_axis(tuple(a_tensor.shape), tuple(b_tensor.shape), axis, name)
        a_tensor, b_tensor = torch.broadcast_tensors(a_tensor.to(dtype), b_tensor.to(dtype))
        return a_tensor, b_tensor, True
    a_array, b_array = _numpy_inputs(a, b)
    _check_spectral_axis(a_array.shape, b_array.shape, axis, name)
    try:
        a_array, b_array = np.broadcast_arrays(a_array, b_array)
    except ValueError as error:
        raise ShapeMismatchError(
            f"{name}: spectra of shapes {a_array.shape} and {b_array.shape} do not broadcast against each other"
        ) from error
    return a_array, b_array, False


def spectral_angle(a: Any, b: Any, *, axis: int = -1, degrees: bool = False, eps: float = SAM_EPS) -> Any:
    """Spectral angle (SAM) between ``a`` and ``b`` along ``axis``.

    Args:
        a, b: spectra (NumPy arrays or torch tensors) with the same number of bands along
            ``axis``; other axes broadcast.
        axis: the spectral axis.
        degrees: return degrees instead of radians.
        eps: floor of the squared norm (spectra at or below it count as zero vectors).

    Returns:
        Angles in [0, pi] (or [0, 180]); the broadcast shape without ``axis``. NumPy input
        gives a NumPy array (0-d for single spectra), tensors give a tensor.
    """
    a, b, is_torch = _prepare(a, b, axis, "spectral_angle")
    angle = _sam_torch(a, b, axis, eps) if is_torch else _sam_numpy(a, b, axis, eps)
    return angle * (180.0 / math.pi) if degrees else angle


def cosine_spectral_angle(a: Any, b: Any, *, axis: int = -1, eps: float = SAM_EPS) -> Any:
    """Cosine spectral angle ``1 - <a_hat, b_hat>`` (deephyp CSA), in [0, 2]; see the module docstring."""
    a, b, is_torch = _prepare(a, b, axis, "cosine_spectral_angle")
    return _csa_torch(a, b, axis, eps) if is_torch else _csa_numpy(a, b, axis, eps)


def spectral_information_divergence(a: Any, b: Any, *, axis: int = -1, eps: float = SID_EPS) -> Any:
    """Spectral information divergence (symmetric KL of sum-normalised spectra), >= 0.

    Negative values are clipped to 0 (SID is defined for non-negative spectra); ``eps``
    keeps zeros finite. See the module docstring for the formula.
    """
    a, b, is_torch = _prepare(a, b, axis, "spectral_information_divergence")
    return _sid_torch(a, b, axis, eps) if is_torch else _sid_numpy(a, b, axis, eps)


sam = spectral_angle
"""Short name of :func:`spectral_angle`."""
sid = spectral_information_divergence
"""Short name of :func:`spectral_information_divergence`."""
csa = cosine_spectral_angle
"""Short name of :func:`cosine_spectral_angle`."""

__all__ = [
    "SAM_EPS",
    "SID_EPS",
    "cosine_spectral_angle",
    "csa",
    "sam",
    "sid",
    "spectral_angle",
    "spectral_information_divergence",
]
