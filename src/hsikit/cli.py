"""The ``hsikit`` command line.

Subcommands::

    hsikit info FILE [--key K] [--layout L] [--wavelengths CSV] [--all] [--json]
    hsikit view FILE -o out.png [--bands R G B | --wavelengths R G B] [--stretch 2 98]
    hsikit datasets list | info NAME | download NAME [--root DIR]
    hsikit demo [--output DIR] [--offline]
    hsikit fit | validate | test | predict ...   (the training engine, hsikit.engine.cli)

Every :class:`~hsikit.errors.HsikitError` ends the program with one line,
``hsikit: error: <message>``, on stderr and exit status 2; ``--debug`` (or
``HSIKIT_DEBUG=1``) prints the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hsikit import __version__
from hsikit.cube import Cube
from hsikit.errors import DataFileNotFoundError, HsikitError

#: Subcommands handled by the training engine; their arguments are passed on untouched.
ENGINE_COMMANDS = ("fit", "validate", "test", "predict")

#: Without ``--all``, ``info`` lists this many bands at each end of the band list.
INFO_EDGE_BANDS = 5

# Per-band statistics of a cube with at least this many bands show a progress bar
# (on a terminal only: tqdm hides itself when stderr is not a TTY).
_PROGRESS_MIN_BANDS = 32

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


# ============================================================================ cube info
def _crs_details(crs: str) -> dict[str, Any]:
    """EPSG code, name and linear unit of a CRS string (as much as pyproj can tell)."""
    details: dict[str, Any] = {"crs": crs, "epsg": None, "name": None, "unit": None}
    try:
        import pyproj

        parsed = pyproj.CRS.from_user_input(crs)
    except Exception:  # noqa: BLE001 - an unparsable CRS is still printed as given
        return details
    epsg = parsed.to_epsg()
    details["epsg"] = epsg
    details["name"] = parsed.name
    if epsg is not None:
        details["crs"] = f"EPSG:{epsg}"
    if parsed.axis_info:
        details["unit"] = parsed.axis_info[0].unit_name
    return details


def _georeference(cube: Cube) -> dict[str, Any] | None:
    if cube.crs is None and cube.transform is None:
        return None
    info: dict[str, Any] = {"crs": None, "epsg": None, "name": None, "unit": None}
    if cube.crs is not None:
        info.update(_crs_details(cube.crs))
    transform = cube.transform
    if transform is not None:
        pixel_width = math.hypot(transform.a, transform.d)
        pixel_height = math.hypot(transform.b, transform.e)
        corner_pixels = ((0, 0), (cube.width, 0), (0, cube.height), (cube.width, cube.height))
        corners = [transform @ (col, row) for col, row in corner_pixels]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        info["pixel_size"] = [pixel_width, pixel_height]
        info["rotated"] = bool(transform.b != 0 or transform.d != 0)
        info["bounds"] = {"left": min(xs), "bottom": min(ys), "right": max(xs), "top": max(ys)}
        info["transform"] = list(transform)[:6]
    return info


def _band_statistics(cube: Cube, bands: Sequence[int]) -> list[dict[str, Any]]:
    """min/max/mean/std over the valid, finite pixels of each band in ``bands``."""
    from tqdm.auto import tqdm

    valid = cube.valid_mask
    rows = []
    progress = tqdm(
        bands, desc="band statistics", unit="band", leave=False, file=sys.stderr,
        disable=None if len(bands) >= _PROGRESS_MIN_BANDS else True,
    )
    for band in progress:
        values = np.asarray(cube.data[band], dtype=np.float64)[valid]
        values = values[np.isfinite(values)]
        row: dict[str, Any] = {
            "index": int(band),
            "wavelength_nm": None if cube.wavelengths is None else float(cube.wavelengths[band]),
            "name": None if cube.band_names is None else cube.band_names[band],
            "valid_pixels": int(values.size),
        }
        if values.size:
            row.update(
                min=float(values.min()), max=float(values.max()), mean=float(values.mean()), std=float(values.std())
            )
        else:
            row.update(min=None, max=None, mean=None, std=None)
        rows.append(row)
    return rows


def shown_band_indices(bands: int, all_bands: bool = False, edge: int = INFO_EDGE_BANDS) -> list[int]:
    """Band indices listed by ``info``: all of them, or the first and last ``edge``."""
    if all_bands or bands <= 2 * edge + 2:
        return list(range(bands))
    return list(range(edge)) + list(range(bands - edge, bands))


def cube_info(cube: Cube, all_bands: bool = True) -> dict[str, Any]:
    """Everything ``hsikit info`` reports, as a JSON-friendly dictionary.

    Keys: ``file``, ``shape`` (bands, H, W), ``dtype``, ``wavelengths`` (count,
    range and FWHM range in nm, or None), ``georeference`` (CRS, EPSG, pixel size,
    bounds, or None), ``nodata``, ``masked_pixels``, ``band_statistics`` (one row
    per band listed: all bands, or the first and last few when ``all_bands`` is False).
    """
    wavelengths = None
    if cube.wavelengths is not None:
        wavelengths = {
            "count": int(cube.wavelengths.size),
            "min_nm": float(cube.wavelengths.min()),
            "max_nm": float(cube.wavelengths.max()),
            "fwhm_min_nm": None if cube.fwhm is None else float(cube.fwhm.min()),
            "fwhm_max_nm": None if cube.fwhm is None else float(cube.fwhm.max()),
        }
    return {
        "file": cube.metadata.get("source"),
        "shape": list(cube.shape),
        "dtype": str(cube.dtype),
        "wavelengths": wavelengths,
        "georeference": _georeference(cube),
        "nodata": cube.nodata,
        "masked_pixels": int(cube.nodata_mask.sum()),
        "band_statistics": _band_statistics(cube, shown_band_indices(cube.bands, all_bands)),
    }


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _coordinate(value: float) -> str:
    """A map coordinate with at most 6 decimals and no trailing zeros (186554.999999999 -> 186555)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _unit_symbol(unit: str | None) -> str:
    symbols = {"metre": "m", "meter": "m", "degree": "°", "foot": "ft", "US survey foot": "US ft"}
    return "" if unit is None else symbols.get(unit, unit)


