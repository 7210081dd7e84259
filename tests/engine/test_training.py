"""Trainer behaviours on real Indian Pines pixels: EMA, NaN guard, clipping, accumulation,
mixed precision, seeding, early stopping, best-k checkpoints and the learning-rate schedule."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback

import hsikit
from hsikit.engine.callbacks import NonFiniteGuard, WeightEMA
from hsikit.engine.schedulers import warmup_cosine_factor
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import TrainingError
from hsikit.tasks import ClassificationTask

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}


def _task(**overrides: Any) -> ClassificationTask:
    options: dict[str, Any] = {"model_args": {"hidden_sizes": [16], "dropout": 0.0, "norm": "none"}, "lr": 3e-3}
    options.update(overrides)
    return ClassificationTask(**options)


def _fit(tmp_path: Path, task: ClassificationTask, datamodule: Any, options: RunOptions | None = None,
         callbacks: list[Callback] | None = None, **trainer_kwargs: Any) -> L.Trainer:
    options = options or RunOptions(export=False, report=False)
    settings = {**QUIET, "logger": False, "max_epochs": 2, **trainer_kwargs}
    trainer = create_trainer(tmp_path / "run", options, task=task, callbacks=callbacks or [], **settings)
    trainer.fit(task, datamodule=datamodule)
    return trainer


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


class StepRecorder(Callback):
    """Keeps the network's weights at the start and after every optimizer step, by global step."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.states[0] = _state(pl_module.model)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        self.states[trainer.global_step] = _state(pl_module.model)


def _find(trainer: L.Trainer, kind: type) -> Any:
    return next(c for c in trainer.callbacks if isinstance(c, kind))


# ---------------------------------------------------------------------------- weight EMA
def test_ema_matches_hand_computed_average_and_drives_validation_and_export(
    tmp_path: Path, make_datamodule: Any
) -> None:
    L.seed_everything(0)
    datamodule = make_datamodule()
    task = _task(model_args={"hidden_sizes": [16], "dropout": 0.0, "norm": "batch"})
    recorder = StepRecorder()
    decay = 0.7
    options = RunOptions(ema_decay=decay, export=True, export_weights="last", report=False)
    trainer = _fit(tmp_path, task, datamodule, options, callbacks=[recorder])
    ema = _find(trainer, WeightEMA)

    steps = sorted(recorder.states)
    assert steps == list(range(11))  # 160 pixels / 32 = 5 steps per epoch, 2 epochs
    expected = {key: value.clone() for key, value in recorder.states[0].items()}
    for step in steps[1:]:
        for key, value in recorder.states[step].items():
            if value.is_floating_point():
                expected[key] = decay * expected[key] + (1 - decay) * value
            else:
                expected[key] = value.clone()
    assert ema.num_updates == 10
    for key in expected:
        torch.testing.assert_close(ema.ema_state[key], expected[key], rtol=1e-5, atol=1e-6)

    # after fit the network holds the training weights, not the average
    for key, value in task.model.state_dict().items():
        torch.testing.assert_close(value, recorder.states[10][key])

    # the last validation ran with the averaged weights
    reference = hsikit.models.create_model("spectral_mlp", **task.model_args).eval()
    reference.load_state_dict(expected)
    val = datamodule.datasets["val"]
    with torch.no_grad():
        val_loss = F.cross_entropy(reference(val.spectra), val.targets)
    assert float(trainer.callback_metrics["val/loss"]) == pytest.approx(float(val_loss), rel=1e-5)

    # and the export holds the average too
    exported = hsikit.load_model(tmp_path / "run")
    for key, value in exported.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- NaN guard
class PoisonedTask(ClassificationTask):
    """Returns a NaN loss at the optimizer steps listed in ``poison_steps``."""

    poison_steps: set[int] = set()

    def shared_step(self, batch: Any, stage: str) -> torch.Tensor:
        loss = super().shared_step(batch, stage)
        if stage == "train" and self.trainer.global_step in self.poison_steps:
            loss = loss * float("nan")
        return loss


