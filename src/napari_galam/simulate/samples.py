"""Single simulated objects for napari's sample data: an SDSS field, a CALIFA and a J-PAS cube.

Each function is deterministic for its seed and returns a frozen dataclass (arrays plus
truth) that the widget layer turns into layers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_galam.simulate.cubes import (
    IFUCube,
    NarrowBandCube,
    render_califa_cube,
    render_narrowband_cube,
)
from napari_galam.simulate.galaxy import draw_galaxy
from napari_galam.simulate.imaging import Cutout, Neighbour, Star, render_cutout
from napari_galam.simulate.populations import default_library

__all__ = ["simulated_sdss_field", "simulated_califa_cube", "simulated_jpas_cube"]


def simulated_sdss_field(
    seed: int = 0, *, shape: tuple[int, int] = (512, 512), n_galaxies: int = 15, n_stars: int = 6
) -> Cutout:
    """An SDSS-like gri field (0.396"/px) with ``n_galaxies`` galaxies, some blended, and stars.

    Returns a :class:`~napari_galam.simulate.imaging.Cutout`: ``rgb`` (ny, nx, 3) uint8,
    ``images`` (3, ny, nx) g, r, i nanomaggies, and ``truth`` (segmentation, the table of
    sources with positions and blend flags; the "target" is simply the first galaxy).
    """
    rng = np.random.default_rng(seed)
    library = default_library()
    ny, nx = shape
    scale = 0.396
    galaxies = [draw_galaxy(rng, library=library) for _ in range(n_galaxies)]
    # Brighten a little: a field shows the whole SDSS magnitude range, not only r < 17.77.
    galaxies = [
        dataclasses.replace(g, mag_r=float(g.mag_r - rng.uniform(0.0, 1.5))) for g in galaxies
    ]
    positions = [(rng.uniform(0.1, 0.9) * nx, rng.uniform(0.1, 0.9) * ny) for _ in galaxies]
    # Make every third galaxy the close companion of the previous one: true blends.
    for index in range(2, n_galaxies, 3):
        x0, y0 = positions[index - 1]
        reach = (galaxies[index].re_arcsec + galaxies[index - 1].re_arcsec) / scale
        angle = rng.uniform(0.0, 2 * np.pi)
        distance = max(rng.uniform(1.0, 2.0) * reach, 8.0)
        positions[index] = (x0 + distance * np.cos(angle), y0 + distance * np.sin(angle))
    target = galaxies[0]
    tx, ty = positions[0]
    offset = (tx - (nx - 1) / 2.0, ty - (ny - 1) / 2.0)
    neighbours = tuple(
        Neighbour(
            g,
            float(np.hypot(x - tx, y - ty) * scale),
            float(np.degrees(np.arctan2(y - ty, x - tx))),
        )
        for g, (x, y) in zip(galaxies[1:], positions[1:], strict=True)
    )
    stars = tuple(
        Star(
            float(rng.uniform(0, nx - 1)),
            float(rng.uniform(0, ny - 1)),
            float(rng.uniform(14, 20)),
            float(rng.uniform(3500, 9000)),
        )
        for _ in range(n_stars)
    )
    return render_cutout(
        target,
        rng=rng,
        library=library,
        neighbours=neighbours,
        stars=stars,
        shape=shape,
        centre_offset_px=offset,
        psf_fwhm_arcsec=1.4,
    )


def simulated_califa_cube(
    seed: int = 0, *, family: str = "bulge-disc", emission: bool = False
) -> IFUCube:
    """A CALIFA V500-like cube (1877 x 73 x 78) of a random CALIFA-like galaxy, with truth.

    ``family``: the galaxy's star-formation-history family
    (:mod:`napari_galam.simulate.families`); ``emission``: nebular emission lines spaxel
    by spaxel (:mod:`napari_galam.simulate.cube_emission`; the truth stays stellar).
    """
    rng = np.random.default_rng(seed)
    library = default_library()
    galaxy = draw_galaxy(rng, survey="califa", library=library, family=family)
    return render_califa_cube(galaxy, rng=rng, library=library, snr_at_re=25.0, emission=emission)


def simulated_jpas_cube(seed: int = 0) -> NarrowBandCube:
    """A J-PAS-like 54-filter cube (54 x 96 x 96, 0.456"/px) of a CALIFA-like galaxy, with truth."""
    rng = np.random.default_rng(seed)
    library = default_library()
    galaxy = draw_galaxy(rng, survey="califa", library=library)
    # Keep the galaxy inside the 44" field.
    galaxy = dataclasses.replace(
        galaxy,
        bulge=dataclasses.replace(galaxy.bulge, re_arcsec=min(galaxy.bulge.re_arcsec, 6.0)),
        disc=dataclasses.replace(galaxy.disc, re_arcsec=min(galaxy.disc.re_arcsec, 9.0)),
    )
    return render_narrowband_cube(galaxy, rng=rng, library=library, snr_at_re=25.0)
