"""The header scan of the lazy FITS layer: every HDU of a file, checked, no data read.

:func:`scan_fits` walks the headers of a FITS file (plain or gzipped) itself, one
header at a time, and checks each before looking for the next: a regular file
(:func:`check_file`, before anything opens it), a supported ``BITPIX``, integer
``NAXIS``/``NAXISn``, data that fit in the file, and for gzipped files a plausible
compression ratio, so a hostile header is refused before anything is allocated or
decompressed. The arrays built on the scan are in :mod:`napari_galam.io.fits`, which
re-exports everything here.
"""

from __future__ import annotations

import functools
import gzip
import os
import stat
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_galam.errors import GalamInputError

__all__ = [
    "BITPIX_DTYPES",
    "GZIP_MAX_RATIO",
    "GZIP_RATIO_FLOOR",
    "MAX_NAXIS",
    "HduInfo",
    "FitsScan",
    "check_file",
    "is_gzip",
    "gzip_isize",
    "numpy_shape",
    "padded_size",
    "scan_fits",
    "clear_scan_cache",
]

#: numpy dtype (big-endian, as on disk) of each FITS ``BITPIX``.
BITPIX_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


# --------------------------------------------------------------------------------------
# Header scan (cheap: no data read)


@dataclass(frozen=True)
class HduInfo:
    """One HDU of a FITS file as its header describes it (no data read).

    Attributes
    ----------
    index
        Position in the file (0 = primary).
    name
        ``EXTNAME`` in upper case, ``"PRIMARY"`` for HDU 0, ``"HDU<index>"`` when unnamed.
    header
        A copy of the header.
    data_offset
        Byte offset of the data in the (decompressed) file.
    is_image, is_table
        The kind of HDU (a tile-compressed image is an image, not a table).
    shape
        Data shape in numpy order; ``()`` when the HDU has no image data.
    compressed
        True for a tile-compressed (fpack) image, which cannot be read lazily.
    """

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
        """Number of data axes."""
        return len(self.shape)

    def describe(self) -> str:
        """``NAME (n-D)``, ``NAME (table)`` or ``NAME (no data)``, for messages."""
        if self.is_table:
            return f"{self.name} (table)"
        if not self.shape:
            return f"{self.name} (no data)"
        return f"{self.name} ({self.ndim}-D)"


@dataclass(frozen=True)
class FitsScan:
    """Every HDU of one FITS file, from :func:`scan_fits`.

    Attributes
    ----------
    path
        The file.
    gzipped
        True when the file is gzip-compressed as a whole (``.fits.gz``).
    hdus
        The HDUs in file order.
    """

    path: Path
    gzipped: bool
    hdus: tuple[HduInfo, ...]

    def get(self, name: str) -> HduInfo | None:
        """The first HDU called ``name`` (upper case), or None."""
        for hdu in self.hdus:
            if hdu.name == name:
                return hdu
        return None

    def names(self) -> set[str]:
        """The names of all HDUs."""
        return {hdu.name for hdu in self.hdus}

    def listing(self) -> str:
        """A one-line listing of the HDUs, for messages."""
        return ", ".join(h.describe() for h in self.hdus)


