"""Evaluate the shipped models on unseen simulated galaxies, the way the papers compare.

Per galaxy (Wang et al. 2025, Sect. 4, Table 1): every cutout of a simulated dataset goes
through the same QA as at inference; the accepted galaxies are predicted by
MMLforGalAM, image-only and spectra-only, and the table gives MSE, MAE, bias and SD of
(prediction - truth) for log age and [M/H], overall and in the paper's S/N bins.

Per spaxel (Liew-Cain et al. 2021, Sects. 3.2-3.3): the SED CNN predicts every spaxel of
simulated cubes within ``max_radius`` R_e; the robust SD (1.4826 x MAD) of the residuals
and the error of radial gradients fitted on the predicted maps (100 bootstrap fits
within R_e, as in the Gradients dock) against the simulator's truth.

Real spectra (:func:`compare_real_spectra`): the spectra-only model against pPXF fits
with the same E-MILES library on the real SDSS spectra available offline (NGC 3073,
NGC 3522, NGC 4636), galaxy by galaxy.

The model is any callable: ``predict_galaxies(images=..., spectra=..., model=...)`` and
``predict_seds(seds, snr=...)``, in-process on the command line or the worker's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.models.uncertainty import coverage as interval_coverage

__all__ = [
    "REAL_AGREEMENT_DEX",
    "compare_real_spectra",
    "evaluate_galaxies",
    "evaluate_spaxels",
    "gradient_errors",
    "interval_coverage",
    "calibrate_gradient_model_sd",
    "CALIFA_RESOLUTION_PIX",
    "plot_predicted_vs_true",
    "residual_stats",
    "SNR_BINS",
]

#: The paper's S/N bins (Wang et al. 2025, Fig. 6): [5,10), [10,15), ..., [30, inf).
SNR_BINS = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0, np.inf)


def residual_stats(diff: Any) -> dict[str, float]:
    """MSE, MAE, bias, SD and robust SD of residuals (Wang et al. Eqs. 8-11)."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {
            "n": 0,
            "mse": np.nan,
            "mae": np.nan,
            "bias": np.nan,
            "sd": np.nan,
            "robust_sd": np.nan,
        }
    return {
        "n": int(d.size),
        "mse": float(np.mean(d**2)),
        "mae": float(np.mean(np.abs(d))),
        "bias": float(np.mean(d)),
        "sd": float(np.std(d)),
        "robust_sd": float(1.4826 * np.median(np.abs(d - np.median(d)))),
    }


#: What "agree" means for one real galaxy: |model - pPXF| in log age and [M/H] (dex).
#: About twice the models' SD on unseen simulated galaxies, and a few times the spread
#: between pPXF fits of one spectrum with and without regularisation.
REAL_AGREEMENT_DEX = {"log_age": 0.2, "mh": 0.15}


def _ppxf_row(name: str, spectrum: Any, reguls: Sequence[float]) -> dict[str, Any]:
    """The pPXF side of one galaxy: redshift, S/N and the fitted log age and [M/H] once per
    regularisation (the first without a suffix, the others ``_regul<R>``)."""
    from napari_galam.sps.reference_fit import fit_population

    good = spectrum.ivar > 0
    noise = np.full(spectrum.flux.shape, np.inf)
    noise[good] = 1.0 / np.sqrt(spectrum.ivar[good])
    redshift = spectrum.redshift if np.isfinite(spectrum.redshift) else 0.0
    row: dict[str, Any] = {
        "galaxy": name,
        "redshift": float(redshift),
        "snr": float(spectrum.snr_median),
    }
    for index, regul in enumerate(reguls):
        fit = fit_population(
            spectrum.wave,
            spectrum.flux,
            noise=noise,
            redshift=redshift,
            vacuum=True,
            regul=float(regul),
        )
        suffix = "" if index == 0 else f"_regul{regul:g}"
        row[f"ppxf_log_age{suffix}"] = fit.log_age
        row[f"ppxf_mh{suffix}"] = fit.mh
    return row


