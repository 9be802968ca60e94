"""The SED CNN's per-spaxel errors and out-of-distribution flags, without TensorFlow.

The shipped ``sed-cnn`` outputs, per spaxel, log age and [M/H] and a raw 1-sigma error of
each (a variance head trained with a Gaussian likelihood on frozen features, see
:mod:`napari_galam.models.train_sed_cnn`). Its model card holds what turns these into
calibrated numbers (``calibration.uncertainty``: one variance scale per quantity, fitted
on unseen cubes) and what says a spaxel lies outside the training data
(``calibration.ood``: the lowest S/N trained on and a Mahalanobis reference of the
normalised SEDs). The scale may vary with the SED's S/N (``by_snr_scale``: scales at S/N
nodes, interpolated linearly in log S/N). The 95% interval is ``z95`` of these calibrated
errors (``calibration.uncertainty.<quantity>.z95``, :func:`fit_interval_95`; read by
:func:`napari_galam.models.registry.interval_95`). This module reads those sections and
applies them; it is imported by
:func:`napari_galam.models.inference.predict_seds`, the maps pipeline and the evaluation,
and by nothing that needs TensorFlow.

Out-of-distribution reasons are bits of one small integer per spaxel (0: in range):
:data:`OOD_LOW_SNR`, :data:`OOD_SHAPE`, :data:`OOD_BAD_FLUX` and, for the spectral
model's maps, :data:`OOD_REDSHIFT`; :func:`describe_ood` spells them out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamError
from napari_galam.models.uncertainty import Z_95, group_coverage, interval_factor
from napari_galam.models.uncertainty import coverage as shared_coverage

__all__ = [
    "OOD_LOW_SNR",
    "OOD_SHAPE",
    "OOD_BAD_FLUX",
    "OOD_REDSHIFT",
    "OOD_REASONS",
    "ood_bits_note",
    "SPAXEL_SNR_BINS",
    "SedCalibration",
    "bad_flux_codes",
    "coverage",
    "coverage_by_snr",
    "describe_ood",
    "fit_interval_95",
    "fit_snr_curve",
    "fit_variance_scale",
    "low_snr_codes",
    "mahalanobis_squared",
    "sed_calibration",
    "shape_reference",
    "snr_windows",
]

#: S/N of the SED below the lowest S/N the model was trained on.
OOD_LOW_SNR = 1
#: SED shape unlike the training SEDs (Mahalanobis distance above the calibrated cut).
OOD_SHAPE = 2
#: Negative or mostly non-finite fluxes (no prediction where the SED is unusable).
OOD_BAD_FLUX = 4
#: A cube at a redshift its instrument's spectra were never trained at (``spaxel-spectra``:
#: the card's ``training_data.redshift_range`` per layout).
OOD_REDSHIFT = 8
#: Each reason bit in words.
OOD_REASONS: dict[int, str] = {
    OOD_LOW_SNR: "S/N below the training range",
    OOD_SHAPE: "SED shape unlike the training SEDs",
    OOD_BAD_FLUX: "negative or mostly non-finite flux",
    OOD_REDSHIFT: "redshift outside the training range of this instrument",
}
#: Bins of the SED's median S/N (over filters) for per-spaxel coverage.
SPAXEL_SNR_BINS: tuple[float, ...] = (3.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, np.inf)
#: Share of negative filter fluxes above which an SED counts as bad flux.
NEGATIVE_SHARE = 0.2


def describe_ood(code: int) -> str:
    """The reasons of one out-of-distribution code in words ("" for 0)."""
    return "; ".join(text for bit, text in OOD_REASONS.items() if int(code) & bit)


def ood_bits_note() -> str:
    """Every reason bit and its words, for the header of a map file."""
    return "OOD: " + ", ".join(f"{bit} {text}" for bit, text in OOD_REASONS.items())


@dataclass(frozen=True)
class SedCalibration:
    """What the SED model's card says about its errors and its training range.

    Attributes
    ----------
    scale
        ``{"log_age": s, "mh": s}``: multiply the network's raw 1-sigma errors by these.
    min_snr
        The lowest SED S/N of the training range (spaxels below are flagged).
    mean, precision
        Mean and inverse covariance of the training spaxels' normalised SEDs.
    max_distance2
        Squared Mahalanobis distance above which an SED's shape is flagged.
    snr_nodes, snr_scale
        Optional increasing, positive values of the SED's median S/N and the (log age,
        [M/H]) scales there, shape ``(n_nodes, 2)``, that replace ``scale``: interpolated
        linearly in log S/N between nodes and held at the end nodes' values beyond them.
        Spaxels of unknown or non-positive S/N keep ``scale``.
    """

    scale: dict[str, float]
    min_snr: float
    mean: NDArray[np.float64]
    precision: NDArray[np.float64]
    max_distance2: float
    snr_nodes: tuple[float, ...] = ()
    snr_scale: NDArray[np.float64] | None = None

    def scales(self, snr: Any = None, n: int | None = None) -> NDArray[np.float64]:
        """``(n, 2)`` factors for the raw (log age, [M/H]) errors of spaxels of S/N ``snr``.

        ``snr`` None (no variance): every row gets the overall ``scale`` (``n`` rows).
        """
        overall = np.array([self.scale["log_age"], self.scale["mh"]], dtype=np.float64)
        if snr is None:
            return np.tile(overall, (int(n or 0), 1))
        q = np.asarray(snr, dtype=np.float64).ravel()
        out = np.tile(overall, (q.size, 1))
        if self.snr_scale is None:
            return out
        with np.errstate(invalid="ignore"):
            known = np.isfinite(q) & (q > 0)
        log_q = np.log(q[known])
        log_nodes = np.log(np.asarray(self.snr_nodes, dtype=np.float64))
        for k in range(out.shape[1]):
            out[known, k] = np.interp(log_q, log_nodes, self.snr_scale[:, k])
        return out


def sed_calibration(card: dict[str, Any], name: str = "sed-cnn") -> SedCalibration:
    """Read ``calibration.uncertainty`` and ``calibration.ood`` of an SED model's card.

    Raises
    ------
    GalamError
        When the card has no such calibration or holds unusable numbers.
    """
    section = card.get("calibration", {})
    try:
        unc, ood = section["uncertainty"], section["ood"]
        scale = {key: float(unc[key]["scale"]) for key in ("log_age", "mh")}
        shape = ood["shape"]
        calibration = SedCalibration(
            scale=scale,
            min_snr=float(ood["min_snr"]),
            mean=np.asarray(shape["mean"], dtype=np.float64),
            precision=np.asarray(shape["precision"], dtype=np.float64),
            max_distance2=float(shape["max_distance2"]),
        )
    except (KeyError, TypeError, ValueError):
        raise GalamError(
            f"model card of {name}: no usable calibration.uncertainty / calibration.ood; "
            "run scripts/calibrate_sed_uncertainty.py"
        ) from None
    by_snr = unc.get("by_snr_scale")
    if by_snr is not None:
        calibration = replace(calibration, **_snr_curve(by_snr, name))
    n = calibration.mean.size
    if not all(np.isfinite(v) and v > 0 for v in scale.values()) or (
        calibration.precision.shape != (n, n)
    ):
        raise GalamError(f"model card of {name}: calibration.uncertainty holds unusable numbers")
    return calibration


def _snr_curve(by_snr: Any, name: str) -> dict[str, Any]:
    """``snr_nodes`` and ``snr_scale`` of a card's ``by_snr_scale``, checked."""
    try:
        nodes = np.array([float(v) for v in by_snr["snr"]], dtype=np.float64)
        table = np.column_stack([by_snr["log_age"], by_snr["mh"]]).astype(np.float64)
    except (KeyError, TypeError, ValueError):
        raise GalamError(
            f"model card of {name}: calibration.uncertainty.by_snr_scale is unreadable (it "
            "needs S/N nodes 'snr' and a log_age and mh scale at each; run "
            "scripts/calibrate_sed_uncertainty.py)"
        ) from None
    increasing = nodes.size > 0 and nodes[0] > 0 and bool(np.all(np.diff(nodes) > 0))
    if (
        not (increasing and np.all(np.isfinite(nodes)))
        or table.shape != (nodes.size, 2)
        or not np.all(np.isfinite(table) & (table > 0))
    ):
        raise GalamError(
            f"model card of {name}: calibration.uncertainty.by_snr_scale holds unusable "
            "numbers (expected increasing, positive, finite S/N nodes and a positive scale "
            "per node and quantity)"
        )
    return {"snr_nodes": tuple(nodes.tolist()), "snr_scale": table}


