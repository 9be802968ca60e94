"""Spaxels of simulated survey cubes as training spectra for the per-spaxel spectral model.

:mod:`napari_galam.simulate.spaxel_spectra` makes spectra one at a time; a cube's spaxel
is something else: the PSF mixes the populations of neighbouring spaxels, its noise has
the layout's sky profile and dead pixels, its emission lines vary across the galaxy, and
its S/N falls with radius. :func:`cube_spaxel_set` draws galaxies as ``galam simulate
--kind cubes --layout L`` does (:func:`~napari_galam.simulate.galaxy.draw_galaxy`,
``survey="sdss"``, moved to a redshift at fixed physical size), renders each through one
survey layout (:func:`~napari_galam.simulate.survey_cubes.render_survey_cube`) and keeps
a random sample of its spaxels, turned into model inputs by the same code the maps use
(:func:`~napari_galam.core.spectral_input.spectral_inputs`); each spaxel's labels are the
cube's PSF-blurred truth maps there.

A family left out of ``families`` is never drawn, so a network trained on these spaxels
can still be judged on that family's cubes (leave one family out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.spectral_input import spectral_input_plan, spectral_inputs
from napari_galam.errors import GalamInputError
from napari_galam.simulate.datasets import galaxy_families, galaxy_rngs
from napari_galam.simulate.families import parse_families
from napari_galam.simulate.galaxy import draw_galaxy
from napari_galam.simulate.populations import default_library
from napari_galam.simulate.survey_cubes import (
    galaxy_at_redshift,
    render_survey_cube,
    survey_layout,
)

__all__ = ["CUBE_SPAXEL_KEYS", "TrainingCube", "cube_spaxel_set", "draw_training_cube"]

#: The arrays of a set, as the training script's spectrum sets have them.
CUBE_SPAXEL_KEYS = ("x", "y", "snr", "z", "sigma", "usable", "family", "lines", "spaxel")


@dataclass(frozen=True)
class TrainingCube:
    """One rendered cube and how it was drawn."""

    cube: Any
    family: str
    redshift: float
    lines: bool


def draw_training_cube(
    rng: np.random.Generator,
    layout: str,
    families: Sequence[str],
    *,
    library: Any,
    redshift_range: tuple[float, float],
    snr_range: tuple[float, float],
    emission_fraction: float,
) -> TrainingCube:
    """Draw a galaxy of one of ``families`` and render it through ``layout`` (see module)."""
    spec = survey_layout(layout)
    family = galaxy_families(rng, tuple(families))
    galaxy = draw_galaxy(rng, survey="sdss", library=library, family=family)
    redshift = float(rng.uniform(*redshift_range))
    lines = bool(rng.random() < emission_fraction)
    cube = render_survey_cube(
        galaxy_at_redshift(galaxy, redshift),
        layout=spec.name,
        rng=rng,
        library=library,
        psf_fwhm_arcsec=float(rng.uniform(*spec.psf_range)),
        snr_at_re=float(rng.uniform(*snr_range)),
        emission=lines,
    )
    return TrainingCube(cube, family, redshift, lines)


def cube_spaxel_set(
    layout: str,
    n_cubes: int,
    seed: int,
    *,
    families: str | Sequence[str] = "all",
    per_cube: int = 250,
    redshift_range: tuple[float, float] = (0.005, 0.2),
    snr_range: tuple[float, float] = (5.0, 40.0),
    emission_fraction: float = 0.5,
    min_snr: float = 3.0,
    library: Any = None,
) -> dict[str, NDArray[Any]]:
    """Model inputs and labels of up to ``per_cube`` spaxels from each of ``n_cubes`` cubes.

    Parameters
    ----------
    layout
        ``califa``, ``manga`` or ``muse``.
    n_cubes, seed
        How many galaxies (> 0) and the seed; galaxy ``i`` has the ``i``-th generator
        spawned from it, so a cube is the same whatever ``n_cubes``.
    families
        The star-formation-history families drawn from (uniformly per galaxy).
    per_cube
        Spaxels kept per cube, drawn uniformly from those the model can read at spectral
        S/N >= ``min_snr`` (fewer when a cube has fewer).
    redshift_range, snr_range
        Uniform ranges of the redshift and of the S/N per pixel at R_e.
    emission_fraction
        Share of the cubes rendered with nebular emission lines.

    Returns
    -------
    dict
        ``x`` (n, n_model, 2) float16 inputs, ``y`` (n, 2) log age and [M/H], ``snr``,
        ``z``, ``sigma`` (the galaxy's stellar dispersion), ``usable`` (all True),
        ``family``, ``lines`` and ``spaxel`` (cube index, y, x) per spaxel, and ``layout``.
    """
    if not isinstance(n_cubes, (int, np.integer)) or n_cubes < 1:
        raise GalamInputError(f"n_cubes: expected a positive number of cubes, got {n_cubes!r}")
    if per_cube < 1:
        raise GalamInputError(f"per_cube: expected a positive number of spaxels, got {per_cube!r}")
    spec = survey_layout(layout)
    drawn_from = parse_families(families)
    library = default_library() if library is None else library
    parts: dict[str, list[NDArray[Any]]] = {key: [] for key in CUBE_SPAXEL_KEYS}
    for index, rng in enumerate(galaxy_rngs(seed, int(n_cubes))):
        drawn = draw_training_cube(
            rng, spec.name, drawn_from, library=library, redshift_range=redshift_range,
            snr_range=snr_range, emission_fraction=emission_fraction,
        )  # fmt: skip
        kept = _sample_spaxels(drawn, rng, per_cube=per_cube, min_snr=min_snr)
        if kept is None:
            continue
        inputs, ys, xs = kept
        n = len(ys)
        truth = drawn.cube.truth
        parts["x"].append(inputs.x.astype(np.float16))
        parts["y"].append(np.stack([truth.log_age[ys, xs], truth.mh[ys, xs]], axis=1))
        parts["snr"].append(inputs.snr)
        parts["z"].append(np.full(n, drawn.redshift, np.float32))
        parts["sigma"].append(np.full(n, drawn.cube.galaxy.velocity_dispersion_kms, np.float32))
        parts["usable"].append(np.ones(n, bool))
        parts["family"].append(np.full(n, drawn.family))
        parts["lines"].append(np.full(n, drawn.lines))
        parts["spaxel"].append(np.stack([np.full(n, index), ys, xs], axis=1))
    if not parts["y"]:
        raise GalamInputError(f"{spec.name} cubes of seed {seed}: no spaxel could be read")
    out = {key: np.concatenate(value) for key, value in parts.items()}
    out["y"] = out["y"].astype(np.float32)
    out["layout"] = np.array([spec.name] * len(out["y"]))
    return out


def _sample_spaxels(
    drawn: TrainingCube, rng: np.random.Generator, *, per_cube: int, min_snr: float
) -> tuple[Any, NDArray[np.intp], NDArray[np.intp]] | None:
    """Inputs of a random sample of the readable spaxels of a cube and their positions."""
    cube, redshift = drawn.cube, drawn.redshift
    ys, xs = np.nonzero(cube.footprint & ~cube.bad.all(axis=0))
    if ys.size == 0:
        return None
    plan = spectral_input_plan(cube.wave, redshift=redshift, layout=cube.layout, medium=cube.medium)
    flux = np.asarray(cube.flux[:, ys, xs].T, dtype=np.float32)
    variance = np.asarray(cube.error[:, ys, xs].T, dtype=np.float32) ** 2
    mask = np.asarray(cube.bad[:, ys, xs].T)
    inputs = spectral_inputs(plan, flux, variance, mask)
    good = np.nonzero(inputs.usable & (np.nan_to_num(inputs.snr) >= min_snr))[0]
    if good.size == 0:
        return None
    chosen = np.sort(rng.choice(good, size=min(per_cube, good.size), replace=False))
    picked = type(inputs)(
        x=inputs.x[chosen],
        snr=inputs.snr[chosen],
        coverage=inputs.coverage[chosen],
        usable=inputs.usable[chosen],
    )
    return picked, ys[chosen], xs[chosen]
