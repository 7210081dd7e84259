"""The figure suite of ``hsikit viz``: every applicable figure of a result folder (or several), saved as PNG and PDF.

:func:`visualise` is the entry point: it opens each result folder
(:func:`hsikit.viz.results.open_result_folder`), pairs predictions with targets, and draws

* reconstruction results: per scene the colour panels, the error maps and the spectral
  curves; over all scenes the errors per band, the prediction-vs-target density, the ECDF
  of per-scene scores and the mean ± sd heatmap; ``scores.json`` with the per-scene scores;
* several reconstruction results: a comparison grid per common scene and the summaries
  with one line / row per method;
* segmentation, classification and clustering results: the class maps (over a true-colour
  background when ``image`` is given), the confusion matrix and per-class score bars;
* autoencoder results: the latent-space scatter and the reconstruction-error maps;

then writes ``index.html``, a self-contained page of every figure with its caption.
Each figure is a :class:`FigureRecord` (name, files, caption, section).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hsikit.cube import Cube
from hsikit.errors import ConfigError, HsikitError, ShapeMismatchError
from hsikit.io.atomic import atomic_path
from hsikit.viz.results import (
    ResultFolder,
    ScenePair,
    load_cube,
    load_labels,
    load_rgb,
    open_result_folder,
    pair_scenes,
    scene_key,
    target_files,
)
from hsikit.viz.style import FigureStyle, get_style, save_figure_formats

#: Per-scene figures are drawn for at most this many scenes by default (scores use them all).
DEFAULT_MAX_SCENES = 10

_SAFE = "".join(chr(c) for c in range(128) if chr(c).isalnum()) + "-_."


def safe_name(text: str) -> str:
    """``text`` reduced to a file-name-safe form (letters, digits, ``-_.``; others become ``_``)."""
    cleaned = "".join(ch if ch in _SAFE else "_" for ch in text).strip("._")
    return cleaned or "figure"


@dataclass
class FigureRecord:
    """One saved figure: its stem, files (PNG first), caption and report section."""

    name: str
    files: list[Path]
    caption: str
    section: str

    @property
    def png(self) -> Path | None:
        """The PNG file, or None when none was written."""
        return next((f for f in self.files if f.suffix.lower() == ".png"), None)


@dataclass
class FigureWriter:
    """Saves figures into ``folder`` in every format of ``formats``, and keeps a record of them."""

    folder: Path
    style: FigureStyle
    dpi: int | None = None
    formats: tuple[str, ...] = ("png", "pdf")
    records: list[FigureRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def save(self, figure: Figure, name: str, caption: str, section: str) -> FigureRecord:
        """Write ``figure`` as ``folder/name.<format>`` with ``caption`` in the file metadata."""
        files = save_figure_formats(figure, self.folder / safe_name(name), self.formats, self.dpi,
                                   metadata={"Description": caption})
        record = FigureRecord(safe_name(name), files, caption, section)
        self.records.append(record)
        return record

    def attempt(self, what: str, make: Callable[[], None]) -> None:
        """Run ``make``; an hsikit error becomes a note (shown in the index) instead of stopping the suite."""
        try:
            make()
        except HsikitError as error:
            self.notes.append(f"{what}: {error}")


# ---------------------------------------------------------------------------- reconstruction
@dataclass
class LoadedScene:
    """One scene's prediction, target and input, loaded."""

    scene: str
    prediction: Cube
    target: Cube | None
    rgb_input: np.ndarray | None


def load_scene(pair: ScenePair, result: ResultFolder, wavelengths: Sequence[float] | None = None) -> LoadedScene:
    """Load the cubes of a :class:`ScenePair` (wavelengths: given, else the folder's, else the target's)."""
    chosen = wavelengths if wavelengths is not None else result.wavelengths
    target = None
    if pair.target is not None:
        target = load_cube(pair.target, wavelengths=None)
        if target.wavelengths is None and chosen is not None and len(chosen) == target.bands:
            target = target.replace(wavelengths=chosen)
    prediction = load_cube(
        pair.prediction,
        layout=result.layout,
        wavelengths=chosen if chosen is not None and target is None else None,
        reference=target,
    )
    if prediction.wavelengths is None and chosen is not None and len(chosen) == prediction.bands:
        prediction = prediction.replace(wavelengths=chosen)
    rgb = load_rgb(pair.rgb_input) if pair.rgb_input is not None else None
    if rgb is not None and rgb.shape[:2] != prediction.shape[1:]:
        rgb = None  # an input of another size (e.g. before cropping) is not shown
    return LoadedScene(pair.scene, prediction, target, rgb)


