"""The dataset registry: what each public hyperspectral dataset is, where it comes from, how to check it.

Every entry is a :class:`DatasetInfo`: a short name (``"indian-pines"``), a title, the sensor,
the official source pages, the files it is made of (:class:`RemoteFile`: path inside the cache,
download URLs, sha256 and size when known), the class names, the band centres when known, the
licence and the citation, and the name of the loader that turns the files into a
:class:`~hsikit.data.loaders.Scene`.

File layout. Paths inside the cache mirror the layout of the project's shared test data
(``indian_pines/Indian_pines_corrected.npy``, ``samson/samson_1.mat``, ``glacier/images/1.tif``,
``anomaly/abu-airport-1.mat`` ...), so pointing ``HSIKIT_DATA_DIR`` (or a ``root=`` argument) at
that folder makes every registered file found there load offline.

Checksum policy (see also :mod:`hsikit.data.download`):

* A file with a registered ``sha256`` is used only after its bytes match. A mismatch raises
  :class:`~hsikit.errors.ChecksumError`; a bad download is deleted, a bad file already in the
  cache is moved aside as ``<name>.corrupt`` (or, in a read-only folder, left alone and refused).
* A file without a registered ``sha256`` (the bytes were never seen by the maintainers) is
  **never reported as verified**. On its first download hsikit records the digest it received
  in a sidecar stamp, so later corruption or truncation of the cached copy is still detected,
  but :func:`hsikit.data.download.file_status` keeps calling it ``"unverified"``, and
  ``download_dataset(..., require_checksums=True)`` refuses it. Submit the digest upstream
  once the file is confirmed.

Manual datasets (ARAD-1K, CAVE) have no stable direct link or need registration;
``download_dataset`` raises :class:`~hsikit.errors.DatasetNotAvailableError` carrying the
step-by-step instructions in :attr:`DatasetInfo.instructions`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hsikit.errors import SplitError, UnknownNameError

Task = Literal["classification", "unmixing", "anomaly", "segmentation", "reconstruction"]

__all__ = [
    "ARAD1K_EXCLUDED_TRAIN",
    "CAVE_SCENES",
    "DatasetInfo",
    "RemoteFile",
    "arad1k_split_names",
    "dataset_info",
    "format_dataset_table",
    "list_datasets",
    "register_dataset",
    "resolve_name",
]


# ============================================================================ data classes
@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Attributes:
        path: path relative to the data root, with ``/`` separators
            (``"indian_pines/Indian_pines_corrected.npy"``).
        urls: direct download URLs, tried in order. Empty for files that must be fetched by
            hand (a landing page in :attr:`DatasetInfo.homepage` says where).
        sha256: lowercase hex digest of the exact bytes, or None when the bytes were never
            seen by the maintainers (see the checksum policy in the module docstring).
        size: size in bytes when known (used to catch truncated files before hashing).
        required: False for companion files (calibration tables, alternative label formats)
            that the loader does not need.
        description: what the file holds.
    """

    path: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    size: int | None = None
    required: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.path.startswith("/") or ".." in Path(self.path).parts:
            raise ValueError(f"RemoteFile path must be relative and stay inside the root: {self.path!r}")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"{self.path}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")

    @property
    def name(self) -> str:
        """The file name (last path component)."""
        return self.path.rsplit("/", 1)[-1]

    def local_path(self, root: str | Path) -> Path:
        """Where this file lives under ``root``."""
        return Path(root).joinpath(*self.path.split("/"))


@dataclass(frozen=True)
class DatasetInfo:
    """Everything hsikit knows about one dataset.

    Attributes:
        name: registry key (lowercase, hyphenated); lookups also accept other spellings.
        title: human-readable title.
        task: what the labels are for.
        sensor: instrument (and platform) that recorded the data.
        homepage: official landing page(s), first is the primary one.
        files: the files, with paths relative to the data root.
        loader: name of the loader in :mod:`hsikit.data.loaders`.
        loader_options: fixed arguments for the loader (MATLAB keys, layouts, file roles).
        shape: ``(bands, H, W)`` of the cube as loaded, when fixed.
        class_names: names of classes ``1..K`` (label 0 is "unlabelled"; for anomaly scenes
            0 is background and 1 is "anomaly").
        label_codes: raw values of classes ``1..K`` in the label file when they are not
            ``1..K`` already (e.g. Salinas-A uses 1, 10, ..., 14); the loader remaps them.
        wavelengths: band centres in nm, shape ``(bands,)``, when known.
        fwhm: band widths in nm, shape ``(bands,)``, when known.
        wavelength_note: where the centres come from, or why they are unknown.
        pixel_size_m: ground sampling distance in metres, when known.
        scenes: scene identifiers for multi-scene datasets (tiles, images); empty otherwise.
        license: licence or terms of use, as stated by the provider.
        citation: what to cite.
        instructions: step-by-step manual download instructions (manual datasets only).
        required_layout: glob patterns (relative to the root) that must match for a manual
            dataset to count as present.
        aliases: other accepted names.
        notes: anything else a user must know (orientation, scaling, quirks).
    """

    name: str
    title: str
    task: Task
    sensor: str
    homepage: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    loader: str
    loader_options: Mapping[str, Any] = field(default_factory=dict)
    shape: tuple[int, int, int] | None = None
    class_names: tuple[str, ...] = ()
    label_codes: tuple[int, ...] | None = None
    wavelengths: tuple[float, ...] | None = None
    fwhm: tuple[float, ...] | None = None
    wavelength_note: str = ""
    pixel_size_m: float | None = None
    scenes: tuple[str, ...] = ()
    license: str = ""
    citation: str = ""
    instructions: str = ""
    required_layout: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        if self.wavelengths is not None and self.shape is not None and len(self.wavelengths) != self.shape[0]:
            raise ValueError(f"{self.name}: {len(self.wavelengths)} wavelengths for {self.shape[0]} bands")
        if self.fwhm is not None and self.wavelengths is not None and len(self.fwhm) != len(self.wavelengths):
            raise ValueError(f"{self.name}: {len(self.fwhm)} FWHM values for {len(self.wavelengths)} wavelengths")
        if self.label_codes is not None and len(self.label_codes) != len(self.class_names):
            raise ValueError(f"{self.name}: {len(self.label_codes)} label codes for {len(self.class_names)} classes")

    # ------------------------------------------------------------------ derived facts
    @property
    def manual(self) -> bool:
        """True when at least one required file (or the whole dataset) must be fetched by hand."""
        if not self.files:
            return True
        return any(f.required and not f.urls for f in self.files)

    @property
    def num_classes(self) -> int:
        """Number of labelled classes (K), excluding the unlabelled value 0."""
        return len(self.class_names)

    @property
    def known_size(self) -> int | None:
        """Total size in bytes of the registered files, or None when a size is unknown."""
        if not self.files or any(f.size is None for f in self.files):
            return None
        return sum(int(f.size) for f in self.files if f.size is not None)

    def wavelength_array(self) -> np.ndarray | None:
        """Band centres as a float64 array ``(bands,)`` in nm, or None."""
        return None if self.wavelengths is None else np.asarray(self.wavelengths, dtype=np.float64)

    def fwhm_array(self) -> np.ndarray | None:
        """Band widths as a float64 array ``(bands,)`` in nm, or None."""
        return None if self.fwhm is None else np.asarray(self.fwhm, dtype=np.float64)

    def file(self, path_or_name: str) -> RemoteFile:
        """The registered file with this relative path or file name."""
        for remote in self.files:
            if remote.path == path_or_name or remote.name == path_or_name:
                return remote
        known = ", ".join(f.path for f in self.files) or "none"
        raise UnknownNameError(f"dataset {self.name!r} has no file {path_or_name!r}; its files: {known}")

    def describe(self) -> str:
        """A multi-line, human-readable summary (what ``hsikit datasets <name>`` prints)."""
        lines = [f"{self.name}: {self.title}", f"  task:        {self.task}", f"  sensor:      {self.sensor}"]
        if self.shape is not None:
            bands, height, width = self.shape
            lines.append(f"  cube:        {bands} bands x {height} x {width} px (bands, H, W)")
        if self.pixel_size_m is not None:
            lines.append(f"  pixel size:  {self.pixel_size_m:g} m")
        if self.wavelengths is not None:
            centres = self.wavelength_array()
            assert centres is not None
            lines.append(f"  wavelengths: {centres.size} centres, {centres.min():.1f}-{centres.max():.1f} nm")
        if self.wavelength_note:
            label = "               " if self.wavelengths is not None else "  bands:       "
            lines.append(label + self.wavelength_note)
        if self.scenes:
            shown = ", ".join(self.scenes[:8]) + (f", ... ({len(self.scenes)} in all)" if len(self.scenes) > 8 else "")
            lines.append(f"  scenes:      {shown}")
        if self.class_names:
            lines.append(f"  classes:     {self.num_classes} (label 0 = {'background' if self.task == 'anomaly' else 'unlabelled'})")
            codes = self.label_codes or tuple(range(1, self.num_classes + 1))
            for index, (class_name, code) in enumerate(zip(self.class_names, codes), start=1):
                raw = f" (file value {code})" if self.label_codes is not None else ""
                lines.append(f"    {index:>3}  {class_name}{raw}")
        lines.append(f"  source:      {self.homepage[0]}")
        for extra in self.homepage[1:]:
            lines.append(f"               {extra}")
        if self.files:
            lines.append("  files:")
            for remote in self.files:
                size = _format_bytes(remote.size) if remote.size is not None else "size ?"
                digest = f"sha256 {remote.sha256[:12]}..." if remote.sha256 else "sha256 unknown (never marked verified)"
                origin = remote.urls[0] if remote.urls else "no direct URL: see 'how to get it' / source"
                optional = "" if remote.required else " [optional]"
                lines.append(f"    {remote.path}{optional}  ({size}, {digest})")
                lines.append(f"      from {origin}")
        if self.required_layout:
            lines.append("  expected layout: " + ", ".join(self.required_layout))
        if self.license:
            lines.append(f"  licence:     {self.license}")
        if self.citation:
            lines.append(f"  cite:        {self.citation}")
        if self.notes:
            lines.append(f"  notes:       {self.notes}")
        if self.instructions:
            lines.append("  how to get it:")
            lines.extend("    " + line for line in self.instructions.strip().splitlines())
        return "\n".join(lines)