def _comparison_table(rows: list[dict[str, Any]], answer: Any) -> Any:
    """pPXF rows beside the model's answer: differences, agreement, columns in order."""
    from astropy.table import Table

    table = Table(rows=rows)
    table["model_log_age"] = np.asarray(answer.log_age, float)
    table["model_mh"] = np.asarray(answer.mh, float)
    table["d_log_age"] = table["model_log_age"] - table["ppxf_log_age"]
    table["d_mh"] = table["model_mh"] - table["ppxf_mh"]
    table["agrees"] = (np.abs(table["d_log_age"]) <= REAL_AGREEMENT_DEX["log_age"]) & (
        np.abs(table["d_mh"]) <= REAL_AGREEMENT_DEX["mh"]
    )
    order = ["galaxy", "redshift", "snr", "model_log_age", "ppxf_log_age", "d_log_age"]
    order += ["model_mh", "ppxf_mh", "d_mh"]
    order += [c for c in table.colnames if c not in order]
    table = table[order]
    table.meta["agreement_dex"] = dict(REAL_AGREEMENT_DEX)
    return table


def compare_real_spectra(
    predict_galaxies: Callable[..., Any],
    *,
    spectra: dict[str, str | os.PathLike] | None = None,
    reguls: Sequence[float] = (0.0, 100.0),
) -> Any:
    """The spectra-only model against pPXF on real SDSS spectra, one row per galaxy.

    Each spectrum is read as the predict dock and ``galam predict`` read it (pixels with
    ``ivar > 0``, observed frame, 1 A grid, min-max) and fitted by
    :func:`napari_galam.sps.reference_fit.fit_population` with its errors, in vacuum,
    emission lines masked, a multiplicative polynomial of degree 10, once per
    regularisation in ``reguls`` (the first is the reference; the spread between them is
    pPXF's own systematic).

    Parameters
    ----------
    predict_galaxies
        ``predict_galaxies(spectra=..., model="spectra-only")``.
    spectra
        ``{name: path}``; default :func:`napari_galam.io.spectra.real_sdss_spectra`.
    reguls
        pPXF regularisation strengths.

    Returns
    -------
    astropy.table.Table
        ``galaxy, redshift, snr, model_log_age, model_mh, ppxf_log_age, ppxf_mh``,
        ``ppxf_log_age_regul<R>``/``ppxf_mh_regul<R>`` for the other regularisations,
        ``d_log_age, d_mh`` (model - pPXF) and ``agrees`` (within
        :data:`REAL_AGREEMENT_DEX`).
    """
    from napari_galam.core.preprocess import model_spectrum
    from napari_galam.io.spectra import read_sdss_spectrum, real_sdss_spectra
    from napari_galam.models.registry import spectrum_frame

    paths = real_sdss_spectra() if spectra is None else {k: Path(v) for k, v in spectra.items()}
    if not paths:
        raise GalamInputError("no real SDSS spectra found (pPXF's spectra/ folder is missing)")
    rows, inputs = [], []
    frame = spectrum_frame()
    for name, path in paths.items():
        spectrum = read_sdss_spectrum(path)
        good = spectrum.ivar > 0
        inputs.append(
            model_spectrum(
                spectrum.wave[good], spectrum.flux[good], redshift=spectrum.redshift, frame=frame
            )
        )
        rows.append(_ppxf_row(name, spectrum, reguls))
    answer = predict_galaxies(spectra=np.stack(inputs), model="spectra-only")
    return _comparison_table(rows, answer)


def _accepted_by_qa(images: Any) -> tuple[NDArray[np.intp], NDArray[Any], dict[str, int]]:
    """Indices of the cutouts the QA accepts, their model inputs (stacked; empty when
    none) and the count of each QA status, as at inference."""
    from napari_galam.pipeline.qa import assess_galaxy

    inputs, keep, statuses = [], [], {}
    for i in range(len(images)):
        qa = assess_galaxy(images[i])
        statuses[qa.status] = statuses.get(qa.status, 0) + 1
        if qa.status == "accepted":
            inputs.append(qa.model_input)
            keep.append(i)
    stacked = np.stack(inputs) if inputs else np.empty((0,))
    return np.asarray(keep, dtype=np.intp), stacked, statuses


def _snr_bins(snr: NDArray[Any]) -> list[tuple[str, NDArray[np.bool_]]]:
    """``("all", everything)`` then each of :data:`SNR_BINS` as ``("[lo,hi)", selection)``."""
    bins = [("all", np.ones(snr.size, bool))]
    for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:], strict=True):
        label = f"[{lo:g},{hi:g})" if np.isfinite(hi) else f"[{lo:g},inf)"
        bins.append((label, (snr >= lo) & (snr < hi)))
    return bins


