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

Two options widen the draws beyond SSP mixtures (both off by default; then a seed gives
the same spectra as before they existed, and with them on it still gives the same
mixture spectra, only the chosen ones change):

* ``history_fraction``: that share of the spectra takes its populations from the
  parametric star-formation histories of a family drawn uniformly from
  :data:`napari_galam.simulate.families.HISTORY_FAMILIES`: a random mix of the bulge and
  disc, inner and outer populations of one galaxy of the family
  (:func:`~napari_galam.simulate.families.draw_family_populations`), as a spaxel of
  the family's cubes sees them, with extra dust on young light as in those galaxies:
  E(B-V) times ``1 + u y``, ``u`` uniform in 0-1 and ``y`` = 1 at a light-weighted log
  age of 8 or less, falling linearly to 0 at 9;
* ``emission_fraction``: that share gets the nebular lines of the IFU cubes
  (:mod:`napari_galam.simulate.cube_emission`) from its own light-weighted log age and
  [M/H]: a star-forming share :func:`~napari_galam.simulate.spectra.star_forming_chance`
  with the EW and ratios of :func:`~napari_galam.simulate.spectra.star_forming_ratios`,
  the rest LINER-like (:func:`~napari_galam.simulate.spectra.draw_retired_ratios`), the
  EW against the spectrum's own reddened continuum within 100 A (rest) of H-alpha, the
  gas screen E(B-V) / 0.44 and one gas dispersion per group
  (:func:`~napari_galam.simulate.spectra.draw_gas_sigma`) with the layout's line-spread
  function (:func:`~napari_galam.simulate.cube_emission.add_line_emission`). The labels
  stay those of the stars.

Their draws come from a second generator (seeded ``[seed, 1]``), so the first one's
stream, and with it every mixture, dispersion, dust screen and noise draw, is unchanged.

