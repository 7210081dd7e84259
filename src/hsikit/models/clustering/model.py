"""Deep Global Clustering model (b05611038/HSI_global_clustering; Chang, Chen & Chen, arXiv:2512.24172).

Label-free clustering of hyperspectral pixels with cluster ids that hold across scenes:

1. :class:`~hsikit.models.clustering.encoder.SpectralSpatialEncoder`: cube ``(B, C, H, W)``
   → unit-norm embeddings ``(B, D, H, W)``;
2. :class:`~hsikit.models.clustering.meanshift.UnrolledMeanShift`: a few differentiable
   mean-shift steps with a learned bandwidth → shifted embeddings ``(B, D, H, W)``;
3. :class:`~hsikit.models.clustering.dictionary.CentroidDictionary`: cosine similarity of
   the re-normalised shifted embeddings to K global centroids, softmax with temperature
   ``temp`` → probabilities ``(B, K, H, W)`` and labels ``(B, H, W)``.

The centroids are not trained by the optimizer: after each optimizer step the training
task calls :meth:`GlobalClusteringModel.update_centroids` with the outputs of both views,
which applies the EMA rule with the pixels flattened channels-last (the reference's
layout bug fixed). The losses live in :mod:`hsikit.losses.clustering`.

Every constructor default is the reference's default (``HyperspectralClusteringModel``,
``HyperspectralEncoder``, ``UnrolledMeanShift`` at commit b0136f4 and its trainer) except
where the reference is wrong or cannot work: ``encoder_mode="spectral"`` (the reference's
raster Conv1d is ``"raster"``), ``mask_border=True``, the fractional ``dead_fraction``
with ``dead_policy="reseed"``, and ``orthogonality_step=0.1`` (the gradient-free stand-in
for the reference's orthogonality loss on its centroid parameter, without which the
EMA-only dictionary collapses; see :mod:`hsikit.models.clustering.dictionary`). The reference's scripts use ``spectral_kernel_size=9`` and
``bias=False``. Set ``encoder_mode="raster", mask_border=False, dead_policy="kick"`` for the
reference's forward computation; :func:`convert_reference_state_dict` loads its weights.

Note the layout: probabilities and logits are channels-first ``(B, K, H, W)`` like every
hsikit segmentation output; the reference returned ``(B, H, W, K)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import CheckpointError, ConfigError, ShapeMismatchError
from hsikit.models.clustering.dictionary import CentroidDictionary, CentroidUpdate, DeadPolicy
from hsikit.models.clustering.encoder import EncoderMode, PaddingMode, SpectralSpatialEncoder
from hsikit.models.clustering.meanshift import MeanShiftMode, UnrolledMeanShift
from hsikit.models.registry import register_model


class ClusteringOutput(NamedTuple):
    """Forward result of :class:`GlobalClusteringModel` (all channels-first).

    Attributes:
        embeddings: encoder output before mean-shift, unit-norm, ``(B, D, H, W)``.
        shifted: mean-shifted embeddings (norm ≤ 1), ``(B, D, H, W)``.
        logits: ``cos(normalize(shifted), c_k) / temp``, ``−inf`` for inactive clusters, ``(B, K, H, W)``.
        probs: softmax of ``logits`` over K, ``(B, K, H, W)``.
        labels: ``argmax_k probs``, ``(B, H, W)`` int64.
    """

    embeddings: torch.Tensor
    shifted: torch.Tensor
    logits: torch.Tensor
    probs: torch.Tensor
    labels: torch.Tensor


def flatten_pixels(maps: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pixels of channel-first maps ``(B, C, H, W)`` as rows ``(M, C)``, M = B·H·W (or the masked count).

    The channels are moved last *before* reshaping. The reference flattened with
    ``maps.reshape(-1, C)`` directly, which pairs the channels of one pixel with
    neighbouring pixels. ``mask`` ``(B, H, W)`` bool keeps only its True pixels.
    """
    if maps.ndim != 4:
        raise ShapeMismatchError(f"flatten_pixels: expected (B, C, H, W) maps, got {tuple(maps.shape)}")
    rows = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
    if mask is None:
        return rows
    if mask.shape != (maps.shape[0], *maps.shape[2:]):
        raise ShapeMismatchError(
            f"flatten_pixels: mask {tuple(mask.shape)} does not match maps {tuple(maps.shape)}; "
            "give a (B, H, W) boolean mask of the valid pixels"
        )
    return rows[mask.reshape(-1).to(torch.bool)]


