"""Fixtures of the engine tests: a few hundred real Indian Pines pixels and a quick trainer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hsikit.data.datamodules import PixelClassificationDataModule

# 10 train / 5 val / 5 test pixels per class: 160 / 80 / 80 pixels of 200 bands.
SMALL_SPLIT = {"split": "count", "train": 10, "val": 5, "test": 5, "batch_size": 32}


@pytest.fixture(scope="session")
def indian_pines(shared_data: Path) -> Any:
    """The Indian Pines scene from the shared data (cube (200, 145, 145), labels, class names)."""
    from hsikit.data import load_dataset

    return load_dataset("indian_pines", root=shared_data, download=False, progress=False)


@pytest.fixture
def make_datamodule(indian_pines: Any) -> Callable[..., PixelClassificationDataModule]:
    """Build a small Indian Pines pixel datamodule (``SMALL_SPLIT``, overridable)."""

    def make(**overrides: Any) -> PixelClassificationDataModule:
        options = {**SMALL_SPLIT, **overrides}
        return PixelClassificationDataModule.from_arrays(
            indian_pines.cube, indian_pines.labels, indian_pines.class_names, **options
        )

    return make


@pytest.fixture(autouse=True)
def _one_torch_thread(single_torch_thread: None) -> None:
    """Every test in this folder runs on one torch thread (``single_torch_thread``, tests/conftest.py)."""
