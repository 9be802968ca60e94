"""Training and test datasets of synthetic galaxies, written to HDF5 with a dataset card.

``kind="cutouts"`` (MMLforGalAM, per galaxy): a 128 x 128 gri JPEG-like cutout, the fibre
spectrum on SDSS's log-lambda grid and on the paper's 1 A grid (3830-8000 A, 4171
points), the fibre's luminosity-weighted log age and [M/H], and the truth (segmentation,
target ellipse, blend flag, galaxy parameters).

``kind="cubes"`` (Liew-Cain et al. 2021, per spaxel): CALIFA-like cubes with truth maps,
the gradients, and per-spaxel J-PAS-like narrow-band SEDs (the SED network's input),
optionally with nebular emission lines.

Every galaxy gets its own random generator spawned from the seed, so a dataset is the
same for a seed whatever the chunking. Files are written to a temporary name and moved
into place when complete; the card (generator version, seed, parameter ranges, sizes) is
stored as HDF5 attributes and as a JSON file beside the data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from napari_galam import __version__
from napari_galam.errors import GalamInputError
from napari_galam.progress import Progress, ProgressGenerator, run_to_end
from napari_galam.simulate.cubes import (
    CALIFA_SHAPE,
    CALIFA_WAVE,
    IFUCube,
    narrowband_sed_snr,
    narrowband_seds,
    render_califa_cube,
)
from napari_galam.simulate.families import SFH_FAMILIES, parse_families
from napari_galam.simulate.galaxy import PARAMETER_RANGES, GalaxyModel, draw_galaxy
from napari_galam.simulate.imaging import Cutout, draw_scene, render_cutout
from napari_galam.simulate.observe import observed_basis
from napari_galam.simulate.populations import default_library
from napari_galam.simulate.spectra import (
    MML_WAVE,
    SDSS_LOGLAM,
    FibreSpectrum,
    render_fibre_spectrum,
    to_linear_grid,
)

__all__ = [
    "SDSSGalaxy",
    "simulate_sdss_galaxy",
    "galaxy_rngs",
    "iter_simulate_cutouts",
    "iter_simulate_cubes",
    "simulate_dataset",
    "CUBE_SNR_RANGE",
    "jpeg_roundtrip",
]

GENERATOR_NAME = "napari-galam simulate"
#: The S/N per pixel at R_e of simulated cubes (uniform in it): the training range.
CUBE_SNR_RANGE: tuple[float, float] = (10.0, 40.0)


@dataclass(frozen=True)
class SDSSGalaxy:
    """One simulated SDSS target: its model, its gri cutout and its fibre spectrum."""

    galaxy: GalaxyModel
    cutout: Cutout
    spectrum: FibreSpectrum


def simulate_sdss_galaxy(
    rng: np.random.Generator,
    *,
    library: Any = None,
    snr: float | None = None,
    blend_probability: float = 0.25,
    shape: tuple[int, int] = (128, 128),
    galaxy: GalaxyModel | None = None,
    nearby_fraction: float = 0.0,
    emission: bool = False,
    calibration_rms: float = 0.0,
    broad_populations: float = 0.0,
    family: str = "bulge-disc",
    snr_range: tuple[float, float] = (5.0, 50.0),
) -> SDSSGalaxy:
    """Draw (or take) a galaxy and render its SDSS-like cutout and fibre spectrum.

    Parameters
    ----------
    rng
        The only source of randomness.
    library
        SSP library; default the shipped one.
    snr
        Median S/N per pixel of the spectrum; default log-uniform in ``snr_range``.
    blend_probability
        Chance of a close neighbour (see :func:`~napari_galam.simulate.imaging.draw_scene`).
    shape
        Cutout size (ny, nx).
    galaxy
        Use this model instead of drawing one.
    nearby_fraction, broad_populations
        Share of galaxies drawn from the nearby, bright end of SDSS, and share with
        stellar populations drawn uniformly over the SSP grid (see
        :func:`~napari_galam.simulate.galaxy.draw_galaxy`).
    emission, calibration_rms
        Nebular emission lines and a smooth flux-calibration error in the spectrum (see
        :func:`~napari_galam.simulate.spectra.render_fibre_spectrum`).
    family
        Star-formation-history family of a drawn galaxy (:mod:`~napari_galam.simulate.families`).
    snr_range
        Range of the log-uniform S/N draw when ``snr`` is not given.
    """
    library = default_library() if library is None else library
    if snr is not None and not (np.isfinite(snr) and snr > 0):
        raise GalamInputError(f"snr: the signal-to-noise ratio must be > 0, got {snr}")
    galaxy = (
        galaxy
        if galaxy is not None
        else draw_galaxy(
            rng,
            library=library,
            nearby_fraction=nearby_fraction,
            broad_populations=broad_populations,
            family=family,
        )
    )
    low, high = snr_range
    snr = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if snr is None else float(snr)
    seeing = float(np.clip(rng.normal(1.4, 0.2), 0.9, 2.0))
    basis = observed_basis(galaxy, library=library)
    neighbours, stars = draw_scene(
        rng, galaxy, library=library, shape=shape, blend_probability=blend_probability
    )
    offset = (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5)))
    cutout = render_cutout(
        galaxy,
        rng=rng,
        library=library,
        neighbours=neighbours,
        stars=stars,
        shape=shape,
        psf_fwhm_arcsec=seeing,
        centre_offset_px=offset,
        target_basis=basis,
    )
    spectrum = render_fibre_spectrum(
        galaxy,
        rng=rng,
        library=library,
        snr=snr,
        seeing_fwhm_arcsec=seeing,
        basis=basis,
        emission=emission,
        calibration_rms=calibration_rms,
    )
    return SDSSGalaxy(galaxy=galaxy, cutout=cutout, spectrum=spectrum)


def galaxy_rngs(seed: int, n: int) -> list[np.random.Generator]:
    """One independent generator per galaxy, spawned from ``seed``."""
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(n)]


def jpeg_roundtrip(rgb: np.ndarray, *, quality: int = 90) -> np.ndarray:
    """Encode and decode an RGB image as JPEG (the artefacts of SDSS's cutouts)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


#: HDF5 chunk cache per open dataset file. Galaxies are written one row at a time into
#: gzip chunks of 64 rows (a 64-cutout chunk is 3 MB); with h5py's default 1 MB cache
#: every row write decompressed and recompressed its whole chunk (60% of the run time).
_CHUNK_CACHE_BYTES = 64 * 1024**2


def _check_common(path: str | os.PathLike[str], n: int, seed: int) -> Path:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise GalamInputError(f"n: expected a positive number of galaxies, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GalamInputError(f"seed: expected a non-negative integer, got {seed!r}")
    path = Path(path)
    if not path.parent.exists():
        raise GalamInputError(f"{path}: the folder {path.parent} does not exist")
    return path


def galaxy_families(rng: np.random.Generator, families: Sequence[str]) -> str:
    """The family of one galaxy: the only one given, else drawn uniformly (from its rng)."""
    return families[0] if len(families) == 1 else str(families[int(rng.integers(len(families)))])


def _check_snr_range(snr_range: Sequence[float]) -> tuple[float, float]:
    """A (low, high) S/N range with 0 < low <= high, as floats."""
    low, high = (float(v) for v in snr_range)
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
        raise GalamInputError(f"snr_range: expected 0 < low <= high, got {tuple(snr_range)}")
    return low, high


def _galaxy_row(galaxy: GalaxyModel) -> dict[str, float]:
    grads = galaxy.component_gradients()
    total = galaxy.total_basis_light()
    return {
        "family": float(SFH_FAMILIES.index(galaxy.family)),
        "young_dust": galaxy.young_dust,
        "redshift": galaxy.redshift,
        "mag_r": galaxy.mag_r,
        "re_arcsec": galaxy.re_arcsec,
        "bulge_fraction": galaxy.bulge.light_fraction,
        "bulge_sersic_n": galaxy.bulge.sersic_n,
        "inclination_deg": galaxy.inclination_deg,
        "theta_deg": galaxy.theta_deg,
        "velocity_dispersion_kms": galaxy.velocity_dispersion_kms,
        "ebv_disc": galaxy.disc.ebv,
        "ebv_bulge": galaxy.bulge.ebv,
        "total_log_age": float(total @ galaxy.basis_log_ages),
        "total_mh": float(total @ galaxy.basis_mh),
        **{f"gradient_{key}": value for key, value in grads.items()},
    }


def _card(
    kind: str, n: int, seed: int, sizes: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "generator": GENERATOR_NAME,
        "generator_version": __version__,
        "kind": kind,
        "n": int(n),
        "seed": int(seed),
        "ssp_library": "E-MILES (Vazdekis et al. 2016), 25 ages x 6 [M/H], unimodal IMF 1.3",
        "labels": "luminosity-weighted (rest 5070-5950 A) log10(age/yr) and [M/H]",
        "parameter_ranges": PARAMETER_RANGES["sdss" if kind == "cutouts" else "califa"],
        "family_names": list(SFH_FAMILIES),
        "family_note": "truth/family is the index of each galaxy's family in family_names",
        "sizes": sizes,
        **extra,
    }


def _finish(handle: Any, temporary: Path, path: Path, card: dict[str, Any]) -> None:
    for key, value in card.items():
        handle.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    handle.close()
    os.replace(temporary, path)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2))


