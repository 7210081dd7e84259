"""Windowed raster reading and writing, shared by every format.

:class:`CubeReader` opens a file *without* loading its pixels and reads any
window as a :class:`~hsikit.cube.Cube` (with the window's transform). This is how
scenes larger than memory are streamed by :mod:`hsikit.inference`.
:class:`CubeWriter` creates an output of known shape and georeference and
accepts windows in any order; ``close()`` renames the finished file into place
(atomic: an interrupted run leaves no complete-looking file).

Format modules (``geotiff.py``, ``envi.py``, ``numpy.py``, ``matlab.py``)
subclass these; :func:`hsikit.io.open_reader` and :func:`hsikit.io.create_writer`
dispatch by extension.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from hsikit.cube import Cube, Window


class CubeReader(abc.ABC):
    """Lazy access to a cube on disk.

    Attributes set by subclasses: ``path``, ``shape`` (bands, H, W), ``dtype``,
    ``wavelengths``, ``fwhm``, ``band_names``, ``crs``, ``transform``, ``nodata``,
    ``metadata``.
    """

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    wavelengths: np.ndarray | None = None
    fwhm: np.ndarray | None = None
    band_names: list[str] | None = None
    crs: str | None = None
    transform: Affine | None = None
    nodata: float | None = None
    metadata: dict[str, Any]

    @property
    def bands(self) -> int:
        return self.shape[0]

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]

    @abc.abstractmethod
    def read_array(self, window: Window | None = None, bands: list[int] | None = None) -> np.ndarray:
        """Pixels of ``window`` (whole image when None) as a ``(bands, h, w)`` array."""

    def read(self, window: Window | None = None, bands: list[int] | None = None, nonfinite: str = "error") -> Cube:
        """``window`` (and optionally a subset of ``bands``) as a Cube with the right transform."""
        array = self.read_array(window, bands)
        transform = self.transform
        if window is not None and transform is not None:
            transform = transform @ Affine.translation(window.col_off, window.row_off)
        index = slice(None) if bands is None else list(bands)
        return Cube(
            array,
            wavelengths=None if self.wavelengths is None else self.wavelengths[index],
            fwhm=None if self.fwhm is None else self.fwhm[index],
            band_names=None if self.band_names is None else list(np.asarray(self.band_names, dtype=object)[index]),
            crs=self.crs,
            transform=transform,
            nodata=self.nodata,
            metadata=dict(self.metadata),
            nonfinite=nonfinite,  # type: ignore[arg-type]
        )

    def close(self) -> None:
        """Release file handles (also called by ``with``)."""

    def __enter__(self) -> CubeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CubeWriter(abc.ABC):
    """Create a raster of shape ``(bands, H, W)`` and fill it window by window.

    The data go to a temporary sibling file; :meth:`close` renames it onto the
    target. Leaving the ``with`` block through an exception removes it instead.
    """

    path: Path
    shape: tuple[int, int, int]

    @abc.abstractmethod
    def write_window(self, array: np.ndarray, window: Window) -> None:
        """Write a ``(bands, h, w)`` array at ``window``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Finish the file and move it into place."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard the partial output."""

    def __enter__(self) -> CubeWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
