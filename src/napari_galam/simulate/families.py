"""Star-formation-history families: the recipes the synthetic universe draws galaxies from.

A *family* is a way of making a galaxy's stellar populations. The networks are judged on a
family they never saw (``scripts/leave_one_family_out.py``), so each family must be a
different recipe, not a different seed:

``bulge-disc``
    The original recipe (:func:`napari_galam.simulate.galaxy.draw_galaxy`): each
    population a Gaussian in log age with a fixed age-metallicity slope, ages and [M/H]
    from mass-dependent relations, gradients mostly negative.
``exponential``
    Star formation that starts at a formation time and declines as exp(-t / tau).
``delayed``
    Delayed-tau: SFR proportional to t exp(-t / tau), which rises before it declines.
``bursty``
    Constant star formation with one to three bursts of any strength at any time.
``quenched``
    An exponential or delayed history truncated at a quenching time (nothing formed
    since, or a fast e-folding decline).

In every family except ``bulge-disc`` the metallicity of newly formed stars rises with
the mass already formed (chemical enrichment: [M/H] = start + rise x f^p, with f the
fraction of the final mass formed so far), and a galaxy's inner and outer populations are
drawn with their own parameters, so radial gradients take either sign and reach the
grid's edges.

The mass formed in each time step is put into the E-MILES grid cell of its age (lookback
time) and shared linearly between the two grid metallicities around its [M/H], so every
population is an exact mixture of the grid's SSPs and its light-weighted labels
(:func:`napari_galam.simulate.populations.population_from_weights`) are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.simulate.populations import StellarPopulation, population_from_weights

__all__ = [
    "SFH_FAMILIES",
    "HISTORY_FAMILIES",
    "StarFormationHistory",
    "parse_families",
    "history_weights",
    "history_population",
    "draw_history",
    "draw_family_populations",
]

#: Every family, in the order their index is stored with the truth (``truth/family``).
SFH_FAMILIES: tuple[str, ...] = ("bulge-disc", "exponential", "delayed", "bursty", "quenched")
#: The families made from parametric star-formation histories.
HISTORY_FAMILIES: tuple[str, ...] = SFH_FAMILIES[1:]

#: Lookback time (Gyr) at which the oldest stars may form (the Universe's age, rounded).
MAX_LOOKBACK_GYR = 13.5
#: Time steps of the integration over lookback time (log-spaced).
_N_STEPS = 600


def parse_families(value: str | Sequence[str]) -> tuple[str, ...]:
    """Families from ``"all"``, one name, a comma-separated list, or a sequence of names."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [name.strip() for name in names if name.strip()]
    if names == ["all"]:
        return SFH_FAMILIES
    unknown = [name for name in names if name not in SFH_FAMILIES]
    if unknown or not names:
        raise GalamInputError(
            f"family: unknown {', '.join(map(repr, unknown)) or 'empty list'}; expected 'all' "
            f"or names from {', '.join(SFH_FAMILIES)}"
        )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class StarFormationHistory:
    """A parametric star-formation and enrichment history.

    Times are lookback times in Gyr. ``kind`` is one of :data:`HISTORY_FAMILIES`.

    Attributes
    ----------
    kind
        The family.
    formation_gyr
        When star formation began (lookback, <= :data:`MAX_LOOKBACK_GYR`).
    tau_gyr
        e-folding time of the exponential and delayed shapes (and of ``quenched``'s).
    delayed
        ``quenched`` only: the shape before quenching is delayed-tau (else exponential).
    quench_gyr
        ``quenched`` only: lookback time of quenching; after it the SFR declines with
        e-folding time ``quench_tau_gyr`` (0: stops at once).
    quench_tau_gyr
        See ``quench_gyr``.
    bursts
        ``bursty`` only: (lookback Gyr, share of the total mass, width Gyr) of each burst.
    mh_start, mh_rise, enrichment_power
        [M/H] of stars formed when a fraction f of the final mass exists is
        ``mh_start + mh_rise * f ** enrichment_power``.
    """

    kind: str
    formation_gyr: float
    tau_gyr: float
    mh_start: float
    mh_rise: float
    enrichment_power: float = 0.5
    delayed: bool = False
    quench_gyr: float = 0.0
    quench_tau_gyr: float = 0.0
    bursts: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in HISTORY_FAMILIES:
            raise GalamInputError(
                f"kind: expected one of {', '.join(HISTORY_FAMILIES)}, got {self.kind!r}"
            )
        if not 0.0 < self.formation_gyr <= MAX_LOOKBACK_GYR:
            raise GalamInputError(
                f"formation_gyr: expected 0 < t <= {MAX_LOOKBACK_GYR} Gyr, got {self.formation_gyr}"
            )
        if not self.tau_gyr > 0:
            raise GalamInputError(f"tau_gyr: expected > 0 Gyr, got {self.tau_gyr}")
        if not self.mh_rise >= 0 or not self.enrichment_power > 0:
            raise GalamInputError("mh_rise must be >= 0 and enrichment_power > 0")
        for when, share, width in self.bursts:
            if not (0 < when <= MAX_LOOKBACK_GYR and share >= 0 and width > 0):
                raise GalamInputError(f"bursts: bad burst {(when, share, width)}")

    def star_formation_rate(self, lookback_gyr: NDArray[np.float64]) -> NDArray[np.float64]:
        """Relative SFR at lookback times (zero before formation)."""
        since = np.clip(self.formation_gyr - lookback_gyr, 0.0, None)
        active = lookback_gyr <= self.formation_gyr
        delayed = self.kind == "delayed" or (self.kind == "quenched" and self.delayed)
        if self.kind == "bursty":
            return active.astype(np.float64)  # bursts are added as mass, see history_weights
        rate = np.exp(-since / self.tau_gyr) * (since / self.tau_gyr if delayed else 1.0)
        if self.kind == "quenched":
            after = lookback_gyr < self.quench_gyr
            elapsed = self.quench_gyr - lookback_gyr
            decline = np.exp(-elapsed / self.quench_tau_gyr) if self.quench_tau_gyr > 0 else 0.0
            rate = np.where(after, rate * decline, rate)
        return np.where(active, rate, 0.0)


