"""Benchmark: transformer reconstruction (HSIFusionNet-tiny, SHARP-tiny) against MST++ on the proxy set, CPU.

One run does, in this order:

1. **Model cards** of every preset (HSIFusionNet tiny … xlarge, SHARP tiny … large) and MST++:
   parameters against the reference counts of ``specs/001_hsifusion_sharp.md`` §0, and FLOPs of one
   forward pass at 256 × 256 and 482 × 512 (:func:`hsikit.models.complexity.model_card`
   convention: FLOPs = 2 × MACs of matrix products and convolutions), counted on the ``meta``
   device (no arithmetic). The mixture-of-experts layers (HSIFusion base/large/xlarge) pick their
   tokens with ``torch.nonzero``, whose size is data-dependent; the meta count assumes every
   assignment goes to every expert, so the count is corrected to the exact top-2 routing of
   inference (each token through 2 experts; see :func:`moe_correction`).
2. **Training** of MST++, HSIFusionNet-tiny and SHARP-tiny with the *same budget* — ``--steps``
   optimizer steps of ``--batch`` patches of ``--patch`` px from the training scenes of the proxy
   set (real AVIRIS scenes, simulated NTIRE RGB — *not ARAD-1K*), stride-8 grid, MST++
   augmentation, seed 0, fp32, through the hsikit engine — each with its own recipe: MST++ (MRAE,
   Adam 4e-4, cosine to 1e-6), HSIFusionNet (MRAE + MoE balance, AdamW 3e-4, weight decay 1e-4
   on weights only, clipping 1.0, cosine to 0), SHARP (MRAE + 0.1 × spectral curvature
   regulariser, AdamW 4e-4, weight decay 1e-4, clipping 1.0, cosine to 0; the tiny preset's
   suggested sparsity 0.95 and key cap 512). No warm-up and no EMA: over a few dozen steps both
   would only slow the start (the recipes' warm-up of 5 epochs / 10 % and EMA 0.999 are for runs
   of 10⁵ steps).
3. **Evaluation** of the final weights on the 3 proxy validation scenes (100 × 100 px) with the
   protocol's metrics (MRAE, RMSE, PSNR, SAM) after a 25-px border crop.
4. **Inference latency** of each model on one full 482 × 512 frame (median of ``--repeats`` timed
   passes after a warm-up pass; one by default, a pass of HSIFusionNet-tiny takes about a minute).

CPU only (``--threads`` torch threads, ``OMP_WAIT_POLICY=PASSIVE``); the load average before and
after is recorded. Results: a table on stdout and ``benchmarks/results/bench_transformers.json``.
The default budget (``--steps 16 --batch 4 --patch 48``) is 1/15 of the patches of
``bench_reconstruction.py`` (120 steps × 8 patches of 64 px), in pixels under 4 %: SHARP-tiny's
sparse top-k attention gathers ``k`` keys per query and costs 5 s per step of 4 × 48² patches
on 2 cores at load 2 (35-60 s at load 6; 175 s per step of 8 × 64² at load 6), so the MST++
budget for three models would not fit. Accuracy
after so few steps says which model *starts* faster, not which is better after a real training run.

Usage::

    flock /tmp/hsikit_bench.lock nice python benchmarks/bench_transformers.py
    python benchmarks/bench_transformers.py --steps 2 --repeats 1 --skip-cards    # a quick check
    python benchmarks/bench_transformers.py --steps 120 --batch 8 --patch 64     # bench_reconstruction's budget
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
from bench_reconstruction import EVAL_CROP, machine_info, matmul_flops_per_second  # noqa: E402  (same protocol crop)
from bench_reconstruction import train_and_evaluate as train_reconstruction  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_transformers.json"
ARAD_SIZE = (482, 512)
CARD_SIZES = ((256, 256), (482, 512))
MODELS: dict[str, dict[str, Any]] = {
    "mst_plus_plus": {
        "label": "MST++", "model_args": {"stage": 3, "num_blocks": [1, 1, 1]},
        "task": {"optimizer": "adam", "lr": 4e-4, "min_lr_ratio": 1e-6 / 4e-4}, "trainer": {},
    },
    "hsifusion_tiny": {
        "label": "HSIFusionNet-tiny", "model_args": {},
        "task": {"optimizer": "adamw", "lr": 3e-4, "weight_decay": 1e-4, "min_lr_ratio": 0.0},
        "trainer": {"gradient_clip_val": 1.0},
    },
    "sharp_tiny": {
        "label": "SHARP-tiny", "model_args": {"sparse_sparsity_ratio": 0.95, "sparse_k_cap": 512},
        "task": {"optimizer": "adamw", "lr": 4e-4, "weight_decay": 1e-4, "min_lr_ratio": 0.0,
                 "spectral_reg_weight": 0.1},
        "trainer": {"gradient_clip_val": 1.0},
    },
}  # fmt: skip
REFERENCE_MILLIONS = {  # specs/001_hsifusion_sharp.md §0, measured on the reference code (HSIFusion: with / without uncertainty head)
    "hsifusion_tiny": (18.20, 18.18), "hsifusion_small": (42.94, 42.90), "hsifusion_base": (139.89, 139.82),
    "hsifusion_large": (474.08, 473.91), "hsifusion_xlarge": (None, None),
    "sharp_tiny": (7.30, 7.30), "sharp_small": (15.09, 15.09), "sharp_base": (38.63, 38.63),
    "sharp_large": (77.08, 77.08), "mst_plus_plus": (1.62, 1.62),
}  # fmt: skip


# ---------------------------------------------------------------------------- model cards
def moe_correction(model: Any, input_shape: tuple[int, ...]) -> int:
    """FLOPs to subtract from a meta-device count of a model with mixtures of experts.

    On the meta device ``torch.nonzero`` cannot know how many tokens an expert receives and
    is told to assume every entry of the ``(T, top_k)`` assignment mask is set, so each of the
    ``E`` experts is counted on ``T · top_k`` tokens. In inference every token goes through
    exactly ``top_k`` experts (no capacity limit), ``T · top_k`` expert passes in all; the
    excess is ``(E − 1) · T · top_k`` passes of ``4 · d · h`` FLOPs (two linear layers).
    """
    import torch

    from hsikit.models.layers.moe import MixtureOfExperts

    tokens: dict[int, int] = {}
    hooks = [
        module.register_forward_pre_hook(
            lambda module, args: tokens.__setitem__(id(module), int(args[0].numel() // module.dim))
        )
        for module in model.modules()
        if isinstance(module, MixtureOfExperts)
    ]
    try:
        with torch.no_grad(), torch.fx.experimental._config.patch(meta_nonzero_assume_all_nonzero=True):
            model(torch.zeros(input_shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    excess = 0
    for module in model.modules():
        if isinstance(module, MixtureOfExperts):
            hidden = module.experts[0].fc1.out_features
            excess += (module.num_experts - 1) * tokens[id(module)] * module.top_k * 4 * module.dim * hidden
    return excess


def model_cards(names: list[str]) -> dict[str, Any]:
    """Parameters and FLOPs (2 × MACs) per preset at 256 × 256 and 482 × 512, on the meta device."""
    import torch

    from hsikit.models import create_model
    from hsikit.models.complexity import count_parameters, flop_breakdown

    cards: dict[str, Any] = {}
    for name in names:
        arguments = MODELS.get(name, {}).get("model_args", {}) if name == "mst_plus_plus" else {}
        started = time.perf_counter()
        with torch.device("meta"):
            model = create_model(name, **arguments).eval()
        parameters = count_parameters(model)
        reference = REFERENCE_MILLIONS.get(name, (None, None))
        card: dict[str, Any] = {
            "parameters": parameters, "parameters_millions": parameters / 1e6,
            "reference_millions": reference[1], "reference_millions_with_uncertainty_head": reference[0],
            "sizes": {},
        }  # fmt: skip
        if reference[1]:
            card["difference_percent"] = 100.0 * (parameters / 1e6 - reference[1]) / reference[1]
        for height, width in CARD_SIZES:
            shape = (1, 3, height, width)
            with torch.fx.experimental._config.patch(meta_nonzero_assume_all_nonzero=True):
                counted = flop_breakdown(model, shape)["total"]
            correction = moe_correction(model, shape)
            flops = counted - correction
            card["sizes"][f"{height}x{width}"] = {
                "flops": flops, "gflops": flops / 1e9, "gmacs": flops / 2e9, "moe_correction_flops": correction,
            }
        card["seconds"] = time.perf_counter() - started
        cards[name] = card
    return cards


# ---------------------------------------------------------------------------- training
def train_and_evaluate(name: str, root: Path, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """bench_reconstruction's training and protocol validation, with this benchmark's model specs."""
    return train_reconstruction(name, root, args, scratch, spec=MODELS[name])


def inference_latency(name: str, repeats: int) -> dict[str, Any]:
    import torch

    from hsikit.models import create_model

    torch.manual_seed(0)
    model = create_model(name, **MODELS[name]["model_args"]).eval()
    image = torch.rand(1, 3, *ARAD_SIZE)
    times = []
    with torch.inference_mode():
        model(image)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            model(image)
            times.append(time.perf_counter() - started)
    latency = statistics.median(times)
    return {"input_shape": [1, 3, *ARAD_SIZE], "repeats": repeats, "latencies_seconds": times,
            "median_latency_seconds": latency, "images_per_second": 1.0 / latency}  # fmt: skip


def verdict(training: list[dict[str, Any]], cards: dict[str, Any]) -> dict[str, Any]:
    """Does a transformer beat MST++ on MRAE, and at comparable FLOPs (at most 1.5 × MST++'s at 482 × 512)?"""
    base = next(r for r in training if r["model"] == "mst_plus_plus")
    base_flops = cards["mst_plus_plus"]["sizes"]["482x512"]["flops"]
    rows = {}
    for result in training:
        if result["model"] == "mst_plus_plus":
            continue
        ratio = cards[result["model"]]["sizes"]["482x512"]["flops"] / base_flops
        rows[result["model"]] = {
            "mrae_vs_mstpp": result["metrics"]["mrae"] - base["metrics"]["mrae"],
            "beats_mstpp_on_mrae": result["metrics"]["mrae"] < base["metrics"]["mrae"],
            "flops_ratio_vs_mstpp_482x512": ratio,
            "comparable_flops": ratio <= 1.5,
        }
    wins = [name for name, row in rows.items() if row["beats_mstpp_on_mrae"] and row["comparable_flops"]]
    if wins:
        text = f"yes: {', '.join(wins)} beat(s) MST++ on MRAE at comparable FLOPs (<= 1.5x)"
    else:
        parts = [
            f"{name}: MRAE {'better' if row['beats_mstpp_on_mrae'] else 'worse'} than MST++ "
            f"({row['mrae_vs_mstpp']:+.4f}) at {row['flops_ratio_vs_mstpp_482x512']:.1f}x its FLOPs"
            for name, row in rows.items()
        ]
        text = "no transformer beats MST++ on accuracy at comparable FLOPs in this budget; " + "; ".join(parts)
    return {"per_model": rows, "summary": text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per model (default 16)")
    parser.add_argument("--batch", type=int, default=4, help="patches per step (default 4)")
    parser.add_argument("--patch", type=int, default=48, help="patch side in px (default 48)")
    parser.add_argument("--repeats", type=int, default=1, help="timed 482 x 512 forward passes (default 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models to train")
    parser.add_argument("--skip-cards", action="store_true", help="model cards of the trained models only")
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
    presets = [f"hsifusion_{s}" for s in ("tiny", "small", "base", "large", "xlarge")]
    presets += [f"sharp_{s}" for s in ("tiny", "small", "base", "large")]
    card_names = ["mst_plus_plus"] + (list(args.models) if args.skip_cards else presets)
    cards = model_cards(list(dict.fromkeys(card_names + list(args.models))))
    with tempfile.TemporaryDirectory(prefix="bench_transformers_") as scratch_name:
        scratch = Path(scratch_name)
        root = build_proxy_set(args.proxy_root or scratch / "proxy")
        training = [train_and_evaluate(name, root, args, scratch) for name in args.models]
    matmul = matmul_flops_per_second()
    inference = {name: inference_latency(name, args.repeats) for name in args.models}
    for name, result in inference.items():
        flops = cards[name]["sizes"]["482x512"]["flops"]
        result["model_flops"] = flops
        result["achieved_flops_per_second"] = flops / result["median_latency_seconds"]
        result["flop_efficiency_vs_matmul"] = result["achieved_flops_per_second"] / matmul["flops_per_second"]
    machine["load_average_after"] = list(os.getloadavg())
    outcome = verdict(training, cards) if "mst_plus_plus" in args.models and len(args.models) > 1 else None
    total_seconds = time.perf_counter() - started

    print("\nModel cards (FLOPs = 2 x MACs of matmuls and convolutions, meta device; params vs reference)")
    print(f"{'model':<18} {'params (M)':>10} {'reference':>10} {'diff %':>7} {'GFLOPs 256^2':>13} {'GFLOPs 482x512':>15}")
    for name, card in cards.items():
        reference = card["reference_millions"]
        diff = f"{card['difference_percent']:+.1f}" if "difference_percent" in card else "-"
        print(f"{name:<18} {card['parameters_millions']:>10.2f} {reference if reference else '-':>10} {diff:>7} "
              f"{card['sizes']['256x256']['gflops']:>13.1f} {card['sizes']['482x512']['gflops']:>15.1f}")
    print(f"\nTraining on the proxy set: {args.steps} steps x {args.batch} patches of {args.patch} px per model; "
          f"validation on {training[0]['validation_images']} proxy scenes, {EVAL_CROP}-px crop")
    print(f"{'model':<18} {'MRAE':>7} {'RMSE':>7} {'PSNR':>7} {'SAM':>7} {'s/step':>7} {'latency 482x512':>16} "
          f"{'GFLOPs':>8}")
    for result in training:
        m, name = result["metrics"], result["model"]
        print(f"{result['label']:<18} {m['mrae']:>7.4f} {m['rmse']:>7.4f} {m['psnr']:>7.2f} {m['sam']:>7.4f} "
              f"{result['seconds_per_step']:>7.2f} {inference[name]['median_latency_seconds']:>15.2f}s "
              f"{cards[name]['sizes']['482x512']['gflops']:>8.1f}")
    if outcome is not None:
        print(f"\nverdict: {outcome['summary']}")
    print(f"machine: {machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, load average "
          f"{machine['load_average_before'][0]:.1f} -> {machine['load_average_after'][0]:.1f}; "
          f"total {total_seconds:.0f} s")

    payload = {
        "benchmark": "transformer reconstruction: MST++ vs HSIFusionNet-tiny vs SHARP-tiny on the proxy set "
                     "(NOT ARAD-1K), CPU",
        "settings": {"steps": args.steps, "batch": args.batch, "patch": args.patch, "stride": 8,
                     "eval_crop": EVAL_CROP, "repeats": args.repeats, "threads": args.threads, "seed": 0,
                     "budget_note": "default: 1/15 of bench_reconstruction.py's patches (16 x 4 of 48 px vs 120 x 8 "
                                    "of 64 px); see the module docstring"},
        "machine": machine,
        "model_cards": cards,
        "training": training,
        "inference_482x512": inference,
        "matmul_reference": matmul,
        "verdict": outcome,
        "total_seconds": total_seconds,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
