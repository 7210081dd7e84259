"""hsikit.metrics: metrics defined once, used by training, evaluation, benchmarks and reports.

Reconstruction (RGB → hyperspectral) metrics of the MST++ / NTIRE 2022 protocol are
re-exported here from :mod:`hsikit.metrics.reconstruction`: functional per-image scores and
:class:`torchmetrics.Metric` classes that accumulate them and synchronise under DDP.
The other capabilities have their own modules (their names overlap, e.g. per-class IoU,
so import them from there):

* :mod:`hsikit.metrics.classification` - OA, AA, Cohen's kappa, per-class precision/recall/F1;
* :mod:`hsikit.metrics.segmentation` - Acc, kappa, mIoU, per-class IoU, FWIoU, F1/F2 of SSMGNet;
* :mod:`hsikit.metrics.clustering` - NMI, ARI, VI, Hungarian accuracy (K != C), IoU/Dice, area RMSE;
* :mod:`hsikit.metrics.cluster_selection` - label-free choice of checkpoint and number of clusters.
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