# ============================================================================ registry
_REGISTRY: dict[str, DatasetInfo] = {}


def _normalise(name: str) -> str:
    """Case- and separator-insensitive form of a name ("Indian Pines" == "indian_pines")."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def register_dataset(info: DatasetInfo, *, overwrite: bool = False) -> DatasetInfo:
    """Add ``info`` to the registry; ``overwrite=True`` replaces an entry of the same name.

    Names and aliases are compared case- and separator-insensitively, so ``"Pavia U"`` and
    ``"pavia_u"`` cannot name two different datasets.
    """
    owners = {_normalise(n): entry.name for entry in _REGISTRY.values() for n in (entry.name, *entry.aliases)}
    for spelling in (info.name, *info.aliases):
        owner = owners.get(_normalise(spelling))
        if owner is not None and not (overwrite and owner == info.name):
            raise ValueError(
                f"dataset name {spelling!r} is already taken by {owner!r}; choose another name "
                "(or pass overwrite=True to replace an entry of the same name)"
            )
    _REGISTRY[info.name] = info
    return info


def resolve_name(name: str) -> str:
    """The registry key for ``name`` in any spelling, or :class:`UnknownNameError` with suggestions."""
    wanted = _normalise(name)
    for entry in _REGISTRY.values():
        if wanted in {_normalise(n) for n in (entry.name, *entry.aliases)}:
            return entry.name
    spellings = {n: entry.name for entry in _REGISTRY.values() for n in (entry.name, *entry.aliases)}
    close = difflib.get_close_matches(name.lower(), list(spellings), n=4, cutoff=0.5)
    close += [n for n in difflib.get_close_matches(wanted, [_normalise(s) for s in spellings], n=4, cutoff=0.6)
              if n not in close]
    suggestions: list[str] = []
    for candidate in close:
        owner = spellings.get(candidate) or next(
            (spellings[s] for s in spellings if _normalise(s) == candidate), candidate
        )
        if owner not in suggestions:
            suggestions.append(owner)
    hint = f"did you mean {', '.join(repr(s) for s in suggestions)}? " if suggestions else ""
    raise UnknownNameError(
        f"unknown dataset {name!r}; {hint}run `hsikit datasets` or hsikit.data.list_datasets() for the full list"
    )


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` registered under ``name`` (any spelling or alias)."""
    return _REGISTRY[resolve_name(name)]


def list_datasets(task: str | None = None) -> list[str]:
    """Registered dataset names, sorted; only those of ``task`` when given."""
    if task is not None and task not in {"classification", "unmixing", "anomaly", "segmentation", "reconstruction"}:
        raise UnknownNameError(
            f"unknown task {task!r}; use classification, unmixing, anomaly, segmentation or reconstruction"
        )
    return sorted(name for name, info in _REGISTRY.items() if task is None or info.task == task)


def format_dataset_table(names: Iterable[str] | None = None, root: str | Path | None = None) -> str:
    """A plain-text table of datasets: name, task, sensor, cube shape, classes, size, availability.

    When ``root`` is given, a status column tells which datasets are complete there
    (``present``, ``missing``, ``manual``); files are not hashed for this.
    """
    selected = [dataset_info(n) for n in (names if names is not None else list_datasets())]
    header = ["name", "task", "sensor", "bands x H x W", "classes", "size", "download"]
    if root is not None:
        header.append("status")
    rows = [header]
    for info in selected:
        shape = "x".join(str(v) for v in info.shape) if info.shape else ("varies" if info.scenes else "?")
        size = _format_bytes(info.known_size) if info.known_size is not None else "?"
        row = [
            info.name,
            info.task,
            info.sensor.split(" (")[0],
            shape + (f" ({len(info.scenes)} scenes)" if info.scenes else ""),
            str(info.num_classes) if info.class_names else "-",
            size,
            "manual" if info.manual else "auto",
        ]
        if root is not None:
            row.append(_presence(info, Path(root)))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _presence(info: DatasetInfo, root: Path) -> str:
    if info.required_layout:
        return "present" if all(any(root.glob(p)) for p in info.required_layout) else "manual"
    required = [f for f in info.files if f.required]
    missing = [f for f in required if not f.local_path(root).is_file()]
    if not missing:
        return "present"
    return "manual" if any(not f.urls for f in missing) else "missing"


