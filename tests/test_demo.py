"""``hsikit demo``: real and synthetic scenes end to end, and the step list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

import hsikit.data.paths
from hsikit import Cube
from hsikit.cli import main
from hsikit.demo import DEMO_STEPS, DemoScene, DemoStep, add_demo_step, run_demo
from hsikit.errors import ConfigError

PICTURES = {"true_colour.png", "false_colour.png", "class_spectra.png", "class_map.png"}


def assert_pictures_are_not_blank(files: list[Path]) -> None:
    for path in files:
        image = imread(path)
        rgb = np.round(image[..., :3] * 255).astype(np.uint8)
        assert image.shape[0] > 100 and image.shape[1] > 100, path
        assert rgb.std() > 15, f"{path} looks blank"
        assert np.unique(rgb.reshape(-1, 3), axis=0).shape[0] > 20, f"{path} has too few colours"


def test_demo_on_the_real_scene(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "real scene" in out and "synthetic" not in out
    assert "(200, 145, 145)" in out  # the info text of Indian Pines
    written = sorted(tmp_path.glob("*.png"))
    # the built-in picture steps; capability steps (tested with their capability) add more files
    built_in = [path for path in written if path.name in PICTURES or path.name.startswith("band_")]
    assert PICTURES <= {path.name for path in built_in}
    assert len(built_in) == 5
    for path in written:
        assert f"  {path}" in out  # the list of files written
    assert_pictures_are_not_blank(built_in)
    assert (tmp_path / "report.html").is_file()  # the demo ends with a report a newcomer can open


def test_demo_offline_uses_the_synthetic_scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--output", str(tmp_path / "out"), "--offline"]) == 0
    out = capsys.readouterr().out
    assert "synthetic scene" in out and "real scene" not in out
    written = sorted((tmp_path / "out").glob("*.png"))
    assert PICTURES <= {path.name for path in written}
    assert_pictures_are_not_blank([path for path in written if path.name in PICTURES])


def test_demo_falls_back_when_the_scene_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(hsikit.data.paths, "shared_data_dir", lambda: None)
    monkeypatch.setenv("HSIKIT_DATA_DIR", str(tmp_path / "empty_cache"))
    files = run_demo(tmp_path / "out", steps=[step for step in DEMO_STEPS if step.name == "class_map"])
    out = capsys.readouterr().out
    assert "is not available here" in out and "using a synthetic scene instead" in out
    assert [path.name for path in files] == ["class_map.png"]


def test_a_step_can_be_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hsikit.demo.DEMO_STEPS", list(DEMO_STEPS))

    def write_mean(context) -> list[Path]:
        path = context.output_path("mean.npy")
        np.save(path, context.scene.cube.data.mean(axis=0))
        return [path]

    add_demo_step(DemoStep("mean", "mean image", write_mean), before="class_map")
    import hsikit.demo

    names = [step.name for step in hsikit.demo.DEMO_STEPS]
    assert names.index("mean") == names.index("class_map") - 1
    with pytest.raises(ConfigError, match="already has a step named 'mean'"):
        add_demo_step(DemoStep("mean", "again", write_mean))
    with pytest.raises(ConfigError, match="no demo step named 'nope'"):
        add_demo_step(DemoStep("other", "x", write_mean), before="nope")
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    scene = DemoScene(
        Cube(data), labels=None, class_names=None, first_label=1, title="tiny", origin="test", is_synthetic=True
    )
    messages: list[str] = []
    files = run_demo(tmp_path, steps=[s for s in hsikit.demo.DEMO_STEPS if s.name in ("mean", "class_map")],
                     echo=messages.append, scene=scene)
    assert [path.name for path in files] == ["mean.npy"]  # no labels: the class map step writes nothing
    np.testing.assert_array_equal(np.load(tmp_path / "mean.npy"), data.mean(axis=0))
    assert "  the scene has no labels: no class map" in messages
