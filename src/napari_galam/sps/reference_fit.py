"""Reference stellar-population fits with pPXF and the shipped E-MILES library.

:func:`fit_population` fits one optical spectrum with a current pPXF (Cappellari 2023)
and the 150 SSP templates of ``napari_galam/data/emiles_ssp.npz``, the way the
MMLforGalAM labels were made (Wang et al. 2025, Sect. 2: pPXF with MILES SSPs): the
galaxy is moved to the rest frame and log-rebinned, the templates are broadened to the
galaxy's resolution and normalised to a mean of one in 5070-5950 Angstrom, so that the
weights pPXF returns are light fractions and the mean log age and [M/H] are
luminosity-weighted with the same convention as
:meth:`napari_galam.sps.library.SSPLibrary.luminosity_weighted_labels`. Gas emission
lines are masked, or fitted with Gaussian gas templates
(``ppxf.ppxf_util.emission_lines``, one gas kinematic component); a multiplicative
polynomial absorbs flux-calibration and dust; regularisation is optional; errors of
the log age and [M/H] come, when asked, from a seeded wild bootstrap of the residuals
(refits of the best fit plus sign-flipped residuals, as in pPXF's bootstrap example).

These fits are the yardstick for the simulator (pPXF must recover the labels of a
simulated spectrum) and for the benchmarks; they are not fast (about a second each).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from napari_galam.errors import GalamInputError
from napari_galam.sps.library import LIGHT_WEIGHT_BAND, load_ssp_library, ssp_library_path

__all__ = ["PopulationFit", "SPEED_OF_LIGHT_KMS", "fit_population"]

_NAN = float("nan")

#: Speed of light in km/s.
SPEED_OF_LIGHT_KMS = 299792.458


@dataclass(frozen=True, eq=False)
class PopulationFit:
    """Result of one pPXF stellar-population fit.

    Attributes
    ----------
    log_age, mh : float
        Luminosity-weighted mean log10(age / yr) and [M/H] (light normalised in
        5070-5950 Angstrom, pPXF's convention).
    log_age_mass, mh_mass : float
        The same means weighted by initial stellar mass.
    light_weights, mass_weights : ndarray, shape (n_ages, n_metals)
        Fractions of light (5070-5950 Angstrom) and of initial mass in each SSP; each sums
        to 1.
    log_ages, metals : ndarray
        The grid: log10(age / yr) of each row and [M/H] of each column of the weights.
    velocity : float
        Line-of-sight velocity in km/s relative to the given redshift.
    sigma : float
        Stellar velocity dispersion in km/s (corrected for the instrumental resolution,
        which the templates were broadened to).
    chi2 : float
        Reduced chi^2 over the fitted pixels (about 1 for a good fit with correct noise;
        about 1 by construction when the noise was estimated from the residuals).
    noise_estimated : bool
        Whether ``noise`` was not given and was taken as the rms of the residuals.
    n_fitted : int
        Number of pixels in the fit (after masking bad pixels and emission lines).
    redshift : float
        The redshift the spectrum was moved to the rest frame with.
    velscale : float
        km/s per log-rebinned pixel.
    wave_rest : ndarray, shape (npix,)
        Rest-frame (air) wavelength of the fitted, log-rebinned spectrum, Angstrom.
    galaxy, best_fit : ndarray, shape (npix,)
        The spectrum and pPXF's best fit, both divided by ``flux_scale``.
    fitted : ndarray of bool, shape (npix,)
        Pixels used in the fit.
    flux_scale : float
        The median flux the spectrum was divided by.
    log_age_err, mh_err : float
        Standard deviation of the light-weighted log age and [M/H] over the bootstrap
        refits (NaN without bootstrap).
    n_bootstrap : int
        Number of bootstrap refits made.
    gas_best_fit : ndarray or None, shape (npix,)
        The fitted gas emission (divided by ``flux_scale``); None when lines were masked.
    gas_names : tuple of str
        Names of the gas templates (pPXF's line names).
    gas_flux : ndarray or None
        Fitted flux of each gas template (in ``flux_scale`` x Angstrom).
    gas_velocity, gas_sigma : float
        Velocity and dispersion of the gas component, km/s (NaN when masked).
    n_evaluations : int
        Models pPXF evaluated in the (last) best fit, bootstrap refits left out.
    """

    log_age: float
    mh: float
    log_age_mass: float
    mh_mass: float
    light_weights: NDArray[np.float64]
    mass_weights: NDArray[np.float64]
    log_ages: NDArray[np.float64]
    metals: NDArray[np.float64]
    velocity: float
    sigma: float
    chi2: float
    noise_estimated: bool
    n_fitted: int
    redshift: float
    velscale: float
    wave_rest: NDArray[np.float64]
    galaxy: NDArray[np.float64]
    best_fit: NDArray[np.float64]
    fitted: NDArray[np.bool_]
    flux_scale: float
    log_age_err: float = _NAN
    mh_err: float = _NAN
    n_bootstrap: int = 0
    gas_best_fit: NDArray[np.float64] | None = None
    gas_names: tuple[str, ...] = ()
    gas_flux: NDArray[np.float64] | None = None
    gas_velocity: float = _NAN
    gas_sigma: float = _NAN
    n_evaluations: int = 0

    @property
    def stellar_best_fit(self) -> NDArray[np.float64]:
        """The best fit without the gas emission."""
        if self.gas_best_fit is None:
            return self.best_fit
        return self.best_fit - self.gas_best_fit

    @property
    def residuals(self) -> NDArray[np.float64]:
        """Data minus best fit (NaN at pixels left out of the fit)."""
        return np.where(self.fitted, self.galaxy - self.best_fit, np.nan)


def _check_inputs(
    wave: ArrayLike, flux: ArrayLike, noise: ArrayLike | None, redshift: float
) -> tuple[NDArray, NDArray, NDArray | None]:
    wave = np.asarray(wave, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    if wave.ndim != 1 or wave.shape != flux.shape or wave.size < 100:
        raise GalamInputError(
            f"spectrum: wave and flux must be 1-D arrays of the same length (>= 100 pixels), "
            f"got shapes {wave.shape} and {flux.shape}"
        )
    if not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0):
        raise GalamInputError("wave: wavelengths must be finite and strictly increasing")
    if not (np.isfinite(redshift) and -0.01 < redshift < 5):
        raise GalamInputError(f"redshift: expected a number between -0.01 and 5, got {redshift}")
    if noise is not None:
        noise = np.broadcast_to(np.asarray(noise, dtype=np.float64), wave.shape).copy()
    return wave, flux, noise


def _is_log_sampled(wave: NDArray) -> bool:
    steps = np.diff(np.log(wave))
    return bool(np.allclose(steps, steps.mean(), rtol=1e-2, atol=0))


def fit_population(
    wave: ArrayLike,
    flux: ArrayLike,
    *,
    noise: ArrayLike | float | None = None,
    redshift: float = 0.0,
    fwhm_gal: ArrayLike | float | None = 2.76,
    vacuum: bool = False,
    sigma_guess: float = 150.0,
    mask_emission_lines: bool = True,
    regul: float = 0.0,
    mdegree: int = 10,
    degree: int = -1,
    fit_gas: bool = False,
    n_bootstrap: int = 0,
    seed: int = 0,
    ftol: float = 1e-3,
) -> PopulationFit:
    """Fit the stellar population of one spectrum with pPXF and the shipped E-MILES SSPs.

    Parameters
    ----------
    wave : array_like, shape (npix,)
        Observed wavelengths in Angstrom, increasing; log-sampled spectra (SDSS
        ``10**loglam``) are used as they are, others are log-rebinned first.
    flux : array_like, shape (npix,)
        f_lambda in any units. Non-finite pixels are left out of the fit.
    noise : array_like or float, optional
        1-sigma error of ``flux`` (same units), per pixel or constant; pixels with
        non-finite or non-positive noise are left out. If None, the fit is made with
        uniform errors and the noise is then set to the rms of the residuals (the
        weights do not depend on it unless ``regul > 0``, in which case the fit is
        repeated with that noise).
    redshift : float, optional
        Redshift of the galaxy; the spectrum is moved to its rest frame.
    fwhm_gal : array_like, float or None, optional
        Instrumental FWHM of the spectrum in observed Angstrom, constant or per pixel
        (for SDSS: ``2.355 * wdisp * dlambda``); default 2.76, a typical SDSS value.
        None means the spectrum already has the templates' resolution (2.51 Angstrom
        rest-frame FWHM in the optical), as simulated spectra made from the library do.
    vacuum : bool, optional
        True if ``wave`` is in vacuum (SDSS); E-MILES is in air, so the spectrum is
        moved to air wavelengths.
    sigma_guess : float, optional
        Starting guess of the velocity dispersion, km/s.
    mask_emission_lines : bool, optional
        Leave out 800 km/s around the usual gas emission lines (pPXF's list); ignored
        when ``fit_gas``.
    regul : float, optional
        pPXF regularisation strength (0: none; pPXF's examples use 100).
    mdegree, degree : int, optional
        Degrees of pPXF's multiplicative and additive Legendre polynomials (defaults 10
        and -1, as in pPXF's population examples).
    fit_gas : bool, optional
        Fit the emission lines with pPXF's Gaussian gas templates (one gas component
        with its own velocity and dispersion) instead of masking them.
    n_bootstrap : int, optional
        Refits of the best fit plus the residuals with random signs (wild bootstrap),
        unregularised, starting from the best kinematics; their standard deviation is
        ``log_age_err`` and ``mh_err``. 0: none (a few tens give errors to ~15%).
    seed : int, optional
        Seed of the bootstrap's random signs.
    ftol : float, optional
        pPXF's fractional tolerance on chi^2 that stops the non-linear fit (capfit stops
        when a step's predicted and actual relative decrease of chi^2 are both below
        it). chi^2 is about the number of fitted pixels (1900 for a CALIFA V500 bin,
        3800 for an SDSS spectrum), so pPXF's own default, 1e-4, stops at a decrease of
        0.2-0.4 and 1e-3 at 2-4: about 40% fewer model evaluations, and labels that
        move by less than their errors (``benchmarks/bench_ppxf.py``: at most 0.005 dex
        in log age and 0.014 dex in [M/H] on CALIFA bins whose bootstrap errors are
        0.03 dex; on simulated SDSS spectra the same bias and scatter against the truth
        at S/N 10, 20 and 50).

    Returns
    -------
    PopulationFit
        Luminosity- and mass-weighted log age and [M/H], weights, kinematics, chi^2 and
        the fitted spectrum.

    Raises
    ------
    GalamInputError
        If the arrays are malformed, the redshift is out of range, too few good pixels
        overlap the library, or ``fwhm_gal`` does not match ``wave``.
    """
    wave, flux, noise = _check_inputs(wave, flux, noise, redshift)
    if not (np.isfinite(ftol) and 0 < ftol < 1):
        raise GalamInputError(f"ftol: expected a number between 0 and 1, got {ftol}")
    library = load_ssp_library()
    fwhm_gal = _checked_fwhm(fwhm_gal, wave)
    # Keep the part of the spectrum the templates cover with a velocity margin.
    margin = np.exp(3000.0 / SPEED_OF_LIGHT_KMS)
    spectrum = _rest_frame_log_spectrum(
        wave, flux, noise, fwhm_gal, redshift=redshift, vacuum=vacuum,
        library_wave=library.wave, margin=margin,
    )  # fmt: skip
    valid, velscale = spectrum.valid, spectrum.velscale
    lam_gal = np.exp(spectrum.ln_lam)

    flux_scale = float(np.median(spectrum.galaxy[valid]))
    if not flux_scale > 0:
        raise GalamInputError("flux: the median flux of the good pixels is not positive")
    galaxy = spectrum.galaxy / flux_scale

    sps = _library_templates(lam_gal, velscale, spectrum.fwhm_gal, margin)
    gas = _gas_templates(sps, lam_gal, spectrum.fwhm_gal) if fit_gas else None
    fitted = _fitted_pixels(
        valid, spectrum.ln_lam, sps.lam_temp, mask_emission_lines and not fit_gas
    )
    goodpixels = np.flatnonzero(fitted)
    run_ppxf = functools.partial(
        _run_ppxf, sps, gas, velscale=velscale, goodpixels=goodpixels, lam_gal=lam_gal,
        sigma_guess=sigma_guess, degree=degree, mdegree=mdegree, ftol=ftol,
    )  # fmt: skip
    noise_estimated = spectrum.noise is None
    if noise_estimated:
        fit, noise_vector = _fit_estimating_noise(run_ppxf, galaxy, goodpixels, regul)
    else:
        noise_vector = spectrum.noise / flux_scale
        fit = run_ppxf(galaxy, noise_vector, regul=regul)
    result = _population_fit(
        fit, sps, gas, galaxy, noise_vector, fitted, noise_estimated=noise_estimated,
        redshift=redshift, velscale=velscale, lam_gal=lam_gal, flux_scale=flux_scale,
    )  # fmt: skip
    if n_bootstrap > 0:
        result = _bootstrap(result, fit, run_ppxf, sps, noise_vector, n_bootstrap, seed)
    return result


@dataclass(frozen=True, eq=False)
class _GasTemplates:
    """pPXF's Gaussian emission-line templates on the stellar templates' grid."""

    templates: NDArray
    names: tuple[str, ...]


def _gas_templates(sps: Any, lam_gal: NDArray, fwhm_gal: NDArray | None) -> _GasTemplates | None:
    """The gas templates of the lines inside the galaxy's range (None when there is none).

    Without an instrumental FWHM (a spectrum at the templates' resolution) the lines
    get the library's 2.51 Angstrom FWHM.
    """
    import contextlib
    import io

    from ppxf import ppxf_util

    fwhm = 2.51 if fwhm_gal is None else {"lam": lam_gal, "fwhm": fwhm_gal}
    with contextlib.redirect_stdout(io.StringIO()):  # pPXF prints the lines it includes
        templates, names, _ = ppxf_util.emission_lines(
            np.log(sps.lam_temp), [lam_gal[0], lam_gal[-1]], fwhm
        )
    if templates.ndim != 2 or templates.shape[1] == 0:
        return None
    return _GasTemplates(np.asarray(templates), tuple(str(n) for n in names))


def _bootstrap(
    result: PopulationFit,
    fit: Any,
    run_ppxf: Any,
    sps: Any,
    noise_vector: NDArray,
    n_bootstrap: int,
    seed: int,
) -> PopulationFit:
    """Errors of the log age and [M/H] from refits of best fit + sign-flipped residuals."""
    import dataclasses

    rng = np.random.default_rng(seed)
    residual = np.where(result.fitted, result.galaxy - result.best_fit, 0.0)
    n_stars = sps.templates[0].size
    labels = []
    for _ in range(int(n_bootstrap)):
        signs = rng.choice(np.array([-1.0, 1.0]), size=residual.size)
        refit = run_ppxf(result.best_fit + residual * signs, noise_vector, regul=0.0,
                         start=fit.sol)  # fmt: skip
        weights = np.asarray(refit.weights[:n_stars]).reshape(sps.templates.shape[1:])
        light, _ = _light_and_mass_weights(weights, sps.flux)
        labels.append(
            (np.sum(light.sum(axis=1) * result.log_ages), np.sum(light.sum(axis=0) * result.metals))
        )
    spread = np.std(np.asarray(labels), axis=0, ddof=1) if n_bootstrap > 1 else (_NAN, _NAN)
    return dataclasses.replace(
        result, log_age_err=float(spread[0]), mh_err=float(spread[1]), n_bootstrap=int(n_bootstrap)
    )


def _run_ppxf(
    sps: Any,
    gas: _GasTemplates | None,
    galaxy: NDArray,
    noise_vector: NDArray,
    *,
    velscale: float,
    goodpixels: NDArray,
    lam_gal: NDArray,
    sigma_guess: float,
    degree: int,
    mdegree: int,
    ftol: float,
    regul: float,
    start: Any = None,
) -> Any:
    """One pPXF fit of ``galaxy``: stars (velocity, dispersion) and, with ``gas``, one gas
    component of its own kinematics. ``start`` is pPXF's starting guess (a solution)."""
    from ppxf.ppxf import ppxf

    reg_dim = sps.templates.shape[1:]
    stars = sps.templates.reshape(sps.templates.shape[0], -1)
    options: dict[str, Any] = {}
    if gas is None:
        templates, guess, moments = stars, [0.0, sigma_guess], 2
    else:
        templates = np.column_stack([stars, gas.templates])
        n_gas = gas.templates.shape[1]
        guess, moments = [[0.0, sigma_guess], [0.0, 50.0]], [2, 2]
        component = [0] * stars.shape[1] + [1] * n_gas
        options.update(
            component=component, gas_component=np.asarray(component) > 0,
            gas_names=list(gas.names),
        )  # fmt: skip
    if start is not None:
        guess = [list(part) for part in start] if gas is not None else list(start)
    return ppxf(
        templates,
        galaxy,
        noise_vector,
        velscale,
        guess,
        goodpixels=goodpixels,
        lam=lam_gal,
        lam_temp=sps.lam_temp,
        moments=moments,
        degree=degree,
        mdegree=mdegree,
        regul=regul,
        reg_dim=reg_dim if regul > 0 else None,
        ftol=ftol,
        quiet=True,
        **options,
    )


def _population_fit(
    fit: Any,
    sps: Any,
    gas: _GasTemplates | None,
    galaxy: NDArray,
    noise_vector: NDArray,
    fitted: NDArray,
    *,
    noise_estimated: bool,
    redshift: float,
    velscale: float,
    lam_gal: NDArray,
    flux_scale: float,
) -> PopulationFit:
    """The :class:`PopulationFit` of a pPXF fit: weighted labels, weights and chi^2."""
    goodpixels = np.flatnonzero(fitted)
    chi2 = float(np.mean(((galaxy - fit.bestfit) / noise_vector)[goodpixels] ** 2))
    n_stars = sps.templates[0].size
    stellar_weights = np.asarray(fit.weights[:n_stars]).reshape(sps.templates.shape[1:])
    light, mass = _light_and_mass_weights(stellar_weights, sps.flux)
    log_ages = np.log10(sps.age_grid[:, 0]) + 9.0
    metals = sps.metal_grid[0].copy()
    stars_sol = fit.sol if gas is None else fit.sol[0]
    gas_info: dict[str, Any] = {}
    if gas is not None:
        gas_info = {
            "gas_best_fit": np.asarray(fit.gas_bestfit, dtype=np.float64),
            "gas_names": gas.names,
            "gas_flux": np.asarray(fit.gas_flux, dtype=np.float64),
            "gas_velocity": float(fit.sol[1][0]),
            "gas_sigma": float(fit.sol[1][1]),
        }
    return PopulationFit(
        log_age=float(np.sum(light.sum(axis=1) * log_ages)),
        mh=float(np.sum(light.sum(axis=0) * metals)),
        log_age_mass=float(np.sum(mass.sum(axis=1) * log_ages)),
        mh_mass=float(np.sum(mass.sum(axis=0) * metals)),
        light_weights=light,
        mass_weights=mass,
        log_ages=log_ages,
        metals=metals,
        velocity=float(stars_sol[0]),
        sigma=float(stars_sol[1]),
        chi2=chi2,
        noise_estimated=noise_estimated,
        n_fitted=int(goodpixels.size),
        redshift=float(redshift),
        velscale=float(velscale),
        wave_rest=lam_gal,
        galaxy=galaxy,
        best_fit=np.asarray(fit.bestfit, dtype=np.float64),
        fitted=fitted,
        flux_scale=flux_scale,
        n_evaluations=int(fit.nfev),
        **gas_info,
    )


def _checked_fwhm(fwhm_gal: ArrayLike | float | None, wave: NDArray) -> NDArray | None:
    """The instrumental FWHM per pixel of ``wave`` (None stays None).

    Raises
    ------
    GalamInputError
        When it is an array of another length, or not finite and positive.
    """
    if fwhm_gal is None:
        return None
    fwhm_gal = np.asarray(fwhm_gal, dtype=np.float64)
    if fwhm_gal.ndim == 1 and fwhm_gal.shape != wave.shape:
        raise GalamInputError(
            f"fwhm_gal: expected a number or {wave.size} values (one per pixel), "
            f"got shape {fwhm_gal.shape}"
        )
    fwhm_gal = np.broadcast_to(fwhm_gal, wave.shape)
    if not np.all(np.isfinite(fwhm_gal) & (fwhm_gal > 0)):
        raise GalamInputError("fwhm_gal: the instrumental FWHM must be finite and positive")
    return fwhm_gal


@dataclass(frozen=True, eq=False)
class _LogSpectrum:
    """A spectrum moved to the rest frame, cut to the library and sampled in ln(lambda).

    ``galaxy`` is the flux (unscaled, 0 at bad pixels), ``ln_lam`` its log wavelengths
    (rest frame, Angstrom), ``velscale`` the pixel size in km/s, ``valid`` the good
    pixels, ``noise`` the 1-sigma error (1 at bad pixels; None when not given) and
    ``fwhm_gal`` the rest-frame instrumental FWHM (None: the templates' resolution).
    """

    galaxy: NDArray
    ln_lam: NDArray
    velscale: float
    valid: NDArray
    noise: NDArray | None
    fwhm_gal: NDArray | None


def _rest_frame_log_spectrum(
    wave: NDArray,
    flux: NDArray,
    noise: NDArray | None,
    fwhm_gal: NDArray | None,
    *,
    redshift: float,
    vacuum: bool,
    library_wave: NDArray,
    margin: float,
) -> _LogSpectrum:
    """Move to air and the rest frame, cut to ``library_wave`` / ``margin`` and log-rebin
    (log-sampled spectra are kept as they are).

    Raises
    ------
    GalamInputError
        When fewer than 100 good pixels fall in the library's rest-frame range.
    """
    from ppxf import ppxf_util

    if vacuum:
        wave = wave * np.median(ppxf_util.vac_to_air(wave) / wave)
    wave_rest = wave / (1.0 + redshift)
    inside = (wave_rest > library_wave[0] * margin) & (wave_rest < library_wave[-1] / margin)
    valid = np.isfinite(flux)
    if noise is not None:
        valid &= np.isfinite(noise) & (noise > 0)
    if np.count_nonzero(inside & valid) < 100:
        raise GalamInputError(
            f"spectrum: fewer than 100 good pixels fall in the library's rest-frame range "
            f"{library_wave[0]:.0f}-{library_wave[-1]:.0f} Angstrom at z={redshift}"
        )
    keep = np.flatnonzero(inside)
    keep = slice(keep[0], keep[-1] + 1)
    wave_rest, flux, valid = wave_rest[keep], np.where(valid, flux, 0.0)[keep], valid[keep]
    noise = None if noise is None else np.where(valid, noise, 1.0)[keep]
    if fwhm_gal is not None:
        fwhm_gal = fwhm_gal[keep] / (1.0 + redshift)

    if _is_log_sampled(wave_rest):
        ln_lam = np.log(wave_rest)
        velscale = SPEED_OF_LIGHT_KMS * (ln_lam[-1] - ln_lam[0]) / (ln_lam.size - 1)
        galaxy = flux
    else:
        galaxy, ln_lam, velscale = ppxf_util.log_rebin(wave_rest, flux)
        bad_fraction = ppxf_util.log_rebin(wave_rest, (~valid).astype(float))[0]
        new_wave = np.exp(ln_lam)
        valid = bad_fraction < 1e-6
        if noise is not None:
            noise = np.interp(new_wave, wave_rest, noise)
        if fwhm_gal is not None:
            fwhm_gal = np.interp(new_wave, wave_rest, fwhm_gal)
        velscale = float(np.atleast_1d(velscale)[0])
    return _LogSpectrum(galaxy, ln_lam, velscale, valid, noise, fwhm_gal)


#: The last few template sets made (bins of one cube share one: same grid and resolution).
_TEMPLATE_CACHE: dict[tuple[Any, ...], Any] = {}
_TEMPLATE_CACHE_SIZE = 4


def _library_templates(
    lam_gal: NDArray, velscale: float, fwhm_gal: NDArray | None, margin: float
) -> Any:
    """The shipped E-MILES templates for pPXF (``ppxf.sps_util.sps_lib``): broadened to
    ``fwhm_gal`` (None: left as they are), normalised in :data:`LIGHT_WEIGHT_BAND`,
    cut to the galaxy's range widened by ``margin**2``.

    The same grid, resolution and margin give the same templates, so the last few sets
    are kept (about a fifth of a cube bin's fit time otherwise).
    """
    import hashlib

    digest = hashlib.sha1(np.ascontiguousarray(lam_gal).tobytes())
    if fwhm_gal is not None:
        digest.update(np.ascontiguousarray(fwhm_gal, dtype=np.float64).tobytes())
    key = (digest.hexdigest(), fwhm_gal is None, float(velscale), float(margin))
    if key not in _TEMPLATE_CACHE:
        if len(_TEMPLATE_CACHE) >= _TEMPLATE_CACHE_SIZE:
            _TEMPLATE_CACHE.pop(next(iter(_TEMPLATE_CACHE)))
        _TEMPLATE_CACHE[key] = _make_library_templates(lam_gal, velscale, fwhm_gal, margin)
    return _TEMPLATE_CACHE[key]


def _make_library_templates(
    lam_gal: NDArray, velscale: float, fwhm_gal: NDArray | None, margin: float
) -> Any:
    """:func:`_library_templates` without the cache."""
    from ppxf import sps_util

    fwhm_arg = None if fwhm_gal is None else {"lam": lam_gal, "fwhm": fwhm_gal}
    lam_range = [lam_gal[0] / margin**2, lam_gal[-1] * margin**2]
    return sps_util.sps_lib(
        str(ssp_library_path()),
        velscale,
        fwhm_arg,
        norm_range=list(LIGHT_WEIGHT_BAND),
        lam_range=lam_range,
    )


def _light_and_mass_weights(weights: NDArray, template_flux: NDArray) -> tuple[NDArray, NDArray]:
    """Light fractions (pPXF's weights normalised to one) and mass fractions (light over
    each template's flux in the normalisation band, normalised to one)."""
    light = weights / weights.sum()
    mass = light / template_flux
    mass = mass / mass.sum()
    return light, mass


def _fitted_pixels(
    valid: NDArray, ln_lam: NDArray, lam_temp: NDArray, mask_emission_lines: bool
) -> NDArray:
    """The pixels pPXF fits: the valid ones, less gas emission lines when asked."""
    from ppxf import ppxf_util

    fitted = valid.copy()
    if mask_emission_lines:
        good = ppxf_util.determine_goodpixels(ln_lam, [lam_temp[0], lam_temp[-1]])
        lines_ok = np.zeros_like(fitted)
        lines_ok[good] = True
        fitted &= lines_ok
    return fitted


def _fit_estimating_noise(
    run_ppxf: Any, galaxy: NDArray, goodpixels: NDArray, regul: float
) -> tuple[Any, NDArray]:
    """Fit with uniform errors, then set the noise to the residuals' robust rms.

    With regularisation the weights depend on the noise, so the fit is repeated with it.
    Returns the fit and the noise vector.
    """
    fit = run_ppxf(galaxy, np.ones_like(galaxy), regul=regul)
    residual = (galaxy - fit.bestfit)[goodpixels]
    rms = 1.4826 * np.median(np.abs(residual - np.median(residual)))
    noise_vector = np.full_like(galaxy, max(rms, 1e-6))
    if regul > 0:
        fit = run_ppxf(galaxy, noise_vector, regul=regul)
    return fit, noise_vector
