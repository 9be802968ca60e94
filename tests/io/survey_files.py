"""Write small files in each survey's layout, for tests of the readers.

Every function writes a real FITS file with astropy following the layout documented in
FORMATS.md (CALIFA DR3, MaNGA DRP LOGCUBE, MUSE pipeline cubes, J-PAS-like narrow-band
stacks), with a seeded toy galaxy (an exponential disc whose spectrum has a few
absorption lines), and returns the path plus the arrays written so that a test can
compare what it reads back. A ``.gz`` suffix writes a gzipped file.

Tests in ``tests/io`` import it as ``survey_files`` (pytest puts their folder on
``sys.path``); tests elsewhere add that folder first, e.g.
``sys.path.insert(0, str(Path(__file__).parents[1] / "io"))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

__all__ = [
    "WrittenCube",
    "celestial_header",
    "toy_galaxy_cube",
    "write_califa_cube",
    "write_manga_logcube",
    "write_muse_cube",
    "write_generic_cube",
    "write_sparse_muse_cube",
    "write_narrowband_mef",
    "write_narrowband_cube_with_table",
    "write_narrowband_files",
    "JPAS_LIKE_FILTERS",
]

MANGA_DONOTUSE = 1 << 10
MANGA_NOCOV = 1 << 0

#: A J-PAS-like filter set: 54 narrow bands 100 A apart from 3785 A, FWHM 145 A.
JPAS_LIKE_FILTERS = tuple(
    (f"J{int(round(3785 + 100 * i)):04d}", 3785.0 + 100.0 * i, 145.0) for i in range(54)
)


@dataclass(frozen=True)
class WrittenCube:
    """What a writer put in the file, in the file's own units and numpy order."""

    path: Path
    flux: NDArray[Any]
    wave: NDArray[np.float64]
    variance: NDArray[Any] | None = None
    bad: NDArray[np.bool_] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def celestial_header(
    ny: int, nx: int, *, scale_arcsec: float, ra: float = 150.1, dec: float = 2.2, cd: bool = False
) -> fits.Header:
    """A TAN celestial WCS centred on the grid (CDELT or CD matrix form)."""
    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CUNIT1"], header["CUNIT2"] = "deg", "deg"
    header["CRPIX1"], header["CRPIX2"] = (nx + 1) / 2.0, (ny + 1) / 2.0
    header["CRVAL1"], header["CRVAL2"] = ra, dec
    step = scale_arcsec / 3600.0
    if cd:
        header["CD1_1"], header["CD1_2"] = -step, 0.0
        header["CD2_1"], header["CD2_2"] = 0.0, step
    else:
        header["CDELT1"], header["CDELT2"] = -step, step
    return header


