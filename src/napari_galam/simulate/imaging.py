"""SDSS-like gri images of synthetic galaxies: cutouts with neighbours, stars and truth.

A cutout is rendered in nanomaggies per band (0.396"/px), blurred by a Moffat PSF,
given sky and Poisson noise, and turned into an 8-bit RGB picture with the asinh stretch
of Lupton et al. (2004) and SDSS's channel order (i -> R, r -> G, g -> B), as the SkyServer
ImgCutout JPEGs are. Scenes may hold neighbour galaxies at a chosen separation and flux
ratio, stars and sources cut by the edge. The ground truth is what the masking and
deblending steps of MMLforGalAM should find: a segmentation of the noiseless image above
the detection threshold, the target's ellipse, and whether the target is blended (its
footprint touches another source's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.table import Table
from numpy.typing import NDArray
from scipy import ndimage
from scipy.signal import fftconvolve

from napari_galam.errors import GalamInputError
from napari_galam.simulate.galaxy import GalaxyModel, draw_galaxy
from napari_galam.simulate.galaxy_maps import light_maps, rotated_coordinates
from napari_galam.simulate.observe import (
    SDSS_GRI,
    BandSet,
    ObservedBasis,
    band_set,
    observed_basis,
)
from napari_galam.simulate.spectral import observed_log_grid

__all__ = [
    "SDSS_PIXEL_SCALE",
    "Neighbour",
    "Star",
    "DiscStructure",
    "draw_disc_structure",
    "apply_disc_structure",
    "TargetEllipse",
    "CutoutTruth",
    "Cutout",
    "moffat_kernel",
    "lupton_rgb",
    "render_cutout",
    "draw_scene",
    "star_gri_nanomaggies",
    "neighbour_layer",
    "segmentation_truth",
]

#: SDSS imaging pixel scale (arcsec per pixel).
SDSS_PIXEL_SCALE: float = 0.396
#: Sky noise per pixel (nanomaggies) in g, r, i for a 54 s SDSS exposure.
SKY_SIGMA_NMGY: NDArray[np.float64] = np.array([0.045, 0.06, 0.10])
#: Photo-electrons per nanomaggy in g, r, i (sets the Poisson noise of the sources).
ELECTRONS_PER_NMGY: NDArray[np.float64] = np.array([450.0, 600.0, 400.0])
#: Multipliers of the g, r, i images before the asinh stretch (SDSS-like colour balance).
RGB_BAND_SCALES: NDArray[np.float64] = np.array([2.0, 1.2, 0.85])


@dataclass(frozen=True)
class Neighbour:
    """A galaxy beside the target: its model and where it sits relative to the target.

    ``separation_arcsec`` and ``angle_deg`` (pixel frame, from +x towards +y) place its
    centre; its brightness is the model's own ``mag_r``.
    """

    galaxy: GalaxyModel
    separation_arcsec: float
    angle_deg: float


@dataclass(frozen=True)
class Star:
    """A point source at pixel (x, y) with an r magnitude and a black-body temperature."""

    x: float
    y: float
    mag_r: float
    temperature_k: float = 5500.0


@dataclass(frozen=True)
class TargetEllipse:
    """The target's isophotal ellipse (pixels; theta from +x towards +y, degrees)."""

    x: float
    y: float
    semi_major: float
    semi_minor: float
    theta_deg: float


@dataclass(frozen=True)
class CutoutTruth:
    """Ground truth of a rendered cutout.

    Attributes
    ----------
    segmentation
        (ny, nx) int32: 0 sky, 1 the target, 2.. the other sources in ``sources`` order;
        a pixel belongs to the source that gives it most noiseless r flux, where the
        noiseless r image exceeds ``threshold_nmgy``.
    ellipse
        The target's isophotal ellipse from the second moments of its own footprint.
    blended
        True if the target's footprint touches the footprint of another source (one
        detection before deblending).
    sources
        Table with one row per source: ``id`` (segmentation label), ``kind`` (target,
        galaxy, star), ``x``, ``y``, ``mag_r``, ``redshift``, ``separation_arcsec``,
        ``flux_ratio`` (to the target, in r), ``blended_with_target`` and ``blended``
        (its footprint touches any other source's).
    psf_fwhm_arcsec, threshold_nmgy
        Seeing and the r-band isophote used for the footprints.
    """

    segmentation: NDArray[np.int32]
    ellipse: TargetEllipse
    blended: bool
    sources: Table
    psf_fwhm_arcsec: float
    threshold_nmgy: float