def _create_cutout_datasets(
    handle: Any, n: int, shape: tuple[int, int], *, store_gri: bool
) -> dict[str, Any]:
    """The per-galaxy datasets of a cutout file (``gri`` is ``None`` unless stored)."""
    ny, nx = shape
    opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    rgb = handle.create_dataset(
        "images/rgb", (n, ny, nx, 3), np.uint8, chunks=(min(n, 64), ny, nx, 3), **opts
    )
    gri = (
        handle.create_dataset(
            "images/gri", (n, 3, ny, nx), np.float32, chunks=(1, 3, ny, nx), **opts
        )
        if store_gri
        else None
    )
    handle.create_dataset("spectra/wave", data=MML_WAVE)
    handle.create_dataset("spectra/loglam", data=SDSS_LOGLAM)
    flux = handle.create_dataset(
        "spectra/flux",
        (n, MML_WAVE.size),
        np.float32,
        chunks=(min(n, 64), MML_WAVE.size),
        **opts,
    )
    loglam_flux = handle.create_dataset(
        "spectra/loglam_flux",
        (n, SDSS_LOGLAM.size),
        np.float32,
        chunks=(min(n, 64), SDSS_LOGLAM.size),
        **opts,
    )
    loglam_ivar = handle.create_dataset(
        "spectra/loglam_ivar",
        (n, SDSS_LOGLAM.size),
        np.float32,
        chunks=(min(n, 64), SDSS_LOGLAM.size),
        **opts,
    )
    segmentation = handle.create_dataset(
        "truth/segmentation", (n, ny, nx), np.uint8, chunks=(min(n, 64), ny, nx), **opts
    )
    return {
        "rgb": rgb,
        "gri": gri,
        "flux": flux,
        "loglam_flux": loglam_flux,
        "loglam_ivar": loglam_ivar,
        "segmentation": segmentation,
    }


