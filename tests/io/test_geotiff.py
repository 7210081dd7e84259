"""GeoTIFF: georeference and band metadata round trips, tiling options, windowed I/O, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from hsikit import Cube, Window
from hsikit.errors import CorruptFileError
from hsikit.io import create_writer, open_cube, open_reader, save_cube


def test_round_trip_keeps_everything(small_cube: Cube, tmp_path: Path) -> None:
    source = small_cube.replace(nodata=-9999.0)
    path = save_cube(source, tmp_path / "scene.tif")
    cube = open_cube(path)
    assert cube.dtype == np.float32
    np.testing.assert_array_equal(cube.data, source.data)
    assert cube.crs == "EPSG:32647" and cube.transform == source.transform and cube.nodata == -9999.0
    np.testing.assert_allclose(cube.wavelengths, source.wavelengths)
    np.testing.assert_allclose(cube.fwhm, source.fwhm)
    assert cube.band_names == source.band_names
    assert cube.metadata["source"] == str(path) and cube.metadata["format"] == "geotiff"
    # GDAL sees the standard band metadata too
    with rasterio.open(path) as dataset:
        assert dataset.tags(3, ns="IMAGERY")["CENTRAL_WAVELENGTH_UM"] == "0.65"
        assert dataset.descriptions[4] == "nir"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize("blocksize", [256, 512])
def test_tiles_compression_and_bigtiff_options(tmp_path: Path, rng: np.random.Generator, blocksize: int) -> None:
    cube = Cube(rng.integers(0, 4000, (3, 600, 700)).astype(np.uint16))
    path = save_cube(cube, tmp_path / "big.tif", blocksize=blocksize, compress="deflate", predictor=2, bigtiff="YES")
    with rasterio.open(path) as dataset:
        assert dataset.profile["tiled"] and dataset.block_shapes[0] == (blocksize, blocksize)
        assert dataset.compression.value == "DEFLATE"
        np.testing.assert_array_equal(dataset.read(), cube.data)
    assert path.read_bytes()[:4] == b"II+\x00"  # BigTIFF signature
    default = save_cube(cube, tmp_path / "plain.tif")
    assert default.read_bytes()[:4] == b"II*\x00"


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_reads_gdal_envi_style_wavelength_metadata(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.random((3, 8, 9)).astype(np.float32)
    band_items = tmp_path / "band_items.tif"
    with rasterio.open(band_items, "w", driver="GTiff", width=9, height=8, count=3, dtype="float32") as dataset:
        dataset.write(data)
        for band, centre in enumerate((0.48, 0.56, 0.66), start=1):
            dataset.update_tags(band, wavelength=str(centre), wavelength_units="Micrometers")
    np.testing.assert_allclose(open_cube(band_items).wavelengths, [480.0, 560.0, 660.0])
    envi_domain = tmp_path / "envi_domain.tif"
    with rasterio.open(envi_domain, "w", driver="GTiff", width=9, height=8, count=3, dtype="float32") as dataset:
        dataset.write(data)
        dataset.update_tags(ns="ENVI", wavelength="{500, 600, 700}", wavelength_units="Nanometers")
    cube = open_cube(envi_domain)
    np.testing.assert_allclose(cube.wavelengths, [500.0, 600.0, 700.0])
    assert cube.crs is None and cube.transform is None  # not georeferenced: no fake identity transform


def test_windowed_reader_and_transform(shared_data: Path) -> None:
    path = shared_data / "glacier" / "images" / "1.tif"
    with open_reader(path) as reader:
        part = reader.read(Window(100, 50, 32, 40), bands=[0, 9])
        whole = reader.read_array()
    assert part.shape == (2, 32, 40)
    np.testing.assert_array_equal(part.data, whole[[0, 9], 100:132, 50:90])
    expected = Affine(30.0, 0.0, 186555.0 + 50 * 30, 0.0, -30.0, 3298065.0 - 100 * 30)
    assert part.transform.almost_equals(expected, precision=1e-6)
    window = open_cube(path, window=Window(100, 50, 32, 40), bands=[0, 9])
    np.testing.assert_array_equal(window.data, part.data)
    assert window.transform == part.transform


def test_windowed_writer(small_cube: Cube, tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    with create_writer(
        target, small_cube.shape, "float32", crs=small_cube.crs, transform=small_cube.transform,
        wavelengths=small_cube.wavelengths, band_names=small_cube.band_names, nodata=0.0, blocksize=16,
    ) as writer:
        for row in (16, 0):
            height = min(16, 20 - row)
            writer.write_window(small_cube.data[:, row : row + height], Window(row, 0, height, 30))
        assert not target.exists()
    cube = open_cube(target)
    np.testing.assert_array_equal(cube.data, small_cube.data)
    assert cube.band_names == small_cube.band_names and cube.nodata == 0.0
    with rasterio.open(target) as dataset:
        assert dataset.block_shapes[0] == (16, 16)


def test_tif_that_is_not_a_tiff(tmp_path: Path) -> None:
    fake = tmp_path / "scene.tif"
    fake.write_bytes(b"<html>not found</html>")
    with pytest.raises(CorruptFileError, match=r"scene.tif' is not a TIFF file \(it starts with b'<htm'"):
        open_cube(fake)


def test_truncated_tiff(shared_data: Path, tmp_path: Path) -> None:
    content = (shared_data / "glacier" / "images" / "1.tif").read_bytes()
    broken = tmp_path / "1.tif"
    broken.write_bytes(content[: len(content) // 2])
    with pytest.raises(CorruptFileError, match=r"1.tif': cannot (open|read).*truncated or damaged"):
        open_cube(broken)
