"""``galam map`` of MUSE, MaNGA and CALIFA-layout cubes in one run with spaxel-spectra.

Runs the command in a subprocess (TensorFlow stays out of the test process).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_galam.models.registry import available_models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from galam_cli import galam
from survey_files import write_califa_cube, write_manga_logcube, write_muse_cube  # noqa: E402

pytestmark = pytest.mark.skipif(
    "spaxel-spectra" not in available_models(), reason="no shipped spaxel-spectra model"
)


def test_three_layouts_map_and_a_cube_without_usable_range_fails_alone(tmp_path: Path) -> None:
    from astropy.table import Table

    from napari_galam.io.writers import read_maps

    muse = write_muse_cube(tmp_path / "galaxy.muse.fits", ny=8, nx=6, nwave=3681).path
    manga = write_manga_logcube(tmp_path / "manga-1-2-LOGCUBE.fits", ny=7, nx=7, nwave=4563).path
    califa = write_califa_cube(tmp_path / "gal.V500.rscube.fits", ny=6, nx=5, nwave=1877).path
    short = write_califa_cube(tmp_path / "short.V500.rscube.fits", nwave=200).path
    out = tmp_path / "maps"
    run = galam("map", str(muse), str(manga), str(califa), str(short), "--out", str(out),
                "--redshift", "0.02", "--model", "spaxel-spectra")  # fmt: skip
    assert run.returncode == 1, run.stderr
    rows = {Path(row["source"]).name: row for row in Table.read(out / "map_summary.ecsv")}
    for name in ("galaxy.muse.fits", "manga-1-2-LOGCUBE.fits", "gal.V500.rscube.fits"):
        assert rows[name]["status"] == "ok", rows[name]["reason"]
        maps = read_maps(rows[name]["maps"])
        age = maps.maps["LOG_AGE"]
        assert maps.header["MODEL"] == "spaxel-spectra"
        assert maps.header["REDSHIFT"] == pytest.approx(0.02)
        # the 95% interval of this instrument's spaxels, in their errors (the card's)
        from napari_galam.models.registry import interval_95

        layout = {"galaxy.muse.fits": "MUSE", "manga-1-2-LOGCUBE.fits": "MaNGA"}.get(
            name, "CALIFA"
        )
        z95 = interval_95("spaxel-spectra", cube=True, layout=layout)
        assert [maps.header["Z95AGE"], maps.header["Z95MH"]] == pytest.approx(z95, abs=1e-4)
        valued = np.isfinite(age)
        assert valued.sum() == rows[name]["n_mapped"] > 10
        assert np.all((age[valued] > 7.5) & (age[valued] < 10.5))
        assert np.all(np.isfinite(maps.maps["MH_ERR"][valued]))
    assert np.isnan(read_maps(rows["galaxy.muse.fits"]["maps"]).maps["LOG_AGE"][0]).all()
    assert rows["short.V500.rscube.fits"]["status"] == "failed"
    reason = rows["short.V500.rscube.fits"]["reason"]
    assert "short.V500.rscube.fits" in reason and "at least" in reason
    # the SED CNN cannot read a MUSE cube: that stays a clear per-file failure
    sed = galam("map", str(muse), "--out", str(tmp_path / "sed"), "--model", "sed-cnn")
    assert sed.returncode == 1
    failed = Table.read(tmp_path / "sed" / "map_summary.ecsv")[0]
    assert failed["status"] == "failed" and "covered" in failed["reason"]
    # by default a MUSE cube goes to the spectral model
    auto = galam("map", str(muse), "--out", str(tmp_path / "auto"))
    assert auto.returncode == 0, auto.stderr
    assert read_maps(tmp_path / "auto" / "galaxy.muse.maps.fits").header["MODEL"] == "spaxel-spectra"