def toy_galaxy_cube(
    ny: int, nx: int, wave: NDArray[np.float64], *, seed: int = 0, peak: float = 1.0
) -> NDArray[np.float32]:
    """An exponential disc with a red continuum and Ca H+K, H-beta, Mg b, Na D lines."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    radius = np.hypot((yy - (ny - 1) / 2) / 0.8, xx - (nx - 1) / 2)
    light = np.exp(-radius / max(2.0, min(ny, nx) / 6.0))
    spectrum = (wave / 5000.0) ** 0.7
    for line in (3933.7, 3968.5, 4861.3, 5175.4, 5892.9):
        spectrum = spectrum * (1 - 0.4 * np.exp(-0.5 * ((wave - line) / 6.0) ** 2))
    cube = peak * spectrum[:, None, None] * light[None, :, :]
    cube = cube * (1 + 0.01 * rng.standard_normal(cube.shape))
    return cube.astype(np.float32)


def _image_hdu(data: NDArray[Any], name: str, header: fits.Header | None = None) -> fits.ImageHDU:
    return fits.ImageHDU(data=data, header=header.copy() if header is not None else None, name=name)


def _write(hdus: list[Any], path: Path, omit: tuple[str, ...]) -> None:
    keep = [
        h for h in hdus if not (isinstance(h, fits.ImageHDU | fits.BinTableHDU) and h.name in omit)
    ]
    fits.HDUList(keep).writeto(path, overwrite=True)


def write_califa_cube(
    path: str | Path,
    *,
    ny: int = 14,
    nx: int = 12,
    nwave: int = 300,
    crval3: float = 3749.0,
    cdelt3: float = 2.0,
    ctype3: str | None = None,
    bunit: str | None = "10^-16 erg/s/cm^2/A",
    n_bad: int = 20,
    seed: int = 0,
    omit: tuple[str, ...] = (),
) -> WrittenCube:
    """A CALIFA DR3 ``*.rscube.fits`` cube (real V500: 1877 planes from 3749 A by 2 A).

    Primary HDU: flux (1e-16 erg/s/cm^2/A), 1" spaxels, linear CRVAL3/CDELT3/CRPIX3
    (no CTYPE3 unless ``ctype3`` is given); extensions ``ERROR`` (1 sigma),
    ``ERRWEIGHT``, ``BADPIX`` (uint8, 1 = bad) and ``FIBCOVER`` (uint8).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    wave = crval3 + cdelt3 * np.arange(nwave)
    flux = toy_galaxy_cube(ny, nx, wave, seed=seed, peak=5.0)
    error = (0.05 + 0.02 * np.abs(flux)).astype(np.float32)
    badpix = np.zeros(flux.shape, dtype=np.uint8)
    badpix.flat[rng.choice(flux.size, size=n_bad, replace=False)] = 1
    flux[badpix == 1] = 0.0
    header = celestial_header(ny, nx, scale_arcsec=1.0)
    header["CRPIX3"], header["CRVAL3"], header["CDELT3"] = 1.0, crval3, cdelt3
    if ctype3:
        header["CTYPE3"] = ctype3
    if bunit:
        header["HIERARCH PIPE UNITS"] = bunit
        header["BUNIT"] = bunit
    header["OBJECT"] = "TOYGAL"
    header["HIERARCH PIPE VERS"] = "2.2"
    primary = fits.PrimaryHDU(data=flux, header=header)
    hdus = [
        primary,
        _image_hdu(error, "ERROR", header),
        _image_hdu(np.ones_like(error), "ERRWEIGHT", header),
        _image_hdu(badpix, "BADPIX", header),
        _image_hdu(np.ones(flux.shape, dtype=np.uint8), "FIBCOVER", header),
    ]
    _write(hdus, path, omit)
    return WrittenCube(path, flux, wave, error.astype(np.float64) ** 2, badpix == 1)


