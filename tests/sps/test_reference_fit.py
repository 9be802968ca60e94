"""Tests of the pPXF reference fits: real SDSS spectra and SSP mixtures with known labels."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from astropy.io import fits
from ppxf import ppxf_util

from napari_galam.errors import GalamInputError
from napari_galam.sps.library import load_ssp_library
from napari_galam.sps.reference_fit import PopulationFit, fit_population


def read_ppxf_sdss_spectrum(name: str) -> dict:
    """Read one of the SDSS DR18 spectra shipped in the ppxf wheel (COADD + SPECOBJ)."""
    path = resources.files("ppxf") / "spectra" / f"{name}_SDSS_DR18.fits"
    with fits.open(path) as hdul:
        coadd = hdul["COADD"].data
        wave = 10.0 ** coadd["loglam"].astype(np.float64)
        ivar = coadd["ivar"].astype(np.float64)
        spectrum = {
            "wave": wave,
            "flux": coadd["flux"].astype(np.float64),
            "noise": np.where(ivar > 0, 1.0 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), np.inf),
            "fwhm_gal": 2.355 * coadd["wdisp"].astype(np.float64) * np.gradient(wave),
            "redshift": float(hdul["SPECOBJ"].data["Z"][0]),
        }
    return spectrum


@pytest.fixture(scope="module")
def ngc3522() -> PopulationFit:
    spectrum = read_ppxf_sdss_spectrum("NGC3522")
    return fit_population(**spectrum, vacuum=True, regul=100)


@pytest.fixture(scope="module")
def ngc3073() -> PopulationFit:
    spectrum = read_ppxf_sdss_spectrum("NGC3073")
    return fit_population(**spectrum, vacuum=True, regul=100)


def check_finite(fit: PopulationFit) -> None:
    for value in (fit.log_age, fit.mh, fit.log_age_mass, fit.mh_mass, fit.sigma, fit.chi2):
        assert np.isfinite(value)
    np.testing.assert_allclose(fit.light_weights.sum(), 1.0)
    np.testing.assert_allclose(fit.mass_weights.sum(), 1.0)
    assert fit.light_weights.shape == fit.mass_weights.shape == (25, 6)
    assert fit.best_fit.shape == fit.galaxy.shape == fit.wave_rest.shape == fit.fitted.shape
    assert fit.n_fitted == fit.fitted.sum() > 3000


def test_ngc3522_is_old_and_near_solar(ngc3522):
    """NGC 3522, an elliptical: pPXF's own example finds <lg age> 9.87, [M/H] 0.005, sigma 99."""
    check_finite(ngc3522)
    assert 9.7 < ngc3522.log_age < 10.2
    assert -0.3 < ngc3522.mh < 0.25
    assert ngc3522.log_age_mass >= ngc3522.log_age - 0.05
    assert 80 < ngc3522.sigma < 130
    assert abs(ngc3522.velocity) < 60
    assert 0.3 < ngc3522.chi2 < 2.0
    assert not ngc3522.noise_estimated


def test_ngc3073_is_younger_than_ngc3522(ngc3073, ngc3522):
    """NGC 3073, a star-forming dwarf S0, is light-dominated by young stars."""
    check_finite(ngc3073)
    assert 8.0 < ngc3073.log_age < 9.3
    assert ngc3073.log_age < ngc3522.log_age - 0.5
    assert -1.0 < ngc3073.mh < 0.25
    assert ngc3073.sigma < 80
    assert 0.3 < ngc3073.chi2 < 2.0


