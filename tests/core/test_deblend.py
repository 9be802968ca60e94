"""Blend detection: agreement with photutils, the blend decision, peaks and saddles."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scenes import blob, random_scene

from napari_galam.core.background import estimate_background, smooth_image
from napari_galam.core.deblend import deblend_segments, detect_blends, find_saddle_points
from napari_galam.core.masking import fit_target_ellipse
from napari_galam.errors import GalamInputError


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