def format_cube_info(info: dict[str, Any]) -> str:
    """The text ``hsikit info`` prints for ``info`` (a :func:`cube_info` dictionary)."""
    bands, height, width = info["shape"]
    lines = []
    if info["file"]:
        lines.append(f"file          {info['file']}")
    lines.append(f"shape         ({bands}, {height}, {width})  (bands, H, W): {bands} bands, {height} x {width} pixels")
    lines.append(f"dtype         {info['dtype']}")
    wavelengths = info["wavelengths"]
    if wavelengths is None:
        lines.append("wavelengths   none")
    else:
        text = f"{wavelengths['count']} bands, {wavelengths['min_nm']:.1f} - {wavelengths['max_nm']:.1f} nm"
        if wavelengths["fwhm_min_nm"] is not None:
            text += f"; FWHM {wavelengths['fwhm_min_nm']:.2f} - {wavelengths['fwhm_max_nm']:.2f} nm"
        lines.append(f"wavelengths   {text}")
    geo = info["georeference"]
    if geo is None:
        lines.append("georeference  none")
    else:
        crs = geo["crs"] or "none"
        if geo["name"]:
            crs += f" ({geo['name']})"
        lines.append(f"georeference  CRS {crs}")
        if "pixel_size" in geo:
            unit = _unit_symbol(geo["unit"])
            size_x, size_y = geo["pixel_size"]
            rotated = " (rotated grid)" if geo["rotated"] else ""
            lines.append(f"  pixel size  {size_x:g} x {size_y:g} {unit}{rotated}".rstrip())
            bounds = geo["bounds"]
            lines.append(
                f"  bounds      left {_coordinate(bounds['left'])}, bottom {_coordinate(bounds['bottom'])}, "
                f"right {_coordinate(bounds['right'])}, top {_coordinate(bounds['top'])}"
            )
        else:
            lines.append("  transform   none (no pixel size or bounds)")
    nodata = "none" if info["nodata"] is None else f"{info['nodata']:g}"
    lines.append(f"nodata        {nodata}; {info['masked_pixels']} masked pixel(s)")
    rows = info["band_statistics"]
    lines.append("band statistics over valid pixels:")
    has_wavelengths = any(row["wavelength_nm"] is not None for row in rows)
    has_names = any(row["name"] for row in rows)
    header = ["band"] + (["nm"] if has_wavelengths else []) + (["name"] if has_names else [])
    header += ["min", "max", "mean", "std"]
    table = [header]
    for row in rows:
        cells = [str(row["index"])]
        if has_wavelengths:
            cells.append(f"{row['wavelength_nm']:.1f}")
        if has_names:
            cells.append(str(row["name"] or ""))
        cells += [_number(row[key]) for key in ("min", "max", "mean", "std")]
        table.append(cells)
    widths = [max(len(cells[i]) for cells in table) for i in range(len(header))]
    rendered = ["  " + "  ".join(cell.rjust(widths[i]) for i, cell in enumerate(cells)) for cells in table]
    shown = [row["index"] for row in rows]
    if len(shown) < bands:
        omitted = bands - len(shown)
        first_jump = next(i for i in range(1, len(shown)) if shown[i] != shown[i - 1] + 1)
        rendered.insert(1 + first_jump, f"  ... {omitted} more band(s); --all lists every band")  # 1: header row
    lines += rendered
    return "\n".join(lines)


