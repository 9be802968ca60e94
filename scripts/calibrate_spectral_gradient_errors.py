"""Calibrate the ``spaxel-spectra`` model's own error on radial gradients, and check it.

Usage (about 10 minutes on a 2-core CPU; run after ``scripts/train_spaxel_spectra.py``,
which rewrites the card's calibration)::

    python scripts/calibrate_spectral_gradient_errors.py --write-card

The SED CNN's gradient error is calibrated on HDF5 cube datasets of SEDs
(``scripts/calibrate_gradient_errors.py``); the spectral model reads the spectra, so here
each cube is rendered afresh: :func:`napari_galam.simulate.samples.simulated_califa_cube`
(families in turn, nebular emission lines on), written in the CALIFA layout and mapped
through the real ``galam map`` path (:func:`napari_galam.pipeline.maps.map_cube_to_file`,
S/N floor 3). The gradients are then fitted and judged exactly as for the SED CNN
(:func:`napari_galam.pipeline.evaluate.gradient_errors` against the PSF-blurred truth,
spaxels within 2 R_e), and the model's own error is the one that makes the quoted 68% and
95% intervals hold the calibration cubes' true slopes as often as they claim
(:func:`~napari_galam.pipeline.evaluate.calibrate_gradient_model_sd`). The test cubes
(other seeds) measure the coverage.

The per-spaxel errors' cube terms (:mod:`napari_galam.models.cube_calibration`) are
fitted on cubes of every layout by ``scripts/evaluate_spaxel_spectra_layouts.py
--fit-shipped``; here the test cubes show the per-spaxel coverage without and with the
card's terms for CALIFA cubes. Per-cube maps are cached in ``--workdir`` (a killed run
resumes; the errors without cube terms are recovered from the maps and the terms that
made them). ``--write-card`` stores ``calibration.gradient`` and that check as
``calibration.uncertainty.cube.test_cubes`` in the model's card, keeping its other
calibration entries.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

QUANTITIES = ("log_age", "mh")


def _seeds(text: str) -> range:
    first, last = (int(v) for v in text.split(":"))
    return range(first, last)


def _mapped(seed: int, family: str, workdir: Path, model: str) -> dict[str, np.ndarray]:
    """Truth and the model's maps of one rendered cube (cached)."""
    cache = workdir / f"{model}_{seed}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            if "log_age_err" in saved.files:  # older caches lack the error maps: remap
                return {key: saved[key] for key in saved.files}
    from napari_galam.io.writers import read_maps
    from napari_galam.pipeline.maps import map_cube_to_file
    from napari_galam.simulate.samples import simulated_califa_cube
    from napari_galam.simulate.writers import write_califa_cube

    cube = simulated_califa_cube(seed=seed, family=family, emission=True)
    with tempfile.TemporaryDirectory() as folder:
        path = write_califa_cube(Path(folder) / f"sim{seed}.V500.rscube.fits", cube)
        target = Path(folder) / f"sim{seed}.maps.fits"
        map_cube_to_file(path, target, model=model, min_snr=3.0)
        maps = read_maps(target).maps
    truth = cube.truth
    data = {
        "radius": np.asarray(truth.r_over_re, np.float32),
        "true_log_age": np.asarray(truth.log_age, np.float32),
        "true_mh": np.asarray(truth.mh, np.float32),
        "true_gradient_log_age": np.float64(truth.observed_gradient_log_age),
        "true_gradient_mh": np.float64(truth.observed_gradient_mh),
        "log_age": np.asarray(maps["LOG_AGE"], np.float32),
        "mh": np.asarray(maps["MH"], np.float32),
        "snr": np.asarray(maps["SNR"], np.float32),
        # the errors as mapped, before any cube terms (see _spectra_errors)
        "log_age_err": np.asarray(maps["LOG_AGE_ERR"], np.float32),
        "mh_err": np.asarray(maps["MH_ERR"], np.float32),
        "cube_terms_json": np.asarray(json.dumps(_card_cube_terms(model).describe())),
        "family": np.asarray(family),
    }
    tmp = cache.with_name(cache.stem + ".part.npz")
    np.savez(tmp, **data)
    tmp.replace(cache)
    return data


def _card_cube_terms(model: str):
    """The cube terms the card gives CALIFA cubes (those these maps are of)."""
    from napari_galam.models.cube_calibration import cube_terms_for
    from napari_galam.models.registry import read_model_card

    uncertainty = read_model_card(model)["calibration"]["uncertainty"]
    return cube_terms_for(uncertainty, model, "CALIFA")


