"""Fixtures of the task tests: a few hundred real Indian Pines pixels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hsikit.data.datamodules import PixelClassificationDataModule


@pytest.fixture(scope="session")
def indian_pines(shared_data: Path) -> Any:
    from hsikit.data import load_dataset

    return load_dataset("indian_pines", root=shared_data, download=False, progress=False)


@pytest.fixture
def small_datamodule(indian_pines: Any) -> Callable[..., PixelClassificationDataModule]:
    """10 train / 5 val / 5 test pixels per class (160 / 80 / 80 pixels)."""

    def make(**overrides: Any) -> PixelClassificationDataModule:
        options = {"split": "count", "train": 10, "val": 5, "test": 5, "batch_size": 32, **overrides}
        return PixelClassificationDataModule.from_arrays(
            indian_pines.cube, indian_pines.labels, indian_pines.class_names, **options
        )

    return make


@pytest.fixture(autouse=True)
def _one_torch_thread(single_torch_thread: None) -> None:
    """Every test in this folder runs on one torch thread (``single_torch_thread``, tests/conftest.py)."""