def test_nan_step_is_skipped_and_training_goes_on(tmp_path: Path, make_datamodule: Any) -> None:
    L.seed_everything(0)
    task = PoisonedTask(model_args={"hidden_sizes": [16], "dropout": 0.0}, lr=3e-3)
    task.poison_steps = {3}
    recorder = StepRecorder()
    with pytest.warns(UserWarning, match="skipped an optimizer step with a NaN/Inf loss"):
        trainer = _fit(tmp_path, task, make_datamodule(), callbacks=[recorder], max_epochs=1)
    guard = _find(trainer, NonFiniteGuard)
    assert (guard.skipped_total, guard.consecutive) == (1, 0)
    # the poisoned step (taken at global step 3) left every weight as it was
    for key, value in recorder.states[4].items():
        torch.testing.assert_close(value, recorder.states[3][key], rtol=0, atol=0)
    # the steps around it did train, and nothing became NaN
    assert any(not torch.equal(recorder.states[5][k], recorder.states[4][k]) for k in recorder.states[5])
    assert all(torch.isfinite(v).all() for v in task.model.state_dict().values() if v.is_floating_point())


def test_consecutive_nan_steps_stop_training_with_a_clear_message(tmp_path: Path, make_datamodule: Any) -> None:
    L.seed_everything(0)
    task = PoisonedTask(model_args={"hidden_sizes": [16], "dropout": 0.0}, lr=3e-3)
    task.poison_steps = set(range(2, 100))
    options = RunOptions(export=False, report=False, max_nonfinite_steps=3)
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(TrainingError) as caught:
        _fit(tmp_path, task, make_datamodule(), options)
    message = str(caught.value)
    assert "3 optimizer steps in a row had a NaN/Inf loss" in message
    assert "step 4" in message and "gradient_clip_val" in message
    assert all(torch.isfinite(v).all() for v in task.model.state_dict().values() if v.is_floating_point())
    # the run folder records the failure (and nothing is exported)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())["fit"]
    assert record["status"] == "failed" and record["error"].startswith("TrainingError: training stopped")
    assert not (tmp_path / "run" / "model").exists()


# ---------------------------------------------------------------------------- clipping and accumulation
def _sgd_task() -> ClassificationTask:
    # in_bands / num_classes given, so the network exists before fit and can be copied
    architecture = {"in_bands": 200, "num_classes": 16, "hidden_sizes": [16], "dropout": 0.0, "norm": "none"}
    return _task(model_args=architecture, optimizer="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, scheduler="constant")


def _parameter_change(before: dict[str, torch.Tensor], model: torch.nn.Module) -> float:
    deltas = [(p.detach() - before[name]).flatten() for name, p in model.named_parameters()]
    return float(torch.linalg.vector_norm(torch.cat(deltas)))


def test_gradient_clipping_bounds_the_update(tmp_path: Path, make_datamodule: Any) -> None:
    changes = {}
    for clip in (None, 1e-3):
        L.seed_everything(0)
        task = _sgd_task()
        before = _state(task.model)
        _fit(tmp_path / str(clip), task, make_datamodule(), max_steps=1, gradient_clip_val=clip)
        changes[clip] = _parameter_change(before, task.model)
    # SGD with lr 1: the update is the gradient, whose norm clipping sets to exactly 1e-3
    assert changes[1e-3] == pytest.approx(1e-3, rel=1e-3)
    assert changes[None] > 0.05


def test_gradient_accumulation_equals_the_large_batch(tmp_path: Path, make_datamodule: Any) -> None:
    weights = []
    for batch_size, accumulate in ((32, 1), (16, 2)):
        L.seed_everything(0)
        task = _sgd_task()
        _fit(tmp_path / str(batch_size), task, make_datamodule(batch_size=batch_size),
             max_steps=3, accumulate_grad_batches=accumulate)
        weights.append(_state(task.model))
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- mixed precision
class DtypeProbe(Callback):
    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        pl_module.model.head.register_forward_hook(lambda module, args, output: self.dtypes.add(output.dtype))


def _train_with_precision(tmp_path: Path, make_datamodule: Any, precision: str, accelerator: str) -> tuple[set, Any]:
    L.seed_everything(0)
    task = _task()
    probe = DtypeProbe()
    trainer = _fit(tmp_path, task, make_datamodule(), callbacks=[probe], precision=precision,
                   accelerator=accelerator, max_epochs=3)
    return probe.dtypes, (task, trainer)


def test_bf16_mixed_precision_on_cpu(tmp_path: Path, make_datamodule: Any) -> None:
    dtypes, (task, trainer) = _train_with_precision(tmp_path, make_datamodule, "bf16-mixed", "cpu")
    assert torch.bfloat16 in dtypes  # the layers ran in bf16 under autocast...
    assert all(p.dtype == torch.float32 for p in task.model.parameters())  # ...on float32 master weights
    assert float(trainer.callback_metrics["train/loss_epoch"]) < 2.5  # and it learned (chance: ln 16 = 2.77)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_on_gpu(tmp_path: Path, make_datamodule: Any, precision: str) -> None:
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    dtypes, (task, trainer) = _train_with_precision(tmp_path, make_datamodule, precision, "gpu")
    assert (torch.bfloat16 if precision == "bf16-mixed" else torch.float16) in dtypes
    assert float(trainer.callback_metrics["train/loss_epoch"]) < 2.5


# ---------------------------------------------------------------------------- seeding
def _seeded_weights(tmp_path: Path, make_datamodule: Any, seed: int) -> dict[str, torch.Tensor]:
    L.seed_everything(seed)
    task = _task(model_args={"hidden_sizes": [16], "dropout": 0.3, "norm": "batch"})
    _fit(tmp_path, task, make_datamodule())
    return _state(task.model)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, make_datamodule: Any) -> None:
    first = _seeded_weights(tmp_path / "a", make_datamodule, 3)
    again = _seeded_weights(tmp_path / "b", make_datamodule, 3)
    other = _seeded_weights(tmp_path / "c", make_datamodule, 4)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["head.weight"], other["head.weight"])


