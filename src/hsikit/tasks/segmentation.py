"""Semantic segmentation with optional spectral-similarity attention supervision (SSMGNet).

Batches are ``{"image": (B, C, H, W), "label": (B, H, W)}`` (or ``(image, label)`` pairs)
with 0-based class indices (0 = background is a real class for the glacier data) and
``ignore_index`` for unscored pixels (see :mod:`hsikit.data.segmentation_datamodule`).

Loss (SSMGNet's ``train.py``)::

    L = L_seg(logits, labels) + λ(epoch) · MSE(attention, target(image))

* ``L_seg``: class-weighted cross-entropy or focal loss (:mod:`hsikit.losses.segmentation`);
* ``target(image)``: the spectral-similarity attention label of the raw image against a
  reference matrix (:class:`~hsikit.losses.attention.SpectralAttentionTarget`);
* ``λ``: 6 for epochs 1–9, halved at the start of epochs 10, 20, … (``attention_weight``,
  ``attention_halve_every``). ``attention_weight: 0`` turns the supervision off (the
  ablation "the same SegModel without the attention loss"); models without an attention
  map (U-Net) never use it.

Logged per stage: ``<stage>/loss`` (the total that is optimised), ``<stage>/seg_loss``
(the reference's ``train_loss`` / ``val_loss``), ``<stage>/att_loss`` (``train_atten`` /
``val_atten``), ``train/attention_weight``; for validation and test every score of
:mod:`hsikit.metrics.segmentation` (``val/Acc``, ``val/Kappa``, ``val/mIoU``,
``val/IoU/<k>_<class>``, ``val/FWIoU``, ``val/Precision``…``val/F2/<k>_<class>``) in the CSV
and TensorBoard logs of the run. The run folder also gets ``metric_training_log.csv`` with
the reference's columns, one row per epoch (per-class columns for any number of classes).

Optimisers: Adam (the reference), AdamW, SGD (momentum). Learning-rate schedules stepped
once per epoch as in the reference: ``"step"`` (×``step_ratio`` every ``lr_step`` epochs),
``"exp"`` (×``step_ratio`` every epoch), ``"cos"`` (cosine to 0 over ``max_epochs``),
``"poly"`` (``(1 − e/max_epochs)^poly_power``); or the engine's per-step ``"warmup_cosine"``
and ``"constant"``.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_only
from torchmetrics import MeanMetric

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.segmentation import (
    CLASS_WEIGHTINGS,
    SEGMENTATION_LOSSES,
    AttentionWeightSchedule,
    class_weights_from_counts,
    segmentation_loss,
)
from hsikit.metrics.segmentation import SegmentationMetrics, logged_scores, reference_columns
from hsikit.models.segmentation.output import SegmentationOutput, segmentation_logits
from hsikit.tasks.base import STAGES, BaseTask, Stage, stage_key
from hsikit.tasks.registry import register_task

SegmentationScheduler = Literal["step", "exp", "cos", "poly", "warmup_cosine", "constant"]
EPOCH_SCHEDULERS: tuple[str, ...] = ("step", "exp", "cos", "poly")
SCHEDULERS: tuple[str, ...] = EPOCH_SCHEDULERS + ("warmup_cosine", "constant")
TRAINING_LOG = "metric_training_log.csv"


@register_task("segmentation")
class SegmentationTask(BaseTask):
    """Train a registered segmentation model (``"ssmgnet"``, ``"unet"``) on image tiles.

    Args:
        model, model_args: the registered segmentation network; ``in_bands`` and
            ``num_classes`` come from the datamodule when left out.
        loss: ``"ce"`` (class-weighted cross-entropy) or ``"focal"``.
        class_weights: per-class weights (length K), ``"inverse_frequency"`` or
            ``"median_frequency"`` (from the training pixels' class counts), or None. The
            reference used ``[0.03247, 0.25926, 0.70827]`` for its 3 glacier classes.
        focal_gamma: γ of the focal loss.
        ignore_index: target value of unscored pixels.
        attention_weight: initial λ of the attention MSE (the reference: 6; 0: off).
        attention_halve_every: halve λ at the start of every epoch whose 1-based index is a
            multiple of this (the reference: 10; 0: never).
        reference_matrix: ``.npy``/``.csv`` file of reference spectra ``(bands, references)``
            (None: SSMGNet's 10 × 10 glacier matrix). Its band count must equal the images'.
        reference_layout: ``"bands_by_references"`` (one spectrum per column) or
            ``"references_by_bands"`` (one per row) for the file.
        attention_mode, attention_similarity, attention_method: see
            :class:`~hsikit.losses.attention.SpectralAttentionTarget`.
        optimizer: ``"adam"`` (the reference), ``"adamw"`` or ``"sgd"``.
        lr: initial learning rate (the reference: 5e-3).
        weight_decay: L2 (Adam, SGD) or decoupled (AdamW) weight decay on weights (not on
            biases and normalisation parameters).
        momentum: SGD momentum.
        scheduler: ``"step"``, ``"exp"``, ``"cos"``, ``"poly"`` (per epoch), ``"warmup_cosine"``
            or ``"constant"`` (per optimizer step, see :class:`~hsikit.tasks.base.BaseTask`).
        lr_step: epochs between decays of ``"step"``.
        step_ratio: decay factor of ``"step"`` and ``"exp"`` (the reference: 0.94).
        poly_power: power of ``"poly"`` (the reference: 2.5).
        warmup_steps, min_lr_ratio: for ``"warmup_cosine"`` / ``"constant"``.
        training_log: file name of the reference-style CSV in the run folder (None: not written).
    """

    monitor = "val/mIoU"
    monitor_mode = "max"

    def __init__(
        self,
        model: str = "ssmgnet",
        model_args: dict[str, Any] | None = None,
        loss: Literal["ce", "focal"] = "ce",
        class_weights: list[float] | str | None = None,
        focal_gamma: float = 2.0,
        ignore_index: int = -100,
        attention_weight: float = 6.0,
        attention_halve_every: int = 10,
        reference_matrix: str | None = None,
        reference_layout: Literal["bands_by_references", "references_by_bands"] = "bands_by_references",
        attention_mode: Literal["consistent", "legacy"] = "consistent",
        attention_similarity: Literal["minmax", "linear", "exp"] = "minmax",
        attention_method: Literal["auto", "shift", "ridge"] = "auto",
        optimizer: Literal["adam", "adamw", "sgd"] = "adam",
        lr: float = 5e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: SegmentationScheduler = "step",
        lr_step: int = 1,
        step_ratio: float = 0.94,
        poly_power: float = 2.5,
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        training_log: str | None = TRAINING_LOG,
    ) -> None:
        if loss not in SEGMENTATION_LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(SEGMENTATION_LOSSES)}, got {loss!r}")
        if isinstance(class_weights, str) and class_weights not in CLASS_WEIGHTINGS:
            raise ConfigError(
                f"class_weights must be a list of numbers, one of {', '.join(CLASS_WEIGHTINGS)}, or None; "
                f"got {class_weights!r}"
            )
        if scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
        if scheduler in EPOCH_SCHEDULERS and warmup_steps:
            raise ConfigError(
                f"warmup_steps={warmup_steps} works with scheduler 'warmup_cosine' or 'constant', not {scheduler!r}"
            )
        if int(lr_step) != lr_step or lr_step < 1 or not 0 < step_ratio <= 1 or not poly_power > 0:
            raise ConfigError(
                f"need lr_step >= 1, 0 < step_ratio <= 1 and poly_power > 0; got {lr_step}, {step_ratio}, {poly_power}"
            )
        self.loss_name = loss
        self.class_weights_option: list[float] | str | None = (
            [float(w) for w in class_weights] if isinstance(class_weights, (list, tuple)) else class_weights
        )
        self.focal_gamma = float(focal_gamma)
        self.ignore_index = int(ignore_index)
        self.attention_schedule = AttentionWeightSchedule(attention_weight, attention_halve_every)
        self.reference_matrix = reference_matrix
        self.reference_layout = reference_layout
        self.attention_options = {
            "mode": attention_mode,
            "similarity": attention_similarity,
            "method": attention_method,
        }
        self.scheduler_name = scheduler
        self.optimizer_name = optimizer
        self.lr_step, self.step_ratio, self.poly_power = int(lr_step), float(step_ratio), float(poly_power)
        self.training_log = training_log
        self.attention_target: nn.Module | None = None
        self.segmentation_criterion: nn.Module | None = None
        self.confusion: dict[str, torch.Tensor] = {}
        self.last_scores: dict[str, dict[str, float]] = {}
        self._warned_no_attention = False
        super().__init__(
            model=model,
            model_args=model_args,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            scheduler=scheduler if scheduler in ("warmup_cosine", "constant") else "constant",
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

    def _resolved_model_arguments(self, required: bool) -> dict[str, Any] | None:
        # SSMGNet's signature defaults in_bands=6, num_classes=3 (the reference's); a model must not
        # be built with them before the data say how many bands and classes there are.
        arguments = self.resolve_model_arguments(dict(self.model_args), self.data_description)
        missing = [name for name in ("in_bands", "num_classes") if name not in arguments]
        if missing:
            if required:
                raise ConfigError(
                    f"model {self.model_name!r} needs {', '.join(missing)}: set them in model_args "
                    "(--model.init_args.model_args) or train with a datamodule that describes its data"
                )
            return None
        return super()._resolved_model_arguments(required)

    @property
    def num_classes(self) -> int:
        return int(self.model_args["num_classes"])

    @property
    def attention_enabled(self) -> bool:
        """Whether the attention MSE is part of the loss (λ > 0)."""
        return self.attention_schedule.initial > 0

    def attention_weight_at(self, epoch_index: int) -> float:
        """λ during the 0-based epoch ``epoch_index`` (Lightning's ``current_epoch``)."""
        return self.attention_schedule(epoch_index + 1)

    def _class_weights(self) -> list[float] | None:
        option = self.class_weights_option
        if option is None or isinstance(option, list):
            if option is not None and len(option) != self.num_classes:
                raise ConfigError(
                    f"class_weights has {len(option)} values for {self.num_classes} classes; give one per class"
                )
            return option
        counts = self.data_description.get("class_pixel_counts")
        if not counts:
            raise ConfigError(
                f"class_weights={option!r} needs the training pixels' class counts, which come from a datamodule "
                "with 'class_pixel_counts' in its data description (SegmentationDataModule); or give the weights"
            )
        return class_weights_from_counts(counts, option)  # type: ignore[arg-type]

    def _build_attention_target(self, bands: int) -> nn.Module:
        from hsikit.data.reference_spectra import glacier_reference_matrix, load_reference_matrix, validate_reference_matrix
        from hsikit.losses.attention import SpectralAttentionTarget

        if self.reference_matrix is None:
            matrix = glacier_reference_matrix()
            if matrix.shape[0] != bands:
                raise ShapeMismatchError(
                    f"the default reference matrix (SSMGNet's glacier spectra) has {matrix.shape[0]} bands but the "
                    f"images have {bands}; set reference_matrix to a .npy/.csv file of {bands}-band reference "
                    "spectra (one per column), or attention_weight: 0 to train without attention supervision"
                )
            matrix = validate_reference_matrix(matrix, bands=bands)
        else:
            matrix = load_reference_matrix(self.reference_matrix, self.reference_layout, bands=bands)
        return SpectralAttentionTarget(matrix, **self.attention_options)  # type: ignore[arg-type]

    def _configure_criteria(self, required: bool) -> None:
        """Build the segmentation loss and the attention target for the current model and data.

        Class weights computed from the data wait for the data description unless ``required``.
        """
        if isinstance(self.class_weights_option, str) and not self.data_description.get("class_pixel_counts"):
            if required:
                self._class_weights()  # raises, naming the fix
            self.segmentation_criterion = None
        else:
            self.segmentation_criterion = segmentation_loss(
                self.loss_name, self._class_weights(), self.ignore_index, self.focal_gamma
            )
        if self.attention_enabled:
            normalization = self.data_description.get("normalization") or {}
            if normalization and normalization.get("name", "none") != "none":
                raise ConfigError(
                    f"the attention supervision compares raw pixel spectra with the reference spectra, but the data "
                    f"are normalised ({normalization.get('name')!r}); use normalization: none in the datamodule, or "
                    "attention_weight: 0"
                )
            if self.attention_target is None:
                self.attention_target = self._build_attention_target(int(self.model_args["in_bands"]))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.model is not None:  # built before the data were known: refresh what depends on them
            self._configure_criteria(required=False)

    def configure_metrics(self) -> None:
        super().configure_metrics()
        self._configure_criteria(required=False)
        self.segmentation_metrics = nn.ModuleDict(
            {stage_key(stage): SegmentationMetrics(self.num_classes, self.ignore_index) for stage in ("val", "test")}
        )
        self.component_means = nn.ModuleDict(
            {
                stage_key(stage): nn.ModuleDict(
                    {"seg": MeanMetric(nan_strategy="ignore"), "att": MeanMetric(nan_strategy="ignore")}
                )
                for stage in STAGES
            }
        )
        for metric in self.component_means[stage_key("train")].values():
            metric.persistent(True)

    # ------------------------------------------------------------------ steps
    def forward(self, image: torch.Tensor) -> SegmentationOutput:  # type: ignore[override]
        output = self._require_model()(image)
        if isinstance(output, SegmentationOutput):
            return output
        return SegmentationOutput(segmentation_logits(output), None)

    def shared_step(self, batch: Any, stage: Stage) -> torch.Tensor:
        image, target = _unpack(batch)
        output = self(image)
        logits = output.logits
        if logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
            raise ShapeMismatchError(
                f"the model returned logits {tuple(logits.shape)} for labels {tuple(target.shape)}; a segmentation "
                "model must keep the input's height and width"
            )
        if self.segmentation_criterion is None:
            self._configure_criteria(required=True)
        assert self.segmentation_criterion is not None
        seg_loss = self.segmentation_criterion(logits.float(), target)
        loss = seg_loss
        batch_size = int(target.shape[0])
        means = self.component_means[stage_key(stage)]
        means["seg"].update(seg_loss.detach().float(), weight=batch_size)
        if self.attention_enabled and output.attention is not None:
            assert self.attention_target is not None
            attention_target = self.attention_target(image).similarity
            att_loss = F.mse_loss(output.attention.float(), attention_target.float())
            weight = self.attention_weight_at(self.current_epoch)
            loss = seg_loss + weight * att_loss
            means["att"].update(att_loss.detach().float(), weight=batch_size)
            if stage == "train":
                self.log("train/att_loss", att_loss.detach(), on_step=True, on_epoch=False, batch_size=batch_size)
                self.log("train/attention_weight", weight, on_step=True, on_epoch=False, batch_size=batch_size)
        elif self.attention_enabled and not self._warned_no_attention:
            self._warned_no_attention = True
            warnings.warn(
                f"model {self.model_name!r} has no attention map: the attention supervision "
                f"(attention_weight={self.attention_schedule.initial}) is not applied; set attention_weight: 0",
                UserWarning,
                stacklevel=2,
            )
        if stage == "train":
            self.log("train/seg_loss", seg_loss.detach(), on_step=True, on_epoch=False, batch_size=batch_size)
        self.log_loss(stage, loss, batch_size)
        if stage_key(stage) in self.segmentation_metrics:
            self.segmentation_metrics[stage_key(stage)].update(logits.detach().argmax(dim=1), target)
        return loss

    # ------------------------------------------------------------------ epoch ends
    def _component_epoch_means(self, stage: str) -> dict[str, float]:
        means = self.component_means[stage_key(stage)]
        values = {}
        for name, metric in means.items():
            values[name] = float(metric.compute()) if metric.update_count else math.nan
            metric.reset()
        return values

    def _finish_evaluation(self, stage: str) -> None:
        metric = self.segmentation_metrics[stage_key(stage)]
        components = self._component_epoch_means(stage)
        if not metric.update_count:
            return
        scores = metric.compute()
        self.confusion[stage] = metric.confusion.detach().cpu().clone()
        metric.reset()
        class_names = self.data_description.get("class_names")
        logged = {f"{stage}/{name}": value for name, value in logged_scores(scores, class_names).items()}
        logged[f"{stage}/seg_loss"] = components["seg"]
        if not math.isnan(components["att"]):
            logged[f"{stage}/att_loss_epoch"] = components["att"]
        self.log_dict(logged, on_step=False, on_epoch=True)
        self.last_scores[stage] = {
            f"{stage}_loss": components["seg"],
            f"{stage}_atten": components["att"],
            **reference_columns(scores),
        }

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test")

    def on_train_epoch_start(self) -> None:
        self.last_scores.pop("val", None)  # scores of the sanity check or an earlier epoch

    def on_train_epoch_end(self) -> None:
        components = self._component_epoch_means("train")
        self.log("train/seg_loss_epoch", components["seg"], on_step=False, on_epoch=True)
        if not math.isnan(components["att"]):
            self.log("train/att_loss_epoch", components["att"], on_step=False, on_epoch=True)
        validation = self.last_scores.pop("val", {})
        row: dict[str, Any] = {
            "epoch": self.current_epoch + 1,
            "train_loss": components["seg"],
            "train_atten": components["att"],
        }
        row["val_loss"] = validation.pop("val_loss", math.nan)
        row["val_atten"] = validation.pop("val_atten", math.nan)
        row.update(validation)
        self._append_training_log(row)

    @rank_zero_only
    def _append_training_log(self, row: dict[str, Any]) -> None:
        if self.training_log is None or self._trainer is None or self.trainer.sanity_checking:
            return
        folder = Path(self.trainer.default_root_dir)
        write_training_log_row(folder / self.training_log, row, self.num_classes)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        if self.scheduler_name in ("warmup_cosine", "constant"):
            return super().configure_optimizers()
        hparams = self.hparams
        decay, no_decay = [], []
        for parameter in self._require_model().parameters():
            if parameter.requires_grad:
                (decay if parameter.ndim >= 2 else no_decay).append(parameter)
        groups = [
            {"params": decay, "weight_decay": hparams.weight_decay, "name": "weights"},
            {"params": no_decay, "weight_decay": 0.0, "name": "biases_and_norms"},
        ]
        if self.optimizer_name == "adamw":
            optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=hparams.lr)
        elif self.optimizer_name == "adam":
            optimizer = torch.optim.Adam(groups, lr=hparams.lr)
        else:
            optimizer = torch.optim.SGD(groups, lr=hparams.lr, momentum=hparams.momentum)
        scheduler: torch.optim.lr_scheduler.LRScheduler
        if self.scheduler_name == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.lr_step, gamma=self.step_ratio)
        elif self.scheduler_name == "exp":
            scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.step_ratio)
        else:
            epochs = self.trainer.max_epochs
            if epochs is None or epochs < 1:
                raise ConfigError(
                    f"scheduler {self.scheduler_name!r} decays over the training length; set --trainer.max_epochs"
                )
            if self.scheduler_name == "cos":
                scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            else:
                scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=epochs, power=self.poly_power)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1}}

    # ------------------------------------------------------------------ export and report
    def export_data(self) -> dict[str, Any]:
        data = dict(self.data_description)
        data["segmentation"] = {
            "ignore_index": self.ignore_index,
            "attention_supervision": self.attention_enabled,
        }
        return data

    def figures(self, stage: str) -> dict[str, Any]:
        matrix = self.confusion.get(stage)
        if matrix is None:
            return {}
        from hsikit.tasks.classification import confusion_matrix_figure

        names = self.data_description.get("class_names") or [str(k) for k in range(self.num_classes)]
        return {f"confusion_matrix_{stage}": confusion_matrix_figure(matrix.numpy(), names, title=f"{stage} tiles")}


