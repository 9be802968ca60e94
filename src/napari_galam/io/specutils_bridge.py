"""specutils in and out: the package's spectra as ``specutils.Spectrum`` and back.

Astronomers who work in jdaviz or specutils hold spectra as :class:`specutils.Spectrum`
(specutils >= 2; ``Spectrum1D`` before). This module converts both ways without losing
flux, wavelength or uncertainty:

* :func:`to_specutils`: an SDSS spectrum or a spaxel's spectrum
  (:class:`~napari_galam.io.spectra.SdssSpectrum`, :class:`~napari_galam.io.spectra.Spectrum1D`)
  becomes a ``Spectrum`` with its flux unit, the wavelength in Angstrom, an
  ``InverseVariance`` uncertainty, a mask (True where the inverse variance is 0) and
  the redshift;
* :func:`from_specutils`: any 1-D ``Spectrum`` (any spectral unit and flux density unit,
  any uncertainty class) becomes a ``Spectrum1D`` the models' preprocessing reads;
* :func:`cube_to_specutils`: an IFU cube (or a window of it) as a 3-D ``Spectrum``;
* :func:`write_spectrum`: the specutils ``tabular-fits`` file that
  ``Spectrum.read`` opens and :func:`~napari_galam.io.spectra.read_sdss_spectrum` reads
  back, with the redshift in the primary header (``Z``);
* :func:`model_input_of` and :func:`spectra_model_inputs`: the spectra-only model's
  input from any of these objects, which is how the prediction API takes a ``Spectrum``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.io.spectra import SDSS_FLUX_UNIT, SdssSpectrum, Spectrum1D

__all__ = [
    "is_specutils_spectrum",
    "to_specutils",
    "from_specutils",
    "cube_to_specutils",
    "write_spectrum",
    "as_package_spectrum",
    "model_input_of",
    "spectra_model_inputs",
    "MAX_CUBE_VALUES",
]

#: Largest cube (values) :func:`cube_to_specutils` loads into memory at once.
MAX_CUBE_VALUES = 200_000_000


def is_specutils_spectrum(obj: Any) -> bool:
    """Whether ``obj`` is a ``specutils.Spectrum`` (without importing specutils)."""
    return any(
        cls.__module__.startswith("specutils") and cls.__name__ in ("Spectrum", "Spectrum1D")
        for cls in type(obj).__mro__
    )


def _flux_unit_of(spectrum: SdssSpectrum | Spectrum1D) -> Any:
    import astropy.units as u

    if isinstance(spectrum, SdssSpectrum) and not spectrum.meta.get("FLUX_UNIT"):
        return u.Unit(SDSS_FLUX_UNIT)
    text = spectrum.flux_unit if isinstance(spectrum, Spectrum1D) else spectrum.meta["FLUX_UNIT"]
    try:
        return u.Unit(str(text).replace("⁻¹", "-1").replace("⁻²", "-2").replace("Å", "Angstrom"))
    except ValueError:
        return u.dimensionless_unscaled


def to_specutils(spectrum: SdssSpectrum | Spectrum1D) -> Any:
    """The ``specutils.Spectrum`` of a spectrum this package read.

    Parameters
    ----------
    spectrum
        An SDSS spectrum or a spaxel's ``Spectrum1D``.

    Returns
    -------
    specutils.Spectrum
        Flux with its unit (1e-17 erg/s/cm^2/A for SDSS), spectral axis in Angstrom
        (observed frame), ``InverseVariance`` uncertainty, ``mask`` True where the
        inverse variance is 0, ``redshift`` (0 when unknown) and ``meta`` with
        ``name``, ``path`` and the file's header values.
    """
    import astropy.units as u
    from astropy.nddata import InverseVariance
    from specutils import Spectrum

    if is_specutils_spectrum(spectrum):
        return spectrum
    unit = _flux_unit_of(spectrum)
    ivar = np.asarray(spectrum.ivar, dtype=np.float64)
    meta: dict[str, Any] = {"name": spectrum.name}
    if isinstance(spectrum, SdssSpectrum):
        meta.update(path=str(spectrum.path), layout=spectrum.layout, **spectrum.meta)
    z = float(spectrum.redshift)
    return Spectrum(
        flux=np.asarray(spectrum.flux, dtype=np.float64) * unit,
        spectral_axis=np.asarray(spectrum.wave, dtype=np.float64) * u.AA,
        uncertainty=InverseVariance(ivar * unit**-2),
        mask=~(np.isfinite(ivar) & (ivar > 0)),
        redshift=z if np.isfinite(z) else 0.0,
        meta=meta,
    )


def _ivar_of(spectrum: Any, flux_unit: Any) -> NDArray[np.float64]:
    """Inverse variance in ``flux_unit**-2`` from any NDData uncertainty (ones if none)."""
    from astropy.nddata import InverseVariance

    n = spectrum.flux.shape
    if spectrum.uncertainty is None:
        ivar = np.ones(n)
    else:
        represented = spectrum.uncertainty.represent_as(InverseVariance)
        quantity = represented.quantity
        if quantity.unit is None or quantity.unit == "":
            ivar = np.asarray(represented.array, dtype=np.float64)
        else:
            ivar = quantity.to_value(flux_unit**-2)
    ivar = np.where(np.isfinite(ivar) & (ivar > 0), ivar, 0.0)
    if spectrum.mask is not None:
        ivar = np.where(np.asarray(spectrum.mask, dtype=bool), 0.0, ivar)
    return ivar


def from_specutils(
    spectrum: Any, *, redshift: float | None = None, name: str | None = None
) -> Spectrum1D:
    """A 1-D ``specutils.Spectrum`` as the package's :class:`Spectrum1D`.

    Parameters
    ----------
    spectrum
        A 1-D ``Spectrum`` (or ``Spectrum1D`` of specutils < 2) with a spectral axis in
        any spectral unit (wavelength, frequency, energy) and any uncertainty class.
    redshift
        The galaxy's redshift; default the spectrum's own ``redshift`` when it is not 0
        (specutils' default), else unknown (NaN).
    name
        A label; default ``meta["name"]``, ``meta["header"]["OBJECT"]`` or "spectrum".

    Returns
    -------
    Spectrum1D
        Wavelength in Angstrom, increasing; flux in the spectrum's unit; inverse
        variance (0 where masked or unknown).

    Raises
    ------
    GalamInputError
        When the spectrum is not 1-D or its spectral axis is not spectral.
    """
    import astropy.units as u

    if not is_specutils_spectrum(spectrum):
        raise GalamInputError(
            f"from_specutils: expected a specutils Spectrum, got {type(spectrum).__name__}."
        )
    if spectrum.flux.ndim != 1:
        raise GalamInputError(
            f"from_specutils: expected a 1-D spectrum, got flux of shape {spectrum.flux.shape} "
            "(take one spaxel first, e.g. spectrum[y, x])."
        )
    try:
        wave = spectrum.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
    except u.UnitsError as exc:
        raise GalamInputError(
            f"from_specutils: the spectral axis is in {spectrum.spectral_axis.unit}, which "
            "is not a wavelength, frequency or energy."
        ) from exc
    flux_unit = spectrum.flux.unit
    flux = np.asarray(spectrum.flux.value, dtype=np.float64)
    ivar = _ivar_of(spectrum, flux_unit)
    wave = np.asarray(wave, dtype=np.float64)
    order = np.argsort(wave, kind="stable")
    meta = dict(spectrum.meta or {})
    header = meta.get("header") or {}
    label = name or meta.get("name") or header.get("OBJECT") or "spectrum"
    if redshift is None:
        own = float(np.asarray(u.Quantity(getattr(spectrum, "redshift", 0.0)).value))
        redshift = own if own != 0.0 else float(header.get("Z", np.nan))
    return Spectrum1D(
        wave=wave[order],
        flux=flux[order].astype(np.float32),
        ivar=ivar[order].astype(np.float32),
        name=str(label),
        redshift=float(redshift),
        flux_unit=flux_unit.to_string(),
    )


def cube_to_specutils(cube: Any, *, rows: slice = slice(None), cols: slice = slice(None)) -> Any:
    """An IFU cube (or a window of it) as a 3-D ``specutils.Spectrum``.

    Parameters
    ----------
    cube
        A :class:`~napari_galam.io.cubes.SpectralCube`.
    rows, cols
        The spaxels to take (all by default).

    Returns
    -------
    specutils.Spectrum
        Flux ``(ny, nx, n_wave)`` in the cube's unit, spectral axis in Angstrom,
        ``VarianceUncertainty`` when the cube has a variance, mask True where bad.

    Raises
    ------
    GalamInputError
        When the window holds more than :data:`MAX_CUBE_VALUES` values (pass ``rows``
        and ``cols`` to take a part).
    """
    import astropy.units as u
    from astropy.nddata import VarianceUncertainty
    from specutils import Spectrum

    flux = cube.data[:, rows, cols]
    if int(np.prod(flux.shape)) > MAX_CUBE_VALUES:
        raise GalamInputError(
            f"{cube.path}: {int(np.prod(flux.shape)):,} values is more than "
            f"{MAX_CUBE_VALUES:,} to hold in memory; take a window with rows= and cols=."
        )
    flux = np.moveaxis(np.asarray(flux, dtype=np.float64), 0, -1)
    unit = cube.unit if cube.unit is not None else u.dimensionless_unscaled
    unit = u.Unit(unit)
    uncertainty = None
    if cube.variance is not None:
        variance = np.moveaxis(np.asarray(cube.variance[:, rows, cols], np.float64), 0, -1)
        uncertainty = VarianceUncertainty(variance * unit**2)
    mask = ~np.isfinite(flux)
    if cube.mask is not None:
        mask |= np.moveaxis(np.asarray(cube.mask[:, rows, cols], dtype=bool), 0, -1)
    return Spectrum(
        flux=flux * unit,
        spectral_axis=np.asarray(cube.wave, dtype=np.float64) * u.AA,
        uncertainty=uncertainty,
        mask=mask,
        meta={"name": cube.name, "path": str(cube.path), "layout": cube.layout},
    )


def write_spectrum(spectrum: Any, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write a spectrum as specutils' ``tabular-fits`` (``Spectrum.read`` opens it).

    Parameters
    ----------
    spectrum
        An SDSS spectrum, a ``Spectrum1D`` or a 1-D ``specutils.Spectrum``.
    path
        The ``.fits`` file to write (written to a temporary name, then moved).
    overwrite
        Replace an existing file.

    Returns
    -------
    Path
        The file written. Its table has ``wavelength`` (Angstrom), ``flux`` (with its
        unit), ``uncertainty`` (1 sigma; NaN where bad) and ``mask``; the primary
        header has ``Z`` (when known), ``ZWARNING`` and ``OBJECT``.
    """
    import astropy.units as u
    from astropy.io import fits
    from astropy.nddata import StdDevUncertainty
    from specutils import Spectrum

    path = Path(path)
    if path.exists() and not overwrite:
        raise GalamInputError(f"{path}: exists; pass overwrite=True to replace it.")
    ours = as_package_spectrum(spectrum)
    unit = _flux_unit_of(ours)
    ivar = np.asarray(ours.ivar, dtype=np.float64)
    good = np.isfinite(ivar) & (ivar > 0)
    sigma = np.full(ivar.shape, np.nan)
    sigma[good] = 1.0 / np.sqrt(ivar[good])
    header = fits.Header()
    if np.isfinite(ours.redshift):
        header["Z"] = (float(ours.redshift), "redshift")
    meta = getattr(ours, "meta", {}) or {}
    if "ZWARNING" in meta:
        header["ZWARNING"] = (int(meta["ZWARNING"]), "redshift warning flags (0: none)")
    header["OBJECT"] = str(ours.name)[:68]
    table_spectrum = Spectrum(
        flux=np.asarray(ours.flux, dtype=np.float64) * unit,
        spectral_axis=np.asarray(ours.wave, dtype=np.float64) * u.AA,
        uncertainty=StdDevUncertainty(sigma * unit),
        mask=(~good).astype(np.int16),
        meta={"header": header},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    try:
        table_spectrum.write(temporary, format="tabular-fits", overwrite=True)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def as_package_spectrum(spectrum: Any, *, redshift: float | None = None) -> Any:
    """``spectrum`` as this package's type: a ``specutils.Spectrum`` is converted
    (:func:`from_specutils`), an ``SdssSpectrum``/``Spectrum1D`` returned as it is."""
    if is_specutils_spectrum(spectrum):
        return from_specutils(spectrum, redshift=redshift)
    if isinstance(spectrum, SdssSpectrum | Spectrum1D):
        return spectrum
    raise GalamInputError(
        f"expected a spectrum (specutils Spectrum, SdssSpectrum or Spectrum1D), got "
        f"{type(spectrum).__name__}."
    )


def model_input_of(spectrum: Any, frame: str, *, redshift: float | None = None) -> NDArray[Any]:
    """The spectra-only model's input of one spectrum (specutils or this package's).

    Parameters
    ----------
    spectrum
        A ``specutils.Spectrum``, ``SdssSpectrum`` or ``Spectrum1D``.
    frame
        The model's frame (:func:`napari_galam.models.registry.spectrum_frame`).
    redshift
        Overrides the spectrum's own redshift (needed in the rest frame).

    Raises
    ------
    GalamInputError
        When the spectrum has no good pixel, or the rest frame lacks a redshift.
    """
    from napari_galam.core.preprocess import model_spectrum

    ours = as_package_spectrum(spectrum, redshift=redshift)
    z = ours.redshift if redshift is None else float(redshift)
    good = np.asarray(ours.ivar) > 0
    if not good.any():
        raise GalamInputError(f"{ours.name}: no pixel has a positive inverse variance.")
    try:
        return model_spectrum(
            np.asarray(ours.wave)[good], np.asarray(ours.flux)[good], redshift=z, frame=frame
        )
    except GalamError as exc:
        raise GalamInputError(f"{ours.name}: {exc}") from exc


def spectra_model_inputs(spectra: Sequence[Any], frame: str) -> NDArray[np.float32]:
    """Stack the model inputs of spectra objects; arrays already prepared pass through."""
    rows = [
        np.asarray(s, dtype=np.float32) if isinstance(s, np.ndarray) else model_input_of(s, frame)
        for s in spectra
    ]
    if not rows:
        raise GalamInputError("spectra: no spectrum given.")
    return np.stack(rows).astype(np.float32, copy=False)
