"""Spectral-similarity attention supervision of SSMGNet (Lecheng-Wang/SSMGNet, ``utils/sf_cnm_threshold.py``).

SSMGNet trains its spatial-attention map ``w4`` (B, 1, H, W) towards a target computed
from the image alone: how well each pixel matches one of a few *reference spectra*.

Notation: ``A`` (n bands × m references, one spectrum per column, see
:mod:`hsikit.data.reference_spectra`), a pixel spectrum ``s`` (n,), ``e_i`` the i-th
one-hot vector of length m.

**Whitening operator.** Every distance is an L1 norm after a linear map ``W``, and each
reference is paired with a "one-hot offset" ``P`` such that ``W a_i + P e_i = e_i``:

* ``method="shift"`` (the reference; square ``A`` only): ``W = (A + Λ I)⁻¹``, ``P = Λ W``,
  with ``Λ = n + 1`` by default. The shift makes the ill-conditioned ``A`` (condition
  number ≈ 5.6e3 for the default glacier matrix) well conditioned (≈ 1.4).
* ``method="ridge"`` (any m, the generalisation to m ≠ n): a regularised pseudo-inverse,
  ``W = (AᵀA + λ I)⁻¹ Aᵀ`` (m × n) and ``P = λ (AᵀA + λ I)⁻¹``, with
  ``λ = ridge · trace(AᵀA) / m``, i.e. ``ridge`` times the mean squared norm of a
  reference spectrum (default ``ridge = 0.01``). ``x = W s + P e_i`` is then the ridge
  unmixing of ``s`` pulled towards the pure material ``e_i``
  (``argmin_x ‖A x − s‖² + λ ‖x − e_i‖²``), exactly as the shifted solve of the reference
  is a pulled solve; as ``λ → 0`` and for full column rank ``W`` tends to ``A⁺``.
* ``whitening=W`` (any p × n matrix chosen by the user): distances ``‖W (s − a_i)‖₁``
  (consistent mode only).

**Misclassification threshold** ``τ_i = min_{j≠i} ‖W (a_j − a_i)‖₁``: the whitened L1
distance from reference i to its nearest other reference. The reference code computes it
in the *legacy* way, ``‖x^{(j,i)} − e_i‖₁`` with ``x^{(j,i)} = W a_j + P e_i``; both are
the same number (up to rounding) because ``W a_i + P e_i = e_i``. Two identical
references get ``τ = 0``: no pixel can be valid for them.

**Attention label.** For each pixel and reference i the distance is

* ``mode="consistent"`` (default): ``d_i(s) = ‖W (s − a_i)‖₁``, the formula of the threshold;
* ``mode="legacy"`` (parity with the reference code): ``x = W s + P e_i`` and
  ``d_i = Σ_k |x_k| − max_k |x_k| + |max_k |x_k| − 1|``, which takes the largest-magnitude
  slot of ``x`` as the "one" instead of slot i.

``d* = min_i d_i``, ``i* = argmin_i d_i``, and the pixel is *valid* when ``d* < τ_{i*}``
(NaN pixels never are). The label map is ``i* + 1`` on valid pixels, 0 elsewhere. The
similarity target on valid pixels (0 elsewhere) is

* ``similarity="minmax"`` (the reference): ``1 − (d* − min d*) / (max d* − min d* + 1e-8)``
  with min/max over the valid pixels of the same image (so the best pixel of every image
  is 1.0, whatever its quality);
* ``"linear"``: ``1 − d* / τ_{i*}`` (an absolute score in (0, 1], comparable across images);
* ``"exp"``: ``exp(−d* / τ_{i*})``.

**Memory.** The reference code materialises an ``(N, n, n)`` tensor for N = B·H·W pixels.
Here pixels are whitened as one ``(N, n)`` matrix and the distances to the m references
come from ``torch.cdist`` (L1 and L∞ norms computed pair by pair), so no intermediate is
larger than ``max(N·n, N·m)`` plus the small matrices.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn as nn

from hsikit.data.reference_spectra import glacier_reference_matrix, validate_reference_matrix
from hsikit.errors import ConfigError, ReferenceMatrixError, ShapeMismatchError

AttentionMode = Literal["consistent", "legacy"]
SimilarityKind = Literal["minmax", "linear", "exp"]
WhiteningMethod = Literal["auto", "shift", "ridge"]

ATTENTION_MODES: tuple[str, ...] = ("consistent", "legacy")
SIMILARITY_KINDS: tuple[str, ...] = ("minmax", "linear", "exp")
WHITENING_METHODS: tuple[str, ...] = ("auto", "shift", "ridge")

MINMAX_EPSILON = 1e-8  # the reference's guard against a zero range


class AttentionLabel(NamedTuple):
    """The attention supervision of a batch.

    Attributes:
        similarity: ``(B, 1, H, W)`` float in [0, 1], the target of the attention map (0 on invalid pixels).
        label_map: ``(B, H, W)`` int64, ``1 + index`` of the nearest reference on valid pixels, 0 elsewhere.
    """

    similarity: torch.Tensor
    label_map: torch.Tensor


@dataclass(frozen=True)
class ReferenceOperator:
    """The reference spectra with the linear maps every distance is measured through.

    Attributes:
        references: ``A`` (n bands, m references), float64.
        whitening: ``W`` (p, n), float64; p = m except for a user-given whitening.
        one_hot_offset: ``P`` (m, m), float64, with ``W a_i + P e_i = e_i``; None for a user-given whitening.
        method: ``"shift"``, ``"ridge"`` or ``"custom"``.
        regularization: ``Λ`` (shift) or the absolute ``λ`` (ridge); 0 for a custom whitening.
        condition_number: 2-norm condition number of the matrix that was inverted (1 for custom).
    """

    references: torch.Tensor
    whitening: torch.Tensor
    one_hot_offset: torch.Tensor | None
    method: str
    regularization: float
    condition_number: float

    @property
    def bands(self) -> int:
        """Number of bands n (rows of ``A``)."""
        return int(self.references.shape[0])

    @property
    def n_references(self) -> int:
        """Number of reference spectra m (columns of ``A``)."""
        return int(self.references.shape[1])

    @property
    def reference_codes(self) -> torch.Tensor:
        """``W A`` (p, m): the whitened references, one per column."""
        return self.whitening @ self.references


def build_reference_operator(
    references: np.ndarray | torch.Tensor,
    *,
    method: WhiteningMethod = "auto",
    shift: float | None = None,
    ridge: float = 1e-2,
    whitening: np.ndarray | torch.Tensor | None = None,
) -> ReferenceOperator:
    """Build the whitening operator of a reference matrix (see the module docstring).

    Args:
        references: ``A`` (n bands, m references).
        method: ``"shift"`` (square A: ``(A + Λ I)⁻¹``, the reference), ``"ridge"``
            (``(AᵀA + λ I)⁻¹ Aᵀ``, any m) or ``"auto"`` (shift when square, ridge otherwise).
        shift: ``Λ`` of the shift method (None: n + 1, the reference's value; 0: plain inverse).
        ridge: relative ridge strength; ``λ = ridge · trace(AᵀA) / m`` (0: plain pseudo-inverse).
        whitening: a user-chosen ``W`` (p, n); overrides ``method``.

    Raises:
        ReferenceMatrixError: bad matrix, a matrix that is singular with the chosen regularisation,
            or ``method="shift"`` on a non-square matrix.
        ConfigError: unknown method, negative regularisation.
    """
    matrix = torch.from_numpy(validate_reference_matrix(references))
    n_bands, n_references = matrix.shape
    if whitening is not None:
        custom = torch.from_numpy(_as_float64(whitening, "whitening"))
        if custom.ndim != 2 or custom.shape[1] != n_bands:
            raise ShapeMismatchError(
                f"whitening matrix has shape {tuple(custom.shape)}; it must be (p, {n_bands}) to act on "
                f"{n_bands}-band spectra"
            )
        if not torch.isfinite(custom).all():
            raise ReferenceMatrixError("whitening matrix holds NaN/Inf values; give a finite matrix")
        return ReferenceOperator(matrix, custom, None, "custom", 0.0, 1.0)

    if method not in WHITENING_METHODS:
        raise ConfigError(f"unknown whitening method {method!r}; choose one of {', '.join(WHITENING_METHODS)}")
    if method == "auto":
        method = "shift" if n_bands == n_references else "ridge"

    if method == "shift":
        if n_bands != n_references:
            raise ReferenceMatrixError(
                f"reference matrix has shape ({n_bands}, {n_references}): the shift method "
                f"(A + Λ I)⁻¹ needs as many references as bands; use method='ridge' (regularised "
                "pseudo-inverse) for a non-square matrix"
            )
        regularization = float(n_bands + 1) if shift is None else float(shift)
        _check_regularization(regularization, "shift")
        shifted = matrix + regularization * torch.eye(n_bands, dtype=torch.float64)
        condition = _check_invertible(
            shifted, f"A + {regularization:g}·I", "increase shift (the reference uses shift = bands + 1)"
        )
        inverse = torch.linalg.inv(shifted)
        return ReferenceOperator(matrix, inverse, regularization * inverse, "shift", regularization, condition)

    _check_regularization(ridge, "ridge")
    gram = matrix.T @ matrix
    regularization = float(ridge) * float(torch.trace(gram)) / n_references
    regularized = gram + regularization * torch.eye(n_references, dtype=torch.float64)
    condition = _check_invertible(
        regularized,
        f"AᵀA + {regularization:g}·I",
        "use ridge > 0 (with more references than bands, or repeated / linearly dependent references, "
        "AᵀA is singular)",
    )
    inverse = torch.linalg.inv(regularized)
    return ReferenceOperator(
        matrix, inverse @ matrix.T, regularization * inverse, "ridge", regularization, condition
    )


def misclassification_threshold(
    references: np.ndarray | torch.Tensor | ReferenceOperator,
    mode: AttentionMode = "consistent",
    **operator_options: object,
) -> torch.Tensor:
    """Per-reference threshold ``τ`` (m,), float64: the distance to the nearest other reference.

    Args:
        references: ``A`` (n, m) or a prebuilt :class:`ReferenceOperator`.
        mode: ``"consistent"`` (``min_{j≠i} ‖W (a_j − a_i)‖₁``) or ``"legacy"`` (the reference's
            ``‖W a_j + P e_i − e_i‖₁``, same value up to rounding).
        **operator_options: ``method``, ``shift``, ``ridge``, ``whitening`` for :func:`build_reference_operator`.

    For the default glacier matrix: ``τ ≈ [0.0139, 0.0230, 0.0110, 0.0284, 0.0110, 0.0730,
    0.1831, 0.0443, 0.0730, 0.1039]``.
    """
    operator = _as_operator(references, operator_options)
    _check_mode(mode, operator)
    codes = operator.reference_codes  # (p, m)
    m = operator.n_references
    pair_distance = torch.empty((m, m), dtype=torch.float64)  # [j, i]
    if mode == "consistent":
        for i in range(m):
            pair_distance[:, i] = (codes - codes[:, i : i + 1]).abs().sum(dim=0)
    else:
        offset = operator.one_hot_offset
        assert offset is not None  # _check_mode refused a custom whitening
        for i in range(m):
            solutions = codes.T + offset[:, i]  # (j, k): x^{(j,i)}
            one_slot = solutions[:, i]
            pair_distance[:, i] = (one_slot - 1).abs() + solutions.abs().sum(dim=1) - one_slot.abs()
    pair_distance.fill_diagonal_(math.inf)
    return pair_distance.amin(dim=0)


def reference_distances(
    pixels: torch.Tensor,
    references: np.ndarray | torch.Tensor | ReferenceOperator,
    mode: AttentionMode = "consistent",
    **operator_options: object,
) -> torch.Tensor:
    """Distances ``d_i`` (N, m) of N pixel spectra (N, n) to the m references.

    Computed in the dtype of ``pixels`` (float32 or float64) on their device. Memory:
    O(N·n + N·m): ``torch.cdist`` forms each pair's norm directly, never an (N, m, n) tensor.
    """
    operator = _as_operator(references, operator_options)
    _check_mode(mode, operator)
    if pixels.ndim != 2 or pixels.shape[1] != operator.bands:
        raise ShapeMismatchError(
            f"pixels have shape {tuple(pixels.shape)}; expected (N, {operator.bands}) spectra with the "
            f"{operator.bands} bands of the reference matrix"
        )
    dtype = pixels.dtype if pixels.dtype == torch.float64 else torch.float32
    pixels = pixels.to(dtype)
    whitening = operator.whitening.to(device=pixels.device, dtype=dtype)
    coded = pixels @ whitening.T  # (N, p)
    # torch.cdist computes each (pixel, reference) norm directly: no (N, m, p) tensor is formed.
    if mode == "consistent":
        codes = operator.reference_codes.T.to(device=pixels.device, dtype=dtype).contiguous()  # (m, p)
        return torch.cdist(coded, codes, p=1.0)
    offset = operator.one_hot_offset
    assert offset is not None
    # x = coded + P[:, i] = coded - (-P[:, i]): its L1 norm and largest magnitude are the
    # L1 and L∞ distances from ``coded`` to the anchor ``-P[:, i]``.
    anchors = (-offset.T).to(device=pixels.device, dtype=dtype).contiguous()  # (m, m)
    total = torch.cdist(coded, anchors, p=1.0)
    largest = torch.cdist(coded, anchors, p=math.inf)
    return total - largest + (largest - 1).abs()


@torch.no_grad()
def attention_label(
    image: torch.Tensor,
    references: np.ndarray | torch.Tensor | ReferenceOperator,
    threshold: torch.Tensor | np.ndarray | None = None,
    *,
    mode: AttentionMode = "consistent",
    similarity: SimilarityKind = "minmax",
    **operator_options: object,
) -> AttentionLabel:
    """The attention target and nearest-reference label map of a batch of images.

    Args:
        image: ``(B, C, H, W)`` on the radiometric scale of the references (reflectance).
        references: ``A`` (C bands, m references) or a prebuilt :class:`ReferenceOperator`.
        threshold: ``τ`` (m,) (None: :func:`misclassification_threshold` in the same ``mode``).
        mode: ``"consistent"`` (default) or ``"legacy"`` distances (module docstring).
        similarity: ``"minmax"`` (per image, the reference), ``"linear"`` (``1 − d/τ``) or ``"exp"``.
        **operator_options: ``method``, ``shift``, ``ridge``, ``whitening`` for :func:`build_reference_operator`.

    Returns:
        :class:`AttentionLabel` ``(similarity (B, 1, H, W) in [0, 1], label_map (B, H, W) int64)``.

    Raises:
        ShapeMismatchError: ``image`` is not 4-D or its band count differs from the matrix's rows.
    """
    operator = _as_operator(references, operator_options)
    if similarity not in SIMILARITY_KINDS:
        raise ConfigError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITY_KINDS)}")
    if image.ndim != 4:
        raise ShapeMismatchError(
            f"attention_label takes a (B, C, H, W) batch, got shape {tuple(image.shape)}; add the batch axis "
            "with image.unsqueeze(0)"
        )
    batch, bands, height, width = image.shape
    if bands != operator.bands:
        raise ShapeMismatchError(
            f"image has {bands} bands but the reference matrix has {operator.bands} bands (rows); use a "
            f"reference matrix measured on the image's {bands} bands (one spectrum per column)"
        )
    tau = misclassification_threshold(operator, mode) if threshold is None else _as_threshold(threshold, operator)
    dtype = image.dtype if image.dtype == torch.float64 else torch.float32
    pixels = image.permute(0, 2, 3, 1).reshape(-1, bands)
    distances = reference_distances(pixels, operator, mode)
    nearest_distance, nearest = distances.min(dim=1)
    del distances
    nearest_tau = tau.to(device=image.device, dtype=dtype)[nearest]
    valid = nearest_distance < nearest_tau  # False for NaN distances

    if similarity == "minmax":
        per_image = nearest_distance.view(batch, -1)
        valid_image = valid.view(batch, -1)
        lowest = torch.where(valid_image, per_image, math.inf).amin(dim=1, keepdim=True)
        highest = torch.where(valid_image, per_image, -math.inf).amax(dim=1, keepdim=True)
        score = (1.0 - (per_image - lowest) / (highest - lowest + MINMAX_EPSILON)).view(-1)
    elif similarity == "linear":
        score = (1.0 - nearest_distance / nearest_tau).clamp(0.0, 1.0)
    else:
        score = torch.exp(-nearest_distance / nearest_tau).clamp(0.0, 1.0)
    score = torch.where(valid, score, torch.zeros((), dtype=dtype, device=image.device))
    label_map = torch.where(valid, nearest + 1, torch.zeros((), dtype=torch.long, device=image.device))
    return AttentionLabel(
        similarity=score.view(batch, 1, height, width).to(image.dtype if image.is_floating_point() else dtype),
        label_map=label_map.view(batch, height, width),
    )


class SpectralAttentionTarget(nn.Module):
    """The attention supervision as a module: operator and thresholds built once, moved with ``.to()``.

    Args:
        references: ``A`` (n bands, m references); None: the default glacier matrix (10 × 10).
        mode: ``"consistent"`` (default) or ``"legacy"`` distances.
        similarity: ``"minmax"`` (the reference), ``"linear"`` or ``"exp"``.
        method, shift, ridge, whitening: see :func:`build_reference_operator`.
        check_scale: warn once when the first batch is far from the references' radiometric scale.

    Shapes:
        ``forward(image (B, n, H, W))`` → :class:`AttentionLabel` ``((B, 1, H, W), (B, H, W))``.
        Runs under ``no_grad``; the buffers are not saved in ``state_dict`` (they follow from the matrix).
    """

    def __init__(
        self,
        references: np.ndarray | torch.Tensor | None = None,
        *,
        mode: AttentionMode = "consistent",
        similarity: SimilarityKind = "minmax",
        method: WhiteningMethod = "auto",
        shift: float | None = None,
        ridge: float = 1e-2,
        whitening: np.ndarray | torch.Tensor | None = None,
        check_scale: bool = True,
    ) -> None:
        super().__init__()
        matrix = glacier_reference_matrix() if references is None else references
        operator = build_reference_operator(matrix, method=method, shift=shift, ridge=ridge, whitening=whitening)
        _check_mode(mode, operator)
        if similarity not in SIMILARITY_KINDS:
            raise ConfigError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITY_KINDS)}")
        self.mode = mode
        self.similarity = similarity
        self.method = operator.method
        self.regularization = operator.regularization
        self.check_scale = check_scale
        self._scale_checked = False
        self.register_buffer("references", operator.references, persistent=False)
        self.register_buffer("whitening", operator.whitening, persistent=False)
        offset = operator.one_hot_offset
        self.register_buffer("one_hot_offset", offset, persistent=False)
        self.register_buffer("threshold", misclassification_threshold(operator, mode), persistent=False)

    @property
    def bands(self) -> int:
        """Band count n the images must have."""
        return int(self.references.shape[0])

    def operator(self) -> ReferenceOperator:
        """The :class:`ReferenceOperator` of the current buffers (float64, on the buffers' device)."""
        return ReferenceOperator(
            self.references.double(),
            self.whitening.double(),
            None if self.one_hot_offset is None else self.one_hot_offset.double(),
            self.method,
            self.regularization,
            math.nan,
        )

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> AttentionLabel:
        """Attention target and label map of a ``(B, n, H, W)`` batch."""
        if self.check_scale and not self._scale_checked and image.ndim == 4 and image.shape[1] == self.bands:
            self._scale_checked = True
            _warn_on_scale_mismatch(image, self.references)
        return attention_label(
            image, self.operator(), self.threshold, mode=self.mode, similarity=self.similarity
        )

    def extra_repr(self) -> str:
        return (
            f"bands={self.bands}, references={int(self.references.shape[1])}, mode={self.mode!r}, "
            f"similarity={self.similarity!r}, method={self.method!r}, regularization={self.regularization:g}"
        )

    # The float64 buffers must stay float64 when the surrounding model is cast (e.g. .half()).
    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        kept = {name: buffer for name, buffer in self._buffers.items() if buffer is not None}
        result = super()._apply(fn, recurse)
        for name, before in kept.items():
            after = self._buffers[name]
            if after is not None and after.dtype != before.dtype:
                self._buffers[name] = after.to(before.dtype)
        return result


# --------------------------------------------------------------------------- helpers
def _as_operator(references: object, options: dict[str, object]) -> ReferenceOperator:
    if isinstance(references, ReferenceOperator):
        if options:
            raise ConfigError(
                f"options {sorted(options)} are ignored for a prebuilt ReferenceOperator; pass them to "
                "build_reference_operator instead"
            )
        return references
    unknown = set(options) - {"method", "shift", "ridge", "whitening"}
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)}; accepted: method, shift, ridge, whitening")
    return build_reference_operator(references, **options)  # type: ignore[arg-type]


