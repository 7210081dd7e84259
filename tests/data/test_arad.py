"""Tests of the ARAD-1K layout, split lists and paired dataset on a tiny generated ARAD tree."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from hsikit.data.arad import (
    ARADDataset,
    augment_patch,
    grid_starts,
    patches_per_image,
    read_spectra,
    spectra_shape,
    split_names,
    write_split_files,
)
from hsikit.errors import ConfigError, DataFileNotFoundError, ShapeMismatchError, SplitError

HEIGHT, WIDTH, BANDS = 40, 48, 31
TRAIN = ["fake_0001", "fake_0002", "fake_0003"]
VALID = ["fake_0901"]
# RGB of the fake scenes: a red-dominated image, so the channel order is visible.
CHANNEL_LEVELS = (190.0, 110.0, 40.0)


def write_matlab_v73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Write variables as MATLAB 7.3 does: HDF5 after a 512-byte user block holding the MATLAB
    header, each array stored column-major (h5py sees the axes reversed) with a MATLAB_class."""
    classes = {np.dtype(np.float32): "single", np.dtype(np.float64): "double"}
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, array in variables.items():
            dataset = handle.create_dataset(name, data=np.ascontiguousarray(array.T))
            dataset.attrs["MATLAB_class"] = np.bytes_(classes[array.dtype])
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  3 10:00:00 2022 HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


