"""Reconstruction metrics of the MST++ / NTIRE 2022 protocol (RGB → hyperspectral).

Every metric is defined here once and used by training, evaluation, benchmarks and
reports alike. The definitions follow ``specs/mstpp_protocol.md`` §5:

* the score of a batch is a **per-image** vector ``(B,)``; a data set's score is the
  **unweighted mean over images** (MST++ evaluates 50 images with batch 1 and averages
  the 50 values). PSNR is therefore a mean of per-image PSNRs, which is *not* the PSNR
  of the pooled mean squared error;
* before scoring, a border of ``crop`` pixels is removed on every side of both
  prediction and target: ``x[:, :, crop:H-crop, crop:W-crop]``. The default
  ``crop=128`` is the protocol's centre crop (a 482 × 512 ARAD-1K image keeps rows
  128..353 and columns 128..383, a 226 × 256 region). ``crop=0`` scores the whole image;
* all arithmetic is done in float64 (float32 on Apple ``mps``, which has no float64), so
  the values do not depend on the precision the model ran in.

Inputs are torch tensors ``(B, C, H, W)`` (a single ``(C, H, W)`` image is accepted and
counted as a batch of one), prediction first, target second, on any device.

Definitions, per image, over the cropped ``c, h, w`` elements:

======================  ===================================================================
MRAE                    ``mean(|ŷ − y| / |y|)`` on the raw (unclamped) prediction. Variant
                        ``"mstpp"`` (default) needs a target without zeros (ARAD-1K is
                        strictly positive) and raises :class:`MetricInputError` otherwise;
                        variant ``"custom"`` replaces zeros of ``|y|`` by ``1e-8`` (the
                        protocol's variant for custom data). For ``y > 0`` the denominator
                        is ``y`` exactly as in MST++; hsikit takes ``|y|`` so that a negative
                        target value cannot give a negative error.
RMSE                    ``sqrt(mean((ŷ − y)²))`` on the raw prediction.
PSNR (dB)               both clamped to [0, 1] and scaled by 255, ``MSE = mean((ŷ − y)²)``,
                        ``PSNR = 10·log10(255² / MSE)`` — the same number as PSNR with data
                        range 1 after clamping. A perfect image has ``MSE = 0`` and PSNR
                        ``+inf`` (as in MST++; the mean over images is then ``+inf`` too).
SAM (radians)           mean over pixels of the angle ``arccos(<ŷ/‖ŷ‖, y/‖y‖>)`` between
                        the predicted and true spectra, in **radians** (``degrees=True`` for
                        degrees); a zero spectrum counts as norm 1, so its angle to anything
                        is π/2 (the official NTIRE 2022 rule). Computed with
                        :func:`hsikit.spectral.metrics.spectral_angle` (atan2 form: the same
                        angle, without the precision loss of arccos near 0).
SSIM                    Wang et al. (2004) structural similarity, per band, averaged over bands
                        and pixels: both inputs clamped to [0, 1] (data range L = 1), an
                        11 × 11 Gaussian window with σ = 1.5 (normalised to sum 1), "valid"
                        filtering (no padding, so the map is (H−10) × (W−10)), population
                        (biased) variances, ``C1 = (0.01·L)²``, ``C2 = (0.03·L)²``. This equals
                        ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
                        sigma=1.5, use_sample_covariance=False, data_range=1)`` per band.
back-projection MRAE    MRAE between the RGB projections ``ŷ·QE`` and ``y·QE`` of the cubes
                        through a camera response matrix ``QE`` of shape ``(K, C)`` (K = 3
                        for RGB), target projection in the denominator. No clipping.
======================  ===================================================================

For the NTIRE 2022 camera: ``torch.as_tensor(load_ntire2022_camera().sample(
numpy.arange(400, 701, 10)))`` (see :mod:`hsikit.spectral.cameras`) gives a ``(3, 31)``
matrix.

The :class:`torchmetrics.Metric` classes keep a float64 running sum of per-image values
and an image count (``dist_reduce_fx="sum"``), so under DDP their result is the mean over
every image seen by every process, exactly as if one process had seen them all.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError
from hsikit.spectral.metrics import spectral_angle

MraeVariant = Literal["mstpp", "custom"]

DEFAULT_CROP = 128
"""Border removed on every side before scoring (MST++ centre crop of the 482 × 512 ARAD images)."""
CUSTOM_MRAE_FLOOR = 1e-8
"""Value that replaces zeros of the target in the ``"custom"`` MRAE variant."""
PSNR_PEAK = 255.0
"""Peak value of the 8-bit scale on which MST++ computes PSNR (after clamping to [0, 1])."""
SSIM_WINDOW = 11
"""Side of the Gaussian SSIM window, pixels."""
SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian SSIM window, pixels."""
SSIM_K1 = 0.01
SSIM_K2 = 0.03