def _check_mode(mode: str, operator: ReferenceOperator) -> None:
    if mode not in ATTENTION_MODES:
        raise ConfigError(f"unknown attention mode {mode!r}; choose one of {', '.join(ATTENTION_MODES)}")
    if mode == "legacy" and operator.one_hot_offset is None:
        raise ConfigError(
            "mode='legacy' reproduces the reference's perturbed solve and needs the shift or ridge method; "
            "a user-given whitening matrix works with mode='consistent' only"
        )


def _check_regularization(value: float, name: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_invertible(matrix: torch.Tensor, description: str, fix: str) -> float:
    """Return the condition number of a float64 square matrix; raise when it is numerically singular."""
    singular_values = torch.linalg.svdvals(matrix)
    largest, smallest = float(singular_values[0]), float(singular_values[-1])
    tolerance = largest * matrix.shape[0] * float(np.finfo(np.float64).eps)
    if largest == 0.0 or smallest <= tolerance:
        rank = int((singular_values > tolerance).sum())
        raise ReferenceMatrixError(
            f"{description} ({matrix.shape[0]}×{matrix.shape[1]}) is singular (numerical rank {rank}); {fix}"
        )
    return largest / smallest


def _as_float64(values: object, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()  # type: ignore[union-attr]
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a numeric array") from None


def _as_threshold(threshold: object, operator: ReferenceOperator) -> torch.Tensor:
    tau = torch.from_numpy(_as_float64(threshold, "threshold")).reshape(-1)
    if tau.numel() != operator.n_references:
        raise ShapeMismatchError(
            f"threshold has {tau.numel()} values but the reference matrix has {operator.n_references} references; "
            "compute it with misclassification_threshold(references)"
        )
    return tau


def _warn_on_scale_mismatch(image: torch.Tensor, references: torch.Tensor) -> None:
    finite = image[torch.isfinite(image)]
    if finite.numel() == 0:
        return
    image_level = float(finite.abs().mean())
    reference_level = float(references.abs().mean())
    if reference_level > 0 and image_level > 0:
        ratio = image_level / reference_level
        if ratio > 20 or ratio < 1 / 20:
            warnings.warn(
                f"the images' mean |value| ({image_level:.4g}) is {ratio:.3g}× that of the reference spectra "
                f"({reference_level:.4g}); the attention label needs both on the same radiometric scale "
                "(e.g. divide digital numbers by 10000 to get reflectance)",
                UserWarning,
                stacklevel=3,
            )


__all__ = [
    "ATTENTION_MODES",
    "SIMILARITY_KINDS",
    "WHITENING_METHODS",
    "AttentionLabel",
    "AttentionMode",
    "ReferenceOperator",
    "SimilarityKind",
    "SpectralAttentionTarget",
    "WhiteningMethod",
    "attention_label",
    "build_reference_operator",
    "misclassification_threshold",
    "reference_distances",
]
