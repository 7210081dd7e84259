"""Cross-shaped window attention: stripe locality, head split, masking, brute-force maths, safe padding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError
from hsikit.models.layers.cswin_attention import AxialLegacyAttention, CSWinAttention, build_spatial_attention
from hsikit.models.layers.safe_padding import mode_fits, safe_pad2d


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def make_attention(dim: int = 8, heads: int = 2, split: int = 3, seed: int = 0, **kwargs) -> CSWinAttention:
    torch.manual_seed(seed)
    return CSWinAttention(dim, heads, split, **kwargs).double()


def dependency_map(output: torch.Tensor, x: torch.Tensor, row: int, column: int) -> torch.Tensor:
    """(H, W) boolean map of the input pixels the output token (row, column) depends on."""
    (gradient,) = torch.autograd.grad(output[0, :, row, column].sum(), x, retain_graph=True)
    return gradient.abs().sum(dim=(0, 1)) > 0


def stripe_rows(row: int, split: int, height: int) -> range:
    start = (row // split) * split
    return range(start, min(start + split, height))


@pytest.mark.parametrize(("height", "width", "split"), [(9, 11, 3), (9, 11, 4), (10, 7, 5), (9, 11, 7)])
def test_each_half_of_the_heads_sees_exactly_its_stripe(height: int, width: int, split: int) -> None:
    attention = make_attention(split=split)
    x = torch.randn(1, 8, height, width, dtype=torch.float64, requires_grad=True)
    horizontal, vertical = attention.branch_outputs(x)
    for row, column in [(0, 0), (height // 2, width // 2), (height - 1, width - 1), (1, width - 2)]:
        expected = torch.zeros(height, width, dtype=torch.bool)
        expected[list(stripe_rows(row, split, height)), :] = True
        assert torch.equal(dependency_map(horizontal, x, row, column), expected), (row, column)
        expected = torch.zeros(height, width, dtype=torch.bool)
        expected[:, list(stripe_rows(column, split, width))] = True
        assert torch.equal(dependency_map(vertical, x, row, column), expected), (row, column)


def test_the_full_output_sees_the_cross_of_both_stripes() -> None:
    attention = make_attention(split=2)
    x = torch.randn(1, 8, 8, 9, dtype=torch.float64, requires_grad=True)
    output = attention(x)
    expected = torch.zeros(8, 9, dtype=torch.bool)
    expected[4:6, :] = True
    expected[:, 2:4] = True
    assert torch.equal(dependency_map(output, x, 5, 3), expected)


def test_a_stripe_wider_than_the_map_is_global_attention() -> None:
    attention = make_attention(split=7)
    x = torch.randn(1, 8, 4, 5, dtype=torch.float64, requires_grad=True)
    horizontal, vertical = attention.branch_outputs(x)
    assert dependency_map(horizontal, x, 2, 1).all()
    assert dependency_map(vertical, x, 0, 4).all()


def test_heads_are_split_between_the_two_directions() -> None:
    attention = CSWinAttention(dim=24, num_heads=6, split_size=2)
    assert (attention.horizontal_heads, attention.vertical_heads) == (3, 3)
    assert attention.horizontal_channels == 12
    odd = CSWinAttention(dim=12, num_heads=3, split_size=2)
    assert (odd.horizontal_heads, odd.vertical_heads, odd.horizontal_channels) == (1, 2, 4)
    horizontal, vertical = odd.branch_outputs(torch.randn(2, 12, 5, 6))
    assert horizontal.shape == (2, 4, 5, 6) and vertical.shape == (2, 8, 5, 6)


def brute_force_branch(query, key, value, heads: int, split: int, lepe: torch.nn.Conv2d) -> torch.Tensor:
    """Horizontal-stripe attention written pixel by pixel (H a multiple of split)."""
    _, channels, height, width = query.shape
    head_dim = channels // heads
    out = torch.zeros_like(query)
    for top in range(0, height, split):
        rows = slice(top, top + split)
        positional = lepe(value[:, :, rows])  # LePE on the stripe alone, zero padded at its border
        for head in range(heads):
            chans = slice(head * head_dim, (head + 1) * head_dim)
            q = query[0, chans, rows].reshape(head_dim, -1).T  # (tokens, d), row-major over (row, col)
            k = key[0, chans, rows].reshape(head_dim, -1).T
            v = value[0, chans, rows].reshape(head_dim, -1).T
            weights = torch.softmax(q @ k.T / math.sqrt(head_dim), dim=-1)
            out[0, chans, rows] = (weights @ v).T.reshape(head_dim, split, width)
        out[:, :, rows] += positional
    return out


def test_stripe_attention_equals_a_brute_force_computation() -> None:
    attention = make_attention(dim=8, heads=4, split=3, seed=3)
    x = torch.randn(1, 8, 6, 9, dtype=torch.float64)  # both sides multiples of the stripe width
    horizontal, vertical = attention.branch_outputs(x)
    query, key, value = attention.qkv(x).chunk(3, dim=1)
    h = attention.horizontal_channels
    expected_h = brute_force_branch(query[:, :h], key[:, :h], value[:, :h], 2, 3, attention.lepe_h)
    torch.testing.assert_close(horizontal, expected_h)
    # vertical stripes = horizontal stripes of the transposed map
    expected_v = brute_force_branch(
        query[:, h:].transpose(-1, -2), key[:, h:].transpose(-1, -2), value[:, h:].transpose(-1, -2),
        2, 3, attention.lepe_v,
    ).transpose(-1, -2)  # fmt: skip
    torch.testing.assert_close(vertical, expected_v)
    torch.testing.assert_close(attention(x), attention.proj(torch.cat([expected_h, expected_v], dim=1)))


def test_padded_tokens_are_masked_out_of_the_keys() -> None:
    # With LePE switched off the branch output is attention alone; if padded tokens took part as
    # keys, reflect / replicate / zero padding would give different outputs in the partial stripe.
    outputs = []
    for mode in ("reflect", "replicate", "zeros", "circular"):
        attention = make_attention(split=4, pad_mode=mode)
        for lepe in (attention.lepe_h, attention.lepe_v):
            torch.nn.init.zeros_(lepe.weight)
            torch.nn.init.zeros_(lepe.bias)
        torch.manual_seed(7)
        outputs.append(attention(torch.randn(2, 8, 9, 10, dtype=torch.float64)))
    for other in outputs[1:]:
        torch.testing.assert_close(other, outputs[0])


@pytest.mark.parametrize("size", [(9, 11), (1, 1), (2, 13), (13, 2), (3, 3)])
def test_tiny_maps_run_in_every_pad_mode(size: tuple[int, int]) -> None:
    for mode in ("reflect", "replicate", "circular", "zeros"):
        attention = CSWinAttention(8, 2, 7, pad_mode=mode)
        assert attention(torch.randn(1, 8, *size)).shape == (1, 8, *size)


def test_gradient_checkpointing_gives_the_same_values_and_gradients() -> None:
    attention = make_attention(split=3).train()
    x = torch.randn(2, 8, 9, 7, dtype=torch.float64, requires_grad=True)
    attention.checkpoint_min_tokens = None
    plain = attention(x)
    (plain_grad,) = torch.autograd.grad(plain.square().sum(), x)
    attention.checkpoint_min_tokens = 1
    checkpointed = attention(x)
    assert checkpointed.grad_fn is not None
    (checkpointed_grad,) = torch.autograd.grad(checkpointed.square().sum(), x)
    torch.testing.assert_close(checkpointed, plain)
    torch.testing.assert_close(checkpointed_grad, plain_grad)


def test_the_reference_axial_attention_sees_rows_not_stripes() -> None:
    # CSWIN v2 at 56c126d: a token of the horizontal branch depends on its row (plus the rows
    # next to it, through the LePE convolution of the *output*), whatever the split size.
    torch.manual_seed(0)
    legacy = AxialLegacyAttention(8, 2, split_size=5).double()
    x = torch.randn(1, 8, 10, 10, dtype=torch.float64, requires_grad=True)
    horizontal, _ = legacy.branch_outputs(x)
    rows = dependency_map(horizontal, x, 0, 3).any(dim=1).nonzero().flatten().tolist()
    assert rows == [0, 1]
    stripe = make_attention(split=5)
    horizontal, _ = stripe.branch_outputs(x)
    assert dependency_map(horizontal, x, 0, 3).any(dim=1).nonzero().flatten().tolist() == [0, 1, 2, 3, 4]


def test_legacy_bias_is_periodic_in_the_split_size() -> None:
    torch.manual_seed(0)
    legacy = AxialLegacyAttention(4, 1, split_size=3)
    index = legacy._periodic_index(7, torch.device("cpu"))
    # positions 0 and 3 are the same modulo 3, so they get the same bias row
    assert torch.equal(index[0], index[3])
    assert index[1, 0].item() == 1 - 0 + 2


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 2 heads"):
        CSWinAttention(8, 1, 3)
    with pytest.raises(ConfigError, match="divisors of dim"):
        CSWinAttention(10, 4, 3)
    with pytest.raises(ConfigError, match="split_size"):
        CSWinAttention(8, 2, 0)
    with pytest.raises(ConfigError, match="padding mode"):
        CSWinAttention(8, 2, 3, pad_mode="mirror")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cswin_mode"):
        build_spatial_attention("window", 8, 2, 3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- safe padding
def test_safe_pad_reflects_when_it_can() -> None:
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    torch.testing.assert_close(safe_pad2d(x, (1, 2, 0, 2)), F.pad(x, [1, 2, 0, 2], mode="reflect"))


def test_safe_pad_falls_back_per_axis_when_the_pad_is_too_large() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # 2 x 2
    # 5 rows cannot be reflected from a 2-row map: rows fall back to replicate; columns (pad 1) still reflect
    padded = safe_pad2d(x, (0, 1, 0, 5), mode="reflect")
    expected = F.pad(F.pad(x, [0, 1, 0, 0], mode="reflect"), [0, 0, 0, 5], mode="replicate")
    torch.testing.assert_close(padded, expected)
    assert padded[0, 0, :, 2].tolist() == [1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    zeros = safe_pad2d(x, (0, 0, 0, 3), mode="circular", fallback="zeros")
    assert zeros[0, 0, 2:].abs().sum().item() == 0.0
    assert safe_pad2d(x, (0, 0, 0, 2), mode="circular")[0, 0, 2:].tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_safe_pad_mode_rules_and_errors() -> None:
    assert mode_fits("reflect", 0, 2, 3) and not mode_fits("reflect", 0, 3, 3)
    assert mode_fits("circular", 3, 0, 3) and not mode_fits("circular", 4, 0, 3)
    assert mode_fits("zeros", 100, 100, 1)
    assert safe_pad2d(torch.ones(5, 1), (0, 0, 0, 9)).shape == (14, 1)  # a plain 2-D map
    with pytest.raises(ConfigError, match="left, right, top, bottom"):
        safe_pad2d(torch.ones(1, 1, 2, 2), (0, -1, 0, 0))
    with pytest.raises(ConfigError, match="fallback"):
        safe_pad2d(torch.ones(1, 1, 2, 2), (1, 1, 1, 1), fallback="reflect")  # type: ignore[arg-type]
