"""deephyp's workflow (Windrim et al.) in hsikit: data → network → named trainings → saved models → predictions.

deephyp's concepts, kept (spec 004), on hsikit's engine:

=================================  ===========================================================
deephyp                            here
=================================  ===========================================================
``HypImg(img, labels)``            :class:`SpectralData` (``from_cube`` / ``from_spectra``)
``pre_process('minmax')``          ``preprocessing="deephyp_minmax"`` (or any method of
                                   :mod:`hsikit.spectral.preprocess`)
``mlp_1D_network`` /               ``SpectralAutoencoder("deephyp_mlp_ae" / "deephyp_conv_ae",
``cnn_1D_network`` (autoencoder)   **arguments)``
``classifier.cnn_1D_network``      ``SpectralClassifier("cnn1d_classifier", **arguments)``
``add_train_op(name, ...)``        :meth:`add_training` (a :class:`TrainingConfig`)
``train(..., train_op_name=...)``  :meth:`train` (Lightning, with :class:`~hsikit.tasks.
                                   autoencoder.AutoencoderTask` or :class:`~hsikit.tasks.
                                   classification.ClassificationTask`)
``add_model(addr, modelName)``     :meth:`load`
``encoder`` / ``decoder`` /        :meth:`SpectralAutoencoder.encode` / :meth:`decode` /
``encoder_decoder``                :meth:`reconstruct`
``predict_labels`` /               :meth:`SpectralClassifier.predict_labels` /
``predict_scores``                 :meth:`predict_scores`
``predict_features(layer)``        :meth:`predict_features`
=================================  ===========================================================

Each named training has its own loss, optimiser, schedule, epochs and batch size, starts
from fresh weights (as each deephyp ``train`` call did) and yields its own model, kept in
:attr:`models` under the training's name and saved, when ``output_dir`` is given, as
``output_dir/<name>/epoch_<E>/`` (hsikit model folders: ``model.safetensors`` +
``config.json``, loadable with :func:`hsikit.load_model` or :meth:`load`), next to
``output_dir/<name>/config.json`` with the architecture in deephyp's keys.

Fixed against the original (each has a test): the weight decay reaches the gradients (an
L2 penalty on the live parameters); ``epochs=n`` trains exactly n epochs (deephyp ran n + 1;
``legacy_inclusive_epochs=True`` reproduces it); the losses are means over the batch
(``loss_reduction="sum"`` reproduces deephyp's sums); the learning-rate decay counts
optimizer steps, as deephyp's did, and says so; labels need not be contiguous (an explicit
label → column table, kept with the model, decodes predictions); ``save_epochs`` has no
shared mutable default; any number of dense layers works.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
from lightning.pytorch import Callback, LightningDataModule
from torch.utils.data import DataLoader

from hsikit.cube import Cube
from hsikit.data.datamodules import InMemoryPixels, ResumableDataLoader, ResumableSampler, keep_batch
from hsikit.errors import CheckpointError, ConfigError, ShapeMismatchError, UnknownNameError
from hsikit.spectral.preprocess import SpectralPreprocessing

DEFAULT_IGNORE_INDEX = -100
#: spectra per forward pass at inference (spec 004 §7.8: chunk large cubes)
INFERENCE_CHUNK = 65536
DEEPHYP_CONFIG_FILE = "config.json"


# ============================================================================ data
class SpectralData:
    """Spectra of a scene or a sample set, preprocessed, with optional labels (deephyp's ``HypImg``).

    Build with :meth:`from_cube` (a :class:`Cube` or ``(B, H, W)`` array; its valid pixels
    in row-major order) or :meth:`from_spectra` (``(N, B)`` samples).

    Attributes:
        spectra: preprocessed spectra ``(N, B)`` float32 (deephyp ``spectraPrep``).
        raw_spectra: the spectra before preprocessing ``(N, B)`` (float32).
        preprocessing: the fitted :class:`~hsikit.spectral.preprocess.SpectralPreprocessing`.
        labels: label values ``(N,)`` int64 (<= 0: background), or None.
        label_values: the distinct positive label values, sorted: column k of
            :meth:`one_hot` (and class index k of a classifier) is label ``label_values[k]``.
        targets: 0-based class indices ``(N,)`` (``-100`` for background), or None.
        rows, cols: pixel coordinates ``(N,)`` of each spectrum in the source cube, or None.
        image_shape: ``(H, W)`` of the source cube, or None.
        source: the source :class:`Cube` (georeference, wavelengths), or None.
        wavelengths: band centres (nm) or None.
    """

    def __init__(
        self,
        raw_spectra: np.ndarray,
        preprocessing: SpectralPreprocessing,
        labels: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        cols: np.ndarray | None = None,
        image_shape: tuple[int, int] | None = None,
        source: Cube | None = None,
        wavelengths: np.ndarray | None = None,
        label_values: np.ndarray | None = None,
    ) -> None:
        raw = np.asarray(raw_spectra, dtype=np.float32)
        if raw.ndim != 2 or raw.shape[0] == 0 or raw.shape[1] < 2:
            raise ShapeMismatchError(
                f"spectra must be a non-empty (samples, bands) array with at least 2 bands, got shape {raw.shape}"
            )
        if not np.all(np.isfinite(raw)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(raw), axis=1))[0])
            raise ShapeMismatchError(
                f"spectrum {bad} holds NaN or Inf; mark such pixels as nodata in the cube (they are then skipped)"
            )
        self.raw_spectra = raw
        self.preprocessing = preprocessing
        self.spectra = np.ascontiguousarray(preprocessing.transform(raw, band_axis=1), dtype=np.float32)
        self.rows, self.cols = rows, cols
        self.image_shape = image_shape
        self.source = source
        self.wavelengths = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
        self.labels: np.ndarray | None = None
        self.targets: np.ndarray | None = None
        self.label_values = np.zeros(0, dtype=np.int64) if label_values is None else np.asarray(label_values)
        if labels is not None:
            values = np.asarray(labels).reshape(-1)
            if values.shape[0] != raw.shape[0]:
                raise ShapeMismatchError(f"{values.shape[0]} labels for {raw.shape[0]} spectra; give one label each")
            if values.dtype.kind not in "iub":
                if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
                    values = values.astype(np.int64)
                else:
                    raise ShapeMismatchError(f"labels must be whole numbers, got dtype {values.dtype}")
            self.labels = values.astype(np.int64)
            if label_values is None:
                self.label_values = np.unique(self.labels[self.labels > 0])
            self.targets = encode_with_table(self.labels, self.label_values)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cube(
        cls,
        cube: Cube | np.ndarray,
        labels: np.ndarray | None = None,
        preprocessing: str | SpectralPreprocessing = "deephyp_minmax",
        preprocessing_options: Mapping[str, Any] | None = None,
        fit_mask: np.ndarray | None = None,
        label_values: Sequence[int] | None = None,
    ) -> SpectralData:
        """The valid pixels of ``cube`` ``(B, H, W)`` in row-major order (deephyp's reshape to ``(-1, B)``).

        Args:
            cube: a :class:`Cube` (nodata pixels are skipped) or a ``(B, H, W)`` array.
            labels: ``(H, W)`` label map (<= 0 background), or None.
            preprocessing: a method name (fitted here, on ``fit_mask`` pixels or all of them) or
                an already fitted :class:`SpectralPreprocessing` (e.g. a trained model's).
            preprocessing_options: options of a band normaliser method.
            fit_mask: ``(H, W)`` bool: the pixels a band normaliser is fitted on.
            label_values: the label → column table to use (a trained classifier's), instead of
                the labels present here.
        """
        source = cube if isinstance(cube, Cube) else Cube(np.asarray(cube))
        height, width = source.height, source.width
        valid = source.valid_mask
        flat = np.flatnonzero(valid.reshape(-1))
        rows, cols = np.divmod(flat, width)
        raw = np.asarray(source.data[:, rows, cols], dtype=np.float32).T
        label_list = None
        if labels is not None:
            label_map = np.asarray(labels)
            if label_map.shape != (height, width):
                raise ShapeMismatchError(
                    f"labels of shape {label_map.shape} do not match the cube's {height} x {width} pixels"
                )
            label_list = label_map[rows, cols]
        prep = _resolve_preprocessing(preprocessing, preprocessing_options)
        if not prep.fitted:
            mask = valid if fit_mask is None else np.asarray(fit_mask, dtype=bool) & valid
            prep.fit(source, mask=mask)
        return cls(
            raw,
            prep,
            labels=label_list,
            rows=rows,
            cols=cols,
            image_shape=(height, width),
            source=source,
            wavelengths=source.wavelengths,
            label_values=None if label_values is None else np.asarray(label_values),
        )

    @classmethod
    def from_spectra(
        cls,
        spectra: np.ndarray,
        labels: np.ndarray | None = None,
        preprocessing: str | SpectralPreprocessing = "deephyp_minmax",
        preprocessing_options: Mapping[str, Any] | None = None,
        wavelengths: Sequence[float] | None = None,
        label_values: Sequence[int] | None = None,
    ) -> SpectralData:
        """Samples ``(N, B)`` (deephyp's second input form), labels ``(N,)`` optional."""
        raw = np.asarray(spectra, dtype=np.float32)
        prep = _resolve_preprocessing(preprocessing, preprocessing_options)
        if not prep.fitted:
            prep.fit_spectra(raw)
        return cls(
            raw,
            prep,
            labels=labels,
            wavelengths=None if wavelengths is None else np.asarray(wavelengths),
            label_values=None if label_values is None else np.asarray(label_values),
        )

    # ------------------------------------------------------------------ views
    @property
    def num_samples(self) -> int:
        return int(self.spectra.shape[0])

    @property
    def num_bands(self) -> int:
        return int(self.spectra.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of distinct positive labels (deephyp ``numClasses``)."""
        return int(self.label_values.size)

    def one_hot(self) -> np.ndarray:
        """``(N, K)`` float32: row n has a 1 in column k when its label is ``label_values[k]``; background: 0s."""
        if self.targets is None:
            raise ConfigError("this SpectralData has no labels; build it with labels= to get one-hot targets")
        encoded = np.zeros((self.num_samples, self.num_classes), dtype=np.float32)
        labelled = self.targets >= 0
        encoded[np.flatnonzero(labelled), self.targets[labelled]] = 1.0
        return encoded

    def subset(self, indices: Sequence[int] | np.ndarray) -> SpectralData:
        """The samples ``indices`` (same preprocessing and label table)."""
        index = np.asarray(indices)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        part = SpectralData.__new__(SpectralData)
        part.raw_spectra = self.raw_spectra[index]
        part.spectra = self.spectra[index]
        part.preprocessing = self.preprocessing
        part.rows = None if self.rows is None else self.rows[index]
        part.cols = None if self.cols is None else self.cols[index]
        part.image_shape, part.source, part.wavelengths = self.image_shape, self.source, self.wavelengths
        part.label_values = self.label_values
        part.labels = None if self.labels is None else self.labels[index]
        part.targets = None if self.targets is None else self.targets[index]
        return part

    def labelled(self) -> SpectralData:
        """The samples with a positive label."""
        if self.targets is None:
            raise ConfigError("this SpectralData has no labels")
        return self.subset(np.flatnonzero(self.targets >= 0))

    def first_per_class(self, count: int, skip: int = 0) -> np.ndarray:
        """Indices of the ``count`` first samples of each class after its first ``skip`` (deephyp's example split)."""
        if self.targets is None:
            raise ConfigError("this SpectralData has no labels")
        chosen = [np.flatnonzero(self.targets == k)[skip : skip + count] for k in range(self.num_classes)]
        return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)

    def to_image(self, values: np.ndarray, fill: float = 0) -> np.ndarray:
        """Per-sample values ``(N,)`` or ``(N, K)`` placed at their pixels: ``(H, W)`` or ``(K, H, W)``."""
        if self.image_shape is None or self.rows is None or self.cols is None:
            raise ConfigError("these spectra do not come from a cube (from_spectra): they have no pixel positions")
        array = np.asarray(values)
        if array.shape[0] != self.num_samples:
            raise ShapeMismatchError(f"{array.shape[0]} values for {self.num_samples} pixels")
        height, width = self.image_shape
        if array.ndim == 1:
            image = np.full((height, width), fill, dtype=array.dtype)
            image[self.rows, self.cols] = array
            return image
        image = np.full((array.shape[1], height, width), fill, dtype=array.dtype)
        image[:, self.rows, self.cols] = array.T
        return image

    def to_cube(self, values: np.ndarray, band_names: Sequence[str] | None = None) -> Cube:
        """Per-pixel vectors ``(N, K)`` as a ``(K, H, W)`` float32 :class:`Cube` with the source's georeference.

        Pixels that were not in the data (nodata of the source) are NaN and masked.
        """
        image = self.to_image(np.asarray(values, dtype=np.float32).reshape(self.num_samples, -1), fill=np.nan)
        assert self.rows is not None and self.cols is not None
        valid = np.zeros(image.shape[1:], dtype=bool)
        valid[self.rows, self.cols] = True
        complete = bool(valid.all())
        source = self.source
        return Cube(
            image,
            band_names=band_names,
            crs=None if source is None else source.crs,
            transform=None if source is None else source.transform,
            nodata=None if complete else float("nan"),
            nodata_mask=None if complete else ~valid,
            nonfinite="error" if complete else "mask",
        )


def encode_with_table(labels: np.ndarray, label_values: np.ndarray) -> np.ndarray:
    """0-based columns of ``labels`` in the sorted table ``label_values``; <= 0 and unknown labels → -100.

    A positive label missing from the table raises :class:`ShapeMismatchError` (it belongs to
    no class of the model).
    """
    values = np.asarray(labels).astype(np.int64)
    table = np.asarray(label_values).astype(np.int64)
    targets = np.full(values.shape, DEFAULT_IGNORE_INDEX, dtype=np.int64)
    positive = values > 0
    if positive.any():
        position = np.searchsorted(table, values[positive])
        position = np.clip(position, 0, max(table.size - 1, 0))
        known = table.size > 0
        found = (table[position] == values[positive]) if known else np.zeros(position.shape, bool)
        if not found.all():
            missing = np.unique(values[positive][~found])
            raise ShapeMismatchError(
                f"label value(s) {missing.tolist()} are not among the classes {table.tolist()} of the label table; "
                "use labels of the classes the model was trained on"
            )
        targets[positive] = position
    return targets


def _resolve_preprocessing(
    preprocessing: str | SpectralPreprocessing, options: Mapping[str, Any] | None
) -> SpectralPreprocessing:
    if isinstance(preprocessing, SpectralPreprocessing):
        if options:
            raise ConfigError("preprocessing_options apply to a method name, not to a SpectralPreprocessing object")
        return preprocessing
    return SpectralPreprocessing(preprocessing, **dict(options or {}))


# ============================================================================ named trainings
@dataclass
class TrainingConfig:
    """One named way of training a network (deephyp's train op), with its own optimiser and schedule.

    Args:
        name: the training's name (its model is kept and saved under it).
        loss: autoencoders: ``"SSE"``, ``"CSA"``, ``"SA"`` or ``"SID"`` (None: the network's default,
            CSA for the MLP and SSE for the convolutional autoencoder); classifiers: unused.
        loss_reduction: ``"mean"`` over the spectra of a batch, or deephyp's ``"sum"``.
        balance_classes: classifiers: deephyp's class balancing.
        optimizer: ``"adam"`` or ``"sgd"`` (plain, deephyp) or ``"adamw"``.
        lr: learning rate.
        weight_decay: λ of the L2 penalty ``λ Σ_p ||p||² / 2`` over all weights and biases
            (deephyp ``wd_lambda``).
        lr_decay_steps, lr_decay_rate: exponential staircase decay every ``lr_decay_steps``
            optimizer steps (not epochs).
        piecewise_bounds, piecewise_values: piecewise-constant rates after these optimizer steps.
        epochs: epochs trained (exactly).
        batch_size: spectra per optimizer step (None: the whole training set, deephyp's default).
        shuffle_each_epoch: draw a new order every epoch; False shuffles once before training
            (deephyp's ``Iterator.shuffle()``).
        save_epochs: epochs after which the weights are saved (the last epoch always is).
        val_every: validate every this many epochs when validation data is given.
        legacy_inclusive_epochs: train ``epochs + 1`` epochs, as deephyp's loop did.
    """

    name: str
    loss: str | None = None
    loss_reduction: str = "mean"
    balance_classes: bool = True
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay_steps: int | None = None
    lr_decay_rate: float | None = None
    piecewise_bounds: list[int] = field(default_factory=list)
    piecewise_values: list[float] = field(default_factory=list)
    epochs: int = 100
    batch_size: int | None = None
    shuffle_each_epoch: bool = True
    save_epochs: list[int] = field(default_factory=list)
    val_every: int = 1
    legacy_inclusive_epochs: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"a training name must be a non-empty folder name, got {self.name!r}")
        if isinstance(self.epochs, bool) or int(self.epochs) != self.epochs or self.epochs < 1:
            raise ConfigError(f"training {self.name!r}: epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size is not None and (int(self.batch_size) != self.batch_size or self.batch_size < 1):
            raise ConfigError(f"training {self.name!r}: batch_size must be a positive integer or None")
        if self.optimizer not in ("adam", "sgd", "adamw"):
            raise ConfigError(
                f"training {self.name!r}: optimizer must be 'adam', 'sgd' or 'adamw', got {self.optimizer!r}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"training {self.name!r}: lr must be positive, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"training {self.name!r}: weight_decay must be >= 0, got {self.weight_decay}")
        if self.val_every < 1:
            raise ConfigError(f"training {self.name!r}: val_every must be >= 1, got {self.val_every}")
        self.epochs = int(self.epochs)
        self.save_epochs = sorted({int(e) for e in self.save_epochs})
        bad = [e for e in self.save_epochs if not 1 <= e <= self.epochs_to_run]
        if bad:
            raise ConfigError(
                f"training {self.name!r}: save_epochs {bad} are outside 1..{self.epochs_to_run}, the epochs trained"
            )
        self.scheduler  # validates the decay options

    @property
    def epochs_to_run(self) -> int:
        """Epochs actually trained (``epochs``, or ``epochs + 1`` with ``legacy_inclusive_epochs``)."""
        return self.epochs + 1 if self.legacy_inclusive_epochs else self.epochs

    @property
    def scheduler(self) -> str:
        """``"constant"``, ``"exponential"`` or ``"piecewise"`` from the decay options."""
        exponential = self.lr_decay_steps is not None or self.lr_decay_rate is not None
        piecewise = bool(self.piecewise_bounds or self.piecewise_values)
        if exponential and piecewise:
            raise ConfigError(
                f"training {self.name!r}: give either lr_decay_steps/lr_decay_rate or piecewise_bounds/values, not both"
            )
        return "exponential" if exponential else "piecewise" if piecewise else "constant"

    def task_options(self) -> dict[str, Any]:
        """The optimisation arguments of an hsikit task for this training."""
        return {
            "optimizer": self.optimizer,
            "lr": self.lr,
            "weight_decay": 0.0,
            "momentum": 0.0,
            "l2_penalty": self.weight_decay,
            "scheduler": self.scheduler,
            "lr_decay_steps": self.lr_decay_steps,
            "lr_decay_rate": self.lr_decay_rate,
            "lr_piecewise_bounds": list(self.piecewise_bounds) or None,
            "lr_piecewise_values": list(self.piecewise_values) or None,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ============================================================================ networks
class _SpectralNetwork:
    """What autoencoders and classifiers share: architecture, named trainings, models, save/load."""

    task_kind: ClassVar[str] = ""
    default_model: ClassVar[str] = ""

    def __init__(self, model: str | None = None, **arguments: Any) -> None:
        from hsikit.models.registry import check_model_arguments, get_model_entry

        name = model or self.default_model
        entry = get_model_entry(name)
        if entry.task != self.task_kind:
            raise ConfigError(
                f"{type(self).__name__} needs a registered {self.task_kind} model; {name!r} is a {entry.task} model "
                f"(see hsikit.models.list_models(task={self.task_kind!r}))"
            )
        self.model_name = name
        self.model_args = dict(arguments)
        missing = [p for p in entry.required_parameters() if p not in self.model_args]
        if missing:
            raise ConfigError(f"{type(self).__name__}({name!r}) needs {', '.join(missing)}")
        check_model_arguments(name, self.model_args)
        from hsikit.models.registry import model_spec

        self.model_args = model_spec(self.build())[1]  # every argument, defaults included (as saved)
        self.trainings: dict[str, TrainingConfig] = {}
        self.models: dict[str, nn.Module] = {}
        self.model_records: dict[str, dict[str, Any]] = {}
        self.histories: dict[str, list[dict[str, float]]] = {}

    # ------------------------------------------------------------------ architecture
    def build(self) -> nn.Module:
        """A freshly initialised network of this architecture."""
        from hsikit.models.registry import create_model

        return create_model(self.model_name, **self.model_args)

    @property
    def in_bands(self) -> int:
        return int(self.model_args["in_bands"])

    def deephyp_config(self) -> dict[str, Any]:
        """The architecture in deephyp's ``config.json`` keys."""
        return self.build().deephyp_config()  # type: ignore[operator]

    @classmethod
    def from_config(cls, path: str | os.PathLike) -> _SpectralNetwork:
        """A network from a ``config.json``: deephyp's (architecture keys) or an hsikit model folder's."""
        config_path = Path(path)
        if config_path.is_dir():
            config_path = config_path / DEEPHYP_CONFIG_FILE
        try:
            payload = json.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            from hsikit.errors import DataFileNotFoundError

            raise DataFileNotFoundError(config_path, "expected a deephyp or hsikit config.json") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"'{config_path}': not valid JSON ({error})") from None
        if isinstance(payload, dict) and payload.get("format") == "hsikit.model":
            return cls(payload["name"], **payload["arguments"])
        return cls._from_deephyp_keys(payload, f"'{config_path}'")

    @classmethod
    def _from_deephyp_keys(cls, payload: Any, source: str) -> _SpectralNetwork:
        raise NotImplementedError

    # ------------------------------------------------------------------ named trainings
    def add_training(self, name: str, **options: Any) -> TrainingConfig:
        """Add (or replace) the named training ``name`` (deephyp ``add_train_op``); see :class:`TrainingConfig`."""
        config = TrainingConfig(name=name, **options)
        self._check_training(config)
        self.trainings[name] = config
        return config

    def _check_training(self, config: TrainingConfig) -> None:
        """Refuse options this kind of network does not use."""

    def _training(self, name: str) -> TrainingConfig:
        try:
            return self.trainings[name]
        except KeyError:
            known = ", ".join(self.trainings) or "none yet"
            raise UnknownNameError(f"no training named {name!r} (added: {known}); call add_training first") from None

    def _model(self, name: str | None) -> nn.Module:
        if name is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise ConfigError(
                f"{len(self.models)} models are available ({', '.join(self.models) or 'none'}): name the one to use "
                "with model="
            )
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(self.models) or "none: train or load one first"
            raise UnknownNameError(f"no model named {name!r} (available: {known})") from None

    def record(self, model: str | None = None) -> dict[str, Any]:
        """What is known about a model: its training, preprocessing, label table, epoch."""
        if model is None:
            model = next(iter(self.models)) if len(self.models) == 1 else None
        self._model(model)
        assert model is not None
        return self.model_records[model]

    def preprocessing(self, model: str | None = None) -> SpectralPreprocessing | None:
        """The preprocessing the model was trained with (apply it to new data: ``SpectralData.from_cube(cube,
        preprocessing=net.preprocessing(name))``)."""
        state = self.record(model).get("preprocessing")
        return None if state is None else SpectralPreprocessing.from_dict(state)

    # ------------------------------------------------------------------ training
    def train(
        self,
        name: str,
        train_data: SpectralData,
        val_data: SpectralData | None = None,
        output_dir: str | os.PathLike | None = None,
        seed: int = 0,
        progress: bool = False,
        accelerator: str = "cpu",
    ) -> list[dict[str, float]]:
        """Train a fresh network with the named training; the model is kept as ``self.models[name]``.

        Args:
            name: a training added with :meth:`add_training`.
            train_data, val_data: :class:`SpectralData` (classifiers: labelled samples; background
                samples are ignored).
            output_dir: when given, weights are saved in ``output_dir/<name>/epoch_<E>/`` after
                each of the training's ``save_epochs`` and after the last epoch, with
                ``output_dir/<name>/config.json`` (deephyp keys) and ``history.json``.
            seed: seeds the initial weights and the batch order.
            progress: show Lightning's progress bar.
            accelerator: Lightning accelerator (``"cpu"``, ``"gpu"``, ``"auto"``).

        Returns:
            The history: one ``{"epoch", "train_loss", ["val_loss"]}`` dict per epoch (losses as
            the task logs them: means over the epoch's spectra).
        """
        import lightning as L

        from hsikit.engine.callbacks import StepSeed

        config = self._training(name)
        self._check_data(train_data, "train_data")
        if val_data is not None:
            self._check_data(val_data, "val_data")
        L.seed_everything(seed, verbose=False)
        task = self._make_task(config)
        datamodule = _ArrayDataModule(self, config, train_data, val_data, seed)
        folder = None if output_dir is None else Path(output_dir) / name
        history = _EpochHistory()
        callbacks: list[Any] = [StepSeed(seed), history]
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            _write_json(folder / DEEPHYP_CONFIG_FILE, self.deephyp_config())
            save_at = sorted(set(config.save_epochs) | {config.epochs_to_run})
            callbacks.append(_SaveAtEpochs(self, folder, save_at, datamodule))
        trainer = L.Trainer(
            max_epochs=config.epochs_to_run,
            accelerator=accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            check_val_every_n_epoch=config.val_every,
            limit_val_batches=0 if val_data is None else 1.0,
            callbacks=callbacks,
        )
        trainer.fit(task, datamodule=datamodule)
        model = task.model
        assert model is not None
        self.models[name] = model.eval()
        self.model_records[name] = datamodule.model_record(epoch=config.epochs_to_run)
        self.histories[name] = history.rows
        if folder is not None:
            _write_json(folder / "history.json", history.rows)
        return history.rows

    def _check_data(self, data: SpectralData, role: str) -> None:
        if not isinstance(data, SpectralData):
            raise ConfigError(f"{role} must be a SpectralData (SpectralData.from_cube / from_spectra)")
        if data.num_bands != self.in_bands:
            raise ShapeMismatchError(
                f"{role} has {data.num_bands} bands but the network takes {self.in_bands} (in_bands); build the "
                "network for this data or select its bands"
            )

    def _make_task(self, config: TrainingConfig) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ save and load
    def save(self, model: str, directory: str | os.PathLike) -> Path:
        """Write model ``model`` as an hsikit model folder (``model.safetensors`` + ``config.json``); returns it."""
        _export(self._model(model), Path(directory), self.task_kind, self.record(model))
        return Path(directory)

    def load(self, path: str | os.PathLike, name: str | None = None) -> str:
        """Add the saved model at ``path`` under ``name`` (default: the folder name) (deephyp ``add_model``).

        Raises :class:`CheckpointError` when it holds another architecture than this network's.
        """
        from hsikit.engine.export import load_model

        model = load_model(path, expected_model=self.model_name)
        config = model.hsikit_config  # type: ignore[attr-defined]
        if not self._same_architecture(model):
            raise CheckpointError(
                f"'{path}' holds a {config.name!r} model with arguments {config.arguments}, not this network's "
                f"{self.model_args}; build the network from that folder's config (from_config) to use it"
            )
        key = name or Path(path).name
        self.models[key] = model
        record = dict(config.extra)
        record.update({k: v for k, v in config.data_description().items() if v is not None})
        self.model_records[key] = record
        return key

    def _same_architecture(self, model: nn.Module) -> bool:
        """Whether ``model`` has this network's architecture (equal deephyp configs: ``tiedWeights`` None == 0s)."""
        from hsikit.models.registry import arguments_equal, model_spec

        name, arguments = model_spec(model)
        if name != self.model_name:
            return False
        if arguments_equal(arguments, self.model_args):
            return True
        describe = getattr(model, "deephyp_config", None)
        return callable(describe) and describe() == self.deephyp_config()

    # ------------------------------------------------------------------ inference
    def _inputs(self, data: SpectralData | np.ndarray | torch.Tensor) -> torch.Tensor:
        values = data.spectra if isinstance(data, SpectralData) else data
        tensor = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
        tensor = tensor.float()
        if tensor.ndim != 2 or tensor.shape[1] != self.in_bands:
            raise ShapeMismatchError(
                f"expected preprocessed spectra (N, {self.in_bands}), got shape {tuple(tensor.shape)}"
            )
        return tensor

    @torch.no_grad()
    def _run(self, fn: Any, inputs: torch.Tensor, chunk: int = INFERENCE_CHUNK) -> np.ndarray:
        outputs = [fn(inputs[start : start + chunk]).float().cpu() for start in range(0, inputs.shape[0], chunk)]
        return torch.cat(outputs).numpy()

    def predict_features(
        self, data: SpectralData | np.ndarray, layer: int | str, model: str | None = None
    ) -> np.ndarray:
        """One layer's activations (deephyp ``predict_features``): ``layer`` is a name or a 1-based number."""
        network = self._model(model)
        return self._run(lambda x: network.features(x, layer), self._inputs(data))  # type: ignore[operator]


class SpectralAutoencoder(_SpectralNetwork):
    """A deephyp spectral autoencoder with named trainings (see the module docstring).

    Args:
        model: ``"deephyp_mlp_ae"`` (default) or ``"deephyp_conv_ae"``.
        **arguments: the model's constructor arguments (``in_bands`` required).

    Example:
        >>> data = SpectralData.from_cube(cube)                                   # doctest: +SKIP
        >>> net = SpectralAutoencoder("deephyp_mlp_ae", in_bands=data.num_bands)  # doctest: +SKIP
        >>> net.add_training("csa", loss="CSA", epochs=50, batch_size=1000)       # doctest: +SKIP
        >>> net.train("csa", data, output_dir="models/samson")                   # doctest: +SKIP
        >>> latent = net.encode(data, model="csa")                                # doctest: +SKIP
    """

    task_kind = "autoencoder"
    default_model = "deephyp_mlp_ae"

    @classmethod
    def _from_deephyp_keys(cls, payload: Any, source: str) -> SpectralAutoencoder:
        from hsikit.models.registry import model_spec
        from hsikit.models.spectral.autoencoders import DeephypConvAutoencoder, DeephypMLPAutoencoder

        if not isinstance(payload, dict):
            raise ConfigError(f"{source}: a deephyp config is a JSON object")
        builder = DeephypConvAutoencoder if "zDim" in payload else DeephypMLPAutoencoder
        name, arguments = model_spec(builder.from_deephyp_config(payload))
        return cls(name, **arguments)

    def _make_task(self, config: TrainingConfig) -> Any:
        from hsikit.tasks.autoencoder import AutoencoderTask

        default_loss = "SSE" if self.model_name == "deephyp_conv_ae" else "CSA"
        return AutoencoderTask(
            model=self.model_name,
            model_args=dict(self.model_args),
            loss=config.loss or default_loss,
            loss_reduction=config.loss_reduction,  # type: ignore[arg-type]
            figure_pixels=0,
            **config.task_options(),
        )

    def _check_training(self, config: TrainingConfig) -> None:
        from hsikit.losses.spectral import RECONSTRUCTION_LOSSES

        if config.loss is not None and config.loss.upper() not in RECONSTRUCTION_LOSSES:
            raise ConfigError(
                f"training {config.name!r}: loss must be one of {', '.join(RECONSTRUCTION_LOSSES)}, got {config.loss!r}"
            )
        if config.loss_reduction not in ("mean", "sum"):
            raise ConfigError(f"training {config.name!r}: loss_reduction must be 'mean' or 'sum'")

    def encode(self, data: SpectralData | np.ndarray, model: str | None = None) -> np.ndarray:
        """Latent vectors ``(N, latent)`` of preprocessed spectra (deephyp ``encoder``)."""
        network = self._model(model)
        return self._run(network.encode, self._inputs(data))  # type: ignore[arg-type]

    def decode(self, latent: np.ndarray | torch.Tensor, model: str | None = None) -> np.ndarray:
        """Spectra ``(N, B)`` from latent vectors ``(N, latent)`` (deephyp ``decoder``)."""
        network = self._model(model)
        codes = torch.as_tensor(np.asarray(latent), dtype=torch.float32)
        return self._run(network.decode, codes)  # type: ignore[arg-type]

    def reconstruct(self, data: SpectralData | np.ndarray, model: str | None = None) -> np.ndarray:
        """Reconstructions ``(N, B)`` of preprocessed spectra (deephyp ``encoder_decoder``)."""
        network = self._model(model)
        return self._run(network, self._inputs(data))


class SpectralClassifier(_SpectralNetwork):
    """A per-pixel spectral classifier (deephyp's 1-D CNN by default) with named trainings.

    Args:
        model: a registered classifier taking spectra ``(N, B)``: ``"cnn1d_classifier"``
            (default) or ``"spectral_mlp"``. (HybridSN takes patches: train it with
            ``hsikit fit`` and :class:`~hsikit.data.spectral_datamodules.PatchClassificationDataModule`.)
        **arguments: constructor arguments (``in_bands``, ``num_classes`` required).
    """

    task_kind = "classification"
    default_model = "cnn1d_classifier"

    @classmethod
    def _from_deephyp_keys(cls, payload: Any, source: str) -> SpectralClassifier:
        from hsikit.models.registry import model_spec
        from hsikit.models.spectral.classifiers import DeephypCNNClassifier

        name, arguments = model_spec(DeephypCNNClassifier.from_deephyp_config(payload))
        return cls(name, **arguments)

    @property
    def num_classes(self) -> int:
        return int(self.model_args["num_classes"])

    def _check_training(self, config: TrainingConfig) -> None:
        if config.loss not in (None, "cross_entropy"):
            raise ConfigError(
                f"training {config.name!r}: classifiers train with cross-entropy; remove loss={config.loss!r}"
            )

    def _check_data(self, data: SpectralData, role: str) -> None:
        super()._check_data(data, role)
        if data.targets is None:
            raise ConfigError(f"{role} has no labels: a classifier trains on labelled SpectralData")
        if role == "train_data" and data.num_classes != self.num_classes:
            raise ShapeMismatchError(
                f"{role} has {data.num_classes} classes (labels {data.label_values.tolist()}) but the network has "
                f"num_classes={self.num_classes}"
            )

    def _make_task(self, config: TrainingConfig) -> Any:
        from hsikit.tasks.classification import ClassificationTask

        return ClassificationTask(
            model=self.model_name,
            model_args=dict(self.model_args),
            balance_classes=config.balance_classes,
            **config.task_options(),
        )

    def predict_scores(
        self, data: SpectralData | np.ndarray, model: str | None = None, use_softmax: bool = True
    ) -> np.ndarray:
        """Class scores ``(N, K)``: softmax probabilities (or logits with ``use_softmax=False``)."""
        network = self._model(model)
        logits = self._run(network, self._inputs(data))
        if not use_softmax:
            return logits
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict_labels(self, data: SpectralData | np.ndarray, model: str | None = None) -> np.ndarray:
        """Predicted **label values** ``(N,)``: the label → column table of the training data, applied in reverse.

        With contiguous labels 1..K this is deephyp's ``argmax + 1``.
        """
        columns = self.predict_scores(data, model, use_softmax=False).argmax(axis=1)
        return self.label_values_of(columns, model)

    def label_values_of(self, columns: np.ndarray, model: str | None = None) -> np.ndarray:
        """The label values of 0-based class indices (columns of the scores) under the model's label table."""
        table = np.asarray(self.record(model).get("label_values") or np.arange(1, self.num_classes + 1))
        return table[np.asarray(columns, dtype=np.int64)]


# ============================================================================ Lightning glue
class _ArrayDataModule(LightningDataModule):
    """The training (and validation) :class:`SpectralData` of one named training, as a LightningDataModule."""

    def __init__(
        self,
        network: _SpectralNetwork,
        config: TrainingConfig,
        train_data: SpectralData,
        val_data: SpectralData | None,
        seed: int,
    ) -> None:
        super().__init__()
        self.network, self.config, self.seed = network, config, seed
        self.train_source = train_data
        table = train_data.label_values
        train = _as_pixels(train_data, network.task_kind, table)
        if not config.shuffle_each_epoch:  # deephyp: one shuffle before training, then a fixed order
            order = torch.from_numpy(np.random.default_rng(seed).permutation(len(train)))
            train = InMemoryPixels(train.spectra[order], train.targets[order])
        self.train_set = train
        self.val_set = None if val_data is None else _as_pixels(val_data, network.task_kind, table)

    @property
    def train_targets(self) -> torch.Tensor:
        return self.train_set.targets

    @property
    def data_description(self) -> dict[str, Any]:
        source = self.train_source
        normalizer = source.preprocessing.normalizer
        description: dict[str, Any] = {
            "bands": source.num_bands,
            "wavelengths": None if source.wavelengths is None else source.wavelengths.tolist(),
            "normalization": None if normalizer is None else normalizer.to_dict(),
            "input": "pixel",
        }
        if self.network.task_kind == "classification":
            description["class_names"] = [f"label {value}" for value in source.label_values.tolist()]
        return description

    def model_record(self, epoch: int) -> dict[str, Any]:
        """What is saved with a model: data facts, preprocessing, training, epoch (and the label table)."""
        record = {key: value for key, value in self.data_description.items() if value is not None}
        record.update(
            {
                "preprocessing": self.train_source.preprocessing.to_dict(),
                "training": self.config.to_dict(),
                "epoch": int(epoch),
            }
        )
        if self.network.task_kind == "classification":
            record["label_values"] = self.train_source.label_values.tolist()
        return record

    def train_dataloader(self) -> ResumableDataLoader:
        batch = self.config.batch_size or len(self.train_set)
        sampler = ResumableSampler(len(self.train_set), shuffle=self.config.shuffle_each_epoch, seed=self.seed)
        return ResumableDataLoader(self.train_set, sampler=sampler, batch_size=batch, collate_fn=keep_batch)

    def val_dataloader(self) -> Any:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=8192, collate_fn=keep_batch, shuffle=False)


def _as_pixels(data: SpectralData, kind: str, label_values: np.ndarray) -> InMemoryPixels:
    """Spectra and targets as tensors; classification keeps the labelled samples, encoded with ``label_values``."""
    spectra = torch.from_numpy(np.ascontiguousarray(data.spectra, dtype=np.float32))
    if kind == "classification":
        assert data.labels is not None
        targets = encode_with_table(data.labels, label_values)
        keep = np.flatnonzero(targets >= 0)
        if keep.size == 0:
            raise ConfigError("the classification data holds no labelled sample (all labels <= 0)")
        return InMemoryPixels(spectra[keep], torch.from_numpy(targets[keep]))
    targets_array = (
        np.full(data.num_samples, DEFAULT_IGNORE_INDEX, dtype=np.int64) if data.targets is None else data.targets
    )
    return InMemoryPixels(spectra, torch.from_numpy(targets_array.astype(np.int64)))


def _write_json(path: Path, payload: Any) -> None:
    from hsikit.engine.callbacks import write_json_atomic

    write_json_atomic(path, payload)


class _EpochHistory(Callback):
    """Collects ``{"epoch", "train_loss", "val_loss"}`` after every training epoch (1-based epochs)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        metrics = trainer.callback_metrics
        row: dict[str, float] = {"epoch": int(trainer.current_epoch) + 1}
        for key, name in (("train/loss_epoch", "train_loss"), ("val/loss", "val_loss")):
            if key in metrics:
                row[name] = float(metrics[key])
        self.rows.append(row)


class _SaveAtEpochs(Callback):
    """Saves the model after each listed epoch (1-based) into ``folder/epoch_<E>`` (an hsikit model folder)."""

    def __init__(self, network: _SpectralNetwork, folder: Path, epochs: Sequence[int], datamodule: _ArrayDataModule):
        self.network, self.folder, self.epochs, self.datamodule = network, folder, set(epochs), datamodule

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = int(trainer.current_epoch) + 1
        if epoch in self.epochs:
            _export(pl_module.model, self.folder / f"epoch_{epoch}", self.network.task_kind,
                    self.datamodule.model_record(epoch))


def _export(model: nn.Module, folder: Path, task: str, record: Mapping[str, Any]) -> Path:
    from hsikit.engine.export import export_model

    data = {key: record[key] for key in ("bands", "wavelengths", "normalization", "class_names") if key in record}
    extra = {key: value for key, value in record.items() if key not in data}
    return export_model(model, folder, task=task, data=data, extra=extra)


__all__ = [
    "SpectralAutoencoder",
    "SpectralClassifier",
    "SpectralData",
    "TrainingConfig",
    "encode_with_table",
]
