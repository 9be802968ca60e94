"""``galam predict`` on FITS cutouts: 3-band stacks, band triples and single bands beside
JPEGs, with the shipped models (a subprocess, as the other CLI tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from galam_cli import galam

from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    "mmlforgalam" not in available_models(),
    reason="the MMLforGalAM model is not shipped in this checkout",
)


def _write_layouts(folder: Path, images: np.ndarray, rgb: np.ndarray) -> None:
    """One simulated galaxy in every layout: JPEG, 3-D stack, one HDU per band, triple."""
    from napari_galam.simulate.writers import write_jpeg

    write_jpeg(folder / "jpeg.jpg", rgb)
    header = fits.Header([("FILTER1", "i"), ("FILTER2", "r"), ("FILTER3", "g")])
    fits.PrimaryHDU(images[::-1], header=header).writeto(folder / "stack.fits")  # i, r, g
    extensions = [
        fits.ImageHDU(images[k], header=fits.Header([("FILTER", f"SDSS {band}")]), name=band)
        for k, band in enumerate("gri")
    ]
    fits.HDUList([fits.PrimaryHDU(), *extensions]).writeto(folder / "bands.fits")
    for k, band in enumerate("gri"):
        header = fits.Header([("FILTER", band), ("BUNIT", "nanomaggy")])
        fits.PrimaryHDU(images[k], header=header).writeto(folder / f"triple-{band}.fits")
    fits.PrimaryHDU(images[1], header=fits.Header([("FILTER", "r")])).writeto(
        folder / "lone.fits"
    )


def test_predict_mixes_jpegs_and_fits_cutouts(tmp_path: Path) -> None:
    from astropy.table import Table

    from napari_galam.simulate.datasets import simulate_sdss_galaxy

    rng = np.random.default_rng(11)
    galaxy = simulate_sdss_galaxy(rng, blend_probability=0.0)
    _write_layouts(tmp_path, galaxy.cutout.images, galaxy.cutout.rgb)
    out = tmp_path / "ages.ecsv"
    result = galam("predict", str(tmp_path), "-o", str(out), "--model", "mmlforgalam", "--quiet")
    assert "all input arrays must have the same shape" not in result.stderr
    table = Table.read(out)
    rows = {row["source"]: row for row in table}
    # one row per galaxy: the three band files are one galaxy, named without the band
    assert set(rows) == {"jpeg", "stack", "bands", "triple", "lone"}, rows.keys()
    assert rows["lone"]["status"] == "rejected"
    assert "needs g, r and i bands" in rows["lone"]["reason"]
    assert "band r" in rows["lone"]["reason"]
    jpeg = rows["jpeg"]
    assert jpeg["status"] == "ok", jpeg["reason"]
    for name in ("stack", "bands", "triple"):
        row = rows[name]
        assert row["status"] == "ok", (name, row["reason"])
        assert row["model"] == "mmlforgalam"
        # the FITS composite is the training picture; the JPEG only adds compression
        assert abs(row["log_age"] - jpeg["log_age"]) < 0.15, name
        assert abs(row["mh"] - jpeg["mh"]) < 0.15, name
    # the stack, its extensions and the triple are the same pixels: the same answer
    assert rows["stack"]["log_age"] == pytest.approx(rows["bands"]["log_age"], abs=1e-5)
    assert rows["stack"]["log_age"] == pytest.approx(rows["triple"]["log_age"], abs=1e-5)
    assert result.returncode == 1  # the lone band could not be predicted


def test_predict_single_band_fits_alone_says_which_bands(tmp_path: Path) -> None:
    from astropy.table import Table

    image = np.random.default_rng(2).normal(0, 0.05, (64, 64)).astype(np.float32)
    fits.PrimaryHDU(image).writeto(tmp_path / "frame.fits")
    out = tmp_path / "ages.csv"
    result = galam("predict", str(tmp_path / "frame.fits"), "-o", str(out), "--quiet")
    table = Table.read(out, format="ascii.csv")
    assert len(table) == 1
    assert "needs g, r and i bands" in table["reason"][0]
    assert result.returncode == 1
