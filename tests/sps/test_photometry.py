"""Tests of matrix-form synthetic photometry against speclite."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.sps.filters import jpas_filters, sdss_filters
from napari_galam.sps.library import load_ssp_library
from napari_galam.sps.photometry import (
    ab_maggies,
    ab_magnitudes,
    ab_reference_flam,
    filter_matrix,
    flam_to_fnu,
    fnu_to_flam,
    synthetic_fluxes,
)

LSUN_ERG_S = 3.828e33
MPC_CM = 3.0856775814913673e24


@pytest.fixture(scope="module")
def library():
    return load_ssp_library()


def ssp_flux_at(library, distance_mpc, mass_msun=1e10):
    """All 150 SSPs as observed f_lambda (erg/s/cm^2/A), shape (150, npix)."""
    lum = library.templates.reshape(library.npix, -1).T.astype(np.float64)
    return lum * mass_msun * LSUN_ERG_S / (4 * np.pi * (distance_mpc * MPC_CM) ** 2)


def speclite_table(filters, flux, wave):
    table = filters.get_ab_magnitudes(flux, wave)
    return np.array([np.asarray(table[name]) for name in filters.names]).T


def test_sdss_magnitudes_match_speclite(library):
    flux = ssp_flux_at(library, distance_mpc=40.0)
    filters = sdss_filters()
    ours = ab_magnitudes(library.wave, flux, filters)
    theirs = speclite_table(filters, flux, library.wave)
    assert ours.shape == (150, 5)
    np.testing.assert_allclose(ours, theirs, atol=0.01)
    # a 1e10 Msun old population at 40 Mpc is a galaxy of r ~ 13-14
    old_solar = 23 * library.n_metals + 4
    assert 12.0 < ours[old_solar, 2] < 15.0


def test_jpas_magnitudes_match_speclite(library):
    flux = ssp_flux_at(library, distance_mpc=100.0)[::7]
    filters = jpas_filters()
    ours = ab_magnitudes(library.wave, flux, filters)
    theirs = speclite_table(filters, flux, library.wave)
    np.testing.assert_allclose(ours, theirs, atol=0.01)


def test_photometry_of_10000_spectra_is_one_matrix_product(library):
    # every 4th pixel (3.6 A steps) keeps 10 000 spectra at ~190 MB
    wave = library.wave[::4]
    ssp_spectra = library.templates[::4].reshape(wave.size, -1).T.astype(np.float64)
    rng = np.random.default_rng(3)
    weights = rng.dirichlet(np.ones(150), size=10_000)
    spectra = weights @ ssp_spectra
    matrix = filter_matrix(wave, sdss_filters())
    assert matrix.shape == (5, wave.size)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    fluxes = synthetic_fluxes(wave, spectra, matrix)
    assert fluxes.shape == (10_000, 5)
    # linearity: photometry of mixtures = mixtures of the SSPs' photometry
    ssp_fluxes = synthetic_fluxes(wave, ssp_spectra, matrix)
    np.testing.assert_allclose(fluxes, weights @ ssp_fluxes, rtol=1e-10)
    # names, a FilterSequence and a prepared matrix all give the same answer
    by_name = synthetic_fluxes(wave, spectra[:5], [f"sdss2010-{b}" for b in "ugriz"])
    np.testing.assert_allclose(by_name, fluxes[:5], rtol=1e-12)
    by_sequence = synthetic_fluxes(wave, spectra[:5], sdss_filters())
    np.testing.assert_allclose(by_sequence, fluxes[:5], rtol=1e-12)


def test_cube_shaped_input(library):
    cube = np.broadcast_to(library.templates[:, 20, 3], (4, 3, library.npix))
    fluxes = synthetic_fluxes(library.wave, cube, jpas_filters())
    assert fluxes.shape == (4, 3, 54)
    np.testing.assert_allclose(fluxes, np.broadcast_to(fluxes[0, 0], fluxes.shape), rtol=1e-12)


def test_ab_source_is_magnitude_zero():
    wave = np.linspace(2500.0, 12000.0, 20_000)
    mags = ab_magnitudes(wave, ab_reference_flam(wave) * 10 ** (-0.4 * 17.0), sdss_filters())
    np.testing.assert_allclose(mags, 17.0, atol=1e-9)
    np.testing.assert_allclose(ab_maggies(wave, ab_reference_flam(wave), "sdss2010-r"), 1.0)


def test_flux_density_conversions_round_trip():
    wave = np.array([3000.0, 5500.0, 9000.0])
    fnu = np.full(3, 3631e-23)
    np.testing.assert_allclose(fnu_to_flam(wave, fnu), ab_reference_flam(wave))
    np.testing.assert_allclose(flam_to_fnu(wave, fnu_to_flam(wave, fnu)), fnu)
    # 3631 Jy at 5500 A is 3.6e-9 erg/s/cm^2/A
    assert fnu_to_flam(5500.0, 3631e-23) == pytest.approx(3.599e-9, rel=1e-3)


def test_filters_off_the_spectrum_raise_or_give_nan(library):
    redshifted_wave = library.wave * 1.3  # u starts at 2939 A < 1.3 * 2750 A, g at 3619 A
    with pytest.raises(GalamInputError, match="sdss2010-u .* not covered"):
        filter_matrix(redshifted_wave, sdss_filters())
    mags = ab_magnitudes(
        redshifted_wave, ssp_flux_at(library, 40.0)[:2], sdss_filters(), outside="nan"
    )
    assert np.all(np.isnan(mags[:, 0]))
    assert np.all(np.isfinite(mags[:, 1:]))


def test_bad_inputs_raise(library):
    with pytest.raises(GalamInputError, match="strictly increasing"):
        filter_matrix(library.wave[::-1], sdss_filters())
    with pytest.raises(GalamInputError, match="last axis"):
        synthetic_fluxes(library.wave, np.ones((3, 10)), sdss_filters())
    with pytest.raises(GalamInputError, match="outside"):
        filter_matrix(library.wave, sdss_filters(), outside="clip")
    with pytest.raises(GalamInputError, match="unknown filter"):
        synthetic_fluxes(library.wave, np.ones(library.npix), ["sdss2010-q"])
    with pytest.raises(GalamInputError, match="filter matrix"):
        synthetic_fluxes(library.wave, np.ones(library.npix), np.ones((5, 10)))


def test_non_positive_flux_gives_nan_magnitude(library):
    flux = np.zeros((1, library.npix))
    assert np.all(np.isnan(ab_magnitudes(library.wave, flux, sdss_filters())))
