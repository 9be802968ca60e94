"""Train and ship MMLforGalAM (M1-M4), image-only and spectra-only on simulated SDSS galaxies.

Usage (compact configuration, tens of minutes on a 2-core CPU)::

    galam simulate --kind cutouts -n 6000 --seed 21 -o cutouts.h5
    python scripts/train_mmlforgalam.py cutouts.h5 --workdir runs/mml

Every cutout first goes through the paper's image preprocessing exactly as at inference
(:func:`napari_galam.pipeline.qa.assess_galaxy`: masking ellipse, blend check, crop and
nearest-neighbour resize to 128x128); galaxies the QA rejects (no ellipse, blended) are
left out of training, as in Wang et al. (2025, Sect. 2.2.2). Spectra are the simulator's
fibre spectra: with ``--config compact-rest`` (the default) moved to the rest frame with the
galaxy's redshift (1 A over 3800-7000 A), with ``--config compact`` on the paper's
observed-frame grid (1 A steps over 3830-8000 A). The
staged training (M1 -> M2, M3 -> M4), the 8:1:1 split by galaxy and the learning rates are
those of :mod:`napari_galam.models.train_mmlforgalam`. The three final models are copied into the
package with model cards holding the test-split metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def qa_model_inputs(cutouts, *, progress_every: int = 500):
    """The 128x128 model input of every cutout and whether the QA accepted it."""
    from napari_galam.pipeline.qa import assess_galaxy

    n = len(cutouts)
    inputs = np.zeros((n, 128, 128, 3), dtype=np.uint8)
    accepted = np.zeros(n, dtype=bool)
    statuses: dict[str, int] = {}
    for i in range(n):
        qa = assess_galaxy(np.asarray(cutouts[i]))
        statuses[qa.status] = statuses.get(qa.status, 0) + 1
        if qa.model_input is not None:
            inputs[i] = qa.model_input
        accepted[i] = qa.status == "accepted"
        if progress_every and (i + 1) % progress_every == 0:
            print(f"QA {i + 1}/{n}: {statuses}", flush=True)
    return inputs, accepted, statuses


def _parameter_ranges(card: dict) -> dict:
    """The data card's parameter ranges (HDF5 attributes keep nested dicts as JSON text)."""
    ranges = card.get("parameter_ranges", {}) if isinstance(card, dict) else {}
    return json.loads(ranges) if isinstance(ranges, str) else dict(ranges)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="simulated cutout dataset (HDF5)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/mmlforgalam"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--balance-labels",
        action="store_true",
        help="weight galaxies to a flat (log age, [M/H]) distribution (TrainingSettings.balance_labels)",
    )
    parser.add_argument(
        "--config",
        default="compact-rest",
        choices=("compact", "compact-rest", "paper"),
        help="architecture sizes and M1's spectrum frame (compact-rest: compact sizes, "
        "rest-frame spectra; compact: the paper's observed frame)",
    )
    parser.add_argument(
        "--spectra-only",
        action="store_true",
        help="train and ship only the spectra-only model (M1)",
    )
    parser.add_argument(
        "--note", default="", help="provenance written into the model cards' training data"
    )
    parser.add_argument("--no-ship", action="store_true")
    args = parser.parse_args(argv)

    from napari_galam.models.architectures import get_config
    from napari_galam.models.datasets import GalaxyArrays, open_galaxy_hdf5
    from napari_galam.models.train_mmlforgalam import iter_train_mmlforgalam
    from napari_galam.models.training_loop import TrainingSettings, export_trained_models
    from napari_galam.progress import run_to_end

    start = time.time()
    config = get_config(args.config)
    stored = open_galaxy_hdf5(args.train, spectrum_frame=config.spectrum_frame)
    args.workdir.mkdir(parents=True, exist_ok=True)
    cache = args.workdir / "qa_inputs.npz"
    if cache.exists():
        saved = np.load(cache)
        inputs, accepted = saved["inputs"], saved["accepted"]
        statuses = json.loads(str(saved["statuses"]))
    else:
        inputs, accepted, statuses = qa_model_inputs(stored.cutouts)
        np.savez(cache, inputs=inputs, accepted=accepted, statuses=json.dumps(statuses))
    print(f"QA of {len(inputs)} cutouts: {statuses}", flush=True)
    usable = accepted & (stored.usable if stored.usable is not None else True)
    data = GalaxyArrays(
        cutouts=inputs,
        log_age=stored.log_age,
        mh=stored.mh,
        galaxy_id=stored.galaxy_id,
        spectra=np.asarray(stored.spectra[()], dtype=np.float32),
        card=stored.card,
        usable=usable,
    )
    settings = TrainingSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        seed=args.seed,
        balance_labels=args.balance_labels,
    )

    def print_epoch(item) -> None:
        print(
            f"[{(time.time() - start) / 60:5.1f} min] {item.stage} epoch {item.epoch}/"
            f"{item.epochs} loss {item.loss:.4f} val {item.val_loss:.4f} {item.message}",
            flush=True,
        )

    result = run_to_end(
        iter_train_mmlforgalam(
            data, args.workdir, config=config, settings=settings, spectra_only=args.spectra_only
        ),
        on_progress=print_epoch,
    )
    minutes = (time.time() - start) / 60
    print(json.dumps(result.metrics, indent=1, default=float))
    print(f"trained in {minutes:.1f} min; split sizes {result.split_sizes}")
    if args.no_ship:
        return 0
    cards = export_trained_models(
        result,
        training_data={
            "source": "napari-galam simulated SDSS-like galaxies (E-MILES SSP mixtures)",
            "file": args.train.name,
            "galaxies": int(len(data.log_age)),
            "used": int(usable.sum()),
            "qa_statuses": statuses,
            "preprocessing": "napari_galam.pipeline.qa.assess_galaxy model_input "
            "(masking ellipse, crop, nearest resize to 128x128); rejected galaxies left out",
            "spectrum_frame": config.spectrum_frame,
            # the redshifts (and other ranges) of the data: the OOD check reads them
            "parameter_ranges": _parameter_ranges(stored.card),
            "training_minutes_cpu": round(minutes, 1),
            **({"note": args.note} if args.note else {}),
        },
    )
    for card in cards:
        print(f"shipped: {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
