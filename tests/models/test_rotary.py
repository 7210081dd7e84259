"""Rotary position embedding: rotation maths, relative-position property (1-D and 2-D), errors."""

from __future__ import annotations

import math

import pytest
import torch

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models.layers.rotary import (
    RotaryEmbedding1D,
    RotaryEmbedding2D,
    apply_rotary,
    rotary_angles_2d,
    rotary_frequencies,
)


def test_frequencies_are_the_roformer_ladder() -> None:
    frequencies = rotary_frequencies(8, base=10000.0)
    expected = torch.tensor([1.0, 10000.0 ** -0.25, 10000.0 ** -0.5, 10000.0 ** -0.75], dtype=torch.float64)
    torch.testing.assert_close(frequencies, expected)


def test_each_pair_turns_like_a_complex_number() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 6, generator=generator)
    angles = torch.rand(5, 3, generator=generator, dtype=torch.float64) * 6.0
    rotated = apply_rotary(x, angles)
    as_complex = torch.complex(x[..., 0::2].double(), x[..., 1::2].double()) * torch.exp(1j * angles)
    torch.testing.assert_close(rotated[..., 0::2].double(), as_complex.real, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rotated[..., 1::2].double(), as_complex.imag, rtol=1e-6, atol=1e-6)


def test_rotation_preserves_every_token_norm() -> None:
    x = torch.randn(2, 4, 7 * 5, 16, generator=torch.Generator().manual_seed(1)) * 3.0
    rope = RotaryEmbedding2D(16)
    rotated = rope(x, 7, 5)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1), rtol=1e-5, atol=1e-5)
    assert (rotated - x).abs().max() > 0.1  # it did move the vectors


def test_position_zero_is_the_identity() -> None:
    x = torch.randn(1, 9, 8)
    torch.testing.assert_close(RotaryEmbedding1D(8)(x)[:, 0], x[:, 0])
    torch.testing.assert_close(RotaryEmbedding2D(8)(x, 3, 3)[:, 0], x[:, 0])


def test_1d_scores_depend_only_on_the_offset() -> None:
    generator = torch.Generator().manual_seed(2)
    length, dim = 12, 8
    q = torch.randn(dim, generator=generator).double()
    k = torch.randn(dim, generator=generator).double()
    rope = RotaryEmbedding1D(dim)
    rotated_q = rope(q.expand(length, dim).clone())
    rotated_k = rope(k.expand(length, dim).clone())
    scores = rotated_q @ rotated_k.T  # scores[p, p'] = <R(p) q, R(p') k>
    for shift in range(1, 4):
        torch.testing.assert_close(scores[shift:, shift:], scores[:-shift, :-shift])
    # and the offset matters: the diagonal (offset 0) differs from offset 3
    assert abs(scores[0, 0].item() - scores[0, 3].item()) > 1e-3


def test_2d_scores_depend_only_on_the_row_and_column_offsets() -> None:
    generator = torch.Generator().manual_seed(3)
    height, width, dim = 5, 6, 8
    q = torch.randn(dim, generator=generator).double()
    k = torch.randn(dim, generator=generator).double()
    rope = RotaryEmbedding2D(dim, base=100.0)
    tokens = height * width
    rotated_q = rope(q.expand(tokens, dim).clone(), height, width).reshape(height, width, dim)
    rotated_k = rope(k.expand(tokens, dim).clone(), height, width).reshape(height, width, dim)
    by_offset: dict[tuple[int, int], float] = {}
    for r in range(height):
        for c in range(width):
            for r2 in range(height):
                for c2 in range(width):
                    score = float(rotated_q[r, c] @ rotated_k[r2, c2])
                    offset = (r2 - r, c2 - c)
                    if offset in by_offset:
                        assert score == pytest.approx(by_offset[offset], abs=1e-9)
                    else:
                        by_offset[offset] = score
    # distinct offsets give distinct scores: rows and columns are both encoded
    assert by_offset[(0, 0)] != pytest.approx(by_offset[(1, 0)], abs=1e-6)
    assert by_offset[(0, 0)] != pytest.approx(by_offset[(0, 1)], abs=1e-6)
    assert by_offset[(1, 0)] != pytest.approx(by_offset[(0, 1)], abs=1e-6)


def test_2d_layout_rows_turn_the_first_half_and_columns_the_second() -> None:
    angles = rotary_angles_2d(3, 4, 8)
    row_angles, col_angles = angles[:, :2], angles[:, 2:]
    rows = torch.arange(3).repeat_interleave(4).double()
    cols = torch.arange(4).repeat(3).double()
    ladder = rotary_frequencies(4)  # the 4 channels of each half
    torch.testing.assert_close(row_angles, rows[:, None] * ladder)
    torch.testing.assert_close(col_angles, cols[:, None] * ladder)


def test_the_reference_half_split_table_with_adjacent_pairs_is_not_a_rotation() -> None:
    # The HSIFusionNet reference built cos/sin as cat(freqs, freqs) (half-split) but rotated
    # adjacent channel pairs; written out here, that transform changes vector norms.
    dim, position = 8, 3.0
    half_split = torch.cat([rotary_frequencies(dim), rotary_frequencies(dim)]) * position  # (dim,)
    cos, sin = half_split.cos(), half_split.sin()
    x = torch.randn(dim, generator=torch.Generator().manual_seed(4)).double()
    rotate_half = torch.stack([-x[1::2], x[0::2]], dim=-1).flatten()
    reference = x * cos + rotate_half * sin
    assert abs(reference.norm().item() - x.norm().item()) > 1e-3
    ours = apply_rotary(x[None], (rotary_frequencies(dim) * position)[None])[0]
    assert ours.norm().item() == pytest.approx(x.norm().item(), rel=1e-9)


def test_half_precision_keeps_its_dtype() -> None:
    x = torch.randn(2, 16, 8).to(torch.bfloat16)
    rotated = RotaryEmbedding2D(8)(x, 4, 4)
    assert rotated.dtype == torch.bfloat16
    torch.testing.assert_close(rotated.float(), RotaryEmbedding2D(8)(x.float(), 4, 4), rtol=1e-2, atol=1e-2)


def test_bad_sizes_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="even head_dim"):
        RotaryEmbedding1D(7)
    with pytest.raises(ConfigError, match="head_dim divisible by 4"):
        RotaryEmbedding2D(6)
    with pytest.raises(ShapeMismatchError, match="cannot lie on a 3 x 3 grid"):
        RotaryEmbedding2D(8)(torch.zeros(1, 10, 8), 3, 3)
    with pytest.raises(ShapeMismatchError, match="needs angles of shape"):
        apply_rotary(torch.zeros(4, 8), torch.zeros(4, 3))
    with pytest.raises(ConfigError, match="base must be > 1"):
        rotary_frequencies(8, base=1.0)
    assert math.isclose(float(rotary_frequencies(2)[0]), 1.0)
