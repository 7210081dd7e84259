"""BaseTask: the small LightningModule every hsikit task builds on.

A task owns one (or more) registered models, its losses and metrics, and the
optimizer. Subclasses fill four hooks:

* :meth:`BaseTask.configure_models` - build ``self.model`` from the registry (the
  default builds ``create_model(model, **model_args)``);
* :meth:`BaseTask.configure_losses` - create the loss modules;
* :meth:`BaseTask.configure_metrics` - create torchmetrics objects (they accumulate
  over an epoch and synchronise across DDP ranks);
* :meth:`BaseTask.configure_optimizers` - the default is AdamW/Adam/SGD with a linear
  warm-up + cosine schedule stepped every optimizer step.

and :meth:`BaseTask.shared_step`, which computes the loss of a batch and updates the
metrics of a stage (``"train"``, ``"val"``, ``"test"``).

Data-dependent model arguments (band count, class count) need not be written in the
config: when the task is trained with a datamodule that has a ``data_description``
(a dict with ``bands``, ``wavelengths``, ``class_names``, ``normalization``...), the
task fills them in :meth:`resolve_model_arguments` before building the model, and
refuses arguments that contradict the data. The description also goes into every
checkpoint (``checkpoint["hsikit"]``) and into the exported ``config.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

import torch
import torch.nn as nn
from lightning.pytorch import LightningModule
from torchmetrics import MeanMetric

from hsikit.engine.export import CHECKPOINT_KEY
from hsikit.engine.schedulers import WarmupCosineSchedule
from hsikit.errors import CheckpointError, ConfigError
from hsikit.models.registry import (
    check_model_arguments,
    create_model,
    get_model_entry,
    model_spec,
    to_json_value,
)

OptimizerName = Literal["adamw", "adam", "sgd"]
SchedulerName = Literal["warmup_cosine", "constant"]
Stage = Literal["train", "val", "test"]
STAGES: tuple[str, ...] = ("train", "val", "test")


def weight_decay_groups(
    parameters: Iterable[nn.Parameter], weight_decay: float, keep_empty: bool = False
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: ``weight_decay`` on weight matrices and kernels, none on biases and norms.

    A parameter with fewer than 2 dimensions (bias, normalisation scale/shift, layer scale) is
    not decayed. Frozen parameters are left out; empty groups too unless ``keep_empty``.
    """
    decay, no_decay = [], []
    for parameter in parameters:
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "weights"},
        {"params": no_decay, "weight_decay": 0.0, "name": "biases_and_norms"},
    ]
    return groups if keep_empty else [group for group in groups if group["params"]]


def stage_key(stage: str) -> str:
    """Key of a stage in an ``nn.ModuleDict`` ("train" itself would shadow ``Module.train``)."""
    return f"stage_{stage}"


