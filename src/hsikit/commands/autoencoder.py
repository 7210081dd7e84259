"""``hsikit autoencoder``: train a spectral autoencoder on a cube, and map its latent space and errors.

::

    hsikit autoencoder train --config configs/autoencoder_mlp_samson.yaml [--input cube.tif] [-- --trainer.max_epochs 5]
    hsikit autoencoder apply --model runs/<name>/<version>/model --input cube.tif --output-dir out/ [--labels gt.tif]

``train`` runs ``hsikit fit`` with the config (``--input`` sets the data module's
``cube_path``); the run folder holds the exported model (``model/``), the metrics, the
figures and the report. ``apply`` encodes every pixel of a cube with an exported model
and writes into ``--output-dir``:

* ``latent.tif`` (or ``latent.hdr`` with ``--format envi``): the ``(latent, H, W)`` cube of
  latent vectors, with the source's CRS and transform;
* ``latent_scatter.png``: the latent space (first two principal axes), coloured by class
  when labels are known (``--labels``, or a registered dataset's);
* ``sam.tif`` and ``sam.png``: the per-pixel spectral angle (degrees) between each
  preprocessed spectrum and its reconstruction; ``sid.tif``: the SID;
* ``reconstruction.tif`` with ``--reconstruction``;
* ``summary.json``: mean / median SAM, mean SID, and the latent space's class separation
  (NMI of k-means on the latent vectors vs on the spectra) when labels are known.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from hsikit.commands._scene_input import (
    add_input_arguments,
    add_training_arguments,
    load_input,
    run_training,
    training_argv,
    write_float_map,
)


def register(commands: Any) -> None:
    """Add ``hsikit autoencoder train | apply``."""
    parser = commands.add_parser(
        "autoencoder", help="spectral autoencoders (deephyp): train on a cube; latent cube, scatter and SAM maps"
    )
    actions = parser.add_subparsers(dest="autoencoder_command", metavar="ACTION")
    actions.required = True

    train = actions.add_parser("train", help="train with an experiment YAML (runs 'hsikit fit')")
    add_training_arguments(train)
    train.set_defaults(handler=_train)

    apply = actions.add_parser("apply", help="latent cube, latent scatter plot and reconstruction SAM map of a cube")
    apply.add_argument("--model", required=True, help="exported model folder (a run's model/ folder)")
    add_input_arguments(apply)
    apply.add_argument("--output-dir", required=True, help="folder for the outputs")
    apply.add_argument("--format", choices=("tif", "envi"), default="tif", help="latent cube format (default tif)")
    apply.add_argument("--reconstruction", action="store_true", help="also write reconstruction.tif")
    apply.add_argument("--max-points", type=int, default=8000, help="points drawn in the scatter plot")
    apply.add_argument("--no-separation", action="store_true", help="skip the k-means class-separation scores")
    apply.add_argument("--device", default="cpu", help="torch device")
    apply.set_defaults(handler=_apply)


def _train(args: argparse.Namespace, out: TextIO) -> int:
    return run_training(training_argv(args), out)


def _apply(args: argparse.Namespace, out: TextIO) -> int:
    import numpy as np

    from hsikit.engine.callbacks import write_json_atomic
    from hsikit.engine.export import load_model
    from hsikit.io import save_cube
    from hsikit.viz.latent import plot_latent_scatter
    from hsikit.viz.maps import plot_band
    from hsikit.workflows.spectral_maps import autoencode_cube

    cube, labels, class_names, described = load_input(args)
    model = load_model(args.model, expected_bands=cube.bands, device=args.device)
    config = model.hsikit_config  # type: ignore[attr-defined]
    if config.task not in (None, "autoencoder"):
        from hsikit.errors import CheckpointError

        raise CheckpointError(f"'{args.model}' holds a {config.task} model; 'autoencoder apply' needs an autoencoder")
    if class_names is None and config.class_names:
        class_names = list(config.class_names)
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    scene = autoencode_cube(model, cube, keep_reconstruction=args.reconstruction, device=args.device)
    latent_path = folder / ("latent.tif" if args.format == "tif" else "latent.hdr")
    save_cube(scene.latent, latent_path)
    written = [latent_path]
    written.append(write_float_map(scene.sam_deg, cube, folder / "sam.tif", "sam_degrees", units="degrees"))
    written.append(write_float_map(scene.sid, cube, folder / "sid.tif", "sid"))
    sam_cube = _single_band(scene.sam_deg, cube, "reconstruction SAM (degrees)")
    plot_band(sam_cube, band=0, cmap="magma", title=f"Reconstruction spectral angle, {described}",
              path=folder / "sam.png")
    written.append(folder / "sam.png")
    valid = cube.valid_mask
    latent_vectors = scene.latent.data[:, valid].T
    pixel_labels = None if labels is None else np.asarray(labels)[valid]
    plot_latent_scatter(latent_vectors, pixel_labels, class_names, max_points=args.max_points,
                        title=f"Latent space of {described}", path=folder / "latent_scatter.png")
    written.append(folder / "latent_scatter.png")
    if scene.reconstruction is not None:
        from hsikit.cube import Cube

        reconstruction = Cube(scene.reconstruction, wavelengths=cube.wavelengths, crs=cube.crs,
                              transform=cube.transform, nodata=float("nan") if not valid.all() else None,
                              nodata_mask=None if valid.all() else ~valid,
                              nonfinite="mask" if not valid.all() else "error")
        written.append(save_cube(reconstruction, folder / "reconstruction.tif"))
    summary: dict[str, Any] = {"model": str(args.model), "input": described, **scene.summary()}
    if pixel_labels is not None and not args.no_separation:
        from hsikit.workflows.spectral_maps import latent_separation, model_preprocessing

        preprocessing = model_preprocessing(config)
        spectra = np.asarray(cube.data[:, valid], dtype=np.float32).T
        if preprocessing is not None:
            spectra = preprocessing.transform(spectra, band_axis=1)
        summary["separation"] = latent_separation(latent_vectors, spectra, pixel_labels)
    write_json_atomic(folder / "summary.json", summary)
    written.append(folder / "summary.json")
    out.write(
        f"mean SAM {summary['mean_sam_deg']:.3f} deg, median {summary['median_sam_deg']:.3f} deg, "
        f"mean SID {summary['mean_sid']:.5f} over {summary['pixels']} pixels\n"
    )
    if "separation" in summary:
        separation = summary["separation"]
        out.write(
            f"k-means NMI with the classes: latent {separation['nmi_latent']:.3f}, spectra "
            f"{separation['nmi_spectra']:.3f}\n"
        )
    for path in written:
        out.write(f"wrote {path}\n")
    return 0


def _single_band(values: Any, like: Any, units: str) -> Any:
    import numpy as np

    from hsikit.cube import Cube

    image = np.asarray(values, dtype=np.float32)[np.newaxis]
    invalid = ~np.isfinite(image[0])
    return Cube(image, crs=like.crs, transform=like.transform, nodata=float("nan") if invalid.any() else None,
                nodata_mask=invalid if invalid.any() else None, nonfinite="mask" if invalid.any() else "error",
                metadata={"units": units})