def _time_steps() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lookback times (Gyr) and their widths, log-spaced from 10 Myr to the oldest stars."""
    edges = np.geomspace(0.01, MAX_LOOKBACK_GYR, _N_STEPS + 1)
    return np.sqrt(edges[1:] * edges[:-1]), np.diff(edges)


def _step_masses(history: StarFormationHistory) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mass formed in each time step and the lookback time of each step."""
    times, widths = _time_steps()
    mass = history.star_formation_rate(times) * widths
    if history.kind == "bursty" and history.bursts:
        base = mass.sum()
        extra = np.zeros_like(mass)
        for when, share, width in history.bursts:
            profile = np.exp(-0.5 * ((times - when) / width) ** 2) * widths
            if profile.sum() <= 0:
                continue
            # ``share`` of the final mass: burst mass / (base + bursts) summed = share.
            extra += share * profile / profile.sum()
        total_share = float(sum(share for _, share, _ in history.bursts))
        if base > 0 and total_share < 1:
            mass = mass / base * (1.0 - total_share) + extra
        else:
            mass = extra
    return mass, times


def history_weights(library: Any, history: StarFormationHistory) -> NDArray[np.float64]:
    """Mass weights (n_ages, n_metals) of a history on the SSP grid (unnormalised).

    Each time step's mass goes to the grid age nearest in log age (steps younger than the
    grid's youngest SSP go to it) and is shared linearly between the two grid
    metallicities around the enrichment history's [M/H] at that time (clipped to the grid).
    """
    mass, times = _step_masses(history)
    if not np.any(mass > 0):
        raise GalamInputError(f"history {history.kind}: no stars formed")
    log_ages = np.asarray(library.log_ages, dtype=np.float64)
    metals = np.asarray(library.metals, dtype=np.float64)
    # Fraction of the final mass formed at each step: oldest first in formation order.
    order = np.argsort(-times)
    formed = np.empty_like(mass)
    cumulative = np.cumsum(mass[order])
    formed[order] = (cumulative - 0.5 * mass[order]) / cumulative[-1]
    mh = history.mh_start + history.mh_rise * formed**history.enrichment_power
    mh = np.clip(mh, metals[0], metals[-1])
    log_t = np.log10(times * 1e9)
    midpoints = 0.5 * (log_ages[1:] + log_ages[:-1])
    age_index = np.searchsorted(midpoints, log_t)
    upper = np.clip(np.searchsorted(metals, mh, side="right"), 1, metals.size - 1)
    lower = upper - 1
    frac_upper = (mh - metals[lower]) / (metals[upper] - metals[lower])
    weights = np.zeros((log_ages.size, metals.size))
    np.add.at(weights, (age_index, lower), mass * (1.0 - frac_upper))
    np.add.at(weights, (age_index, upper), mass * frac_upper)
    return weights


