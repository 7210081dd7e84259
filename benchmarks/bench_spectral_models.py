"""Benchmark: spectral classifiers and autoencoders on real scenes (deephyp, HybridSN, SVM).

Classification, Indian Pines (200 bands, 16 classes, 10,249 labelled pixels), two protocols,
every model on the same split of each seed:

* **random**: 10 % of each class's pixels train (stratified, seed s), the other 90 % are the test set;
* **disjoint**: spatially disjoint blocks (``hsikit.data.splits.disjoint_split``, 30 % of each
  class targeted for training, 22 × 22 px blocks, seed s) with a buffer of ``--split-patch // 2``
  (5) pixels removed from training around every test block, so no training patch of side <= 11
  sees a test pixel. The split does not depend on the models' patch sizes, so every model of a
  seed has the same training and test pixels.

Models: deephyp's 1-D CNN (``cnn1d_classifier``, standardised spectra, deephyp class
balancing, Adam), HybridSN (``hybridsn``, ``--patch`` px patches (random protocol;
``--disjoint-patch`` on disjoint) of ``--pca`` PCA components fitted on the training pixels,
flips/rotations), the two-branch spectral–spatial CNN (``spectral_spatial_cnn``,
``--sscnn-patch`` px patches of every standardised band, flips/rotations; random gain and
noise with ``--sscnn-scale`` / ``--sscnn-noise``, off by default), and the RBF SVM (``SpectralSVM``, 3-fold grid search over C and gamma on the training
pixels). OA / AA / kappa on the test pixels, mean ± std over ``--seeds`` seeds, all from
:func:`hsikit.metrics.classification.classification_scores`.

No test pixel is used for training or model selection. HybridSN, the 1-D CNN and ``sscnn`` train
a fixed number of epochs and are scored with their final weights. ``sscnn_val`` (meant for the
disjoint protocol) is the same spectral–spatial CNN selecting its epoch on a validation set carved from the *training*
blocks (``--sscnn-val``: that share of the training pixels, in 11 × 11 blocks,
:func:`hsikit.data.splits.carve_validation_blocks`; the weights of the best validation OA are
kept); its training set is then smaller than the other models'.

Autoencoders (deephyp MLP ``[50, 30, 10]``, deephyp min-max preprocessing, Adam 1e-3, batch 256,
every pixel a training sample) on Samson (95 × 95 px, 156 bands; classes = argmax of the
abundances) and Indian Pines (145 × 145 px), one model per loss (SSE, CSA, SA with ReLU and a
linear output; SID with sigmoids, as deephyp advises), plus the convolutional autoencoder with
SSE on Indian Pines: mean reconstruction SAM (degrees) and SID over every pixel, and the class
separation of the latent space: NMI between the classes and k-means (k = classes) on the latent
vectors, against k-means on the preprocessed spectra.

Speed (CPU, ``torch.set_num_threads(--threads)``): training pixels per second (training samples
processed per second of training, all epochs; for the SVM: training pixels / grid-search-and-fit
time) and inference pixels per second over the whole scene (every pixel classified or
encoded + decoded). Wall-clock times on a shared machine follow the other processes' load: the
load average is recorded with the machine.

Usage::

    # the full run: 5 seeds, both protocols, all models, autoencoders (about 50 min on 2 shared cores)
    python benchmarks/bench_spectral_models.py
    # the runs behind bench_spectral_models_disjoint.json and _sscnn_random.json (docs/benchmarks.md)
    python benchmarks/bench_spectral_models.py --protocols disjoint --models sscnn sscnn_val svm \
        --skip-autoencoders --output benchmarks/results/bench_spectral_models_disjoint.json
    python benchmarks/bench_spectral_models.py --protocols random --models sscnn --skip-autoencoders \
        --output benchmarks/results/bench_spectral_models_sscnn_random.json
    python benchmarks/bench_spectral_models.py --quick           # 1 seed, few epochs (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_spectral_models.json"


# ============================================================================ helpers
def _shared_data() -> Path:
    from hsikit.data.paths import shared_data_dir

    folder = shared_data_dir()
    if folder is None:
        sys.exit("the shared data folder (../shared/data or $HSIKIT_SHARED_DATA) is needed (Indian Pines, Samson)")
    return folder


def _machine(threads: int) -> dict[str, Any]:
    import lightning
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gb": memory_gb,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
    }


def _trainer(epochs: int, callbacks: list[Any], validate: bool = False) -> Any:
    import lightning as L

    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1.0 if validate else 0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )


class _Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if array.size > 1 else 0.0}


# ============================================================================ classification
def _network_run(task: Any, datamodule: Any, epochs: int, seed: int, classes: int, names: list[str],
                 validate: bool = False) -> dict[str, Any]:
    import lightning as L
    import torch

    from hsikit.engine.callbacks import StepSeed
    from hsikit.metrics.classification import classification_scores

    L.seed_everything(seed, verbose=False)
    datamodule.shuffle_seed = seed
    trainer = _trainer(epochs, [StepSeed(seed)], validate=validate)
    with _Clock() as fit:
        trainer.fit(task, datamodule=datamodule)
    model = task.model.eval()
    test = datamodule.datasets["test"]
    predictions = []
    with torch.no_grad():
        for start in range(0, len(test), 2048):
            batch, _ = test.__getitems__(list(range(start, min(start + 2048, len(test)))))
            predictions.append(model(batch).argmax(1))
    report = classification_scores(torch.cat(predictions).numpy(), test.targets.numpy(), classes, names)
    scene = datamodule.predict_dataloader()
    with _Clock() as infer, torch.no_grad():
        pixels = 0
        for batch, _ in scene:
            model(batch).argmax(1)
            pixels += int(batch.shape[0])
    train_pixels = len(datamodule.datasets["train"])
    return {
        "oa": report["overall_accuracy"],
        "aa": report["average_accuracy"],
        "kappa": report["kappa"],
        "train_pixels": train_pixels,
        "test_pixels": len(test),
        "epochs": epochs,
        "fit_seconds": fit.wall,
        "fit_cpu_seconds": fit.cpu,
        "train_pixels_per_s": train_pixels * epochs / fit.wall,
        "inference_pixels_per_s": pixels / infer.wall,
        "per_class_recall": [row["recall"] for row in report["per_class"]],
    }


def _svm_run(datamodule: Any, seed: int, names: list[str], c_values: list[float], gamma_values: list[float],
             folds: int) -> dict[str, Any]:
    from hsikit.baselines.svm import SpectralSVM
    from hsikit.metrics.classification import classification_scores

    train, test = datamodule.datasets["train"], datamodule.datasets["test"]
    svm = SpectralSVM(c_values=c_values, gamma_values=gamma_values, cv_folds=folds, random_state=seed)
    with _Clock() as fit:
        svm.fit(train.spectra.numpy(), train.targets.numpy())
    report = classification_scores(svm.predict(test.spectra.numpy()), test.targets.numpy(), len(names), names)
    cube = datamodule.cube
    normalised = datamodule.normalizer.transform(np.asarray(cube.data, dtype=np.float32), band_axis=0)
    with _Clock() as infer:
        svm.predict_cube(normalised)
    return {
        "oa": report["overall_accuracy"],
        "aa": report["average_accuracy"],
        "kappa": report["kappa"],
        "train_pixels": len(train),
        "test_pixels": len(test),
        "best_params": svm.best_params_,
        "fit_seconds": fit.wall,
        "fit_cpu_seconds": fit.cpu,
        "train_pixels_per_s": len(train) / fit.wall,
        "inference_pixels_per_s": cube.height * cube.width / infer.wall,
        "per_class_recall": [row["recall"] for row in report["per_class"]],
    }


def run_classification(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from hsikit.data import load_dataset
    from hsikit.data.spectral_datamodules import PatchClassificationDataModule, SceneClassificationDataModule
    from hsikit.data.splits import carve_validation_blocks
    from hsikit.tasks.classification import ClassificationTask

    scene = load_dataset("indian_pines", root=root, download=False, progress=False)
    names = list(scene.class_names)
    classes = len(names)
    protocols = {
        "random": {"split": "random", "train": 0.1, "val": 0.0, "options": {}},
        "disjoint": {"split": "disjoint", "train": 0.3, "val": 0.0,
                     "options": {"block_size": 22, "patch_size": args.split_patch}},
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for protocol, setting in protocols.items():
            if protocol not in args.protocols:
                continue
            runs: dict[str, list[dict[str, Any]]] = {model: [] for model in args.models}
            for seed in range(args.seeds):
                common = {"split": setting["split"], "train": setting["train"], "val": setting["val"],
                          "split_seed": seed, "split_options": dict(setting["options"])}
                hybridsn_patch = args.patch if protocol == "random" else args.disjoint_patch
                patches = PatchClassificationDataModule.from_arrays(
                    scene.cube, scene.labels, names, patch_size=hybridsn_patch, pca_components=args.pca,
                    batch_size=64, **common,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # disjoint: classes absent from test are reported per seed
                    patches.setup()
                split_file = Path(folder) / f"split_{protocol}_{seed}.json"
                patches.split.to_json(split_file)
                pixels = SceneClassificationDataModule.from_arrays(
                    scene.cube, scene.labels, names, split_file=str(split_file), batch_size=64,
                    split=setting["split"], split_seed=seed,
                )
                pixels.setup()
                assert np.array_equal(pixels.split.indices("train"), patches.split.indices("train"))
                epochs_cnn = args.cnn_epochs if protocol == "random" else args.cnn_disjoint_epochs
                epochs_hyb = args.hybridsn_epochs if protocol == "random" else args.hybridsn_disjoint_epochs
                if "cnn1d" in runs:
                    cnn_task = ClassificationTask(model="cnn1d_classifier", model_args={}, balance_classes=True,
                                                  optimizer="adam", lr=3e-3, weight_decay=0.0, scheduler="constant")
                    runs["cnn1d"].append(_network_run(cnn_task, pixels, epochs_cnn, seed, classes, names))
                if "hybridsn" in runs:
                    hyb_task = ClassificationTask(
                        model="hybridsn", model_args={"dropout": args.hybridsn_dropout},
                        optimizer="adamw" if args.hybridsn_weight_decay else "adam", lr=1e-3,
                        weight_decay=args.hybridsn_weight_decay, label_smoothing=args.hybridsn_label_smoothing,
                        scheduler="warmup_cosine", warmup_steps=20, min_lr_ratio=0.05,
                    )
                    runs["hybridsn"].append(_network_run(hyb_task, patches, epochs_hyb, seed, classes, names))
                for variant in ("sscnn", "sscnn_val"):
                    if variant not in runs:
                        continue
                    ss_file = split_file
                    if variant == "sscnn_val":  # validation blocks carved from the training pixels only
                        carved = carve_validation_blocks(patches.split, scene.labels, args.sscnn_val, block_size=11,
                                                         seed=seed)
                        ss_file = Path(folder) / f"split_{protocol}_{seed}_val.json"
                        carved.to_json(ss_file)
                    spectral_spatial = PatchClassificationDataModule.from_arrays(
                        scene.cube, scene.labels, names, patch_size=args.sscnn_patch, pca_components=None,
                        batch_size=64, split=setting["split"], split_seed=seed, split_file=str(ss_file),
                    )
                    spectral_spatial.setup()
                    np.testing.assert_array_equal(spectral_spatial.split.indices("test"), patches.split.indices("test"))
                    selecting = variant == "sscnn_val"
                    ss_task = ClassificationTask(
                        model="spectral_spatial_cnn", model_args={"dropout": args.sscnn_dropout},
                        optimizer="adamw", lr=1e-3, weight_decay=1e-4, scheduler="warmup_cosine", warmup_steps=20,
                        min_lr_ratio=0.05, spectral_noise=args.sscnn_noise, spectral_scale=args.sscnn_scale,
                        restore_best="accuracy" if selecting else None,
                    )
                    epochs_ss = args.sscnn_epochs if protocol == "random" else args.sscnn_disjoint_epochs
                    run = _network_run(ss_task, spectral_spatial, epochs_ss, seed, classes, names, validate=selecting)
                    run["val_pixels"] = len(spectral_spatial.datasets["val"])
                    run["best_val_epoch"] = ss_task.best_val_epoch
                    runs[variant].append(run)
                if "svm" in runs:
                    runs["svm"].append(_svm_run(pixels, seed, names, args.svm_c, args.svm_gamma, args.svm_folds))
                absent = [names[k] for k in range(classes) if not np.any(pixels.datasets["test"].targets.numpy() == k)]
                for model, model_runs in runs.items():
                    run = model_runs[-1]
                    run["seed"] = seed
                    run["classes_absent_from_test"] = absent
                    print(f"[{protocol} seed {seed}] {model:8s} OA {run['oa']:.4f} AA {run['aa']:.4f} "
                          f"kappa {run['kappa']:.4f}  train {run['train_pixels']} px, fit {run['fit_seconds']:.0f} s",
                          flush=True)
            results[protocol] = {
                model: {
                    "runs": model_runs,
                    **{metric: _summary([r[metric] for r in model_runs]) for metric in (
                        "oa", "aa", "kappa", "train_pixels_per_s", "inference_pixels_per_s", "fit_seconds")},
                }
                for model, model_runs in runs.items()
            }
    return results


# ============================================================================ autoencoders
def _ae_run(data: Any, labels: np.ndarray | None, model: str, arguments: dict[str, Any], loss: str, epochs: int,
            seed: int) -> dict[str, Any]:
    import torch

    from hsikit.spectral.metrics import spectral_angle, spectral_information_divergence
    from hsikit.workflows.deephyp import SpectralAutoencoder
    from hsikit.workflows.spectral_maps import latent_separation

    network = SpectralAutoencoder(model, in_bands=data.num_bands, **arguments)
    network.add_training(loss, loss=loss, epochs=epochs, batch_size=256, lr=1e-3)
    with _Clock() as fit:
        network.train(loss, data, seed=seed)
    with _Clock() as infer:
        latent = network.encode(data, model=loss)
        reconstruction = network.reconstruct(data, model=loss)
    target, output = torch.from_numpy(data.spectra), torch.from_numpy(reconstruction)
    sam = spectral_angle(output, target, axis=1, degrees=True).numpy()
    sid = spectral_information_divergence(target.clamp_min(1e-6), output.clamp_min(1e-6), axis=1).numpy()
    result: dict[str, Any] = {
        "loss": loss,
        "model": model,
        "arguments": arguments,
        "epochs": epochs,
        "mean_sam_deg": float(sam.mean()),
        "mean_sid": float(sid.mean()),
        "fit_seconds": fit.wall,
        "fit_cpu_seconds": fit.cpu,
        "train_pixels_per_s": data.num_samples * epochs / fit.wall,
        "inference_pixels_per_s": data.num_samples / infer.wall,
    }
    if labels is not None:
        result.update(latent_separation(latent, data.spectra, labels, seed=seed))
    return result


def run_autoencoders(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from hsikit.data import load_dataset
    from hsikit.workflows.deephyp import SpectralData

    relu = {"encoder_sizes": [50, 30, 10], "activation": "relu", "final_activation": "linear"}
    sigmoid = {"encoder_sizes": [50, 30, 10], "activation": "sigmoid", "final_activation": "sigmoid"}
    results: dict[str, Any] = {}
    for dataset, epochs in (("samson", args.ae_epochs_samson), ("indian_pines", args.ae_epochs_indian_pines)):
        scene = load_dataset(dataset, root=root, download=False, progress=False)
        data = SpectralData.from_cube(scene.cube, scene.labels, preprocessing="deephyp_minmax")
        labels = None if data.labels is None else data.labels
        runs = []
        for loss in ("SSE", "CSA", "SA", "SID"):
            runs.append(_ae_run(data, labels, "deephyp_mlp_ae", sigmoid if loss == "SID" else relu, loss, epochs, 0))
        if dataset == "indian_pines":
            conv = {"latent_dim": 10, "encoder_num_filters": [10, 10, 10], "encoder_filter_sizes": [20, 10, 10],
                    "activation": "relu", "final_activation": "linear"}
            runs.append(_ae_run(data, labels, "deephyp_conv_ae", conv, "SSE", args.ae_conv_epochs, 0))
        for run in runs:
            separation = (f"NMI latent {run['nmi_latent']:.3f} vs spectra {run['nmi_spectra']:.3f}"
                          if "nmi_latent" in run else "")
            print(f"[{dataset}] {run['model']:16s} {run['loss']:3s} SAM {run['mean_sam_deg']:.3f} deg, "
                  f"SID {run['mean_sid']:.5f}, {separation}, fit {run['fit_seconds']:.0f} s", flush=True)
        results[dataset] = {"pixels": data.num_samples, "bands": data.num_bands, "runs": runs}
    return results


# ============================================================================ report
def _tables(results: dict[str, Any]) -> str:
    lines = []
    classification = results.get("classification", {})
    labels = {"cnn1d": "1-D CNN (deephyp)", "hybridsn": "HybridSN (spectral-spatial)",
              "sscnn": "two-branch spectral-spatial CNN",
              "sscnn_val": "two-branch spectral-spatial CNN, epoch chosen on val carved from train",
              "svm": "SVM (RBF)"}
    for protocol, models in classification.items():
        lines.append(f"\nIndian Pines, {protocol} split ({results['settings']['seeds']} seeds), mean ± std")
        lines.append("| model | OA (%) | AA (%) | kappa (%) | train px/s | inference px/s |")
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for model, summary in models.items():
            cells = [f"{100 * summary[m]['mean']:.2f} ± {100 * summary[m]['std']:.2f}" for m in ("oa", "aa", "kappa")]
            lines.append(
                f"| {labels[model]} | {' | '.join(cells)} | {summary['train_pixels_per_s']['mean']:.0f} | "
                f"{summary['inference_pixels_per_s']['mean']:.0f} |"
            )
    for dataset, block in results.get("autoencoders", {}).items():
        lines.append(f"\nAutoencoders on {dataset} ({block['pixels']} pixels, {block['bands']} bands)")
        lines.append("| model | loss | mean SAM (deg) | mean SID | NMI k-means latent | NMI k-means spectra | "
                     "train px/s | inference px/s |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for run in block["runs"]:
            lines.append(
                f"| {run['model']} | {run['loss']} | {run['mean_sam_deg']:.3f} | {run['mean_sid']:.5f} | "
                f"{run.get('nmi_latent', float('nan')):.3f} | {run.get('nmi_spectra', float('nan')):.3f} | "
                f"{run['train_pixels_per_s']:.0f} | {run['inference_pixels_per_s']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed and few epochs (smoke test)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: best on a loaded 2-core machine)")
    models = ["cnn1d", "hybridsn", "sscnn", "sscnn_val", "svm"]
    parser.add_argument("--models", nargs="+", choices=models, default=models)
    parser.add_argument("--protocols", nargs="+", choices=("random", "disjoint"), default=["random", "disjoint"])
    parser.add_argument("--patch", type=int, default=13, help="HybridSN patch side (px), random protocol")
    parser.add_argument("--disjoint-patch", type=int, default=11, help="HybridSN patch side (px), disjoint protocol")
    parser.add_argument("--split-patch", type=int, default=11,
                        help="disjoint split: training pixels within split_patch // 2 px of a test block are dropped")
    parser.add_argument("--pca", type=int, default=15, help="HybridSN PCA components")
    parser.add_argument("--hybridsn-epochs", type=int, default=40)
    parser.add_argument("--hybridsn-disjoint-epochs", type=int, default=12)
    parser.add_argument("--hybridsn-dropout", type=float, default=0.4)
    parser.add_argument("--hybridsn-weight-decay", type=float, default=0.0, help="> 0: AdamW with this decay")
    parser.add_argument("--hybridsn-label-smoothing", type=float, default=0.0)
    parser.add_argument("--sscnn-patch", type=int, default=9, help="spectral-spatial CNN patch side (px)")
    parser.add_argument("--sscnn-epochs", type=int, default=30)
    parser.add_argument("--sscnn-disjoint-epochs", type=int, default=15)
    parser.add_argument("--sscnn-dropout", type=float, default=0.5)
    parser.add_argument("--sscnn-noise", type=float, default=0.0, help="std of the Gaussian input noise")
    parser.add_argument("--sscnn-scale", type=float, default=0.0, help="random gain in [1 - s, 1 + s]")
    parser.add_argument("--sscnn-val", type=float, default=0.15,
                        help="sscnn_val: share of the training pixels carved (in 11 x 11 blocks) for epoch selection")
    parser.add_argument("--cnn-epochs", type=int, default=60)
    parser.add_argument("--cnn-disjoint-epochs", type=int, default=30)
    parser.add_argument("--svm-c", type=float, nargs="+", default=[1.0, 10.0, 100.0, 1000.0])
    parser.add_argument("--svm-gamma", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1])
    parser.add_argument("--svm-folds", type=int, default=3)
    parser.add_argument("--ae-epochs-samson", type=int, default=30)
    parser.add_argument("--ae-epochs-indian-pines", type=int, default=10)
    parser.add_argument("--ae-conv-epochs", type=int, default=3, help="epochs of the conv autoencoder (Indian Pines)")
    parser.add_argument("--skip-classification", action="store_true")
    parser.add_argument("--skip-autoencoders", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.seeds = 1
        args.hybridsn_epochs, args.hybridsn_disjoint_epochs = 2, 1
        args.sscnn_epochs, args.sscnn_disjoint_epochs = 2, 1
        args.cnn_epochs, args.cnn_disjoint_epochs = 2, 1
        args.ae_epochs_samson, args.ae_epochs_indian_pines, args.ae_conv_epochs = 2, 2, 1
        if args.output == RESULTS:
            args.output = RESULTS.with_name("bench_spectral_models_quick.json")

    import lightning  # noqa: F401 - imported before the clocks start
    import torch

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
    torch.set_num_threads(args.threads)
    root = _shared_data()
    machine = _machine(args.threads)
    settings = {key: value for key, value in vars(args).items() if key != "output"}
    settings["output"] = str(args.output)
    results: dict[str, Any] = {"machine": machine, "settings": settings}
    started = time.perf_counter()
    if not args.skip_classification:
        results["classification"] = run_classification(args, root)
    if not args.skip_autoencoders:
        results["autoencoders"] = run_autoencoders(args, root)
    results["total_seconds"] = time.perf_counter() - started
    machine["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(_tables(results))
    print(f"\ntotal {results['total_seconds'] / 60:.1f} min; results in {args.output}")


if __name__ == "__main__":
    main()
