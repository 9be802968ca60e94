"""Give the shipped per-galaxy models calibrated uncertainties and an out-of-distribution flag.

Usage (three fresh simulated samples the networks never saw; they were trained on seed 31)::

    galam simulate --kind cutouts -n 4000 --seed 41 -o fit.h5
    galam simulate --kind cutouts -n 2500 --seed 42 -o calibrate.h5
    galam simulate --kind cutouts -n 2500 --seed 43 -o test.h5
    python scripts/calibrate_galaxy_uncertainty.py fit.h5 calibrate.h5 test.h5

For ``spectra-only``, ``image-only`` and ``mmlforgalam``: every cutout goes through the
QA as at inference (the image models see the accepted ones; the spectra model every
unblended galaxy); the frozen network's penultimate features train a variance head on the
first file, the second sets one variance-scaling factor per quantity and the distance
threshold of the out-of-distribution flag, the third measures coverage (68% / 95%,
overall and in the S/N bins of ``galam evaluate``). The head is shipped as
``<name>.uncertainty.npz`` and the card's ``calibration.uncertainty`` and
``calibration.ood`` are written (other calibration entries are kept). The network's
weights and predictions do not change. Per quantity the card holds the variance scale and
``z95``, the half-width of the 95% interval in sigma: the 95% quantile of
``|error| / sigma`` on the second file (split conformal; the errors' tails are not
Gaussian, so 1.96 sigma would hold more or less than 95%).

``--interval-only`` keeps each card's shipped head and scales as they are (no refit: the
``.uncertainty.npz`` and its SHA-256 stay) and only sets ``z95`` on the calibration file
with that head, then measures the test coverage with it; give the files the card's
``calibration.uncertainty.splits`` names (the first is not read). With ``--no-ship`` the
third may be another sample, to measure coverage on it::

    python scripts/calibrate_galaxy_uncertainty.py fit.h5 calibrate.h5 test.h5 --interval-only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("spectra-only", "image-only", "mmlforgalam")


def _qa_inputs(path: Path, workdir: Path) -> dict[str, np.ndarray]:
    """Model inputs of one simulated file: QA'd cutouts, rest-frame spectra, truth (cached)."""
    cache = workdir / f"{path.stem}.inputs.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            return {key: saved[key] for key in saved.files}
    from napari_galam.models.datasets import open_galaxy_hdf5
    from napari_galam.pipeline.qa import assess_galaxy

    stored = open_galaxy_hdf5(path, spectrum_frame="rest")
    n = len(stored.log_age)
    cutouts = np.zeros((n, 128, 128, 3), dtype=np.uint8)
    accepted = np.zeros(n, dtype=bool)
    for i in range(n):
        qa = assess_galaxy(np.asarray(stored.cutouts[i]))
        if qa.model_input is not None:
            cutouts[i] = qa.model_input
        accepted[i] = qa.status == "accepted"
    import h5py

    with h5py.File(path, "r") as handle:
        snr = handle["truth/snr"][()].astype(np.float64)
        redshift = handle["truth/redshift"][()].astype(np.float64)
    data = {
        "cutouts": cutouts,
        "accepted": accepted,
        "usable": np.asarray(stored.usable, dtype=bool),
        "spectra": np.asarray(stored.spectra[()], dtype=np.float32),
        "truth": np.column_stack([stored.log_age, stored.mh]).astype(np.float64),
        "snr": snr,
        "redshift": redshift,
    }
    np.savez(cache, **data)
    return data


def model_rows(name: str, data: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, ...]:
    """(row indices, model inputs) of the galaxies model ``name`` is shown: every usable
    spectrum for ``spectra-only``, the usable galaxies the QA accepts for the image models."""
    from napari_galam.core.preprocess import preprocess_images, preprocess_spectra

    if name == "spectra-only":
        rows = np.flatnonzero(data["usable"])
        return rows, preprocess_spectra(data["spectra"][rows], frame="rest")
    rows = np.flatnonzero(data["accepted"] & data["usable"])
    return rows, preprocess_images(data["cutouts"][rows], size=size)


def _split(name: str, data: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, ...]:
    """(model inputs, truth, S/N) of one file for model ``name``."""
    rows, x = model_rows(name, data, size)
    return x, data["truth"][rows], data["snr"][rows]


