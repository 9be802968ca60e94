"""Populations and galaxy models: exact labels, single-SSP galaxies, gradients, validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.simulate.galaxy import draw_galaxy, uniform_population_galaxy
from napari_galam.simulate.galaxy_maps import deprojected_radius_map, label_maps, light_maps
from napari_galam.simulate.observe import fibre_light
from napari_galam.simulate.populations import (
    composite_population,
    luminosity_weighted_labels,
    single_ssp_population,
)
from napari_galam.simulate.spectra import render_fibre_spectrum


@pytest.mark.parametrize(("age_index", "metal_index"), [(0, 0), (12, 3), (24, 5), (20, 4)])
def test_single_ssp_galaxy_labels_are_that_ssp(library, age_index, metal_index):
    population = single_ssp_population(library, age_index=age_index, metal_index=metal_index)
    galaxy = uniform_population_galaxy(population)
    spectrum = render_fibre_spectrum(
        galaxy, rng=np.random.default_rng(0), library=library, snr=20.0
    )
    assert spectrum.log_age == library.log_ages[age_index]
    assert spectrum.mh == library.metals[metal_index]
    maps = light_maps(galaxy, shape=(32, 32), pixel_scale=0.4, centre_xy=(15.5, 15.5))
    log_age, mh = label_maps(galaxy, maps)
    assert np.all(log_age == library.log_ages[age_index])
    assert np.all(mh == library.metals[metal_index])


def test_population_labels_agree_with_the_library_convention(library):
    population = composite_population(library, log_age=9.5, mh=-0.3, log_age_spread=0.3)
    ours = (population.log_age, population.mh)
    theirs = library.luminosity_weighted_labels(population.mass_weights)
    np.testing.assert_allclose(ours, [float(v) for v in theirs], atol=1e-12)
    band = library.band_luminosity()
    assert np.sum(population.mass_weights * band) == pytest.approx(1.0)
    # A mixture of populations by band light has the light-weighted mean of their labels.
    other = composite_population(library, log_age=8.8, mh=0.1)
    mixture = 0.3 * population.mass_weights + 0.7 * other.mass_weights
    log_age, mh = luminosity_weighted_labels(library, mixture)
    assert log_age == pytest.approx(0.3 * population.log_age + 0.7 * other.log_age, abs=1e-12)
    assert mh == pytest.approx(0.3 * population.mh + 0.7 * other.mh, abs=1e-12)


def test_enrichment_makes_younger_stars_more_metal_rich(library):
    population = composite_population(
        library, log_age=9.5, mh=-0.4, log_age_spread=0.4, enrichment_slope=-0.3
    )
    weights = population.mass_weights
    mean_mh_per_age = (weights * library.metals).sum(1) / np.maximum(weights.sum(1), 1e-300)
    used = weights.sum(1) > 1e-3 * weights.sum(1).max()
    assert np.all(np.diff(mean_mh_per_age[used]) < 0)


def test_disc_gradient_recovered_from_truth_map(library):
    inner = composite_population(library, log_age=9.9, mh=0.1)
    outer = composite_population(library, log_age=9.3, mh=-0.5)
    galaxy = uniform_population_galaxy(inner, bulge_fraction=0.0, re_arcsec=10.0)
    disc = dataclasses.replace(galaxy.disc, outer=outer)
    galaxy = dataclasses.replace(galaxy, disc=disc)
    shape, scale, centre = (81, 81), 0.5, (40.0, 40.0)
    maps = light_maps(galaxy, shape=shape, pixel_scale=scale, centre_xy=centre)
    log_age, mh = label_maps(galaxy, maps)
    radius = deprojected_radius_map(galaxy, shape=shape, pixel_scale=scale, centre_xy=centre)
    inside = (radius <= 1.0) & (radius > 0.1)
    designed = galaxy.component_gradients()
    slope_age = np.polyfit(radius[inside], log_age[inside], 1)[0]
    slope_mh = np.polyfit(radius[inside], mh[inside], 1)[0]
    assert slope_age == pytest.approx(designed["disc_log_age"], abs=0.02)
    assert slope_mh == pytest.approx(designed["disc_mh"], abs=0.02)
    assert designed["disc_log_age"] == pytest.approx((outer.log_age - inner.log_age) / 2.0)


def test_light_maps_conserve_the_galaxy_light(library):
    galaxy = draw_galaxy(np.random.default_rng(4), library=library)
    big = 8 * galaxy.re_arcsec
    n = 201
    maps = light_maps(galaxy, shape=(n, n), pixel_scale=big * 2 / n, centre_xy=(100.0, 100.0))
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), galaxy.total_basis_light(), atol=0.02)
    light = fibre_light(galaxy, seeing_fwhm_arcsec=1.4)
    assert 0 < light.sum() < 1


def test_draw_galaxy_is_deterministic_and_in_range(library):
    first = draw_galaxy(np.random.default_rng(7), library=library)
    second = draw_galaxy(np.random.default_rng(7), library=library)
    assert first.redshift == second.redshift
    np.testing.assert_array_equal(first.basis_log_ages, second.basis_log_ages)
    rng = np.random.default_rng(1)
    sdss = [draw_galaxy(rng, library=library) for _ in range(20)]
    assert all(0.002 <= g.redshift <= 0.3 and g.mag_r <= 17.77 for g in sdss)
    califa = [draw_galaxy(rng, survey="califa", library=library) for _ in range(10)]
    assert all(g.redshift <= 0.03 for g in califa)


def test_bad_parameters_raise_clear_errors(library):
    population = single_ssp_population(library, age_index=3, metal_index=2)
    with pytest.raises(GalamInputError, match="re_arcsec"):
        uniform_population_galaxy(population, re_arcsec=-1.0)
    with pytest.raises(GalamInputError, match="redshift"):
        uniform_population_galaxy(population, redshift=-0.1)
    with pytest.raises(GalamInputError, match="age_index"):
        single_ssp_population(library, age_index=40, metal_index=0)
    with pytest.raises(GalamInputError, match="survey"):
        draw_galaxy(np.random.default_rng(0), survey="hst", library=library)
    with pytest.raises(GalamInputError, match="Generator"):
        draw_galaxy(0, library=library)
    galaxy = uniform_population_galaxy(population)
    for snr in (0.0, -5.0, float("nan")):
        with pytest.raises(GalamInputError, match="snr"):
            render_fibre_spectrum(galaxy, rng=np.random.default_rng(0), library=library, snr=snr)


def test_galaxy_magnitudes_match_speclite(library):
    import astropy.units as u
    import speclite.filters

    from napari_galam.simulate.observe import SDSS_GRI, band_set, observed_basis

    galaxy = draw_galaxy(np.random.default_rng(12), library=library)
    basis = observed_basis(galaxy, library=library)
    ours = 22.5 - 2.5 * np.log10(basis.total_light @ basis.band_nanomaggies(band_set(SDSS_GRI)))
    assert ours[1] == pytest.approx(galaxy.mag_r, abs=1e-6)
    wave = 10.0**basis.loglam
    flux = basis.total_light @ basis.spectra
    filters = speclite.filters.load_filters(*SDSS_GRI)
    theirs = filters.get_ab_magnitudes(
        flux * u.erg / (u.s * u.cm**2 * u.Angstrom), wave * u.Angstrom
    )
    np.testing.assert_allclose(ours, [theirs[name][0] for name in theirs.colnames], atol=0.01)
