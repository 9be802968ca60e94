"""Read SDSS fibre spectra (``spec-PLATE-MJD-FIBER.fits``).

Two layouts are accepted (FORMATS.md):

* the DR8+ layout (also DR18): HDU ``COADD`` with ``loglam``/``flux``/``ivar`` columns
  and HDU ``SPECOBJ`` with the redshift ``Z``;
* the reduced layout of older pPXF example files: one table with ``wavelength``,
  ``flux`` and ``inverse_variance`` columns and ``Z`` in that table's header.
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
        ``"sdss-dr8+"`` or ``"ppxf-reduced"``.
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
        return "1e-17 erg s⁻¹ cm⁻² Å⁻¹"

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
        redshift = float("nan")
        if "SPECOBJ" in names and hdul["SPECOBJ"].data is not None:
            specobj = hdul["SPECOBJ"].data
            cols = {c.upper(): c for c in specobj.columns.names}
            if "Z" in cols:
                redshift = float(specobj[cols["Z"]][0])
            for key in ("CLASS", "ZWARNING", "SN_MEDIAN_ALL", "PLUG_RA", "PLUG_DEC"):
                if key in cols:
                    value = specobj[cols[key]][0]
                    meta[key] = value.strip() if isinstance(value, str) else value
        layout = "sdss-dr8+"
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
        flux = _column(table, ("flux",), path, "flux")
        ivar = _column(table, ("ivar", "inverse_variance"), path, "inverse variance")
        header = hdul[1].header
        redshift = float(header.get("Z", primary.get("Z", np.nan)))
        layout = "ppxf-reduced"
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
