"""``hsikit classifier``: train spectral / spectral–spatial classifiers, the SVM baseline, and full class maps.

::

    hsikit classifier train --config configs/classifier_hybridsn_indian_pines.yaml --root ../shared/data \\
        [--split disjoint] [-- --trainer.max_epochs 5]
    hsikit classifier predict --model runs/<name>/<version>/model --dataset indian_pines --root ../shared/data \\
        --output map.tif [--png map.png] [--confidence confidence.tif]
    hsikit classifier svm --dataset indian_pines --root ../shared/data --split random --train 0.1 --output-dir svm/

``train`` runs ``hsikit fit`` (``--split`` sets the data module's split mode:
``random``, ``count`` or ``disjoint``). ``predict`` classifies every pixel of a cube with
an exported model (pixel models and PCA-patch models alike) and writes the class map as a
GeoTIFF with the source's georeference (label values, 0 = no data) and as a PNG with a
legend. ``svm`` trains the RBF SVM baseline on the training pixels of the same split a
network would use (same split modes and seeds, normaliser fitted on the training pixels),
scores the test pixels with the same metrics (OA, AA, kappa, per-class precision / recall
/ F1) and writes ``metrics.json``, ``confusion_matrix.png``, ``per_class_scores.png``,
``class_map.tif`` and ``class_map.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, TextIO

from hsikit.commands._scene_input import (
    add_input_arguments,
    add_training_arguments,
    load_input,
    run_training,
    training_argv,
)


def register(commands: Any) -> None:
    """Add ``hsikit classifier train | predict | svm``."""
    parser = commands.add_parser(
        "classifier", help="spectral classifiers (1-D CNN, HybridSN, SVM): train, class maps, SVM baseline"
    )
    actions = parser.add_subparsers(dest="classifier_command", metavar="ACTION")
    actions.required = True

    train = actions.add_parser("train", help="train with an experiment YAML (runs 'hsikit fit')")
    add_training_arguments(train)
    train.add_argument("--split", choices=("random", "count", "disjoint"), default=None,
                       help="split mode (sets data.init_args.split)")
    train.set_defaults(handler=_train)

    predict = actions.add_parser("predict", help="classify every pixel of a cube: GeoTIFF + PNG class map")
    predict.add_argument("--model", required=True, help="exported model folder (a run's model/ folder)")
    add_input_arguments(predict, labels=False)
    predict.add_argument("--output", required=True, help="class map raster (.tif keeps the georeference)")
    predict.add_argument("--png", default=None, help="class map picture with a legend (default: beside --output)")
    predict.add_argument("--confidence", default=None, help="also write the softmax confidence map (.tif)")
    predict.add_argument("--device", default="cpu", help="torch device")
    predict.set_defaults(handler=_predict)

    svm = actions.add_parser("svm", help="RBF SVM baseline on a split, scored like the networks")
    add_input_arguments(svm)
    svm.add_argument("--split", choices=("random", "count", "disjoint"), default="random")
    svm.add_argument("--train", type=float, default=0.1, help="training amount per class (fraction, or count >= 1)")
    svm.add_argument("--val", type=float, default=0.0, help="validation amount (unused by the SVM; kept out of test)")
    svm.add_argument("--seed", type=int, default=0, help="split seed")
    svm.add_argument("--block-size", type=int, default=None, help="block side of a disjoint split (pixels)")
    svm.add_argument("--patch-size", type=int, default=1, help="buffer of a disjoint split (the networks' patch size)")
    svm.add_argument("--c", type=float, nargs="+", default=None, help="grid of C values")
    svm.add_argument("--gamma", type=float, nargs="+", default=None, help="grid of gamma values")
    svm.add_argument("--folds", type=int, default=3, help="cross-validation folds of the grid search")
    svm.add_argument("--output-dir", required=True, help="folder for metrics.json, figures and the class map")
    svm.set_defaults(handler=_svm)


def _train(args: argparse.Namespace, out: TextIO) -> int:
    extra = [] if args.split is None else ["--data.init_args.split", args.split]
    return run_training(training_argv(args, extra), out)


def _predict(args: argparse.Namespace, out: TextIO) -> int:
    import numpy as np

    from hsikit.engine.export import load_model
    from hsikit.io.labels import save_labels
    from hsikit.viz.maps import plot_class_map
    from hsikit.workflows.spectral_maps import classify_cube

    cube, _, dataset_names, described = load_input(args)
    model = load_model(args.model, expected_bands=cube.bands, device=args.device)
    config = model.hsikit_config  # type: ignore[attr-defined]
    if config.task not in (None, "classification"):
        from hsikit.errors import CheckpointError

        raise CheckpointError(f"'{args.model}' holds a {config.task} model; 'classifier predict' needs a classifier")
    started = time.perf_counter()
    scene = classify_cube(model, cube, device=args.device)
    seconds = time.perf_counter() - started
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_labels(scene.labels, output, like=cube, nodata=0)
    written = [output]
    names = scene.class_names or dataset_names
    png = Path(args.png) if args.png else output.with_suffix(".png")
    plot_class_map(scene.labels, names, first_label=scene.first_label, title=f"Predicted classes, {described}",
                   path=png)
    written.append(png)
    if args.confidence:
        from hsikit.commands._scene_input import write_float_map

        written.append(write_float_map(scene.confidence, cube, args.confidence, "confidence"))
    pixels = int(np.count_nonzero(scene.labels))
    out.write(f"classified {pixels} pixels in {seconds:.1f} s ({pixels / max(seconds, 1e-9):.0f} pixels/s)\n")
    for path in written:
        out.write(f"wrote {path}\n")
    return 0


def svm_datamodule(args: argparse.Namespace) -> Any:
    """The :class:`~hsikit.data.spectral_datamodules.SceneClassificationDataModule` of the ``svm`` arguments."""
    from hsikit.data.spectral_datamodules import SceneClassificationDataModule

    options: dict[str, Any] = {}
    if args.split == "disjoint":
        options["patch_size"] = int(args.patch_size)
        if args.block_size is not None:
            options["block_size"] = int(args.block_size)
    # a count split takes pixel counts; the others fractions (or counts above 1)
    train, val = (int(v) if args.split == "count" or v > 1 else float(v) for v in (args.train, args.val))
    cube, labels, names, _ = load_input(args)
    if labels is None:
        from hsikit.errors import ConfigError

        raise ConfigError("the SVM baseline needs labels: give --labels with --input, or a labelled --dataset")
    return SceneClassificationDataModule.from_arrays(
        cube, labels, names, split=args.split, train=train, val=val, split_seed=args.seed,
        split_options=options,
    )


def run_svm(datamodule: Any, c_values: Any = None, gamma_values: Any = None, folds: int = 3,
            seed: int = 0) -> dict[str, Any]:
    """Fit the SVM on the datamodule's training pixels and score its test pixels.

    Returns:
        ``{"svm": SpectralSVM, "report": classification report (test pixels), "fit_seconds",
        "predict_seconds", "train_pixels", "test_pixels"}``.
    """
    from hsikit.baselines.svm import DEFAULT_C_VALUES, DEFAULT_GAMMA_VALUES, SpectralSVM
    from hsikit.metrics.classification import classification_scores

    datamodule.setup()
    train, test = datamodule.datasets["train"], datamodule.datasets["test"]
    svm = SpectralSVM(
        c_values=c_values or DEFAULT_C_VALUES, gamma_values=gamma_values or DEFAULT_GAMMA_VALUES, cv_folds=folds,
        random_state=seed,
    )
    started = time.perf_counter()
    svm.fit(train.spectra.numpy(), train.targets.numpy())
    fitted = time.perf_counter()
    predictions = svm.predict(test.spectra.numpy())
    predicted = time.perf_counter()
    report = classification_scores(
        predictions, test.targets.numpy(), len(datamodule.class_names), datamodule.class_names
    )
    return {
        "svm": svm,
        "report": report,
        "fit_seconds": fitted - started,
        "predict_seconds": predicted - fitted,
        "train_pixels": int(len(train)),
        "test_pixels": int(len(test)),
    }


def _svm(args: argparse.Namespace, out: TextIO) -> int:
    import matplotlib.pyplot as plt
    import numpy as np

    from hsikit.engine.callbacks import write_json_atomic
    from hsikit.io.atomic import atomic_path
    from hsikit.io.labels import save_labels
    from hsikit.tasks.classification import confusion_matrix_figure, per_class_scores_figure
    from hsikit.viz.maps import plot_class_map

    datamodule = svm_datamodule(args)
    result = run_svm(datamodule, args.c, args.gamma, args.folds, args.seed)
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    report = result["report"]
    svm = result["svm"]
    payload = {
        "split": {"mode": args.split, "train": args.train, "val": args.val, "seed": args.seed},
        "svm": {"best_params": svm.best_params_, "cv_accuracy": svm.best_score_, "folds": svm.cv_folds_used_},
        "train_pixels": result["train_pixels"],
        "test_pixels": result["test_pixels"],
        "fit_seconds": result["fit_seconds"],
        "test": report,
    }
    write_json_atomic(folder / "metrics.json", payload)
    datamodule.save_artifacts(folder)
    matrix = np.asarray(report["confusion_matrix"])
    for name, figure in (
        ("confusion_matrix.png", confusion_matrix_figure(matrix, datamodule.class_names, title="SVM, test set")),
        ("per_class_scores.png", per_class_scores_figure(matrix, datamodule.class_names, title="SVM, test set")),
    ):
        with atomic_path(folder / name) as tmp:
            figure.savefig(tmp, format="png", dpi=110)
        plt.close(figure)
    cube = datamodule.cube
    normalised = datamodule.normalizer.transform(np.asarray(cube.data, dtype=np.float32), band_axis=0)
    class_map = svm.predict_cube(normalised) + 1  # 0-based class index -> label value
    class_map[~cube.valid_mask] = 0
    save_labels(class_map.astype(np.int32), folder / "class_map.tif", like=cube, nodata=0)
    plot_class_map(class_map, datamodule.class_names, title="SVM predicted classes", path=folder / "class_map.png")
    out.write(
        f"SVM (C={svm.best_params_['C']:g}, gamma={svm.best_params_['gamma']:g}) on {result['test_pixels']} test "
        f"pixels: OA {report['overall_accuracy']:.4f}, AA {report['average_accuracy']:.4f}, "
        f"kappa {report['kappa']:.4f}\n"
    )
    out.write(f"wrote {folder / 'metrics.json'} and the figures and class map beside it\n")
    return 0
