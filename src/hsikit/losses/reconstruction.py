"""Training losses for RGB → hyperspectral reconstruction: MRAE, spectral angle, and their sum.

The MRAE loss is the MST++ training loss (``specs/mstpp_protocol.md`` §4): the mean of
``|ŷ − y| / |y|`` over **all** elements of the batch (pixels of every image pooled, unlike
the per-image mean of the evaluation metric; with equal-size images the two agree). Its
zero handling is shared with :func:`hsikit.metrics.reconstruction.mrae`:

* ``variant="mstpp"`` (default): no epsilon — ARAD-1K targets are strictly positive — and a
  target holding a zero raises :class:`~hsikit.errors.MetricInputError` instead of
  returning ``inf`` (checking costs one device synchronisation per call);
* ``variant="custom"``: zeros of ``|y|`` are replaced by ``1e-8``.

The spectral-angle loss is the mean over all pixels of the batch of the angle between the
predicted and true spectra, in **radians**, computed with
:func:`hsikit.spectral.metrics.spectral_angle` (atan2 form, finite gradients even for
identical spectra, zero spectra count as π/2).

:class:`MRAESAMLoss` is ``mrae_weight · MRAE + sam_weight · SAM``, the objective of the
CNN baseline (:class:`hsikit.models.reconstruction.hscnn.HSCNNR`).

All losses take ``(B, C, H, W)`` tensors (prediction first) and return a 0-d tensor.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.metrics.reconstruction import MraeVariant, relative_error_denominator
from hsikit.spectral.metrics import SAM_EPS, spectral_angle

DEFAULT_SAM_WEIGHT = 0.1
"""Weight of the spectral-angle term (radians) in :class:`MRAESAMLoss` (hsikit's choice;
CSWIN v2 used 0.05 on its radian SAM term)."""


def _check_pair(prediction: torch.Tensor, target: torch.Tensor, loss: str) -> None:
    if prediction.shape != target.shape or prediction.ndim != 4:
        raise ShapeMismatchError(
            f"{loss}: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must both be "
            "(B, C, H, W) tensors of the same shape"
        )


def mrae_loss(prediction: torch.Tensor, target: torch.Tensor, variant: MraeVariant = "mstpp") -> torch.Tensor:
    """``mean(|ŷ − y| / |y|)`` over every element of the batch (0-d tensor)."""
    _check_pair(prediction, target, "mrae_loss")
    denominator = relative_error_denominator(target, variant, metric="mrae_loss")
    return ((prediction - target).abs() / denominator).mean()


def sam_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = SAM_EPS) -> torch.Tensor:
    """Mean spectral angle (radians) over every pixel of the batch (0-d tensor); bands are axis 1."""
    _check_pair(prediction, target, "sam_loss")
    return spectral_angle(prediction, target, axis=1, eps=eps).mean()


class MRAELoss(nn.Module):
    """MST++ training loss: mean relative absolute error over all elements.

    Args:
        variant: ``"mstpp"`` (refuse zero targets) or ``"custom"`` (zeros → 1e-8).
    """

    def __init__(self, variant: MraeVariant = "mstpp") -> None:
        super().__init__()
        if variant not in ("mstpp", "custom"):
            raise ConfigError(f"MRAELoss variant must be 'mstpp' or 'custom', got {variant!r}")
        self.variant = variant

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` prediction and target → 0-d loss."""
        return mrae_loss(prediction, target, self.variant)


class SAMLoss(nn.Module):
    """Mean spectral angle in radians over all pixels.

    Args:
        eps: floor of the squared spectral norm (see :func:`hsikit.spectral.metrics.spectral_angle`).
    """

    def __init__(self, eps: float = SAM_EPS) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` prediction and target → 0-d loss (radians)."""
        return sam_loss(prediction, target, self.eps)


class MRAESAMLoss(nn.Module):
    """``mrae_weight · MRAE + sam_weight · SAM`` (SAM in radians).

    Args:
        mrae_weight: weight of the MRAE term (>= 0).
        sam_weight: weight of the spectral-angle term (>= 0), default 0.1.
        variant: MRAE zero handling, ``"mstpp"`` or ``"custom"``.

    :meth:`components` returns the two unweighted terms and the total, for logging.
    """

    def __init__(
        self, mrae_weight: float = 1.0, sam_weight: float = DEFAULT_SAM_WEIGHT, variant: MraeVariant = "mstpp"
    ) -> None:
        super().__init__()
        if mrae_weight < 0 or sam_weight < 0 or mrae_weight + sam_weight == 0:
            raise ConfigError(
                f"MRAESAMLoss weights must be >= 0 and not both 0, got mrae_weight={mrae_weight}, "
                f"sam_weight={sam_weight}"
            )
        self.mrae = MRAELoss(variant)
        self.sam = SAMLoss()
        self.mrae_weight = float(mrae_weight)
        self.sam_weight = float(sam_weight)

    def components(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"mrae", "sam", "loss"}``: the unweighted terms and the weighted total."""
        mrae_term = self.mrae(prediction, target)
        sam_term = self.sam(prediction, target)
        return {"mrae": mrae_term, "sam": sam_term, "loss": self.mrae_weight * mrae_term + self.sam_weight * sam_term}

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` prediction and target → 0-d weighted loss."""
        return self.components(prediction, target)["loss"]


__all__ = ["DEFAULT_SAM_WEIGHT", "MRAELoss", "MRAESAMLoss", "SAMLoss", "mrae_loss", "sam_loss"]
