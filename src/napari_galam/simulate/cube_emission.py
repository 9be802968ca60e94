"""Nebular emission lines of an IFU cube, spaxel by spaxel, with the fibre spectra's physics.

:func:`draw_spaxel_emission` gives each spaxel the lines of
:func:`~napari_galam.simulate.spectra.draw_emission_lines` from the light in that spaxel:

* its star-forming share is :func:`~napari_galam.simulate.spectra.star_forming_chance` of
  its luminosity-weighted log age (the chance that a fibre is star-forming, used here as
  a mixing weight so that the maps stay smooth);
* star-forming light has the EW(H-alpha) and line ratios of
  :func:`~napari_galam.simulate.spectra.star_forming_ratios` at the spaxel's log age and
  [M/H] (about 50 A at 0.3 Gyr, 5 A at 5 Gyr; [N II]/H-alpha rising with [M/H]), with one
  scatter drawn per galaxy; the rest has one LINER-like spectrum per galaxy
  (:func:`~napari_galam.simulate.spectra.draw_retired_ratios`: 0.3-3 A of H-alpha, [N II]
  above H-alpha);
* H-alpha's flux is the spaxel's EW times its stellar continuum near H-alpha (each basis
  population's median within 100 A rest of the line, mixed by the spaxel's light), so
  young discs and outskirts carry strong lines and old bulges weak LINER-like ones;
* every other line is reddened relative to H-alpha by the spaxel's gas E(B-V) = its
  stars' (the light-weighted mean of its populations' screens) / 0.44 (Calzetti 2000), so
  the Balmer decrement follows the dust; as in the fibre spectra, the EW is against the
  reddened continuum;
* all lines share one gas dispersion per galaxy
  (:func:`~napari_galam.simulate.spectra.draw_gas_sigma`), added in quadrature to the
  instrument's line-spread function at each line
  (:func:`~napari_galam.sps.resolution.instrument_sigma_kms`), and each channel gets the
  Gaussian's integral over its width.

The labels and truth maps stay those of the stars; :class:`SpaxelEmission` holds the
H-alpha EW map and the line fluxes. Lines are placed at ``rest x (1 + z)`` in the layout's
medium (air rest wavelengths for air layouts, as the stellar templates are shifted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from napari_galam.simulate.galaxy import GalaxyModel
from napari_galam.simulate.observe import ObservedBasis
from napari_galam.simulate.spectra import (
    EMISSION_LINES_VACUUM_A,
    draw_gas_sigma,
    draw_retired_ratios,
    draw_star_forming_scatter,
    intrinsic_line_fluxes,
    star_forming_chance,
    star_forming_ratios,
)
from napari_galam.simulate.spectral import calzetti_attenuation
from napari_galam.sps.resolution import SPEED_OF_LIGHT_KMS, air_wavelength, instrument_sigma_kms

__all__ = ["SpaxelEmission", "draw_spaxel_emission", "add_line_emission"]

#: Lines are cut off beyond this many Gaussian sigmas from their centre.
_LINE_REACH_SIGMA = 6.0


@dataclass(frozen=True)
class SpaxelEmission:
    """The nebular lines added to a cube (maps on its spatial grid).

    Attributes
    ----------
    ew_halpha
        (ny, nx) rest-frame equivalent width of H-alpha in emission (A) against the
        spaxel's stellar continuum; 0 where there is no light.
    star_forming
        (ny, nx) star-forming share of the spaxel's lines (the rest is LINER-like).
    line_names
        The lines, keys of :data:`~napari_galam.simulate.spectra.EMISSION_LINES_VACUUM_A`.
    line_flux
        (n_lines, ny, nx) observed flux of each line in the cube's flux unit times A.
    centres_a
        (n_lines,) observed wavelengths of the lines (the layout's medium).
    sigma_kms
        The gas velocity dispersion (before the instrument's line-spread function).
    ew_halpha_at_re
        EW(H-alpha) of the summed light of the spaxels at R = R_e (within 0.15 R_e; the
        spaxels within 1 R_e of the innermost one if the ring holds none).
    """

    ew_halpha: NDArray[np.float32]
    star_forming: NDArray[np.float32]
    line_names: tuple[str, ...]
    line_flux: NDArray[np.float32]
    centres_a: NDArray[np.float64]
    sigma_kms: float
    ew_halpha_at_re: float


def _line_centres(redshift: float, medium: str) -> NDArray[np.float64]:
    """Observed wavelengths of the lines: rest (air for an air layout) times 1 + z."""
    rest = np.array(list(EMISSION_LINES_VACUUM_A.values()))
    if medium == "air":
        rest = air_wavelength(rest)
    return rest * (1.0 + redshift)


def _continuum_near_halpha(
    basis: ObservedBasis, blurred: NDArray[np.float64], halpha_a: float, redshift: float
) -> NDArray[np.float64]:
    """(ny, nx) stellar continuum near H-alpha: each population's median within 100 A
    rest of the line, mixed by the spaxel's light; zeros if the basis does not reach it."""
    wave = 10.0**basis.loglam
    near = (np.abs(wave - halpha_a) < 100.0 * (1.0 + redshift)) & basis.covered
    if not near.any():
        return np.zeros(blurred.shape[1:])
    medians = np.median(basis.spectra[:, near], axis=1)
    return np.clip(np.tensordot(medians, blurred, axes=(0, 0)), 0.0, None)


def _gas_reddening(
    galaxy: GalaxyModel, blurred: NDArray[np.float64], lit: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """(n_lines, ny, nx) each line's transmission relative to H-alpha's through the
    spaxel's gas screen, E(B-V)_gas = E(B-V)_stars / 0.44."""
    total = blurred.sum(axis=0)
    screens = np.tensordot(np.asarray(galaxy.ebv, dtype=np.float64), blurred, axes=(0, 0))
    ebv_gas = np.where(lit, screens / np.where(lit, total, 1.0), 0.0) / 0.44
    rest = np.array(list(EMISSION_LINES_VACUUM_A.values()))
    unit = calzetti_attenuation(rest, 1.0)
    relative = unit / unit[list(EMISSION_LINES_VACUUM_A).index("Ha")]
    return relative[:, None, None] ** ebv_gas[None]


def draw_spaxel_emission(
    rng: np.random.Generator,
    galaxy: GalaxyModel,
    basis: ObservedBasis,
    blurred: NDArray[np.float64],
    *,
    log_age: NDArray[np.floating],
    mh: NDArray[np.floating],
    r_over_re: NDArray[np.floating],
    flux_scale: float,
    medium: str,
) -> SpaxelEmission:
    """Draw the nebular lines of every spaxel of a cube (see the module doc).

    Parameters
    ----------
    rng
        Random generator: one gas dispersion, one star-forming scatter and one LINER-like
        spectrum per galaxy.
    galaxy
        The model (its redshift and dust screens).
    basis
        The galaxy's :func:`~napari_galam.simulate.observe.observed_basis` in the layout's
        medium.
    blurred
        (4, ny, nx) PSF-blurred light maps of the basis populations.
    log_age, mh, r_over_re
        (ny, nx) luminosity-weighted labels of the light in each spaxel (NaN without
        light) and the deprojected radius over R_e.
    flux_scale
        Cube flux unit per erg/s/cm^2/A (1e16 for 1e-16 erg/s/cm^2/A).
    medium
        ``air`` or ``vacuum``: the medium of the cube's wavelengths.
    """
    z = float(galaxy.redshift)
    names = tuple(EMISSION_LINES_VACUUM_A)
    centres = _line_centres(z, medium)
    sigma = draw_gas_sigma(rng, galaxy.velocity_dispersion_kms)
    scatter = draw_star_forming_scatter(rng)
    ew_retired, retired_hb, retired_ha = draw_retired_ratios(rng)
    level = flux_scale * _continuum_near_halpha(basis, blurred, centres[names.index("Ha")], z)
    lit = np.isfinite(log_age) & np.isfinite(mh) & (level > 0)
    ages = np.where(lit, log_age, 10.0).astype(np.float64)
    metals = np.where(lit, mh, 0.0).astype(np.float64)
    weight = np.where(lit, star_forming_chance(ages), 0.0)
    ew_sf, sf_hb, sf_ha = star_forming_ratios(ages, metals, scatter)
    star_forming = intrinsic_line_fluxes(sf_hb, sf_ha)
    retired = intrinsic_line_fluxes(retired_hb, retired_ha)
    ew = np.where(lit, weight * ew_sf + (1.0 - weight) * ew_retired, 0.0)
    halpha_sf = weight * ew_sf * (1.0 + z) * level
    halpha_retired = (1.0 - weight) * ew_retired * (1.0 + z) * level
    reddening = _gas_reddening(galaxy, blurred, lit)
    line_flux = np.stack(
        [
            (halpha_sf * star_forming[name] + halpha_retired * retired[name]) * reddening[k]
            for k, name in enumerate(names)
        ]
    )
    line_flux[:, ~lit] = 0.0
    return SpaxelEmission(
        ew_halpha=ew.astype(np.float32),
        star_forming=np.where(lit, weight, 0.0).astype(np.float32),
        line_names=names,
        line_flux=line_flux.astype(np.float32),
        centres_a=centres,
        sigma_kms=sigma,
        ew_halpha_at_re=_ew_at_re(ew, level, r_over_re),
    )


def _ew_at_re(
    ew: NDArray[np.float64], level: NDArray[np.float64], r_over_re: NDArray[np.floating]
) -> float:
    """EW(H-alpha) of the summed light of the ring R = R_e (as the cubes' S/N ring)."""
    radius = np.asarray(r_over_re, dtype=np.float64)
    ring = np.abs(radius - 1.0) < 0.15
    if not ring.any():
        ring = radius <= np.nanmin(radius) + 1.0
    continuum = float(level[ring].sum())
    return float((ew[ring] * level[ring]).sum() / continuum) if continuum > 0 else 0.0


def _channel_edges(wave: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lower and upper edges of each channel: half-way to its neighbours."""
    middle = 0.5 * (wave[1:] + wave[:-1])
    lower = np.concatenate([[wave[0] - (middle[0] - wave[0])], middle])
    upper = np.concatenate([middle, [wave[-1] + (wave[-1] - middle[-1])]])
    return lower, upper


def add_line_emission(
    flux: NDArray[np.float32],
    emission: SpaxelEmission,
    wave: NDArray[np.floating],
    *,
    layout: str,
) -> NDArray[np.float32]:
    """``flux`` (n_wave, ny, nx) plus the lines of ``emission`` (a new array).

    Each line is a Gaussian of the gas dispersion and ``layout``'s line-spread function at
    the line (:func:`~napari_galam.sps.resolution.instrument_sigma_kms`) added in
    quadrature, integrated over each channel's width and divided by it (flux density);
    only channels within 6 sigma of a line change.
    """
    wave = np.asarray(wave, dtype=np.float64)
    centres = emission.centres_a
    sigma_kms = np.hypot(emission.sigma_kms, instrument_sigma_kms(layout, centres))
    sigma_a = centres * sigma_kms / SPEED_OF_LIGHT_KMS
    lower, upper = _channel_edges(wave)
    offsets = np.abs(wave[None, :] - centres[:, None])
    reach = offsets < _LINE_REACH_SIGMA * sigma_a[:, None] + (upper - lower)[None, :]
    rows = np.flatnonzero(reach.any(axis=0))
    out = flux.copy()
    if rows.size == 0:
        return out
    hi = ndtr((upper[rows][None, :] - centres[:, None]) / sigma_a[:, None])
    lo = ndtr((lower[rows][None, :] - centres[:, None]) / sigma_a[:, None])
    profiles = np.where(reach[:, rows], (hi - lo) / (upper - lower)[rows][None, :], 0.0)
    n_lines, ny, nx = emission.line_flux.shape
    lines = profiles.T.astype(np.float32) @ emission.line_flux.reshape(n_lines, ny * nx)
    out[rows] += lines.reshape(rows.size, ny, nx).astype(out.dtype)
    return out
