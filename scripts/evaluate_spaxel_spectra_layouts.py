"""Leave one family out: spaxel-spectra on CALIFA, MaNGA and MUSE cubes at z = 0.03-0.2.

Usage (the default run, 450 cubes, took 7.5 minutes on a 2-core CPU shared with other
jobs: about 1 s per cube to render, write and map twice; a killed run resumes from
``--workdir``)::

    python scripts/evaluate_spaxel_spectra_layouts.py --lofo-root runs \\
        --workdir runs/layout-lofo --out runs/layout-lofo.json
    python scripts/evaluate_spaxel_spectra_layouts.py --families bursty --layouts muse \\
        --redshifts 0.2 --cubes 1          # one cell

For each star-formation-history family, survey layout and redshift, ``--cubes`` galaxies
are drawn and rendered as ``galam simulate --kind cubes --layout L --seed S --redshift z
--family F --emission -n N`` renders them (the i-th cube is the i-th file of that command):
:func:`~napari_galam.simulate.galaxy.draw_galaxy` (``survey="sdss"``), moved to ``z`` at
fixed physical size (:func:`~napari_galam.simulate.survey_cubes.galaxy_at_redshift`),
observed with a PSF drawn over the layout's range and S/N at R_e uniform in 10-40, with
nebular emission lines (:func:`~napari_galam.simulate.survey_cubes.render_survey_cube`).
The seed of a (family, layout, z) cell is ``SEED + 1000 * f + 100 * l + round(100 * z)``,
``f`` the family's index in :data:`~napari_galam.simulate.families.SFH_FAMILIES` and ``l``
the layout's in ``califa, manga, muse``, so every cell has its own galaxies.

Each cube is written in its survey's file layout
(:func:`~napari_galam.simulate.writers.write_survey_cube`) and mapped through the real
``galam map`` path (:func:`napari_galam.pipeline.maps.map_cube_to_file`, S/N floor 3, the
redshift from the file's header) twice: ``--model spaxel-spectra`` with the network that
never saw the cube's family, and ``--model sed-cnn`` with the shipped weights (it cannot
read MUSE's wavelengths; such cubes are recorded as "cannot map"). The spectral network of
a family comes from ``--lofo-root/ss-lofo-<family>`` (trained by
``scripts/train_spaxel_spectra.py --hold-out-family <family>``); bulge-disc galaxies are
never in its training, so their network is the shipped one (a copy in
``--lofo-root/ss-lofo-bulge-disc``, whose card gets its own cube terms). ``--weights FAMILY=FOLDER``
overrides a family's folder (``shipped``: the package's weights). A network whose card
lists the cube's family among its training histories is marked ``seen`` in the tables.

Per cell, per-spaxel robust SD (1.4826 MAD) and median bias of log age and [M/H] at
spectral S/N >= 10 (the spectral model's ``SNR`` map): spaxel-spectra on the spaxels it
maps, and both models on the spaxels both map (as
``scripts/evaluate_spaxel_spectra_cubes.py``). Radial gradients are fitted as in
``scripts/calibrate_spectral_gradient_errors.py``
(:func:`napari_galam.pipeline.evaluate.gradient_errors` on the mapped spaxels within 2 R_e:
the slope within R_e, which needs at least 25 of them and one beyond R_e, against the
PSF-blurred truth gradient), with the layout's nominal PSF (the middle of its range) in
spaxels; small galaxies (most at z = 0.2) give no fit and are counted apart. The SD of (fitted - true) is pooled per layout and redshift over the
families, and per family over layouts and redshifts. Targets (issue #18): robust SD <=
0.10 dex in log age and <= 0.12 in [M/H], |median bias| <= 0.05, gradient error SD <=
0.05 dex/R_e.

The cache keeps spaxel-spectra's error maps (``LOG_AGE_ERR``, ``MH_ERR``) and the cube
terms of the card they were made with (:mod:`napari_galam.models.cube_calibration`); a
cache without them, or made with other weights or other cube terms, is mapped again. Their
coverage is the share of spaxels (every mapped spaxel at spectral S/N >= 3) whose
``|model - truth|`` is within the error and within the 95% interval (``z95`` times it, the
cube terms' own; 1.96 for the errors without them), overall and per spectral
S/N bin (3-10, 10-20, 20-40, >= 40), pooled per family (over layouts and z), per layout
(over families and z) and per layout and z; once with the errors as mapped and once
without the cube terms (the spectra-calibrated errors, recovered as in
``scripts/calibrate_spectral_gradient_errors.py``). Targets (issue #20): 68% intervals
cover 63-73% and 95% intervals 92-97%, every S/N bin within 10 points of nominal (58-78%
and >= 85%).

``--fit-cube-terms`` first gives each family's network cube terms fitted without that
family (:func:`fit_layout_cube_terms`): calibration cubes drawn like the test cells but
from other seeds (``--calibration-seed``, ``--calibration-cubes`` per family, layout and
z) whose family is not the held-out one are mapped with the fold's network (cached in
``--lofo-root/layout-calibration``, per network), with ``--calibration-survey-cubes`` per
layout drawn as ``galam simulate --kind cubes --layout`` draws them (the survey's own
redshifts and S/N: :func:`survey_draw_cubes`) and, for CALIFA, the CALIFA-like cubes of
``--califa-like-seeds``; :func:`~napari_galam.models.cube_calibration.fit_cube_section`
fits a scale, floor and S/N factors for every layout together and for each layout (at
most ``--fit-cap`` spaxels a layout); they replace the fold card's
``calibration.uncertainty.cube``, naming the family left out. A family the shipped network
never saw and without a fold folder (bulge-disc) gets one: a copy of the shipped
``spaxel-spectra`` and ``sed-cnn`` files, whose weights must hash as the shipped ones.
``--fit-shipped`` fits the shipped network's terms the same way on every family's
calibration cubes and writes them into the package's card. ``--fit-only`` stops after the
fits (the shipped network and the five folds took about 20 minutes from scratch: 180 or
144 survey cubes a network at about 0.7 s each, the CALIFA-like cubes of
``--califa-like-seeds`` mapped once per network and cached, and 1.5-2 minutes per fit;
networks with the same weights share their maps)::

    python scripts/evaluate_spaxel_spectra_layouts.py --lofo-root runs --fit-shipped \
        --fit-cube-terms --fit-only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

LAYOUTS = ("califa", "manga", "muse")
#: The names the cube readers give these layouts (the keys of the card's cube terms).
READER_LAYOUT = {"califa": "CALIFA", "manga": "MaNGA", "muse": "MUSE"}
REDSHIFTS = (0.03, 0.1, 0.2)
QUANTITIES = ("log_age", "mh")
#: Map models and the prefix of their arrays in the per-cube cache.
MODELS = {"spaxel-spectra": "ss", "sed-cnn": "sed"}
#: Issue #18's targets: robust SD per quantity, |median bias|, gradient error SD (dex/R_e).
TARGETS = {"log_age": 0.10, "mh": 0.12, "bias": 0.05, "gradient": 0.05}
MIN_SNR = 10.0
MAX_RADIUS = 2.0
SHIPPED = "shipped"
SPECTRA = "spaxel-spectra"
#: Spectral S/N floor of the error coverage: every spaxel ``galam map`` maps.
COVERAGE_MIN_SNR = 3.0
#: Issue #20: overall coverage bands, and per S/N bin within 10 points of nominal.
COVERAGE_BANDS = {"within_68": (0.63, 0.73), "within_95": (0.92, 0.97)}
BIN_BANDS = {"within_68": (0.58, 0.78), "within_95": (0.85, 1.0)}
#: The two kinds of per-spaxel error whose coverage is measured.
VARIANTS = ("with_cube_terms", "without_cube_terms")


def cell_seed(first: int, family: str, layout: str, redshift: float) -> int:
    """Seed of the ``galam simulate`` run whose files are the cubes of one cell."""
    from napari_galam.simulate.families import SFH_FAMILIES

    return (
        first + 1000 * SFH_FAMILIES.index(family) + 100 * LAYOUTS.index(layout)
        + round(100 * redshift)
    )  # fmt: skip


def weights_folders(lofo_root: Path, overrides: list[str]) -> dict[str, str]:
    """Family -> folder of the spectral network that never saw it (``shipped``: the package's).

    Every family's default is ``lofo_root/ss-lofo-<family>``; for bulge-disc that folder
    holds a copy of the shipped network (made by ``--fit-cube-terms``), so that its cube
    terms can be fitted without bulge-disc cubes.
    """
    from napari_galam.simulate.families import SFH_FAMILIES

    folders = {family: str(lofo_root / f"ss-lofo-{family}") for family in SFH_FAMILIES}
    for item in overrides:
        family, sep, folder = item.partition("=")
        if not sep or family not in folders or not folder:
            raise SystemExit(f"--weights: expected FAMILY=FOLDER with a known family, got {item!r}")
        folders[family] = folder
    return folders


@contextlib.contextmanager
def weights_from(folder: str) -> Iterator[None]:
    """Load models from ``folder`` inside the block (the registry reads it per call)."""
    from napari_galam.models.registry import WEIGHTS_DIR_ENV

    before = os.environ.pop(WEIGHTS_DIR_ENV, None)
    if folder != SHIPPED:
        os.environ[WEIGHTS_DIR_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(WEIGHTS_DIR_ENV, None)
        if before is not None:
            os.environ[WEIGHTS_DIR_ENV] = before


def render(family: str, layout: str, redshift: float, seed: int, index: int, library: Any):
    """The ``index``-th cube of ``galam simulate --layout`` for one seed, family and z."""
    from napari_galam.simulate.datasets import galaxy_families, galaxy_rngs
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.survey_cubes import (
        galaxy_at_redshift,
        render_survey_cube,
        survey_layout,
    )

    spec = survey_layout(layout)
    rng = galaxy_rngs(seed, index + 1)[index]
    family = galaxy_families(rng, (family,))
    galaxy = draw_galaxy(rng, survey="sdss", library=library, family=family)
    return render_survey_cube(
        galaxy_at_redshift(galaxy, redshift),
        layout=spec.name,
        rng=rng,
        library=library,
        psf_fwhm_arcsec=float(rng.uniform(*spec.psf_range)),
        snr_at_re=float(rng.uniform(10.0, 40.0)),
        emission=True,
    )


def _map(path: Path, model: str, folder: str) -> tuple[dict[str, np.ndarray] | None, str]:
    """The model's maps of a cube file, or None and why ``galam map`` refused it."""
    from napari_galam.errors import GalamInputError
    from napari_galam.io.writers import read_maps
    from napari_galam.pipeline.maps import map_cube_to_file

    target = path.with_name(f"{path.stem}.{model}.maps.fits")
    with weights_from(folder):
        try:
            map_cube_to_file(path, target, model=model, min_snr=3.0)
        except GalamInputError as exc:
            return None, f"cannot map: {exc}"
    return read_maps(target).maps, ""


def mapped_cube(
    family: str, layout: str, redshift: float, seed: int, index: int, *,
    folder: str, workdir: Path, library: Any, calibration: bool = False,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Truth and both models' maps of one cube (cached in ``workdir``, written atomically).

    A cache is used only when it holds spaxel-spectra's error maps made with the weights
    and cube terms the family's card has now; otherwise the cube is rendered and mapped
    again. A ``calibration`` cube is mapped by spaxel-spectra alone, cached per network
    (its file names carry the weights' hash) and kept whatever cube terms made its error
    maps: the fits undo them (:func:`spaxel_errors`).
    """
    from napari_galam.models.registry import read_model_card
    from napari_galam.simulate.writers import survey_cube_filename, write_survey_cube

    with weights_from(folder):
        card = read_model_card(SPECTRA)
    terms = card_cube_terms(card, layout)
    name = f"{family}_{layout}_z{redshift:g}_{seed}_{index}"
    cache = workdir / (f"{name}_{card['sha256'][:12]}.npz" if calibration else f"{name}.npz")
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            if (
                "ss_cube_terms_json" in saved.files
                and str(saved["weights_sha256"]) == card["sha256"]
                and (calibration or str(saved["ss_cube_terms_json"]) == terms)
            ):
                return {key: saved[key] for key in saved.files}

    start = time.perf_counter()
    cube = render(family, layout, redshift, seed, index, library)
    truth = cube.truth
    data: dict[str, Any] = {
        "family": family, "layout": layout, "redshift": redshift, "seed": seed, "index": index,
        "radius": np.asarray(truth.r_over_re, np.float32),
        "true_log_age": np.asarray(truth.log_age, np.float32),
        "true_mh": np.asarray(truth.mh, np.float32),
        "true_gradient_log_age": truth.observed_gradient_log_age,
        "true_gradient_mh": truth.observed_gradient_mh,
        "psf_fwhm_arcsec": cube.psf_fwhm_arcsec, "snr_at_re": cube.snr_at_re,
        "re_pixels": truth.re_pixels, "shape": np.asarray(cube.flux.shape),
        "render_seconds": time.perf_counter() - start,
    }  # fmt: skip
    seen = card.get("training_data", {}).get("history_families", [])
    data["weights"] = folder
    data["weights_sha256"] = card["sha256"]
    data["seen"] = family in seen
    data["ss_cube_terms_json"] = terms
    models = {SPECTRA: MODELS[SPECTRA]} if calibration else MODELS
    with tempfile.TemporaryDirectory(dir=workdir) as temp:
        path = write_survey_cube(Path(temp) / survey_cube_filename(layout, seed, index), cube)
        for model, prefix in models.items():
            start = time.perf_counter()
            maps, why = _map(path, model, folder if model == SPECTRA else SHIPPED)
            data[f"{prefix}_seconds"] = time.perf_counter() - start
            data[f"{prefix}_error"] = why
            if maps is not None:
                data[f"{prefix}_log_age"] = np.asarray(maps["LOG_AGE"], np.float32)
                data[f"{prefix}_mh"] = np.asarray(maps["MH"], np.float32)
                if model == SPECTRA:
                    data["snr"] = np.asarray(maps["SNR"], np.float32)
                    data["ss_log_age_err"] = np.asarray(maps["LOG_AGE_ERR"], np.float32)
                    data["ss_mh_err"] = np.asarray(maps["MH_ERR"], np.float32)
    data = {key: np.asarray(value) for key, value in data.items()}
    tmp = cache.with_name(cache.stem + ".part.npz")
    np.savez(tmp, **data)
    tmp.replace(cache)
    return data


def card_cube_terms(card: dict[str, Any], layout: str) -> str:
    """The cube terms a card gives cubes of ``layout`` (JSON of ``CubeTerms.describe``)."""
    from napari_galam.models.cube_calibration import cube_terms_for

    terms = cube_terms_for(card["calibration"]["uncertainty"], SPECTRA, READER_LAYOUT[layout])
    return json.dumps(terms.describe(), sort_keys=True)


def _has(cube: dict[str, np.ndarray], prefix: str) -> bool:
    return f"{prefix}_log_age" in cube


def spaxel_metrics(cubes: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Robust SD and bias at S/N >= 10: spaxel-spectra alone, and both models on shared spaxels."""
    from napari_galam.models.train_spaxel_spectra import robust_metrics

    def pooled(chosen: list[dict], prefix: str, select) -> dict[str, dict[str, float]]:
        out = {}
        for key in QUANTITIES:
            diffs = [(c[f"{prefix}_{key}"] - c[f"true_{key}"])[select(c)] for c in chosen]
            d = np.concatenate(diffs) if diffs else np.zeros(0)
            out[key] = robust_metrics(np.zeros(d.size), d)
        return out

    def own(c: dict) -> np.ndarray:
        return (c["snr"] >= MIN_SNR) & np.isfinite(c["ss_log_age"])

    def shared(c: dict) -> np.ndarray:
        return own(c) & np.isfinite(c["sed_log_age"])

    mapped = [c for c in cubes if _has(c, "ss")]
    both = [c for c in mapped if _has(c, "sed")]
    return {
        "cubes": len(cubes),
        "seen": any(bool(c["seen"]) for c in cubes),
        "spaxel-spectra": {**pooled(mapped, "ss", own), "cubes_mapped": len(mapped)},
        "shared": {
            "cubes_mapped": len(both),
            "spaxel-spectra": pooled(both, "ss", shared),
            "sed-cnn": pooled(both, "sed", shared),
        },
        "not_mapped": sorted({str(c[f"{p}_error"]) for c in cubes for p in MODELS.values()
                              if str(c[f"{p}_error"])}),
    }  # fmt: skip


def gradient_error(cube: dict[str, np.ndarray], prefix: str) -> dict[str, float] | None:
    """(fitted - true) slope of one cube's maps, or None when the fit has too few spaxels."""
    from napari_galam.pipeline.evaluate import gradient_errors
    from napari_galam.simulate.survey_cubes import survey_layout

    if not _has(cube, prefix):
        return None
    spec = survey_layout(str(cube["layout"]))
    radius = cube["radius"]
    use = np.isfinite(cube[f"{prefix}_log_age"]) & (radius <= MAX_RADIUS)
    errors = gradient_errors(
        np.where(use, radius, np.nan)[None],
        {key: cube[f"{prefix}_{key}"][None] for key in QUANTITIES},
        {key: np.array([float(cube[f"true_gradient_{key}"])]) for key in QUANTITIES},
        psf_fwhm_pix=float(np.mean(spec.psf_range)) / spec.pixel_scale,
        max_radius=MAX_RADIUS,
        spaxel_errors=None,
    )
    if errors["log_age"]["error"].size == 0:
        return None
    return {key: float(errors[key]["error"][0]) for key in QUANTITIES}


def gradient_summary(errors: list[dict[str, float] | None]) -> dict[str, Any]:
    """SD, robust SD and mean of (fitted - true) over the cubes whose gradients were fitted."""
    from napari_galam.models.train_spaxel_spectra import robust_metrics

    fitted = [e for e in errors if e is not None]
    out: dict[str, Any] = {"cubes": len(errors), "fitted": len(fitted)}
    for key in QUANTITIES:
        values = np.array([e[key] for e in fitted])
        out[key] = {
            "sd": float(np.std(values)) if values.size > 1 else float("nan"),
            "mean": float(np.mean(values)) if values.size else float("nan"),
            "robust_sd": robust_metrics(np.zeros(values.size), values)["robust_sd"],
        }
    return out


def _calibration_script():
    """``scripts/calibrate_spectral_gradient_errors.py`` as a module."""
    sys.path.insert(0, str(Path(__file__).parent))
    import calibrate_spectral_gradient_errors

    return calibrate_spectral_gradient_errors


def spaxel_errors(cube: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Model minus truth, errors as mapped, errors without cube terms, S/N, and z95.

    Every spaxel spaxel-spectra mapped with an error, at spectral S/N >= 3; the first
    three arrays are ``(n, 2)`` (log age, [M/H]), the S/N ``(n,)``, then ``(n, 2)`` the
    half-width of the 95% interval in mapped errors (the cube terms' ``z95``). The errors
    without cube terms undo the card's terms the maps were made with
    (``calibrate_spectral_gradient_errors._spectra_errors``).
    """
    if not (_has(cube, "ss") and "ss_log_age_err" in cube):
        empty = np.zeros((0, 2))
        return empty, empty, empty, np.zeros(0), empty
    use = cube["snr"] >= COVERAGE_MIN_SNR
    for key in QUANTITIES:
        use &= np.isfinite(cube[f"ss_{key}"]) & np.isfinite(cube[f"ss_{key}_err"])
    from napari_galam.models.cube_calibration import CubeTerms

    error = np.stack([(cube[f"ss_{k}"] - cube[f"true_{k}"])[use] for k in QUANTITIES], axis=1)
    mapped = np.stack([cube[f"ss_{k}_err"][use] for k in QUANTITIES], axis=1)
    terms = CubeTerms.from_description(json.loads(str(cube["ss_cube_terms_json"])))
    without = terms.undo(mapped, cube["snr"][use])
    z95 = np.broadcast_to(np.asarray(terms.z95, np.float64), error.shape)
    return (error.astype(np.float64), mapped.astype(np.float64), without,
            cube["snr"][use].astype(np.float64), z95)  # fmt: skip


def error_coverage(parts: list[tuple[np.ndarray, ...]]) -> dict[str, dict[str, Any]]:
    """Coverage of the errors with and without cube terms over the spaxels of ``parts``.

    ``parts`` are :func:`spaxel_errors` of some cubes; returns, per variant and quantity,
    :func:`~napari_galam.models.uncertainty.coverage_by_bins` in the cube terms' S/N bins.
    """
    from napari_galam.models.cube_calibration import CUBE_SNR_EDGES
    from napari_galam.models.uncertainty import Z_95, coverage_by_bins

    error, mapped, without, snr, z95 = (
        np.concatenate([p[i] for p in parts]) if parts else np.zeros(0 if i == 3 else (0, 2))
        for i in range(5)
    )
    gaussian = np.full_like(z95, Z_95)  # the errors without cube terms: no z95 of their own
    return {
        variant: {
            key: coverage_by_bins(error[:, k], sigma[:, k], snr, CUBE_SNR_EDGES, z[:, k])
            for k, key in enumerate(QUANTITIES)
        }
        for variant, sigma, z in zip(VARIANTS, (mapped, without), (z95, gaussian), strict=True)
    }


def coverage_misses(entry: dict[str, Any], label: str) -> list[str]:
    """Where one group's coverage (of one variant) leaves issue #20's bands."""
    out = []
    for key in QUANTITIES:
        table = entry[key]
        for level, (lo, hi) in COVERAGE_BANDS.items():
            value = table[level]
            if table["n"] and not lo <= value <= hi:
                out.append(f"{label} {key}: {level[-2:]}% interval covers {value:.1%} "
                           f"(band {lo:.0%}-{hi:.0%}; n {table['n']})")  # fmt: skip
        for name, cell in table["by_snr"].items():
            for level, (lo, hi) in BIN_BANDS.items():
                value = cell[level]
                if cell["n"] and not lo <= value <= hi:
                    out.append(f"{label} {key} S/N {name}: {level[-2:]}% interval covers "
                               f"{value:.1%} (band {lo:.0%}-{hi:.0%}; n {cell['n']})")  # fmt: skip
    return out


def _pct(cell: dict[str, float], bands: dict[str, tuple[float, float]]) -> str:
    """``68 / 95`` coverage in percent, a ``*`` after each value outside its band."""
    if not cell["n"]:
        return "-"
    text = []
    for level, (lo, hi) in bands.items():
        text.append(f"{100 * cell[level]:.1f}" + ("" if lo <= cell[level] <= hi else "*"))
    return " / ".join(text)


def coverage_report(groups: dict[str, dict[str, dict[str, Any]]], title: str) -> list[str]:
    """Print one markdown table per variant of ``groups`` (label -> error_coverage)."""
    missed: list[str] = []
    for variant in VARIANTS:
        name = "errors as mapped (cube terms)" if variant == VARIANTS[0] else (
            "errors without the cube terms (spectra-calibrated)")  # fmt: skip
        print(f"\n### Coverage {title}, {name}: % within 1 sigma / the 95% interval, spectral S/N >= "
              f"{COVERAGE_MIN_SNR:g} (* outside 63-73 / 92-97, per bin 58-78 / 85-100)\n")  # fmt: skip
        first = next(iter(groups.values()))[variant]["log_age"]["by_snr"]
        print("| group | quantity | all | n | " + " | ".join(f"S/N {b}" for b in first) + " |")
        print("|---|---|---|---|" + "---|" * len(first))
        for label, entry in groups.items():
            for key in QUANTITIES:
                table = entry[variant][key]
                cells = [f"{_pct(c, BIN_BANDS)} ({c['n']})" for c in table["by_snr"].values()]
                print(f"| {label} | {key} | {_pct(table, COVERAGE_BANDS)} | {table['n']} | "
                      + " | ".join(cells) + " |")  # fmt: skip
            missed += [f"{variant}: {line}" for line in coverage_misses(entry[variant], label)]
    return missed


def _fmt(entry: dict[str, float]) -> str:
    return f"{entry['robust_sd']:.3f} ({entry['bias']:+.3f})" if entry["n"] else "-"


def misses(entry: dict[str, dict[str, float]], label: str) -> list[str]:
    """Where one model's per-spaxel metrics miss the targets, and by how much."""
    out = []
    for key in QUANTITIES:
        m = entry[key]
        if not m["n"]:
            continue
        if m["robust_sd"] > TARGETS[key]:
            out.append(f"{label} {key} SD {m['robust_sd']:.3f} > {TARGETS[key]} "
                       f"(+{m['robust_sd'] - TARGETS[key]:.3f})")  # fmt: skip
        if abs(m["bias"]) > TARGETS["bias"]:
            out.append(f"{label} {key} bias {m['bias']:+.3f} (|bias| - {TARGETS['bias']} = "
                       f"{abs(m['bias']) - TARGETS['bias']:.3f})")  # fmt: skip
    return out


def gradient_misses(entry: dict[str, Any], label: str) -> list[str]:
    """Where a pooled gradient error SD misses 0.05 dex/R_e."""
    return [
        f"{label} {key} gradient SD {entry[key]['sd']:.3f} > {TARGETS['gradient']} "
        f"(+{entry[key]['sd'] - TARGETS['gradient']:.3f})"
        for key in QUANTITIES
        if entry[key]["sd"] > TARGETS["gradient"]
    ]


def report(cells: dict, by_family: dict, by_layout: dict, pooled: dict) -> list[str]:
    """Print the markdown tables; return the list of missed targets."""
    missed: list[str] = []
    print("\n### Per spaxel, S/N >= 10, per layout and z with the families pooled (each "
          "read by the network that never saw it): robust SD (median bias), dex\n")  # fmt: skip
    print("| layout | z | spaxel-spectra log age | [M/H] | n | cubes | SED CNN log age | [M/H] |")
    print("|---|---|---|---|---|---|---|---|")
    for (layout, z), entry in pooled.items():
        own, shared = entry["spaxel-spectra"], entry["shared"]
        sed = ["cannot map"] * 2
        if shared["cubes_mapped"]:
            sed = [_fmt(shared["sed-cnn"][k]) for k in QUANTITIES]
        print("| " + " | ".join([layout, f"{z:g}", _fmt(own["log_age"]), _fmt(own["mh"]),
                                 str(own["log_age"]["n"]), str(entry["cubes"]), *sed]) + " |")  # fmt: skip
        missed += misses(own, f"{layout} z={z:g}, families pooled: spaxel-spectra")
    print("\n### Per spaxel, spectral S/N >= 10: robust SD (median bias), dex\n")
    print("| family | layout | z | spaxel-spectra log age | [M/H] | n | on shared spaxels: "
          "spaxel-spectra log age | [M/H] | SED CNN log age | [M/H] | n |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (family, layout, z), entry in cells.items():
        own, shared = entry["spaxel-spectra"], entry["shared"]
        label = f"{family} {layout} z={z:g}"
        name = family + (" (seen)" if entry["seen"] else "")
        row = [name, layout, f"{z:g}", _fmt(own["log_age"]), _fmt(own["mh"]),
               str(own["log_age"]["n"])]  # fmt: skip
        missed += misses(own, f"{label}: spaxel-spectra")
        if shared["cubes_mapped"]:
            ss, sed = shared["spaxel-spectra"], shared["sed-cnn"]
            part = f" ({shared['cubes_mapped']}/{entry['cubes']} cubes)"
            if shared["cubes_mapped"] == entry["cubes"]:
                part = ""
            row += [_fmt(ss["log_age"]), _fmt(ss["mh"]), _fmt(sed["log_age"]), _fmt(sed["mh"]),
                    f"{sed['log_age']['n']}{part}"]  # fmt: skip
            missed += misses(sed, f"{label}: SED CNN")
        else:
            row += ["", "", "cannot map", "cannot map", "0"]
        print("| " + " | ".join(row) + " |")
    print("\n### Gradient error, SD of (fitted - true) in dex/R_e (mean), per layout and z, "
          "families pooled\n")  # fmt: skip
    print("| layout | z | spaxel-spectra log age | [M/H] | cubes fitted | SED CNN log age | "
          "[M/H] | cubes fitted |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")

    def grad_cells(entry: dict[str, Any]) -> list[str]:
        if not entry["fitted"]:
            return ["-", "-", f"0/{entry['cubes']}"]
        return [f"{entry[k]['sd']:.3f} ({entry[k]['mean']:+.3f})" for k in QUANTITIES] + [
            f"{entry['fitted']}/{entry['cubes']}"
        ]

    for (layout, z), entry in by_layout.items():
        print("| " + " | ".join([layout, f"{z:g}", *grad_cells(entry["spaxel-spectra"]),
                                 *grad_cells(entry["sed-cnn"])]) + " |")  # fmt: skip
        for model, short in (("spaxel-spectra", "spaxel-spectra"), ("sed-cnn", "SED CNN")):
            missed += gradient_misses(entry[model], f"{layout} z={z:g}: {short}")
    print("\n### Gradient error per family, layouts and redshifts pooled\n")
    print("| family | spaxel-spectra log age | [M/H] | cubes fitted | SED CNN log age | [M/H] | "
          "cubes fitted |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for family, entry in by_family.items():
        print("| " + " | ".join([family, *grad_cells(entry["spaxel-spectra"]),
                                 *grad_cells(entry["sed-cnn"])]) + " |")  # fmt: skip
        for model, short in (("spaxel-spectra", "spaxel-spectra"), ("sed-cnn", "SED CNN")):
            missed += gradient_misses(entry[model], f"{family}: {short}")
    print("\n### Missed targets\n")
    for line in missed or ["none"]:
        print(f"- {line}")
    return missed


def _shipped_folder() -> Path:
    from napari_galam.models.registry import weights_dir

    with weights_from(SHIPPED):
        return weights_dir()


def shipped_copy(target: Path) -> str:
    """Copy the shipped ``spaxel-spectra`` and ``sed-cnn`` files into ``target`` (if absent).

    Returns the SHA-256 of ``target/spaxel-spectra.keras``, which must be the shipped one.
    """
    from napari_galam.models.registry import file_sha256

    source = _shipped_folder()
    target.mkdir(parents=True, exist_ok=True)
    for name in (SPECTRA, "sed-cnn"):
        for suffix in (".keras", ".json"):
            dest = target / f"{name}{suffix}"
            if not dest.is_file():
                part = dest.with_name(f".{dest.name}.part")
                shutil.copyfile(source / dest.name, part)
                part.replace(dest)
    sha = file_sha256(target / f"{SPECTRA}.keras")
    shipped = file_sha256(source / f"{SPECTRA}.keras")
    if sha != shipped:
        raise SystemExit(f"{target}: {SPECTRA}.keras is not the shipped one ({sha[:12]} "
                         f"instead of {shipped[:12]}); remove the folder to copy it afresh")  # fmt: skip
    return sha


def fold_folder(family: str, folder: str) -> str:
    """The family's fold folder, made from the shipped weights when that network never saw it."""
    from napari_galam.models.registry import read_model_card

    if folder == SHIPPED or Path(folder).resolve() == _shipped_folder().resolve():
        raise SystemExit(f"{family}: cube terms are not written into the package's weights; "
                         "give the family a folder of its own with --weights")  # fmt: skip
    if (Path(folder) / f"{SPECTRA}.keras").is_file():
        return folder
    with weights_from(SHIPPED):
        seen = read_model_card(SPECTRA).get("training_data", {}).get("history_families", [])
    if family in seen:
        raise SystemExit(f"{family}: no {SPECTRA}.keras in {folder}, and the shipped network "
                         "was trained on this family")  # fmt: skip
    sha = shipped_copy(Path(folder))
    print(f"{family}: {folder} holds a copy of the shipped network (sha256 {sha})", flush=True)
    return folder


def calibration_cubes(
    folder: str, excluded: str | None, settings: argparse.Namespace, library: Any
) -> list[dict[str, np.ndarray]]:
    """The calibration cubes of every family but ``excluded``, mapped by ``folder``'s network.

    ``settings.calibration_cubes`` cubes per family, layout and z (the evaluation's
    layouts and redshifts), drawn like the test cells but from the seeds of
    ``settings.calibration_seed`` (:func:`cell_seed`), so no galaxy is shared; cached in
    ``settings.lofo_root / "layout-calibration"`` per network.
    """
    from napari_galam.simulate.families import SFH_FAMILIES

    workdir = settings.lofo_root / "layout-calibration"
    workdir.mkdir(parents=True, exist_ok=True)
    return [
        mapped_cube(family, layout, z, cell_seed(settings.calibration_seed, family, layout, z),
                    index, folder=folder, workdir=workdir, library=library, calibration=True)
        for family in SFH_FAMILIES if family != excluded
        for layout in LAYOUTS
        for z in REDSHIFTS
        for index in range(settings.calibration_cubes)
    ]  # fmt: skip


def survey_draw_cubes(
    folder: str, excluded: str | None, settings: argparse.Namespace, library: Any
) -> list[dict[str, np.ndarray]]:
    """Calibration cubes drawn as ``galam simulate --kind cubes --layout L`` draws them.

    The survey's own redshift range and S/N (brighter, nearer galaxies than the test
    cells' S/N 10-40 at fixed z, so many spaxels of high S/N whose errors are one
    galaxy's offset): ``settings.calibration_survey_cubes`` per layout, families drawn
    from all five (``excluded``'s left out), seed ``settings.calibration_survey_seed``
    plus the layout's index, with emission lines. The files are written once into
    ``--lofo-root/layout-calibration-survey`` and mapped per network (cached beside
    them, named by the weights' hash) through ``galam map``'s path.
    """
    from astropy.table import Table

    from napari_galam.io.writers import read_maps
    from napari_galam.models.registry import read_model_card
    from napari_galam.pipeline.evaluate_cubes import read_truth_maps
    from napari_galam.pipeline.maps import map_cube_to_file
    from napari_galam.progress import run_to_end
    from napari_galam.simulate.survey_datasets import iter_simulate_survey_cubes, truth_table_name

    if settings.calibration_survey_cubes <= 0:
        return []
    root = settings.lofo_root / "layout-calibration-survey"
    root.mkdir(parents=True, exist_ok=True)
    with weights_from(folder):
        card = read_model_card(SPECTRA)
    out = []
    for index, layout in enumerate(LAYOUTS):
        seed = settings.calibration_survey_seed + index
        where = root / f"{layout}_{seed}_{settings.calibration_survey_cubes}"
        table_path = where / truth_table_name(layout, seed)
        if not table_path.is_file():
            if where.exists():
                shutil.rmtree(where)  # a run killed while writing: draw again
            run_to_end(iter_simulate_survey_cubes(
                where, layout=layout, n=settings.calibration_survey_cubes, seed=seed,
                families="all", library=library, emission=True,
            ))  # fmt: skip
        for row in Table.read(table_path, format="ascii.ecsv"):
            if str(row["family"]) == excluded:
                continue
            path = where / str(row["file"])
            cache = where / f"{path.stem}.{card['sha256'][:12]}.npz"
            if cache.is_file():
                with np.load(cache, allow_pickle=False) as saved:
                    out.append({key: saved[key] for key in saved.files})
                continue
            with weights_from(folder), tempfile.TemporaryDirectory(dir=where) as temp:
                target = Path(temp) / "maps.fits"
                map_cube_to_file(path, target, model=SPECTRA, min_snr=3.0)
                maps = read_maps(target).maps
            truth = read_truth_maps(path)
            data = {
                "family": str(row["family"]), "layout": layout,
                "redshift": float(row["redshift"]), "seed": seed,
                "true_log_age": truth["log_age"], "true_mh": truth["mh"],
                "radius": truth["radius"], "snr": maps["SNR"],
                "ss_log_age": maps["LOG_AGE"], "ss_mh": maps["MH"],
                "ss_log_age_err": maps["LOG_AGE_ERR"], "ss_mh_err": maps["MH_ERR"],
                "ss_cube_terms_json": card_cube_terms(card, layout),
                "weights_sha256": card["sha256"],
            }  # fmt: skip
            data = {key: np.asarray(value) for key, value in data.items()}
            part = cache.with_name(cache.stem + ".part.npz")
            np.savez(part, **data)
            part.replace(cache)
            out.append(data)
    return out


def _cap_per_layout(
    arrays: tuple[np.ndarray, ...], layouts: np.ndarray, cap: int
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """At most ``cap`` spaxels of each layout (a seeded random subset), to bound the fit's time."""
    rng = np.random.default_rng(0)
    keep = np.zeros(layouts.size, bool)
    for name in np.unique(layouts):
        index = np.flatnonzero(layouts == name)
        if index.size > cap:
            index = rng.choice(index, cap, replace=False)
        keep[index] = True
    return tuple(a[keep] for a in arrays), layouts[keep]


def califa_like_cubes(
    excluded: str | None, folder: str, settings: argparse.Namespace
) -> list[dict[str, np.ndarray]]:
    """The CALIFA-like cubes of ``scripts/calibrate_spectral_gradient_errors.py`` mapped by
    ``folder``'s network, seeds ``settings.califa_like_seeds`` (family ``SFH_FAMILIES[seed
    % 5]``, ``excluded``'s left out); none when the option is empty.

    The other simulator of CALIFA cubes
    (:func:`~napari_galam.simulate.samples.simulated_califa_cube`: nearby, large galaxies,
    many spaxels of high S/N): the CALIFA layout's terms are fitted on both. Cached in ``--lofo-root/spectral-gradients`` for the shipped weights
    (the calibration script's maps) and ``spectral-gradients-lofo-<family>`` for a fold's.
    """
    from napari_galam.models.registry import file_sha256
    from napari_galam.simulate.families import SFH_FAMILIES

    if not settings.califa_like_seeds:
        return []
    cal = _calibration_script()
    shipped = file_sha256(_shipped_folder() / f"{SPECTRA}.keras")
    reuse = file_sha256(Path(folder) / f"{SPECTRA}.keras") == shipped
    name = "spectral-gradients" if reuse else f"spectral-gradients-lofo-{excluded}"
    workdir = settings.lofo_root / name
    workdir.mkdir(parents=True, exist_ok=True)
    first, end = (int(v) for v in settings.califa_like_seeds.split(":"))
    chosen = [(s, SFH_FAMILIES[s % len(SFH_FAMILIES)]) for s in range(first, end)]
    with weights_from(folder):
        return [cal._mapped(s, f, workdir, SPECTRA) for s, f in chosen if f != excluded]


def _calibration_coverage(
    error: np.ndarray,
    sigma: np.ndarray,
    snr: np.ndarray,
    layouts: np.ndarray,
    z95: np.ndarray | None = None,
) -> dict[str, Any]:
    """Coverage overall and per layout, per quantity and S/N bin, of ``sigma``.

    The 95% interval is ``z95`` (``(n, 2)``) times ``sigma``, 1.96 times without it.
    """
    from napari_galam.models.cube_calibration import CUBE_SNR_EDGES
    from napari_galam.models.uncertainty import Z_95, coverage_by_bins

    z95 = np.full(sigma.shape, Z_95) if z95 is None else z95
    groups = {"all": np.ones(snr.size, bool)} | {
        READER_LAYOUT[lay]: layouts == READER_LAYOUT[lay] for lay in LAYOUTS
    }
    return {
        name: {
            key: coverage_by_bins(
                error[sel, k], sigma[sel, k], snr[sel], CUBE_SNR_EDGES, z95[sel, k]
            )
            for k, key in enumerate(QUANTITIES)
        }
        for name, sel in groups.items()
        if sel.any()
    }


def fit_layout_cube_terms(
    excluded: str | None, folder: str, settings: argparse.Namespace, library: Any
) -> dict[str, Any]:
    """Fit the cube terms of ``folder``'s network on calibration cubes of every layout.

    The :func:`calibration_cubes` without ``excluded``'s family give, on every mapped
    spaxel at S/N >= 3, one scale and floor per quantity
    (:func:`~napari_galam.models.cube_calibration.fit_cube_terms`) and on top of them
    S/N factors pooled and per layout
    (:func:`~napari_galam.models.cube_calibration.fit_cube_snr_factors`); they replace the
    card's ``calibration.uncertainty.cube`` (written atomically). Returns what was
    written.
    """
    from napari_galam.models.cube_calibration import cube_terms_for, fit_cube_section
    from napari_galam.models.registry import file_sha256, read_model_card, write_card_section

    sha = file_sha256(Path(folder) / f"{SPECTRA}.keras")
    with weights_from(folder):
        card = read_model_card(SPECTRA)
    if card["sha256"] != sha:
        raise SystemExit(f"{folder}: {SPECTRA}.keras does not match its card")
    start = time.perf_counter()
    with weights_from(folder):
        cubes = calibration_cubes(folder, excluded, settings, library)
    cubes += survey_draw_cubes(folder, excluded, settings, library)
    mapped_seconds = time.perf_counter() - start
    parts = [spaxel_errors(c) for c in cubes]
    error, _, sigma, snr, _ = (np.concatenate([p[i] for p in parts]) for i in range(5))
    layouts = np.concatenate(
        [
            np.full(p[3].size, READER_LAYOUT[str(c["layout"])])
            for p, c in zip(parts, cubes, strict=True)
        ]
    )
    califa_like = califa_like_cubes(excluded, folder, settings)
    if califa_like:
        more = _calibration_script()._spaxel_residuals(califa_like)
        keep = more[2] >= COVERAGE_MIN_SNR
        error, sigma, snr = (
            np.concatenate([a, b[keep]]) for a, b in zip((error, sigma, snr), more, strict=True)
        )
        layouts = np.concatenate([layouts, np.full(int(keep.sum()), "CALIFA")])
    (error, sigma, snr), layouts = _cap_per_layout((error, sigma, snr), layouts, settings.fit_cap)
    start = time.perf_counter()
    section = fit_cube_section(
        error, sigma, snr, layouts, min_spaxels=2000, levels=settings.scale_levels
    )
    fit_seconds = time.perf_counter() - start
    fitted = [
        (layouts == name, cube_terms_for({"cube": section}, SPECTRA, name))
        for name in sorted(set(layouts.tolist()))
    ]
    after, after_z95 = np.zeros_like(sigma), np.zeros_like(sigma)
    for select, layout_terms in fitted:
        after[select] = layout_terms.apply(sigma[select], snr[select])
        after_z95[select] = layout_terms.z95
    families = sorted({str(c["family"]) for c in cubes})
    cube = {
        **section,
        "method": (
            "error of a cube's spaxel = factor(S/N) * hypot(scale * sigma, floor), sigma the "
            "spectra-calibrated error; scale and floor make 68% and 95% (at 1.96 sigma) "
            "coverage closest to nominal in every bin of the spectral S/N (3-10, 10-20, "
            "20-40, >= 40), then the factors make them hold in S/N windows a factor 2 wide "
            "(interpolated in log S/N); z95, the "
            "half-width of the 95% interval in those errors, is the 95% quantile of "
            "|error|/error on the same spaxels; fitted on the calibration cubes of each "
            "layout for by_layout (CALIFA, MaNGA, MUSE cubes) and on all of them for the "
            "pooled terms (any other layout)"
        ),
        "note": (
            "scripts/evaluate_spaxel_spectra_layouts.py "
            + (f"--fit-cube-terms: fitted without the {excluded} cubes, the family this "
               "network is tested on" if excluded else "--fit-shipped")
        ),
        "calibration_cubes": {
            "seed": settings.calibration_seed, "per_cell": settings.calibration_cubes,
            "layouts": [READER_LAYOUT[lay] for lay in LAYOUTS], "redshifts": list(REDSHIFTS),
            "excluded_family": excluded, "families": families, "cubes": len(cubes),
            "califa_like_seeds": settings.califa_like_seeds,
            "survey_draws": {"per_layout": settings.calibration_survey_cubes,
                             "seed": settings.calibration_survey_seed},
            "spaxels": int(snr.size),
            "before": _calibration_coverage(error, sigma, snr, layouts),
            "after": _calibration_coverage(error, after, snr, layouts, after_z95),
        },
    }  # fmt: skip
    calibration = card.get("calibration", {})
    test_cubes = calibration["uncertainty"].get("cube", {}).get("test_cubes")
    if test_cubes is not None and excluded is None:  # the CALIFA-like check, kept
        cube["test_cubes"] = test_cubes
    written = {**calibration, "uncertainty": {**calibration["uncertainty"], "cube": cube}}
    directory = None if excluded is None else folder
    path = write_card_section(SPECTRA, "calibration", written, directory=directory)
    terms = {k: section[k] for k in QUANTITIES}
    print(f"{excluded or 'shipped'}: pooled cube terms {terms} from {len(cubes)} cubes of "
          f"{', '.join(families)} ({snr.size} spaxels; mapping {mapped_seconds:.0f} s, fit "
          f"{fit_seconds:.0f} s); wrote {path}", flush=True)  # fmt: skip
    for name, entry in section["by_layout"].items():
        curve = entry["by_snr_scale"]  # log_age / mh entries hold scale, floor and z95
        print(f"  {name}: {({k: entry[k] for k in QUANTITIES})}; S/N factors at "
              f"{curve['snr']}: log age {curve['log_age']}, [M/H] {curve['mh']}")  # fmt: skip
    for label, table in (("before", cube["calibration_cubes"]["before"]),
                         ("after", cube["calibration_cubes"]["after"])):  # fmt: skip
        for group, entry in table.items():
            cells = [f"{k} {v['within_68']:.1%} / {v['within_95']:.1%}" for k, v in entry.items()]
            print(f"  calibration cubes {label}, {group}: " + "; ".join(cells))
    return {**cube, "weights_sha256": sha, "mapping_seconds": round(mapped_seconds, 1)}


def fold_terms(folder: str) -> dict[str, Any]:
    """The cube terms in a fold's card (``None`` values without a cube section)."""
    from napari_galam.models.registry import read_model_card

    with weights_from(folder):
        card = read_model_card(SPECTRA)
    cube = card["calibration"]["uncertainty"].get("cube") or {}
    return {
        "weights_sha256": card["sha256"],
        **{key: cube.get(key) for key in QUANTITIES},
        "excluded_family": cube.get("calibration_cubes", {}).get("excluded_family"),
        "calibration_seed": cube.get("calibration_cubes", {}).get("seed"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="all", help="'all' or names, comma-separated")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated")
    parser.add_argument("--redshifts", default=",".join(f"{z:g}" for z in REDSHIFTS))
    parser.add_argument("--cubes", type=int, default=10, help="cubes per family, layout and z")
    parser.add_argument("--seed", type=int, default=9000, help="SEED of the cells' seeds")
    parser.add_argument("--lofo-root", type=Path, default=Path("runs"),
                        help="folder holding ss-lofo-<family>/spaxel-spectra.keras")  # fmt: skip
    parser.add_argument("--weights", action="append", default=[], metavar="FAMILY=FOLDER",
                        help="spectral network of a family's cubes ('shipped': the package's)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=Path("runs/layout-lofo"))
    parser.add_argument("--out", type=Path, default=None, help="JSON of every table")
    parser.add_argument("--fit-cube-terms", action="store_true",
                        help="first fit each family's network's cube terms without it")  # fmt: skip
    parser.add_argument("--fit-only", action="store_true", help="stop after --fit-cube-terms")
    parser.add_argument("--scale-levels", choices=("68+95", "68"), default="68+95",
                        help="what the fitted cube terms aim at (models/cube_calibration.py"
                        "::fit_cube_section): 68%% and 95%% at 1.96 sigma, or 68%% alone")
    parser.add_argument("--fit-shipped", action="store_true",
                        help="fit the shipped network's cube terms on every family's "
                             "calibration cubes and write them into the package's card")  # fmt: skip
    parser.add_argument("--calibration-seed", type=int, default=30000,
                        help="SEED of the calibration cubes' seeds (as --seed)")  # fmt: skip
    parser.add_argument("--calibration-cubes", type=int, default=4,
                        help="calibration cubes per family, layout and z")  # fmt: skip
    parser.add_argument("--calibration-survey-cubes", type=int, default=30,
                        help="calibration cubes per layout drawn as galam simulate --layout "
                             "draws them (the survey's z and S/N)")  # fmt: skip
    parser.add_argument("--calibration-survey-seed", type=int, default=50000)
    parser.add_argument("--fit-cap", type=int, default=100000,
                        help="most spaxels per layout in a fit (a random subset)")  # fmt: skip
    parser.add_argument("--califa-like-seeds", default="700:820",
                        help="FIRST:END of the CALIFA-like cubes also fitted for CALIFA "
                             "('' for none)")  # fmt: skip
    args = parser.parse_args(argv)

    from napari_galam.simulate.families import parse_families
    from napari_galam.simulate.populations import default_library
    from napari_galam.simulate.survey_datasets import check_redshift

    families = parse_families(args.families)
    layouts = [name.strip().lower() for name in args.layouts.split(",")]
    if any(name not in LAYOUTS for name in layouts):
        raise SystemExit(f"--layouts: expected names among {', '.join(LAYOUTS)}")
    redshifts = [check_redshift(float(z))[0] for z in args.redshifts.split(",")]
    folders = weights_folders(args.lofo_root, args.weights)
    fits: dict[str, Any] = {}
    library = default_library()
    if args.fit_shipped:
        fits["shipped"] = fit_layout_cube_terms(None, str(_shipped_folder()), args, library)
    if args.fit_cube_terms or args.fit_only:
        start = time.perf_counter()
        for family in families:
            folder = fold_folder(family, folders[family])
            fits[family] = fit_layout_cube_terms(family, folder, args, library)
        print(f"cube terms fitted for {len(fits)} folds in {time.perf_counter() - start:.0f} s")
    if args.fit_only:
        return 0
    for family in families:
        folder = folders[family]
        if folder != SHIPPED and not (Path(folder) / f"{SPECTRA}.keras").is_file():
            raise SystemExit(f"{family}: no {SPECTRA}.keras in {folder} (bulge-disc: run "
                             "with --fit-cube-terms to make it)")  # fmt: skip
    terms = {family: fold_terms(folders[family]) for family in families}
    print("\n### Cube terms of each family's network (scale, floor in dex)\n")
    print("| family | weights | sha256 | log age scale | floor | [M/H] scale | floor | "
          "fitted without |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for family, entry in terms.items():
        values = [f"{entry[k][part]:g}" if entry[k] else "-" for k in QUANTITIES
                  for part in ("scale", "floor")]  # fmt: skip
        print(f"| {family} | {folders[family]} | {entry['weights_sha256'][:12]} | "
              + " | ".join(values) + f" | {entry['excluded_family'] or '-'} |")  # fmt: skip
    args.workdir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    cubes: dict[tuple[str, str, float], list[dict[str, np.ndarray]]] = {}
    for family in families:
        for layout in layouts:
            for z in redshifts:
                seed = cell_seed(args.seed, family, layout, z)
                cubes[family, layout, z] = [
                    mapped_cube(family, layout, z, seed, index, folder=folders[family],
                                workdir=args.workdir, library=library)
                    for index in range(args.cubes)
                ]  # fmt: skip
                timing = {p: sum(float(c[f"{p}_seconds"]) for c in cubes[family, layout, z])
                          for p in ("render", *MODELS.values())}  # fmt: skip
                print(f"{family} {layout} z={z:g} seed {seed}: {args.cubes} cubes "
                      f"(render {timing['render']:.0f} s, spaxel-spectra {timing['ss']:.0f} s, "
                      f"sed-cnn {timing['sed']:.0f} s; {time.perf_counter() - start:.0f} s in all)",
                      flush=True)  # fmt: skip

    cells = {key: spaxel_metrics(chosen) for key, chosen in cubes.items()}
    grads = {
        key: {model: [gradient_error(c, prefix) for c in chosen] for model, prefix in MODELS.items()}
        for key, chosen in cubes.items()
    }  # fmt: skip

    def pooled(match) -> dict[str, Any]:
        return {model: gradient_summary([e for key, by in grads.items() if match(key)
                                         for e in by[model]]) for model in MODELS}  # fmt: skip

    by_layout = {(lay, z): pooled(lambda k, lay=lay, z=z: k[1:] == (lay, z))
                 for lay in layouts for z in redshifts}  # fmt: skip
    by_family = {f: pooled(lambda k, f=f: k[0] == f) for f in families}
    pooled_cells = {
        (lay, z): spaxel_metrics([c for f in families for c in cubes[f, lay, z]])
        for lay in layouts
        for z in redshifts
    }
    missed = report(cells, by_family, by_layout, pooled_cells)
    parts = {key: [spaxel_errors(c) for c in chosen] for key, chosen in cubes.items()}

    def covered(match: Callable[[tuple[str, str, float]], bool]) -> dict[str, Any]:
        return error_coverage([p for key, by in parts.items() if match(key) for p in by])

    coverage = {
        "all": {"all": covered(lambda k: True)},
        "per_family": {f: covered(lambda k, f=f: k[0] == f) for f in families},
        "per_layout": {lay: covered(lambda k, lay=lay: k[1] == lay) for lay in layouts},
        "per_layout_z": {
            f"{lay} z={z:g}": covered(lambda k, lay=lay, z=z: k[1:] == (lay, z))
            for lay in layouts
            for z in redshifts
        },
        "per_cell": {
            f"{f} {lay} z={z:g}": covered(lambda k, key=(f, lay, z): k == key)
            for f, lay, z in cubes
        },
    }
    titles = {"all": "over every cube", "per_family": "per family (= per fold)",
              "per_layout": "per layout", "per_layout_z": "per layout and z"}  # fmt: skip
    coverage_missed: list[str] = []
    for group, title in titles.items():
        coverage_missed += coverage_report(coverage[group], title)
    for variant in VARIANTS:
        lines = [line for line in coverage_missed if line.startswith(variant)]
        print(f"\n### Coverage outside the bands, {variant.replace('_', ' ')}\n")
        for line in lines or ["none"]:
            print(f"- {line.removeprefix(variant + ': ')}")
    seconds = time.perf_counter() - start
    print(f"\n{sum(len(v) for v in cubes.values())} cubes, {seconds / 60:.1f} min")
    if args.out is not None:
        summary = {
            "settings": {
                "families": list(families), "layouts": layouts, "redshifts": redshifts,
                "cubes": args.cubes, "seed": args.seed,
                "seeds": {f"{f} {lay} {z:g}": cell_seed(args.seed, f, lay, z)
                          for f, lay, z in cubes},
                "weights": {f: folders[f] for f in families},
                "weights_sha256": {f: terms[f]["weights_sha256"] for f in families},
                "min_snr": MIN_SNR, "max_radius": MAX_RADIUS, "targets": TARGETS,
            },
            "spaxels": {f"{f} {lay} {z:g}": entry for (f, lay, z), entry in cells.items()},
            "spaxels_per_layout_z": {f"{lay} {z:g}": entry for (lay, z), entry in pooled_cells.items()},
            "gradients": {
                "per_layout_z": {f"{lay} {z:g}": e for (lay, z), e in by_layout.items()},
                "per_family": by_family,
                "per_cube": {f"{f} {lay} {z:g}": by for (f, lay, z), by in grads.items()},
            },
            "missed": missed,
            "cube_terms": terms,
            "cube_term_fits": fits,
            "coverage": {
                "min_snr": COVERAGE_MIN_SNR, "bands": COVERAGE_BANDS, "bin_bands": BIN_BANDS,
                **coverage, "missed": coverage_missed,
            },
            "seconds": round(seconds, 1),
        }  # fmt: skip
        tmp = args.out.with_name(args.out.name + ".part")
        tmp.write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
        tmp.replace(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
