"""Calibrated uncertainties and an out-of-distribution distance for a frozen network.

The method (shared by the per-galaxy models and, if it wants, the per-spaxel model):

1. **Heteroscedastic head on frozen features.** The shipped network stays as it is; its
   penultimate features ``x`` (the layer before the final ``Dense(2)``) feed a small
   multilayer perceptron that predicts the log variance ``s_q(x)`` of each output ``q``
   (log age, [M/H]). It is trained with the Gaussian negative log-likelihood
   ``0.5 * (s + r**2 * exp(-s))`` of the residual ``r = truth - mean`` where ``mean`` is
   the frozen network's own prediction, so the value a user sees is exactly the
   network's, and the head only says how far off it tends to be for inputs like this one
   (Nix & Weigend 1994; Kendall & Gal 2017 call this aleatoric, heteroscedastic noise).
   It is trained on galaxies the network never saw (its training set would give
   over-confident residuals).
2. **Variance scaling.** On a separate calibration split, one factor per quantity
   multiplies the head's standard deviation so that ``|r| <= sigma`` holds for 68.27% of
   the galaxies (the empirical quantile of ``|r| / sigma``; Kuleshov et al. 2018 and
   Levi et al. 2022 scale the variance the same way). The 95% interval is
   ``z95 * sigma``, with ``z95`` the 95% quantile of ``|r| / sigma`` on the same split
   (split-conformal at that level, :func:`interval_factor`): 1.96 for Gaussian errors,
   more when the errors have heavier tails, less when lighter. The card stores it beside
   the scale; without one, 1.96.
3. **Feature-space distance.** The Mahalanobis distance of the features from the head's
   training galaxies (mean and a shrunk covariance, Lee et al. 2018 use the same score
   for out-of-distribution inputs); an input farther than the 99.5th percentile of the
   calibration galaxies is "unlike any training galaxy".

Everything here is numpy: the head is a handful of arrays saved with
:func:`numpy.savez` and read back with ``allow_pickle=False`` (no code runs on load), so
the model worker, the command line and tests use it without TensorFlow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamError

__all__ = [
    "NOMINAL_68",
    "Z_95",
    "VarianceHead",
    "fit_variance_head",
    "variance_scale",
    "interval_factor",
    "interval_95_factors",
    "coverage",
    "coverage_by_bins",
    "group_coverage",
    "der_snr",
]

#: Share of a Gaussian within one sigma.
NOMINAL_68 = 0.6826894921370859
#: Half-width of the central 95% of a Gaussian, in sigma.
Z_95 = 1.959963984540054
#: Log variances are kept within this range (a sigma between about 1e-4 and 150 dex).
_LOG_VARIANCE_RANGE = (-18.0, 10.0)


@dataclass(frozen=True)
class VarianceHead:
    """A trained variance head, its calibration factors and its feature distance.

    Attributes
    ----------
    quantities : tuple of str
        Output names, e.g. ``("log_age", "mh")``.
    feature_mean, feature_scale : (d,) arrays
        Standardisation of the input features.
    w1, b1, w2, b2 : arrays
        The MLP: ``s = relu(z @ w1 + b1) @ w2 + b2`` with ``z`` the standardised features.
    scale : (q,) array
        Variance-scaling factors (multiply the standard deviation); 1 before calibration.
    distance_mean : (d,) array
        Mean of the standardised training features.
    distance_precision : (d, d) array
        Inverse of their shrunk covariance.
    distance_threshold : float
        Distance above which an input is unlike the training galaxies (inf before
        calibration).
    """

    quantities: tuple[str, ...]
    feature_mean: NDArray[np.float64]
    feature_scale: NDArray[np.float64]
    w1: NDArray[np.float64]
    b1: NDArray[np.float64]
    w2: NDArray[np.float64]
    b2: NDArray[np.float64]
    scale: NDArray[np.float64]
    distance_mean: NDArray[np.float64]
    distance_precision: NDArray[np.float64]
    distance_threshold: float = float("inf")

    @property
    def n_features(self) -> int:
        """Width of the feature vector the head reads."""
        return int(self.feature_mean.size)

    def _standardise(self, features: Any) -> NDArray[np.float64]:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise GalamError(
                f"variance head: expected features of shape (n, {self.n_features}), got {x.shape}"
            )
        z = (x - self.feature_mean) / self.feature_scale
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)

    def log_variance(self, features: Any) -> NDArray[np.float64]:
        """The head's log variance per input and quantity, ``(n, q)``, before scaling."""
        z = self._standardise(features)
        hidden = np.maximum(z @ self.w1 + self.b1, 0.0)
        return np.clip(hidden @ self.w2 + self.b2, *_LOG_VARIANCE_RANGE)

    def sigma(self, features: Any) -> NDArray[np.float64]:
        """Calibrated 1-sigma errors ``(n, q)``: finite and positive for every input."""
        return np.exp(0.5 * self.log_variance(features)) * self.scale

    def distance(self, features: Any) -> NDArray[np.float64]:
        """Mahalanobis distance of each input's features from the training galaxies."""
        centred = self._standardise(features) - self.distance_mean
        squared = np.einsum("ij,jk,ik->i", centred, self.distance_precision, centred)
        return np.sqrt(np.maximum(squared, 0.0))

    def with_calibration(self, scale: Sequence[float], distance_threshold: float) -> VarianceHead:
        """A copy with the calibration split's scaling factors and distance threshold."""
        return replace(
            self,
            scale=np.asarray(scale, dtype=np.float64),
            distance_threshold=float(distance_threshold),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the head as a ``.npz`` of plain arrays (loads with ``allow_pickle=False``)."""
        target = Path(path)
        tmp = target.with_name(f".tmp-{target.name}")
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                quantities=np.asarray(json.dumps(list(self.quantities))),
                feature_mean=self.feature_mean,
                feature_scale=self.feature_scale,
                w1=self.w1.astype(np.float32),
                b1=self.b1.astype(np.float32),
                w2=self.w2.astype(np.float32),
                b2=self.b2.astype(np.float32),
                scale=self.scale,
                distance_mean=self.distance_mean.astype(np.float32),
                distance_precision=self.distance_precision.astype(np.float32),
                distance_threshold=np.asarray(self.distance_threshold),
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> VarianceHead:
        """Read a head written by :meth:`save`; :class:`GalamError` if it is not one."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                arrays = {key: saved[key] for key in saved.files}
            quantities = tuple(json.loads(str(arrays.pop("quantities"))))
            threshold = float(arrays.pop("distance_threshold"))
            head = cls(
                quantities=quantities,
                distance_threshold=threshold,
                **{key: np.asarray(value, dtype=np.float64) for key, value in arrays.items()},
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GalamError(f"{path} is not a napari-galam variance head: {exc}") from None
        if head.w2.shape[1] != len(quantities) or head.scale.shape != (len(quantities),):
            raise GalamError(f"{path}: the head's arrays do not fit its {len(quantities)} outputs")
        return head


def _shrunk_precision(z: NDArray[np.float64], shrinkage: float) -> NDArray[np.float64]:
    """Inverse of ``(1 - a) C + a * mean(diag C) * I`` for standardised features ``z``."""
    cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])
    target = float(np.mean(np.diag(cov))) or 1.0
    shrunk = (1.0 - shrinkage) * cov + shrinkage * target * np.eye(z.shape[1])
    return np.linalg.pinv(shrunk, hermitian=True)


