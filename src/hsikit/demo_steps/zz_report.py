"""The demo's last step: ``report.html``, one self-contained page of everything the demo produced.

The page opens offline (every picture is embedded) and is written for someone who has
never seen a hyperspectral image: what the data are, what each picture shows and how to
read it, what the trained models achieved (from their run folders' ``metrics.json``), and
which other files were written and what opens them. It adds one figure of its own, the
scene "at a glance" (true colour as the eye would see it through the CIE observer, colour
infrared, and the labels), saved as PNG and PDF under ``report_figures/``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hsikit.demo import DemoContext, DemoStep
from hsikit.errors import HsikitError

#: After every other step (they use ORDER 40-100).
ORDER = 1000

REPORT_NAME = "report.html"
FIGURE_FOLDER = "report_figures"

_INTRODUCTION = """
<p>A <b>hyperspectral image</b> is a stack of many pictures of the same scene, each taken in a narrow band of
wavelengths. Where a colour photo has three values per pixel (red, green, blue), a hyperspectral pixel has a whole
<b>spectrum</b>: tens to hundreds of values telling how much light the surface reflects at each wavelength. Materials
(crops, soil, water, ice, minerals) differ in the shape of their spectra, so a computer can tell them apart even when
they look alike to the eye. hsikit reads such images, trains deep-learning models on them, and draws the pictures
below.</p>
<p>Wavelengths are in <b>nanometres</b> (nm): visible light spans about 400 nm (violet) to 700 nm (red); beyond 700 nm
is the near infrared, invisible to us but very bright for healthy plants.</p>
"""

# (regular expression on the lower-case path relative to the output folder, explanation); the first match wins
_EXPLANATIONS: tuple[tuple[str, str], ...] = (
    (r"scene_at_a_glance", "The scene three ways. Left: true colour computed from the spectrum with the CIE 1931 "
     "colour-matching functions (the standard model of human colour vision), roughly as the eye would see it once the "
     "haze of the atmosphere is taken away. Middle: colour "
     "infrared, where near-infrared light is shown as red, so vegetation glows red. Right: the labelled classes."),
    (r"^true_colour", "True colour: the bands nearest red (640 nm), green (550 nm) and blue (460 nm) shown as a normal "
     "photo, each stretched between its 2nd and 98th percentile."),
    (r"^false_colour", "False colour (colour infrared): near infrared is shown as red, red as green and green as blue. "
     "Healthy vegetation reflects strongly in the near infrared and appears bright red; bare soil and roads look "
     "grey-blue."),
    (r"^band_\d+", "A single band as an image. The colour bar gives the measured value; bright pixels reflect a lot of "
     "light at this wavelength."),
    (r"^class_spectra", "The average spectrum of each labelled class, with a shaded band of ± one standard deviation. "
     "Differences in these curves are what a classifier learns to recognise."),
    (r"^class_map\.png$", "The ground truth: every labelled pixel coloured by its class, over the true-colour "
     "image. Black or uncoloured pixels have no label."),
    (r"class_map|classes", "A class map predicted by a trained model: every pixel coloured by the class the model "
     "chose for it, including pixels nobody labelled."),
    (r"cluster", "Clusters found without any labels: pixels with similar spectra share a colour. The colours are "
     "arbitrary ids; comparing them with the labels shows how much structure the model discovered on its own."),
    (r"reconstruction", "Spectral reconstruction: a network saw only an RGB photo and predicted the full spectrum of "
     "each pixel. Solid lines are the true spectra, dashed lines the predictions; the error map shows where the "
     "prediction is worse."),
    (r"gradcam", "Grad-CAM: where the segmentation network looked when it decided on a class (bright = important)."),
    (r"attention", "The attention map of the segmentation network: the pixels it weighted most."),
    (r"glacier", "A glacier tile mapped by the segmentation network: each pixel is assigned background, clean ice or "
     "debris-covered ice."),
    (r"latent", "The autoencoder's latent space: each pixel's spectrum compressed to a few numbers, drawn as a point "
     "and coloured by class. Classes that form separate groups are easy to tell apart."),
    (r"confusion", "Confusion matrix: rows are the true classes, columns the predicted ones; a perfect model has "
     "numbers only on the diagonal."),
)

_FILE_KINDS: dict[str, str] = {
    ".tif": "GeoTIFF raster (opens in QGIS, ArcGIS, or hsikit.io.open_cube / open_labels)",
    ".tiff": "GeoTIFF raster (opens in QGIS, ArcGIS, or hsikit.io.open_cube / open_labels)",
    ".shp": "shapefile of polygons (opens in QGIS, ArcGIS, geopandas)",
    ".gpkg": "GeoPackage of polygons (opens in QGIS, geopandas)",
    ".npy": "NumPy array (numpy.load)",
    ".npz": "NumPy archive (numpy.load)",
    ".mat": "MATLAB file (MATLAB, scipy.io / h5py, hsikit.io.open_cube)",
    ".hdr": "ENVI header of a raster (ENVI, QGIS, hsikit.io.open_cube)",
    ".json": "JSON text (any editor)",
    ".pdf": "the same figure as a PDF, for papers",
    ".html": "a web page (any browser)",
    ".safetensors": "model weights (hsikit.load_model)",
}


def _explanation(path: Path, root: Path) -> str:
    from hsikit.viz.report import png_text

    name = _relative(path, root).lower()
    for pattern, text in _EXPLANATIONS:
        if re.search(pattern, name):
            return text
    return png_text(path).get("Description", "") if path.suffix.lower() == ".png" else ""


def _scene_facts(context: DemoContext) -> str:
    scene = context.scene
    cube = scene.cube
    rows = [("origin", scene.origin), ("size", f"{cube.height} x {cube.width} pixels, {cube.bands} bands")]
    if cube.wavelengths is not None:
        rows.append(("wavelengths", f"{cube.wavelengths.min():.0f} to {cube.wavelengths.max():.0f} nm"))
    if scene.labels is not None:
        labelled = int(np.sum(np.asarray(scene.labels) > 0))
        names = scene.class_names
        count = len(names) if names is not None else int(np.max(scene.labels))
        rows.append(("labels", f"{count} classes, {labelled} labelled pixels"))
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _scene_figure(context: DemoContext) -> list[Path]:
    """The 'at a glance' figure: CIE true colour, colour infrared and labels, as PNG and PDF."""
    from matplotlib.patches import Patch

    from hsikit.viz.maps import _colour_table, class_map_rgba, class_name_table
    from hsikit.viz.panels import apply_colour, fit_colour
    from hsikit.viz.style import figure_style, get_style, save_figure_formats, styled_figure

    scene = context.scene
    cube = scene.cube
    panels: list[tuple[str, np.ndarray]] = []
    try:
        transform = fit_colour(cube, "true", dark_percentile=1.0)
        panels.append(("true colour (CIE 1931)", apply_colour(transform, cube)))
    except HsikitError:
        pass  # no visible bands: the scene is shown in false colour only
    false = fit_colour(cube, "false")
    panels.append((false.description, apply_colour(false, cube)))
    handles = []
    if scene.labels is not None:
        labels = np.asarray(scene.labels)
        panels.append(("labelled classes", class_map_rgba(labels, cube, alpha=0.75)[..., :3]))
        present = [int(v) for v in np.unique(labels) if v > 0]
        names = class_name_table(scene.class_names, present, scene.first_label)
        table = _colour_table(max(present + [1]), 0, None)
        handles = [Patch(facecolor=table[v], label=names[v]) for v in present]
    style = get_style("screen")
    with figure_style(style):
        aspect = cube.height / max(cube.width, 1)
        figure = styled_figure(style, 3.2 * len(panels) + (2.6 if handles else 0.0), 3.2 * aspect + 0.6)
        for number, (title, image) in enumerate(panels, start=1):
            axes = figure.add_subplot(1, len(panels), number)
            axes.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(title)
        if handles:
            figure.legend(handles=handles, loc="outside right upper", frameon=False, fontsize="small",
                          ncols=1 if len(handles) <= 20 else 2)
        figure.suptitle(f"{scene.title} at a glance")
        return save_figure_formats(figure, context.output_path(FIGURE_FOLDER) / "scene_at_a_glance",
                                   metadata={"Description": _EXPLANATIONS[0][1]})


def _run_folder_section(report: Path) -> str:
    """A trained model's run folder (the folder of a ``report.html`` beside ``metrics.json``): scores and figures."""
    from hsikit.viz.report import _figure_html, _metrics_table, run_figures

    folder = report.parent
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        metrics = {}
    parts = [f"<h3>Run folder {html.escape(folder.name)}</h3>",
             "<p>A training run writes one folder: its configuration, checkpoints, the exported model "
             "(<code>model/</code>, loaded with <code>hsikit.load_model</code>), its logs and its own report "
             f"(<code>{html.escape(folder.name)}/report.html</code>). Its final scores:</p>",
             _metrics_table(metrics)]
    for files in run_figures(folder).values():
        parts += [_figure_html(path) for path in files]
    return "\n".join(parts)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def write_demo_report(context: DemoContext, files: Sequence[Path], extra_figures: Sequence[Path] = ()) -> Path:
    """Write ``report.html`` of the demo's ``files`` (and ``extra_figures`` shown first) into the output folder."""
    from hsikit.io.atomic import atomic_path
    from hsikit.viz.report import _STYLE, _image_tag

    root = context.output_dir
    pictures = [Path(p) for p in extra_figures if Path(p).suffix.lower() == ".png"]
    pictures += [Path(p) for p in files if Path(p).suffix.lower() == ".png" and Path(p).is_file()]
    runs = sorted({Path(p) for p in files if Path(p).name == "report.html" and (Path(p).parent / "metrics.json")
                   .is_file()})
    others = [Path(p) for p in files if Path(p).suffix.lower() != ".png" and Path(p) not in runs]
    title = f"hsikit demo — {context.scene.title}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="meta">Written by <code>hsikit demo</code>. This page is self-contained: it opens offline and can '
        "be sent on its own.</p>",
        "<h2>What you are looking at</h2>",
        _INTRODUCTION,
        "<h2>The scene</h2>",
        _scene_facts(context),
    ]
    if context.scene.is_synthetic:
        parts.append('<p class="note">The real scene was not available, so the demo generated a synthetic one from '
                     "library spectra: the pictures show how hsikit works, not a real landscape.</p>")
    sections: dict[str, list[Path]] = {}
    for picture in pictures:
        relative = _relative(picture, root)
        folder = relative.rsplit("/", 1)[0] if "/" in relative else ""
        heading = {"": "Pictures", FIGURE_FOLDER: "At a glance"}.get(folder, folder.replace("_", " "))
        sections.setdefault(heading, []).append(picture)
    for heading, paths in sections.items():
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for picture in paths:
            caption = f"<b>{html.escape(_relative(picture, root))}</b>"
            text = _explanation(picture, root)
            if text:
                caption += f" — {html.escape(text)}"
            parts.append(f"<figure>{_image_tag(picture.read_bytes(), picture.stem)}"
                         f"<figcaption>{caption}</figcaption></figure>")
    if runs:
        parts.append("<h2>Trained models</h2>")
        parts += [_run_folder_section(report) for report in runs]
    if others:
        parts.append("<h2>Other files</h2><table class='files'><tr><th>file</th><th>what it is</th></tr>")
        for path in others:
            if (path.parent / "model.safetensors").is_file() or path.suffix.lower() == ".safetensors":
                kind = f"exported model: hsikit.load_model('{path.parent.name}') rebuilds it"
            elif path.is_dir():
                kind = "a folder"
            else:
                kind = _FILE_KINDS.get(path.suffix.lower(), "data file")
            parts.append(f"<tr><td>{html.escape(_relative(path, root))}</td><td>{html.escape(kind)}</td></tr>")
        parts.append("</table>")
    parts += [
        "<h2>Next steps</h2>",
        "<ul><li><code>hsikit info FILE</code> describes any cube (bands, wavelengths, georeference).</li>"
        "<li><code>hsikit fit --config configs/indian_pines_mlp.yaml</code> trains a classifier; every run writes "
        "its own report.</li>"
        "<li><code>hsikit viz all RESULTS --targets TARGETS</code> draws publication figures (PNG and PDF) of any "
        "result folder.</li></ul>",
        "</body></html>",
    ]
    target = root / REPORT_NAME
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return target


def _step_report(context: DemoContext) -> list[Path]:
    extra: list[Path] = []
    try:
        extra = _scene_figure(context)
    except HsikitError as error:
        context.echo(f"  no at-a-glance figure: {error}")
    report = write_demo_report(context, list(context.files), extra)
    context.echo(f"  open {report} in a browser: every picture of this demo, explained")
    return [*extra, report]


STEPS: list[DemoStep] = [
    DemoStep("report", "write report.html: every picture of the demo with an explanation (opens offline)",
             _step_report)
]

__all__ = ["ORDER", "STEPS", "write_demo_report"]
