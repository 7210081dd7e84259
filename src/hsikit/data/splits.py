"""Train / validation / test splits of a label map.

A label map is an ``(H, W)`` integer array; pixels equal to ``ignore_value``
(default 0, "unlabelled") belong to no part. Three ways to split it:

* :func:`random_split` - stratified random sampling per class, each part given
  as a fraction of the class (``0.1``) or a count per class (``50``); the test
  part is the rest unless asked otherwise.
* :func:`count_split` - a fixed number of samples per class (5, 10, 50...), with a
  chosen policy for classes that hold fewer pixels than asked.
* :func:`disjoint_split` - spatially disjoint blocks: the image is cut into
  rectangular blocks and whole blocks go to train, val or test. Training pixels
  closer than ``patch_size // 2`` (Chebyshev distance) to any val/test block are
  removed, so by construction no ``patch_size x patch_size`` patch centred on a
  training pixel overlaps a val/test block (hence no val/test pixel).

Every function is deterministic given ``seed`` (a :class:`numpy.random.Generator`
is built from it) and returns a :class:`Split`, which stores flat pixel indices
(row-major, ``index = row * W + col``), the mode, its parameters, the seed, the
image shape and the class counts of each part. ``Split.to_json`` /
``Split.from_json`` store it with a run.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hsikit.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    InvalidLabelsError,
    ShapeMismatchError,
    SplitError,
    UnknownNameError,
)
from hsikit.io.atomic import atomic_path

PARTS: tuple[str, str, str] = ("train", "val", "test")
SPLIT_FORMAT = "hsikit.split"
SPLIT_FORMAT_VERSION = 1

Amount = int | float
AmountSpec = Amount | Mapping[int, Amount]
InsufficientPolicy = Literal["error", "fraction"]


class SplitWarning(UserWarning):
    """A split was made, but not exactly as asked (a class too small, a class missing from a part)."""


# ---------------------------------------------------------------------------- Split
@dataclass(eq=False)
class Split:
    """Pixels of one label map assigned to train, val and test.

    Attributes:
        image_shape: ``(H, W)`` of the label map the split was made from.
        train, val, test: sorted, unique flat pixel indices (int64, ``row * W + col``).
        mode: ``"random"``, ``"count"``, ``"disjoint"`` (or a user-chosen name).
        seed: the seed of the random generator (None when no randomness was used).
        params: the arguments that made the split (JSON-friendly).
        ignore_value: the label value that marks unlabelled pixels (None: none).
        class_counts: ``{part: {class value: pixel count}}``.
    """

    image_shape: tuple[int, int]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mode: str
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    ignore_value: int | None = 0
    class_counts: dict[str, dict[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_shape = (int(self.image_shape[0]), int(self.image_shape[1]))
        size = self.image_shape[0] * self.image_shape[1]
        seen = np.zeros(size, dtype=bool)
        for part in PARTS:
            indices = np.asarray(getattr(self, part), dtype=np.int64).reshape(-1)
            if indices.size and (indices.min() < 0 or indices.max() >= size):
                raise SplitError(
                    f"split part {part!r} holds pixel index {int(indices.max())} or {int(indices.min())} outside "
                    f"the {self.image_shape[0]}x{self.image_shape[1]} image (valid: 0..{size - 1}); "
                    "the split was made for another image"
                )
            indices = np.unique(indices)
            if seen[indices].any():
                raise SplitError(
                    f"split part {part!r} shares {int(seen[indices].sum())} pixel(s) with another part; "
                    "train, val and test must be disjoint"
                )
            seen[indices] = True
            setattr(self, part, indices)

    # ------------------------------------------------------------------ access
    @property
    def height(self) -> int:
        return self.image_shape[0]

    @property
    def width(self) -> int:
        return self.image_shape[1]

    def indices(self, part: str) -> np.ndarray:
        """Flat pixel indices (int64, ``row * W + col``) of ``part``."""
        return getattr(self, _check_part(part))

    def rows_cols(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)``: two int64 arrays of the pixel coordinates of ``part``."""
        rows, cols = np.divmod(self.indices(part), self.width)
        return rows, cols

    def mask(self, part: str) -> np.ndarray:
        """``(H, W)`` bool map, True on the pixels of ``part``."""
        flat = np.zeros(self.height * self.width, dtype=bool)
        flat[self.indices(part)] = True
        return flat.reshape(self.image_shape)

    def masks(self) -> dict[str, np.ndarray]:
        """``{"train": (H, W) bool, "val": ..., "test": ...}``."""
        return {part: self.mask(part) for part in PARTS}

    def counts(self, part: str) -> dict[int, int]:
        """``{class value: pixel count}`` of ``part``."""
        return dict(self.class_counts.get(_check_part(part), {}))

    @property
    def classes(self) -> list[int]:
        """Sorted class values present in any part."""
        values: set[int] = set()
        for part_counts in self.class_counts.values():
            values.update(value for value, count in part_counts.items() if count > 0)
        return sorted(values)

    def check_labels(self, labels: np.ndarray, name: str = "labels") -> None:
        """Raise :class:`ShapeMismatchError` unless ``labels`` has the split's ``(H, W)``."""
        shape = tuple(np.shape(labels))
        if shape != self.image_shape:
            raise ShapeMismatchError(
                f"{name} of shape {shape} do not match the split's image shape {self.image_shape}; "
                "make the split from these labels (or load the split saved for this scene)"
            )

    def summary(self) -> str:
        """A small text table: one row per class, one column per part."""
        lines = [f"{'class':>7} {'train':>8} {'val':>8} {'test':>8}"]
        for value in self.classes:
            row = [self.class_counts.get(part, {}).get(value, 0) for part in PARTS]
            lines.append(f"{value:>7} {row[0]:>8} {row[1]:>8} {row[2]:>8}")
        totals = [len(self.indices(part)) for part in PARTS]
        lines.append(f"{'total':>7} {totals[0]:>8} {totals[1]:>8} {totals[2]:>8}")
        return "\n".join(lines)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return (
            self.image_shape == other.image_shape
            and self.mode == other.mode
            and self.seed == other.seed
            and self.ignore_value == other.ignore_value
            and self.params == other.params
            and self.class_counts == other.class_counts
            and all(np.array_equal(self.indices(p), other.indices(p)) for p in PARTS)
        )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{part}={len(self.indices(part))}" for part in PARTS)
        return f"Split(mode={self.mode!r}, image_shape={self.image_shape}, seed={self.seed}, {sizes})"

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary (indices as lists of ints)."""
        return {
            "format": SPLIT_FORMAT,
            "version": SPLIT_FORMAT_VERSION,
            "mode": self.mode,
            "image_shape": list(self.image_shape),
            "seed": self.seed,
            "ignore_value": self.ignore_value,
            "params": _jsonable(self.params),
            "class_counts": {
                part: {str(value): int(count) for value, count in sorted(counts.items())}
                for part, counts in self.class_counts.items()
            },
            "indices": {part: self.indices(part).tolist() for part in PARTS},
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], source: str = "<memory>") -> Split:
        """Rebuild a split from :meth:`to_dict` output; ``source`` names it in errors."""
        if payload.get("format") != SPLIT_FORMAT:
            raise CorruptFileError(
                f"{source}: not an hsikit split (format={payload.get('format')!r}, expected {SPLIT_FORMAT!r}); "
                "save splits with Split.to_json"
            )
        try:
            indices = payload["indices"]
            split = cls(
                image_shape=tuple(payload["image_shape"]),  # type: ignore[arg-type]
                train=np.asarray(indices["train"], dtype=np.int64),
                val=np.asarray(indices["val"], dtype=np.int64),
                test=np.asarray(indices["test"], dtype=np.int64),
                mode=str(payload["mode"]),
                seed=payload.get("seed"),
                params=dict(payload.get("params", {})),
                ignore_value=payload.get("ignore_value"),
                class_counts={
                    part: {int(value): int(count) for value, count in counts.items()}
                    for part, counts in payload.get("class_counts", {}).items()
                },
            )
        except KeyError as exc:
            raise CorruptFileError(
                f"{source}: split file lacks the key {exc.args[0]!r}; re-create it with Split.to_json"
            ) from None
        except (TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, SplitError):
                raise SplitError(f"{source}: {exc}") from None
            raise CorruptFileError(f"{source}: malformed split file ({exc}); re-create it with Split.to_json") from None
        return split

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the split as JSON, atomically; returns the path."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Split:
        """Read a split written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise DataFileNotFoundError(path, "save the split first with Split.to_json(path)")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"'{path}': not valid JSON ({exc}); the split file is damaged") from None
        if not isinstance(payload, dict):
            raise CorruptFileError(f"'{path}': a split file holds a JSON object, found {type(payload).__name__}")
        return cls.from_dict(payload, source=f"'{path}'")


