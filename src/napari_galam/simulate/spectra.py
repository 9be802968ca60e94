"""SDSS-like fibre spectra of synthetic galaxies, with their exact labels.

The spectrum is what a 3-arcsec fibre collects under the seeing: the basis populations'
observed spectra weighted by their light inside the fibre, on SDSS's coadd grid
(vacuum log10 lambda in steps of 1e-4 dex, 3800-9200 A), at R ~ 2000, with a sky
spectrum (continuum and the brightest night-sky lines) and Poisson-like noise scaled to a
chosen median S/N. The labels are the luminosity-weighted log age and [M/H] of the light
inside the fibre, as the MMLforGalAM labels (pPXF fits of SDSS fibre spectra) are.

Two nuisances of real spectra can be switched on, neither of which changes the labels
(pPXF masks gas lines and absorbs calibration with a multiplicative polynomial; the
networks must learn to ignore both):

* nebular emission lines (:func:`draw_emission_lines`): Balmer lines, [O II], [Ne III],
  [O III], He I, [O I], [N II] and [S II] with an H-alpha equivalent width that grows
  with the youth of the light in the fibre (star-forming galaxies) or a weak LINER-like
  spectrum (retired galaxies), reddened by the galaxy's dust. Under min-max
  normalisation a strong H-alpha line sets the maximum of the whole spectrum, so a
  network that never saw one misreads every star-forming galaxy;
* a smooth flux-calibration error: a random multiplicative Legendre polynomial of
  degree 3 with a few per cent rms (SDSS spectrophotometry is good to about 4%).
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
from napari_galam.simulate.spectral import LOG_STEP, calzetti_attenuation

__all__ = [
    "SDSS_LOGLAM",
    "MML_WAVE",
    "EmissionLines",
    "FibreSpectrum",
    "draw_emission_lines",
    "draw_gas_sigma",
    "draw_retired_ratios",
    "draw_star_forming_scatter",
    "emission_line_spectrum",
    "intrinsic_line_fluxes",
    "render_fibre_spectrum",
    "sdss_sky_spectrum",
    "star_forming_chance",
    "star_forming_ratios",
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


#: Vacuum rest wavelengths (A) of the nebular lines the simulator adds.
EMISSION_LINES_VACUUM_A: dict[str, float] = {
    "[OII]3727": 3727.09,
    "[OII]3730": 3729.88,
    "[NeIII]3870": 3869.86,
    "Hd": 4102.89,
    "Hg": 4341.68,
    "Hb": 4862.68,
    "[OIII]4960": 4960.30,
    "[OIII]5008": 5008.24,
    "HeI5877": 5877.25,
    "[OI]6302": 6302.05,
    "[NII]6550": 6549.86,
    "Ha": 6564.61,
    "[NII]6585": 6585.27,
    "[SII]6718": 6718.29,
    "[SII]6733": 6732.67,
}
#: Case B Balmer ratios to H-beta at 10^4 K (Osterbrock & Ferland 2006).
_CASE_B_TO_HBETA = {"Ha": 2.86, "Hg": 0.468, "Hd": 0.259}


@dataclass(frozen=True)
class EmissionLines:
    """Nebular emission lines of one galaxy, as fluxes relative to H-alpha.

    Attributes
    ----------
    ew_halpha
        Rest-frame equivalent width of H-alpha in emission (A, >= 0) against the
        stellar continuum of the fibre.
    relative_flux
        Observed (reddened) flux of each line of :data:`EMISSION_LINES_VACUUM_A` relative
        to H-alpha.
    sigma_kms
        Gas velocity dispersion (before the instrumental broadening).
    kind
        ``"star-forming"``, ``"retired"`` (LINER-like) or ``"none"``.
    """

    ew_halpha: float
    relative_flux: dict[str, float]
    sigma_kms: float
    kind: str


def draw_emission_lines(
    rng: np.random.Generator,
    *,
    log_age: float,
    mh: float,
    ebv: float,
    stellar_sigma_kms: float,
) -> EmissionLines:
    """Draw the emission-line spectrum of a galaxy from the population in its fibre.

    Galaxies whose fibre light is young are more often star-forming: the chance is a
    logistic function of the luminosity-weighted log age, centred on 9.6 (about 4 Gyr).
    A star-forming galaxy has ``log EW(H-alpha) = 1.3 - 1.1 (log age - 9) +- 0.3`` (1-500
    A; about 50 A at 0.3 Gyr, 5 A at 5 Gyr), log [N II]/H-alpha = -0.4 + 0.4 [M/H] +- 0.12
    and [O III]/H-beta 0.25 dex below the Kauffmann et al. (2003) star-forming boundary
    at that [N II]/H-alpha, case B
    Balmer ratios and ``E(B-V)_gas = E(B-V)_stars / 0.44`` (Calzetti 2000). A retired
    galaxy has 0.3-3 A of H-alpha with LINER ratios ([N II] > H-alpha, strong [O I]).

    Parameters
    ----------
    rng
        The random generator.
    log_age, mh
        Luminosity-weighted log10(age / yr) and [M/H] of the light in the fibre.
    ebv
        Stellar E(B-V) of the galaxy's dust screen (mag).
    stellar_sigma_kms
        Stellar velocity dispersion; the gas is colder (50-100% of it, at least 30 km/s).
    """
    sigma = draw_gas_sigma(rng, stellar_sigma_kms)
    star_forming = rng.random() < star_forming_chance(log_age)
    if star_forming:
        ew, ratios_hb, ratios_ha = star_forming_ratios(log_age, mh, draw_star_forming_scatter(rng))
        kind = "star-forming"
    else:
        ew, ratios_hb, ratios_ha = draw_retired_ratios(rng)
        kind = "retired"
    relative = _relative_line_fluxes(ratios_hb, ratios_ha, ebv=ebv)
    return EmissionLines(ew_halpha=float(ew), relative_flux=relative, sigma_kms=sigma, kind=kind)


def draw_gas_sigma(rng: np.random.Generator, stellar_sigma_kms: float) -> float:
    """The gas velocity dispersion: 50-100% of the stellar one, at least 30 km/s."""
    return max(30.0, float(stellar_sigma_kms) * float(rng.uniform(0.5, 1.0)))


def star_forming_chance(log_age: Any) -> Any:
    """Chance that light of a luminosity-weighted log age is star-forming (logistic, centre
    9.6, width 0.15 dex); float or array like ``log_age``."""
    return 1.0 / (1.0 + np.exp((log_age - 9.6) / 0.15))


def draw_star_forming_scatter(rng: np.random.Generator) -> dict[str, float]:
    """The random parts of a star-forming spectrum (:func:`star_forming_ratios`), in dex:
    the EW(H-alpha) and [N II]/H-alpha scatter, [O III]/H-beta, [O II], [S II] and [O I]."""
    return {
        "ew": rng.normal(0.0, 0.3),
        "n2": rng.normal(0.0, 0.12),
        "o3": rng.normal(0.0, 0.15),
        "o2": rng.normal(0.35, 0.15),
        "s2": rng.normal(-0.6, 0.1),
        "o1": rng.normal(-1.5, 0.15),
    }


def star_forming_ratios(
    log_age: Any, mh: Any, scatter: dict[str, float]
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """EW(H-alpha) and line ratios (to H-beta, to H-alpha) of star-forming light.

    ``log_age`` and ``mh`` are the light's luminosity-weighted labels (floats, or arrays
    of one shape: the values come out in that shape); ``scatter`` is one
    :func:`draw_star_forming_scatter`.
    """
    ew = 10 ** np.clip(1.3 - 1.1 * (log_age - 9.0) + scatter["ew"], 0.0, 2.7)
    n2 = np.clip(-0.4 + 0.4 * mh + scatter["n2"], -1.2, -0.3)
    o3 = 0.61 / (n2 - 0.05) + 1.3 - 0.25 + scatter["o3"]
    ratios_hb = {
        "Hb": 1.0,
        "[OIII]5008": 10**o3,
        "[OII]3727": 0.5 * 10 ** scatter["o2"],
        "[NeIII]3870": 0.06 * 10**o3,
        "HeI5877": 0.11,
    }
    ratios_ha = {
        "[NII]6585": 10**n2,
        "[SII]6718": 0.55 * 10 ** scatter["s2"],
        "[OI]6302": 10 ** scatter["o1"],
    }
    return ew, ratios_hb, ratios_ha


def draw_retired_ratios(
    rng: np.random.Generator,
) -> tuple[float, dict[str, float], dict[str, float]]:
    """EW(H-alpha) and LINER-like line ratios (to H-beta, to H-alpha) of a retired galaxy."""
    ew = 10 ** float(rng.uniform(-0.5, 0.5))
    o3 = rng.normal(0.3, 0.2)
    ratios_hb = {
        "Hb": 1.0,
        "[OIII]5008": 10**o3,
        "[OII]3727": 0.5 * 10 ** rng.normal(0.6, 0.15),
        "[NeIII]3870": 0.1 * 10**o3,
        "HeI5877": 0.05,
    }
    ratios_ha = {
        "[NII]6585": 10 ** rng.normal(0.15, 0.15),
        "[SII]6718": 0.55 * 10 ** rng.normal(-0.1, 0.1),
        "[OI]6302": 10 ** rng.normal(-0.7, 0.15),
    }
    return ew, ratios_hb, ratios_ha


def intrinsic_line_fluxes(ratios_hb: dict[str, Any], ratios_ha: dict[str, Any]) -> dict[str, Any]:
    """Every line's intrinsic flux relative to H-alpha: case B, the ratios and the doublets.

    The ratios may be floats or arrays of one shape (the fluxes follow)."""
    intrinsic = {"Ha": 1.0}
    for name, ratio in _CASE_B_TO_HBETA.items():
        if name != "Ha":
            intrinsic[name] = ratio / _CASE_B_TO_HBETA["Ha"]
    for name, ratio in ratios_hb.items():
        intrinsic[name] = ratio / _CASE_B_TO_HBETA["Ha"]
    intrinsic.update(ratios_ha)
    # Fixed doublet ratios (atomic physics) and density-sensitive ones at low density.
    intrinsic["[OIII]4960"] = intrinsic["[OIII]5008"] / 2.98
    intrinsic["[NII]6550"] = intrinsic["[NII]6585"] / 3.05
    intrinsic["[OII]3730"] = intrinsic["[OII]3727"] * 1.4
    intrinsic["[SII]6733"] = intrinsic["[SII]6718"] / 1.4
    return intrinsic


def _relative_line_fluxes(
    ratios_hb: dict[str, float], ratios_ha: dict[str, float], *, ebv: float
) -> dict[str, float]:
    """Every line's observed flux relative to H-alpha: case B, the ratios, doublets, dust."""
    intrinsic = intrinsic_line_fluxes(ratios_hb, ratios_ha)
    names = list(EMISSION_LINES_VACUUM_A)
    waves = np.array([EMISSION_LINES_VACUUM_A[name] for name in names])
    transmitted = calzetti_attenuation(waves, float(ebv) / 0.44)
    halpha = float(transmitted[names.index("Ha")])
    return {
        name: float(intrinsic[name] * t / halpha)
        for name, t in zip(names, transmitted, strict=True)
    }