def mock_spectrum(
    *, redshift: float, sigma_kms: float, fwhm_obs: float | None, linear: bool
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Two library SSPs mixed, broadened, redshifted and cut to the SDSS range, no noise."""
    library = load_ssp_library()
    weights = np.zeros((library.n_ages, library.n_metals))
    weights[14, 3] = 0.3  # 1.6 Gyr, [M/H] = -0.40
    weights[22, 4] = 0.7  # 10 Gyr, [M/H] = 0.00
    rest = library.mix_spectra(weights)
    if fwhm_obs is not None:  # instrumental resolution, in the rest frame
        extra = np.sqrt(((fwhm_obs / (1 + redshift)) ** 2 - library.fwhm**2).clip(0)) / 2.355
        rest = ppxf_util.varsmooth(library.wave, rest, extra)
    velscale = 69.0
    galaxy, ln_lam, _ = ppxf_util.log_rebin(library.wave[[0, -1]], rest, velscale=velscale)
    offsets = np.arange(-40, 41)
    kernel = np.exp(-0.5 * (offsets * velscale / sigma_kms) ** 2)
    galaxy = np.convolve(galaxy, kernel / kernel.sum(), mode="same")
    wave = np.exp(ln_lam) * (1 + redshift)
    if linear:
        linear_wave = np.arange(3800.0, 9200.0, 1.25)
        return (
            linear_wave,
            np.interp(linear_wave, wave, galaxy),
            library.luminosity_weighted_labels(weights),
        )
    inside = (wave > 3800) & (wave < 9200)
    return wave[inside], galaxy[inside], library.luminosity_weighted_labels(weights)


@pytest.mark.parametrize(
    ("redshift", "fwhm_obs", "linear"),
    [(0.05, None, False), (0.12, 3.0, True)],
    ids=["log-sampled-template-resolution", "linear-sampled-sdss-resolution"],
)
def test_recovers_labels_of_a_two_ssp_mixture(redshift, fwhm_obs, linear):
    wave, flux, (log_age, mh) = mock_spectrum(
        redshift=redshift, sigma_kms=150.0, fwhm_obs=fwhm_obs, linear=linear
    )
    fit = fit_population(wave, flux, redshift=redshift, fwhm_gal=fwhm_obs)
    assert fit.noise_estimated
    assert fit.log_age == pytest.approx(log_age, abs=0.05)
    assert fit.mh == pytest.approx(mh, abs=0.05)
    assert fit.sigma == pytest.approx(150.0, abs=10.0)
    assert abs(fit.velocity) < 10.0
    # the mass-weighted age is older than the light-weighted one for this mixture
    assert fit.log_age_mass == pytest.approx(0.3 * 9.2 + 0.7 * 10.0, abs=0.05)


def test_bad_inputs_raise_input_error():
    wave = np.linspace(4000.0, 8000.0, 2000)
    flux = np.ones_like(wave)
    with pytest.raises(GalamInputError, match="same length"):
        fit_population(wave, flux[:-1])
    with pytest.raises(GalamInputError, match="redshift"):
        fit_population(wave, flux, redshift=-1.0)
    with pytest.raises(GalamInputError, match="strictly increasing"):
        fit_population(wave[::-1], flux)
    with pytest.raises(GalamInputError, match="library's rest-frame range"):
        fit_population(wave * 4, flux)
    with pytest.raises(GalamInputError, match="fwhm_gal"):
        fit_population(wave, flux, fwhm_gal=np.ones(10))
    with pytest.raises(GalamInputError, match="median flux"):
        fit_population(wave, -flux)


@pytest.fixture(scope="module")
def ngc3073_gas() -> PopulationFit:
    spectrum = read_ppxf_sdss_spectrum("NGC3073")
    return fit_population(**spectrum, vacuum=True, fit_gas=True, n_bootstrap=4, seed=7)


def test_gas_lines_fitted_with_templates(ngc3073_gas, ngc3073):
    """NGC 3073 has strong emission lines: fitted, they are in the best fit, not masked."""
    fit = ngc3073_gas
    assert fit.gas_best_fit is not None and fit.gas_best_fit.shape == fit.galaxy.shape
    assert "Halpha" in fit.gas_names and "Hbeta" in fit.gas_names
    halpha = fit.gas_flux[fit.gas_names.index("Halpha")]
    assert halpha > 0
    # no pixel is masked for the lines, so more are fitted than with masking
    assert fit.n_fitted > ngc3073.n_fitted
    np.testing.assert_allclose(fit.stellar_best_fit + fit.gas_best_fit, fit.best_fit)
    assert 0 < fit.gas_sigma < 300 and abs(fit.gas_velocity - fit.velocity) < 100
    assert fit.log_age == pytest.approx(ngc3073.log_age, abs=0.15)
    assert 0.3 < fit.chi2 < 2.0
    assert np.isnan(fit.residuals[~fit.fitted]).all()


def test_bootstrap_errors_are_seeded(ngc3073_gas):
    fit = ngc3073_gas
    assert fit.n_bootstrap == 4
    assert 0 < fit.log_age_err < 0.3 and 0 < fit.mh_err < 0.3
    spectrum = read_ppxf_sdss_spectrum("NGC3073")
    again = fit_population(**spectrum, vacuum=True, fit_gas=True, n_bootstrap=4, seed=7)
    assert again.log_age_err == fit.log_age_err and again.mh_err == fit.mh_err
    without = fit_population(**spectrum, vacuum=True)
    assert np.isnan(without.log_age_err) and without.gas_best_fit is None


def test_default_ftol_saves_evaluations_within_the_errors(ngc3073_gas):
    """pPXF's own ftol (1e-4) takes more model evaluations to move the labels by less
    than their bootstrap errors; a tolerance out of (0, 1) is refused."""
    spectrum = read_ppxf_sdss_spectrum("NGC3073")
    strict = fit_population(**spectrum, vacuum=True, fit_gas=True, ftol=1e-4)
    fit = ngc3073_gas
    assert 0 < fit.n_evaluations < strict.n_evaluations
    assert abs(strict.log_age - fit.log_age) < fit.log_age_err
    assert abs(strict.mh - fit.mh) < fit.mh_err
    assert abs(strict.sigma - fit.sigma) < 5.0
    for bad in (0.0, 1.0, float("nan")):
        with pytest.raises(GalamInputError, match="ftol"):
            fit_population(**spectrum, vacuum=True, ftol=bad)
