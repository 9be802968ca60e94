"""``galam evaluate --cubes`` in a subprocess: gradient errors and how often they hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from galam_cli import galam

from napari_galam.models.registry import available_models, gradient_model_sd

pytestmark = pytest.mark.skipif(
    "sed-cnn" not in available_models(), reason="no shipped SED model in this checkout"
)


def test_evaluate_cubes_reports_gradient_error_coverage(tmp_path: Path) -> None:
    cubes = tmp_path / "cubes.h5"
    made = galam("simulate", "--kind", "cubes", "-n", "8", "--seed", "7", "--no-cubes",
                 "--quiet", "-o", str(cubes))  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    out = tmp_path / "eval"
    result = galam("evaluate", "--cubes", str(cubes), "-o", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "truth within 1 / 1.96 sigma" in result.stdout
    summary = json.loads(out.with_suffix(".spaxels.json").read_text())
    calibrated = gradient_model_sd("sed-cnn")
    for key in ("log_age", "mh"):
        cover = summary["gradient_coverage"][key]
        assert cover["model_sd"] == pytest.approx(calibrated[key])
        assert cover["quoted"]["n"] == summary["gradient_galaxies"] >= 6
        # the quoted error includes the model's own: never below it, and it holds the
        # truth at least as often as the paper's subsample SD
        assert cover["median_quoted"] >= calibrated[key]
        assert cover["quoted"]["within_68"] >= cover["paper_subsample_sd"]["within_68"]
    # per-spaxel coverage of the SED CNN's own errors, overall and per S/N bin
    assert "per-spaxel errors on" in result.stdout
    spaxels = summary["spaxel_coverage"]
    for key in ("log_age", "mh"):
        cover = spaxels[key]
        assert cover["n"] == summary["spaxels"] > 1000
        assert 0.45 < cover["within_68"] < cover["within_95"] <= 1.0
        assert sum(b["n"] for b in cover["by_snr"].values()) == cover["n"]
        assert cover["in_distribution"]["n"] <= cover["n"]
        # every spaxel a map shows, outskirts included: a superset of those within 2 R_e
        every = cover["every_mapped"]
        assert every["n"] > cover["n"]
        assert sum(b["n"] for b in every["by_snr"].values()) == every["n"]
        assert 0.45 < every["within_68"] < every["within_95"] <= 1.0
        # how well each share is known: cubes counted, and a cube-resampling interval
        for entry in (cover, *cover["by_snr"].values(), every):
            assert 1 <= entry["groups"] <= 8
            low, high = entry["interval_68"]
            assert 0.0 <= low <= high <= 1.0 and 0.0 <= entry["per_group_68"] <= 1.0
        assert cover["groups"] == every["groups"] == 8  # every cube has mapped spaxels
    assert "every mapped spaxel" in result.stdout
    assert "resampling cubes (90%)" in result.stdout
