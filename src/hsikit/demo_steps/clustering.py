"""Demo step: label-free clustering of a real scene (Samson) with a small Deep Global Clustering model.

Trains :class:`~hsikit.tasks.clustering.ClusteringTask` for a few seconds on the Samson
scene of the shared data folder (95 × 95 px, 156 bands; soil, tree, water) without its
labels, exports the model, clusters the whole scene with tiled inference (probabilities
merged) and writes the cluster map (``cluster_map.png`` over the true-colour image, and the
label map ``cluster_labels.npy``). The labels (argmax of the ground-truth abundances) are
used only to print NMI and Hungarian accuracy. Without the shared data the step clusters the demo's own scene
(synthetic when offline) instead, cropped to 64 × 64 pixels.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hsikit.cube import Cube
from hsikit.demo import DemoContext, DemoStep

ORDER = 50
CLUSTERS = 3
EPOCHS, PAIRS_PER_EPOCH, CROPS_PER_STEP, CROP = 4, 8, 4, 32
# A low temperature: the embeddings of a freshly initialised encoder lie in a narrow cone, and at the
# reference's temp = 0.05 their assignments are nearly uniform, which lets training collapse.
_MODEL = {"n_clusters": CLUSTERS, "embed_dim": 16, "spectral_channels": 8, "n_spectral_layers": 2,
          "spectral_kernel_size": 5, "num_iters": 2, "window": 3, "temp": 0.005}


def _scene(context: DemoContext) -> tuple[Cube, np.ndarray | None, str]:
    """``(cube, labels or None, title)``: Samson from the shared data, else the demo scene cropped."""
    from hsikit.data.paths import shared_data_dir
    from hsikit.errors import HsikitError

    shared = shared_data_dir()
    if shared is not None:
        try:
            from hsikit.data import load_dataset

            samson = load_dataset("samson", root=shared, download=False, progress=False)
            return samson.cube, np.asarray(samson.labels), "Samson"
        except HsikitError as error:
            context.echo(f"  Samson is not available here ({error}); clustering the demo scene instead")
    cube = context.scene.cube
    side = min(64, cube.height, cube.width)
    cropped = cube.window((0, 0, side, side))
    labels = None if context.scene.labels is None else np.asarray(context.scene.labels)[:side, :side]
    return cropped, labels, f"{context.scene.title} ({side} x {side} px)"


def _step_cluster(context: DemoContext) -> list[Path]:
    import lightning as L
    import torch

    from hsikit.data.clustering_datamodule import ClusteringDataModule
    from hsikit.engine.export import export_model, load_model
    from hsikit.inference.clustering import cluster_scene
    from hsikit.metrics.clustering import clustering_scores
    from hsikit.tasks.clustering import ClusteringTask
    from hsikit.viz.maps import plot_class_map

    started = time.perf_counter()
    cube, labels, title = _scene(context)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread beats two on a busy 2-core machine
    try:
        L.seed_everything(0, verbose=False)
        datamodule = ClusteringDataModule.from_cubes([cube], batch_size=1, pairs_per_batch=PAIRS_PER_EPOCH)
        task = ClusteringTask(model_args=dict(_MODEL), crop_size=CROP, crops_per_scene=CROPS_PER_STEP, lr=1e-3)
        trainer = L.Trainer(
            max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
            default_root_dir=str(context.output_dir),
        )  # fmt: skip
        trainer.fit(task, datamodule=datamodule)
        model_dir = context.output_path("clustering_model")
        export_model(task.model, model_dir, task="clustering", data=task.export_data())
        model = load_model(model_dir, expected_bands=cube.bands)
        config = model.hsikit_config
        result = cluster_scene(
            model, cube, normalization=config.normalization,
            scene_normalization=config.extra.get("scene_normalization"), tile=64, overlap=16,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    cluster_map = result.labels  # type: ignore[union-attr]
    map_path = context.output_path("cluster_labels.npy")
    np.save(map_path, cluster_map.astype(np.int32))
    png_path = context.output_path("cluster_map.png")
    names = {k: f"cluster {k}" for k in range(CLUSTERS)}
    plot_class_map(cluster_map, names, background=cube, alpha=0.75, unlabelled_value=-1,
                   title=f"{title}: {CLUSTERS} clusters, learned without labels", path=png_path)
    seconds = time.perf_counter() - started
    steps = EPOCHS * PAIRS_PER_EPOCH
    if labels is not None:
        scores = clustering_scores(cluster_map, labels, ignore_index=0)
        context.echo(
            f"  Deep Global Clustering, {steps} steps on {title}: NMI {scores['nmi']:.2f}, Hungarian accuracy "
            f"{scores['accuracy']:.2f} against the labels it never saw ({seconds:.1f} s, a demo, not a benchmark)"
        )
    else:
        context.echo(f"  Deep Global Clustering, {steps} steps on {title} ({seconds:.1f} s)")
    return [png_path, map_path, model_dir / "config.json"]


STEPS: list[DemoStep] = [
    DemoStep("cluster", "clustering: learn global clusters without labels, draw the cluster map", _step_cluster)
]
