"""``hsikit predict --model`` dispatches on the exported model's task; each kind equals its in-memory prediction."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from hsikit.cube import Cube
from hsikit.engine.cli import main
from hsikit.engine.export import export_model, load_model
from hsikit.errors import ConfigError
from hsikit.io import open_cube, save_cube
from hsikit.models import create_model
from hsikit.models.registry import tiny_model_arguments
from hsikit.spectral.normalize import create_normalizer
from hsikit.spectral.pca import SpectralPCA
from hsikit.spectral.preprocess import SpectralPreprocessing

BANDS, HEIGHT, WIDTH = 12, 45, 58
TRANSFORM = from_origin(500000.0, 3100000.0, 30.0, 30.0)


@pytest.fixture(scope="module")
def cube() -> Cube:
    """A small positive 12-band cube with smooth structure (so classes vary), EPSG:32647."""
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([np.sin(rows / (3 + b) + cols / (5 + b)) for b in range(BANDS)])
    data = (1.5 + base + 0.3 * rng.standard_normal((BANDS, HEIGHT, WIDTH))).astype(np.float32)
    return Cube(data, crs="EPSG:32647", transform=TRANSFORM)


@pytest.fixture(scope="module")
def scene(cube: Cube, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "scene.tif"
    save_cube(cube, path)
    return path


def _predict(model_dir: Path, scene: Path, output: Path, *extra: str) -> np.ndarray:
    status = main(["predict", "--model", str(model_dir), "--input", str(scene), "--output", str(output),
                   "--no-progress", *extra])  # fmt: skip
    assert status == 0
    with rasterio.open(output) as written, rasterio.open(scene) as source:
        assert written.crs == source.crs and written.crs.to_epsg() == 32647
        assert written.transform == source.transform
        return written.read(1)


# ---------------------------------------------------------------------------- segmentation
def test_segmentation_model_takes_the_logits_and_writes_polygons(cube: Cube, scene: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("ssmgnet", in_bands=BANDS, num_classes=3, width=4, atten_kernel=3).eval()
    normalizer = create_normalizer("standardize").fit(cube)
    names = ["background", "clean_glacier", "debris_glacier"]
    export_model(model, tmp_path / "model", task="segmentation",
                 data={"bands": BANDS, "class_names": names, "normalization": normalizer.to_dict()})  # fmt: skip
    # tile 32, overlap 24 -> margin 6 >= the receptive radius (4 convolutions 3x3 + attention 3x3 = 5)
    classes = _predict(tmp_path / "model", scene, tmp_path / "classes.tif", "--tile", "32", "--overlap", "24",
                       "--vector", str(tmp_path / "classes.gpkg"))  # fmt: skip
    # in memory: the whole image, reflect-padded by the margin like the tiling canvas, in one forward pass
    image = normalizer.transform(np.asarray(cube.data, dtype=np.float32), band_axis=0)
    padded = np.pad(image, ((0, 0), (6, 6), (6, 6)), mode="reflect")
    with torch.no_grad():
        logits, attention = model(torch.from_numpy(np.ascontiguousarray(padded))[None])
    assert attention is not None  # SSMGNet returns (logits, attention); predict used the logits
    expected = logits[0, :, 6:-6, 6:-6].argmax(0).numpy()
    assert len(np.unique(expected)) >= 2
    np.testing.assert_array_equal(classes, expected)
    polygons = gpd.read_file(tmp_path / "classes.gpkg")
    assert polygons.crs.to_epsg() == 32647
    assert set(polygons.class_name) <= {"clean_glacier", "debris_glacier"} and len(polygons) > 0
    for class_id, area in polygons.groupby("class_id").area.sum().items():
        assert area == pytest.approx(900.0 * int((expected == class_id).sum()))


# ---------------------------------------------------------------------------- pixel classifiers
def _classify_in_memory(model_dir: Path, cube: Cube) -> np.ndarray:
    from hsikit.workflows.spectral_maps import classify_cube

    return classify_cube(load_model(model_dir), cube).labels


def test_pixel_classifier_with_the_classifier_commands_export(cube: Cube, scene: Path, tmp_path: Path) -> None:
    """spectral_mlp as ``hsikit classifier train`` exports it: band normaliser, label_offset 1."""
    torch.manual_seed(1)
    model = create_model("spectral_mlp", in_bands=BANDS, num_classes=4, **tiny_model_arguments("spectral_mlp"))
    normalizer = create_normalizer("standardize").fit(cube)
    preprocessing = SpectralPreprocessing("standardize").fit(cube)
    export_model(model, tmp_path / "model", task="classification",
                 data={"bands": BANDS, "normalization": normalizer.to_dict(), "class_names": list("abcd"),
                       "preprocessing": preprocessing.to_dict(), "input": "pixel", "label_offset": 1})  # fmt: skip
    classes = _predict(tmp_path / "model", scene, tmp_path / "classes.tif", "--tile", "24", "--overlap", "8")
    expected = _classify_in_memory(tmp_path / "model", cube)
    assert expected.min() >= 1 and len(np.unique(expected)) >= 2
    np.testing.assert_array_equal(classes, expected)


def test_deephyp_classifier_gets_its_minmax_and_label_table(cube: Cube, scene: Path, tmp_path: Path) -> None:
    """cnn1d_classifier with deephyp's per-spectrum min-max and a non-contiguous label table (1, 3, 4)."""
    torch.manual_seed(0)
    model = create_model("cnn1d_classifier", in_bands=BANDS, num_classes=3,
                         **tiny_model_arguments("cnn1d_classifier")).eval()  # fmt: skip
    with torch.no_grad():  # larger weights than the initialisation, so that the map has several classes
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter))
    preprocessing = SpectralPreprocessing("deephyp_minmax")
    export_model(model, tmp_path / "model", task="classification",
                 data={"bands": BANDS, "class_names": ["label 1", "label 3", "label 4"], "input": "pixel",
                       "preprocessing": preprocessing.to_dict(), "label_values": [1, 3, 4]})  # fmt: skip
    classes = _predict(tmp_path / "model", scene, tmp_path / "classes.tif", "--tile", "32", "--overlap", "8",
                       "--probabilities", str(tmp_path / "probabilities.tif"))  # fmt: skip
    expected = _classify_in_memory(tmp_path / "model", cube)
    assert set(np.unique(expected)) <= {1, 3, 4} and len(np.unique(expected)) >= 2
    np.testing.assert_array_equal(classes, expected)
    with rasterio.open(tmp_path / "probabilities.tif") as probabilities:
        assert probabilities.count == 4  # label values 1..4, label 2 never predicted
        assert probabilities.descriptions[1] == "probability_unused_2"
        values = probabilities.read()
    np.testing.assert_array_equal(values[1], 0.0)
    np.testing.assert_allclose(values.sum(axis=0), 1.0, atol=1e-5)
    # without the preprocessing the same weights give another map: the preprocessing was applied
    with torch.no_grad():
        raw = model(torch.from_numpy(np.asarray(cube.data).reshape(BANDS, -1).T.copy())).argmax(1)
    raw = raw.reshape(HEIGHT, WIDTH)
    assert not np.array_equal(np.array([1, 3, 4])[raw.numpy()], expected)


