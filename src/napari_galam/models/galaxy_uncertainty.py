"""Uncertainties and out-of-distribution flags of the per-galaxy models (TensorFlow side).

The method is :mod:`napari_galam.models.uncertainty` (a variance head on the frozen
network's penultimate features, one variance-scaling factor per quantity so that 1 sigma
holds 68.27%, the half-width ``z95`` of the 95% interval in sigma, a Mahalanobis distance
in feature space); this module knows the per-galaxy networks:

- which layer is the penultimate one (:data:`FEATURE_LAYERS`; MMLforGalAM's is the last
  hidden layer of its fusion network M4) and a Keras model that returns the features and
  the network's own prediction in one pass (:func:`feature_model`), so the value a user
  sees is exactly the one without uncertainties;
- what else the head reads: for ``spectra-only`` the log of the spectrum's S/N estimated
  from the model input itself (:func:`~napari_galam.models.uncertainty.der_snr`), so a
  noisy spectrum gets a wider interval;
- the out-of-distribution reasons of an input (:func:`ood_reasons`);
- how a model is calibrated and its head shipped (:func:`calibrate_galaxy_model`), used by
  ``scripts/calibrate_galaxy_uncertainty.py`` on fresh simulated galaxies and by
  :mod:`napari_galam.models.train_mmlforgalam` on its validation split; and how a shipped
  head's 95% interval alone is calibrated, the head and its scales kept
  (:func:`calibrate_interval`, ``--interval-only`` of that script).

``z95`` is the 95% quantile of ``|error| / sigma`` on the calibration split, sigma already
scaled to hold 68.27% (split conformal at 95%,
:func:`~napari_galam.models.uncertainty.interval_factor`): the networks' errors are not
Gaussian in their tails (those of [M/H] from images are lighter: 1.96 sigma held about 97%),
and one scale cannot make both 1 and 1.96 sigma right.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.models.uncertainty import (
    NOMINAL_68,
    VarianceHead,
    coverage_by_bins,
    der_snr,
    fit_variance_head,
    interval_factor,
    variance_scale,
)

__all__ = [
    "FEATURE_LAYERS",
    "UNCERTAINTY_METHOD",
    "feature_model",
    "head_inputs",
    "ood_reasons",
    "spectrum_shape_problems",
    "calibrate_galaxy_model",
    "calibrate_interval",
    "interval_section",
]

#: The penultimate layer of each per-galaxy model (the input of its final Dense(2)).
FEATURE_LAYERS = {
    "spectra-only": "spectral_feature",
    "image-only": "image_feature",
    "mmlforgalam": "m4/last m4_dense*",
}

#: What the model cards say the method is.
UNCERTAINTY_METHOD = (
    "heteroscedastic variance head on the frozen network's penultimate features (one "
    "hidden ReLU layer of 32, Gaussian NLL around the network's own prediction, trained on "
    "simulated galaxies the network never saw), then one variance-scaling factor per "
    "quantity from a separate calibration split (68.27% quantile of |error|/sigma); the 95% "
    "interval is z95 sigma, z95 the 95% quantile of |error|/sigma on the same split with "
    "the scaled sigma (split conformal at 95%: the errors' tails are not Gaussian)"
)

#: Why this method (copied into the model cards; docs/galaxy_uncertainty.md says more).
UNCERTAINTY_WHY = (
    "keeps the published network and its predictions exactly; costs seconds to train and "
    "microseconds per galaxy on a CPU, where retraining with a likelihood loss or a deep "
    "ensemble would cost hours and multiply every click; the scaling on a split neither "
    "the network nor the head saw makes the intervals cover as claimed. See "
    "docs/galaxy_uncertainty.md"
)

#: Out-of-distribution distance: this percentile of the calibration galaxies.
DISTANCE_PERCENTILE = 99.5
#: A spectrum whose ends repeat one value over more than this many pixels (Å) is padded.
PADDED_EDGE_PIXELS = 100
#: A spectrum more than this share of whose pixels lie on straight lines was interpolated
#: over masked pixels.
INTERPOLATED_FRACTION = 0.5

_FEATURE_MODELS: dict[tuple[str, int], Any] = {}


def feature_model(name: str, model: Any) -> Any:
    """A Keras model: input -> ``concat(penultimate features, prediction)``, cached.

    Shares the layers (and weights) of ``model``; the last two output columns are the
    network's log age and [M/H], exactly as ``model`` gives them.
    """
    key = (name, id(model))
    if key in _FEATURE_MODELS:
        return _FEATURE_MODELS[key]
    import keras

    if name == "mmlforgalam":
        m4 = model.get_layer("m4")
        last = [layer.name for layer in m4.layers if layer.name.startswith("m4_dense")][-1]
        inner = keras.Model(
            m4.inputs,
            keras.layers.Concatenate(name="features_and_output")(
                [m4.get_layer(last).output, m4.output]
            ),
        )
        image = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="image")
        both = inner([model.get_layer("m2")(image), model.get_layer("m3_features")(image)])
        built = keras.Model(image, both, name=f"{name}_features")
    else:
        layer = model.get_layer(FEATURE_LAYERS[name])
        both = keras.layers.Concatenate(name="features_and_output")([layer.output, model.output])
        built = keras.Model(model.inputs, both, name=f"{name}_features")
    _FEATURE_MODELS[key] = built
    return built


def head_inputs(name: str, features: NDArray[Any], x: NDArray[Any]) -> NDArray[np.float64]:
    """What the variance head reads: the features, plus log10 S/N for spectra."""
    features = np.asarray(features, dtype=np.float64)
    if name != "spectra-only":
        return features
    snr = np.clip(np.nan_to_num(der_snr(x), nan=1.0, posinf=1e4), 0.1, 1e4)
    return np.column_stack([features, np.log10(snr)])


#: Wavelength bins of the coarse spectral shape whose distance from the training spectra
#: flags a spectrum (the network's features can miss a continuum no galaxy has).
SHAPE_BINS = 24


def spectral_shape(x: NDArray[Any]) -> NDArray[np.float64]:
    """The coarse shape of model-input spectra: the mean in :data:`SHAPE_BINS` bins, (n, 24)."""
    rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
    edges = np.linspace(0, rows.shape[1], SHAPE_BINS + 1).astype(int)
    return np.column_stack(
        [rows[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )


def shape_reference(x: NDArray[Any]) -> dict[str, Any]:
    """Mean and (shrunk) inverse covariance of the coarse shapes of training spectra."""
    shapes = spectral_shape(x)
    cov = np.cov(shapes, rowvar=False)
    cov = 0.95 * cov + 0.05 * np.diag(np.diag(cov)) + 1e-8 * np.eye(cov.shape[0])
    return {"mean": shapes.mean(axis=0).tolist(), "inverse_covariance": np.linalg.inv(cov).tolist()}


def shape_distance(x: NDArray[Any], reference: dict[str, Any]) -> NDArray[np.float64]:
    """Mahalanobis distance of each spectrum's coarse shape from :func:`shape_reference`."""
    d = spectral_shape(x) - np.asarray(reference["mean"], dtype=np.float64)
    inverse = np.asarray(reference["inverse_covariance"], dtype=np.float64)
    return np.sqrt(np.einsum("ij,jk,ik->i", d, inverse, d))


