"""Benchmark: a scene several times larger than a bounded memory budget, segmented by ``hsikit predict``.

Issue #5 asks for "a scene far larger than memory would allow whole (synthetic, several GB)
segmented in bounded memory with a correct CRS in both raster and vector outputs". This script:

1. writes synthetic multiband GeoTIFFs of ``--gb`` GB (default 1.5 and 6; ``--bands`` float32
   bands, ``--width`` columns, the height following from the size, so both scenes have the
   same width and peak memory can be compared; uncompressed, tiled 512 x 512, BigTIFF,
   EPSG:32647 with a 30 m geotransform) strip by strip, never holding one whole.
   Their classes (background, clean_glacier, debris_glacier) come from a smooth deterministic
   field of the pixel position, each class with its own spectrum plus a smooth spatial
   variation and noise;
2. trains a small SSMGNet (width 4, attention kernel 9) for 100 Adam steps (4 crops of 64 x 64) on a
   256 x 256 tile drawn from the same generator (another place; batch-norm statistics
   recomputed at the end; it must reach 90 % accuracy on that tile), with the attention loss off
   (the glacier attention targets need reference spectra; this is a throughput test), and
   exports it (task ``segmentation``, class names, the fitted normaliser);
3. runs ``python -m hsikit predict --model M --input scene.tif --output classes.tif --vector
   classes.gpkg --compress deflate`` in a child process (tile 512, overlap 64, batch 1,
   ``GDAL_CACHEMAX`` 64 MB), and takes the child's peak resident memory from ``os.wait4``
   (``ru_maxrss``), the wall time, and the inference time (until the class raster was
   renamed into place; the polygons are traced after that);
4. checks the class raster's CRS and transform and the GeoPackage's CRS against the input,
   the polygon area of each class against its pixel count in the raster x 900 m2, the
   accuracy of the map against the generator's classes (read block by block), that the
   largest scene's peak RSS is below a quarter of its file, and that peak RSS grows by less
   than 15 % from the smallest to the largest scene (memory does not follow the height);
5. deletes each scene and its outputs before the next (``--keep`` keeps them).

Run it alone on the machine::

    flock /tmp/hsikit_bench.lock nice .venv/bin/python benchmarks/bench_huge_scene.py
    .venv/bin/python benchmarks/bench_huge_scene.py --gb 0.02 0.05 --width 512 --no-json   # smoke run

Results: ``benchmarks/results/bench_huge_scene.json`` (machine, load average, sizes, timings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_huge_scene.json"
CLASS_NAMES = ["background", "clean_glacier", "debris_glacier"]
PIXEL_SIZE = 30.0
ORIGIN = (300000.0, 3300000.0)  # UTM 47N, metres (upper-left corner)
CRS = "EPSG:32647"


# ---------------------------------------------------------------------------- synthetic scene
def class_field(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Class id (0, 1, 2) of pixels at ``rows`` x ``cols`` (broadcast) from a smooth field: blobs of ~100s of px."""
    r, c = rows.astype(np.float32), cols.astype(np.float32)
    field = (np.sin(r / 97.0 + 0.8 * np.sin(c / 151.0)) + np.cos(c / 123.0 + 0.6 * np.sin(r / 211.0))
             + 0.5 * np.sin((r + c) / 331.0))  # fmt: skip
    classes = np.zeros(field.shape, dtype=np.uint8)
    classes[field > 0.9] = 1
    classes[field > 1.6] = 2
    return classes


def signatures(bands: int) -> np.ndarray:
    """``(3, bands)`` class spectra (reflectance-like; clean glacier bright, debris darker and red-sloped)."""
    x = np.linspace(0.0, 1.0, bands, dtype=np.float32)
    background = 0.15 + 0.10 * x
    clean = 0.85 - 0.45 * x**2
    debris = 0.25 + 0.25 * x
    return np.stack([background, clean, debris]).astype(np.float32)


