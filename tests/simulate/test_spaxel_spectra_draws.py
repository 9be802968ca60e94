"""Training spectra of ``spaxel-spectra``: pinned default draws, history and emission options.

(The shipped model itself is tested in ``tests/models/test_spaxel_spectra.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.simulate.families import HISTORY_FAMILIES
from napari_galam.simulate.spaxel_spectra import spectrum_groups
from napari_galam.simulate.spectra import EMISSION_LINES_VACUUM_A
from napari_galam.sps.resolution import air_wavelength


def _all(layout: str, n: int, **options) -> list:
    return list(spectrum_groups(layout, n, **options))


def test_defaults_reproduce_the_draws_from_before_the_options() -> None:
    """Values computed before ``history_fraction`` and ``emission_fraction`` existed."""
    group = next(spectrum_groups("MaNGA", 40, seed=7, group_size=16))
    assert group.redshift == 0.1250190933209334
    assert group.sigma_kms == 314.0248303393514
    np.testing.assert_allclose(
        group.log_age[:4], [8.11733341217041, 8.130715370178223, 8.15504264831543, 10.074458122253418],
        rtol=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(
        group.mh[:4], [-0.6290997266769409, -0.04989786818623543, -0.45456868410110474, -1.1301931142807007],
        rtol=1e-5,
    )  # fmt: skip
    np.testing.assert_allclose(
        group.snr[:4], [5.782530784606934, 13.78127384185791, 66.56224822998047, 11.188461303710938],
        rtol=1e-7,
    )  # fmt: skip
    np.testing.assert_allclose(
        group.flux[:3, 2000], [0.59837806224823, 0.009510256350040436, 8.196277618408203], rtol=1e-5
    )
    assert int(group.mask.sum()) == 7767
    assert np.all(group.family == "mixture") and np.all(group.ew_halpha == 0)


def test_history_labels_are_the_light_weighted_means_of_their_weights(library) -> None:
    groups = _all("SDSS", 96, seed=3, history_fraction=1.0)
    light = library.band_luminosity()
    log_ages = np.asarray(library.log_ages)[:, None]
    metals = np.asarray(library.metals)[None, :]
    families = np.concatenate([g.family for g in groups])
    assert set(families) <= set(HISTORY_FAMILIES) and len(set(families)) == len(HISTORY_FAMILIES)
    for group in groups:
        for weights, log_age, mh in zip(group.weights, group.log_age, group.mh, strict=True):
            band = weights * light
            assert band.sum() == pytest.approx(1.0, rel=1e-9)  # unit light, as the mixtures
            assert log_age == pytest.approx((band * log_ages).sum() / band.sum(), abs=1e-5)
            assert mh == pytest.approx((band * metals).sum() / band.sum(), abs=1e-5)
    # histories spread their mass over many ages, unlike a mixture's 1-3 populations
    spread = [(w.sum(axis=1) > 0).sum() for g in groups for w in g.weights]
    assert np.median(spread) >= 10


def test_options_change_only_the_chosen_spectra() -> None:
    before = _all("CALIFA", 96, seed=4)
    after = _all("CALIFA", 96, seed=4, history_fraction=0.5, emission_fraction=0.5)
    changed = 0
    for old, new in zip(before, after, strict=True):
        plain = (new.family == "mixture") & (new.ew_halpha == 0)
        np.testing.assert_array_equal(new.flux[plain], old.flux[plain])
        np.testing.assert_array_equal(new.mask, old.mask)
        mixture = new.family == "mixture"
        np.testing.assert_array_equal(new.log_age[mixture], old.log_age[mixture])
        changed += int((~plain).sum())
        assert np.all(np.any(new.flux[~plain] != old.flux[~plain], axis=1))
    assert changed > 30


@pytest.mark.parametrize("layout", ["MaNGA", "MUSE"])
def test_emission_lines_raise_halpha_and_leave_the_labels(layout: str) -> None:
    z = 0.1
    options = {"seed": 11, "fixed_redshift": z, "sigma_range": (0.0, 60.0)}
    plain = _all(layout, 96, **options)
    lines = _all(layout, 96, emission_fraction=1.0, **options)
    rest = EMISSION_LINES_VACUUM_A["Ha"]
    centre = (rest if plain[0].medium == "vacuum" else float(air_wavelength(rest))) * (1 + z)
    ratios, offsets, young = [], [], 0
    for old, new in zip(plain, lines, strict=True):
        np.testing.assert_array_equal(new.log_age, old.log_age)
        np.testing.assert_array_equal(new.mh, old.mh)
        assert np.all(new.ew_halpha > 0) and np.all(old.ew_halpha == 0)
        wave = new.wave
        window = np.abs(wave - centre) < 8.0  # H-alpha alone: [N II] is > 6 sigma away
        near = np.abs(wave - centre) < 100.0 * (1 + z)
        width = np.gradient(wave)
        for i in range(len(new.flux)):
            if new.mask[i, window].any() or new.log_age[i] >= 9.0 or new.ew_halpha[i] < 10:
                continue
            young += 1
            continuum = np.median(old.flux[i, near & ~old.mask[i]])
            excess = (new.flux[i, window] - old.flux[i, window]) * width[window]
            assert excess.sum() > 0
            ratios.append(excess.sum() / (new.ew_halpha[i] * (1 + z) * continuum))
            if new.ew_halpha[i] >= 30:
                offsets.append((excess * wave[window]).sum() / excess.sum() - centre)
    assert young >= 10
    # the line's flux is the EW against the continuum near H-alpha
    assert 0.93 < np.median(ratios) < 1.07 and np.all(np.abs(np.log(ratios)) < np.log(1.5))
    # at rest x (1 + z) in the layout's medium (air and vacuum are ~2 A apart here)
    assert abs(np.median(offsets)) < 0.5


def test_line_strength_follows_the_light_weighted_age() -> None:
    groups = _all("SDSS", 256, seed=12, emission_fraction=1.0, history_fraction=0.5)
    age = np.concatenate([g.log_age for g in groups])
    ew = np.concatenate([g.ew_halpha for g in groups])
    young, old = age < 8.5, age > 9.8
    assert young.sum() > 10 and old.sum() > 10
    assert np.median(ew[young]) > 10 * np.median(ew[old])
    assert np.all(ew[old] < 10.0)  # mostly LINER-like: 0.3-3 A of retired light


def test_shares_follow_the_fractions() -> None:
    groups = _all("MUSE", 640, seed=8, history_fraction=0.3, emission_fraction=0.6)
    history = np.concatenate([g.family != "mixture" for g in groups])
    emission = np.concatenate([g.ew_halpha > 0 for g in groups])
    assert abs(history.mean() - 0.3) < 0.08 and abs(emission.mean() - 0.6) < 0.08
    assert abs(np.mean(history & emission) - 0.18) < 0.07  # drawn independently


@pytest.mark.parametrize("option", ["history_fraction", "emission_fraction"])
def test_fractions_outside_zero_to_one_are_refused(option: str) -> None:
    with pytest.raises(GalamInputError, match=option):
        next(spectrum_groups("SDSS", 4, seed=1, **{option: 1.5}))


def test_a_held_out_family_is_never_drawn() -> None:
    others = tuple(f for f in HISTORY_FAMILIES if f != "bursty")
    groups = _all("CALIFA", 256, seed=9, history_fraction=1.0, history_families=others)
    drawn = set(np.concatenate([g.family for g in groups]).tolist())
    assert drawn == set(others)
    with pytest.raises(GalamInputError, match="history_families"):
        next(spectrum_groups("CALIFA", 4, seed=1, history_families=("bulge-disc",)))
