"""Spectral (per-pixel) and spectral–spatial (patch) classification.

Batches are ``(inputs, targets)``: spectra ``(B, C)`` (or ``(B, C, H, W)`` patches for
spatial models) and 0-based class indices ``(B,)``; targets equal to ``ignore_index``
(unlabelled) are left out of the loss and the metrics.

Metrics (every stage, every epoch): overall accuracy (``accuracy``), average accuracy
(``average_accuracy``, the mean recall over the classes present), Cohen's ``kappa`` and
macro ``f1``; for validation and test also each class's ``precision``, ``recall`` and
``f1`` (logged as ``val/per_class/recall_03``..., numbered by the raster label value).
All come from one :class:`~hsikit.metrics.classification.ClassificationScores` per stage,
a torchmetrics confusion matrix that accumulates over the epoch and is summed across DDP
ranks before the scores are computed. The confusion matrices of the last validation and
test epochs give the run report's figures (confusion matrix and per-class scores).

deephyp's classifier options (spec 004 §3, §5) are available and fixed where the
original was wrong: ``balance_classes`` weighs each sample by
``max_j count_j / count_k`` of its class (counts + 1 over the *training set*, computed
once at setup, instead of per batch) and averages ``sum_n s_n CE_n`` over the weighted
samples; ``l2_penalty`` adds ``λ Σ_p ||p||² / 2`` over all weights and biases to the loss
(deephyp's ``wd_lambda``, which in the original never reached the gradients); and the
``exponential`` / ``piecewise`` learning-rate schedules count optimizer steps.

Regularisation for spatially disjoint evaluation (training only; validation, test and
prediction see the inputs unchanged): ``spectral_noise`` (additive Gaussian noise on every
input value), ``spectral_scale`` (one random gain per sample), ``mixup_alpha`` (mixup of
inputs and one-hot targets), and ``restore_best`` (keep the weights of the best validation
epoch: model selection on a validation set carved from the *training* blocks, see
:func:`hsikit.data.splits.carve_validation_blocks`, never on the test pixels).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.spectral import balanced_cross_entropy
from hsikit.metrics.classification import PER_CLASS_SCORES, SCALAR_SCORES, ClassificationScores
from hsikit.tasks.base import STAGES, BaseTask, OptimizerName, Stage, stage_key
from hsikit.tasks.optim import (
    ScheduleName,
    l2_penalty,
    optimizer_with_step_schedule,
    step_schedule_from_options,
)
from hsikit.tasks.registry import register_task

DEFAULT_IGNORE_INDEX = -100
#: stages whose per-class scores are logged and drawn (train: only the scalar scores)
PER_CLASS_STAGES: tuple[str, ...] = ("val", "test")
#: models that read patches: their ``patch_size`` comes from the datamodule
PATCH_MODELS: tuple[str, ...] = ("hybridsn", "spectral_spatial_cnn")
#: checkpoint entry holding the best validation epoch's weights of ``restore_best``
RESTORE_BEST_KEY = "hsikit_restore_best"
#: validation scores ``restore_best`` can select on (``loss``: lowest, the others: highest)
RestoreBest = Literal["accuracy", "average_accuracy", "kappa", "f1", "loss"]


@register_task("classification")
class ClassificationTask(BaseTask):
    """Classify pixels (or patches) with a registered classifier and cross-entropy.

    Args:
        model, model_args: the registered classifier and its arguments; ``in_bands`` and
            ``num_classes`` are taken from the datamodule when left out.
        class_weights: per-class weights of the cross-entropy (length K), or None.
        balance_classes: deephyp's class balancing (weights from the training labels,
            :func:`~hsikit.models.spectral.classifiers.class_balance_weights`, and the
            "mean over weighted samples" reduction of
            :func:`~hsikit.losses.spectral.balanced_cross_entropy`); needs a datamodule that
            exposes its training targets; excludes ``class_weights`` and ``label_smoothing``.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        ignore_index: target value of unlabelled samples.
        l2_penalty: λ of the penalty ``λ Σ_p ||p||² / 2`` (all parameters, biases included)
            added to the training loss (deephyp ``wd_lambda``); 0 = off.
        optimizer, lr, weight_decay, momentum, warmup_steps, min_lr_ratio: see
            :class:`~hsikit.tasks.base.BaseTask`.
        scheduler: ``"warmup_cosine"``, ``"constant"`` (BaseTask) or deephyp's
            ``"exponential"`` (``lr · lr_decay_rate^floor(step / lr_decay_steps)``) and
            ``"piecewise"`` (``lr`` until ``lr_piecewise_bounds[0]`` optimizer steps, then
            ``lr_piecewise_values[0]``...). Steps are optimizer steps, not epochs.
        lr_decay_steps, lr_decay_rate, lr_piecewise_bounds, lr_piecewise_values: the
            options of those two schedules.
        spectral_noise: standard deviation of Gaussian noise added to every training input
            value (in the units of the normalised inputs); 0 = off.
        spectral_scale: each training sample is multiplied by a gain drawn uniformly from
            ``[1 - s, 1 + s]`` (illumination change); 0 = off; must be < 1.
        mixup_alpha: > 0 mixes each training batch with a shuffled copy of itself,
            ``x = λ x_a + (1 - λ) x_b`` with ``λ ~ Beta(α, α)`` (one λ per batch) and the loss
            ``λ CE(y_a) + (1 - λ) CE(y_b)``; 0 = off. Excludes ``balance_classes``.
        restore_best: a validation score (``"accuracy"``, ``"average_accuracy"``,
            ``"kappa"``, ``"f1"``: highest wins; ``"loss"``: lowest) whose best epoch's
            weights are put back into the model when training ends (ties: the earlier epoch);
            ``best_val_epoch`` and ``best_val_score`` record it. None = keep the last weights.
            Needs validation batches every epoch.
    """

    monitor = "val/accuracy"
    monitor_mode = "max"

    def __init__(
        self,
        model: str = "spectral_mlp",
        model_args: dict[str, Any] | None = None,
        class_weights: list[float] | None = None,
        balance_classes: bool = False,
        label_smoothing: float = 0.0,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        l2_penalty: float = 0.0,
        optimizer: OptimizerName = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: ScheduleName = "warmup_cosine",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        lr_decay_steps: int | None = None,
        lr_decay_rate: float | None = None,
        lr_piecewise_bounds: list[int] | None = None,
        lr_piecewise_values: list[float] | None = None,
        spectral_noise: float = 0.0,
        spectral_scale: float = 0.0,
        mixup_alpha: float = 0.0,
        restore_best: RestoreBest | None = None,
    ) -> None:
        for name, value, upper in (("spectral_noise", spectral_noise, float("inf")),
                                   ("spectral_scale", spectral_scale, 1.0),
                                   ("mixup_alpha", mixup_alpha, float("inf"))):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < upper:
                bound = "" if upper == float("inf") else f" and < {upper:g}"
                raise ConfigError(f"{name} must be a finite number >= 0{bound}, got {value!r}")
        if mixup_alpha and balance_classes:
            raise ConfigError("mixup_alpha mixes the targets, which balance_classes cannot weigh; use one of them")
        if restore_best is not None and restore_best not in ("accuracy", "average_accuracy", "kappa", "f1", "loss"):
            raise ConfigError(
                f"restore_best must be one of 'accuracy', 'average_accuracy', 'kappa', 'f1', 'loss' or None, got "
                f"{restore_best!r}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        if balance_classes and (class_weights is not None or label_smoothing):
            raise ConfigError(
                "balance_classes computes the class weights from the training labels: remove class_weights and "
                "label_smoothing, or set balance_classes: false"
            )
        if not (np.isfinite(l2_penalty) and l2_penalty >= 0):
            raise ConfigError(f"l2_penalty must be a finite number >= 0, got {l2_penalty}")
        self.step_schedule = step_schedule_from_options(
            scheduler, lr, lr_decay_steps, lr_decay_rate, lr_piecewise_bounds, lr_piecewise_values
        )
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.balance_classes = bool(balance_classes)
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)
        self.l2_penalty = float(l2_penalty)
        self.spectral_noise = float(spectral_noise)
        self.spectral_scale = float(spectral_scale)
        self.mixup_alpha = float(mixup_alpha)
        self.restore_best = restore_best
        self.best_val_epoch: int | None = None
        self.best_val_score: float | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self.confusion: dict[str, torch.Tensor] = {}
        super().__init__(
            model=model,
            model_args=model_args,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            scheduler="constant" if self.step_schedule is not None else scheduler,
            warmup_steps=warmup_steps,
            min_lr_ratio=min_lr_ratio,
        )

    # ------------------------------------------------------------------ configuration
    def resolve_model_arguments(self, arguments: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        if data.get("bands") is not None:
            arguments.setdefault("in_bands", int(data.get("model_bands") or data["bands"]))
        if data.get("class_names"):
            arguments.setdefault("num_classes", len(data["class_names"]))
        if data.get("patch_size") is not None and self.model_name in PATCH_MODELS:
            arguments.setdefault("patch_size", int(data["patch_size"]))
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
        self.metrics = nn.ModuleDict(
            {stage_key(stage): ClassificationScores(classes, ignore_index=self.ignore_index) for stage in STAGES}
        )
        self.metrics[stage_key("train")].persistent(True)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.balance_classes:
            # validate/test runs weigh their loss like training did when the training labels are at hand
            weights = self._balanced_weights(required=stage == "fit")
            if weights is not None:
                self.loss_weights = weights.to(self.device)

    def _balanced_weights(self, required: bool) -> torch.Tensor | None:
        from hsikit.models.spectral.classifiers import class_balance_weights

        datamodule = getattr(self.trainer, "datamodule", None)
        targets = getattr(datamodule, "train_targets", None)
        if targets is None:
            datasets = getattr(datamodule, "datasets", None) or {}
            targets = getattr(datasets.get("train"), "targets", None)
        if targets is None:
            if not required:
                return None
            raise ConfigError(
                "balance_classes needs the training labels, but the datamodule exposes neither 'train_targets' nor "
                "datasets['train'].targets; pass class_weights (e.g. class_balance_weights(train_labels, K)) instead"
            )
        if self.model is None:
            self._build()
        return class_balance_weights(targets, self.num_classes, ignore_index=self.ignore_index)

    def configure_optimizers(self) -> Any:
        if self.step_schedule is not None:
            return optimizer_with_step_schedule(self, self.step_schedule)
        return super().configure_optimizers()

    # ------------------------------------------------------------------ steps
    def classification_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The data term of the loss (without the L2 penalty) for logits ``(B, K)`` and targets ``(B,)``."""
        if self.balance_classes:
            return balanced_cross_entropy(logits, targets, self.loss_weights, ignore_index=self.ignore_index)
        return F.cross_entropy(
            logits,
            targets,
            weight=self.loss_weights,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )

    def augment_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Training inputs ``(B, C, ...)`` with the random gain and noise applied (a new tensor; labels untouched).

        The draws come from the global torch RNG (reseeded per step by
        :class:`~hsikit.engine.callbacks.StepSeed` when it is used).
        """
        if not (self.spectral_scale or self.spectral_noise):
            return inputs
        out = inputs.float()
        if self.spectral_scale:
            shape = (out.shape[0],) + (1,) * (out.ndim - 1)
            gain = 1.0 + (torch.rand(shape, device=out.device) * 2.0 - 1.0) * self.spectral_scale
            out = out * gain
        if self.spectral_noise:
            out = out + torch.randn_like(out) * self.spectral_noise
        return out.to(inputs.dtype)

    def _mixup_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mixup loss of one training batch (labelled samples only)."""
        labelled = targets != self.ignore_index
        inputs, targets = inputs[labelled], targets[labelled]
        lam = float(np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)))).beta(self.mixup_alpha,
                                                                                          self.mixup_alpha))
        order = torch.randperm(inputs.shape[0], device=inputs.device)
        logits = self(lam * inputs + (1.0 - lam) * inputs[order]).float()
        loss = lam * self.classification_loss(logits, targets) + (1.0 - lam) * self.classification_loss(
            logits, targets[order]
        )
        self.metrics[stage_key("train")].update(logits.detach().argmax(dim=1), targets)
        return loss

    def shared_step(self, batch: Any, stage: Stage) -> torch.Tensor:
        inputs, targets = _unpack(batch)
        if stage == "train":
            inputs = self.augment_inputs(inputs)
            if self.mixup_alpha:
                loss = self._mixup_step(inputs, targets)
                if self.l2_penalty:
                    loss = loss + self.l2_penalty * l2_penalty(self._require_model())
                self.log_loss(stage, loss, int(targets.shape[0]))
                return loss
        logits = self(inputs)
        if logits.shape[0] != targets.shape[0]:
            raise ShapeMismatchError(
                f"the model returned {logits.shape[0]} predictions for {targets.shape[0]} targets "
                f"(logits {tuple(logits.shape)})"
            )
        loss = self.classification_loss(logits.float(), targets)
        if stage == "train" and self.l2_penalty:
            loss = loss + self.l2_penalty * l2_penalty(self._require_model())
        batch_size = int(targets.shape[0])
        self.log_loss(stage, loss, batch_size)
        self.metrics[stage_key(stage)].update(logits.detach().argmax(dim=1), targets)
        return loss

    def _log_scores(self, stage: str) -> None:
        metric = self.metrics[stage_key(stage)]
        if not metric.update_called:
            return
        scores = metric.compute()
        values = {f"{stage}/{name}": float(scores[name]) for name in SCALAR_SCORES}
        if stage in PER_CLASS_STAGES:
            offset = int(self.data_description.get("label_offset", 1))
            for name in PER_CLASS_SCORES:
                vector = scores["per_class_f1" if name == "f1" else name]
                for k in range(self.num_classes):
                    values[f"{stage}/per_class/{name}_{k + offset:02d}"] = float(vector[k])
            self.confusion[stage] = metric.confusion.detach().cpu().clone()
        finite = {key: value for key, value in values.items() if np.isfinite(value)}
        self.log_dict(finite, on_step=False, on_epoch=True, sync_dist=True)
        metric.reset()
        if stage == "val" and self.restore_best is not None and self.restore_best != "loss":
            self._consider_best(values[f"val/{self.restore_best}"], higher_is_better=True)

    def _consider_best(self, score: float, higher_is_better: bool) -> None:
        """Keep a copy of the weights when ``score`` beats the best validation score so far."""
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.sanity_checking:
            return
        if not np.isfinite(score):
            return
        best = self.best_val_score
        better = best is None or (score > best if higher_is_better else score < best)
        if better:
            self.best_val_score = float(score)
            self.best_val_epoch = int(self.current_epoch)
            self._best_state = {k: v.detach().clone() for k, v in self._require_model().state_dict().items()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._best_state is not None:  # a resumed run keeps the best epoch seen before the interruption
            checkpoint[RESTORE_BEST_KEY] = {
                "epoch": self.best_val_epoch,
                "score": self.best_val_score,
                "state_dict": {k: v.cpu() for k, v in self._best_state.items()},
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        record = checkpoint.get(RESTORE_BEST_KEY)
        if isinstance(record, dict):
            self.best_val_epoch = record["epoch"]
            self.best_val_score = record["score"]
            self._best_state = dict(record["state_dict"])

    def on_fit_end(self) -> None:
        if self.restore_best is None:
            return
        if self._best_state is None:
            raise ConfigError(
                f"restore_best={self.restore_best!r} saw no validation epoch; give the datamodule a validation set "
                "(e.g. carve_validation_blocks) and keep validation on every epoch"
            )
        self._require_model().load_state_dict(self._best_state)

    def on_train_epoch_end(self) -> None:
        self._log_scores("train")

    def on_validation_epoch_end(self) -> None:
        if self.restore_best == "loss" and self.loss_means[stage_key("val")].update_called:
            self._consider_best(float(self.loss_means[stage_key("val")].compute()), higher_is_better=False)
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

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
        return {
            f"confusion_matrix_{stage}": confusion_matrix_figure(matrix.numpy(), names, title=f"{stage} set"),
            f"per_class_scores_{stage}": per_class_scores_figure(matrix.numpy(), names, title=f"{stage} set"),
        }


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


def per_class_scores_figure(matrix: np.ndarray, class_names: list[str], title: str = "") -> Any:
    """Grouped bars of each class's precision, recall and F1 from a ``(K, K)`` confusion matrix, with OA/AA/kappa."""
    import matplotlib.pyplot as plt

    from hsikit.metrics.classification import scores_from_confusion

    scores = scores_from_confusion(matrix)
    classes = len(class_names)
    positions = np.arange(classes)
    width = 0.27
    figure, axes = plt.subplots(figsize=(max(6.0, 0.55 * classes + 2.5), 4.2))
    for shift, (key, label) in zip((-width, 0.0, width), (("precision", "precision"), ("recall", "recall"),
                                                           ("per_class_f1", "F1"))):
        axes.bar(positions + shift, scores[key].numpy(), width, label=label)
    support = scores["support"].numpy()
    axes.set_xticks(positions, labels=[f"{name} ({n})" for name, n in zip(class_names, support)], rotation=60,
                    ha="right", fontsize=7)
    axes.set_ylim(0.0, 1.05)
    axes.set_ylabel("score")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    summary = (f"OA {scores['accuracy']:.3f}, AA {scores['average_accuracy']:.3f}, "
               f"kappa {scores['kappa']:.3f}, macro F1 {scores['f1']:.3f}")
    axes.set_title(f"Per-class scores{' - ' + title if title else ''} ({summary})", fontsize=9)
    figure.tight_layout()
    return figure
