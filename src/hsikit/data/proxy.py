"""An offline PROXY for ARAD-1K: real AVIRIS scenes as 31-band cubes with simulated NTIRE RGB.

**This is not ARAD-1K.** ARAD-1K (natural ground-level scenes, Specim IQ camera) needs a
registered download; no 31-band natural-scene set is available offline. The proxy lets
the reconstruction pipeline (dataset, models, losses, MST++ metrics) run end to end on
real spectra: every name starts with ``proxy``, the manifest says ``"proxy": true``, and
:class:`hsikit.data.arad.ARADDataset` reports ``is_proxy``. Scores on it are not
comparable with published ARAD-1K results.

Scenes (from the shared data folder, :func:`hsikit.data.paths.shared_data_dir`)
    Indian Pines (AVIRIS 1992, 145 x 145) and the ten ABU scenes (AVIRIS, 100 x 100:
    abu-airport-1..4, abu-beach-2, -3, abu-urban-1, -2, -3, -5). Excluded: ``hydice.mat``
    (HYDICE sensor, not AVIRIS), ``pavia.mat`` (ROSIS), ``MUUFL.mat`` (CASI), Samson (no
    documented sensor), the glacier tiles (10 multispectral bands). Validation is the three
    named scenes of :data:`PROXY_VALID_SCENES`; the other eight are training scenes.

Band centres
    * Indian Pines: the real AVIRIS calibration (``indian_pines_wavelengths.csv``, the
      200 kept bands; centres and FWHM as measured).
    * ABU: the files store no wavelengths. Assumption: the bands are AVIRIS-Classic bands
      in instrument order (spectrometer A, 32 bands 365.9-667.6 nm, then spectrometer B from
      654.8 nm; :data:`AVIRIS_CENTRES_NM`, nominal values of a recent AVIRIS-Classic
      calibration, which drifts by about 1 nm between seasons), contiguous from the first
      kept band to beyond 780 nm, with ``r`` leading bands removed (stored band ``i`` is
      AVIRIS band ``i + r``). ``r`` per scene (:data:`ABU_LEADING_BANDS_REMOVED`) is read off
      the data: the O2-A absorption line (760 nm) falls in AVIRIS band 43 (762.4 nm) and is
      the deepest one-band dip of every scene's mean spectrum, at stored index ``43 - r``
      (r = 0 for airport-4, beach-3, urban-1/2/3; 1 for airport-1/2/3, urban-5; 3 for
      beach-2). The water-vapour dips at 723 nm and 820 nm shift by the same ``r``
      (:func:`absorption_dip_index`; checked by the tests). ABU band widths are assumed to be
      9.7 nm (AVIRIS nominal in the visible).

Processing of each scene, in float64
    1. Digital numbers minus the dark offset (Indian Pines: 1000, added by Purdue; ABU: 0).
    2. :func:`hsikit.spectral.resample.resample` to 400:10:700 nm (31 bands), Gaussian
       responses of 10 nm FWHM, source FWHM subtracted.
    3. Scaled to a reflectance-like range: divided by the scene's 99.9th percentile over all
       bands and pixels (robust to the bright anomalies of the ABU scenes), then clipped to
       ``[0.001, 1]`` — strictly positive, so the MST++ MRAE (which divides by the ground
       truth) stays finite. The values keep the shape of at-sensor radiance (sun spectrum
       and atmosphere included); they are not surface reflectance.
    4. RGB: :func:`hsikit.spectral.simulate.simulate_rgb` with the NTIRE 2022 camera (R, G1,
       B columns), NTIRE gains, Poisson noise (npe 750), auto-exposure (mean to 0.18),
       JPEG quality 65 — the ARAD-1K recipe — with a seed derived from the scene name.

Layout (ARAD-like, read unchanged by :class:`~hsikit.data.arad.ARADDataset`)::

    root/Train_Spec/proxy_<scene>.mat   v7.3, "cube" H x W x 31 float32, "bands" 1 x 31, "norm_factor"
    root/Train_RGB/proxy_<scene>.jpg    8-bit RGB
    root/split_txt/{train_list,valid_list}.txt
    root/proxy_manifest.json            provenance, assumptions, sha256 of every built array

The build is deterministic: the same inputs and library versions give the same arrays;
the manifest records the sha256 of each cube and decoded RGB array (and of the JPEG
file), and :func:`verify_proxy_set` checks them. The default root is
``hsikit.data.paths.data_dir() / "proxy"``; a valid existing build is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsikit.cube import Cube
from hsikit.data import paths
from hsikit.data.arad import (
    PROXY_MANIFEST_NAME,
    RGB_FOLDER,
    SPECTRA_FOLDER,
    read_rgb,
    read_spectra,
    spectra_path,
    split_file,
)
from hsikit.errors import ChecksumError, CorruptFileError, DataFileNotFoundError, ShapeMismatchError
from hsikit.io.atomic import atomic_path

PROXY_NAME = "proxy-aviris-ntire-rgb31"
PROXY_FORMAT_VERSION = 1
PROXY_DESCRIPTION = (
    "PROXY data set — NOT ARAD-1K. Real AVIRIS airborne scenes (Indian Pines and the ABU airport/beach/urban "
    "scenes) resampled to 31 bands at 400:10:700 nm and given RGB simulated with the NTIRE 2022 camera recipe, "
    "so the ARAD-1K reconstruction pipeline can run offline. Scores on it are not comparable with ARAD-1K results."
)
PROXY_WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)
PROXY_FWHM_NM = 10.0
NORMALISATION_PERCENTILE = 99.9
REFLECTANCE_FLOOR = 1e-3
JPEG_QUALITY = 65
NOISE_NPE = 750.0

# AVIRIS-Classic nominal band centres (nm) in instrument order: spectrometer A (32 bands),
# then the first 14 bands of spectrometer B (which overlaps A's last bands).
AVIRIS_CENTRES_NM: tuple[float, ...] = (
    365.93, 375.59, 385.26, 394.94, 404.61, 414.29, 423.98, 433.67, 443.37, 453.07, 462.77, 472.48, 482.19,
    491.91, 501.63, 511.35, 521.08, 530.82, 540.56, 550.30, 560.05, 569.80, 579.56, 589.32, 599.08, 608.85,
    618.63, 628.40, 638.19, 647.97, 657.77, 667.56,
    654.79, 664.60, 674.40, 684.20, 693.99, 703.78, 713.56, 723.33, 733.10, 742.87, 752.63, 762.38, 772.13,
    781.88,
)  # fmt: skip
AVIRIS_O2A_BAND = 43
"""0-based AVIRIS band (762.38 nm) holding the O2-A absorption line at 760 nm."""
AVIRIS_H2O_BANDS = (39, 49)
"""0-based AVIRIS bands of the 723 nm and 820 nm water-vapour absorption (49 lies past the table, at ~820 nm)."""
ABU_ASSUMED_FWHM_NM = 9.7
ABU_LEADING_BANDS_REMOVED: dict[str, int] = {
    "abu-airport-1": 1,
    "abu-airport-2": 1,
    "abu-airport-3": 1,
    "abu-airport-4": 0,
    "abu-beach-2": 3,
    "abu-beach-3": 0,
    "abu-urban-1": 0,
    "abu-urban-2": 0,
    "abu-urban-3": 0,
    "abu-urban-5": 1,
}
INDIAN_PINES_DN_OFFSET = 1000.0
PROXY_VALID_SCENES = ("proxy_abu_airport_4", "proxy_abu_beach_3", "proxy_abu_urban_5")
EXCLUDED_SOURCES = {
    "anomaly/hydice.mat": "HYDICE sensor, not AVIRIS",
    "anomaly/pavia.mat": "ROSIS sensor, not AVIRIS",
    "anomaly/MUUFL.mat": "CASI sensor, not AVIRIS",
    "samson/samson_1.mat": "sensor not documented",
    "glacier/images": "10-band multispectral tiles",
}
INDIAN_PINES_CUBE = "indian_pines/Indian_pines_corrected.npy"
INDIAN_PINES_WAVELENGTHS = "indian_pines/indian_pines_wavelengths.csv"
NTIRE_QE_FILE = "color/ntire2022_RGB_Camera_QE.csv"


@dataclass(frozen=True)
class ProxyScene:
    """One source scene of the proxy set."""

    name: str  # proxy scene name (file stem), starts with "proxy_"
    source: str  # file inside the shared data folder
    split: str  # "train" or "valid"

    @property
    def abu_name(self) -> str | None:
        stem = Path(self.source).stem
        return stem if stem in ABU_LEADING_BANDS_REMOVED else None


PROXY_SCENES: tuple[ProxyScene, ...] = (
    ProxyScene("proxy_indian_pines", INDIAN_PINES_CUBE, "train"),
    *(
        ProxyScene(
            "proxy_" + stem.replace("-", "_"),
            f"anomaly/{stem}.mat",
            "valid" if "proxy_" + stem.replace("-", "_") in PROXY_VALID_SCENES else "train",
        )
        for stem in ABU_LEADING_BANDS_REMOVED
    ),
)


# ---------------------------------------------------------------------------- helpers
def default_proxy_root() -> Path:
    """``hsikit.data.paths.data_dir() / "proxy"``."""
    return paths.data_dir() / "proxy"


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-order bytes (little-endian): equal arrays, equal digests."""
    values = np.ascontiguousarray(array)
    values = values.astype(values.dtype.newbyteorder("<"), copy=False)
    digest = hashlib.sha256(f"{values.dtype.str}{values.shape}".encode("ascii"))
    digest.update(values.tobytes())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scene_seed(name: str) -> int:
    """The noise seed of a proxy scene: 63 bits of sha256(``PROXY_NAME/name``), stable across runs."""
    return int.from_bytes(hashlib.sha256(f"{PROXY_NAME}/{name}".encode()).digest()[:8], "little") >> 1


