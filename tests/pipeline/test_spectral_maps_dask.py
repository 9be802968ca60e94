"""A big cube mapped from its spectra with its rows split over Dask workers.

The TensorFlow test compares the real model's maps of a simulated CALIFA cube in this
process and on a two-worker LocalCluster (it imports TensorFlow here: never with a
viewer). The others use a stand-in model or fail before any model is needed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from survey_files import write_manga_logcube, write_muse_cube  # noqa: E402
from test_spectral_maps import reading_model  # noqa: E402

from napari_galam.errors import GalamError, GalamInputError  # noqa: E402
from napari_galam.io.sources import open_source  # noqa: E402
from napari_galam.pipeline.maps import iter_map_source  # noqa: E402
from napari_galam.pipeline.spectral_maps import (  # noqa: E402
    NAN_REASONS,
    _block_error,
    iter_spectra_maps,
    iter_spectra_maps_distributed,
)
from napari_galam.progress import Progress, run_to_end  # noqa: E402

MAP_NAMES = ("log_age", "mh", "snr", "log_age_err", "mh_err", "light")


@pytest.fixture(scope="module")
def two_workers() -> Iterator[object]:
    """A client of a two-worker LocalCluster made by the package's own helper."""
    from napari_galam.pipeline.distributed import dask_client

    with dask_client(n_workers=2) as client:
        yield client


def collect(generator) -> tuple[list[Progress], object]:
    """The Progress items a generator yields and the value it returns."""
    seen = []
    try:
        while True:
            seen.append(next(generator))
    except StopIteration as stop:
        return seen, stop.value


def test_rows_are_mapped_as_in_the_whole_cube(tmp_path: Path) -> None:
    cube = open_source(write_muse_cube(tmp_path / "muse.fits", ny=9, nx=7, nwave=3681).path)
    whole = run_to_end(iter_spectra_maps(cube, reading_model, block_rows=4))
    ranges = [(0, 3), (3, 4), (4, 9)]
    parts = [
        run_to_end(iter_spectra_maps(cube, reading_model, block_rows=2, rows=r)) for r in ranges
    ]
    for name in (*MAP_NAMES, "ood", "bin_id"):
        joined = np.concatenate([part[name] for part in parts])
        np.testing.assert_allclose(joined, whole[name], rtol=1e-6, equal_nan=True, err_msg=name)
    assert parts[2]["bin_id"][0, 0] == 4 * 7  # the index in the whole cube
    for reason in NAN_REASONS:
        summed = sum(part["meta"]["nan_reasons"][reason] for part in parts)
        assert summed == whole["meta"]["nan_reasons"][reason]
    progress, _ = collect(iter_spectra_maps(cube, reading_model, block_rows=2, rows=(4, 9)))
    assert [p.done for p in progress] == [0, 2, 4, 5] and {p.total for p in progress} == {5}
    with pytest.raises(GalamInputError, match=r"muse\.fits: rows 5:12 are not a range"):
        run_to_end(iter_spectra_maps(cube, reading_model, rows=(5, 12)))
    with pytest.raises(GalamInputError, match="Voronoi binning needs the whole field"):
        run_to_end(iter_spectra_maps(cube, reading_model, rows=(0, 3), target_snr=10.0))


def test_binned_or_memory_only_cubes_stay_in_this_process(tmp_path: Path) -> None:
    import dataclasses

    manga = open_source(write_manga_logcube(tmp_path / "manga-LOGCUBE.fits", nwave=4563).path)
    options = {"predict_spectra": reading_model, "model": "spaxel-spectra"}
    binned = run_to_end(
        iter_map_source(
            manga, None, target_snr=20.0, redshift=0.02, distributed_min_spaxels=1, **options
        )
    )
    assert "engine" not in binned.meta and binned.meta["target_snr"] == 20.0
    ids = binned.bin_id[binned.bin_id >= 0]
    assert np.unique(ids).size < ids.size  # binned, which only this process does
    cube = open_source(write_muse_cube(tmp_path / "muse.fits", ny=9, nx=7, nwave=3681).path)
    in_memory = dataclasses.replace(cube, path=tmp_path / "never-written.fits")
    maps = run_to_end(iter_map_source(in_memory, None, distributed_min_spaxels=1, **options))
    assert "engine" not in maps.meta and maps.n_mapped == 8 * 7


def test_a_failing_block_names_the_file_and_its_rows(tmp_path: Path, two_workers) -> None:
    path = write_muse_cube(tmp_path / "muse.fits", ny=9, nx=7, nwave=3681).path
    cube = open_source(path)  # the workers open the file again, and find it broken
    Path(path).unlink()
    Path(path).write_bytes(b"not a FITS file")
    with pytest.raises(GalamInputError, match=r"muse\.fits: rows \d+:\d+ could not be mapped"):
        run_to_end(iter_spectra_maps_distributed(cube, rows_per_task=3, client=two_workers))
    assert two_workers.submit(sum, [1, 2]).result(timeout=60) == 3  # the cluster goes on
    error = _block_error("cube.fits", 16, 32, RuntimeError("worker lost"))
    assert type(error) is GalamError
    assert str(error) == (
        "cube.fits: rows 16:32 could not be mapped on a Dask worker: RuntimeError: worker lost"
    )


@pytest.mark.tensorflow
def test_big_califa_cube_on_two_workers_gives_the_same_maps(tmp_path: Path, two_workers) -> None:
    from napari_galam.simulate.samples import simulated_califa_cube
    from napari_galam.simulate.writers import write_califa_cube

    path = write_califa_cube(tmp_path / "sim.V500.rscube.fits", simulated_califa_cube(0))
    cube = open_source(path)
    _, ny, nx = cube.shape
    options = {"model": "spaxel-spectra", "min_snr": 3.0}  # the redshift: the header's
    import dask

    # the cluster's client is this process's default scheduler: keep the lazy reads here
    with dask.config.set(scheduler="synchronous"):
        local = run_to_end(iter_map_source(cube, None, **options))
    progress, remote = collect(
        iter_map_source(cube, None, distributed_min_spaxels=ny * nx, client=two_workers, **options)
    )
    assert remote.meta["engine"] == "dask" and remote.meta["dask_tasks"] >= 4
    assert "engine" not in local.meta
    done = [p.done for p in progress]
    assert done[0] == 0 and done[-1] == ny and done == sorted(done) and len(done) >= 5
    assert local.n_mapped > 0.5 * ny * nx and remote.n_mapped == local.n_mapped
    for name in ("log_age", "mh", "log_age_err", "mh_err", "snr", "light"):
        np.testing.assert_allclose(
            getattr(remote, name), getattr(local, name), atol=1e-4, equal_nan=True, err_msg=name
        )
    np.testing.assert_array_equal(remote.ood, local.ood)
    np.testing.assert_array_equal(remote.bin_id, local.bin_id)
    for key in ("nan_reasons", "redshift", "redshift_origin", "layout", "source", "n_kept"):
        assert remote.meta[key] == local.meta[key], key
    assert sum(local.meta["nan_reasons"].values()) + local.n_mapped == ny * nx