def _write_cutout_row(
    datasets: dict[str, Any], index: int, sim: SDSSGalaxy, *, jpeg_quality: int
) -> None:
    """Store one galaxy's cutout, spectra and segmentation in row ``index``."""
    datasets["rgb"][index] = jpeg_roundtrip(sim.cutout.rgb, quality=jpeg_quality)
    if datasets["gri"] is not None:
        datasets["gri"][index] = sim.cutout.images
    spec = sim.spectrum
    datasets["flux"][index] = to_linear_grid(spec.loglam, spec.flux)
    datasets["loglam_flux"][index] = spec.flux
    datasets["loglam_ivar"][index] = spec.ivar
    datasets["segmentation"][index] = np.clip(sim.cutout.truth.segmentation, 0, 255)


def _cutout_truth_row(sim: SDSSGalaxy) -> dict[str, float]:
    """The ``truth/*`` values of one simulated SDSS galaxy."""
    spec = sim.spectrum
    ellipse = sim.cutout.truth.ellipse
    return {
        **_galaxy_row(sim.galaxy),
        "snr": spec.snr,
        "ew_halpha": spec.emission.ew_halpha if spec.emission is not None else 0.0,
        "psf_fwhm_arcsec": sim.cutout.truth.psf_fwhm_arcsec,
        "blended": float(sim.cutout.truth.blended),
        "n_sources": float(len(sim.cutout.truth.sources)),
        "ellipse_x": ellipse.x,
        "ellipse_y": ellipse.y,
        "ellipse_semi_major": ellipse.semi_major,
        "ellipse_semi_minor": ellipse.semi_minor,
        "ellipse_theta_deg": ellipse.theta_deg,
    }