def absorption_dip_index(mean_spectrum: np.ndarray, start: int, stop: int) -> int:
    """Index in ``[start, stop)`` of the deepest one-band dip: the band most below the mean of its two neighbours
    (relative depth ``1 - x[i] / ((x[i-1] + x[i+1]) / 2)``)."""
    spectrum = np.asarray(mean_spectrum, dtype=np.float64)
    index = np.arange(max(start, 1), min(stop, spectrum.size - 1))
    depth = 1.0 - spectrum[index] / ((spectrum[index - 1] + spectrum[index + 1]) / 2.0)
    return int(index[np.argmax(depth)])


# ---------------------------------------------------------------------------- loading sources
def _load_indian_pines(shared: Path) -> tuple[Cube, dict[str, Any]]:
    from hsikit.io import open_cube, read_wavelength_table

    table = read_wavelength_table(shared / INDIAN_PINES_WAVELENGTHS, keep_column="in_corrected_200")
    cube = open_cube(shared / INDIAN_PINES_CUBE, layout="HWC", wavelengths=table)
    data = cube.data.astype(np.float64) - INDIAN_PINES_DN_OFFSET
    placement = {
        "method": "measured AVIRIS calibration (92AV3C.spc) of the 200 kept bands",
        "file": INDIAN_PINES_WAVELENGTHS,
        "source_fwhm_nm": "measured",
    }
    return cube.replace(data=data), {"dn_offset": INDIAN_PINES_DN_OFFSET, "band_placement": placement}


