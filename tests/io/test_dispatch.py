"""open_cube / save_cube dispatch: detection by extension and content, options, and the error messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hsikit
from hsikit import Cube, Window
from hsikit.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    LayoutError,
    NonFiniteError,
    UnsupportedFormatError,
)
from hsikit.io import create_writer, detect_format, open_cube, open_reader, save_cube


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match=r"nowhere.tif: no such file or directory. Check the path"):
        open_cube(tmp_path / "nowhere.tif")


def test_unknown_extension_lists_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "scene.xyz"
    path.write_bytes(b"\x01\x02\x03 some bytes")
    with pytest.raises(UnsupportedFormatError, match=r"scene.xyz': unknown format .*reads .*\.hdr.*\.mat.*\.npy.*\.tif"):
        open_cube(path)
    with pytest.raises(UnsupportedFormatError, match=r"cannot tell the output format from extension '.xyz'"):
        save_cube(Cube(np.zeros((1, 2, 2))), path)


def test_content_decides_when_the_extension_does_not(small_cube: Cube, tmp_path: Path) -> None:
    save_cube(small_cube, tmp_path / "scene.tif")
    (tmp_path / "scene.tif").rename(tmp_path / "scene.data")
    assert detect_format(tmp_path / "scene.data") == "geotiff"
    np.testing.assert_array_equal(open_cube(tmp_path / "scene.data").data, small_cube.data)
    save_cube(small_cube, tmp_path / "scene.mat", format="v7.3")
    (tmp_path / "scene.mat").rename(tmp_path / "scene.h5")
    assert detect_format(tmp_path / "scene.h5") == "mat"
    # a raw .img with a header beside it is ENVI
    save_cube(small_cube, tmp_path / "envi.img")
    assert detect_format(tmp_path / "envi.img") == "envi"


def test_every_cube_records_its_source(small_cube: Cube, tmp_path: Path) -> None:
    for name, options in (("a.tif", {}), ("b.hdr", {}), ("c.mat", {}), ("d.npz", {}), ("e.npy", {"layout": "HWC"})):
        path = save_cube(small_cube, tmp_path / name, **options)
        read = open_cube(path, layout="HWC") if name.endswith(".npy") else open_cube(path)
        assert read.metadata["source"] == str(path)
        np.testing.assert_array_equal(read.data, small_cube.data)


def test_nonfinite_policies(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.random((4, 6, 7)).astype(np.float32)
    data[2, 3, 5] = np.nan
    data[0, 1, 1] = np.inf
    np.save(tmp_path / "bad.npy", data)
    with pytest.raises(NonFiniteError, match=r"bad.npy': 2 pixel\(s\) hold NaN or Inf \(first at row 1, col 1\).*nonfinite='mask'"):
        open_cube(tmp_path / "bad.npy", layout="CHW")
    masked = open_cube(tmp_path / "bad.npy", layout="CHW", nonfinite="mask")
    assert masked.nodata_mask.sum() == 2 and masked.nodata_mask[3, 5] and masked.nodata_mask[1, 1]
    assert np.isfinite(masked.data).all() and masked.data[2, 3, 5] == 0.0
    ignored = open_cube(tmp_path / "bad.npy", layout="CHW", nonfinite="ignore")
    assert np.isnan(ignored.data[2, 3, 5]) and isinstance(ignored.data, np.memmap)
    np.save(tmp_path / "bad_hwc.npy", np.ascontiguousarray(np.moveaxis(data, 0, -1)))  # row-major on disk
    with pytest.raises(NonFiniteError, match=r"2 pixel\(s\) .*first at row 1, col 1"):
        open_cube(tmp_path / "bad_hwc.npy", layout="HWC")
    save_cube(Cube(data, nonfinite="ignore"), tmp_path / "bad.tif")
    with pytest.raises(NonFiniteError, match="bad.tif'"):
        open_cube(tmp_path / "bad.tif")


def test_wavelengths_argument_forms(small_cube: Cube, tmp_path: Path) -> None:
    path = save_cube(small_cube.replace(wavelengths=None, fwhm=None), tmp_path / "scene.tif")
    table = tmp_path / "bands.csv"
    table.write_text("center_nm,fwhm_nm\n400,5\n500,5\n600,5\n700,5\n800,5\n")
    from_table = open_cube(path, wavelengths=table)
    np.testing.assert_allclose(from_table.wavelengths, [400, 500, 600, 700, 800])
    np.testing.assert_allclose(from_table.fwhm, [5] * 5)
    in_um = open_cube(path, wavelengths=[0.4, 0.5, 0.6, 0.7, 0.8], wavelength_unit="um")
    np.testing.assert_allclose(in_um.wavelengths, [400, 500, 600, 700, 800])
    with pytest.raises(LayoutError, match=r"scene.tif': 3 wavelengths for a cube with 5 bands"):
        open_cube(path, wavelengths=[400, 500, 600])


def test_window_and_bands_keep_memory_maps_lazy(small_cube: Cube, tmp_path: Path) -> None:
    path = save_cube(small_cube, tmp_path / "scene.hdr")
    part = open_cube(path, window=Window(5, 10, 8, 12))
    assert isinstance(part.data, np.memmap) and part.shape == (5, 8, 12)
    np.testing.assert_array_equal(part.data, small_cube.data[:, 5:13, 10:22])
    assert part.pixel_to_map(0, 0) == small_cube.pixel_to_map(5, 10)
    chosen = open_cube(path, bands=[3, 0])
    np.testing.assert_allclose(chosen.wavelengths, [750.0, 450.0])
    assert chosen.band_names == ["red edge", "blue"]
    from hsikit.errors import InvalidCubeError

    with pytest.raises(InvalidCubeError, match=r"scene.hdr': window .* reaches outside the 20x30 image"):
        open_cube(path, window=Window(15, 0, 10, 10))
    with pytest.raises(InvalidCubeError, match="band index 7 outside the cube's 5 bands"):
        open_cube(path, bands=[7])


def test_open_reader_for_every_cube_format(small_cube: Cube, tmp_path: Path) -> None:
    window = Window(3, 4, 5, 6)
    for name in ("a.tif", "b.bil", "c.mat", "d.npz"):
        path = save_cube(small_cube, tmp_path / name)
        with open_reader(path) as reader:
            assert reader.shape == (5, 20, 30)
            np.testing.assert_array_equal(reader.read(window).data, small_cube.data[:, 3:8, 4:10])


def test_create_writer_refuses_formats_without_windowed_writing(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="window-by-window writing supports GeoTIFF"):
        create_writer(tmp_path / "x.mat", (3, 4, 5), np.float32)


def test_tif_named_file_that_is_a_numpy_array(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4)))
    (tmp_path / "x.npy").rename(tmp_path / "x.tif")
    with pytest.raises(CorruptFileError, match=r"x.tif' is not a TIFF file"):
        open_cube(tmp_path / "x.tif")


def test_top_level_lazy_functions_and_light_import() -> None:
    assert hsikit.open_cube is open_cube
    code = "import sys, hsikit.io; print(sorted(m for m in ('rasterio', 'h5py', 'spectral', 'scipy.io') if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
