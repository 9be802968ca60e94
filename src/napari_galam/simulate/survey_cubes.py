"""CALIFA, MaNGA and MUSE cubes of a synthetic galaxy at any redshift, with truth.

:func:`render_survey_cube` observes a :class:`~napari_galam.simulate.galaxy.GalaxyModel`
through one survey layout of :data:`SURVEY_LAYOUTS`:

* ``califa``: CALIFA V500, 1" spaxels, 3749-7501 A in 2 A steps (air), FWHM 6 A, flux in
  1e-16 erg/s/cm^2/A, the PPak hexagon (64" flat to flat) on CALIFA's 73 x 78 grid.
* ``manga``: a MaNGA DRP LOGCUBE, 0.5" spaxels, 4563 vacuum wavelengths from 3621.6 A in
  steps of 1e-4 dex, R ~ 1400-2600, 1e-17 erg/s/cm^2/A/spaxel, the hexagonal footprint of
  one IFU bundle (19 to 127 fibres, 12.5-32.5" across) chosen as MaNGA's Primary sample
  chose them (the smallest that reaches 1.5 R_e), on the bundle's bounding box plus 1"
  (the DRP's cubes are square and a few arcsec wider).
* ``muse``: MUSE WFM, 0.2" spaxels, 4749.76 A + 1.25 A x 3681 (air), R ~ 1770-3590,
  1e-20 erg/s/cm^2/A, a 56 x 56 spaxel (11.2") cut-out of the 1' field centred on the
  galaxy.

The spectra: the galaxy's four basis spectra
(:func:`~napari_galam.simulate.observe.observed_basis`: dust, velocity dispersion,
redshift, normalised to its r magnitude) go through the layout's line-spread function
(:func:`napari_galam.sps.resolution.instrument_sigma_kms`, less the templates' own width,
which the library gives per wavelength) and onto the layout's real wavelength grid
(:data:`~napari_galam.simulate.spaxel_spectra.LAYOUT_GRIDS`) in one sparse operator
(:func:`napari_galam.sps.resolution.gaussian_operator`). Observed pixels whose rest
wavelength lies outside the SSP library (E-MILES, 2750-11300 A as shipped) have no model
and are flagged bad (:attr:`SurveyCube.no_model`) instead of being given flux; where the
templates are broader than the instrument (E-MILES is 5 A FWHM below 3540 A rest, and
2.51 A x (1 + z) exceeds MUSE's blue resolution above z ~ 0.07) the spectra keep the
templates' resolution (:attr:`SurveyCube.library_limited`).

The spatial part is :func:`~napari_galam.simulate.cubes.render_califa_cube`'s: the same
light maps, PSF, truth and noise model (:func:`~napari_galam.simulate.cubes.blurred_light_maps`,
:func:`~napari_galam.simulate.cubes.cube_truth`, :func:`~napari_galam.simulate.cubes.spaxel_errors`),
with each survey's own sky-noise profile. :func:`galaxy_at_redshift` moves a galaxy to
another redshift at fixed physical size and luminosity, so it shrinks on the sky. With
``emission=True`` the spaxels get nebular emission lines
(:mod:`~napari_galam.simulate.cube_emission`) through the layout's line-spread function,
in its medium.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.simulate.cube_emission import (
    SpaxelEmission,
    add_line_emission,
    draw_spaxel_emission,
)
from napari_galam.simulate.cubes import (
    CALIFA_SHAPE,
    CubeTruth,
    blurred_light_maps,
    califa_sky_profile,
    check_snr,
    cube_header,
    cube_truth,
    hexagon_mask,
    spaxel_errors,
)
from napari_galam.simulate.galaxy import GalaxyModel, distance_modulus, kpc_per_arcsec
from napari_galam.simulate.observe import ObservedBasis, band_set, observed_basis
from napari_galam.simulate.spaxel_spectra import layout_wavelengths
from napari_galam.sps.resolution import (
    SPEED_OF_LIGHT_KMS,
    air_wavelength,
    gaussian_operator,
    instrument_sigma_kms,
    kms_to_dex,
)

__all__ = [
    "SurveyLayout",
    "SURVEY_LAYOUTS",
    "MANGA_BUNDLES",
    "MANGA_MAX_FIBRES",
    "LayoutSpectra",
    "SurveyCube",
    "survey_layout",
    "galaxy_at_redshift",
    "manga_bundle",
    "manga_shape",
    "layout_spectra",
    "psf_image",
    "check_shape",
    "render_survey_cube",
]

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: Bright night-sky emission lines (air, A) near which the sky noise rises.
_NIGHT_SKY_LINES = (5577.34, 5889.95, 5895.92, 6300.30, 6363.78, 6863.96, 7340.89,
                    7913.71, 8344.60, 8399.17, 8430.17, 8827.10, 8885.85)  # fmt: skip
#: Share of a pixel's line-spread kernel that must fall where the library has spectra.
_MIN_MODEL_SHARE = 0.99
#: Chance of a dead pixel (cosmic-ray residual, bad detector pixel) in each cube element.
_DEAD_PIXEL_RATE = 2e-5


@dataclass(frozen=True)
class SurveyLayout:
    """What a survey's cubes are: grid, units, sizes and the usual PSF and redshifts.

    Attributes
    ----------
    name
        The layout's name in :data:`~napari_galam.simulate.spaxel_spectra.LAYOUT_GRIDS`,
        :func:`~napari_galam.sps.resolution.instrument_sigma_kms` and the readers
        (``CALIFA``, ``MaNGA``, ``MUSE``).
    pixel_scale
        Arcsec per spaxel.
    shape
        Default (ny, nx); ``None`` for MaNGA, whose grid follows the bundle.
    flux_scale
        File value per erg/s/cm^2/A (1e16 for 1e-16 erg/s/cm^2/A units).
    bunit
        The ``BUNIT`` the survey's pipeline writes.
    psf_range, redshift_range
        Ranges the truth sets draw the PSF FWHM (arcsec) and redshift from.
    """

    name: str
    pixel_scale: float
    shape: tuple[int, int] | None
    flux_scale: float
    bunit: str
    psf_range: tuple[float, float]
    redshift_range: tuple[float, float]


#: The three survey layouts, by their lower-case names.
SURVEY_LAYOUTS: dict[str, SurveyLayout] = {
    "califa": SurveyLayout(
        "CALIFA", 1.0, CALIFA_SHAPE, 1e16, "1E-16 erg/s/cm^2/Angstrom", (2.2, 2.8), (0.005, 0.03)
    ),
    "manga": SurveyLayout(
        "MaNGA", 0.5, None, 1e17, "1E-17 erg/s/cm^2/Ang/spaxel", (2.3, 2.8), (0.01, 0.15)
    ),
    "muse": SurveyLayout(
        "MUSE", 0.2, (56, 56), 1e20, "10**(-20)*erg/s/cm**2/Angstrom", (0.6, 1.0), (0.02, 0.2)
    ),
}
#: MaNGA's IFU bundles: fibres -> hexagon diameter (arcsec, corner to corner).
MANGA_BUNDLES: dict[int, float] = {19: 12.5, 37: 17.5, 61: 22.5, 91: 27.5, 127: 32.5}
#: Largest bundle drawn by default: a 61-fibre cube is about 115 MB, a 127-fibre one 230 MB.
MANGA_MAX_FIBRES: int = 61


def survey_layout(layout: str) -> SurveyLayout:
    """The :class:`SurveyLayout` of ``layout`` (``califa``, ``manga`` or ``muse``, any case)."""
    spec = SURVEY_LAYOUTS.get(str(layout).lower())
    if spec is None:
        raise GalamInputError(
            f"layout: expected one of {', '.join(SURVEY_LAYOUTS)}, got {layout!r}"
        )
    return spec


@dataclass(frozen=True)
class LayoutSpectra:
    """Basis spectra of a galaxy through a layout's line-spread function and wavelengths.

    ``spectra`` (4, n_wave) in erg/s/cm^2/A per unit share of band light; ``no_model``
    (n_wave,) where the library does not reach (left at 0); ``library_limited`` where the
    templates are broader than the instrument's resolution.
    """

    wave: NDArray[np.float64]
    medium: str
    spectra: NDArray[np.float64]
    no_model: NDArray[np.bool_]
    library_limited: NDArray[np.bool_]
    resolving_power: NDArray[np.float64]


@dataclass(frozen=True)
class SurveyCube:
    """A simulated cube in a survey's units, before its file layout is applied.

    Attributes
    ----------
    layout
        ``CALIFA``, ``MaNGA`` or ``MUSE``.
    flux, error
        (n_wave, ny, nx) float32 in the layout's flux unit: noisy flux (0 where ``bad``)
        and its 1-sigma error.
    bad
        (n_wave, ny, nx): outside the footprint, no model, or a dead pixel.
    footprint
        (ny, nx): spaxels inside the instrument's field (the PPak or bundle hexagon).
    wave, medium
        The layout's wavelengths (A) and their medium (``air`` or ``vacuum``).
    spectra
        The layout's :class:`LayoutSpectra` of the galaxy (before the flux unit).
    header
        Celestial and spectral WCS of the cube and ``BUNIT``.
    truth, galaxy
        Truth maps and gradients, and the model at its redshift.
    pixel_scale, psf_fwhm_arcsec, snr_at_re
        Arcsec per spaxel, PSF FWHM and the S/N per pixel at R_e near 5635 A.
    bundle_fibres
        MaNGA's bundle size (0 for the other layouts).
    images
        MaNGA's reconstructed g, r, i images (nanomaggies per spaxel, noiseless);
        empty for the other layouts.
    emission
        The nebular lines added to the cube (None: none).
    """

    layout: str
    flux: NDArray[np.float32]
    error: NDArray[np.float32]
    bad: NDArray[np.bool_]
    footprint: NDArray[np.bool_]
    wave: NDArray[np.float64]
    medium: str
    spectra: LayoutSpectra
    header: fits.Header
    truth: CubeTruth
    galaxy: GalaxyModel
    pixel_scale: float
    psf_fwhm_arcsec: float
    snr_at_re: float
    bundle_fibres: int = 0
    images: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    emission: SpaxelEmission | None = None

    @property
    def no_model(self) -> NDArray[np.bool_]:
        """(n_wave,): channels whose rest wavelength the SSP library does not reach."""
        return self.spectra.no_model

    @property
    def library_limited(self) -> NDArray[np.bool_]:
        """(n_wave,): channels left at the templates' resolution, coarser than the LSF."""
        return self.spectra.library_limited


