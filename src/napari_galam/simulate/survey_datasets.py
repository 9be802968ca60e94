"""Folders of simulated CALIFA, MaNGA or MUSE cube files with a truth table.

:func:`iter_simulate_survey_cubes` draws ``n`` galaxies, moves each to its redshift (a
fixed value or uniform in a range, up to :data:`MAX_REDSHIFT`), renders it through one
survey layout (:func:`~napari_galam.simulate.survey_cubes.render_survey_cube`) and writes
it as ``<layout>_<seed>_<index>.fits``
(:func:`~napari_galam.simulate.writers.write_survey_cube`); then it writes
``<layout>_<seed>_truth.ecsv``, one row per file: the redshift, the designed and fitted
gradients, the galaxy's total labels, its size, the observation's PSF and S/N, and the
H-alpha equivalent width at R_e of the emission lines (0 unless ``emission``).

Galaxies are drawn with ``draw_galaxy(rng, survey="sdss")``, whose sizes follow the
size-luminosity relation in kpc (CALIFA's draw instead rescales them to fill its field),
then moved to their redshift at fixed physical size
(:func:`~napari_galam.simulate.survey_cubes.galaxy_at_redshift`). Each galaxy has its own
generator spawned from the seed, as in :mod:`napari_galam.simulate.datasets`, so a file
is the same for a seed whatever ``n``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from napari_galam import __version__
from napari_galam.errors import GalamInputError
from napari_galam.progress import Progress, ProgressGenerator
from napari_galam.simulate.datasets import galaxy_families, galaxy_rngs
from napari_galam.simulate.families import parse_families
from napari_galam.simulate.galaxy import GalaxyModel, draw_galaxy, kpc_per_arcsec
from napari_galam.simulate.populations import default_library
from napari_galam.simulate.survey_cubes import (
    SurveyCube,
    SurveyLayout,
    check_shape,
    galaxy_at_redshift,
    render_survey_cube,
    survey_layout,
)
from napari_galam.simulate.writers import survey_cube_filename, write_survey_cube

__all__ = ["MAX_REDSHIFT", "check_redshift", "truth_table_name", "iter_simulate_survey_cubes"]

#: Highest redshift the survey cubes are simulated at.
MAX_REDSHIFT: float = 0.2


def check_redshift(redshift: float | Sequence[float]) -> tuple[float, float]:
    """A redshift or a (low, high) range as ``(low, high)``, each in ``0 < z <= 0.2``."""
    values = (redshift, redshift) if np.isscalar(redshift) else tuple(redshift)
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        raise GalamInputError(
            f"redshift: expected a number or a (low, high) range, got {redshift!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and 0.0 < low <= high <= MAX_REDSHIFT):
        raise GalamInputError(
            f"redshift: expected 0 < z <= {MAX_REDSHIFT:g} (a range low <= high), got "
            f"{low:g}" + ("" if low == high else f" to {high:g}")
        )
    return low, high


def truth_table_name(layout: str, seed: int) -> str:
    """The truth table's file name in the output folder: ``<layout>_<seed>_truth.ecsv``."""
    return f"{layout.lower()}_{seed}_truth.ecsv"


def _check_folder(folder: str | os.PathLike[str], names: list[str]) -> Path:
    """The output folder (made if its parent exists), refusing files that would be replaced."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GalamInputError(f"{folder}: expected a folder for the cube files, found a file")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise GalamInputError(f"{folder}: the folder {folder.parent} does not exist")
        folder.mkdir()
    existing = [name for name in names if (folder / name).exists()]
    if existing:
        raise GalamInputError(
            f"{folder}: {existing[0]} exists ({len(existing)} of the {len(names)} files this run "
            "writes do); choose another folder or seed, or remove them"
        )
    return folder


def _truth_row(name: str, cube: SurveyCube, family: str) -> dict[str, Any]:
    """The truth table's row of one file."""
    galaxy: GalaxyModel = cube.galaxy
    truth = cube.truth
    light = galaxy.total_basis_light()
    n_wave, ny, nx = cube.flux.shape
    return {
        "file": name,
        "layout": cube.layout,
        "family": family,
        "redshift": galaxy.redshift,
        "total_log_age": float(light @ galaxy.basis_log_ages),
        "total_mh": float(light @ galaxy.basis_mh),
        "gradient_log_age": truth.gradient_log_age,
        "gradient_mh": truth.gradient_mh,
        "observed_gradient_log_age": truth.observed_gradient_log_age,
        "observed_gradient_mh": truth.observed_gradient_mh,
        **{f"component_gradient_{k}": v for k, v in truth.component_gradients.items()},
        "re_arcsec": galaxy.re_arcsec,
        "re_kpc": galaxy.re_arcsec * float(kpc_per_arcsec(galaxy.redshift)),
        "re_pixels": truth.re_pixels,
        "mag_r": galaxy.mag_r,
        "inclination_deg": galaxy.inclination_deg,
        "theta_deg": galaxy.theta_deg,
        "axis_ratio": truth.axis_ratio,
        "velocity_dispersion_kms": galaxy.velocity_dispersion_kms,
        "psf_fwhm_arcsec": cube.psf_fwhm_arcsec,
        "snr_at_re": cube.snr_at_re,
        "bundle_fibres": cube.bundle_fibres,
        "ny": ny,
        "nx": nx,
        "n_wave": n_wave,
        "n_no_model": int(cube.no_model.sum()),
        "n_library_limited": int(cube.library_limited.sum()),
        "halpha_ew_at_re": cube.emission.ew_halpha_at_re if cube.emission is not None else 0.0,
    }


