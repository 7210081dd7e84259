"""The clustering step of ``hsikit demo``: Samson clustered without labels, its cluster map and label map."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import hsikit.data.paths
from hsikit.demo import default_demo_steps, run_demo
from hsikit.demo_steps import clustering

LINE = re.compile(r"Deep Global Clustering, (\d+) steps on (.+?): NMI ([\d.]+), Hungarian accuracy ([\d.]+)")


@pytest.fixture
def step() -> list:
    return [s for s in default_demo_steps() if s.name == "cluster"]


def test_samson_is_clustered_and_drawn(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       step: list, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(clustering, "EPOCHS", 2)  # the step's logic; its full length is timed by the demo itself
    files = run_demo(tmp_path, steps=step)
    match = LINE.search(capsys.readouterr().out)
    assert match is not None and match.group(2) == "Samson"
    assert int(match.group(1)) == clustering.EPOCHS * clustering.PAIRS_PER_EPOCH
    assert 0.0 <= float(match.group(3)) <= 1.0 and float(match.group(4)) >= 1 / 3
    names = [path.name for path in files]
    assert names == ["cluster_map.png", "cluster_labels.npy", "config.json"]
    labels = np.load(files[1])
    assert labels.shape == (95, 95) and set(np.unique(labels)) <= {0, 1, 2}
    image = imread(files[0])
    assert image.shape[0] > 300 and np.round(image[..., :3] * 255).std() > 15
    assert torch.get_num_threads() >= 1  # the step restores the thread count


def test_without_the_shared_data_the_demo_scene_is_clustered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str], step: list) -> None:  # fmt: skip
    monkeypatch.setattr(hsikit.data.paths, "shared_data_dir", lambda: None)
    monkeypatch.setenv("HSIKIT_DATA_DIR", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(clustering, "EPOCHS", 1)  # the step's logic, not its training length
    files = run_demo(tmp_path / "out", steps=step, offline=True)
    out = capsys.readouterr().out
    assert "synthetic scene (64 x 64 px)" in out
    assert np.load(files[1]).shape == (64, 64)
