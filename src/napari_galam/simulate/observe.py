"""From a galaxy model to observed-frame basis spectra, band fluxes and fibre light.

:func:`observed_basis` turns the four basis populations of a :class:`GalaxyModel` into
observed-frame spectra in erg/s/cm^2/A, scaled so that the whole galaxy has its total r
magnitude; a pixel's spectrum is then ``light_maps[:, y, x] @ spectra`` and its gri flux
``light_maps[:, y, x] @ band_nanomaggies``. :func:`fibre_light` gives the light of each
basis population that falls into a circular fibre under Gaussian seeing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import fftconvolve

from napari_galam.errors import GalamInputError
from napari_galam.simulate.galaxy import GalaxyModel
from napari_galam.simulate.galaxy_maps import light_maps
from napari_galam.simulate.spectral import (
    SPEED_OF_LIGHT_KMS,
    basis_rest_spectra,
    broaden_velocity,
    log_lambda_library,
    observed_log_grid,
    shift_to_observed,
)

__all__ = [
    "BandSet",
    "band_set",
    "ObservedBasis",
    "observed_basis",
    "fibre_light",
    "gaussian_kernel",
    "SDSS_RESOLUTION",
]

#: SDSS spectrograph resolving power (lambda / FWHM).
SDSS_RESOLUTION: float = 2000.0
_C_A_PER_S = 2.99792458e18
_AB_ZERO_FNU = 3631e-23  # erg/s/cm^2/Hz


@dataclass(frozen=True)
class BandSet:
    """Filters resampled on the internal observed log-lambda grid.

    Attributes
    ----------
    names
        Filter names as speclite spells them.
    matrix
        (n_bands, n_loglam): ``spectrum @ matrix.T`` is the photon-weighted mean f_lambda.
    nanomaggies_per_flam
        Factor turning that mean f_lambda (erg/s/cm^2/A) into AB nanomaggies.
    centres_a, fwhm_a
        Effective wavelength and full width at half maximum of each filter (A).
    """

    names: tuple[str, ...]
    matrix: NDArray[np.float64]
    nanomaggies_per_flam: NDArray[np.float64]
    centres_a: NDArray[np.float64]
    fwhm_a: NDArray[np.float64]


def _fwhm(wave: NDArray[np.float64], response: NDArray[np.float64]) -> float:
    above = wave[response >= 0.5 * response.max()]
    return float(above[-1] - above[0])


@lru_cache(maxsize=16)
def band_set(names: tuple[str, ...]) -> BandSet:
    """The filters ``names`` (speclite names, e.g. ``sdss2010-r``) on the observed grid."""
    from napari_galam.sps.filters import load_filters
    from napari_galam.sps.photometry import filter_matrix

    filters = load_filters(list(names))
    wave = 10.0 ** observed_log_grid()
    matrix = np.asarray(filter_matrix(wave, filters), dtype=np.float64)
    factors = []
    centres = []
    widths = []
    for response in filters:
        w = np.asarray(response.wavelength, dtype=np.float64)
        r = np.asarray(response.response, dtype=np.float64)
        pivot_squared = np.trapezoid(r * w, w) / np.trapezoid(r / w, w)
        factors.append(1e9 * pivot_squared / (_C_A_PER_S * _AB_ZERO_FNU))
        centres.append(float(response.effective_wavelength.value))
        widths.append(_fwhm(w, r))
    return BandSet(
        names=tuple(names),
        matrix=np.nan_to_num(matrix),
        nanomaggies_per_flam=np.array(factors),
        centres_a=np.array(centres),
        fwhm_a=np.array(widths),
    )


SDSS_GRI: tuple[str, ...] = ("sdss2010-g", "sdss2010-r", "sdss2010-i")


@dataclass(frozen=True)
class ObservedBasis:
    """Observed-frame spectra of a galaxy's four basis populations.

    Attributes
    ----------
    loglam
        Observed log10(lambda / A), the internal grid (step 0.5e-4 dex), vacuum or air.
    spectra
        (4, n_loglam) in erg/s/cm^2/A per unit share of the galaxy's band light: the whole
        galaxy is ``total_light @ spectra``.
    covered
        Observed pixels that the SSP library covers in the rest frame.
    total_light
        Share of the galaxy's band light in each basis population (sums to 1).
    sigma_kms
        Gaussian broadening applied (galaxy dispersion plus instrument, minus templates).
    """

    loglam: NDArray[np.float64]
    spectra: NDArray[np.float64]
    covered: NDArray[np.bool_]
    total_light: NDArray[np.float64]
    sigma_kms: float

    def band_nanomaggies(self, bands: BandSet) -> NDArray[np.float64]:
        """(4, n_bands) AB nanomaggies per unit share of band light."""
        return (self.spectra @ bands.matrix.T) * bands.nanomaggies_per_flam


def observed_basis(
    galaxy: GalaxyModel,
    *,
    library: Any,
    resolution: float | None = SDSS_RESOLUTION,
    vacuum: bool = True,
    broaden: bool = True,
) -> ObservedBasis:
    """Dusty, broadened, redshifted basis spectra of ``galaxy``, normalised to its r magnitude.

    Parameters
    ----------
    galaxy
        The model.
    library
        The SSP library.
    resolution
        Instrumental resolving power added in quadrature (the templates' own resolution,
        taken at 5500 A, is subtracted); None: only the galaxy's dispersion.
    vacuum
        Observed wavelengths in vacuum (SDSS) rather than air.
    broaden
        Apply the line-of-sight velocity distribution and resolution; False (faster) when
        only broad-band fluxes are needed.
    """
    log_library = log_lambda_library(library)
    rest = basis_rest_spectra(library, galaxy.populations, ebv=galaxy.ebv)
    sigma = galaxy.velocity_dispersion_kms
    if resolution is not None:
        sigma_instrument = SPEED_OF_LIGHT_KMS / (resolution * 2.3548)
        sigma_template = SPEED_OF_LIGHT_KMS * log_library.template_fwhm_a / (2.3548 * 5500.0)
        sigma = float(np.sqrt(max(sigma**2 + sigma_instrument**2 - sigma_template**2, 0.0)))
    if broaden:
        rest = broaden_velocity(rest, sigma)
    else:
        sigma = 0.0
    loglam = observed_log_grid()
    spectra, covered = shift_to_observed(
        rest, log_library.loglam, galaxy.redshift, loglam, vacuum=vacuum
    )
    total_light = galaxy.total_basis_light()
    bands = band_set(SDSS_GRI)
    r_flam = float(total_light @ (spectra @ bands.matrix[1]))
    target_flam = 10 ** (-0.4 * (galaxy.mag_r - 22.5)) / bands.nanomaggies_per_flam[1]
    spectra *= target_flam / r_flam
    return ObservedBasis(
        loglam=loglam, spectra=spectra, covered=covered, total_light=total_light, sigma_kms=sigma
    )


def gaussian_kernel(fwhm_px: float, *, size: int | None = None) -> NDArray[np.float64]:
    """A normalised 2-D Gaussian kernel of a FWHM in pixels."""
    sigma = fwhm_px / 2.3548
    if size is None:
        size = 2 * int(np.ceil(4 * sigma)) + 1
    offsets = np.arange(size) - size // 2
    profile = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = np.outer(profile, profile)
    return kernel / kernel.sum()


def fibre_light(
    galaxy: GalaxyModel,
    *,
    seeing_fwhm_arcsec: float = 1.4,
    diameter_arcsec: float = 3.0,
    offset_arcsec: tuple[float, float] = (0.0, 0.0),
) -> NDArray[np.float64]:
    """Share of the galaxy's band light of each basis population inside a circular fibre.

    Parameters
    ----------
    galaxy
        The model.
    seeing_fwhm_arcsec
        Gaussian seeing FWHM, > 0.
    diameter_arcsec
        Fibre diameter (SDSS: 3 arcsec).
    offset_arcsec
        Fibre centre relative to the galaxy centre (x, y).

    Returns
    -------
    numpy.ndarray
        Shape (4,), in the same units as :meth:`GalaxyModel.total_basis_light`.
    """
    if not seeing_fwhm_arcsec > 0:
        raise GalamInputError(f"seeing_fwhm_arcsec: expected > 0, got {seeing_fwhm_arcsec}")
    if not diameter_arcsec > 0:
        raise GalamInputError(f"diameter_arcsec: expected > 0, got {diameter_arcsec}")
    scale = min(0.2, galaxy.re_arcsec / 5.0, diameter_arcsec / 10.0)
    half_width = 0.5 * diameter_arcsec + 2.5 * seeing_fwhm_arcsec + np.hypot(*offset_arcsec)
    half = int(np.ceil(half_width / scale))
    shape = (2 * half + 1, 2 * half + 1)
    maps = light_maps(galaxy, shape=shape, pixel_scale=scale, centre_xy=(half, half))
    kernel = gaussian_kernel(seeing_fwhm_arcsec / scale)
    blurred = fftconvolve(maps, kernel[None], mode="same", axes=(1, 2))
    oversample = 5
    offsets = (np.arange(oversample) + 0.5) / oversample - 0.5
    coords = (np.arange(shape[0])[:, None] + offsets[None, :]).ravel() - half
    ys = coords[:, None] - offset_arcsec[1] / scale
    xs = coords[None, :] - offset_arcsec[0] / scale
    inside = (np.hypot(xs, ys) <= 0.5 * diameter_arcsec / scale).astype(np.float64)
    aperture = inside.reshape(shape[0], oversample, shape[1], oversample).mean(axis=(1, 3))
    return np.clip(np.tensordot(blurred, aperture, axes=([1, 2], [0, 1])), 0.0, None)
