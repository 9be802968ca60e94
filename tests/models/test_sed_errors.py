"""The shipped SED CNN's per-spaxel errors and out-of-distribution flags, on simulated cubes.

Real parts: the shipped ``sed-cnn`` with its calibrated card, and SEDs of cubes the
simulator renders here (the same synthetic photometry as the training data).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_galam.models.sed_uncertainty import OOD_BAD_FLUX, OOD_LOW_SNR, OOD_SHAPE

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    from napari_galam.simulate.datasets import simulate_dataset

    path = tmp_path_factory.mktemp("cubes") / "cubes.h5"
    simulate_dataset(path, kind="cubes", n=2, seed=4321, store_cubes=False)
    with h5py.File(path, "r") as handle:
        return {
            "seds": handle["seds/flux"][()],
            "snr": handle["seds/snr"][()],
            "radius": handle["maps/r_over_re"][()],
        }


def test_an_error_exists_wherever_a_value_does(cubes) -> None:
    from napari_galam.models.inference import predict_seds

    seds = cubes["seds"].copy()
    seds[0, 10, 10, 3] = np.nan  # one non-finite filter: no value, flagged
    seds[0, 36, 39] *= -1.0  # negative SED: no value, flagged
    seds[1, 36, 39, ::2] = -seds[1, 36, 39, ::2] * 0.1  # half the filters negative
    out = predict_seds(seds, snr=cubes["snr"])
    value = np.isfinite(out.log_age)
    assert value.sum() > 4000
    for error in (out.log_age_err, out.mh_err):
        assert np.all(np.isfinite(error[value]) & (error[value] > 0))
        assert np.all(np.isnan(error[~value]))
    assert np.array_equal(value, out.valid)
    for where in ((0, 10, 10), (0, 36, 39), (1, 36, 39)):
        assert out.ood[where] and out.ood_reason[where] & OOD_BAD_FLUX
    assert np.isnan(out.log_age[0, 10, 10]) and np.isnan(out.log_age[0, 36, 39])
    # the spaxels the network was trained on (within 2 R_e) are mostly in range
    inside = value & (cubes["radius"] <= 2.0)
    assert np.mean(out.ood[inside]) < 0.1


def test_noisy_spaxels_get_wider_errors_or_the_flag(cubes) -> None:
    from napari_galam.models.inference import predict_seds

    clean_rows = (cubes["radius"] <= 1.0) & (cubes["snr"] > 100)
    clean = cubes["seds"][clean_rows][:400].astype(np.float64)
    assert clean.shape[0] >= 100
    rng = np.random.default_rng(1)
    noisy = clean + clean.mean(axis=1, keepdims=True) / 6.0 * rng.standard_normal(clean.shape)
    snr_noisy = np.full(clean.shape[0], 6.0)
    before = predict_seds(clean, snr=cubes["snr"][clean_rows][:400])
    after = predict_seds(noisy, snr=snr_noisy)
    assert not before.ood.any() or before.ood.mean() < 0.05
    has_value = np.isfinite(after.log_age)
    wider = after.log_age_err > before.log_age_err
    assert np.all(after.ood[has_value] | wider[has_value])
    assert np.all(after.ood_reason[has_value] & OOD_LOW_SNR)  # S/N 6 is below training
    # the head alone (no S/N given) widens the errors of noisy SEDs
    blind = predict_seds(noisy)
    assert np.nanmedian(blind.log_age_err) > 1.5 * np.median(before.log_age_err)
    assert np.nanmedian(blind.mh_err) > 1.5 * np.median(before.mh_err)


def test_seds_unlike_any_training_sed_are_flagged(cubes) -> None:
    from napari_galam.models.inference import predict_seds

    n_filters = cubes["seds"].shape[-1]
    ramp = np.linspace(0.05, 3.0, n_filters) ** 3  # a steep red power law
    spike = np.ones(n_filters)
    spike[n_filters // 2] = 12.0  # one emission-line-like filter
    out = predict_seds(np.stack([ramp, spike]))
    assert np.all(out.ood_reason & OOD_SHAPE)
    assert np.all(np.isfinite(out.log_age_err) & (out.log_age_err > 0))
