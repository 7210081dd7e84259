"""SegmentationDataModule: the reference layout, plain folders, the glacier registry tiles, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine

from hsikit.cube import Cube
from hsikit.data.segmentation_datamodule import SegmentationDataModule, encode_tile_labels
from hsikit.errors import ConfigError, DataFileNotFoundError, InvalidLabelsError, ShapeMismatchError
from hsikit.io import save_cube, save_labels

TRANSFORM = Affine(30.0, 0.0, 186555.0, 0.0, -30.0, 3298065.0)


def _write_tile(folder: Path, name: str, image: np.ndarray, labels: np.ndarray, label_ext: str = ".tif") -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    save_cube(Cube(image, crs="EPSG:32647", transform=TRANSFORM, nonfinite="ignore"), folder / "images" / f"{name}.tif")
    save_labels(labels, folder / "labels" / f"{name}{label_ext}", crs="EPSG:32647", transform=TRANSFORM)


def _tile(rng: np.random.Generator, bands: int = 4, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """An image whose class is readable from its pixels: label = digitised band 0."""
    image = rng.random((bands, size, size)).astype(np.float32)
    labels = np.digitize(image[0], [0.5, 0.8]).astype(np.uint8)  # 0, 1, 2
    return image, labels


def test_reference_layout_with_annotation_lists(tmp_path: Path, rng: np.random.Generator) -> None:
    for name in ("1", "1_rever", "2", "4"):
        image, labels = _tile(rng)
        _write_tile(tmp_path, name, image, labels)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.txt").write_text("1\n1_rever   extra text\n\n2\n")
    (tmp_path / "annotations" / "val.txt").write_text("4\n")
    module = SegmentationDataModule(root=str(tmp_path), batch_size=2, shuffle_seed=0)
    module.setup()
    assert [t.name for t in module.tiles["train"]] == ["1", "1_rever", "2"]
    assert [t.name for t in module.tiles["val"]] == ["4"] and module.tiles["test"] == []
    assert module.num_classes == 3 and module.class_names == ["class_0", "class_1", "class_2"]
    batch = next(iter(module.val_dataloader()))
    assert batch["image"].shape == (1, 4, 16, 16) and batch["label"].dtype == torch.int64
    description = module.data_description
    assert description["bands"] == 4 and description["label_offset"] == 0
    expected_counts = np.bincount(
        np.concatenate([t.target.reshape(-1) for t in module.tiles["train"]]), minlength=3
    ).tolist()
    assert description["class_pixel_counts"] == expected_counts


def test_augmentation_moves_image_and_labels_together(tmp_path: Path, rng: np.random.Generator) -> None:
    image, labels = _tile(rng, size=20)
    _write_tile(tmp_path, "a", image, labels)
    module = SegmentationDataModule(
        root=str(tmp_path), crop_size=12, samples_per_epoch=24, batch_size=4, shuffle_seed=3
    )
    module.setup()
    dataset = module.datasets["train"]
    seen = set()
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            assert item["image"].shape == (4, 12, 12)
            recomputed = np.digitize(item["image"][0].numpy(), [0.5, 0.8])
            np.testing.assert_array_equal(recomputed, item["label"].numpy())
            seen.add(item["image"][0].numpy().tobytes())
    assert len(seen) > 40  # crops and flips differ between items and epochs
    dataset.set_epoch(1)
    again = dataset[5]["image"]
    dataset.set_epoch(0)
    dataset.set_epoch(1)
    assert torch.equal(again, dataset[5]["image"])  # a function of (seed, epoch, index)


def test_plain_folders_label_mapping_and_nodata(tmp_path: Path, rng: np.random.Generator) -> None:
    image, labels = _tile(rng)
    image[:, 0, 0] = np.nan
    encoded = np.array([0, 128, 255], dtype=np.uint8)[labels]  # the reference's 8-bit encoding
    _write_tile(tmp_path, "x", image, encoded)
    image2, labels2 = _tile(rng)
    _write_tile(tmp_path, "y", image2, np.array([0, 128, 255], dtype=np.uint8)[labels2])
    module = SegmentationDataModule(
        root=str(tmp_path), val=["y"], label_mapping={128: 1, 255: 2},
        class_names=["background", "clean_glacier", "debris_glacier"],
    )  # fmt: skip
    module.setup()
    tile = module.tiles["train"][0]
    assert tile.name == "x" and tile.crs == "EPSG:32647" and tile.transform == TRANSFORM
    assert tile.target[0, 0] == -100 and np.all(tile.image[:, 0, 0] == 0)  # NaN pixel: input 0, not scored
    np.testing.assert_array_equal(tile.target.reshape(-1)[1:], labels.reshape(-1)[1:])
    with pytest.raises(InvalidLabelsError, match=r"label values \[128, 255\].*label_mapping"):
        SegmentationDataModule(root=str(tmp_path), num_classes=3).setup()


def test_bad_tiles_get_clear_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    image, labels = _tile(rng, bands=4)
    _write_tile(tmp_path, "a", image, labels)
    other, other_labels = _tile(rng, bands=3)
    _write_tile(tmp_path, "b", other, other_labels)
    with pytest.raises(ShapeMismatchError, match="different band counts"):
        SegmentationDataModule(root=str(tmp_path)).setup()
    with pytest.raises(ShapeMismatchError, match=r"images/b.tif' has 3 bands but 4 are expected"):
        SegmentationDataModule(root=str(tmp_path), bands=4, train=["a", "b"]).setup()

    small = tmp_path / "small"
    image, labels = _tile(rng)
    _write_tile(small, "c", image, labels[:10, :12])
    with pytest.raises(ShapeMismatchError, match=r"labels/c.tif' are 10x12 but image .* is 16x16"):
        SegmentationDataModule(root=str(small)).setup()

    with pytest.raises(DataFileNotFoundError, match="no image"):
        SegmentationDataModule(root=str(tmp_path), train=["zz"]).setup()
    with pytest.raises(ConfigError, match="root="):
        SegmentationDataModule()
    with pytest.raises(InvalidLabelsError, match=r"\[3\] are outside the class indices 0..2"):
        encode_tile_labels(np.array([[0, 3]]), 3)
    np.testing.assert_array_equal(encode_tile_labels(np.array([[0, 9]]), 3, ignore_label=9), [[0, -100]])


def test_tiles_of_different_sizes_need_crops(tmp_path: Path, rng: np.random.Generator) -> None:
    image, labels = _tile(rng, size=16)
    _write_tile(tmp_path, "a", image, labels)
    image, labels = _tile(rng, size=20)
    _write_tile(tmp_path, "b", image, labels)
    with pytest.raises(ShapeMismatchError, match="set crop_size"):
        SegmentationDataModule(root=str(tmp_path), batch_size=2).setup()
    module = SegmentationDataModule(root=str(tmp_path), batch_size=2, crop_size=16)
    module.setup()
    assert next(iter(module.train_dataloader()))["image"].shape == (2, 4, 16, 16)


def test_glacier_registry_tiles_are_zero_based(shared_data: Path) -> None:
    module = SegmentationDataModule(dataset="glacier", root=str(shared_data), train=["1", "4"], val=["2"])
    module.setup()
    assert module.class_names == ["background", "clean_glacier", "debris_glacier"]
    tile1, tile4 = module.tiles["train"]
    assert tile1.image.shape == (10, 256, 256) and tile1.crs == "EPSG:32647"
    # counts of the label file (0 background, 1 clean, 2 debris); tile 4 is all background
    assert np.bincount(tile1.target.reshape(-1)).tolist() == [59182, 4034, 2320]
    assert np.all(tile4.target == 0)
    assert module.data_description["class_pixel_counts"] == [59182 + 65536, 4034, 2320]
    with pytest.raises(ConfigError, match="no tile"):
        SegmentationDataModule(dataset="glacier", root=str(shared_data), train=["3"]).setup()
