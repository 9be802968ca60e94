"""pPXF partitions on a Dask worker allocate memory as in a plain process.

Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_`` set, which turns off glibc's
dynamic mmap threshold: every array over 128 KiB is then a fresh mapping whose pages
fault in on first touch. ``pipeline.fit._large_arrays_on_heap`` restores glibc's usual
thresholds for a partition and puts the worker's back afterwards. These tests count
page faults (not time) in a real worker of a LocalCluster started with Dask's setting,
as the workers of a user's scheduler (``--scheduler``) are.
"""

from __future__ import annotations

import resource
import sys

import numpy as np
import pytest

from napari_galam.pipeline.fit import _large_arrays_on_heap

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's malloc thresholds (Linux only)"
)

#: 1 MiB arrays: far above glibc's 128 KiB mmap threshold.
_N_ARRAYS, _ARRAY_FLOATS = 200, 2**17


def _page_faults_of_arrays() -> int:
    """Minor page faults while making and dropping 200 arrays of 1 MiB, one at a time."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    total = 0.0
    for _ in range(_N_ARRAYS):
        total += float(np.ones(_ARRAY_FLOATS)[-1])
    assert total == _N_ARRAYS
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _faults_outside_inside_after() -> tuple[str | None, int, bool, int, int]:
    """In a worker: the variable, faults without, the context's answer, faults in it and
    faults after it."""
    import os

    outside = _page_faults_of_arrays()
    with _large_arrays_on_heap() as changed:
        _page_faults_of_arrays()  # the heap grows once
        inside = _page_faults_of_arrays()
    after = _page_faults_of_arrays()
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), outside, changed, inside, after


def test_a_worker_partition_reuses_freed_memory_and_restores_the_thresholds():
    import dask
    from distributed import Client, LocalCluster

    pages_per_array = _ARRAY_FLOATS * 8 // resource.getpagesize()
    dask_setting = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 65536}
    with (
        dask.config.set(dask_setting),
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # a free port, not 8787
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        trim, outside, changed, inside, after = client.submit(
            _faults_outside_inside_after, pure=False
        ).result()
    assert trim == "65536" and changed
    # Dask's setting: each array maps fresh pages; glibc's usual one: the heap is reused
    assert outside > _N_ARRAYS * pages_per_array // 2
    assert inside < outside // 20
    assert after > _N_ARRAYS * pages_per_array // 2  # the worker's setting is back


def test_nothing_changes_outside_a_worker(monkeypatch):
    """A process that opened a cluster has the variable in its environment (the nanny
    sets it before spawning) but its own malloc never read it: left alone."""
    pytest.importorskip("distributed")  # loaded, so the worker check itself runs
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with _large_arrays_on_heap() as changed:
        assert not changed
