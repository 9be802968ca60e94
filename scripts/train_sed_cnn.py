"""Train and ship the per-spaxel SED CNN (Liew-Cain et al. 2021) on simulated CALIFA cubes.

Usage (about 10-20 minutes on a 2-core CPU)::

    galam simulate --kind cubes -n 400 --seed 11 -o train.h5   # or scripts' own call
    python scripts/train_sed_cnn.py train.h5 --test test.h5 --workdir runs/sed

The cubes' per-spaxel J-PAS-like SEDs (synthetic photometry of the noisy spectra) are the
inputs; the labels are the luminosity-weighted log age and [M/H] maps of the simulator.
Spaxels within ``--max-radius`` R_e are used, as the paper keeps spaxels with good fits.
Set B (whole galaxies held out) is the split the shipped model is trained on; the test
cubes (another seed: galaxies the model never saw) give the numbers in the model card:
per-spaxel robust SD (1.4826 x MAD) and the error of radial gradients fitted on the
predicted maps against the simulator's truth.

The model is saved into the package's weights folder with a card that lists the filters
in input order (``input.filters``), which the maps pipeline reads. It outputs means only:
run ``scripts/calibrate_sed_uncertainty.py`` next (the variance head, its calibration and
the out-of-distribution reference that ``predict_seds`` needs), then
``scripts/calibrate_gradient_errors.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _read_cubes(path: Path):
    import h5py

    with h5py.File(path, "r") as handle:
        return (
            handle["seds/flux"][()],  # (n, ny, nx, n_filters)
            handle["maps/log_age"][()],
            handle["maps/mh"][()],
            handle["maps/r_over_re"][()],
            [n.decode() for n in handle["seds/filter_names"][()]],
            json.loads(handle.attrs["card"]) if "card" in handle.attrs else {},
        )


def load_spaxels(paths: list[Path], *, max_radius: float, max_spaxels: int | None, seed: int):
    """Per-spaxel SEDs, labels and galaxy ids of simulated cube datasets (ids made unique)."""
    from napari_galam.models.datasets import SpaxelArrays

    parts = [_read_cubes(path) for path in paths]
    names = parts[0][4]
    if any(part[4] != names for part in parts):
        raise SystemExit("the datasets were measured in different filters")
    seds, log_age, mh, radius = (np.concatenate([part[k] for part in parts]) for k in range(4))
    card = {"datasets": [part[5] for part in parts]} if len(parts) > 1 else parts[0][5]
    n, ny, nx, n_f = seds.shape
    galaxy = np.broadcast_to(np.arange(n)[:, None, None], (n, ny, nx))
    usable = (
        (radius <= max_radius)
        & np.isfinite(log_age)
        & np.isfinite(mh)
        & np.all(np.isfinite(seds), axis=-1)
        & (seds.mean(axis=-1) > 0)
    )
    rows = np.flatnonzero(usable.ravel())
    if max_spaxels is not None and rows.size > max_spaxels:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_spaxels, replace=False))
    arrays = SpaxelArrays(
        seds=seds.reshape(-1, n_f)[rows],
        log_age=log_age.ravel()[rows].astype(np.float32),
        mh=mh.ravel()[rows].astype(np.float32),
        galaxy_id=galaxy.ravel()[rows].astype(np.int64),
        card=card,
    )
    return arrays, names, card


def keras_sed_predictor(model):
    """``predict_seds`` for a Keras model in this process (preprocessing as at inference)."""
    from types import SimpleNamespace

    from napari_galam.core.preprocess import normalise_seds

    def predict(seds, snr=None):  # means only: no error for the S/N to scale
        normalised, valid = normalise_seds(seds)
        out = np.full(np.shape(seds)[:-1] + (2,), np.nan, dtype=np.float32)
        out[valid] = model.predict(normalised[valid], batch_size=8192, verbose=0)
        return SimpleNamespace(log_age=out[..., 0], mh=out[..., 1])

    return predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, nargs="+", help="simulated cube datasets (HDF5)")
    parser.add_argument("--test", type=Path, required=True, help="unseen cube dataset (HDF5)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/sed-cnn"))
    parser.add_argument("--split", choices=("A", "B"), default="B")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--max-radius", type=float, default=2.0)
    parser.add_argument("--max-spaxels", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ship", action="store_true", help="do not copy into the package")
    args = parser.parse_args(argv)

    import keras

    from napari_galam.models.inference import SED_MODEL, model_input_spec
    from napari_galam.models.registry import save_model_with_card
    from napari_galam.models.train_sed_cnn import train_sed_cnn
    from napari_galam.models.training_loop import TrainingSettings
    from napari_galam.pipeline.evaluate import evaluate_spaxels

    start = time.time()
    data, names, card = load_spaxels(
        args.train, max_radius=args.max_radius, max_spaxels=args.max_spaxels, seed=args.seed
    )
    print(
        f"{len(data)} spaxels from {len(np.unique(data.galaxy_id))} galaxies, {len(names)} filters"
    )
    settings = TrainingSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience_sed=args.patience,
        seed=args.seed,
    )
    result = train_sed_cnn(
        data, args.workdir, split=args.split, config="compact", settings=settings
    )
    model = keras.saving.load_model(result.model_paths[SED_MODEL], compile=False)
    evaluation = evaluate_spaxels(args.test, keras_sed_predictor(model), max_radius=args.max_radius)
    evaluation.pop("gradient_errors")  # per-cube arrays, for calibration scripts, not the card
    minutes = (time.time() - start) / 60
    print(
        json.dumps(
            {"split_metrics": result.metrics, "unseen_cubes": evaluation}, indent=1, default=float
        )
    )
    print(f"trained and evaluated in {minutes:.1f} min")
    if args.no_ship:
        return 0
    input_spec = {**model_input_spec(SED_MODEL, result.configuration), "filters": names}
    card_path = save_model_with_card(
        model,
        SED_MODEL,
        architecture=SED_MODEL,
        configuration=result.configuration,
        input_spec=input_spec,
        training_data={
            "source": "napari-galam simulated CALIFA-like cubes (E-MILES SSP mixtures)",
            "dataset_card": card,
            "files": [path.name for path in args.train],
            "spaxels": len(data),
            "galaxies": int(np.unique(data.galaxy_id).size),
            "selection": f"R <= {args.max_radius} R_e, finite SED with positive mean",
            "split": args.split,
            "split_sizes": result.split_sizes,
        },
        metrics={
            **result.metrics.get(SED_MODEL, {}),
            "unseen_cubes": evaluation,
            "training_minutes_cpu": round(minutes, 1),
        },
        notes=(
            "Liew-Cain et al. (2021) SED CNN, separate age and [M/H] networks side by side; "
            f"trained with {result.settings}"
        ),
    )
    print(f"shipped: {card_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
