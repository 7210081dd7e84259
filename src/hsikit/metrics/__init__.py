"""hsikit.metrics: metrics defined once, used by training, evaluation, benchmarks and reports.

Reconstruction (RGB → hyperspectral) metrics of the MST++ / NTIRE 2022 protocol live in
:mod:`hsikit.metrics.reconstruction`: functional per-image scores and
:class:`torchmetrics.Metric` classes that accumulate them and synchronise under DDP.
"""

from hsikit.metrics.reconstruction import (
    MRAE,
    PSNR,
    RMSE,
    SAM,
    SSIM,
    BackProjectionMRAE,
    ReconstructionMetrics,
    aggregate,
    back_projection_mrae,
    border_crop,
    mrae,
    mstpp_metrics,
    psnr,
    reconstruction_metrics,
    rmse,
    sam,
    ssim,
)

__all__ = [
    "MRAE",
    "PSNR",
    "RMSE",
    "SAM",
    "SSIM",
    "BackProjectionMRAE",
    "ReconstructionMetrics",
    "aggregate",
    "back_projection_mrae",
    "border_crop",
    "mrae",
    "mstpp_metrics",
    "psnr",
    "reconstruction_metrics",
    "rmse",
    "sam",
    "ssim",
]
