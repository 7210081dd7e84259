"""Eight-way dihedral self-ensemble (test-time augmentation with flips and 90-degree rotations).

The input batch is transformed by each element of the dihedral group of the
square (4 rotations, each with and without a left-right flip), the model is run
on each, each output is transformed back, and the 8 outputs are averaged. For a
model that is spatially equivariant (its output rotates and flips with its
input) the ensemble equals the plain output; for a trained network it usually
reduces noise. The model must map ``(B, C, h, w)`` to ``(B, K, h, w)`` (and a
rotated ``(B, C, w, h)`` to ``(B, K, w, h)``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hsikit.errors import ShapeMismatchError

# (quarter turns counter-clockwise, flip left-right first)
DIHEDRAL_TRANSFORMS: tuple[tuple[int, bool], ...] = tuple(
    (turns, flip) for flip in (False, True) for turns in range(4)
)


def apply_dihedral(batch: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Flip (optional, along width) then rotate by ``turns`` quarter turns a ``(..., h, w)`` tensor."""
    if flip:
        batch = batch.flip(-1)
    return torch.rot90(batch, turns, dims=(-2, -1)) if turns % 4 else batch


def invert_dihedral(batch: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Undo :func:`apply_dihedral`: rotate back by ``turns`` quarter turns, then flip back."""
    if turns % 4:
        batch = torch.rot90(batch, -turns, dims=(-2, -1))
    return batch.flip(-1) if flip else batch


def dihedral_ensemble(predict: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
    """Mean of ``predict`` over the 8 dihedral transforms of ``batch``, each transformed back.

    Args:
        predict: maps a ``(B, C, h, w)`` tensor to ``(B, K, h, w)``; apply any
            activation (softmax) inside it so that the average is taken over the
            quantity you want merged.
        batch: input tiles, shape ``(B, C, h, w)``.

    Returns:
        ``(B, K, h, w)`` average of the 8 back-transformed outputs.
    """
    total: torch.Tensor | None = None
    for turns, flip in DIHEDRAL_TRANSFORMS:
        transformed = apply_dihedral(batch, turns, flip)
        output = predict(transformed)
        if output.shape[-2:] != transformed.shape[-2:]:
            raise ShapeMismatchError(
                f"self-ensemble needs a model whose output has its input's spatial size; input "
                f"{tuple(transformed.shape)} gave output {tuple(output.shape)}. Use ensemble=False "
                "for models that change the spatial size"
            )
        restored = invert_dihedral(output, turns, flip)
        total = restored.clone() if total is None else total.add_(restored)
    assert total is not None
    return total.div_(len(DIHEDRAL_TRANSFORMS))
