"""deephyp's workflow in hsikit: data, named trainings, save/load, encode/decode, labels and features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hsikit.cube import Cube
from hsikit.errors import CheckpointError, ConfigError, ShapeMismatchError, UnknownNameError
from hsikit.workflows.deephyp import SpectralAutoencoder, SpectralClassifier, SpectralData, TrainingConfig

TINY_AE = {"encoder_sizes": [16, 4], "activation": "relu"}
TINY_CNN = {"conv_filter_sizes": [9, 5], "conv_num_filters": [4, 4], "conv_strides": [2, 2], "fc_sizes": [12]}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def samson(shared_data: Path) -> SpectralData:
    from hsikit.data import load_dataset

    scene = load_dataset("samson", root=shared_data, download=False, progress=False)
    return SpectralData.from_cube(scene.cube, scene.labels)


@pytest.fixture(scope="module")
def indian_pines(shared_data: Path) -> Any:
    from hsikit.data import load_dataset

    return load_dataset("indian_pines", root=shared_data, download=False, progress=False)


# ------------------------------------------------------------------------------ data
def test_spectral_data_is_deephyps_hypimg(samson: SpectralData) -> None:
    assert samson.spectra.shape == (9025, 156) and samson.image_shape == (95, 95)
    x = samson.raw_spectra[4000].astype(np.float64)
    np.testing.assert_allclose(samson.spectra[4000], (x - (x.min() - 1e-3)) / x.max(), rtol=1e-5)
    assert samson.num_classes == 3 and samson.label_values.tolist() == [1, 2, 3]
    one_hot = samson.one_hot()
    assert one_hot.shape == (9025, 3) and (one_hot.sum(axis=1) == 1).all()
    assert one_hot[4000, samson.labels[4000] - 1] == 1.0
    # row-major order, as deephyp's reshape(-1, bands)
    assert (samson.rows[96], samson.cols[96]) == (1, 1)


def test_non_contiguous_labels_get_an_explicit_table() -> None:
    rng = np.random.default_rng(0)
    spectra = rng.random((6, 8)) + 0.1
    data = SpectralData.from_spectra(spectra, labels=np.array([1, 5, 0, 2, 5, -1]))
    assert data.label_values.tolist() == [1, 2, 5]  # deephyp would index column 5 - 1 = 4 of 3 columns
    assert data.targets.tolist() == [0, 2, -100, 1, 2, -100]
    np.testing.assert_array_equal(data.one_hot()[1], [0, 0, 1])
    assert data.one_hot()[2].sum() == 0  # background rows are all zero
    with pytest.raises(ShapeMismatchError, match=r"label value\(s\) \[7\]"):
        SpectralData.from_spectra(spectra, labels=np.array([1, 7, 0, 2, 5, 1]), label_values=[1, 2, 5])


def test_to_cube_keeps_the_georeference_and_masks_missing_pixels(shared_data: Path) -> None:
    from hsikit.io import open_cube

    source = open_cube(shared_data / "glacier" / "images" / "1.tif")
    mask = np.zeros((source.height, source.width), dtype=bool)
    mask[:3, :5] = True
    masked = Cube(np.asarray(source.data), crs=source.crs, transform=source.transform, nodata_mask=mask)
    data = SpectralData.from_cube(masked, preprocessing="spectrum_l2")
    assert data.num_samples == 256 * 256 - 15
    cube = data.to_cube(data.spectra[:, :2])
    assert cube.shape == (2, 256, 256) and cube.crs == source.crs and cube.transform == source.transform
    assert cube.nodata_mask[:3, :5].all() and cube.valid_mask.sum() == data.num_samples
    np.testing.assert_allclose(cube.data[:, 10, 20], data.spectra[10 * 256 + 20 - 15, :2])


# ------------------------------------------------------------------------------ autoencoders
def test_named_trainings_each_make_and_save_their_own_model(samson: SpectralData, tmp_path: Path) -> None:
    train = samson.subset(np.arange(0, 9025, 5))
    net = SpectralAutoencoder("deephyp_mlp_ae", in_bands=156, **TINY_AE)
    net.add_training("csa", loss="CSA", epochs=3, batch_size=200, save_epochs=[1])
    net.add_training("sse", loss="SSE", epochs=2, batch_size=300, lr=3e-3, lr_decay_steps=5, lr_decay_rate=0.5)
    history = net.train("csa", train, val_data=samson.subset(np.arange(1, 9025, 50)), output_dir=tmp_path)
    assert [row["epoch"] for row in history] == [1, 2, 3] and all("val_loss" in row for row in history)
    net.train("sse", train, output_dir=tmp_path, seed=1)
    assert sorted(p.name for p in (tmp_path / "csa").iterdir()) == ["config.json", "epoch_1", "epoch_3", "history.json"]
    assert sorted(p.name for p in (tmp_path / "sse").iterdir()) == ["config.json", "epoch_2", "history.json"]
    deephyp_keys = json.loads((tmp_path / "csa" / "config.json").read_text())
    assert deephyp_keys["encodersize"] == [16, 4] and deephyp_keys["inputSize"] == 156
    assert net.record("sse")["training"]["loss"] == "SSE" and net.record("csa")["epoch"] == 3
    latent_csa, latent_sse = net.encode(samson, model="csa"), net.encode(samson, model="sse")
    assert latent_csa.shape == (9025, 4) and not np.allclose(latent_csa, latent_sse)

    # deephyp: net = mlp_1D_network(configFile=...); net.add_model(addr, modelName)
    restored = SpectralAutoencoder.from_config(tmp_path / "csa" / "config.json")
    name = restored.load(tmp_path / "csa" / "epoch_3", "csa_3")
    np.testing.assert_allclose(restored.encode(samson, model=name), latent_csa, rtol=1e-6, atol=1e-6)
    reconstruction = restored.reconstruct(samson, model=name)
    np.testing.assert_allclose(restored.decode(latent_csa, model=name), reconstruction, rtol=1e-5, atol=1e-6)
    assert restored.predict_features(samson, "latent", model=name).shape == (9025, 4)
    assert restored.preprocessing(name).method == "deephyp_minmax"

    other = SpectralAutoencoder("deephyp_mlp_ae", in_bands=156, encoder_sizes=[16, 5])
    with pytest.raises(CheckpointError, match="not this network's"):
        other.load(tmp_path / "csa" / "epoch_3")


def test_epochs_are_exact_and_the_legacy_count_is_available(samson: SpectralData) -> None:
    train = samson.subset(np.arange(0, 9025, 20))
    net = SpectralAutoencoder(in_bands=156, **TINY_AE)
    net.add_training("exact", epochs=2)
    net.add_training("legacy", epochs=2, legacy_inclusive_epochs=True)
    assert len(net.train("exact", train)) == 2  # deephyp's range(0, n_epochs + 1) ran 3
    assert len(net.train("legacy", train)) == 3


def test_weight_decay_shrinks_the_weights(samson: SpectralData) -> None:
    train = samson.subset(np.arange(0, 9025, 10))
    net = SpectralAutoencoder(in_bands=156, **TINY_AE)
    net.add_training("free", epochs=3, batch_size=100, lr=1e-2)
    net.add_training("decayed", epochs=3, batch_size=100, lr=1e-2, weight_decay=0.5)
    norms = {}
    for name in ("free", "decayed"):
        net.train(name, train, seed=0)  # same initial weights and batches
        norms[name] = sum(float((p.detach() ** 2).sum()) for p in net.models[name].parameters())
    # deephyp's decay term had no gradient: both runs would end with the same weights
    assert norms["decayed"] < 0.8 * norms["free"]


def test_training_configurations_are_checked() -> None:
    first, second = TrainingConfig("a"), TrainingConfig("b")
    first.save_epochs.append(5)
    assert second.save_epochs == []  # no shared mutable default (deephyp's save_epochs=[1000])
    with pytest.raises(ConfigError, match="outside 1..3"):
        TrainingConfig("c", epochs=3, save_epochs=[4])
    with pytest.raises(ConfigError, match="not both"):
        TrainingConfig("d", lr_decay_steps=10, lr_decay_rate=0.5, piecewise_bounds=[5], piecewise_values=[1e-4])
    net = SpectralAutoencoder(in_bands=10, encoder_sizes=[4])
    with pytest.raises(ConfigError, match="loss must be one of"):
        net.add_training("x", loss="L1")
    with pytest.raises(UnknownNameError, match="no training named 'y'"):
        net.train("y", SpectralData.from_spectra(np.ones((4, 10))))
    with pytest.raises(ConfigError, match="classification model"):
        SpectralAutoencoder("cnn1d_classifier", in_bands=10, num_classes=3)


# ------------------------------------------------------------------------------ classifiers
def test_classifier_predicts_the_training_label_values(indian_pines: Any, tmp_path: Path) -> None:
    labels = np.asarray(indian_pines.labels) * 10  # label values 10, 20, ... 160: not 1..K
    data = SpectralData.from_cube(indian_pines.cube, labels, preprocessing="standardize").labelled()
    train = data.subset(data.first_per_class(15))  # deephyp's example: the first pixels of each class
    net = SpectralClassifier("cnn1d_classifier", in_bands=200, num_classes=16, **TINY_CNN)
    net.add_training("basic", epochs=4, batch_size=48, lr=3e-3)
    history = net.train("basic", train, val_data=data.subset(data.first_per_class(5, skip=15)), output_dir=tmp_path)
    assert len(history) == 4
    predicted = net.predict_labels(data)
    assert set(np.unique(predicted)) <= set(range(10, 161, 10))
    assert np.mean(predicted == data.labels) > 1 / 16  # better than chance after a few epochs
    scores = net.predict_scores(data)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(net.label_values_of(scores.argmax(axis=1)), predicted)
    features = net.predict_features(data, net.build().num_layers - 1)  # deephyp: the last hidden layer
    assert features.shape == (data.num_samples, 12)
    restored = SpectralClassifier.from_config(tmp_path / "basic" / "config.json")
    restored.load(tmp_path / "basic" / "epoch_4", "basic")
    np.testing.assert_array_equal(restored.predict_labels(data), predicted)


def test_classifier_refuses_data_of_another_shape(indian_pines: Any) -> None:
    data = SpectralData.from_cube(indian_pines.cube, indian_pines.labels).labelled()
    net = SpectralClassifier(in_bands=200, num_classes=5, **TINY_CNN)
    net.add_training("t", epochs=1)
    with pytest.raises(ShapeMismatchError, match="16 classes"):
        net.train("t", data)
    with pytest.raises(ConfigError, match="no labels"):
        net.train("t", SpectralData.from_spectra(data.raw_spectra[:10]))
