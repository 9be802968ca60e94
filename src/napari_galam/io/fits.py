"""The lazy FITS layer: find a file's HDUs from its headers, read their data on demand.

:func:`scan_fits` (:mod:`napari_galam.io.fits_scan`, re-exported here) reads and checks
every header of a FITS file (plain or gzipped) and where each
HDU's data start, without reading any data; a :class:`DiskArray` is one image HDU
located on disk. It memory-maps uncompressed data whose bytes are the values, and
otherwise (gzipped files, BSCALE/BZERO/BLANK scaling) serves a dask array whose chunks
are slabs of whole planes read by :class:`SlabReader`. Gzip streams cannot seek
backwards, so :func:`read_gzip` keeps a few streams open and a cache of decompressed
slabs (:func:`close_gzip_streams` empties both).

The survey layouts built on this layer are in :mod:`napari_galam.io.cubes` (IFU cubes)
and :mod:`napari_galam.io.narrowband` (narrow-band stacks); what the headers say about
units, wavelengths and sky coordinates is read in :mod:`napari_galam.io.headers`.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.io.fits_scan import (
    BITPIX_DTYPES,
    GZIP_MAX_RATIO,
    GZIP_RATIO_FLOOR,
    MAX_NAXIS,
    FitsScan,
    HduInfo,
    check_file,
    clear_scan_cache,
    gzip_isize,
    is_gzip,
    numpy_shape,
    padded_size,
    scan_fits,
)

__all__ = [
    "BITPIX_DTYPES",
    "CHUNK_BYTES",
    "GZIP_CACHE_BYTES",
    "HduInfo",
    "FitsScan",
    "DiskArray",
    "SlabReader",
    "check_file",
    "is_gzip",
    "gzip_isize",
    "numpy_shape",
    "scan_fits",
    "clear_scan_cache",
    "GZIP_MAX_RATIO",
    "GZIP_RATIO_FLOOR",
    "MAX_NAXIS",
    "padded_size",
    "read_gzip",
    "close_gzip_streams",
    "check_not_truncated",
    "map_elementwise",
    "variance_from_sigma",
    "variance_from_ivar",
]

#: Target size of one dask chunk (a slab of whole planes).
CHUNK_BYTES = 64 * 1024**2

# --------------------------------------------------------------------------------------
# Arrays on disk


@dataclass(frozen=True)
class DiskArray:
    """An image HDU's data, located on disk, read only when asked."""

    path: Path
    offset: int
    shape: tuple[int, ...]
    raw_dtype: np.dtype
    gzipped: bool
    bscale: float = 1.0
    bzero: float = 0.0
    blank: int | None = None
    label: str = ""

    @classmethod
    def from_hdu(cls, scan: FitsScan, hdu: HduInfo) -> DiskArray:
        """Locate the data of an image HDU of ``scan``.

        Raises
        ------
        GalamInputError
            For tile-compressed HDUs and unknown ``BITPIX`` values.
        """
        if hdu.compressed:
            raise GalamInputError(
                f"{scan.path}: HDU {hdu.name} is tile-compressed (fpack), which cannot be "
                "read lazily; decompress the file first (funpack) and open the result."
            )
        bitpix = int(hdu.header.get("BITPIX", 0))
        if bitpix not in BITPIX_DTYPES:
            raise GalamInputError(
                f"{scan.path}: HDU {hdu.name} has BITPIX = {bitpix}; expected one of "
                f"{sorted(BITPIX_DTYPES)}."
            )
        blank = hdu.header.get("BLANK") if bitpix > 0 else None
        try:
            bscale = float(hdu.header.get("BSCALE", 1.0))
            bzero = float(hdu.header.get("BZERO", 0.0))
            blank = int(blank) if blank is not None else None
        except (TypeError, ValueError) as exc:
            raise GalamInputError(
                f"{scan.path}: HDU {hdu.name} has BSCALE = {hdu.header.get('BSCALE')!r}, "
                f"BZERO = {hdu.header.get('BZERO')!r}, BLANK = {hdu.header.get('BLANK')!r}; "
                "expected numbers."
            ) from exc
        if not (np.isfinite(bscale) and np.isfinite(bzero)) or bscale == 0.0:
            raise GalamInputError(
                f"{scan.path}: HDU {hdu.name} has BSCALE = {bscale}, BZERO = {bzero}; "
                "expected finite numbers and a non-zero BSCALE."
            )
        return cls(
            path=scan.path,
            offset=hdu.data_offset,
            shape=hdu.shape,
            raw_dtype=np.dtype(BITPIX_DTYPES[bitpix]),
            gzipped=scan.gzipped,
            bscale=bscale,
            bzero=bzero,
            blank=blank,
            label=hdu.name,
        )

    @property
    def nbytes(self) -> int:
        """Size of the data on disk in bytes (without padding)."""
        return int(np.prod(self.shape)) * self.raw_dtype.itemsize

    @property
    def scaled(self) -> bool:
        """True when BSCALE, BZERO or BLANK change the stored values."""
        return self.bscale != 1.0 or self.bzero != 0.0 or self.blank is not None

    @property
    def dtype(self) -> np.dtype:
        """The native-endian dtype of the values as read (after scaling)."""
        if not self.scaled:
            return self.raw_dtype.newbyteorder("=")
        if self.raw_dtype.kind in "iu" and self.bscale == 1.0 and self.blank is None:
            return np.dtype(np.int64)
        return np.dtype(np.float32 if self.raw_dtype.itemsize <= 2 else np.float64)

    def end(self) -> int:
        """Byte offset just past the data in the (decompressed) file."""
        return self.offset + self.nbytes

    def _scale(self, raw: NDArray[Any]) -> NDArray[Any]:
        if not self.scaled:
            return raw
        if self.dtype.kind == "i":
            return raw.astype(np.int64) + int(self.bzero)
        out = raw.astype(self.dtype)
        if self.blank is not None:
            out[raw == self.blank] = np.nan
        return out * self.dtype.type(self.bscale) + self.dtype.type(self.bzero)

    def read_planes(self, start: int, stop: int) -> NDArray[Any]:
        """Planes ``start:stop`` along axis 0, scaled, native-endian.

        Raises
        ------
        GalamInputError
            When the file ends before them (truncated file).
        """
        plane = int(np.prod(self.shape[1:])) * self.raw_dtype.itemsize
        count = (stop - start) * plane
        if self.gzipped:
            buf = read_gzip(self.path, self.offset, self.offset + start * plane, count)
        else:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset + start * plane)
                buf = fh.read(count)
        if len(buf) != count:
            raise GalamInputError(
                f"{self.path}: HDU {self.label} ends early (truncated file): wanted "
                f"{count} bytes at plane {start}, got {len(buf)}."
            )
        raw = np.frombuffer(buf, dtype=self.raw_dtype).reshape((stop - start, *self.shape[1:]))
        return self._scale(raw).astype(self.dtype, copy=False)

    def load(self) -> NDArray[Any]:
        """Read the whole array into memory (native byte order, writable)."""
        if self.gzipped:
            out = self.read_planes(0, self.shape[0])
        else:
            out = self._scale(np.asarray(self._memmap()))
        out = np.ascontiguousarray(out, dtype=self.dtype)
        return out if out.flags.writeable else out.copy()

    def column(self, y: int, x: int) -> NDArray[Any]:
        """The values along axis 0 at pixel ``(y, x)`` (one spaxel's spectrum)."""
        if self.gzipped:
            return np.asarray(self.as_dask()[:, y, x])
        return self._scale(np.array(self._memmap()[:, y, x])).astype(self.dtype, copy=False)

    def _memmap(self) -> np.memmap:
        return np.memmap(
            self.path, dtype=self.raw_dtype, mode="r", offset=self.offset, shape=self.shape
        )

    def _chunks(self) -> tuple[int, ...]:
        plane = max(1, int(np.prod(self.shape[1:])) * self.raw_dtype.itemsize)
        slab = int(max(1, min(self.shape[0], CHUNK_BYTES // plane)))
        return (slab, *self.shape[1:])

    def _token(self) -> str:
        status = self.path.stat()
        key = f"{self.path.resolve()}|{status.st_mtime_ns}|{status.st_size}|{self.offset}"
        return "galam-" + hashlib.sha1(key.encode()).hexdigest()[:16]

    def as_dask(self) -> Any:
        """A dask array over the data, chunked in slabs of whole planes."""
        import dask.array as da

        source: Any = SlabReader(self) if (self.gzipped or self.scaled) else self._memmap()
        return da.from_array(
            source,
            chunks=self._chunks(),
            asarray=True,
            lock=False,
            name=self._token(),
            meta=np.empty((0,) * len(self.shape), dtype=source.dtype),
        )

    def lazy(self) -> Any:
        """A memmap when the bytes on disk are the values, else a dask array."""
        if not self.gzipped and not self.scaled:
            return self._memmap()
        return self.as_dask()


_GZIP_LOCK = threading.Lock()
_GZIP_STREAMS: list[tuple[tuple[str, int], gzip.GzipFile]] = []  # least recent first
_GZIP_MAX_STREAMS = 8
_GZIP_SLABS: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

#: Memory budget for decompressed slabs of gzipped cubes kept for re-use (bytes).
GZIP_CACHE_BYTES = 1024**3


def read_gzip(path: Path, hdu_offset: int, position: int, count: int) -> bytes:
    """Read ``count`` bytes at ``position`` of the decompressed stream of ``path``.

    A gzip stream can only be decompressed forwards, so open streams are kept (at most
    eight, least recently used closed first) and a read continues the stream of that
    file that stopped closest before it: reading slabs in file order costs one pass
    over the file instead of one pass per slab. Decompressed
    slabs are kept, least recently used dropped first, up to :data:`GZIP_CACHE_BYTES`,
    so that clicking spaxel after spaxel of a gzipped CALIFA or MaNGA cube decompresses
    it once. Reads are serialised by a lock (zlib is CPU-bound anyway).
    """
    file_key = (str(path), path.stat().st_mtime_ns)
    slab_key = (*file_key, hdu_offset, position, count)
    with _GZIP_LOCK:
        cached = _GZIP_SLABS.pop(slab_key, None)
        if cached is not None:
            _GZIP_SLABS[slab_key] = cached
            return cached
        # the open stream of this file closest before `position`, else a new one
        usable = [
            (stream.tell(), i)
            for i, (k, stream) in enumerate(_GZIP_STREAMS)
            if k == file_key and stream.tell() <= position
        ]
        if usable:
            stream = _GZIP_STREAMS.pop(max(usable)[1])[1]
        else:
            stream = gzip.open(path, "rb")
        _GZIP_STREAMS.append((file_key, stream))
        while len(_GZIP_STREAMS) > _GZIP_MAX_STREAMS:
            _GZIP_STREAMS.pop(0)[1].close()
        try:
            stream.seek(position)
            buf = stream.read(count)
        except (OSError, EOFError) as exc:
            _GZIP_STREAMS.remove((file_key, stream))
            stream.close()
            raise GalamInputError(f"{path}: damaged or truncated gzip file ({exc}).") from exc
        if len(buf) == count and count <= GZIP_CACHE_BYTES // 4:
            _GZIP_SLABS[slab_key] = buf
            total = sum(len(b) for b in _GZIP_SLABS.values())
            while total > GZIP_CACHE_BYTES and _GZIP_SLABS:
                _, dropped = _GZIP_SLABS.popitem(last=False)
                total -= len(dropped)
        return buf


def close_gzip_streams() -> None:
    """Close the streams kept open for gzipped cubes and drop their cached slabs."""
    with _GZIP_LOCK:
        _GZIP_SLABS.clear()
        while _GZIP_STREAMS:
            _GZIP_STREAMS.pop()[1].close()


class SlabReader:
    """Array-like that reads whole wavelength planes on indexing (for dask)."""

    def __init__(self, source: DiskArray) -> None:
        self.source = source
        self.shape = source.shape
        self.ndim = len(source.shape)
        self.dtype = source.dtype

    def __getitem__(self, key: Any) -> NDArray[Any]:
        key = key if isinstance(key, tuple) else (key,)
        first = key[0] if key else slice(None)
        rest = key[1:]
        if isinstance(first, slice):
            start, stop, step = first.indices(self.shape[0])
            if stop <= start:
                return np.empty((0, *self.shape[1:]), dtype=self.dtype)[(slice(None), *rest)]
            block = self.source.read_planes(start, stop)
            return block[(slice(None, None, step), *rest)]
        index = int(first) % self.shape[0]
        return self.source.read_planes(index, index + 1)[(0, *rest)]


# --------------------------------------------------------------------------------------
# Element-wise conversions, lazy for dask arrays


def map_elementwise(func: Callable[..., NDArray[Any]], dtype: Any, *arrays: Any) -> Any:
    """Apply an element-wise numpy function lazily (dask) or now (numpy)."""
    if any(hasattr(a, "dask") for a in arrays):
        import dask.array as da

        return da.map_blocks(func, *arrays, dtype=dtype)
    return func(*arrays)


def variance_from_sigma(err: NDArray[Any]) -> NDArray[np.float32]:
    """Variance from a 1-sigma error: ``err**2`` in float32."""
    err = np.asarray(err, dtype=np.float32)
    return err * err


def variance_from_ivar(ivar: NDArray[Any]) -> NDArray[np.float32]:
    """Variance from an inverse variance: ``1 / ivar``, infinite where ``ivar <= 0``."""
    ivar = np.asarray(ivar, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ivar > 0, 1.0 / ivar, np.float32(np.inf)).astype(np.float32)


def check_not_truncated(scan: FitsScan, arrays: list[DiskArray]) -> None:
    """Refuse a file too short for the data its headers describe.

    A plain file must reach the end of the last of ``arrays``; for a gzipped file the
    gzip trailer's uncompressed size must match the end of the last HDU.

    Raises
    ------
    GalamInputError
        When the file is truncated or the gzip trailer does not match.
    """
    needed = max(a.end() for a in arrays)
    if scan.gzipped:
        last = scan.hdus[-1]
        data_bytes = (
            int(np.prod(last.shape)) * abs(int(last.header.get("BITPIX", 8))) // 8
            if last.shape
            else 0
        )
        if last.is_table:
            data_bytes = int(last.header.get("NAXIS1", 0)) * int(
                last.header.get("NAXIS2", 0)
            ) + int(last.header.get("PCOUNT", 0))
        expected = last.data_offset + padded_size(data_bytes)
        isize = gzip_isize(scan.path)
        if isize not in (expected % 2**32, (last.data_offset + data_bytes) % 2**32):
            raise GalamInputError(
                f"{scan.path}: the gzipped file is truncated or damaged: it should hold "
                f"{expected} bytes of FITS, its gzip trailer says {isize}."
            )
    else:
        size = scan.path.stat().st_size
        if size < needed:
            raise GalamInputError(
                f"{scan.path}: the file is truncated: {size} bytes, but its headers "
                f"describe {needed} bytes of data."
            )
