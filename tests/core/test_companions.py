"""Companions in the rotation residual: found where deblending cannot split them."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import faint_companion_scene

from napari_galam.core.background import smoothed_noise
from napari_galam.core.companions import find_companions
from napari_galam.core.deblend import detect_blends
from napari_galam.core.masking import fit_target_ellipse
from napari_galam.errors import GalamInputError


def _companions_of(image):
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
    assert not result.blended  # the published peak-based rule misses it
    assert found.n_companions == 1
    row, col = found.yx[0]
    assert np.hypot(row - 72.5, col - 54.5) < 3
    assert found.fraction[0] >= 0.3 and found.significance[0] > 3
    assert abs(found.centre_yx[0] - 63.5) <= 0.5 and abs(found.centre_yx[1] - 63.5) <= 0.5


def test_companions_whose_residual_exceeds_their_light_are_outskirt_noise():
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
