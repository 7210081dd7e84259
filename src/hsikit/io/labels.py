"""Label rasters: class maps as ``(H, W)`` integer arrays, read from and written to many formats.

:func:`open_labels` reads GeoTIFF, ``.npy``, ``.npz``, ``.mat`` (v7.3 transposed
like cubes, see :mod:`hsikit.io.matlab`), PNG, ENVI (single band), the original
ERDAS 7.x ``.gis``/``.lan`` files (Purdue's Indian Pines ground truth
``92AV3GT.GIS``) and LabelMe JSON polygons. :func:`save_labels` writes GeoTIFF
(with CRS and transform), ``.npy``, PNG and ``.mat``, atomically.

ERDAS 7.x LAN/GIS layout
------------------------
A 128-byte little-endian header, then the pixels band-interleaved by line:

=======  ======  =========================================================
offset   type    field
=======  ======  =========================================================
0        char6   ``HEAD74`` (ERDAS 7.4) or ``HEADER`` (older: width/height as float32)
6        int16   pack type: 0 = 8 bit, 1 = 4 bit, 2 = 16 bit (signed)
8        int16   number of bands
16       int32   columns (width)
20       int32   rows (height)
24, 28   int32   x, y of the first pixel in the source image
88       int16   map type
90       int16   number of classes (GIS files)
106      int16   area unit
108      float32 area per pixel
112,116  float32 map x, y of the centre of the upper-left pixel
120,124  float32 pixel width, height in map units
=======  ======  =========================================================

All fields share one byte order, usually little-endian; a big-endian header is
recognised by its fields (the band count reads as 0 in the wrong order).
4-bit pixels are packed two per byte, the first pixel in the high nibble, each
band line starting on a byte. These choices follow GDAL's LAN driver, against
which the tests check this reader.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from hsikit.cube import Cube, crs_to_string
from hsikit.errors import (
    CorruptFileError,
    InvalidLabelsError,
    ShapeMismatchError,
    UnsupportedFormatError,
)
from hsikit.io.atomic import atomic_path
from hsikit.io.common import ArrayCubeReader, as_label_map, require_file, smallest_label_dtype

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAN_MAGICS = (b"HEAD74", b"HEADER")
LABEL_EXTENSIONS = (".tif", ".tiff", ".npy", ".npz", ".mat", ".png", ".gis", ".lan", ".json", ".hdr", ".img")
LABEL_WRITE_EXTENSIONS = (".tif", ".tiff", ".npy", ".png", ".mat")


# ---------------------------------------------------------------------- ERDAS LAN / GIS
@dataclass(frozen=True)
class ErdasLanHeader:
    """The fields of an ERDAS 7.x ``.lan``/``.gis`` header (see the module docstring)."""

    version: str
    pack_type: int
    bands: int
    width: int
    height: int
    x_start: int
    y_start: int
    map_type: int
    classes: int
    area_unit: int
    pixel_area: float
    map_x: float
    map_y: float
    cell_x: float
    cell_y: float
    byte_order: str

    @property
    def bits(self) -> int:
        """Bits per pixel: 4, 8 or 16."""
        return {0: 8, 1: 4, 2: 16}[self.pack_type]

    @property
    def row_bytes(self) -> int:
        """Bytes of one band of one row."""
        return (self.width * self.bits + 7) // 8

    @property
    def data_bytes(self) -> int:
        """Bytes of pixel data the header describes."""
        return self.height * self.bands * self.row_bytes

    @property
    def transform(self) -> Affine | None:
        """Affine transform (upper-left corner), or None when the header has no cell size."""
        if self.cell_x <= 0 or self.cell_y <= 0:
            return None
        left = self.map_x - self.cell_x / 2
        top = self.map_y + self.cell_y / 2
        return Affine(self.cell_x, 0.0, left, 0.0, -self.cell_y, top)


def read_erdas_lan_header(path: str | os.PathLike) -> ErdasLanHeader:
    """Parse the 128-byte header of an ERDAS 7.x file.

    Raises:
        CorruptFileError: not an ERDAS LAN/GIS file, or a header whose fields make no sense.
    """
    path = require_file(path)
    with open(path, "rb") as handle:
        raw = handle.read(128)
    if len(raw) < 128 or raw[:6] not in LAN_MAGICS:
        raise CorruptFileError(
            f"'{path}' is not an ERDAS 7.x LAN/GIS file (expected a 128-byte header starting with HEAD74 or HEADER)"
        )
    version = raw[:6].decode("ascii")
    for order in ("<", ">"):
        pack, bands = struct.unpack_from(f"{order}hh", raw, 6)
        if version == "HEAD74":
            width, height = struct.unpack_from(f"{order}ii", raw, 16)
        else:  # pre-7.4 files store the image size as 32-bit floats
            width, height = (int(v) for v in struct.unpack_from(f"{order}ff", raw, 16))
        x_start, y_start = struct.unpack_from(f"{order}ii", raw, 24)
        if pack in (0, 1, 2) and bands > 0 and width > 0 and height > 0:
            break
    else:
        raise CorruptFileError(
            f"'{path}': ERDAS header fields make no sense (pack type {pack}, {bands} bands, {width}x{height}); "
            "the file is damaged"
        )
    map_type, classes = struct.unpack_from(f"{order}hh", raw, 88)
    (area_unit,) = struct.unpack_from(f"{order}h", raw, 106)
    pixel_area, map_x, map_y, cell_x, cell_y = struct.unpack_from(f"{order}fffff", raw, 108)
    return ErdasLanHeader(
        version,
        int(pack),
        int(bands),
        int(width),
        int(height),
        int(x_start),
        int(y_start),
        int(map_type),
        int(classes),
        int(area_unit),
        float(pixel_area),
        float(map_x),
        float(map_y),
        float(cell_x),
        float(cell_y),
        order,
    )


def read_erdas_lan(path: str | os.PathLike) -> tuple[np.ndarray, ErdasLanHeader]:
    """Pixels of an ERDAS 7.x ``.lan``/``.gis`` file as ``(bands, H, W)`` and its header.

    Raises:
        CorruptFileError: bad header, or a data section shorter than the header says.
    """
    path = Path(path)
    header = read_erdas_lan_header(path)
    actual = path.stat().st_size - 128
    if actual < header.data_bytes:
        raise CorruptFileError(
            f"'{path}': the header describes {header.bands} band(s) of {header.height}x{header.width} "
            f"{header.bits}-bit pixels ({header.data_bytes} bytes) but the file holds {actual}; it is truncated"
        )
    with open(path, "rb") as handle:
        handle.seek(128)
        raw = np.frombuffer(handle.read(header.data_bytes), dtype=np.uint8)
    if header.bits == 16:
        values = raw.view(np.dtype(f"{header.byte_order}i2")).reshape(header.height, header.bands, header.width)
    elif header.bits == 8:
        values = raw.reshape(header.height, header.bands, header.width)
    else:
        packed = raw.reshape(header.height, header.bands, header.row_bytes)
        nibbles = np.stack([packed >> 4, packed & 0x0F], axis=-1).reshape(header.height, header.bands, -1)
        values = nibbles[..., : header.width]
    # Band-interleaved by line: (rows, bands, cols) → (bands, rows, cols).
    return np.ascontiguousarray(values.transpose(1, 0, 2)).astype(values.dtype.newbyteorder("=")), header


class ErdasLanReader(ArrayCubeReader):
    """An ERDAS 7.x ``.lan``/``.gis`` image as a cube (loaded in memory)."""

    def __init__(self, path: str | os.PathLike) -> None:
        array, header = read_erdas_lan(path)
        metadata = {
            "source": os.fspath(path),
            "format": "erdas-lan",
            "erdas_version": header.version,
            "classes": header.classes,
            "map_type": header.map_type,
        }
        super().__init__(array, path, transform=header.transform, metadata=metadata)


# ---------------------------------------------------------------------- PNG
def read_png_labels(path: str | os.PathLike, colour_mapping: Mapping[Any, int] | None = None) -> np.ndarray:
    """A PNG class map as ``(H, W)``: palette indices (mode P), grey values (L, I;16), or colours mapped by
    ``colour_mapping`` ({(r, g, b): id}) for RGB images.

    Raises:
        CorruptFileError: unreadable or truncated PNG.
        InvalidLabelsError: an RGB image without ``colour_mapping``, or a colour missing from it.
    """
    from PIL import Image, UnidentifiedImageError

    path = require_file(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CorruptFileError(f"'{path}': cannot decode the image ({error}); it is truncated or damaged") from error
    if mode in ("P", "L", "I;16", "I", "1", "I;16B", "I;16L"):
        return as_label_map(array, str(path))
    if mode == "LA":
        return as_label_map(array[..., 0], str(path))
    if mode in ("RGB", "RGBA"):
        rgb = array[..., :3]
        if colour_mapping is None:
            if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
                return as_label_map(rgb[..., 0], str(path))
            raise InvalidLabelsError(
                f"'{path}' is a colour (RGB) mask; pass class_mapping={{(r, g, b): class_id, ...}} to turn colours "
                "into class ids (or save it as a palette / grey PNG)"
            )
        keys = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        out = np.full(keys.shape, -1, dtype=np.int64)
        for colour, class_id in colour_mapping.items():
            r, g, b = (int(v) for v in colour)
            out[keys == ((r << 16) | (g << 8) | b)] = int(class_id)
        if (out < 0).any():
            row, col = (int(v) for v in np.argwhere(out < 0)[0])
            raise InvalidLabelsError(
                f"'{path}': colour {tuple(int(v) for v in rgb[row, col])} at row {row}, col {col} is not in "
                "class_mapping; add it"
            )
        return as_label_map(out, str(path))
    raise InvalidLabelsError(f"'{path}': PNG mode {mode!r} is not a class map (use palette, grey or RGB)")


def write_png_labels(labels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``(H, W)`` class map as an 8-bit (ids ≤ 255) or 16-bit (≤ 65535) grey PNG, atomically."""
    from PIL import Image

    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise InvalidLabelsError(
            f"'{path}': PNG stores class ids 0..65535, these range {labels.min()}..{labels.max()}; use .tif or .npy"
        )
    if labels.size == 0 or labels.max() <= 255:
        image = Image.fromarray(labels.astype(np.uint8), mode="L")
    else:
        image = Image.fromarray(labels.astype(np.uint16))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


