"""Reading result folders for ``hsikit viz``: what a folder holds, and which prediction goes with which target.

The conventions (also in ``docs/visualisation.md``):

* **Where predictions are.** In a run folder of the engine (``metrics.json``, ``config.yaml``,
  ``model/``), in its ``predictions/`` folder; in any other folder, in ``predictions/``,
  ``hsi/`` or ``pred/`` when one exists, else in the folder itself. A single file may be
  given instead of a folder.
* **What a file is**, from its name (stem, case-insensitive):
  ``class_map*`` / ``*_class_map`` / ``*_classes`` → class map; ``cluster_map*`` /
  ``*_clusters`` → cluster map; ``latent*`` / ``*_latent`` → latent cube (autoencoders);
  ``reconstruction*`` / ``*_reconstruction`` → an autoencoder's reconstructed cube;
  ``probabilit*`` files are skipped; anything else is a predicted cube named after its scene.
  When ``config.json`` says the folder is a segmentation / classification / clustering result,
  unnamed files are class (or cluster) maps instead.
* **Formats**: everything :func:`hsikit.io.open_cube` reads (``.npy``, ``.npz``, ``.mat`` v5 and
  v7.3 with ``cube`` / ``bands`` / ``norm_factor``, GeoTIFF, ENVI ``.hdr``) and, for maps,
  :func:`hsikit.io.open_labels` (also ``.png``).
* **Targets** come from ``--targets`` (a file or a folder), else from a ``targets/``, ``gt/`` or
  ``ground_truth/`` folder inside the result folder. A prediction and a target belong together
  when their stems agree, ignoring case and the suffixes ``_pred``, ``_prediction``, ``_gt``,
  ``_target``, ``_crop``; one prediction and one target always pair.
* **Inputs**: RGB images in ``rgb/`` or ``inputs/`` (``.png``/``.jpg``, same stems) are shown as the
  network's input.
* **Facts** from ``config.json`` in the folder (optional): ``kind`` (``reconstruction``,
  ``segmentation``, ``classification``, ``clustering``, ``autoencoder``), ``method`` (display name),
  ``class_names`` (list for label values ``first_label``.., or ``{"value": name}``),
  ``first_label`` (default 1), ``unlabelled_value`` (default 0, ``null`` when every value is a
  class), ``wavelengths`` (nm, for files that store none), ``layout`` (``CHW``/``HWC`` of ``.npy``
  files). A run folder's exported ``model/config.json`` supplies ``task``, ``class_names``,
  ``wavelengths`` and ``extra.label_offset`` the same way.
* **Scores**: ``metrics.json`` may hold per-scene scores as ``{"per_scene": {scene: {metric: value}}}``
  at its top level or inside a stage section (``"test": {"per_scene": ...}``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.cube import Cube
from hsikit.errors import ConfigError, DataFileNotFoundError, HsikitError, LayoutError, ShapeMismatchError

#: Cube file extensions a result folder may hold (ENVI through its ``.hdr``).
CUBE_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".mat", ".tif", ".tiff", ".hdr")
#: Label-map extensions (cube formats plus PNG).
LABEL_SUFFIXES: tuple[str, ...] = CUBE_SUFFIXES + (".png",)
#: RGB input extensions.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
PREDICTION_FOLDERS: tuple[str, ...] = ("predictions", "hsi", "pred")
TARGET_FOLDERS: tuple[str, ...] = ("targets", "gt", "ground_truth")
INPUT_FOLDERS: tuple[str, ...] = ("rgb", "inputs")
KINDS: tuple[str, ...] = ("reconstruction", "segmentation", "classification", "clustering", "autoencoder")
_CLASS_KINDS = ("segmentation", "classification")
_SCENE_SUFFIXES = ("_prediction", "_pred", "_target", "_gt", "_crop")

# (role, pattern on the lower-case stem); the pattern's "scene" group names the scene
_ROLE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("skip", re.compile(r"^.*probabilit.*$")),
    ("cluster_map", re.compile(r"^cluster_map_?(?P<scene>.*)$|^(?P<scene2>.+?)_(cluster_map|clusters)$")),
    ("class_map", re.compile(r"^class_map_?(?P<scene>.*)$|^(?P<scene2>.+?)_(class_map|classes)$")),
    ("latent", re.compile(r"^latent_?(?P<scene>.*)$|^(?P<scene2>.+?)_latent$")),
    ("reconstruction", re.compile(r"^reconstruction_?(?P<scene>.*)$|^(?P<scene2>.+?)_reconstruction$")),
)


@dataclass
class ResultFolder:
    """What one result folder (one method) holds.

    Attributes:
        root: the folder (or the single file) given.
        name: the method's display name (``config.json`` ``method``, else the folder name).
        kind: one of :data:`KINDS`, from the configs or the files found.
        cubes: predicted cubes, ``{scene: file}``.
        class_maps, cluster_maps, latents, reconstructions: other predictions, ``{scene: file}``.
        targets: targets found inside the folder, ``{scene: file}``.
        inputs: RGB inputs, ``{scene: file}``.
        class_names, first_label, unlabelled_value: label conventions (:mod:`hsikit.viz.maps`).
        wavelengths: band centres (nm) for files that store none, or None.
        layout: ``"CHW"``/``"HWC"``/``"auto"`` for ``.npy`` files.
        metrics: the content of ``metrics.json`` (empty when absent).
        is_run: True for an engine run folder.
    """

    root: Path
    name: str
    kind: str
    cubes: dict[str, Path] = field(default_factory=dict)
    class_maps: dict[str, Path] = field(default_factory=dict)
    cluster_maps: dict[str, Path] = field(default_factory=dict)
    latents: dict[str, Path] = field(default_factory=dict)
    reconstructions: dict[str, Path] = field(default_factory=dict)
    targets: dict[str, Path] = field(default_factory=dict)
    inputs: dict[str, Path] = field(default_factory=dict)
    class_names: list[str] | dict[int, str] | None = None
    first_label: int = 1
    unlabelled_value: int | None = 0
    wavelengths: list[float] | None = None
    layout: str = "auto"
    metrics: dict[str, Any] = field(default_factory=dict)
    is_run: bool = False

    def per_scene_scores(self) -> dict[str, dict[str, float]]:
        """``{scene: {metric: value}}`` recorded in ``metrics.json`` (empty when there are none)."""
        return per_scene_scores(self.metrics)

    def describe(self) -> str:
        """One line: name, kind and what was found."""
        found = [
            f"{len(files)} {label}"
            for label, files in (
                ("cubes", self.cubes), ("class maps", self.class_maps), ("cluster maps", self.cluster_maps),
                ("latent cubes", self.latents), ("reconstructions", self.reconstructions), ("targets", self.targets),
                ("inputs", self.inputs),
            )
            if files
        ]
        return f"{self.name} ({self.kind}): {', '.join(found) or 'nothing to draw'} in {self.root}"


# ---------------------------------------------------------------------------- small readers
def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` (empty when absent); a damaged file raises :class:`ConfigError`."""
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"'{path}': not valid JSON ({error}); fix or remove the file") from error
    if not isinstance(payload, dict):
        raise ConfigError(f"'{path}': expected a JSON object, found {type(payload).__name__}")
    return payload