class BaseTask(LightningModule):
    """Base of every task: a registered model, losses, metrics, optimizer and schedule.

    Args:
        model: registry name of the network (see ``hsikit.models.list_models()``).
        model_args: its constructor arguments; data-dependent ones (``in_bands``,
            ``num_classes``...) are filled from the datamodule when left out.
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd"``. Weight decay is not applied to
            biases and normalisation weights (parameters with fewer than 2 dimensions).
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (Adam, SGD) weight decay.
        momentum: SGD momentum (ignored by Adam/AdamW).
        scheduler: ``"warmup_cosine"`` (linear warm-up, cosine decay to ``min_lr_ratio * lr``
            at the last step of training) or ``"constant"`` (warm-up, then flat).
        warmup_steps: optimizer steps of linear warm-up (0: none).
        min_lr_ratio: final learning rate of the cosine as a fraction of ``lr``.
    """

    task_name: ClassVar[str] = "base"
    #: metric that selects the best checkpoint and drives early stopping, and its direction
    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[str] = "min"

    def __init__(
        self,
        model: str,
        model_args: dict[str, Any] | None = None,
        optimizer: OptimizerName = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        scheduler: SchedulerName = "warmup_cosine",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        get_model_entry(model)  # unknown names fail here, before any data is loaded
        if optimizer not in ("adamw", "adam", "sgd"):
            raise ConfigError(f"optimizer must be 'adamw', 'adam' or 'sgd', got {optimizer!r}")
        if scheduler not in ("warmup_cosine", "constant"):
            raise ConfigError(f"scheduler must be 'warmup_cosine' or 'constant', got {scheduler!r}")
        if lr <= 0 or weight_decay < 0 or warmup_steps < 0 or not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError(
                f"need lr > 0, weight_decay >= 0, warmup_steps >= 0 and 0 <= min_lr_ratio <= 1; got lr={lr}, "
                f"weight_decay={weight_decay}, warmup_steps={warmup_steps}, min_lr_ratio={min_lr_ratio}"
            )
        self.model_name = model
        self.model_args: dict[str, Any] = dict(model_args or {})
        self.model: nn.Module | None = None
        self.data_description: dict[str, Any] = {}
        #: detached loss of the last training step (read by the non-finite guard)
        self.last_training_loss: torch.Tensor | None = None
        self.configure_losses()
        if self._resolved_model_arguments(required=False) is not None:
            self._build()

    # ------------------------------------------------------------------ hooks for subclasses
    def configure_models(self, arguments: dict[str, Any]) -> None:
        """Build ``self.model`` from the registry with fully resolved ``arguments``."""
        self.model = create_model(self.model_name, **arguments)

    def configure_losses(self) -> None:
        """Create the loss modules (called once, in ``__init__``)."""

    def configure_metrics(self) -> None:
        """Create the metrics; the base creates one loss mean per stage (``self.loss_means``).

        Called once the model exists (metric sizes may depend on the data). Training
        metrics are made *persistent* so that a checkpoint taken mid-epoch restores their
        running state and a resumed epoch reports the same values as an uninterrupted one.
        """
        self.loss_means = nn.ModuleDict({stage_key(stage): MeanMetric(nan_strategy="ignore") for stage in STAGES})
        self.loss_means[stage_key("train")].persistent(True)

    def resolve_model_arguments(self, arguments: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """Fill data-dependent model arguments from the data description (override per task)."""
        return arguments

    def shared_step(self, batch: Any, stage: Stage) -> torch.Tensor:
        """Loss of ``batch``; also update the metrics of ``stage``. Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement shared_step(batch, stage)")

    def figures(self, stage: str) -> dict[str, Any]:
        """Matplotlib figures describing the last ``stage`` epoch, by file stem (for the run report)."""
        return {}

    # ------------------------------------------------------------------ model construction
    def _resolved_model_arguments(self, required: bool) -> dict[str, Any] | None:
        arguments = self.resolve_model_arguments(dict(self.model_args), self.data_description)
        entry = get_model_entry(self.model_name)
        missing = [name for name in entry.required_parameters() if name not in arguments]
        if missing:
            if required:
                raise ConfigError(
                    f"model {self.model_name!r} needs {', '.join(missing)}: set them in model_args "
                    "(--model.init_args.model_args) or train with a datamodule that describes its data"
                )
            return None
        return check_model_arguments(self.model_name, arguments)

    def _build(self) -> None:
        arguments = self._resolved_model_arguments(required=True)
        assert arguments is not None
        self.configure_models(arguments)
        self.model_args = arguments
        self.configure_metrics()

    def set_data_description(self, description: Mapping[str, Any]) -> None:
        """Record the data facts (bands, wavelengths, class names, normalisation) of the datamodule.

        Raises :class:`ConfigError` when they contradict the model arguments (given or resolved).
        """
        self.data_description = to_json_value(dict(description), "data_description")
        from_data = self.resolve_model_arguments({}, self.data_description)
        conflicts = {
            key: (self.model_args[key], value)
            for key, value in from_data.items()
            if key in self.model_args and self.model_args[key] != value
        }
        if conflicts:
            details = ", ".join(f"{k}: model {a!r} vs data {b!r}" for k, (a, b) in conflicts.items())
            raise ConfigError(
                f"model_args do not fit the data the datamodule provides ({details}); remove them from "
                "model_args to take them from the data, or use a model trained for this data"
            )

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        description = getattr(datamodule, "data_description", None)
        if callable(description):
            description = description()
        if description:
            self.set_data_description(description)

    def configure_model(self) -> None:
        if self.model is not None:
            return
        # Outside a Trainer (load_from_checkpoint) the checkpoint's hsikit record builds the model.
        if self._trainer is None and self._resolved_model_arguments(required=False) is None:
            return
        self._build()

    # ------------------------------------------------------------------ steps
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._require_model()(inputs)

    def _require_model(self) -> nn.Module:
        if self.model is None:
            raise ConfigError(
                f"{type(self).__name__}: the model is not built yet - its data-dependent arguments are unknown; "
                "pass them in model_args or run it through a Trainer with a datamodule"
            )
        return self.model

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.shared_step(batch, "train")
        self.last_training_loss = loss.detach()
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "test")

    def log_loss(self, stage: str, loss: torch.Tensor, batch_size: int) -> None:
        """Log ``loss``: per step for training, and as an epoch mean (sample-weighted) for every stage."""
        mean = self.loss_means[stage_key(stage)]
        mean.update(loss.detach().float(), weight=batch_size)
        if stage == "train":
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size)
            self.log("train/loss_epoch", mean, on_step=False, on_epoch=True, batch_size=batch_size)
        else:
            self.log(f"{stage}/loss", mean, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        hparams = self.hparams
        groups = weight_decay_groups(self._require_model().parameters(), hparams.weight_decay, keep_empty=True)
        if hparams.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=hparams.lr)
        elif hparams.optimizer == "adam":
            optimizer = torch.optim.Adam(groups, lr=hparams.lr)
        else:
            optimizer = torch.optim.SGD(groups, lr=hparams.lr, momentum=hparams.momentum)
        if hparams.scheduler == "constant" and hparams.warmup_steps == 0:
            return optimizer
        total_steps = self.trainer.estimated_stepping_batches
        if not isinstance(total_steps, int) and not float(total_steps) < float("inf"):
            raise ConfigError(
                "the warm-up/cosine schedule needs a finite training length; set --trainer.max_epochs or "
                "--trainer.max_steps, or use scheduler='constant' with warmup_steps=0"
            )
        min_ratio = 1.0 if hparams.scheduler == "constant" else hparams.min_lr_ratio
        schedule = WarmupCosineSchedule(optimizer, hparams.warmup_steps, int(total_steps), min_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        name, arguments = model_spec(self._require_model())
        checkpoint[CHECKPOINT_KEY] = {
            "model": {"name": name, "arguments": arguments},
            "task": self.task_name,
            "data": self.data_description,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record = checkpoint.get(CHECKPOINT_KEY)
        if not isinstance(record, dict):
            raise CheckpointError(
                "this checkpoint has no hsikit record (checkpoint['hsikit']); it was not written by an hsikit task"
            )
        recorded = record["model"]
        if recorded["name"] != self.model_name:
            raise CheckpointError(
                f"the checkpoint holds a {recorded['name']!r} model but the task is configured for "
                f"{self.model_name!r}; use the config the checkpoint was trained with"
            )
        if not self.data_description and record.get("data"):
            self.data_description = dict(record["data"])
        if self.model is None:
            self.model_args = dict(recorded["arguments"])
            self._build()

    def export_data(self) -> dict[str, Any]:
        """The data facts written to the exported model's config (see ``hsikit.engine.export``)."""
        return dict(self.data_description)
