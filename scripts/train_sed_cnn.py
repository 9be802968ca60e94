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
in input order (``input.filters``), which the maps pipeline reads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def load_spaxels(path: Path, *, max_radius: float, max_spaxels: int | None, seed: int):
    """Per-spaxel SEDs, labels and galaxy ids of a simulated cube dataset."""
    import h5py

    from napari_galam.models.training import SpaxelArrays

    with h5py.File(path, "r") as handle:
        seds = handle["seds/flux"][()]  # (n, ny, nx, n_filters)
        log_age = handle["maps/log_age"][()]
        mh = handle["maps/mh"][()]
        radius = handle["maps/r_over_re"][()]
        names = [n.decode() for n in handle["seds/filter_names"][()]]
        card = json.loads(handle.attrs["card"]) if "card" in handle.attrs else {}
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


def robust_sd(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the paper's robust SD."""
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def evaluate_on_cubes(model, path: Path, *, max_radius: float) -> dict:
    """Per-spaxel robust SD and gradient errors on unseen simulated cubes."""
    import h5py

    from napari_galam.core.gradients import bootstrap_gradient
    from napari_galam.core.preprocess import normalise_seds

    with h5py.File(path, "r") as handle:
        seds = handle["seds/flux"][()]
        log_age = handle["maps/log_age"][()]
        mh = handle["maps/mh"][()]
        radius = handle["maps/r_over_re"][()]
        true_grad_age = handle["gradients/observed_gradient_log_age"][()]
        true_grad_mh = handle["gradients/observed_gradient_mh"][()]
    normalised, valid = normalise_seds(seds)
    predicted = np.full(seds.shape[:-1] + (2,), np.nan, dtype=np.float32)
    predicted[valid] = model.predict(normalised[valid], batch_size=8192, verbose=0)
    use = valid & (radius <= max_radius)
    d_age = (predicted[..., 0] - log_age)[use]
    d_mh = (predicted[..., 1] - mh)[use]
    grad_err_age, grad_err_mh, n_gal = [], [], 0
    for k in range(seds.shape[0]):
        keep = use[k]
        fit_age = bootstrap_gradient(radius[k][keep], predicted[k, ..., 0][keep], seed=k)
        fit_mh = bootstrap_gradient(radius[k][keep], predicted[k, ..., 1][keep], seed=k)
        if fit_age.ok and fit_mh.ok:
            n_gal += 1
            grad_err_age.append(fit_age.slope - true_grad_age[k])
            grad_err_mh.append(fit_mh.slope - true_grad_mh[k])
    grad_err_age, grad_err_mh = np.array(grad_err_age), np.array(grad_err_mh)
    return {
        "test_file_galaxies": int(seds.shape[0]),
        "test_spaxels": int(use.sum()),
        "robust_sd_log_age": robust_sd(d_age),
        "robust_sd_mh": robust_sd(d_mh),
        "bias_log_age": float(np.median(d_age)),
        "bias_mh": float(np.median(d_mh)),
        "gradient_galaxies": n_gal,
        "gradient_error_sd_log_age": float(np.std(grad_err_age)),
        "gradient_error_sd_mh": float(np.std(grad_err_mh)),
        "gradient_error_robust_sd_log_age": robust_sd(grad_err_age),
        "gradient_error_robust_sd_mh": robust_sd(grad_err_mh),
        "gradient_bias_log_age": float(np.median(grad_err_age)),
        "gradient_bias_mh": float(np.median(grad_err_mh)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="simulated cube dataset (HDF5) to train on")
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
    from napari_galam.models.training import TrainingSettings, train_sed_cnn

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
    evaluation = evaluate_on_cubes(model, args.test, max_radius=args.max_radius)
    minutes = (time.time() - start) / 60
    print(json.dumps({"split_metrics": result.metrics, "unseen_cubes": evaluation}, indent=1))
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
            "file": args.train.name,
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
