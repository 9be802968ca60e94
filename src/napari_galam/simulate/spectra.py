"""SDSS-like fibre spectra of synthetic galaxies, with their exact labels.

The spectrum is what a 3-arcsec fibre collects under the seeing: the basis populations'
observed spectra weighted by their light inside the fibre, on SDSS's coadd grid
(vacuum log10 lambda in steps of 1e-4 dex, 3800-9200 A), at R ~ 2000, with a sky
spectrum (continuum and the brightest night-sky lines) and Poisson-like noise scaled to a
chosen median S/N. The labels are the luminosity-weighted log age and [M/H] of the light
inside the fibre, as the MMLforGalAM labels (pPXF fits of SDSS fibre spectra) are.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.simulate.galaxy import GalaxyModel
from napari_galam.simulate.observe import (
    SDSS_RESOLUTION,
    ObservedBasis,
    fibre_light,
    observed_basis,
)
from napari_galam.simulate.spectral import LOG_STEP

__all__ = [
    "SDSS_LOGLAM",
    "MML_WAVE",
    "FibreSpectrum",
    "render_fibre_spectrum",
    "sdss_sky_spectrum",
    "to_linear_grid",
]

#: SDSS coadd grid: vacuum log10(lambda / A) from 3.5800 in steps of 1e-4 (3802-9198 A).
SDSS_LOGLAM: NDArray[np.float64] = np.round(3.58 + 1e-4 * np.arange(3838), 4)
#: The MMLforGalAM spectrum grid: observed frame, 1 A steps, 3830-8000 A (4171 points).
MML_WAVE: NDArray[np.float64] = np.arange(3830.0, 8001.0, 1.0)
#: and_mask bit for pixels the simulation cannot model (outside the SSP library).
NOPLUG_NODATA_BIT = 1 << 1
#: SDSS and_mask bit BRIGHTSKY (sky much brighter than the object).
BRIGHTSKY_BIT = 1 << 23

# Bright night-sky emission lines (vacuum A) and relative strengths.
_SKY_LINES = np.array(
    [
        (4359.6, 3.0),
        (5462.3, 2.5),
        (5578.9, 30.0),
        (5891.6, 6.0),
        (5897.6, 5.0),
        (6302.0, 10.0),
        (6365.5, 3.5),
        (6865.0, 4.0),
        (7278.4, 3.0),
        (7318.3, 4.0),
        (7343.0, 3.0),
        (7571.8, 3.5),
        (7716.2, 3.0),
        (7752.2, 3.0),
        (7796.0, 3.5),
        (7823.8, 3.0),
        (7855.4, 3.5),
        (7916.0, 4.5),
        (7966.9, 5.0),
        (8001.4, 4.0),
        (8062.4, 4.0),
        (8291.3, 6.0),
        (8346.8, 7.0),
        (8401.7, 7.0),
        (8432.5, 6.0),
        (8467.1, 5.5),
        (8507.0, 4.0),
        (8829.4, 7.0),
        (8888.0, 7.0),
        (8922.3, 6.5),
        (8960.4, 6.5),
        (9002.8, 6.0),
        (9042.7, 5.0),
        (9095.1, 5.5),
        (9152.0, 6.0),
    ]
)


@dataclass(frozen=True)
class FibreSpectrum:
    """A simulated SDSS fibre spectrum and its truth.

    Attributes
    ----------
    loglam
        Vacuum log10(lambda / A) (:data:`SDSS_LOGLAM`).
    flux, ivar
        Noisy f_lambda in 1e-17 erg/s/cm^2/A and its inverse variance.
    model
        The noiseless spectrum.
    sky
        The sky spectrum that was subtracted (same units).
    and_mask
        SDSS-style bit mask (BRIGHTSKY; pixels outside the SSP library: ivar = 0).
    wdisp
        Dispersion (Gaussian sigma) in units of 1e-4 dex pixels.
    redshift, snr, velocity_dispersion_kms
        Truth: the galaxy's redshift, the median S/N per pixel, its dispersion.
    log_age, mh
        Luminosity-weighted (rest 5070-5950 A) log10(age / yr) and [M/H] of the light
        inside the fibre.
    fibre_light
        Share of the galaxy's band light of each basis population inside the fibre.
    """

    loglam: NDArray[np.float64]
    flux: NDArray[np.float32]
    ivar: NDArray[np.float32]
    model: NDArray[np.float32]
    sky: NDArray[np.float32]
    and_mask: NDArray[np.int32]
    wdisp: NDArray[np.float32]
    redshift: float
    snr: float
    velocity_dispersion_kms: float
    log_age: float
    mh: float
    fibre_light: NDArray[np.float64]

    @property
    def wave(self) -> NDArray[np.float64]:
        """Vacuum wavelength (A)."""
        return 10.0**self.loglam


@lru_cache(maxsize=1)
def _sdss_grid_sky() -> NDArray[np.float64]:
    sky = sdss_sky_spectrum(SDSS_LOGLAM)
    sky.setflags(write=False)
    return sky


def sdss_sky_spectrum(loglam: NDArray[np.floating]) -> NDArray[np.float64]:
    """A smooth model of the SDSS night sky through a fibre, 1e-17 erg/s/cm^2/A.

    A continuum rising to the red plus the brightest [O I], Na D, Hg and OH lines at the
    instrument's resolution; used for the noise, not subtracted residuals.
    """
    wave = 10.0 ** np.asarray(loglam, dtype=np.float64)
    sky = 3.0 + 4.0 * ((wave - 3800.0) / 5400.0) ** 1.5
    sigma = wave / (SDSS_RESOLUTION * 2.3548)
    for centre, strength in _SKY_LINES:
        sky += 12.0 * strength * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)
    return sky


def render_fibre_spectrum(
    galaxy: GalaxyModel,
    *,
    rng: np.random.Generator,
    library: Any,
    snr: float,
    seeing_fwhm_arcsec: float = 1.4,
    basis: ObservedBasis | None = None,
) -> FibreSpectrum:
    """Render the SDSS fibre spectrum of ``galaxy`` with a median S/N per pixel of ``snr``.

    Parameters
    ----------
    galaxy
        The model.
    rng
        Random generator for the noise.
    library
        The SSP library.
    snr
        Median signal-to-noise ratio per pixel, > 0 (SDSS galaxies: about 5-50).
    seeing_fwhm_arcsec
        Seeing while observing (sets the light in the fibre).
    basis
        The galaxy's :func:`~napari_galam.simulate.observe.observed_basis` at SDSS
        resolution in vacuum, if already computed.

    Returns
    -------
    FibreSpectrum
    """
    if not (np.isfinite(snr) and snr > 0):
        raise GalamInputError(f"snr: the signal-to-noise ratio must be > 0, got {snr}")
    basis = basis or observed_basis(galaxy, library=library)
    light = fibre_light(galaxy, seeing_fwhm_arcsec=seeing_fwhm_arcsec)
    fine = light @ basis.spectra * 1e17
    # Each SDSS pixel spans two internal pixels: average with weights 1/4, 1/2, 1/4.
    index = np.rint((SDSS_LOGLAM - basis.loglam[0]) / LOG_STEP).astype(int)
    model = 0.25 * fine[index - 1] + 0.5 * fine[index] + 0.25 * fine[index + 1]
    covered = basis.covered[index - 1] & basis.covered[index + 1]
    sky = _sdss_grid_sky()
    shape = np.sqrt(np.clip(model, 0.0, None) + sky)
    scale = float(np.median(model[covered] / shape[covered])) / snr
    sigma = scale * shape
    flux = model + sigma * rng.standard_normal(model.size)
    ivar = np.where(covered, 1.0 / sigma**2, 0.0)
    and_mask = np.zeros(model.size, dtype=np.int32)
    and_mask[~covered] |= NOPLUG_NODATA_BIT
    bright = sky > 4.0 * np.clip(model, 1e-3, None)
    and_mask[bright] |= BRIGHTSKY_BIT
    wdisp = np.full(
        model.size, 1.0 / (SDSS_RESOLUTION * 2.3548 * np.log(10.0) * 1e-4), dtype=np.float32
    )
    total = float(light.sum())
    if total <= 0:
        raise GalamInputError("galaxy: no light falls into the fibre")
    # Offsets from the first population keep the labels exact when all are equal.
    ages, metals = galaxy.basis_log_ages, galaxy.basis_mh
    log_age = float(ages[0] + light @ (ages - ages[0]) / total)
    mh = float(metals[0] + light @ (metals - metals[0]) / total)
    return FibreSpectrum(
        loglam=SDSS_LOGLAM.copy(),
        flux=flux.astype(np.float32),
        ivar=ivar.astype(np.float32),
        model=model.astype(np.float32),
        sky=sky.astype(np.float32),
        and_mask=and_mask,
        wdisp=wdisp,
        redshift=galaxy.redshift,
        snr=float(snr),
        velocity_dispersion_kms=galaxy.velocity_dispersion_kms,
        log_age=log_age,
        mh=mh,
        fibre_light=light,
    )


def to_linear_grid(
    loglam: NDArray[np.floating], flux: NDArray[np.floating], wave: NDArray[np.floating] = MML_WAVE
) -> NDArray[np.float32]:
    """Linear interpolation of log-lambda spectra (last axis) onto ``wave`` (MMLforGalAM grid).

    Wavelengths outside the spectrum get the edge values.
    """
    source = 10.0 ** np.asarray(loglam, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    if flux.ndim == 1:
        return np.interp(wave, source, flux).astype(np.float32)
    out = np.empty(flux.shape[:-1] + (len(wave),), dtype=np.float32)
    for index in np.ndindex(flux.shape[:-1]):
        out[index] = np.interp(wave, source, flux[index])
    return out
