"""Benchmark: opening IFU cubes lazily, and reading one spaxel's spectrum.

Issue 6 asks that a multi-GB cube opens in seconds. Timed side by side on the same files:
``read_cube`` (lazy), a spaxel spectrum from the lazy cube, ``read_cube(lazy=False)`` and
astropy reading the flux HDU whole (``fits.getdata``). Files: a 300 x 300 x 3700 float32
MUSE-layout cube (DATA + STAT, 2.7 GB apparent, written sparse) and a CALIFA V500-size
cube (78 x 73 x 1877, five extensions) plain and gzipped.
Run: python benchmarks/bench_cube_io.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "io"))
from _table import median_seconds, print_table  # noqa: E402
from astropy.io import fits  # noqa: E402
from survey_files import write_califa_cube, write_sparse_muse_cube  # noqa: E402

from napari_galam.io import cubes  # noqa: E402
from napari_galam.io.fits import clear_scan_cache  # noqa: E402


def cold_open(path: Path) -> float:
    """Median time of read_cube with the header-scan cache cleared (a first open)."""

    def run() -> None:
        clear_scan_cache()
        cubes.close_gzip_streams()
        cubes.read_cube(path)

    return median_seconds(run, repeat=3, warmup=1)


def once(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        muse = write_sparse_muse_cube(folder / "muse_big.fits")
        cube = cubes.read_cube(muse)
        rows.append(
            [
                "MUSE 300x300x3700 (2.7 GB)",
                "read_cube (lazy), cold",
                f"{cold_open(muse) * 1e3:.1f} ms",
            ]
        )
        rows.append(
            [
                "",
                "one plane",
                f"{median_seconds(lambda: np.array(cube.data[1800]), repeat=5) * 1e3:.2f} ms",
            ]
        )
        rows.append(
            [
                "",
                "spaxel spectrum",
                f"{median_seconds(lambda: cubes.spaxel_spectrum(cube, 150, 150), repeat=5) * 1e3:.1f} ms",
            ]
        )
        rows.append(
            [
                "",
                "fits.getdata(DATA) whole",
                f"{once(lambda: fits.getdata(muse, 'DATA', memmap=False)) * 1e3:.0f} ms (once)",
            ]
        )
        del cube
        muse.unlink()

        for suffix in (".fits", ".fits.gz"):
            path = write_califa_cube(
                folder / f"v500{suffix}", ny=73, nx=78, nwave=1877, n_bad=500
            ).path
            label = f"CALIFA V500 78x73x1877 {suffix}"
            rows.append([label, "read_cube (lazy), cold", f"{cold_open(path) * 1e3:.2f} ms"])
            cubes.close_gzip_streams()
            cube = cubes.read_cube(path)
            first = once(lambda c=cube: cubes.spaxel_spectrum(c, 36, 39))
            rows.append(["", "spaxel spectrum, first", f"{first * 1e3:.2f} ms"])
            warm = median_seconds(lambda c=cube: cubes.spaxel_spectrum(c, 36, 39), repeat=5)
            rows.append(["", "spaxel spectrum, again", f"{warm * 1e3:.2f} ms"])

            def eager_cold(p=path):
                cubes.close_gzip_streams()  # no decompressed slab left from before
                cubes.read_cube(p, lazy=False)

            eager = median_seconds(eager_cold, repeat=3, warmup=1)
            rows.append(["", "read_cube(lazy=False)", f"{eager * 1e3:.0f} ms"])
            baseline = median_seconds(
                lambda p=path: fits.getdata(p, 0, memmap=False), repeat=3, warmup=1
            )
            rows.append(["", "fits.getdata(primary) whole", f"{baseline * 1e3:.0f} ms"])
            cubes.close_gzip_streams()
    print_table("Cube I/O (median wall time; 2-core machine)", ["file", "operation", "time"], rows)


if __name__ == "__main__":
    main()
