"""``galam predict --dask`` / ``galam map --dask`` as subprocesses: kill and resume, a real
scheduler with two workers on loopback. TensorFlow stays out of the test process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from galam_cli import galam, kill_after_first_partition, kill_group

from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    not {"mmlforgalam", "sed-cnn"} <= set(available_models()),
    reason="the shipped models are not in this checkout",
)

LOOPBACK = "127.0.0.1"


def write_cutouts(folder: Path, n: int, *, unique: int = 8, seed: int = 21) -> None:
    from napari_galam.simulate.datasets import simulate_sdss_galaxy
    from napari_galam.simulate.writers import write_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rgbs = [simulate_sdss_galaxy(rng, blend_probability=0.0).cutout.rgb for _ in range(unique)]
    for k in range(n):
        write_jpeg(folder / f"gal{k:04d}.jpg", rgbs[k % unique])
    (folder / "broken.jpg").write_bytes(b"")


def read_rows(path: Path):
    from astropy.table import Table

    return Table.read(path)


def test_killed_run_resumes_without_duplicates_or_losses(tmp_path: Path) -> None:
    write_cutouts(tmp_path / "in", 60)
    out = tmp_path / "results.csv"
    parts = tmp_path / ".results.csv.partitions"
    args = ["predict", str(tmp_path / "in"), "-o", str(out), "--workers", "1",
            "--partition-size", "4", "--quiet"]  # fmt: skip
    kill_after_first_partition(args, parts, timeout=120)  # the CLI and its workers
    finished = sorted(parts.glob("part-*.ecsv"))
    assert 1 <= len(finished) < 16, "the kill came too late to test resuming"
    assert not out.exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in finished}

    second = galam(*args, timeout=300)
    assert second.returncode == 1, second.stderr  # broken.jpg is rejected
    assert f"{len(finished)} done before" in second.stdout
    for path in finished:  # finished partitions were not redone
        assert path.stat().st_mtime_ns == stamps[path.name]
    table = read_rows(out)
    expected = {f"gal{k:04d}" for k in range(60)} | {"broken"}
    assert len(table) == 61 and set(table["source"]) == expected  # no duplicate, none lost
    assert list(table["status"]).count("ok") == 60

    changed = galam("predict", str(tmp_path / "in" / "gal0000.jpg"), "-o", str(out), "--dask")
    assert changed.returncode == 2 and "different input list" in changed.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def test_predict_on_a_running_scheduler_with_two_workers(tmp_path: Path) -> None:
    from distributed import Client

    write_cutouts(tmp_path / "in", 24)
    port = free_port()
    address = f"tcp://{LOOPBACK}:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler"]
            + ["--host", LOOPBACK, "--port", str(port), "--no-dashboard"],
            start_new_session=True,
            env=env,
            **quiet,
        )
    ]
    try:
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_worker", address]
                    + ["--nworkers", "1", "--nthreads", "1", "--host", LOOPBACK]
                    + ["--no-dashboard"],
                    start_new_session=True,
                    env=env,
                    **quiet,
                )
            )
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            workers = client.scheduler_info()["workers"]
            assert len(workers) == 2
            assert all(w.startswith(f"tcp://{LOOPBACK}:") for w in workers)
        out = tmp_path / "results.ecsv"
        result = galam(
            "predict",
            str(tmp_path / "in"),
            "-o",
            str(out),
            "--scheduler",
            address,
            "--partition-size",
            "5",
        )
        assert result.returncode == 1, result.stderr
        assert "5 partitions, 0 done before, 0 crashed" in result.stdout
        table = read_rows(out)
        assert len(table) == 25 and len(set(table["source"])) == 25
        assert list(table["status"]).count("ok") == 24
        with Client(address, timeout="30s") as client:  # the cluster outlives the run
            assert len(client.scheduler_info()["workers"]) == 2
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_group(process)

    other = tmp_path / "other.ecsv"
    unreachable = galam("predict", str(tmp_path / "in"), "-o", str(other), "--scheduler", address)
    assert unreachable.returncode == 2 and "no Dask scheduler answered" in unreachable.stderr


def test_map_on_dask_reports_bad_cubes_and_resumes(tmp_path: Path) -> None:
    from napari_galam.simulate.samples import simulated_califa_cube
    from napari_galam.simulate.writers import write_califa_cube

    good = write_califa_cube(tmp_path / "sim4.V500.rscube.fits", simulated_califa_cube(seed=4))
    bad = tmp_path / "notes.fits"
    bad.write_text("not a cube")
    out = tmp_path / "maps"
    first = galam("map", str(good), str(bad), "--out", str(out), "--dask", "--workers", "1")
    assert first.returncode == 1, first.stderr
    assert (out / ".partitions" / "part-00001.ecsv").exists()
    summary = {Path(r["source"]).name: r for r in read_rows(out / "map_summary.ecsv")}
    assert summary["sim4.V500.rscube.fits"]["status"] == "ok"
    assert summary["sim4.V500.rscube.fits"]["n_mapped"] > 100
    assert summary["notes.fits"]["status"] == "failed"
    assert (out / "sim4.V500.rscube.maps.fits").exists()
    again = galam("map", str(good), str(bad), "--out", str(out), "--dask", "--workers", "1")
    assert again.returncode == 1 and "summary" in again.stdout
    assert len(read_rows(out / "map_summary.ecsv")) == 2
    stamp = (out / "sim4.V500.rscube.maps.fits").stat().st_mtime_ns
    redo = galam("map", str(good), "--out", str(out), "--dask", "--workers", "1", "--overwrite")
    assert redo.returncode == 0, redo.stderr
    assert (out / "sim4.V500.rscube.maps.fits").stat().st_mtime_ns != stamp
    assert list(read_rows(out / "map_summary.ecsv")["status"]) == ["ok"]


def write_credentials(folder: Path) -> dict[str, Path]:
    """A CA/certificate/key set in PEM files (self-signed, as a small cluster might use)."""
    from distributed.security import Security

    folder.mkdir(parents=True, exist_ok=True)
    temporary = Security.temporary()
    files = {
        "ca": (folder / "ca.pem", temporary.tls_ca_file),
        "cert": (folder / "cert.pem", temporary.tls_client_cert),
        "key": (folder / "key.pem", temporary.tls_client_key),
    }
    for path, text in files.values():
        path.write_text(text)
        path.chmod(0o600)
    return {name: path for name, (path, _) in files.items()}


def test_qa_on_a_tls_scheduler_needs_its_credentials(tmp_path: Path) -> None:
    from astropy.table import Table
    from distributed import Client
    from distributed.security import Security

    write_cutouts(tmp_path / "in", 4)
    pem = write_credentials(tmp_path / "pki")
    tls = ["--tls-ca-file", str(pem["ca"]), "--tls-cert", str(pem["cert"])]
    tls += ["--tls-key", str(pem["key"])]
    port = free_port()
    address = f"tls://{LOOPBACK}:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--protocol", "tls"]
            + ["--host", LOOPBACK, "--port", str(port), "--no-dashboard", *tls],
            start_new_session=True,
            env=env,
            **quiet,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address]
            + ["--nworkers", "1", "--nthreads", "1", "--host", LOOPBACK, "--no-dashboard"]
            + tls,
            start_new_session=True,
            env=env,
            **quiet,
        ),
    ]
    try:
        security = Security(
            tls_ca_file=str(pem["ca"]),
            tls_client_cert=str(pem["cert"]),
            tls_client_key=str(pem["key"]),
            require_encryption=True,
        )
        with Client(address, timeout="60s", security=security) as client:
            client.wait_for_workers(1, timeout=60)

        with_files = galam("qa", str(tmp_path / "in"), "--out", str(tmp_path / "a"), "--quiet",
                           "--no-sheets", "--scheduler", address, *tls)  # fmt: skip
        assert with_files.returncode == 0, with_files.stderr
        assert len(Table.read(tmp_path / "a" / "qa.ecsv")) == 5

        (tmp_path / "pki" / "dask.yaml").write_text(
            "distributed:\n  comm:\n    tls:\n      ca-file: ca.pem\n"
            "      client:\n        cert: cert.pem\n        key: key.pem\n"
        )
        with_yaml = galam("qa", str(tmp_path / "in"), "--out", str(tmp_path / "b"), "--quiet",
                          "--no-sheets", "--scheduler", address,
                          "--security", str(tmp_path / "pki" / "dask.yaml"))  # fmt: skip
        assert with_yaml.returncode == 0, with_yaml.stderr
        assert len(Table.read(tmp_path / "b" / "qa.ecsv")) == 5

        refusals = {
            "needs this client's credentials": ("--scheduler", address),
            "no Dask scheduler answered": ("--scheduler", f"tcp://{LOOPBACK}:{port}"),
            "no such file": ("--scheduler", address, "--tls-ca-file", str(pem["ca"]),
                    "--tls-cert", str(pem["ca"]), "--tls-key", str(tmp_path / "pki" / "nokey.pem")),
            "are for --scheduler": ("--dask", *tls),
        }  # fmt: skip
        for message, options in refusals.items():
            out = tmp_path / "refused"
            refused = galam("qa", str(tmp_path / "in"), "--out", str(out), "--quiet", *options)
            assert refused.returncode == 2 and message in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
            assert not (out / "qa.ecsv").exists()
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_group(process)
