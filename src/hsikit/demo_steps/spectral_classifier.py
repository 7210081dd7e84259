"""Demo step: train deephyp's 1-D CNN spectral classifier on the demo scene and map every pixel.

A few seconds of CPU: up to 40 labelled pixels per class train the network (deephyp's
class balancing, Adam) on band-standardised spectra (statistics of the training pixels
only); every pixel of the scene is then classified. The step writes, in
``spectral_classifier/`` of the demo folder, ``class_map.tif`` (label values, with the
scene's georeference when it has one) and ``class_map.png`` (with a legend), and prints
the overall accuracy on the labelled pixels that were not used for training. It runs on
Indian Pines or, offline, on the synthetic scene.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hsikit.demo import DemoContext, DemoStep

ORDER = 40
#: training pixels per class (at most half of a class)
PIXELS_PER_CLASS = 40
EPOCHS = 40
SEED = 0


def _training_indices(targets: np.ndarray, classes: int, rng: np.random.Generator) -> np.ndarray:
    chosen = []
    for k in range(classes):
        members = np.flatnonzero(targets == k)
        take = min(PIXELS_PER_CLASS, max(1, members.size // 2))
        chosen.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(chosen))


def train_spectral_classifier(context: DemoContext) -> list[Path]:
    """The step: train, classify the scene, write the map (GeoTIFF + PNG); returns the files."""
    import torch

    from hsikit.io.labels import save_labels
    from hsikit.viz.maps import plot_class_map
    from hsikit.workflows.deephyp import SpectralClassifier, SpectralData

    scene = context.scene
    if scene.labels is None:
        context.echo("  the scene has no labels: no classifier to train")
        return []
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is fastest and leaves the other cores alone
    try:
        labels = np.asarray(scene.labels)
        everything = SpectralData.from_cube(scene.cube, labels, preprocessing="none")
        labelled = np.flatnonzero(everything.targets >= 0)
        rng = np.random.default_rng(SEED)
        train = labelled[_training_indices(everything.targets[labelled], everything.num_classes, rng)]
        mask = np.zeros(labels.shape, dtype=bool)
        mask[everything.rows[train], everything.cols[train]] = True
        data = SpectralData.from_cube(scene.cube, labels, preprocessing="standardize", fit_mask=mask)
        classifier = SpectralClassifier("cnn1d_classifier", in_bands=data.num_bands, num_classes=data.num_classes)
        classifier.add_training("demo", epochs=EPOCHS, batch_size=64, lr=5e-3, balance_classes=True)
        classifier.train("demo", data.subset(train), seed=SEED)
        predicted = classifier.predict_labels(data)
    finally:
        torch.set_num_threads(threads)
    held_out = np.setdiff1d(labelled, train)
    accuracy = float(np.mean(predicted[held_out] == data.labels[held_out])) if held_out.size else float("nan")
    class_map = data.to_image(predicted.astype(np.int32), fill=0)
    folder = context.output_path("spectral_classifier")
    folder.mkdir(parents=True, exist_ok=True)
    tif = save_labels(class_map, folder / "class_map.tif", like=scene.cube, nodata=0)
    png = folder / "class_map.png"
    plot_class_map(
        class_map, scene.class_names, first_label=scene.first_label,
        title=f"{scene.title}: 1-D CNN (deephyp), {train.size} training pixels", path=png,
    )
    context.echo(
        f"  1-D CNN on {train.size} training pixels, {EPOCHS} epochs: overall accuracy {accuracy:.1%} on the "
        f"{held_out.size} other labelled pixels ({time.perf_counter() - started:.1f} s)"
    )
    return [Path(tif), png]


STEPS = [DemoStep("spectral_classifier", "train a 1-D CNN spectral classifier and map the scene",
                  train_spectral_classifier)]