def emission_line_spectrum(
    loglam: NDArray[np.floating],
    continuum: NDArray[np.floating],
    lines: EmissionLines,
    *,
    redshift: float,
    resolution: float = SDSS_RESOLUTION,
) -> NDArray[np.float64]:
    """The observed line spectrum of ``lines`` on a log-lambda grid, in the continuum's units.

    H-alpha's flux is its equivalent width times the continuum's median within 100 A
    (rest) of the line; every other line scales with it. Lines are Gaussians in velocity
    with the gas dispersion and the instrumental one (``c / (2.3548 R)``) added in
    quadrature, integrated over each pixel by their value at its centre (pixels of
    1e-4 dex are ~69 km/s, narrower than any line here).
    """
    loglam = np.asarray(loglam, dtype=np.float64)
    continuum = np.asarray(continuum, dtype=np.float64)
    wave = 10.0**loglam
    out = np.zeros_like(wave)
    if lines.ew_halpha <= 0:
        return out
    halpha_obs = EMISSION_LINES_VACUUM_A["Ha"] * (1.0 + redshift)
    near = np.abs(wave - halpha_obs) < 100.0 * (1.0 + redshift)
    if not near.any():
        return out
    level = float(np.median(continuum[near]))
    flux_halpha = lines.ew_halpha * (1.0 + redshift) * max(level, 0.0)
    c_kms = 299792.458
    sigma_kms = np.hypot(lines.sigma_kms, c_kms / (2.3548 * resolution))
    dlam = np.gradient(wave)
    for name, rest in EMISSION_LINES_VACUUM_A.items():
        centre = rest * (1.0 + redshift)
        sigma_a = centre * sigma_kms / c_kms
        window = np.abs(wave - centre) < 6.0 * sigma_a
        if not window.any():
            continue
        profile = np.exp(-0.5 * ((wave[window] - centre) / sigma_a) ** 2)
        norm = float(np.sum(profile * dlam[window]))
        out[window] += flux_halpha * lines.relative_flux[name] * profile / norm
    return out


