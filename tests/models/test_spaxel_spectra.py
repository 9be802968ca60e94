"""The shipped ``spaxel-spectra`` model: accuracy on unseen spectra, errors, card, worker."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.core.spectral_input import MODEL_LOGLAM, spectral_input_plan, spectral_inputs
from napari_galam.errors import GalamInputError
from napari_galam.models.registry import available_models, read_model_card
from napari_galam.simulate.spaxel_spectra import spectrum_groups

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.skipif(
        "spaxel-spectra" not in available_models(), reason="no shipped spaxel-spectra model"
    ),
]


def unseen_spectra(layout: str, z: float, n: int = 256) -> tuple[np.ndarray, ...]:
    """Model inputs, S/N and labels of spectra from a seed the training never used."""
    xs, snrs, labels = [], [], []
    for group in spectrum_groups(layout, n, seed=424242, fixed_redshift=z):
        plan = spectral_input_plan(group.wave, redshift=z, layout=layout, medium=group.medium)
        inputs = spectral_inputs(plan, group.flux, group.variance, group.mask)
        xs.append(inputs.x)
        snrs.append(inputs.snr)
        labels.append(np.stack([group.log_age, group.mh], axis=1))
    return np.concatenate(xs), np.concatenate(snrs), np.concatenate(labels)


def test_card_holds_the_shared_calibration_format() -> None:
    card = read_model_card("spaxel-spectra")
    unc = card["calibration"]["uncertainty"]
    assert {"method", "log_age", "mh", "splits", "coverage"} <= set(unc)
    assert unc["log_age"]["scale"] > 0 and unc["mh"]["scale"] > 0
    for key in ("log_age", "mh"):
        assert 0.6 < unc["coverage"][key]["within_68"] < 0.76
    assert card["input"]["shape"] == [MODEL_LOGLAM.size, 2]
    assert card["size_bytes"] < 3 * 1024**2


def test_held_out_muse_at_high_redshift_is_measured_well() -> None:
    """MUSE at z > 0.1 was left out of training entirely."""
    from napari_galam.models.inference import predict_spectra

    x, snr, truth = unseen_spectra("MUSE", 0.2)
    prediction = predict_spectra(x, snr=snr)
    bright = snr >= 10
    age_error = prediction.log_age[bright] - truth[bright, 0]
    mh_error = prediction.mh[bright] - truth[bright, 1]
    assert 1.4826 * np.median(np.abs(age_error - np.median(age_error))) < 0.25
    assert 1.4826 * np.median(np.abs(mh_error - np.median(mh_error))) < 0.3
    assert abs(np.median(age_error)) < 0.1 and abs(np.median(mh_error)) < 0.1
    # a guess of the training mean would do much worse: the test can fail
    assert np.median(np.abs(age_error)) < 0.5 * np.median(np.abs(truth[bright, 0] - 9.3))
    # errors: finite, positive, larger at low S/N
    assert np.all(np.isfinite(prediction.log_age_err)) and np.all(prediction.log_age_err > 0)
    faint = snr < 5
    assert np.median(prediction.log_age_err[faint]) > np.median(prediction.log_age_err[snr > 50])


def test_bad_inputs_are_refused_or_left_out() -> None:
    from napari_galam.models.inference import predict_spectra

    with pytest.raises(GalamInputError, match="spectral_inputs"):
        predict_spectra(np.zeros((3, 100, 2)))
    empty = predict_spectra(np.zeros((2, MODEL_LOGLAM.size, 2), np.float32))
    assert not empty.valid.any() and np.all(np.isnan(empty.log_age))


def test_the_worker_answers_like_this_process() -> None:
    from napari_galam.models.inference import predict_spectra
    from napari_galam.models.worker import ModelWorker

    x, snr, _ = unseen_spectra("CALIFA", 0.03, n=32)
    here = predict_spectra(x, snr=snr)
    with ModelWorker(preload=("spaxel-spectra",)) as worker:
        there = worker.predict_spectra(x, snr=snr)
    np.testing.assert_allclose(there.log_age, here.log_age, atol=1e-5)
    np.testing.assert_array_equal(there.ood_reason, here.ood_reason)


def test_training_reports_progress_and_returns_the_best_model() -> None:
    from napari_galam.models.train_spaxel_spectra import iter_train_spaxel_spectra
    from napari_galam.models.training_loop import TrainingProgress
    from napari_galam.progress import run_to_end

    x, _, labels = unseen_spectra("MaNGA", 0.05, n=96)
    y = (labels - labels.mean(axis=0)) / labels.std(axis=0)
    steps: list[TrainingProgress] = []
    model = run_to_end(
        iter_train_spaxel_spectra(x[:64], y[:64], x[64:], y[64:], epochs=2, batch_size=32),
        on_progress=steps.append,
    )
    assert [s.epoch for s in steps] == [1, 2] and all(s.total == 2 for s in steps)
    assert steps[-1].best_val_loss == min(s.val_loss for s in steps)
    out = model.predict(x[64:70].astype(np.float32), verbose=0)
    assert out.shape == (6, 4) and np.all(np.isfinite(out))


def test_the_cards_cube_terms_set_the_errors_of_cube_spaxels(monkeypatch) -> None:
    """Maps are of cubes: the errors are the spectra-calibrated ones with the card's cube
    terms for the cube's instrument (scale, floor and S/N factors), exactly as the card
    says; a layout the card does not name gets the pooled terms."""
    import copy

    from napari_galam.models import inference
    from napari_galam.models.cube_calibration import cube_terms_for

    card = read_model_card("spaxel-spectra")
    unc = card["calibration"]["uncertainty"]
    assert "cube" in unc and "test_cubes" in unc["cube"]
    assert set(unc["cube"]["by_layout"]) == {"CALIFA", "MaNGA", "MUSE"}
    x, snr, _ = unseen_spectra("MaNGA", 0.05, n=32)
    stripped = copy.deepcopy(card)
    del stripped["calibration"]["uncertainty"]["cube"]
    with monkeypatch.context() as patch:
        patch.setattr(inference, "read_model_card", lambda name, **_: stripped)
        spectra_only = inference.predict_spectra(x, snr=snr)
    sigma = np.stack([spectra_only.log_age_err, spectra_only.mh_err], axis=1)
    answers = {}
    for layout in ("MaNGA", "MUSE", None, "generic"):
        shipped = inference.predict_spectra(x, snr=snr, layout=layout)
        np.testing.assert_array_equal(shipped.log_age, spectra_only.log_age)
        expected = cube_terms_for(unc, "m", layout).apply(sigma, snr)
        got = np.stack([shipped.log_age_err, shipped.mh_err], axis=1)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        answers[layout] = got
    assert not np.allclose(answers["MaNGA"], answers["MUSE"])  # each instrument its own
    np.testing.assert_allclose(answers[None], answers["generic"])
