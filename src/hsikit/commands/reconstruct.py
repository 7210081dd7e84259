"""``hsikit reconstruct`` and ``hsikit submission``: RGB photos → hyperspectral cubes with an exported model.

::

    hsikit reconstruct --model runs/mstpp/v/model --input photo.jpg --output cube.mat
    hsikit reconstruct --model DIR --input rgb_folder/ --output cubes/ [--ensemble mean|median] [--tile 512]
    hsikit reconstruct --model DIR --input Test_RGB/ --output predictions/ --ensemble mean --submission submission.zip
    hsikit submission --predictions predictions/ --output submission.zip

``reconstruct`` reads each RGB image, prepares it as the model was trained (channel order and
normalisation recorded in the model's ``config.json``), runs the model on the full frame (or on
blended tiles with ``--tile``), optionally with the 8-way self-ensemble, clamps the cube to
[0, 1] and saves it: ``.mat`` is MATLAB v7.3 with ``cube`` stored ``H x W x C`` and ``bands`` (the
ARAD-1K / NTIRE 2022 layout); ``.tif`` (GeoTIFF) and ``.hdr`` (ENVI) carry the wavelengths.
``submission`` crops every ``<name>.mat`` prediction by 128 px on each side, saves
``<name>_crop.mat``, zips them (DEFLATE) and warns when the archive is over 500 MB
(:func:`hsikit.inference.reconstruction.make_submission`).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any, TextIO

from hsikit.errors import ConfigError


def register(commands: Any) -> None:
    """Add ``reconstruct`` and ``submission`` to the ``hsikit`` subcommands."""
    reconstruct = commands.add_parser(
        "reconstruct",
        help="reconstruct hyperspectral cubes from RGB images with an exported model",
        description="Reconstruct hyperspectral cubes from RGB images (one file or a folder) with an exported model.",
    )
    reconstruct.add_argument(
        "--model", required=True, help="model folder (model.safetensors + config.json) or run folder"
    )
    reconstruct.add_argument("--input", required=True, help="an RGB image (.jpg, .png...) or a folder of images")
    reconstruct.add_argument(
        "--output", required=True, help="output file (format from the extension) or folder (one cube per image)"
    )
    reconstruct.add_argument(
        "--format", dest="output_format", choices=("mat", "tif", "envi", "npy"), default=None,
        help="output format (default: from --output's extension; .mat for a folder)",
    )
    reconstruct.add_argument(
        "--ensemble", choices=("none", "mean", "median"), default="none",
        help="8-way flip/transpose self-ensemble combined by mean or median (default: none)",
    )
    reconstruct.add_argument("--tile", type=int, default=None, help="tile size in px (default: one full-frame pass)")
    reconstruct.add_argument("--overlap", type=int, default=64, help="overlap of neighbouring tiles in px (default 64)")
    reconstruct.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1...)")
    reconstruct.add_argument(
        "--submission", default=None, metavar="ZIP",
        help="also pack the .mat predictions into this challenge submission zip (128-px crop)",
    )
    reconstruct.add_argument("--crop", type=int, default=128, help="border crop of the submission in px (default 128)")
    reconstruct.set_defaults(handler=_command_reconstruct)

    submission = commands.add_parser(
        "submission",
        help="crop and zip predicted cubes for the NTIRE 2022 spectral-recovery challenge",
        description="Crop every <name>.mat prediction by --crop px per side, save <name>_crop.mat (v7.3) and zip them.",
    )
    submission.add_argument("--predictions", required=True, help="folder of predicted <name>.mat cubes (H x W x C)")
    submission.add_argument("--output", required=True, help="the zip to write (e.g. submission.zip)")
    submission.add_argument("--crop", type=int, default=128, help="border removed on every side in px (default 128)")
    submission.add_argument(
        "--limit-mb", type=float, default=500.0, help="warn when the zip is larger than this (default 500 MB)"
    )
    submission.set_defaults(handler=_command_submission)


def _command_reconstruct(args: argparse.Namespace, out: TextIO) -> int:
    from hsikit.engine.export import load_model
    from hsikit.inference.reconstruction import reconstruct_files

    if args.tile is not None and args.tile < 8:
        raise ConfigError(f"--tile {args.tile} is too small; use tiles of at least 8 px (e.g. 256 or 512)")
    model = load_model(args.model, expected_bands=3, device=args.device)
    if model.hsikit_config.task not in (None, "reconstruction", "gan_reconstruction"):
        raise ConfigError(
            f"'{args.model}' holds a {model.hsikit_config.task!r} model, not an RGB -> hyperspectral reconstruction "
            "model; use 'hsikit predict' for it"
        )
    source, output = Path(args.input), Path(args.output)
    if source.is_dir():
        if output.suffix and not output.is_dir():
            raise ConfigError(f"--input '{source}' is a folder, so --output must be a folder, not the file '{output}'")
        output.mkdir(parents=True, exist_ok=True)
    if args.submission is not None and args.output_format not in (None, "mat"):
        raise ConfigError("--submission packs .mat predictions; leave --format out or use --format mat")
    written = reconstruct_files(
        model,
        source,
        output,
        output_format=args.output_format,
        ensemble=args.ensemble,
        tile=args.tile,
        overlap=args.overlap,
        device=args.device,
        echo=lambda line: out.write(line + "\n"),
    )
    if args.submission is not None:
        _pack(written, Path(args.submission), args.crop, 500.0, out)
    return 0


def _command_submission(args: argparse.Namespace, out: TextIO) -> int:
    _pack(Path(args.predictions), Path(args.output), args.crop, args.limit_mb, out)
    return 0


def _pack(predictions: Any, target: Path, crop: int, limit_mb: float, out: TextIO) -> None:
    from hsikit.inference.reconstruction import make_submission

    if isinstance(predictions, list) and any(Path(p).suffix.lower() != ".mat" for p in predictions):
        raise ConfigError("the submission packs .mat predictions; reconstruct with a .mat output (the default)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = make_submission(predictions, target, crop=crop, size_limit_bytes=int(limit_mb * 1e6))
    out.write(
        f"wrote {result.path}: {len(result.members)} cube(s) cropped by {result.crop} px per side, "
        f"{result.size_bytes / 1e6:.2f} MB\n"
    )
    for warning in caught:
        out.write(f"warning: {warning.message}\n")
