"""hsikit.engine: the training engine on top of Lightning.

* :mod:`hsikit.engine.export` - model files (safetensors + JSON), ``load_model``; no Lightning import.
* :mod:`hsikit.engine.callbacks` - weight EMA, non-finite guard, per-step seeding, run artefacts.
* :mod:`hsikit.engine.schedulers` - warm-up + cosine learning-rate schedule.
* :mod:`hsikit.engine.trainer` - run folders and a configured ``lightning.Trainer``.
* :mod:`hsikit.engine.cli` - ``hsikit fit | validate | test | predict`` (LightningCLI).

Submodules are imported on first use so that ``hsikit.load_model`` never pulls in Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "load_model": "hsikit.engine.export",
    "export_model": "hsikit.engine.export",
    "export_checkpoint": "hsikit.engine.export",
    "read_model_config": "hsikit.engine.export",
    "ModelConfig": "hsikit.engine.export",
    "RunOptions": "hsikit.engine.trainer",
    "create_trainer": "hsikit.engine.trainer",
    "WarmupCosineSchedule": "hsikit.engine.schedulers",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hsikit.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
