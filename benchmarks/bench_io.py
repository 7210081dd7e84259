"""Throughput and memory of hsikit's cube readers on a large synthetic cube (not a test).

Writes one synthetic float32 cube (default 2 GB) as ENVI BSQ, ENVI BIL and a tiled
GeoTIFF (512 x 512 tiles, band-interleaved, uncompressed), then reads each file

* whole (``CubeReader.read_array()``: the full ``(bands, H, W)`` array in memory), and
* window by window (512 x 512 windows, all bands, row-major order) with the default
  settings: mapped pages released after each step, the next windows of a strip of rows
  prepared ahead within ``prefetch_bytes`` (256 MiB); for ENVI also without preparing
  windows ahead (``reader.prefetch_bytes = 0``, "windowed-no-prefetch", the behaviour
  before the prefetch) and keeping every page mapped (``open_reader(..., release_pages=False)``,
  "windowed-keep"),

and compares the throughput with a raw ``numpy.memmap`` read of the same bytes done in
the same run (ratio = hsikit MB/s / raw MB/s, so 1.0 means "as fast as numpy alone"):

* whole: ``numpy.array(numpy.memmap(file))``, a copy of every byte of the file;
* windowed, ENVI: the same 512 x 512 windows sliced from a ``numpy.memmap`` of the data file
  in its own axis order (``[:, rows, cols]`` for BSQ, ``[rows, :, cols]`` for BIL) and copied;
* windowed, GeoTIFF: the file's bytes copied in runs of one window's size (a window of a tiled,
  band-interleaved file is one contiguous tile per band).

The raw windowed read keeps every page it touched mapped (its resident size grows to the
file size); hsikit's readers release pages as they go so that their peak stays bounded.
Wall-clock time moves with the other processes on a shared machine, so the ratio of the
process CPU time (user + system, the page faults included) is reported as well
(``ratio_to_raw_cpu``). Every measurement runs in its own child process, so the peak resident memory it reports
belongs to that case alone. The peak is the kernel's high-water mark of the child's own
address space (``VmHWM`` in ``/proc/self/status``): ``getrusage().ru_maxrss`` is not used on
Linux because it keeps the parent's peak across ``fork``/``exec``. Each case is measured
``--repeat`` times (fresh process each time, the cases of a file round-robin so that a change
of load hits them alike); the fastest run is reported, as is usual for throughput on a shared
machine, and the least CPU time apart. Before it is timed, each child touches and frees the
memory a case may need (``--prefault-mb``, see :func:`prefault`) and then resets its peak RSS.

Reads are from a warm page cache by default, which isolates the reader's own cost; ``--cold``
evicts the file from the cache before each run (``posix_fadvise(DONTNEED)``), which measures
the disk as well. How the cached file is laid out in memory matters as much as whether it is
cached: mapping a page of a memory map costs a page fault, and a page-cache "folio" of 2 MB
is mapped at once where 4 KB pages are mapped 16 at a time (fault-around). The kernel builds
large folios when it reads a file ahead (``read()``), 4 KB ones when readahead is off or a file
is first read through a scattered memory map. So ``--page-cache`` puts each file in a known
state before it is measured (the file is written back, evicted, then read again):

* ``small``: read back with readahead off (``POSIX_FADV_RANDOM``): 4 KB pages, the costly case;
* ``large``: read back sequentially: large folios;
* ``as-written``: left as the writer left it (whatever the kernel chose; not reproducible).

The raw windowed run reports the share of the file it found mapped by 2 MB entries
(``pmd_mapped_share``, from ``/proc/self/smaps``) and every run its page faults.

Usage::

    python benchmarks/bench_io.py                 # 2 GB, results in benchmarks/results/bench_io.json
    python benchmarks/bench_io.py --size-gb 0.1   # quick run
    python benchmarks/bench_io.py --page-cache large
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.io.common import MAPPED_BYTES, PREFETCH_BYTES

RESULTS = Path(__file__).resolve().parent / "results" / "bench_io.json"
FORMATS = {"envi-bsq": "cube_bsq.img", "envi-bil": "cube_bil.img", "geotiff": "cube.tif"}


# ---------------------------------------------------------------------- machine
def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    import rasterio

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": None if ram is None else round(ram / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }


# ---------------------------------------------------------------------- writing
def write_inputs(folder: Path, shape: tuple[int, int, int], block_rows: int) -> dict[str, float]:
    """Write the synthetic cube in all formats at once (one pass over generated blocks); seconds per format."""
    from hsikit import Window
    from hsikit.io import create_writer

    bands, height, width = shape
    transform = (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
    wavelengths = np.linspace(400.0, 2500.0, bands)
    writers = {
        "envi-bsq": create_writer(folder / FORMATS["envi-bsq"], shape, np.float32, interleave="bsq",
                                  crs="EPSG:32633", transform=transform, wavelengths=wavelengths),
        "envi-bil": create_writer(folder / FORMATS["envi-bil"], shape, np.float32, interleave="bil",
                                  crs="EPSG:32633", transform=transform, wavelengths=wavelengths),
        "geotiff": create_writer(folder / FORMATS["geotiff"], shape, np.float32, blocksize=512,
                                 crs="EPSG:32633", transform=transform, wavelengths=wavelengths),
    }
    seconds = dict.fromkeys(writers, 0.0)
    rng = np.random.default_rng(0)
    for start in range(0, height, block_rows):
        rows = min(block_rows, height - start)
        block = rng.random((bands, rows, width), dtype=np.float32)
        for name, writer in writers.items():
            began = time.perf_counter()
            writer.write_window(block, Window(start, 0, rows, width))
            seconds[name] += time.perf_counter() - began
    for name, writer in writers.items():
        began = time.perf_counter()
        writer.close()
        seconds[name] += time.perf_counter() - began
    return seconds


# ---------------------------------------------------------------------- child measurements
def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (VmHWM on Linux, ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux kilobytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / (1024 if scale == 1 else 1)


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (the next read comes from disk)."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())  # dirty pages cannot be dropped
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def fill_page_cache(path: Path, state: str) -> None:
    """Put the whole file in the page cache in ``state`` (see the module docstring)."""
    if state == "as-written":
        warm(path)
        return
    evict(path)
    with open(path, "rb", buffering=0) as handle:
        advice = os.POSIX_FADV_RANDOM if state == "small" else os.POSIX_FADV_SEQUENTIAL
        os.posix_fadvise(handle.fileno(), 0, 0, advice)
        while handle.read(64 << 20):
            pass


def pmd_mapped_share(path: Path) -> float | None:
    """Share of this process's resident mapping of ``path`` mapped by 2 MB entries (Linux), else None."""
    resident = pmd = 0
    inside = False
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # the header line of a mapping
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            resident += int(line.split()[1])
        elif inside and line.startswith("FilePmdMapped:"):
            pmd += int(line.split()[1])
    return round(pmd / resident, 3) if resident else None


