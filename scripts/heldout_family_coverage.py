"""Coverage of the calibrated per-galaxy errors on a star-formation-history family never seen.

The shipped heads are calibrated on galaxies of every family, so their coverage on unseen
galaxies says nothing about a *kind* of galaxy the network never met. This script takes
the networks of ``scripts/leave_one_family_out.py cutouts --models all`` (one set per
held-out family, in ``RUNS/galaxies-<family>/final/``) and, for each fold, repeats the
shipped calibration with the held-out family removed from every split it uses:

- the variance head is fitted on the ``fit`` file's galaxies of the *other* families,
- the variance scales, the half-width ``z95`` of the 95% interval (the 95% quantile of
  ``|error| / sigma`` once scaled) and the OOD threshold come from the ``calibrate``
  file's other families,
- coverage (within 1 sigma and within ``z95`` sigma, overall and per S/N bin of ``galam
  evaluate``) is measured on the ``test`` file's galaxies of the held-out family, beside
  the same numbers for the test file's other (seen) families.

Usage (the shipped calibration's files; QA inputs are cached in ``--workdir``)::

    python scripts/heldout_family_coverage.py fit.h5 calibrate.h5 test.h5 \\
        --runs runs/lofo-mml --workdir runs/uncertainty

Every fold's result goes to ``WORKDIR/heldout_coverage_<test file>.json`` as soon as it
is done (a killed run resumes; a fold stored without its ``z95`` is redone); the tables
printed at the end are the README's: the held-out family beside the seen ones, and the
whole test file per fold (unseen galaxies of every family, one family never seen by that
fold's networks). Nothing is shipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FAMILIES = ("bulge-disc", "exponential", "delayed", "bursty", "quenched")
MODELS = ("spectra-only", "image-only", "mmlforgalam")


def _families(path: Path) -> np.ndarray:
    """Each galaxy's family name (``truth/family`` indexes the file's ``family_names``)."""
    import h5py

    with h5py.File(path, "r") as handle:
        names = handle.attrs["family_names"]
        names = json.loads(names) if isinstance(names, str) else [str(n) for n in names]
        index = handle["truth/family"][()].astype(np.int64)
    return np.asarray(names)[index]


def _rows(name: str, data: dict, family: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Model inputs, truth, S/N and family of the galaxies model ``name`` is shown (the
    selection of the shipped calibration)."""
    from calibrate_galaxy_uncertainty import model_rows

    rows, x = model_rows(name, data, size)
    return {"x": x, "truth": data["truth"][rows], "snr": data["snr"][rows], "family": family[rows]}


def _worst_bin(cover: dict) -> tuple[str, float, int]:
    """The S/N bin (with >= 30 galaxies) whose 68% coverage is farthest from nominal."""
    worst = ("-", float("nan"), 0)
    for label, c in cover["by_snr"].items():
        if c["n"] >= 30 and not (abs(c["within_68"] - 0.6827) <= abs(worst[1] - 0.6827)):
            worst = (label, float(c["within_68"]), int(c["n"]))
    return worst


def _fold(fold: str, name: str, runs: Path, parts: dict, args: argparse.Namespace) -> dict:
    """Calibrate fold ``fold``'s network ``name`` without its family; coverage on it."""
    from napari_galam.models.galaxy_uncertainty import calibrate_galaxy_model
    from napari_galam.models.training_loop import load_keras_model
    from napari_galam.models.uncertainty import coverage_by_bins
    from napari_galam.pipeline.evaluate import SNR_BINS

    model = load_keras_model(runs / f"galaxies-{fold}" / "final" / f"{name}.keras", compile=False)
    seen = {key: part["family"] != fold for key, part in parts.items()}
    fit, cal, test = parts["fit"], parts["calibrate"], parts["test"]
    with tempfile.TemporaryDirectory() as tmp:
        head, section, _ = calibrate_galaxy_model(
            name,
            model,
            (fit["x"][seen["fit"]], fit["truth"][seen["fit"]]),
            (cal["x"][seen["calibrate"]], cal["truth"][seen["calibrate"]]),
            None,
            snr_edges=SNR_BINS,
            splits={},
            redshift_range=None,
            head_path=Path(tmp) / "head.npz",
            steps=args.steps,
        )
    from napari_galam.models.galaxy_uncertainty import feature_model, head_inputs

    both = feature_model(name, model)
    out = np.concatenate(
        [
            np.asarray(both.predict_on_batch(np.asarray(test["x"][i : i + 256], np.float32)))
            for i in range(0, len(test["x"]), 256)
        ]
    )
    sigma = head.sigma(head_inputs(name, out[:, :-2], test["x"]))
    error = out[:, -2:].astype(np.float64) - test["truth"]
    z95 = [float(section[q]["z95"]) for q in head.quantities]
    result: dict = {"scales": [float(s) for s in head.scale], "z95": z95}
    every = np.ones(len(error), bool)
    for label, select in (("held_out", ~seen["test"]), ("seen", seen["test"]), ("all", every)):
        result[label] = {
            q: coverage_by_bins(
                error[select, k], sigma[select, k], test["snr"][select], SNR_BINS, z95=z95[k]
            )
            for k, q in enumerate(head.quantities)
        }
    return result


