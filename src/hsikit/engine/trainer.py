"""Run folders and a Lightning ``Trainer`` with hsikit's callbacks and loggers.

One run writes one folder::

    runs/<name>/<version>/
        config.yaml            resolved experiment config (CLI runs)
        metrics.json           final metrics of fit / validate / test, best checkpoint and score
        report.html            self-contained report: config, metrics, curves, figures
        checkpoints/           best k (by the task's monitor) + last.ckpt
        csv/version_N/metrics.csv   CSV log    tensorboard/version_N/   TensorBoard log
        model/                 model.safetensors + config.json (hsikit.load_model)
        figures/  predictions/ split.json  normalization.json

:class:`RunOptions` is the ``run:`` section of an experiment config;
:func:`create_trainer` builds the trainer from it for the CLI and for Python use.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from hsikit.engine.callbacks import (
    GradientAccumulation,
    NonFiniteGuard,
    RunArtifacts,
    StepSeed,
    TrainingDataPosition,
    WeightEMA,
)
from hsikit.errors import ConfigError

#: environment variable carrying the run folder to the worker processes of a DDP launch
RUN_DIR_ENV = "HSIKIT_RUN_DIR"
CHECKPOINT_DIR = "checkpoints"


@dataclass
class RunOptions:
    """The ``run:`` section of an experiment: where the run goes and how it is checkpointed.

    Args:
        root: folder holding all runs.
        name: experiment name (default: the config file's stem, else the task name).
        version: run folder name under ``root/name`` (default: a UTC time stamp; under
            ``torchrun`` the rendezvous id, under SLURM the job id, so every rank agrees).
        monitor: metric selecting the best checkpoints and driving early stopping
            (default: the task's, e.g. ``val/accuracy``).
        monitor_mode: ``"max"`` or ``"min"`` (default: the task's).
        save_top_k: best checkpoints kept (``last.ckpt`` is always kept as well).
        checkpoint_every_n_steps: also write ``last.ckpt`` every N optimizer steps, for
            resuming an interrupted run mid-epoch (None: at epoch ends only).
        early_stopping_patience: validation rounds without improvement before stopping
            (None: no early stopping).
        early_stopping_min_delta: smallest change that counts as an improvement.
        ema_decay: keep an exponential moving average of the weights with this decay
            (per optimizer step), used for validation, test and export (None: off).
        ema_update_every: update the average every N optimizer steps (decay raised to the
            N-th power, see :class:`~hsikit.engine.callbacks.WeightEMA`; 1: every step).
        accumulate_steps: micro-batches whose gradients are summed per optimizer step (1: no
            accumulation); the same as ``trainer.accumulate_grad_batches``.
        max_nonfinite_steps: stop after this many consecutive NaN/Inf steps (each is skipped).
        export: export ``model/`` at the end of fit.
        export_weights: ``"best"`` checkpoint or ``"last"`` weights for the export.
        report: write the task's figures (``figures/``) and ``report.html``.
    """

    root: str = "runs"
    name: str | None = None
    version: str | None = None
    monitor: str | None = None
    monitor_mode: Literal["min", "max"] | None = None
    save_top_k: int = 3
    checkpoint_every_n_steps: int | None = None
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float = 0.0
    ema_decay: float | None = None
    ema_update_every: int = 1
    accumulate_steps: int = 1
    max_nonfinite_steps: int = 5
    export: bool = True
    export_weights: Literal["best", "last"] = "best"
    report: bool = True

    def __post_init__(self) -> None:
        if self.save_top_k < 0:
            raise ConfigError(f"run.save_top_k must be >= 0, got {self.save_top_k}")
        if self.checkpoint_every_n_steps is not None and self.checkpoint_every_n_steps < 1:
            raise ConfigError(f"run.checkpoint_every_n_steps must be >= 1, got {self.checkpoint_every_n_steps}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ConfigError(f"run.early_stopping_patience must be >= 1, got {self.early_stopping_patience}")
        if isinstance(self.ema_update_every, bool) or int(self.ema_update_every) != self.ema_update_every or (
            self.ema_update_every < 1
        ):
            raise ConfigError(f"run.ema_update_every must be a whole number >= 1, got {self.ema_update_every!r}")
        if isinstance(self.accumulate_steps, bool) or int(self.accumulate_steps) != self.accumulate_steps or (
            self.accumulate_steps < 1
        ):
            raise ConfigError(f"run.accumulate_steps must be a whole number >= 1, got {self.accumulate_steps!r}")
        if self.monitor_mode not in (None, "min", "max"):
            raise ConfigError(f"run.monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}")


def default_version() -> str:
    """A run version every process of one launch agrees on without talking to the others."""
    for variable, prefix in (("TORCHELASTIC_RUN_ID", "torchrun-"), ("SLURM_JOB_ID", "slurm-")):
        value = os.environ.get(variable)
        if value and value != "none":
            return f"{prefix}{value}"  # a requeued SLURM job keeps its id, hence its folder
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def resolve_run_dir(options: RunOptions, default_name: str) -> Path:
    """The run folder: ``$HSIKIT_RUN_DIR`` if set (DDP workers), else ``root/name/version``.

    A time-stamp version that already exists gets a ``-2``, ``-3``... suffix.
    """
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        return Path(inherited)
    base = Path(options.root) / (options.name or default_name)
    if options.version:
        return base / options.version
    version = default_version()
    candidate, counter = base / version, 2
    while candidate.exists() and not version.startswith(("torchrun-", "slurm-")):
        candidate, counter = base / f"{version}-{counter}", counter + 1
    return candidate


def build_callbacks(
    run_dir: Path,
    options: RunOptions,
    *,
    monitor: str,
    monitor_mode: str,
    seed: int | None = None,
    config_text: str | None = None,
    log_learning_rate: bool = True,
) -> list[Callback]:
    """hsikit's callbacks for a run: seeding, NaN guard, EMA, checkpoints, early stopping, artefacts.

    ``log_learning_rate`` adds Lightning's ``LearningRateMonitor`` (it needs a logger).
    """
    monitor = options.monitor or monitor
    mode = options.monitor_mode or monitor_mode
    checkpoints = run_dir / CHECKPOINT_DIR
    callbacks: list[Callback] = [
        StepSeed(seed),
        TrainingDataPosition(),
        NonFiniteGuard(options.max_nonfinite_steps),
    ]
    if options.accumulate_steps != 1:
        callbacks.append(GradientAccumulation(int(options.accumulate_steps)))
    if options.ema_decay is not None:
        callbacks.append(WeightEMA(options.ema_decay, update_every=int(options.ema_update_every)))
    callbacks.append(
        ModelCheckpoint(
            dirpath=checkpoints,
            filename="epoch{epoch:03d}-step{step:06d}",
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=mode,
            save_top_k=options.save_top_k,
            save_last=True,
            enable_version_counter=False,
        )
    )
    if options.checkpoint_every_n_steps:
        callbacks.append(
            ModelCheckpoint(
                dirpath=checkpoints,
                save_top_k=0,
                save_last=True,
                every_n_train_steps=options.checkpoint_every_n_steps,
                enable_version_counter=False,
            )
        )
    if options.early_stopping_patience is not None:
        callbacks.append(
            EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=options.early_stopping_patience,
                min_delta=options.early_stopping_min_delta,
            )
        )
    if log_learning_rate:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    callbacks.append(
        RunArtifacts(
            run_dir,
            config_text=config_text,
            export=options.export,
            export_weights=options.export_weights,
            report=options.report,
        )
    )
    return callbacks


def build_loggers(run_dir: Path) -> list[Any]:
    """CSV and TensorBoard loggers writing into ``run_dir``.

    Each session of a run (the first fit, a resumed fit, a later test) logs into the
    next ``csv/version_N/`` and ``tensorboard/version_N/`` folder, so that resuming
    never overwrites the log of the interrupted session; the report joins them.
    """
    return [
        CSVLogger(save_dir=str(run_dir), name="csv"),
        TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", default_hp_metric=False),
    ]


def create_trainer(
    run_dir: str | os.PathLike,
    options: RunOptions | None = None,
    *,
    task: Any = None,
    seed: int | None = None,
    config_text: str | None = None,
    **trainer_kwargs: Any,
) -> Trainer:
    """A ``lightning.Trainer`` writing the run folder ``run_dir``.

    Args:
        run_dir: the run folder.
        options: checkpointing / EMA / early stopping / export settings.
        task: the task (or its class), for its default ``monitor`` and ``monitor_mode``.
        seed: base seed of :class:`StepSeed` (default: ``seed_everything``'s).
        config_text: the resolved config, saved as ``config.yaml``.
        trainer_kwargs: any ``Trainer`` argument (``max_epochs``, ``precision``,
            ``gradient_clip_val``, ``accumulate_grad_batches``, ``devices``, ``strategy``...);
            ``callbacks`` are added to hsikit's, ``logger=False`` turns logging off.

    Example:
        >>> trainer = create_trainer("runs/demo", RunOptions(ema_decay=0.999), task=task, max_epochs=5)
        >>> trainer.fit(task, datamodule=datamodule)
    """
    options = options or RunOptions()
    folder = Path(run_dir)
    monitor = getattr(task, "monitor", "val/loss")
    monitor_mode = getattr(task, "monitor_mode", "min")
    logger = trainer_kwargs.pop("logger", True)
    if logger is True or logger is None:
        logger = build_loggers(folder)
    callbacks = build_callbacks(
        folder,
        options,
        monitor=monitor,
        monitor_mode=monitor_mode,
        seed=seed,
        config_text=config_text,
        log_learning_rate=bool(logger),
    )
    extra = trainer_kwargs.pop("callbacks", None) or []
    callbacks = ([extra] if isinstance(extra, Callback) else list(extra)) + callbacks
    trainer_kwargs.setdefault("default_root_dir", str(folder))
    trainer_kwargs.setdefault("log_every_n_steps", 10)
    return Trainer(callbacks=callbacks, logger=logger, **trainer_kwargs)
