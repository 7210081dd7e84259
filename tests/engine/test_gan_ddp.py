"""The GAN reconstruction task under real 2-process CPU DDP (gloo): both ranks train, on different data, in sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from gan_resume_job import make_tree  # noqa: E402

JOB = Path(__file__).with_name("gan_ddp_job.py")


def test_two_cpu_processes_train_the_gan_in_sync(tmp_path: Path) -> None:
    data_root = make_tree(tmp_path / "data")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(JOB), str(run_dir), str(data_root)], capture_output=True,
                            text=True, timeout=400, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(run_dir / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    # both processes ran every step: 4 generator steps, 4 critic steps, one batch each
    assert all(r["global_step"] == 4 and r["d_steps"] == 4 and len(r["batches"]) == 4 for r in ranks)
    # each rank got its own share of the data (a different patch at every step)
    assert all(a != pytest.approx(b, rel=1e-9) for a, b in zip(ranks[0]["batches"], ranks[1]["batches"]))
    # the gradients each optimizer stepped with were averaged over the ranks: identical on both
    assert len(ranks[0]["gradients"]) == 8 and {i for i, _ in ranks[0]["gradients"]} == {0, 1}
    for (index0, grad0), (index1, grad1) in zip(ranks[0]["gradients"], ranks[1]["gradients"]):
        assert index0 == index1 and grad0 == pytest.approx(grad1, rel=1e-6, abs=1e-9)
    # so the weights (and the spectral-norm vectors) are the same on both ranks at the end
    for network in ("generator", "critic"):
        for key, value in ranks[0][network].items():
            torch.testing.assert_close(ranks[1][network][key], value, rtol=1e-6, atol=1e-7, msg=f"{network}.{key}")
