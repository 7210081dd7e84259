"""The classical hyperspectral baseline: an RBF support vector machine on per-pixel spectra.

:class:`SpectralSVM` standardises each band, trains scikit-learn's ``SVC(kernel="rbf")``
and picks ``C`` and ``gamma`` by a grid search with stratified k-fold cross-validation.
Everything is learnt from the training pixels passed to :meth:`SpectralSVM.fit`: the
standardisation is a step of the cross-validated pipeline, so in every fold it is fitted
on that fold's training part only, and the final model (scaler and SVM) is refitted on
all training pixels with the best parameters. Test pixels are never seen before
:meth:`SpectralSVM.predict`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from hsikit.cube import Cube
from hsikit.errors import ConfigError, InvalidLabelsError, NonFiniteError, ShapeMismatchError, SplitError

DEFAULT_C_VALUES: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""Default grid of the SVM penalty C."""
DEFAULT_GAMMA_VALUES: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""Default grid of the RBF width gamma (for standardised bands; 1 / bands is typical)."""


class SpectralSVM:
    """RBF SVM on standardised spectra with a cross-validated grid search over C and gamma.

    Args:
        c_values: candidate penalties C (> 0).
        gamma_values: candidate RBF widths gamma (> 0), for unit-variance bands.
        cv_folds: folds of the stratified cross-validation (reduced to the size of the
            smallest class when that is smaller, but at least 2).
        random_state: seed of the fold shuffling.
        n_jobs: parallel fits of the grid search (scikit-learn ``n_jobs``).
        class_weight: ``None`` or ``"balanced"`` (weights inversely proportional to class frequency).

    Attributes (after :meth:`fit`):
        classes_: the sorted training labels (``predict`` returns these values).
        best_params_: ``{"C": ..., "gamma": ...}`` of the chosen model.
        best_score_: its mean cross-validated accuracy.
        cv_results_: one ``{"C", "gamma", "mean_accuracy", "std_accuracy"}`` dict per grid point.
        cv_folds_used_: the number of folds actually used.
        scaler_: the fitted ``StandardScaler`` (training-pixel means and deviations).
        svc_: the fitted ``SVC``.
    """

    def __init__(
        self,
        c_values: Sequence[float] = DEFAULT_C_VALUES,
        gamma_values: Sequence[float] = DEFAULT_GAMMA_VALUES,
        cv_folds: int = 5,
        random_state: int = 0,
        n_jobs: int = 1,
        class_weight: str | None = None,
    ) -> None:
        for name, values in (("c_values", c_values), ("gamma_values", gamma_values)):
            if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values):
                raise ConfigError(f"SpectralSVM: {name} must be a non-empty list of positive numbers, got {values!r}")
        if isinstance(cv_folds, bool) or int(cv_folds) != cv_folds or cv_folds < 2:
            raise ConfigError(f"SpectralSVM: cv_folds must be an integer >= 2, got {cv_folds!r}")
        if class_weight not in (None, "balanced"):
            raise ConfigError(f"SpectralSVM: class_weight must be None or 'balanced', got {class_weight!r}")
        self.c_values = [float(v) for v in c_values]
        self.gamma_values = [float(v) for v in gamma_values]
        self.cv_folds = int(cv_folds)
        self.random_state = int(random_state)
        self.n_jobs = int(n_jobs)
        self.class_weight = class_weight
        self.pipeline_: Pipeline | None = None
        self.classes_: np.ndarray | None = None
        self.best_params_: dict[str, float] = {}
        self.best_score_: float = float("nan")
        self.cv_results_: list[dict[str, float]] = []
        self.cv_folds_used_: int = 0

    @property
    def fitted(self) -> bool:
        return self.pipeline_ is not None

    @property
    def scaler_(self) -> StandardScaler:
        return self._require_fitted().named_steps["scale"]

    @property
    def svc_(self) -> SVC:
        return self._require_fitted().named_steps["svm"]

    def fit(self, spectra: np.ndarray, labels: np.ndarray) -> SpectralSVM:
        """Grid-search C and gamma on the training pixels, then refit on all of them.

        Args:
            spectra: training spectra ``(N, C)``, any real dtype (finite values).
            labels: their class labels ``(N,)`` (integers; any values, e.g. 1..16).

        Returns:
            ``self``.

        Raises:
            ShapeMismatchError: not ``(N, C)`` and ``(N,)`` with the same N.
            NonFiniteError: NaN or Inf in the spectra.
            InvalidLabelsError: fewer than 2 classes, or non-integer labels.
            SplitError: a class has a single training pixel (stratified CV needs 2).
        """
        features = self._check_spectra(spectra, "fit")
        targets = np.asarray(labels)
        if targets.ndim != 1 or targets.shape[0] != features.shape[0]:
            raise ShapeMismatchError(
                f"SpectralSVM.fit: labels must be (N,) = ({features.shape[0]},) for spectra {features.shape}, got "
                f"shape {targets.shape}; pass the labels of the training pixels only"
            )
        if targets.dtype.kind == "f":
            if not np.all(np.isfinite(targets)) or not np.all(np.mod(targets, 1) == 0):
                raise InvalidLabelsError(
                    "SpectralSVM.fit: labels must be whole class ids, got fractional or NaN values"
                )
            targets = targets.astype(np.int64)
        elif targets.dtype.kind not in "iub":
            raise InvalidLabelsError(f"SpectralSVM.fit: labels must be integer class ids, got dtype {targets.dtype}")
        classes, counts = np.unique(targets, return_counts=True)
        if classes.size < 2:
            raise InvalidLabelsError(
                f"SpectralSVM.fit: the training labels hold {classes.size} class(es); a classifier needs at least 2"
            )
        smallest = int(counts.min())
        if smallest < 2:
            lonely = classes[counts < 2].tolist()
            raise SplitError(
                f"SpectralSVM.fit: class(es) {lonely} have a single training pixel; stratified cross-validation needs "
                "at least 2 per class: add training pixels or drop those classes"
            )
        folds = min(self.cv_folds, smallest)
        pipeline = Pipeline(
            [("scale", StandardScaler()), ("svm", SVC(kernel="rbf", class_weight=self.class_weight))]
        )
        search = GridSearchCV(
            pipeline,
            {"svm__C": self.c_values, "svm__gamma": self.gamma_values},
            scoring="accuracy",
            cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state),
            n_jobs=self.n_jobs,
            refit=True,
        )
        search.fit(features, targets)
        self.pipeline_ = search.best_estimator_
        self.classes_ = classes
        self.cv_folds_used_ = folds
        self.best_params_ = {
            "C": float(search.best_params_["svm__C"]),
            "gamma": float(search.best_params_["svm__gamma"]),
        }
        self.best_score_ = float(search.best_score_)
        results = search.cv_results_
        self.cv_results_ = [
            {
                "C": float(params["svm__C"]),
                "gamma": float(params["svm__gamma"]),
                "mean_accuracy": float(mean),
                "std_accuracy": float(std),
            }
            for params, mean, std in zip(results["params"], results["mean_test_score"], results["std_test_score"])
        ]
        return self

    def predict(self, spectra: np.ndarray) -> np.ndarray:
        """Labels ``(N,)`` (values of :attr:`classes_`) of spectra ``(N, C)``."""
        pipeline = self._require_fitted()
        return pipeline.predict(self._check_spectra(spectra, "predict"))

    def decision_function(self, spectra: np.ndarray) -> np.ndarray:
        """One-vs-rest decision values ``(N, K)`` (columns in :attr:`classes_` order; ``(N,)`` for 2 classes)."""
        pipeline = self._require_fitted()
        return pipeline.decision_function(self._check_spectra(spectra, "decision_function"))

    def predict_cube(self, cube: Cube | np.ndarray | Any, *, chunk_rows: int = 16) -> np.ndarray:
        """Class map ``(H, W)`` of a cube ``(C, H, W)`` (Cube, array or memmap), ``chunk_rows`` rows at a time."""
        data = cube.data if isinstance(cube, Cube) else cube
        if len(data.shape) != 3:
            raise ShapeMismatchError(f"SpectralSVM.predict_cube takes a cube (C, H, W), got shape {tuple(data.shape)}")
        if isinstance(chunk_rows, bool) or int(chunk_rows) != chunk_rows or chunk_rows < 1:
            raise ConfigError(f"SpectralSVM.predict_cube: chunk_rows must be a positive integer, got {chunk_rows!r}")
        self._require_fitted()
        assert self.classes_ is not None
        bands, height, width = (int(n) for n in data.shape)
        result = np.empty((height, width), dtype=self.classes_.dtype)
        for start in range(0, height, int(chunk_rows)):
            stop = min(start + int(chunk_rows), height)
            block = np.asarray(data[:, start:stop]).reshape(bands, -1).T
            result[start:stop] = self.predict(block).reshape(stop - start, width)
        return result

    # ------------------------------------------------------------------ helpers
    def _require_fitted(self) -> Pipeline:
        if self.pipeline_ is None:
            raise ConfigError("SpectralSVM is not fitted: call fit(train_spectra, train_labels) first")
        return self.pipeline_

    def _check_spectra(self, spectra: Any, where: str) -> np.ndarray:
        features = np.asarray(spectra)
        if features.ndim != 2 or features.shape[0] == 0:
            raise ShapeMismatchError(
                f"SpectralSVM.{where}: spectra must be a non-empty (N, C) array, got shape {features.shape}; "
                "for a (C, H, W) cube use predict_cube or cube.reshape(C, -1).T"
            )
        if features.dtype.kind not in "biuf":
            raise ShapeMismatchError(f"SpectralSVM.{where}: spectra must be numbers, got dtype {features.dtype}")
        features = features.astype(np.float64, copy=False)
        if not np.all(np.isfinite(features)):
            raise NonFiniteError(f"SpectralSVM.{where}: the spectra hold NaN or Inf; remove or mask those pixels first")
        if self.pipeline_ is not None and where != "fit":
            expected = int(self.scaler_.n_features_in_)
            if features.shape[1] != expected:
                raise ShapeMismatchError(
                    f"SpectralSVM.{where}: the SVM was trained on {expected} bands, got spectra with "
                    f"{features.shape[1]}; use the same bands as the training spectra"
                )
        return features

    def __repr__(self) -> str:
        state = f"best {self.best_params_}, cv accuracy {self.best_score_:.3f}" if self.fitted else "not fitted"
        return f"SpectralSVM({len(self.c_values)}×{len(self.gamma_values)} grid, {self.cv_folds} folds) [{state}]"


__all__ = ["DEFAULT_C_VALUES", "DEFAULT_GAMMA_VALUES", "SpectralSVM"]