def galaxy_at_redshift(galaxy: GalaxyModel, redshift: float) -> GalaxyModel:
    """The same galaxy at another redshift: same physical sizes and luminosity.

    The effective radii scale with the angular scale (kpc per arcsec, Planck 2018) and the
    r magnitude with the distance modulus (no K correction: the observed r-band flux of
    the redshifted spectra is what the magnitude sets). Everything else is kept.
    """
    z = float(redshift)
    if not (np.isfinite(z) and 0.0 < z <= 1.0):
        raise GalamInputError(f"redshift: expected 0 < z <= 1, got {redshift!r}")
    scale = float(kpc_per_arcsec(galaxy.redshift) / kpc_per_arcsec(z))
    dimming = float(distance_modulus(z) - distance_modulus(galaxy.redshift))
    return dataclasses.replace(
        galaxy,
        redshift=z,
        mag_r=galaxy.mag_r + dimming,
        bulge=dataclasses.replace(galaxy.bulge, re_arcsec=galaxy.bulge.re_arcsec * scale),
        disc=dataclasses.replace(galaxy.disc, re_arcsec=galaxy.disc.re_arcsec * scale),
    )


def manga_bundle(re_arcsec: float, *, max_fibres: int = MANGA_MAX_FIBRES) -> int:
    """MaNGA's bundle for a galaxy: the smallest whose hexagon reaches 1.5 R_e (Primary
    sample), at most ``max_fibres``."""
    allowed = [fibres for fibres in MANGA_BUNDLES if fibres <= max_fibres]
    if not allowed:
        raise GalamInputError(
            f"max_fibres: expected at least 19 (bundles: {', '.join(map(str, MANGA_BUNDLES))}), "
            f"got {max_fibres}"
        )
    for fibres in allowed:
        if MANGA_BUNDLES[fibres] / 2.0 >= 1.5 * re_arcsec:
            return fibres
    return allowed[-1]


