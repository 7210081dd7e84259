"""One exception hierarchy for hsikit.

Every error raised on bad input derives from :class:`HsikitError` and carries a
message that names the offending file, key or shape *and* the fix. The classes
also derive from the closest built-in exception (``FileNotFoundError``,
``ValueError``, ``KeyError``-like ``LookupError``, ``OSError``) so that callers who
catch the standard types keep working.

The command line catches :class:`HsikitError` and prints ``error: <message>``
instead of a traceback.
"""

from __future__ import annotations

from os import PathLike


class HsikitError(Exception):
    """Base class of every error hsikit raises on purpose."""


# --------------------------------------------------------------------------- files
class DataFileNotFoundError(HsikitError, FileNotFoundError):
    """A path given by the user does not exist."""

    def __init__(self, path: str | PathLike, hint: str = "") -> None:
        self.path = str(path)
        message = f"{self.path}: no such file or directory"
        if hint:
            message += f". {hint}"
        super().__init__(message)

    def __str__(self) -> str:  # FileNotFoundError would otherwise print "[Errno None]"
        return self.args[0]


class UnsupportedFormatError(HsikitError, ValueError):
    """The file's extension or content is not a format hsikit reads or writes."""


class CorruptFileError(HsikitError, OSError):
    """A file exists but cannot be decoded: truncated, damaged, or not what its name says."""


class ChecksumError(CorruptFileError):
    """A downloaded or cached file does not match its expected sha256."""


class DownloadError(HsikitError, OSError):
    """A download failed (network error, HTTP error, interrupted transfer)."""


class DatasetNotAvailableError(HsikitError, LookupError):
    """A registered dataset is not on disk and cannot be fetched automatically."""


class UnknownNameError(HsikitError, LookupError):
    """A name (dataset, model, task, camera, key) that no registry holds."""


# --------------------------------------------------------------------------- content
class MatKeyError(HsikitError, LookupError):
    """A MATLAB file has no usable array under the requested key, or several candidates."""


class LayoutError(HsikitError, ValueError):
    """The axis order of an array is ambiguous or contradicts the wavelengths/band count."""


class InvalidCubeError(HsikitError, ValueError):
    """A Cube's array or metadata is inconsistent (wrong ndim, wavelengths of another length...)."""


class NonFiniteError(InvalidCubeError):
    """A cube holds NaN or Inf values and the policy is to refuse them."""


class WavelengthError(HsikitError, ValueError):
    """Band wavelengths are missing or invalid, or a requested range lies outside the spectral coverage."""


class ShapeMismatchError(HsikitError, ValueError):
    """Two arrays that must align (cube and labels, prediction and target) do not."""


class InvalidLabelsError(HsikitError, ValueError):
    """A label raster is not a 2-D map of integer class ids (fractional values, RGB colours...)."""


class MetricInputError(HsikitError, ValueError):
    """A metric or loss got values it cannot score (zeros in an MRAE target, non-finite numbers...)."""


class ReferenceMatrixError(HsikitError, ValueError):
    """A matrix of reference spectra is malformed (NaN/Inf, too few references) or cannot be inverted as asked."""


class SplitError(HsikitError, ValueError):
    """A train/validation/test split cannot be made as asked (too few samples, bad fraction)."""


class CheckpointError(HsikitError, ValueError):
    """A model file is for another architecture or band count, corrupted, or incomplete."""


class ConfigError(HsikitError, ValueError):
    """An experiment configuration names something unknown or sets an invalid value."""


class TrainingError(HsikitError, RuntimeError):
    """Training cannot go on (for example, losses or gradients stayed NaN/Inf for several steps)."""


def describe_path(path: str | PathLike | None) -> str:
    """Return a short quoted form of ``path`` for messages ("<memory>" when None)."""
    return "<memory>" if path is None else f"'{path}'"
