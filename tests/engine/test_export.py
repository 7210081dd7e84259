"""Model files: safetensors + config.json, atomic export, loading without Lightning or pickle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hsikit
from hsikit.engine import export
from hsikit.engine.export import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    export_checkpoint,
    export_model,
    load_model,
    read_checkpoint,
    read_model_config,
)
from hsikit.errors import CheckpointError, DataFileNotFoundError
from hsikit.models import create_model

DATA = {
    "bands": 6,
    "wavelengths": [450.0, 500.0, 550.0, 600.0, 650.0, 700.0],
    "class_names": ["soil", "tree", "water"],
    "normalization": {"name": "standardize", "shift": [1.0] * 6, "scale": [2.0] * 6},
    "label_offset": 1,
}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("spectral_mlp", in_bands=6, num_classes=3, hidden_sizes=[5])
    model.eval()
    with torch.no_grad():  # non-default BatchNorm statistics, so buffers are checked too
        model.features[1].running_mean.uniform_(-1, 1)
        model.features[1].running_var.uniform_(0.5, 2)
    return model


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    export_model(_model(), folder, task="classification", data=DATA)
    return folder


def test_round_trip_rebuilds_the_same_model(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = hsikit.load_model(exported, expected_bands=6)
    inputs = torch.randn(4, 6)
    torch.testing.assert_close(loaded(inputs), _model()(inputs), rtol=0, atol=0)
    assert not loaded.training
    config = loaded.hsikit_config
    assert (config.name, config.task, config.bands) == ("spectral_mlp", "classification", 6)
    assert config.arguments == {"in_bands": 6, "num_classes": 3, "hidden_sizes": [5], "dropout": 0.1, "norm": "batch"}
    assert config.wavelengths == DATA["wavelengths"] and config.class_names == DATA["class_names"]
    assert config.normalization == DATA["normalization"] and config.extra == {"label_offset": 1}
    # the config file or the weights file name the same folder
    assert read_model_config(exported / CONFIG_FILE) == read_model_config(exported / WEIGHTS_FILE)


def test_loading_needs_neither_lightning_nor_pickle(exported: Path) -> None:
    script = textwrap.dedent(
        f"""
        import pickle, sys
        def refuse(*args, **kwargs):
            raise AssertionError("unpickling attempted")
        pickle.load = pickle.loads = pickle.Unpickler = refuse
        import hsikit, torch
        model = hsikit.load_model({str(exported)!r})
        assert model(torch.zeros(2, 6)).shape == (2, 3)
        assert not any(name.split(".")[0] in ("lightning", "pytorch_lightning") for name in sys.modules)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _edit_config(folder: Path, **changes: object) -> None:
    path = folder / CONFIG_FILE
    payload = json.loads(path.read_text())
    payload.update(changes)
    path.write_text(json.dumps(payload))


def test_foreign_architecture_is_refused(exported: Path) -> None:
    _edit_config(exported, arguments={"in_bands": 6, "num_classes": 3, "hidden_sizes": [9]})
    with pytest.raises(CheckpointError, match=r"do not fit architecture 'spectral_mlp'.*another shape"):
        load_model(exported)
    _edit_config(exported, name="unet3d_from_the_future")
    with pytest.raises(CheckpointError, match="'unet3d_from_the_future', which this hsikit does not know"):
        load_model(exported)


def test_wrong_band_count_or_model_name_is_refused(exported: Path) -> None:
    with pytest.raises(CheckpointError, match="trained on 6 bands, the input has 200"):
        load_model(exported, expected_bands=200)
    with pytest.raises(CheckpointError, match="not the expected 'other_model'"):
        load_model(exported, expected_model="other_model")


def test_corrupted_files_are_refused(exported: Path) -> None:
    weights = exported / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-8] ^= 0xFF  # one flipped byte inside a tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 .* does not match"):
        load_model(exported)
    weights.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    with pytest.raises(CheckpointError, match="corrupted or belong to another export"):
        load_model(exported)
    config = exported / CONFIG_FILE
    config.write_text(config.read_text()[:40])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(exported)
    config.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not an hsikit model config"):
        load_model(exported)


def test_missing_folder_and_lone_files(tmp_path: Path, exported: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="no such file"):
        load_model(tmp_path / "nowhere")
    (exported / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="export was interrupted"):
        load_model(exported)


def test_interrupted_export_leaves_nothing_that_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    export_model(_model(), folder, data=DATA)  # a previous, complete export

    def interrupted(path: Path) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_sha256", interrupted)  # dies after writing the weights, before the config
    with pytest.raises(KeyboardInterrupt):
        export_model(_model(), folder, data=DATA)
    monkeypatch.undo()
    # no temporary files remain, and the old config is gone, so the folder does not load as complete
    assert sorted(p.name for p in folder.iterdir()) == [WEIGHTS_FILE]
    with pytest.raises(CheckpointError, match="incomplete model folder"):
        load_model(folder)


def test_export_killed_between_the_renames(tmp_path: Path) -> None:
    """SIGKILL right after the new weights are renamed into place, before the config is."""
    folder = tmp_path / "model"
    export_model(_model(), folder, data=DATA)  # an old export, which the new one replaces
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from hsikit.engine.export import export_model
        from hsikit.models import create_model
        real_replace = os.replace
        def replace_then_die(source, target):
            real_replace(source, target)
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace = replace_then_die
        model = create_model("spectral_mlp", in_bands=6, num_classes=3, hidden_sizes=[5])
        export_model(model, {str(folder)!r}, data={{"bands": 6}})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert (folder / WEIGHTS_FILE).is_file()  # the new weights are in place...
    with pytest.raises(CheckpointError, match="export was interrupted"):  # ...but nothing loads
        load_model(folder)


class _NotATensor:
    """Any class: torch.load(weights_only=True) must refuse to rebuild it."""


def test_lightning_checkpoints_are_read_without_unpickling_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _NotATensor()}, path)
    with pytest.raises(CheckpointError, match="refused - it holds objects other than tensors"):
        read_checkpoint(path)
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(100)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(truncated)


def test_export_checkpoint_prefers_the_ema_weights(tmp_path: Path) -> None:
    model = _model()
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    ema = {key: value + 1.0 if value.is_floating_point() else value for key, value in model.state_dict().items()}
    checkpoint = {
        "state_dict": state,
        "hsikit": {
            "model": {"name": "spectral_mlp", "arguments": export.model_spec(model)[1]},
            "task": "classification",
            "data": DATA,
        },
        "hsikit_ema": {"decay": 0.9, "num_updates": 3, "state_dict": ema},
    }
    path = tmp_path / "run.ckpt"
    torch.save(checkpoint, path)
    export_checkpoint(path, tmp_path / "ema")
    export_checkpoint(path, tmp_path / "raw", use_ema=False)
    with_ema, raw = load_model(tmp_path / "ema"), load_model(tmp_path / "raw")
    torch.testing.assert_close(with_ema.head.weight, model.head.weight + 1.0)
    torch.testing.assert_close(raw.head.weight, model.head.weight)
    assert with_ema.hsikit_config.class_names == DATA["class_names"]


def test_run_folder_itself_is_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not a model folder"):
        load_model(tmp_path / "notes.txt")
    assert os.listdir(tmp_path) == ["notes.txt"]
