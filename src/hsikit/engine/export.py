"""Model files: ``model.safetensors`` + ``config.json``, written atomically, loaded without unpickling.

A model folder holds two files:

* ``model.safetensors``: the weights of the bare ``nn.Module`` (the EMA weights when
  the run used weight EMA), in the safetensors format, which holds tensors only;
* ``config.json``: what is needed to rebuild and use the model (:class:`ModelConfig`):
  the registry name and constructor arguments, the task, the input band count,
  band wavelengths and FWHM (nm), the normalisation statistics, the class names,
  and the sha256 of the weights file.

:func:`load_model` rebuilds the model from the registry (never from an import path
written in the file), checks the weights file's hash, its tensor names and shapes
against the architecture and, when asked, the band count; any mismatch raises
:class:`~hsikit.errors.CheckpointError` naming the file and the fix. Nothing here
imports Lightning.

Writing: the old ``config.json`` is removed first, then both files are written to
temporary siblings and renamed, weights first, config last. A reader looks for the
config, so an export interrupted at any point leaves either the complete new pair
or no ``config.json`` at all; and a config whose recorded hash does not match the
weights beside it is refused, so a mixed old/new pair never loads.

Lightning checkpoints (``.ckpt``) are read with ``torch.load(weights_only=True)``:
:func:`read_checkpoint` and :func:`export_checkpoint`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from hsikit.errors import CheckpointError, DataFileNotFoundError, HsikitError
from hsikit.io.atomic import atomic_paths
from hsikit.models.registry import (
    arguments_equal,
    check_model_arguments,
    get_model_entry,
    list_models,
    model_spec,
    to_json_value,
)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_NAME = "hsikit.model"
FORMAT_VERSION = 1

# Keys hsikit adds to Lightning checkpoints (written by BaseTask and the WeightEMA callback).
CHECKPOINT_KEY = "hsikit"
EMA_CHECKPOINT_KEY = "hsikit_ema"
MODEL_PREFIX = "model."

_DATA_FIELDS = ("bands", "wavelengths", "fwhm", "normalization", "class_names")


@dataclass
class ModelConfig:
    """The content of a model folder's ``config.json``.

    Attributes:
        name: registry name of the architecture (``"spectral_mlp"``).
        arguments: constructor arguments (JSON values).
        task: task family (``"classification"``...), or None.
        bands: number of input bands C the model expects, or None when not recorded.
        wavelengths: input band centres in nm, length ``bands``, or None.
        fwhm: input band widths in nm, or None.
        normalization: the fitted normaliser as a dict (``create_normalizer(...).to_dict()``), or None.
        class_names: names of the output classes, index = class id, or None.
        extra: other task-specific facts (ignore index, patch size, value range...).
        weights_sha256: hex sha256 of ``model.safetensors``.
        hsikit_version: version that wrote the file.
        created: ISO-8601 UTC time of the export.
    """

    name: str
    arguments: dict[str, Any]
    task: str | None = None
    bands: int | None = None
    wavelengths: list[float] | None = None
    fwhm: list[float] | None = None
    normalization: dict[str, Any] | None = None
    class_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str | None = None
    hsikit_version: str | None = None
    created: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``config.json``."""
        payload = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
        payload.update(to_json_value(asdict(self), "config"))
        return payload

    @classmethod
    def from_dict(cls, payload: Any, source: str = "<memory>") -> ModelConfig:
        """Parse and check a ``config.json`` object; :class:`CheckpointError` on anything wrong."""
        if not isinstance(payload, dict):
            raise CheckpointError(f"{source}: a model config is a JSON object, found {type(payload).__name__}")
        if payload.get("format") != FORMAT_NAME:
            raise CheckpointError(
                f"{source}: not an hsikit model config (format={payload.get('format')!r}, expected "
                f"{FORMAT_NAME!r}); export the model with hsikit.engine.export.export_model"
            )
        version = payload.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: model file format version {version!r} is newer than this hsikit reads "
                f"({FORMAT_VERSION}); upgrade hsikit"
            )
        known = {f for f in cls.__dataclass_fields__}
        values = {key: value for key, value in payload.items() if key in known}
        for key, kind in (("name", str), ("arguments", dict), ("weights_sha256", str)):
            if not isinstance(values.get(key), kind):
                raise CheckpointError(
                    f"{source}: key {key!r} is missing or not a {kind.__name__}; the file is damaged or "
                    "was not written by hsikit - export the model again"
                )
        return cls(**values)

    def data_description(self) -> dict[str, Any]:
        """The data facts (bands, wavelengths, fwhm, normalization, class_names) as a dict."""
        return {key: getattr(self, key) for key in _DATA_FIELDS}


