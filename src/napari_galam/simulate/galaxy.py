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
from scipy.special import gammainc, gammaincinv

from napari_galam.errors import GalamInputError
from napari_galam.simulate.families import SFH_FAMILIES, draw_family_populations
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
    family
        The star-formation-history family the populations were drawn from
        (:data:`napari_galam.simulate.families.SFH_FAMILIES`).
    young_dust
        Extra attenuation of young light: each basis population's E(B-V) is its
        component's times ``1 + young_dust * y``, with ``y`` = 1 for a light-weighted age
        of 100 Myr or less falling linearly to 0 at 1 Gyr (stars still near their
        birth clouds are dustier).
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
    family: str = "bulge-disc"
    young_dust: float = 0.0
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
        if not self.young_dust >= 0:
            raise GalamInputError(f"young_dust: expected >= 0, got {self.young_dust}")
        if self.bulge.light_fraction + self.disc.light_fraction <= 0:
            raise GalamInputError("bulge and disc light fractions cannot both be 0")
        object.__setattr__(self, "re_arcsec", _half_light_radius(self.bulge, self.disc))

    @property
    def populations(self) -> tuple[StellarPopulation, ...]:
        """The four basis populations: bulge inner, bulge outer, disc inner, disc outer."""
        return (self.bulge.inner, self.bulge.outer, self.disc.inner, self.disc.outer)

    @property
    def ebv(self) -> tuple[float, ...]:
        """E(B-V) of each basis population (more for young ones, see ``young_dust``)."""
        screens = (self.bulge.ebv, self.bulge.ebv, self.disc.ebv, self.disc.ebv)
        if self.young_dust == 0:
            return screens
        youth = [float(np.clip((9.0 - p.log_age) / 1.0, 0.0, 1.0)) for p in self.populations]
        return tuple(e * (1.0 + self.young_dust * y) for e, y in zip(screens, youth, strict=True))

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
    family: str = "bulge-disc",
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
        training set with a broad share covers the whole SSP grid. ``bulge-disc`` only.
    family
        The star-formation-history family of the populations
        (:mod:`napari_galam.simulate.families`). ``"bulge-disc"`` is the original recipe
        (same draws for a seed as before families existed); the history families draw
        their four populations from parametric histories with enrichment, gradients of
        either sign, velocity dispersions uniform in 0-350 km/s and extra dust on young
        light (``young_dust`` uniform in 0-1).
    """
    _check_draw_options(rng, survey, nearby_fraction, broad_populations)
    if family not in SFH_FAMILIES:
        raise GalamInputError(f"family: expected one of {', '.join(SFH_FAMILIES)}, got {family!r}")
    library = default_library() if library is None else library
    z, mag_r, absolute = _draw_redshift_and_magnitudes(rng, survey, nearby_fraction)
    mass = float(np.clip((-absolute - 17.5) / 6.0, 0.0, 1.0))
    early = rng.random() < 0.15 + 0.55 * mass
    bulge_fraction = float(rng.uniform(0.55, 0.95) if early else rng.uniform(0.0, 0.4))
    inclination = float(np.degrees(np.arccos(rng.uniform(np.cos(np.radians(85.0)), 1.0))))
    if survey == "califa":
        inclination = min(inclination, 80.0)
    disc_re, bulge_re = _draw_effective_radii(rng, survey, z, absolute, early)
    mixing_radius = 2.0
    young_dust = 0.0
    if family == "bulge-disc":
        sigma = float(
            np.clip(10 ** (1.7 + 0.5 * mass + 0.2 * bulge_fraction + rng.normal(0, 0.05)), 30, 350)
        )
        populations = _draw_component_populations(
            rng, library, mass, early, broad_populations, mixing_radius
        )
    else:
        sigma = float(rng.uniform(0.0, 350.0))
        populations = draw_family_populations(rng, library, family, early=early)
        young_dust = float(rng.uniform(0.0, 1.0)) if dust else 0.0
    bulge, disc = _draw_components(
        rng, early, bulge_fraction, inclination, (bulge_re, disc_re), populations, dust=dust
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
        family=family,
        young_dust=young_dust,
    )


def _draw_components(
    rng: np.random.Generator,
    early: bool,
    bulge_fraction: float,
    inclination: float,
    radii: tuple[float, float],
    populations: tuple[StellarPopulation, ...],
    *,
    dust: bool,
) -> tuple[SersicComponent, SersicComponent]:
    """The bulge and the disc: dust screens, Sersic index and shape of the bulge.

    ``radii``: the bulge's and the disc's effective radii (arcsec); ``populations``: as
    :func:`_draw_component_populations` returns them.
    """
    bulge_re, disc_re = radii
    ebv_disc = (
        float(min(rng.exponential(0.1) * (1.0 + 1.0 - np.cos(np.radians(inclination))), 0.5))
        if dust
        else 0.0
    )
    bulge = SersicComponent(
        sersic_n=float(rng.uniform(2.5, 5.0) if early else rng.uniform(1.5, 4.0)),
        re_arcsec=bulge_re,
        axis_ratio=float(rng.uniform(0.6, 1.0)),
        light_fraction=bulge_fraction,
        inner=populations[0],
        outer=populations[1],
        ebv=float(0.3 * ebv_disc),
    )
    disc = SersicComponent(
        sersic_n=1.0,
        re_arcsec=disc_re,
        axis_ratio=disc_axis_ratio(inclination),
        light_fraction=1.0 - bulge_fraction,
        inner=populations[2],
        outer=populations[3],
        ebv=ebv_disc,
    )
    return bulge, disc


def _check_draw_options(
    rng: Any, survey: str, nearby_fraction: float, broad_populations: float
) -> None:
    """Refuse options :func:`draw_galaxy` cannot draw with."""
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


def _draw_effective_radii(
    rng: np.random.Generator, survey: str, z: float, absolute: float, early: bool
) -> tuple[float, float]:
    """The disc's and the bulge's effective radii in arcsec (CALIFA: filling its field)."""
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
    return disc_re, bulge_re


def _draw_component_populations(
    rng: np.random.Generator,
    library: Any,
    mass: float,
    early: bool,
    broad_populations: float,
    mixing_radius: float,
) -> tuple[StellarPopulation, StellarPopulation, StellarPopulation, StellarPopulation]:
    """The bulge's inner and outer, then the disc's inner and outer stellar populations.

    From the mass-dependent relations, or (with probability ``broad_populations``) from
    one age and [M/H] for the galaxy drawn uniformly over the SSP grid.
    """
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
    return bulge_inner, bulge_outer, disc_inner, disc_outer
