"""The dataset registry and scene loaders, checked offline against the shared data folder.

Every registered file that exists in ``../shared/data`` must match its registered sha256 and
load with the right shape, orientation, wavelengths and labels. Loader logic that the shared
data cannot exercise (label remapping, ground-truth ordering, corrupted caches) is checked on
small generated files.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from scipy import ndimage

from hsikit.data import (
    DatasetInfo,
    RemoteFile,
    arad1k_split_names,
    dataset_info,
    format_dataset_table,
    list_datasets,
    load_dataset,
    register_dataset,
    registered_loaders,
    sha256_file,
)
from hsikit.data.registry import _REGISTRY
from hsikit.errors import (
    ChecksumError,
    ConfigError,
    CorruptFileError,
    DataFileNotFoundError,
    DatasetNotAvailableError,
    InvalidLabelsError,
    SplitError,
    UnknownNameError,
)

ANOMALY_DATASETS = list_datasets("anomaly")
INDIAN_PINES_COUNTS = [46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265, 386, 93]


def _shared_sums(shared: Path) -> dict[str, str]:
    sums = {}
    for line in (shared / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.removeprefix("./")] = digest
    return sums


def _present(info: DatasetInfo, root: Path) -> bool:
    return bool(info.files) and all(f.local_path(root).is_file() for f in info.files if f.required)


# =========================================================================== registry facts
def test_every_required_dataset_is_registered():
    expected = {
        "indian-pines", "pavia-university", "pavia-centre", "salinas", "salinas-a", "ksc", "botswana",
        "samson", "jasper-ridge", "urban", "glacier", "arad-1k", "cave", "hydice-anomaly", "pavia-anomaly",
        "muufl-anomaly", "abu-airport-1", "abu-airport-2", "abu-airport-3", "abu-airport-4", "abu-beach-2",
        "abu-beach-3", "abu-urban-1", "abu-urban-2", "abu-urban-3", "abu-urban-5",
    }
    assert expected <= set(list_datasets())
    assert set(list_datasets("anomaly")) == {n for n in expected if "abu" in n or n.endswith("-anomaly")}


@pytest.mark.parametrize("name", list_datasets())
def test_entries_are_complete(name):
    info = dataset_info(name)
    assert info.title and info.sensor and info.homepage and info.citation and info.license
    assert info.loader in registered_loaders()
    paths = [f.path for f in info.files]
    assert len(paths) == len(set(paths))
    if info.manual:
        # Something must be fetched by hand: the user gets instructions or a landing page.
        assert info.instructions or info.homepage
    for remote in info.files:
        assert all(url.startswith(("https://", "http://")) for url in remote.urls)
    if info.task in ("classification", "unmixing", "segmentation", "anomaly"):
        assert info.class_names


def test_every_shared_scene_file_is_registered_with_its_digest(shared_data):
    sums = _shared_sums(shared_data)
    registered = {f.path: f for name in list_datasets() for f in dataset_info(name).files}
    scene_files = {p: d for p, d in sums.items() if p.split("/")[0] in {"indian_pines", "samson", "glacier", "anomaly"}}
    assert scene_files, "SHA256SUMS lists no scene files"
    for path, digest in scene_files.items():
        assert path in registered, f"{path} is in the shared data but not in the registry"
        assert registered[path].sha256 == digest
        assert registered[path].size == (shared_data / path).stat().st_size


def test_registered_digests_match_the_shared_bytes(shared_data):
    checked = 0
    for name in list_datasets():
        for remote in dataset_info(name).files:
            path = remote.local_path(shared_data)
            if remote.sha256 is None or not path.is_file():
                continue
            assert sha256_file(path) == remote.sha256, path
            checked += 1
    assert checked == 28


def test_indian_pines_wavelengths_are_the_200_kept_bands_of_the_calibration_table(shared_data):
    with open(shared_data / "indian_pines" / "indian_pines_wavelengths.csv", newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row[header.index("in_corrected_200")] == "1"]
    info = dataset_info("indian-pines")
    assert len(kept) == 200
    np.testing.assert_allclose(info.wavelength_array(), [float(r[header.index("center_nm")]) for r in kept])
    np.testing.assert_allclose(info.fwhm_array(), [float(r[header.index("fwhm_nm")]) for r in kept])


def test_band_centre_facts():
    samson = dataset_info("samson").wavelength_array()
    assert samson.shape == (156,) and samson[0] == 401.0 and samson[-1] == 889.0
    np.testing.assert_allclose(np.diff(samson), (889 - 401) / 155, atol=1e-3)
    for name in ("arad-1k", "cave"):
        np.testing.assert_array_equal(dataset_info(name).wavelength_array(), np.arange(400, 701, 10))
    for name in ANOMALY_DATASETS + ["pavia-university", "salinas", "ksc", "botswana", "glacier"]:
        info = dataset_info(name)
        assert info.wavelengths is None and info.wavelength_note  # no guessed centres, and it says why


def test_class_names_and_counts():
    assert dataset_info("indian-pines").class_names[0] == "Alfalfa"
    assert dataset_info("indian-pines").class_names[-1] == "Stone-Steel-Towers"
    expected_counts = {"indian-pines": 16, "pavia-university": 9, "pavia-centre": 9, "salinas": 16, "salinas-a": 6,
                       "ksc": 13, "botswana": 14, "samson": 3, "jasper-ridge": 4, "urban": 6, "glacier": 3}
    for name, count in expected_counts.items():
        assert dataset_info(name).num_classes == count, name
    assert dataset_info("samson").class_names == ("Soil", "Tree", "Water")
    assert set(dataset_info("jasper-ridge").class_names) == {"Road", "Soil", "Water", "Tree"}
    assert dataset_info("glacier").class_names == ("background", "clean_glacier", "debris_glacier")


def test_names_resolve_in_any_spelling():
    for spelling in ("Indian Pines", "indian_pines", "IndianPines", "INDIAN-PINES", "ip"):
        assert dataset_info(spelling).name == "indian-pines"
    assert dataset_info("PaviaU").name == "pavia-university"
    assert dataset_info("salinasA").name == "salinas-a"
    assert dataset_info("ARAD_1K").name == "arad-1k"


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError) as caught:
        dataset_info("indian-pine")
    assert "indian-pines" in str(caught.value)
    with pytest.raises(UnknownNameError) as caught:
        dataset_info("pavia")
    message = str(caught.value)
    assert "pavia-centre" in message and "pavia-university" in message
    with pytest.raises(UnknownNameError, match="hsikit datasets"):
        dataset_info("completely-unrelated")
    with pytest.raises(UnknownNameError, match="unknown task"):
        list_datasets("denoising")


def test_registering_a_taken_name_is_refused():
    clash = DatasetInfo("Indian_Pines", "dup", "classification", "x", ("x",), (), "mat_scene")
    with pytest.raises(ValueError, match="already taken"):
        register_dataset(clash)
    with pytest.raises(ValueError, match="wavelengths for"):
        DatasetInfo("bad", "bad", "classification", "x", ("x",), (), "mat_scene", shape=(3, 2, 2), wavelengths=(1.0,))
    with pytest.raises(ValueError, match="sha256"):
        RemoteFile("a/b.mat", sha256="ABC")
    with pytest.raises(ValueError, match="inside the root"):
        RemoteFile("../escape.mat")


def test_describe_and_table_are_readable(shared_data):
    text = dataset_info("indian-pines").describe()
    for expected in ("Alfalfa", "200 centres", "8f038e4d8156", "tensorly", "CC BY 3.0", "doi:10.4231/R7RX991C"):
        assert expected in text
    assert "file value 10" in dataset_info("salinas-a").describe()
    assert "Train_Spec" in dataset_info("arad-1k").describe()
    table = format_dataset_table(root=shared_data).splitlines()
    assert len(table) == 2 + len(list_datasets())
    rows = {line.split()[0]: line for line in table[2:]}
    assert rows["indian-pines"].endswith("present")
    assert rows["pavia-university"].endswith("missing")
    assert rows["arad-1k"].endswith("manual")


def test_arad1k_split_names_are_the_mstpp_lists():
    train, valid, test = (arad1k_split_names(s) for s in ("train", "valid", "test"))
    assert len(train) == 897 and len(set(train)) == 897
    assert train[0] == "ARAD_1K_0001" and train[-1] == "ARAD_1K_0900"
    assert {"ARAD_1K_0314", "ARAD_1K_0340", "ARAD_1K_0531"}.isdisjoint(train)
    assert set(train) | {"ARAD_1K_0314", "ARAD_1K_0340", "ARAD_1K_0531"} == {f"ARAD_1K_{i:04d}" for i in range(1, 901)}
    assert valid == [f"ARAD_1K_{i:04d}" for i in range(901, 951)]
    assert test == [f"ARAD_1K_{i:04d}" for i in range(951, 1001)]
    assert train == sorted(train)
    with pytest.raises(SplitError, match="'train', 'valid' or 'test'"):
        arad1k_split_names("validation")  # type: ignore[arg-type]


# =========================================================================== loading shared data
def test_indian_pines_loads_with_wavelengths_and_class_counts(shared_data):
    scene = load_dataset("indian-pines", root=shared_data, download=False)
    raw = np.load(shared_data / "indian_pines" / "Indian_pines_corrected.npy")
    assert scene.cube.shape == (200, 145, 145)
    np.testing.assert_array_equal(scene.cube.wavelengths, dataset_info("indian-pines").wavelength_array())
    assert scene.cube.fwhm is not None and scene.cube.fwhm.shape == (200,)
    np.testing.assert_array_equal(scene.cube.data[:, 17, 101], raw[17, 101, :])  # (H, W, C) file → (C, H, W)
    assert scene.labels.shape == (145, 145) and scene.labels.dtype == np.int64
    assert scene.class_counts().tolist() == INDIAN_PINES_COUNTS
    assert int((scene.labels == 0).sum()) == 145 * 145 - sum(INDIAN_PINES_COUNTS)
    assert scene.verified
    assert scene.cube.metadata["dataset"] == "indian-pines"


def test_indian_pines_loads_through_hsikit_data_dir(shared_data, monkeypatch):
    monkeypatch.setenv("HSIKIT_DATA_DIR", str(shared_data))
    scene = load_dataset("Indian Pines", download=False)
    assert scene.cube.metadata["source"].startswith(str(shared_data))


def test_samson_is_a_3_class_map_from_the_abundances(shared_data):
    scene = load_dataset("samson", root=shared_data, download=False)
    assert scene.cube.shape == (156, 95, 95)
    np.testing.assert_allclose(scene.cube.wavelengths, np.linspace(401, 889, 156), atol=1e-3)
    abundances = scene.extras["abundances"]
    assert abundances.shape == (3, 95, 95) and scene.extras["endmembers"].shape == (156, 3)
    np.testing.assert_allclose(abundances.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(scene.labels, abundances.argmax(axis=0) + 1)
    assert set(np.unique(scene.labels)) == {1, 2, 3}

    water = scene.labels == 3
    components, count = ndimage.label(water)
    sizes = np.bincount(components.ravel())[1:]
    # The river is one region holding >95 % of the water pixels; argmax also marks a small
    # pond inside the trees (105 px), so the map has two water regions, not one.
    assert sizes.max() / water.sum() > 0.95 and count == 2
    main = components == (np.argmax(sizes) + 1)
    assert main[:, 0].all()  # the river runs down the whole left edge in MATLAB's (column-major) orientation

    # The spectra and the ground truth are aligned: water is dark in the near infrared, trees bright.
    nir = scene.cube.data[scene.cube.wavelengths > 750]
    assert nir[:, water].mean() < 0.1 < nir[:, scene.labels == 2].mean()


def test_glacier_tiles_keep_their_georeference(shared_data):
    shares = {}
    for tile in ("1", "2", "4"):
        scene = load_dataset("glacier", tile, root=shared_data, download=False)
        assert scene.cube.shape == (10, 256, 256) and scene.cube.dtype == np.float32
        assert scene.cube.crs == "EPSG:32647"
        assert (scene.cube.transform.a, scene.cube.transform.e) == (30.0, -30.0)
        assert scene.labels.min() >= 1 and scene.labels.max() <= 3  # file 0/1/2 → 1/2/3
        shares[tile] = scene.class_counts() / scene.labels.size
    np.testing.assert_allclose(shares["1"], [0.903, 0.062, 0.035], atol=0.001)  # shares documented in the spec
    np.testing.assert_array_equal(shares["4"], [1.0, 0.0, 0.0])  # tile 4 is all background
    with pytest.raises(UnknownNameError, match="did you mean '1'"):
        load_dataset("glacier", "11", root=shared_data, download=False)
    with pytest.raises(UnknownNameError, match="pass scene="):
        load_dataset("glacier", root=shared_data, download=False)


@pytest.mark.parametrize("name", ANOMALY_DATASETS)
def test_anomaly_scene_loads_with_its_map(shared_data, name):
    info = dataset_info(name)
    path = info.files[0].local_path(shared_data)
    if not path.is_file():
        pytest.skip(f"{path} not in the shared data")
    scene = load_dataset(name, root=shared_data, download=False)
    assert scene.cube.shape == info.shape
    # Independent reading: scipy for v5 files, h5py (axes reversed, MATLAB order) for v7.3 files.
    key, map_key = info.loader_options["cube_key"], info.loader_options["labels_key"]
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as handle:
            raw_cube, raw_map = handle[key][()].T, handle[map_key][()].T
    else:
        content = scipy.io.loadmat(path)
        raw_cube, raw_map = content[key], content[map_key]
    np.testing.assert_array_equal(scene.labels, raw_map.astype(np.int64))
    np.testing.assert_array_equal(scene.cube.data, np.moveaxis(raw_cube, -1, 0))
    assert 0 < scene.class_counts()[0] < 0.05 * scene.labels.size  # anomalies are rare
    np.testing.assert_array_equal(scene.extras["anomaly_mask"], scene.labels == 1)
    assert scene.verified


def test_every_dataset_present_in_the_shared_data_loads(shared_data):
    loaded = []
    for name in list_datasets():
        info = dataset_info(name)
        if not _present(info, shared_data):
            continue
        scenes = info.scenes or (None,)
        for scene_id in scenes:
            scene = load_dataset(name, scene_id, root=shared_data, download=False)
            if info.shape is not None:
                assert scene.cube.shape == info.shape, name
            assert scene.labels is not None and scene.labels.shape == scene.cube.shape[1:]
            assert 0 <= scene.labels.min() and scene.labels.max() <= info.num_classes
            loaded.append(name)
    assert {"indian-pines", "samson", "glacier", "abu-airport-1", "pavia-anomaly", "muufl-anomaly"} <= set(loaded)


# =========================================================================== missing and damaged data
def test_missing_files_without_download_name_the_fix(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="download_dataset\\('pavia-university'\\)"):
        load_dataset("pavia-university", root=tmp_path, download=False)
    with pytest.raises(DatasetNotAvailableError, match="xudongkang"):
        load_dataset("abu-urban-1", root=tmp_path, download=False)
    with pytest.raises(DatasetNotAvailableError, match="codalab"):
        load_dataset("arad-1k", "ARAD_1K_0901", root=tmp_path)


def test_truncated_copy_of_a_shared_file_is_never_used(shared_data, tmp_path):
    folder = tmp_path / "indian_pines"
    folder.mkdir()
    for name in ("Indian_pines_corrected.npy", "Indian_pines_gt.npy"):
        shutil.copy(shared_data / "indian_pines" / name, folder / name)
    cube_file = folder / "Indian_pines_corrected.npy"
    cube_file.write_bytes(cube_file.read_bytes()[:-4096])
    with pytest.raises(ChecksumError, match="moved to"):
        load_dataset("indian-pines", root=tmp_path, download=False)
    assert not cube_file.exists() and (folder / "Indian_pines_corrected.npy.corrupt").exists()


# =========================================================================== loader logic on generated files
@pytest.fixture
def temporary_entry():
    """Register throw-away entries; removed after the test."""
    names: list[str] = []

    def add(info: DatasetInfo) -> DatasetInfo:
        names.append(info.name)
        return register_dataset(info)

    yield add
    for name in names:
        _REGISTRY.pop(name, None)


def test_label_codes_are_remapped_and_unknown_codes_refused(tmp_path, rng):
    salinas_a = dataset_info("salinas-a")
    folder = tmp_path / "salinas_a"
    folder.mkdir()
    cube = rng.integers(0, 5000, size=(5, 4, 204)).astype(np.int16)  # (H, W, bands) as in the GIC files
    labels = np.array([[0, 1, 10, 11], [12, 13, 14, 0], [1, 1, 0, 0], [14, 14, 14, 14], [0, 0, 0, 10]], np.uint8)
    scipy.io.savemat(folder / "SalinasA_corrected.mat", {"salinasA_corrected": cube})
    scipy.io.savemat(folder / "SalinasA_gt.mat", {"salinasA_gt": labels})

    scene = load_dataset("salinas-a", root=tmp_path, download=False)
    expected = np.array([[0, 1, 2, 3], [4, 5, 6, 0], [1, 1, 0, 0], [6, 6, 6, 6], [0, 0, 0, 2]])
    np.testing.assert_array_equal(scene.labels, expected)
    np.testing.assert_array_equal(scene.cube.data[:, 2, 3], cube[2, 3, :])
    assert scene.class_names[1] == "Corn_senesced_green_weeds"
    assert not scene.verified and set(scene.files.values()) == {"unverified"}  # no digest registered

    labels[0, 0] = 7
    scipy.io.savemat(folder / "SalinasA_gt.mat", {"salinasA_gt": labels})
    with pytest.raises(InvalidLabelsError, match=r"label values \[7\]"):
        load_dataset(salinas_a.name, root=tmp_path, download=False)


def test_unmixing_ground_truth_is_reordered_by_material_names_and_unfolded_column_major(tmp_path, temporary_entry):
    rows, cols, bands = 3, 4, 5
    # Pixel p of the MATLAB matrix is (row p % rows, col p // rows); give each pixel its own spectrum.
    pixels = np.arange(rows * cols)
    spectra = np.stack([pixels * 10.0 + b for b in range(bands)])  # (bands, pixels)
    # File order of materials: Tree, Water, Soil (the registry order is Soil, Tree, Water).
    winner = np.array([(r + c) % 3 for c in range(cols) for r in range(rows)])  # column-major walk
    abundances = np.full((3, rows * cols), 0.1)
    abundances[winner, pixels] = 0.8
    cood = np.array([["#1 Tree"], ["#2 Water"], ["#3 Soil"]], dtype=object)
    folder = tmp_path / "mix"
    folder.mkdir()
    scipy.io.savemat(folder / "cube.mat", {"V": spectra, "nRow": rows, "nCol": cols})
    scipy.io.savemat(folder / "gt.mat", {"A": abundances, "M": np.eye(bands)[:, :3], "cood": cood})
    temporary_entry(DatasetInfo(
        "test-unmixing", "generated", "unmixing", "none", ("none",),
        (RemoteFile("mix/cube.mat"), RemoteFile("mix/gt.mat")), "pixel_matrix_unmixing",
        loader_options={"cube": "mix/cube.mat", "cube_key": "V", "ground_truth": "mix/gt.mat"},
        class_names=("Soil", "Tree", "Water"),
    ))

    scene = load_dataset("test-unmixing", root=tmp_path, download=False)

    assert scene.cube.shape == (bands, rows, cols)
    assert scene.cube.data[0, 2, 1] == (2 + 1 * rows) * 10.0  # pixel (row 2, col 1) is matrix column 5
    file_to_registry = {0: 2, 1: 3, 2: 1}  # Tree → 2, Water → 3, Soil → 1
    expected = np.array([[file_to_registry[(r + c) % 3] for c in range(cols)] for r in range(rows)])
    np.testing.assert_array_equal(scene.labels, expected)
    np.testing.assert_array_equal(scene.extras["endmembers"][:, 0], np.eye(bands)[:, 2])  # Soil was column 3

    scipy.io.savemat(folder / "gt.mat", {"A": abundances, "M": np.eye(bands)[:, :3],
                                         "cood": np.array([["Tree"], ["Water"], ["Sand"]], dtype=object)})
    with pytest.raises(CorruptFileError, match="do not match the registered classes"):
        load_dataset("test-unmixing", root=tmp_path, download=False)


def test_cave_scene_is_stacked_from_band_images(tmp_path, rng):
    from PIL import Image

    folder = tmp_path / "cave" / "beads_ms" / "beads_ms"
    folder.mkdir(parents=True)
    bands = rng.integers(0, 65536, size=(31, 6, 5), dtype=np.uint16)
    for index, band in enumerate(bands, start=1):
        Image.fromarray(band).save(folder / f"beads_ms_{index:02d}.png")
    scene = load_dataset("cave", "beads", root=tmp_path)
    assert scene.cube.shape == (31, 6, 5)
    np.testing.assert_allclose(scene.cube.data, bands / 65535.0, rtol=1e-6)
    np.testing.assert_array_equal(scene.cube.wavelengths, np.arange(400, 701, 10))
    (folder / "beads_ms_31.png").unlink()
    with pytest.raises(DatasetNotAvailableError, match="found 30"):
        load_dataset("cave", "beads", root=tmp_path)


def test_urban_ground_truth_version_is_chosen_by_endmember_count(tmp_path):
    rows, cols, bands = 2, 3, 4
    folder = tmp_path / "urban"
    folder.mkdir()
    spectra = np.arange(bands * rows * cols, dtype=np.float64).reshape(bands, rows * cols)
    scipy.io.savemat(folder / "Urban_R162.mat", {"Y": spectra, "nRow": rows, "nCol": cols})
    names = np.array([["Asphalt"], ["Grass"], ["Tree"], ["Roof"]], dtype=object)
    abundances = np.eye(4)[:, [0, 1, 2, 3, 3, 2]]  # pixels 0..5 (column-major) → Asphalt, Grass, Tree, Roof, Roof, Tree
    scipy.io.savemat(folder / "end4_groundTruth.mat", {"A": abundances, "M": np.ones((bands, 4)), "cood": names})

    scene = load_dataset("urban", root=tmp_path, download=False, endmembers=4)

    assert scene.class_names == ("Asphalt", "Grass", "Tree", "Roof")
    np.testing.assert_array_equal(scene.labels, [[1, 3, 4], [2, 4, 3]])
    with pytest.raises(DataFileNotFoundError, match="end6_groundTruth.mat"):
        load_dataset("urban", root=tmp_path, download=False)  # default: the 6-endmember version
    with pytest.raises(UnknownNameError, match="4, 5 or 6"):
        load_dataset("urban", root=tmp_path, download=False, endmembers=7)
    with pytest.raises(ConfigError, match="endmember"):
        load_dataset("urban", root=tmp_path, download=False, endmember=4)  # misspelt option


def test_envi_unmixing_cube_is_read_through_hsikit_io(tmp_path, temporary_entry, rng):
    from hsikit.cube import Cube
    from hsikit.io import save_cube

    data = rng.random((6, 3, 2)).astype(np.float32)
    folder = tmp_path / "jr"
    folder.mkdir()
    save_cube(Cube(data, wavelengths=np.linspace(400, 900, 6)), folder / "cube.hdr")
    abundances = np.zeros((2, 6))
    abundances[1, [0, 4]] = 1.0  # MATLAB pixels 0 and 4 = (row 0, col 0) and (row 1, col 1) are Water
    abundances[0, [1, 2, 3, 5]] = 1.0
    scipy.io.savemat(folder / "end2.mat", {"A": abundances, "M": np.zeros((6, 2)),
                                           "cood": np.array([["Road"], ["Water"]], dtype=object)})
    temporary_entry(DatasetInfo(
        "test-envi-unmixing", "generated", "unmixing", "none", ("none",),
        (RemoteFile("jr/cube.hdr"), RemoteFile("jr/cube.img"), RemoteFile("jr/end2.mat")), "envi_unmixing",
        loader_options={"cube": "jr/cube.hdr", "ground_truth": "jr/end2.mat"}, class_names=("Road", "Water"),
    ))

    scene = load_dataset("test-envi-unmixing", root=tmp_path, download=False)

    np.testing.assert_array_equal(scene.cube.data, data)
    np.testing.assert_allclose(scene.cube.wavelengths, np.linspace(400, 900, 6))  # from the ENVI header
    np.testing.assert_array_equal(scene.labels, [[2, 1], [1, 2], [1, 1]])


def test_arad1k_scene_follows_the_mstpp_layout(tmp_path, rng):
    from PIL import Image

    height, width = 5, 6
    spectra = tmp_path / "arad1k" / "Train_Spec"
    spectra.mkdir(parents=True)
    cube_hwc = rng.random((height, width, 31)).astype(np.float32)
    with h5py.File(spectra / "ARAD_1K_0901.mat", "w") as handle:
        # MATLAB stores H x W x C column-major, which h5py shows as (C, W, H).
        handle["cube"] = cube_hwc.T
        handle["bands"] = np.arange(400, 701, 10, dtype=np.float64).reshape(1, 31).T
    rgb_folder = tmp_path / "arad1k" / "Train_RGB"
    rgb_folder.mkdir()
    rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(rgb_folder / "ARAD_1K_0901.png")
    (rgb_folder / "ARAD_1K_0901.png").rename(rgb_folder / "ARAD_1K_0901.jpg")  # lossless bytes under the .jpg name

    scene = load_dataset("arad-1k", 901, root=tmp_path)

    assert scene.scene == "ARAD_1K_0901" and scene.labels is None
    assert scene.cube.shape == (31, height, width) and scene.cube.dtype == np.float32
    np.testing.assert_array_equal(scene.cube.data, np.moveaxis(cube_hwc, -1, 0))
    np.testing.assert_array_equal(scene.cube.wavelengths, np.arange(400, 701, 10))
    np.testing.assert_array_equal(scene.extras["rgb"], rgb)
    assert scene.cube.metadata["split"] == "valid"
    with pytest.raises(UnknownNameError, match="no scene"):
        load_dataset("arad-1k", "ARAD_1K_1001", root=tmp_path)