def scene_block(row0: int, col0: int, height: int, width: int, bands: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(bands, height, width)`` float32 pixels and ``(height, width)`` classes of one block of the scene."""
    rows = np.arange(row0, row0 + height)[:, None]
    cols = np.arange(col0, col0 + width)[None, :]
    classes = class_field(rows, cols)
    spectra = signatures(bands)
    pixels = np.moveaxis(spectra[classes], -1, 0)  # (bands, h, w)
    shade = (1.0 + 0.15 * np.sin(rows / 57.0) * np.cos(cols / 71.0)).astype(np.float32)
    rng = np.random.default_rng([seed, row0, col0])
    noise = rng.standard_normal((bands, height, width), dtype=np.float32)
    pixels = pixels * shade[None] + 0.03 * noise
    return np.ascontiguousarray(pixels, dtype=np.float32), classes


def write_scene(path: Path, bands: int, height: int, width: int, seed: int, strip: int = 512) -> float:
    """Write the synthetic scene as an uncompressed tiled BigTIFF, one strip at a time; returns seconds."""
    import rasterio
    from rasterio.transform import from_origin

    started = time.perf_counter()
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": "float32",
        "crs": CRS, "transform": from_origin(ORIGIN[0], ORIGIN[1], PIXEL_SIZE, PIXEL_SIZE),
        "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "YES", "interleave": "pixel",
    }  # fmt: skip
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(path, "w", **profile) as dataset:
        for row0 in range(0, height, strip):
            rows = min(strip, height - row0)
            pixels, _ = scene_block(row0, 0, rows, width, bands, seed)
            dataset.write(pixels, window=rasterio.windows.Window(0, row0, width, rows))
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- model
def train_model(folder: Path, bands: int, steps: int, seed: int) -> dict[str, Any]:
    """Train a width-4 SSMGNet on a 256 x 256 tile of the generator (far from the scene) and export it."""
    import torch

    from hsikit.cube import Cube
    from hsikit.engine.export import export_model
    from hsikit.models import create_model
    from hsikit.spectral.normalize import create_normalizer

    torch.manual_seed(seed)
    image, labels = scene_block(200_000, 200_000, 256, 256, bands, seed + 1)
    normalizer = create_normalizer("standardize").fit(Cube(image))
    inputs = torch.from_numpy(normalizer.transform(image, band_axis=0).astype(np.float32))
    targets = torch.from_numpy(labels.astype(np.int64))
    model = create_model("ssmgnet", in_bands=bands, num_classes=3, width=4, atten_kernel=9)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    counts = np.bincount(labels.ravel(), minlength=3).astype(np.float64)
    weights = torch.tensor(counts.sum() / (3 * np.maximum(counts, 1)), dtype=torch.float32)
    generator = np.random.default_rng(seed)
    started = time.perf_counter()
    model.train()
    for _ in range(steps):
        batch_x, batch_y = [], []
        for _ in range(4):
            top, left = generator.integers(0, 256 - 64, size=2)
            batch_x.append(inputs[:, top : top + 64, left : left + 64])
            batch_y.append(targets[top : top + 64, left : left + 64])
        logits, _ = model(torch.stack(batch_x))
        loss = torch.nn.functional.cross_entropy(logits, torch.stack(batch_y), weight=weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # batch-norm statistics recomputed with the final weights (the running averages lag behind a fast schedule)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration passes
    with torch.no_grad():
        for _ in range(8):
            top, left = generator.integers(0, 256 - 128, size=2)
            model(inputs[None, :, top : top + 128, left : left + 128])
    model.eval()
    with torch.no_grad():
        predicted = model(inputs[None])[0][0].argmax(0).numpy()
    accuracy = float((predicted == labels).mean())
    if accuracy < 0.9:
        raise SystemExit(f"the scene model did not learn the synthetic classes (tile accuracy {accuracy:.3f})")
    export_model(model, folder, task="segmentation",
                 data={"bands": bands, "class_names": CLASS_NAMES, "normalization": normalizer.to_dict()})  # fmt: skip
    return {"steps": steps, "seconds": time.perf_counter() - started, "final_loss": float(loss.detach()),
            "train_tile_accuracy": accuracy}  # fmt: skip


# ---------------------------------------------------------------------------- child run
def run_child(command: list[str], env: dict[str, str], watch: Path) -> dict[str, Any]:
    """Run ``command``; return wall seconds, the seconds until ``watch`` appeared, the peak RSS (bytes), status."""
    started = time.perf_counter()
    appeared: list[float] = []
    samples: list[int] = []
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def poll() -> None:
        status_file = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            if not appeared and watch.exists():
                appeared.append(time.perf_counter() - started)
            try:
                for line in status_file.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        samples.append(int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.5)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    output = process.stdout.read() if process.stdout is not None else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    watcher.join(timeout=2)
    return {
        "status": process.returncode,
        "wall_seconds": wall,
        "inference_seconds": appeared[0] if appeared else None,
        "peak_rss_bytes": int(usage.ru_maxrss) * 1024,  # Linux: kilobytes
        "rss_samples": len(samples),
        "max_sampled_rss_bytes": max(samples) if samples else None,
        "output_tail": output[-2000:],
    }


# ---------------------------------------------------------------------------- checks
def check_outputs(scene: Path, classes_path: Path, vector: Path, seed: int, bands: int) -> dict[str, Any]:
    """CRS / transform of both outputs, per-class areas, accuracy against the generator (block by block)."""
    import geopandas as gpd
    import rasterio

    with rasterio.open(scene) as source, rasterio.open(classes_path) as classes:
        raster_crs_ok = classes.crs == source.crs
        transform_ok = classes.transform == source.transform
        shape_ok = (classes.height, classes.width) == (source.height, source.width)
        counts = np.zeros(256, dtype=np.int64)
        confusion = np.zeros((3, 3), dtype=np.int64)
        for row0 in range(0, classes.height, 1024):
            rows = min(1024, classes.height - row0)
            block = classes.read(1, window=rasterio.windows.Window(0, row0, classes.width, rows))
            counts += np.bincount(block.ravel(), minlength=256)
            truth = class_field(np.arange(row0, row0 + rows)[:, None], np.arange(classes.width)[None, :])
            valid = block < 3
            confusion += np.bincount(truth[valid].astype(np.int64) * 3 + block[valid], minlength=9).reshape(3, 3)
        source_epsg = source.crs.to_epsg()
        dtype, nodata = classes.dtypes[0], classes.nodata
    polygons = gpd.read_file(vector)
    areas = polygons.geometry.area.groupby(polygons["class_id"]).sum().to_dict()
    area_ok = all(abs(areas.get(k, 0.0) - counts[k] * PIXEL_SIZE**2) <= 1e-6 * max(1.0, counts[k] * PIXEL_SIZE**2)
                  for k in (1, 2))  # fmt: skip
    iou = [float(confusion[k, k] / max(1, confusion[k].sum() + confusion[:, k].sum() - confusion[k, k]))
           for k in range(3)]  # fmt: skip
    return {
        "raster_crs_equals_input": bool(raster_crs_ok),
        "raster_transform_equals_input": bool(transform_ok),
        "raster_shape_equals_input": bool(shape_ok),
        "input_epsg": source_epsg,
        "raster_dtype": dtype,
        "raster_nodata": nodata,
        "vector_epsg": polygons.crs.to_epsg() if polygons.crs is not None else None,
        "vector_crs_equals_input": bool(polygons.crs is not None and polygons.crs.to_epsg() == source_epsg),
        "polygons": int(len(polygons)),
        "polygons_per_class": {CLASS_NAMES[int(k)]: int(v) for k, v in polygons.groupby("class_id").size().items()},
        "vector_class_names": sorted(set(polygons.class_name)),
        "polygon_area_equals_pixel_count": bool(area_ok),
        "class_pixel_counts": {CLASS_NAMES[k]: int(counts[k]) for k in range(3)},
        "nodata_pixels": int(counts[3:].sum()),
        "accuracy_vs_generator": float(np.trace(confusion) / max(1, confusion.sum())),
        "iou_vs_generator": dict(zip(CLASS_NAMES, iou)),
    }


# ---------------------------------------------------------------------------- main
def run_scene(args: argparse.Namespace, workdir: Path, model_dir: Path, gigabytes: float) -> dict[str, Any]:
    """Write one scene of ``gigabytes`` GB (``--width`` columns), segment it with ``hsikit predict``, check, delete."""
    height = max(args.tile, int(round(gigabytes * 1e9 / (4 * args.bands * args.width))))
    file_bytes = 4 * args.bands * height * args.width
    scene_dir = workdir / f"scene_{gigabytes:g}gb"
    scene_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "bands": args.bands, "height": height, "width": args.width, "dtype": "float32",
        "megapixels": height * args.width / 1e6, "file_bytes": file_bytes, "crs": CRS, "pixel_size_m": PIXEL_SIZE,
        "layout": "GeoTIFF, uncompressed, tiled 512 x 512, pixel interleaved, BigTIFF",
    }  # fmt: skip
    try:
        print(f"scene: {args.bands} x {height} x {args.width} float32 = {file_bytes / 1e9:.2f} GB", flush=True)
        scene = scene_dir / "scene.tif"
        report["write_seconds"] = write_scene(scene, args.bands, height, args.width, args.seed)
        report["file_bytes_on_disk"] = scene.stat().st_size
        assert report["file_bytes_on_disk"] >= file_bytes, "the scene file is smaller than its pixels"
        print(f"  written in {report['write_seconds']:.0f} s ({report['file_bytes_on_disk'] / 1e9:.2f} GB on disk)",
              flush=True)  # fmt: skip
        classes_path, vector = scene_dir / "classes.tif", scene_dir / "classes.gpkg"
        command = [sys.executable, "-m", "hsikit", "predict", "--model", str(model_dir), "--input", str(scene),
                   "--output", str(classes_path), "--vector", str(vector), "--compress", "deflate",
                   "--tile", str(args.tile), "--overlap", str(args.overlap), "--batch-size", str(args.batch_size),
                   "--no-progress"]  # fmt: skip
        env = dict(os.environ, GDAL_CACHEMAX=str(args.gdal_cache_mb), OMP_NUM_THREADS=str(args.threads),
                   MKL_NUM_THREADS=str(args.threads))  # fmt: skip
        report["command"] = " ".join("python" if part == sys.executable else part for part in command)
        load_before = os.getloadavg()[0]
        child = run_child(command, env, classes_path)
        child["load_average_1min_before_after"] = [load_before, os.getloadavg()[0]]
        report["run"] = child
        if child["status"] != 0:
            print(child["output_tail"])
            raise SystemExit(f"hsikit predict failed with status {child['status']}")
        megapixels = report["megapixels"]
        child["megapixels_per_second_whole_command"] = megapixels / child["wall_seconds"]
        if child["inference_seconds"]:
            child["megapixels_per_second_inference"] = megapixels / child["inference_seconds"]
        child["peak_rss_fraction_of_file"] = child["peak_rss_bytes"] / file_bytes
        print(f"  predict: {child['wall_seconds']:.0f} s wall, inference {child['inference_seconds'] or 0:.0f} s, "
              f"peak RSS {child['peak_rss_bytes'] / 2**20:.0f} MiB = {child['peak_rss_fraction_of_file']:.3f} "
              "of the file", flush=True)  # fmt: skip
        checks = check_outputs(scene, classes_path, vector, args.seed, args.bands)
        report["checks"] = checks
        print(f"  checks: raster CRS {checks['raster_crs_equals_input']}, transform "
              f"{checks['raster_transform_equals_input']}, vector CRS {checks['vector_crs_equals_input']} "
              f"(EPSG:{checks['vector_epsg']}), areas {checks['polygon_area_equals_pixel_count']}, "
              f"{checks['polygons']} polygons, accuracy {checks['accuracy_vs_generator']:.4f}", flush=True)  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(scene_dir, ignore_errors=True)
    return report


def memory_checks(scenes: list[dict[str, Any]]) -> dict[str, Any]:
    """The memory bound over the scenes: the largest scene's peak RSS is below a quarter of its file, and
    (with several scenes of one width) peak RSS grows by less than 15 % while the file grows."""
    largest = max(scenes, key=lambda scene: scene["file_bytes"])
    smallest = min(scenes, key=lambda scene: scene["file_bytes"])
    checks: dict[str, Any] = {
        "largest_file_gb": largest["file_bytes"] / 1e9,
        "largest_peak_rss_fraction_of_file": largest["run"]["peak_rss_fraction_of_file"],
        "largest_peak_rss_below_quarter_of_file": largest["run"]["peak_rss_fraction_of_file"] < 0.25,
    }
    if largest is not smallest:
        file_growth = largest["file_bytes"] / smallest["file_bytes"]
        rss_growth = largest["run"]["peak_rss_bytes"] / smallest["run"]["peak_rss_bytes"]
        checks.update({"file_growth": file_growth, "peak_rss_growth": rss_growth,
                       "peak_rss_independent_of_height": rss_growth < 1.15})  # fmt: skip
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, nargs="+", default=[1.5, 6.0],
                        help="scene file sizes in GB (10^9 bytes; default 1.5 and 6: same width, so peak memory "
                        "can be compared)")  # fmt: skip
    parser.add_argument("--bands", type=int, default=24, help="float32 bands (default 24)")
    parser.add_argument("--width", type=int, default=2048, help="scene columns (default 2048; rows from --gb)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the child (default 2)")
    parser.add_argument("--gdal-cache-mb", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where the scenes go (default: a new folder in /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the scenes and outputs")
    parser.add_argument("--no-json", action="store_true", help="do not write the results file")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="hsikit_huge_", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    result: dict[str, Any] = {
        "benchmark": "bench_huge_scene",
        "machine": {
            "platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "gpu": None, "load_average_at_start": load_start,
        },
        "settings": {"tile": args.tile, "overlap": args.overlap, "batch_size": args.batch_size,
                     "torch_threads": args.threads, "gdal_cachemax_mb": args.gdal_cache_mb, "device": "cpu"},
    }  # fmt: skip
    try:
        import torch

        torch.set_num_threads(args.threads)
        model_dir = workdir / "model"
        result["model"] = {"name": "ssmgnet", "width": 4, "atten_kernel": 9,
                           **train_model(model_dir, args.bands, args.train_steps, args.seed)}  # fmt: skip
        print(f"model trained in {result['model']['seconds']:.0f} s, tile accuracy "
              f"{result['model']['train_tile_accuracy']:.3f}", flush=True)  # fmt: skip
        result["scenes"] = [run_scene(args, workdir, model_dir, gigabytes) for gigabytes in args.gb]
    finally:
        result["machine"]["load_average_at_end"] = os.getloadavg()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print("\n| scene (bands x H x W) | file | inference Mpx/s | whole command Mpx/s | peak RSS | RSS / file | "
          "polygons | accuracy | CRS raster / vector |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for scene in result["scenes"]:
        run, checks = scene["run"], scene["checks"]
        print(f"| {scene['bands']} x {scene['height']} x {scene['width']} | {scene['file_bytes'] / 1e9:.2f} GB | "
              f"{run.get('megapixels_per_second_inference', float('nan')):.3f} | "
              f"{run['megapixels_per_second_whole_command']:.3f} | {run['peak_rss_bytes'] / 2**20:.0f} MiB | "
              f"{run['peak_rss_fraction_of_file']:.3f} | {checks['polygons']} | {checks['accuracy_vs_generator']:.4f} | "
              f"{checks['raster_crs_equals_input']} / {checks['vector_crs_equals_input']} |")  # fmt: skip
    print(f"load average at start {' '.join(f'{v:.1f}' for v in load_start)}, at end "
          f"{' '.join(f'{v:.1f}' for v in result['machine']['load_average_at_end'])}")  # fmt: skip
    result["memory_checks"] = memory_checks(result["scenes"])
    print(f"memory: {result['memory_checks']}")
    if not args.no_json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS}")
    failed = [f"{scene['file_bytes'] / 1e9:.2f} GB: {key}" for scene in result["scenes"]
              for key, value in scene["checks"].items() if value is False]  # fmt: skip
    failed += [key for key, value in result["memory_checks"].items() if value is False]
    if failed:
        print(f"FAILED checks: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
