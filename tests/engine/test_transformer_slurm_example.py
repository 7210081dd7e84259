"""The SLURM example of transformer training hands srun a valid ``hsikit fit`` DDP command line."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from hsikit.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "slurm" / "train_transformer.sbatch"


def test_the_sbatch_script_runs_hsikit_fit_with_ddp_on_every_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("# stub\n")
    recorded = tmp_path / "srun_arguments.txt"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {shlex.quote(str(recorded))}\n')
    (fake_bin / "srun").chmod(0o755)
    environment = {
        **os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "HSIKIT_VENV": str(venv),
        "SLURM_CPUS_PER_TASK": "6", "SLURM_GPUS_PER_NODE": "a100:4", "SLURM_NNODES": "2",
        "HSI_DATA_DIR": str(tmp_path / "ARAD_1K"),
    }  # fmt: skip
    config = ROOT / "configs" / "reconstruction_sharp_arad.yaml"
    subprocess.run(["bash", str(SCRIPT), str(config), "--model.init_args.model_size", "tiny"], check=True,
                   cwd=ROOT, env=environment)  # fmt: skip
    arguments = recorded.read_text().splitlines()
    assert arguments[:4] == ["hsikit", "fit", "--config", str(config)]
    pairs = dict(zip(arguments[4::2], arguments[5::2]))
    assert pairs["--trainer.devices"] == "4" and pairs["--trainer.num_nodes"] == "2"
    assert pairs["--trainer.strategy"] == "ddp" and pairs["--trainer.precision"] == "bf16-mixed"
    assert pairs["--data.init_args.num_workers"] == "5" and pairs["--model.init_args.model_size"] == "tiny"
    # the same command line is a valid experiment for the engine
    assert main([*arguments[1:], "--print_config"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["trainer"]["strategy"] == "ddp" and str(resolved["trainer"]["devices"]) == "4"
    assert resolved["data"]["init_args"]["root"] == str(tmp_path / "ARAD_1K")
    assert resolved["model"]["init_args"]["model_size"] == "tiny"
