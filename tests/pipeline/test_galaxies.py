"""Per-galaxy pipeline on the real Hubble Deep Field and on a simulated SDSS field."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.pipeline.galaxies import detect_galaxies, predict_positions


@pytest.fixture(scope="module")
def hdf():
    from skimage import data

    return data.hubble_deep_field()


def mean_colour_predictor(images, model="mmlforgalam", problems=None):
    """Stand-in model: 'age' = mean red level, '[M/H]' = mean blue level, errors 0.1 and
    the caller's problems as the out-of-distribution reasons (checks wiring)."""
    images = np.asarray(images, dtype=float)
    n = len(images)
    reasons = tuple("; ".join(p) for p in (problems or [[]] * n))
    return SimpleNamespace(
        log_age=images[..., 0].mean(axis=(1, 2)),
        mh=images[..., 2].mean(axis=(1, 2)),
        model=model,
        log_age_err=np.full(n, 0.1),
        mh_err=np.full(n, 0.1),
        ood=np.array([bool(r) for r in reasons]),
        ood_reason=reasons,
    )


def test_detects_many_galaxies_in_the_hubble_deep_field(hdf) -> None:
    positions = detect_galaxies(hdf)
    assert len(positions) >= 50
    ny, nx = hdf.shape[:2]
    assert np.all((positions[:, 0] >= 8) & (positions[:, 0] < ny - 8))
    assert np.all((positions[:, 1] >= 8) & (positions[:, 1] < nx - 8))


def test_every_position_gets_a_result_and_accepted_ones_a_prediction(hdf) -> None:
    positions = detect_galaxies(hdf)[:25]
    results = predict_positions(hdf, positions, mean_colour_predictor)
    assert len(results) == 25
    accepted = [r for r in results if r.status == "accepted"]
    assert len(accepted) >= 10
    for result in results:
        if result.status == "accepted":
            assert result.predicted and result.reason == ""
            expected = mean_colour_predictor(result.qa.model_input[None])
            assert result.log_age == pytest.approx(expected.log_age[0])
            assert result.log_age_err == 0.1 and result.mh_err == 0.1
            assert result.row_dict()["ood"] == result.ood
        else:
            assert not result.predicted and result.reason  # rejected: says why
    # centres move onto the galaxies' ellipses, close to where we asked
    moved = [
        np.hypot(r.row - p[0], r.col - p[1])
        for r, p in zip(results, positions, strict=True)
        if r.qa.masking.ok
    ]
    assert np.median(moved) < 5


def test_bad_positions_and_images() -> None:
    field = np.zeros((64, 64, 3), np.uint8)
    results = predict_positions(field, [(500.0, 500.0), (30.0, 30.0)], mean_colour_predictor)
    assert results[0].status == "failed" and "500" in results[0].reason  # names the position
    assert results[1].status == "flat" and not results[1].predicted
    with pytest.raises(GalamInputError, match="expected"):
        predict_positions(np.zeros((2, 3, 4, 5)), [(1, 1)], None)
    assert len(detect_galaxies(np.zeros((50, 50)))) == 0
