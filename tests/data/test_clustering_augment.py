"""Overlapping two-crop augmentation: true view geometry, overlap, non-circular wavelength shift, padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsikit.data.clustering_augment import TwoCropAugmentation, shift_bands
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.clustering import align_to_view, view_correspondence


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def coordinate_scene(batch: int, height: int, width: int) -> torch.Tensor:
    """(B, 3, H, W): band 0 = row, band 1 = column, band 2 = the scene index (a linear function of position)."""
    rows = torch.arange(height, dtype=torch.float64).reshape(1, height, 1).expand(batch, height, width)
    cols = torch.arange(width, dtype=torch.float64).reshape(1, 1, width).expand(batch, height, width)
    index = torch.arange(batch, dtype=torch.float64).reshape(batch, 1, 1).expand(batch, height, width)
    return torch.stack([rows, cols, index], dim=1)


def test_views_sampled_at_the_returned_geometry_show_the_same_scene_points() -> None:
    scene = coordinate_scene(6, 80, 90)
    augment = TwoCropAugmentation(crop_size=(32, 40), degrees=10, translate=0.1, max_band_shift=0)
    pair = augment(scene, generator=torch.Generator().manual_seed(3))
    assert pair.view1.shape == pair.view2.shape == (6, 3, 32, 40)
    grid, valid = view_correspondence(pair.geometry1, pair.geometry2, (32, 40), (32, 40))
    # Keep pixels sampled well inside their crops in both views (no reflected values near crop edges).
    def clean(theta: torch.Tensor) -> torch.Tensor:
        sources = F.affine_grid(theta, [6, 1, 32, 40], align_corners=False)
        return (sources[..., 0].abs() <= 1 - 4 / 40) & (sources[..., 1].abs() <= 1 - 4 / 32)

    inner = valid & clean(pair.geometry1.theta)
    inner &= (grid[..., 0].abs() <= 1 - 2 / 40) & (grid[..., 1].abs() <= 1 - 2 / 32)  # away from view 2's edge
    inner &= align_to_view(clean(pair.geometry2.theta).unsqueeze(1).double(), grid)[:, 0] > 0.999
    assert int(inner.sum()) > 1000  # the crops overlap by at least 20 % per axis
    resampled = align_to_view(pair.view2, grid)
    error = (resampled - pair.view1).abs()[:, :2].amax(dim=1)[inner]
    assert float(error.max()) < 1e-6  # bilinear sampling of a linear ramp is exact
    # The reference compared equal pixel indices of the two views: different scene points.
    reference_error = (pair.view2 - pair.view1).abs()[:, :2].amax(dim=1)[inner]
    assert float(reference_error.mean()) > 2.0


def test_crop_offsets_keep_at_least_the_minimum_overlap_per_axis() -> None:
    scene = coordinate_scene(64, 100, 120)
    augment = TwoCropAugmentation(crop_size=30, min_overlap=0.4, max_overlap=0.6, affine=False, max_band_shift=0)
    pair = augment(scene, generator=torch.Generator().manual_seed(0))
    offset = (pair.geometry2.origin - pair.geometry1.origin).abs()
    assert bool((offset <= 0.6 * 30 + 1e-9).all())  # s = int((1 - f) h) with f >= 0.4
    assert bool((offset[:, 0] > 0).any()) and bool((offset[:, 1] > 0).any())
    # without the affine the views are exact crops at the recorded origins
    for b in range(4):
        r, c = (int(v) for v in pair.geometry2.origin[b])
        torch.testing.assert_close(pair.view2[b], scene[b, :, r : r + 30, c : c + 30])
    origin = pair.geometry1.origin
    assert bool((origin[:, 0] <= 100 - 30).all()) and bool((origin[:, 1] <= 120 - 30).all())


def test_wavelength_shift_does_not_wrap_the_spectrum_around() -> None:
    bands = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1, 1).expand(2, 10, 2, 2)
    shifted = shift_bands(bands, torch.tensor([2, -3]), "edge")
    assert shifted[0, :, 0, 0].tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    assert shifted[1, :, 0, 0].tolist() == [3, 4, 5, 6, 7, 8, 9, 9, 9, 9]
    zeros = shift_bands(bands, torch.tensor([2, -3]), "zeros")
    assert zeros[0, :, 0, 0].tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    assert zeros[1, :, 0, 0].tolist() == [3, 4, 5, 6, 7, 8, 9, 0, 0, 0]
    # The reference rolled circularly: the last (near-infrared) bands re-entered at the blue end.
    reference = torch.roll(bands[0], shifts=2, dims=0)[:, 0, 0].tolist()
    assert reference[:2] == [8, 9] and shifted[0, :2, 0, 0].tolist() != reference[:2]


def test_every_view_is_band_shifted_within_the_limit_and_never_wrapped() -> None:
    ramp = torch.linspace(0, 1, 30).reshape(1, 30, 1, 1).expand(16, 30, 40, 40).contiguous()
    augment = TwoCropAugmentation(crop_size=16, affine=False, max_band_shift=2)
    pair = augment(ramp, generator=torch.Generator().manual_seed(1))
    for view, shifts in ((pair.view1, pair.band_shift1), (pair.view2, pair.band_shift2)):
        assert bool((shifts.abs() <= 2).all())
        spectra = view[:, :, 0, 0]
        assert bool((spectra.diff(dim=1) >= 0).all())  # still increasing: nothing wrapped around
    assert set(torch.cat([pair.band_shift1, pair.band_shift2]).tolist()) == {-2, -1, 0, 1, 2}


def test_scenes_smaller_than_the_crop_are_padded_and_the_padding_is_masked() -> None:
    scene = torch.rand(2, 4, 10, 12, dtype=torch.float64)
    with pytest.raises(RuntimeError):  # the reference's reflect padding cannot pad 20 rows onto 10
        F.pad(scene, (0, 20, 0, 20), mode="reflect")
    valid = torch.ones(2, 10, 12, dtype=torch.bool)
    valid[1, :, 6:] = False  # batch padding of a narrower scene
    augment = TwoCropAugmentation(crop_size=30, affine=False, max_band_shift=0)
    pair = augment(scene, valid, generator=torch.Generator().manual_seed(0))
    assert pair.view1.shape == (2, 4, 30, 30)
    assert int(pair.mask1[0].sum()) == 10 * 12 and int(pair.mask1[1].sum()) == 10 * 6
    torch.testing.assert_close(pair.view1[0, :, :10, :12], scene[0])


def test_warped_padding_is_masked_too() -> None:
    scene = torch.rand(4, 3, 48, 48, dtype=torch.float64)
    valid = torch.ones(4, 48, 48, dtype=torch.bool)
    valid[:, :, 24:] = False
    pair = TwoCropAugmentation(crop_size=48, degrees=10)(scene, valid, generator=torch.Generator().manual_seed(2))
    assert bool(pair.mask1.any()) and not bool(pair.mask1.all())
    assert float(pair.mask1.double().mean()) < 0.6


def test_the_same_generator_state_gives_the_same_views() -> None:
    scene = torch.rand(3, 5, 40, 40)
    augment = TwoCropAugmentation(crop_size=16)
    first = augment(scene, generator=torch.Generator().manual_seed(7))
    second = augment(scene, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(first.view1, second.view1)
    torch.testing.assert_close(first.geometry2.theta, second.geometry2.theta)


def test_bad_settings_and_inputs_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="circular roll"):
        TwoCropAugmentation(band_shift_mode="circular")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_overlap"):
        TwoCropAugmentation(min_overlap=0.9, max_overlap=0.5)
    with pytest.raises(ShapeMismatchError, match=r"\(B, H, W\) bool mask"):
        TwoCropAugmentation(crop_size=8)(torch.rand(2, 3, 16, 16), torch.ones(2, 16, 15, dtype=torch.bool))
    with pytest.raises(ShapeMismatchError, match="float"):
        TwoCropAugmentation(crop_size=8)(torch.ones(2, 3, 16, 16, dtype=torch.int64))
