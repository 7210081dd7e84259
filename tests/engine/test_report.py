"""The HTML run report: self-contained, with the metrics table, curves and figures."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt

from hsikit.viz.report import read_metrics_csv, run_csv_logs, write_run_report


def _write_csv(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("epoch,step,train/loss,val/accuracy,lr-AdamW\n" + "\n".join(rows) + "\n")


def test_sessions_are_joined_and_later_values_win(tmp_path: Path) -> None:
    _write_csv(tmp_path / "csv" / "version_0" / "metrics.csv", ["0,4,2.0,,0.1", "0,9,1.5,0.40,", "1,14,1.2,,0.1"])
    # the resumed session repeats step 14 (after the checkpoint at step 9) and goes on
    _write_csv(tmp_path / "csv" / "version_1" / "metrics.csv", ["1,14,1.1,,0.1", "1,19,0.9,0.55,"])
    _write_csv(tmp_path / "csv" / "version_10" / "metrics.csv", ["2,24,0.8,,"])
    logs = run_csv_logs(tmp_path)
    assert [p.parent.name for p in logs] == ["version_0", "version_1", "version_10"]  # numeric order
    series = read_metrics_csv(*logs)
    assert series["train/loss"] == [(4.0, 2.0), (9.0, 1.5), (14.0, 1.1), (19.0, 0.9), (24.0, 0.8)]
    assert series["val/accuracy"] == [(9.0, 0.40), (19.0, 0.55)]


def test_report_is_self_contained(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "demo" / "v1"
    _write_csv(run / "csv" / "version_0" / "metrics.csv", ["0,4,2.0,,0.1", "0,9,1.5,0.40,", "1,19,0.9,0.55,"])
    (run / "config.yaml").write_text("model:\n  init_args:\n    lr: 0.001  # <tuned>\n")
    metrics = {
        "fit": {"epoch": 2, "global_step": 19, "metrics": {"val/accuracy": 0.55, "train/loss": 0.9},
                "monitor": "val/accuracy", "best_score": 0.55, "best_checkpoint": "checkpoints/epoch001.ckpt",
                "model": {"folder": "model", "source": "checkpoints/epoch001.ckpt", "ema": True}},
        "test": {"metrics": {"test/accuracy": 0.51}},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "figures").mkdir()
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    figure.savefig(run / "figures" / "confusion_matrix_val.png")
    plt.close(figure)

    html = write_run_report(run).read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "Run demo/v1" in html
    # metrics table: one column per stage
    assert "<th>fit</th><th>test</th>" in html
    assert "<td>val/accuracy</td><td>0.5500</td><td></td>" in html
    assert "<td>test/accuracy</td><td></td><td>0.5100</td>" in html
    assert "checkpoints/epoch001.ckpt" in html and "EMA: True" in html
    # the config is shown escaped, the figure and the curves are embedded
    assert "# &lt;tuned&gt;" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "confusion matrix val" in html
    # nothing is fetched from elsewhere: no links, scripts or external sources
    assert not re.search(r'(src|href)="(?!data:)', html) and "<script" not in html and "<link" not in html


def test_report_of_an_empty_run_folder(tmp_path: Path) -> None:
    html = write_run_report(tmp_path).read_text()
    assert "No metrics were recorded" in html and "No CSV log found" in html and "No config.yaml" in html
