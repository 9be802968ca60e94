"""Does an SED CNN's own feature space see a history family it never learned? (a probe)

The shipped out-of-distribution flag of the SED CNN measures how far a normalised SED is
from the training SEDs (Mahalanobis, ``calibration.ood``); on a family held out of
training it marks almost nothing (``scripts/heldout_family_sed_coverage.py``). This
script asks the same question of the network's own features: for each fold of
``scripts/leave_one_family_out.py cubes`` it takes the 40-unit dense layer of both of
the network's branches (log age and [M/H], 80 features), sets a Mahalanobis reference on
the ``head`` file's spaxels of the families the fold saw (within 2 R_e, as the shipped
reference is set), cuts at the 99.5th percentile of the ``calibration`` files' seen
spaxels, and reports, on the ``--test`` files' spaxels within 2 R_e:

- the median and 90th percentile of the squared distance of the held-out family's
  spaxels and of the seen ones;
- the share of each beyond the cut (what a flag on that distance would mark);
- the held-out family's median |network - truth| beyond the cut and within it.

Usage (the files of the shipped calibration; about a minute a fold on 2 cores)::

    python scripts/heldout_family_feature_distance.py head.h5 --calibration cal3.h5 \\
        --test test3.h5 test4.h5 --runs runs/lofo-cubes-em

Nothing is shipped; the table printed is the one quoted in the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: The dense layer of each branch whose outputs are the features.
FEATURE_LAYER = "sed_dense"
BRANCHES = ("sed_log_age", "sed_mh")


def feature_model(model):
    """A Keras model from the SED to the concatenated dense features of both branches."""
    import keras

    inputs = keras.Input(shape=model.input_shape[1:])
    parts = []
    for name in BRANCHES:
        branch = model.get_layer(name)
        parts.append(keras.Model(branch.inputs, branch.get_layer(FEATURE_LAYER).output)(inputs))
    return keras.Model(inputs, keras.layers.Concatenate()(parts))


def _features(extractor, seds: np.ndarray) -> np.ndarray:
    return np.asarray(extractor.predict(seds, batch_size=8192, verbose=0), dtype=np.float64)


def _sample(select: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    index = np.flatnonzero(select)
    return rng.choice(index, min(n, index.size), replace=False) if index.size else index


def probe_fold(fold: str, head: dict, cal: dict, test: dict, args: argparse.Namespace) -> dict:
    """One fold's distances and errors (see the module docstring)."""
    from napari_galam.models.sed_uncertainty import mahalanobis_squared, shape_reference
    from napari_galam.models.training_loop import load_keras_model
    from napari_galam.simulate.families import SFH_FAMILIES

    rng = np.random.default_rng(0)
    code = SFH_FAMILIES.index(fold)
    model = load_keras_model(args.runs / f"sed-{fold}" / "final" / "sed-cnn.keras", compile=False)
    extractor = feature_model(model)
    ref = _sample((head["family"] != code) & (head["radius"] <= 2.0), args.spaxels, rng)
    mean, precision = shape_reference(_features(extractor, head["seds"][ref]))
    cut_rows = _sample((cal["family"] != code) & (cal["radius"] <= 2.0), args.spaxels, rng)
    cut = float(np.percentile(
        mahalanobis_squared(_features(extractor, cal["seds"][cut_rows]), mean, precision), 99.5
    ))  # fmt: skip
    out: dict = {"fold": fold, "cut": cut}
    for label, select in (("seen", test["family"] != code), ("held_out", test["family"] == code)):
        rows = _sample(select & (test["radius"] <= 2.0), args.spaxels, rng)
        d2 = mahalanobis_squared(_features(extractor, test["seds"][rows]), mean, precision)
        out[label] = {
            "median_d2": float(np.median(d2)),
            "p90_d2": float(np.percentile(d2, 90)),
            "beyond": float(np.mean(d2 > cut)),
        }
        if label == "held_out":
            pred = np.asarray(model.predict(test["seds"][rows], batch_size=8192, verbose=0))
            error = np.abs(pred[:, :2] - test["labels"][rows])
            far = d2 > cut
            for k, key in enumerate(("log_age", "mh")):
                out[label][f"{key}_error_beyond"] = float(np.median(error[far, k])) if far.any() else np.nan
                out[label][f"{key}_error_within"] = float(np.median(error[~far, k]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("head", type=Path, help="cubes (HDF5) that set the feature reference")
    parser.add_argument("--calibration", type=Path, nargs="+", required=True,
                        help="cubes that set the 99.5%% cut")  # fmt: skip
    parser.add_argument("--test", type=Path, nargs="+", required=True, help="cubes to probe")
    parser.add_argument("--runs", type=Path, required=True, help="leave_one_family_out.py workdir")
    parser.add_argument("--folds", nargs="+", default=None, help="families (default all five)")
    parser.add_argument("--spaxels", type=int, default=40000, help="spaxels drawn per group")
    args = parser.parse_args(argv)

    from calibrate_sed_uncertainty import _join, read_spaxels

    from napari_galam.simulate.families import SFH_FAMILIES

    head = read_spaxels(args.head, min_snr=3.0)
    cal = _join([read_spaxels(p, min_snr=3.0) for p in args.calibration])
    test = _join([read_spaxels(p, min_snr=3.0) for p in args.test])
    print("| held-out family | median d^2 held-out (seen) | 90th percentile held-out (seen) | "
          "cut | beyond the cut: held-out (seen) | held-out median error beyond / within the "
          "cut: log age; [M/H] (dex) |")
    print("|---|---|---|---|---|---|")
    for fold in args.folds or SFH_FAMILIES:
        r = probe_fold(fold, head, cal, test, args)
        h, s = r["held_out"], r["seen"]
        print(
            f"| {fold} | {h['median_d2']:.0f} ({s['median_d2']:.0f}) | "
            f"{h['p90_d2']:.0f} ({s['p90_d2']:.0f}) | {r['cut']:.0f} | "
            f"{100 * h['beyond']:.1f}% ({100 * s['beyond']:.1f}%) | "
            f"{h['log_age_error_beyond']:.3f} / {h['log_age_error_within']:.3f}; "
            f"{h['mh_error_beyond']:.3f} / {h['mh_error_within']:.3f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
