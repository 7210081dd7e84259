"""``hsikit sharp-inference``: the reference ``sharp_inference.py`` as an hsikit command.

::

    hsikit sharp-inference --checkpoint runs/sharp/v/model --input frame.png --output frame.npy --patch-size 256
    hsikit sharp-inference --checkpoint runs/sharp/v/checkpoints/last.ckpt --input rgb/ --output cubes/ \\
        --patch-size 256 --overlap 32 --batch-size 8 --device cuda --format mat --preview
    hsikit sharp-inference CHECKPOINT INPUT --output cubes/          # the reference's positional form

Works with any RGB → hyperspectral model of hsikit (SHARP, HSIFusionNet, MST++...).

* ``--checkpoint``: an exported model folder (``model/`` of a run: ``model.safetensors`` +
  ``config.json``; exports of a run with a weight EMA hold the EMA weights) or a Lightning
  ``.ckpt`` of a reconstruction run (loaded with ``weights_only=True``; its EMA weights
  ``hsikit_ema`` are used when present, unless ``--no-ema``). The reference never used the EMA
  weights for inference.
* ``--input``: one RGB image or a folder of them (``.jpg .jpeg .png .bmp .tif .tiff``); each is
  prepared as the model was trained (channel order and normalisation recorded at export;
  per-image min-max by default). A grayscale, palette-less 16-bit, CMYK or transparent image
  is refused (the reference silently converted anything to RGB).
* ``--output``: a file for one image; a folder for a folder (one cube per image, named after it).
* ``--patch-size``: tile side in pixels for the engine's batched, overlap-blended tiling
  (:func:`hsikit.inference.predict_scene`: tiles start at 0 and images smaller than a tile are
  padded, the blend weights are built once and ``--batch-size`` tiles run per forward pass;
  the reference produced negative tile starts for images smaller than the patch and ran one
  tile at a time). Without it, or for an image no larger than a patch, one full-frame pass.
* ``--format``: ``npy`` (``(C, H, W)`` float32, the default for folders), ``mat`` (MATLAB v7.3,
  ``cube`` stored ``H x W x C`` + ``bands``, the ARAD-1K layout — the reference wrote a v5
  file with key ``hsi``), ``tif`` (one GeoTIFF with the band wavelengths) or ``tiff-bands``
  (one 16-bit TIFF per band, ``<stem>_chXX.tiff`` with XX from 00, values × 65535, as the
  reference wrote for other extensions). Cubes are clamped to [0, 1].
* ``--preview``: also write ``<stem>_preview.png``, a colour composite of the bands nearest to
  650 / 550 / 450 nm (R, G, B), min-max scaled over the image and gamma 0.7 (the reference's
  ``visualize_hsi`` display).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hsikit.errors import ConfigError, DataFileNotFoundError, ShapeMismatchError

FORMATS: dict[str, str] = {"npy": ".npy", "mat": ".mat", "tif": ".tif", "tiff-bands": ".tiff"}
"""``--format`` choices and the extension of their files."""
PREVIEW_WAVELENGTHS_NM: tuple[float, float, float] = (650.0, 550.0, 450.0)
PREVIEW_GAMMA = 0.7


def register(commands: Any) -> None:
    """Add ``sharp-inference`` to the ``hsikit`` subcommands."""
    parser = commands.add_parser(
        "sharp-inference",
        help="RGB images -> hyperspectral cubes with a trained SHARP / HSIFusion / MST++ model (tiled, batched)",
        description=(
            "Reconstruct one hyperspectral cube per RGB image with an exported model folder or a Lightning "
            ".ckpt (EMA weights when present), optionally with overlap-blended tiles."
        ),
    )
    parser.add_argument("checkpoint_positional", nargs="?", default=None, metavar="CHECKPOINT",
                        help="model folder or .ckpt (the reference's positional form)")
    parser.add_argument("input_positional", nargs="?", default=None, metavar="INPUT",
                        help="RGB image or folder (the reference's positional form)")
    parser.add_argument("--checkpoint", default=None, help="exported model folder (model/) or Lightning .ckpt")
    parser.add_argument("--input", default=None, help="an RGB image or a folder of RGB images")
    parser.add_argument("--output", default=None,
                        help="output file (one image) or folder (default: <input stem>.npy / <input>_hsi/)")
    parser.add_argument("--patch-size", "--patch_size", dest="patch_size", type=int, default=None,
                        help="tile side in px (default: one full-frame pass)")
    parser.add_argument("--overlap", type=int, default=16, help="overlap of neighbouring tiles in px (default 16)")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=4,
                        help="tiles per forward pass (default 4)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1... (default cpu)")
    parser.add_argument("--format", dest="output_format", choices=tuple(FORMATS), default=None,
                        help="npy, mat, tif or tiff-bands (default: from --output's extension; npy for a folder)")
    parser.add_argument("--preview", "--visualize", dest="preview", action="store_true",
                        help="also write <stem>_preview.png, a colour composite of the cube")
    parser.add_argument("--no-ema", dest="use_ema", action="store_false",
                        help="with a .ckpt: use the raw training weights even when EMA weights are stored")
    parser.set_defaults(handler=_command)



# ---------------------------------------------------------------------------- model
@contextlib.contextmanager
def open_model(checkpoint: str | os.PathLike, *, use_ema: bool = True, device: str = "cpu") -> Iterator[Any]:
    """The model of an export folder or a Lightning ``.ckpt``, in eval mode on ``device``.

    A ``.ckpt`` is exported to a temporary folder first (its EMA weights when present and
    ``use_ema``), so both sources are loaded the same way and carry the same recorded input
    preparation. ``model.hsikit_weights`` says which weights were loaded.

    Raises:
        DataFileNotFoundError: no such file or folder.
        CheckpointError: not an hsikit reconstruction model / checkpoint.
    """
    from hsikit.engine.export import EMA_CHECKPOINT_KEY, export_checkpoint, load_model, read_checkpoint

    path = Path(checkpoint)
    if not path.exists():
        raise DataFileNotFoundError(path, "expected an exported model folder (model/) or a Lightning .ckpt")
    if path.is_file() and path.suffix.lower() == ".ckpt":
        stored = read_checkpoint(path)
        has_ema = isinstance(stored.get(EMA_CHECKPOINT_KEY), dict) and bool(stored[EMA_CHECKPOINT_KEY].get("state_dict"))
        del stored
        with tempfile.TemporaryDirectory(prefix="hsikit_sharp_inference_") as folder:
            export_checkpoint(path, folder, use_ema=use_ema)
            model = load_model(folder, expected_bands=3, device=device)
        model.hsikit_weights = "EMA" if has_ema and use_ema else "training (no EMA stored)" if not has_ema else "training"
    else:
        model = load_model(path, expected_bands=3, device=device)
        model.hsikit_weights = "as exported (EMA when the run kept one)"
    task = model.hsikit_config.task
    if task not in (None, "reconstruction", "gan_reconstruction"):
        raise ConfigError(
            f"'{path}' holds a {task!r} model, not an RGB -> hyperspectral reconstruction model; use 'hsikit predict'"
        )
    yield model


# ---------------------------------------------------------------------------- input
def read_rgb_strict(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit colour image as ``(3, H, W)`` uint8 R, G, B; anything else is refused.

    Palette images are expanded to their RGB colours and RGBA images whose alpha is fully
    opaque lose the alpha channel; grayscale, 16-bit, CMYK, YCbCr-less and transparent images
    raise :class:`ShapeMismatchError` (a reconstruction model needs the three colour channels
    of a camera, and silently replicating a gray channel gives meaningless spectra).
    """
    from PIL import Image, UnidentifiedImageError

    from hsikit.errors import CorruptFileError

    source = Path(path)
    if not source.is_file():
        raise DataFileNotFoundError(source, "expected an RGB image (.jpg, .png, .bmp, .tif)")
    try:
        with Image.open(source) as picture:
            mode = picture.mode
            if mode == "P":
                picture = picture.convert("RGBA")
                mode = "RGBA"
            array = np.asarray(picture)
    except (OSError, UnidentifiedImageError) as error:
        raise CorruptFileError(f"'{source}': cannot decode the image ({error}); replace the file") from error
    if mode == "RGBA" and array.ndim == 3 and array.shape[-1] == 4 and bool((array[..., 3] == 255).all()):
        array, mode = array[..., :3], "RGB"
    if mode != "RGB" or array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ShapeMismatchError(
            f"'{source}' is a {mode} image with shape {array.shape}, not an 8-bit RGB image; the model needs the three "
            "colour channels of an RGB camera - convert it to 8-bit RGB first (a grayscale image has no spectrum to "
            "recover)"
        )
    return np.ascontiguousarray(np.moveaxis(array, -1, 0))


