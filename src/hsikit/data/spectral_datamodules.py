"""DataModules of the spectral models: unlabelled spectra for autoencoders, scene files and PCA patches for classifiers.

* :class:`SpectraDataModule` serves the spectra of a scene's pixels ``(B,)`` for an
  autoencoder (labels, when given, only travel along for latent-space figures): a random
  held-out fraction of the valid pixels for validation, the rest (or a part) for
  training, a :class:`~hsikit.spectral.preprocess.SpectralPreprocessing` (deephyp's
  per-spectrum min-max by default) fitted on the training pixels.
* :class:`SceneClassificationDataModule` is the
  :class:`~hsikit.data.datamodules.PixelClassificationDataModule` (split modes random /
  count / disjoint, normaliser fitted on training pixels) that also reads a cube and a
  label raster from files (``cube_path``, ``labels_path``).
* :class:`PatchClassificationDataModule` serves ``(k, p, p)`` patches of a PCA-reduced
  scene for spectral–spatial networks (HybridSN): the band normaliser and the PCA are
  fitted on the training pixels only, the reduced scene is padded once and every batch is
  cut from it with one indexing operation; a spatially disjoint split is buffered by the
  patch size (no training patch overlaps a val/test block); training patches are
  randomly flipped and rotated (``augment``).

All three hold the selected pixels in memory (they are made for single scenes of up to
a few million pixels) and reuse the resumable sampler of
:mod:`hsikit.data.datamodules`, so checkpoints resume exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from hsikit.cube import Cube
from hsikit.data.datamodules import (
    InMemoryPixels,
    PixelClassificationDataModule,
    ResumableDataLoader,
    ResumableSampler,
    SplitMode,
    _global_seed,
    keep_batch,
)
from hsikit.data.datasets import DEFAULT_IGNORE_INDEX, PixelDataset, encode_labels
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.spectral.pca import SpectralPCA
from hsikit.spectral.preprocess import SpectralPreprocessing

_PAD_MODES = {"reflect": "reflect", "edge": "edge", "zero": "constant"}


def _load_cube_and_labels(
    cube_path: str | None,
    labels_path: str | None,
    dataset: str | None,
    root: str | None,
    need_labels: bool,
) -> tuple[Cube, np.ndarray | None, list[str] | None, str]:
    """``(cube, labels or None, class names or None, description)`` from files or the dataset registry."""
    if cube_path is not None:
        from hsikit.io import open_cube
        from hsikit.io.labels import open_labels

        cube = open_cube(cube_path)
        labels = None
        if labels_path is not None:
            labels = np.asarray(open_labels(labels_path, expected_shape=cube))
        elif need_labels:
            raise ConfigError(
                f"'{cube_path}' was given without a label raster: classification needs labels_path (a .tif/.npy/.mat "
                "class map of the same H x W, 0 = unlabelled)"
            )
        return cube, labels, None, str(cube_path)
    if dataset is None:
        raise ConfigError(
            "no data: set 'dataset' to a registered dataset name (hsikit datasets list) or 'cube_path' to a cube file"
        )
    from hsikit.data.loaders import load_dataset

    scene = load_dataset(dataset, root=root)
    labels = None if scene.labels is None else np.asarray(scene.labels)
    if need_labels and labels is None:
        raise ConfigError(f"dataset {dataset!r} has no label map; classification needs a labelled scene")
    return scene.cube, labels, list(scene.class_names) if scene.class_names else None, dataset


# ============================================================================ autoencoders
class SpectraDataModule(LightningDataModule):
    """Pixel spectra of one scene for autoencoders: batches ``(spectra (B, C), targets (B,))``.

    Targets are the 0-based classes of a label map when one is given (unlabelled pixels
    and scenes without labels: ``ignore_index``); an autoencoder uses them only to colour
    latent-space figures.

    Args:
        dataset: registered dataset name (``"samson"``, ``"indian_pines"``...), used when
            ``cube_path`` is None.
        root: data folder of the registry.
        cube_path: a cube file (GeoTIFF, ENVI, .mat, .npy...) instead of a registered dataset.
        labels_path: optional label raster for ``cube_path`` (0 = unlabelled).
        preprocessing: a :class:`~hsikit.spectral.preprocess.SpectralPreprocessing` method
            (default ``"deephyp_minmax"``, deephyp's per-spectrum min-max).
        preprocessing_options: its options (e.g. ``{"scale": 10000}`` for ``"scale"``).
        val: held-out validation pixels: a fraction (< 1) or a count (>= 1) of the valid pixels.
        train: training pixels among the rest: a fraction (<= 1) or a count; default all.
        split_seed: seed of the random train/val assignment.
        batch_size, eval_batch_size, num_workers, shuffle_seed, drop_last: as
            :class:`~hsikit.data.datamodules.PixelClassificationDataModule`.

    The test stage reuses the validation pixels; ``predict`` serves every valid pixel.
    """

    def __init__(
        self,
        dataset: str | None = "samson",
        root: str | None = None,
        cube_path: str | None = None,
        labels_path: str | None = None,
        preprocessing: str = "deephyp_minmax",
        preprocessing_options: dict[str, Any] | None = None,
        val: int | float = 0.05,
        train: int | float | None = None,
        split_seed: int = 0,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        shuffle_seed: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1) or num_workers < 0:
            raise ConfigError(
                f"batch_size and eval_batch_size must be >= 1 and num_workers >= 0, got {batch_size}, "
                f"{eval_batch_size}, {num_workers}"
            )
        for name, amount in (("val", val), ("train", train)):
            if amount is not None and (isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0):
                raise ConfigError(f"{name} must be a fraction in [0, 1) or a pixel count >= 1, got {amount!r}")
        self.dataset_name = dataset
        self.root = root
        self.cube_path = cube_path
        self.labels_path = labels_path
        self.preprocessing_name = preprocessing
        self.preprocessing_options = dict(preprocessing_options or {})
        SpectralPreprocessing(preprocessing, **self.preprocessing_options)  # unknown names fail now
        self.val_amount = val
        self.train_amount = train
        self.split_seed = int(split_seed)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or 4 * batch_size)
        self.num_workers = int(num_workers)
        self.shuffle_seed = shuffle_seed
        self.drop_last = bool(drop_last)
        self.cube: Cube | None = None
        self.labels: np.ndarray | None = None
        self.class_names: list[str] | None = None
        self.source = ""
        self.preprocessing: SpectralPreprocessing | None = None
        self.pixel_indices: dict[str, np.ndarray] = {}
        self.datasets: dict[str, InMemoryPixels] = {}

    @classmethod
    def from_arrays(
        cls,
        cube: Cube | np.ndarray,
        labels: np.ndarray | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> SpectraDataModule:
        """A datamodule over an in-memory scene ``(C, H, W)``; ``labels`` ``(H, W)`` optional (0 = unlabelled)."""
        module = cls(dataset=None, **kwargs)
        module._set_scene(cube if isinstance(cube, Cube) else Cube(np.asarray(cube)), labels, class_names, "arrays")
        return module

    def _set_scene(
        self, cube: Cube, labels: np.ndarray | None, class_names: Sequence[str] | None, source: str
    ) -> None:
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != cube.shape[1:]:
                raise ShapeMismatchError(
                    f"labels of shape {labels.shape} do not match the cube's spatial size {cube.shape[1:]}; labels "
                    "must be (H, W) of the same scene"
                )
            top = int(labels.max()) if labels.size else 0
            if class_names is None:
                class_names = [f"class {k}" for k in range(1, top + 1)]
        self.cube, self.labels = cube, labels
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        self.source = source

    def _load_scene(self) -> None:
        if self.cube is not None:
            return
        cube, labels, names, source = _load_cube_and_labels(
            self.cube_path, self.labels_path, self.dataset_name, self.root, need_labels=False
        )
        self._set_scene(cube, labels, names, source)

    @staticmethod
    def _count(amount: int | float | None, available: int, default: int) -> int:
        if amount is None:
            return default
        if isinstance(amount, float) and amount <= 1.0:
            return int(round(amount * available))
        return min(int(amount), available)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self._load_scene()
        assert self.cube is not None
        pixels = PixelDataset(self.cube, labels=None)
        flat = pixels.rows * self.cube.width + pixels.cols
        if flat.size < 2:
            raise ConfigError(f"{self.source}: the cube has {flat.size} valid pixel(s); an autoencoder needs more")
        order = np.random.default_rng(self.split_seed).permutation(flat.size)
        n_val = self._count(self.val_amount, flat.size, 0)
        remaining = flat.size - n_val
        n_train = self._count(self.train_amount, remaining, remaining)
        if n_train < 1:
            raise ConfigError(
                f"{self.source}: no training pixels left ({flat.size} valid pixels, val={self.val_amount}, "
                f"train={self.train_amount}); lower val or raise train"
            )
        self.pixel_indices = {
            "val": np.sort(flat[order[:n_val]]),
            "train": np.sort(flat[order[n_val : n_val + n_train]]),
        }
        self.pixel_indices["test"] = self.pixel_indices["val"]
        mask = np.zeros(self.cube.height * self.cube.width, dtype=bool)
        mask[self.pixel_indices["train"]] = True
        self.preprocessing = SpectralPreprocessing(self.preprocessing_name, **self.preprocessing_options)
        self.preprocessing.fit(self.cube, mask=mask.reshape(self.cube.height, self.cube.width))
        for part in ("train", "val"):
            self.datasets[part] = self._materialise(self.pixel_indices[part])
        self.datasets["test"] = self.datasets["val"]

    def _targets(self, flat: np.ndarray) -> np.ndarray:
        if self.labels is None:
            return np.full(flat.shape, DEFAULT_IGNORE_INDEX, dtype=np.int64)
        return encode_labels(self.labels.reshape(-1)[flat])

    def _materialise(self, flat: np.ndarray, targets: np.ndarray | None = None) -> InMemoryPixels:
        """Preprocessed spectra ``(N, C)`` float32 of the flat pixel indices, with targets (default: the labels)."""
        assert self.cube is not None and self.preprocessing is not None
        rows, cols = np.divmod(flat, self.cube.width)
        spectra = np.asarray(self.cube.data[:, rows, cols], dtype=np.float32).T
        spectra = self.preprocessing.transform(spectra, band_axis=1)
        return InMemoryPixels(
            torch.from_numpy(np.ascontiguousarray(spectra, dtype=np.float32)),
            torch.from_numpy(np.asarray(self._targets(flat) if targets is None else targets, dtype=np.int64)),
        )

    @property
    def train_targets(self) -> torch.Tensor:
        if not self.datasets:
            self.setup()
        return self.datasets["train"].targets

    @property
    def data_description(self) -> dict[str, Any]:
        """Bands, wavelengths, FWHM, the preprocessing and class names (for figures), as JSON values."""
        if not self.datasets:
            self.setup()
        assert self.cube is not None and self.preprocessing is not None
        return {
            "bands": self.cube.bands,
            "wavelengths": None if self.cube.wavelengths is None else self.cube.wavelengths.tolist(),
            "fwhm": None if self.cube.fwhm is None else self.cube.fwhm.tolist(),
            "normalization": None if self.preprocessing.normalizer is None else self.preprocessing.normalizer.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": list(self.class_names or []),
            "dataset": self.dataset_name if self.cube_path is None else None,
            "input": "pixel",
            "label_offset": 1,
        }

    @property
    def image_shape(self) -> tuple[int, int]:
        self._load_scene()
        assert self.cube is not None
        return (self.cube.height, self.cube.width)

    def train_dataloader(self) -> ResumableDataLoader:
        dataset = self.datasets["train"]
        trainer = getattr(self, "trainer", None)
        replicas, rank = (1, 0) if trainer is None else (int(trainer.world_size), int(trainer.global_rank))
        seed = _global_seed() if self.shuffle_seed is None else int(self.shuffle_seed)
        sampler = ResumableSampler(len(dataset), shuffle=True, seed=seed, num_replicas=replicas, rank=rank, pad=True)
        return ResumableDataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.batch_size,
            drop_last=self.drop_last and len(sampler) >= self.batch_size,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
        )

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        replicas, rank = (1, 0) if trainer is None else (int(trainer.world_size), int(trainer.global_rank))
        sampler = ResumableSampler(
            len(dataset), shuffle=False, num_replicas=replicas, rank=rank, pad=False
        )
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.eval_batch_size,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.datasets["val"])

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.datasets["test"])

    def predict_dataloader(self) -> DataLoader:
        """Every valid pixel in row-major order; batches are ``(spectra, flat pixel index)``."""
        self.setup()
        assert self.cube is not None
        pixels = PixelDataset(self.cube, labels=None)
        flat = pixels.rows * self.cube.width + pixels.cols
        dataset = self._materialise(flat, targets=flat)
        return DataLoader(dataset, batch_size=self.eval_batch_size, collate_fn=keep_batch, shuffle=False)

    def save_artifacts(self, folder: str | os.PathLike) -> list[Path]:
        """Write ``preprocessing.json`` and ``pixels.json`` (the flat indices of the train/val pixels) atomically."""
        from hsikit.engine.callbacks import write_json_atomic

        target = Path(folder)
        written: list[Path] = []
        if self.preprocessing is not None:
            write_json_atomic(target / "preprocessing.json", self.preprocessing.to_dict())
            written.append(target / "preprocessing.json")
        if self.pixel_indices:
            payload = {part: self.pixel_indices[part].tolist() for part in ("train", "val")}
            write_json_atomic(target / "pixels.json", payload)
            written.append(target / "pixels.json")
        return written


# ============================================================================ classification from files
class SceneClassificationDataModule(PixelClassificationDataModule):
    """:class:`~hsikit.data.datamodules.PixelClassificationDataModule` that can also read its scene from files.

    Args:
        cube_path: a cube file; when given, ``dataset`` is ignored.
        labels_path: its label raster (``(H, W)``, 0 = unlabelled, classes 1..K).
        class_names: names of labels 1..K (default ``"class k"``, or the dataset's names).
        Other arguments: as :class:`~hsikit.data.datamodules.PixelClassificationDataModule`.
    """

    def __init__(
        self,
        dataset: str | None = "indian_pines",
        root: str | None = None,
        cube_path: str | None = None,
        labels_path: str | None = None,
        class_names: list[str] | None = None,
        split: SplitMode = "random",
        train: int | float = 0.1,
        val: int | float = 0.05,
        test: int | float | None = None,
        split_seed: int = 0,
        split_file: str | None = None,
        split_options: dict[str, Any] | None = None,
        normalization: str = "standardize",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        shuffle_seed: int | None = None,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            dataset=dataset,
            root=root,
            split=split,
            train=train,
            val=val,
            test=test,
            split_seed=split_seed,
            split_file=split_file,
            split_options=split_options,
            normalization=normalization,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            shuffle_seed=shuffle_seed,
            drop_last=drop_last,
        )
        self.cube_path = cube_path
        self.labels_path = labels_path
        self.given_class_names = None if class_names is None else [str(n) for n in class_names]
        if cube_path is not None and labels_path is None:
            raise ConfigError(
                f"cube_path '{cube_path}' needs labels_path (its class map, 0 = unlabelled) for classification"
            )

    def _load_scene(self) -> None:
        if self.cube is not None:
            return
        if self.cube_path is None:
            super()._load_scene()
            if self.given_class_names is not None and self.cube is not None and self.labels is not None:
                self._set_scene(self.cube, self.labels, self.given_class_names)
            return
        cube, labels, _, _ = _load_cube_and_labels(self.cube_path, self.labels_path, None, None, need_labels=True)
        assert labels is not None
        self._set_scene(cube, labels, self.given_class_names)

    @property
    def train_targets(self) -> torch.Tensor:
        if not self.datasets:
            self.setup()
        return self.datasets["train"].targets

    @property
    def data_description(self) -> dict[str, Any]:
        description = dict(super().data_description)
        if self.cube_path is not None:
            description["dataset"] = None
        return description


# ============================================================================ patches
class InMemoryPatches(Dataset):
    """``(k, p, p)`` patches cut from a padded scene tensor, a batch at a time.

    Args:
        padded: ``(k, H + p - 1, W + p - 1)`` float32 scene, padded by ``p // 2`` on each side.
        rows, cols: ``(N,)`` pixel coordinates in the *unpadded* scene.
        targets: ``(N,)`` int64 targets (class indices or flat pixel indices).
        patch_size: odd side p.
        augment: apply a random flip / quarter rotation to each patch (training); the draws
            come from the global torch RNG, which :class:`~hsikit.engine.callbacks.StepSeed`
            reseeds every step, so a resumed run augments like an uninterrupted one.
    """

    def __init__(
        self,
        padded: torch.Tensor,
        rows: np.ndarray,
        cols: np.ndarray,
        targets: np.ndarray,
        patch_size: int,
        augment: bool = False,
    ) -> None:
        self.padded = padded
        self.rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        self.cols = torch.as_tensor(np.asarray(cols), dtype=torch.long)
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.long)
        self.patch_size = int(patch_size)
        self.augment = bool(augment)
        self._offsets = torch.arange(self.patch_size)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def patches(self, index: torch.Tensor) -> torch.Tensor:
        """Patches ``(B, k, p, p)`` of the items ``index`` (no augmentation)."""
        rows = self.rows[index][:, None] + self._offsets  # (B, p), in padded coordinates
        cols = self.cols[index][:, None] + self._offsets
        cut = self.padded[:, rows[:, :, None], cols[:, None, :]]  # (k, B, p, p)
        return cut.permute(1, 0, 2, 3).contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch, targets = self.__getitems__([index])
        return batch[0], targets[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        batch = self.patches(index)
        if self.augment:
            batch = random_dihedral(batch)
        return batch, self.targets[index]


def random_dihedral(batch: torch.Tensor) -> torch.Tensor:
    """Each ``(k, p, p)`` patch of ``batch`` ``(B, k, p, p)`` under one of the 8 flips / quarter turns (uniform)."""
    choice = torch.randint(0, 8, (batch.shape[0],))
    out = batch.clone()
    for code in range(1, 8):
        selected = choice == code
        if not bool(selected.any()):
            continue
        part = batch[selected]
        if code >= 4:
            part = part.flip(-1)
        out[selected] = torch.rot90(part, k=code % 4, dims=(-2, -1))
    return out


class PatchClassificationDataModule(SceneClassificationDataModule):
    """PCA-reduced patches for spectral–spatial classifiers: batches ``(patches (B, k, p, p), targets (B,))``.

    The band normaliser (``normalization``) and then the PCA (``pca_components``
    components, optionally whitened) are fitted on the training pixels; the reduced
    scene is padded by ``p // 2`` (``padding``) and each item is the ``p × p`` window
    centred on its pixel. A ``"disjoint"`` split is buffered by ``patch_size`` unless
    ``split_options`` sets it.

    Args:
        patch_size: odd patch side p (pixels).
        pca_components: number of principal components k (None: keep every band).
        pca_whiten: scale each component to unit variance on the training pixels.
        padding: ``"reflect"``, ``"edge"`` or ``"zero"``.
        augment: random flips and quarter turns of the training patches.
        Other arguments: as :class:`SceneClassificationDataModule`.

    The data description adds ``patch_size``, ``model_bands`` (= k, the model's input
    channels), ``pca`` (the fitted :class:`~hsikit.spectral.pca.SpectralPCA` state) and
    ``padding``; ``bands`` stays the scene's band count.
    """

    def __init__(
        self,
        dataset: str | None = "indian_pines",
        root: str | None = None,
        cube_path: str | None = None,
        labels_path: str | None = None,
        class_names: list[str] | None = None,
        split: SplitMode = "random",
        train: int | float = 0.1,
        val: int | float = 0.05,
        test: int | float | None = None,
        split_seed: int = 0,
        split_file: str | None = None,
        split_options: dict[str, Any] | None = None,
        normalization: str = "standardize",
        patch_size: int = 11,
        pca_components: int | None = 15,
        pca_whiten: bool = False,
        padding: str = "reflect",
        augment: bool = True,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        shuffle_seed: int | None = None,
        drop_last: bool = True,
    ) -> None:
        if isinstance(patch_size, bool) or int(patch_size) != patch_size or patch_size < 1 or patch_size % 2 == 0:
            raise ConfigError(f"patch_size must be a positive odd integer (patches are centred), got {patch_size!r}")
        if padding not in _PAD_MODES:
            raise ConfigError(f"padding must be one of {sorted(_PAD_MODES)}, got {padding!r}")
        if pca_components is not None and (isinstance(pca_components, bool) or pca_components < 1):
            raise ConfigError(f"pca_components must be a positive integer or None, got {pca_components!r}")
        options = dict(split_options or {})
        if split == "disjoint":
            options.setdefault("patch_size", int(patch_size))
        super().__init__(
            dataset=dataset,
            root=root,
            cube_path=cube_path,
            labels_path=labels_path,
            class_names=class_names,
            split=split,
            train=train,
            val=val,
            test=test,
            split_seed=split_seed,
            split_file=split_file,
            split_options=options,
            normalization=normalization,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            shuffle_seed=shuffle_seed,
            drop_last=drop_last,
        )
        self.patch_size = int(patch_size)
        self.pca_components = None if pca_components is None else int(pca_components)
        self.pca_whiten = bool(pca_whiten)
        self.padding = padding
        self.augment = bool(augment)
        self.pca: SpectralPCA | None = None
        self.padded: torch.Tensor | None = None
        self.datasets: dict[str, InMemoryPatches] = {}  # type: ignore[assignment]

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        from hsikit.spectral.normalize import create_normalizer

        self._load_scene()
        assert self.cube is not None and self.labels is not None
        self.split = self._make_split()
        train_mask = self.split.mask("train")
        self.normalizer = create_normalizer(self.normalization).fit(self.cube, mask=train_mask)
        self.padded = self.reduce_and_pad(np.asarray(self.cube.data), fit_mask=train_mask)
        for part in ("train", "val", "test"):
            pixels = PixelDataset(self.cube, self.labels, split=self.split, part=part)
            targets = encode_labels(self.labels[pixels.rows, pixels.cols])
            self.datasets[part] = InMemoryPatches(
                self.padded,
                pixels.rows,
                pixels.cols,
                targets,
                self.patch_size,
                augment=self.augment and part == "train",
            )

    def reduce_and_pad(self, data: np.ndarray, fit_mask: np.ndarray | None = None) -> torch.Tensor:
        """Normalise ``data`` ``(C, H, W)``, project it on the PCA (fitted here when ``fit_mask`` is given), pad.

        Returns:
            ``(k, H + p - 1, W + p - 1)`` float32 tensor.
        """
        assert self.normalizer is not None
        normalised = self.normalizer.transform(np.asarray(data, dtype=np.float32), band_axis=0).astype(np.float32)
        if self.pca_components is not None:
            if fit_mask is not None:
                if self.pca_components > normalised.shape[0]:
                    raise ConfigError(
                        f"pca_components={self.pca_components} exceeds the {normalised.shape[0]} bands of the cube; "
                        "keep at most that many components"
                    )
                self.pca = SpectralPCA(self.pca_components, whiten=self.pca_whiten).fit(normalised, mask=fit_mask)
            assert self.pca is not None
            normalised = self.pca.transform(normalised).astype(np.float32)
        half = self.patch_size // 2
        padded = np.pad(normalised, ((0, 0), (half, half), (half, half)), mode=_PAD_MODES[self.padding])
        return torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32))

    @property
    def model_bands(self) -> int:
        """Channels of the patches (k)."""
        if self.padded is None:
            self.setup()
        assert self.padded is not None
        return int(self.padded.shape[0])

    @property
    def data_description(self) -> dict[str, Any]:
        if not self.datasets:
            self.setup()
        description = dict(super().data_description)
        description.update(
            {
                "input": "patch",
                "patch_size": self.patch_size,
                "model_bands": self.model_bands,
                "padding": self.padding,
                "pca": None if self.pca is None else self.pca.to_dict(),
            }
        )
        return description

    def predict_dataloader(self) -> DataLoader:
        """Every valid pixel in row-major order; batches are ``(patches, flat pixel index)``."""
        self.setup()
        assert self.cube is not None and self.padded is not None
        pixels = PixelDataset(self.cube, labels=None)
        flat = pixels.rows * self.cube.width + pixels.cols
        dataset = InMemoryPatches(self.padded, pixels.rows, pixels.cols, flat, self.patch_size)
        return DataLoader(dataset, batch_size=self.eval_batch_size, collate_fn=keep_batch, shuffle=False)

    def save_artifacts(self, folder: str | os.PathLike) -> list[Path]:
        written = super().save_artifacts(folder)
        if self.pca is not None:
            written.append(self.pca.to_json(Path(folder) / "pca.json"))
        return written


__all__ = [
    "InMemoryPatches",
    "PatchClassificationDataModule",
    "SceneClassificationDataModule",
    "SpectraDataModule",
    "random_dihedral",
]
