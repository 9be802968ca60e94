"""Writers that put simulated data into the file layouts of the real instruments.

* :func:`write_sdss_spectrum`: ``spec-PLATE-MJD-FIBER.fits`` (HDU1 ``COADD``, HDU2
  ``SPECOBJ``, HDU3 ``SPZLINE`` (empty), plus a ``GALAM_TRUTH`` table at the end).
* :func:`write_jpeg`: an 8-bit RGB JPEG like the SkyServer ImgCutout service's.
* :func:`write_califa_cube`: CALIFA DR3 layout (primary flux cube with WCS, ``ERROR``,
  ``BADPIX``) plus truth map extensions ``TRUE_LOG_AGE``, ``TRUE_MH``, ``TRUE_R_RE``.
* :func:`write_narrowband_cube`: a 3-D cube plus a ``FILTERS`` binary table (``NAME``,
  ``WAVELENGTH``, ``FWHM``) and the same truth extensions.
* :func:`write_survey_cube`: a :class:`~napari_galam.simulate.survey_cubes.SurveyCube` in
  the CALIFA, MaNGA LOGCUBE or MUSE layout, with the same truth extensions.

A cube with emission lines also gets an ``EMLINE_EW`` extension: the rest-frame H-alpha
equivalent width per spaxel (A), with ``EW_HA_RE`` (that of the ring R = R_e) and
``GAS_SIG`` (the gas dispersion) in its header.
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
from napari_galam.simulate.cube_emission import SpaxelEmission
from napari_galam.simulate.cubes import BAD_ERROR_VALUE, CubeTruth, IFUCube, NarrowBandCube
from napari_galam.simulate.galaxy import kpc_per_arcsec
from napari_galam.simulate.spectra import FibreSpectrum
from napari_galam.simulate.survey_cubes import SurveyCube, psf_image

__all__ = [
    "sdss_spectrum_filename",
    "write_sdss_spectrum",
    "write_jpeg",
    "write_califa_cube",
    "write_narrowband_cube",
    "survey_cube_filename",
    "write_survey_cube",
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


#: The keywords of a cube header's celestial WCS (CDELT or CD-matrix form).
_CELESTIAL_KEYS = (
    "WCSAXES", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CD1_1", "CD1_2", "CD2_1", "CD2_2",
    "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CUNIT1", "CUNIT2", "CTYPE1", "CTYPE2", "CRVAL1",
    "CRVAL2", "LONPOLE", "LATPOLE", "RADESYS",
)  # fmt: skip


def _celestial_header(header: fits.Header) -> fits.Header:
    """The 2-D celestial WCS of a cube header (for maps on its spaxel grid)."""
    celestial = fits.Header()
    for key in _CELESTIAL_KEYS:
        if key in header:
            celestial[key] = header[key]
    celestial["WCSAXES"] = 2
    return celestial


def _truth_hdus(truth: CubeTruth, header: fits.Header) -> list[fits.ImageHDU]:
    celestial = _celestial_header(header)
    hdus = []
    for name, data, unit in (
        ("TRUE_LOG_AGE", truth.log_age, "dex(yr)"),
        ("TRUE_MH", truth.mh, "dex"),
        ("TRUE_R_RE", truth.r_over_re, ""),
    ):
        hdu = fits.ImageHDU(np.asarray(data, dtype=np.float32), header=celestial.copy(), name=name)
        hdu.header["BUNIT"] = unit
        hdus.append(hdu)
    _set_finite(
        hdus[0].header,
        GRAD_AGE=(truth.gradient_log_age, "true log age gradient inside R_e, dex/R_e"),
        GRAD_MH=(truth.gradient_mh, "true [M/H] gradient inside R_e, dex/R_e"),
        RE_PIX=(truth.re_pixels, "half-light semi-major radius, pixels"),
        PA_PIX=(truth.theta_deg, "major axis angle from +x towards +y, deg"),
        AXRATIO=(truth.axis_ratio, "disc axis ratio b/a"),
        INCL=(truth.inclination_deg, "disc inclination, deg"),
    )
    return hdus


def _emission_hdus(emission: SpaxelEmission | None, header: fits.Header) -> list[fits.ImageHDU]:
    """``EMLINE_EW``: the H-alpha equivalent width map of a cube's emission lines (none
    without lines); not a ``TRUE_*`` map, since the truth is of the stars."""
    if emission is None:
        return []
    hdu = fits.ImageHDU(emission.ew_halpha, header=_celestial_header(header), name="EMLINE_EW")
    hdu.header["BUNIT"] = "Angstrom"
    hdu.header["COMMENT"] = "rest-frame H-alpha equivalent width in emission, per spaxel"
    _set_finite(
        hdu.header,
        EW_HA_RE=(emission.ew_halpha_at_re, "H-alpha EW of the ring R = R_e, A"),
        GAS_SIG=(emission.sigma_kms, "gas velocity dispersion, km/s"),
    )
    return [hdu]


def _set_finite(header: fits.Header, **cards: tuple[float, str]) -> None:
    """Set ``KEY=(value, comment)`` cards, leaving out values that are not finite (FITS
    headers cannot hold NaN: a gradient of a galaxy with under 3 spaxels inside R_e)."""
    for key, (value, comment) in cards.items():
        if np.isfinite(value):
            header[key] = (float(value), comment)


def write_califa_cube(
    path: str | os.PathLike[str], cube: IFUCube, *, overwrite: bool = False
) -> Path:
    """Write a CALIFA-like cube (primary flux cube, ``ERROR``, ``BADPIX``, truth maps)."""
    path = Path(path)
    hdus = fits.HDUList(
        [
            *_califa_hdus(cube),
            *_truth_hdus(cube.truth, cube.header),
            *_emission_hdus(cube.emission, cube.header),
        ]
    )
    _write_atomically(hdus, path, overwrite)
    return path


def _califa_hdus(cube: IFUCube) -> list[fits.PrimaryHDU | fits.ImageHDU]:
    """CALIFA DR3's HDUs: the flux cube (primary, with ``MED_VEL``), ``ERROR``, ``BADPIX``."""
    primary = fits.PrimaryHDU(cube.flux, header=cube.header.copy())
    primary.header["OBJECT"] = "simulated galaxy"
    primary.header["PIPEVERS"] = f"napari-galam {__version__} simulate"
    primary.header["MED_VEL"] = (cube.galaxy.redshift * 299792.458, "systemic velocity, km/s")
    error = fits.ImageHDU(cube.error, header=cube.header.copy(), name="ERROR")
    badpix = fits.ImageHDU(cube.badpix, header=cube.header.copy(), name="BADPIX")
    return [primary, error, badpix]


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


