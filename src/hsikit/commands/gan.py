"""``hsikit gan``: CSWIN v2 Sinkhorn-GAN reconstruction with the reference README's configuration schema.

::

    hsikit gan train --config configs/gan_cswin_proxy.yaml
    hsikit gan train --config configs/gan_cswin_proxy.yaml optimizer.generator_lr=1e-4 batch_size=8 \\
        generator.base_channels=32 resume=runs/gan_cswin_proxy/v/checkpoints/last.ckpt
    hsikit gan train --config configs/cswin_v2_readme_schema.yaml data_dir=/datasets/ARAD_1K --print-config
    hsikit gan evaluate-noise --model runs/gan_cswin_proxy/v/model --data-root ~/.cache/hsikit/proxy --crop 25
    hsikit gan train-mstpp [--memory-json FILE] -- --config configs/reconstruction_mstpp_proxy.yaml [fit options...]

The config is the CSWIN v2 README's flat schema (``specs/003_cswin_gan.md`` §1), in groups:
data/runtime, optimiser/scheduler, adversarial, Sinkhorn, loss weights, checkpointing, plus
``generator:`` and ``discriminator:`` model arguments. ``key=value`` overrides follow the
config file; a key may carry its group as a prefix (``optimizer.generator_lr=1e-4``, the README's
example, is ``generator_lr``), and ``generator.<arg>`` / ``discriminator.<arg>`` set a model
argument. Values are parsed as YAML. An unknown key is refused with the list of valid keys.
:func:`build_gan_run` maps the config onto hsikit: a
:class:`~hsikit.tasks.gan_reconstruction.GANReconstructionTask`, a
:class:`~hsikit.data.reconstruction_datamodule.ReconstructionDataModule` and the engine's
trainer (:func:`~hsikit.engine.trainer.create_trainer`).

The reference's "memory-optimised MST++ trainer" is the plain reconstruction task with MST++
(``configs/reconstruction_mstpp_proxy.yaml`` / ``..._arad.yaml``): ``gan train-mstpp`` runs
``hsikit fit`` on such a config and reports the peak memory (:func:`peak_memory_report`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from hsikit.errors import ConfigError

#: The schema: key -> (group, default). Groups follow the README's configuration section.
SCHEMA: dict[str, tuple[str, Any]] = {
    # data / runtime
    "seed": ("data", 42),
    "dataset_source": ("data", "proxy"),
    "data_dir": ("data", None),
    "log_dir": ("data", "runs"),
    "run_name": ("data", None),
    "run_version": ("data", None),
    "batch_size": ("data", 20),
    "val_batch_size": ("data", 1),
    "patch_size": ("data", 128),
    "stride": ("data", 8),
    "epochs": ("data", 300),
    "iterations_per_epoch": ("data", 1000),
    "num_workers": ("data", 2),
    "memory_mode": ("data", "standard"),
    "mixed_precision": ("data", False),
    "accelerator": ("data", "auto"),
    "devices": ("data", 1),
    "strategy": ("data", "auto"),
    "eval_crop": ("data", 128),
    "validate_every": ("data", 1000),
    # optimiser / scheduler
    "generator_lr": ("optimizer", 2e-4),
    "discriminator_lr": ("optimizer", 5e-5),
    "generator_betas": ("optimizer", [0.5, 0.999]),
    "discriminator_betas": ("optimizer", [0.5, 0.999]),
    "generator_weight_decay": ("optimizer", 0.0),
    "discriminator_weight_decay": ("optimizer", 0.0),
    "warmup_steps": ("optimizer", 2000),
    "min_lr": ("optimizer", 1e-6),
    "gradient_accumulation_steps": ("optimizer", 2),
    "grad_clip_norm": ("optimizer", 1.0),
    # adversarial
    "n_critic": ("adversarial", 1),
    "adversarial_loss": ("adversarial", "sinkhorn"),
    "use_r1_regularization": ("adversarial", True),
    "r1_gamma": ("adversarial", 10.0),
    "r1_every": ("adversarial", 16),
    "r1_lazy_scale": ("adversarial", True),
    # Sinkhorn
    "sinkhorn_epsilon": ("sinkhorn", 0.1),
    "sinkhorn_iters": ("sinkhorn", 50),
    "sinkhorn_flatten_spatial": ("sinkhorn", True),
    "sinkhorn_max_points": ("sinkhorn", 1024),
    "sinkhorn_loss_clip": ("sinkhorn", 5.0),
    # loss weights
    "lambda_rec": ("loss", 1.0),
    "lambda_perceptual": ("loss", 0.0),
    "lambda_adversarial": ("loss", 0.1),
    "lambda_sam": ("loss", 0.05),
    "reconstruction_loss": ("loss", "charbonnier"),
    "use_adaptive_weights": ("loss", True),
    "loss_warmup_iterations": ("loss", 5000),
    # checkpointing
    "checkpoint_keep": ("checkpoint", 5),
    "save_every": ("checkpoint", 5000),
    "ema_decay": ("checkpoint", 0.999),
    "resume": ("checkpoint", None),
    # models
    "generator": ("model", {}),
    "discriminator": ("model", {}),
}
GROUPS = ("data", "optimizer", "adversarial", "sinkhorn", "loss", "checkpoint")
MODEL_GROUPS = ("generator", "discriminator")


def _valid_keys_text() -> str:
    lines = []
    for group in GROUPS:
        keys = [key for key, (g, _) in SCHEMA.items() if g == group]
        lines.append(f"{group}: {', '.join(keys)}")
    lines.append("model: generator.<argument>, discriminator.<argument>")
    return "; ".join(lines)


def _set(config: dict[str, Any], key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    if len(parts) >= 2 and parts[0] in MODEL_GROUPS:
        if len(parts) != 2 or not parts[1]:
            raise ConfigError(f"{source}: {key!r} must be {parts[0]}.<argument>")
        config[parts[0]] = {**config[parts[0]], parts[1]: value}
        return
    name = parts[-1]
    if len(parts) > 2 or name not in SCHEMA or (len(parts) == 2 and parts[0] != SCHEMA[name][0]):
        raise ConfigError(
            f"{source}: unknown config key {key!r}. Valid keys (group prefix optional) - {_valid_keys_text()}"
        )
    if name in MODEL_GROUPS:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {name!r} holds the model arguments as a mapping, got {value!r}")
        value = dict(value)
    config[name] = value


def _flatten(document: Mapping[str, Any], source: str) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in document.items():
        if key in GROUPS and isinstance(value, Mapping):
            items.extend((f"{key}.{inner}", inner_value) for inner, inner_value in value.items())
        else:
            items.append((str(key), value))
    return items


def _parse_value(text: str) -> Any:
    """A command-line value as YAML, with numbers such as ``1e-4`` read as numbers (YAML 1.1 reads a string)."""
    import yaml

    if not text:
        return None
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_gan_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved config: schema defaults, then the YAML file, then ``key=value`` overrides (module docstring)."""
    import yaml

    config: dict[str, Any] = {key: (dict(default) if isinstance(default, dict) else default)
                              for key, (_, default) in SCHEMA.items()}  # fmt: skip
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist")
        document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(document, Mapping):
            raise ConfigError(f"{file}: a GAN config is a YAML mapping of keys, got {type(document).__name__}")
        for key, value in _flatten(document, str(file)):
            _set(config, key, value, str(file))
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} is not key=value (e.g. optimizer.generator_lr=1e-4)")
        key, text = override.split("=", 1)
        _set(config, key.strip(), _parse_value(text), "command line")
    _check(config)
    return config


