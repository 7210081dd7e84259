"""Checksum-verified download cache for the dataset registry (standard library HTTP only).

Guarantees:

* **Nothing half-written is ever used.** Bytes stream into ``<name>.part`` beside the target;
  only after the sha256 matches is the part file renamed onto the target (atomic on one
  filesystem). A wrong checksum raises :class:`~hsikit.errors.ChecksumError` naming the file,
  the expected and the actual digest, and deletes the downloaded bytes.
* **Interrupted downloads resume.** A later attempt (the next retry, or the next call) asks for
  the rest with an HTTP ``Range`` request; a server that answers ``200`` instead of ``206``
  (no range support) is handled by starting again from byte zero. If a resumed file fails its
  checksum, it is downloaded once more from scratch before giving up.
* **Bounded retries.** Connection errors, timeouts, early closes and HTTP 408/429/5xx are
  retried ``retries`` times with exponential backoff; then :class:`~hsikit.errors.DownloadError`
  says what failed and that the partial data is kept for resuming. HTTP 4xx errors are final
  for that URL (the next mirror is tried).
* **Cached files are re-verified before use.** The digest of a file is cached in a small sidecar
  stamp ``.<name>.sha256.json`` keyed on size and modification time (and in memory for the
  process), so a file is hashed once, not at every load. A cached file that fails verification
  is moved aside to ``<name>.corrupt`` and, when the dataset has a URL, downloaded again.
  Folders whose permission bits are read-only (like a shared data collection) are never
  written to: their files are verified from memory only.
* Files registered without a sha256 are never called verified (see :mod:`hsikit.data.registry`):
  their first download records the digest received, later loads check against it, and
  ``require_checksums=True`` refuses them.

Concurrent downloads of the same file (e.g. several DDP ranks) are serialised with an advisory
lock file on POSIX systems.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import stat
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hsikit.data.paths import data_dir
from hsikit.data.registry import DatasetInfo, RemoteFile, arad1k_split_names, dataset_info
from hsikit.errors import ChecksumError, DataFileNotFoundError, DatasetNotAvailableError, DownloadError
from hsikit.io.atomic import atomic_path

__all__ = [
    "FileStatus",
    "dataset_status",
    "download_dataset",
    "download_file",
    "ensure_file",
    "file_sha256",
    "sha256_file",
    "verify_file",
    "write_arad1k_split_lists",
]

CHUNK_SIZE = 1 << 16
_MAX_BACKOFF_S = 30.0
_USER_AGENT = "hsikit-dataset-downloader/0.1 (+https://github.com/hsikit)"

# Digest memo for this process: (absolute path, size, mtime_ns) -> sha256.
_DIGEST_MEMO: dict[tuple[str, int, int], str] = {}

FileState = Literal["verified", "unverified", "missing", "corrupt"]


# ============================================================================ hashing and stamps
def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """The sha256 hex digest of a file's bytes (always reads the whole file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256.json")


def _folder_is_writable(folder: Path) -> bool:
    """True when ``folder`` may be written: the permission bits allow it, not only root's privileges."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IWUSR) and os.access(folder, os.W_OK)


def _read_stamp(path: Path) -> dict[str, object]:
    try:
        content = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _write_stamp(path: Path, **fields: object) -> None:
    """Merge ``fields`` into the sidecar stamp of ``path`` (skipped in read-only folders)."""
    if not _folder_is_writable(path.parent):
        return
    content = _read_stamp(path)
    content.update(fields)
    with contextlib.suppress(OSError), atomic_path(_stamp_path(path), suffix=".json") as tmp:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True), encoding="utf-8")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of ``path``, computed once per (size, mtime) and cached in memory and in a stamp."""
    path = Path(path)
    info = path.stat()
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    cached = _DIGEST_MEMO.get(key)
    if cached is not None:
        return cached
    stamp = _read_stamp(path)
    digest = stamp.get("sha256")
    if not (isinstance(digest, str) and stamp.get("size") == info.st_size and stamp.get("mtime_ns") == info.st_mtime_ns):
        digest = sha256_file(path)
        _write_stamp(path, sha256=digest, size=info.st_size, mtime_ns=info.st_mtime_ns)
    _DIGEST_MEMO[key] = digest
    return digest


