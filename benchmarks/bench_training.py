"""Benchmark: training throughput of the engine, one process against 2-process DDP on CPU.

The task is the engine's reference experiment: a spectral MLP (200 → 256 → 128 → 16)
classifying Indian Pines pixels (60 % of the labelled pixels for training, batch 256
per step in total). Each configuration runs in its own child process (a Lightning
script: DDP starts its second rank by re-running it) and times the training epochs
after the first one (warm-up) from the main process:

* ``1 process x N threads``: one process using every core for its tensor maths;
* ``1 process x 1 thread``;
* ``DDP 2 processes x 1 thread`` (gloo, ``strategy="ddp"``), batch 128 per rank,
  so every optimizer step sees the same 256 samples as in the single-process runs.

Throughput is training samples per second over all processes (wall clock). On a
shared machine wall-clock times move with the other processes' load, so the load
average before and after is recorded with the machine description, and
``samples_per_cpu_second`` (samples one process trains per second of its own CPU
time, all threads) is reported as a load-independent companion.

Usage::

    python benchmarks/bench_training.py                # 6 epochs per configuration
    python benchmarks/bench_training.py --epochs 3     # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "bench_training.json"
GLOBAL_BATCH = 256
TRAIN_FRACTION = 0.6


def _shared_data() -> Path:
    from hsikit.data.paths import shared_data_dir

    folder = shared_data_dir()
    if folder is None:
        sys.exit("the shared data folder (../shared/data or $HSIKIT_SHARED_DATA) is needed for Indian Pines")
    return folder


# ---------------------------------------------------------------------------- child process
def run_worker(devices: int, threads: int, epochs: int, output: Path) -> None:
    """Train once (a Lightning script; DDP re-runs it for rank 1) and write the timing of rank 0."""
    import lightning as L
    import torch
    from lightning.pytorch import Callback

    from hsikit.data.datamodules import PixelClassificationDataModule
    from hsikit.engine.trainer import RunOptions, create_trainer
    from hsikit.tasks import ClassificationTask

    torch.set_num_threads(threads)

    class EpochClock(Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.ends: list[float] = []
            self.cpu_starts: list[float] = []
            self.cpu_ends: list[float] = []
            self.samples: list[int] = []

        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
            self.starts.append(time.perf_counter())
            self.cpu_starts.append(time.process_time())
            self.samples.append(0)

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, index: int) -> None:
            self.samples[-1] += int(batch[1].shape[0])

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
            self.ends.append(time.perf_counter())
            self.cpu_ends.append(time.process_time())

    L.seed_everything(0)
    datamodule = PixelClassificationDataModule(
        dataset="indian_pines", root=str(_shared_data()), train=TRAIN_FRACTION, val=0.05,
        batch_size=GLOBAL_BATCH // devices,
    )
    task = ClassificationTask(model_args={"hidden_sizes": [256, 128], "dropout": 0.1}, lr=2e-3, warmup_steps=10)
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = create_trainer(
            run_dir,
            RunOptions(save_top_k=0, export=False, report=False),
            task=task,
            callbacks=[clock],
            logger=False,
            max_epochs=epochs,
            accelerator="cpu",
            devices=devices,
            strategy="ddp" if devices > 1 else "auto",
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(task, datamodule=datamodule)
    if not trainer.is_global_zero:
        return
    timed = range(1, len(clock.ends))  # epoch 0 is warm-up
    seconds = sum(clock.ends[e] - clock.starts[e] for e in timed)
    cpu_seconds = sum(clock.cpu_ends[e] - clock.cpu_starts[e] for e in timed)  # rank 0, all its threads
    samples_per_rank = sum(clock.samples[e] for e in timed)
    output.write_text(json.dumps({
        "processes": devices,
        "threads_per_process": threads,
        "timed_epochs": len(timed),
        "seconds": seconds,
        "samples": samples_per_rank * devices,
        "samples_per_second": samples_per_rank * devices / seconds,
        "cpu_seconds_rank0": cpu_seconds,
        # less sensitive to other load than wall time: samples per CPU-second of one process
        "samples_per_cpu_second": samples_per_rank / cpu_seconds,
        "seconds_per_epoch": seconds / len(timed),
        "steps_per_epoch": int(trainer.num_training_batches),
        "val_accuracy": float(trainer.callback_metrics["val/accuracy"]),
    }))


# ---------------------------------------------------------------------------- orchestration
def _machine() -> dict[str, Any]:
    import lightning
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "load_average_before": list(os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per configuration (the first is warm-up)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        run_worker(arguments.devices, arguments.threads, arguments.epochs, arguments.output)
        return

    cores = os.cpu_count() or 1
    configurations = [(1, cores, f"1 process x {cores} threads"), (1, 1, "1 process x 1 thread"),
                      (2, 1, "DDP 2 processes x 1 thread (gloo)")]
    machine = _machine()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for devices, threads, label in configurations:
            output = Path(scratch) / f"{devices}x{threads}.json"
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--devices", str(devices),
                       "--threads", str(threads), "--epochs", str(arguments.epochs), "--output", str(output)]
            started = time.perf_counter()
            completed = subprocess.run(command, env=env, capture_output=True, text=True)
            if completed.returncode != 0:
                sys.exit(f"{label} failed:\n{completed.stderr[-3000:]}")
            result = json.loads(output.read_text())
            result["configuration"] = label
            result["process_wall_seconds"] = time.perf_counter() - started
            results.append(result)
    machine["load_average_after"] = list(os.getloadavg())
    baseline = results[0]["samples_per_second"]
    for result in results:
        result["speedup_vs_first"] = result["samples_per_second"] / baseline

    header = (f"{'configuration':<36} {'samples/s':>10} {'s/epoch':>8} {'steps/epoch':>11} "
              f"{'speed-up':>8} {'samples/cpu-s':>13} {'val acc':>7}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['configuration']:<36} {r['samples_per_second']:>10.0f} {r['seconds_per_epoch']:>8.3f} "
              f"{r['steps_per_epoch']:>11d} {r['speedup_vs_first']:>8.2f} {r['samples_per_cpu_second']:>13.0f} "
              f"{r['val_accuracy']:>7.3f}")
    print(f"\nmachine: {machine['cpu_count']} CPUs, torch {machine['torch']}, lightning {machine['lightning']}, "
          f"load average {machine['load_average_before'][0]:.1f} -> {machine['load_average_after'][0]:.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "training throughput, Indian Pines spectral MLP", "global_batch": GLOBAL_BATCH,
               "train_fraction": TRAIN_FRACTION, "epochs": arguments.epochs, "machine": machine, "results": results}
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
