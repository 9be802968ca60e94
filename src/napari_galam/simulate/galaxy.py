"""Galaxy models of the synthetic universe: a Sersic bulge and disc, each with its populations.

A :class:`GalaxyModel` holds the structure (Sersic bulge, exponential disc, inclination,
position angle, sizes), the redshift, total r magnitude, velocity dispersion, dust and
four stellar populations: an inner and an outer one for each component. Inside a
component the share of band light of the outer population grows linearly with radius,
from 0 at the centre to 1 at ``mixing_radius`` effective radii, so each component's
luminosity-weighted log age and [M/H] fall (or rise) linearly with radius with a known
gradient in dex per R_e. A pixel's labels are the light-weighted means of the four
populations' labels with its own mixture of light: exact.

Geometry conventions (pixel frame): ``x`` is the column, ``y`` the row, pixel centres at
integers; the position angle ``theta_deg`` of the major axis is measured from +x
towards +y. Sizes are semi-major half-light radii in arcsec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.special import gamma, gammainc, gammaincinv

from napari_galam.errors import GalamInputError
from napari_galam.simulate.populations import (
    StellarPopulation,
    composite_population,
    default_library,
)

__all__ = [
    "SersicComponent",
    "GalaxyModel",
    "sersic_b",
    "disc_axis_ratio",
    "kpc_per_arcsec",
    "distance_modulus",
    "light_maps",
    "deprojected_radius_map",
    "label_maps",
    "draw_galaxy",
    "uniform_population_galaxy",
]

#: Intrinsic thickness (axis ratio seen edge-on) of discs.
DISC_THICKNESS: float = 0.15


def sersic_b(n: float) -> float:
    """The Sersic b_n, such that R_e encloses half of the light."""
    return float(gammaincinv(2.0 * n, 0.5))


def disc_axis_ratio(inclination_deg: float) -> float:
    """Projected axis ratio of a disc of thickness :data:`DISC_THICKNESS` at an inclination."""
    cos_i = np.cos(np.radians(inclination_deg))
    return float(np.sqrt(cos_i**2 * (1.0 - DISC_THICKNESS**2) + DISC_THICKNESS**2))


@dataclass(frozen=True)
class SersicComponent:
    """One light component (bulge or disc) with its inner and outer stellar populations.

    Attributes
    ----------
    sersic_n
        Sersic index (about 4 for a bulge, 1 for a disc).
    re_arcsec
        Semi-major half-light radius (arcsec).
    axis_ratio
        Projected minor/major axis ratio, 0 < q <= 1.
    light_fraction
        Share of the galaxy's intrinsic 5070-5950 A light, 0..1.
    inner, outer
        Populations at the centre and beyond ``mixing_radius`` R_e.
    ebv
        Stellar E(B-V) of the Calzetti screen in front of this component (mag).
    """

    sersic_n: float
    re_arcsec: float
    axis_ratio: float
    light_fraction: float
    inner: StellarPopulation
    outer: StellarPopulation
    ebv: float = 0.0

    def __post_init__(self) -> None:
        if not 0.3 <= self.sersic_n <= 8.0:
            raise GalamInputError(f"sersic_n: expected 0.3..8, got {self.sersic_n}")
        if not self.re_arcsec > 0:
            raise GalamInputError(
                f"re_arcsec: the effective radius must be > 0 arcsec, got {self.re_arcsec}"
            )
        if not 0 < self.axis_ratio <= 1:
            raise GalamInputError(f"axis_ratio: expected 0 < q <= 1, got {self.axis_ratio}")
        if not 0 <= self.light_fraction <= 1:
            raise GalamInputError(f"light_fraction: expected 0..1, got {self.light_fraction}")
        if not self.ebv >= 0:
            raise GalamInputError(f"ebv: expected E(B-V) >= 0 mag, got {self.ebv}")


def _half_light_radius(bulge: SersicComponent, disc: SersicComponent) -> float:
    components = [c for c in (bulge, disc) if c.light_fraction > 0]
    total = sum(c.light_fraction for c in components)

    def enclosed(radius: float) -> float:
        value = 0.0
        for c in components:
            b = sersic_b(c.sersic_n)
            x = b * (radius / c.re_arcsec) ** (1.0 / c.sersic_n)
            value += c.light_fraction * gammainc(2.0 * c.sersic_n, x)
        return value / total - 0.5

    lo = min(c.re_arcsec for c in components) * 0.99
    hi = max(c.re_arcsec for c in components) * 1.01
    return float(brentq(enclosed, lo, hi, xtol=1e-10))


@dataclass(frozen=True)
class GalaxyModel:
    """A synthetic galaxy: structure, populations, kinematics, dust and distance.

    Attributes
    ----------
    redshift
        Cosmological redshift, > 0.
    mag_r
        Total AB magnitude in SDSS r.
    theta_deg
        Position angle of the major axis in the pixel frame (from +x towards +y).
    inclination_deg
        Disc inclination (0 face-on, 90 edge-on); sets the disc's axis ratio.
    bulge, disc
        The two light components.
    velocity_dispersion_kms
        Stellar velocity dispersion (Gaussian LOSVD), km/s.
    mixing_radius
        R/R_e at which each component's outer population has taken over all the light.
    re_arcsec
        Half-light semi-major radius of the whole galaxy (computed).
    """

    redshift: float
    mag_r: float
    theta_deg: float
    inclination_deg: float
    bulge: SersicComponent
    disc: SersicComponent
    velocity_dispersion_kms: float
    mixing_radius: float = 2.0
    re_arcsec: float = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.redshift <= 1.0:
            raise GalamInputError(f"redshift: expected 0 < z <= 1, got {self.redshift}")
        if not np.isfinite(self.mag_r):
            raise GalamInputError(f"mag_r: expected a finite magnitude, got {self.mag_r}")
        if not 0 <= self.inclination_deg <= 90:
            raise GalamInputError(
                f"inclination_deg: expected 0..90 degrees, got {self.inclination_deg}"
            )
        if not self.velocity_dispersion_kms >= 0:
            raise GalamInputError(
                f"velocity_dispersion_kms: expected >= 0, got {self.velocity_dispersion_kms}"
            )
        if not self.mixing_radius > 0:
            raise GalamInputError(f"mixing_radius: expected > 0, got {self.mixing_radius}")
        if self.bulge.light_fraction + self.disc.light_fraction <= 0:
            raise GalamInputError("bulge and disc light fractions cannot both be 0")
        object.__setattr__(self, "re_arcsec", _half_light_radius(self.bulge, self.disc))

    @property
    def populations(self) -> tuple[StellarPopulation, ...]:
        """The four basis populations: bulge inner, bulge outer, disc inner, disc outer."""
        return (self.bulge.inner, self.bulge.outer, self.disc.inner, self.disc.outer)

    @property
    def ebv(self) -> tuple[float, ...]:
        """E(B-V) of each basis population."""
        return (self.bulge.ebv, self.bulge.ebv, self.disc.ebv, self.disc.ebv)

    @property
    def basis_log_ages(self) -> NDArray[np.float64]:
        """Luminosity-weighted log age of each basis population."""
        return np.array([p.log_age for p in self.populations])

    @property
    def basis_mh(self) -> NDArray[np.float64]:
        """Luminosity-weighted [M/H] of each basis population."""
        return np.array([p.mh for p in self.populations])

    def component_gradients(self) -> dict[str, float]:
        """Designed gradients (dex per R_e) of each component's log age and [M/H]."""
        out = {}
        for name, comp in (("bulge", self.bulge), ("disc", self.disc)):
            out[f"{name}_log_age"] = (comp.outer.log_age - comp.inner.log_age) / self.mixing_radius
            out[f"{name}_mh"] = (comp.outer.mh - comp.inner.mh) / self.mixing_radius
        return out

    def total_basis_light(self) -> NDArray[np.float64]:
        """Share of the galaxy's band light carried by each basis population (sums to 1)."""
        shares = []
        for comp in (self.bulge, self.disc):
            if comp.light_fraction == 0:
                shares.extend([0.0, 0.0])
                continue
            b = sersic_b(comp.sersic_n)
            radius = np.linspace(0.0, self.mixing_radius * self.re_arcsec, 4001)
            enclosed = gammainc(
                2 * comp.sersic_n, b * (radius / comp.re_arcsec) ** (1 / comp.sersic_n)
            )
            # outer share = integral of (r / r_mix) dG(r) up to r_mix, plus everything beyond.
            fraction = radius / radius[-1]
            inside = np.sum(0.5 * (fraction[1:] + fraction[:-1]) * np.diff(enclosed))
            outer = inside + (1.0 - enclosed[-1])
            shares.extend([comp.light_fraction * (1 - outer), comp.light_fraction * outer])
        shares_array = np.array(shares)
        return shares_array / shares_array.sum()