@dataclass(frozen=True)
class Cutout:
    """A rendered gri cutout.

    Attributes
    ----------
    rgb
        (ny, nx, 3) uint8, R = i, G = r, B = g, asinh-stretched.
    images
        (3, ny, nx) float32, g, r, i in nanomaggies per pixel, sky-subtracted, with noise.
    noiseless
        (3, ny, nx) float32, the same without noise.
    truth
        Segmentation, ellipse, blend flag and the table of sources.
    pixel_scale
        Arcsec per pixel.
    """

    rgb: NDArray[np.uint8]
    images: NDArray[np.float32]
    noiseless: NDArray[np.float32]
    truth: CutoutTruth
    pixel_scale: float


def moffat_kernel(
    fwhm_px: float, *, beta: float = 3.0, size: int | None = None
) -> NDArray[np.float64]:
    """A normalised, pixel-integrated Moffat PSF of a FWHM in pixels."""
    if not fwhm_px > 0:
        raise GalamInputError(f"PSF FWHM: expected > 0 pixels, got {fwhm_px}")
    alpha = fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    if size is None:
        size = 2 * int(np.ceil(3.0 * fwhm_px)) + 1
    oversample = 3
    offsets = (np.arange(size * oversample) + 0.5) / oversample - size / 2.0
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    profile = (1.0 + r2 / alpha**2) ** (-beta)
    kernel = profile.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
    return kernel / kernel.sum()


def lupton_rgb(
    images_gri: NDArray[np.floating],
    *,
    stretch: float = 0.4,
    q: float = 8.0,
    band_scales: NDArray[np.floating] = RGB_BAND_SCALES,
) -> NDArray[np.uint8]:
    """Lupton et al. (2004) asinh colour composite of g, r, i images (i -> R, g -> B).

    The three scaled images share one asinh stretch of their mean intensity, which keeps
    colours in bright cores; pixels where a channel would exceed 1 are scaled down as a
    whole. Returns (ny, nx, 3) uint8.
    """
    images = np.asarray(images_gri, dtype=np.float64) * np.asarray(band_scales)[:, None, None]
    rgb = np.stack([images[2], images[1], images[0]], axis=-1)
    intensity = rgb.mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.arcsinh(q * intensity / stretch) / (q * intensity)
    factor = np.where(intensity > 1e-12, factor, 0.0)
    rgb = np.clip(rgb * factor[..., None], 0.0, None)
    peak = rgb.max(axis=-1, keepdims=True)
    rgb = np.where(peak > 1.0, rgb / np.maximum(peak, 1e-12), rgb)
    return np.round(rgb * 255.0).astype(np.uint8)


def _deposit_point(shape: tuple[int, int], x: float, y: float) -> NDArray[np.float64]:
    image = np.zeros(shape)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            if 0 <= yy < shape[0] and 0 <= xx < shape[1]:
                image[yy, xx] += wy * wx
    return image


def _star_gri(mag_r: float, temperature_k: float) -> NDArray[np.float64]:
    bands = band_set(SDSS_GRI)
    wave = 10.0 ** observed_log_grid()
    planck = 1.0 / (wave**5 * np.expm1(1.4388e8 / (wave * temperature_k)))
    flam = planck @ bands.matrix.T
    nmgy = flam * bands.nanomaggies_per_flam
    return nmgy * (10 ** (-0.4 * (mag_r - 22.5)) / nmgy[1])


