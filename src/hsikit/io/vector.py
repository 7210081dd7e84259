"""Class maps to vector polygons: raster (H, W) of class ids → GeoDataFrame → GeoPackage / shapefile.

:func:`polygonize` traces every connected region of equal class id
(``rasterio.features.shapes``) into a polygon in map coordinates, using the
raster's affine transform, and returns a :class:`geopandas.GeoDataFrame` with
the columns ``class_id``, ``class_name``, ``area`` and ``geometry`` in the
raster's CRS. ``area`` is the planar polygon area in CRS units squared: square
metres for a projected CRS in metres such as UTM (for a geographic CRS it would
be square degrees, which mean little: reproject first).

:func:`write_vector` writes such a frame atomically: to a hidden temporary
folder beside the target, then every file (a shapefile's ``.shp``, ``.shx``,
``.dbf``, ``.prj``, ``.cpg``) is renamed into place, the ``.shp`` last, so a
reader never opens a half-written layer. :func:`vectorize` does both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from hsikit.cube import Cube, as_affine, crs_to_string
from hsikit.errors import InvalidCubeError, UnsupportedFormatError

if TYPE_CHECKING:  # geopandas is imported when a function runs: it is slow to import
    import geopandas as gpd

COLUMNS: tuple[str, ...] = ("class_id", "class_name", "area", "geometry")

#: file extension → OGR driver
VECTOR_DRIVERS: dict[str, str] = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON"}

# every file an ESRI shapefile may consist of (lower case)
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".shp.xml")

ClassNames = Sequence[str] | Mapping[int, str]


def _class_raster(classes: np.ndarray | Cube) -> tuple[np.ndarray, str]:
    """The ``(H, W)`` integer array of ``classes`` and a label for messages."""
    label = classes.source_label if isinstance(classes, Cube) else "<array>"
    array = classes.data if isinstance(classes, Cube) else np.asarray(classes)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise InvalidCubeError(
            f"{label}: a class raster must be (H, W) or (1, H, W); got shape {array.shape}. "
            "Take the argmax over the class axis first (or pick one band)"
        )
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    if array.dtype.kind not in "iu":
        raise InvalidCubeError(
            f"{label}: a class raster must hold integers, got {array.dtype}; "
            "convert it first, e.g. np.rint(values).astype('int32')"
        )
    if array.dtype in (np.uint8, np.uint16, np.int16, np.int32):
        return np.ascontiguousarray(array), label
    if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
        raise InvalidCubeError(f"{label}: class ids must fit in int32, got values up to {array.max()}")
    return array.astype(np.int32), label


def _name_of(class_id: int, class_names: ClassNames | None) -> str:
    if isinstance(class_names, Mapping):
        return str(class_names.get(class_id, f"class_{class_id}"))
    if class_names is not None and 0 <= class_id < len(class_names):
        return str(class_names[class_id])
    return f"class_{class_id}"


def polygonize(
    classes: np.ndarray | Cube,
    transform: Affine | Sequence[float] | None = None,
    crs: Any = None,
    *,
    class_names: ClassNames | None = None,
    background: int | Sequence[int] | None = 0,
    nodata: int | None = None,
    min_area: float = 0.0,
    dissolve: bool = False,
    connectivity: int = 4,
) -> gpd.GeoDataFrame:
    """Trace the regions of a class raster into polygons.

    Args:
        classes: ``(H, W)`` (or ``(1, H, W)``) integer class ids, or a one-band
            :class:`Cube` (its transform, CRS and nodata are used unless given here).
        transform: affine pixel-to-map transform; None (and no Cube transform)
            gives polygons in pixel coordinates (x = column, y = row).
        crs: coordinate reference system of the transform (``"EPSG:32647"``, WKT...).
        class_names: names by class id, a sequence indexed by id or a mapping;
            ids without a name are called ``class_<id>``.
        background: class id(s) to leave out (default 0); None keeps every class.
        nodata: class id marking pixels without a prediction, left out.
        min_area: drop polygons smaller than this many CRS units squared
            (square metres for UTM) before dissolving.
        dissolve: merge all polygons of a class into one (multi)polygon row.
        connectivity: 4 (edge neighbours, default) or 8 (also diagonal) pixel connectivity.

    Returns:
        GeoDataFrame with columns ``class_id`` (int), ``class_name`` (str),
        ``area`` (float, CRS units squared) and ``geometry``, in ``crs``.
    """
    import geopandas as gpd
    import rasterio.features
    from shapely.geometry import shape

    array, label = _class_raster(classes)
    if isinstance(classes, Cube):
        transform = classes.transform if transform is None else transform
        crs = classes.crs if crs is None else crs
        if nodata is None and classes.nodata is not None and not np.isnan(classes.nodata):
            nodata = int(classes.nodata)
    affine = as_affine(transform) or Affine.identity()
    crs_text = crs_to_string(crs)
    if connectivity not in (4, 8):
        raise InvalidCubeError(f"connectivity={connectivity} is not possible; use 4 or 8")
    if min_area < 0:
        raise InvalidCubeError(f"min_area={min_area} must be >= 0 (CRS units squared)")

    keep = np.ones(array.shape, dtype=bool)
    if background is None:
        excluded: list[int] = []
    elif isinstance(background, (int, np.integer)):
        excluded = [int(background)]
    else:
        excluded = [int(value) for value in background]
    if nodata is not None:
        excluded.append(nodata)
    for value in excluded:
        keep &= array != value

    class_ids: list[int] = []
    geometries = []
    if keep.any():
        for geojson, value in rasterio.features.shapes(array, mask=keep, connectivity=connectivity, transform=affine):
            class_ids.append(int(value))
            geometries.append(shape(geojson))
    frame = gpd.GeoDataFrame(
        {"class_id": np.asarray(class_ids, dtype=np.int64)},
        geometry=gpd.GeoSeries(geometries, crs=crs_text),
        crs=crs_text,
    )
    frame["area"] = frame.geometry.area.astype(np.float64)
    if min_area > 0:
        frame = frame[frame["area"] >= min_area]
    if dissolve and len(frame):
        frame = frame[["class_id", "geometry"]].dissolve(by="class_id", as_index=False)
        frame["area"] = frame.geometry.area.astype(np.float64)
    frame["class_name"] = [_name_of(int(c), class_names) for c in frame["class_id"]]
    frame = frame[list(COLUMNS)].reset_index(drop=True)
    frame.attrs["source"] = label
    return frame


def _driver_for(path: Path, driver: str | None) -> str:
    if driver is not None:
        return driver
    suffix = path.suffix.lower()
    if suffix not in VECTOR_DRIVERS:
        raise UnsupportedFormatError(
            f"{path}: cannot tell the vector format from the extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(VECTOR_DRIVERS)} or pass driver= (an OGR driver name)"
        )
    return VECTOR_DRIVERS[suffix]


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_vector(
    frame: gpd.GeoDataFrame, path: str | os.PathLike, *, driver: str | None = None, layer: str | None = None
) -> Path:
    """Write polygons to a GeoPackage (``.gpkg``), ESRI shapefile (``.shp``) or GeoJSON, atomically.

    An existing file at ``path`` is replaced (for a shapefile, every sidecar of
    the old one goes too). The CRS of ``frame`` is written with it (``.prj`` for
    shapefiles).

    Args:
        frame: a GeoDataFrame such as :func:`polygonize` returns.
        path: target file; the extension picks the format unless ``driver`` is given.
        driver: OGR driver name (``"GPKG"``, ``"ESRI Shapefile"``...).
        layer: layer name inside a GeoPackage (default: the file stem).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    driver_name = _driver_for(target, driver)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        staged = staging / target.name
        options: dict[str, Any] = {"driver": driver_name, "engine": "pyogrio"}
        if driver_name == "GPKG":
            options["layer"] = layer or target.stem
        if len(frame) == 0:
            options["geometry_type"] = "Polygon"
        frame.to_file(staged, **options)
        written = [p for p in staging.iterdir() if p.is_file()]
        main_name = staged.name
        if driver_name == "ESRI Shapefile":
            new_parts = {p.name[len(target.stem) :].lower() for p in written}
            for part in _SHAPEFILE_PARTS:
                old = target.with_name(target.stem + part)
                if part not in new_parts and old.exists():
                    old.unlink()
        for part in written:
            _fsync(part)
        # the file a reader opens (.shp, .gpkg) appears last, when its companions are in place
        for part in sorted(written, key=lambda p: p.name == main_name):
            os.replace(part, target.parent / part.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def vectorize(
    classes: np.ndarray | Cube | str | os.PathLike,
    output: str | os.PathLike,
    *,
    driver: str | None = None,
    layer: str | None = None,
    **options: Any,
) -> gpd.GeoDataFrame:
    """:func:`polygonize` a class raster (array, Cube or raster file) and :func:`write_vector` the result.

    ``options`` are those of :func:`polygonize` (``transform``, ``crs``,
    ``class_names``, ``background``, ``nodata``, ``min_area``, ``dissolve``,
    ``connectivity``). Returns the polygons written.
    """
    if isinstance(classes, (str, os.PathLike)):
        from hsikit.io import open_cube

        classes = open_cube(classes)
    frame = polygonize(classes, **options)
    write_vector(frame, output, driver=driver, layer=layer)
    return frame


__all__ = ["COLUMNS", "VECTOR_DRIVERS", "polygonize", "vectorize", "write_vector"]
