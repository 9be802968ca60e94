"""Synthetic photometry of many spectra at once, as one matrix product.

Passing a spectrum through a filter is linear in the spectrum, so on a fixed wavelength
grid the photon-weighted mean flux density in each band is a row of a matrix:

    <f_lam>_k = sum_p M[k, p] f_lam(wave_p),
    M[k, p] = R_k(wave_p) wave_p dw_p / sum_q R_k(wave_q) wave_q dw_q,

with ``dw`` the trapezoid weights of the grid and ``R_k`` the filter response interpolated
linearly onto it (speclite's convention for photon-counting detectors). Photometry of
``N`` spectra is then ``flux @ M.T``: one BLAS call for 10 000 spectra, for a whole IFU
cube, or for the SSP templates themselves (so that the photometry of any mixture of SSPs
is the same mixture of the SSPs' photometry). AB maggies divide by the same average of
the AB reference spectrum (3631 Jy) on the same grid.

A filter whose response is not zero beyond the ends of ``wave`` cannot be measured: by
default that raises :class:`~napari_galam.errors.GalamInputError`; with
``outside="nan"`` its row is NaN and so are its fluxes and magnitudes, which lets one
matrix serve a set of filters of which some fall off a redshifted spectrum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import speclite.filters
from numpy.typing import ArrayLike, NDArray

from napari_galam.errors import GalamInputError
from napari_galam.sps.filters import load_filters

__all__ = [
    "AB_REFERENCE_FNU",
    "SPEED_OF_LIGHT_AA_S",
    "ab_magnitudes",
    "ab_maggies",
    "ab_reference_flam",
    "filter_matrix",
    "flam_to_fnu",
    "fnu_to_flam",
    "synthetic_fluxes",
]

#: Speed of light in Angstrom per second.
SPEED_OF_LIGHT_AA_S = 2.99792458e18
#: AB reference flux density, 3631 Jy, in erg/s/cm^2/Hz.
AB_REFERENCE_FNU = 3631e-23

FilterLike = speclite.filters.FilterSequence | str | Iterable[str]


def flam_to_fnu(wave: ArrayLike, flam: ArrayLike) -> NDArray[np.float64]:
    """Convert f_lambda (erg/s/cm^2/Angstrom) to f_nu (erg/s/cm^2/Hz) at ``wave`` (Angstrom)."""
    wave = np.asarray(wave, dtype=np.float64)
    return np.asarray(flam, dtype=np.float64) * wave**2 / SPEED_OF_LIGHT_AA_S


def fnu_to_flam(wave: ArrayLike, fnu: ArrayLike) -> NDArray[np.float64]:
    """Convert f_nu (erg/s/cm^2/Hz) to f_lambda (erg/s/cm^2/Angstrom) at ``wave`` (Angstrom)."""
    wave = np.asarray(wave, dtype=np.float64)
    return np.asarray(fnu, dtype=np.float64) * SPEED_OF_LIGHT_AA_S / wave**2


def ab_reference_flam(wave: ArrayLike) -> NDArray[np.float64]:
    """The AB zero-magnitude spectrum (3631 Jy) as f_lambda in erg/s/cm^2/Angstrom."""
    wave = np.asarray(wave, dtype=np.float64)
    return fnu_to_flam(wave, np.full(wave.shape, AB_REFERENCE_FNU))


def _as_filter_sequence(filters: FilterLike) -> speclite.filters.FilterSequence:
    if isinstance(filters, speclite.filters.FilterSequence):
        return filters
    return load_filters(filters)


def _check_wave(wave: ArrayLike) -> NDArray[np.float64]:
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or wave.size < 2:
        raise GalamInputError(f"wave: expected a 1-D wavelength array, got shape {wave.shape}")
    if not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0):
        raise GalamInputError("wave: wavelengths must be finite and strictly increasing")
    return wave


def _trapezoid_weights(wave: NDArray[np.float64]) -> NDArray[np.float64]:
    weights = np.empty_like(wave)
    steps = np.diff(wave)
    weights[0] = 0.5 * steps[0]
    weights[-1] = 0.5 * steps[-1]
    weights[1:-1] = 0.5 * (steps[:-1] + steps[1:])
    return weights


def filter_matrix(
    wave: ArrayLike,
    filters: FilterLike,
    *,
    outside: Literal["raise", "nan"] = "raise",
) -> NDArray[np.float64]:
    """Weights that turn spectra on ``wave`` into mean flux densities in each filter.

    Parameters
    ----------
    wave : array_like, shape (npix,)
        Strictly increasing wavelengths in Angstrom, in the frame of the filters (for a
        rest-frame spectrum at redshift z, pass ``wave * (1 + z)``).
    filters : speclite FilterSequence, name or names
        The filters (names as accepted by :func:`napari_galam.sps.filters.load_filters`).
    outside : {"raise", "nan"}, optional
        What to do with a filter whose response reaches beyond ``wave``: raise
        ``GalamInputError`` (default) or return a row of NaN.

    Returns
    -------
    ndarray, shape (n_filters, npix)
        ``M`` such that ``flux @ M.T`` is the photon-weighted mean f_lambda in each band;
        each finite row sums to 1.

    Raises
    ------
    GalamInputError
        If ``wave`` is not a strictly increasing 1-D array, a filter name is unknown,
        ``outside`` is not recognised, or (with ``outside="raise"``) a filter is not
        covered.
    """
    if outside not in ("raise", "nan"):
        raise GalamInputError(f"outside: expected 'raise' or 'nan', got {outside!r}")
    wave = _check_wave(wave)
    sequence = _as_filter_sequence(filters)
    quadrature = _trapezoid_weights(wave) * wave
    matrix = np.empty((len(sequence), wave.size))
    for k, response in enumerate(sequence):
        curve_wave = np.asarray(response.wavelength)
        curve = np.asarray(response.response)
        support = curve_wave[[0, -1]]  # speclite curves end in one zero on each side
        covered = wave[0] <= support[0] and wave[-1] >= support[1]
        row = np.interp(wave, curve_wave, curve, left=0.0, right=0.0) * quadrature
        if not covered or row.sum() <= 0:
            if outside == "raise":
                raise GalamInputError(
                    f"filter {response.name} ({support[0]:.0f}-{support[1]:.0f} Angstrom) "
                    f"is not covered by the spectrum ({wave[0]:.0f}-{wave[-1]:.0f} Angstrom); "
                    "drop it, or pass outside='nan'"
                )
            matrix[k] = np.nan
            continue
        matrix[k] = row / row.sum()
    return matrix


def _apply(
    wave: ArrayLike, flux: ArrayLike, filters: FilterLike | NDArray, outside: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    wave = _check_wave(wave)
    flux = np.asarray(flux)
    if flux.shape[-1:] != wave.shape:
        raise GalamInputError(
            f"flux: expected the last axis to match wave ({wave.size} pixels), "
            f"got shape {flux.shape}"
        )
    if isinstance(filters, np.ndarray) and filters.dtype.kind == "f":
        matrix = filters
        if matrix.ndim != 2 or matrix.shape[1] != wave.size:
            raise GalamInputError(
                f"filters: a filter matrix must have shape (n_filters, {wave.size}), "
                f"got {matrix.shape}"
            )
    else:
        matrix = filter_matrix(wave, filters, outside=outside)
    return matrix, flux @ matrix.T


def synthetic_fluxes(
    wave: ArrayLike,
    flux: ArrayLike,
    filters: FilterLike | NDArray[np.float64],
    *,
    outside: Literal["raise", "nan"] = "raise",
) -> NDArray[np.float64]:
    """Photon-weighted mean flux density of many spectra in each filter.

    Parameters
    ----------
    wave : array_like, shape (npix,)
        Wavelengths in Angstrom (frame of the filters).
    flux : array_like, shape (..., npix)
        f_lambda spectra, any units; one matrix product for all of them.
    filters : speclite FilterSequence, name(s), or ndarray (n_filters, npix)
        Filters, or a matrix already made by :func:`filter_matrix` for this ``wave``.
    outside : {"raise", "nan"}, optional
        See :func:`filter_matrix`.

    Returns
    -------
    ndarray, shape (..., n_filters)
        Mean f_lambda in each band, in the units of ``flux``.
    """
    return _apply(wave, flux, filters, outside)[1]


def ab_maggies(
    wave: ArrayLike,
    flux: ArrayLike,
    filters: FilterLike | NDArray[np.float64],
    *,
    outside: Literal["raise", "nan"] = "raise",
) -> NDArray[np.float64]:
    """AB maggies (flux relative to 3631 Jy) of f_lambda spectra in erg/s/cm^2/Angstrom.

    Parameters and shapes are those of :func:`synthetic_fluxes`.
    """
    wave = _check_wave(wave)
    matrix, fluxes = _apply(wave, flux, filters, outside)
    return fluxes / (matrix @ ab_reference_flam(wave))


def ab_magnitudes(
    wave: ArrayLike,
    flux: ArrayLike,
    filters: FilterLike | NDArray[np.float64],
    *,
    outside: Literal["raise", "nan"] = "raise",
) -> NDArray[np.float64]:
    """AB magnitudes of f_lambda spectra in erg/s/cm^2/Angstrom, many at once.

    Parameters
    ----------
    wave : array_like, shape (npix,)
        Wavelengths in Angstrom (frame of the filters).
    flux : array_like, shape (..., npix)
        f_lambda in erg/s/cm^2/Angstrom.
    filters : speclite FilterSequence, name(s), or ndarray (n_filters, npix)
        Filters, or a matrix made by :func:`filter_matrix` for this ``wave``.
    outside : {"raise", "nan"}, optional
        See :func:`filter_matrix`.

    Returns
    -------
    ndarray, shape (..., n_filters)
        ``-2.5 log10(maggies)``; NaN where the band flux is not positive or the filter
        is not covered.
    """
    maggies = ab_maggies(wave, flux, filters, outside=outside)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(maggies > 0, -2.5 * np.log10(np.where(maggies > 0, maggies, 1.0)), np.nan)
