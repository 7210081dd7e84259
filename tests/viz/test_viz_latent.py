"""Autoencoder figures: latent-space scatter and reconstruction errors, on Indian Pines codes.

The codes are those of a linear autoencoder: the projection on the first five principal
components of the scene's spectra (the optimum of a linear autoencoder with a 5-unit
bottleneck), and its reconstruction the projection back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.errors import ShapeMismatchError
from hsikit.viz.errors import pixel_error_maps
from hsikit.viz.latent import (
    latent_coordinates,
    plot_latent_scatter,
    plot_reconstruction_errors,
    plot_reconstructions,
)
from hsikit.viz.maps import class_colour_table


@pytest.fixture(scope="module")
def linear_autoencoder(indian_pines) -> dict[str, object]:
    cube, labels = indian_pines
    tile = np.asarray(cube.data[:, :64, :64], dtype=np.float64)
    pixels = tile.reshape(cube.bands, -1).T
    mean = pixels.mean(axis=0)
    _, _, components = np.linalg.svd(pixels - mean, full_matrices=False)
    codes = (pixels - mean) @ components[:5].T
    rebuilt = codes @ components[:5] + mean
    return {
        "latent": codes.T.reshape(5, 64, 64),
        "labels": labels[:64, :64],
        "original": Cube(tile, wavelengths=cube.wavelengths),
        "reconstruction": Cube(rebuilt.T.reshape(tile.shape), wavelengths=cube.wavelengths),
    }


def test_latent_coordinates_are_the_principal_components(linear_autoencoder) -> None:
    from sklearn.decomposition import PCA

    latent = linear_autoencoder["latent"]
    coordinates, labels, names = latent_coordinates(latent, linear_autoencoder["labels"])
    reference = PCA(n_components=2, svd_solver="full").fit(latent.reshape(5, -1).T)
    expected = reference.transform(latent.reshape(5, -1).T)
    for axis in range(2):
        np.testing.assert_allclose(np.abs(coordinates[:, axis]), np.abs(expected[:, axis]), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(labels, linear_autoencoder["labels"].reshape(-1))
    share = 100 * reference.explained_variance_ratio_[0]
    assert names[0] == f"PC 1 of 5 latent dims ({share:.0f} % variance)"
    kept, kept_labels, _ = latent_coordinates(latent, linear_autoencoder["labels"], max_points=500)
    assert kept.shape == (500, 2) and kept_labels.shape == (500,)
    with pytest.raises(ShapeMismatchError, match=r"labels of shape \(64, 63\)"):
        latent_coordinates(latent, linear_autoencoder["labels"][:, :63])


def test_latent_scatter_coloured_by_class(linear_autoencoder, indian_pines_class_names, tmp_path: Path,
                                          check_figure_files) -> None:
    figure = plot_latent_scatter(linear_autoencoder["latent"], linear_autoencoder["labels"], indian_pines_class_names,
                                 path=tmp_path / "latent")
    axes = figure.axes[0]
    present = sorted(int(v) for v in np.unique(linear_autoencoder["labels"]) if v > 0)
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == [indian_pines_class_names[v - 1] for v in present] + ["unlabelled"]
    table = class_colour_table(max(present) + 1)
    for collection, value in zip(axes.collections[1:], present):  # the first collection: unlabelled codes
        np.testing.assert_allclose(collection.get_facecolor()[0][:3], table[value])
        assert len(collection.get_offsets()) == int(np.sum(linear_autoencoder["labels"] == value))
    check_figure_files(tmp_path / "latent", panels=1)


def test_reconstruction_figures(linear_autoencoder, tmp_path: Path, check_figure_files) -> None:
    original, rebuilt = linear_autoencoder["original"], linear_autoencoder["reconstruction"]
    figure = plot_reconstruction_errors(rebuilt, original, path=tmp_path / "errors")
    maps = pixel_error_maps(rebuilt, original, ("rmse", "sam"))
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), maps["rmse"])
    check_figure_files(tmp_path / "errors", panels=2)
    spectra = np.asarray(original.data).reshape(original.bands, -1).T[:40]
    outputs = np.asarray(rebuilt.data).reshape(original.bands, -1).T[:40]
    figure = plot_reconstructions(spectra, outputs, original.wavelengths, count=4, path=tmp_path / "examples")
    assert len(figure.axes) == 4
    first_in, first_out = figure.axes[0].get_lines()
    np.testing.assert_allclose(first_in.get_ydata()[np.isfinite(first_in.get_ydata())],
                               spectra[0][np.argsort(original.wavelengths, kind="stable")])
    assert first_out.get_linestyle() == "--"
    check_figure_files(tmp_path / "examples", panels=4)
