"""Blend detection: agreement with photutils, the blend decision, peaks and saddles."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_galam.core.deblend import (
    deblend_segments,
    detect_blends,
    estimate_background,
    find_saddle_points,
    smooth_image,
)
from napari_galam.core.masking import fit_target_ellipse
from napari_galam.errors import GalamInputError


def blob(shape, row, col, amplitude, radius, axis_ratio=1.0, angle_deg=0.0):
    rows, cols = np.indices(shape, dtype=float)
    theta = np.radians(angle_deg)
    dx, dy = cols - col, rows - row
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = (-dx * np.sin(theta) + dy * np.cos(theta)) / axis_ratio
    return amplitude * np.exp(-((np.hypot(along, across) / radius) ** 0.8))


def random_scene(rng, shape=(128, 128)):
    image = blob(
        shape,
        64,
        64,
        rng.uniform(30, 200),
        rng.uniform(3, 9),
        rng.uniform(0.3, 1),
        rng.uniform(0, 180),
    )
    for _ in range(rng.integers(0, 4)):
        if rng.random() < 0.5:
            row, col = 64 + rng.uniform(-14, 14, 2)
        else:
            row, col = rng.uniform(8, 120, 2)
        image += blob(
            shape,
            row,
            col,
            rng.uniform(5, 80),
            rng.uniform(1.5, 6),
            rng.uniform(0.4, 1),
            rng.uniform(0, 180),
        )
    return image + rng.normal(0, 1, shape)


def test_fast_deblending_equals_photutils_on_a_seeded_set():
    from photutils.segmentation import deblend_sources, detect_sources

    rng = np.random.default_rng(42)
    n_split = 0
    for _ in range(25):
        image = random_scene(rng)
        background, rms = estimate_background(image)
        smoothed = smooth_image(image - background)
        segm = detect_sources(smoothed, 1.5 * rms, n_pixels=10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = deblend_sources(
                smoothed, segm, 10, n_levels=90, contrast=1e-6, progress_bar=False
            ).data
        fast = deblend_segments(smoothed, segm.data, n_pixels=10, n_levels=90, contrast=1e-6)
        np.testing.assert_array_equal(fast, expected)
        n_split += int(fast.max() > segm.n_labels)
    assert n_split >= 5  # the set really exercises deblending


@pytest.mark.parametrize("mode", ["linear", "sinh"])
def test_other_threshold_modes_equal_photutils(mode):
    from photutils.segmentation import deblend_sources, detect_sources

    rng = np.random.default_rng(7)
    image = blob((96, 96), 48, 44, 100, 4) + blob((96, 96), 48, 56, 60, 4)
    image += rng.normal(0, 1, image.shape)
    smoothed = smooth_image(image)
    segm = detect_sources(smoothed, 3.0, n_pixels=10)
    expected = deblend_sources(
        smoothed, segm, 10, n_levels=32, contrast=0.001, mode=mode, progress_bar=False
    ).data
    fast = deblend_segments(
        smoothed, segm.data, n_pixels=10, n_levels=32, contrast=0.001, mode=mode
    )
    np.testing.assert_array_equal(fast, expected)


def test_two_touching_galaxies_are_blended_with_a_saddle_between():
    rng = np.random.default_rng(1)
    image = blob((128, 128), 64, 58, 120, 5) + blob((128, 128), 64, 72, 60, 4)
    image += rng.normal(0, 1, image.shape)
    masking = fit_target_ellipse(image)
    assert masking.ok
    result = detect_blends(image, target_mask=masking.mask)
    assert result.status == "ok"
    assert result.blended and result.n_sources == 2
    peaks = {tuple(p) for p in result.peak_yx[np.isin(result.peak_label, result.target_labels)]}
    assert any(abs(c - 58) <= 1 for _, c in peaks) and any(abs(c - 72) <= 1 for _, c in peaks)
    assert result.saddle_labels.shape == (1, 2)
    row, col = result.saddle_yx[0]
    assert 58 < col < 72 and abs(row - 64) <= 2
    # The saddle is lower than both peaks.
    assert result.saddle_level[0] < result.peak_level.min()


def test_single_galaxy_is_not_blended():
    rng = np.random.default_rng(2)
    image = blob((128, 128), 64, 64, 100, 6, 0.5, 40) + rng.normal(0, 1, (128, 128))
    masking = fit_target_ellipse(image)
    result = detect_blends(image, target_mask=masking.mask)
    assert result.status == "ok" and not result.blended and result.n_sources == 1
    assert result.segments.dtype == np.int32 and result.segments[64, 64] > 0


def test_distant_neighbour_outside_the_mask_does_not_count():
    rng = np.random.default_rng(3)
    image = blob((128, 128), 64, 64, 100, 4) + blob((128, 128), 15, 110, 100, 4)
    image += rng.normal(0, 1, image.shape)
    masking = fit_target_ellipse(image)
    result = detect_blends(image, target_mask=masking.mask)
    assert result.n_segments == 2 and result.n_sources == 1 and not result.blended
    whole = detect_blends(image)
    assert whole.n_sources == 2


def test_rgb_and_nan_inputs_work():
    rng = np.random.default_rng(4)
    image = blob((64, 64), 32, 32, 200, 4) + rng.normal(0, 2, (64, 64))
    rgb = np.clip(np.stack([image] * 3, -1), 0, 255).astype(np.uint8)
    assert detect_blends(rgb).status == "ok"
    with_nans = image.copy()
    with_nans[:3] = np.nan
    assert detect_blends(with_nans).status == "ok"


def test_noise_only_and_flat_images_have_a_status():
    rng = np.random.default_rng(5)
    flat = detect_blends(np.zeros((64, 64)))
    assert flat.status == "flat" and not flat.blended and flat.n_sources == 0
    nans = detect_blends(np.full((32, 32), np.nan))
    assert nans.status == "flat"
    # Pure noise may produce nothing above 1.5 sigma with 10 connected pixels when the
    # threshold is high; either way it is a clean result.
    noise = detect_blends(rng.normal(0, 1, (64, 64)), nsigma=5.0)
    assert noise.status == "no_source" and "RMS" in noise.reason


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"image": np.zeros((1, 1))}, "too small"),
        ({"image": np.zeros((8, 8, 2))}, "not a cutout"),
        ({"image": np.zeros((8, 8)), "target_mask": np.zeros((4, 4), bool)}, "target_mask"),
        ({"image": np.ones((8, 8)), "method": "magic"}, "method"),
        ({"image": np.ones((8, 8)), "nsigma": 0}, "nsigma"),
    ],
)
def test_bad_input_raises(kwargs, words):
    with pytest.raises(GalamInputError) as info:
        detect_blends(**kwargs)
    assert words in str(info.value)


def test_a_field_is_refused():
    field = np.broadcast_to(np.float32(0.0), (20000, 20000))
    with pytest.raises(GalamInputError, match="field"):
        detect_blends(field)


def test_deblend_parameters_are_checked():
    segments = np.ones((20, 20), dtype=int)
    with pytest.raises(GalamInputError, match="n_levels"):
        deblend_segments(np.ones((20, 20)), segments, n_levels=0)
    with pytest.raises(GalamInputError, match="contrast"):
        deblend_segments(np.ones((20, 20)), segments, contrast=2)


def test_saddle_is_the_highest_joining_point_of_the_border():
    values = np.array(
        [
            [1.0, 2.0, 1.0, 0.5],
            [3.0, 5.0, 4.0, 2.0],
            [1.0, 2.0, 1.0, 0.5],
        ]
    )
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2]])
    yx, level, pairs = find_saddle_points(values, labels)
    assert pairs.tolist() == [[1, 2]]
    assert level[0] == 4.0 and yx[0].tolist() == [1.0, 2.0]


def test_blank_band_of_nans_is_quiet_and_never_detected(recwarn):
    rng = np.random.default_rng(8)
    image = blob((96, 96), 48, 48, 150, 4) + rng.normal(0, 1, (96, 96))
    image[:12] = np.nan
    result = detect_blends(image)
    assert result.status == "ok" and result.n_sources == 1
    assert not result.segments[:12].any()
    assert not [w for w in recwarn if "NaN" in str(w.message)]


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


def faint_companion_scene(seed=3, amplitude=30.0):
    """A b/a 0.75 galaxy with a companion on its slope that makes no peak of its own."""
    rng = np.random.default_rng(seed)
    image = blob((128, 128), 63.5, 63.5, 200.0, 8.0, 0.75, 30.0)
    if amplitude:
        image = image + blob((128, 128), 72.5, 54.5, amplitude, 3.0)
    return image + rng.normal(0, 1, (128, 128))


def _companions_of(image):
    from napari_galam.core.deblend import find_companions, smoothed_noise

    masking = fit_target_ellipse(image)
    result = detect_blends(image, target_mask=masking.mask)
    found = find_companions(
        result.smoothed,
        smoothed_noise(result.threshold / 1.5),
        masking.mask,
        (masking.target.y, masking.target.x),
        structure_noise=True,
    )
    return result, found


def test_rotation_residual_finds_a_companion_that_deblending_cannot_split():
    result, found = _companions_of(faint_companion_scene())
    assert not result.blended  # the seed's peak-based rule misses it
    assert found.n_companions == 1
    row, col = found.yx[0]
    assert np.hypot(row - 72.5, col - 54.5) < 3
    assert found.fraction[0] >= 0.3 and found.significance[0] > 3
    assert abs(found.centre_yx[0] - 63.5) <= 0.5 and abs(found.centre_yx[1] - 63.5) <= 0.5


def test_companions_whose_residual_exceeds_their_light_are_outskirt_noise():
    from napari_galam.core.deblend import find_companions, smoothed_noise

    image = faint_companion_scene()
    masking = fit_target_ellipse(image)
    result = detect_blends(image, target_mask=masking.mask)
    args = (
        result.smoothed,
        smoothed_noise(result.threshold / 1.5),
        masking.mask,
        (masking.target.y, masking.target.x),
    )
    found = find_companions(*args, structure_noise=True)
    fraction = float(found.fraction[0])
    assert 0.3 <= fraction <= 1.0
    capped = find_companions(*args, structure_noise=True, max_fraction=fraction - 0.01)
    assert capped.n_companions == 0


def test_rotation_residual_of_an_isolated_galaxy_is_empty():
    _, found = _companions_of(faint_companion_scene(amplitude=0.0))
    assert found.n_companions == 0


def test_find_companions_validates_its_inputs():
    from napari_galam.core.deblend import find_companions

    data = np.zeros((16, 16))
    with pytest.raises(GalamInputError, match="region"):
        find_companions(data, 1.0, np.ones((8, 8), bool), (8, 8))
    with pytest.raises(GalamInputError, match="nsigma"):
        find_companions(data, 1.0, np.ones((16, 16), bool), (8, 8), nsigma=0)
    with pytest.raises(GalamInputError, match="max_fraction"):
        find_companions(
            data, 1.0, np.ones((16, 16), bool), (8, 8), min_fraction=0.5, max_fraction=0.4
        )
    # An empty region is "nothing found", not an error.
    assert find_companions(data, 1.0, np.zeros((16, 16), bool), (8, 8)).n_companions == 0


def test_smoothing_equals_astropy_convolution_with_and_without_nans():
    from astropy.convolution import convolve

    from napari_galam.core.deblend import _gaussian_kernel

    rng = np.random.default_rng(13)
    image = blob((90, 70), 40, 30, 120, 6) + rng.normal(0, 2, (90, 70))
    kernel = _gaussian_kernel(3.0, 5)
    expected = convolve(image, kernel, normalize_kernel=True)
    np.testing.assert_allclose(smooth_image(image), expected, rtol=0, atol=1e-12)
    holed = image.copy()
    holed[10:13, 50:52] = np.nan  # NaNs take astropy's interpolating path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = convolve(holed, kernel, normalize_kernel=True)
    np.testing.assert_allclose(smooth_image(holed), expected, rtol=0, atol=1e-12)
