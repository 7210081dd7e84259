"""SSMGNet's attention supervision: thresholds, distances, labels, reference matrices, memory."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hsikit.data.reference_spectra import glacier_reference_matrix, load_reference_matrix
from hsikit.errors import (
    ConfigError,
    CorruptFileError,
    DataFileNotFoundError,
    ReferenceMatrixError,
    ShapeMismatchError,
    UnsupportedFormatError,
)
from hsikit.io import open_cube
from hsikit.losses.attention import (
    SpectralAttentionTarget,
    attention_label,
    build_reference_operator,
    misclassification_threshold,
    reference_distances,
)

# τ of the default matrix as given in spec 002 §1.1 (4 decimals).
SPEC_THRESHOLDS = [0.0139, 0.0230, 0.0110, 0.0284, 0.0110, 0.0730, 0.1831, 0.0443, 0.0730, 0.1039]

# Hand-computed 2-band case. A = [[1, 1], [0, 2]] (references a1 = (1, 0), a2 = (1, 2)),
# Λ = 3, A + 3I = [[4, 1], [0, 5]], M = (A + 3I)⁻¹ = [[5, −1], [0, 4]] / 20.
#   τ:  M(a2 − a1) = M(0, 2) = (−2, 8)/20 → L1 = 0.5, for both references.
#   pixel (1, 0.2): consistent d = (‖M(0, 0.2)‖₁, ‖M(0, −1.8)‖₁) = (1/20, 9/20);
#       legacy x¹ = M(4, 0.2) = (0.99, 0.04) → 0.04 + |0.99 − 1| = 0.05,
#              x² = M(1, 3.2) = (0.09, 0.64) → 0.09 + |0.64 − 1| = 0.45          (same as consistent)
#   pixel (6, 0): consistent d = (‖M(5, 0)‖₁, ‖M(5, −2)‖₁) = (1.25, 1.75);
#       legacy x² = M(6, 3) = (1.35, 0.6): the largest slot is 1, not 2 → 0.6 + 0.35 = 0.95
#   pixel (1, 1.9): consistent d = (‖M(0, 1.9)‖₁, ‖M(0, −0.1)‖₁) = (0.475, 0.025)  (legacy the same)
HAND_MATRIX = np.array([[1.0, 1.0], [0.0, 2.0]])
HAND_PIXELS = torch.tensor([[1.0, 0.2], [6.0, 0.0], [1.0, 1.9]], dtype=torch.float64)
HAND_CONSISTENT = torch.tensor([[0.05, 0.45], [1.25, 1.75], [0.475, 0.025]], dtype=torch.float64)
HAND_LEGACY = torch.tensor([[0.05, 0.45], [1.25, 0.95], [0.475, 0.025]], dtype=torch.float64)


def _hand_image() -> torch.Tensor:
    """The three hand pixels as a (1, 2, 1, 3) image."""
    return HAND_PIXELS.T.reshape(1, 2, 1, 3).clone()


def _glacier_tile(shared_data: Path, name: str) -> torch.Tensor:
    return open_cube(shared_data / "glacier" / "images" / f"{name}.tif").to_tensor()[None]  # (1, 10, 256, 256)


# --------------------------------------------------------------------------- thresholds
@pytest.mark.parametrize("mode", ["consistent", "legacy"])
def test_thresholds_of_the_default_matrix_match_the_spec(mode: str) -> None:
    tau = misclassification_threshold(glacier_reference_matrix(), mode)
    assert tau.shape == (10,)
    np.testing.assert_array_equal(np.round(tau.numpy(), 4), SPEC_THRESHOLDS)


def test_threshold_is_the_distance_to_the_nearest_other_reference() -> None:
    matrix = glacier_reference_matrix()
    inverse = np.linalg.inv(matrix + 11 * np.eye(10))
    tau = misclassification_threshold(matrix).numpy()
    for i in range(10):
        others = [np.abs(inverse @ (matrix[:, j] - matrix[:, i])).sum() for j in range(10) if j != i]
        assert tau[i] == pytest.approx(min(others), rel=1e-12)


def test_hand_case_thresholds_and_distances() -> None:
    for mode in ("consistent", "legacy"):
        torch.testing.assert_close(misclassification_threshold(HAND_MATRIX, mode), torch.tensor([0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(reference_distances(HAND_PIXELS, HAND_MATRIX, "consistent"), HAND_CONSISTENT)
    torch.testing.assert_close(reference_distances(HAND_PIXELS, HAND_MATRIX, "legacy"), HAND_LEGACY)


def test_hand_case_labels_and_similarities() -> None:
    image = _hand_image()
    for mode in ("consistent", "legacy"):
        result = attention_label(image, HAND_MATRIX, mode=mode)
        assert result.label_map.tolist() == [[[1, 0, 2]]]  # (6, 0) is invalid: 1.25 > τ = 0.5
        # min-max over the valid d* = {0.05, 0.025}: the worst valid pixel gets ~0, the best 1
        torch.testing.assert_close(
            result.similarity.reshape(-1), torch.tensor([1 - 0.025 / (0.025 + 1e-8), 0.0, 1.0], dtype=torch.float64)
        )
    linear = attention_label(image, HAND_MATRIX, similarity="linear").similarity.reshape(-1)
    torch.testing.assert_close(linear, torch.tensor([0.9, 0.0, 0.95], dtype=torch.float64))
    exponential = attention_label(image, HAND_MATRIX, similarity="exp").similarity.reshape(-1)
    torch.testing.assert_close(exponential, torch.tensor([math.exp(-0.1), 0.0, math.exp(-0.05)], dtype=torch.float64))
    # legacy and consistent disagree on which reference (6, 0) is nearest (hand values above)
    assert reference_distances(HAND_PIXELS, HAND_MATRIX, "consistent")[1].argmin() == 0
    assert reference_distances(HAND_PIXELS, HAND_MATRIX, "legacy")[1].argmin() == 1


def test_minmax_is_per_image_and_an_image_without_valid_pixels_is_zero() -> None:
    far_away = torch.full_like(_hand_image(), 50.0)
    batch = torch.cat([_hand_image(), far_away, _hand_image()])
    result = attention_label(batch, HAND_MATRIX)
    assert result.similarity.shape == (3, 1, 1, 3) and result.label_map.shape == (3, 1, 3)
    assert torch.all(result.similarity[1] == 0) and torch.all(result.label_map[1] == 0)
    torch.testing.assert_close(result.similarity[0], result.similarity[2])
    assert float(result.similarity[0].max()) == 1.0


def test_nan_pixels_are_invalid_and_do_not_spread() -> None:
    image = _hand_image()
    image[0, 0, 0, 1] = float("nan")
    result = attention_label(image, HAND_MATRIX, similarity="linear")
    assert result.label_map.tolist() == [[[1, 0, 2]]]
    assert torch.isfinite(result.similarity).all()
    torch.testing.assert_close(result.similarity.reshape(-1), torch.tensor([0.9, 0.0, 0.95], dtype=torch.float64))


# --------------------------------------------------------------------------- real glacier tiles
def _reference_code_legacy(pixels: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The reference's computation written out naively: an (N, n, n) tensor of perturbed solves."""
    n = matrix.shape[0]
    inverse = np.linalg.inv(matrix + (n + 1) * np.eye(n))
    perturbed = pixels[:, None, :] + (n + 1) * np.eye(n)[None]  # (N, class i, band)
    solutions = np.abs(np.einsum("kb,nib->nik", inverse, perturbed))
    largest = solutions.max(axis=2)
    return solutions.sum(axis=2) - largest + np.abs(largest - 1)