def manga_shape(fibres: int) -> tuple[int, int]:
    """(ny, nx) of a MaNGA cube of a bundle: the hexagon's bounding box plus 1" each side."""
    if fibres not in MANGA_BUNDLES:
        raise GalamInputError(
            f"bundle_fibres: expected one of {', '.join(map(str, MANGA_BUNDLES))}, got {fibres!r}"
        )
    diameter = MANGA_BUNDLES[fibres]
    width = diameter + 2.0
    height = diameter * np.sqrt(3.0) / 2.0 + 2.0
    return int(np.ceil(height / 0.5)), int(np.ceil(width / 0.5))


def _template_sigma_kms(library: Any, rest_air: NDArray[np.float64]) -> NDArray[np.float64]:
    """The library's own Gaussian sigma (km/s) at rest wavelengths (its FWHM per pixel)."""
    wave = np.asarray(library.wave, dtype=np.float64)
    fwhm = np.broadcast_to(np.asarray(library.fwhm, dtype=np.float64), wave.shape)
    return SPEED_OF_LIGHT_KMS * np.interp(rest_air, wave, fwhm) / rest_air / _FWHM_PER_SIGMA


def layout_spectra(
    basis: ObservedBasis, galaxy: GalaxyModel, layout: str, library: Any
) -> LayoutSpectra:
    """The basis spectra of ``galaxy`` through ``layout`` (see the module doc).

    Parameters
    ----------
    basis
        :func:`~napari_galam.simulate.observe.observed_basis` of the galaxy with
        ``resolution=None`` (only its velocity dispersion) in the layout's medium.
    galaxy
        The model (its redshift).
    layout
        ``CALIFA``, ``MaNGA`` or ``MUSE``.
    library
        The SSP library the basis was made from (its wavelength-dependent FWHM).
    """
    wave, medium = layout_wavelengths(layout)
    air = air_wavelength(wave) if medium == "vacuum" else wave
    instrument = instrument_sigma_kms(layout, wave)
    template = _template_sigma_kms(library, air / (1.0 + galaxy.redshift))
    extra = np.sqrt(np.clip(instrument**2 - template**2, 0.0, None))
    operator = gaussian_operator(basis.loglam, np.log10(wave), kms_to_dex(extra))
    rows = np.asarray(operator.sum(axis=1), dtype=np.float64).ravel()
    modelled = np.asarray(operator @ basis.covered.astype(np.float32), np.float64).ravel()
    no_model = ~(rows > _MIN_MODEL_SHARE) | (modelled < _MIN_MODEL_SHARE * rows)
    spectra = np.asarray(operator @ basis.spectra.T, dtype=np.float64).T
    spectra /= np.where(rows > 0, rows, 1.0)
    spectra[:, no_model] = 0.0
    return LayoutSpectra(
        wave=wave,
        medium=medium,
        spectra=spectra,
        no_model=no_model,
        library_limited=(template > instrument) & ~no_model,
        resolving_power=SPEED_OF_LIGHT_KMS / (instrument * _FWHM_PER_SIGMA),
    )


