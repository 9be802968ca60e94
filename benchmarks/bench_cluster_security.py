"""What TLS on temporary credentials adds to the start-up of the LocalCluster of ``--dask``.

Side by side, in one process: the time from nothing to a client whose first task came
back, for the package's LocalCluster (:func:`napari_galam.pipeline.dask_cluster.start_client`:
mutual TLS with credentials made by ``Security.temporary()``, no HTTP routes) and for
the same cluster on plain TCP (the set-up before issue #22). Then the cluster is closed.
Each is run ``--repeat`` times, alternating, and the median is shown (the machine is
shared: rerun to see the spread). Also shown: how long a local process without the
credentials takes to be refused (plain ``tcp://`` and TLS with other credentials).

Run: ``.venv/bin/python benchmarks/bench_cluster_security.py [--workers 1] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _table import print_table  # noqa: E402


def _plain_tcp_client(n_workers: int) -> tuple:
    """The cluster as it was before: plain TCP on loopback, no dashboard asked for."""
    import dask
    from distributed import Client, LocalCluster

    from napari_galam.pipeline.dask_cluster import HTTP_ROUTE_SETTINGS

    with dask.config.set(dict.fromkeys(HTTP_ROUTE_SETTINGS, [])):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
        )
    return Client(cluster), cluster


def _tls_client(n_workers: int) -> tuple:
    from napari_galam.pipeline.dask_cluster import start_client

    return start_client(n_workers=n_workers)


def _start_to_first_result(make, n_workers: int) -> tuple[float, str]:
    start = time.perf_counter()
    client, cluster = make(n_workers)
    assert client.submit(sum, [1, 2]).result() == 3
    seconds = time.perf_counter() - start
    address = cluster.scheduler_address
    client.close()
    cluster.close()
    return seconds, address


def _refusal_seconds(n_workers: int) -> dict[str, float]:
    from distributed import Client
    from distributed.security import Security

    client, cluster = _tls_client(n_workers)
    address = cluster.scheduler_address
    times = {}
    try:
        for name, target, security in (
            ("plain tcp://", "tcp://" + address.split("://")[1], None),
            ("TLS, other credentials", address, Security.temporary()),
        ):
            start = time.perf_counter()
            try:
                Client(target, timeout="10s", security=security).close()
                times[name] = float("nan")  # admitted: should not happen
            except Exception:  # noqa: BLE001 - any refusal counts
                times[name] = time.perf_counter() - start
    finally:
        client.close()
        cluster.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"plain TCP": [], "TLS, temporary credentials": []}
    addresses = {}
    _start_to_first_result(_plain_tcp_client, args.workers)  # warm imports and caches
    for _ in range(args.repeat):
        for name, make in (
            ("plain TCP", _plain_tcp_client),
            ("TLS, temporary credentials", _tls_client),
        ):
            seconds, addresses[name] = _start_to_first_result(make, args.workers)
            runs[name].append(seconds)
    rows = [
        (
            name,
            addresses[name].split(":")[0],
            f"{statistics.median(t):.2f}",
            " ".join(f"{x:.2f}" for x in t),
        )
        for name, t in runs.items()
    ]
    print_table(
        f"LocalCluster of {args.workers} worker(s): start to first result, s "
        f"(median of {args.repeat})",
        ("cluster", "protocol", "median", "runs"),
        rows,
    )
    added = statistics.median(runs["TLS, temporary credentials"]) - statistics.median(
        runs["plain TCP"]
    )
    print(f"TLS adds {added:+.2f} s to the start-up (medians)")
    refusals = _refusal_seconds(args.workers)
    print_table(
        "a local process without the credentials",
        ("tries", "refused after, s"),
        [(name, f"{t:.2f}") for name, t in refusals.items()],
    )


if __name__ == "__main__":
    main()
