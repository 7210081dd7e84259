"""Whole-scene prediction in bounded memory: reader → tiles → model → blended rows → writer.

:func:`predict_scene` runs a model over a scene of any size. The scene comes
from a file (GeoTIFF, ENVI, anything :func:`hsikit.io.open_reader` opens), a
:class:`~hsikit.io.base.CubeReader`, or a :class:`~hsikit.cube.Cube` in memory.
It is read one *strip* (one row of tiles, ``tile`` rows high) at a time; the
tiles of the strip go through the model in batches; their outputs, multiplied by
the blending weights of :mod:`hsikit.inference.tiling`, are added to an
accumulation band as tall as one tile; the rows no later tile can reach are
divided by their weight sum and written out, and the band moves down. The
output file keeps the input's CRS and transform.

Memory does not depend on the scene height: two input strips
(``2 x bands x tile x width``, the second being read ahead in a thread), two
accumulation bands (``2 x K x tile x width``), one batch of tiles and what the
model needs for it. GDAL's block cache comes on top for GeoTIFF sources and
outputs (bounded by ``GDAL_CACHEMAX``).

Class maps are made from merged probabilities (or merged logits), never by
averaging integer labels: the argmax is taken when rows are flushed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hsikit.cube import Cube, Window
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.inference.ensemble import dihedral_ensemble
from hsikit.inference.tiling import TileGrid
from hsikit.io.base import CubeReader, CubeWriter

OutputKind = Literal["regression", "logits", "probabilities", "classes"]
MergeMode = Literal["probabilities", "logits"]
Source = str | os.PathLike | Cube | CubeReader
Normalizer = Callable[[torch.Tensor], torch.Tensor]

OUTPUT_KINDS: tuple[str, ...] = ("regression", "logits", "probabilities", "classes")
MERGE_MODES: tuple[str, ...] = ("probabilities", "logits")

#: nodata value written in float outputs (probabilities, logits, regression)
FLOAT_NODATA = float("nan")


# ---------------------------------------------------------------------- in-memory reader / writer
class CubeArrayReader(CubeReader):
    """A :class:`CubeReader` over a :class:`Cube` that is already in memory (or memory-mapped).

    Windows are sliced from ``cube.data`` without copying the rest; the nodata
    mask of a window comes from the cube's explicit mask or its nodata value.
    """

    def __init__(self, cube: Cube) -> None:
        self.cube = cube
        self.path = Path(str(cube.metadata.get("source", "<memory>")))
        self.shape = cube.shape
        self.dtype = cube.dtype
        self.wavelengths = cube.wavelengths
        self.fwhm = cube.fwhm
        self.band_names = cube.band_names
        self.crs = cube.crs
        self.transform = cube.transform
        self.nodata = cube.nodata
        self.metadata = dict(cube.metadata)

    def read_array(self, window: Window | None = None, bands: list[int] | None = None) -> np.ndarray:
        """Pixels of ``window`` as a ``(bands, h, w)`` array (a view when possible)."""
        data = self.cube.data if bands is None else self.cube.data[list(bands)]
        if window is None:
            return np.asarray(data)
        rows, cols = window.slices
        return np.asarray(data[:, rows, cols])

    def read_mask(self, window: Window) -> np.ndarray:
        """``(h, w)`` bool, True where the cube marks the pixel as nodata."""
        return self.cube.window(window).nodata_mask


class _MemoryWriter(CubeWriter):
    """Collects the output in a numpy array (used when ``output`` is None)."""

    def __init__(self, shape: tuple[int, int, int], dtype: np.dtype) -> None:
        self.path = Path("<memory>")
        self.shape = shape
        self.array: np.ndarray | None = np.empty(shape, dtype=dtype)

    def write_window(self, array: np.ndarray, window: Window) -> None:
        assert self.array is not None, "write after abort"
        rows, cols = window.slices
        self.array[:, rows, cols] = array

    def close(self) -> None:
        """Nothing to finish: the array is complete."""

    def abort(self) -> None:
        self.array = None


# ---------------------------------------------------------------------- reading strips
def _as_reader(source: Source) -> tuple[CubeReader, bool]:
    """The reader for ``source`` and whether this module opened it (and must close it)."""
    if isinstance(source, CubeReader):
        return source, False
    if isinstance(source, Cube):
        return CubeArrayReader(source), False
    if isinstance(source, (str, os.PathLike)):
        from hsikit.io import open_reader  # the format modules load rasterio/spectral lazily

        return open_reader(source), True
    raise ConfigError(
        f"predict_scene cannot read a {type(source).__name__}; pass a file path, a hsikit Cube "
        "or a hsikit.io CubeReader (wrap a numpy (bands, H, W) array as Cube(array))"
    )


def _window_nodata_mask(reader: CubeReader, window: Window, block: np.ndarray) -> np.ndarray | None:
    """``(h, w)`` bool, True where the reader marks nodata, every band equals its nodata value, or a value is NaN/Inf.

    None when the reader has no way to mark a pixel of this block invalid.
    """
    read_mask = getattr(reader, "read_mask", None)
    mask = None
    if callable(read_mask):
        mask = np.array(read_mask(window), dtype=bool)
    elif reader.nodata is not None and not np.isnan(reader.nodata):
        mask = (block == reader.nodata).all(axis=0)  # a value the dtype cannot hold matches nothing
    if block.dtype.kind == "f":
        # a NaN or Inf in any band makes the band sum non-finite; pixels whose sum merely
        # overflowed are checked again band by band
        nonfinite = ~np.isfinite(block.sum(axis=0))
        if nonfinite.any():
            nonfinite[nonfinite] = ~np.isfinite(block[:, nonfinite]).all(axis=0)
            mask = nonfinite if mask is None else mask | nonfinite
    return mask


class _StripReader:
    """Reads the strips of a grid, padded, into reused buffers.

    Strip ``i`` goes to buffer ``i % buffers``: with two buffers a background
    thread can fill the next strip while the current one is in use. Windows are
    read in column chunks of at most ``chunk_bytes`` so that no large temporary
    array is allocated per strip.

    Strips are float32, or float64 for float64 sources.
    """

    def __init__(self, reader: CubeReader, grid: TileGrid, buffers: int, chunk_bytes: int = 16 * 2**20) -> None:
        self.reader = reader
        self.grid = grid
        dtype = np.float64 if np.dtype(reader.dtype) == np.float64 else np.float32
        shape = (reader.bands, grid.tile_height, grid.canvas_width)
        self.strips = [np.empty(shape, dtype=dtype) for _ in range(buffers)]
        self.masks = [np.empty(shape[1:], dtype=bool) for _ in range(buffers)]
        self.chunk_bytes = chunk_bytes

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Strip ``index``: canvas rows from ``grid.row_starts[index]``, ``tile_height`` of them.

        Returns:
            ``(bands, tile_height, canvas_width)`` pixels and ``(tile_height, canvas_width)`` bool nodata mask.
        """
        grid, reader = self.grid, self.reader
        strip, mask = self.strips[index % len(self.strips)], self.masks[index % len(self.masks)]
        first = grid.row_starts[index] - grid.pad_top  # image row of the strip's first canvas row
        top, bottom = max(first, 0), min(first + grid.tile_height, grid.height)
        rows, offset = bottom - top, top - first
        row_bytes = reader.bands * rows * max(np.dtype(reader.dtype).itemsize, strip.itemsize)
        step = max(1, self.chunk_bytes // max(row_bytes, 1))
        mask[:] = False
        for col in range(0, grid.width, step):
            window = Window(top, col, rows, min(step, grid.width - col))
            block = reader.read_array(window)
            expected = (reader.bands, window.height, window.width)
            if block.shape != expected:
                raise ShapeMismatchError(
                    f"{reader.path}: reading window {window} gave an array of shape {block.shape}, expected "
                    f"{expected}; the reader's shape {reader.shape} does not match its data"
                )
            columns = slice(grid.pad_left + col, grid.pad_left + col + window.width)
            strip[:, offset : offset + rows, columns] = block
            block_mask = _window_nodata_mask(reader, window, block)
            if block_mask is not None:
                mask[offset : offset + rows, columns] = block_mask
        grid.fill_padding(strip, offset, rows)
        grid.fill_padding(mask, offset, rows)
        return strip, mask


def _strips(reader: CubeReader, grid: TileGrid, prefetch: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield every strip in order; with ``prefetch`` the next one is read in a thread meanwhile.

    A yielded strip stays valid until the next one is requested.
    """
    count = len(grid.row_starts)
    strips = _StripReader(reader, grid, buffers=2 if prefetch else 1)
    if not prefetch:
        for index in range(count):
            yield strips.read(index)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsikit-read") as pool:
        pending = pool.submit(strips.read, 0)
        for index in range(count):
            strip = pending.result()
            if index + 1 < count:  # its buffer held strip index - 1, which the caller has finished with
                pending = pool.submit(strips.read, index + 1)
            yield strip


# ---------------------------------------------------------------------- model
class _TileRunner:
    """Runs the model (optionally self-ensembled) on numpy tile batches."""

    def __init__(
        self,
        model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
        device: str | torch.device,
        softmax: bool,
        ensemble: bool,
        normalizer: Normalizer | None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model
        self.softmax = softmax
        self.ensemble = ensemble
        self.normalizer = normalizer
        self.input_dtype = torch.float32
        self.was_training: bool | None = None
        self._batch_buffer: torch.Tensor | None = None  # reused: a fresh large tensor per batch costs page faults
        if isinstance(model, torch.nn.Module):
            self.was_training = model.training
            model.to(self.device).eval()
            parameter = next(iter(model.parameters()), None)
            if parameter is not None and parameter.dtype.is_floating_point:
                self.input_dtype = parameter.dtype

    def restore(self) -> None:
        """Put the model back in training mode if it was in it."""
        if isinstance(self.model, torch.nn.Module) and self.was_training:
            self.model.train()

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        output = self.model(batch)
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ShapeMismatchError(
                f"the model must return a (B, K, h, w) tensor for a (B, C, h, w) input; it returned {shape} "
                f"for {tuple(batch.shape)}. Wrap models with several outputs so that they return one tensor"
            )
        if output.shape[0] != batch.shape[0] or output.shape[-2:] != batch.shape[-2:]:
            raise ShapeMismatchError(
                f"tiled inference needs an output of the input's batch and spatial size: input "
                f"{tuple(batch.shape)}, output {tuple(output.shape)}. Models that change resolution "
                "cannot be blended tile by tile"
            )
        return torch.softmax(output, dim=1) if self.softmax else output

    def _tile_buffer(self, shape: tuple[int, int, int, int], dtype: torch.dtype) -> torch.Tensor:
        """A ``shape`` tensor for the next batch, reusing the previous one's memory when it fits."""
        buffer = self._batch_buffer
        if buffer is None or buffer.dtype != dtype or buffer.shape[1:] != shape[1:] or buffer.shape[0] < shape[0]:
            buffer = self._batch_buffer = torch.empty(shape, dtype=dtype)
        return buffer[: shape[0]]

    def __call__(
        self, strip: torch.Tensor, mask: torch.Tensor | None, col_starts: Sequence[int], width: int
    ) -> torch.Tensor:
        """Run the model on the tiles of ``strip`` starting at ``col_starts``.

        Args:
            strip: ``(C, h, canvas_width)`` float32 strip (CPU).
            mask: ``(h, canvas_width)`` bool nodata mask of the strip, or None when nothing is masked.
            col_starts: first canvas column of each tile of the batch.
            width: tile width.

        Returns:
            ``(B, K, h, width)`` outputs on the device, float32 (float64 when the
            model computes in float64; the blending then accumulates in float64).
        """
        with torch.inference_mode():
            tiles = self._tile_buffer((len(col_starts), strip.shape[0], strip.shape[1], width), strip.dtype)
            torch.stack([strip[:, :, c : c + width] for c in col_starts], out=tiles)
            batch = tiles.to(self.device, dtype=self.input_dtype)
            invalid = None
            if mask is not None:
                invalid = torch.stack([mask[:, c : c + width] for c in col_starts]).to(self.device)[:, None]
                batch = batch.masked_fill(invalid, 0.0)
            if self.normalizer is not None:
                batch = self.normalizer(batch)
                if invalid is not None:  # nodata pixels enter the model as 0 after normalisation too
                    batch = batch.masked_fill(invalid, 0.0)
            output = dihedral_ensemble(self._forward, batch) if self.ensemble else self._forward(batch)
            return output.to(torch.float64 if output.dtype == torch.float64 else torch.float32)


# ---------------------------------------------------------------------- blending band
class _RowBand:
    """Weighted sums of tile outputs over the rows of the current strip, on the model's device.

    The band is ``(K, tile_height, canvas_width)``; its row 0 is the first row of
    the current strip. Two buffers alternate so that moving the band down needs
    no allocation. The weight sums need no buffer: they are the outer product of
    :meth:`TileGrid.weight_sums`.
    """

    def __init__(self, grid: TileGrid, channels: int, dtype: torch.dtype, device: torch.device) -> None:
        self.grid = grid
        self.device = device
        self.dtype = dtype
        shape = (channels, grid.tile_height, grid.canvas_width)
        self.buffers = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(2)]
        self.current = 0
        row_sums, col_sums = grid.weight_sums()
        self.row_sums = torch.from_numpy(row_sums).to(device, dtype)
        self.col_sums = torch.from_numpy(col_sums).to(device, dtype)
        self._weights: dict[tuple[bool, bool, bool, bool], torch.Tensor] = {}

    def _tile_weights(self, row_start: int, col_start: int) -> torch.Tensor:
        key = self.grid.border_key(row_start, col_start)
        tensor = self._weights.get(key)
        if tensor is None:
            tensor = torch.from_numpy(self.grid.weights(row_start, col_start)).to(self.device, self.dtype)
            self._weights[key] = tensor
        return tensor

    def add(self, output: torch.Tensor, row_start: int, col_start: int) -> None:
        """Add one tile output ``(K, tile_height, tile_width)`` at its canvas position."""
        weights = self._tile_weights(row_start, col_start)
        target = self.buffers[self.current][:, :, col_start : col_start + self.grid.tile_width]
        target.addcmul_(output, weights)

    def take(self, rows: int, row_start: int) -> torch.Tensor:
        """The first ``rows`` rows of the strip at canvas row ``row_start``, finished.

        Returns the weighted mean ``(K, rows, canvas_width)``; the band moves down by ``rows``.
        """
        band = self.buffers[self.current]
        weight_sums = self.row_sums[row_start : row_start + rows, None] * self.col_sums[None, :]
        merged = band[:, :rows] / weight_sums
        kept = self.grid.tile_height - rows
        following = self.buffers[1 - self.current]
        following[:, :kept].copy_(band[:, rows:])
        following[:, kept:].zero_()
        self.current = 1 - self.current
        return merged


# ---------------------------------------------------------------------- outputs
def argmax_channels(values: np.ndarray, dtype: np.dtype | type = np.int64) -> np.ndarray:
    """Index of the largest channel of a ``(K, h, w)`` array, ``(h, w)`` of ``dtype`` (the first one on ties).

    For a few classes a running comparison is faster than ``argmax(axis=0)``,
    which reduces over the outermost, slowest-varying axis.
    """
    if values.shape[0] > 16:
        return values.argmax(axis=0).astype(dtype, copy=False)
    best = values[0].copy()
    index = np.zeros(values.shape[1:], dtype=dtype)
    better = np.empty(values.shape[1:], dtype=bool)
    for channel in range(1, values.shape[0]):
        np.greater(values[channel], best, out=better)
        np.maximum(best, values[channel], out=best)
        np.copyto(index, channel, where=better, casting="unsafe")
    return index


def class_dtype_and_nodata(classes: int) -> tuple[np.dtype, int]:
    """Smallest unsigned dtype holding labels ``0..classes-1`` plus a nodata value (its maximum)."""
    if classes <= 255:
        return np.dtype(np.uint8), 255
    if classes <= 65535:
        return np.dtype(np.uint16), 65535
    raise ConfigError(f"{classes} classes do not fit a uint16 class raster; reduce the model's output channels")


class _Outputs:
    """Creates the writers once the model's channel count is known and converts merged rows for them."""

    def __init__(
        self,
        reader: CubeReader,
        grid: TileGrid,
        output: str | os.PathLike | None,
        kind: str,
        merge: str,
        probabilities_output: str | os.PathLike | None,
        class_names: Sequence[str] | None,
        output_format: str | None,
        writer_options: Mapping[str, Any] | None,
        first_label: int = 0,
    ) -> None:
        if first_label < 0:
            raise ConfigError(f"first_label={first_label} must be 0 or positive")
        self.first_label = int(first_label)
        self.reader = reader
        self.grid = grid
        self.output = output
        self.kind = kind
        self.merge = merge
        self.probabilities_output = probabilities_output
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        self.output_format = output_format
        self.writer_options = dict(writer_options or {})
        self.main: CubeWriter | None = None
        self.probabilities: CubeWriter | None = None
        self.main_nodata: float | None = None

    def _writer(
        self, path: str | os.PathLike | None, bands: int, dtype: np.dtype, nodata: float, band_names: list[str] | None
    ) -> CubeWriter:
        shape = (bands, self.grid.height, self.grid.width)
        if path is None:
            return _MemoryWriter(shape, dtype)
        from hsikit.io import create_writer

        return create_writer(
            path,
            shape,
            dtype,
            crs=self.reader.crs,
            transform=self.reader.transform,
            wavelengths=None,
            band_names=band_names,
            nodata=nodata,
            format=self.output_format,
            **self.writer_options,
        )

    def _names(self, channels: int, prefix: str) -> list[str]:
        if self.class_names is not None:
            if len(self.class_names) != channels:
                raise ShapeMismatchError(
                    f"{len(self.class_names)} class names for a model with {channels} output channels; "
                    "pass one name per output channel"
                )
            return [f"{prefix}{name}" for name in self.class_names]
        return [f"{prefix}{index}" for index in range(channels)]

    def open(self, channels: int) -> None:
        """Create the output writers for a model with ``channels`` output channels."""
        if self.kind in ("classes", "probabilities") and channels < 2:
            raise ShapeMismatchError(
                f"output_kind={self.kind!r} needs a model with at least 2 output channels (one per class); "
                f"this one has {channels}. Use output_kind='regression' for single-channel outputs"
            )
        if self.kind == "classes":
            dtype, nodata = class_dtype_and_nodata(channels + self.first_label)
            self.main_nodata = nodata
            self.main = self._writer(self.output, 1, dtype, nodata, ["class"])
            if self.probabilities_output is not None:
                names = self._names(channels, "probability_")
                self.probabilities = self._writer(
                    self.probabilities_output, channels, np.dtype(np.float32), FLOAT_NODATA, names
                )
        else:
            self.main_nodata = FLOAT_NODATA
            names = self._names(channels, "probability_") if self.kind == "probabilities" else None
            self.main = self._writer(self.output, channels, np.dtype(np.float32), FLOAT_NODATA, names)

    def write(self, merged: torch.Tensor, mask: np.ndarray, image_row: int) -> None:
        """Write merged values ``(K, rows, W)`` (on the model's device) with nodata ``mask`` ``(rows, W)``."""
        assert self.main is not None
        window = Window(image_row, 0, merged.shape[1], merged.shape[2])
        has_nodata = bool(mask.any())
        if self.kind == "classes":
            dtype, nodata = class_dtype_and_nodata(merged.shape[0] + self.first_label)
            if merged.device.type == "cpu":  # torch's argmax over the outer axis is slow on CPU
                labels = argmax_channels(merged.numpy(), dtype)
            else:
                labels = merged.argmax(dim=0).cpu().numpy().astype(dtype)
            if self.first_label:
                labels += dtype.type(self.first_label)
            if has_nodata:
                labels[mask] = nodata
            self.main.write_window(labels[np.newaxis], window)
            if self.probabilities is not None:
                probabilities = torch.softmax(merged, dim=0) if self.merge == "logits" else merged
                self._write_float(self.probabilities, probabilities, mask if has_nodata else None, window)
            return
        self._write_float(self.main, merged, mask if has_nodata else None, window)

    @staticmethod
    def _write_float(writer: CubeWriter, values: torch.Tensor, mask: np.ndarray | None, window: Window) -> None:
        array = values.to(device="cpu", dtype=torch.float32).numpy()
        if mask is not None:
            array[:, mask] = FLOAT_NODATA
        writer.write_window(np.ascontiguousarray(array), window)

    def close(self) -> Cube | Path:
        """Finish every file; return the main output (a Cube when it was kept in memory, else its path)."""
        for writer in (self.probabilities, self.main):
            if writer is not None:
                writer.close()
        if self.output is not None:
            return Path(self.output)
        assert isinstance(self.main, _MemoryWriter) and self.main.array is not None
        band_names = ["class"] if self.kind == "classes" else None
        if self.kind == "probabilities":
            band_names = self._names(self.main.array.shape[0], "probability_")
        return Cube(
            self.main.array,
            band_names=band_names,
            crs=self.reader.crs,
            transform=self.reader.transform,
            nodata=self.main_nodata,
            metadata={"source": str(self.reader.path), "output_kind": self.kind},
            nonfinite="ignore",
        )

    def abort(self) -> None:
        """Discard every partial output."""
        for writer in (self.main, self.probabilities):
            if writer is not None:
                writer.abort()


# ---------------------------------------------------------------------- public API
def predict_scene(
    model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    source: Source,
    output: str | os.PathLike | None = None,
    *,
    tile: int | tuple[int, int] = 512,
    overlap: int = 64,
    margin: int | None = None,
    padding: str = "reflect",
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    output_kind: str = "regression",
    merge: str = "probabilities",
    blend: str = "cosine",
    ensemble: bool = False,
    normalizer: Normalizer | None = None,
    probabilities_output: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    first_label: int = 0,
    output_format: str | None = None,
    writer_options: Mapping[str, Any] | None = None,
    prefetch: bool = True,
    progress: bool = True,
) -> Cube | Path:
    """Run ``model`` over a whole scene tile by tile and blend the tiles seamlessly.

    Args:
        model: maps ``(B, bands, h, w)`` float tensors to ``(B, K, h, w)``
            (a ``torch.nn.Module`` is moved to ``device`` and put in eval mode
            for the run; inputs take the dtype of its parameters).
        source: a file path (any format :func:`hsikit.io.open_reader` reads), a
            :class:`~hsikit.io.base.CubeReader`, or a :class:`~hsikit.cube.Cube`.
        output: where to write the result (GeoTIFF, ENVI... chosen by extension or
            ``output_format``); None keeps it in memory and returns a Cube.
        tile: model input size in pixels, an int or ``(rows, cols)``.
        overlap: minimum overlap of neighbouring tiles in pixels.
        margin: pixels discarded at inner tile edges (default ``overlap // 4``);
            at least the model's receptive-field radius gives results equal to
            whole-image inference. See :mod:`hsikit.inference.tiling`.
        padding: image border extension, ``"reflect"`` (default), ``"replicate"``,
            ``"zeros"`` or ``"none"``.
        batch_size: tiles per model call (tiles of one strip are batched together).
        device: torch device for the model (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        output_kind: ``"regression"`` (raw outputs, float32), ``"logits"`` (raw
            outputs merged as logits, float32), ``"probabilities"`` (softmax over
            channels per tile, merged, float32) or ``"classes"`` (argmax of the
            merged probabilities or logits, uint8/uint16).
        merge: for ``"classes"``: merge ``"probabilities"`` (default) or ``"logits"``.
        blend: ``"cosine"`` (default), ``"linear"`` or ``"mean"`` weights.
        ensemble: average the 8 flips/rotations of every tile (the model must keep the spatial size).
        normalizer: applied to every batch of input tiles, a ``(B, bands, h, w)``
            tensor on ``device``; must treat each tile independently.
        probabilities_output: with ``output_kind="classes"``, also write the merged
            probabilities (float32, one band per class) to this path.
        class_names: one name per output channel, used for band names.
        first_label: value written for output channel 0 in class rasters; channel k
            is written as ``first_label + k``. hsikit's label maps keep 0 for
            "unlabelled" and number classes from 1, so models trained on them are
            exported with ``label_offset = 1`` and should be run with ``first_label=1``.
        output_format: writer format when the extension is not enough (e.g. ``"envi"``).
        writer_options: extra keyword arguments for :func:`hsikit.io.create_writer`.
        prefetch: read the next strip in a background thread while the model runs.
        progress: show a tqdm progress bar over tiles.

    Nodata: pixels that the source marks as nodata, or that hold NaN/Inf, enter
    the model as 0 and are written as nodata (NaN in float outputs, the largest
    value of the dtype — 255 or 65535 — in class rasters).

    Returns:
        The result as a :class:`Cube` ``(K or 1, H, W)`` with the source's CRS and
        transform when ``output`` is None, else the path of the written file.
    """
    if output_kind not in OUTPUT_KINDS:
        raise ConfigError(f"output_kind={output_kind!r} is not known; use one of {', '.join(OUTPUT_KINDS)}")
    if merge not in MERGE_MODES:
        raise ConfigError(f"merge={merge!r} is not known; use one of {', '.join(MERGE_MODES)}")
    if probabilities_output is not None and output_kind != "classes":
        raise ConfigError(
            f"probabilities_output is written alongside a class map; it needs output_kind='classes', "
            f"not {output_kind!r} (output_kind='probabilities' writes them as the main output)"
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be at least 1")
    from tqdm.auto import tqdm

    reader, owns_reader = _as_reader(source)
    outputs: _Outputs | None = None
    runner: _TileRunner | None = None
    try:
        grid = TileGrid.create(reader.height, reader.width, tile, overlap, margin, padding, blend)
        softmax = output_kind == "probabilities" or (output_kind == "classes" and merge == "probabilities")
        runner = _TileRunner(model, device, softmax, ensemble, normalizer)
        outputs = _Outputs(
            reader, grid, output, output_kind, merge, probabilities_output, class_names, output_format, writer_options,
            first_label,
        )
        band: _RowBand | None = None
        image_rows = slice(grid.pad_top, grid.pad_top + grid.height)
        image_cols = slice(grid.pad_left, grid.pad_left + grid.width)
        with tqdm(total=grid.tile_count, disable=not progress, unit="tile", desc="predict") as bar:
            for strip_index, (strip, mask) in enumerate(_strips(reader, grid, prefetch)):
                row_start = grid.row_starts[strip_index]
                strip_tensor = torch.from_numpy(strip)
                mask_tensor = torch.from_numpy(mask) if mask.any() else None
                for first in range(0, len(grid.col_starts), batch_size):
                    col_starts = grid.col_starts[first : first + batch_size]
                    results = runner(strip_tensor, mask_tensor, col_starts, grid.tile_width)
                    if band is None:
                        band = _RowBand(grid, results.shape[1], results.dtype, results.device)
                        outputs.open(results.shape[1])
                    for result, col_start in zip(results, col_starts):
                        band.add(result, row_start, col_start)
                    bar.update(len(col_starts))
                assert band is not None
                is_last = strip_index + 1 == len(grid.row_starts)
                next_start = grid.canvas_height if is_last else grid.row_starts[strip_index + 1]
                finished = band.take(next_start - row_start, row_start)
                # keep the finished canvas rows that belong to the image
                top = max(image_rows.start - row_start, 0)
                bottom = min(image_rows.stop - row_start, next_start - row_start)
                if bottom > top:
                    outputs.write(
                        finished[:, top:bottom, image_cols],
                        mask[top:bottom, image_cols],
                        row_start + top - grid.pad_top,
                    )
        return outputs.close()
    except BaseException:
        if outputs is not None:
            outputs.abort()
        raise
    finally:
        if runner is not None:
            runner.restore()
        if owns_reader:
            reader.close()


__all__ = ["CubeArrayReader", "OUTPUT_KINDS", "MERGE_MODES", "argmax_channels", "class_dtype_and_nodata", "predict_scene"]
