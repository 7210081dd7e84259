"""Benchmark: label-free Deep Global Clustering against scikit-learn k-means, global ids across tiles, speed, memory.

Everything runs in one process (plus one small child per memory measurement), on CPU:

1. **Indian Pines** (16 classes) and **Samson** (3 materials; labels = argmax of the
   ground-truth abundances): k-means (``sklearn.cluster.KMeans``, ``n_init=10``) on the raw
   spectra and on the first 10 principal components of the standardised spectra, with as
   many clusters as classes, against :class:`hsikit.tasks.clustering.ClusteringTask` with
   the same number of clusters, trained by the configs ``configs/clustering_*.yaml`` with
   seeds 0, 1 and 2 (``--seeds``). Variants per scene (``SCENE_VARIANTS``): on Samson two
   candidates that differ only in the dictionary's gradient-free orthogonalisation
   (``orthogonality_step`` 0.1, the model default, and 0); on Indian Pines one candidate, its
   config, and two ablations (``ABLATIONS``: without the reconstruction term, and without it
   and the centring), trained with the same seeds and reported at their own label-free choice.
   k-means also runs on the standardised spectra, the input DGC sees, and on Indian Pines with
   K = 6…12. **The model is chosen without labels**: per seed, among all epochs of the
   candidates, the checkpoint with the highest label-free ``val/selection`` score
   (:mod:`hsikit.metrics.cluster_selection`). Labels only score the choice; the table also
   shows the last epoch and the best epoch *by the labels* (an oracle, which no label-free
   user has) so the cost of selecting without labels is visible, and the mean ± standard
   deviation over the seeds. Scores: Hungarian accuracy (ACC), NMI (arithmetic mean,
   scikit-learn's default) and ARI on the labelled pixels.
2. **Number of clusters without labels** on Samson: the chosen variant retrained with
   K = 2, 3, 4, 5; :func:`~hsikit.metrics.cluster_selection.choose_num_clusters` picks K from
   each run's best selection score.
3. **Glacier tiles** (10 bands; background / clean ice / debris-covered ice; tiles 1, 2, 4):
   one model trained on all three tiles (K = 3); the cluster → class mapping is computed on
   tile 1 (Hungarian) and applied unchanged to every tile. mIoU per tile with that single
   mapping next to each tile's own best mapping; the same for k-means fitted on the pooled
   pixels of the three tiles (its ids are global too).
4. **Speed and memory**: training pixels per second (crop pixels of both views through
   forward, backward and the EMA update, timed over the training batches only), whole-scene
   inference pixels per second (tiled, probabilities merged), k-means fitting time, and the
   peak memory of the windowed mean-shift (reference defaults D = 32, window 5, 5 steps,
   inference) by tile size, each in a fresh child process (``VmHWM`` minus the resident size
   before the call, with glibc's mmap threshold fixed so freed blocks leave the resident set),
   next to the ``3·N·k²·D`` floats the reference's ``unfold`` needed.

Usage::

    python benchmarks/bench_clustering.py            # full run (about 14 min on 2 cores)
    python benchmarks/bench_clustering.py --quick    # a few steps of everything (plumbing check)
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_clustering.json"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VARIANTS = {"ortho0.1": 0.1, "ortho0": 0.0}
# Training variants per scene (overrides of the scene's config); the label-free criterion chooses among all their
# epochs. Samson: the dictionary's orthogonalisation on/off. Indian Pines: its config (D = 64, no final ReLU,
# centred embeddings, temperature 0.05, balance 0.1, reconstruction weight 20, no orthogonalisation) and two
# ablations, trained with the same seeds but not candidates of the choice (ABLATIONS; each gets its own label-free
# choice in the report): without the reconstruction term (D = 32, the previous config) and, in addition, without
# the centring (temperature 0.005; the config before that, which collapsed with seeds 1 and 2).
SCENE_VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "samson": {name: {"model_args": {"orthogonality_step": step}} for name, step in VARIANTS.items()},
    "indian_pines": {
        "config": {},
        "no_reconstruction": {"reconstruction_weight": 0.0, "model_args": {"decoder_hidden": 0, "embed_dim": 32}},
        "no_reconstruction_uncentred": {"reconstruction_weight": 0.0, "model_args": {
            "decoder_hidden": 0, "embed_dim": 32, "centre_embeddings": False, "temp": 0.005}},
    },
}
ABLATIONS: dict[str, tuple[str, ...]] = {"indian_pines": ("no_reconstruction", "no_reconstruction_uncentred")}
KMEANS_K_SWEEP = (6, 8, 10, 12)  # Indian Pines: k-means with fewer clusters, as DGC's pruning ends up using
GLACIER_TILES = ("1", "2", "4")
MEMORY_TILES = (128, 256, 512)


def shared_data() -> Path:
    from hsikit.data.paths import shared_data_dir

    folder = shared_data_dir()
    if folder is None:
        sys.exit("the shared data folder (../shared/data or $HSIKIT_SHARED_DATA) is needed")
    return folder


def machine_info(threads: int) -> dict[str, Any]:
    import sklearn
    import torch

    cpu = platform.processor()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "load_average_at_start": os.getloadavg(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "sklearn": sklearn.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# ---------------------------------------------------------------------------- scoring
def scores(predicted: np.ndarray, truth: np.ndarray, clusters: int, mapping: Any = None,
           classes: int | None = None) -> dict[str, Any]:  # fmt: skip
    from hsikit.metrics.clustering import clustering_scores

    keep = predicted >= 0
    classes = int(truth.max()) + 1 if classes is None else classes
    result = clustering_scores(predicted[keep], truth[keep], num_clusters=clusters, num_classes=classes,
                               ignore_index=0, mapping=mapping, average_method="arithmetic")  # fmt: skip
    return {"acc": result["accuracy"], "nmi": result["nmi"], "ari": result["ari"], "miou": result["miou"],
            "mapping": result["mapping"].tolist()}  # fmt: skip


def pixel_spectra(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, H, W)`` → raw spectra ``(H·W, C)`` float64 and the same standardised per band (DGC's input)."""
    spectra = cube.reshape(cube.shape[0], -1).T.astype(np.float64)
    return spectra, (spectra - spectra.mean(0)) / np.where(spectra.std(0) > 0, spectra.std(0), 1.0)