def _footprint_ellipse(mask: NDArray[np.bool_], image: NDArray[np.float64]) -> TargetEllipse:
    ys, xs = np.nonzero(mask)
    if xs.size < 3:
        cy, cx = (np.array(mask.shape) - 1) / 2.0
        return TargetEllipse(float(cx), float(cy), 1.0, 1.0, 0.0)
    cx, cy = xs.mean(), ys.mean()
    dx, dy = xs - cx, ys - cy
    cov = np.array([[np.mean(dx * dx), np.mean(dx * dy)], [np.mean(dx * dy), np.mean(dy * dy)]])
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, 1]
    theta = float(np.degrees(np.arctan2(major[1], major[0])) % 180.0)
    # A uniformly filled ellipse has second moments a^2/4 and b^2/4 along its axes.
    return TargetEllipse(
        x=float(cx),
        y=float(cy),
        semi_major=float(2.0 * np.sqrt(max(values[1], 0.0))),
        semi_minor=float(2.0 * np.sqrt(max(values[0], 0.0))),
        theta_deg=theta,
    )


@dataclass(frozen=True)
class DiscStructure:
    """Spiral arms and star-forming clumps laid on a galaxy's disc.

    Real discs are not smooth Sersic profiles: their arms and clumps break the point
    symmetry a companion search relies on, so the QA benchmark needs them to measure how
    often an isolated spiral is flagged as blended. The pattern multiplies the disc's
    light by ``1 + amplitude * taper(R) * cos(n_arms * (phi - ln(R / R_e) / tan(pitch))
    - phase)`` in the disc plane (a logarithmic spiral; ``taper`` fades it inside half
    an effective radius, where the bulge and bar live), and moves ``clump_fraction`` of
    the disc's light into Gaussian clumps (before the PSF). The disc's total light, and
    so the photometry and the labels, are unchanged.

    Attributes
    ----------
    n_arms
        Number of arms (2 for grand-design spirals).
    pitch_deg
        Pitch angle of the arms, 5..50 degrees.
    amplitude
        Arm-interarm modulation of the disc light, 0..0.9.
    phase
        Rotation of the pattern (radians).
    clumps
        (k, 4) array: radius (units of the disc R_e), azimuth in the disc plane
        (radians), Gaussian sigma (pixels) and share of the clumps' light.
    clump_fraction
        Share of the disc's light put into the clumps, 0..0.5.
    """

    n_arms: int = 2
    pitch_deg: float = 20.0
    amplitude: float = 0.4
    phase: float = 0.0
    clumps: NDArray[np.float64] = dataclasses.field(default_factory=lambda: np.zeros((0, 4)))
    clump_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not (1 <= self.n_arms <= 8 and 5.0 <= self.pitch_deg <= 50.0):
            raise GalamInputError(
                f"disc structure: n_arms 1..8 and pitch 5..50 deg expected, got "
                f"{self.n_arms}, {self.pitch_deg}"
            )
        if not (0.0 <= self.amplitude <= 0.9 and 0.0 <= self.clump_fraction <= 0.5):
            raise GalamInputError(
                f"disc structure: amplitude 0..0.9 and clump_fraction 0..0.5 expected, got "
                f"{self.amplitude}, {self.clump_fraction}"
            )
        clumps = np.asarray(self.clumps, dtype=np.float64).reshape(-1, 4)
        if clumps.size and not (np.all(clumps[:, 2] > 0) and np.all(clumps[:, 3] >= 0)):
            raise GalamInputError("disc structure: clump sigmas must be > 0 and shares >= 0")
        object.__setattr__(self, "clumps", clumps)


