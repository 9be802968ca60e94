"""Read SDSS fibre spectra (``spec-PLATE-MJD-FIBER.fits``) and one-table spectra.

Layouts accepted (FORMATS.md):

* the DR8+ layout (also DR18): HDU ``COADD`` with ``loglam``/``flux``/``ivar`` columns
  and, in HDU 2, the redshift ``Z`` and its warning flag ``ZWARNING``: a copy of the
  ``specObj`` row (``SPECOBJ``) for SDSS-I/II plates, of the ``spAll`` row (``SPALL``)
  for BOSS/eBOSS plates (DR9-DR17) and SDSS-V ``specFull`` files. Column names are
  matched in any case. BOSS galaxies also carry ``Z_NOQSO`` (the fit without quasar
  templates): it is taken when ``Z`` is flagged and ``ZWARNING_NOQSO`` is not;
* the reduced layout of older pPXF example files: one table with ``wavelength``,
  ``flux`` and ``inverse_variance`` columns and ``Z`` in that table's header;
* a one-table spectrum as specutils writes it (``Spectrum.write(format="tabular-fits")``
  and :func:`napari_galam.io.specutils_bridge.write_spectrum`): ``wavelength`` (any
  length unit), ``flux``, ``uncertainty`` (1-sigma) or ``ivar``, optional ``mask``,
  ``Z`` in a header.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.io.fits import scan_fits

__all__ = [
    "SdssSpectrum",
    "Spectrum1D",
    "read_sdss_spectrum",
    "looks_like_sdss_spectrum",
    "median_snr",
    "real_sdss_spectra",
]


@dataclass(frozen=True)
class SdssSpectrum:
    """One fibre spectrum in the observed frame.

    Attributes
    ----------
    wave
        Observed vacuum wavelength in Angstrom (float64).
    flux
        Flux density in 1e-17 erg/s/cm^2/Angstrom (float32).
    ivar
        Inverse variance of ``flux`` (0 where a pixel is bad).
    redshift
        The pipeline redshift ``Z`` (NaN when the file has none).
    path
        The file it came from.
    layout
        ``"sdss-dr8+"`` (HDU 2 ``SPECOBJ``), ``"boss"`` (HDU 2 ``SPALL``) or
        ``"ppxf-reduced"`` (older pPXF examples) or ``"one-table"`` (other one-table
        spectra, e.g. specutils' tabular FITS).
    meta
        A few header values worth showing (object name, plate, MJD, fibre, class...).
    """

    wave: NDArray[np.float64]
    flux: NDArray[np.float32]
    ivar: NDArray[np.float32]
    redshift: float
    path: Path
    layout: str
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        """A short label: the object name when the file has one, else the file stem."""
        obj = self.meta.get("NAME") or self.meta.get("OBJECT")
        return str(obj) if obj else self.path.name.removesuffix(".gz").removesuffix(".fits")

    @property
    def snr_median(self) -> float:
        """Median signal-to-noise per pixel over the good pixels."""
        return median_snr(self.flux, self.ivar)

    @property
    def flux_unit(self) -> str:
        """Unit of :attr:`flux`, for axis labels."""
        if self.meta.get("FLUX_UNIT"):
            return str(self.meta["FLUX_UNIT"])
        return "1e-17 erg s⁻¹ cm⁻² Å⁻¹"

    @property
    def redshift_warning(self) -> int:
        """The pipeline's ``ZWARNING`` bits for :attr:`redshift` (0: none, or unknown)."""
        try:
            return int(self.meta.get("ZWARNING", 0))
        except (TypeError, ValueError):
            return 0

    @property
    def rest_wave(self) -> NDArray[np.float64]:
        """Rest-frame wavelength (Angstrom), using :attr:`redshift` (observed when NaN)."""
        z = self.redshift if np.isfinite(self.redshift) else 0.0
        return self.wave / (1.0 + z)


@dataclass(frozen=True)
class Spectrum1D:
    """Any other 1-D spectrum to plot, e.g. one spaxel of a cube.

    Attributes
    ----------
    wave, flux, ivar
        Wavelength (Angstrom), flux density and inverse variance (0 = bad).
    name
        A label, e.g. ``"NGC1234 spaxel (y=30, x=41)"``.
    redshift
        NaN when unknown.
    flux_unit
        Unit of ``flux`` for axis labels.
    """

    wave: NDArray[np.float64]
    flux: NDArray[np.float32]
    ivar: NDArray[np.float32]
    name: str
    redshift: float = float("nan")
    flux_unit: str = ""

    @property
    def snr_median(self) -> float:
        """Median signal-to-noise per pixel over the good pixels."""
        return median_snr(self.flux, self.ivar)


def median_snr(flux: NDArray[Any], ivar: NDArray[Any]) -> float:
    """Median of ``flux * sqrt(ivar)`` over pixels with ``ivar > 0`` (NaN if none)."""
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    if not good.any():
        return float("nan")
    return float(np.median(flux[good] * np.sqrt(ivar[good])))


def looks_like_sdss_spectrum(path: str | os.PathLike) -> bool:
    """Cheaply tell whether a FITS file is an SDSS spectrum (reads headers only).

    Never raises and never opens anything but a regular file: a file that cannot be
    scanned (:func:`napari_galam.io.fits.scan_fits`) is "not a spectrum" here, and the
    image reader then reports what is wrong with it.
    """
    try:
        scan = scan_fits(Path(path))
    except GalamInputError:
        return False
    if scan.get("COADD") is not None:
        return True
    if len(scan.hdus) > 1 and scan.hdus[1].is_table:
        header = scan.hdus[1].header
        try:
            n_fields = int(header.get("TFIELDS", 0))
        except (TypeError, ValueError):
            return False
        cols = {str(header.get(f"TTYPE{i}", "")).strip().lower() for i in range(1, n_fields + 1)}
        return {"flux", "loglam"} <= cols or {"flux", "wavelength"} <= cols
    return False


def _column(table: Any, names: tuple[str, ...], path: Path, what: str) -> NDArray[Any]:
    available = {c.lower(): c for c in table.columns.names}
    for name in names:
        if name in available:
            return np.asarray(table[available[name]])
    raise GalamInputError(
        f"{path}: the spectrum table has no {what} column (looked for "
        f"{', '.join(names)}; found {', '.join(table.columns.names)})."
    )


def read_sdss_spectrum(path: str | os.PathLike) -> SdssSpectrum:
    """Read an SDSS ``spec-*.fits`` spectrum.

    Parameters
    ----------
    path
        The FITS file.

    Returns
    -------
    SdssSpectrum

    Raises
    ------
    GalamInputError
        When the file is missing, not FITS, truncated, or lacks a wavelength, flux or
        inverse-variance column. The message names the file and what was missing.
    """
    from astropy.io import fits

    path = Path(path)
    scan_fits(path)  # a regular FITS file whose headers fit in it (or a gzip, not a bomb)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                return _read_open_spectrum(hdul, path)
    except GalamInputError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError) as exc:
        raise GalamInputError(
            f"{path}: not a readable SDSS spectrum (truncated or not FITS: {exc})."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - astropy's table parsing raises many types
        raise GalamInputError(
            f"{path}: not a readable SDSS spectrum ({type(exc).__name__}: {exc})."
        ) from exc


def _read_open_spectrum(hdul: Any, path: Path) -> SdssSpectrum:
    from astropy.io import fits

    names = [h.name.upper() for h in hdul]
    meta: dict[str, Any] = {}
    primary = hdul[0].header
    for key in ("OBJECT", "PLATEID", "MJD", "FIBERID", "RA", "DEC", "TELESCOP"):
        if key in primary:
            meta[key] = primary[key]
    if "COADD" in names:
        table = hdul["COADD"].data
        if table is None or len(table) == 0:
            raise GalamInputError(f"{path}: the COADD table is empty.")
        loglam = _column(table, ("loglam",), path, "wavelength (loglam)")
        wave = np.power(10.0, loglam.astype(np.float64))
        flux = _column(table, ("flux",), path, "flux")
        ivar = _column(table, ("ivar",), path, "inverse variance (ivar)")
        redshift, layout = _redshift_row(hdul, names, meta)
    elif len(hdul) > 1 and isinstance(hdul[1], fits.BinTableHDU):
        table = hdul[1].data
        if table is None or len(table) == 0:
            raise GalamInputError(f"{path}: the spectrum table is empty.")
        cols = {c.lower() for c in table.columns.names}
        if "loglam" in cols:
            wave = np.power(10.0, _column(table, ("loglam",), path, "loglam").astype(np.float64))
        else:
            wave = _column(table, ("wavelength", "wave", "lambda"), path, "wavelength").astype(
                np.float64
            )
        wave = _in_angstrom(table, wave, path)
        flux = _column(table, ("flux",), path, "flux")
        ivar = _one_table_ivar(table, path)
        flux, ivar = _flux_in_sdss_unit(table, wave, flux, ivar, meta)
        header = hdul[1].header
        for key in ("OBJECT", "NAME", "ZWARNING"):
            if key not in meta and (key in header or key in primary):
                meta[key] = header.get(key, primary.get(key))
        redshift = _float_or_nan(header.get("Z", primary.get("Z", np.nan)))
        ppxf_reduced = "inverse_variance" in {c.lower() for c in table.columns.names}
        layout = "ppxf-reduced" if ppxf_reduced else "one-table"
    else:
        raise GalamInputError(
            f"{path}: not an SDSS spectrum; expected a COADD table (loglam, flux, ivar) "
            f"and a SPECOBJ table with Z, found HDUs {', '.join(names)}."
        )
    wave = np.asarray(wave, dtype=np.float64).ravel()
    flux = np.asarray(flux, dtype=np.float32).ravel()
    ivar = np.asarray(ivar, dtype=np.float32).ravel()
    if not (wave.size == flux.size == ivar.size) or wave.size < 2:
        raise GalamInputError(
            f"{path}: wavelength, flux and ivar columns differ in length "
            f"({wave.size}, {flux.size}, {ivar.size}) or are too short."
        )
    if not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0):
        raise GalamInputError(f"{path}: the wavelength column is not finite and increasing.")
    ivar = np.where(np.isfinite(ivar) & (ivar > 0) & np.isfinite(flux), ivar, 0).astype(np.float32)
    return SdssSpectrum(
        wave=wave, flux=flux, ivar=ivar, redshift=redshift, path=path, layout=layout, meta=meta
    )