def calibration_error_factor(
    loglam: NDArray[np.floating], rng: np.random.Generator, rms: float
) -> NDArray[np.float64]:
    """A smooth multiplicative flux-calibration error: 1 + a Legendre polynomial of degree 3.

    The coefficient of P_k is normal with standard deviation ``rms * sqrt((2k + 1) / 3)``:
    P_k has an rms of ``1 / sqrt(2k + 1)`` over [-1, 1], so each degree contributes a third
    of the variance and the expected rms of the error over the spectrum is ``rms``.
    """
    loglam = np.asarray(loglam, dtype=np.float64)
    x = 2.0 * (loglam - loglam[0]) / (loglam[-1] - loglam[0]) - 1.0
    degrees = np.arange(1, 4)
    coefficients = np.concatenate([[0.0], rng.normal(0.0, rms * np.sqrt((2 * degrees + 1) / 3))])
    return 1.0 + np.polynomial.legendre.legval(x, coefficients)


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
    emission
        The nebular lines added to ``model`` (None: none).
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
    emission: EmissionLines | None = None

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
    emission: bool = False,
    calibration_rms: float = 0.0,
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
    emission
        Add nebular emission lines drawn by :func:`draw_emission_lines` from the
        population in the fibre (they do not change the labels).
    calibration_rms
        Fractional rms of a smooth multiplicative flux-calibration error (0: none;
        SDSS: about 0.04).

    Returns
    -------
    FibreSpectrum
    """
    if not (np.isfinite(snr) and snr > 0):
        raise GalamInputError(f"snr: the signal-to-noise ratio must be > 0, got {snr}")
    if not (np.isfinite(calibration_rms) and 0.0 <= calibration_rms < 0.5):
        raise GalamInputError(
            f"calibration_rms: expected a fractional rms in [0, 0.5), got {calibration_rms}"
        )
    basis = basis or observed_basis(galaxy, library=library)
    light = fibre_light(galaxy, seeing_fwhm_arcsec=seeing_fwhm_arcsec)
    model, covered = _fibre_model(light, basis)
    log_age, mh = _fibre_labels(galaxy, light)
    lines = None
    if emission:
        lines = draw_emission_lines(
            rng,
            log_age=log_age,
            mh=mh,
            ebv=galaxy.disc.ebv,
            stellar_sigma_kms=galaxy.velocity_dispersion_kms,
        )
        model = model + emission_line_spectrum(SDSS_LOGLAM, model, lines, redshift=galaxy.redshift)
    if calibration_rms > 0:
        model = model * calibration_error_factor(SDSS_LOGLAM, rng, calibration_rms)
    sky = _sdss_grid_sky()
    flux, ivar = _add_fibre_noise(model, sky, covered, snr, rng)
    return FibreSpectrum(
        loglam=SDSS_LOGLAM.copy(),
        flux=flux.astype(np.float32),
        ivar=ivar.astype(np.float32),
        model=model.astype(np.float32),
        sky=sky.astype(np.float32),
        and_mask=_sdss_and_mask(model, sky, covered),
        wdisp=np.full(model.size, _SDSS_WDISP_PIXELS, dtype=np.float32),
        redshift=galaxy.redshift,
        snr=float(snr),
        velocity_dispersion_kms=galaxy.velocity_dispersion_kms,
        log_age=log_age,
        mh=mh,
        fibre_light=light,
        emission=lines,
    )


def _fibre_model(
    light: NDArray[np.float64], basis: ObservedBasis
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The noiseless fibre spectrum on SDSS's grid and where the basis covers it.

    Raises :class:`~napari_galam.errors.GalamInputError` when no light falls into the fibre.
    """
    fine = light @ basis.spectra * 1e17
    # Each SDSS pixel spans two internal pixels: average with weights 1/4, 1/2, 1/4.
    index = np.rint((SDSS_LOGLAM - basis.loglam[0]) / LOG_STEP).astype(int)
    model = 0.25 * fine[index - 1] + 0.5 * fine[index] + 0.25 * fine[index + 1]
    covered = basis.covered[index - 1] & basis.covered[index + 1]
    if float(light.sum()) <= 0:
        raise GalamInputError("galaxy: no light falls into the fibre")
    return model, covered


