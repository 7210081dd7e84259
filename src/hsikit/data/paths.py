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


def shared_data_file(relative: str, path: str | os.PathLike | None = None) -> Path:
    """An existing file: ``path`` when given, else ``relative`` inside :func:`shared_data_dir`.

    Raises :class:`~hsikit.errors.DataFileNotFoundError` when the file is missing and
    :class:`~hsikit.errors.DatasetNotAvailableError` when no path is given and the shared
    data folder is not available.
    """
    from hsikit.errors import DataFileNotFoundError, DatasetNotAvailableError

    if path is not None:
        candidate = Path(path).expanduser()
        if not candidate.is_file():
            raise DataFileNotFoundError(candidate, f"expected the file {Path(relative).name} (or the same format)")
        return candidate
    folder = shared_data_dir()
    if folder is None:
        raise DatasetNotAvailableError(
            f"{relative}: no path was given and the shared data folder is not available; pass path= to the file, "
            "or set HSIKIT_SHARED_DATA to the folder that holds it"
        )
    candidate = folder / relative
    if not candidate.is_file():
        raise DataFileNotFoundError(candidate, "pass path= to the file, or set HSIKIT_SHARED_DATA to a complete copy")
    return candidate
