"""Clustering task: global cluster ids across scenes, exact resume, schedules, k-means start, label-free selection."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clustering_resume_job import CHECKPOINT_EVERY, EPOCHS, PAIRS_PER_BATCH, STEPS_PER_EPOCH, train
from hsikit.data.clustering_datamodule import ClusteringDataModule
from hsikit.data.synthetic import make_synthetic_scene
from hsikit.engine.export import load_model, read_checkpoint
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import ConfigError
from hsikit.inference.clustering import cluster_scene
from hsikit.metrics.clustering import clustering_scores, contingency_matrix, match_clusters
from hsikit.tasks import get_task
from hsikit.tasks.clustering import ClusteringTask, linear_warmup_decay, spherical_kmeans

MATERIALS = 3
WAVELENGTHS = np.arange(400.0, 1000.0, 20.0)


def test_the_same_material_gets_the_same_cluster_id_in_every_scene(tmp_path: Path) -> None:
    # three scenes holding the same three materials (one endmember seed) in different layouts
    scenes = [
        make_synthetic_scene(40, 40, WAVELENGTHS, n_endmembers=MATERIALS, seed=seed, endmember_seed=0,
                             library="analytic", noise_snr_db=30, sharpness=10)  # fmt: skip
        for seed in (1, 2, 3)
    ]
    np.testing.assert_array_equal(scenes[0].endmembers, scenes[2].endmembers)
    assert not np.array_equal(scenes[0].labels, scenes[1].labels)
    L.seed_everything(0, verbose=False)
    datamodule = ClusteringDataModule.from_cubes([s.cube for s in scenes], [s.labels for s in scenes],
                                                 class_names=scenes[0].class_names, batch_size=3,
                                                 pairs_per_batch=8)  # fmt: skip
    task = ClusteringTask(
        model_args={"n_clusters": MATERIALS, "embed_dim": 16, "spectral_channels": 8, "n_spectral_layers": 2,
                    "num_iters": 2, "window": 3},
        crop_size=24, crops_per_scene=2, lr=1e-3,
    )  # fmt: skip
    trainer = create_trainer(tmp_path / "run", RunOptions(save_top_k=1), task=task, max_epochs=7,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(task, datamodule=datamodule)

    # label-free selection was logged every epoch; the first round cannot be selected
    rows = list(csv.DictReader(open(next((tmp_path / "run" / "csv").glob("version_*/metrics.csv")))))
    selection = [float(r["val/selection"]) for r in rows if r.get("val/selection")]
    assert len(selection) == 7 and selection[0] == -1.0 and max(selection) > 0.5
    assert trainer.callback_metrics["val/used_clusters"] >= 2

    # one exported dictionary labels every scene; map clusters to materials on scene 1 only
    model = load_model(tmp_path / "run" / "model", expected_bands=len(WAVELENGTHS))
    config = model.hsikit_config
    assert config.task == "clustering" and config.extra["scene_normalization"] == "global"
    maps = [
        cluster_scene(model, s.cube, normalization=config.normalization, tile=32, overlap=16).labels
        for s in scenes
    ]
    truth = [s.labels - 1 for s in scenes]
    mapping = match_clusters(contingency_matrix(maps[0], truth[0], MATERIALS, MATERIALS))
    own = [match_clusters(contingency_matrix(m, t, MATERIALS, MATERIALS)).tolist() for m, t in zip(maps, truth)]
    assert own[0] == own[1] == own[2] == mapping.tolist()  # every scene's best alignment is the same one
    for cluster_map, labels in zip(maps[1:], truth[1:]):
        scores = clustering_scores(cluster_map, labels, num_clusters=MATERIALS, num_classes=MATERIALS, mapping=mapping)
        assert scores["accuracy"] > 0.85


def test_a_run_killed_between_two_crop_pairs_of_a_batch_resumes_exactly(tmp_path: Path) -> None:
    reference_task, reference_trainer = train(tmp_path / "reference")
    run_dir = tmp_path / "interrupted"
    job = Path(__file__).with_name("clustering_resume_job.py")
    killed = subprocess.run(
        [sys.executable, str(job), str(run_dir), "--kill-at-step", "10"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2 * CHECKPOINT_EVERY == 8 and last["epoch"] == 1
    # step 8 = the second of the three crop pairs of epoch 1's first loaded batch
    assert last["hsikit_data_position"][0]["repeats_done"] == 8 - STEPS_PER_EPOCH == 2 < PAIRS_PER_BATCH
    assert set(last["hsikit_clustering"]["previous_labels"]) == {"0", "1"}
    assert "model.dictionary.centroids" in last["state_dict"]

    resumed_task, resumed_trainer = train(run_dir, resume=True)
    assert resumed_trainer.global_step == reference_trainer.global_step == EPOCHS * STEPS_PER_EPOCH
    for key, value in reference_task.model.state_dict().items():
        torch.testing.assert_close(resumed_task.model.state_dict()[key], value, rtol=1e-6, atol=1e-7)
    final = {name: json.loads((tmp_path / name / "metrics.json").read_text())["fit"] for name in ("reference", "interrupted")}
    for key, value in final["reference"]["metrics"].items():
        assert abs(final["interrupted"]["metrics"][key] - value) <= 1e-6 * max(1.0, abs(value)), key


def test_schedules_decay_linearly_over_the_epochs_like_the_reference() -> None:
    assert [linear_warmup_decay(e, 1.0, 1.0, 0.0, 0, 4) for e in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert [linear_warmup_decay(e, 0.0, 2.0, 1.0, 2, 4) for e in range(5)] == [0.0, 1.0, 2.0, 1.5, 1.0]
    task = ClusteringTask(model_args={"in_bands": 6, "n_clusters": 3, "embed_dim": 4, "ema_kick": 0.08},
                          uniform_weight=2.0, scheduled_weights=["uniform"])  # fmt: skip
    task._trainer = SimpleNamespace(max_epochs=4, current_epoch=3)  # type: ignore[assignment]
    assert task.current_kick() == pytest.approx(0.02)
    task._apply_weight_schedule()
    assert task.objective.uniform_weight == pytest.approx(0.5) and task.objective.balance_weight == 1.0
    task.kick_schedule = False
    assert task.current_kick() == pytest.approx(0.08)


def test_spherical_kmeans_finds_well_separated_directions() -> None:
    torch.manual_seed(0)
    directions = F.normalize(torch.randn(4, 8), dim=1)
    points = F.normalize(directions.repeat_interleave(200, dim=0) + 0.05 * torch.randn(800, 8), dim=1)
    centres = spherical_kmeans(points, 4)
    assert bool(((centres @ directions.t()).max(dim=0).values > 0.99).all())


def test_the_task_is_registered_and_refuses_bad_settings() -> None:
    assert get_task("clustering") is ClusteringTask
    with pytest.raises(ConfigError, match="unknown names"):
        ClusteringTask(scheduled_weights=["bandwidth"])
    with pytest.raises(ConfigError, match="crops_per_scene"):
        ClusteringTask(crops_per_scene=0)
    with pytest.raises(ConfigError, match="centroid_init"):
        ClusteringTask(centroid_init="spectral")
    task = ClusteringTask(model_args={"in_bands": 6, "n_clusters": 3, "embed_dim": 4})
    assert task.monitor == "val/selection" and task.monitor_mode == "max"
    with pytest.raises(ConfigError, match="bands"):
        task.set_data_description({"bands": 7})


@pytest.mark.parametrize("config", ["clustering_samson.yaml", "clustering_indian_pines.yaml"])
def test_the_experiment_configs_resolve(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    from hsikit.engine.cli import main

    path = Path(__file__).resolve().parents[2] / "configs" / config
    assert main(["fit", "--config", str(path), "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert "hsikit.tasks.clustering.ClusteringTask" in printed or "ClusteringTask" in printed
    assert "ClusteringDataModule" in printed


def test_the_reconstruction_term_trains_a_decoder_of_the_input_spectra(tmp_path: Path) -> None:
    from hsikit.losses.clustering import reconstruction_error
    from hsikit.models.clustering import GlobalClusteringModel

    # the masked mean squared error, by hand: two valid pixels of errors (1, 3) and (2, 0) over 2 bands
    target = torch.zeros(1, 2, 1, 3)
    decoded = torch.tensor([[[[1.0, 2.0, 9.0]], [[3.0, 0.0, 9.0]]]])
    mask = torch.tensor([[[True, True, False]]])
    assert float(reconstruction_error(decoded, target, mask)) == pytest.approx((1 + 9 + 4 + 0) / 4)
    with pytest.raises(Exception, match="must match"):
        reconstruction_error(decoded, target[:, :1])
    with pytest.raises(ConfigError, match="decoder_hidden"):
        GlobalClusteringModel(in_bands=4, n_clusters=2).reconstruct(torch.zeros(1, 32, 2, 2))
    with pytest.raises(ConfigError, match="reconstruction_weight"):
        ClusteringTask(reconstruction_weight=-1.0)
    with pytest.raises(ConfigError, match="decoder_hidden"):  # refused at construction, before any training
        ClusteringTask(reconstruction_weight=1.0, model_args={"n_clusters": 3})

    scene = make_synthetic_scene(32, 32, WAVELENGTHS, n_endmembers=MATERIALS, seed=1, library="analytic",
                                 noise_snr_db=30)  # fmt: skip
    datamodule = ClusteringDataModule.from_cubes([scene.cube], batch_size=1, pairs_per_batch=12)
    arguments = {"n_clusters": MATERIALS, "embed_dim": 8, "spectral_channels": 4, "n_spectral_layers": 2,
                 "num_iters": 1, "window": 3, "decoder_hidden": 16, "centre_embeddings": True}  # fmt: skip
    L.seed_everything(0, verbose=False)
    task = ClusteringTask(model_args=arguments, crop_size=16, crops_per_scene=2, lr=1e-2, reconstruction_weight=1.0)
    trainer = create_trainer(tmp_path / "run", RunOptions(save_top_k=0, report=False), task=task, max_epochs=4,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                             log_every_n_steps=1)  # fmt: skip
    trainer.fit(task, datamodule=datamodule)
    rows = list(csv.DictReader(open(next((tmp_path / "run" / "csv").glob("version_*/metrics.csv")))))
    recon = [float(r["train/recon"]) for r in rows if r.get("train/recon")]
    assert len(recon) == 48
    # the decoder learns: the error of the last steps is below that of the first (standardised input: ~1 at start)
    assert np.mean(recon[-8:]) < 0.8 * np.mean(recon[:8])
    assert task.model.decoder is not None
