"""Torch datasets over hyperspectral cubes: pixels, patches, scene crops, RGB/HSI pairs.

All datasets read a :class:`~hsikit.cube.Cube` (or a ``(C, H, W)`` array) *in
place*: a memory-mapped cube stays on disk and each item reads only its own
pixels. They pickle cheaply (a memory map is pickled as its file name, dtype,
offset, shape and strides and mapped again in the worker), so they work with
``DataLoader(num_workers > 0)`` under the fork, spawn and forkserver start methods.

Class-index convention
    Label maps hold class values ``1..K`` and ``ignore_value`` (default 0) for
    unlabelled pixels. A dataset returns the 0-based class index
    ``target = label - label_offset`` (default ``label_offset=1``: label 1 -> 0,
    label K -> K-1). Unlabelled pixels inside label crops become ``ignore_index``
    (default -100, the default ``ignore_index`` of ``torch.nn.CrossEntropyLoss``).
    For 0-based label maps with no unlabelled value (e.g. 0 = background class),
    pass ``label_offset=0, ignore_value=None``.

Items are float32 tensors; targets are int64. Normalisation (a fitted
:class:`~hsikit.spectral.normalize.Normalizer`) is applied to the pixels read.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from hsikit.cube import Cube
from hsikit.data.splits import Split
from hsikit.errors import ConfigError, InvalidLabelsError, ShapeMismatchError, SplitError
from hsikit.spectral.normalize import Normalizer, valid_pixel_mask

PaddingMode = Literal["reflect", "zero", "edge"]
_NUMPY_PAD_MODES = {"reflect": "reflect", "zero": "constant", "edge": "edge"}
DEFAULT_IGNORE_INDEX = -100


# ---------------------------------------------------------------------------- labels
def encode_labels(
    labels: np.ndarray,
    label_offset: int = 1,
    ignore_value: int | None = 0,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
) -> np.ndarray:
    """Class values to 0-based int64 class indices: ``label - label_offset``; ``ignore_value`` -> ``ignore_index``.

    Raises:
        ConfigError: a labelled pixel would get a negative index (wrong ``label_offset``).
    """
    values = np.asarray(labels).astype(np.int64)
    targets = values - int(label_offset)
    unlabelled = np.zeros(values.shape, dtype=bool) if ignore_value is None else values == ignore_value
    negative = (targets < 0) & ~unlabelled
    if negative.any():
        _raise_negative_index(int(values[negative].min()), label_offset, ignore_value)
    targets[unlabelled] = ignore_index
    return targets


def count_classes(labels: np.ndarray, label_offset: int = 1, ignore_value: int | None = 0) -> int:
    """``max(label) - label_offset + 1`` over the labelled pixels (0 when none), without an int64 copy.

    Raises:
        ConfigError: a labelled pixel would get a negative class index.
    """
    label_map = np.asarray(labels)
    values = label_map if ignore_value is None else label_map[label_map != ignore_value]
    if values.size == 0:
        return 0
    low, high = int(values.min()), int(values.max())
    if low - label_offset < 0:
        _raise_negative_index(low, label_offset, ignore_value)
    return high - int(label_offset) + 1


def _raise_negative_index(label: int, label_offset: int, ignore_value: int | None) -> None:
    raise ConfigError(
        f"label {label} minus label_offset={label_offset} gives a negative class index; for 0-based labels "
        f"pass label_offset=0, and set ignore_value to the value of unlabelled pixels (now {ignore_value})"
    )


def decode_targets(targets: np.ndarray, label_offset: int = 1) -> np.ndarray:
    """Inverse of :func:`encode_labels` for predicted class indices: ``target + label_offset``."""
    return np.asarray(targets).astype(np.int64) + int(label_offset)


# ---------------------------------------------------------------------------- memory maps
@dataclass(frozen=True)
class _MemmapReference:
    """Enough to map an array view of a file again in another process (read-only)."""

    filename: str
    file_offset: int
    dtype: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    def open(self) -> np.ndarray:
        whole_file = np.memmap(self.filename, dtype=np.uint8, mode="r")
        return np.ndarray(
            self.shape, dtype=np.dtype(self.dtype), buffer=whole_file, offset=self.file_offset, strides=self.strides
        )


def _memmap_reference(array: np.ndarray) -> _MemmapReference | None:
    """A reference for ``array`` if it is (a view of) a file-backed ``numpy.memmap``, else None."""
    base: Any = array
    while base is not None and not (isinstance(base, np.memmap) and getattr(base, "_mmap", None) is not None):
        base = getattr(base, "base", None)
    if base is None or not isinstance(base, np.memmap) or base.filename is None:
        return None
    mapping = base._mmap  # noqa: SLF001 - the mmap object is the only way to find the mapped file region
    mapping_start = np.frombuffer(mapping, dtype=np.uint8).__array_interface__["data"][0]
    mapped_file_offset = base.offset - base.offset % mmap.ALLOCATIONGRANULARITY
    element_address = array.__array_interface__["data"][0]
    return _MemmapReference(
        filename=str(base.filename),
        file_offset=mapped_file_offset + element_address - mapping_start,
        dtype=array.dtype.str,
        shape=tuple(array.shape),
        strides=tuple(array.strides),
    )


def _pack(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        reference = _memmap_reference(value)
        return value if reference is None else reference
    if isinstance(value, list):
        return [_pack(v) for v in value]
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, _MemmapReference):
        return value.open()
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    return value


class _InPlaceDataset(Dataset):
    """Pickles memory-mapped arrays as references, so workers map the file instead of copying it."""

    def __getstate__(self) -> dict[str, Any]:
        return {key: _pack(value) for key, value in self.__dict__.items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({key: _unpack(value) for key, value in state.items()})


# ---------------------------------------------------------------------------- pixels and patches
class PixelDataset(_InPlaceDataset):
    """One item per labelled pixel: its spectrum ``(C,)`` float32 and its class index (int64 scalar).

    Args:
        cube: the image, a :class:`Cube` or ``(C, H, W)`` array (a memory map stays on disk).
        labels: ``(H, W)`` integer label map, or None (targets are then ``ignore_index``, for prediction).
        split: take the pixels of ``split``'s ``part``; otherwise ``indices``; otherwise every
            labelled pixel (every pixel when ``labels`` is None). Nodata pixels of the cube are dropped.
        part: ``"train"``, ``"val"`` or ``"test"``.
        indices: flat pixel indices (``row * W + col``), used when ``split`` is None.
        normalizer: a fitted normaliser applied to each spectrum.
        label_offset, ignore_value, ignore_index: see the module's class-index convention.

    Attributes:
        rows, cols: int64 coordinates of the items, in order.
        num_classes: ``max(label) - label_offset + 1`` over the whole label map (0 without labels).
    """

    def __init__(
        self,
        cube: Cube | np.ndarray,
        labels: np.ndarray | None = None,
        split: Split | None = None,
        part: str = "train",
        indices: np.ndarray | Sequence[int] | None = None,
        normalizer: Normalizer | None = None,
        label_offset: int = 1,
        ignore_value: int | None = 0,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
    ) -> None:
        self.data, valid = _cube_array_and_validity(cube)
        height, width = self.data.shape[1:]
        label_map = None if labels is None else _check_label_map(labels, (height, width))
        self.rows, self.cols = _select_pixels(label_map, (height, width), split, part, indices, ignore_value, valid)
        if label_map is None:
            self.targets = np.full(self.rows.shape, ignore_index, dtype=np.int64)
            self.num_classes = 0
        else:
            self.num_classes = count_classes(label_map, label_offset, ignore_value)
            self.targets = encode_labels(label_map[self.rows, self.cols], label_offset, ignore_value, ignore_index)
        self.normalizer = normalizer
        self.label_offset = int(label_offset)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row, col = self.rows[index], self.cols[index]
        spectrum = _normalized_float32(np.asarray(self.data[:, row, col]), self.normalizer)
        return torch.from_numpy(np.ascontiguousarray(spectrum)), torch.tensor(self.targets[index])


class PatchDataset(PixelDataset):
    """One item per labelled pixel: the ``(C, p, p)`` patch centred on it and its class index.

    Patches reaching past the image border are padded with ``padding``:
    ``"reflect"`` (mirror without repeating the edge pixel, numpy's ``reflect``),
    ``"edge"`` (repeat the edge pixel) or ``"zero"``. Padding is applied after
    normalisation, so ``"zero"`` pads with the normalised value 0 (the band mean
    for standardisation). Only the window inside the image is read from the cube.

    Args:
        patch_size: odd side ``p`` of the patch, in pixels.
        padding: ``"reflect"``, ``"zero"`` or ``"edge"``.
        Other arguments: as :class:`PixelDataset`.
    """

    def __init__(
        self,
        cube: Cube | np.ndarray,
        labels: np.ndarray | None = None,
        patch_size: int = 9,
        split: Split | None = None,
        part: str = "train",
        indices: np.ndarray | Sequence[int] | None = None,
        padding: PaddingMode = "reflect",
        normalizer: Normalizer | None = None,
        label_offset: int = 1,
        ignore_value: int | None = 0,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
    ) -> None:
        if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
            raise ConfigError(f"patch_size must be a positive odd integer, got {patch_size!r}")
        if patch_size % 2 == 0:
            raise ConfigError(
                f"patch_size={patch_size} is even, but a patch is centred on its pixel; use an odd size "
                f"such as {patch_size - 1} or {patch_size + 1}"
            )
        if padding not in _NUMPY_PAD_MODES:
            raise ConfigError(f"padding must be one of {sorted(_NUMPY_PAD_MODES)}, got {padding!r}")
        super().__init__(
            cube, labels, split, part, indices, normalizer, label_offset, ignore_value, ignore_index
        )
        self.patch_size = int(patch_size)
        self.padding = padding

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row, col = int(self.rows[index]), int(self.cols[index])
        patch = read_patch(self.data, row, col, self.patch_size, self.padding, self.normalizer)
        return torch.from_numpy(patch), torch.tensor(self.targets[index])


def read_patch(
    data: np.ndarray,
    row: int,
    col: int,
    patch_size: int,
    padding: PaddingMode = "reflect",
    normalizer: Normalizer | None = None,
) -> np.ndarray:
    """The ``(C, p, p)`` float32 patch of ``data`` ``(C, H, W)`` centred on ``(row, col)``.

    Reads only the part of the window inside the image, normalises it, then pads.
    The result equals cropping ``np.pad(data, mode)`` of the whole image.
    """
    half = patch_size // 2
    height, width = data.shape[1:]
    top, bottom = max(row - half, 0), min(row + half + 1, height)
    left, right = max(col - half, 0), min(col + half + 1, width)
    window = np.asarray(data[:, top:bottom, left:right])
    window = _normalized_float32(window, normalizer)
    pads = ((0, 0), (top - (row - half), row + half + 1 - bottom), (left - (col - half), col + half + 1 - right))
    if any(p for pair in pads for p in pair):
        window = np.pad(window, pads, mode=_NUMPY_PAD_MODES[padding])  # type: ignore[call-overload]
    return np.ascontiguousarray(window, dtype=np.float32)


# ---------------------------------------------------------------------------- random crops
@dataclass(frozen=True)
class CropPlan:
    """Where item ``index`` of an epoch reads: source, top-left corner and dihedral transform."""

    source: int
    row: int
    col: int
    rotations: int  # quarter turns (counter-clockwise, numpy.rot90) applied after cropping
    flip: bool  # left-right flip applied after the rotation


class _CropSampler:
    """Deterministic crop positions: the same (seed, epoch, index) always gives the same crop."""

    def __init__(self, sizes: Sequence[tuple[int, int]], crop_size: int | None, seed: int, augment: bool) -> None:
        self.sizes = [(int(h), int(w)) for h, w in sizes]
        self.crop_size = crop_size
        self.seed = int(seed)
        self.augment = bool(augment)
        if crop_size is None:
            self.weights = np.full(len(sizes), 1.0 / len(sizes))
        else:
            positions = np.array([(h - crop_size + 1) * (w - crop_size + 1) for h, w in self.sizes], dtype=np.float64)
            self.weights = positions / positions.sum()

    def plan(self, epoch: int, index: int) -> CropPlan:
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        if self.crop_size is None:
            source, row, col = index % len(self.sizes), 0, 0
        else:
            source = int(rng.choice(len(self.sizes), p=self.weights)) if len(self.sizes) > 1 else 0
            height, width = self.sizes[source]
            row = int(rng.integers(0, height - self.crop_size + 1))
            col = int(rng.integers(0, width - self.crop_size + 1))
        rotations, flip = (int(rng.integers(0, 4)), bool(rng.integers(0, 2))) if self.augment else (0, False)
        return CropPlan(source, row, col, rotations, flip)


def apply_dihedral(array: np.ndarray, rotations: int, flip: bool) -> np.ndarray:
    """Rotate the last two axes by ``rotations`` quarter turns, then flip left-right if ``flip``."""
    out = np.rot90(array, rotations, axes=(-2, -1)) if rotations % 4 else array
    if flip:
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


class SceneCropDataset(_InPlaceDataset):
    """Random ``(C, s, s)`` crops from one or several cubes, optionally with their label crops.

    Item ``index`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e, index])``:
    the same seed, epoch and index always give the same crop (and augmentation), in any
    worker. Call :meth:`set_epoch` at the start of each epoch to draw new crops (with
    ``persistent_workers=False``, the default, workers see the new epoch). The source
    cube is chosen with probability proportional to its number of crop positions.

    Args:
        cubes: one :class:`Cube` / ``(C, H, W)`` array, or a list; all with the same band count.
        crop_size: side ``s`` of the square crops, in pixels.
        labels: None, or one ``(H, W)`` label map per cube; items are then ``(crop, target)``
            with ``target`` an ``(s, s)`` int64 map of class indices (see the module docstring).
        samples_per_epoch: dataset length; default: the number of non-overlapping crops that fit.
        seed: base seed of the crop positions.
        augment: apply one of the 8 flips/rotations (the same to crop and labels).
        normalizer: fitted normaliser applied to each crop.
        label_offset, ignore_value, ignore_index: see the module's class-index convention.
    """

    def __init__(
        self,
        cubes: Cube | np.ndarray | Sequence[Cube | np.ndarray],
        crop_size: int,
        labels: np.ndarray | Sequence[np.ndarray] | None = None,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        augment: bool = False,
        normalizer: Normalizer | None = None,
        label_offset: int = 1,
        ignore_value: int | None = 0,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
    ) -> None:
        sources = _as_source_list(cubes)
        self.arrays = [_as_chw(source, f"cube {i}") for i, source in enumerate(sources)]
        band_counts = {array.shape[0] for array in self.arrays}
        if len(band_counts) > 1:
            raise ShapeMismatchError(
                f"SceneCropDataset cubes have different band counts {[a.shape[0] for a in self.arrays]}; "
                "resample them to one band set first"
            )
        _check_crop_size(crop_size, [a.shape[1:] for a in self.arrays], "cube")
        self.labels: list[np.ndarray] | None = None
        if labels is not None:
            label_list = [labels] if isinstance(labels, np.ndarray) else list(labels)
            if len(label_list) != len(self.arrays):
                raise ShapeMismatchError(
                    f"{len(label_list)} label maps for {len(self.arrays)} cubes; give one per cube"
                )
            self.labels = [
                _check_label_map(label_map, array.shape[1:], f"labels {i}")
                for i, (label_map, array) in enumerate(zip(label_list, self.arrays))
            ]
            for label_map in self.labels:  # fail now on a wrong label_offset, not in a worker
                count_classes(label_map, label_offset, ignore_value)
        self.crop_size = int(crop_size)
        self.sampler = _CropSampler([a.shape[1:] for a in self.arrays], self.crop_size, seed, augment)
        if samples_per_epoch is None:
            samples_per_epoch = sum((h // self.crop_size) * (w // self.crop_size) for h, w in self.sampler.sizes)
        if samples_per_epoch < 1:
            raise ConfigError(f"samples_per_epoch must be at least 1, got {samples_per_epoch}")
        self.samples_per_epoch = int(samples_per_epoch)
        self.normalizer = normalizer
        self.label_offset, self.ignore_value, self.ignore_index = int(label_offset), ignore_value, int(ignore_index)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def plan(self, index: int) -> CropPlan:
        """Where item ``index`` of the current epoch comes from."""
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(f"index {index} out of range for a dataset of {self.samples_per_epoch} crops")
        return self.sampler.plan(self.epoch, index)

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        plan = self.plan(index)
        rows = slice(plan.row, plan.row + self.crop_size)
        cols = slice(plan.col, plan.col + self.crop_size)
        crop = _normalized_float32(np.asarray(self.arrays[plan.source][:, rows, cols]), self.normalizer)
        crop_tensor = torch.from_numpy(apply_dihedral(crop, plan.rotations, plan.flip))
        if self.labels is None:
            return crop_tensor
        label_crop = self.labels[plan.source][rows, cols]
        target = encode_labels(label_crop, self.label_offset, self.ignore_value, self.ignore_index)
        return crop_tensor, torch.from_numpy(apply_dihedral(target, plan.rotations, plan.flip))


class PairedDataset(_InPlaceDataset):
    """Aligned crops of paired RGB ``(3, H, W)`` and HSI ``(C, H, W)`` images: items ``(rgb, hsi)``.

    The same crop window and the same flip/rotation are applied to both. Crops are
    deterministic per (seed, epoch, index) as in :class:`SceneCropDataset`.

    Args:
        rgb: one ``(3, H, W)`` array (or Cube), or a list of them.
        hsi: one ``(C, H, W)`` Cube or array, or a list of the same length, pair by pair.
        crop_size: side of the square crops; None: whole images, one item per pair.
        samples_per_epoch: dataset length with crops; default: non-overlapping crops that fit.
            Without crops the length is the number of pairs.
        seed, augment: as :class:`SceneCropDataset`.
        rgb_normalizer, hsi_normalizer: normalisers applied to each side (e.g.
            ``FixedScale(255)`` for 8-bit RGB).
        rgb_channels: required channel count of ``rgb`` (None: any).

    Raises:
        ShapeMismatchError: a pair whose spatial sizes differ, an RGB image without
            ``rgb_channels`` channels first, HSI images with different band counts.
    """

    def __init__(
        self,
        rgb: np.ndarray | Cube | Sequence[np.ndarray | Cube],
        hsi: np.ndarray | Cube | Sequence[np.ndarray | Cube],
        crop_size: int | None = None,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        augment: bool = False,
        rgb_normalizer: Normalizer | None = None,
        hsi_normalizer: Normalizer | None = None,
        rgb_channels: int | None = 3,
    ) -> None:
        rgb_list, hsi_list = _as_source_list(rgb), _as_source_list(hsi)
        if len(rgb_list) != len(hsi_list):
            raise ShapeMismatchError(f"{len(rgb_list)} RGB images for {len(hsi_list)} HSI images; pair them one to one")
        self.rgb = [_as_chw(image, f"rgb {i}") for i, image in enumerate(rgb_list)]
        self.hsi = [_as_chw(image, f"hsi {i}") for i, image in enumerate(hsi_list)]
        for i, (rgb_image, hsi_image) in enumerate(zip(self.rgb, self.hsi)):
            if rgb_channels is not None and rgb_image.shape[0] != rgb_channels:
                raise ShapeMismatchError(
                    f"rgb {i} has shape {rgb_image.shape}, not ({rgb_channels}, H, W); move the channel axis "
                    f"first (np.moveaxis(rgb, -1, 0)) or pass rgb_channels=None for other cameras"
                )
            if rgb_image.shape[1:] != hsi_image.shape[1:]:
                raise ShapeMismatchError(
                    f"pair {i}: rgb {rgb_image.shape} and hsi {hsi_image.shape} differ in spatial size; both must "
                    "be channels-first (C, H, W) images of the same scene, registered pixel to pixel"
                )
        if len({image.shape[0] for image in self.hsi}) > 1:
            raise ShapeMismatchError(f"HSI images have different band counts {[h.shape[0] for h in self.hsi]}")
        sizes = [image.shape[1:] for image in self.hsi]
        if crop_size is not None:
            _check_crop_size(crop_size, sizes, "pair")
        self.crop_size = None if crop_size is None else int(crop_size)
        self.sampler = _CropSampler(sizes, self.crop_size, seed, augment)
        if self.crop_size is None:
            length = len(self.hsi)
        elif samples_per_epoch is None:
            length = sum((h // self.crop_size) * (w // self.crop_size) for h, w in sizes)
        else:
            length = int(samples_per_epoch)
        if length < 1:
            raise ConfigError(f"samples_per_epoch must be at least 1, got {length}")
        self.length = length
        self.rgb_normalizer, self.hsi_normalizer = rgb_normalizer, hsi_normalizer
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def plan(self, index: int) -> CropPlan:
        """Where item ``index`` of the current epoch comes from."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        return self.sampler.plan(self.epoch, index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        plan = self.plan(index)
        outputs = []
        for images, normalizer in ((self.rgb, self.rgb_normalizer), (self.hsi, self.hsi_normalizer)):
            image = images[plan.source]
            if self.crop_size is not None:
                image = image[:, plan.row : plan.row + self.crop_size, plan.col : plan.col + self.crop_size]
            array = _normalized_float32(np.asarray(image), normalizer)
            outputs.append(torch.from_numpy(apply_dihedral(array, plan.rotations, plan.flip)))
        return outputs[0], outputs[1]


# ---------------------------------------------------------------------------- helpers
def _normalized_float32(array: np.ndarray, normalizer: Normalizer | None) -> np.ndarray:
    """``array`` (cube dtype) normalised (in float64 by the normaliser) and cast to float32."""
    if normalizer is not None:
        array = normalizer.transform(array)
    return array.astype(np.float32, copy=False)


def _as_source_list(value: Any) -> list[Any]:
    if isinstance(value, (Cube, np.ndarray)):
        return [value]
    items = list(value)
    if not items:
        raise ConfigError("no image given; pass a Cube, a (C, H, W) array, or a non-empty list of them")
    return items


def _as_chw(source: Cube | np.ndarray, name: str) -> np.ndarray:
    if isinstance(source, Cube):
        return source.data
    array = source if isinstance(source, np.ndarray) else np.asarray(source)
    if array.ndim != 3:
        raise ShapeMismatchError(
            f"{name} has shape {array.shape}; a (C, H, W) array is needed (use Cube.from_hwc for (H, W, C) data)"
        )
    return array


def _cube_array_and_validity(cube: Cube | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``(C, H, W)`` array and the ``(H, W)`` valid mask (None when every pixel is valid)."""
    if isinstance(cube, Cube):
        if cube.nodata is None and cube.explicit_nodata_mask is None:
            return cube.data, None
        return cube.data, valid_pixel_mask(cube)
    return _as_chw(cube, "cube"), None


def _check_label_map(labels: np.ndarray, spatial: tuple[int, ...], name: str = "labels") -> np.ndarray:
    label_map = np.asarray(labels)
    if label_map.shape != tuple(spatial):
        raise ShapeMismatchError(
            f"{name} of shape {label_map.shape} do not match the cube's spatial size {tuple(spatial)}; "
            "labels must be (H, W) and cover the same pixels as the cube"
        )
    if label_map.dtype.kind not in "iub":
        if label_map.dtype.kind == "f" and np.all(np.isfinite(label_map)) and np.all(label_map == np.round(label_map)):
            return label_map.astype(np.int64)
        raise InvalidLabelsError(f"{name} must hold integer class values, got dtype {label_map.dtype} with fractions")
    return label_map


def _select_pixels(
    label_map: np.ndarray | None,
    spatial: tuple[int, int],
    split: Split | None,
    part: str,
    indices: np.ndarray | Sequence[int] | None,
    ignore_value: int | None,
    valid: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    height, width = spatial
    if split is not None:
        if split.image_shape != (height, width):
            raise ShapeMismatchError(
                f"the split was made for a {split.image_shape} image, the cube is {height}x{width}; "
                "make the split from this scene's labels"
            )
        flat = split.indices(part)
    elif indices is not None:
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= height * width):
            raise SplitError(
                f"pixel indices must lie in 0..{height * width - 1} for a {height}x{width} cube, got "
                f"{int(flat.min())}..{int(flat.max())}"
            )
    elif label_map is None or ignore_value is None:
        flat = np.arange(height * width, dtype=np.int64)
    else:
        flat = np.flatnonzero(label_map.reshape(-1) != ignore_value)
    if label_map is not None and ignore_value is not None and (split is not None or indices is not None):
        unlabelled = label_map.reshape(-1)[flat] == ignore_value
        if unlabelled.any():
            raise SplitError(
                f"{int(unlabelled.sum())} selected pixel(s) are unlabelled (label {ignore_value}) in these labels, "
                f"e.g. pixel {int(flat[unlabelled][0])}; the split or indices were made from other labels"
            )
    if valid is not None:
        flat = flat[valid.reshape(-1)[flat]]
    rows, cols = np.divmod(flat, width)
    return rows.astype(np.int64), cols.astype(np.int64)


def _check_crop_size(crop_size: Any, sizes: Sequence[tuple[int, ...]], what: str) -> None:
    if isinstance(crop_size, bool) or not isinstance(crop_size, (int, np.integer)) or crop_size < 1:
        raise ConfigError(f"crop_size must be a positive integer, got {crop_size!r}")
    for i, (height, width) in enumerate(sizes):
        if crop_size > min(height, width):
            raise ShapeMismatchError(
                f"crop_size={crop_size} does not fit {what} {i} of {height}x{width} pixels; use crop_size <= "
                f"{min(height, width)}"
            )
