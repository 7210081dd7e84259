"""NumPy .npy (memory-mapped) and .npz files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube, Window
from hsikit.errors import CorruptFileError, LayoutError, MatKeyError, UnsupportedFormatError
from hsikit.io import create_writer, open_cube, save_cube


def test_npy_is_memory_mapped_and_layout_explicit(tmp_path: Path, rng: np.random.Generator) -> None:
    hwc = rng.random((9, 12, 5)).astype(np.float32)
    np.save(tmp_path / "hwc.npy", hwc)
    cube = open_cube(tmp_path / "hwc.npy", layout="HWC")
    assert isinstance(cube.data, np.memmap) and cube.shape == (5, 9, 12)
    np.testing.assert_array_equal(cube.data, np.moveaxis(hwc, -1, 0))
    with pytest.raises(LayoutError, match=r"hwc.npy'.*cannot tell the band axis of shape \(9, 12, 5\)"):
        open_cube(tmp_path / "hwc.npy")
    with pytest.raises(LayoutError, match=r"hwc.npy'.*layout='CHW' puts 9 bands .* 5 wavelengths"):
        open_cube(tmp_path / "hwc.npy", layout="CHW", wavelengths=[400, 500, 600, 700, 800])
    by_count = open_cube(tmp_path / "hwc.npy", wavelengths=[400, 500, 600, 700, 800])
    assert by_count.shape == (5, 9, 12) and by_count.metadata["layout"] == "HWC"


def test_npy_round_trip_both_layouts(small_cube: Cube, tmp_path: Path) -> None:
    save_cube(small_cube, tmp_path / "chw.npy")
    save_cube(small_cube, tmp_path / "hwc.npy", layout="HWC")
    assert np.load(tmp_path / "hwc.npy").shape == (20, 30, 5)
    np.testing.assert_array_equal(open_cube(tmp_path / "chw.npy", layout="CHW").data, small_cube.data)
    np.testing.assert_array_equal(open_cube(tmp_path / "hwc.npy", layout="HWC").data, small_cube.data)


def test_npz_round_trip_needs_no_arguments(small_cube: Cube, tmp_path: Path) -> None:
    path = save_cube(small_cube.replace(nodata=-1.0), tmp_path / "scene.npz", compress=True)
    cube = open_cube(path)  # (5, 20, 30) is ambiguous by shape; the stored layout entry decides
    np.testing.assert_array_equal(cube.data, small_cube.data)
    np.testing.assert_allclose(cube.wavelengths, small_cube.wavelengths)
    np.testing.assert_allclose(cube.fwhm, small_cube.fwhm)
    assert cube.band_names == small_cube.band_names
    assert cube.crs == small_cube.crs and cube.transform == small_cube.transform and cube.nodata == -1.0


def test_npz_key_detection(tmp_path: Path, rng: np.random.Generator) -> None:
    np.savez(tmp_path / "two.npz", a=rng.random((8, 8, 3)), b=rng.random((8, 8, 3)))
    with pytest.raises(MatKeyError, match=r"two.npz': several 3-D arrays could be the cube: a 8x8x3 float64, b .*key="):
        open_cube(tmp_path / "two.npz")
    assert open_cube(tmp_path / "two.npz", key="b").metadata["key"] == "b"
    np.savez(tmp_path / "none.npz", flat=rng.random((8, 8)))
    with pytest.raises(MatKeyError, match=r"no 3-D numeric array.*flat 8x8 float64"):
        open_cube(tmp_path / "none.npz")


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnsupportedFormatError, match="pickle"):
        open_cube(tmp_path / "obj.npy")


def test_truncated_npy_and_npz(shared_data: Path, tmp_path: Path, small_cube: Cube) -> None:
    content = (shared_data / "indian_pines" / "Indian_pines_corrected.npy").read_bytes()
    broken = tmp_path / "ip.npy"
    broken.write_bytes(content[: len(content) - 5000])
    with pytest.raises(CorruptFileError, match=r"ip.npy' holds 8405128 bytes .*shape \(145, 145, 200\) \(8410128 bytes\)"):
        open_cube(broken)
    archive = save_cube(small_cube, tmp_path / "s.npz")
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(CorruptFileError, match=r"s.npz': not a readable .npz archive"):
        open_cube(archive)


def test_npy_writer_window_by_window(small_cube: Cube, tmp_path: Path) -> None:
    with create_writer(tmp_path / "out.npy", small_cube.shape, np.float32, layout="HWC") as writer:
        writer.write_window(small_cube.data[:, 10:], Window(10, 0, 10, 30))
        writer.write_window(small_cube.data[:, :10], Window(0, 0, 10, 30))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), small_cube.hwc())
    with pytest.raises(UnsupportedFormatError, match="stores only the array"):
        create_writer(tmp_path / "geo.npy", small_cube.shape, np.float32, crs="EPSG:4326")
