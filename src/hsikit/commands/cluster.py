"""``hsikit cluster run | eval | layout``: label-free clustering of folders of cubes with one global dictionary.

The three commands of the reference project (b05611038/HSI_global_clustering), on hsikit::

    hsikit cluster run --mat-dir data/hsi_mat --json-dir data/hsi_json --out-dir runs/tea --n-clusters 4 --epochs 10
    hsikit cluster eval --checkpoint-path runs/tea/model --mat-dir data/hsi_mat --json-dir data/hsi_json
    hsikit cluster eval --checkpoint-path runs/tea/model --mat-dir data/hsi_mat --json-dir data/hsi_json \\
        --manual-mapping '{"0": [0], "1": [1, 2, 3]}'
    hsikit cluster layout --checkpoint-path runs/tea/model --mat-dir data/hsi_mat --out-dir maps --layout-image --layout-pth

* ``run`` (``run_clustering.py``) trains :class:`~hsikit.tasks.clustering.ClusteringTask` on
  every cube of ``--mat-dir`` (``.mat`` files, key ``cube``, ``(C, H, W)``; or any cube
  format hsikit reads) or of a registered ``--dataset``, writing an hsikit run folder into
  ``--out-dir`` (checkpoints, the model chosen by the label-free criterion in ``model/``,
  metrics, report). ``--save-prediction`` also writes every scene's cluster map. The
  reference's flags are accepted with ``-`` or ``_``; ``--reuse-iter`` is the number of crop
  pairs per loaded batch. Differences, on purpose: the uniform-assignment weight defaults
  to 0 (``--coef-unif 1`` restores the reference), the assignment temperature to 0.005
  (``--temp 0.05`` restores it; see ``docs/clustering.md``), the dictionary starts from
  k-means++ centres (``--centroid-init random`` restores the reference), and the checkpoint
  exported is the one the label-free selection score prefers. ``--save-interval N``
  writes, as the reference, a snapshot every N epochs (``<out-dir>/snapshots/epoch_<e>``:
  the model, loadable by ``eval``/``layout``, and the cluster map of the first scene) and
  ``snapshots/final``. ``--full-load-ds`` holds every scene in memory; without it scenes
  are read from disk when used (for ``eval`` and ``layout`` too).
* ``eval`` (``eval_clustering.py``) clusters every scene with the model's one dictionary
  and scores it against the labels: Hungarian alignment of clusters to classes computed on
  all scenes together (K ≠ C allowed: surplus clusters go to their majority class), or a
  manual ``{label: [clusters]}`` mapping (JSON, or a Python literal as in the reference).
  ``--mapping-scene NAME`` computes the alignment on one scene and applies it unchanged to
  the others (the test of global ids). Prints NMI, ARI, accuracy, mean IoU/Dice and area
  RMSE per scene and overall, and per-class IoU/Dice.
* ``layout`` (``layout_predictions.py``) writes each scene's cluster map as a PNG with one
  colour per cluster for any number of clusters (``--layout-image``; the reference's
  palette stopped at 8) and the label map itself (``--layout-pth``: ``<stem>.npy``, plus
  ``<stem>_clusters.tif`` keeping the georeference of GeoTIFF inputs). ``--img-dir`` puts
  the pictures in their own folder (the reference's option); ``--source side|overlay``
  draws each scene's colour picture next to, or under, its cluster map.

All inference is tiled (:func:`hsikit.inference.clustering.cluster_scene`): probabilities
of overlapping tiles are merged before the argmax, in bounded memory.
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hsikit.errors import ConfigError, ShapeMismatchError


# ---------------------------------------------------------------------------- scenes
@dataclass
class _Scene:
    name: str
    cube: Any  # hsikit.cube.Cube
    labels: np.ndarray | None
    path: Path | None


def _add_scene_arguments(parser: argparse.ArgumentParser, labels: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mat-dir", "--mat_dir", dest="mat_dir",
                        help="folder of cubes (.mat key 'cube' (C, H, W), or any format hsikit reads), a glob or a file")
    source.add_argument("--dataset", help="registered dataset instead (e.g. indian_pines, samson, glacier)")
    parser.add_argument("--scenes", nargs="+", default=None, help="scene ids of a multi-scene --dataset (e.g. 1 2 4)")
    parser.add_argument("--root", default=None, help="data folder of the dataset registry (e.g. ../shared/data)")
    parser.add_argument("--key", default="cube", help=".mat variable holding the cube (default: cube)")
    parser.add_argument("--layout", default=None, choices=("CHW", "HWC", "auto"),
                        help="axis order of .mat/.npy cubes (default: CHW for .mat, as the reference; auto otherwise)")
    if labels:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--json-dir", "--json_dir", dest="json_dir", default=None,
                           help="folder of LabelMe <stem>.json annotations")
        group.add_argument("--label-dir", "--label_dir", dest="label_dir", default=None,
                           help="folder of label rasters <stem>.<ext> (or the reference's .pth tensors)")
        parser.add_argument("--label-key", default="label", help="2-D label variable inside the .mat files")
        parser.add_argument("--class-map", default=None,
                            help="LabelMe label name -> id as JSON, e.g. '{\"class0\": 0, \"class1\": 1}' (the reference's)")
    parser.add_argument("--full-load-ds", "--full_load_ds", dest="full_load_ds", action="store_true",
                        help="read every scene into memory up front (large RAM use, no disk reads afterwards; "
                        "training then uses no loader workers); default: read each scene from disk when it is used")
    parser.add_argument("--ds-n-workers", "--ds_n_workers", dest="ds_n_workers", type=int, default=0,
                        help="DataLoader workers for training (with --prefetch at least 1); unused by eval and layout")


def _class_map(text: str | None) -> dict[str, int] | None:
    if text is None:
        return None
    value = _parse_mapping_text(text, "--class-map")
    try:
        return {str(name): int(index) for name, index in value.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"--class-map must map label names to integer ids, got {text!r}") from None


def _parse_mapping_text(text: str, option: str) -> dict[Any, Any]:
    """A JSON object, or a Python literal dict (the reference accepted both)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ConfigError(
                f"{option} must be a JSON object or a Python dict literal such as '{{0: [0], 1: [1, 2, 3]}}', got {text!r}"
            ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"{option} must be a mapping, got {type(value).__name__}")
    return value


