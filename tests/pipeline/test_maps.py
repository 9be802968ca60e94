"""The cube -> SEDs -> maps pipeline, with a transparent predictor standing in for the CNN.

The predictor returns the SED's blue-to-red flux ratio as "log age" and its mean as
"[M/H]", so each map pixel can be checked against the SED it came from; the trained
model itself is tested in tests/models.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from napari_galam.core.spaxels import filters_within
from napari_galam.errors import GalamInputError
from napari_galam.io.cubes import read_cube
from napari_galam.io.narrowband import read_narrowband
from napari_galam.pipeline.maps import (
    iter_map_seds,
    map_seds,
    seds_from_cube,
    seds_from_narrowband,
)
from napari_galam.progress import run_to_end
from napari_galam.sps.filters import jpas_filters, load_filters

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
from survey_files import write_califa_cube, write_narrowband_mef  # noqa: E402


def colour_predictor(seds: np.ndarray, snr: np.ndarray | None = None) -> SimpleNamespace:
    seds = np.asarray(seds, dtype=float)
    return SimpleNamespace(log_age=seds[:, 0] / seds[:, -1], mh=seds.mean(axis=1))


@pytest.fixture
def califa_seds(tmp_path: Path):
    written = write_califa_cube(tmp_path / "G.V500.rscube.fits", ny=14, nx=12, nwave=1877)
    cube = read_cube(written.path)
    names = filters_within(cube.wave, jpas_filters())
    return seds_from_cube(cube, load_filters(names)), names


def test_each_spaxel_gets_the_prediction_of_its_own_sed(califa_seds) -> None:
    seds, names = califa_seds
    maps = map_seds(seds, colour_predictor, min_snr=3.0)
    kept = np.isfinite(maps.log_age)
    assert kept.sum() == maps.meta["n_kept"] > 10
    y, x = np.argwhere(kept)[0]
    expected = colour_predictor(seds.flux[:, y, x][None])
    assert maps.log_age[y, x] == pytest.approx(expected.log_age[0], rel=1e-5)
    assert maps.mh[y, x] == pytest.approx(expected.mh[0], rel=1e-5)
    assert np.all(maps.snr[kept] >= 3.0)  # the floor holds
    assert np.all(maps.bin_id[~kept] == -1)
    assert set(maps.as_dict()) == {"LOG_AGE", "MH", "SNR", "BIN_ID"}
    assert maps.band_names == tuple(names)


def test_the_model_is_told_each_input_s_snr(califa_seds) -> None:
    """The SED model scales its errors by S/N: spaxels and Voronoi bins pass theirs."""
    seds, _ = califa_seds
    told: list[np.ndarray] = []

    def recording(inputs: np.ndarray, snr: np.ndarray | None = None) -> SimpleNamespace:
        told.append(np.asarray(snr))
        return colour_predictor(inputs)

    maps = map_seds(seds, recording, min_snr=3.0)
    kept = np.isfinite(maps.log_age)
    np.testing.assert_array_equal(told[0], seds.snr[kept])  # row-major, as the spaxels
    binned = map_seds(seds, recording, min_snr=1.0, target_snr=60.0)
    n_bins = int(binned.bin_id.max()) + 1
    assert told[1].shape == (n_bins,) and np.median(told[1]) >= 0.8 * 60.0  # the bins' S/N


def predictor_with_errors(seds: np.ndarray, snr: np.ndarray | None = None) -> SimpleNamespace:
    """The colour predictor with errors growing with the first filter's flux, and a flag."""
    base = colour_predictor(seds)
    n = base.log_age.size
    flag = np.zeros(n, np.uint8)
    flag[::3] = 2  # "shape unlike training" on every third spaxel
    return SimpleNamespace(
        **vars(base),
        log_age_err=0.1 + 0 * base.log_age,
        mh_err=np.full(n, 0.2),
        ood=flag > 0,
        ood_reason=flag,
    )


def test_errors_and_flags_are_painted_where_the_values_are(califa_seds, tmp_path) -> None:
    from napari_galam.io.writers import read_maps, write_maps
    from napari_galam.pipeline.maps import MAP_UNITS

    seds, _ = califa_seds
    maps = map_seds(seds, predictor_with_errors, min_snr=3.0)
    kept = np.isfinite(maps.log_age)
    assert np.all(maps.log_age_err[kept] == pytest.approx(0.1))
    assert np.all(maps.mh_err[kept] == 0.2) and np.all(np.isnan(maps.mh_err[~kept]))
    assert np.all(maps.ood[~kept] == 0)
    assert np.all(maps.ood[kept] & 2 == np.where(maps.bin_id[kept] % 3 == 0, 2, 0))
    path = write_maps(tmp_path / "m.fits", maps.as_dict(), units=MAP_UNITS)
    back = read_maps(path)
    assert set(back.maps) == {"LOG_AGE", "MH", "SNR", "BIN_ID", "LOG_AGE_ERR", "MH_ERR", "OOD"}
    np.testing.assert_array_equal(back.maps["OOD"], maps.ood)
    np.testing.assert_array_equal(back.maps["MH_ERR"], maps.mh_err)
    assert str(back.units["LOG_AGE_ERR"]) == "dex"
    # binned: every spaxel of a bin carries its bin's error and flag
    binned = map_seds(seds, predictor_with_errors, min_snr=1.0, target_snr=60.0)
    for b in range(binned.bin_id.max() + 1):
        inside = binned.bin_id == b
        assert np.unique(binned.ood[inside]).size == 1
        assert np.all(binned.log_age_err[inside] == pytest.approx(0.1))


