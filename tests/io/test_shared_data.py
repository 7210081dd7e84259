"""Every cube and label file in ../shared/data loads through open_cube / open_labels, the right way round.

Orientation is checked with physics and statistics rather than trusted: a cube and its labels are
aligned when the labels explain the spectra (classes are spectrally compact, anomalies stand out,
glaciers separate from the background, Samson's abundances reproduce the pixels) far better than
they do after a transpose or flip — the mistakes a wrong axis order makes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from hsikit.errors import MatKeyError
from hsikit.io import open_cube, open_labels, read_wavelength_table

PUBLISHED_INDIAN_PINES_COUNTS = [46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265, 386, 93]
ANOMALY_FILES = [
    "MUUFL.mat",
    "abu-airport-1.mat",
    "abu-airport-2.mat",
    "abu-airport-3.mat",
    "abu-airport-4.mat",
    "abu-beach-2.mat",
    "abu-beach-3.mat",
    "abu-urban-1.mat",
    "abu-urban-2.mat",
    "abu-urban-3.mat",
    "abu-urban-5.mat",
    "hydice.mat",
    "pavia.mat",
]


def within_class_share(cube: np.ndarray, labels: np.ndarray) -> float:
    """Share of the spectral variance of labelled pixels left inside the classes (0: perfectly compact)."""
    mask = labels > 0
    pixels = np.asarray(cube, dtype=np.float64)[:, mask].T
    classes = labels[mask]
    total = ((pixels - pixels.mean(axis=0)) ** 2).sum()
    within = sum(((pixels[classes == k] - pixels[classes == k].mean(axis=0)) ** 2).sum() for k in np.unique(classes))
    return float(within / total)


def anomaly_contrast(cube: np.ndarray, truth: np.ndarray) -> float:
    """Mean spectral distance of ground-truth anomaly pixels to the scene mean, relative to all pixels."""
    pixels = np.asarray(cube, dtype=np.float64).reshape(cube.shape[0], -1)
    distance = np.linalg.norm(pixels - pixels.mean(axis=1, keepdims=True), axis=0).reshape(truth.shape)
    return float(distance[truth > 0].mean() / distance.mean())


def best_fisher_ratio(cube: np.ndarray, labels: np.ndarray, cls: int) -> float:
    """Largest per-band Fisher ratio between class ``cls`` and the background (class 0)."""
    inside, outside = cube[:, labels == cls], cube[:, labels == 0]
    ratio = (inside.mean(axis=1) - outside.mean(axis=1)) ** 2 / (inside.var(axis=1) + outside.var(axis=1))
    return float(ratio.max())


# --------------------------------------------------------------------------- Indian Pines
def test_indian_pines_cube_labels_and_wavelengths(shared_data: Path) -> None:
    folder = shared_data / "indian_pines"
    table = read_wavelength_table(folder / "indian_pines_wavelengths.csv", keep_column="in_corrected_200")
    cube = open_cube(folder / "Indian_pines_corrected.npy", wavelengths=table)
    assert cube.shape == (200, 145, 145) and cube.dtype == np.uint16
    assert cube.metadata["source"] == str(folder / "Indian_pines_corrected.npy")
    raw = np.load(folder / "Indian_pines_corrected.npy", mmap_mode="r")
    np.testing.assert_array_equal(cube.data[:, 17, 101], raw[17, 101, :])  # (H, W, C) file → (C, H, W)
    assert (int(cube.data.min()), int(cube.data.max())) == (955, 9604)
    assert cube.wavelengths[0] == pytest.approx(400.02) and cube.wavelengths[-1] == pytest.approx(2489.11)
    assert not np.any((cube.wavelengths > 1355) & (cube.wavelengths < 1410))  # bands 104-108 (1363-1402 nm) removed

    for name in ("Indian_pines_gt.npy", "Indian_pines_gt.mat"):
        labels = open_labels(folder / name, expected_shape=cube)
        counts = np.bincount(labels.ravel(), minlength=17)[1:]
        assert counts.tolist() == PUBLISHED_INDIAN_PINES_COUNTS
        assert counts.sum() == 10249

    labels = open_labels(folder / "Indian_pines_gt.npy")
    aligned = within_class_share(cube.data, labels)
    assert aligned < 0.45
    for wrong in (labels.T, labels[::-1], labels[:, ::-1]):
        assert within_class_share(cube.data, wrong) > aligned + 0.3


def test_purdue_gis_agrees_with_the_mat_labels(shared_data: Path) -> None:
    folder = shared_data / "indian_pines"
    gis = open_labels(folder / "92AV3GT.GIS", expected_shape=(145, 145))
    mat = open_labels(folder / "Indian_pines_gt.mat")
    agreement = float((gis == mat).mean())
    assert agreement >= 0.98
    assert float((gis.T == mat).mean()) < 0.5  # a transposed read would not agree


# --------------------------------------------------------------------------- Samson
def test_samson_orientation(shared_data: Path) -> None:
    folder = shared_data / "samson"
    cube = open_cube(folder / "samson_1.mat")
    assert cube.shape == (156, 95, 95) and cube.metadata["key"] == "V"
    abundances = open_cube(folder / "end3.mat", key="A", spatial_shape=(95, 95))
    assert abundances.shape == (3, 95, 95)
    np.testing.assert_allclose(abundances.data.sum(axis=0), 1.0, atol=1e-6)

    water = abundances.data.argmax(axis=0) == 2  # order soil / tree / water
    components, count = ndimage.label(water)
    sizes = np.bincount(components.ravel())[1:]
    # One water body holds 95 % of the water pixels (a small separate pond is the other component);
    # reading the (bands, pixels) matrix pixel-major instead of column-major shatters it.
    assert count <= 2 and sizes.max() / water.sum() > 0.95
    from scipy.io import loadmat

    raw_a = loadmat(folder / "end3.mat")["A"]
    shattered, wrong_count = ndimage.label(raw_a.reshape(95, 95, 3).argmax(axis=-1) == 2)
    assert wrong_count > 100

    # Water absorbs the near infrared: its pixels in the cube are dark beyond 750 nm (401-889 nm sensor).
    wavelengths = np.linspace(401.0, 889.0, 156)
    nir = cube.data[wavelengths > 750].mean(axis=0)
    assert nir[water].mean() < 0.1 < nir[~water].mean()

    # The endmembers times the abundances reproduce the pixels (spectral angle) only when aligned.
    endmembers = loadmat(folder / "end3.mat")["M"]

    def mean_angle(abundance_maps: np.ndarray) -> float:
        model = np.einsum("bk,khw->bhw", endmembers, abundance_maps)
        cosine = (model * cube.data).sum(0) / (np.linalg.norm(model, axis=0) * np.linalg.norm(cube.data, axis=0))
        return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean())

    assert mean_angle(abundances.data) < 5.0
    assert mean_angle(abundances.data.transpose(0, 2, 1)) > 15.0


# --------------------------------------------------------------------------- glacier
@pytest.mark.parametrize("tile", ["1", "2", "4"])
def test_glacier_tiles_georeferenced_and_aligned(shared_data: Path, tile: str) -> None:
    cube = open_cube(shared_data / "glacier" / "images" / f"{tile}.tif")
    labels = open_labels(shared_data / "glacier" / "labels" / f"{tile}.tif", expected_shape=cube)
    assert cube.shape == (10, 256, 256) and cube.dtype == np.float32
    assert cube.crs == "EPSG:32647"
    assert (cube.transform.a, cube.transform.b, cube.transform.d, cube.transform.e) == (30.0, 0.0, 0.0, -30.0)
    from hsikit.io.geotiff import read_geotiff_labels

    _, georeference = read_geotiff_labels(shared_data / "glacier" / "labels" / f"{tile}.tif")
    assert georeference["crs"] == cube.crs
    assert georeference["transform"].almost_equals(cube.transform, precision=1e-6)
    assert set(np.unique(labels)) <= {0, 1, 2}
    if tile == "4":
        assert (labels == 0).all()  # README: tile 4 is all background
        return
    aligned = best_fisher_ratio(cube.data, labels, 1)
    assert aligned > 10.0  # clean glacier stands out from the background in some band
    for wrong in (labels[::-1], labels.T, np.roll(labels, 20, axis=0)):
        assert best_fisher_ratio(cube.data, wrong, 1) < aligned / 5


# --------------------------------------------------------------------------- anomaly scenes
@pytest.mark.parametrize("name", ANOMALY_FILES)
def test_anomaly_scenes_oriented_with_their_maps(shared_data: Path, name: str) -> None:
    path = shared_data / "anomaly" / name
    cube = open_cube(path)
    truth = open_labels(path, expected_shape=cube)
    assert set(np.unique(truth)) == {0, 1}
    expected_bands = {"MUUFL.mat": 64, "pavia.mat": 102, "hydice.mat": 162}
    if name in expected_bands:
        assert cube.bands == expected_bands[name]
    else:
        assert 188 <= cube.bands <= 207 and cube.shape[1:] == (100, 100)
    if name in ("pavia.mat", "MUUFL.mat"):
        assert cube.metadata["mat_version"] == "7.3" and cube.shape[1:] == (100, 100)
    else:  # v5 (H, W, B) files
        assert cube.metadata["mat_version"] == "5" and cube.metadata["layout"] == "HWC"
    # The cube the other way round (transposed when square, else flipped) puts the anomalies elsewhere.
    wrong = cube.data.transpose(0, 2, 1) if cube.height == cube.width else cube.data[:, ::-1]
    margin = 1.5 if name in ("pavia.mat", "MUUFL.mat") else 1.2
    assert anomaly_contrast(cube.data, truth) > margin * anomaly_contrast(wrong, truth)


# --------------------------------------------------------------------------- everything
def test_every_file_is_covered(shared_data: Path) -> None:
    """Each raster/MATLAB file in the folder either loads as a cube/labels or is refused with a clear error."""
    tables = {".csv", ".txt", ".spc", ".md"}
    files = {
        str(p.relative_to(shared_data))
        for p in shared_data.rglob("*")
        if p.is_file() and p.suffix.lower() not in tables and p.name != "SHA256SUMS"
    }
    cubes = {
        "indian_pines/Indian_pines_corrected.npy",
        "samson/samson_1.mat",
        *(f"glacier/images/{t}.tif" for t in "124"),
        *(f"anomaly/{n}" for n in ANOMALY_FILES),
    }
    labels = {
        "indian_pines/Indian_pines_gt.npy",
        "indian_pines/Indian_pines_gt.mat",
        "indian_pines/92AV3GT.GIS",
        *(f"glacier/labels/{t}.tif" for t in "124"),
    }
    not_images = {  # spectral libraries, abundance matrices and colour tables
        "samson/end3.mat",
        "samson/spectral_library_samson.mat",
        "usgs/USGS_1995_Library.mat",
        "color/D_illuminants.mat",
    }
    assert files == cubes | labels | not_images, "a new file in ../shared/data needs a check here"
    for name in sorted(cubes):
        cube = open_cube(shared_data / name)
        assert cube.data.ndim == 3 and cube.metadata["source"] == str(shared_data / name)
    for name in sorted(labels):
        assert open_labels(shared_data / name).ndim == 2
    for name in sorted(not_images):
        with pytest.raises(MatKeyError, match="no 3-D numeric array"):
            open_cube(shared_data / name)
