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
    open_partitions_dir(
        tmp_path / "p", items[::-1], PREDICT_JOB, partition_size=4, options={"m": "a"}
    )
    assert not stale.exists()
    with pytest.raises(GalamInputError, match="different input list"):
        open_partitions_dir(
            tmp_path / "p", items[:9], PREDICT_JOB, partition_size=4, options={"m": "a"}
        )
    with pytest.raises(GalamInputError, match="partition size"):
        open_partitions_dir(
            tmp_path / "p", items, PREDICT_JOB, partition_size=3, options={"m": "a"}
        )
    with pytest.raises(GalamInputError, match="options"):
        open_partitions_dir(
            tmp_path / "p", items, PREDICT_JOB, partition_size=4, options={"m": "b"}
        )


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
            "log_age_err": 0.1,
            "mh": 0.0,
            "mh_err": 0.1,
            "ood": False,
            "ood_reason": "",
            "status": "ok",
            "reason": "",
        }
        for g in items
    ]
    write_rows(Path(path), rows, PREDICT_COLUMNS)
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

            # drop one partition; the rerun redoes it and retries the crashed one (its
            # rows are "failed"), and leaves the others alone
            stamps = {p.index: partition_path(folder, p.index).stat().st_mtime_ns for p in parts}
            partition_path(folder, 2).unlink()
            again = run_partitions(parts, FAKE_JOB, folder, engine="dask", client=client)
            assert (again.n_skipped, again.n_crashed, again.n_retried) == (2, 0, 6)
            for index in (0, 3):
                assert partition_path(folder, index).stat().st_mtime_ns == stamps[index]
            assert partition_path(folder, 1).stat().st_mtime_ns != stamps[1]
            assert set(merge_partitions(parts, folder, FAKE_JOB)["status"]) == {"ok"}
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
    # partition 0 was missing, partition 1 (g5's) had failed: both run; partition 2 kept
    assert (resumed.n_skipped, resumed.n_crashed, resumed.n_retried) == (1, 0, 4)
    assert list(again["source"]) == [g.source for g in items]
    assert set(again["status"]) == {"ok"}
    with pytest.raises(GalamInputError, match="needs engine='dask'"):
        run_batch(items, FAKE_JOB, tmp_path / "p", partition_size=4, options={}, client=object())


def flaky_items_task(items: tuple, path: str, *, log: str, fail: str = "") -> int:
    """Writes one row per galaxy, "failed" for those listed in the file ``fail``; logs calls."""
    bad = set(Path(fail).read_text().split()) if fail and Path(fail).exists() else set()
    with open(log, "a") as handle:
        handle.write(" ".join(g.source for g in items) + "\n")
    rows = []
    for g in items:
        failed = g.source in bad
        rows.append(
            {
                "source": g.source,
                "image": str(g.image),
                "spectrum": "",
                "model": "fake",
                "log_age": float("nan") if failed else 9.0 + int(g.source[1:]) / 100,
                "log_age_err": float("nan") if failed else 0.1,
                "mh": 0.0,
                "mh_err": 0.1,
                "ood": False,
                "ood_reason": "",
                "status": "failed" if failed else "ok",
                "reason": f"{g.image}: OSError: flaky disk" if failed else "",
            }
        )
    write_rows(Path(path), rows, PREDICT_COLUMNS)
    return len(rows)


FLAKY_JOB = dataclasses.replace(PREDICT_JOB, run=flaky_items_task)


