"""Reconstruction metrics: hand-computed values, the MST++ crop, per-image averaging, DDP merging."""

from __future__ import annotations

import csv
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from hsikit.errors import ConfigError, MetricInputError, ShapeMismatchError
from hsikit.metrics import (
    MRAE,
    PSNR,
    RMSE,
    SAM,
    SSIM,
    BackProjectionMRAE,
    ReconstructionMetrics,
    aggregate,
    back_projection_mrae,
    border_crop,
    mrae,
    mstpp_metrics,
    psnr,
    reconstruction_metrics,
    rmse,
    sam,
    ssim,
)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def image(values: list[list[float]]) -> torch.Tensor:
    """One single-band image ``(1, 1, H, W)``."""
    return torch.tensor(values, dtype=torch.float64)[None, None]


# --------------------------------------------------------------------------- hand-computed values
def test_mrae_and_rmse_by_hand() -> None:
    target = image([[1.0, 2.0], [3.0, 4.0]])
    prediction = image([[1.5, 2.0], [3.0, 3.0]])
    # relative errors 0.5, 0, 0, 0.25 -> 0.1875; squared errors 0.25, 0, 0, 1 -> sqrt(0.3125)
    assert mrae(prediction, target, crop=0).item() == pytest.approx(0.1875, abs=1e-15)
    assert rmse(prediction, target, crop=0).item() == pytest.approx(math.sqrt(0.3125), abs=1e-15)


def test_mrae_and_rmse_use_the_raw_unclamped_prediction() -> None:
    target = image([[0.5, 0.5]])
    prediction = image([[1.5, -0.5]])  # both 1.0 away, outside [0, 1]
    assert mrae(prediction, target, crop=0).item() == pytest.approx(2.0)
    assert rmse(prediction, target, crop=0).item() == pytest.approx(1.0)


def test_psnr_by_hand_and_clamping() -> None:
    # error 0.1 everywhere: 10*log10(255^2 / 25.5^2) = 20 dB exactly
    assert psnr(torch.full((1, 2, 3, 3), 0.5), torch.full((1, 2, 3, 3), 0.6), crop=0).item() == pytest.approx(20.0)
    # 1.7 is clamped to 1.0 before scoring, so the error is 0.1, not 0.8
    assert psnr(torch.full((1, 1, 2, 2), 1.7), torch.full((1, 1, 2, 2), 0.9), crop=0).item() == pytest.approx(20.0)
    # a perfect prediction has MSE 0 and PSNR +inf, as in MST++
    assert math.isinf(psnr(torch.full((1, 1, 2, 2), 0.3), torch.full((1, 1, 2, 2), 0.3), crop=0).item())


def test_psnr_is_per_image_then_mean_not_pooled_mse() -> None:
    target = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    prediction = target.clone()
    prediction[0] += 0.1  # image 0: 20 dB
    prediction[1] += 0.01  # image 1: 40 dB
    per_image = psnr(prediction, target, crop=0)
    assert per_image.tolist() == pytest.approx([20.0, 40.0])
    assert per_image.mean().item() == pytest.approx(30.0)
    pooled = 10 * math.log10(1.0 / ((0.1**2 + 0.01**2) / 2))  # 22.97 dB
    assert pooled == pytest.approx(22.967, abs=1e-3)
    metric = PSNR(crop=0)
    metric.update(prediction, target)
    assert metric.compute().item() == pytest.approx(30.0)
    assert abs(metric.compute().item() - pooled) > 7.0


def test_sam_by_hand_in_radians_and_degrees() -> None:
    # three pixels, two bands: angles pi/2, pi/4 and 0 -> mean pi/4
    prediction = torch.tensor([[[[1.0, 1.0, 2.0]], [[0.0, 1.0, 2.0]]]])
    target = torch.tensor([[[[0.0, 1.0, 1.0]], [[1.0, 0.0, 1.0]]]])
    assert prediction.shape == (1, 2, 1, 3)
    assert sam(prediction, target, crop=0).item() == pytest.approx(math.pi / 4, abs=1e-7)
    assert sam(prediction, target, crop=0, degrees=True).item() == pytest.approx(45.0, abs=1e-5)


