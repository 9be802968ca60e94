"""Writers that put simulated data into the file layouts of the real instruments.

* :func:`write_sdss_spectrum`: ``spec-PLATE-MJD-FIBER.fits`` (HDU1 ``COADD``, HDU2
  ``SPECOBJ``, HDU3 ``SPZLINE`` (empty), plus a ``GALAM_TRUTH`` table at the end).
* :func:`write_jpeg`: an 8-bit RGB JPEG like the SkyServer ImgCutout service's.
* :func:`write_califa_cube`: CALIFA DR3 layout (primary flux cube with WCS, ``ERROR``,
  ``BADPIX``) plus truth map extensions ``TRUE_LOG_AGE``, ``TRUE_MH``, ``TRUE_R_RE``.
* :func:`write_narrowband_cube`: a 3-D cube plus a ``FILTERS`` binary table (``NAME``,
  ``WAVELENGTH``, ``FWHM``) and the same truth extensions.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from numpy.typing import NDArray

from napari_galam import __version__
from napari_galam.errors import GalamInputError
from napari_galam.simulate.cubes import CubeTruth, IFUCube, NarrowBandCube
from napari_galam.simulate.spectra import FibreSpectrum

__all__ = [
    "sdss_spectrum_filename",
    "write_sdss_spectrum",
    "write_jpeg",
    "write_califa_cube",
    "write_narrowband_cube",
]


def sdss_spectrum_filename(plate: int, mjd: int, fiber: int) -> str:
    """SDSS's file name of a spectrum: ``spec-PPPP-MMMMM-FFFF.fits``."""
    return f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"


def _band_snr(spectrum: FibreSpectrum) -> NDArray[np.float32]:
    wave = spectrum.wave
    snr = spectrum.flux * np.sqrt(spectrum.ivar)
    out = []
    for lo, hi in ((3000, 4000), (4000, 5500), (5500, 6900), (6900, 8400), (8400, 9300)):
        inside = (wave >= lo) & (wave < hi) & (spectrum.ivar > 0)
        out.append(float(np.median(snr[inside])) if inside.any() else 0.0)
    return np.array(out, dtype=np.float32)


