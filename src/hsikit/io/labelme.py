"""LabelMe JSON annotations → class masks.

A LabelMe file lists ``shapes`` (each with a ``label``, ``points`` in image
coordinates ``[x, y]`` = ``[column, row]`` and a ``shape_type``) and usually the
image size (``imageHeight``, ``imageWidth``). :func:`labelme_to_mask` paints
them, in file order, into an ``(H, W)`` integer mask: later shapes overwrite
earlier ones where they overlap.

Pixel rule: LabelMe coordinates put pixel ``(row, col)`` on the unit square
``[col, col + 1) x [row, row + 1)``; a pixel belongs to a shape when its centre
``(col + 0.5, row + 0.5)`` lies inside it (even-odd rule for self-crossing polygons).

Shapes painted: ``polygon`` (also when ``shape_type`` is missing, as in old
files), ``rectangle`` (two opposite corners), ``circle`` (centre and a point on
the circle). Points, lines and line strips cover no area and are skipped with a
warning, as are other types.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.errors import CorruptFileError, InvalidLabelsError, ShapeMismatchError, UnknownNameError
from hsikit.io.common import require_file, smallest_label_dtype


def _load(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "<LabelMe dict>"
    path = require_file(source)
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"'{path}': not valid JSON ({error}); is the file truncated?") from error
    if not isinstance(content, dict) or "shapes" not in content:
        raise CorruptFileError(f"'{path}': not a LabelMe annotation (no 'shapes' list)")
    return content, str(path)


def fill_polygon(mask: np.ndarray, points: np.ndarray, value: int) -> None:
    """Set pixels of ``mask`` whose centres lie inside the polygon ``points`` (``(N, 2)`` x, y) to ``value``.

    Scanline fill with the even-odd rule: for each pixel row, the crossings of the
    centre line ``y = row + 0.5`` with the polygon edges are sorted, and the pixels
    whose centre x lies between consecutive pairs of crossings are filled.
    """
    if len(points) < 3:
        return
    height, width = mask.shape
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    row_start = max(0, int(np.floor(y0.min() - 0.5)))
    row_stop = min(height, int(np.ceil(y0.max() + 0.5)) + 1)
    centres_x = np.arange(width) + 0.5
    for row in range(row_start, row_stop):
        y = row + 0.5
        # Half-open rule: an edge counts when y is in [min(y0, y1), max(y0, y1)), so shared vertices count once.
        crossing = (np.minimum(y0, y1) <= y) & (y < np.maximum(y0, y1))
        if not crossing.any():
            continue
        xa, ya, xb, yb = x0[crossing], y0[crossing], x1[crossing], y1[crossing]
        xs = np.sort(xa + (y - ya) * (xb - xa) / (yb - ya))
        for left, right in zip(xs[0::2], xs[1::2]):
            inside = (centres_x >= left) & (centres_x < right)
            mask[row, inside] = value


def fill_circle(mask: np.ndarray, centre: tuple[float, float], radius: float, value: int) -> None:
    """Set pixels whose centres lie within ``radius`` of ``centre`` (x, y) to ``value``."""
    rows = np.arange(mask.shape[0])[:, None] + 0.5
    cols = np.arange(mask.shape[1])[None, :] + 0.5
    inside = (cols - centre[0]) ** 2 + (rows - centre[1]) ** 2 <= radius**2
    mask[inside] = value


def labelme_to_mask(
    source: str | os.PathLike | Mapping[str, Any],
    class_mapping: Mapping[str, int] | None = None,
    shape: tuple[int, int] | None = None,
    *,
    background: int = 0,
) -> tuple[np.ndarray, dict[str, int]]:
    """Paint a LabelMe annotation into an ``(H, W)`` class mask.

    Args:
        source: path of the JSON file, or its parsed content.
        class_mapping: label name → class id. None: ids 1, 2, ... in order of first
            appearance in the file (``background`` stays for unlabelled pixels).
        shape: ``(H, W)`` of the mask; default: ``imageHeight``/``imageWidth`` from the file.
        background: value of pixels no shape covers.

    Returns:
        ``(mask, mapping)``: the mask (smallest integer dtype holding the ids) and the
        name → id mapping used.

    Raises:
        InvalidLabelsError: no image size in the file and no ``shape=``; malformed shape.
        ShapeMismatchError: ``shape=`` contradicts the file's image size.
        UnknownNameError: a label missing from ``class_mapping``.
    """
    content, name = _load(source)
    file_shape = None
    if content.get("imageHeight") and content.get("imageWidth"):
        file_shape = (int(content["imageHeight"]), int(content["imageWidth"]))
    if shape is not None:
        shape = (int(shape[0]), int(shape[-1])) if len(shape) == 2 else (int(shape[-2]), int(shape[-1]))
        if file_shape is not None and file_shape != shape:
            raise ShapeMismatchError(
                f"'{name}': the annotation is for a {file_shape[0]}x{file_shape[1]} image but shape={shape} was asked; "
                "use the annotation made on this image"
            )
    shape = shape or file_shape
    if shape is None:
        raise InvalidLabelsError(f"'{name}': no imageHeight/imageWidth in the file; pass shape=(H, W)")

    mapping: dict[str, int] = dict(class_mapping) if class_mapping is not None else {}
    shapes = content.get("shapes") or []
    if class_mapping is None:
        next_id = background + 1
        for item in shapes:
            label = str(item.get("label"))
            if label not in mapping:
                while next_id in mapping.values():
                    next_id += 1
                mapping[label] = next_id
                next_id += 1
    values = [background, *mapping.values()]
    mask = np.full(shape, background, dtype=smallest_label_dtype(min(values), max(values)))

    for index, item in enumerate(shapes):
        label = str(item.get("label"))
        if label not in mapping:
            raise UnknownNameError(
                f"'{name}': shape {index} has label {label!r}, which class_mapping does not name "
                f"(it has {sorted(mapping)}); add it to class_mapping"
            )
        kind = item.get("shape_type") or "polygon"
        try:
            points = np.asarray(item.get("points") or [], dtype=np.float64).reshape(-1, 2)
        except ValueError as error:
            raise InvalidLabelsError(f"'{name}': shape {index} ({label!r}) has malformed points") from error
        value = mapping[label]
        if kind == "polygon":
            fill_polygon(mask, points, value)
        elif kind == "rectangle":
            if len(points) < 2:
                raise InvalidLabelsError(f"'{name}': rectangle {index} ({label!r}) needs two corner points")
            (xa, ya), (xb, yb) = points[0], points[1]
            corners = np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]])
            fill_polygon(mask, corners, value)
        elif kind == "circle":
            if len(points) < 2:
                raise InvalidLabelsError(f"'{name}': circle {index} ({label!r}) needs a centre and a rim point")
            radius = float(np.hypot(*(points[1] - points[0])))
            fill_circle(mask, (float(points[0][0]), float(points[0][1])), radius, value)
        else:
            warnings.warn(
                f"'{name}': shape {index} ({label!r}) is a {kind!r}, which covers no area; skipped",
                stacklevel=2,
            )
    return mask, mapping


__all__ = ["labelme_to_mask", "fill_polygon", "fill_circle"]
