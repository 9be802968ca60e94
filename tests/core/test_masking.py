"""Masking ellipse of the central galaxy: geometry, input types and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.core.masking import (
    Ellipse,
    ellipse_mask,
    fit_target_ellipse,
    isodata_threshold,
    scale_to_grey,
)
from napari_galam.errors import GalamInputError


def galaxy(
    shape=(128, 128),
    centre=(64.0, 63.0),
    angle_deg=30.0,
    semi_major=12.0,
    axis_ratio=0.5,
    amplitude=100.0,
    noise=1.0,
    seed=0,
):
    """An exponential-profile elliptical galaxy with Gaussian noise (row, col centre)."""
    rows, cols = np.indices(shape, dtype=float)
    theta = np.radians(angle_deg)
    dx, dy = cols - centre[1], rows - centre[0]
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = -dx * np.sin(theta) + dy * np.cos(theta)
    radius = np.hypot(along / semi_major, across / (semi_major * axis_ratio))
    image = amplitude * np.exp(-2.0 * radius)
    return image + np.random.default_rng(seed).normal(0.0, noise, shape)


@pytest.mark.parametrize("angle", [0.0, 30.0, 75.0, 120.0, 170.0])
def test_target_ellipse_recovers_centre_and_angle(angle):
    result = fit_target_ellipse(galaxy(angle_deg=angle))
    assert result.status == "ok" and result.reason == ""
    target = result.target
    assert abs(target.x - 63.0) < 1.0 and abs(target.y - 64.0) < 1.0
    delta = abs((target.angle_deg - angle + 90.0) % 180.0 - 90.0)
    assert delta < 5.0
    assert 0.35 < target.axis_ratio < 0.65
    assert target in result.candidates
    # The mask is the ellipse enlarged 1.5x: the centre inside, the far corner outside.
    assert result.mask[64, 63] and not result.mask[0, 0]
    assert result.mask.sum() == pytest.approx(
        np.pi * 1.5**2 * target.semi_major * target.semi_minor, rel=0.05
    )


def test_mask_scale_and_tolerance_are_parameters():
    image = galaxy()
    small = fit_target_ellipse(image, mask_scale=1.0)
    large = fit_target_ellipse(image, mask_scale=2.0)
    assert large.mask.sum() > 3.5 * small.mask.sum()
    assert small.mask_scale == 1.0
    fine = fit_target_ellipse(image, tolerance=0.5)
    assert fine.ok and fine.tolerance == 0.5


def test_rgb_uint8_float_fits_and_16bit_with_nans_agree():
    image = galaxy(noise=0.5)
    scaled = (image - image.min()) / (image.max() - image.min())
    rgb = np.round(np.stack([scaled] * 3, axis=-1) * 255).astype(np.uint8)
    sixteen = np.round(scaled * 65535).astype(np.uint16)
    with_nans = image.astype(np.float32)
    with_nans[:5, :] = np.nan
    results = [fit_target_ellipse(a) for a in (image, rgb, sixteen, with_nans)]
    assert all(r.ok for r in results)
    xs = [r.target.x for r in results]
    assert np.ptp(xs) < 1.0


def test_off_centre_galaxy_gives_no_ellipse_with_reason():
    image = galaxy(centre=(20.0, 20.0), semi_major=6.0)
    result = fit_target_ellipse(image)
    assert result.status == "no_ellipse"
    assert "centre" in result.reason
    assert len(result.candidates) >= 1 and result.target is None
    assert not result.mask.any()


def test_neighbour_gets_masked_out():
    image = galaxy() + galaxy(centre=(110.0, 110.0), semi_major=5.0, noise=0.0, seed=1)
    result = fit_target_ellipse(image)
    assert result.ok and len(result.candidates) >= 2
    assert not result.mask[110, 110]
    masked = result.apply(image)
    assert masked[110, 110] == 0 and masked[64, 63] == image[64, 63]


@pytest.mark.parametrize(
    "image, status",
    [
        (np.zeros((64, 64)), "flat"),
        (np.full((64, 64), 7.5), "flat"),
        (np.full((64, 64), np.nan), "flat"),
        (np.zeros((64, 64, 3), dtype=np.uint8), "flat"),
    ],
)
def test_flat_images_have_a_status(image, status):
    result = fit_target_ellipse(image)
    assert result.status == status and result.reason.startswith("flat image")
    assert result.mask.shape == (64, 64)


@pytest.mark.parametrize(
    "image, words",
    [
        (np.zeros((0, 0)), "too small"),
        (np.zeros((1, 1)), "too small"),
        (np.zeros((32, 32, 2)), "(ny, nx, 3)"),
        (np.zeros((2, 3, 4, 5)), "not a cutout"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
    ],
)
def test_bad_shapes_raise_input_error(image, words):
    with pytest.raises(GalamInputError, match=r".*") as info:
        fit_target_ellipse(image)
    assert words in str(info.value)


def test_a_field_is_refused_without_allocating_it():
    # A 20000x20000 field as a broadcast view: no memory is used for it.
    field = np.broadcast_to(np.float32(1.0), (20000, 20000))
    with pytest.raises(GalamInputError, match="cutout_around"):
        fit_target_ellipse(field)


def test_bad_parameters_raise():
    with pytest.raises(GalamInputError, match="mask_scale"):
        fit_target_ellipse(galaxy(), mask_scale=0)
    with pytest.raises(GalamInputError, match="tolerance"):
        fit_target_ellipse(galaxy(), tolerance=-1)


def test_isodata_threshold_of_two_levels_is_their_midpoint():
    grey = np.array([10] * 50 + [200] * 50, dtype=np.uint8)
    assert isodata_threshold(grey, tolerance=0.5) == pytest.approx(105.0)
    assert np.isnan(isodata_threshold(np.full(10, 3, dtype=np.uint8)))


def test_scale_to_grey_ignores_nans_and_keeps_the_input():
    image = np.array([[np.nan, 0.0], [1.0, 2.0]])
    before = image.copy()
    grey = scale_to_grey(image)
    assert grey.dtype == np.uint8 and grey.tolist() == [[0, 0], [128, 255]]
    np.testing.assert_array_equal(image, before)


def test_ellipse_geometry_helpers():
    ellipse = Ellipse(x=10.0, y=20.0, semi_major=5.0, semi_minor=2.0, angle_deg=90.0)
    assert ellipse.contains(10.0, 24.5) and not ellipse.contains(14.0, 20.0)
    mask = ellipse_mask((40, 40), ellipse)
    assert mask[24, 10] and not mask[20, 13]
    poly = ellipse.polygon(8)
    assert poly.shape == (8, 2)
    np.testing.assert_allclose(poly[0], [25.0, 10.0], atol=1e-9)
    assert Ellipse.from_cv2(((1.0, 2.0), (4.0, 10.0), 30.0)).angle_deg == pytest.approx(120.0)


def test_canny_edges_of_the_released_pipeline_are_available():
    image = galaxy(noise=0.2)
    outline = fit_target_ellipse(image)
    canny = fit_target_ellipse(image, edges="canny")
    assert outline.ok and canny.ok
    assert abs(outline.target.x - canny.target.x) < 1.0
    assert abs(outline.target.semi_major - canny.target.semi_major) < 1.5
    with pytest.raises(GalamInputError, match="edges"):
        fit_target_ellipse(image, edges="sobel")


def test_moment_ellipse_angle_of_a_roundish_galaxy():
    from napari_galam.core.masking import moment_ellipse

    rows, cols = np.indices((96, 96), dtype=float)
    theta = np.radians(120.0)
    dx, dy = cols - 47.3, rows - 48.6
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = (-dx * np.sin(theta) + dy * np.cos(theta)) / 0.78
    image = 100 * np.exp(-np.hypot(along, across) / 6.0)
    shape = moment_ellipse(image, image > 1.0)
    assert abs((shape.angle_deg - 120.0 + 90) % 180 - 90) < 1.0
    assert abs(shape.x - 47.3) < 0.1 and abs(shape.y - 48.6) < 0.1
    assert 0.7 < shape.axis_ratio < 0.86
    assert moment_ellipse(image, np.zeros_like(image, bool)) is None
    assert moment_ellipse(-image, image > 1.0) is None
    with pytest.raises(GalamInputError, match="region"):
        moment_ellipse(image, np.ones((4, 4), bool))
