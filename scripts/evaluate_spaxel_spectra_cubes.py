"""Both map models on the same simulated CALIFA cubes: per-spaxel robust SD and bias.

Usage::

    python scripts/evaluate_spaxel_spectra_cubes.py --cubes 6 --seed 500
    python scripts/evaluate_spaxel_spectra_cubes.py --cubes 4 --family all   # per family

Each cube is :func:`napari_galam.simulate.samples.simulated_califa_cube` (the galaxy
simulator of the SED CNN's own training set, with PSF, dust and noise), written in the
CALIFA layout (its ``MED_VEL`` gives the redshift; with nebular emission lines unless
``--no-emission``) and mapped through the real
``galam map`` path (:func:`napari_galam.pipeline.maps.map_cube_to_file`) with
``--model spaxel-spectra`` and ``--model sed-cnn``. The spectral model never saw this
simulator, in any star-formation-history family (``--family``); the SED CNN was trained
on it (other seeds, every family). Spaxels where both models give a value and the
spectral S/N >= 10 are compared with the truth maps, family by family. ``coverage``
gives, per model, how often the truth lies within the maps' 1-sigma and 1.96-sigma
errors (``LOG_AGE_ERR``, ``MH_ERR``) over every spaxel the model maps, overall and per
bin of the spectral S/N. With ``NAPARI_GALAM_WEIGHTS_DIR`` pointing at a network trained
with ``--hold-out-family F`` (its card calibrated without F) and ``--family F``, that is
the coverage on a family the model never saw; ``--models spaxel-spectra`` maps with it
alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

MODELS = ("spaxel-spectra", "sed-cnn")
#: Bins of the spectral S/N for the coverage.
SNR_EDGES = (3.0, 10.0, 20.0, 40.0, np.inf)
QUANTITIES = (("log_age", "LOG_AGE"), ("mh", "MH"))


def evaluate_family(
    n_cubes: int, first_seed: int, family: str, emission: bool, models: tuple[str, ...] = MODELS
) -> dict:
    """Robust SD and bias of ``models`` on ``n_cubes`` cubes of one family, and coverage."""
    from napari_galam.io.writers import read_maps
    from napari_galam.models.train_spaxel_spectra import robust_metrics
    from napari_galam.models.uncertainty import coverage_by_bins
    from napari_galam.pipeline.maps import map_cube_to_file
    from napari_galam.simulate.samples import simulated_califa_cube
    from napari_galam.simulate.writers import write_califa_cube

    errors: dict[str, dict[str, list[np.ndarray]]] = {m: {"log_age": [], "mh": []} for m in models}
    judged: dict[str, dict[str, list[np.ndarray]]] = {
        m: {"error": [], "sigma": [], "snr": []} for m in models
    }
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(first_seed, first_seed + n_cubes):
            cube = simulated_califa_cube(seed=seed, family=family, emission=emission)
            path = write_califa_cube(Path(folder) / f"sim{seed}.V500.rscube.fits", cube)
            maps = {}
            for model in models:
                target = Path(folder) / f"sim{seed}.{model}.maps.fits"
                map_cube_to_file(path, target, model=model, min_snr=3.0)
                maps[model] = read_maps(target).maps
            both = maps[models[0]]["SNR"] >= 10
            for model in models:
                both &= np.isfinite(maps[model]["LOG_AGE"])
            truth = {"log_age": cube.truth.log_age, "mh": cube.truth.mh}
            for model in models:
                for key, name in QUANTITIES:
                    errors[model][key].append(maps[model][name][both] - truth[key][both])
                mapped = np.isfinite(maps[model]["LOG_AGE"])
                judged[model]["error"].append(
                    np.stack([maps[model][n][mapped] - truth[k][mapped] for k, n in QUANTITIES])
                )
                judged[model]["sigma"].append(
                    np.stack([maps[model][f"{n}_ERR"][mapped] for _, n in QUANTITIES])
                )
                judged[model]["snr"].append(maps[models[0]]["SNR"][mapped])
            print(
                f"{family} cube {seed}: z = {cube.galaxy.redshift:.4f}, {int(both.sum())} spaxels"
            )
    result = {
        model: {
            key: robust_metrics(np.zeros(sum(e.size for e in values)), np.concatenate(values))
            for key, values in by_key.items()
        }
        for model, by_key in errors.items()
    }
    for model, parts in judged.items():
        error, sigma = (np.concatenate(parts[k], axis=1) for k in ("error", "sigma"))
        snr = np.concatenate(parts["snr"])
        result[model]["coverage"] = {
            key: coverage_by_bins(error[k], sigma[k], snr, SNR_EDGES)
            for k, (key, _) in enumerate(QUANTITIES)
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cubes", type=int, default=6, help="cubes per family")
    parser.add_argument("--seed", type=int, default=500)
    parser.add_argument("--family", default="bulge-disc", help="'all' or names, comma-separated")
    parser.add_argument(
        "--emission",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="nebular emission lines in the cubes, as in real star-forming galaxies (default on)",
    )
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=MODELS, help="maps to judge"
    )
    args = parser.parse_args()

    from napari_galam.simulate.families import parse_families

    table = {
        family: evaluate_family(args.cubes, args.seed, family, args.emission, tuple(args.models))
        for family in parse_families(args.family)
    }
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