#: MANGA_DRP3PIXMASK bits: no fibre covers the spaxel; the pixel is unfit for science.
MANGA_NOCOV = 1 << 0
MANGA_DONOTUSE = 1 << 10


def survey_cube_filename(layout: str, seed: int, index: int) -> str:
    """File name of the ``index``-th simulated cube of a seed: ``<layout>_<seed>_<index>.fits``."""
    return f"{layout.lower()}_{seed}_{index:04d}.fits"


def write_survey_cube(
    path: str | os.PathLike[str], cube: SurveyCube, *, overwrite: bool = False
) -> Path:
    """Write a simulated survey cube in its survey's file layout, plus truth extensions.

    * CALIFA: the flux cube in the primary HDU (``MED_VEL``), ``ERROR`` (1e10 where bad),
      ``BADPIX`` (1 = bad).
    * MaNGA: an empty primary HDU (``PLATEIFU``, ``RFWHM``), ``FLUX``, ``IVAR`` (0 where
      bad), ``MASK`` (MANGA_DRP3PIXMASK: NOCOV off the bundle, DONOTUSE on every bad
      pixel), ``WAVE`` (vacuum A), ``SPECRES``, ``GIMG``/``RIMG``/``IIMG`` and their PSFs.
    * MUSE: an empty primary HDU (``INSTRUME = 'MUSE'``, ``SKY_RES``), ``DATA`` and
      ``STAT`` (variance), NaN where bad, as the ESO pipeline flags pixels.

    Every layout ends with ``TRUE_LOG_AGE``, ``TRUE_MH`` and ``TRUE_R_RE``; the first
    carries the gradients, the redshift, the galaxy's total labels and its size. A cube
    with emission lines ends with ``EMLINE_EW`` (see the module doc).
    """
    builders = {"CALIFA": _califa_survey_hdus, "MaNGA": _manga_hdus, "MUSE": _muse_hdus}
    truth = _truth_hdus(cube.truth, cube.header)
    _survey_truth_cards(truth[0].header, cube)
    emission = _emission_hdus(cube.emission, cube.header)
    hdus = fits.HDUList([*builders[cube.layout](cube), *truth, *emission])
    _write_atomically(hdus, Path(path), overwrite)
    return Path(path)