def prefault(nbytes: int) -> bool:
    """Touch ``nbytes`` of fresh memory and free it again, then reset this process's peak RSS.

    Memory that a virtual machine's host has taken back (free page reporting, balloons) costs a
    host page fault per page when touched again: on the development VM, allocating 2 GB right
    after a pause took 2-4 s of CPU time instead of 0.6 s. Touching the memory a case will need
    before timing it takes that cost, which belongs to the machine and not to the reader, out
    of every case alike. Returns False (and touches nothing) where the peak cannot be reset.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    block = np.empty(nbytes, dtype=np.uint8)
    block[:: 4096] = 1
    del block
    Path("/proc/self/clear_refs").write_text("5")
    return True


def page_faults() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt + usage.ru_majflt


def windows(height: int, width: int, size: int) -> list[tuple[int, int, int, int]]:
    return [
        (row, col, min(size, height - row), min(size, width - col))
        for row in range(0, height, size)
        for col in range(0, width, size)
    ]


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement, run in a fresh process; returns seconds, bytes read, peak RSS."""
    from hsikit import Window
    from hsikit.io import open_reader

    # Library imports are a one-off cost of the process, not of reading: do them before timing.
    import rasterio  # noqa: F401
    import spectral.io.envi  # noqa: F401

    path = Path(spec["path"])
    mode = spec["mode"]
    prefaulted = spec["prefault_bytes"] > 0 and prefault(spec["prefault_bytes"])
    if spec["cold"]:
        evict(path)
    rss_before = peak_rss_mb()
    checksum = 0.0
    pmd_share = None
    faults_before = page_faults()
    cpu_began = time.process_time()
    began = time.perf_counter()
    if mode == "raw-whole":
        mapped = np.memmap(path, dtype=np.uint8, mode="r")
        data = np.array(mapped)
        checksum = float(data[:: 1 << 20].sum())
        nbytes = data.nbytes
    elif mode == "raw-windowed" and spec["layout"] is not None:
        # The same windows through a plain numpy.memmap in the file's own axis order.
        bands, height, width = spec["shape"]
        order = {"bsq": (bands, height, width), "bil": (height, bands, width)}[spec["layout"]]
        mapped = np.memmap(path, dtype=np.float32, mode="r", shape=order)
        nbytes = 0
        for row, col, rows, cols in windows(height, width, spec["window"]):
            if spec["layout"] == "bsq":
                piece = np.array(mapped[:, row : row + rows, col : col + cols])
            else:
                piece = np.array(mapped[row : row + rows, :, col : col + cols])
            nbytes += piece.nbytes
            checksum += float(piece[::64, ::64].sum())
        pmd_share = pmd_mapped_share(path.resolve())
    elif mode == "raw-windowed":
        # GeoTIFF: a window is one tile per band, each a contiguous run of bytes; read the file
        # in runs of a window's size.
        mapped = np.memmap(path, dtype=np.uint8, mode="r")
        nbytes = mapped.size
        chunk = spec["window_bytes"]
        for start in range(0, nbytes, chunk):
            piece = np.array(mapped[start : start + chunk])
            checksum += float(piece[:: 1 << 16].sum())
    elif mode == "whole":
        with open_reader(path) as reader:
            data = reader.read_array()
        checksum = float(data[:, ::64, ::64].sum())
        nbytes = data.nbytes
    elif mode in ("windowed", "windowed-no-prefetch", "windowed-keep"):
        nbytes = 0
        with open_reader(path, release_pages=mode != "windowed-keep") as reader:
            if mode == "windowed-no-prefetch":
                reader.prefetch_bytes = 0  # type: ignore[attr-defined]
            for row, col, height, width in windows(reader.height, reader.width, spec["window"]):
                data = reader.read_array(Window(row, col, height, width))
                nbytes += data.nbytes
                checksum += float(data[:, ::64, ::64].sum())
                del data
    else:
        raise ValueError(mode)
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    faults = page_faults() - faults_before
    peak = peak_rss_mb()
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "bytes": int(nbytes), "peak_rss_mb": peak,
            "rss_before_mb": rss_before, "checksum": checksum, "page_faults": faults, "pmd_mapped_share": pmd_share,
            "prefaulted": prefaulted}


