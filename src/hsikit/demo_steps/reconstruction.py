"""Demo step: reconstruct 31-band spectra from a simulated RGB photo of the demo scene.

The demo scene (Indian Pines, or the synthetic scene offline) is resampled to ARAD-1K's
bands (31 bands, 400:10:700 nm, Gaussian responses of 10 nm FWHM), scaled to a
reflectance-like [0.001, 1] range, and photographed with the NTIRE 2022 camera recipe
(:func:`hsikit.spectral.simulate.simulate_rgb`: camera curves, shot noise, auto-exposure,
JPEG 65). A tiny MST++ (one stage, two levels) is trained for 40 steps (batch 4, Adam,
lr 2e-3 with a cosine decay; a few seconds on one CPU thread) on random 32 × 32 crops of
the **left 60 %** of the scene and evaluated on the **right 40 %**, which it never saw. For
scale, a per-pixel linear map RGB → 31 bands fitted by least squares on the same training
pixels is scored too.

Written into ``<output>/reconstruction/``: ``reconstruction_spectra.png`` (true, MST++ and
linear spectra at four held-out pixels, the RGB input and the error map) and
``reconstructed_cube.mat`` (the MST++ cube of the whole scene, MATLAB v7.3 in the ARAD layout).
The MRAE / RMSE / PSNR / SAM of both on the held-out part are printed. The NTIRE camera curves
come from the shared data folder; without it the step prints a note and writes nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hsikit.demo import DemoContext, DemoStep

ORDER = 40
TRAIN_FRACTION = 0.6
PATCH = 32
BATCH = 4
STEPS_TRAINED = 40
LEARNING_RATE = 2e-3
SEED = 0
OUTPUT_FOLDER = "reconstruction"


def _prepare_scene(context: DemoContext) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(target (31, H, W) float32, rgb (3, H, W) uint8, wavelengths (31,))`` or None (printed why)."""
    from hsikit.cube import Cube
    from hsikit.data.arad import ARAD_WAVELENGTHS
    from hsikit.data.paths import shared_data_dir
    from hsikit.errors import HsikitError
    from hsikit.spectral.resample import resample
    from hsikit.spectral.simulate import NTIRE2022_GAINS, load_ntire2022_qe, simulate_rgb

    if shared_data_dir() is None:
        context.echo("  skipped: the NTIRE 2022 camera curves are in the shared data folder, which is not available")
        return None
    cube = context.scene.cube
    try:
        camera = load_ntire2022_qe()
        resampled = resample(cube, ARAD_WAVELENGTHS, 10.0, method="gaussian", dtype=np.float64)
    except HsikitError as error:
        context.echo(f"  skipped: {error}")
        return None
    data = np.asarray(resampled.data, dtype=np.float64)
    scale = float(np.percentile(data, 99.9))
    target = np.clip(data / scale, 1e-3, 1.0).astype(np.float32)
    rgb = simulate_rgb(Cube(target, wavelengths=ARAD_WAVELENGTHS), camera, gains=NTIRE2022_GAINS, seed=SEED)
    return target, rgb, ARAD_WAVELENGTHS