def _write_cutout_columns(
    handle: Any, labels: dict[str, list[float]], truth: dict[str, list[float]]
) -> None:
    """Store the labels and the one-value-per-galaxy truth of a cutout file."""
    for key, values in labels.items():
        handle.create_dataset(f"labels/{key}", data=np.array(values, dtype=np.float32))
    for key, values in truth.items():
        dtype = bool if key == "blended" else np.float32
        handle.create_dataset(f"truth/{key}", data=np.array(values).astype(dtype))


def _write_dataset(
    path: Path,
    fill: Callable[[Any], ProgressGenerator[dict[str, Any]]],
) -> ProgressGenerator[dict[str, Any]]:
    """Open ``path``'s temporary file, let ``fill`` write it, finish it with its card.

    ``fill`` yields progress and returns the card; on any error (or when the caller stops
    the generator) the temporary file is removed. Returns the card as written (JSON).
    """
    import h5py

    temporary = path.with_name(path.name + ".part")
    handle = h5py.File(temporary, "w", rdcc_nbytes=_CHUNK_CACHE_BYTES)
    try:
        card = yield from fill(handle)
        _finish(handle, temporary, path, card)
    except BaseException:
        handle.close()
        temporary.unlink(missing_ok=True)
        raise
    return json.loads(path.with_suffix(".json").read_text())


def _cutouts_card(
    n: int, seed: int, shape: tuple[int, int], options: dict[str, Any]
) -> dict[str, Any]:
    """The dataset card of a cutout file; ``options`` are the simulation's keywords."""
    ny, nx = shape
    return _card(
        "cutouts",
        n,
        seed,
        {
            "cutout": [ny, nx, 3],
            "spectrum_1a": int(MML_WAVE.size),
            "spectrum_loglam": int(SDSS_LOGLAM.size),
        },
        {
            "pixel_scale_arcsec": 0.396,
            "spectrum_grid": "observed frame, 1 A, 3830-8000 A (MMLforGalAM Sect. 2.2.1)",
            "blend_probability": options["blend_probability"],
            "snr_range": list(options["snr_range"]),
            "families": list(options["families"]),
            "jpeg_quality": options["jpeg_quality"],
            "nearby_fraction": options["nearby_fraction"],
            "broad_populations": options["broad_populations"],
            "emission_lines": bool(options["emission"]),
            "calibration_rms": options["calibration_rms"],
        },
    )