# ---------------------------------------------------------------------------- output
def output_format_of(path: Path, requested: str | None, to_folder: bool) -> str:
    """The ``--format`` value for ``path``: requested, else from the extension, else ``npy`` for folders."""
    if requested is not None:
        return requested
    if to_folder:
        return "npy"
    by_suffix = {".npy": "npy", ".mat": "mat", ".tif": "tif", ".tiff": "tif"}
    suffix = path.suffix.lower()
    if suffix not in by_suffix:
        raise ConfigError(
            f"'{path}': cannot tell the output format from {suffix or 'no extension'!r}; use .npy, .mat or .tif, or "
            "pass --format npy|mat|tif|tiff-bands"
        )
    return by_suffix[suffix]


def save_cube(cube: np.ndarray, target: Path, output_format: str, wavelengths: np.ndarray | None) -> list[Path]:
    """Write a ``(C, H, W)`` cube clamped to [0, 1]; returns the written files.

    ``tiff-bands`` writes ``<stem>_chXX.tiff`` next to ``target`` (16-bit, values × 65535).
    """
    from hsikit.inference.reconstruction import save_reconstruction

    array = np.clip(np.asarray(cube, dtype=np.float32), 0.0, 1.0)
    target.parent.mkdir(parents=True, exist_ok=True)
    if output_format != "tiff-bands":
        kind = {"npy": "npy", "mat": "mat", "tif": "tif"}[output_format]
        return [save_reconstruction(array, target, wavelengths=wavelengths, output_format=kind)]
    from PIL import Image

    from hsikit.io.atomic import atomic_path

    written = []
    for band, plane in enumerate(np.round(array * 65535.0).astype(np.uint16)):
        path = target.parent / f"{target.stem}_ch{band:02d}.tiff"
        with atomic_path(path) as tmp:
            Image.fromarray(plane).save(tmp, format="TIFF")
        written.append(path)
    return written