def run_child(spec: dict[str, Any], gdal_cachemax_mb: int) -> dict[str, Any]:
    """One measurement in a fresh process."""
    env = dict(os.environ, GDAL_CACHEMAX=str(gdal_cachemax_mb))
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {spec} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_all(specs: dict[str, dict[str, Any]], gdal_cachemax_mb: int, repeat: int) -> dict[str, dict[str, Any]]:
    """Run every case ``repeat`` times, round-robin (so a change of load on a shared machine hits
    every case alike), each run in a fresh process. Per case: the fastest run, the least CPU time,
    the largest peak RSS."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in specs}
    for _ in range(repeat):
        for mode, spec in specs.items():
            runs[mode].append(run_child(spec, gdal_cachemax_mb))
    summary = {}
    for mode, mode_runs in runs.items():
        best = min(mode_runs, key=lambda run: run["seconds"])
        summary[mode] = {
            **best,
            "cpu_seconds": min(run["cpu_seconds"] for run in mode_runs),
            "peak_rss_mb": max(run["peak_rss_mb"] for run in mode_runs),
            "all_seconds": [run["seconds"] for run in mode_runs],
            "all_cpu_seconds": [run["cpu_seconds"] for run in mode_runs],
        }
    return summary


def warm(path: Path) -> None:
    with open(path, "rb") as handle:
        while handle.read(64 << 20):
            pass


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="size of the synthetic cube (GB, 1e9 bytes)")
    parser.add_argument("--bands", type=int, default=128)
    parser.add_argument("--window", type=int, default=512, help="side of the read windows in pixels")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where the temporary files go")
    parser.add_argument("--cold", action="store_true", help="evict each file from the page cache before reading")
    parser.add_argument("--page-cache", default="small", help="state(s) of the warm page cache, comma-separated: "
                        "small (4 KB pages), large (large folios), as-written (see the module docstring)")
    parser.add_argument("--prefault-mb", type=float, default=None, help="memory each run touches and frees before "
                        "it is timed (MB; default: the file size + 512; 0: none), see prefault()")
    parser.add_argument("--gdal-cachemax", type=int, default=64, help="GDAL block cache for the readers (MB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (fastest reported)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    side = math.ceil(math.sqrt(args.size_gb * 1e9 / (args.bands * 4)))  # at least --size-gb
    shape = (args.bands, side, side)
    nbytes = args.bands * side * side * 4
    folder = Path(tempfile.mkdtemp(prefix="hsikit-bench-io-", dir=args.workdir))
    free = shutil.disk_usage(folder).free
    if free < 3.5 * nbytes:
        raise SystemExit(f"{folder}: {free / 1e9:.1f} GB free, the benchmark needs {3.5 * nbytes / 1e9:.1f} GB")
    print(f"cube {shape} float32 = {nbytes / 1e9:.2f} GB in {folder}", flush=True)
    rows: list[dict[str, Any]] = []
    prefault_bytes = int((nbytes / 1e6 + 512 if args.prefault_mb is None else args.prefault_mb) * 1e6)
    try:
        write_seconds = write_inputs(folder, shape, block_rows=256)
        window_bytes = args.bands * args.window * args.window * 4
        states = [state.strip() for state in args.page_cache.split(",")] if not args.cold else ["cold"]
        for state in states:
            if state not in ("small", "large", "as-written", "cold"):
                raise SystemExit(f"--page-cache: unknown state {state!r} (small, large, as-written)")
            for name, file_name in FORMATS.items():
                path = folder / file_name
                if state != "cold":
                    fill_page_cache(path, state)
                layout = {"envi-bsq": "bsq", "envi-bil": "bil"}.get(name)
                common = {"path": str(path), "cold": args.cold, "window": args.window, "window_bytes": window_bytes,
                          "layout": layout, "shape": list(shape), "prefault_bytes": prefault_bytes}
                cases = [("whole", "raw-whole"), ("windowed", "raw-windowed")]
                if layout is not None:  # memory-mapped ENVI: without prefetch, and with every page kept mapped
                    cases += [("windowed-no-prefetch", "raw-windowed"), ("windowed-keep", "raw-windowed")]
                modes = list(dict.fromkeys(mode for case in cases for mode in (case[1], case[0])))
                results = measure_all({mode: {**common, "mode": mode} for mode in modes}, args.gdal_cachemax,
                                      args.repeat)
                for read, baseline in cases:
                    raw, ours = results[baseline], results[read]
                    rows.append({
                        "format": name,
                        "read": read,
                        "page_cache": state,
                        "bytes": ours["bytes"],
                        "seconds": round(ours["seconds"], 3),
                        "throughput_mb_s": round(ours["bytes"] / ours["seconds"] / 1e6, 1),
                        "raw_seconds": round(raw["seconds"], 3),
                        "raw_throughput_mb_s": round(raw["bytes"] / raw["seconds"] / 1e6, 1),
                        "ratio_to_raw": round((ours["bytes"] / ours["seconds"]) / (raw["bytes"] / raw["seconds"]), 3),
                        "cpu_seconds": round(ours["cpu_seconds"], 3),
                        "raw_cpu_seconds": round(raw["cpu_seconds"], 3),
                        "ratio_to_raw_cpu": round(
                            (ours["bytes"] / ours["cpu_seconds"]) / (raw["bytes"] / raw["cpu_seconds"]), 3
                        ),
                        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
                        "rss_after_imports_mb": round(ours["rss_before_mb"], 1),
                        "raw_peak_rss_mb": round(raw["peak_rss_mb"], 1),
                        "page_faults": ours["page_faults"],
                        "raw_page_faults": raw["page_faults"],
                        "raw_pmd_mapped_share": raw["pmd_mapped_share"],
                        "all_seconds": [round(v, 3) for v in ours["all_seconds"]],
                        "raw_all_seconds": [round(v, 3) for v in raw["all_seconds"]],
                        "all_cpu_seconds": [round(v, 3) for v in ours["all_cpu_seconds"]],
                        "raw_all_cpu_seconds": [round(v, 3) for v in raw["all_cpu_seconds"]],
                        "write_seconds": round(write_seconds[name], 2),
                        "prefaulted": ours["prefaulted"] and raw["prefaulted"],
                    })
                print(f"  {state:10s} {name:9s} done", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    header = (f"{'cache':11s}{'format':10s}{'read':22s}{'MB/s':>8s}{'raw MB/s':>10s}{'ratio':>7s}{'ratio(cpu)':>12s}"
              f"{'peak RSS MB':>13s}{'faults':>9s}{'raw faults':>12s}")
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        print(f"{row['page_cache']:11s}{row['format']:10s}{row['read']:22s}{row['throughput_mb_s']:8.0f}"
              f"{row['raw_throughput_mb_s']:10.0f}{row['ratio_to_raw']:7.2f}{row['ratio_to_raw_cpu']:12.2f}"
              f"{row['peak_rss_mb']:13.0f}{row['page_faults']:9d}{row['raw_page_faults']:12d}")
    report = {
        "benchmark": "bench_io",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "input": {"shape": list(shape), "dtype": "float32", "bytes": nbytes, "size_gb": round(nbytes / 1e9, 3),
                  "window": args.window, "page_cache": "cold" if args.cold else args.page_cache, "repeat": args.repeat,
                  "gdal_cachemax_mb": args.gdal_cachemax, "prefetch_bytes": PREFETCH_BYTES, "mapped_bytes": MAPPED_BYTES,
                  "prefault_bytes": prefault_bytes,
                  "geotiff": "tiled 512x512, band-interleaved, uncompressed"},
        "results": rows,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {output}")


if __name__ == "__main__":
    main()