def draw_disc_structure(rng: np.random.Generator, galaxy: GalaxyModel) -> DiscStructure | None:
    """Arms and clumps for a disc galaxy, or None when the disc holds under 30% of the light.

    Arm-interarm contrasts of 1.2-4 in optical light (amplitude 0.1-0.6 here) and pitch
    angles of 10-30 degrees are typical of nearby spirals (Elmegreen et al. 2011, ApJ 737,
    32; Davis et al. 2012, ApJS 199, 33); two arms are the common case. Clumps, 0-12 per
    disc, carry up to 8% of the disc light, half of them on the arms.
    """
    if galaxy.disc.light_fraction < 0.3:
        return None
    n_arms = int(rng.choice([2, 2, 2, 3, 4]))
    pitch = float(rng.uniform(10.0, 30.0))
    phase = float(rng.uniform(0.0, 2.0 * np.pi))
    k = int(min(rng.poisson(4.0), 12))
    radius = rng.uniform(0.3, 2.0, k)
    on_arm = rng.random(k) < 0.5
    arm = rng.integers(0, n_arms, k)
    azimuth = np.where(
        on_arm,
        (phase + 2.0 * np.pi * arm) / n_arms + np.log(radius) / np.tan(np.radians(pitch)),
        rng.uniform(0.0, 2.0 * np.pi, k),
    )
    clumps = np.column_stack([radius, azimuth, rng.uniform(0.6, 1.5, k), rng.uniform(0.5, 1.5, k)])
    return DiscStructure(
        n_arms=n_arms,
        pitch_deg=pitch,
        amplitude=float(rng.uniform(0.1, 0.6)),
        phase=phase,
        clumps=clumps,
        clump_fraction=float(rng.uniform(0.0, 0.08)) if k else 0.0,
    )


def apply_disc_structure(
    maps: NDArray[np.float64],
    galaxy: GalaxyModel,
    structure: DiscStructure,
    *,
    pixel_scale: float,
    centre_xy: tuple[float, float],
) -> NDArray[np.float64]:
    """``maps`` (from :func:`light_maps`) with ``structure`` laid on the disc's two maps.

    Each disc map keeps its total; the bulge maps are untouched.
    """
    out = np.array(maps, dtype=np.float64, copy=True)
    disc = out[2:4]
    before = disc.sum(axis=(1, 2))
    if not np.any(before > 0):
        return out
    ny, nx = out.shape[1:]
    ys, xs = np.mgrid[0:ny, 0:nx].astype(np.float64)
    major, minor = rotated_coordinates(ys, xs, centre_xy, galaxy.theta_deg)
    q = galaxy.disc.axis_ratio
    re_px = galaxy.disc.re_arcsec / pixel_scale
    radius = np.hypot(major, minor / q)
    azimuth = np.arctan2(minor / q, major)
    winding = np.log(np.maximum(radius, 0.05 * re_px) / re_px) / np.tan(
        np.radians(structure.pitch_deg)
    )
    taper = 1.0 - np.exp(-((radius / (0.5 * re_px)) ** 2))
    pattern = 1.0 + structure.amplitude * taper * np.cos(
        structure.n_arms * (azimuth - winding) - structure.phase
    )
    disc *= pattern[None]
    after = disc.sum(axis=(1, 2))
    disc *= np.where(after > 0, before / np.where(after > 0, after, 1.0), 0.0)[:, None, None]
    clumps = structure.clumps
    if clumps.size and structure.clump_fraction > 0 and clumps[:, 3].sum() > 0:
        theta = np.radians(galaxy.theta_deg)
        light = np.zeros((ny, nx))
        shares = clumps[:, 3] / clumps[:, 3].sum()
        for (r_re, phi, sigma, _), share in zip(clumps, shares, strict=True):
            a, b = r_re * re_px * np.cos(phi), r_re * re_px * q * np.sin(phi)
            x = centre_xy[0] + a * np.cos(theta) - b * np.sin(theta)
            y = centre_xy[1] + a * np.sin(theta) + b * np.cos(theta)
            blob = np.exp(-0.5 * ((xs - x) ** 2 + (ys - y) ** 2) / sigma**2)
            # Normalised on the pixels, so a clump's light is exact (0 if off the image).
            light += share * blob / max(float(blob.sum()), 2.0 * np.pi * sigma**2)
        total = float(before.sum())
        disc *= 1.0 - structure.clump_fraction
        # The clumps are young: their light joins the outer (disc) population's map.
        disc[1] += structure.clump_fraction * total * light
    return out


