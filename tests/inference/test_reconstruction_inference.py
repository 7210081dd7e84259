"""RGB → hyperspectral inference: self-ensemble, input preparation, v7.3 output in the ARAD layout, submission."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.inference.ensemble import dihedral_ensemble
from hsikit.inference.reconstruction import (
    ENSEMBLE_TRANSFORMS,
    InputPreparation,
    apply_flip_transpose,
    invert_flip_transpose,
    make_submission,
    prepare_rgb,
    reconstruct,
    save_reconstruction,
    self_ensemble_x8,
)
from hsikit.io import open_cube

WAVELENGTHS = np.arange(400.0, 701.0, 10.0)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def spatial_model(seed: int = 0) -> torch.nn.Module:
    """RGB (3) -> 31 bands through two 3x3 convolutions: not equivariant to flips or transposes."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 31, 3, padding=1)
    ).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.5)
    return model.eval()


# ---------------------------------------------------------------------------- self-ensemble
def test_the_eight_transforms_are_distinct_and_inverted(rng: np.random.Generator) -> None:
    image = torch.from_numpy(rng.random((1, 2, 5, 5)))  # square: every transform keeps the shape
    variants = [apply_flip_transpose(image, *transform) for transform in ENSEMBLE_TRANSFORMS]
    assert len(ENSEMBLE_TRANSFORMS) == len(set(ENSEMBLE_TRANSFORMS)) == 8
    for first in range(8):
        for second in range(first + 1, 8):
            assert not torch.equal(variants[first], variants[second])
    rectangle = torch.from_numpy(rng.random((1, 2, 4, 7)))
    for transform in ENSEMBLE_TRANSFORMS:
        moved = apply_flip_transpose(rectangle, *transform)
        assert moved.shape[-2:] == ((7, 4) if transform[2] else (4, 7))
        torch.testing.assert_close(invert_flip_transpose(moved, *transform), rectangle, rtol=0, atol=0)
    # flip W then transpose: element (r, c) of the result is element (c, W-1-r) of the input
    flipped_transposed = apply_flip_transpose(rectangle, True, False, True)
    assert flipped_transposed[0, 1, 2, 3] == rectangle[0, 1, 3, 7 - 1 - 2]


def test_mean_ensemble_equals_the_dihedral_mean_and_differs_from_one_pass(rng: np.random.Generator) -> None:
    model = spatial_model()
    batch = torch.from_numpy(rng.random((2, 3, 9, 12)))
    with torch.no_grad():
        mean = self_ensemble_x8(model, batch, "mean")
        plain = model(batch)
        # {flips, transpose} and {rotations, flip} generate the same group of 8 symmetries
        torch.testing.assert_close(mean, dihedral_ensemble(model, batch), rtol=1e-12, atol=1e-12)
    assert mean.shape == plain.shape == (2, 31, 9, 12)
    assert (mean - plain).abs().max() > 1e-3
    with torch.no_grad():
        torch.testing.assert_close(self_ensemble_x8(model, batch, "none"), plain)


