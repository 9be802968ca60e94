"""Benchmark: the spaxel-spectra model's throughput and a MUSE-size cube mapped streaming.

Issue 18 asks for >= 5 000 spaxels/s on this 2-core machine and a 300 x 300 x 3681
MUSE-layout cube mapped in <= 60 s with peak anonymous memory (RssAnon: the pages of a
memory-mapped file do not count) under 1 GB. Measured here:

- the network alone (``predict_spectra`` on prepared inputs), spaxels/s;
- the input preparation alone (``spectral_inputs``: common resolution, rest grid), spaxels/s;
- a MUSE-layout cube (DATA + STAT, float32, written to a temporary file) mapped by
  ``iter_map_source(model="spaxel-spectra")`` block by block: wall time, spaxels/s and the
  peak RssAnon of this process sampled every 10 ms (after TensorFlow and the model were
  loaded, and that baseline).

Run: python benchmarks/bench_spaxel_spectra.py [--size 300]  (``--size 100`` is quick)
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "io"))
from _table import print_table  # noqa: E402
from survey_files import toy_galaxy_cube, write_sparse_muse_cube  # noqa: E402

N_WAVE = 3681


def rss_anon_mb() -> float:
    """This process's anonymous resident memory (MB) from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class PeakSampler:
    """Samples RssAnon in a thread; ``peak`` is the highest value seen."""

    def __init__(self) -> None:
        self.peak = rss_anon_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_anon_mb())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_muse_size_cube(path: Path, size: int) -> Path:
    """A MUSE-layout file of ``size`` x ``size`` x 3681 with a toy galaxy, plane slabs."""
    from astropy.io import fits

    write_sparse_muse_cube(path, ny=size, nx=size, nwave=N_WAVE)
    wave = 4749.76 + 1.25 * np.arange(N_WAVE)
    with fits.open(path, mode="update", memmap=True) as hdul:
        for start in range(0, N_WAVE, 200):
            planes = slice(start, min(N_WAVE, start + 200))
            flux = toy_galaxy_cube(size, size, wave[planes], peak=300.0)
            hdul["DATA"].data[planes] = flux
            hdul["STAT"].data[planes] = 4.0 + 0.5 * np.abs(flux)
        hdul.flush()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300, help="spaxels per side of the cube")
    parser.add_argument("--n-model", type=int, default=16384, help="spaxels for the model alone")
    args = parser.parse_args()

    from napari_galam.core.spectral_input import spectral_input_plan, spectral_inputs
    from napari_galam.io.sources import open_source
    from napari_galam.models.inference import predict_spectra
    from napari_galam.pipeline.maps import iter_map_source
    from napari_galam.progress import run_to_end

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = write_muse_size_cube(Path(folder) / "muse_bench.fits", args.size)
        cube = open_source(path)
        # inputs of the model alone: the brightest spaxels of the cube, repeated
        flux = np.asarray(cube.data[:, 1:9, :], np.float32).reshape(N_WAVE, -1).T
        variance = np.asarray(cube.variance[:, 1:9, :], np.float32).reshape(N_WAVE, -1).T
        plan = spectral_input_plan(cube.wave, redshift=0.02, layout="MUSE")
        start = time.perf_counter()
        inputs = spectral_inputs(plan, flux, variance)
        prepare = flux.shape[0] / (time.perf_counter() - start)
        x = np.resize(inputs.x, (args.n_model, *inputs.x.shape[1:]))
        snr = np.resize(inputs.snr, args.n_model)
        predict_spectra(x[:4096])  # load the model, trace the batch shape
        times: dict[str, list[float]] = {"pooled": [], "layout": []}
        for _ in range(3):  # interleaved, so both see the same machine
            for name, kwargs in (("pooled", {}), ("layout", {"snr": snr, "layout": "MUSE"})):
                start = time.perf_counter()
                predict_spectra(x, **kwargs)
                times[name].append(time.perf_counter() - start)
        model_rate = args.n_model / float(np.median(times["pooled"]))
        layout_rate = args.n_model / float(np.median(times["layout"]))
        rows.append(["network alone (predict_spectra, pooled cube terms, no S/N)",
                     f"{model_rate:,.0f} spaxels/s", "median of 3"])  # fmt: skip
        rows.append(["with the MUSE layout's cube terms and S/N factors",
                     f"{layout_rate:,.0f} spaxels/s ({layout_rate / model_rate:.2f}x)",
                     "median of 3, same run"])  # fmt: skip
        rows.append(["input preparation (spectral_inputs)", f"{prepare:,.0f} spaxels/s", ""])
        del flux, variance, inputs, x  # the streaming run starts from the model alone
        gc.collect()
        baseline = rss_anon_mb()
        with PeakSampler() as sampler:
            start = time.perf_counter()
            maps = run_to_end(
                iter_map_source(cube, None, model="spaxel-spectra", redshift=0.02, min_snr=3.0)
            )
            seconds = time.perf_counter() - start
        n = args.size * args.size
        gb = 2 * n * N_WAVE * 4 / 1e9
        rows.append([f"MUSE {args.size}x{args.size}x{N_WAVE} ({gb:.1f} GB DATA+STAT) -> maps",
                     f"{seconds:.1f} s ({n / seconds:,.0f} spaxels/s, {maps.n_mapped} mapped)",
                     f"peak RssAnon {sampler.peak:.0f} MB (after model load: {baseline:.0f} MB)"])  # fmt: skip
    print_table("spaxel-spectra (2-core CPU)", ["what", "speed", "memory"], rows)


if __name__ == "__main__":
    main()
