"""The ``hsikit`` command line: info, view, datasets, engine forwarding, error reporting."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from hsikit.cli import ENGINE_COMMANDS, main

HSIKIT = Path(sys.executable).with_name("hsikit")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def glacier_tile(shared_data: Path) -> Path:
    return shared_data / "glacier" / "images" / "1.tif"


@pytest.fixture(scope="module")
def glacier_pixels(glacier_tile: Path) -> np.ndarray:
    """The tile's pixels read by rasterio directly: the reference for the statistics."""
    import rasterio

    with rasterio.open(glacier_tile) as dataset:
        return dataset.read().astype(np.float64)


def test_info_on_a_georeferenced_tile(glacier_tile: Path, glacier_pixels: np.ndarray, capsys) -> None:
    code, out, err = run_cli(["info", str(glacier_tile)], capsys)
    assert code == 0, err
    assert "(10, 256, 256)" in out and "10 bands" in out
    assert re.search(r"^dtype\s+float32$", out, re.MULTILINE)
    assert re.search(r"^wavelengths\s+none$", out, re.MULTILINE)
    assert "EPSG:32647" in out and "WGS 84 / UTM zone 47N" in out
    assert re.search(r"pixel size\s+30 x 30 m$", out, re.MULTILINE)
    # bounds = origin (186555, 3298065) + 256 pixels of 30 m
    assert "left 186555, bottom 3290385, right 194235, top 3298065" in out
    assert re.search(r"^nodata\s+none; 0 masked pixel\(s\)$", out, re.MULTILINE)
    # 10 bands: all listed, with the statistics rasterio's pixels give
    rows = [line.split() for line in out.splitlines() if re.match(r"^\s+\d+\s+-?\d", line)]
    assert [int(row[0]) for row in rows] == list(range(10))
    for row in rows:
        band = glacier_pixels[int(row[0])]
        expected = [band.min(), band.max(), band.mean(), band.std()]
        np.testing.assert_allclose([float(v) for v in row[1:5]], expected, rtol=1e-5, atol=1e-6)


