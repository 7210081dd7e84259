"""Scenes for label-free clustering: folders of cubes (any format hsikit reads), optional labels, registered datasets.

:class:`ClusteringDataModule` serves whole scenes to :class:`~hsikit.tasks.clustering.ClusteringTask`,
which cuts the augmented crop pairs on the training device. Its sources:

* ``inputs``: a folder, a glob pattern or a list of files. A folder means, as in the
  reference CLI (``run_clustering.py --mat_dir``), every ``.mat`` file in it; or, when it
  has none, every cube file :func:`hsikit.io.open_cube` reads (GeoTIFF, ENVI, ``.npy``...).
  ``.mat`` files are read from the variable ``key`` (default ``cube``) with ``layout``
  (default for ``.mat``: ``"CHW"``, the reference's convention that ``cube`` is
  ``(C, H, W)`` as MATLAB shows it). MATLAB v7.3 files go through :mod:`hsikit.io.matlab`,
  which reverses the HDF5 axis order on purpose, so a v7.3 cube reads with the same
  orientation as its v5 copy. **Fix:** the reference read v7.3 cubes with
  ``h5py.File(...)[key][()]`` (axes reversed: ``(C, H, W)`` comes back ``(W, H, C)``) and
  then guessed the band axis with "the last axis is shorter than the first", which gives
  ``(C, W, H)``, i.e. every v7.3 scene spatially transposed against its labels; the same
  guess also transposed v5 ``(C, H, W)`` cubes whose width is smaller than the band count.
* labels (optional, for scores only; training never sees them): ``json_dir/<stem>.json``
  LabelMe polygons (:mod:`hsikit.io.labelme`, names → ids by ``class_mapping``), or
  ``label_dir/<stem>.<ext>`` any label raster :func:`hsikit.io.open_labels` reads (also
  the reference's ``.pth`` tensors, loaded with ``torch.load(weights_only=True)``), or a
  2-D variable ``label_key`` inside the ``.mat`` file. ``json_dir`` and ``label_dir``
  exclude each other (as in the reference).
* ``dataset`` (+ ``scenes``): a registered dataset (:func:`hsikit.data.load_dataset`), e.g.
  ``indian_pines``, ``samson`` or the ``glacier`` tiles.

Normalisation (``normalization``):

* ``"global"`` (default): per-band mean and standard deviation over the valid pixels of
  all training scenes. The statistics travel with the exported model
  (``config.json``), so every later scene is mapped exactly like the training scenes —
  what global cluster ids need;
* ``"per_scene"``: each scene standardised per band by its own statistics (the
  reference's ``normalize_cube(method="meanstd")``, up to its unbiased std);
* ``"none"``.

Training batches: ``batch_size`` scenes are loaded, padded to a common size (edge
replication; a ``valid`` mask marks the real pixels) and handed to the task
``pairs_per_batch`` times in a row (the reference's ``reuse_iter``: several crop pairs,
each with its own optimizer step, per loaded batch); :class:`RepeatedBatches` keeps the
position (loaded batch, repeat) in every checkpoint so resuming is exact.

Asynchronous prefetch (``prefetch=True``) replaces the reference's RPC data server
(``DataServerRpc``, whose server process nothing launched): a plain ``DataLoader`` with
``num_workers`` background processes (at least 1), ``persistent_workers``,
``prefetch_factor`` batches read ahead per worker and pinned host memory, so Lightning's
``non_blocking`` copy to the GPU overlaps with compute. Scenes are then read from disk by
the workers (``full_load=False``) instead of being held in memory.
"""

from __future__ import annotations

import glob as _glob
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from hsikit.cube import Cube
from hsikit.data.datamodules import ResumableDataLoader, ResumableSampler, _global_seed
from hsikit.errors import ConfigError, DataFileNotFoundError, ShapeMismatchError
from hsikit.spectral.normalize import Normalizer, create_normalizer

