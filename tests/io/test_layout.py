"""The layout rule: explicit CHW/HWC, and "auto" only when the band axis is unambiguous."""

from __future__ import annotations

import numpy as np
import pytest

from hsikit.errors import LayoutError
from hsikit.io.layout import from_chw, resolve_layout, to_chw


def test_explicit_layout_is_obeyed_even_against_the_shape_heuristic() -> None:
    # (145, 145, 200) looks HWC, but the caller says CHW and nothing contradicts it.
    assert resolve_layout((145, 145, 200), "CHW") == "CHW"
    assert resolve_layout((31, 64, 64), "hwc") == "HWC"


def test_explicit_layout_contradicting_band_count_names_the_fix() -> None:
    with pytest.raises(LayoutError, match=r"layout='CHW' puts 145 bands .* 200 wavelengths.*layout='HWC'"):
        resolve_layout((145, 145, 200), "CHW", band_count=200, source="'scene.npy'")


def test_band_count_decides_when_exactly_one_end_axis_matches() -> None:
    assert resolve_layout((80, 100, 162), band_count=162) == "HWC"
    assert resolve_layout((162, 80, 100), band_count=162) == "CHW"


def test_band_count_matching_both_ends_is_ambiguous() -> None:
    with pytest.raises(LayoutError, match="both the first and the last axis"):
        resolve_layout((31, 50, 31), band_count=31)


def test_band_count_matching_no_end_axis_is_an_error() -> None:
    with pytest.raises(LayoutError, match="220 wavelengths match neither"):
        resolve_layout((145, 145, 200), band_count=220, source="'x.npy'")
    # The middle axis never holds bands.
    with pytest.raises(LayoutError, match="match neither"):
        resolve_layout((80, 162, 100), band_count=162)


def test_companion_map_fixes_the_spatial_axes() -> None:
    assert resolve_layout((80, 100, 162), spatial_shapes=[(80, 100)]) == "HWC"
    assert resolve_layout((162, 80, 100), spatial_shapes=[(80, 100)]) == "CHW"
    # A map matching both readings decides nothing; the odd-axis rule does not apply either.
    with pytest.raises(LayoutError, match="cannot tell the band axis"):
        resolve_layout((100, 100, 100), spatial_shapes=[(100, 100)])


def test_naming_convention_comes_after_evidence() -> None:
    assert resolve_layout((482, 512, 31), convention="HWC") == "HWC"
    # wavelengths beat the convention
    assert resolve_layout((31, 482, 512), band_count=31, convention="HWC") == "CHW"


def test_odd_axis_rule() -> None:
    assert resolve_layout((145, 145, 200)) == "HWC"
    assert resolve_layout((31, 64, 64)) == "CHW"


@pytest.mark.parametrize("shape", [(64, 31, 64), (10, 10, 10), (80, 100, 162)])
def test_ambiguous_shapes_ask_for_layout(shape: tuple[int, int, int]) -> None:
    with pytest.raises(LayoutError, match=r"pass layout='CHW' \(bands, H, W\) or layout='HWC'"):
        resolve_layout(shape, source="'cube.npy'")


def test_bad_layout_string_and_bad_rank() -> None:
    with pytest.raises(LayoutError, match="'CHW', 'HWC' or 'auto'"):
        resolve_layout((3, 4, 5), "BHW")
    with pytest.raises(LayoutError, match="expected a 3-D cube"):
        resolve_layout((4, 5), "CHW")


def test_to_chw_and_back_are_views(rng: np.random.Generator) -> None:
    hwc = rng.random((4, 6, 3))
    chw = to_chw(hwc, "HWC")
    assert chw.shape == (3, 4, 6) and np.shares_memory(chw, hwc)
    np.testing.assert_array_equal(chw[2, 1, 5], hwc[1, 5, 2])
    np.testing.assert_array_equal(from_chw(chw, "HWC"), hwc)
    assert to_chw(chw, "CHW") is chw
