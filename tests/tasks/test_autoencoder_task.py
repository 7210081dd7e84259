"""AutoencoderTask on real Samson spectra: losses, the fixed deephyp quirks, metrics, figures, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from hsikit.data.spectral_datamodules import SpectraDataModule
from hsikit.engine.export import load_model
from hsikit.engine.trainer import RunOptions, create_trainer
from hsikit.errors import ConfigError
from hsikit.spectral.metrics import spectral_angle
from hsikit.tasks import get_task
from hsikit.tasks.autoencoder import AutoencoderTask

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, "logger": False}
TINY = {"encoder_sizes": [12, 3], "activation": "relu"}


@pytest.fixture(scope="module")
def samson(shared_data: Path) -> Any:
    from hsikit.data import load_dataset

    return load_dataset("samson", root=shared_data, download=False, progress=False)


def _module(samson: Any, **options: Any) -> SpectraDataModule:
    settings = {"train": 600, "val": 200, "batch_size": 100, "split_seed": 0, **options}
    return SpectraDataModule.from_arrays(samson.cube, samson.labels, samson.class_names, **settings)


def test_registered_and_arguments_from_the_data(samson: Any, tmp_path: Path) -> None:
    assert get_task("autoencoder") is AutoencoderTask
    task = AutoencoderTask(model_args=TINY)
    assert task.model is None
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=1, **QUIET)
    trainer.fit(task, datamodule=_module(samson))
    assert task.model_args["in_bands"] == 156
    assert trainer.global_step == 6  # exactly 1 epoch of 600 / 100 batches (deephyp ran epochs 0..n)


def test_losses_are_means_over_the_batch(samson: Any) -> None:
    module = _module(samson)
    module.setup()
    x = module.datasets["train"].spectra[:1]
    for loss in ("SSE", "CSA", "SA", "SID"):
        task = AutoencoderTask(model_args={"in_bands": 156, **TINY}, loss=loss)
        with torch.no_grad():
            single = task.objective(x, task(x), training=True)
            doubled = task.objective(x.repeat(2, 1), task(x.repeat(2, 1)), training=True)
        # a mean: the same spectrum twice gives the same loss (deephyp's sum doubled it)
        assert float(doubled) == pytest.approx(float(single), rel=1e-5), loss
        summed = AutoencoderTask(model_args={"in_bands": 156, **TINY}, loss=loss, loss_reduction="sum")
        summed.model.load_state_dict(task.model.state_dict())
        with torch.no_grad():
            assert float(summed.objective(x.repeat(2, 1), summed(x.repeat(2, 1)), True)) == pytest.approx(
                2 * float(single), rel=1e-5
            )


def test_weight_decay_reaches_the_gradients(samson: Any) -> None:
    module = _module(samson)
    module.setup()
    x = module.datasets["train"].spectra[:50]
    torch.manual_seed(0)
    plain = AutoencoderTask(model_args={"in_bands": 156, **TINY}, loss="CSA")
    decayed = AutoencoderTask(model_args={"in_bands": 156, **TINY}, loss="CSA", l2_penalty=0.01)
    decayed.model.load_state_dict(plain.model.state_dict())
    gradients = []
    for task in (plain, decayed):
        task.model.zero_grad()
        task.objective(x, task(x), training=True).backward()
        gradients.append({name: p.grad.clone() for name, p in task.model.named_parameters()})
    for name, parameter in plain.model.named_parameters():
        # d/dp of 0.01 * sum ||p||^2 / 2 is 0.01 * p, for weights and biases alike; deephyp's term had no gradient
        torch.testing.assert_close(gradients[1][name] - gradients[0][name], 0.01 * parameter.detach(),
                                   rtol=1e-4, atol=1e-7)
    # validation reports the reconstruction loss alone
    with torch.no_grad():
        assert float(decayed.objective(x, decayed(x), training=False)) == pytest.approx(
            float(plain.objective(x, plain(x), training=False)), rel=1e-6
        )


def test_metrics_figures_and_export(samson: Any, tmp_path: Path) -> None:
    L.seed_everything(0)
    module = _module(samson)
    task = AutoencoderTask(model_args=TINY, loss="SA", lr=3e-3)
    trainer = create_trainer(tmp_path / "run", RunOptions(export_weights="last"), task=task, max_epochs=3, **QUIET)
    trainer.fit(task, datamodule=module)
    val = module.datasets["val"].spectra
    task.model.eval()
    with torch.no_grad():
        expected = spectral_angle(task(val), val, axis=1, degrees=True).mean()
    results = trainer.validate(task, datamodule=module, verbose=False)[0]
    assert results["val/sam_deg"] == pytest.approx(float(expected), rel=1e-4)
    assert results["val/loss"] == pytest.approx(float(expected) * np.pi / 180, rel=1e-4)  # SA loss = mean angle (rad)
    assert {"val/sid", "val/rmse"} <= set(results)
    figures = task.figures("val")
    assert set(figures) == {"latent_space_val", "reconstructions_val"}
    run = tmp_path / "run"
    assert (run / "figures" / "latent_space_val.png").is_file() and (run / "preprocessing.json").is_file()
    model = load_model(run / "model")
    assert model.hsikit_config.task == "autoencoder"
    assert model.hsikit_config.extra["preprocessing"]["method"] == "deephyp_minmax"
    with torch.no_grad():
        torch.testing.assert_close(model.encode(val), task.model.encode(val))


def test_step_decay_counts_optimizer_steps(samson: Any, tmp_path: Path) -> None:
    task = AutoencoderTask(model_args=TINY, scheduler="exponential", lr=1e-2, lr_decay_steps=4, lr_decay_rate=0.5)
    trainer = create_trainer(tmp_path, RunOptions(export=False, report=False), task=task, max_epochs=2, **QUIET)
    trainer.fit(task, datamodule=_module(samson))  # 12 optimizer steps
    learning_rate = trainer.optimizers[0].param_groups[0]["lr"]
    assert learning_rate == pytest.approx(1e-2 * 0.5 ** (12 // 4))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="loss must be one of"):
        AutoencoderTask(loss="MSE")
    with pytest.raises(ConfigError, match="l2_penalty"):
        AutoencoderTask(l2_penalty=-1.0)
    with pytest.raises(ConfigError, match="lr_decay_steps"):
        AutoencoderTask(scheduler="exponential", lr_decay_rate=0.5)
    with pytest.raises(ConfigError, match="only apply to scheduler"):
        AutoencoderTask(scheduler="constant", lr_decay_steps=10)