def check_file(path: Path, what: str = "a FITS cube") -> os.stat_result:
    """Refuse anything but a non-empty regular file, before anything opens it.

    A FIFO or a device named like a FITS file would block or never end when read, so
    the type is checked with :func:`os.stat` first; symlinks are followed (a loop or a
    missing target is refused here too).

    Returns
    -------
    os.stat_result
        The file's status, for callers that compare its size with what it declares.

    Raises
    ------
    GalamInputError
        When ``path`` is missing, a folder, a FIFO/device/socket, unreadable or empty.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        dangling = os.path.islink(path)
        raise GalamInputError(
            f"{path}: file not found"
            + (" (a symbolic link to a missing file)" if dangling else "")
            + f"; expected {what}."
        ) from None
    except OSError as exc:  # a symlink loop, a name too long, no permission...
        raise GalamInputError(
            f"{path}: cannot be read ({exc.strerror or exc}); expected {what}."
        ) from None
    if stat.S_ISDIR(status.st_mode):
        raise GalamInputError(f"{path}: is a folder, expected {what}.")
    if not stat.S_ISREG(status.st_mode):
        raise GalamInputError(
            f"{path}: is not a regular file (a {_special_kind(status.st_mode)}); expected {what}."
        )
    if status.st_size == 0:
        raise GalamInputError(f"{path}: the file is empty (0 bytes); expected {what}.")
    return status


def _special_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO / named pipe"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def gzip_isize(path: Path) -> int:
    """Uncompressed size modulo 2**32 from the gzip trailer."""
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return int.from_bytes(fh.read(4), "little")


def numpy_shape(header: Any) -> tuple[int, ...]:
    """The data shape an image header declares, in numpy order; ``()`` for no data.

    Malformed axis keywords (missing, negative or not integers) also give ``()``; the
    header scan (:func:`scan_fits`) refuses such headers with a message first.
    """
    try:
        naxis = int(header.get("NAXIS", 0))
        dims = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    except (TypeError, ValueError):
        return ()
    if not dims or any(d <= 0 for d in dims):
        return ()
    return tuple(reversed(dims))


#: Largest ratio of declared (uncompressed) to compressed size accepted for a gzipped
#: FITS file whose data exceed :data:`GZIP_RATIO_FLOOR`; survey cubes compress 1.2-10x,
#: a gzip bomb of zeros about 1000x.
GZIP_MAX_RATIO = 100

#: Declared data below this size (bytes) are never refused for their compression ratio.
GZIP_RATIO_FLOOR = 256 * 1024**2

#: Most axes a FITS header may declare (the FITS standard's limit).
MAX_NAXIS = 999


def scan_fits(path: Path) -> FitsScan:
    """Read every header of a FITS file and where each HDU's data start.

    Each header is checked before the next is looked for: supported ``BITPIX``,
    integer ``NAXIS``/``NAXISn``, data that fit in the file (plain files) or a plausible
    compression ratio (gzipped files), so a hostile header is refused before anything
    is allocated or decompressed. Scans are cached by (path, modification time, size):
    sniffing a file and then reading it costs one scan, which matters for gzipped files
    (finding the headers means decompressing the whole file).

    Raises
    ------
    GalamInputError
        When the path is not a non-empty regular file, is not FITS, or a header
        declares what the file cannot hold; the message names the file and the HDU.
    """
    status = check_file(path, "a FITS file")
    return _scan_fits_cached(str(path), status.st_mtime_ns, status.st_size)


def _int_keyword(header: Any, key: str, where: str, default: int | None = None) -> int:
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        found = "missing" if key not in header else f"{value!r}"
        raise GalamInputError(f"{where}: {key} is {found}; expected an integer.")
    return int(value)


def _declared_layout(header: Any, where: str) -> tuple[tuple[int, ...], int]:
    """Numpy shape (``()`` for no image data) and data size in bytes a header declares.

    Raises
    ------
    GalamInputError
        For an unsupported ``BITPIX``, an ``NAXIS`` outside 0..999, or missing,
        negative or non-integer ``NAXISn``, ``PCOUNT``, ``GCOUNT``.
    """
    bitpix = header.get("BITPIX")
    if isinstance(bitpix, bool) or bitpix not in BITPIX_DTYPES:
        raise GalamInputError(
            f"{where}: BITPIX = {bitpix!r}; expected one of {sorted(BITPIX_DTYPES)}."
        )
    naxis = _int_keyword(header, "NAXIS", where)
    if not 0 <= naxis <= MAX_NAXIS:
        raise GalamInputError(f"{where}: NAXIS = {naxis}; expected 0 to {MAX_NAXIS}.")
    axes = [_int_keyword(header, f"NAXIS{i}", where) for i in range(1, naxis + 1)]
    if any(n < 0 for n in axes):
        raise GalamInputError(f"{where}: negative axis length in NAXISn = {axes}.")
    pcount = _int_keyword(header, "PCOUNT", where, 0)
    gcount = _int_keyword(header, "GCOUNT", where, 1)
    if pcount < 0 or gcount < 0:
        raise GalamInputError(f"{where}: PCOUNT = {pcount}, GCOUNT = {gcount}; expected >= 0.")
    if not axes:
        return (), 0
    groups = bool(header.get("GROUPS", False)) and axes[0] == 0
    elements = int(np.prod(axes[1:] if groups else axes, dtype=object))
    nbytes = abs(int(bitpix)) // 8 * gcount * (pcount + elements)
    shape = tuple(reversed(axes)) if all(n > 0 for n in axes) else ()
    return shape, nbytes


def _read_header(stream: Any, index: int, path: Path) -> Any:
    """The header at the stream's position, or None at the end of the file."""
    from astropy.io import fits

    start = stream.tell()
    probe = stream.read(2880)
    if not probe.strip(b"\0 "):  # end of file, or padding after the last HDU
        if index == 0:
            raise GalamInputError(f"{path}: no FITS header (the file holds no header).")
        return None
    stream.seek(start)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.Header.fromfile(stream, endcard=True, padding=True)
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        what = "not a readable FITS file" if index == 0 else f"the header of HDU {index} is damaged"
        raise GalamInputError(
            f"{path}: {what} (truncated, damaged or not FITS: {exc or type(exc).__name__})."
        ) from exc
    first = header.cards[0].keyword if len(header) else ""
    expected = "SIMPLE" if index == 0 else "XTENSION"
    if first != expected:
        raise GalamInputError(
            f"{path}: HDU {index} starts with {first or 'nothing'!r}; expected {expected} "
            "(not a readable FITS file, or a damaged one)."
        )
    return header


