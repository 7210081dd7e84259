"""LabelMe polygons → masks, against masks worked out by hand (pixel (r, c) is in when (c+.5, r+.5) is)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hsikit.errors import InvalidLabelsError, ShapeMismatchError, UnknownNameError
from hsikit.io import open_labels
from hsikit.io.labelme import labelme_to_mask


def annotation(shapes: list[dict], height: int | None = 5, width: int | None = 5) -> dict:
    content: dict = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": "scene.png"}
    if height is not None:
        content.update(imageHeight=height, imageWidth=width)
    return content


def shape(label: str, points: list, kind: str | None = "polygon") -> dict:
    item = {"label": label, "points": points, "group_id": None, "flags": {}}
    if kind is not None:
        item["shape_type"] = kind
    return item


def test_triangle_rectangle_circle() -> None:
    content = annotation(
        [
            shape("field", [[0, 0], [4, 0], [0, 4]]),
            shape("road", [[3, 2], [1, 1]], "rectangle"),  # corners in any order
            shape("pond", [[2.5, 2.5], [2.5, 3.5]], "circle"),
        ]
    )
    mask, mapping = labelme_to_mask(content)
    assert mapping == {"field": 1, "road": 2, "pond": 3}
    expected = np.array(
        [
            # triangle x + y < 4 at pixel centres: c + r <= 2
            [1, 1, 1, 0, 0],
            [1, 2, 2, 0, 0],  # rectangle x in [1, 3), y in [1, 2): row 1, cols 1-2 (overwrites the triangle)
            [1, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    # circle of radius 1 around (2.5, 2.5): the centre pixel and its 4 neighbours, painted last
    for row, col in [(2, 2), (1, 2), (3, 2), (2, 1), (2, 3)]:
        expected[row, col] = 3
    np.testing.assert_array_equal(mask, expected)


def test_later_shapes_overwrite_earlier_ones() -> None:
    square = [[0, 0], [5, 0], [5, 5], [0, 5]]
    inner = [[1, 1], [4, 1], [4, 4], [1, 4]]
    first, _ = labelme_to_mask(annotation([shape("outer", square), shape("inner", inner)]))
    second, _ = labelme_to_mask(annotation([shape("inner", inner), shape("outer", square)]))
    assert (first == 2).sum() == 9 and (first == 1).sum() == 16
    assert (second == 2).all()  # "outer" maps to 2 here (second to appear) and covers everything


def test_explicit_mapping_and_missing_label() -> None:
    content = annotation([shape("water", [[0, 0], [2, 0], [2, 2], [0, 2]]), shape("tree", [[3, 3], [5, 3], [5, 5]])])
    mask, mapping = labelme_to_mask(content, {"water": 7, "tree": 300})
    assert mask.dtype == np.uint16 and mask[0, 0] == 7 and mask[4, 4] == 300
    with pytest.raises(UnknownNameError, match=r"label 'tree', which class_mapping does not name .*add it"):
        labelme_to_mask(content, {"water": 1})


def test_old_files_without_shape_type_are_polygons_and_lines_are_skipped() -> None:
    content = annotation([shape("a", [[0, 0], [2, 0], [2, 2], [0, 2]], None), shape("b", [[0, 4], [4, 4]], "line")])
    with pytest.warns(UserWarning, match="'line', which covers no area"):
        mask, mapping = labelme_to_mask(content)
    assert mask.sum() == 4 and mapping == {"a": 1, "b": 2}


def test_image_size_from_file_or_argument(tmp_path: Path) -> None:
    content = annotation([shape("a", [[0, 0], [2, 0], [2, 2]])], height=None)
    with pytest.raises(InvalidLabelsError, match=r"no imageHeight/imageWidth .* pass shape=\(H, W\)"):
        labelme_to_mask(content)
    assert labelme_to_mask(content, shape=(3, 4))[0].shape == (3, 4)
    with pytest.raises(ShapeMismatchError, match="annotation is for a 5x5 image"):
        labelme_to_mask(annotation([]), shape=(6, 6))
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(content))
    # open_labels takes the size from expected_shape when the file has none
    labels = open_labels(path, expected_shape=(10, 3, 4), class_mapping={"a": 5})
    assert labels.shape == (3, 4) and labels[0, 0] == 5


def test_broken_json(tmp_path: Path) -> None:
    from hsikit.errors import CorruptFileError

    path = tmp_path / "scene.json"
    path.write_text('{"shapes": [')
    with pytest.raises(CorruptFileError, match=r"scene.json': not valid JSON"):
        open_labels(path)
