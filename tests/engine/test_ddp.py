"""Distributed data parallel on CPU (gloo): 2 processes train like 1 and their metrics cover every sample once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy

import hsikit
from hsikit.data.datamodules import PixelClassificationDataModule
from hsikit.engine.cli import main

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "indian_pines_mlp.yaml"
EPOCHS = 10


def _arguments(shared_data: Path, root: Path, batch_size: int) -> list[str]:
    return [
        "fit",
        "--config", str(CONFIG),
        "--data.init_args.root", str(shared_data),
        "--data.init_args.train", "0.1",
        "--data.init_args.val", "0.05",
        "--data.init_args.batch_size", str(batch_size),
        "--model.init_args.model_args.hidden_sizes", "[64]",
        "--model.init_args.lr", "5e-3",
        "--model.init_args.warmup_steps", "5",
        "--trainer.max_epochs", str(EPOCHS),
        "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.num_sanity_val_steps", "0",
        "--run.root", str(root),
        "--run.ema_decay", "null",
        "--run.checkpoint_every_n_steps", "null",
        "--run.report", "false",
    ]


def _fit_in_subprocess(arguments: list[str], launcher: list[str], timeout: int = 300) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, *arguments], capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


def _only_run(root: Path) -> Path:
    runs = list((root / "indian_pines_mlp").iterdir())
    assert len(runs) == 1, runs  # every process wrote into the same run folder
    return runs[0]


def _check_metrics_cover_the_whole_validation_set(run: Path, shared_data: Path) -> float:
    """Re-evaluate the exported best model on the full validation split in one process."""
    fit = json.loads((run / "metrics.json").read_text())["fit"]
    model = hsikit.load_model(run)
    datamodule = PixelClassificationDataModule(dataset="indian_pines", root=str(shared_data), train=0.1, val=0.05)
    datamodule.setup()
    val = datamodule.datasets["val"]
    with torch.no_grad():
        predictions = model(val.spectra).argmax(1)
    accuracy = MulticlassAccuracy(16, average="micro")(predictions, val.targets)
    # the logged (rank-synchronised) val/accuracy of the best epoch is the accuracy over all
    # validation pixels, each counted once: not one rank's half, and no padding duplicates
    assert fit["best_score"] == pytest.approx(float(accuracy), abs=1e-6)
    return float(fit["best_score"])


def test_two_process_cpu_ddp_matches_one_process(tmp_path: Path, shared_data: Path) -> None:
    single_root, ddp_root = tmp_path / "single", tmp_path / "ddp"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_arguments(shared_data, single_root, batch_size=128)) == 0
    finally:
        torch.set_num_threads(threads)
    # 2 processes x 64 samples: the same effective batch of 128
    ddp_arguments = _arguments(shared_data, ddp_root, batch_size=64)
    ddp_arguments += ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    _fit_in_subprocess(ddp_arguments, [sys.executable, "-m", "hsikit.engine.cli"])

    single_run, ddp_run = _only_run(single_root), _only_run(ddp_root)
    single = json.loads((single_run / "metrics.json").read_text())["fit"]
    ddp = json.loads((ddp_run / "metrics.json").read_text())["fit"]
    assert ddp["global_step"] == single["global_step"]  # each rank took half of every batch
    assert single["metrics"]["val/accuracy"] > 0.6  # it learned (16 classes)
    for name in ("val/accuracy", "val/average_accuracy", "val/kappa"):
        assert ddp["metrics"][name] == pytest.approx(single["metrics"][name], abs=0.05), name
    assert ddp["metrics"]["val/loss"] == pytest.approx(single["metrics"]["val/loss"], rel=0.15)
    _check_metrics_cover_the_whole_validation_set(ddp_run, shared_data)


@pytest.mark.slow
def test_torchrun_launch(tmp_path: Path, shared_data: Path) -> None:
    arguments = _arguments(shared_data, tmp_path, batch_size=32)[1:]
    arguments = ["fit", *arguments, "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "3"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "hsikit.engine.cli"]
    _fit_in_subprocess(arguments, launcher)
    run = _only_run(tmp_path)
    assert run.name.startswith("torchrun-")
    assert json.loads((run / "metrics.json").read_text())["fit"]["global_step"] > 0
    _check_metrics_cover_the_whole_validation_set(run, shared_data)
