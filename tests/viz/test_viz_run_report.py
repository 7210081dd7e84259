"""The engine's run report: task figures after fit / test / predict, figures of predictions/, offline HTML."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.io import save_cube
from hsikit.viz.report import png_text, run_figures, write_run_report


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def _assert_offline(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page and "<link" not in page
    assert all(image.startswith(b"\x89PNG") for image in _images(page))


def test_fit_test_predict_reports_carry_the_task_figures(shared_data: Path, tmp_path: Path) -> None:
    import lightning as L

    from hsikit.data import load_dataset
    from hsikit.data.datamodules import PixelClassificationDataModule
    from hsikit.engine.trainer import RunOptions, create_trainer
    from hsikit.tasks import ClassificationTask

    L.seed_everything(0)
    scene = load_dataset("indian_pines", root=shared_data, download=False, progress=False)
    datamodule = PixelClassificationDataModule.from_arrays(
        scene.cube, scene.labels, scene.class_names, split="count", train=5, val=3, test=3, batch_size=64)
    task = ClassificationTask(model_args={"hidden_sizes": [8], "dropout": 0.0, "norm": "none"}, lr=3e-3)
    run = tmp_path / "runs" / "mlp" / "v1"
    quiet = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}
    trainer = create_trainer(run, RunOptions(export=False), task=task, max_epochs=1, **quiet)
    trainer.fit(task, datamodule=datamodule)
    page = (run / "report.html").read_text()
    _assert_offline(page)
    assert "<b>confusion matrix val</b>" in page
    trainer.test(task, datamodule=datamodule)
    page = (run / "report.html").read_text()
    assert "<b>confusion matrix test</b>" in page and "test/accuracy" in page
    trainer.predict(task, datamodule=datamodule)
    page = (run / "report.html").read_text()
    _assert_offline(page)
    assert "<b>predicted class map</b>" in page
    figures = run_figures(run)
    names = [p.stem for p in figures[""]]
    assert {"confusion_matrix_test", "confusion_matrix_val", "predicted_class_map"} <= set(names)
    assert all(f"<b>{name.replace('_', ' ')}</b>" in page for name in names)  # every task figure is in the report
    # the engine already drew the class map and there is no ground truth in the run: nothing more to draw
    assert not (run / "figures" / "predictions").exists()
    assert len(_images(page)) == 1 + len(names)  # the training curves and the task figures
    # a figure a task (or hsikit viz) puts in a sub-folder of figures/ is picked up too, with its caption
    from hsikit.viz.errors import plot_error_maps

    target = Cube(np.asarray(scene.cube.data[:5, :20, :20], dtype=np.float64) + 1.0)
    plot_error_maps(target.data * 1.01, target, path=run / "figures" / "viz" / "error_maps")
    page = write_run_report(run).read_text()
    assert "<h3>Visualisation suite</h3>" in page and "<b>error maps</b> — Per-pixel errors" in page


def test_the_report_draws_the_predictions_of_a_run(reconstruction_set, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "mstpp" / "v1"
    (run / "predictions").mkdir(parents=True)
    target = reconstruction_set["target"]
    window = (slice(None), slice(40, 72), slice(0, 32))
    save_cube(Cube(reconstruction_set["quadratic"][window], wavelengths=target.wavelengths),
              run / "predictions" / "scene_1.mat", mat_format="v7.3")
    save_cube(target[window], run / "targets" / "scene_1.mat")
    (run / "metrics.json").write_text(json.dumps({"test": {"metrics": {"test/mrae": 0.04},
                                                           "per_scene": {"scene_1": {"mrae": 0.04}}}}))
    page = write_run_report(run).read_text()
    _assert_offline(page)
    drawn = {p.stem for p in (run / "figures" / "predictions").glob("*.png")}
    assert drawn == {"panels_scene_1", "error_maps_scene_1", "spectra_scene_1", "bandwise_errors", "density_scatter",
                     "metric_ecdf", "metric_heatmap"}
    assert all((run / "figures" / "predictions" / f"{stem}.pdf").is_file() for stem in drawn)
    assert "<h3>Predictions</h3>" in page and "<h2>Scores per scene</h2>" in page
    assert len(_images(page)) == len(drawn)  # no CSV log here: only the prediction figures
    caption = png_text(run / "figures" / "predictions" / "error_maps_scene_1.png")["Description"]
    assert caption.startswith("Per-pixel errors") and caption in page
    # unchanged predictions are not drawn again; a changed one is
    stamp = (run / "figures" / "predictions" / "panels_scene_1.png").stat().st_mtime_ns
    write_run_report(run)
    assert (run / "figures" / "predictions" / "panels_scene_1.png").stat().st_mtime_ns == stamp
    (run / "predictions" / "scene_1.mat").write_bytes(b"not a MATLAB file")
    page = write_run_report(run).read_text()  # a broken prediction never stops the report
    assert 'class="note"' in page and "scene_1.mat" in page