@lru_cache(maxsize=4)
def _cosmology_tables() -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    from astropy.cosmology import Planck18

    z = np.geomspace(1e-4, 1.0, 600)
    scale = Planck18.angular_diameter_distance(z).to_value("kpc") * np.pi / (180 * 3600)
    modulus = Planck18.distmod(z).value
    return z, scale, modulus


def kpc_per_arcsec(redshift: float | NDArray[np.floating]) -> NDArray[np.float64]:
    """Proper kpc per arcsec at a redshift (Planck 2018 cosmology, tabulated)."""
    z, scale, _ = _cosmology_tables()
    return np.interp(np.log(redshift), np.log(z), scale)


def distance_modulus(redshift: float | NDArray[np.floating]) -> NDArray[np.float64]:
    """Distance modulus (mag) at a redshift (Planck 2018 cosmology, tabulated)."""
    z, _, modulus = _cosmology_tables()
    return np.interp(np.log(redshift), np.log(z), modulus)


def _rotated_coordinates(
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
        major, minor = _rotated_coordinates(ys[:, None], xs[None, :], centre_xy, galaxy.theta_deg)
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
    major, minor = _rotated_coordinates(ys, xs, centre_xy, galaxy.theta_deg)
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


def uniform_population_galaxy(
    population: StellarPopulation,
    *,
    redshift: float = 0.05,
    mag_r: float = 16.0,
    re_arcsec: float = 3.0,
    bulge_fraction: float = 0.5,
    theta_deg: float = 30.0,
    inclination_deg: float = 50.0,
    velocity_dispersion_kms: float = 150.0,
) -> GalaxyModel:
    """A galaxy made of one population everywhere (for example a single SSP).

    Its labels everywhere, and in any aperture, are the population's own.
    """
    bulge = SersicComponent(
        sersic_n=4.0,
        re_arcsec=0.5 * re_arcsec,
        axis_ratio=0.8,
        light_fraction=bulge_fraction,
        inner=population,
        outer=population,
    )
    disc = SersicComponent(
        sersic_n=1.0,
        re_arcsec=re_arcsec,
        axis_ratio=disc_axis_ratio(inclination_deg),
        light_fraction=1.0 - bulge_fraction,
        inner=population,
        outer=population,
    )
    return GalaxyModel(
        redshift=redshift,
        mag_r=mag_r,
        theta_deg=theta_deg,
        inclination_deg=inclination_deg,
        bulge=bulge,
        disc=disc,
        velocity_dispersion_kms=velocity_dispersion_kms,
    )


#: Parameter ranges of :func:`draw_galaxy`, recorded in dataset cards.
PARAMETER_RANGES: dict[str, dict[str, Any]] = {
    "sdss": {
        "redshift": [0.002, 0.3],
        "mag_r": [13.0, 17.77],
        "absolute_mag_r": [-23.5, -17.5],
        "nearby": "with probability nearby_fraction: z log-uniform 0.002-0.02, M_r -22..-16, r 10-17.77",
        "broad_populations": "with that probability: galaxy log age U(7.9, 10.25), [M/H] U(-1.0, 0.22)",
        "bulge_fraction": [0.0, 0.95],
        "inclination_deg": [0.0, 85.0],
        "velocity_dispersion_kms": [30.0, 350.0],
        "ebv_disc": [0.0, 0.5],
        "log_age_gradient_dex_per_re": "component gradients ~ N(-0.05..-0.12, 0.06..0.1)",
        "mh_gradient_dex_per_re": "component gradients ~ N(-0.10..-0.15, 0.08)",
    },
    "califa": {
        "redshift": [0.005, 0.03],
        "absolute_mag_r": [-23.5, -19.0],
        "re_arcsec": [4.0, 22.0],
        "bulge_fraction": [0.0, 0.95],
        "inclination_deg": [0.0, 80.0],
        "velocity_dispersion_kms": [30.0, 350.0],
        "ebv_disc": [0.0, 0.5],
    },
}


def _draw_redshift_and_magnitudes(
    rng: np.random.Generator, survey: str, nearby_fraction: float = 0.0
) -> tuple[float, float, float]:
    if survey == "sdss" and nearby_fraction > 0 and rng.random() < nearby_fraction:
        # The nearby, bright end of SDSS (NGC galaxies, dwarfs): z log-uniform in
        # 0.002-0.02, M_r from -16, r from 10 (the pipeline's bright limit).
        for _ in range(10000):
            z = float(np.exp(rng.uniform(np.log(0.002), np.log(0.02))))
            absolute = float(rng.uniform(-22.0, -16.0))
            apparent = absolute + float(distance_modulus(z))
            if 10.0 <= apparent <= 17.77:
                return z, apparent, absolute
        raise RuntimeError("could not draw a nearby SDSS galaxy")  # pragma: no cover
    if survey == "sdss":
        for _ in range(10000):
            z = float(rng.gamma(3.0, 0.035))
            if not 0.002 <= z <= 0.3:
                continue
            absolute = float(rng.uniform(-23.5, -17.5))
            apparent = absolute + float(distance_modulus(z))
            if 13.0 <= apparent <= 17.77:
                return z, apparent, absolute
        raise RuntimeError("could not draw an SDSS-like redshift and magnitude")  # pragma: no cover
    z = float(rng.uniform(0.005, 0.03))
    absolute = float(rng.uniform(-23.5, -19.0))
    return z, absolute + float(distance_modulus(z)), absolute


def draw_galaxy(
    rng: np.random.Generator,
    *,
    survey: Literal["sdss", "califa"] = "sdss",
    library: Any = None,
    dust: bool = True,
    nearby_fraction: float = 0.0,
    broad_populations: float = 0.0,
) -> GalaxyModel:
    """Draw a random, realistic galaxy.

    Brighter galaxies are more often bulge-dominated, older, more metal-rich, larger and
    have higher velocity dispersions; discs are younger than bulges; component gradients
    are mostly negative, with scatter (see :data:`PARAMETER_RANGES`).

    Parameters
    ----------
    rng
        The random generator (the only source of randomness).
    survey
        ``"sdss"``: 0.002 <= z <= 0.3 and r <= 17.77 (the SDSS main sample);
        ``"califa"``: 0.005 <= z <= 0.03 and R_e of 4-22 arcsec.
    library
        SSP library; default :func:`napari_galam.simulate.populations.default_library`.
    dust
        Put a Calzetti screen in front of the disc (and a thinner one in front of the bulge).
    nearby_fraction
        ``"sdss"`` only: the share of galaxies drawn from the nearby, bright end of the
        survey instead (0.002 <= z < 0.02, M_r down to -16, r from 10). A magnitude-limited
        draw puts almost none there (~1%), yet the real spectra that ship with pPXF
        (NGC 3073, NGC 3522, NGC 4636: z ~ 0.003-0.004) are such galaxies; in the
        observed frame the network must have seen their redshift to read them.
    broad_populations
        The share of galaxies whose stellar populations are drawn uniformly over the grid
        instead of from the mass-dependent relations: one log age uniform in 7.9-10.25
        and one [M/H] uniform in -1.0..+0.22 for the galaxy (the disc up to 0.3 dex
        younger, narrower age spreads). The relations put under 1% of fibre labels below log
        age 8.75 or above 10.05, so a network trained on them alone pulls a young
        star-forming dwarf or an old, metal-rich elliptical towards the middle; a
        training set with a broad share covers the whole SSP grid.
    """
    if not 0.0 <= nearby_fraction <= 1.0:
        raise GalamInputError(f"nearby_fraction: expected 0..1, got {nearby_fraction}")
    if not 0.0 <= broad_populations <= 1.0:
        raise GalamInputError(f"broad_populations: expected 0..1, got {broad_populations}")
    if survey not in ("sdss", "califa"):
        raise GalamInputError(f"survey: expected 'sdss' or 'califa', got {survey!r}")
    if not isinstance(rng, np.random.Generator):
        raise GalamInputError(
            "rng: expected a numpy.random.Generator (np.random.default_rng(seed))"
        )
    library = default_library() if library is None else library
    z, mag_r, absolute = _draw_redshift_and_magnitudes(rng, survey, nearby_fraction)
    mass = float(np.clip((-absolute - 17.5) / 6.0, 0.0, 1.0))
    early = rng.random() < 0.15 + 0.55 * mass
    bulge_fraction = float(rng.uniform(0.55, 0.95) if early else rng.uniform(0.0, 0.4))
    inclination = float(np.degrees(np.arccos(rng.uniform(np.cos(np.radians(85.0)), 1.0))))
    if survey == "califa":
        inclination = min(inclination, 80.0)
    disc_re_kpc = 10 ** (0.55 + 0.16 * (-absolute - 21.0) + rng.normal(0.0, 0.12))
    bulge_re_kpc = disc_re_kpc * float(rng.uniform(0.35, 0.8) if early else rng.uniform(0.12, 0.45))
    scale = float(kpc_per_arcsec(z))
    disc_re = disc_re_kpc / scale
    bulge_re = bulge_re_kpc / scale
    if survey == "califa":
        # CALIFA selects galaxies that fill the 74" x 64" field of view.
        target = float(rng.uniform(4.0, 22.0))
        ratio = target / (0.5 * (disc_re + bulge_re))
        disc_re, bulge_re = disc_re * ratio, bulge_re * ratio
    sigma = float(
        np.clip(10 ** (1.7 + 0.5 * mass + 0.2 * bulge_fraction + rng.normal(0, 0.05)), 30, 350)
    )
    mixing_radius = 2.0
    broad = broad_populations > 0 and rng.random() < broad_populations
    age_range, mh_max = ((7.9, 10.25), 0.22) if broad else ((8.4, 10.15), 0.2)
    if broad:
        base_age, base_mh = float(rng.uniform(7.9, 10.25)), float(rng.uniform(-1.0, 0.22))

    def populations(
        log_age: float, mh: float, age_gradient: float, mh_gradient: float, spread: float
    ) -> tuple[StellarPopulation, StellarPopulation]:
        slope = float(rng.uniform(-0.4, -0.1))
        if broad:
            # One age and [M/H] for the galaxy; the disc a little younger than the bulge.
            is_disc = spread >= 0.2  # the disc's spreads are drawn from 0.2-0.45
            log_age = base_age - (float(rng.uniform(0.0, 0.3)) if is_disc else 0.0)
            mh = base_mh + float(rng.normal(0.0, 0.05))
            spread = min(spread, 0.15)
        inner_age = float(np.clip(log_age, *age_range))
        inner_mh = float(np.clip(mh, -1.4, mh_max))
        outer_age = float(
            np.clip(inner_age + age_gradient * mixing_radius, age_range[0] - 0.1, age_range[1])
        )
        outer_mh = float(np.clip(inner_mh + mh_gradient * mixing_radius, -1.5, mh_max))
        inner = composite_population(
            library, log_age=inner_age, mh=inner_mh, log_age_spread=spread, enrichment_slope=slope
        )
        outer = composite_population(
            library, log_age=outer_age, mh=outer_mh, log_age_spread=spread, enrichment_slope=slope
        )
        return inner, outer

    bulge_inner, bulge_outer = populations(
        9.75 + 0.3 * mass + rng.normal(0, 0.12),
        -0.3 + 0.45 * mass + rng.normal(0, 0.12),
        rng.normal(-0.05, 0.06),
        rng.normal(-0.15, 0.08),
        float(rng.uniform(0.08, 0.2)),
    )
    disc_inner, disc_outer = populations(
        (9.55 + 0.3 * mass if early else 8.9 + 0.5 * mass) + rng.normal(0, 0.2),
        -0.55 + 0.5 * mass + rng.normal(0, 0.15),
        rng.normal(-0.12, 0.1),
        rng.normal(-0.1, 0.08),
        float(rng.uniform(0.2, 0.45)),
    )
    ebv_disc = (
        float(min(rng.exponential(0.1) * (1.0 + 1.0 - np.cos(np.radians(inclination))), 0.5))
        if dust
        else 0.0
    )
    ebv_bulge = float(0.3 * ebv_disc)
    bulge = SersicComponent(
        sersic_n=float(rng.uniform(2.5, 5.0) if early else rng.uniform(1.5, 4.0)),
        re_arcsec=bulge_re,
        axis_ratio=float(rng.uniform(0.6, 1.0)),
        light_fraction=bulge_fraction,
        inner=bulge_inner,
        outer=bulge_outer,
        ebv=ebv_bulge,
    )
    disc = SersicComponent(
        sersic_n=1.0,
        re_arcsec=disc_re,
        axis_ratio=disc_axis_ratio(inclination),
        light_fraction=1.0 - bulge_fraction,
        inner=disc_inner,
        outer=disc_outer,
        ebv=ebv_disc,
    )
    return GalaxyModel(
        redshift=z,
        mag_r=mag_r,
        theta_deg=float(rng.uniform(0.0, 180.0)),
        inclination_deg=inclination,
        bulge=bulge,
        disc=disc,
        velocity_dispersion_kms=sigma,
        mixing_radius=mixing_radius,
    )
