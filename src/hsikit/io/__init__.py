"""Reading and writing hyperspectral cubes and label maps.

One entry point per task, whatever the format:

* :func:`open_cube` / :func:`save_cube`: a whole :class:`~hsikit.cube.Cube` (``(bands, H, W)``);
* :func:`open_reader` / :func:`create_writer`: window-by-window access for scenes larger than memory;
* :func:`open_labels` / :func:`save_labels`: ``(H, W)`` class maps (also LabelMe polygons and ERDAS ``.gis``);
* :func:`read_wavelength_table`: band centres/FWHM from a CSV or text file.

Formats: GeoTIFF (rasterio), ENVI (spectral), MATLAB v5/v7.3 (scipy/h5py), NumPy
``.npy``/``.npz``, ERDAS 7.x ``.lan``/``.gis``, PNG and LabelMe JSON (labels).
Importing this package is cheap: rasterio, h5py and spectral load on first use.
"""

from __future__ import annotations

from hsikit.io.base import CubeReader, CubeWriter
from hsikit.io.dispatch import create_writer, detect_format, open_cube, open_reader, save_cube, supported_extensions
from hsikit.io.labels import open_labels, save_labels
from hsikit.io.layout import resolve_layout
from hsikit.io.wavelengths import WavelengthTable, load_wavelengths, read_wavelength_table

__all__ = [
    "CubeReader",
    "CubeWriter",
    "WavelengthTable",
    "create_writer",
    "detect_format",
    "load_wavelengths",
    "open_cube",
    "open_labels",
    "open_reader",
    "read_wavelength_table",
    "resolve_layout",
    "save_cube",
    "save_labels",
    "supported_extensions",
]
