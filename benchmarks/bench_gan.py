"""Benchmark: does CSWIN v2's Sinkhorn-GAN term help? CSWin with / without it, against MST++, on CPU.

Three arms, the same budget and the same proxy split (real AVIRIS scenes with simulated NTIRE RGB —
*not ARAD-1K*), all through the hsikit engine, seed 0, fp32:

* ``cswin_gan``: :class:`~hsikit.tasks.gan_reconstruction.GANReconstructionTask`, the CSWin
  generator against the spectral-normalised critic, Charbonnier + 0.05 SAM + 0.1 Sinkhorn
  adversarial (ε 0.1, 50 iterations), R1 every 16 critic steps (γ 10, lazy-scaled), constant
  loss weights (the reference's adaptive warm-up spans 5000 steps, longer than this budget);
* ``cswin_rec``: the same task, generator, losses and optimiser with ``lambda_adversarial = 0``
  (no critic is built or trained): the ablation;
* ``mstpp``: :class:`~hsikit.tasks.reconstruction.ReconstructionTask` with MST++ (1 stage, the
  MST++ recipe: MRAE loss, Adam 4e-4, cosine to 1e-6) — the baseline.

Budget: ``--steps`` generator optimizer steps (default 80) of ``--batch`` (4) patches of ``--patch``
(32) px from the stride-8 grid with the MST++ augmentation; Adam 4e-4 with 10 warm-up steps and a
cosine to 1e-6 for every generator (critic: 1e-4). The CSWin generator is scaled down for a
shared 2-core CPU (``--base-channels`` 16, stripes 4, 2 heads; the reference uses 64 channels and
stripes 7) and so is the critic (16 channels, one block per stage). This is a few minutes of CPU
training: the numbers rank the recipes at a tiny budget, they are not converged results.

Evaluation of the final weights (no EMA at this length) on the 3 proxy validation scenes
(100 × 100 px, 25-px border crop): MRAE, RMSE, PSNR and SAM of the protocol, on the proxy's own
RGB (NTIRE recipe: npe 750 + JPEG 65) and per shot-noise level on RGB re-simulated without JPEG
(:func:`hsikit.inference.noise_robustness.evaluate_noise_robustness`: clean, 3000, 750, 200, 50
photo-electrons per unit signal). Also parameters, FLOPs at 1 × 3 × 128 × 128
(``torch.utils.flop_counter``, 2 per MAC) and the median CPU latency of that forward pass.

Usage::

    flock /tmp/hsikit_bench.lock nice .venv/bin/python benchmarks/bench_gan.py      # ~8-12 min, 2 shared cores
    .venv/bin/python benchmarks/bench_gan.py --steps 4 --repeats 1 --output /tmp/x.json   # a quick check
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP threads

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reconstruction import machine_info  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_gan.json"
NPE_LEVELS = (None, 3000.0, 750.0, 200.0, 50.0)
LATENCY_SHAPE = (1, 3, 128, 128)


def make_arm(name: str, args: argparse.Namespace) -> Any:
    from hsikit.tasks.gan_reconstruction import GANReconstructionTask
    from hsikit.tasks.reconstruction import ReconstructionTask

    generator = {"base_channels": args.base_channels, "split_sizes": [4, 4, 4], "num_heads": 2,
                 "checkpoint_min_tokens": None}  # fmt: skip
    common = {"model_args": generator, "generator_lr": 4e-4, "discriminator_lr": 1e-4, "warmup_steps": 10,
              "min_lr_ratio": 1e-6 / 4e-4, "accumulate_grad_batches": 1, "use_adaptive_weights": False,
              "eval_crop": 25, "lambda_sam": 0.05}  # fmt: skip
    if name == "cswin_gan":
        return GANReconstructionTask(
            discriminator_args={"base_dim": 16, "num_heads": 2, "num_blocks": [1, 1, 1]},
            lambda_adversarial=0.1, **common,
        )
    if name == "cswin_rec":
        return GANReconstructionTask(lambda_adversarial=0.0, **common)
    return ReconstructionTask(model="mst_plus_plus", model_args={"stage": 1, "num_blocks": [1, 1, 1]}, lr=4e-4,
                              warmup_steps=10, min_lr_ratio=1e-6 / 4e-4, eval_crop=25)  # fmt: skip


def train_and_score(name: str, args: argparse.Namespace, proxy_root: Path, work: Path) -> dict[str, Any]:
    import lightning as L
    import torch

    from hsikit.data.reconstruction_datamodule import ReconstructionDataModule
    from hsikit.engine.trainer import RunOptions, create_trainer
    from hsikit.inference.noise_robustness import evaluate_noise_robustness, load_validation_cubes
    from hsikit.models.complexity import count_flops, count_parameters

    L.seed_everything(0, verbose=False)
    task = make_arm(name, args)
    datamodule = ReconstructionDataModule(root=str(proxy_root), patch_size=args.patch, stride=8,
                                          batch_size=args.batch, num_workers=0)  # fmt: skip
    trainer = create_trainer(
        work / name, RunOptions(report=False, export=False, save_top_k=0), task=task, max_steps=args.steps,
        max_epochs=-1, num_sanity_val_steps=0, check_val_every_n_epoch=None, val_check_interval=10**9,
        enable_progress_bar=False, enable_model_summary=False, logger=False, inference_mode=False,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    train_seconds = time.perf_counter() - started
    validation = trainer.validate(task, datamodule=datamodule, verbose=False)[0]
    model = task.model.eval()
    cubes = load_validation_cubes(proxy_root)
    noise = evaluate_noise_robustness(model, cubes, npe_levels=NPE_LEVELS, crop=25, seed=0)
    inputs = torch.rand(LATENCY_SHAPE)
    timings = []
    with torch.inference_mode():
        model(inputs)
        for _ in range(args.repeats):
            tick = time.perf_counter()
            model(inputs)
            timings.append(time.perf_counter() - tick)
    finite = all(bool(torch.isfinite(p).all()) for p in task.parameters())
    return {
        "train_seconds": round(train_seconds, 1),
        "generator_steps": int(trainer.global_step),
        "critic_steps": int(getattr(task, "d_steps_done", 0)),
        "all_weights_finite": finite,
        "parameters": count_parameters(model),
        "critic_parameters": count_parameters(task.discriminator) if getattr(task, "discriminator", None) else 0,
        "gflops_1x3x128x128": round(count_flops(model, LATENCY_SHAPE) / 1e9, 3),
        "latency_ms_1x3x128x128": round(1000 * statistics.median(timings), 1),
        "proxy_rgb": {key.split("/")[1]: round(float(value), 5) for key, value in validation.items()
                      if key in ("val/mrae", "val/rmse", "val/psnr", "val/sam")},  # fmt: skip
        "noise_levels": [row.as_dict() for row in noise],
    }


def print_table(result: dict[str, Any]) -> None:
    arms = result["arms"]
    print(f"\n{'arm':<10} {'params':>9} {'GFLOPs':>7} {'lat ms':>7} {'train s':>8} {'MRAE':>7} {'PSNR':>6} {'SAM':>6}")
    for name, arm in arms.items():
        p = arm["proxy_rgb"]
        print(f"{name:<10} {arm['parameters']:>9} {arm['gflops_1x3x128x128']:>7.2f} "
              f"{arm['latency_ms_1x3x128x128']:>7.1f} "
              f"{arm['train_seconds']:>8.1f} {p['mrae']:>7.4f} {p['psnr']:>6.2f} {p['sam']:>6.4f}")
    print("\nMRAE / PSNR / SAM per shot-noise level (photo-electrons per unit signal; no JPEG)")
    header = "".join(f"{('clean' if lv is None else f'{lv:g}'):>22}" for lv in NPE_LEVELS)
    print(f"{'arm':<10}{header}")
    for name, arm in arms.items():
        cells = "".join(f"{row['mrae']:>8.4f}/{row['psnr']:>5.2f}/{row['sam']:.3f}" for row in arm["noise_levels"])
        print(f"{name:<10}{cells}")
    print("\nratios against MST++:", json.dumps(result["ratios_vs_mstpp"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=80, help="generator optimizer steps per arm")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes for the latency")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--arms", nargs="+", default=["mstpp", "cswin_rec", "cswin_gan"])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    from hsikit.data.proxy import build_proxy_set, default_proxy_root

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "benchmark": "bench_gan", "machine": machine_info(args.threads),
        "data": "offline PROXY set (AVIRIS scenes, NTIRE-simulated RGB; NOT ARAD-1K): 8 training scenes, "
                "3 validation scenes of 100 x 100 px, 25-px border crop",
        "budget": {"generator_steps": args.steps, "batch": args.batch, "patch": args.patch, "seed": 0,
                   "precision": "32-true", "cswin_base_channels": args.base_channels},
        "noise_levels_npe": list(NPE_LEVELS), "arms": {},
    }  # fmt: skip
    proxy_root = build_proxy_set(default_proxy_root())
    with tempfile.TemporaryDirectory() as folder:
        for name in args.arms:
            print(f"training {name} ...", flush=True)
            result["arms"][name] = train_and_score(name, args, proxy_root, Path(folder))
    result["machine"]["load_average_at_end"] = os.getloadavg()
    if "mstpp" in result["arms"]:
        base = result["arms"]["mstpp"]
        result["ratios_vs_mstpp"] = {
            name: {"mrae": round(arm["proxy_rgb"]["mrae"] / base["proxy_rgb"]["mrae"], 3),
                   "parameters": round(arm["parameters"] / base["parameters"], 2),
                   "gflops": round(arm["gflops_1x3x128x128"] / base["gflops_1x3x128x128"], 2),
                   "latency": round(arm["latency_ms_1x3x128x128"] / base["latency_ms_1x3x128x128"], 2)}
            for name, arm in result["arms"].items()
        }  # fmt: skip
    else:
        result["ratios_vs_mstpp"] = {}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(result)
    print(f"\nload average at start {result['machine']['load_average_before']}, "
          f"at end {result['machine']['load_average_at_end']}; wrote {args.output}")


if __name__ == "__main__":
    main()