# ---------------------------------------------------------------------- dispatch
def _detect(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(8)
    suffix = path.suffix.lower()
    by_suffix = {
        ".tif": "geotiff",
        ".tiff": "geotiff",
        ".npy": "npy",
        ".npz": "npz",
        ".mat": "mat",
        ".png": "png",
        ".gis": "erdas-lan",
        ".lan": "erdas-lan",
        ".json": "labelme",
        ".hdr": "envi",
    }
    if suffix in by_suffix:
        return by_suffix[suffix]
    from hsikit.io.dispatch import detect_format

    return detect_format(path, head=head)


def _expected_hw(expected_shape: Any) -> tuple[int, int] | None:
    if expected_shape is None:
        return None
    if isinstance(expected_shape, Cube):
        return expected_shape.height, expected_shape.width
    shape = getattr(expected_shape, "shape", expected_shape)
    shape = tuple(int(v) for v in shape)
    if len(shape) not in (2, 3):
        raise ShapeMismatchError(f"expected_shape must be (H, W) or (bands, H, W), got {shape}")
    return shape[-2], shape[-1]


def check_label_shape(labels: np.ndarray, expected_shape: Any, source: str) -> None:
    """Raise :class:`ShapeMismatchError` when ``labels`` is not ``(H, W)`` of ``expected_shape``."""
    expected = _expected_hw(expected_shape)
    if expected is None or labels.shape == expected:
        return
    hint = (
        " They look transposed (swap the axes: labels.T), or the file stores them column-major."
        if labels.shape[::-1] == expected
        else " Use the label file that belongs to this cube (or crop/resample one of them)."
    )
    raise ShapeMismatchError(
        f"'{source}': labels of shape {labels.shape} do not match the cube's (H, W) = {expected}.{hint}"
    )


def _apply_value_mapping(labels: np.ndarray, mapping: Mapping[Any, int], source: str) -> np.ndarray:
    try:
        pairs = {int(k): int(v) for k, v in mapping.items()}
    except (TypeError, ValueError) as error:
        raise InvalidLabelsError(
            f"'{source}': class_mapping for a raster must map stored values (ints) to class ids, got {dict(mapping)}"
        ) from error
    out = labels.astype(np.int64, copy=True)
    for old, new in pairs.items():
        out[labels == old] = new
    if out.size == 0:
        return out.astype(labels.dtype)
    return out.astype(smallest_label_dtype(int(out.min()), int(out.max())))


def open_labels(
    path: str | os.PathLike,
    key: str | None = None,
    expected_shape: Any = None,
    class_mapping: Mapping[Any, int] | None = None,
    *,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read a class map as an ``(H, W)`` integer array.

    Args:
        path: ``.tif``/``.tiff``, ``.npy``, ``.npz``, ``.mat``, ``.png``, ``.gis``/``.lan``,
            ``.json`` (LabelMe) or ENVI (``.hdr``) file.
        key: variable/entry name in ``.mat``/``.npz`` (None: the single 2-D integer array).
        expected_shape: ``(H, W)``, ``(bands, H, W)`` or a Cube the labels must match.
        class_mapping: LabelMe: label name → id (None: 1, 2... in order of first appearance).
            PNG in colour: ``{(r, g, b): id}``. Other rasters: stored value → id
            (values not named are kept).
        shape: ``(H, W)`` for LabelMe files without an image size (defaults to ``expected_shape``).

    Returns:
        ``(H, W)`` integer array (integer sources keep their dtype; others get the
        smallest integer dtype holding the ids).

    Raises:
        DataFileNotFoundError, UnsupportedFormatError, CorruptFileError, MatKeyError,
        InvalidLabelsError, ShapeMismatchError (labels of another size than ``expected_shape``).
    """
    path = require_file(path)
    kind = _detect(path)
    source = str(path)
    mapping_done = False
    if kind == "geotiff":
        from hsikit.io.geotiff import read_geotiff_labels

        array, _ = read_geotiff_labels(path)
        labels = as_label_map(array, source)
    elif kind == "npy":
        from hsikit.io.numpy import read_npy_labels

        labels = read_npy_labels(path)
    elif kind == "npz":
        from hsikit.io.numpy import read_npz_labels

        labels, _ = read_npz_labels(path, key)
    elif kind == "mat":
        from hsikit.io.matlab import read_mat_labels

        labels, _ = read_mat_labels(path, key)
    elif kind == "png":
        colours = None
        if class_mapping and all(isinstance(k, tuple) for k in class_mapping):
            colours, mapping_done = class_mapping, True
        labels = read_png_labels(path, colours)
    elif kind == "erdas-lan":
        array, header = read_erdas_lan(path)
        if header.bands != 1:
            raise InvalidLabelsError(
                f"'{path}': an ERDAS file with {header.bands} bands is an image, not labels; use open_cube"
            )
        labels = as_label_map(array[0], source)
    elif kind == "labelme":
        from hsikit.io.labelme import labelme_to_mask

        wanted = shape if shape is not None else _expected_hw(expected_shape)
        labels, _ = labelme_to_mask(path, class_mapping, wanted)
        mapping_done = True
    elif kind == "envi":
        from hsikit.io.envi import EnviReader

        with EnviReader(path) as reader:
            if reader.bands != 1:
                raise InvalidLabelsError(f"'{path}': an ENVI file with {reader.bands} bands is not a label map")
            labels = as_label_map(reader.read_array()[0], source)
    else:
        raise UnsupportedFormatError(
            f"'{path}': cannot read labels from a {kind!r} file; label formats: {', '.join(LABEL_EXTENSIONS)}"
        )
    if class_mapping is not None and not mapping_done:
        labels = _apply_value_mapping(labels, class_mapping, source)
    check_label_shape(labels, expected_shape, source)
    return labels


def save_labels(
    labels: np.ndarray,
    path: str | os.PathLike,
    *,
    crs: Any = None,
    transform: Any = None,
    like: Any = None,
    nodata: float | None = None,
    format: str | None = None,
    compress: str | None = "deflate",
    key: str = "labels",
) -> Path:
    """Write an ``(H, W)`` class map atomically; returns ``path``.

    Args:
        labels: ``(H, W)`` integer array.
        path: target; the extension picks the format unless ``format=`` is given
            (``"geotiff"``, ``"npy"``, ``"png"``, ``"mat"``).
        crs, transform: georeference for GeoTIFF (default: those of ``like``).
        like: a Cube or CubeReader whose CRS/transform (and shape, checked) the labels share.
        nodata: GeoTIFF nodata value (e.g. 0 for "unlabelled").
        compress: GeoTIFF compression (default deflate).
        key: variable name for ``.mat``.
    """
    path = Path(path)
    source = str(path)
    labels = as_label_map(labels, source)
    if like is not None:
        check_label_shape(labels, (like.height, like.width), source)
        crs = crs if crs is not None else like.crs
        transform = transform if transform is not None else like.transform
    kind = (format or "").lower() or {
        ".tif": "geotiff",
        ".tiff": "geotiff",
        ".npy": "npy",
        ".png": "png",
        ".mat": "mat",
    }.get(path.suffix.lower(), "")
    if kind in ("geotiff", "tif", "tiff", "gtiff"):
        from hsikit.io.geotiff import GeoTiffWriter

        with GeoTiffWriter(
            path,
            (1, *labels.shape),
            labels.dtype,
            crs=crs_to_string(crs),
            transform=transform,
            nodata=nodata,
            compress=compress,
        ) as writer:
            from hsikit.cube import Window

            writer.write_window(labels[np.newaxis], Window(0, 0, *labels.shape))
        return path
    if kind == "npy":
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, labels, allow_pickle=False)
        return path
    if kind == "png":
        return write_png_labels(labels, path)
    if kind == "mat":
        from scipy.io import savemat

        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            savemat(handle, {key: labels}, do_compression=True)
        return path
    raise UnsupportedFormatError(
        f"'{path}': cannot write labels as {path.suffix or format!r}; use one of {', '.join(LABEL_WRITE_EXTENSIONS)}"
    )


__all__ = [
    "open_labels",
    "save_labels",
    "check_label_shape",
    "read_erdas_lan",
    "read_erdas_lan_header",
    "ErdasLanHeader",
    "ErdasLanReader",
    "read_png_labels",
    "write_png_labels",
]
