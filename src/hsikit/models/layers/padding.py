"""Pad images so encoder-decoder networks accept any height and width."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` on the bottom and right so H and W become multiples of ``multiple``.

    Reflect padding (as MST++) where the image is large enough for it (fewer padded rows /
    columns than it has); replicate padding otherwise, so any size ``>= 1`` works. Crop the
    network's output back with ``y[..., :H, :W]``. Returns ``x`` itself when nothing is padded.
    """
    if multiple < 1:
        raise ConfigError(f"pad_to_multiple needs multiple >= 1, got {multiple}")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    pad_bottom, pad_right = (-height) % multiple, (-width) % multiple
    if pad_bottom == 0 and pad_right == 0:
        return x
    mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
    return F.pad(x, [0, pad_right, 0, pad_bottom], mode=mode)


__all__ = ["pad_to_multiple"]
