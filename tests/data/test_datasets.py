"""Tests of the torch datasets: pixels, patches, scene crops and RGB/HSI pairs."""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hsikit import Cube
from hsikit.data.datasets import (
    PairedDataset,
    PatchDataset,
    PixelDataset,
    SceneCropDataset,
    _memmap_reference,
    apply_dihedral,
    count_classes,
    decode_targets,
    encode_labels,
    read_patch,
)
from hsikit.data.splits import random_split
from hsikit.errors import ConfigError, ShapeMismatchError, SplitError
from hsikit.spectral.normalize import PerBandStandardize


@pytest.fixture(scope="module")
def indian_pines(shared_data: Path) -> tuple[Cube, np.ndarray]:
    """The real scene as a memory map: (200, 145, 145) uint16 view of the (H, W, C) file."""
    folder = shared_data / "indian_pines"
    cube = Cube.from_hwc(np.load(folder / "Indian_pines_corrected.npy", mmap_mode="r"))
    return cube, np.load(folder / "Indian_pines_gt.npy")


@pytest.fixture
def small_memmap_cube(indian_pines: tuple[Cube, np.ndarray], tmp_path: Path) -> tuple[Cube, np.ndarray]:
    """A 40 x 50 window of Indian Pines (30 bands) saved as .npy and opened as a memory map."""
    cube, labels = indian_pines
    np.save(tmp_path / "small.npy", np.ascontiguousarray(cube.hwc()[20:60, 60:110, ::7]))
    return Cube.from_hwc(np.load(tmp_path / "small.npy", mmap_mode="r")), labels[20:60, 60:110].copy()