# ---------------------------------------------------------------------------- random / count
def random_split(
    labels: np.ndarray,
    train: AmountSpec = 0.1,
    val: AmountSpec = 0.0,
    test: AmountSpec | None = None,
    *,
    seed: int = 0,
    ignore_value: int | None = 0,
    classes: Sequence[int] | None = None,
) -> Split:
    """Stratified random split: each class is sampled on its own.

    Args:
        labels: ``(H, W)`` integer label map.
        train, val, test: for each part, a fraction of each class (float in [0, 1]),
            a number of pixels per class (int), or a ``{class value: amount}`` mapping.
            A positive fraction always gives at least one pixel per class (fractions
            are rounded half up). ``test=None`` (default) takes every pixel left.
        seed: seed of the :func:`numpy.random.default_rng` generator.
        ignore_value: label of unlabelled pixels (never sampled); None for none.
        classes: class values to split (default: every value present but ``ignore_value``);
            a listed class with no pixel raises :class:`SplitError`.

    Raises:
        SplitError: a fraction outside [0, 1], fractions summing over 1, a class with
            fewer pixels than the parts ask, an empty class, no labelled pixel.
    """
    label_map = _as_label_map(labels)
    _check_fraction_sum(train=train, val=val, test=test)
    class_pixels = _class_pixels(label_map, ignore_value, classes)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {part: [] for part in PARTS}
    for value, pixels in class_pixels.items():
        available = len(pixels)
        n_train = _resolve_amount(train, value, available, "train")
        n_val = _resolve_amount(val, value, available, "val")
        n_test = available - n_train - n_val if test is None else _resolve_amount(test, value, available, "test")
        if n_train == 0:
            raise SplitError(f"class {value}: train={_describe(train, value)} gives no training pixel; ask for more")
        if n_train + n_val + max(n_test, 0) > available or n_test < 0:
            asked = f"train={n_train} + val={n_val}" + ("" if test is None else f" + test={n_test}")
            raise SplitError(
                f"class {value} has {available} labelled pixel(s), fewer than asked ({asked}); lower the "
                "amounts, or use count_split(..., on_insufficient='fraction') to take a fraction of small classes"
            )
        order = rng.permutation(pixels)
        parts["train"].append(order[:n_train])
        parts["val"].append(order[n_train : n_train + n_val])
        parts["test"].append(order[n_train + n_val : n_train + n_val + n_test])
    params = {"train": _amount_param(train), "val": _amount_param(val), "test": _amount_param(test)}
    return _make_split(label_map, parts, "random", seed, params, ignore_value)


