"""``hsikit segment``: map a tile or a whole scene with an exported segmentation model.

::

    hsikit segment --model runs/glacier/v1/model --input 2.tif --output-dir maps
    hsikit segment --model runs/glacier/v1/model --input scene.tif --output-dir maps --tile 512 --overlap 64 --vector gpkg

A tile that fits in one ``--tile`` (or ``--mode small``) is segmented in one pass and gets
the class GeoTIFF, a colour PNG, the learned-attention heat map (SSMGNet) and Grad-CAM heat
maps; a larger scene (or ``--mode huge``) goes through streaming tiled inference in bounded
memory: class GeoTIFF with the input's CRS, polygons (``--vector``) traced strip by strip,
a decimated colour preview. See :mod:`hsikit.inference.segmentation`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from hsikit.errors import ConfigError


def _palette(text: str | None) -> dict[int, list[int]] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"--palette must be JSON such as '{{\"1\": [218, 218, 218]}}' (class id -> RGB), got {text!r} ({error})"
        ) from None
    if isinstance(value, list):
        return dict(enumerate(value))
    if not isinstance(value, dict):
        raise ConfigError("--palette must be a JSON object {class id: [r, g, b]} or a list of [r, g, b]")
    try:
        return {int(key): list(colour) for key, colour in value.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"--palette keys must be class ids (integers), got {sorted(value)}") from None


def handle_segment(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``hsikit segment`` (see the module docstring); prints the files written."""
    from hsikit.engine.export import load_model
    from hsikit.inference.segmentation import segment
    from hsikit.io import open_reader

    if args.tile < 1 or args.overlap < 0 or args.overlap >= args.tile or args.batch_size < 1:
        raise ConfigError(
            f"need --tile >= 1, 0 <= --overlap < --tile and --batch-size >= 1; got tile {args.tile}, "
            f"overlap {args.overlap}, batch size {args.batch_size}"
        )
    with open_reader(args.input) as reader:
        bands = reader.bands
    model = load_model(args.model, expected_bands=bands, device=args.device)
    task = getattr(getattr(model, "hsikit_config", None), "task", None)
    if task not in (None, "segmentation"):
        raise ConfigError(f"'{args.model}' holds a {task!r} model; hsikit segment needs a segmentation model")
    class_names = None if args.class_names is None else [name.strip() for name in args.class_names.split(",")]
    options: dict[str, Any] = {
        "class_names": class_names,
        "palette": _palette(args.palette),
        "vector": args.vector,
        "min_area": args.min_area,
        "device": args.device,
        "overlap": args.overlap,
        "batch_size": args.batch_size,
        "progress": not args.no_progress,
        "gradcam_classes": [] if args.no_gradcam else args.gradcam_class,
    }
    result = segment(model, args.input, args.output_dir, mode=args.mode, tile=args.tile, **options)
    if result["mode"] == "small":
        out.write(f"segmented {args.input} in one pass ({result['milliseconds']:.0f} ms)\n")
    else:
        out.write(
            f"segmented {args.input} tile by tile: {result['megapixels']:.2f} Mpx in {result['seconds']:.1f} s "
            f"({result['megapixels'] / max(result['seconds'], 1e-9):.2f} Mpx/s)\n"
        )
    for key in ("classes", "png", "attention_png", "attention_tif", "vector"):
        if result.get(key) is not None:
            out.write(f"  {key}: {result[key]}\n")
    for target, files in (result.get("gradcam") or {}).items():
        out.write(f"  gradcam class {target}: {files['png']}, {files['tif']}\n")
    return 0


def register(commands: Any) -> None:
    """Add ``hsikit segment`` to the ``hsikit`` subcommands."""
    parser = commands.add_parser(
        "segment",
        help="map a tile or a whole scene with a segmentation model (GeoTIFF, PNG, heat maps, polygons)",
        description="Map a tile or a whole scene with an exported segmentation model.",
    )
    parser.add_argument("--model", required=True, help="exported model folder (model.safetensors + config.json)")
    parser.add_argument("--input", required=True, help="image tile or scene (GeoTIFF, ENVI...)")
    parser.add_argument("--output-dir", required=True, help="folder for the outputs (seg_<name>_*)")
    parser.add_argument("--mode", choices=("auto", "small", "huge"), default="auto",
                        help="small: one pass with heat maps; huge: streaming tiles; auto: small when the input "
                        "fits in one tile")  # fmt: skip
    parser.add_argument("--tile", type=int, default=512, help="tile size in pixels (default 512)")
    parser.add_argument("--overlap", type=int, default=64, help="overlap of neighbouring tiles (default 64)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per model call (default 4)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1...)")
    parser.add_argument("--vector", choices=("gpkg", "shp"), default=None,
                        help="also write the class polygons as a GeoPackage or shapefile")  # fmt: skip
    parser.add_argument("--min-area", type=float, default=0.0,
                        help="drop polygons smaller than this (CRS units squared, m² for UTM)")  # fmt: skip
    parser.add_argument("--class-names", default=None, help="comma-separated class names (default: the model's)")
    parser.add_argument("--palette", default=None, help="JSON colours, e.g. '{\"1\": [218, 218, 218]}'")
    parser.add_argument("--gradcam-class", type=int, action="append", default=None,
                        help="class to explain with Grad-CAM (repeatable; default: every class but 0)")  # fmt: skip
    parser.add_argument("--no-gradcam", action="store_true", help="skip the Grad-CAM heat maps")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=handle_segment)


__all__ = ["handle_segment", "register"]
