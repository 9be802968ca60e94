"""Coverage of the SED CNN's calibrated per-spaxel errors on a history family never seen.

The shipped SED CNN's variance head, scales and ``z95`` are fitted on cubes of every
family, so their coverage on unseen cubes says nothing about a *kind* of galaxy the
network never met. This script takes the SED CNNs of ``scripts/leave_one_family_out.py
cubes`` (one per held-out family, ``RUNS/sed-<family>/final/sed-cnn.keras``: trained on
the cubes of the other four families) and, for each fold, repeats the shipped calibration
of ``scripts/calibrate_sed_uncertainty.py`` with the held-out family removed from every
file it uses:

- the variance head is fitted on the ``head`` file's cubes of the other families,
- the variance scales, the S/N curve (``by_snr_scale``, aimed at 68%) and ``z95`` come
  from the ``calibration`` files' other families,
- coverage (within 1 sigma and within ``z95`` sigma, overall and per bin of the SED's
  S/N) is measured on every ``--test`` file, for the held-out family's cubes, the other
  (seen) families' and all of them: over the spaxels ``galam evaluate --cubes`` scores
  (within 2 R_e) and over every mapped spaxel (S/N >= 3). The ``--test`` files are
  joined into one set, so each 68% share also gets a 90% interval from resampling whole
  cubes (:func:`napari_galam.models.uncertainty.group_coverage`), and the whole test
  set's S/N bins are tabled.

Usage (the shipped calibration's files; a few minutes a fold on 2 cores)::

    python scripts/heldout_family_sed_coverage.py head.h5 cal.h5 cal2.h5 cal3.h5 cal4.h5 \\
        --test test.h5 test2.h5 gtest.h5 gcal.h5 shiptest.h5 test3.h5 test4.h5 \\
        --runs runs/lofo-cubes-em --workdir runs/sed-heldout

Each fold's result goes to ``WORKDIR/sed_heldout_<fold>.json`` as soon as it is done (a
killed run resumes); the tables printed at the end are the README's. Nothing is shipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

QUANTITIES = ("log_age", "mh")
#: Bands the issue asks coverage to stay in (percent): 68% and 95% intervals.
BANDS = {"within_68": (63.0, 73.0), "within_95": (92.0, 97.0)}


def _subset(data: dict, select: np.ndarray) -> dict:
    """The spaxels ``select`` of a ``read_spaxels`` set (galaxy ids and cube count kept)."""
    return {key: (value if key == "cubes" else value[select]) for key, value in data.items()}


def _calibrate_fold(fold: str, head: dict, cal: dict, args: argparse.Namespace) -> tuple:
    """The fold's network with a head, scales, S/N curve and z95 fitted without its family."""
    from calibrate_sed_uncertainty import _factors, _final_errors, _fit_head, _raw, _snr_curve

    from napari_galam.models.sed_uncertainty import (
        fit_interval_95,
        fit_variance_scale,
        mahalanobis_squared,
        shape_reference,
    )
    from napari_galam.models.training_loop import load_keras_model
    from napari_galam.simulate.families import SFH_FAMILIES

    code = SFH_FAMILIES.index(fold)
    mean_model = load_keras_model(
        args.runs / f"sed-{fold}" / "final" / "sed-cnn.keras", compile=False
    )
    settings = argparse.Namespace(
        keep_head=False, epochs=args.epochs, min_snr=args.min_snr, window_ratio=2.0,
        min_window_spaxels=20000, scale_levels="68",
    )  # fmt: skip
    head = _subset(head, head["family"] != code)
    cal = _subset(cal, cal["family"] != code)
    model, seconds = _fit_head(settings, head, mean_model)
    out = _raw(model, cal["seds"])
    scale = {
        key: fit_variance_scale(out[:, k] - cal["labels"][:, k], out[:, 2 + k], levels="68")
        for k, key in enumerate(QUANTITIES)
    }
    by_snr = _snr_curve(cal, out, settings)
    residual, sigma = _final_errors(cal, out, _factors(cal["snr"], scale, by_snr))
    z95 = dict(zip(QUANTITIES, fit_interval_95(residual, sigma), strict=True))
    # the out-of-distribution reference, as shipped: S/N floor and SED shapes of the head's
    # spaxels within 2 R_e, shape cut at the 99.5th percentile of the calibration ones
    within = head["radius"] <= 2.0
    mean, precision = shape_reference(head["seds"][within])
    distance = mahalanobis_squared(cal["seds"][cal["radius"] <= 2.0], mean, precision)
    ood = (float(np.percentile(head["snr"][within], 0.5)), mean, precision,
           float(np.percentile(distance, 99.5)))  # fmt: skip
    fitted = {
        "head_seconds": seconds, "scale": scale, "by_snr_scale": by_snr, "z95": z95,
        "head_spaxels": int(head["seds"].shape[0]), "calibration_spaxels": int(cal["seds"].shape[0]),
        "ood_min_snr": ood[0], "ood_shape_cut": ood[3],
    }  # fmt: skip
    return model, fitted, ood