def test_info_json_holds_every_field(glacier_tile: Path, glacier_pixels: np.ndarray, capsys) -> None:
    code, out, _ = run_cli(["info", str(glacier_tile), "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert info["shape"] == [10, 256, 256] and info["dtype"] == "float32"
    assert info["georeference"]["epsg"] == 32647 and info["georeference"]["pixel_size"] == [30.0, 30.0]
    assert info["wavelengths"] is None and info["wavelengths_nm"] is None
    assert info["nodata"] is None and info["masked_pixels"] == 0
    assert len(info["band_statistics"]) == 10
    np.testing.assert_allclose(info["band_statistics"][9]["std"], glacier_pixels[9].std(), rtol=1e-6)


def test_info_lists_first_and_last_bands_unless_all(shared_data: Path, capsys) -> None:
    path = shared_data / "indian_pines" / "Indian_pines_corrected.npy"
    code, out, err = run_cli(["info", str(path), "--layout", "HWC"], capsys)
    assert code == 0, err
    assert "(200, 145, 145)" in out and "dtype         uint16" in out
    rows = [int(line.split()[0]) for line in out.splitlines() if re.match(r"^\s+\d+\s+\d", line)]
    assert rows == [0, 1, 2, 3, 4, 195, 196, 197, 198, 199]
    assert "... 190 more band(s); --all lists every band" in out
    pixels = np.load(path)
    band_199 = next(line for line in out.splitlines() if re.match(r"^\s+199\s", line)).split()
    assert float(band_199[1]) == pixels[..., 199].min() and float(band_199[2]) == pixels[..., 199].max()
    code, out, _ = run_cli(["info", str(path), "--layout", "HWC", "--all"], capsys)
    assert len([line for line in out.splitlines() if re.match(r"^\s+\d+\s+\d", line)]) == 200


def test_info_with_wavelengths_given_on_the_command_line(tmp_path: Path, capsys) -> None:
    array = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    np.save(tmp_path / "cube.npy", array)
    argv = ["info", str(tmp_path / "cube.npy"), "--layout", "CHW", "--wavelengths", "450,550,650"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert re.search(r"^wavelengths\s+3 bands, 450.0 - 650.0 nm$", out, re.MULTILINE)
    assert re.search(r"^georeference\s+none$", out, re.MULTILINE)
    # band 2 holds 40..59: min 40, max 59, mean 49.5, std of 20 consecutive integers
    row = next(line for line in out.splitlines() if re.match(r"^\s+2\s+650.0\s", line)).split()
    np.testing.assert_allclose([float(v) for v in row[2:6]], [40, 59, 49.5, np.arange(20).std()], rtol=1e-5)


def test_missing_file_is_one_line_exit_2_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_cube.tif"
    result = subprocess.run([str(HSIKIT), "info", str(missing)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hsikit: error: ") and str(missing) in lines[0] and "no such file" in lines[0]
    assert "Traceback" not in result.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "hsikit", "--debug", "info", str(missing)], capture_output=True, text=True, timeout=120
    )
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr and debug.stderr.strip().splitlines()[-1] == lines[0]


def test_view_writes_a_png_of_the_image_size(glacier_tile: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "glacier.png"
    code, out, err = run_cli(["view", str(glacier_tile), "-o", str(output), "--bands", "3", "2", "1"], capsys)
    assert code == 0, err
    assert f"wrote {output} (256 x 256 px; R: band 3, G: band 2, B: band 1)" in out
    png = imread(output)
    assert png.shape[:2] == (256, 256)
    rgb = np.round(png[..., :3] * 255).astype(np.uint8)
    assert rgb.std() > 20 and np.unique(rgb.reshape(-1, 3), axis=0).shape[0] > 1000
    from hsikit.io import open_cube
    from hsikit.viz import composite_rgb

    np.testing.assert_array_equal(rgb, composite_rgb(open_cube(glacier_tile), bands=(3, 2, 1)))
    code, _, _ = run_cli(
        ["view", str(glacier_tile), "-o", str(tmp_path / "big.png"), "--bands", "3", "2", "1",
         "--stretch", "0", "100", "--scale", "2"],
        capsys,
    )
    assert code == 0 and imread(tmp_path / "big.png").shape[:2] == (512, 512)


def test_view_without_wavelengths_asks_for_bands(glacier_tile: Path, tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(["view", str(glacier_tile), "-o", str(tmp_path / "x.png")], capsys)
    assert code == 2 and out == ""
    assert err.startswith("hsikit: error: ") and "--bands R G B" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_datasets_list_and_info(shared_data: Path, capsys) -> None:
    code, out, err = run_cli(["datasets", "list", "--root", str(shared_data)], capsys)
    assert code == 0, err
    assert re.search(r"^indian[-_]pines\s.*\spresent$", out, re.MULTILINE)
    assert out.rstrip().endswith(f"status: files under {shared_data}")
    code, out, err = run_cli(["datasets", "info", "indian_pines"], capsys)
    assert code == 0, err
    assert "Alfalfa" in out and "Stone-Steel-Towers" in out
    code, out, err = run_cli(["datasets", "info", "indian_pinez"], capsys)
    assert code == 2 and "unknown dataset" in err and "indian" in err


def test_datasets_download_verifies_files_already_there(shared_data: Path, tmp_path: Path, capsys) -> None:
    # the files are linked into an empty root: "download" only checks their sha256, no network
    folder = tmp_path / "indian_pines"
    folder.mkdir()
    for source in (shared_data / "indian_pines").iterdir():
        (folder / source.name).symlink_to(source)
    code, out, err = run_cli(["datasets", "download", "indian_pines", "--root", str(tmp_path)], capsys)
    assert code == 0, err
    assert out == f"indian-pines: ready in {tmp_path}\n"


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace hsikit.engine.cli by a module whose main() records its argv."""
    calls: list[list[str]] = []
    module = types.ModuleType("hsikit.engine.cli")

    def fake_main(argv: list[str]) -> int:
        calls.append(argv)
        return 0

    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hsikit.engine.cli", module)
    return calls


def test_engine_commands_are_forwarded_untouched(fake_engine: list[list[str]]) -> None:
    for command in ENGINE_COMMANDS:
        argv = [command, "--config", "configs/x.yaml", "--trainer.max_epochs=1", "--help", "--debug"]
        assert main(argv) == 0
        assert fake_engine[-1] == argv
    assert main(["--debug", "fit", "-c", "a.yaml"]) == 0
    assert fake_engine[-1] == ["fit", "-c", "a.yaml"]


def test_missing_engine_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "hsikit.engine.cli", None)  # makes the import fail
    code, out, err = run_cli(["fit", "--config", "x.yaml"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("hsikit: error: 'hsikit fit' needs the training engine (hsikit.engine.cli)")


def test_usage_errors_and_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["view", "x.tif"])  # -o is required
    assert exit_info.value.code == 2 and "-o/--output" in capsys.readouterr().err
    result = subprocess.run([sys.executable, "-m", "hsikit", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("hsikit ")