def iter_simulate_cutouts(
    path: str | os.PathLike[str],
    *,
    n: int,
    seed: int = 0,
    library: Any = None,
    shape: tuple[int, int] = (128, 128),
    blend_probability: float = 0.25,
    store_gri: bool = False,
    jpeg_quality: int = 90,
    nearby_fraction: float = 0.2,
    emission: bool = True,
    calibration_rms: float = 0.03,
    broad_populations: float = 0.3,
    families: str | Sequence[str] = "bulge-disc",
    snr_range: tuple[float, float] = (5.0, 50.0),
) -> ProgressGenerator[dict[str, Any]]:
    """Write an MMLforGalAM-style dataset of ``n`` galaxies to HDF5; return its card.

    Layout: ``images/rgb`` (n, ny, nx, 3) uint8 (JPEG round-tripped), optional
    ``images/gri`` (n, 3, ny, nx) nanomaggies; ``spectra/flux`` (n, 4171) on
    ``spectra/wave`` (3830-8000 A, observed), ``spectra/loglam_flux`` and
    ``spectra/loglam_ivar`` (n, 3838) on ``spectra/loglam``; ``labels/log_age`` and
    ``labels/mh`` (fibre); ``truth/segmentation`` (n, ny, nx) uint8, ``truth/*`` one value
    per galaxy (galaxy parameters, S/N, seeing, blend flag, target ellipse, H-alpha
    equivalent width of the emission lines).

    The defaults make training data wider than a magnitude-limited draw: 20% of the
    galaxies come from the nearby end of SDSS (z < 0.02), 30% have stellar populations
    drawn uniformly over the SSP grid (the young and old ends), and spectra carry emission
    lines and a 3% flux-calibration error (real spectra have both; the labels are stellar).
    ``families`` ("all", a name, or names) are drawn uniformly per galaxy
    (:mod:`~napari_galam.simulate.families`); the spectra's S/N is log-uniform in
    ``snr_range``.

    Yields
    ------
    Progress
        After every galaxy (``done`` galaxies of ``n``).

    Returns
    -------
    dict
        The dataset card, as written to the JSON file beside the data.
    """
    path = _check_common(path, n, seed)
    library = default_library() if library is None else library
    families = parse_families(families)
    snr_range = _check_snr_range(snr_range)
    options = {
        "families": families,
        "snr_range": snr_range,
        "blend_probability": blend_probability,
        "jpeg_quality": jpeg_quality,
        "nearby_fraction": nearby_fraction,
        "broad_populations": broad_populations,
        "emission": emission,
        "calibration_rms": calibration_rms,
    }

    def fill(handle: Any) -> ProgressGenerator[dict[str, Any]]:
        datasets = _create_cutout_datasets(handle, n, shape, store_gri=store_gri)
        labels: dict[str, list[float]] = {"log_age": [], "mh": []}
        truth: dict[str, list[float]] = {}
        for index, rng in enumerate(galaxy_rngs(seed, n)):
            sim = simulate_sdss_galaxy(
                rng,
                library=library,
                family=galaxy_families(rng, families),
                snr_range=snr_range,
                blend_probability=blend_probability,
                shape=shape,
                nearby_fraction=nearby_fraction,
                emission=emission,
                calibration_rms=calibration_rms,
                broad_populations=broad_populations,
            )
            _write_cutout_row(datasets, index, sim, jpeg_quality=jpeg_quality)
            labels["log_age"].append(sim.spectrum.log_age)
            labels["mh"].append(sim.spectrum.mh)
            for key, value in _cutout_truth_row(sim).items():
                truth.setdefault(key, []).append(value)
            yield Progress("simulating cutouts", index + 1, n)
        _write_cutout_columns(handle, labels, truth)
        return _cutouts_card(n, seed, shape, options)

    return (yield from _write_dataset(path, fill))


_CUBE_MAP_NAMES = ("log_age", "mh", "intrinsic_log_age", "intrinsic_mh", "r_over_re")