def _sky_profile(layout: str, wave: NDArray[np.float64], medium: str) -> NDArray[np.float64]:
    """Relative sky noise per channel: CALIFA's blue rise; MaNGA's and MUSE's blue and red
    ends and the bright night-sky lines."""
    if layout == "CALIFA":
        return califa_sky_profile(wave)
    air = air_wavelength(wave) if medium == "vacuum" else wave
    near_sky = np.zeros_like(air)
    for line in _NIGHT_SKY_LINES:
        near_sky += np.exp(-0.5 * ((air - line) / 2.0) ** 2)
    if layout == "MaNGA":
        ends = 0.6 * np.clip((4000.0 - air) / 500.0, 0.0, None)
        ends += 0.5 * np.clip((air - 8800.0) / 1500.0, 0.0, None)
    else:
        ends = 0.3 * np.clip((5200.0 - air) / 450.0, 0.0, None)
        ends += 0.5 * np.clip((air - 8500.0) / 850.0, 0.0, None)
    return 1.0 + ends + 3.0 * near_sky


def _footprint(spec: SurveyLayout, shape: tuple[int, int], fibres: int) -> NDArray[np.bool_]:
    """Spaxels inside the field: the PPak hexagon, a MaNGA bundle, all of a MUSE cut-out."""
    if spec.name == "CALIFA":
        return hexagon_mask(shape, spec.pixel_scale)
    if spec.name == "MaNGA":
        flat_to_flat = MANGA_BUNDLES[fibres] * np.sqrt(3.0) / 2.0
        return hexagon_mask(shape, spec.pixel_scale, flat_to_flat=flat_to_flat)
    return np.ones(shape, dtype=bool)


