"""Training options for spatially disjoint evaluation: validation blocks carved from training,
input augmentation (gain, noise, mixup), restoring the best validation epoch, and the
two-branch spectral–spatial CNN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsikit.data.splits import carve_validation_blocks, disjoint_split, random_split
from hsikit.errors import ConfigError, ShapeMismatchError, SplitError
from hsikit.models import create_model, tiny_model_arguments
from hsikit.models.spectral.classifiers import SpectralSpatialCNN
from hsikit.tasks import ClassificationTask

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0, "logger": False,
         "enable_checkpointing": False, "accelerator": "cpu", "devices": 1}


# ----------------------------------------------------------------------------- validation blocks
def _labels() -> np.ndarray:
    """A 60 x 60 map: three vertical class stripes (1, 2, 3), unlabelled border rows."""
    labels = np.zeros((60, 60), dtype=np.int64)
    labels[2:58, :20], labels[2:58, 20:40], labels[2:58, 40:] = 1, 2, 3
    return labels


def test_carved_validation_is_whole_training_blocks_and_test_is_unchanged() -> None:
    labels = _labels()
    split = disjoint_split(labels, train=0.5, val=0.0, block_size=20, patch_size=3, seed=1)
    carved = carve_validation_blocks(split, labels, 0.25, block_size=10, seed=3)
    np.testing.assert_array_equal(carved.test, split.test)
    # val + train come from the old training pixels only, without overlap
    assert np.intersect1d(carved.val, carved.train).size == 0
    np.testing.assert_array_equal(np.union1d(carved.val, carved.train), split.train)
    assert carved.val.size >= 0.25 * split.train.size
    assert carved.val.size < 0.25 * split.train.size + 100  # at most one 10 x 10 block over the goal
    # whole blocks: every 10 x 10 block holds either val or train pixels, never both
    rows, cols = np.divmod(carved.val, 60)
    val_blocks = set(zip(rows // 10, cols // 10))
    rows, cols = np.divmod(carved.train, 60)
    assert not val_blocks & set(zip(rows // 10, cols // 10))
    # every class with several training blocks is represented in val
    assert set(carved.class_counts["val"]) == set(split.class_counts["train"])
    assert carved.params["val_carved"]["blocks"] == len(val_blocks)


def test_carved_validation_buffer_keeps_training_patches_off_validation_pixels() -> None:
    labels = _labels()
    split = disjoint_split(labels, train=0.5, val=0.0, block_size=20, patch_size=3, seed=1)
    carved = carve_validation_blocks(split, labels, 0.2, block_size=10, buffer=2, seed=0)
    val_rows, val_cols = np.divmod(carved.val, 60)
    train_rows, train_cols = np.divmod(carved.train, 60)
    distance = np.maximum(np.abs(train_rows[:, None] - val_rows[None]), np.abs(train_cols[:, None] - val_cols[None]))
    assert distance.min() > 2  # a 5 x 5 patch around a training pixel never reaches a val pixel
    assert carved.params["val_carved"]["buffer_removed"] == split.train.size - carved.train.size - carved.val.size
    assert carved.params["val_carved"]["buffer_removed"] > 0


def test_carved_validation_is_deterministic_and_checks_its_input() -> None:
    labels = _labels()
    split = disjoint_split(labels, train=0.5, val=0.0, block_size=20, seed=1)
    first = carve_validation_blocks(split, labels, 0.3, seed=5)
    assert first == carve_validation_blocks(split, labels, 0.3, seed=5)
    with pytest.raises(SplitError, match="val=0"):
        carve_validation_blocks(random_split(labels, train=0.5, val=0.1, seed=0), labels, 0.2)
    with pytest.raises(SplitError, match="fraction"):
        carve_validation_blocks(split, labels, 1.0)
    with pytest.raises(SplitError, match="buffer"):
        carve_validation_blocks(split, labels, 0.2, buffer=-1)
    with pytest.raises(ShapeMismatchError, match="60x60"):
        carve_validation_blocks(split, labels[:50], 0.2)
    with pytest.raises(SplitError, match="smaller block_size"):
        carve_validation_blocks(split, labels, 0.2, block_size=60)


# ----------------------------------------------------------------------------- augmentation
def _task(**options: Any) -> ClassificationTask:
    arguments = {"in_bands": 6, "num_classes": 3, "patch_size": 5, **tiny_model_arguments("spectral_spatial_cnn")}
    task = ClassificationTask(model="spectral_spatial_cnn", model_args=arguments, **options)
    task.configure_metrics()
    task.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # outside a Trainer
    return task


def test_spectral_scale_multiplies_each_sample_by_one_gain_in_range() -> None:
    torch.manual_seed(0)
    inputs = torch.rand(64, 6, 5, 5) + 0.5
    out = _task(spectral_scale=0.2).augment_inputs(inputs)
    gains = out / inputs
    per_sample = gains.flatten(1)
    torch.testing.assert_close(per_sample, per_sample[:, :1].expand_as(per_sample))  # one gain per sample
    assert float(per_sample.min()) >= 0.8 - 1e-6 and float(per_sample.max()) <= 1.2 + 1e-6
    assert float(per_sample[:, 0].std()) > 0.05  # the gains differ between samples


def test_spectral_noise_has_the_asked_standard_deviation_and_leaves_labels_alone() -> None:
    torch.manual_seed(0)
    inputs = torch.zeros(200, 6, 5, 5)
    targets = torch.randint(0, 3, (200,))
    task = _task(spectral_noise=0.3)
    noise = task.augment_inputs(inputs)
    assert float(noise.std()) == pytest.approx(0.3, rel=0.03)
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.01)
    # the training step sees noisy inputs, the validation step the clean ones
    seen: list[torch.Tensor] = []
    model = task.model
    original = model.forward
    model.forward = lambda x: (seen.append(x.clone()), original(x))[1]  # type: ignore[method-assign]
    task.shared_step((inputs, targets.clone()), "train")
    task.shared_step((inputs, targets.clone()), "val")
    assert float(seen[0].abs().max()) > 0.5 and float(seen[1].abs().max()) == 0.0
    # without any option the inputs come back as they are
    assert _task().augment_inputs(inputs) is inputs


def test_mixup_loss_is_the_lambda_weighted_sum_of_both_targets() -> None:
    task = _task(mixup_alpha=0.4)
    task.model.eval()  # no dropout / batch-norm updates, to recompute the same logits
    inputs = torch.randn(16, 6, 5, 5)
    targets = torch.randint(0, 3, (16,))
    torch.manual_seed(7)
    loss = task.shared_step((inputs, targets), "train")
    # replay the same draws: lambda from the seeded numpy generator, then the permutation
    torch.manual_seed(7)
    lam = float(np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)))).beta(0.4, 0.4))
    order = torch.randperm(16)
    logits = task.model(lam * inputs + (1 - lam) * inputs[order])
    expected = lam * F.cross_entropy(logits, targets) + (1 - lam) * F.cross_entropy(logits, targets[order])
    torch.testing.assert_close(loss, expected)
    assert 0.0 < lam < 1.0


def test_bad_training_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="spectral_scale"):
        ClassificationTask(spectral_scale=1.0)
    with pytest.raises(ConfigError, match="spectral_noise"):
        ClassificationTask(spectral_noise=-0.1)
    with pytest.raises(ConfigError, match="balance_classes"):
        ClassificationTask(mixup_alpha=0.2, balance_classes=True)
    with pytest.raises(ConfigError, match="restore_best"):
        ClassificationTask(restore_best="oa")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- restore the best epoch
class _Patches(L.LightningDataModule):
    """Two classes of noisy 5 x 5 patches whose channel 0 is shifted by +shift / -shift."""

    def __init__(self, shift: float = 1.0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.targets = {part: torch.randint(0, 2, (n,), generator=generator) for part, n in (("train", 64),
                                                                                               ("val", 32))}
        self.inputs = {}
        for part, targets in self.targets.items():
            x = torch.randn(targets.shape[0], 3, 5, 5, generator=generator)
            x[:, 0] += (targets[:, None, None].float() * 2 - 1) * shift
            self.inputs[part] = x
        self.datasets = {part: torch.utils.data.TensorDataset(self.inputs[part], self.targets[part])
                         for part in self.inputs}

    def train_dataloader(self) -> Any:
        return torch.utils.data.DataLoader(self.datasets["train"], batch_size=16, shuffle=True)

    def val_dataloader(self) -> Any:
        return torch.utils.data.DataLoader(self.datasets["val"], batch_size=32)


class _Record(L.Callback):
    """Validation accuracy (recomputed here) and a weight snapshot after every validation epoch."""

    def __init__(self, data: _Patches) -> None:
        self.data = data
        self.scores: list[float] = []
        self.states: list[dict[str, torch.Tensor]] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, task: Any) -> None:
        with torch.no_grad():  # the model is in eval mode during validation
            predictions = task.model(self.data.inputs["val"]).argmax(1)
        self.scores.append(float((predictions == self.data.targets["val"]).float().mean()))
        self.states.append({k: v.clone() for k, v in task.model.state_dict().items()})


@pytest.mark.parametrize("monitor", ["accuracy", "loss"])
def test_restore_best_puts_back_the_best_validation_epoch(tmp_path: Path, monitor: str) -> None:
    L.seed_everything(0, verbose=False)
    arguments = {"in_bands": 3, "num_classes": 2, "patch_size": 5, **tiny_model_arguments("spectral_spatial_cnn")}
    task = ClassificationTask(model="spectral_spatial_cnn", model_args=arguments, lr=0.05, scheduler="constant",
                              restore_best=monitor)
    data = _Patches(shift=0.1)  # hard: the validation accuracy moves from epoch to epoch
    record = _Record(data)
    trainer = L.Trainer(max_epochs=6, default_root_dir=tmp_path, callbacks=[record], **QUIET)
    trainer.fit(task, datamodule=data)
    assert len(set(record.scores)) > 1  # the epochs differ, so the choice matters
    assert task.best_val_epoch is not None and 0 <= task.best_val_epoch < 6
    if monitor == "accuracy":
        best = int(np.argmax(record.scores))  # first maximum: ties keep the earlier epoch
        assert task.best_val_epoch == best
        assert task.best_val_score == pytest.approx(record.scores[best])
    restored = task.model.state_dict()
    for key, value in record.states[task.best_val_epoch].items():
        torch.testing.assert_close(restored[key], value)


def test_restore_best_without_validation_is_an_error(tmp_path: Path) -> None:
    arguments = {"in_bands": 3, "num_classes": 2, "patch_size": 5, **tiny_model_arguments("spectral_spatial_cnn")}
    task = ClassificationTask(model="spectral_spatial_cnn", model_args=arguments, restore_best="accuracy")
    trainer = L.Trainer(max_epochs=1, default_root_dir=tmp_path, limit_val_batches=0, **QUIET)
    with pytest.raises(ConfigError, match="validation"):
        trainer.fit(task, datamodule=_Patches())


# ----------------------------------------------------------------------------- the two-branch CNN
def test_spectral_spatial_cnn_shapes_pooling_and_errors() -> None:
    model = SpectralSpatialCNN(in_bands=10, num_classes=4, patch_size=7, spectral_sizes=[8], spatial_filters=[6],
                               sigma=1.5, dropout=0.0).eval()
    features = model.forward_features(torch.randn(3, 10, 7, 7))
    assert features["spectral"].shape == (3, 8) and features["spatial"].shape == (3, 6)
    assert features["logits"].shape == (3, 4)
    # Gaussian pooling weights: sum to 1, peak at the centre, exp(-d^2 / 2 sigma^2) ratio
    weights = model.pool_weights
    assert float(weights.sum()) == pytest.approx(1.0)
    assert float(weights[3, 4] / weights[3, 3]) == pytest.approx(np.exp(-1 / (2 * 1.5**2)), rel=1e-6)
    flat = SpectralSpatialCNN(in_bands=10, num_classes=4, patch_size=7, spectral_sizes=[8], spatial_filters=[6],
                              sigma=None)
    torch.testing.assert_close(flat.pool_weights, torch.full((7, 7), 1 / 49))
    with pytest.raises(ShapeMismatchError, match="patch_size=7"):
        model(torch.randn(3, 10, 9, 9))
    with pytest.raises(ConfigError, match="odd"):
        SpectralSpatialCNN(in_bands=10, num_classes=4, patch_size=8)
    with pytest.raises(ConfigError, match="at least one layer"):
        SpectralSpatialCNN(in_bands=10, num_classes=4, spatial_filters=[])
    with pytest.raises(ConfigError, match="sigma"):
        SpectralSpatialCNN(in_bands=10, num_classes=4, sigma=0.0)


def test_spectral_spatial_cnn_spectral_branch_reads_only_the_centre_pixel() -> None:
    model = create_model("spectral_spatial_cnn", in_bands=5, num_classes=3,
                         **tiny_model_arguments("spectral_spatial_cnn")).eval()
    x = torch.randn(2, 5, 5, 5)
    changed = x.clone()
    changed[:, :, 0, 0] += 3.0  # a corner pixel: the spectral branch must not move, the spatial one does
    before, after = model.forward_features(x), model.forward_features(changed)
    torch.testing.assert_close(before["spectral"], after["spectral"])
    assert not torch.allclose(before["spatial"], after["spatial"])


def test_spectral_spatial_cnn_learns_a_patch_task(tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    arguments = {"in_bands": 3, "num_classes": 2, "patch_size": 5, **tiny_model_arguments("spectral_spatial_cnn")}
    task = ClassificationTask(model="spectral_spatial_cnn", model_args=arguments, lr=0.02, scheduler="constant",
                              spectral_noise=0.05, spectral_scale=0.1, mixup_alpha=0.2)
    data = _Patches()
    L.Trainer(max_epochs=15, default_root_dir=tmp_path, limit_val_batches=0, **QUIET).fit(task, datamodule=data)
    task.model.eval()
    with torch.no_grad():
        accuracy = float((task.model(data.inputs["val"]).argmax(1) == data.targets["val"]).float().mean())
    assert accuracy >= 0.9


def test_sscnn_config_builds_the_model_on_all_bands(shared_data: Path) -> None:
    import yaml

    from hsikit.data.spectral_datamodules import PatchClassificationDataModule

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "classifier_sscnn_indian_pines.yaml")
                            .read_text(encoding="utf-8"))
    task = ClassificationTask(**config["model"]["init_args"])
    data_args = {**config["data"]["init_args"], "root": str(shared_data), "split": "count", "train": 5, "val": 2,
                 "test": 2}
    datamodule = PatchClassificationDataModule(**data_args)
    datamodule.setup()
    task.set_data_description(datamodule.data_description)
    task.configure_model()
    assert isinstance(task.model, SpectralSpatialCNN)
    assert (task.model.in_bands, task.model.patch_size, task.model.num_classes) == (200, 9, 16)  # no PCA
    assert task.restore_best == "accuracy"
    batch, targets = datamodule.datasets["train"].__getitems__(list(range(8)))
    assert task.model(batch).shape == (8, 16)


def test_restore_best_state_survives_a_checkpoint_round_trip(tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    arguments = {"in_bands": 3, "num_classes": 2, "patch_size": 5, **tiny_model_arguments("spectral_spatial_cnn")}
    task = ClassificationTask(model="spectral_spatial_cnn", model_args=arguments, lr=0.05, scheduler="constant",
                              restore_best="accuracy")
    L.Trainer(max_epochs=3, default_root_dir=tmp_path, **QUIET).fit(task, datamodule=_Patches(shift=0.1))
    checkpoint: dict[str, Any] = {}
    task.on_save_checkpoint(checkpoint)
    fresh = ClassificationTask(model="spectral_spatial_cnn", model_args=arguments, restore_best="accuracy")
    fresh.on_load_checkpoint(checkpoint)
    assert (fresh.best_val_epoch, fresh.best_val_score) == (task.best_val_epoch, task.best_val_score)
    for key, value in task.model.state_dict().items():  # task holds the restored best weights
        torch.testing.assert_close(fresh._best_state[key], value)