def make_scene(
    root: Path, name: str, seed: int, height: int = HEIGHT, width: int = WIDTH, bands: int = BANDS
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (bands, H, W) float32 cube in Train_Spec (v7.3, key cube = H x W x C) and an RGB JPEG.

    Returns the cube (C, H, W) and the RGB array written before JPEG compression (H, W, 3) uint8.
    """
    rng = np.random.default_rng(seed)
    cube = rng.uniform(0.01, 1.0, size=(bands, height, width)).astype(np.float32)
    (root / "Train_Spec").mkdir(parents=True, exist_ok=True)
    (root / "Train_RGB").mkdir(parents=True, exist_ok=True)
    write_matlab_v73(
        root / "Train_Spec" / f"{name}.mat",
        {
            "cube": np.ascontiguousarray(np.moveaxis(cube, 0, -1)),  # MATLAB's H x W x C
            "bands": np.arange(400.0, 400.0 + 10 * bands, 10.0).reshape(1, -1),
            "norm_factor": np.array([[4095.0]]),
        },
    )
    yy, xx = np.mgrid[0:height, 0:width]
    smooth = 25.0 * np.sin(yy / 6.0 + seed) * np.cos(xx / 7.0)
    rgb = np.stack([level + smooth for level in CHANNEL_LEVELS], axis=-1)
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(root / "Train_RGB" / f"{name}.jpg", quality=95)
    return cube, rgb


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("arad")
    cubes, rgbs = {}, {}
    for seed, name in enumerate(TRAIN + VALID):
        cubes[name], rgbs[name] = make_scene(root, name, seed)
    (root / "split_txt").mkdir()
    (root / "split_txt" / "train_list.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "split_txt" / "valid_list.txt").write_text("\n".join(VALID) + "\n")
    return root, cubes, rgbs


def decoded_minmax(root: Path, name: str) -> np.ndarray:
    """The JPEG decoded independently, channels first, normalised by its global min and max (MST++ §1.2)."""
    rgb = np.asarray(Image.open(root / "Train_RGB" / f"{name}.jpg").convert("RGB")).astype(np.float32)
    rgb = np.moveaxis(rgb, -1, 0)
    return (rgb - rgb.min()) / (rgb.max() - rgb.min())


# ---------------------------------------------------------------------------- facts and split lists
def test_official_split_and_patch_count_facts() -> None:
    train, valid = split_names(None, "train"), split_names(None, "valid")
    assert len(train) == 897 and len(valid) == 50
    assert train[0] == "ARAD_1K_0001" and train[-1] == "ARAD_1K_0900"
    assert {"ARAD_1K_0314", "ARAD_1K_0340", "ARAD_1K_0531"}.isdisjoint(train)
    assert valid == [f"ARAD_1K_{n:04d}" for n in range(901, 951)]
    # (512 - 128)//8 + 1 = 49 columns, (482 - 128)//8 + 1 = 45 rows
    assert grid_starts(512, 128, 8).size == 49 and grid_starts(482, 128, 8).size == 45
    assert patches_per_image() == 2205
    assert len(train) * patches_per_image() == 1_977_885


def test_split_files_are_checked_against_the_facts(tmp_path: Path) -> None:
    train_file, valid_file = write_split_files(tmp_path)
    assert train_file.read_text().splitlines() == split_names(None, "train")
    assert split_names(tmp_path, "valid") == split_names(None, "valid")
    assert write_split_files(tmp_path) == (train_file, valid_file)  # same content: rewriting is harmless

    shipped = split_names(None, "train")
    shipped.remove("ARAD_1K_0007")
    train_file.write_text("\n".join(shipped + ["ARAD_1K_0314"]) + "\n")
    with pytest.raises(SplitError, match=r"missing \['ARAD_1K_0007'\].*extra \['ARAD_1K_0314'\]"):
        split_names(tmp_path, "train")
    assert len(split_names(tmp_path, "train", check_split=False)) == 897
    with pytest.raises(SplitError, match="force=True"):
        write_split_files(tmp_path)
    write_split_files(tmp_path, force=True)
    assert split_names(tmp_path, "train") == split_names(None, "train")


def test_duplicate_names_in_a_list_are_refused(tmp_path: Path) -> None:
    (tmp_path / "split_txt").mkdir()
    (tmp_path / "split_txt" / "train_list.txt").write_text("a\nb.mat\na\n")
    with pytest.raises(SplitError, match=r"more than once: \['a'\]"):
        split_names(tmp_path, "train")


# ---------------------------------------------------------------------------- reading
def test_v73_cube_is_read_as_bands_height_width(tree) -> None:
    root, cubes, _ = tree
    path = root / "Train_Spec" / "fake_0001.mat"
    with h5py.File(path, "r") as handle:  # what h5py shows: (31, W, H), like (31, 512, 482) for ARAD
        assert handle["cube"].shape == (BANDS, WIDTH, HEIGHT)
    data = read_spectra(path)
    assert data.shape == (BANDS, HEIGHT, WIDTH) and data.dtype == np.float32
    np.testing.assert_array_equal(data, cubes["fake_0001"])
    assert spectra_shape(path) == (BANDS, HEIGHT, WIDTH)


def test_full_size_arad_scene(tmp_path: Path) -> None:
    """A 482 x 512 scene: h5py shows (31, 512, 482), hsikit reads (31, 482, 512), 2205 grid patches."""
    cube, _ = make_scene(tmp_path, "ARAD_1K_0901", 11, height=482, width=512)
    path = tmp_path / "Train_Spec" / "ARAD_1K_0901.mat"
    with h5py.File(path, "r") as handle:
        assert handle["cube"].shape == (31, 512, 482)
    dataset = ARADDataset(tmp_path, names=["ARAD_1K_0901"], patch_size=128, stride=8, augment=False)
    assert dataset.sizes == [(31, 482, 512)] and len(dataset) == 2205
    rgb, patch = dataset[2204]  # last patch: row 44 * 8 = 352, column 48 * 8 = 384
    assert rgb.shape == (3, 128, 128)
    np.testing.assert_array_equal(patch.numpy(), cube[:, 352:480, 384:512])
    _, full = ARADDataset(tmp_path, "valid", names=["ARAD_1K_0901"])[0]
    assert full.shape == (31, 482, 512)


def test_grid_items_match_hand_indexing(tree) -> None:
    root, cubes, _ = tree
    dataset = ARADDataset(root, "train", patch_size=16, stride=8, augment=False)
    rows, cols = (HEIGHT - 16) // 8 + 1, (WIDTH - 16) // 8 + 1
    per_image = rows * cols
    assert per_image == patches_per_image(HEIGHT, WIDTH, 16, 8) == 20
    assert len(dataset) == len(TRAIN) * per_image
    for index in (0, 7, per_image - 1, per_image, 2 * per_image + 13, len(dataset) - 1):
        image, position = divmod(index, per_image)
        row, col = position // cols * 8, position % cols * 8
        rgb, cube = dataset[index]
        name = TRAIN[image]
        assert rgb.dtype == torch.float32 and cube.dtype == torch.float32
        np.testing.assert_array_equal(cube.numpy(), cubes[name][:, row : row + 16, col : col + 16])
        np.testing.assert_array_equal(rgb.numpy(), decoded_minmax(root, name)[:, row : row + 16, col : col + 16])
    with pytest.raises(IndexError):
        dataset.locate(len(dataset))


def test_rgb_order_and_normalisations(tree) -> None:
    root, _, rgbs = tree
    rgb, _ = ARADDataset(root, "valid")[0]
    assert rgb.shape == (3, HEIGHT, WIDTH)
    assert float(rgb.min()) == 0.0 and float(rgb.max()) == 1.0
    # channel 0 is red (the brightest level written), channel 2 blue
    means = rgb.mean(dim=(1, 2))
    assert means[0] > means[1] > means[2]
    written = np.moveaxis(rgbs["fake_0901"], -1, 0).astype(np.float32)
    by_hand = (written - written.min()) / (written.max() - written.min())
    assert np.abs(rgb.numpy() - by_hand).mean() < 0.01  # JPEG at quality 95 of the written image

    bgr, _ = ARADDataset(root, "valid", bgr2rgb=False)[0]
    np.testing.assert_array_equal(bgr.numpy(), rgb.numpy()[::-1])
    div255, _ = ARADDataset(root, "valid", rgb_norm="div255")[0]
    decoded = np.moveaxis(np.asarray(Image.open(root / "Train_RGB" / "fake_0901.jpg").convert("RGB")), -1, 0)
    np.testing.assert_allclose(div255.numpy(), decoded.astype(np.float32) / 255.0, rtol=0, atol=1e-7)


def test_validation_split_gives_full_frames_without_augmentation(tree) -> None:
    root, cubes, _ = tree
    dataset = ARADDataset(root, "valid")
    assert dataset.patch_size is None and not dataset.augment and len(dataset) == 1
    rgb, cube = dataset[0]
    assert rgb.shape == (3, HEIGHT, WIDTH) and cube.shape == (BANDS, HEIGHT, WIDTH)
    np.testing.assert_array_equal(cube.numpy(), cubes["fake_0901"])
    np.testing.assert_array_equal(rgb.numpy(), decoded_minmax(root, "fake_0901"))


# ---------------------------------------------------------------------------- augmentation
def test_augmentation_is_deterministic_and_shared_by_rgb_and_cube(tree) -> None:
    root, _, _ = tree
    plain = ARADDataset(root, "train", patch_size=16, augment=False)
    augmented = ARADDataset(root, "train", patch_size=16, seed=3)
    assert augmented.augment  # training patches are augmented by default
    again = ARADDataset(root, "train", patch_size=16, seed=3, memory_mode="lazy")
    seen = set()
    for index in range(len(augmented)):
        location = augmented.locate(index)
        seen.add((location.rotations, location.flip_w, location.flip_h))
        rgb, cube = augmented[index]
        base_rgb, base_cube = plain[index]
        expected_rgb = augment_patch(base_rgb.numpy(), location.rotations, location.flip_w, location.flip_h)
        expected_cube = augment_patch(base_cube.numpy(), location.rotations, location.flip_w, location.flip_h)
        np.testing.assert_array_equal(rgb.numpy(), expected_rgb)
        np.testing.assert_array_equal(cube.numpy(), expected_cube)
        if index % 9 == 0:  # same seed and index: the same sample, in another instance and mode
            other_rgb, other_cube = again[index]
            assert torch.equal(other_rgb, rgb) and torch.equal(other_cube, cube)
    assert len(seen) == 16  # every rotation x flipW x flipH combination is drawn
    before = [augmented.locate(i) for i in range(20)]
    augmented.set_epoch(1)
    assert [augmented.locate(i) for i in range(20)] != before


def test_mstpp_augmentation_order() -> None:
    patch = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    # MST++: rotate (axes H, W) first, then reverse W, then reverse H
    expected = np.rot90(patch, 1, axes=(1, 2))[:, :, ::-1][:, ::-1, :]
    np.testing.assert_array_equal(augment_patch(patch, 1, True, True), expected)
    legacy = np.rot90(patch[:, :, ::-1], 3, axes=(1, 2))
    np.testing.assert_array_equal(augment_patch(patch, 3, True, False, mode="legacy"), legacy)


def test_random_crops_are_deterministic_and_inside_the_image(tree) -> None:
    root, cubes, _ = tree
    dataset = ARADDataset(root, "train", patch_size=16, sampling="random", samples_per_epoch=30, augment=False, seed=5)
    assert len(dataset) == 30
    locations = [dataset.locate(i) for i in range(30)]
    assert locations == [dataset.locate(i) for i in range(30)]
    assert len({(loc.row, loc.col) for loc in locations}) > 15  # off the stride-8 grid too
    for index in (0, 11, 29):
        location = locations[index]
        assert 0 <= location.row <= HEIGHT - 16 and 0 <= location.col <= WIDTH - 16
        _, cube = dataset[index]
        expected = cubes[location.name][:, location.row : location.row + 16, location.col : location.col + 16]
        np.testing.assert_array_equal(cube.numpy(), expected)


def test_cover_borders_adds_a_flush_last_patch() -> None:
    np.testing.assert_array_equal(grid_starts(40, 16, 8), [0, 8, 16, 24])  # 40 - 16 = 24: already flush
    starts = grid_starts(482, 128, 8, cover_borders=True)
    assert starts[-2] == 352 and starts[-1] == 354 and starts.size == 46  # rows 480-481 now covered
    assert patches_per_image(cover_borders=True) == 46 * 49


# ---------------------------------------------------------------------------- memory modes
def test_float16_mode_halves_cube_memory(tree) -> None:
    root, cubes, _ = tree
    standard = ARADDataset(root, "train", patch_size=None)
    half = ARADDataset(root, "train", patch_size=None, memory_mode="float16")
    rgb_bytes = len(TRAIN) * 3 * HEIGHT * WIDTH  # uint8 RGB in both modes
    cube_bytes = len(TRAIN) * BANDS * HEIGHT * WIDTH
    assert standard.memory_bytes() == rgb_bytes + 4 * cube_bytes
    assert half.memory_bytes() == rgb_bytes + 2 * cube_bytes
    _, cube16 = half[1]
    assert cube16.dtype == torch.float32
    np.testing.assert_array_equal(cube16.numpy(), cubes["fake_0002"].astype(np.float16).astype(np.float32))
    assert np.abs(cube16.numpy() - cubes["fake_0002"]).max() <= 1.0 / 2048  # float16 rounding of values < 1


def test_lazy_cache_is_a_bounded_lru(tree) -> None:
    root, _, _ = tree
    lazy = ARADDataset(root, "train", patch_size=None, memory_mode="lazy", cache_size=2)
    assert lazy.memory_bytes() == 0 and lazy.cache_info()["size"] == 0
    for index in (0, 1, 0, 2):  # 0 miss, 1 miss, 0 hit, 2 miss evicts 1 (least recently used)
        lazy[index]
    assert lazy.cache_info() == {"size": 2, "capacity": 2, "hits": 1, "misses": 3}
    assert list(lazy._cache) == [0, 2]
    lazy[0]
    assert lazy.cache_info()["hits"] == 2
    lazy[1]
    assert list(lazy._cache) == [0, 1] and lazy.cache_info()["misses"] == 4
    assert lazy.memory_bytes() == 2 * (BANDS + 3 * 0.25) * HEIGHT * WIDTH * 4
    clone = pickle.loads(pickle.dumps(lazy))
    assert clone.cache_info()["size"] == 0 and len(lazy._cache) == 2


class _CacheProbe(Dataset):
    """Returns each item with the worker's process id and its lazy cache size after reading it."""

    def __init__(self, dataset: ARADDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        rgb, cube = self.dataset[index]
        return rgb, cube, os.getpid(), self.dataset.cache_info()["size"]


def test_lazy_mode_with_two_dataloader_workers(tree) -> None:
    root, _, _ = tree
    standard = ARADDataset(root, "train", patch_size=16, seed=2)
    lazy = ARADDataset(root, "train", patch_size=16, seed=2, memory_mode="lazy", cache_size=1)
    loader = DataLoader(_CacheProbe(lazy), batch_size=7, num_workers=2, shuffle=False)
    pids, rgbs, cubes = set(), [], []
    for rgb, cube, pid, cache_size in loader:
        pids.update(pid.tolist())
        assert int(cache_size.max()) <= 1
        rgbs.append(rgb)
        cubes.append(cube)
    assert len(pids) == 2 and os.getpid() not in pids
    assert lazy.cache_info()["size"] == 0  # the main process never decoded an image
    expected = [standard[i] for i in range(len(standard))]
    assert torch.equal(torch.cat(rgbs), torch.stack([item[0] for item in expected]))
    assert torch.equal(torch.cat(cubes), torch.stack([item[1] for item in expected]))


# ---------------------------------------------------------------------------- errors
def test_missing_and_mismatched_files_are_reported(tmp_path: Path) -> None:
    make_scene(tmp_path, "good", 0)
    make_scene(tmp_path, "small", 1, height=32)
    (tmp_path / "Train_RGB" / "small.jpg").unlink()
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(tmp_path / "Train_RGB" / "small.jpg")
    missing = r"2 file\(s\) of split 'train' are missing.*nothere\.mat.*nothere\.jpg"
    with pytest.raises(DataFileNotFoundError, match=missing):
        ARADDataset(tmp_path, names=["good", "nothere"])
    with pytest.raises(ShapeMismatchError, match=r"small\.mat' is 32x48 px but its RGB .* is 40x48 px"):
        ARADDataset(tmp_path, names=["good", "small"], patch_size=16)
    with pytest.raises(ShapeMismatchError, match="32x48 px"):
        ARADDataset(tmp_path, names=["small"], patch_size=16, memory_mode="lazy")
    with pytest.raises(ShapeMismatchError, match="has 31 bands, expected 30"):
        ARADDataset(tmp_path, names=["good"], bands=30)
    with pytest.raises(ConfigError, match=r"smaller than patch_size=64 \(e.g. good: 40x48 px\); use patch_size <= 40"):
        ARADDataset(tmp_path, names=["good"], patch_size=64)
    with pytest.raises(ConfigError, match="memory_mode"):
        ARADDataset(tmp_path, names=["good"], memory_mode="mmap")  # type: ignore[arg-type]
    with pytest.raises(DataFileNotFoundError, match="ARAD-1K data root"):
        ARADDataset(tmp_path / "absent")


def test_subset_of_arad_names_needs_check_split_false(tmp_path: Path) -> None:
    make_scene(tmp_path, "ARAD_1K_0001", 0)
    (tmp_path / "split_txt").mkdir()
    (tmp_path / "split_txt" / "train_list.txt").write_text("ARAD_1K_0001\n")
    with pytest.raises(SplitError, match="official MST\\+\\+ train split has 897"):
        ARADDataset(tmp_path, "train")
    dataset = ARADDataset(tmp_path, "train", check_split=False, patch_size=32, stride=8)
    assert len(dataset) == 2 * 3 and not dataset.is_proxy  # (40-32)//8+1 rows x (48-32)//8+1 cols
