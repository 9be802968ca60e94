"""Maps of a galaxy model on a pixel grid: the light of each population, radii, labels.

:func:`light_maps` integrates each of the four populations' Sersic light over the pixels
of a grid (sub-sampled where the profile is steep); :func:`label_maps` turns those maps
into the exact light-weighted log age and [M/H] per pixel, and
:func:`deprojected_radius_map` gives the radius in effective radii. The model and the
geometry conventions are :mod:`napari_galam.simulate.galaxy`'s.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import gamma

from napari_galam.errors import GalamInputError
from napari_galam.simulate.galaxy import GalaxyModel, SersicComponent, sersic_b

__all__ = ["rotated_coordinates", "light_maps", "deprojected_radius_map", "label_maps"]


def rotated_coordinates(
    ys: NDArray[np.float64],
    xs: NDArray[np.float64],
    centre_xy: tuple[float, float],
    theta_deg: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    theta = np.radians(theta_deg)
    dx = xs - centre_xy[0]
    dy = ys - centre_xy[1]
    major = dx * np.cos(theta) + dy * np.sin(theta)
    minor = -dx * np.sin(theta) + dy * np.cos(theta)
    return major, minor


def _bin_subpixels(values: NDArray[np.float64], oversample: int) -> NDArray[np.float64]:
    """Sum (ny * k, nx * k) sub-pixel samples into (ny, nx) pixels."""
    if oversample == 1:
        return values
    if oversample <= 3:
        out = values[0::oversample, 0::oversample].copy()
        for dy in range(oversample):
            for dx in range(oversample):
                if dy or dx:
                    out += values[dy::oversample, dx::oversample]
        return out
    ny, nx = values.shape[0] // oversample, values.shape[1] // oversample
    return values.reshape(ny, oversample, nx, oversample).sum(axis=(1, 3))


def _component_maps(
    comp: SersicComponent,
    *,
    galaxy: GalaxyModel,
    shape: tuple[int, int],
    pixel_scale: float,
    centre_xy: tuple[float, float],
    box: tuple[int, int, int, int],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Inner- and outer-population light per pixel (fractions of the galaxy's band light)."""
    inner = np.zeros(shape)
    outer = np.zeros(shape)
    if comp.light_fraction == 0:
        return inner, outer
    n = comp.sersic_n
    b = sersic_b(n)
    re_px = comp.re_arcsec / pixel_scale
    norm = comp.light_fraction / (
        2 * np.pi * n * comp.axis_ratio * re_px**2 * gamma(2 * n) / b ** (2 * n)
    )
    mix_px = galaxy.mixing_radius * galaxy.re_arcsec / pixel_scale
    y0, y1, x0, x1 = box

    def evaluate(ylo: int, yhi: int, xlo: int, xhi: int, oversample: int) -> None:
        if yhi <= ylo or xhi <= xlo:
            return
        offsets = (np.arange(oversample) + 0.5) / oversample - 0.5
        ys = (np.arange(ylo, yhi)[:, None] + offsets[None, :]).ravel()
        xs = (np.arange(xlo, xhi)[:, None] + offsets[None, :]).ravel()
        major, minor = rotated_coordinates(ys[:, None], xs[None, :], centre_xy, galaxy.theta_deg)
        radius = np.sqrt(major**2 + (minor / comp.axis_ratio) ** 2)
        scaled = radius / re_px if n == 1.0 else (radius / re_px) ** (1.0 / n)
        light = np.exp(-b * scaled)
        weight = norm / oversample**2
        total = _bin_subpixels(light, oversample) * weight
        light *= np.minimum(radius, mix_px)
        out = _bin_subpixels(light, oversample) * (weight / mix_px)
        inner[ylo:yhi, xlo:xhi] = total - out
        outer[ylo:yhi, xlo:xhi] = out

    evaluate(y0, y1, x0, x1, 2)
    # The cusp of a Sersic profile needs finer sampling near the centre.
    half = 4 if re_px > 3 else 6
    cx, cy = int(round(centre_xy[0])), int(round(centre_xy[1]))
    fine = 15 if re_px < 8 else 7
    evaluate(
        max(cy - half, y0), min(cy + half + 1, y1), max(cx - half, x0), min(cx + half + 1, x1), fine
    )
    return inner, outer


def light_maps(
    galaxy: GalaxyModel,
    *,
    shape: tuple[int, int],
    pixel_scale: float,
    centre_xy: tuple[float, float],
    extent_re: float | None = None,
) -> NDArray[np.float64]:
    """Intrinsic band light of each basis population in each pixel, before any PSF.

    Parameters
    ----------
    galaxy
        The model.
    shape
        (ny, nx) of the image.
    pixel_scale
        Arcsec per pixel, > 0.
    centre_xy
        Galaxy centre (x, y) in pixels; it may lie outside the image.
    extent_re
        Evaluate only within this many R_e of the centre (faster for fields); None: all.

    Returns
    -------
    numpy.ndarray
        Shape (4, ny, nx): bulge inner, bulge outer, disc inner, disc outer; each is the
        fraction of the galaxy's total intrinsic 5070-5950 A light in that pixel.
    """
    if not pixel_scale > 0:
        raise GalamInputError(f"pixel_scale: expected > 0 arcsec/px, got {pixel_scale}")
    ny, nx = shape
    if extent_re is None:
        box = (0, ny, 0, nx)
    else:
        reach = extent_re * max(galaxy.re_arcsec, galaxy.bulge.re_arcsec, galaxy.disc.re_arcsec)
        reach_px = max(reach / pixel_scale, 8.0)
        box = (
            int(np.clip(np.floor(centre_xy[1] - reach_px), 0, ny)),
            int(np.clip(np.ceil(centre_xy[1] + reach_px) + 1, 0, ny)),
            int(np.clip(np.floor(centre_xy[0] - reach_px), 0, nx)),
            int(np.clip(np.ceil(centre_xy[0] + reach_px) + 1, 0, nx)),
        )
    maps = np.empty((4, ny, nx))
    for index, comp in enumerate((galaxy.bulge, galaxy.disc)):
        maps[2 * index], maps[2 * index + 1] = _component_maps(
            comp, galaxy=galaxy, shape=shape, pixel_scale=pixel_scale, centre_xy=centre_xy, box=box
        )
    return maps


def deprojected_radius_map(
    galaxy: GalaxyModel,
    *,
    shape: tuple[int, int],
    pixel_scale: float,
    centre_xy: tuple[float, float],
) -> NDArray[np.float64]:
    """Radius in the disc plane in units of the galaxy's R_e, per pixel (R / R_e)."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    major, minor = rotated_coordinates(ys, xs, centre_xy, galaxy.theta_deg)
    q = galaxy.disc.axis_ratio
    return np.sqrt(major**2 + (minor / q) ** 2) * pixel_scale / galaxy.re_arcsec


def label_maps(
    galaxy: GalaxyModel, maps: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Luminosity-weighted log age and [M/H] of light maps of shape (4, ...).

    Pixels without light get NaN.
    """
    maps = np.asarray(maps, dtype=np.float64)
    total = maps.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Offsets from the first population keep the labels exact when all are equal.
        ages, metals = galaxy.basis_log_ages, galaxy.basis_mh
        log_age = ages[0] + np.tensordot(ages - ages[0], maps, axes=(0, 0)) / total
        mh = metals[0] + np.tensordot(metals - metals[0], maps, axes=(0, 0)) / total
    bad = ~(total > 0)
    log_age[bad] = np.nan
    mh[bad] = np.nan
    return log_age, mh
