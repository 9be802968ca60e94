"""SDSS-like cutouts centred on a star: the point sources the galaxy QA must reject.

A star is a point of black-body colour blurred by a Moffat PSF of its own FWHM and
``beta`` (SDSS seeing is 0.9-2.0 arcsec, median about 1.4 arcsec in r; Moffat ``beta`` of
2.5-4.7 spans the wings measured on ground-based PSFs, Trujillo et al. 2001, MNRAS 328,
977), optionally with four diffraction spikes along the spider vanes, and with the
camera's saturation: a pixel holds at most :data:`FULL_WELL_ELECTRONS` photo-electrons
and the excess bleeds along its column, as on the SDSS CCDs. The picture is the same
8-bit asinh composite :func:`napari_galam.simulate.imaging.render_cutout` makes, so the
8-bit maximum clips the core as well. Galaxies may sit beside the star.

Nothing here draws from a random generator that the galaxy scenes or the training sets
use: every scene of :mod:`napari_galam.simulate.imaging` stays bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import fftconvolve

from napari_galam.errors import GalamInputError
from napari_galam.simulate.imaging import (
    ELECTRONS_PER_NMGY,
    SDSS_PIXEL_SCALE,
    SKY_SIGMA_NMGY,
    Cutout,
    Neighbour,
    lupton_rgb,
    moffat_kernel,
    neighbour_layer,
    segmentation_truth,
    star_gri_nanomaggies,
)

__all__ = [
    "FULL_WELL_ELECTRONS",
    "STAR_BRIGHTNESS_CLASSES",
    "StarTarget",
    "draw_star",
    "bleed_columns",
    "is_saturated",
    "render_star_cutout",
]

#: Photo-electrons a pixel holds before it saturates (SDSS photometric CCDs hold about
#: 55,000-60,000 e-; with :data:`ELECTRONS_PER_NMGY` an r-band star saturates near
#: r = 14.5 in 1.4" seeing, as SDSS stars do).
FULL_WELL_ELECTRONS: float = 60000.0

#: r-magnitude ranges of the benchmark's brightness classes (saturated: the core is
#: above the full well in at least one band at any seeing of 0.9-2.0").
STAR_BRIGHTNESS_CLASSES: dict[str, tuple[float, float]] = {
    "faint (r 18-20)": (18.0, 20.0),
    "medium (r 16.5-18)": (16.5, 18.0),
    "bright (r 14.5-16.5)": (14.5, 16.5),
    "saturated (r 11-13.5)": (11.0, 13.5),
}


@dataclass(frozen=True)
class StarTarget:
    """A star at the centre of a cutout and how it is observed.

    Attributes
    ----------
    mag_r
        r-band magnitude (AB).
    temperature_k
        Black-body temperature that sets its g-r and r-i colours.
    psf_fwhm_arcsec, beta
        Moffat PSF of the exposure: FWHM (> 0) and the wing exponent (> 1).
    spikes
        Share of the star's light in its four diffraction spikes (0: none).
    spike_angle_deg
        Direction of the first spike from +x towards +y; the others at 90-degree steps.
    offset_px
        (x, y) offset of the star from the cutout centre, pixels.
    """

    mag_r: float
    temperature_k: float = 5500.0
    psf_fwhm_arcsec: float = 1.4
    beta: float = 3.0
    spikes: float = 0.0
    spike_angle_deg: float = 0.0
    offset_px: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if not (self.psf_fwhm_arcsec > 0 and self.beta > 1 and 0 <= self.spikes < 0.5):
            raise GalamInputError(
                "star: expected psf_fwhm_arcsec > 0, beta > 1 and 0 <= spikes < 0.5, got "
                f"{self.psf_fwhm_arcsec}, {self.beta}, {self.spikes}"
            )


def draw_star(
    rng: np.random.Generator, mag_range: tuple[float, float], *, spike_probability: float = 0.5
) -> StarTarget:
    """A random star: r uniform in ``mag_range``, seeing 0.9-2.0", Moffat beta 2.5-4.7,
    colours of 3500-9000 K, diffraction spikes (1-4% of the light) with
    ``spike_probability``, up to half a pixel off the centre."""
    spikes = float(rng.uniform(0.01, 0.04)) if rng.random() < spike_probability else 0.0
    return StarTarget(
        mag_r=float(rng.uniform(*mag_range)),
        temperature_k=float(rng.uniform(3500.0, 9000.0)),
        psf_fwhm_arcsec=float(rng.uniform(0.9, 2.0)),
        beta=float(rng.uniform(2.5, 4.7)),
        spikes=spikes,
        spike_angle_deg=float(rng.choice([0.0, 45.0])) + float(rng.normal(0.0, 1.0)),
        offset_px=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5))),
    )


def _star_light(
    star: StarTarget, shape: tuple[int, int], centre: tuple[float, float]
) -> NDArray[np.float64]:
    """Unblurred light of the star (ny, nx), summing to 1: the point and its spikes.

    Along each spike the light falls as the inverse square of the distance (the far
    field of a thin vane's diffraction), from 1 px out to the cutout's edge.
    """
    ny, nx = shape
    light = np.zeros(shape)
    _deposit(light, centre[0], centre[1], 1.0 - star.spikes)
    if star.spikes > 0:
        radii = np.arange(1.0, float(max(ny, nx)), 0.5)
        weights = 1.0 / radii**2
        weights *= star.spikes / (4.0 * weights.sum())
        for arm in range(4):
            angle = np.radians(star.spike_angle_deg + 90.0 * arm)
            for radius, weight in zip(radii, weights, strict=True):
                _deposit(
                    light,
                    centre[0] + radius * np.cos(angle),
                    centre[1] + radius * np.sin(angle),
                    weight,
                )
    return light


def _deposit(image: NDArray[np.float64], x: float, y: float, amount: float) -> None:
    """Add ``amount`` at (x, y), shared bilinearly among the four nearest pixels."""
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            row, col = y0 + dy, x0 + dx
            if 0 <= row < image.shape[0] and 0 <= col < image.shape[1]:
                image[row, col] += amount * wy * wx


def bleed_columns(image: NDArray[np.float64], full_well: float) -> NDArray[np.float64]:
    """Saturate ``image`` (ny, nx) at ``full_well`` and bleed the excess along columns.

    The charge above the full well in a column's saturated run is moved, half up and
    half down, into the pixels next to the run, each filled to the full well before the
    next one gets charge (a CCD's bleed trail). Charge bled off the image is lost.
    """
    out = np.array(image, dtype=np.float64, copy=True)
    ny = out.shape[0]
    for col in np.flatnonzero((out > full_well).any(axis=0)):
        column = out[:, col]
        over = column > full_well
        excess = float(np.sum(column[over] - full_well))
        column[over] = full_well
        rows = np.flatnonzero(over)
        up, down = int(rows.min()) - 1, int(rows.max()) + 1
        for share, step, start in ((0.5 * excess, -1, up), (0.5 * excess, 1, down)):
            row = start
            while share > 0 and 0 <= row < ny:
                room = max(full_well - column[row], 0.0)
                taken = min(room, share)
                column[row] += taken
                share -= taken
                row += step
    return out


def render_star_cutout(
    star: StarTarget,
    *,
    rng: np.random.Generator,
    library: Any = None,
    neighbours: tuple[Neighbour, ...] = (),
    shape: tuple[int, int] = (128, 128),
    pixel_scale: float = SDSS_PIXEL_SCALE,
    full_well_electrons: float = FULL_WELL_ELECTRONS,
) -> Cutout:
    """Render an SDSS-like gri cutout centred on ``star``, galaxies beside it optional.

    The truth's source table has the star as its first row (kind ``"star"``); its
    ``psf_fwhm_arcsec`` is the star's seeing. The noisy images are saturated and bled
    (:func:`bleed_columns`) before the 8-bit composite is made.

    Parameters
    ----------
    star
        The star and its PSF.
    rng
        Random generator of the noise.
    library
        The SSP library (needed only with ``neighbours``).
    neighbours
        Galaxies beside the star, placed relative to it.
    shape, pixel_scale
        Cutout size (ny, nx) and arcsec per pixel.
    full_well_electrons
        Saturation level of a pixel, photo-electrons.
    """
    from napari_galam.simulate.observe import SDSS_GRI, band_set

    if len(shape) != 2 or min(shape) < 8:
        raise GalamInputError(f"shape: expected (ny, nx) of at least 8 x 8 pixels, got {shape}")
    if neighbours and library is None:
        raise GalamInputError("render_star_cutout: neighbours need the SSP library")
    ny, nx = shape
    centre = ((nx - 1) / 2.0 + star.offset_px[0], (ny - 1) / 2.0 + star.offset_px[1])
    gri = star_gri_nanomaggies(star.mag_r, star.temperature_k)
    layers = [gri[:, None, None] * _star_light(star, shape, centre)[None]]
    rows = [
        dict(
            kind="star",
            x=centre[0],
            y=centre[1],
            mag_r=star.mag_r,
            redshift=0.0,
            separation_arcsec=0.0,
            flux_ratio=1.0,
        )
    ]
    as_target = SimpleNamespace(mag_r=star.mag_r)
    bands = band_set(SDSS_GRI) if neighbours else None
    for neighbour in neighbours:
        layer, row = neighbour_layer(
            neighbour, as_target, library, bands, shape, pixel_scale, centre
        )
        layers.append(layer)
        rows.append(row)
    kernel = moffat_kernel(star.psf_fwhm_arcsec / pixel_scale, beta=star.beta)
    blurred = fftconvolve(np.stack(layers), kernel[None, None], mode="same", axes=(2, 3))
    noiseless = blurred.sum(axis=0)
    sigma = np.sqrt(
        SKY_SIGMA_NMGY[:, None, None] ** 2
        + np.clip(noiseless, 0.0, None) / ELECTRONS_PER_NMGY[:, None, None]
    )
    images = noiseless + sigma * rng.standard_normal(noiseless.shape)
    full_well = full_well_electrons / ELECTRONS_PER_NMGY
    images = np.stack(
        [bleed_columns(band, well) for band, well in zip(images, full_well, strict=True)]
    )
    threshold = float(SKY_SIGMA_NMGY[1])
    truth = segmentation_truth(
        blurred, noiseless, centre, threshold, rows, psf_fwhm_arcsec=star.psf_fwhm_arcsec
    )
    return Cutout(
        rgb=lupton_rgb(images),
        images=images.astype(np.float32),
        noiseless=noiseless.astype(np.float32),
        truth=truth,
        pixel_scale=float(pixel_scale),
    )


def is_saturated(star: StarTarget, pixel_scale: float = SDSS_PIXEL_SCALE) -> bool:
    """Whether the star's noiseless peak pixel exceeds the full well in any band."""
    gri = star_gri_nanomaggies(star.mag_r, star.temperature_k) * ELECTRONS_PER_NMGY
    peak = float(moffat_kernel(star.psf_fwhm_arcsec / pixel_scale, beta=star.beta).max())
    return bool(np.any(gri * peak * (1.0 - star.spikes) > FULL_WELL_ELECTRONS))