#: Names of HDU 2 in SDSS spec files: SDSS-I/II plates copy their specObj row, BOSS,
#: eBOSS and SDSS-V their spAll row.
_REDSHIFT_HDUS = {"SPECOBJ": "sdss-dr8+", "SPALL": "boss"}
_ROW_KEYS = (
    "CLASS", "SUBCLASS", "Z_ERR", "ZWARNING", "Z_NOQSO", "ZWARNING_NOQSO", "CLASS_NOQSO",
    "SN_MEDIAN_ALL", "PLUG_RA", "PLUG_DEC", "OBJTYPE",
)  # fmt: skip


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _redshift_row(hdul: Any, names: list[str], meta: dict[str, Any]) -> tuple[float, str]:
    """The redshift of a COADD file from its HDU 2 row; fills ``meta`` with its flags.

    Returns ``(z, layout)``; z is NaN when no table holds a ``Z`` column.
    """
    from astropy.io import fits

    candidates = [hdul[name] for name in _REDSHIFT_HDUS if name in names]
    if not candidates and len(hdul) > 2 and isinstance(hdul[2], fits.BinTableHDU):
        candidates = [hdul[2]]  # an unnamed HDU 2: take it if it has a Z column
    for hdu in candidates:
        table = hdu.data
        if table is None or len(table) == 0:
            continue
        cols = {c.upper(): c for c in table.columns.names}
        if "Z" not in cols:
            continue
        for key in _ROW_KEYS:
            if key in cols:
                value = table[cols[key]][0]
                meta[key] = value.strip() if isinstance(value, str) else value
        redshift = _float_or_nan(table[cols["Z"]][0])
        meta["REDSHIFT_COLUMN"] = "Z"
        flagged = int(meta.get("ZWARNING", 0) or 0) != 0
        if flagged and "Z_NOQSO" in meta and int(meta.get("ZWARNING_NOQSO", 1) or 0) == 0:
            redshift = _float_or_nan(meta["Z_NOQSO"])
            meta["REDSHIFT_COLUMN"] = "Z_NOQSO"
            meta["ZWARNING"] = 0
        return redshift, _REDSHIFT_HDUS.get(hdu.name.upper(), "sdss-dr8+")
    return float("nan"), "boss" if "SPALL" in names else "sdss-dr8+"