def count_split(
    labels: np.ndarray,
    train: int | Mapping[int, int] = 10,
    val: int | Mapping[int, int] = 0,
    test: int | Mapping[int, int] | None = None,
    *,
    seed: int = 0,
    ignore_value: int | None = 0,
    classes: Sequence[int] | None = None,
    on_insufficient: InsufficientPolicy = "error",
    fallback_fraction: float = 0.5,
) -> Split:
    """A fixed number of pixels per class for train (and val); test is the rest by default.

    A class is *insufficient* when it holds fewer than ``train + val`` pixels plus
    ``test`` (or plus one pixel to test on when ``test`` is None). Then:

    * ``on_insufficient="error"`` (default): raise :class:`SplitError` naming each
      such class and its count.
    * ``on_insufficient="fraction"``: the class gives ``floor(fallback_fraction * n)``
      of its ``n`` pixels (at least one) to train + val, shared in the asked train:val
      proportion (at least one to train); the rest goes to test (up to ``test`` when
      given). A :class:`SplitWarning` lists the classes treated this way.

    Args:
        labels: ``(H, W)`` integer label map.
        train, val, test: pixels per class (ints, or ``{class value: count}``).
        seed, ignore_value, classes: as in :func:`random_split`.
        on_insufficient: ``"error"`` or ``"fraction"``.
        fallback_fraction: fraction of an insufficient class given to train + val, in (0, 1).
    """
    label_map = _as_label_map(labels)
    if on_insufficient not in ("error", "fraction"):
        raise SplitError(f"on_insufficient must be 'error' or 'fraction', got {on_insufficient!r}")
    if not 0.0 < fallback_fraction < 1.0:
        raise SplitError(f"fallback_fraction must lie strictly between 0 and 1, got {fallback_fraction}")
    for name, amount in (("train", train), ("val", val), ("test", test)):
        values = amount.values() if isinstance(amount, Mapping) else [amount]
        for value in values:
            if value is not None and (isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer))):
                raise SplitError(
                    f"count_split takes pixel counts per class, got {name}={value!r}; "
                    "use random_split for fractions"
                )
    class_pixels = _class_pixels(label_map, ignore_value, classes)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {part: [] for part in PARTS}
    short: list[str] = []
    for value, pixels in class_pixels.items():
        available = len(pixels)
        n_train = _resolve_amount(train, value, available, "train", check_available=False)
        n_val = _resolve_amount(val, value, available, "val", check_available=False)
        n_test_asked = None if test is None else _resolve_amount(test, value, available, "test", check_available=False)
        if n_train == 0:
            raise SplitError(f"class {value}: train=0 pixels per class gives no training pixel; ask for at least 1")
        needed = n_train + n_val + (1 if n_test_asked is None else n_test_asked)
        if available < needed:
            if on_insufficient == "error":
                short.append(f"class {value} has {available} (needs {needed})")
                continue
            budget = min(max(1, math.floor(fallback_fraction * available)), available)
            n_train_fb = max(1, round(budget * n_train / (n_train + n_val)))
            n_train, n_val = n_train_fb, budget - n_train_fb
            rest = available - n_train - n_val
            n_test = rest if n_test_asked is None else min(n_test_asked, rest)
            short.append(f"class {value}: {available} px -> {n_train} train, {n_val} val, {n_test} test")
        else:
            n_test = available - n_train - n_val if n_test_asked is None else n_test_asked
        order = rng.permutation(pixels)
        parts["train"].append(order[:n_train])
        parts["val"].append(order[n_train : n_train + n_val])
        parts["test"].append(order[n_train + n_val : n_train + n_val + n_test])
    if short and on_insufficient == "error":
        raise SplitError(
            f"too few labelled pixels for train={_describe(train)} + val={_describe(val)} per class"
            f"{'' if test is None else f' + test={_describe(test)}'} (plus one to test on): "
            + "; ".join(short)
            + ". Ask for fewer per class, or pass on_insufficient='fraction' to take a fraction of small classes"
        )
    if short:
        warnings.warn(
            f"count_split: {len(short)} class(es) have fewer pixels than asked; took "
            f"{fallback_fraction:.0%} of each for train+val: " + "; ".join(short),
            SplitWarning,
            stacklevel=2,
        )
    params = {
        "train": _amount_param(train),
        "val": _amount_param(val),
        "test": _amount_param(test),
        "on_insufficient": on_insufficient,
        "fallback_fraction": fallback_fraction,
    }
    return _make_split(label_map, parts, "count", seed, params, ignore_value)


