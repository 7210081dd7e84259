"""``hsikit viz`` end to end on real result folders: files, captions, scores and the index page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from hsikit import Cube
from hsikit.cli import main
from hsikit.io import save_cube, save_labels
from hsikit.viz.errors import scene_scores


@pytest.fixture(scope="module")
def result_folders(reconstruction_set, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two methods' predictions of three 40 x 40 Indian Pines scenes, as MST++ and hsikit would save them."""
    root = tmp_path_factory.mktemp("results")
    target = reconstruction_set["target"]
    for number, (row, col) in enumerate([(0, 0), (50, 50), (100, 100)]):
        window = (slice(None), slice(row, row + 40), slice(col, col + 40))
        name = f"scene_{number}"
        save_cube(target[window], root / "targets" / f"{name}.mat", mat_format="v7.3")
        save_cube(Cube(reconstruction_set["linear"][window]), root / "linear" / "hsi" / f"{name}.npy", layout="HWC")
        save_cube(Cube(reconstruction_set["quadratic"][window], wavelengths=target.wavelengths),
                  root / "quadratic" / f"{name}.tif")
    (root / "linear" / "config.json").write_text(json.dumps({"method": "linear RGB regression", "layout": "HWC"}))
    return root


def _embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_all_figures_of_two_methods(result_folders: Path, reconstruction_set, tmp_path: Path, capsys,
                                    png_metadata, read_png) -> None:
    out = tmp_path / "figs"
    status = main(["viz", "all", str(result_folders / "linear"), str(result_folders / "quadratic"),
                   "--targets", str(result_folders / "targets"), "-o", str(out), "--max-scenes", "1",
                   "--style", "paper", "--dpi", "60", "--formats", "png"])
    assert status == 0
    printed = capsys.readouterr().out
    per_method = {"panels_scene_0", "error_maps_scene_0", "spectra_scene_0", "bandwise_errors", "density_scatter",
                  "metric_ecdf", "metric_heatmap"}
    for method in ("linear_RGB_regression", "quadratic"):
        assert {p.stem for p in (out / method).glob("*.png")} == per_method
    assert {p.stem for p in (out / "comparison").glob("*.png")} == {
        "comparison_scene_0", "comparison_bandwise_errors", "comparison_density_scatter", "comparison_metric_ecdf",
        "comparison_metric_heatmap"}
    assert "reading linear RGB regression (reconstruction): 3 cubes" in printed
    assert png_metadata(out / "quadratic" / "error_maps_scene_0.png")["hsikit:style"] == "paper"
    heatmap = read_png(out / "comparison" / "comparison_metric_heatmap.png")
    assert heatmap.shape[1] < 8 * 60  # a paper figure fits a page width (about 7 in) at 60 dpi
    # the scores of every scene (not only the one drawn), as scene_scores computes them
    scores = json.loads((out / "quadratic" / "scores.json").read_text())
    assert sorted(scores["per_scene"]) == ["scene_0", "scene_1", "scene_2"]
    window = (slice(None), slice(50, 90), slice(50, 90))
    expected = scene_scores(reconstruction_set["quadratic"][window], reconstruction_set["target"][window])
    assert scores["per_scene"]["scene_1"] == pytest.approx(expected, rel=1e-5)
    # index.html: every PNG embedded, with captions; nothing fetched from elsewhere
    page = (out / "index.html").read_text()
    assert len(_embedded_pngs(page)) == 2 * 7 + 5
    assert "Per-pixel errors: MRAE" in page and "comparison/comparison_scene_0.png" in page
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page


def test_a_pair_of_cubes(result_folders: Path, tmp_path: Path, capsys, check_figure_files) -> None:
    out = tmp_path / "pair"
    prediction = result_folders / "quadratic" / "scene_2.tif"
    status = main(["viz", "recon", str(prediction), str(result_folders / "targets" / "scene_2.mat"), "-o", str(out),
                   "--pixels", "3,4", "10,20", "--colour", "both", "--dpi", "50"])
    assert status == 0
    check_figure_files(out / "panels_scene_2", panels=4, min_size=(100, 100))  # target + prediction, two colour rows
    check_figure_files(out / "spectra_scene_2", panels=3, min_size=(100, 100))  # locator + the two pixels given
    assert "index.html" in capsys.readouterr().out