def _in_angstrom(table: Any, wave: NDArray[Any], path: Path) -> NDArray[np.float64]:
    """Wavelengths in Angstrom from a column with a length unit (Angstrom when none)."""
    import astropy.units as u

    available = {c.lower(): c for c in table.columns.names}
    column = next((available[n] for n in ("wavelength", "wave", "lambda") if n in available), None)
    unit = table.columns[column].unit if column is not None else None
    if not unit or "loglam" in available:
        return wave
    try:
        return (np.asarray(wave, dtype=np.float64) * u.Unit(unit)).to_value(
            u.AA, equivalencies=u.spectral()
        )
    except (ValueError, TypeError, u.UnitsError) as exc:
        raise GalamInputError(
            f"{path}: the wavelength column is in {unit!r}, not a length; expected Angstrom."
        ) from exc


def _one_table_ivar(table: Any, path: Path) -> NDArray[Any]:
    """Inverse variance of a one-table spectrum: an ivar column or a 1-sigma one."""
    available = {c.lower() for c in table.columns.names}
    if available & {"ivar", "inverse_variance"}:
        ivar = np.asarray(
            _column(table, ("ivar", "inverse_variance"), path, "inverse variance"), np.float64
        )
    else:
        sigma = np.asarray(
            _column(
                table, ("uncertainty", "error", "err", "sigma"), path,
                "inverse variance (ivar) or 1-sigma uncertainty",
            ),
            dtype=np.float64,
        )  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            ivar = np.where(np.isfinite(sigma) & (sigma > 0), 1.0 / sigma**2, 0.0)
    if "mask" in available:
        bad = np.asarray(_column(table, ("mask",), path, "mask")) != 0
        ivar = np.where(bad, 0.0, ivar)
    return ivar


