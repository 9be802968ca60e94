"""Training of the per-spaxel SED CNNs (Liew-Cain et al. 2021): one for log age, one for [M/H].

The two networks train on Set A (:func:`~napari_galam.models.datasets.split_spaxels_within_galaxies`:
the spaxels of every galaxy spread over the three subsets, optimistic) or Set B
(:func:`~napari_galam.models.datasets.split_by_galaxy`: whole galaxies held out,
realistic), each as a checkpointed stage (:func:`~napari_galam.models.training_loop.iter_stage`),
and are saved side by side as ``final/sed-cnn.keras`` (output (batch, 2)).

Per-spaxel errors (:func:`build_sed_uncertainty_model`, :func:`iter_train_sed_uncertainty`):
a small variance head on the frozen networks' last hidden features (and a learned
roughness of the SED, which tells noisy SEDs from clean ones), trained with the Gaussian
negative log-likelihood while the means stay exactly as trained with MSE. The shipped
model then outputs (batch, 4): log age, [M/H] and their raw 1-sigma errors, which
``scripts/calibrate_sed_uncertainty.py`` calibrates on unseen cubes.

:func:`iter_train_sed_cnn` yields a
:class:`~napari_galam.models.training_loop.TrainingProgress` after every epoch and returns
a :class:`~napari_galam.models.training_loop.TrainingResult`; :func:`train_sed_cnn` runs
it to the end.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.preprocess import normalise_seds
from napari_galam.errors import GalamInputError
from napari_galam.models.architectures import (
    ArchitectureConfig,
    build_sed_cnn,
    combine_sed_cnns,
    get_config,
)
from napari_galam.models.datasets import (
    SpaxelArrays,
    SplitIndices,
    make_dataset,
    split_by_galaxy,
    split_spaxels_within_galaxies,
)
from napari_galam.models.training_loop import (
    TrainingResult,
    TrainingSettings,
    atomic_json,
    iter_stage,
    load_keras_model,
    predict_rows,
    regression_metrics,
    resolve_acceleration,
)
from napari_galam.progress import ProgressGenerator, run_to_end

__all__ = [
    "build_sed_uncertainty_model",
    "iter_train_sed_cnn",
    "iter_train_sed_uncertainty",
    "mean_sed_networks",
    "train_sed_cnn",
]


def _usable_spaxel_split(
    data: SpaxelArrays, split: str, opts: TrainingSettings
) -> tuple[SplitIndices, NDArray[np.float32]]:
    """Set A or Set B over the spaxels with a usable SED, and the normalised SEDs."""
    splitter = split_spaxels_within_galaxies if split == "A" else split_by_galaxy
    rows = splitter(data.galaxy_id, fractions=opts.fractions, seed=opts.seed)
    seds, valid = normalise_seds(np.asarray(data.seds))
    keep = np.flatnonzero(valid)
    rows = SplitIndices(*(np.intersect1d(r, keep) for r in (rows.train, rows.val, rows.test)))
    return rows, seds


def _iter_train_one_target(
    target: str,
    values: NDArray[np.float32],
    seds: NDArray[np.float32],
    rows: SplitIndices,
    root: Path,
    cfg: ArchitectureConfig,
    opts: TrainingSettings,
    *,
    mixed: bool,
    jit: bool,
) -> ProgressGenerator[Any]:
    """Train the SED CNN of one label (stage ``sed_<target>``); return its best model."""
    mean, std = float(values[rows.train].mean()), float(values[rows.train].std())
    name = f"sed_{target}"
    n_filters = seds.shape[1]
    yield from iter_stage(
        name,
        root,
        lambda: build_sed_cnn(
            cfg, n_filters=n_filters, target_mean=mean, target_std=std, name=name
        ),
        opts.lr_sed,
        lambda: make_dataset(
            [(seds, None)],
            values,
            rows.train,
            batch_size=opts.batch_size,
            shuffle=True,
            seed=opts.seed,
        ),
        lambda: make_dataset(
            [(seds, None)], values, rows.val, batch_size=opts.batch_size, shuffle=False
        ),
        opts,
        patience=opts.patience_sed,
        mixed=mixed,
        jit=jit,
    )
    return load_keras_model(root / name / "best.keras", compile=False)


def iter_train_sed_cnn(
    data: SpaxelArrays,
    workdir: str | os.PathLike,
    *,
    split: str = "B",
    config: ArchitectureConfig | str = "compact",
    settings: TrainingSettings | None = None,
) -> ProgressGenerator[TrainingResult]:
    """Train the age and the [M/H] SED CNNs on Set A or Set B; yield progress, return the result.

    Parameters
    ----------
    data : SpaxelArrays
    workdir : path
        Checkpoints (``sed_log_age/``, ``sed_mh/``) and ``final/sed-cnn.keras`` (the two
        networks side by side, output (batch, 2)).
    split : {"A", "B"}
        Set A: spaxels of each galaxy spread over the subsets; Set B: galaxies held out.
    config, settings
        As for :func:`~napari_galam.models.train_mmlforgalam.iter_train_mmlforgalam`; the
        SED CNN is the same in both configs.

    Yields
    ------
    TrainingProgress
        After every epoch of each of the two networks.

    Returns
    -------
    TrainingResult
        The path of ``sed-cnn``, split sizes and test-set metrics.
    """
    cfg = get_config(config)
    opts = settings or TrainingSettings()
    if split not in ("A", "B"):
        raise GalamInputError(
            f"SED CNN split must be 'A' (spaxels mixed) or 'B' (galaxies held out), got {split!r}"
        )
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    mixed, jit = resolve_acceleration(opts)
    rows, seds = _usable_spaxel_split(data, split, opts)
    n_filters = seds.shape[1]
    targets = {
        "log_age": np.asarray(data.log_age, np.float32)[:, None],
        "mh": np.asarray(data.mh, np.float32)[:, None],
    }
    models = {}
    for target, values in targets.items():
        models[target] = yield from _iter_train_one_target(
            target, values, seds, rows, root, cfg, opts, mixed=mixed, jit=jit
        )
    combined = combine_sed_cnns(models["log_age"], models["mh"])
    final = root / "final"
    final.mkdir(exist_ok=True)
    path = final / "sed-cnn.keras"
    combined.save(path)
    truth = np.concatenate([targets["log_age"], targets["mh"]], axis=1)[rows.test]
    metrics = {
        "sed-cnn": regression_metrics(predict_rows(combined, seds, rows.test, None, 4096), truth),
        "split": split,
    }
    atomic_json(root / "metrics.json", metrics)
    return TrainingResult(
        workdir=root,
        model_paths={"sed-cnn": path},
        split_sizes=rows.sizes(),
        metrics=metrics,
        configuration={
            **cfg.to_dict(),
            "sed_n_filters": n_filters,
            "sed_filters": list(data.filter_names),
        },
        settings={
            **dataclasses.asdict(opts),
            "mixed_precision_used": mixed,
            "jit_compile_used": jit,
        },
    )


def train_sed_cnn(
    data: SpaxelArrays,
    workdir: str | os.PathLike,
    *,
    split: str = "B",
    config: ArchitectureConfig | str = "compact",
    settings: TrainingSettings | None = None,
) -> TrainingResult:
    """Run :func:`iter_train_sed_cnn` to the end and return its result."""
    return run_to_end(
        iter_train_sed_cnn(data, workdir, split=split, config=config, settings=settings)
    )


# ------------------------------------------------------------------ per-spaxel errors


def mean_sed_networks(model: Any) -> tuple[Any, Any]:
    """The age and [M/H] networks inside a combined SED CNN (with or without errors)."""
    import keras

    nets = []
    for name in ("sed_log_age", "sed_mh"):
        names = {layer.name: layer for layer in model.layers}
        if name in names:
            nets.append(names[name])
        elif f"{name}_features" in names:  # a model with errors: its features' mean output
            features = names[f"{name}_features"]
            nets.append(keras.Model(features.inputs, features.outputs[1], name=name))
        else:
            raise GalamInputError(f"SED CNN: the model has no {name!r} network inside")
    return nets[0], nets[1]


def build_sed_uncertainty_model(
    mean_model: Any, *, hidden: int = 32, init_log_sigma: float = -2.5
) -> tuple[Any, Any]:
    """A variance head on the frozen age and [M/H] SED CNNs.

    Parameters
    ----------
    mean_model
        The combined SED CNN (:func:`~napari_galam.models.architectures.combine_sed_cnns`,
        or a model this function made): its two networks are reused and frozen.
    hidden
        Width of the head's hidden layer.
    init_log_sigma
        Starting log of the errors (about the networks' residual SD in dex).

    Returns
    -------
    training, shipped : keras.Model
        Both take normalised SEDs ``(batch, n_filters)``. ``training`` outputs
        ``(batch, 4)``: the two means and the two log errors (for
        :func:`gaussian_nll`); ``shipped`` outputs the means and the errors themselves.
    """
    import keras
    from keras import layers

    age_net, mh_net = mean_sed_networks(mean_model)
    n = int(age_net.inputs[0].shape[-1])
    sed = keras.Input(shape=(n,), name="sed")
    parts, means = [], []
    for net in (age_net, mh_net):
        net.trainable = False
        features = keras.Model(
            net.inputs,
            [net.get_layer("sed_dense").output, net.outputs[0]],
            name=f"{net.name}_features",
        )
        feature, mean = features(sed)
        parts.append(feature)
        means.append(mean)
    rough = layers.Reshape((n, 1), name="unc_channels")(sed)
    rough = layers.Conv1D(8, 3, activation="relu", name="unc_roughness")(rough)
    parts.append(layers.GlobalAveragePooling1D(name="unc_roughness_mean")(rough))
    x = layers.Concatenate(name="unc_features")(parts)
    x = layers.Dense(hidden, activation="relu", name="unc_dense")(x)
    log_sigma = layers.Dense(
        2,
        name="unc_log_sigma",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(init_log_sigma),
    )(x)
    mean_both = layers.Concatenate(name="log_age_mh", dtype="float32")(means)
    training = keras.Model(
        sed, layers.Concatenate(name="mean_log_sigma")([mean_both, log_sigma]), name="sed_cnn_nll"
    )
    sigma = layers.Activation("exponential", name="unc_sigma")(log_sigma)
    shipped = keras.Model(
        sed,
        layers.Concatenate(name="mean_sigma", dtype="float32")([mean_both, sigma]),
        name="sed_cnn",
    )
    return training, shipped


def gaussian_nll(y_true: Any, y_pred: Any) -> Any:
    """Gaussian negative log-likelihood (constant dropped) of (means, log errors) outputs."""
    import keras

    mean, log_sigma = y_pred[:, :2], keras.ops.clip(y_pred[:, 2:], -8.0, 3.0)
    z = (keras.ops.cast(y_true, "float32") - mean) * keras.ops.exp(-log_sigma)
    return keras.ops.mean(log_sigma + 0.5 * z * z, axis=-1)


def iter_train_sed_uncertainty(
    mean_model: Any,
    seds: NDArray[np.float32],
    labels: NDArray[np.float32],
    train: NDArray[np.intp],
    val: NDArray[np.intp],
    *,
    epochs: int = 30,
    batch_size: int = 1024,
    learning_rate: float = 2e-3,
    patience: int = 4,
) -> ProgressGenerator[Any]:
    """Train the variance head (:func:`build_sed_uncertainty_model`) with the Gaussian NLL.

    Parameters
    ----------
    mean_model
        The trained combined SED CNN (frozen here).
    seds, labels
        Normalised SEDs ``(n, n_filters)`` and (log age, [M/H]) ``(n, 2)``, of spaxels the
        mean networks never saw.
    train, val
        Rows for fitting and for early stopping (different galaxies).

    Yields
    ------
    TrainingProgress
        After every epoch (``loss`` and ``val_loss`` are NLLs).

    Returns
    -------
    keras.Model
        The shipped model (means and raw errors, output (batch, 4)) with the best
        validation weights.
    """
    import keras

    from napari_galam.models.training_loop import TrainingProgress

    training, shipped = build_sed_uncertainty_model(mean_model)
    training.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=gaussian_nll)
    x_train, y_train = seds[train], labels[train]
    x_val, y_val = seds[val], labels[val]
    best, best_weights, wait = np.inf, training.get_weights(), 0
    for epoch in range(epochs):
        history = training.fit(
            x_train, y_train, batch_size=batch_size, epochs=1, verbose=0,
            validation_data=(x_val, y_val), shuffle=True,
        )  # fmt: skip
        loss, val_loss = history.history["loss"][-1], history.history["val_loss"][-1]
        if val_loss < best - 1e-4:
            best, best_weights, wait = val_loss, training.get_weights(), 0
        else:
            wait += 1
        yield TrainingProgress("sed_uncertainty", epoch + 1, epochs, loss, val_loss, best)
        if wait >= patience:
            break
    training.set_weights(best_weights)
    return shipped
