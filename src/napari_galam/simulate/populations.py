"""Stellar populations of the synthetic galaxies: known mixtures of the shipped E-MILES SSPs.

A :class:`StellarPopulation` is a set of mass weights over the SSP grid (ages x [M/H]),
normalised so that the population emits exactly one unit of light in the rest-frame
5070-5950 A band (pPXF's light-weighting band). With that normalisation a mixture of
populations whose coefficients are *band light* has luminosity-weighted labels that are
the coefficient-weighted means of the populations' own labels, exactly. Every pixel and
spaxel of a simulated galaxy is such a mixture, so its labels are exact.

The enrichment history inside one population follows an age-metallicity relation (the
younger stars are the more metal-rich), spread over neighbouring SSPs; the grid's own
age-metallicity degeneracy is left in the spectra untouched.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "StellarPopulation",
    "default_library",
    "band_light",
    "population_from_weights",
    "single_ssp_population",
    "composite_population",
    "luminosity_weighted_labels",
]

#: Rest-frame band (A) in which pPXF normalises templates for light weighting.
LIGHT_BAND_A: tuple[float, float] = (5070.0, 5950.0)

_BAND_LIGHT_CACHE: weakref.WeakKeyDictionary[Any, NDArray[np.float64]] = weakref.WeakKeyDictionary()


def default_library() -> Any:
    """The shipped E-MILES SSP library (``napari_galam.sps.library.load_ssp_library``)."""
    from napari_galam.sps.library import load_ssp_library

    return load_ssp_library()


def band_light(library: Any) -> NDArray[np.float64]:
    """Mean rest-frame 5070-5950 A flux per unit mass of each SSP, shape (n_ages, n_metals)."""
    cached = _BAND_LIGHT_CACHE.get(library)
    if cached is None:
        cached = np.asarray(library.band_luminosity(*LIGHT_BAND_A), dtype=np.float64)
        _BAND_LIGHT_CACHE[library] = cached
    return cached


@dataclass(frozen=True)
class StellarPopulation:
    """A known mixture of SSPs.

    Attributes
    ----------
    mass_weights
        Stellar mass in each SSP, shape (n_ages, n_metals), scaled so that the mixture emits
        one unit of rest-frame 5070-5950 A light.
    log_age
        Luminosity-weighted log10(age / yr).
    mh
        Luminosity-weighted [M/H].
    """

    mass_weights: NDArray[np.float64]
    log_age: float
    mh: float


def luminosity_weighted_labels(
    library: Any, mass_weights: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Luminosity-weighted log age and [M/H] of mass weights of shape (..., n_ages, n_metals).

    The light weights are mass x mean flux in the rest-frame 5070-5950 A band (pPXF's
    convention), so the result is what pPXF's light-weighted mean of the same weights gives.
    """
    weights = np.asarray(mass_weights, dtype=np.float64)
    light = weights * band_light(library)
    total = light.sum(axis=(-2, -1))
    if np.any(total <= 0):
        raise GalamInputError("mass_weights: every mixture needs some positive weight")
    log_age = np.einsum("...ij,i->...", light, np.asarray(library.log_ages, float)) / total
    mh = np.einsum("...ij,j->...", light, np.asarray(library.metals, float)) / total
    return log_age, mh


def population_from_weights(library: Any, mass_weights: NDArray[np.floating]) -> StellarPopulation:
    """Normalise mass weights to unit band light and compute their labels."""
    weights = np.asarray(mass_weights, dtype=np.float64)
    expected = (library.n_ages, library.n_metals)
    if weights.shape != expected:
        raise GalamInputError(f"mass_weights: expected shape {expected}, got {weights.shape}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise GalamInputError("mass_weights: must be finite, non-negative and not all zero")
    weights = weights / float(np.sum(weights * band_light(library)))
    log_age, mh = luminosity_weighted_labels(library, weights)
    weights.setflags(write=False)
    return StellarPopulation(mass_weights=weights, log_age=float(log_age), mh=float(mh))


def single_ssp_population(library: Any, *, age_index: int, metal_index: int) -> StellarPopulation:
    """A population made of one SSP of the grid; its labels are that SSP's age and [M/H]."""
    if not 0 <= age_index < library.n_ages:
        raise GalamInputError(f"age_index: expected 0..{library.n_ages - 1}, got {age_index}")
    if not 0 <= metal_index < library.n_metals:
        raise GalamInputError(f"metal_index: expected 0..{library.n_metals - 1}, got {metal_index}")
    weights = np.zeros((library.n_ages, library.n_metals))
    weights[age_index, metal_index] = 1.0
    population = population_from_weights(library, weights)
    # Exact labels, free of rounding in the weighted mean.
    return StellarPopulation(
        mass_weights=population.mass_weights,
        log_age=float(library.log_ages[age_index]),
        mh=float(library.metals[metal_index]),
    )


def composite_population(
    library: Any,
    *,
    log_age: float,
    mh: float,
    log_age_spread: float = 0.15,
    enrichment_slope: float = -0.25,
) -> StellarPopulation:
    """A population with an extended star-formation and enrichment history.

    The mass is spread over the grid's ages as a Gaussian in log age centred on ``log_age``
    (width ``log_age_spread`` dex); the stars of each age have the metallicity
    ``mh + enrichment_slope * (log_age_i - log_age)`` (negative slope: younger stars are
    more metal-rich), shared linearly between the two bracketing metallicities of the grid.

    Parameters
    ----------
    library
        The SSP library (:func:`default_library`).
    log_age, mh
        Centre of the history, log10(age / yr) and [M/H]; clipped to the grid.
    log_age_spread
        Width of the age distribution in dex, > 0.
    enrichment_slope
        d[M/H] / dlog(age) of the enrichment history.

    Returns
    -------
    StellarPopulation
        Its exact luminosity-weighted labels differ a little from the centre.
    """
    if not np.isfinite(log_age) or not np.isfinite(mh):
        raise GalamInputError("log_age and mh must be finite numbers")
    if not log_age_spread > 0:
        raise GalamInputError(f"log_age_spread: expected > 0 dex, got {log_age_spread}")
    log_ages = np.asarray(library.log_ages, dtype=np.float64)
    metals = np.asarray(library.metals, dtype=np.float64)
    age_mass = np.exp(-0.5 * ((log_ages - log_age) / log_age_spread) ** 2)
    # Log-spaced ages: per-bin width in linear time grows with age, the Gaussian is per dex.
    if age_mass.sum() < 1e-12:
        age_mass = np.zeros_like(log_ages)
        age_mass[np.argmin(np.abs(log_ages - log_age))] = 1.0
    target_mh = np.clip(mh + enrichment_slope * (log_ages - log_age), metals[0], metals[-1])
    upper = np.clip(np.searchsorted(metals, target_mh, side="right"), 1, metals.size - 1)
    lower = upper - 1
    frac_upper = (target_mh - metals[lower]) / (metals[upper] - metals[lower])
    weights = np.zeros((log_ages.size, metals.size))
    rows = np.arange(log_ages.size)
    np.add.at(weights, (rows, lower), age_mass * (1.0 - frac_upper))
    np.add.at(weights, (rows, upper), age_mass * frac_upper)
    return population_from_weights(library, weights)