def _check(config: Mapping[str, Any]) -> None:
    if config["dataset_source"] not in ("proxy", "mst"):
        raise ConfigError(f"dataset_source must be 'proxy' or 'mst' (ARAD-1K layout), got {config['dataset_source']!r}")
    if config["dataset_source"] == "mst" and not config["data_dir"]:
        raise ConfigError(
            "dataset_source 'mst' needs data_dir: an ARAD-1K folder (Train_Spec/, Train_RGB/, split_txt/)"
        )
    if config["val_batch_size"] != 1:
        raise ConfigError("val_batch_size must be 1: the MST++ protocol scores full frames one image at a time")
    for key in ("batch_size", "patch_size", "stride", "epochs", "gradient_accumulation_steps", "n_critic",
                "checkpoint_keep"):  # fmt: skip
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "checkpoint_keep" else 1):
            raise ConfigError(f"{key} must be a whole number >= {0 if key == 'checkpoint_keep' else 1}, got {value!r}")
    for key in ("iterations_per_epoch", "save_every", "validate_every"):
        value = config[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key} must be a whole number >= 1 or null, got {value!r}")
    if not 0 < float(config["min_lr"]) <= float(config["generator_lr"]):
        raise ConfigError(f"min_lr must be in (0, generator_lr], got {config['min_lr']!r}")


