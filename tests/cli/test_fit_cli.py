"""``galam fit`` on real file layouts: SDSS spectra, a simulated CALIFA-like cube, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_galam.cli import main
from napari_galam.io.writers import read_maps, read_table


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory) -> Path:
    from napari_galam.simulate.cubes import render_califa_cube
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.populations import default_library
    from napari_galam.simulate.writers import write_califa_cube

    rng = np.random.default_rng(5)
    library = default_library()
    galaxy = draw_galaxy(rng, survey="califa", library=library)
    cube = render_califa_cube(galaxy, rng=rng, library=library, shape=(12, 12), snr_at_re=5.0)
    return write_califa_cube(tmp_path_factory.mktemp("cli") / "c.V500.rscube.fits", cube)


def test_fit_spectra_and_a_cube_with_a_row_per_input(
    sdss_spectrum_file, cube_file: Path, tmp_path: Path, capsys
) -> None:
    spectrum = sdss_spectrum_file("spec-0001-55555-0001.fits", redshift=0.05, snr=30.0)
    folder = tmp_path / "a folder"
    folder.mkdir()
    out = tmp_path / "out"
    args = [str(spectrum), str(cube_file), str(folder), "--out", str(out), "--quiet",
            "--target-snr", "20", "--gas", "mask"]  # fmt: skip
    assert main(["fit", *args]) == 1  # the folder fails
    summary = read_table(out / "fit_summary.ecsv")
    assert list(summary["kind"]) == ["spectrum", "cube", "unknown"]
    assert list(summary["status"]) == ["ok", "ok", "failed"]
    assert "is a folder" in summary["reason"][2]
    assert np.isfinite(summary["log_age"][0]) and summary["n_bins"][1] > 0
    bins = read_table(summary["table"][1])
    assert len(bins) == summary["n_bins"][1] and set(bins["status"]) == {"ok"}
    maps = read_maps(summary["maps"][1])
    assert maps.maps["BIN_ID"].max() + 1 == summary["n_bins"][1]
    assert maps.celestial_wcs is not None
    assert "2 of 3 inputs fitted" in capsys.readouterr().out
    # the same command again resumes from the partitions: the same numbers
    assert main(["fit", *args]) == 1
    again = read_table(out / "fit_summary.ecsv")
    assert again["log_age"][0] == summary["log_age"][0]


def test_fit_agrees_with_galam_evaluates_ppxf_values(tmp_path: Path) -> None:
    """``--gas mask`` is the fit ``galam evaluate --real`` makes: the same numbers."""
    from napari_galam.io.spectra import read_sdss_spectrum, real_sdss_spectra
    from napari_galam.pipeline.evaluate import _ppxf_row

    path = real_sdss_spectra()["NGC4636"]
    assert main(["fit", str(path), "--out", str(tmp_path), "--gas", "mask", "--quiet"]) == 0
    row = read_table(tmp_path / "fit_summary.ecsv")[0]
    reference = _ppxf_row("NGC4636", read_sdss_spectrum(path), (0.0,))
    assert row["log_age"] == pytest.approx(reference["ppxf_log_age"], abs=1e-6)
    assert row["mh"] == pytest.approx(reference["ppxf_mh"], abs=1e-6)


def test_bad_options_are_usage_errors(tmp_path: Path, sdss_spectrum_file, capsys) -> None:
    spectrum = sdss_spectrum_file()
    assert main(["fit", str(spectrum), "--out", str(tmp_path), "--bootstrap", "-1"]) == 2
    assert "bootstrap" in capsys.readouterr().err
    assert main(["fit", str(spectrum), "--out", str(tmp_path), "--ftol", "0"]) == 2
    assert "ftol" in capsys.readouterr().err
