"""Spectra of the synthetic galaxies: SSP mixtures on a log-lambda grid, dust, LOSVD, redshift.

Everything here works on a few *basis spectra* per galaxy (one per stellar population,
each emitting one unit of rest-frame 5070-5950 A light), because every observable of a
pixel or spaxel is a linear combination of them. The SSP library is resampled once onto a
rest-frame grid uniform in log10(lambda) with step :data:`LOG_STEP` (half an SDSS pixel),
where a velocity dispersion is a Gaussian of constant width and a redshift is a shift.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d

from napari_galam.errors import GalamInputError
from napari_galam.simulate.populations import StellarPopulation
from napari_galam.sps.resolution import air_wavelength

__all__ = [
    "LOG_STEP",
    "SPEED_OF_LIGHT_KMS",
    "LogLambdaLibrary",
    "log_lambda_library",
    "observed_log_grid",
    "calzetti_attenuation",
    "basis_rest_spectra",
    "broaden_velocity",
    "shift_to_observed",
    "broaden_constant_fwhm",
    "vacuum_to_air",
]

#: Step of the internal log10(lambda) grids (dex); SDSS pixels are twice as wide.
LOG_STEP: float = 0.5e-4
SPEED_OF_LIGHT_KMS: float = 299792.458
#: Observed-frame wavelength span (A) of the internal observed grid.
OBSERVED_SPAN_A: tuple[float, float] = (3000.0, 11000.0)

_LOG_LIBRARY_CACHE: weakref.WeakKeyDictionary[Any, LogLambdaLibrary] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class LogLambdaLibrary:
    """The SSP templates resampled onto a rest-frame grid uniform in log10(lambda).

    Attributes
    ----------
    loglam
        log10(rest wavelength / A), step :data:`LOG_STEP`.
    templates
        Flux per unit mass, shape (n_ages * n_metals, n_loglam), float32; row
        ``i * n_metals + j`` is age ``i``, metallicity ``j``.
    template_fwhm_a
        The library's spectral resolution (FWHM, A) at 5500 A.
    """

    loglam: NDArray[np.float64]
    templates: NDArray[np.float32]
    template_fwhm_a: float

    @property
    def wave(self) -> NDArray[np.float64]:
        """Rest wavelength (A)."""
        return 10.0**self.loglam


def log_lambda_library(library: Any) -> LogLambdaLibrary:
    """Resample (once per library, cached) the SSPs onto the rest log-lambda grid."""
    cached = _LOG_LIBRARY_CACHE.get(library)
    if cached is not None:
        return cached
    wave = np.asarray(library.wave, dtype=np.float64)
    start = np.ceil(np.log10(wave[0]) / LOG_STEP) * LOG_STEP
    stop = np.floor(np.log10(wave[-1]) / LOG_STEP) * LOG_STEP
    loglam = np.arange(round((stop - start) / LOG_STEP) + 1) * LOG_STEP + start
    flat = np.asarray(library.templates, dtype=np.float64).reshape(wave.size, -1)
    new_wave = 10.0**loglam
    resampled = np.empty((flat.shape[1], loglam.size), dtype=np.float32)
    for row in range(flat.shape[1]):
        resampled[row] = np.interp(new_wave, wave, flat[:, row])
    fwhm_values = np.broadcast_to(np.asarray(library.fwhm, dtype=np.float64), wave.shape)
    fwhm = float(np.interp(5500.0, wave, fwhm_values))
    cached = LogLambdaLibrary(loglam=loglam, templates=resampled, template_fwhm_a=fwhm)
    _LOG_LIBRARY_CACHE[library] = cached
    return cached


def observed_log_grid() -> NDArray[np.float64]:
    """The internal observed-frame log10(lambda) grid, aligned with SDSS's 1e-4 dex pixels."""
    lo, hi = (np.log10(w) for w in OBSERVED_SPAN_A)
    first = np.ceil(lo / LOG_STEP)
    last = np.floor(hi / LOG_STEP)
    return np.arange(first, last + 1) * LOG_STEP


def calzetti_attenuation(wave_a: NDArray[np.floating], ebv: float) -> NDArray[np.float64]:
    """Fraction of light transmitted through a Calzetti et al. (2000) starburst screen.

    Parameters
    ----------
    wave_a
        Rest wavelength (A); the curve is defined from 1200 A to 2.2 micron and extended
        linearly in 1/lambda outside.
    ebv
        Colour excess E(B-V) of the stellar continuum (mag), >= 0.

    Returns
    -------
    numpy.ndarray
        10**(-0.4 * k(lambda) * E(B-V)) with R_V = 4.05.
    """
    if not ebv >= 0:
        raise GalamInputError(f"ebv: expected E(B-V) >= 0 mag, got {ebv}")
    microns = np.asarray(wave_a, dtype=np.float64) / 1e4
    inverse = 1.0 / microns
    r_v = 4.05
    blue = 2.659 * (-2.156 + 1.509 * inverse - 0.198 * inverse**2 + 0.011 * inverse**3) + r_v
    red = 2.659 * (-1.857 + 1.040 * inverse) + r_v
    k = np.where(microns < 0.63, blue, red)
    return 10.0 ** (-0.4 * np.clip(k, 0.0, None) * ebv)