def _precision(config: Mapping[str, Any]) -> str:
    if not config["mixed_precision"]:
        return "32-true"
    import torch

    on_gpu = config["accelerator"] in ("gpu", "cuda") or (config["accelerator"] == "auto" and torch.cuda.is_available())
    return "16-mixed" if on_gpu else "bf16-mixed"


def build_gan_run(config: Mapping[str, Any], callbacks: Sequence[Any] = ()) -> tuple[Any, Any, Any, Path]:
    """``(task, datamodule, trainer, run_dir)`` for a resolved config (:func:`load_gan_config`)."""
    import lightning as L

    from hsikit.data.reconstruction_datamodule import ReconstructionDataModule
    from hsikit.engine.trainer import RUN_DIR_ENV, RunOptions, create_trainer, resolve_run_dir
    from hsikit.tasks.gan_reconstruction import GANReconstructionTask

    L.seed_everything(int(config["seed"]), verbose=False)
    task = GANReconstructionTask(
        model_args=dict(config["generator"]),
        discriminator_args=dict(config["discriminator"]),
        generator_lr=float(config["generator_lr"]),
        discriminator_lr=float(config["discriminator_lr"]),
        generator_betas=tuple(config["generator_betas"]),
        discriminator_betas=tuple(config["discriminator_betas"]),
        generator_weight_decay=float(config["generator_weight_decay"]),
        discriminator_weight_decay=float(config["discriminator_weight_decay"]),
        warmup_steps=int(config["warmup_steps"]),
        min_lr_ratio=float(config["min_lr"]) / float(config["generator_lr"]),
        n_critic=int(config["n_critic"]),
        accumulate_grad_batches=int(config["gradient_accumulation_steps"]),
        gradient_clip_norm=None if config["grad_clip_norm"] is None else float(config["grad_clip_norm"]),
        lambda_rec=float(config["lambda_rec"]),
        lambda_perceptual=float(config["lambda_perceptual"]),
        lambda_adversarial=float(config["lambda_adversarial"]),
        lambda_sam=float(config["lambda_sam"]),
        reconstruction_loss=config["reconstruction_loss"],
        adversarial_loss=config["adversarial_loss"],
        sinkhorn_epsilon=float(config["sinkhorn_epsilon"]),
        sinkhorn_iters=int(config["sinkhorn_iters"]),
        sinkhorn_flatten_spatial=bool(config["sinkhorn_flatten_spatial"]),
        sinkhorn_max_points=config["sinkhorn_max_points"],
        sinkhorn_loss_clip=config["sinkhorn_loss_clip"],
        use_r1=bool(config["use_r1_regularization"]),
        r1_gamma=float(config["r1_gamma"]),
        r1_every=int(config["r1_every"]),
        r1_lazy_scale=bool(config["r1_lazy_scale"]),
        use_adaptive_weights=bool(config["use_adaptive_weights"]),
        loss_warmup_iterations=int(config["loss_warmup_iterations"]),
        eval_crop=int(config["eval_crop"]),
    )
    proxy = config["dataset_source"] == "proxy"
    datamodule = ReconstructionDataModule(
        root=config["data_dir"], proxy=proxy, patch_size=int(config["patch_size"]), stride=int(config["stride"]),
        batch_size=int(config["batch_size"]), num_workers=int(config["num_workers"]),
        memory_mode=config["memory_mode"], check_split=not proxy,
    )  # fmt: skip
    options = RunOptions(
        root=str(config["log_dir"]), name=config["run_name"] or "gan_cswin", version=config["run_version"],
        save_top_k=int(config["checkpoint_keep"]), checkpoint_every_n_steps=config["save_every"],
        ema_decay=None if config["ema_decay"] is None else float(config["ema_decay"]),
    )  # fmt: skip
    run_dir = resolve_run_dir(options, options.name or "gan_cswin")
    if config["devices"] not in (1, "1", "auto") or config["strategy"] not in ("auto", None):
        os.environ[RUN_DIR_ENV] = str(run_dir)  # DDP workers relaunched by Lightning find the same folder
    iterations = config["iterations_per_epoch"]
    validate_every = config["validate_every"]
    trainer_options: dict[str, Any] = {
        "max_epochs": int(config["epochs"]), "max_steps": -1, "precision": _precision(config),
        "accelerator": config["accelerator"], "devices": config["devices"], "strategy": config["strategy"],
        "limit_train_batches": iterations, "num_sanity_val_steps": 0,
    }  # fmt: skip
    if validate_every is not None and (iterations is None or validate_every < iterations):
        trainer_options["val_check_interval"] = int(validate_every)
    import yaml

    trainer = create_trainer(run_dir, options, task=task, callbacks=list(callbacks),
                             config_text=yaml.safe_dump(dict(config), sort_keys=False), **trainer_options)  # fmt: skip
    return task, datamodule, trainer, run_dir


