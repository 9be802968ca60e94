"""pPXF benchmark: label recovery on simulated spectra, and seconds per bin of a cube.

Prints three tables:

1. recovery: ``N`` simulated SDSS fibre spectra (``napari_galam.simulate``, nebular
   emission included) at each S/N of 10, 20 and 50, fitted as ``galam fit`` fits them
   (gas lines fitted); bias, SD and robust SD of (pPXF - truth) for log age and [M/H],
   with the default settings and with pPXF's own ``ftol`` on the same spectra, and the
   largest change between the two;
2. speed: a CALIFA-size cube (the simulated CALIFA sample, 73 x 78 spaxels, 1877
   channels) binned with PowerBin to a target S/N that gives a few hundred bins; the
   first ``--bins`` bins fitted through the partition runner on a local Dask cluster of
   1 and of 2 workers, with both ``ftol``, side by side in one run: seconds per bin
   (median over the bins of one worker's fit time), the cluster's start, bins per
   second after it (wall time), and the whole cube's expected time (start included);
   beside it the network's time for the same bins (synthetic photometry of the summed
   spectra and the SED model, in this process);
3. where the time goes: the median CPU time of one bin's fit in this process (one BLAS
   thread, as in a worker) with the default settings and with one thing changed (pPXF's
   ``ftol``; lines masked instead of fitted; a multiplicative polynomial of degree 4;
   the spectrum cut to 3800-7000 A), the largest change of the labels, and the median
   bootstrap errors of the default fit as the yardstick.

The machine may be shared: compare the ratios of rows measured in one run; the CPU
times (tables 1 and 3, and table 2's worker CPU) depend much less on other processes
than the wall times.

Usage: ``python benchmarks/bench_ppxf.py [--recovery 10] [--bins 24] [--target-snr 60]
[--skip-recovery] [--skip-speed] [--skip-profile]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread in this process, as in the Dask workers (before numpy is imported).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _table import print_table  # noqa: E402

from napari_galam.pipeline.evaluate import residual_stats  # noqa: E402
from napari_galam.pipeline.fit import FitOptions, fit_arrays  # noqa: E402

#: The fit settings compared side by side: the defaults, and pPXF's own ftol.
VARIANTS = {"ftol 1e-3 (default)": FitOptions(), "ftol 1e-4 (pPXF's)": FitOptions(ftol=1e-4)}


def recovery(n: int, snrs: tuple[float, ...], seed: int) -> None:
    """Table 1: pPXF minus truth on simulated fibre spectra at each S/N, for each of
    :data:`VARIANTS` on the same spectra, and the largest change between them."""
    from napari_galam.simulate.datasets import galaxy_rngs
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.populations import default_library
    from napari_galam.simulate.spectra import render_fibre_spectrum

    library = default_library()
    rows = []
    for snr in snrs:
        found = {name: ([], [], []) for name in VARIANTS}
        for i, rng in enumerate(galaxy_rngs(seed + int(snr), n)):
            galaxy = draw_galaxy(rng, library=library)
            spectrum = render_fibre_spectrum(galaxy, rng=rng, library=library, snr=snr,
                                             emission=True)  # fmt: skip
            good = spectrum.ivar > 0
            noise = np.where(good, 1.0 / np.sqrt(np.where(good, spectrum.ivar, 1.0)), np.inf)
            # the first fit of a spectrum prepares its templates: alternate who pays it
            for name, options in list(VARIANTS.items())[:: 1 if i % 2 == 0 else -1]:
                start = time.process_time()
                fit = fit_arrays(spectrum.wave, spectrum.flux, noise, redshift=spectrum.redshift,
                                 fwhm=spectrum.wave / 2000.0, vacuum=True, options=options)  # fmt: skip
                found[name][2].append(time.process_time() - start)
                found[name][0].append(fit.log_age - spectrum.log_age)
                found[name][1].append(fit.mh - spectrum.mh)
        first = next(iter(VARIANTS))
        for name, (d_age, d_mh, seconds) in found.items():
            age, mh = residual_stats(d_age), residual_stats(d_mh)
            change_age = np.max(np.abs(np.subtract(d_age, found[first][0])))
            change_mh = np.max(np.abs(np.subtract(d_mh, found[first][1])))
            rows.append([f"{snr:g}", name, n, f"{age['bias']:+.3f}", f"{age['sd']:.3f}",
                         f"{age['robust_sd']:.3f}", f"{mh['bias']:+.3f}", f"{mh['sd']:.3f}",
                         f"{mh['robust_sd']:.3f}", f"{change_age:.3f}", f"{change_mh:.3f}",
                         f"{np.median(seconds):.2f}"])  # fmt: skip
    print_table(
        "1. pPXF (gas fitted) - truth on simulated SDSS spectra with emission lines; the "
        f"last columns: largest change from '{next(iter(VARIANTS))}' on the same spectrum",
        ["S/N", "settings", "spectra", "age bias", "age SD", "age rSD", "[M/H] bias",
         "[M/H] SD", "[M/H] rSD", "max|d age|", "max|d [M/H]|", "CPU s/fit"],
        rows,
    )  # fmt: skip


def _cube_bins(target_snr: float):
    from napari_galam._sample_data import simulated_cube_path
    from napari_galam.io.cubes import read_cube
    from napari_galam.pipeline.binning import bin_cube, cube_snr_map

    cube = read_cube(simulated_cube_path("califa"))
    return cube, bin_cube(cube_snr_map(cube), target_snr=target_snr)


def _network_seconds(cube, bins, n_bins: int) -> float:
    """Synthetic photometry of the summed bin spectra and the SED model (in this process)."""
    from napari_galam.core.spaxels import cube_to_seds
    from napari_galam.models.inference import predict_seds
    from napari_galam.pipeline.binning import bin_spectrum
    from napari_galam.pipeline.maps import sed_model_filters
    from napari_galam.sps.filters import load_filters

    filters = load_filters(sed_model_filters())
    spectra = []
    for k in range(n_bins):
        ys, xs = np.array(bins.spaxels(k)).T
        flux = np.asarray(cube.data[:, ys, xs], dtype=float)
        spectra.append(bin_spectrum(flux, None)[0] / len(ys))
    predict_seds(np.ones((1, len(filters)), np.float32))  # load the model first
    start = time.perf_counter()
    seds = cube_to_seds(cube.wave, np.nan_to_num(np.array(spectra)).T[:, None, :], filters)
    predict_seds(np.ascontiguousarray(seds.flux[:, 0, :].T, dtype=np.float32))
    return time.perf_counter() - start


def _cpu_seconds() -> float:
    """CPU seconds this process has used (run on each worker with ``client.run``)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _workers_cpu(client) -> float:
    return float(sum(client.run(_cpu_seconds).values()))


