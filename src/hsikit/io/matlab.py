"""MATLAB ``.mat`` files: v5 (and v4) through :mod:`scipy.io`, v7.3 (HDF5) through :mod:`h5py`.

Axis order, on purpose
----------------------
MATLAB stores arrays column-major. A v7.3 file is HDF5, and HDF5 (like h5py and
numpy) is row-major, so an ``H x W x C`` MATLAB array appears in h5py as
``(C, W, H)``. This module reverses **all** axes of every v7.3 array it loads,
cubes and label maps alike, so a cube and the ground-truth map from the same
file stay aligned and both read as MATLAB shows them. scipy already does this for
v5 files. When writing v7.3 the axes are reversed back, as MATLAB would store them.

Which variable is the cube
--------------------------
With ``key=None`` (:func:`select_cube_key`): a variable named ``cube`` (the
ARAD-1K/CAVE/MST++ convention, stored ``H x W x C``) wins; otherwise the single
3-D numeric variable; otherwise the unmixing-dataset layout of Samson, Jasper Ridge
and Urban: a 2-D ``(bands, pixels)`` matrix (key ``V``/``Y``...) plus scalars
``nRow``/``nCol``, reshaped column-major (MATLAB's order) to ``(bands, nRow, nCol)``.
No candidate, or several, raises :class:`~hsikit.errors.MatKeyError` listing the
variables and asking for ``key=``.

Wavelengths are read from a numeric vector variable ``bands`` (ARAD/CAVE),
``wavelengths`` or ``wavelength``; ``fwhm`` and ``norm_factor`` are read too.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hsikit.cube import Cube, as_wavelengths_nm
from hsikit.errors import CorruptFileError, LayoutError, MatKeyError, UnsupportedFormatError
from hsikit.io.atomic import atomic_path
from hsikit.io.common import ArrayCubeReader, as_label_map, is_label_like, require_file
from hsikit.io.layout import ResolvedLayout, from_chw, resolve_layout, to_chw

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 looks for its superblock at 0, 512, 1024, 2048... (the user block sizes).
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)
_NUMERIC_CLASSES = {
    "double",
    "single",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "logical",
}
_MATLAB_CLASS_OF_DTYPE = {
    "float64": "double",
    "float32": "single",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "bool": "logical",
}
_WAVELENGTH_KEYS = ("bands", "wavelengths", "wavelength")
_LABEL_NAMES = ("gt", "groundtruth", "ground_truth", "map", "labels", "label", "mask", "classes")
MatFormat = Literal["v5", "v7.3"]


@dataclass(frozen=True)
class MatVariable:
    """One variable of a ``.mat`` file: its name, shape as MATLAB shows it, and MATLAB class."""

    name: str
    shape: tuple[int, ...]
    matlab_class: str

    @property
    def is_numeric(self) -> bool:
        return self.matlab_class in _NUMERIC_CLASSES and 0 not in self.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions as MATLAB reports them (never fewer than 2)."""
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def describe(self) -> str:
        return f"{self.name} {'x'.join(str(v) for v in self.shape)} {self.matlab_class}"


