"""Calibrate the SED CNN's own error on radial gradients, and check it on other cubes.

Usage (about a minute on a 2-core CPU, after simulating two sets of unseen cubes)::

    galam simulate --kind cubes -n 100 --seed 201 --no-cubes -o cal.h5
    galam simulate --kind cubes -n 100 --seed 202 --no-cubes -o test.h5
    python scripts/calibrate_gradient_errors.py cal.h5 test.h5 --write-card

A gradient fitted on a predicted map is wrong for two reasons: the spaxels scatter (a
statistical error, which a bootstrap over independent resolution elements measures per
galaxy) and the model reads some galaxies' gradients wrongly as a whole (its own error,
the same kind of error for every map it makes). The second is what the statistical part
leaves unexplained on the calibration cubes: the error that, added in quadrature,
makes the quoted intervals hold the calibration cubes' true slopes as often as they claim
(``calibrate_gradient_model_sd`` in
``pipeline/evaluate.py``). It is stored in the model card (``calibration.gradient``), and
the coverage it gives is measured on the test cubes, which the calibration never saw:
the share of cubes whose true slope lies within the quoted 1 and 1.96 sigma.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _errors(path: Path, model_sd: dict[str, float] | None) -> dict:
    from napari_galam.models.inference import predict_seds
    from napari_galam.pipeline.evaluate import evaluate_spaxels

    return evaluate_spaxels(path, predict_seds, model_sd=model_sd)


def _dataset_seed(path: Path) -> int | None:
    card = path.with_suffix(".json")
    try:
        return int(json.loads(card.read_text())["seed"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "calibration", type=Path, nargs="+", help="simulated cubes (.h5) for the fit (one or more)"
    )
    parser.add_argument("test", type=Path, help="other simulated cubes (.h5) for coverage")
    parser.add_argument(
        "--write-card", action="store_true", help="store the result in sed-cnn's model card"
    )
    args = parser.parse_args(argv)

    from napari_galam.core.gradients import ELEMENT_SIDE_FWHM
    from napari_galam.models.registry import read_model_card, write_card_section
    from napari_galam.pipeline.evaluate import calibrate_gradient_model_sd, interval_coverage

    start = time.perf_counter()
    parts = [_errors(path, None) for path in args.calibration]
    calibration = {
        "gradient_galaxies": sum(p["gradient_galaxies"] for p in parts),
        "psf_fwhm_pix": parts[0]["psf_fwhm_pix"],
        "gradient_errors": {
            key: {
                field: np.concatenate([p["gradient_errors"][key][field] for p in parts])
                for field in ("error", "stat")
            }
            for key in parts[0]["gradient_errors"]
        },
    }
    model_sd = calibrate_gradient_model_sd(calibration["gradient_errors"])
    test = _errors(args.test, model_sd)
    seconds = time.perf_counter() - start

    names = ", ".join(str(p) for p in args.calibration)
    print(f"calibration: {names} ({calibration['gradient_galaxies']} cubes)")
    print(f"test:        {args.test} ({test['gradient_galaxies']} cubes), {seconds:.0f} s in all")
    print("| quantity | model's own SD | test: within 1 sigma | within 1.96 sigma | "
          "paper's subsample SD: within 1 sigma | SD of (fitted - true) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    coverage = {}
    for key in ("log_age", "mh"):
        cover = test["gradient_coverage"][key]
        coverage[key] = cover["quoted"]
        errors = test["gradient_errors"][key]["error"]
        print(
            f"| {key} | {model_sd[key]:.4f} | {cover['quoted']['within_68']:.0%} | "
            f"{cover['quoted']['within_95']:.0%} | "
            f"{cover['paper_subsample_sd']['within_68']:.0%} | {np.std(errors):.4f} |"
        )
    calibration_cover = {
        key: interval_coverage(d["error"], np.hypot(d["stat"], model_sd[key]))
        for key, d in calibration["gradient_errors"].items()
    }
    section = {
        **read_model_card("sed-cnn").get("calibration", {}),
        "gradient": {
            **model_sd,
            "unit": "dex/R_e",
            "method": (
                "model's own gradient error m: hypot(stat, m) holds the calibration "
                "cubes' true slopes closest to 68.27% and 95.45% of the time (the smaller "
                "of the two misses), where stat is the bootstrap SD over independent "
                f"elements ({ELEMENT_SIDE_FWHM:g} PSF FWHM of {calibration['psf_fwhm_pix']:g} "
                "spaxels across); quoted error = hypot(stat, this)"
            ),
            "psf_fwhm_pix": calibration["psf_fwhm_pix"],
            "calibration_cubes": {
                "dataset": ", ".join(p.name for p in args.calibration),
                "seed": [_dataset_seed(p) for p in args.calibration],
                "cubes": calibration["gradient_galaxies"],
                "coverage": calibration_cover,
            },
            "test_cubes": {
                "dataset": args.test.name,
                "seed": _dataset_seed(args.test),
                "cubes": test["gradient_galaxies"],
                "coverage": coverage,
            },
        },
    }
    if args.write_card:
        print(f"wrote {write_card_section('sed-cnn', 'calibration', section)}")
    else:
        print(json.dumps(section, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
