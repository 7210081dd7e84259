"""LightningDataModules, and the resumable sampling that makes checkpoint resume exact.

:class:`PixelClassificationDataModule` serves the labelled pixels of one scene
(a registered dataset such as Indian Pines, or arrays given in memory) as
``(spectrum (C,), class index)`` pairs: it splits the labels (random stratified,
fixed count per class, or spatially disjoint blocks; or a saved ``split.json``),
fits the normaliser on the training pixels only, and describes the data to the
task (``data_description``: bands, wavelengths, class names, normalisation).

Exact resume
    The training order of epoch ``e`` is a pure function of ``(seed, e)``
    (:class:`ResumableSampler`), and the training loader (:class:`ResumableDataLoader`)
    reports how many samples of the current epoch it has handed out. Lightning saves
    that ``state_dict`` inside every checkpoint and gives it back on resume, so a run
    restarted from a checkpoint taken mid-epoch skips exactly the samples already
    consumed and then sees the same batches, in the same order, as the uninterrupted
    run. Under DDP each rank reads its own shard of the same permutation.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hsikit.cube import Cube
from hsikit.data.datasets import PixelDataset, encode_labels
from hsikit.data.splits import Split, make_split
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.spectral.normalize import Normalizer, create_normalizer

SplitMode = Literal["random", "count", "disjoint"]


# ---------------------------------------------------------------------------- sampling
class ResumableSampler(DistributedSampler):
    """Sample indices whose order is a function of ``(seed, epoch)``, sharded over ranks, resumable mid-epoch.

    Epoch ``e`` uses the permutation ``numpy.random.default_rng([seed, e]).permutation(n)``
    (or ``0..n-1`` without shuffling). With ``pad=True`` (training) the order is padded
    by repeating its start so every rank gets ``ceil(n / R)`` samples, as DDP needs equal
    step counts; with ``pad=False`` (evaluation) rank ``r`` gets positions ``r, r+R, ...``
    and every sample is seen exactly once. Rank ``r`` always takes every ``R``-th
    position of that sequence.

    It subclasses ``DistributedSampler`` only so that Lightning keeps it instead of
    wrapping it in its own distributed sampler.

    Args:
        dataset_size: number of samples n in the dataset.
        shuffle: permute every epoch (training) or keep the dataset order.
        seed: seed of the permutations.
        num_replicas: number of DDP ranks R.
        rank: this process's rank.
        pad: pad to equal shards (training) or not (evaluation).
    """

    def __init__(
        self,
        dataset_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
    ) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} is not in 0..{num_replicas - 1}")
        # DistributedSampler.__init__ needs a dataset and an initialised process group; set its fields directly.
        self.dataset_size = int(dataset_size)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.pad = bool(pad)
        self.drop_last = False
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, samples to skip) requested by a resume

    @property
    def num_samples(self) -> int:  # type: ignore[override]
        """Samples this rank yields in a full epoch."""
        if self.pad:
            return math.ceil(self.dataset_size / self.num_replicas)
        return len(range(self.rank, self.dataset_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """All indices this rank yields in ``epoch``, in order (int64)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.dataset_size)
        else:
            order = np.arange(self.dataset_size)
        if self.pad and self.num_replicas > 1:
            total = self.num_samples * self.num_replicas
            order = np.resize(order, total)  # repeats from the start
        return order[self.rank :: self.num_replicas].astype(np.int64)

    def skip_on_next_epoch_start(self, epoch: int, samples: int) -> None:
        """Make the next iteration over ``epoch`` start after its first ``samples`` samples."""
        self._skip = (int(epoch), int(samples))

    def pending_skip(self, epoch: int) -> int:
        """Samples the next iteration over ``epoch`` will skip (0 when none)."""
        if self._skip is not None and self._skip[0] == epoch:
            return self._skip[1]
        return 0

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        skip = self.pending_skip(epoch)
        self._skip = None
        return iter(self.epoch_order(epoch)[skip:].tolist())


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in checkpoints (Lightning's stateful-loader protocol).

    ``state_dict()`` returns the epoch and the number of samples handed out so far;
    ``load_state_dict()`` makes the next iteration over that epoch skip them. Requires a
    :class:`ResumableSampler`.
    """

    def __init__(self, dataset: Dataset, *, sampler: ResumableSampler, **kwargs: Any) -> None:
        if not isinstance(sampler, ResumableSampler):
            raise ConfigError("ResumableDataLoader needs a ResumableSampler")
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._epoch = sampler.epoch
        self._consumed = 0

    def __iter__(self) -> Iterator[Any]:
        return self._counting_iterator()

    def _counting_iterator(self) -> Iterator[Any]:
        # A generator: this body runs at the first next(), after Lightning has called set_epoch.
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        self._epoch = sampler.epoch
        self._consumed = sampler.pending_skip(self._epoch)
        for batch in super().__iter__():
            self._consumed += _batch_length(batch)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        return {
            "epoch": self._epoch,
            "samples_consumed": self._consumed,
            "seed": sampler.seed,
            "dataset_size": sampler.dataset_size,
            "num_replicas": sampler.num_replicas,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        mismatch = [
            f"{key} {state.get(key)} -> {value}"
            for key, value in (
                ("seed", sampler.seed),
                ("dataset_size", sampler.dataset_size),
                ("num_replicas", sampler.num_replicas),
            )
            if state.get(key) != value
        ]
        if mismatch:
            warnings.warn(
                "the training data order changed since the checkpoint (" + ", ".join(mismatch) + "); the "
                "interrupted epoch restarts from its first batch, so this resume is not exact",
                stacklevel=2,
            )
            return
        sampler.skip_on_next_epoch_start(int(state["epoch"]), int(state["samples_consumed"]))


def _batch_length(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_length(batch[0])
    if isinstance(batch, Mapping) and batch:
        return _batch_length(next(iter(batch.values())))
    raise TypeError(f"cannot tell the size of a batch of type {type(batch).__name__}")


def _amount(value: int | float | None) -> int | float | None:
    """A split amount: fractions stay floats; whole numbers above 1 are pixel counts (a config
    parser may hand ``5`` over as ``5.0``, and no fraction exceeds 1)."""
    if isinstance(value, float) and value > 1 and value.is_integer():
        return int(value)
    return value


def _global_seed() -> int:
    return int(os.environ.get("PL_GLOBAL_SEED", "0"))


# ---------------------------------------------------------------------------- in-memory pixels
class InMemoryPixels(Dataset):
    """Spectra ``(N, C)`` float32 and targets ``(N,)`` int64 held as tensors, fetched a batch at a time.

    ``__getitems__`` returns a whole batch ``(spectra (B, C), targets (B,))`` with one
    indexing operation; use it with ``collate_fn=keep_batch``.
    """

    def __init__(self, spectra: torch.Tensor, targets: torch.Tensor) -> None:
        if spectra.ndim != 2 or targets.shape != spectra.shape[:1]:
            raise ShapeMismatchError(
                f"InMemoryPixels needs spectra (N, C) and targets (N,), got {tuple(spectra.shape)} "
                f"and {tuple(targets.shape)}"
            )
        self.spectra = spectra
        self.targets = targets

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spectra[index], self.targets[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.spectra[index], self.targets[index]


def keep_batch(batch: Any) -> Any:
    """Collate function for datasets whose ``__getitems__`` already returns a batch."""
    return batch


# ---------------------------------------------------------------------------- the datamodule
class PixelClassificationDataModule(LightningDataModule):
    """Labelled pixels of one scene for spectral classification.

    Args:
        dataset: registered dataset name (``hsikit.data.load_dataset``), e.g. ``"indian_pines"``.
        root: data folder of the registry (default: the hsikit data cache).
        split: ``"random"`` (stratified fractions or counts per class), ``"count"`` (a fixed
            number per class) or ``"disjoint"`` (spatially disjoint blocks).
        train, val, test: amounts per part, as :func:`hsikit.data.splits.make_split` takes them
            (fractions or counts per class; ``test=None``: the rest).
        split_seed: seed of the split (kept apart from the training seed so that runs with
            different training seeds share a split).
        split_file: a saved ``split.json`` to use instead of making a split.
        split_options: more arguments of the split function (``block_size``, ``patch_size``...).
        normalization: normaliser name (``"standardize"``, ``"minmax"``, ``"scale"``, ``"none"``...),
            fitted on the training pixels only.
        batch_size: training batch size per process.
        eval_batch_size: validation/test/predict batch size (default: 4 x batch_size).
        num_workers: DataLoader workers (the pixels are held in memory; 0 is usually fastest).
        shuffle_seed: seed of the training order (default: the run's ``seed_everything`` value).
        drop_last: drop the last, incomplete training batch of each epoch (a different remainder
            every epoch, as the order changes); a tiny last batch makes BatchNorm statistics noisy.
            Ignored when a process has less than one full batch.

    After ``setup()``: ``cube`` (:class:`Cube`), ``labels`` ``(H, W)``, ``class_names``,
    ``split`` (:class:`Split`), ``normalizer``, and the datasets.
    """

    def __init__(
        self,
        dataset: str | None = "indian_pines",
        root: str | None = None,
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
        super().__init__()
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1) or num_workers < 0:
            raise ConfigError(
                f"batch_size and eval_batch_size must be >= 1 and num_workers >= 0, got {batch_size}, "
                f"{eval_batch_size}, {num_workers}"
            )
        if split not in ("random", "count", "disjoint"):
            raise ConfigError(f"split must be 'random', 'count' or 'disjoint', got {split!r}")
        self.dataset_name = dataset
        self.root = root
        self.split_mode = split
        self.amounts = {"train": _amount(train), "val": _amount(val), "test": _amount(test)}
        self.split_seed = int(split_seed)
        self.split_file = split_file
        self.split_options = dict(split_options or {})
        self.normalization = normalization
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or 4 * batch_size)
        self.num_workers = int(num_workers)
        self.shuffle_seed = shuffle_seed
        self.drop_last = bool(drop_last)
        create_normalizer(normalization)  # an unknown name fails now, not after loading the data
        self.cube: Cube | None = None
        self.labels: np.ndarray | None = None
        self.class_names: list[str] | None = None
        self.split: Split | None = None
        self.normalizer: Normalizer | None = None
        self.datasets: dict[str, InMemoryPixels] = {}
        self._predict_positions: np.ndarray | None = None

    @classmethod
    def from_arrays(
        cls,
        cube: Cube | np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> PixelClassificationDataModule:
        """A datamodule over an in-memory scene: ``cube`` ``(C, H, W)`` (Cube or array), ``labels`` ``(H, W)``.

        Labels follow the dataset convention: 0 = unlabelled, classes ``1..K``.
        """
        module = cls(dataset=None, **kwargs)
        module._set_scene(cube if isinstance(cube, Cube) else Cube(np.asarray(cube)), labels, class_names)
        return module

    # ------------------------------------------------------------------ scene
    def _set_scene(self, cube: Cube, labels: np.ndarray, class_names: Sequence[str] | None) -> None:
        labels = np.asarray(labels)
        if labels.shape != cube.shape[1:]:
            raise ShapeMismatchError(
                f"labels of shape {labels.shape} do not match the cube's spatial size {cube.shape[1:]} "
                f"(cube {cube.shape}); labels must be (H, W) of the same scene"
            )
        num_classes = int(labels.max())
        if class_names is None:
            class_names = [f"class {k}" for k in range(1, num_classes + 1)]
        if len(class_names) < num_classes:
            raise ConfigError(f"{len(class_names)} class names for labels reaching class {num_classes}")
        self.cube, self.labels, self.class_names = cube, labels, [str(n) for n in class_names]

    def _load_scene(self) -> None:
        if self.cube is not None:
            return
        if self.dataset_name is None:
            raise ConfigError("no data: set 'dataset' to a registered dataset name, or build with from_arrays()")
        from hsikit.data.loaders import load_dataset

        scene = load_dataset(self.dataset_name, root=self.root)
        if scene.labels is None:
            raise ConfigError(
                f"dataset {self.dataset_name!r} has no label map; pixel classification needs a labelled scene "
                "(see 'hsikit datasets list')"
            )
        self._set_scene(scene.cube, np.asarray(scene.labels), list(scene.class_names))

    def _make_split(self) -> Split:
        assert self.labels is not None
        if self.split_file:
            split = Split.from_json(self.split_file)
            split.check_labels(self.labels)
            return split
        amounts = {key: value for key, value in self.amounts.items() if value is not None}
        if self.split_mode == "disjoint":
            amounts.pop("test", None)
        return make_split(self.labels, self.split_mode, seed=self.split_seed, **amounts, **self.split_options)

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self._load_scene()
        assert self.cube is not None and self.labels is not None
        self.split = self._make_split()
        self.normalizer = create_normalizer(self.normalization).fit(self.cube, mask=self.split.mask("train"))
        for part in ("train", "val", "test"):
            pixels = PixelDataset(self.cube, self.labels, split=self.split, part=part)
            targets = encode_labels(self.labels[pixels.rows, pixels.cols])
            self.datasets[part] = self._materialise(pixels.rows, pixels.cols, targets)

    def _materialise(self, rows: np.ndarray, cols: np.ndarray, targets: np.ndarray) -> InMemoryPixels:
        """Normalised spectra of the pixels ``(rows, cols)`` as an ``(N, C)`` float32 tensor, with ``targets``.

        The pixels are selected by :class:`~hsikit.data.datasets.PixelDataset` (split part,
        nodata dropped) and read once: the training loop then indexes tensors, not the cube.
        """
        assert self.cube is not None and self.normalizer is not None
        spectra = np.asarray(self.cube.data[:, rows, cols], dtype=np.float32).T  # (N, C)
        spectra = self.normalizer.transform(spectra, band_axis=1)
        return InMemoryPixels(
            torch.from_numpy(np.ascontiguousarray(spectra, dtype=np.float32)),
            torch.from_numpy(np.asarray(targets, dtype=np.int64)),
        )

    @property
    def data_description(self) -> dict[str, Any]:
        """Facts about the data the task and the exported model need (JSON values)."""
        if self.cube is None or self.normalizer is None:
            self.setup()
        assert self.cube is not None and self.normalizer is not None
        return {
            "bands": self.cube.bands,
            "wavelengths": None if self.cube.wavelengths is None else self.cube.wavelengths.tolist(),
            "fwhm": None if self.cube.fwhm is None else self.cube.fwhm.tolist(),
            "class_names": list(self.class_names or []),
            "normalization": self.normalizer.to_dict(),
            "dataset": self.dataset_name,
            "input": "pixel",
            "label_offset": 1,
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
        sampler = ResumableSampler(len(dataset), shuffle=True, seed=seed, num_replicas=replicas, rank=rank, pad=True)
        return ResumableDataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.batch_size,
            drop_last=self.drop_last and len(sampler) >= self.batch_size,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(seed),
        )

    def _eval_loader(self, part: str) -> DataLoader:
        dataset = self.datasets[part]
        replicas, rank = self._distribution()
        sampler = ResumableSampler(len(dataset), shuffle=False, num_replicas=replicas, rank=rank, pad=False)
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.eval_batch_size,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Every valid pixel of the scene, in row-major order; batches are ``(spectra, flat pixel index)``."""
        self.setup()
        assert self.cube is not None
        pixels = PixelDataset(self.cube, labels=None)
        flat = pixels.rows * self.cube.width + pixels.cols
        dataset = self._materialise(pixels.rows, pixels.cols, flat)
        return DataLoader(dataset, batch_size=self.eval_batch_size, collate_fn=keep_batch, shuffle=False)

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the scene."""
        if self.cube is None:
            self._load_scene()
        assert self.cube is not None
        return (self.cube.height, self.cube.width)

    def save_artifacts(self, folder: str | os.PathLike) -> list[Path]:
        """Write ``split.json`` and ``normalization.json`` into a run folder (atomically)."""
        written: list[Path] = []
        target = Path(folder)
        if self.split is not None:
            written.append(self.split.to_json(target / "split.json"))
        if self.normalizer is not None:
            written.append(self.normalizer.to_json(target / "normalization.json"))
        return written
