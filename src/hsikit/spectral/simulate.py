"""Camera RGB simulated from a hyperspectral cube, the way the NTIRE 2022 RGB images were made.

:func:`simulate_rgb` follows the NTIRE 2022 spectral-recovery challenge (ARAD-1K) recipe
described in ``specs/mstpp_protocol.md`` §1.1, in this order:

1. **Camera response.** The camera curves (R, G, B) are linearly interpolated at the
   cube's band centres, zero outside the camera table (no extrapolation), and multiplied
   by the analog gains (NTIRE 2022: ``[2.2933984, 1, 1.62308182]``).
2. **Projection.** ``rgb = cube(H, W, C) @ QE(C, 3)``, negatives clipped to 0. Each band's
   weight is also multiplied by its width / 10 nm (width = spacing to the neighbouring
   bands), so on ARAD's uniform 10-nm grid the projection *is* NTIRE's ``cube @ QE``,
   and on a denser grid the same scene collects the same signal (hence the same noise).
3. **Shot noise.** ``rgb = Poisson(rgb * npe) / npe`` with ``npe`` photo-electrons per
   unit signal (NTIRE's published sample value 750; the challenge value is confidential).
4. **Auto-exposure.** ``rgb *= target / statistic(rgb) * 255`` where the statistic is the
   mean over all pixels and channels and the target 0.18 (NTIRE's
   ``TYPICAL_SCENE_REFLECTIVITY``); a percentile can be chosen instead. Then the image is
   clipped to [0, 255] and cast to uint8 (truncation, as numpy's ``astype`` does).
5. **JPEG.** Encoded at ``jpeg_quality`` (NTIRE sample value 65, 4:2:0 chroma subsampling,
   the OpenCV default) with Pillow, and decoded again.

``clean=True`` skips the noise and the JPEG steps. The NTIRE camera is the ``R``, ``G1``,
``B`` columns of ``ntire2022_RGB_Camera_QE.csv`` (:func:`load_ntire2022_qe`); any other
:class:`~hsikit.spectral.cameras.CameraResponse` or ``(wavelengths, curves)`` table works.

This module does not reuse :func:`hsikit.spectral.color.cube_to_camera_rgb`, which
*integrates* the product of curve and spectrum: NTIRE point-samples the curves at the band
centres, and protocol parity needs exactly that.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np

from hsikit.cube import Cube
from hsikit.data import paths
from hsikit.errors import ConfigError, InvalidCubeError, ShapeMismatchError, WavelengthError
from hsikit.spectral.cameras import NTIRE2022_RGB_FILE, CameraResponse, load_camera, read_csv_table
from hsikit.spectral.resample import apply_band_matrix

NTIRE2022_GAINS: tuple[float, float, float] = (2.2933984, 1.0, 1.62308182)
"""Analog gains (R, G, B) applied to the NTIRE 2022 camera QE."""
NTIRE2022_NPE = 750.0
"""Photo-electrons per unit signal of the NTIRE sample code (the challenge value is confidential)."""
NTIRE2022_JPEG_QUALITY = 65
"""JPEG quality of the NTIRE sample code."""
TYPICAL_SCENE_REFLECTIVITY = 0.18
"""Auto-exposure target of NTIRE: the mean of the image is mapped to 18 % of full scale."""
REFERENCE_BAND_WIDTH_NM = 10.0
"""Band width at which a band's weight equals its point-sampled QE (ARAD's 10-nm grid)."""
NTIRE2022_CAMERA_NAME = "NTIRE 2022 RGB camera (R, G1, B)"

NoiseModel = Literal["poisson", "none"]
OutputKind = Literal["uint8", "float"]
CameraLike = CameraResponse | str | np.ndarray | tuple[Sequence[float] | np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- cameras
def load_ntire2022_qe(path: str | os.PathLike | None = None) -> CameraResponse:
    """The NTIRE 2022 camera exactly as the challenge used it: columns ``R``, ``G1``, ``B``.

    ``360..750`` nm at 1 nm. :func:`hsikit.spectral.cameras.load_ntire2022_camera` averages
    the two greens ``G1`` and ``G2`` (they differ by up to 0.01); the challenge RGB was made
    with ``G1`` alone, so protocol parity needs this loader.

    Args:
        path: the CSV (``Wavelength[nm],R,G1,G2,B``); default: ``color/ntire2022_RGB_Camera_QE.csv``
            in the shared data folder.
    """
    file = paths.shared_data_file(NTIRE2022_RGB_FILE, path)
    header, values = read_csv_table(file)
    lowered = [name.strip().lower() for name in header]
    missing = [name for name in ("r", "g1", "b") if name not in lowered]
    if missing:
        raise ConfigError(
            f"'{file}': the NTIRE QE table needs columns R, G1 and B, found {header}; "
            "pass the original ntire2022_RGB_Camera_QE.csv (Wavelength[nm],R,G1,G2,B)"
        )
    columns = [lowered.index(name) for name in ("r", "g1", "b")]
    order = np.argsort(values[:, 0], kind="stable")
    curves = values[order][:, columns].T
    return CameraResponse(NTIRE2022_CAMERA_NAME, values[order, 0], curves, source=str(file))


def as_camera_response(camera: CameraLike) -> CameraResponse:
    """A :class:`CameraResponse` from any accepted description.

    Args:
        camera: a :class:`CameraResponse`; ``"ntire2022"`` (:func:`load_ntire2022_qe`) or any
            name :func:`hsikit.spectral.cameras.load_camera` knows; an ``(N, 4)`` array of
            ``wavelength, R, G, B`` rows; or a pair ``(wavelengths (N,), curves (3, N) or (N, 3))``.
    """
    if isinstance(camera, CameraResponse):
        return camera
    if isinstance(camera, str):
        if camera.strip().lower() == "ntire2022":
            return load_ntire2022_qe()
        return load_camera(camera)
    if isinstance(camera, tuple):
        if len(camera) != 2:
            raise ShapeMismatchError(
                f"a camera table tuple must be (wavelengths, curves), got {len(camera)} items"
            )
        wavelengths = np.asarray(camera[0], dtype=np.float64).reshape(-1)
        curves = np.asarray(camera[1], dtype=np.float64)
        if curves.ndim == 2 and curves.shape[0] != 3 and curves.shape == (wavelengths.size, 3):
            curves = curves.T
        return CameraResponse("custom camera", wavelengths, curves)
    table = np.asarray(camera, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 4:
        raise ShapeMismatchError(
            f"a camera table array must have shape (N, 4) (wavelength, R, G, B per row), got {table.shape}; "
            "or pass (wavelengths, curves) or a CameraResponse"
        )
    order = np.argsort(table[:, 0], kind="stable")
    return CameraResponse("custom camera", table[order, 0], table[order, 1:].T)


def _is_ntire_camera(camera: CameraLike) -> bool:
    if isinstance(camera, str):
        return camera.strip().lower() == "ntire2022"
    if isinstance(camera, CameraResponse):
        source = (camera.source or "").replace("\\", "/")
        return camera.name == NTIRE2022_CAMERA_NAME or source.endswith(NTIRE2022_RGB_FILE.split("/")[-1])
    return False


def band_widths(wavelengths: Sequence[float] | np.ndarray) -> np.ndarray:
    """Width of each band in nm, ``(C,)``: half the distance between its two neighbours
    (the distance to the only neighbour at either end); :data:`REFERENCE_BAND_WIDTH_NM` for one band.

    Bands may be listed in any order; a repeated centre raises :class:`WavelengthError`.
    """
    centres = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    if centres.size == 1:
        return np.array([REFERENCE_BAND_WIDTH_NM])
    order = np.argsort(centres, kind="stable")
    if np.any(np.diff(centres[order]) <= 0):
        raise WavelengthError(
            "band centres repeat a value; RGB simulation needs distinct band centres (average duplicate bands first)"
        )
    widths = np.empty_like(centres)
    widths[order] = np.gradient(centres[order])
    return widths


def projection_matrix(
    band_wavelengths: Sequence[float] | np.ndarray,
    camera: CameraLike = "ntire2022",
    gains: Sequence[float] | None = None,
) -> np.ndarray:
    """The ``(3, C)`` matrix with ``rgb = matrix @ spectrum``: gained QE sampled at the band centres.

    Row ``k`` is ``gain_k * QE_k(lambda_c) * width_c / 10 nm`` (step 1 and 2 of the module
    docstring). Bands outside the camera table get weight 0.

    Raises:
        WavelengthError: the bands do not overlap the camera's wavelength range, or a
            channel gets no weight at all from them.
    """
    response = as_camera_response(camera)
    centres = np.asarray(band_wavelengths, dtype=np.float64).reshape(-1)
    if centres.size == 0 or not np.all(np.isfinite(centres)) or np.any(centres <= 0):
        raise WavelengthError("band wavelengths must be positive finite numbers in nm")
    low, high = float(response.wavelengths[0]), float(response.wavelengths[-1])
    inside = (centres >= low) & (centres <= high)
    if not inside.any():
        raise WavelengthError(
            f"the cube's bands ({centres.min():.1f}..{centres.max():.1f} nm) do not overlap the range of camera "
            f"{response.name!r} ({low:.1f}..{high:.1f} nm); simulate RGB from a cube covering the visible range, "
            "or give a camera table that covers the cube's bands"
        )
    resolved_gains = _resolve_gains(camera, gains)
    matrix = response.sample(centres) * resolved_gains[:, None] * (band_widths(centres) / REFERENCE_BAND_WIDTH_NM)
    empty = [name for name, row in zip("RGB", matrix) if not np.any(row > 0)]
    if empty:
        raise WavelengthError(
            f"the cube's bands ({centres.min():.1f}..{centres.max():.1f} nm) give no signal in channel(s) "
            f"{', '.join(empty)} of camera {response.name!r}, whose curves are zero there; use a cube that covers "
            "the camera's sensitive range"
        )
    return matrix


def _resolve_gains(camera: CameraLike, gains: Sequence[float] | None) -> np.ndarray:
    if gains is None:
        return np.asarray(NTIRE2022_GAINS if _is_ntire_camera(camera) else (1.0, 1.0, 1.0), dtype=np.float64)
    values = np.asarray(gains, dtype=np.float64).reshape(-1)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ConfigError(f"gains must be 3 positive numbers (R, G, B), got {list(np.asarray(gains).ravel())}")
    return values


# --------------------------------------------------------------------------- JPEG
def encode_jpeg(image: np.ndarray, quality: int = NTIRE2022_JPEG_QUALITY) -> bytes:
    """JPEG bytes of a ``(3, H, W)`` uint8 RGB image (Pillow, baseline, 4:2:0 chroma subsampling)."""
    from PIL import Image

    array = _check_uint8_image(image)
    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"jpeg_quality must be an integer in 1..100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.moveaxis(array, 0, -1)), mode="RGB").save(
        buffer, format="JPEG", quality=int(quality), subsampling="4:2:0", optimize=False, progressive=False
    )
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """A JPEG (or any image Pillow reads) as a ``(3, H, W)`` uint8 RGB array."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as picture:
        rgb = np.asarray(picture.convert("RGB"))
    return np.ascontiguousarray(np.moveaxis(rgb, -1, 0))