# ---------------------------------------------------------------------------- labels
def test_label_convention_maps_1_to_k_onto_0_to_k_minus_1() -> None:
    labels = np.array([[0, 1, 2], [16, 3, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(encode_labels(labels), [[-100, 0, 1], [15, 2, -100]])
    np.testing.assert_array_equal(decode_targets(np.array([0, 15])), [1, 16])
    np.testing.assert_array_equal(encode_labels(np.array([0, 2]), label_offset=0, ignore_value=None), [0, 2])
    with pytest.raises(ConfigError, match="label 0 minus label_offset=1 gives a negative class index.*label_offset=0"):
        encode_labels(np.array([0, 1]), ignore_value=None)
    assert count_classes(labels) == 16 and count_classes(np.zeros((2, 2), dtype=np.uint8)) == 0
    assert count_classes(np.array([[0, 2]]), label_offset=0, ignore_value=None) == 3
    with pytest.raises(ConfigError, match="label 0 minus label_offset=1"):
        PixelDataset(np.zeros((2, 3, 3)), np.array([[0, 1, 2]] * 3), ignore_value=None)


# ---------------------------------------------------------------------------- pixels
def test_pixel_dataset_returns_spectra_and_class_indices(indian_pines: tuple[Cube, np.ndarray]) -> None:
    cube, labels = indian_pines
    split = random_split(labels, train=0.1, seed=0)
    dataset = PixelDataset(cube, labels, split=split, part="train")
    assert len(dataset) == len(split.train) and dataset.num_classes == 16
    rows, cols = split.rows_cols("train")
    for i in (0, 17, len(dataset) - 1):
        spectrum, target = dataset[i]
        assert spectrum.shape == (200,) and spectrum.dtype == torch.float32 and target.dtype == torch.int64
        np.testing.assert_array_equal(spectrum.numpy(), cube.data[:, rows[i], cols[i]].astype(np.float32))
        assert int(target) == labels[rows[i], cols[i]] - 1
    everything = PixelDataset(cube, labels)
    assert len(everything) == 10249
    assert sorted(np.unique(everything.targets).tolist()) == list(range(16))


def test_pixel_dataset_applies_the_normalizer(indian_pines: tuple[Cube, np.ndarray]) -> None:
    cube, labels = indian_pines
    split = random_split(labels, train=0.1, seed=0)
    normalizer = PerBandStandardize().fit(cube, mask=split.mask("train"))
    dataset = PixelDataset(cube, labels, split=split, part="test", normalizer=normalizer)
    row, col = dataset.rows[5], dataset.cols[5]
    expected = (cube.data[:, row, col].astype(np.float64) - normalizer.shift) / normalizer.scale
    np.testing.assert_allclose(dataset[5][0].numpy(), expected, rtol=1e-6, atol=1e-6)


def test_pixel_dataset_drops_nodata_and_checks_inputs(rng: np.random.Generator) -> None:
    data = rng.random((4, 6, 5)).astype(np.float32)
    data[:, 2, 3] = -1.0
    labels = np.ones((6, 5), dtype=np.int32)
    dataset = PixelDataset(Cube(data, nodata=-1.0), labels)
    assert len(dataset) == 29 and not np.any((dataset.rows == 2) & (dataset.cols == 3))
    with pytest.raises(ShapeMismatchError, match=r"labels of shape \(6, 4\) do not match the cube's spatial size"):
        PixelDataset(data, labels[:, :4])
    split = random_split(np.ones((7, 5), dtype=int), train=3)
    with pytest.raises(ShapeMismatchError, match=r"split was made for a \(7, 5\) image, the cube is 6x5"):
        PixelDataset(data, labels, split=split)
    holes = labels.copy()
    holes[0, 0] = 0
    with pytest.raises(SplitError, match="1 selected pixel\\(s\\) are unlabelled"):
        PixelDataset(data, holes, indices=[0, 1, 2])


# ---------------------------------------------------------------------------- patches
@pytest.mark.parametrize(("padding", "numpy_mode"), [("reflect", "reflect"), ("edge", "edge"), ("zero", "constant")])
def test_patches_equal_crops_of_the_padded_image(
    indian_pines: tuple[Cube, np.ndarray], padding: str, numpy_mode: str
) -> None:
    cube, labels = indian_pines
    patch_size = 9
    half = patch_size // 2
    padded = np.pad(np.asarray(cube.data, dtype=np.float32), ((0, 0), (half, half), (half, half)), mode=numpy_mode)
    # corners, edges and an interior pixel of the real scene
    pixels = [(0, 0), (0, 144), (144, 0), (144, 144), (2, 70), (70, 143), (80, 80)]
    indices = [row * 145 + col for row, col in pixels]
    dataset = PatchDataset(cube, None, patch_size, indices=indices, padding=padding)  # type: ignore[arg-type]
    for i, (row, col) in enumerate(pixels):
        patch, target = dataset[i]
        assert patch.shape == (200, 9, 9) and int(target) == -100
        np.testing.assert_array_equal(patch.numpy(), padded[:, row : row + patch_size, col : col + patch_size])
        np.testing.assert_array_equal(patch[:, half, half].numpy(), cube.data[:, row, col].astype(np.float32))
    labelled = PatchDataset(cube, labels, 5, split=random_split(labels, 10, seed=1))
    assert len(labelled) == 160 and labelled[0][0].shape == (200, 5, 5)


def test_patch_dataset_requires_an_odd_size(indian_pines: tuple[Cube, np.ndarray]) -> None:
    cube, labels = indian_pines
    with pytest.raises(ConfigError, match="patch_size=8 is even.*odd size such as 7 or 9"):
        PatchDataset(cube, labels, patch_size=8)
    with pytest.raises(ConfigError, match="padding must be one of"):
        PatchDataset(cube, labels, patch_size=7, padding="wrap")  # type: ignore[arg-type]


def test_zero_padding_is_applied_after_normalisation(rng: np.random.Generator) -> None:
    data = rng.normal(50.0, 5.0, size=(3, 10, 10))
    normalizer = PerBandStandardize().fit(data)
    patch = read_patch(data, 0, 0, 5, "zero", normalizer)
    np.testing.assert_array_equal(patch[:, :2, :], 0.0)
    np.testing.assert_allclose(patch[:, 2:, 2:], normalizer.transform(data[:, :3, :3]).astype(np.float32), rtol=1e-6)


# ---------------------------------------------------------------------------- memory maps and workers
def test_memory_mapped_cube_is_read_in_place(indian_pines: tuple[Cube, np.ndarray]) -> None:
    cube, labels = indian_pines
    split = random_split(labels, train=0.3, seed=0)
    tracemalloc.start()
    try:
        dataset = PatchDataset(cube, labels, 7, split=split)
        checksum = sum(float(dataset[i][0].sum()) for i in range(0, len(dataset), 50))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checksum > 0
    assert peak < cube.data.nbytes / 8, f"{peak} bytes allocated for an {cube.data.nbytes}-byte cube"
    assert _memmap_reference(dataset.data) is not None
    payload = pickle.dumps(dataset)
    assert len(payload) < cube.data.nbytes / 20  # pickled as a file reference, not as pixels
    copy = pickle.loads(payload)
    assert _memmap_reference(copy.data) is not None
    for i in (0, 99, len(dataset) - 1):
        torch.testing.assert_close(copy[i][0], dataset[i][0], rtol=0, atol=0)


def test_dataloader_with_two_workers(small_memmap_cube: tuple[Cube, np.ndarray]) -> None:
    cube, labels = small_memmap_cube
    dataset = PatchDataset(cube, labels, 5, split=random_split(labels, train=0.5, seed=0))
    serial = torch.cat([dataset[i][0][None] for i in range(len(dataset))])
    batches = list(DataLoader(dataset, batch_size=32, num_workers=2))
    torch.testing.assert_close(torch.cat([x for x, _ in batches]), serial, rtol=0, atol=0)
    np.testing.assert_array_equal(torch.cat([y for _, y in batches]).numpy(), dataset.targets)
    crops = SceneCropDataset(cube, 16, labels=labels, samples_per_epoch=12, seed=3, augment=True)
    loaded = list(DataLoader(crops, batch_size=4, num_workers=2))
    torch.testing.assert_close(torch.cat([x for x, _ in loaded]), torch.stack([crops[i][0] for i in range(12)]))


def test_dataloader_workers_started_by_spawn(small_memmap_cube: tuple[Cube, np.ndarray]) -> None:
    # spawn pickles the dataset into fresh processes: the memory map must travel as a reference
    cube, labels = small_memmap_cube
    dataset = PixelDataset(cube, labels)
    loader = DataLoader(dataset, batch_size=256, num_workers=2, multiprocessing_context="spawn")
    spectra = torch.cat([x for x, _ in loader])
    np.testing.assert_array_equal(spectra.numpy(), cube.data[:, dataset.rows, dataset.cols].T.astype(np.float32))


# ---------------------------------------------------------------------------- scene crops
def test_scene_crops_are_deterministic_per_seed_epoch_and_index(indian_pines: tuple[Cube, np.ndarray]) -> None:
    cube, _ = indian_pines
    dataset = SceneCropDataset(cube, 32, samples_per_epoch=10, seed=5)
    assert len(SceneCropDataset(cube, 32)) == 16  # 4 x 4 non-overlapping crops fit by default
    first = dataset[3]
    torch.testing.assert_close(dataset[3], first, rtol=0, atol=0)
    torch.testing.assert_close(SceneCropDataset(cube, 32, samples_per_epoch=10, seed=5)[3], first, rtol=0, atol=0)
    plan = dataset.plan(3)
    expected = cube.data[:, plan.row : plan.row + 32, plan.col : plan.col + 32].astype(np.float32)
    np.testing.assert_array_equal(first.numpy(), expected)
    dataset.set_epoch(1)
    assert dataset.plan(3) != plan
    dataset.set_epoch(0)
    assert dataset.plan(3) == plan
    assert SceneCropDataset(cube, 32, samples_per_epoch=10, seed=6).plan(3) != plan
    with pytest.raises(IndexError):
        dataset[10]


def test_scene_crop_labels_follow_the_augmentation(indian_pines: tuple[Cube, np.ndarray]) -> None:
    _, labels = indian_pines
    # band 0 carries the label value: after any flip/rotation it must still equal target + 1
    data = np.stack([labels.astype(np.float32), np.arange(145 * 145, dtype=np.float32).reshape(145, 145)])
    dataset = SceneCropDataset(Cube(data), 24, labels=labels, samples_per_epoch=40, seed=0, augment=True)
    transforms = set()
    for i in range(len(dataset)):
        crop, target = dataset[i]
        plan = dataset.plan(i)
        transforms.add((plan.rotations, plan.flip))
        labelled = target.numpy() >= 0
        np.testing.assert_array_equal(crop[0].numpy()[labelled], target.numpy()[labelled] + 1)
        assert np.all(crop[0].numpy()[~labelled] == 0) and np.all(target.numpy()[~labelled] == -100)
        raw = data[:, plan.row : plan.row + 24, plan.col : plan.col + 24]
        np.testing.assert_array_equal(crop.numpy(), apply_dihedral(raw, plan.rotations, plan.flip))
    assert len(transforms) >= 6


def test_scene_crops_from_several_cubes(rng: np.random.Generator) -> None:
    big = rng.random((5, 60, 80)).astype(np.float32)
    small = rng.random((5, 20, 20)).astype(np.float32) + 10.0
    dataset = SceneCropDataset([big, Cube(small)], 16, samples_per_epoch=200, seed=0)
    sources = [dataset.plan(i).source for i in range(200)]
    # positions: 45 * 65 in the big cube, 5 * 5 in the small one
    assert 0 < sources.count(1) < 12
    small_index = sources.index(1)
    assert float(dataset[small_index].min()) >= 10.0
    with pytest.raises(ShapeMismatchError, match="crop_size=24 does not fit cube 1 of 20x20"):
        SceneCropDataset([big, small], 24)
    with pytest.raises(ShapeMismatchError, match="different band counts \\[5, 4\\]"):
        SceneCropDataset([big, small[:4]], 8)
    with pytest.raises(ShapeMismatchError, match="1 label maps for 2 cubes"):
        SceneCropDataset([big, small], 8, labels=[np.ones((60, 80), dtype=int)])


def test_dihedral_transforms_are_the_eight_symmetries() -> None:
    square = np.arange(9).reshape(1, 3, 3)
    results = {apply_dihedral(square, k, f).tobytes() for k in range(4) for f in (False, True)}
    assert len(results) == 8
    np.testing.assert_array_equal(apply_dihedral(square, 1, False)[0], [[2, 5, 8], [1, 4, 7], [0, 3, 6]])
    np.testing.assert_array_equal(apply_dihedral(square, 0, True)[0], [[2, 1, 0], [5, 4, 3], [8, 7, 6]])


# ---------------------------------------------------------------------------- paired RGB / HSI
def test_paired_crops_are_aligned_and_augmented_together(indian_pines: tuple[Cube, np.ndarray]) -> None:
    cube, _ = indian_pines
    hsi = cube[:, :100, :120]
    rgb = np.asarray(cube.data[[50, 30, 10], :100, :120])  # three HSI bands stand in for R, G, B
    dataset = PairedDataset(rgb, hsi, crop_size=32, samples_per_epoch=16, seed=1, augment=True)
    assert len(dataset) == 16
    for i in range(len(dataset)):
        rgb_crop, hsi_crop = dataset[i]
        assert rgb_crop.shape == (3, 32, 32) and hsi_crop.shape == (200, 32, 32)
        torch.testing.assert_close(rgb_crop, hsi_crop[[50, 30, 10]], rtol=0, atol=0)
    whole = PairedDataset([rgb, rgb], [hsi, hsi])
    assert len(whole) == 2 and whole[1][1].shape == (200, 100, 120)


def test_paired_dataset_rejects_mismatched_shapes(indian_pines: tuple[Cube, np.ndarray]) -> None:
    cube, _ = indian_pines
    hsi = cube[:, :50, :60]
    rgb = np.asarray(cube.data[:3, :50, :60])
    with pytest.raises(ShapeMismatchError, match=r"rgb \(3, 50, 59\) and hsi \(200, 50, 60\) differ in spatial size"):
        PairedDataset(rgb[:, :, :59], hsi)
    with pytest.raises(ShapeMismatchError, match=r"rgb 0 has shape \(50, 60, 3\), not \(3, H, W\).*np.moveaxis"):
        PairedDataset(np.moveaxis(rgb, 0, -1), hsi)
    with pytest.raises(ShapeMismatchError, match="2 RGB images for 1 HSI images"):
        PairedDataset([rgb, rgb], [hsi])
    assert PairedDataset(np.asarray(cube.data[:4, :50, :60]), hsi, rgb_channels=None)[0][0].shape == (4, 50, 60)