def _table(results: dict) -> list[str]:
    lines = [
        "| held-out family | model | quantity | n | 68% held out (seen) | 95% held out (seen) "
        "| S/N bin farthest from 68% |",
        "|---|---|---|---|---|---|---|",
    ]
    for fold in FAMILIES:
        for name in MODELS:
            entry = results.get(fold, {}).get(name)
            if entry is None:
                continue
            for q, label in (("log_age", "log age"), ("mh", "[M/H]")):
                held, seen = entry["held_out"][q], entry["seen"][q]
                bin_label, bin_cover, bin_n = _worst_bin(held)
                lines.append(
                    f"| {fold} | {name} | {label} | {held['n']} | {held['within_68']:.1%} "
                    f"({seen['within_68']:.1%}) | {held['within_95']:.1%} "
                    f"({seen['within_95']:.1%}) | {bin_label}: {bin_cover:.0%} of {bin_n} |"
                )
    return lines


def _pooled_table(results: dict) -> list[str]:
    """Coverage on the whole test file per fold: unseen galaxies of every family, one of
    them a family the network never met (the test set the issue names)."""
    lines = [
        "| held-out family | model | quantity | n | 68% | 95% | S/N bin farthest from 68% |",
        "|---|---|---|---|---|---|---|",
    ]
    for fold in FAMILIES:
        for name in MODELS:
            entry = results.get(fold, {}).get(name)
            if entry is None or "all" not in entry:
                continue
            for q, label in (("log_age", "log age"), ("mh", "[M/H]")):
                every = entry["all"][q]
                bin_label, bin_cover, bin_n = _worst_bin(every)
                lines.append(
                    f"| {fold} | {name} | {label} | {every['n']} | {every['within_68']:.1%} | "
                    f"{every['within_95']:.1%} | {bin_label}: {bin_cover:.0%} of {bin_n} |"
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fit", type=Path, help="simulated cutouts that train the variance head")
    parser.add_argument("calibrate", type=Path, help="simulated cutouts for the scaling factors")
    parser.add_argument("test", type=Path, help="simulated cutouts for the coverage")
    parser.add_argument("--runs", type=Path, required=True, help="leave-one-family-out workdir")
    parser.add_argument("--workdir", type=Path, default=Path("runs/uncertainty"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--folds", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps of the head")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).parent))
    from calibrate_galaxy_uncertainty import _qa_inputs

    args.workdir.mkdir(parents=True, exist_ok=True)
    store = args.workdir / f"heldout_coverage_{args.test.stem}.json"
    results = json.loads(store.read_text()) if store.is_file() else {}
    start = time.time()
    files = {"fit": args.fit, "calibrate": args.calibrate, "test": args.test}
    data = {key: _qa_inputs(path, args.workdir) for key, path in files.items()}
    family = {key: _families(path) for key, path in files.items()}
    for name in args.models:
        size = 64 if name == "spectra-only" else None
        parts: dict | None = None
        for fold in args.folds:
            if "z95" in results.get(fold, {}).get(name, {}):
                continue
            final = args.runs / f"galaxies-{fold}" / "final" / f"{name}.keras"
            if not final.is_file():
                print(f"{fold}: no {final}; skipped", flush=True)
                continue
            if parts is None:
                if size is None:
                    from napari_galam.models.training_loop import load_keras_model

                    size = int(load_keras_model(final, compile=False).inputs[0].shape[1])
                parts = {k: _rows(name, data[k], family[k], size) for k in files}
            t0 = time.time()
            results.setdefault(fold, {})[name] = _fold(fold, name, args.runs, parts, args)
            tmp = store.with_suffix(".json.part")
            tmp.write_text(json.dumps(results, indent=1, default=float))
            tmp.replace(store)
            print(f"{fold} / {name}: {time.time() - t0:.0f} s", flush=True)
    print("\n".join(_table(results)))
    print("\nThe whole test file per fold (every family, the held-out one among them):")
    print("\n".join(_pooled_table(results)))
    print(f"done in {(time.time() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