def _write_atomically(hdus: fits.HDUList, path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise GalamInputError(f"{path}: the file exists; pass overwrite=True to replace it")
    temporary = path.with_name(path.name + ".part")
    hdus.writeto(temporary, overwrite=True)
    os.replace(temporary, path)


def write_sdss_spectrum(
    path: str | os.PathLike[str],
    spectrum: FibreSpectrum,
    *,
    plate: int = 9000,
    mjd: int = 58000,
    fiber: int = 1,
    ra: float = 180.0,
    dec: float = 30.0,
    overwrite: bool = False,
) -> Path:
    """Write a simulated fibre spectrum as an SDSS ``spec-*.fits`` file.

    ``path`` may be a directory, in which case the SDSS file name is used. Returns the
    path written.
    """
    path = Path(path)
    if path.is_dir():
        path = path / sdss_spectrum_filename(plate, mjd, fiber)
    hdus = fits.HDUList(
        [
            _sdss_primary_hdu(plate=plate, mjd=mjd, fiber=fiber, ra=ra, dec=dec),
            _sdss_coadd_hdu(spectrum),
            fits.BinTableHDU(
                _sdss_specobj(spectrum, plate=plate, mjd=mjd, fiber=fiber, ra=ra, dec=dec),
                name="SPECOBJ",
            ),
            fits.BinTableHDU(_empty_spzline(), name="SPZLINE"),
            fits.BinTableHDU(_truth_table(spectrum), name="GALAM_TRUTH"),
        ]
    )
    _write_atomically(hdus, path, overwrite)
    return path


def _sdss_primary_hdu(
    *, plate: int, mjd: int, fiber: int, ra: float, dec: float
) -> fits.PrimaryHDU:
    """The primary HDU of an SDSS ``spec-*.fits`` file: plate, MJD, fibre, position."""
    primary = fits.PrimaryHDU()
    header = primary.header
    header["TELESCOP"] = "SDSS 2.5-M (simulated)"
    header["PLATEID"] = plate
    header["MJD"] = mjd
    header["FIBERID"] = fiber
    header["PLUG_RA"] = ra
    header["PLUG_DEC"] = dec
    header["ORIGIN"] = f"napari-galam {__version__} simulate"
    return primary


def _sdss_coadd_hdu(spectrum: FibreSpectrum) -> fits.BinTableHDU:
    """The ``COADD`` table: flux, log-lambda, ivar, masks, wdisp, sky and model per pixel."""
    return fits.BinTableHDU(
        Table(
            {
                "flux": spectrum.flux.astype(np.float32),
                "loglam": spectrum.loglam.astype(np.float32),
                "ivar": spectrum.ivar.astype(np.float32),
                "and_mask": spectrum.and_mask.astype(np.int32),
                "or_mask": spectrum.and_mask.astype(np.int32),
                "wdisp": spectrum.wdisp.astype(np.float32),
                "sky": spectrum.sky.astype(np.float32),
                "model": spectrum.model.astype(np.float32),
            }
        ),
        name="COADD",
    )


def _sdss_specobj(
    spectrum: FibreSpectrum, *, plate: int, mjd: int, fiber: int, ra: float, dec: float
) -> Table:
    """The one-row ``SPECOBJ`` table: redshift, class, dispersion and S/N of the spectrum."""
    good = spectrum.ivar > 0
    band_snr = _band_snr(spectrum)
    return Table(
        {
            "PLATE": np.array([plate], dtype=np.int32),
            "MJD": np.array([mjd], dtype=np.int32),
            "FIBERID": np.array([fiber], dtype=np.int32),
            "CLASS": np.array(["GALAXY"]),
            "SUBCLASS": np.array([""]),
            "Z": np.array([spectrum.redshift], dtype=np.float32),
            "Z_ERR": np.array([3e-5 * (10.0 / spectrum.snr)], dtype=np.float32),
            "ZWARNING": np.array([0], dtype=np.int32),
            "PLUG_RA": np.array([ra]),
            "PLUG_DEC": np.array([dec]),
            "VDISP": np.array([spectrum.velocity_dispersion_kms], dtype=np.float32),
            "VDISP_ERR": np.array([0.0], dtype=np.float32),
            "SN_MEDIAN": band_snr[None, :],
            "SN_MEDIAN_ALL": np.array(
                [np.median(spectrum.flux[good] * np.sqrt(spectrum.ivar[good]))], dtype=np.float32
            ),
            "WAVEMIN": np.array([spectrum.wave[0]], dtype=np.float32),
            "WAVEMAX": np.array([spectrum.wave[-1]], dtype=np.float32),
        }
    )


def _empty_spzline() -> Table:
    """An ``SPZLINE`` table with SDSS's columns and no rows (no line fits)."""
    return Table(
        {
            "PLATE": np.zeros(0, np.int32),
            "MJD": np.zeros(0, np.int32),
            "FIBERID": np.zeros(0, np.int32),
            "LINENAME": np.zeros(0, "U13"),
            "LINEWAVE": np.zeros(0),
            "LINEZ": np.zeros(0, np.float32),
            "LINEAREA": np.zeros(0, np.float32),
            "LINEAREA_ERR": np.zeros(0, np.float32),
        }
    )


def _truth_table(spectrum: FibreSpectrum) -> Table:
    """The ``GALAM_TRUTH`` table: the simulator's labels of the fibre light."""
    return Table(
        {
            "LOG_AGE": [spectrum.log_age],
            "MH": [spectrum.mh],
            "Z": [spectrum.redshift],
            "SNR": [spectrum.snr],
            "VDISP": [spectrum.velocity_dispersion_kms],
        },
        meta={"COMMENT": "luminosity-weighted (rest 5070-5950 A) labels of the fibre light"},
    )


def write_jpeg(path: str | os.PathLike[str], rgb: NDArray[np.uint8], *, quality: int = 90) -> Path:
    """Write an (ny, nx, 3) uint8 RGB array as a JPEG (Pillow)."""
    from PIL import Image

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise GalamInputError(
            f"rgb: expected an (ny, nx, 3) uint8 array, got {rgb.shape} {rgb.dtype}"
        )
    path = Path(path)
    Image.fromarray(rgb, mode="RGB").save(path, format="JPEG", quality=quality)
    return path


def _truth_hdus(truth: CubeTruth, header: fits.Header) -> list[fits.ImageHDU]:
    celestial = fits.Header()
    for key in (
        "WCSAXES",
        "CRPIX1",
        "CRPIX2",
        "CDELT1",
        "CDELT2",
        "CUNIT1",
        "CUNIT2",
        "CTYPE1",
        "CTYPE2",
        "CRVAL1",
        "CRVAL2",
        "LONPOLE",
        "LATPOLE",
        "RADESYS",
    ):
        if key in header:
            celestial[key] = header[key]
    celestial["WCSAXES"] = 2
    hdus = []
    for name, data, unit in (
        ("TRUE_LOG_AGE", truth.log_age, "dex(yr)"),
        ("TRUE_MH", truth.mh, "dex"),
        ("TRUE_R_RE", truth.r_over_re, ""),
    ):
        hdu = fits.ImageHDU(np.asarray(data, dtype=np.float32), header=celestial.copy(), name=name)
        hdu.header["BUNIT"] = unit
        hdus.append(hdu)
    info = hdus[0].header
    info["GRAD_AGE"] = (truth.gradient_log_age, "true log age gradient inside R_e, dex/R_e")
    info["GRAD_MH"] = (truth.gradient_mh, "true [M/H] gradient inside R_e, dex/R_e")
    info["RE_PIX"] = (truth.re_pixels, "half-light semi-major radius, pixels")
    info["PA_PIX"] = (truth.theta_deg, "major axis angle from +x towards +y, deg")
    info["AXRATIO"] = (truth.axis_ratio, "disc axis ratio b/a")
    info["INCL"] = (truth.inclination_deg, "disc inclination, deg")
    return hdus


def write_califa_cube(
    path: str | os.PathLike[str], cube: IFUCube, *, overwrite: bool = False
) -> Path:
    """Write a CALIFA-like cube (primary flux cube, ``ERROR``, ``BADPIX``, truth maps)."""
    path = Path(path)
    primary = fits.PrimaryHDU(cube.flux, header=cube.header.copy())
    primary.header["OBJECT"] = "simulated galaxy"
    primary.header["PIPEVERS"] = f"napari-galam {__version__} simulate"
    primary.header["MED_VEL"] = (cube.galaxy.redshift * 299792.458, "systemic velocity, km/s")
    error = fits.ImageHDU(cube.error, header=cube.header.copy(), name="ERROR")
    badpix = fits.ImageHDU(cube.badpix, header=cube.header.copy(), name="BADPIX")
    hdus = fits.HDUList([primary, error, badpix, *_truth_hdus(cube.truth, cube.header)])
    _write_atomically(hdus, path, overwrite)
    return path


def write_narrowband_cube(
    path: str | os.PathLike[str], cube: NarrowBandCube, *, overwrite: bool = False
) -> Path:
    """Write a narrow-band cube (primary (n_filters, ny, nx), ``ERROR``, ``FILTERS``, truth)."""
    path = Path(path)
    primary = fits.PrimaryHDU(cube.flux, header=cube.header.copy())
    primary.header["OBJECT"] = "simulated galaxy"
    primary.header["ORIGIN"] = f"napari-galam {__version__} simulate"
    primary.header["PIXSCALE"] = (cube.pixel_scale, "arcsec per pixel")
    error = fits.ImageHDU(cube.error, header=cube.header.copy(), name="ERROR")
    filters = Table(
        {
            "NAME": np.array(cube.filter_names),
            "WAVELENGTH": cube.centres_a.astype(np.float64),
            "FWHM": cube.fwhm_a.astype(np.float64),
        }
    )
    filters["WAVELENGTH"].unit = "Angstrom"
    filters["FWHM"].unit = "Angstrom"
    hdus = fits.HDUList(
        [
            primary,
            error,
            fits.BinTableHDU(filters, name="FILTERS"),
            *_truth_hdus(cube.truth, cube.header),
        ]
    )
    _write_atomically(hdus, path, overwrite)
    return path
