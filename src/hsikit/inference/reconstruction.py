"""RGB → hyperspectral inference: input preparation, 8-way self-ensemble, full-frame or tiled runs,
saving cubes, and the NTIRE 2022 challenge submission.

The steps follow ``specs/mstpp_protocol.md`` §1.2, §5 and §5.1:

1. **Input.** An 8-bit RGB image is read in R, G, B order (:func:`read_rgb_image`), cast to
   float32 and normalised over the *whole* image (``"minmax"``: ``(x - min) / (max - min)`` over all
   pixels and channels, MST++'s choice; ``"div255"``; ``"none"``). An exported model records the
   normalisation and channel order it was trained with (``config.json`` → ``extra``), and
   :func:`prepare_rgb` applies them. Tiled inference normalises the whole image first, so a tile
   sees exactly the values it would in a full-frame run.
2. **Model.** One forward pass over the full frame (the protocol), or tiles blended by
   :func:`hsikit.inference.predict_scene` for images too large for memory. MST++'s spectral
   attention pools over the whole input, so tiled results differ slightly from full-frame ones.
3. **Self-ensemble** (optional): the 8 combinations of {flip W, flip H, transpose H↔W}; each
   output is transformed back (transpose first, then the flips in reverse order) and the 8 are
   combined by the **mean** or the **median** (per element; with 8 values the median is the mean
   of the 4th and 5th smallest, as ``numpy.median`` gives).
4. **Output.** Clamped to [0, 1] and saved: MATLAB v7.3 ``.mat`` with key ``cube`` in
   ``H x W x C`` order plus ``bands`` (nm) — what the challenge expects — or GeoTIFF / ENVI with
   the wavelengths (:func:`save_reconstruction`).
5. **Submission** (:func:`make_submission`): every ``<name>.mat`` prediction is cropped to
   ``[128:-128, 128:-128]`` (rows and columns), saved as ``<name>_crop.mat`` (v7.3, with
   ``bands``) and zipped (DEFLATE) into one archive; the temporary files are removed, and a
   warning is given when the archive exceeds the challenge's 500 MB upload limit.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from hsikit.cube import Cube
from hsikit.errors import ConfigError, DataFileNotFoundError, ShapeMismatchError

EnsembleMode = Literal["none", "mean", "median"]
ENSEMBLE_MODES: tuple[str, ...] = ("none", "mean", "median")
RGB_IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
SUBMISSION_CROP = 128
"""Border removed from every side of a challenge prediction (NTIRE 2022, MST++ ``prep_submission``)."""
SUBMISSION_SIZE_LIMIT_BYTES = 500 * 10**6
"""Upload limit of the NTIRE 2022 challenge server (500 MB)."""
SUBMISSION_MEMBER_SUFFIX = "_crop"

# (flip W, flip H, transpose H<->W): all 8 combinations, the identity first
ENSEMBLE_TRANSFORMS: tuple[tuple[bool, bool, bool], ...] = tuple(
    (flip_w, flip_h, transpose) for transpose in (False, True) for flip_h in (False, True) for flip_w in (False, True)
)


# ---------------------------------------------------------------------------- self-ensemble
def apply_flip_transpose(batch: torch.Tensor, flip_w: bool, flip_h: bool, transpose: bool) -> torch.Tensor:
    """Flip W, then flip H, then transpose H↔W a ``(..., H, W)`` tensor (each step optional)."""
    if flip_w:
        batch = batch.flip(-1)
    if flip_h:
        batch = batch.flip(-2)
    return batch.transpose(-2, -1) if transpose else batch


def invert_flip_transpose(batch: torch.Tensor, flip_w: bool, flip_h: bool, transpose: bool) -> torch.Tensor:
    """Undo :func:`apply_flip_transpose`: transpose first, then the flips in reverse order (H, then W)."""
    if transpose:
        batch = batch.transpose(-2, -1)
    if flip_h:
        batch = batch.flip(-2)
    return batch.flip(-1) if flip_w else batch


def check_ensemble_mode(mode: str | None) -> EnsembleMode:
    """``"none"``, ``"mean"`` or ``"median"`` (None and False mean ``"none"``); ConfigError otherwise."""
    if mode is None or mode is False:
        return "none"
    if mode not in ENSEMBLE_MODES:
        raise ConfigError(f"ensemble must be one of {', '.join(ENSEMBLE_MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


def self_ensemble_x8(
    predict: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, reduction: EnsembleMode = "mean"
) -> torch.Tensor:
    """Combine ``predict`` over the 8 flip/transpose variants of ``batch`` (MST++ test-time self-ensemble).

    Args:
        predict: maps ``(B, 3, h, w)`` to ``(B, C, h, w)`` (and ``(B, 3, w, h)`` to ``(B, C, w, h)``).
        batch: input images ``(B, 3, H, W)``.
        reduction: ``"mean"`` (default) or ``"median"`` of the 8 back-transformed outputs, per
            element; ``"none"`` returns the plain ``predict(batch)``.

    Returns:
        ``(B, C, H, W)``. The mean is accumulated in place (one output in memory besides the sum);
        the median keeps all 8 outputs.
    """
    reduction = check_ensemble_mode(reduction)
    if reduction == "none":
        return predict(batch)
    outputs: list[torch.Tensor] = []
    total: torch.Tensor | None = None
    for flip_w, flip_h, transpose in ENSEMBLE_TRANSFORMS:
        transformed = apply_flip_transpose(batch, flip_w, flip_h, transpose)
        output = predict(transformed)
        if output.ndim != 4 or output.shape[0] != batch.shape[0] or output.shape[-2:] != transformed.shape[-2:]:
            raise ShapeMismatchError(
                f"self-ensemble needs a model whose output keeps the batch and spatial size of its input; input "
                f"{tuple(transformed.shape)} gave output {tuple(output.shape)}; use ensemble='none'"
            )
        restored = invert_flip_transpose(output, flip_w, flip_h, transpose)
        if reduction == "median":
            outputs.append(restored)
        else:
            total = restored.clone() if total is None else total.add_(restored)
    if reduction == "median":
        ordered = torch.stack(outputs).sort(dim=0).values
        middle = len(ENSEMBLE_TRANSFORMS) // 2
        return (ordered[middle - 1] + ordered[middle]) / 2.0
    assert total is not None
    return total.div_(len(ENSEMBLE_TRANSFORMS))


# ---------------------------------------------------------------------------- input
def read_rgb_image(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit RGB image file (JPEG, PNG, BMP, TIFF) as ``(3, H, W)`` uint8 in R, G, B order."""
    from hsikit.data.arad import read_rgb

    return read_rgb(path)