# ------------------------------------------------------------------------------ writing
def export_model(
    model: nn.Module,
    directory: str | os.PathLike,
    *,
    task: str | None = None,
    data: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` of a registered model into ``directory``.

    Args:
        model: a model built from the registry (its name and arguments are recorded).
        directory: output folder (created); an existing export there is replaced.
        task: task family written to the config.
        data: data facts: ``bands``, ``wavelengths`` (nm), ``fwhm`` (nm), ``normalization``
            (dict), ``class_names``; other keys go to ``extra``.
        state_dict: weights to write instead of ``model.state_dict()`` (the EMA weights);
            names and shapes must match the model's.
        extra: more task-specific facts.

    Returns:
        The path of the written ``config.json``.
    """
    name, arguments = model_spec(model)
    target_dir = Path(directory)
    reference = model.state_dict()
    weights = dict(state_dict) if state_dict is not None else dict(reference)
    _check_tensor_names(name, {k: tuple(v.shape) for k, v in weights.items()}, reference, "<export>")
    # Clone to contiguous CPU tensors: safetensors refuses views and tensors sharing memory.
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in weights.items()}

    data_values = dict(data or {})
    extra_values = dict(extra or {})
    for key in list(data_values):
        if key not in _DATA_FIELDS:
            extra_values[key] = data_values.pop(key)
    from hsikit import __version__

    config = ModelConfig(
        name=name,
        arguments=arguments,
        task=task,
        extra=to_json_value(extra_values, "extra"),
        hsikit_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **{key: to_json_value(value, key) for key, value in data_values.items()},
    )
    if config.bands is None and config.wavelengths is not None:
        config.bands = len(config.wavelengths)

    from safetensors.torch import save_file

    config_path, weights_path = target_dir / CONFIG_FILE, target_dir / WEIGHTS_FILE
    target_dir.mkdir(parents=True, exist_ok=True)
    # Remove the old config first: if this export dies after the new weights are renamed into
    # place, the folder must not hold an old config next to new weights.
    with contextlib.suppress(FileNotFoundError):
        config_path.unlink()
    with atomic_paths([config_path, weights_path]) as (tmp_config, tmp_weights):
        save_file(tensors, str(tmp_weights), metadata={"format": FORMAT_NAME, "model": name})
        config.weights_sha256 = _sha256(tmp_weights)
        tmp_config.write_text(json.dumps(config.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return config_path


# ------------------------------------------------------------------------------ reading
def _resolve_model_dir(path: str | os.PathLike) -> Path:
    candidate = Path(path)
    if candidate.is_file() and candidate.name in (CONFIG_FILE, WEIGHTS_FILE):
        return candidate.parent
    if candidate.is_dir():
        # a run folder holds its export in model/
        if not (candidate / CONFIG_FILE).exists() and (candidate / "model" / CONFIG_FILE).is_file():
            return candidate / "model"
        return candidate
    if candidate.is_file():
        raise CheckpointError(
            f"'{candidate}' is not a model folder: pass the folder holding {CONFIG_FILE} and {WEIGHTS_FILE} "
            "(a Lightning .ckpt is exported with hsikit.engine.export.export_checkpoint)"
        )
    raise DataFileNotFoundError(candidate, f"expected a model folder with {CONFIG_FILE} and {WEIGHTS_FILE}")


def read_model_config(path: str | os.PathLike, *, verify_weights: bool = True) -> ModelConfig:
    """Read and check the ``config.json`` of the model folder ``path`` (or of a file inside it).

    With ``verify_weights`` the sha256 of ``model.safetensors`` must match the config.
    """
    folder = _resolve_model_dir(path)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file():
        hint = (
            f"{WEIGHTS_FILE} is there without its {CONFIG_FILE}: the export was interrupted; export again"
            if weights_path.exists()
            else f"no {CONFIG_FILE} or {WEIGHTS_FILE} here; is this a model folder written by a run?"
        )
        raise CheckpointError(f"'{folder}': incomplete model folder, {hint}")
    try:
        payload = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(
            f"'{config_path}': not valid JSON ({error}); the file is damaged - export again"
        ) from None
    config = ModelConfig.from_dict(payload, source=f"'{config_path}'")
    if verify_weights:
        if not weights_path.is_file():
            raise CheckpointError(f"'{folder}': {WEIGHTS_FILE} is missing next to {CONFIG_FILE}; export again")
        digest = _sha256(weights_path)
        if digest != config.weights_sha256:
            raise CheckpointError(
                f"'{weights_path}': sha256 {digest[:12]}... does not match the {config.weights_sha256[:12]}... "
                f"recorded in {CONFIG_FILE}; the weights are corrupted or belong to another export - export again"
            )
    return config


def load_model(
    path: str | os.PathLike,
    *,
    expected_bands: int | None = None,
    expected_model: str | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Rebuild a model from its folder without Lightning and without unpickling.

    Args:
        path: the model folder (or its ``config.json`` / ``model.safetensors``, or a run
            folder holding ``model/``).
        expected_bands: band count of the data it will see; a model for another band
            count is refused.
        expected_model: registry name it must have.
        device: where to put the weights.

    Returns:
        The ``nn.Module`` in eval mode; ``model.hsikit_config`` holds its :class:`ModelConfig`
        (wavelengths, normalisation, class names...).

    Raises:
        CheckpointError: incomplete, corrupted or foreign files, unknown architecture,
            arguments that do not fit it, tensors of other names/shapes, wrong band count.
    """
    config = read_model_config(path)
    folder = _resolve_model_dir(path)
    source = f"'{folder}'"
    if expected_model is not None and config.name != expected_model:
        raise CheckpointError(
            f"{source} holds a {config.name!r} model, not the expected {expected_model!r}; pick the right model folder"
        )
    if config.name not in list_models():
        raise CheckpointError(
            f"{source} was written for architecture {config.name!r}, which this hsikit does not know "
            f"(registered: {', '.join(list_models())}); upgrade hsikit or import the plugin that registers it"
        )
    if expected_bands is not None and config.bands is not None and int(config.bands) != int(expected_bands):
        raise CheckpointError(
            f"{source} was trained on {config.bands} bands, the input has {expected_bands}; use a model trained "
            "for this sensor, or resample the cube to the model's wavelengths (config.json 'wavelengths')"
        )
    model = build_model(config.name, config.arguments, source)
    weights_path = folder / WEIGHTS_FILE
    state = _read_safetensors(weights_path, config.name, model.state_dict())
    model.load_state_dict(state, strict=True)
    model.hsikit_config = config  # type: ignore[assignment]
    return model.to(device).eval()


def build_model(name: str, arguments: Mapping[str, Any], source: str = "<memory>") -> nn.Module:
    """Instantiate registered model ``name``; argument problems become :class:`CheckpointError`."""
    try:
        get_model_entry(name)
        check_model_arguments(name, arguments)
        return get_model_entry(name).cls(**arguments)
    except HsikitError as error:
        raise CheckpointError(f"{source}: cannot rebuild model {name!r}: {error}") from None
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{source}: model {name!r} refused the recorded arguments {dict(arguments)!r}: {error}; the file was "
            "written by an incompatible hsikit version - export it again"
        ) from None


def _read_safetensors(path: Path, name: str, reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
            _check_tensor_names(name, shapes, reference, f"'{path}'")
            return {key: handle.get_tensor(key) for key in shapes}
    except SafetensorError as error:
        raise CheckpointError(f"'{path}': not a readable safetensors file ({error}); export the model again") from None


def _check_tensor_names(
    name: str, shapes: Mapping[str, tuple[int, ...]], reference: Mapping[str, torch.Tensor], source: str
) -> None:
    missing = sorted(set(reference) - set(shapes))
    unexpected = sorted(set(shapes) - set(reference))
    wrong = [
        f"{key} {shapes[key]} (expected {tuple(reference[key].shape)})"
        for key in sorted(set(shapes) & set(reference))
        if tuple(shapes[key]) != tuple(reference[key].shape)
    ]
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing tensors {_first(missing)}")
        if unexpected:
            details.append(f"unexpected tensors {_first(unexpected)}")
        if wrong:
            details.append(f"tensors of another shape {_first(wrong)}")
        raise CheckpointError(
            f"{source}: the weights do not fit architecture {name!r} with the recorded arguments "
            f"({'; '.join(details)}); the file is for another architecture or band count"
        )


def _first(items: list[str], count: int = 4) -> str:
    shown = ", ".join(items[:count])
    return shown + (f" (+{len(items) - count} more)" if len(items) > count else "")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ Lightning checkpoints
def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning ``.ckpt`` with ``torch.load(weights_only=True)`` on the CPU.

    Raises :class:`CheckpointError` for a damaged file or one holding pickled objects.
    """
    checkpoint_path = Path(path)
    if not checkpoint_path.is_file():
        raise DataFileNotFoundError(checkpoint_path, "expected a Lightning checkpoint (.ckpt) written by a run")
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"'{checkpoint_path}': refused - it holds objects other than tensors and plain values "
            f"({str(error).splitlines()[0]}); hsikit never unpickles code from a checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(
            f"'{checkpoint_path}': not a readable checkpoint ({error}); it may be truncated"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"'{checkpoint_path}': not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def checkpoint_weights(
    checkpoint: Mapping[str, Any], *, use_ema: bool = True, source: str = "<checkpoint>"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(hsikit record, model state_dict)`` of a checkpoint written by an hsikit task.

    The record holds ``model`` (``{"name", "arguments"}``), ``task`` and ``data``. The
    state dict is the EMA weights when present and ``use_ema``, else the task's
    ``model.*`` weights with the prefix removed.
    """
    record = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(record, dict) or "model" not in record:
        raise CheckpointError(f"{source}: no hsikit record in this checkpoint; it was not written by an hsikit task")
    ema = checkpoint.get(EMA_CHECKPOINT_KEY)
    if use_ema and isinstance(ema, dict) and ema.get("state_dict"):
        return record, dict(ema["state_dict"])
    state = {
        key[len(MODEL_PREFIX) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(MODEL_PREFIX)
    }
    return record, state


def export_checkpoint(
    checkpoint_path: str | os.PathLike, directory: str | os.PathLike, *, use_ema: bool = True
) -> Path:
    """Export the model of a Lightning checkpoint to ``directory`` (see :func:`export_model`)."""
    source = f"'{checkpoint_path}'"
    checkpoint = read_checkpoint(checkpoint_path)
    record, state = checkpoint_weights(checkpoint, use_ema=use_ema, source=source)
    model = build_model(record["model"]["name"], record["model"]["arguments"], source)
    data = dict(record.get("data") or {})
    return export_model(model, directory, task=record.get("task"), data=data, state_dict=state)


def same_architecture(config: ModelConfig, name: str, arguments: Mapping[str, Any]) -> bool:
    """Whether ``config`` describes model ``name`` built with ``arguments``."""
    return config.name == name and arguments_equal(config.arguments, arguments)


__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "ModelConfig",
    "build_model",
    "checkpoint_weights",
    "export_checkpoint",
    "export_model",
    "load_model",
    "read_checkpoint",
    "read_model_config",
    "same_architecture",
]