def _iter_scenes(args: argparse.Namespace, labels: bool) -> Iterator[_Scene]:
    """The scenes named by the arguments, read one at a time (labels when asked)."""
    if args.dataset is not None:
        from hsikit.data import load_dataset

        for scene_id in args.scenes or [None]:
            scene = load_dataset(args.dataset, scene_id, root=args.root, download=False, progress=False)
            name = scene.name if scene_id is None else f"{scene.name}_{scene_id}"
            yield _Scene(name, scene.cube, None if scene.labels is None else np.asarray(scene.labels), None)
        return
    from hsikit.data.clustering_datamodule import list_cube_files, read_cube_file, read_scene_labels

    for path in list_cube_files(args.mat_dir):
        cube = read_cube_file(path, args.key, args.layout)
        label_map = None
        if labels:
            label_map = read_scene_labels(
                path,
                (cube.height, cube.width),
                json_dir=args.json_dir,
                label_dir=args.label_dir,
                class_mapping=_class_map(args.class_map),
                label_key=args.label_key,
            )
        yield _Scene(path.stem, cube, label_map, path)


def _scene_source(args: argparse.Namespace, labels: bool) -> Iterator[_Scene] | list[_Scene]:
    """The scenes for eval/layout: all read up front with ``--full-load-ds``, else one at a time as they are used."""
    scenes = _iter_scenes(args, labels)
    return list(scenes) if getattr(args, "full_load_ds", False) else scenes


def _load_clustering_model(path: str, device: str) -> Any:
    from hsikit.engine.export import load_model

    model = load_model(path, device=device)
    config = model.hsikit_config
    if config.task not in (None, "clustering") or not hasattr(model, "dictionary"):
        raise ConfigError(
            f"'{path}' holds a {config.name!r} model for the {config.task!r} task; hsikit cluster needs a model "
            "trained by 'hsikit cluster run' (task 'clustering')"
        )
    return model


def _cluster(model: Any, scene: _Scene, args: argparse.Namespace) -> np.ndarray:
    from hsikit.inference.clustering import cluster_scene

    config = model.hsikit_config
    if config.bands is not None and scene.cube.bands != int(config.bands):
        raise ConfigError(
            f"scene {scene.name}: {scene.cube.bands} bands, the model was trained on {config.bands}; "
            "cluster scenes of the sensor the model was trained on"
        )
    result = cluster_scene(
        model,
        scene.cube,
        normalization=config.normalization,
        scene_normalization=config.extra.get("scene_normalization"),
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
    )
    return result.labels  # type: ignore[union-attr]