def preview_bands(bands: int, wavelengths: np.ndarray | None) -> tuple[int, int, int]:
    """Band indices shown as R, G, B: nearest to 650 / 550 / 450 nm, else spread over the bands."""
    if wavelengths is not None and len(wavelengths) == bands:
        centres = np.asarray(wavelengths, dtype=np.float64)
        picked = [int(np.argmin(np.abs(centres - target))) for target in PREVIEW_WAVELENGTHS_NM]
        return picked[0], picked[1], picked[2]
    return (bands * 5) // 6, bands // 2, bands // 6


def save_preview(cube: np.ndarray, target: Path, wavelengths: np.ndarray | None) -> Path:
    """``(C, H, W)`` → 8-bit colour PNG: three bands, global min-max, gamma 0.7."""
    from PIL import Image

    from hsikit.io.atomic import atomic_path

    red, green, blue = preview_bands(cube.shape[0], wavelengths)
    composite = np.stack([cube[red], cube[green], cube[blue]], axis=-1).astype(np.float64)
    low, high = float(composite.min()), float(composite.max())
    scaled = (composite - low) / (high - low) if high > low else np.zeros_like(composite)
    image = np.round(255.0 * scaled**PREVIEW_GAMMA).astype(np.uint8)
    with atomic_path(target) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return target


