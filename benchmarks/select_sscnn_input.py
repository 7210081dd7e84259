"""Choose the input of the spectral–spatial CNN on the disjoint protocol without looking at test pixels.

The two-branch spectral–spatial CNN (``spectral_spatial_cnn``) can read either all 200
standardised Indian Pines bands or 30 PCA components fitted on the training pixels. This
script makes that choice with training pixels only: for each seed it builds the disjoint split
of ``bench_spectral_models.py`` (22 × 22 blocks, 30 % targeted for training, 5-px buffer), carves
15 % of the *training* pixels into 11 × 11 validation blocks
(:func:`hsikit.data.splits.carve_validation_blocks`, with a 4-px buffer so the 9 × 9 patches of
the remaining training pixels never see a validation pixel), trains each input variant on the rest
with the benchmark's recipe (15 epochs, final weights) and scores it on the validation blocks.
The test blocks of the split are never read. The variant with the higher mean validation OA is
the one the benchmark should use.

Usage::

    python benchmarks/select_sscnn_input.py            # 5 seeds x 2 variants, about 10 minutes on 2 cores
    python benchmarks/select_sscnn_input.py --seeds 1 --epochs 1   # a quick check

Writes ``benchmarks/results/select_sscnn_input.json`` and prints a table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spectral_models import _machine, _network_run, _shared_data, _summary  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "select_sscnn_input.json"
VARIANTS = {"all_bands": None, "pca30": 30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patch", type=int, default=9)
    parser.add_argument("--val-share", type=float, default=0.15)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    from hsikit.data import load_dataset
    from hsikit.data.spectral_datamodules import PatchClassificationDataModule
    from hsikit.data.splits import Split, carve_validation_blocks
    from hsikit.tasks.classification import ClassificationTask

    torch.set_num_threads(args.threads)
    machine_before = _machine(args.threads)
    scene = load_dataset("indian_pines", root=_shared_data(), download=False, progress=False)
    names = list(scene.class_names)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            base = PatchClassificationDataModule.from_arrays(
                scene.cube, scene.labels, names, patch_size=11, pca_components=None, batch_size=64,
                split="disjoint", train=0.3, val=0.0, split_seed=seed,
                split_options={"block_size": 22, "patch_size": 11},
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                base.setup()
            carved = carve_validation_blocks(base.split, scene.labels, args.val_share, block_size=11, seed=seed,
                                             buffer=args.patch // 2)
            # Model selection split: the carved validation blocks stand in the "test" slot; the real test
            # blocks are left out of it entirely.
            selection = Split(carved.image_shape, train=carved.train, val=np.empty(0, np.int64), test=carved.val,
                              mode="selection", seed=seed, ignore_value=carved.ignore_value)
            split_file = selection.to_json(Path(folder) / f"selection_{seed}.json")
            for name, components in VARIANTS.items():
                data = PatchClassificationDataModule.from_arrays(
                    scene.cube, scene.labels, names, patch_size=args.patch, pca_components=components,
                    batch_size=64, split="disjoint", split_seed=seed, split_file=str(split_file),
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data.setup()
                assert not np.intersect1d(data.split.indices("test"), base.split.indices("test")).size
                task = ClassificationTask(
                    model="spectral_spatial_cnn", model_args={"dropout": 0.5}, optimizer="adamw", lr=1e-3,
                    weight_decay=1e-4, scheduler="warmup_cosine", warmup_steps=20, min_lr_ratio=0.05,
                )
                run = _network_run(task, data, args.epochs, seed, len(names), names)
                run = {"seed": seed, "val_oa": run["oa"], "val_aa": run["aa"], "val_kappa": run["kappa"],
                       "train_pixels": run["train_pixels"], "val_pixels": run["test_pixels"]}
                runs[name].append(run)
                print(f"[seed {seed}] {name:9s} validation OA {run['val_oa']:.4f} AA {run['val_aa']:.4f} "
                      f"({run['train_pixels']} train px, {run['val_pixels']} val px)", flush=True)
    summary = {name: {metric: _summary([r[metric] for r in variant_runs]) for metric in ("val_oa", "val_aa")}
               for name, variant_runs in runs.items()}
    chosen = max(summary, key=lambda name: summary[name]["val_oa"]["mean"])
    print("\n| input | validation OA (%) | validation AA (%) |\n| --- | ---: | ---: |")
    for name, scores in summary.items():
        oa, aa = scores["val_oa"], scores["val_aa"]
        print(f"| {name} | {100 * oa['mean']:.2f} ± {100 * oa['std']:.2f} | {100 * aa['mean']:.2f} ± {100 * aa['std']:.2f} |")
    print(f"\nchosen without test pixels: {chosen}")
    payload = {"machine_before": machine_before, "machine_after": _machine(args.threads), "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": runs, "summary": summary, "chosen": chosen}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
