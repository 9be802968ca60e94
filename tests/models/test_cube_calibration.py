"""The spectral model's cube terms: a scale and a floor that make errors hold on cubes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.models.cube_calibration import apply_cube_terms, cube_terms, fit_cube_terms
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