@dataclass(frozen=True)
class InputPreparation:
    """How an RGB image is turned into the model's input.

    Attributes:
        rgb_norm: ``"minmax"`` (per-image global min-max), ``"div255"`` or ``"none"``.
        channel_order: ``"RGB"`` or ``"BGR"`` (the order the model was trained with).
    """

    rgb_norm: str = "minmax"
    channel_order: str = "RGB"

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> InputPreparation:
        """The preparation recorded in an exported model's config (``extra``), MST++'s by default."""
        config = getattr(model, "hsikit_config", None)
        extra = dict(getattr(config, "extra", None) or {})
        return cls(str(extra.get("rgb_norm", "minmax")), str(extra.get("channel_order", "RGB")).upper())


def prepare_rgb(image: np.ndarray, preparation: InputPreparation = InputPreparation()) -> np.ndarray:
    """``(3, H, W)`` uint8 R, G, B image → ``(3, H, W)`` float32 model input (module docstring, step 1)."""
    from hsikit.data.arad import rgb_normalization

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ShapeMismatchError(
            f"an RGB image must be a (3, H, W) array, got shape {array.shape}; move the channel axis first "
            "(numpy.moveaxis(image, -1, 0) for an (H, W, 3) image)"
        )
    if preparation.channel_order not in ("RGB", "BGR"):
        raise ConfigError(f"channel_order must be 'RGB' or 'BGR', got {preparation.channel_order!r}")
    if preparation.channel_order == "BGR":
        array = array[::-1]
    offset, scale = rgb_normalization(array, preparation.rgb_norm)  # type: ignore[arg-type]
    return np.ascontiguousarray((array.astype(np.float32) - offset) / scale, dtype=np.float32)


