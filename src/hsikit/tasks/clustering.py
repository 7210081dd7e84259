"""Label-free clustering with cluster ids that hold across scenes (Deep Global Clustering).

:class:`ClusteringTask` trains a :class:`~hsikit.models.clustering.GlobalClusteringModel`
(registry ``"global_clustering"``) on whole scenes from
:class:`~hsikit.data.clustering_datamodule.ClusteringDataModule`, the way the reference
trainer (b05611038/HSI_global_clustering, ``trainer.py``) does, on hsikit's engine:

* every training step cuts an overlapping crop pair from each loaded scene (the scenes
  stay on the device; ``crops_per_scene`` pairs per scene) with
  :class:`~hsikit.data.clustering_augment.TwoCropAugmentation` (random affine,
  non-circular wavelength shift) and minimises
  :class:`~hsikit.losses.clustering.ClusteringLoss`, whose crop consistency compares the two
  views at the *same scene points* (the view geometry is passed along);
* after the optimizer step the global centroid dictionary is updated by EMA from both views'
  mean-shifted embeddings and assignments (``update_centroids``; padding pixels excluded),
  in ``optimizer_step`` (so every checkpoint holds the updated dictionary; under gradient
  accumulation, once per optimizer step from the last micro-batch); with
  ``refresh_assignments`` (the reference's later versions)
  the two views are first passed through the updated network again;
* the datamodule hands each loaded batch over ``pairs_per_batch`` times (the reference's
  ``reuse_iter``), so several crop pairs and optimizer steps come from one load;
* schedules, per epoch like the reference's ``LinearWarmupDecayScheduler`` (warm-up 0,
  peak = initial value, final 0, total = ``max_epochs``): the EMA kick of dead clusters
  (``kick_schedule``, on by default as in the reference) and each loss weight named in
  ``scheduled_weights`` (the reference's default trainer decays ``uniform``). They are
  functions of the epoch, so a resumed run uses the same values;
* exact resume: the dictionary (centroids, active mask, dead counters) is a buffer of the
  model, so it is in every checkpoint; the position in the loaded batch and its repeats is
  in the datamodule's loader state; the previous validation round's probe labels (for the
  stability score) are stored under ``checkpoint["hsikit_clustering"]``.

Validation is label-free model selection on the probe scenes
(:mod:`hsikit.metrics.cluster_selection`): ``val/stability`` (ARI to the previous round),
``val/consistency`` (ARI to the map of a fixed perturbation), ``val/used_clusters`` and
``val/selection`` (the checkpoint criterion, monitored, higher is better). When the probe
scenes have labels, ``val/nmi``, ``val/ari``, ``val/accuracy`` (Hungarian, K ≠ C allowed)
and ``val/miou`` are logged too, for information only: nothing is selected by them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics import Metric

from hsikit.data.clustering_augment import BandShiftMode, CropPair, TwoCropAugmentation
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.clustering import ClusteringLoss, reconstruction_error
from hsikit.models.clustering import flatten_pixels
from hsikit.metrics.cluster_selection import (
    MIN_USED_FRACTION,
    NOT_SELECTABLE,
    perturb_probe,
    required_clusters,
    selection_score,
    unperturb_map,
    used_clusters,
)
from hsikit.metrics.clustering import ClusteringMetrics
from hsikit.tasks.base import BaseTask, OptimizerName, SchedulerName
from hsikit.tasks.registry import register_task

CHECKPOINT_STATE_KEY = "hsikit_clustering"
CENTROID_INITS: tuple[str, ...] = ("kmeans", "random")
#: weights a schedule may decay (``ClusteringLoss`` attribute ``<name>_weight``)
SCHEDULABLE_WEIGHTS: tuple[str, ...] = ("compactness", "uniform", "sinkhorn", "orthogonality", "balance", "consistency")
#: probe scenes up to this many pixels go through the model whole; larger ones are tiled
DIRECT_PROBE_PIXELS = 512 * 512


def spherical_kmeans(
    points: torch.Tensor, clusters: int, iterations: int = 10, max_points: int = 20_000
) -> torch.Tensor:
    """``(K, D)`` unit centres of unit vectors ``points`` ``(M, D)``: k-means++ seeding, then Lloyd steps on cosine.

    At most ``max_points`` points (a random subset) are used. Random draws use torch's
    global generator (reseeded per step by hsikit's ``StepSeed``). A centre left without
    points keeps its previous position.
    """
    if points.ndim != 2 or points.shape[0] < clusters:
        raise ShapeMismatchError(f"spherical_kmeans: need (M, D) points with M >= {clusters}, got {tuple(points.shape)}")
    if points.shape[0] > max_points:
        points = points[torch.randperm(points.shape[0], device=points.device)[:max_points]]
    points = F.normalize(points, dim=1)
    chosen = [int(torch.randint(points.shape[0], (1,)))]
    distance = (1.0 - points @ points[chosen[0]]).clamp_min(0.0)
    for _ in range(1, clusters):
        weights = distance.square()
        if float(weights.sum()) > 0:
            index = int(torch.multinomial(weights, 1))
        else:  # every point coincides with a chosen centre
            index = int(torch.randint(points.shape[0], (1,)))
        chosen.append(index)
        distance = torch.minimum(distance, (1.0 - points @ points[index]).clamp_min(0.0))
    centres = points[chosen].clone()
    for _ in range(iterations):
        assignment = (points @ centres.t()).argmax(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, points)
        filled = torch.bincount(assignment, minlength=clusters) > 0
        centres[filled] = F.normalize(sums[filled], dim=1)
    return centres


def linear_warmup_decay(step: int, init: float, peak: float, final: float, warmup_steps: int, total_steps: int) -> float:
    """The reference's ``LinearWarmupDecayScheduler`` value at ``step`` (0-based).

    Linear from ``init`` to ``peak`` over ``warmup_steps``, then linear from ``peak`` to
    ``final`` until ``total_steps``, constant afterwards.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return init + (peak - init) * step / warmup_steps
    span = total_steps - warmup_steps
    if span <= 0:
        return final
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return peak + (final - peak) * progress


class ClusterCounts(Metric):
    """Pixels per cluster ``(K,)`` int64, summed over batches and over DDP processes."""

    full_state_update = False
    counts: torch.Tensor

    def __init__(self, num_clusters: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_clusters = int(num_clusters)
        self.add_state("counts", default=torch.zeros(self.num_clusters, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, labels: torch.Tensor) -> None:
        self.counts += torch.bincount(labels.reshape(-1).long(), minlength=self.num_clusters).to(self.counts.device)

    def compute(self) -> torch.Tensor:
        return self.counts


@register_task("clustering")
class ClusteringTask(BaseTask):
    """Train Deep Global Clustering label-free on whole scenes (see the module docstring).

    Args:
        model, model_args: the registered clustering model (default ``"global_clustering"``);
            ``in_bands`` comes from the datamodule; ``n_clusters`` is yours to set.
        crop_size: crop side (or ``[h, w]``) of the augmented views (reference 64).
        crops_per_scene: crop pairs cut from each loaded scene per step (reference 1; raise it
            when there are fewer scenes than the batch size, e.g. one scene).
        min_overlap, max_overlap, degrees, translate, scale_range, max_band_shift,
            band_shift_mode, affine: see :class:`~hsikit.data.clustering_augment.TwoCropAugmentation`.
        compactness_weight, uniform_weight, uniform_mode, sinkhorn_weight, sinkhorn_iters,
            orthogonality_weight, balance_weight, consistency_weight: see
            :class:`~hsikit.losses.clustering.ClusteringLoss` (defaults: the reference scripts'
            weights, with the uniform term off).
        reconstruction_weight: weight of the optional reconstruction term (hsikit addition, 0 =
            off): the mean squared error between each view's input spectra and their decoding
            from the pre-shift embeddings by the model's decoder (``model_args.decoder_hidden``),
            over the valid pixels. As in IDEC (Guo et al. 2017), it keeps the embedding
            informative about the spectrum while the clustering terms reshape it.
        scheduled_weights: names among ``compactness, uniform, sinkhorn, orthogonality,
            balance, consistency`` whose weight decays linearly to 0 over the epochs.
        kick_schedule: decay the EMA kick of dead clusters linearly to 0 over the epochs.
        refresh_assignments: recompute both views after the optimizer step before the EMA
            update (the reference's later behaviour; one more forward pass per step).
        centroid_init: ``"kmeans"`` (hsikit default): at the first training step, set the
            dictionary to spherical k-means++ centres of that step's mean-shifted embeddings
            (as DEC initialises its cluster centres), so training starts from a partition of
            the data rather than from random directions; ``"random"``: keep the model's random
            unit centroids (the reference).
        probe_tile, probe_overlap: tiling of probe scenes larger than 512 × 512 pixels.
        min_used_fraction: share of the active clusters a round must use to be selectable.
        optimizer, lr, weight_decay, momentum, scheduler, warmup_steps, min_lr_ratio: see
            :class:`~hsikit.tasks.base.BaseTask` (defaults: the reference's AdamW, lr 1e-4,
            weight decay 0.01, constant rate). The centroids are a buffer: no optimizer or
            weight decay touches them.
        betas: Adam/AdamW ``(β1, β2)`` (reference 0.9, 0.999).

    Batches: ``{"cube": (B, C, H, W), "valid": (B, H, W) bool, "labels": (B, H, W), "index": (B,)}``.
    """

    monitor = "val/selection"
    monitor_mode = "max"

    def __init__(
        self,
        model: str = "global_clustering",
        model_args: dict[str, Any] | None = None,
        crop_size: int | list[int] = 64,
        crops_per_scene: int = 1,
        min_overlap: float = 0.2,
        max_overlap: float = 0.8,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale_range: list[float] | tuple[float, float] = (0.9, 1.1),
        max_band_shift: int = 2,
        band_shift_mode: BandShiftMode = "edge",
        affine: bool = True,
        compactness_weight: float = 1.0,
        uniform_weight: float = 0.0,
        uniform_mode: str = "expected",
        sinkhorn_weight: float = 0.0,
        sinkhorn_iters: int = 3,
        orthogonality_weight: float = 0.1,
        balance_weight: float = 1.0,
        consistency_weight: float = 1.0,
        reconstruction_weight: float = 0.0,
        scheduled_weights: list[str] | None = None,
        kick_schedule: bool = True,
        refresh_assignments: bool = False,
        centroid_init: str = "kmeans",
        probe_tile: int = 256,
        probe_overlap: int = 32,
        min_used_fraction: float = MIN_USED_FRACTION,
        optimizer: OptimizerName = "adamw",
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        betas: list[float] | tuple[float, float] = (0.9, 0.999),
        momentum: float = 0.9,
        scheduler: SchedulerName = "constant",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
    ) -> None:
        if isinstance(crops_per_scene, bool) or int(crops_per_scene) != crops_per_scene or crops_per_scene < 1:
            raise ConfigError(f"crops_per_scene must be an integer >= 1, got {crops_per_scene!r}")
        unknown = sorted(set(scheduled_weights or ()) - set(SCHEDULABLE_WEIGHTS))
        if unknown:
            raise ConfigError(f"scheduled_weights: unknown names {unknown}; choose among {', '.join(SCHEDULABLE_WEIGHTS)}")
        if not 0.0 <= min_used_fraction <= 1.0:
            raise ConfigError(f"min_used_fraction must lie in [0, 1], got {min_used_fraction!r}")
        if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if not (isinstance(reconstruction_weight, (int, float)) and math.isfinite(reconstruction_weight)
                and reconstruction_weight >= 0):  # fmt: skip
            raise ConfigError(f"reconstruction_weight must be a finite number >= 0, got {reconstruction_weight!r}")
        if reconstruction_weight > 0 and not (model_args or {}).get("decoder_hidden"):
            raise ConfigError(
                f"reconstruction_weight={reconstruction_weight} needs the model's decoder: set "
                "model_args.decoder_hidden (e.g. 64), or reconstruction_weight: 0"
            )
        if centroid_init not in CENTROID_INITS:
            raise ConfigError(f"centroid_init must be one of {CENTROID_INITS}, got {centroid_init!r}")
        self.augmentation = TwoCropAugmentation(
            crop_size=crop_size,
            min_overlap=min_overlap,
            max_overlap=max_overlap,
            degrees=degrees,
            translate=translate,
            scale_range=tuple(scale_range),
            max_band_shift=max_band_shift,
            band_shift_mode=band_shift_mode,
            affine=affine,
        )
        self.crops_per_scene = int(crops_per_scene)
        self.loss_options = {
            "compactness_weight": compactness_weight,
            "uniform_weight": uniform_weight,
            "uniform_mode": uniform_mode,
            "sinkhorn_weight": sinkhorn_weight,
            "sinkhorn_iters": sinkhorn_iters,
            "orthogonality_weight": orthogonality_weight,
            "balance_weight": balance_weight,
            "consistency_weight": consistency_weight,
        }
        self.reconstruction_weight = float(reconstruction_weight)
        self.scheduled_weights = list(scheduled_weights or ())
        self.kick_schedule = bool(kick_schedule)
        self.refresh_assignments = bool(refresh_assignments)
        self.centroid_init = centroid_init
        self.betas = (float(betas[0]), float(betas[1]))
        self.probe_tile = int(probe_tile)
        self.probe_overlap = int(probe_overlap)
        self.min_used_fraction = float(min_used_fraction)
        self._pending_update: tuple[CropPair, Any, Any] | None = None
        self._centroids_initialised = False
        self._previous_labels: dict[int, torch.Tensor] = {}
        self._current_labels: dict[int, torch.Tensor] = {}
        self.last_probe_map: torch.Tensor | None = None
        self.last_probe_epoch: int | None = None
        super().__init__(
            model=model,
            model_args=model_args,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            scheduler=scheduler,
            warmup_steps=warmup_steps,
            min_lr_ratio=min_lr_ratio,
        )

    # ------------------------------------------------------------------ configuration
    def resolve_model_arguments(self, arguments: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        if data.get("bands") is not None:
            arguments.setdefault("in_bands", int(data["bands"]))
        return arguments

    def configure_losses(self) -> None:
        self.objective = ClusteringLoss(**self.loss_options)
        self.base_weights = {name: float(getattr(self.objective, f"{name}_weight")) for name in SCHEDULABLE_WEIGHTS}

    @property
    def num_clusters(self) -> int:
        return int(self._require_model().n_clusters)

    def _label_values(self) -> int:
        names = self.data_description.get("class_names") or []
        values = int(self.data_description.get("label_values") or 0)
        return max(values, len(names) + 1 if names else 0)

    def configure_metrics(self) -> None:
        super().configure_metrics()
        clusters = self.num_clusters
        self.stability = ClusteringMetrics(clusters, clusters, alignment="none", scores=("ari", "nmi"))
        self.consistency = ClusteringMetrics(clusters, clusters, alignment="none", scores=("ari", "nmi"))
        self.cluster_counts = ClusterCounts(clusters)
        classes = self._label_values()
        ignore = self.data_description.get("ignore_index", 0)
        self.supervised = (
            ClusteringMetrics(clusters, classes, ignore_index=ignore, scores=("nmi", "ari", "accuracy", "miou"))
            if classes > 0
            else None
        )

    def configure_optimizers(self) -> Any:
        configured = super().configure_optimizers()
        optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
        if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            for group in optimizer.param_groups:
                group["betas"] = self.betas
        return configured

    # ------------------------------------------------------------------ schedules
    def schedule_factor(self) -> float:
        """Scale of the scheduled quantities this epoch: 1 at epoch 0, decaying linearly to 0 at ``max_epochs``."""
        trainer = self._trainer
        total = getattr(trainer, "max_epochs", None) if trainer is not None else None
        if not total or total < 1:
            return 1.0
        return linear_warmup_decay(self.current_epoch, 1.0, 1.0, 0.0, 0, int(total))

    def current_kick(self) -> float:
        """EMA kick of dead clusters this epoch (the model's ``ema_kick``, scheduled when ``kick_schedule``)."""
        base = float(self._require_model().dictionary.kick)
        return base * self.schedule_factor() if self.kick_schedule else base

    def _apply_weight_schedule(self) -> None:
        factor = self.schedule_factor()
        for name in self.scheduled_weights:
            setattr(self.objective, f"{name}_weight", self.base_weights[name] * factor)

    # ------------------------------------------------------------------ training
    def shared_step(self, batch: Any, stage: str) -> torch.Tensor:
        if stage != "train":
            raise ConfigError(f"ClusteringTask.shared_step is the training step; {stage} runs the probe step")
        cube, valid = _scene_batch(batch)
        if self.crops_per_scene > 1:
            cube = cube.repeat_interleave(self.crops_per_scene, dim=0)
            valid = valid.repeat_interleave(self.crops_per_scene, dim=0)
        model = self._require_model()
        pair = self.augmentation(cube, valid)
        if self.centroid_init == "kmeans" and self.global_step == 0 and not self._centroids_initialised:
            self.initialise_centroids(pair)
            self._centroids_initialised = True
        first, second = model(pair.view1), model(pair.view2)
        self._apply_weight_schedule()
        result = self.objective(
            first,
            second,
            model.centroids,
            active=model.active,
            geometry1=pair.geometry1,
            geometry2=pair.geometry2,
            mask1=pair.mask1,
            mask2=pair.mask2,
        )
        total, parts = result.total, dict(result.parts)
        if self.reconstruction_weight > 0:
            parts["recon"] = 0.5 * sum(
                reconstruction_error(model.reconstruct(out.embeddings), view, mask)
                for out, view, mask in ((first, pair.view1, pair.mask1), (second, pair.view2, pair.mask2))
            )
            total = total + self.reconstruction_weight * parts["recon"]
        size = int(pair.view1.shape[0])
        self.log_loss("train", total, size)
        for name, value in parts.items():
            self.log(f"train/{name}", value.detach().float(), on_step=True, on_epoch=False, batch_size=size)
        self._pending_update = (pair, _detached(first), _detached(second))
        return total

    @torch.no_grad()
    def initialise_centroids(self, pair: CropPair) -> None:
        """Spherical k-means++ centres of the valid pixels of both views → the dictionary (rank 0's under DDP)."""
        model = self._require_model()
        points = torch.cat(
            [
                flatten_pixels(F.normalize(model(view).shifted, dim=1), mask)
                for view, mask in ((pair.view1, pair.mask1), (pair.view2, pair.mask2))
            ]
        )
        if points.shape[0] >= model.n_clusters:
            centres = spherical_kmeans(points.float(), model.n_clusters)
            model.dictionary.centroids.copy_(centres.to(model.dictionary.centroids.dtype))
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            model.dictionary.centroids.copy_(trainer.strategy.broadcast(model.dictionary.centroids, src=0))

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """The optimizer step (which runs the training step in its closure), then the dictionary's EMA update.

        The update happens here, not in ``on_train_batch_end``: Lightning runs the callbacks'
        ``on_train_batch_end`` (where checkpoints are written) before the module's, and a
        checkpoint taken between the step and the update would resume without it.
        """
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.update_dictionary()

    def update_dictionary(self) -> None:
        """EMA-update the centroids from the last training step's two views (skipped after a non-finite loss)."""
        pending, self._pending_update = self._pending_update, None
        if pending is None:
            return
        loss = self.last_training_loss
        if loss is not None and not bool(torch.isfinite(loss).all()):
            return  # the step was skipped (NaN guard): leave the dictionary as it is
        pair, first, second = pending
        model = self._require_model()
        if self.refresh_assignments:
            with torch.no_grad():
                first, second = model(pair.view1), model(pair.view2)
        if not all(bool(torch.isfinite(out.shifted).all()) for out in (first, second)):
            return  # non-finite embeddings would poison every centroid they touch
        update = model.update_centroids(first, second, masks=[pair.mask1, pair.mask2], kick=self.current_kick())
        size = int(pair.view1.shape[0])
        for name, value in (
            ("dead_clusters", update.dead.sum()),
            ("reseeded_clusters", update.reseeded.sum()),
            ("active_clusters", model.active.sum()),
            ("bandwidth", model.mean_shift.bandwidth.detach()),
        ):
            self.log(f"train/{name}", value.float(), on_step=True, on_epoch=False, batch_size=size)

    # ------------------------------------------------------------------ probe (validation / test)
    def probe_labels(self, cube: torch.Tensor) -> torch.Tensor:
        """Cluster labels ``(B, H, W)`` of normalised scenes ``(B, C, H, W)``: whole when small, tiled otherwise."""
        model = self._require_model()
        height, width = cube.shape[-2:]
        if height * width <= DIRECT_PROBE_PIXELS:
            with torch.no_grad():
                return model(cube).labels
        from hsikit.cube import Cube
        from hsikit.inference.clustering import cluster_scene

        maps = []
        for scene in cube:
            result = cluster_scene(
                model,
                Cube(scene.detach().float().cpu().numpy(), nonfinite="ignore"),
                scene_normalization="none",
                tile=self.probe_tile,
                overlap=self.probe_overlap,
                device=cube.device,
            )
            maps.append(torch.from_numpy(result.labels))  # type: ignore[union-attr]
        return torch.stack(maps).to(cube.device)

    def _probe_step(self, batch: Any, stage: str) -> None:
        cube, valid = _scene_batch(batch)
        labels = batch.get("labels") if isinstance(batch, Mapping) else None
        indices = batch.get("index") if isinstance(batch, Mapping) else None
        predicted = self.probe_labels(cube)
        perturbed = unperturb_map(self.probe_labels(perturb_probe(cube)))
        for position in range(cube.shape[0]):
            keep = valid[position]
            current = predicted[position][keep]
            self.consistency.update(current, perturbed[position][keep])
            self.cluster_counts.update(current)
            scene = int(indices[position]) if indices is not None else position
            if stage == "val":
                previous = self._previous_labels.get(scene)
                if previous is not None and previous.shape == current.shape:
                    self.stability.update(current, previous.to(current.device))
                self._current_labels[scene] = current.detach().cpu()
                if scene == 0 or self.last_probe_map is None:
                    self.last_probe_map = torch.where(keep, predicted[position], -1).detach().cpu()
                    self.last_probe_epoch = int(self.current_epoch)
            if self.supervised is not None and labels is not None:
                truth = labels[position]
                scored = keep & (truth >= 0)
                if bool(scored.any()):
                    self.supervised.update(predicted[position][scored], truth[scored])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._probe_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._probe_step(batch, "test")

    def _finish_probe(self, stage: str) -> None:
        model = self._require_model()
        counts = self.cluster_counts.compute()
        consistency = self.consistency.compute()
        used = used_clusters(counts)
        needed = required_clusters(int(model.active.sum()), self.min_used_fraction)
        values: dict[str, float] = {
            "consistency": float(consistency["ari"]),
            "consistency_nmi": float(consistency["nmi"]),
            "used_clusters": float(used),
            "label_entropy": _entropy(counts),
        }
        if stage == "val":
            compared = bool(self._previous_labels)
            stability = self.stability.compute() if compared else {"ari": torch.tensor(float("nan")),
                                                                   "nmi": torch.tensor(float("nan"))}
            values["stability"] = float(stability["ari"])
            values["stability_nmi"] = float(stability["nmi"])
            values["selection"] = selection_score(values["stability"], values["consistency"], used, needed)
            values["stability"] = values["stability"] if compared else NOT_SELECTABLE
            values["stability_nmi"] = values["stability_nmi"] if compared else NOT_SELECTABLE
        if self.supervised is not None and int(self.supervised.contingency.sum()) > 0:
            values.update({name.split("/")[-1]: float(v) for name, v in self.supervised.compute().items()})
        for name, value in values.items():
            self.log(f"{stage}/{name}", torch.tensor(value, dtype=torch.float32), prog_bar=name == "selection")
        for metric in (self.stability, self.consistency, self.cluster_counts):
            metric.reset()
        if self.supervised is not None:
            self.supervised.reset()

    def on_validation_epoch_end(self) -> None:
        self._finish_probe("val")
        if not self.trainer.sanity_checking:
            self._previous_labels = self._current_labels
        self._current_labels = {}

    def on_test_epoch_end(self) -> None:
        self._finish_probe("test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """``{"scene_index": (B,), "cluster_labels": (B, H, W)}`` (−1 on padding/nodata)."""
        cube, valid = _scene_batch(batch)
        labels = torch.where(valid, self.probe_labels(cube), -1)
        index = batch["index"] if isinstance(batch, Mapping) and "index" in batch else torch.arange(cube.shape[0])
        return {"scene_index": index, "cluster_labels": labels}

    # ------------------------------------------------------------------ checkpoints and report
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_STATE_KEY] = {
            "previous_labels": {str(key): value.clone() for key, value in self._previous_labels.items()}
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get(CHECKPOINT_STATE_KEY) or {}
        self._previous_labels = {int(key): value for key, value in (state.get("previous_labels") or {}).items()}

    def figures(self, stage: str) -> dict[str, Any]:
        if stage != "val" or self.last_probe_map is None:
            return {}
        from hsikit.viz.maps import plot_class_map

        labels = self.last_probe_map.numpy()
        names = {k: f"cluster {k}" for k in range(self.num_clusters)}
        figure = plot_class_map(labels, names, unlabelled_value=-1, title="clusters of the first probe scene")
        return {"cluster_map_val": figure}


class ClusteringSnapshots(Callback):
    """Every ``every_n_epochs`` epochs, write a model snapshot and the probe cluster map (reference ``save_interval``).

    The reference's trainer calls ``model.save(ckpt_dir/epoch_{e})`` every ``save_interval``
    epochs (``e`` counted from 1) and ``model.save(ckpt_dir/final)`` at the end. Here each
    snapshot is a folder ``<folder>/epoch_<e>`` (and ``<folder>/final``) holding:

    * ``model.safetensors`` + ``config.json``: the weights and dictionary of that moment,
      loadable with :func:`hsikit.load_model` and by ``hsikit cluster eval / layout``
      (the reference's ``run_layout.sh`` loop over checkpoints works on these folders);
    * ``cluster_map.npy`` ``(H, W)`` int32 and ``cluster_map.png``: the cluster map of the
      first probe scene from that epoch's validation round (−1 on padding/nodata), when
      validation ran that epoch.

    Lightning checkpoints (for exact resume) are written independently by the engine.

    Args:
        folder: where the snapshot folders go (``hsikit cluster run`` uses ``<out-dir>/snapshots``).
        every_n_epochs: interval N ≥ 1.
        final: also write ``final`` when training ends.
    """

    def __init__(self, folder: str | os.PathLike, every_n_epochs: int, final: bool = True) -> None:
        super().__init__()
        if isinstance(every_n_epochs, bool) or int(every_n_epochs) != every_n_epochs or every_n_epochs < 1:
            raise ConfigError(f"ClusteringSnapshots: every_n_epochs must be an integer >= 1, got {every_n_epochs!r}")
        self.folder = Path(folder)
        self.every_n_epochs = int(every_n_epochs)
        self.final = bool(final)
        self.written: list[Path] = []

    def write(self, trainer: Trainer, pl_module: LightningModule, name: str, epoch: int | None = None) -> Path | None:
        """Write one snapshot folder ``<folder>/<name>`` (rank 0 only); returns it.

        With ``epoch`` (0-based), the probe map is written only if it comes from that epoch's validation round.
        """
        if trainer.global_rank != 0:
            return None
        from hsikit.engine.export import export_model
        from hsikit.io.atomic import atomic_path

        target = self.folder / name
        network = getattr(pl_module, "model", None)
        if not isinstance(network, torch.nn.Module):
            raise ConfigError("ClusteringSnapshots: the task has no built model to save")
        export_data = getattr(pl_module, "export_data", None)
        export_model(network, target, task=getattr(pl_module, "task_name", None),
                     data=export_data() if callable(export_data) else None)  # fmt: skip
        probe = getattr(pl_module, "last_probe_map", None)
        if epoch is not None and getattr(pl_module, "last_probe_epoch", None) != epoch:
            probe = None  # no validation round this epoch: do not pass an older map off as this one
        if probe is not None:
            labels = np.asarray(probe, dtype=np.int32)
            with atomic_path(target / "cluster_map.npy") as tmp:
                np.save(tmp, labels)
            import matplotlib.image

            from hsikit.commands.cluster import cluster_colours

            with atomic_path(target / "cluster_map.png") as tmp:
                matplotlib.image.imsave(tmp, cluster_colours(labels, int(network.n_clusters)), format="png")
        self.written.append(target)
        return target

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning runs the epoch-end validation round before this hook, so the probe map is this epoch's.
        epoch = int(trainer.current_epoch) + 1
        if epoch % self.every_n_epochs == 0:
            self.write(trainer, pl_module, f"epoch_{epoch}", epoch=epoch - 1)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.final and not trainer.sanity_checking:
            self.write(trainer, pl_module, "final")


def _scene_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cube (B, C, H, W), valid (B, H, W) bool)`` of a scene batch (a dict, or a bare cube tensor)."""
    if isinstance(batch, torch.Tensor):
        cube = batch
        valid = torch.ones(cube.shape[0], *cube.shape[2:], dtype=torch.bool, device=cube.device)
    elif isinstance(batch, Mapping) and "cube" in batch:
        cube = batch["cube"]
        valid = batch.get("valid")
        if valid is None:
            valid = torch.ones(cube.shape[0], *cube.shape[2:], dtype=torch.bool, device=cube.device)
    else:
        raise ShapeMismatchError(
            f"a clustering batch is a dict with 'cube' (B, C, H, W) (and 'valid', 'labels'), got {type(batch).__name__}"
        )
    if cube.ndim != 4:
        raise ShapeMismatchError(f"a clustering batch holds scenes (B, C, H, W), got cube of shape {tuple(cube.shape)}")
    return cube if cube.is_floating_point() else cube.float(), valid.to(torch.bool)


def _entropy(counts: torch.Tensor) -> float:
    """Shannon entropy (nats) of a histogram ``(K,)``."""
    share = counts.double() / max(float(counts.sum()), 1.0)
    share = share[share > 0]
    return float(-(share * share.log()).sum())


def _detached(output: Any) -> Any:
    return type(output)(*(value.detach() for value in output))


__all__ = [
    "CENTROID_INITS",
    "ClusterCounts",
    "ClusteringSnapshots",
    "ClusteringTask",
    "SCHEDULABLE_WEIGHTS",
    "linear_warmup_decay",
    "spherical_kmeans",
]