def evaluate_galaxies(
    path: str | os.PathLike,
    predict_galaxies: Callable[..., Any],
    *,
    models: Sequence[str] = ("mmlforgalam", "image-only", "spectra-only"),
    limit: int | None = None,
) -> Any:
    """Per-galaxy metrics of each model on a ``galam simulate --kind cutouts`` file.

    Returns an astropy Table: one row per (model, S/N bin incl. "all"), with the
    statistics of log age and [M/H] residuals, the coverage of the models' 1-sigma errors
    (``age_within_68``, ``age_within_95``, ``mh_within_68``, ``mh_within_95``: the share
    of truths within 1 sigma and within the model's 95% interval, ``z95`` sigma from its
    card, :func:`~napari_galam.models.registry.interval_95`), the median error and the share of predictions
    flagged out of distribution; ``meta`` holds the QA counts and
    ``meta["predictions"]`` each model's (true, predicted) arrays for plots.
    """
    import h5py
    from astropy.table import Table

    from napari_galam.core.preprocess import preprocess_spectra
    from napari_galam.models.datasets import dataset_spectra
    from napari_galam.models.registry import interval_95, spectrum_frame

    frame = spectrum_frame() if "spectra-only" in models else "observed"

    with h5py.File(path, "r") as handle:
        if "images/rgb" not in handle:
            raise GalamInputError(f"{path}: not a simulated cutout dataset (no images/rgb).")
        n = (
            handle["labels/log_age"].shape[0]
            if limit is None
            else min(limit, handle["labels/log_age"].shape[0])
        )
        images = handle["images/rgb"][:n]
        spectra = dataset_spectra(handle, frame, path, n=n)
        log_age = handle["labels/log_age"][:n].astype(float)
        mh = handle["labels/mh"][:n].astype(float)
        snr = handle["truth/snr"][:n].astype(float) if "truth/snr" in handle else np.full(n, np.nan)
    keep, images_in, statuses = _accepted_by_qa(images)
    if not keep.size:
        raise GalamInputError(f"{path}: the QA accepted none of the {n} cutouts.")
    spectra_in = preprocess_spectra(spectra[keep], frame=frame)
    rows = []
    predictions: dict[str, dict[str, Any]] = {}
    for model in models:
        kwargs = {"spectra": spectra_in} if model == "spectra-only" else {"images": images_in}
        answer = predict_galaxies(model=model, **kwargs)
        d_age = np.asarray(answer.log_age, float) - log_age[keep]
        d_mh = np.asarray(answer.mh, float) - mh[keep]
        predictions[model] = {
            "true_log_age": log_age[keep],
            "pred_log_age": np.asarray(answer.log_age, float),
            "true_mh": mh[keep],
            "pred_mh": np.asarray(answer.mh, float),
        }
        errors = {
            key: np.asarray(getattr(answer, f"{key}_err", np.full(len(keep), np.nan)), float)
            for key in ("log_age", "mh")
        }
        flagged = np.asarray(getattr(answer, "ood", np.zeros(len(keep), bool)), bool)
        z95 = dict(zip(("log_age", "mh"), interval_95(model), strict=True))
        for label, select in _snr_bins(snr[keep]):
            age, metal = residual_stats(d_age[select]), residual_stats(d_mh[select])
            cover = {
                prefix: interval_coverage(diff[select], errors[key][select], z95[key])
                for prefix, key, diff in (("age", "log_age", d_age), ("mh", "mh", d_mh))
            }
            rows.append(
                {
                    "model": model,
                    "snr_bin": label,
                    "n": age["n"],
                    **{f"age_{k}": v for k, v in age.items() if k != "n"},
                    **{f"mh_{k}": v for k, v in metal.items() if k != "n"},
                    **{
                        f"{prefix}_{k}": c[k]
                        for prefix, c in cover.items()
                        for k in ("within_68", "within_95")
                    },
                    **{
                        f"{prefix}_median_err": float(np.median(errors[key][select]))
                        if select.any()
                        else np.nan
                        for prefix, key in (("age", "log_age"), ("mh", "mh"))
                    },
                    "ood_fraction": float(np.mean(flagged[select])) if select.any() else np.nan,
                }
            )
    table = Table(rows=rows)
    table.meta.update({"dataset": str(path), "galaxies": int(n), "qa_statuses": statuses})
    table.meta["predictions"] = predictions
    return table


