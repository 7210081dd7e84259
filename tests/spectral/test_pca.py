"""Tests of SpectralPCA: fitted on training pixels, equal to scikit-learn, chunked on memory maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.decomposition import PCA

from hsikit.cube import Cube
from hsikit.errors import ConfigError, CorruptFileError, InvalidCubeError, NonFiniteError, ShapeMismatchError
from hsikit.spectral.pca import SpectralPCA


@pytest.fixture(scope="module")
def indian_pines(shared_data) -> tuple[np.ndarray, np.ndarray]:
    """Indian Pines as (200, 145, 145) uint16 and the (145, 145) labels."""
    folder = shared_data / "indian_pines"
    cube = np.load(folder / "Indian_pines_corrected.npy")
    return np.ascontiguousarray(np.moveaxis(cube, -1, 0)), np.load(folder / "Indian_pines_gt.npy")


@pytest.fixture(scope="module")
def train_mask(indian_pines) -> np.ndarray:
    """10 % of the labelled pixels, drawn at random."""
    _, labels = indian_pines
    rng = np.random.default_rng(7)
    mask = (labels > 0) & (rng.random(labels.shape) < 0.1)
    assert 800 < mask.sum() < 1300
    return mask


def _same_up_to_sign(ours: np.ndarray, theirs: np.ndarray, atol: float) -> None:
    """Rows (components) equal up to a sign per row."""
    signs = np.sign(np.sum(ours * theirs, axis=1, keepdims=True))
    np.testing.assert_allclose(ours, signs * theirs, atol=atol)


def test_pca_matches_sklearn_on_the_same_training_pixels(indian_pines, train_mask) -> None:
    cube, _ = indian_pines
    pca = SpectralPCA(n_components=15).fit(cube, mask=train_mask, chunk_rows=10)
    training_spectra = cube[:, train_mask].T.astype(np.float64)  # (N, 200)
    reference = PCA(n_components=15, svd_solver="full").fit(training_spectra)
    assert pca.n_samples_ == int(train_mask.sum())
    np.testing.assert_allclose(pca.mean_, reference.mean_, rtol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_, reference.explained_variance_, rtol=1e-7)
    np.testing.assert_allclose(pca.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=1e-7)
    _same_up_to_sign(pca.components_, reference.components_, atol=1e-6)
    assert pca.explained_variance_ratio_[0] > 0.5  # AVIRIS spectra: the first component dominates

    reduced = pca.transform(cube, chunk_rows=16)
    assert reduced.shape == (15, 145, 145) and reduced.dtype == np.float32
    expected = reference.transform(cube.reshape(200, -1).T.astype(np.float64)).T.reshape(15, 145, 145)
    signs = np.sign(np.sum(pca.components_ * reference.components_, axis=1))[:, None, None]
    scale = np.abs(expected).max()
    np.testing.assert_allclose(reduced, signs * expected, atol=1e-5 * scale)


def test_only_the_training_pixels_shape_the_fit(indian_pines, train_mask) -> None:
    cube, _ = indian_pines
    from_mask = SpectralPCA(n_components=5).fit(cube, mask=train_mask)
    from_spectra = SpectralPCA(n_components=5).fit_spectra(cube[:, train_mask].T)
    np.testing.assert_allclose(from_mask.components_, from_spectra.components_, atol=1e-10)
    np.testing.assert_allclose(from_mask.mean_, from_spectra.mean_, rtol=1e-12)
    # changing pixels outside the mask changes nothing
    altered = cube.copy()
    altered[:, ~train_mask] = 0
    refit = SpectralPCA(n_components=5).fit(altered, mask=train_mask)
    np.testing.assert_array_equal(refit.components_, from_mask.components_)
    everything = SpectralPCA(n_components=5).fit(cube)
    assert not np.allclose(everything.mean_, from_mask.mean_)


class _RecordingArray:
    """A read-only (C, H, W) array-like that records the rows of every read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.row_reads: list[int] = []

    def __getitem__(self, key):
        rows = key[1] if isinstance(key, tuple) and len(key) > 1 else slice(None)
        assert isinstance(rows, slice), "reads must be row slices"
        self.row_reads.append(len(range(*rows.indices(self.shape[1]))))
        return self.array[key]

    def __array__(self, *args, **kwargs):  # pragma: no cover - fails the test if anything loads it whole
        raise AssertionError("the whole cube was converted to an array")