def spectrum_shape_problems(x: NDArray[Any]) -> list[str]:
    """Reasons in the shape of one model-input spectrum: padded ends, interpolated gaps."""
    reasons = []
    row = np.asarray(x, dtype=np.float64)
    for side, values in (("blue", row), ("red", row[::-1])):
        run = int(np.argmax(values != values[0])) if np.any(values != values[0]) else values.size
        if run > PADDED_EDGE_PIXELS:
            reasons.append(f"wavelength coverage missing at the {side} end ({run} Å padded)")
    if row.size > 4:
        straight = np.abs(row[2:] - 2 * row[1:-1] + row[:-2]) < 1e-7
        if np.mean(straight) > INTERPOLATED_FRACTION:
            reasons.append(
                f"mostly masked flux ({np.mean(straight):.0%} of the pixels interpolated)"
            )
    return reasons


def ood_reasons(
    name: str,
    x: NDArray[Any],
    distance: NDArray[Any],
    ood: dict[str, Any],
    *,
    raw: NDArray[Any] | None = None,
    redshift: Sequence[float] | None = None,
) -> list[list[str]]:
    """Why each input lies outside what model ``name`` was trained on (empty: it does not).

    Parameters
    ----------
    name : str
        The model.
    x : (n, ...) array
        Model inputs after preprocessing.
    distance : (n,) array
        Mahalanobis distances of their features (:meth:`VarianceHead.distance`).
    ood : dict
        The card's ``calibration.ood``: ``distance_threshold``, and for spectra
        ``snr_min`` (DER_SNR of the model input) and ``redshift`` (training range).
    raw : array, optional
        The spectra as given, before min-max (negative flux is judged there).
    redshift : sequence of float, optional
        The galaxies' redshifts, checked against ``ood["redshift"]``.
    """
    n = len(distance)
    reasons: list[list[str]] = [[] for _ in range(n)]
    threshold = float(ood.get("distance_threshold", np.inf))
    for i in np.flatnonzero(np.asarray(distance) > threshold):
        reasons[i].append(
            f"features unlike any training galaxy (distance {distance[i]:.1f} > {threshold:.1f})"
        )
    if name == "spectra-only":
        snr = der_snr(x)
        snr_min = float(ood.get("snr_min", 0.0))
        for i in np.flatnonzero(~(snr >= snr_min)):
            reasons[i].append(f"S/N {snr[i]:.1f} below the training range (>= {snr_min:.1f})")
        for i in range(n):
            reasons[i].extend(spectrum_shape_problems(x[i]))
        shape = ood.get("shape")
        if shape is not None:
            far = shape_distance(x, shape)
            limit = float(shape["max_distance"])
            for i in np.flatnonzero(far > limit):
                reasons[i].append(
                    f"spectral shape unlike any training galaxy (distance {far[i]:.1f} > {limit:.1f})"
                )
        if raw is not None:
            negative = np.mean(np.asarray(raw, dtype=np.float64) < 0, axis=1)
            for i in np.flatnonzero(negative > 0.2):
                reasons[i].append(f"negative flux in {negative[i]:.0%} of the pixels")
    z_range = ood.get("redshift")
    if redshift is not None and z_range is not None:
        for i, z in enumerate(np.asarray(redshift, dtype=np.float64)):
            if np.isfinite(z) and not z_range[0] <= z <= z_range[1]:
                reasons[i].append(
                    f"z = {z:.3g} outside the training redshifts {z_range[0]:g}-{z_range[1]:g}"
                )
    return reasons


