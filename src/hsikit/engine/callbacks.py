"""Lightning callbacks of the hsikit engine.

* :class:`WeightEMA` - an exponential moving average of the model weights, saved in
  every checkpoint, swapped in for validation/test, and exported when on.
* :class:`NonFiniteGuard` - skips an optimizer step whose loss or gradients are NaN/Inf
  and stops training with a clear message after N such steps in a row.
* :class:`StepSeed` - reseeds the random generators at every training batch from
  ``(seed, epoch, batch index, rank)``, so dropout and other random layers draw the
  same numbers whether or not the run was interrupted and resumed.
* :class:`TrainingDataPosition` - stores how far the training loader got in its epoch
  in each checkpoint and restores it, so a resumed epoch continues with the next batch.
* :class:`RunArtifacts` - writes the run folder: resolved config, ``metrics.json``,
  the exported model, the task's figures, predictions and the HTML report.

Callbacks reach the task's network as ``pl_module.model`` (see ``BaseTask``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from hsikit.engine.export import EMA_CHECKPOINT_KEY, export_checkpoint, export_model
from hsikit.errors import ConfigError, TrainingError
from hsikit.io.atomic import atomic_path

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
MODEL_DIR = "model"
FIGURES_DIR = "figures"
PREDICTIONS_DIR = "predictions"
REPORT_FILE = "report.html"


def _network(pl_module: LightningModule) -> nn.Module:
    model = getattr(pl_module, "model", None)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{type(pl_module).__name__} has no 'model' network; hsikit callbacks need a BaseTask")
    return model


# ---------------------------------------------------------------------------- weight EMA
class WeightEMA(Callback):
    """Exponential moving average of the network's weights: ``ema = decay * ema + (1 - decay) * w``.

    Updated after every optimizer step (not every micro-batch under gradient
    accumulation); floating-point buffers (BatchNorm running statistics) are averaged
    too, integer buffers copied. The average is stored in each checkpoint under
    ``checkpoint["hsikit_ema"]``, so a resumed run continues it exactly, and the model
    export writes it instead of the raw weights.

    With ``update_every = k > 1`` the average is updated only after every k-th optimizer
    step (when the global step crosses a multiple of k), with the decay raised to the
    k-th power, ``ema = decay**k * ema + (1 - decay**k) * w``, so that ``decay`` keeps its
    meaning per optimizer step (the same time constant, ``1 / (1 - decay)`` steps) and only
    the cost of the update drops by k. (SHARP's reference trainer kept ``decay`` unchanged
    when throttling, which lengthened the time constant k-fold.) Whether a step updates
    depends on the global step only, so a resumed run updates at the same steps.

    Args:
        decay: weight of the past per optimizer step, in [0, 1).
        evaluate_with_ema: swap the averaged weights in for validation and test (the
            training weights are put back afterwards).
        update_every: optimizer steps between updates (>= 1; 1: every step).
    """

    def __init__(self, decay: float = 0.999, evaluate_with_ema: bool = True, update_every: int = 1) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must lie in [0, 1), got {decay}")
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ConfigError(f"EMA update_every must be a whole number of optimizer steps >= 1, got {update_every!r}")
        self.decay = float(decay)
        self.update_every = int(update_every)
        self.evaluate_with_ema = evaluate_with_ema
        self.ema_state: dict[str, torch.Tensor] | None = None
        self.num_updates = 0
        self._last_step: int | None = None
        self._backup: dict[str, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        return "WeightEMA"

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        model = _network(pl_module)
        device = next(model.parameters()).device
        if self.ema_state is None:
            self.ema_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        else:
            self.ema_state = {key: value.to(device) for key, value in self.ema_state.items()}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After the loops are restored, global_step is the resumed step.
        self._last_step = trainer.global_step

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self._last_step or self.ema_state is None:
            return  # still accumulating gradients: no optimizer step yet
        previous = self._last_step if self._last_step is not None else trainer.global_step - 1
        self._last_step = trainer.global_step
        if trainer.global_step // self.update_every == previous // self.update_every:
            return  # no multiple of update_every reached since the last update
        self.update(_network(pl_module))

    @property
    def update_decay(self) -> float:
        """Decay applied at each update: ``decay ** update_every``."""
        return self.decay**self.update_every

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights of ``model`` into the average (weight ``1 - update_decay``)."""
        assert self.ema_state is not None
        weight = 1.0 - self.update_decay
        for key, value in model.state_dict().items():
            average = self.ema_state[key]
            if average.dtype.is_floating_point:
                average.lerp_(value.detach().to(average.dtype), weight)
            else:
                average.copy_(value)
        self.num_updates += 1

    def _swap_in(self, pl_module: LightningModule) -> None:
        if not self.evaluate_with_ema or self.ema_state is None or self._backup is not None:
            return
        model = _network(pl_module)
        self._backup = {key: value.detach().clone() for key, value in model.state_dict().items()}
        model.load_state_dict(self.ema_state)

    def _swap_out(self, pl_module: LightningModule) -> None:
        if self._backup is None:
            return
        _network(pl_module).load_state_dict(self._backup)
        self._backup = None

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(pl_module)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_out(pl_module)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(pl_module)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_out(pl_module)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(pl_module)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_out(pl_module)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._swap_out(pl_module)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.ema_state is None:
            return
        checkpoint[EMA_CHECKPOINT_KEY] = {
            "decay": self.decay,
            "update_every": self.update_every,
            "num_updates": self.num_updates,
            "state_dict": {key: value.detach().cpu().clone() for key, value in self.ema_state.items()},
        }

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        record = checkpoint.get(EMA_CHECKPOINT_KEY)
        if not isinstance(record, dict):
            rank_zero_warn("the checkpoint holds no weight EMA; the average restarts from the current weights")
            return
        self.ema_state = {key: value.clone() for key, value in record["state_dict"].items()}
        self.num_updates = int(record.get("num_updates", 0))


