"""The spectral model's cube terms: a scale, a floor and S/N factors, per layout, that make
errors hold on cubes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.models.cube_calibration import (
    CubeTerms,
    apply_cube_terms,
    cube_terms,
    cube_terms_for,
    fit_cube_section,
    fit_cube_terms,
)
from napari_galam.models.registry import check_calibration


def test_without_a_cube_section_the_errors_are_unchanged() -> None:
    scale, floor = cube_terms({"log_age": {"scale": 1.2}, "mh": {"scale": 1.1}}, "m")
    sigma = np.array([[0.05, 0.1], [0.2, 0.4]], np.float32)
    np.testing.assert_allclose(apply_cube_terms(sigma, scale, floor), sigma)


def test_the_terms_add_in_quadrature() -> None:
    section = {"log_age": {"scale": 2.0, "floor": 0.03}, "mh": {"scale": 1.0, "floor": 0.0}}
    scale, floor = cube_terms({"cube": section}, "m")
    out = apply_cube_terms(np.array([[0.02, 0.1]]), scale, floor)
    np.testing.assert_allclose(out, [[0.05, 0.1]], rtol=1e-6)  # hypot(0.04, 0.03), unchanged


@pytest.mark.parametrize(
    "section",
    [
        {"log_age": {"scale": 1.0, "floor": 0.01}},  # a quantity missing
        {"log_age": {"scale": 0.0, "floor": 0.01}, "mh": {"scale": 1.0, "floor": 0.0}},
        {"log_age": {"scale": 1.0, "floor": -0.1}, "mh": {"scale": 1.0, "floor": 0.0}},
        {"log_age": {"scale": "x", "floor": 0.0}, "mh": {"scale": 1.0, "floor": 0.0}},
        {"log_age": {"scale": float("nan"), "floor": 0}, "mh": {"scale": 1.0, "floor": 0.0}},
        "not a table",
    ],
)
def test_a_broken_cube_section_is_refused_with_the_models_name(section) -> None:
    with pytest.raises(GalamInputError, match="spaxel-spectra.*calibration.uncertainty.cube"):
        cube_terms({"cube": section}, "spaxel-spectra")
    card = {
        "calibration": {
            "uncertainty": {
                "method": "m", "log_age": {"scale": 1.0}, "mh": {"scale": 1.0}, "cube": section,
            }
        }
    }  # fmt: skip
    with pytest.raises(GalamError, match="card.json"):  # refused at load too
        check_calibration(card, "card.json")


def test_fitting_recovers_a_floor_the_spectra_errors_miss() -> None:
    """Cube errors = the network's noise term plus a recipe error that does not shrink
    with S/N: the spectra-calibrated sigma holds at low S/N, far too little at high S/N;
    the fitted terms find the floor and make every S/N bin hold."""
    rng = np.random.default_rng(3)
    n = 60_000
    snr = np.exp(rng.uniform(np.log(3), np.log(200), n))
    sigma = np.stack([0.6 / snr**0.8, 0.9 / snr**0.8], axis=1)  # the model's own errors
    floor = np.array([0.06, 0.09])
    error = rng.normal(size=(n, 2)) * np.hypot(sigma, floor)
    high = snr >= 40
    before = np.mean(np.abs(error[high]) <= sigma[high], axis=0)
    assert np.all(before < 0.4)  # the spectra errors alone fail at high S/N: the test can fail

    terms = fit_cube_terms(error, sigma, snr)
    assert terms["log_age"]["floor"] == pytest.approx(0.06, abs=0.01)
    assert terms["mh"]["floor"] == pytest.approx(0.09, abs=0.015)
    assert terms["log_age"]["scale"] == pytest.approx(1.0, abs=0.1)
    fitted = apply_cube_terms(
        sigma, [terms[k]["scale"] for k in ("log_age", "mh")],
        [terms[k]["floor"] for k in ("log_age", "mh")],
    )  # fmt: skip
    for lo, hi in ((3, 10), (10, 20), (20, 40), (40, np.inf)):
        select = (snr >= lo) & (snr < hi)
        within = np.mean(np.abs(error[select]) <= fitted[select], axis=0)
        assert np.all(np.abs(within - 0.6827) < 0.03), (lo, within)


def test_fitting_needs_spaxels() -> None:
    with pytest.raises(GalamInputError, match="no calibration spaxel"):
        fit_cube_terms(np.full((3, 2), np.nan), np.ones((3, 2)), np.ones(3))


def _layout_section() -> dict:
    return {
        "log_age": {"scale": 1.0, "floor": 0.0},
        "mh": {"scale": 1.0, "floor": 0.0},
        "by_snr_scale": {"snr": [5.0, 50.0], "log_age": [1.0, 2.0], "mh": [1.0, 1.0]},
        "by_layout": {
            "MUSE": {
                "log_age": {"scale": 0.5, "floor": 0.0},
                "mh": {"scale": 2.0, "floor": 0.03},
            }
        },
    }


def test_a_layout_gets_its_own_terms_and_any_other_the_pooled_ones() -> None:
    sigma = np.array([[0.1, 0.04], [0.1, 0.04], [0.1, 0.04], [0.1, 0.04]])
    snr = np.array([2.0, 5.0, np.sqrt(5 * 50), 500.0])  # below, at, between, beyond the nodes
    unc = {"cube": _layout_section()}
    muse = cube_terms_for(unc, "m", "MUSE").apply(sigma, snr)
    np.testing.assert_allclose(muse[:, 0], 0.05, rtol=1e-6)  # its scale, no S/N factors
    np.testing.assert_allclose(muse[:, 1], np.hypot(0.08, 0.03), rtol=1e-6)
    for layout in (None, "CALIFA", "generic"):
        pooled = cube_terms_for(unc, "m", layout).apply(sigma, snr)
        # factor 1 up to the first node, 1.5 half way in log S/N, held at 2 beyond the last
        np.testing.assert_allclose(pooled[:, 0], [0.1, 0.1, 0.15, 0.2], rtol=1e-6)
        np.testing.assert_allclose(pooled[:, 1], 0.04, rtol=1e-6)
        unknown = cube_terms_for(unc, "m", layout).apply(sigma[:1], [np.nan])
        np.testing.assert_allclose(unknown, sigma[:1], rtol=1e-6)  # no S/N: factor 1
    terms = cube_terms_for(unc, "m", "MUSE")
    np.testing.assert_allclose(terms.undo(terms.apply(sigma, snr), snr), sigma, rtol=1e-5)
    pooled = cube_terms_for(unc, "m")
    np.testing.assert_allclose(pooled.undo(pooled.apply(sigma, snr), snr), sigma, rtol=1e-5)
    again = CubeTerms.from_description(pooled.describe())
    np.testing.assert_allclose(again.apply(sigma, snr), pooled.apply(sigma, snr))


@pytest.mark.parametrize(
    "broken",
    [
        {"by_snr_scale": {"snr": [5.0, 4.0], "log_age": [1.0, 1.0], "mh": [1.0, 1.0]}},
        {"by_snr_scale": {"snr": [5.0], "log_age": [0.0], "mh": [1.0]}},
        {"by_snr_scale": {"snr": [5.0, 6.0], "log_age": [1.0], "mh": [1.0, 1.0]}},
        {"by_layout": {"MUSE": {"log_age": {"scale": 1.0, "floor": 0.0}}}},
        {"by_layout": ["MUSE"]},
    ],
)
def test_broken_layout_terms_are_refused_whatever_the_layout(broken) -> None:
    section = {**_layout_section(), **broken}
    for layout in (None, "CALIFA", "MUSE"):
        with pytest.raises(GalamInputError, match="'spaxel-spectra'.*uncertainty.cube"):
            cube_terms_for({"cube": section}, "spaxel-spectra", layout)
    card = {
        "calibration": {
            "uncertainty": {
                "method": "m", "log_age": {"scale": 1.0}, "mh": {"scale": 1.0}, "cube": section,
            }
        }
    }  # fmt: skip
    with pytest.raises(GalamError, match="card.json"):
        check_calibration(card, "card.json")


def test_fitting_per_layout_makes_every_layout_and_snr_bin_hold() -> None:
    """Two instruments err differently: on "CALIFA" cubes the spectra errors miss a floor,
    on "MUSE" cubes they are too wide and more so at high S/N. One pooled fit cannot hold
    both; the layouts' own terms do, in every S/N bin, and the pooled ones hold overall."""
    rng = np.random.default_rng(5)
    n = 16_000
    layouts = np.repeat(["CALIFA", "MUSE"], n)
    snr = np.exp(rng.uniform(np.log(3), np.log(150), 2 * n))
    sigma = np.stack([0.5 / snr**0.7, 0.8 / snr**0.7], axis=1)
    true_sd = np.where(
        (layouts == "CALIFA")[:, None],
        np.hypot(sigma, [0.06, 0.05]),
        sigma * np.clip(0.9 - 0.2 * np.log10(snr / 3), 0.4, None)[:, None],
    )
    error = rng.normal(size=(2 * n, 2)) * true_sd

    def within(select, errors):
        return np.mean(np.abs(error[select]) <= errors[select], axis=0)

    one = fit_cube_terms(error, sigma, snr)
    pooled = cube_terms_for({"cube": one}, "m").apply(sigma, snr)
    worst_pooled = max(
        np.max(np.abs(within((layouts == lay) & (snr >= lo) & (snr < hi), pooled) - 0.6827))
        for lay in ("CALIFA", "MUSE")
        for lo, hi in ((3, 10), (40, np.inf))
    )
    assert worst_pooled > 0.08  # one set of terms cannot hold both: the test can fail

    section = fit_cube_section(error, sigma, snr, layouts, min_spaxels=2000)
    assert set(section["by_layout"]) == {"CALIFA", "MUSE"}
    assert section["by_layout"]["CALIFA"]["log_age"]["floor"] == pytest.approx(0.06, abs=0.015)
    for lay in ("CALIFA", "MUSE"):
        fitted = cube_terms_for({"cube": section}, "m", lay).apply(sigma, snr)
        for lo, hi in ((3, 10), (10, 20), (20, 40), (40, np.inf)):
            select = (layouts == lay) & (snr >= lo) & (snr < hi)
            assert np.all(np.abs(within(select, fitted) - 0.6827) < 0.03), (lay, lo)
            z95 = np.asarray(cube_terms_for({"cube": section}, "m", lay).z95)
            assert np.all((z95 > 1.8) & (z95 < 2.15))  # Gaussian errors: about 1.96
            within95 = np.mean(np.abs(error[select]) <= z95 * fitted[select], axis=0)
            assert np.all(np.abs(within95 - 0.9545) < 0.02), (lay, lo)
    generic = cube_terms_for({"cube": section}, "m", "generic").apply(sigma, snr)
    assert np.all(np.abs(within(np.ones(2 * n, bool), generic) - 0.6827) < 0.03)
    with pytest.raises(GalamInputError, match="no calibration spaxel"):
        fit_cube_section(np.full((3, 2), np.nan), np.ones((3, 2)), np.ones(3), ["A"] * 3)


