"""Tiles of images and label rasters for semantic segmentation (SSMGNet's data layout and plain folders).

Two layouts are read:

* **the reference layout** (SSMGNet's ``datasets/``)::

      root/annotations/train.txt   one tile name per line (first white-space token)
      root/annotations/val.txt     (and optionally test.txt)
      root/images/<name>.tif       (C, H, W) image tiles
      root/labels/<name>.tif       (H, W) label rasters

* **plain folders**: ``root/images`` and ``root/labels`` (or any two folders given as
  ``images=`` / ``labels=``) with label rasters named like their images. The parts are
  lists of tile names (``train: ["1", "4"]``) or list files; without lists every tile
  not named for validation or test is a training tile.

``dataset="glacier"`` reads the registered glacier tiles through the dataset registry
(checksums verified, from the data root or the shared data folder).

Label convention of the segmentation task
    A label raster holds **0-based class indices** ``0..K-1`` where **0 is a real class**
    (background for the glacier data, SSMGNet's own indexing). This differs from the
    dataset registry, whose glacier loader shifts the file values by +1 so that 0 means
    "unlabelled"; for ``dataset=`` the shift is undone here. Unlabelled pixels, if a
    dataset has any, are named with ``ignore_label`` (a file value) and become
    ``ignore_index`` (default -100) in the targets, as do pixels whose image holds NaN/Inf
    or the nodata value (those pixels enter the model as 0, like the reference's ``nan → 0``).
    ``label_mapping`` renames file values first: ``{128: 1, 255: 2}`` reads the
    reference's 8-bit encoding ``{0, 128, 255}``.

Batches are dictionaries ``{"image": (B, C, h, w) float32, "label": (B, h, w) int64}``.
Training items get one of the 8 flips/rotations (``augment``), drawn from
``numpy.random.default_rng([seed, epoch, index])``, optionally after a random square crop
(``crop_size``), so the same seed, epoch and index always give the same sample and a
resumed run sees the same batches (:class:`~hsikit.data.datamodules.ResumableSampler`).
Validation and test items are whole tiles.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from hsikit.data.datamodules import ResumableDataLoader, ResumableSampler, _global_seed
from hsikit.data.datasets import apply_dihedral
from hsikit.errors import (
    ConfigError,
    DataFileNotFoundError,
    InvalidLabelsError,
    ShapeMismatchError,
)
from hsikit.spectral.normalize import Normalizer, create_normalizer

PARTS: tuple[str, ...] = ("train", "val", "test")
IMAGE_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")
LABEL_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".png", ".npy")
DEFAULT_IGNORE_INDEX = -100


# ---------------------------------------------------------------------------- tiles
@dataclass
class SegmentationTile:
    """One image tile and its labels.

    Attributes:
        name: tile name (file stem).
        image_path: the image file (or ``"<registry:dataset/scene>"`` for registry tiles).
        label_path: the label file, or None for unlabelled tiles.
        image: ``(C, H, W)`` float32 with invalid pixels set to 0 (None until loaded).
        target: ``(H, W)`` int64 class indices, ``ignore_index`` where unscored (None until loaded).
        shape: ``(C, H, W)`` of the image.
        crs, transform: georeference of the image, if any.
        wavelengths: band centres (nm) of the image, if known.
    """

    name: str
    image_path: str
    label_path: str | None
    image: np.ndarray | None = None
    target: np.ndarray | None = None
    shape: tuple[int, int, int] | None = None
    crs: str | None = None
    transform: Any = None
    wavelengths: list[float] | None = None


def read_tile_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A tile as ``(C, H, W)`` float32 with NaN/Inf/nodata pixels set to 0, the ``(H, W)`` invalid mask
    and ``{"crs", "transform", "wavelengths"}``."""
    from hsikit.io import open_cube

    cube = open_cube(path, nonfinite="ignore")
    image = np.array(cube.data, dtype=np.float32)
    invalid = ~np.isfinite(image).all(axis=0)
    if cube.nodata is not None and not np.isnan(cube.nodata):
        invalid |= (image == np.float32(cube.nodata)).all(axis=0)
    if cube.explicit_nodata_mask is not None:
        invalid |= cube.explicit_nodata_mask
    image[:, invalid] = 0.0
    info = {
        "crs": cube.crs,
        "transform": cube.transform,
        "wavelengths": None if cube.wavelengths is None else [float(w) for w in cube.wavelengths],
    }
    return image, invalid, info


