"""Where hsikit finds data on disk.

* ``data_dir()``: the download cache of the dataset registry — ``$HSIKIT_DATA_DIR``,
  default ``~/.cache/hsikit``.
* ``shared_data_dir()``: the read-only collection of real scenes used by tests,
  benchmarks and the demo — ``$HSIKIT_SHARED_DATA``, default ``../shared/data``
  beside the repository (``None`` when absent).
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """The dataset cache folder (created on demand by the downloader)."""
    configured = os.environ.get("HSIKIT_DATA_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "hsikit"


def shared_data_dir() -> Path | None:
    """The folder of real test scenes, or None when it is not available."""
    configured = os.environ.get("HSIKIT_SHARED_DATA")
    candidates = [Path(configured).expanduser()] if configured else []
    candidates += [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "README.md").is_file() or (candidate / "SHA256SUMS").is_file():
            return candidate
    return None
