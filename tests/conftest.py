"""Shared fixtures: files written in the layouts the readers claim, and the process rule.

TensorFlow and a napari viewer must never share a process (Mesa's LLVM and TensorFlow's
collide and segfault). Tests that import TensorFlow are marked ``tensorflow``; a pytest
run that collects both those and viewer tests refuses to start (``make test`` runs the
two groups as separate processes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


@pytest.hookimpl(trylast=True)  # after `-m` has deselected what will not run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    uses_tf = [item for item in items if item.get_closest_marker("tensorflow")]
    uses_viewer = [
        item for item in items if "make_napari_viewer" in getattr(item, "fixturenames", ())
    ]
    if uses_tf and uses_viewer:
        raise pytest.UsageError(
            "this run would put TensorFlow and a napari viewer in one process "
            f"({uses_tf[0].nodeid} and {uses_viewer[0].nodeid}); run "
            "`pytest -m 'not tensorflow'` and `pytest -m tensorflow` separately (make test)."
        )


def write_sdss_spectrum(
    path: Path,
    *,
    redshift: float = 0.05,
    n_pix: int = 3800,
    loglam0: float = 3.5800,
    snr: float = 20.0,
    seed: int = 0,
    drop_columns: tuple[str, ...] = (),
) -> Path:
    """Write a spectrum in the SDSS DR8+ ``spec-*.fits`` layout (COADD + SPECOBJ)."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    loglam = loglam0 + 1e-4 * np.arange(n_pix)
    wave = 10**loglam
    continuum = 50.0 * (wave / 5000.0) ** 0.5
    for rest in (3933.7, 3968.5, 4861.3, 5175.4, 5892.9):  # absorption lines
        continuum *= 1 - 0.3 * np.exp(-0.5 * ((wave - rest * (1 + redshift)) / 5.0) ** 2)
    sigma = continuum / snr
    flux = continuum + rng.normal(0, sigma)
    ivar = 1.0 / sigma**2
    columns = {
        "flux": fits.Column(name="flux", format="E", array=flux.astype(np.float32)),
        "loglam": fits.Column(name="loglam", format="E", array=loglam.astype(np.float32)),
        "ivar": fits.Column(name="ivar", format="E", array=ivar.astype(np.float32)),
        "and_mask": fits.Column(name="and_mask", format="J", array=np.zeros(n_pix, np.int32)),
        "or_mask": fits.Column(name="or_mask", format="J", array=np.zeros(n_pix, np.int32)),
        "wdisp": fits.Column(name="wdisp", format="E", array=np.ones(n_pix, np.float32)),
        "sky": fits.Column(name="sky", format="E", array=np.zeros(n_pix, np.float32)),
        "model": fits.Column(name="model", format="E", array=continuum.astype(np.float32)),
    }
    coadd = fits.BinTableHDU.from_columns(
        [c for name, c in columns.items() if name not in drop_columns], name="COADD"
    )
    specobj = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="Z", format="E", array=np.array([redshift], np.float32)),
            fits.Column(name="Z_ERR", format="E", array=np.array([1e-5], np.float32)),
            fits.Column(name="ZWARNING", format="J", array=np.array([0], np.int32)),
            fits.Column(name="CLASS", format="6A", array=np.array(["GALAXY"])),
        ],
        name="SPECOBJ",
    )
    primary = fits.PrimaryHDU()
    primary.header["PLATEID"] = 1234
    primary.header["MJD"] = 56789
    primary.header["FIBERID"] = 42
    fits.HDUList([primary, coadd, specobj]).writeto(path, overwrite=True)
    return path


@pytest.fixture
def sdss_spectrum_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write an SDSS-layout spectrum under tmp_path and return its path."""

    def make(name: str = "spec-1234-56789-0042.fits", **kwargs) -> Path:
        return write_sdss_spectrum(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def fits_image_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write a 2-D FITS image with a celestial WCS (or a 3-D band stack)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    def make(name: str = "frame-r.fits", *, shape=(64, 80), bands: int = 0, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        galaxy = 100 * np.exp(-(((yy - shape[0] / 2) / 6) ** 2 + ((xx - shape[1] / 2) / 10) ** 2))
        image = (galaxy + rng.normal(0, 1, shape)).astype(np.float32)
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [150.1, 2.2]
        wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
        wcs.wcs.cdelt = [-0.396 / 3600, 0.396 / 3600]
        header = wcs.to_header()
        header["BUNIT"] = "nanomaggy"
        if bands:
            data = np.stack([image * (i + 1) for i in range(bands)])
            for i, band in enumerate("grizu"[:bands]):
                header[f"FILTER{i + 1}"] = band
        else:
            data = image
        data = data.copy()
        data.flat[0] = np.nan
        fits.PrimaryHDU(data, header=header).writeto(tmp_path / name, overwrite=True)
        return tmp_path / name

    return make