def _load_abu(shared: Path, stem: str) -> tuple[Cube, dict[str, Any]]:
    from hsikit.io import open_cube

    removed = ABU_LEADING_BANDS_REMOVED[stem]
    cube = open_cube(shared / "anomaly" / f"{stem}.mat", key="data", layout="HWC")
    kept = len(AVIRIS_CENTRES_NM) - removed
    if cube.bands < kept:
        raise ShapeMismatchError(
            f"'{shared / 'anomaly' / (stem + '.mat')}': {cube.bands} bands, fewer than the {kept} the AVIRIS band "
            "placement needs; is this the ABU scene of the same name?"
        )
    centres = np.asarray(AVIRIS_CENTRES_NM[removed:])
    visible = cube.select_bands(slice(0, kept))
    data = visible.data.astype(np.float64)
    placement = {
        "method": "assumed: AVIRIS-Classic nominal centres in instrument order, contiguous from the first kept band",
        "leading_bands_removed": removed,
        "evidence": f"O2-A absorption (760 nm, AVIRIS band {AVIRIS_O2A_BAND} = 762.38 nm) is the deepest dip of the "
        f"scene-mean spectrum at stored index {AVIRIS_O2A_BAND - removed}",
        "stored_bands_used": [0, kept - 1],
        "centres_nm": [float(v) for v in centres],
        "source_fwhm_nm": ABU_ASSUMED_FWHM_NM,
    }
    source = Cube(data, wavelengths=centres, fwhm=np.full(centres.size, ABU_ASSUMED_FWHM_NM),
                  metadata=dict(cube.metadata))
    return source, {"dn_offset": 0.0, "band_placement": placement}