def _scores(scene: LoadedScene) -> dict[str, float]:
    from hsikit.viz.errors import scene_scores

    assert scene.target is not None
    metrics = ["mrae", "rmse", "sam"]
    data = np.asarray(scene.target.data)
    if np.nanmin(data) >= 0.0 and np.nanmax(data) <= 1.0:
        metrics.insert(2, "psnr")  # PSNR clamps to [0, 1]: meaningful for data in that range only
    return scene_scores(scene.prediction, scene.target, metrics)


def reconstruction_figures(
    scenes: Sequence[LoadedScene],
    writer: FigureWriter,
    *,
    method: str,
    max_scenes: int = DEFAULT_MAX_SCENES,
    pixels: Sequence[tuple[int, int]] | None = None,
    colour: str = "auto",
    dark_percentile: float | None = None,
    summaries: bool = True,
) -> dict[str, Any]:
    """Per-scene panels, error maps and spectra, then the summaries; returns the scores and band errors."""
    from hsikit.viz.errors import band_errors, plot_error_maps
    from hsikit.viz.panels import plot_prediction_panels, plot_spectral_curves
    from hsikit.viz.summaries import (
        mean_band_errors,
        plot_bandwise_errors,
        plot_density_scatter,
        plot_metric_ecdf,
        plot_metric_heatmap,
    )

    style = writer.style
    per_scene: dict[str, dict[str, float]] = {}
    bands: list[dict[str, np.ndarray]] = []
    for number, scene in enumerate(scenes):
        heading = f"{method}: {scene.scene}"
        if number < max_scenes:
            section = f"{method} — scene {scene.scene}"
            figure = plot_prediction_panels(scene.prediction, scene.target, rgb_input=scene.rgb_input,
                                            colour=colour, dark_percentile=dark_percentile,  # type: ignore[arg-type]
                                            title=heading, style=style)
            writer.save(figure, f"panels_{scene.scene}", _caption("panels"), section)
            if scene.target is not None:
                figure = plot_error_maps(scene.prediction, scene.target, title=heading, style=style)
                writer.save(figure, f"error_maps_{scene.scene}", _caption("error_maps"), section)
            figure = plot_spectral_curves(scene.prediction, scene.target, pixels, dark_percentile=dark_percentile,
                                          title=heading, style=style)
            writer.save(figure, f"spectra_{scene.scene}", _caption("spectra"), section)
        if scene.target is not None:
            per_scene[scene.scene] = _scores(scene)
            bands.append(band_errors(scene.prediction, scene.target))
    summary: dict[str, Any] = {"per_scene": per_scene}
    if bands:
        summary["band_errors"] = mean_band_errors(bands)
    scored = [(s.prediction, s.target) for s in scenes if s.target is not None]
    if summaries and scored:
        section = f"{method} — summary over {len(per_scene)} scene(s)"
        wavelengths = scored[0][1].wavelengths
        figure = plot_bandwise_errors({method: summary["band_errors"]}, wavelengths, style=style)
        writer.save(figure, "bandwise_errors", _caption("bandwise"), section)
        figure = plot_density_scatter({method: scored}, style=style)
        writer.save(figure, "density_scatter", _caption("density"), section)
        scores = _by_metric({method: per_scene})
        figure = plot_metric_ecdf(scores, style=style)
        writer.save(figure, "metric_ecdf", _caption("ecdf"), section)
        figure = plot_metric_heatmap(scores, style=style, title=f"{method}: mean ± sd over scenes")
        writer.save(figure, "metric_heatmap", _caption("heatmap"), section)
    return summary