def plot_reliability(sections: dict[str, dict], path: Path) -> None:
    """Observed against nominal coverage on the test split, one panel per quantity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (quantity, label) in zip(axes, (("log_age", "log age"), ("mh", "[M/H]")), strict=True):
        ax.plot([0, 1], [0, 1], "k-", lw=0.8, label="perfectly calibrated")
        for name, section in sections.items():
            curve = section["coverage"][quantity]["reliability"]
            cover = section["coverage"][quantity]
            ax.plot(
                curve["nominal"],
                curve["observed"],
                "o-",
                ms=3,
                label=f"{name} (68%: {cover['within_68']:.0%}, 95%: {cover['within_95']:.0%})",
            )
        ax.set_xlabel("nominal coverage of the central interval")
        ax.set_ylabel("share of truths inside (test split)")
        ax.set_title(f"{label}: calibrated errors on unseen simulated galaxies", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _seed(path: Path) -> int | None:
    """The ``galam simulate --seed`` of a file, from the ``.json`` beside it."""
    meta = path.with_suffix(".json")
    return json.loads(meta.read_text()).get("seed") if meta.is_file() else None


def interval_only(args: argparse.Namespace) -> int:
    """Set ``z95`` of the shipped heads on their calibration split; nothing else refitted."""
    from napari_galam.models import registry
    from napari_galam.models.galaxy_uncertainty import calibrate_interval, interval_section
    from napari_galam.pipeline.evaluate import SNR_BINS

    start = time.time()
    files, data = _inputs(args, ("calibrate", "test"))
    sections: dict[str, dict] = {}
    for name in args.models:
        t0 = time.time()
        card = registry.read_model_card(name)
        shipped = card["calibration"]["uncertainty"]
        keys = ("calibrate",) if args.no_ship else ("calibrate", "test")
        for key in keys:
            split = shipped["splits"][key]
            if (files[key].name, _seed(files[key])) != (split["file"], split["seed"]):
                raise SystemExit(
                    f"{name}: the card's {key} split is {split['file']} (seed {split['seed']}), "
                    f"not {files[key]} (seed {_seed(files[key])})"
                )
        model, head = registry.load_model(name), registry.load_uncertainty_head(name)
        size = int(card["input"]["shape"][0])
        parts = {key: _split(name, value, size) for key, value in data.items()}
        for key in keys:
            if len(parts[key][1]) != shipped["splits"][key]["galaxies"]:
                raise SystemExit(
                    f"{name}: {len(parts[key][1])} galaxies of {files[key]} pass the QA, the "
                    f"card's {key} split had {shipped['splits'][key]['galaxies']}"
                )
        z95, cover = calibrate_interval(
            name, model, head, parts["calibrate"][:2], parts["test"], snr_edges=SNR_BINS
        )
        section = interval_section(shipped, z95, cover)
        sections[name] = section
        for k, q in enumerate(("log_age", "mh")):
            old, new = shipped["coverage"][q], cover[q]
            print(
                f"{name} {q}: z95 {z95[k]:.3f}; {files['test'].name} ({new['n']}): 68% "
                f"{old['within_68']:.1%} -> {new['within_68']:.1%}, 95% "
                f"{old['within_95']:.1%} (1.96) -> {new['within_95']:.1%} (z95)",
                flush=True,
            )
            for label, c in new["by_snr"].items():
                print(
                    f"    S/N {label:9s} n={c['n']:5d}  68% {c['within_68']:.1%}  "
                    f"95% {c['within_95']:.1%}"
                )
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
        if not args.no_ship:
            ood = registry.ood_settings(name)
            print(f"shipped: {registry.install_uncertainty(name, section, ood, None)}")
    if args.plot is not None:
        plot_reliability(sections, args.plot)
    print(f"done in {(time.time() - start) / 60:.1f} min")
    return 0


def _inputs(args: argparse.Namespace, keys: tuple[str, ...]) -> tuple[dict, dict]:
    """The files named ``keys`` of the command line and their QA'd inputs (cached)."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    files = {key: getattr(args, key) for key in keys}
    return files, {key: _qa_inputs(path, args.workdir) for key, path in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fit", type=Path, help="simulated cutouts that train the variance head")
    parser.add_argument("calibrate", type=Path, help="simulated cutouts for the scaling factors")
    parser.add_argument("test", type=Path, help="simulated cutouts for the coverage")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--workdir", type=Path, default=Path("runs/uncertainty"))
    parser.add_argument("--no-ship", action="store_true", help="measure only; write nothing")
    parser.add_argument("--plot", type=Path, help="save the reliability diagram here (.png)")
    parser.add_argument(
        "--interval-only",
        action="store_true",
        help="keep the shipped heads and scales; set only z95 and the test coverage",
    )
    args = parser.parse_args(argv)
    if args.interval_only:
        return interval_only(args)

    from napari_galam.models.galaxy_uncertainty import calibrate_galaxy_model
    from napari_galam.models.registry import (
        install_uncertainty,
        load_model,
        read_model_card,
        training_redshift_range,
    )
    from napari_galam.pipeline.evaluate import SNR_BINS

    start = time.time()
    files, data = _inputs(args, ("fit", "calibrate", "test"))
    print(
        f"[{(time.time() - start) / 60:5.1f} min] QA and inputs of {len(files)} files", flush=True
    )
    sections: dict[str, dict] = {}
    for name in args.models:
        t0 = time.time()
        model = load_model(name, require_calibration=False)
        size = int(read_model_card(name)["input"]["shape"][0])
        parts = {key: _split(name, value, size) for key, value in data.items()}
        splits = {
            key: {
                "file": files[key].name,
                "seed": _seed(files[key]),
                "galaxies": int(len(parts[key][1])),
            }
            for key in files
        }
        head_path = args.workdir / f"{name}.uncertainty.npz"
        head, section, ood = calibrate_galaxy_model(
            name,
            model,
            parts["fit"][:2],
            parts["calibrate"][:2],
            parts["test"],
            snr_edges=SNR_BINS,
            splits=splits,
            redshift_range=training_redshift_range(name),
            head_path=head_path,
        )
        section["training_seconds_cpu"] = round(time.time() - t0, 1)
        print(f"{name}: {json.dumps(section['coverage'], indent=1, default=float)}")
        print(
            f"{name}: scales {head.scale.round(3).tolist()}, distance threshold "
            f"{head.distance_threshold:.2f}, {time.time() - t0:.0f} s",
            flush=True,
        )
        sections[name] = section
        if not args.no_ship:
            print(f"shipped: {install_uncertainty(name, section, ood, head_path)}")
    if args.plot is not None:
        plot_reliability(sections, args.plot)
    print(f"done in {(time.time() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