def _format_bytes(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - loop always returns


# ============================================================================ ARAD-1K split facts
ARAD1K_EXCLUDED_TRAIN: tuple[int, ...] = (314, 340, 531)
"""Scene numbers of 0001-0900 absent from the MST++ ``train_list.txt`` (897 names remain)."""


def arad1k_split_names(split: Literal["train", "valid", "test"]) -> list[str]:
    """Scene names of an ARAD-1K (NTIRE 2022) split, as in the MST++ split files.

    * ``"train"``: ``ARAD_1K_0001`` ... ``ARAD_1K_0900`` without 0314, 0340 and 0531 (897 names);
    * ``"valid"``: ``ARAD_1K_0901`` ... ``ARAD_1K_0950`` (50 names; spectra released, the de-facto test set);
    * ``"test"``: ``ARAD_1K_0951`` ... ``ARAD_1K_1000`` (50 names; RGB only, scored on the challenge server).
    """
    if split == "train":
        numbers = [n for n in range(1, 901) if n not in ARAD1K_EXCLUDED_TRAIN]
    elif split == "valid":
        numbers = list(range(901, 951))
    elif split == "test":
        numbers = list(range(951, 1001))
    else:
        raise SplitError(f"unknown ARAD-1K split {split!r}; use 'train', 'valid' or 'test'")
    return [f"ARAD_1K_{n:04d}" for n in numbers]


# ============================================================================ facts used by entries
# AVIRIS 92AV3C band centres and FWHM (nm) for all 220 bands, from the calibration file 92AV3C.spc
# (spectralpython/sample-data). Indian Pines "corrected" drops bands 104-108, 150-163 and 220 (1-based).
_AVIRIS_92AV3C_CENTRES: tuple[float, ...] = (
    400.02, 409.82, 419.62, 429.43, 439.25, 449.07, 458.9, 468.73, 478.57, 488.41, 498.26, 508.12,
    517.98, 527.85, 537.72, 547.6, 557.49, 567.38, 577.28, 587.18, 597.09, 607.01, 616.93, 626.85,
    636.78, 646.72, 656.67, 666.61, 676.57, 686.53, 696.5, 686.91, 696.55, 706.19, 715.83, 725.47,
    735.11, 744.74, 754.38, 764.01, 773.64, 783.27, 792.91, 802.53, 812.16, 821.79, 831.41, 841.04,
    850.66, 860.28, 869.91, 879.53, 889.14, 898.76, 908.38, 917.99, 927.61, 937.22, 946.83, 956.45,
    966.06, 975.66, 985.27, 994.88, 1004.48, 1014.09, 1023.69, 1033.29, 1042.89, 1052.49, 1062.09,
    1071.69, 1081.29, 1090.88, 1100.48, 1110.07, 1119.66, 1129.25, 1138.84, 1148.43, 1158.02,
    1167.61, 1177.19, 1186.77, 1196.36, 1205.94, 1215.52, 1225.1, 1234.68, 1244.26, 1253.83,
    1263.41, 1272.98, 1282.55, 1273.0, 1282.96, 1292.93, 1302.89, 1312.85, 1322.81, 1332.77, 1342.73,
    1352.68, 1362.64, 1372.59, 1382.54, 1392.49, 1402.44, 1412.39, 1422.34, 1432.28, 1442.23,
    1452.17, 1462.11, 1472.05, 1481.99, 1491.92, 1501.86, 1511.79, 1521.73, 1531.66, 1541.59,
    1551.52, 1561.44, 1571.37, 1581.3, 1591.22, 1601.14, 1611.06, 1620.98, 1630.9, 1640.81,
    1650.73, 1660.64, 1670.56, 1680.47, 1690.38, 1700.28, 1710.19, 1720.1, 1730.0, 1739.9, 1749.81,
    1759.71, 1769.6, 1779.5, 1789.4, 1799.29, 1809.19, 1819.08, 1828.97, 1838.86, 1848.75, 1858.63,
    1868.52, 1878.4, 1888.28, 1883.24, 1893.25, 1903.26, 1913.26, 1923.27, 1933.27, 1943.27,
    1953.26, 1963.25, 1973.24, 1983.23, 1993.22, 2003.2, 2013.18, 2023.16, 2033.13, 2043.1,
    2053.07, 2063.04, 2073.0, 2082.97, 2092.92, 2102.88, 2112.83, 2122.78, 2132.73, 2142.68, 2152.62,
    2162.56, 2172.5, 2182.43, 2192.37, 2202.3, 2212.22, 2222.15, 2232.07, 2241.99, 2251.9, 2261.82,
    2271.73, 2281.64, 2291.54, 2301.45, 2311.35, 2321.25, 2331.14, 2341.03, 2350.92, 2360.81,
    2370.7, 2380.58, 2390.46, 2400.33, 2410.21, 2420.08, 2429.95, 2439.81, 2449.68, 2459.54,
    2469.4, 2479.25, 2489.11, 2498.96,
)
_AVIRIS_92AV3C_FWHM: tuple[float, ...] = (
    9.78, 9.82, 9.85, 9.89, 9.92, 9.94, 9.97, 9.99, 10.01, 10.02, 10.04, 10.05, 10.05, 10.06,
    10.06, 10.06, 10.05, 10.04, 10.03, 10.02, 10.0, 9.98, 9.96, 9.94, 9.91, 9.88, 9.84, 9.81, 9.77,
    9.73, 9.68, 8.87, 8.87, 8.88, 8.88, 8.88, 8.89, 8.89, 8.89, 8.9, 8.9, 8.9, 8.91, 8.91, 8.91,
    8.92, 8.92, 8.92, 8.93, 8.93, 8.93, 8.93, 8.94, 8.94, 8.94, 8.94, 8.95, 8.95, 8.95, 8.95, 8.95,
    8.96, 8.96, 8.96, 8.96, 8.96, 8.97, 8.97, 8.97, 8.97, 8.97, 8.97, 8.97, 8.98, 8.98, 8.98, 8.98,
    8.98, 8.98, 8.98, 8.98, 8.98, 8.98, 8.99, 8.99, 8.99, 8.99, 8.99, 8.99, 8.99, 8.99, 8.99, 8.99,
    8.99, 9.18, 9.2, 9.22, 9.24, 9.26, 9.28, 9.3, 9.32, 9.34, 9.36, 9.37, 9.39, 9.41, 9.43, 9.44,
    9.46, 9.47, 9.49, 9.51, 9.52, 9.54, 9.55, 9.57, 9.58, 9.59, 9.61, 9.62, 9.63, 9.65, 9.66, 9.67,
    9.68, 9.7, 9.71, 9.72, 9.73, 9.74, 9.75, 9.76, 9.77, 9.78, 9.79, 9.8, 9.81, 9.82, 9.82, 9.83,
    9.84, 9.85, 9.85, 9.86, 9.87, 9.87, 9.88, 9.89, 9.89, 9.9, 9.9, 9.91, 9.91, 9.91, 9.92, 9.92,
    13.72, 13.75, 13.79, 13.82, 13.85, 13.88, 13.91, 13.95, 13.97, 14.0, 14.03, 14.06, 14.09, 14.11,
    14.14, 14.16, 14.19, 14.21, 14.23, 14.26, 14.28, 14.3, 14.32, 14.34, 14.36, 14.38, 14.39,
    14.41, 14.43, 14.44, 14.46, 14.47, 14.49, 14.5, 14.51, 14.52, 14.53, 14.54, 14.55, 14.56,
    14.57, 14.58, 14.58, 14.59, 14.6, 14.6, 14.61, 14.61, 14.61, 14.61, 14.61, 14.62, 14.62, 14.62,
    14.61, 14.61, 14.61, 14.61, 14.6, 14.6, 14.59, 14.59, 14.58,
)
# 1-based AVIRIS band numbers removed from the 220-band Indian Pines cube (water absorption).
_INDIAN_PINES_REMOVED = frozenset([*range(104, 109), *range(150, 164), 220])
_INDIAN_PINES_KEPT = tuple(i for i in range(220) if (i + 1) not in _INDIAN_PINES_REMOVED)

_SAMSON_WAVELENGTHS = tuple(float(v) for v in np.round(np.linspace(401.0, 889.0, 156), 4))
_TEN_NM_400_700 = tuple(float(v) for v in range(400, 701, 10))

_EHU = "https://www.ehu.eus/ccwintco/uploads"
_EHU_PAGE = "https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes"
_TENSORLY = "https://raw.githubusercontent.com/tensorly/tensorly/main/tensorly/datasets/data"
_SPY_SAMPLES = "https://raw.githubusercontent.com/spectralpython/sample-data/master"
_SSMGNET = "https://raw.githubusercontent.com/Lecheng-Wang/SSMGNet"
_SSMGNET_IMAGES_COMMIT = "fd1e1cbb894586202cf4ed0904695b1e378aa772"
_SSMGNET_LABELS_COMMIT = "6c78c54db95d5a9d0edeb8bee602ba56314658a7"
_BORSOI = "https://raw.githubusercontent.com/ricardoborsoi/MUA_SparseUnmixing/508d637e30d314a4f4db9c8606d25cc183e0e464"
_HF_DANAROTH = "https://huggingface.co/datasets/danaroth"
_ZHU_PAGE = "http://www.escience.cn/people/feiyunZHU/Dataset_GT.html (offline; mirror: https://rslab.ut.ac.ir/data)"
_ZHU_CITATION = (
    "F. Zhu, Hyperspectral Unmixing: Ground Truth Labeling, Datasets, Benchmark Performances and Survey, "
    "arXiv:1708.05125, 2017"
)
_GIC_LICENSE = (
    "no explicit licence; distributed for research by the Grupo de Inteligencia Computacional (UPV/EHU); "
    "acknowledge the original providers"
)
_HAM_2005 = (
    "J. Ham, Y. Chen, M. M. Crawford, J. Ghosh, Investigation of the random forest framework for classification "
    "of hyperspectral data, IEEE TGRS 43(3):492-501, 2005"
)
_KANG_2017 = (
    "X. Kang, X. Zhang, S. Li, K. Li, J. Li, J. A. Benediktsson, Hyperspectral anomaly detection with attribute "
    "and edge-preserving filters, IEEE TGRS 55(10):5600-5611, 2017, doi:10.1109/TGRS.2017.2710145"
)
_KANG_PAGE = "http://xudongkang.weebly.com/data-sets.html"
_ABU_WAVELENGTH_NOTE = (
    "band centres are not stored in the file; AVIRIS samples ~370-2500 nm on a ~10 nm grid but the removed "
    "bands differ per scene, so no centres are assumed"
)


def _ehu_file(folder: str, upload: str, description: str) -> RemoteFile:
    name = upload.rsplit("/", 1)[-1]
    return RemoteFile(f"{folder}/{name}", (f"{_EHU}/{upload}",), description=description)


def _manual_file_instructions(info_name: str, page: str, files: Iterable[str], extra: str = "") -> str:
    listing = "\n".join(f"     <root>/{path}" for path in files)
    return (
        f"1. Open {page} and download the files listed below (no stable direct link is known).\n"
        f"2. Put them under your hsikit data root (HSIKIT_DATA_DIR, default ~/.cache/hsikit) exactly as:\n"
        f"{listing}\n"
        f"3. Run hsikit.data.download_dataset({info_name!r}) again: the files are checked (sha256 where "
        f"registered) and the dataset loads offline." + (f"\n{extra}" if extra else "")
    )


# ============================================================================ entries
def _register_builtin() -> None:
    ip_files = (
        RemoteFile(
            "indian_pines/Indian_pines_corrected.npy",
            (f"{_TENSORLY}/Indian_pines_corrected.npy",),
            "8f038e4d81569e38ebfc72a15c9984c150de42580ab260be10a13442e912e451",
            8410128,
            description="cube (145, 145, 200) uint16, H x W x bands, water-absorption bands removed",
        ),
        RemoteFile(
            "indian_pines/Indian_pines_gt.npy",
            (f"{_TENSORLY}/Indian_pines_gt.npy",),
            "44610d21625b311b05b8e0c4ba9a6cc755c2fbb9df48e4d89419024aa6ad3f9d",
            21153,
            description="labels (145, 145) uint8, 0 = unlabelled, 16 classes",
        ),
        RemoteFile(
            "indian_pines/Indian_pines_gt.mat",
            (f"{_TENSORLY}/Indian_pines_gt.mat",),
            "65c4687a8ab04f6da4789799bc3bc4f6e88bccac3ed6a2e6ae367e5e6b9e429c",
            1125,
            required=False,
            description="the same labels as MATLAB v5 (key indian_pines_gt)",
        ),
        RemoteFile(
            "indian_pines/92AV3C.spc",
            (f"{_SPY_SAMPLES}/92AV3C.spc",),
            "beab701c26ba0c2430e1e0e4073e2179092c8c5bb281f5578dba6694906c5c4c",
            10976,
            required=False,
            description="AVIRIS band calibration (centre, FWHM) of the 220-band original",
        ),
        RemoteFile(
            "indian_pines/92AV3GT.GIS",
            (f"{_SPY_SAMPLES}/92AV3GT.GIS",),
            "4264595a73b804d0321f882cfc5667c24ced5d9166a30fe2867ba35975070d94",
            21153,
            required=False,
            description="original Purdue ERDAS GIS label file (128-byte header + 145x145 uint8)",
        ),
        RemoteFile(
            "indian_pines/indian_pines_wavelengths.csv",
            (),
            "ccb07f281dfb72457a37ac893641db5c340cfc77ca40c105dce447a685896283",
            7832,
            required=False,
            description="table made from 92AV3C.spc: centre/FWHM of the 220 bands + flag of the 200 kept "
            "(the same numbers are built into the registry)",
        ),
    )
    register_dataset(
        DatasetInfo(
            name="indian-pines",
            title="Indian Pines (AVIRIS, 1992-06-12, Purdue Agronomy farm, 200 bands)",
            task="classification",
            sensor="AVIRIS (NASA/JPL, airborne)",
            homepage=(
                "https://purr.purdue.edu/publications/1947/1 (doi:10.4231/R7RX991C)",
                _EHU_PAGE,
                "https://github.com/tensorly/tensorly (tensorly/datasets/data, the .npy copies)",
            ),
            files=ip_files,
            loader="indian_pines",
            loader_options={
                "cube": "indian_pines/Indian_pines_corrected.npy",
                "labels": "indian_pines/Indian_pines_gt.npy",
                "layout": "hwc",
            },
            shape=(200, 145, 145),
            class_names=(
                "Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees",
                "Grass-pasture-mowed", "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill",
                "Soybean-clean", "Wheat", "Woods", "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers",
            ),
            wavelengths=tuple(_AVIRIS_92AV3C_CENTRES[i] for i in _INDIAN_PINES_KEPT),
            fwhm=tuple(_AVIRIS_92AV3C_FWHM[i] for i in _INDIAN_PINES_KEPT),
            wavelength_note="centres/FWHM of the 200 kept AVIRIS bands, from 92AV3C.spc "
            "(bands 104-108, 150-163 and 220 removed); not monotonic where AVIRIS spectrometers overlap",
            pixel_size_m=20.0,
            license="CC BY 3.0 (Purdue University Research Repository); .npy copies redistributed by TensorLy",
            citation="M. F. Baumgardner, L. L. Biehl, D. A. Landgrebe, 220 Band AVIRIS Hyperspectral Image Data "
            "Set: June 12, 1992 Indian Pine Test Site 3, Purdue University Research Repository, 2015, "
            "doi:10.4231/R7RX991C",
            aliases=("indianpines", "ip", "indian_pines_corrected"),
            notes="cube values are scaled at-sensor radiance (uint16, ~955-9604), not reflectance",
        )
    )

    register_dataset(
        DatasetInfo(
            name="pavia-university",
            title="Pavia University (ROSIS-03, 610 x 340, 103 bands)",
            task="classification",
            sensor="ROSIS-03 (DLR, airborne)",
            homepage=(_EHU_PAGE,),
            files=(
                _ehu_file("pavia_university", "e/ee/PaviaU.mat", "cube (610, 340, 103), key paviaU"),
                _ehu_file("pavia_university", "5/50/PaviaU_gt.mat", "labels (610, 340), key paviaU_gt"),
            ),
            loader="mat_scene",
            loader_options={
                "cube": "pavia_university/PaviaU.mat",
                "cube_key": "paviaU",
                "labels": "pavia_university/PaviaU_gt.mat",
                "labels_key": "paviaU_gt",
                "layout": "hwc",
            },
            shape=(103, 610, 340),
            class_names=(
                "Asphalt", "Meadows", "Gravel", "Trees", "Painted metal sheets", "Bare Soil", "Bitumen",
                "Self-Blocking Bricks", "Shadows",
            ),
            wavelength_note="ROSIS covers 430-860 nm; the file carries no band centres, so none are assumed",
            pixel_size_m=1.3,
            license=_GIC_LICENSE + " (data courtesy of Prof. Paolo Gamba, University of Pavia)",
            citation="Hyperspectral Remote Sensing Scenes, Grupo de Inteligencia Computacional, UPV/EHU; "
            "data provided by P. Gamba, University of Pavia",
            aliases=("paviau", "pavia_u", "pu"),
        )
    )

    register_dataset(
        DatasetInfo(
            name="pavia-centre",
            title="Pavia Centre (ROSIS-03, 1096 x 715, 102 bands)",
            task="classification",
            sensor="ROSIS-03 (DLR, airborne)",
            homepage=(_EHU_PAGE,),
            files=(
                _ehu_file("pavia_centre", "e/e3/Pavia.mat", "cube (1096, 715, 102), key pavia"),
                _ehu_file("pavia_centre", "5/53/Pavia_gt.mat", "labels (1096, 715), key pavia_gt"),
            ),
            loader="mat_scene",
            loader_options={
                "cube": "pavia_centre/Pavia.mat",
                "cube_key": "pavia",
                "labels": "pavia_centre/Pavia_gt.mat",
                "labels_key": "pavia_gt",
                "layout": "hwc",
            },
            shape=(102, 1096, 715),
            class_names=(
                "Water", "Trees", "Asphalt", "Self-Blocking Bricks", "Bitumen", "Tiles", "Shadows", "Meadows",
                "Bare Soil",
            ),
            wavelength_note="ROSIS covers 430-860 nm; the file carries no band centres, so none are assumed",
            pixel_size_m=1.3,
            license=_GIC_LICENSE + " (data courtesy of Prof. Paolo Gamba, University of Pavia)",
            citation="Hyperspectral Remote Sensing Scenes, Grupo de Inteligencia Computacional, UPV/EHU; "
            "data provided by P. Gamba, University of Pavia",
            aliases=("pavia-center", "paviac", "pavia_c", "pc"),
        )
    )

    salinas_classes = (
        "Brocoli_green_weeds_1", "Brocoli_green_weeds_2", "Fallow", "Fallow_rough_plow", "Fallow_smooth",
        "Stubble", "Celery", "Grapes_untrained", "Soil_vinyard_develop", "Corn_senesced_green_weeds",
        "Lettuce_romaine_4wk", "Lettuce_romaine_5wk", "Lettuce_romaine_6wk", "Lettuce_romaine_7wk",
        "Vinyard_untrained", "Vinyard_vertical_trellis",
    )
    salinas_wavelength_note = (
        "AVIRIS 224 bands with 20 water-absorption bands removed ([108-112], [154-167], 224); "
        "the file carries no band centres, so none are assumed"
    )
    register_dataset(
        DatasetInfo(
            name="salinas",
            title="Salinas Valley (AVIRIS, 512 x 217, 204 bands)",
            task="classification",
            sensor="AVIRIS (NASA/JPL, airborne)",
            homepage=(_EHU_PAGE,),
            files=(
                _ehu_file("salinas", "a/a3/Salinas_corrected.mat", "cube (512, 217, 204), key salinas_corrected"),
                _ehu_file("salinas", "f/fa/Salinas_gt.mat", "labels (512, 217), key salinas_gt"),
            ),
            loader="mat_scene",
            loader_options={
                "cube": "salinas/Salinas_corrected.mat",
                "cube_key": "salinas_corrected",
                "labels": "salinas/Salinas_gt.mat",
                "labels_key": "salinas_gt",
                "layout": "hwc",
            },
            shape=(204, 512, 217),
            class_names=salinas_classes,
            wavelength_note=salinas_wavelength_note,
            pixel_size_m=3.7,
            license=_GIC_LICENSE,
            citation="Hyperspectral Remote Sensing Scenes, Grupo de Inteligencia Computacional, UPV/EHU (AVIRIS data)",
            aliases=("salinas-valley", "sa"),
        )
    )

    register_dataset(
        DatasetInfo(
            name="salinas-a",
            title="Salinas-A (AVIRIS subscene of Salinas, 86 x 83, 204 bands)",
            task="classification",
            sensor="AVIRIS (NASA/JPL, airborne)",
            homepage=(_EHU_PAGE,),
            files=(
                _ehu_file("salinas_a", "1/1a/SalinasA_corrected.mat", "cube (86, 83, 204), key salinasA_corrected"),
                _ehu_file("salinas_a", "a/aa/SalinasA_gt.mat", "labels (86, 83), key salinasA_gt"),
            ),
            loader="mat_scene",
            loader_options={
                "cube": "salinas_a/SalinasA_corrected.mat",
                "cube_key": "salinasA_corrected",
                "labels": "salinas_a/SalinasA_gt.mat",
                "labels_key": "salinasA_gt",
                "layout": "hwc",
            },
            shape=(204, 86, 83),
            class_names=(
                "Brocoli_green_weeds_1", "Corn_senesced_green_weeds", "Lettuce_romaine_4wk",
                "Lettuce_romaine_5wk", "Lettuce_romaine_6wk", "Lettuce_romaine_7wk",
            ),
            label_codes=(1, 10, 11, 12, 13, 14),
            wavelength_note=salinas_wavelength_note,
            pixel_size_m=3.7,
            license=_GIC_LICENSE,
            citation="Hyperspectral Remote Sensing Scenes, Grupo de Inteligencia Computacional, UPV/EHU (AVIRIS data)",
            aliases=("salinasa", "salinas_a"),
            notes="the label file keeps the Salinas class numbers (1, 10-14); the loader maps them to 1-6",
        )
    )

    register_dataset(
        DatasetInfo(
            name="ksc",
            title="Kennedy Space Center (AVIRIS, 1996-03-23, 512 x 614, 176 bands)",
            task="classification",
            sensor="AVIRIS (NASA/JPL, airborne)",
            homepage=(_EHU_PAGE,),
            files=(
                _ehu_file("ksc", "2/26/KSC.mat", "cube (512, 614, 176), key KSC"),
                _ehu_file("ksc", "a/a6/KSC_gt.mat", "labels (512, 614), key KSC_gt"),
            ),
            loader="mat_scene",
            loader_options={
                "cube": "ksc/KSC.mat",
                "cube_key": "KSC",
                "labels": "ksc/KSC_gt.mat",
                "labels_key": "KSC_gt",
                "layout": "hwc",
            },
            shape=(176, 512, 614),
            class_names=(
                "Scrub", "Willow swamp", "Cabbage palm hammock", "Cabbage palm/oak hammock", "Slash pine",
                "Oak/broadleaf hammock", "Hardwood swamp", "Graminoid marsh", "Spartina marsh", "Cattail marsh",
                "Salt marsh", "Mud flats", "Water",
            ),
            wavelength_note="AVIRIS 400-2500 nm with water-absorption and low-SNR bands removed (176 kept); "
            "the file carries no band centres, so none are assumed",
            pixel_size_m=18.0,
            license=_GIC_LICENSE + " (data courtesy of the Center for Space Research, University of Texas at Austin)",
            citation=_HAM_2005,
            aliases=("kennedy-space-center", "kennedy"),
        )
    )

    register_dataset(
        DatasetInfo(
            name="botswana",
            title="Botswana, Okavango Delta (EO-1 Hyperion, 2001-05-31, 1476 x 256, 145 bands)",
            task="classification",
            sensor="Hyperion (NASA EO-1, spaceborne)",
            homepage=(_EHU_PAGE,),
            files=(
                _ehu_file("botswana", "7/72/Botswana.mat", "cube (1476, 256, 145), key Botswana"),
                _ehu_file("botswana", "5/58/Botswana_gt.mat", "labels (1476, 256), key Botswana_gt"),
            ),
            loader="mat_scene",
            loader_options={
                "cube": "botswana/Botswana.mat",
                "cube_key": "Botswana",
                "labels": "botswana/Botswana_gt.mat",
                "labels_key": "Botswana_gt",
                "layout": "hwc",
            },
            shape=(145, 1476, 256),
            class_names=(
                "Water", "Hippo grass", "Floodplain grasses 1", "Floodplain grasses 2", "Reeds", "Riparian",
                "Firescar", "Island interior", "Acacia woodlands", "Acacia shrublands", "Acacia grasslands",
                "Short mopane", "Mixed mopane", "Exposed soils",
            ),
            wavelength_note="Hyperion 242 bands (400-2500 nm, 10 nm) reduced to 145 after removing uncalibrated "
            "and noisy bands; the file carries no band centres, so none are assumed",
            pixel_size_m=30.0,
            license=_GIC_LICENSE + " (data courtesy of the Center for Space Research, University of Texas at Austin)",
            citation=_HAM_2005,
            aliases=("okavango",),
        )
    )

    register_dataset(
        DatasetInfo(
            name="samson",
            title="Samson (95 x 95 subscene, 156 bands 401-889 nm, 3 endmembers)",
            task="unmixing",
            sensor="SAMSON airborne imaging spectrometer (Opticks sample data)",
            homepage=(_ZHU_PAGE, f"{_HF_DANAROTH}/samson", "https://github.com/ricardoborsoi/MUA_SparseUnmixing"),
            files=(
                RemoteFile(
                    "samson/samson_1.mat",
                    (f"{_BORSOI}/real_data/samson_1.mat",),
                    "1ebacaf7cd32bfc31c0ee3fd56c63a7f29a434893a8b45705fb59cd8a0c8beb6",
                    3604014,
                    description="V (156, 9025) float64 in [0, 1]: bands x pixels, pixels in column-major order; "
                    "nRow, nCol, nBand",
                ),
                RemoteFile(
                    "samson/end3.mat",
                    (f"{_HF_DANAROTH}/samson/resolve/main/end3.mat",),
                    "ce768182ce5292390180f827ff5769112cf3d299f4e64ab43e950a310b7ec9fa",
                    134259,
                    description="ground truth: endmembers M (156, 3), abundances A (3, 9025), names cood",
                ),
                RemoteFile(
                    "samson/spectral_library_samson.mat",
                    (f"{_BORSOI}/real_data/spectral_library_samson.mat",),
                    "110763949940e1027d591e7e43e7deaf880340dd66ee3a62ffdfa03bc2f3ae67",
                    84614,
                    required=False,
                    description="library spectra per material (A (156, 105), lib1..lib3, material_names)",
                ),
            ),
            loader="pixel_matrix_unmixing",
            loader_options={
                "cube": "samson/samson_1.mat",
                "cube_key": "V",
                "ground_truth": "samson/end3.mat",
            },
            shape=(156, 95, 95),
            class_names=("Soil", "Tree", "Water"),
            wavelengths=_SAMSON_WAVELENGTHS,
            wavelength_note="assumed evenly spaced from 401 to 889 nm (156 bands, ~3.13 nm step), as documented "
            "by Zhu; the file stores no centres",
            license="no explicit licence (Opticks sample data; ground truth by F. Zhu)",
            citation=_ZHU_CITATION,
            notes="labels are the argmax of the ground-truth abundances (1 Soil, 2 Tree, 3 Water); the abundances "
            "(3, H, W) and endmembers (bands, 3) are in Scene.extras; pixels are unfolded in MATLAB column-major "
            "order as in Zhu's code",
        )
    )

    register_dataset(
        DatasetInfo(
            name="jasper-ridge",
            title="Jasper Ridge (AVIRIS 100 x 100 subscene, 198 bands, 4 endmembers)",
            task="unmixing",
            sensor="AVIRIS (NASA/JPL, airborne)",
            homepage=(_ZHU_PAGE, f"{_HF_DANAROTH}/jasper_ridge"),
            files=(
                RemoteFile(
                    "jasper_ridge/jasperRidge2_R198.hdr",
                    (f"{_HF_DANAROTH}/jasper_ridge/resolve/main/jasperRidge2_R198.hdr",),
                    description="ENVI header of the 198-band cube",
                ),
                RemoteFile(
                    "jasper_ridge/jasperRidge2_R198.img",
                    (f"{_HF_DANAROTH}/jasper_ridge/resolve/main/jasperRidge2_R198.img",),
                    description="ENVI data of the 198-band cube (100 x 100 px)",
                ),
                RemoteFile(
                    "jasper_ridge/end4.mat",
                    (f"{_HF_DANAROTH}/jasper_ridge/resolve/main/end4.mat",),
                    description="ground truth: endmembers M (198, 4), abundances A (4, 10000), names cood",
                ),
            ),
            loader="envi_unmixing",
            loader_options={"cube": "jasper_ridge/jasperRidge2_R198.hdr", "ground_truth": "jasper_ridge/end4.mat"},
            shape=(198, 100, 100),
            class_names=("Road", "Soil", "Water", "Tree"),
            wavelength_note="AVIRIS 224 channels 380-2500 nm (~9.46 nm) with channels 1-3, 108-112, 154-166 and "
            "220-224 removed; centres are read from the ENVI header when it has them",
            license="no explicit licence (ground truth by F. Zhu)",
            citation=_ZHU_CITATION,
            aliases=("jasper", "jasperridge"),
            notes="labels are the argmax of the abundances; abundance rows are matched to class names by the "
            "'cood' names stored in end4.mat; sha256 of these files is not yet registered",
        )
    )

    register_dataset(
        DatasetInfo(
            name="urban",
            title="Urban (HYDICE 307 x 307, 162 bands, 4/5/6 endmembers)",
            task="unmixing",
            sensor="HYDICE (airborne)",
            homepage=(_ZHU_PAGE, f"{_HF_DANAROTH}/urban"),
            files=(
                RemoteFile(
                    "urban/Urban_R162.mat",
                    (f"{_HF_DANAROTH}/urban/resolve/main/Urban_R162.mat",),
                    description="Y (162, 94249) bands x pixels (column-major), nRow, nCol, SlectBands, maxValue",
                ),
                RemoteFile(
                    "urban/end4_groundTruth.mat",
                    (f"{_HF_DANAROTH}/urban/resolve/main/end4_groundTruth.mat",),
                    required=False,
                    description="4-endmember ground truth (Asphalt, Grass, Tree, Roof)",
                ),
                RemoteFile(
                    "urban/end5_groundTruth.mat",
                    (f"{_HF_DANAROTH}/urban/resolve/main/end5_groundTruth.mat",),
                    required=False,
                    description="5-endmember ground truth (+ Dirt)",
                ),
                RemoteFile(
                    "urban/end6_groundTruth.mat",
                    (f"{_HF_DANAROTH}/urban/resolve/main/end6_groundTruth.mat",),
                    description="6-endmember ground truth (Asphalt, Grass, Tree, Roof, Metal, Dirt), the default",
                ),
            ),
            loader="pixel_matrix_unmixing",
            loader_options={
                "cube": "urban/Urban_R162.mat",
                "cube_key": "Y",
                "ground_truth": "urban/end{endmembers}_groundTruth.mat",
                "endmembers": 6,
            },
            shape=(162, 307, 307),
            class_names=("Asphalt", "Grass", "Tree", "Roof", "Metal", "Dirt"),
            wavelength_note="HYDICE 210 channels 400-2500 nm (10 nm) with channels 1-4, 76, 87, 101-111, 136-153 "
            "and 198-210 removed; no centres are assumed",
            pixel_size_m=2.0,
            license="no explicit licence (ground truth by F. Zhu)",
            citation=_ZHU_CITATION,
            aliases=("urban-hydice", "urban162"),
            notes="load_dataset('urban', endmembers=4|5|6) picks the ground-truth version (class names follow it); "
            "labels are the argmax of the abundances; sha256 of these files is not yet registered",
        )
    )

    # ---------------------------------------------------------------- anomaly scenes
    abu_scenes = {
        "abu-airport-1": ("5de3c0b74593552e21e88ee280d02c4acae60bd48a013d72bd28ef63815485f5", 4110248, 205),
        "abu-airport-2": ("7121476e700001e76191d6ee6bc6f2d5f680c0fe49186b61a57f10fcac7718b9", 2802536, 205),
        "abu-airport-3": ("97b574be2de8c1ae3158b60b4aa34676c59a218398fc096c0dcdf125a6c74495", 2774082, 205),
        "abu-airport-4": ("c10cb987f0a75ad5834da2be35e2cfe740660fd9094521dd6d047de535a2a72b", 2570267, 191),
        "abu-beach-2": ("3ec5f0c5c36b2f98a41f9d9e69946e9f3e6fdbeee0f42b3e402485a4efd9bb80", 1562254, 193),
        "abu-beach-3": ("56622ebe89aa1a37aced4b41286eb0a045677553f637c63f90c8222f1027f576", 2427882, 188),
        "abu-urban-1": ("951d8d9c405d7ae200634dfd5244586545c01a561b1028f0e65e09e562523942", 2666116, 204),
        "abu-urban-2": ("ed900cbde844582dd51943f920eac47c3a4e7f4cf3e0ae7612fdfb80b7ee7807", 2678487, 207),
        "abu-urban-3": ("a4e4ef3c512b72510f5852300a5050e9e544f80abb021d79ee04921c2070598b", 2262918, 191),
        "abu-urban-5": ("16a50cfca9d6c4783adfd663e9d1e5e948ddaad950912b58577a604c86eb64c5", 2809140, 205),
    }
    for name, (digest, size, bands) in abu_scenes.items():
        path = f"anomaly/{name}.mat"
        kind = name.split("-")[1]
        register_dataset(
            DatasetInfo(
                name=name,
                title=f"ABU {kind} scene {name.rsplit('-', 1)[-1]} (AVIRIS, 100 x 100, {bands} bands)",
                task="anomaly",
                sensor="AVIRIS (NASA/JPL, airborne)",
                homepage=(_KANG_PAGE,),
                files=(
                    RemoteFile(
                        path, (), digest, size,
                        description=f"data (100, 100, {bands}) raw DN (H x W x bands), map (100, 100) uint8 anomaly mask",
                    ),
                ),
                loader="anomaly_mat",
                loader_options={"cube": path, "cube_key": "data", "labels_key": "map", "layout": "hwc"},
                shape=(bands, 100, 100),
                class_names=("anomaly",),
                wavelength_note=_ABU_WAVELENGTH_NOTE,
                license="no explicit licence; research data set of X. Kang (Hunan University)",
                citation=_KANG_2017,
                instructions=_manual_file_instructions(name, _KANG_PAGE, [path]),
                notes="raw digital numbers (int16/uint16), not reflectance; labels: 1 = anomaly, 0 = background",
            )
        )

    register_dataset(
        DatasetInfo(
            name="hydice-anomaly",
            title="HYDICE urban anomaly scene (80 x 100, 162 bands)",
            task="anomaly",
            sensor="HYDICE (airborne)",
            homepage=(_KANG_PAGE,),
            files=(
                RemoteFile(
                    "anomaly/hydice.mat", (), "095875682b1f5da092c64ebf4b40493d4d9071aa6a7856c8821cc986051422c7",
                    2600248, description="data (80, 100, 162) uint16 raw DN, map (80, 100) uint8 anomaly mask",
                ),
            ),
            loader="anomaly_mat",
            loader_options={"cube": "anomaly/hydice.mat", "cube_key": "data", "labels_key": "map", "layout": "hwc"},
            shape=(162, 80, 100),
            class_names=("anomaly",),
            wavelength_note="HYDICE 400-2500 nm with noisy/absorption bands removed; no centres stored or assumed",
            license="no explicit licence; widely redistributed with anomaly-detection code",
            citation="HYDICE urban scene as used for hyperspectral anomaly detection benchmarks; cite the paper "
            "of the copy you use (e.g. " + _KANG_2017 + ")",
            instructions=_manual_file_instructions(
                "hydice-anomaly", "a hyperspectral anomaly-detection benchmark collection (e.g. " + _KANG_PAGE + ")",
                ["anomaly/hydice.mat"],
                "   Only a file whose sha256 matches the registered digest is accepted.",
            ),
            aliases=("hydice",),
            notes="raw digital numbers; labels: 1 = anomaly, 0 = background",
        )
    )
    register_dataset(
        DatasetInfo(
            name="pavia-anomaly",
            title="Pavia Centre anomaly scene (ROSIS-03, 100 x 100, 102 bands)",
            task="anomaly",
            sensor="ROSIS-03 (DLR, airborne)",
            homepage=(_KANG_PAGE, _EHU_PAGE),
            files=(
                RemoteFile(
                    "anomaly/pavia.mat", (), "61d29c00c3aa179bc4582eb6575282dc49fc00e0345314ed654757d9ac4c27e1",
                    2580477,
                    description="MATLAB v7.3: data (100, 100, 102) float64 min-max normalised, groundtruth (100, 100)",
                ),
            ),
            loader="anomaly_mat",
            loader_options={
                "cube": "anomaly/pavia.mat", "cube_key": "data", "labels_key": "groundtruth", "layout": "hwc",
            },
            shape=(102, 100, 100),
            class_names=("anomaly",),
            wavelength_note="ROSIS 430-860 nm; no centres stored or assumed",
            license="no explicit licence; widely redistributed with anomaly-detection code",
            citation="Pavia Centre (ROSIS) crop used in hyperspectral anomaly detection benchmarks; data courtesy "
            "of P. Gamba, University of Pavia",
            instructions=_manual_file_instructions(
                "pavia-anomaly", "a hyperspectral anomaly-detection benchmark collection", ["anomaly/pavia.mat"],
                "   Only a file whose sha256 matches the registered digest is accepted.",
            ),
            notes="values min-max normalised to [0, 1]; labels: 1 = anomaly, 0 = background",
        )
    )
    register_dataset(
        DatasetInfo(
            name="muufl-anomaly",
            title="MUUFL Gulfport anomaly crop (CASI-1500, 100 x 100, 64 bands)",
            task="anomaly",
            sensor="CASI-1500 (ITRES, airborne)",
            homepage=("https://github.com/GatorSense/MUUFLGulfport",),
            files=(
                RemoteFile(
                    "anomaly/MUUFL.mat", (), "daa71852a18b409393961bea5d696a2ee0a74ff44d2b76dbbd32a1c2363c8d4b",
                    2205199,
                    description="MATLAB v7.3: data (100, 100, 64) float32 min-max normalised, groundtruth (100, 100)",
                ),
            ),
            loader="anomaly_mat",
            loader_options={
                "cube": "anomaly/MUUFL.mat", "cube_key": "data", "labels_key": "groundtruth", "layout": "hwc",
            },
            shape=(64, 100, 100),
            class_names=("anomaly",),
            wavelength_note="CASI-1500 375-1050 nm (72 bands, 64 kept); no centres stored or assumed",
            license="MUUFL Gulfport terms: free for research with citation",
            citation="P. Gader, A. Zare, R. Close, J. Aitken, G. Tuell, MUUFL Gulfport hyperspectral and LiDAR "
            "airborne data set, University of Florida, Tech. Rep. REP-2013-570, 2013; X. Du, A. Zare, Technical "
            "report: scene label ground truth map for MUUFL Gulfport data set, University of Florida, 2017",
            instructions=_manual_file_instructions(
                "muufl-anomaly", "a hyperspectral anomaly-detection benchmark collection", ["anomaly/MUUFL.mat"],
                "   Only a file whose sha256 matches the registered digest is accepted.",
            ),
            aliases=("muufl",),
            notes="values min-max normalised; labels: 1 = anomaly, 0 = background",
        )
    )

    # ---------------------------------------------------------------- glacier tiles
    glacier_digests = {
        "1": ("d43a285bb2c91ba9b923b473d6d1442b71debcb49e6d3669b1feebee9085c6a4",
              "75f9765bcb5b624699c5661c73da379d8298c9940a1ddfc1776352fad0142c73"),
        "2": ("49701311ea9706c10c5a60d36685cfa8c6af732394b21cf9bc88d885503ddd66",
              "12752936fba3823b48f32492598fc6bd66743dec02851771403f6172f7ae09c2"),
        "4": ("cad5fe211832dfbfb1cd65b5af786ffd8e71ce8ca487348a803eeb7321eb80c3",
              "8dce67daecd2dab55a7082ad5125c5d107110d7557926331cff18496a72664b2"),
    }
    glacier_files: list[RemoteFile] = []
    for tile, (image_digest, label_digest) in glacier_digests.items():
        glacier_files.append(
            RemoteFile(
                f"glacier/images/{tile}.tif",
                (f"{_SSMGNET}/{_SSMGNET_IMAGES_COMMIT}/datasets/images/{tile}.tif",),
                image_digest, 2623406,
                description=f"tile {tile}: 10-band float32 reflectance GeoTIFF, 256 x 256, EPSG:32647, 30 m",
            )
        )
        glacier_files.append(
            RemoteFile(
                f"glacier/labels/{tile}.tif",
                (f"{_SSMGNET}/{_SSMGNET_LABELS_COMMIT}/datasets/labels/{tile}.tif",),
                label_digest, 65944,
                description=f"tile {tile}: uint8 labels 0 background, 1 clean glacier, 2 debris-covered glacier",
            )
        )
    register_dataset(
        DatasetInfo(
            name="glacier",
            title="Glacier tiles (SSMGNet sample data; 10-band multispectral, 256 x 256, 30 m)",
            task="segmentation",
            sensor="10-band multispectral imagery (sensor not documented by the source)",
            homepage=("https://github.com/Lecheng-Wang/SSMGNet",),
            files=tuple(glacier_files),
            loader="glacier",
            loader_options={"images": "glacier/images/{scene}.tif", "labels": "glacier/labels/{scene}.tif"},
            shape=(10, 256, 256),
            class_names=("background", "clean_glacier", "debris_glacier"),
            label_codes=(0, 1, 2),
            wavelength_note="the source documents neither sensor nor band list; no centres are assumed",
            pixel_size_m=30.0,
            scenes=tuple(glacier_digests),
            license="no licence file in the source repository (all rights reserved by default)",
            citation="Lecheng Wang et al., SSMGNet, https://github.com/Lecheng-Wang/SSMGNet",
            aliases=("ssmgnet", "glaciers"),
            notes="file values 0/1/2 are loaded as 1/2/3 so that 0 keeps meaning 'unlabelled' (every pixel of "
            "these tiles is labelled); tile 4 is all background; GeoTIFF CRS and transform travel with the Cube",
        )
    )

    # ---------------------------------------------------------------- natural-scene sets (manual)
    arad_instructions = (
        "ARAD-1K (NTIRE 2022 Spectral Recovery Challenge) needs a registered account:\n"
        "1. Register at https://codalab.lisn.upsaclay.fr/competitions/721 and accept the challenge terms;\n"
        "   open 'Participate > Get data' (the MST++ README links the same archives on Google Drive:\n"
        "   https://github.com/caiyuanhao1998/MST-plus-plus#4-training).\n"
        "2. Download the training spectra, training RGB, validation spectra and validation RGB archives\n"
        "   (test RGB is optional: it has no spectra).\n"
        "3. Unpack them under your hsikit data root (HSIKIT_DATA_DIR, default ~/.cache/hsikit) as:\n"
        "     <root>/arad1k/Train_Spec/ARAD_1K_0001.mat ... ARAD_1K_0950.mat   (train + valid spectra)\n"
        "     <root>/arad1k/Train_RGB/ARAD_1K_0001.jpg ... ARAD_1K_0950.jpg    (train + valid RGB)\n"
        "     <root>/arad1k/Test_RGB/ARAD_1K_0951.jpg ... ARAD_1K_1000.jpg     (optional)\n"
        "     <root>/arad1k/split_txt/train_list.txt and valid_list.txt\n"
        "   The split lists hold one scene name per line (897 and 50 names); if you lack them, run\n"
        "   hsikit.data.write_arad1k_split_lists() (names from hsikit.data.arad1k_split_names).\n"
        "4. load_dataset('arad-1k', scene='ARAD_1K_0901') then loads one scene offline."
    )
    register_dataset(
        DatasetInfo(
            name="arad-1k",
            title="ARAD-1K (NTIRE 2022 spectral recovery; 1000 natural scenes, 31 bands 400-700 nm)",
            task="reconstruction",
            sensor="Specim IQ (hyperspectral camera), 482 x 512 px",
            homepage=(
                "https://codalab.lisn.upsaclay.fr/competitions/721",
                "https://github.com/caiyuanhao1998/MST-plus-plus",
            ),
            files=(),
            loader="arad1k",
            loader_options={"spectra": "arad1k/Train_Spec/{scene}.mat", "rgb": "arad1k/Train_RGB/{scene}.jpg",
                            "cube_key": "cube"},
            shape=(31, 482, 512),
            wavelengths=_TEN_NM_400_700,
            wavelength_note="31 bands, 400-700 nm in 10 nm steps",
            scenes=tuple(arad1k_split_names("train") + arad1k_split_names("valid")),
            license="NTIRE 2022 challenge terms (research use; registration required)",
            citation="B. Arad, R. Timofte, R. Yahel, N. Morag, A. Bernat et al., NTIRE 2022 Spectral Recovery "
            "Challenge and Data Set, CVPR Workshops 2022",
            instructions=arad_instructions,
            required_layout=("arad1k/Train_Spec/ARAD_1K_*.mat",),
            aliases=("arad", "arad1k", "ntire2022"),
            notes="spectra are MATLAB v7.3 (key 'cube'), loaded as (31, 482, 512) float32 reflectance-like values; "
            "the RGB JPEG, when present, is in Scene.extras['rgb'] as (482, 512, 3) uint8",
        )
    )

    cave_instructions = (
        "CAVE has no stable direct link that hsikit can verify:\n"
        "1. Open https://cave.cs.columbia.edu/repository/Multispectral (formerly\n"
        "   https://www.cs.columbia.edu/CAVE/databases/multispectral/) and download the complete data\n"
        "   set ('complete_ms_data.zip', all 32 scenes) or single scenes.\n"
        "2. Unpack so that each scene folder sits under <root>/cave/ (root = HSIKIT_DATA_DIR, default\n"
        "   ~/.cache/hsikit), e.g.\n"
        "     <root>/cave/balloons_ms/balloons_ms/balloons_ms_01.png ... balloons_ms_31.png\n"
        "   (the archive nests each folder twice; both nested and flat layouts are accepted).\n"
        "3. load_dataset('cave', scene='balloons') then loads the 31-band cube offline."
    )
    register_dataset(
        DatasetInfo(
            name="cave",
            title="CAVE multispectral image database (32 scenes, 512 x 512, 31 bands 400-700 nm)",
            task="reconstruction",
            sensor="CCD camera + liquid-crystal tunable filter (Columbia CAVE lab)",
            homepage=(
                "https://cave.cs.columbia.edu/repository/Multispectral",
                "https://www.cs.columbia.edu/CAVE/databases/multispectral/",
            ),
            files=(),
            loader="cave",
            loader_options={"folder": "cave"},
            shape=(31, 512, 512),
            wavelengths=_TEN_NM_400_700,
            wavelength_note="31 bands, 400-700 nm in 10 nm steps (one 16-bit PNG per band)",
            scenes=CAVE_SCENES,
            license="research use; cite the paper below (Columbia University CAVE terms)",
            citation="F. Yasuma, T. Mitsunaga, D. Iso, S. K. Nayar, Generalized Assorted Pixel Camera: "
            "Postcapture Control of Resolution, Dynamic Range and Spectrum, IEEE TIP 19(9), 2010",
            instructions=cave_instructions,
            required_layout=("cave/*_ms",),
            aliases=("cave-multispectral", "columbia-cave"),
            notes="bands are scaled to [0, 1] by the PNG bit depth (16-bit: /65535)",
        )
    )


CAVE_SCENES: tuple[str, ...] = (
    "balloons", "beads", "cd", "chart_and_stuffed_toy", "clay", "cloth", "egyptian_statue", "face",
    "fake_and_real_beers", "fake_and_real_food", "fake_and_real_lemon_slices", "fake_and_real_lemons",
    "fake_and_real_peppers", "fake_and_real_strawberries", "fake_and_real_sushi", "fake_and_real_tomatoes",
    "feathers", "flowers", "glass_tiles", "hairs", "jelly_beans", "oil_painting", "paints", "photo_and_face",
    "pompoms", "real_and_fake_apples", "real_and_fake_peppers", "sponges", "stuffed_toys", "superballs",
    "thread_spools", "watercolors",
)
"""The 32 scene names of the CAVE database (folder ``<scene>_ms``)."""

_register_builtin()
