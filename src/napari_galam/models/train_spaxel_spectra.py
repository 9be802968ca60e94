"""The per-spaxel spectral model ``spaxel-spectra``: network, loss, training, calibration.

Input: :mod:`napari_galam.core.spectral_input` (the rest-frame spectrum at the common
220 km/s resolution on 1172 log-lambda pixels, 3500-9000 A, and its weight channel).
Output: four numbers per spaxel, the standardised means of log age and [M/H] and their
log variances, trained with the Gaussian negative log-likelihood
``0.5 * (s + (y - mu)**2 * exp(-s))`` (Nix & Weigend 1994). After training, one factor
per quantity scales the standard deviation so that 68.27% of a separate calibration
split lies within 1 sigma (:func:`napari_galam.models.uncertainty.variance_scale`);
the card's ``calibration.uncertainty`` holds the factors and the coverage measured on
the test split, ``calibration.ood`` the training range (S/N, coverage) and the
Mahalanobis reference of the penultimate ("features") layer.

The network is small on purpose (132 k parameters, a 0.6 MB file) so that it trains on
a 2-core CPU in about 8 minutes and maps a MUSE cube at thousands of spaxels per second.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.spectral_input import COMMON_SIGMA_KMS, MIN_COVERAGE, MODEL_LOGLAM
from napari_galam.models.training_loop import TrainingProgress
from napari_galam.models.uncertainty import coverage, variance_scale
from napari_galam.progress import ProgressGenerator

__all__ = [
    "SPAXEL_SPECTRA_MODEL",
    "build_spaxel_spectra_model",
    "gaussian_nll",
    "iter_train_spaxel_spectra",
    "spaxel_spectra_input_spec",
    "fit_feature_reference",
    "robust_metrics",
    "calibration_sections",
]

#: Registry name of the per-spaxel spectral model.
SPAXEL_SPECTRA_MODEL = "spaxel-spectra"


def build_spaxel_spectra_model(n_pixels: int = MODEL_LOGLAM.size, *, seed: int = 0) -> Any:
    """The Keras network: five strided 1-D convolutions, a 64-unit feature layer, 4 outputs."""
    from napari_galam.models.tensorflow_runtime import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((n_pixels, 2), name="spectrum")
    x = inputs
    for filters, width in ((16, 7), (24, 5), (32, 5), (48, 3), (48, 3)):
        x = layers.Conv1D(filters, width, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu", name="features")(x)
    outputs = layers.Dense(4, name="mean_and_log_variance")(x)
    return keras.Model(inputs, outputs, name="spaxel_spectra")


def gaussian_nll(y_true: Any, y_pred: Any) -> Any:
    """Mean Gaussian negative log-likelihood of two targets: ``y_pred = (mu1, mu2, s1, s2)``."""
    import keras

    ops = keras.ops
    mean, log_var = y_pred[:, :2], ops.clip(y_pred[:, 2:], -12.0, 6.0)
    return ops.mean(0.5 * (log_var + ops.square(y_true - mean) * ops.exp(-log_var)))


def iter_train_spaxel_spectra(
    x_train: NDArray[np.floating],
    y_train: NDArray[np.floating],
    x_val: NDArray[np.floating],
    y_val: NDArray[np.floating],
    *,
    epochs: int = 20,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    max_seconds: float = 900.0,
    seed: int = 0,
) -> ProgressGenerator[Any]:
    """Train on standardised targets; yield a ``TrainingProgress`` per epoch; return the model.

    The learning rate decays on a cosine; the weights of the best validation loss are
    kept. Training stops early after ``max_seconds``.
    """
    import keras

    model = build_spaxel_spectra_model(x_train.shape[1], seed=seed)
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=gaussian_nll)
    best, best_weights, started = np.inf, model.get_weights(), time.monotonic()
    for epoch in range(epochs):
        history = model.fit(
            x_train, y_train, batch_size=batch_size, epochs=1, verbose=0,
            validation_data=(x_val, y_val), shuffle=True,
        )  # fmt: skip
        loss, val_loss = history.history["loss"][-1], history.history["val_loss"][-1]
        if val_loss < best:
            best, best_weights = val_loss, model.get_weights()
        yield TrainingProgress(
            "spaxel-spectra", epoch + 1, epochs, float(loss), float(val_loss), float(best)
        )
        if time.monotonic() - started > max_seconds:
            break
    clean = build_spaxel_spectra_model(x_train.shape[1], seed=seed)  # no optimizer state
    clean.set_weights(best_weights)
    return clean


def spaxel_spectra_input_spec() -> dict[str, Any]:
    """The ``input`` entry of the model card."""
    return {
        "kind": "spaxel-spectrum",
        "shape": [int(MODEL_LOGLAM.size), 2],
        "dtype": "float32",
        "loglam_start": float(MODEL_LOGLAM[0]),
        "loglam_step": float(MODEL_LOGLAM[1] - MODEL_LOGLAM[0]),
        "common_sigma_kms": COMMON_SIGMA_KMS,
        "min_coverage": MIN_COVERAGE,
        "raw_input": "observed spectrum per spaxel (any flux unit) with variance and mask, the "
        "cube's wavelengths, layout and redshift",
        "preprocessing": "napari_galam.core.spectral_input.spectral_inputs: rest frame, air; "
        f"Gaussian LSF topped up to sigma {COMMON_SIGMA_KMS:g} km/s; log-lambda grid "
        "3500-9000 A; / median flux in rest 5070-5950 A; channel 1 = covered share "
        "(0 off the range, on masked pixels and sky lines)",
    }


def fit_feature_reference(
    features: NDArray[np.floating], *, shrinkage: float = 0.05
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and shrunk precision matrix of training features (for a Mahalanobis distance)."""
    f = np.asarray(features, dtype=np.float64)
    mean = f.mean(axis=0)
    cov = np.cov(f - mean, rowvar=False)
    target = np.eye(cov.shape[0]) * max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    return mean, np.linalg.inv((1 - shrinkage) * cov + shrinkage * target)


