"""hsikit.spectral: spectral maths shared by the whole toolkit.

* :mod:`~hsikit.spectral.metrics`: spectral angle (SAM), spectral information
  divergence (SID), cosine spectral angle (CSA) for NumPy arrays and torch tensors.
* :mod:`~hsikit.spectral.resample`: band resampling by Gaussian spectral response or
  linear interpolation.
* :mod:`~hsikit.spectral.color`: cube -> CIE XYZ -> sRGB, cube -> camera RGB.
* :mod:`~hsikit.spectral.cameras`: RGB camera sensitivity tables.
* :mod:`~hsikit.spectral.library`: spectral libraries (USGS 1995).
* :mod:`~hsikit.spectral.normalize`: band-wise normalisation fitted on training pixels.

Nothing here imports torch until a tensor is passed in.
"""

from hsikit.spectral.cameras import (
    CameraResponse,
    camera_names,
    camspec_camera_names,
    load_camera,
    load_camera_csv,
    load_camspec_camera,
    load_canon_5d_mark_ii,
    load_nikon_d700,
    load_ntire2022_camera,
)
from hsikit.spectral.color import (
    ColorMatchingFunctions,
    Illuminant,
    builtin_cmf,
    builtin_d65,
    cube_to_camera_rgb,
    cube_to_srgb,
    cube_to_xyz,
    load_cmf,
    load_illuminant,
    spectral_integration_weights,
    srgb_decode,
    srgb_encode,
    xyz_to_srgb,
)
from hsikit.spectral.library import SpectralLibrary, load_usgs_library
from hsikit.spectral.metrics import (
    cosine_spectral_angle,
    csa,
    sam,
    sid,
    spectral_angle,
    spectral_information_divergence,
)
from hsikit.spectral.normalize import create_normalizer
from hsikit.spectral.resample import (
    default_fwhm,
    linear_interpolation_matrix,
    resample,
    spectral_coverage,
    spectral_response_matrix,
)

__all__ = [
    "CameraResponse",
    "ColorMatchingFunctions",
    "Illuminant",
    "SpectralLibrary",
    "builtin_cmf",
    "builtin_d65",
    "camera_names",
    "camspec_camera_names",
    "cosine_spectral_angle",
    "create_normalizer",
    "csa",
    "cube_to_camera_rgb",
    "cube_to_srgb",
    "cube_to_xyz",
    "default_fwhm",
    "linear_interpolation_matrix",
    "load_camera",
    "load_camera_csv",
    "load_camspec_camera",
    "load_canon_5d_mark_ii",
    "load_cmf",
    "load_illuminant",
    "load_nikon_d700",
    "load_ntire2022_camera",
    "load_usgs_library",
    "resample",
    "sam",
    "sid",
    "spectral_angle",
    "spectral_coverage",
    "spectral_information_divergence",
    "spectral_integration_weights",
    "spectral_response_matrix",
    "srgb_decode",
    "srgb_encode",
    "xyz_to_srgb",
]
