"""WeightEMA with an update interval (``run.ema_update_every``): hand-computed average, exact resume."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback

from hsikit.engine.callbacks import WeightEMA
from hsikit.engine.export import EMA_CHECKPOINT_KEY, read_checkpoint
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import ConfigError
from hsikit.tasks import ClassificationTask

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, "logger": False}


def _task() -> ClassificationTask:
    return ClassificationTask(
        model_args={"hidden_sizes": [16], "dropout": 0.0, "norm": "batch"}, lr=3e-3, scheduler="constant"
    )


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


class StepRecorder(Callback):
    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.states.setdefault(trainer.global_step, _state(pl_module.model))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        self.states[trainer.global_step] = _state(pl_module.model)


def _ema(trainer: L.Trainer) -> WeightEMA:
    return next(c for c in trainer.callbacks if isinstance(c, WeightEMA))


def test_the_interval_is_checked() -> None:
    with pytest.raises(ConfigError, match="update_every"):
        WeightEMA(0.9, update_every=0)
    with pytest.raises(ConfigError, match="ema_update_every"):
        RunOptions(ema_decay=0.9, ema_update_every=-2)
    assert WeightEMA(0.9, update_every=3).update_decay == pytest.approx(0.729)


def test_every_k_steps_the_average_takes_the_hand_computed_value(tmp_path: Path, make_datamodule: Any) -> None:
    L.seed_everything(0)
    task, recorder, decay, every = _task(), StepRecorder(), 0.8, 3
    options = RunOptions(ema_decay=decay, ema_update_every=every, export=False, report=False)
    trainer = create_trainer(tmp_path, options, task=task, callbacks=[recorder], max_epochs=2, **QUIET)
    trainer.fit(task, datamodule=make_datamodule())
    ema = _ema(trainer)
    assert sorted(recorder.states) == list(range(11))  # 5 optimizer steps per epoch
    expected = {key: value.clone() for key, value in recorder.states[0].items()}
    for step in (3, 6, 9):  # the steps that reach a multiple of 3; the decay per update is 0.8 ** 3
        for key, value in recorder.states[step].items():
            expected[key] = decay**every * expected[key] + (1 - decay**every) * value if value.is_floating_point() \
                else value.clone()  # fmt: skip
    assert ema.num_updates == 3
    for key in expected:
        torch.testing.assert_close(ema.ema_state[key], expected[key], rtol=1e-5, atol=1e-6)
    # an update after every step would give another average: the interval is really applied
    every_step = {key: value.clone() for key, value in recorder.states[0].items() if value.is_floating_point()}
    for step in range(1, 11):
        for key in every_step:
            every_step[key] = decay * every_step[key] + (1 - decay) * recorder.states[step][key]
    assert any(not torch.allclose(ema.ema_state[key], value, atol=1e-4) for key, value in every_step.items())


def test_a_resumed_run_updates_at_the_same_steps_and_ends_with_the_same_average(
    tmp_path: Path, make_datamodule: Any
) -> None:
    options = RunOptions(ema_decay=0.6, ema_update_every=4, export=False, report=False, save_top_k=0)
    L.seed_everything(0)
    straight = _task()
    trainer = create_trainer(tmp_path / "straight", options, task=straight, max_epochs=2, **QUIET)
    trainer.fit(straight, datamodule=make_datamodule())
    reference = _ema(trainer)
    assert reference.num_updates == 2  # steps 4 and 8 of 10

    L.seed_everything(0)
    first = _task()
    trainer = create_trainer(tmp_path / "resumed", options, task=first, max_epochs=1, **QUIET)
    trainer.fit(first, datamodule=make_datamodule())
    assert _ema(trainer).num_updates == 1  # step 4 of 5; step 5 is mid-interval
    checkpoint = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    record = read_checkpoint(checkpoint)[EMA_CHECKPOINT_KEY]
    assert record["update_every"] == 4 and record["num_updates"] == 1

    L.seed_everything(0)
    second = _task()
    trainer = create_trainer(tmp_path / "resumed", options, task=second, max_epochs=2, **QUIET)
    trainer.fit(second, datamodule=make_datamodule(), ckpt_path=str(checkpoint))
    resumed = _ema(trainer)
    assert trainer.global_step == 10 and resumed.num_updates == 2
    for key, value in reference.ema_state.items():
        torch.testing.assert_close(resumed.ema_state[key], value, rtol=0, atol=0)
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[key], value, rtol=0, atol=0)


def test_steps_that_jump_by_more_than_one_update_when_they_cross_a_multiple() -> None:
    """Manual optimisation with two optimizers (a GAN) moves the global step by 2 per batch."""
    model = torch.nn.Linear(1, 1, bias=False)
    module = SimpleNamespace(model=model)
    ema = WeightEMA(0.5, update_every=3)
    trainer = SimpleNamespace(global_step=0)
    ema.on_fit_start(trainer, module)  # type: ignore[arg-type]
    ema.on_train_start(trainer, module)  # type: ignore[arg-type]
    updated_at = []
    for step in range(2, 13, 2):
        trainer.global_step = step
        before = ema.num_updates
        ema.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]
        if ema.num_updates > before:
            updated_at.append(step)
    assert updated_at == [4, 6, 10, 12]  # crossing 3, 6, 9 and 12
