"""The LightningDataModule of RGB → hyperspectral reconstruction: ARAD-1K, the proxy set, any ARAD-style tree.

:class:`ReconstructionDataModule` serves the pairs of :class:`~hsikit.data.arad.ARADDataset`:

* **training**: ``(rgb (B, 3, p, p), cube (B, C, p, p))`` float32 patches on the MST++ grid
  (``patch_size`` 128, ``stride`` 8) or at random positions, with the MST++ rotation/flip
  augmentation (``specs/mstpp_protocol.md`` §2), batch 20, ``drop_last``;
* **validation / test**: full frames ``(1, 3, H, W)`` / ``(1, C, H, W)``, one image per batch,
  no augmentation (§5). ARAD-1K's test split has no spectra, so the test loader serves the
  validation split by default, as the papers report it.

Where the data comes from:

* ``root=<folder>``: an ARAD-style tree (``Train_Spec/*.mat``, ``Train_RGB/*.jpg``,
  ``split_txt/``), ARAD-1K itself or any set in that layout;
* ``proxy=True``: the offline **proxy** set of :mod:`hsikit.data.proxy` (real AVIRIS scenes
  resampled to 31 bands with simulated NTIRE RGB — **not ARAD-1K**), built into ``root`` (default
  ``hsikit.data.paths.data_dir() / "proxy"``) from the shared data folder on first use and reused,
  checksums verified, afterwards.

Exact resume: the training order of epoch ``e`` is a function of ``(seed, e)``
(:class:`~hsikit.data.datamodules.ResumableSampler`) and every augmentation is drawn from
``(augment_seed, e, index)`` by the dataset, so a run resumed from a mid-epoch checkpoint sees
the same patches, augmented the same way, as an uninterrupted one. Under DDP each rank reads its
own shard; validation shards are not padded, so every image is scored exactly once.

The task is told (``data_description``): the input band count (3), channel order and RGB
normalisation (the exported model records them, and ``hsikit reconstruct`` applies the same
normalisation), the output band count and wavelengths (nm), and whether the data is a proxy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from hsikit.data.arad import (
    ARAD_BANDS,
    ARAD_STRIDE,
    ARAD_WAVELENGTHS,
    ARADDataset,
    AugmentMode,
    MemoryMode,
    RGBNormalization,
    Sampling,
    spectra_path,
)
from hsikit.data.datamodules import ResumableDataLoader, ResumableSampler
from hsikit.errors import ConfigError

DEFAULT_BATCH_SIZE = 20
"""MST++ training batch (``specs/mstpp_protocol.md`` §2)."""
DEFAULT_PATCH_SIZE = 128


class _EpochAwareSampler(ResumableSampler):
    """A :class:`ResumableSampler` that also tells the dataset the epoch, so augmentations change every epoch.

    Lightning calls ``set_epoch`` on the sampler before each training epoch; the
    dataset's draws are a function of ``(seed, epoch, index)``, so passing the epoch
    on is all that is needed for DataLoader workers (started after this call) too.
    """

    def __init__(self, dataset: ARADDataset, **kwargs: Any) -> None:
        super().__init__(len(dataset), **kwargs)
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)


def _global_seed() -> int:
    return int(os.environ.get("PL_GLOBAL_SEED", "0"))


class ReconstructionDataModule(LightningDataModule):
    """Paired RGB / hyperspectral images for reconstruction (ARAD-1K layout; module docstring).

    Args:
        root: the data root (``Train_Spec/``, ``Train_RGB/``, ``split_txt/``). Required unless
            ``proxy=True``, which builds the proxy set there (default: ``<hsikit data dir>/proxy``).
        proxy: use the offline proxy set (real AVIRIS scenes, simulated RGB; NOT ARAD-1K).
        shared_data: the shared data folder the proxy set is built from (default:
            :func:`hsikit.data.paths.shared_data_dir`).
        train_split, val_split, test_split: split list names (``split_txt/<name>_list.txt``).
        patch_size: side of the square training patches in pixels (MST++: 128; the proxy scenes
            are 100-145 px, so its configs use 64).
        stride: step of the patch grid (MST++: 8).
        sampling: ``"grid"`` (deterministic MST++ grid) or ``"random"`` (random crop positions).
        samples_per_epoch: training items per epoch with ``sampling="random"``.
        cover_borders: add a last row/column of grid patches flush with the image border.
        augment: random quarter turns and flips of the training patches.
        augment_mode: ``"mstpp"`` (rotate, then flip W, then flip H) or ``"legacy"``.
        bgr2rgb: channels in R, G, B order (MST++); False gives B, G, R.
        rgb_norm: ``"minmax"`` (per-image global min-max, MST++), ``"div255"`` or ``"none"``.
        memory_mode: ``"standard"`` (float32 in RAM: about 27 GB for ARAD-1K training),
            ``"float16"`` (half of it) or ``"lazy"`` (read on demand through an LRU cache).
        cache_size: images in the ``"lazy"`` cache, per process/worker.
        batch_size: training batch per process (MST++: 20).
        num_workers: DataLoader worker processes (MST++: 2).
        pin_memory: page-locked batches for GPU transfer (default: when CUDA is available).
        drop_last: drop the incomplete last training batch (MST++ does).
        shuffle_seed: seed of the training order (default: the run's ``seed_everything`` value).
        augment_seed: seed of augmentations and random crops (default: the same).
        check_split: refuse ARAD list files that differ from the official 897/50 split.

    After ``setup()``: ``datasets`` (``"train"``, ``"val"``, ``"test"`` → :class:`ARADDataset`)
    and ``root`` (the resolved data folder).
    """

    def __init__(
        self,
        root: str | None = None,
        proxy: bool = False,
        shared_data: str | None = None,
        train_split: str = "train",
        val_split: str = "valid",
        test_split: str = "valid",
        patch_size: int = DEFAULT_PATCH_SIZE,
        stride: int = ARAD_STRIDE,
        sampling: Sampling = "grid",
        samples_per_epoch: int | None = None,
        cover_borders: bool = False,
        augment: bool = True,
        augment_mode: AugmentMode = "mstpp",
        bgr2rgb: bool = True,
        rgb_norm: RGBNormalization = "minmax",
        memory_mode: MemoryMode = "standard",
        cache_size: int = 8,
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        drop_last: bool = True,
        shuffle_seed: int | None = None,
        augment_seed: int | None = None,
        check_split: bool = True,
    ) -> None:
        super().__init__()
        if root is None and not proxy:
            raise ConfigError(
                "ReconstructionDataModule needs root= (an ARAD-1K style folder with Train_Spec/, Train_RGB/ and "
                "split_txt/), or proxy=True for the offline proxy set built from the shared data"
            )
        if batch_size < 1 or num_workers < 0 or patch_size < 1 or stride < 1:
            raise ConfigError(
                "need batch_size >= 1, num_workers >= 0, patch_size >= 1 and stride >= 1; got "
                f"batch_size={batch_size}, num_workers={num_workers}, patch_size={patch_size}, stride={stride}"
            )
        self.root_option = root
        self.proxy = bool(proxy)
        self.shared_data = shared_data
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.patch_size = int(patch_size)
        self.stride = int(stride)
        self.sampling: Sampling = sampling
        self.samples_per_epoch = samples_per_epoch
        self.cover_borders = bool(cover_borders)
        self.augment = bool(augment)
        self.augment_mode: AugmentMode = augment_mode
        self.bgr2rgb = bool(bgr2rgb)
        self.rgb_norm: RGBNormalization = rgb_norm
        self.memory_mode: MemoryMode = memory_mode
        self.cache_size = int(cache_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.drop_last = bool(drop_last)
        self.shuffle_seed = shuffle_seed
        self.augment_seed = augment_seed
        self.check_split = bool(check_split)
        # the proxy's folder is known once it is built (prepare_data / setup)
        self.root: Path | None = None if (proxy or root is None) else Path(root)
        self.datasets: dict[str, ARADDataset] = {}

    # ------------------------------------------------------------------ data on disk
    def _resolve_root(self) -> Path:
        if self.proxy:
            from hsikit.data.proxy import build_proxy_set

            # reuses a complete build whose checksums verify; builds (or rebuilds) otherwise
            return build_proxy_set(self.root_option, shared_data=self.shared_data)
        assert self.root_option is not None
        return Path(self.root_option)

    def prepare_data(self) -> None:
        """Build the proxy set when asked for (runs on one process per machine under DDP)."""
        if self.proxy:
            self.root = self._resolve_root()

    def _dataset(self, part: str) -> ARADDataset:
        assert self.root is not None
        seed = _global_seed() if self.augment_seed is None else int(self.augment_seed)
        common: dict[str, Any] = {
            "bgr2rgb": self.bgr2rgb,
            "rgb_norm": self.rgb_norm,
            "memory_mode": self.memory_mode,
            "cache_size": self.cache_size,
            "check_split": self.check_split,
            "bands": None,
            "seed": seed,
        }
        if part == "train":
            return ARADDataset(
                self.root,
                self.splits["train"],
                patch_size=self.patch_size,
                stride=self.stride,
                augment=self.augment,
                augment_mode=self.augment_mode,
                sampling=self.sampling,
                samples_per_epoch=self.samples_per_epoch,
                cover_borders=self.cover_borders,
                **common,
            )
        return ARADDataset(self.root, self.splits[part], patch_size=None, augment=False, **common)

    def setup(self, stage: str | None = None) -> None:
        if self.root is None:
            self.root = self._resolve_root()
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage or "", ("train", "val", "test")
        )
        for part in wanted:
            if part in self.datasets:
                continue
            if part == "test" and self.splits["test"] == self.splits["val"] and "val" in self.datasets:
                self.datasets["test"] = self.datasets["val"]
            else:
                self.datasets[part] = self._dataset(part)
        bands = {dataset.bands for dataset in self.datasets.values()}
        if len(bands) > 1:
            raise ConfigError(
                f"the splits of '{self.root}' have cubes of different band counts {sorted(bands)}; "
                "training and evaluation data must share one band set"
            )

    # ------------------------------------------------------------------ description
    def _any_dataset(self) -> ARADDataset:
        if not self.datasets:
            self.setup("validate")
        return next(iter(self.datasets.values()))

    def output_wavelengths(self) -> list[float] | None:
        """Band centres of the target cubes in nm: the ``bands`` vector of the first cube file, else None.

        ARAD-1K cubes with 31 bands and no ``bands`` vector get 400..700 nm in 10 nm steps.
        """
        from hsikit.io.matlab import MatFile

        dataset = self._any_dataset()
        vector = MatFile(spectra_path(dataset.root, dataset.names[0])).vector("bands")
        if vector is not None and vector.size == dataset.bands:
            return [float(v) for v in vector]
        if dataset.bands == ARAD_BANDS:
            return [float(v) for v in ARAD_WAVELENGTHS]
        return None

    @property
    def data_description(self) -> dict[str, Any]:
        """Facts the task and the exported model need (JSON values).

        ``bands`` is the *input* band count (3, RGB); ``output_bands`` and
        ``output_wavelengths`` (nm) describe the reconstructed cube; ``rgb_norm`` and
        ``channel_order`` say how an RGB image must be prepared for the model.
        """
        dataset = self._any_dataset()
        is_proxy = dataset.is_proxy
        return {
            "bands": 3,
            "wavelengths": None,
            "input": "rgb",
            "channel_order": "RGB" if self.bgr2rgb else "BGR",
            "rgb_norm": self.rgb_norm,
            "output_bands": int(dataset.bands),
            "output_wavelengths": self.output_wavelengths(),
            "dataset": dataset.metadata.get("name", "ARAD-1K" if not is_proxy else "proxy"),
            "proxy": bool(is_proxy),
            "patch_size": self.patch_size,
        }

    # ------------------------------------------------------------------ loaders
    def _distribution(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_dataloader(self) -> ResumableDataLoader:
        if "train" not in self.datasets:
            self.setup("fit")
        dataset = self.datasets["train"]
        replicas, rank = self._distribution()
        seed = _global_seed() if self.shuffle_seed is None else int(self.shuffle_seed)
        sampler = _EpochAwareSampler(dataset, shuffle=True, seed=seed, num_replicas=replicas, rank=rank, pad=True)
        if len(sampler) < self.batch_size and self.drop_last:
            raise ConfigError(
                f"the training split of '{self.root}' gives {len(sampler)} patches per process, fewer than one batch "
                f"of {self.batch_size}; lower batch_size, patch_size or stride, or set drop_last false"
            )
        return ResumableDataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,  # workers must copy the dataset after set_epoch (new augmentations)
            generator=torch.Generator().manual_seed(seed),
        )

    def _eval_loader(self, part: str) -> DataLoader:
        if part not in self.datasets:
            self.setup("validate" if part == "val" else "test")
        dataset = self.datasets[part]
        replicas, rank = self._distribution()
        sampler = ResumableSampler(len(dataset), shuffle=False, num_replicas=replicas, rank=rank, pad=False)
        # batch 1: full frames may differ in size (proxy scenes), and the protocol scores one image at a time
        return DataLoader(
            dataset, sampler=sampler, batch_size=1, num_workers=min(self.num_workers, 1), pin_memory=self.pin_memory
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_PATCH_SIZE", "ReconstructionDataModule"]
