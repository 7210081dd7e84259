"""Self-contained HTML pages: the report of a training run, and a gallery of figures.

:func:`write_run_report` reads a run folder (``config.yaml``, ``metrics.json``,
``csv/version_N/metrics.csv``, every PNG under ``figures/``, sub-folders included) and
writes ``report.html``: the final metrics of each stage as a table, per-scene scores when
``metrics.json`` has them, the training curves drawn from the CSV log, the task's figures
grouped by sub-folder, and the resolved config. Before writing it draws the figures of
the run's ``predictions/`` (predicted cubes, class or cluster maps, latent cubes; see
:func:`hsikit.viz.suite.run_prediction_figures`) into ``figures/predictions/``, so the report
after ``fit``, ``test`` and ``predict`` shows what the run produced without any task code.
A figure's caption is the ``Description`` stored in its PNG (every hsikit figure has one),
else its file name.

:func:`write_figure_gallery` writes the same kind of page for any list of figures
(``hsikit viz`` writes ``index.html`` with it; the demo its report).

Every image is embedded as a base64 PNG and the styling is inline, so a page opens
offline and can be mailed alone.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hsikit.io.atomic import atomic_path

_STAGE_PREFIXES = ("train/", "val/", "test/")
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
.meta { color: #666; font-size: 0.9em; } figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
.files td { text-align: left; font-family: ui-monospace, monospace; font-size: 0.85em; }
"""