def _by_metric(per_method: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """``{method: {scene: {metric: v}}}`` → ``{method: {metric: [v per scene]}}``."""
    table: dict[str, dict[str, list[float]]] = {}
    for method, scenes in per_method.items():
        columns: dict[str, list[float]] = {}
        for values in scenes.values():
            for metric, value in values.items():
                columns.setdefault(metric, []).append(float(value))
        table[method] = columns
    return table


_CAPTIONS = {
    "panels": "The prediction beside its target (and the input), rendered with one colour transform fitted on the "
              "target, so any difference is in the data.",
    "error_maps": "Per-pixel errors: MRAE (relative error averaged over bands), RMSE (data units) and SAM (angle "
                  "between the predicted and true spectrum, degrees). Dark is small error.",
    "spectra": "Spectra of single pixels, target in black and prediction dashed; picked at low, typical and high "
               "spectral-angle error unless pixels were given.",
    "bandwise": "Errors of each band averaged over pixels and scenes: where in the spectrum the prediction errs most.",
    "density": "Predicted against true values of every band and pixel (log-scaled counts); perfect predictions lie "
               "on the dashed diagonal.",
    "ecdf": "Cumulative distribution of per-scene scores: the fraction of scenes scoring up to each value.",
    "heatmap": "Mean ± standard deviation of each score over scenes; green marks the best method of a column.",
    "grid": "Every method's prediction of one scene (top, the target's colour transform) and its per-pixel error "
            "(bottom, one shared colour scale).",
    "class_maps": "Ground truth, prediction, and where they agree (grey) or not (red); unlabelled pixels are not "
                  "scored.",
    "confusion": "Confusion matrix: rows are true classes, columns predicted classes; numbers are pixel counts, "
                 "colours the fraction of each true class.",
    "per_class": "Precision, recall, F1 and IoU of each class from the confusion matrix.",
    "latent": "The autoencoder's latent codes projected on two dimensions, coloured by class.",
    "reconstruction_errors": "Per-pixel reconstruction error of the autoencoder: RMSE and spectral angle.",
}


def _caption(kind: str) -> str:
    return _CAPTIONS[kind]


def comparison_figures(
    methods: Mapping[str, Sequence[LoadedScene]],
    writer: FigureWriter,
    *,
    max_scenes: int = DEFAULT_MAX_SCENES,
    metric: str = "sam",
    colour: str = "auto",
    dark_percentile: float | None = None,
) -> dict[str, Any]:
    """Comparison grids of the scenes every method predicted, and the summaries across methods."""
    from hsikit.viz.compare import plot_comparison_grid
    from hsikit.viz.errors import band_errors
    from hsikit.viz.summaries import (
        mean_band_errors,
        plot_bandwise_errors,
        plot_density_scatter,
        plot_metric_ecdf,
        plot_metric_heatmap,
    )

    style = writer.style
    keyed = {name: {scene_key(s.scene): s for s in scenes if s.target is not None} for name, scenes in methods.items()}
    common = sorted(set.intersection(*(set(k) for k in keyed.values()))) if keyed else []
    if not common:
        raise ShapeMismatchError(
            f"the methods {list(methods)} have no scene with a target in common; give targets (--targets) and "
            "predictions named after the same scenes"
        )
    pairs = {name: [(keyed[name][s].prediction, keyed[name][s].target) for s in common] for name in keyed}
    for scene in common[:max_scenes]:
        first = next(iter(keyed.values()))[scene]
        assert first.target is not None
        figure = plot_comparison_grid(
            first.target, {name: keyed[name][scene].prediction for name in keyed}, metric=metric,
            rgb_input=first.rgb_input, colour=colour, dark_percentile=dark_percentile,  # type: ignore[arg-type]
            title=first.scene, style=style,
        )
        writer.save(figure, f"comparison_{first.scene}", _caption("grid"), "comparison — scenes")
    per_method = {name: {scene: _scores(keyed[name][scene]) for scene in common} for name in keyed}
    bands = {
        name: mean_band_errors([band_errors(p, t) for p, t in pairs[name]])  # type: ignore[arg-type]
        for name in keyed
    }
    section = f"comparison — summary over {len(common)} common scene(s)"
    first_target = keyed[next(iter(keyed))][common[0]].target
    wavelengths = None if first_target is None else first_target.wavelengths
    figure = plot_bandwise_errors(bands, wavelengths, style=style)
    writer.save(figure, "comparison_bandwise_errors", _caption("bandwise"), section)
    figure = plot_density_scatter(pairs, style=style)  # type: ignore[arg-type]
    writer.save(figure, "comparison_density_scatter", _caption("density"), section)
    scores = _by_metric(per_method)
    figure = plot_metric_ecdf(scores, style=style)
    writer.save(figure, "comparison_metric_ecdf", _caption("ecdf"), section)
    figure = plot_metric_heatmap(scores, style=style, title="mean ± sd over the common scenes")
    writer.save(figure, "comparison_metric_heatmap", _caption("heatmap"), section)
    return {"per_scene": per_method, "scenes": common}


# ---------------------------------------------------------------------------- classes
def class_figures(
    result: ResultFolder,
    targets: Mapping[str, Path],
    writer: FigureWriter,
    *,
    image: Cube | None = None,
    max_scenes: int = DEFAULT_MAX_SCENES,
) -> dict[str, Any]:
    """Class (or cluster) maps per scene; with ground truth the confusion matrix and per-class bars."""
    from hsikit.viz.classes import (
        align_clusters,
        class_names_for_ids,
        confusion_from_maps,
        plot_class_maps,
        plot_confusion_matrix,
        plot_per_class_metrics,
    )

    clusters = bool(result.cluster_maps) and not result.class_maps
    maps = result.cluster_maps if clusters else result.class_maps
    pairs = pair_scenes(maps, targets)
    style = writer.style
    predicted_all, truth_all = [], []
    for number, pair in enumerate(pairs):
        predicted = load_labels(pair.prediction)
        truth = load_labels(pair.target, predicted.shape) if pair.target is not None else None
        background = image if image is not None and image.shape[1:] == predicted.shape else None
        if image is not None and background is None:
            writer.notes.append(f"{pair.scene}: the image is {image.height}x{image.width} px but the map "
                                f"{predicted.shape[0]}x{predicted.shape[1]}; drawn without background")
        if number < max_scenes:
            figure = plot_class_maps(
                predicted, truth, result.class_names, background=background, first_label=result.first_label,
                unlabelled_value=result.unlabelled_value, clusters=clusters, title=f"{result.name}: {pair.scene}",
                style=style,
            )
            writer.save(figure, f"{'cluster' if clusters else 'class'}_maps_{pair.scene}", _caption("class_maps"),
                        f"{result.name} — maps")
        if truth is not None:
            if clusters:
                predicted, _ = align_clusters(predicted, truth, result.unlabelled_value)
            predicted_all.append(predicted.reshape(-1))
            truth_all.append(truth.reshape(-1))
    summary: dict[str, Any] = {}
    if truth_all:
        predicted_flat, truth_flat = np.concatenate(predicted_all), np.concatenate(truth_all)
        ids = _class_ids(result, truth_flat)
        matrix, ids = confusion_from_maps(predicted_flat[np.newaxis], truth_flat[np.newaxis], ids,
                                          result.unlabelled_value)
        names = class_names_for_ids(result.class_names, ids, result.first_label)
        section = f"{result.name} — scores over {len(truth_all)} map(s)"
        figure = plot_confusion_matrix(matrix, names, style=style, title=result.name)
        writer.save(figure, "confusion_matrix", _caption("confusion"), section)
        figure = plot_per_class_metrics(matrix, names, style=style, title=result.name)
        writer.save(figure, "per_class_metrics", _caption("per_class"), section)
        summary = {"class_ids": ids, "confusion_matrix": matrix.tolist()}
    return summary


def _class_ids(result: ResultFolder, truth: np.ndarray) -> list[int]:
    ids = set(int(v) for v in np.unique(truth) if v >= 0 and v != result.unlabelled_value)
    names = result.class_names
    if isinstance(names, Mapping):
        ids |= {int(k) for k in names if int(k) != result.unlabelled_value}
    elif names:
        ids |= set(range(result.first_label, result.first_label + len(names)))
    return sorted(ids)


# ---------------------------------------------------------------------------- latent
def latent_figures(
    result: ResultFolder,
    targets: Mapping[str, Path],
    writer: FigureWriter,
    *,
    labels: np.ndarray | None = None,
    max_scenes: int = DEFAULT_MAX_SCENES,
) -> None:
    """Latent scatter per latent cube; reconstruction-error maps where a reconstruction and its input exist."""
    from hsikit.viz.latent import plot_latent_scatter, plot_reconstruction_errors

    style = writer.style
    label_targets = {k: v for k, v in targets.items()}
    for number, pair in enumerate(pair_scenes(result.latents, {})):
        if number >= max_scenes:
            break
        latent = load_cube(pair.prediction, layout=result.layout)
        scene_labels = labels
        if scene_labels is None:
            match = label_targets.get(pair.scene) or next(
                (p for s, p in label_targets.items() if scene_key(s) == scene_key(pair.scene)), None)
            if match is not None:
                try:
                    scene_labels = load_labels(match, latent.shape[1:])
                except HsikitError:
                    scene_labels = None  # the target is a cube (the autoencoder's input), not labels
        if scene_labels is not None and np.asarray(scene_labels).shape != latent.shape[1:]:
            raise ShapeMismatchError(f"labels of shape {np.asarray(scene_labels).shape} for a latent cube of "
                                     f"{latent.height}x{latent.width} pixels; give the labels of the same scene")
        figure = plot_latent_scatter(latent, scene_labels, result.class_names, first_label=result.first_label,
                                     unlabelled_value=result.unlabelled_value, style=style,
                                     title=f"{result.name}: latent space of {pair.scene}")
        writer.save(figure, f"latent_space_{pair.scene}", _caption("latent"), f"{result.name} — latent space")
    for pair in pair_scenes(result.reconstructions, targets)[:max_scenes]:
        if pair.target is None:
            continue
        original = load_cube(pair.target)
        rebuilt = load_cube(pair.prediction, layout=result.layout, reference=original)
        figure = plot_reconstruction_errors(rebuilt, original, style=style,
                                            title=f"{result.name}: reconstruction error of {pair.scene}")
        writer.save(figure, f"reconstruction_errors_{pair.scene}", _caption("reconstruction_errors"),
                    f"{result.name} — reconstruction")


# ---------------------------------------------------------------------------- entry point
def visualise(
    results: Sequence[str | os.PathLike | ResultFolder],
    output: str | os.PathLike,
    *,
    targets: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    image: str | os.PathLike | Cube | None = None,
    labels: str | os.PathLike | np.ndarray | None = None,
    style: str | FigureStyle | None = "screen",
    dpi: int | None = None,
    formats: Sequence[str] = ("png", "pdf"),
    max_scenes: int = DEFAULT_MAX_SCENES,
    pixels: Sequence[tuple[int, int]] | None = None,
    colour: str = "auto",
    metric: str = "sam",
    dark_percentile: float | None = None,
    wavelengths: Sequence[float] | None = None,
    layout: str | None = None,
    title: str | None = None,
    echo: Callable[[str], None] = lambda text: None,
) -> list[FigureRecord]:
    """Draw every applicable figure of one or more result folders into ``output`` and write ``index.html``.

    Args:
        results: result folders or prediction files (one per method), or
            :class:`~hsikit.viz.results.ResultFolder` descriptions.
        output: folder for the figures (created); with several reconstruction results each
            method gets a sub-folder and the comparison goes to ``comparison/``.
        targets: target file or folder (default: ``targets/`` inside each result folder).
        names: display names of the methods, one per result (default: from the folders).
        image: a cube drawn in true colour under class maps.
        labels: ``(H, W)`` labels (or a label file) colouring latent scatters.
        style, dpi, formats: figure style, PNG resolution and the file formats written.
        max_scenes: per-scene figures for at most this many scenes (scores use all).
        pixels: ``(row, col)`` pixels of the spectral curves (default: picked automatically).
        colour: ``"auto"``, ``"true"``, ``"false"`` or ``"both"`` colour panels.
        metric: error map of the comparison grids (``mrae``, ``rmse``, ``sam``).
        dark_percentile: haze removal of true-colour images (see :func:`hsikit.viz.panels.fit_colour`).
        wavelengths: band centres (nm) for files that store none.
        layout: ``"CHW"``/``"HWC"`` of ``.npy`` files (default: each folder's config, else auto).
        title: heading of ``index.html``.
        echo: receives one line per figure written (the command prints them).

    Returns:
        The figures written, in order.
    """
    if not results:
        raise ConfigError("hsikit viz needs at least one result folder or prediction file")
    if names is not None and len(names) != len(results):
        raise ConfigError(f"{len(names)} names for {len(results)} results; give one --names entry per result")
    if max_scenes < 0:
        raise ConfigError(f"max_scenes must be >= 0, got {max_scenes}")
    chosen = get_style(style)
    out = Path(output)
    folders = [
        path if isinstance(path, ResultFolder) else open_result_folder(path, None if names is None else names[i])
        for i, path in enumerate(results)
    ]
    if names is not None:
        for folder, name in zip(folders, names):
            folder.name = name
    for folder in folders:
        if layout is not None:
            folder.layout = layout
        echo(f"reading {folder.describe()}")
    image_cube = image if isinstance(image, Cube) or image is None else load_cube(Path(image))
    label_map = labels if labels is None or isinstance(labels, np.ndarray) else load_labels(Path(labels))
    reconstruction = [f for f in folders if f.cubes]
    several = len(reconstruction) > 1
    all_records: list[FigureRecord] = []
    notes: list[str] = []
    loaded: dict[str, list[LoadedScene]] = {}
    for folder in folders:
        folder_out = out / safe_name(folder.name) if len(folders) > 1 else out
        writer = FigureWriter(folder_out, chosen, dpi, tuple(formats))
        found_targets = target_files(targets, folder)
        if folder.cubes:
            pairs = pair_scenes(folder.cubes, found_targets, folder.inputs)
            scenes = [load_scene(pair, folder, wavelengths) for pair in pairs]
            loaded[folder.name] = scenes
            summary = reconstruction_figures(scenes, writer, method=folder.name, max_scenes=max_scenes,
                                             pixels=pixels, colour=colour, dark_percentile=dark_percentile)
            if summary["per_scene"]:
                _write_scores(folder_out / "scores.json", folder.name, summary)
        if folder.class_maps or folder.cluster_maps:
            class_figures(folder, found_targets, writer, image=image_cube, max_scenes=max_scenes)
        if folder.latents or folder.reconstructions:
            latent_figures(folder, found_targets, writer, labels=label_map, max_scenes=max_scenes)
        if not writer.records:
            notes.append(f"{folder.describe()}: no figure could be drawn from it")
        for record in writer.records:
            echo(f"  {record.files[0]}")
        all_records += writer.records
        notes += writer.notes
    if several:
        writer = FigureWriter(out / "comparison", chosen, dpi, tuple(formats))
        usable = {name: scenes for name, scenes in loaded.items() if any(s.target is not None for s in scenes)}
        if len(usable) > 1:
            comparison_figures(usable, writer, max_scenes=max_scenes, metric=metric, colour=colour,
                               dark_percentile=dark_percentile)
        else:
            notes.append("several methods were given but fewer than two have targets: no comparison drawn")
        for record in writer.records:
            echo(f"  {record.files[0]}")
        all_records += writer.records
    from hsikit.viz.report import write_figure_gallery

    heading = title or ("hsikit viz: " + ", ".join(f.name for f in folders))
    index = write_figure_gallery(out / "index.html", all_records, heading, notes=notes, base=out)
    echo(f"  {index}")
    return all_records


def _write_scores(path: Path, method: str, summary: Mapping[str, Any]) -> None:
    per_scene = summary["per_scene"]
    metrics = sorted({m for values in per_scene.values() for m in values})
    means = {m: float(np.mean([v[m] for v in per_scene.values() if m in v])) for m in metrics}
    payload = {
        "method": method,
        "note": "SAM in degrees; scores over whole images (no border crop); MRAE with zero targets counted as 1e-8",
        "mean": means,
        "per_scene": per_scene,
    }
    if "band_errors" in summary:
        payload["band_errors"] = {k: [float(x) for x in v] for k, v in summary["band_errors"].items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- run folders
#: Sub-folder of ``figures/`` holding the figures drawn from a run's ``predictions/``.
RUN_PREDICTION_FIGURES = "predictions"

#: Scenes drawn per kind in a run report (the report stays quick to write and to open).
RUN_REPORT_MAX_SCENES = 4

#: Prediction files larger than this are left out of the run report (``hsikit viz`` draws them).
RUN_REPORT_MAX_BYTES = 256 * 2**20


def _source_stamp(files: Sequence[Path], root: Path) -> dict[str, list[int]]:
    """Size and modification time of each file, by its path relative to ``root``."""
    stamp = {}
    for file in sorted(files):
        status = file.stat()
        stamp[file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)] = [
            status.st_size, status.st_mtime_ns]
    return stamp


def run_prediction_figures(run_dir: str | os.PathLike, style: str | FigureStyle | None = "screen") -> list[str]:
    """Draw the figures of a run folder's ``predictions/`` into ``figures/predictions/`` (PNG and PDF).

    Predicted cubes are paired with the run's ``targets/`` when present; class maps
    already drawn by the engine (``figures/predicted_class_map.png``) are not drawn again
    unless there is ground truth to score them with; files over 256 MiB are left to
    ``hsikit viz`` (a note says so). Nothing is redrawn while the
    prediction files are unchanged (``figures/predictions/sources.json`` records their
    sizes and times). Returns notes for the report (figures that could not be drawn).
    """
    folder = Path(run_dir)
    result = open_result_folder(folder)
    sources = [*result.cubes.values(), *result.class_maps.values(), *result.cluster_maps.values(),
               *result.latents.values(), *result.reconstructions.values(), *result.targets.values()]
    if not sources:
        return []
    out = folder / "figures" / RUN_PREDICTION_FIGURES
    stamp_file = out / "sources.json"
    stamp = _source_stamp(sources, folder)
    if stamp_file.is_file():
        try:
            if json.loads(stamp_file.read_text(encoding="utf-8")) == stamp:
                return []
        except json.JSONDecodeError:
            pass
    writer = FigureWriter(out, get_style(style))
    for table in (result.cubes, result.class_maps, result.cluster_maps, result.latents, result.reconstructions):
        for scene, file in list(table.items()):
            if file.stat().st_size > RUN_REPORT_MAX_BYTES:
                del table[scene]
                writer.notes.append(f"{file.name} ({file.stat().st_size / 2**20:.0f} MiB) is too large to draw for "
                                    f"the report; draw it with: hsikit viz all {folder}")
    targets = dict(result.targets)
    if result.cubes:
        def draw_cubes() -> None:
            scenes = [load_scene(pair, result) for pair in pair_scenes(result.cubes, targets, result.inputs)]
            reconstruction_figures(scenes, writer, method=result.name, max_scenes=RUN_REPORT_MAX_SCENES)

        writer.attempt("predicted cubes", draw_cubes)
    engine_drew_map = (folder / "figures" / "predicted_class_map.png").is_file()
    if (result.class_maps and not (engine_drew_map and not targets)) or result.cluster_maps:
        writer.attempt("class maps", lambda: class_figures(result, targets, writer, max_scenes=RUN_REPORT_MAX_SCENES))
    if result.latents or result.reconstructions:
        writer.attempt("latent space", lambda: latent_figures(result, targets, writer,
                                                             max_scenes=RUN_REPORT_MAX_SCENES))
    if writer.records or writer.notes:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(stamp_file) as tmp:
            tmp.write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
    return writer.notes
