"""Throughput of the partitioned per-galaxy pipeline on Dask, and the spectra path vs pPXF.

Whole pipeline per galaxy, as ``galam predict --dask`` runs it: read the JPEG, image QA
(masking, blend check, crop), one batched MMLforGalAM call per partition, the partition's
rows written atomically, then the merge and the final table. Measured on a LocalCluster
of 1 and then 2 worker processes (one thread each) on ``--n`` JPEG cutouts written to a
temporary folder first (``--unique`` simulated galaxies repeated under other names).
The workers are started and warmed (TensorFlow imported, model loaded, one small
partition predicted) before the clock starts; the start-up time is shown separately.
One timed run per worker count (the machine is shared: rerun to see the spread).

Speed-up against the paper: MMLforGalAM quotes 1.5 s per image (Wang et al. 2025,
~17 days for a million images).

Spectra path, side by side in the same run: resampling + min-max of ``--n-spectra``
simulated SDSS spectra and one spectra-only model call (in this process), against pPXF
(:func:`napari_galam.sps.reference_fit.fit_population`, shipped E-MILES library) timed
on ``--n-ppxf`` of the same spectra (median per fit, scaled to all of them).

``--big`` also runs ``galam predict --dask`` on 10 000 cutouts once as a subprocess
(cold: cluster start and model load included) and prints its time and row count.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--n 1500] [--big]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _table import print_table  # noqa: E402

PAPER_SECONDS_PER_IMAGE = 1.5


def simulate(folder: Path, unique: int, seed: int = 7) -> Path:
    from napari_galam.simulate.datasets import simulate_dataset

    path = folder / "unique.h5"
    simulate_dataset(path, kind="cutouts", n=unique, seed=seed)
    return path


def write_cutouts(h5: Path, folder: Path, n: int) -> None:
    import h5py

    from napari_galam.simulate.writers import write_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(h5, "r") as handle:
        rgb = handle["images/rgb"][()]
    for k in range(n):
        write_jpeg(folder / f"gal{k:05d}.jpg", rgb[k % len(rgb)])


def time_dask(inputs: list, n_workers: int, folder: Path, partition_size: int) -> dict:
    from astropy.table import Table  # noqa: F401 - imported before the clock

    from napari_galam.io.writers import write_table
    from napari_galam.pipeline.catalogue import PREDICT_JOB, predict_partition
    from napari_galam.pipeline.distributed import (
        merge_partitions,
        open_partitions_dir,
        partition_inputs,
        run_partitions,
        start_client,
    )

    start = time.perf_counter()
    client, cluster = start_client(n_workers=n_workers)
    try:
        warm = sorted(inputs, key=lambda g: str(g.image))[:16]
        client.run(predict_partition, warm, str(folder / f"warm{n_workers}.ecsv"))
        ready = time.perf_counter()
        parts_dir = open_partitions_dir(
            folder / f"parts{n_workers}",
            inputs,
            PREDICT_JOB,
            partition_size=partition_size,
            options={},
        )
        partitions = partition_inputs(inputs, PREDICT_JOB, partition_size=partition_size)
        run_partitions(partitions, PREDICT_JOB, parts_dir, engine="dask", client=client)
        table = merge_partitions(partitions, parts_dir, PREDICT_JOB)
        write_table(folder / f"results{n_workers}.csv", table)
        end = time.perf_counter()
    finally:
        client.close()
        cluster.close()
    assert len(table) == len(inputs)
    return {
        "startup_s": ready - start,
        "run_s": end - ready,
        "rate": len(inputs) / (end - ready),
        "ok": int((table["status"] == "ok").sum()),
    }


def spectra_vs_ppxf(h5: Path, n_spectra: int, n_ppxf: int) -> dict:
    import h5py

    from napari_galam.core.preprocess import model_spectrum
    from napari_galam.models.inference import predict_galaxies
    from napari_galam.models.registry import spectrum_frame
    from napari_galam.sps.reference_fit import fit_population

    frame = spectrum_frame()

    with h5py.File(h5, "r") as handle:
        wave = 10.0 ** handle["spectra/loglam"][()]
        flux = handle["spectra/loglam_flux"][()]
        ivar = handle["spectra/loglam_ivar"][()]
        redshift = handle["truth/redshift"][()]
    index = np.arange(n_spectra) % len(flux)
    first = model_spectrum(wave, flux[0], redshift=float(redshift[0]), frame=frame)
    predict_galaxies(spectra=np.stack([first] * 4), model="spectra-only")  # load + trace once
    start = time.perf_counter()
    stacked = []
    for i in index:
        good = ivar[i] > 0
        stacked.append(
            model_spectrum(wave[good], flux[i][good], redshift=float(redshift[i]), frame=frame)
        )
    predict_galaxies(spectra=np.stack(stacked), model="spectra-only")
    network_s = time.perf_counter() - start
    fits = []
    for i in range(n_ppxf):
        noise = np.where(ivar[i] > 0, 1.0 / np.sqrt(np.maximum(ivar[i], 1e-30)), np.inf)
        t0 = time.perf_counter()
        fit_population(wave, flux[i], noise=noise, redshift=float(redshift[i]), fwhm_gal=None)
        fits.append(time.perf_counter() - t0)
    per_fit = float(np.median(fits))
    return {
        "network_s": network_s,
        "network_per": network_s / n_spectra,
        "ppxf_per": per_fit,
        "ppxf_all_s": per_fit * n_spectra,
    }


def big_run(h5: Path, folder: Path, n: int) -> None:
    from astropy.table import Table

    write_cutouts(h5, folder / "big", n)
    out = folder / "big.csv"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "napari_galam.cli", "predict", str(folder / "big"), "-o", str(out)]
        + ["--dask"],
        text=True,
        stdout=subprocess.PIPE,
    )
    seconds = time.perf_counter() - start
    table = Table.read(out)
    print(result.stdout.strip())
    print_table(
        f"galam predict --dask on {n} cutouts (one cold run: cluster start and model load included)",
        ["rows", "unique sources", "ok", "rejected", "wall s", "galaxies/s"],
        [
            [
                len(table),
                len(set(table["source"])),
                int((table["status"] == "ok").sum()),
                int((table["status"] == "rejected").sum()),
                f"{seconds:.1f}",
                f"{n / seconds:.1f}",
            ]
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500, help="cutouts per timed run")
    parser.add_argument("--unique", type=int, default=200, help="distinct simulated galaxies")
    parser.add_argument("--partition-size", type=int, default=256)
    parser.add_argument("--n-spectra", type=int, default=1000)
    parser.add_argument("--n-ppxf", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also 10 000 cutouts via the CLI")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from napari_galam.pipeline.catalogue import collect_inputs

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        h5 = simulate(folder, args.unique)
        write_cutouts(h5, folder / "cutouts", args.n)
        inputs = collect_inputs([folder / "cutouts"])
        results = {w: time_dask(inputs, w, folder, args.partition_size) for w in (1, 2)}
        spectra = spectra_vs_ppxf(h5, args.n_spectra, args.n_ppxf)
        cores = len(os.sched_getaffinity(0))
        print_table(
            f"Whole per-galaxy pipeline on Dask (read JPEG -> QA -> MMLforGalAM -> write), "
            f"{args.n} cutouts, partitions of {args.partition_size}, {cores} cores",
            ["workers", "start-up s", "run s", "galaxies/s", "ok", "vs paper 1.5 s/img", "scaling"],
            [
                [
                    w,
                    f"{r['startup_s']:.1f}",
                    f"{r['run_s']:.1f}",
                    f"{r['rate']:.1f}",
                    r["ok"],
                    f"{r['rate'] * PAPER_SECONDS_PER_IMAGE:.0f}x",
                    f"{r['rate'] / results[1]['rate']:.2f}x",
                ]
                for w, r in results.items()
            ],
        )
        print_table(
            f"Spectra path vs pPXF on the same simulated SDSS spectra ({args.n_spectra} spectra; "
            f"pPXF: median of {args.n_ppxf} fits, scaled)",
            ["method", "s per spectrum", f"s for {args.n_spectra}", "ratio"],
            [
                [
                    "preprocess + spectra-only model",
                    f"{spectra['network_per']:.2e}",
                    f"{spectra['network_s']:.2f}",
                    "1",
                ],
                [
                    "pPXF fit_population",
                    f"{spectra['ppxf_per']:.2f}",
                    f"{spectra['ppxf_all_s']:.0f}",
                    f"{spectra['ppxf_per'] / spectra['network_per']:.0f}x slower",
                ],
            ],
        )
        if args.big:
            big_run(h5, folder, 10_000)


if __name__ == "__main__":
    main()