# ---------------------------------------------------------------------------- early stopping, best k
def test_early_stopping_stops_after_patience(tmp_path: Path, make_datamodule: Any) -> None:
    L.seed_everything(0)
    task = _task(optimizer="sgd", lr=1e-9, scheduler="constant")  # the weights barely move
    options = RunOptions(export=False, report=False, early_stopping_patience=2, early_stopping_min_delta=1e-3)
    trainer = _fit(tmp_path, task, make_datamodule(), options, max_epochs=20)
    # epoch 0 sets the best accuracy, epochs 1 and 2 do not beat it: stop after 3 epochs
    assert trainer.current_epoch == 3
    assert trainer.should_stop


def test_best_k_checkpoints_and_last_are_kept(tmp_path: Path, make_datamodule: Any) -> None:
    L.seed_everything(0)
    options = RunOptions(export=False, report=False, save_top_k=2, monitor="val/loss", monitor_mode="min")
    _fit(tmp_path, _task(), make_datamodule(), options, max_epochs=5, logger=True)
    run = tmp_path / "run"
    with open(run / "csv" / "version_0" / "metrics.csv", newline="") as handle:
        losses = {int(row["epoch"]): float(row["val/loss"]) for row in csv.DictReader(handle) if row.get("val/loss")}
    assert sorted(losses) == [0, 1, 2, 3, 4]
    best_two = sorted(sorted(losses, key=losses.get)[:2])
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == sorted([f"epoch{e:03d}-step{5 * (e + 1):06d}.ckpt" for e in best_two] + ["last.ckpt"])


# ---------------------------------------------------------------------------- learning-rate schedule
class LearningRates(Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_warmup_cosine_schedule_is_applied_per_step(tmp_path: Path, make_datamodule: Any) -> None:
    L.seed_everything(0)
    task = _task(lr=0.01, warmup_steps=3, min_lr_ratio=0.1)
    probe = LearningRates()
    _fit(tmp_path, task, make_datamodule(), callbacks=[probe], max_epochs=3)
    total = 15  # 3 epochs x 5 steps
    assert probe.rates == pytest.approx([0.01 * warmup_cosine_factor(s, 3, total, 0.1) for s in range(total)])