def per_scene_scores(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per-scene scores of a ``metrics.json`` object (top level or any stage section)."""
    sections = [metrics] + [value for value in metrics.values() if isinstance(value, Mapping)]
    scores: dict[str, dict[str, float]] = {}
    for section in sections:
        table = section.get("per_scene")
        if not isinstance(table, Mapping):
            continue
        for scene, values in table.items():
            if isinstance(values, Mapping):
                scores.setdefault(str(scene), {}).update(
                    {str(k): float(v) for k, v in values.items() if isinstance(v, (int, float))}
                )
    return scores


def scene_key(stem: str) -> str:
    """The key a file stem is matched on: lower case, without ``_pred``/``_gt``/``_crop``... suffixes."""
    key = stem.lower()
    changed = True
    while changed:
        changed = False
        for suffix in _SCENE_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key = key[: -len(suffix)]
                changed = True
    return key


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def _role(stem: str) -> tuple[str, str]:
    """(role, scene) of a file stem (see the module docstring)."""
    lower = stem.lower()
    for role, pattern in _ROLE_PATTERNS:
        match = pattern.match(lower)
        if match:
            scene = match.groupdict().get("scene") or match.groupdict().get("scene2") or ""
            return role, scene or stem
    return "cube", stem


def _files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                  and not p.name.startswith("."))


def _first_folder(root: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


# ---------------------------------------------------------------------------- discovery
def open_result_folder(path: str | os.PathLike, name: str | None = None) -> ResultFolder:
    """Inspect a result folder (or a single prediction file) and return what it holds.

    Raises:
        DataFileNotFoundError: the path does not exist.
        ConfigError: a damaged ``config.json`` / ``metrics.json``, or an unknown ``kind``.
    """
    root = Path(path)
    if not root.exists():
        raise DataFileNotFoundError(root, "give a result folder (or a prediction file) that hsikit viz can draw")
    folder = root if root.is_dir() else root.parent
    viz_config = read_json(folder / "config.json") if root.is_dir() else {}
    if viz_config.get("format") == "hsikit.model":  # an exported model folder, not a result description
        viz_config = {}
    model_config = read_json(folder / "model" / "config.json") if root.is_dir() else {}
    metrics = read_json(folder / "metrics.json") if root.is_dir() else {}
    is_run = root.is_dir() and ((folder / "metrics.json").is_file() or (folder / "config.yaml").is_file())
    kind = viz_config.get("kind") or model_config.get("task")
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"'{folder / 'config.json'}': unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    result = ResultFolder(root=root, name=name or str(viz_config.get("method") or _display_name(root)), kind=kind or "")
    extra = model_config.get("extra") if isinstance(model_config.get("extra"), Mapping) else {}
    names = viz_config.get("class_names", model_config.get("class_names"))
    if isinstance(names, Mapping):
        result.class_names = {int(k): str(v) for k, v in names.items()}
    elif names:
        result.class_names = [str(n) for n in names]
    result.first_label = int(viz_config.get("first_label", extra.get("label_offset", 1)))
    result.unlabelled_value = viz_config.get("unlabelled_value", 0)
    wavelengths = viz_config.get("wavelengths", model_config.get("wavelengths"))
    result.wavelengths = None if not wavelengths else [float(w) for w in wavelengths]
    result.layout = str(viz_config.get("layout", "auto"))
    result.metrics = metrics
    result.is_run = is_run

    if root.is_file():
        candidates = [root]
    else:
        source = _first_folder(root, PREDICTION_FOLDERS) or root
        candidates = _files(source, LABEL_SUFFIXES)
        target_folder = _first_folder(root, TARGET_FOLDERS)
        if target_folder is not None:
            result.targets = {_stem(p): p for p in _files(target_folder, LABEL_SUFFIXES)}
        input_folder = _first_folder(root, INPUT_FOLDERS)
        if input_folder is not None:
            result.inputs = {_stem(p): p for p in _files(input_folder, IMAGE_SUFFIXES)}
    for file in candidates:
        if file.name in ("metrics.json", "config.json"):
            continue
        role, scene = _role(_stem(file))
        if role == "skip":
            continue
        if role == "cube":
            if file.suffix.lower() == ".png":
                continue  # pictures beside the cubes (figures, quick looks)
            if result.kind in _CLASS_KINDS:
                role = "class_map"
            elif result.kind == "clustering":
                role = "cluster_map"
        {"cube": result.cubes, "class_map": result.class_maps, "cluster_map": result.cluster_maps,
         "latent": result.latents, "reconstruction": result.reconstructions}[role][scene] = file
    if not result.kind:
        result.kind = _guess_kind(result)
    return result


def _display_name(root: Path) -> str:
    folder = root if root.is_dir() else root.parent
    if folder.name in PREDICTION_FOLDERS and root.is_file():
        folder = folder.parent
    # a run folder is runs/<experiment>/<version>: the experiment names the method
    if (folder / "metrics.json").is_file() and folder.parent.name:
        return folder.parent.name
    return folder.name or str(folder)


def _guess_kind(result: ResultFolder) -> str:
    if result.latents:
        return "autoencoder"
    if result.cluster_maps:
        return "clustering"
    if result.class_maps and not result.cubes:
        return "segmentation"
    return "reconstruction"


# ---------------------------------------------------------------------------- pairing
@dataclass(frozen=True)
class ScenePair:
    """A prediction file and the target file (and input image) of the same scene."""

    scene: str
    prediction: Path
    target: Path | None
    rgb_input: Path | None = None


def target_files(targets: str | os.PathLike | None, result: ResultFolder) -> dict[str, Path]:
    """``{stem: file}`` of the targets: ``targets`` (a file or folder) or those inside the result folder."""
    if targets is None:
        return dict(result.targets)
    path = Path(targets)
    if path.is_file():
        return {_stem(path): path}
    if path.is_dir():
        found = {_stem(p): p for p in _files(path, LABEL_SUFFIXES)}
        if not found:
            raise DataFileNotFoundError(path, f"the folder holds no target file ({', '.join(LABEL_SUFFIXES)})")
        return found
    raise DataFileNotFoundError(path, "give the target cube (or label) file, or a folder of them, with --targets")


def pair_scenes(
    predictions: Mapping[str, Path], targets: Mapping[str, Path], inputs: Mapping[str, Path] | None = None
) -> list[ScenePair]:
    """Pair predictions with targets (and inputs) by scene name (see the module docstring).

    Predictions without a target are paired with None. Raises :class:`ShapeMismatchError`
    when targets were given and not one prediction finds its target.
    """
    by_key = {scene_key(stem): path for stem, path in targets.items()}
    input_by_key = {scene_key(stem): path for stem, path in (inputs or {}).items()}
    pairs = []
    for scene, path in sorted(predictions.items()):
        key = scene_key(scene)
        target = by_key.get(key)
        if target is None and len(predictions) == 1 and len(targets) == 1:
            target = next(iter(targets.values()))
        rgb = input_by_key.get(key)
        if rgb is None and len(predictions) == 1 and len(input_by_key) == 1:
            rgb = next(iter(input_by_key.values()))
        pairs.append(ScenePair(scene, path, target, rgb))
    if targets and predictions and all(pair.target is None for pair in pairs):
        raise ShapeMismatchError(
            f"no prediction matches a target by name: predictions {sorted(predictions)[:5]}, targets "
            f"{sorted(targets)[:5]}; name each prediction like its target (e.g. scene_01.npy and scene_01.mat)"
        )
    return pairs


# ---------------------------------------------------------------------------- loading
def load_cube(
    path: Path,
    *,
    layout: str = "auto",
    wavelengths: Sequence[float] | None = None,
    reference: Cube | None = None,
) -> Cube:
    """Open a cube for drawing; non-finite values are masked (nodata) rather than refused.

    With ``layout="auto"`` and a ``reference`` (the target), an ``.npy`` file whose band axis
    cannot be told from its shape alone is read in the layout whose shape matches the
    reference. Wavelengths come from ``wavelengths``, else the file, else the reference
    (when the band counts agree).
    """
    from hsikit.io import open_cube

    given = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
    try:
        cube = open_cube(path, layout=layout, wavelengths=given, nonfinite="mask")
    except LayoutError:
        if reference is None or layout != "auto":
            raise
        cube = None
        for candidate in ("CHW", "HWC"):
            try:
                attempt = open_cube(path, layout=candidate, wavelengths=given, nonfinite="mask")
            except LayoutError:
                continue
            if attempt.shape == reference.shape:
                cube = attempt
                break
        if cube is None:
            raise LayoutError(
                f"'{path}': no layout gives the target's shape {reference.shape}; pass --layout CHW or HWC, or "
                "check that the prediction belongs to this target"
            ) from None
    if cube.wavelengths is None and reference is not None and reference.wavelengths is not None \
            and reference.bands == cube.bands:
        cube = cube.replace(wavelengths=reference.wavelengths, fwhm=reference.fwhm)
    return cube


def load_labels(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """An ``(H, W)`` integer map from any label file (a one-band cube file of whole numbers is accepted too)."""
    from hsikit.io import open_cube, open_labels

    try:
        return np.asarray(open_labels(path, expected_shape=shape))
    except HsikitError as label_error:
        failure = label_error
    if path.suffix.lower() == ".png":
        raise failure
    try:
        cube = open_cube(path, nonfinite="mask")
    except HsikitError:
        raise failure from None
    values = np.asarray(cube.data[0])
    if cube.bands != 1 or (values.dtype.kind == "f" and not np.all(values == np.round(values))):
        raise failure
    if shape is not None and values.shape != tuple(shape):
        raise ShapeMismatchError(f"'{path}': labels of shape {values.shape} for an image of {tuple(shape)} pixels; "
                                 "give the labels of the same scene")
    return values.astype(np.int64)


def load_rgb(path: Path) -> np.ndarray:
    """An RGB input image as ``(H, W, 3)`` uint8."""
    from matplotlib.image import imread

    image = imread(path)
    if image.ndim == 2:
        image = np.repeat(image[..., np.newaxis], 3, axis=2)
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image