def _nll_and_grads(
    params: list[NDArray[np.float64]], z: NDArray[np.float64], r2: NDArray[np.float64]
) -> tuple[float, list[NDArray[np.float64]]]:
    """Gaussian NLL (per galaxy and quantity, without constants) and its gradients."""
    w1, b1, w2, b2 = params
    pre = z @ w1 + b1
    hidden = np.maximum(pre, 0.0)
    s = hidden @ w2 + b2
    inv = np.exp(-np.clip(s, *_LOG_VARIANCE_RANGE))
    loss = float(np.mean(0.5 * (s + r2 * inv)))
    d_s = 0.5 * (1.0 - r2 * inv) / s.size
    d_hidden = (d_s @ w2.T) * (pre > 0)
    return loss, [z.T @ d_hidden, d_hidden.sum(0), hidden.T @ d_s, d_s.sum(0)]


def fit_variance_head(
    features: Any,
    mean: Any,
    truth: Any,
    *,
    quantities: Sequence[str] = ("log_age", "mh"),
    hidden: int = 32,
    steps: int = 3000,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-3,
    validation_fraction: float = 0.2,
    shrinkage: float = 0.1,
    seed: int = 0,
) -> VarianceHead:
    """Train a variance head on frozen features; the network's ``mean`` stays as it is.

    Parameters
    ----------
    features : (n, d) array
        Penultimate features of galaxies the network never saw (plus any extra columns
        the caller wants the head to read, e.g. a log S/N).
    mean, truth : (n, q) arrays
        The frozen network's prediction and the true values.
    quantities : sequence of str
        Names of the ``q`` outputs.
    hidden : int
        Width of the head's one hidden ReLU layer.
    steps, learning_rate, weight_decay : int, float, float
        Full-batch Adam steps, its step size, and an L2 penalty on the weights.
    validation_fraction : float
        Share of the galaxies held out to pick the step with the lowest NLL (early
        stopping).
    shrinkage : float
        Weight of the identity in the covariance of the feature distance.
    seed : int
        Initialisation and the held-out draw.

    Returns
    -------
    VarianceHead
        With ``scale = 1`` and no distance threshold: calibrate it with
        :func:`variance_scale` on another split (:meth:`VarianceHead.with_calibration`).
    """
    x = np.asarray(features, dtype=np.float64)
    residual = np.asarray(truth, dtype=np.float64) - np.asarray(mean, dtype=np.float64)
    n_q = len(quantities)
    if x.ndim != 2 or residual.shape != (x.shape[0], n_q) or x.shape[0] < 2:
        raise GalamError(
            f"fit_variance_head: features {x.shape} and residuals {residual.shape} do not "
            f"match (n >= 2 galaxies, {n_q} quantities)"
        )
    good = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(residual), axis=1)
    x, residual = x[good], residual[good]
    feature_mean = x.mean(0)
    feature_scale = x.std(0)
    feature_scale[feature_scale < 1e-6] = 1.0
    z = (x - feature_mean) / feature_scale
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(z))
    n_val = max(1, int(round(validation_fraction * len(z))))
    val, train = order[:n_val], order[n_val:]
    if len(z) < 10:  # too few to hold any out (tiny test runs): stop on the training NLL
        val = train = order
    r2 = residual**2
    start_log_var = np.log(np.maximum(r2[train].mean(0), 1e-8))
    params = [
        rng.normal(0.0, np.sqrt(2.0 / z.shape[1]), (z.shape[1], hidden)),
        np.zeros(hidden),
        rng.normal(0.0, 0.1 / np.sqrt(hidden), (hidden, n_q)),
        start_log_var,
    ]
    best = ([p.copy() for p in params], np.inf)
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    for step in range(1, steps + 1):
        _, grads = _nll_and_grads(params, z[train], r2[train])
        for k, (p, g) in enumerate(zip(params, grads, strict=True)):
            if k in (0, 2):
                g = g + weight_decay * p
            moments[k] = 0.9 * moments[k] + 0.1 * g
            squares[k] = 0.999 * squares[k] + 0.001 * g * g
            m_hat = moments[k] / (1 - 0.9**step)
            v_hat = squares[k] / (1 - 0.999**step)
            p -= learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
        if step % 10 == 0:
            val_loss, _ = _nll_and_grads(params, z[val], r2[val])
            if val_loss < best[1]:
                best = ([p.copy() for p in params], val_loss)
    w1, b1, w2, b2 = best[0]
    return VarianceHead(
        quantities=tuple(quantities),
        feature_mean=feature_mean,
        feature_scale=feature_scale,
        w1=w1,
        b1=b1,
        w2=w2,
        b2=b2,
        scale=np.ones(n_q),
        distance_mean=z.mean(0),
        distance_precision=_shrunk_precision(z, shrinkage),
    )