def speed(n_bins: int, target_snr: float) -> None:
    """Table 2: seconds per bin and bins per second with 1 and 2 Dask workers, for each
    of :data:`VARIANTS`; the cluster's start is timed apart (once per run).

    On a shared machine the wall time depends on the other processes; the workers' CPU
    seconds per bin do much less, and ``workers / (CPU s per bin)`` is the rate the
    workers would reach with a core each.
    """
    from napari_galam.pipeline.dask_cluster import dask_client
    from napari_galam.pipeline.distributed import run_batch
    from napari_galam.pipeline.fit import FIT_JOB, FitItem

    cube, bins = _cube_bins(target_snr)
    items = [FitItem(str(cube.path), k, bins.spaxels(k)) for k in range(min(n_bins, bins.n_bins))]
    rows = []
    for workers in (1, 2):
        for name, options in VARIANTS.items():
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                with dask_client(n_workers=workers) as client:
                    started = time.perf_counter()
                    cpu = _workers_cpu(client)
                    table, _ = run_batch(items, FIT_JOB, Path(folder) / "parts", partition_size=2,
                                         options={"workers": workers}, engine="dask",
                                         client=client, fit_options=options.as_dict())  # fmt: skip
                    wall = time.perf_counter() - started
                    cpu_per_bin = (_workers_cpu(client) - cpu) / len(items)
            ok = table["status"] == "ok"
            per_bin = float(np.median(table["seconds"][ok]))
            rate = len(items) / wall
            whole = (started - start) + bins.n_bins / rate
            rows.append([workers, name, len(items), int(ok.sum()), f"{per_bin:.2f}",
                         f"{cpu_per_bin:.2f}", f"{started - start:.1f}", f"{rate:.2f}",
                         f"{workers / cpu_per_bin:.2f}", f"{whole / 60:.1f}"])  # fmt: skip
    network = _network_seconds(cube, bins, len(items))
    rows.append(["network (SED CNN, 1 process)", "", len(items), len(items),
                 f"{network / len(items):.4f}", "", "", f"{len(items) / network:.0f}", "",
                 f"{bins.n_bins * network / len(items) / 60:.3f}"])  # fmt: skip
    print_table(
        f"2. CALIFA-size cube ({cube.shape[1]}x{cube.shape[2]}, {cube.shape[0]} channels) binned "
        f"to S/N {target_snr:g}: {bins.n_bins} bins; pPXF with gas lines and kinematics",
        ["Dask workers", "settings", "bins", "ok", "s/bin (median fit)", "worker CPU s/bin",
         "cluster start [s]", "bins/s (after start)", "bins/s (a core each)",
         "whole cube [min]"],
        rows,
    )  # fmt: skip


