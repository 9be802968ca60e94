"""Partitioned, resumable runs on Dask (the models run in worker processes, never here)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.models.registry import available_models
from napari_galam.pipeline.catalogue import (
    PREDICT_COLUMNS,
    PREDICT_JOB,
    GalaxyInput,
    collect_inputs,
)
from napari_galam.pipeline.distributed import (
    Partition,
    iter_run_partitions,
    merge_partitions,
    open_partitions_dir,
    partition_inputs,
    partition_path,
    run_batch,
    run_partitions,
    start_client,
    write_rows,
)
from napari_galam.progress import Progress, run_to_end


def write_cutouts(folder: Path, n: int, *, unique: int = 8, seed: int = 11) -> list[Path]:
    """``n`` JPEG cutouts (``unique`` simulated galaxies, repeated under other names)."""
    from napari_galam.simulate.datasets import simulate_sdss_galaxy
    from napari_galam.simulate.writers import write_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rgbs = [simulate_sdss_galaxy(rng, blend_probability=0.0).cutout.rgb for _ in range(unique)]
    return [write_jpeg(folder / f"gal{k:04d}.jpg", rgbs[k % unique]) for k in range(n)]


def galaxies(n: int) -> list[GalaxyInput]:
    return [GalaxyInput(f"g{k}", Path(f"/data/g{k:03d}.jpg")) for k in range(n)]


def test_partitions_are_sorted_and_deterministic() -> None:
    items = galaxies(23)
    shuffled = [items[k] for k in np.random.default_rng(1).permutation(23)]
    first = partition_inputs(items, PREDICT_JOB, partition_size=5)
    again = partition_inputs(shuffled, PREDICT_JOB, partition_size=5)
    assert first == again
    assert [len(p.items) for p in first] == [5, 5, 5, 5, 3]
    assert [g.source for p in first for g in p.items] == [f"g{k}" for k in range(23)]
    with pytest.raises(GalamInputError, match="partition size"):
        partition_inputs(items, PREDICT_JOB, partition_size=0)


def test_manifest_refuses_a_different_input_list(tmp_path: Path) -> None:
    items = galaxies(10)
    folder = open_partitions_dir(
        tmp_path / "p", items, PREDICT_JOB, partition_size=4, options={"m": "a"}
    )
    assert json.loads((folder / "manifest.json").read_text())["n_inputs"] == 10
    stale = folder / ".part-00001.ecsv.x1y2.tmp.ecsv"  # a write cut short by a kill
    stale.write_text("half a table")
    # the same list in another order resumes, and the half-written file goes
    open_partitions_dir(tmp_path / "p", items[::-1], PREDICT_JOB, partition_size=4, options={"m": "a"})
    assert not stale.exists()
    with pytest.raises(GalamInputError, match="different input list"):
        open_partitions_dir(
            tmp_path / "p", items[:9], PREDICT_JOB, partition_size=4, options={"m": "a"}
        )
    with pytest.raises(GalamInputError, match="partition size"):
        open_partitions_dir(tmp_path / "p", items, PREDICT_JOB, partition_size=3, options={"m": "a"})
    with pytest.raises(GalamInputError, match="options"):
        open_partitions_dir(tmp_path / "p", items, PREDICT_JOB, partition_size=4, options={"m": "b"})


def fake_predict_task(items: tuple, path: str, *, crash_on: str = "") -> int:
    """Writes made-up rows; raises for the partition holding ``crash_on``."""
    if any(g.source == crash_on for g in items):
        raise RuntimeError("worker fell over")
    rows = [
        {
            "source": g.source,
            "image": str(g.image),
            "spectrum": "",
            "model": "fake",
            "log_age": 9.0,
            "mh": 0.0,
            "status": "ok",
            "reason": "",
        }
        for g in items
    ]
    write_rows(
        Path(path),
        rows,
        ("source", "image", "spectrum", "model") + ("log_age", "mh") + ("status", "reason"),
    )
    return len(rows)


FAKE_JOB = dataclasses.replace(PREDICT_JOB, run=fake_predict_task)


def test_crashed_partition_is_recorded_and_a_rerun_skips_finished_ones(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    items = galaxies(20)
    parts = partition_inputs(items, FAKE_JOB, partition_size=6)
    folder = open_partitions_dir(tmp_path / "p", items, FAKE_JOB, partition_size=6, options={})
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            progress: list[Progress] = []
            summary = run_to_end(
                iter_run_partitions(
                    parts, FAKE_JOB, folder, engine="dask", client=client, crash_on="g7"
                ),
                on_progress=progress.append,
            )
            assert progress[0] == Progress("predict", 0, 20)
            assert progress[-1] == Progress("predict", 20, 20)
            assert (summary.n_partitions, summary.n_skipped, summary.n_crashed) == (4, 0, 1)
            table = merge_partitions(parts, folder, FAKE_JOB)
            assert sorted(table["source"]) == sorted(g.source for g in items)
            failed = table[table["status"] == "failed"]
            assert "g7" in list(failed["source"]) and len(failed) == 6
            assert "worker fell over" in failed["reason"][0]

            # drop one partition; the rerun redoes only it
            stamps = {p.index: partition_path(folder, p.index).stat().st_mtime_ns for p in parts}
            partition_path(folder, 2).unlink()
            again = run_partitions(parts, FAKE_JOB, folder, engine="dask", client=client)
            assert (again.n_skipped, again.n_crashed) == (3, 0)
            for index in (0, 1, 3):
                assert partition_path(folder, index).stat().st_mtime_ns == stamps[index]
    merged = merge_partitions(parts, folder, FAKE_JOB)
    assert len(merged) == 20 and len(set(merged["source"])) == 20


def test_merge_checks_one_row_per_input(tmp_path: Path) -> None:
    items = galaxies(4)
    parts = [Partition(0, tuple(items[:2])), Partition(1, tuple(items[2:]))]
    fake_predict_task(parts[0].items, str(partition_path(tmp_path, 0)))
    with pytest.raises(GalamError, match="part-00001.ecsv: missing"):
        merge_partitions(parts, tmp_path, FAKE_JOB)
    fake_predict_task(parts[0].items, str(partition_path(tmp_path, 1)))  # wrong rows
    with pytest.raises(GalamError, match="do not match"):
        merge_partitions(parts, tmp_path, FAKE_JOB)


@pytest.mark.skipif("mmlforgalam" not in available_models(), reason="no shipped MMLforGalAM")
def test_local_cluster_with_two_workers_gives_one_row_per_input(tmp_path: Path) -> None:
    write_cutouts(tmp_path / "in", 40)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    inputs = collect_inputs([tmp_path / "in"])
    parts = partition_inputs(inputs, PREDICT_JOB, partition_size=8)
    folder = open_partitions_dir(
        tmp_path / "parts", inputs, PREDICT_JOB, partition_size=8, options={"model": "auto"}
    )
    tf_before = "tensorflow" in sys.modules  # another test of the session may have loaded it
    client, cluster = start_client(n_workers=2)
    try:
        assert len(client.nthreads()) == 2
        summary = run_partitions(
            parts, PREDICT_JOB, folder, engine="dask", client=client, model="auto"
        )
        pids = client.run(lambda: __import__("os").getpid())
        has_tf = client.run(lambda: "tensorflow" in sys.modules)
    finally:
        client.close()
        cluster.close()
    assert summary.n_partitions == 6 and summary.n_crashed == 0
    assert sum(has_tf.values()) >= 1 and len(set(pids.values())) == 2
    assert tf_before or "tensorflow" not in sys.modules  # only the workers imported it
    table = merge_partitions(parts, folder, PREDICT_JOB)
    assert len(table) == 41 and len(set(table["image"])) == 41
    rows = {row["source"]: row for row in table}
    assert rows["broken"]["status"] == "rejected" and "broken.jpg" in rows["broken"]["reason"]
    ok = table[table["status"] == "ok"]
    assert len(ok) >= 30
    assert np.all((ok["log_age"] > 8) & (ok["log_age"] < 10.5))


def test_local_engine_writes_the_same_partitions_and_resumes(tmp_path: Path) -> None:
    items = galaxies(11)
    steps: list[Progress] = []
    table, summary = run_batch(
        items[::-1], FAKE_JOB, tmp_path / "p", partition_size=4, options={},
        on_progress=steps.append, crash_on="g5",
    )  # fmt: skip
    assert (summary.n_partitions, summary.n_skipped, summary.n_crashed) == (3, 0, 1)
    assert steps[0] == Progress("predict", 0, 11) and steps[-1] == Progress("predict", 11, 11)
    assert list(table["source"]) == [g.source for g in items[::-1]]  # in the order given
    assert tuple(table.colnames) == PREDICT_COLUMNS
    failed = table[table["status"] == "failed"]
    assert "g5" in list(failed["source"]) and "worker fell over" in failed["reason"][0]
    partition_path(tmp_path / "p", 0).unlink()
    again, resumed = run_batch(items, FAKE_JOB, tmp_path / "p", partition_size=4, options={})
    assert (resumed.n_skipped, resumed.n_crashed) == (2, 0)
    assert list(again["source"]) == [g.source for g in items]
    with pytest.raises(GalamInputError, match="needs engine='dask'"):
        run_batch(items, FAKE_JOB, tmp_path / "p", partition_size=4, options={}, client=object())
