"""Benchmark: map throughput of the shipped SED CNN, means only against means + errors + flags.

Issue 20 asks that per-spaxel errors and out-of-distribution flags keep maps at >= 5 000
spaxels/s on the 2-core CPU. Timed side by side in one run, in this process (as ``galam
map`` runs), on the SEDs of a simulated CALIFA cube tiled to ``--spaxels`` spaxels:

* before: what mapping did without errors: ``normalise_seds`` and the two mean networks
  alone (the shipped model without its variance head);
* after: :func:`napari_galam.models.inference.predict_seds` with the S/N: the networks,
  the variance head, the card's scales, the Mahalanobis distance and the flags;
* both again through :func:`napari_galam.pipeline.maps.map_seds` (S/N floor, painting
  the maps), which is what a cube costs after its photometry.

Run: python benchmarks/bench_maps.py [--spaxels 250000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _table import median_seconds, print_table  # noqa: E402


def _seds(n_spaxels: int):
    """SEDs (in the model's filters) of a simulated CALIFA cube, tiled to ``n_spaxels``."""
    from napari_galam.core.spaxels import SpaxelSEDs
    from napari_galam.pipeline.maps import sed_model_filters, seds_from_cube
    from napari_galam.simulate.samples import simulated_califa_cube
    from napari_galam.sps.filters import load_filters

    cube = simulated_califa_cube(seed=3)
    error = np.asarray(cube.error, dtype=np.float32)
    seds = seds_from_cube(
        SimpleNamespace(wave=cube.wave, data=cube.flux, variance=error**2, mask=cube.badpix,
                        name="simulated"),
        load_filters(sed_model_filters()),
    )  # fmt: skip
    side = int(np.ceil(np.sqrt(n_spaxels / (seds.snr.size))))
    tile = lambda a: np.tile(a, (1,) * (a.ndim - 2) + (side, side))  # noqa: E731
    return SpaxelSEDs(
        flux=tile(seds.flux), error=tile(seds.error), snr=tile(seds.snr),
        band_names=seds.band_names, band_centres=seds.band_centres,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaxels", type=int, default=250_000)
    args = parser.parse_args(argv)

    from napari_galam.core.preprocess import normalise_seds
    from napari_galam.models.architectures import combine_sed_cnns
    from napari_galam.models.inference import SED_MODEL, predict_batches, predict_seds
    from napari_galam.models.registry import load_model
    from napari_galam.models.train_sed_cnn import mean_sed_networks
    from napari_galam.pipeline.maps import map_seds

    seds = _seds(args.spaxels)
    means_model = combine_sed_cnns(*mean_sed_networks(load_model(SED_MODEL)))

    def means_only(x, snr=None):  # the model before errors: S/N unused
        normalised, valid = normalise_seds(x)
        out = np.full((len(x), 2), np.nan, np.float32)
        out[valid] = predict_batches(means_model, normalised[valid], batch_size=65536)
        return SimpleNamespace(log_age=out[:, 0], mh=out[:, 1])

    keep = seds.valid & (seds.snr >= 3.0)
    rows, cols = np.nonzero(keep)
    flat = seds.flux[:, rows, cols].T.copy()
    snr = seds.snr[rows, cols]
    n = flat.shape[0]
    before = median_seconds(lambda: means_only(flat), repeat=3, warmup=1)
    after = median_seconds(lambda: predict_seds(flat, snr=snr), repeat=3, warmup=1)
    map_before = median_seconds(lambda: map_seds(seds, means_only), repeat=3, warmup=1)
    map_after = median_seconds(lambda: map_seds(seds, predict_seds), repeat=3, warmup=1)
    maps = map_seds(seds, predict_seds)
    flagged = float(np.mean(maps.ood[np.isfinite(maps.log_age)] > 0))
    print_table(
        f"SED CNN map throughput, shipped model, {n} mapped spaxels (medians of 3, this run)",
        ["step", "before: means only", "after: + errors + flags", "target"],
        [
            ["predict", f"{n / before:,.0f} spaxels/s", f"{n / after:,.0f} spaxels/s", ""],
            ["map_seds (floor, predict, paint)", f"{n / map_before:,.0f} spaxels/s",
             f"{n / map_after:,.0f} spaxels/s", ">= 5 000/s"],
        ],
    )  # fmt: skip
    print(f"{flagged:.1%} of the mapped spaxels flagged out of distribution")
    return 0


if __name__ == "__main__":
    sys.exit(main())
