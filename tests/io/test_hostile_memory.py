"""Peak memory of reading the decompression bombs stays far below what they declare.

Each bomb is read in a fresh Python process (the napari reader's ``read_path``, which
goes through the cutout, spectrum and cube readers); the process reports its peak
resident memory (``VmHWM``). The bombs declare 100 million to 4 billion pixels or
2 GiB of FITS data; the readers must refuse them from the declared size, so the peak
stays near that of reading a small valid file and under the issue's 500 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hostile_files import write_hostile_files, write_valid_files

BOMBS = ("png-bomb", "png-bomb-warning", "jpeg-bomb", "jpeg-bomb-warning", "gzip-bomb")
PEAK_LIMIT_MB = 500.0

CHILD = """
import json, resource, sys
from napari_galam._reader import read_path
from napari_galam.errors import GalamInputError
try:
    read_path(sys.argv[1])
    outcome = "read"
except GalamInputError as exc:
    outcome = "refused"
# VmHWM belongs to this process's own address space, made new at exec; ru_maxrss on
# Linux carries the peak of the process that spawned this one (pytest) across exec.
status = open("/proc/self/status").read().split("VmHWM:")
if len(status) == 2:
    peak_mb = int(status[1].split()[0]) / 1024
else:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"outcome": outcome, "peak_mb": peak_mb}))
"""


def peak_memory_of_reading(path: Path) -> dict:
    """Outcome and peak resident memory (MB) of reading ``path`` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_bombs_are_refused_with_a_small_peak_memory(tmp_path: Path) -> None:
    corpus = {f.kind: f for f in write_hostile_files(tmp_path / "hostile")}
    valid = write_valid_files(tmp_path / "valid")
    baseline = peak_memory_of_reading(valid[0])
    assert baseline["outcome"] == "read"
    for kind in BOMBS:
        result = peak_memory_of_reading(corpus[kind].path)
        assert result["outcome"] == "refused", kind
        assert result["peak_mb"] < PEAK_LIMIT_MB, (kind, result)
        # refused from the header: no more than a small file's reading costs
        assert result["peak_mb"] < baseline["peak_mb"] + 50.0, (kind, result, baseline)