def _check_uint8_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[0] != 3:
        raise ShapeMismatchError(
            f"expected a (3, H, W) uint8 RGB image, got shape {array.shape} dtype {array.dtype}; "
            "move the channel axis first (np.moveaxis(rgb, -1, 0))"
        )
    return array


# --------------------------------------------------------------------------- simulation
def simulate_rgb(
    cube: Cube | np.ndarray,
    camera: CameraLike = "ntire2022",
    *,
    wavelengths: Sequence[float] | np.ndarray | None = None,
    gains: Sequence[float] | None = None,
    noise: NoiseModel = "poisson",
    npe: float = NTIRE2022_NPE,
    exposure: Literal["auto"] | float = "auto",
    exposure_statistic: Literal["mean"] | float = "mean",
    exposure_target: float = TYPICAL_SCENE_REFLECTIVITY,
    jpeg_quality: int | None = NTIRE2022_JPEG_QUALITY,
    seed: int | np.random.Generator | None = None,
    clean: bool = False,
    output: OutputKind = "uint8",
) -> np.ndarray:
    """Simulate the camera RGB of a hyperspectral cube (NTIRE 2022 recipe, see the module docstring).

    Args:
        cube: a :class:`Cube` ``(C, H, W)`` with wavelengths, or a ``(C, H, W)`` array with
            ``wavelengths=``. Values are radiance- or reflectance-like (ARAD: about [0, 1]).
        camera: ``"ntire2022"`` (default, R/G1/B of the challenge QE table), a camera name,
            a :class:`CameraResponse`, an ``(N, 4)`` table or ``(wavelengths, curves)``.
        wavelengths: band centres in nm, ``(C,)``; overrides the cube's.
        gains: analog gains (R, G, B). None: NTIRE's for the NTIRE camera, ``(1, 1, 1)`` otherwise.
        noise: ``"poisson"`` (shot noise with ``npe`` photo-electrons per unit signal) or ``"none"``.
        npe: photo-electrons per unit of projected signal (NTIRE sample value 750).
        exposure: ``"auto"`` (scale so ``exposure_statistic`` of the image equals
            ``exposure_target`` of full scale) or a fixed factor: the linear signal times
            ``exposure`` is the fraction of full scale (255).
        exposure_statistic: ``"mean"`` (NTIRE: over all pixels and channels) or a percentile
            in (0, 100] of all pixel values (e.g. 99 for highlight-based exposure).
        exposure_target: fraction of full scale the statistic is mapped to (NTIRE: 0.18).
        jpeg_quality: JPEG quality 1..100 (NTIRE sample value 65), or None for no JPEG.
        seed: seed (or generator) of the shot noise; None draws fresh entropy.
        clean: no noise and no JPEG (projection, exposure and quantisation only).
        output: ``"uint8"`` (default: the 8-bit image) or ``"float"`` (float32 in [0, 1]: the
            exposed image clipped to full scale and divided by 255, before quantisation;
            only without JPEG).

    Returns:
        ``(3, H, W)`` RGB image, channels in R, G, B order: uint8, or float32 for ``output="float"``.
        ``simulate_rgb(..., jpeg_quality=q)`` equals
        ``decode_jpeg(encode_jpeg(simulate_rgb(..., jpeg_quality=None), q))`` for the same seed.

    Raises:
        WavelengthError: no wavelengths, or bands outside the camera range.
        InvalidCubeError: not a 3-D cube, or the projected image is black (nothing to expose).
        ConfigError: an invalid option.
    """
    data, centres, source = _cube_parts(cube, wavelengths)
    if noise not in ("poisson", "none"):
        raise ConfigError(f"noise must be 'poisson' or 'none', got {noise!r}")
    if output not in ("uint8", "float"):
        raise ConfigError(f"output must be 'uint8' or 'float', got {output!r}")
    if clean:
        noise, jpeg_quality = "none", None
    if output == "float" and jpeg_quality is not None:
        raise ConfigError(
            "output='float' is the image before quantisation and JPEG; pass jpeg_quality=None (or clean=True)"
        )
    if noise == "poisson" and not (np.isfinite(npe) and npe > 0):
        raise ConfigError(f"npe must be a positive number of photo-electrons per unit signal, got {npe}")

    matrix = projection_matrix(centres, camera, gains)
    rgb = apply_band_matrix(matrix, data, axis=0, dtype=np.float64)
    np.clip(rgb, 0.0, None, out=rgb)
    mask = cube.explicit_nodata_mask if isinstance(cube, Cube) else None
    if mask is not None:
        rgb[:, mask] = 0.0
    if noise == "poisson":
        generator = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        rgb = generator.poisson(rgb * float(npe)).astype(np.float64) / float(npe)

    rgb *= _exposure_scale(rgb, mask, exposure, exposure_statistic, exposure_target, source) * 255.0
    np.clip(rgb, 0.0, 255.0, out=rgb)
    if output == "float":
        return (rgb / 255.0).astype(np.float32)
    image = rgb.astype(np.uint8)
    if jpeg_quality is None:
        return image
    return decode_jpeg(encode_jpeg(image, jpeg_quality))


