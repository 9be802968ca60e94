"""What a map carries for an honest gradient error: resolution, model error, bins."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from survey_files import write_califa_cube, write_manga_logcube, write_muse_cube  # noqa: E402

from napari_galam.errors import GalamError  # noqa: E402
from napari_galam.io.cubes import read_cube  # noqa: E402
from napari_galam.models.registry import (  # noqa: E402
    gradient_model_sd,
    read_model_card,
    weights_dir,
    write_card_section,
)
from napari_galam.pipeline.gradient_errors import (  # noqa: E402
    GradientErrorContext,
    gradient_error_context,
    source_resolution_pix,
)


def test_the_resolution_of_each_survey_layout_in_pixels(tmp_path: Path) -> None:
    califa = read_cube(write_califa_cube(tmp_path / "califa.fits").path)
    assert source_resolution_pix(califa) == (
        pytest.approx(2.5),
        'nominal for CALIFA: 2.5" / 1" per pixel',
    )
    muse = read_cube(write_muse_cube(tmp_path / "muse.fits").path)
    fwhm, note = source_resolution_pix(muse)
    assert fwhm == pytest.approx(0.8 / 0.2) and "MUSE" in note
    # a MaNGA cube states its reconstructed PSF: the header wins over the nominal value
    path = write_manga_logcube(tmp_path / "manga-LOGCUBE.fits").path
    fits.setval(path, "RFWHM", value=2.9, ext=0)
    fwhm, note = source_resolution_pix(read_cube(path))
    assert fwhm == pytest.approx(2.9 / 0.5) and note.startswith("header RFWHM")


def test_a_shipped_model_brings_its_calibrated_gradient_error() -> None:
    calibrated = gradient_model_sd("sed-cnn")
    assert calibrated is not None and 0 < calibrated["log_age"] < 0.2
    card = read_model_card("sed-cnn")["calibration"]["gradient"]
    # the coverage it gives was measured on cubes the calibration did not see
    assert card["calibration_cubes"]["seed"] != card["test_cubes"]["seed"]
    assert 0.55 <= card["test_cubes"]["coverage"]["log_age"]["within_68"] <= 0.8
    context = gradient_error_context(model="sed-cnn", quantity="mh")
    assert context.model_sd == calibrated["mh"] and "model card" in context.model_note
    ppxf = gradient_error_context(model=None, quantity="mh")
    assert ppxf.model_sd == 0 and "statistical only" in ppxf.model_note


def test_a_card_with_a_broken_calibration_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    for suffix in (".json", ".keras"):
        shutil.copy(weights_dir() / f"sed-cnn{suffix}", folder / f"sed-cnn{suffix}")
    section = dict(read_model_card("sed-cnn")["calibration"])
    section["gradient"] = dict(section["gradient"], log_age=-1.0)
    write_card_section("sed-cnn", "calibration", section, directory=folder)
    with pytest.raises(GalamError, match="expected errors >= 0"):
        gradient_model_sd("sed-cnn", directory=folder)
    del section["gradient"]
    write_card_section("sed-cnn", "calibration", section, directory=folder)
    assert gradient_model_sd("sed-cnn", directory=folder) is None  # uncalibrated: no model term


def test_bins_of_several_spaxels_are_elements_and_single_spaxels_join_blocks() -> None:
    bin_id = np.full((8, 8), -1)
    bin_id[:4, :4] = 0  # one bin of 16 spaxels
    bin_id[4:, 4:] = np.arange(16).reshape(4, 4) + 1  # sixteen single-spaxel bins
    context = gradient_error_context(model=None, quantity="log_age", bin_id=bin_id)
    assert context.elements is not None
    labels = context.elements_for((8, 8), 1.0)  # blocks of 2x2 pixels elsewhere
    assert np.unique(labels[:4, :4]).size == 1
    assert np.unique(labels[4:, 4:]).size == 4
    unbinned = gradient_error_context(
        model=None, quantity="log_age", bin_id=np.arange(64).reshape(8, 8)
    )
    assert unbinned.elements is None  # one spaxel per bin: not binned
    assert np.unique(GradientErrorContext().elements_for((8, 8))).size == 64


def test_the_model_gradient_error_makes_the_quoted_intervals_cover() -> None:
    """Known truth: slopes err by a statistical part plus a model part of SD 0.1, with a
    tenth of the cubes read five times worse (wide tails, as the real calibration)."""
    from napari_galam.pipeline.evaluate import calibrate_gradient_model_sd, interval_coverage

    rng = np.random.default_rng(5)
    n = 4000
    stat = rng.uniform(0.01, 0.05, n)
    model = np.where(rng.random(n) < 0.1, 0.5, 0.1) * rng.standard_normal(n)
    error = stat * rng.standard_normal(n) + model
    m = calibrate_gradient_model_sd({"mh": {"error": error, "stat": stat}})["mh"]
    cover = interval_coverage(error, np.hypot(stat, m))
    assert cover["within_68"] == pytest.approx(0.6827, abs=0.03)
    # the mean-square match lets the badly read tenth inflate every cube's error
    moments = np.sqrt(np.mean(error**2) - np.mean(stat**2))
    assert interval_coverage(error, np.hypot(stat, moments))["within_68"] > 0.8
    with pytest.raises(GalamError, match="no cube"):
        calibrate_gradient_model_sd({"mh": {"error": np.array([np.nan]), "stat": np.ones(1)}})
