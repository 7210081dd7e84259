"""The HSIFusionNet / SHARP experiment configs (issue #8): every README flag is a config key, and each
config fits two steps on a proxy subset with tiny model overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hsikit.cli import main
from hsikit.models.reconstruction.hsifusion import HSIFUSION_TEST_CONFIGURATION
from hsikit.models.reconstruction.sharp import SHARP_TEST_CONFIGURATION

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRANSFORMER_CONFIGS = [
    "reconstruction_hsifusion_arad.yaml",
    "reconstruction_hsifusion_proxy.yaml",
    "reconstruction_sharp_arad.yaml",
    "reconstruction_sharp_proxy.yaml",
]
README_KEYS = {  # every flag of the reference README's tables, and where it lives in an experiment config
    "model_size": ("model", "model_size"),
    "memory_mode": ("data", "memory_mode"),
    "accumulate_steps": ("run", "accumulate_steps"),
    "warmup_epochs": ("model", "warmup_epochs"),
    "compile_model": ("model", "compile_model"),
    "ema_decay": ("run", "ema_decay"),
    "ema_update_every": ("run", "ema_update_every"),
}
SPARSE_KEYS = [
    "sparse_block_size", "sparse_q_block_size", "sparse_max_tokens", "sparse_window_size", "sparse_sparsity_ratio",
    "sparse_k_cap", "rbf_centers_per_head", "key_rbf_mode",
]  # fmt: skip


@pytest.mark.parametrize("name", TRANSFORMER_CONFIGS)
def test_every_readme_flag_is_a_config_key(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", str(CONFIGS / name), "--print_config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    sections = {"model": config["model"]["init_args"], "data": config["data"]["init_args"], "run": config["run"]}
    for key, (section, field) in README_KEYS.items():
        assert field in sections[section], f"{name}: README flag {key} missing ({section}.{field})"
    task = sections["model"]
    assert task["optimizer"] == "adamw" and task["weight_decay"] > 0 and task["warmup_epochs"] > 0
    assert config["trainer"]["gradient_clip_val"] == 1.0
    if "sharp" in name:
        assert task["model"] == "sharp" and all(key in task["model_args"] for key in SPARSE_KEYS)
        assert task["spectral_reg_weight"] > 0 and config["run"]["ema_decay"] == 0.999
    else:
        assert task["model"] == "hsifusion" and task["model_args"]["auxiliary_loss_weight"] == 0.01
    if name.endswith("_arad.yaml"):
        assert config["trainer"]["precision"] == "bf16-mixed" and task["eval_crop"] == 128
        assert task["model_size"] == "base" and sections["data"]["memory_mode"] == "float16"
    else:
        assert sections["data"]["proxy"] is True and task["eval_crop"] == 25 and task["model_size"] == "tiny"


@pytest.fixture(scope="module")
def proxy_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hsikit.data.proxy import build_proxy_set

    scenes = ["proxy_abu_airport_1", "proxy_abu_beach_3"]  # one training scene, one validation scene
    return build_proxy_set(tmp_path_factory.mktemp("transformer_proxy"), shared_data=shared_data, scenes=scenes)


@pytest.mark.parametrize("name", TRANSFORMER_CONFIGS)
def test_each_config_fits_two_steps_with_tiny_overrides(name: str, proxy_subset: Path, tmp_path: Path) -> None:
    tiny = dict(SHARP_TEST_CONFIGURATION if "sharp" in name else HSIFUSION_TEST_CONFIGURATION)
    if "sharp" in name:
        tiny.update(sparse_sparsity_ratio=0.5, sparse_k_cap=16, sparse_block_size=64, sparse_q_block_size=32)
    arguments = [
        "fit", "--config", str(CONFIGS / name),
        "--data.init_args.proxy", "false", "--data.init_args.root", str(proxy_subset),
        "--data.init_args.patch_size", "16", "--data.init_args.stride", "16", "--data.init_args.batch_size", "2",
        "--data.init_args.num_workers", "0", "--data.init_args.check_split", "false",
        "--model.init_args.model_args", json.dumps(tiny), "--model.init_args.compile_model", "false",
        "--model.init_args.eval_crop", "25",
        "--trainer.max_steps", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.check_val_every_n_epoch", "1", "--trainer.precision", "32-true",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--run.root", str(tmp_path), "--run.version", "v", "--run.report", "false",
    ]  # fmt: skip
    assert main(arguments) == 0
    run = tmp_path / Path(name).stem / "v"
    metrics = json.loads((run / "metrics.json").read_text())["fit"]
    assert metrics["status"] == "completed" and metrics["global_step"] == 2
    assert 0 < metrics["metrics"]["val/mrae"] < 10
    record = json.loads((run / "model" / "config.json").read_text())
    size = "base" if name.endswith("_arad.yaml") else "tiny"  # the config's preset, its arguments overridden
    assert record["name"] == f"{'sharp' if 'sharp' in name else 'hsifusion'}_{size}"
    assert record["arguments"]["base_dim" if "sharp" in name else "base_channels"] == 8
