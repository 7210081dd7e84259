"""Class maps come from merged probabilities (or logits), never from averaged labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit import Cube
from hsikit.errors import ShapeMismatchError
from hsikit.inference import argmax_channels, class_dtype_and_nodata, predict_scene

# class probabilities a tile predicts on its left half (P_LEFT) and right half (P_RIGHT)
P_LEFT = torch.tensor([0.05, 0.50, 0.45], dtype=torch.float64)  # argmax 1
P_RIGHT = torch.tensor([0.50, 0.05, 0.45], dtype=torch.float64)  # argmax 0


def _half_and_half(batch: torch.Tensor) -> torch.Tensor:
    """Log-probabilities P_LEFT on the left 8 columns of each 16-column tile, P_RIGHT on the rest."""
    batch_size, _, height, width = batch.shape
    left = torch.arange(width) < width // 2
    logits = torch.where(left[None, :], P_LEFT.log()[:, None], P_RIGHT.log()[:, None])  # (3, w)
    return logits[None, :, None, :].expand(batch_size, 3, height, width).to(batch.dtype)


def test_overlap_takes_argmax_of_merged_probabilities() -> None:
    """Two tiles over columns 0-15 and 8-23 overlap on columns 8-15.

    There, the left tile says class 0 (its right half) and the right tile class 1
    (its left half). Their mean probabilities (0.275, 0.275, 0.45) pick class 2,
    which no tile predicts and which no average of the labels 0 and 1 can give.
    """
    cube = Cube(np.zeros((1, 16, 24)))
    options = {"tile": 16, "overlap": 8, "margin": 0, "padding": "none", "blend": "mean", "progress": False}
    classes = predict_scene(_half_and_half, cube, output_kind="classes", **options)
    expected = np.repeat(np.array([1] * 8 + [2] * 8 + [0] * 8, dtype=np.uint8)[None], 16, axis=0)
    np.testing.assert_array_equal(classes.data[0], expected)

    probabilities = predict_scene(_half_and_half, cube, output_kind="probabilities", **options)
    np.testing.assert_allclose(probabilities.data[:, 0, 12], [0.275, 0.275, 0.45], atol=1e-6)
    np.testing.assert_allclose(probabilities.data[:, 0, 3], P_LEFT.numpy(), atol=1e-6)
    assert probabilities.band_names == ["probability_0", "probability_1", "probability_2"]

    by_logits = predict_scene(_half_and_half, cube, output_kind="classes", merge="logits", **options)
    # mean log-probabilities: class 2 keeps log 0.45, classes 0 and 1 get log sqrt(0.5 * 0.05)
    np.testing.assert_array_equal(by_logits.data[0], expected)


def test_classes_are_argmax_of_probabilities_on_real_scene(shared_data, conv_stack) -> None:
    import rasterio

    with rasterio.open(shared_data / "glacier" / "images" / "1.tif") as dataset:
        cube = Cube(dataset.read().astype(np.float64), crs=dataset.crs, transform=dataset.transform)
    model = conv_stack(bands=10, outputs=3, layers=3, seed=7)
    options = {"tile": 96, "overlap": 32, "batch_size": 3, "progress": False}
    classes = predict_scene(model, cube, output_kind="classes", class_names=["ice", "debris", "rock"], **options)
    probabilities = predict_scene(model, cube, output_kind="probabilities", **options)
    logits = predict_scene(model, cube, output_kind="logits", **options)
    by_logits = predict_scene(model, cube, output_kind="classes", merge="logits", **options)
    np.testing.assert_allclose(probabilities.data.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(classes.data[0], probabilities.data.argmax(axis=0))
    np.testing.assert_array_equal(by_logits.data[0], logits.data.argmax(axis=0))
    assert len(np.unique(classes.data)) == 3, "a meaningful test needs every class to appear"
    assert classes.transform == cube.transform and classes.crs == cube.crs


def test_class_raster_dtype_grows_with_class_count(rng) -> None:
    assert class_dtype_and_nodata(2) == (np.dtype(np.uint8), 255)
    assert class_dtype_and_nodata(255) == (np.dtype(np.uint8), 255)
    assert class_dtype_and_nodata(256) == (np.dtype(np.uint16), 65535)
    model = torch.nn.Conv2d(2, 300, 1).double()
    cube = Cube(rng.random((2, 12, 12)))
    classes = predict_scene(model, cube, tile=8, overlap=2, output_kind="classes", progress=False)
    assert classes.dtype == np.uint16 and classes.nodata == 65535


def test_single_channel_model_cannot_give_classes(rng) -> None:
    with pytest.raises(ShapeMismatchError, match="at least 2 output channels"):
        predict_scene(torch.nn.Conv2d(2, 1, 1), Cube(rng.random((2, 12, 12))), tile=8, overlap=2,
                      output_kind="classes", progress=False)


@pytest.mark.parametrize("classes", [3, 40])
def test_argmax_channels_matches_numpy_and_keeps_first_on_ties(rng, classes: int) -> None:
    values = rng.integers(0, 4, size=(classes, 30, 20)).astype(np.float32)  # many ties
    labels = argmax_channels(values, np.uint8)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, values.argmax(axis=0))


def test_first_label_shifts_class_values_and_keeps_nodata_apart() -> None:
    """Classes are written as first_label + channel; the dtype grows so nodata never collides."""
    cube = Cube(np.zeros((1, 16, 24)))
    options = {"tile": 16, "overlap": 8, "margin": 0, "padding": "none", "blend": "mean", "progress": False}
    plain = predict_scene(_half_and_half, cube, output_kind="classes", **options)
    shifted = predict_scene(_half_and_half, cube, output_kind="classes", first_label=1, **options)
    np.testing.assert_array_equal(shifted.data[0], plain.data[0] + 1)
    assert set(np.unique(shifted.data)) == {1, 2, 3}

    def many_classes(batch: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(batch.shape[0], 255, *batch.shape[2:], dtype=batch.dtype)
        logits[:, 254] = 1.0  # the last channel wins everywhere
        return logits

    last = predict_scene(many_classes, cube, output_kind="classes", first_label=1, **options)
    assert last.data.dtype == np.uint16 and int(last.data.max()) == 255  # 255 is a class, not nodata
