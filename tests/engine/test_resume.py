"""Exact resume: a run SIGKILLed mid-epoch and resumed from its last checkpoint ends like an uninterrupted one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from hsikit.engine.callbacks import WeightEMA
from hsikit.engine.export import read_checkpoint
from resume_job import CHECKPOINT_EVERY, EPOCHS, STEPS_PER_EPOCH, train

KILL_AT = 13  # epoch 1 covers steps 9..16; the last checkpoint before the kill is step 10


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path: Path, shared_data: Path) -> None:
    reference_task, reference_trainer = train(tmp_path / "reference", shared_data)

    run_dir = tmp_path / "interrupted"
    job = Path(__file__).with_name("resume_job.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, str(job), str(run_dir), str(shared_data), "--kill-at-step", str(KILL_AT)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]  # died by SIGKILL, no clean-up
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "model").exists()

    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == CHECKPOINT_EVERY * (KILL_AT // CHECKPOINT_EVERY) == 10
    assert last["epoch"] == 1  # mid-epoch: 2 of the 8 batches of epoch 1 were done
    assert last["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["ready"] == 10 - STEPS_PER_EPOCH
    assert last["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["samples_consumed"] == 2 * 16
    assert "hsikit_ema" in last and "hsikit" in last

    resumed_task, resumed_trainer = train(run_dir, shared_data, resume=True)
    assert resumed_trainer.global_step == reference_trainer.global_step == EPOCHS * STEPS_PER_EPOCH

    # same weights, same weight average
    for key, value in reference_task.model.state_dict().items():
        torch.testing.assert_close(resumed_task.model.state_dict()[key], value, rtol=1e-6, atol=1e-7)
    reference_ema, resumed_ema = (
        next(c for c in trainer.callbacks if isinstance(c, WeightEMA)).ema_state
        for trainer in (reference_trainer, resumed_trainer)
    )
    for key, value in reference_ema.items():
        torch.testing.assert_close(resumed_ema[key], value, rtol=1e-6, atol=1e-7)

    # same final metrics, train epoch means included (their running state is in the checkpoint)
    final = {
        name: json.loads((tmp_path / name / "metrics.json").read_text())["fit"] for name in ("reference", "interrupted")
    }
    assert final["interrupted"]["metrics"].keys() == final["reference"]["metrics"].keys()
    for key, value in final["reference"]["metrics"].items():
        assert abs(final["interrupted"]["metrics"][key] - value) <= 1e-6 * max(1.0, abs(value)), key
    assert final["interrupted"]["best_score"] == final["reference"]["best_score"]

    # the resumed session logged beside the interrupted one instead of overwriting it
    assert (run_dir / "csv" / "version_0" / "metrics.csv").is_file()
    assert (run_dir / "csv" / "version_1" / "metrics.csv").is_file()