# ---------------------------------------------------------------------------- patch classifiers
@pytest.mark.parametrize("padding", ["reflect", "edge"])
def test_patch_classifier_runs_per_pixel_with_a_halo(cube: Cube, scene: Path, tmp_path: Path, padding: str) -> None:
    """HybridSN on 9 x 9 patches of the standardised, PCA-projected scene, as the patch data module serves them."""
    torch.manual_seed(3)
    components = 8
    model = create_model("hybridsn", in_bands=components, num_classes=3, **tiny_model_arguments("hybridsn")).eval()
    preprocessing = SpectralPreprocessing("standardize").fit(cube)
    normalised = preprocessing.transform(np.asarray(cube.data, dtype=np.float32), band_axis=0)
    pca = SpectralPCA(components).fit(normalised)
    export_model(model, tmp_path / "model", task="classification",
                 data={"bands": BANDS, "normalization": preprocessing.normalizer.to_dict(),
                       "preprocessing": preprocessing.to_dict(), "class_names": ["a", "b", "c"], "input": "patch",
                       "patch_size": 9, "model_bands": components, "padding": padding, "pca": pca.to_dict(),
                       "label_offset": 1})  # fmt: skip
    # tiles of 24 px with a 4 px halo: many tiles, each pixel's window crosses tile borders
    classes = _predict(tmp_path / "model", scene, tmp_path / "classes.tif", "--tile", "24", "--overlap", "8",
                       "--batch-size", "3")  # fmt: skip
    expected = _classify_in_memory(tmp_path / "model", cube)
    assert len(np.unique(expected)) >= 2
    np.testing.assert_array_equal(classes, expected)