def test_sam_zero_spectrum_counts_as_a_right_angle() -> None:
    prediction = torch.zeros(1, 3, 1, 1)
    target = torch.tensor([0.2, 0.5, 0.1]).view(1, 3, 1, 1)
    assert sam(prediction, target, crop=0).item() == pytest.approx(math.pi / 2)
    assert sam(target, target, crop=0).item() == pytest.approx(0.0, abs=1e-7)


def test_ssim_of_constant_images_by_hand() -> None:
    a, b = 0.2, 0.6
    c1, c2 = 0.01**2, 0.03**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # variances and covariance are 0: the c2 factor is 1
    shape = (1, 3, 12, 13)
    value = ssim(torch.full(shape, a, dtype=torch.float64), torch.full(shape, b, dtype=torch.float64), crop=0).item()
    assert value == pytest.approx(expected, abs=1e-12)
    noisy = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    assert ssim(noisy, noisy, crop=0).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


def numpy_ssim_reference(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """Brute-force SSIM of two (C, H, W) images: explicit window at every valid position."""
    offsets = np.arange(size) - (size - 1) / 2
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    x, y = np.clip(x, 0, 1), np.clip(y, 0, 1)
    values = []
    for band in range(x.shape[0]):
        for row in range(x.shape[1] - size + 1):
            for col in range(x.shape[2] - size + 1):
                px = x[band, row : row + size, col : col + size]
                py = y[band, row : row + size, col : col + size]
                mx, my = (window * px).sum(), (window * py).sum()
                vx = (window * (px - mx) ** 2).sum()
                vy = (window * (py - my) ** 2).sum()
                cov = (window * (px - mx) * (py - my)).sum()
                values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_brute_force_window_reference() -> None:
    rng = np.random.default_rng(7)
    target = rng.uniform(0.0, 1.0, size=(2, 14, 15))
    prediction = np.clip(target + rng.normal(0.0, 0.1, size=target.shape), -0.1, 1.1)  # some values get clamped
    expected = numpy_ssim_reference(prediction, target)
    value = ssim(torch.from_numpy(prediction)[None], torch.from_numpy(target)[None], crop=0).item()
    assert value == pytest.approx(expected, abs=1e-10)
    assert 0.5 < value < 0.99  # similar, not identical


def test_back_projection_mrae_by_hand() -> None:
    camera = torch.tensor([[1.0, 1.0]])  # one channel summing the two bands
    target = torch.tensor([1.0, 3.0]).view(1, 2, 1, 1)
    prediction = torch.tensor([2.0, 3.0]).view(1, 2, 1, 1)
    # projections 4 (target) and 5 (prediction): |5 - 4| / 4
    assert back_projection_mrae(prediction, target, camera, crop=0).item() == pytest.approx(0.25)
    # two channels: sums (4 vs 5) and band 1 alone (3 vs 3) -> mean(0.25, 0)
    camera2 = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    assert back_projection_mrae(prediction, target, camera2, crop=0).item() == pytest.approx(0.125)


# --------------------------------------------------------------------------- MRAE variants
def test_mrae_custom_variant_replaces_zero_targets_by_1e_8() -> None:
    target = image([[0.0, 2.0]])
    prediction = image([[2e-8, 3.0]])
    # |2e-8 - 0| / 1e-8 = 2 and |3 - 2| / 2 = 0.5 -> 1.25
    assert mrae(prediction, target, crop=0, variant="custom").item() == pytest.approx(1.25)


def test_mrae_protocol_variant_refuses_zero_targets_and_names_the_fix() -> None:
    target = image([[0.0, 2.0]])
    with pytest.raises(MetricInputError, match=r"1 zero value.*variant='custom'"):
        mrae(target + 1.0, target, crop=0)
    with pytest.raises(ConfigError, match="'mstpp' or 'custom'"):
        mrae(target + 1.0, target + 1.0, crop=0, variant="epsilon")


# --------------------------------------------------------------------------- crop
def test_default_crop_is_the_mstpp_centre_region_of_an_arad_image() -> None:
    rows = torch.arange(482, dtype=torch.float64).view(1, 1, 482, 1).expand(1, 1, 482, 512)
    cols = torch.arange(512, dtype=torch.float64).view(1, 1, 1, 512).expand(1, 1, 482, 512)
    cropped_rows, cropped_cols = border_crop(rows), border_crop(cols)
    assert cropped_rows.shape == (1, 1, 226, 256)
    assert (cropped_rows.min().item(), cropped_rows.max().item()) == (128.0, 353.0)
    assert (cropped_cols.min().item(), cropped_cols.max().item()) == (128.0, 383.0)


def test_errors_outside_the_crop_are_ignored() -> None:
    target = torch.full((1, 4, 482, 512), 0.5)
    prediction = target.clone()
    prediction[:, :, :128] = 0.9  # top border
    prediction[:, :, :, 384:] = 0.1  # right border
    scores = mstpp_metrics(prediction, target)  # default crop=128
    assert scores["mrae"].item() == 0.0 and scores["rmse"].item() == 0.0 and scores["sam"].item() == 0.0
    assert math.isinf(scores["psnr"].item())
    prediction[:, :, 128, 128] = 0.6  # first pixel inside the crop
    inside = mrae(prediction, target)
    assert inside.item() == pytest.approx(0.2 / (226 * 256), rel=1e-9)
    whole = mrae(prediction, target, crop=0).item()
    assert whole > 0.1


def test_crop_larger_than_the_image_is_refused_with_the_fix() -> None:
    small = torch.rand(1, 31, 145, 145) + 0.1
    with pytest.raises(ShapeMismatchError, match=r"145 x 145.*crop=0"):
        mrae(small, small)
    with pytest.raises(ConfigError, match="non-negative"):
        rmse(small, small, crop=-1)


def test_shape_errors_name_both_shapes() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(1, 31, 8, 8\).*\(1, 30, 8, 8\)"):
        rmse(torch.rand(1, 31, 8, 8), torch.rand(1, 30, 8, 8), crop=0)
    with pytest.raises(ShapeMismatchError, match="(B, C, H, W)"):
        rmse(torch.rand(8, 8), torch.rand(8, 8), crop=0)
    with pytest.raises(ConfigError, match="needs camera_matrix"):
        reconstruction_metrics(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4), metrics=["back_projection_mrae"], crop=0)
    with pytest.raises(ConfigError, match="unknown reconstruction metric"):
        reconstruction_metrics(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4), metrics=["psnr", "lpips"], crop=0)
    with pytest.raises(ShapeMismatchError, match=r"\(K, 2\)"):
        back_projection_mrae(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4), torch.ones(3, 31), crop=0)


