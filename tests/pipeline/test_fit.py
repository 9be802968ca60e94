"""pPXF fits as a batch job: spectra and binned cubes through the partition runner.

Real files: SDSS spectra in the DR8+ layout (tests/conftest.py) and a small simulated
CALIFA-like cube written by the simulator's writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.io.cubes import read_cube
from napari_galam.io.writers import read_maps, read_table
from napari_galam.pipeline.binning import bin_cube, bin_spectrum, cube_snr_map
from napari_galam.pipeline.distributed import run_batch
from napari_galam.pipeline.fit import (
    FIT_JOB,
    FitItem,
    FitOptions,
    cube_fwhm,
    cube_redshift,
    fit_cube,
    write_cube_outputs,
)


def test_bins_reach_the_target_and_leave_out_faint_spaxels():
    y, x = np.mgrid[0:30, 0:30]
    snr = 60.0 * np.exp(-((x - 15.0) ** 2 + (y - 15.0) ** 2) / 60.0)
    bins = bin_cube(snr, target_snr=25.0, min_snr=2.0)
    assert np.all(bins.bin_id[snr < 2.0] == -1)
    assert np.all(bins.bin_id[snr >= 2.0] >= 0)
    assert bins.n_bins == bins.bin_id.max() + 1
    # spaxels above the target stay alone; the others reach about the target together
    for y0, x0 in zip(*np.nonzero(snr >= 40.0), strict=True):
        assert len(bins.spaxels(bins.bin_id[y0, x0])) == 1
    several = [k for k in range(bins.n_bins) if len(bins.spaxels(k)) > 1]
    assert several and np.median(bins.bin_snr[several]) == pytest.approx(25.0, rel=0.3)
    # deterministic: the same map gives the same bins
    assert bins.fingerprint() == bin_cube(snr, target_snr=25.0, min_snr=2.0).fingerprint()
    with pytest.raises(GalamInputError, match="no spaxel reaches"):
        bin_cube(snr * 0.01, target_snr=25.0, min_snr=2.0)


def test_bin_spectrum_sums_good_pixels_and_their_noise():
    flux = np.ones((5, 4))
    variance = np.full((5, 4), 0.25)
    bad = np.zeros((5, 4), bool)
    bad[1, 0] = True  # one of four bad: scaled from the other three
    bad[2, :3] = True  # three of four bad: no value
    total, noise = bin_spectrum(flux, variance, bad)
    np.testing.assert_allclose(total[[0, 1, 3, 4]], 4.0)
    assert np.isnan(total[2])
    np.testing.assert_allclose(noise[0], 1.0)
    np.testing.assert_allclose(noise[1], np.sqrt(0.75) * 4 / 3)


def test_spectra_batch_rows_with_reasons_and_resume(sdss_spectrum_file, tmp_path: Path):
    good = sdss_spectrum_file("spec-good.fits", redshift=0.05, snr=30.0)
    far = sdss_spectrum_file("spec-far.fits", redshift=4.0)  # outside E-MILES at rest
    not_fits = tmp_path / "spec-broken.fits"
    not_fits.write_text("not a FITS file")
    items = [FitItem(str(p)) for p in (good, far, not_fits)]
    options = FitOptions(gas="mask")
    arguments = {"partition_size": 2, "options": options.as_dict(),
                 "fit_options": options.as_dict()}  # fmt: skip
    table, summary = run_batch(items, FIT_JOB, tmp_path / "parts", **arguments)
    assert list(table["source"]) == [str(p) for p in (good, far, not_fits)]
    assert list(table["status"]) == ["ok", "failed", "failed"]
    assert table["sigma"][0] > 0 and np.isfinite(table["log_age"][0])
    assert "library's rest-frame range" in table["reason"][1]
    assert str(not_fits) in table["reason"][2]
    assert np.isnan(table["log_age"][1]) and np.isnan(table["mh"][2])
    assert summary.n_partitions == 2
    again, summary = run_batch(items, FIT_JOB, tmp_path / "parts", **arguments)
    assert summary.n_skipped == 1 and summary.n_retried == 2  # failed rows are retried
    assert again["log_age"][0] == table["log_age"][0]


@pytest.fixture(scope="module")
def small_cube_path(tmp_path_factory) -> Path:
    """A 14x14 CALIFA-like cube whose left half keeps too few good pixels."""
    from napari_galam.simulate.cubes import render_califa_cube
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.populations import default_library
    from napari_galam.simulate.writers import write_califa_cube

    rng = np.random.default_rng(3)
    library = default_library()
    galaxy = draw_galaxy(rng, survey="califa", library=library)
    cube = render_califa_cube(galaxy, rng=rng, library=library, shape=(14, 14), snr_at_re=6.0)
    n_wave = cube.wave.size
    keep = np.zeros(n_wave, bool)
    keep[int(0.42 * n_wave) : int(0.42 * n_wave) + 60] = True  # 60 good pixels only
    cube.badpix[~keep, :, :7] = 1  # in the left half of the field
    path = tmp_path_factory.mktemp("fitcube") / "tiny.V500.rscube.fits"
    write_califa_cube(path, cube)
    return path


def test_cube_bins_are_fitted_and_mapped_with_reasons(small_cube_path: Path, tmp_path: Path):
    cube = read_cube(small_cube_path)
    assert cube_fwhm(cube) == 6.0 and cube_redshift(cube) > 0
    snr = cube_snr_map(cube)
    assert np.isfinite(snr).sum() > 50
    result = fit_cube(cube, tmp_path / "parts", target_snr=25.0, options=FitOptions(gas="mask"))
    table = result.table
    assert len(table) == result.bins.n_bins >= 3
    failed = table[table["status"] == "failed"]
    assert len(failed) >= 1 and len(failed) < len(table)
    assert all("fewer than 100 good pixels" in reason for reason in failed["reason"])
    ok = table[table["status"] == "ok"]
    assert np.all((ok["log_age"] > 8.0) & (ok["log_age"] < 10.4))
    assert np.all(np.abs(ok["velocity"]) < 100)  # MED_VEL in the header sets the redshift
    for k in failed["bin_id"]:
        assert np.all(np.isnan(result.maps.log_age[result.bins.bin_id == k]))
    assert result.maps.n_fitted == len(ok)

    table_path, maps_path = write_cube_outputs(result, cube, tmp_path)
    assert len(read_table(table_path)) == len(table)
    maps = read_maps(maps_path)
    assert {"LOG_AGE", "MH", "BIN_ID", "SIGMA"} <= set(maps.maps)
    np.testing.assert_array_equal(maps.maps["BIN_ID"], result.bins.bin_id)
    assert maps.celestial_wcs is not None and maps.celestial_wcs.has_celestial
    # resumed: a rerun reads the partitions back
    again = fit_cube(cube, tmp_path / "parts", target_snr=25.0, options=FitOptions(gas="mask"))
    np.testing.assert_array_equal(again.table["log_age"], table["log_age"])