def shape_reference(normalised: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and precision (inverse covariance, lightly regularised) of normalised SEDs."""
    x = np.asarray(normalised, dtype=np.float64)
    mean = x.mean(axis=0)
    cov = np.cov(x, rowvar=False)
    cov += np.eye(cov.shape[0]) * 1e-6 * np.trace(cov) / cov.shape[0]
    return mean, np.linalg.inv(cov)


def mahalanobis_squared(
    normalised: NDArray[Any], mean: NDArray[Any], precision: NDArray[Any]
) -> NDArray[np.float64]:
    """Squared Mahalanobis distance of each normalised SED (last axis) from the reference."""
    d = np.asarray(normalised, dtype=np.float64) - mean
    return np.sum((d @ np.asarray(precision, dtype=np.float64)) * d, axis=-1)


def bad_flux_codes(seds: NDArray[Any]) -> NDArray[np.uint8]:
    """:data:`OOD_BAD_FLUX` where most fluxes are non-finite, the mean is not positive or
    more than a fifth of the finite fluxes are negative; 0 elsewhere."""
    data = np.asarray(seds, dtype=np.float64)
    finite = np.isfinite(data)
    n = data.shape[-1]
    n_finite = finite.sum(axis=-1)
    values = np.where(finite, data, 0.0)
    negative = (values < 0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=-1) / np.maximum(n_finite, 1)
    bad = (n_finite * 2 < n) | ~(mean > 0) | (negative > NEGATIVE_SHARE * np.maximum(n_finite, 1))
    return np.where(bad, OOD_BAD_FLUX, 0).astype(np.uint8)


def low_snr_codes(snr: Any, min_snr: float) -> NDArray[np.uint8]:
    """:data:`OOD_LOW_SNR` where a finite S/N is below ``min_snr``; 0 elsewhere (or no S/N)."""
    s = np.asarray(snr, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(s) & (s < min_snr), OOD_LOW_SNR, 0).astype(np.uint8)


def fit_variance_scale(residual: Any, sigma: Any, *, levels: str = "68+95") -> float:
    """One factor for ``sigma`` so that its intervals cover their share of truths.

    ``levels="68"``: the 68.27% quantile of ``|residual| / sigma``, so 1-sigma intervals
    hold 68%; the 95% interval then gets its own half-width (:func:`fit_interval_95`).
    ``levels="68+95"`` (how the scales were fitted while the 95% interval was 1.96 sigma):
    the factor minimising the larger of the two misses at 1 and 1.96 sigma, a compromise
    that left 1-sigma intervals about 2 points wide when the tails are heavy.
    """
    if levels not in ("68", "68+95"):
        raise GalamError(f"variance scale: levels must be '68' or '68+95', not {levels!r}")
    r = np.asarray(residual, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    good = np.isfinite(r) & np.isfinite(s) & (s > 0)
    z = np.abs(r[good] / s[good])
    if z.size == 0:
        raise GalamError("variance scale: no residual with a finite error")
    z68 = np.quantile(z, 0.6827)
    if levels == "68":
        return float(max(z68, 1e-6))
    grid = np.exp(np.linspace(np.log(0.2), np.log(5.0), 801))
    z95 = np.quantile(z, 0.9545) / 1.96
    misses = [
        max(abs(np.mean(z <= g) - 0.6827), abs(np.mean(z <= 1.96 * g) - 0.9545)) for g in grid
    ]
    best = float(grid[int(np.argmin(misses))])
    return best if np.isfinite(best) else float(max(z68, z95))


def snr_windows(
    snr: Any, *, lo: float = 3.0, ratio: float = 2.0, min_spaxels: int = 20000
) -> tuple[float, ...]:
    """Edges of S/N windows ``[edges[i], edges[i+1])`` for :func:`fit_snr_curve`.

    From ``lo`` up by a factor ``ratio`` each, the last one open (``inf``). A window with
    fewer than ``min_spaxels`` of the finite ``snr`` values joins its lower neighbour (the
    lowest joins the one above), from the top down, until every window has enough or one
    is left.
    """
    if not ratio > 1.0 or not lo > 0:
        raise GalamError(f"S/N windows: need lo > 0 and ratio > 1, got {lo} and {ratio}")
    q = np.asarray(snr, dtype=np.float64).ravel()
    q = np.sort(q[np.isfinite(q) & (q >= lo)])
    top = float(q[-1]) if q.size else lo
    edges = [float(lo)]
    while edges[-1] * ratio <= top:
        edges.append(edges[-1] * ratio)
    edges.append(np.inf)
    while len(edges) > 2:
        counts = np.diff(np.searchsorted(q, edges, side="left"))
        sparse = np.flatnonzero(counts < min_spaxels)
        if sparse.size == 0:
            break
        del edges[max(int(sparse[-1]), 1)]
    return tuple(edges)


def fit_snr_curve(
    residual: Any,
    sigma: Any,
    snr: Any,
    *,
    lo: float = 3.0,
    ratio: float = 2.0,
    min_spaxels: int = 20000,
    levels: str = "68+95",
) -> tuple[list[float], NDArray[np.float64]]:
    """Variance scales that vary smoothly with the SED's S/N, for ``by_snr_scale``.

    The spaxels with S/N >= ``lo`` are cut into :func:`snr_windows`; in each,
    :func:`fit_variance_scale` gives every quantity's factor, placed at the window's
    median S/N. :class:`SedCalibration` interpolates between these nodes linearly in
    log S/N, so a spaxel's factor follows its own S/N rather than the average of a wide
    bin (a population crowded at one end of a bin got that bin's mean factor).

    Parameters
    ----------
    residual, sigma
        ``(n, k)`` prediction - truth and raw 1-sigma errors of ``k`` quantities.
    snr
        ``(n,)`` S/N of each SED.
    lo, ratio, min_spaxels
        As in :func:`snr_windows`.
    levels
        As in :func:`fit_variance_scale`.

    Returns
    -------
    nodes : list of float
        Increasing median S/N of the windows.
    scales : ndarray
        ``(len(nodes), k)`` factors.
    """
    r = np.asarray(residual, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    r, s = r.reshape(r.shape[0], -1), s.reshape(s.shape[0], -1)
    q = np.asarray(snr, dtype=np.float64).ravel()
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(q) & (q >= lo)
    if not usable.any():
        raise GalamError(f"S/N curve: no spaxel with S/N >= {lo:g}")
    edges = snr_windows(q[usable], lo=lo, ratio=ratio, min_spaxels=min_spaxels)
    nodes, scales = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        window = usable & (q >= a) & (q < b)
        nodes.append(float(np.median(q[window])))
        scales.append(
            [fit_variance_scale(r[window, k], s[window, k], levels=levels) for k in range(r.shape[1])]
        )
    return nodes, np.asarray(scales, dtype=np.float64)


def fit_interval_95(residual: Any, sigma: Any) -> list[float]:
    """``z95`` of each quantity: the half-width of its 95% interval in calibrated sigmas.

    :func:`~napari_galam.models.uncertainty.interval_factor` of each column of the
    ``(n, k)`` calibration residuals and final errors (``sigma``: the raw errors times
    the factors of :meth:`SedCalibration.scales`, so the S/N curve is included). The
    variance scales bring 68% and 95% at 1.96 sigma both near nominal, a compromise for
    errors with heavier tails than a Gaussian; this factor lets the 95% interval hold on
    the same spaxels without moving the 1-sigma errors.
    """
    r = np.asarray(residual, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    r, s = r.reshape(r.shape[0], -1), s.reshape(s.shape[0], -1)
    if r.shape != s.shape:
        raise GalamError(f"z95: residuals {r.shape} and errors {s.shape} differ in shape")
    with np.errstate(invalid="ignore", divide="ignore"):
        usable = np.isfinite(r) & np.isfinite(s) & (s > 0)
    if not usable.any(axis=0).all():
        raise GalamError("z95: a quantity has no residual with a finite, positive error")
    return [interval_factor(r[usable[:, k], k], s[usable[:, k], k]) for k in range(r.shape[1])]


def coverage(residual: Any, sigma: Any, z95: float = Z_95) -> dict[str, float]:
    """:func:`napari_galam.models.uncertainty.coverage` and the median sigma."""
    r = np.asarray(residual, dtype=np.float64).ravel()
    s = np.asarray(sigma, dtype=np.float64).ravel()
    good = np.isfinite(r) & np.isfinite(s)
    median = float(np.median(s[good])) if good.any() else np.nan
    return {**shared_coverage(r, s, z95), "median_sigma": median}


def coverage_by_snr(
    residual: Any,
    sigma: Any,
    snr: Any,
    bins: tuple[float, ...] = SPAXEL_SNR_BINS,
    z95: float = Z_95,
    cubes: Any = None,
) -> dict[str, Any]:
    """:func:`coverage` overall and per S/N bin (``"lo-hi"`` keys); S/N NaN: overall only.

    The 95% interval is ``z95`` sigma (the card's, :func:`~napari_galam.models.registry.interval_95`).
    With ``cubes`` (each spaxel's cube), every entry adds
    :func:`~napari_galam.models.uncertainty.group_coverage`: how many cubes it holds, the
    1-sigma coverage with every cube counted once, and a 90% interval of the pooled
    coverage from resampling whole cubes.
    """
    r = np.asarray(residual, dtype=np.float64).ravel()
    s = np.asarray(sigma, dtype=np.float64).ravel()
    q = np.asarray(snr, dtype=np.float64).ravel() if snr is not None else np.full(r.size, np.nan)
    g = None if cubes is None else np.asarray(cubes).ravel()

    def cover(select: Any) -> dict[str, Any]:
        out = coverage(r[select], s[select], z95)
        return out if g is None else {**out, **group_coverage(r[select], s[select], g[select])}

    out: dict[str, Any] = {**cover(slice(None)), "by_snr": {}}
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        select = (q >= lo) & (q < hi)
        if select.any():
            label = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">={lo:g}"
            out["by_snr"][label] = cover(select)
    return out