def test_single_image_without_batch_axis_counts_as_one_image() -> None:
    target = torch.rand(31, 10, 10) + 0.1
    assert mrae(target * 1.2, target, crop=0).shape == (1,)
    assert mrae(target * 1.2, target, crop=0).item() == pytest.approx(0.2, rel=1e-6)


def test_low_precision_inputs_are_scored_in_float64() -> None:
    target = (torch.rand(2, 31, 16, 16) * 0.8 + 0.1).to(torch.bfloat16)
    prediction = (target.float() * 1.05).to(torch.bfloat16)
    values = reconstruction_metrics(prediction, target, metrics=["mrae", "rmse", "psnr", "sam", "ssim"], crop=0)
    expected = reconstruction_metrics(prediction.double(), target.double(), metrics=values.keys(), crop=0)
    for name, per_image in values.items():
        assert per_image.dtype == torch.float64
        torch.testing.assert_close(per_image, expected[name], rtol=0, atol=0)


# --------------------------------------------------------------------------- real data, independent reference
def indian_pines_visible(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 31 Indian Pines bands (400..≈694 nm) scaled to (0, 1], and their centres in nm."""
    cube = np.load(shared_data / "indian_pines" / "Indian_pines_corrected.npy")[:, :, :31]
    with open(shared_data / "indian_pines" / "indian_pines_wavelengths.csv") as handle:
        rows = [row for row in csv.reader(line for line in handle if not line.startswith("#"))][1:]
    centres = np.array([float(row[1]) for row in rows if row[6] == "1"][:31])
    data = np.moveaxis(cube.astype(np.float64), -1, 0)
    return data / data.max(), centres


def ntire_camera(shared_data: Path, wavelengths: np.ndarray) -> np.ndarray:
    """NTIRE 2022 R, G1, B curves linearly interpolated at ``wavelengths``: (3, bands)."""
    table = np.genfromtxt(shared_data / "color" / "ntire2022_RGB_Camera_QE.csv", delimiter=",", names=True)
    names = table.dtype.names
    columns = [names[1], names[2], names[4]]  # R, G1, B
    return np.stack([np.interp(wavelengths, table[names[0]], table[column]) for column in columns])


def test_metrics_on_real_spectra_match_a_numpy_reference(shared_data: Path) -> None:
    target, _ = indian_pines_visible(shared_data)  # (31, 145, 145)
    rng = np.random.default_rng(3)
    prediction = target * (1.0 + 0.1 * rng.standard_normal(target.shape)) + 0.01
    crop = 16
    t = target[:, crop:-crop, crop:-crop]
    p = prediction[:, crop:-crop, crop:-crop]
    expected_mrae = np.mean(np.abs(p - t) / t)
    expected_rmse = np.sqrt(np.mean((p - t) ** 2))
    expected_psnr = 10 * np.log10(255.0**2 / np.mean((np.clip(p, 0, 1) * 255 - np.clip(t, 0, 1) * 255) ** 2))
    cosine = np.sum(p * t, axis=0) / (np.linalg.norm(p, axis=0) * np.linalg.norm(t, axis=0))
    expected_sam = np.mean(np.arccos(np.clip(cosine, -1, 1)))
    prediction_t = torch.from_numpy(prediction).float()[None]
    scores = mstpp_metrics(prediction_t, torch.from_numpy(target).float()[None], crop=crop)
    # float32 inputs, float64 arithmetic: agreement to float32 input rounding
    assert scores["mrae"].item() == pytest.approx(expected_mrae, rel=1e-5)
    assert scores["rmse"].item() == pytest.approx(expected_rmse, rel=1e-5)
    assert scores["psnr"].item() == pytest.approx(expected_psnr, abs=1e-4)
    assert scores["sam"].item() == pytest.approx(expected_sam, rel=1e-4)
    assert 0.05 < expected_mrae < 0.5 and 15 < expected_psnr < 40


def test_back_projection_of_a_scaled_real_cube_through_the_ntire_camera(shared_data: Path) -> None:
    target, wavelengths = indian_pines_visible(shared_data)
    camera = torch.from_numpy(ntire_camera(shared_data, wavelengths))
    assert camera.shape == (3, 31) and float(camera.min()) >= 0
    target_t = torch.from_numpy(target)[None]
    # projection is linear, so a cube 10 % too bright projects to RGB exactly 10 % too bright
    assert back_projection_mrae(target_t * 1.1, target_t, camera, crop=8).item() == pytest.approx(0.1, rel=1e-12)
    # a spectral error that the camera cannot see: add a metamer-like change orthogonal to all 3 curves
    null_space = torch.linalg.svd(camera).Vh[3:]  # (28, 31) rows orthogonal to the camera rows
    invisible = target_t + 0.01 * null_space[0].view(1, 31, 1, 1)
    assert back_projection_mrae(invisible, target_t, camera, crop=8).item() == pytest.approx(0.0, abs=1e-12)
    assert mrae(invisible, target_t, crop=8).item() > 1e-3


# --------------------------------------------------------------------------- torchmetrics accumulation and DDP
def batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for size in (2, 1, 3):
        target = torch.rand(size, 5, 20, 22, generator=generator) * 0.9 + 0.05
        prediction = (target + 0.05 * torch.randn(size, 5, 20, 22, generator=generator)).clamp_min(0.0)
        out.append((prediction, target))
    return out


ALL = ["mrae", "rmse", "psnr", "sam", "ssim", "back_projection_mrae"]
CAMERA = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.1], [0.3, 0.1, 0.0, 0.1, 0.4], [0.0, 0.0, 0.5, 0.5, 0.0]])


def expected_means(data: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    per_image = [reconstruction_metrics(p, t, metrics=ALL, crop=3, camera_matrix=CAMERA) for p, t in data]
    return aggregate({name: torch.cat([values[name] for values in per_image]) for name in ALL})


def test_metric_classes_average_over_images_across_batches() -> None:
    data = batches()
    expected = expected_means(data)
    collection = ReconstructionMetrics(metrics=ALL, crop=3, camera_matrix=CAMERA, prefix="val/")
    singles = {
        "mrae": MRAE(crop=3),
        "rmse": RMSE(crop=3),
        "psnr": PSNR(crop=3),
        "sam": SAM(crop=3),
        "ssim": SSIM(crop=3),
        "back_projection_mrae": BackProjectionMRAE(CAMERA, crop=3),
    }
    for prediction, target in data:
        collection.update(prediction, target)
        for metric in singles.values():
            metric.update(prediction, target)
    result = collection.compute()
    assert set(result) == {f"val/{name}" for name in ALL}
    for name in ALL:
        assert result[f"val/{name}"].item() == pytest.approx(expected[name], rel=1e-12)
        assert singles[name].compute().item() == pytest.approx(expected[name], rel=1e-12)
    # 6 images in batches of 2, 1, 3: the batch-size-weighted mean of batch means is the image mean
    assert int(collection.image_count) == 6


def test_merging_two_metric_states_equals_one_state() -> None:
    data = batches(seed=1)
    single = ReconstructionMetrics(metrics=ALL, crop=3, camera_matrix=CAMERA)
    first = ReconstructionMetrics(metrics=ALL, crop=3, camera_matrix=CAMERA)
    second = ReconstructionMetrics(metrics=ALL, crop=3, camera_matrix=CAMERA)
    for index, (prediction, target) in enumerate(data):
        single.update(prediction, target)
        (first if index % 2 == 0 else second).update(prediction, target)
    first.merge_state(second)
    merged, reference = first.compute(), single.compute()
    for name in ALL:
        assert merged[name].item() == pytest.approx(reference[name].item(), rel=1e-12)
    # the same with the sum reduction DDP applies to every state
    third = PSNR(crop=3)
    fourth = PSNR(crop=3)
    third.update(*data[0])
    fourth.update(*data[1])
    fourth.update(*data[2])
    summed = (third.value_sum + fourth.value_sum) / (third.image_count + fourth.image_count)
    assert summed.item() == pytest.approx(expected_means(data)["psnr"], rel=1e-12)


def test_half_precision_module_casts_keep_the_running_sums_in_float64() -> None:
    """Lightning's "bf16-true" precision calls .to(bfloat16) on the whole module, metrics included."""
    data = batches(seed=3)
    metric = ReconstructionMetrics(metrics=ALL, crop=3, camera_matrix=CAMERA).to(torch.bfloat16)
    single = PSNR(crop=3).to(torch.float16)
    for prediction, target in data:
        metric.update(prediction, target)
        single.update(prediction, target)
    expected = expected_means(data)
    result = metric.compute()
    for name in ALL:
        assert result[name].dtype == torch.float64
        assert result[name].item() == pytest.approx(expected[name], rel=1e-12)
    assert single.compute().item() == pytest.approx(expected["psnr"], rel=1e-12)
    metric.reset()
    assert metric.psnr_sum.dtype == torch.float64 and metric.camera_matrix.dtype == torch.float64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ddp_worker(rank: int, world_size: int, port: int, output: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        metric = ReconstructionMetrics(metrics=ALL, crop=3, camera_matrix=CAMERA)
        for index, (prediction, target) in enumerate(batches(seed=2)):
            if index % world_size == rank:
                metric.update(prediction, target)
        result = {name: value.item() for name, value in metric.compute().items()}
        if rank == 0:
            torch.save(result, output)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes re-import torch: ~30 s on 2 busy cores
def test_ddp_sync_over_two_gloo_processes_equals_one_process(tmp_path: Path) -> None:
    output = str(tmp_path / "ddp_result.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), output), nprocs=2, join=True)
    synced = torch.load(output, weights_only=True)
    expected = expected_means(batches(seed=2))
    for name in ALL:
        assert synced[name] == pytest.approx(expected[name], rel=1e-12)
