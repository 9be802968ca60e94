"""``galam map`` end to end in a subprocess (TensorFlow stays out of the test process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from galam_cli import galam

from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    "sed-cnn" not in available_models(), reason="no shipped SED model in this checkout"
)


def test_maps_good_cubes_reports_bad_ones_and_resumes(tmp_path: Path) -> None:
    from astropy.table import Table

    from napari_galam.io.writers import read_maps
    from napari_galam.simulate.samples import simulated_califa_cube
    from napari_galam.simulate.writers import write_califa_cube

    cube = simulated_califa_cube(seed=3)
    good = write_califa_cube(tmp_path / "sim3.V500.rscube.fits", cube)
    bad = tmp_path / "notes.fits"
    bad.write_text("not a cube")
    out = tmp_path / "maps"

    first = galam("map", str(good), str(bad), "--out", str(out))
    assert first.returncode == 1, first.stderr  # one file failed
    summary = Table.read(out / "map_summary.ecsv")
    by_source = {Path(r["source"]).name: r for r in summary}
    assert by_source["sim3.V500.rscube.fits"]["status"] == "ok"
    assert by_source["notes.fits"]["status"] == "failed"
    assert "notes.fits" in by_source["notes.fits"]["reason"]

    maps = read_maps(out / "sim3.V500.rscube.maps.fits")
    age = maps.maps["LOG_AGE"]
    inside = (cube.truth.r_over_re <= 2) & np.isfinite(age)
    assert inside.sum() > 100
    assert np.nanmedian(np.abs(age[inside] - cube.truth.log_age[inside])) < 0.15
    assert maps.celestial_wcs is not None and maps.celestial_wcs.has_celestial
    # errors and flags ride beside the maps, on the same grid and WCS
    assert {"LOG_AGE_ERR", "MH_ERR", "OOD"} <= set(maps.maps)
    valued = np.isfinite(age)
    for name in ("LOG_AGE_ERR", "MH_ERR"):
        error = maps.maps[name]
        assert error.shape == age.shape
        assert np.all(np.isfinite(error[valued]) & (error[valued] > 0))
        assert np.all(np.isnan(error[~valued]))
        assert maps.headers[name]["CRVAL1"] == maps.headers["LOG_AGE"]["CRVAL1"]
    ood = maps.maps["OOD"]
    assert np.all(ood[~valued] == 0) and np.all(ood < 8)
    assert maps.header["MODEL"] == "spaxel-spectra"  # "auto" for an IFU cube

    # the SED CNN of the paper stays selectable; spaxels below its training S/N (the
    # faint outskirts, S/N < 30 in its SEDs) are flagged (bit 1)
    sed = galam("map", str(good), "--model", "sed-cnn", "--out", str(tmp_path / "sed"))
    assert sed.returncode == 0, sed.stderr
    sed_maps = read_maps(tmp_path / "sed" / "sim3.V500.rscube.maps.fits")
    assert sed_maps.header["MODEL"] == "sed-cnn"
    sed_valued = np.isfinite(sed_maps.maps["LOG_AGE"])
    faint = sed_valued & (sed_maps.maps["SNR"] < 20)
    assert faint.any() and np.all(sed_maps.maps["OOD"][faint] & 1)

    again = galam("map", str(good), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert Table.read(out / "map_summary.ecsv")["status"][0] == "done before"
