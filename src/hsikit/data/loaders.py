"""Scene loaders: registered files → :class:`Scene` (Cube + labels + class names + extra arrays).

``load_dataset(name, scene=None, root=None)`` finds the files of a registered dataset under the
data root (``HSIKIT_DATA_DIR``, default ``~/.cache/hsikit``, or ``root=``), verifies them
(:mod:`hsikit.data.download`; missing files are downloaded unless ``download=False``), reads
them through :func:`hsikit.io.open_cube` / :func:`hsikit.io.open_labels`, and returns a
:class:`Scene` whose cube is ``(bands, H, W)`` with the registry's wavelengths and whose label
map is ``(H, W)`` int64 with 0 = unlabelled and classes ``1..K`` named by ``class_names``.

Label conventions:

* classification: file values are the classes (Salinas-A's 1, 10-14 are remapped to 1-6);
* unmixing (Samson, Jasper Ridge, Urban): labels are the argmax of the ground-truth
  abundances plus one; ``extras["abundances"]`` is ``(K, H, W)`` and ``extras["endmembers"]``
  ``(bands, K)``, in ``class_names`` order;
* anomaly: 1 = anomaly, 0 = background (``class_names == ("anomaly",)``);
* glacier segmentation: file values 0/1/2 become 1/2/3 (background, clean glacier,
  debris-covered glacier), so 0 keeps meaning "unlabelled".

CAVE band images are PNG files, one per band, a layout :mod:`hsikit.io` has no cube reader for;
that loader stacks them itself with Pillow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.cube import Cube
from hsikit.data.download import ensure_file, verify_file
from hsikit.data.paths import data_dir
from hsikit.data.registry import DatasetInfo, arad1k_split_names, dataset_info
from hsikit.errors import (
    ConfigError,
    CorruptFileError,
    DatasetNotAvailableError,
    InvalidLabelsError,
    ShapeMismatchError,
    UnknownNameError,
)

__all__ = ["Scene", "load_dataset", "registered_loaders"]


@dataclass
class Scene:
    """One loaded scene.

    Attributes:
        name: registry name of the dataset.
        cube: the image, ``(bands, H, W)``, with wavelengths (nm) when known and the
            georeference when the file has one. ``cube.metadata`` names the dataset, scene and
            source file.
        labels: ``(H, W)`` int64 label map, 0 = unlabelled (background for anomaly scenes),
            classes ``1..K``; None when the dataset has no labels (ARAD-1K, CAVE).
        class_names: names of classes ``1..K`` (``class_names[k - 1]`` names label ``k``).
        info: the registry entry.
        scene: scene id within a multi-scene dataset (tile, image), else None.
        extras: further arrays: ``abundances`` ``(K, H, W)`` and ``endmembers`` ``(bands, K)``
            for unmixing sets, ``anomaly_mask`` ``(H, W)`` bool, ``rgb`` ``(H, W, 3)`` uint8 for
            ARAD-1K.
        files: the files read, each with its check state (``"verified"`` when its registered
            sha256 matched, ``"unverified"`` when no digest is registered, ``"unchecked"`` for
            files outside the registry such as ARAD-1K scenes).
    """

    name: str
    cube: Cube
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    info: DatasetInfo
    scene: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of labelled classes K (label 0 excluded)."""
        return len(self.class_names)

    @property
    def verified(self) -> bool:
        """True when every file read matched a registered sha256."""
        return bool(self.files) and all(state == "verified" for state in self.files.values())

    def class_counts(self) -> np.ndarray:
        """Pixels per class, ``(K,)`` int64: ``counts[k - 1]`` is the number of pixels of label ``k``."""
        if self.labels is None:
            raise InvalidLabelsError(f"{self.name}: this dataset has no labels to count")
        counts = np.bincount(self.labels.ravel(), minlength=self.num_classes + 1)
        return counts[1 : self.num_classes + 1].astype(np.int64)

    def __repr__(self) -> str:
        scene = f", scene={self.scene!r}" if self.scene is not None else ""
        labels = "no labels" if self.labels is None else f"{self.num_classes} classes"
        return f"Scene({self.name!r}{scene}, cube={self.cube.shape}, {labels})"


# ============================================================================ entry point
Loader = Callable[..., Scene]
_LOADERS: dict[str, Loader] = {}