def _train_tiny_mstpp(rgb: np.ndarray, target: np.ndarray, columns: int) -> object:
    """A tiny MST++ trained on random crops of the first ``columns`` columns."""
    import torch

    from hsikit.losses.reconstruction import MRAELoss
    from hsikit.models import create_model, tiny_model_arguments

    torch.manual_seed(SEED)
    generator = np.random.default_rng(SEED)
    model = create_model("mst_plus_plus", **tiny_model_arguments("mst_plus_plus"))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.999))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=STEPS_TRAINED, eta_min=1e-6)
    loss_function = MRAELoss()
    inputs, targets = torch.from_numpy(rgb), torch.from_numpy(target)
    height = rgb.shape[1]
    model.train()
    for _ in range(STEPS_TRAINED):
        rows = generator.integers(0, height - PATCH + 1, BATCH)
        cols = generator.integers(0, columns - PATCH + 1, BATCH)
        x = torch.stack([inputs[:, r : r + PATCH, c : c + PATCH] for r, c in zip(rows, cols)])
        y = torch.stack([targets[:, r : r + PATCH, c : c + PATCH] for r, c in zip(rows, cols)])
        loss = loss_function(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def _linear_baseline(rgb: np.ndarray, target: np.ndarray, columns: int) -> np.ndarray:
    """Per-pixel least-squares map ``[r, g, b, 1] → 31 bands`` fitted on the first ``columns`` columns."""
    design = np.concatenate([rgb.reshape(3, -1), np.ones((1, rgb.shape[1] * rgb.shape[2]), np.float32)])
    train = np.zeros(rgb.shape[1:], dtype=bool)
    train[:, :columns] = True
    inputs = design[:, train.ravel()].T  # (N, 4)
    outputs = target.reshape(target.shape[0], -1)[:, train.ravel()].T  # (N, 31)
    coefficients, *_ = np.linalg.lstsq(inputs, outputs, rcond=None)
    return (design.T @ coefficients).T.reshape(target.shape).astype(np.float32)


def run_reconstruction_step(context: DemoContext) -> list[Path]:
    """Simulate the RGB photo, train a tiny MST++, score it and a linear baseline, draw the spectra."""
    import torch

    from hsikit.inference.reconstruction import prepare_rgb, reconstruct, save_reconstruction
    from hsikit.metrics.reconstruction import aggregate, mstpp_metrics
    from hsikit.viz.reconstruction import default_pixels, plot_reconstruction

    prepared = _prepare_scene(context)
    if prepared is None:
        return []
    target, rgb_uint8, wavelengths = prepared
    started = time.perf_counter()
    rgb = prepare_rgb(rgb_uint8)  # per-image global min-max, as MST++ normalises its inputs
    height, width = rgb.shape[1:]
    columns = int(round(width * TRAIN_FRACTION))
    threads = torch.get_num_threads()
    # one thread: a tiny model gains nothing from more, and on a busy machine they slow it several-fold
    torch.set_num_threads(1)
    try:
        model = _train_tiny_mstpp(rgb, target, columns)
        predicted = reconstruct(model, rgb)
    finally:
        torch.set_num_threads(threads)
    linear = _linear_baseline(rgb, target, columns)
    elapsed = time.perf_counter() - started

    held_out = np.s_[:, :, columns:]
    scores = {}
    for name, cube in (("tiny MST++", predicted), ("linear RGB->31", linear)):
        per_image = mstpp_metrics(torch.from_numpy(cube[held_out]), torch.from_numpy(target[held_out]), crop=0)
        scores[name] = aggregate(per_image)
    context.echo(
        f"  simulated NTIRE RGB of the {context.scene.title} ({height} x {width} px, 31 bands 400-700 nm); "
        f"tiny MST++ trained {STEPS_TRAINED} steps on the left {TRAIN_FRACTION:.0%} in {elapsed:.1f} s"
    )
    context.echo(f"  held-out right {1 - TRAIN_FRACTION:.0%} (no crop):   MRAE    RMSE    PSNR dB   SAM rad")
    for name, values in scores.items():
        context.echo(
            f"    {name:<16}                {values['mrae']:.4f}  {values['rmse']:.4f}  {values['psnr']:7.2f}  "
            f"{values['sam']:.4f}"
        )

    folder = context.output_path(OUTPUT_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    test_width = width - columns
    pixels = default_pixels(height, test_width)
    figure_path = folder / "reconstruction_spectra.png"
    plot_reconstruction(
        predicted[held_out],
        target[held_out],
        rgb=rgb_uint8[held_out],
        wavelengths=wavelengths,
        pixels=pixels,
        extra_predictions={"linear": linear[held_out]},
        prediction_label="tiny MST++",
        title=f"{context.scene.title}: held-out pixels, true vs reconstructed spectra",
        path=figure_path,
    )
    cube_path = save_reconstruction(predicted, folder / "reconstructed_cube.mat", wavelengths=wavelengths)
    return [figure_path, cube_path]


STEPS: list[DemoStep] = [
    DemoStep(
        "reconstruction",
        "RGB -> 31-band spectra: a tiny MST++ trained for a few seconds on a simulated photo",
        run_reconstruction_step,
    )
]

__all__ = ["ORDER", "STEPS", "run_reconstruction_step"]
