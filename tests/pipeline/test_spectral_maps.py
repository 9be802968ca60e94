"""Maps of IFU cubes from their spectra, streamed by blocks of rows (no TensorFlow here).

The model is a stand-in that reads the inputs (so a wrong spaxel order or a lost block
shows); the real model is exercised in ``tests/models/test_spaxel_spectra.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from survey_files import write_califa_cube, write_manga_logcube, write_muse_cube  # noqa: E402

from napari_galam.errors import GalamInputError  # noqa: E402
from napari_galam.io.sources import open_source  # noqa: E402
from napari_galam.pipeline.maps import (  # noqa: E402
    DEFAULT_CUBE_MODEL,
    iter_map_source,
    map_cube_to_file,
    map_model_for,
)
from napari_galam.pipeline.spectral_maps import cube_redshift, iter_spectra_maps  # noqa: E402
from napari_galam.progress import run_to_end  # noqa: E402


def reading_model(
    x: np.ndarray, *, snr: np.ndarray | None = None, layout: str | None = None
) -> SimpleNamespace:
    """A stand-in model: 'log age' is the mean normalised flux, '[M/H]' the covered share."""
    n = len(x)
    return SimpleNamespace(
        log_age=x[:, :, 0].mean(axis=1),
        mh=(x[:, :, 1] > 0).mean(axis=1),
        log_age_err=np.full(n, 0.1, np.float32),
        mh_err=np.full(n, 0.2, np.float32),
        ood_reason=np.where(snr < 20, 1, 0).astype(np.uint8),
    )


def test_muse_cube_is_mapped_the_same_in_any_block_size(tmp_path: Path) -> None:
    written = write_muse_cube(tmp_path / "muse.fits", ny=9, nx=7, nwave=3681)
    cube = open_source(written.path)
    whole = run_to_end(iter_spectra_maps(cube, reading_model, block_rows=9))
    blocks = run_to_end(iter_spectra_maps(cube, reading_model, block_rows=2))
    for name in ("log_age", "mh", "snr", "log_age_err", "light"):
        np.testing.assert_allclose(whole[name], blocks[name], rtol=1e-5, equal_nan=True)
    assert np.all(np.isnan(whole["log_age"][0]))  # the NaN edge row of a MUSE cube
    assert np.isfinite(whole["log_age"][1:]).all()
    assert whole["meta"]["nan_reasons"]["no data"] == 7
    assert whole["meta"]["redshift"] == 0.0 and "assumed" in whole["meta"]["redshift_origin"]
    # the brighter centre has a higher S/N than the corner
    assert whole["snr"][4, 3] > whole["snr"][1, 0]
    np.testing.assert_array_equal(whole["ood"][1:], np.where(whole["snr"][1:] < 20, 1, 0))


def test_map_source_picks_the_model_and_counts_what_is_left_out(tmp_path: Path) -> None:
    manga = open_source(write_manga_logcube(tmp_path / "manga-LOGCUBE.fits", nwave=4563).path)
    muse = open_source(write_muse_cube(tmp_path / "muse.fits", nwave=3681).path)
    assert DEFAULT_CUBE_MODEL == "spaxel-spectra"  # every IFU cube, any layout or redshift
    for cube in (muse, manga):
        assert map_model_for(cube, "auto") == map_model_for(cube, "auto", 0.1) == "spaxel-spectra"
    assert map_model_for(manga, "sed-cnn") == "sed-cnn"  # still there to reproduce the paper
    with pytest.raises(GalamInputError, match="unknown map model"):
        map_model_for(manga, "pixel-cnn")
    maps = run_to_end(
        iter_map_source(
            manga,
            None,
            predict_spectra=reading_model,
            min_snr=30.0,
            redshift=0.02,
            model="spaxel-spectra",
        )
    )
    assert maps.model == "spaxel-spectra" and maps.meta["redshift"] == 0.02
    reasons = maps.meta["nan_reasons"]
    assert reasons["low S/N"] > 0  # the faint outskirts at S/N < 30
    assert maps.n_mapped + sum(reasons.values()) == 17 * 17
    assert maps.light is not None and np.isfinite(maps.light).all()
    # Voronoi bins: one value per bin from the bin's mean spectrum, which reaches the target
    binned = run_to_end(
        iter_map_source(
            manga, None, predict_spectra=reading_model, min_snr=3.0, target_snr=20.0,
            redshift=0.02, model="spaxel-spectra",
        )
    )  # fmt: skip
    ids = binned.bin_id[binned.bin_id >= 0]
    assert 1 < np.unique(ids).size < ids.size  # faint spaxels were grouped
    for bin_number in np.unique(ids):
        values = binned.log_age[binned.bin_id == bin_number]
        assert np.all(values == values[0]) and np.isfinite(values[0])
    assert np.all(np.isnan(binned.log_age[binned.bin_id < 0]))
    assert binned.meta["target_snr"] == 20.0
    with pytest.raises(GalamInputError, match="manga-LOGCUBE.fits: cannot Voronoi-bin to S/N 500"):
        run_to_end(
            iter_map_source(
                manga, None, predict_spectra=reading_model, target_snr=500.0, model="spaxel-spectra"
            )
        )


def test_redshift_from_the_header(tmp_path: Path) -> None:
    written = write_califa_cube(tmp_path / "califa.rscube.fits", nwave=1877)
    cube = open_source(written.path)
    cube.primary_header["MED_VEL"] = 0.03 * 299792.458
    assert cube_redshift(cube, None) == pytest.approx((0.03, "header MED_VEL"))
    assert cube_redshift(cube, 0.1) == (0.1, "given")


def test_a_cube_the_model_cannot_read_names_the_file(tmp_path: Path) -> None:
    short = write_califa_cube(tmp_path / "short.rscube.fits", nwave=300)  # 3749-4347 A
    with pytest.raises(GalamInputError, match="short.rscube.fits.*3749-4347 A.*at least"):
        source = open_source(short.path)
        run_to_end(
            iter_map_source(source, None, predict_spectra=reading_model, model="spaxel-spectra")
        )
    with pytest.raises(GalamInputError, match="short.rscube.fits"):
        map_cube_to_file(
            short.path, tmp_path / "out.maps.fits", predict=None, model="spaxel-spectra"
        )
    assert not (tmp_path / "out.maps.fits").exists()


def bin_mean_inputs(cube, bin_id: np.ndarray, redshift: float | None = None):
    """The model inputs of each bin's mean spectrum, recomputed from the whole cube here.

    The mean over each wavelength's good pixels (finite, positive variance, not masked)
    and its variance (sum over the good pixels / count^2), as the maps are meant to take.
    """
    from napari_galam.core.spectral_input import spectral_inputs
    from napari_galam.pipeline.spectral_maps import _plan_for

    plan = _plan_for(cube, redshift)[0]
    flux = np.asarray(cube.data, np.float64)
    variance = np.asarray(cube.variance, np.float64)
    bad = np.zeros(flux.shape, bool) if cube.mask is None else np.asarray(cube.mask, bool)
    means, variances = [], []
    for number in range(int(bin_id.max()) + 1):
        inside = bin_id == number
        f, v = flux[:, inside], variance[:, inside]
        good = np.isfinite(f) & np.isfinite(v) & (v > 0) & ~bad[:, inside]
        count = good.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(good, f, 0.0).sum(axis=1) / count)
            variances.append(np.where(good, v, 0.0).sum(axis=1) / count**2)
    means, variances = np.array(means), np.array(variances)
    return spectral_inputs(plan, means, variances, ~np.isfinite(means))


def test_powerbin_bins_are_mapped_from_their_mean_spectrum(tmp_path: Path) -> None:
    cube = open_source(write_califa_cube(tmp_path / "g.V500.rscube.fits", nwave=1877).path)
    told: list[np.ndarray] = []
    layouts: set[str | None] = set()

    def recording(
        x: np.ndarray, *, snr: np.ndarray | None = None, layout: str | None = None
    ) -> SimpleNamespace:
        told.append(np.asarray(snr))
        layouts.add(layout)
        return reading_model(x, snr=snr)

    def binned(binning: str, model=recording):
        return run_to_end(
            iter_map_source(
                cube, None, predict_spectra=model, min_snr=3.0, target_snr=20.0,
                binning=binning, model="spaxel-spectra",
            )
        )  # fmt: skip

    maps = binned("powerbin")
    assert maps.meta["binning"] == "powerbin" and maps.meta["target_snr"] == 20.0
    kept = maps.snr >= 3.0
    np.testing.assert_array_equal(maps.bin_id >= 0, kept)  # the bins cover the kept spaxels
    n_bins = int(maps.bin_id.max()) + 1
    assert 1 < n_bins < kept.sum()  # faint spaxels were grouped
    np.testing.assert_array_equal(np.unique(maps.bin_id[kept]), np.arange(n_bins))
    means = bin_mean_inputs(cube, maps.bin_id)
    expected = reading_model(means.x, snr=means.snr)
    for number in range(n_bins):
        inside = maps.bin_id == number
        assert np.all(maps.log_age[inside] == maps.log_age[inside][0])
        assert maps.log_age[inside][0] == pytest.approx(expected.log_age[number], rel=1e-4)
        assert maps.mh[inside][0] == pytest.approx(expected.mh[number], rel=1e-4)
        assert np.all(maps.ood[inside] == expected.ood_reason[number])  # the bin's S/N
    assert told[0].shape == (n_bins,) and np.median(told[0]) >= 0.7 * 20.0
    assert layouts == {"CALIFA"}  # the model is told the instrument (its cube terms)
    # deterministic: numbered in the order of the bins' first spaxels, row by row
    first = [np.flatnonzero(maps.bin_id.ravel() == n)[0] for n in range(n_bins)]
    assert first == sorted(first)
    np.testing.assert_array_equal(binned("powerbin", reading_model).bin_id, maps.bin_id)
    voronoi = binned("voronoi", reading_model)
    assert voronoi.meta["binning"] == "voronoi"
    assert not np.array_equal(voronoi.bin_id, maps.bin_id)  # the binner was PowerBin
    with pytest.raises(GalamInputError, match="unknown binning 'hexagons'; use one of voronoi"):
        binned("hexagons")
    with pytest.raises(GalamInputError, match="unknown binning 'hexagons'"):
        map_cube_to_file(cube.path, tmp_path / "out.maps.fits", target_snr=20.0,
                         binning="hexagons", model="spaxel-spectra")  # fmt: skip
    assert not (tmp_path / "out.maps.fits").exists()
    with pytest.raises(
        GalamInputError, match=r"g\.V500\.rscube\.fits: cannot bin to S/N 500 with PowerBin"
    ):
        run_to_end(
            iter_map_source(cube, None, predict_spectra=reading_model, target_snr=500.0,
                            binning="powerbin", model="spaxel-spectra")
        )  # fmt: skip


def test_a_cube_at_a_redshift_its_instrument_was_never_trained_at_is_flagged(
    tmp_path: Path,
) -> None:
    """Every layout's spectra were trained at z <= 0.2 (the card's training_data): a MUSE
    cube at z = 0.3 is still mapped, every spaxel marked as an extrapolation, binned or not;
    a narrower range in a card narrows the flag."""
    from napari_galam.models.sed_uncertainty import OOD_REDSHIFT, describe_ood
    from napari_galam.pipeline.spectral_maps import trained_redshift_range

    assert trained_redshift_range("MUSE") == (0.0, 0.2)
    assert trained_redshift_range("CALIFA") == (0.0, 0.2)
    narrow = {"training_data": {"redshift_range": {"MUSE": [0.0, 0.1], "MaNGA": [0.0, 0.15]}}}
    assert trained_redshift_range("MUSE", narrow) == (0.0, 0.1)
    assert trained_redshift_range("generic", narrow) == (0.0, 0.15)
    assert trained_redshift_range("generic") == (0.0, 0.2)  # the widest of any layout
    assert trained_redshift_range("MUSE", {"training_data": {}}) == (0.0, float("inf"))
    muse = open_source(write_muse_cube(tmp_path / "muse.fits", ny=9, nx=7, nwave=3681).path)
    far = run_to_end(iter_spectra_maps(muse, reading_model, redshift=0.3))
    near = run_to_end(iter_spectra_maps(muse, reading_model, redshift=0.2))
    mapped = np.isfinite(far["log_age"])
    assert mapped.sum() == 8 * 7 and np.isfinite(near["log_age"]).sum() == 8 * 7  # NaN edge row
    assert np.all(far["ood"][mapped] & OOD_REDSHIFT)
    assert not np.any(near["ood"] & OOD_REDSHIFT)
    assert not np.any(far["ood"][~mapped])  # no value, no flag
    # the model's own bits stay beside it
    np.testing.assert_array_equal(far["ood"][mapped] & 1, np.where(far["snr"][mapped] < 20, 1, 0))
    assert far["meta"]["training_redshifts"] == (0.0, 0.2)
    assert "redshift outside the training range" in describe_ood(int(far["ood"][mapped][0]))
    binned = run_to_end(iter_spectra_maps(muse, reading_model, redshift=0.3, target_snr=30.0))
    assert np.all(binned["ood"][binned["bin_id"] >= 0] & OOD_REDSHIFT)
    califa = open_source(write_califa_cube(tmp_path / "califa.rscube.fits", nwave=1877).path)
    at_02 = run_to_end(iter_spectra_maps(califa, reading_model, redshift=0.2))
    assert not np.any(at_02["ood"] & OOD_REDSHIFT)  # CALIFA-like spectra were trained there