def _loader(name: str) -> Callable[[Loader], Loader]:
    def register(function: Loader) -> Loader:
        _LOADERS[name] = function
        return function

    return register


def load_dataset(
    name: str,
    scene: str | int | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
    **options: Any,
) -> Scene:
    """Load a registered dataset (one scene of it for multi-scene datasets) as a :class:`Scene`.

    Args:
        name: registry name in any spelling (``"indian-pines"``, ``"Indian Pines"``, ``"IP"``).
        scene: scene id for multi-scene datasets (``"1"`` for a glacier tile,
            ``"ARAD_1K_0901"`` or ``901``, ``"balloons"``); must be None otherwise.
        root: data root holding the dataset folders (default ``HSIKIT_DATA_DIR`` or
            ``~/.cache/hsikit``). Point it at the shared test data to load offline.
        download: fetch missing files that have a URL (False raises instead).
        progress: show download progress bars.
        **options: loader options listed in ``DatasetInfo.loader_options`` (e.g. ``endmembers=4``
            for Urban); anything else raises :class:`~hsikit.errors.ConfigError`.

    Raises:
        UnknownNameError: unknown dataset or scene (with close matches).
        DatasetNotAvailableError: files must be fetched by hand (message says how).
        ChecksumError, DownloadError: see :mod:`hsikit.data.download`.
    """
    info = dataset_info(name)
    root_path = Path(root).expanduser() if root is not None else data_dir()
    scene_id = _resolve_scene(info, scene)
    loader = _LOADERS.get(info.loader)
    if loader is None:
        raise UnknownNameError(f"dataset {info.name!r} names loader {info.loader!r}, which does not exist; "
                               f"known loaders: {', '.join(sorted(_LOADERS))}")
    unknown = sorted(set(options) - set(info.loader_options))
    if unknown:
        accepted = ", ".join(sorted(info.loader_options)) or "none"
        raise ConfigError(f"load_dataset({info.name!r}) got unknown options {unknown}; this dataset accepts: {accepted}")
    context = _Context(info, root_path, download, progress)
    return loader(context, scene_id, **options)


def _resolve_scene(info: DatasetInfo, scene: str | int | None) -> str | None:
    if not info.scenes:
        if scene is not None:
            raise UnknownNameError(f"dataset {info.name!r} is a single scene; call load_dataset without scene=")
        return None
    if scene is None:
        shown = ", ".join(info.scenes[:6]) + (", ..." if len(info.scenes) > 6 else "")
        raise UnknownNameError(f"dataset {info.name!r} has {len(info.scenes)} scenes ({shown}); pass scene=")
    text = str(scene)
    if info.name == "arad-1k" and re.fullmatch(r"\d{1,4}", text):
        text = f"ARAD_1K_{int(text):04d}"
    if text in info.scenes:
        return text
    if info.name == "arad-1k" and re.fullmatch(r"ARAD_1K_\d{4}", text) and 1 <= int(text[-4:]) <= 1000:
        # Test scenes (0951-1000) have RGB only, and the three scenes missing from the MST++
        # train list still exist in the archive: accept any real scene number.
        return text
    import difflib

    close = difflib.get_close_matches(text, list(info.scenes), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"dataset {info.name!r} has no scene {text!r}{hint}")


@dataclass
class _Context:
    """What a loader needs to find and check files."""

    info: DatasetInfo
    root: Path
    download: bool
    progress: bool
    files: dict[str, str] = field(default_factory=dict)

    def fetch(self, relative: str) -> Path:
        """A registered file, verified (and downloaded when allowed and needed)."""
        remote = self.info.file(relative)
        path = ensure_file(remote, self.root, download=self.download, progress=self.progress, dataset=self.info)
        self.files[str(path)] = "verified" if remote.sha256 else verify_file(path, None, remote.size)
        return path

    def local(self, relative: str) -> Path:
        """A file of a manual dataset that is not listed file by file (ARAD-1K, CAVE)."""
        path = self.root.joinpath(*relative.split("/"))
        if not path.is_file():
            raise DatasetNotAvailableError(
                f"{path}: not found.\n{self.info.instructions}\n(data root here: {self.root})"
            )
        self.files[str(path)] = "unchecked"
        return path

    def option(self, key: str, options: Mapping[str, Any]) -> Any:
        return options.get(key, self.info.loader_options.get(key))


