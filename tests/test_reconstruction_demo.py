"""The reconstruction step of ``hsikit demo``: a simulated photo of the scene, a tiny MST++, spectra and scores."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

import hsikit.data.paths
from hsikit.demo import default_demo_steps, run_demo
from hsikit.demo_steps import reconstruction

ROW = re.compile(r"^\s+(tiny MST\+\+|linear RGB->31)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", re.MULTILINE)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> list:
    monkeypatch.setattr(reconstruction, "STEPS_TRAINED", 4)  # the step's logic, not its training length
    return [step for step in default_demo_steps() if step.name == "reconstruction"]


@pytest.mark.parametrize("offline", [False, True])
def test_step_writes_spectra_and_a_v73_cube_and_prints_scores(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], quick: list, offline: bool
) -> None:
    files = run_demo(tmp_path, steps=quick, offline=offline)
    out = capsys.readouterr().out
    assert [path.name for path in files] == ["reconstruction_spectra.png", "reconstructed_cube.mat"]
    assert all(path.parent == tmp_path / "reconstruction" for path in files)
    rows = {name: [float(v) for v in values] for name, *values in ROW.findall(out)}
    assert set(rows) == {"tiny MST++", "linear RGB->31"}
    for mrae, rmse, psnr, sam in rows.values():
        assert 0 < mrae < 1 and 0 < rmse < 0.5 and 5 < psnr < 60 and 0 < sam < 1.5
    size = 96 if offline else 145
    with h5py.File(files[1], "r") as handle:
        cube = np.array(handle["cube"])  # (C, W, H) as h5py shows a MATLAB H x W x C array
    assert cube.shape == (31, size, size) and cube.min() >= 0.0 and cube.max() <= 1.0
    image = imread(files[0])
    assert image.shape[1] > 800 and np.round(image[..., :3] * 255).std() > 15


def test_step_is_skipped_with_a_note_without_the_camera_curves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], quick: list
) -> None:
    monkeypatch.setattr(hsikit.data.paths, "shared_data_dir", lambda: None)
    monkeypatch.setenv("HSIKIT_DATA_DIR", str(tmp_path / "empty_cache"))
    assert run_demo(tmp_path / "out", steps=quick) == []
    assert "skipped: the NTIRE 2022 camera curves are in the shared data folder" in capsys.readouterr().out