def plot_predicted_vs_true(table: Any, path: str | os.PathLike) -> None:
    """Predicted against true log age and [M/H] per model (like Wang et al. 2025, Fig. 12)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictions = table.meta["predictions"]
    fig, axes = plt.subplots(
        2, len(predictions), figsize=(4 * len(predictions), 7.5), squeeze=False
    )
    for column, (model, values) in enumerate(predictions.items()):
        for row, (key, label, span) in enumerate(
            (("log_age", "log age [yr]", (7.8, 10.4)), ("mh", "[M/H] [dex]", (-1.6, 0.4)))
        ):
            ax = axes[row, column]
            true, pred = values[f"true_{key}"], values[f"pred_{key}"]
            ax.plot(true, pred, ".", ms=3, alpha=0.5, color="C0")
            ax.plot(span, span, "k-", lw=0.8)
            stats = residual_stats(pred - true)
            ax.set_title(f"{model}: SD {stats['sd']:.3f}, bias {stats['bias']:+.3f}", fontsize=9)
            ax.set_xlabel(f"true {label}")
            ax.set_ylabel(f"predicted {label}")
            ax.set_xlim(span)
            ax.set_ylim(span)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: CALIFA's nominal PSF FWHM (about 2.5") on its 1" spaxels, in spaxels: the resolution
#: of the simulated CALIFA-like cubes (their PSF is drawn in 2.2-2.8",
#: ``simulate/datasets.py``), as a user would give it for a real cube.
CALIFA_RESOLUTION_PIX = 2.5

_QUANTITIES = (("log_age", "observed_gradient_log_age"), ("mh", "observed_gradient_mh"))


def _read_cube_dataset(path: str | os.PathLike) -> dict[str, NDArray[Any]]:
    import h5py

    with h5py.File(path, "r") as handle:
        if "seds/flux" not in handle:
            raise GalamInputError(f"{path}: not a simulated cube dataset (no seds/flux).")
        data = {
            "seds": handle["seds/flux"][()],
            "log_age": handle["maps/log_age"][()],
            "mh": handle["maps/mh"][()],
            "radius": handle["maps/r_over_re"][()],
        }
        for key, name in _QUANTITIES:
            data[f"true_gradient_{key}"] = handle[f"gradients/{name}"][()]
        if "seds/snr" in handle:  # datasets made before it have no per-spaxel S/N
            data["snr"] = handle["seds/snr"][()]
    return data


def gradient_errors(
    radius: NDArray[Any],
    predicted: dict[str, NDArray[Any]],
    true_gradients: dict[str, NDArray[Any]],
    *,
    psf_fwhm_pix: float = CALIFA_RESOLUTION_PIX,
    model_sd: dict[str, float] | None = None,
    max_radius: float = 2.0,
    min_points: int = 25,
    spaxel_errors: dict[str, NDArray[Any]] | None = None,
) -> dict[str, dict[str, NDArray[np.float64]]]:
    """Each cube's gradient error against the truth, and the errors the fit quotes.

    Parameters
    ----------
    radius
        ``(n, ny, nx)`` deprojected R/R_e maps.
    predicted, true_gradients
        ``{"log_age": ..., "mh": ...}``: ``(n, ny, nx)`` predicted maps and ``(n,)``
        true gradients (dex/R_e).
    psf_fwhm_pix
        The PSF FWHM in pixels, for the independent elements (:func:`resolution_elements`).
    model_sd
        The model's own gradient errors (``{"log_age": sd, "mh": sd}``), or None for 0.
    spaxel_errors
        ``{"log_age": ..., "mh": ...}``: ``(n, ny, nx)`` per-spaxel 1-sigma errors that the
        bootstrap draws from (as the Gradients dock does with a map's errors), or None.

    Returns
    -------
    dict
        Per quantity: ``error`` (fitted - true slope), ``quoted`` (the fit's 1-sigma
        error), ``stat`` (its statistical part) and ``paper_sd`` (the paper's subsample
        SD), one value per cube that passed the selection.
    """
    from napari_galam.core.gradients import bootstrap_gradient, resolution_elements

    elements = resolution_elements(radius.shape[1:], psf_fwhm_pix)
    out: dict[str, dict[str, list[float]]] = {
        key: {"error": [], "quoted": [], "stat": [], "paper_sd": []} for key, _ in _QUANTITIES
    }
    for k in range(radius.shape[0]):
        r = np.where(radius[k] <= max_radius, radius[k], np.nan)
        fits = {
            key: bootstrap_gradient(
                r, predicted[key][k], seed=k, min_points=min_points, elements=elements,
                model_sd=(model_sd or {}).get(key, 0.0),
                errors=None if spaxel_errors is None else spaxel_errors[key][k],
            )  # fmt: skip
            for key, _ in _QUANTITIES
        }
        if not all(fit.ok for fit in fits.values()):
            continue
        for key, fit in fits.items():
            out[key]["error"].append(fit.slope - float(true_gradients[key][k]))
            out[key]["quoted"].append(fit.slope_err)
            out[key]["stat"].append(fit.slope_err_stat)
            out[key]["paper_sd"].append(fit.slope_sd)
    return {key: {n: np.asarray(v, float) for n, v in d.items()} for key, d in out.items()}


def calibrate_gradient_model_sd(errors: dict[str, dict[str, NDArray[Any]]]) -> dict[str, float]:
    """The model's own gradient error: what the statistical error leaves unexplained.

    Per quantity, the ``m`` for which ``hypot(stat, m)`` holds the true slope of the
    calibration cubes (cubes the model never saw, kept apart from the test set that
    checks coverage) closest to 68.27% and 95.45% of the time (the smaller of the two
    misses, on a grid from 0 to three times the RMS error). Slope errors have wider tails
    than a Gaussian, so matching the mean square instead (``mean(error**2) -
    mean(stat**2)``) let a few badly read cubes set the error of all the others.
    """
    out = {}
    for key, d in errors.items():
        error = np.abs(np.asarray(d["error"], dtype=np.float64))
        stat = np.asarray(d["stat"], dtype=np.float64)
        good = np.isfinite(error) & np.isfinite(stat)
        error, stat = error[good], stat[good]
        if error.size == 0:
            raise GalamInputError(f"gradient calibration: no cube with a {key} slope")
        grid = np.linspace(0.0, 3.0 * float(np.sqrt(np.mean(error**2))), 601)
        misses = []
        for m in grid:
            quoted = np.hypot(stat, m)
            misses.append(
                max(
                    abs(np.mean(error <= quoted) - 0.6827),
                    abs(np.mean(error <= 1.96 * quoted) - 0.9545),
                )
            )
        out[key] = float(grid[int(np.argmin(misses))])
    return out


#: The SED S/N from which the per-spaxel targets are judged (``snr_at_least_10``).
MIN_SNR_FOR_TARGETS = 10.0


def evaluate_spaxels(
    path: str | os.PathLike,
    predict_seds: Callable[[Any], Any],
    *,
    max_radius: float = 2.0,
    min_points: int = 25,
    model_sd: dict[str, float] | None = None,
    psf_fwhm_pix: float = CALIFA_RESOLUTION_PIX,
    min_map_snr: float = 3.0,
) -> dict[str, Any]:
    """Per-spaxel and gradient metrics of the SED model on a ``--kind cubes`` dataset.

    With ``model_sd`` (the model card's ``calibration.gradient``), also the coverage of
    the gradient errors: how often the true slope lies within the quoted 1 and 1.96
    sigma, beside the coverage of the paper's subsample SD. When the prediction has
    per-spaxel errors (``log_age_err``, ``mh_err``), the gradient bootstrap draws from
    them and ``spaxel_coverage`` gives the share of true values within 1 and 1.96 sigma
    over the spaxels within ``max_radius``, overall and per bin of the SED's S/N
    (``seds/snr`` of the dataset), for all spaxels and for those not flagged out of
    distribution, and (``every_mapped``) over every spaxel a map shows, at any radius
    with S/N >= ``min_map_snr``. ``snr_at_least_10`` repeats the per-spaxel statistics
    for spaxels whose SED has S/N >= 10.
    """
    data = _read_cube_dataset(path)
    prediction = predict_seds(data["seds"], snr=data.get("snr"))
    predicted = {
        "log_age": np.asarray(prediction.log_age, float),
        "mh": np.asarray(prediction.mh, float),
    }
    use = np.isfinite(predicted["log_age"]) & (data["radius"] <= max_radius)
    radius = np.where(use, data["radius"], np.nan)
    spaxel_errors = _prediction_errors(prediction)
    errors = gradient_errors(
        radius,
        predicted,
        {key: data[f"true_gradient_{key}"] for key, _ in _QUANTITIES},
        psf_fwhm_pix=psf_fwhm_pix,
        model_sd=model_sd,
        max_radius=max_radius,
        min_points=min_points,
        # the network's own spaxel errors are not drawn: the bootstrap over elements
        # already sees that scatter (drawing them made the errors hold the truth 60-65%
        # of the time at 1 sigma and 83-90% at 1.96 instead of 64-68% and 89-96%)
        spaxel_errors=None,
    )
    result: dict[str, Any] = {
        "dataset": str(path),
        "cubes": int(data["seds"].shape[0]),
        "spaxels": int(use.sum()),
        "log_age": residual_stats((predicted["log_age"] - data["log_age"])[use]),
        "mh": residual_stats((predicted["mh"] - data["mh"])[use]),
        "gradient_galaxies": int(errors["log_age"]["error"].size),
        "gradient_log_age": residual_stats(errors["log_age"]["error"]),
        "gradient_mh": residual_stats(errors["mh"]["error"]),
        "gradient_coverage": {
            key: {
                "quoted": interval_coverage(d["error"], d["quoted"]),
                "statistical_only": interval_coverage(d["error"], d["stat"]),
                "paper_subsample_sd": interval_coverage(d["error"], d["paper_sd"]),
                "median_quoted": float(np.median(d["quoted"])) if d["quoted"].size else np.nan,
                "model_sd": float((model_sd or {}).get(key, 0.0)),
            }
            for key, d in errors.items()
        },
        "psf_fwhm_pix": psf_fwhm_pix,
    }
    if "snr" in data:
        bright = use & (data["snr"] >= MIN_SNR_FOR_TARGETS)
        result[f"snr_at_least_{MIN_SNR_FOR_TARGETS:g}"] = {
            "spaxels": int(bright.sum()),
            "log_age": residual_stats((predicted["log_age"] - data["log_age"])[bright]),
            "mh": residual_stats((predicted["mh"] - data["mh"])[bright]),
        }
    if spaxel_errors is not None:
        mapped = np.isfinite(predicted["log_age"])
        if "snr" in data:
            mapped &= data["snr"] >= min_map_snr
        coverage = _spaxel_coverage(data, predicted, spaxel_errors, prediction, use, mapped)
        result["spaxel_coverage"] = coverage
    result["gradient_errors"] = errors
    return result


def _prediction_errors(prediction: Any) -> dict[str, NDArray[np.float64]] | None:
    """A prediction's per-spaxel errors by quantity, or None when it has none."""
    errors = {key: getattr(prediction, f"{key}_err", None) for key, _ in _QUANTITIES}
    if any(value is None for value in errors.values()):
        return None
    return {key: np.asarray(value, float) for key, value in errors.items()}


def _spaxel_coverage(
    data: dict[str, NDArray[Any]],
    predicted: dict[str, NDArray[Any]],
    errors: dict[str, NDArray[Any]],
    prediction: Any,
    use: NDArray[np.bool_],
    mapped: NDArray[np.bool_],
) -> dict[str, Any]:
    """Per-spaxel coverage of the errors, overall and per S/N bin, all and in range, and
    over every ``mapped`` spaxel."""
    from napari_galam.errors import GalamError
    from napari_galam.models.registry import interval_95, read_model_card
    from napari_galam.models.sed_uncertainty import coverage_by_snr, low_snr_codes, sed_calibration

    snr = data.get("snr")
    flagged = getattr(prediction, "ood", None)
    flagged = np.zeros(use.shape, bool) if flagged is None else np.asarray(flagged, bool)
    if snr is not None:  # the S/N floor of the training data, as the maps apply it
        try:
            floor = sed_calibration(read_model_card("sed-cnn")).min_snr
            flagged = flagged | (low_snr_codes(snr, floor) > 0)
        except GalamError:
            pass
    in_range = use & ~flagged
    cube = np.broadcast_to(np.arange(use.shape[0]).reshape(-1, *([1] * (use.ndim - 1))), use.shape)
    out: dict[str, Any] = {"flagged_share": float(1.0 - in_range.sum() / max(use.sum(), 1))}
    z95 = dict(zip(("log_age", "mh"), interval_95("sed-cnn", cube=True), strict=True))
    for key, _ in _QUANTITIES:
        residual = predicted[key] - data[key]
        out[key] = {
            **coverage_by_snr(
                residual[use],
                errors[key][use],
                None if snr is None else snr[use],
                z95=z95[key],
                cubes=cube[use],
            ),
            "in_distribution": coverage_by_snr(
                residual[in_range],
                errors[key][in_range],
                None if snr is None else snr[in_range],
                z95=z95[key],
            ),
            "every_mapped": coverage_by_snr(
                residual[mapped],
                errors[key][mapped],
                None if snr is None else snr[mapped],
                z95=z95[key],
                cubes=cube[mapped],
            ),
            "z95": z95[key],
        }
    return out
