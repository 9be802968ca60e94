"""Write results: per-spaxel maps to multi-extension FITS, result tables to ECSV/CSV.

Maps (age, metallicity, their uncertainties, S/N, bin numbers...) go into one FITS file
with an empty primary HDU (provenance keywords) and one image extension per quantity,
named after it (``LOG_AGE``, ``MH``, ``LOG_AGE_ERR``, ``MH_ERR``, ``SNR``, ``BIN_ID``...),
each carrying the cube's celestial WCS and its unit in ``BUNIT`` (FORMATS.md, Outputs).
Tables go to ECSV (keeps units, dtypes and metadata) or CSV (plain values) by suffix.

Every writer is atomic: it writes a temporary file beside the target and moves it into
place with :func:`os.replace`, so an interrupted run never leaves half a file under
the final name and an existing file is only replaced by a complete one.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from numpy.typing import ArrayLike, NDArray

from napari_galam.errors import GalamInputError

__all__ = ["MapSet", "write_maps", "read_maps", "write_table", "read_table", "TABLE_FORMATS"]

MAP_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
TABLE_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv"}


@dataclass(frozen=True)
class MapSet:
    """Maps read back from a file written by :func:`write_maps`.

    Attributes
    ----------
    maps
        Quantity name (the extension name) -> 2-D numpy array, in file order.
    units
        Quantity name -> astropy unit (``None`` when the extension has no ``BUNIT``; an
        unrecognised string becomes an ``UnrecognizedUnit``).
    celestial_wcs
        The 2-D celestial WCS of the first map, or ``None``.
    header
        The primary header (provenance and ``header_extra``).
    path
        The file read.
    """

    maps: dict[str, NDArray[Any]]
    units: dict[str, Any]
    celestial_wcs: Any
    header: Any
    path: Path
    headers: dict[str, Any] = field(default_factory=dict)


def _suffix_of(path: Path, allowed: tuple[str, ...]) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(allowed, key=len, reverse=True) if name.endswith(s)), None)


def _atomic_write(path: Path, suffix: str, write: Callable[[Path], None], overwrite: bool) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then move it there."""
    if path.exists() and not overwrite:
        raise GalamInputError(f"{path}: the file exists; pass overwrite=True to replace it.")
    if path.exists() and path.is_dir():
        raise GalamInputError(f"{path}: is a folder, expected a file name to write.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise GalamInputError(f"{path}: the folder {folder} does not exist.")
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # astropy writers refuse to overwrite an existing (empty) file
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _unit_string(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    try:
        unit = u.Unit(value)
    except (TypeError, ValueError) as exc:
        raise GalamInputError(
            f"unit of map {name!r}: {value!r} is not a unit; give an astropy unit or a string."
        ) from exc
    try:
        return unit.to_string("fits")
    except (ValueError, TypeError):
        return unit.to_string()


def _map_array(name: str, values: ArrayLike) -> NDArray[Any]:
    array = np.asarray(values)
    if array.ndim != 2:
        raise GalamInputError(
            f"map {name!r} has shape {array.shape}; expected a 2-D image (ny, nx)."
        )
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu":
        info = np.iinfo(np.int32)
        small = array.size == 0 or (array.min() >= info.min and array.max() <= info.max)
        return array.astype(np.int32 if small else np.int64)
    if array.dtype.kind == "f":
        return array.astype(np.float64 if array.dtype == np.float64 else np.float32)
    raise GalamInputError(
        f"map {name!r} has dtype {array.dtype}; expected numbers (float, integer or bool)."
    )


def _celestial_header(celestial_wcs: Any) -> Any:
    from astropy.io import fits

    if celestial_wcs is None:
        return fits.Header()
    wcs = celestial_wcs
    if getattr(wcs, "naxis", 2) != 2 and getattr(wcs, "has_celestial", False):
        wcs = wcs.celestial
    if getattr(wcs, "naxis", None) != 2 or not getattr(wcs, "has_celestial", False):
        raise GalamInputError(
            "celestial_wcs: expected a 2-D celestial astropy WCS (RA/Dec axes) or None."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wcs.to_header()


def _checked_map_arrays(
    path: Path, maps: Mapping[str, ArrayLike], units: Mapping[str, Any]
) -> dict[str, NDArray[Any]]:
    """The maps as arrays under their upper-cased names, after checking names and shapes.

    Raises
    ------
    GalamInputError
        When there are no maps, units name maps that do not exist, a name is empty or
        collides once upper-cased, a map is not a 2-D numeric array, or shapes differ.
    """
    if not maps:
        raise GalamInputError(f"{path}: no maps to write.")
    unknown = sorted(set(units) - set(maps))
    if unknown:
        raise GalamInputError(f"{path}: units given for maps that do not exist: {unknown}.")
    arrays: dict[str, NDArray[Any]] = {}
    for name, values in maps.items():
        extname = str(name).strip().upper()
        if not extname:
            raise GalamInputError(f"{path}: a map has an empty name.")
        if extname in arrays:
            raise GalamInputError(f"{path}: two maps are both named {extname!r} once upper-cased.")
        arrays[extname] = _map_array(str(name), values)
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) > 1:
        listing = ", ".join(f"{n} {a.shape}" for n, a in arrays.items())
        raise GalamInputError(f"{path}: maps must share one shape; got {listing}.")
    return arrays


def _provenance_hdu(path: Path, n_maps: int, header_extra: Mapping[str, Any]) -> Any:
    """The empty primary HDU: who wrote the file and when, the map count, ``header_extra``.

    Raises
    ------
    GalamInputError
        When a ``header_extra`` value is not a string, number or bool.
    """
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = ("napari-galam", "software that wrote this file")
    primary.header["DATE"] = (
        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "UTC time the file was written",
    )
    primary.header["NMAPS"] = (n_maps, "number of map extensions")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HIERARCH cards for long keys
        for key, value in header_extra.items():
            key = str(key).upper()
            card_key = key if len(key) <= 8 and " " not in key else f"HIERARCH {key}"
            if isinstance(value, Path):
                value = str(value)
            if isinstance(value, np.generic):
                value = value.item()
            if not isinstance(value, str | int | float | bool):
                raise GalamInputError(
                    f"{path}: header_extra[{key!r}] = {value!r}; expected a string, number or bool."
                )
            primary.header[card_key] = value
    return primary


def write_maps(
    path: str | os.PathLike,
    maps: Mapping[str, ArrayLike],
    *,
    celestial_wcs: Any = None,
    units: Mapping[str, Any] | None = None,
    header_extra: Mapping[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write maps to a multi-extension FITS file, one extension per quantity.

    Parameters
    ----------
    path
        Target ``.fits`` (or ``.fits.gz``) file.
    maps
        Quantity name -> 2-D array; all the same shape. Names become upper-case
        ``EXTNAME`` (``"log_age"`` -> ``LOG_AGE``). Floats keep float32/float64, integers
        become int32 (int64 if needed), booleans uint8.
    celestial_wcs
        The cube's 2-D celestial WCS (a 3-D WCS is reduced to its celestial part), or
        ``None`` to write no WCS.
    units
        Quantity name -> astropy unit or string, written as ``BUNIT``.
    header_extra
        Keywords for the primary header (provenance: model, cube file, S/N target...).
        Keys longer than 8 characters become HIERARCH cards.
    overwrite
        Replace an existing file (atomically).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    GalamInputError
        When there are no maps, a map is not 2-D or not numeric, shapes differ, two
        names collide once upper-cased, a unit is not a unit, the WCS is not 2-D
        celestial, the suffix is not FITS, or the file exists and ``overwrite`` is
        False.
    """
    from astropy.io import fits

    path = Path(path)
    suffix = _suffix_of(path, MAP_SUFFIXES)
    if suffix is None:
        raise GalamInputError(f"{path}: maps are written as FITS; expected a name ending in .fits.")
    arrays = _checked_map_arrays(path, maps, units or {})
    wcs_header = _celestial_header(celestial_wcs)
    bunits = {str(k).strip().upper(): _unit_string(v, str(k)) for k, v in (units or {}).items()}
    primary = _provenance_hdu(path, len(arrays), header_extra or {})
    hdus: list[Any] = [primary]
    for extname, array in arrays.items():
        header = wcs_header.copy()
        if extname in bunits:
            header["BUNIT"] = bunits[extname]
        hdus.append(fits.ImageHDU(data=array, header=header, name=extname))

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            fits.HDUList(hdus).writeto(tmp, output_verify="exception")

    return _atomic_write(path, suffix, write, overwrite)


def read_maps(path: str | os.PathLike) -> MapSet:
    """Read maps written by :func:`write_maps` (or any MEF of 2-D images).

    Raises
    ------
    GalamInputError
        When the file is missing, not FITS, or holds no 2-D image extension.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    path = Path(path)
    if not path.is_file():
        raise GalamInputError(f"{path}: file not found; expected a FITS file of maps.")
    maps: dict[str, NDArray[Any]] = {}
    units: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                primary = hdul[0].header.copy()
                for index, hdu in enumerate(hdul):
                    if not hdu.is_image or hdu.data is None or hdu.data.ndim != 2:
                        continue
                    name = str(hdu.header.get("EXTNAME", f"HDU{index}")).strip().upper()
                    data = hdu.data
                    maps[name] = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("="))
                    bunit = hdu.header.get("BUNIT")
                    # an empty BUNIT is a dimensionless quantity; no BUNIT means unknown
                    units[name] = (
                        u.Unit(str(bunit).strip(), parse_strict="silent")
                        if bunit is not None
                        else None
                    )
                    headers[name] = hdu.header.copy()
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise GalamInputError(f"{path}: not a readable FITS file ({exc}).") from exc
    if not maps:
        raise GalamInputError(f"{path}: no 2-D image extensions; expected maps.")
    wcs = None
    first = next(iter(headers.values()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            candidate = WCS(first)
        if candidate.has_celestial:
            wcs = candidate.celestial
    except Exception:  # noqa: BLE001 - a broken WCS must not stop the maps loading
        wcs = None
    return MapSet(
        maps=maps, units=units, celestial_wcs=wcs, header=primary, path=path, headers=headers
    )


def _table_format(path: Path) -> tuple[str, str]:
    suffix = path.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise GalamInputError(
            f"{path}: tables are written as ECSV or CSV; expected a name ending in "
            f"{' or '.join(TABLE_FORMATS)}."
        )
    return suffix, TABLE_FORMATS[suffix]


def write_table(path: str | os.PathLike, table: Any, *, overwrite: bool = True) -> Path:
    """Write a result table to ECSV (units, dtypes and ``meta`` kept) or CSV, atomically.

    Parameters
    ----------
    path
        Target ``.ecsv`` or ``.csv`` file.
    table
        An astropy ``Table``/``QTable`` or anything ``Table`` accepts (a dict of
        columns); a list of dicts is taken as rows.
    overwrite
        Replace an existing file (atomically).

    Returns
    -------
    pathlib.Path
    """
    from astropy.table import Table

    path = Path(path)
    suffix, fmt = _table_format(path)
    if not isinstance(table, Table):
        try:
            if isinstance(table, list) and table and isinstance(table[0], Mapping):
                table = Table(rows=table)
            else:
                table = Table(table)
        except (TypeError, ValueError) as exc:
            raise GalamInputError(
                f"{path}: cannot turn {type(table).__name__} into a table ({exc})."
            ) from exc

    def write(tmp: Path) -> None:
        table.write(tmp, format=fmt, overwrite=True)

    return _atomic_write(path, suffix, write, overwrite)


def read_table(path: str | os.PathLike) -> Any:
    """Read an ECSV or CSV table written by :func:`write_table` (an astropy ``Table``)."""
    from astropy.table import Table

    path = Path(path)
    _, fmt = _table_format(path)
    if not path.is_file():
        raise GalamInputError(f"{path}: file not found; expected a {fmt} table.")
    try:
        return Table.read(path, format=fmt)
    except (OSError, ValueError, TypeError) as exc:
        raise GalamInputError(f"{path}: not a readable {fmt} table ({exc}).") from exc
