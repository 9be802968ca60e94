"""Benchmark of the synthetic universe: generation throughput and pPXF label recovery.

    python benchmarks/bench_simulate.py                 # throughput table
    python benchmarks/bench_simulate.py --recovery 20   # + pPXF on 20 noiseless spectra
                                                        #   and the same at S/N 10

Throughput: SDSS-like galaxies per second (128 x 128 gri cutout with its scene, fibre
spectrum and labels; :func:`napari_galam.simulate.datasets.simulate_sdss_galaxy`), and
seconds per CALIFA-like cube (1877 x 73 x 78) and per J-PAS-like cube (54 x 96 x 96).
Medians over repeats, measured in one process one after the other.

Recovery: pPXF (``napari_galam.sps.reference_fit.fit_population``, the shipped E-MILES
library) fitted to simulated fibre spectra without dust; median |delta| and SD of
(fit - label) for log age and [M/H]. The issue asks for a median |delta| <= 0.05 dex on
noiseless spectra and a scatter < 0.15 dex at S/N 10.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def _throughput(n_galaxies: int, repeats: int) -> list[tuple[str, float, str]]:
    from napari_galam.simulate.cubes import render_califa_cube, render_narrowband_cube
    from napari_galam.simulate.datasets import galaxy_rngs, simulate_sdss_galaxy
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.sps.library import load_ssp_library

    library = load_ssp_library()
    simulate_sdss_galaxy(np.random.default_rng(0), library=library)  # warm caches
    rates = []
    for repeat in range(repeats):
        rngs = galaxy_rngs(100 + repeat, n_galaxies)
        start = time.perf_counter()
        for rng in rngs:
            simulate_sdss_galaxy(rng, library=library)
        rates.append(n_galaxies / (time.perf_counter() - start))
    cube_times, jpas_times = [], []
    for repeat in range(repeats):
        rng = np.random.default_rng(200 + repeat)
        galaxy = draw_galaxy(rng, survey="califa", library=library)
        start = time.perf_counter()
        render_califa_cube(galaxy, rng=rng, library=library)
        cube_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        render_narrowband_cube(galaxy, rng=rng, library=library)
        jpas_times.append(time.perf_counter() - start)
    return [
        (
            "SDSS galaxies (cutout + spectrum + labels)",
            float(np.median(rates)),
            "galaxies/s (>= 20)",
        ),
        ("CALIFA-like cube 1877 x 73 x 78", float(np.median(cube_times)), "s per cube (<= 2)"),
        ("J-PAS-like cube 54 x 96 x 96", float(np.median(jpas_times)), "s per cube"),
    ]


def _fit_one(task: tuple[int, float | None]) -> tuple[float, float, float, float, float]:
    seed, snr = task
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.spectra import render_fibre_spectrum
    from napari_galam.sps.library import load_ssp_library
    from napari_galam.sps.reference_fit import fit_population

    library = load_ssp_library()
    rng = np.random.default_rng(seed)
    galaxy = draw_galaxy(rng, library=library, dust=False)
    spectrum = render_fibre_spectrum(galaxy, rng=rng, library=library, snr=snr or 20.0)
    wave = spectrum.wave
    if snr is None:
        flux, noise = spectrum.model.astype(float), None
    else:
        flux = spectrum.flux.astype(float)
        noise = np.where(spectrum.ivar > 0, 1 / np.sqrt(np.maximum(spectrum.ivar, 1e-30)), np.inf)
    start = time.perf_counter()
    fit = fit_population(
        wave, flux, noise=noise, redshift=galaxy.redshift, fwhm_gal=wave / 2000.0, vacuum=True
    )
    return (
        spectrum.log_age,
        fit.log_age,
        spectrum.mh,
        fit.mh,
        time.perf_counter() - start,
    )


def _recovery(n: int, workers: int) -> None:
    print(f"\npPXF recovery on {n} simulated SDSS fibre spectra (no dust), {workers} workers")
    print(
        f"{'case':<12}{'med|d age|':>12}{'med|d [M/H]|':>14}{'SD age':>9}{'SD [M/H]':>10}"
        f"{'bias age':>10}{'bias [M/H]':>12}{'s/fit':>8}"
    )
    for label, snr in (("noiseless", None), ("S/N = 10", 10.0)):
        tasks = [(1000 + k, snr) for k in range(n)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = np.array(list(pool.map(_fit_one, tasks)))
        d_age = rows[:, 1] - rows[:, 0]
        d_mh = rows[:, 3] - rows[:, 2]
        print(
            f"{label:<12}{np.median(np.abs(d_age)):>12.4f}{np.median(np.abs(d_mh)):>14.4f}"
            f"{np.std(d_age):>9.4f}{np.std(d_mh):>10.4f}{np.mean(d_age):>10.4f}"
            f"{np.mean(d_mh):>12.4f}{np.median(rows[:, 4]):>8.1f}"
        )


def _qa_agreement(n: int) -> None:
    """How often the MMLforGalAM QA (pipeline.qa.assess_galaxy) agrees with the blend truth."""
    from napari_galam.pipeline.qa import assess_galaxy
    from napari_galam.simulate.datasets import galaxy_rngs, jpeg_roundtrip, simulate_sdss_galaxy
    from napari_galam.sps.library import load_ssp_library

    library = load_ssp_library()
    counts = {(t, q): 0 for t in (True, False) for q in (True, False)}
    statuses: dict[str, int] = {}
    for rng in galaxy_rngs(300, n):
        sim = simulate_sdss_galaxy(rng, library=library)
        verdict = assess_galaxy(jpeg_roundtrip(sim.cutout.rgb))
        statuses[verdict.status] = statuses.get(verdict.status, 0) + 1
        counts[(sim.cutout.truth.blended, verdict.status == "blended")] += 1
    true_blends = counts[(True, True)] + counts[(True, False)]
    print(f"\nQA on {n} simulated cutouts: statuses {statuses}")
    print(
        f"truly blended: {true_blends}; flagged by QA: {counts[(True, True)]} "
        f"({counts[(True, True)] / max(true_blends, 1):.0%}); isolated but flagged: "
        f"{counts[(False, True)]} of {n - true_blends}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=40, help="galaxies per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recovery", type=int, default=0, help="pPXF fits per case (0: skip)")
    parser.add_argument("--qa", type=int, default=0, help="cutouts for the QA check (0: skip)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 0))
    args = parser.parse_args()
    print(f"cores visible: {os.cpu_count()}, affinity: {len(os.sched_getaffinity(0))}")
    print(f"{'what':<45}{'median':>10}  unit (target)")
    for name, value, unit in _throughput(args.galaxies, args.repeats):
        print(f"{name:<45}{value:>10.3f}  {unit}")
    if args.qa:
        _qa_agreement(args.qa)
    if args.recovery:
        _recovery(args.recovery, args.workers)


if __name__ == "__main__":
    main()
