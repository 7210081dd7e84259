"""The demo's last step: one self-contained report.html explaining everything the demo wrote."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

import hsikit.demo
from hsikit.demo import DemoStep, default_demo_steps, run_demo
from hsikit.demo_steps import zz_report


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_the_report_is_the_last_step() -> None:
    steps = default_demo_steps()
    assert steps[-1].name == "report" and zz_report.ORDER == 1000


def test_report_of_the_real_scene(shared_data: Path, tmp_path: Path, check_figure_files, png_metadata) -> None:
    messages: list[str] = []

    def trained_run(context) -> list[Path]:
        # what a capability step writes when it trains through the engine: a run folder with its report
        run = context.output_path("runs") / "tiny" / "v1"
        (run / "figures").mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"test": {"metrics": {"test/accuracy": 0.875}}}))
        from matplotlib.figure import Figure

        figure = Figure(figsize=(2, 2))
        figure.add_subplot().plot([0, 1], [1, 0])
        figure.savefig(run / "figures" / "confusion_matrix_test.png")
        (run / "report.html").write_text("<html></html>")
        np.save(context.output_path("clusters.npy"), np.zeros((2, 2)))
        predicted = context.output_path("classifier") / "class_map.png"  # a prediction, not the ground truth
        predicted.parent.mkdir()
        predicted.write_bytes(context.output_path("class_map.png").read_bytes())
        return [run / "report.html", context.output_path("clusters.npy"), predicted]

    steps = [*hsikit.demo.DEMO_STEPS, DemoStep("run", "a trained model", trained_run), *zz_report.STEPS]
    files = run_demo(tmp_path, steps=steps, echo=messages.append)
    report = tmp_path / "report.html"
    assert files[-1] == report and any("open" in m and "report.html" in m for m in messages)
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page and "<link" not in page
    # every picture of the demo is embedded, byte for byte, with its explanation
    pictures = [p for p in files if p.suffix == ".png"]
    embedded = _images(page)
    for picture in pictures:
        assert picture.read_bytes() in embedded, picture
    assert len(embedded) == len(pictures) + 1  # + the run folder's confusion matrix
    assert "What you are looking at" in page and "hyperspectral image</b> is a stack" in page
    assert "145 x 145 pixels, 200 bands" in page and "16 classes, 10249 labelled pixels" in page
    for explained in ("True colour: the bands nearest red", "Healthy vegetation reflects strongly",
                      "The average spectrum of each labelled class", "The ground truth: every labelled pixel",
                      "The scene three ways"):
        assert explained in page
    assert "<b>classifier/class_map.png</b> — A class map predicted by a trained model" in page
    assert "<b>class_map.png</b> — The ground truth" in page
    # the run folder: its final scores; the other files: what opens them
    assert "<td>test/accuracy</td>" in page and "0.8750" in page
    assert "<td>clusters.npy</td><td>NumPy array (numpy.load)</td>" in page
    # the at-a-glance figure: CIE true colour, colour infrared, labels; PNG and PDF
    check_figure_files(tmp_path / "report_figures" / "scene_at_a_glance", panels=3)
    assert png_metadata(tmp_path / "report_figures" / "scene_at_a_glance.png")["Description"].startswith("The scene")


def test_report_of_the_synthetic_scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = [s for s in hsikit.demo.DEMO_STEPS if s.name in ("true_colour", "class_map")] + zz_report.STEPS
    files = run_demo(tmp_path, offline=True, steps=steps)
    page = (tmp_path / "report.html").read_text()
    assert "synthetic one from library spectra" in page
    assert len(_images(page)) == sum(1 for p in files if p.suffix == ".png")
    assert "report.html" in capsys.readouterr().out
