"""Benchmark: glacier segmentation (SSMGNet, its attention ablation, U-Net) and huge-scene inference.

Part 1 - leave-one-tile-out on the labelled glacier tiles (1, 2, 4 of the shared data).
For each held-out tile, each model and each seed, a model is trained on the two other tiles
through the toolkit's own path (:class:`SegmentationDataModule` with random 64 x 64 crops and
flips/rotations, :class:`SegmentationTask`, a Lightning ``Trainer``) for a small fixed budget
(``--epochs`` x ``--batches`` optimizer steps of ``--batch-size`` crops), then predicts the
whole held-out tile. Models:

* ``ssmgnet``: SegModel (width 16, the reference's) with the attention MSE (λ = 6, halved
  every 10 epochs);
* ``ssmgnet_no_attention``: the same SegModel and training with ``attention_weight = 0``;
* ``unet``: U-Net (base width 16, depth 3: smaller than the paper's 64 / 4, to fit the budget).

All use the reference's class-weighted cross-entropy (weights 0.03247, 0.25926, 0.70827), Adam
(lr 5e-3, weight decay 1e-4) and its per-epoch step decay (x0.94). Tile 4 holds no glacier:
held out, it can only produce false glacier. So the scores are computed from the confusion
matrix **pooled over the three held-out tiles** (every pixel predicted by the model that did
not see its tile): class IoUs are then defined, and false glacier on tile 4 counts against
the glacier classes. Tile 4's share of pixels wrongly called glacier is reported on its
own, and so are the scores pooled over tiles 1 and 2 only. Means and standard deviations
are over the seeds; the attention ablation is the paired per-seed difference.

``--long-ablation`` repeats the attention ablation with a 4x longer budget (20 epochs, so
λ goes 6 → 3 → 1.5) on one fold (held-out tile 2, trained on tiles 1 and 4), same seeds.

``--reference-ablation`` runs the three models in a setting closer to the reference's: whole
256 x 256 tiles (2 per step, random flips/rotations, no cropping), 20 epochs of 4 steps (λ
6 → 3 → 1.5), on the same fold (held-out tile 2), ``--reference-seeds`` seeds (default 0).

Part 2 - huge-scene inference: synthetic scenes of ``--scene-gb`` GB (default 0.5 and 2.0;
10 bands float32, the same width, a mosaic of the three real tiles under random
flips/rotations, EPSG:32647) are written to tiled GeoTIFFs in ``--workdir``; for each, a
child process runs :func:`hsikit.inference.segmentation.segment_scene` with the
``--scene-model`` (default: the SegModel trained without the attention loss on tiles 1 and
2, first seed, part-1 budget: the attention-trained one maps no glacier at that budget, so
its polygon layer would be empty; the architecture and the inference cost are the same):
streaming tiled inference (tile 512, overlap 64, batch 1, one thread) to a class GeoTIFF,
strip-by-strip GeoPackage, decimated PNG preview. Reported: megapixels per second of the
inference and of the whole command, the child's peak resident memory (``VmHWM``; equal
for both sizes when memory is bounded), and the CRS / transform / area checks of the raster
and vector outputs. The scenes and outputs are deleted afterwards.

Usage::

    python benchmarks/bench_segmentation.py                         # parts 1 and 2 (about 30 min on 2 busy cores)
    python benchmarks/bench_segmentation.py --skip-scene            # part 1 only
    python benchmarks/bench_segmentation.py --skip-loto --long-ablation --merge   # add parts to the results file
    python benchmarks/bench_segmentation.py --skip-loto --skip-scene --reference-ablation --merge
    python benchmarks/bench_segmentation.py --quick                 # a smoke run in a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_segmentation.json"
QUICK_RESULTS = RESULTS.with_name("bench_segmentation_quick.json")
TILES = ("1", "2", "4")
CLASS_NAMES = ("background", "clean_glacier", "debris_glacier")
REFERENCE_WEIGHTS = [0.03247, 0.25926, 0.70827]
MODELS: dict[str, dict[str, Any]] = {
    "ssmgnet": {"model": "ssmgnet", "model_args": {"width": 16}, "attention_weight": 6.0},
    "ssmgnet_no_attention": {"model": "ssmgnet", "model_args": {"width": 16}, "attention_weight": 0.0},
    "unet": {"model": "unet", "model_args": {"base_width": 16, "depth": 3}, "attention_weight": 0.0},
}


# ---------------------------------------------------------------------------- part 1: leave one tile out
def train_and_predict(
    args: argparse.Namespace, shared: Path, model_key: str, train_tiles: list[str], test_tile: str, seed: int
) -> tuple[np.ndarray, float, Any]:
    """Train one model on ``train_tiles``; return the confusion matrix on ``test_tile``, seconds, the task."""
    import lightning as L
    import torch

    from hsikit.data.segmentation_datamodule import SegmentationDataModule
    from hsikit.metrics.segmentation import confusion_matrix
    from hsikit.tasks.segmentation import SegmentationTask

    L.seed_everything(seed, verbose=False)
    datamodule = SegmentationDataModule(
        dataset="glacier", root=str(shared), train=train_tiles, val=[test_tile], crop_size=args.crop,
        samples_per_epoch=args.batches * args.batch_size, batch_size=args.batch_size, shuffle_seed=seed,
    )  # fmt: skip
    spec = MODELS[model_key]
    task = SegmentationTask(
        model=spec["model"], model_args=dict(spec["model_args"]), class_weights=REFERENCE_WEIGHTS,
        attention_weight=spec["attention_weight"], optimizer="adam", lr=5e-3, weight_decay=1e-4,
        scheduler="step", step_ratio=0.94, training_log=None,
    )  # fmt: skip
    trainer = L.Trainer(
        max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        default_root_dir=str(args.workdir),
    )  # fmt: skip
    started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    seconds = time.perf_counter() - started
    tile = datamodule.tiles["val"][0]
    task.model.eval()
    with torch.inference_mode():
        logits = task.model(torch.from_numpy(tile.image)[None]).logits
    matrix = confusion_matrix(logits.argmax(1), torch.from_numpy(tile.target)[None], len(CLASS_NAMES))
    return matrix.numpy(), seconds, task


def scores_of(matrix: np.ndarray) -> dict[str, Any]:
    import torch

    from hsikit.metrics.segmentation import confusion_scores

    scores = confusion_scores(torch.from_numpy(matrix))
    return {
        "IoU": [float(v) for v in scores["IoU"].tolist()],
        "mIoU": float(scores["mIoU"]),
        "Acc": float(scores["Acc"]),
        "Kappa": float(scores["Kappa"]),
        "F1_score": float(scores["F1_score"]),
    }


def mean_std(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.nanmean(array)), "std": float(np.nanstd(array, ddof=1)) if array.size > 1 else 0.0}


def leave_one_tile_out(args: argparse.Namespace, shared: Path) -> tuple[dict[str, Any], Path | None]:
    """Run part 1; return its report and the exported ``--scene-model`` trained on tiles 1 and 2 (first seed)."""
    import torch

    from hsikit.engine.export import export_model

    torch.set_num_threads(args.threads)
    runs: list[dict[str, Any]] = []
    exported: Path | None = None
    started = time.perf_counter()
    for model_key in MODELS:
        for seed in args.seeds:
            for test_tile in TILES:
                train_tiles = [t for t in TILES if t != test_tile]
                matrix, seconds, task = train_and_predict(args, shared, model_key, train_tiles, test_tile, seed)
                runs.append({"model": model_key, "seed": seed, "test_tile": test_tile, "train_tiles": train_tiles,
                             "confusion": matrix.tolist(), "train_seconds": seconds})  # fmt: skip
                print(f"  {model_key:>22} seed {seed} held-out tile {test_tile}: {seconds:5.1f} s, "
                      f"IoU {np.round(scores_of(matrix)['IoU'], 3).tolist()}", flush=True)  # fmt: skip
                if model_key == args.scene_model and seed == args.seeds[0] and test_tile == "4":
                    exported = args.workdir / "bench_segmentation_scene_model"
                    export_model(task.model, exported, task="segmentation", data=task.export_data())
    total_seconds = time.perf_counter() - started

    summary: dict[str, Any] = {}
    for model_key in MODELS:
        per_seed: dict[str, list[Any]] = {"pooled": [], "tiles_1_2": [], "tile4_false_glacier": []}
        for seed in args.seeds:
            mine = [r for r in runs if r["model"] == model_key and r["seed"] == seed]
            pooled = sum(np.asarray(r["confusion"]) for r in mine)
            glacier_tiles = sum(np.asarray(r["confusion"]) for r in mine if r["test_tile"] != "4")
            tile4 = np.asarray(next(r["confusion"] for r in mine if r["test_tile"] == "4"))
            per_seed["pooled"].append(scores_of(pooled))
            per_seed["tiles_1_2"].append(scores_of(glacier_tiles))
            per_seed["tile4_false_glacier"].append(float(tile4[:, 1:].sum() / tile4.sum()))
        summary[model_key] = {
            "pooled_mIoU": mean_std([s["mIoU"] for s in per_seed["pooled"]]),
            "pooled_IoU": [mean_std([s["IoU"][k] for s in per_seed["pooled"]]) for k in range(len(CLASS_NAMES))],
            "tiles_1_2_mIoU": mean_std([s["mIoU"] for s in per_seed["tiles_1_2"]]),
            "tiles_1_2_IoU": [
                mean_std([s["IoU"][k] for s in per_seed["tiles_1_2"]]) for k in range(len(CLASS_NAMES))
            ],
            "tile4_false_glacier_fraction": mean_std(per_seed["tile4_false_glacier"]),
            "per_seed": per_seed,
            "train_seconds_per_run": mean_std([r["train_seconds"] for r in runs if r["model"] == model_key]),
        }
    with_attention = [s["mIoU"] for s in summary["ssmgnet"]["per_seed"]["pooled"]]
    without = [s["mIoU"] for s in summary["ssmgnet_no_attention"]["per_seed"]["pooled"]]
    differences = [a - b for a, b in zip(with_attention, without)]
    ablation = {
        "pooled_mIoU_difference_per_seed": differences,
        "pooled_mIoU_difference": mean_std(differences),
        "seeds_where_attention_helps": int(sum(d > 0 for d in differences)),
    }
    report = {
        "settings": {
            "tiles": list(TILES), "seeds": list(args.seeds), "epochs": args.epochs, "batches_per_epoch": args.batches,
            "batch_size": args.batch_size, "crop": args.crop, "optimizer_steps": args.epochs * args.batches,
            "threads": args.threads, "models": MODELS, "class_weights": REFERENCE_WEIGHTS,
            "optimizer": "adam lr 5e-3 wd 1e-4, StepLR x0.94 per epoch", "augmentation": "random crop + dihedral",
        },  # fmt: skip
        "runs": runs,
        "summary": summary,
        "attention_ablation": ablation,
        "total_seconds": total_seconds,
    }
    return report, exported


def long_ablation(args: argparse.Namespace, shared: Path) -> dict[str, Any]:
    """The attention ablation with a 4x longer budget on one fold (held-out tile 2, trained on tiles 1 and 4).

    ``--long-epochs`` epochs (default 20: λ is 6 for epochs 1-9, 3 for 10-19, 1.5 for 20), same
    steps per epoch, crops and optimiser as part 1.
    """
    import torch

    torch.set_num_threads(args.threads)
    long_args = argparse.Namespace(**{**vars(args), "epochs": args.long_epochs})
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for model_key in ("ssmgnet", "ssmgnet_no_attention"):
        for seed in args.seeds:
            matrix, seconds, _ = train_and_predict(long_args, shared, model_key, ["1", "4"], "2", seed)
            scores = scores_of(matrix)
            runs.append({"model": model_key, "seed": seed, "confusion": matrix.tolist(), "train_seconds": seconds,
                         **scores})  # fmt: skip
            print(f"  long {model_key:>22} seed {seed} held-out tile 2: {seconds:5.1f} s, "
                  f"IoU {np.round(scores['IoU'], 3).tolist()}", flush=True)  # fmt: skip
    summary = {
        key: {
            "mIoU": mean_std([r["mIoU"] for r in runs if r["model"] == key]),
            "IoU": [mean_std([r["IoU"][k] for r in runs if r["model"] == key]) for k in range(len(CLASS_NAMES))],
        }
        for key in ("ssmgnet", "ssmgnet_no_attention")
    }
    differences = [
        a["mIoU"] - b["mIoU"]
        for a, b in zip(
            [r for r in runs if r["model"] == "ssmgnet"], [r for r in runs if r["model"] == "ssmgnet_no_attention"]
        )
    ]
    return {
        "settings": {"held_out_tile": "2", "train_tiles": ["1", "4"], "epochs": args.long_epochs,
                     "batches_per_epoch": args.batches, "batch_size": args.batch_size, "crop": args.crop,
                     "optimizer_steps": args.long_epochs * args.batches, "seeds": list(args.seeds)},  # fmt: skip
        "runs": runs,
        "summary": summary,
        "mIoU_difference_per_seed": differences,
        "mIoU_difference": mean_std(differences),
        "total_seconds": time.perf_counter() - started,
    }


def reference_ablation(args: argparse.Namespace, shared: Path) -> dict[str, Any]:
    """The three arms in a setting closer to the reference's: whole 256 x 256 tiles, a longer schedule.

    One fold (held-out tile 2, trained on tiles 1 and 4, as ``--long-ablation``); every step sees
    ``--reference-batch-size`` whole tiles (random dihedral transform, no cropping) for
    ``--reference-epochs`` epochs of ``--reference-batches`` steps (λ halves every 10 epochs);
    ``--reference-seeds`` seeds. Same optimiser, class weights and models as part 1.
    """
    import torch

    torch.set_num_threads(args.threads)
    ref_args = argparse.Namespace(**{**vars(args), "epochs": args.reference_epochs, "crop": 256,
                                     "batches": args.reference_batches,
                                     "batch_size": args.reference_batch_size})  # fmt: skip
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for model_key in MODELS:
        for seed in args.reference_seeds:
            matrix, seconds, _ = train_and_predict(ref_args, shared, model_key, ["1", "4"], "2", seed)
            scores = scores_of(matrix)
            runs.append({"model": model_key, "seed": seed, "confusion": matrix.tolist(), "train_seconds": seconds,
                         **scores})  # fmt: skip
            print(f"  reference {model_key:>22} seed {seed} held-out tile 2: {seconds:5.1f} s, "
                  f"IoU {np.round(scores['IoU'], 3).tolist()}", flush=True)  # fmt: skip
    summary = {
        key: {
            "mIoU": mean_std([r["mIoU"] for r in runs if r["model"] == key]),
            "IoU": [mean_std([r["IoU"][k] for r in runs if r["model"] == key]) for k in range(len(CLASS_NAMES))],
            "train_seconds_per_run": mean_std([r["train_seconds"] for r in runs if r["model"] == key]),
        }
        for key in MODELS
    }
    differences = [
        a["mIoU"] - b["mIoU"]
        for a, b in zip(
            [r for r in runs if r["model"] == "ssmgnet"], [r for r in runs if r["model"] == "ssmgnet_no_attention"]
        )
    ]
    return {
        "settings": {"held_out_tile": "2", "train_tiles": ["1", "4"], "epochs": args.reference_epochs,
                     "batches_per_epoch": args.reference_batches, "batch_size": args.reference_batch_size,
                     "crop": 256, "optimizer_steps": args.reference_epochs * args.reference_batches,
                     "pixels_per_run": args.reference_epochs * args.reference_batches * args.reference_batch_size
                     * 256 * 256, "seeds": list(args.reference_seeds), "threads": args.threads,
                     "load_average_at_start": os.getloadavg()},  # fmt: skip
        "runs": runs,
        "summary": summary,
        "mIoU_difference_per_seed": differences,
        "total_seconds": time.perf_counter() - started,
    }


# ---------------------------------------------------------------------------- part 2: huge scene
def write_scene(path: Path, shared: Path, height: int, width: int) -> float:
    """Write a (10, height, width) float32 mosaic of the real tiles (random dihedral per cell); seconds taken."""
    from affine import Affine

    from hsikit.cube import Window
    from hsikit.data.datasets import apply_dihedral
    from hsikit.io import create_writer, open_cube

    started = time.perf_counter()
    tiles = [open_cube(shared / "glacier" / "images" / f"{t}.tif").data.astype(np.float32) for t in TILES]
    rng = np.random.default_rng(0)
    transform = Affine(30.0, 0.0, 186555.0, 0.0, -30.0, 3298065.0)
    with create_writer(path, (10, height, width), np.float32, crs="EPSG:32647", transform=transform,
                       blocksize=512) as writer:  # fmt: skip
        for row in range(0, height, 256):
            rows = min(256, height - row)
            strip = np.empty((10, rows, width), dtype=np.float32)
            for col in range(0, width, 256):
                cell = apply_dihedral(tiles[rng.integers(0, 3)], int(rng.integers(0, 4)), bool(rng.integers(0, 2)))
                cols = min(256, width - col)
                strip[:, :, col : col + cols] = cell[:, :rows, :cols]
            writer.write_window(strip, Window(row, 0, rows, width))
    return time.perf_counter() - started


def run_scene_child(args: argparse.Namespace) -> dict[str, Any]:
    """Segment the scene (run in a child process so that its peak memory is its own)."""
    import torch

    torch.set_num_threads(args.threads)
    import geopandas
    import rasterio

    from hsikit.engine.export import load_model
    from hsikit.inference.segmentation import segment_scene

    def status(key: str) -> float:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    model = load_model(args.model)
    rss_before = status("VmRSS")
    started = time.perf_counter()
    result = segment_scene(model, args.scene, args.out, tile=args.tile, overlap=args.overlap,
                           batch_size=args.scene_batch, vector="gpkg", progress=False)  # fmt: skip
    total_seconds = time.perf_counter() - started
    peak_rss = status("VmHWM")
    checks: dict[str, Any] = {}
    with rasterio.open(args.scene) as source, rasterio.open(result["classes"]) as classes:
        checks["raster_crs"] = classes.crs.to_string()
        checks["raster_crs_matches_input"] = classes.crs == source.crs
        checks["raster_transform_matches_input"] = classes.transform == source.transform
        counts = np.zeros(256, dtype=np.int64)
        for _, window in classes.block_windows(1):
            counts += np.bincount(classes.read(1, window=window).reshape(-1), minlength=256)
        pixel_area = abs(classes.transform.a * classes.transform.e)
    summary = result["vector_summary"]
    checks["vector_crs"] = summary.crs
    head = geopandas.read_file(result["vector"], rows=5)
    checks["vector_crs_read_back"] = head.crs.to_string() if head.crs is not None else None
    checks["class_pixels"] = {CLASS_NAMES[k]: int(counts[k]) for k in range(3)}
    checks["polygons_per_class"] = {CLASS_NAMES[k]: summary.polygons_per_class.get(k, 0) for k in (1, 2)}
    checks["polygon_area_equals_class_pixels"] = all(
        abs(summary.area_per_class.get(k, 0.0) - counts[k] * pixel_area) <= 1e-6 * max(1.0, counts[k] * pixel_area)
        for k in (1, 2)
    )
    return {
        "megapixels": result["megapixels"],
        "inference_seconds": result["seconds"],
        "total_seconds": total_seconds,
        "inference_mpx_per_s": result["megapixels"] / result["seconds"],
        "total_mpx_per_s": result["megapixels"] / total_seconds,
        "vector_and_preview_seconds": total_seconds - result["seconds"],
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss,
        "polygons": summary.polygons,
        "checks": checks,
    }


def huge_scene(args: argparse.Namespace, shared: Path, model_dir: Path, gigabytes: float) -> dict[str, Any]:
    bands, width = 10, args.scene_width
    height = int(round(gigabytes * 1e9 / (bands * width * 4) / 256)) * 256
    scene = args.workdir / f"hsikit_bench_glacier_scene_{height}x{width}.tif"
    out = args.workdir / "hsikit_bench_segmentation_out"
    try:
        write_seconds = write_scene(scene, shared, height, width)
        print(f"  wrote {scene.stat().st_size / 1e9:.2f} GB scene {bands} x {height} x {width} in {write_seconds:.0f} s",
              flush=True)  # fmt: skip
        command = [
            sys.executable, __file__, "--scene-child", "--scene", str(scene), "--model", str(model_dir),
            "--out", str(out), "--tile", str(args.tile), "--overlap", str(args.overlap),
            "--scene-batch", str(args.scene_batch), "--threads", str(args.scene_threads),
        ]  # fmt: skip
        environment = dict(os.environ, GDAL_CACHEMAX=str(args.gdal_cache_mb), OMP_WAIT_POLICY="PASSIVE")
        load_before = os.getloadavg()[0]
        finished = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
        if finished.returncode != 0:
            sys.stderr.write(finished.stderr[-5000:])
            raise SystemExit(f"the huge-scene child failed (exit {finished.returncode})")
        case = json.loads(finished.stdout.strip().splitlines()[-1])
        case.update({
            "file_gb": scene.stat().st_size / 1e9, "shape": [bands, height, width], "write_scene_seconds": write_seconds,
            "tile": args.tile, "overlap": args.overlap, "batch_size": args.scene_batch, "threads": args.scene_threads,
            "gdal_cachemax_mb": args.gdal_cache_mb, "load_average_1min_before_after": [load_before, os.getloadavg()[0]],
            "model": f"{args.scene_model}, trained on tiles 1 and 2 (seed {args.seeds[0]}, part-1 budget)",
        })  # fmt: skip
        return case
    finally:
        scene.unlink(missing_ok=True)
        Path(str(scene) + ".aux.xml").unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)


# ---------------------------------------------------------------------------- driver
def machine_info() -> dict[str, Any]:
    import torch

    cpu_model = platform.processor()
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
        "load_average_at_start": os.getloadavg(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "numpy": np.__version__,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, 2 epochs, 0.1 GB scene")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=8, help="optimizer steps per epoch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training")
    parser.add_argument("--skip-loto", action="store_true", help="skip part 1 (then a model is trained quickly)")
    parser.add_argument("--skip-scene", action="store_true", help="skip part 2")
    parser.add_argument("--scene-gb", type=float, nargs="+", default=[0.5, 2.0],
                        help="sizes of the synthetic scenes in GB (same width, so peak memory can be compared)")
    parser.add_argument("--scene-width", type=int, default=4096)
    parser.add_argument("--scene-model", choices=tuple(MODELS), default="ssmgnet_no_attention",
                        help="model mapping the scenes (the SSMGNet architecture either way; see the docs)")
    parser.add_argument("--long-ablation", action="store_true", help="also run the longer attention ablation")
    parser.add_argument("--long-epochs", type=int, default=20)
    parser.add_argument("--reference-ablation", action="store_true",
                        help="also run the three arms on whole 256 x 256 tiles with a longer schedule (one fold)")
    parser.add_argument("--reference-epochs", type=int, default=20)
    parser.add_argument("--reference-batches", type=int, default=4, help="steps per epoch of the reference ablation")
    parser.add_argument("--reference-batch-size", type=int, default=2, help="whole tiles per step")
    parser.add_argument("--reference-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--merge", action="store_true",
                        help="update the parts run now inside the existing results file instead of replacing it")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--scene-batch", type=int, default=1)
    parser.add_argument("--scene-threads", type=int, default=1, help="torch threads for the scene inference")
    parser.add_argument("--gdal-cache-mb", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument("--output", type=Path, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--scene-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.batches = args.seeds[:1], 2, 4
        args.scene_gb, args.scene_width, args.long_epochs = [0.05, 0.1], 2048, 3
    return args


def print_tables(loto: dict[str, Any] | None, long: dict[str, Any] | None, scenes: list[dict[str, Any]]) -> None:
    if loto is not None:
        settings = loto["settings"]
        print(f"\nleave-one-tile-out, {len(settings['seeds'])} seeds, {settings['optimizer_steps']} steps of "
              f"{settings['batch_size']} x {settings['crop']}^2 crops per run ({loto['total_seconds'] / 60:.1f} min)")  # fmt: skip
        header = (f"{'model':>22} {'IoU background':>16} {'IoU clean':>14} {'IoU debris':>14} {'mIoU':>14} "
                  f"{'mIoU tiles 1+2':>15} {'tile-4 false glacier':>21} {'s/run':>6}")  # fmt: skip
        print(header)
        print("-" * len(header))
        for key, row in loto["summary"].items():
            cells = [f"{c['mean']:.3f}±{c['std']:.3f}" for c in row["pooled_IoU"]]
            miou, pair = row["pooled_mIoU"], row["tiles_1_2_mIoU"]
            false = row["tile4_false_glacier_fraction"]
            print(
                f"{key:>22} {cells[0]:>16} {cells[1]:>14} {cells[2]:>14} {miou['mean']:.3f}±{miou['std']:.3f}".ljust(0)
                + f"{pair['mean']:>9.3f}±{pair['std']:.3f} {false['mean']:>14.4f}±{false['std']:.4f}"
                + f" {row['train_seconds_per_run']['mean']:>6.1f}"
            )
        ablation = loto["attention_ablation"]
        print(f"attention ablation (SSMGNet - no attention, pooled mIoU, per seed): "
              f"{np.round(ablation['pooled_mIoU_difference_per_seed'], 4).tolist()}; mean "
              f"{ablation['pooled_mIoU_difference']['mean']:+.4f} ± {ablation['pooled_mIoU_difference']['std']:.4f}")  # fmt: skip
    if long is not None:
        print(f"\nlonger ablation on held-out tile 2 ({long['settings']['optimizer_steps']} steps, "
              f"{long['total_seconds'] / 60:.1f} min)")  # fmt: skip
        for key, row in long["summary"].items():
            cells = " ".join(f"{c['mean']:.3f}±{c['std']:.3f}" for c in row["IoU"])
            print(f"{key:>22} IoU {cells}  mIoU {row['mIoU']['mean']:.3f}±{row['mIoU']['std']:.3f}")
        print(f"difference per seed {np.round(long['mIoU_difference_per_seed'], 4).tolist()}")
    for scene in scenes:
        print(f"\nscene {scene['shape']} ({scene['file_gb']:.2f} GB): inference {scene['inference_mpx_per_s']:.3f} "
              f"Mpx/s, with polygons + preview {scene['total_mpx_per_s']:.3f} Mpx/s, peak RSS {scene['peak_rss_mb']:.0f} MB, "
              f"{scene['polygons']} polygons; checks {scene['checks']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scene_child:
        print(json.dumps(run_scene_child(args)))
        return 0
    from hsikit.data.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is None or not (shared / "glacier" / "images" / "1.tif").is_file():
        raise SystemExit("the glacier tiles of the shared data are needed (set HSIKIT_SHARED_DATA)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "bench_segmentation",
        "machine": machine_info(),
        "quick": bool(args.quick),
    }
    loto, model_dir = None, None
    if not args.skip_loto:
        loto, model_dir = leave_one_tile_out(args, shared)
        report["leave_one_tile_out"] = loto
    if args.long_ablation:
        report["long_ablation"] = long_ablation(args, shared)
    if args.reference_ablation:
        report["reference_ablation"] = reference_ablation(args, shared)
    scenes: list[dict[str, Any]] = []
    if not args.skip_scene:
        if model_dir is None:
            import torch

            from hsikit.engine.export import export_model

            torch.set_num_threads(args.threads)
            _, _, task = train_and_predict(args, shared, args.scene_model, ["1", "2"], "4", args.seeds[0])
            model_dir = args.workdir / "bench_segmentation_scene_model"
            export_model(task.model, model_dir, task="segmentation", data=task.export_data())
        for gigabytes in args.scene_gb:
            scenes.append(huge_scene(args, shared, model_dir, gigabytes))
        report["huge_scene"] = scenes
    if model_dir is not None:
        shutil.rmtree(model_dir, ignore_errors=True)
    print_tables(loto, report.get("long_ablation"), scenes)
    if report.get("reference_ablation"):
        reference = report["reference_ablation"]
        settings = reference["settings"]
        print(f"\nreference-like ablation on held-out tile 2 ({settings['optimizer_steps']} steps of "
              f"{settings['batch_size']} whole tiles, {reference['total_seconds'] / 60:.1f} min)")  # fmt: skip
        for key, row in reference["summary"].items():
            cells = " ".join(f"{c['mean']:.3f}±{c['std']:.3f}" for c in row["IoU"])
            print(f"{key:>22} IoU {cells}  mIoU {row['mIoU']['mean']:.3f}±{row['mIoU']['std']:.3f}  "
                  f"{row['train_seconds_per_run']['mean']:.0f} s/run")  # fmt: skip
        print(f"SSMGNet - no attention, mIoU per seed {np.round(reference['mIoU_difference_per_seed'], 4).tolist()}")
    output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and output.is_file():
        previous = json.loads(output.read_text())
        previous.setdefault("earlier_machines", []).append(previous.get("machine"))
        previous.update(report)
        report = previous
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"results written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
