"""Shared pytest fixtures and the ``slow`` marker switch."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture
def single_torch_thread() -> Iterator[None]:
    """One intra-op torch thread during the test, restored afterwards.

    Tiny models train several times faster this way on the shared 2-core machines than with
    oversubscribed threads. Use it with ``pytestmark = pytest.mark.usefixtures("single_torch_thread")``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