def render_cutout(
    target: GalaxyModel,
    *,
    rng: np.random.Generator,
    library: Any,
    neighbours: tuple[Neighbour, ...] = (),
    stars: tuple[Star, ...] = (),
    shape: tuple[int, int] = (128, 128),
    pixel_scale: float = SDSS_PIXEL_SCALE,
    psf_fwhm_arcsec: float = 1.4,
    centre_offset_px: tuple[float, float] = (0.0, 0.0),
    target_basis: ObservedBasis | None = None,
    threshold_sigma: float = 1.0,
    target_structure: DiscStructure | None = None,
) -> Cutout:
    """Render an SDSS-like gri cutout centred on ``target``.

    Parameters
    ----------
    target
        The galaxy at the centre.
    rng
        Random generator for the noise.
    library
        The SSP library.
    neighbours, stars
        Other sources in the scene.
    shape
        (ny, nx) in pixels.
    pixel_scale
        Arcsec per pixel (SDSS: 0.396).
    psf_fwhm_arcsec
        Seeing FWHM of the Moffat (beta = 3) PSF, > 0.
    centre_offset_px
        Offset (x, y) of the target from the image centre.
    target_basis
        The target's :func:`observed_basis`, if already computed.
    threshold_sigma
        Footprint isophote in units of the r-band sky noise per pixel.
    target_structure
        Spiral arms and clumps on the target's disc (:func:`draw_disc_structure`);
        None: smooth Sersic profiles.

    Returns
    -------
    Cutout
    """
    if len(shape) != 2 or min(shape) < 8:
        raise GalamInputError(f"shape: expected (ny, nx) of at least 8 x 8 pixels, got {shape}")
    if not psf_fwhm_arcsec > 0:
        raise GalamInputError(f"psf_fwhm_arcsec: expected > 0, got {psf_fwhm_arcsec}")
    bands = band_set(SDSS_GRI)
    ny, nx = shape
    centre = ((nx - 1) / 2.0 + centre_offset_px[0], (ny - 1) / 2.0 + centre_offset_px[1])
    basis = target_basis or observed_basis(target, library=library)
    layer, row = _target_layer(target, basis, bands, shape, pixel_scale, centre, target_structure)
    layers, rows = [layer], [row]
    for neighbour in neighbours:
        layer, row = _neighbour_layer(neighbour, target, library, bands, shape, pixel_scale, centre)
        layers.append(layer)
        rows.append(row)
    for star in stars:
        layer, row = _star_layer(star, target, shape, pixel_scale, centre)
        layers.append(layer)
        rows.append(row)
    blurred, noiseless, images = _observe_gri(layers, psf_fwhm_arcsec / pixel_scale, rng)
    threshold = threshold_sigma * float(SKY_SIGMA_NMGY[1])
    truth = _segmentation_truth(
        blurred, noiseless, centre, threshold, rows, psf_fwhm_arcsec=float(psf_fwhm_arcsec)
    )
    return Cutout(
        rgb=lupton_rgb(images),
        images=images.astype(np.float32),
        noiseless=noiseless.astype(np.float32),
        truth=truth,
        pixel_scale=float(pixel_scale),
    )