def _write_table(rows: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> Table:
    table = Table(rows=rows, meta=meta)
    temporary = path.with_name(path.name + ".part")
    table.write(temporary, format="ascii.ecsv", overwrite=True)
    os.replace(temporary, path)
    return table


def iter_simulate_survey_cubes(
    folder: str | os.PathLike[str],
    *,
    layout: str,
    n: int,
    seed: int = 0,
    redshift: float | Sequence[float] | None = None,
    families: str | Sequence[str] = "bulge-disc",
    library: Any = None,
    shape: tuple[int, int] | None = None,
    emission: bool = False,
) -> ProgressGenerator[Table]:
    """Write ``n`` simulated cubes of one survey layout into ``folder``; return the truth.

    Parameters
    ----------
    folder
        Output folder; made if missing (its parent must exist). Files this run would
        write must not exist yet.
    layout
        ``califa``, ``manga`` or ``muse``.
    n, seed
        How many galaxies (> 0) and the seed (>= 0).
    redshift
        One redshift, or a (low, high) range drawn uniformly per galaxy, in 0 < z <= 0.2;
        default the survey's own range (CALIFA 0.005-0.03, MaNGA 0.01-0.15, MUSE 0.02-0.2).
    families
        Star-formation-history families drawn per galaxy (``"all"``, a name or names;
        :mod:`~napari_galam.simulate.families`).
    library
        SSP library; default the shipped one.
    shape
        (ny, nx) spaxels of every cube; default the layout's.
    emission
        Add nebular emission lines spaxel by spaxel
        (:func:`~napari_galam.simulate.survey_cubes.render_survey_cube`); each file then
        has an ``EMLINE_EW`` extension (the H-alpha equivalent width map). Off by
        default: a seed gives the same files as before.

    Yields
    ------
    Progress
        After every file (``done`` of ``n``).

    Returns
    -------
    astropy.table.Table
        The truth table, as written to ``<layout>_<seed>_truth.ecsv``.
    """
    spec = survey_layout(layout)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise GalamInputError(f"n: expected a positive number of galaxies, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GalamInputError(f"seed: expected a non-negative integer, got {seed!r}")
    low, high = check_redshift(spec.redshift_range if redshift is None else redshift)
    families = parse_families(families)
    shape = None if shape is None else check_shape(shape)
    names = [survey_cube_filename(spec.name, seed, index) for index in range(n)]
    table_name = truth_table_name(spec.name, seed)
    folder = _check_folder(folder, [*names, table_name])
    library = default_library() if library is None else library
    meta = {
        "generator": "napari-galam simulate",
        "generator_version": __version__,
        "layout": spec.name,
        "seed": int(seed),
        "redshift_range": [low, high],
        "families": list(families),
        "emission_lines": bool(emission),
        "flux_unit": spec.bunit,
        "labels": "luminosity-weighted (rest 5070-5950 A) log10(age/yr) and [M/H]",
        "gradients": "least-squares slope of the truth maps against deprojected R/R_e inside "
        "R_e (dex/R_e); observed_* after the PSF, component_* as designed",
    }
    # The checks above run when this is called; the files are written as it is iterated.
    return _iter_files(folder, names, table_name, spec, (low, high), families, library, shape, meta)


def _iter_files(
    folder: Path,
    names: list[str],
    table_name: str,
    spec: SurveyLayout,
    redshift: tuple[float, float],
    families: tuple[str, ...],
    library: Any,
    shape: tuple[int, int] | None,
    meta: dict[str, Any],
) -> ProgressGenerator[Table]:
    """Draw, render and write each galaxy, then the truth table (see the caller)."""
    low, high = redshift
    n = len(names)
    rows = []
    for index, rng in enumerate(galaxy_rngs(int(meta["seed"]), n)):
        family = galaxy_families(rng, families)
        galaxy = draw_galaxy(rng, survey="sdss", library=library, family=family)
        galaxy = galaxy_at_redshift(galaxy, float(rng.uniform(low, high)) if high > low else low)
        cube = render_survey_cube(
            galaxy,
            layout=spec.name,
            rng=rng,
            library=library,
            shape=shape,
            psf_fwhm_arcsec=float(rng.uniform(*spec.psf_range)),
            snr_at_re=float(rng.uniform(10.0, 40.0)),
            emission=bool(meta["emission_lines"]),
        )
        write_survey_cube(folder / names[index], cube)
        rows.append(_truth_row(names[index], cube, family))
        yield Progress(f"simulating {spec.name} cubes", index + 1, n)
    return _write_table(rows, folder / table_name, meta)