def variance_scale(error: Any, sigma: Any, *, target: float = NOMINAL_68) -> float:
    """The factor ``c`` such that ``|error| <= c * sigma`` for a share ``target`` of inputs.

    The empirical ``target`` quantile of ``|error| / sigma`` over the calibration split
    (finite pairs only); 1.0 when there are none.
    """
    ratio = np.abs(np.asarray(error, dtype=np.float64)) / np.asarray(sigma, dtype=np.float64)
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size == 0:
        return 1.0
    return float(max(np.quantile(ratio, target), 1e-6))


def interval_factor(error: Any, sigma: Any, *, level: float = 0.95) -> float:
    """Half-width ``z`` of the central ``level`` interval, in units of ``sigma``.

    The ``level`` quantile of ``|error| / sigma`` on a calibration split, with ``sigma``
    already scaled to hold 68.27% (:func:`variance_scale`): the interval ``value +- z *
    sigma`` then holds the truth for a share ``level`` of such inputs whatever the shape
    of the error distribution (split conformal at one level). Never below 1, so the 95%
    interval always contains the 1-sigma one; :data:`Z_95` when there is nothing to fit.
    """
    ratio = np.abs(np.asarray(error, dtype=np.float64)) / np.asarray(sigma, dtype=np.float64)
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size == 0:
        return Z_95
    return float(max(np.quantile(ratio, level), 1.0))