def where_time_goes(cube, bins, n: int) -> None:
    """Table 3: one bin's fit time with one setting changed at a time."""
    from napari_galam.pipeline.fit import FitItem, _read_bins, cube_fwhm, cube_redshift

    items = [FitItem(str(cube.path), k, bins.spaxels(k)) for k in range(n)]
    spectra = list(_read_bins(cube, items).values())
    common = {"redshift": cube_redshift(cube), "fwhm": cube_fwhm(cube), "vacuum": False}
    cut = (cube.wave > 3800) & (cube.wave < 7000)
    variants = {
        "default (gas fitted, mdegree 10, ftol 1e-3)": (FitOptions(), slice(None)),
        "ftol 1e-4 (pPXF's)": (FitOptions(ftol=1e-4), slice(None)),
        "lines masked": (FitOptions(gas="mask"), slice(None)),
        "mdegree 4": (FitOptions(mdegree=4), slice(None)),
        "3800-7000 A only": (FitOptions(), cut),
    }
    rows = []
    reference = None
    fit_arrays(cube.wave, *spectra[0], options=FitOptions(), **common)  # imports, templates
    for name, (options, pixels) in variants.items():
        times, ages = [], []
        for flux, noise in spectra:
            start = time.process_time()
            fit = fit_arrays(cube.wave[pixels], flux[pixels], noise[pixels], options=options,
                             **common)  # fmt: skip
            times.append(time.process_time() - start)
            ages.append((fit.log_age, fit.mh))
        ages = np.array(ages)
        reference = ages if reference is None else reference
        shift = np.abs(ages - reference).max(axis=0)
        rows.append([name, f"{np.median(times):.2f}", f"{shift[0]:.3f}", f"{shift[1]:.3f}"])
    errors = [fit_arrays(cube.wave, flux, noise, options=FitOptions(n_bootstrap=10), **common)
              for flux, noise in spectra]  # fmt: skip
    age_err = np.median([fit.log_age_err for fit in errors])
    mh_err = np.median([fit.mh_err for fit in errors])
    print_table(
        f"3. where the time goes: median CPU s per bin over {n} bins, and the largest change of "
        f"log age and [M/H] from the default (their median bootstrap errors: {age_err:.3f} "
        f"and {mh_err:.3f} dex, 10 refits)",
        ["settings", "CPU s/bin", "max |d log age|", "max |d [M/H]|"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recovery", type=int, default=10, help="spectra per S/N")
    parser.add_argument("--bins", type=int, default=24, help="bins timed per worker count")
    parser.add_argument("--target-snr", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--skip-speed", action="store_true", help="skip table 2")
    parser.add_argument("--skip-profile", action="store_true", help="skip table 3")
    args = parser.parse_args()
    if not args.skip_recovery:
        recovery(args.recovery, (10.0, 20.0, 50.0), args.seed)
    if not args.skip_speed:
        speed(args.bins, args.target_snr)
    if not args.skip_profile:
        cube, bins = _cube_bins(args.target_snr)
        where_time_goes(cube, bins, min(6, bins.n_bins))


if __name__ == "__main__":
    main()