def encode_tile_labels(
    labels: np.ndarray,
    num_classes: int | None,
    *,
    label_mapping: Mapping[int, int] | None = None,
    ignore_label: int | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    source: str = "<labels>",
) -> np.ndarray:
    """File values of an ``(H, W)`` label raster → int64 class indices (``ignore_index`` where unlabelled).

    ``label_mapping`` renames values first; ``ignore_label`` (a value after mapping) marks
    unlabelled pixels. With ``num_classes`` every other value must lie in ``0..K-1``.

    Raises:
        InvalidLabelsError: fractional values, or values outside the class range (naming them
            and the fix).
    """
    values = np.asarray(labels)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise InvalidLabelsError(
                f"{source}: labels hold fractional or NaN values; a label raster must hold integer class indices"
            )
    values = values.astype(np.int64)
    if label_mapping:
        mapped = values.copy()
        for old, new in label_mapping.items():
            mapped[values == int(old)] = int(new)
        values = mapped
    unlabelled = np.zeros(values.shape, dtype=bool) if ignore_label is None else values == int(ignore_label)
    scored = values[~unlabelled]
    if scored.size:
        low, high = int(scored.min()), int(scored.max())
        top = None if num_classes is None else num_classes - 1
        if low < 0 or (top is not None and high > top):
            bad = np.unique(scored[(scored < 0) | (scored > (top if top is not None else high))])[:8]
            expected = f"0..{top}" if top is not None else "0 or more"
            raise InvalidLabelsError(
                f"{source}: label values {bad.tolist()} are outside the class indices {expected}; class indices "
                "are 0-based with 0 a real class. Rename file values with label_mapping (e.g. {128: 1, 255: 2} "
                "for the 8-bit encoding), mark unlabelled pixels with ignore_label, or raise num_classes"
            )
    values[unlabelled] = ignore_index
    return values


def _read_list_file(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            names.append(stripped.split()[0])
    return names


def _find_file(folder: Path, name: str, extensions: Sequence[str]) -> Path | None:
    for extension in extensions:
        for candidate in (folder / f"{name}{extension}", folder / f"{name}{extension.upper()}"):
            if candidate.is_file():
                return candidate
    return None


# ---------------------------------------------------------------------------- dataset
class SegmentationTileDataset(Dataset):
    """Items ``{"image": (C, h, w) float32, "label": (h, w) int64}`` from loaded tiles.

    Args:
        tiles: loaded :class:`SegmentationTile` objects (``image`` and ``target`` set).
        crop_size: side of random square crops (None: whole tiles).
        samples_per_epoch: dataset length (default: one item per tile). Item ``i`` reads tile ``i mod n``.
        augment: apply one of the 8 flips/rotations (the same to image and labels).
        seed: base seed of crops and augmentations.
        normalizer: fitted normaliser applied to each image (None: none).
    """

    def __init__(
        self,
        tiles: Sequence[SegmentationTile],
        crop_size: int | None = None,
        samples_per_epoch: int | None = None,
        augment: bool = False,
        seed: int = 0,
        normalizer: Normalizer | None = None,
    ) -> None:
        if not tiles:
            raise ConfigError("a segmentation dataset needs at least one tile")
        self.tiles = list(tiles)
        self.crop_size = crop_size
        self.samples_per_epoch = len(self.tiles) if samples_per_epoch is None else int(samples_per_epoch)
        if self.samples_per_epoch < 1:
            raise ConfigError(f"samples_per_epoch must be at least 1, got {samples_per_epoch}")
        self.augment = bool(augment)
        self.seed = int(seed)
        self.normalizer = normalizer
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops and augmentations of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(f"index {index} out of range for {self.samples_per_epoch} samples")
        tile = self.tiles[index % len(self.tiles)]
        assert tile.image is not None and tile.target is not None
        image, target = tile.image, tile.target
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        if self.crop_size is not None:
            height, width = target.shape
            row = int(rng.integers(0, height - self.crop_size + 1))
            col = int(rng.integers(0, width - self.crop_size + 1))
            image = image[:, row : row + self.crop_size, col : col + self.crop_size]
            target = target[row : row + self.crop_size, col : col + self.crop_size]
        if self.augment:
            rotations, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
            image = apply_dihedral(image, rotations, flip)
            target = apply_dihedral(target, rotations, flip)
        if self.normalizer is not None:
            image = self.normalizer.transform(image).astype(np.float32, copy=False)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "label": torch.from_numpy(np.ascontiguousarray(target, dtype=np.int64)),
        }