def write_manga_logcube(
    path: str | Path,
    *,
    ny: int = 17,
    nx: int = 17,
    nwave: int = 400,
    crval3: float = 3621.6,
    seed: int = 0,
    n_donotuse: int = 25,
    n_nocov_only: int = 5,
    omit: tuple[str, ...] = (),
) -> WrittenCube:
    """A MaNGA DRP ``manga-PLATE-IFU-LOGCUBE.fits`` (real: 4563 planes, 3622-10354 A).

    Extensions ``FLUX`` (1e-17 erg/s/cm^2/A/spaxel, 0.5" spaxels, ``CTYPE3 =
    'WAVE-LOG'``), ``IVAR``, ``MASK`` (MANGA_DRP3PIXMASK, int32; DONOTUSE = bit 10),
    ``WAVE`` (vacuum A, log10 step 1e-4), ``SPECRES``, ``GIMG``/``RIMG``. Some pixels have
    IVAR = 0; some have only the NOCOV bit (bit 0, which by itself is not DONOTUSE).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    wave = crval3 * 10.0 ** (1e-4 * np.arange(nwave))
    flux = toy_galaxy_cube(ny, nx, wave, seed=seed, peak=2.0)
    sigma = (0.1 + 0.05 * np.abs(flux)).astype(np.float32)
    ivar = (1.0 / sigma**2).astype(np.float32)
    mask = np.zeros(flux.shape, dtype=np.int32)
    donotuse = rng.choice(flux.size, size=n_donotuse, replace=False)
    mask.flat[donotuse] = MANGA_DONOTUSE | MANGA_NOCOV
    ivar.flat[donotuse[:5]] = 0.0
    nocov_only = rng.choice(
        np.setdiff1d(np.arange(flux.size), donotuse), n_nocov_only, replace=False
    )
    mask.flat[nocov_only] = MANGA_NOCOV
    zero_ivar = rng.choice(
        np.setdiff1d(np.arange(flux.size), np.r_[donotuse, nocov_only]), 3, replace=False
    )
    ivar.flat[zero_ivar] = 0.0

    primary = fits.PrimaryHDU()
    primary.header["MANGAID"] = "1-000001"
    primary.header["PLATEIFU"] = "9999-1901"
    primary.header["TELESCOP"] = "SDSS 2.5-M"
    cube_header = celestial_header(ny, nx, scale_arcsec=0.5, cd=True)
    cube_header["CTYPE3"] = "WAVE-LOG"
    cube_header["CUNIT3"] = "Angstrom"
    cube_header["CRPIX3"] = 1.0
    cube_header["CRVAL3"] = crval3
    cube_header["CD3_3"] = crval3 * np.log(10.0) * 1e-4
    flux_header = cube_header.copy()
    flux_header["BUNIT"] = "1E-17 erg/s/cm^2/Ang/spaxel"
    ivar_header = cube_header.copy()
    ivar_header["BUNIT"] = "1E+34 (erg/s/cm^2/Ang/spaxel)^-2"
    hdus = [
        primary,
        _image_hdu(flux, "FLUX", flux_header),
        _image_hdu(ivar, "IVAR", ivar_header),
        _image_hdu(mask, "MASK", cube_header),
        _image_hdu(wave.astype(np.float64), "WAVE"),
        _image_hdu(np.full(nwave, 2000.0), "SPECRES"),
        _image_hdu(flux.mean(axis=0), "GIMG", celestial_header(ny, nx, scale_arcsec=0.5)),
        _image_hdu(flux.mean(axis=0), "RIMG", celestial_header(ny, nx, scale_arcsec=0.5)),
    ]
    _write(hdus, path, omit)
    with np.errstate(divide="ignore"):
        variance = np.where(ivar > 0, 1.0 / ivar.astype(np.float64), np.inf)
    bad = ((mask & MANGA_DONOTUSE) != 0) | (ivar <= 0)
    return WrittenCube(path, flux, wave, variance, bad, {"mask": mask, "ivar": ivar})


def _muse_wave_header(
    ny: int, nx: int, crval3: float, cd3_3: float, wave_in_m: bool
) -> fits.Header:
    header = celestial_header(ny, nx, scale_arcsec=0.2, cd=True)
    header["CTYPE3"] = "AWAV"
    header["CRPIX3"] = 1.0
    for key in ("CD1_3", "CD2_3", "CD3_1", "CD3_2"):
        header[key] = 0.0
    if wave_in_m:
        header["CUNIT3"], header["CRVAL3"], header["CD3_3"] = "m", crval3 * 1e-10, cd3_3 * 1e-10
    else:
        header["CUNIT3"], header["CRVAL3"], header["CD3_3"] = "Angstrom", crval3, cd3_3
    return header


def write_muse_cube(
    path: str | Path,
    *,
    ny: int = 20,
    nx: int = 18,
    nwave: int = 320,
    crval3: float = 4749.76,
    cd3_3: float = 1.25,
    wave_in_m: bool = False,
    with_dq: bool = True,
    seed: int = 0,
    omit: tuple[str, ...] = (),
) -> WrittenCube:
    """A MUSE WFM cube from the ESO pipeline (real: about 300 x 300 x 3681, 4750-9350 A).

    Empty primary HDU (``INSTRUME = 'MUSE'``); ``DATA`` (1e-20 erg/s/cm^2/A, 0.2"
    spaxels, CD matrix, ``CTYPE3 = 'AWAV'``, wavelength in Angstrom or, with
    ``wave_in_m``, metres); ``STAT`` (variance); ``DQ`` (int32, non-zero = bad) if
    ``with_dq``. Edge spaxels are NaN as in real cubes.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    wave = crval3 + cd3_3 * np.arange(nwave)
    flux = toy_galaxy_cube(ny, nx, wave, seed=seed, peak=300.0)
    stat = (4.0 + 0.5 * np.abs(flux)).astype(np.float32)
    flux[:, 0, :] = np.nan
    stat[:, 0, :] = np.nan
    dq = np.zeros(flux.shape, dtype=np.int32)
    dq[:, 0, :] = 1 << 14
    dq.flat[rng.choice(flux.size, 15, replace=False)] = 1 << 3
    header = _muse_wave_header(ny, nx, crval3, cd3_3, wave_in_m)
    data_header = header.copy()
    data_header["BUNIT"] = "10**(-20)*erg/s/cm**2/Angstrom"
    stat_header = header.copy()
    stat_header["BUNIT"] = "(10**(-20)*erg/s/cm**2/Angstrom)**2"
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = "MUSE"
    primary.header["TELESCOP"] = "ESO-VLT-U4"
    hdus = [primary, _image_hdu(flux, "DATA", data_header), _image_hdu(stat, "STAT", stat_header)]
    if with_dq:
        hdus.append(_image_hdu(dq, "DQ", header))
    _write(hdus, path, omit)
    return WrittenCube(
        path, flux, wave, stat.astype(np.float64), (dq != 0) if with_dq else None, {"dq": dq}
    )


