"""``hsikit demo``: a short tour — load a scene, describe it, draw it.

The demo loads Indian Pines through the dataset registry from the shared data
folder (:func:`hsikit.data.paths.shared_data_dir`) or the download cache, never
downloading anything; when the scene is not on disk, or with ``offline=True``,
it makes a synthetic scene instead and says so. Then it runs a list of steps,
each writing pictures into the output folder, and prints the files written.

The steps are data (:data:`DEMO_STEPS`), so a later capability adds its own::

    from hsikit.demo import DemoStep, add_demo_step

    def train_small_model(context):
        ...                                   # uses context.scene, context.output_path(...)
        return [written_file]

    add_demo_step(DemoStep("train", "train a small classifier", train_small_model))
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.cube import Cube
from hsikit.errors import ConfigError, HsikitError

#: The real scene the demo prefers (a registry name).
DEMO_DATASET = "indian-pines"

#: Size and seed of the synthetic scene used offline (pixels).
SYNTHETIC_SIZE, SYNTHETIC_SEED = 96, 0

# Composites of small scenes are magnified so a 145-pixel scene is readable.
_TARGET_COMPOSITE_PX = 400


@dataclass
class DemoScene:
    """The scene the demo draws.

    Attributes:
        cube: the image, ``(bands, H, W)``.
        labels: ``(H, W)`` integer class map (0 = unlabelled), or None.
        class_names: names of label values (a list for values ``first_label..``, or a mapping), or None.
        first_label: label value of the first name in a ``class_names`` list.
        title: human name of the scene (e.g. ``"Indian Pines"``).
        origin: where it came from, printed by the demo (real file or synthetic).
        is_synthetic: True for the generated scene.
    """

    cube: Cube
    labels: np.ndarray | None
    class_names: Sequence[str] | Mapping[int, str] | None
    first_label: int
    title: str
    origin: str
    is_synthetic: bool


@dataclass
class DemoContext:
    """What every step sees: the scene, the output folder, a way to print, and the files so far."""

    scene: DemoScene
    output_dir: Path
    echo: Callable[[str], None]
    files: list[Path] = field(default_factory=list)

    def output_path(self, name: str) -> Path:
        """The path of an output file called ``name`` inside the output folder."""
        return self.output_dir / name


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo: ``run(context)`` returns the files it wrote (or None)."""

    name: str
    description: str
    run: Callable[[DemoContext], Sequence[Path] | None]


# ============================================================================ the scene
def _load_real_scene() -> DemoScene:
    """Indian Pines from the shared data folder or the download cache (no download)."""
    from hsikit.data import load_dataset
    from hsikit.data.paths import shared_data_dir

    shared = shared_data_dir()
    attempts: list[dict[str, Any]] = ([{"root": shared}] if shared is not None else []) + [{}]
    last_error: HsikitError | None = None
    for kwargs in attempts:
        try:
            dataset = load_dataset(DEMO_DATASET, download=False, **kwargs)
        except HsikitError as error:
            last_error = error
            continue
        where = kwargs.get("root", "the download cache")
        return DemoScene(
            cube=dataset.cube,
            labels=None if dataset.labels is None else np.asarray(dataset.labels),
            class_names=list(dataset.class_names),  # names of labels 1..K
            first_label=1,
            title="Indian Pines",
            origin=f"real scene: {DEMO_DATASET} from {where}",
            is_synthetic=False,
        )
    assert last_error is not None
    raise last_error


def _make_synthetic_scene() -> DemoScene:
    from hsikit.data.synthetic import make_synthetic_scene

    synthetic = make_synthetic_scene(SYNTHETIC_SIZE, SYNTHETIC_SIZE, seed=SYNTHETIC_SEED)
    return DemoScene(
        cube=synthetic.cube,
        labels=np.asarray(synthetic.labels),
        class_names=list(synthetic.class_names),  # endmember names, labels 1..K
        first_label=1,
        title="synthetic scene",
        origin=(
            f"synthetic scene ({SYNTHETIC_SIZE} x {SYNTHETIC_SIZE} px, {len(synthetic.class_names)} materials "
            f"from the {synthetic.library_name} library, seed {SYNTHETIC_SEED})"
        ),
        is_synthetic=True,
    )


