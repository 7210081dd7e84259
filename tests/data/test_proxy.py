"""Tests of the offline proxy set: real AVIRIS scenes -> 31 bands at 400..700 nm + simulated NTIRE RGB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hsikit.data.arad import ARADDataset, read_rgb, read_spectra
from hsikit.data.proxy import (
    ABU_LEADING_BANDS_REMOVED,
    AVIRIS_CENTRES_NM,
    AVIRIS_O2A_BAND,
    INDIAN_PINES_DN_OFFSET,
    PROXY_SCENES,
    PROXY_VALID_SCENES,
    absorption_dip_index,
    array_sha256,
    build_proxy_set,
    load_proxy_manifest,
    verify_proxy_set,
)
from hsikit.errors import ChecksumError, UnknownNameError
from hsikit.io import open_cube, read_wavelength_table
from hsikit.spectral.simulate import decode_jpeg, encode_jpeg, load_ntire2022_qe, simulate_rgb


@pytest.fixture(scope="module")
def built(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_proxy_set(tmp_path_factory.mktemp("proxy"), shared_data=shared_data)


def source_size(scene_source: str) -> tuple[int, int]:
    return (145, 145) if "indian_pines" in scene_source else (100, 100)


# ---------------------------------------------------------------------------- determinism and checksums
def test_two_builds_give_identical_arrays_and_manifests(built: Path, shared_data: Path, tmp_path: Path) -> None:
    again = build_proxy_set(tmp_path / "again", shared_data=shared_data)
    first, second = load_proxy_manifest(built), load_proxy_manifest(again)
    assert first == second  # no timestamps or paths: the manifest itself is reproducible
    for scene in PROXY_SCENES:
        cube_a = read_spectra(built / "Train_Spec" / f"{scene.name}.mat")
        cube_b = read_spectra(again / "Train_Spec" / f"{scene.name}.mat")
        np.testing.assert_array_equal(cube_a, cube_b)
        assert (built / "Train_RGB" / f"{scene.name}.jpg").read_bytes() == (
            again / "Train_RGB" / f"{scene.name}.jpg"
        ).read_bytes()
        # the recorded checksums are those of the arrays read back from disk
        assert first["scenes"][scene.name]["cube_sha256"] == array_sha256(cube_a)
        rgb = read_rgb(built / "Train_RGB" / f"{scene.name}.jpg")
        assert first["scenes"][scene.name]["rgb_sha256"] == array_sha256(rgb)
    assert verify_proxy_set(again) == second


def test_a_valid_build_is_reused_and_a_damaged_one_rebuilt(built: Path, shared_data: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(built, tmp_path / "copy"))
    cube_file = copy / "Train_Spec" / "proxy_abu_urban_2.mat"
    stamp = cube_file.stat().st_mtime_ns
    assert build_proxy_set(copy, shared_data=shared_data) == copy
    assert cube_file.stat().st_mtime_ns == stamp  # reused, not rewritten

    jpeg = copy / "Train_RGB" / "proxy_abu_beach_2.jpg"
    image = read_rgb(jpeg)
    image[0, 10, 10] ^= 0xFF
    jpeg.write_bytes(encode_jpeg(image, 95))
    with pytest.raises(ChecksumError, match=r"proxy_abu_beach_2\.jpg \(file bytes\).*force=True"):
        verify_proxy_set(copy)
    build_proxy_set(copy, shared_data=shared_data)  # damaged: rebuilt
    verify_proxy_set(copy)
    assert jpeg.read_bytes() == (built / "Train_RGB" / "proxy_abu_beach_2.jpg").read_bytes()


def test_a_changed_cube_fails_verification(built: Path, tmp_path: Path) -> None:
    from hsikit.io.matlab import write_mat

    copy = Path(shutil.copytree(built, tmp_path / "copy"))
    path = copy / "Train_Spec" / "proxy_indian_pines.mat"
    cube = open_cube(path, key="cube", layout="HWC")
    data = cube.data.copy()
    data[3, 20, 20] += 1e-3
    write_mat(cube.replace(data=data), path, format="v7.3")
    with pytest.raises(ChecksumError, match=r"1 proxy file\(s\) differ.*proxy_indian_pines\.mat \(cube array\)"):
        verify_proxy_set(copy)


# ---------------------------------------------------------------------------- content
def test_cubes_have_31_bands_at_400_to_700_nm_and_matching_rgb(built: Path) -> None:
    manifest = load_proxy_manifest(built)
    assert manifest["proxy"] is True and "NOT ARAD-1K" in manifest["description"]
    assert manifest["name"].startswith("proxy")
    assert manifest["wavelengths_nm"] == list(np.arange(400.0, 701.0, 10.0))
    assert set(manifest["splits"]["valid"]) == set(PROXY_VALID_SCENES)
    assert len(manifest["splits"]["train"]) == 8 and not set(manifest["splits"]["train"]) & set(PROXY_VALID_SCENES)
    assert not any("hydice" in scene.source for scene in PROXY_SCENES)
    for scene in PROXY_SCENES:
        assert scene.name.startswith("proxy_")
        cube = open_cube(built / "Train_Spec" / f"{scene.name}.mat")  # key and layout found from the file
        height, width = source_size(scene.source)
        assert cube.shape == (31, height, width) and cube.dtype == np.float32
        np.testing.assert_allclose(cube.wavelengths, np.arange(400.0, 701.0, 10.0))
        assert cube.metadata["norm_factor"] == pytest.approx(manifest["scenes"][scene.name]["scale"])
        assert cube.data.min() >= 1e-3 and cube.data.max() == 1.0  # strictly positive for the MRAE
        assert 0.0005 < np.mean(cube.data == 1.0) < 0.005  # about the top 0.1 % is clipped at the percentile
        rgb = read_rgb(built / "Train_RGB" / f"{scene.name}.jpg")
        assert rgb.shape == (3, height, width) and rgb.dtype == np.uint8


def test_rgb_is_the_ntire_simulation_of_the_stored_cube(built: Path, shared_data: Path) -> None:
    camera = load_ntire2022_qe(shared_data / "color" / "ntire2022_RGB_Camera_QE.csv")
    manifest = load_proxy_manifest(built)
    for name in ("proxy_indian_pines", "proxy_abu_urban_3"):
        cube = open_cube(built / "Train_Spec" / f"{name}.mat", key="cube", layout="HWC")
        expected = simulate_rgb(cube, camera, jpeg_quality=65, seed=manifest["scenes"][name]["seed"])
        np.testing.assert_array_equal(read_rgb(built / "Train_RGB" / f"{name}.jpg"), expected)
        assert np.abs(expected.astype(float).mean() - 0.18 * 255) < 2.5  # auto-exposure: mean at 18 % grey


def test_resampled_values_follow_the_source_spectra(built: Path, shared_data: Path) -> None:
    manifest = load_proxy_manifest(built)
    targets = np.array([450.0, 550.0, 650.0])
    band = ((targets - 400) // 10).astype(int)
    # Indian Pines, measured band centres; DN offset 1000
    raw = np.load(shared_data / "indian_pines" / "Indian_pines_corrected.npy")
    centres = read_wavelength_table(
        shared_data / "indian_pines" / "indian_pines_wavelengths.csv", keep_column="in_corrected_200"
    ).centers
    cube = read_spectra(built / "Train_Spec" / "proxy_indian_pines.mat")
    scale = manifest["scenes"]["proxy_indian_pines"]["scale"]
    for row, col in ((10, 20), (72, 72), (140, 5)):
        spectrum = raw[row, col, :31].astype(float) - INDIAN_PINES_DN_OFFSET  # 400..696.5 nm, increasing
        by_hand = np.interp(targets, centres[:31], spectrum) / scale
        np.testing.assert_allclose(cube[band, row, col], by_hand, rtol=0.03)
    # an ABU scene, assumed AVIRIS centres with one leading band removed
    raw = scipy.io.loadmat(shared_data / "anomaly" / "abu-airport-1.mat")["data"].astype(float)
    cube = read_spectra(built / "Train_Spec" / "proxy_abu_airport_1.mat")
    scale = manifest["scenes"]["proxy_abu_airport_1"]["scale"]
    centres = np.asarray(AVIRIS_CENTRES_NM[1:31])  # spectrometer A, increasing
    for row, col in ((5, 5), (50, 60)):
        by_hand = np.interp(targets, centres, raw[row, col, :30]) / scale
        np.testing.assert_allclose(cube[band, row, col], by_hand, rtol=0.03)


def test_abu_band_placement_agrees_with_absorption_lines(shared_data: Path) -> None:
    """The O2-A line (760 nm, AVIRIS band 43) and the water-vapour lines (723 nm, band 39; 820 nm,
    band 49) sit at stored index 'AVIRIS band - leading bands removed' in every ABU scene."""
    for stem, removed in ABU_LEADING_BANDS_REMOVED.items():
        data = scipy.io.loadmat(shared_data / "anomaly" / f"{stem}.mat")["data"].astype(float)
        mean = data.reshape(-1, data.shape[-1]).mean(axis=0)
        o2a = absorption_dip_index(mean, 36, 48)
        assert o2a == AVIRIS_O2A_BAND - removed, stem
        assert absorption_dip_index(mean, o2a - 6, o2a - 1) == o2a - 4, stem  # 723 nm
        assert absorption_dip_index(mean, o2a + 3, o2a + 9) == o2a + 6, stem  # 820 nm
    assert AVIRIS_CENTRES_NM[AVIRIS_O2A_BAND] == pytest.approx(762.38)


# ---------------------------------------------------------------------------- ARAD dataset on the proxy tree
def test_arad_dataset_reads_the_proxy_tree(built: Path) -> None:
    train = ARADDataset(built, "train", patch_size=64, stride=8)
    assert train.is_proxy and "PROXY" in repr(train)
    # Indian Pines: ((145 - 64)//8 + 1)^2 = 121 patches; each ABU scene ((100 - 64)//8 + 1)^2 = 25
    assert len(train) == 121 + 7 * 25
    rgb, cube = train[130]
    assert rgb.shape == (3, 64, 64) and cube.shape == (31, 64, 64)
    plain = ARADDataset(built, "train", patch_size=64, stride=8, augment=False)
    location = plain.locate(130)
    assert location.name == "proxy_abu_airport_1" and (location.row, location.col) == (8, 32)  # item 9 of the scene
    stored = read_spectra(built / "Train_Spec" / "proxy_abu_airport_1.mat")
    np.testing.assert_array_equal(plain[130][1].numpy(), stored[:, 8:72, 32:96])

    valid = ARADDataset(built, "valid")
    assert valid.names == list(PROXY_VALID_SCENES) and len(valid) == 3
    rgb, cube = valid[0]
    assert rgb.shape == (3, 100, 100) and float(rgb.min()) == 0.0 and float(rgb.max()) == 1.0
    np.testing.assert_array_equal(cube.numpy(), read_spectra(built / "Train_Spec" / f"{PROXY_VALID_SCENES[0]}.mat"))
    manifest = json.loads((built / "proxy_manifest.json").read_text())
    assert valid.metadata == {key: manifest[key] for key in ("name", "proxy", "description")}


def test_default_root_is_in_the_hsikit_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hsikit.data.proxy import default_proxy_root

    monkeypatch.setenv("HSIKIT_DATA_DIR", str(tmp_path))
    assert default_proxy_root() == tmp_path / "proxy"


def test_scene_subsets_and_unknown_names(shared_data: Path, tmp_path: Path) -> None:
    root = build_proxy_set(tmp_path, shared_data=shared_data, scenes=["proxy_abu_beach_2"])
    manifest = load_proxy_manifest(root)
    assert list(manifest["scenes"]) == ["proxy_abu_beach_2"]
    assert manifest["splits"] == {"train": ["proxy_abu_beach_2"], "valid": []}
    with pytest.raises(UnknownNameError, match="proxy_abu_beach_9"):
        build_proxy_set(tmp_path, shared_data=shared_data, scenes=["proxy_abu_beach_9"])