def interval_95_factors(entry: Any, where: str) -> NDArray[np.float64]:
    """``(z95 of log age, z95 of [M/H])`` of one calibration entry, checked.

    ``entry`` maps ``log_age`` and ``mh`` to dicts that may hold ``z95`` (written by the
    calibration scripts); a quantity without one gets :data:`Z_95` (Gaussian errors).

    Raises
    ------
    GalamError
        When a ``z95`` is not a finite number of at least 1 (the 95% interval contains
        the 1-sigma one; no upper bound: a poorly calibrated model may need a very wide
        one, and that is what its card should say); ``where`` names the card.
    """
    out = np.full(2, Z_95)
    for k, quantity in enumerate(("log_age", "mh")):
        value = entry.get(quantity) if isinstance(entry, dict) else None
        if not isinstance(value, dict) or "z95" not in value:
            continue
        try:
            out[k] = float(value["z95"])
        except (TypeError, ValueError):
            out[k] = np.nan
        if not (np.isfinite(out[k]) and out[k] >= 1.0):
            raise GalamError(
                f"{where}: {quantity}.z95 is {value['z95']!r}; expected the half-width of "
                "the 95% interval in sigma, a finite number of at least 1"
            )
    return out


def coverage(error: Any, sigma: Any, z95: Any = Z_95) -> dict[str, float]:
    """Share of ``|error|`` within ``sigma`` and ``z95 * sigma`` (nominal 68% / 95%), and n.

    ``z95`` is one number or one per element (inputs mapped with different calibrations).
    """
    error, sigma = np.asarray(error, float), np.asarray(sigma, float)
    z95 = np.broadcast_to(np.asarray(z95, float), error.shape)
    good = np.isfinite(error) & np.isfinite(sigma)
    if not good.any():
        return {"n": 0, "within_68": float("nan"), "within_95": float("nan")}
    error, sigma, z95 = np.abs(error[good]), sigma[good], z95[good]
    return {
        "n": int(good.sum()),
        "within_68": float(np.mean(error <= sigma)),
        "within_95": float(np.mean(error <= z95 * sigma)),
    }


