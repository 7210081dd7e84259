"""``hsikit sharp-inference``: RGB images -> cubes from an export or a Lightning checkpoint (EMA weights),
full frame or batched overlap-blended tiles, npy / mat / tif / per-band TIFF outputs, previews, input checks."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

from hsikit.cli import main
from hsikit.engine.export import export_model
from hsikit.models import create_model
from hsikit.models.reconstruction.sharp import SHARP_TEST_CONFIGURATION
from hsikit.models.registry import model_spec

SIZES = {"alpha": (20, 28), "beta": (33, 17)}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("sharp_tiny", **SHARP_TEST_CONFIGURATION).eval()


@pytest.fixture(scope="module")
def exported(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sharp_export") / "model"
    export_model(model, folder, task="reconstruction", data={"rgb_norm": "minmax", "channel_order": "RGB"})
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sharp_rgb")
    rng = np.random.default_rng(1)
    for name, (height, width) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def prepared(path: Path) -> torch.Tensor:
    """The model input by hand: per-image global min-max of the R, G, B channels."""
    rgb = np.moveaxis(np.asarray(Image.open(path), dtype=np.float32), -1, 0)
    return torch.from_numpy((rgb - rgb.min()) / (rgb.max() - rgb.min()))[None]


def expected_cube(model: torch.nn.Module, path: Path) -> np.ndarray:
    with torch.no_grad():
        return np.clip(model(prepared(path))[0].numpy(), 0.0, 1.0)


def test_a_folder_gives_one_full_frame_cube_per_image(
    model: torch.nn.Module, exported: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "cubes"
    assert main(["sharp-inference", "--checkpoint", str(exported), "--input", str(images), "--output", str(output),
                 "--device", "cpu"]) == 0  # fmt: skip
    assert sorted(p.name for p in output.iterdir()) == ["alpha.npy", "beta.npy"]
    for name, (height, width) in SIZES.items():
        cube = np.load(output / f"{name}.npy")
        assert cube.shape == (31, height, width) and cube.dtype == np.float32
        np.testing.assert_allclose(cube, expected_cube(model, images / f"{name}.png"), rtol=1e-5, atol=1e-6)
    out = capsys.readouterr().out
    assert "model sharp_tiny" in out and f"wrote {output / 'alpha.npy'} (31 bands, 20 x 28 px)" in out


def test_tiles_are_batched_and_a_tile_larger_than_the_image_is_the_full_frame(
    exported: Path, images: Path, tmp_path: Path
) -> None:
    image = images / "beta.png"
    runs = {
        "full": [],
        "big_tile": ["--patch-size", "64", "--overlap", "8"],
        "tiles_1": ["--patch-size", "16", "--overlap", "6", "--batch-size", "1"],
        "tiles_5": ["--patch-size", "16", "--overlap", "6", "--batch-size", "5"],
    }
    cubes = {}
    for name, options in runs.items():
        target = tmp_path / f"{name}.npy"
        assert main(["sharp-inference", "--checkpoint", str(exported), "--input", str(image), "--output",
                     str(target), *options]) == 0  # fmt: skip
        cubes[name] = np.load(target)
    np.testing.assert_allclose(cubes["big_tile"], cubes["full"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cubes["tiles_5"], cubes["tiles_1"], rtol=1e-5, atol=1e-6)
    assert cubes["tiles_1"].shape == (31, 33, 17) and np.isfinite(cubes["tiles_1"]).all()
    # the tiled cube is a blend of local predictions, not the full-frame one (SHARP attends globally)
    assert not np.allclose(cubes["tiles_1"], cubes["full"], atol=1e-4)
    assert np.abs(cubes["tiles_1"] - cubes["full"]).mean() < 0.1


@pytest.mark.parametrize("output_format", ["mat", "tif", "tiff-bands"])
def test_output_formats_and_the_preview(
    model: torch.nn.Module, exported: Path, images: Path, tmp_path: Path, output_format: str
) -> None:
    image = images / "alpha.png"
    target = tmp_path / ("alpha.mat" if output_format == "mat" else "alpha.tif")
    assert main(["sharp-inference", "--checkpoint", str(exported), "--input", str(image), "--output", str(target),
                 "--format", output_format, "--preview"]) == 0  # fmt: skip
    expected = expected_cube(model, image)
    if output_format == "mat":
        with h5py.File(target, "r") as handle:
            back = np.array(handle["cube"]).T  # stored H x W x C (MATLAB order)
            np.testing.assert_allclose(np.array(handle["bands"]).ravel(), np.arange(400, 701, 10))
        np.testing.assert_allclose(back, np.moveaxis(expected, 0, -1), rtol=1e-5, atol=1e-6)
    elif output_format == "tif":
        with rasterio.open(target) as source:
            assert source.count == 31
            np.testing.assert_allclose(source.read(), expected, rtol=1e-5, atol=1e-6)
    else:
        bands = sorted(tmp_path.glob("alpha_ch*.tiff"))
        assert [p.name for p in bands] == [f"alpha_ch{b:02d}.tiff" for b in range(31)]
        plane = np.asarray(Image.open(bands[7]))
        assert plane.dtype == np.uint16 and plane.shape == (20, 28)
        np.testing.assert_array_equal(plane, np.round(expected[7] * 65535).astype(np.uint16))
    preview = np.asarray(Image.open(tmp_path / "alpha_preview.png"))
    assert preview.shape == (20, 28, 3) and preview.dtype == np.uint8
    composite = expected[[25, 15, 5]].transpose(1, 2, 0).astype(np.float64)  # 650, 550, 450 nm of 400:10:700
    scaled = (composite - composite.min()) / (composite.max() - composite.min())
    np.testing.assert_allclose(preview, np.round(255 * scaled**0.7), atol=1)


def test_a_lightning_checkpoint_uses_its_ema_weights(
    model: torch.nn.Module, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, arguments = model_spec(model)
    raw = {key: value.clone() for key, value in model.state_dict().items()}
    generator = torch.Generator().manual_seed(5)
    ema = {
        key: value + 0.05 * torch.randn(value.shape, generator=generator) if value.is_floating_point() else value
        for key, value in raw.items()
    }
    checkpoint = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{key}": value for key, value in raw.items()},
            "hsikit": {"model": {"name": name, "arguments": arguments}, "task": "reconstruction",
                       "data": {"rgb_norm": "minmax"}},
            "hsikit_ema": {"decay": 0.999, "update_every": 1, "num_updates": 10, "state_dict": ema},
        },
        checkpoint,
    )  # fmt: skip
    image = images / "alpha.png"
    averaged = create_model(name, **arguments).eval()
    averaged.load_state_dict(ema)
    # the reference's positional form: CHECKPOINT INPUT
    assert main(["sharp-inference", str(checkpoint), str(image), "--output", str(tmp_path / "ema.npy")]) == 0
    assert "EMA weights" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "ema.npy"), expected_cube(averaged, image), rtol=1e-5, atol=1e-6)
    assert main(["sharp-inference", "--checkpoint", str(checkpoint), "--input", str(image), "--output",
                 str(tmp_path / "raw.npy"), "--no-ema"]) == 0  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "raw.npy"), expected_cube(model, image), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.load(tmp_path / "ema.npy"), np.load(tmp_path / "raw.npy"), atol=1e-3)


def test_non_rgb_inputs_and_bad_arguments_are_refused(
    exported: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((12, 12), 128, dtype=np.uint8)).save(gray)
    transparent = tmp_path / "transparent.png"
    rgba = np.full((12, 12, 4), 200, dtype=np.uint8)
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(transparent)
    for path, mode in ((gray, "L"), (transparent, "RGBA")):
        assert main(["sharp-inference", "--checkpoint", str(exported), "--input", str(path), "--output",
                     str(tmp_path / "x.npy")]) == 2  # fmt: skip
        assert f"is a {mode} image" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()
    # a palette image and an opaque RGBA image hold RGB colours: accepted
    palette = tmp_path / "palette.png"
    Image.open(images / "alpha.png").convert("P").save(palette)
    opaque = tmp_path / "opaque.png"
    Image.open(images / "alpha.png").convert("RGBA").save(opaque)
    for path in (palette, opaque):
        assert main(["sharp-inference", "--checkpoint", str(exported), "--input", str(path)]) == 0
        assert np.load(path.with_suffix(".npy")).shape == (31, 20, 28)  # default output: <stem>.npy
    capsys.readouterr()
    checks = [
        (["--checkpoint", str(tmp_path / "missing.ckpt"), "--input", str(images)], "missing.ckpt"),
        (["--checkpoint", str(exported), "--input", str(images), "--output", str(tmp_path / "a.npy")],
         "must be a folder"),
        (["--checkpoint", str(exported), "--input", str(images / "alpha.png"), "--output", str(tmp_path / "a.xyz")],
         "cannot tell the output format"),
        (["--checkpoint", str(exported), "--input", str(images), "--patch-size", "16", "--overlap", "16"],
         "--overlap must be"),
        (["--input", str(images)], "needs --checkpoint"),
    ]  # fmt: skip
    for arguments, message in checks:
        assert main(["sharp-inference", *arguments]) == 2
        assert message in capsys.readouterr().err
