"""The variance head, its calibration and the feature distance (numpy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.errors import GalamError
from napari_galam.models.uncertainty import (
    VarianceHead,
    coverage,
    coverage_by_bins,
    der_snr,
    fit_variance_head,
    group_coverage,
    interval_95_factors,
    interval_factor,
    variance_scale,
)


def heteroscedastic(n: int, seed: int):
    """Features whose first column sets the noise of both quantities (0.02 to 0.3 dex)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    sigma = 0.02 + 0.28 / (1 + np.exp(-2 * x[:, :1]))
    truth = rng.normal(size=(n, 2)) * sigma
    return x, np.zeros((n, 2)), truth, sigma[:, 0]


def test_head_learns_the_noise_and_calibrates_to_nominal_coverage(tmp_path):
    x, mean, truth, sigma = heteroscedastic(1500, 0)
    head = fit_variance_head(x, mean, truth, steps=800)
    xc, mc, tc, _ = heteroscedastic(1000, 1)
    predicted = head.sigma(xc)
    scales = [variance_scale(tc[:, k] - mc[:, k], predicted[:, k]) for k in range(2)]
    head = head.with_calibration(scales, np.percentile(head.distance(xc), 99.5))
    xt, mt, tt, st = heteroscedastic(2000, 2)
    quoted = head.sigma(xt)
    assert np.corrcoef(np.log(quoted[:, 0]), np.log(st))[0, 1] > 0.8  # follows the noise
    for k in range(2):
        cover = coverage(tt[:, k] - mt[:, k], quoted[:, k])
        assert 0.63 <= cover["within_68"] <= 0.73 and 0.92 <= cover["within_95"] <= 0.97
    # a homoscedastic error (one number for all) would be too wide for the quiet half
    assert np.median(quoted[st < 0.1, 0]) < 0.5 * np.median(quoted[st > 0.2, 0])
    # far-away features are beyond the threshold; the calibration galaxies mostly are not
    assert np.mean(head.distance(xt) > head.distance_threshold) < 0.02
    assert np.all(head.distance(xt[:5] * 10 + 20) > head.distance_threshold)
    # saved as plain arrays and read back without pickle
    path = head.save(tmp_path / "head.npz")
    again = VarianceHead.load(path)
    np.testing.assert_allclose(again.sigma(xt[:10]), quoted[:10], rtol=1e-5)
    assert again.distance_threshold == pytest.approx(head.distance_threshold)


def test_errors_are_finite_and_positive_even_for_wild_features():
    x, mean, truth, _ = heteroscedastic(200, 3)
    head = fit_variance_head(x, mean, truth, steps=100)
    wild = np.array([[1e30] * 8, [np.nan] * 8, [-1e30] * 8])
    sigma = head.sigma(wild)
    assert np.all(np.isfinite(sigma)) and np.all(sigma > 0)
    with pytest.raises(GalamError, match="shape"):
        head.sigma(np.zeros((2, 3)))


def test_bad_head_file_is_refused(tmp_path):
    path = tmp_path / "not-a-head.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(GalamError, match="not a napari-galam variance head"):
        VarianceHead.load(path)


def test_coverage_by_snr_bins_and_der_snr():
    error = np.array([0.5, 1.5, 0.5, 3.0])
    result = coverage_by_bins(error, np.ones(4), [6.0, 12.0, 40.0, 40.0], (5.0, 10.0, np.inf))
    assert result["within_68"] == 0.5 and result["n"] == 4
    assert result["by_snr"]["[5,10)"] == {"n": 1, "within_68": 1.0, "within_95": 1.0}
    assert result["by_snr"]["[10,inf)"]["within_95"] == pytest.approx(2 / 3)
    rng = np.random.default_rng(0)
    flux = 10.0 + rng.normal(0, 1.0, (2, 5000))
    flux[1] = 10.0 + rng.normal(0, 0.1, 5000)
    snr = der_snr(flux)
    assert snr[0] == pytest.approx(10, rel=0.1) and snr[1] == pytest.approx(100, rel=0.1)


def test_the_95_percent_interval_is_fitted_where_errors_have_heavy_tails():
    """Student-t errors (3 degrees of freedom) scaled to hold 68% at 1 sigma hold only
    about 91% at 1.96 sigma; the fitted half-width holds 95% on fresh errors, and stays
    close to 1.96 for Gaussian ones."""
    rng = np.random.default_rng(11)
    sigma = np.full(40_000, 0.1)
    calibrate, test = (0.1 * rng.standard_t(3, size=(2, 40_000)))
    scale = variance_scale(calibrate, sigma)
    at_196 = coverage(test, scale * sigma)["within_95"]
    assert at_196 < 0.93  # the test can fail: 1.96 sigma is too narrow for these errors
    z95 = interval_factor(calibrate, scale * sigma)
    assert z95 > 2.1
    assert coverage(test, scale * sigma, z95)["within_95"] == pytest.approx(0.95, abs=0.006)
    gauss = 0.1 * rng.normal(size=40_000)
    assert interval_factor(gauss, variance_scale(gauss, sigma) * sigma) == pytest.approx(
        1.96, abs=0.06
    )
    assert interval_factor([np.nan], [1.0]) == pytest.approx(1.96, abs=0.001)
    # per-element half-widths (cubes of different instruments pooled)
    half = np.where(np.arange(test.size) % 2 == 0, z95, 1.96)
    by_bins = coverage_by_bins(test, scale * sigma, np.arange(test.size) % 2, [0, 1, 2], half)
    assert by_bins["by_snr"]["[0,1)"]["within_95"] > by_bins["by_snr"]["[1,2)"]["within_95"]