def _spectra_errors(cube: dict) -> np.ndarray:
    """``(2, ny, nx)`` errors without the cube terms the maps were made with."""
    from napari_galam.models.cube_calibration import CubeTerms

    mapped = np.stack([cube["log_age_err"], cube["mh_err"]]).astype(np.float64)
    if "cube_terms_json" in cube:
        terms = CubeTerms.from_description(json.loads(str(cube["cube_terms_json"])))
        flat = terms.undo(mapped.reshape(2, -1).T, np.asarray(cube["snr"]).reshape(-1))
        return flat.T.reshape(mapped.shape)
    # maps cached before the terms were recorded as JSON: a scale and a floor
    scale, floor = (np.asarray(v, np.float64)[:, None, None] for v in cube["cube_terms"])
    return np.sqrt(np.clip(mapped**2 - floor**2, 0.0, None)) / scale


def _spaxel_residuals(cubes: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model minus truth, spectra-calibrated errors and S/N of every mapped spaxel."""
    errors, sigmas, snrs = [], [], []
    for c in cubes:
        mapped = np.isfinite(c["log_age"]) & np.isfinite(c["log_age_err"])
        errors.append(np.stack([(c[k] - c[f"true_{k}"])[mapped] for k in QUANTITIES], axis=1))
        sigmas.append(_spectra_errors(c)[:, mapped].T)
        snrs.append(c["snr"][mapped])
    return np.concatenate(errors), np.concatenate(sigmas), np.concatenate(snrs)


def _cube_coverage(cubes: list[dict], terms: Any) -> dict:
    """Coverage of the errors (with ``CubeTerms`` ``terms``; None: without) overall and
    per S/N bin."""
    from napari_galam.models.cube_calibration import CUBE_SNR_EDGES
    from napari_galam.models.uncertainty import coverage_by_bins

    error, sigma, snr = _spaxel_residuals(cubes)
    from napari_galam.models.uncertainty import Z_95

    z95 = (Z_95, Z_95)
    if terms is not None:
        sigma, z95 = terms.apply(sigma, snr), terms.z95
    return {
        key: coverage_by_bins(error[:, k], sigma[:, k], snr, CUBE_SNR_EDGES, z95[k])
        for k, key in enumerate(QUANTITIES)
    }


def _print_coverage(label: str, table: dict) -> None:
    print(f"{label}: truth within 1 sigma / the 95% interval per spectral S/N bin")
    for key, entry in table.items():
        cells = [f"all {entry['within_68']:.1%} / {entry['within_95']:.1%} (n {entry['n']})"]
        cells += [
            f"{b} {c['within_68']:.1%} / {c['within_95']:.1%} (n {c['n']})"
            for b, c in entry["by_snr"].items()
        ]
        print(f"  {key}: " + "; ".join(cells))


def _errors(cubes: list[dict], model_sd: dict[str, float] | None, max_radius: float) -> dict:
    from napari_galam.pipeline.evaluate import CALIFA_RESOLUTION_PIX, gradient_errors

    stack = {key: np.stack([c[key] for c in cubes]) for key in ("radius", "log_age", "mh")}
    use = np.isfinite(stack["log_age"]) & (stack["radius"] <= max_radius)
    return gradient_errors(
        np.where(use, stack["radius"], np.nan),
        {key: stack[key] for key in QUANTITIES},
        {key: np.array([c[f"true_gradient_{key}"] for c in cubes]) for key in QUANTITIES},
        psf_fwhm_pix=CALIFA_RESOLUTION_PIX,
        model_sd=model_sd,
        max_radius=max_radius,
        spaxel_errors=None,  # as for the SED CNN: the element bootstrap sees the scatter
    )


def _spaxel_table(cubes: list[dict]) -> dict[str, dict]:
    """Robust SD and bias per family at spectral S/N >= 10 (within 2 R_e)."""
    from napari_galam.models.train_spaxel_spectra import robust_metrics

    table: dict[str, dict] = {}
    for family in sorted({str(c["family"]) for c in cubes}):
        chosen = [c for c in cubes if str(c["family"]) == family]
        entry = {}
        for key in QUANTITIES:
            diffs = [
                (c[key] - c[f"true_{key}"])[(c["snr"] >= 10) & (c["radius"] <= 2.0) & np.isfinite(c[key])]
                for c in chosen
            ]  # fmt: skip
            d = np.concatenate(diffs)
            entry[key] = robust_metrics(np.zeros(d.size), d)
        table[family] = entry
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="spaxel-spectra", choices=("spaxel-spectra",))
    parser.add_argument("--calibration-seeds", default="700:800", help="FIRST:END of the cubes")
    parser.add_argument("--test-seeds", default="800:860", help="FIRST:END, other cubes")
    parser.add_argument("--workdir", type=Path, default=Path("runs/spectral-gradients"))
    parser.add_argument("--max-radius", type=float, default=2.0)
    parser.add_argument("--write-card", action="store_true")
    args = parser.parse_args(argv)

    from napari_galam.models.registry import read_model_card, write_card_section
    from napari_galam.pipeline.evaluate import calibrate_gradient_model_sd, interval_coverage
    from napari_galam.simulate.families import SFH_FAMILIES

    args.workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sets = {}
    for name, seeds in (("calibration", args.calibration_seeds), ("test", args.test_seeds)):
        sets[name] = []
        for seed in _seeds(seeds):
            family = SFH_FAMILIES[seed % len(SFH_FAMILIES)]
            sets[name].append(_mapped(seed, family, args.workdir, args.model))
        print(f"{name}: {len(sets[name])} cubes mapped ({time.perf_counter() - start:.0f} s)",
              flush=True)  # fmt: skip
    terms = _card_cube_terms(args.model)
    print(f"the card's cube terms for CALIFA cubes: {terms.describe()}")
    cube_before = _cube_coverage(sets["test"], None)
    cube_after = _cube_coverage(sets["test"], terms)
    _print_coverage("test cubes, spectra-calibrated errors", cube_before)
    _print_coverage("test cubes, with the cube terms", cube_after)
    calibration = _errors(sets["calibration"], None, args.max_radius)
    model_sd = calibrate_gradient_model_sd(calibration)
    test = _errors(sets["test"], model_sd, args.max_radius)
    print("| quantity | model's own SD | test: within 1 sigma | within 1.96 sigma | "
          "statistical part alone: within 1 sigma | SD of (fitted - true) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    coverage = {}
    for key in QUANTITIES:
        d = test[key]
        quoted = interval_coverage(d["error"], d["quoted"])
        coverage[key] = {**quoted, "n": int(d["error"].size)}
        stat = interval_coverage(d["error"], d["stat"])
        print(f"| {key} | {model_sd[key]:.4f} | {quoted['within_68']:.0%} | "
              f"{quoted['within_95']:.0%} | {stat['within_68']:.0%} | {np.std(d['error']):.4f} |")  # fmt: skip
    spaxels = _spaxel_table(sets["test"])
    print("per family, test cubes, spectral S/N >= 10 within 2 R_e (robust SD, bias):")
    for family, entry in spaxels.items():
        print(f"  {family}: " + "; ".join(
            f"{k} {v['robust_sd']:.3f} ({v['bias']:+.3f})" for k, v in entry.items()))  # fmt: skip
    seconds = time.perf_counter() - start
    calibration_card = read_model_card(args.model).get("calibration", {})
    section = {
        **calibration_card,
        "uncertainty": {
            **calibration_card.get("uncertainty", {}),
            "cube": {
                **calibration_card.get("uncertainty", {}).get("cube", {}),
                "test_cubes": {"seeds": args.test_seeds, "layout": "CALIFA",
                               "before": cube_before, "after": cube_after},
            },
        },
        "gradient": {
            **model_sd,
            "unit": "dex/R_e",
            "method": (
                "model's own gradient error m: hypot(stat, m) holds the calibration cubes' "
                "true slopes closest to 68.27% and 95.45% of the time, stat being the "
                "bootstrap SD over independent elements (CALIFA PSF); cubes rendered by "
                "simulated_califa_cube with emission lines, mapped by galam map"
            ),
            "calibration_cubes": {"seeds": args.calibration_seeds,
                                  "cubes": int(calibration["log_age"]["error"].size)},
            "test_cubes": {"seeds": args.test_seeds, "coverage": coverage,
                           "per_family_spaxels": spaxels},
            "seconds": round(seconds, 1),
        },
    }  # fmt: skip
    if args.write_card:
        print(f"wrote {write_card_section(args.model, 'calibration', section)}")
    else:
        print(json.dumps(section["gradient"], indent=1, default=float))
    print(f"{seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
