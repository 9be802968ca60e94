"""Read IFU data cubes lazily: CALIFA, MaNGA, MUSE layouts and generic spectral cubes.

A cube opens into a :class:`SpectralCube` whose flux, variance and bad-pixel mask are
never loaded whole: uncompressed FITS files are memory-mapped (``numpy.memmap``) and
derived quantities (variance from a 1-sigma error or an inverse variance, a boolean
mask from a bitmask) are dask arrays computed chunk by chunk on demand. A
300 x 300 x 3700 MUSE cube therefore opens in a fraction of a second.

Gzipped files (``.fits.gz``, as CALIFA and MaNGA distribute them) cannot be
memory-mapped. They open as dask arrays that decompress only the slab of wavelength
planes a chunk needs; reaching a late plane still means decompressing the file up to
it, so for repeated work on a big gzipped cube decompress it once (``gunzip``) or read
it with ``lazy=False``. Opening needs one pass over the file to find its headers.

Layouts (FORMATS.md and the surveys' data models):

* ``"CALIFA"``: flux cube in the primary HDU (1e-16 erg/s/cm^2/A, 1" spaxels, linear
  wavelength from CRVAL3/CDELT3), ``ERROR`` (1 sigma, so variance = ERROR**2),
  ``BADPIX`` (1 = bad); ``ERRWEIGHT`` and ``FIBCOVER`` are not used.
* ``"MaNGA"``: DRP LOGCUBE with ``FLUX`` (1e-17 erg/s/cm^2/A/spaxel), ``IVAR``
  (variance = 1/IVAR, infinite where IVAR = 0), ``MASK`` (MANGA_DRP3PIXMASK; bit 10,
  DONOTUSE, marks a bad pixel) and ``WAVE`` (vacuum Angstrom); 0.5" spaxels.
* ``"MUSE"``: ESO pipeline cube with ``DATA`` (1e-20 erg/s/cm^2/A), ``STAT``
  (variance) and an optional ``DQ`` (non-zero = bad); ``CTYPE3 = 'AWAV'`` in Angstrom
  or metres; 0.2" spaxels.
* ``"generic"``: the first 3-D image HDU with a spectral axis (``CTYPE3`` ``WAVE``,
  ``AWAV`` or their ``-LOG`` forms), with variance from an extension named ``VAR``,
  ``VARIANCE`` or ``STAT``, ``ERR``/``ERROR``/``SIGMA`` (squared) or ``IVAR``
  (inverted), and a mask from ``MASK``, ``DQ``, ``BADPIX`` or ``QUALITY`` (non-zero =
  bad) when present.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "CUBE_LAYOUTS",
    "SpectralCube",
    "read_cube",
    "sniff_cube_layout",
    "spaxel_spectrum",
    "parse_flux_unit",
    "close_gzip_streams",
]

CUBE_LAYOUTS = ("CALIFA", "MaNGA", "MUSE", "generic")

#: Bit of MANGA_DRP3PIXMASK that marks a pixel unfit for science (DONOTUSE).
MANGA_DONOTUSE_BIT = 10

#: Target size of one dask chunk (a slab of whole wavelength planes).
CHUNK_BYTES = 64 * 1024**2

_FLAM = u.erg / u.s / u.cm**2 / u.AA
_LAYOUT_UNITS = {
    "CALIFA": u.Unit(1e-16 * _FLAM),
    "MaNGA": u.Unit(1e-17 * _FLAM),
    "MUSE": u.Unit(1e-20 * _FLAM),
}
_LAYOUT_PIXEL_SCALE = {"CALIFA": 1.0, "MaNGA": 0.5, "MUSE": 0.2}
_VARIANCE_NAMES = ("VAR", "VARIANCE", "STAT")
_SIGMA_NAMES = ("ERR", "ERROR", "SIGMA", "NOISE")
_IVAR_NAMES = ("IVAR",)
_MASK_NAMES = ("MASK", "DQ", "BADPIX", "QUALITY")
_BITPIX_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


# --------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True)
class SpectralCube:
    """An IFU cube as opened from disk, with its arrays left on disk.

    Attributes
    ----------
    data
        Flux, shape ``(n_wave, ny, nx)``: a read-only ``numpy.memmap`` (uncompressed
        files, possibly big-endian) or a dask array. Index it and convert the small
        piece you need with ``numpy.asarray``.
    wave
        Wavelength of each plane in Angstrom, 1-D float64, increasing.
    variance
        Variance of ``data`` in ``unit**2`` (same shape, lazy) or ``None``. Infinite
        where the file says a pixel carries no information.
    mask
        Boolean array (same shape, lazy; ``True`` = bad pixel) or ``None``.
    unit
        Unit of ``data`` (an astropy unit; per spaxel for MaNGA).
    celestial_wcs
        2-D celestial :class:`astropy.wcs.WCS` of the spaxel grid, or ``None``.
    header
        Header of the flux HDU (a copy).
    layout
        One of :data:`CUBE_LAYOUTS`.
    pixel_scale_arcsec
        Spaxel size in arcsec (from the WCS, else the survey's nominal value), or
        ``None`` when unknown.
    path
        The file the cube came from.
    wave_medium
        ``"air"``, ``"vacuum"`` or ``"unknown"``, from CTYPE3 or the survey.
    primary_header
        Header of HDU 0 (a copy); for single-HDU files the same as ``header``.
    meta
        ``hdus`` (a listing of the file's HDUs), ``gzipped``, ``flux_hdu``.
    spaxel_reader
        Fast path used by :func:`spaxel_spectrum` for lazy cubes: reads one spaxel's
        flux, variance and mask straight from disk without building whole chunks.
    """

    data: Any
    wave: NDArray[np.float64]
    variance: Any
    mask: Any
    unit: Any
    celestial_wcs: Any
    header: Any
    layout: str
    pixel_scale_arcsec: float | None
    path: Path
    wave_medium: str = "unknown"
    primary_header: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    spaxel_reader: Callable[[int, int], tuple[Any, Any, Any]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_wave, ny, nx)``."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """The file name without its FITS suffix, for layer names."""
        name = self.path.name
        for suffix in (".fits.gz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return self.path.stem


# --------------------------------------------------------------------------------------
# Units


_ANGSTROM_TOKEN = re.compile(r"(?<![A-Za-z])(A|AA|Ang|Angs|Angstroms?|angstroms?)(?![A-Za-z])")
_PER_SPAXEL = re.compile(r"\s*/\s*(spaxel|pixel|pix|spx)\b", flags=re.IGNORECASE)


def parse_flux_unit(bunit: str | None, *, default: Any = None) -> Any:
    """Turn a ``BUNIT`` string written by an IFU pipeline into an astropy unit.

    Survey headers use spellings astropy does not read as meant: ``A`` or ``Ang`` for
    Angstrom (``A`` alone would be an ampere), ``/spaxel`` suffixes, ``10^-16`` or
    ``1E-17`` scale factors. ``/spaxel`` and ``/pixel`` are dropped (the value is then
    per spaxel).

    Parameters
    ----------
    bunit
        The header value, or ``None``.
    default
        Returned when ``bunit`` is empty or cannot be parsed; when it is a spectral flux
        density unit, also returned when the parsed unit is not one.

    Returns
    -------
    astropy.units.UnitBase or None
    """
    if bunit is None or not str(bunit).strip():
        return default
    text = _PER_SPAXEL.sub("", str(bunit).strip())
    text = _ANGSTROM_TOKEN.sub("Angstrom", text)
    text = re.sub(r"\b10\^\(?(-?\d+)\)?", r"10**(\1)", text)
    parsed = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in ("fits", None):
            try:
                parsed = u.Unit(text, format=fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return default
    if default is not None and default.is_equivalent(_FLAM) and not parsed.is_equivalent(_FLAM):
        return default
    return parsed


# --------------------------------------------------------------------------------------
# Header scan (cheap: no data read)


@dataclass(frozen=True)
class _HduInfo:
    index: int
    name: str
    header: Any
    data_offset: int
    is_image: bool
    is_table: bool
    shape: tuple[int, ...]  # numpy order
    compressed: bool = False  # tile-compressed (fpack) image

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def describe(self) -> str:
        if self.is_table:
            return f"{self.name} (table)"
        if not self.shape:
            return f"{self.name} (no data)"
        return f"{self.name} ({self.ndim}-D)"


@dataclass(frozen=True)
class _FitsScan:
    path: Path
    gzipped: bool
    hdus: tuple[_HduInfo, ...]

    def get(self, name: str) -> _HduInfo | None:
        for hdu in self.hdus:
            if hdu.name == name:
                return hdu
        return None

    def names(self) -> set[str]:
        return {hdu.name for hdu in self.hdus}

    def listing(self) -> str:
        return ", ".join(h.describe() for h in self.hdus)


def _check_file(path: Path, what: str = "a FITS cube") -> None:
    if not path.exists():
        raise GalamInputError(f"{path}: file not found.")
    if path.is_dir():
        raise GalamInputError(f"{path}: is a folder, expected {what}.")
    if path.stat().st_size == 0:
        raise GalamInputError(f"{path}: the file is empty (0 bytes); expected {what}.")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _gzip_isize(path: Path) -> int:
    """Uncompressed size modulo 2**32 from the gzip trailer."""
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return int.from_bytes(fh.read(4), "little")


def _numpy_shape(header: Any) -> tuple[int, ...]:
    naxis = int(header.get("NAXIS", 0))
    dims = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    if not dims or any(d == 0 for d in dims):
        return ()
    return tuple(reversed(dims))


def _scan_fits(path: Path) -> _FitsScan:
    """Read every header of a FITS file and where each HDU's data start.

    Scans are cached by (path, modification time, size): sniffing a file and then
    reading it costs one scan, which matters for gzipped files (finding the headers
    means decompressing the whole file).
    """
    _check_file(path)
    stat = path.stat()
    return _scan_fits_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _scan_fits_cached(path_text: str, mtime_ns: int, size: int) -> _FitsScan:
    from astropy.io import fits

    path = Path(path_text)
    gzipped = _is_gzip(path)
    hdus = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                for index, hdu in enumerate(hdul):
                    info = hdul.fileinfo(index)
                    header = hdu.header.copy()
                    name = "PRIMARY" if index == 0 else str(header.get("EXTNAME", "")).strip()
                    hdus.append(
                        _HduInfo(
                            index=index,
                            name=name.upper() or f"HDU{index}",
                            header=header,
                            data_offset=int(info["datLoc"]),
                            is_image=bool(hdu.is_image),
                            is_table=isinstance(hdu, fits.BinTableHDU | fits.TableHDU)
                            and not isinstance(hdu, fits.CompImageHDU),
                            shape=_numpy_shape(header) if hdu.is_image else (),
                            compressed=isinstance(hdu, fits.CompImageHDU),
                        )
                    )
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise GalamInputError(
            f"{path}: not a readable FITS file (damaged, truncated or not FITS: {exc})."
        ) from exc
    if not hdus:
        raise GalamInputError(f"{path}: no HDU could be read; the file is not FITS.")
    return _FitsScan(path=path, gzipped=gzipped, hdus=tuple(hdus))


# --------------------------------------------------------------------------------------
# Arrays on disk


def _padded(nbytes: int) -> int:
    return -(-nbytes // 2880) * 2880


@dataclass(frozen=True)
class _DiskArray:
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
    def from_hdu(cls, scan: _FitsScan, hdu: _HduInfo) -> _DiskArray:
        if hdu.compressed:
            raise GalamInputError(
                f"{scan.path}: HDU {hdu.name} is tile-compressed (fpack), which cannot be "
                "read lazily; decompress the file first (funpack) and open the result."
            )
        bitpix = int(hdu.header.get("BITPIX", 0))
        if bitpix not in _BITPIX_DTYPES:
            raise GalamInputError(
                f"{scan.path}: HDU {hdu.name} has BITPIX = {bitpix}; expected one of "
                f"{sorted(_BITPIX_DTYPES)}."
            )
        blank = hdu.header.get("BLANK") if bitpix > 0 else None
        return cls(
            path=scan.path,
            offset=hdu.data_offset,
            shape=hdu.shape,
            raw_dtype=np.dtype(_BITPIX_DTYPES[bitpix]),
            gzipped=scan.gzipped,
            bscale=float(hdu.header.get("BSCALE", 1.0)),
            bzero=float(hdu.header.get("BZERO", 0.0)),
            blank=int(blank) if blank is not None else None,
            label=hdu.name,
        )

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.raw_dtype.itemsize

    @property
    def scaled(self) -> bool:
        return self.bscale != 1.0 or self.bzero != 0.0 or self.blank is not None

    @property
    def dtype(self) -> np.dtype:
        if not self.scaled:
            return self.raw_dtype.newbyteorder("=")
        if self.raw_dtype.kind in "iu" and self.bscale == 1.0 and self.blank is None:
            return np.dtype(np.int64)
        return np.dtype(np.float32 if self.raw_dtype.itemsize <= 2 else np.float64)

    def end(self) -> int:
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

    def _read_planes(self, start: int, stop: int) -> NDArray[Any]:
        plane = int(np.prod(self.shape[1:])) * self.raw_dtype.itemsize
        count = (stop - start) * plane
        if self.gzipped:
            buf = _read_gzip(self.path, self.offset, self.offset + start * plane, count)
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
            out = self._read_planes(0, self.shape[0])
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
        stat = self.path.stat()
        key = f"{self.path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{self.offset}"
        return "galam-" + hashlib.sha1(key.encode()).hexdigest()[:16]

    def as_dask(self) -> Any:
        """A dask array over the data, chunked in slabs of whole planes."""
        import dask.array as da

        source: Any = _SlabReader(self) if (self.gzipped or self.scaled) else self._memmap()
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


def _read_gzip(path: Path, hdu_offset: int, position: int, count: int) -> bytes:
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


class _SlabReader:
    """Array-like that reads whole wavelength planes on indexing (for dask)."""

    def __init__(self, source: _DiskArray) -> None:
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
            block = self.source._read_planes(start, stop)
            return block[(slice(None, None, step), *rest)]
        index = int(first) % self.shape[0]
        return self.source._read_planes(index, index + 1)[(0, *rest)]


def _map(func: Callable[..., NDArray[Any]], dtype: Any, *arrays: Any) -> Any:
    """Apply an element-wise numpy function lazily (dask) or now (numpy)."""
    if any(hasattr(a, "dask") for a in arrays):
        import dask.array as da

        return da.map_blocks(func, *arrays, dtype=dtype)
    return func(*arrays)


def _square(err: NDArray[Any]) -> NDArray[np.float32]:
    err = np.asarray(err, dtype=np.float32)
    return err * err


def _invert_ivar(ivar: NDArray[Any]) -> NDArray[np.float32]:
    ivar = np.asarray(ivar, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ivar > 0, 1.0 / ivar, np.float32(np.inf)).astype(np.float32)


def _nonzero(mask: NDArray[Any]) -> NDArray[np.bool_]:
    return np.asarray(mask) != 0


def _manga_bad(mask: NDArray[Any], ivar: NDArray[Any]) -> NDArray[np.bool_]:
    bits = np.asarray(mask).astype(np.int64)
    donotuse = (bits & (1 << MANGA_DONOTUSE_BIT)) != 0
    return donotuse | ~(np.asarray(ivar) > 0)


# --------------------------------------------------------------------------------------
# Layout detection and the wavelength axis


def _ctype3(header: Any) -> str:
    return str(header.get("CTYPE3", "")).strip().upper()


def _has_spectral_axis(header: Any) -> bool:
    ctype = _ctype3(header)
    if ctype.startswith(("WAVE", "AWAV")):
        return True
    has_step = "CDELT3" in header or "CD3_3" in header
    return ctype in ("", "LAMBDA", "WAVELENGTH", "LINEAR") and "CRVAL3" in header and has_step


def _detect_layout(scan: _FitsScan) -> str | None:
    names = scan.names()
    if scan.get("FILTERS") is not None and scan.get("FILTERS").is_table:  # narrow-band stack
        return None
    if "FLUX" in names and names & {"IVAR", "WAVE", "MASK"}:
        return "MaNGA"
    primary = scan.hdus[0]
    instrument = str(primary.header.get("INSTRUME", "")).strip().upper()
    if "DATA" in names and (names & {"STAT", "DQ"} or instrument == "MUSE"):
        return "MUSE"
    if names & {"ERROR", "BADPIX"} and primary.shape:
        return "CALIFA"
    for hdu in scan.hdus:
        if hdu.is_image and hdu.ndim == 3 and _has_spectral_axis(hdu.header):
            return "generic"
    return None


def _not_a_cube_message(scan: _FitsScan) -> str:
    expected = (
        "expected a CALIFA cube (primary cube + ERROR, BADPIX), a MaNGA LOGCUBE (FLUX, "
        "IVAR, MASK, WAVE), a MUSE cube (DATA, STAT) or a 3-D image with a spectral axis "
        "(CTYPE3 = 'WAVE', 'AWAV' or 'WAVE-LOG')"
    )
    if scan.get("FILTERS") is not None:
        return f"{scan.path}: a narrow-band stack (FILTERS table), not an IFU cube; {expected}."
    cubes = [h for h in scan.hdus if h.is_image and h.ndim == 3]
    if cubes:
        ctype = cubes[0].header.get("CTYPE3", "")
        return (
            f"{scan.path}: the 3-D image in HDU {cubes[0].name} has no spectral axis "
            f"(CTYPE3 = {ctype!r}); {expected}."
        )
    return f"{scan.path}: not an IFU cube ({expected}); found HDUs: {scan.listing()}."


def _wave_from_header(path: Path, header: Any, n_wave: int, hdu_name: str) -> NDArray[np.float64]:
    """Wavelengths (Angstrom) of the planes of a cube, from its spectral WCS."""
    from astropy.wcs import WCS

    ctype = _ctype3(header)
    if ctype.startswith(("WAVE", "AWAV")):
        if ctype.endswith("-TAB"):
            raise GalamInputError(
                f"{path}: HDU {hdu_name} has a tabulated spectral axis (CTYPE3 = {ctype!r}), "
                "which is not supported; expected a linear or logarithmic axis."
            )
        if not str(header.get("CUNIT3", "")).strip():
            # wcslib would assume metres; pipelines that omit CUNIT3 write Angstrom
            header = header.copy()
            header["CUNIT3"] = "m" if abs(float(header.get("CRVAL3", 0.0))) < 1e-3 else "Angstrom"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                spectral = WCS(header).sub([3])
                values = spectral.wcs_pix2world(np.arange(n_wave, dtype=np.float64), 0)[0]
                unit = u.Unit(spectral.wcs.cunit[0] or "m")
        except Exception as exc:  # noqa: BLE001 - wcslib raises many types
            raise GalamInputError(
                f"{path}: HDU {hdu_name} has an unreadable spectral WCS ({exc})."
            ) from exc
    elif _has_spectral_axis(header):
        step = float(header.get("CDELT3", header.get("CD3_3", 0.0)))
        crpix = float(header.get("CRPIX3", 1.0))
        values = float(header["CRVAL3"]) + (np.arange(n_wave) + 1.0 - crpix) * step
        cunit = str(header.get("CUNIT3", "")).strip()
        unit = parse_flux_unit(cunit, default=None) if cunit else None
        if unit is None:
            unit = u.m if abs(float(header["CRVAL3"])) < 1e-3 else u.AA
    else:
        raise GalamInputError(
            f"{path}: HDU {hdu_name} has no spectral axis (CTYPE3 = {header.get('CTYPE3', '')!r}); "
            "expected CTYPE3 'WAVE', 'AWAV' or 'WAVE-LOG', or CRVAL3/CDELT3 in Angstrom."
        )
    try:
        wave = (np.asarray(values, dtype=np.float64) * unit).to_value(u.AA)
    except u.UnitConversionError as exc:
        raise GalamInputError(
            f"{path}: HDU {hdu_name}: the spectral axis is in {unit}, not a wavelength; "
            "expected CUNIT3 in Angstrom, nm or m."
        ) from exc
    return _checked_wave(path, wave, hdu_name)


def _checked_wave(path: Path, wave: NDArray[Any], what: str) -> NDArray[np.float64]:
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or wave.size < 2:
        raise GalamInputError(f"{path}: {what}: expected at least 2 wavelengths, got {wave.size}.")
    if not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0):
        raise GalamInputError(
            f"{path}: {what}: wavelengths are not finite and strictly increasing."
        )
    if wave[0] < 100.0 or wave[-1] > 1e7:
        raise GalamInputError(
            f"{path}: {what}: wavelengths run from {wave[0]:.4g} to {wave[-1]:.4g} Angstrom; "
            "expected optical/infrared wavelengths (check CUNIT3)."
        )
    return wave


def _medium(layout: str, header: Any) -> str:
    ctype = _ctype3(header)
    if ctype.startswith("AWAV"):
        return "air"
    if ctype.startswith("WAVE"):
        return "vacuum" if layout != "CALIFA" else "air"
    return {"CALIFA": "air", "MaNGA": "vacuum", "MUSE": "air"}.get(layout, "unknown")


def _celestial(header: Any) -> Any:
    from astropy.wcs import WCS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header)
            if not wcs.has_celestial:
                return None
            return wcs.celestial
    except Exception:  # noqa: BLE001 - a broken WCS must not stop the cube opening
        return None


def _pixel_scale(celestial: Any, layout: str) -> float | None:
    if celestial is not None:
        from astropy.wcs.utils import proj_plane_pixel_scales

        try:
            scales = proj_plane_pixel_scales(celestial)
            value = round(float(np.mean(scales)) * 3600.0, 9)
            if np.isfinite(value) and value > 0:
                return value
        except Exception:  # noqa: BLE001
            pass
    return _LAYOUT_PIXEL_SCALE.get(layout)


# --------------------------------------------------------------------------------------
# The plan: everything decided from headers, before any array is built


@dataclass(frozen=True)
class _CubePlan:
    layout: str
    flux: _DiskArray
    flux_hdu: _HduInfo
    wave: NDArray[np.float64]
    variance: _DiskArray | None = None
    variance_kind: str = ""  # "variance", "sigma", "ivar"
    mask: _DiskArray | None = None
    mask_kind: str = ""  # "nonzero", "manga"


def _require(scan: _FitsScan, names: tuple[str, ...], layout: str) -> None:
    missing = [n for n in names if scan.get(n) is None]
    if missing:
        raise GalamInputError(
            f"{scan.path}: looks like a {layout} cube but lacks extension(s) "
            f"{', '.join(missing)}; a {layout} cube has {', '.join(names)} "
            f"(found: {scan.listing()})."
        )


def _cube_hdu(scan: _FitsScan, hdu: _HduInfo) -> _DiskArray:
    if not hdu.is_image or hdu.ndim != 3:
        naxis = hdu.header.get("NAXIS", 0)
        raise GalamInputError(
            f"{scan.path}: HDU {hdu.name} has NAXIS = {naxis}; expected a 3-D cube "
            "(NAXIS = 3: x, y, wavelength)."
        )
    return _DiskArray.from_hdu(scan, hdu)


def _companion(scan: _FitsScan, hdu: _HduInfo, flux: _DiskArray) -> _DiskArray:
    if not hdu.is_image or hdu.shape != flux.shape:
        raise GalamInputError(
            f"{scan.path}: extension {hdu.name} has shape {hdu.shape or '(none)'}; expected "
            f"{flux.shape} like the flux cube {flux.label}."
        )
    return _DiskArray.from_hdu(scan, hdu)


def _plan_cube(scan: _FitsScan, layout: str) -> _CubePlan:
    path = scan.path
    if layout == "CALIFA":
        _require(scan, ("PRIMARY", "ERROR", "BADPIX"), "CALIFA")
        hdu = scan.hdus[0]
        flux = _cube_hdu(scan, hdu)
        wave = _wave_from_header(path, hdu.header, flux.shape[0], hdu.name)
        plan = _CubePlan(
            layout, flux, hdu, wave,
            variance=_companion(scan, scan.get("ERROR"), flux), variance_kind="sigma",
            mask=_companion(scan, scan.get("BADPIX"), flux), mask_kind="nonzero",
        )  # fmt: skip
    elif layout == "MaNGA":
        _require(scan, ("FLUX", "IVAR", "MASK", "WAVE"), "MaNGA LOGCUBE")
        hdu = scan.get("FLUX")
        flux = _cube_hdu(scan, hdu)
        wave_hdu = scan.get("WAVE")
        if not wave_hdu.is_image or wave_hdu.shape != (flux.shape[0],):
            raise GalamInputError(
                f"{path}: extension WAVE has shape {wave_hdu.shape or '(none)'}; expected "
                f"({flux.shape[0]},), one wavelength per plane of FLUX."
            )
        wave = _checked_wave(path, _DiskArray.from_hdu(scan, wave_hdu).load(), "WAVE")
        plan = _CubePlan(
            layout, flux, hdu, wave,
            variance=_companion(scan, scan.get("IVAR"), flux), variance_kind="ivar",
            mask=_companion(scan, scan.get("MASK"), flux), mask_kind="manga",
        )  # fmt: skip
    elif layout == "MUSE":
        hdu = scan.get("DATA")
        flux = _cube_hdu(scan, hdu)
        wave = _wave_from_header(path, hdu.header, flux.shape[0], hdu.name)
        stat, dq = scan.get("STAT"), scan.get("DQ")
        plan = _CubePlan(
            layout, flux, hdu, wave,
            variance=_companion(scan, stat, flux) if stat else None, variance_kind="variance",
            mask=_companion(scan, dq, flux) if dq else None, mask_kind="nonzero",
        )  # fmt: skip
    else:
        hdu = next(
            h for h in scan.hdus if h.is_image and h.ndim == 3 and _has_spectral_axis(h.header)
        )
        flux = _cube_hdu(scan, hdu)
        wave = _wave_from_header(path, hdu.header, flux.shape[0], hdu.name)
        variance, kind = None, ""
        for names, this_kind in (
            (_VARIANCE_NAMES, "variance"),
            (_SIGMA_NAMES, "sigma"),
            (_IVAR_NAMES, "ivar"),
        ):
            found = next((scan.get(n) for n in names if scan.get(n) is not None), None)
            if found is not None and found is not hdu:
                variance, kind = _companion(scan, found, flux), this_kind
                break
        mask_hdu = next((scan.get(n) for n in _MASK_NAMES if scan.get(n) is not None), None)
        mask = _companion(scan, mask_hdu, flux) if mask_hdu is not None else None
        plan = _CubePlan(
            layout, flux, hdu, wave, variance=variance, variance_kind=kind,
            mask=mask, mask_kind="nonzero",
        )  # fmt: skip
    _check_not_truncated(scan, [a for a in (plan.flux, plan.variance, plan.mask) if a is not None])
    return plan


def _check_not_truncated(scan: _FitsScan, arrays: list[_DiskArray]) -> None:
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
        expected = last.data_offset + _padded(data_bytes)
        isize = _gzip_isize(scan.path)
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


# --------------------------------------------------------------------------------------
# Public functions


def sniff_cube_layout(path: str | os.PathLike) -> str | None:
    """Say which cube layout a file has, reading headers only.

    Parameters
    ----------
    path
        A FITS file (gzipped too).

    Returns
    -------
    str or None
        One of :data:`CUBE_LAYOUTS`, or ``None`` when the file is not a cube this module
        reads (also for damaged files; :func:`read_cube` explains what is wrong).
    """
    try:
        scan = _scan_fits(Path(path))
        layout = _detect_layout(scan)
        if layout is None:
            return None
        _plan_cube(scan, layout)
    except (GalamInputError, OSError):
        return None
    return layout


def read_cube(path: str | os.PathLike, *, lazy: bool = True) -> SpectralCube:
    """Open an IFU cube (CALIFA, MaNGA, MUSE or a generic 3-D spectral FITS cube).

    Parameters
    ----------
    path
        The FITS file, plain or gzipped.
    lazy
        ``True`` (default): leave the arrays on disk (memmap or dask; see the module
        docstring). ``False``: read everything into memory as native-endian numpy
        arrays (one pass over a gzipped file).

    Returns
    -------
    SpectralCube

    Raises
    ------
    GalamInputError
        When the file is missing, not FITS, truncated, not in one of the layouts, lacks
        an extension its layout needs, has a flux HDU that is not 3-D, has companion
        extensions of another shape, or has no usable wavelength axis. The message
        names the file and what was expected.
    """
    path = Path(path)
    scan = _scan_fits(path)
    layout = _detect_layout(scan)
    if layout is None:
        raise GalamInputError(_not_a_cube_message(scan))
    plan = _plan_cube(scan, layout)

    def get(array: _DiskArray) -> Any:
        return array.lazy() if lazy else array.load()

    def get_for_map(array: _DiskArray) -> Any:
        return array.as_dask() if lazy else array.load()

    data = get(plan.flux)
    variance = None
    if plan.variance is not None:
        if plan.variance_kind == "variance":
            variance = get(plan.variance)
        elif plan.variance_kind == "sigma":
            variance = _map(_square, np.float32, get_for_map(plan.variance))
        else:
            variance = _map(_invert_ivar, np.float32, get_for_map(plan.variance))
    mask = None
    if plan.mask is not None:
        if plan.mask_kind == "manga":
            mask = _map(_manga_bad, bool, get_for_map(plan.mask), get_for_map(plan.variance))
        else:
            mask = _map(_nonzero, bool, get_for_map(plan.mask))

    header = plan.flux_hdu.header
    celestial = _celestial(header)
    reader = functools.partial(_read_spaxel, plan) if lazy else None
    default_unit = _LAYOUT_UNITS.get(layout)
    unit = parse_flux_unit(header.get("BUNIT"), default=default_unit)
    if unit is None:
        unit = u.dimensionless_unscaled
    return SpectralCube(
        data=data,
        wave=plan.wave,
        variance=variance,
        mask=mask,
        unit=unit,
        celestial_wcs=celestial,
        header=header.copy(),
        layout=layout,
        pixel_scale_arcsec=_pixel_scale(celestial, layout),
        path=path,
        wave_medium=_medium(layout, header),
        primary_header=scan.hdus[0].header.copy(),
        meta={"hdus": scan.listing(), "gzipped": scan.gzipped, "flux_hdu": plan.flux_hdu.name},
        spaxel_reader=reader,
    )


def _read_spaxel(plan: _CubePlan, y: int, x: int) -> tuple[Any, Any, Any]:
    """Flux, variance and bad-pixel flags of one spaxel, converted as in read_cube."""
    flux = plan.flux.column(y, x)
    variance = raw_variance = None
    if plan.variance is not None:
        raw_variance = plan.variance.column(y, x)
        convert = {"sigma": _square, "ivar": _invert_ivar}.get(plan.variance_kind)
        variance = convert(raw_variance) if convert else raw_variance
    bad = None
    if plan.mask is not None:
        raw_mask = plan.mask.column(y, x)
        bad = (
            _manga_bad(raw_mask, raw_variance) if plan.mask_kind == "manga" else _nonzero(raw_mask)
        )
    return flux, variance, bad


def spaxel_spectrum(
    cube: SpectralCube, y: int, x: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]:
    """The spectrum of one spaxel, read from disk.

    Parameters
    ----------
    cube
        An opened cube.
    y, x
        Row and column of the spaxel (numpy order, as napari reports them).

    Returns
    -------
    wave, flux, variance
        Wavelength in Angstrom, flux in ``cube.unit`` and its variance (``None`` when
        the cube has none), float64. Pixels the mask calls bad are NaN in both.

    Raises
    ------
    GalamInputError
        When ``(y, x)`` lies outside the cube.
    """
    _, ny, nx = cube.shape
    if not (0 <= int(y) < ny and 0 <= int(x) < nx):
        raise GalamInputError(
            f"{cube.path}: spaxel (y={y}, x={x}) lies outside the cube; expected "
            f"0 <= y < {ny} and 0 <= x < {nx}."
        )
    y, x = int(y), int(x)
    if cube.spaxel_reader is not None:
        raw_flux, raw_variance, raw_bad = cube.spaxel_reader(y, x)
    else:
        raw_flux = cube.data[:, y, x]
        raw_variance = None if cube.variance is None else cube.variance[:, y, x]
        raw_bad = None if cube.mask is None else cube.mask[:, y, x]
    flux = np.array(raw_flux, dtype=np.float64)
    variance = None if raw_variance is None else np.array(raw_variance, dtype=np.float64)
    if raw_bad is not None:
        bad = np.asarray(raw_bad, dtype=bool)
        flux[bad] = np.nan
        if variance is not None:
            variance[bad] = np.nan
    return cube.wave.copy(), flux, variance
