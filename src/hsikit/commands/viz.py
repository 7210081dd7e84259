"""``hsikit viz``: figures of result folders and cubes, as PNG and PDF, and a self-contained index page.

Subcommands::

    hsikit viz all RESULT [RESULT ...] [--targets PATH] [--names N ...] [-o DIR]   every applicable figure
    hsikit viz recon PREDICTION [TARGET] [-o DIR]                                  a pair of cubes (or folders)
    hsikit viz compare RESULT RESULT [...] --targets PATH [--names N ...]          methods side by side
    hsikit viz classes MAP [--targets LABELS] [--image CUBE] [--clusters]          class / cluster maps
    hsikit viz latent LATENT [--labels LABELS] [--reconstruction R --original X]   autoencoder figures
    hsikit viz report RUN_DIR                                                      (re)write a run's report.html

Common options: ``--style paper|screen``, ``--dpi N``, ``--formats png pdf``,
``--max-scenes N``, ``--pixels R,C ...``, ``--colour auto|true|false|both``,
``--layout CHW|HWC``, ``--wavelengths FILE|LIST``. The result-folder conventions are in
``docs/visualisation.md`` and :mod:`hsikit.viz.results`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from hsikit.errors import ConfigError


def _pixel(text: str) -> tuple[int, int]:
    parts = text.replace(" ", "").split(",")
    if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"a pixel is ROW,COL (0-based whole numbers), got {text!r}")
    return int(parts[0]), int(parts[1])


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return value


def _common(parser: argparse.ArgumentParser, default_output: str = "viz") -> None:
    parser.add_argument("-o", "--output", default=default_output,
                        help=f"folder for the figures and index.html (default: ./{default_output})")
    parser.add_argument("--style", choices=("paper", "screen"), default="screen",
                        help="paper: 8 pt type, 300 dpi, fonts embedded in PDFs; screen: larger type, 110 dpi")
    parser.add_argument("--dpi", type=_positive, default=None, help="PNG resolution (default: the style's)")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"], choices=("png", "pdf", "svg"),
                        help="file formats of every figure (default: png pdf)")


def _cube_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-scenes", type=int, default=10,
                        help="draw per-scene figures for at most this many scenes (scores use all; default 10)")
    parser.add_argument("--pixels", type=_pixel, nargs="+", default=None, metavar="ROW,COL",
                        help="pixels of the spectral curves (default: picked at low, typical and high error)")
    parser.add_argument("--colour", choices=("auto", "true", "false", "both"), default="auto",
                        help="colour panels: true colour (CIE, needs 400-700 nm), false colour, both, or auto")
    parser.add_argument("--dark-percentile", type=float, default=None, metavar="PCT",
                        help="true colour of hazy radiance: subtract this percentile of each channel (e.g. 1)")
    parser.add_argument("--metric", choices=("mrae", "rmse", "sam"), default="sam",
                        help="error map of comparison grids (default: sam)")
    parser.add_argument("--layout", choices=("CHW", "HWC"), default=None,
                        help="axis order of .npy predictions when it cannot be told from the shape")
    parser.add_argument("--wavelengths", default=None,
                        help="band centres in nm for files without them: a CSV/text table or a comma-separated list")


def register(commands: Any) -> None:
    """Add ``hsikit viz`` and its subcommands to the ``hsikit`` parser."""
    viz = commands.add_parser(
        "viz", help="figures of results: colour panels, error maps, spectra, summaries, class maps, comparisons",
        description="Draw the figures of result folders (or cubes) as PNG and PDF, with an index.html page.",
    )
    actions = viz.add_subparsers(dest="viz_command", metavar="ACTION")
    actions.required = True

    every = actions.add_parser("all", help="every applicable figure of one or more result folders")
    every.add_argument("results", nargs="+", help="result folders or prediction files (one per method)")
    every.add_argument("--targets", default=None, help="target file or folder (default: targets/ in each folder)")
    every.add_argument("--names", nargs="+", default=None, help="display name of each result, in order")
    every.add_argument("--image", default=None, help="a cube drawn in true colour under class maps")
    every.add_argument("--labels", default=None, help="a label map colouring latent scatters")
    _common(every)
    _cube_options(every)

    recon = actions.add_parser("recon", help="a predicted cube against its target (files or folders)")
    recon.add_argument("prediction", help="predicted cube file or folder")
    recon.add_argument("target", nargs="?", default=None, help="target cube file or folder (optional)")
    recon.add_argument("--name", default=None, help="display name of the method")
    _common(recon)
    _cube_options(recon)

    compare = actions.add_parser("compare", help="several methods' predictions of the same scenes")
    compare.add_argument("results", nargs="+", help="one result folder per method")
    compare.add_argument("--targets", default=None, help="target file or folder (default: targets/ in each folder)")
    compare.add_argument("--names", nargs="+", default=None, help="display name of each method, in order")
    _common(compare)
    _cube_options(compare)

    classes = actions.add_parser("classes", help="class or cluster maps, confusion matrix, per-class scores")
    classes.add_argument("prediction", help="class map file or result folder")
    classes.add_argument("--targets", default=None, help="ground-truth label file or folder")
    classes.add_argument("--image", default=None, help="the scene's cube, drawn in true colour under the maps")
    classes.add_argument("--class-names", nargs="+", default=None, help="names of label values first-label, ...")
    classes.add_argument("--first-label", type=int, default=None, help="label value of the first name (default 1)")
    classes.add_argument("--clusters", action="store_true",
                         help="the map holds cluster ids: match them to classes (Hungarian) before scoring")
    classes.add_argument("--name", default=None, help="display name of the method")
    classes.add_argument("--max-scenes", type=int, default=10, help="maps drawn at most (default 10)")
    _common(classes)

    latent = actions.add_parser("latent", help="autoencoder: latent-space scatter and reconstruction errors")
    latent.add_argument("latent", help="latent cube (D, H, W) file, or a result folder")
    latent.add_argument("--labels", default=None, help="label map colouring the codes")
    latent.add_argument("--class-names", nargs="+", default=None, help="names of label values 1, 2, ...")
    latent.add_argument("--reconstruction", default=None, help="the autoencoder's reconstructed cube")
    latent.add_argument("--original", default=None, help="the cube it reconstructs")
    _common(latent)

    report = actions.add_parser("report", help="(re)write the HTML report of a run folder, with its figures")
    report.add_argument("run", help="run folder (runs/<name>/<version>)")
    report.add_argument("-o", "--output", default=None, help="report file (default: RUN/report.html)")

    viz.set_defaults(handler=_handle)


def _wavelengths(text: str | None) -> list[float] | None:
    if text is None:
        return None
    if Path(text).is_file():
        from hsikit.io.wavelengths import load_wavelengths

        centres, _ = load_wavelengths(text, "nm")
        return None if centres is None else [float(c) for c in centres]
    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--wavelengths {text!r} is neither a file nor a comma-separated list of numbers (nm)"
        ) from None


def _handle(args: argparse.Namespace, out: TextIO) -> int:
    from hsikit.viz.suite import visualise

    def echo(text: str) -> None:
        print(text, file=out)

    action = args.viz_command
    if action == "report":
        from hsikit.viz.report import write_run_report

        run = Path(args.run)
        if not run.is_dir():
            from hsikit.errors import DataFileNotFoundError

            raise DataFileNotFoundError(run, "give a run folder written by hsikit fit/test/predict")
        echo(str(write_run_report(run, args.output)))
        return 0
    common: dict[str, Any] = {"style": args.style, "dpi": args.dpi, "formats": args.formats, "echo": echo}
    if action in ("all", "recon", "compare"):
        common.update(max_scenes=args.max_scenes, pixels=args.pixels, colour=args.colour, metric=args.metric,
                      dark_percentile=args.dark_percentile,
                      wavelengths=_wavelengths(args.wavelengths), layout=args.layout)
    if action == "all":
        visualise(args.results, args.output, targets=args.targets, names=args.names, image=args.image,
                  labels=args.labels, **common)
    elif action == "recon":
        names = [args.name] if args.name else None
        visualise([args.prediction], args.output, targets=args.target, names=names, **common)
    elif action == "compare":
        if len(args.results) < 2:
            raise ConfigError("hsikit viz compare needs at least two result folders (one per method)")
        visualise(args.results, args.output, targets=args.targets, names=args.names, **common)
    elif action == "classes":
        _classes(args, common)
    elif action == "latent":
        _latent(args, common)
    return 0


def _classes(args: argparse.Namespace, common: dict[str, Any]) -> None:
    from hsikit.viz.results import LABEL_SUFFIXES, ResultFolder, open_result_folder
    from hsikit.viz.suite import visualise

    source = Path(args.prediction)
    if source.is_dir():
        result = open_result_folder(source, args.name)
        if not (result.class_maps or result.cluster_maps):
            maps = {p.stem: p for p in sorted(source.iterdir()) if p.is_file() and p.suffix.lower() in LABEL_SUFFIXES}
            result.class_maps = maps
    else:
        if not source.is_file():
            from hsikit.errors import DataFileNotFoundError

            raise DataFileNotFoundError(source, "give a class map file (.tif, .npy, .png, .mat...) or a result folder")
        result = ResultFolder(root=source, name=args.name or source.stem, kind="segmentation",
                              class_maps={source.stem: source})
    if args.clusters:
        result.kind = "clustering"
        result.cluster_maps = {**result.cluster_maps, **result.class_maps}
        result.class_maps = {}
    if args.class_names:
        result.class_names = list(args.class_names)
    if args.first_label is not None:
        result.first_label = args.first_label
    visualise([result], args.output, targets=args.targets, image=args.image, max_scenes=args.max_scenes, **common)


def _latent(args: argparse.Namespace, common: dict[str, Any]) -> None:
    from hsikit.viz.results import ResultFolder, open_result_folder
    from hsikit.viz.suite import visualise

    source = Path(args.latent)
    if source.is_dir():
        result = open_result_folder(source)
    elif source.is_file():
        result = ResultFolder(root=source, name=source.stem, kind="autoencoder", latents={source.stem: source})
    else:
        from hsikit.errors import DataFileNotFoundError

        raise DataFileNotFoundError(source, "give the latent cube (D, H, W) file or a result folder")
    if args.reconstruction:
        if not args.original:
            raise ConfigError("--reconstruction needs --original (the cube the autoencoder reconstructs)")
        result.reconstructions = {source.stem: Path(args.reconstruction)}
    if args.class_names:
        result.class_names = list(args.class_names)
    visualise([result], args.output, targets=args.original, labels=args.labels, **common)