def test_voronoi_binned_maps_are_constant_within_bins(califa_seds) -> None:
    seds, _ = califa_seds
    stages = []
    maps = run_to_end(
        iter_map_seds(seds, colour_predictor, min_snr=1.0, target_snr=60.0),
        on_progress=lambda step: stages.append(step.stage),
    )
    assert "binning" in stages and "prediction" in stages
    n_bins = maps.bin_id.max() + 1
    assert 1 < n_bins < maps.meta["n_kept"]  # binning merged faint spaxels
    for b in range(n_bins):
        values = maps.log_age[maps.bin_id == b]
        assert np.allclose(values, values[0])


def test_powerbin_bins_are_mapped_from_their_mean_sed(califa_seds) -> None:
    seds, _ = califa_seds
    told: list[tuple[np.ndarray, np.ndarray]] = []

    def recording(inputs: np.ndarray, snr: np.ndarray | None = None) -> SimpleNamespace:
        told.append((np.asarray(inputs), np.asarray(snr)))
        return colour_predictor(inputs)

    options = {"min_snr": 3.0, "target_snr": 150.0, "meta": {"source": "G.V500.rscube.fits"}}
    maps = map_seds(seds, recording, binning="powerbin", **options)
    assert maps.meta["binning"] == "powerbin" and maps.meta["target_snr"] == 150.0
    kept = seds.valid & (seds.snr >= 3.0)
    np.testing.assert_array_equal(maps.bin_id >= 0, kept)  # the bins cover the kept spaxels
    n_bins = int(maps.bin_id.max()) + 1
    assert 1 < n_bins < kept.sum()
    inputs, snr = told[0]
    assert inputs.shape == (n_bins, seds.flux.shape[0]) and snr.shape == (n_bins,)
    light = np.nanmean(seds.flux, axis=0)
    for number in range(n_bins):
        inside = maps.bin_id == number
        mean_sed = seds.flux[:, inside].mean(axis=1)
        expected = colour_predictor(mean_sed[None])
        assert np.all(maps.log_age[inside] == maps.log_age[inside][0])
        assert maps.log_age[inside][0] == pytest.approx(expected.log_age[0], rel=1e-5)
        assert maps.mh[inside][0] == pytest.approx(expected.mh[0], rel=1e-5)
        # the model is told the S/N of the bin's mean SED
        noise = light[inside] / seds.snr[inside]
        mean_snr = light[inside].sum() / np.sqrt(np.sum(noise**2))
        assert snr[number] == pytest.approx(mean_snr, rel=1e-5)
    # PowerBin sums S/N^2: the bins reach the target in that sense
    reach = np.sqrt(np.bincount(maps.bin_id[kept], weights=seds.snr[kept].astype(float) ** 2))
    assert np.median(reach) >= 0.9 * 150.0
    # deterministic: numbered in the order of the bins' first spaxels, row by row
    first = [np.flatnonzero(maps.bin_id.ravel() == n)[0] for n in range(n_bins)]
    assert first == sorted(first)
    again = map_seds(seds, colour_predictor, binning="powerbin", **options)
    np.testing.assert_array_equal(again.bin_id, maps.bin_id)
    voronoi = map_seds(seds, colour_predictor, **options)  # the default binner
    assert voronoi.meta["binning"] == "voronoi"
    assert not np.array_equal(voronoi.bin_id, maps.bin_id)
    assert map_seds(seds, colour_predictor, min_snr=3.0).meta["binning"] is None
    with pytest.raises(GalamInputError, match="unknown binning 'kmeans'; use one of voronoi"):
        map_seds(seds, colour_predictor, binning="kmeans", **options)
    with pytest.raises(
        GalamInputError, match=r"G\.V500\.rscube\.fits: cannot bin to S/N 100000 with PowerBin"
    ):
        map_seds(seds, colour_predictor, binning="powerbin", **{**options, "target_snr": 1e5})


def test_spaxel_bins_edge_cases() -> None:
    """Every spaxel above the target stays alone; a line of spaxels is PowerBin's failure."""
    from napari_galam.pipeline.binning import spaxel_bins

    bright = np.full((5, 6), 30.0)
    for binning in ("voronoi", "powerbin"):
        alone = spaxel_bins(np.ones((5, 6)), bright, target_snr=8.0, min_snr=1.0, binning=binning)
        np.testing.assert_array_equal(alone.bin_id, np.arange(30).reshape(5, 6))
        np.testing.assert_allclose(alone.snr, 30.0)
    nothing = spaxel_bins(np.ones((5, 6)), bright / 100, target_snr=8.0, min_snr=1.0,
                          binning="powerbin")  # fmt: skip
    assert nothing.n_bins == 0 and np.all(nothing.bin_id == -1)
    with pytest.raises(GalamInputError, match="strip.fits: PowerBin could not bin its 20 spaxels"):
        spaxel_bins(np.ones((1, 20)), np.full((1, 20), 3.0), target_snr=8.0, min_snr=1.0,
                    binning="powerbin", what="strip.fits")  # fmt: skip


def test_narrowband_stack_is_matched_by_filter_name(tmp_path: Path) -> None:
    written = write_narrowband_mef(tmp_path / "nb.fits", n_filters=6)
    stack = read_narrowband(written.path)
    wanted = list(reversed(stack.filter_names[:4]))
    seds = seds_from_narrowband(stack, wanted)
    assert seds.flux.shape[0] == 4 and seds.band_names == tuple(wanted)
    np.testing.assert_allclose(seds.flux[0], np.asarray(stack.data[3]), rtol=1e-6)
    with pytest.raises(GalamInputError, match="nb.fits.*needs filters J9999"):
        seds_from_narrowband(stack, ["J9999", *wanted])