Spectra come in groups that share one redshift and one dispersion, so each group
needs one sparse operator (:func:`napari_galam.sps.resolution.gaussian_operator`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.simulate.cube_emission import SpaxelEmission, _line_centres, add_line_emission
from napari_galam.simulate.families import HISTORY_FAMILIES, draw_family_populations
from napari_galam.simulate.spectra import (
    EMISSION_LINES_VACUUM_A,
    _relative_line_fluxes,
    draw_gas_sigma,
    draw_retired_ratios,
    draw_star_forming_scatter,
    star_forming_chance,
    star_forming_ratios,
)
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
        raise GalamInputError(
            f"unknown layout {layout!r}; expected one of {', '.join(LAYOUT_GRIDS)}"
        )
    kind, start, step, n, medium = LAYOUT_GRIDS[layout]
    index = np.arange(n)
    wave = start + step * index if kind == "linear" else start * 10.0 ** (step * index)
    return wave, medium


@dataclass(frozen=True)
class SpectrumGroup:
    """Spectra through one layout that share a redshift and a velocity dispersion.

    ``flux``, ``variance``, ``mask`` are ``(n, n_wave)`` on ``wave`` (observed, in the
    layout's medium); ``log_age``, ``mh`` and ``snr`` are ``(n,)``. ``weights`` are the
    ``(n, n_ages, n_metals)`` initial-mass weights of the library's SSPs (any
    normalisation; the labels are their light-weighted means); ``family`` is ``mixture``
    for an SSP mixture or the history family a spectrum was drawn from; ``ew_halpha`` is
    the rest-frame EW (A) of its H-alpha emission against its stellar continuum, 0 for a
    spectrum without lines.
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
    weights: NDArray[np.float64]
    family: NDArray[np.str_]
    ew_halpha: NDArray[np.float32]


#: [M/H] range of the populations: the SSP grid's, less its most metal-poor step, which
#: galaxies' integrated light hardly reaches.
_MH_RANGE = (-1.5, 0.22)


def _population_draws(
    rng: np.random.Generator, log_ages: NDArray[np.float64]
) -> list[tuple[float, float, float]]:
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


def _history_draws(
    rng: np.random.Generator,
    weights: NDArray[np.float64],
    chosen: NDArray[np.bool_],
    library: Any,
    families: tuple[str, ...] = HISTORY_FAMILIES,
) -> tuple[NDArray[np.str_], NDArray[np.float64]]:
    """Put star-formation histories into the ``chosen`` rows of ``weights`` (in place).

    Each chosen row is the light of a spaxel of a galaxy of a family drawn uniformly from
    ``families`` (default :data:`HISTORY_FAMILIES`): the four populations of
    :func:`~napari_galam.simulate.families.draw_family_populations` (bulge and disc,
    inner and outer, each from :func:`~napari_galam.simulate.families.draw_history` and
    :func:`~napari_galam.simulate.families.history_weights`; early or late type at even
    odds) mixed by a bulge share and an outer share, each uniform in 0-1. Rows keep unit
    light in the labels' band, as the mixtures. Returns every row's family (``mixture``
    where not chosen) and its young-dust factor ``u`` (uniform in 0-1; 0 where not chosen).
    """
    family = np.full(len(weights), "mixture", dtype=f"<U{max(map(len, HISTORY_FAMILIES))}")
    young_dust = np.zeros(len(weights))
    for i in np.flatnonzero(chosen):
        family[i] = families[rng.integers(len(families))]
        populations = draw_family_populations(
            rng, library, str(family[i]), early=bool(rng.random() < 0.5)
        )
        bulge, outer = rng.uniform(0.0, 1.0, size=2)
        shares = np.outer([bulge, 1.0 - bulge], [1.0 - outer, outer]).ravel()
        weights[i] = sum(
            share * population.mass_weights
            for share, population in zip(shares, populations, strict=True)
        )
        young_dust[i] = rng.uniform(0.0, 1.0)
    return family, young_dust


def _emission(
    rng: np.random.Generator,
    lit: NDArray[np.bool_],
    *,
    log_age: NDArray[np.float64],
    mh: NDArray[np.float64],
    ebv: NDArray[np.float64],
    continuum: NDArray[np.float64],
    redshift: float,
    stellar_sigma_kms: float,
    medium: str,
) -> SpaxelEmission:
    """The nebular lines of a group's spectra (``nx`` = spectra, ``ny`` = 1), none unless lit.

    As :func:`napari_galam.simulate.cube_emission.draw_spaxel_emission` for spaxels, with
    the star-forming scatter and the LINER-like spectrum drawn for each spectrum and one
    gas dispersion for the group. ``continuum`` is each spectrum's stellar continuum near
    H-alpha in the flux unit of the model spectra.
    """
    names = tuple(EMISSION_LINES_VACUUM_A)
    sigma = draw_gas_sigma(rng, stellar_sigma_kms)
    weight = np.where(lit, star_forming_chance(log_age), 0.0)
    ew = np.zeros(len(lit))
    line_flux = np.zeros((len(names), 1, len(lit)))
    for i in np.flatnonzero(lit):
        ew_sf, sf_hb, sf_ha = star_forming_ratios(
            float(log_age[i]), float(mh[i]), draw_star_forming_scatter(rng)
        )
        ew_retired, retired_hb, retired_ha = draw_retired_ratios(rng)
        ew[i] = weight[i] * ew_sf + (1.0 - weight[i]) * ew_retired
        # H-alpha's observed flux: rest EW x (1 + z) x continuum; the rest follow H-alpha
        # through the ratios and the gas screen (E(B-V) / 0.44, inside the helper)
        scale = (1.0 + redshift) * continuum[i]
        star_forming = _relative_line_fluxes(sf_hb, sf_ha, ebv=float(ebv[i]))
        retired = _relative_line_fluxes(retired_hb, retired_ha, ebv=float(ebv[i]))
        line_flux[:, 0, i] = [
            scale * (weight[i] * ew_sf * star_forming[name]
                     + (1.0 - weight[i]) * ew_retired * retired[name])
            for name in names
        ]  # fmt: skip
    total = float(continuum[lit].sum())
    return SpaxelEmission(
        ew_halpha=ew[None].astype(np.float32),
        star_forming=weight[None].astype(np.float32),
        line_names=names,
        line_flux=line_flux.astype(np.float32),
        centres_a=_line_centres(redshift, medium),
        sigma_kms=sigma,
        ew_halpha_at_re=float((ew * continuum)[lit].sum() / total) if total > 0 else 0.0,
    )


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


def _checked_options(
    history_fraction: float, emission_fraction: float, history_families: Sequence[str]
) -> tuple[str, ...]:
    """Refuse shares outside 0-1 and unknown history families; the families as a tuple."""
    for name, value in (("history_fraction", history_fraction),
                        ("emission_fraction", emission_fraction)):  # fmt: skip
        if not 0.0 <= value <= 1.0:
            raise GalamInputError(f"{name}: expected a share in 0..1, got {value}")
    families = tuple(history_families)
    if not families or not set(families) <= set(HISTORY_FAMILIES):
        raise GalamInputError(
            f"history_families: expected some of {', '.join(HISTORY_FAMILIES)}, "
            f"got {', '.join(families) or 'none'}"
        )
    return families


def spectrum_groups(
    layout: str,
    n_spectra: int,
    *,
    seed: int,
    redshift_range: tuple[float, float] = (0.0, 0.2),
    sigma_range: tuple[float, float] = (0.0, 350.0),
    group_size: int = 32,
    fixed_redshift: float | None = None,
    history_fraction: float = 0.0,
    emission_fraction: float = 0.0,
    history_families: Sequence[str] = HISTORY_FAMILIES,
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
    history_fraction
        Chance (0-1) that a spectrum's populations come from a star-formation history
        of a family in :data:`~napari_galam.simulate.families.HISTORY_FAMILIES`
        instead of an SSP mixture (see the module doc).
    emission_fraction
        Chance (0-1) that a spectrum carries nebular emission lines (see the module doc).
    history_families
        The families the histories are drawn from (default all of
        :data:`~napari_galam.simulate.families.HISTORY_FAMILIES`; leave one out to test
        on it unseen).

    Raises
    ------
    GalamInputError
        If a fraction is outside 0-1 or ``history_families`` names no history family.
    """
    history_families = _checked_options(history_fraction, emission_fraction, history_families)
    rng = np.random.default_rng(seed)
    extra = np.random.default_rng([seed, 1])  # the options' draws: ``rng`` stays as it was
    library = load_ssp_library()
    log_library = log_lambda_library(library)
    wave, medium = layout_wavelengths(layout)
    air = air_wavelength(wave) if medium == "vacuum" else wave
    keep = (log_library.wave > 2900.0) & (log_library.wave < 10600.0)
    rest_loglam = log_library.loglam[keep]
    templates = log_library.templates[:, keep].astype(np.float64)
    rest_wave = 10.0**rest_loglam
    instrument = instrument_sigma_kms(layout, wave)
    # the continuum of the lines' EW: within 100 A (rest) of H-alpha, air as the templates
    near_halpha = np.abs(rest_wave - air_wavelength(EMISSION_LINES_VACUUM_A["Ha"])) < 100.0
    for start in range(0, n_spectra, group_size):
        n = min(group_size, n_spectra - start)
        z = fixed_redshift if fixed_redshift is not None else rng.uniform(*redshift_range)
        dispersion = rng.uniform(*sigma_range)
        weights = _mixture_weights(rng, n, library)
        family, young_dust = _history_draws(
            extra, weights, extra.random(n) < history_fraction, library, history_families
        )
        log_age, mh = library.luminosity_weighted_labels(weights)
        spectra = weights.reshape(n, -1) @ templates
        ebvs = rng.exponential(0.1, size=n).clip(0.0, 0.6)
        ebvs = ebvs * (1.0 + young_dust * np.clip(9.0 - log_age, 0.0, 1.0))
        for i, ebv in enumerate(ebvs):
            spectra[i] *= calzetti_attenuation(rest_wave, float(ebv))
        total = kms_to_dex(np.sqrt(dispersion**2 + instrument**2))
        operator = gaussian_operator(rest_loglam + np.log10(1.0 + z), np.log10(air), total)
        rows = np.asarray(operator.sum(axis=1)).ravel()
        model = np.asarray(operator @ spectra.T).T / np.where(rows > 0, rows, 1.0)
        lit = extra.random(n) < emission_fraction
        ew_halpha = np.zeros(n, np.float32)
        if lit.any():
            emission = _emission(
                extra, lit, log_age=log_age, mh=mh, ebv=ebvs,
                continuum=np.median(spectra[:, near_halpha], axis=1), redshift=float(z),
                stellar_sigma_kms=float(dispersion), medium=medium,
            )  # fmt: skip
            model = add_line_emission(model.T[:, None, :], emission, wave, layout=layout)[:, 0].T
            ew_halpha = emission.ew_halpha[0]
        model *= 10.0 ** rng.uniform(-2.0, 2.0, size=(n, 1))  # any flux unit
        flux, variance, mask, snr = _noise_and_masks(rng, model, air, layout)
        yield SpectrumGroup(
            layout, wave, medium, float(z), float(dispersion), flux, variance, mask,
            log_age.astype(np.float32), mh.astype(np.float32), snr, weights, family, ew_halpha,
        )  # fmt: skip
