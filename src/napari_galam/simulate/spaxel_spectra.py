"""Observed spaxel spectra of SSP mixtures through CALIFA, MaNGA, MUSE and SDSS layouts.

The training and test data of the per-spaxel spectral model
(``scripts/train_spaxel_spectra.py``). Each spectrum is a mixture of one to three
E-MILES populations (continuous ages and [M/H] in -1.5..+0.22, interpolated between
neighbouring SSPs; half of them bursts, half spread over a range of ages) with its luminosity-weighted log age and [M/H] as labels (5070-5950 A light,
:meth:`napari_galam.sps.library.SSPLibrary.luminosity_weighted_labels`), attenuated by
a Calzetti screen, broadened by a stellar velocity dispersion and by the layout's own
line-spread function (:func:`napari_galam.sps.resolution.instrument_sigma_kms`),
redshifted and sampled on the layout's real wavelength grid, with noise (S/N per pixel
drawn log-uniform), sky-line residuals, masked pixels and random trims of the range.

Spectra come in groups that share one redshift and one dispersion, so each group
needs one sparse operator (:func:`napari_galam.sps.resolution.gaussian_operator`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.simulate.spectral import calzetti_attenuation, log_lambda_library
from napari_galam.sps.library import load_ssp_library
from napari_galam.sps.resolution import (
    air_wavelength,
    gaussian_operator,
    instrument_sigma_kms,
    kms_to_dex,
)

__all__ = ["LAYOUT_GRIDS", "SpectrumGroup", "layout_wavelengths", "spectrum_groups"]

#: Observed wavelength grids (A) and media of the layouts (the surveys' real grids).
LAYOUT_GRIDS: dict[str, tuple[str, float, float, int, str]] = {
    # kind, start, step, n, medium
    "CALIFA": ("linear", 3749.0, 2.0, 1877, "air"),
    "MaNGA": ("log", 3621.6, 1e-4, 4563, "vacuum"),
    "MUSE": ("linear", 4749.76, 1.25, 3681, "air"),
    "SDSS": ("log", 3801.0, 1e-4, 3830, "vacuum"),
}
#: Strong sky lines (air, A) whose residuals the simulation adds.
_SKY_RESIDUAL_LINES = (5577.34, 5889.95, 5895.92, 6300.30, 6363.78, 6863.96, 7340.89,
                       7913.71, 8344.60, 8399.17, 8430.17, 8827.10, 8885.85)  # fmt: skip


def layout_wavelengths(layout: str) -> tuple[NDArray[np.float64], str]:
    """The observed wavelengths (A) of ``layout`` and their medium (air or vacuum)."""
    if layout not in LAYOUT_GRIDS:
        raise GalamInputError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUT_GRIDS)}")
    kind, start, step, n, medium = LAYOUT_GRIDS[layout]
    index = np.arange(n)
    wave = start + step * index if kind == "linear" else start * 10.0 ** (step * index)
    return wave, medium


@dataclass(frozen=True)
class SpectrumGroup:
    """Spectra through one layout that share a redshift and a velocity dispersion.

    ``flux``, ``variance``, ``mask`` are ``(n, n_wave)`` on ``wave`` (observed, in the
    layout's medium); ``log_age``, ``mh`` and ``snr`` are ``(n,)``.
    """

    layout: str
    wave: NDArray[np.float64]
    medium: str
    redshift: float
    sigma_kms: float
    flux: NDArray[np.float32]
    variance: NDArray[np.float32]
    mask: NDArray[np.bool_]
    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    snr: NDArray[np.float32]


#: [M/H] range of the populations: the SSP grid's, less its most metal-poor step, which
#: galaxies' integrated light hardly reaches.
_MH_RANGE = (-1.5, 0.22)


def _population_draws(rng: np.random.Generator, log_ages: NDArray[np.float64]) -> list[tuple[float, float, float]]:
    """(light share, log age, [M/H]) of the sub-populations of one population.

    Half the populations are single bursts; the others spread their light over five
    ages drawn around their own (a Gaussian of 0.05-0.4 dex in log age), as a star
    formation history of some length.
    """
    age = rng.uniform(log_ages[0], log_ages[-1])
    metal = rng.uniform(*_MH_RANGE)
    if rng.random() < 0.5:
        return [(1.0, age, metal)]
    ages = np.clip(rng.normal(age, rng.uniform(0.05, 0.4), size=5), log_ages[0], log_ages[-1])
    return [(0.2, float(a), metal) for a in ages]


def _mixture_weights(rng: np.random.Generator, n: int, library: Any) -> NDArray[np.float64]:
    """Initial-mass weights ``(n, n_ages, n_metals)`` of 1-3 populations each."""
    log_ages, metals = library.log_ages, library.metals
    light = library.band_luminosity()
    weights = np.zeros((n, library.n_ages, library.n_metals))
    n_pops = rng.integers(1, 4, size=n)
    for i in range(n):
        draws = [
            (fraction * share, age, metal)
            for fraction in rng.dirichlet(np.ones(n_pops[i]))
            for share, age, metal in _population_draws(rng, log_ages)
        ]
        for fraction, age, metal in draws:
            a = int(np.clip(np.searchsorted(log_ages, age) - 1, 0, log_ages.size - 2))
            m = int(np.clip(np.searchsorted(metals, metal) - 1, 0, metals.size - 2))
            ta = (age - log_ages[a]) / (log_ages[a + 1] - log_ages[a])
            tm = (metal - metals[m]) / (metals[m + 1] - metals[m])
            for da, wa in ((0, 1 - ta), (1, ta)):
                for dm, wm in ((0, 1 - tm), (1, tm)):
                    # light share -> mass: divide by the SSP's light per unit mass
                    weights[i, a + da, m + dm] += fraction * wa * wm / light[a + da, m + dm]
    return weights


def _noise_and_masks(
    rng: np.random.Generator, model: NDArray[np.float64], air: NDArray[np.float64], layout: str
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_], NDArray[np.float32]]:
    """Noisy flux, variance, bad-pixel mask and the drawn S/N of model spectra."""
    n, n_wave = model.shape
    snr = np.exp(rng.uniform(np.log(3.0), np.log(100.0), size=n))
    level = np.median(model, axis=1, keepdims=True)
    near_sky = np.zeros(n_wave)
    for line in _SKY_RESIDUAL_LINES:
        near_sky += np.exp(-0.5 * ((air - line) / 2.0) ** 2)
    sigma = level / snr[:, None] * np.sqrt(np.clip(model / level, 0.05, None)) * (1 + 4 * near_sky)
    flux = model + sigma * rng.standard_normal(model.shape)
    flux += near_sky * level * rng.normal(0.0, 0.5, size=(n, 1))  # sky-subtraction residuals
    mask = rng.random(model.shape) < rng.uniform(0.0, 0.03, size=(n, 1))
    for i in range(n):
        if rng.random() < 0.3:  # a bad stretch (detector gap, AO notch, bad column)
            start = rng.integers(0, n_wave)
            mask[i, start : start + rng.integers(10, 150)] = True
        if layout == "MUSE" and rng.random() < 0.3:  # the laser notch of AO cubes
            mask[i, (air > 5800) & (air < 5980)] = True
        if rng.random() < 0.3:  # a shorter observed range than the layout's
            lo = rng.integers(0, n_wave // 8)
            hi = n_wave - rng.integers(0, n_wave // 5)
            mask[i, :lo] = True
            mask[i, hi:] = True
    return flux.astype(np.float32), (sigma**2).astype(np.float32), mask, snr.astype(np.float32)


def spectrum_groups(
    layout: str,
    n_spectra: int,
    *,
    seed: int,
    redshift_range: tuple[float, float] = (0.0, 0.2),
    sigma_range: tuple[float, float] = (0.0, 350.0),
    group_size: int = 32,
    fixed_redshift: float | None = None,
) -> Iterator[SpectrumGroup]:
    """Yield groups of simulated observed spectra through ``layout`` (see the module doc).

    Parameters
    ----------
    layout
        ``CALIFA``, ``MaNGA``, ``MUSE`` or ``SDSS``.
    n_spectra
        How many spectra in all (the last group may be smaller).
    seed
        Seed of the random draws.
    redshift_range, sigma_range
        Uniform ranges of the redshift and of the stellar velocity dispersion (km/s).
    group_size
        Spectra per group (sharing one redshift and dispersion).
    fixed_redshift
        Every group at this redshift instead (for tests at z = 0.03, 0.1, 0.2).
    """
    rng = np.random.default_rng(seed)
    library = load_ssp_library()
    log_library = log_lambda_library(library)
    wave, medium = layout_wavelengths(layout)
    air = air_wavelength(wave) if medium == "vacuum" else wave
    keep = (log_library.wave > 2900.0) & (log_library.wave < 10600.0)
    rest_loglam = log_library.loglam[keep]
    templates = log_library.templates[:, keep].astype(np.float64)
    rest_wave = 10.0**rest_loglam
    instrument = instrument_sigma_kms(layout, wave)
    for start in range(0, n_spectra, group_size):
        n = min(group_size, n_spectra - start)
        z = fixed_redshift if fixed_redshift is not None else rng.uniform(*redshift_range)
        dispersion = rng.uniform(*sigma_range)
        weights = _mixture_weights(rng, n, library)
        log_age, mh = library.luminosity_weighted_labels(weights)
        spectra = weights.reshape(n, -1) @ templates
        for i, ebv in enumerate(rng.exponential(0.1, size=n).clip(0.0, 0.6)):
            spectra[i] *= calzetti_attenuation(rest_wave, float(ebv))
        total = kms_to_dex(np.sqrt(dispersion**2 + instrument**2))
        operator = gaussian_operator(rest_loglam + np.log10(1.0 + z), np.log10(air), total)
        rows = np.asarray(operator.sum(axis=1)).ravel()
        model = np.asarray(operator @ spectra.T).T / np.where(rows > 0, rows, 1.0)
        model *= 10.0 ** rng.uniform(-2.0, 2.0, size=(n, 1))  # any flux unit
        flux, variance, mask, snr = _noise_and_masks(rng, model, air, layout)
        yield SpectrumGroup(
            layout, wave, medium, float(z), float(dispersion), flux, variance, mask,
            log_age.astype(np.float32), mh.astype(np.float32), snr,
        )  # fmt: skip
