"""Radial gradients: deprojection, R_e from a growth curve, the bootstrap fit."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.core.gradients import (
    GalaxyEllipse,
    bootstrap_gradient,
    deprojected_radius,
    ellipse_from_moments,
    half_light_radius,
    inclination_from_axis_ratio,
)
from napari_galam.errors import GalamInputError


def test_inclination_from_axis_ratio() -> None:
    assert inclination_from_axis_ratio(1.0) == pytest.approx(0.0)
    assert inclination_from_axis_ratio(0.5) == pytest.approx(60.0)
    # a thick disc looks rounder at the same inclination, so q = 0.5 means more inclined
    assert inclination_from_axis_ratio(0.5, intrinsic_thickness=0.2) > 60.0
    assert inclination_from_axis_ratio(0.1, intrinsic_thickness=0.2) == pytest.approx(90.0)
    with pytest.raises(GalamInputError, match="axis ratio"):
        inclination_from_axis_ratio(0.0)


def test_deprojected_radius_stretches_the_minor_axis() -> None:
    ellipse = GalaxyEllipse(x=20.0, y=15.0, angle_deg=0.0, axis_ratio=0.5)
    r = deprojected_radius((31, 41), ellipse)
    assert r[15, 20] == 0
    assert r[15, 30] == pytest.approx(10.0)  # along the major axis: as observed
    assert r[20, 20] == pytest.approx(10.0)  # 5 px along the minor axis = 10 px in the disc
    rotated = deprojected_radius((31, 41), GalaxyEllipse(20.0, 15.0, 90.0, 0.5))
    assert rotated[25, 20] == pytest.approx(10.0) and rotated[15, 25] == pytest.approx(10.0)


def test_half_light_radius_of_an_exponential_disc() -> None:
    # Sersic n = 1: R_e = 1.678 scale lengths
    ellipse = GalaxyEllipse(x=100.0, y=100.0, angle_deg=30.0, axis_ratio=0.6)
    r = deprojected_radius((201, 201), ellipse)
    image = np.exp(-r / 8.0)
    assert half_light_radius(image, ellipse) == pytest.approx(1.678 * 8.0, rel=0.03)
    noisy = image + np.random.default_rng(1).normal(0, 0.01, image.shape)
    assert half_light_radius(noisy, ellipse) == pytest.approx(1.678 * 8.0, rel=0.08)
    with pytest.raises(GalamInputError, match="no positive flux"):
        half_light_radius(np.zeros((20, 20)), GalaxyEllipse(10, 10, 0, 1))


def test_bootstrap_recovers_a_known_gradient() -> None:
    rng = np.random.default_rng(3)
    radius = rng.uniform(0, 2, 4000)
    true_slope = -0.2
    values = 9.6 + true_slope * radius + rng.normal(0, 0.1, radius.size)
    fit = bootstrap_gradient(radius, values, seed=1)
    assert fit.ok and fit.slopes.shape == (100,)
    assert fit.slope == pytest.approx(true_slope, abs=0.02)
    assert fit.intercept == pytest.approx(9.6, abs=0.02)
    # 75% subsamples of ~2000 points: the slope scatter is small but not zero
    assert 0.001 < fit.slope_sd < 0.02
    assert fit.n_within + fit.n_outside == radius.size
    again = bootstrap_gradient(radius, values, seed=1)
    np.testing.assert_array_equal(fit.slopes, again.slopes)  # deterministic for a seed


def test_each_bootstrap_sample_has_75_percent_of_the_points() -> None:
    radius = np.linspace(0, 1, 101)
    values = 2 * radius
    fit = bootstrap_gradient(radius, values, require_outside=False, seed=0)
    assert np.allclose(fit.slopes, 2.0)  # exact line: every subsample gives it
    fit_all = bootstrap_gradient(radius, values, fraction=1.0, require_outside=False)
    assert fit_all.slope_sd == pytest.approx(0.0, abs=1e-12)


def test_too_few_points_is_a_status_not_an_exception() -> None:
    radius = np.r_[np.linspace(0, 1, 20), 1.5]
    fit = bootstrap_gradient(radius, radius, seed=0)
    assert not fit.ok and fit.status == "too_few_points"
    assert "only 20 valid spaxels" in fit.reason and np.isnan(fit.slope)
    inside_only = bootstrap_gradient(np.linspace(0, 1, 50), np.zeros(50))
    assert not inside_only.ok and "beyond" in inside_only.reason
    with_nans = np.full(100, np.nan)
    assert bootstrap_gradient(with_nans, with_nans).status == "too_few_points"
    with pytest.raises(GalamInputError, match="differ in size"):
        bootstrap_gradient(np.zeros(3), np.zeros(4))


def test_gradient_from_maps_end_to_end() -> None:
    ellipse = GalaxyEllipse(x=38.0, y=36.0, angle_deg=-25.0, axis_ratio=0.7)
    r = deprojected_radius((73, 78), ellipse)
    light = np.exp(-r / 6.0)
    r_e = half_light_radius(light, ellipse)
    age_map = 9.8 - 0.15 * r / r_e + np.random.default_rng(0).normal(0, 0.05, r.shape)
    age_map[light < 1e-3] = np.nan  # no signal in the outskirts
    fit = bootstrap_gradient(r / r_e, age_map, seed=0)
    assert fit.ok and fit.slope == pytest.approx(-0.15, abs=0.03)


def test_ellipse_from_moments_finds_the_galaxy_not_the_neighbour() -> None:
    truth = GalaxyEllipse(x=40.0, y=30.0, angle_deg=35.0, axis_ratio=0.5)
    r = deprojected_radius((64, 90), truth)
    light = np.exp(-r / 5.0)
    light[5:7, 80:82] += 3.0  # a brighter but compact neighbour (a star)
    light += np.random.default_rng(2).normal(0, 0.002, light.shape)
    found = ellipse_from_moments(light)
    assert (found.x, found.y) == pytest.approx((40.0, 30.0), abs=0.5)
    assert found.angle_deg == pytest.approx(35.0, abs=4.0)
    assert found.axis_ratio == pytest.approx(0.5, abs=0.1)
    with pytest.raises(GalamInputError, match="no positive pixel"):
        ellipse_from_moments(np.full((10, 10), np.nan))


def _correlated_maps(n: int, fwhm: float, r_e: float, seed: int):
    """Maps with a slope of -0.2 dex/R_e and noise smoothed by a Gaussian PSF."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    shape = (60, 60)
    radius = deprojected_radius(shape, GalaxyEllipse(30, 30, 20, 0.7)) / r_e
    for _ in range(n):
        noise = gaussian_filter(rng.standard_normal(shape), fwhm / 2.355)
        yield radius, 9.5 - 0.2 * radius + (0.05 + 0.1 * radius) * noise / noise.std()