# ---------------------------------------------------------------------------- command
def run_inference(
    model: Any,
    source: Path,
    output: Path,
    *,
    output_format: str | None = None,
    patch_size: int | None = None,
    overlap: int = 16,
    batch_size: int = 4,
    device: str = "cpu",
    preview: bool = False,
    echo: Callable[[str], None] | None = None,
) -> list[Path]:
    """Reconstruct every RGB image of ``source`` (a file or a folder) and save the cubes; returns the cube files."""
    from hsikit.inference.reconstruction import (
        InputPreparation,
        list_rgb_images,
        output_wavelengths,
        prepare_rgb,
        reconstruct,
    )

    if patch_size is not None and patch_size < 8:
        raise ConfigError(f"--patch-size {patch_size} is too small; use tiles of at least 8 px (e.g. 256)")
    if overlap < 0 or (patch_size is not None and overlap >= patch_size):
        raise ConfigError(f"--overlap must be >= 0 and smaller than --patch-size, got {overlap}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if source.is_dir():
        files, to_folder = list_rgb_images(source), True
        if output.suffix and not output.is_dir():
            raise ConfigError(f"--input '{source}' is a folder, so --output must be a folder, not the file '{output}'")
    elif source.is_file():
        files, to_folder = [source], output.is_dir() or not output.suffix
    else:
        raise DataFileNotFoundError(source, "pass an RGB image or a folder of RGB images")
    kind = output_format_of(output, output_format, to_folder)
    preparation = InputPreparation.from_model(model)
    written: list[Path] = []
    for file in files:
        rgb = prepare_rgb(read_rgb_strict(file), preparation)
        # as the reference: tiles only for an image larger than a patch (one pass otherwise, no padding)
        tile = patch_size if patch_size is not None and max(rgb.shape[1:]) > patch_size else None
        cube = reconstruct(model, rgb, tile=tile, overlap=overlap, batch_size=batch_size, device=device)
        wavelengths = output_wavelengths(model, cube.shape[0])
        target = output / f"{file.stem}{FORMATS[kind]}" if to_folder else output
        files_written = save_cube(cube, target, kind, wavelengths)
        written.extend(files_written)
        if preview:
            save_preview(cube, target.parent / f"{target.stem}_preview.png", wavelengths)
        if echo is not None:
            shown = files_written[0] if len(files_written) == 1 else f"{len(files_written)} band files {target.stem}_chXX"
            echo(f"wrote {shown} ({cube.shape[0]} bands, {cube.shape[1]} x {cube.shape[2]} px)")
    return written


def _command(args: argparse.Namespace, out: TextIO) -> int:
    checkpoint = args.checkpoint or args.checkpoint_positional
    source = args.input or args.input_positional
    if checkpoint is None or source is None:
        raise ConfigError("sharp-inference needs --checkpoint (model folder or .ckpt) and --input (image or folder)")
    source_path = Path(source)
    if args.output is not None:
        output = Path(args.output)
    elif source_path.is_dir():
        output = source_path.parent / f"{source_path.name}_hsi"
    else:
        output = source_path.with_suffix(FORMATS[args.output_format or "npy"])
    with open_model(checkpoint, use_ema=args.use_ema, device=args.device) as model:
        out.write(f"model {model.hsikit_config.name} from {checkpoint}: {model.hsikit_weights} weights\n")
        run_inference(
            model, source_path, output, output_format=args.output_format, patch_size=args.patch_size,
            overlap=args.overlap, batch_size=args.batch_size, device=args.device, preview=args.preview,
            echo=lambda line: out.write(line + "\n"),
        )  # fmt: skip
    return 0


__all__ = ["FORMATS", "open_model", "preview_bands", "read_rgb_strict", "register", "run_inference", "save_cube"]