def _survey_notes(header: fits.Header, cube: SurveyCube) -> fits.Header:
    """Cards on the flux HDU: what was simulated and which channels have no model."""
    ny, nx = cube.flux.shape[1:]
    header["NNOMODEL"] = (int(cube.no_model.sum()), "channels without SSP model: flagged bad")
    header["NLIBRES"] = (int(cube.library_limited.sum()), "channels at the SSP library's FWHM")
    header["COMMENT"] = (
        f"Simulated by napari-galam {__version__}: a {cube.layout} cube of a synthetic galaxy "
        f"at z = {cube.galaxy.redshift:.5f} ({ny} x {nx} spaxels of {cube.pixel_scale:g} arcsec)."
    )
    header["COMMENT"] = (
        "Channels whose rest wavelength lies outside the E-MILES library (2750-11300 A) "
        "carry no model and are flagged bad (NNOMODEL); where the library is broader than "
        "the instrument's line-spread function the spectra keep its resolution (NLIBRES)."
    )
    if cube.layout == "MUSE":
        header["COMMENT"] = (
            f'A {nx * cube.pixel_scale:g}" x {ny * cube.pixel_scale:g}" cut-out of a 1 arcmin '
            "MUSE WFM field, centred on the galaxy."
        )
    if cube.layout == "MaNGA":
        header["COMMENT"] = (
            f"A {cube.bundle_fibres}-fibre bundle; the cube covers its hexagon's bounding box "
            'plus 1" (the DRP cubes are square and a few arcsec wider).'
        )
    return header


def _survey_truth_cards(header: fits.Header, cube: SurveyCube) -> None:
    """The galaxy's redshift, total labels, size and the observation's PSF and S/N."""
    galaxy, truth = cube.galaxy, cube.truth
    light = galaxy.total_basis_light()
    header["REDSHIFT"] = (galaxy.redshift, "true redshift")
    header["FAMILY"] = (galaxy.family, "star-formation-history family")
    _set_finite(
        header,
        OGR_AGE=(truth.observed_gradient_log_age, "log age gradient of the PSF-blurred map"),
        OGR_MH=(truth.observed_gradient_mh, "[M/H] gradient of the PSF-blurred map"),
        TOT_AGE=(float(light @ galaxy.basis_log_ages), "galaxy's luminosity-weighted log age"),
        TOT_MH=(float(light @ galaxy.basis_mh), "galaxy's luminosity-weighted [M/H]"),
        RE_ARCS=(galaxy.re_arcsec, "half-light semi-major radius, arcsec"),
        RE_KPC=(galaxy.re_arcsec * float(kpc_per_arcsec(galaxy.redshift)), "same, kpc"),
        PSF_FWHM=(cube.psf_fwhm_arcsec, "Gaussian PSF FWHM, arcsec"),
        SNR_RE=(cube.snr_at_re, "S/N per pixel at R_e near 5635 A"),
        VDISP=(galaxy.velocity_dispersion_kms, "stellar velocity dispersion, km/s"),
    )


def _califa_survey_hdus(cube: SurveyCube) -> list[fits.PrimaryHDU | fits.ImageHDU]:
    header = _survey_notes(cube.header.copy(), cube)
    header["PSF_FWHM"] = (cube.psf_fwhm_arcsec, "PSF FWHM, arcsec")
    califa = IFUCube(
        flux=cube.flux,
        error=np.where(cube.bad, np.float32(BAD_ERROR_VALUE), cube.error),
        badpix=cube.bad.astype(np.uint8),
        wave=cube.wave,
        header=header,
        truth=cube.truth,
        galaxy=cube.galaxy,
        snr_at_re=cube.snr_at_re,
    )
    return _califa_hdus(califa)