def _target_layer(
    target: GalaxyModel,
    basis: ObservedBasis,
    bands: BandSet,
    shape: tuple[int, int],
    pixel_scale: float,
    centre: tuple[float, float],
    structure: DiscStructure | None,
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """The target's unblurred gri light (3, ny, nx) and its row of the source table."""
    target_nmgy = basis.band_nanomaggies(bands)
    maps = light_maps(target, shape=shape, pixel_scale=pixel_scale, centre_xy=centre)
    if structure is not None:
        maps = apply_disc_structure(
            maps, target, structure, pixel_scale=pixel_scale, centre_xy=centre
        )
    row = dict(
        kind="target",
        x=centre[0],
        y=centre[1],
        mag_r=target.mag_r,
        redshift=target.redshift,
        separation_arcsec=0.0,
        flux_ratio=1.0,
    )
    return np.tensordot(target_nmgy, maps, axes=(0, 0)), row


def _neighbour_layer(
    neighbour: Neighbour,
    target: GalaxyModel,
    library: Any,
    bands: BandSet,
    shape: tuple[int, int],
    pixel_scale: float,
    centre: tuple[float, float],
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """A neighbour galaxy's unblurred gri light (3, ny, nx) and its row of the source table."""
    angle = np.radians(neighbour.angle_deg)
    x = centre[0] + neighbour.separation_arcsec / pixel_scale * np.cos(angle)
    y = centre[1] + neighbour.separation_arcsec / pixel_scale * np.sin(angle)
    nb_basis = observed_basis(neighbour.galaxy, library=library, broaden=False)
    nb_maps = light_maps(
        neighbour.galaxy,
        shape=shape,
        pixel_scale=pixel_scale,
        centre_xy=(x, y),
        extent_re=25.0,  # beyond, even an n = 4 bulge is below 1e-4 of its I_e
    )
    layer = np.tensordot(nb_basis.band_nanomaggies(bands), nb_maps, axes=(0, 0))
    row = dict(
        kind="galaxy",
        x=x,
        y=y,
        mag_r=neighbour.galaxy.mag_r,
        redshift=neighbour.galaxy.redshift,
        separation_arcsec=neighbour.separation_arcsec,
        flux_ratio=10 ** (-0.4 * (neighbour.galaxy.mag_r - target.mag_r)),
    )
    return layer, row


def _star_layer(
    star: Star,
    target: GalaxyModel,
    shape: tuple[int, int],
    pixel_scale: float,
    centre: tuple[float, float],
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """A star's unblurred gri light (3, ny, nx) and its row of the source table."""
    point = _deposit_point(shape, star.x, star.y)
    layer = _star_gri(star.mag_r, star.temperature_k)[:, None, None] * point[None]
    row = dict(
        kind="star",
        x=star.x,
        y=star.y,
        mag_r=star.mag_r,
        redshift=0.0,
        separation_arcsec=float(np.hypot(star.x - centre[0], star.y - centre[1]) * pixel_scale),
        flux_ratio=10 ** (-0.4 * (star.mag_r - target.mag_r)),
    )
    return layer, row


def _observe_gri(
    layers: list[NDArray[np.float64]], psf_fwhm_px: float, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Blur every source with the PSF and add sky and photon noise.

    Returns the blurred sources (n_sources, 3, ny, nx), their noiseless sum and the noisy
    gri images (3, ny, nx).
    """
    kernel = moffat_kernel(psf_fwhm_px)
    stack = np.stack(layers)  # (n_sources, 3, ny, nx)
    blurred = fftconvolve(stack, kernel[None, None], mode="same", axes=(2, 3))
    noiseless = blurred.sum(axis=0)
    sigma = np.sqrt(
        SKY_SIGMA_NMGY[:, None, None] ** 2
        + np.clip(noiseless, 0.0, None) / ELECTRONS_PER_NMGY[:, None, None]
    )
    images = noiseless + sigma * rng.standard_normal(noiseless.shape)
    return blurred, noiseless, images


def _segmentation_truth(
    blurred: NDArray[np.float64],
    noiseless: NDArray[np.float64],
    centre: tuple[float, float],
    threshold: float,
    rows: list[dict[str, Any]],
    *,
    psf_fwhm_arcsec: float,
) -> CutoutTruth:
    """Segmentation, target ellipse and blend flags from the noiseless r-band light."""
    ny, nx = noiseless.shape[1:]
    r_layers = blurred[:, 1]
    above = noiseless[1] > threshold
    segmentation = np.where(above, np.argmax(r_layers, axis=0) + 1, 0).astype(np.int32)
    labelled, _ = ndimage.label(above, structure=np.ones((3, 3)))
    cy, cx = int(round(np.clip(centre[1], 0, ny - 1))), int(round(np.clip(centre[0], 0, nx - 1)))
    blob = labelled[cy, cx]
    blended_ids: set[int] = set()
    if blob > 0:
        blended_ids = set(np.unique(segmentation[labelled == blob]).tolist()) - {0, 1}
    own = r_layers[0] > threshold
    own_labels, _ = ndimage.label(own, structure=np.ones((3, 3)))
    own_blob = own_labels[cy, cx]
    ellipse = _footprint_ellipse(own_labels == own_blob if own_blob > 0 else own, r_layers[0])
    sources = Table(rows=rows)
    sources.add_column(np.arange(1, len(rows) + 1, dtype=np.int32), name="id", index=0)
    sources["blended_with_target"] = [i in blended_ids for i in sources["id"]]
    # Any source whose footprint touches another's is blended (one detection, several sources).
    pairs = np.unique(np.stack([labelled[above], segmentation[above]]), axis=1)
    blobs, counts = np.unique(pairs[0], return_counts=True)
    shared = set(pairs[1][np.isin(pairs[0], blobs[counts > 1])].tolist())
    sources["blended"] = [i in shared for i in sources["id"]]
    return CutoutTruth(
        segmentation=segmentation,
        ellipse=ellipse,
        blended=bool(blended_ids),
        sources=sources,
        psf_fwhm_arcsec=psf_fwhm_arcsec,
        threshold_nmgy=threshold,
    )


def draw_scene(
    rng: np.random.Generator,
    target: GalaxyModel,
    *,
    library: Any,
    shape: tuple[int, int] = (128, 128),
    pixel_scale: float = SDSS_PIXEL_SCALE,
    blend_probability: float = 0.25,
    star_rate: float = 0.6,
    edge_probability: float = 0.4,
) -> tuple[tuple[Neighbour, ...], tuple[Star, ...]]:
    """Draw the other sources of a cutout around ``target``.

    With probability ``blend_probability`` one (sometimes two) neighbour galaxies are put
    close enough for the isophotes to merge (separation 0.8-2.2 times the summed
    effective radii, at least 2.5 arcsec; r-band flux ratio 0.05-1, log-uniform); with
    ``edge_probability`` a galaxy is put across the edge of the cutout; stars are
    Poisson(``star_rate``) with r = 14-21.
    """
    if not 0 <= blend_probability <= 1:
        raise GalamInputError(f"blend_probability: expected 0..1, got {blend_probability}")
    neighbours: list[Neighbour] = []
    ny, nx = shape

    def neighbour_galaxy(flux_ratio: float) -> GalaxyModel:
        galaxy = draw_galaxy(rng, library=library)
        return dataclasses.replace(galaxy, mag_r=target.mag_r - 2.5 * np.log10(flux_ratio))

    if rng.random() < blend_probability:
        for _ in range(1 if rng.random() < 0.8 else 2):
            flux_ratio = float(10 ** rng.uniform(np.log10(0.05), 0.0))
            galaxy = neighbour_galaxy(flux_ratio)
            reach = target.re_arcsec + galaxy.re_arcsec
            separation = max(float(rng.uniform(0.8, 2.2)) * reach, 2.5)
            separation = min(separation, 0.45 * min(shape) * pixel_scale)
            neighbours.append(Neighbour(galaxy, separation, float(rng.uniform(0, 360))))
    if rng.random() < edge_probability:
        flux_ratio = float(10 ** rng.uniform(-1.3, 0.3))
        galaxy = neighbour_galaxy(flux_ratio)
        angle = float(rng.uniform(0, 360))
        edge_distance = (
            0.5
            * min(shape)
            * pixel_scale
            / max(abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle))))
        )
        separation = edge_distance + float(rng.uniform(-2.0, 3.0))
        neighbours.append(Neighbour(galaxy, separation, angle))
    stars = tuple(
        Star(
            x=float(rng.uniform(0, nx - 1)),
            y=float(rng.uniform(0, ny - 1)),
            mag_r=float(rng.uniform(14.0, 21.0)),
            temperature_k=float(rng.uniform(3500.0, 9000.0)),
        )
        for _ in range(rng.poisson(star_rate))
    )
    return tuple(neighbours), stars


#: Public names of the layer helpers, for the star scenes of
#: :mod:`napari_galam.simulate.stars` (same functions, same draws).
star_gri_nanomaggies = _star_gri
neighbour_layer = _neighbour_layer
segmentation_truth = _segmentation_truth
