"""Whole-scene outputs: class maps of pixel and patch classifiers, latent cubes and SAM maps of autoencoders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hsikit.data.spectral_datamodules import PatchClassificationDataModule
from hsikit.engine.export import export_model, load_model
from hsikit.models import create_model
from hsikit.spectral.metrics import spectral_angle
from hsikit.workflows.deephyp import SpectralAutoencoder, SpectralClassifier, SpectralData
from hsikit.workflows.spectral_maps import autoencode_cube, classify_cube, latent_separation


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def indian_pines(shared_data: Path) -> Any:
    from hsikit.data import load_dataset

    return load_dataset("indian_pines", root=shared_data, download=False, progress=False)


def test_pixel_classifier_map_equals_its_predictions(indian_pines: Any, tmp_path: Path) -> None:
    data = SpectralData.from_cube(indian_pines.cube, indian_pines.labels, preprocessing="standardize")
    labelled = data.labelled()
    net = SpectralClassifier(in_bands=200, num_classes=16, conv_filter_sizes=[9], conv_num_filters=[3],
                             conv_strides=[3], fc_sizes=[8])
    net.add_training("t", epochs=1, batch_size=256)
    net.train("t", labelled.subset(labelled.first_per_class(10)))
    net.save("t", tmp_path / "model")
    scene = classify_cube(load_model(tmp_path / "model"), indian_pines.cube, chunk_pixels=5000)
    expected = data.to_image(net.predict_labels(data, model="t"))
    np.testing.assert_array_equal(scene.labels, expected)
    assert scene.first_label == 1 and np.isfinite(scene.confidence).all()
    assert (scene.confidence >= 1 / 16 - 1e-6).all() and (scene.confidence <= 1).all()


def test_patch_classifier_map_equals_the_datamodule_patches(indian_pines: Any, tmp_path: Path) -> None:
    module = PatchClassificationDataModule.from_arrays(
        indian_pines.cube, indian_pines.labels, indian_pines.class_names, split="count", train=10, val=5, test=5,
        patch_size=9, pca_components=15, augment=False,
    )
    module.setup()
    torch.manual_seed(0)
    model = create_model("hybridsn", in_bands=15, num_classes=16, patch_size=9, conv3d_filters=[2, 4, 4],
                         conv2d_filters=8, fc_sizes=[16], dropout=0.0).eval()
    export_model(model, tmp_path / "model", task="classification", data=module.data_description)
    scene = classify_cube(load_model(tmp_path / "model"), indian_pines.cube, chunk_pixels=3000, patch_batch=700)
    expected = np.zeros(145 * 145, dtype=np.int64)
    with torch.no_grad():
        for patches, index in module.predict_dataloader():
            expected[index.numpy()] = model(patches).argmax(1).numpy() + 1
    np.testing.assert_array_equal(scene.labels.reshape(-1), expected)
    assert scene.class_names == list(indian_pines.class_names)


def test_autoencoded_scene_keeps_georeference_and_scores_each_pixel(shared_data: Path, tmp_path: Path) -> None:
    from hsikit.io import open_cube

    cube = open_cube(shared_data / "glacier" / "images" / "1.tif")
    data = SpectralData.from_cube(cube, preprocessing="spectrum_minmax")
    net = SpectralAutoencoder(in_bands=10, encoder_sizes=[6, 2], activation="relu")
    net.add_training("csa", loss="CSA", epochs=1, batch_size=4096)
    net.train("csa", data.subset(np.arange(0, data.num_samples, 8)))
    net.save("csa", tmp_path / "ae")
    scene = autoencode_cube(load_model(tmp_path / "ae"), cube, keep_reconstruction=True, chunk_pixels=10000)
    assert scene.latent.shape == (2, 256, 256)
    assert scene.latent.crs == cube.crs and scene.latent.transform == cube.transform
    np.testing.assert_allclose(scene.latent.data.reshape(2, -1).T, net.encode(data, model="csa"), rtol=1e-5,
                               atol=1e-6)
    reconstruction = net.reconstruct(data, model="csa")
    angles = spectral_angle(torch.from_numpy(reconstruction), torch.from_numpy(data.spectra), axis=1, degrees=True)
    np.testing.assert_allclose(scene.sam_deg.reshape(-1), angles.numpy(), rtol=1e-4, atol=1e-4)
    summary = scene.summary()
    assert summary["pixels"] == 65536 and summary["mean_sam_deg"] == pytest.approx(float(angles.mean()), rel=1e-4)


def test_latent_separation_scores_clusters_against_classes() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 2, 3], 200)
    separated = np.eye(3)[labels - 1] * 10 + rng.normal(0, 0.1, (600, 3))
    mixed = rng.normal(0, 1, (600, 5))
    scores = latent_separation(separated, mixed, np.concatenate([labels[:-5], [0] * 5]))
    assert scores["classes"] == 3 and scores["pixels"] == 595  # label 0 is left out
    assert scores["nmi_latent"] == pytest.approx(1.0, abs=1e-9)
    assert scores["nmi_spectra"] < 0.1