def basis_rest_spectra(
    library: Any,
    populations: tuple[StellarPopulation, ...],
    *,
    ebv: tuple[float, ...] | None = None,
) -> NDArray[np.float64]:
    """Rest-frame spectra of populations on the log-lambda grid, one row per population.

    Each row emits one unit of intrinsic 5070-5950 A light; ``ebv`` (one E(B-V) per
    population) attenuates it with :func:`calzetti_attenuation`.
    """
    log_library = log_lambda_library(library)
    weights = np.stack([p.mass_weights.ravel() for p in populations]).astype(np.float32)
    spectra = (weights @ log_library.templates).astype(np.float64)
    if ebv is not None:
        if len(ebv) != len(populations):
            raise GalamInputError("ebv: give one E(B-V) per population")
        wave = log_library.wave
        curves: dict[float, NDArray[np.float64]] = {}
        for row, value in enumerate(ebv):
            if value > 0:
                if value not in curves:
                    curves[value] = calzetti_attenuation(wave, value)
                spectra[row] *= curves[value]
    return spectra


def broaden_velocity(spectra: NDArray[np.floating], sigma_kms: float) -> NDArray[np.float64]:
    """Convolve log-lambda spectra (last axis) with a Gaussian LOSVD of ``sigma_kms``."""
    if not sigma_kms >= 0:
        raise GalamInputError(f"velocity dispersion: expected >= 0 km/s, got {sigma_kms}")
    sigma_pixels = sigma_kms / (SPEED_OF_LIGHT_KMS * np.log(10.0) * LOG_STEP)
    spectra = np.asarray(spectra, dtype=np.float64)
    if sigma_pixels < 0.05:
        return spectra.copy()
    return gaussian_filter1d(spectra, sigma_pixels, axis=-1, mode="nearest", truncate=4.0)


def vacuum_to_air(wave_vacuum_a: NDArray[np.floating]) -> NDArray[np.float64]:
    """Air wavelengths (A) of vacuum wavelengths (:func:`napari_galam.sps.resolution.air_wavelength`)."""
    return air_wavelength(wave_vacuum_a)


def shift_to_observed(
    spectra: NDArray[np.floating],
    rest_loglam: NDArray[np.floating],
    redshift: float,
    observed_loglam: NDArray[np.floating],
    *,
    vacuum: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Redshift log-lambda spectra onto an observed log-lambda grid.

    Returns the spectra sampled at ``observed_loglam`` (flux per unit rest light, the
    1/(1+z) dimming is left to the flux normalisation) and a mask of the observed pixels
    that the library covers (outside it the edge value is repeated). The library is in
    air wavelengths; with ``vacuum`` the observed grid is in vacuum (as SDSS's).
    """
    observed = np.asarray(observed_loglam, dtype=np.float64)
    if vacuum:
        observed = np.log10(vacuum_to_air(10.0**observed))
    rest_positions = observed - np.log10(1.0 + redshift)
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    out = np.empty((spectra.shape[0], rest_positions.size))
    for row in range(spectra.shape[0]):
        out[row] = np.interp(rest_positions, rest_loglam, spectra[row])
    covered = (rest_positions >= rest_loglam[0]) & (rest_positions <= rest_loglam[-1])
    return out, covered


def broaden_constant_fwhm(
    wave_a: NDArray[np.floating],
    spectra: NDArray[np.floating],
    *,
    fwhm_a: float,
    out_wave_a: NDArray[np.floating],
) -> NDArray[np.float64]:
    """Convolve spectra with a Gaussian of constant FWHM in A and resample to ``out_wave_a``.

    Used for instruments with constant resolution in wavelength (CALIFA V500: 6 A).
    The spectra are first interpolated onto a linear grid four times finer than the
    output, smoothed, then averaged over each output pixel.
    """
    out_wave = np.asarray(out_wave_a, dtype=np.float64)
    step = float(out_wave[1] - out_wave[0]) / 4.0
    fine = np.arange(out_wave[0] - 1.5 * step, out_wave[-1] + 2.0 * step, step)
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    fine_spectra = np.empty((spectra.shape[0], fine.size))
    for row in range(spectra.shape[0]):
        fine_spectra[row] = np.interp(fine, wave_a, spectra[row])
    if fwhm_a > 0:
        fine_spectra = gaussian_filter1d(
            fine_spectra, fwhm_a / 2.3548 / step, axis=-1, mode="nearest", truncate=4.0
        )
    # Average the four fine samples inside each output pixel.
    usable = fine_spectra[:, : (fine.size // 4) * 4].reshape(spectra.shape[0], -1, 4).mean(-1)
    centres = fine[: (fine.size // 4) * 4].reshape(-1, 4).mean(-1)
    out = np.empty((spectra.shape[0], out_wave.size))
    for row in range(spectra.shape[0]):
        out[row] = np.interp(out_wave, centres, usable[row])
    return out
