"""What FITS headers say about units, wavelengths and sky coordinates.

Survey pipelines spell ``BUNIT`` in ways astropy does not read as meant
(:func:`parse_flux_unit`); a cube's spectral axis comes from its WCS or from
CRVAL3/CDELT3 (:func:`wave_from_header`, checked by :func:`checked_wave`); the
celestial WCS and the pixel scale come from :func:`celestial_wcs` and
:func:`pixel_scale_arcsec`. Used by :mod:`napari_galam.io.cubes` and
:mod:`napari_galam.io.narrowband`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "FLAM",
    "parse_flux_unit",
    "spectral_ctype",
    "has_spectral_axis",
    "wave_from_header",
    "checked_wave",
    "celestial_wcs",
    "pixel_scale_arcsec",
    "NOMINAL_PSF_FWHM_ARCSEC",
    "psf_fwhm_arcsec",
]

#: Spectral flux density per Angstrom (erg/s/cm^2/A), the unit IFU surveys scale.
FLAM = u.erg / u.s / u.cm**2 / u.AA


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
    if default is not None and default.is_equivalent(FLAM) and not parsed.is_equivalent(FLAM):
        return default
    return parsed


# --------------------------------------------------------------------------------------
# The spectral axis


def spectral_ctype(header: Any) -> str:
    """``CTYPE3`` stripped and in upper case (``""`` when absent)."""
    return str(header.get("CTYPE3", "")).strip().upper()


def has_spectral_axis(header: Any) -> bool:
    """True when axis 3 is a wavelength axis (``WAVE``/``AWAV`` or a linear CRVAL3/CDELT3)."""
    ctype = spectral_ctype(header)
    if ctype.startswith(("WAVE", "AWAV")):
        return True
    has_step = "CDELT3" in header or "CD3_3" in header
    return ctype in ("", "LAMBDA", "WAVELENGTH", "LINEAR") and "CRVAL3" in header and has_step


def wave_from_header(path: Path, header: Any, n_wave: int, hdu_name: str) -> NDArray[np.float64]:
    """Wavelengths (Angstrom) of the planes of a cube, from its spectral WCS.

    Raises
    ------
    GalamInputError
        When the spectral keywords are missing, not numbers, or give no increasing
        optical/infrared wavelengths.
    """
    try:
        return _wave_from_header(path, header, n_wave, hdu_name)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, GalamInputError):
            raise
        keys = ", ".join(
            f"{key} = {header.get(key)!r}"
            for key in ("CRVAL3", "CDELT3", "CD3_3", "CRPIX3")
            if key in header
        )
        raise GalamInputError(
            f"{path}: HDU {hdu_name} has spectral-axis keywords that are not numbers "
            f"({keys}); expected numeric CRVAL3, CDELT3 (or CD3_3) and CRPIX3."
        ) from exc


def _wave_from_header(path: Path, header: Any, n_wave: int, hdu_name: str) -> NDArray[np.float64]:
    from astropy.wcs import WCS

    ctype = spectral_ctype(header)
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
    elif has_spectral_axis(header):
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
    return checked_wave(path, wave, hdu_name)


def checked_wave(path: Path, wave: NDArray[Any], what: str) -> NDArray[np.float64]:
    """Return ``wave`` as float64 after checking it is an optical/infrared wavelength grid.

    Raises
    ------
    GalamInputError
        When there are fewer than 2 values, they are not finite and strictly increasing,
        or they lie outside 100 Angstrom to 1 mm (``what`` names the source in the message).
    """
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


# --------------------------------------------------------------------------------------
# Sky coordinates


def celestial_wcs(header: Any) -> Any:
    """The 2-D celestial :class:`astropy.wcs.WCS` of a header, or None (none or broken)."""
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


def pixel_scale_arcsec(celestial: Any, default: float | None = None) -> float | None:
    """Mean pixel size in arcsec from a celestial WCS, else ``default``."""
    if celestial is not None:
        from astropy.wcs.utils import proj_plane_pixel_scales

        try:
            scales = proj_plane_pixel_scales(celestial)
            value = round(float(np.mean(scales)) * 3600.0, 9)
            if np.isfinite(value) and value > 0:
                return value
        except Exception:  # noqa: BLE001
            pass
    return default


# --------------------------------------------------------------------------------------
# Spatial resolution

#: The spatial resolution (PSF FWHM, arcsec) a survey's cubes usually have, for files
#: that do not say: CALIFA about 2.5" after its dithering, MaNGA about 2.5" (its cubes
#: also carry ``RFWHM``), MUSE's wide-field mode seeing-limited, about 0.8", J-PAS-like
#: narrow-band images about 0.8". Used to size the independent resolution elements of a
#: map (``core/gradients.py``), where an order of magnitude matters, not 10%.
NOMINAL_PSF_FWHM_ARCSEC: dict[str, float] = {
    "CALIFA": 2.5,
    "MaNGA": 2.5,
    "MUSE": 0.8,
    "J-PAS": 0.8,
}

#: Header keywords that state a cube's PSF FWHM in arcsec (MaNGA's r-band reconstructed
#: PSF, the seeing ESO's pipeline writes for MUSE, and generic ones), in that order.
_PSF_KEYWORDS = ("RFWHM", "SKY_RES", "PSF_FWHM", "PSFFWHM", "SEEING")


def psf_fwhm_arcsec(headers: Any, layout: str | None = None) -> tuple[float | None, str]:
    """A file's spatial resolution (PSF FWHM, arcsec) and where it came from.

    Parameters
    ----------
    headers
        A FITS header, or several (searched in order) for the keywords of
        :data:`_PSF_KEYWORDS`.
    layout
        The survey layout (see :data:`NOMINAL_PSF_FWHM_ARCSEC`) for the nominal value when
        no header says.

    Returns
    -------
    (fwhm, source)
        ``(None, "unknown")`` when neither a header nor the layout tells.
    """
    for header in headers if isinstance(headers, (list, tuple)) else [headers]:
        if header is None:
            continue
        for keyword in _PSF_KEYWORDS:
            try:
                value = float(header.get(keyword))
            except (TypeError, ValueError):
                continue
            if np.isfinite(value) and 0 < value < 60:
                return value, f"header {keyword}"
    if layout in NOMINAL_PSF_FWHM_ARCSEC:
        return NOMINAL_PSF_FWHM_ARCSEC[layout], f"nominal for {layout}"
    return None, "unknown"