def _build_scene(scene: ProxyScene, shared: Path, camera: Any) -> tuple[Cube, np.ndarray, bytes, dict[str, Any]]:
    """The proxy cube (31, H, W) float32, its simulated RGB (3, H, W) uint8 before JPEG, the JPEG bytes, metadata."""
    from hsikit.spectral.resample import resample
    from hsikit.spectral.simulate import NTIRE2022_GAINS, decode_jpeg, encode_jpeg, simulate_rgb

    stem = scene.abu_name
    source, info = _load_abu(shared, stem) if stem is not None else _load_indian_pines(shared)
    resampled = resample(source, PROXY_WAVELENGTHS_NM, PROXY_FWHM_NM, method="gaussian", dtype=np.float64)
    scale = float(np.percentile(resampled.data, NORMALISATION_PERCENTILE))
    if not scale > 0:
        raise CorruptFileError(f"'{shared / scene.source}': the resampled scene has no positive signal; check the file")
    values = np.clip(resampled.data / scale, REFLECTANCE_FLOOR, 1.0).astype(np.float32)
    metadata = {
        "name": scene.name,
        "proxy": True,
        "description": PROXY_DESCRIPTION,
        "norm_factor": scale,
    }
    cube = Cube(values, wavelengths=PROXY_WAVELENGTHS_NM, fwhm=np.full(31, PROXY_FWHM_NM), metadata=metadata)
    seed = scene_seed(scene.name)
    image = simulate_rgb(cube, camera, gains=NTIRE2022_GAINS, noise="poisson", npe=NOISE_NPE, exposure="auto",
                         jpeg_quality=None, seed=seed)
    jpeg = encode_jpeg(image, JPEG_QUALITY)
    info.update(
        {
            "source": scene.source,
            "source_sha256": _file_sha256(shared / scene.source),
            "sensor": "AVIRIS",
            "split": scene.split,
            "scale": scale,
            "seed": seed,
            "shape": list(values.shape),
            "cube_sha256": array_sha256(values),
            "rgb_sha256": array_sha256(decode_jpeg(jpeg)),
            "rgb_file_sha256": hashlib.sha256(jpeg).hexdigest(),
        }
    )
    return cube, image, jpeg, info


