"""Benchmark: tiled streaming inference against the same model on tiles already in memory.

For each scene size a synthetic cube (float32, ``--bands`` bands, ``--width``
columns) is written to a tiled GeoTIFF (or ENVI) file in ``--workdir``, then a
child process (so that its peak resident memory belongs to that case alone):

1. runs :func:`hsikit.inference.predict_scene` from the file to a class-map
   GeoTIFF (merged softmax probabilities, argmax at flush), timing it and
   recording the process's peak resident set size (``ru_maxrss``);
2. times the bare model on the same tiles held in memory: strip by strip, the
   tiles are read and batched exactly as the streaming path batches them
   (untimed), then only the model calls are timed.

Throughput is scene megapixels per second. The ratio streaming / in-memory
says how much reading, padding, blending, argmax and writing cost on top of the
model. On a shared machine wall-clock times move with the other processes' load,
so two load-robust views are reported too: the ratio of process CPU times
(``ratio_cpu_time``, all threads) and the share of the streaming run's wall time
spent inside the model's forward calls (``model_share_of_streaming``: both
measured in the same time window, so a busy machine slows both alike). The scene
files are deleted afterwards.

Memory of the streaming path is ``O(bands x tile x width)``: the sizes differ
in height only, so a flat peak RSS shows that it does not grow with the scene.
GDAL's block cache is bounded with ``GDAL_CACHEMAX`` (``--gdal-cache-mb``).

Usage::

    python benchmarks/bench_inference.py            # 0.27, 1.07 and 4.29 GB scenes
    python benchmarks/bench_inference.py --quick    # small scenes, a few seconds
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_inference.json"
QUICK_RESULTS = RESULTS.with_name("bench_inference_quick.json")
FULL_HEIGHTS = (2048, 8192, 32768)  # x 4096 columns x 8 bands float32: 0.27, 1.07, 4.29 GB
QUICK_HEIGHTS = (512, 1024, 2048)  # x 1024 columns


# ---------------------------------------------------------------------- model and scene
def tiny_model(bands: int, classes: int, hidden: int) -> Any:
    """Two 3x3 convolutions and a 1x1 classifier (receptive-field radius 2), seeded."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(bands, hidden, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(hidden, hidden, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(hidden, classes, 1),
    ).eval()


