"""The pixel-classification datamodule on real Indian Pines labels."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from hsikit.data.datamodules import PixelClassificationDataModule, ResumableDataLoader
from hsikit.errors import ConfigError, ShapeMismatchError


def test_split_normalisation_and_description(make_datamodule: Any, indian_pines: Any) -> None:
    datamodule = make_datamodule()
    datamodule.setup()
    train, val, test = (datamodule.datasets[p] for p in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (160, 80, 80)
    # 10 / 5 / 5 pixels of each of the 16 classes (0-based targets)
    assert np.bincount(train.targets.numpy()).tolist() == [10] * 16
    assert np.bincount(val.targets.numpy()).tolist() == [5] * 16
    # the standardiser was fitted on the training pixels only: they have zero mean and unit std per band
    torch.testing.assert_close(train.spectra.mean(0), torch.zeros(200), atol=1e-4, rtol=0)
    torch.testing.assert_close(train.spectra.std(0, unbiased=False), torch.ones(200), atol=1e-3, rtol=0)
    assert val.spectra.mean(0).abs().max() > 1e-3
    # the spectra are those of the split's pixels
    rows, cols = datamodule.split.rows_cols("val")
    raw = np.asarray(indian_pines.cube.data[:, rows, cols], dtype=np.float64).T
    expected = datamodule.normalizer.transform(raw, band_axis=1)
    np.testing.assert_allclose(val.spectra.numpy(), expected, rtol=1e-5, atol=1e-5)
    description = datamodule.data_description
    assert description["bands"] == 200 and len(description["wavelengths"]) == 200
    assert description["class_names"][0] == "Alfalfa" and description["normalization"]["name"] == "standardize"


def test_loaders_shard_across_processes(make_datamodule: Any) -> None:
    datamodule = make_datamodule(batch_size=32)
    datamodule.setup()
    seen = []
    for rank in (0, 1):
        datamodule.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        loader = datamodule.train_dataloader()
        assert isinstance(loader, ResumableDataLoader) and len(loader) == 2  # 80 pixels per rank, batch 32
        evaluation = datamodule.val_dataloader()
        seen.append(torch.cat([targets for _, targets in evaluation]))
    # validation: every pixel on exactly one process
    assert sum(len(s) for s in seen) == 80


def test_split_file_round_trip(make_datamodule: Any, tmp_path: Path) -> None:
    first = make_datamodule()
    first.setup()
    first.save_artifacts(tmp_path)
    again = make_datamodule(split_seed=99, split_file=str(tmp_path / "split.json"))
    again.setup()
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(again.split.indices(part), first.split.indices(part))


def test_bad_inputs_are_refused(indian_pines: Any) -> None:
    with pytest.raises(ShapeMismatchError, match="do not match the cube's spatial size"):
        PixelClassificationDataModule.from_arrays(indian_pines.cube, indian_pines.labels[:100])
    with pytest.raises(ConfigError, match="batch_size"):
        PixelClassificationDataModule(batch_size=0)
    with pytest.raises(ConfigError, match="split must be"):
        PixelClassificationDataModule(split="kfold")
    with pytest.raises(ConfigError, match="no data"):
        PixelClassificationDataModule(dataset=None).setup()
