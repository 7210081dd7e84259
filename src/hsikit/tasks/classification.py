"""Spectral (per-pixel) classification.

Batches are ``(spectra, targets)``: spectra ``(B, C)`` (or ``(B, C, H, W)`` patches for
spatial models) and 0-based class indices ``(B,)``; targets equal to ``ignore_index``
(unlabelled) are left out of the loss and the metrics.

Metrics (each stage, as torchmetrics so they accumulate over the epoch and
synchronise across DDP ranks): overall accuracy (``accuracy``), average accuracy
(mean of the per-class recalls, ``average_accuracy``), Cohen's ``kappa`` and macro
``f1``. The confusion matrix of the last validation/test epoch is kept for the
run report's figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.tasks.base import STAGES, BaseTask, OptimizerName, SchedulerName, Stage, stage_key
from hsikit.tasks.registry import register_task

DEFAULT_IGNORE_INDEX = -100


@register_task("classification")
class ClassificationTask(BaseTask):
    """Classify pixels (or patches) with a registered classifier and cross-entropy.

    Args:
        model, model_args: the registered classifier and its arguments; ``in_bands`` and
            ``num_classes`` are taken from the datamodule when left out.
        class_weights: per-class weights of the cross-entropy (length K), or None.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        ignore_index: target value of unlabelled samples.
        optimizer, lr, weight_decay, momentum, scheduler, warmup_steps, min_lr_ratio: see
            :class:`~hsikit.tasks.base.BaseTask`.
    """

    monitor = "val/accuracy"
    monitor_mode = "max"

    def __init__(
        self,
        model: str = "spectral_mlp",
        model_args: dict[str, Any] | None = None,
        class_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        optimizer: OptimizerName = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: SchedulerName = "warmup_cosine",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
    ) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)
        self.confusion: dict[str, torch.Tensor] = {}
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
        if data.get("class_names"):
            arguments.setdefault("num_classes", len(data["class_names"]))
        return arguments

    @property
    def num_classes(self) -> int:
        return int(self.model_args["num_classes"])

    def configure_losses(self) -> None:
        weights = None if self.class_weights is None else torch.tensor(self.class_weights, dtype=torch.float32)
        self.register_buffer("loss_weights", weights, persistent=False)

    def configure_metrics(self) -> None:
        super().configure_metrics()
        classes = self.num_classes
        if self.class_weights is not None and len(self.class_weights) != classes:
            raise ConfigError(f"class_weights has {len(self.class_weights)} values for {classes} classes")
        template = MetricCollection(
            {
                "accuracy": MulticlassAccuracy(classes, average="micro", ignore_index=self.ignore_index),
                "average_accuracy": MulticlassAccuracy(classes, average="macro", ignore_index=self.ignore_index),
                "kappa": MulticlassCohenKappa(classes, ignore_index=self.ignore_index),
                "f1": MulticlassF1Score(classes, average="macro", ignore_index=self.ignore_index),
            }
        )
        self.metrics = nn.ModuleDict({stage_key(stage): template.clone(prefix=f"{stage}/") for stage in STAGES})
        for metric in self.metrics[stage_key("train")].values():
            metric.persistent(True)
        self.confusion_matrices = nn.ModuleDict(
            {
                stage_key(stage): MulticlassConfusionMatrix(classes, ignore_index=self.ignore_index)
                for stage in ("val", "test")
            }
        )

    # ------------------------------------------------------------------ steps
    def shared_step(self, batch: Any, stage: Stage) -> torch.Tensor:
        inputs, targets = _unpack(batch)
        logits = self(inputs)
        if logits.shape[0] != targets.shape[0]:
            raise ShapeMismatchError(
                f"the model returned {logits.shape[0]} predictions for {targets.shape[0]} targets "
                f"(logits {tuple(logits.shape)})"
            )
        loss = F.cross_entropy(
            logits.float(),
            targets,
            weight=self.loss_weights,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )
        batch_size = int(targets.shape[0])
        self.log_loss(stage, loss, batch_size)
        predictions = logits.detach().argmax(dim=1)
        metrics = self.metrics[stage_key(stage)]
        metrics.update(predictions, targets)
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=batch_size)
        if stage_key(stage) in self.confusion_matrices:
            self.confusion_matrices[stage_key(stage)].update(predictions, targets)
        return loss

    def _store_confusion(self, stage: str) -> None:
        matrix = self.confusion_matrices[stage_key(stage)]
        self.confusion[stage] = matrix.compute().detach().cpu()
        matrix.reset()

    def on_validation_epoch_end(self) -> None:
        self._store_confusion("val")

    def on_test_epoch_end(self) -> None:
        self._store_confusion("test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """``{"index": flat pixel index (B,), "label": class index (B,), "probability": max softmax (B,)}``."""
        inputs, index = _unpack(batch)
        probabilities = torch.softmax(self(inputs).float(), dim=1)
        confidence, label = probabilities.max(dim=1)
        return {"index": index, "label": label, "probability": confidence}

    # ------------------------------------------------------------------ report
    def figures(self, stage: str) -> dict[str, Any]:
        matrix = self.confusion.get(stage)
        if matrix is None:
            return {}
        names = self.data_description.get("class_names") or [str(k) for k in range(self.num_classes)]
        return {f"confusion_matrix_{stage}": confusion_matrix_figure(matrix.numpy(), names, title=f"{stage} set")}


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        for inputs_key, targets_key in (("spectra", "targets"), ("image", "label"), ("inputs", "targets")):
            if inputs_key in batch and targets_key in batch:
                return batch[inputs_key], batch[targets_key]
    raise ShapeMismatchError(
        f"a classification batch is (inputs, targets) or a dict with 'spectra'/'targets', got {type(batch).__name__}"
    )


def confusion_matrix_figure(matrix: np.ndarray, class_names: list[str], title: str = "") -> Any:
    """A matplotlib figure of a ``(K, K)`` confusion matrix (rows: true class), row-normalised colours."""
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    recall = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    size = max(4.0, 0.45 * len(class_names) + 2.0)
    figure, axes = plt.subplots(figsize=(size + 1.0, size))
    image = axes.imshow(recall, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(class_names)), labels=class_names, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(class_names)), labels=class_names, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if len(class_names) <= 20:
        for row in range(counts.shape[0]):
            for col in range(counts.shape[1]):
                if counts[row, col]:
                    colour = "white" if recall[row, col] > 0.5 else "black"
                    axes.text(col, row, str(counts[row, col]), ha="center", va="center", fontsize=6, color=colour)
    overall = np.trace(counts) / max(1, counts.sum())
    heading = f"Confusion matrix - {title}" if title else "Confusion matrix"
    axes.set_title(f"{heading} (overall accuracy {overall:.3f})")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    figure.tight_layout()
    return figure