def kmeans_baselines(cube: np.ndarray, truth: np.ndarray, clusters: int, seed: int, n_init: int) -> dict[str, Any]:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    spectra, standardised = pixel_spectra(cube)
    out = {}
    # "standardised" is the input DGC sees (per-band z-score over the scene): the real floor for the method
    for name, features in (("kmeans_raw", spectra), ("kmeans_standardised", standardised), ("kmeans_pca10", None)):
        started = time.perf_counter()
        if features is None:
            features = PCA(10, random_state=seed).fit_transform(standardised)
        labels = KMeans(clusters, n_init=n_init, random_state=seed).fit_predict(features).reshape(truth.shape)
        out[name] = {**scores(labels, truth, clusters), "seconds": time.perf_counter() - started}
    return out


def encoder_init_diagnostic(cube: np.ndarray, truth: np.ndarray, clusters: int, n_init: int) -> list[dict[str, Any]]:
    """k-means on the embeddings of *untrained* encoders (seed 0): how much of the spectra a fresh encoder keeps.

    DGC starts its dictionary from k-means of such embeddings, and training moves away from there
    only slowly, so this is roughly where a short run starts. Input: the standardised scene.
    """
    import torch
    from sklearn.cluster import KMeans

    from hsikit.models.clustering import GlobalClusteringModel

    data = (cube - cube.mean(axis=(1, 2), keepdims=True)) / cube.std(axis=(1, 2), keepdims=True)
    batch = torch.from_numpy(data.astype(np.float32))[None]
    base = {"n_clusters": clusters, "spectral_channels": 16, "n_spectral_layers": 2, "spectral_kernel_size": 5,
            "num_iters": 2, "window": 3}  # fmt: skip
    rows = []
    for final_relu, dim in ((True, 16), (False, 16), (False, 32), (False, 64)):
        torch.manual_seed(0)
        model = GlobalClusteringModel(in_bands=cube.shape[0], embed_dim=dim, final_relu=final_relu, **base).eval()
        with torch.no_grad():
            embeddings = model.encoder(batch)[0].reshape(dim, -1).T.numpy()
        labels = KMeans(clusters, n_init=n_init, random_state=0).fit_predict(embeddings).reshape(truth.shape)
        rows.append({"final_relu": final_relu, "embed_dim": dim, **scores(labels, truth, clusters)})
    return rows