def test_transform_of_a_memmapped_cube_reads_and_writes_in_chunks(indian_pines, train_mask, tmp_path) -> None:
    cube, _ = indian_pines
    np.save(tmp_path / "cube.npy", cube)
    mapped = np.load(tmp_path / "cube.npy", mmap_mode="r")
    recording = _RecordingArray(mapped)
    pca = SpectralPCA(n_components=8).fit(recording, mask=train_mask, chunk_rows=12)
    assert recording.row_reads and max(recording.row_reads) <= 12
    # two passes (mean, then scatter) over the rows; chunks without training pixels are not read
    rows_with_training = np.flatnonzero(train_mask.any(axis=1))
    chunks_with_training = np.unique(rows_with_training // 12)
    assert len(recording.row_reads) == 2 * len(chunks_with_training)

    recording.row_reads.clear()
    out = np.lib.format.open_memmap(tmp_path / "reduced.npy", mode="w+", dtype=np.float32, shape=(8, 145, 145))
    result = pca.transform(recording, chunk_rows=12, out=out)
    assert result is out
    assert max(recording.row_reads) <= 12 and sum(recording.row_reads) == 145
    out.flush()
    np.testing.assert_allclose(np.load(tmp_path / "reduced.npy"), pca.transform(cube), rtol=1e-6, atol=1e-3)
    in_memory = SpectralPCA(n_components=8).fit(cube, mask=train_mask)
    np.testing.assert_allclose(pca.components_, in_memory.components_, atol=1e-10)


def test_whitening_gives_unit_variance_on_training_pixels(indian_pines, train_mask) -> None:
    cube, _ = indian_pines
    pca = SpectralPCA(n_components=4, whiten=True).fit(cube, mask=train_mask)
    scores = pca.transform(cube)[:, train_mask]
    np.testing.assert_allclose(scores.mean(axis=1), 0.0, atol=1e-3)
    np.testing.assert_allclose(scores.std(axis=1, ddof=1), 1.0, rtol=1e-3)
    spectra = cube[:, train_mask].T[:5].astype(np.float64)
    full = SpectralPCA(n_components=200).fit(cube, mask=train_mask)
    np.testing.assert_allclose(full.inverse_transform_spectra(full.transform_spectra(spectra)), spectra, rtol=1e-8)


def test_state_round_trips_through_json(indian_pines, train_mask, tmp_path) -> None:
    cube, _ = indian_pines
    pca = SpectralPCA(n_components=6).fit(cube, mask=train_mask)
    path = pca.to_json(tmp_path / "pca.json")
    state = json.loads(path.read_text())
    assert state["bands"] == 200 and len(state["components"]) == 6
    restored = SpectralPCA.from_json(path)
    np.testing.assert_array_equal(restored.transform(cube[:, :10]), pca.transform(cube[:, :10]))
    state["components"] = state["components"][:5]
    with pytest.raises(ConfigError, match="do not fit together"):
        SpectralPCA.from_dict(state)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CorruptFileError, match="broken.json"):
        SpectralPCA.from_json(tmp_path / "broken.json")


def test_cube_input_skips_nodata_pixels() -> None:
    rng = np.random.default_rng(0)
    data = rng.random((6, 10, 12)).astype(np.float32)
    nodata = np.zeros((10, 12), dtype=bool)
    nodata[:3] = True
    data[:, nodata] = -9999.0
    cube = Cube(data, nodata=-9999.0)
    pca = SpectralPCA(n_components=3).fit(cube)
    reference = SpectralPCA(n_components=3).fit_spectra(data[:, ~nodata].T)
    assert pca.n_samples_ == 84  # 10 x 12 pixels, 3 rows of nodata
    np.testing.assert_allclose(pca.components_, reference.components_, atol=1e-10)


def test_errors_name_the_problem_and_the_fix(indian_pines) -> None:
    cube, _ = indian_pines
    small = cube[:, :20, :20]
    with pytest.raises(ShapeMismatchError, match=r"spatial shape \(20, 20\)"):
        SpectralPCA(3).fit(small, mask=np.ones((20, 21), dtype=bool))
    with pytest.raises(InvalidCubeError, match="n_components <= 200"):
        SpectralPCA(201).fit(small)
    with pytest.raises(InvalidCubeError, match="at least 2 training pixels"):
        SpectralPCA(3).fit(small, mask=np.zeros((20, 20), dtype=bool))
    with pytest.raises(ConfigError, match="not fitted"):
        SpectralPCA(3).transform(small)
    fitted = SpectralPCA(3).fit(small)
    with pytest.raises(ShapeMismatchError, match="fitted on 200 bands"):
        fitted.transform(small[:100])
    with pytest.raises(ShapeMismatchError, match="from_hwc"):
        SpectralPCA(3).fit(small[0])
    broken = small.astype(np.float32)
    broken[4, 2, 3] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        SpectralPCA(3).fit(broken)
    with pytest.raises(ConfigError, match="positive integer"):
        SpectralPCA(0)
