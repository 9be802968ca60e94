"""Benchmark: the two interactive paths of the napari docks, with the shipped models.

Targets (issue 6, on this 2-core CPU): a 78x73x1877 CALIFA-like cube -> age and [M/H]
maps in <= 2 s; one click on a galaxy -> prediction in <= 150 ms, warm. Both run exactly
what the docks run (pipeline functions + the shared model worker process, so TensorFlow
stays out of this process, as in napari). Medians over repeats; the first (cold) call,
which starts the worker and loads the model, is reported apart.

Run: python benchmarks/bench_napari_paths.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _table import median_seconds, print_table  # noqa: E402


def main() -> None:
    from skimage import data

    from napari_galam._sample_data import simulated_cube_path
    from napari_galam.io.cubes import read_cube
    from napari_galam.models.worker import ModelWorker
    from napari_galam.pipeline.galaxies import assess_at, predict_positions
    from napari_galam.pipeline.maps import map_seds, sed_model_filters, seds_from_cube
    from napari_galam.sps.filters import load_filters

    cube_path = simulated_cube_path("califa")
    filters = load_filters(sed_model_filters())
    field = data.hubble_deep_field()
    click = (578.0, 754.0)

    worker = ModelWorker(threads=2)
    start = time.perf_counter()
    worker.start()
    worker.load(["sed-cnn", "mmlforgalam"])
    cold = time.perf_counter() - start
    with worker:

        def cube_to_maps():
            cube = read_cube(cube_path)
            seds = seds_from_cube(cube, filters)
            return map_seds(seds, worker.predict_seds, min_snr=3.0)

        def photometry_only():
            return seds_from_cube(read_cube(cube_path), filters)

        def one_click():
            return predict_positions(field, [click], worker.predict_galaxies, model="mmlforgalam")

        def qa_only():
            return assess_at(field, *click)

        maps = cube_to_maps()
        assert maps.n_mapped > 100
        result = one_click()[0]
        assert result.predicted, result.reason
        t_maps = median_seconds(cube_to_maps, repeat=5, warmup=1)
        t_phot = median_seconds(photometry_only, repeat=5, warmup=1)
        t_click = median_seconds(one_click, repeat=20, warmup=2)
        t_qa = median_seconds(qa_only, repeat=20, warmup=2)
    shape = "x".join(str(n) for n in read_cube(cube_path).shape[::-1])
    print_table(
        "interactive paths (median wall time; worker warm)",
        ["path", "median", "target", "met"],
        [
            [f"cube {shape} -> maps ({maps.n_mapped} spaxels)", f"{t_maps:.2f} s", "<= 2 s",
             "yes" if t_maps <= 2 else "NO"],
            ["  of which synthetic photometry", f"{t_phot:.2f} s", "", ""],
            ["one click -> QA -> MMLforGalAM", f"{t_click * 1e3:.0f} ms", "<= 150 ms",
             "yes" if t_click <= 0.150 else "NO"],
            ["  of which QA (mask, deblend, crop)", f"{t_qa * 1e3:.0f} ms", "", ""],
            ["worker start + load both models (cold, once)", f"{cold:.1f} s", "", ""],
        ],
    )  # fmt: skip
    print(f"\nclick result: log age {result.log_age:.2f}, [M/H] {result.mh:+.2f} ({result.model})")


if __name__ == "__main__":
    main()
