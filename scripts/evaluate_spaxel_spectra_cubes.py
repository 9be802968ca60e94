"""Both map models on the same simulated CALIFA cubes: per-spaxel robust SD and bias.

Usage::

    python scripts/evaluate_spaxel_spectra_cubes.py --cubes 6 --seed 500

Each cube is :func:`napari_galam.simulate.samples.simulated_califa_cube` (the galaxy
simulator of the SED CNN's own training set, with PSF, dust and noise), written in the
CALIFA layout (its ``MED_VEL`` gives the redshift) and mapped through the real
``galam map`` path (:func:`napari_galam.pipeline.maps.map_cube_to_file`) with
``--model spaxel-spectra`` and ``--model sed-cnn``. The spectral model never saw this
simulator; the SED CNN was trained on it (other seeds). Spaxels where both models
give a value and the spectral S/N >= 10 are compared with the truth maps.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cubes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=500)
    args = parser.parse_args()

    from napari_galam.io.writers import read_maps
    from napari_galam.models.train_spaxel_spectra import robust_metrics
    from napari_galam.pipeline.maps import map_cube_to_file
    from napari_galam.simulate.samples import simulated_califa_cube
    from napari_galam.simulate.writers import write_califa_cube

    errors: dict[str, dict[str, list[np.ndarray]]] = {
        m: {"log_age": [], "mh": []} for m in ("spaxel-spectra", "sed-cnn")
    }
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seed, args.seed + args.cubes):
            cube = simulated_califa_cube(seed=seed)
            path = write_califa_cube(Path(folder) / f"sim{seed}.V500.rscube.fits", cube)
            maps = {}
            for model in errors:
                target = Path(folder) / f"sim{seed}.{model}.maps.fits"
                map_cube_to_file(path, target, model=model, min_snr=3.0)
                maps[model] = read_maps(target).maps
            snr = maps["spaxel-spectra"]["SNR"]
            both = (snr >= 10) & np.isfinite(maps["sed-cnn"]["LOG_AGE"])
            both &= np.isfinite(maps["spaxel-spectra"]["LOG_AGE"])
            for model in errors:
                errors[model]["log_age"].append(maps[model]["LOG_AGE"][both] - cube.truth.log_age[both])
                errors[model]["mh"].append(maps[model]["MH"][both] - cube.truth.mh[both])
            print(f"cube {seed}: z = {cube.galaxy.redshift:.4f}, {int(both.sum())} spaxels", flush=True)
    table = {
        model: {
            key: robust_metrics(np.zeros(sum(e.size for e in values)), np.concatenate(values))
            for key, values in by_key.items()
        }
        for model, by_key in errors.items()
    }
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
