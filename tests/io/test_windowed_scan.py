"""Window-by-window reading of memory-mapped cubes: exact values in any order, windows prepared
ahead of raster scans within their memory budget, mapped pages released after every read."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube, Window
from hsikit.io import CubeReader, open_reader, save_cube
from hsikit.io.common import COSTLY_FAULTS_PER_MIB, MappedWindowCopier, band_runs, true_runs
from hsikit.io.numpy import NpyReader

ROWS, COLS, BANDS = 37, 50, 6


def raster_windows(height: int, width: int, size: tuple[int, int], step: int | None = None) -> list[Window]:
    """Row-major windows of ``size`` (clipped at the right and bottom edges), columns ``step`` apart."""
    rows, cols = size
    step = step or cols
    return [
        Window(row, col, min(rows, height - row), min(cols, width - col))
        for row in range(0, height, rows)
        for col in range(0, width, step)
    ]


@pytest.fixture
def data(rng: np.random.Generator) -> np.ndarray:
    """(6, 37, 50) float32: every axis a different length, so a transposed read cannot pass."""
    return rng.random((BANDS, ROWS, COLS), dtype=np.float32)


def write(data: np.ndarray, folder: Path, kind: str) -> tuple[Path, dict]:
    """Write ``data`` as ENVI (``bsq``/``bil``/``bip``) or ``.npy`` (``chw``/``hwc``); path and open_reader kwargs."""
    if kind in ("bsq", "bil", "bip"):
        return save_cube(Cube(data), folder / f"cube_{kind}.hdr", interleave=kind), {}
    layout = kind.upper()
    return save_cube(Cube(data), folder / f"cube_{kind}.npy", layout=layout), {"layout": layout}


def open_with_budget(path: Path, options: dict, budget: int, **keywords: bool) -> CubeReader:
    """``open_reader`` with ``prefetch_bytes`` set (the readers take it as an attribute too)."""
    reader = open_reader(path, **options, **keywords)
    reader.prefetch_bytes = budget  # type: ignore[attr-defined]
    return reader


def _mapped_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_run_helpers() -> None:
    assert true_runs(np.array([True, True, False, True, False, False, True])) == [(0, 2), (3, 4), (6, 7)]
    assert true_runs(np.zeros(3, dtype=bool)) == []
    # output bands 0..5 read file bands 4, 5, 6, 2, 2, 3; output band 2 is not wanted
    wanted = np.array([True, True, False, True, True, True])
    assert band_runs([4, 5, 6, 2, 2, 3], wanted) == [(0, 2, 4), (3, 4, 2), (4, 6, 2)]


@pytest.mark.parametrize("kind", ["bsq", "bil", "bip", "chw", "hwc"])
@pytest.mark.parametrize("step", [12, 7])  # windows side by side, and overlapping columns
@pytest.mark.parametrize("budget", [0, 2500, 10**8])  # none, a few band planes, everything
def test_raster_scan_equals_numpy_slicing(data: np.ndarray, tmp_path: Path, kind: str, step: int, budget: int) -> None:
    path, options = write(data, tmp_path, kind)
    windows = raster_windows(ROWS, COLS, (8, 12), step)
    last = windows[-1]
    assert (last.height, last.row_off + last.height, last.col_off + last.width) == (5, ROWS, COLS)
    prepared = []
    with open_with_budget(path, options, budget) as reader:
        for window in windows:
            rows, cols = window.slices
            np.testing.assert_array_equal(reader.read_array(window), data[:, rows, cols])
            prepared.append(reader._copier.prepared_bytes)
    assert max(prepared) <= budget
    if kind in ("bsq", "bil", "chw") and budget:
        assert max(prepared) > 0, "a raster scan of a BSQ/BIL/CHW file prepares windows ahead"
    else:
        # BIP/HWC windows share no pages with their neighbours: nothing to gain, nothing prepared
        assert max(prepared) == 0


@pytest.mark.parametrize("kind", ["bsq", "bil", "chw"])
def test_windows_out_of_order_and_mixed_requests(data: np.ndarray, tmp_path: Path, kind: str) -> None:
    path, options = write(data, tmp_path, kind)
    requests: list[tuple[Window, list[int] | None]] = [
        (Window(0, 0, 8, 12), None),
        (Window(0, 12, 8, 12), None),  # a scan starts: the rest of these rows are prepared
        (Window(0, 36, 8, 12), None),  # skips a prepared window
        (Window(0, 12, 8, 12), None),  # goes back to it
        (Window(8, 0, 8, 12), [5, 0, 0]),  # another strip and a band selection with a repeat
        (Window(8, 12, 8, 12), [5, 0, 0]),
        (Window(8, 24, 8, 12), [2, 3]),  # the band selection changes in the middle of a scan
        (Window(8, 36, 8, 14), None),  # the right edge, another width
        (Window(29, 38, 8, 12), None),  # bottom-right corner
        (Window(16, 0, 8, 12), [3, 4, 5]),
        (Window(16, 12, 8, 12), [3, 4, 5]),
        (Window(16, 24, 8, 12), [3, 4, 5]),
        (Window(16, 36, 8, 14), [3, 4, 5]),  # not the predicted (clipped, 12 wide) window
        (Window(0, 0, ROWS, COLS), None),  # the whole image
        (Window(36, 49, 1, 1), [1]),  # the last pixel
    ]
    with open_with_budget(path, options, 3000) as reader:
        for window, bands in requests:
            rows, cols = window.slices
            expected = data[:, rows, cols] if bands is None else data[bands, rows, cols]
            got = reader.read_array(window, bands)
            np.testing.assert_array_equal(got, expected)
            assert got.flags.c_contiguous and got.dtype == np.float32
            got[...] = -1.0  # the caller owns the array: the next reads must not see this
        for window in raster_windows(ROWS, COLS, (8, 12))[::-1]:  # the whole scan backwards
            rows, cols = window.slices
            np.testing.assert_array_equal(reader.read_array(window), data[:, rows, cols])


@pytest.mark.parametrize("kind", ["bsq", "bil"])
def test_prefetch_maps_each_block_once_per_strip(data: np.ndarray, tmp_path: Path, kind: str) -> None:
    """Count the copies from the map (each maps file rows): hand-computed per strip of rows."""
    data = data[:, :36, :48]  # 3 strips of 3 windows of 12 x 16
    path, _ = write(data, tmp_path, kind)
    windows = raster_windows(36, 48, (12, 16))
    plane = 12 * 16 * 4  # bytes of one band of a window
    per_window = BANDS if kind == "bsq" else 1  # BSQ: one step per band; BIL: one step for all bands
    steps = {}
    for budget in (0, 6 * plane, 10**6):
        with open_with_budget(path, {}, budget) as reader:
            for window in windows:
                rows, cols = window.slices
                np.testing.assert_array_equal(reader.read_array(window), data[:, rows, cols])
            steps[budget] = reader._copier.steps
    # Without prefetch every window maps its rows: 9 windows.
    assert steps[0] == 9 * per_window
    # Unlimited: the first strip maps its rows twice (the scan is recognised at its second window,
    # which prepares the third), later strips once (the step is kept from strip to strip).
    assert steps[10**6] == (2 + 1 + 1) * per_window
    if kind == "bsq":
        # 6 planes for 6 bands: 2 windows ahead per band. Strip 1: 6 + 6 (bands 0-5 prepared for
        # window 3) + 0. Strips 2 and 3: 6 (bands 0-2 prepared for windows 2 and 3), then bands
        # 3-5 of window 2 (which prepares them for window 3), then nothing: 6 + 3 + 0.
        assert steps[6 * plane] == 12 + 9 + 9
    else:
        # BIL maps all bands of a block of rows in one step: strips 2 and 3 take a step for
        # window 1 and one for bands 3-5 of window 2.
        assert steps[6 * plane] == 2 + 2 + 2


def test_prepares_ahead_only_while_mapping_is_costly(data: np.ndarray, tmp_path: Path) -> None:
    path, _ = write(data, tmp_path, "bsq")
    windows = raster_windows(ROWS, COLS, (8, 12))
    with open_with_budget(path, {}, 10**6) as reader:
        copier = reader._copier
        # as if the last large copy had found the pages mapped 2 MB at a time (large page-cache folios)
        copier.faults_per_mib = COSTLY_FAULTS_PER_MIB / 4
        for window in windows:
            rows, cols = window.slices
            np.testing.assert_array_equal(reader.read_array(window), data[:, rows, cols])
            assert copier.prepared_bytes == 0
        assert copier.steps == len(windows) * BANDS  # every window maps its own rows
        copier.faults_per_mib = COSTLY_FAULTS_PER_MIB * 2  # 4 KB pages: re-mapping is costly
        prepared = 0
        for window in windows:
            rows, cols = window.slices
            np.testing.assert_array_equal(reader.read_array(window), data[:, rows, cols])
            prepared = max(prepared, copier.prepared_bytes)
        assert prepared > 0  # (the copies of this small file map too little to be measured)
        assert copier.faults_per_mib == COSTLY_FAULTS_PER_MIB * 2


def test_page_faults_are_measured_on_large_copies(tmp_path: Path, rng: np.random.Generator) -> None:
    cube = rng.random((2, 1024, 1024), dtype=np.float32)  # 8 MiB
    save_cube(Cube(cube), tmp_path / "big.hdr")
    with open_reader(tmp_path / "big.hdr") as reader:
        assert reader._copier.faults_per_mib == float("inf")  # nothing measured: assumed costly
        # 2 bands x 1000 rows of 4 KB: under MEASURED_BYTES (a narrow window maps whole rows all the same)
        np.testing.assert_array_equal(reader.read_array(Window(0, 0, 1000, 10)), cube[:, :1000, :10])
        assert reader._copier.faults_per_mib == float("inf")
        np.testing.assert_array_equal(reader.read_array(Window(0, 0, 1024, 3), [1, 0]), cube[::-1, :, :3])
        rate = reader._copier.faults_per_mib
        # 8 MiB of rows: measured. Mapping them takes at least 4 faults (2 MB at a time) and at most
        # one per 4 KB page (pages still being written back are not mapped in batches)
        assert 0.5 <= rate <= 256 + 1


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
@pytest.mark.parametrize("interleave", ["bsq", "bil"])
def test_scan_keeps_no_mapped_pages_and_stays_within_budget(
    tmp_path: Path, rng: np.random.Generator, interleave: str
) -> None:
    cube = rng.random((6, 256, 640), dtype=np.float32)  # 3.9 MB; windows of 64 x 96 share file pages
    save_cube(Cube(cube), tmp_path / "s.hdr", interleave=interleave)
    data_file = (tmp_path / "s.img").resolve()
    budget = 128 * 1024
    most = 0
    with open_with_budget(tmp_path / "s.hdr", {}, budget) as reader:
        for window in raster_windows(256, 640, (64, 96)):
            rows, cols = window.slices
            np.testing.assert_array_equal(reader.read_array(window), cube[:, rows, cols])
            assert _mapped_kb(data_file) == 0  # every page released after the copy
            most = max(most, reader._copier.prepared_bytes)
    assert 0 < most <= budget
    with open_reader(tmp_path / "s.hdr", release_pages=False) as keeping:
        for window in raster_windows(256, 640, (64, 96))[:7]:
            keeping.read_array(window)
        assert keeping._copier.prepared_bytes == 0  # with the pages kept there is nothing to save
        assert _mapped_kb(data_file) >= 6 * 64 * 640 * 4 // 1024  # a strip's pages stay resident


def test_npy_reader_prefetch_argument(data: np.ndarray, tmp_path: Path) -> None:
    path, _ = write(data, tmp_path, "chw")
    for budget, expect_prepared in ((0, False), (4000, True)):
        reader = NpyReader(path, "CHW", prefetch_bytes=budget)
        prepared = 0
        for window in raster_windows(ROWS, COLS, (8, 12)):
            rows, cols = window.slices
            np.testing.assert_array_equal(reader.read_array(window), data[:, rows, cols])
            prepared = max(prepared, reader._copier.prepared_bytes)
        reader.close()
        assert (prepared > 0) == expect_prepared and prepared <= budget


def test_reads_from_several_threads(data: np.ndarray, tmp_path: Path) -> None:
    path, _ = write(data, tmp_path, "bsq")
    windows = raster_windows(ROWS, COLS, (8, 12), 5)
    failures: list[str] = []
    with open_with_budget(path, {}, 4000) as reader:

        def scan(order: list[Window]) -> None:
            for window in order:
                rows, cols = window.slices
                if not np.array_equal(reader.read_array(window), data[:, rows, cols]):
                    failures.append(str(window))

        threads = [threading.Thread(target=scan, args=(order,)) for order in (windows, windows[::-1], windows)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_copier_on_a_big_endian_map(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.random((3, 10, 40)).astype(">f8")
    values.tofile(tmp_path / "be.raw")
    mapped = np.memmap(tmp_path / "be.raw", dtype=">f8", mode="r", shape=values.shape)
    copier = MappedWindowCopier(mapped, mapped)
    prepared = []
    for col in range(0, 40, 9):
        window = copier.read(slice(2, 9), slice(col, min(col + 9, 40)), [2, 0])
        assert window.dtype == np.float64 and window.dtype.isnative
        np.testing.assert_array_equal(window, values[[2, 0], 2:9, col : col + 9])
        prepared.append(copier.prepared_bytes)
    # The second read reveals the scan and prepares the rest of the rows: windows at columns 18 and
    # 27 (2 bands x 7 x 9 float64 = 1008 bytes each) and the last, 4 columns wide (448 bytes).
    assert prepared == [0, 2 * 1008 + 448, 1008 + 448, 448, 0]
    copier.read(slice(2, 9), slice(0, 9), [2, 0])
    copier.read(slice(2, 9), slice(9, 18), [2, 0])
    assert copier.prepared_bytes > 0
    copier.clear()
    assert copier.prepared_bytes == 0


def test_real_scene_raster_scan(shared_data: Path, tmp_path: Path) -> None:
    """Indian Pines (145 x 145 x 200, HWC) as ENVI BSQ and BIL, scanned in 32 x 32 windows."""
    scene = np.load(shared_data / "indian_pines" / "Indian_pines_corrected.npy")
    chw = np.ascontiguousarray(np.moveaxis(scene, -1, 0)).astype(np.float32)
    assert chw.shape == (200, 145, 145)
    for interleave in ("bsq", "bil"):
        path = save_cube(Cube(chw), tmp_path / f"ip_{interleave}.hdr", interleave=interleave)
        with open_with_budget(path, {}, 2 * 200 * 32 * 32 * 4) as reader:
            prepared = 0
            for window in raster_windows(145, 145, (32, 32)):
                rows, cols = window.slices
                np.testing.assert_array_equal(reader.read_array(window), chw[:, rows, cols])
                prepared = max(prepared, reader._copier.prepared_bytes)
            assert 0 < prepared <= 2 * 200 * 32 * 32 * 4
            corner = reader.read_array(Window(144, 144, 1, 1))[:, 0, 0]
            np.testing.assert_array_equal(corner, scene[144, 144].astype(np.float32))


def test_open_reader_passes_the_prefetch_budget(tmp_path) -> None:
    from hsikit import Cube
    from hsikit.io import open_reader, save_cube

    path = save_cube(Cube(np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)), tmp_path / "cube.hdr")
    with open_reader(path, prefetch_bytes=0) as reader:
        assert reader.prefetch_bytes == 0
    with open_reader(path) as reader:
        assert reader.prefetch_bytes > 0
