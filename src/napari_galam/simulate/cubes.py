"""CALIFA-like IFU cubes and J-PAS-like narrow-band cubes of synthetic galaxies, with truth.

Each spaxel is the PSF-blurred mixture of the galaxy's four basis populations, so the
cube is one matrix product of light maps (4 x ny x nx) and basis spectra (4 x n_wave),
plus noise. The truth holds per-spaxel luminosity-weighted log age and [M/H] maps (of
the light in each spaxel, and intrinsic, before the PSF), the deprojected R/R_e map and
the radial gradients inside R_e fitted to those maps (the Liew-Cain et al. 2021 definition),
besides the designed gradients of each component. With ``emission=True`` the spaxels
also get nebular emission lines (:mod:`~napari_galam.simulate.cube_emission`); the truth
stays that of the stars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray
from scipy.signal import fftconvolve

from napari_galam.errors import GalamInputError
from napari_galam.simulate.cube_emission import (
    SpaxelEmission,
    add_line_emission,
    draw_spaxel_emission,
)
from napari_galam.simulate.galaxy import GalaxyModel
from napari_galam.simulate.galaxy_maps import deprojected_radius_map, label_maps, light_maps
from napari_galam.simulate.observe import band_set, gaussian_kernel, observed_basis
from napari_galam.simulate.spectral import broaden_constant_fwhm, log_lambda_library

__all__ = [
    "CALIFA_WAVE",
    "CALIFA_SHAPE",
    "JPAS_PIXEL_SCALE",
    "CubeTruth",
    "IFUCube",
    "NarrowBandCube",
    "render_califa_cube",
    "render_narrowband_cube",
    "blurred_light_maps",
    "cube_truth",
    "cube_header",
    "hexagon_mask",
    "spaxel_errors",
    "califa_sky_profile",
    "check_snr",
    "narrowband_seds",
    "narrowband_sed_snr",
    "fit_gradient",
]

#: CALIFA V500 wavelengths (air, A): 3749 + 2 A x 1877 channels.
CALIFA_WAVE: NDArray[np.float64] = 3749.0 + 2.0 * np.arange(1877)
#: CALIFA V500 cube (ny, nx) in 1" spaxels.
CALIFA_SHAPE: tuple[int, int] = (73, 78)
#: CALIFA V500 spectral resolution (FWHM, A).
CALIFA_FWHM_A: float = 6.0
#: J-PAS pixel scale (arcsec per pixel).
JPAS_PIXEL_SCALE: float = 0.456
#: Value of the ERROR extension where BADPIX = 1 (CALIFA convention: a huge error).
BAD_ERROR_VALUE: float = 1e10


@dataclass(frozen=True)
class CubeTruth:
    """Truth maps and gradients of a simulated cube (maps on the cube's spatial grid).

    Attributes
    ----------
    log_age, mh
        Luminosity-weighted log10(age / yr) and [M/H] of the light in each spaxel (after
        the PSF: what a perfect fit of the spaxel's spectrum gives); NaN without light.
    intrinsic_log_age, intrinsic_mh
        The same before the PSF.
    r_over_re
        Deprojected radius in the disc plane over the galaxy's R_e.
    gradient_log_age, gradient_mh
        Least-squares slopes (dex per R_e) of the intrinsic maps against R/R_e over the
        spaxels inside R_e.
    observed_gradient_log_age, observed_gradient_mh
        The same for the PSF-blurred maps.
    component_gradients
        Designed gradients of the bulge and disc populations (dex per R_e).
    centre_xy, theta_deg, axis_ratio, inclination_deg, re_arcsec, re_pixels
        Geometry: centre (pixels), position angle of the major axis (pixel frame, from
        +x towards +y), disc axis ratio, inclination and half-light radius.
    """

    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    intrinsic_log_age: NDArray[np.float32]
    intrinsic_mh: NDArray[np.float32]
    r_over_re: NDArray[np.float32]
    gradient_log_age: float
    gradient_mh: float
    observed_gradient_log_age: float
    observed_gradient_mh: float
    component_gradients: dict[str, float]
    centre_xy: tuple[float, float]
    theta_deg: float
    axis_ratio: float
    inclination_deg: float
    re_arcsec: float
    re_pixels: float


@dataclass(frozen=True)
class IFUCube:
    """A CALIFA-like cube: flux, error and bad-pixel cubes (n_wave, ny, nx) and the truth.

    ``flux`` and ``error`` are in 1e-16 erg/s/cm^2/A per spaxel; ``badpix`` is 1 where
    the data are bad (outside the hexagonal field of view, a few dead pixels); ``header``
    carries the celestial and spectral WCS of the primary HDU; ``emission`` holds the
    nebular lines added to the cube (None: none).
    """

    flux: NDArray[np.float32]
    error: NDArray[np.float32]
    badpix: NDArray[np.uint8]
    wave: NDArray[np.float64]
    header: fits.Header
    truth: CubeTruth
    galaxy: GalaxyModel
    snr_at_re: float
    emission: SpaxelEmission | None = None


@dataclass(frozen=True)
class NarrowBandCube:
    """A J-PAS-like narrow-band cube: one image per filter (n_filters, ny, nx) and the truth.

    ``flux`` and ``error`` are photon-weighted mean f_lambda per pixel in
    1e-17 erg/s/cm^2/A; ``filter_names``, ``centres_a`` and ``fwhm_a`` describe the filters.
    """

    flux: NDArray[np.float32]
    error: NDArray[np.float32]
    filter_names: tuple[str, ...]
    centres_a: NDArray[np.float64]
    fwhm_a: NDArray[np.float64]
    header: fits.Header
    truth: CubeTruth
    galaxy: GalaxyModel
    pixel_scale: float
    snr_at_re: float


def fit_gradient(
    r_over_re: NDArray[np.floating], values: NDArray[np.floating], *, max_radius: float = 1.0
) -> float:
    """Least-squares slope of ``values`` against R/R_e over finite spaxels with R/R_e <= max."""
    r = np.asarray(r_over_re, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    use = np.isfinite(v) & (r <= max_radius)
    if use.sum() < 3:
        return float("nan")
    slope, _ = np.polyfit(r[use], v[use], 1)
    return float(slope)


def _celestial_header(shape: tuple[int, int], pixel_scale: float, ra: float, dec: float) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    wcs.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    wcs.wcs.crval = [ra, dec]
    return wcs


def cube_header(
    shape: tuple[int, int],
    pixel_scale: float,
    ra: float,
    dec: float,
    *,
    crval3: float,
    cdelt3: float,
    ctype3: str,
    cd: bool = False,
) -> fits.Header:
    """A 3-D cube header: a TAN celestial WCS centred on the grid and a spectral axis.

    Parameters
    ----------
    shape
        (ny, nx) spaxels.
    pixel_scale
        Arcsec per spaxel.
    ra, dec
        Sky position of the grid's centre (degrees).
    crval3, cdelt3, ctype3
        The spectral axis: first wavelength (A), step (A; for ``WAVE-LOG`` the WCS step
        ``CRVAL3 * ln(10) * dex``) and type (``AWAV``, ``WAVE``, ``WAVE-LOG``).
    cd
        Write a ``CDi_j`` matrix (as MaNGA's and ESO's pipelines do) instead of ``CDELTi``.
    """
    header = _celestial_header(shape, pixel_scale, ra, dec).to_header()
    header["WCSAXES"] = 3
    # Written by hand: astropy would convert the spectral axis to metres.
    header["CTYPE3"] = ctype3
    header["CUNIT3"] = "Angstrom"
    header["CRPIX3"] = 1.0
    header["CRVAL3"] = crval3
    if not cd:
        header["CDELT3"] = cdelt3
        return header
    for axis in (1, 2):
        header[f"CD{axis}_{axis}"] = header.pop(f"CDELT{axis}")
        header.pop(f"PC{axis}_{axis}", None)
    header["CD1_2"], header["CD2_1"] = 0.0, 0.0
    header["CD3_3"] = cdelt3
    return header


def cube_truth(
    galaxy: GalaxyModel,
    maps: NDArray[np.float64],
    blurred: NDArray[np.float64],
    *,
    shape: tuple[int, int],
    pixel_scale: float,
    centre: tuple[float, float],
) -> CubeTruth:
    """The truth of a cube: label maps before and after the PSF, R/R_e, gradients, geometry.

    ``maps`` and ``blurred`` are the (4, ny, nx) light maps of
    :func:`blurred_light_maps`; ``centre`` is the galaxy's centre (x, y) in spaxels.
    """
    radius = deprojected_radius_map(galaxy, shape=shape, pixel_scale=pixel_scale, centre_xy=centre)
    log_age, mh = label_maps(galaxy, blurred)
    intrinsic_log_age, intrinsic_mh = label_maps(galaxy, maps)
    return CubeTruth(
        log_age=log_age.astype(np.float32),
        mh=mh.astype(np.float32),
        intrinsic_log_age=intrinsic_log_age.astype(np.float32),
        intrinsic_mh=intrinsic_mh.astype(np.float32),
        r_over_re=radius.astype(np.float32),
        gradient_log_age=fit_gradient(radius, intrinsic_log_age),
        gradient_mh=fit_gradient(radius, intrinsic_mh),
        observed_gradient_log_age=fit_gradient(radius, log_age),
        observed_gradient_mh=fit_gradient(radius, mh),
        component_gradients=galaxy.component_gradients(),
        centre_xy=(float(centre[0]), float(centre[1])),
        theta_deg=galaxy.theta_deg,
        axis_ratio=galaxy.disc.axis_ratio,
        inclination_deg=galaxy.inclination_deg,
        re_arcsec=galaxy.re_arcsec,
        re_pixels=galaxy.re_arcsec / pixel_scale,
    )


def blurred_light_maps(
    galaxy: GalaxyModel,
    *,
    shape: tuple[int, int],
    pixel_scale: float,
    centre: tuple[float, float],
    psf_fwhm_arcsec: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The (4, ny, nx) light maps of the basis populations, intrinsic and blurred by a
    Gaussian PSF of ``psf_fwhm_arcsec`` (> 0)."""
    if not psf_fwhm_arcsec > 0:
        raise GalamInputError(f"psf_fwhm_arcsec: expected > 0, got {psf_fwhm_arcsec}")
    maps = light_maps(galaxy, shape=shape, pixel_scale=pixel_scale, centre_xy=centre)
    kernel = gaussian_kernel(psf_fwhm_arcsec / pixel_scale)
    blurred = np.clip(fftconvolve(maps, kernel[None], mode="same", axes=(1, 2)), 0.0, None)
    return maps, blurred


def hexagon_mask(
    shape: tuple[int, int], pixel_scale: float, *, flat_to_flat: float = 64.0
) -> NDArray[np.bool_]:
    """PPak-like hexagonal field of view (flat sides top and bottom), True inside."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    x = (xs - (shape[1] - 1) / 2.0) * pixel_scale
    y = (ys - (shape[0] - 1) / 2.0) * pixel_scale
    apothem = flat_to_flat / 2.0
    inside = np.abs(y) <= apothem
    for angle in (np.radians(60.0), np.radians(-60.0)):
        inside &= np.abs(x * np.sin(angle) + y * np.cos(angle)) <= apothem
    return inside


def check_snr(snr: float, name: str) -> None:
    """Refuse a signal-to-noise ratio that is not a finite number > 0 (``name`` says which)."""
    if not (np.isfinite(snr) and snr > 0):
        raise GalamInputError(f"{name}: the signal-to-noise ratio must be > 0, got {snr}")


def califa_sky_profile(wave: NDArray[np.floating]) -> NDArray[np.float64]:
    """Relative sky noise of CALIFA V500 (1 in the red, rising below 4300 A)."""
    return 1.0 + 0.6 * np.clip((4300.0 - np.asarray(wave, dtype=np.float64)) / 550.0, 0.0, None)


def spaxel_errors(
    flux: NDArray[np.float32],
    wave: NDArray[np.float64],
    r_over_re: NDArray[np.floating],
    snr_at_re: float,
    sky_profile: NDArray[np.floating],
    *,
    continuum: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """1-sigma noise of a noiseless (n_wave, ny, nx) cube: sky (times a profile) plus source.

    The sky noise is set so that the mean spaxel on the ring R = R_e (within 0.15 R_e;
    the spaxels within 1 R_e of the innermost one if the ring holds none) has S/N
    ``snr_at_re`` per pixel in 5590-5680 A, where sky and source noise are equal; it
    scales with ``sky_profile`` (n_wave,: 1 where the instrument is most sensitive,
    more in the blue or near sky lines); the source's photon noise grows as sqrt(flux).
    ``continuum`` (default ``flux``) is the cube whose ring level sets the sky noise:
    the stellar cube when emission lines were added, so that a line redshifted into the
    window does not change the S/N of the continuum.
    """
    window = (wave >= 5590) & (wave <= 5680)
    ring = np.abs(r_over_re - 1.0) < 0.15
    if not ring.any():
        ring = r_over_re <= np.nanmin(r_over_re) + 1.0
    reference = flux if continuum is None else continuum
    level = float(np.mean(reference[window][:, ring]))
    sky_sigma = level / (snr_at_re * np.sqrt(2.0))
    profile = np.asarray(sky_profile)
    error = sky_sigma * np.sqrt(profile[:, None, None] ** 2 + np.clip(flux, 0.0, None) / level)
    return error.astype(np.float32)


def render_califa_cube(
    galaxy: GalaxyModel,
    *,
    rng: np.random.Generator,
    library: Any,
    shape: tuple[int, int] = CALIFA_SHAPE,
    psf_fwhm_arcsec: float = 2.5,
    snr_at_re: float = 20.0,
    ra: float = 180.0,
    dec: float = 30.0,
    emission: bool = False,
) -> IFUCube:
    """Render a CALIFA V500-like cube of ``galaxy`` (1" spaxels, 3749-7501 A, FWHM 6 A).

    Parameters
    ----------
    galaxy
        The model (``draw_galaxy(rng, survey="califa")`` draws suitable ones).
    rng
        Random generator for the noise and the dead pixels.
    library
        The SSP library.
    shape
        (ny, nx) spaxels; CALIFA's 73 x 78 by default.
    psf_fwhm_arcsec
        FWHM of the Gaussian PSF (CALIFA: about 2.5").
    snr_at_re
        S/N per spectral pixel near 5635 A of a spaxel at R = R_e, > 0.
    ra, dec
        Sky position of the cube centre (degrees).
    emission
        Add nebular emission lines spaxel by spaxel
        (:func:`~napari_galam.simulate.cube_emission.draw_spaxel_emission`, drawn from
        ``rng`` before the noise); the truth maps stay stellar. False leaves the cube as
        without the option, draw for draw.
    """
    check_snr(snr_at_re, "snr_at_re")
    pixel_scale = 1.0
    centre = ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    basis = observed_basis(galaxy, library=library, resolution=None, vacuum=False)
    template_fwhm = log_lambda_library(library).template_fwhm_a * (1.0 + galaxy.redshift)
    extra_fwhm = float(np.sqrt(max(CALIFA_FWHM_A**2 - template_fwhm**2, 0.0)))
    spectra = broaden_constant_fwhm(
        10.0**basis.loglam, basis.spectra * 1e16, fwhm_a=extra_fwhm, out_wave_a=CALIFA_WAVE
    )
    maps, blurred = blurred_light_maps(
        galaxy, shape=shape, pixel_scale=pixel_scale, centre=centre, psf_fwhm_arcsec=psf_fwhm_arcsec
    )
    flux = np.tensordot(spectra.astype(np.float32), blurred.astype(np.float32), axes=(0, 0))
    truth = cube_truth(galaxy, maps, blurred, shape=shape, pixel_scale=pixel_scale, centre=centre)
    stellar, lines = flux, None
    if emission:
        lines = draw_spaxel_emission(
            rng, galaxy, basis, blurred, log_age=truth.log_age, mh=truth.mh,
            r_over_re=truth.r_over_re, flux_scale=1e16, medium="air",
        )  # fmt: skip
        flux = add_line_emission(stellar, lines, CALIFA_WAVE, layout="CALIFA")
    error = spaxel_errors(
        flux, CALIFA_WAVE, truth.r_over_re, snr_at_re, califa_sky_profile(CALIFA_WAVE),
        continuum=stellar,
    )  # fmt: skip
    flux = flux + error * rng.standard_normal(flux.shape, dtype=np.float32)
    inside = hexagon_mask(shape, pixel_scale)
    badpix = np.broadcast_to(~inside, flux.shape).astype(np.uint8)
    dead = rng.random(flux.shape, dtype=np.float32) < 2e-5  # cosmic-ray residuals, dead pixels
    badpix = badpix | dead.astype(np.uint8)
    flux[badpix.astype(bool)] = 0.0
    error[badpix.astype(bool)] = BAD_ERROR_VALUE
    header = cube_header(
        shape, pixel_scale, ra, dec, crval3=float(CALIFA_WAVE[0]), cdelt3=2.0, ctype3="AWAV"
    )
    header["BUNIT"] = "1E-16 erg/s/cm^2/Angstrom"
    return IFUCube(
        flux=flux.astype(np.float32),
        error=error,
        badpix=badpix,
        wave=CALIFA_WAVE.copy(),
        header=header,
        truth=truth,
        galaxy=galaxy,
        snr_at_re=float(snr_at_re),
        emission=lines,
    )


def render_narrowband_cube(
    galaxy: GalaxyModel,
    *,
    rng: np.random.Generator,
    library: Any,
    filter_names: tuple[str, ...] | None = None,
    shape: tuple[int, int] = (96, 96),
    pixel_scale: float = JPAS_PIXEL_SCALE,
    psf_fwhm_arcsec: float = 1.0,
    snr_at_re: float = 20.0,
    ra: float = 180.0,
    dec: float = 30.0,
) -> NarrowBandCube:
    """Render a J-PAS-like narrow-band cube: one image per filter.

    Parameters
    ----------
    galaxy
        The model.
    rng
        Random generator for the noise.
    library
        The SSP library.
    filter_names
        speclite names of the filters; default the 54 J-PAS-like bands
        (:func:`napari_galam.sps.filters.jpas_filters`). Unknown names raise
        :class:`~napari_galam.errors.GalamInputError`.
    shape, pixel_scale
        Image size (ny, nx) and arcsec per pixel (J-PAS: 0.456).
    psf_fwhm_arcsec
        FWHM of the Gaussian PSF.
    snr_at_re
        S/N per pixel at R = R_e in the filter nearest 6200 A, > 0; the sky noise is
        the same in AB magnitudes in every filter.
    ra, dec
        Sky position of the image centre (degrees).
    """
    check_snr(snr_at_re, "snr_at_re")
    if filter_names is None:
        from napari_galam.sps.filters import jpas_band_names

        filter_names = jpas_band_names()
    bands = band_set(tuple(filter_names))
    centre = ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    basis = observed_basis(galaxy, library=library, resolution=None, vacuum=False)
    band_flam = basis.spectra @ bands.matrix.T * 1e17  # (4, n_filters)
    maps, blurred = blurred_light_maps(
        galaxy, shape=shape, pixel_scale=pixel_scale, centre=centre, psf_fwhm_arcsec=psf_fwhm_arcsec
    )
    flux = np.tensordot(band_flam, blurred, axes=(0, 0))
    truth = cube_truth(galaxy, maps, blurred, shape=shape, pixel_scale=pixel_scale, centre=centre)
    reference = int(np.argmin(np.abs(bands.centres_a - 6200.0)))
    ring = np.abs(truth.r_over_re - 1.0) < 0.15
    if not ring.any():
        ring = truth.r_over_re <= np.nanmin(truth.r_over_re) + 1.0
    level = float(np.mean(flux[reference][ring]))
    # Equal AB depth in every filter: the f_lambda noise scales as 1 / lambda^2.
    sky_sigma = (
        level / (snr_at_re * np.sqrt(2.0)) * (bands.centres_a[reference] / bands.centres_a) ** 2
    )
    error = np.sqrt(
        sky_sigma[:, None, None] ** 2 * (1.0 + np.clip(flux, 0.0, None) / level)
    ).astype(np.float32)
    noisy = flux + error * rng.standard_normal(flux.shape)
    header = cube_header(
        shape, pixel_scale, ra, dec, crval3=float(bands.centres_a[0]), cdelt3=100.0, ctype3="WAVE"
    )
    header["BUNIT"] = "1E-17 erg/s/cm^2/Angstrom"
    return NarrowBandCube(
        flux=noisy.astype(np.float32),
        error=error,
        filter_names=tuple(filter_names),
        centres_a=bands.centres_a.copy(),
        fwhm_a=bands.fwhm_a.copy(),
        header=header,
        truth=truth,
        galaxy=galaxy,
        pixel_scale=float(pixel_scale),
        snr_at_re=float(snr_at_re),
    )


def narrowband_sed_snr(
    wave: NDArray[np.floating],
    cube: IFUCube,
    filter_names: tuple[str, ...],
) -> NDArray[np.float32]:
    """Per-spaxel S/N of a cube's narrow-band SEDs: median over filters of flux / error.

    The same S/N as the maps pipeline's (:func:`napari_galam.core.spaxels.iter_cube_to_seds`
    with the cube's ERROR and BADPIX): errors propagated through the filter weights,
    bad pixels left out. ``(ny, nx)`` float32, NaN where no filter has a usable error.
    """
    from napari_galam.sps.filters import load_filters
    from napari_galam.sps.photometry import filter_matrix

    matrix = filter_matrix(np.asarray(wave, np.float64), load_filters(list(filter_names)))
    good = cube.badpix == 0
    norm = np.tensordot(good.astype(np.float32), matrix.T.astype(np.float32), axes=(0, 0))
    flux = np.tensordot(np.where(good, cube.flux, 0.0), matrix.T.astype(np.float32), axes=(0, 0))
    variance = np.where(good, cube.error.astype(np.float32) ** 2, 0.0)
    error = np.sqrt(np.tensordot(variance, (matrix.T**2).astype(np.float32), axes=(0, 0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(norm > 0.9, flux / error, np.nan)
        usable = np.isfinite(ratio).any(axis=-1)
        ratio[~usable] = 0.0
        snr = np.where(usable, np.nanmedian(ratio, axis=-1), np.nan)
    return snr.astype(np.float32)


def narrowband_seds(
    wave: NDArray[np.floating],
    cube_flux: NDArray[np.floating],
    *,
    filter_names: tuple[str, ...] | None = None,
) -> tuple[NDArray[np.float32], tuple[str, ...], NDArray[np.float64]]:
    """Per-spaxel narrow-band SEDs of an IFU cube (Liew-Cain et al. 2021 synthetic photometry).

    Only the filters whose whole response lies inside ``wave`` are kept (36 of the 54
    J-PAS-like bands for CALIFA V500).

    Parameters
    ----------
    wave
        Wavelengths of the cube's spectral axis (A).
    cube_flux
        (n_wave, ny, nx) flux density.
    filter_names
        Filters to try; default the 54 J-PAS-like bands.

    Returns
    -------
    seds, names, centres
        (ny, nx, n_kept) mean f_lambda in each kept filter, their names and centres (A).
    """
    from napari_galam.sps.filters import jpas_band_names, load_filters
    from napari_galam.sps.photometry import filter_matrix

    names = tuple(filter_names) if filter_names is not None else jpas_band_names()
    matrix = filter_matrix(
        np.asarray(wave, dtype=np.float64), load_filters(list(names)), outside="nan"
    )
    keep = np.all(np.isfinite(matrix), axis=1)
    if not keep.any():
        raise GalamInputError("wave: no filter lies inside the cube's wavelength range")
    cube = np.asarray(cube_flux, dtype=np.float32)
    seds = np.tensordot(cube, matrix[keep].astype(np.float32), axes=(0, 1))
    filters = load_filters([n for n, k in zip(names, keep, strict=True) if k])
    centres = np.array([f.effective_wavelength.value for f in filters])
    return seds.astype(np.float32), tuple(n for n, k in zip(names, keep, strict=True) if k), centres
