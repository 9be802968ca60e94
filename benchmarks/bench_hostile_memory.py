"""Benchmark: peak memory and time of reading each decompression bomb of the corpus.

Issue 22 asks that the PNG/JPEG decompression bombs and the gzip bomb cost under about
500 MB. Each file of ``tests/hostile_files.py`` named below is read by the napari
reader (``read_path``) in a fresh process, which prints its peak resident memory
(``VmHWM``) and the wall time of the read; a small valid JPEG is the baseline.
Run: python benchmarks/bench_hostile_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from _table import print_table  # noqa: E402
from hostile_files import write_hostile_files, write_valid_files  # noqa: E402

BOMBS = ("png-bomb", "png-bomb-warning", "jpeg-bomb", "jpeg-bomb-warning", "gzip-bomb")

CHILD = """
import json, resource, sys, time
from napari_galam._reader import read_path
from napari_galam.errors import GalamInputError
start = time.perf_counter()
try:
    read_path(sys.argv[1])
    outcome = "read"
except GalamInputError as exc:
    outcome = "refused"
seconds = time.perf_counter() - start
# VmHWM: this process's own peak (ru_maxrss on Linux keeps the parent's across exec).
status = open("/proc/self/status").read().split("VmHWM:")
if len(status) == 2:
    peak_mb = int(status[1].split()[0]) / 1024
else:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"outcome": outcome, "peak_mb": peak_mb, "seconds": seconds}))
"""


def measure(path: Path) -> dict:
    """Outcome, peak memory (MB) and read time (s) of ``read_path(path)`` in a new process."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        return {"outcome": f"crashed ({done.returncode})", "peak_mb": float("nan"), "seconds": 0}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        corpus = {f.kind: f for f in write_hostile_files(Path(folder) / "hostile")}
        valid = write_valid_files(Path(folder) / "valid")
        rows = []
        for label, path in [("valid JPEG (baseline)", valid[0])] + [
            (kind, corpus[kind].path) for kind in BOMBS
        ]:
            result = measure(path)
            size_kb = path.stat().st_size / 1024
            rows.append(
                (
                    label,
                    f"{size_kb:.0f}",
                    result["outcome"],
                    f"{result['peak_mb']:.0f}",
                    f"{result['seconds'] * 1000:.1f}",
                )
            )
    print_table(
        "Peak memory of reading each bomb (fresh process each, napari reader's read_path)",
        ("file", "on disk (KB)", "outcome", "peak RSS (MB)", "read (ms)"),
        rows,
    )


if __name__ == "__main__":
    main()