def _manga_hdus(cube: SurveyCube) -> list[fits.PrimaryHDU | fits.ImageHDU]:
    primary = fits.PrimaryHDU()
    info = primary.header
    info["MANGAID"] = "0-000000"
    info["PLATEIFU"] = f"9999-{cube.bundle_fibres}01"
    info["IFUDSGN"] = f"{cube.bundle_fibres}01"
    info["TELESCOP"] = "SDSS 2.5-M (simulated)"
    info["VERSDRP3"] = f"napari-galam {__version__} simulate"
    info["OBJRA"], info["OBJDEC"] = cube.header["CRVAL1"], cube.header["CRVAL2"]
    for band in "GRI":
        info[f"{band}FWHM"] = (
            cube.psf_fwhm_arcsec,
            f"reconstructed {band.lower()} PSF FWHM, arcsec",
        )
    info["Z"] = (cube.galaxy.redshift, "true redshift (real LOGCUBEs have none)")
    header = _survey_notes(cube.header.copy(), cube)
    header["HDUCLASS"], header["HDUCLAS1"], header["HDUCLAS2"] = "SDSS", "CUBE", "DATA"
    header["ERRDATA"], header["QUALDATA"] = "IVAR", "MASK"
    with np.errstate(divide="ignore"):
        ivar = np.where(cube.bad, np.float32(0.0), 1.0 / cube.error.astype(np.float32) ** 2)
    ivar_header = cube.header.copy()
    ivar_header["BUNIT"] = "1E+34 (erg/s/cm^2/Ang/spaxel)^-2"
    ivar_header["HDUCLAS2"], ivar_header["HDUCLAS3"] = "ERROR", "INVMSE"
    mask = np.where(cube.bad, np.int32(MANGA_DONOTUSE), np.int32(0))
    mask[:, ~cube.footprint] |= MANGA_NOCOV
    mask_header = cube.header.copy()
    del mask_header["BUNIT"]
    mask_header["HDUCLAS2"], mask_header["HDUCLAS3"] = "QUALITY", "FLAG32BIT"
    hdus = [
        primary,
        fits.ImageHDU(cube.flux, header=header, name="FLUX"),
        fits.ImageHDU(ivar.astype(np.float32), header=ivar_header, name="IVAR"),
        fits.ImageHDU(mask, header=mask_header, name="MASK"),
        fits.ImageHDU(cube.wave.astype(np.float64), name="WAVE"),
        fits.ImageHDU(cube.spectra.resolving_power.astype(np.float64), name="SPECRES"),
    ]
    hdus[-2].header["BUNIT"] = "Angstrom"
    images = _celestial_header(cube.header)
    images["BUNIT"] = "nanomaggies/pixel"
    psf = psf_image(cube.flux.shape[1:], cube.psf_fwhm_arcsec / cube.pixel_scale)
    for band, image in cube.images.items():
        hdus.append(fits.ImageHDU(image, header=images.copy(), name=f"{band.upper()}IMG"))
    for band in cube.images:
        hdus.append(
            fits.ImageHDU(psf, header=_celestial_header(cube.header), name=f"{band.upper()}PSF")
        )
    return hdus


def _muse_hdus(cube: SurveyCube) -> list[fits.PrimaryHDU | fits.ImageHDU]:
    primary = fits.PrimaryHDU()
    info = primary.header
    info["INSTRUME"] = "MUSE"
    info["TELESCOP"] = "ESO-VLT-U4"
    info["OBJECT"] = "simulated galaxy"
    info["ORIGIN"] = f"napari-galam {__version__} simulate"
    info["RA"], info["DEC"] = cube.header["CRVAL1"], cube.header["CRVAL2"]
    info["SKY_RES"] = (cube.psf_fwhm_arcsec, "[arcsec] FWHM of the (Gaussian) PSF")
    info["Z"] = (cube.galaxy.redshift, "true redshift of the simulated galaxy")
    header = _survey_notes(cube.header.copy(), cube)
    header["HDUCLASS"], header["HDUCLAS1"], header["HDUCLAS2"] = "ESO", "IMAGE", "DATA"
    header["ERRDATA"] = "STAT"
    stat_header = cube.header.copy()
    stat_header["BUNIT"] = "(10**(-20)*erg/s/cm**2/Angstrom)**2"
    stat_header["HDUCLASS"], stat_header["HDUCLAS1"] = "ESO", "IMAGE"
    stat_header["HDUCLAS2"], stat_header["HDUCLAS3"], stat_header["SCIDATA"] = (
        "ERROR",
        "MSE",
        "DATA",
    )
    data = np.where(cube.bad, np.float32(np.nan), cube.flux)
    stat = np.where(cube.bad, np.float32(np.nan), cube.error.astype(np.float32) ** 2)
    return [
        primary,
        fits.ImageHDU(data, header=header, name="DATA"),
        fits.ImageHDU(stat, header=stat_header, name="STAT"),
    ]