def _test_coverage(model, fitted: dict, ood: tuple, test: dict, code: int) -> dict:
    """Coverage on one test set: held-out family, seen families, all; within 2 R_e and all.

    ``held_out_unflagged`` is the held-out family's spaxels the fold's out-of-distribution
    flag passes (``flagged`` gives each group's flagged share, ``shape_flagged`` the share
    flagged for the SED's shape alone).
    """
    from calibrate_sed_uncertainty import _factors, _final_errors, _ood_codes, _raw

    from napari_galam.models.sed_uncertainty import OOD_SHAPE, coverage_by_snr

    out = _raw(model, test["seds"])
    factors = _factors(test["snr"], fitted["scale"], fitted["by_snr_scale"])
    residual, sigma = _final_errors(test, out, factors)
    codes = _ood_codes(test, *ood)
    groups = {"held_out": test["family"] == code, "seen": test["family"] != code}
    groups["all"] = np.ones_like(groups["seen"])
    groups["held_out_unflagged"] = groups["held_out"] & (codes == 0)
    result: dict = {}
    for label, select in groups.items():
        for part, where in (("within_2re", test["radius"] <= 2.0), ("mapped", None)):
            chosen = select if where is None else select & where
            entry = {
                key: coverage_by_snr(
                    residual[chosen, k],
                    sigma[chosen, k],
                    test["snr"][chosen],
                    z95=fitted["z95"][key],
                    cubes=test["galaxy"][chosen],
                )
                for k, key in enumerate(QUANTITIES)
            }
            entry["cubes"] = int(np.unique(test["galaxy"][chosen]).size)
            entry["flagged"] = float(np.mean(codes[chosen] > 0)) if chosen.any() else 0.0
            entry["shape_flagged"] = (
                float(np.mean((codes[chosen] & OOD_SHAPE) > 0)) if chosen.any() else 0.0
            )
            result[f"{label}/{part}"] = entry
    return result


def _pool(entries: list[dict]) -> dict:
    """Counts of several sets' coverage dicts (``coverage_by_snr``) added up."""

    def add(covers: list[dict]) -> dict:
        n = sum(c["n"] for c in covers)
        within = {
            level: sum(c[level] * c["n"] for c in covers) / n if n else float("nan")
            for level in ("within_68", "within_95")
        }  # fmt: skip
        return {"n": n, **within}

    if len(entries) == 1:  # one (joined) test set: keep its per-cube intervals
        return entries[0]
    pooled = add(entries)
    labels = dict.fromkeys(label for e in entries for label in e["by_snr"])
    pooled["by_snr"] = {
        label: add([e["by_snr"][label] for e in entries if label in e["by_snr"]])
        for label in labels
    }
    return pooled


def _cell(cover: dict) -> str:
    """``68 / 95`` in percent, bold where outside the bands, and (where known) the 90%
    interval of the 68% share from resampling whole cubes."""
    out = []
    for level in ("within_68", "within_95"):
        value = 100 * cover[level]
        lo, hi = BANDS[level]
        out.append(f"{value:.1f}" if lo <= value <= hi else f"**{value:.1f}**")
    if "interval_68" in cover:
        low, high = (100 * v for v in cover["interval_68"])
        out[0] += f" ({low:.0f}-{high:.0f})"
    return " / ".join(out)


def _bin_range(cover: dict, min_spaxels: int) -> str:
    """The range of the S/N bins' 68% and 95% shares (bins of ``min_spaxels`` or more)."""
    bins = [c for c in cover["by_snr"].values() if c["n"] >= min_spaxels]
    if not bins:
        return "-"
    a = [100 * c["within_68"] for c in bins]
    b = [100 * c["within_95"] for c in bins]
    return f"{min(a):.1f}-{max(a):.1f} / {min(b):.1f}-{max(b):.1f}"


def _worst_bin(cover: dict, min_spaxels: int) -> str:
    """The S/N bin (>= ``min_spaxels``) whose 68% coverage is farthest from nominal."""
    bins = [(abs(c["within_68"] - 0.6827), label, c) for label, c in cover["by_snr"].items()
            if c["n"] >= min_spaxels]  # fmt: skip
    if not bins:
        return "-"
    _, label, c = max(bins, key=lambda item: item[0])
    return f"{label}: {100 * c['within_68']:.1f} / {100 * c['within_95']:.1f} ({c['n']})"


