"""``hsikit gan``: the README config schema, dotted overrides, training, noise evaluation and the memory report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from hsikit.cli import main
from hsikit.commands.gan import SCHEMA, build_gan_run, load_gan_config, peak_memory_report
from hsikit.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent / "tasks"))
from gan_resume_job import TINY_DISCRIMINATOR, TINY_GENERATOR, make_tree  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_readme_schema_config_holds_the_reference_defaults() -> None:
    config = load_gan_config(CONFIGS / "cswin_v2_readme_schema.yaml", ["data_dir=/datasets/ARAD_1K"])
    expected = {"batch_size": 20, "patch_size": 128, "stride": 8, "epochs": 300, "iterations_per_epoch": 1000,
                "gradient_accumulation_steps": 2, "n_critic": 1, "warmup_steps": 2000, "generator_lr": 2e-4,
                "discriminator_lr": 5e-5, "sinkhorn_epsilon": 0.1, "sinkhorn_iters": 50, "r1_gamma": 10.0,
                "lambda_rec": 1.0, "lambda_perceptual": 0.0, "lambda_adversarial": 0.1, "lambda_sam": 0.05,
                "checkpoint_keep": 5, "mixed_precision": True}  # fmt: skip
    assert {key: config[key] for key in expected} == expected
    assert config["generator"]["base_channels"] == 64 and config["discriminator"]["num_blocks"] == [2, 2, 2]
    assert set(config) == set(SCHEMA)


def test_dotted_overrides_map_onto_the_flat_keys_and_model_arguments() -> None:
    config = load_gan_config(
        CONFIGS / "gan_cswin_proxy.yaml",
        ["optimizer.generator_lr=1e-4", "discriminator_lr=3e-5", "sinkhorn.sinkhorn_epsilon=0.05",
         "generator.base_channels=8", "checkpoint.checkpoint_keep=1", "generator_betas=[0.9, 0.99]"],
    )  # fmt: skip
    assert config["generator_lr"] == 1e-4 and config["discriminator_lr"] == 3e-5
    assert config["sinkhorn_epsilon"] == 0.05 and config["checkpoint_keep"] == 1
    assert config["generator"] == {"base_channels": 8, "split_sizes": [4, 4, 4], "num_heads": 2}
    assert config["generator_betas"] == [0.9, 0.99]


@pytest.mark.parametrize("override", ["optimiser.generator_lr=1e-4", "sinkhorn.generator_lr=1", "learning_rate=4e-4"])
def test_unknown_keys_are_refused_with_the_valid_keys(override: str) -> None:
    with pytest.raises(ConfigError, match="unknown config key") as error:
        load_gan_config(CONFIGS / "gan_cswin_proxy.yaml", [override])
    assert "optimizer: generator_lr" in str(error.value) and "sinkhorn: sinkhorn_epsilon" in str(error.value)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="val_batch_size"):
        load_gan_config(None, ["val_batch_size=4"])
    with pytest.raises(ConfigError, match="data_dir"):
        load_gan_config(None, ["dataset_source=mst"])
    with pytest.raises(ConfigError, match="key=value"):
        load_gan_config(None, ["batch_size"])
    with pytest.raises(ConfigError, match="n_critic"):
        load_gan_config(None, ["n_critic=0"])


def test_the_config_reaches_the_task_trainer_and_run_options(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data")
    config = load_gan_config(CONFIGS / "gan_cswin_proxy.yaml", [
        "dataset_source=mst", f"data_dir={root}", f"log_dir={tmp_path / 'runs'}", "n_critic=3",
        "optimizer.generator_lr=1e-4", "checkpoint_keep=4", "save_every=7", "epochs=2", "iterations_per_epoch=3",
        "mixed_precision=true", "accelerator=cpu",
    ])  # fmt: skip
    task, datamodule, trainer, run_dir = build_gan_run(config)
    assert task.n_critic == 3 and task.generator_lr == 1e-4 and task.accumulate == 2
    assert task.hparams.min_lr_ratio == pytest.approx(1e-6 / 1e-4)
    assert trainer.max_epochs == 2 and trainer.limit_train_batches == 3 and trainer.precision == "bf16-mixed"
    checkpoints = [c for c in trainer.checkpoint_callbacks if c.monitor == "val/mrae"]
    assert checkpoints[0].save_top_k == 4
    assert any(getattr(c, "_every_n_train_steps", 0) == 7 for c in trainer.checkpoint_callbacks)
    assert any(type(c).__name__ == "WeightEMA" and c.decay == 0.999 for c in trainer.callbacks)
    assert datamodule.batch_size == 8 and run_dir.parent.name == "gan_cswin_proxy"


def test_gan_train_then_evaluate_noise_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(tmp_path / "data")
    config = {"dataset_source": "mst", "data_dir": str(root), "log_dir": str(tmp_path / "runs"), "run_name": "g",
              "run_version": "v", "batch_size": 2, "patch_size": 16, "epochs": 1, "iterations_per_epoch": 4,
              "num_workers": 0, "eval_crop": 2, "accelerator": "cpu", "generator": TINY_GENERATOR,
              "discriminator": TINY_DISCRIMINATOR, "sinkhorn_iters": 5, "warmup_steps": 1,
              "mixed_precision": False}  # fmt: skip
    path = tmp_path / "gan.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["gan", "train", "--config", str(path), "optimizer.generator_lr=1e-3"]) == 0
    output = capsys.readouterr().out
    run = tmp_path / "runs" / "g" / "v"
    assert "val/mrae" in output and "peak memory: RSS" in output
    assert json.loads((run / "peak_memory.json").read_text())["peak_rss_mb"] > 50
    fit = json.loads((run / "metrics.json").read_text())["fit"]
    assert fit["global_step"] == 2 and fit["monitor"] == "val/mrae"  # 4 micro-batches, accumulation 2
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["generator_lr"] == 1e-3

    result = tmp_path / "noise.json"
    assert main(["gan", "evaluate-noise", "--model", str(run / "model"), "--data-root", str(root), "--crop", "2",
                 "--npe", "clean", "100", "--json", str(result)]) == 0  # fmt: skip
    levels = json.loads(result.read_text())["levels"]
    assert [level["npe"] for level in levels] == [None, 100.0] and all(level["images"] == 2 for level in levels)
    assert "clean" in capsys.readouterr().out


def test_peak_memory_report_reads_the_process_high_water_mark() -> None:
    import numpy as np

    before = peak_memory_report()["peak_rss_mb"]
    block = np.ones(64 * 2**20 // 8)  # 64 MB touched
    after = peak_memory_report()
    assert after["peak_rss_mb"] >= before and after["peak_rss_mb"] >= block.nbytes / 2**20
    assert after["cuda_peak_allocated_mb"] is None or after["cuda_peak_allocated_mb"] >= 0


def test_train_mstpp_is_the_reconstruction_fit_with_a_peak_memory_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(tmp_path / "data")
    memory = tmp_path / "memory.json"
    arguments = [
        "gan", "train-mstpp", "--memory-json", str(memory), "--",
        "--config", str(CONFIGS / "reconstruction_mstpp_proxy.yaml"),
        "--data.init_args.proxy", "false", "--data.init_args.root", str(root), "--data.init_args.check_split", "false",
        "--data.init_args.patch_size", "16", "--data.init_args.batch_size", "2", "--model.init_args.eval_crop", "2",
        "--model.init_args.model_args", json.dumps({"stage": 1, "num_blocks": [1, 1]}),
        "--trainer.max_steps", "2", "--trainer.limit_train_batches", "2", "--trainer.check_val_every_n_epoch", "1",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--run.root", str(tmp_path / "runs"), "--run.version", "v",
    ]  # fmt: skip
    assert main(arguments) == 0
    assert "peak memory: RSS" in capsys.readouterr().out
    assert json.loads(memory.read_text())["peak_rss_mb"] > 50
    fit = json.loads((tmp_path / "runs" / "reconstruction_mstpp_proxy" / "v" / "metrics.json").read_text())["fit"]
    assert fit["global_step"] == 2 and "val/mrae" in fit["metrics"]
