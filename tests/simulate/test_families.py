"""Star-formation-history families: exact labels, the shapes each family promises, storage."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.progress import run_to_end
from napari_galam.simulate.datasets import iter_simulate_cubes, iter_simulate_cutouts
from napari_galam.simulate.families import (
    HISTORY_FAMILIES,
    SFH_FAMILIES,
    StarFormationHistory,
    draw_history,
    history_population,
    history_weights,
    parse_families,
)
from napari_galam.simulate.galaxy import draw_galaxy
from napari_galam.simulate.galaxy_maps import label_maps, light_maps
from napari_galam.simulate.observe import fibre_light
from napari_galam.simulate.spectra import render_fibre_spectrum


def _light_weighted_mean(library, mass_weights):
    """The definition, written out: light = mass x band flux per unit mass."""
    light = np.asarray(mass_weights) * library.band_luminosity(5070.0, 5950.0)
    ages = np.broadcast_to(np.asarray(library.log_ages)[:, None], light.shape)
    metals = np.broadcast_to(np.asarray(library.metals)[None, :], light.shape)
    return float((light * ages).sum() / light.sum()), float((light * metals).sum() / light.sum())


@pytest.mark.parametrize("family", SFH_FAMILIES)
def test_every_family_labels_are_the_light_weighted_mean_of_its_ssp_weights(library, family):
    rng = np.random.default_rng(SFH_FAMILIES.index(family))
    for _ in range(5):
        galaxy = draw_galaxy(rng, library=library, family=family)
        assert galaxy.family == family
        for population in galaxy.populations:
            expected = _light_weighted_mean(library, population.mass_weights)
            assert (population.log_age, population.mh) == pytest.approx(expected, abs=1e-10)
        # A pixel is a mixture of the four populations by light: its labels are those of
        # the summed SSP weights.
        maps = light_maps(galaxy, shape=(21, 21), pixel_scale=0.5, centre_xy=(10.0, 10.0))
        log_age, mh = label_maps(galaxy, maps)
        for y, x in ((10, 10), (3, 15), (18, 2)):
            mixture = sum(
                share * p.mass_weights
                for share, p in zip(maps[:, y, x], galaxy.populations, strict=True)
            )
            assert (log_age[y, x], mh[y, x]) == pytest.approx(
                _light_weighted_mean(library, mixture), abs=1e-9
            )
        # The fibre's label too.
        spectrum = render_fibre_spectrum(galaxy, rng=rng, library=library, snr=30.0)
        light = fibre_light(galaxy, seeing_fwhm_arcsec=1.4)
        mixture = sum(
            share * p.mass_weights for share, p in zip(light, galaxy.populations, strict=True)
        )
        assert (spectrum.log_age, spectrum.mh) == pytest.approx(
            _light_weighted_mean(library, mixture), abs=1e-9
        )


def test_a_short_old_burst_reads_as_old_and_a_young_start_as_young(library):
    old = StarFormationHistory(
        kind="exponential", formation_gyr=11.0, tau_gyr=0.1, mh_start=0.0, mh_rise=0.05
    )
    population = history_population(library, old)
    assert population.log_age == pytest.approx(np.log10(11e9), abs=0.06)
    young = StarFormationHistory(
        kind="delayed", formation_gyr=0.3, tau_gyr=1.0, mh_start=-0.5, mh_rise=0.2
    )
    assert history_population(library, young).log_age < 8.5


def test_enrichment_puts_the_metals_in_the_younger_stars(library):
    history = StarFormationHistory(
        kind="exponential", formation_gyr=12.0, tau_gyr=4.0, mh_start=-1.2, mh_rise=1.2
    )
    weights = history_weights(library, history)
    used = weights.sum(1) > 1e-3 * weights.sum(1).max()
    mean_mh = (weights * library.metals).sum(1) / np.maximum(weights.sum(1), 1e-300)
    # Rows are ages from young to old: the mean [M/H] falls with age.
    assert np.all(np.diff(mean_mh[used]) <= 1e-12)
    assert mean_mh[used][0] - mean_mh[used][-1] > 0.6


def test_quenched_histories_form_nothing_after_quenching(library):
    history = StarFormationHistory(
        kind="quenched", formation_gyr=10.0, tau_gyr=3.0, mh_start=-0.3, mh_rise=0.3,
        quench_gyr=2.0,
    )  # fmt: skip
    weights = history_weights(library, history)
    ages_gyr = 10 ** np.asarray(library.log_ages) / 1e9
    # Nothing in SSPs younger than the quench (half a grid step of slack on the edge).
    assert weights[ages_gyr < 2.0 / 10**0.05].sum() == 0
    assert history_population(library, history).log_age > np.log10(2e9)


def test_a_bursts_share_of_the_mass_is_what_it_says(library):
    base = dict(kind="bursty", formation_gyr=10.0, tau_gyr=1.0, mh_start=-0.5, mh_rise=0.0)
    history = StarFormationHistory(**base, bursts=((0.2, 0.3, 0.02),))
    weights = history_weights(library, history).sum(1)
    steady = history_weights(library, StarFormationHistory(**base)).sum(1)
    ages_gyr = 10 ** np.asarray(library.log_ages) / 1e9
    near = (ages_gyr > 0.12) & (ages_gyr < 0.32)
    burst_mass = weights[near].sum() / weights.sum() - 0.7 * steady[near].sum() / steady.sum()
    assert burst_mass == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("family", HISTORY_FAMILIES)
def test_history_families_reach_both_gradient_signs_and_the_grid_edges(library, family):
    rng = np.random.default_rng(3)
    galaxies = [draw_galaxy(rng, library=library, family=family) for _ in range(40)]
    gradients = np.array([list(g.component_gradients().values()) for g in galaxies])
    assert (gradients > 0.05).any(axis=0).all() and (gradients < -0.05).any(axis=0).all()
    ages = np.concatenate([g.basis_log_ages for g in galaxies])
    metals = np.concatenate([g.basis_mh for g in galaxies])
    assert ages.min() < 8.3 and metals.max() > 0.1 and metals.min() < -1.0
    if family != "bursty":  # constant star formation keeps young light in every bursty one
        assert ages.max() > 9.9
    sigmas = [g.velocity_dispersion_kms for g in galaxies]
    assert min(sigmas) < 60 and max(sigmas) > 290


def test_young_light_gets_more_dust(library):
    galaxy = draw_galaxy(np.random.default_rng(5), library=library, family="bursty")
    galaxy = dataclasses.replace(galaxy, young_dust=1.0)
    screens = (galaxy.bulge.ebv, galaxy.bulge.ebv, galaxy.disc.ebv, galaxy.disc.ebv)
    for ebv, screen, population in zip(galaxy.ebv, screens, galaxy.populations, strict=True):
        youth = np.clip(9.0 - population.log_age, 0.0, 1.0)
        assert ebv == pytest.approx(screen * (1 + youth))
    assert dataclasses.replace(galaxy, young_dust=0.0).ebv == screens


def test_bulge_disc_family_draws_the_galaxies_it_always_drew(library):
    # Values drawn for seed 21 before the families existed: old datasets' seeds still
    # make the same galaxies.
    galaxy = draw_galaxy(np.random.default_rng(21), library=library, family="bulge-disc")
    assert galaxy.redshift == pytest.approx(0.026113615696650636, rel=1e-12)
    assert galaxy.velocity_dispersion_kms == pytest.approx(66.40852223747518, rel=1e-12)
    np.testing.assert_allclose(
        galaxy.basis_log_ages, [9.785421061399846, 9.68592903579525, 9.18043344352293,
                                9.042049364866994], rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(
        galaxy.basis_mh, [-0.341206039285606, -0.6591480821661027, -0.5832662904652457,
                          -0.6997184219991284], rtol=1e-12)  # fmt: skip
    assert galaxy.family == "bulge-disc" and galaxy.young_dust == 0.0
    assert draw_galaxy(np.random.default_rng(21), library=library).basis_mh[0] == galaxy.basis_mh[0]


def test_family_names_are_checked(library):
    assert parse_families("all") == SFH_FAMILIES
    assert parse_families("bursty, quenched") == ("bursty", "quenched")
    with pytest.raises(GalamInputError, match="'starburst'.*expected 'all'"):
        parse_families("starburst")
    with pytest.raises(GalamInputError, match="family"):
        draw_galaxy(np.random.default_rng(0), library=library, family="spiral")
    with pytest.raises(GalamInputError, match="family"):
        draw_history(np.random.default_rng(0), "bulge-disc")


def test_datasets_store_each_galaxys_family(tmp_path, library):
    path = tmp_path / "cutouts.h5"
    card = run_to_end(
        iter_simulate_cutouts(
            path, n=12, seed=3, library=library, families="all", snr_range=(3.0, 100.0)
        )
    )
    assert card["families"] == list(SFH_FAMILIES) and card["snr_range"] == [3.0, 100.0]
    with h5py.File(path) as handle:
        family = handle["truth/family"][()]
        assert set(family.astype(int)) <= set(range(len(SFH_FAMILIES)))
        assert len(set(family.astype(int))) >= 3
        assert json.loads(handle.attrs["family_names"]) == list(SFH_FAMILIES)
        snr = handle["truth/snr"][()]
        assert snr.min() >= 3.0 and snr.max() <= 100.0
    cubes = tmp_path / "cubes.h5"
    card = run_to_end(
        iter_simulate_cubes(cubes, n=2, seed=4, library=library, families="quenched",
                            store_cubes=False)
    )  # fmt: skip
    assert card["families"] == ["quenched"]
    with h5py.File(cubes) as handle:
        assert list(handle["truth/family"][()]) == [SFH_FAMILIES.index("quenched")] * 2