def describe_cube(cube: Cube, all_bands: bool = False) -> str:
    """The ``hsikit info`` text of a cube (used by the demo too)."""
    return format_cube_info(cube_info(cube, all_bands))


# ============================================================================ helpers
def _parse_wavelength_source(text: str | None) -> Any:
    """A ``--wavelengths`` value: a table file path, or a comma-separated list of numbers (nm)."""
    if text is None:
        return None
    if not Path(text).exists() and "," in text:
        try:
            return [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            pass
    return text


def open_cube_for_cli(path: str, key: str | None, layout: str, wavelengths: str | None) -> Cube:
    """Open ``path`` with :func:`hsikit.io.open_cube`, refusing a missing file with a one-line error."""
    if not Path(path).exists():
        raise DataFileNotFoundError(path, "check the path (it is relative to the current folder)")
    from hsikit.io import open_cube

    kwargs: dict[str, Any] = {"key": key, "layout": layout}
    wavelength_source = _parse_wavelength_source(wavelengths)
    if wavelength_source is not None:
        kwargs["wavelengths"] = wavelength_source
    cube = open_cube(path, **kwargs)
    cube.metadata.setdefault("source", str(path))
    return cube


def _add_open_arguments(parser: argparse.ArgumentParser, wavelength_flag: str) -> None:
    parser.add_argument("file", help="cube file (.tif, .hdr/.img, .mat, .npy, .h5 ...)")
    parser.add_argument("--key", help="array name inside a .mat/.h5/.npz file (default: the only cube-like one)")
    parser.add_argument(
        "--layout", default="auto", help="axis order of the stored array: auto (format default), CHW, HWC or WHC"
    )
    parser.add_argument(
        wavelength_flag, dest="wavelength_file", metavar="CSV",
        help="band centres in nm: a table file (CSV/.spc) or a comma-separated list",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


# ============================================================================ commands
def _command_info(args: argparse.Namespace, out: TextIO) -> int:
    cube = open_cube_for_cli(args.file, args.key, args.layout, args.wavelength_file)
    if args.json:
        info = cube_info(cube, all_bands=True)
        info["wavelengths_nm"] = None if cube.wavelengths is None else cube.wavelengths.tolist()
        info["fwhm_nm"] = None if cube.fwhm is None else cube.fwhm.tolist()
        json.dump(_json_safe(info), out, indent=2, allow_nan=False)
        out.write("\n")
    else:
        out.write(format_cube_info(cube_info(cube, all_bands=args.all)) + "\n")
    return EXIT_OK


def _json_safe(value: Any) -> Any:
    """``value`` with numpy scalars made Python numbers and NaN/Inf written as strings (valid JSON)."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _command_view(args: argparse.Namespace, out: TextIO) -> int:
    from hsikit.viz.composite import describe_bands, plot_composite, select_rgb_bands, uses_cie_rendering

    cube = open_cube_for_cli(args.file, args.key, args.layout, args.wavelength_file)
    plot_composite(
        cube,
        bands=args.bands,
        wavelengths=args.rgb_wavelengths,
        percentiles=tuple(args.stretch),
        method=args.method,
        title=args.title,
        scale=args.scale,
        path=args.output,
    )
    if uses_cie_rendering(cube, args.bands, args.rgb_wavelengths, args.method):
        chosen = "true colour rendered through the CIE 1931 observer"
    else:
        chosen = describe_bands(cube, select_rgb_bands(cube, args.bands, args.rgb_wavelengths))
    out.write(f"wrote {args.output} ({cube.width * args.scale} x {cube.height * args.scale} px; {chosen})\n")
    return EXIT_OK


def _command_datasets(args: argparse.Namespace, out: TextIO) -> int:
    import hsikit.data as data_package

    if args.datasets_command == "list":
        table = getattr(data_package, "format_dataset_table", None)
        if table is not None:
            from hsikit.data.paths import data_dir

            root = Path(args.root) if args.root is not None else data_dir()
            out.write(table(root=root) + f"\nstatus: files under {root}\n")
            return EXIT_OK
        for name in data_package.list_datasets():  # a registry without the table helper
            out.write(f"{name}  {data_package.dataset_info(name).title}\n")
        return EXIT_OK
    if args.datasets_command == "info":
        out.write(data_package.dataset_info(args.name).describe().rstrip() + "\n")
        return EXIT_OK
    kwargs = {} if args.root is None else {"root": args.root}
    location = data_package.download_dataset(args.name, **kwargs)
    out.write(f"{data_package.dataset_info(args.name).name}: ready in {location}\n")
    return EXIT_OK


def _command_demo(args: argparse.Namespace, out: TextIO) -> int:
    from hsikit.demo import run_demo

    run_demo(args.output, offline=args.offline, echo=lambda text: out.write(text + "\n"))
    return EXIT_OK


def _run_engine(argv: list[str]) -> int:
    """Pass ``argv`` (starting with fit/validate/test/predict) to ``hsikit.engine.cli.main``."""
    try:
        engine_cli = importlib.import_module("hsikit.engine.cli")
    except ModuleNotFoundError as error:
        if error.name in ("hsikit.engine.cli", "hsikit.engine"):
            raise EngineUnavailableError(
                f"'hsikit {argv[0]}' needs the training engine (hsikit.engine.cli), which this installation "
                "of hsikit does not include; update hsikit"
            ) from error
        raise EngineUnavailableError(
            f"'hsikit {argv[0]}' cannot start the training engine: module {error.name!r} is missing; "
            "reinstall hsikit with its dependencies (pip install -e .)"
        ) from error
    except ImportError as error:
        raise EngineUnavailableError(
            f"'hsikit {argv[0]}' cannot start the training engine: {error}; run with --debug for details"
        ) from error
    result = engine_cli.main(list(argv))
    return EXIT_OK if result is None else int(result)


class EngineUnavailableError(HsikitError, ImportError):
    """The training engine (``hsikit.engine.cli``) cannot be imported."""


# ============================================================================ parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hsikit`` command (engine subcommands are listed, not parsed)."""
    parser = argparse.ArgumentParser(
        prog="hsikit",
        description="Deep learning on hyperspectral images: inspect cubes, draw them, get datasets, train models.",
    )
    parser.add_argument("--version", action="version", version=f"hsikit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors (or HSIKIT_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    info = commands.add_parser("info", help="shape, wavelengths, georeference, nodata and band statistics of a cube")
    _add_open_arguments(info, "--wavelengths")
    info.add_argument("--all", action="store_true", help="list the statistics of every band (default: first/last 5)")
    info.add_argument("--json", action="store_true", help="print JSON (every band) instead of text")
    info.set_defaults(handler=_command_info)

    view = commands.add_parser("view", help="write a colour composite (PNG) of a cube")
    _add_open_arguments(view, "--wavelength-file")
    view.add_argument("-o", "--output", required=True, help="picture to write (.png, .jpg, .pdf, .svg)")
    choice = view.add_mutually_exclusive_group()
    choice.add_argument("--bands", nargs=3, type=int, metavar=("R", "G", "B"), help="0-based band indices")
    choice.add_argument(
        "--wavelengths", dest="rgb_wavelengths", nargs=3, type=float, metavar=("R", "G", "B"),
        help="wavelengths in nm; the nearest bands are used (default: true colour 640 550 460)",
    )
    view.add_argument(
        "--stretch", nargs=2, type=float, default=[2.0, 98.0], metavar=("LOW", "HIGH"),
        help="percentiles of the valid pixels mapped to black and white, per channel (default: 2 98)",
    )
    view.add_argument(
        "--method", choices=("nearest", "cie", "auto"), default="nearest",
        help="true colour from the nearest bands, from the CIE 1931 sRGB rendering (needs 400-700 nm), "
        "or auto (CIE when the cube covers 400-700 nm)",
    )
    view.add_argument("--scale", type=_positive_int, default=1, help="integer magnification of the picture")
    view.add_argument("--title", help="text drawn above the picture")
    view.set_defaults(handler=_command_view)

    datasets = commands.add_parser("datasets", help="list, describe and download registered datasets")
    dataset_commands = datasets.add_subparsers(dest="datasets_command", metavar="ACTION")
    dataset_commands.required = True
    listing = dataset_commands.add_parser("list", help="the registered datasets, and which are on disk")
    listing.add_argument("--root", help="data folder whose files the status column checks (default: the cache)")
    describe = dataset_commands.add_parser("info", help="files, classes, wavelengths, source and licence of a dataset")
    describe.add_argument("name")
    download = dataset_commands.add_parser("download", help="download a dataset and check its checksums")
    download.add_argument("name")
    download.add_argument("--root", help="folder to download into (default: $HSIKIT_DATA_DIR or ~/.cache/hsikit)")
    datasets.set_defaults(handler=_command_datasets)

    demo = commands.add_parser("demo", help="load a scene and draw its pictures (a tour of hsikit)")
    demo.add_argument("--output", default="hsikit-demo", help="folder for the pictures (default: ./hsikit-demo)")
    demo.add_argument("--offline", action="store_true", help="use a synthetic scene, never a real or downloaded one")
    demo.set_defaults(handler=_command_demo)

    for name in ENGINE_COMMANDS:
        commands.add_parser(name, add_help=False, help=f"training engine: {name} (see 'hsikit {name} --help')")
    _register_capability_commands(commands)
    return parser


def _register_capability_commands(commands: Any) -> None:
    """Add the subcommands of the modules in :mod:`hsikit.commands` (see its docstring)."""
    import pkgutil

    import hsikit.commands

    for module_info in sorted(pkgutil.iter_modules(hsikit.commands.__path__), key=lambda info: info.name):
        module = importlib.import_module(f"hsikit.commands.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(commands)


# ============================================================================ entry point
def _split_global_flags(argv: list[str]) -> tuple[bool, list[str]]:
    """Take ``--debug`` off the front of ``argv`` (before the subcommand)."""
    debug = False
    rest = list(argv)
    while rest and rest[0] == "--debug":
        debug = True
        rest.pop(0)
    return debug, rest


def _report_error(error: BaseException, debug: bool, err: TextIO) -> None:
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=err)
    message = str(error).strip().replace("\n", " ") or type(error).__name__
    err.write(f"hsikit: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hsikit`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    fit/validate/test/predict go to ``hsikit.engine.cli.main`` with their
    arguments untouched. An :class:`~hsikit.errors.HsikitError` prints
    ``hsikit: error: <message>`` on stderr and returns 2.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug, arguments = _split_global_flags(arguments)
    debug = debug or os.environ.get("HSIKIT_DEBUG", "") not in ("", "0")
    out, err = sys.stdout, sys.stderr
    try:
        if arguments and arguments[0] in ENGINE_COMMANDS:
            return _run_engine(arguments)
        args = build_parser().parse_args(arguments)
        debug = debug or args.debug
        handler: Callable[[argparse.Namespace, TextIO], int] = args.handler
        return handler(args, out)
    except HsikitError as error:
        _report_error(error, debug, err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("hsikit: interrupted\n")
        return 130
    except BrokenPipeError:
        # the reader of our output went away (hsikit info x | head): not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except OSError as error:
        # disk full, permission denied... on a file we write: one line, not a traceback
        _report_error(error, debug, err)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
