"""``galam evaluate --survey-cubes``: the maps of ``galam map`` against the truth of
simulated MUSE and MaNGA cube files, in a subprocess (TensorFlow stays out of here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from galam_cli import galam

from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    "spaxel-spectra" not in available_models(), reason="no shipped spaxel-spectra model"
)


def _simulate(folder: Path, layout: str, seed: int, *extra: str) -> None:
    made = galam("simulate", "--kind", "cubes", "--layout", layout, "-n", "2", "--seed",
                 str(seed), "--redshift", "0.05", "--quiet", "-o", str(folder), *extra)  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]


def test_survey_cubes_are_mapped_and_judged_and_a_broken_one_gets_its_own_row(
    tmp_path: Path,
) -> None:
    from astropy.io import fits

    from napari_galam.io.writers import read_maps

    folder = tmp_path / "sim"
    _simulate(folder, "muse", 5, "--shape", "24,24")
    _simulate(folder, "manga", 6)
    broken = folder / "manga_6_0001.fits"
    broken.write_bytes(broken.read_bytes()[:20000])  # truncated mid-file
    out = tmp_path / "eval"
    run = galam("evaluate", "--survey-cubes", str(folder), "-o", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "3 of 4 files mapped (spaxel-spectra" in run.stdout
    assert "failed: " in run.stdout and "manga_6_0001.fits" in run.stdout
    result = json.loads(out.with_suffix(".survey.json").read_text())
    rows = {row["file"]: row for row in result["rows"]}
    assert "truncated" in rows["manga_6_0001.fits"]["status"]
    assert {row["layout"] for row in result["rows"] if row["status"] == "ok"} == {"MUSE", "MaNGA"}
    assert set(result["coverage"]) == {"all", "MUSE", "MaNGA"}
    n_all = result["coverage"]["all"]["log_age"]["n"]
    assert n_all == sum(result["coverage"][k]["log_age"]["n"] for k in ("MUSE", "MaNGA")) > 500
    for key in ("log_age", "mh"):
        assert 0.3 < result["coverage"]["all"][key]["within_68"] < 1.0
        assert np.isfinite(result["gradients"][key]["sd"])
        # each share says how many cubes it rests on (3 mapped: 2 MUSE, 1 MaNGA)
        assert result["coverage"]["all"][key]["groups"] == 3
        assert result["coverage"]["MUSE"][key]["groups"] == 2
        low, high = result["coverage"]["all"][key]["interval_68"]
        assert 0.0 <= low <= result["coverage"]["all"][key]["within_68"] <= high <= 1.0
    assert "3 cubes, " in run.stdout

    # a row's numbers are those of the file's own galam map output against its truth maps
    cube = folder / "muse_5_0000.fits"
    mapped = galam("map", str(cube), "--out", str(tmp_path / "maps"))
    assert mapped.returncode == 0, mapped.stderr[-2000:]
    maps = read_maps(next((tmp_path / "maps").glob("*.maps.fits"))).maps
    with fits.open(cube) as hdul:
        truth_age, radius = hdul["TRUE_LOG_AGE"].data, hdul["TRUE_R_RE"].data
    use = np.isfinite(maps["LOG_AGE"]) & (radius <= 2.0) & (maps["SNR"] >= 10.0)
    diff = (maps["LOG_AGE"] - truth_age)[use]
    robust = 1.4826 * np.median(np.abs(diff - np.median(diff)))
    assert rows[cube.name]["log_age_robust_sd"] == pytest.approx(robust, abs=1e-4)
    assert rows[cube.name]["mapped"] == int(np.isfinite(maps["LOG_AGE"]).sum())


def test_a_folder_without_a_truth_table_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "cube.fits").write_bytes(b"not a cube")
    run = galam("evaluate", "--survey-cubes", str(tmp_path))
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert str(tmp_path) in run.stderr and "_truth.ecsv" in run.stderr