# ---------------------------------------------------------------------------- building
def _manifest_header(camera_file: Path) -> dict[str, Any]:
    import PIL

    from hsikit import __version__
    from hsikit.spectral.simulate import NTIRE2022_GAINS, TYPICAL_SCENE_REFLECTIVITY

    return {
        "name": PROXY_NAME,
        "proxy": True,
        "version": PROXY_FORMAT_VERSION,
        "description": PROXY_DESCRIPTION,
        "wavelengths_nm": [float(v) for v in PROXY_WAVELENGTHS_NM],
        "fwhm_nm": PROXY_FWHM_NM,
        "layout": {
            "spectra": f"{SPECTRA_FOLDER}/<scene>.mat (MATLAB v7.3, 'cube' H x W x 31 float32, 'bands', 'norm_factor')",
            "rgb": f"{RGB_FOLDER}/<scene>.jpg (8-bit RGB)",
            "splits": "split_txt/train_list.txt, split_txt/valid_list.txt",
        },
        "resampling": "hsikit.spectral.resample, Gaussian responses of 10 nm FWHM, source FWHM subtracted",
        "normalisation": {
            "method": "(DN - dn_offset) resampled, divided by the scene's percentile over all bands and pixels, "
            "clipped to [floor, 1]; radiance-shaped, not surface reflectance",
            "percentile": NORMALISATION_PERCENTILE,
            "floor": REFLECTANCE_FLOOR,
        },
        "camera": {
            "file": NTIRE_QE_FILE,
            "sha256": _file_sha256(camera_file),
            "columns": ["R", "G1", "B"],
            "gains": list(NTIRE2022_GAINS),
        },
        "simulation": {
            "recipe": "NTIRE 2022: QE at band centres x gains, cube @ QE, Poisson(x npe)/npe, auto-exposure "
            "(mean -> target x 255), clip, uint8, JPEG",
            "npe": NOISE_NPE,
            "exposure_target": TYPICAL_SCENE_REFLECTIVITY,
            "jpeg_quality": JPEG_QUALITY,
            "jpeg_encoder": f"Pillow {PIL.__version__}, 4:2:0",
        },
        "abu_band_assumption": {
            "aviris_centres_nm": list(AVIRIS_CENTRES_NM),
            "o2a_band": AVIRIS_O2A_BAND,
            "assumed_fwhm_nm": ABU_ASSUMED_FWHM_NM,
            "note": "ABU files store no wavelengths; placement from the O2-A absorption line, see each scene",
        },
        "excluded_sources": EXCLUDED_SOURCES,
        "hsikit_version": __version__,
        "numpy_version": np.__version__,
    }


def build_proxy_set(
    root: str | os.PathLike | None = None,
    *,
    shared_data: str | os.PathLike | None = None,
    force: bool = False,
    scenes: Sequence[str] | None = None,
) -> Path:
    """Build (or reuse) the proxy set in ``root`` and return ``root``.

    Args:
        root: output folder (default :func:`default_proxy_root`).
        shared_data: the shared data folder (default :func:`hsikit.data.paths.shared_data_dir`).
        force: rebuild even when a valid build of this version is there.
        scenes: build only these proxy scene names (default: all of :data:`PROXY_SCENES`).

    An existing build whose manifest has this version, the same scenes and verifying
    checksums is reused as it is; a different or damaged one is rebuilt. Every file is
    written atomically and the manifest last (removed first when rebuilding), so a tree
    with a manifest is complete.

    Raises:
        DatasetNotAvailableError / DataFileNotFoundError: shared data missing.
    """
    from hsikit.spectral.simulate import load_ntire2022_qe

    target = Path(root) if root is not None else default_proxy_root()
    chosen = _choose_scenes(scenes)
    manifest_path = target / PROXY_MANIFEST_NAME
    if not force and manifest_path.is_file():
        try:
            manifest = load_proxy_manifest(target)
            if manifest.get("version") == PROXY_FORMAT_VERSION and sorted(manifest["scenes"]) == sorted(
                scene.name for scene in chosen
            ):
                verify_proxy_set(target)
                return target
        except (ChecksumError, CorruptFileError, DataFileNotFoundError, KeyError):
            pass  # damaged or different: rebuilt below
    shared = Path(shared_data) if shared_data is not None else _shared_folder()
    camera_file = paths.shared_data_file(NTIRE_QE_FILE, shared / NTIRE_QE_FILE)
    camera = load_ntire2022_qe(camera_file)

    from hsikit.io.matlab import write_mat

    manifest_path.unlink(missing_ok=True)
    manifest = _manifest_header(camera_file)
    manifest["scenes"] = {}
    for scene in chosen:
        if not (shared / scene.source).is_file():
            raise DataFileNotFoundError(shared / scene.source, "the proxy set is built from the shared data folder; "
                                        "set HSIKIT_SHARED_DATA or pass shared_data=")
        cube, _, jpeg, info = _build_scene(scene, shared, camera)
        write_mat(cube, spectra_path(target, scene.name), format="v7.3", key="cube", layout="HWC")
        rgb_file = target / RGB_FOLDER / f"{scene.name}.jpg"
        with atomic_path(rgb_file) as tmp:
            tmp.write_bytes(jpeg)
        manifest["scenes"][scene.name] = info
    manifest["splits"] = {
        split: [scene.name for scene in chosen if scene.split == split] for split in ("train", "valid")
    }
    for split, names in manifest["splits"].items():
        with atomic_path(split_file(target, split)) as tmp:
            tmp.write_text("".join(f"{name}\n" for name in names), encoding="ascii")
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def _choose_scenes(scenes: Sequence[str] | None) -> list[ProxyScene]:
    if scenes is None:
        return list(PROXY_SCENES)
    known = {scene.name: scene for scene in PROXY_SCENES}
    unknown = [name for name in scenes if name not in known]
    if unknown:
        from hsikit.errors import UnknownNameError

        raise UnknownNameError(f"unknown proxy scene(s) {unknown}; choose from {sorted(known)}")
    return [known[name] for name in dict.fromkeys(scenes)]


