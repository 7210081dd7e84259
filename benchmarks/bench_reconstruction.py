"""Benchmark: spectral reconstruction (RGB → 31 bands), MST++ against the CNN baseline, on CPU.

One run does, in this order:

1. **Model cards** of MST++ (default: 3 stages, 1.62 M parameters) and the HSCNN-R style CNN
   baseline (default: 64 features, 16 residual blocks): parameters, and FLOPs of one forward pass
   at 256 × 256 and 482 × 512 counted by ``torch.utils.flop_counter``
   (:func:`hsikit.models.complexity.model_card`; FLOPs = 2 × multiply-accumulates).
2. **Training** of both models on the training scenes of the offline proxy set (real AVIRIS
   scenes with simulated NTIRE RGB — *not ARAD-1K*; built from the shared data folder) with the
   same fixed budget: ``--steps`` optimizer steps (default 120) of ``--batch`` (8) patches of
   ``--patch`` (64) px on the stride-8 grid with the MST++ augmentation; MST++ recipe for MST++
   (MRAE loss, Adam 4e-4, cosine to 1e-6), the baseline's proxy config for the CNN (MRAE + 0.1 SAM,
   Adam 2e-4, cosine to 1e-6). Both through the hsikit engine (``ReconstructionTask`` +
   ``ReconstructionDataModule``, Lightning), seed 0, fp32.
3. **Evaluation** of the final weights on the 3 proxy validation scenes (100 × 100 px) with the
   protocol's metrics (MRAE, RMSE, PSNR, SAM per image, averaged over images) after a 25-px
   border crop (the protocol's SIZE/4 crop scaled to 100-px images).
4. **Inference** of MST++ on one full 482 × 512 RGB image: median latency over ``--repeats``
   timed forward passes after one warm-up pass, images per second, and the achieved FLOP/s (the
   model card's FLOPs ÷ latency) as a fraction of the FLOP/s of a 2048 × 2048 float32 matrix
   product measured in the same run (best of 5) — the practical peak of this CPU and BLAS.

All of it runs on the CPU with ``--threads`` torch threads (default: every core) and
``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning, which matters on a
shared machine). Wall-clock times follow the machine's load, so the load average before and after
is recorded with the machine description; the training metrics do not depend on it (fixed steps,
fixed seed). Results: a table on stdout and ``benchmarks/results/bench_reconstruction.json``.

Usage::

    python benchmarks/bench_reconstruction.py                  # about 6-8 minutes on 2 idle cores
    python benchmarks/bench_reconstruction.py --steps 20 --repeats 2   # a quick check
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP threads

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_reconstruction.json"
MODELS = {
    "mst_plus_plus": {"label": "MST++", "model_args": {"stage": 3, "num_blocks": [1, 1, 1]},
                      "task": {"lr": 4e-4, "min_lr_ratio": 1e-6 / 4e-4}},
    "hscnn_r": {"label": "HSCNN-R (CNN baseline)", "model_args": {"features": 64, "num_blocks": 16},
                "task": {"lr": 2e-4, "min_lr_ratio": 1e-6 / 2e-4, "sam_weight": 0.1}},
}  # fmt: skip
CARD_SIZES = ((256, 256), (482, 512))
EVAL_CROP = 25
ARAD_SIZE = (482, 512)
MATMUL_SIZE = 2048


def machine_info(threads: int) -> dict[str, Any]:
    import lightning
    import numpy as np
    import torch

    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu_model = names[0] if names else cpu_model
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "gpu": "none (CPU-only benchmark)",
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "numpy": np.__version__,
        "torch_threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_before": list(os.getloadavg()),
    }


def model_cards() -> dict[str, Any]:
    from hsikit.models import create_model
    from hsikit.models.complexity import model_card

    return {name: model_card(create_model(name, **spec["model_args"]), CARD_SIZES) for name, spec in MODELS.items()}


def train_and_evaluate(
    name: str, root: Path, args: argparse.Namespace, scratch: Path, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train ``name`` for ``args.steps`` steps on the proxy set, then validate it with the protocol.

    ``spec`` (default ``MODELS[name]``) holds ``label``, ``model_args``, the task's ``task`` options
    and optional extra ``trainer`` arguments; ``bench_transformers.py`` passes its own.
    """
    import lightning as L

    from hsikit.data.reconstruction_datamodule import ReconstructionDataModule
    from hsikit.engine.trainer import RunOptions, create_trainer
    from hsikit.tasks.reconstruction import ReconstructionTask

    spec = MODELS[name] if spec is None else spec
    L.seed_everything(0, verbose=False)
    datamodule = ReconstructionDataModule(
        root=str(root), patch_size=args.patch, stride=8, batch_size=args.batch, num_workers=0
    )
    task = ReconstructionTask(model=name, model_args=dict(spec["model_args"]), eval_crop=EVAL_CROP, **spec["task"])
    trainer = create_trainer(
        scratch / name,
        RunOptions(export=False, report=False, save_top_k=0),
        task=task,
        max_steps=args.steps,
        limit_val_batches=0,  # validation once, after training
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
        **spec.get("trainer", {}),
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.fit(task, datamodule=datamodule)
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    trainer.limit_val_batches = 1.0
    started = time.perf_counter()
    metrics = trainer.validate(task, datamodule=datamodule, verbose=False)[0]
    return {
        "model": name,
        "label": spec["label"],
        "model_args": spec["model_args"],
        "task": spec["task"],
        "trainer": spec.get("trainer", {}),
        "steps": int(trainer.global_step),
        "batch": args.batch,
        "patch": args.patch,
        "patches_seen": int(trainer.global_step) * args.batch,
        "training_patches": len(datamodule.datasets["train"]),
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,
        "seconds_per_step": train_seconds / max(int(trainer.global_step), 1),
        "validation_seconds": time.perf_counter() - started,
        "validation_images": len(datamodule.datasets["val"]),
        "metrics": {key: float(metrics[f"val/{key}"]) for key in ("mrae", "rmse", "psnr", "sam")},
    }


def matmul_flops_per_second(repeats: int = 5) -> dict[str, float]:
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(MATMUL_SIZE, MATMUL_SIZE, generator=generator)
    b = torch.rand(MATMUL_SIZE, MATMUL_SIZE, generator=generator)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - started)
    best = min(times)
    return {"size": MATMUL_SIZE, "best_seconds": best, "flops": 2 * MATMUL_SIZE**3,
            "flops_per_second": 2 * MATMUL_SIZE**3 / best}  # fmt: skip


