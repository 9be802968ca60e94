"""``galam map`` end to end in a subprocess (TensorFlow stays out of the test process).

The PowerBin test also runs the models here, to check each bin against the model's answer
on the bin's mean; it is marked ``tensorflow`` (never in a process with a viewer).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from galam_cli import galam

from napari_galam.models.registry import available_models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from survey_files import write_califa_cube  # noqa: E402
from test_spectral_maps import bin_mean_inputs  # noqa: E402

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


@pytest.mark.tensorflow
@pytest.mark.parametrize(("model", "target"), [("spaxel-spectra", 20.0), ("sed-cnn", 150.0)])
def test_powerbin_bins_are_mapped_from_their_mean(
    tmp_path: Path, model: str, target: float
) -> None:
    from napari_galam.io.sources import open_source
    from napari_galam.io.writers import read_maps

    if model not in available_models():
        pytest.skip(f"no shipped {model} model")
    path = write_califa_cube(tmp_path / "g.V500.rscube.fits", nwave=1877).path
    out = tmp_path / "maps"
    run = galam("map", str(path), "--out", str(out), "--model", model,
                "--target-snr", f"{target:g}", "--binning", "powerbin")  # fmt: skip
    assert run.returncode == 0, run.stderr
    maps = read_maps(out / "g.V500.rscube.maps.fits")
    assert maps.header["BINNING"] == "powerbin" and maps.header["TARGSNR"] == target
    assert maps.header["MODEL"] == model
    bin_id, age, mh = maps.maps["BIN_ID"], maps.maps["LOG_AGE"], maps.maps["MH"]
    kept = maps.maps["SNR"] >= 3.0  # the default floor
    np.testing.assert_array_equal(bin_id >= 0, kept)  # the bins cover the kept spaxels
    np.testing.assert_array_equal(np.isfinite(age), kept)
    n_bins = int(bin_id.max()) + 1
    assert 1 < n_bins < kept.sum()
    cube = open_source(path)
    if model == "spaxel-spectra":
        from napari_galam.models.inference import predict_spectra

        means = bin_mean_inputs(cube, bin_id)
        expected = predict_spectra(means.x, snr=means.snr)
    else:
        from napari_galam.models.inference import predict_seds
        from napari_galam.pipeline.maps import sed_model_filters, seds_from_cube
        from napari_galam.sps.filters import load_filters

        seds = seds_from_cube(cube, load_filters(sed_model_filters(model)))
        mean_seds = np.array([seds.flux[:, bin_id == n].mean(axis=1) for n in range(n_bins)])
        expected = predict_seds(mean_seds)
    for number in range(n_bins):
        inside = bin_id == number
        assert np.all(age[inside] == age[inside][0]) and np.all(mh[inside] == mh[inside][0])
        assert age[inside][0] == pytest.approx(expected.log_age[number], abs=2e-4)
        assert mh[inside][0] == pytest.approx(expected.mh[number], abs=2e-4)