def _shared_folder() -> Path:
    folder = paths.shared_data_dir()
    if folder is None:
        from hsikit.errors import DatasetNotAvailableError

        raise DatasetNotAvailableError(
            "the proxy set is built from the shared data folder (Indian Pines, ABU scenes, NTIRE camera QE), which "
            "is not available; set HSIKIT_SHARED_DATA or pass shared_data="
        )
    return folder


def load_proxy_manifest(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of a proxy build (``proxy_manifest.json``)."""
    path = (Path(root) if root is not None else default_proxy_root()) / PROXY_MANIFEST_NAME
    if not path.is_file():
        raise DataFileNotFoundError(path, "build the proxy set first with hsikit.data.proxy.build_proxy_set(root)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CorruptFileError(
            f"'{path}': cannot read the proxy manifest ({error}); rebuild with force=True"
        ) from error
    if not manifest.get("proxy") or "scenes" not in manifest:
        raise CorruptFileError(
            f"'{path}' is not a proxy manifest (no 'proxy': true / 'scenes'); rebuild with force=True"
        )
    return manifest


def verify_proxy_set(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Check every built cube, decoded RGB and JPEG file against the manifest's sha256; return the manifest.

    Raises:
        ChecksumError: naming each scene and file that differs (rebuild with ``force=True``).
        DataFileNotFoundError: the manifest or a file is missing.
    """
    target = Path(root) if root is not None else default_proxy_root()
    manifest = load_proxy_manifest(target)
    problems = []
    for name, info in manifest["scenes"].items():
        cube_file = spectra_path(target, name)
        rgb_file = target / RGB_FOLDER / f"{name}.jpg"
        for path in (cube_file, rgb_file):
            if not path.is_file():
                raise DataFileNotFoundError(
                    path, "the proxy set is incomplete; rebuild it with build_proxy_set(force=True)"
                )
        if array_sha256(read_spectra(cube_file)) != info["cube_sha256"]:
            problems.append(f"{cube_file} (cube array)")
        if _file_sha256(rgb_file) != info["rgb_file_sha256"]:
            problems.append(f"{rgb_file} (file bytes)")
        if array_sha256(read_rgb(rgb_file)) != info["rgb_sha256"]:
            problems.append(f"{rgb_file} (decoded RGB array)")
    if problems:
        raise ChecksumError(
            f"'{target}': {len(problems)} proxy file(s) differ from the sha256 in {PROXY_MANIFEST_NAME}: "
            f"{'; '.join(problems)}. Rebuild with hsikit.data.proxy.build_proxy_set(root, force=True)"
        )
    return manifest


__all__ = [
    "ABU_LEADING_BANDS_REMOVED",
    "AVIRIS_CENTRES_NM",
    "AVIRIS_H2O_BANDS",
    "AVIRIS_O2A_BAND",
    "PROXY_DESCRIPTION",
    "PROXY_NAME",
    "PROXY_SCENES",
    "PROXY_VALID_SCENES",
    "PROXY_WAVELENGTHS_NM",
    "ProxyScene",
    "absorption_dip_index",
    "array_sha256",
    "build_proxy_set",
    "default_proxy_root",
    "load_proxy_manifest",
    "scene_seed",
    "verify_proxy_set",
]