# ---------------------------------------------------------------------------- memory report
def peak_memory_report() -> dict[str, Any]:
    """Peak memory of this process so far: resident set size (CPU) and, with CUDA, the allocator's peak.

    ``peak_rss_mb`` is the operating system's high-water mark of the process (``ru_maxrss``:
    everything, imports and data included); ``cuda_peak_allocated_mb`` is
    ``torch.cuda.max_memory_allocated`` (tensors only) and ``cuda_peak_reserved_mb`` the
    allocator's cache, both None without CUDA.
    """
    import resource

    import torch

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    rss_mb = rss_kb / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)
    report: dict[str, Any] = {"peak_rss_mb": round(rss_mb, 1), "cuda_peak_allocated_mb": None,
                              "cuda_peak_reserved_mb": None}  # fmt: skip
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        report["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        report["cuda_peak_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return report


def format_memory_report(report: Mapping[str, Any]) -> str:
    """One line: ``peak memory: RSS 1234.5 MB[, CUDA allocated .. MB, reserved .. MB]``."""
    text = f"peak memory: RSS {report['peak_rss_mb']:.1f} MB"
    if report.get("cuda_peak_allocated_mb") is not None:
        text += (
            f", CUDA allocated {report['cuda_peak_allocated_mb']:.1f} MB, "
            f"reserved {report['cuda_peak_reserved_mb']:.1f} MB"
        )
    return text


# ---------------------------------------------------------------------------- commands
def register(commands: Any) -> None:
    """Add ``gan train | evaluate-noise | train-mstpp`` to the ``hsikit`` subcommands."""
    gan = commands.add_parser(
        "gan",
        help="CSWIN v2 Sinkhorn-GAN reconstruction: train, noise-robustness evaluation, MST++ memory report",
        description="CSWIN v2 Sinkhorn-GAN RGB -> hyperspectral reconstruction with the reference README's "
        "config schema.",
    )
    actions = gan.add_subparsers(dest="gan_command", metavar="ACTION")
    actions.required = True
    train = actions.add_parser("train", help="train the GAN from a README-schema config plus key=value overrides")
    train.add_argument("--config", default=None, help="README-schema YAML (e.g. configs/gan_cswin_proxy.yaml)")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="overrides such as optimizer.generator_lr=1e-4 batch_size=8 generator.base_channels=32")
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    train.set_defaults(handler=_command_train)

    noise = actions.add_parser("evaluate-noise", help="MRAE / RMSE / PSNR / SAM per camera shot-noise level")
    noise.add_argument("--model", required=True, help="exported model folder (or run folder)")
    noise.add_argument("--data-root", default=None,
                       help="ARAD-style folder with the validation split (default: the proxy set)")
    noise.add_argument("--split", default="valid", help="split list to score (default: valid)")
    noise.add_argument("--npe", nargs="+", default=["clean", "3000", "750", "200", "50"],
                       help="photo-electrons per unit signal, 'clean' for no noise (default: clean 3000 750 200 50)")
    noise.add_argument("--crop", type=int, default=None, help="border crop in px (default: 25 on the proxy, else 128)")
    noise.add_argument("--jpeg-quality", type=int, default=None, help="also JPEG-encode the inputs (default: no)")
    noise.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    noise.add_argument("--device", default="cpu", help="torch device (default cpu)")
    noise.add_argument("--json", dest="json_path", default=None, help="also write the results to this JSON file")
    noise.set_defaults(handler=_command_evaluate_noise)

    mstpp = actions.add_parser(
        "train-mstpp",
        help="the README's memory-optimised MST++ trainer: 'hsikit fit' on an MST++ config, then peak memory",
    )
    mstpp.add_argument("--memory-json", default=None, help="also write the peak-memory report to this JSON file")
    mstpp.add_argument("engine_arguments", nargs=argparse.REMAINDER,
                       help="arguments of 'hsikit fit' after '--' "
                       "(e.g. -- --config configs/reconstruction_mstpp_proxy.yaml)")
    mstpp.set_defaults(handler=_command_train_mstpp)