def tables(results: dict, part: str, min_spaxels: int) -> list[str]:
    """README tables: per fold, the held-out family, the seen ones and the whole test set."""
    lines = [
        f"Spaxels: {part}. Cells: log age 68 / 95 | [M/H] 68 / 95 (%), test sets pooled.",
        "",
        "| held-out family | held-out: log age | [M/H] | cubes, spaxels | seen: log age | [M/H] "
        "| whole test set: log age | [M/H] | held-out S/N bin furthest from 68% (log age; [M/H]) "
        "| whole test set, S/N bins (log age; [M/H]) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fold, result in results.items():
        pooled = {}
        for label in ("held_out", "seen", "all"):
            entries = [t[f"{label}/{part}"] for t in result["tests"].values()]
            pooled[label] = {key: _pool([e[key] for e in entries]) for key in QUANTITIES}
            pooled[label]["cubes"] = sum(e["cubes"] for e in entries)
        held = pooled["held_out"]
        lines.append(
            f"| {fold} | {_cell(held['log_age'])} | {_cell(held['mh'])} | {held['cubes']}, "
            f"{held['log_age']['n']} | {_cell(pooled['seen']['log_age'])} | "
            f"{_cell(pooled['seen']['mh'])} | {_cell(pooled['all']['log_age'])} | "
            f"{_cell(pooled['all']['mh'])} | {_worst_bin(held['log_age'], min_spaxels)}; "
            f"{_worst_bin(held['mh'], min_spaxels)} | "
            f"{_bin_range(pooled['all']['log_age'], min_spaxels)}; "
            f"{_bin_range(pooled['all']['mh'], min_spaxels)} |"
        )
    return lines


def flag_table(results: dict, part: str) -> list[str]:
    """Does the out-of-distribution flag mark the held-out family? Share flagged (shape
    alone in brackets), and coverage of the held-out spaxels the flag passes."""
    lines = [
        f"Spaxels: {part}. Flagged share, % (for the SED's shape alone); coverage 68 / 95 (%).",
        "",
        "| held-out family | held-out flagged | seen flagged | held-out, not flagged: log age "
        "| [M/H] | spaxels |",
        "|---|---|---|---|---|---|",
    ]
    for fold, result in results.items():
        tests = result["tests"].values()

        def share(label: str, key: str, tests=tests) -> float:
            entries = [t[f"{label}/{part}"] for t in tests]
            n = [e["log_age"]["n"] for e in entries]
            return 100 * sum(e[key] * k for e, k in zip(entries, n, strict=True)) / max(sum(n), 1)

        passed = [t[f"held_out_unflagged/{part}"] for t in tests]
        pooled = {key: _pool([e[key] for e in passed]) for key in QUANTITIES}
        lines.append(
            f"| {fold} | {share('held_out', 'flagged'):.1f} ({share('held_out', 'shape_flagged'):.1f}) "
            f"| {share('seen', 'flagged'):.1f} ({share('seen', 'shape_flagged'):.1f}) "
            f"| {_cell(pooled['log_age'])} | {_cell(pooled['mh'])} | {pooled['log_age']['n']} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("head", type=Path, help="cubes (HDF5) that fit the variance head")
    parser.add_argument("calibration", type=Path, nargs="+", help="cubes that fit the scales")
    parser.add_argument("--test", type=Path, nargs="+", required=True, help="cubes to measure on")
    parser.add_argument(
        "--runs", type=Path, required=True, help="leave_one_family_out.py cubes workdir"
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--folds", nargs="+", default=None, help="families (default all five)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--min-snr", type=float, default=3.0, help="the maps' S/N floor")
    parser.add_argument("--min-bin-spaxels", type=int, default=1000,
                        help="smallest S/N bin the tables name as the worst")  # fmt: skip
    args = parser.parse_args(argv)

    from calibrate_sed_uncertainty import _join, read_spaxels

    from napari_galam.simulate.families import SFH_FAMILIES

    folds = args.folds or list(SFH_FAMILIES)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    data: dict = {}
    for fold in folds:
        store = args.workdir / f"sed_heldout_{fold}.json"
        if store.is_file():
            results[fold] = json.loads(store.read_text())
            continue
        if not data:
            start = time.perf_counter()
            data["head"] = read_spaxels(args.head, min_snr=args.min_snr)
            data["cal"] = _join([read_spaxels(p, min_snr=args.min_snr) for p in args.calibration])
            # one joined set (cube ids kept apart), so coverage can resample whole cubes
            tests = [read_spaxels(p, min_snr=args.min_snr) for p in args.test]
            data["tests"] = {"pooled": _join(tests)}
            print(f"read in {time.perf_counter() - start:.0f} s", flush=True)
        start = time.perf_counter()
        model, fitted, ood = _calibrate_fold(fold, data["head"], data["cal"], args)
        code = SFH_FAMILIES.index(fold)
        tests = {
            name: _test_coverage(model, fitted, ood, test, code)
            for name, test in data["tests"].items()
        }
        result = {"fitted": fitted, "tests": tests, "seconds": time.perf_counter() - start}
        tmp = store.with_suffix(".part")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(store)
        results[fold] = result
        print(f"{fold}: z95 {fitted['z95']}, {result['seconds']:.0f} s", flush=True)
    for part in ("within_2re", "mapped"):
        print("\n".join(tables(results, part, args.min_bin_spaxels)))
        print()
        print("\n".join(flag_table(results, part)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
