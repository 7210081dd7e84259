"""Demo step: train a small SSMGNet on a glacier tile for a few seconds and map another tile.

Uses the real glacier tiles of the shared data folder (``glacier/images``, ``glacier/labels``)
whether the tour runs on Indian Pines or on its synthetic scene (the step needs 10-band
glacier data, not the tour's scene): trains on tile 1 (random 64 × 64 crops with
flips/rotations, attention supervision on), exports the model, segments tile 2 and writes,
into ``<output>/segmentation/``, its class GeoTIFF (EPSG:32647 kept), a shapefile of the
glacier polygons with class names, the colour PNG and the attention and Grad-CAM heat maps.
When the glacier tiles are not there the step says so and skips.
"""

from __future__ import annotations

import time
from pathlib import Path

from hsikit.demo import DemoContext, DemoStep

ORDER = 40
TRAIN_TILE, MAP_TILE = "1", "2"
EPOCHS, SAMPLES_PER_EPOCH = 10, 16


def _glacier_folder() -> Path | None:
    from hsikit.data.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        return None
    folder = shared / "glacier"
    needed = [folder / kind / f"{tile}.tif" for kind in ("images", "labels") for tile in (TRAIN_TILE, MAP_TILE)]
    return folder if all(path.is_file() for path in needed) else None


def _step_segment_glacier(context: DemoContext) -> list[Path]:
    folder = _glacier_folder()
    if folder is None:
        context.echo("  the glacier tiles (shared data glacier/) are not available: segmentation step skipped")
        return []
    import lightning as L
    import torch

    from hsikit.data.segmentation_datamodule import SegmentationDataModule
    from hsikit.engine.export import export_model, load_model
    from hsikit.inference.segmentation import segment_tile
    from hsikit.metrics.segmentation import confusion_matrix, confusion_scores
    from hsikit.tasks.segmentation import SegmentationTask

    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and steady on a shared machine
    try:
        L.seed_everything(0, verbose=False)
        class_names = ["background", "clean_glacier", "debris_glacier"]
        datamodule = SegmentationDataModule(
            root=str(folder), train=[TRAIN_TILE], val=[], class_names=class_names, crop_size=64,
            samples_per_epoch=SAMPLES_PER_EPOCH, batch_size=8, shuffle_seed=0,
        )  # fmt: skip
        task = SegmentationTask(
            model="ssmgnet", model_args={"width": 8}, class_weights="inverse_frequency", lr=5e-3,
            scheduler="step", training_log=None,
        )  # fmt: skip
        trainer = L.Trainer(
            max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
            default_root_dir=str(context.output_dir),
        )  # fmt: skip
        trainer.fit(task, datamodule=datamodule)
        folder_out = context.output_path("segmentation")  # a sub-folder: the tour's own pictures stay on top
        model_dir = folder_out / "model"
        export_model(task.model, model_dir, task="segmentation", data=task.export_data())
        model = load_model(model_dir, expected_bands=10)
        result = segment_tile(
            model, folder / "images" / f"{MAP_TILE}.tif", folder_out, name=f"glacier_{MAP_TILE}",
            vector="shp", gradcam_classes=[1],
        )  # fmt: skip
        from hsikit.io import open_labels

        truth = torch.from_numpy(open_labels(folder / "labels" / f"{MAP_TILE}.tif").astype("int64"))
        from hsikit.io import open_cube

        predicted = torch.from_numpy(open_cube(result["classes"]).data[0].astype("int64"))
        scores = confusion_scores(confusion_matrix(predicted, truth, 3))
    finally:
        torch.set_num_threads(threads)
    iou = ", ".join(f"{name} {value:.2f}" for name, value in zip(class_names, scores["IoU"].tolist()))
    context.echo(
        f"  SSMGNet (width 8) trained {EPOCHS} x {SAMPLES_PER_EPOCH} crops on glacier tile {TRAIN_TILE}, mapped tile "
        f"{MAP_TILE}: IoU {iou}; mIoU {float(scores['mIoU']):.2f} ({time.perf_counter() - started:.1f} s, a demo, "
        "not a benchmark)"
    )
    files = [result["classes"], result["png"], result["vector"]]
    files += [path for path in (result["attention_png"],) if path is not None]
    files += [entry["png"] for entry in result["gradcam"].values()]
    return [Path(path) for path in files]


STEPS: list[DemoStep] = [
    DemoStep(
        "segment_glacier",
        "segmentation: train SSMGNet briefly on a glacier tile, map another (GeoTIFF, shapefile, PNG)",
        _step_segment_glacier,
    )
]