def test_median_ensemble_is_the_elementwise_median_of_the_eight_outputs(rng: np.random.Generator) -> None:
    model = spatial_model(seed=3)
    batch = rng.random((1, 3, 6, 10))
    outputs = []
    for flip_w, flip_h, transpose in ENSEMBLE_TRANSFORMS:  # by hand, with numpy
        x = batch[..., ::-1] if flip_w else batch
        x = x[..., ::-1, :] if flip_h else x
        x = np.swapaxes(x, -2, -1) if transpose else x
        with torch.no_grad():
            y = model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        y = np.swapaxes(y, -2, -1) if transpose else y
        y = y[..., ::-1, :] if flip_h else y
        outputs.append(y[..., ::-1] if flip_w else y)
    with torch.no_grad():
        median = self_ensemble_x8(model, torch.from_numpy(batch), "median").numpy()
        mean = self_ensemble_x8(model, torch.from_numpy(batch), "mean").numpy()
    np.testing.assert_allclose(median, np.median(np.stack(outputs), axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, np.mean(np.stack(outputs), axis=0), rtol=1e-12, atol=1e-12)
    assert np.abs(median - mean).max() > 1e-4


def test_ensemble_refuses_unknown_modes_and_size_changing_models() -> None:
    with pytest.raises(ConfigError, match="ensemble must be one of none, mean, median"):
        self_ensemble_x8(torch.nn.Identity(), torch.zeros(1, 3, 4, 4), "max")  # type: ignore[arg-type]
    with pytest.raises(ShapeMismatchError, match="keeps the batch and spatial size"):
        self_ensemble_x8(torch.nn.AvgPool2d(2), torch.zeros(1, 3, 4, 6), "mean")


# ---------------------------------------------------------------------------- input and inference
def test_prepare_rgb_is_the_global_min_max_of_the_whole_image() -> None:
    image = np.array([[[10, 20], [30, 40]], [[50, 60], [70, 80]], [[90, 100], [110, 250]]], dtype=np.uint8)
    prepared = prepare_rgb(image)
    np.testing.assert_allclose(prepared, (image.astype(np.float32) - 10.0) / 240.0, rtol=1e-6)
    assert prepared.dtype == np.float32
    bgr = prepare_rgb(image, InputPreparation("div255", "BGR"))
    np.testing.assert_allclose(bgr, image[::-1].astype(np.float32) / 255.0, rtol=1e-6)
    with pytest.raises(ShapeMismatchError, match=r"\(3, H, W\)"):
        prepare_rgb(np.moveaxis(image, 0, -1).reshape(2, 2, 3)[:, :, :2])


def test_tiled_inference_equals_the_full_frame_for_a_local_model(rng: np.random.Generator) -> None:
    model = spatial_model()  # receptive-field radius 2 px: tiles with a wide enough margin agree exactly
    rgb = rng.random((3, 40, 52)).astype(np.float32)
    full = reconstruct(model, rgb)
    tiled = reconstruct(model, rgb, tile=24, overlap=12)
    assert full.shape == tiled.shape == (31, 40, 52)
    # away from the image border (where the full frame sees zero padding and the tiles a reflected image)
    np.testing.assert_allclose(tiled[:, 2:-2, 2:-2], full[:, 2:-2, 2:-2], rtol=1e-5, atol=1e-5)
    assert np.abs(tiled[:, 0] - full[:, 0]).max() > 1e-3
    with torch.no_grad():
        expected = model(torch.from_numpy(rgb.astype(np.float64))[None])[0].numpy()
    np.testing.assert_allclose(full, expected, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- saving
def test_v73_mat_reads_back_identically_with_h5py_in_the_arad_layout(rng: np.random.Generator, tmp_path: Path) -> None:
    cube = rng.uniform(-0.2, 1.3, size=(31, 6, 9)).astype(np.float32)  # (C, H, W), some values outside [0, 1]
    path = save_reconstruction(cube, tmp_path / "ARAD_1K_0951.mat", wavelengths=WAVELENGTHS)
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    clamped = np.clip(cube, 0.0, 1.0)
    with h5py.File(path, "r") as handle:
        stored = handle["cube"]
        # MATLAB shows H x W x C = 6 x 9 x 31; column-major storage makes h5py see (C, W, H)
        assert stored.shape == (31, 9, 6)
        assert stored.dtype == np.float32
        assert stored.attrs["MATLAB_class"] == b"single"
        raw = np.array(stored)
        bands = np.array(handle["bands"])
    np.testing.assert_array_equal(raw.T, np.moveaxis(clamped, 0, -1))  # np.array(f['cube']).T is (H, W, C)
    np.testing.assert_array_equal(np.swapaxes(raw, 1, 2), clamped)  # MST++'s reading: (C, H, W)
    np.testing.assert_array_equal(bands.T.ravel(), WAVELENGTHS)
    assert clamped.min() == 0.0 and clamped.max() == 1.0  # the prediction was clamped, as the protocol saves it


def test_geotiff_and_envi_outputs_carry_the_wavelengths(rng: np.random.Generator, tmp_path: Path) -> None:
    cube = rng.random((31, 5, 7)).astype(np.float32)
    for name in ("cube.tif", "cube.hdr"):
        save_reconstruction(cube, tmp_path / name, wavelengths=WAVELENGTHS)
        back = open_cube(tmp_path / name)
        np.testing.assert_allclose(back.wavelengths, WAVELENGTHS)
        np.testing.assert_array_equal(back.data, cube)
    with pytest.raises(ConfigError, match="cannot tell the output format"):
        save_reconstruction(cube, tmp_path / "cube.xyz")


# ---------------------------------------------------------------------------- submission
def test_submission_crops_renames_and_zips_the_predictions(rng: np.random.Generator, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions"
    cubes = {}
    for name in ("ARAD_1K_0951", "ARAD_1K_0952"):
        cubes[name] = rng.random((31, 20, 24)).astype(np.float32)
        save_reconstruction(cubes[name], predictions / f"{name}.mat", wavelengths=WAVELENGTHS)
    result = make_submission(predictions, tmp_path / "submission.zip", crop=4)
    assert result.members == ["ARAD_1K_0951_crop.mat", "ARAD_1K_0952_crop.mat"]
    assert not result.over_limit and result.size_bytes == (tmp_path / "submission.zip").stat().st_size
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(tmp_path / "submission.zip") as archive:
        assert sorted(archive.namelist()) == result.members
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
        archive.extractall(unpacked)
    for name, cube in cubes.items():
        with h5py.File(unpacked / f"{name}_crop.mat", "r") as handle:
            back = np.array(handle["cube"]).T  # (H, W, C)
            assert np.array(handle["bands"]).size == 31
        np.testing.assert_array_equal(back, np.moveaxis(cube[:, 4:16, 4:20], 0, -1))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the temporary folder and partial zip are gone


def test_submission_warns_over_the_size_limit_and_refuses_too_small_cubes(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    predictions = tmp_path / "predictions"
    save_reconstruction(rng.random((31, 20, 24)).astype(np.float32), predictions / "ARAD_1K_0951.mat")
    with pytest.warns(UserWarning, match="over the 0 MB upload limit"):
        result = make_submission(predictions, tmp_path / "a.zip", crop=2, size_limit_bytes=100)
    assert result.over_limit
    with pytest.raises(ShapeMismatchError, match="ARAD_1K_0951.mat.*crop of 10 px leaves nothing"):
        make_submission(predictions, tmp_path / "b.zip", crop=10)
    assert not (tmp_path / "b.zip").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no <name>.mat predictions"):
        make_submission(empty, tmp_path / "c.zip")


def test_rgb_image_files_are_read_in_rgb_order(tmp_path: Path) -> None:
    from hsikit.inference.reconstruction import read_rgb_image

    pixels = np.zeros((4, 5, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 200, 100, 30
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    image = read_rgb_image(tmp_path / "photo.png")
    assert image.shape == (3, 4, 5)
    assert [int(image[c, 0, 0]) for c in range(3)] == [200, 100, 30]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepared = prepare_rgb(image)
    assert prepared.max() == 1.0 and prepared.min() == 0.0