def test_class_and_cluster_maps(shared_data: Path, indian_pines, tmp_path: Path, capsys, check_figure_files) -> None:
    # a glacier GeoTIFF class map (here: the ground truth thresholded differently) with named classes
    from hsikit.io import open_labels

    truth = np.asarray(open_labels(shared_data / "glacier" / "labels" / "1.tif"))
    prediction = truth.copy()
    prediction[:, :40] = 0
    save_labels(prediction, tmp_path / "tile_1.tif")
    status = main(["viz", "classes", str(tmp_path / "tile_1.tif"), "--targets", str(shared_data / "glacier" / "labels"
                   / "1.tif"), "--image", str(shared_data / "glacier" / "images" / "1.tif"), "--class-names",
                   "background", "clean glacier", "debris-covered glacier", "--first-label", "0", "-o",
                   str(tmp_path / "classes"), "--dpi", "50"])
    assert status == 0
    check_figure_files(tmp_path / "classes" / "class_maps_tile_1", panels=3, min_size=(100, 100))
    check_figure_files(tmp_path / "classes" / "confusion_matrix", panels=1, min_size=(100, 100))
    check_figure_files(tmp_path / "classes" / "per_class_metrics", panels=1, min_size=(100, 100))
    # Indian Pines clustered by k-means (16 clusters of the first 10 principal components), scored against
    # the ground truth after the one-to-one matching
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    from hsikit.metrics.clustering import clustering_scores

    cube, labels = indian_pines
    pixels = np.asarray(cube.data, dtype=np.float64).reshape(cube.bands, -1).T
    reduced = PCA(n_components=10, random_state=0).fit_transform(pixels)
    clusters = KMeans(n_clusters=16, n_init=1, random_state=0).fit_predict(reduced).reshape(labels.shape)
    np.save(tmp_path / "indian_pines_clusters.npy", clusters)
    np.save(tmp_path / "indian_pines_gt.npy", labels)
    status = main(["viz", "classes", str(tmp_path / "indian_pines_clusters.npy"), "--clusters", "--targets",
                   str(tmp_path / "indian_pines_gt.npy"), "-o", str(tmp_path / "clusters"), "--formats", "png",
                   "--dpi", "40"])
    assert status == 0
    assert {p.stem for p in (tmp_path / "clusters").glob("*.png")} == {
        "cluster_maps_indian_pines_clusters", "confusion_matrix", "per_class_metrics"}
    # the scores behind those figures: after matching, every labelled pixel is on the diagonal
    from hsikit.viz.results import open_result_folder
    from hsikit.viz.style import get_style
    from hsikit.viz.suite import FigureWriter, class_figures

    result = open_result_folder(tmp_path / "indian_pines_clusters.npy")
    assert result.kind == "clustering" and list(result.cluster_maps) == ["indian_pines"]  # named *_clusters
    writer = FigureWriter(tmp_path / "direct", get_style("screen"), dpi=30, formats=("png",))
    summary = class_figures(result, {"gt": tmp_path / "indian_pines_gt.npy"}, writer, max_scenes=0)
    matrix = np.asarray(summary["confusion_matrix"])
    assert summary["class_ids"] == list(range(1, 17)) and matrix.sum() <= np.sum(labels > 0)
    expected = clustering_scores(clusters, labels, ignore_index=0)["accuracy"]
    assert matrix.trace() / np.sum(labels > 0) == pytest.approx(expected)
    capsys.readouterr()


def test_latent_space_and_errors_of_the_command(indian_pines, tmp_path: Path, capsys) -> None:
    cube, labels = indian_pines
    tile = np.asarray(cube.data[:, :40, :40], dtype=np.float64)
    pixels = tile.reshape(cube.bands, -1).T
    mean = pixels.mean(axis=0)
    _, _, components = np.linalg.svd(pixels - mean, full_matrices=False)
    codes = (pixels - mean) @ components[:3].T
    np.save(tmp_path / "latent.npy", codes.T.reshape(3, 40, 40))
    np.save(tmp_path / "labels.npy", labels[:40, :40])
    save_cube(Cube(tile, wavelengths=cube.wavelengths), tmp_path / "original.tif")
    save_cube(Cube((codes @ components[:3] + mean).T.reshape(tile.shape)), tmp_path / "rebuilt.tif")
    status = main(["viz", "latent", str(tmp_path / "latent.npy"), "--labels", str(tmp_path / "labels.npy"),
                   "--reconstruction", str(tmp_path / "rebuilt.tif"), "--original", str(tmp_path / "original.tif"),
                   "-o", str(tmp_path / "out"), "--formats", "png", "--dpi", "40"])
    assert status == 0
    assert {p.stem for p in (tmp_path / "out").glob("*.png")} == {"latent_space_latent",
                                                                  "reconstruction_errors_latent"}
    capsys.readouterr()


def test_errors_end_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["viz", "all", str(tmp_path / "nothing"), "-o", str(tmp_path / "out")]) == 2
    assert "hsikit: error:" in capsys.readouterr().err
    assert main(["viz", "compare", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "needs at least two result folders" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["viz", "recon", "a.npy", "--pixels", "3;4"])
    assert "a pixel is ROW,COL" in capsys.readouterr().err