class _EpochSampler(ResumableSampler):
    """A :class:`ResumableSampler` that also tells the dataset which epoch it is drawing."""

    def __init__(self, dataset: SegmentationTileDataset, **kwargs: Any) -> None:
        super().__init__(len(dataset), **kwargs)
        self.tile_dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.tile_dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        self.tile_dataset.set_epoch(self.epoch)
        return super().__iter__()


# ---------------------------------------------------------------------------- datamodule
class SegmentationDataModule(LightningDataModule):
    """Image tiles with label rasters for :class:`~hsikit.tasks.segmentation.SegmentationTask`.

    Args:
        root: the folder holding ``images/``, ``labels/`` (and ``annotations/``); for
            ``dataset=`` the data root holding the dataset's folder (default: the shared
            data folder when it has the files, else the download cache).
        dataset: a registered segmentation dataset (``"glacier"``) read through the registry.
        images, labels: image and label folders, relative to ``root`` (or absolute).
        train, val, test: tile names, or a list file (one name per line), per part. None:
            ``annotations/<part>.txt`` when it exists; for ``train`` otherwise every tile
            not in val/test; for ``val``/``test`` otherwise none.
        annotations: folder of the list files, relative to ``root``.
        class_names: one name per class index (default: the dataset's, else ``class_<k>``).
        num_classes: K (default: ``len(class_names)``, else the largest label + 1).
        bands: expected band count of every tile (None: all tiles must merely agree).
        label_mapping: file value → class index renaming (e.g. ``{128: 1, 255: 2}``).
        ignore_label: file value (after mapping) of unlabelled pixels.
        ignore_index: target value of unscored pixels.
        normalization: normaliser fitted on the training tiles (``"none"``, the reference's
            choice and the one the attention supervision needs: it compares raw reflectance).
        augment: random flips/rotations of training items.
        crop_size: random square training crops of this side (None: whole tiles).
        samples_per_epoch: training items per epoch (default: one per tile).
        batch_size: training batch size per process (the reference: 8).
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        num_workers: DataLoader workers.
        drop_last: drop the incomplete last training batch (the reference does).
        shuffle_seed: seed of the training order and augmentations (default: the run's seed).
        cache: keep the tiles in memory after the first read (False: read at every item).
        download: for ``dataset=``, download missing files (with checksums).
    """

    def __init__(
        self,
        root: str | None = None,
        dataset: str | None = None,
        images: str = "images",
        labels: str = "labels",
        train: list[str] | str | None = None,
        val: list[str] | str | None = None,
        test: list[str] | str | None = None,
        annotations: str = "annotations",
        class_names: list[str] | None = None,
        num_classes: int | None = None,
        bands: int | None = None,
        label_mapping: dict[int, int] | None = None,
        ignore_label: int | None = None,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        normalization: str = "none",
        augment: bool = True,
        crop_size: int | None = None,
        samples_per_epoch: int | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        drop_last: bool = True,
        shuffle_seed: int | None = None,
        download: bool = False,
    ) -> None:
        super().__init__()
        if root is None and dataset is None:
            raise ConfigError(
                "SegmentationDataModule needs root= (a folder with images/ and labels/) or dataset= "
                "(a registered segmentation dataset such as 'glacier')"
            )
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1) or num_workers < 0:
            raise ConfigError(
                f"batch_size and eval_batch_size must be >= 1 and num_workers >= 0, got {batch_size}, "
                f"{eval_batch_size}, {num_workers}"
            )
        if crop_size is not None and (int(crop_size) != crop_size or crop_size < 1):
            raise ConfigError(f"crop_size must be a positive integer or None, got {crop_size!r}")
        if num_classes is not None and num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
        if class_names is not None and num_classes is not None and len(class_names) != num_classes:
            raise ConfigError(f"{len(class_names)} class_names for num_classes={num_classes}; give one name per class")
        if 0 <= ignore_index < max(num_classes or 0, len(class_names or ())):
            raise ConfigError(f"ignore_index={ignore_index} is a class index; use a negative value such as -100")
        create_normalizer(normalization)  # an unknown name fails now
        self.root = None if root is None else Path(root).expanduser()
        self.dataset_name = dataset
        self.images_dir, self.labels_dir = images, labels
        self.part_lists = {"train": train, "val": val, "test": test}
        self.annotations = annotations
        self.class_names: list[str] | None = None if class_names is None else [str(n) for n in class_names]
        self.num_classes = num_classes
        self.bands = bands
        self.label_mapping = None if label_mapping is None else {int(k): int(v) for k, v in label_mapping.items()}
        self.ignore_label = ignore_label
        self.ignore_index = int(ignore_index)
        self.normalization = normalization
        self.augment = bool(augment)
        self.crop_size = None if crop_size is None else int(crop_size)
        self.samples_per_epoch = samples_per_epoch
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.drop_last = bool(drop_last)
        self.shuffle_seed = shuffle_seed
        self.download = bool(download)
        self.tiles: dict[str, list[SegmentationTile]] = {}
        self.normalizer: Normalizer | None = None
        self.datasets: dict[str, SegmentationTileDataset] = {}

    # ------------------------------------------------------------------ discovery
    def _resolve(self, folder: str) -> Path:
        path = Path(folder).expanduser()
        if path.is_absolute() or self.root is None:
            return path
        return self.root / path

    def _part_names(self, part: str, available: Sequence[str], taken: set[str]) -> list[str]:
        given = self.part_lists[part]
        if isinstance(given, str):
            list_file = self._resolve(given)
            if not list_file.is_file():
                raise DataFileNotFoundError(list_file, f"the {part} list: one tile name per line")
            return _read_list_file(list_file)
        if given is not None:
            return [str(name) for name in given]
        annotation = self._resolve(self.annotations) / f"{part}.txt"
        if annotation.is_file():
            return _read_list_file(annotation)
        if part == "train":
            return [name for name in available if name not in taken]
        return []

    def _folder_tiles(self) -> dict[str, list[SegmentationTile]]:
        image_folder, label_folder = self._resolve(self.images_dir), self._resolve(self.labels_dir)
        if not image_folder.is_dir():
            raise DataFileNotFoundError(
                image_folder, "expected a folder of image tiles (root/images/<name>.tif, or set images=)"
            )
        available = sorted(
            p.stem for p in image_folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        named: dict[str, list[str]] = {}
        taken: set[str] = set()
        for part in ("val", "test", "train"):
            named[part] = self._part_names(part, available, taken)
            taken |= set(named[part])
        tiles: dict[str, list[SegmentationTile]] = {}
        for part in PARTS:
            entries = []
            for name in named[part]:
                image_path = _find_file(image_folder, name, IMAGE_EXTENSIONS)
                if image_path is None:
                    raise DataFileNotFoundError(
                        image_folder / f"{name}.tif",
                        f"tile {name!r} of the {part} list has no image in {image_folder}; fix the list or add the file",
                    )
                label_path = _find_file(label_folder, name, LABEL_EXTENSIONS)
                if label_path is None:
                    raise DataFileNotFoundError(
                        label_folder / f"{name}.tif",
                        f"tile {name!r} has no label raster in {label_folder} (same name as the image)",
                    )
                entries.append(SegmentationTile(name, str(image_path), str(label_path)))
            tiles[part] = entries
        return tiles

    def _registry_tiles(self) -> dict[str, list[SegmentationTile]]:
        from hsikit.data.registry import dataset_info

        info = dataset_info(str(self.dataset_name))
        if not info.scenes:
            raise ConfigError(f"dataset {info.name!r} is a single scene; use a tile folder (root=) instead")
        available = list(info.scenes)
        named: dict[str, list[str]] = {}
        taken: set[str] = set()
        for part in ("val", "test", "train"):
            given = self.part_lists[part]
            if isinstance(given, str):
                named[part] = _read_list_file(self._resolve(given))
            elif given is not None:
                named[part] = [str(name) for name in given]
            else:
                named[part] = [s for s in available if s not in taken] if part == "train" else []
            taken |= set(named[part])
            unknown = [name for name in named[part] if name not in available]
            if unknown:
                raise ConfigError(
                    f"dataset {info.name!r} has no tile(s) {unknown} in the {part} list; its tiles are {available}"
                )
        if self.class_names is None:
            self.class_names = list(info.class_names)
        return {
            part: [SegmentationTile(name, f"<registry:{info.name}/{name}>", None) for name in named[part]]
            for part in PARTS
        }

    def _registry_root(self) -> Path | None:
        if self.root is not None:
            return self.root
        from hsikit.data.paths import shared_data_dir

        shared = shared_data_dir()
        if shared is not None and (shared / str(self.dataset_name)).is_dir():
            return shared
        return None

    # ------------------------------------------------------------------ loading
    def _load_tile(self, tile: SegmentationTile) -> None:
        if tile.image is not None:
            return
        if tile.label_path is None:  # a registry tile
            from hsikit.data.datasets import encode_labels
            from hsikit.data.loaders import load_dataset

            scene = load_dataset(
                str(self.dataset_name), scene=tile.name, root=self._registry_root(),
                download=self.download, progress=False,
            )  # fmt: skip
            cube = scene.cube
            image = np.array(cube.data, dtype=np.float32)
            invalid = ~np.isfinite(image).all(axis=0)
            image[:, invalid] = 0.0
            info = {"crs": cube.crs, "transform": cube.transform,
                    "wavelengths": None if cube.wavelengths is None else [float(w) for w in cube.wavelengths]}
            # the registry stores class k as k + 1 (0 = unlabelled): back to 0-based indices
            target = encode_labels(np.asarray(scene.labels), label_offset=1, ignore_value=0,
                                   ignore_index=self.ignore_index)  # fmt: skip
            source = f"dataset {self.dataset_name!r} tile {tile.name!r}"
            self._check_class_range(target, source)
        else:
            from hsikit.io import open_labels

            image, invalid, info = read_tile_image(tile.image_path)
            raw = open_labels(tile.label_path)
            if raw.shape != image.shape[1:]:
                raise ShapeMismatchError(
                    f"labels '{tile.label_path}' are {raw.shape[0]}x{raw.shape[1]} but image '{tile.image_path}' is "
                    f"{image.shape[1]}x{image.shape[2]} (shape {image.shape}); a label raster must cover the same "
                    "pixels as its image tile"
                )
            target = encode_tile_labels(
                raw, self._known_num_classes(), label_mapping=self.label_mapping, ignore_label=self.ignore_label,
                ignore_index=self.ignore_index, source=f"'{tile.label_path}'",
            )  # fmt: skip
        if self.bands is not None and image.shape[0] != self.bands:
            raise ShapeMismatchError(
                f"image '{tile.image_path}' has {image.shape[0]} bands but {self.bands} are expected (bands=); "
                "every tile must have the model's band count: select or resample its bands, or change bands="
            )
        target[invalid] = self.ignore_index
        tile.image, tile.target = image, target
        tile.shape = tuple(int(s) for s in image.shape)  # type: ignore[assignment]
        tile.crs, tile.transform, tile.wavelengths = info["crs"], info["transform"], info["wavelengths"]

    def _known_num_classes(self) -> int | None:
        if self.num_classes is not None:
            return int(self.num_classes)
        return None if self.class_names is None else len(self.class_names)

    def _check_class_range(self, target: np.ndarray, source: str) -> None:
        known = self._known_num_classes()
        scored = target[target != self.ignore_index]
        if known is not None and scored.size and int(scored.max()) >= known:
            raise InvalidLabelsError(f"{source}: label value {int(scored.max())} exceeds the {known} classes")

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.tiles:
            return
        tiles = self._registry_tiles() if self.dataset_name is not None else self._folder_tiles()
        if not tiles["train"]:
            raise ConfigError(
                "no training tile: every tile is listed for validation or test (or the image folder is empty)"
            )
        for part in PARTS:
            for tile in tiles[part]:
                self._load_tile(tile)
        every = [tile for part in PARTS for tile in tiles[part]]
        band_counts = {tile.shape[0] for tile in every if tile.shape is not None}
        if len(band_counts) > 1:
            listing = ", ".join(f"'{t.image_path}': {t.shape[0] if t.shape else '?'}" for t in every[:8])
            raise ShapeMismatchError(
                f"the image tiles have different band counts ({listing}); every tile must have the same bands"
            )
        if self.num_classes is None:
            if self.class_names is not None:
                self.num_classes = len(self.class_names)
            else:
                self.num_classes = 1 + max(
                    int(tile.target[tile.target != self.ignore_index].max(initial=0)) for tile in every
                )
        if self.class_names is None:
            self.class_names = [f"class_{k}" for k in range(self.num_classes)]
        self._check_sizes(tiles)
        self.tiles = tiles
        train_pixels = [tile.image for tile in tiles["train"]]
        normalizer = create_normalizer(self.normalization)
        if self.normalization != "none":
            stacked = np.concatenate([image.reshape(image.shape[0], 1, -1) for image in train_pixels], axis=2)
            normalizer.fit(stacked)
            self.normalizer = normalizer
        else:
            self.normalizer = normalizer.fit(train_pixels[0])
        seed = _global_seed() if self.shuffle_seed is None else int(self.shuffle_seed)
        applied = None if self.normalization == "none" else self.normalizer
        self.datasets = {
            "train": SegmentationTileDataset(
                tiles["train"], self.crop_size, self.samples_per_epoch, self.augment, seed, applied
            )
        }
        for part in ("val", "test"):
            if tiles[part]:
                self.datasets[part] = SegmentationTileDataset(tiles[part], normalizer=applied)

    def _check_sizes(self, tiles: Mapping[str, list[SegmentationTile]]) -> None:
        for part in PARTS:
            sizes = {tile.shape[1:] for tile in tiles[part] if tile.shape is not None}
            if not sizes:
                continue
            smallest = min(min(size) for size in sizes)
            if part == "train" and self.crop_size is not None and self.crop_size > smallest:
                raise ShapeMismatchError(
                    f"crop_size={self.crop_size} does not fit the smallest training tile ({smallest} px); use "
                    f"crop_size <= {smallest}"
                )
            batch = self.batch_size if part == "train" else self.eval_batch_size
            if len(sizes) > 1 and batch > 1 and not (part == "train" and self.crop_size is not None):
                fix = "set crop_size" if part == "train" else "set eval_batch_size: 1"
                raise ShapeMismatchError(
                    f"the {part} tiles have different sizes {sorted(sizes)} and cannot be batched together; {fix}"
                )

    @property
    def class_pixel_counts(self) -> list[int]:
        """Scored pixels of each class in the training tiles (before augmentation)."""
        assert self.num_classes is not None
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for tile in self.tiles.get("train", []):
            assert tile.target is not None
            scored = tile.target[tile.target != self.ignore_index]
            counts += np.bincount(scored, minlength=self.num_classes)[: self.num_classes]
        return counts.tolist()

    @property
    def data_description(self) -> dict[str, Any]:
        """Facts the task and the exported model need (JSON values)."""
        if not self.tiles:
            self.setup()
        first = self.tiles["train"][0]
        assert first.shape is not None and self.normalizer is not None
        return {
            "bands": int(first.shape[0]),
            "wavelengths": first.wavelengths,
            "fwhm": None,
            "class_names": list(self.class_names or []),
            "normalization": self.normalizer.to_dict(),
            "dataset": self.dataset_name,
            "input": "tile",
            "label_offset": 0,
            "ignore_index": self.ignore_index,
            "class_pixel_counts": self.class_pixel_counts,
            "tiles": {part: [tile.name for tile in self.tiles[part]] for part in PARTS},
        }

    def _distribution(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_dataloader(self) -> ResumableDataLoader:
        dataset = self.datasets["train"]
        replicas, rank = self._distribution()
        seed = _global_seed() if self.shuffle_seed is None else int(self.shuffle_seed)
        sampler = _EpochSampler(dataset, shuffle=True, seed=seed, num_replicas=replicas, rank=rank, pad=True)
        return ResumableDataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.batch_size,
            drop_last=self.drop_last and len(sampler) >= self.batch_size,
            num_workers=self.num_workers,
        )

    def _eval_loader(self, part: str) -> DataLoader:
        if part not in self.datasets:
            return DataLoader([])  # type: ignore[arg-type]
        dataset = self.datasets[part]
        replicas, rank = self._distribution()
        sampler = ResumableSampler(len(dataset), shuffle=False, num_replicas=replicas, rank=rank, pad=False)
        return DataLoader(dataset, sampler=sampler, batch_size=self.eval_batch_size, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def save_artifacts(self, folder: str | os.PathLike) -> list[Path]:
        """Write ``tiles.json`` (the tiles of each part) into a run folder (atomically)."""
        import json

        from hsikit.io.atomic import atomic_path

        target = Path(folder) / "tiles.json"
        payload = {
            part: [{"name": t.name, "image": t.image_path, "labels": t.label_path} for t in self.tiles.get(part, [])]
            for part in PARTS
        }
        with atomic_path(target) as tmp:
            Path(tmp).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return [target]


__all__ = [
    "SegmentationDataModule",
    "SegmentationTile",
    "SegmentationTileDataset",
    "encode_tile_labels",
    "read_tile_image",
]
