"""``galam predict`` takes the QA options of ``galam qa`` (subprocesses, shipped models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from galam_cli import galam

from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    "mmlforgalam" not in set(available_models()),
    reason="the MMLforGalAM model is not shipped in this checkout",
)


def test_predict_passes_psf_fwhm_and_star_check_to_the_qa(tmp_path: Path) -> None:
    from astropy.table import Table

    from napari_galam.simulate.imaging import SDSS_PIXEL_SCALE
    from napari_galam.simulate.stars import StarTarget, render_star_cutout
    from napari_galam.simulate.writers import write_jpeg

    # An unsaturated star, no spikes: only its size tells it from a compact galaxy, and
    # the size is judged only with a known PSF (a lone cutout has no stellar locus).
    star = StarTarget(mag_r=17.0, psf_fwhm_arcsec=1.2)
    cutout = render_star_cutout(star, rng=np.random.default_rng(2))
    folder = tmp_path / "cutouts"
    folder.mkdir()
    write_jpeg(folder / "star.jpg", cutout.rgb)
    psf = f"{star.psf_fwhm_arcsec / SDSS_PIXEL_SCALE:.2f}"

    given = tmp_path / "given.ecsv"
    result = galam("predict", str(folder), "-o", str(given), "--quiet", "--psf-fwhm", psf)
    assert result.returncode == 1, result.stderr  # the one input is rejected
    row = Table.read(given)[0]
    assert row["status"] == "rejected"
    assert "point source (star)" in row["reason"] and "given" in row["reason"]

    # Other QA options into the same table: the partitions of the first run are not reused.
    mixed = galam("predict", str(folder), "-o", str(given), "--quiet", "--no-star-check")
    assert mixed.returncode != 0 and "options" in mixed.stderr

    off = tmp_path / "off.ecsv"
    result = galam(
        "predict", str(folder), "-o", str(off), "--quiet", "--psf-fwhm", psf, "--no-star-check"
    )
    row = Table.read(off)[0]
    assert "star" not in row["reason"], row["reason"]

    bad = galam("predict", str(folder), "-o", str(tmp_path / "x.ecsv"), "--psf-fwhm", "0.1")
    assert bad.returncode != 0 and "--psf-fwhm" in bad.stderr