def write_generic_cube(
    path: str | Path,
    *,
    ny: int = 10,
    nx: int = 11,
    nwave: int = 150,
    ctype3: str = "WAVE",
    cunit3: str = "nm",
    crval3: float = 450.0,
    cdelt3: float = 0.25,
    with_error: bool = True,
    bunit: str = "erg/(s cm2 Angstrom)",
    seed: int = 0,
) -> WrittenCube:
    """A single 3-D cube in the primary HDU with a linear spectral WCS (here in nm).

    With ``with_error`` an ``ERR`` extension (1 sigma) follows.
    """
    path = Path(path)
    to_angstrom = {"nm": 10.0, "Angstrom": 1.0, "m": 1e10, "um": 1e4}[cunit3]
    wave = (crval3 + cdelt3 * np.arange(nwave)) * to_angstrom
    flux = toy_galaxy_cube(ny, nx, wave, seed=seed, peak=1e-15)
    header = celestial_header(ny, nx, scale_arcsec=0.3)
    header["CTYPE3"], header["CUNIT3"] = ctype3, cunit3
    header["CRPIX3"], header["CRVAL3"], header["CDELT3"] = 1.0, crval3, cdelt3
    header["BUNIT"] = bunit
    hdus: list[Any] = [fits.PrimaryHDU(data=flux, header=header)]
    err = None
    if with_error:
        err = np.full(flux.shape, 1e-17, dtype=np.float32)
        hdus.append(_image_hdu(err, "ERR", header))
    _write(hdus, path, ())
    return WrittenCube(path, flux, wave, None if err is None else err.astype(np.float64) ** 2)


def _padded_header_bytes(header: fits.Header) -> bytes:
    return header.tostring(endcard=True, padding=True).encode("ascii")


