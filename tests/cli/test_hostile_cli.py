"""Hostile files through ``galam predict``, ``galam qa`` and ``galam map`` (subprocesses).

A folder mixes the corpus of :mod:`hostile_files` (damaged FITS, decompression bombs,
folders, FIFOs and broken links named like inputs, readable files wrong for the models)
with valid cutouts, a spectrum and a cube. Every command must answer with exit status 1
(some inputs failed) and no traceback, give every input exactly one row, predict or map
the valid files and give each bad one a reason naming it (``galam predict`` predicts a
spectrum with mostly negative flux and flags it); in this process and on Dask, and after
a Dask run killed mid-way. TensorFlow stays out of the test process.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from galam_cli import galam, kill_after_first_partition
from hostile_files import write_hostile_files, write_valid_files

from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    not {"mmlforgalam", "spectra-only", "sed-cnn"} <= set(available_models()),
    reason="the shipped models are not in this checkout",
)

IMAGE_NAMES = (".jpg", ".jpeg", ".png", ".fits", ".fit", ".fits.gz")
#: Hostile inputs a model input can still be built from: predicted, with the flag saying why.
PREDICTED_AND_FLAGGED = {"negative-flux-spectrum", "saturated-cutout"}


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("hostile") / "in"
    hostile = write_hostile_files(folder)
    valid = write_valid_files(folder)
    return {"folder": folder, "hostile": hostile, "valid": valid}


def entries(folder: Path) -> list[Path]:
    """Everything in the folder that is named like an input."""
    return sorted(p for p in folder.iterdir() if p.name.lower().endswith(IMAGE_NAMES))


def check_predict_table(table: Table, corpus: dict) -> None:
    """One row per input file, the valid galaxies predicted, the others with a reason."""
    folder = corpus["folder"]
    named = Counter(
        Path(str(value)).name
        for column in ("image", "spectrum")
        for value in table[column]
        if str(value) not in ("", "--")
    )
    assert named == Counter(p.name for p in entries(folder))  # each input exactly once
    rows = {str(row["source"]): row for row in table}
    assert rows["G0"]["status"] == "ok" and rows["G0"]["model"] == "mmlforgalam"
    assert rows["G1"]["status"] == "ok" and rows["G1"]["model"] == "spectra-only"
    for hostile in corpus["hostile"]:
        row = next(
            r
            for r in table
            if hostile.path.name in (Path(str(r["image"])).name, Path(str(r["spectrum"])).name)
        )
        if hostile.kind in PREDICTED_AND_FLAGGED:
            assert row["status"] == "ok" and row["ood"], hostile.kind
            assert hostile.message in str(row["ood_reason"]), (hostile.kind, row["ood_reason"])
            continue
        assert row["status"] in ("rejected", "failed"), hostile.kind
        assert hostile.path.name in str(row["reason"]), (hostile.kind, row["reason"])


def test_predict_gives_every_hostile_input_its_row(corpus: dict, tmp_path: Path) -> None:
    out = tmp_path / "local.ecsv"
    local = galam("predict", str(corpus["folder"]), "-o", str(out), "--quiet")
    no_traceback(local)
    assert local.returncode == 1, local.stderr
    table = Table.read(out)
    check_predict_table(table, corpus)
    negative = next(r for r in table if r["source"] == "spec-negative")
    assert negative["status"] == "ok" and np.isfinite(negative["log_age"])
    assert negative["ood"] and "negative flux" in negative["ood_reason"]

    on_dask = tmp_path / "dask.ecsv"
    dask = galam(
        "predict", str(corpus["folder"]), "-o", str(on_dask), "--quiet", "--workers", "1",
        "--partition-size", "8",
    )  # fmt: skip
    no_traceback(dask)
    assert dask.returncode == 1 and "0 crashed" in dask.stdout, dask.stderr
    dask_table = Table.read(on_dask)
    check_predict_table(dask_table, corpus)
    assert list(dask_table["status"]) == list(table["status"])

    # a rerun changes nothing: one row per input still, and the same table
    again = galam("predict", str(corpus["folder"]), "-o", str(out), "--quiet")
    no_traceback(again)
    assert "1 partitions, 1 done before" in again.stdout
    assert len(Table.read(out)) == len(table)


def test_qa_gives_every_hostile_input_its_row(corpus: dict, tmp_path: Path) -> None:
    expected = {p.name for p in entries(corpus["folder"])}
    for name, extra in (("local", ()), ("dask", ("--workers", "1", "--partition-size", "8"))):
        out = tmp_path / name
        result = galam("qa", str(corpus["folder"]), "--out", str(out), "--quiet", *extra)
        no_traceback(result)
        assert result.returncode == 0, result.stderr
        table = Table.read(out / "qa.ecsv")
        names = [Path(str(f)).name for f in table["file"]]
        assert sorted(names) == sorted(expected)  # one row per input, none twice
        rows = dict(zip(names, table, strict=True))
        assert rows["G0.jpg"]["status"] == "accepted" and rows["G1.png"]["status"] == "accepted"
        for hostile in corpus["hostile"]:
            if hostile.role in ("image", "any"):
                row = rows[hostile.path.name]
                if hostile.expect == "error":
                    assert row["status"] == "unreadable", hostile.kind
                    assert hostile.path.name in str(row["reason"])
                    assert hostile.message in str(row["reason"]).lower(), hostile.kind
        assert (out / "contact_sheets" / "page_0001.png").exists()


def test_map_gives_every_hostile_input_its_row_and_keeps_earlier_rows(
    corpus: dict, tmp_path: Path
) -> None:
    files = [str(p) for p in entries(corpus["folder"])]
    out = tmp_path / "maps"
    stamps = []
    for extra in ((), ("--dask", "--workers", "1")):
        result = galam("map", *files, "--out", str(out), *extra)
        no_traceback(result)
        assert result.returncode == 1, result.stderr
        table = Table.read(out / "map_summary.ecsv")
        assert sorted(Path(str(s)).name for s in table["source"]) == sorted(
            Path(f).name for f in files
        )
        rows = {Path(str(r["source"])).name: r for r in table}
        assert rows["cube.fits"]["status"] in ("ok", "done before")
        assert (out / "cube.maps.fits").exists()
        for name, row in rows.items():
            if name != "cube.fits":
                assert row["status"] == "failed" and name in str(row["reason"]), name
        stamps.append((out / "cube.maps.fits").stat().st_mtime_ns)
    assert stamps[0] == stamps[1]  # the rerun (on Dask) did not redo the mapped cube

    # another cube into the same --out: the summary keeps the earlier rows
    other = tmp_path / "other.fits"
    shutil.copy(corpus["folder"] / "cube.fits", other)
    more = galam("map", str(other), "--out", str(out))
    no_traceback(more)
    assert more.returncode == 0, more.stderr
    merged = Table.read(out / "map_summary.ecsv")
    assert len(merged) == len(files) + 1
    assert Path(str(merged["source"][0])).name == "other.fits"  # this run's rows first
    assert merged["status"][0] == "ok"


def test_a_killed_dask_run_with_hostile_files_resumes_with_one_row_per_input(
    corpus: dict, tmp_path: Path
) -> None:
    out = tmp_path / "results.csv"
    parts = tmp_path / ".results.csv.partitions"
    args = ["predict", str(corpus["folder"]), "-o", str(out), "--workers", "1",
            "--partition-size", "3", "--quiet"]  # fmt: skip
    finished = kill_after_first_partition(args, parts, timeout=180)
    assert finished >= 1 and not out.exists()

    second = galam(*args)
    no_traceback(second)
    assert second.returncode == 1, second.stderr
    assert f"{finished} done before" in second.stdout
    check_predict_table(Table.read(out), corpus)


def test_outputs_are_checked_before_any_work(corpus: dict, tmp_path: Path) -> None:
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder")
    cube = str(corpus["folder"] / "cube.fits")
    cases = [
        (("map", cube, "--out", str(a_file)), "is a file"),
        (("map", cube, "--out", str(a_file / "sub")), "cannot be created"),
        (
            ("qa", str(corpus["folder"]), "--quiet", "--out", str(a_file / "sub")),
            "cannot be created",
        ),
        (("predict", cube, "-o", str(a_file / "sub" / "r.ecsv")), "cannot be created"),
        (("predict", cube, "-o", str(tmp_path / "r.txt")), "expected a .csv or .ecsv"),
        (("predict", cube, "-o", str(tmp_path)), "expected a .csv or .ecsv"),
    ]
    if Path("/proc/self").is_dir():  # a folder nobody, root included, can write into
        cases.append((("map", cube, "--out", "/proc/self"), "cannot write into this folder"))
    for args, message in cases:
        result = galam(*args)
        no_traceback(result)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(tmp_path.glob(".*partitions"))

    # an earlier summary that cannot be merged stops the run before any work
    out = tmp_path / "maps"
    out.mkdir()
    (out / "map_summary.ecsv").write_text("this is not a table")
    refused = galam("map", cube, "--out", str(out))
    no_traceback(refused)
    assert refused.returncode == 2 and "rows are not lost" in refused.stderr
    assert not (out / "cube.maps.fits").exists()