def _fibre_labels(galaxy: GalaxyModel, light: NDArray[np.float64]) -> tuple[float, float]:
    """Luminosity-weighted log age and [M/H] of the light in the fibre."""
    total = float(light.sum())
    # Offsets from the first population keep the labels exact when all are equal.
    ages, metals = galaxy.basis_log_ages, galaxy.basis_mh
    log_age = float(ages[0] + light @ (ages - ages[0]) / total)
    mh = float(metals[0] + light @ (metals - metals[0]) / total)
    return log_age, mh


#: SDSS's ``wdisp``: the line-spread sigma in pixels of 1e-4 in log10(lambda).
_SDSS_WDISP_PIXELS = 1.0 / (SDSS_RESOLUTION * 2.3548 * np.log(10.0) * 1e-4)


def _sdss_and_mask(
    model: NDArray[np.float64], sky: NDArray[np.float64], covered: NDArray[np.bool_]
) -> NDArray[np.int32]:
    """SDSS's AND_MASK bits: no data where the basis does not cover, bright sky."""
    and_mask = np.zeros(model.size, dtype=np.int32)
    and_mask[~covered] |= NOPLUG_NODATA_BIT
    bright = sky > 4.0 * np.clip(model, 1e-3, None)
    and_mask[bright] |= BRIGHTSKY_BIT
    return and_mask


def _add_fibre_noise(
    model: NDArray[np.float64],
    sky: NDArray[np.float64],
    covered: NDArray[np.bool_],
    snr: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Noisy flux with a median S/N per pixel of ``snr``, and its inverse variance."""
    shape = np.sqrt(np.clip(model, 0.0, None) + sky)
    scale = float(np.median(model[covered] / shape[covered])) / snr
    sigma = scale * shape
    flux = model + sigma * rng.standard_normal(model.size)
    ivar = np.where(covered, 1.0 / sigma**2, 0.0)
    return flux, ivar


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