# ---------------------------------------------------------------------------- gradient accumulation
class GradientAccumulation(Callback):
    """Accumulate gradients over ``steps`` micro-batches per optimizer step (``run.accumulate_steps``).

    Sets the trainer's ``accumulate_grad_batches`` when fit starts, before the optimizer and
    its schedule are configured, so the schedule length (``estimated_stepping_batches``)
    counts optimizer steps. The same as ``Trainer(accumulate_grad_batches=steps)``; it lets a
    ``run:`` section carry the setting next to the other training options.

    Raises:
        ConfigError: ``steps < 1``, a trainer already set to another accumulation, or a task
            with manual optimisation (which steps its optimizers itself).
    """

    def __init__(self, steps: int) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"accumulate_steps must be a whole number of micro-batches >= 1, got {steps!r}")
        self.steps = int(steps)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or self.steps == 1:
            return
        if not pl_module.automatic_optimization:
            raise ConfigError(
                f"{type(pl_module).__name__} steps its optimizers itself (manual optimisation); gradient "
                "accumulation (run.accumulate_steps) does not apply to it - set accumulate_steps to 1"
            )
        current = int(trainer.accumulate_grad_batches)
        if current not in (1, self.steps):
            raise ConfigError(
                f"run.accumulate_steps={self.steps} contradicts trainer.accumulate_grad_batches={current}; set only one"
            )
        trainer.accumulate_grad_batches = self.steps


