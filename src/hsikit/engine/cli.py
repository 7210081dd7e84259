"""``hsikit fit | validate | test | predict``: the training engine's command line (LightningCLI).

An experiment is one YAML file naming the task (``model:``), the data (``data:``),
the trainer (``trainer:``) and the run (``run:``, see :class:`~hsikit.engine.trainer.RunOptions`)::

    hsikit fit --config configs/indian_pines_mlp.yaml
    hsikit fit --config configs/indian_pines_mlp.yaml --model.init_args.lr 1e-4 --trainer.max_epochs 5
    hsikit fit --config configs/indian_pines_mlp.yaml --print_config        # the resolved config
    hsikit fit --config runs/x/v/config.yaml --ckpt_path runs/x/v/checkpoints/last.ckpt   # resume
    hsikit test --config runs/x/v/config.yaml --ckpt_path runs/x/v/checkpoints/<best>.ckpt
    hsikit predict --model runs/x/v/model --input scene.tif --output classes.tif --tile 512 --overlap 64

``model:`` and ``data:`` take any :class:`~hsikit.tasks.base.BaseTask` and
``LightningDataModule`` subclass by ``class_path`` (short names such as
``ClassificationTask`` work for hsikit's own classes). Lightning checkpoints are
always loaded with ``weights_only=True``. ``predict`` with ``--input`` runs the tiled
scene inference of :func:`hsikit.inference.predict_scene` on an exported model, dispatched on
the model's task (:mod:`hsikit.inference.predict`)::

    hsikit predict --model runs/glacier/v1/model --input scene.tif --output classes.tif --vector classes.gpkg
    hsikit predict --model runs/hybridsn/v1/model --input pavia.tif --output classes.tif --probabilities p.tif

A run given ``--ckpt_path`` inside an existing run folder (``<run>/checkpoints/``)
writes into that folder: a resumed fit continues it, and test/validate add their
section to its ``metrics.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from hsikit.errors import ConfigError, HsikitError

SUBCOMMANDS = ("fit", "validate", "test", "predict")


# ---------------------------------------------------------------------------- tiled prediction
def _predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hsikit predict",
        description="Run an exported model over a whole scene, tile by tile (bounded memory). The model's task "
        "decides how: segmentation (class map of the logits), classification (pixel models per spectrum, patch "
        "models such as HybridSN per pixel window, with the stored preprocessing and PCA), clustering. "
        "Reconstruction and autoencoder models are served by 'hsikit reconstruct' and 'hsikit autoencoder apply'.",
    )
    parser.add_argument("--model", required=True, help="model folder (model.safetensors + config.json)")
    parser.add_argument("--input", required=True, help="input cube (GeoTIFF, ENVI, .mat, .npy...)")
    parser.add_argument("--output", required=True, help="output raster (format from the extension)")
    parser.add_argument("--tile", type=int, default=512, help="tile size in pixels (default 512)")
    parser.add_argument("--overlap", type=int, default=64, help="overlap of neighbouring tiles (default 64)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per model call (default 4)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1...)")
    parser.add_argument(
        "--output-kind",
        default=None,
        choices=("classes", "probabilities", "logits", "regression"),
        help="what to write (default: classes for segmentation, classification and clustering models, "
        "else the raw outputs)",
    )
    parser.add_argument("--ensemble", action="store_true", help="average the 8 flips/rotations of each tile")
    parser.add_argument("--probabilities", default=None, metavar="FILE",
                        help="with class output, also write the merged class probabilities (float32 raster)")
    parser.add_argument("--vector", default=None, metavar="FILE",
                        help="also trace the class raster into polygons (.gpkg, .shp or .geojson) with class names")
    parser.add_argument("--min-area", type=float, default=0.0,
                        help="with --vector: drop polygons smaller than this (CRS units squared)")
    parser.add_argument("--compress", default=None, help="GeoTIFF compression of the output (e.g. deflate)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run_tiled_prediction(argv: Sequence[str]) -> int:
    """``hsikit predict --model DIR --input FILE --output FILE [...]``: tiled inference of an exported model.

    Dispatches on the model's task (:func:`hsikit.inference.predict.plan_prediction`):
    segmentation (logits of ``(logits, attention)``), pixel and patch classifiers with their
    stored preprocessing / PCA, clustering; reconstruction and autoencoder models are refused
    with the command that serves them.
    """
    options = _predict_parser().parse_args(list(argv))
    from hsikit.engine.export import load_model
    from hsikit.inference.predict import predict_with_model
    from hsikit.io import open_reader

    if options.tile < 1 or options.overlap < 0 or options.overlap >= options.tile or options.batch_size < 1:
        raise ConfigError(
            f"need --tile >= 1, 0 <= --overlap < --tile and --batch-size >= 1; got tile {options.tile}, "
            f"overlap {options.overlap}, batch size {options.batch_size}"
        )
    reader = open_reader(options.input)
    try:
        model = load_model(options.model, expected_bands=reader.bands, device=options.device)
        writer_options = {"compress": options.compress} if options.compress else None
        result = predict_with_model(
            model,
            reader,
            options.output,
            tile=options.tile,
            overlap=options.overlap,
            batch_size=options.batch_size,
            device=options.device,
            output_kind=options.output_kind,
            ensemble=options.ensemble,
            probabilities_output=options.probabilities,
            vector=options.vector,
            min_area=options.min_area,
            writer_options=writer_options,
            progress=not options.no_progress,
        )
    finally:
        close = getattr(reader, "close", None)
        if callable(close):
            close()
    print(f"{result['plan'].description}: wrote {options.output}")
    if options.probabilities:
        print(f"wrote {options.probabilities}")
    if result["vector"] is not None:
        print(f"wrote {result['vector']} ({result['vector_summary'].polygons} polygons)")
    return 0


def _is_tiled_prediction(argv: Sequence[str]) -> bool:
    """``predict`` with ``--input``, or with ``--model`` naming a model folder (not a task config)."""
    if not argv or argv[0] != "predict":
        return False
    rest = list(argv[1:])
    if any(a == "--input" or a.startswith("--input=") for a in rest):
        return True
    for index, argument in enumerate(rest):
        value = argument.split("=", 1)[1] if argument.startswith("--model=") else None
        if argument == "--model" and index + 1 < len(rest):
            value = rest[index + 1]
        if value is not None and Path(value).is_dir():
            return True
    return False


# ---------------------------------------------------------------------------- LightningCLI
def _build_cli_class() -> type:
    """The LightningCLI subclass (built lazily: importing Lightning takes seconds)."""
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    import hsikit.data.datamodules  # noqa: F401 - makes the short data class names resolvable
    import hsikit.tasks  # noqa: F401 - registers the built-in tasks, resolvable by short name
    from hsikit.engine.trainer import RUN_DIR_ENV, RunOptions, build_callbacks, build_loggers, resolve_run_dir
    from hsikit.tasks.base import BaseTask

    class HsikitCLI(LightningCLI):
        """LightningCLI in subclass mode with hsikit's run folder, callbacks and loggers."""

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_class_arguments(RunOptions, "run", fail_untyped=True, instantiate=False)

        def before_instantiate_classes(self) -> None:
            subcommand = self.subcommand
            config = self.config[subcommand]
            if config.get("weights_only") is False:
                raise ConfigError(
                    "--weights_only false is refused: hsikit loads Lightning checkpoints with weights_only=True "
                    "and never unpickles code from a file"
                )
            if "weights_only" in config:
                config["weights_only"] = True
            self.run_options = RunOptions(**{f.name: config["run"][f.name] for f in fields(RunOptions)})
            existing = _run_folder_of_checkpoint(config.get("ckpt_path"))
            if existing is not None and not os.environ.get(RUN_DIR_ENV):
                self.run_dir = existing
            else:
                self.run_dir = resolve_run_dir(self.run_options, _default_run_name(config))
            # DDP workers started by Lightning re-run this command; they must find the same folder.
            os.environ[RUN_DIR_ENV] = str(self.run_dir)
            reuse = existing is not None and (existing / "config.yaml").is_file()
            self.config_text = None if reuse else self._resolved_config_text()

        def _resolved_config_text(self) -> str:
            parser = self._parser(self.subcommand)
            return parser.dump(self.config[self.subcommand], skip_unset=False)

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            task = self.model
            if not isinstance(task, BaseTask):
                raise ConfigError(
                    f"model: {type(task).__name__} is not an hsikit task; use a BaseTask subclass such as "
                    "hsikit.tasks.ClassificationTask"
                )
            trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
            user_callbacks = trainer_config.pop("callbacks", None) or []
            if not isinstance(user_callbacks, list):
                user_callbacks = [user_callbacks]
            user_callbacks += [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
            logger = trainer_config.get("logger")
            if logger is None or logger is True:
                trainer_config["logger"] = build_loggers(self.run_dir)
            seed = self._get(self.config, "seed_everything")
            callbacks = build_callbacks(
                self.run_dir,
                self.run_options,
                monitor=task.monitor,
                monitor_mode=task.monitor_mode,
                seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                config_text=self.config_text,
                log_learning_rate=bool(trainer_config["logger"]),
            )
            trainer_config["default_root_dir"] = str(self.run_dir)
            return self.trainer_class(callbacks=user_callbacks + callbacks, **trainer_config)

    HsikitCLI.base_task = BaseTask
    HsikitCLI.base_data = LightningDataModule
    return HsikitCLI


def _run_folder_of_checkpoint(ckpt_path: Any) -> Path | None:
    """The run folder holding ``ckpt_path`` when it lies in ``<run>/checkpoints/``."""
    if not ckpt_path or str(ckpt_path) in ("best", "last", "hpc", "registry"):
        return None
    path = Path(str(ckpt_path))
    run = path.parent.parent
    if path.parent.name == "checkpoints" and ((run / "config.yaml").exists() or (run / "metrics.json").exists()):
        return run
    return None


def _default_run_name(config: Any) -> str:
    configs = config.get("config") or []
    if configs:
        last = configs[-1]
        name = Path(str(getattr(last, "relative", last))).stem
        if name and name != "config":
            return name
    model = config.get("model")
    class_path = getattr(model, "class_path", None) or (model.get("class_path") if isinstance(model, dict) else None)
    if class_path:
        return str(class_path).rsplit(".", 1)[-1].lower()
    return "run"


@contextlib.contextmanager
def _restored_environment(name: str) -> Iterator[None]:
    previous = os.environ.get(name)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def run_lightning_cli(argv: Sequence[str]) -> None:
    """Run LightningCLI on ``argv`` (``["fit", "--config", ...]``)."""
    from hsikit.engine.trainer import RUN_DIR_ENV

    cli_class = _build_cli_class()
    with _restored_environment(RUN_DIR_ENV), warnings.catch_warnings():
        # hsikit.cli passes the arguments explicitly while sys.argv also holds them: intended here.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli_class(
            model_class=cli_class.base_task,
            datamodule_class=cli_class.base_data,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=None,
            seed_everything_default=0,
            auto_configure_optimizers=False,
            args=list(argv),
            parser_kwargs={"description": "hsikit training engine (LightningCLI)"},
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hsikit fit|validate|test|predict``; returns the exit status.

    ``HsikitError`` propagates to the caller (``hsikit.cli`` prints it as one line);
    argument errors and ``--help`` / ``--print_config`` return the parser's status.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in SUBCOMMANDS:
        raise ConfigError(f"the engine runs one of {', '.join(SUBCOMMANDS)}; got {arguments[:1] or 'nothing'}")
    try:
        if _is_tiled_prediction(arguments):
            return run_tiled_prediction(arguments[1:])
        run_lightning_cli(arguments)
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except (ValueError, TypeError) as error:
        # jsonargparse wraps errors raised while building the task or data; give back hsikit's own
        cause = _hsikit_cause(error)
        if cause is not None:
            raise cause from None
        raise
    return 0


def _hsikit_cause(error: BaseException) -> HsikitError | None:
    """The first HsikitError in the cause/context chain of ``error`` (itself included)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, HsikitError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _console_main() -> int:
    try:
        return main()
    except HsikitError as error:
        print(f"hsikit: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_console_main())

__all__ = ["main", "run_lightning_cli", "run_tiled_prediction"]