def _header(spec: SurveyLayout, shape: tuple[int, int], ra: float, dec: float) -> fits.Header:
    """The cube's WCS as each pipeline writes it, and its ``BUNIT``."""
    if spec.name == "CALIFA":
        header = cube_header(shape, spec.pixel_scale, ra, dec, crval3=3749.0, cdelt3=2.0,
                             ctype3="AWAV")  # fmt: skip
    elif spec.name == "MaNGA":
        header = cube_header(shape, spec.pixel_scale, ra, dec, crval3=3621.6,
                             cdelt3=3621.6 * np.log(10.0) * 1e-4, ctype3="WAVE-LOG", cd=True)  # fmt: skip
    else:
        header = cube_header(shape, spec.pixel_scale, ra, dec, crval3=4749.76, cdelt3=1.25,
                             ctype3="AWAV", cd=True)  # fmt: skip
    header["BUNIT"] = spec.bunit
    return header


def _band_images(
    basis: ObservedBasis, blurred: NDArray[np.float64], footprint: NDArray[np.bool_]
) -> dict[str, NDArray[np.float32]]:
    """MaNGA's reconstructed g, r, i images (nanomaggies per spaxel, 0 off the bundle).

    The DRP's z image needs the filter's red end (11140 A), past the simulated spectra.
    """
    names = ("g", "r", "i")
    bands = band_set(tuple(f"sdss2010-{name}" for name in names))
    images = np.tensordot(basis.band_nanomaggies(bands), blurred, axes=(0, 0)) * footprint
    return {name: image.astype(np.float32) for name, image in zip(names, images, strict=True)}


