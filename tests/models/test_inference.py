"""In-process inference with tiny untrained models from a temporary registry."""

from __future__ import annotations

import numpy as np
import pytest
from galam_model_helpers import TINY_SED_FILTERS, write_tiny_registry

from napari_galam.errors import GalamInputError
from napari_galam.models import inference, registry

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    write_tiny_registry(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.WEIGHTS_DIR_ENV, str(folder))
        yield folder
    registry.clear_model_cache()


def cutouts(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_auto_picks_spectra_only_when_spectra_are_given(tiny_weights):
    spectra = np.random.default_rng(1).random((3, 4171))
    both = inference.predict_galaxies(cutouts(3), spectra)
    assert both.model == "spectra-only" and len(both) == 3
    images_only = inference.predict_galaxies(cutouts(3))
    assert images_only.model == "mmlforgalam"
    assert images_only.log_age.shape == (3,) and images_only.mh.dtype == np.float32
    assert np.all(np.isfinite(images_only.log_age))


def test_batching_and_padding_do_not_change_results(tiny_weights):
    images = cutouts(13, seed=2)
    whole = inference.predict_galaxies(images, model="image-only", batch_size=256)
    small = inference.predict_galaxies(images, model="image-only", batch_size=4)
    one = inference.predict_galaxies(images[5:6], model="image-only")
    np.testing.assert_allclose(whole.log_age, small.log_age, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(one.mh[0], whole.mh[5], rtol=1e-5, atol=1e-5)


def test_predict_seds_returns_maps_with_nan_where_unusable(tiny_weights):
    cube = np.random.default_rng(3).random((5, 7, TINY_SED_FILTERS)) + 0.5
    cube[0, 0] = np.nan
    cube[4, 6] = 0.0
    maps = inference.predict_seds(cube)
    assert maps.log_age.shape == (5, 7) and maps.mh.shape == (5, 7)
    assert np.isnan(maps.log_age[0, 0]) and np.isnan(maps.mh[4, 6])
    assert np.isfinite(maps.log_age).sum() == 33 and maps.valid.sum() == 33


def test_bad_requests_say_what_is_wrong(tiny_weights):
    with pytest.raises(GalamInputError, match="needs spectra"):
        inference.predict_galaxies(cutouts(2), model="spectra-only")
    with pytest.raises(GalamInputError, match="unknown model"):
        inference.predict_galaxies(cutouts(2), model="best")
    with pytest.raises(GalamInputError, match="filter fluxes"):
        inference.predict_seds(np.ones((4, TINY_SED_FILTERS + 1)))
    with pytest.raises(GalamInputError, match="2 images but 3 spectra"):
        inference.predict_galaxies(cutouts(2), np.zeros((3, 4171)), model="mmlforgalam")


def test_every_prediction_has_a_positive_error_and_a_flag(tiny_weights):
    images = inference.predict_galaxies(cutouts(5), model="mmlforgalam")
    for answer in (images, inference.predict_galaxies(cutouts(5), model="image-only")):
        assert answer.log_age_err.shape == answer.mh_err.shape == (5,)
        assert np.all(np.isfinite(answer.log_age_err)) and np.all(answer.log_age_err > 0)
        assert np.all(np.isfinite(answer.mh_err)) and np.all(answer.mh_err > 0)
        assert answer.ood.dtype == bool and len(answer.ood_reason) == 5
        assert all(bool(r) == f for r, f in zip(answer.ood_reason, answer.ood, strict=True))
    # caller's reasons (e.g. a QA warning) flag the galaxy they belong to only
    flagged = inference.predict_galaxies(
        cutouts(2), model="image-only", problems=[[], ["QA blended: a neighbour"]]
    )
    assert "QA blended" in flagged.ood_reason[1] and flagged.ood[1]
    assert "QA blended" not in flagged.ood_reason[0]


def test_spectra_with_missing_coverage_or_negative_flux_are_flagged(tiny_weights):
    rng = np.random.default_rng(3)
    spectra = 1.0 + 0.01 * rng.standard_normal((3, 4171))
    spectra[1, :600] = spectra[1, 600]  # blue end padded: no coverage there
    spectra[2] -= 1.5  # mostly negative
    answer = inference.predict_galaxies(
        spectra=spectra, model="spectra-only", redshift=[0.05, 0.05, 0.9]
    )
    assert "coverage missing at the blue end" in answer.ood_reason[1]
    assert "negative flux" in answer.ood_reason[2]
    assert "z = 0.9 outside the training redshifts" in answer.ood_reason[2]
    assert "coverage" not in answer.ood_reason[0] and "negative" not in answer.ood_reason[0]
    assert np.all(answer.log_age_err > 0) and np.all(np.isfinite(answer.mh_err))