def _add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint-path", "--checkpoint_path", dest="checkpoint_path", required=True,
                        help="model folder written by 'hsikit cluster run' (its model/ folder, or the run folder)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1...)")
    parser.add_argument("--tile", type=int, default=256, help="tile size in pixels (default 256)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (default 32)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per model call (default 4)")


# ---------------------------------------------------------------------------- run
def build_run_datamodule(args: argparse.Namespace) -> Any:
    """The :class:`ClusteringDataModule` of ``hsikit cluster run`` (set up).

    ``--full-load-ds`` holds every normalised scene in memory and reads no file afterwards
    (no loader workers, as in the reference); without it each scene is read from its file
    and normalised whenever a batch needs it (by ``--ds-n-workers`` workers). ``--prefetch``
    reads from disk in background workers, so it excludes ``--full-load-ds``.
    """
    from hsikit.data.clustering_datamodule import ClusteringDataModule

    if args.full_load_ds and args.prefetch:
        raise ConfigError("--full-load-ds holds the scenes in memory, --prefetch reads them from disk in background "
                          "workers; choose one")  # fmt: skip
    data_options: dict[str, Any] = {
        "batch_size": args.batch,
        "pairs_per_batch": args.reuse_iter,
        "num_workers": 0 if args.full_load_ds else args.ds_n_workers,
        "prefetch": args.prefetch,
        "full_load": bool(args.full_load_ds),
        "normalization": args.normalization,
        "key": args.key,
        "layout": args.layout,
        "json_dir": args.json_dir,
        "label_dir": args.label_dir,
        "class_mapping": _class_map(args.class_map),
        "label_key": args.label_key,
        "ignore_index": None if args.ignore_index < 0 else args.ignore_index,
    }
    if args.dataset is not None:
        datamodule = ClusteringDataModule(dataset=args.dataset, scenes=args.scenes, root=args.root, download=False,
                                          **data_options)  # fmt: skip
    else:
        datamodule = ClusteringDataModule(inputs=args.mat_dir, **data_options)
    datamodule.setup()
    return datamodule


def handle_run(args: argparse.Namespace, out: TextIO) -> int:
    """Train a clustering model on the scenes (``hsikit cluster run``)."""
    import lightning as L

    from hsikit.engine.trainer import RunOptions, create_trainer
    from hsikit.tasks.clustering import ClusteringSnapshots, ClusteringTask

    if args.epochs < 1 or args.batch < 1 or args.reuse_iter < 1:
        raise ConfigError(f"need --epochs, --batch and --reuse-iter >= 1, got {args.epochs}, {args.batch}, {args.reuse_iter}")
    if args.save_interval < 0:
        raise ConfigError(f"--save-interval must be >= 0 (0: no snapshots), got {args.save_interval}")
    L.seed_everything(args.seed, workers=True, verbose=False)
    datamodule = build_run_datamodule(args)
    description = datamodule.data_description
    if args.bands is not None and int(description["bands"]) != args.bands:
        raise ConfigError(f"--bands {args.bands}, but the scenes have {description['bands']} bands; drop --bands or fix it")
    model_args = {
        "n_clusters": args.n_clusters,
        "embed_dim": args.embed_dim,
        "num_iters": args.num_iters,
        "ema_decay": args.ema_decay,
        "ema_kick": args.ema_kick,
        "encoder_mode": args.encoder_mode,
        "spectral_kernel_size": args.spectral_kernel_size,
        "bias": args.bias,
        "temp": args.temp,
        "orthogonality_step": args.orthogonality_step,
        "centre_embeddings": args.centre_embeddings,
    }
    if args.coef_recon > 0:
        model_args["decoder_hidden"] = args.decoder_hidden
    task = ClusteringTask(
        model_args=model_args,
        crop_size=[args.crop_h, args.crop_w],
        crops_per_scene=args.crops_per_scene,
        orthogonality_weight=args.coef_orth,
        balance_weight=args.coef_bal,
        uniform_weight=args.coef_unif,
        consistency_weight=args.coef_cons,
        reconstruction_weight=args.coef_recon,
        lr=args.lr,
        betas=(args.beta1, args.beta2),
        weight_decay=args.wd,
        centroid_init=args.centroid_init,
    )
    accelerator = "cpu" if str(args.device).startswith("cpu") else "gpu"
    devices: Any = 1
    if accelerator == "gpu" and ":" in str(args.device):
        devices = [int(str(args.device).split(":", 1)[1])]
    options = RunOptions(save_top_k=args.save_top_k, export=True, report=True)
    snapshots = ClusteringSnapshots(Path(args.out_dir) / "snapshots", args.save_interval) if args.save_interval else None
    trainer = create_trainer(
        Path(args.out_dir),
        options,
        task=task,
        callbacks=[snapshots] if snapshots is not None else [],
        seed=args.seed,
        max_epochs=args.epochs,
        accelerator=accelerator,
        devices=devices,
        precision=args.precision,
        gradient_clip_val=args.grad_clip,
        enable_progress_bar=not args.no_progress,
        log_every_n_steps=args.log_interval,
    )
    started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    seconds = time.perf_counter() - started
    metrics = json.loads((Path(args.out_dir) / "metrics.json").read_text(encoding="utf-8"))["fit"]
    out.write(
        f"trained {args.epochs} epochs ({trainer.global_step} steps) in {seconds:.1f} s on "
        f"{len(datamodule.train_scenes)} scene(s); best val/selection {metrics.get('best_score')} "
        f"({metrics.get('best_checkpoint')})\n"
    )
    model_dir = Path(args.out_dir) / "model"
    out.write(f"model: {model_dir}\n")
    if snapshots is not None:
        out.write(f"snapshots every {args.save_interval} epoch(s): {', '.join(p.name for p in snapshots.written)} "
                  f"in {snapshots.folder}\n")
    if args.save_prediction:
        args.checkpoint_path = str(model_dir)
        args.tile, args.overlap, args.batch_size = 256, 32, 4
        model = _load_clustering_model(str(model_dir), args.device)
        folder = Path(args.out_dir) / "predictions"
        for scene in _scene_source(args, labels=False):
            labels = _cluster(model, scene, args)
            written = _write_layout(scene, labels, folder, image=True, label_map=True, model=model)
            out.write(f"{scene.name}: {', '.join(str(p) for p in written)}\n")
    return 0