def _cube_parts(
    cube: Cube | np.ndarray, wavelengths: Sequence[float] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, str]:
    if isinstance(cube, Cube):
        data, source = cube.data, cube.source_label
        centres = cube.wavelengths if wavelengths is None else np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    else:
        data, source = np.asarray(cube), "<memory>"
        centres = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    if data.ndim != 3:
        raise InvalidCubeError(
            f"{source}: simulate_rgb needs a (bands, H, W) cube, got shape {data.shape}; "
            "use Cube.from_hwc for (H, W, bands) arrays"
        )
    if centres is None:
        raise WavelengthError(
            f"{source}: the cube has no band wavelengths, so the camera curves cannot be sampled; "
            "pass wavelengths= (nm, one per band) or open the cube with a wavelength table"
        )
    if centres.size != data.shape[0]:
        raise ShapeMismatchError(
            f"{source}: {centres.size} wavelengths for a cube with {data.shape[0]} bands (shape {data.shape}); "
            "give one band centre per band"
        )
    return data, centres, source


def _exposure_scale(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    exposure: Literal["auto"] | float,
    statistic: Literal["mean"] | float,
    target: float,
    source: str,
) -> float:
    if exposure != "auto":
        try:
            factor = float(exposure)
        except (TypeError, ValueError):
            factor = float("nan")
        if not (np.isfinite(factor) and factor > 0):
            raise ConfigError(f"exposure must be 'auto' or a positive factor, got {exposure!r}")
        return factor
    if not (np.isfinite(target) and target > 0):
        raise ConfigError(f"exposure_target must be a positive fraction of full scale, got {target}")
    values = rgb if mask is None else rgb[:, ~mask]
    if statistic == "mean":
        level = float(values.mean()) if values.size else 0.0
    else:
        percentile = float(statistic)
        if not 0 < percentile <= 100:
            raise ConfigError(f"exposure_statistic must be 'mean' or a percentile in (0, 100], got {statistic!r}")
        level = float(np.percentile(values, percentile)) if values.size else 0.0
    if not level > 0:
        raise InvalidCubeError(
            f"{source}: the projected RGB has {statistic} 0 (the cube is black or negative in the camera's range), "
            "so auto-exposure is undefined; pass a fixed exposure= factor or check the cube's values"
        )
    return target / level


__all__ = [
    "NTIRE2022_CAMERA_NAME",
    "NTIRE2022_GAINS",
    "NTIRE2022_JPEG_QUALITY",
    "NTIRE2022_NPE",
    "REFERENCE_BAND_WIDTH_NM",
    "TYPICAL_SCENE_REFLECTIVITY",
    "as_camera_response",
    "band_widths",
    "decode_jpeg",
    "encode_jpeg",
    "load_ntire2022_qe",
    "projection_matrix",
    "simulate_rgb",
]
