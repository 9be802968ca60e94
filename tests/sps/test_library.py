"""Tests of the shipped E-MILES SSP library and its label convention."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import speclite.filters

from napari_galam.errors import GalamInputError
from napari_galam.sps.library import (
    LIGHT_WEIGHT_BAND,
    SSPLibrary,
    load_ssp_library,
    ssp_library_path,
)


@pytest.fixture(scope="module")
def library() -> SSPLibrary:
    return load_ssp_library()


def test_shipped_file_is_small_and_in_sps_lib_layout():
    path = ssp_library_path()
    assert path.is_file()
    assert path.stat().st_size < 6e6
    with np.load(path) as npz:
        ppxf_keys = {"templates", "lam", "fwhm", "ages", "metals", "masses"}
        assert set(npz.files) == ppxf_keys | {"ir_extrapolated"}
        assert npz["templates"].dtype == np.float32
        assert npz["templates"].shape == (npz["lam"].size, 25, 6)
        assert npz["fwhm"].shape == npz["lam"].shape
        assert npz["masses"].shape == (25, 6)


def test_grid_matches_emiles(library):
    assert library.n_ages == 25 and library.n_metals == 6
    np.testing.assert_allclose(library.ages_gyr[[0, -1]], [0.0631, 15.8489])
    np.testing.assert_allclose(np.diff(library.log_ages), 0.1, atol=5e-4)
    np.testing.assert_allclose(library.metals, [-1.71, -1.31, -0.71, -0.40, 0.00, 0.22])
    assert library.wave[0] < 2784 and library.wave[-1] > 11141  # g at z=0.3, z at z=0
    np.testing.assert_allclose(np.diff(library.wave), 0.9, atol=1e-6)
    assert np.all(library.templates > 0)
    # living stars + remnants: less than the initial mass, decreasing with age
    assert np.all((library.masses > 0.5) & (library.masses < 1.0))
    assert np.all(np.diff(library.masses, axis=0) < 0)
    assert library.fwhm[np.searchsorted(library.wave, 5000)] == pytest.approx(2.51)


def test_young_infrared_is_filled_continuously(library):
    flagged = library.ir_extrapolated
    assert flagged.shape == (25, 6)
    assert 20 <= flagged.sum() <= 30
    # only the youngest ages (< 0.3 Gyr) lack the E-MILES infrared
    assert library.ages_gyr[np.any(flagged, axis=1)].max() < 0.3
    assert not np.any(flagged[library.ages_gyr > 0.3])
    blue = (library.wave > 8850) & (library.wave < 8950)
    red = (library.wave > 8952) & (library.wave < 9052)
    ratio = library.templates[red].mean(axis=0) / library.templates[blue].mean(axis=0)
    assert np.all((ratio > 0.9) & (ratio < 1.1))


def test_arrays_are_read_only_and_cached(library):
    assert load_ssp_library() is library
    with pytest.raises(ValueError):
        library.templates[0, 0, 0] = 1.0


def test_units_give_the_tabulated_mass_to_light_ratio(library):
    """Templates are L_sun/A per M_sun: M/L_V agrees with Vazdekis et al. (2012)."""
    sun = np.load(resources.files("ppxf") / "sps_models" / "spectra_sun_vega.npz")
    v_band = speclite.filters.load_filter("bessell-V")
    ten_pc_cm = 3.0856775814913673e19
    lsun_erg_s = 3.828e33

    def v_maggies(wave, flux):
        inside = (wave > 4500) & (wave < 7200)
        return v_band.get_ab_maggies(flux[inside], wave[inside])

    sun_v = v_maggies(sun["lam"], sun["flux_sun"])  # erg/s/cm2/A at 10 pc
    # (age index, metal index) -> M(*+remn)/L_V from the mass table of the sdist
    tabulated = {(23, 4): 7.126, (12, 2): 0.603}
    for (i, j), ml_table in tabulated.items():
        ssp = library.templates[:, i, j].astype(float) * lsun_erg_s / (4 * np.pi * ten_pc_cm**2)
        l_v = v_maggies(library.wave, ssp) / sun_v
        assert library.masses[i, j] / l_v == pytest.approx(ml_table, rel=0.05)


def test_single_ssp_weights_give_that_ssps_labels(library):
    weights = np.zeros((library.n_ages, library.n_metals, library.n_ages, library.n_metals))
    for i in range(library.n_ages):
        for j in range(library.n_metals):
            weights[i, j, i, j] = 3.7  # normalisation must not matter
    log_age, mh = library.luminosity_weighted_labels(weights)
    expected_age, expected_mh = np.meshgrid(library.log_ages, library.metals, indexing="ij")
    np.testing.assert_allclose(log_age, expected_age, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mh, expected_mh, rtol=0, atol=1e-12)


def test_labels_are_light_weighted_in_the_v_band(library):
    band = (library.wave >= LIGHT_WEIGHT_BAND[0]) & (library.wave <= LIGHT_WEIGHT_BAND[1])
    weights = np.zeros((library.n_ages, library.n_metals))
    weights[3, 5] = 1.0  # young, metal-rich: bright per unit mass
    weights[24, 0] = 9.0  # old, metal-poor: faint per unit mass
    light_young = library.templates[band, 3, 5].mean()
    light_old = 9.0 * library.templates[band, 24, 0].mean()
    frac_young = light_young / (light_young + light_old)
    log_age, mh = library.luminosity_weighted_labels(weights)
    expected_age = frac_young * library.log_ages[3] + (1 - frac_young) * library.log_ages[24]
    expected_mh = frac_young * library.metals[5] + (1 - frac_young) * library.metals[0]
    assert log_age == pytest.approx(expected_age, abs=1e-6)
    assert mh == pytest.approx(expected_mh, abs=1e-6)
    # the mass-weighted age would be much older than the light-weighted one
    assert log_age < (library.log_ages[3] + 9 * library.log_ages[24]) / 10 - 0.2


def test_mix_spectra_is_the_weighted_sum_of_templates(library):
    rng = np.random.default_rng(1)
    weights = rng.random((7, library.n_ages, library.n_metals))
    spectra = library.mix_spectra(weights)
    assert spectra.shape == (7, library.npix)
    expected = np.einsum("kij,pij->kp", weights, library.templates.astype(float))
    np.testing.assert_allclose(spectra, expected, rtol=1e-10)


def test_bad_weights_raise_input_error(library):
    with pytest.raises(GalamInputError, match="expected shape"):
        library.luminosity_weighted_labels(np.ones((6, 25)))
    with pytest.raises(GalamInputError, match="non-negative"):
        library.luminosity_weighted_labels(-np.ones((25, 6)))
    with pytest.raises(GalamInputError, match="positive total"):
        library.luminosity_weighted_labels(np.zeros((25, 6)))
    with pytest.raises(GalamInputError, match="no pixel"):
        library.band_luminosity(100.0, 200.0)


def test_missing_or_foreign_file_raises_input_error(tmp_path):
    with pytest.raises(GalamInputError, match="not found"):
        load_ssp_library(tmp_path / "nothing.npz")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, lam=np.arange(3.0))
    with pytest.raises(GalamInputError, match="missing"):
        load_ssp_library(foreign)


def test_current_ppxf_loads_the_library(library):
    from ppxf import sps_util

    velscale = 69.0
    sps = sps_util.sps_lib(
        str(ssp_library_path()), velscale, fwhm_gal=2.76, norm_range=list(LIGHT_WEIGHT_BAND)
    )
    assert sps.templates.shape[1:] == (25, 6)
    assert np.all(np.isfinite(sps.templates))
    np.testing.assert_allclose(np.log10(sps.age_grid[:, 0]) + 9, library.log_ages)
    np.testing.assert_allclose(sps.metal_grid[0], library.metals)
    # pPXF's own mean_age_metal on a single template agrees with ours
    weights = np.zeros((25, 6))
    weights[17, 1] = 1.0
    lg_age, metal = sps.mean_age_metal(weights, quiet=True)
    assert (lg_age, metal) == pytest.approx(library.luminosity_weighted_labels(weights))


def test_labels_of_mixtures_agree_with_ppxf_light_weights(library):
    """Mass weights x pPXF's band flux are pPXF light weights: same labels within 0.003 dex.

    (pPXF averages the band on its log-rebinned grid, we on the linear one: the band
    luminosities differ by < 1%.)
    """
    from ppxf import sps_util

    sps = sps_util.sps_lib(str(ssp_library_path()), 69.0, None, norm_range=list(LIGHT_WEIGHT_BAND))
    rng = np.random.default_rng(0)
    for _ in range(50):
        mass_weights = rng.dirichlet(np.full(150, 0.2)).reshape(25, 6)
        ours = library.luminosity_weighted_labels(mass_weights)
        theirs = sps.mean_age_metal(mass_weights * sps.flux, quiet=True)
        np.testing.assert_allclose(ours, theirs, atol=0.003)