def robust_metrics(truth: NDArray[np.floating], prediction: NDArray[np.floating]) -> dict[str, float]:
    """n, median bias and robust SD (1.4826 MAD) of ``prediction - truth`` (finite pairs)."""
    error = np.asarray(prediction, float) - np.asarray(truth, float)
    error = error[np.isfinite(error)]
    if error.size == 0:
        return {"n": 0, "bias": float("nan"), "robust_sd": float("nan")}
    bias = float(np.median(error))
    return {
        "n": int(error.size),
        "bias": bias,
        "robust_sd": float(1.4826 * np.median(np.abs(error - bias))),
    }


def calibration_sections(
    calibration: dict[str, NDArray[np.floating]],
    test: dict[str, NDArray[np.floating]],
    feature_reference: tuple[NDArray[np.float64], NDArray[np.float64], float],
    *,
    min_snr: float,
    splits: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``calibration.uncertainty`` and ``calibration.ood`` of the card.

    ``calibration`` and ``test`` hold ``error`` and ``sigma`` arrays ``(n, 2)`` (truth
    minus prediction; the network's own unscaled sigma).
    """
    scales = [variance_scale(calibration["error"][:, q], calibration["sigma"][:, q]) for q in (0, 1)]
    entry: dict[str, Any] = {
        "method": "Gaussian NLL mean and log-variance outputs; one variance-scaling factor per "
        "quantity so that 68.27% of the calibration split lies within 1 sigma",
        "splits": splits,
        "coverage": {},
    }
    for q, key in enumerate(("log_age", "mh")):
        entry[key] = {"scale": scales[q]}
        entry["coverage"][key] = coverage(test["error"][:, q], test["sigma"][:, q] * scales[q])
    mean, precision, max_distance2 = feature_reference
    ood = {
        "method": "bits: 1 = S/N per pixel below min_snr (the lowest of training); 2 = squared "
        "Mahalanobis distance of the 'features' layer from the training spaxels above "
        "max_distance2 (99.5th percentile of the calibration split); 4 = bad flux",
        "min_snr": float(min_snr),
        "min_coverage": MIN_COVERAGE,
        "features": {
            "layer": "features",
            "mean": [float(v) for v in mean],
            "precision": [[float(v) for v in row] for row in precision],
            "max_distance2": float(max_distance2),
            "percentile": 99.5,
        },
    }
    return entry, ood