def test_legacy_mode_matches_the_naive_reference_computation(shared_data: Path) -> None:
    crop = _glacier_tile(shared_data, "1")[:, :, 100:164, 60:124].double()
    pixels = crop[0].reshape(10, -1).T
    expected = _reference_code_legacy(pixels.numpy(), glacier_reference_matrix())
    np.testing.assert_allclose(reference_distances(pixels, glacier_reference_matrix(), "legacy").numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("tile", ["1", "2", "4"])
def test_glacier_tiles_consistent_and_legacy_agree_with_a_float64_oracle(shared_data: Path, tile: str) -> None:
    image = _glacier_tile(shared_data, tile)
    matrix = glacier_reference_matrix()
    consistent = attention_label(image, matrix)
    legacy = attention_label(image, matrix, mode="legacy")
    # Independent float64 computation of the closed form d_i = ‖M (s − a_i)‖₁.
    inverse = np.linalg.inv(matrix + 11 * np.eye(10))
    spectra = image[0].numpy().astype(np.float64).reshape(10, -1).T
    distances = np.stack([np.abs((spectra - matrix[:, i]) @ inverse.T).sum(axis=1) for i in range(10)], axis=1)
    nearest = distances.argmin(axis=1)
    best = distances.min(axis=1)
    valid = best < misclassification_threshold(matrix).numpy()[nearest]
    expected_labels = np.where(valid, nearest + 1, 0).reshape(256, 256)
    np.testing.assert_array_equal(consistent.label_map[0].numpy(), expected_labels)
    np.testing.assert_array_equal(legacy.label_map[0].numpy(), expected_labels)
    low, high = best[valid].min(), best[valid].max()
    expected_similarity = np.where(valid, 1 - (best - low) / (high - low + 1e-8), 0).reshape(256, 256)
    np.testing.assert_allclose(consistent.similarity[0, 0].numpy(), expected_similarity, atol=1e-5)
    assert consistent.similarity.dtype == torch.float32
    assert 0 < valid.mean() < 0.5  # some, not most, pixels match a reference on these tiles


# --------------------------------------------------------------------------- memory
class _LargestOutput(TorchDispatchMode):
    """Records the largest tensor any ATen op produces while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.largest_op = ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        result = func(*args, **(kwargs or {}))
        for value in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(value, torch.Tensor) and value.numel() > self.largest:
                self.largest, self.largest_op = value.numel(), str(func)
        return result


@pytest.mark.parametrize("mode", ["consistent", "legacy"])
def test_no_intermediate_is_larger_than_pixels_times_bands(mode: str) -> None:
    generator = torch.Generator().manual_seed(0)
    bands = 24
    matrix = torch.rand(bands, bands, generator=generator, dtype=torch.float64)
    operator = build_reference_operator(matrix)
    threshold = misclassification_threshold(operator, mode)
    image = torch.rand(2, bands, 128, 96, generator=generator)
    pixels = image.numel() // bands
    with _LargestOutput() as watcher:
        result = attention_label(image, operator, threshold, mode=mode)
    assert result.label_map.shape == (2, 128, 96)
    # The reference would build N·C·C = 24·N·C values; the bound is O(N·C + C²).
    assert watcher.largest <= pixels * bands + bands * bands, watcher.largest_op


def test_large_batch_runs_in_bounded_memory() -> None:
    """1 M pixels: the reference's (N, 10, 10) tensor would hold 100 M floats (400 MB)."""
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(4, 10, 512, 512, generator=generator) * 0.6
    operator = build_reference_operator(glacier_reference_matrix())
    with _LargestOutput() as watcher:
        result = attention_label(image, operator)
    assert watcher.largest <= image.numel() + 100
    assert result.similarity.shape == (4, 1, 512, 512)


def test_non_square_references_stay_within_pixels_times_references() -> None:
    generator = torch.Generator().manual_seed(2)
    matrix = torch.rand(8, 40, generator=generator, dtype=torch.float64)  # 40 references of 8 bands
    image = torch.rand(1, 8, 64, 64, generator=generator)
    with _LargestOutput() as watcher:
        attention_label(image, matrix, method="ridge", ridge=0.1)
    assert watcher.largest <= 64 * 64 * 40 + 40 * 40


# --------------------------------------------------------------------------- generalisations
def test_ridge_with_vanishing_regularisation_tends_to_the_inverse() -> None:
    matrix = np.array([[2.0, 0.5, 0.1], [0.3, 1.5, 0.2], [0.1, 0.4, 1.0]])
    operator = build_reference_operator(matrix, method="ridge", ridge=1e-12)
    np.testing.assert_allclose(operator.whitening.numpy(), np.linalg.inv(matrix), atol=1e-8)


@pytest.mark.parametrize("method", ["shift", "ridge"])
def test_one_hot_identity_holds_for_both_methods(method: str) -> None:
    matrix = glacier_reference_matrix()
    operator = build_reference_operator(matrix, method=method)
    identity = operator.reference_codes + operator.one_hot_offset
    np.testing.assert_allclose(identity.numpy(), np.eye(10), atol=1e-10)
    # so the legacy threshold (one-hot distance) equals the consistent one
    torch.testing.assert_close(misclassification_threshold(operator, "legacy"), misclassification_threshold(operator))


def test_fewer_references_than_bands(shared_data: Path) -> None:
    matrix = glacier_reference_matrix()[:, [0, 6, 7, 9]]  # 4 references of 10 bands
    operator = build_reference_operator(matrix)
    assert operator.method == "ridge" and operator.whitening.shape == (4, 10)
    assert operator.regularization == pytest.approx(0.01 * np.trace(matrix.T @ matrix) / 4)
    # a pixel equal to a reference is at distance 0 from it: valid, labelled, similarity 1
    image = torch.from_numpy(matrix.T.copy()).T.reshape(1, 10, 1, 4)
    result = attention_label(image, matrix, similarity="linear")
    assert result.label_map.tolist() == [[[1, 2, 3, 4]]]
    torch.testing.assert_close(result.similarity.reshape(-1), torch.ones(4, dtype=torch.float64))
    # and it runs on a real tile
    tile = attention_label(_glacier_tile(shared_data, "1"), matrix)
    assert set(tile.label_map.unique().tolist()) <= {0, 1, 2, 3, 4}


def test_custom_whitening_identity_gives_plain_l1_distances() -> None:
    matrix = np.array([[0.1, 0.5, 0.9], [0.2, 0.5, 0.1]])  # 2 bands, 3 references
    pixels = torch.tensor([[0.1, 0.3], [0.8, 0.1]], dtype=torch.float64)
    distances = reference_distances(pixels, matrix, whitening=np.eye(2))
    expected = torch.tensor([[0.1, 0.6, 1.0], [0.8, 0.7, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(distances, expected)
    with pytest.raises(ConfigError, match="consistent"):
        reference_distances(pixels, matrix, "legacy", whitening=np.eye(2))


# --------------------------------------------------------------------------- errors
def test_image_with_the_wrong_number_of_bands() -> None:
    with pytest.raises(ShapeMismatchError, match=r"image has 6 bands but the reference matrix has 10 bands"):
        attention_label(torch.rand(1, 6, 8, 8), glacier_reference_matrix())
    with pytest.raises(ShapeMismatchError, match=r"\(B, C, H, W\)"):
        attention_label(torch.rand(10, 8, 8), glacier_reference_matrix())


def test_nan_in_the_matrix_is_refused_with_its_position() -> None:
    matrix = glacier_reference_matrix()
    matrix[3, 7] = np.nan
    with pytest.raises(ReferenceMatrixError, match=r"NaN/Inf at \(band 3, reference 7\)"):
        misclassification_threshold(matrix)


def test_singular_matrix_without_regularisation() -> None:
    matrix = glacier_reference_matrix()
    matrix[:, 4] = matrix[:, 2]  # two identical references: rank 9
    with pytest.raises(ReferenceMatrixError, match=r"singular \(numerical rank 9\); increase shift"):
        build_reference_operator(matrix, shift=0.0)
    build_reference_operator(matrix)  # the reference's shift Λ = 11 makes it invertible
    wide = np.random.default_rng(0).random((5, 8))  # 8 references of 5 bands: AᵀA has rank 5
    with pytest.raises(ReferenceMatrixError, match=r"AᵀA .* is singular \(numerical rank 5\); use ridge > 0"):
        build_reference_operator(wide, ridge=0.0)
    assert build_reference_operator(wide).whitening.shape == (8, 5)


def test_shift_method_needs_a_square_matrix_and_other_option_errors() -> None:
    with pytest.raises(ReferenceMatrixError, match="method='ridge'"):
        build_reference_operator(np.ones((10, 4)) + np.eye(10, 4), method="shift")
    with pytest.raises(ReferenceMatrixError, match="2 reference spectra"):
        build_reference_operator(np.ones((10, 1)))
    with pytest.raises(ConfigError, match="unknown attention mode"):
        misclassification_threshold(HAND_MATRIX, "exact")
    with pytest.raises(ConfigError, match="unknown similarity"):
        attention_label(_hand_image(), HAND_MATRIX, similarity="cosine")
    with pytest.raises(ShapeMismatchError, match="threshold has 3 values"):
        attention_label(_hand_image(), HAND_MATRIX, threshold=torch.ones(3))


# --------------------------------------------------------------------------- reference matrix files
def test_npy_and_csv_round_trips(tmp_path: Path) -> None:
    matrix = glacier_reference_matrix()
    np.save(tmp_path / "refs.npy", matrix)
    np.testing.assert_array_equal(load_reference_matrix(tmp_path / "refs.npy", bands=10), matrix)
    lines = ["# glacier references, one spectrum per column", ",".join(f"ref{i}" for i in range(10))]
    lines += [",".join(repr(float(v)) for v in row) for row in matrix]
    (tmp_path / "refs.csv").write_text("\n".join(lines) + "\n")
    np.testing.assert_array_equal(load_reference_matrix(tmp_path / "refs.csv"), matrix)
    # one spectrum per row, white-space separated
    (tmp_path / "rows.txt").write_text("\n".join(" ".join(repr(float(v)) for v in row) for row in matrix[:, :3].T))
    np.testing.assert_array_equal(load_reference_matrix(tmp_path / "rows.txt", layout="references_by_bands"), matrix[:, :3])


def test_reference_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="missing.npy"):
        load_reference_matrix(tmp_path / "missing.npy")
    (tmp_path / "refs.mat").write_bytes(b"")
    with pytest.raises(UnsupportedFormatError, match=r"\.npy, \.csv, \.txt"):
        load_reference_matrix(tmp_path / "refs.mat")
    (tmp_path / "ragged.csv").write_text("0.1,0.2,0.3\n0.4,0.5\n")
    with pytest.raises(CorruptFileError, match=r"rows of different lengths \[2, 3\]"):
        load_reference_matrix(tmp_path / "ragged.csv")
    (tmp_path / "text.csv").write_text("a,b\n0.1,0.2\n0.3,oops\n")
    with pytest.raises(CorruptFileError, match=r"'oops' in data row 2, column 2"):
        load_reference_matrix(tmp_path / "text.csv")
    (tmp_path / "nan.csv").write_text("0.1,0.2\nnan,0.4\n")
    with pytest.raises(ReferenceMatrixError, match=r"NaN/Inf at \(band 1, reference 0\)"):
        load_reference_matrix(tmp_path / "nan.csv")
    np.save(tmp_path / "transposed.npy", glacier_reference_matrix()[:, :4].T)  # (4 references, 10 bands)
    with pytest.raises(ShapeMismatchError, match="has 4 bands .* images have 10 bands"):
        load_reference_matrix(tmp_path / "transposed.npy", bands=10)
    np.save(tmp_path / "square.npy", np.ones((6, 10)))
    with pytest.raises(ShapeMismatchError, match="layout='references_by_bands'"):
        load_reference_matrix(tmp_path / "square.npy", bands=10)


# --------------------------------------------------------------------------- module form
def test_module_matches_the_functions_and_keeps_float64_buffers(shared_data: Path) -> None:
    target = SpectralAttentionTarget(mode="legacy", similarity="linear")
    assert target.bands == 10 and target.method == "shift" and target.regularization == 11
    image = _glacier_tile(shared_data, "2")[:, :, :64, :64]
    expected = attention_label(image, glacier_reference_matrix(), mode="legacy", similarity="linear")
    result = target(image)
    torch.testing.assert_close(result.similarity, expected.similarity)
    assert torch.equal(result.label_map, expected.label_map)
    target.half()
    assert target.whitening.dtype == torch.float64 and target.threshold.dtype == torch.float64
    assert target.state_dict() == {}  # nothing to store: everything follows from the matrix


def test_module_warns_when_the_images_are_digital_numbers(shared_data: Path) -> None:
    target = SpectralAttentionTarget()
    image = _glacier_tile(shared_data, "1")[:, :, :32, :32] * 10000
    with pytest.warns(UserWarning, match="same radiometric scale"):
        target(image)
