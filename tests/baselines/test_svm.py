"""Tests of the RBF-SVM baseline on real Indian Pines pixels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from hsikit.baselines.svm import SpectralSVM
from hsikit.errors import ConfigError, InvalidLabelsError, NonFiniteError, ShapeMismatchError, SplitError

# The nine Indian Pines classes with more than 400 labelled pixels (the usual 9-class subset).
CLASSES = (2, 3, 5, 6, 8, 10, 11, 12, 14)
TRAIN_PER_CLASS = 40


@pytest.fixture(scope="module")
def split(shared_data) -> dict[str, np.ndarray]:
    """40 random training pixels per class; every other pixel of those classes is a test pixel."""
    folder = shared_data / "indian_pines"
    cube = np.load(folder / "Indian_pines_corrected.npy")  # (145, 145, 200) uint16
    labels = np.load(folder / "Indian_pines_gt.npy")
    rng = np.random.default_rng(0)
    train = np.zeros(labels.shape, dtype=bool)
    for label in CLASSES:
        rows, cols = np.nonzero(labels == label)
        chosen = rng.choice(rows.size, TRAIN_PER_CLASS, replace=False)
        train[rows[chosen], cols[chosen]] = True
    test = np.isin(labels, CLASSES) & ~train
    return {
        "cube": cube,
        "labels": labels,
        "train_x": cube[train].astype(np.float64),
        "train_y": labels[train].astype(np.int64),
        "test_x": cube[test].astype(np.float64),
        "test_y": labels[test].astype(np.int64),
    }


@pytest.fixture(scope="module")
def fitted(split) -> SpectralSVM:
    return SpectralSVM(cv_folds=3).fit(split["train_x"], split["train_y"])


def test_svm_beats_chance_by_a_wide_margin_on_indian_pines(split, fitted) -> None:
    assert split["train_x"].shape == (9 * TRAIN_PER_CLASS, 200)
    predicted = fitted.predict(split["test_x"])
    accuracy = float(np.mean(predicted == split["test_y"]))
    chance = 1.0 / len(CLASSES)
    assert accuracy > 0.6 > 5 * chance  # 0.73 with 40 pixels per class and this seed
    assert set(np.unique(predicted)) <= set(CLASSES)  # original label values come back
    assert fitted.best_params_["C"] in fitted.c_values and fitted.best_params_["gamma"] in fitted.gamma_values
    assert len(fitted.cv_results_) == len(fitted.c_values) * len(fitted.gamma_values)
    best = max(fitted.cv_results_, key=lambda row: row["mean_accuracy"])
    assert best["mean_accuracy"] == pytest.approx(fitted.best_score_)
    assert fitted.cv_folds_used_ == 3


def test_standardisation_is_learnt_from_training_pixels_only(split, fitted) -> None:
    np.testing.assert_allclose(fitted.scaler_.mean_, split["train_x"].mean(axis=0))
    np.testing.assert_allclose(fitted.scaler_.scale_, split["train_x"].std(axis=0))
    everything = np.concatenate([split["train_x"], split["test_x"]])
    assert not np.allclose(fitted.scaler_.mean_, everything.mean(axis=0), rtol=1e-3)
    # the cross-validation scaled each fold with that fold's training part only: redo it by hand
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    scores = []
    for train_index, held_out in folds.split(split["train_x"], split["train_y"]):
        scaler = StandardScaler().fit(split["train_x"][train_index])
        svc = SVC(kernel="rbf", C=fitted.best_params_["C"], gamma=fitted.best_params_["gamma"])
        svc.fit(scaler.transform(split["train_x"][train_index]), split["train_y"][train_index])
        scores.append(svc.score(scaler.transform(split["train_x"][held_out]), split["train_y"][held_out]))
    assert float(np.mean(scores)) == pytest.approx(fitted.best_score_, abs=1e-12)


def test_predict_cube_equals_pixelwise_prediction(split, fitted) -> None:
    window = np.ascontiguousarray(np.moveaxis(split["cube"][30:45, 60:80], -1, 0))  # (200, 15, 20)
    class_map = fitted.predict_cube(window, chunk_rows=4)
    assert class_map.shape == (15, 20)
    expected = fitted.predict(split["cube"][30:45, 60:80].reshape(-1, 200)).reshape(15, 20)
    np.testing.assert_array_equal(class_map, expected)
    scores = fitted.decision_function(split["test_x"][:3])
    assert scores.shape == (3, len(CLASSES))


def test_small_classes_reduce_the_folds_and_single_pixels_are_refused() -> None:
    rng = np.random.default_rng(1)
    spectra = np.concatenate([rng.normal(0, 1, (10, 5)), rng.normal(3, 1, (2, 5))])
    labels = np.array([1] * 10 + [2] * 2)
    svm = SpectralSVM(c_values=[1.0], gamma_values=[0.1]).fit(spectra, labels)
    assert svm.cv_folds_used_ == 2
    with pytest.raises(SplitError, match=r"\[2\] have a single training pixel"):
        SpectralSVM().fit(spectra[:11], labels[:11])


def test_bad_inputs_are_refused_with_clear_messages(fitted) -> None:
    with pytest.raises(ShapeMismatchError, match="labels must be"):
        SpectralSVM().fit(np.zeros((4, 3)), np.zeros(5, dtype=int))
    with pytest.raises(InvalidLabelsError, match="1 class"):
        SpectralSVM().fit(np.zeros((4, 3)), np.ones(4, dtype=int))
    with pytest.raises(NonFiniteError, match="NaN"):
        SpectralSVM().fit(np.full((4, 3), np.nan), np.array([0, 0, 1, 1]))
    with pytest.raises(ShapeMismatchError, match="trained on 200 bands"):
        fitted.predict(np.zeros((2, 199)))
    with pytest.raises(ConfigError, match="not fitted"):
        SpectralSVM().predict(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="c_values"):
        SpectralSVM(c_values=[0.0])