#: Nominal levels of the reliability curve in the cards (and the plot in docs/).
RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6827, 0.7, 0.8, 0.9, 0.95, 0.99)


def reliability(error: NDArray[Any], sigma: NDArray[Any]) -> dict[str, list[float]]:
    """Observed share of truths inside the central Gaussian interval of each nominal level."""
    from scipy.special import erfinv

    ratio = np.abs(np.asarray(error, float)) / np.asarray(sigma, float)
    ratio = ratio[np.isfinite(ratio)]
    half_widths = np.sqrt(2.0) * erfinv(np.asarray(RELIABILITY_LEVELS))
    return {
        "nominal": list(RELIABILITY_LEVELS),
        "observed": [
            float(np.mean(ratio <= w)) if ratio.size else float("nan") for w in half_widths
        ],
    }


def _section(
    head: VarianceHead,
    head_file: str,
    sha256: str,
    splits: dict[str, Any],
    test_coverage: dict[str, Any],
    z95: Sequence[float],
) -> dict[str, Any]:
    """The card's ``calibration.uncertainty`` entry."""
    return {
        "method": UNCERTAINTY_METHOD,
        "why": UNCERTAINTY_WHY,
        **{
            q: {"scale": float(head.scale[k]), "z95": float(z95[k])}
            for k, q in enumerate(head.quantities)
        },
        "head": {"file": head_file, "sha256": sha256, "format": "numpy .npz, allow_pickle=False"},
        "nominal": {"within_68": NOMINAL_68, "within_95": 0.95},
        "splits": splits,
        "coverage": test_coverage,
    }