# ---------------------------------------------------------------------------- running the model
def reconstruct(
    model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    rgb: np.ndarray | torch.Tensor,
    *,
    ensemble: EnsembleMode = "none",
    tile: int | None = None,
    overlap: int = 64,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Reconstruct the cube of one prepared RGB image (raw model output, not clamped).

    Args:
        model: maps ``(B, 3, h, w)`` to ``(B, C, h, w)``; a module is put in eval mode.
        rgb: the model input ``(3, H, W)`` float32 (see :func:`prepare_rgb`).
        ensemble: ``"none"``, ``"mean"`` or ``"median"`` 8-way self-ensemble.
        tile: None for one full-frame pass (the protocol); else the tile side in pixels for
            :func:`hsikit.inference.predict_scene` (blended overlapping tiles, bounded memory).
        overlap: overlap of neighbouring tiles in pixels.
        batch_size: tiles per forward pass.
        device: torch device.

    Returns:
        ``(C, H, W)`` float32.
    """
    reduction = check_ensemble_mode(ensemble)
    inputs = rgb if isinstance(rgb, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))
    if inputs.ndim != 3 or inputs.shape[0] != 3:
        raise ShapeMismatchError(f"reconstruct takes one (3, H, W) RGB input, got shape {tuple(inputs.shape)}")
    device = torch.device(device)
    was_training = None
    if isinstance(model, torch.nn.Module):
        was_training = model.training
        model.to(device).eval()
        parameter = next(iter(model.parameters()), None)
        if parameter is not None and parameter.dtype.is_floating_point:
            inputs = inputs.to(parameter.dtype)  # the input takes the model's precision

    dtype = inputs.dtype

    def run(batch: torch.Tensor) -> torch.Tensor:
        return self_ensemble_x8(model, batch.to(dtype), reduction)

    try:
        if tile is None:
            with torch.inference_mode():
                output = run(inputs[None].to(device))
            return output[0].float().cpu().numpy()
        from hsikit.inference.streaming import predict_scene

        result = predict_scene(
            run,
            Cube(inputs.cpu().numpy()),
            None,
            tile=int(tile),
            overlap=int(overlap),
            batch_size=batch_size,
            device=device,
            output_kind="regression",
            progress=False,
        )
        assert isinstance(result, Cube)
        return np.asarray(result.data, dtype=np.float32)
    finally:
        if isinstance(model, torch.nn.Module) and was_training:
            model.train()


def output_wavelengths(model: torch.nn.Module, bands: int) -> np.ndarray | None:
    """Band centres (nm) of a model's output: recorded at export, else 400..700 nm for 31 bands, else None."""
    config = getattr(model, "hsikit_config", None)
    recorded = dict(getattr(config, "extra", None) or {}).get("output_wavelengths")
    if recorded is not None and len(recorded) == bands:
        return np.asarray(recorded, dtype=np.float64)
    if bands == 31:
        from hsikit.data.arad import ARAD_WAVELENGTHS

        return ARAD_WAVELENGTHS.copy()
    return None


# ---------------------------------------------------------------------------- saving
OUTPUT_FORMATS: dict[str, str] = {"mat": ".mat", "tif": ".tif", "envi": ".hdr", "npy": ".npy"}


def format_of(path: str | os.PathLike, output_format: str | None = None) -> str:
    """``"mat"``, ``"tif"``, ``"envi"`` or ``"npy"`` from ``output_format`` or the file extension."""
    if output_format is not None:
        name = output_format.lower().lstrip(".")
        aliases = {"tiff": "tif", "geotiff": "tif", "hdr": "envi", "matlab": "mat", "v7.3": "mat"}
        name = aliases.get(name, name)
        if name not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown output format {output_format!r}; use one of {', '.join(OUTPUT_FORMATS)}")
        return name
    suffix = Path(path).suffix.lower()
    by_suffix = {".mat": "mat", ".tif": "tif", ".tiff": "tif", ".hdr": "envi", ".img": "envi", ".npy": "npy"}
    if suffix not in by_suffix:
        raise ConfigError(
            f"'{path}': cannot tell the output format from the extension {suffix or '(none)'!r}; use .mat "
            "(MATLAB v7.3, the ARAD/NTIRE layout), .tif (GeoTIFF), .hdr (ENVI) or .npy, or pass --format"
        )
    return by_suffix[suffix]


def save_reconstruction(
    cube: np.ndarray,
    path: str | os.PathLike,
    *,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    output_format: str | None = None,
    clamp: bool = True,
) -> Path:
    """Save a reconstructed ``(C, H, W)`` cube, clamped to [0, 1], atomically.

    ``.mat`` files are MATLAB v7.3 with ``cube`` stored ``H x W x C`` (h5py shows it as
    ``(C, W, H)``: ``numpy.array(f["cube"]).T`` is the ``(H, W, C)`` cube) and ``bands``
    (1 x C, nm) — the ARAD-1K / NTIRE 2022 layout. GeoTIFF and ENVI files carry the
    wavelengths in their metadata.
    """
    from hsikit.io import save_cube

    array = np.asarray(cube, dtype=np.float32)
    if array.ndim != 3:
        raise ShapeMismatchError(f"save_reconstruction takes a (C, H, W) cube, got shape {array.shape}")
    if clamp:
        array = np.clip(array, 0.0, 1.0)
    kind = format_of(path, output_format)
    result = Cube(array, wavelengths=wavelengths, metadata={"source": "hsikit reconstruct"})
    target = Path(path)
    if kind == "mat":
        return save_cube(result, target, format="mat", mat_format="v7.3", key="cube", layout="HWC")
    if kind == "tif":
        return save_cube(result, target, format="geotiff")
    if kind == "envi":
        return save_cube(result, target, format="envi")
    return save_cube(result, target, format="npy")


def list_rgb_images(folder: str | os.PathLike) -> list[Path]:
    """The RGB image files of ``folder`` (not recursive), sorted by name."""
    directory = Path(folder)
    if not directory.is_dir():
        raise DataFileNotFoundError(directory, "expected a folder of RGB images (.jpg, .png, ...)")
    images = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in RGB_IMAGE_EXTENSIONS)
    if not images:
        raise ConfigError(
            f"'{directory}' holds no RGB image ({', '.join(RGB_IMAGE_EXTENSIONS)}); pass a folder of images or one file"
        )
    return images