def test_patch_classifier_needs_an_overlap_covering_its_halo(cube: Cube, scene: Path, tmp_path: Path) -> None:
    model = create_model("hybridsn", in_bands=8, num_classes=3, **tiny_model_arguments("hybridsn"))
    export_model(model, tmp_path / "model", task="classification",
                 data={"bands": 8, "input": "patch", "patch_size": 9, "model_bands": 8})  # fmt: skip
    eight = tmp_path / "eight.tif"
    save_cube(Cube(np.asarray(cube.data[:8]), crs="EPSG:32647", transform=TRANSFORM), eight)
    with pytest.raises(ConfigError, match=r"halo of 4 px on each side: use --overlap >= 8 \(got 6\)"):
        main(["predict", "--model", str(tmp_path / "model"), "--input", str(eight), "--output",
              str(tmp_path / "x.tif"), "--tile", "24", "--overlap", "6", "--no-progress"])  # fmt: skip


# ---------------------------------------------------------------------------- clustering
def test_clustering_model_equals_cluster_scene(cube: Cube, scene: Path, tmp_path: Path) -> None:
    from hsikit.inference.clustering import cluster_scene

    torch.manual_seed(4)
    model = create_model("global_clustering", in_bands=BANDS, **tiny_model_arguments("global_clustering")).eval()
    normalizer = create_normalizer("standardize").fit(cube)
    export_model(model, tmp_path / "model", task="clustering",
                 data={"bands": BANDS, "normalization": normalizer.to_dict()})  # fmt: skip
    classes = _predict(tmp_path / "model", scene, tmp_path / "clusters.tif", "--tile", "40", "--overlap", "16")
    loaded = load_model(tmp_path / "model")
    expected = cluster_scene(loaded, cube, normalization=normalizer.to_dict(), tile=HEIGHT + WIDTH, overlap=16)
    assert len(np.unique(expected.labels)) >= 2
    np.testing.assert_array_equal(classes, expected.labels)


# ---------------------------------------------------------------------------- refused
@pytest.mark.parametrize(
    ("task", "name", "arguments", "command"),
    [
        ("reconstruction", "hscnn_r", {"in_channels": 3, "out_channels": BANDS}, "hsikit reconstruct"),
        ("autoencoder", "deephyp_mlp_ae", {"in_bands": BANDS}, "hsikit autoencoder apply"),
    ],
)
def test_tasks_predict_cannot_run_name_the_right_command(
    scene: Path, tmp_path: Path, task: str, name: str, arguments: dict, command: str
) -> None:
    model = create_model(name, **arguments, **tiny_model_arguments(name))
    export_model(model, tmp_path / "model", task=task, data={"bands": BANDS})
    with pytest.raises(ConfigError, match=f"is a {task} model, which 'hsikit predict' does not run.*{command}"):
        main(["predict", "--model", str(tmp_path / "model"), "--input", str(scene), "--output",
              str(tmp_path / "x.tif"), "--no-progress"])  # fmt: skip
    assert not (tmp_path / "x.tif").exists()


def test_unknown_task_and_vector_without_classes_are_refused(scene: Path, tmp_path: Path) -> None:
    model = create_model("spectral_mlp", in_bands=BANDS, num_classes=3, **tiny_model_arguments("spectral_mlp"))
    export_model(model, tmp_path / "gan", task="gan", data={"bands": BANDS})
    with pytest.raises(ConfigError, match="task 'gan', which 'hsikit predict' does not know"):
        main(["predict", "--model", str(tmp_path / "gan"), "--input", str(scene), "--output",
              str(tmp_path / "x.tif"), "--no-progress"])  # fmt: skip
    export_model(model, tmp_path / "mlp", task="classification", data={"bands": BANDS})
    with pytest.raises(ConfigError, match="--vector traces a class raster; it needs --output-kind classes"):
        main(["predict", "--model", str(tmp_path / "mlp"), "--input", str(scene), "--output",
              str(tmp_path / "x.tif"), "--output-kind", "probabilities", "--vector", str(tmp_path / "x.gpkg"),
              "--no-progress"])  # fmt: skip