def psf_image(shape: tuple[int, int], fwhm_pixels: float) -> NDArray[np.float32]:
    """A Gaussian PSF image of ``shape`` centred on the grid, summing to 1."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    sigma = fwhm_pixels / _FWHM_PER_SIGMA
    image = np.exp(-0.5 * ((xs - (shape[1] - 1) / 2.0) ** 2 + (ys - (shape[0] - 1) / 2.0) ** 2)
                   / sigma**2)  # fmt: skip
    return (image / image.sum()).astype(np.float32)


def check_shape(shape: Any) -> tuple[int, int]:
    """``shape`` as (ny, nx) whole numbers of spaxels, each 5-400."""
    try:
        ny, nx = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise GalamInputError(f"shape: expected (ny, nx) spaxels, got {shape!r}") from None
    if not (5 <= ny <= 400 and 5 <= nx <= 400) or (ny, nx) != tuple(shape):
        raise GalamInputError(
            f"shape: expected two whole numbers of spaxels in 5-400, got {shape!r}"
        )
    return ny, nx


def render_survey_cube(
    galaxy: GalaxyModel,
    *,
    layout: str,
    rng: np.random.Generator,
    library: Any,
    shape: tuple[int, int] | None = None,
    psf_fwhm_arcsec: float | None = None,
    snr_at_re: float = 20.0,
    bundle_fibres: int | None = None,
    ra: float = 180.0,
    dec: float = 30.0,
    emission: bool = False,
) -> SurveyCube:
    """Observe ``galaxy`` at its redshift through a survey layout (see the module doc).

    Parameters
    ----------
    galaxy
        The model (:func:`galaxy_at_redshift` puts it at another redshift).
    layout
        ``califa``, ``manga`` or ``muse`` (any case).
    rng
        Random generator of the noise and the dead pixels.
    library
        The SSP library.
    shape
        (ny, nx) spaxels, 5-400 each; default the layout's (CALIFA 73 x 78, MUSE 56 x 56,
        MaNGA the bundle's box). A smaller grid is a cut-out centred on the galaxy.
    psf_fwhm_arcsec
        FWHM of the Gaussian PSF; default the middle of the layout's ``psf_range``.
    snr_at_re
        S/N per spectral pixel near 5635 A of a spaxel at R = R_e, > 0.
    bundle_fibres
        MaNGA only: the bundle (19, 37, 61, 91 or 127 fibres); default
        :func:`manga_bundle` of the galaxy's R_e.
    ra, dec
        Sky position of the cube centre (degrees).
    emission
        Add nebular emission lines spaxel by spaxel
        (:func:`~napari_galam.simulate.cube_emission.draw_spaxel_emission`, drawn from
        ``rng`` before the noise); the truth maps stay stellar. False leaves the cube as
        without the option, draw for draw.
    """
    spec = survey_layout(layout)
    check_snr(snr_at_re, "snr_at_re")
    psf = float(np.mean(spec.psf_range)) if psf_fwhm_arcsec is None else float(psf_fwhm_arcsec)
    fibres = 0
    if spec.name == "MaNGA":
        fibres = manga_bundle(galaxy.re_arcsec) if bundle_fibres is None else int(bundle_fibres)
        default_shape = manga_shape(fibres)
    elif bundle_fibres is not None:
        raise GalamInputError(f"bundle_fibres: only MaNGA cubes have bundles, not {spec.name}")
    else:
        default_shape = spec.shape
    shape = check_shape(default_shape if shape is None else shape)
    centre = ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    wave, medium = layout_wavelengths(spec.name)
    basis = observed_basis(galaxy, library=library, resolution=None, vacuum=medium == "vacuum")
    spectra = layout_spectra(basis, galaxy, spec.name, library)
    maps, blurred = blurred_light_maps(
        galaxy, shape=shape, pixel_scale=spec.pixel_scale, centre=centre, psf_fwhm_arcsec=psf
    )
    truth = cube_truth(
        galaxy, maps, blurred, shape=shape, pixel_scale=spec.pixel_scale, centre=centre
    )
    model = (spectra.spectra * spec.flux_scale).astype(np.float32)
    flux = np.tensordot(model, blurred.astype(np.float32), axes=(0, 0))
    stellar, lines = flux, None
    if emission:
        lines = draw_spaxel_emission(
            rng, galaxy, basis, blurred, log_age=truth.log_age, mh=truth.mh,
            r_over_re=truth.r_over_re, flux_scale=spec.flux_scale, medium=medium,
        )  # fmt: skip
        flux = add_line_emission(stellar, lines, wave, layout=spec.name)
    error = spaxel_errors(
        flux, wave, truth.r_over_re, snr_at_re, _sky_profile(spec.name, wave, medium),
        continuum=stellar,
    )  # fmt: skip
    flux += error * rng.standard_normal(flux.shape, dtype=np.float32)
    footprint = _footprint(spec, shape, fibres)
    bad = rng.random(flux.shape, dtype=np.float32) < _DEAD_PIXEL_RATE
    bad |= ~footprint[None, :, :]
    bad |= spectra.no_model[:, None, None]
    flux[bad] = 0.0
    return SurveyCube(
        layout=spec.name,
        flux=flux,
        error=error,
        bad=bad,
        footprint=footprint,
        wave=wave,
        medium=medium,
        spectra=spectra,
        header=_header(spec, shape, ra, dec),
        truth=truth,
        galaxy=galaxy,
        pixel_scale=spec.pixel_scale,
        psf_fwhm_arcsec=psf,
        snr_at_re=float(snr_at_re),
        bundle_fibres=fibres,
        images=_band_images(basis, blurred, footprint) if spec.name == "MaNGA" else {},
        emission=lines,
    )