# ============================================================================ helpers
def _read_cube(path: Path, info: DatasetInfo, key: str | None = None, layout: str | None = None) -> Cube:
    """The cube of ``path`` through :func:`hsikit.io.open_cube`, with the registry's band centres/FWHM."""
    from hsikit.io import open_cube

    extra: dict[str, Any] = {}
    if info.fwhm is not None:
        extra["fwhm"] = info.fwhm_array()
    return open_cube(path, key=key, layout=layout or "auto", wavelengths=info.wavelength_array(), **extra)


def _read_labels(path: Path, shape: tuple[int, int], key: str | None = None) -> np.ndarray:
    from hsikit.io import open_labels

    labels = open_labels(path, key=key, expected_shape=shape)
    if labels.shape != shape:  # open_labels checks this; kept so a loader never returns misaligned maps
        raise ShapeMismatchError(f"'{path}': labels of shape {labels.shape} for a cube of {shape} pixels")
    return labels


def _remap_labels(labels: np.ndarray, info: DatasetInfo, source: Path) -> np.ndarray:
    """File label values → ``0..K`` int64 (0 = unlabelled), checking for unknown values."""
    values = np.asarray(labels)
    if values.dtype.kind not in "iub":
        raise InvalidLabelsError(f"'{source}': labels of dtype {values.dtype} are not class ids")
    values = values.astype(np.int64)
    if info.label_codes is None:
        allowed = np.arange(0, info.num_classes + 1)
        result = values
    else:
        lookup = {int(code): index for index, code in enumerate(info.label_codes, start=1)}
        allowed = np.array(sorted({0, *lookup}))
        result = np.zeros_like(values)
        for code, index in lookup.items():
            result[values == code] = index
    unexpected = np.setdiff1d(np.unique(values), allowed)
    if unexpected.size:
        expected = "0 (unlabelled)" + (
            f", {', '.join(str(c) for c in info.label_codes)}" if info.label_codes else f" and 1..{info.num_classes}"
        )
        raise InvalidLabelsError(
            f"'{source}': label values {unexpected.tolist()} are not classes of {info.name} (expected {expected}); "
            "the file is another version of the dataset, or labels of another scene"
        )
    return result


def _tag(cube: Cube, info: DatasetInfo, scene: str | None, source: Path) -> Cube:
    metadata = dict(cube.metadata)
    metadata.setdefault("source", str(source))
    metadata["dataset"] = info.name
    if scene is not None:
        metadata["scene"] = scene
    cube.metadata = metadata
    return cube


# ============================================================================ loaders
@_loader("indian_pines")
@_loader("mat_scene")
def _load_labelled_scene(context: _Context, scene: str | None, **options: Any) -> Scene:
    """A cube file + a label file (Indian Pines .npy, the GIC .mat scenes)."""
    info = context.info
    cube_path = context.fetch(context.option("cube", options))
    labels_path = context.fetch(context.option("labels", options))
    cube = _read_cube(cube_path, info, key=context.option("cube_key", options), layout=context.option("layout", options))
    labels = _read_labels(labels_path, (cube.height, cube.width), key=context.option("labels_key", options))
    labels = _remap_labels(labels, info, labels_path)
    return Scene(info.name, _tag(cube, info, scene, cube_path), labels, info.class_names, info, scene,
                 files=dict(context.files))


@_loader("anomaly_mat")
def _load_anomaly(context: _Context, scene: str | None, **options: Any) -> Scene:
    """One .mat file holding the cube and the binary anomaly map."""
    info = context.info
    path = context.fetch(context.option("cube", options))
    cube = _read_cube(path, info, key=context.option("cube_key", options), layout=context.option("layout", options))
    raw = _read_labels(path, (cube.height, cube.width), key=context.option("labels_key", options))
    values = np.unique(raw)
    if not np.isin(values, (0, 1)).all():
        raise InvalidLabelsError(
            f"'{path}': an anomaly map must hold 0 (background) and 1 (anomaly), found values {values.tolist()}"
        )
    labels = raw.astype(np.int64)
    return Scene(info.name, _tag(cube, info, scene, path), labels, info.class_names, info, scene,
                 extras={"anomaly_mask": labels.astype(bool)}, files=dict(context.files))