def write_sparse_muse_cube(
    path: str | Path, *, ny: int = 300, nx: int = 300, nwave: int = 3700
) -> Path:
    """A full-size MUSE-layout file (DATA + STAT, float32) written as a sparse file.

    Only the headers are written; the data areas are skipped by seeking, so the file
    takes almost no disk space or time (about 2.7 GB apparent size for the default
    300 x 300 x 3700 cube) and reads back as zeros. Delete it after use.
    """
    path = Path(path)
    primary = fits.PrimaryHDU().header
    primary["INSTRUME"] = "MUSE"
    nbytes = ny * nx * nwave * 4
    padded = -(-nbytes // 2880) * 2880
    with open(path, "wb") as fh:
        fh.write(_padded_header_bytes(primary))
        for name in ("DATA", "STAT"):
            header = fits.Header()
            header["XTENSION"] = "IMAGE"
            header["BITPIX"] = -32
            header["NAXIS"] = 3
            header["NAXIS1"], header["NAXIS2"], header["NAXIS3"] = nx, ny, nwave
            header["PCOUNT"], header["GCOUNT"] = 0, 1
            header["EXTNAME"] = name
            header.update(_muse_wave_header(ny, nx, 4749.76, 1.25, False))
            header["BUNIT"] = "10**(-20)*erg/s/cm**2/Angstrom"
            fh.write(_padded_header_bytes(header))
            fh.seek(padded, 1)
        fh.truncate(fh.tell())
    return path


def _filter_subset(n_filters: int) -> list[tuple[str, float, float]]:
    step = max(1, len(JPAS_LIKE_FILTERS) // n_filters)
    return list(JPAS_LIKE_FILTERS[::step][:n_filters])


def _narrowband_images(
    n_filters: int, ny: int, nx: int, seed: int
) -> tuple[list[tuple[str, float, float]], NDArray[np.float32]]:
    filters = _filter_subset(n_filters)
    wave = np.array([f[1] for f in filters])
    images = toy_galaxy_cube(ny, nx, wave, seed=seed, peak=10.0)
    return filters, images


def write_narrowband_mef(
    path: str | Path,
    *,
    n_filters: int = 6,
    ny: int = 16,
    nx: int = 15,
    with_variance: bool = True,
    with_wavelengths: bool = True,
    seed: int = 0,
) -> WrittenCube:
    """A J-PAS-like multi-extension FITS: one image HDU per filter (0.456"/px).

    Each image extension carries ``FILTER`` and (with ``with_wavelengths``) ``WAVELEN``
    and ``FWHM`` in Angstrom, ``BUNIT`` and the celestial WCS; with ``with_variance`` a
    ``<FILTER>_VAR`` extension follows each image.
    """
    path = Path(path)
    filters, images = _narrowband_images(n_filters, ny, nx, seed)
    variance = (0.01 + 0.001 * images).astype(np.float32)
    hdus: list[Any] = [fits.PrimaryHDU()]
    hdus[0].header["TELESCOP"] = "JST/T250"
    for (name, wavelength, fwhm), image, var in zip(filters, images, variance, strict=True):
        header = celestial_header(ny, nx, scale_arcsec=0.456)
        header["FILTER"] = name
        if with_wavelengths:
            header["WAVELEN"] = (wavelength, "central wavelength [Angstrom]")
            header["FWHM"] = (fwhm, "filter FWHM [Angstrom]")
        header["BUNIT"] = "erg/(s cm2 Angstrom)"
        hdus.append(fits.ImageHDU(image, header=header, name=name))
        if with_variance:
            hdus.append(fits.ImageHDU(var, header=header, name=f"{name}_VAR"))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return WrittenCube(
        path,
        images,
        np.array([f[1] for f in filters]),
        variance.astype(np.float64) if with_variance else None,
        extra={"names": [f[0] for f in filters], "fwhm": np.array([f[2] for f in filters])},
    )


def write_narrowband_cube_with_table(
    path: str | Path,
    *,
    n_filters: int = 8,
    ny: int = 12,
    nx: int = 13,
    with_error: bool = True,
    seed: int = 0,
) -> WrittenCube:
    """A narrow-band cube (primary HDU, one plane per filter) plus a ``FILTERS`` table.

    The table has columns ``name``, ``wavelength`` and ``fwhm`` (Angstrom); with
    ``with_error`` an ``ERROR`` cube (1 sigma) follows.
    """
    from astropy.table import Table

    path = Path(path)
    filters, images = _narrowband_images(n_filters, ny, nx, seed)
    header = celestial_header(ny, nx, scale_arcsec=0.456)
    header["BUNIT"] = "erg/(s cm2 Angstrom)"
    hdus: list[Any] = [fits.PrimaryHDU(images, header=header)]
    error = np.full(images.shape, 0.1, dtype=np.float32)
    if with_error:
        hdus.append(fits.ImageHDU(error, header=header, name="ERROR"))
    table = Table(
        {
            "name": [f[0] for f in filters],
            "wavelength": np.array([f[1] for f in filters]),
            "fwhm": np.array([f[2] for f in filters]),
        }
    )
    table["wavelength"].unit = "Angstrom"
    table["fwhm"].unit = "Angstrom"
    table_hdu = fits.table_to_hdu(table)
    table_hdu.name = "FILTERS"
    hdus.append(table_hdu)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return WrittenCube(
        path,
        images,
        np.array([f[1] for f in filters]),
        error.astype(np.float64) ** 2 if with_error else None,
        extra={"names": [f[0] for f in filters], "fwhm": np.array([f[2] for f in filters])},
    )


def write_narrowband_files(
    folder: str | Path, *, n_filters: int = 5, ny: int = 10, nx: int = 9, seed: int = 0
) -> WrittenCube:
    """One single-filter FITS image per filter in ``folder`` (``<FILTER>.fits``).

    Files are written in reverse wavelength order to check that the reader sorts them.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    filters, images = _narrowband_images(n_filters, ny, nx, seed)
    for (name, wavelength, fwhm), image in reversed(list(zip(filters, images, strict=True))):
        header = celestial_header(ny, nx, scale_arcsec=0.456)
        header["FILTER"], header["WAVELEN"], header["FWHM"] = name, wavelength, fwhm
        header["BUNIT"] = "erg/(s cm2 Angstrom)"
        fits.PrimaryHDU(image, header=header).writeto(folder / f"{name}.fits", overwrite=True)
    return WrittenCube(
        folder,
        images,
        np.array([f[1] for f in filters]),
        extra={"names": [f[0] for f in filters], "fwhm": np.array([f[2] for f in filters])},
    )
