"""Overlapping two-crop augmentation of Deep Global Clustering, with the geometry the consistency loss needs.

:class:`TwoCropAugmentation` turns a batch of scenes ``(B, C, H, W)`` (already on the
training device) into two augmented *views* per scene, as the reference's
``AugmentationPipeline`` (b05611038/HSI_global_clustering, ``hsi_processing.py``) does:

1. **Overlapping crop pair.** Crop 1 starts at a uniform ``(y0, x0)``; an overlap
   fraction ``f ~ U(min_overlap, max_overlap)`` bounds the offset of crop 2 along each
   axis by ``s = int((1 − f)·size)``: ``dy ~ U{−s_y..s_y}``, ``dx ~ U{−s_x..s_x}``, and
   crop 2 starts at ``(y0 + dy, x0 + dx)`` clamped into the scene, so the two crops share
   at least ``f`` of their height and of their width.
2. **Random affine** per crop (own draw for each of the 2B crops): rotation
   ``U(−degrees, degrees)``, scale ``U(scale_range)``, translation ``U(−translate,
   translate)`` of the crop size, as the matrix ``θ = [[s cos a, −s sin a, t_x],
   [s sin a, s cos a, t_y]]`` given to ``affine_grid`` (normalised coordinates) and
   ``grid_sample(bilinear, padding_mode="reflection", align_corners=False)``.
3. **Wavelength shift** per crop by an integer ``U{−max_band_shift..max_band_shift}``
   bands. **Fix:** the reference rolled the spectrum *circularly*, so the last bands
   (near-infrared) re-entered at the blue end. Here the shift is not circular: the
   bands that enter at one end repeat the edge band (``band_shift_mode="edge"``,
   default) or are zero (``"zeros"``).

What the reference did not keep, and the loss needs: each view's
:class:`~hsikit.losses.clustering.ViewGeometry` (crop origin and ``θ``), so that
:class:`~hsikit.losses.clustering.ClusteringLoss` compares the two views' assignments at
the *same scene points* (the reference compared equal pixel indices of offset,
independently warped crops, i.e. different points), and a valid-pixel mask per view.

Scenes smaller than the crop are padded on the bottom/right by edge replication (the
reference's reflect padding fails when the padding is as large as the image) and the
padded pixels are marked invalid, as are the padding pixels of a batch of scenes of
different sizes (the ``valid`` input), so they never enter the losses or the centroid
update.

Random numbers come from ``generator`` (CPU) or torch's global CPU generator; only the
resulting matrices move to the batch's device. Under hsikit's ``StepSeed`` callback the
draws of a training step depend only on its position in training, so a resumed run
augments exactly like an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.clustering import ViewGeometry

BandShiftMode = Literal["edge", "zeros"]
BAND_SHIFT_MODES: tuple[str, ...] = ("edge", "zeros")


@dataclass
class CropPair:
    """Two augmented views of a batch of scenes and where their pixels come from.

    Attributes:
        view1, view2: ``(B, C, h, w)`` augmented crops.
        geometry1, geometry2: crop origin ``(B, 2)`` (row, column in the padded scene, pixels)
            and affine matrix ``(B, 2, 3)`` of each view.
        mask1, mask2: ``(B, h, w)`` bool, True where the view's pixel was sampled from
            valid scene pixels (not from padding).
        band_shift1, band_shift2: ``(B,)`` int64 band shift applied to each view (positive:
            the spectrum moved towards longer wavelengths, band ``c`` holds input band ``c − s``).
    """

    view1: torch.Tensor
    view2: torch.Tensor
    geometry1: ViewGeometry
    geometry2: ViewGeometry
    mask1: torch.Tensor
    mask2: torch.Tensor
    band_shift1: torch.Tensor
    band_shift2: torch.Tensor


def shift_bands(cube: torch.Tensor, shifts: torch.Tensor | Sequence[int], mode: BandShiftMode = "edge") -> torch.Tensor:
    """Shift each sample's spectrum by an integer number of bands, without wrapping around.

    Args:
        cube: ``(B, C, h, w)``.
        shifts: ``(B,)`` integers; sample ``b`` gets ``out[b, c] = cube[b, c − shifts[b]]``.
        mode: what fills the bands that enter at one end: ``"edge"`` repeats the first/last
            band, ``"zeros"`` puts 0.

    Returns:
        ``(B, C, h, w)``; a shift of 0 returns the sample unchanged.
    """
    if mode not in BAND_SHIFT_MODES:
        raise ConfigError(f"shift_bands: mode must be one of {BAND_SHIFT_MODES}, got {mode!r}")
    if cube.ndim != 4:
        raise ShapeMismatchError(f"shift_bands: expected a (B, C, h, w) batch, got {tuple(cube.shape)}")
    amounts = torch.as_tensor(shifts, dtype=torch.int64).reshape(-1).cpu()
    if amounts.numel() != cube.shape[0]:
        raise ShapeMismatchError(f"shift_bands: {amounts.numel()} shifts for a batch of {cube.shape[0]}")
    bands = cube.shape[1]
    positions = torch.arange(bands)
    shifted = []
    for sample, amount in zip(cube, amounts.tolist()):
        if amount == 0:
            shifted.append(sample)
            continue
        source = positions - amount
        index = source.clamp(0, bands - 1).to(cube.device)
        moved = sample.index_select(0, index)
        if mode == "zeros":
            inside = ((source >= 0) & (source < bands)).to(device=cube.device, dtype=cube.dtype)
            moved = moved * inside.reshape(bands, 1, 1)
        shifted.append(moved)
    return torch.stack(shifted)


class TwoCropAugmentation:
    """Overlapping crop pair + random affine + non-circular wavelength shift (see the module docstring).

    Args:
        crop_size: ``h`` or ``(h, w)`` of each crop in pixels (reference 64 × 64).
        min_overlap, max_overlap: range of the overlap fraction per axis (reference 0.2, 0.8).
        degrees: largest rotation in degrees (reference 10; 0 = no rotation).
        translate: largest translation as a fraction of the crop size (reference 0.1).
        scale_range: range of the zoom factor (reference 0.9–1.1).
        max_band_shift: largest wavelength shift in bands (reference 2; 0 = none).
        band_shift_mode: ``"edge"`` or ``"zeros"`` (the reference's circular roll is not offered).
        affine: apply the random affine (False: pure crops, views are pixel grids of the scene).

    Call with a batch ``(B, C, H, W)`` and optionally its valid mask ``(B, H, W)``; returns a
    :class:`CropPair`.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int] = 64,
        min_overlap: float = 0.2,
        max_overlap: float = 0.8,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale_range: Sequence[float] = (0.9, 1.1),
        max_band_shift: int = 2,
        band_shift_mode: BandShiftMode = "edge",
        affine: bool = True,
    ) -> None:
        size = [int(crop_size)] * 2 if isinstance(crop_size, (int, float)) else [int(v) for v in crop_size]
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"TwoCropAugmentation: crop_size must be an int or (h, w) >= 1, got {crop_size!r}")
        if not 0.0 <= min_overlap <= max_overlap <= 1.0:
            raise ConfigError(
                "TwoCropAugmentation: need 0 <= min_overlap <= max_overlap <= 1, got "
                f"min_overlap={min_overlap!r}, max_overlap={max_overlap!r}"
            )
        if degrees < 0 or translate < 0:
            raise ConfigError(f"TwoCropAugmentation: degrees and translate must be >= 0, got {degrees!r}, {translate!r}")
        scales = [float(v) for v in scale_range]
        if len(scales) != 2 or not 0 < scales[0] <= scales[1]:
            raise ConfigError(f"TwoCropAugmentation: scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        if isinstance(max_band_shift, bool) or int(max_band_shift) != max_band_shift or max_band_shift < 0:
            raise ConfigError(f"TwoCropAugmentation: max_band_shift must be an integer >= 0, got {max_band_shift!r}")
        if band_shift_mode not in BAND_SHIFT_MODES:
            raise ConfigError(
                f"TwoCropAugmentation: band_shift_mode must be one of {BAND_SHIFT_MODES}, got {band_shift_mode!r} "
                "(the reference's circular roll wraps the near-infrared onto the blue end and is not offered)"
            )
        self.crop_size = (size[0], size[1])
        self.min_overlap = float(min_overlap)
        self.max_overlap = float(max_overlap)
        self.degrees = float(degrees)
        self.translate = float(translate)
        self.scale_range = (scales[0], scales[1])
        self.max_band_shift = int(max_band_shift)
        self.band_shift_mode = band_shift_mode
        self.affine = bool(affine)

    # ------------------------------------------------------------------ random draws (CPU)
    @staticmethod
    def _uniform(count: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)

    @staticmethod
    def _integers(
        count: int, low: torch.Tensor | int, high: torch.Tensor | int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Uniform integers in ``[low, high]`` (inclusive, elementwise)."""
        low_t = torch.as_tensor(low, dtype=torch.int64).expand(count)
        high_t = torch.as_tensor(high, dtype=torch.int64).expand(count)
        span = (high_t - low_t + 1).double()
        return low_t + (torch.rand(count, generator=generator, dtype=torch.float64) * span).floor().long()

    def _thetas(self, count: int, generator: torch.Generator | None) -> torch.Tensor:
        """``(count, 2, 3)`` float64 affine matrices (identity without ``affine``)."""
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
        if not self.affine:
            return identity.expand(count, 2, 3).clone()
        angle = self._uniform(count, -self.degrees, self.degrees, generator) * math.pi / 180.0
        scale = self._uniform(count, *self.scale_range, generator)
        # A translation of t·size pixels is 2t in normalised coordinates (the crop spans [−1, 1]).
        shift_x = self._uniform(count, -self.translate, self.translate, generator) * 2.0
        shift_y = self._uniform(count, -self.translate, self.translate, generator) * 2.0
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        return torch.stack(
            [torch.stack([cos, -sin, shift_x], dim=1), torch.stack([sin, cos, shift_y], dim=1)], dim=1
        )

    # ------------------------------------------------------------------ the augmentation
    def __call__(
        self,
        batch: torch.Tensor,
        valid: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> CropPair:
        """Two views of every scene of ``batch`` ``(B, C, H, W)``; ``valid`` ``(B, H, W)`` bool marks real pixels."""
        if batch.ndim != 4 or not batch.is_floating_point():
            raise ShapeMismatchError(
                f"TwoCropAugmentation: expected a float (B, C, H, W) batch, got {tuple(batch.shape)} {batch.dtype}"
            )
        count, _, height, width = batch.shape
        if valid is None:
            valid = torch.ones(count, height, width, dtype=torch.bool, device=batch.device)
        elif valid.shape != (count, height, width):
            raise ShapeMismatchError(
                f"TwoCropAugmentation: valid mask {tuple(valid.shape)} does not match the batch {tuple(batch.shape)}; "
                "give a (B, H, W) bool mask"
            )
        crop_h, crop_w = self.crop_size
        pad_bottom, pad_right = max(crop_h - height, 0), max(crop_w - width, 0)
        if pad_bottom or pad_right:
            # Edge replication works for any amount of padding; the padded pixels are masked out.
            batch = F.pad(batch, (0, pad_right, 0, pad_bottom), mode="replicate")
            valid = F.pad(valid, (0, pad_right, 0, pad_bottom), value=False)
            height, width = height + pad_bottom, width + pad_right

        row1 = self._integers(count, 0, height - crop_h, generator)
        col1 = self._integers(count, 0, width - crop_w, generator)
        overlap = self._uniform(count, self.min_overlap, self.max_overlap, generator)
        reach_y = ((1.0 - overlap) * crop_h).long()
        reach_x = ((1.0 - overlap) * crop_w).long()
        row2 = (row1 + self._integers(count, -reach_y, reach_y, generator)).clamp(0, height - crop_h)
        col2 = (col1 + self._integers(count, -reach_x, reach_x, generator)).clamp(0, width - crop_w)
        thetas = self._thetas(2 * count, generator)
        shifts = self._integers(2 * count, -self.max_band_shift, self.max_band_shift, generator)

        views, masks = [], []
        for index, (rows, cols) in enumerate(((row1, col1), (row2, col2))):
            origins = list(enumerate(zip(rows.tolist(), cols.tolist())))
            crops = torch.stack([batch[b, :, r : r + crop_h, c : c + crop_w] for b, (r, c) in origins])
            crop_valid = torch.stack([valid[b, r : r + crop_h, c : c + crop_w] for b, (r, c) in origins])
            theta = thetas[index * count : (index + 1) * count]
            view, view_valid = self._warp(crops, crop_valid, theta)
            views.append(shift_bands(view, shifts[index * count : (index + 1) * count], self.band_shift_mode))
            masks.append(view_valid)
        device = batch.device
        return CropPair(
            view1=views[0],
            view2=views[1],
            geometry1=ViewGeometry(torch.stack([row1, col1], dim=1).double().to(device), thetas[:count].to(device)),
            geometry2=ViewGeometry(torch.stack([row2, col2], dim=1).double().to(device), thetas[count:].to(device)),
            mask1=masks[0],
            mask2=masks[1],
            band_shift1=shifts[:count],
            band_shift2=shifts[count:],
        )

    def _warp(
        self, crops: torch.Tensor, crop_valid: torch.Tensor, theta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.affine:
            return crops, crop_valid
        grid = F.affine_grid(theta.to(device=crops.device, dtype=crops.dtype), list(crops.shape), align_corners=False)
        view = F.grid_sample(crops, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # Sampled validity below 1 means a padding pixel took part in the interpolation.
        sampled = F.grid_sample(
            crop_valid.unsqueeze(1).to(crops.dtype), grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        return view, sampled[:, 0] > 0.999


__all__ = ["BAND_SHIFT_MODES", "CropPair", "TwoCropAugmentation", "shift_bands"]
