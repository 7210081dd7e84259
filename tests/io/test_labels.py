"""Label rasters: ERDAS .gis/.lan (checked against GDAL's reader), PNG, GeoTIFF, shapes and mappings."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

from hsikit import Cube
from hsikit.errors import CorruptFileError, InvalidLabelsError, ShapeMismatchError, UnsupportedFormatError
from hsikit.io import open_cube, open_labels, save_labels
from hsikit.io.labels import read_erdas_lan, read_erdas_lan_header


def gdal_read(path: Path) -> tuple[np.ndarray, Affine]:
    """GDAL's LAN driver (through rasterio): an independent reader to compare against."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as dataset:
            assert dataset.driver == "LAN"
            return dataset.read(), dataset.transform


def write_lan(path: Path, pixels: bytes, *, version: bytes = b"HEAD74", pack: int = 0, bands: int = 1,
              width: int, height: int, order: str = "<", geo: tuple = (0.0, 0.0, 0.0, 0.0)) -> None:
    header = bytearray(128)
    header[:6] = version
    struct.pack_into(f"{order}hh", header, 6, pack, bands)
    size_format = f"{order}ii" if version == b"HEAD74" else f"{order}ff"
    struct.pack_into(size_format, header, 16, width, height)
    struct.pack_into(f"{order}ii", header, 24, 7, 9)
    struct.pack_into(f"{order}hh", header, 88, 1, 12)
    struct.pack_into(f"{order}ffff", header, 112, *geo)
    path.write_bytes(bytes(header) + pixels)


def test_purdue_gis_header_fields(shared_data: Path) -> None:
    header = read_erdas_lan_header(shared_data / "indian_pines" / "92AV3GT.GIS")
    assert (header.version, header.pack_type, header.bands) == ("HEAD74", 0, 1)
    assert (header.width, header.height) == (145, 145)
    assert (header.x_start, header.y_start) == (240, 351)  # position of the crop in the flight line
    assert header.classes == 17 and header.transform is None
    assert header.data_bytes + 128 == (shared_data / "indian_pines" / "92AV3GT.GIS").stat().st_size


def test_purdue_gis_pixels_match_gdal(shared_data: Path) -> None:
    path = shared_data / "indian_pines" / "92AV3GT.GIS"
    labels = open_labels(path)
    reference, _ = gdal_read(path)
    assert labels.shape == (145, 145) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, reference[0])