def load_demo_scene(offline: bool = False, echo: Callable[[str], None] = print) -> DemoScene:
    """Indian Pines when it is on disk (and ``offline`` is False), else a synthetic scene; ``echo`` says which."""
    if not offline:
        try:
            return _load_real_scene()
        except (HsikitError, ImportError) as error:
            echo(f"{DEMO_DATASET} is not available here ({error}); using a synthetic scene instead")
    return _make_synthetic_scene()


# ============================================================================ the steps
def _composite_scale(cube: Cube) -> int:
    return max(1, int(round(_TARGET_COMPOSITE_PX / max(cube.height, cube.width))))


def _spread_bands(cube: Cube) -> tuple[int, int, int]:
    """Three bands across the band range (red = the longest), for cubes without usable wavelengths."""
    last = cube.bands - 1
    return (last * 3 // 4, last // 2, last // 4)


def _step_info(context: DemoContext) -> list[Path]:
    from hsikit.cli import describe_cube

    context.echo(describe_cube(context.scene.cube))
    return []


def _step_true_colour(context: DemoContext) -> list[Path]:
    from hsikit.viz.composite import TRUE_COLOUR_NM, describe_bands, plot_composite, select_rgb_bands

    cube = context.scene.cube
    try:
        bands = select_rgb_bands(cube, wavelengths=TRUE_COLOUR_NM)
        kind = "true colour"
    except HsikitError:
        bands = _spread_bands(cube)
        kind = "three spread bands (no visible wavelengths)"
    path = context.output_path("true_colour.png")
    plot_composite(cube, bands=bands, title=f"{context.scene.title}: {kind}", scale=_composite_scale(cube), path=path)
    context.echo(f"  {kind}: {describe_bands(cube, bands)}")
    return [path]


def _step_false_colour(context: DemoContext) -> list[Path]:
    from hsikit.viz.composite import COLOUR_INFRARED_NM, describe_bands, plot_composite, select_rgb_bands

    cube = context.scene.cube
    try:
        bands = select_rgb_bands(cube, wavelengths=COLOUR_INFRARED_NM)
        kind = "colour infrared (NIR, red, green)"
    except HsikitError:
        last = cube.bands - 1
        bands = (last, last // 2, 0)
        kind = "false colour (last, middle, first band)"
    path = context.output_path("false_colour.png")
    plot_composite(cube, bands=bands, title=f"{context.scene.title}: {kind}", scale=_composite_scale(cube), path=path)
    context.echo(f"  {kind}: {describe_bands(cube, bands)}")
    return [path]


def _step_single_band(context: DemoContext) -> list[Path]:
    from hsikit.viz.maps import plot_band

    cube = context.scene.cube
    near_infrared_nm = 800.0
    if cube.wavelengths is not None and np.min(np.abs(cube.wavelengths - near_infrared_nm)) <= 50.0:
        index = cube.band_index(near_infrared_nm)
    else:
        index = cube.bands // 2
    name = f"band_{index}" + ("" if cube.wavelengths is None else f"_{cube.wavelengths[index]:.0f}nm") + ".png"
    path = context.output_path(name)
    plot_band(cube, band=index, path=path)
    return [path]


def _step_class_spectra(context: DemoContext) -> list[Path]:
    from hsikit.viz.spectra import plot_class_spectra

    scene = context.scene
    if scene.labels is None:
        context.echo("  the scene has no labels: no class spectra")
        return []
    path = context.output_path("class_spectra.png")
    plot_class_spectra(
        scene.cube, scene.labels, scene.class_names, first_label=scene.first_label,
        title=f"{scene.title}: mean spectrum ± std per class", path=path,
    )
    return [path]


def _step_class_map(context: DemoContext) -> list[Path]:
    from hsikit.viz.maps import plot_class_map

    scene = context.scene
    if scene.labels is None:
        context.echo("  the scene has no labels: no class map")
        return []
    path = context.output_path("class_map.png")
    plot_class_map(
        scene.labels, scene.class_names, background=scene.cube, alpha=0.7, first_label=scene.first_label,
        title=f"{scene.title}: classes over true colour", path=path,
    )
    return [path]


#: The steps ``hsikit demo`` runs, in order. Extend with :func:`add_demo_step`.
DEMO_STEPS: list[DemoStep] = [
    DemoStep("info", "describe the cube (same text as 'hsikit info')", _step_info),
    DemoStep("true_colour", "true colour composite", _step_true_colour),
    DemoStep("false_colour", "false colour composite (colour infrared)", _step_false_colour),
    DemoStep("single_band", "one near-infrared band with a colour bar", _step_single_band),
    DemoStep("class_spectra", "mean spectrum of each class", _step_class_spectra),
    DemoStep("class_map", "class map with a legend", _step_class_map),
]


def add_demo_step(step: DemoStep, before: str | None = None) -> None:
    """Add ``step`` to :data:`DEMO_STEPS`, at the end or before the step named ``before``."""
    names = [existing.name for existing in DEMO_STEPS]
    if step.name in names:
        raise ConfigError(f"the demo already has a step named {step.name!r}; choose another name")
    if before is None:
        DEMO_STEPS.append(step)
        return
    if before not in names:
        raise ConfigError(f"no demo step named {before!r}; the steps are {names}")
    DEMO_STEPS.insert(names.index(before), step)


def default_demo_steps() -> list[DemoStep]:
    """The built-in steps followed by those of every module in :mod:`hsikit.demo_steps`."""
    import importlib
    import pkgutil

    import hsikit.demo_steps

    contributed: list[tuple[int, str, list[DemoStep]]] = []
    for module_info in pkgutil.iter_modules(hsikit.demo_steps.__path__):
        module = importlib.import_module(f"hsikit.demo_steps.{module_info.name}")
        contributed.append((int(getattr(module, "ORDER", 100)), module_info.name, list(getattr(module, "STEPS", []))))
    steps = list(DEMO_STEPS)
    for _, _, module_steps in sorted(contributed, key=lambda item: (item[0], item[1])):
        steps.extend(module_steps)
    return steps


# ============================================================================ running
def run_demo(
    output_dir: str | os.PathLike = "hsikit-demo",
    offline: bool = False,
    steps: Sequence[DemoStep] | None = None,
    echo: Callable[[str], None] = print,
    scene: DemoScene | None = None,
) -> list[Path]:
    """Run the demo: load a scene, run each step, print and return the files written.

    Args:
        output_dir: folder for the pictures (created when missing).
        offline: use the synthetic scene even when Indian Pines is on disk.
        steps: the steps to run (default :func:`default_demo_steps`).
        echo: where the text goes (default ``print``).
        scene: a scene to use instead of loading one.
    """
    started = time.perf_counter()
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    chosen = scene if scene is not None else load_demo_scene(offline, echo)
    echo(f"hsikit demo — {chosen.origin}")
    context = DemoContext(scene=chosen, output_dir=output, echo=echo)
    plan = default_demo_steps() if steps is None else list(steps)
    for number, step in enumerate(plan, start=1):
        echo(f"[{number}/{len(plan)}] {step.description}")
        written = step.run(context) or []
        context.files.extend(Path(p) for p in written)
    echo(f"files written ({len(context.files)}, in {time.perf_counter() - started:.1f} s):")
    for path in context.files:
        echo(f"  {path}")
    return context.files