#: The flux unit of SDSS spectra, which the models' inputs are scaled from.
SDSS_FLUX_UNIT = "1e-17 erg / (s cm2 Angstrom)"


def _flux_in_sdss_unit(
    table: Any, wave: NDArray[Any], flux: NDArray[Any], ivar: NDArray[Any], meta: dict[str, Any]
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Flux (and ivar) in 1e-17 erg/s/cm^2/A when the flux column has a unit that converts;
    otherwise as they are, with the column's unit in ``meta["FLUX_UNIT"]``."""
    import astropy.units as u

    available = {c.lower(): c for c in table.columns.names}
    unit = table.columns[available["flux"]].unit if "flux" in available else None
    if not unit:
        return flux, ivar
    try:
        factor = (1.0 * u.Unit(unit)).to_value(
            u.Unit(SDSS_FLUX_UNIT), equivalencies=u.spectral_density(np.asarray(wave) * u.AA)
        )
    except (ValueError, TypeError, u.UnitsError):
        meta["FLUX_UNIT"] = str(unit)
        return flux, ivar
    factor = np.asarray(factor, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(flux, np.float64) * factor, np.asarray(ivar, np.float64) / factor**2


def real_sdss_spectra() -> dict[str, Path]:
    """The real SDSS spectra available offline, by galaxy name.

    NGC 3073 (a star-forming dwarf) and NGC 3522 (an early-type) come with the installed
    pPXF (DR18); NGC 4636 (a giant elliptical, DR12) ships with napari-galam, trimmed from
    the pPXF 8.2.6 source distribution by ``scripts/extract_ngc4636_spectrum.py``.
    Missing files are left out.
    """
    from importlib.resources import files

    found: dict[str, Path] = {}
    try:
        ppxf_spectra = Path(str(files("ppxf") / "spectra"))
    except ModuleNotFoundError:  # pragma: no cover - ppxf is a dependency
        ppxf_spectra = None
    if ppxf_spectra is not None:
        for name in ("NGC3073", "NGC3522"):
            path = ppxf_spectra / f"{name}_SDSS_DR18.fits"
            if path.exists():
                found[name] = path
    shipped = Path(str(files("napari_galam") / "data" / "NGC4636_SDSS_DR12.fits"))
    if shipped.exists():
        found["NGC4636"] = shipped
    return found
