"""Principal component analysis of spectra, fitted on training pixels and applied to whole cubes.

Spectral–spatial networks such as HybridSN first reduce a scene's bands to a few
principal components. :class:`SpectralPCA` learns the components from the pixels of a
training mask only (so nothing of the test pixels leaks into the model) and maps a cube
``(C, H, W)`` to ``(k, H, W)``:

>>> pca = SpectralPCA(n_components=30).fit(cube, mask=split.mask("train"))   # doctest: +SKIP
>>> reduced = pca.transform(cube)                                            # (30, H, W) float32

Both passes read the cube a few rows at a time (``chunk_rows``), so a ``numpy.memmap``,
an h5py dataset or any array-like with ``shape``, ``dtype`` and slicing is never loaded
whole; ``transform(..., out=array)`` also writes into a caller's (memory-mapped) array.

The fit is exact, not randomised: the mean and the ``C × C`` covariance of the selected
pixels are accumulated in float64 in two passes (mean first, then centred scatter, which
avoids the cancellation of a one-pass sum of squares), and the components are the
covariance's eigenvectors by decreasing eigenvalue. The results equal scikit-learn's
``PCA(svd_solver="full")`` on the same pixels: the same ``explained_variance_`` (with
``n - 1`` in the denominator), ``explained_variance_ratio_``, and components with the same
sign convention (the largest-magnitude loading of each component is positive).

The fitted state is plain JSON (:meth:`SpectralPCA.to_dict`, :meth:`SpectralPCA.to_json`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.cube import Cube
from hsikit.errors import (
    ConfigError,
    CorruptFileError,
    DataFileNotFoundError,
    InvalidCubeError,
    NonFiniteError,
    ShapeMismatchError,
)
from hsikit.io.atomic import atomic_path

PCA_FORMAT = "hsikit.spectral_pca"

# float64 elements read per chunk (32 MiB) when chunk_rows is not given.
_CHUNK_ELEMENTS = 4_000_000


class SpectralPCA:
    """PCA over the band axis, fitted on training pixels (see the module docstring).

    Args:
        n_components: number k of components kept (HybridSN: 30 for Indian Pines, 15 otherwise).
        whiten: divide each component's scores by its standard deviation (unit variance on
            the training pixels).

    Attributes (after :meth:`fit`):
        mean_: ``(C,)`` band means of the training pixels (the cube's units).
        components_: ``(k, C)`` unit-norm principal axes, by decreasing variance.
        explained_variance_: ``(k,)`` variance along each axis (``n - 1`` denominator).
        explained_variance_ratio_: ``(k,)`` fraction of the total variance.
        n_samples_: number of training pixels used.
    """

    def __init__(self, n_components: int = 30, whiten: bool = False) -> None:
        if isinstance(n_components, bool) or int(n_components) != n_components or n_components < 1:
            raise ConfigError(f"SpectralPCA: n_components must be a positive integer, got {n_components!r}")
        self.n_components = int(n_components)
        self.whiten = bool(whiten)
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None
        self.explained_variance_: np.ndarray | None = None
        self.explained_variance_ratio_: np.ndarray | None = None
        self.n_samples_: int = 0

    # ------------------------------------------------------------------ fitting
    @property
    def fitted(self) -> bool:
        return self.components_ is not None

    @property
    def bands(self) -> int | None:
        """Number of input bands C (None before fitting)."""
        return None if self.mean_ is None else int(self.mean_.shape[0])

    def fit(
        self,
        source: Cube | np.ndarray | Any,
        mask: np.ndarray | None = None,
        *,
        chunk_rows: int | None = None,
    ) -> SpectralPCA:
        """Fit on the pixels of ``source`` where ``mask`` is True (the training pixels).

        Args:
            source: a :class:`Cube` (its nodata pixels are skipped) or an array-like
                ``(C, H, W)`` (``numpy.memmap``, h5py dataset...), read ``chunk_rows`` rows at a time.
            mask: ``(H, W)`` bool, True on training pixels; None uses every pixel.
            chunk_rows: rows per read; default keeps a chunk near 32 MiB of float64.

        Returns:
            ``self``.

        Raises:
            ShapeMismatchError: the mask does not have the cube's spatial shape.
            InvalidCubeError: fewer than 2 pixels selected, or more components than bands.
            NonFiniteError: a selected pixel holds NaN or Inf.
        """
        data, nodata_mask, nodata_value, label = _unpack(source)
        spatial = tuple(data.shape[1:])
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != spatial or mask.dtype != bool:
                raise ShapeMismatchError(
                    f"{label}: the PCA fit mask must be a bool array of the cube's spatial shape {spatial}, got "
                    f"{mask.dtype} {mask.shape}; pass the training mask of this scene (e.g. split.mask('train'))"
                )
        chunks = _row_chunks(data.shape, chunk_rows)

        def selected_blocks():
            for start, stop in chunks:
                selected = np.ones((stop - start, spatial[1]), dtype=bool) if mask is None else mask[start:stop].copy()
                if nodata_mask is not None:
                    selected &= ~nodata_mask[start:stop]
                if not selected.any():
                    continue
                block = np.asarray(data[:, start:stop], dtype=np.float64)
                if nodata_value is not None:
                    selected &= ~np.all(block == nodata_value, axis=0)
                values = block[:, selected]  # (C, n)
                if values.shape[1] == 0:
                    continue
                if not np.all(np.isfinite(values)):
                    raise NonFiniteError(
                        f"{label}: training pixels in rows {start}..{stop - 1} hold NaN or Inf; mask them out of the "
                        "fit mask or load the cube with nonfinite='mask'"
                    )
                yield values

        bands = int(data.shape[0])
        total = np.zeros(bands, dtype=np.float64)
        count = 0
        for values in selected_blocks():
            total += values.sum(axis=1)
            count += values.shape[1]
        if count < 2:
            raise InvalidCubeError(
                f"{label}: PCA needs at least 2 training pixels, the mask selects {count}; check the training mask"
            )
        if self.n_components > bands:
            raise InvalidCubeError(
                f"{label}: cannot keep {self.n_components} principal components of {bands} bands; use "
                f"n_components <= {bands}"
            )
        mean = total / count
        scatter = np.zeros((bands, bands), dtype=np.float64)
        for values in selected_blocks():
            centred = values - mean[:, None]
            scatter += centred @ centred.T
        self._set_from_covariance(mean, scatter / (count - 1), count)
        return self

    def fit_spectra(self, spectra: np.ndarray) -> SpectralPCA:
        """Fit on training spectra ``(N, C)`` (all rows are used). Returns ``self``."""
        array = np.asarray(spectra)
        if array.ndim != 2:
            raise ShapeMismatchError(f"SpectralPCA.fit_spectra takes spectra (N, C), got shape {array.shape}")
        return self.fit(array.T[:, :, None])

    def _set_from_covariance(self, mean: np.ndarray, covariance: np.ndarray, count: int) -> None:
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues = np.maximum(eigenvalues[order], 0.0)  # round-off can make null directions slightly negative
        components = eigenvectors[:, order].T[: self.n_components]
        largest = np.argmax(np.abs(components), axis=1)
        signs = np.sign(components[np.arange(components.shape[0]), largest])
        components = components * np.where(signs == 0, 1.0, signs)[:, None]
        total_variance = float(eigenvalues.sum())
        self.mean_ = mean
        self.components_ = components
        self.explained_variance_ = eigenvalues[: self.n_components].copy()
        self.explained_variance_ratio_ = (
            self.explained_variance_ / total_variance if total_variance > 0 else np.zeros(self.n_components)
        )
        self.n_samples_ = int(count)

    # ------------------------------------------------------------------ applying
    def _projection(self) -> tuple[np.ndarray, np.ndarray]:
        """``(matrix (k, C), offset (k,))`` with ``scores = matrix @ x - offset``."""
        if not self.fitted:
            raise ConfigError(
                "SpectralPCA is not fitted: call fit(cube, mask=train_mask) first, or restore a saved state with "
                "SpectralPCA.from_dict / from_json"
            )
        assert self.components_ is not None and self.mean_ is not None and self.explained_variance_ is not None
        matrix = self.components_
        if self.whiten:
            matrix = matrix / np.sqrt(np.maximum(self.explained_variance_, np.finfo(np.float64).tiny))[:, None]
        return matrix, matrix @ self.mean_

    def transform(
        self,
        source: Cube | np.ndarray | Any,
        *,
        chunk_rows: int | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Project every pixel of a cube: ``(C, H, W)`` → ``(k, H, W)``, ``chunk_rows`` rows at a time.

        Args:
            source: a :class:`Cube` or an array-like ``(C, H, W)`` with the fitted band count.
            chunk_rows: rows per read (default: about 32 MiB of float64 per chunk).
            out: optional ``(k, H, W)`` floating array to write into (e.g. a ``numpy.memmap``).

        Returns:
            The scores, float32 ``(k, H, W)`` (``out`` itself when given).
        """
        matrix, offset = self._projection()
        data, _, _, label = _unpack(source)
        if data.shape[0] != matrix.shape[1]:
            raise ShapeMismatchError(
                f"{label}: the PCA was fitted on {matrix.shape[1]} bands, but the cube has {data.shape[0]} "
                f"(shape {tuple(data.shape)}); transform a cube with the same bands as the training cube"
            )
        height, width = int(data.shape[1]), int(data.shape[2])
        shape = (matrix.shape[0], height, width)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif tuple(out.shape) != shape or np.dtype(out.dtype).kind != "f":
            raise ShapeMismatchError(
                f"SpectralPCA.transform: out must be a floating array of shape {shape}, got {out.dtype} "
                f"{tuple(out.shape)}"
            )
        for start, stop in _row_chunks(data.shape, chunk_rows):
            block = np.asarray(data[:, start:stop], dtype=np.float64).reshape(data.shape[0], -1)
            scores = matrix @ block - offset[:, None]
            out[:, start:stop] = scores.reshape(shape[0], stop - start, width)
        return out

    def transform_spectra(self, spectra: np.ndarray) -> np.ndarray:
        """Project spectra ``(N, C)`` → scores ``(N, k)`` (float32, float64 for float64 input)."""
        matrix, offset = self._projection()
        array = np.asarray(spectra)
        if array.ndim != 2 or array.shape[1] != matrix.shape[1]:
            raise ShapeMismatchError(
                f"SpectralPCA.transform_spectra takes spectra (N, {matrix.shape[1]}), got shape {array.shape}"
            )
        scores = array.astype(np.float64, copy=False) @ matrix.T - offset
        return scores.astype(np.float64 if array.dtype == np.float64 else np.float32, copy=False)

    def inverse_transform_spectra(self, scores: np.ndarray) -> np.ndarray:
        """Back-project scores ``(N, k)`` to spectra ``(N, C)`` (the best rank-k approximation), float64."""
        matrix, offset = self._projection()
        array = np.asarray(scores, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != matrix.shape[0]:
            raise ShapeMismatchError(
                f"SpectralPCA.inverse_transform_spectra takes scores (N, {matrix.shape[0]}), got shape {array.shape}"
            )
        assert self.components_ is not None and self.mean_ is not None and self.explained_variance_ is not None
        if self.whiten:
            array = array * np.sqrt(self.explained_variance_)
        return array @ self.components_ + self.mean_

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly state: parameters and, once fitted, mean, components and variances."""
        state: dict[str, Any] = {
            "format": PCA_FORMAT,
            "n_components": self.n_components,
            "whiten": self.whiten,
            "bands": self.bands,
            "n_samples": self.n_samples_,
        }
        for key, value in (
            ("mean", self.mean_),
            ("components", self.components_),
            ("explained_variance", self.explained_variance_),
            ("explained_variance_ratio", self.explained_variance_ratio_),
        ):
            state[key] = None if value is None else value.tolist()
        return state

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], source: str = "<memory>") -> SpectralPCA:
        """Rebuild from :meth:`to_dict` output; :class:`ConfigError` names what is wrong."""
        if not isinstance(state, Mapping) or state.get("format") != PCA_FORMAT:
            raise ConfigError(f"{source}: not a SpectralPCA state (expected 'format': {PCA_FORMAT!r})")
        pca = cls(n_components=state.get("n_components", 0), whiten=bool(state.get("whiten", False)))
        if state.get("components") is None:
            return pca
        try:
            mean = np.asarray(state["mean"], dtype=np.float64)
            components = np.asarray(state["components"], dtype=np.float64)
            variance = np.asarray(state["explained_variance"], dtype=np.float64)
            ratio = np.asarray(state["explained_variance_ratio"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{source}: SpectralPCA state is incomplete or malformed ({exc}); save it again"
            ) from None
        k = pca.n_components
        if (
            mean.ndim != 1
            or components.shape != (k, mean.shape[0])
            or variance.shape != (k,)
            or ratio.shape != (k,)
            or not all(np.all(np.isfinite(a)) for a in (mean, components, variance, ratio))
        ):
            raise ConfigError(
                f"{source}: SpectralPCA arrays do not fit together (mean {mean.shape}, components {components.shape}, "
                f"variance {variance.shape} for n_components={k}) or hold non-finite values; save the state again"
            )
        pca.mean_, pca.components_ = mean, components
        pca.explained_variance_, pca.explained_variance_ratio_ = variance, ratio
        pca.n_samples_ = int(state.get("n_samples", 0))
        return pca

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically; returns the path."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> SpectralPCA:
        """Read a state written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise DataFileNotFoundError(path, "save the PCA first with SpectralPCA.to_json(path)")
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"'{path}': not valid JSON ({exc}); the PCA file is damaged") from None
        return cls.from_dict(state, source=f"'{path}'")

    def __repr__(self) -> str:
        state = f"bands={self.bands}, n_samples={self.n_samples_}" if self.fitted else "not fitted"
        return f"SpectralPCA(n_components={self.n_components}, whiten={self.whiten}) [{state}]"


# --------------------------------------------------------------------------- helpers


def _unpack(source: Any) -> tuple[Any, np.ndarray | None, float | None, str]:
    """``(array-like (C, H, W), explicit nodata mask, nodata value, label for messages)``."""
    if isinstance(source, Cube):
        nodata = source.nodata
        value = None if nodata is None or math.isnan(nodata) else nodata
        return source.data, source.explicit_nodata_mask, value, source.source_label
    if not isinstance(source, np.ndarray):
        if hasattr(source, "detach"):  # torch tensor
            source = source.detach().cpu().numpy()
        elif not (hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__")):
            source = np.asarray(source)
    if len(source.shape) != 3:
        raise ShapeMismatchError(
            f"SpectralPCA takes a cube (C, H, W), got shape {tuple(source.shape)}; use Cube.from_hwc for (H, W, C) "
            "data or fit_spectra / transform_spectra for (N, C) spectra"
        )
    if np.dtype(source.dtype).kind not in "biuf":
        raise InvalidCubeError(f"SpectralPCA: cannot project a {source.dtype} array; convert it to numbers")
    return source, None, None, "<array>"


def _row_chunks(shape: tuple[int, ...], chunk_rows: int | None) -> list[tuple[int, int]]:
    rows = int(shape[1])
    if chunk_rows is None:
        per_row = max(1, int(shape[0]) * int(shape[2]))
        chunk_rows = max(1, _CHUNK_ELEMENTS // per_row)
    if isinstance(chunk_rows, bool) or int(chunk_rows) != chunk_rows or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    return [(start, min(start + int(chunk_rows), rows)) for start in range(0, rows, int(chunk_rows))]


__all__ = ["PCA_FORMAT", "SpectralPCA"]
