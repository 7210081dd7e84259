"""The demo step that trains deephyp's 1-D CNN and maps the scene: real Indian Pines and the synthetic scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from hsikit.demo import DemoContext, load_demo_scene
from hsikit.demo_steps import spectral_classifier


@pytest.mark.parametrize("offline", [False, True])
def test_step_writes_a_class_map_and_reports_accuracy(offline: bool, shared_data: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    scene = load_demo_scene(offline=offline, echo=lines.append)
    context = DemoContext(scene=scene, output_dir=tmp_path, echo=lines.append)
    files = spectral_classifier.train_spectral_classifier(context)
    assert [path.name for path in files] == ["class_map.tif", "class_map.png"]
    with rasterio.open(files[0]) as raster:
        classes = raster.read(1)
    assert classes.shape == scene.labels.shape
    assert set(np.unique(classes)) <= set(range(1, int(scene.labels.max()) + 1))
    accuracy = float(lines[-1].split("overall accuracy ")[1].split("%")[0]) / 100
    # far above chance (1/16 on Indian Pines, 1/5 on the synthetic scene)
    assert accuracy > (0.45 if not offline else 0.4)
    assert spectral_classifier.STEPS[0].name == "spectral_classifier" and spectral_classifier.ORDER == 40