def inference_latency(flops: int, repeats: int) -> dict[str, Any]:
    import torch

    from hsikit.models import create_model

    torch.manual_seed(0)
    model = create_model("mst_plus_plus", **MODELS["mst_plus_plus"]["model_args"]).eval()
    image = torch.rand(1, 3, *ARAD_SIZE)
    times = []
    with torch.inference_mode():
        model(image)  # warm-up (allocator, oneDNN primitives)
        for _ in range(repeats):
            started = time.perf_counter()
            model(image)
            times.append(time.perf_counter() - started)
    latency = statistics.median(times)
    return {
        "input_shape": [1, 3, *ARAD_SIZE],
        "repeats": repeats,
        "latencies_seconds": times,
        "median_latency_seconds": latency,
        "images_per_second": 1.0 / latency,
        "model_flops": flops,
        "achieved_flops_per_second": flops / latency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per model (default 120)")
    parser.add_argument("--batch", type=int, default=8, help="patches per step (default 8)")
    parser.add_argument("--patch", type=int, default=64, help="patch side in px (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="timed 482 x 512 forward passes (default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    parser.add_argument("--proxy-root", type=Path, default=None, help="proxy set folder (default: a temporary one)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args()

    import torch

    from hsikit.data.paths import shared_data_dir
    from hsikit.data.proxy import build_proxy_set

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    if shared_data_dir() is None:
        sys.exit("the shared data folder (../shared/data or $HSIKIT_SHARED_DATA) is needed to build the proxy set")
    started = time.perf_counter()
    machine = machine_info(args.threads)
    cards = model_cards()
    with tempfile.TemporaryDirectory(prefix="bench_reconstruction_") as scratch_name:
        scratch = Path(scratch_name)
        root = build_proxy_set(args.proxy_root or scratch / "proxy")
        training = [train_and_evaluate(name, root, args, scratch) for name in MODELS]
    matmul_before = matmul_flops_per_second()
    inference = inference_latency(cards["mst_plus_plus"]["sizes"]["482x512"]["flops"], args.repeats)
    matmul_after = matmul_flops_per_second()
    peak = max(matmul_before["flops_per_second"], matmul_after["flops_per_second"])
    inference["matmul_reference"] = {"before": matmul_before, "after": matmul_after, "peak_flops_per_second": peak}
    inference["flop_efficiency"] = inference["achieved_flops_per_second"] / peak
    machine["load_average_after"] = list(os.getloadavg())
    total_seconds = time.perf_counter() - started

    print("\nModel cards (FLOPs = 2 x MACs, torch.utils.flop_counter)")
    print(f"{'model':<24} {'params':>10} {'GFLOPs 256x256':>15} {'GFLOPs 482x512':>15}")
    for name, card in cards.items():
        print(f"{MODELS[name]['label']:<24} {card['parameters']:>10,d} {card['sizes']['256x256']['gflops']:>15.2f} "
              f"{card['sizes']['482x512']['gflops']:>15.2f}")
    print(f"\nTraining on the proxy set ({args.steps} steps x {args.batch} patches of {args.patch} px each), "
          f"validation on {training[0]['validation_images']} proxy scenes, {EVAL_CROP}-px border crop")
    print(f"{'model':<24} {'MRAE':>7} {'RMSE':>7} {'PSNR':>7} {'SAM':>7} {'train s':>8} {'s/step':>7}")
    for result in training:
        m = result["metrics"]
        print(f"{result['label']:<24} {m['mrae']:>7.4f} {m['rmse']:>7.4f} {m['psnr']:>7.2f} {m['sam']:>7.4f} "
              f"{result['train_seconds']:>8.1f} {result['seconds_per_step']:>7.2f}")
    achieved = inference["achieved_flops_per_second"] / 1e9
    print(f"\nMST++ inference at 482 x 512 ({args.threads} threads): median "
          f"{inference['median_latency_seconds']:.3f} s, {inference['images_per_second']:.3f} images/s, "
          f"{achieved:.1f} GFLOP/s = {inference['flop_efficiency']:.1%} of the {peak / 1e9:.1f} GFLOP/s "
          f"of a {MATMUL_SIZE}^2 matmul")
    print(f"machine: {machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, load average "
          f"{machine['load_average_before'][0]:.1f} -> {machine['load_average_after'][0]:.1f}; "
          f"total {total_seconds:.0f} s")

    payload = {
        "benchmark": "spectral reconstruction: MST++ vs CNN baseline on the proxy set (NOT ARAD-1K), CPU",
        "settings": {"steps": args.steps, "batch": args.batch, "patch": args.patch, "stride": 8,
                     "eval_crop": EVAL_CROP, "repeats": args.repeats, "threads": args.threads, "seed": 0},
        "machine": machine,
        "model_cards": cards,
        "training": training,
        "inference_mstpp_482x512": inference,
        "total_seconds": total_seconds,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