# ---------------------------------------------------------------------------- disjoint blocks
def disjoint_split(
    labels: np.ndarray,
    train: float = 0.5,
    val: float = 0.0,
    *,
    patch_size: int = 1,
    block_size: int | tuple[int, int] | None = None,
    seed: int = 0,
    ignore_value: int | None = 0,
    classes: Sequence[int] | None = None,
) -> Split:
    """Spatially disjoint split: whole blocks go to train, val or test, with a buffer.

    The image is cut into a grid of ``block_size`` blocks (the last row/column of
    blocks may be smaller). Blocks without labelled pixels are left out. The others
    are assigned in an order drawn from ``seed``:

    1. coverage: for each class, rarest first, if train lacks the class it gets the
       block holding most pixels of it that no buffer can remove (ties: random);
       then test, then val, get a random block of each class they lack, from the
       blocks left (so a class found in a single block is in train only);
    2. balance: each remaining block goes to the part whose per-class targets
       (``fraction x class size``) this block's classes help most.

    Then every training pixel within ``patch_size // 2`` pixels (Chebyshev
    distance) of any val or test *block* - labelled or not - is removed from
    train. So a ``patch_size x patch_size`` patch centred on any training pixel
    never overlaps a val/test block, hence never a val/test pixel.

    3. repair: while a class has no training pixel left (its pixels all lie near
       val/test blocks), the val/test block holding or buffering most of it is
       turned into a train block, one block at a time
       (``params["blocks_moved_to_train"]`` counts them).

    The buffer shrinks train below its target fraction; ``class_counts`` and
    ``params["buffer_removed"]`` give the real numbers. Val pixels are not
    buffered from test pixels.

    Args:
        labels: ``(H, W)`` integer label map.
        train, val: target fractions of each class's labelled pixels; test gets the rest.
        patch_size: odd side of the patches a model will read around each pixel.
        block_size: block side (int) or ``(rows, cols)``; default
            ``max(2 * patch_size, ceil(max(H, W) / 10))``, about ten blocks along the longer side.
        seed, ignore_value, classes: as in :func:`random_split`.

    Warns:
        SplitWarning: when a class ends up absent from a part whose fraction is positive.
    """
    label_map = _as_label_map(labels)
    height, width = label_map.shape
    for name, fraction in (("train", train), ("val", val)):
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise SplitError(f"disjoint_split takes fractions in [0, 1]; got {name}={fraction!r}")
    if train <= 0.0:
        raise SplitError(f"disjoint_split needs a positive train fraction, got train={train}")
    if train + val > 1.0 + 1e-12:
        raise SplitError(f"fractions train={train} + val={val} = {train + val:g} exceed 1; lower them")
    test_fraction = max(0.0, 1.0 - train - val)
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise SplitError(f"patch_size must be a positive odd integer, got {patch_size!r}")
    if patch_size % 2 == 0:
        raise SplitError(
            f"patch_size={patch_size} is even; patches are centred on a pixel, so use an odd size "
            f"({patch_size - 1} or {patch_size + 1})"
        )
    buffer = int(patch_size) // 2
    block_rows, block_cols = _block_shape(block_size, patch_size, height, width)

    class_pixels = _class_pixels(label_map, ignore_value, classes)
    class_values = list(class_pixels)
    n_classes = len(class_values)
    flat_pixels = np.concatenate(list(class_pixels.values()))
    class_of_pixel = np.concatenate([np.full(len(p), k, dtype=np.int64) for k, p in enumerate(class_pixels.values())])
    rows, cols = np.divmod(flat_pixels, width)
    blocks_per_row = -(-width // block_cols)
    n_blocks = -(-height // block_rows) * blocks_per_row
    block_of_pixel = (rows // block_rows) * blocks_per_row + cols // block_cols
    composition = np.bincount(block_of_pixel * n_classes + class_of_pixel, minlength=n_blocks * n_classes)
    composition = composition.reshape(n_blocks, n_classes)
    # Pixels at least `buffer` away from every neighbouring block survive the buffer whatever
    # their neighbours become; the coverage pass prefers blocks rich in them for train.
    block_top, block_left = rows - rows % block_rows, cols - cols % block_cols
    block_bottom = np.minimum(block_top + block_rows, height)
    block_right = np.minimum(block_left + block_cols, width)
    interior = (
        ((rows - block_top >= buffer) | (block_top == 0))
        & ((block_bottom - 1 - rows >= buffer) | (block_bottom == height))
        & ((cols - block_left >= buffer) | (block_left == 0))
        & ((block_right - 1 - cols >= buffer) | (block_right == width))
    )
    interior_composition = np.bincount(
        block_of_pixel[interior] * n_classes + class_of_pixel[interior], minlength=n_blocks * n_classes
    ).reshape(n_blocks, n_classes)
    class_sizes = composition.sum(axis=0).astype(np.float64)

    rng = np.random.default_rng(seed)
    fractions = {"train": float(train), "val": float(val), "test": test_fraction}
    active_parts = [part for part in PARTS if fractions[part] > 0.0]
    part_index = {part: i for i, part in enumerate(PARTS)}
    order = rng.permutation(np.flatnonzero(composition.sum(axis=1) > 0))
    assignment = np.full(n_blocks, -1, dtype=np.int64)
    assigned = np.zeros((len(PARTS), n_classes), dtype=np.float64)

    def assign(block: int, part: str) -> None:
        if assignment[block] >= 0:
            assigned[assignment[block]] -= composition[block]
        assignment[block] = part_index[part]
        assigned[part_index[part]] += composition[block]

    # Pass 1, coverage: rarest classes first, so that common classes do not use up their blocks.
    blocks_holding = composition > 0
    rarity = np.argsort(blocks_holding.sum(axis=0), kind="stable")
    for part in active_parts:
        for k in rarity:
            if assigned[part_index[part], k] > 0:
                continue
            # Train is served first, so it holds every class before val/test take any block.
            candidates = [b for b in order if assignment[b] < 0 and blocks_holding[b, k]]
            if not candidates:
                continue
            if part == "train":  # the block keeping most pixels of the class after the buffer
                candidates.sort(key=lambda b: -interior_composition[b, k])
            assign(candidates[0], part)

    # Pass 2, balance: the part whose remaining per-class need this block serves best.
    targets = np.array([fractions[part] * class_sizes for part in PARTS])
    for block in order:
        if assignment[block] >= 0:
            continue
        share = composition[block] / class_sizes
        scores = {
            part: float(np.dot(share, targets[part_index[part]] - assigned[part_index[part]])) for part in active_parts
        }
        assign(block, max(active_parts, key=lambda part: scores[part]))

    train_id = part_index["train"]

    def kept_training_pixels() -> np.ndarray:
        """Bool per labelled pixel: in a train block and outside every val/test block's buffer."""
        forbidden = np.zeros((height, width), dtype=bool)
        for block in np.flatnonzero((assignment >= 0) & (assignment != train_id)):
            r0 = (block // blocks_per_row) * block_rows
            c0 = (block % blocks_per_row) * block_cols
            forbidden[
                max(r0 - buffer, 0) : min(r0 + block_rows + buffer, height),
                max(c0 - buffer, 0) : min(c0 + block_cols + buffer, width),
            ] = True
        return (assignment[block_of_pixel] == train_id) & ~forbidden[rows, cols]

    blocks_per_column = -(-height // block_rows)

    def reach_counts(k: int) -> np.ndarray:
        """Per block: pixels of class k inside the block grown by the buffer (held or blocked by it)."""
        of_class = class_of_pixel == k
        r, c = rows[of_class], cols[of_class]
        counts = np.zeros(n_blocks, dtype=np.int64)
        row_span, col_span = buffer // block_rows + 1, buffer // block_cols + 1
        for dr in range(-row_span, row_span + 1):
            block_row = r // block_rows + dr
            top = block_row * block_rows
            near_row = (block_row >= 0) & (block_row < blocks_per_column)
            near_row &= (r >= top - buffer) & (r < top + block_rows + buffer)
            for dc in range(-col_span, col_span + 1):
                block_col = c // block_cols + dc
                left = block_col * block_cols
                near = near_row & (block_col >= 0) & (block_col < blocks_per_row)
                near &= (c >= left - buffer) & (c < left + block_cols + buffer)
                counts += np.bincount(block_row[near] * blocks_per_row + block_col[near], minlength=n_blocks)
        return counts

    # Repair: while a class is absent from train (its blocks went to val/test, or the buffer of
    # a val/test block wiped it out), the val/test block that holds or blocks most of it becomes
    # train. Each round moves one block, so this ends.
    keep_train = kept_training_pixels()
    blocks_moved = 0
    while True:
        in_train = np.bincount(class_of_pixel[keep_train], minlength=n_classes) > 0
        held_out = (assignment >= 0) & (assignment != train_id)
        best_block = -1
        for k in np.flatnonzero(~in_train):
            reach = np.where(held_out, reach_counts(int(k)), 0)
            if reach.max() > 0:
                best_block = int(np.argmax(reach))
                break
        if best_block < 0:
            break
        assign(best_block, "train")
        blocks_moved += 1
        keep_train = kept_training_pixels()
    part_of_pixel = assignment[block_of_pixel]
    in_train_block = part_of_pixel == train_id
    parts = {
        "train": [flat_pixels[keep_train]],
        "val": [flat_pixels[part_of_pixel == part_index["val"]]],
        "test": [flat_pixels[part_of_pixel == part_index["test"]]],
    }
    params = {
        "train": float(train),
        "val": float(val),
        "test": "rest",
        "patch_size": int(patch_size),
        "buffer": buffer,
        "block_size": [block_rows, block_cols],
        "buffer_removed": int(np.count_nonzero(in_train_block & ~keep_train)),
        "blocks_moved_to_train": blocks_moved,
    }
    split = _make_split(label_map, parts, "disjoint", seed, params, ignore_value)
    missing = [
        f"{part} lacks class(es) {[v for v in class_values if split.class_counts[part].get(v, 0) == 0]}"
        for part in active_parts
        if any(split.class_counts[part].get(v, 0) == 0 for v in class_values)
    ]
    if missing:
        warnings.warn(
            "disjoint_split: " + "; ".join(missing) + " (those classes lie in too few blocks, or the buffer "
            "removed them); use a smaller block_size or patch_size, or another seed",
            SplitWarning,
            stacklevel=2,
        )
    return split


def carve_validation_blocks(
    split: Split,
    labels: np.ndarray,
    fraction: float = 0.15,
    *,
    block_size: int | tuple[int, int] = 11,
    buffer: int = 0,
    seed: int = 0,
) -> Split:
    """Move whole blocks of *training* pixels to a validation part; test is left untouched.

    For model selection (early stopping, restoring the best epoch) under a spatially disjoint
    protocol without looking at the test pixels: the training pixels are cut into a grid of
    ``block_size`` blocks; first, for each class (rarest first) found in at least two of
    these blocks and absent from val so far, the block holding the fewest pixels of it
    goes to val; then further blocks, in an order drawn from ``seed``, until val holds
    ``fraction`` of the training pixels (the last block may overshoot). Training pixels
    within ``buffer`` pixels (Chebyshev distance) of a validation block are then dropped,
    so that patches of side ``2 * buffer + 1`` around training pixels never see a
    validation pixel.

    Args:
        split: a split with an empty val part (e.g. ``disjoint_split(..., val=0)``).
        labels: its ``(H, W)`` label map.
        fraction: target share of the training pixels moved to val, in (0, 1).
        block_size: side (or ``(rows, cols)``) of the validation blocks, in pixels.
        buffer: training pixels this close to a validation block are dropped (0 = none).
        seed: seed of the block order.

    Returns:
        A new :class:`Split`: the same test pixels, train minus val (minus the buffer), and
        ``params["val_carved"]`` recording the arguments and the pixels dropped by the buffer.

    Raises:
        SplitError: val is not empty, a bad fraction / buffer, or too few training blocks.
        ShapeMismatchError: ``labels`` is not the split's image shape.
    """
    label_map = _as_label_map(labels)
    if label_map.shape != split.image_shape:
        raise ShapeMismatchError(
            f"carve_validation_blocks: labels are {label_map.shape[0]}x{label_map.shape[1]} but the split was made "
            f"for {split.height}x{split.width}"
        )
    if split.val.size:
        raise SplitError(
            f"carve_validation_blocks needs a split without validation pixels, this one has {split.val.size}; make "
            "the split with val=0"
        )
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise SplitError(f"carve_validation_blocks: fraction must lie in (0, 1), got {fraction!r}")
    if isinstance(buffer, bool) or not isinstance(buffer, (int, np.integer)) or buffer < 0:
        raise SplitError(f"carve_validation_blocks: buffer must be an integer >= 0, got {buffer!r}")
    block_rows, block_cols = _block_shape(block_size, 1, split.height, split.width)
    train = split.train
    rows, cols = np.divmod(train, split.width)
    blocks_per_row = -(-split.width // block_cols)
    block_of = (rows // block_rows) * blocks_per_row + cols // block_cols
    blocks, block_index = np.unique(block_of, return_inverse=True)
    if blocks.size < 2:
        raise SplitError(
            f"carve_validation_blocks: the training pixels lie in {blocks.size} block(s) of {block_rows}x{block_cols} "
            "px; use a smaller block_size"
        )
    classes, class_index = np.unique(label_map.reshape(-1)[train], return_inverse=True)
    composition = np.zeros((blocks.size, classes.size), dtype=np.int64)
    np.add.at(composition, (block_index, class_index), 1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(blocks.size)
    chosen = np.zeros(blocks.size, dtype=bool)
    goal = fraction * train.size
    holding = composition > 0
    for k in np.argsort(holding.sum(axis=0), kind="stable"):
        if holding[:, k].sum() < 2 or composition[chosen, k].sum() > 0:
            continue
        if composition[chosen].sum() >= goal:
            break
        candidates = [b for b in order if holding[b, k] and not chosen[b]]
        chosen[min(candidates, key=lambda b: composition[b, k])] = True
    for block in order:
        if composition[chosen].sum() >= goal:
            break
        chosen[block] = True
    if chosen.all():
        raise SplitError("carve_validation_blocks: every training block went to val; lower fraction or block_size")
    in_val = chosen[block_index]
    keep = ~in_val
    if buffer:
        forbidden = np.zeros(split.image_shape, dtype=bool)
        for block in blocks[chosen]:
            r0, c0 = (block // blocks_per_row) * block_rows, (block % blocks_per_row) * block_cols
            forbidden[
                max(r0 - buffer, 0) : r0 + block_rows + buffer,
                max(c0 - buffer, 0) : c0 + block_cols + buffer,
            ] = True
        keep &= ~forbidden[rows, cols]
    params = dict(split.params)
    params["val_carved"] = {
        "fraction": float(fraction),
        "block_size": [block_rows, block_cols],
        "buffer": int(buffer),
        "seed": int(seed),
        "blocks": int(chosen.sum()),
        "buffer_removed": int(np.count_nonzero(~in_val & ~keep)),
    }
    parts = {"train": [train[keep]], "val": [train[in_val]], "test": [split.test]}
    return _make_split(label_map, parts, split.mode, split.seed, params, split.ignore_value)


# ---------------------------------------------------------------------------- factory
SPLIT_MODES = {"random": random_split, "count": count_split, "disjoint": disjoint_split}


def make_split(labels: np.ndarray, mode: str = "random", **kwargs: Any) -> Split:
    """Dispatch to :func:`random_split`, :func:`count_split` or :func:`disjoint_split` by ``mode``."""
    try:
        function = SPLIT_MODES[mode]
    except KeyError:
        raise UnknownNameError(f"unknown split mode {mode!r}; choose one of {sorted(SPLIT_MODES)}") from None
    return function(labels, **kwargs)


# ---------------------------------------------------------------------------- helpers
def _check_part(part: str) -> str:
    if part not in PARTS:
        raise SplitError(f"unknown split part {part!r}; use one of {list(PARTS)}")
    return part


def _as_label_map(labels: np.ndarray) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 2:
        raise InvalidLabelsError(
            f"a label map must be 2-D (H, W), got shape {array.shape}; squeeze extra axes or pick one band"
        )
    if array.dtype.kind == "b":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise InvalidLabelsError(
                f"labels of dtype {array.dtype} hold non-integer or non-finite values; class labels must be integers"
            )
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise InvalidLabelsError(f"labels must be an integer array, got dtype {array.dtype}")
    return array


def _class_pixels(
    label_map: np.ndarray, ignore_value: int | None, classes: Sequence[int] | None
) -> dict[int, np.ndarray]:
    """``{class value: sorted flat pixel indices}`` for the classes to split."""
    flat = label_map.reshape(-1)
    labelled = np.ones(flat.shape, dtype=bool) if ignore_value is None else flat != ignore_value
    present, counts = np.unique(flat[labelled], return_counts=True)
    if classes is None:
        if present.size == 0:
            raise SplitError(
                f"the {label_map.shape[0]}x{label_map.shape[1]} label map has no labelled pixel "
                f"(every pixel equals ignore_value={ignore_value}); check the label file"
            )
        wanted = [int(v) for v in present]
    else:
        wanted = sorted({int(v) for v in classes})
        if ignore_value is not None and ignore_value in wanted:
            raise SplitError(f"class {ignore_value} is the ignore_value; remove it from classes or change ignore_value")
        found = dict(zip(present.tolist(), counts.tolist()))
        empty = [v for v in wanted if found.get(v, 0) == 0]
        if empty:
            raise SplitError(
                f"class(es) {empty} have 0 labelled pixels in the {label_map.shape[0]}x{label_map.shape[1]} "
                f"label map (present: {sorted(found)}); drop them from classes or check the labels"
            )
    order = np.argsort(flat, kind="stable")
    sorted_values = flat[order]
    result: dict[int, np.ndarray] = {}
    for value in wanted:
        lo = int(np.searchsorted(sorted_values, value, side="left"))
        hi = int(np.searchsorted(sorted_values, value, side="right"))
        result[value] = np.sort(order[lo:hi]).astype(np.int64)
    return result


def _resolve_amount(
    amount: AmountSpec | None, value: int, available: int, part: str, check_available: bool = True
) -> int:
    """Pixels of class ``value`` for ``part``: a fraction of ``available`` or a count."""
    if amount is None:
        return 0
    if isinstance(amount, Mapping):
        amount = amount.get(value, 0)
    if isinstance(amount, (bool, np.bool_)) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise SplitError(f"{part} must be a fraction (float), a count per class (int) or a mapping; got {amount!r}")
    if isinstance(amount, (float, np.floating)):
        if not 0.0 <= amount <= 1.0:
            raise SplitError(
                f"{part}={amount} is not a fraction in [0, 1] (class {value}); pass an int for a count per class"
            )
        if amount == 0.0:
            return 0
        return max(1, math.floor(amount * available + 0.5))
    count = int(amount)
    if count < 0:
        raise SplitError(f"{part}={count} pixels for class {value} is negative")
    if check_available and count > available:
        raise SplitError(
            f"class {value} has {available} labelled pixel(s), fewer than {part}={count}; ask for at most "
            f"{available}, or use count_split(..., on_insufficient='fraction')"
        )
    return count


def _check_fraction_sum(**amounts: AmountSpec | None) -> None:
    for part, amount in amounts.items():
        if isinstance(amount, (float, np.floating)) and not 0.0 <= amount <= 1.0:
            raise SplitError(f"{part}={amount} is not a fraction in [0, 1]; pass an int for a count per class")
    fractions = [a for a in amounts.values() if isinstance(a, (float, np.floating))]
    if len(fractions) > 1 and sum(fractions) > 1.0 + 1e-12:
        terms = " + ".join(f"{f:g}" for f in fractions)
        raise SplitError(f"fractions {terms} = {sum(fractions):g} exceed 1; lower them")


def _describe(amount: AmountSpec | None, value: int | None = None) -> str:
    if isinstance(amount, Mapping):
        return repr(dict(amount)) if value is None else repr(amount.get(value, 0))
    return repr(amount)


def _amount_param(amount: AmountSpec | None) -> Any:
    if amount is None:
        return "rest"
    if isinstance(amount, Mapping):
        return {str(int(k)): _amount_param(v) for k, v in amount.items()}
    if isinstance(amount, (float, np.floating)):
        return float(amount)
    return int(amount)


def _block_shape(
    block_size: int | tuple[int, int] | None, patch_size: int, height: int, width: int
) -> tuple[int, int]:
    if block_size is None:
        side = max(2 * patch_size, math.ceil(max(height, width) / 10))
        return side, side
    sizes = (block_size, block_size) if isinstance(block_size, (int, np.integer)) else tuple(block_size)
    if len(sizes) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise SplitError(f"block_size must be a positive int or (rows, cols), got {block_size!r}")
    return int(sizes[0]), int(sizes[1])


def _make_split(
    label_map: np.ndarray,
    parts: Mapping[str, list[np.ndarray]],
    mode: str,
    seed: int | None,
    params: dict[str, Any],
    ignore_value: int | None,
) -> Split:
    flat = label_map.reshape(-1)
    indices = {
        part: np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.int64)
        for part, chunks in parts.items()
    }
    class_counts: dict[str, dict[int, int]] = {}
    for part, part_indices in indices.items():
        values, counts = np.unique(flat[part_indices], return_counts=True)
        class_counts[part] = {int(v): int(c) for v, c in zip(values, counts)}
    return Split(
        image_shape=label_map.shape,  # type: ignore[arg-type]
        train=indices["train"],
        val=indices["val"],
        test=indices["test"],
        mode=mode,
        seed=None if seed is None else int(seed),
        params=params,
        ignore_value=None if ignore_value is None else int(ignore_value),
        class_counts=class_counts,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