def reconstruct_files(
    model: torch.nn.Module,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    output_format: str | None = None,
    ensemble: EnsembleMode = "none",
    tile: int | None = None,
    overlap: int = 64,
    device: str | torch.device = "cpu",
    echo: Callable[[str], None] | None = None,
) -> list[Path]:
    """Reconstruct one image file or every image of a folder, and save the cubes.

    Args:
        model: an exported model (:func:`hsikit.load_model`); its recorded input preparation
            and output wavelengths are used.
        inputs: an image file, a folder of images, or a list of image files.
        output: the output file for a single image (format from its extension); a folder for
            several (created; one ``<image stem>.<ext>`` per image, ``.mat`` unless ``output_format``).
        output_format: ``"mat"`` (v7.3), ``"tif"``, ``"envi"`` or ``"npy"``.
        ensemble, tile, overlap, device: see :func:`reconstruct`.
        echo: called with one line per written file.

    Returns:
        The written files, in input order.
    """
    if isinstance(inputs, (str, os.PathLike)):
        source = Path(inputs)
        if source.is_dir():
            files = list_rgb_images(source)
            to_folder = True
        elif source.is_file():
            files, to_folder = [source], Path(output).is_dir()
        else:
            raise DataFileNotFoundError(source, "pass an RGB image file or a folder of images")
    else:
        files, to_folder = [Path(p) for p in inputs], True
    preparation = InputPreparation.from_model(model)
    written: list[Path] = []
    for file in files:
        if to_folder:
            suffix = OUTPUT_FORMATS[format_of("x.mat", output_format)]
            target = Path(output) / f"{file.stem}{suffix}"
        else:
            target = Path(output)
        rgb = prepare_rgb(read_rgb_image(file), preparation)
        cube = reconstruct(model, rgb, ensemble=ensemble, tile=tile, overlap=overlap, device=device)
        save_reconstruction(
            cube, target, wavelengths=output_wavelengths(model, cube.shape[0]), output_format=output_format
        )
        written.append(target)
        if echo is not None:
            echo(f"wrote {target} ({cube.shape[0]} bands, {cube.shape[1]} x {cube.shape[2]} px)")
    return written


