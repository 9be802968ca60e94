"""Run the ``galam`` command line in a subprocess (TensorFlow stays out of the test process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["galam", "kill_after_first_partition", "kill_group"]


def galam(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m napari_galam.cli ARGS`` with its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "napari_galam.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kill_after_first_partition(args: list[str], parts: Path, *, timeout: float) -> int:
    """Start ``galam ARGS`` in its own process group, kill the whole group (the CLI, its
    cluster and its workers) once a partition file appears in ``parts``; return how many
    partition files were written by then."""
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_galam.cli", *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while not list(parts.glob("part-*.ecsv")):
            assert process.poll() is None, "the run ended before any partition was written"
            assert time.monotonic() < deadline, f"no partition written in {timeout:g} s"
            time.sleep(0.1)
    finally:
        kill_group(process)
    return len(list(parts.glob("part-*.ecsv")))


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session=True`` and everything it started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
