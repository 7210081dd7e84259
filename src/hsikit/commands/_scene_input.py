"""Shared pieces of the spectral-model subcommands (``hsikit autoencoder``, ``hsikit classifier``).

Not a command module itself (no ``register``): input selection (a cube file or a
registered dataset), the passthrough of training overrides to ``hsikit fit``, and the
writing of single-band float maps.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.cube import Cube
from hsikit.errors import ConfigError


def add_input_arguments(parser: argparse.ArgumentParser, labels: bool = True) -> None:
    """``--input CUBE`` or ``--dataset NAME [--root DIR]``, and optionally ``--labels FILE``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="cube file (GeoTIFF, ENVI .hdr, .mat, .npy...)")
    source.add_argument("--dataset", help="registered dataset name instead of a file (see 'hsikit datasets list')")
    parser.add_argument("--root", default=None, help="data folder of the dataset registry (e.g. ../shared/data)")
    if labels:
        parser.add_argument("--labels", default=None, help="label raster of --input (H x W, 0 = unlabelled)")


def load_input(args: argparse.Namespace) -> tuple[Cube, np.ndarray | None, list[str] | None, str]:
    """``(cube, labels or None, class names or None, description)`` of ``--input``/``--labels`` or ``--dataset``."""
    if getattr(args, "input", None):
        from hsikit.io import open_cube
        from hsikit.io.labels import open_labels

        cube = open_cube(args.input)
        labels = None
        if getattr(args, "labels", None):
            labels = np.asarray(open_labels(args.labels, expected_shape=cube))
        return cube, labels, None, str(args.input)
    from hsikit.data.loaders import load_dataset

    scene = load_dataset(args.dataset, root=args.root, download=False, progress=False)
    labels = None if scene.labels is None else np.asarray(scene.labels)
    return scene.cube, labels, list(scene.class_names) if scene.class_names else None, f"dataset {args.dataset}"


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ``train`` subcommands that wrap ``hsikit fit``."""
    parser.add_argument("--config", required=True, help="experiment YAML (model, data, trainer, run sections)")
    parser.add_argument("--input", default=None, help="train on this cube file (sets data.init_args.cube_path)")
    parser.add_argument("--labels", default=None, help="label raster of --input (sets data.init_args.labels_path)")
    parser.add_argument("--dataset", default=None, help="registered dataset to train on (sets data.init_args.dataset)")
    parser.add_argument("--root", default=None, help="data folder of the registry (sets data.init_args.root)")
    parser.add_argument("--run-root", default=None, help="folder holding the runs (sets run.root)")
    parser.add_argument("--name", default=None, help="run name (sets run.name)")
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="further 'hsikit fit' arguments after '--', e.g. -- --trainer.max_epochs 5",
    )


def training_argv(args: argparse.Namespace, extra: list[str] | None = None) -> list[str]:
    """The ``hsikit fit`` argument list of a ``train`` subcommand."""
    if not Path(args.config).is_file():
        from hsikit.errors import DataFileNotFoundError

        raise DataFileNotFoundError(Path(args.config), "expected an experiment YAML such as configs/*.yaml")
    argv = ["fit", "--config", str(args.config)]
    for option, key in (
        ("input", "data.init_args.cube_path"),
        ("labels", "data.init_args.labels_path"),
        ("dataset", "data.init_args.dataset"),
        ("root", "data.init_args.root"),
        ("run_root", "run.root"),
        ("name", "run.name"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            argv += [f"--{key}", str(value)]
    if getattr(args, "labels", None) and not getattr(args, "input", None):
        raise ConfigError("--labels goes with --input (the label raster of that cube)")
    argv += list(extra or [])
    overrides = list(getattr(args, "overrides", None) or [])
    if overrides and overrides[0] == "--":
        overrides = overrides[1:]
    return argv + overrides


def run_training(argv: list[str], out: Any) -> int:
    """Run ``hsikit fit`` with ``argv`` (see :func:`training_argv`) and say where the run went."""
    from hsikit.engine.cli import main as engine_main

    out.write("hsikit " + " ".join(argv) + "\n")
    return engine_main(argv)


def write_float_map(
    values: np.ndarray, like: Cube, path: str | os.PathLike, name: str, units: str | None = None
) -> Path:
    """Write an ``(H, W)`` float map with ``like``'s georeference (format from the extension; NaN = no data)."""
    from hsikit.io import save_cube

    image = np.asarray(values, dtype=np.float32)[np.newaxis]
    invalid = ~np.isfinite(image[0])
    cube = Cube(
        image,
        band_names=[name],
        crs=like.crs,
        transform=like.transform,
        nodata=float("nan") if invalid.any() else None,
        nodata_mask=invalid if invalid.any() else None,
        nonfinite="mask" if invalid.any() else "error",
        metadata={"units": units} if units else None,
    )
    return save_cube(cube, path)


__all__ = [
    "add_input_arguments",
    "add_training_arguments",
    "load_input",
    "run_training",
    "training_argv",
    "write_float_map",
]