def test_the_95_percent_interval_narrows_where_errors_have_light_tails():
    """Uniform errors scaled to hold 68% at 1 sigma hold all of them at 1.96 sigma (the
    per-galaxy [M/H] errors from images held 97-98%); the fitted half-width, about
    0.95 / 0.683 = 1.39, holds 95% on fresh errors."""
    rng = np.random.default_rng(12)
    sigma = np.full(40_000, 0.1)
    calibrate, test = rng.uniform(-0.3, 0.3, size=(2, 40_000))
    scale = variance_scale(calibrate, sigma)
    assert coverage(test, scale * sigma)["within_95"] == 1.0
    z95 = interval_factor(calibrate, scale * sigma)
    assert z95 == pytest.approx(0.95 / 0.6827, abs=0.02)
    assert coverage(test, scale * sigma, z95)["within_95"] == pytest.approx(0.95, abs=0.006)


def test_interval_section_sets_z95_and_keeps_the_shipped_head():
    from napari_galam.models.galaxy_uncertainty import UNCERTAINTY_METHOD, interval_section

    shipped = {
        "method": "old text",
        "log_age": {"scale": 0.97},
        "mh": {"scale": 1.07, "z95": 1.96},
        "head": {"file": "m.uncertainty.npz", "sha256": "ab" * 32},
        "splits": {"calibrate": {"seed": 3142}},
        "coverage": {"old": True},
        "training_seconds_cpu": 9.0,
    }
    section = interval_section(shipped, [2.05, 1.71], {"new": True})
    assert section["log_age"] == {"scale": 0.97, "z95": 2.05}
    assert section["mh"] == {"scale": 1.07, "z95": 1.71}
    assert section["coverage"] == {"new": True} and section["method"] == UNCERTAINTY_METHOD
    assert "z95" in UNCERTAINTY_METHOD
    for key in ("head", "splits", "training_seconds_cpu"):
        assert section[key] == shipped[key]
    assert shipped["mh"]["z95"] == 1.96 and shipped["coverage"] == {"old": True}  # a copy
    assert interval_95_factors(section, "card").tolist() == pytest.approx([2.05, 1.71])


@pytest.mark.parametrize("z95", [0.5, "wide", float("nan"), float("inf")])
def test_a_card_with_an_unusable_95_percent_half_width_is_refused(z95):
    entry = {"log_age": {"scale": 1.0, "z95": z95}, "mh": {"scale": 1.0}}
    with pytest.raises(GalamError, match=r"card\.json.*log_age\.z95"):
        interval_95_factors(entry, "card.json")
    assert interval_95_factors({"log_age": {"z95": 2.3}}, "c").tolist() == pytest.approx(
        [2.3, 1.96], abs=0.001
    )
    # a barely trained model's tails can need a very wide interval: said, not refused
    assert interval_95_factors({"mh": {"z95": 504.5}}, "c")[1] == pytest.approx(504.5)


def test_group_coverage_counts_cubes_not_spaxels():
    """One big cube that misses drags the pooled share down; counted once it does not,
    and resampling whole cubes says how little a few cubes pin the share down."""
    rng = np.random.default_rng(4)
    sigma = np.ones(2000)
    # 19 small cubes of 50 well-calibrated spaxels, one cube of 1050 all misread by 3 sigma
    error = np.concatenate([rng.normal(size=950), np.full(1050, 3.0)])
    groups = np.concatenate([np.repeat(np.arange(19), 50), np.full(1050, 19)])
    few = group_coverage(error, sigma, groups)
    pooled = coverage(error, sigma)["within_68"]
    assert few["groups"] == 20
    assert pooled < 0.35 and 0.6 < few["per_group_68"] < 0.72
    low, high = few["interval_68"]
    assert low < pooled < high and high - low > 0.3
    # many independent cubes of the same size: a narrow interval around the truth
    error = rng.normal(size=20000)
    many = group_coverage(error, np.ones_like(error), np.repeat(np.arange(400), 50))
    low, high = many["interval_68"]
    assert many["groups"] == 400 and low < 0.6827 < high and high - low < 0.03
    # reproducible (seeded) and NaN-proof
    again = group_coverage(error, np.ones_like(error), np.repeat(np.arange(400), 50))
    assert again == many
    empty = group_coverage([np.nan], [1.0], [0])
    assert empty["groups"] == 0 and np.isnan(empty["per_group_68"])
