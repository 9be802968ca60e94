"""``galam predict`` and ``galam evaluate`` end to end with the shipped models (subprocesses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from galam_cli import galam

from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    not {"mmlforgalam", "spectra-only", "image-only"} <= set(available_models()),
    reason="the per-galaxy models are not shipped in this checkout",
)


def test_predict_folder_of_cutouts_and_spectra(tmp_path: Path) -> None:
    from astropy.table import Table

    from napari_galam.simulate.datasets import simulate_sdss_galaxy
    from napari_galam.simulate.writers import write_jpeg, write_sdss_spectrum

    rng = np.random.default_rng(5)
    truth = {}
    for k in range(3):
        galaxy = simulate_sdss_galaxy(rng, blend_probability=0.0)
        write_jpeg(tmp_path / f"G{k}.jpg", galaxy.cutout.rgb)
        truth[f"G{k}"] = galaxy.spectrum
    write_sdss_spectrum(tmp_path / "G0.fits", truth["G0"])  # G0 has a spectrum too
    (tmp_path / "bad.jpg").write_bytes(b"")
    out = tmp_path / "results.ecsv"
    result = galam("predict", str(tmp_path), "-o", str(out), "--quiet")
    assert result.returncode == 1, result.stderr  # bad.jpg could not be predicted
    table = Table.read(out)
    rows = {row["source"]: row for row in table}
    assert set(rows) == {"G0", "G1", "G2", "bad"}
    assert rows["G0"]["model"] == "spectra-only"
    assert rows["bad"]["status"] == "rejected" and "empty" in rows["bad"]["reason"]
    assert {"log_age_err", "mh_err", "ood", "ood_reason"} <= set(table.colnames)
    # the table says what its errors mean and each model's 95% half-width (from its card)
    from napari_galam.models.registry import interval_95

    note = table.meta["interval_95"]
    assert "1-sigma" in note["meaning"]
    assert set(note["z95"]) == {str(m) for m in table["model"] if str(m) in available_models()}
    for model, z95 in note["z95"].items():
        assert [z95["log_age"], z95["mh"]] == pytest.approx(list(interval_95(model)))
    for name in ("G0", "G1", "G2"):
        row = rows[name]
        if row["status"] == "ok":
            assert abs(row["log_age"] - truth[name].log_age) < 0.6
            assert abs(row["mh"] - truth[name].mh) < 0.5
            assert 0 < row["log_age_err"] < 1 and 0 < row["mh_err"] < 1


def test_evaluate_gives_the_three_models(tmp_path: Path) -> None:
    data = tmp_path / "small.h5"
    made = galam(
        "simulate", "--kind", "cutouts", "-n", "30", "--seed", "3", "-o", str(data), "--quiet"
    )
    assert made.returncode == 0, made.stderr
    plot = tmp_path / "scatter.png"
    result = galam(
        "evaluate", "--cutouts", str(data), "-o", str(tmp_path / "eval"), "--plot", str(plot)
    )
    assert result.returncode == 0, result.stderr
    assert plot.stat().st_size > 20_000
    from astropy.table import Table

    table = Table.read(tmp_path / "eval.galaxies.ecsv")
    overall = table[table["snr_bin"] == "all"]
    assert set(overall["model"]) == {"mmlforgalam", "image-only", "spectra-only"}
    assert np.all(overall["age_sd"] < 0.5) and np.all(overall["n"] > 10)
    assert np.all((overall["age_within_68"] > 0.3) & (overall["mh_within_95"] > 0.6))
    assert "coverage of the quoted errors" in result.stdout
    missing = galam("evaluate")
    assert missing.returncode == 2 and "give --cutouts" in missing.stderr