def _command_train(args: argparse.Namespace, out: TextIO) -> int:
    config = load_gan_config(args.config, args.overrides)
    if args.print_config:
        import yaml

        out.write(yaml.safe_dump(config, sort_keys=False))
        return 0
    task, datamodule, trainer, run_dir = build_gan_run(config)
    started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule, ckpt_path=config["resume"], weights_only=True)
    report = {**peak_memory_report(), "seconds": round(time.perf_counter() - started, 1)}
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "peak_memory.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        out.write(f"run folder: {run_dir}\n")
        out.write("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())) + "\n")
        out.write(format_memory_report(report) + "\n")
    return 0


def _command_evaluate_noise(args: argparse.Namespace, out: TextIO) -> int:
    from hsikit.engine.export import load_model
    from hsikit.inference.noise_robustness import evaluate_noise_robustness, format_noise_table, load_validation_cubes
    from hsikit.inference.reconstruction import output_wavelengths

    levels: list[float | None] = []
    for text in args.npe:
        if text.lower() in ("clean", "none"):
            levels.append(None)
            continue
        try:
            levels.append(float(text))
        except ValueError:
            raise ConfigError(f"--npe takes numbers of photo-electrons or 'clean', got {text!r}") from None
    proxy = args.data_root is None
    if proxy:
        from hsikit.data.proxy import build_proxy_set, default_proxy_root

        root = build_proxy_set(default_proxy_root())
    else:
        root = Path(args.data_root)
    crop = args.crop if args.crop is not None else (25 if proxy or "proxy" in str(root) else 128)
    model = load_model(args.model, device=args.device)
    extra = dict(getattr(model.hsikit_config, "extra", None) or {})
    cubes = load_validation_cubes(root, args.split)
    if not cubes:
        raise ConfigError(f"{root}: the {args.split!r} split lists no images")
    wavelengths = output_wavelengths(model, int(cubes[0][1].shape[0]))
    rows = evaluate_noise_robustness(model, cubes, npe_levels=levels, crop=crop, jpeg_quality=args.jpeg_quality,
                                     wavelengths=wavelengths,
                                     rgb_norm=str(extra.get("rgb_norm", "minmax")), seed=args.seed,
                                     device=args.device)  # fmt: skip
    out.write(f"{len(cubes)} images of {root} ({args.split}), crop {crop} px\n")
    out.write(format_noise_table(rows) + "\n")
    if args.json_path:
        payload = {"model": str(args.model), "data_root": str(root), "crop": crop,
                   "levels": [row.as_dict() for row in rows]}  # fmt: skip
        Path(args.json_path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


def _command_train_mstpp(args: argparse.Namespace, out: TextIO) -> int:
    from hsikit.engine.cli import main as engine_main

    arguments = [a for a in args.engine_arguments if a != "--"]
    if not arguments:
        raise ConfigError(
            "give the 'hsikit fit' arguments after '--', e.g. hsikit gan train-mstpp -- --config "
            "configs/reconstruction_mstpp_proxy.yaml"
        )
    status = engine_main(["fit", *arguments])
    report = peak_memory_report()
    out.write(format_memory_report(report) + "\n")
    if args.memory_json:
        Path(args.memory_json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return status


__all__ = ["SCHEMA", "build_gan_run", "format_memory_report", "load_gan_config", "peak_memory_report", "register"]
