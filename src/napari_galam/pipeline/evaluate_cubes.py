"""Judge the maps of ``galam map`` on simulated survey cubes whose truth is known.

``galam simulate --kind cubes --layout L`` writes CALIFA, MaNGA or MUSE cube files with
the true stellar log age, [M/H] and R/R_e maps as extensions (``TRUE_LOG_AGE``,
``TRUE_MH``, ``TRUE_R_RE``) and a truth table ``<layout>_<seed>_truth.ecsv`` with each
galaxy's PSF-blurred true gradients and observing conditions. :func:`evaluate_survey_cubes`
maps every file of such a folder through the same path as ``galam map`` (by default the
model ``auto`` picks: ``spaxel-spectra`` for IFU cubes) and reports what a user of the
maps would want to know:

- **accuracy** per spaxel within 2 R_e at spectral S/N >= 10: robust SD (1.4826 MAD) and
  median bias of model minus truth;
- **error coverage** over every mapped spaxel (S/N >= 3): the share of truths within the
  quoted 1 sigma and within the 95% interval (``z95`` sigma, the model card's for the
  cube's layout), overall and per bin of the spectral S/N
  (:data:`~napari_galam.models.cube_calibration.CUBE_SNR_EDGES`), pooled and per layout,
  each with how many cubes it rests on and a 90% interval from resampling whole cubes;
- **gradients**: the slope within R_e fitted as the Gradients dock fits it
  (:func:`napari_galam.pipeline.evaluate.gradient_errors`, independent elements two PSF
  FWHM across from the file's simulated PSF, the model card's own gradient error), its
  error against the true slope and how often the quoted error holds it.

One file that cannot be read or mapped gets a row that says why; the others are judged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamError, GalamInputError

__all__ = ["SURVEY_TRUTH_SUFFIX", "evaluate_survey_cubes", "read_truth_maps"]

#: The truth tables ``galam simulate --layout`` writes beside the cube files.
SURVEY_TRUTH_SUFFIX = "_truth.ecsv"
_QUANTITIES = ("log_age", "mh")
_TRUTH_EXTENSIONS = {"log_age": "TRUE_LOG_AGE", "mh": "TRUE_MH", "radius": "TRUE_R_RE"}
#: Spectral S/N at and above which accuracy is quoted (as the issue's targets are).
ACCURACY_MIN_SNR = 10.0


def read_truth_maps(path: str | os.PathLike) -> dict[str, NDArray[np.float64]]:
    """The ``TRUE_LOG_AGE``, ``TRUE_MH`` and ``TRUE_R_RE`` maps of a simulated cube file.

    Raises
    ------
    GalamInputError
        When the file cannot be read or lacks one of them (names the file).
    """
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            names = {str(h.header.get("EXTNAME", "")).upper(): h for h in hdul}
            missing = [e for e in _TRUTH_EXTENSIONS.values() if e not in names]
            if missing:
                raise GalamInputError(
                    f"{path}: no {', '.join(missing)} extension; a simulated survey cube "
                    "(galam simulate --kind cubes --layout ...) carries its truth maps"
                )
            return {
                key: np.asarray(names[ext].data, np.float64)
                for key, ext in _TRUTH_EXTENSIONS.items()
            }
    except (OSError, ValueError, TypeError) as exc:
        raise GalamInputError(f"{path}: cannot read its truth maps ({exc})") from None


def _truth_rows(folder: Path) -> list[dict[str, Any]]:
    """Rows of every truth table in ``folder``."""
    from astropy.table import Table

    tables = sorted(folder.glob(f"*{SURVEY_TRUTH_SUFFIX}"))
    if not folder.is_dir() or not tables:
        raise GalamInputError(
            f"{folder}: expected a folder written by 'galam simulate --kind cubes --layout "
            f"...' holding cube files and a '<layout>_<seed>{SURVEY_TRUTH_SUFFIX}' table"
        )
    rows = []
    for table_path in tables:
        try:
            table = Table.read(table_path, format="ascii.ecsv")
        except (OSError, ValueError) as exc:
            raise GalamInputError(f"{table_path}: unreadable truth table ({exc})") from None
        needed = {"file", "layout", "observed_gradient_log_age", "observed_gradient_mh"}
        if not needed <= set(table.colnames):
            raise GalamInputError(
                f"{table_path}: a truth table needs the columns {', '.join(sorted(needed))}"
            )
        rows += [{name: row[name] for name in table.colnames} for row in table]
    return rows


def _median_stats(diff: NDArray[Any]) -> dict[str, Any]:
    """n, median bias and robust SD (1.4826 MAD about the median) of residuals."""
    if diff.size == 0:
        return {"n": 0, "bias": np.nan, "robust_sd": np.nan}
    bias = float(np.median(diff))
    return {"n": int(diff.size), "bias": bias,
            "robust_sd": float(1.4826 * np.median(np.abs(diff - bias)))}  # fmt: skip


def _judge_cube(
    path: Path,
    row: dict[str, Any],
    maps: Any,
    model_sd: dict[str, float] | None,
    max_radius: float,
) -> tuple[dict[str, Any], dict[str, NDArray[Any]], dict[str, NDArray[Any]]]:
    """One cube's row, its mapped spaxels' residuals, errors and S/N, and the residuals
    of those within ``max_radius`` at S/N >= :data:`ACCURACY_MIN_SNR`."""
    from napari_galam.pipeline.evaluate import gradient_errors
    from napari_galam.simulate.survey_cubes import survey_layout

    truth = read_truth_maps(path)
    if truth["log_age"].shape != maps.log_age.shape:
        raise GalamInputError(
            f"{path}: truth maps {truth['log_age'].shape} do not match the cube's "
            f"spaxels {maps.log_age.shape}"
        )
    predicted = {key: np.asarray(getattr(maps, key), np.float64) for key in _QUANTITIES}
    sigma = {key: getattr(maps, f"{key}_err", None) for key in _QUANTITIES}
    snr = np.asarray(maps.snr, np.float64)
    mapped = np.isfinite(predicted["log_age"])
    within = mapped & (truth["radius"] <= max_radius)
    bright = within & (snr >= ACCURACY_MIN_SNR)
    out: dict[str, Any] = {
        "mapped": int(mapped.sum()),
        "accuracy_spaxels": int(bright.sum()),
        "flagged": float(np.mean(np.asarray(maps.ood)[mapped] > 0)) if mapped.any() else 0.0,
    }
    bright_diffs = {key: (predicted[key] - truth[key])[bright] for key in _QUANTITIES}
    for key, diff in bright_diffs.items():
        stats = _median_stats(diff)
        out[f"{key}_bias"], out[f"{key}_robust_sd"] = stats["bias"], stats["robust_sd"]
    spec = survey_layout(str(row["layout"]))
    psf_arcsec = float(row.get("psf_fwhm_arcsec", np.mean(spec.psf_range)))
    radius = np.where(within, truth["radius"], np.nan)[None]
    fits = gradient_errors(
        radius,
        {key: predicted[key][None] for key in _QUANTITIES},
        {key: np.array([float(row[f"observed_gradient_{key}"])]) for key in _QUANTITIES},
        psf_fwhm_pix=psf_arcsec / spec.pixel_scale,
        model_sd=model_sd,
        max_radius=max_radius,
        spaxel_errors=None,  # as the gradient error was calibrated
    )
    for key in _QUANTITIES:
        fitted = fits[key]["error"].size > 0
        out[f"gradient_{key}_error"] = float(fits[key]["error"][0]) if fitted else np.nan
        out[f"gradient_{key}_quoted"] = float(fits[key]["quoted"][0]) if fitted else np.nan
    spaxels: dict[str, NDArray[Any]] = {"snr": snr[mapped]}
    for key in _QUANTITIES:
        spaxels[f"{key}_error"] = (predicted[key] - truth[key])[mapped]
        spaxels[f"{key}_sigma"] = (
            np.full(int(mapped.sum()), np.nan) if sigma[key] is None
            else np.asarray(sigma[key], np.float64)[mapped]
        )  # fmt: skip
    return out, spaxels, bright_diffs


def _pooled(parts: list[dict[str, NDArray[Any]]], min_snr: float) -> dict[str, Any]:
    """Coverage of the quoted errors over the spaxels of ``parts`` (S/N >= ``min_snr``)."""
    from napari_galam.models.cube_calibration import CUBE_SNR_EDGES
    from napari_galam.models.uncertainty import coverage_by_bins

    if not parts:
        return {}
    joined = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    cube = np.concatenate([np.full(p["snr"].size, i) for i, p in enumerate(parts)])
    use = joined["snr"] >= min_snr
    return {
        key: coverage_by_bins(
            joined[f"{key}_error"][use],
            joined[f"{key}_sigma"][use],
            joined["snr"][use],
            CUBE_SNR_EDGES,
            z95=joined[f"{key}_z95"][use],
            groups=cube[use],
        )
        for key in _QUANTITIES
    }


def _gradient_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """SD and mean of (fitted - true) slopes and the coverage of their quoted errors."""
    from napari_galam.models.uncertainty import coverage

    out: dict[str, Any] = {}
    for key in _QUANTITIES:
        error = np.array([r.get(f"gradient_{key}_error", np.nan) for r in rows], float)
        quoted = np.array([r.get(f"gradient_{key}_quoted", np.nan) for r in rows], float)
        fitted = np.isfinite(error)
        out[key] = {
            "cubes": int(fitted.sum()),
            "sd": float(np.std(error[fitted])) if fitted.sum() > 1 else np.nan,
            "mean": float(np.mean(error[fitted])) if fitted.any() else np.nan,
            **coverage(error[fitted], quoted[fitted]),
        }
    return out


def _judge_file(
    folder: Path, row: dict[str, Any], settings: tuple[Any, ...]
) -> tuple[dict[str, Any], dict[str, NDArray[Any]] | None, dict[str, NDArray[Any]] | None]:
    """Map one file of the truth table and judge it; a row saying why when it cannot be."""
    from napari_galam.io.sources import open_source
    from napari_galam.models.registry import gradient_model_sd, interval_95
    from napari_galam.pipeline.maps import iter_map_source, map_model_for
    from napari_galam.progress import run_to_end

    model, min_snr, max_radius, predict_seds, predict_spectra = settings
    path = folder / str(row["file"])
    entry: dict[str, Any] = {
        "file": str(row["file"]), "layout": str(row["layout"]),
        "family": str(row.get("family", "")), "redshift": float(row.get("redshift", np.nan)),
    }  # fmt: skip
    try:
        source = open_source(path)
        chosen = map_model_for(source, model)
        maps = run_to_end(
            iter_map_source(
                source, predict_seds, min_snr=min_snr, model=chosen,
                predict_spectra=predict_spectra,
            )
        )  # fmt: skip
        judged, spaxels, bright = _judge_cube(
            path, row, maps, gradient_model_sd(chosen), max_radius
        )
        z95 = interval_95(chosen, cube=True, layout=getattr(source, "layout", None))
        for k, key in enumerate(_QUANTITIES):  # the 95% interval of this cube's model and layout
            spaxels[f"{key}_z95"] = np.full(spaxels["snr"].shape, z95[k])
    except (GalamError, OSError, ValueError) as exc:
        return {**entry, "status": str(exc)}, None, None
    return {**entry, "status": "ok", "model": chosen, **judged}, spaxels, bright


def evaluate_survey_cubes(
    folder: str | os.PathLike,
    *,
    predict_seds: Callable[..., Any],
    predict_spectra: Callable[..., Any],
    model: str = "auto",
    min_snr: float = 3.0,
    max_radius: float = 2.0,
    limit: int | None = None,
) -> dict[str, Any]:
    """Map every simulated cube of ``folder`` and judge the maps against the truth.

    Parameters
    ----------
    folder
        Written by ``galam simulate --kind cubes --layout ...`` (cube files and truth
        tables; several seeds and layouts may share it).
    predict_seds, predict_spectra
        The models (:mod:`napari_galam.models.inference`), as ``galam map`` uses them.
    model
        ``auto``, ``spaxel-spectra`` or ``sed-cnn`` (:func:`~napari_galam.pipeline.maps.map_model_for`).
    min_snr, max_radius
        The maps' S/N floor and the radius (R_e) within which gradients and accuracy are
        measured.
    limit
        Judge only the first ``limit`` files.

    Returns
    -------
    dict
        ``rows`` (one per file: layout, family, redshift, ``status`` "ok" or why not,
        accuracy, gradient error and quoted error), ``coverage`` (pooled and per layout:
        :func:`~napari_galam.models.uncertainty.coverage_by_bins` per quantity),
        ``accuracy`` (pooled robust SD and bias at S/N >= 10 within ``max_radius``),
        ``gradients`` and ``model``.

    Raises
    ------
    GalamInputError
        When the folder holds no truth table (names it and what it should hold).
    """
    folder = Path(folder)
    rows_in = _truth_rows(folder)[: limit if limit is not None else None]
    rows: list[dict[str, Any]] = []
    parts: dict[str, list[dict[str, NDArray[Any]]]] = {}
    accuracy: dict[str, list[NDArray[Any]]] = {key: [] for key in _QUANTITIES}
    models: set[str] = set()
    settings = (model, min_snr, max_radius, predict_seds, predict_spectra)
    for row in rows_in:
        entry, spaxels, bright = _judge_file(folder, row, settings)
        rows.append(entry)
        if spaxels is None:
            continue
        models.add(entry["model"])
        parts.setdefault(entry["layout"], []).append(spaxels)
        for key in _QUANTITIES:
            accuracy[key].append(bright[key])
    pooled_accuracy = {
        key: _median_stats(np.concatenate(chunks) if chunks else np.zeros(0))
        for key, chunks in accuracy.items()
    }
    everything = [p for chunk in parts.values() for p in chunk]
    return {
        "folder": str(folder),
        "model": sorted(models),
        "files": len(rows),
        "mapped": sum(r["status"] == "ok" for r in rows),
        "rows": rows,
        "accuracy": pooled_accuracy,
        "coverage": {
            "all": _pooled(everything, min_snr),
            **{layout: _pooled(chunk, min_snr) for layout, chunk in sorted(parts.items())},
        },
        "gradients": _gradient_summary([r for r in rows if r["status"] == "ok"]),
        "min_snr": min_snr,
        "max_radius": max_radius,
    }
