"""Benchmark: 100 bootstrap gradient fits of N points (Liew-Cain et al. 2021, Sect. 3.3).

Target (issue 6): 100 fits of 5000 points in <= 10 ms. The vectorised fit is timed side by
side with the obvious loop (np.polyfit on 100 random 75% subsets) on the same data.
Run: python benchmarks/bench_gradients.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _table import median_seconds, print_table  # noqa: E402

from napari_galam.core.gradients import bootstrap_gradient  # noqa: E402


def loop_fit(radius: np.ndarray, values: np.ndarray, rng: np.random.Generator) -> float:
    inside = radius <= 1
    x, y = radius[inside], values[inside]
    m = int(round(0.75 * x.size))
    slopes = [np.polyfit(*(lambda i: (x[i], y[i]))(rng.choice(x.size, m, replace=False)), 1)[0]
              for _ in range(100)]  # fmt: skip
    return float(np.mean(slopes))


def main() -> None:
    rows = []
    for n in (1000, 5000, 20000):
        rng = np.random.default_rng(0)
        radius = rng.uniform(0, 1, n)  # all within R_e: N points in every fit
        radius[-1] = 1.5  # one outside, as the paper requires
        values = 9.5 - 0.1 * radius + rng.normal(0, 0.1, n)
        fast = median_seconds(lambda r=radius, v=values: bootstrap_gradient(r, v, seed=1))
        slow = median_seconds(
            lambda r=radius, v=values, g=rng: loop_fit(r, v, g), repeat=5, warmup=1
        )
        rows.append([n, f"{fast * 1e3:.2f}", f"{slow * 1e3:.1f}", f"{slow / fast:.0f}x",
                     "yes" if n != 5000 or fast <= 0.010 else "NO"])  # fmt: skip
    print_table(
        "100 bootstrap fits of 75% of N points (median wall time)",
        ["N points", "vectorised [ms]", "polyfit loop [ms]", "speed-up", "<= 10 ms at 5000"],
        rows,
    )


if __name__ == "__main__":
    main()