# ---------------------------------------------------------------------------- eval
def handle_eval(args: argparse.Namespace, out: TextIO) -> int:
    """Score the cluster maps of labelled scenes (``hsikit cluster eval``)."""
    from hsikit.metrics.clustering import contingency_matrix, mapping_from_manual, match_clusters, scores_from_contingency

    model = _load_clustering_model(args.checkpoint_path, args.device)
    clusters = int(model.n_clusters)
    ignore = None if args.ignore_index < 0 else args.ignore_index
    predictions: list[tuple[str, np.ndarray, np.ndarray]] = []
    for scene in _scene_source(args, labels=True):
        if scene.labels is None:
            out.write(f"{scene.name}: no labels, skipped\n")
            continue
        predictions.append((scene.name, _cluster(model, scene, args), scene.labels))
    if not predictions:
        raise ConfigError("no scene with labels: give --json-dir, --label-dir or .mat files holding --label-key")
    classes = max(int(labels.max()) for _, _, labels in predictions) + 1
    tables = {}
    for name, predicted, labels in predictions:
        keep = predicted >= 0
        tables[name] = contingency_matrix(predicted[keep], labels[keep], clusters, classes, ignore)
    pooled = sum(tables.values())
    if args.manual_mapping is not None:
        manual = _parse_mapping_text(args.manual_mapping, "--manual-mapping")
        mapping = mapping_from_manual(manual, clusters)
        how = "manual mapping"
    elif args.mapping_scene is not None:
        if args.mapping_scene not in tables:
            raise ConfigError(f"--mapping-scene {args.mapping_scene!r} is not one of the scenes: {sorted(tables)}")
        mapping = match_clusters(tables[args.mapping_scene], "hungarian", args.unmatched, ignore)
        how = f"Hungarian alignment on scene {args.mapping_scene}, applied to every scene"
    else:
        mapping = match_clusters(pooled, "hungarian", args.unmatched, ignore)
        how = "Hungarian alignment on all scenes together"
    report: dict[str, Any] = {"alignment": how, "mapping": mapping.tolist(), "scenes": {}}
    out.write(f"{len(predictions)} scene(s), {clusters} clusters, {classes} label values; {how}\n")
    out.write(f"cluster -> class: {dict(enumerate(mapping.tolist()))}\n")
    header = f"{'scene':<24}{'NMI':>8}{'ARI':>8}{'ACC':>8}{'mIoU':>8}{'mDice':>8}{'areaRMSE':>10}{'best mIoU':>11}\n"
    out.write(header)
    per_scene = []
    for name, table in tables.items():
        scores = scores_from_contingency(table, mapping=mapping, ignore_index=ignore)
        best = scores_from_contingency(table, alignment="hungarian", unmatched=args.unmatched, ignore_index=ignore)
        per_scene.append(scores)
        report["scenes"][name] = {k: _plain(scores[k]) for k in ("nmi", "ari", "accuracy", "miou", "mdice", "area_rmse")}
        report["scenes"][name]["best_mapping_miou"] = _plain(best["miou"])
        report["scenes"][name]["best_mapping"] = best["mapping"].tolist()
        out.write(
            f"{name:<24}{scores['nmi']:>8.3f}{scores['ari']:>8.3f}{scores['accuracy']:>8.3f}{scores['miou']:>8.3f}"
            f"{scores['mdice']:>8.3f}{scores['area_rmse']:>10.4f}{best['miou']:>11.3f}\n"
        )
    overall = scores_from_contingency(pooled, mapping=mapping, ignore_index=ignore)
    means = {key: float(np.nanmean([s[key] for s in per_scene])) for key in ("miou", "mdice", "area_rmse")}
    out.write(
        f"{'all scenes':<24}{overall['nmi']:>8.3f}{overall['ari']:>8.3f}{overall['accuracy']:>8.3f}"
        f"{overall['miou']:>8.3f}{overall['mdice']:>8.3f}{overall['area_rmse']:>10.4f}\n"
    )
    out.write(f"mean over scenes: mIoU {means['miou']:.3f}, mDice {means['mdice']:.3f}, area RMSE {means['area_rmse']:.4f}\n")
    out.write(f"{'class':<8}{'IoU':>8}{'Dice':>8}\n")
    for index, (iou, dice) in enumerate(zip(overall["iou_per_class"].tolist(), overall["dice_per_class"].tolist())):
        if not (np.isnan(iou) and np.isnan(dice)):
            out.write(f"{index:<8}{iou:>8.3f}{dice:>8.3f}\n")
    report["overall"] = {k: _plain(overall[k]) for k in ("nmi", "ari", "accuracy", "kappa", "miou", "mdice", "area_rmse")}
    report["overall"]["iou_per_class"] = [_plain(v) for v in overall["iou_per_class"].tolist()]
    report["overall"]["dice_per_class"] = [_plain(v) for v in overall["dice_per_class"].tolist()]
    report["mean_over_scenes"] = means
    if args.output is not None:
        from hsikit.io.atomic import atomic_path

        with atomic_path(Path(args.output)) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        out.write(f"wrote {args.output}\n")
    return 0


