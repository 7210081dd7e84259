"""MATLAB files: v5 and v7.3 round trips, the v7.3 axis order, key detection, unmixing layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from hsikit import Cube
from hsikit.errors import LayoutError, MatKeyError
from hsikit.io import open_cube, open_labels, save_cube
from hsikit.io.matlab import MatFile, mat_version, read_mat_labels


def write_like_matlab_v73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Write a v7.3 file the way MATLAB lays it out: 512-byte user block, arrays stored column-major
    (so HDF5 sees every axis reversed), MATLAB_class attributes. Independent of hsikit's writer."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, array in variables.items():
            dataset = handle.create_dataset(name, data=np.ascontiguousarray(array.T))
            cls = {"float64": "double", "float32": "single", "uint8": "uint8", "uint16": "uint16"}[array.dtype.name]
            dataset.attrs["MATLAB_class"] = np.bytes_(cls)
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, written by a test".ljust(116) + b"\0" * 8 + b"\x00\x02IM")


def test_v5_round_trip_follows_the_mstpp_convention(small_cube: Cube, tmp_path: Path) -> None:
    path = save_cube(small_cube, tmp_path / "scene.mat")
    assert mat_version(path) == "5"
    raw = scipy.io.loadmat(path)
    assert raw["cube"].shape == (20, 30, 5)  # H x W x C
    np.testing.assert_array_equal(raw["cube"], small_cube.hwc())
    np.testing.assert_allclose(raw["bands"], [[450, 550, 650, 750, 850]])
    cube = open_cube(path)
    assert cube.shape == (5, 20, 30) and cube.dtype == np.float32
    np.testing.assert_array_equal(cube.data, small_cube.data)
    np.testing.assert_allclose(cube.wavelengths, small_cube.wavelengths)
    np.testing.assert_allclose(cube.fwhm, small_cube.fwhm)
    assert cube.metadata["key"] == "cube" and cube.metadata["format"] == "mat-v5"


def test_v73_file_is_matlab_compatible_and_round_trips(small_cube: Cube, tmp_path: Path) -> None:
    path = save_cube(small_cube.replace(metadata={"norm_factor": 4095.0}), tmp_path / "scene.mat", format="v7.3")
    head = path.read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:128] == b"\x00\x02IM"
    assert h5py.is_hdf5(path)
    with h5py.File(path, "r") as handle:
        assert handle.userblock_size == 512
        # MATLAB's H x W x C stored column-major: h5py sees C x W x H
        assert handle["cube"].shape == (5, 30, 20)
        assert handle["cube"].attrs["MATLAB_class"] == b"single"
        assert handle["bands"].attrs["MATLAB_class"] == b"double"
        np.testing.assert_array_equal(handle["cube"][()], small_cube.hwc().T)
    cube = open_cube(path)
    np.testing.assert_array_equal(cube.data, small_cube.data)
    np.testing.assert_allclose(cube.wavelengths, small_cube.wavelengths)
    assert cube.metadata["norm_factor"] == 4095.0 and cube.metadata["format"] == "mat-v7.3"


def test_v73_cube_and_labels_transposed_together(tmp_path: Path, rng: np.random.Generator) -> None:
    hwc = rng.random((7, 11, 4))  # H=7, W=11, C=4: every axis distinct, so a wrong order cannot pass
    labels = rng.integers(0, 3, (7, 11)).astype(np.float64)
    path = tmp_path / "scene.mat"
    write_like_matlab_v73(path, {"data": hwc, "gt": labels})
    cube = open_cube(path)
    assert cube.shape == (4, 7, 11)
    np.testing.assert_array_equal(cube.data, np.moveaxis(hwc, -1, 0))
    read = open_labels(path, expected_shape=cube)
    np.testing.assert_array_equal(read, labels)
    assert read.dtype == np.uint8


def test_v73_file_with_any_extension_name_is_sniffed(tmp_path: Path, small_cube: Cube) -> None:
    path = save_cube(small_cube, tmp_path / "scene.mat", format="v7.3")
    assert MatFile(path).version == "7.3"
    assert open_cube(path).shape == (5, 20, 30)


def test_cube_key_wins_over_other_3d_arrays(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "two.mat"
    scipy.io.savemat(path, {"cube": rng.random((6, 8, 3)), "other": rng.random((6, 8, 3))})
    assert open_cube(path).metadata["key"] == "cube"


def test_several_3d_arrays_need_a_key(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "two.mat"
    scipy.io.savemat(path, {"radiance": rng.random((8, 8, 3)), "reflectance": rng.random((8, 8, 3))})
    with pytest.raises(MatKeyError, match=r"two.mat': several 3-D arrays .*radiance 8x8x3 double.*reflectance.*key="):
        open_cube(path)
    assert open_cube(path, key="reflectance").metadata["key"] == "reflectance"


def test_no_3d_array_lists_the_keys(shared_data: Path) -> None:
    path = shared_data / "usgs" / "USGS_1995_Library.mat"
    with pytest.raises(MatKeyError, match=r"USGS_1995_Library.mat': no 3-D numeric array.*datalib 224x501 double.*key="):
        open_cube(path)


def test_unknown_key_lists_the_keys(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "k.mat"
    scipy.io.savemat(path, {"data": rng.random((6, 8, 3))})
    with pytest.raises(MatKeyError, match=r"no variable 'cube'; the file holds data 6x8x3 double"):
        open_cube(path, key="cube")


def test_unmixing_layout_reshapes_column_major(tmp_path: Path, rng: np.random.Generator) -> None:
    cube = rng.random((4, 5, 7))  # bands, nRow, nCol
    # MATLAB: V(b, :) = reshape(image(:, :, b), 1, []) - pixels numbered down the columns
    matrix = np.stack([cube[b].flatten(order="F") for b in range(4)])
    path = tmp_path / "unmix.mat"
    scipy.io.savemat(path, {"V": matrix, "nRow": 5.0, "nCol": 7.0, "nBand": 4.0})
    read = open_cube(path)
    np.testing.assert_array_equal(read.data, cube)
    # (pixels, bands) storage and an explicit spatial_shape give the same
    scipy.io.savemat(tmp_path / "unmix_t.mat", {"Y": matrix.T})
    np.testing.assert_array_equal(open_cube(tmp_path / "unmix_t.mat", key="Y", spatial_shape=(5, 7)).data, cube)
    with pytest.raises(LayoutError, match="pass spatial_shape="):
        open_cube(tmp_path / "unmix_t.mat", key="Y")


def test_layout_contradicting_wavelengths_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"data": rng.random((9, 12, 5))})
    with pytest.raises(LayoutError, match=r"scene.mat' key 'data'.*layout='CHW' puts 9 bands .* 5 wavelengths"):
        open_cube(path, layout="CHW", wavelengths=[450, 500, 550, 600, 650])
    assert open_cube(path, wavelengths=[450, 500, 550, 600, 650]).shape == (5, 9, 12)
    with pytest.raises(LayoutError, match="pass layout="):
        open_cube(path)  # 9 x 12 x 5, no wavelengths, no map: ambiguous


def test_band_numbers_are_not_taken_as_wavelengths(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"cube": rng.random((8, 8, 3)), "bands": np.arange(1.0, 4.0)})
    assert open_cube(path).wavelengths is None
    scipy.io.savemat(path, {"cube": rng.random((8, 8, 3)), "bands": [[0.45, 0.55, 0.65]]})
    np.testing.assert_allclose(open_cube(path).wavelengths, [450, 550, 650])


def test_label_key_detection(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "labels.mat"
    scipy.io.savemat(path, {"a": rng.integers(0, 4, (6, 6)), "b": rng.integers(0, 4, (6, 6)), "s": rng.random((6, 6))})
    with pytest.raises(MatKeyError, match="several 2-D integer arrays could be the labels: a 6x6 .*b 6x6"):
        read_mat_labels(path)
    scipy.io.savemat(path, {"data": rng.random((6, 6)), "map": rng.integers(0, 2, (6, 6)), "idx": np.eye(6)})
    labels, key = read_mat_labels(path)
    assert key == "map" and labels.shape == (6, 6)


def test_truncated_mat_files_are_reported(shared_data: Path, tmp_path: Path) -> None:
    from hsikit.errors import CorruptFileError

    for name in ("abu-urban-1.mat", "pavia.mat"):
        content = (shared_data / "anomaly" / name).read_bytes()
        broken = tmp_path / name
        broken.write_bytes(content[: len(content) // 2])
        with pytest.raises(CorruptFileError, match=rf"{name}'.*truncated or damaged"):
            open_cube(broken)
