"""The detection image: background maps and smoothing against photutils and astropy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scenes import blob

from napari_galam.core.background import estimate_background, gaussian_kernel, smooth_image


def _photutils_maps(image):
    from photutils.background import Background2D, MedianBackground

    box = min(max(round(50 * min(image.shape) / 128), 8), *image.shape)
    bad = ~np.isfinite(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = Background2D(
            image,
            (box, box),
            mask=bad if bad.any() else None,
            filter_size=(3, 3),
            bkg_estimator=MedianBackground(),
        )
        return expected.background, expected.background_rms


@pytest.mark.parametrize("shape", [(128, 128), (100, 150), (64, 64)])
def test_background_maps_equal_photutils_background2d(shape):
    rng = np.random.default_rng(9)
    image = rng.normal(5, 1, shape) + blob(shape, shape[0] / 2, shape[1] / 2, 50, 4)
    image += np.linspace(0, 3, shape[1])[None, :]
    background, rms = estimate_background(image)
    expected_background, expected_rms = _photutils_maps(image)
    np.testing.assert_allclose(background, expected_background, rtol=0, atol=1e-10)
    np.testing.assert_allclose(rms, expected_rms, rtol=0, atol=1e-10)


def test_background_re_implementation_matches_photutils_on_awkward_images():
    """Left-out boxes (galaxy light, NaN holes, blank bands), integer-valued data with
    ties, odd shapes and leftover edge boxes: the re-implemented mesh statistics, hole
    filling and median filter give photutils' maps to rounding."""
    rng = np.random.default_rng(21)
    checked = varying = 0
    for k in range(30):
        shape = tuple(int(v) for v in rng.integers(24, 260, 2))
        image = rng.normal(5, rng.uniform(0.2, 3), shape)
        image += blob(shape, shape[0] / 2, shape[1] / 2, rng.uniform(10, 300), rng.uniform(2, 25))
        if k % 3 == 0:
            image[rng.random(shape) < rng.uniform(0.0, 0.3)] = np.nan
        if k % 5 == 0:
            image[: shape[0] // 3] = np.nan
        if k % 2 == 1:
            image = np.round(image)
        try:
            expected_background, expected_rms = _photutils_maps(image)
        except ValueError:
            continue  # photutils has no map here; estimate_background falls back
        background, rms = estimate_background(image)
        np.testing.assert_allclose(background, expected_background, rtol=0, atol=1e-9)
        np.testing.assert_allclose(rms, expected_rms, rtol=0, atol=1e-9)
        checked += 1
        varying += bool(np.ptp(expected_background) > 0)
    assert checked >= 20 and varying >= 10


def test_background_falls_back_to_global_clipped_values_without_usable_boxes():
    from astropy.stats import sigma_clipped_stats

    rng = np.random.default_rng(4)
    image = rng.normal(3.0, 1.0, (64, 64))
    image[rng.random(image.shape) < 0.5] = np.nan  # every box has > 10% masked
    background, rms = estimate_background(image)
    _, median, std = sigma_clipped_stats(image[np.isfinite(image)], sigma=3.0)
    assert np.all(background == background[0, 0]) and np.all(rms == rms[0, 0])
    assert background[0, 0] == pytest.approx(median, abs=1e-12)
    assert rms[0, 0] == pytest.approx(std, abs=1e-12)
    background, rms = estimate_background(np.full((32, 32), np.nan))
    assert np.isnan(background).all() and np.isnan(rms).all()


def test_smoothing_equals_astropy_convolution_with_and_without_nans():
    from astropy.convolution import convolve

    rng = np.random.default_rng(13)
    image = blob((90, 70), 40, 30, 120, 6) + rng.normal(0, 2, (90, 70))
    kernel = gaussian_kernel(3.0, 5)
    expected = convolve(image, kernel, normalize_kernel=True)
    np.testing.assert_allclose(smooth_image(image), expected, rtol=0, atol=1e-12)
    holed = image.copy()
    holed[10:13, 50:52] = np.nan  # NaNs take astropy's interpolating path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = convolve(holed, kernel, normalize_kernel=True)
    np.testing.assert_allclose(smooth_image(holed), expected, rtol=0, atol=1e-12)