def _plain(value: Any) -> Any:
    value = float(value)
    return None if np.isnan(value) else value


# ---------------------------------------------------------------------------- layout
def _orient(array: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    if getattr(args, "transpose", False):
        array = np.swapaxes(array, -1, -2)
    if getattr(args, "flip_h", False):
        array = np.flip(array, axis=-1)
    if getattr(args, "flip_v", False):
        array = np.flip(array, axis=-2)
    return np.ascontiguousarray(array)


def cluster_colours(labels: np.ndarray, clusters: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 picture of a cluster map: one fixed colour per cluster id (any number), black for −1."""
    from hsikit.viz.maps import class_colour_table

    table = np.round(class_colour_table(max(clusters, int(labels.max()) + 1, 1), zero_is_class=True) * 255)
    picture = np.zeros((*labels.shape, 3), dtype=np.uint8)
    inside = labels >= 0
    picture[inside] = table[labels[inside]].astype(np.uint8)
    return picture


SOURCE_MODES: tuple[str, ...] = ("none", "side", "overlay")
#: grey gap between the source picture and the cluster map of ``--source side`` (pixels)
SIDE_GAP = 4


def source_rgb(cube: Any, bands: list[int] | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 colour picture of a cube ``(C, H, W)`` for layouts.

    ``bands``: three band indices (red, green, blue). Default: true colour when the cube
    has band wavelengths covering it, otherwise the bands at 80 %, 50 % and 20 % of the
    band range (a false-colour picture). Percentile stretch 2–98 % per channel.
    """
    from hsikit.errors import HsikitError
    from hsikit.viz.composite import composite_rgb

    if bands is None:
        try:
            return composite_rgb(cube)
        except HsikitError:
            last = cube.bands - 1
            bands = [round(0.8 * last), round(0.5 * last), round(0.2 * last)]
    return composite_rgb(cube, bands=bands)


def layout_picture(labels: np.ndarray, clusters: int, source: np.ndarray | None = None, mode: str = "none",
                   alpha: float = 0.5) -> np.ndarray:  # fmt: skip
    """The layout PNG as ``(H, W', 3)`` uint8.

    Args:
        labels: ``(H, W)`` cluster map (−1 = nodata, drawn black; over a source it shows the source).
        clusters: K, for the colour table (one fixed colour per id).
        source: ``(H, W, 3)`` uint8 picture of the source cube (``mode`` ``"side"`` / ``"overlay"``).
        mode: ``"none"``: the cluster colours only (W' = W); ``"side"``: the source picture, a
            grey gap of :data:`SIDE_GAP` px, then the cluster colours (W' = 2W + gap);
            ``"overlay"``: cluster colours blended over the source with weight ``alpha`` (W' = W).
    """
    if mode not in SOURCE_MODES:
        raise ConfigError(f"source mode must be one of {SOURCE_MODES}, got {mode!r}")
    colours = cluster_colours(labels, clusters)
    if mode == "none":
        return colours
    if source is None or source.shape != (*labels.shape, 3):
        shape = None if source is None else source.shape
        raise ShapeMismatchError(f"layout_picture: the source picture must be {(*labels.shape, 3)}, got {shape}")
    if mode == "side":
        gap = np.full((labels.shape[0], SIDE_GAP, 3), 128, dtype=np.uint8)
        return np.concatenate([source, gap, colours], axis=1)
    blended = np.round((1.0 - alpha) * source.astype(np.float32) + alpha * colours.astype(np.float32))
    inside = (labels >= 0)[..., None]
    return np.where(inside, blended, source.astype(np.float32)).astype(np.uint8)


def _write_layout(
    scene: _Scene, labels: np.ndarray, folder: Path, *, image: bool, label_map: bool, model: Any,
    args: argparse.Namespace | None = None, image_folder: Path | None = None,
) -> list[Path]:
    import matplotlib.image

    from hsikit.io.atomic import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    image_folder = folder if image_folder is None else image_folder
    oriented = _orient(labels, args) if args is not None else labels
    written = []
    if label_map:
        with atomic_path(folder / f"{scene.name}.npy") as tmp:
            np.save(tmp, oriented.astype(np.int32))
        written.append(folder / f"{scene.name}.npy")
        if scene.cube.transform is not None and oriented is labels:
            from hsikit.cube import Cube
            from hsikit.io import save_cube

            clusters = int(model.n_clusters)
            nodata = 255 if clusters < 255 else 65535
            dtype = np.uint8 if clusters < 255 else np.uint16
            raster = np.where(labels >= 0, labels, nodata).astype(dtype)[None]
            target = folder / f"{scene.name}_clusters.tif"
            save_cube(Cube(raster, crs=scene.cube.crs, transform=scene.cube.transform, nodata=nodata), target)
            written.append(target)
    if image:
        mode = getattr(args, "source", "none") if args is not None else "none"
        source = None
        if mode != "none":
            picture_of_cube = source_rgb(scene.cube, getattr(args, "rgb_bands", None))
            source = _orient(np.moveaxis(picture_of_cube, -1, 0), args)  # orient (3, H, W) like the labels
            source = np.ascontiguousarray(np.moveaxis(source, 0, -1))
        picture = layout_picture(oriented, int(model.n_clusters), source, mode)
        image_folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(image_folder / f"{scene.name}.png") as tmp:
            matplotlib.image.imsave(tmp, picture, format="png")
        written.append(image_folder / f"{scene.name}.png")
    return written


def handle_layout(args: argparse.Namespace, out: TextIO) -> int:
    """Write cluster-map pictures and label maps of every scene (``hsikit cluster layout``)."""
    if not (args.layout_image or args.layout_pth):
        raise ConfigError("choose what to write: --layout-image (PNG) and/or --layout-pth (label maps)")
    if args.source != "none" and not args.layout_image:
        raise ConfigError(f"--source {args.source} draws the PNG pictures; add --layout-image")
    if args.rgb_bands is not None and args.source == "none":
        raise ConfigError("--rgb-bands chooses the source picture; add --source side or --source overlay")
    model = _load_clustering_model(args.checkpoint_path, args.device)
    folder = Path(args.out_dir)
    image_folder = Path(args.img_dir) if args.img_dir else folder
    count = 0
    for scene in _scene_source(args, labels=False):
        labels = _cluster(model, scene, args)
        written = _write_layout(scene, labels, folder, image=args.layout_image, label_map=args.layout_pth,
                                model=model, args=args, image_folder=image_folder)
        count += 1
        out.write(f"[{count}] {scene.name}: {', '.join(str(p) for p in written)}\n")
    out.write(f"laid out {count} scene(s) into {folder}\n")
    return 0


# ---------------------------------------------------------------------------- parsers
def register(commands: Any) -> None:
    """Add ``hsikit cluster`` with its ``run``, ``eval`` and ``layout`` subcommands."""
    cluster = commands.add_parser("cluster", help="label-free clustering with global cluster ids (train, score, draw)")
    actions = cluster.add_subparsers(dest="cluster_command", metavar="ACTION")
    actions.required = True

    run = actions.add_parser("run", help="train a clustering model on a folder of cubes (run_clustering.py)")
    _add_scene_arguments(run, labels=True)
    run.add_argument("--out-dir", "--out_dir", dest="out_dir", required=True, help="run folder to write")
    run.add_argument("--save-prediction", "--save_prediction", dest="save_prediction", action="store_true",
                     help="also write every scene's cluster map (PNG + .npy) into <out-dir>/predictions")
    run.add_argument("--bands", type=int, default=None, help="expected band count (checked against the data)")
    run.add_argument("--crop-h", "--crop_h", dest="crop_h", type=int, default=64)
    run.add_argument("--crop-w", "--crop_w", dest="crop_w", type=int, default=64)
    run.add_argument("--crops-per-scene", type=int, default=1, help="crop pairs per scene and step (default 1)")
    run.add_argument("--embed-dim", "--embed_dim", dest="embed_dim", type=int, default=32)
    run.add_argument("--n-clusters", "--n_clusters", dest="n_clusters", type=int, default=4)
    run.add_argument("--num-iters", "--num_iters", dest="num_iters", type=int, default=5)
    run.add_argument("--encoder-mode", default="spectral", choices=("spectral", "raster"),
                     help="spectral (Conv1d along wavelengths) or raster (the reference's computation)")
    run.add_argument("--spectral-kernel-size", type=int, default=9, help="the reference scripts' 9")
    run.add_argument("--bias", action="store_true", help="biases in the encoder (the reference scripts use none)")
    run.add_argument("--temp", type=float, default=0.005,
                     help="assignment temperature (reference 0.05, which lets a fresh model collapse; see docs/clustering.md)")
    run.add_argument("--orthogonality-step", type=float, default=0.1,
                     help="gradient-free orthogonalisation of the dictionary after each update (0 = off)")
    run.add_argument("--ema-decay", "--ema_decay", dest="ema_decay", type=float, default=0.99)
    run.add_argument("--ema-kick", "--ema_kick", dest="ema_kick", type=float, default=0.01)
    run.add_argument("--centroid-init", default="kmeans", choices=("kmeans", "random"),
                     help="k-means++ centres of the first step's embeddings (default) or random (the reference)")
    run.add_argument("--epochs", type=int, default=10)
    run.add_argument("--save-interval", "--save_interval", dest="save_interval", type=int, default=2,
                     help="every N epochs write a snapshot <out-dir>/snapshots/epoch_<e> (model + cluster map of the "
                     "first scene), and snapshots/final at the end, as the reference; 0 = none (default 2)")
    run.add_argument("--save-top-k", type=int, default=3, help="checkpoints kept by the label-free selection score")
    run.add_argument("--batch", type=int, default=4, help="scenes per loaded batch")
    run.add_argument("--reuse-iter", "--reuse_iter", dest="reuse_iter", type=int, default=5,
                     help="crop pairs (optimizer steps) per loaded batch")
    run.add_argument("--prefetch", action="store_true",
                     help="asynchronous loading: background workers, pinned memory, non-blocking copies")
    run.add_argument("--normalization", default="global", choices=("global", "per_scene", "none"))
    run.add_argument("--ignore-index", type=int, default=0, help="label value left out of scores (negative: none)")
    run.add_argument("--coef-orth", "--coef_orth", dest="coef_orth", type=float, default=0.1)
    run.add_argument("--coef-bal", "--coef_bal", dest="coef_bal", type=float, default=1.0)
    run.add_argument("--coef-unif", "--coef_unif", dest="coef_unif", type=float, default=0.0,
                     help="uniform-assignment weight (hsikit default 0; the reference used 1.0)")
    run.add_argument("--coef-cons", "--coef_cons", dest="coef_cons", type=float, default=1.0)
    run.add_argument("--coef-recon", "--coef_recon", dest="coef_recon", type=float, default=0.0,
                     help="weight of the IDEC-style reconstruction term (hsikit addition; 0 = off, Indian Pines config 20)")
    run.add_argument("--decoder-hidden", type=int, default=64,
                     help="hidden width of the pixel-wise decoder the reconstruction term trains (with --coef-recon > 0)")
    run.add_argument("--centre-embeddings", action="store_true",
                     help="batch-normalise the embeddings before the L2 normalisation (hsikit addition; stops the "
                     "collapse onto a few clusters seen on Indian Pines)")
    run.add_argument("--lr", type=float, default=1e-4)
    run.add_argument("--beta1", type=float, default=0.9)
    run.add_argument("--beta2", type=float, default=0.999)
    run.add_argument("--wd", type=float, default=0.01)
    run.add_argument("--grad-clip", type=float, default=1.0, help="global L2 gradient-norm clipping (reference 1.0)")
    run.add_argument("--precision", default="32-true", help="Lightning precision (e.g. bf16-mixed on GPUs)")
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--log-interval", type=int, default=10, help="steps between logged losses")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.set_defaults(handler=handle_run)

    evaluate = actions.add_parser("eval", help="score cluster maps against labels (eval_clustering.py)")
    _add_inference_arguments(evaluate)
    _add_scene_arguments(evaluate, labels=True)
    align = evaluate.add_mutually_exclusive_group()
    align.add_argument("--auto-align", action="store_true", help="Hungarian alignment (the default)")
    align.add_argument("--manual-mapping", "--manual_mapping", dest="manual_mapping", default=None,
                       help="{label: [clusters]} as JSON or a Python literal, e.g. '{0: [0], 1: [1, 2, 3]}'")
    align.add_argument("--mapping-scene", default=None,
                       help="compute the Hungarian alignment on this scene only and apply it to all")
    evaluate.add_argument("--unmatched", default="majority", choices=("majority", "unassigned"),
                          help="clusters left over when K > C: their majority class, or none")
    evaluate.add_argument("--ignore-index", type=int, default=0, help="label value left out (negative: none)")
    evaluate.add_argument("--output", default=None, help="also write the scores as JSON here")
    evaluate.set_defaults(handler=handle_eval)

    layout = actions.add_parser("layout", help="write cluster maps as PNG and label maps (layout_predictions.py)")
    _add_inference_arguments(layout)
    _add_scene_arguments(layout, labels=False)
    layout.add_argument("--out-dir", "--out_dir", dest="out_dir", required=True, help="output folder")
    layout.add_argument("--layout-image", "--layout_image", dest="layout_image", action="store_true",
                        help="write <stem>.png, one colour per cluster")
    layout.add_argument("--layout-pth", "--layout_pth", dest="layout_pth", action="store_true",
                        help="write the label maps (<stem>.npy; <stem>_clusters.tif for georeferenced inputs)")
    layout.add_argument("--img-dir", "--img_dir", dest="img_dir", default="",
                        help="folder of the PNG pictures (the reference's --img_dir; default: --out-dir); "
                        "the label maps stay in --out-dir")
    layout.add_argument("--source", default="none", choices=SOURCE_MODES,
                        help="draw the source scene with the clusters: 'side' puts its colour picture left of the "
                        "cluster map, 'overlay' blends the cluster colours over it (default: none)")
    layout.add_argument("--rgb-bands", type=int, nargs=3, default=None, metavar=("R", "G", "B"),
                        help="band indices of the source picture (default: true colour if the cube has "
                        "wavelengths, else the bands at 80/50/20 %% of the range)")
    layout.add_argument("--transpose", action="store_true", help="swap rows and columns of the outputs")
    layout.add_argument("--flip-h", action="store_true", help="mirror the outputs left-right")
    layout.add_argument("--flip-v", action="store_true", help="mirror the outputs top-bottom")
    layout.set_defaults(handler=handle_layout)


__all__ = [
    "SOURCE_MODES",
    "build_run_datamodule",
    "cluster_colours",
    "handle_eval",
    "handle_layout",
    "handle_run",
    "layout_picture",
    "register",
    "source_rgb",
]