# ---------------------------------------------------------------------------- challenge submission
@dataclass
class Submission:
    """What :func:`make_submission` wrote."""

    path: Path
    members: list[str] = field(default_factory=list)
    size_bytes: int = 0
    crop: int = SUBMISSION_CROP
    size_limit_bytes: int = SUBMISSION_SIZE_LIMIT_BYTES

    @property
    def over_limit(self) -> bool:
        """True when the archive exceeds the upload limit."""
        return self.size_bytes > self.size_limit_bytes


def _prediction_files(predictions: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(predictions, (str, os.PathLike)):
        folder = Path(predictions)
        if not folder.is_dir():
            raise DataFileNotFoundError(folder, "pass the folder of predicted <name>.mat cubes")
        files = sorted(p for p in folder.glob("*.mat") if not p.stem.endswith(SUBMISSION_MEMBER_SUFFIX))
    else:
        files = [Path(p) for p in predictions]
    if not files:
        raise ConfigError(
            f"no <name>.mat predictions to submit in '{predictions}'; write them first with "
            "hsikit reconstruct --model DIR --input RGB_FOLDER --output PREDICTION_FOLDER"
        )
    return files


def make_submission(
    predictions: str | os.PathLike | Iterable[str | os.PathLike],
    output: str | os.PathLike,
    *,
    crop: int = SUBMISSION_CROP,
    size_limit_bytes: int = SUBMISSION_SIZE_LIMIT_BYTES,
) -> Submission:
    """Crop, re-save and zip predicted cubes for the NTIRE 2022 challenge server.

    Each prediction ``<name>.mat`` (a cube ``H x W x C``, key ``cube``) is cropped to
    ``[crop:H-crop, crop:W-crop]``, clamped to [0, 1] and saved as ``<name>_crop.mat`` (MATLAB
    v7.3 with ``bands``) in a temporary folder; the files are stored DEFLATE-compressed in the
    zip ``output``, written atomically, and the temporary folder is removed. A ``UserWarning``
    is given (and ``Submission.over_limit`` set) when the zip exceeds ``size_limit_bytes``.

    Raises:
        DataFileNotFoundError: no predictions; ShapeMismatchError: a cube too small for the crop.
    """
    from hsikit.io import open_cube
    from hsikit.io.atomic import atomic_path
    from hsikit.metrics.reconstruction import border_crop

    files = _prediction_files(predictions)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    members: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".hsikit-submission-", dir=target.parent) as scratch:
        cropped_files = []
        for file in files:
            cube = open_cube(file, key="cube", layout="HWC")
            try:
                cropped = border_crop(torch.from_numpy(np.asarray(cube.data, dtype=np.float32)), crop).numpy()
            except ShapeMismatchError as error:
                raise ShapeMismatchError(f"'{file}': {error}") from None
            member = f"{file.stem}{SUBMISSION_MEMBER_SUFFIX}.mat"
            wavelengths = cube.wavelengths
            save_reconstruction(cropped, Path(scratch) / member, wavelengths=wavelengths, output_format="mat")
            cropped_files.append(Path(scratch) / member)
            members.append(member)
        with atomic_path(target) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for path in cropped_files:
                    archive.write(path, arcname=path.name)
    submission = Submission(target, members, target.stat().st_size, crop, size_limit_bytes)
    if submission.over_limit:
        warnings.warn(
            f"'{target}' is {submission.size_bytes / 1e6:.1f} MB, over the {size_limit_bytes / 1e6:.0f} MB upload "
            "limit of the challenge server; submit fewer images per archive",
            UserWarning,
            stacklevel=2,
        )
    return submission


__all__ = [
    "ENSEMBLE_MODES",
    "ENSEMBLE_TRANSFORMS",
    "InputPreparation",
    "OUTPUT_FORMATS",
    "RGB_IMAGE_EXTENSIONS",
    "SUBMISSION_CROP",
    "SUBMISSION_SIZE_LIMIT_BYTES",
    "Submission",
    "apply_flip_transpose",
    "check_ensemble_mode",
    "format_of",
    "invert_flip_transpose",
    "list_rgb_images",
    "make_submission",
    "output_wavelengths",
    "prepare_rgb",
    "read_rgb_image",
    "reconstruct",
    "reconstruct_files",
    "save_reconstruction",
]