@register_model(
    "global_clustering",
    task="clustering",
    tiny={
        "n_clusters": 3,
        "embed_dim": 8,
        "n_spectral_layers": 2,
        "spectral_channels": 4,
        "num_iters": 2,
        "window": 3,
    },
)
class GlobalClusteringModel(nn.Module):
    """Deep Global Clustering: encoder → unrolled mean-shift → global EMA centroid dictionary.

    Args:
        in_bands: spectral bands C (the reference scripts' default is 301).
        n_clusters: K, clusters of the global dictionary (reference 4).
        embed_dim: D (reference 32).
        encoder_mode: ``"spectral"`` (Conv1d along wavelengths) or ``"raster"`` (reference parity).
        n_spectral_layers, spectral_kernel_size, bias, spectral_channels, spectral_stride,
            final_relu, centre_embeddings, spatial_padding: see :class:`SpectralSpatialEncoder`
            (``spatial_padding`` is its ``padding_mode``).
        num_iters: mean-shift steps (reference 5).
        window: side of the windowed mean-shift neighbourhood (reference ``kernel_size`` 5).
        mean_shift_mode: ``"window"`` (reference ``use_approx=True``) or ``"global"``.
        learn_bandwidth, init_bandwidth, mask_border, max_global_pixels: see
            :class:`UnrolledMeanShift`.
        temp: assignment temperature (reference 0.05).
        ema_decay, ema_kick, dead_fraction, dead_policy, dead_patience, reseed_pool_fraction,
            orthogonality_step: see :class:`CentroidDictionary` (``ema_decay`` is its ``decay``,
            ``ema_kick`` its ``kick``).
        decoder_hidden: hidden width of an optional pixel-wise decoder (1 × 1 convolutions
            D → hidden → C) used only by the training task's reconstruction term (hsikit
            addition, as IDEC adds one to DEC); 0 (default) builds none.

    Shapes:
        ``(B, C, H, W)`` → :class:`ClusteringOutput` (``(B, D, H, W)`` embeddings,
        ``(B, K, H, W)`` logits/probabilities, ``(B, H, W)`` labels). Any H, W ≥ 1.
    """

    def __init__(
        self,
        in_bands: int,
        n_clusters: int = 4,
        embed_dim: int = 32,
        encoder_mode: EncoderMode = "spectral",
        n_spectral_layers: int = 3,
        spectral_kernel_size: int = 3,
        bias: bool = True,
        spectral_channels: int = 16,
        spectral_stride: int = 2,
        final_relu: bool = True,
        centre_embeddings: bool = False,
        spatial_padding: PaddingMode = "zeros",
        num_iters: int = 5,
        window: int = 5,
        mean_shift_mode: MeanShiftMode = "window",
        learn_bandwidth: bool = True,
        init_bandwidth: float = 1.0,
        mask_border: bool = True,
        max_global_pixels: int = 4096,
        temp: float = 0.05,
        ema_decay: float = 0.99,
        ema_kick: float = 0.05,
        dead_fraction: float = 0.005,
        dead_policy: DeadPolicy = "reseed",
        dead_patience: int = 1,
        reseed_pool_fraction: float = 0.1,
        orthogonality_step: float = 0.1,
        decoder_hidden: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = SpectralSpatialEncoder(
            in_bands,
            embed_dim=embed_dim,
            n_spectral_layers=n_spectral_layers,
            spectral_kernel_size=spectral_kernel_size,
            bias=bias,
            mode=encoder_mode,
            spectral_channels=spectral_channels,
            spectral_stride=spectral_stride,
            final_relu=final_relu,
            centre_embeddings=centre_embeddings,
            padding_mode=spatial_padding,
        )
        self.mean_shift = UnrolledMeanShift(
            num_iters=num_iters,
            learn_bandwidth=learn_bandwidth,
            init_bandwidth=init_bandwidth,
            mode=mean_shift_mode,
            window=window,
            mask_border=mask_border,
            max_global_pixels=max_global_pixels,
        )
        self.dictionary = CentroidDictionary(
            n_clusters=n_clusters,
            embed_dim=embed_dim,
            temp=temp,
            decay=ema_decay,
            kick=ema_kick,
            dead_fraction=dead_fraction,
            dead_policy=dead_policy,
            dead_patience=dead_patience,
            reseed_pool_fraction=reseed_pool_fraction,
            orthogonality_step=orthogonality_step,
        )
        self.in_bands = self.encoder.in_bands
        self.n_clusters = self.dictionary.n_clusters
        self.embed_dim = self.encoder.embed_dim
        if isinstance(decoder_hidden, bool) or int(decoder_hidden) != decoder_hidden or decoder_hidden < 0:
            raise ConfigError(f"GlobalClusteringModel: decoder_hidden must be an integer >= 0, got {decoder_hidden!r}")
        # Training-only head of the optional reconstruction term (IDEC); inference never calls it.
        self.decoder: nn.Module | None = None
        if decoder_hidden:
            hidden = int(decoder_hidden)
            self.decoder = nn.Sequential(
                nn.Conv2d(self.embed_dim, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, self.in_bands, 1)
            )

    @property
    def centroids(self) -> torch.Tensor:
        """The global dictionary ``(K, D)`` (a buffer; unit rows)."""
        return self.dictionary.centroids

    @property
    def active(self) -> torch.Tensor:
        """``(K,)`` bool mask of the clusters in use."""
        return self.dictionary.active

    def assign(self, shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``(B, K, H, W)``, probabilities ``(B, K, H, W)`` and labels ``(B, H, W)`` of shifted embeddings."""
        unit = F.normalize(shifted, p=2, dim=1).permute(0, 2, 3, 1)
        logits = self.dictionary.logits(unit)
        probs = torch.softmax(logits, dim=-1)
        return logits.permute(0, 3, 1, 2), probs.permute(0, 3, 1, 2), probs.argmax(dim=-1)

    def forward(self, cube: torch.Tensor) -> ClusteringOutput:
        """Embed, mean-shift and assign a ``(B, C, H, W)`` batch."""
        embeddings = self.encoder(cube)
        shifted = self.mean_shift(embeddings)
        logits, probs, labels = self.assign(shifted)
        return ClusteringOutput(embeddings, shifted, logits, probs, labels)

    def reconstruct(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Each pixel's spectrum ``(B, C, H, W)`` decoded from its unit embedding ``(B, D, H, W)`` (pixel-wise MLP)."""
        if self.decoder is None:
            raise ConfigError(
                "GlobalClusteringModel.reconstruct: this model has no decoder; build it with decoder_hidden > 0 "
                "(model_args.decoder_hidden) to train with reconstruction_weight > 0"
            )
        return self.decoder(embeddings)

    @torch.no_grad()
    def predict(self, cube: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities ``(B, K, H, W)`` and labels ``(B, H, W)`` in eval mode without gradients."""
        was_training = self.training
        self.eval()
        try:
            output = self(cube)
        finally:
            self.train(was_training)
        return output.probs, output.labels

    @torch.no_grad()
    def update_centroids(
        self,
        *outputs: ClusteringOutput,
        masks: list[torch.Tensor | None] | None = None,
        kick: float | None = None,
        generator: torch.Generator | None = None,
    ) -> CentroidUpdate:
        """EMA-update the dictionary from the mean-shifted embeddings and probabilities of one or more views.

        Args:
            outputs: forward results (typically the two augmented views of a step).
            masks: optional ``(B, H, W)`` bool valid-pixel mask per output (padding excluded).
            kick: noise scale for ``dead_policy="kick"`` (overrides ``ema_kick``).
            generator: random generator for re-seeding / kicks.
        """
        if not outputs:
            raise ShapeMismatchError("update_centroids: give at least one ClusteringOutput")
        if masks is not None and len(masks) != len(outputs):
            raise ShapeMismatchError(
                f"update_centroids: got {len(masks)} masks for {len(outputs)} outputs; "
                "give one mask (or None) per output"
            )
        masks = masks or [None] * len(outputs)
        points = torch.cat([flatten_pixels(out.shifted.detach(), mask) for out, mask in zip(outputs, masks)])
        probs = torch.cat([flatten_pixels(out.probs.detach(), mask) for out, mask in zip(outputs, masks)])
        return self.dictionary.ema_update(points, probs, kick=kick, generator=generator)

    @torch.no_grad()
    def prune_clusters(self, probs: torch.Tensor, threshold: float = 0.005) -> torch.Tensor:
        """Switch off clusters whose mean probability in ``probs`` ``(B, K, H, W)`` is below ``threshold``.

        Returns the indices of the clusters still active. Rows are never deleted
        (see :meth:`CentroidDictionary.prune`).
        """
        return self.dictionary.prune(flatten_pixels(probs), threshold)


_REFERENCE_RENAMES = {
    "cluster.cluster_centers": "dictionary.centroids",
    "cluster.log_bandwidth": "mean_shift.log_bandwidth",
}


def convert_reference_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a reference ``HyperspectralClusteringModel`` state dict for :class:`GlobalClusteringModel`.

    The reference stores ``encoder.spectral_net.*`` / ``encoder.spatial_net.*`` (identical
    here in ``encoder_mode="raster"``), ``cluster.log_bandwidth`` and
    ``cluster.cluster_centers`` (a trained parameter there, re-normalised into the
    ``dictionary.centroids`` buffer here). ``dictionary.active`` (all True) and
    ``dictionary.dead_steps`` (zeros) are added. Build the model with
    ``encoder_mode="raster"`` and the reference's ``n_spectral_layers``,
    ``spectral_kernel_size``, ``bias``, ``embed_dim`` and ``n_clusters`` before loading.
    """
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in _REFERENCE_RENAMES:
            converted[_REFERENCE_RENAMES[key]] = value
        elif key.startswith(("encoder.spectral_net.", "encoder.spatial_net.")):
            converted[key] = value
        else:
            raise CheckpointError(
                f"convert_reference_state_dict: unexpected key {key!r}; a HSI_global_clustering checkpoint holds "
                "encoder.spectral_net.*, encoder.spatial_net.*, cluster.log_bandwidth and cluster.cluster_centers"
            )
    if "dictionary.centroids" not in converted:
        raise CheckpointError(
            "convert_reference_state_dict: no 'cluster.cluster_centers' in the state dict; is this a "
            "HSI_global_clustering weights.safetensors?"
        )
    centroids = F.normalize(converted["dictionary.centroids"].float(), dim=1)
    converted["dictionary.centroids"] = centroids
    converted["dictionary.active"] = torch.ones(centroids.shape[0], dtype=torch.bool)
    converted["dictionary.dead_steps"] = torch.zeros(centroids.shape[0], dtype=torch.int64)
    return converted


__all__ = ["ClusteringOutput", "GlobalClusteringModel", "convert_reference_state_dict", "flatten_pixels"]