def test_multiband_16bit_lan_with_georeference_matches_gdal(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.integers(-30000, 30000, (7, 3, 5)).astype("<i2")  # rows, bands, cols (BIL)
    path = tmp_path / "scene.lan"
    write_lan(path, values.tobytes(), pack=2, bands=3, width=5, height=7, geo=(1015.0, 2985.0, 30.0, 30.0))
    pixels, header = read_erdas_lan(path)
    reference, transform = gdal_read(path)
    np.testing.assert_array_equal(pixels, reference)
    np.testing.assert_array_equal(pixels, values.transpose(1, 0, 2))
    assert header.transform == transform == Affine(30.0, 0.0, 1000.0, 0.0, -30.0, 3000.0)
    cube = open_cube(path)
    assert cube.shape == (3, 7, 5) and cube.transform == transform


def test_4bit_old_header_and_big_endian_variants_match_gdal(tmp_path: Path, rng: np.random.Generator) -> None:
    nibbles = rng.integers(0, 16, (6, 8)).astype(np.uint8)
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # first pixel in the high nibble
    four_bit = tmp_path / "four.gis"
    write_lan(four_bit, packed.tobytes(), pack=1, width=8, height=6)
    old = tmp_path / "old.gis"
    write_lan(old, nibbles.tobytes(), version=b"HEADER", width=8, height=6)
    big = tmp_path / "big.lan"
    write_lan(big, nibbles.astype(">i2").tobytes(), pack=2, width=8, height=6, order=">")
    for path in (four_bit, old, big):
        labels = open_labels(path)
        np.testing.assert_array_equal(labels, nibbles)
        np.testing.assert_array_equal(labels, gdal_read(path)[0][0])
    assert read_erdas_lan_header(big).byte_order == ">"


def test_truncated_gis(shared_data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "gt.gis"
    broken.write_bytes((shared_data / "indian_pines" / "92AV3GT.GIS").read_bytes()[:10000])
    with pytest.raises(CorruptFileError, match=r"gt.gis': the header describes 1 band\(s\) of 145x145 8-bit .*truncated"):
        open_labels(broken)


def test_expected_shape_mismatch_names_both_shapes(shared_data: Path) -> None:
    path = shared_data / "glacier" / "labels" / "1.tif"
    with pytest.raises(ShapeMismatchError, match=r"1.tif': labels of shape \(256, 256\) do not match .* \(145, 145\)"):
        open_labels(path, expected_shape=(200, 145, 145))
    cube = Cube(np.zeros((2, 256, 256), dtype=np.float32))
    assert open_labels(path, expected_shape=cube).shape == (256, 256)


def test_transposed_labels_get_a_hint(tmp_path: Path) -> None:
    np.save(tmp_path / "gt.npy", np.zeros((30, 20), dtype=np.uint8))
    with pytest.raises(ShapeMismatchError, match="look transposed"):
        open_labels(tmp_path / "gt.npy", expected_shape=(20, 30))


def test_geotiff_labels_keep_georeference(small_cube: Cube, tmp_path: Path, rng: np.random.Generator) -> None:
    labels = rng.integers(0, 7, (20, 30)).astype(np.uint8)
    path = save_labels(labels, tmp_path / "gt.tif", like=small_cube, nodata=0)
    with rasterio.open(path) as dataset:
        assert dataset.crs.to_epsg() == 32647 and dataset.transform == small_cube.transform
        assert dataset.nodata == 0 and dataset.count == 1
    np.testing.assert_array_equal(open_labels(path), labels)
    with pytest.raises(ShapeMismatchError):
        save_labels(labels.T, tmp_path / "wrong.tif", like=small_cube)


def test_png_and_npy_round_trips(tmp_path: Path, rng: np.random.Generator) -> None:
    small = rng.integers(0, 17, (15, 11)).astype(np.uint8)
    large = rng.integers(0, 3000, (15, 11)).astype(np.uint16)
    for name, labels in (("small.png", small), ("large.png", large), ("small.npy", small)):
        path = save_labels(labels, tmp_path / name)
        read = open_labels(path)
        np.testing.assert_array_equal(read, labels)
        assert read.dtype == labels.dtype
    assert Image.open(tmp_path / "small.png").mode == "L"
    with pytest.raises(InvalidLabelsError, match="PNG stores class ids 0..65535"):
        save_labels(np.full((2, 2), 70000, dtype=np.int32), tmp_path / "huge.png")


def test_palette_and_colour_pngs(tmp_path: Path) -> None:
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(open_labels(tmp_path / "palette.png"), indices)
    colours = np.array([[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [255, 0, 0]]], dtype=np.uint8)
    Image.fromarray(colours, mode="RGB").save(tmp_path / "rgb.png")
    with pytest.raises(InvalidLabelsError, match=r"colour \(RGB\) mask; pass class_mapping"):
        open_labels(tmp_path / "rgb.png")
    mapped = open_labels(tmp_path / "rgb.png", class_mapping={(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2})
    np.testing.assert_array_equal(mapped, [[0, 1], [2, 1]])


def test_truncated_png(tmp_path: Path, rng: np.random.Generator) -> None:
    path = save_labels(rng.integers(0, 9, (64, 64)).astype(np.uint8), tmp_path / "gt.png")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptFileError, match=r"gt.png': cannot decode the image"):
        open_labels(path)


def test_value_mapping_and_fractional_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "gt.npy", np.array([[0, 255], [3, 3]], dtype=np.uint8))
    np.testing.assert_array_equal(open_labels(tmp_path / "gt.npy", class_mapping={255: 0, 3: 1}), [[0, 0], [1, 1]])
    np.save(tmp_path / "abund.npy", np.array([[0.2, 0.8], [1.0, 0.0]]))
    with pytest.raises(InvalidLabelsError, match="fractional values"):
        open_labels(tmp_path / "abund.npy")
    np.save(tmp_path / "whole.npy", np.array([[0.0, 2.0], [1.0, 300.0]]))
    read = open_labels(tmp_path / "whole.npy")
    assert read.dtype == np.uint16 and read[1, 1] == 300


def test_unsupported_label_target(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"cannot write labels as '.bmp'; use one of .tif"):
        save_labels(np.zeros((2, 2), dtype=np.uint8), tmp_path / "gt.bmp")
