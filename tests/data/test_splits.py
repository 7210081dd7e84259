"""Tests of train/val/test splits (random, per-class count, spatially disjoint blocks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from hsikit.data.splits import (
    Split,
    SplitWarning,
    count_split,
    disjoint_split,
    make_split,
    random_split,
)
from hsikit.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    InvalidLabelsError,
    ShapeMismatchError,
    SplitError,
    UnknownNameError,
)

INDIAN_PINES_CLASS_SIZES = {
    1: 46, 2: 1428, 3: 830, 4: 237, 5: 483, 6: 730, 7: 28, 8: 478,
    9: 20, 10: 972, 11: 2455, 12: 593, 13: 205, 14: 1265, 15: 386, 16: 93,
}  # fmt: skip


@pytest.fixture(scope="module")
def indian_pines_labels(shared_data: Path) -> np.ndarray:
    return np.load(shared_data / "indian_pines" / "Indian_pines_gt.npy")


def blob_label_map(seed: int, height: int = 90, width: int = 120, classes: int = 6) -> np.ndarray:
    """Spatially coherent classes (argmax of smoothed noise), with an unlabelled (0) band of rows."""
    rng = np.random.default_rng(seed)
    fields = ndimage.gaussian_filter(rng.normal(size=(classes, height, width)), sigma=(0, 6, 6))
    labels = (np.argmax(fields, axis=0) + 1).astype(np.int32)
    labels[:, : width // 8] = 0
    labels[height // 2 : height // 2 + 3] = 0
    return labels


def holdout_reach_violations(split: Split, patch_size: int) -> int:
    """Training pixels whose p x p patch contains a val or test pixel, counted by brute force."""
    holdout = split.mask("val") | split.mask("test")
    half = patch_size // 2
    violations = 0
    for row, col in zip(*split.rows_cols("train")):
        window = holdout[max(row - half, 0) : row + half + 1, max(col - half, 0) : col + half + 1]
        violations += int(window.any())
    return violations


def assert_no_patch_overlap(split: Split, patch_size: int) -> None:
    holdout = split.mask("val") | split.mask("test")
    assert holdout.any() and split.mask("train").any()
    reach = ndimage.binary_dilation(holdout, structure=np.ones((patch_size, patch_size), dtype=bool))
    assert not np.any(reach & split.mask("train")), "a training patch overlaps a val/test pixel (dilation check)"
    assert holdout_reach_violations(split, patch_size) == 0, "a training patch overlaps a val/test pixel (brute force)"


# ---------------------------------------------------------------------------- disjoint
@pytest.mark.filterwarnings("ignore::hsikit.data.splits.SplitWarning")
@pytest.mark.parametrize("patch_size", [5, 7, 9, 11])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_disjoint_split_training_patches_never_reach_test_on_indian_pines(
    indian_pines_labels: np.ndarray, patch_size: int, seed: int
) -> None:
    split = disjoint_split(indian_pines_labels, train=0.5, val=0.1, patch_size=patch_size, seed=seed)
    assert_no_patch_overlap(split, patch_size)
    # Every class of the scene keeps training pixels (the stratification / repair passes).
    assert sorted(split.counts("train")) == list(range(1, 17))
    assert split.params["buffer"] == patch_size // 2
    assert split.params["buffer_removed"] > 0


@pytest.mark.filterwarnings("ignore::hsikit.data.splits.SplitWarning")
@pytest.mark.parametrize("patch_size", [5, 7, 9, 11])
@pytest.mark.parametrize("map_seed", [3, 4])
def test_disjoint_split_training_patches_never_reach_test_on_generated_map(patch_size: int, map_seed: int) -> None:
    labels = blob_label_map(map_seed)
    for seed in (0, 1):
        split = disjoint_split(labels, train=0.6, val=0.2, patch_size=patch_size, block_size=(12, 16), seed=seed)
        assert_no_patch_overlap(split, patch_size)


def test_the_overlap_check_detects_a_leaking_split(indian_pines_labels: np.ndarray) -> None:
    # A random pixel split has training pixels next to test pixels: the checker must see it.
    leaking = random_split(indian_pines_labels, 0.5, seed=0)
    assert holdout_reach_violations(leaking, 5) > 1000


@pytest.mark.filterwarnings("ignore::hsikit.data.splits.SplitWarning")
def test_disjoint_split_assigns_whole_blocks(indian_pines_labels: np.ndarray) -> None:
    split = disjoint_split(indian_pines_labels, 0.5, 0.2, patch_size=7, block_size=(20, 25), seed=5)
    block_of = (np.arange(145)[:, None] // 20) * 6 + (np.arange(145)[None, :] // 25)
    part_of_block: dict[int, str] = {}
    for part in ("train", "val", "test"):
        for block in np.unique(block_of[split.mask(part)]):
            assert part_of_block.setdefault(int(block), part) == part, f"block {block} is split between parts"
    labelled = indian_pines_labels > 0
    assigned = split.mask("train") | split.mask("val") | split.mask("test")
    # Only the buffer removes labelled pixels, and only from train.
    assert int((labelled & ~assigned).sum()) == split.params["buffer_removed"]
    assert not np.any(assigned & ~labelled)


@pytest.mark.filterwarnings("ignore::hsikit.data.splits.SplitWarning")
def test_disjoint_split_patch_size_one_removes_nothing(indian_pines_labels: np.ndarray) -> None:
    split = disjoint_split(indian_pines_labels, 0.5, patch_size=1, seed=0)
    assert split.params["buffer_removed"] == 0
    assert sum(len(split.indices(p)) for p in ("train", "val", "test")) == 10249


def test_disjoint_split_rejects_even_patch_and_bad_fractions(indian_pines_labels: np.ndarray) -> None:
    with pytest.raises(SplitError, match="patch_size=6 is even.*5 or 7"):
        disjoint_split(indian_pines_labels, 0.5, patch_size=6)
    with pytest.raises(SplitError, match=r"train=0.8 \+ val=0.4 = 1.2 exceed 1"):
        disjoint_split(indian_pines_labels, 0.8, 0.4)
    with pytest.raises(SplitError, match="fractions in \\[0, 1\\]; got train=1.5"):
        disjoint_split(indian_pines_labels, 1.5)


def test_disjoint_split_warns_when_a_class_lives_in_one_block() -> None:
    labels = np.ones((40, 40), dtype=np.int32)
    labels[2:5, 2:5] = 2  # class 2 sits inside one 10 x 10 block: it cannot reach test
    with pytest.warns(SplitWarning, match=r"test lacks class\(es\) \[2\]"):
        split = disjoint_split(labels, 0.5, patch_size=3, block_size=10, seed=0)
    assert split.counts("train")[2] == 9


# ---------------------------------------------------------------------------- random / count
def test_random_split_fractions_are_stratified_per_class(indian_pines_labels: np.ndarray) -> None:
    split = random_split(indian_pines_labels, train=0.1, val=0.2, seed=7)
    for value, size in INDIAN_PINES_CLASS_SIZES.items():
        n_train = max(1, math.floor(0.1 * size + 0.5))
        n_val = max(1, math.floor(0.2 * size + 0.5))
        assert split.counts("train")[value] == n_train
        assert split.counts("val")[value] == n_val
        assert split.counts("test")[value] == size - n_train - n_val
    # the class counts agree with the labels under the stored indices
    for part in ("train", "val", "test"):
        values, counts = np.unique(indian_pines_labels.reshape(-1)[split.indices(part)], return_counts=True)
        assert dict(zip(values.tolist(), counts.tolist())) == split.counts(part)
    assert not (split.mask("train") & split.mask("test")).any()
    union = split.mask("train") | split.mask("val") | split.mask("test")
    np.testing.assert_array_equal(union, indian_pines_labels > 0)


def test_random_split_counts_per_class_and_explicit_test(indian_pines_labels: np.ndarray) -> None:
    split = random_split(indian_pines_labels, train=10, val=2, test=0.25, seed=1)
    for value, size in INDIAN_PINES_CLASS_SIZES.items():
        assert split.counts("train")[value] == 10
        assert split.counts("val")[value] == 2
        assert split.counts("test")[value] == math.floor(0.25 * size + 0.5)
    with pytest.raises(SplitError, match=r"class 7 has 28 labelled pixel\(s\), fewer than asked \(train=15 \+ val=3"):
        random_split(indian_pines_labels, train=15, val=3, test=0.5, seed=1)


def test_random_split_per_class_mapping() -> None:
    labels = np.array([[1, 1, 1, 2], [2, 2, 2, 0]])
    split = random_split(labels, train={1: 2, 2: 1}, seed=0)
    assert split.counts("train") == {1: 2, 2: 1}
    assert split.counts("test") == {1: 1, 2: 3}


def test_random_split_errors_name_the_class_and_counts(indian_pines_labels: np.ndarray) -> None:
    with pytest.raises(SplitError, match=r"train=1.5 is not a fraction in \[0, 1\]"):
        random_split(indian_pines_labels, train=1.5)
    with pytest.raises(SplitError, match=r"fractions 0.7 \+ 0.5 = 1.2 exceed 1"):
        random_split(indian_pines_labels, train=0.7, val=0.5)
    with pytest.raises(SplitError, match=r"class 9 has 20 labelled pixel\(s\), fewer than train=25"):
        random_split(indian_pines_labels, train=25)
    with pytest.raises(SplitError, match=r"class 9 has 20 labelled pixel\(s\), fewer than asked \(train=15 \+ val=10"):
        random_split(indian_pines_labels, train=15, val=10)
    with pytest.raises(SplitError, match=r"class\(es\) \[17\] have 0 labelled pixels"):
        random_split(indian_pines_labels, train=0.1, classes=[1, 17])
    with pytest.raises(SplitError, match="no labelled pixel"):
        random_split(np.zeros((5, 5), dtype=np.uint8))
    with pytest.raises(InvalidLabelsError, match=r"must be 2-D \(H, W\), got shape \(2, 5, 5\)"):
        random_split(np.ones((2, 5, 5), dtype=np.uint8))
    with pytest.raises(InvalidLabelsError, match="non-integer or non-finite values"):
        random_split(np.full((3, 3), 1.5))
    float_labels = random_split(np.array([[1.0, 2.0], [2.0, 1.0]]), train=1, seed=0)
    assert float_labels.counts("train") == {1: 1, 2: 1}


def test_count_split_fixed_counts(indian_pines_labels: np.ndarray) -> None:
    for per_class in (5, 10):
        split = count_split(indian_pines_labels, train=per_class, val=2, seed=3)
        assert split.counts("train") == {value: per_class for value in INDIAN_PINES_CLASS_SIZES}
        assert split.counts("val") == {value: 2 for value in INDIAN_PINES_CLASS_SIZES}
        assert split.counts("test") == {v: n - per_class - 2 for v, n in INDIAN_PINES_CLASS_SIZES.items()}


def test_count_split_insufficient_classes_error_or_fraction(indian_pines_labels: np.ndarray) -> None:
    with pytest.raises(SplitError) as info:
        count_split(indian_pines_labels, train=50)
    message = str(info.value)
    for expected in ("class 1 has 46 (needs 51)", "class 7 has 28 (needs 51)", "class 9 has 20 (needs 51)"):
        assert expected in message
    assert "on_insufficient='fraction'" in message and "class 2 " not in message

    with pytest.warns(SplitWarning, match="3 class\\(es\\) have fewer pixels than asked"):
        split = count_split(indian_pines_labels, train=50, on_insufficient="fraction", fallback_fraction=0.5)
    train = split.counts("train")
    assert (train[1], train[7], train[9]) == (23, 14, 10)
    assert all(train[v] == 50 for v in INDIAN_PINES_CLASS_SIZES if v not in (1, 7, 9))
    assert split.counts("test")[9] == 10 and split.counts("test")[2] == 1428 - 50

    with pytest.warns(SplitWarning):
        shared = count_split(indian_pines_labels, train=30, val=10, on_insufficient="fraction", fallback_fraction=0.5)
    # class 9: 10 pixels for train+val shared 30:10 -> 8 train, 2 val
    assert (shared.counts("train")[9], shared.counts("val")[9], shared.counts("test")[9]) == (8, 2, 10)


def test_count_split_rejects_fractions() -> None:
    with pytest.raises(SplitError, match="takes pixel counts per class, got train=0.1; use random_split"):
        count_split(np.ones((4, 4), dtype=int), train=0.1)  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::hsikit.data.splits.SplitWarning")
@pytest.mark.parametrize(
    ("mode", "kwargs"),
    [("random", {"train": 0.2, "val": 0.1}), ("count", {"train": 10}), ("disjoint", {"train": 0.5, "patch_size": 5})],
)
def test_splits_are_deterministic_per_seed(indian_pines_labels: np.ndarray, mode: str, kwargs: dict) -> None:
    first = make_split(indian_pines_labels, mode, seed=11, **kwargs)
    again = make_split(indian_pines_labels, mode, seed=11, **kwargs)
    other = make_split(indian_pines_labels, mode, seed=12, **kwargs)
    assert first == again
    np.testing.assert_array_equal(first.train, again.train)
    assert first != other
    assert not np.array_equal(first.train, other.train)
    assert first.mode == mode and first.seed == 11


def test_make_split_unknown_mode(indian_pines_labels: np.ndarray) -> None:
    with pytest.raises(UnknownNameError, match="unknown split mode 'blocks'.*disjoint"):
        make_split(indian_pines_labels, "blocks")


# ---------------------------------------------------------------------------- Split object
@pytest.mark.filterwarnings("ignore::hsikit.data.splits.SplitWarning")
def test_split_json_round_trip(indian_pines_labels: np.ndarray, tmp_path: Path) -> None:
    for split in (
        random_split(indian_pines_labels, 0.1, 0.1, seed=2),
        disjoint_split(indian_pines_labels, 0.5, 0.1, patch_size=9, seed=2),
    ):
        path = split.to_json(tmp_path / "runs" / f"{split.mode}.json")
        loaded = Split.from_json(path)
        assert loaded == split
        for part, mask in split.masks().items():
            np.testing.assert_array_equal(loaded.mask(part), mask)
        assert loaded.params == split.params and loaded.counts("train") == split.counts("train")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["disjoint.json", "random.json"]


def test_split_masks_and_rows_cols() -> None:
    labels = np.array([[0, 1, 1], [2, 2, 0]])
    split = random_split(labels, train=1, seed=0)
    masks = split.masks()
    assert set(masks) == {"train", "val", "test"}
    assert masks["train"].shape == (2, 3) and masks["train"].dtype == bool
    assert masks["train"].sum() == 2 and masks["test"].sum() == 2 and masks["val"].sum() == 0
    rows, cols = split.rows_cols("train")
    np.testing.assert_array_equal(np.sort(labels[rows, cols]), [1, 2])
    np.testing.assert_array_equal(split.train, np.sort(rows * 3 + cols))


def test_split_from_json_errors(tmp_path: Path, indian_pines_labels: np.ndarray) -> None:
    with pytest.raises(DataFileNotFoundError, match="missing.json"):
        Split.from_json(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        Split.from_json(broken)
    payload = random_split(indian_pines_labels, 0.1, seed=0).to_dict()
    del payload["indices"]
    (tmp_path / "nokey.json").write_text(json.dumps(payload))
    with pytest.raises(CorruptFileError, match="lacks the key 'indices'"):
        Split.from_json(tmp_path / "nokey.json")
    payload = random_split(indian_pines_labels, 0.1, seed=0).to_dict()
    payload["indices"]["val"] = payload["indices"]["train"][:3]
    (tmp_path / "overlap.json").write_text(json.dumps(payload))
    with pytest.raises(SplitError, match="'val' shares 3 pixel"):
        Split.from_json(tmp_path / "overlap.json")


def test_split_check_labels(indian_pines_labels: np.ndarray) -> None:
    split = random_split(indian_pines_labels, 0.1, seed=0)
    split.check_labels(indian_pines_labels)
    with pytest.raises(ShapeMismatchError, match=r"\(145, 144\) do not match the split's image shape \(145, 145\)"):
        split.check_labels(indian_pines_labels[:, :-1])