def test_errors_over_resolution_elements_cover_the_truth_the_paper_sd_does_not() -> None:
    from napari_galam.core.gradients import resolution_elements

    blocks = resolution_elements((60, 60), 3.0)
    paper, elements = [], []
    for k, (radius, values) in enumerate(_correlated_maps(100, fwhm=3.0, r_e=12.0, seed=2)):
        fit = bootstrap_gradient(radius, values, seed=k, elements=blocks)
        error = abs(fit.slope + 0.2)
        paper.append(error <= fit.slope_sd)
        elements.append(error <= fit.slope_err)
        assert fit.slope_err == fit.slope_err_stat  # no model error given
    # PSF-correlated spaxels: the paper's subsample SD holds the truth 1 time in 8;
    # whole elements drawn with replacement come close to the nominal 68%
    assert np.mean(paper) < 0.25
    assert 0.45 <= np.mean(elements) <= 0.8


def test_resolution_elements_are_blocks_two_fwhm_across() -> None:
    from napari_galam.core.gradients import resolution_elements

    labels = resolution_elements((10, 12), 2.0)  # 4x4 blocks
    assert labels.shape == (10, 12)
    assert np.unique(labels).size == 3 * 3
    assert labels[0, 0] == labels[3, 3] != labels[0, 4]
    assert np.unique(resolution_elements((5, 5), 0.1)).size == 25  # at least 1 pixel
    with pytest.raises(GalamInputError, match="PSF FWHM"):
        resolution_elements((5, 5), 0.0)


def test_model_error_and_spaxel_errors_enter_the_quoted_error() -> None:
    rng = np.random.default_rng(4)
    radius = rng.uniform(0, 2, 3000)
    values = 9.6 - 0.2 * radius + rng.normal(0, 0.1, radius.size)
    plain = bootstrap_gradient(radius, values, seed=1)
    with_model = bootstrap_gradient(radius, values, seed=1, model_sd=0.05)
    assert with_model.slope == plain.slope  # the point estimate is the paper's
    assert with_model.slope_err == pytest.approx(np.hypot(with_model.slope_err_stat, 0.05))
    assert with_model.error_note.startswith("incl.") and "statistical" in plain.error_note
    noisy = bootstrap_gradient(radius, values, seed=1, errors=np.full(radius.size, 0.5))
    assert noisy.slope_err_stat > 2 * plain.slope_err_stat  # draws of large errors widen it
    with pytest.raises(GalamInputError, match="model_sd"):
        bootstrap_gradient(radius, values, model_sd=-0.1)
    with pytest.raises(GalamInputError, match="errors differ in size"):
        bootstrap_gradient(radius, values, errors=np.ones(5))
