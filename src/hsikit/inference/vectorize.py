"""Vectorise a class raster of any size in bounded memory: strips → polygons → merged across strips.

:func:`hsikit.io.vector.polygonize` traces a whole ``(H, W)`` class map held in memory.
:func:`vectorize_raster` gives the same polygons for a class raster on disk while reading
it ``strip_rows`` rows at a time:

1. each strip is traced in *pixel* coordinates (``rasterio.features.shapes``), where strip
   edges are exact integers;
2. a polygon whose bottom edge lies on the strip's last row boundary may continue below:
   it stays *open*. Polygons of the next strip that share a boundary segment of positive
   length with an open polygon of the same class (4-connectivity: corners do not count)
   are merged with it (union-find over the touching pairs, then ``unary_union``);
3. polygons that can grow no further are *finished*: the area filter is applied, they are
   mapped to the raster's CRS with its affine transform and appended to the output layer
   in batches.

Memory is one strip of the raster, the open polygons and one batch of finished polygons.
An exact polygon can be as large as the scene (one region may cross all of it), so an open
polygon that grows beyond ``max_open_vertices`` vertices is finished at the current strip
edge: that region is then written as several polygons that share edges along strip
boundaries (same class, together exactly the region). With the default budget only regions
of hundreds of thousands of vertices are cut; ``max_open_vertices=None`` merges every
region whole, with memory and time growing with the largest region. The output is written to a hidden staging folder beside the target and renamed
into place at the end (the ``.shp`` last), so an interrupted run leaves no file that looks
complete. Columns: ``class_id``, ``class_name``, ``area`` (CRS units², square metres for
UTM) and ``geometry``, in the raster's CRS, as :func:`hsikit.io.vector.polygonize` makes them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.cube import Window, crs_to_string
from hsikit.errors import ConfigError, InvalidCubeError
from hsikit.io.vector import COLUMNS, VECTOR_DRIVERS

ClassNames = Sequence[str] | Mapping[int, str]

# every file a shapefile may consist of (lower case)
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".shp.xml")


@dataclass
class VectorSummary:
    """What :func:`vectorize_raster` wrote.

    Attributes:
        path: the vector file.
        polygons: number of polygons written.
        polygons_per_class: ``{class_id: count}``.
        area_per_class: ``{class_id: total area}`` in CRS units squared.
        crs: the CRS of the layer (the raster's), or None.
    """

    path: Path
    polygons: int = 0
    polygons_per_class: dict[int, int] = field(default_factory=dict)
    area_per_class: dict[int, float] = field(default_factory=dict)
    crs: str | None = None


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[root_b] = root_a


def _name_of(class_id: int, class_names: ClassNames | None) -> str:
    if isinstance(class_names, Mapping):
        return str(class_names.get(class_id, f"class_{class_id}"))
    if class_names is not None and 0 <= class_id < len(class_names):
        return str(class_names[class_id])
    return f"class_{class_id}"


class _StagedLayer:
    """Appends batches of polygons to a layer in a staging folder; :meth:`commit` renames it into place."""

    def __init__(self, target: Path, driver: str, layer: str | None, crs: str | None) -> None:
        self.target = target
        self.driver = driver
        self.layer = layer or target.stem
        self.crs = crs
        target.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        self.staged = self.staging / target.name
        self.started = False

    def append(self, class_ids: list[int], names: list[str], areas: list[float], geometries: list[Any]) -> None:
        import geopandas as gpd

        frame = gpd.GeoDataFrame(
            {
                "class_id": np.asarray(class_ids, dtype=np.int64),
                "class_name": names,
                "area": np.asarray(areas, dtype=np.float64),
            },
            geometry=gpd.GeoSeries(geometries, crs=self.crs),
            crs=self.crs,
        )[list(COLUMNS)]
        options: dict[str, Any] = {"driver": self.driver, "engine": "pyogrio"}
        if self.driver == "GPKG":
            options["layer"] = self.layer
        if not geometries:
            options["geometry_type"] = "Polygon"
        if self.started:
            options["mode"] = "a"
        frame.to_file(self.staged, **options)
        self.started = True

    def commit(self) -> None:
        if not self.started:
            self.append([], [], [], [])
        written = [p for p in self.staging.iterdir() if p.is_file()]
        if self.driver == "ESRI Shapefile":
            new_parts = {p.name[len(self.target.stem) :].lower() for p in written}
            for part in _SHAPEFILE_PARTS:
                old = self.target.with_name(self.target.stem + part)
                if part not in new_parts and old.exists():
                    old.unlink()
        for part in written:
            with contextlib.suppress(OSError), open(part, "rb+") as handle:
                os.fsync(handle.fileno())
        # the file a reader opens (.shp, .gpkg) appears last, when its companions are in place
        for part in sorted(written, key=lambda p: p.name == self.staged.name):
            os.replace(part, self.target.parent / part.name)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def vectorize_raster(
    source: str | os.PathLike | Any,
    output: str | os.PathLike,
    *,
    class_names: ClassNames | None = None,
    background: int | Sequence[int] | None = 0,
    nodata: int | None = None,
    min_area: float = 0.0,
    strip_rows: int = 512,
    connectivity: int = 4,
    driver: str | None = None,
    layer: str | None = None,
    batch_features: int = 2000,
    max_open_vertices: int | None = 50_000,
) -> VectorSummary:
    """Trace the class regions of a one-band raster into polygons, strip by strip (bounded memory).

    Args:
        source: a class raster file (GeoTIFF...) or an open :class:`~hsikit.io.base.CubeReader`
            with one band of integer class ids.
        output: ``.gpkg``, ``.shp`` or ``.geojson`` (or any OGR format with ``driver=``).
        class_names: names by class id (a sequence indexed by id, or a mapping).
        background: class id(s) left out (default 0); None keeps every class.
        nodata: class id of pixels without a prediction, left out (default: the raster's nodata).
        min_area: drop polygons smaller than this many CRS units squared (after merging).
        strip_rows: raster rows read at a time.
        connectivity: 4 (edge neighbours; default) or 8 (diagonal neighbours too).
        driver: OGR driver name when the extension is not enough.
        layer: GeoPackage layer name (default: the file stem).
        batch_features: finished polygons gathered before each append to the file.
        max_open_vertices: an open polygon with more vertices is finished at the strip edge
            (bounded memory; the region is then split along strip boundaries). None: never.

    Returns:
        :class:`VectorSummary`; the layer has the columns ``class_id``, ``class_name``, ``area``,
        ``geometry`` in the raster's CRS.
    """
    import rasterio.features
    from affine import Affine
    import shapely
    from shapely import STRtree, get_num_coordinates
    from shapely.geometry import shape
    from shapely.ops import unary_union

    if connectivity not in (4, 8):
        raise ConfigError(f"connectivity={connectivity} is not possible; use 4 or 8")
    if strip_rows < 1 or batch_features < 1 or (max_open_vertices is not None and max_open_vertices < 4):
        raise ConfigError(
            f"strip_rows and batch_features must be >= 1 and max_open_vertices >= 4 (or None), got {strip_rows}, "
            f"{batch_features}, {max_open_vertices}"
        )
    if min_area < 0:
        raise ConfigError(f"min_area={min_area} must be >= 0 (CRS units squared)")
    target = Path(output)
    suffix = target.suffix.lower()
    if driver is None:
        if suffix not in VECTOR_DRIVERS:
            raise ConfigError(
                f"{target}: cannot tell the vector format from the extension {suffix or '(none)'!r}; use one of "
                f"{', '.join(VECTOR_DRIVERS)} or pass driver="
            )
        driver = VECTOR_DRIVERS[suffix]

    if isinstance(source, (str, os.PathLike)):
        from hsikit.io import open_reader

        reader, owns = open_reader(source), True
    else:
        reader, owns = source, False
    staged: _StagedLayer | None = None
    try:
        if reader.bands != 1:
            raise InvalidCubeError(
                f"'{reader.path}': a class raster has 1 band, this one has {reader.bands}; vectorise the class map, "
                "not the probabilities"
            )
        if np.dtype(reader.dtype).kind not in "iub":
            raise InvalidCubeError(f"'{reader.path}': a class raster holds integers, got {np.dtype(reader.dtype)}")
        height, width = reader.height, reader.width
        transform = reader.transform if reader.transform is not None else Affine.identity()
        pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
        linear = np.array([[transform.a, transform.b], [transform.d, transform.e]])
        offset = np.array([transform.xoff, transform.yoff])
        crs = crs_to_string(reader.crs)
        if nodata is None and reader.nodata is not None and not np.isnan(reader.nodata):
            nodata = int(reader.nodata)
        excluded: list[int] = []
        if background is not None:
            excluded = [int(background)] if isinstance(background, (int, np.integer)) else [int(v) for v in background]
        if nodata is not None:
            excluded.append(int(nodata))

        summary = VectorSummary(path=target, crs=crs)
        staged = _StagedLayer(target, driver, layer, crs)
        pending: tuple[list[int], list[str], list[float], list[Any]] = ([], [], [], [])

        def finish(class_id: int, geometry: Any) -> None:
            pieces = getattr(geometry, "geoms", [geometry])
            for piece in pieces:
                area = float(piece.area) * pixel_area
                if area < min_area or piece.is_empty:
                    continue
                pending[0].append(class_id)
                pending[1].append(_name_of(class_id, class_names))
                pending[2].append(area)
                pending[3].append(piece)  # pixel coordinates until the batch is written
                summary.polygons += 1
                summary.polygons_per_class[class_id] = summary.polygons_per_class.get(class_id, 0) + 1
                summary.area_per_class[class_id] = summary.area_per_class.get(class_id, 0.0) + area
            if len(pending[0]) >= batch_features:
                flush()

        def flush() -> None:
            if pending[0]:
                assert staged is not None
                # pixel (col, row) -> map (x, y) for the whole batch at once
                mapped = shapely.transform(np.asarray(pending[3], dtype=object), lambda xy: xy @ linear.T + offset)
                staged.append(pending[0], pending[1], pending[2], list(mapped))
                for items in pending:
                    items.clear()

        open_polygons: list[tuple[int, Any]] = []  # (class id, pixel-space polygon) touching the current edge
        for row in range(0, height, strip_rows):
            rows = min(strip_rows, height - row)
            block = np.asarray(reader.read_array(Window(row, 0, rows, width))[0])
            if block.dtype not in (np.uint8, np.uint16, np.int16, np.int32):
                block = block.astype(np.int32)
            keep = np.ones(block.shape, dtype=bool)
            for value in excluded:
                keep &= block != value
            new: list[tuple[int, Any]] = []
            if keep.any():
                for geojson, value in rasterio.features.shapes(
                    block, mask=keep, connectivity=connectivity, transform=Affine.translation(0, row)
                ):
                    new.append((int(value), shape(geojson)))
            bottom = row + rows
            last = bottom >= height
            # pair open polygons with new polygons of the same class along the edge y = row
            touching_top = [i for i, (_, geometry) in enumerate(new) if geometry.bounds[1] <= row]
            union = _UnionFind(len(open_polygons) + len(new))
            linked = set()
            if open_polygons and touching_top:
                tree = STRtree([geometry for _, geometry in open_polygons])
                for index in touching_top:
                    class_id, geometry = new[index]
                    for candidate in tree.query(geometry):
                        other_class, other = open_polygons[int(candidate)]
                        if other_class != class_id:
                            continue
                        contact = geometry.intersection(other)
                        if contact.length > 0 or (connectivity == 8 and not contact.is_empty):
                            union.join(int(candidate), len(open_polygons) + index)
                            linked.update((int(candidate), len(open_polygons) + index))
            groups: dict[int, list[int]] = {}
            for member in linked:
                groups.setdefault(union.find(member), []).append(member)
            items: list[tuple[int, Any]] = []
            for members in groups.values():
                class_id = (open_polygons + new)[members[0]][0]
                items.append((class_id, unary_union([(open_polygons + new)[m][1] for m in members])))
            items += [polygon for i, polygon in enumerate(open_polygons) if i not in linked]
            items += [polygon for i, polygon in enumerate(new) if len(open_polygons) + i not in linked]
            open_polygons = []
            for class_id, geometry in items:
                within_budget = max_open_vertices is None or get_num_coordinates(geometry) <= max_open_vertices
                if not last and geometry.bounds[3] >= bottom and within_budget:
                    open_polygons.append((class_id, geometry))
                else:
                    finish(class_id, geometry)
        flush()
        staged.commit()
        return summary
    except BaseException:
        if staged is not None:
            staged.discard()
            staged = None
        raise
    finally:
        if staged is not None:
            staged.discard()
        if owns:
            reader.close()


__all__ = ["VectorSummary", "vectorize_raster"]
