"""Atomic file output: write to a temporary file beside the target, then rename.

An interrupted write (exception, SIGKILL, full disk) never leaves a file at the
target path that looks complete: either the old file (or nothing) is there, or
the complete new one. ``os.replace`` is atomic on POSIX and Windows when source
and target are on the same filesystem, which a sibling temporary file guarantees.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def temporary_sibling(target: str | os.PathLike, suffix: str | None = None) -> Path:
    """A fresh, unused path in the target's folder, hidden and marked ``.partial``.

    The file keeps the target's extension (some writers choose the format from it).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    ext = suffix if suffix is not None else "".join(target.suffixes[-1:])
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".partial{ext}", dir=target.parent)
    os.close(handle)
    # mkstemp creates the file private (0600); the finished file gets the mode open() would give it
    os.chmod(name, 0o666 & ~_current_umask())
    return Path(name)


def _current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux: /proc)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed onto ``target``.

    On any exception the temporary file is removed and the target is untouched.

    Example:
        >>> with atomic_path("out.tif") as tmp:
        ...     write_geotiff(tmp, cube)
    """
    target = Path(target)
    tmp = temporary_sibling(target, suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_paths(targets: list[str | os.PathLike]) -> Iterator[list[Path]]:
    """Like :func:`atomic_path` for files that belong together (ENVI header + data).

    The data files are renamed first and the first target last, so the file a
    reader opens first (pass it first, e.g. the ``.hdr``) appears only when the
    rest is complete.
    """
    paths = [Path(t) for t in targets]
    temps = [temporary_sibling(p) for p in paths]
    try:
        yield temps
        for tmp in temps:
            _fsync_file(tmp)
        for tmp, target in list(zip(temps, paths))[::-1]:
            os.replace(tmp, target)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def _fsync_file(path: Path) -> None:
    try:
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
    except OSError:  # pragma: no cover - some filesystems refuse fsync; rename is still atomic
        pass