# ---------------------------------------------------------------------------- helpers
def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, Mapping) and "image" in batch and "label" in batch:
        return batch["image"], batch["label"]
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ShapeMismatchError(
        f"a segmentation batch is {{'image': (B, C, H, W), 'label': (B, H, W)}} or an (image, label) pair, "
        f"got {type(batch).__name__}"
    )


def training_log_columns(num_classes: int) -> list[str]:
    """The reference's ``metric_training_log.csv`` columns, per-class columns for ``num_classes`` classes."""
    columns = ["epoch", "train_loss", "train_atten", "val_loss", "val_atten", "Acc", "Kappa"]
    for scalar in ("mIoU", "FWIoU", "Precision", "Recall", "F1_score", "F2_score"):
        columns.append(scalar)
        if scalar != "FWIoU":
            columns += [f"{scalar}{k}" for k in range(num_classes)]
    return columns


def write_training_log_row(path: Path, row: Mapping[str, Any], num_classes: int) -> Path:
    """Add (or replace) the row of ``row["epoch"]`` in the CSV training log, written atomically.

    Rows of later epochs (left by an interrupted run that is being resumed) are dropped.
    """
    from hsikit.io.atomic import atomic_path

    columns = training_log_columns(num_classes)
    rows: list[dict[str, str]] = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("epoch") and int(r["epoch"]) < int(row["epoch"])]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for previous in rows:
        writer.writerow(previous)
    writer.writerow({key: _csv_value(row.get(key, math.nan)) for key in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _csv_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{float(value):.6f}"
    return str(value)


__all__ = ["EPOCH_SCHEDULERS", "SCHEDULERS", "SegmentationTask", "training_log_columns", "write_training_log_row"]