def _create_cube_datasets(
    handle: Any, n: int, *, store_cubes: bool, emission: bool, opts: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The per-galaxy cube datasets (empty unless ``store_cubes``) and map datasets: the
    truth maps, and the H-alpha EW map (``halpha_ew``) if the cubes have ``emission``."""
    ny, nx = CALIFA_SHAPE
    nw = CALIFA_WAVE.size
    handle.create_dataset("cubes/wave", data=CALIFA_WAVE)
    cube_sets = {}
    if store_cubes:
        for name, dtype in (("flux", np.float32), ("error", np.float32), ("badpix", np.uint8)):
            cube_sets[name] = handle.create_dataset(
                f"cubes/{name}", (n, nw, ny, nx), dtype, chunks=(1, nw, 8, 8), **opts
            )
    maps = {
        name: handle.create_dataset(
            f"maps/{name}", (n, ny, nx), np.float32, chunks=(1, ny, nx), **opts
        )
        for name in _CUBE_MAP_NAMES + (("halpha_ew",) if emission else ())
    }
    return cube_sets, maps


def _create_sed_dataset(handle: Any, n: int, names: Any, centres: Any, opts: dict[str, Any]) -> Any:
    """The ``seds/flux`` dataset with its filter names and centres (made at the first cube)."""
    ny, nx = CALIFA_SHAPE
    seds = handle.create_dataset(
        "seds/flux",
        (n, ny, nx, len(names)),
        np.float32,
        chunks=(1, ny, nx, len(names)),
        **opts,
    )
    handle.create_dataset("seds/snr", (n, ny, nx), np.float32, chunks=(1, ny, nx), **opts)
    handle.create_dataset("seds/filter_names", data=np.array(names, dtype="S"))
    handle.create_dataset("seds/centres", data=centres)
    return seds


def _cube_truth_row(galaxy: GalaxyModel, cube: IFUCube, snr: float, psf: float) -> dict[str, float]:
    """The ``gradients/*`` and ``truth/*`` values of one simulated cube."""
    truth = cube.truth
    return {
        **_galaxy_row(galaxy),
        "snr_at_re": snr,
        "psf_fwhm_arcsec": psf,
        "gradient_log_age": truth.gradient_log_age,
        "gradient_mh": truth.gradient_mh,
        "observed_gradient_log_age": truth.observed_gradient_log_age,
        "observed_gradient_mh": truth.observed_gradient_mh,
        "re_pixels": truth.re_pixels,
        "axis_ratio": truth.axis_ratio,
        "halpha_ew_at_re": cube.emission.ew_halpha_at_re if cube.emission is not None else 0.0,
    }


def _cubes_card(n: int, seed: int, seds: Any, store_cubes: bool, emission: bool) -> dict[str, Any]:
    ny, nx = CALIFA_SHAPE
    return _card(
        "cubes",
        n,
        seed,
        {
            "cube": [CALIFA_WAVE.size, ny, nx],
            "seds": [ny, nx, int(seds.shape[-1]) if seds is not None else 0],
        },
        {
            "spaxel_arcsec": 1.0,
            "wavelength": "air, 3749-7501 A in 2 A steps, FWHM 6 A (CALIFA V500)",
            "flux_unit": "1e-16 erg/s/cm^2/A per spaxel",
            "gradients": "least-squares slope of the truth maps against deprojected R/R_e "
            "inside R_e (dex/R_e)",
            "store_cubes": store_cubes,
            "emission_lines": bool(emission),
        },
    )


def iter_simulate_cubes(
    path: str | os.PathLike[str],
    *,
    n: int,
    seed: int = 0,
    library: Any = None,
    store_cubes: bool = True,
    families: str | Sequence[str] = "bulge-disc",
    emission: bool = False,
    snr_range: tuple[float, float] = CUBE_SNR_RANGE,
) -> ProgressGenerator[dict[str, Any]]:
    """Write ``n`` CALIFA-like cubes with truth maps, gradients and SEDs to HDF5; return the card.

    Layout: ``cubes/flux``, ``cubes/error`` (n, 1877, 73, 78) float32 and ``cubes/badpix``
    uint8 (if ``store_cubes``), ``cubes/wave``; ``maps/log_age``, ``maps/mh``,
    ``maps/intrinsic_log_age``, ``maps/intrinsic_mh``, ``maps/r_over_re`` (n, 73, 78);
    ``seds/flux`` (n, 73, 78, n_filters) with ``seds/filter_names``,
    ``seds/centres`` and ``seds/snr`` (n, 73, 78: each SED's median S/N over filters); ``gradients/*`` and ``truth/*`` one value per galaxy.

    ``emission`` adds nebular emission lines to the cubes (and so to the SEDs), spaxel
    by spaxel (:func:`~napari_galam.simulate.cubes.render_califa_cube`); the labels and
    truth maps stay stellar. ``maps/halpha_ew`` (n, 73, 78) then holds each spaxel's
    H-alpha equivalent width and ``truth/halpha_ew_at_re`` that of the ring R = R_e (0
    without emission); the card records ``emission_lines``. Off by default here, so
    a seed gives the same cubes as before lines existed (as ``families`` defaults to the
    old recipe); ``galam simulate`` turns it on, as the shipped SED CNN was trained.

    ``snr_range`` (low, high): each cube's S/N per pixel at R_e (:func:`~napari_galam.simulate.cubes.spaxel_errors`),
    drawn uniformly in it and stored as ``truth/snr_at_re``; the default
    :data:`CUBE_SNR_RANGE` is the range every shipped model was trained and calibrated on
    (a narrower one, e.g. ``(10, 13)``, fills a test set with faint galaxies).

    Yields
    ------
    Progress
        After every cube (``done`` cubes of ``n``).

    Returns
    -------
    dict
        The dataset card, as written to the JSON file beside the data.
    """
    path = _check_common(path, n, seed)
    library = default_library() if library is None else library
    families = parse_families(families)
    snr_low, snr_high = _check_snr_range(snr_range)

    def fill(handle: Any) -> ProgressGenerator[dict[str, Any]]:
        opts = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
        cube_sets, maps = _create_cube_datasets(
            handle, n, store_cubes=store_cubes, emission=emission, opts=opts
        )
        seds = None
        scalars: dict[str, list[float]] = {}
        for index, rng in enumerate(galaxy_rngs(seed, n)):
            family = galaxy_families(rng, families)
            galaxy = draw_galaxy(rng, survey="califa", library=library, family=family)
            snr = float(rng.uniform(snr_low, snr_high))
            psf = float(rng.uniform(2.2, 2.8))
            cube: IFUCube = render_califa_cube(
                galaxy, rng=rng, library=library, snr_at_re=snr, psf_fwhm_arcsec=psf,
                emission=emission,
            )  # fmt: skip
            for name, dataset in cube_sets.items():
                dataset[index] = getattr(cube, name)
            for name in _CUBE_MAP_NAMES:
                maps[name][index] = getattr(cube.truth, name)
            if cube.emission is not None:
                maps["halpha_ew"][index] = cube.emission.ew_halpha
            sed, names, centres = narrowband_seds(cube.wave, cube.flux)
            if seds is None:
                seds = _create_sed_dataset(handle, n, names, centres, opts)
            seds[index] = sed
            handle["seds/snr"][index] = narrowband_sed_snr(cube.wave, cube, names)
            for key, value in _cube_truth_row(galaxy, cube, snr, psf).items():
                scalars.setdefault(key, []).append(value)
            yield Progress("simulating cubes", index + 1, n)
        for key, values in scalars.items():
            group = "gradients" if key.startswith(("gradient_", "observed_gradient_")) else "truth"
            handle.create_dataset(f"{group}/{key}", data=np.array(values, dtype=np.float32))
        card = _cubes_card(n, seed, seds, store_cubes, emission)
        return {**card, "families": list(families), "snr_at_re_range": [snr_low, snr_high]}

    return (yield from _write_dataset(path, fill))


def simulate_dataset(
    path: str | os.PathLike[str],
    *,
    kind: Literal["cutouts", "cubes"] = "cutouts",
    n: int,
    seed: int = 0,
    progress: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Write a dataset to ``path`` (HDF5) and return its card.

    Runs :func:`iter_simulate_cutouts` or :func:`iter_simulate_cubes` to the end, with a
    tqdm progress bar if ``progress``.
    """
    if kind == "cutouts":
        steps = iter_simulate_cutouts(path, n=n, seed=seed, **options)
    elif kind == "cubes":
        steps = iter_simulate_cubes(path, n=n, seed=seed, **options)
    else:
        raise GalamInputError(f"kind: expected 'cutouts' or 'cubes', got {kind!r}")
    if not progress:
        return run_to_end(steps)
    from tqdm import tqdm

    with tqdm(total=n, desc=f"simulating {kind}", unit="galaxy") as bar:
        return run_to_end(steps, on_progress=lambda _: bar.update(1))