# ---------------------------------------------------------------------------- non-finite guard
class NonFiniteGuard(Callback):
    """Skip optimizer steps whose loss or gradients are NaN/Inf; stop after ``max_consecutive`` in a row.

    A skipped step leaves the weights, the optimizer state and the buffers (BatchNorm
    running statistics and counters, which the forward pass updates) as they were
    before the step: its gradients are dropped before ``optimizer.step()`` and the
    buffers are restored from a copy taken when the step began. With fp16 mixed
    precision the gradient scaler already skips overflowing steps, so only the loss is
    checked there. All DDP ranks take the same decision.

    Raises:
        TrainingError: after ``max_consecutive`` consecutive non-finite steps.
    """

    def __init__(self, max_consecutive: int = 5) -> None:
        if max_consecutive < 1:
            raise ConfigError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = int(max_consecutive)
        self.consecutive = 0
        self.skipped_total = 0
        self._buffers: dict[str, torch.Tensor] = {}
        self._buffers_step: int | None = None

    @property
    def state_key(self) -> str:
        return "NonFiniteGuard"

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._buffers_step == trainer.global_step:
            return  # a later micro-batch of the same accumulated step: keep the copy from its start
        self._buffers_step = trainer.global_step
        self._buffers = {name: buffer.detach().clone() for name, buffer in pl_module.named_buffers()}

    @torch.no_grad()
    def _restore_buffers(self, pl_module: LightningModule) -> None:
        for name, buffer in pl_module.named_buffers():
            saved = self._buffers.get(name)
            if saved is not None:
                buffer.copy_(saved)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        loss = getattr(pl_module, "last_training_loss", None)
        bad = loss is not None and not bool(torch.isfinite(loss).all())
        uses_scaler = getattr(trainer.precision_plugin, "scaler", None) is not None
        if not bad and not uses_scaler:
            grads = [p.grad.detach() for p in pl_module.parameters() if p.grad is not None]
            if grads:
                norms = torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])
                bad = not bool(torch.isfinite(norms).all())
        flag = torch.tensor(float(bad), device=pl_module.device)
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() == 0.0:
            self.consecutive = 0
            return
        optimizer.zero_grad(set_to_none=True)
        self._restore_buffers(pl_module)
        self.consecutive += 1
        self.skipped_total += 1
        where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        if self.consecutive >= self.max_consecutive:
            raise TrainingError(
                f"training stopped: {self.consecutive} optimizer steps in a row had a NaN/Inf loss or gradients "
                f"(last at {where}; {self.skipped_total} skipped in total). Lower the learning rate "
                "(--model.init_args.lr), clip gradients (--trainer.gradient_clip_val 1.0), check the input "
                "data for NaN/Inf, or train in bf16 or fp32 instead of fp16"
            )
        rank_zero_warn(f"skipped an optimizer step with a NaN/Inf loss or gradients at {where}")

    def state_dict(self) -> dict[str, Any]:
        return {"consecutive": self.consecutive, "skipped_total": self.skipped_total}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.consecutive = int(state_dict.get("consecutive", 0))
        self.skipped_total = int(state_dict.get("skipped_total", 0))


# ---------------------------------------------------------------------------- step seeding
def step_seed(seed: int, epoch: int, batch_idx: int, rank: int) -> int:
    """A 63-bit seed derived from ``(seed, epoch, batch_idx, rank)`` (numpy ``SeedSequence``)."""
    words = np.random.SeedSequence([int(seed), int(epoch), int(batch_idx), int(rank)]).generate_state(2)
    return (int(words[0]) << 31) ^ int(words[1])