def group_coverage(
    error: Any,
    sigma: Any,
    groups: Any,
    *,
    draws: int = 400,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """How well a 1-sigma coverage is known when its elements err in groups (spaxels of a cube).

    Spaxels of one cube share its galaxy's misreading, so a bin of a thousand spaxels from
    a few cubes is a few measurements, not a thousand. Returns ``groups`` (how many
    distinct groups the finite elements fall in), ``per_group_68`` (the mean over groups
    of each group's share within 1 sigma: every cube counts once) and ``interval_68``
    (the central ``level`` interval of the pooled share when whole groups are resampled
    with replacement, ``draws`` times, seeded: a cluster bootstrap).
    """
    error, sigma = np.asarray(error, float).ravel(), np.asarray(sigma, float).ravel()
    groups = np.asarray(groups).ravel()
    good = np.isfinite(error) & np.isfinite(sigma)
    if not good.any():
        return {"groups": 0, "per_group_68": float("nan"), "interval_68": [float("nan")] * 2}
    _, index = np.unique(groups[good], return_inverse=True)
    hits = np.bincount(index, weights=(np.abs(error[good]) <= sigma[good]).astype(float))
    sizes = np.bincount(index).astype(float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, sizes.size, size=(draws, sizes.size))
    pooled = hits[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    tail = 50.0 * (1.0 - level)
    return {
        "groups": int(sizes.size),
        "per_group_68": float(np.mean(hits / sizes)),
        "interval_68": [float(v) for v in np.percentile(pooled, [tail, 100.0 - tail])],
    }


def coverage_by_bins(
    error: Any,
    sigma: Any,
    values: Any,
    edges: Sequence[float],
    z95: Any = Z_95,
    groups: Any = None,
) -> dict[str, Any]:
    """:func:`coverage` overall and in bins ``[edges[i], edges[i+1])`` of ``values``.

    Returns ``{"within_68", "within_95", "n", "by_snr": {"[lo,hi)": coverage}}``; the
    key is ``by_snr`` because S/N is what the per-galaxy evaluation bins by. With
    ``groups`` (e.g. each spaxel's cube) every entry adds :func:`group_coverage`.
    """
    error, sigma, values = (np.asarray(a, float) for a in (error, sigma, values))
    z95 = np.broadcast_to(np.asarray(z95, float), error.shape)
    group = None if groups is None else np.asarray(groups).ravel()

    def cover(select: Any) -> dict[str, Any]:
        out: dict[str, Any] = dict(coverage(error[select], sigma[select], z95[select]))
        if group is not None and out["n"]:
            out.update(group_coverage(error[select], sigma[select], group[select]))
        return out

    result: dict[str, Any] = cover(np.ones(error.shape, bool))
    bins: dict[str, dict[str, Any]] = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        label = f"[{lo:g},{hi:g})" if np.isfinite(hi) else f"[{lo:g},inf)"
        bins[label] = cover((values >= lo) & (values < hi))
    result["by_snr"] = bins
    return result


def der_snr(flux: Any) -> NDArray[np.float64]:
    """S/N of each spectrum (rows of ``flux``) from the flux alone (DER_SNR).

    ``median(flux) / (1.482602 / sqrt(6) * median|2 f_i - f_(i-2) - f_(i+2)|)``, the
    estimator of Stoehr et al. (2008, ASP Conf. Ser. 394, 505). On resampled spectra the
    noise is correlated, so compare it only with values measured the same way.
    """
    f = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    signal = np.median(f, axis=1)
    second = np.abs(2.0 * f[:, 2:-2] - f[:, :-4] - f[:, 4:])
    noise = 1.482602 / np.sqrt(6.0) * np.median(second, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise > 0, signal / noise, np.inf)
    return np.where(np.isfinite(signal), snr, np.nan)
