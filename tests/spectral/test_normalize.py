"""Tests of band normalisation: statistics from training pixels only, streaming fit, round trips."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from hsikit import Cube
from hsikit.data.splits import random_split
from hsikit.errors import ConfigError, InvalidCubeError, ShapeMismatchError, UnknownNameError
from hsikit.spectral.normalize import (
    FixedScale,
    GlobalMinMax,
    Normalizer,
    PerBandMinMax,
    PerBandStandardize,
    compute_band_statistics,
    create_normalizer,
    list_normalizers,
    valid_pixel_mask,
)


@pytest.fixture(scope="module")
def indian_pines(shared_data: Path) -> tuple[Cube, np.ndarray]:
    folder = shared_data / "indian_pines"
    cube = Cube.from_hwc(np.load(folder / "Indian_pines_corrected.npy", mmap_mode="r"))
    return cube, np.load(folder / "Indian_pines_gt.npy")


@pytest.fixture(scope="module")
def train_mask(indian_pines: tuple[Cube, np.ndarray]) -> np.ndarray:
    return random_split(indian_pines[1], train=0.2, seed=0).mask("train")


def test_statistics_equal_numpy_on_training_pixels(
    indian_pines: tuple[Cube, np.ndarray], train_mask: np.ndarray
) -> None:
    cube, _ = indian_pines
    pixels = np.asarray(cube.data, dtype=np.float64)[:, train_mask]  # (200, n_train)
    standardize = create_normalizer("standardize").fit(cube, mask=train_mask)
    np.testing.assert_allclose(standardize.shift, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(standardize.scale, pixels.std(axis=1), rtol=1e-10)
    minmax = create_normalizer("minmax").fit(cube, mask=train_mask)
    np.testing.assert_array_equal(minmax.shift, pixels.min(axis=1))
    np.testing.assert_array_equal(minmax.scale, pixels.max(axis=1) - pixels.min(axis=1))
    global_minmax = create_normalizer("global_minmax").fit(cube, mask=train_mask)
    assert global_minmax.shift.tolist() == [pixels.min()]
    assert global_minmax.scale.tolist() == [pixels.max() - pixels.min()]
    assert standardize.statistics["count"] == [int(train_mask.sum())] * 200
    # the training pixels, standardised, have mean 0 and std 1 per band
    standardised = standardize.transform(pixels)
    np.testing.assert_allclose(standardised.mean(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(standardised.std(axis=1), 1.0, rtol=1e-9)


def test_test_pixels_do_not_leak_into_the_statistics(rng: np.random.Generator) -> None:
    # Left half (train) ~ N(10, 2), right half (test) ~ N(500, 50): any leak moves the stats far.
    data = np.empty((4, 30, 40))
    data[:, :, :20] = rng.normal(10.0, 2.0, size=(4, 30, 20))
    data[:, :, 20:] = rng.normal(500.0, 50.0, size=(4, 30, 20))
    train = np.zeros((30, 40), dtype=bool)
    train[:, :20] = True
    for chunk_rows in (None, 7):
        normalizer = PerBandStandardize().fit(data, mask=train, chunk_rows=chunk_rows)
        np.testing.assert_allclose(normalizer.shift, data[:, :, :20].reshape(4, -1).mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(normalizer.scale, data[:, :, :20].reshape(4, -1).std(axis=1), rtol=1e-10)
        assert np.all(np.abs(normalizer.shift - 10.0) < 1.0) and np.all(normalizer.scale < 3.0)
        minmax = PerBandMinMax().fit(data, mask=train, chunk_rows=chunk_rows)
        assert np.all(minmax.shift + minmax.scale < 100.0)  # the max comes from train pixels only
    unmasked = PerBandStandardize().fit(data)
    assert np.all(unmasked.shift > 200.0)  # without the mask the test pixels do move the mean


def test_streaming_fit_matches_whole_fit_and_bounds_memory(
    indian_pines: tuple[Cube, np.ndarray], train_mask: np.ndarray
) -> None:
    cube, _ = indian_pines
    assert isinstance(cube.data, np.memmap)
    whole = compute_band_statistics(np.asarray(cube.data, dtype=np.float64), train_mask, chunk_rows=145)
    tracemalloc.start()
    try:
        chunked = compute_band_statistics(cube, train_mask, chunk_rows=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(chunked.std, whole.std, rtol=1e-9)
    np.testing.assert_array_equal(chunked.min, whole.min)
    np.testing.assert_array_equal(chunked.count, whole.count)
    float64_cube_bytes = 200 * 145 * 145 * 8
    assert peak < float64_cube_bytes / 4, f"fit peaked at {peak} bytes: the memmap was loaded whole"


def test_nodata_pixels_and_nan_values_are_skipped(rng: np.random.Generator) -> None:
    data = rng.normal(5.0, 1.0, size=(3, 12, 10)).astype(np.float32)
    data[:, 0, :4] = -9999.0  # nodata pixels inside the training mask
    data[1, 5, 5] = np.nan  # one missing value in band 1 only
    cube = Cube(data, nodata=-9999.0, nonfinite="ignore")
    mask = np.ones((12, 10), dtype=bool)
    stats = compute_band_statistics(cube, mask)
    valid = np.ones((12, 10), dtype=bool)
    valid[0, :4] = False
    for band in range(3):
        keep = valid & np.isfinite(data[band])
        values = data[band][keep].astype(np.float64)
        assert stats.count[band] == keep.sum()
        assert stats.mean[band] == pytest.approx(values.mean(), rel=1e-12)
        assert stats.std[band] == pytest.approx(values.std(), rel=1e-10)
        assert stats.min[band] == values.min()
    assert stats.count.tolist() == [116, 115, 116]
    np.testing.assert_array_equal(valid_pixel_mask(cube, chunk_rows=5), valid)
    # a float32 nodata value that is not exact in float64 is still recognised
    close = Cube(np.full((2, 3, 3), 0.1, dtype=np.float32), nodata=0.1)
    assert not valid_pixel_mask(close).any()


def test_inverse_transform_restores_the_data(indian_pines: tuple[Cube, np.ndarray], train_mask: np.ndarray) -> None:
    cube, _ = indian_pines
    window = np.asarray(cube.data[:, 40:60, 70:90], dtype=np.float64)
    for name in list_normalizers():
        normalizer = create_normalizer(name).fit(cube, mask=train_mask)
        transformed = normalizer.transform(window)
        assert transformed.dtype == np.float64 and transformed.shape == window.shape
        np.testing.assert_allclose(normalizer.inverse_transform(transformed), window, rtol=1e-12)
        tensor = torch.from_numpy(window.astype(np.float32))
        y = normalizer.transform(tensor)
        assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
        np.testing.assert_allclose(y.numpy(), transformed, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(normalizer.inverse_transform(y).numpy(), window, rtol=1e-5)


def test_transform_of_batches_and_integer_input(indian_pines: tuple[Cube, np.ndarray], train_mask: np.ndarray) -> None:
    cube, _ = indian_pines
    normalizer = PerBandStandardize().fit(cube, mask=train_mask)
    raw = np.asarray(cube.data[:, :8, :8])  # uint16
    single = normalizer.transform(raw)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single[:, 3, 4], (raw[:, 3, 4] - normalizer.shift) / normalizer.scale, rtol=1e-5)
    batch = torch.from_numpy(np.stack([raw, raw]).astype(np.int64))  # (B, C, H, W), integer tensor
    out = normalizer.transform(batch, band_axis=1)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out[1].numpy(), single, rtol=1e-5, atol=1e-5)
    spectra = np.moveaxis(raw, 0, -1)  # (H, W, C): bands last
    np.testing.assert_allclose(np.moveaxis(normalizer.transform(spectra, band_axis=-1), -1, 0), single, rtol=1e-6)


def test_zero_variance_band_gives_no_nan(rng: np.random.Generator) -> None:
    data = rng.random((3, 10, 10))
    data[1] = 1234.5  # constant band
    for cls in (PerBandStandardize, PerBandMinMax):
        normalizer = cls().fit(data)
        out = normalizer.transform(data)
        assert np.all(np.isfinite(out))
        np.testing.assert_array_equal(out[1], 0.0)
        np.testing.assert_allclose(normalizer.inverse_transform(out), data, rtol=1e-12)
    flat = GlobalMinMax().fit(np.full((2, 4, 4), 7.0))
    np.testing.assert_array_equal(flat.transform(np.full((2, 4, 4), 7.0)), 0.0)


def test_fixed_scale_and_identity() -> None:
    x = np.array([[10000.0, 2500.0], [0.0, 5000.0]])
    np.testing.assert_array_equal(FixedScale(10000).transform(x), [[1.0, 0.25], [0.0, 0.5]])
    eight_bit = create_normalizer("scale", scale=255)
    np.testing.assert_array_equal(eight_bit.inverse_transform(np.array([1.0, 0.5])), [255.0, 127.5])
    ident = create_normalizer("none")
    np.testing.assert_array_equal(ident.transform(x), x)
    assert ident.fit(x) is ident and ident.fitted


def test_json_round_trip_keeps_statistics(
    indian_pines: tuple[Cube, np.ndarray], train_mask: np.ndarray, tmp_path: Path
) -> None:
    cube, _ = indian_pines
    window = np.asarray(cube.data[:, :16, :16])
    cases = [("none", {}), ("scale", {"scale": 9604.0}), ("standardize", {}), ("minmax", {}), ("global_minmax", {})]
    for name, kwargs in cases:
        normalizer = create_normalizer(name, **kwargs).fit(cube, mask=train_mask)
        state = normalizer.state_dict()
        json.dumps(state)  # JSON-serialisable as is
        path = normalizer.to_json(tmp_path / f"{name}.json")
        loaded = Normalizer.from_json(path)
        assert type(loaded) is type(normalizer) and loaded.params() == normalizer.params()
        assert loaded.bands == normalizer.bands and loaded.statistics == normalizer.statistics
        np.testing.assert_array_equal(loaded.transform(window), normalizer.transform(window))
        assert type(Normalizer.from_dict(json.loads(json.dumps(state)))) is type(normalizer)
    assert not list(tmp_path.glob("*.partial*"))


def test_normalizer_errors(indian_pines: tuple[Cube, np.ndarray]) -> None:
    cube, _ = indian_pines
    with pytest.raises(ConfigError, match="not fitted: call fit\\(cube, mask=train_mask\\)"):
        PerBandStandardize().transform(np.zeros((200, 2, 2)))
    normalizer = PerBandStandardize().fit(cube[:, :20, :20])
    with pytest.raises(ShapeMismatchError, match="fitted on 200 bands.*has 3 on axis 0"):
        normalizer.transform(np.zeros((3, 200)))
    with pytest.raises(ShapeMismatchError, match=r"spatial shape \(145, 145\), got bool \(10, 10\)"):
        PerBandStandardize().fit(cube, mask=np.ones((10, 10), dtype=bool))
    with pytest.raises(InvalidCubeError, match=r"no valid value to fit in band\(s\) \[0, 1,.*selects 0 pixel"):
        PerBandStandardize().fit(cube, mask=np.zeros((145, 145), dtype=bool))
    with pytest.raises(UnknownNameError, match="unknown normaliser 'zscore'.*standardize"):
        create_normalizer("zscore")
    with pytest.raises(ConfigError, match="positive finite scale"):
        FixedScale(0.0)
    with pytest.raises(ConfigError, match="'scale' must be positive"):
        Normalizer.from_dict({"name": "standardize", "shift": [0.0], "scale": [0.0]})