class StepSeed(Callback):
    """Reseed torch, numpy and ``random`` before each training batch from ``(seed, epoch, batch, rank)``.

    The random numbers a step draws (dropout masks, noise) then depend only on where
    the step is in training, not on what ran before it in the process - which is what
    makes a run resumed from a mid-epoch checkpoint draw the same numbers as an
    uninterrupted one. Each DDP rank gets its own stream.

    Args:
        seed: base seed (default: the ``seed_everything`` value, ``PL_GLOBAL_SEED``).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        base = int(os.environ.get("PL_GLOBAL_SEED", "0")) if self.seed is None else int(self.seed)
        value = step_seed(base, trainer.current_epoch, batch_idx, trainer.global_rank)
        torch.manual_seed(value)
        np.random.seed(value % (2**32))
        random.seed(value)


# ---------------------------------------------------------------------------- data position
DATA_POSITION_KEY = "hsikit_data_position"


def _stateful_train_loaders(trainer: Trainer) -> list[Any]:
    """The training loaders that report their position (``state_dict`` / ``load_state_dict``)."""
    found: list[Any] = []
    pending = [trainer.train_dataloader]
    while pending:
        item = pending.pop(0)
        if isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif callable(getattr(item, "state_dict", None)) and callable(getattr(item, "load_state_dict", None)):
            found.append(item)
    return found


class TrainingDataPosition(Callback):
    """Store the training loaders' position in the epoch in each checkpoint; restore it on resume.

    Works with loaders that report their position, such as
    :class:`~hsikit.data.datamodules.ResumableDataLoader` (samples consumed in the current
    epoch, whose order is a function of the seed and epoch). The position is applied at
    ``on_train_start``, after Lightning has restored the loops and before the first batch
    of the resumed epoch is drawn, so the resumed epoch continues with the next unseen
    batch. (Lightning keeps its own copy of loader states too, but does not apply it when
    the data was loaded early, e.g. to size a learning-rate schedule.)
    """

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] | None = None

    @property
    def state_key(self) -> str:
        return "TrainingDataPosition"

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        states = [loader.state_dict() for loader in _stateful_train_loaders(trainer)]
        if states:
            checkpoint[DATA_POSITION_KEY] = states

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(DATA_POSITION_KEY)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._pending:
            return
        loaders = _stateful_train_loaders(trainer)
        if len(loaders) != len(self._pending):
            rank_zero_warn(
                f"the checkpoint holds the position of {len(self._pending)} training loader(s), the run has "
                f"{len(loaders)}; the interrupted epoch restarts from its first batch, so this resume is not exact"
            )
        else:
            for loader, state in zip(loaders, self._pending):
                loader.load_state_dict(state)
        self._pending = None


# ---------------------------------------------------------------------------- run folder
def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            values[key] = float(value.detach().cpu().item())
        elif isinstance(value, (int, float)):
            values[key] = float(value)
    return values


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` through a temporary file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


class RunArtifacts(Callback):
    """Write a run's folder on the main process.

    At the end of each stage (fit, validate, test, predict): a section of
    ``metrics.json`` (final metrics, epoch, step; for fit also the best checkpoint and
    score), the task's figures (``figures/*.png``) and ``report.html``. At the end of
    fit also the model export (``model/model.safetensors`` + ``model/config.json``)
    and the datamodule's ``split.json`` / ``normalization.json``. After predict,
    ``predictions/class_map.npy`` (label values, 0 = not predicted) and
    ``figures/predicted_class_map.png`` when the task returns pixel labels.

    Args:
        run_dir: the run folder.
        config_text: the resolved experiment config (YAML), written to ``config.yaml``.
        export: write the model export at the end of fit.
        export_weights: ``"best"`` (the best checkpoint, when a monitored checkpoint
            exists) or ``"last"`` (the weights at the end of training); EMA weights when on.
        report: write the task's figures and ``report.html``.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        config_text: str | None = None,
        export: bool = True,
        export_weights: Literal["best", "last"] = "best",
        report: bool = True,
    ) -> None:
        if export_weights not in ("best", "last"):
            raise ConfigError(f"export_weights must be 'best' or 'last', got {export_weights!r}")
        self.run_dir = Path(run_dir)
        self.config_text = config_text
        self.export = export
        self.export_weights = export_weights
        self.report = report
        self._predictions: list[dict[str, torch.Tensor]] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.config_text is not None:
            with atomic_path(self.run_dir / CONFIG_FILE) as tmp:
                tmp.write_text(self.config_text, encoding="utf-8")

    # ------------------------------------------------------------------ predictions
    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._predictions = []

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if isinstance(outputs, Mapping) and "index" in outputs and "label" in outputs:
            self._predictions.append({key: value.detach().cpu() for key, value in outputs.items()})

    def _write_predictions(self, trainer: Trainer) -> dict[str, Any]:
        datamodule = trainer.datamodule
        shape = getattr(datamodule, "image_shape", None)
        if not self._predictions or shape is None:
            return {}
        if trainer.world_size > 1:
            rank_zero_warn("predict under DDP: the class map holds the main process's share of the pixels only")
        index = torch.cat([p["index"] for p in self._predictions]).numpy()
        label = torch.cat([p["label"] for p in self._predictions]).numpy()
        offset = int(getattr(datamodule, "data_description", {}).get("label_offset", 1))
        class_map = np.zeros(shape[0] * shape[1], dtype=np.int32)  # 0 = not predicted (nodata)
        class_map[index] = label + offset
        class_map = class_map.reshape(shape)
        folder = self.run_dir / PREDICTIONS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "class_map.npy") as tmp:
            np.save(tmp, class_map)
        self._predictions = []
        if self.report:
            self._plot_class_map(class_map, getattr(datamodule, "data_description", {}).get("class_names"), offset)
        return {"class_map": str((folder / "class_map.npy").relative_to(self.run_dir)), "pixels": int(index.size)}

    def _plot_class_map(self, class_map: np.ndarray, class_names: list[str] | None, first_label: int) -> None:
        import matplotlib.pyplot as plt

        from hsikit.viz.maps import plot_class_map

        folder = self.run_dir / FIGURES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        figure = plot_class_map(class_map, class_names, first_label=first_label, title="predicted classes")
        with atomic_path(folder / "predicted_class_map.png") as tmp:
            figure.savefig(tmp, format="png", dpi=110)
        plt.close(figure)

    # ------------------------------------------------------------------ end of a stage
    def _section(self, trainer: Trainer, status: str) -> dict[str, Any]:
        return {
            "status": status,
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "epoch": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
        }

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Record a failed stage (with its error and last metrics) so the run folder says what happened."""
        if not trainer.is_global_zero:
            return
        stage = getattr(trainer.state.fn, "value", None) or "fit"
        try:
            section = self._section(trainer, "failed")
            section["error"] = f"{type(exception).__name__}: {exception}"
            section["metrics"] = _scalar_metrics(trainer.callback_metrics)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._update_metrics_file(stage, section)
            if self.report:
                from hsikit.viz.report import write_run_report

                write_run_report(self.run_dir)
        except Exception as error:  # noqa: BLE001 - never hide the original exception behind a reporting one
            rank_zero_warn(f"could not record the failed {stage} stage in {self.run_dir}: {error}")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        section = self._section(trainer, "completed")
        if stage == "predict":
            section.update(self._write_predictions(trainer))
        else:
            section["metrics"] = _scalar_metrics(trainer.callback_metrics)
        if stage == "fit":
            section.update(self._fit_extras(trainer, pl_module))
        self._update_metrics_file(stage, section)
        figures_stage = {"fit": "val", "validate": "val", "test": "test"}.get(stage)
        if self.report and figures_stage is not None:
            self._write_figures(pl_module, figures_stage)
        if self.report:
            from hsikit.viz.report import write_run_report

            write_run_report(self.run_dir)

    def _fit_extras(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        extras: dict[str, Any] = {}
        best = _best_checkpoint_callback(trainer)
        if best is not None and best.best_model_path:
            extras["monitor"] = best.monitor
            extras["best_score"] = None if best.best_model_score is None else float(best.best_model_score)
            extras["best_checkpoint"] = _relative(Path(best.best_model_path), self.run_dir)
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "save_artifacts"):
            datamodule.save_artifacts(self.run_dir)
        if self.export:
            extras["model"] = self._export(trainer, pl_module, best)
        return extras

    def _export(self, trainer: Trainer, pl_module: LightningModule, best: ModelCheckpoint | None) -> dict[str, Any]:
        target = self.run_dir / MODEL_DIR
        ema = next((c for c in trainer.callbacks if isinstance(c, WeightEMA)), None)
        use_best = self.export_weights == "best" and best is not None and Path(best.best_model_path or "").is_file()
        if use_best:
            assert best is not None
            export_checkpoint(best.best_model_path, target, use_ema=True)
            source = _relative(Path(best.best_model_path), self.run_dir)
        else:
            state = None if ema is None or ema.ema_state is None else ema.ema_state
            task = getattr(pl_module, "task_name", None)
            export_data = getattr(pl_module, "export_data", None)
            data = export_data() if callable(export_data) else None
            export_model(_network(pl_module), target, task=task, data=data, state_dict=state)
            source = "weights at the end of training"
        return {"folder": MODEL_DIR, "source": source, "ema": ema is not None}

    def _write_figures(self, pl_module: LightningModule, stage: str) -> None:
        make = getattr(pl_module, "figures", None)
        if not callable(make):
            return
        figures = make(stage)
        if not figures:
            return
        import matplotlib.pyplot as plt

        folder = self.run_dir / FIGURES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for name, figure in figures.items():
            with atomic_path(folder / f"{name}.png") as tmp:
                figure.savefig(tmp, format="png", dpi=110)
            plt.close(figure)

    def _update_metrics_file(self, stage: str, section: dict[str, Any]) -> None:
        path = self.run_dir / METRICS_FILE
        payload: dict[str, Any] = {}
        if path.is_file():
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                payload = {}
        payload[stage] = section
        write_json_atomic(path, payload)


def _best_checkpoint_callback(trainer: Trainer) -> ModelCheckpoint | None:
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor is not None:
            return callback
    return None


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