class TimedModel:
    """Wraps a model and adds up the wall-clock seconds spent in its forward calls."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.seconds = 0.0

    def __call__(self, batch: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.model(batch)
        finally:
            self.seconds += time.perf_counter() - start


def scene_path(workdir: Path, height: int, width: int, bands: int, file_format: str) -> Path:
    extension = ".tif" if file_format == "geotiff" else ".img"
    return workdir / f"hsikit_bench_scene_{bands}x{height}x{width}{extension}"


def write_scene(path: Path, bands: int, height: int, width: int, file_format: str) -> float:
    """Write a synthetic reflectance-like cube strip by strip; returns the seconds taken."""
    from affine import Affine

    from hsikit.cube import Window
    from hsikit.io import create_writer

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    columns = np.linspace(0.0, 6.0 * np.pi, width, dtype=np.float32)
    band_gain = np.linspace(0.5, 1.5, bands, dtype=np.float32)[:, None, None]
    options: dict[str, Any] = {"blocksize": 512} if file_format == "geotiff" else {}
    writer = create_writer(
        path,
        (bands, height, width),
        np.float32,
        crs="EPSG:32647",
        transform=Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 3000000.0),
        wavelengths=np.linspace(450.0, 900.0, bands),
        band_names=None,
        nodata=None,
        format=file_format,
        **options,
    )
    with writer:
        step = 512
        for row in range(0, height, step):
            rows = min(step, height - row)
            y = np.arange(row, row + rows, dtype=np.float32)[:, None] / 97.0
            pattern = 0.3 + 0.2 * np.sin(columns[None, :] + y)  # (rows, width)
            noise = rng.random((bands, rows, width), dtype=np.float32) * 0.05
            writer.write_window(band_gain * pattern[None] + noise, Window(row, 0, rows, width))
    return time.perf_counter() - start


def remove_scene(path: Path) -> None:
    for candidate in (path, path.with_suffix(".hdr"), Path(str(path) + ".aux.xml")):
        candidate.unlink(missing_ok=True)


# ---------------------------------------------------------------------- one case (child process)
def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    """Streaming run then in-memory baseline for one scene file (run in a child process)."""
    import torch

    from hsikit.cube import Window
    from hsikit.inference import TileGrid, predict_scene
    from hsikit.io import open_reader

    torch.set_num_threads(args.threads)
    scene = Path(args.scene)
    output = scene.with_name(scene.stem + "_classes.tif")
    model = tiny_model(args.bands, args.classes, args.hidden)
    options = {"tile": args.tile, "overlap": args.overlap, "batch_size": args.batch_size}
    with torch.inference_mode():  # warm up the kernels outside the timings
        model(torch.zeros(args.batch_size, args.bands, args.tile, args.tile))
    importlib.import_module("tqdm.auto")  # one-time imports (tqdm, rasterio) stay out of the timings too
    open_reader(scene).close()
    rss_before = _rss_mb()
    model_peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # peak of one bare batch

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    timed = TimedModel(model)  # model.eval() was called by tiny_model: a plain callable is enough
    predict_scene(timed, scene, output, output_kind="classes", progress=False, **options)
    streaming_wall, streaming_cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB
    output.unlink(missing_ok=True)

    # in-memory baseline: every tile of the scene, batched per strip as predict_scene batches them;
    # a strip is read and cut into batches untimed, then only the model calls are timed
    model_wall = model_cpu = 0.0
    with open_reader(scene) as reader, torch.inference_mode():
        height, width = reader.height, reader.width
        grid = TileGrid.create(height, width, args.tile, args.overlap)
        for row_start in grid.row_starts:
            first = row_start - grid.pad_top
            top, bottom = max(first, 0), min(first + grid.tile_height, height)
            block = reader.read_array(Window(top, 0, bottom - top, width)).astype(np.float32)
            strip = grid.pad_block(block, top - first, first + grid.tile_height - bottom, grid.pad_left, grid.pad_right)
            tiles = [strip[:, :, c : c + grid.tile_width] for c in grid.col_starts]
            batches = [
                torch.from_numpy(np.stack(tiles[index : index + args.batch_size]))
                for index in range(0, len(tiles), args.batch_size)
            ]
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                model(batch)
            model_wall += time.perf_counter() - start_wall
            model_cpu += time.process_time() - start_cpu
    megapixels = height * width / 1e6
    return {
        "height": height,
        "width": width,
        "bands": args.bands,
        "file_gb": scene.stat().st_size / 1e9,
        "tiles": grid.tile_count,
        "megapixels": megapixels,
        "streaming_seconds": streaming_wall,
        "streaming_cpu_seconds": streaming_cpu,
        "in_memory_seconds": model_wall,
        "in_memory_cpu_seconds": model_cpu,
        "streaming_mpx_per_s": megapixels / streaming_wall,
        "in_memory_mpx_per_s": megapixels / model_wall,
        "ratio": model_wall / streaming_wall,
        "ratio_cpu_time": model_cpu / streaming_cpu,
        "model_seconds_within_streaming": timed.seconds,
        "model_share_of_streaming": timed.seconds / streaming_wall,
        "rss_before_mb": rss_before,
        "model_batch_peak_rss_mb": model_peak_rss,
        "peak_rss_mb": peak_rss,
    }


# ---------------------------------------------------------------------- driver
def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    total_memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
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
        "memory_gb": round(total_memory_gb, 1),
        "torch": torch.__version__,
        "torch_threads": args.threads,
        "numpy": np.__version__,
        "gdal_cachemax_mb": args.gdal_cache_mb,
        "omp_wait_policy": "PASSIVE",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small scenes (seconds) instead of 0.27/1.07/4.29 GB")
    parser.add_argument("--heights", type=int, nargs="+", help="scene heights in rows (overrides the presets)")
    parser.add_argument("--width", type=int, help="scene width in columns (default 4096, 1024 with --quick)")
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=8, help="channels of the tiny model's hidden layers")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--format", choices=("geotiff", "envi"), default="geotiff", help="scene file format")
    parser.add_argument("--gdal-cache-mb", type=int, default=64, help="GDAL_CACHEMAX for the child processes")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument("--output", type=Path, help=f"JSON results file (default {RESULTS}, *_quick.json with --quick)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_case(args)))
        return 0
    heights = args.heights or (QUICK_HEIGHTS if args.quick else FULL_HEIGHTS)
    width = args.width or (1024 if args.quick else 4096)
    args.workdir.mkdir(parents=True, exist_ok=True)
    cases = []
    for height in heights:
        scene = scene_path(args.workdir, height, width, args.bands, args.format)
        try:
            write_seconds = write_scene(scene, args.bands, height, width, args.format)
            command = [
                sys.executable, __file__, "--child", "--scene", str(scene),
                "--bands", str(args.bands), "--classes", str(args.classes), "--hidden", str(args.hidden),
                "--tile", str(args.tile), "--overlap", str(args.overlap), "--batch-size", str(args.batch_size),
                "--threads", str(args.threads),
            ]  # fmt: skip
            # idle OpenMP threads sleep instead of spinning: on a shared machine spinning burns
            # other processes' CPU and blurs the CPU-time ratio (same setting for both timings)
            environment = dict(os.environ, GDAL_CACHEMAX=str(args.gdal_cache_mb), OMP_WAIT_POLICY="PASSIVE")
            load_before = os.getloadavg()[0]
            finished = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
            if finished.returncode != 0:
                sys.stderr.write(finished.stderr)
                raise SystemExit(f"benchmark case {height}x{width} failed (exit {finished.returncode})")
            case = json.loads(finished.stdout.strip().splitlines()[-1])
            case["write_scene_seconds"] = write_seconds
            case["load_average_1min_before_after"] = [load_before, os.getloadavg()[0]]
            cases.append(case)
            print(f"  done {height} x {width}: {case['streaming_seconds']:.1f} s streaming", flush=True)
        finally:
            remove_scene(scene)

    header = (
        f"{'scene (bands x H x W)':>22} {'file GB':>8} {'tiles':>6} {'stream Mpx/s':>13} "
        f"{'in-memory Mpx/s':>16} {'ratio':>6} {'CPU ratio':>10} {'model share':>12} {'peak RSS MB':>12}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        shape = f"{case['bands']} x {case['height']} x {case['width']}"
        print(
            f"{shape:>22} {case['file_gb']:>8.2f} {case['tiles']:>6d} {case['streaming_mpx_per_s']:>13.2f} "
            f"{case['in_memory_mpx_per_s']:>16.2f} {case['ratio']:>6.2f} {case['ratio_cpu_time']:>10.2f} "
            f"{case['model_share_of_streaming']:>12.2f} {case['peak_rss_mb']:>12.0f}"
        )
    report = {
        "benchmark": "bench_inference",
        "description": "predict_scene from a tiled file to a class-map GeoTIFF vs the bare model on in-memory tiles",
        "settings": {
            "tile": args.tile,
            "overlap": args.overlap,
            "margin": args.overlap // 4,
            "batch_size": args.batch_size,
            "model": f"conv3x3({args.bands}->{args.hidden}) relu conv3x3({args.hidden}->{args.hidden}) relu "
            f"conv1x1({args.hidden}->{args.classes})",
            "output_kind": "classes (merged softmax probabilities, cosine blend, reflect padding)",
            "scene_format": args.format,
            "quick": bool(args.quick),
        },
        "machine": machine_info(args),
        "cases": cases,
    }
    output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
