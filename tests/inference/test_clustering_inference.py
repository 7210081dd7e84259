"""Tiled cluster maps: probabilities merged, equal to whole-image inference, normalised like training, files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hsikit.cube import Cube
from hsikit.data.clustering_datamodule import pooled_standardizer, scene_standardizer
from hsikit.errors import ConfigError
from hsikit.inference.clustering import ClusterProbabilityModel, cluster_scene, receptive_radius
from hsikit.models.clustering import GlobalClusteringModel

TINY = {"n_clusters": 4, "embed_dim": 8, "spectral_channels": 4, "n_spectral_layers": 2, "num_iters": 2, "window": 3}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture
def model() -> GlobalClusteringModel:
    torch.manual_seed(0)
    return GlobalClusteringModel(in_bands=12, **TINY).eval()


def smooth_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    waves = [np.sin(rows / (5 + k) + k) * np.cos(cols / (7 + k)) for k in range(12)]
    return (np.stack(waves) * 50 + 200 + rng.normal(0, 1, (12, height, width))).astype(np.float32)


def test_the_wrapper_gives_log_probabilities_whose_softmax_is_the_model_probabilities(model) -> None:
    cube = torch.randn(2, 12, 9, 11)
    out = model(cube)
    log_probs = ClusterProbabilityModel(model)(cube)
    torch.testing.assert_close(torch.softmax(log_probs, dim=1), out.probs)
    torch.testing.assert_close(ClusterProbabilityModel(model, "probabilities")(cube), out.probs)
    model.dictionary.active[2] = False  # a pruned cluster has probability 0 and never wins
    assert bool(torch.isneginf(ClusterProbabilityModel(model)(cube)[:, 2]).all())


def test_tiled_map_equals_whole_image_inference_border_included(model) -> None:
    data = smooth_scene(70, 90)
    assert receptive_radius(model) == 3
    with torch.no_grad():
        whole = model(torch.from_numpy(data)[None])
    result = cluster_scene(model, Cube(data), scene_normalization="none", tile=32, overlap=16,
                           keep_probabilities=True)  # fmt: skip
    np.testing.assert_allclose(result.probabilities, whole.probs[0].numpy(), atol=2e-5, rtol=0)
    agree = result.labels == whole.labels[0].numpy()
    assert agree.mean() > 0.999  # argmax ties aside, the same map


def test_global_and_per_scene_normalisation_match_the_training_transform(model) -> None:
    data = smooth_scene(30, 40, seed=1)
    normalizer = pooled_standardizer([Cube(data)])
    expected = normalizer.transform(data, band_axis=0)
    with torch.no_grad():
        labels = model(torch.from_numpy(expected.astype(np.float32))[None]).labels[0].numpy()
    tiled = cluster_scene(model, Cube(data), normalization=normalizer.to_dict(), tile=64, overlap=16)
    assert (tiled.labels == labels).mean() > 0.999
    per_scene = cluster_scene(model, Cube(data), scene_normalization="per_scene", tile=64, overlap=16)
    np.testing.assert_array_equal(per_scene.labels, tiled.labels)  # one scene: its own statistics are the pooled ones
    with pytest.raises(ConfigError, match="export the model again"):
        cluster_scene(model, Cube(data), scene_normalization="global")
    single = scene_standardizer(Cube(data))
    np.testing.assert_allclose(single.shift, normalizer.shift)


def test_nodata_pixels_are_left_unclustered(model) -> None:
    data = smooth_scene(20, 20)
    data[:, 3, 4] = np.nan
    result = cluster_scene(model, Cube(data, nonfinite="ignore"), scene_normalization="none", tile=32, overlap=16)
    assert result.labels[3, 4] == -1 and int((result.labels == -1).sum()) == 1


def test_a_scene_map_is_written_with_the_georeference(model, tmp_path: Path) -> None:
    from affine import Affine

    from hsikit.io import open_cube

    data = smooth_scene(40, 50)
    transform = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0)
    cube = Cube(data, crs="EPSG:32647", transform=transform)
    target = cluster_scene(model, cube, scene_normalization="none", tile=32, overlap=16, output=tmp_path / "c.tif")
    written = open_cube(target)
    assert written.crs == cube.crs and written.transform == transform
    in_memory = cluster_scene(model, cube, scene_normalization="none", tile=32, overlap=16)
    np.testing.assert_array_equal(written.data[0].astype(np.int64), in_memory.labels)


def test_an_overlap_too_small_for_the_receptive_field_is_refused(model) -> None:
    with pytest.raises(ConfigError, match="overlap >= 8"):
        cluster_scene(model, Cube(smooth_scene(20, 20)), scene_normalization="none", tile=16, overlap=4, margin=3)
