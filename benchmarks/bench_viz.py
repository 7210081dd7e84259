"""Benchmark: how long the ``hsikit viz`` figures take for one ARAD-1K-sized scene.

The scene is 482 x 512 pixels x 31 bands (400:10:700 nm), the size of an ARAD-1K validation
image, made of real spectra: the Indian Pines proxy target (dark offset removed, resampled to
the 31 bands, scaled to [0.001, 1]) mirrored to cover 482 x 512 pixels. The prediction is a
least-squares quadratic regression from its NTIRE 2022 camera RGB (fitted on the left half);
the second "method" of the comparison grid and the heatmap is that prediction times 0.97 plus
0.01 (there only to time a two-method figure). The confusion matrix compares four brightness
classes of band 550 nm in the target and the prediction.
Each figure type is built and saved as PNG and PDF (``save_figure_formats``) ``--repeat``
times in both styles (screen at 110 dpi, paper at 300 dpi); the fastest run is kept. Wall
time moves with the machine's load (recorded with the machine description), so the
process CPU time is reported as well.

Usage::

    python benchmarks/bench_viz.py               # 2 repeats per figure and style
    python benchmarks/bench_viz.py --repeat 1    # quicker
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_viz.json"
HEIGHT, WIDTH = 482, 512


def machine() -> dict[str, Any]:
    """CPU, cores, memory, library versions and the load average."""
    import matplotlib
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gb = None
    try:
        with open("/proc/meminfo") as handle:
            memory_gb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": None if memory_gb is None else round(memory_gb, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "matplotlib": matplotlib.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": os.getloadavg(),
    }


def arad_sized_scene() -> tuple[Any, np.ndarray, np.ndarray]:
    """Target cube (31, 482, 512), prediction (31, 482, 512) and RGB (482, 512, 3) from real spectra."""
    from hsikit import Cube
    from hsikit.data.paths import shared_data_dir
    from hsikit.spectral.resample import resample
    from hsikit.spectral.simulate import simulate_rgb

    shared = shared_data_dir()
    if shared is None:
        sys.exit("the shared data folder (../shared/data or $HSIKIT_SHARED_DATA) is needed for Indian Pines")
    folder = shared / "indian_pines"
    centres, widths = [], []
    with open(folder / "indian_pines_wavelengths.csv", newline="") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            if row["in_corrected_200"] == "1":
                centres.append(float(row["center_nm"]))
                widths.append(float(row["fwhm_nm"]))
    raw = np.load(folder / "Indian_pines_corrected.npy").astype(np.float64) - 1000.0
    grid = np.arange(400.0, 701.0, 10.0)
    resampled = np.asarray(resample(Cube.from_hwc(raw, wavelengths=centres, fwhm=widths), grid, 10.0).data)
    target = np.clip(resampled / np.percentile(resampled, 99.9), 0.001, 1.0)
    reps = (1, -(-HEIGHT // target.shape[1]), -(-WIDTH // target.shape[2]))
    tiled = np.pad(target, ((0, 0), (0, reps[1] * 145 - 145), (0, reps[2] * 145 - 145)), mode="symmetric")
    tiled = tiled[:, :HEIGHT, :WIDTH].astype(np.float32)
    cube = Cube(tiled, wavelengths=grid, metadata={"units": "reflectance"})
    rgb = simulate_rgb(cube, noise="none", jpeg_quality=None, seed=0, output="float")
    features = rgb.reshape(3, -1).T.astype(np.float64)
    values = tiled.reshape(31, -1).T.astype(np.float64)
    products = features[:, [0, 1, 0]] * features[:, [1, 2, 2]]
    design = np.hstack([features, features**2, products, np.ones((features.shape[0], 1))])
    train = (np.arange(features.shape[0]) % WIDTH) < WIDTH // 2
    weights, *_ = np.linalg.lstsq(design[train], values[train], rcond=None)
    prediction = (design @ weights).T.reshape(tiled.shape).astype(np.float32)
    return cube, prediction, np.moveaxis(rgb, 0, -1)


def timed(make: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Fastest wall and CPU seconds of ``make`` over ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        make()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_s": min(walls), "cpu_s": min(cpus)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure and style (the fastest is kept)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(1)
    from hsikit.viz.classes import confusion_from_maps, plot_confusion_matrix
    from hsikit.viz.compare import plot_comparison_grid
    from hsikit.viz.errors import band_errors, plot_error_maps, scene_scores
    from hsikit.viz.panels import plot_prediction_panels, plot_spectral_curves
    from hsikit.viz.style import save_figure_formats
    from hsikit.viz.summaries import plot_bandwise_errors, plot_density_scatter, plot_metric_heatmap

    started = machine()
    target, prediction, rgb = arad_sized_scene()
    linear = np.clip(prediction * 0.97 + 0.01, 0, None)
    scores = {m: {k: [v] for k, v in scene_scores(p, target).items()} for m, p in (("quadratic", prediction),
                                                                                   ("scaled", linear))}
    labels = np.digitize(np.asarray(target.data[15]), [0.3, 0.5, 0.7])
    predicted_labels = np.digitize(prediction[15], [0.3, 0.5, 0.7])
    matrix, _ = confusion_from_maps(predicted_labels, labels, unlabelled_value=None)
    figures: dict[str, Callable[[str], Any]] = {
        "prediction panels (input, target, prediction)": lambda s: plot_prediction_panels(
            prediction, target, rgb_input=rgb, style=s),
        "error maps (MRAE, RMSE, SAM)": lambda s: plot_error_maps(prediction, target, style=s),
        "spectral curves (3 picked pixels)": lambda s: plot_spectral_curves(prediction, target, style=s),
        "bandwise errors": lambda s: plot_bandwise_errors({"quadratic": band_errors(prediction, target)},
                                                          target.wavelengths, style=s),
        "density scatter (7.6 M values)": lambda s: plot_density_scatter({"quadratic": (prediction, target)}, style=s),
        "metric heatmap (2 methods)": lambda s: plot_metric_heatmap(scores, style=s),
        "comparison grid (2 methods)": lambda s: plot_comparison_grid(
            target, {"quadratic": prediction, "scaled": linear}, rgb_input=rgb, style=s),
        "confusion matrix (4 classes)": lambda s: plot_confusion_matrix(matrix, ["a", "b", "c", "d"], style=s),
    }
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, make in figures.items():
            for style in ("screen", "paper"):
                def build_and_save() -> None:
                    save_figure_formats(make(style), Path(folder) / "figure")

                result = timed(build_and_save, args.repeat)
                sizes = {ext: (Path(folder) / f"figure.{ext}").stat().st_size for ext in ("png", "pdf")}
                rows.append({"figure": name, "style": style, **result, "png_kb": sizes["png"] / 1024,
                             "pdf_kb": sizes["pdf"] / 1024})
    print(f"{'figure':<48} {'style':<7} {'wall s':>7} {'CPU s':>7} {'PNG kB':>8} {'PDF kB':>8}")
    for row in rows:
        print(f"{row['figure']:<48} {row['style']:<7} {row['wall_s']:7.2f} {row['cpu_s']:7.2f} "
              f"{row['png_kb']:8.0f} {row['pdf_kb']:8.0f}")
    total = {style: sum(r["cpu_s"] for r in rows if r["style"] == style) for style in ("screen", "paper")}
    print(f"CPU seconds for all {len(figures)} figures of one scene: screen {total['screen']:.1f}, "
          f"paper {total['paper']:.1f}")
    payload = {
        "benchmark": "bench_viz",
        "scene": f"{HEIGHT} x {WIDTH} x 31 (Indian Pines proxy spectra mirrored to the ARAD-1K size)",
        "repeat": args.repeat,
        "threads": 1,
        "machine": {**started, "load_average_after": os.getloadavg()},
        "rows": rows,
        "cpu_seconds_per_scene": total,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
