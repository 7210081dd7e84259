"""Datamodules of the spectral models: autoencoder spectra, classification from files, PCA patches."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hsikit.data.spectral_datamodules import (
    InMemoryPatches,
    PatchClassificationDataModule,
    SceneClassificationDataModule,
    SpectraDataModule,
    random_dihedral,
)
from hsikit.errors import ConfigError


@pytest.fixture(scope="module")
def samson(shared_data: Path) -> Any:
    from hsikit.data import load_dataset

    return load_dataset("samson", root=shared_data, download=False, progress=False)


@pytest.fixture(scope="module")
def indian_pines(shared_data: Path) -> Any:
    from hsikit.data import load_dataset

    return load_dataset("indian_pines", root=shared_data, download=False, progress=False)


def test_spectra_module_splits_every_pixel_and_preprocesses_it(samson: Any) -> None:
    module = SpectraDataModule.from_arrays(samson.cube, samson.labels, samson.class_names, val=0.1, split_seed=3)
    module.setup()
    train, val = module.pixel_indices["train"], module.pixel_indices["val"]
    assert val.size == round(0.1 * 9025) and train.size == 9025 - val.size
    assert np.intersect1d(train, val).size == 0
    # the spectra are deephyp's per-spectrum min-max of the cube's pixels, targets the 0-based classes
    row, col = divmod(int(train[17]), 95)
    x = np.asarray(samson.cube.data[:, row, col], dtype=np.float64)
    expected = (x - (x.min() - 1e-3)) / x.max()
    np.testing.assert_allclose(module.datasets["train"].spectra[17].numpy(), expected, rtol=1e-5)
    assert int(module.datasets["train"].targets[17]) == int(samson.labels[row, col]) - 1
    description = module.data_description
    assert description["bands"] == 156 and description["class_names"] == ["Soil", "Tree", "Water"]
    assert description["preprocessing"]["method"] == "deephyp_minmax" and description["normalization"] is None
    flat = torch.cat([index for _, index in module.predict_dataloader()])
    assert torch.equal(flat, torch.arange(9025))


def test_spectra_module_counts_band_normalisers_and_bad_amounts(samson: Any) -> None:
    module = SpectraDataModule.from_arrays(samson.cube, val=500, train=2000, preprocessing="standardize")
    module.setup()
    assert len(module.datasets["val"]) == 500 and len(module.datasets["train"]) == 2000
    train = module.datasets["train"].spectra.numpy()
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-4)  # fitted on the training pixels
    assert module.data_description["normalization"]["name"] == "standardize"
    assert int(module.datasets["train"].targets.max()) == -100  # no labels: nothing to colour by
    with pytest.raises(ConfigError, match="val must be"):
        SpectraDataModule(val=-1)
    with pytest.raises(Exception, match="unknown preprocessing"):
        SpectraDataModule(preprocessing="bogus")


def test_scene_module_reads_a_cube_and_labels_from_files(shared_data: Path) -> None:
    images, labels = shared_data / "glacier" / "images" / "1.tif", shared_data / "glacier" / "labels" / "1.tif"
    module = SceneClassificationDataModule(
        cube_path=str(images), labels_path=str(labels), class_names=["clean ice", "debris"], split="count",
        train=20, val=10, batch_size=16,
    )
    module.setup()
    assert len(module.datasets["train"]) == 40 and module.class_names == ["clean ice", "debris"]
    description = module.data_description
    assert description["bands"] == 10 and description["dataset"] is None
    assert int(module.train_targets.max()) == 1
    with pytest.raises(ConfigError, match="needs labels_path"):
        SceneClassificationDataModule(cube_path=str(images))


def test_patches_are_windows_of_the_pca_reduced_scene(indian_pines: Any) -> None:
    module = PatchClassificationDataModule.from_arrays(
        indian_pines.cube, indian_pines.labels, indian_pines.class_names, split="count", train=10, val=5, test=5,
        patch_size=7, pca_components=5, augment=False, batch_size=8,
    )
    module.setup()
    train = module.datasets["train"]
    assert module.pca.n_samples_ == len(train) == 160  # the PCA saw the training pixels only
    # rebuild one patch by hand: standardise, project, reflect-pad, cut
    normalised = module.normalizer.transform(np.asarray(indian_pines.cube.data, dtype=np.float32), band_axis=0)
    reduced = module.pca.transform(normalised)
    padded = np.pad(reduced, ((0, 0), (3, 3), (3, 3)), mode="reflect")
    item = 11
    row, col = int(train.rows[item]), int(train.cols[item])
    expected = padded[:, row : row + 7, col : col + 7]
    patches, targets = train.__getitems__([item, item + 1])
    assert patches.shape == (2, 5, 7, 7)
    np.testing.assert_allclose(patches[0].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert int(targets[0]) == int(indian_pines.labels[row, col]) - 1
    description = module.data_description
    assert description["model_bands"] == 5 and description["patch_size"] == 7 and description["input"] == "patch"
    assert description["bands"] == 200 and description["pca"]["format"] == "hsikit.spectral_pca"


def test_disjoint_split_is_buffered_by_the_patch_size(indian_pines: Any) -> None:
    module = PatchClassificationDataModule.from_arrays(
        indian_pines.cube, indian_pines.labels, indian_pines.class_names, split="disjoint", train=0.3, val=0.0,
        patch_size=9, pca_components=5,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rare classes may lie in too few blocks for every part
        module.setup()
    assert module.split.params["buffer"] == 4
    train_rows, train_cols = module.split.rows_cols("train")
    test = module.split.mask("test")
    padded = np.pad(test, 4)
    for row, col in zip(train_rows[::25], train_cols[::25]):
        assert not padded[row : row + 9, col : col + 9].any()  # no training patch reaches a test pixel


def test_random_dihedral_gives_flips_and_turns_of_each_patch() -> None:
    torch.manual_seed(0)
    batch = torch.arange(64 * 2 * 3 * 3, dtype=torch.float32).reshape(64, 2, 3, 3)
    augmented = random_dihedral(batch)
    seen = set()
    for original, result in zip(batch, augmented):
        candidates = [torch.rot90(original, k, (-2, -1)) for k in range(4)]
        candidates += [torch.rot90(original.flip(-1), k, (-2, -1)) for k in range(4)]
        matches = [i for i, candidate in enumerate(candidates) if torch.equal(candidate, result)]
        assert matches
        seen.add(matches[0])
    assert len(seen) == 8  # every transform drawn in a batch of 64


def test_in_memory_patches_index_the_padded_scene() -> None:
    scene = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(2, 6, 6)  # already padded by 1 for p = 3
    patches = InMemoryPatches(scene, np.array([0, 3]), np.array([2, 1]), np.array([5, 6]), patch_size=3)
    batch, targets = patches.__getitems__([1])
    assert torch.equal(batch[0], scene[:, 3:6, 1:4]) and targets.tolist() == [6]
