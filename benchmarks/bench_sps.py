"""Benchmark: synthetic photometry in matrix form vs speclite, and one pPXF population fit.

Photometry: N spectra on the E-MILES grid (9500 pixels, 0.9 A) through the 5 SDSS and the
54 J-PAS-like bands. Timed side by side on the same spectra:
- ``matrix``: ``flux @ M.T`` with ``M = filter_matrix(...)`` built beforehand;
- ``matrix+build``: the same, building ``M`` inside the timing;
- ``speclite 2-D``: ``FilterSequence.get_ab_maggies`` on the whole (N, npix) array;
- ``speclite loop``: ``get_ab_maggies`` spectrum by spectrum (timed on at most 200
  spectra and scaled to N: marked ``*``).
pPXF: one fit of the SDSS spectra shipped with ppxf and of a noiseless two-SSP mock.
BLAS runs on one thread (unless OMP_NUM_THREADS / OPENBLAS_NUM_THREADS are set), like
speclite and pPXF's inner loops, so that the columns compare like with like; on a busy
machine a multi-threaded BLAS also spins and makes small products look slow.
Run: python benchmarks/bench_sps.py
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import sys  # noqa: E402
import time  # noqa: E402
from importlib import resources  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _table import median_seconds, print_table  # noqa: E402

from napari_galam.sps.filters import jpas_filters, sdss_filters  # noqa: E402
from napari_galam.sps.library import load_ssp_library  # noqa: E402
from napari_galam.sps.photometry import ab_maggies, filter_matrix  # noqa: E402
from napari_galam.sps.reference_fit import fit_population  # noqa: E402

LOOP_SAMPLE = 200


def random_spectra(n: int, seed: int = 0) -> np.ndarray:
    library = load_ssp_library()
    weights = np.random.default_rng(seed).dirichlet(np.ones(150), size=n)
    spectra = library.mix_spectra(weights.reshape(n, 25, 6))
    return spectra * 1e-13  # erg/s/cm2/A-like numbers


def bench_photometry() -> None:
    library = load_ssp_library()
    wave = library.wave
    rows = []
    for label, filters in (("SDSS ugriz (5)", sdss_filters()), ("J-PAS-like (54)", jpas_filters())):
        matrix = filter_matrix(wave, filters)
        for n in (100, 1000, 10_000):
            spectra = random_spectra(n)
            repeat = 5 if n < 10_000 else 3
            fast = median_seconds(lambda s=spectra, m=matrix: s @ m.T, repeat=repeat, warmup=1)
            built = median_seconds(
                lambda s=spectra, f=filters: ab_maggies(wave, s, f), repeat=repeat, warmup=1
            )
            batched = median_seconds(
                lambda s=spectra, f=filters: f.get_ab_maggies(s, wave), repeat=3, warmup=1
            )
            sample = spectra[:LOOP_SAMPLE]

            def loop(s=sample, f=filters):
                for spectrum in s:
                    f.get_ab_maggies(spectrum, wave)

            looped = median_seconds(loop, repeat=3, warmup=1) * n / len(sample)
            mark = "*" if n > LOOP_SAMPLE else ""
            rows.append(
                [
                    label,
                    n,
                    f"{fast * 1e3:.2f}",
                    f"{built * 1e3:.1f}",
                    f"{batched * 1e3:.1f}",
                    f"{looped * 1e3:.0f}{mark}",
                    f"{batched / fast:.0f}x",
                    f"{looped / fast:.0f}x",
                ]
            )
            del spectra
    print_table(
        f"Synthetic photometry of N spectra, {wave.size} pixels (median wall time, ms)",
        [
            "filters",
            "N",
            "matrix",
            "matrix+build",
            "speclite 2-D",
            "speclite loop",
            "2-D/matrix",
            "loop/matrix",
        ],
        rows,
    )
    print(f"* loop timed on {LOOP_SAMPLE} spectra and scaled to N")


def read_sdss(name: str) -> dict:
    path = resources.files("ppxf") / "spectra" / f"{name}_SDSS_DR18.fits"
    with fits.open(path) as hdul:
        coadd = hdul["COADD"].data
        wave = 10.0 ** coadd["loglam"].astype(np.float64)
        ivar = coadd["ivar"].astype(np.float64)
        return {
            "wave": wave,
            "flux": coadd["flux"].astype(np.float64),
            "noise": np.where(ivar > 0, 1 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), np.inf),
            "fwhm_gal": 2.355 * coadd["wdisp"].astype(np.float64) * np.gradient(wave),
            "redshift": float(hdul["SPECOBJ"].data["Z"][0]),
            "vacuum": True,
        }


def mock_two_ssp() -> dict:
    from ppxf import ppxf_util

    library = load_ssp_library()
    weights = np.zeros((25, 6))
    weights[14, 3], weights[22, 4] = 0.3, 0.7
    galaxy, ln_lam, _ = ppxf_util.log_rebin(
        library.wave[[0, -1]], library.mix_spectra(weights), velscale=69.0
    )
    kernel = np.exp(-0.5 * (np.arange(-40, 41) * 69.0 / 150.0) ** 2)
    galaxy = np.convolve(galaxy, kernel / kernel.sum(), mode="same")
    wave = np.exp(ln_lam) * 1.05
    inside = (wave > 3800) & (wave < 9200)
    return {"wave": wave[inside], "flux": galaxy[inside], "redshift": 0.05, "fwhm_gal": None}


def bench_ppxf() -> None:
    cases = [
        ("NGC 3522 (SDSS DR18)", read_sdss("NGC3522"), {}),
        ("NGC 3522 (SDSS DR18)", read_sdss("NGC3522"), {"regul": 100}),
        ("NGC 3073 (SDSS DR18)", read_sdss("NGC3073"), {}),
        ("two-SSP mock, z=0.05", mock_two_ssp(), {}),
    ]
    rows = []
    for label, spectrum, options in cases:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fit = fit_population(**spectrum, **options)
            times.append(time.perf_counter() - start)
        rows.append(
            [
                label,
                options.get("regul", 0),
                f"{np.median(times):.2f}",
                f"{fit.log_age:.3f}",
                f"{fit.mh:+.3f}",
                f"{fit.sigma:.1f}",
                f"{fit.chi2:.2f}",
                fit.n_fitted,
            ]
        )
    print_table(
        "One pPXF population fit with the shipped E-MILES library (median of 3)",
        ["spectrum", "regul", "time [s]", "<log age>_L", "<[M/H]>_L", "sigma", "chi2", "pixels"],
        rows,
    )


def main() -> None:
    bench_photometry()
    bench_ppxf()


if __name__ == "__main__":
    main()
