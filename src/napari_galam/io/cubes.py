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

This module knows the survey layouts; reading HDUs lazily is
:mod:`napari_galam.io.fits`, and units, wavelength axes and sky coordinates come from
:mod:`napari_galam.io.headers`.

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
import os
from collections.abc import Callable
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
    check_not_truncated,
    close_gzip_streams,
    map_elementwise,
    scan_fits,
    variance_from_ivar,
    variance_from_sigma,
)
from napari_galam.io.headers import (
    FLAM,
    celestial_wcs,
    checked_wave,
    has_spectral_axis,
    parse_flux_unit,
    pixel_scale_arcsec,
    spectral_ctype,
    wave_from_header,
)

__all__ = [
    "CUBE_LAYOUTS",
    "SpectralCube",
    "read_cube",
    "sniff_cube_layout",
    "detect_cube_layout",
    "spaxel_spectrum",
    "close_gzip_streams",
]

CUBE_LAYOUTS = ("CALIFA", "MaNGA", "MUSE", "generic")

#: Bit of MANGA_DRP3PIXMASK that marks a pixel unfit for science (DONOTUSE).
MANGA_DONOTUSE_BIT = 10

_LAYOUT_UNITS = {
    "CALIFA": u.Unit(1e-16 * FLAM),
    "MaNGA": u.Unit(1e-17 * FLAM),
    "MUSE": u.Unit(1e-20 * FLAM),
}
_LAYOUT_PIXEL_SCALE = {"CALIFA": 1.0, "MaNGA": 0.5, "MUSE": 0.2}
_VARIANCE_NAMES = ("VAR", "VARIANCE", "STAT")
_SIGMA_NAMES = ("ERR", "ERROR", "SIGMA", "NOISE")
_IVAR_NAMES = ("IVAR",)
_MASK_NAMES = ("MASK", "DQ", "BADPIX", "QUALITY")


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
# Bad-pixel masks


def _nonzero(mask: NDArray[Any]) -> NDArray[np.bool_]:
    return np.asarray(mask) != 0


def _manga_bad(mask: NDArray[Any], ivar: NDArray[Any]) -> NDArray[np.bool_]:
    bits = np.asarray(mask).astype(np.int64)
    donotuse = (bits & (1 << MANGA_DONOTUSE_BIT)) != 0
    return donotuse | ~(np.asarray(ivar) > 0)


# --------------------------------------------------------------------------------------
# Layout detection


def _detect_layout(scan: FitsScan) -> str | None:
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
        if hdu.is_image and hdu.ndim == 3 and has_spectral_axis(hdu.header):
            return "generic"
    return None


def _not_a_cube_message(scan: FitsScan) -> str:
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


def _medium(layout: str, header: Any) -> str:
    ctype = spectral_ctype(header)
    if ctype.startswith("AWAV"):
        return "air"
    if ctype.startswith("WAVE"):
        return "vacuum" if layout != "CALIFA" else "air"
    return {"CALIFA": "air", "MaNGA": "vacuum", "MUSE": "air"}.get(layout, "unknown")


# --------------------------------------------------------------------------------------
# The plan: everything decided from headers, before any array is built


@dataclass(frozen=True)
class _CubePlan:
    layout: str
    flux: DiskArray
    flux_hdu: HduInfo
    wave: NDArray[np.float64]
    variance: DiskArray | None = None
    variance_kind: str = ""  # "variance", "sigma", "ivar"
    mask: DiskArray | None = None
    mask_kind: str = ""  # "nonzero", "manga"


def _require(scan: FitsScan, names: tuple[str, ...], layout: str) -> None:
    missing = [n for n in names if scan.get(n) is None]
    if missing:
        raise GalamInputError(
            f"{scan.path}: looks like a {layout} cube but lacks extension(s) "
            f"{', '.join(missing)}; a {layout} cube has {', '.join(names)} "
            f"(found: {scan.listing()})."
        )


def _cube_hdu(scan: FitsScan, hdu: HduInfo) -> DiskArray:
    if not hdu.is_image or hdu.ndim != 3:
        naxis = hdu.header.get("NAXIS", 0)
        raise GalamInputError(
            f"{scan.path}: HDU {hdu.name} has NAXIS = {naxis}; expected a 3-D cube "
            "(NAXIS = 3: x, y, wavelength)."
        )
    return DiskArray.from_hdu(scan, hdu)


def _companion(scan: FitsScan, hdu: HduInfo, flux: DiskArray) -> DiskArray:
    if not hdu.is_image or hdu.shape != flux.shape:
        raise GalamInputError(
            f"{scan.path}: extension {hdu.name} has shape {hdu.shape or '(none)'}; expected "
            f"{flux.shape} like the flux cube {flux.label}."
        )
    return DiskArray.from_hdu(scan, hdu)


