"""Spectral reconstruction losses of deephyp (Windrim et al., Remote Sensing 11(7):864, 2019; ICIP 2016).

Each loss compares a reconstruction ``r`` with its target ``t``, both ``(N, B)`` spectra
(or ``(N, B, H, W)`` tiles: ``band_axis=1`` is the default and fits both), computes one
value per spectrum and reduces them with ``reduction``:

* ``SSE``: ``sum_b (t_b - r_b)^2``.
* ``CSA``: ``1 - <r_hat, t_hat>`` with ``x_hat = x / sqrt(max(|x|^2, 1e-12))``, in [0, 2]
  (:func:`~hsikit.spectral.metrics.cosine_spectral_angle`).
* ``SA``: the angle between r and t in radians, in [0, pi]
  (:func:`~hsikit.spectral.metrics.spectral_angle`).
* ``SID``: ``KL(p||q) + KL(q||p)`` with ``p = t / sum t`` and ``q = r / sum r``
  (:func:`~hsikit.spectral.metrics.spectral_information_divergence`).

Reduction: ``"mean"`` over spectra (the default here, so the loss and the effective
learning rate do not grow with the batch size), ``"sum"`` (deephyp's choice: reproduce its
training with ``reduction="sum"``) or ``"none"`` (one value per spectrum).

SA: :func:`~hsikit.spectral.metrics.spectral_angle` computes the angle as
``2·atan2(|r_hat - t_hat|, |r_hat + t_hat|)``, equal to deephyp's ``arccos(<r_hat, t_hat>)``
but exact near 0 and with a finite gradient everywhere (0 at identical spectra).
``method="arccos"`` gives deephyp's form with the cosine clamped to
``[-1 + 1e-7, 1 - 1e-7]`` (the original's NaN gradient at identical spectra is what the
clamp removes; the clamped value is ``arccos(1 - 1e-7) ≈ 4.5e-4`` rad there).

SID needs positive spectra (it takes logarithms of the normalised values). deephyp relies
on a sigmoid final activation; this loss *guarantees* it: both spectra are floored at
``eps`` (default 1e-6, well below reflectance-like values in [0, 1]) before they are
normalised to sum 1, so every ``p_b, q_b > 0``, the logarithms are finite and the loss is
finite for zero or negative outputs. Values under ``eps`` get no gradient (the floor is
flat), so a model trained with SID should still end in ``sigmoid`` (or ``relu`` + data
well above ``eps``), as deephyp recommends.

The classifier loss of deephyp, cross-entropy with per-class weights and its
"sum over the weighted samples / number of weighted samples" reduction, is
:func:`balanced_cross_entropy`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError, UnknownNameError
from hsikit.spectral.metrics import cosine_spectral_angle, spectral_angle, spectral_information_divergence

Reduction = Literal["mean", "sum", "none"]
AngleMethod = Literal["atan2", "arccos"]

ARCCOS_CLAMP = 1e-7
"""deephyp SA with ``method="arccos"``: the cosine is clamped to ``[-1 + ARCCOS_CLAMP, 1 - ARCCOS_CLAMP]``."""
SID_FLOOR = 1e-6
"""Default floor of the spectra in the SID loss (see the module docstring)."""


def _check_pair(reconstruction: torch.Tensor, target: torch.Tensor, band_axis: int, name: str) -> int:
    """Validate the pair and return the band axis as a non-negative index."""
    if not isinstance(reconstruction, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise MetricInputError(
            f"{name}: reconstruction and target must be torch tensors, got {type(reconstruction).__name__} and "
            f"{type(target).__name__}; convert with torch.as_tensor"
        )
    if reconstruction.shape != target.shape:
        raise ShapeMismatchError(
            f"{name}: reconstruction {tuple(reconstruction.shape)} and target {tuple(target.shape)} differ in shape; "
            "a reconstruction loss compares spectra one to one (decode to the input's shape)"
        )
    ndim = reconstruction.ndim
    axis = band_axis + ndim if band_axis < 0 else band_axis
    if ndim < 1 or not 0 <= axis < ndim:
        raise ShapeMismatchError(
            f"{name}: band_axis={band_axis} does not exist for tensors of shape {tuple(reconstruction.shape)}; "
            "use band_axis=1 for (N, B) spectra and (N, B, H, W) tiles"
        )
    return axis


def _reduce(values: torch.Tensor, reduction: str, name: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ConfigError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _float_pair(reconstruction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = torch.promote_types(reconstruction.dtype, target.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    return reconstruction.to(dtype), target.to(dtype)


# --------------------------------------------------------------------------- functions


def sse_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, *, reduction: Reduction = "mean", band_axis: int = 1
) -> torch.Tensor:
    """Sum of squared errors over bands, ``sum_b (t_b - r_b)^2`` per spectrum, then ``reduction``.

    Shapes: ``(N, B)`` (or ``(N, B, H, W)``) → scalar (``"none"``: ``(N,)`` or ``(N, H, W)``).
    """
    axis = _check_pair(reconstruction, target, band_axis, "sse_loss")
    reconstruction, target = _float_pair(reconstruction, target)
    return _reduce(((target - reconstruction) ** 2).sum(dim=axis), reduction, "sse_loss")


def csa_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, *, reduction: Reduction = "mean", band_axis: int = 1
) -> torch.Tensor:
    """Cosine spectral angle ``1 - <r_hat, t_hat>`` per spectrum (in [0, 2]), then ``reduction``."""
    axis = _check_pair(reconstruction, target, band_axis, "csa_loss")
    reconstruction, target = _float_pair(reconstruction, target)
    return _reduce(cosine_spectral_angle(reconstruction, target, axis=axis), reduction, "csa_loss")


def spectral_angle_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: Reduction = "mean",
    band_axis: int = 1,
    method: AngleMethod = "atan2",
) -> torch.Tensor:
    """Spectral angle (radians, in [0, pi]) per spectrum, then ``reduction``.

    ``method="atan2"`` (default) is exact with finite gradients everywhere;
    ``method="arccos"`` is deephyp's ``arccos`` of the clamped cosine (see the module docstring).
    """
    axis = _check_pair(reconstruction, target, band_axis, "spectral_angle_loss")
    reconstruction, target = _float_pair(reconstruction, target)
    if method == "atan2":
        angle = spectral_angle(reconstruction, target, axis=axis)
    elif method == "arccos":
        cosine = 1.0 - cosine_spectral_angle(reconstruction, target, axis=axis)
        angle = torch.acos(cosine.clamp(-1.0 + ARCCOS_CLAMP, 1.0 - ARCCOS_CLAMP))
    else:
        raise ConfigError(f"spectral_angle_loss: method must be 'atan2' or 'arccos', got {method!r}")
    return _reduce(angle, reduction, "spectral_angle_loss")


def sid_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: Reduction = "mean",
    band_axis: int = 1,
    eps: float = SID_FLOOR,
) -> torch.Tensor:
    """Spectral information divergence per spectrum (>= 0), then ``reduction``.

    Both spectra are floored at ``eps`` and normalised to sum 1 before the symmetric KL
    divergence, so the loss and its gradient are finite for any input (module docstring).
    """
    axis = _check_pair(reconstruction, target, band_axis, "sid_loss")
    if not (math.isfinite(eps) and eps > 0):
        raise ConfigError(f"sid_loss: eps must be a positive finite number, got {eps!r}")
    reconstruction, target = _float_pair(reconstruction, target)
    divergence = spectral_information_divergence(target.clamp_min(eps), reconstruction.clamp_min(eps), axis=axis)
    return _reduce(divergence, reduction, "sid_loss")


def balanced_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
) -> torch.Tensor:
    """deephyp's classifier loss: weighted cross-entropy averaged over the weighted samples.

    Each sample weighs ``s_n = class_weights[target_n]`` (1 without weights; 0 for unlabelled
    samples, ``target_n == ignore_index`` or negative); the loss is
    ``sum_n s_n · CE_n / #{n : s_n > 0}`` (0 when no sample is labelled). Weights come from
    :func:`hsikit.models.spectral.classifiers.class_balance_weights`.

    Args:
        logits: ``(N, K)``.
        targets: 0-based class indices ``(N,)``.
        class_weights: ``(K,)`` or None.
        ignore_index: target value of unlabelled samples.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ShapeMismatchError(
            f"balanced_cross_entropy: logits must be (N, K) and targets (N,), got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    classes = logits.shape[1]
    targets = targets.long()
    labelled = (targets >= 0) & (targets != ignore_index)
    if bool((targets[labelled] >= classes).any()):
        raise ShapeMismatchError(
            f"balanced_cross_entropy: a target is >= the {classes} classes of the logits; targets are 0-based indices"
        )
    safe_targets = torch.where(labelled, targets, torch.zeros_like(targets))
    per_sample = F.cross_entropy(logits, safe_targets, reduction="none")
    if class_weights is None:
        weights = labelled.to(per_sample.dtype)
    else:
        class_weights = torch.as_tensor(class_weights, dtype=per_sample.dtype, device=logits.device)
        if class_weights.shape != (classes,):
            raise ShapeMismatchError(
                f"balanced_cross_entropy: class_weights has shape {tuple(class_weights.shape)}, expected ({classes},)"
            )
        weights = class_weights[safe_targets] * labelled.to(per_sample.dtype)
    counted = (weights > 0).sum().clamp_min(1)
    return (weights * per_sample).sum() / counted


# --------------------------------------------------------------------------- modules


class _SpectralLoss(nn.Module):
    """Base of the loss modules: keeps ``reduction`` and ``band_axis``."""

    def __init__(self, reduction: Reduction = "mean", band_axis: int = 1) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction
        self.band_axis = int(band_axis)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, band_axis={self.band_axis}"


class SSELoss(_SpectralLoss):
    """:func:`sse_loss` as a module: ``loss(reconstruction, target)``; shapes ``(N, B)`` or ``(N, B, H, W)``."""

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sse_loss(reconstruction, target, reduction=self.reduction, band_axis=self.band_axis)


class CSALoss(_SpectralLoss):
    """:func:`csa_loss` as a module."""

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return csa_loss(reconstruction, target, reduction=self.reduction, band_axis=self.band_axis)


class SpectralAngleLoss(_SpectralLoss):
    """:func:`spectral_angle_loss` as a module; ``method`` ``"atan2"`` (default) or deephyp's ``"arccos"``."""

    def __init__(self, reduction: Reduction = "mean", band_axis: int = 1, method: AngleMethod = "atan2") -> None:
        super().__init__(reduction, band_axis)
        if method not in ("atan2", "arccos"):
            raise ConfigError(f"SpectralAngleLoss: method must be 'atan2' or 'arccos', got {method!r}")
        self.method = method

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return spectral_angle_loss(
            reconstruction, target, reduction=self.reduction, band_axis=self.band_axis, method=self.method
        )


class SIDLoss(_SpectralLoss):
    """:func:`sid_loss` as a module; ``eps`` is the positivity floor."""

    def __init__(self, reduction: Reduction = "mean", band_axis: int = 1, eps: float = SID_FLOOR) -> None:
        super().__init__(reduction, band_axis)
        if not (math.isfinite(eps) and eps > 0):
            raise ConfigError(f"SIDLoss: eps must be a positive finite number, got {eps!r}")
        self.eps = float(eps)

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sid_loss(reconstruction, target, reduction=self.reduction, band_axis=self.band_axis, eps=self.eps)


RECONSTRUCTION_LOSSES: dict[str, type[_SpectralLoss]] = {
    "SSE": SSELoss,
    "CSA": CSALoss,
    "SA": SpectralAngleLoss,
    "SID": SIDLoss,
}
"""deephyp's ``lossFunc`` names → loss modules."""


def create_reconstruction_loss(name: str, **kwargs: object) -> nn.Module:
    """A loss module from deephyp's ``lossFunc`` name (``SSE``, ``CSA``, ``SA``, ``SID``; any case)."""
    cls = RECONSTRUCTION_LOSSES.get(str(name).upper())
    if cls is None:
        raise UnknownNameError(
            f"unknown reconstruction loss {name!r}; choose one of {', '.join(RECONSTRUCTION_LOSSES)} (deephyp lossFunc)"
        )
    try:
        return cls(**kwargs)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"reconstruction loss {name!r}: {exc}") from None


__all__ = [
    "ARCCOS_CLAMP",
    "RECONSTRUCTION_LOSSES",
    "SID_FLOOR",
    "CSALoss",
    "SIDLoss",
    "SSELoss",
    "SpectralAngleLoss",
    "balanced_cross_entropy",
    "create_reconstruction_loss",
    "csa_loss",
    "sid_loss",
    "spectral_angle_loss",
    "sse_loss",
]
