"""Segmentation losses of SSMGNet (Lecheng-Wang/SSMGNet, ``train.py`` and ``utils/focal.py``).

* :func:`segmentation_loss` - class-weighted cross-entropy (``"ce"``, PyTorch's mean: divided
  by the summed weights of the scored pixels) or :class:`FocalLoss` (``"focal"``, mean over
  the scored pixels).
* :class:`FocalLoss` - ``α_y (1 − p_t)^γ · CE`` per pixel, with ``p_t = exp(−CE)``.
* :class:`AttentionWeightSchedule` - the weight λ of the attention MSE: 6 for epochs 1–9,
  halved at the start of every epoch whose 1-based index is a multiple of 10 (3 for epochs
  10–19, 1.5 for 20–29, …).
* :func:`class_weights_from_counts` - class weights from the training pixels' class counts
  (the reference hard-coded ``[0.03247, 0.25926, 0.70827]`` for its 3 glacier classes).

The total SSMGNet loss is ``L_seg + λ(epoch) · MSE(attention, target)``; the attention
target comes from :mod:`hsikit.losses.attention`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError

SegmentationLossName = Literal["ce", "focal"]
SEGMENTATION_LOSSES: tuple[str, ...] = ("ce", "focal")
ClassWeighting = Literal["inverse_frequency", "median_frequency"]
CLASS_WEIGHTINGS: tuple[str, ...] = ("inverse_frequency", "median_frequency")

#: the reference's hard-coded cross-entropy / focal weights for background, clean glacier, debris glacier
GLACIER_CLASS_WEIGHTS: tuple[float, float, float] = (0.03247, 0.25926, 0.70827)


def _check_targets(logits: torch.Tensor, target: torch.Tensor, owner: str) -> None:
    if logits.ndim < 2 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ShapeMismatchError(
            f"{owner}: logits {tuple(logits.shape)} need targets of shape (B, *spatial) = "
            f"{tuple(logits.shape[:1] + logits.shape[2:])}, got {tuple(target.shape)}"
        )


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) for dense classification, SSMGNet's variant.

    Per scored pixel with true class y: ``ce = −log softmax(logits)_y``, ``p_t = exp(−ce)``,
    ``loss = α_y (1 − p_t)^γ ce``. Pixels whose target is ``ignore_index`` contribute 0 and
    are not counted; the mean divides by the number of scored pixels (at least 1).

    Args:
        alpha: per-class weights ``(K,)`` (None: 1 for every class).
        gamma: focusing exponent γ ≥ 0 (γ = 0 and no α give the plain cross-entropy).
        ignore_index: target value of unscored pixels.
        reduction: ``"mean"`` (over scored pixels), ``"sum"`` or ``"none"`` (per pixel, 0 where ignored).

    Shapes:
        ``logits (B, K, H, W)``, ``target (B, H, W)`` int64 → scalar (or ``(B, H, W)``).
    """

    def __init__(
        self,
        alpha: Sequence[float] | torch.Tensor | None = None,
        gamma: float = 2.0,
        ignore_index: int = -100,
        reduction: Literal["mean", "sum", "none"] = "mean",
    ) -> None:
        super().__init__()
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ConfigError(f"FocalLoss: gamma must be a finite number >= 0, got {gamma!r}")
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"FocalLoss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        weights = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32).reshape(-1)
        if weights is not None and (not torch.isfinite(weights).all() or (weights < 0).any()):
            raise ConfigError(f"FocalLoss: alpha must hold finite weights >= 0, got {weights.tolist()}")
        self.register_buffer("alpha", weights, persistent=False)
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of ``logits (B, K, ...)`` against class indices ``target (B, ...)``."""
        _check_targets(logits, target, "FocalLoss")
        if self.alpha is not None and self.alpha.numel() != logits.shape[1]:
            raise ShapeMismatchError(
                f"FocalLoss: {self.alpha.numel()} class weights (alpha) for logits with {logits.shape[1]} classes"
            )
        ce = F.cross_entropy(logits.float(), target, reduction="none", ignore_index=self.ignore_index)
        scored = target != self.ignore_index
        p_true = torch.exp(-ce)
        loss = (1.0 - p_true).pow(self.gamma) * ce
        if self.alpha is not None:
            safe_target = torch.where(scored, target, torch.zeros_like(target))
            loss = loss * self.alpha.to(loss.device)[safe_target]
        loss = torch.where(scored, loss, torch.zeros_like(loss))
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / scored.sum().clamp(min=1)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, ignore_index={self.ignore_index}, alpha={self.alpha is not None}"


def segmentation_loss(
    name: SegmentationLossName = "ce",
    class_weights: Sequence[float] | None = None,
    ignore_index: int = -100,
    focal_gamma: float = 2.0,
) -> nn.Module:
    """The segmentation loss module: weighted cross-entropy or focal loss.

    Args:
        name: ``"ce"`` (``nn.CrossEntropyLoss``: its mean divides by the summed weights of the
            scored pixels) or ``"focal"`` (:class:`FocalLoss`: mean over the scored pixels).
        class_weights: per-class weights ``(K,)`` (the focal loss's α), or None.
        ignore_index: target value of unscored pixels.
        focal_gamma: γ of the focal loss.
    """
    if name not in SEGMENTATION_LOSSES:
        raise ConfigError(f"unknown segmentation loss {name!r}; choose one of {', '.join(SEGMENTATION_LOSSES)}")
    weights = None if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)
    if name == "focal":
        return FocalLoss(weights, gamma=focal_gamma, ignore_index=ignore_index)
    return nn.CrossEntropyLoss(weight=weights, ignore_index=ignore_index)


def class_weights_from_counts(
    counts: Sequence[int] | np.ndarray, method: ClassWeighting = "inverse_frequency"
) -> list[float]:
    """Class weights from the number of training pixels of each class.

    * ``"inverse_frequency"``: ``w_k ∝ 1 / n_k``, normalised to sum to 1 (the form of the
      reference's hard-coded weights);
    * ``"median_frequency"``: ``w_k = median(f) / f_k`` with ``f_k = n_k / N`` (Eigen & Fergus 2015).

    A class with no training pixel gets weight 0 (it has no target pixel to weigh).

    Raises:
        ConfigError: unknown method, negative counts, or no pixel at all.
    """
    if method not in CLASS_WEIGHTINGS:
        raise ConfigError(f"unknown class weighting {method!r}; choose one of {', '.join(CLASS_WEIGHTINGS)}")
    values = np.asarray(counts, dtype=np.float64).reshape(-1)
    if values.size == 0 or np.any(values < 0) or not np.all(np.isfinite(values)) or values.sum() == 0:
        raise ConfigError(
            f"class weights need non-negative pixel counts with at least one pixel, got {values.tolist()}"
        )
    present = values > 0
    weights = np.zeros_like(values)
    if method == "inverse_frequency":
        weights[present] = 1.0 / values[present]
        weights /= weights.sum()
    else:
        frequency = values / values.sum()
        weights[present] = np.median(frequency[present]) / frequency[present]
    return [float(w) for w in weights]


class AttentionWeightSchedule:
    """The weight λ of the attention loss at a given epoch.

    ``λ(e) = initial · 0.5 ** floor(e / halve_every)`` for the **1-based** epoch e (the
    reference halves λ at the start of epochs 10, 20, …); ``halve_every = 0`` keeps λ constant.

    Args:
        initial: λ of the first epochs (the reference: 6).
        halve_every: epochs between halvings (the reference: 10).
    """

    def __init__(self, initial: float = 6.0, halve_every: int = 10) -> None:
        if not (math.isfinite(initial) and initial >= 0):
            raise ConfigError(f"the attention weight must be a finite number >= 0, got {initial!r}")
        if int(halve_every) != halve_every or halve_every < 0:
            raise ConfigError(f"attention_halve_every must be an integer >= 0 (0: never halve), got {halve_every!r}")
        self.initial = float(initial)
        self.halve_every = int(halve_every)

    def __call__(self, epoch: int) -> float:
        """λ for the 1-based ``epoch`` (Lightning's ``current_epoch + 1``)."""
        if epoch < 1:
            raise ConfigError(f"epochs are counted from 1 here, got {epoch}")
        if self.halve_every == 0:
            return self.initial
        return self.initial * 0.5 ** (epoch // self.halve_every)

    def __repr__(self) -> str:
        return f"AttentionWeightSchedule(initial={self.initial}, halve_every={self.halve_every})"


__all__ = [
    "CLASS_WEIGHTINGS",
    "GLACIER_CLASS_WEIGHTS",
    "SEGMENTATION_LOSSES",
    "AttentionWeightSchedule",
    "ClassWeighting",
    "FocalLoss",
    "SegmentationLossName",
    "class_weights_from_counts",
    "segmentation_loss",
]