#: Section headings of the figure sub-folders the report knows; others are named after the folder.
FIGURE_SECTIONS = {"": "Task figures", "predictions": "Predictions", "viz": "Visualisation suite"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_text(path: str | os.PathLike) -> dict[str, str]:
    """The text entries (``tEXt``, ``zTXt``, ``iTXt`` chunks) of a PNG file, e.g. its ``Description``.

    Returns an empty dict for files that are not PNG or hold no text.
    """
    entries: dict[str, str] = {}
    with open(path, "rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return entries
        while True:
            header = handle.read(8)
            if len(header) < 8:
                break
            length, kind = struct.unpack(">I4s", header)
            body = handle.read(length)
            handle.read(4)  # CRC
            if kind == b"IDAT" or kind == b"IEND":
                break  # text chunks that matter come before the image data
            try:
                if kind == b"tEXt":
                    key, _, value = body.partition(b"\0")
                    entries[key.decode("latin-1")] = value.decode("latin-1")
                elif kind == b"zTXt":
                    key, _, rest = body.partition(b"\0")
                    entries[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
                elif kind == b"iTXt":
                    key, _, rest = body.partition(b"\0")
                    compressed, rest = rest[0], rest[2:]
                    _, _, rest = rest.partition(b"\0")  # language tag
                    _, _, text = rest.partition(b"\0")  # translated keyword
                    value = zlib.decompress(text) if compressed else text
                    entries[key.decode("latin-1")] = value.decode("utf-8")
            except (zlib.error, UnicodeDecodeError, IndexError):
                continue
    return entries



def read_metrics_csv(*paths: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """Series of Lightning ``metrics.csv`` files: ``{metric: [(step, value), ...]}`` sorted by step.

    Files are read in the order given; a later file's value replaces an earlier one at
    the same step (a resumed session repeats the steps after its checkpoint). Empty
    and non-finite cells are skipped.
    """
    values: dict[str, dict[float, float]] = defaultdict(dict)
    for path in paths:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                step_text = row.get("step") or ""
                if not step_text:
                    continue
                step = float(step_text)
                for key, text in row.items():
                    if key in ("step", "epoch") or not text:
                        continue
                    try:
                        value = float(text)
                    except ValueError:
                        continue
                    if math.isfinite(value):
                        values[key][step] = value
    return {key: sorted(points.items()) for key, points in values.items()}


def run_csv_logs(run_dir: str | os.PathLike) -> list[Path]:
    """The ``csv/version_N/metrics.csv`` files of a run, oldest session first."""
    folder = Path(run_dir) / "csv"
    found = [path for path in folder.glob("version_*/metrics.csv") if path.parent.name[8:].isdigit()]
    found.sort(key=lambda path: int(path.parent.name[8:]))
    if (folder / "metrics.csv").is_file():
        found.insert(0, folder / "metrics.csv")
    return found


def _curve_group(metric: str) -> str:
    name = metric
    for prefix in _STAGE_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    for suffix in ("_epoch", "_step"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.startswith("lr-"):
        return "learning rate"
    return name


def training_curves_png(series: dict[str, list[tuple[float, float]]], max_panels: int = 8) -> bytes | None:
    """One panel per quantity (loss, accuracy, learning rate...) with its train/val curves, as PNG bytes."""
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups: dict[str, list[str]] = defaultdict(list)
    for metric in sorted(series):
        if metric.startswith("test/"):
            continue  # one value per test run: shown in the metrics table, not as a curve
        groups[_curve_group(metric)].append(metric)
    if not groups:
        return None
    order = sorted(groups, key=lambda g: (g != "loss", g == "learning rate", g))[:max_panels]
    columns = min(3, len(order))
    rows = math.ceil(len(order) / columns)
    figure, axes_grid = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.3 * rows), squeeze=False)
    for axes, group in zip(axes_grid.flat, order):
        for metric in groups[group]:
            steps, values = zip(*series[metric])
            style = "-" if len(steps) > 30 else "o-"
            axes.plot(steps, values, style, markersize=3, linewidth=1.2, label=metric)
        axes.set_title(group)
        axes.set_xlabel("optimizer step")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    for axes in list(axes_grid.flat)[len(order) :]:
        axes.axis("off")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _image_tag(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return html.escape(str(value))


def _metrics_table(metrics: dict[str, Any]) -> str:
    stages = [stage for stage in ("fit", "validate", "test") if isinstance(metrics.get(stage), dict)]
    names = sorted({name for stage in stages for name in (metrics[stage].get("metrics") or {})})
    if not names:
        return "<p>No metrics were recorded.</p>"
    header = "".join(f"<th>{html.escape(stage)}</th>" for stage in stages)
    rows = []
    for name in names:
        cells = "".join(
            f"<td>{_format_value((metrics[stage].get('metrics') or {}).get(name, ''))}</td>" for stage in stages
        )
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{header}</tr>{''.join(rows)}</table>"


def _facts_table(metrics: dict[str, Any]) -> str:
    fit = metrics.get("fit") or {}
    facts = []
    for stage in ("fit", "validate", "test", "predict"):
        section = metrics.get(stage)
        if isinstance(section, dict) and section.get("status") == "failed":
            facts.append((f"{stage} FAILED", section.get("error", "unknown error")))
    for key, label in (
        ("epoch", "epochs completed"),
        ("global_step", "optimizer steps"),
        ("monitor", "monitored metric"),
        ("best_score", "best score"),
        ("best_checkpoint", "best checkpoint"),
    ):
        if fit.get(key) is not None:
            facts.append((label, fit[key]))
    model = fit.get("model")
    if isinstance(model, dict):
        facts.append(("exported model", f"{model.get('folder')} (from {model.get('source')}; EMA: {model.get('ema')})"))
    prediction = metrics.get("predict")
    if isinstance(prediction, dict) and prediction.get("class_map"):
        facts.append(("predicted class map", f"{prediction['class_map']} ({prediction.get('pixels')} pixels)"))
    if not facts:
        return ""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_format_value(v)}</td></tr>" for k, v in facts)
    return f"<table>{rows}</table>"


def run_figures(run_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """Every PNG under ``run_dir/figures`` by sub-folder (``""`` = the folder itself), sorted; hidden files skipped."""
    root = Path(run_dir) / "figures"
    grouped: dict[str, list[Path]] = {}
    if not root.is_dir():
        return grouped
    for path in sorted(root.rglob("*.png")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue  # temporary files of an atomic write in progress
        grouped.setdefault(relative.parent.as_posix() if relative.parent != Path(".") else "", []).append(path)
    return dict(sorted(grouped.items(), key=lambda item: (item[0] != "", item[0])))


def _figure_html(path: Path, caption: str | None = None) -> str:
    text = caption if caption is not None else png_text(path).get("Description")
    name = path.stem.replace("_", " ")
    label = f"<b>{html.escape(name)}</b>" + (f" — {html.escape(text)}" if text else "")
    return f"<figure>{_image_tag(path.read_bytes(), path.stem)}<figcaption>{label}</figcaption></figure>"


def _draw_prediction_figures(folder: Path) -> list[str]:
    """Draw the figures of ``predictions/`` (never raises: a failure becomes a note in the report)."""
    if not (folder / "predictions").is_dir():
        return []
    try:
        from hsikit.viz.suite import run_prediction_figures

        return run_prediction_figures(folder)
    except Exception as error:  # noqa: BLE001 - a report must be written even when a figure cannot be
        return [f"the figures of predictions/ could not be drawn: {type(error).__name__}: {error}"]


def _per_scene_table(metrics: dict[str, Any]) -> str:
    from hsikit.viz.results import per_scene_scores

    table = per_scene_scores(metrics)
    if not table:
        return ""
    names = sorted({name for values in table.values() for name in values})
    header = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = [
        f"<tr><td>{html.escape(scene)}</td>" + "".join(f"<td>{_format_value(values.get(n, ''))}</td>" for n in names)
        + "</tr>"
        for scene, values in sorted(table.items())
    ]
    return f"<table><tr><th>scene</th>{header}</tr>{''.join(rows)}</table>"


def write_run_report(
    run_dir: str | os.PathLike,
    output: str | os.PathLike | None = None,
    title: str | None = None,
    prediction_figures: bool = True,
) -> Path:
    """Write the HTML report of the run folder ``run_dir`` (default ``run_dir/report.html``); returns its path.

    ``prediction_figures`` draws the figures of ``predictions/`` first (see the module docstring).
    """
    folder = Path(run_dir)
    target = Path(output) if output is not None else folder / "report.html"
    config_path = folder / "config.yaml"
    config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    metrics_path = folder / "metrics.json"
    metrics: dict[str, Any] = {}
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            metrics = {}
    csv_logs = run_csv_logs(folder)
    curves = training_curves_png(read_metrics_csv(*csv_logs)) if csv_logs else None
    notes = _draw_prediction_figures(folder) if prediction_figures else []
    figures = run_figures(folder)

    heading = title or f"Run {folder.parent.name}/{folder.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(heading)}</h1>",
        f'<p class="meta">{html.escape(str(folder.resolve()))}</p>',
        "<h2>Final metrics</h2>",
        _metrics_table(metrics),
        _facts_table(metrics),
        "<h2>Training curves</h2>",
        _image_tag(curves, "training curves") if curves else "<p>No CSV log found (csv/version_N/metrics.csv).</p>",
    ]
    scores = _per_scene_table(metrics)
    if scores:
        parts += ["<h2>Scores per scene</h2>", scores]
    if figures:
        parts.append("<h2>Figures</h2>")
        for section, files in figures.items():
            if len(figures) > 1 or section:
                parts.append(f"<h3>{html.escape(FIGURE_SECTIONS.get(section, section))}</h3>")
            parts += [_figure_html(path) for path in files]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in notes]
    parts.append("<h2>Configuration</h2>")
    if config_text:
        parts.append(f"<pre>{html.escape(config_text)}</pre>")
    else:
        parts.append("<p>No config.yaml in the run folder.</p>")
    parts.append("</body></html>")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return target


def write_figure_gallery(
    path: str | os.PathLike,
    figures: Iterable[Any],
    title: str,
    *,
    introduction: str | None = None,
    notes: Sequence[str] = (),
    base: str | os.PathLike | None = None,
) -> Path:
    """A self-contained HTML page of figures, grouped by section, with their captions and file names.

    Args:
        path: the page to write (atomically).
        figures: records with ``name``, ``files`` (the PNG among them is embedded),
            ``caption`` and ``section`` (:class:`hsikit.viz.suite.FigureRecord`).
        title: the page heading.
        introduction: an HTML paragraph (already escaped) shown under the heading.
        notes: remarks shown at the end (figures that could not be drawn...).
        base: file names are shown relative to this folder.
    """
    target = Path(path)
    anchor = Path(base) if base is not None else target.parent
    sections: dict[str, list[Any]] = {}
    for record in figures:
        sections.setdefault(record.section, []).append(record)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if introduction:
        parts.append(introduction)
    if not sections:
        parts.append("<p>No figure was written.</p>")
    for section, records in sections.items():
        parts.append(f"<h2>{html.escape(section)}</h2>")
        for record in records:
            png = next((Path(f) for f in record.files if Path(f).suffix.lower() == ".png"), None)
            text = record.caption or (png_text(png).get("Description", "") if png is not None and png.is_file() else "")
            listed = ", ".join(html.escape(_relative_name(Path(f), anchor)) for f in record.files)
            label = f"<b>{html.escape(record.name.replace('_', ' '))}</b>"
            label += (f" — {html.escape(text)}" if text else "") + f"<br><span class='meta'>{listed}</span>"
            if png is not None and png.is_file():
                image = _image_tag(png.read_bytes(), record.name)
                parts.append(f"<figure>{image}<figcaption>{label}</figcaption></figure>")
            else:
                parts.append(f"<p>{label}</p>")
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in notes]
    parts.append("</body></html>")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return target


def _relative_name(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)