@_loader("glacier")
def _load_glacier(context: _Context, scene: str | None, **options: Any) -> Scene:
    """A GeoTIFF tile and its label GeoTIFF (georeference kept on the Cube)."""
    info = context.info
    assert scene is not None
    image_path = context.fetch(str(context.option("images", options)).format(scene=scene))
    labels_path = context.fetch(str(context.option("labels", options)).format(scene=scene))
    cube = _read_cube(image_path, info)
    labels = _remap_labels(_read_labels(labels_path, (cube.height, cube.width)), info, labels_path)
    return Scene(info.name, _tag(cube, info, scene, image_path), labels, info.class_names, info, scene,
                 files=dict(context.files))


_URBAN_NAMES = {
    4: ("Asphalt", "Grass", "Tree", "Roof"),
    5: ("Asphalt", "Grass", "Tree", "Roof", "Dirt"),
    6: ("Asphalt", "Grass", "Tree", "Roof", "Metal", "Dirt"),
}
# Names used in ground-truth files for the registry's class names.
_MATERIAL_SYNONYMS = {"rock": "soil"}


@_loader("pixel_matrix_unmixing")
@_loader("envi_unmixing")
def _load_unmixing(context: _Context, scene: str | None, **options: Any) -> Scene:
    """An unmixing cube + Zhu-style ground truth (``M`` endmembers, ``A`` abundances, ``cood`` names)."""
    info = context.info
    class_names = info.class_names
    ground_truth = str(context.option("ground_truth", options))
    if "{endmembers}" in ground_truth:
        count = int(context.option("endmembers", options))
        if count not in _URBAN_NAMES:
            raise UnknownNameError(f"{info.name}: ground truth exists for 4, 5 or 6 endmembers, not {count}")
        ground_truth = ground_truth.format(endmembers=count)
        class_names = _URBAN_NAMES[count]
    cube_path = context.fetch(context.option("cube", options))
    gt_path = context.fetch(ground_truth)
    cube = _read_cube(cube_path, info, key=context.option("cube_key", options))
    abundances, endmembers = _read_ground_truth(gt_path, cube, class_names)
    labels = np.argmax(abundances, axis=0).astype(np.int64) + 1
    extras = {"abundances": abundances, "endmembers": endmembers}
    return Scene(info.name, _tag(cube, info, scene, cube_path), labels, tuple(class_names), info, scene,
                 extras=extras, files=dict(context.files))


