"""Clustering scenes: .mat folders (v5 and v7.3 axes), label sources, padding, pooled statistics, resumable repeats."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from hsikit.cube import Cube
from hsikit.data.clustering_datamodule import (
    ClusteringDataModule,
    RepeatedBatches,
    list_cube_files,
    pad_scenes,
    pooled_standardizer,
)
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.io.matlab import write_mat


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def reference_read(path: Path) -> np.ndarray:
    """What the reference's JSONMATDataset returned for a .mat cube (h5py first, then the band-axis guess)."""
    try:
        with h5py.File(path, "r") as handle:
            array = handle["cube"][()]
    except OSError:
        array = scipy.io.loadmat(path)["cube"]
    if array.ndim == 3 and array.shape[2] < array.shape[0]:
        array = array.transpose(2, 0, 1)
    return array


def bright_rectangle_cube(bands: int, height: int, width: int, rows: slice, cols: slice, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cube = rng.uniform(0.0, 0.2, size=(bands, height, width)).astype(np.float32)
    cube[:, rows, cols] += 1.0
    return cube


def labelme_rectangle(path: Path, height: int, width: int, rows: slice, cols: slice) -> None:
    shape = {"label": "roof", "shape_type": "rectangle", "points": [[cols.start, rows.start], [cols.stop, rows.stop]]}
    path.write_text(json.dumps({"imageHeight": height, "imageWidth": width, "shapes": [shape]}))


def test_v73_and_v5_cubes_read_as_chw_and_stay_aligned_with_their_labelme_polygons(tmp_path: Path) -> None:
    mats, labels = tmp_path / "mat", tmp_path / "json"
    mats.mkdir()
    labels.mkdir()
    rows, cols = slice(2, 6), slice(10, 18)
    # v7.3: (C, H, W) = (30, 12, 20), non-square; v5: (30, 16, 12), narrower than its band count
    cubes = {"a_v73": bright_rectangle_cube(30, 12, 20, rows, cols, 0)}
    write_mat(Cube(cubes["a_v73"]), mats / "a_v73.mat", format="v7.3", key="cube", layout="CHW")
    labelme_rectangle(labels / "a_v73.json", 12, 20, rows, cols)
    small_rows, small_cols = slice(3, 9), slice(1, 5)
    cubes["b_v5"] = bright_rectangle_cube(30, 16, 12, small_rows, small_cols, 1)
    write_mat(Cube(cubes["b_v5"]), mats / "b_v5.mat", format="v5", key="cube", layout="CHW")
    labelme_rectangle(labels / "b_v5.json", 16, 12, small_rows, small_cols)

    # The reference transposed both: h5py reverses MATLAB's axes, and the band-axis guess misfires.
    assert reference_read(mats / "a_v73.mat").shape == (20, 12, 30)
    assert reference_read(mats / "b_v5.mat").shape == (12, 30, 16)

    module = ClusteringDataModule(inputs=str(mats), json_dir=str(labels), class_mapping={"roof": 1},
                                  normalization="none", pairs_per_batch=1)  # fmt: skip
    module.setup()
    assert [scene.name for scene in module.train_scenes] == ["a_v73", "b_v5"]
    for scene in module.train_scenes:
        original = cubes[scene.name]
        np.testing.assert_array_equal(np.asarray(scene.cube.data), original)
        bright = original.mean(axis=0) > 0.5
        np.testing.assert_array_equal(scene.labels == 1, bright)  # the polygon covers exactly the bright pixels
    assert module.data_description["bands"] == 30


def test_scenes_of_different_band_counts_are_refused(tmp_path: Path) -> None:
    write_mat(Cube(np.zeros((6, 8, 8), np.float32)), tmp_path / "a.mat", key="cube", layout="CHW")
    write_mat(Cube(np.zeros((7, 8, 8), np.float32)), tmp_path / "b.mat", key="cube", layout="CHW")
    with pytest.raises(ShapeMismatchError, match="7 bands, but the first scene has 6"):
        ClusteringDataModule(inputs=str(tmp_path)).setup()


def test_label_sources_pth_tensors_rasters_and_mat_variables(tmp_path: Path) -> None:
    cubes, label_dir = tmp_path / "cubes", tmp_path / "labels"
    cubes.mkdir()
    label_dir.mkdir()
    truth = np.arange(5 * 7).reshape(5, 7) % 3
    write_mat(Cube(np.ones((4, 5, 7), np.float32)), cubes / "s1.mat", key="cube", layout="CHW")
    write_mat(Cube(np.ones((4, 5, 7), np.float32)), cubes / "s2.mat", key="cube", layout="CHW")
    torch.save(torch.from_numpy(truth), label_dir / "s1.pth")
    np.save(label_dir / "s2.npy", truth + 1)
    module = ClusteringDataModule(inputs=str(cubes), label_dir=str(label_dir), normalization="none")
    module.setup()
    np.testing.assert_array_equal(module.train_scenes[0].labels, truth)
    np.testing.assert_array_equal(module.train_scenes[1].labels, truth + 1)
    assert module.data_description["label_values"] == 4
    # a label variable inside the .mat file (the reference's fallback)
    scipy.io.savemat(cubes / "s3.mat", {"cube": np.ones((4, 5, 7), np.float32), "label": truth.astype(np.uint8)})
    inside = ClusteringDataModule(inputs=str(cubes / "s3.mat"), normalization="none")
    inside.setup()
    np.testing.assert_array_equal(inside.train_scenes[0].labels, truth)
    torch.save({"not": "a tensor"}, label_dir / "s1.pth")
    with pytest.raises(ShapeMismatchError, match="2-D integer tensor"):
        ClusteringDataModule(inputs=str(cubes / "s1.mat"), label_dir=str(label_dir)).setup()
    with pytest.raises(ConfigError, match="not both"):
        ClusteringDataModule(inputs=str(cubes), label_dir=str(label_dir), json_dir=str(label_dir))


def test_folders_without_mat_files_take_any_cube_format(tmp_path: Path) -> None:
    from hsikit.io import save_cube

    data = np.random.default_rng(0).random((5, 9, 9)).astype(np.float32)
    save_cube(Cube(data), tmp_path / "x.tif")
    np.save(tmp_path / "y.npy", data)  # (C, H, W): the odd axis out holds the bands
    files = list_cube_files(tmp_path)
    assert [f.name for f in files] == ["x.tif", "y.npy"]
    module = ClusteringDataModule(inputs=str(tmp_path), normalization="none")
    module.setup()
    for scene in module.train_scenes:
        np.testing.assert_allclose(np.asarray(scene.cube.data), data)


def test_padding_of_a_batch_is_masked_and_never_labelled_as_a_class() -> None:
    small = {"cube": torch.ones(3, 4, 5), "valid": torch.ones(4, 5, dtype=torch.bool),
             "labels": torch.zeros(4, 5, dtype=torch.int64), "index": 0}  # fmt: skip
    large = {"cube": torch.zeros(3, 2, 9), "valid": torch.ones(2, 9, dtype=torch.bool),
             "labels": torch.ones(2, 9, dtype=torch.int64), "index": 1}  # fmt: skip
    batch = pad_scenes([small, large])
    assert batch["cube"].shape == (2, 3, 4, 9)
    assert int(batch["valid"][0].sum()) == 20 and int(batch["valid"][1].sum()) == 18
    assert bool((batch["labels"][0, :, 5:] == -1).all())  # the reference padded labels with 0, a real class
    assert bool((batch["cube"][0, :, :, 5:] == 1).all())  # edge replication, valid for any amount


def test_global_statistics_pool_the_pixels_of_all_scenes() -> None:
    rng = np.random.default_rng(3)
    first = rng.normal(2.0, 1.0, size=(4, 6, 7))
    second = rng.normal(-1.0, 3.0, size=(4, 10, 3))
    normalizer = pooled_standardizer([Cube(first), Cube(second)])
    pixels = np.concatenate([first.reshape(4, -1), second.reshape(4, -1)], axis=1)
    np.testing.assert_allclose(normalizer.shift, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(normalizer.scale, pixels.std(axis=1), rtol=1e-12)


def test_each_loaded_batch_is_repeated_and_a_resume_between_repeats_continues_exactly() -> None:
    cubes = [np.full((2, 6, 6), float(i), np.float32) for i in range(5)]
    module = ClusteringDataModule.from_cubes(cubes, batch_size=2, pairs_per_batch=3, shuffle_seed=11,
                                             normalization="none")  # fmt: skip
    loader = module.train_dataloader()
    assert isinstance(loader, RepeatedBatches) and len(loader) == 3 * 3
    loader.sampler.set_epoch(4)
    full = [tuple(batch["index"].tolist()) for batch in loader]
    assert len(full) == 9 and full[0] == full[1] == full[2] and full[3] == full[4] == full[5]
    assert sorted({i for group in full for i in group}) == [0, 1, 2, 3, 4]
    for stop in (1, 3, 4, 8):
        partial = module.train_dataloader()
        partial.sampler.set_epoch(4)
        iterator = iter(partial)
        for _ in range(stop):
            next(iterator)
        state = partial.state_dict()
        resumed = module.train_dataloader()
        resumed.load_state_dict(state)
        resumed.load_state_dict(state)  # Lightning and hsikit's callback may both restore it
        resumed.sampler.set_epoch(4)
        assert [tuple(batch["index"].tolist()) for batch in resumed] == full[stop:], stop


def test_a_registered_dataset_serves_whole_scenes(shared_data: Path) -> None:
    module = ClusteringDataModule(dataset="samson", root=str(shared_data), download=False, batch_size=2,
                                  pairs_per_batch=2)  # fmt: skip
    description = module.data_description
    assert description["bands"] == 156 and description["class_names"] == ["Soil", "Tree", "Water"]
    assert description["label_values"] == 4 and description["scene_normalization"] == "global"
    batches = list(module.train_dataloader())
    assert len(batches) == 2 and batches[0]["cube"].shape == (1, 156, 95, 95)
    normalised = batches[0]["cube"][0].reshape(156, -1)
    torch.testing.assert_close(normalised.mean(dim=1), torch.zeros(156), atol=1e-4, rtol=0)
    probe = next(iter(module.val_dataloader()))
    assert probe["labels"].shape == (1, 95, 95) and int(probe["labels"].max()) == 3


def test_prefetch_reads_the_same_batches_in_background_workers(tmp_path: Path) -> None:
    for index in range(3):
        write_mat(Cube(np.full((3, 6, 6), float(index), np.float32)), tmp_path / f"s{index}.mat", key="cube",
                  layout="CHW")  # fmt: skip
    options = {"inputs": str(tmp_path), "normalization": "none", "batch_size": 2, "pairs_per_batch": 2,
               "shuffle_seed": 1}  # fmt: skip
    eager = ClusteringDataModule(**options)
    prefetched = ClusteringDataModule(**options, prefetch=True, prefetch_factor=3)
    assert prefetched.num_workers == 1 and not prefetched.full_load  # read from disk by the worker
    loader = prefetched.train_dataloader()
    assert loader.loader.persistent_workers and loader.loader.prefetch_factor == 3
    assert prefetched.train_scenes[0].cube is None
    expected = [batch["cube"] for batch in eager.train_dataloader()]
    received = [batch["cube"] for batch in loader]
    assert len(received) == len(expected) == 4
    for first, second in zip(expected, received):
        torch.testing.assert_close(first, second)