def mat_version(path: str | os.PathLike) -> str:
    """``"7.3"`` (HDF5), ``"5"`` or ``"4"``, from the file's first bytes.

    Raises:
        CorruptFileError: empty, truncated header, or not a MATLAB file at all.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(max(_HDF5_OFFSETS) + 8)
    for offset in _HDF5_OFFSETS:
        if head[offset : offset + 8] == HDF5_SIGNATURE:
            return "7.3"
    if head.startswith(b"MATLAB 7.3"):
        raise CorruptFileError(
            f"'{path}': the header says MATLAB 7.3 but there is no HDF5 data after it "
            "(truncated or damaged file); download or export it again"
        )
    if len(head) >= 128 and head[126:128] in (b"IM", b"MI"):
        return "5"
    if len(head) < 20:
        raise CorruptFileError(f"'{path}': only {len(head)} bytes, too short for a MATLAB file (truncated?)")
    from scipy.io.matlab import matfile_version

    try:
        major, _ = matfile_version(str(path))
    except Exception as error:  # scipy raises ValueError/MatReadError for non-MATLAB bytes
        raise CorruptFileError(f"'{path}': not a MATLAB .mat file ({error})") from error
    return {0: "4", 1: "5", 2: "7.3"}.get(major, "5")


class MatFile:
    """Read access to a ``.mat`` file of any version, loading variables on demand.

    ``variables`` lists every variable (name → :class:`MatVariable`) without
    loading data; :meth:`load` returns one array in MATLAB's axis order (v7.3
    arrays are transposed, see the module docstring).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = require_file(path)
        self.version = mat_version(self.path)
        self._cache: dict[str, np.ndarray] = {}
        self.variables = self._list_variables()

    # ------------------------------------------------------------------ listing
    def _list_variables(self) -> dict[str, MatVariable]:
        if self.version == "7.3":
            return self._list_hdf5()
        from scipy.io import whosmat

        try:
            entries = whosmat(str(self.path))
        except Exception as error:
            raise CorruptFileError(f"'{self.path}': cannot read the MATLAB v{self.version} file ({error})") from error
        return {name: MatVariable(name, tuple(int(v) for v in shape), cls) for name, shape, cls in entries}

    def _list_hdf5(self) -> dict[str, MatVariable]:
        variables: dict[str, MatVariable] = {}
        with self._open_hdf5() as handle:
            import h5py

            for name, item in handle.items():
                if name.startswith("#"):
                    continue  # '#refs#', '#subsystem#': MATLAB internals
                if isinstance(item, h5py.Dataset):
                    cls = _attribute_text(item.attrs.get("MATLAB_class", b"")) or _class_of_dtype(item.dtype)
                    shape = tuple(int(v) for v in item.shape[::-1])
                    if "MATLAB_empty" in item.attrs and int(np.asarray(item.attrs["MATLAB_empty"]).ravel()[0]):
                        shape = (0,) * max(2, len(shape))
                    if item.dtype.kind not in "biuf":
                        cls = cls if cls not in _NUMERIC_CLASSES else "complex"
                    variables[name] = MatVariable(name, shape, cls)
                else:
                    variables[name] = MatVariable(name, (1, 1), "struct")
        return variables

    @contextlib.contextmanager
    def _open_hdf5(self):  # -> Iterator[h5py.File]
        import h5py

        try:
            handle = h5py.File(self.path, "r")
        except OSError as error:
            raise CorruptFileError(
                f"'{self.path}': cannot open the MATLAB v7.3 (HDF5) file ({error}); it is truncated or damaged, "
                "download or export it again"
            ) from error
        try:
            yield handle
        finally:
            handle.close()

    # ------------------------------------------------------------------ loading
    def load(self, name: str) -> np.ndarray:
        """Variable ``name`` as an array in MATLAB's axis order."""
        return self.load_many([name])[name]

    def load_many(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Several variables at once (one pass over a v5 file)."""
        wanted = [n for n in dict.fromkeys(names) if n not in self._cache]
        for name in wanted:
            if name not in self.variables:
                raise MatKeyError(
                    f"'{self.path}': no variable {name!r}; the file holds {self.describe()}. Pass one of these as key="
                )
        if wanted:
            if self.version == "7.3":
                self._cache.update(self._load_hdf5(wanted))
            else:
                self._cache.update(self._load_scipy(wanted))
        return {name: self._cache[name] for name in names}

    def _load_scipy(self, names: list[str]) -> dict[str, np.ndarray]:
        from scipy.io import loadmat

        try:
            content = loadmat(str(self.path), variable_names=names, squeeze_me=False)
        except Exception as error:
            raise CorruptFileError(
                f"'{self.path}': cannot read variables {names} ({type(error).__name__}: {error}); "
                "the file is truncated or damaged, download or export it again"
            ) from error
        missing = [n for n in names if n not in content]
        if missing:
            raise CorruptFileError(f"'{self.path}': variables {missing} are listed but cannot be read (truncated?)")
        return {name: content[name] for name in names}

    def _load_hdf5(self, names: list[str]) -> dict[str, np.ndarray]:
        import h5py

        arrays: dict[str, np.ndarray] = {}
        with self._open_hdf5() as handle:
            for name in names:
                item = handle[name]
                if not isinstance(item, h5py.Dataset):
                    raise MatKeyError(f"'{self.path}': variable {name!r} is a MATLAB struct/object, not an array")
                try:
                    data = np.asarray(item[()])
                except (OSError, RuntimeError) as error:
                    raise CorruptFileError(
                        f"'{self.path}': cannot read variable {name!r} ({error}); the file is truncated or damaged"
                    ) from error
                if self.variables[name].matlab_class == "logical":
                    data = data.astype(bool)
                # Reverse every axis: HDF5 holds MATLAB's column-major array as its transpose.
                arrays[name] = np.ascontiguousarray(data.T)
        return arrays

    # ------------------------------------------------------------------ helpers
    def describe(self, names: Iterable[str] | None = None) -> str:
        """``"name HxWxC class, ..."`` for error messages."""
        chosen = self.variables.values() if names is None else [self.variables[n] for n in names]
        text = ", ".join(v.describe() for v in chosen)
        return text or "no variables"

    def scalar(self, name: str) -> float | None:
        """A numeric 1x1 variable as a float, or None when absent / not a scalar."""
        variable = self.variables.get(name)
        if variable is None or not variable.is_numeric or variable.size != 1:
            return None
        return float(np.asarray(self.load(name)).ravel()[0])

    def vector(self, name: str) -> np.ndarray | None:
        """A numeric vector variable (1xN or Nx1) flattened to ``(N,)``, or None."""
        variable = self.variables.get(name)
        if variable is None or not variable.is_numeric or variable.size < 2:
            return None
        if sum(length > 1 for length in variable.shape) != 1:
            return None
        return np.asarray(self.load(name), dtype=np.float64).ravel()


# ---------------------------------------------------------------------- cubes
@dataclass
class MatCube:
    """The result of :func:`read_mat_cube`: a ``(bands, H, W)`` array and what the file says about it."""

    data: np.ndarray
    key: str
    version: str
    layout: str
    wavelengths: np.ndarray | None
    fwhm: np.ndarray | None
    metadata: dict[str, Any]


def select_cube_key(mat: MatFile, key: str | None = None, spatial_shape: tuple[int, int] | None = None) -> str:
    """The variable holding the cube (rule in the module docstring).

    Raises:
        MatKeyError: ``key`` absent or not numeric; no candidate; several candidates.
    """
    if key is not None:
        variable = mat.variables.get(key)
        if variable is None:
            raise MatKeyError(f"'{mat.path}': no variable {key!r}; the file holds {mat.describe()}. Pass one as key=")
        if not variable.is_numeric:
            raise MatKeyError(f"'{mat.path}': variable {variable.describe()} is not a numeric array; pick another key=")
        return key
    cubes = [v.name for v in mat.variables.values() if v.is_numeric and v.ndim == 3 and min(v.shape) > 1]
    if "cube" in cubes:
        return "cube"
    if len(cubes) == 1:
        return cubes[0]
    if len(cubes) > 1:
        raise MatKeyError(
            f"'{mat.path}': several 3-D arrays could be the cube: {mat.describe(cubes)}; pass key= naming one"
        )
    matrices = _unmixing_candidates(mat, spatial_shape)
    if len(matrices) == 1:
        return matrices[0]
    if len(matrices) > 1:
        raise MatKeyError(
            f"'{mat.path}': several (bands, pixels) matrices fit nRow x nCol: {mat.describe(matrices)}; "
            "pass key= naming the one holding the image"
        )
    raise MatKeyError(
        f"'{mat.path}': no 3-D numeric array (and no (bands, pixels) matrix with nRow/nCol) to read as a cube; "
        f"the file holds {mat.describe()}. Pass key= naming the cube variable "
        "(a 2-D (bands, pixels) matrix also needs spatial_shape=(rows, cols))"
    )


def _unmixing_shape(mat: MatFile, spatial_shape: tuple[int, int] | None) -> tuple[int, int] | None:
    if spatial_shape is not None:
        return (int(spatial_shape[0]), int(spatial_shape[1]))
    rows, cols = mat.scalar("nRow"), mat.scalar("nCol")
    if rows is None or cols is None:
        return None
    return (int(rows), int(cols))


def _unmixing_candidates(mat: MatFile, spatial_shape: tuple[int, int] | None) -> list[str]:
    shape = _unmixing_shape(mat, spatial_shape)
    if shape is None:
        return []
    pixels = shape[0] * shape[1]
    return [
        v.name
        for v in mat.variables.values()
        if v.is_numeric and v.ndim == 2 and pixels in v.shape and min(v.shape) > 1 and v.name not in ("nRow", "nCol")
    ]


def _file_wavelengths(mat: MatFile) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """Band centres (nm) from ``bands``/``wavelengths``, FWHM from ``fwhm``: only plausible values."""
    for name in _WAVELENGTH_KEYS:
        values = mat.vector(name)
        if values is None or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
            continue
        # Band centres: nm from 200 up, or micrometres (0.2..20, not all whole numbers).
        # Band numbers (1..N) are neither.
        in_micrometres = values.min() >= 0.2 and values.max() < 20 and not np.all(values == np.round(values))
        if values.min() >= 200 or in_micrometres:
            centers = as_wavelengths_nm(values, "auto")
            fwhm = mat.vector("fwhm")
            if fwhm is not None and fwhm.size == values.size:
                fwhm = as_wavelengths_nm(fwhm, "um" if values.max() < 20 else "nm")
            else:
                fwhm = None
            return centers, fwhm, name
    return None, None, None


def read_mat_cube(
    path: str | os.PathLike,
    key: str | None = None,
    layout: str = "auto",
    *,
    band_count: int | None = None,
    spatial_shape: tuple[int, int] | None = None,
) -> MatCube:
    """Read the cube of a ``.mat`` file as ``(bands, H, W)``.

    Args:
        path: a MATLAB v4/v5/v7.3 file.
        key: variable name; None picks it (see :func:`select_cube_key`).
        layout: ``"CHW"``, ``"HWC"`` or ``"auto"`` (rule in :mod:`hsikit.io.layout`; the
            file's 2-D maps, its ``bands`` vector and the ``cube`` = HWC convention count
            as evidence). Ignored for ``(bands, pixels)`` matrices.
        band_count: number of wavelengths given by the caller (checked against the layout).
        spatial_shape: ``(rows, cols)`` for a 2-D ``(bands, pixels)`` matrix when the file
            has no ``nRow``/``nCol``.

    Returns:
        :class:`MatCube` with the array (in memory, C-contiguous), wavelengths (nm) and
        metadata (``key``, ``mat_version``, ``layout``, ``norm_factor`` when present).
    """
    mat = MatFile(path)
    name = select_cube_key(mat, key, spatial_shape)
    variable = mat.variables[name]
    source = f"{mat.path}' key '{name}"
    wavelengths, fwhm, wavelength_key = _file_wavelengths(mat)
    metadata: dict[str, Any] = {"key": name, "mat_version": mat.version}
    norm_factor = mat.scalar("norm_factor")
    if norm_factor is not None:
        metadata["norm_factor"] = norm_factor

    if variable.ndim == 2:
        shape = _unmixing_shape(mat, spatial_shape)
        if shape is None:
            raise LayoutError(
                f"'{source}': a 2-D {variable.shape} array is a cube only as (bands, pixels) with the image size; "
                "the file has no nRow/nCol, so pass spatial_shape=(rows, cols)"
            )
        matrix = mat.load(name)
        pixels = shape[0] * shape[1]
        if matrix.shape[1] != pixels and matrix.shape[0] == pixels:
            matrix = matrix.T  # stored (pixels, bands)
        if matrix.shape[1] != pixels:
            raise LayoutError(
                f"'{source}': matrix of shape {matrix.shape} cannot be reshaped to {shape[0]} x {shape[1]} pixels; "
                "check spatial_shape= (or nRow/nCol in the file)"
            )
        # MATLAB numbers pixels column by column: pixel p is (row p % nRow, col p // nRow).
        data = np.ascontiguousarray(matrix.reshape((matrix.shape[0], shape[0], shape[1]), order="F"))
        metadata["layout"] = "bands x pixels (column-major)"
        resolved_layout = "CHW"
        if band_count is not None and band_count != data.shape[0]:
            raise LayoutError(
                f"'{source}': {band_count} wavelengths for a (bands, pixels) matrix with {data.shape[0]} bands; "
                "check the wavelength list"
            )
    else:
        if variable.ndim != 3:
            raise LayoutError(f"'{source}': variable {variable.describe()} is not a 3-D cube; pass another key=")
        if band_count is None and wavelengths is not None:
            file_count: int | None = wavelengths.size
            if file_count not in (variable.shape[0], variable.shape[2]):
                file_count, wavelengths, fwhm = None, None, None  # the vector belongs to something else
        else:
            file_count = None
        maps = [v.shape for v in mat.variables.values() if v.is_numeric and v.ndim == 2 and v.name != name]
        resolved_layout = resolve_layout(
            variable.shape,
            layout,
            band_count=band_count if band_count is not None else file_count,
            spatial_shapes=[s for s in maps if len(s) == 2],  # type: ignore[misc]
            convention="HWC" if name == "cube" else None,
            source=f"'{source}'",
        )
        data = np.ascontiguousarray(to_chw(mat.load(name), resolved_layout))
        metadata["layout"] = resolved_layout
    if wavelengths is not None and wavelengths.size != data.shape[0]:
        wavelengths, fwhm = None, None
    if wavelength_key is not None and wavelengths is not None:
        metadata["wavelength_key"] = wavelength_key
    return MatCube(data, name, mat.version, resolved_layout, wavelengths, fwhm, metadata)


class MatReader(ArrayCubeReader):
    """A :class:`~hsikit.io.base.CubeReader` over a ``.mat`` cube (the array is loaded in memory:
    MATLAB files have no cheap windowed access)."""

    def __init__(self, path: str | os.PathLike, key: str | None = None, layout: str = "auto", **kwargs: Any) -> None:
        result = read_mat_cube(path, key, layout, **kwargs)
        metadata = {"source": os.fspath(path), "format": f"mat-v{result.version}", **result.metadata}
        super().__init__(result.data, path, wavelengths=result.wavelengths, fwhm=result.fwhm, metadata=metadata)


# ---------------------------------------------------------------------- labels
def read_mat_labels(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, str]:
    """The ``(H, W)`` label map of a ``.mat`` file and its key.

    With ``key=None`` the label map is the single 2-D variable of whole numbers
    (both sides > 1); when there are several, one conventionally named (``gt``,
    ``groundtruth``, ``map``, ``labels``, ``*_gt``...) wins. v7.3 maps are transposed
    like cubes, so they stay aligned with the cube of the same file.

    Raises:
        MatKeyError: no candidate, or several.
        InvalidLabelsError: ``key`` names fractional or non-2-D data.
    """
    mat = MatFile(path)
    if key is not None:
        array = mat.load(key)
        return as_label_map(array, f"{mat.path}' key '{key}"), key
    two_d = [v.name for v in mat.variables.values() if v.is_numeric and v.ndim == 2 and min(v.shape) > 1]
    candidates = [name for name in two_d if is_label_like(mat.load(name))]
    if len(candidates) > 1:
        named = [n for n in candidates if n.lower() in _LABEL_NAMES or n.lower().endswith("_gt")]
        if len(named) == 1:
            candidates = named
    if len(candidates) == 1:
        name = candidates[0]
        return as_label_map(mat.load(name), f"{mat.path}' key '{name}"), name
    if candidates:
        raise MatKeyError(
            f"'{mat.path}': several 2-D integer arrays could be the labels: {mat.describe(candidates)}; "
            "pass key= naming one"
        )
    raise MatKeyError(
        f"'{mat.path}': no 2-D array of whole numbers to read as labels; the file holds {mat.describe()}. "
        "Pass key= naming the label variable"
    )


# ---------------------------------------------------------------------- writing
def write_mat(
    cube: Cube,
    path: str | os.PathLike,
    *,
    format: MatFormat = "v5",
    key: str = "cube",
    layout: ResolvedLayout = "HWC",
    compress: bool = True,
) -> Path:
    """Write a cube to a ``.mat`` file, atomically.

    The default follows the MST++/ARAD convention: variable ``cube`` of shape
    ``H x W x C`` (``layout="HWC"``), plus ``bands`` (1 x C band centres in nm) and
    ``fwhm`` when the cube has them, and ``norm_factor`` when its metadata has one.
    Georeference is not stored (``.mat`` has no place for it; use GeoTIFF or ENVI).

    Args:
        cube: the cube to write.
        path: target file.
        format: ``"v5"`` (scipy; arrays under 2 GiB) or ``"v7.3"`` (HDF5 with the MATLAB
            512-byte header and ``MATLAB_class`` attributes, axes reversed as MATLAB stores them).
        key: variable name of the cube.
        layout: ``"HWC"`` or ``"CHW"``: axis order of the stored array as MATLAB shows it.
        compress: compress the variables (zlib for v5, gzip for v7.3).

    Returns:
        ``path``.
    """
    path = Path(path)
    if layout not in ("CHW", "HWC"):
        raise LayoutError(f"write_mat: layout must be 'CHW' or 'HWC', got {layout!r}")
    variables: dict[str, np.ndarray] = {key: np.ascontiguousarray(from_chw(np.asarray(cube.data), layout))}
    if cube.wavelengths is not None:
        variables["bands"] = cube.wavelengths.reshape(1, -1)
    if cube.fwhm is not None:
        variables["fwhm"] = cube.fwhm.reshape(1, -1)
    if "norm_factor" in cube.metadata:
        variables["norm_factor"] = np.array([[float(cube.metadata["norm_factor"])]])
    format_name = str(format).lower().lstrip("v")
    with atomic_path(path) as tmp:
        if format_name == "5":
            _write_v5(tmp, variables, compress)
        elif format_name == "7.3":
            _write_v73(tmp, variables, compress)
        else:
            raise UnsupportedFormatError(f"'{path}': unknown .mat format {format!r}; use 'v5' or 'v7.3'")
    return path


def _write_v5(tmp: Path, variables: dict[str, np.ndarray], compress: bool) -> None:
    from scipy.io import savemat

    too_big = [name for name, array in variables.items() if array.nbytes >= 2**31]
    if too_big:
        raise UnsupportedFormatError(
            f"'{tmp}': variables {too_big} are 2 GiB or more, beyond MATLAB v5 files; pass format='v7.3'"
        )
    with open(tmp, "wb") as handle:
        savemat(handle, variables, do_compression=compress, oned_as="row")


def _write_v73(tmp: Path, variables: dict[str, np.ndarray], compress: bool) -> None:
    import h5py

    with h5py.File(tmp, "w", userblock_size=512) as handle:
        for name, array in variables.items():
            matlab_class = _MATLAB_CLASS_OF_DTYPE.get(array.dtype.name)
            if matlab_class is None:
                raise UnsupportedFormatError(f"'{tmp}': cannot store dtype {array.dtype} of {name!r} in a .mat file")
            stored = array.astype(np.uint8) if array.dtype == bool else array
            stored = np.ascontiguousarray(stored.T)  # MATLAB's column-major order = all axes reversed
            options: dict[str, Any] = {}
            if compress and stored.size > 1:
                options = {"compression": "gzip", "compression_opts": 3, "chunks": True}
            dataset = handle.create_dataset(name, data=stored, **options)
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    with open(tmp, "r+b") as handle:
        handle.write(_v73_header())


def _v73_header() -> bytes:
    """The 128-byte MATLAB header written into the HDF5 user block of a v7.3 file."""
    created = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime())
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {created} HDF5 schema 1.00 ."
    header = text.encode("ascii").ljust(116, b" ")[:116]
    # 8 bytes of subsystem-data offset (none), version 0x0200, endian indicator "IM" (little-endian).
    return header + b"\x00" * 8 + b"\x00\x02" + b"IM"


def _attribute_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    if isinstance(value, np.ndarray):
        return _attribute_text(value.ravel()[0]) if value.size else ""
    return str(value) if value is not None else ""


def _class_of_dtype(dtype: np.dtype) -> str:
    return _MATLAB_CLASS_OF_DTYPE.get(np.dtype(dtype).name, "unknown")


__all__ = [
    "MatFile",
    "MatVariable",
    "MatCube",
    "MatReader",
    "mat_version",
    "read_mat_cube",
    "read_mat_labels",
    "select_cube_key",
    "write_mat",
]