def history_population(library: Any, history: StarFormationHistory) -> StellarPopulation:
    """The population a history makes, with its exact light-weighted labels."""
    return population_from_weights(library, history_weights(library, history))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def draw_history(
    rng: np.random.Generator,
    family: str,
    *,
    formation_range_gyr: tuple[float, float] = (0.1, MAX_LOOKBACK_GYR),
    mh_final_range: tuple[float, float] = (-1.3, 0.5),
) -> StarFormationHistory:
    """A random history of ``family`` (one of :data:`HISTORY_FAMILIES`).

    Formation times are log-uniform in ``formation_range_gyr``; tau log-uniform in
    0.1-20 Gyr (long tau: nearly constant); the final [M/H] uniform in
    ``mh_final_range`` (values above the grid's +0.22 saturate there, so metal-rich
    populations reach the grid's edge), reached from 0.05-0.8 dex below it.
    """
    if family not in HISTORY_FAMILIES:
        raise GalamInputError(
            f"family: expected one of {', '.join(HISTORY_FAMILIES)}, got {family!r}"
        )
    formation = _log_uniform(rng, *formation_range_gyr)
    tau = _log_uniform(rng, 0.1, 20.0)
    mh_final = float(rng.uniform(*mh_final_range))
    rise = float(rng.uniform(0.05, 0.8))
    options: dict[str, Any] = {}
    if family == "quenched":
        options = {
            "delayed": bool(rng.random() < 0.5),
            "quench_gyr": float(formation * rng.uniform(0.05, 0.9)),
            "quench_tau_gyr": 0.0 if rng.random() < 0.5 else _log_uniform(rng, 0.05, 1.0),
        }
    elif family == "bursty":
        n_bursts = int(rng.integers(1, 4))
        shares = 10 ** rng.uniform(-2.5, 0.0, size=n_bursts)
        shares = shares / max(1.0, shares.sum() / 0.95)  # leave some constant SFR
        options = {
            "bursts": tuple(
                (
                    _log_uniform(rng, 0.03, formation),
                    float(share),
                    _log_uniform(rng, 0.01, 0.3),
                )
                for share in shares
            )
        }
    return StarFormationHistory(
        kind=family,
        formation_gyr=formation,
        tau_gyr=tau,
        mh_start=mh_final - rise,
        mh_rise=rise,
        enrichment_power=float(rng.uniform(0.3, 1.5)),
        **options,
    )


def _outer_history(rng: np.random.Generator, inner: StarFormationHistory) -> StarFormationHistory:
    """The outer population's history: the inner one's, moved in time and metallicity.

    Formation time and tau move by up to a factor ~5 either way and the [M/H] scale by
    up to +-0.6 dex, so gradients take either sign and can reach the grid's edges.
    """
    formation = float(
        np.clip(inner.formation_gyr * 10 ** rng.normal(0.0, 0.35), 0.05, MAX_LOOKBACK_GYR)
    )
    scale = formation / inner.formation_gyr
    changes: dict[str, Any] = {
        "formation_gyr": formation,
        "tau_gyr": float(inner.tau_gyr * 10 ** rng.normal(0.0, 0.3)),
        "mh_start": float(inner.mh_start + rng.normal(0.0, 0.3)),
    }
    if inner.kind == "quenched":
        changes["quench_gyr"] = float(min(inner.quench_gyr * scale, 0.95 * formation))
    if inner.kind == "bursty":
        changes["bursts"] = tuple(
            (float(min(when * scale, formation)), share, width)
            for when, share, width in inner.bursts
        )
    fields = {**inner.__dict__, **changes}
    return StarFormationHistory(**fields)


def draw_family_populations(
    rng: np.random.Generator,
    library: Any,
    family: str,
    *,
    early: bool,
) -> tuple[StellarPopulation, StellarPopulation, StellarPopulation, StellarPopulation]:
    """Bulge inner and outer, disc inner and outer populations of a history family.

    The bulge tends to form earlier and end more metal-rich than the disc (formation
    log-uniform in 1-13.5 Gyr against 0.1-13.5, early types' discs from 1 Gyr too; final
    [M/H] from -0.6 against -1.2), but every population covers the grid: the family, not
    a mass relation, is what the draw is about.
    """
    populations: list[StellarPopulation] = []
    for component in ("bulge", "disc"):
        earliest = 1.0 if component == "bulge" or early else 0.1
        mh_final = (-0.6, 0.5) if component == "bulge" else (-1.2, 0.4)
        inner = draw_history(
            rng,
            family,
            formation_range_gyr=(earliest, MAX_LOOKBACK_GYR),
            mh_final_range=mh_final,
        )
        outer = _outer_history(rng, inner)
        populations.extend([history_population(library, inner), history_population(library, outer)])
    bulge_inner, bulge_outer, disc_inner, disc_outer = populations
    return bulge_inner, bulge_outer, disc_inner, disc_outer
