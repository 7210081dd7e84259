"""Shared pytest fixtures and the ``slow`` marker switch."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from hsikit.data.paths import shared_data_dir  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("HSIKIT_RUN_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow test: run with --run-slow or HSIKIT_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder of real scenes (tests skip when it is absent)."""
    folder = shared_data_dir()
    if folder is None:
        pytest.skip("../shared/data is not available (set HSIKIT_SHARED_DATA)")
    return folder


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator for reproducible test data."""
    return np.random.default_rng(1234)
