"""Fixtures of the viz tests: the real Indian Pines scene, and PNG checks."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from hsikit import Cube

INDIAN_PINES_CLASSES = [
    "Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees", "Grass-pasture-mowed",
    "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill", "Soybean-clean", "Wheat", "Woods",
    "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers",
]


@pytest.fixture(scope="session")
def indian_pines(shared_data: Path) -> tuple[Cube, np.ndarray]:
    """Indian Pines (200 bands, 145 x 145) with its AVIRIS wavelengths, and its (H, W) labels."""
    folder = shared_data / "indian_pines"
    centres, widths = [], []
    with open(folder / "indian_pines_wavelengths.csv", newline="") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            if row["in_corrected_200"] == "1":  # the 200 bands kept in the corrected cube
                centres.append(float(row["center_nm"]))
                widths.append(float(row["fwhm_nm"]))
    cube = Cube.from_hwc(
        np.load(folder / "Indian_pines_corrected.npy"),
        wavelengths=centres,
        fwhm=widths,
        metadata={"source": str(folder / "Indian_pines_corrected.npy")},
    )
    return cube, np.load(folder / "Indian_pines_gt.npy").astype(np.int64)


@pytest.fixture(scope="session")
def indian_pines_class_names() -> list[str]:
    """The names of Indian Pines classes 1..16."""
    return list(INDIAN_PINES_CLASSES)


def read_png(path: Path) -> np.ndarray:
    """A PNG as uint8 (H, W, 4) RGBA."""
    image = imread(path)
    if image.dtype != np.uint8:
        image = np.round(image * 255).astype(np.uint8)
    if image.shape[2] == 3:
        image = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return image


def distinct_colours(image: np.ndarray) -> int:
    """Number of distinct RGB colours of an (H, W, 3|4) uint8 image."""
    return int(np.unique(image[..., :3].reshape(-1, 3), axis=0).shape[0])


@pytest.fixture(name="read_png")
def read_png_fixture() -> Callable[[Path], np.ndarray]:
    """:func:`read_png` for tests (fixtures work under every pytest import mode)."""
    return read_png


@pytest.fixture(name="distinct_colours")
def distinct_colours_fixture() -> Callable[[np.ndarray], int]:
    """:func:`distinct_colours` for tests."""
    return distinct_colours


# ---------------------------------------------------------------------------- the visualisation suite
@pytest.fixture(scope="session")
def reconstruction_set(indian_pines: tuple[Cube, np.ndarray]) -> dict[str, object]:
    """A real RGB -> 31-band reconstruction problem and two honest baseline predictions.

    The target is Indian Pines resampled to 400:10:700 nm (the offline ARAD-1K proxy recipe:
    dark offset removed, Gaussian 10 nm bands, scaled by the 99.9th percentile, clipped to
    [0.001, 1]); the input is its RGB through the NTIRE 2022 camera (no noise, no JPEG).
    ``linear`` and ``quadratic`` are least-squares regressions from RGB (plus squares and
    products for the quadratic one) to the 31 bands, fitted on the left half of the scene.
    Returns ``{"target": Cube, "rgb": (3, H, W) float, "linear": (31, H, W), "quadratic": ...}``.
    """
    from hsikit.spectral.resample import resample
    from hsikit.spectral.simulate import simulate_rgb

    cube, _ = indian_pines
    grid = np.arange(400.0, 701.0, 10.0)
    radiance = cube.replace(data=np.asarray(cube.data, dtype=np.float64) - 1000.0)
    resampled = np.asarray(resample(radiance, grid, 10.0).data, dtype=np.float64)
    target = np.clip(resampled / np.percentile(resampled, 99.9), 0.001, 1.0).astype(np.float32)
    target_cube = Cube(target, wavelengths=grid, metadata={"units": "reflectance", "source": "indian pines proxy"})
    rgb = simulate_rgb(target_cube, noise="none", jpeg_quality=None, seed=0, output="float")
    features = rgb.reshape(3, -1).T.astype(np.float64)
    values = target.reshape(31, -1).T.astype(np.float64)
    train = (np.arange(features.shape[0]) % target.shape[2]) < target.shape[2] // 2
    ones = np.ones((features.shape[0], 1))

    def fitted(design: np.ndarray) -> np.ndarray:
        weights, *_ = np.linalg.lstsq(design[train], values[train], rcond=None)
        return (design @ weights).T.reshape(target.shape).astype(np.float32)

    products = features[:, [0, 1, 0]] * features[:, [1, 2, 2]]
    return {
        "target": target_cube,
        "rgb": rgb,
        "linear": fitted(np.hstack([features, ones])),
        "quadratic": fitted(np.hstack([features, features**2, products, ones])),
    }


def pdf_is_valid(path: Path) -> bool:
    """A complete PDF: the header, an end-of-file marker, and a ``startxref`` offset pointing at the xref."""
    data = path.read_bytes()
    if not data.startswith(b"%PDF-1.") or not data.rstrip().endswith(b"%%EOF"):
        return False
    tail = data[-1024:]
    position = tail.rfind(b"startxref")
    if position < 0:
        return False
    offset = int(tail[position + len("startxref") :].split()[0])
    return data[offset : offset + 4] == b"xref" or b"/XRef" in data[offset : offset + 200]


def png_metadata(path: Path) -> dict[str, str]:
    """The text entries of a PNG (Description, hsikit:panels...)."""
    from hsikit.viz.report import png_text

    return png_text(path)


def image_panels(image: np.ndarray, min_size: int = 40) -> int:
    """Panels found from the pixels alone: closed dark frames at least ``min_size`` pixels wide and high.

    Every axes of the screen style is framed by four dark spines; colour bars are narrower
    than ``min_size`` and text never draws long straight lines, so the frames are the
    panels. A frame is a dark horizontal run seen again ``min_size`` rows or more further
    down at the same columns, with dark columns joining the two runs at both ends.
    """
    dark = (image[..., :3] < 110).all(axis=2)
    runs: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for y, row in enumerate(dark):
        padded = np.concatenate([[False], row, [False]])
        changes = np.flatnonzero(padded[1:] != padded[:-1])
        for start, stop in zip(changes[::2], changes[1::2]):
            if stop - start >= min_size:
                runs.setdefault((start // 4, stop // 4), []).append((y, start, stop))
    frames: list[tuple[int, int, int, int]] = []
    for (bucket_start, bucket_stop), found in runs.items():
        candidates = [r for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                      for r in runs.get((bucket_start + dx, bucket_stop + dy), [])]
        for top, start, stop in found:
            for bottom, other_start, other_stop in candidates:
                if bottom - top < min_size or abs(other_start - start) > 2 or abs(other_stop - stop) > 2:
                    continue
                left = dark[top:bottom, max(start - 1, 0) : start + 2].any(axis=1).mean()
                right = dark[top:bottom, max(stop - 3, 0) : stop + 1].any(axis=1).mean()
                if left > 0.95 and right > 0.95:
                    frames.append((top, bottom, start, stop))
    def area(frame: tuple[int, int, int, int]) -> int:
        return (frame[1] - frame[0]) * (frame[3] - frame[2])

    def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
        rows = min(a[1], b[1]) - max(a[0], b[0])
        cols = min(a[3], b[3]) - max(a[2], b[2])
        return max(rows, 0) * max(cols, 0)

    # the largest frames first; a frame mostly covered by a kept one is a dark rectangle in the picture
    distinct: list[tuple[int, int, int, int]] = []
    for frame in sorted(frames, key=area, reverse=True):
        if all(overlap(frame, kept) < 0.5 * area(frame) for kept in distinct):
            distinct.append(frame)
    return len(distinct)


def check_figure_files(stem: Path, panels: int, min_size: tuple[int, int] = (150, 150)) -> np.ndarray:
    """Assert ``stem``.png and ``stem``.pdf exist and are sound; returns the PNG as RGBA uint8.

    The PNG must be at least ``min_size`` (height, width), not blank (many colours, contrast),
    and record ``panels`` data panels in its metadata; the PDF must be valid and record the
    same count.
    """
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    assert png.is_file() and pdf.is_file(), f"missing {png} or {pdf}"
    image = read_png(png)
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1], image.shape
    assert image[..., :3].std() > 10, f"{png} looks blank"
    assert distinct_colours(image) > 30, f"{png} has too few colours"
    assert png_metadata(png)["hsikit:panels"] == str(panels)
    assert pdf_is_valid(pdf), f"{pdf} is not a complete PDF"
    assert f"panels={panels}".encode() in pdf.read_bytes()
    return image


@pytest.fixture(name="check_figure_files")
def check_figure_files_fixture() -> Callable[..., np.ndarray]:
    """:func:`check_figure_files` for tests."""
    return check_figure_files


@pytest.fixture(name="image_panels")
def image_panels_fixture() -> Callable[..., int]:
    """:func:`image_panels` for tests."""
    return image_panels


@pytest.fixture(name="pdf_is_valid")
def pdf_is_valid_fixture() -> Callable[[Path], bool]:
    """:func:`pdf_is_valid` for tests."""
    return pdf_is_valid


@pytest.fixture(name="png_metadata")
def png_metadata_fixture() -> Callable[[Path], dict[str, str]]:
    """:func:`png_metadata` for tests."""
    return png_metadata