def _hdu_info(header: Any, index: int, data_offset: int, shape: tuple[int, ...]) -> HduInfo:
    xtension = str(header.get("XTENSION", "")).strip().upper() if index else ""
    compressed = xtension == "BINTABLE" and bool(header.get("ZIMAGE", False))
    is_table = xtension in ("BINTABLE", "TABLE") and not compressed
    is_image = (index == 0 and not header.get("GROUPS", False)) or xtension == "IMAGE"
    if compressed:
        try:
            zaxes = [int(header[f"ZNAXIS{i}"]) for i in range(1, int(header["ZNAXIS"]) + 1)]
        except (KeyError, TypeError, ValueError):
            zaxes = []
        shape = tuple(reversed(zaxes)) if zaxes and all(n > 0 for n in zaxes) else ()
        is_image = True
    name = "PRIMARY" if index == 0 else str(header.get("EXTNAME", "")).strip()
    return HduInfo(
        index=index,
        name=name.upper() or f"HDU{index}",
        header=header,
        data_offset=data_offset,
        is_image=is_image,
        is_table=is_table,
        shape=shape if is_image else (),
        compressed=compressed,
    )


def _check_declared(path: Path, where: str, end: int, size: int, gzipped: bool) -> None:
    """Refuse data ending at ``end`` that a file of ``size`` bytes cannot hold."""
    if not gzipped:
        if end > size:
            raise GalamInputError(
                f"{where}: the header declares data up to byte {end}, but the file holds "
                f"only {size} bytes (truncated file, or a header that does not describe "
                "this file)."
            )
        return
    if end > max(GZIP_RATIO_FLOOR, GZIP_MAX_RATIO * size):
        raise GalamInputError(
            f"{where}: the header declares {end} bytes of data, over {GZIP_MAX_RATIO} "
            f"times the {size} bytes of the gzipped file; refusing to decompress it (a "
            "gzip bomb, or a header that does not describe this file)."
        )


@functools.lru_cache(maxsize=32)
def _scan_fits_cached(path_text: str, mtime_ns: int, size: int) -> FitsScan:
    path = Path(path_text)
    gzipped = is_gzip(path)
    hdus: list[HduInfo] = []
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as stream:
            offset = 0
            while True:
                stream.seek(offset)
                header = _read_header(stream, len(hdus), path)
                if header is None:
                    break
                where = f"{path}: HDU {len(hdus)}"
                shape, nbytes = _declared_layout(header, where)
                data_offset = stream.tell()
                _check_declared(path, where, data_offset + nbytes, size, gzipped)
                hdus.append(_hdu_info(header, len(hdus), data_offset, shape))
                offset = data_offset + padded_size(nbytes)
                if not gzipped and offset >= size:
                    break
    except (OSError, EOFError, zlib.error) as exc:
        raise GalamInputError(
            f"{path}: damaged or truncated {'gzip' if gzipped else 'FITS'} file ({exc})."
        ) from exc
    return FitsScan(path=path, gzipped=gzipped, hdus=tuple(hdus))


def clear_scan_cache() -> None:
    """Forget the cached header scans (the next :func:`scan_fits` reads the file again)."""
    _scan_fits_cached.cache_clear()


def padded_size(nbytes: int) -> int:
    """``nbytes`` rounded up to whole 2880-byte FITS blocks."""
    return -(-nbytes // 2880) * 2880
