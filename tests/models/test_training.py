"""Training: splits, tf.data pipelines, staged MMLforGalAM on toy data, resume, SED CNN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from galam_model_helpers import TINY, make_toy_galaxies

from napari_galam.errors import GalamInputError
from napari_galam.models.datasets import (
    GalaxyArrays,
    label_balance_weights,
    make_dataset,
    open_galaxy_hdf5,
    open_spaxel_hdf5,
    split_by_galaxy,
    split_spaxels_within_galaxies,
)
from napari_galam.models.train_mmlforgalam import iter_train_mmlforgalam, train_mmlforgalam
from napari_galam.models.train_sed_cnn import train_sed_cnn
from napari_galam.models.training_loop import (
    TrainingProgress,
    TrainingResult,
    TrainingSettings,
    export_trained_models,
    regression_metrics,
)
from napari_galam.progress import run_to_end

FAST = dict(batch_size=16, patience=50, lr_m1=3e-3, lr_m2=3e-3, lr_m3=3e-3, lr_m4=3e-3)


# ------------------------------------------------------------------ splits (no TensorFlow)


def test_split_by_galaxy_is_8_1_1_deterministic_and_keeps_galaxies_whole():
    ids = np.repeat(np.arange(50), 4)  # 50 galaxies x 4 rows
    split = split_by_galaxy(ids, seed=3)
    again = split_by_galaxy(ids, seed=3)
    other = split_by_galaxy(ids, seed=4)
    for a, b in zip(
        (split.train, split.val, split.test), (again.train, again.val, again.test), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(split.test, other.test)
    assert split.sizes() == {"train": 160, "val": 20, "test": 20}
    groups = [set(ids[rows]) for rows in (split.train, split.val, split.test)]
    assert (
        not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    )
    assert np.array_equal(
        np.sort(np.concatenate([split.train, split.val, split.test])), np.arange(200)
    )


def test_set_a_spreads_every_galaxy_over_the_subsets():
    ids = np.repeat(np.arange(5), 40)
    split = split_spaxels_within_galaxies(ids, seed=0)
    for rows in (split.train, split.val, split.test):
        assert set(ids[rows]) == set(range(5))
    assert split.sizes() == {"train": 160, "val": 20, "test": 20}
    with pytest.raises(GalamInputError, match="fractions"):
        split_by_galaxy(ids, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(GalamInputError, match="3 galaxies"):
        split_by_galaxy(np.zeros(10))


def test_regression_metrics_follow_the_papers_definitions():
    true = np.array([[9.0, 0.0], [9.5, -0.5], [10.0, -1.0]])
    pred = true + np.array([[0.1, 0.0], [0.1, 0.2], [0.4, -0.2]])
    m = regression_metrics(pred, true)
    assert m["log_age"]["bias"] == pytest.approx(0.2)
    assert m["log_age"]["mse"] == pytest.approx((0.01 + 0.01 + 0.16) / 3)
    assert m["mh"]["mae"] == pytest.approx(0.4 / 3)
    assert m["log_age"]["sd"] == pytest.approx(np.std([0.1, 0.1, 0.4]))


def test_galaxy_arrays_check_lengths():
    arrays = make_toy_galaxies(10)
    arrays["mh"] = arrays["mh"][:5]
    with pytest.raises(GalamInputError, match="one row per galaxy"):
        GalaxyArrays(**arrays)


def test_held_out_rows_are_the_whole_test_split_and_never_trained_on():
    """Leave-one-family-out: flagged rows are the test split, the rest train and val 8:1."""
    from napari_galam.models.train_mmlforgalam import _usable_split
    from napari_galam.models.training_loop import TrainingSettings

    arrays = make_toy_galaxies(300)
    held_out = np.zeros(300, bool)
    held_out[::5] = True
    usable = np.ones(300, bool)
    usable[1::7] = False
    data = GalaxyArrays(**arrays, usable=usable, test_rows=held_out)
    split = _usable_split(data, TrainingSettings())
    np.testing.assert_array_equal(split.test, np.flatnonzero(held_out & usable))
    trained = np.concatenate([split.train, split.val])
    assert not np.isin(trained, np.flatnonzero(held_out)).any()
    np.testing.assert_array_equal(np.sort(trained), np.flatnonzero(~held_out & usable))
    assert split.train.size / split.val.size == pytest.approx(8.0, rel=0.1)
    with pytest.raises(GalamInputError, match="test_rows"):
        _usable_split(GalaxyArrays(**arrays, test_rows=np.zeros(300, bool)), TrainingSettings())
    with pytest.raises(GalamInputError, match="'test_rows' needs one flag"):
        GalaxyArrays(**arrays, test_rows=np.zeros(3, bool))


# ------------------------------------------------------------------ with TensorFlow


@pytest.mark.tensorflow
def test_dataset_from_hdf5_reads_the_documented_layout(toy_galaxy_h5):
    from napari_galam.core.preprocess import preprocess_images

    data = open_galaxy_hdf5(toy_galaxy_h5)
    assert len(data) == 160 and data.card == {"name": "toy", "seed": 0}
    rows = np.array([3, 7, 50, 51, 99], dtype=np.int64)
    ds = make_dataset(
        [(data.cutouts, lambda b: preprocess_images(b, size=16))],
        data.labels,
        rows,
        batch_size=2,
        shuffle=True,
        seed=1,
    )
    batches = list(ds.as_numpy_iterator())
    assert [x.shape for x, _ in batches] == [(2, 16, 16, 3), (2, 16, 16, 3), (1, 16, 16, 3)]
    seen = np.concatenate([y for _, y in batches])
    np.testing.assert_allclose(np.sort(seen[:, 0]), np.sort(data.labels[rows, 0]))


def test_label_balance_weights_flatten_the_training_labels():
    rng = np.random.default_rng(3)
    # A crowded middle (900 galaxies in one cell) and a sparse edge (100 in another).
    labels = np.concatenate(
        [
            np.column_stack([rng.uniform(9.50, 9.59, 900), rng.uniform(-0.29, -0.21, 900)]),
            np.column_stack([rng.uniform(10.11, 10.19, 100), rng.uniform(0.11, 0.19, 100)]),
        ]
    )
    rows = np.arange(1000)
    w = label_balance_weights(labels, rows, bin_dex=0.1, max_weight=10.0)
    assert w.dtype == np.float32 and w.shape == (1000,)
    np.testing.assert_allclose(w[:900], 1000 / (2 * 900), rtol=1e-6)
    np.testing.assert_allclose(w[900:], 1000 / (2 * 100), rtol=1e-6)
    # Both cells now carry the same total weight, and the mean stays 1.
    assert w[:900].sum() == pytest.approx(w[900:].sum())
    assert w.mean() == pytest.approx(1.0)
    # The cap holds; rows outside the split take their cell's training weight.
    capped = label_balance_weights(labels, rows, bin_dex=0.1, max_weight=2.0)
    assert capped.max() == pytest.approx(2.0)
    half = label_balance_weights(labels, np.arange(0, 1000, 2))
    assert half[1] == pytest.approx(half[0])
    with pytest.raises(GalamInputError, match="bin_dex"):
        label_balance_weights(labels, rows, bin_dex=0.0)


@pytest.mark.tensorflow
def test_weighted_dataset_yields_each_rows_weight(toy_galaxy_h5):
    data = open_galaxy_hdf5(toy_galaxy_h5)
    rows = np.array([3, 7, 50], dtype=np.int64)
    weights = np.arange(len(data), dtype=np.float32)
    ds = make_dataset(
        [(data.cutouts, None)], data.labels, rows, batch_size=2, shuffle=False, weights=weights
    )
    got = np.concatenate([w for _, _, w in ds.as_numpy_iterator()])
    np.testing.assert_array_equal(got, [3, 7, 50])
    with pytest.raises(GalamInputError, match="sample weights"):
        make_dataset(
            [(data.cutouts, None)],
            data.labels,
            rows,
            batch_size=2,
            shuffle=False,
            weights=weights[:5],
        )


@pytest.mark.tensorflow
def test_balanced_training_watches_the_weighted_validation_mse(tmp_path, toy_galaxy_h5):
    data = open_galaxy_hdf5(toy_galaxy_h5)
    settings = TrainingSettings(epochs=2, balance_labels=True, **FAST)
    result = train_mmlforgalam(data, tmp_path / "run", config=TINY, settings=settings)
    for stage in ("m1", "m2", "m3", "m4"):
        state = json.loads((tmp_path / "run" / stage / "state.json").read_text())
        assert all(np.isfinite(h["val_wmse"]) for h in state["history"]), stage
        assert state["best_val_loss"] == min(h["val_wmse"] for h in state["history"])
    assert result.settings["balance_labels"] is True
    assert np.isfinite(result.metrics["spectra-only"]["log_age"]["sd"])


@pytest.mark.tensorflow
def test_staged_training_lowers_the_loss_and_resumes(tmp_path, toy_galaxy_h5):
    data = open_galaxy_hdf5(toy_galaxy_h5)
    settings = TrainingSettings(epochs=3, **FAST)
    work = tmp_path / "run"

    # Interrupt during M3 (after M1 and M2 finished), as a crash or Ctrl-C would.
    seen = []
    for item in iter_train_mmlforgalam(data, work, config=TINY, settings=settings):
        seen.append(item)
        if isinstance(item, TrainingProgress) and item.stage == "m3" and item.epoch == 2:
            break
    assert [p.stage for p in seen[:3]] == ["m1"] * 3
    assert json.loads((work / "m3" / "state.json").read_text())["epoch"] == 2

    progress = []
    result = run_to_end(
        iter_train_mmlforgalam(data, work, config=TINY, settings=settings),
        on_progress=progress.append,
    )
    assert all(isinstance(p, TrainingProgress) for p in progress)
    assert [(p.stage, p.message) for p in progress if p.message] == [
        ("m1", "finished earlier; skipped"),
        ("m2", "finished earlier; skipped"),
        ("m3", "resumed after epoch 2"),
        ("m4", "started"),
    ]
    assert [p.epoch for p in progress if p.stage == "m3"] == [3]
    assert isinstance(result, TrainingResult)
    assert set(result.model_paths) == {"spectra-only", "image-only", "mmlforgalam"}
    assert result.split_sizes == {"train": 128, "val": 16, "test": 16}
    assert not result.settings["mixed_precision_used"]  # no GPU here

    # Each stage's loss went down from its first to its best epoch.
    for stage in ("m1", "m2", "m3", "m4"):
        history = json.loads((work / stage / "state.json").read_text())["history"]
        assert len(history) == 3
        assert min(h["loss"] for h in history[1:]) < history[0]["loss"], stage
    metrics = result.metrics
    assert {"spectra-only", "image-only", "mmlforgalam", "m4-real-m1-features"} <= set(metrics)
    assert np.isfinite(metrics["mmlforgalam"]["log_age"]["sd"])
    assert np.isfinite(metrics["m2_feature_r2_mean"])
    assert metrics["m2_feature_r2_weighted"] <= 1.0

    # A third run finds everything finished and trains nothing.
    third = list(iter_train_mmlforgalam(data, work, config=TINY, settings=settings))
    assert all(
        p.message == "finished earlier; skipped" for p in third if isinstance(p, TrainingProgress)
    )

    # The exported models go into a registry with cards and predict.
    from napari_galam.models.registry import available_models, load_model

    reg = tmp_path / "weights"
    export_trained_models(result, training_data={"name": "toy"}, directory=reg)
    assert available_models(reg) == ["image-only", "mmlforgalam", "spectra-only"]
    card = json.loads((reg / "mmlforgalam.json").read_text())
    assert card["training_data"]["split_sizes"]["train"] == 128
    assert card["metrics"]["log_age"]["n"] == 16
    assert load_model("mmlforgalam", directory=reg).output.shape[-1] == 2


@pytest.mark.tensorflow
def test_the_simulators_files_plug_in(tmp_path):
    """`galam simulate` output (cutouts and cubes) trains without conversion."""
    from napari_galam.simulate.datasets import simulate_dataset

    cutouts = tmp_path / "cutouts.h5"
    simulate_dataset(cutouts, kind="cutouts", n=30, seed=2)
    data = open_galaxy_hdf5(cutouts)
    assert data.cutouts.shape == (30, 128, 128, 3) and data.spectra.shape == (30, 4171)
    assert data.card["kind"] == "cutouts" and data.card["n"] == 30
    blended = np.flatnonzero(~data.usable)
    settings = TrainingSettings(epochs=1, batch_size=8)
    result = train_mmlforgalam(data, tmp_path / "mml", config=TINY, settings=settings)
    assert sum(result.split_sizes.values()) == 30 - blended.size
    assert set(result.model_paths) == {"spectra-only", "image-only", "mmlforgalam"}

    cubes = tmp_path / "cubes.h5"
    simulate_dataset(cubes, kind="cubes", n=3, seed=2, store_cubes=False)
    spaxels = open_spaxel_hdf5(cubes)
    assert spaxels.seds.ndim == 2 and set(np.unique(spaxels.galaxy_id)) == {0, 1, 2}
    assert np.all(np.isfinite(spaxels.log_age))
    sed = train_sed_cnn(spaxels, tmp_path / "sed", split="B", config=TINY, settings=settings)
    assert sed.configuration["sed_n_filters"] == spaxels.seds.shape[1]
    assert len(spaxels.filter_names) == spaxels.seds.shape[1]
    assert spaxels.filter_names[0].startswith("galam_jpas-J")
    export_trained_models(sed, training_data=spaxels.card, directory=tmp_path / "w")
    from napari_galam.models.registry import read_model_card

    card = read_model_card("sed-cnn", directory=tmp_path / "w")
    assert card["input"]["filters"] == list(spaxels.filter_names)
    assert sed.split_sizes["test"] > 0


@pytest.mark.tensorflow
def test_spectra_only_trains_in_the_rest_frame_and_says_so_in_its_card(tmp_path):
    """M1 alone on rest-frame spectra of a simulated file; the card names the frame."""
    import dataclasses

    from napari_galam.core.preprocess import N_REST_POINTS, rest_frame_spectrum
    from napari_galam.models.registry import read_model_card, spectrum_frame
    from napari_galam.simulate.datasets import simulate_dataset

    path = tmp_path / "cutouts.h5"
    simulate_dataset(path, kind="cutouts", n=24, seed=5)
    data = open_galaxy_hdf5(path, spectrum_frame="rest")
    assert data.spectra.shape == (24, N_REST_POINTS) and data.spectra.dtype == np.float32
    import h5py

    with h5py.File(path) as handle:
        wave = 10.0 ** handle["spectra/loglam"][()]
        flux, z = handle["spectra/loglam_flux"][3], float(handle["truth/redshift"][3])
    np.testing.assert_array_equal(data.spectra[3], rest_frame_spectrum(wave, flux, z))

    rest_tiny = dataclasses.replace(
        TINY, name="tiny-rest", n_spectrum_points=N_REST_POINTS, spectrum_frame="rest"
    )
    settings = TrainingSettings(epochs=1, batch_size=8)
    result = train_mmlforgalam(
        data, tmp_path / "m1", config=rest_tiny, settings=settings, spectra_only=True
    )
    assert set(result.model_paths) == {"spectra-only"}
    assert not (tmp_path / "m1" / "m2").exists()
    export_trained_models(result, training_data={"name": "toy"}, directory=tmp_path / "w")
    card = read_model_card("spectra-only", directory=tmp_path / "w")
    assert card["input"]["frame"] == "rest" and card["input"]["shape"] == [N_REST_POINTS]
    assert spectrum_frame(directory=tmp_path / "w") == "rest"
    with pytest.raises(GalamInputError, match="frame"):
        open_galaxy_hdf5(path, spectrum_frame="sideways")
