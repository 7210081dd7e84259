"""Every writer goes through a temporary file + rename: a failure mid-write leaves nothing behind,
and an existing target keeps its old content."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hsikit import Cube, Window
from hsikit.io import create_writer, matlab, save_cube, save_labels
from hsikit.io.envi import EnviWriter
from hsikit.io.geotiff import GeoTiffWriter
from hsikit.io.numpy import NpyWriter


class Interrupted(RuntimeError):
    """The failure injected in the middle of a write."""


def fail_after(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a writing step: it runs (bytes reach the temporary file), then the write is interrupted."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        raise Interrupted("disk full (simulated)")

    return wrapper


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


CUBE_CASES = {
    "geotiff": ("scene.tif", {}, GeoTiffWriter, "write_window"),
    "envi": ("scene.hdr", {}, EnviWriter, "write_window"),
    "npy": ("scene.npy", {}, NpyWriter, "write_window"),
    "mat-v5": ("scene.mat", {}, matlab, "_write_v5"),
    "mat-v7.3": ("scene.mat", {"format": "v7.3"}, matlab, "_write_v73"),
    "npz": ("scene.npz", {}, np, "savez"),
}


@pytest.mark.parametrize("case", sorted(CUBE_CASES))
@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_interrupted_save_cube_leaves_no_file(
    case: str, existing: bool, small_cube: Cube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, options, owner, attribute = CUBE_CASES[case]
    target = tmp_path / name
    if existing:
        save_cube(small_cube, target, **options)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(owner, attribute, fail_after(getattr(owner, attribute)))
    changed = small_cube.replace(data=small_cube.data * 2)
    with pytest.raises(Interrupted):
        save_cube(changed, target, **options)
    assert listing(tmp_path) == sorted(before), "no partial or temporary file may remain"
    for file_name, content in before.items():
        assert (tmp_path / file_name).read_bytes() == content


LABEL_CASES = {
    "geotiff": ("gt.tif", GeoTiffWriter, "write_window"),
    "png": ("gt.png", Image.Image, "save"),
    "npy": ("gt.npy", np, "save"),
}


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_interrupted_save_labels_keeps_the_old_file(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    name, owner, attribute = LABEL_CASES[case]
    target = tmp_path / name
    save_labels(rng.integers(0, 5, (12, 9)).astype(np.uint8), target)
    old = target.read_bytes()
    monkeypatch.setattr(owner, attribute, fail_after(getattr(owner, attribute)))
    with pytest.raises(Interrupted):
        save_labels(np.ones((12, 9), dtype=np.uint8), target)
    assert listing(tmp_path) == [name] and target.read_bytes() == old


@pytest.mark.parametrize("name", ["out.tif", "out.hdr", "out.npy"])
def test_exception_inside_writer_block_discards_the_output(name: str, small_cube: Cube, tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        with create_writer(tmp_path / name, small_cube.shape, np.float32) as writer:
            writer.write_window(small_cube.data[:, :10], Window(0, 0, 10, 30))
            raise Interrupted("model crashed half-way")
    assert listing(tmp_path) == []