PROTOCOL_METRICS: tuple[str, ...] = ("mrae", "rmse", "psnr", "sam")
"""The four metrics of the MST++ evaluation (``mstpp_metrics``)."""
ALL_METRICS: tuple[str, ...] = ("mrae", "rmse", "psnr", "sam", "ssim", "back_projection_mrae")
HIGHER_IS_BETTER: dict[str, bool] = {
    "mrae": False,
    "rmse": False,
    "psnr": True,
    "sam": False,
    "ssim": True,
    "back_projection_mrae": False,
}


# --------------------------------------------------------------------------- input handling
def _compute_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _as_batch(value: Any, role: str, metric: str) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise ShapeMismatchError(
            f"{metric}: the {role} must be a (B, C, H, W) batch or one (C, H, W) image, got shape "
            f"{tuple(tensor.shape)}; add the missing axes (e.g. x[None] for a single image)"
        )
    return tensor


def _prepare(prediction: Any, target: Any, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Prediction and target as float64 ``(B, C, H, W)`` tensors of equal shape on one device."""
    prediction = _as_batch(prediction, "prediction", metric)
    target = _as_batch(target, "target", metric)
    if prediction.shape != target.shape:
        raise ShapeMismatchError(
            f"{metric}: prediction of shape {tuple(prediction.shape)} and target of shape "
            f"{tuple(target.shape)} differ; both must be (B, C, H, W) with the same bands and size"
        )
    device = prediction.device
    dtype = _compute_dtype(device)
    return prediction.to(dtype), target.to(device=device, dtype=dtype)


def _check_crop(crop: Any) -> int:
    if isinstance(crop, bool) or not isinstance(crop, numbers.Integral) or crop < 0:
        raise ConfigError(f"crop must be a non-negative whole number of pixels, got {crop!r}")
    return int(crop)


def border_crop(images: torch.Tensor, crop: int = DEFAULT_CROP) -> torch.Tensor:
    """Remove ``crop`` pixels from every side: ``images[..., crop:H-crop, crop:W-crop]``.

    Args:
        images: ``(..., H, W)`` tensor.
        crop: border width in pixels, ``>= 0``; 0 returns ``images`` unchanged.

    Returns:
        A view of shape ``(..., H - 2·crop, W - 2·crop)``.
    """
    crop = _check_crop(crop)
    if crop == 0:
        return images
    height, width = int(images.shape[-2]), int(images.shape[-1])
    if height <= 2 * crop or width <= 2 * crop:
        raise ShapeMismatchError(
            f"a border crop of {crop} px leaves nothing of a {height} x {width} image "
            f"(shape {tuple(images.shape)}); pass crop=0 to score the whole image, or a crop of at most "
            f"{(min(height, width) - 1) // 2} px (the MST++ protocol's crop=128 is meant for 482 x 512 images)"
        )
    return images[..., crop : height - crop, crop : width - crop]


def _check_variant(variant: str) -> None:
    if variant not in ("mstpp", "custom"):
        raise ConfigError(f"MRAE variant must be 'mstpp' or 'custom', got {variant!r}")


def relative_error_denominator(
    target: torch.Tensor, variant: MraeVariant = "mstpp", *, metric: str = "mrae"
) -> torch.Tensor:
    """``|y|`` as the MRAE denominator; zeros refused (``"mstpp"``) or replaced by 1e-8 (``"custom"``).

    Shared by the MRAE metric and :mod:`hsikit.losses.reconstruction`.
    """
    _check_variant(variant)
    magnitude = target.abs()
    is_zero = magnitude == 0
    if variant == "custom":
        return torch.where(is_zero, torch.full_like(magnitude, CUSTOM_MRAE_FLOOR), magnitude)
    if bool(is_zero.any()):
        count = int(is_zero.sum())
        raise MetricInputError(
            f"{metric}: the target holds {count} zero value(s) (of {magnitude.numel()}, shape "
            f"{tuple(target.shape)}), so |ŷ - y| / y is undefined; ARAD-1K targets are strictly positive — "
            "for other data pass variant='custom', which divides by 1e-8 where the target is 0"
        )
    return magnitude


# --------------------------------------------------------------------------- per-image scores (no cropping)
def _mrae_values(prediction: torch.Tensor, target: torch.Tensor, variant: MraeVariant, metric: str) -> torch.Tensor:
    denominator = relative_error_denominator(target, variant, metric=metric)
    return ((prediction - target).abs() / denominator).flatten(1).mean(dim=1)


def _rmse_values(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction - target).square().flatten(1).mean(dim=1).sqrt()


def _psnr_values(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    scaled_prediction = prediction.clamp(0.0, 1.0) * PSNR_PEAK
    scaled_target = target.clamp(0.0, 1.0) * PSNR_PEAK
    mse = (scaled_prediction - scaled_target).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(PSNR_PEAK**2 / mse)


def _sam_values(prediction: torch.Tensor, target: torch.Tensor, degrees: bool) -> torch.Tensor:
    # eps=0: only an exactly-zero spectrum is degenerate (norm taken as 1, angle pi/2), as in NTIRE 2022.
    angles = spectral_angle(prediction, target, axis=1, eps=0.0, degrees=degrees)
    return angles.flatten(1).mean(dim=1)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    weights = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def _ssim_values(
    prediction: torch.Tensor, target: torch.Tensor, window_size: int, sigma: float, k1: float, k2: float
) -> torch.Tensor:
    height, width = prediction.shape[-2:]
    if window_size < 1 or window_size % 2 == 0:
        raise ConfigError(f"ssim: window_size must be a positive odd number of pixels, got {window_size}")
    if height < window_size or width < window_size:
        raise ShapeMismatchError(
            f"ssim: the (cropped) images are {height} x {width} px, smaller than the {window_size} x {window_size} "
            "window; use a smaller crop or a smaller window_size"
        )
    bands = prediction.shape[1]
    window = _gaussian_window(window_size, sigma, prediction.dtype, prediction.device)
    row_kernel = window.view(1, 1, 1, window_size).expand(bands, 1, 1, window_size)
    column_kernel = window.view(1, 1, window_size, 1).expand(bands, 1, window_size, 1)

    def local_mean(images: torch.Tensor) -> torch.Tensor:
        # Separable Gaussian filter, one band at a time (groups=bands), no padding ("valid").
        return F.conv2d(F.conv2d(images, row_kernel, groups=bands), column_kernel, groups=bands)

    x = prediction.clamp(0.0, 1.0)
    y = target.clamp(0.0, 1.0)
    mean_x, mean_y = local_mean(x), local_mean(y)
    variance_x = local_mean(x * x) - mean_x.square()
    variance_y = local_mean(y * y) - mean_y.square()
    covariance = local_mean(x * y) - mean_x * mean_y
    c1, c2 = (k1 * 1.0) ** 2, (k2 * 1.0) ** 2  # data range L = 1 after clamping
    numerator = (2.0 * mean_x * mean_y + c1) * (2.0 * covariance + c2)
    denominator = (mean_x.square() + mean_y.square() + c1) * (variance_x + variance_y + c2)
    return (numerator / denominator).flatten(1).mean(dim=1)


def _camera_projection(cubes: torch.Tensor, camera_matrix: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,bchw->bkhw", camera_matrix, cubes)


def _prepare_camera(camera_matrix: Any, bands: int, like: torch.Tensor) -> torch.Tensor:
    matrix = torch.as_tensor(camera_matrix).to(device=like.device, dtype=like.dtype)
    if matrix.ndim != 2 or matrix.shape[1] != bands:
        raise ShapeMismatchError(
            f"back_projection_mrae: the camera response matrix must have shape (K, {bands}) (K = 3 for RGB, one "
            f"column per band of the cubes), got {tuple(matrix.shape)}; sample the camera curves at the cube's "
            "band centres, e.g. CameraResponse.sample(wavelengths)"
        )
    return matrix


# --------------------------------------------------------------------------- functional API
def mrae(prediction: Any, target: Any, *, crop: int = DEFAULT_CROP, variant: MraeVariant = "mstpp") -> torch.Tensor:
    """Mean relative absolute error per image, ``(B,)`` float64 (see the module table)."""
    prediction, target = _prepare(prediction, target, "mrae")
    return _mrae_values(border_crop(prediction, crop), border_crop(target, crop), variant, "mrae")


def rmse(prediction: Any, target: Any, *, crop: int = DEFAULT_CROP) -> torch.Tensor:
    """Root mean squared error per image on the raw prediction, ``(B,)`` float64."""
    prediction, target = _prepare(prediction, target, "rmse")
    return _rmse_values(border_crop(prediction, crop), border_crop(target, crop))


def psnr(prediction: Any, target: Any, *, crop: int = DEFAULT_CROP) -> torch.Tensor:
    """PSNR in dB per image, inputs clamped to [0, 1] and scaled by 255, ``(B,)`` float64.

    Average these per-image values to score a data set (what MST++ reports); do not
    compute the PSNR of the pooled MSE.
    """
    prediction, target = _prepare(prediction, target, "psnr")
    return _psnr_values(border_crop(prediction, crop), border_crop(target, crop))


def sam(prediction: Any, target: Any, *, crop: int = DEFAULT_CROP, degrees: bool = False) -> torch.Tensor:
    """Mean spectral angle per image, in radians (``degrees=True``: degrees), ``(B,)`` float64."""
    prediction, target = _prepare(prediction, target, "sam")
    return _sam_values(border_crop(prediction, crop), border_crop(target, crop), degrees)


def ssim(
    prediction: Any,
    target: Any,
    *,
    crop: int = DEFAULT_CROP,
    window_size: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    """Structural similarity per image (mean over bands and valid window positions), ``(B,)`` float64.

    Inputs are clamped to [0, 1]; the window is Gaussian (``window_size``, ``sigma`` in
    pixels), filtering is "valid" (no padding); constants ``C1 = k1²``, ``C2 = k2²``.
    """
    prediction, target = _prepare(prediction, target, "ssim")
    return _ssim_values(border_crop(prediction, crop), border_crop(target, crop), window_size, sigma, k1, k2)


def back_projection_mrae(
    prediction: Any,
    target: Any,
    camera_matrix: Any,
    *,
    crop: int = DEFAULT_CROP,
    variant: MraeVariant = "mstpp",
) -> torch.Tensor:
    """MRAE between the camera projections ``QE·ŷ`` and ``QE·y`` per image, ``(B,)`` float64.

    Args:
        prediction, target: ``(B, C, H, W)`` cubes.
        camera_matrix: ``(K, C)`` camera response (K = 3 for RGB), one column per band.
        crop: border removed before projecting.
        variant: MRAE zero handling of the projected target (see :func:`mrae`).
    """
    prediction, target = _prepare(prediction, target, "back_projection_mrae")
    matrix = _prepare_camera(camera_matrix, prediction.shape[1], prediction)
    projected_prediction = _camera_projection(border_crop(prediction, crop), matrix)
    projected_target = _camera_projection(border_crop(target, crop), matrix)
    return _mrae_values(projected_prediction, projected_target, variant, "back_projection_mrae")


def _check_metric_names(names: Sequence[str], camera_matrix: Any) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [name for name in names if name not in ALL_METRICS]
    if unknown or not names:
        raise ConfigError(
            f"unknown reconstruction metric(s) {unknown or names!r}; choose among {', '.join(ALL_METRICS)}"
        )
    if "back_projection_mrae" in names and camera_matrix is None:
        raise ConfigError(
            "back_projection_mrae needs camera_matrix= (K, C), e.g. the NTIRE 2022 camera sampled at the band "
            "centres; drop it from the metric list otherwise"
        )
    return names


def reconstruction_metrics(
    prediction: Any,
    target: Any,
    *,
    metrics: Sequence[str] = PROTOCOL_METRICS,
    crop: int = DEFAULT_CROP,
    mrae_variant: MraeVariant = "mstpp",
    camera_matrix: Any = None,
    sam_degrees: bool = False,
) -> dict[str, torch.Tensor]:
    """Several metrics at once (crop and cast done once): ``{name: (B,) per-image values}``.

    Args:
        prediction, target: ``(B, C, H, W)`` (or ``(C, H, W)``) tensors.
        metrics: names among ``mrae, rmse, psnr, sam, ssim, back_projection_mrae``
            (default: the four of the MST++ protocol).
        crop: border removed on every side (default 128, the protocol's).
        mrae_variant: ``"mstpp"`` or ``"custom"`` (see :func:`mrae`); also used by
            ``back_projection_mrae``.
        camera_matrix: ``(K, C)`` response, required for ``back_projection_mrae``.
        sam_degrees: report SAM in degrees instead of radians.

    Returns:
        Per-image float64 tensors; :func:`aggregate` turns them into data-set means.
    """
    names = _check_metric_names(metrics, camera_matrix)
    prediction, target = _prepare(prediction, target, "reconstruction_metrics")
    prediction, target = border_crop(prediction, crop), border_crop(target, crop)
    results: dict[str, torch.Tensor] = {}
    for name in names:
        if name == "mrae":
            results[name] = _mrae_values(prediction, target, mrae_variant, "mrae")
        elif name == "rmse":
            results[name] = _rmse_values(prediction, target)
        elif name == "psnr":
            results[name] = _psnr_values(prediction, target)
        elif name == "sam":
            results[name] = _sam_values(prediction, target, sam_degrees)
        elif name == "ssim":
            results[name] = _ssim_values(prediction, target, SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2)
        else:
            matrix = _prepare_camera(camera_matrix, prediction.shape[1], prediction)
            results[name] = _mrae_values(
                _camera_projection(prediction, matrix),
                _camera_projection(target, matrix),
                mrae_variant,
                "back_projection_mrae",
            )
    return results


def mstpp_metrics(prediction: Any, target: Any, crop: int = DEFAULT_CROP) -> dict[str, torch.Tensor]:
    """The MST++ evaluation: per-image ``mrae``, ``rmse``, ``psnr`` and ``sam`` (radians), ``(B,)`` each."""
    return reconstruction_metrics(prediction, target, metrics=PROTOCOL_METRICS, crop=crop)


def aggregate(per_image: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Unweighted mean over images of each per-image vector (the protocol's data-set score)."""
    return {name: float(values.double().mean()) for name, values in per_image.items()}


# --------------------------------------------------------------------------- torchmetrics classes
def _keep_accumulators_precise(metric: Metric) -> None:
    """Cast float states (and their reset defaults) back to float64 (float32 on ``mps``).

    ``Metric.to(dtype)`` — which Lightning's "16-true"/"bf16-true" precision applies to
    the whole model — would otherwise turn the running sums into half precision.
    """
    for name, default in metric._defaults.items():
        if isinstance(default, torch.Tensor) and default.is_floating_point():
            dtype = _compute_dtype(default.device)
            metric._defaults[name] = default.to(dtype)
            setattr(metric, name, getattr(metric, name).to(dtype))


class _MeanOverImages(Metric):
    """Base class: running float64 sum of per-image values and an image count, both DDP-summed."""

    is_differentiable = False
    full_state_update = False
    metric_name: str = ""

    def __init__(self, *, crop: int = DEFAULT_CROP, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crop = _check_crop(crop)
        self.add_state("value_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("image_count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def _per_image(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add the per-image values of a ``(B, C, H, W)`` batch."""
        values = self._per_image(prediction, target)
        self.value_sum += values.sum().to(self.value_sum.dtype)
        self.image_count += values.numel()

    def compute(self) -> torch.Tensor:
        """Mean over all images seen (all processes under DDP); NaN before any update."""
        return self.value_sum / self.image_count

    def _apply(self, fn: Any, exclude_state: Sequence[str] = "") -> Metric:
        this = super()._apply(fn, exclude_state)
        _keep_accumulators_precise(this)
        return this


class MRAE(_MeanOverImages):
    """Mean over images of the per-image MRAE (:func:`mrae`)."""

    higher_is_better = False

    def __init__(self, *, crop: int = DEFAULT_CROP, variant: MraeVariant = "mstpp", **kwargs: Any) -> None:
        super().__init__(crop=crop, **kwargs)
        _check_variant(variant)
        self.variant = variant

    def _per_image(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mrae(prediction, target, crop=self.crop, variant=self.variant)


class RMSE(_MeanOverImages):
    """Mean over images of the per-image RMSE (:func:`rmse`)."""

    higher_is_better = False

    def _per_image(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return rmse(prediction, target, crop=self.crop)


class PSNR(_MeanOverImages):
    """Mean over images of the per-image PSNR in dB (:func:`psnr`), not the PSNR of the pooled MSE."""

    higher_is_better = True

    def _per_image(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return psnr(prediction, target, crop=self.crop)


class SAM(_MeanOverImages):
    """Mean over images of the per-image mean spectral angle, radians (``degrees=True``: degrees)."""

    higher_is_better = False

    def __init__(self, *, crop: int = DEFAULT_CROP, degrees: bool = False, **kwargs: Any) -> None:
        super().__init__(crop=crop, **kwargs)
        self.degrees = bool(degrees)

    def _per_image(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sam(prediction, target, crop=self.crop, degrees=self.degrees)


class SSIM(_MeanOverImages):
    """Mean over images of the per-image SSIM (:func:`ssim`, Gaussian 11 × 11, σ = 1.5, L = 1)."""

    higher_is_better = True

    def _per_image(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim(prediction, target, crop=self.crop)


class BackProjectionMRAE(_MeanOverImages):
    """Mean over images of the MRAE between camera projections (:func:`back_projection_mrae`).

    Args:
        camera_matrix: ``(K, C)`` camera response; kept in float64 and moved to the
            device of each batch.
    """

    higher_is_better = False

    def __init__(
        self, camera_matrix: Any, *, crop: int = DEFAULT_CROP, variant: MraeVariant = "mstpp", **kwargs: Any
    ) -> None:
        super().__init__(crop=crop, **kwargs)
        _check_variant(variant)
        self.variant = variant
        # A plain float64 attribute, not a buffer: module-wide casts (model.half(), "bf16-true") must not round it.
        self.camera_matrix = torch.as_tensor(camera_matrix, dtype=torch.float64)

    def _per_image(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return back_projection_mrae(prediction, target, self.camera_matrix, crop=self.crop, variant=self.variant)


class ReconstructionMetrics(Metric):
    """All reconstruction metrics in one pass (crop and cast once per batch).

    ``compute()`` returns ``{name: mean over images}`` as float64 scalars. States are a
    float64 sum per metric plus one image count, all reduced by summation under DDP.

    Args:
        metrics: names among ``mrae, rmse, psnr, sam, ssim, back_projection_mrae``
            (default: the four of the MST++ protocol).
        crop: border removed on every side (default 128).
        mrae_variant: ``"mstpp"`` or ``"custom"``.
        camera_matrix: ``(K, C)`` response, needed for ``back_projection_mrae``.
        sam_degrees: SAM in degrees instead of radians.
        prefix: prepended to every key of ``compute()`` (e.g. ``"val/"``).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(
        self,
        metrics: Sequence[str] = PROTOCOL_METRICS,
        *,
        crop: int = DEFAULT_CROP,
        mrae_variant: MraeVariant = "mstpp",
        camera_matrix: Any = None,
        sam_degrees: bool = False,
        prefix: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metric_names = _check_metric_names(metrics, camera_matrix)
        _check_variant(mrae_variant)
        self.crop = _check_crop(crop)
        self.mrae_variant = mrae_variant
        self.sam_degrees = bool(sam_degrees)
        self.prefix = prefix
        # A plain float64 attribute, not a buffer: module-wide casts (model.half(), "bf16-true") must not round it.
        self.camera_matrix = None if camera_matrix is None else torch.as_tensor(camera_matrix, dtype=torch.float64)
        for name in self.metric_names:
            self.add_state(f"{name}_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("image_count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add the per-image values of a ``(B, C, H, W)`` batch."""
        values = reconstruction_metrics(
            prediction,
            target,
            metrics=self.metric_names,
            crop=self.crop,
            mrae_variant=self.mrae_variant,
            camera_matrix=self.camera_matrix,
            sam_degrees=self.sam_degrees,
        )
        for name, per_image in values.items():
            state = getattr(self, f"{name}_sum")
            setattr(self, f"{name}_sum", state + per_image.sum().to(state.dtype))
        self.image_count += next(iter(values.values())).numel()

    def compute(self) -> dict[str, torch.Tensor]:
        """``{prefix + name: mean over all images}``; NaN before any update."""
        return {
            f"{self.prefix}{name}": getattr(self, f"{name}_sum") / self.image_count for name in self.metric_names
        }

    def _apply(self, fn: Any, exclude_state: Sequence[str] = "") -> Metric:
        this = super()._apply(fn, exclude_state)
        _keep_accumulators_precise(this)
        return this


__all__ = [
    "ALL_METRICS",
    "BackProjectionMRAE",
    "DEFAULT_CROP",
    "HIGHER_IS_BETTER",
    "MRAE",
    "PROTOCOL_METRICS",
    "PSNR",
    "RMSE",
    "ReconstructionMetrics",
    "SAM",
    "SSIM",
    "aggregate",
    "back_projection_mrae",
    "border_crop",
    "mrae",
    "mstpp_metrics",
    "psnr",
    "reconstruction_metrics",
    "relative_error_denominator",
    "rmse",
    "sam",
    "ssim",
]
