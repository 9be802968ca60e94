"""Training the per-spaxel SED CNN (Set A / Set B), and forced mixed precision + XLA."""

from __future__ import annotations

import json

import numpy as np
import pytest
from galam_model_helpers import TINY, make_toy_galaxies

from napari_galam.errors import GalamInputError
from napari_galam.models.datasets import SpaxelArrays
from napari_galam.models.train_sed_cnn import train_sed_cnn
from napari_galam.models.training_loop import TrainingSettings


@pytest.mark.tensorflow
def test_mixed_precision_and_xla_forced_on_cpu_give_finite_results(tmp_path):
    import keras

    arrays = make_toy_galaxies(64, size=16)
    data = SpaxelArrays(
        seds=arrays["cutouts"].reshape(64, -1)[:, :16].astype(np.float32) + 1.0,
        log_age=arrays["log_age"],
        mh=arrays["mh"],
        galaxy_id=np.arange(64) // 8,
    )
    settings = TrainingSettings(epochs=1, batch_size=16, mixed_precision=True, jit_compile=True)
    result = train_sed_cnn(data, tmp_path, split="B", config=TINY, settings=settings)
    assert result.settings["mixed_precision_used"] and result.settings["jit_compile_used"]
    assert keras.config.dtype_policy().name == "float32"  # global policy restored
    model = keras.saving.load_model(tmp_path / "sed_log_age" / "last.keras", compile=False)
    assert model.get_layer("sed_conv1").dtype_policy.name == "mixed_float16"
    assert model.get_layer("sed_conv1").compute_dtype == "float16"
    history = json.loads((tmp_path / "sed_log_age" / "state.json").read_text())["history"]
    assert all(np.isfinite(h["loss"]) for h in history)
    for target in ("log_age", "mh"):
        assert np.isfinite(result.metrics["sed-cnn"][target]["sd"])


@pytest.mark.tensorflow
@pytest.mark.parametrize("which", ["A", "B"])
def test_sed_cnn_learns_on_set_a_and_set_b(tmp_path, which):
    rng = np.random.default_rng(5)
    n_gal, per = 12, 40
    gid = np.repeat(np.arange(n_gal), per)
    age = rng.uniform(9, 10, gid.size).astype(np.float32)
    mh = rng.uniform(-1, 0, gid.size).astype(np.float32)
    x = np.linspace(0, 1, 20)
    seds = (
        1
        + (age[:, None] - 9) * x
        + 0.5 * (mh[:, None] + 1) * np.sin(6 * x)
        + rng.normal(0, 0.01, (gid.size, 20))
    )
    seds[0] = np.nan  # a masked spaxel is skipped, not fatal
    data = SpaxelArrays(seds=seds.astype(np.float32), log_age=age, mh=mh, galaxy_id=gid)
    settings = TrainingSettings(epochs=6, batch_size=32, lr_sed=3e-3)
    result = train_sed_cnn(data, tmp_path, split=which, config=TINY, settings=settings)
    assert result.metrics["split"] == which
    for target in ("log_age", "mh"):
        history = json.loads((tmp_path / f"sed_{target}" / "state.json").read_text())["history"]
        assert history[-1]["loss"] < history[0]["loss"]
    sizes = result.split_sizes
    assert sizes["train"] + sizes["val"] + sizes["test"] == gid.size - 1
    with pytest.raises(GalamInputError, match="'A'"):
        train_sed_cnn(data, tmp_path, split="C")


@pytest.mark.tensorflow
def test_the_variance_head_learns_noise_and_leaves_the_means_alone(tmp_path):
    """Labels with noise growing with one input: the head's errors follow; means frozen."""
    import keras

    from napari_galam.models.architectures import build_sed_cnn, combine_sed_cnns
    from napari_galam.models.train_sed_cnn import iter_train_sed_uncertainty, mean_sed_networks
    from napari_galam.progress import run_to_end

    rng = np.random.default_rng(0)
    n, n_f = 4000, 16
    seds = (1.0 + 0.05 * rng.standard_normal((n, n_f))).astype(np.float32)
    noisy = rng.random(n) < 0.5
    seds[noisy] += 0.5 * rng.standard_normal((int(noisy.sum()), n_f)).astype(np.float32)
    spread = np.where(noisy, 0.4, 0.05)[:, None]
    means = combine_sed_cnns(
        build_sed_cnn(TINY, n_filters=n_f, target_mean=9.5, target_std=0.3, name="sed_log_age"),
        build_sed_cnn(TINY, n_filters=n_f, target_mean=-0.5, target_std=0.3, name="sed_mh"),
    )
    # truth = the frozen networks' own output plus noise of known size
    labels = (means.predict(seds, verbose=0) + spread * rng.standard_normal((n, 2))).astype(
        np.float32
    )
    shipped = run_to_end(
        iter_train_sed_uncertainty(
            means,
            seds,
            labels,
            np.arange(3200),
            np.arange(3200, n),
            epochs=10,
            batch_size=128,
            learning_rate=1e-2,
        )
    )
    out = shipped.predict(seds, verbose=0)
    assert out.shape == (n, 4)
    np.testing.assert_allclose(out[:, :2], means.predict(seds, verbose=0), rtol=1e-5, atol=1e-5)
    sigma = out[:, 2:]
    assert np.all(np.isfinite(sigma) & (sigma > 0))
    assert np.median(sigma[noisy]) > 3 * np.median(sigma[~noisy])
    # saved and reloaded (as shipped), and its networks found again for a later head
    path = tmp_path / "sed-cnn.keras"
    shipped.save(path)
    from napari_galam.models.architectures import custom_objects

    again = keras.saving.load_model(path, custom_objects=custom_objects(), compile=False)
    np.testing.assert_allclose(again.predict(seds[:64], verbose=0), out[:64], rtol=1e-5, atol=1e-6)
    age_net, _ = mean_sed_networks(again)
    np.testing.assert_allclose(age_net.predict(seds[:64], verbose=0)[:, 0], out[:64, 0], rtol=1e-5)