def test_a_rerun_retries_only_the_failed_inputs_and_keeps_the_other_rows(tmp_path: Path) -> None:
    items = galaxies(10)
    log, fail = tmp_path / "calls.txt", tmp_path / "fail.txt"
    fail.write_text("g2 g7")
    options = {"partition_size": 5, "options": {}, "log": str(log), "fail": str(fail)}
    table, summary = run_batch(items, FLAKY_JOB, tmp_path / "p", **options)
    assert sorted(table[table["status"] == "failed"]["source"]) == ["g2", "g7"]
    assert summary.n_retried == 0
    first = {row["source"]: row["log_age"] for row in table if row["status"] == "ok"}

    fail.write_text("g7")  # g2's problem went away, g7's did not
    log.write_text("")
    again, resumed = run_batch(items, FLAKY_JOB, tmp_path / "p", **options)
    assert log.read_text().split("\n")[:-1] == ["g2", "g7"]  # only the failed inputs ran
    assert (resumed.n_skipped, resumed.n_retried) == (0, 2)
    assert list(again["source"]) == [g.source for g in items]  # one row each, in order
    rows = {row["source"]: row for row in again}
    assert rows["g2"]["status"] == "ok" and rows["g7"]["status"] == "failed"
    assert "flaky disk" in rows["g7"]["reason"]
    for source, value in first.items():  # the rows that were fine are kept
        assert rows[source]["log_age"] == pytest.approx(value)
    assert not list((tmp_path / "p").glob("retry-*"))

    fail.write_text("")
    log.write_text("")
    final, _ = run_batch(items, FLAKY_JOB, tmp_path / "p", **options)
    assert log.read_text() == "g7\n" and set(final["status"]) == {"ok"}
    log.write_text("")
    run_batch(items, FLAKY_JOB, tmp_path / "p", **options)
    assert log.read_text() == ""  # nothing left to retry

    # a partition file with failed rows that do not match its inputs is redone whole
    fail.write_text("g5 g6 g7 g8")
    flaky_items_task(
        items[5:9], str(partition_path(tmp_path / "p", 1)), log=str(log), fail=str(fail)
    )
    fail.write_text("")
    log.write_text("")
    redone, _ = run_batch(items, FLAKY_JOB, tmp_path / "p", **options)
    assert log.read_text() == "g5 g6 g7 g8 g9\n" and len(redone) == 10


OUTSIDER = """
import asyncio, json, ssl, sys, time
from distributed import Client
from distributed.comm import connect
from distributed.security import Security

address = sys.argv[1]
results = {}


def attempt(name, submit):
    start = time.monotonic()
    try:
        submit()
        results[name] = "ran"
    except Exception as exc:
        results[name] = "refused: " + type(exc).__name__
    results[name + " seconds"] = round(time.monotonic() - start, 2)


def plain_tcp():
    with Client("tcp://" + address.split("://")[1], timeout="5s") as client:
        assert client.submit(sum, [1, 2]).result(timeout=5) == 3


def tls_with_other_credentials():
    with Client(address, timeout="5s", security=Security.temporary()) as client:
        assert client.submit(sum, [1, 2]).result(timeout=5) == 3


def tls_without_certificate():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    async def identity():
        comm = await connect(address, timeout=5, ssl_context=context)
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()

    assert "type" in asyncio.run(asyncio.wait_for(identity(), 10))


attempt("plain tcp", plain_tcp)
if address.startswith("tls://"):
    attempt("tls, other credentials", tls_with_other_credentials)
    attempt("tls, no certificate", tls_without_certificate)
print(json.dumps(results))
sys.stdout.flush()
"""


def outsider(address: str) -> dict:
    """What another local process, without the cluster's credentials, manages to do."""
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", OUTSIDER, address], capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def http_status(port: int, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_local_cluster_admits_only_its_own_client() -> None:
    from distributed import LocalCluster

    # the harness works: a cluster without TLS runs anybody's work
    with LocalCluster(
        n_workers=1,
        processes=False,
        scheduler_port=0,
        protocol="tcp://",
        dashboard_address="127.0.0.1:0",
    ) as open_cluster:
        assert outsider(open_cluster.scheduler_address)["plain tcp"] == "ran"

    client, cluster = start_client(n_workers=1)
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3  # its own client works
        attempts = outsider(address)
        refused = {k: v for k, v in attempts.items() if not k.endswith("seconds")}
        assert len(refused) == 3 and all(v.startswith("refused") for v in refused.values())
        # no dashboard and no HTTP routes on the scheduler or the workers
        port = cluster.scheduler.http_server.port
        assert port != 8787
        for path in ("/status", "/info/main/workers.html", "/json/identity.json", "/metrics"):
            assert http_status(port, path) == 404
        worker_ports = client.run(lambda dask_worker: dask_worker.http_server.port)
        for worker_port in worker_ports.values():
            assert http_status(worker_port, "/metrics") == 404
        assert client.submit(sum, [3, 4]).result(timeout=60) == 7  # still serving its client
    finally:
        client.close()
        cluster.close()


def _malloc_trim_threshold() -> str | None:
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_workers_of_the_local_cluster_keep_glibcs_memory_rule() -> None:
    """Dask sets MALLOC_TRIM_THRESHOLD_ in its workers (pPXF fits then ran 3x slower)."""
    client, cluster = start_client(n_workers=1)
    try:
        assert set(client.run(_malloc_trim_threshold).values()) == {None}
    finally:
        client.close()
        cluster.close()