# ---------------------------------------------------------------------------- DGC training
def load_config(name: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((CONFIGS / name).read_text())


def train_dgc(datamodule: Any, config: dict[str, Any], run_dir: Path, epochs: int, pairs: int,
              overrides: dict[str, Any], seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Train one variant; keep every epoch's checkpoint; return timings and the per-epoch val/selection."""
    import lightning as L
    from lightning.pytorch import Callback

    from hsikit.engine.trainer import RunOptions, create_trainer
    from hsikit.tasks.clustering import ClusteringTask

    class TrainClock(Callback):
        def __init__(self) -> None:
            self.seconds = 0.0
            self.pixels = 0
            self._start = 0.0

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self._start = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.seconds += time.perf_counter() - self._start
            crop = pl_module.augmentation.crop_size
            self.pixels += 2 * int(batch["cube"].shape[0]) * pl_module.crops_per_scene * crop[0] * crop[1]

    arguments = copy.deepcopy(config["model"]["init_args"])
    arguments["model_args"].update(overrides.pop("model_args", {}))
    arguments.update(overrides)
    datamodule.pairs_per_batch = pairs
    L.seed_everything(seed, verbose=False)
    task = ClusteringTask(**arguments)
    clock = TrainClock()
    trainer = create_trainer(
        run_dir, RunOptions(save_top_k=10_000, report=False), task=task, callbacks=[clock], max_epochs=epochs,
        gradient_clip_val=1.0, num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False,
        log_every_n_steps=max(1, pairs),
    )  # fmt: skip
    started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    total = time.perf_counter() - started
    metrics_file = next((run_dir / "csv").glob("version_*/metrics.csv"))
    per_epoch: dict[int, dict[str, float]] = {}
    for row in csv.DictReader(open(metrics_file)):
        if row.get("val/selection"):
            per_epoch[int(row["epoch"])] = {key.split("/", 1)[1]: float(value) for key, value in row.items()
                                            if key.startswith("val/") and value}  # fmt: skip
    checkpoints = {int(p.name[5:8]): p for p in (run_dir / "checkpoints").glob("epoch*.ckpt")}
    return {
        "seconds_total": total,
        "train_seconds": clock.seconds,
        "train_pixels": clock.pixels,
        "train_pixels_per_second": clock.pixels / max(clock.seconds, 1e-9),
        "steps": int(trainer.global_step),
        "per_epoch": per_epoch,
        "checkpoints": {epoch: str(path) for epoch, path in checkpoints.items()},
    }


def checkpoint_model(path: str, folder: Path) -> Any:
    from hsikit.engine.export import export_checkpoint, load_model

    export_checkpoint(path, folder)
    return load_model(folder)


def cluster_with(model: Any, cube: Any, tile: int = 256) -> tuple[np.ndarray, float]:
    from hsikit.inference.clustering import cluster_scene

    config = model.hsikit_config
    started = time.perf_counter()
    result = cluster_scene(model, cube, normalization=config.normalization,
                           scene_normalization=config.extra.get("scene_normalization"), tile=tile, overlap=32)  # fmt: skip
    return result.labels, time.perf_counter() - started  # type: ignore[union-attr]


def evaluate_variants(runs: dict[str, dict[str, Any]], cube: Any, truth: np.ndarray, clusters: int,
                      workdir: Path, ablations: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Score every checkpoint (for the report only), then compare the label-free choice with last and oracle.

    The choice, the oracle and the last epochs are over the candidate variants (not in ``ablations``);
    ``chosen_per_variant`` is each variant's own label-free choice, ablations included.
    """
    from hsikit.metrics.cluster_selection import choose_checkpoint

    table = []
    for variant, run in runs.items():
        for epoch, path in sorted(run["checkpoints"].items()):
            model = checkpoint_model(path, workdir / f"{variant}_{epoch}")
            labels, seconds = cluster_with(model, cube)
            entry = {"variant": variant, "epoch": epoch, **scores(labels, truth, clusters),
                     "selection": run["per_epoch"].get(epoch, {}).get("selection", float("nan")),
                     "inference_seconds": seconds}  # fmt: skip
            table.append(entry)
    def label_free_choice(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return rows[choose_checkpoint([row["selection"] for row in rows])]

    candidates = [row for row in table if row["variant"] not in ablations]
    oracle = max(candidates, key=lambda row: row["nmi"])
    per_variant = {variant: [r for r in table if r["variant"] == variant] for variant in runs}
    last = {variant: max(rows, key=lambda r: r["epoch"]) for variant, rows in per_variant.items()}
    return {"checkpoints": table, "chosen": label_free_choice(candidates), "oracle_best_nmi": oracle,
            "last_epoch": last, "chosen_per_variant": {v: label_free_choice(rows) for v, rows in per_variant.items()}}


# ---------------------------------------------------------------------------- experiments
def scene_experiment(name: str, config_name: str, folder: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from hsikit.data import load_dataset
    from hsikit.data.clustering_datamodule import ClusteringDataModule

    scene = load_dataset(name, root=folder, download=False, progress=False)
    truth = np.asarray(scene.labels)
    clusters = len(scene.class_names)
    config = load_config(config_name)
    assert config["model"]["init_args"]["model_args"]["n_clusters"] == clusters
    result: dict[str, Any] = {"scene": name, "clusters": clusters,
                              **kmeans_baselines(np.asarray(scene.cube.data), truth, clusters, 0, args.kmeans_init)}
    if name == "indian_pines":
        result["kmeans_on_fresh_encoder"] = encoder_init_diagnostic(np.asarray(scene.cube.data, dtype=np.float64),
                                                                    truth, clusters, 3)  # fmt: skip
        result["kmeans_standardised_by_k"] = kmeans_by_k(np.asarray(scene.cube.data), truth, args.kmeans_init)
    datamodule = ClusteringDataModule(dataset=name, root=str(folder), download=False, batch_size=1)
    result["seeds"] = {}
    for seed in args.seeds:
        runs = {}
        for variant, overrides in SCENE_VARIANTS[name].items():
            runs[variant] = train_dgc(datamodule, config, workdir / f"{name}_{variant}_s{seed}", args.epochs,
                                      args.pairs, copy.deepcopy(overrides), seed=seed)  # fmt: skip
            print(f"  {name} {variant} seed {seed}: {runs[variant]['steps']} steps in "
                  f"{runs[variant]['seconds_total']:.0f} s", flush=True)  # fmt: skip
        result["seeds"][seed] = {
            "runs": {v: {k: r[k] for k in r if k != "checkpoints"} for v, r in runs.items()},
            "dgc": evaluate_variants(runs, scene.cube, truth, clusters, workdir / f"{name}_eval_s{seed}",
                                     ABLATIONS.get(name, ())),
        }
    # the first seed's entries keep their old place (the glacier, K and speed parts use its choice)
    first = result["seeds"][args.seeds[0]]
    result["runs"], result["dgc"] = first["runs"], first["dgc"]
    result["dgc_over_seeds"] = summarise_seeds(result["seeds"])
    return result


def kmeans_by_k(cube: np.ndarray, truth: np.ndarray, n_init: int) -> dict[int, dict[str, Any]]:
    """k-means on the standardised spectra with K in KMEANS_K_SWEEP (does a smaller K alone raise NMI?)."""
    from sklearn.cluster import KMeans

    _, standardised = pixel_spectra(cube)
    rows = {}
    for k in KMEANS_K_SWEEP:
        labels = KMeans(k, n_init=n_init, random_state=0).fit_predict(standardised).reshape(truth.shape)
        rows[k] = scores(labels, truth, k)
    return rows


def summarise_seeds(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of ACC, NMI, ARI: label-free choice, last epoch, oracle."""
    first = next(iter(per_seed.values()))["dgc"]
    picks = {"chosen": lambda dgc: dgc["chosen"], "oracle_best_nmi": lambda dgc: dgc["oracle_best_nmi"],
             **{f"last_epoch_{v}": (lambda dgc, v=v: dgc["last_epoch"][v]) for v in first["last_epoch"]},
             **{f"chosen_{v}": (lambda dgc, v=v: dgc["chosen_per_variant"][v]) for v in first["chosen_per_variant"]}}  # fmt: skip
    summary: dict[str, Any] = {"seeds": list(per_seed)}
    for name, pick in picks.items():
        rows = [pick(entry["dgc"]) for entry in per_seed.values()]
        summary[name] = {
            metric: {"mean": float(np.mean([r[metric] for r in rows])),
                     "std": float(np.std([r[metric] for r in rows], ddof=1)) if len(rows) > 1 else 0.0,
                     "per_seed": [r[metric] for r in rows]}
            for metric in ("acc", "nmi", "ari")
        }  # fmt: skip
        summary[name]["variant_epoch"] = [[r["variant"], r["epoch"]] for r in rows]
    return summary


def k_selection(folder: Path, args: argparse.Namespace, variant: str, workdir: Path) -> dict[str, Any]:
    from hsikit.data import load_dataset
    from hsikit.data.clustering_datamodule import ClusteringDataModule
    from hsikit.metrics.cluster_selection import choose_num_clusters

    scene = load_dataset("samson", root=folder, download=False, progress=False)
    truth = np.asarray(scene.labels)
    config = load_config("clustering_samson.yaml")
    datamodule = ClusteringDataModule(dataset="samson", root=str(folder), download=False, batch_size=1)
    rows = {}
    for k in args.k_candidates:
        run = train_dgc(datamodule, config, workdir / f"samson_k{k}", args.k_epochs, args.pairs,
                        {"model_args": {"n_clusters": k, "orthogonality_step": VARIANTS[variant]}})  # fmt: skip
        selections = {e: v.get("selection", float("nan")) for e, v in run["per_epoch"].items()}
        best_epoch = max(selections, key=lambda e: (selections[e], e))
        model = checkpoint_model(run["checkpoints"][best_epoch], workdir / f"samson_k{k}_model")
        labels, _ = cluster_with(model, scene.cube)
        rows[k] = {"best_selection": selections[best_epoch], "epoch": best_epoch, **scores(labels, truth, k)}
        print(f"  samson K={k}: best selection {selections[best_epoch]:.3f} (epoch {best_epoch})", flush=True)
    chosen = choose_num_clusters({k: row["best_selection"] for k, row in rows.items()})
    return {"variant": variant, "candidates": rows, "chosen_k": chosen, "true_k": 3}


def glacier_experiment(folder: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from hsikit.data import load_dataset
    from hsikit.data.clustering_datamodule import ClusteringDataModule
    from hsikit.metrics.cluster_selection import choose_checkpoint
    from hsikit.metrics.clustering import contingency_matrix, match_clusters

    tiles = {t: load_dataset("glacier", t, root=folder, download=False, progress=False) for t in GLACIER_TILES}
    truths = {t: np.asarray(s.labels) for t, s in tiles.items()}
    clusters = 3
    base = load_config("clustering_samson.yaml")
    base["model"]["init_args"].update({"crop_size": 48, "crops_per_scene": 2})
    base["model"]["init_args"]["model_args"].update({"spectral_kernel_size": 3})
    datamodule = ClusteringDataModule(dataset="glacier", scenes=list(GLACIER_TILES), root=str(folder),
                                      download=False, batch_size=3)  # fmt: skip

    def single_mapping_table(maps: dict[str, np.ndarray]) -> dict[str, Any]:
        first = GLACIER_TILES[0]
        table = contingency_matrix(maps[first], truths[first], clusters, 4, ignore_index=0)
        mapping = match_clusters(table, ignore_index=0)
        per_tile = {}
        for tile in GLACIER_TILES:
            single = scores(maps[tile], truths[tile], clusters, mapping=mapping, classes=4)
            best = scores(maps[tile], truths[tile], clusters, classes=4)
            per_tile[tile] = {"miou_single_mapping": single["miou"], "acc_single_mapping": single["acc"],
                              "miou_own_best_mapping": best["miou"], "own_mapping": best["mapping"]}  # fmt: skip
        return {"mapping_from_tile": first, "mapping": mapping.tolist(), "tiles": per_tile}

    runs = {}
    for variant, step in VARIANTS.items():
        runs[variant] = train_dgc(datamodule, base, workdir / f"glacier_{variant}", args.glacier_epochs, args.pairs,
                                  {"model_args": {"orthogonality_step": step}})  # fmt: skip
        print(f"  glacier {variant}: {runs[variant]['steps']} steps in {runs[variant]['seconds_total']:.0f} s", flush=True)
    candidates = [(v, e, run["per_epoch"].get(e, {}).get("selection", float("nan"))) for v, run in runs.items()
                  for e in sorted(run["checkpoints"])]  # fmt: skip
    variant, epoch, selection = candidates[choose_checkpoint([c[2] for c in candidates])]
    model = checkpoint_model(runs[variant]["checkpoints"][epoch], workdir / "glacier_model")
    maps = {t: cluster_with(model, s.cube)[0] for t, s in tiles.items()}
    dgc = {"variant": variant, "epoch": epoch, "selection": selection, **single_mapping_table(maps)}

    from sklearn.cluster import KMeans

    pooled = np.concatenate([np.asarray(s.cube.data).reshape(10, -1).T for s in tiles.values()])
    started = time.perf_counter()
    kmeans = KMeans(clusters, n_init=args.kmeans_init, random_state=0).fit(pooled)
    kmeans_seconds = time.perf_counter() - started
    kmeans_maps = {t: kmeans.predict(np.asarray(s.cube.data).reshape(10, -1).T).reshape(256, 256)
                   for t, s in tiles.items()}  # fmt: skip
    return {"dgc": dgc, "kmeans_raw": {**single_mapping_table(kmeans_maps), "seconds": kmeans_seconds},
            "runs": {v: {k: r[k] for k in r if k != "checkpoints"} for v, r in runs.items()}}  # fmt: skip


def inference_speed(folder: Path, workdir: Path, indian_pines_model: str) -> dict[str, Any]:
    from hsikit.cube import Cube
    from hsikit.data import load_dataset

    model = checkpoint_model(indian_pines_model, workdir / "speed_model")
    scene = load_dataset("indian_pines", root=folder, download=False, progress=False)
    _, seconds = cluster_with(model, scene.cube)
    rng = np.random.default_rng(0)
    large = Cube(np.tile(np.asarray(scene.cube.data, dtype=np.float32), (1, 4, 2))[:, :512, :256]
                 + rng.normal(0, 5, (200, 512, 256)).astype(np.float32))  # fmt: skip
    _, large_seconds = cluster_with(model, large)
    return {"indian_pines_145x145": {"seconds": seconds, "pixels_per_second": 145 * 145 / seconds},
            "tiled_512x256_200_bands": {"seconds": large_seconds, "pixels_per_second": 512 * 256 / large_seconds}}  # fmt: skip


# ---------------------------------------------------------------------------- mean-shift memory (child)
def memory_worker(tile: int) -> None:
    """Print the peak memory (MB) of one windowed mean-shift call on a (1, 32, tile, tile) map, reference defaults."""
    import torch

    from hsikit.models.clustering import UnrolledMeanShift

    torch.set_num_threads(1)
    shift = UnrolledMeanShift(num_iters=5, window=5).eval()
    embeddings = torch.nn.functional.normalize(torch.randn(1, 32, tile, tile), dim=1)

    def resident(field: str) -> float:
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) / 1024
        return float("nan")

    before = resident("VmRSS")
    started = time.perf_counter()
    with torch.no_grad():
        shift(embeddings)
    print(json.dumps({"peak_mb": resident("VmHWM") - before, "seconds": time.perf_counter() - started}))


def mean_shift_memory() -> list[dict[str, Any]]:
    rows = []
    for tile in MEMORY_TILES:
        # A fixed mmap threshold makes glibc return every large block on free, so VmHWM is the peak of live memory
        # (with its dynamic threshold, freed blocks stay resident and the peak varies from run to run).
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
        output = subprocess.run([sys.executable, __file__, "--memory-worker", str(tile)], capture_output=True,
                                text=True, check=True, env=environment)  # fmt: skip
        measured = json.loads(output.stdout.strip().splitlines()[-1])
        embeddings_mb = 32 * tile * tile * 4 / 2**20
        reference_mb = 3 * tile * tile * 25 * 32 * 4 / 2**20
        rows.append({"tile": tile, "peak_mb": measured["peak_mb"], "seconds": measured["seconds"],
                     "embedding_map_mb": embeddings_mb, "reference_unfold_estimate_mb": reference_mb})  # fmt: skip
    return rows


# ---------------------------------------------------------------------------- report
def print_report(result: dict[str, Any]) -> None:
    print("\nClustering quality (labelled pixels; DGC checkpoint chosen by the label-free val/selection)")
    print(f"{'scene':<14}{'method':<34}{'ACC':>7}{'NMI':>7}{'ARI':>7}{'time s':>9}")
    for scene in result["scenes"]:
        for method in ("kmeans_raw", "kmeans_standardised", "kmeans_pca10"):
            row = scene[method]
            print(f"{scene['scene']:<14}{method:<34}{row['acc']:>7.3f}{row['nmi']:>7.3f}{row['ari']:>7.3f}{row['seconds']:>9.1f}")
        dgc = scene["dgc"]
        train_s = sum(run["seconds_total"] for run in scene["runs"].values())
        for label, row in (("DGC chosen without labels", dgc["chosen"]), ("DGC best epoch by labels (oracle)", dgc["oracle_best_nmi"])):
            print(f"{scene['scene']:<14}{label:<34}{row['acc']:>7.3f}{row['nmi']:>7.3f}{row['ari']:>7.3f}"
                  f"{train_s if label.startswith('DGC chosen') else float('nan'):>9.1f}  ({row['variant']}, epoch {row['epoch']})")
        for variant, row in dgc["last_epoch"].items():
            print(f"{scene['scene']:<14}{'DGC last epoch ' + variant:<34}{row['acc']:>7.3f}{row['nmi']:>7.3f}{row['ari']:>7.3f}")
        over = scene.get("dgc_over_seeds")
        if over:
            print(f"{scene['scene']:<14}over seeds {over['seeds']} (mean ± std):")
            for name, row in over.items():
                if name == "seeds":
                    continue
                cells = "  ".join(f"{m.upper()} {row[m]['mean']:.3f} ± {row[m]['std']:.3f}" for m in ("acc", "nmi", "ari"))
                print(f"{'':<14}  {name:<40}{cells}   per seed NMI {[round(v, 3) for v in row['nmi']['per_seed']]}")
        for k, row in scene.get("kmeans_standardised_by_k", {}).items():
            print(f"{scene['scene']:<14}{'k-means standardised, K=' + str(k):<34}{row['acc']:>7.3f}{row['nmi']:>7.3f}{row['ari']:>7.3f}")
    for scene in result["scenes"]:
        for row in scene.get("kmeans_on_fresh_encoder", []):
            print(f"k-means on an untrained encoder ({scene['scene']}, final ReLU {row['final_relu']}, D={row['embed_dim']}):"
                  f" NMI {row['nmi']:.3f}, ACC {row['acc']:.3f}")
    ks = result.get("k_selection")
    if ks:
        print(f"\nNumber of clusters on Samson without labels ({ks['variant']}): chosen K = {ks['chosen_k']} (true 3)")
        for k, row in ks["candidates"].items():
            print(f"  K={k}: best selection {row['best_selection']:.3f}, NMI {row['nmi']:.3f}, ACC {row['acc']:.3f}")
    glacier = result.get("glacier")
    if glacier:
        print("\nGlacier tiles: one model, cluster -> class mapping from tile 1 applied to every tile (mIoU)")
        print(f"{'method':<12}{'tile':>6}{'single mapping':>16}{'own best mapping':>18}")
        for method in ("dgc", "kmeans_raw"):
            for tile, row in glacier[method]["tiles"].items():
                print(f"{method:<12}{tile:>6}{row['miou_single_mapping']:>16.3f}{row['miou_own_best_mapping']:>18.3f}")
    speed = result.get("speed")
    if speed:
        print("\nSpeed (CPU)")
        for scene in result["scenes"]:
            for variant, run in scene["runs"].items():
                print(f"  training {scene['scene']} {variant}: {run['train_pixels_per_second']:.0f} crop px/s")
        for name, row in speed["inference"].items():
            print(f"  inference {name}: {row['pixels_per_second']:.0f} px/s ({row['seconds']:.1f} s)")
        print("  windowed mean-shift peak memory (D=32, window 5, 5 steps, no grad):")
        for row in speed["mean_shift_memory"]:
            print(f"    tile {row['tile']:>5}: {row['peak_mb']:8.1f} MB measured, embedding map {row['embedding_map_mb']:.1f} MB,"
                  f" reference unfold ~{row['reference_unfold_estimate_mb']:.0f} MB ({row['seconds']:.2f} s)")


def _json_ready(value: Any) -> Any:
    """NaN → None, numpy/paths → plain values, int keys → strings (valid JSON)."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def rerun_indian_pines(folder: Path, args: argparse.Namespace) -> int:
    """Rerun the Indian Pines experiment alone and put it into the existing results file."""
    started = time.perf_counter()
    machine = machine_info(args.threads)
    with tempfile.TemporaryDirectory() as temporary:
        scene = scene_experiment("indian_pines", "clustering_indian_pines.yaml", folder, args, Path(temporary))
    machine["load_average_at_end"] = os.getloadavg()
    scene["rerun"] = {"machine": machine, "seconds_total": time.perf_counter() - started,
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
    target = RESULTS.with_name("bench_clustering_quick.json") if args.quick else RESULTS
    result = json.loads(target.read_text()) if target.is_file() else {"scenes": []}
    result["scenes"] = [scene] + [s for s in result.get("scenes", []) if s.get("scene") != "indian_pines"]
    result.setdefault("settings", {})["variants"] = SCENE_VARIANTS
    print_report({"scenes": [scene]})
    target.write_text(json.dumps(_json_ready(result), indent=2, allow_nan=False) + "\n")
    print(f"wrote {target} (Indian Pines replaced)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of everything")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--only-indian-pines", action="store_true",
                        help="rerun only the Indian Pines experiment and replace it in the existing JSON "
                        "(the entry records its own machine and load)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="training seeds of the Indian Pines and Samson runs (default 0 1 2; --quick: 0)")
    parser.add_argument("--memory-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker is not None:
        memory_worker(args.memory_worker)
        return 0
    import torch

    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    args.epochs, args.pairs, args.k_epochs, args.glacier_epochs = (2, 2, 2, 2) if args.quick else (10, 12, 8, 8)
    args.k_candidates = [2, 3] if args.quick else [2, 3, 4, 5]
    args.kmeans_init = 1 if args.quick else 10
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    folder = shared_data()
    started = time.perf_counter()
    if args.only_indian_pines:
        return rerun_indian_pines(folder, args)
    result: dict[str, Any] = {"machine": machine_info(args.threads), "quick": args.quick,
                              "settings": {"epochs": args.epochs, "pairs_per_epoch": args.pairs, "seeds": args.seeds,
                                           "variants": SCENE_VARIANTS, "kmeans_n_init": args.kmeans_init}}  # fmt: skip
    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        print("Indian Pines and Samson", flush=True)
        result["scenes"] = [
            scene_experiment("indian_pines", "clustering_indian_pines.yaml", folder, args, workdir),
            scene_experiment("samson", "clustering_samson.yaml", folder, args, workdir),
        ]
        samson_variant = result["scenes"][1]["dgc"]["chosen"]["variant"]
        print("Number of clusters (Samson)", flush=True)
        result["k_selection"] = k_selection(folder, args, samson_variant, workdir)
        print("Glacier tiles", flush=True)
        result["glacier"] = glacier_experiment(folder, args, workdir)
        print("Speed and memory", flush=True)
        chosen = result["scenes"][0]["dgc"]["chosen"]
        run_folder = workdir / f"indian_pines_{chosen['variant']}_s{args.seeds[0]}"
        checkpoint = next(p for p in (run_folder / "checkpoints").glob(
            f"epoch{chosen['epoch']:03d}-*.ckpt"))  # fmt: skip
        result["speed"] = {"inference": inference_speed(folder, workdir, str(checkpoint)),
                           "mean_shift_memory": mean_shift_memory()}  # fmt: skip
    result["seconds_total"] = time.perf_counter() - started
    result["machine"]["load_average_at_end"] = os.getloadavg()
    print_report(result)
    print(f"\ntotal {result['seconds_total'] / 60:.1f} min")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    target = RESULTS.with_name("bench_clustering_quick.json") if args.quick else RESULTS
    target.write_text(json.dumps(_json_ready(result), indent=2, allow_nan=False) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