def _run_network(
    name: str, model: Any, x: NDArray[Any], batch_size: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(head inputs, the network's own prediction) of model inputs ``x``."""
    both = feature_model(name, model)
    out = np.concatenate(
        [
            np.asarray(both.predict_on_batch(np.asarray(x[i : i + batch_size], np.float32)))
            for i in range(0, len(x), batch_size)
        ]
    )
    return head_inputs(name, out[:, :-2], x), out[:, -2:].astype(np.float64)


def _coverage_table(
    quantities: Sequence[str],
    error: NDArray[np.float64],
    sigma: NDArray[np.float64],
    snr: NDArray[Any],
    snr_edges: Sequence[float],
    z95: Sequence[float],
) -> dict[str, Any]:
    """The card's ``coverage``: 68% and ``z95``-sigma coverage per quantity and S/N bin."""
    cover = {}
    for k, q in enumerate(quantities):
        cover[q] = coverage_by_bins(error[:, k], sigma[:, k], snr, snr_edges, z95=z95[k])
        cover[q]["median_sigma"] = float(np.median(sigma[:, k]))
        cover[q]["rms_error"] = float(np.sqrt(np.mean(error[:, k] ** 2)))
        cover[q]["reliability"] = reliability(error[:, k], sigma[:, k])
    return cover


def calibrate_interval(
    name: str,
    model: Any,
    head: VarianceHead,
    calibrate: tuple[NDArray[Any], NDArray[Any]],
    test: tuple[NDArray[Any], NDArray[Any], NDArray[Any]],
    *,
    snr_edges: Sequence[float],
    batch_size: int = 256,
) -> tuple[list[float], dict[str, Any]]:
    """The 95% half-width ``z95`` of a calibrated ``head`` and the test coverage with it.

    The head, its scales and its distance threshold are used as they are (nothing is
    refitted): ``z95`` per quantity is the 95% quantile of ``|error| / sigma`` on the
    ``calibrate`` split, as :func:`calibrate_galaxy_model` sets it; the coverage table is
    measured on ``test`` (inputs, truth, S/N) with it.

    Returns
    -------
    z95, coverage
        One factor per quantity of ``head`` and the card's ``coverage`` entry.
    """
    cal_features, cal_mean = _run_network(name, model, calibrate[0], batch_size)
    cal_error = cal_mean - np.asarray(calibrate[1], dtype=np.float64)
    cal_sigma = head.sigma(cal_features)
    z95 = [interval_factor(cal_error[:, k], cal_sigma[:, k]) for k in range(len(head.quantities))]
    test_features, test_mean = _run_network(name, model, test[0], batch_size)
    error = test_mean - np.asarray(test[1], dtype=np.float64)
    cover = _coverage_table(
        head.quantities, error, head.sigma(test_features), np.asarray(test[2]), snr_edges, z95
    )
    return z95, cover


def interval_section(
    section: dict[str, Any], z95: Sequence[float], test_coverage: dict[str, Any]
) -> dict[str, Any]:
    """A copy of a card's ``calibration.uncertainty`` with a new ``z95`` and coverage.

    Everything else (scales, head file and its SHA-256, splits) is kept; the method text
    becomes the current one, which names ``z95``.
    """
    entry = dict(section)
    entry["method"] = UNCERTAINTY_METHOD
    for k, q in enumerate(("log_age", "mh")):
        entry[q] = {**dict(entry[q]), "z95": float(z95[k])}
    entry["coverage"] = test_coverage
    return entry


def calibrate_galaxy_model(
    name: str,
    model: Any,
    fit: tuple[NDArray[Any], NDArray[Any]],
    calibrate: tuple[NDArray[Any], NDArray[Any]],
    test: tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None,
    *,
    snr_edges: Sequence[float],
    splits: dict[str, Any],
    redshift_range: tuple[float, float] | None,
    head_path: str | os.PathLike,
    batch_size: int = 256,
    seed: int = 0,
    steps: int = 3000,
) -> tuple[VarianceHead, dict[str, Any], dict[str, Any]]:
    """Fit, calibrate and save the variance head of one per-galaxy model.

    Parameters
    ----------
    name : str
        ``"spectra-only"``, ``"image-only"`` or ``"mmlforgalam"``.
    model : keras.Model
        The frozen network.
    fit, calibrate : (inputs, truth) pairs
        Preprocessed model inputs and ``(n, 2)`` true (log age, [M/H]): the head's
        training split and the variance-scaling split (never seen by the network).
    test : (inputs, truth, snr), optional
        The split the card's coverage is measured on (``snr`` for the S/N bins); without
        it the calibration split's coverage is recorded.
    snr_edges : sequence of float
        The S/N bins of the coverage table.
    splits : dict
        Seeds and sizes, copied into the card.
    redshift_range : (low, high), optional
        The training redshifts, for the OOD check of spectra.
    head_path : path
        Where the ``.npz`` goes.
    batch_size, seed, steps : int
        Batch size of the network; seed and Adam steps of the head
        (:func:`~napari_galam.models.uncertainty.fit_variance_head`).

    Returns
    -------
    head, uncertainty section, ood section
        The uncertainty section holds per quantity the ``scale`` and ``z95`` (half-width
        of the 95% interval in sigma, the 95% quantile of ``|error| / sigma`` on the
        calibration split once scaled); the sections still need the head's file name and
        SHA-256 in the registry (:func:`napari_galam.models.registry.install_uncertainty`).
    """

    def run(x: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return _run_network(name, model, x, batch_size)

    features, mean = run(fit[0])
    head = fit_variance_head(features, mean, fit[1], seed=seed, steps=steps)
    cal_features, cal_mean = run(calibrate[0])
    cal_sigma = head.sigma(cal_features)
    cal_error = cal_mean - np.asarray(calibrate[1], dtype=np.float64)
    scales = [variance_scale(cal_error[:, k], cal_sigma[:, k]) for k in range(2)]
    threshold = float(np.percentile(head.distance(cal_features), DISTANCE_PERCENTILE))
    head = head.with_calibration(scales, threshold)
    cal_sigma = head.sigma(cal_features)
    z95 = [interval_factor(cal_error[:, k], cal_sigma[:, k]) for k in range(2)]
    if test is not None:
        test_features, test_mean = run(test[0])
        error, snr = test_mean - np.asarray(test[1], dtype=np.float64), test[2]
    else:
        test_features, error = cal_features, cal_error
        snr = np.full(len(cal_error), np.nan)
    sigma = head.sigma(test_features)
    cover = _coverage_table(head.quantities, error, sigma, snr, snr_edges, z95)
    head.save(head_path)
    ood: dict[str, Any] = {
        "distance": "Mahalanobis distance of the head's inputs from its training galaxies "
        "(shrunk covariance)",
        "distance_threshold": threshold,
        "distance_percentile": DISTANCE_PERCENTILE,
    }
    if name == "spectra-only":
        snr_fit = der_snr(fit[0])
        ood["snr_min"] = float(np.percentile(snr_fit[np.isfinite(snr_fit)], 0.5))
        ood["snr_estimator"] = "DER_SNR of the model input (Stoehr et al. 2008)"
        reference = shape_reference(fit[0])
        limit = np.percentile(shape_distance(calibrate[0], reference), DISTANCE_PERCENTILE)
        ood["shape"] = {
            **reference,
            "max_distance": float(limit),
            "method": f"Mahalanobis distance of the input's mean in {SHAPE_BINS} wavelength "
            f"bins from the head's training spectra; limit: the {DISTANCE_PERCENTILE}th "
            "percentile of the calibration spectra",
        }
    if redshift_range is not None:
        ood["redshift"] = [float(redshift_range[0]), float(redshift_range[1])]
    section = _section(head, Path(head_path).name, "", splits, cover, z95)
    return head, section, ood
