"""Read narrow-band image stacks (J-PAS / J-PLUS / S-PLUS style) into one array.

Three layouts are accepted (FORMATS.md):

* ``"mef"``: a multi-extension FITS with one 2-D image HDU per filter, each header
  carrying ``FILTER`` and optionally ``WAVELEN`` and ``FWHM`` (Angstrom). An image HDU
  whose ``EXTNAME`` ends in ``_VAR`` (variance) or ``_ERR`` (1 sigma) is the
  uncertainty of the filter named in its ``FILTER`` keyword.
* ``"cube+table"``: a 3-D image (one plane per filter) plus a binary table extension
  ``FILTERS`` with columns ``name``, ``wavelength`` and ``fwhm`` (Angstrom, or any
  length unit given to the column); the uncertainty, if any, is an extension named
  ``VAR``/``VARIANCE``/``STAT`` (variance), ``ERR``/``ERROR``/``SIGMA`` (1 sigma) or
  ``IVAR``.
* ``"files"``: a folder or a list of single-filter FITS images, each with ``FILTER``
  (else the file name is the filter name), sorted by ``WAVELEN`` when every file has
  one.

The planes of a stack must share one pixel grid: images whose celestial WCS puts the
grid's centre more than half a pixel away from the first image's are refused. Arrays
are memory-mapped or dask-backed by the lazy FITS layer :mod:`napari_galam.io.fits`,
as the cubes of :mod:`napari_galam.io.cubes` are (``lazy=True``), or read into memory
(``lazy=False``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.io.fits import (
    DiskArray,
    FitsScan,
    HduInfo,
    map_elementwise,
    scan_fits,
    variance_from_ivar,
    variance_from_sigma,
)
from napari_galam.io.headers import celestial_wcs, parse_flux_unit, pixel_scale_arcsec

__all__ = [
    "NARROWBAND_LAYOUTS",
    "NarrowBandStack",
    "read_narrowband",
    "sniff_narrowband",
]

NARROWBAND_LAYOUTS = ("mef", "cube+table", "files")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")

_NAME_COLUMNS = ("name", "filter", "filter_name", "band")
_WAVE_COLUMNS = ("wavelength", "wave", "lambda", "wavelen", "lambda_eff", "pivot")
_FWHM_COLUMNS = ("fwhm", "width", "bandwidth")
_WAVE_KEYS = ("WAVELEN", "LAMBDA", "WAVE")
_FWHM_KEYS = ("FWHM", "BANDWID")

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass(frozen=True)
class NarrowBandStack:
    """A stack of narrow-band images on one pixel grid.

    Attributes
    ----------
    data
        ``(n_filters, ny, nx)``: numpy array (``lazy=False`` or small stacks), memmap
        or dask array.
    filter_names
        One name per plane.
    wavelength
        Central wavelength of each filter in Angstrom (NaN where unknown).
    fwhm
        Filter FWHM in Angstrom (NaN where unknown).
    variance
        Same shape as ``data`` or ``None``.
    celestial_wcs
        2-D celestial WCS of the grid, or ``None``.
    unit
        Unit of ``data`` (``dimensionless_unscaled`` when the file gives none).
    header
        Header of the first image (a copy).
    layout
        One of :data:`NARROWBAND_LAYOUTS`.
    paths
        The file(s) read.
    pixel_scale_arcsec
        Pixel size from the WCS, or ``None``.
    """

    data: Any
    filter_names: tuple[str, ...]
    wavelength: NDArray[np.float64]
    fwhm: NDArray[np.float64]
    variance: Any
    celestial_wcs: Any
    unit: Any
    header: Any
    layout: str
    paths: tuple[Path, ...]
    pixel_scale_arcsec: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_filters, ny, nx)``."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """A label for layers: the file (or folder) name without FITS suffix."""
        name = self.paths[0].name if len(self.paths) == 1 else self.paths[0].parent.name
        for suffix in FITS_SUFFIXES:
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return name


# --------------------------------------------------------------------------------------
# Helpers


def _is_fits_name(path: Path) -> bool:
    return path.name.lower().endswith(FITS_SUFFIXES)


def _as_paths(path_or_paths: PathOrPaths) -> list[Path]:
    if isinstance(path_or_paths, str | os.PathLike):
        path = Path(path_or_paths)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and _is_fits_name(p))
            if not files:
                raise GalamInputError(
                    f"{path}: the folder holds no FITS files; expected one image per filter."
                )
            return files
        return [path]
    paths = [Path(p) for p in path_or_paths]
    if not paths:
        raise GalamInputError("no files given; expected one FITS image per filter.")
    return paths


def _header_float(header: Any, keys: tuple[str, ...]) -> float:
    for key in keys:
        if key in header:
            try:
                return float(header[key])
            except (TypeError, ValueError):
                return float("nan")
    return float("nan")


def _filter_name(hdu: HduInfo) -> str | None:
    value = hdu.header.get("FILTER")
    if value is None or not str(value).strip():
        return None
    return str(value).strip()


def _uncertainty_suffix(hdu: HduInfo) -> str | None:
    for suffix in ("_VAR", "_ERR"):
        if hdu.name.endswith(suffix):
            return suffix
    return None


def _filter_images(scan: FitsScan) -> list[HduInfo]:
    return [
        h
        for h in scan.hdus
        if h.is_image and h.ndim == 2 and _filter_name(h) and _uncertainty_suffix(h) is None
    ]


def _detect(scan: FitsScan) -> str | None:
    filters = scan.get("FILTERS")
    if filters is not None and filters.is_table:
        if any(h.is_image and h.ndim == 3 for h in scan.hdus):
            return "cube+table"
        return None
    if len(_filter_images(scan)) >= 2:
        return "mef"
    if len(_filter_images(scan)) == 1:
        return "files"
    return None


def _column(table: Any, candidates: tuple[str, ...]) -> Any:
    lower = {name.lower(): name for name in table.colnames}
    for candidate in candidates:
        if candidate in lower:
            return table[lower[candidate]]
    return None


def _in_angstrom(column: Any, path: Path, what: str) -> NDArray[np.float64]:
    if column is None:
        return None  # type: ignore[return-value]
    values = np.asarray(column, dtype=np.float64)
    unit = getattr(column, "unit", None)
    if unit is None:
        return values
    try:
        return (values * u.Unit(unit)).to_value(u.AA)
    except (u.UnitConversionError, ValueError, TypeError) as exc:
        raise GalamInputError(
            f"{path}: FILTERS column {what} is in {unit}, not a length; expected Angstrom."
        ) from exc


def _check_same_grid(path: Path, first: Any, header: Any, shape: tuple[int, ...]) -> None:
    """Refuse an image whose celestial WCS is not the first image's (beyond 0.5 px)."""
    other = celestial_wcs(header)
    if first is None or other is None:
        return
    centre = np.array([[(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        world = first.wcs_pix2world(centre, 0)
        back = other.wcs_world2pix(world, 0)
    if not np.all(np.isfinite(back)) or np.hypot(*(back - centre)[0]) > 0.5:
        raise GalamInputError(
            f"{path}: this image is not on the same pixel grid as the first one (its WCS "
            "puts the grid centre elsewhere); reproject the images to one grid first."
        )


def _stack_2d(arrays: list[DiskArray], lazy: bool) -> Any:
    if not lazy:
        return np.stack([a.load().astype(np.float32, copy=False) for a in arrays])
    import dask.array as da

    return da.stack([a.as_dask() for a in arrays])


def _unit_of(header: Any) -> Any:
    unit = parse_flux_unit(header.get("BUNIT"), default=None)
    return unit if unit is not None else u.dimensionless_unscaled


def _finish(
    *,
    data: Any,
    names: list[str],
    wavelength: Any,
    fwhm: Any,
    variance: Any,
    header: Any,
    layout: str,
    paths: list[Path],
) -> NarrowBandStack:
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise GalamInputError(
            f"{paths[0]}: filter names must be unique; repeated: {', '.join(duplicates)}."
        )
    celestial = celestial_wcs(header)
    return NarrowBandStack(
        data=data,
        filter_names=tuple(names),
        wavelength=np.asarray(wavelength, dtype=np.float64),
        fwhm=np.asarray(fwhm, dtype=np.float64),
        variance=variance,
        celestial_wcs=celestial,
        unit=_unit_of(header),
        header=header.copy(),
        layout=layout,
        paths=tuple(paths),
        pixel_scale_arcsec=pixel_scale_arcsec(celestial),
    )


# --------------------------------------------------------------------------------------
# The three layouts


def _read_mef(scan: FitsScan, lazy: bool) -> NarrowBandStack:
    images = _filter_images(scan)
    first = images[0]
    first_wcs = celestial_wcs(first.header)
    for hdu in images[1:]:
        if hdu.shape != first.shape:
            raise GalamInputError(
                f"{scan.path}: filter image {hdu.name} has shape {hdu.shape}; expected "
                f"{first.shape} like {first.name}."
            )
        _check_same_grid(scan.path, first_wcs, hdu.header, hdu.shape)
    names = [_filter_name(h) for h in images]
    uncertainties: dict[str, tuple[str, HduInfo]] = {}
    for hdu in scan.hdus:
        suffix = _uncertainty_suffix(hdu)
        if suffix and hdu.is_image:
            owner = _filter_name(hdu) or hdu.name[: -len(suffix)]
            uncertainties[owner] = (suffix, hdu)
    variance = None
    if uncertainties:
        missing = [n for n in names if n not in uncertainties]
        if missing:
            raise GalamInputError(
                f"{scan.path}: uncertainty extensions (_VAR/_ERR) are missing for filter(s) "
                f"{', '.join(missing)}; give one per filter or none."
            )
        planes = []
        for name in names:
            suffix, hdu = uncertainties[name]
            if hdu.shape != first.shape:
                raise GalamInputError(
                    f"{scan.path}: extension {hdu.name} has shape {hdu.shape}; expected "
                    f"{first.shape} like the filter images."
                )
            array = DiskArray.from_hdu(scan, hdu)
            source = array.as_dask() if lazy else array.load()
            planes.append(
                source
                if suffix == "_VAR"
                else map_elementwise(variance_from_sigma, np.float32, source)
            )
        if lazy:
            import dask.array as da

            variance = da.stack([p.astype(np.float32) for p in planes])
        else:
            variance = np.stack([np.asarray(p, dtype=np.float32) for p in planes])
    data = _stack_2d([DiskArray.from_hdu(scan, h) for h in images], lazy)
    return _finish(
        data=data,
        names=names,
        wavelength=[_header_float(h.header, _WAVE_KEYS) for h in images],
        fwhm=[_header_float(h.header, _FWHM_KEYS) for h in images],
        variance=variance,
        header=first.header,
        layout="mef",
        paths=[scan.path],
    )


def _read_cube_with_table(scan: FitsScan, lazy: bool) -> NarrowBandStack:
    from astropy.io import fits
    from astropy.table import Table

    cube = next(h for h in scan.hdus if h.is_image and h.ndim == 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(scan.path, memmap=False) as hdul:
            table = Table.read(hdul["FILTERS"])
    names_col = _column(table, _NAME_COLUMNS)
    wave_col = _column(table, _WAVE_COLUMNS)
    if names_col is None or wave_col is None:
        raise GalamInputError(
            f"{scan.path}: the FILTERS table has columns {', '.join(table.colnames)}; expected "
            "'name' and 'wavelength' (Angstrom), and optionally 'fwhm'."
        )
    if len(table) != cube.shape[0]:
        raise GalamInputError(
            f"{scan.path}: the FILTERS table has {len(table)} rows but the cube in HDU "
            f"{cube.name} has {cube.shape[0]} planes; expected one row per plane."
        )
    wavelength = _in_angstrom(wave_col, scan.path, "wavelength")
    fwhm_col = _column(table, _FWHM_COLUMNS)
    fwhm = (
        _in_angstrom(fwhm_col, scan.path, "fwhm")
        if fwhm_col is not None
        else np.full(len(table), np.nan)
    )
    flux = DiskArray.from_hdu(scan, cube)
    variance = None
    for names, kind in (
        (("VAR", "VARIANCE", "STAT"), "variance"),
        (("ERR", "ERROR", "SIGMA"), "sigma"),
        (("IVAR",), "ivar"),
    ):
        hdu = next((scan.get(n) for n in names if scan.get(n) is not None), None)
        if hdu is None or hdu is cube:
            continue
        if hdu.shape != cube.shape:
            raise GalamInputError(
                f"{scan.path}: extension {hdu.name} has shape {hdu.shape}; expected "
                f"{cube.shape} like the cube."
            )
        array = DiskArray.from_hdu(scan, hdu)
        if kind == "variance":
            variance = array.lazy() if lazy else array.load()
        else:
            func = variance_from_sigma if kind == "sigma" else variance_from_ivar
            variance = map_elementwise(func, np.float32, array.as_dask() if lazy else array.load())
        break
    data = flux.lazy() if lazy else flux.load().astype(np.float32, copy=False)
    return _finish(
        data=data,
        names=[str(n).strip() for n in names_col],
        wavelength=wavelength,
        fwhm=fwhm,
        variance=variance,
        header=cube.header,
        layout="cube+table",
        paths=[scan.path],
    )


def _read_files(paths: list[Path], lazy: bool) -> NarrowBandStack:
    entries = []
    for path in paths:
        scan = scan_fits(path)
        image = next((h for h in scan.hdus if h.is_image and h.ndim == 2), None)
        if image is None:
            raise GalamInputError(
                f"{path}: no 2-D image in this file; expected one image per filter "
                f"(found HDUs: {scan.listing()})."
            )
        name = _filter_name(image) or path.name.split(".")[0]
        entries.append((scan, image, name))
    first_scan, first, _ = entries[0]
    first_wcs = celestial_wcs(first.header)
    for scan, image, _ in entries[1:]:
        if image.shape != first.shape:
            raise GalamInputError(
                f"{scan.path}: image of shape {image.shape}; expected {first.shape} like "
                f"{first_scan.path.name}."
            )
        _check_same_grid(scan.path, first_wcs, image.header, image.shape)
    wavelength = [_header_float(image.header, _WAVE_KEYS) for _, image, _ in entries]
    if all(np.isfinite(wavelength)):
        order = np.argsort(wavelength, kind="stable")
        entries = [entries[i] for i in order]
    data = _stack_2d([DiskArray.from_hdu(scan, image) for scan, image, _ in entries], lazy)
    return _finish(
        data=data,
        names=[name for _, _, name in entries],
        wavelength=[_header_float(image.header, _WAVE_KEYS) for _, image, _ in entries],
        fwhm=[_header_float(image.header, _FWHM_KEYS) for _, image, _ in entries],
        variance=None,
        header=entries[0][1].header,
        layout="files",
        paths=[scan.path for scan, _, _ in entries],
    )


# --------------------------------------------------------------------------------------
# Public functions


def sniff_narrowband(path_or_paths: PathOrPaths) -> str | None:
    """Say which narrow-band layout a file, folder or list of files has (headers only).

    Returns
    -------
    str or None
        One of :data:`NARROWBAND_LAYOUTS`, or ``None`` when it is not a narrow-band stack.
        A single file qualifies as ``"mef"`` or ``"cube+table"`` only (one image with a
        ``FILTER`` keyword, like an SDSS frame, is not a stack); a folder or list
        qualifies as ``"files"`` when it holds at least two files and each is a single
        image with ``FILTER``.
    """
    try:
        is_folder = isinstance(path_or_paths, str | os.PathLike) and Path(path_or_paths).is_dir()
        paths = _as_paths(path_or_paths)
        if len(paths) == 1 and not is_folder:
            layout = _detect(scan_fits(paths[0]))
            return layout if layout in ("mef", "cube+table") else None
        if len(paths) < 2:
            return None
        for path in paths:
            if _detect(scan_fits(path)) != "files":
                return None
        return "files"
    except (GalamInputError, OSError):
        return None


def read_narrowband(path_or_paths: PathOrPaths, *, lazy: bool = True) -> NarrowBandStack:
    """Read a narrow-band stack: a multi-extension FITS, a cube with a FILTERS table, or
    a folder/list of single-filter images.

    Parameters
    ----------
    path_or_paths
        One FITS file, a folder of FITS images, or a list of FITS images.
    lazy
        Leave arrays on disk (memmap/dask) when ``True``; read them into memory as
        float32 when ``False``.

    Returns
    -------
    NarrowBandStack

    Raises
    ------
    GalamInputError
        When a file is missing or not FITS, when no layout matches, when images differ
        in shape or grid, when the FILTERS table does not match the cube, or when filter
        names repeat. The message names the file and what was expected.
    """
    paths = _as_paths(path_or_paths)
    is_folder = isinstance(path_or_paths, str | os.PathLike) and Path(path_or_paths).is_dir()
    if len(paths) > 1 or is_folder:
        return _read_files(paths, lazy)
    scan = scan_fits(paths[0])
    layout = _detect(scan)
    if layout == "cube+table":
        return _read_cube_with_table(scan, lazy)
    if layout == "mef":
        return _read_mef(scan, lazy)
    if layout == "files":
        return _read_files(paths, lazy)
    raise GalamInputError(
        f"{scan.path}: not a narrow-band stack; expected image extensions with a FILTER "
        "keyword (one per filter) or a 3-D cube with a FILTERS table (name, wavelength, "
        f"fwhm); found HDUs: {scan.listing()}."
    )