def _plan_cube(scan: FitsScan, layout: str) -> _CubePlan:
    path = scan.path
    if layout == "CALIFA":
        _require(scan, ("PRIMARY", "ERROR", "BADPIX"), "CALIFA")
        hdu = scan.hdus[0]
        flux = _cube_hdu(scan, hdu)
        wave = wave_from_header(path, hdu.header, flux.shape[0], hdu.name)
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
        wave = checked_wave(path, DiskArray.from_hdu(scan, wave_hdu).load(), "WAVE")
        plan = _CubePlan(
            layout, flux, hdu, wave,
            variance=_companion(scan, scan.get("IVAR"), flux), variance_kind="ivar",
            mask=_companion(scan, scan.get("MASK"), flux), mask_kind="manga",
        )  # fmt: skip
    elif layout == "MUSE":
        hdu = scan.get("DATA")
        flux = _cube_hdu(scan, hdu)
        wave = wave_from_header(path, hdu.header, flux.shape[0], hdu.name)
        stat, dq = scan.get("STAT"), scan.get("DQ")
        plan = _CubePlan(
            layout, flux, hdu, wave,
            variance=_companion(scan, stat, flux) if stat else None, variance_kind="variance",
            mask=_companion(scan, dq, flux) if dq else None, mask_kind="nonzero",
        )  # fmt: skip
    else:
        hdu = next(
            h for h in scan.hdus if h.is_image and h.ndim == 3 and has_spectral_axis(h.header)
        )
        flux = _cube_hdu(scan, hdu)
        wave = wave_from_header(path, hdu.header, flux.shape[0], hdu.name)
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
    check_not_truncated(scan, [a for a in (plan.flux, plan.variance, plan.mask) if a is not None])
    return plan


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
        scan = scan_fits(Path(path))
        layout = _detect_layout(scan)
        if layout is None:
            return None
        _plan_cube(scan, layout)
    except (GalamInputError, OSError):
        return None
    return layout


def detect_cube_layout(path: str | os.PathLike) -> str | None:
    """The cube layout a file's headers point to, even when the cube is broken.

    Unlike :func:`sniff_cube_layout`, the cube is not checked further, so a caller can
    tell "a broken cube" (then :func:`read_cube` explains what is wrong) from "not a
    cube at all". Never raises.
    """
    try:
        return _detect_layout(scan_fits(Path(path)))
    except (GalamInputError, OSError):
        return None


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
    scan = scan_fits(path)
    layout = _detect_layout(scan)
    if layout is None:
        raise GalamInputError(_not_a_cube_message(scan))
    plan = _plan_cube(scan, layout)
    _check_some_flux_is_finite(plan)

    data, variance, mask = _cube_arrays(plan, lazy)
    header = plan.flux_hdu.header
    celestial = celestial_wcs(header)
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
        pixel_scale_arcsec=pixel_scale_arcsec(celestial, _LAYOUT_PIXEL_SCALE.get(layout)),
        path=path,
        wave_medium=_medium(layout, header),
        primary_header=scan.hdus[0].header.copy(),
        meta={"hdus": scan.listing(), "gzipped": scan.gzipped, "flux_hdu": plan.flux_hdu.name},
        spaxel_reader=reader,
    )


def _check_some_flux_is_finite(plan: _CubePlan) -> None:
    """Refuse a cube whose sampled planes hold no finite flux (an all-NaN cube).

    Five planes spread over the cube are read (one, the middle plane, for a gzipped
    file, where each read decompresses up to it), which costs a few planes' bytes.
    """
    n_wave = plan.flux.shape[0]
    if plan.flux.gzipped:
        planes = [n_wave // 2]
    else:
        planes = sorted({int(i) for i in np.linspace(0, n_wave - 1, min(5, n_wave))})
    for index in planes:
        if np.isfinite(plan.flux.read_planes(index, index + 1)).any():
            return
    raise GalamInputError(
        f"{plan.flux.path}: no finite flux value in the {len(planes)} plane(s) checked "
        f"({', '.join(str(i) for i in planes)} of {n_wave}) of HDU {plan.flux_hdu.name}: "
        "every spaxel is NaN or infinite there; expected a cube with measured flux."
    )


def _cube_arrays(plan: _CubePlan, lazy: bool) -> tuple[Any, Any, Any]:
    """Flux, variance (converted from sigma or inverse variance) and boolean bad-pixel
    mask of a planned cube: lazy (memmap or dask) or in memory."""

    def get(array: DiskArray) -> Any:
        return array.lazy() if lazy else array.load()

    def get_for_map(array: DiskArray) -> Any:
        return array.as_dask() if lazy else array.load()

    data = get(plan.flux)
    variance = None
    if plan.variance is not None:
        if plan.variance_kind == "variance":
            variance = get(plan.variance)
        elif plan.variance_kind == "sigma":
            variance = map_elementwise(variance_from_sigma, np.float32, get_for_map(plan.variance))
        else:
            variance = map_elementwise(variance_from_ivar, np.float32, get_for_map(plan.variance))
    mask = None
    if plan.mask is not None:
        if plan.mask_kind == "manga":
            mask = map_elementwise(
                _manga_bad, bool, get_for_map(plan.mask), get_for_map(plan.variance)
            )
        else:
            mask = map_elementwise(_nonzero, bool, get_for_map(plan.mask))
    return data, variance, mask


def _read_spaxel(plan: _CubePlan, y: int, x: int) -> tuple[Any, Any, Any]:
    """Flux, variance and bad-pixel flags of one spaxel, converted as in read_cube."""
    flux = plan.flux.column(y, x)
    variance = raw_variance = None
    if plan.variance is not None:
        raw_variance = plan.variance.column(y, x)
        convert = {"sigma": variance_from_sigma, "ivar": variance_from_ivar}.get(plan.variance_kind)
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