def test_heavy_tailed_cube_errors_get_a_wider_95_percent_interval() -> None:
    """Spaxel errors with wide tails (a tenth of the spaxels off by five times their
    error) are scaled to hold 68%; 1.96 of those errors then hold too little, and the
    section's own ``z95`` holds 95%. It is written in the card and read back."""
    rng = np.random.default_rng(8)
    n = 30_000
    snr = np.exp(rng.uniform(np.log(3), np.log(100), n))
    sigma = np.column_stack([0.3 / snr**0.5, 0.4 / snr**0.5])
    wild = rng.random((n, 1)) < 0.1
    error = rng.normal(size=(n, 2)) * sigma * np.where(wild, 5.0, 0.8)
    section = fit_cube_section(error, sigma, snr, ["MUSE"] * n, min_spaxels=2000)
    terms = cube_terms_for({"cube": section}, "m", "MUSE")
    errors = terms.apply(sigma, snr)
    at_196 = np.mean(np.abs(error) <= 1.96 * errors, axis=0)
    assert np.all(at_196 < 0.93)
    assert np.all(np.asarray(terms.z95) > 2.2)
    within = np.mean(np.abs(error) <= np.asarray(terms.z95) * errors, axis=0)
    assert np.all(np.abs(within - 0.95) < 0.01)
    again = CubeTerms.from_description(terms.describe())
    assert again.z95 == pytest.approx(terms.z95)


def test_a_card_with_a_broken_95_percent_half_width_is_refused_at_load() -> None:
    card = {"calibration": {"uncertainty": {
        "method": "m", "log_age": {"scale": 1.0}, "mh": {"scale": 1.0, "z95": 0.3},
    }}}  # fmt: skip
    with pytest.raises(GalamError, match=r"card\.json.*mh\.z95"):
        check_calibration(card, "card.json")
    card["calibration"]["uncertainty"]["mh"]["z95"] = 2.2
    card["calibration"]["uncertainty"]["cube"] = {
        "log_age": {"scale": 1.0, "floor": 0.0, "z95": "x"},
        "mh": {"scale": 1.0, "floor": 0.0},
    }
    with pytest.raises(GalamError, match=r"card\.json.*cube.*log_age\.z95"):
        check_calibration(card, "card.json")