NormalizationMode = Literal["global", "per_scene", "none"]
NORMALIZATION_MODES: tuple[str, ...] = ("global", "per_scene", "none")
TORCH_LABEL_SUFFIXES = (".pth", ".pt")
# At most this many pixels per scene feed the global statistics (a regular subsample beyond).
_STATISTICS_PIXELS_PER_SCENE = 1_000_000


# ---------------------------------------------------------------------------- scenes
@dataclass
class ClusterScene:
    """One scene: the raw cube ``(C, H, W)`` (float32, or a lazy file reference) and its optional labels.

    Attributes:
        name: file stem or ``<dataset>[/<scene>]``.
        cube: the :class:`Cube` (None until loaded, for lazily read files).
        labels: ``(H, W)`` int64 label map, or None.
        path: the source file, or None for in-memory and registered scenes.
    """

    name: str
    cube: Cube | None
    labels: np.ndarray | None = None
    path: Path | None = None


def list_cube_files(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The cube files named by a folder, a glob pattern or a list (sorted, ENVI pairs counted once).

    A folder yields its ``.mat`` files (the reference's ``--mat_dir``) or, without any,
    every file with an extension :func:`hsikit.io.supported_extensions` lists (an ENVI
    ``.hdr`` stands for its data file).
    """
    from hsikit.io import supported_extensions

    if isinstance(inputs, (str, os.PathLike)):
        text = os.fspath(inputs)
        path = Path(text).expanduser()
        if path.is_dir():
            mats = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".mat")
            if mats:
                return mats
            files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in supported_extensions()]
            headers = {p.with_suffix("") for p in files if p.suffix.lower() == ".hdr"}
            files = [p for p in files if p.suffix.lower() == ".hdr" or p.with_suffix("") not in headers]
            if not files:
                raise DataFileNotFoundError(
                    path, f"the folder holds no cube file ({', '.join(supported_extensions())}); point inputs= at the "
                    "folder of .mat cubes or give the files"
                )
            return sorted(files)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in _glob.glob(os.path.expanduser(text)))
            if not matches:
                raise DataFileNotFoundError(path, "the pattern matches no file")
            return matches
        if not path.is_file():
            raise DataFileNotFoundError(path, "expected a folder of cubes, a glob pattern or a cube file")
        return [path]
    files: list[Path] = []
    for item in inputs:
        files.extend(list_cube_files(item))
    if not files:
        raise ConfigError("inputs= is an empty list; give a folder, a pattern or cube files")
    return files


def read_cube_file(path: Path, key: str | None = "cube", layout: str | None = None) -> Cube:
    """Read one cube file as ``(C, H, W)``; ``.mat`` files use ``key`` and layout ``"CHW"`` unless told otherwise."""
    from hsikit.io import open_cube

    is_mat = path.suffix.lower() == ".mat"
    chosen_layout = layout or ("CHW" if is_mat else "auto")
    return open_cube(path, key=key if is_mat else None, layout=chosen_layout, nonfinite="mask")


def read_scene_labels(
    path: Path,
    shape: tuple[int, int],
    *,
    json_dir: str | os.PathLike | None = None,
    label_dir: str | os.PathLike | None = None,
    class_mapping: Mapping[str, int] | None = None,
    label_key: str | None = None,
) -> np.ndarray | None:
    """The ``(H, W)`` labels of the cube file ``path`` from one source (see the module docstring), or None."""
    from hsikit.io import open_labels

    if json_dir is not None and label_dir is not None:
        raise ConfigError("give labels from json_dir or from label_dir, not both (the reference refuses both too)")
    stem = path.stem
    if json_dir is not None:
        candidate = Path(json_dir) / f"{stem}.json"
        if not candidate.is_file():
            return None
        labels = open_labels(candidate, expected_shape=shape, class_mapping=class_mapping, shape=shape)
        return np.asarray(labels, dtype=np.int64)
    if label_dir is not None:
        folder = Path(label_dir)
        from hsikit.io.labels import LABEL_EXTENSIONS

        for candidate in sorted(folder.glob(f"{stem}.*")):
            if candidate.name[len(stem):].count(".") != 1:
                continue  # e.g. a GDAL side file <stem>.tif.aux.xml
            if candidate.suffix.lower() in TORCH_LABEL_SUFFIXES:
                return _torch_labels(candidate, shape)
            if candidate.suffix.lower() in LABEL_EXTENSIONS:
                return np.asarray(open_labels(candidate, expected_shape=shape), dtype=np.int64)
        return None
    if label_key is not None and path.suffix.lower() == ".mat":
        from hsikit.io.matlab import MatFile, read_mat_labels

        if label_key not in MatFile(path).variables:
            return None
        labels, _ = read_mat_labels(path, label_key)
        if labels.shape != shape:
            raise ShapeMismatchError(
                f"'{path}' key '{label_key}': labels of shape {labels.shape} for a cube of {shape[0]} x {shape[1]} "
                "pixels; check the layout of the cube (layout=) or the label variable"
            )
        return np.asarray(labels, dtype=np.int64)
    return None


def _torch_labels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A reference-style ``.pth`` label tensor, read without unpickling code."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises several types for non-tensor files
        raise ShapeMismatchError(
            f"'{path}': not a plain tensor file ({type(error).__name__}); save the labels with "
            "torch.save(label_tensor, path) or as .npy/.tif"
        ) from None
    array = np.asarray(loaded.numpy() if isinstance(loaded, torch.Tensor) else loaded)
    if array.shape != shape or array.dtype.kind not in "iub":
        raise ShapeMismatchError(
            f"'{path}': labels must be a 2-D integer tensor of shape {shape}, got {array.dtype} {array.shape}"
        )
    return array.astype(np.int64)


# ---------------------------------------------------------------------------- normalisation
def scene_standardizer(cube: Cube | np.ndarray, valid: np.ndarray | None = None) -> Normalizer:
    """A per-band standardiser fitted on one scene's valid pixels (``"per_scene"`` normalisation)."""
    normalizer = create_normalizer("standardize")
    return normalizer.fit(cube, mask=valid)


def pooled_standardizer(scenes: Sequence[Cube]) -> Normalizer:
    """A per-band standardiser over the valid pixels of several scenes (``"global"`` normalisation).

    Per-scene statistics (at most about a million pixels of each, regularly subsampled)
    are merged exactly (Chan et al.'s pairwise update of count, mean and squared deviations).
    """
    from hsikit.spectral.normalize import compute_band_statistics

    count = mean = squares = None
    low = high = None
    for cube in scenes:
        step = max(1, int(math.ceil(math.sqrt(cube.height * cube.width / _STATISTICS_PIXELS_PER_SCENE))))
        if step > 1:
            mask = cube.valid_mask[::step, ::step]
            stats = compute_band_statistics(np.asarray(cube.data[:, ::step, ::step]), mask)
        else:
            stats = compute_band_statistics(cube)
        scene_squares = stats.std**2 * stats.count
        if count is None:
            count, mean, squares = stats.count.astype(np.float64), stats.mean, scene_squares
            low, high = stats.min, stats.max
            continue
        total = count + stats.count
        delta = stats.mean - mean
        mean = mean + delta * stats.count / total
        squares = squares + scene_squares + delta**2 * count * stats.count / total
        count = total
        low, high = np.minimum(low, stats.min), np.maximum(high, stats.max)
    if count is None:
        raise ConfigError("pooled_standardizer: no scene given")
    std = np.sqrt(squares / count)
    state = {
        "name": "standardize",
        "params": {},
        "bands": int(mean.size),
        "shift": mean.tolist(),
        "scale": np.where(std > 0, std, 1.0).tolist(),
        "statistics": {"count": count.tolist(), "mean": mean.tolist(), "std": std.tolist(),
                       "min": low.tolist(), "max": high.tolist()},
    }
    return Normalizer.from_dict(state, source="pooled scene statistics")


def normalise_scene(cube: Cube, mode: str, normalizer: Normalizer | None) -> np.ndarray:
    """``(C, H, W)`` float32 array of ``cube`` normalised by ``mode`` (nodata pixels set to 0)."""
    data = np.asarray(cube.data, dtype=np.float32)
    valid = cube.valid_mask
    if mode == "global":
        assert normalizer is not None
        data = normalizer.transform(data, band_axis=0).astype(np.float32, copy=False)
    elif mode == "per_scene":
        data = scene_standardizer(cube, valid).transform(data, band_axis=0).astype(np.float32, copy=False)
    if not valid.all():
        data = np.where(valid[None], data, np.float32(0.0))
    data = np.ascontiguousarray(data, dtype=np.float32)
    return data if data.flags.writeable else data.copy()  # memory-mapped files are read-only


# ---------------------------------------------------------------------------- datasets and batches
class SceneDataset(Dataset):
    """Normalised scenes as dicts ``{"cube": (C, H, W) float32, "valid": (H, W) bool, "labels": (H, W) int64,
    "index": int}`` (labels are −1 where a scene has none).

    With ``preloaded`` arrays they are served from memory; otherwise each item is read
    from its file and normalised on access (in a DataLoader worker under prefetch).
    """

    def __init__(
        self,
        scenes: Sequence[ClusterScene],
        mode: str,
        normalizer: Normalizer | None,
        read_options: Mapping[str, Any],
        preload: bool,
    ) -> None:
        self.scenes = list(scenes)
        self.mode = mode
        self.normalizer = normalizer
        self.read_options = dict(read_options)
        self.cache: list[dict[str, Any]] | None = [self._load(i) for i in range(len(self.scenes))] if preload else None

    def __len__(self) -> int:
        return len(self.scenes)

    def _load(self, index: int) -> dict[str, Any]:
        scene = self.scenes[index]
        cube = scene.cube
        if cube is None:
            assert scene.path is not None
            cube = read_cube_file(scene.path, self.read_options.get("key"), self.read_options.get("layout"))
        array = normalise_scene(cube, self.mode, self.normalizer)
        valid = cube.valid_mask
        labels = scene.labels if scene.labels is not None else np.full(array.shape[1:], -1, dtype=np.int64)
        return {
            "cube": torch.from_numpy(array),
            "valid": torch.from_numpy(np.array(valid, dtype=bool)),
            "labels": torch.from_numpy(np.array(labels, dtype=np.int64)),
            "index": index,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.cache[index] if self.cache is not None else self._load(index)


def pad_scenes(items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack scenes of different sizes: pad right/bottom to the largest H and W.

    Cubes are padded by edge replication (valid for any amount, unlike the reference's
    reflect padding), ``valid`` with False and ``labels`` with −1, so padding never
    enters a loss or a score (the reference padded labels with 0, a real class, and
    scored them). Returns ``cube (B, C, H, W)``, ``valid (B, H, W)``, ``labels (B, H, W)``
    and ``index (B,)``.
    """
    height = max(int(item["cube"].shape[1]) for item in items)
    width = max(int(item["cube"].shape[2]) for item in items)
    cubes, valids, labels = [], [], []
    for item in items:
        cube = item["cube"]
        pad_h, pad_w = height - cube.shape[1], width - cube.shape[2]
        if pad_h or pad_w:
            cube = F.pad(cube[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
        cubes.append(cube)
        valids.append(F.pad(item["valid"], (0, pad_w, 0, pad_h), value=False))
        labels.append(F.pad(item["labels"], (0, pad_w, 0, pad_h), value=-1))
    return {
        "cube": torch.stack(cubes),
        "valid": torch.stack(valids),
        "labels": torch.stack(labels),
        "index": torch.as_tensor([int(item["index"]) for item in items], dtype=torch.int64),
    }


class RepeatedBatches:
    """Yield every batch of a :class:`ResumableDataLoader` ``repeats`` times in a row (resumable).

    Each repeat is a separate training step (a fresh crop pair and an optimizer step), as
    the reference's ``reuse_iter``. ``len()`` is ``repeats × len(loader)``. ``state_dict()``
    records the samples of the loaded batches that are finished and how many repeats of
    the current one were done; after ``load_state_dict()`` the next iteration reloads that
    batch and continues with its next repeat, so a run resumed from a checkpoint taken
    between two repeats sees exactly the steps of an uninterrupted run.
    """

    def __init__(self, loader: ResumableDataLoader, repeats: int) -> None:
        if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
            raise ConfigError(f"pairs_per_batch must be an integer >= 1, got {repeats!r}")
        self.loader = loader
        self.repeats = int(repeats)
        self.sampler = loader.sampler  # Lightning calls sampler.set_epoch through this attribute
        self._repeats_done = 0  # of the batch handed out last
        self._last_size = 0
        self._start_repeat: tuple[int, int] | None = None  # (epoch, repeat) to start from after a resume

    def __len__(self) -> int:
        return self.repeats * len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        sampler: ResumableSampler = self.loader.sampler  # type: ignore[assignment]
        first_repeat = 0
        if self._start_repeat is not None and self._start_repeat[0] == sampler.epoch:
            first_repeat = self._start_repeat[1]
        self._start_repeat = None
        self._repeats_done = 0
        for batch in self.loader:
            self._last_size = int(batch["cube"].shape[0])
            for repeat in range(first_repeat, self.repeats):
                self._repeats_done = repeat + 1
                yield batch
            first_repeat = 0

    def state_dict(self) -> dict[str, Any]:
        state = dict(self.loader.state_dict())
        unfinished = 0 < self._repeats_done < self.repeats
        if unfinished:
            state["samples_consumed"] = int(state["samples_consumed"]) - self._last_size
        state["repeats_done"] = self._repeats_done if unfinished else 0
        state["repeats"] = self.repeats
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state.get("repeats", self.repeats)) != self.repeats:
            warnings.warn(
                f"pairs_per_batch changed since the checkpoint ({state.get('repeats')} -> {self.repeats}); the "
                "interrupted batch restarts from its first crop pair, so this resume is not exact",
                stacklevel=2,
            )
            state = {**state, "repeats_done": 0}
        self.loader.load_state_dict(state)
        self._start_repeat = (int(state["epoch"]), int(state.get("repeats_done", 0)))


# ---------------------------------------------------------------------------- the datamodule
class ClusteringDataModule(LightningDataModule):
    """Whole scenes for label-free clustering (see the module docstring).

    Args:
        inputs: folder (its ``.mat`` files, else every cube file), glob pattern or list of cube files.
        dataset: registered dataset name instead of ``inputs`` (``"indian_pines"``, ``"samson"``, ``"glacier"``).
        scenes: scene ids of a multi-scene registered dataset (e.g. glacier tiles ``["1", "2", "4"]``).
        root: data root of the registry (e.g. the shared data folder).
        download: let the registry download missing files.
        key: variable holding the cube in ``.mat`` files (reference ``cube``; None: detected).
        layout: ``"CHW"``, ``"HWC"`` or ``"auto"`` for ``.mat``/``.npy`` files (None: ``"CHW"`` for
            ``.mat`` as the reference, ``"auto"`` otherwise).
        json_dir: folder of LabelMe ``<stem>.json`` annotations.
        label_dir: folder of label rasters ``<stem>.<ext>`` (or the reference's ``.pth`` tensors).
        class_mapping: LabelMe label name → id (None: 1, 2... in order of appearance).
        label_key: 2-D label variable inside the ``.mat`` files (reference ``label``).
        ignore_index: label value left out of the scores (0 = unlabelled, hsikit's convention;
            None scores every pixel — e.g. with the reference's ``{"class0": 0, "class1": 1}``).
        val_inputs: probe scenes for validation (files, like ``inputs``); default: the training scenes.
        val_scenes: probe scene ids of the registered ``dataset``.
        normalization: ``"global"``, ``"per_scene"`` or ``"none"``.
        batch_size: scenes per loaded batch (reference 4).
        pairs_per_batch: training steps (crop pairs) per loaded batch (reference ``reuse_iter``, scripts 5).
        num_workers: DataLoader workers.
        prefetch: asynchronous loading: background workers (at least 1), persistent, reading
            ``prefetch_factor`` batches ahead into pinned memory; scenes are read from disk.
        prefetch_factor: batches each worker reads ahead under ``prefetch``.
        full_load: hold every normalised scene in memory (reference ``--full_load_ds``).
        shuffle_seed: seed of the scene order (default: the run's ``seed_everything`` value).
    """

    def __init__(
        self,
        inputs: str | list[str] | None = None,
        dataset: str | None = None,
        scenes: list[str] | None = None,
        root: str | None = None,
        download: bool = True,
        key: str | None = "cube",
        layout: str | None = None,
        json_dir: str | None = None,
        label_dir: str | None = None,
        class_mapping: dict[str, int] | None = None,
        label_key: str | None = "label",
        ignore_index: int | None = 0,
        val_inputs: str | list[str] | None = None,
        val_scenes: list[str] | None = None,
        normalization: NormalizationMode = "global",
        batch_size: int = 4,
        pairs_per_batch: int = 5,
        num_workers: int = 0,
        prefetch: bool = False,
        prefetch_factor: int = 2,
        full_load: bool = True,
        shuffle_seed: int | None = None,
    ) -> None:
        super().__init__()
        if (inputs is None) == (dataset is None):
            raise ConfigError("give either inputs= (files or a folder of cubes) or dataset= (a registered name), not both")
        if json_dir is not None and label_dir is not None:
            raise ConfigError("give labels from json_dir or from label_dir, not both (the reference refuses both too)")
        if normalization not in NORMALIZATION_MODES:
            raise ConfigError(f"normalization must be one of {NORMALIZATION_MODES}, got {normalization!r}")
        if batch_size < 1 or num_workers < 0 or prefetch_factor < 1:
            raise ConfigError(
                f"need batch_size >= 1, num_workers >= 0 and prefetch_factor >= 1, got {batch_size}, {num_workers}, "
                f"{prefetch_factor}"
            )
        if isinstance(pairs_per_batch, bool) or int(pairs_per_batch) != pairs_per_batch or pairs_per_batch < 1:
            raise ConfigError(f"pairs_per_batch must be an integer >= 1, got {pairs_per_batch!r}")
        if val_scenes is not None and dataset is None:
            raise ConfigError("val_scenes names scenes of a registered dataset; use val_inputs= with files")
        self.inputs = inputs
        self.dataset_name = dataset
        self.scene_ids = list(scenes) if scenes is not None else None
        self.root = root
        self.download = bool(download)
        self.read_options = {"key": key, "layout": layout}
        self.label_options = {
            "json_dir": json_dir,
            "label_dir": label_dir,
            "class_mapping": dict(class_mapping) if class_mapping is not None else None,
            "label_key": label_key,
        }
        self.ignore_index = ignore_index
        self.val_inputs = val_inputs
        self.val_scene_ids = list(val_scenes) if val_scenes is not None else None
        self.normalization = normalization
        self.batch_size = int(batch_size)
        self.pairs_per_batch = int(pairs_per_batch)
        self.prefetch = bool(prefetch)
        self.num_workers = max(int(num_workers), 1) if self.prefetch else int(num_workers)
        self.prefetch_factor = int(prefetch_factor)
        self.full_load = bool(full_load) and not self.prefetch
        self.shuffle_seed = shuffle_seed
        self.train_scenes: list[ClusterScene] = []
        self.probe_scenes: list[ClusterScene] = []
        self.class_names: list[str] = []
        self.normalizer: Normalizer | None = None
        self.datasets: dict[str, SceneDataset] = {}
        self._bands: int | None = None
        self._wavelengths: list[float] | None = None
        self._fwhm: list[float] | None = None

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_cubes(
        cls,
        cubes: Sequence[Cube | np.ndarray],
        labels: Sequence[np.ndarray | None] | None = None,
        names: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> ClusteringDataModule:
        """A datamodule over in-memory scenes ``(C, H, W)`` (Cubes or arrays), with optional labels ``(H, W)``."""
        module = cls(inputs="<memory>", **kwargs)
        module.inputs = None
        labels = list(labels) if labels is not None else [None] * len(cubes)
        if len(labels) != len(cubes):
            raise ShapeMismatchError(f"from_cubes: {len(labels)} label maps for {len(cubes)} cubes")
        names = list(names) if names is not None else [f"scene{i}" for i in range(len(cubes))]
        module.train_scenes = [
            ClusterScene(name, cube if isinstance(cube, Cube) else Cube(np.asarray(cube)),
                         None if label is None else np.asarray(label, dtype=np.int64))
            for name, cube, label in zip(names, cubes, labels)
        ]
        module.class_names = list(class_names or [])
        return module

    # ------------------------------------------------------------------ loading
    def _load_registered(self, ids: list[str] | None) -> list[ClusterScene]:
        from hsikit.data import load_dataset

        assert self.dataset_name is not None
        loaded = []
        for scene_id in ids or [None]:
            scene = load_dataset(self.dataset_name, scene_id, root=self.root, download=self.download, progress=False)
            name = scene.name if scene_id is None else f"{scene.name}/{scene_id}"
            loaded.append(ClusterScene(name, scene.cube, None if scene.labels is None else np.asarray(scene.labels)))
            self.class_names = list(scene.class_names)
        return loaded

    def _load_files(self, inputs: str | list[str]) -> list[ClusterScene]:
        scenes = []
        for path in list_cube_files(inputs):
            cube = read_cube_file(path, self.read_options["key"], self.read_options["layout"])
            labels = read_scene_labels(path, (cube.height, cube.width), **self.label_options)  # type: ignore[arg-type]
            keep = cube if self.full_load else None
            if keep is None:
                self._remember_bands(cube)
            scenes.append(ClusterScene(path.stem, keep, labels, path))
        names = self.label_options.get("class_mapping")
        if names and not self.class_names:
            ordered = sorted(names.items(), key=lambda item: item[1])
            self.class_names = [name for name, _ in ordered]
        return scenes

    def _remember_bands(self, cube: Cube) -> None:
        if self._bands is None:
            self._bands = cube.bands
            self._wavelengths = None if cube.wavelengths is None else cube.wavelengths.tolist()
            self._fwhm = None if cube.fwhm is None else cube.fwhm.tolist()
        elif cube.bands != self._bands:
            raise ShapeMismatchError(
                f"{cube.metadata.get('source', 'a scene')}: {cube.bands} bands, but the first scene has "
                f"{self._bands}; every scene of one clustering model needs the same bands"
            )

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if not self.train_scenes:
            if self.dataset_name is not None:
                self.train_scenes = self._load_registered(self.scene_ids)
            else:
                assert self.inputs is not None
                self.train_scenes = self._load_files(self.inputs)
        for scene in self.train_scenes:
            if scene.cube is not None:
                self._remember_bands(scene.cube)
        if self.val_scene_ids is not None:
            self.probe_scenes = self._load_registered(self.val_scene_ids)
        elif self.val_inputs is not None:
            self.probe_scenes = self._load_files(self.val_inputs)
        else:
            self.probe_scenes = list(self.train_scenes)
        for scene in self.probe_scenes:
            if scene.cube is not None:
                self._remember_bands(scene.cube)
        if self.normalization == "global":
            self.normalizer = pooled_standardizer([self._cube_of(scene) for scene in self.train_scenes])
        self.datasets = {
            "train": SceneDataset(self.train_scenes, self.normalization, self.normalizer, self.read_options,
                                  preload=self.full_load),
            "val": SceneDataset(self.probe_scenes, self.normalization, self.normalizer, self.read_options,
                                preload=self.full_load),
        }

    def _cube_of(self, scene: ClusterScene) -> Cube:
        if scene.cube is not None:
            return scene.cube
        assert scene.path is not None
        return read_cube_file(scene.path, self.read_options["key"], self.read_options["layout"])

    # ------------------------------------------------------------------ description
    @property
    def data_description(self) -> dict[str, Any]:
        """Facts the task and the exported model need (JSON values)."""
        self.setup()
        return {
            "bands": self._bands,
            "wavelengths": self._wavelengths,
            "fwhm": self._fwhm,
            "class_names": list(self.class_names),
            "normalization": None if self.normalizer is None else self.normalizer.to_dict(),
            "scene_normalization": self.normalization,
            "ignore_index": self.ignore_index,
            "label_values": self._label_values(),
            "input": "scene",
            "dataset": self.dataset_name,
            "scenes": [scene.name for scene in self.train_scenes],
        }

    def _label_values(self) -> int:
        """Largest label value of the probe scenes + 1 (0 when they have no labels)."""
        largest = [int(scene.labels.max()) for scene in self.probe_scenes if scene.labels is not None and scene.labels.size]
        return max(largest) + 1 if largest else 0

    # ------------------------------------------------------------------ loaders
    def _distribution(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_workers": self.num_workers, "collate_fn": pad_scenes}
        if self.num_workers > 0:
            options["persistent_workers"] = self.prefetch
            options["prefetch_factor"] = self.prefetch_factor
        if self.prefetch:
            options["pin_memory"] = torch.cuda.is_available()
        return options

    def train_dataloader(self) -> RepeatedBatches:
        self.setup()
        dataset = self.datasets["train"]
        replicas, rank = self._distribution()
        seed = _global_seed() if self.shuffle_seed is None else int(self.shuffle_seed)
        sampler = ResumableSampler(len(dataset), shuffle=True, seed=seed, num_replicas=replicas, rank=rank, pad=True)
        loader = ResumableDataLoader(
            dataset, sampler=sampler, batch_size=self.batch_size, drop_last=False, **self._loader_options()
        )
        return RepeatedBatches(loader, self.pairs_per_batch)

    def _probe_loader(self) -> DataLoader:
        self.setup()
        dataset = self.datasets["val"]
        replicas, rank = self._distribution()
        sampler = ResumableSampler(len(dataset), shuffle=False, num_replicas=replicas, rank=rank, pad=False)
        options = self._loader_options()
        options.pop("persistent_workers", None)
        options.pop("prefetch_factor", None)
        options["num_workers"] = 0
        return DataLoader(dataset, sampler=sampler, batch_size=1, **options)

    def val_dataloader(self) -> DataLoader:
        return self._probe_loader()

    def test_dataloader(self) -> DataLoader:
        return self._probe_loader()

    def predict_dataloader(self) -> DataLoader:
        return self._probe_loader()

    def save_artifacts(self, folder: str | os.PathLike) -> list[Path]:
        """Write ``normalization.json`` into a run folder (atomically) when the statistics are global."""
        if self.normalizer is None:
            return []
        return [self.normalizer.to_json(Path(folder) / "normalization.json")]


__all__ = [
    "ClusterScene",
    "ClusteringDataModule",
    "NORMALIZATION_MODES",
    "RepeatedBatches",
    "SceneDataset",
    "list_cube_files",
    "normalise_scene",
    "pad_scenes",
    "pooled_standardizer",
    "read_cube_file",
    "read_scene_labels",
    "scene_standardizer",
]
