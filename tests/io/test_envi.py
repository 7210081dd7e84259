"""ENVI: interleaves, memory maps, header fields, windowed reading/writing, GDAL interoperability, errors."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from hsikit import Cube, Window
from hsikit.errors import CorruptFileError, DataFileNotFoundError
from hsikit.io import create_writer, open_cube, open_reader, save_cube
from hsikit.io.envi import EnviReader


@pytest.mark.parametrize(
    ("interleave", "file_axes"),
    [("bsq", (0, 1, 2)), ("bil", (1, 0, 2)), ("bip", (1, 2, 0))],
)
def test_round_trip_and_byte_layout(small_cube: Cube, tmp_path: Path, interleave: str, file_axes: tuple) -> None:
    save_cube(small_cube, tmp_path / "scene.hdr", interleave=interleave)
    # the data file holds the bytes in the interleave's order
    raw = np.fromfile(tmp_path / "scene.img", dtype="<f4")
    np.testing.assert_array_equal(raw, np.transpose(small_cube.data, file_axes).ravel())
    cube = open_cube(tmp_path / "scene.hdr")
    assert isinstance(cube.data, np.memmap), "ENVI cubes are memory-mapped, not loaded"
    assert cube.shape == (5, 20, 30) and cube.metadata["interleave"] == interleave
    np.testing.assert_array_equal(cube.data, small_cube.data)
    np.testing.assert_allclose(cube.wavelengths, small_cube.wavelengths)
    np.testing.assert_allclose(cube.fwhm, small_cube.fwhm)
    assert cube.band_names == small_cube.band_names
    assert cube.crs == "EPSG:32647" and cube.transform == small_cube.transform
    assert cube.metadata["source"] == str(tmp_path / "scene.hdr")


def test_bsq_cube_is_a_plain_view_and_bil_a_transposed_view(small_cube: Cube, tmp_path: Path) -> None:
    save_cube(small_cube, tmp_path / "a.bsq")
    save_cube(small_cube, tmp_path / "b.bil")
    bsq = open_cube(tmp_path / "a.bsq")
    bil = open_cube(tmp_path / "b.bil")
    assert bsq.data.flags.c_contiguous
    # BIL on disk is (H, bands, W); the cube is that memmap with its first two axes swapped (no copy)
    assert not bil.data.flags.c_contiguous and bil.data.strides[1] == 5 * 30 * 4
    assert bil.metadata["interleave"] == "bil"


def test_header_fields_written_by_hand(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 1000, (3, 4, 6)).astype("<i2")
    data[:, 0, 0] = -9999
    data.tofile(tmp_path / "scene.dat")
    (tmp_path / "scene.hdr").write_text(
        "ENVI\n"
        "samples = 6\nlines = 4\nbands = 3\nheader offset = 0\nfile type = ENVI Standard\n"
        "data type = 2\ninterleave = bsq\nbyte order = 0\n"
        "map info = {UTM, 2.0, 3.0, 600030.0, 4199940.0, 30.0, 30.0, 33, South, WGS-84, units=Meters}\n"
        "wavelength units = Micrometers\nwavelength = { 0.45, 0.55,\n 0.65 }\nfwhm = {0.01, 0.01, 0.02}\n"
        "band names = {Band A, Band B, Band C}\ndata ignore value = -9999\nsensor type = Unknown\n"
    )
    cube = open_cube(tmp_path / "scene.hdr")
    np.testing.assert_allclose(cube.wavelengths, [450.0, 550.0, 650.0])
    np.testing.assert_allclose(cube.fwhm, [10.0, 10.0, 20.0])
    assert cube.band_names == ["Band A", "Band B", "Band C"]
    assert cube.crs == "EPSG:32733"
    # reference pixel (2, 3) is 1-based with (1, 1) the outer corner: x0 = 600030 - 1 * 30, y0 = 4199940 + 2 * 30
    assert cube.transform == Affine(30.0, 0.0, 600000.0, 0.0, -30.0, 4200000.0)
    assert cube.nodata == -9999.0
    assert cube.nodata_mask[0, 0] and cube.nodata_mask.sum() == 1
    assert cube.metadata["envi"]["sensor type"] == "Unknown"
    # opening the data file finds its header
    assert open_cube(tmp_path / "scene.dat").shape == (3, 4, 6)


def test_gdal_reads_hsikit_envi_files(small_cube: Cube, tmp_path: Path) -> None:
    save_cube(small_cube.replace(nodata=-1.0), tmp_path / "scene.img", interleave="bil")
    with rasterio.open(tmp_path / "scene.img") as dataset:
        assert dataset.driver == "ENVI" and dataset.crs.to_epsg() == 32647
        assert dataset.transform.almost_equals(small_cube.transform)
        assert dataset.nodata == -1.0
        np.testing.assert_array_equal(dataset.read(), small_cube.data)
        assert float(dataset.tags(2)["wavelength"]) == 550.0


def test_hsikit_reads_gdal_envi_files(tmp_path: Path) -> None:
    values = np.arange(3 * 4 * 5, dtype="int16").reshape(3, 4, 5)
    transform = Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 5000000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(
            tmp_path / "g.img", "w", driver="ENVI", width=5, height=4, count=3, dtype="int16",
            crs="EPSG:32633", transform=transform, nodata=-1, INTERLEAVE="BIL",
        ) as dataset:
            dataset.write(values)
            for band in range(3):
                dataset.set_band_description(band + 1, f"b{band}")
    cube = open_cube(tmp_path / "g.img")
    np.testing.assert_array_equal(cube.data, values)
    assert cube.crs == "EPSG:32633" and cube.transform == transform and cube.nodata == -1.0
    assert cube.band_names == ["b0", "b1", "b2"] and cube.metadata["interleave"] == "bil"


def test_windowed_reader(small_cube: Cube, tmp_path: Path) -> None:
    save_cube(small_cube, tmp_path / "scene.bip")
    with open_reader(tmp_path / "scene.bip") as reader:
        assert isinstance(reader, EnviReader) and reader.shape == (5, 20, 30)
        part = reader.read(Window(4, 10, 6, 8), bands=[4, 1])
        assert not isinstance(part.data, np.memmap)
    np.testing.assert_array_equal(part.data, small_cube.data[[4, 1], 4:10, 10:18])
    np.testing.assert_allclose(part.wavelengths, [850.0, 550.0])
    assert part.pixel_to_map(0, 0) == small_cube.pixel_to_map(4, 10)


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_writer_fills_windows_in_any_order(small_cube: Cube, tmp_path: Path, interleave: str) -> None:
    target = tmp_path / "out.img"
    windows = [Window(r, c, 10, 15) for r in (10, 0) for c in (15, 0)]
    with create_writer(
        target, small_cube.shape, np.float32, crs=small_cube.crs, transform=small_cube.transform,
        wavelengths=small_cube.wavelengths, interleave=interleave,
    ) as writer:
        for window in windows:
            rows, cols = window.slices
            writer.write_window(small_cube.data[:, rows, cols], window)
        assert not target.exists(), "nothing appears before close()"
    cube = open_cube(target)
    np.testing.assert_array_equal(cube.data, small_cube.data)
    np.testing.assert_allclose(cube.wavelengths, small_cube.wavelengths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.hdr", "out.img"]


def test_header_without_data_file_names_it(small_cube: Cube, tmp_path: Path) -> None:
    save_cube(small_cube, tmp_path / "scene.hdr")
    (tmp_path / "scene.img").unlink()
    with pytest.raises(DataFileNotFoundError, match=r"scene.img: no such file.*ENVI header '.*scene.hdr' has no data"):
        open_cube(tmp_path / "scene.hdr")


def test_data_file_without_header(tmp_path: Path) -> None:
    (tmp_path / "scene.bil").write_bytes(b"\0" * 64)
    with pytest.raises(DataFileNotFoundError, match=r"scene.hdr.*no header beside it"):
        open_cube(tmp_path / "scene.bil")


def test_truncated_data_file(small_cube: Cube, tmp_path: Path) -> None:
    save_cube(small_cube, tmp_path / "scene.hdr")
    data = tmp_path / "scene.img"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match=r"scene.img' holds 1000 bytes .* 5 bands x 20 lines x 30 samples .*truncated"):
        open_cube(tmp_path / "scene.hdr")


def test_header_missing_a_required_field(tmp_path: Path) -> None:
    (tmp_path / "x.img").write_bytes(b"\0" * 24)
    (tmp_path / "x.hdr").write_text("ENVI\nsamples = 3\nlines = 2\nbands = 1\ndata type = 4\ninterleave = bsq\n")
    with pytest.raises(CorruptFileError, match=r"x.hdr': the ENVI header lacks the required field .*byte order"):
        open_cube(tmp_path / "x.hdr")


def test_big_endian_data_with_header_offset(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.random((2, 3, 4)).astype(">f8")
    (tmp_path / "be.img").write_bytes(b"\xff" * 32 + values.tobytes())
    (tmp_path / "be.hdr").write_text(
        "ENVI\nsamples = 4\nlines = 3\nbands = 2\nheader offset = 32\ndata type = 5\n"
        "interleave = bsq\nbyte order = 1\n"
    )
    with open_reader(tmp_path / "be.hdr") as reader:
        window = reader.read_array(Window(1, 1, 2, 3))
    assert window.dtype == np.float64 and window.dtype.isnative
    np.testing.assert_array_equal(window, values[:, 1:3, 1:4])
    np.testing.assert_array_equal(open_cube(tmp_path / "be.hdr").data, values)


def test_rotated_transform_survives_a_round_trip(small_cube: Cube, tmp_path: Path) -> None:
    rotated = Affine(20.0, 5.0, 1000.0, 5.0, -20.0, 9000.0)
    save_cube(small_cube.replace(transform=rotated), tmp_path / "r.hdr")
    assert "map info" not in (tmp_path / "r.hdr").read_text()  # ENVI map info cannot say this
    cube = open_cube(tmp_path / "r.hdr")
    assert cube.transform == rotated and cube.crs == "EPSG:32647"


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_window_and_band_subset_in_every_interleave(small_cube: Cube, tmp_path: Path, interleave: str) -> None:
    save_cube(small_cube, tmp_path / "s.hdr", interleave=interleave)
    with open_reader(tmp_path / "s.hdr") as reader:
        np.testing.assert_array_equal(reader.read_array(Window(2, 3, 17, 25), [3, 0, 3]), small_cube.data[[3, 0, 3], 2:19, 3:28])
        np.testing.assert_array_equal(reader.read_array(), small_cube.data)


def _mapped_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):  # the header line of a mapping
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
@pytest.mark.parametrize("interleave", ["bsq", "bil"])
def test_windowed_reads_release_mapped_pages(tmp_path: Path, rng: np.random.Generator, interleave: str) -> None:
    cube = Cube(rng.random((6, 256, 320), dtype=np.float32))
    save_cube(cube, tmp_path / "s.hdr", interleave=interleave)
    data_file = (tmp_path / "s.img").resolve()
    with open_reader(tmp_path / "s.hdr", release_pages=False) as keeping:
        np.testing.assert_array_equal(keeping.read_array(Window(0, 0, 256, 160)), cube.data[:, :, :160])
        assert _mapped_kb(data_file) >= 6 * 256 * 160 * 4 // 1024  # the pages read stay resident
    with open_reader(tmp_path / "s.hdr") as releasing:
        np.testing.assert_array_equal(releasing.read_array(Window(0, 0, 256, 160)), cube.data[:, :, :160])
        assert _mapped_kb(data_file) == 0  # released after the copy
