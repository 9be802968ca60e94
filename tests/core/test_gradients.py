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