def _read_ground_truth(path: Path, cube: Cube, class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Abundances ``(K, H, W)`` float32 and endmembers ``(bands, K)`` in ``class_names`` order."""
    from hsikit.io.matlab import MatFile

    mat = MatFile(path)
    arrays = mat.load_many(["A", "M"])
    count = len(class_names)
    pixels = cube.height * cube.width
    abundance_matrix = np.asarray(arrays["A"], dtype=np.float64)
    if abundance_matrix.shape != (count, pixels) and abundance_matrix.shape == (pixels, count):
        abundance_matrix = abundance_matrix.T
    if abundance_matrix.shape != (count, pixels):
        raise ShapeMismatchError(
            f"'{path}': abundances A of shape {abundance_matrix.shape} do not fit {count} endmembers x "
            f"{cube.height}x{cube.width} pixels of the cube; the ground truth belongs to another version"
        )
    endmembers = np.asarray(arrays["M"], dtype=np.float64)
    if endmembers.shape != (cube.bands, count) and endmembers.shape == (count, cube.bands):
        endmembers = endmembers.T
    if endmembers.shape != (cube.bands, count):
        raise ShapeMismatchError(
            f"'{path}': endmembers M of shape {endmembers.shape} do not fit {cube.bands} bands x {count} endmembers"
        )
    order = _ground_truth_order(mat, class_names, path)
    # Pixels are numbered column by column (MATLAB order), as in the cube's (bands, pixels) matrix.
    abundances = abundance_matrix[order].reshape((count, cube.height, cube.width), order="F")
    return abundances.astype(np.float32), endmembers[:, order]


def _ground_truth_order(mat: Any, class_names: tuple[str, ...], path: Path) -> list[int]:
    """Row of ``A`` for each of ``class_names``, from the file's ``cood`` names (identity without them)."""
    if "cood" not in mat.variables:
        return list(range(len(class_names)))
    try:
        raw = mat.load("cood")
    except CorruptFileError:
        return list(range(len(class_names)))
    names = [_material_name(entry) for entry in np.asarray(raw, dtype=object).ravel()]
    wanted = [name.lower() for name in class_names]
    if sorted(names) != sorted(wanted):
        raise CorruptFileError(
            f"'{path}': ground-truth materials {names} do not match the registered classes {list(class_names)}; "
            "the file is another ground-truth version"
        )
    return [names.index(name) for name in wanted]


def _material_name(entry: Any) -> str:
    """``'1-rock'`` / ``['#2 Tree']`` → ``'soil'`` / ``'tree'`` (number prefixes and synonyms removed)."""
    value = entry
    while isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    text = re.sub(r"^[#\s\d\-_.:]+", "", str(value)).strip().lower()
    return _MATERIAL_SYNONYMS.get(text, text)


@_loader("arad1k")
def _load_arad1k(context: _Context, scene: str | None, **options: Any) -> Scene:
    """One ARAD-1K scene: spectra (31, 482, 512) and, when present, the RGB JPEG."""
    info = context.info
    assert scene is not None
    spectra = context.local(str(context.option("spectra", options)).format(scene=scene))
    cube = _read_cube(spectra, info, key=context.option("cube_key", options), layout="HWC")
    cube = cube.astype(np.float32) if cube.dtype != np.float32 else cube
    extras: dict[str, Any] = {}
    rgb_path = context.root.joinpath(*str(context.option("rgb", options)).format(scene=scene).split("/"))
    if rgb_path.is_file():
        extras["rgb"] = _read_rgb(rgb_path, (cube.height, cube.width))
        context.files[str(rgb_path)] = "unchecked"
    splits = {split: set(arad1k_split_names(split)) for split in ("train", "valid", "test")}
    cube.metadata["split"] = next((split for split, names in splits.items() if scene in names), None)
    return Scene(info.name, _tag(cube, info, scene, spectra), None, (), info, scene, extras=extras,
                 files=dict(context.files))


def _read_rgb(path: Path, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except OSError as error:
        raise CorruptFileError(f"'{path}': cannot read the RGB image ({error}); download it again") from error
    if rgb.shape[:2] != shape:
        raise ShapeMismatchError(f"'{path}': RGB image of {rgb.shape[:2]} pixels for a cube of {shape} pixels")
    return rgb


@_loader("cave")
def _load_cave(context: _Context, scene: str | None, **options: Any) -> Scene:
    """One CAVE scene: 31 single-band PNG files stacked to (31, 512, 512), scaled to [0, 1]."""
    info = context.info
    assert scene is not None
    folder = context.root / str(context.option("folder", options)) / f"{scene}_ms"
    candidates = [folder / f"{scene}_ms", folder]
    band_files: list[Path] = []
    for candidate in candidates:
        band_files = sorted(candidate.glob(f"{scene}_ms_[0-9][0-9].png"))
        if band_files:
            break
    if len(band_files) != 31:
        raise DatasetNotAvailableError(
            f"{folder}: expected 31 band images {scene}_ms_01.png ... {scene}_ms_31.png, found {len(band_files)}.\n"
            f"{info.instructions}\n(data root here: {context.root})"
        )
    from PIL import Image

    bands = []
    for band_file in band_files:
        try:
            with Image.open(band_file) as image:
                array = np.asarray(image)
        except OSError as error:
            raise CorruptFileError(f"'{band_file}': cannot read the band image ({error}); unpack it again") from error
        if array.ndim == 3:  # a few CAVE band files are stored as RGB(A) with equal channels
            array = array[..., 0]
        scale = float(np.iinfo(array.dtype).max) if array.dtype.kind in "iu" else 1.0
        bands.append(array.astype(np.float32) / np.float32(scale))
        context.files[str(band_file)] = "unchecked"
    shapes = {b.shape for b in bands}
    if len(shapes) != 1:
        raise ShapeMismatchError(f"{folder}: band images have different sizes {sorted(shapes)}")
    cube = Cube(np.stack(bands), wavelengths=info.wavelength_array(), metadata={"source": str(folder)})
    return Scene(info.name, _tag(cube, info, scene, folder), None, (), info, scene, files=dict(context.files))


def registered_loaders() -> list[str]:
    """Names of the loaders datasets can refer to (``DatasetInfo.loader``)."""
    return sorted(_LOADERS)

