"""Clustering models: ``(B, C, H, W)`` cubes → cluster probabilities ``(B, K, H, W)`` and labels ``(B, H, W)``.

Importing this package registers ``"global_clustering"`` (Deep Global Clustering,
b05611038/HSI_global_clustering): a spectral–spatial encoder, an unrolled differentiable
mean-shift and a global centroid dictionary updated by EMA, so cluster ids hold across scenes.
"""

from hsikit.models.clustering.dictionary import DEAD_POLICIES, CentroidDictionary, CentroidUpdate
from hsikit.models.clustering.encoder import ENCODER_MODES, SpectralSpatialEncoder, spectral_output_length
from hsikit.models.clustering.meanshift import MEAN_SHIFT_MODES, UnrolledMeanShift, inverse_softplus
from hsikit.models.clustering.model import (
    ClusteringOutput,
    GlobalClusteringModel,
    convert_reference_state_dict,
    flatten_pixels,
)

__all__ = [
    "DEAD_POLICIES",
    "ENCODER_MODES",
    "MEAN_SHIFT_MODES",
    "CentroidDictionary",
    "CentroidUpdate",
    "ClusteringOutput",
    "GlobalClusteringModel",
    "SpectralSpatialEncoder",
    "UnrolledMeanShift",
    "convert_reference_state_dict",
    "flatten_pixels",
    "inverse_softplus",
    "spectral_output_length",
]
