"""Run the ``galam`` command line in a subprocess (TensorFlow stays out of the test process)."""

from __future__ import annotations

import subprocess
import sys

__all__ = ["galam"]


def galam(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m napari_galam.cli ARGS`` with its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "napari_galam.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