def verify_file(
    path: str | os.PathLike[str], sha256: str | None = None, size: int | None = None
) -> Literal["verified", "unverified"]:
    """Check a file against its registered size and sha256.

    Returns ``"verified"`` when the registered digest matches, ``"unverified"`` when no digest
    is registered (the file is then compared with the digest recorded at its first download,
    if any). Raises :class:`DataFileNotFoundError` for a missing file and
    :class:`ChecksumError` (with ``path``, ``expected`` and ``actual`` attributes) for a file
    of the wrong size or digest.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(path, "download it with hsikit.data.download_dataset(<name>)")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise _checksum_error(
            path,
            f"{size} bytes",
            f"{actual_size} bytes",
            "the file is truncated or is another version",
        )
    actual = file_sha256(path)
    if sha256 is not None:
        if actual != sha256.lower():
            raise _checksum_error(path, sha256, actual, "the file is corrupted or is another version")
        return "verified"
    recorded = _read_stamp(path).get("first_download_sha256")
    if isinstance(recorded, str) and recorded != actual:
        raise _checksum_error(
            path,
            f"{recorded} (recorded at its first download)",
            actual,
            "the cached file changed since it was downloaded",
        )
    return "unverified"


def _checksum_error(path: Path, expected: str, actual: str, why: str) -> ChecksumError:
    error = ChecksumError(
        f"{path}: checksum mismatch, expected {expected}, got {actual}; {why}. "
        "Delete it and run hsikit.data.download_dataset(<name>) again (or fetch the registered version by hand)"
    )
    error.path = str(path)  # type: ignore[attr-defined]
    error.expected = expected  # type: ignore[attr-defined]
    error.actual = actual  # type: ignore[attr-defined]
    return error


def _quarantine(path: Path) -> Path | None:
    """Move a bad file aside as ``<name>.corrupt``; None when the folder must not be written."""
    if not _folder_is_writable(path.parent):
        return None
    destination = path.with_name(path.name + ".corrupt")
    os.replace(path, destination)
    with contextlib.suppress(FileNotFoundError):
        _stamp_path(path).unlink()
    return destination


# ============================================================================ HTTP transfer
class _RetryableError(Exception):
    """A transient failure: the same URL may succeed on the next attempt."""


@contextlib.contextmanager
def _download_lock(target: Path) -> Iterator[None]:
    """Serialise downloads of one target across processes (advisory; POSIX only).

    The lock file is removed on exit while still held; a waiter that then wakes up on the
    removed file notices (inode changed) and locks the new one instead.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path = target.with_name(f".{target.name}.lock")
    while True:
        descriptor = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            current = os.stat(lock_path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(descriptor)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _content_range_start_and_total(header: str | None) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", header or "")
    if not match:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _transfer(url: str, part: Path, timeout: float, progress: bool, chunk_size: int) -> bool:
    """One HTTP attempt appending to (or restarting) ``part``; True when it resumed from an offset.

    Raises :class:`_RetryableError` for transient failures and :class:`DownloadError` for
    final ones.
    """
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - registry URLs only
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Our partial file already holds every byte (or more): let the checksum decide.
            return True
        if error.code in (408, 429) or error.code >= 500:
            raise _RetryableError(f"HTTP {error.code} {error.reason}") from error
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise _RetryableError(f"{type(error).__name__}: {error}") from error

    with response:
        status = getattr(response, "status", None)
        resumed = bool(offset) and status == 206
        if resumed:
            start, total = _content_range_start_and_total(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _RetryableError(f"server answered range {start} instead of {offset}; restarting from zero")
            mode = "ab"
        else:
            # No Range sent, or the server ignored it (200): the body is the whole file.
            offset, mode = 0, "wb"
            total = None
        length_header = response.headers.get("Content-Length")
        body_length = int(length_header) if length_header and length_header.isdigit() else None
        if total is None and body_length is not None:
            total = offset + body_length
        received = 0
        with open(part, mode) as output, tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name[: -len(".part")],
            disable=not progress,
            leave=False,
        ) as bar:
            while True:
                try:
                    block = response.read(chunk_size)
                except (OSError, http.client.HTTPException) as error:
                    raise _RetryableError(f"connection lost after {offset + received} bytes: {error}") from error
                if not block:
                    break
                output.write(block)
                received += len(block)
                bar.update(len(block))
            output.flush()
            os.fsync(output.fileno())
    if body_length is not None and received < body_length:
        raise _RetryableError(f"connection closed after {offset + received} of {offset + body_length} bytes")
    return resumed


def download_file(
    urls: str | Sequence[str],
    target: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    chunk_size: int = CHUNK_SIZE,
) -> Path:
    """Download ``urls`` (tried in order) to ``target``, verified and moved into place atomically.

    Args:
        urls: one URL or mirrors of the same bytes.
        target: final path; the data stream into ``<target>.part`` first.
        sha256: expected digest; a mismatch raises :class:`ChecksumError` and leaves no file.
            When None, the digest received is recorded in the sidecar stamp.
        size: expected size in bytes (optional, checked when no digest is given).
        retries: retries per URL after the first attempt (total attempts = retries + 1).
        backoff: seconds before the first retry, doubled for each later one (capped at 30 s).
        timeout: socket timeout in seconds.
        progress: show a tqdm progress bar.
        chunk_size: bytes per read.

    Returns:
        ``target``.

    Raises:
        ChecksumError: the complete download does not match ``sha256`` (or ``size``).
        DownloadError: every URL failed (the ``.part`` file is kept for resuming).
    """
    url_list = [urls] if isinstance(urls, str) else list(urls)
    if not url_list:
        raise DownloadError(f"{target}: no URL to download from")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    failures: list[str] = []
    checksum_failure: ChecksumError | None = None
    with _download_lock(target):
        if sha256 is not None and target.is_file():
            # Another process may have finished the same download while we waited for the lock.
            with contextlib.suppress(ChecksumError):
                verify_file(target, sha256, size)
                return target
        for url in url_list:
            try:
                return _download_from(url, target, part, sha256, size, retries, backoff, timeout, progress, chunk_size)
            except ChecksumError as error:
                checksum_failure = error
                failures.append(f"{url}: {error}")
            except DownloadError as error:
                failures.append(str(error))
    if checksum_failure is not None and len(failures) == 1:
        raise checksum_failure
    kept = f"; partial data kept in {part} (the next call resumes it)" if part.exists() else ""
    raise DownloadError(f"could not download {target.name}:\n  " + "\n  ".join(failures) + kept)


def _download_from(
    url: str,
    target: Path,
    part: Path,
    sha256: str | None,
    size: int | None,
    retries: int,
    backoff: float,
    timeout: float,
    progress: bool,
    chunk_size: int,
) -> Path:
    attempt = 0
    used_resume = False
    restarted_after_mismatch = False
    while True:
        if size is not None and part.exists() and part.stat().st_size > size:
            part.unlink()  # longer than the file can be: it belongs to something else
        try:
            used_resume = _transfer(url, part, timeout, progress, chunk_size) or used_resume
        except _RetryableError as error:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{url}: {error} (gave up after {attempt} attempts); check the network or the URL, then call "
                    "again: the partial data is kept and the download resumes"
                ) from error
            time.sleep(min(backoff * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            continue
        actual = sha256_file(part)
        actual_size = part.stat().st_size
        wrong_digest = sha256 is not None and actual != sha256.lower()
        wrong_size = sha256 is None and size is not None and actual_size != size
        if wrong_digest or wrong_size:
            part.unlink()
            if used_resume and not restarted_after_mismatch:
                # The resumed bytes may come from a changed file: try once more from zero.
                restarted_after_mismatch, used_resume = True, False
                continue
            expected = sha256 if wrong_digest else f"{size} bytes"
            got = actual if wrong_digest else f"{actual_size} bytes"
            error = _checksum_error(target, str(expected), got, f"downloaded from {url}; the bad download was deleted")
            raise error
        os.replace(part, target)
        info = target.stat()
        stamp_fields: dict[str, object] = {
            "sha256": actual,
            "size": info.st_size,
            "mtime_ns": info.st_mtime_ns,
            "url": url,
        }
        if sha256 is None:
            stamp_fields["first_download_sha256"] = actual
        _write_stamp(target, **stamp_fields)
        _DIGEST_MEMO[(str(target.resolve()), info.st_size, info.st_mtime_ns)] = actual
        return target


# ============================================================================ registry-level API
def ensure_file(
    remote: RemoteFile,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    dataset: DatasetInfo | None = None,
) -> Path:
    """The local path of ``remote`` under ``root`` (default: the cache), verified; downloads it if needed.

    A present file is re-verified (cheaply, see :func:`file_sha256`); a bad one is moved aside as
    ``<name>.corrupt`` and downloaded again when a URL is known. A missing file without a URL
    raises :class:`DatasetNotAvailableError` with the dataset's instructions.
    """
    root_path = Path(root) if root is not None else data_dir()
    path = remote.local_path(root_path)
    if path.is_file():
        try:
            verify_file(path, remote.sha256, remote.size)
            return path
        except ChecksumError as error:
            moved = _quarantine(path)
            if moved is None or not remote.urls or not download:
                where = f"; it was moved to {moved}" if moved is not None else ""
                raise ChecksumError(f"{error}{where}") from error
            warnings.warn(f"{error}; it was moved to {moved} and is downloaded again", stacklevel=2)
    if not remote.urls:
        raise DatasetNotAvailableError(_manual_message(dataset, [remote], root_path))
    if not download:
        raise DataFileNotFoundError(
            path, f"pass download=True or call hsikit.data.download_dataset({_dataset_name(dataset)!r})"
        )
    return download_file(
        remote.urls, path, sha256=remote.sha256, size=remote.size, retries=retries, timeout=timeout, progress=progress
    )


def download_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    include_optional: bool = True,
    require_checksums: bool = False,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Make every file of dataset ``name`` present and verified under ``root``; return ``root``.

    Args:
        name: registered name (any spelling).
        root: data root (default ``HSIKIT_DATA_DIR`` or ``~/.cache/hsikit``).
        include_optional: also fetch companion files the loader does not need.
        require_checksums: refuse files that have no registered sha256.
        progress, retries, timeout: see :func:`download_file`.

    Raises:
        DatasetNotAvailableError: the dataset (or one of its files) must be downloaded by hand;
            the message holds the step-by-step instructions.
        ChecksumError, DownloadError: see :func:`download_file`.
    """
    info = dataset_info(name)
    root_path = Path(root) if root is not None else data_dir()
    if info.required_layout:
        if all(any(root_path.glob(pattern)) for pattern in info.required_layout):
            return root_path
        raise DatasetNotAvailableError(_manual_message(info, [], root_path))
    manual_missing: list[RemoteFile] = []
    for remote in info.files:
        if not remote.required and not include_optional:
            continue
        if require_checksums and remote.sha256 is None:
            raise DatasetNotAvailableError(
                f"{info.name}: {remote.path} has no registered sha256 and require_checksums=True; "
                "fetch and check it by hand, or pass require_checksums=False (it is then recorded as unverified)"
            )
        path = remote.local_path(root_path)
        if not remote.urls and not path.is_file():
            if remote.required:
                manual_missing.append(remote)
            continue
        try:
            ensure_file(remote, root_path, progress=progress, retries=retries, timeout=timeout, dataset=info)
        except (DownloadError, DatasetNotAvailableError) as error:
            if remote.required:
                raise
            warnings.warn(f"{info.name}: optional file {remote.path} skipped: {error}", stacklevel=2)
    if manual_missing:
        raise DatasetNotAvailableError(_manual_message(info, manual_missing, root_path))
    return root_path


def _dataset_name(info: DatasetInfo | None) -> str:
    return info.name if info is not None else "<name>"


def _manual_message(info: DatasetInfo | None, missing: list[RemoteFile], root: Path) -> str:
    if info is None:
        listing = ", ".join(str(f.local_path(root)) for f in missing)
        return f"{listing}: no download URL is registered; place the file there by hand"
    if info.instructions:
        head = f"{info.name} ({info.title}) cannot be downloaded automatically"
        if missing:
            head += ": missing " + ", ".join(str(f.local_path(root)) for f in missing)
        return f"{head}.\n{info.instructions}\n(data root here: {root})"
    lines = [f"{info.name} ({info.title}): these files have no direct download URL and must be fetched by hand:"]
    for remote in missing:
        digest = f"sha256 {remote.sha256}" if remote.sha256 else "sha256 not registered"
        lines.append(f"  {remote.local_path(root)}  ({digest})")
    lines.append("Get them from: " + "; ".join(info.homepage))
    return "\n".join(lines)


@dataclass(frozen=True)
class FileStatus:
    """State of one registered file under a root.

    ``state`` is ``"verified"`` (registered digest matches), ``"unverified"`` (present, no digest
    registered), ``"missing"`` or ``"corrupt"`` (wrong size or digest; ``detail`` says which).
    """

    path: Path
    state: FileState
    required: bool
    detail: str = ""


def dataset_status(name: str, root: str | os.PathLike[str] | None = None) -> list[FileStatus]:
    """The :class:`FileStatus` of every registered file of ``name`` under ``root`` (hashes present files)."""
    info = dataset_info(name)
    root_path = Path(root) if root is not None else data_dir()
    statuses = []
    for remote in info.files:
        path = remote.local_path(root_path)
        if not path.is_file():
            statuses.append(FileStatus(path, "missing", remote.required))
            continue
        try:
            state = verify_file(path, remote.sha256, remote.size)
            statuses.append(FileStatus(path, state, remote.required))
        except ChecksumError as error:
            statuses.append(FileStatus(path, "corrupt", remote.required, str(error)))
    return statuses


def write_arad1k_split_lists(root: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Write the MST++ split files ``<root>/arad1k/split_txt/{train_list,valid_list}.txt``.

    One scene name per line without extension (``ARAD_1K_0001``), 897 training and 50
    validation names (:func:`~hsikit.data.registry.arad1k_split_names`); each file is written
    atomically. Returns the two paths.
    """
    folder = (Path(root) if root is not None else data_dir()) / "arad1k" / "split_txt"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for split, file_name in (("train", "train_list.txt"), ("valid", "valid_list.txt")):
        target = folder / file_name
        with atomic_path(target) as tmp:
            tmp.write_text("".join(f"{name}\n" for name in arad1k_split_names(split)), encoding="ascii")
        written.append(target)
    return written[0], written[1]
