"""Map an IFU cube from its spectra, streaming through it by blocks of spaxel rows.

The spectral path of :func:`napari_galam.pipeline.maps.iter_map_source` (model
``spaxel-spectra``): one :class:`~napari_galam.core.spectral_input.SpectralInputPlan`
per cube (its wavelengths, layout and redshift), then for each block of rows the
spaxels' spectra with their variance and mask are read from the (memory-mapped or
lazy) cube, turned into model inputs (:func:`~napari_galam.core.spectral_input.spectral_inputs`)
and handed to the model, any callable ``predict_spectra(x, snr=...)`` (in napari, the
model worker's). A block is a few tens of MB, so a 1.3 GB MUSE cube is never held whole.

A spaxel without a prediction is NaN, counted by reason (:data:`NAN_REASONS`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from napari_galam.core.spectral_input import (
    MIN_COVERAGE,
    MODEL_LOGLAM,
    spectral_input_plan,
    spectral_inputs,
)
from napari_galam.errors import GalamInputError
from napari_galam.progress import Progress, ProgressGenerator

__all__ = [
    "MAP_MODELS",
    "DEFAULT_CUBE_MODEL",
    "SED_CNN_MAX_REDSHIFT",
    "NAN_REASONS",
    "REDSHIFT_KEYWORDS",
    "map_model_for",
    "sed_cnn_reads",
    "cube_redshift",
    "rows_per_block",
    "iter_spectra_maps",
]

#: The models a cube can be mapped with (``galam map --model``; "auto": by source).
MAP_MODELS = ("auto", "spaxel-spectra", "sed-cnn")
#: The model "auto" picks for IFU cubes that the SED CNN can read (narrow-band stacks
#: always use "sed-cnn"). On simulated CALIFA cubes (the SED CNN's own simulator, unseen
#: seeds) the SED CNN is still the more accurate in [M/H] (robust SD 0.069 against 0.112
#: dex; scripts/evaluate_spaxel_spectra_cubes.py), so it stays the default there.
DEFAULT_CUBE_MODEL = "sed-cnn"
#: Above this redshift "auto" maps with spaxel-spectra: the SED CNN reads observed-frame
#: SEDs of CALIFA-like galaxies (z <~ 0.03) and is biased by +0.3 dex in log age at z = 0.1.
SED_CNN_MAX_REDSHIFT = 0.05

#: Why a spaxel has no value, in the order they are checked.
NAN_REASONS: tuple[str, ...] = ("no data", "coverage", "low S/N", "bad flux")
#: Header keywords read (in this order) for the galaxy's redshift: redshifts, then
#: systemic velocities in km/s (CALIFA's ``MED_VEL``).
REDSHIFT_KEYWORDS: tuple[str, ...] = ("Z", "REDSHIFT", "NSA_Z", "MED_VEL", "VSYS")
_VELOCITY_KEYWORDS = ("MED_VEL", "VSYS")
#: Bytes of flux, variance and mask read per block of rows (about).
BLOCK_BYTES = 24 * 1024**2


def sed_cnn_reads(cube: Any) -> bool:
    """Whether every filter of the SED CNN (its card's ``input.filters``) lies in the cube."""
    from napari_galam.models.registry import read_model_card
    from napari_galam.sps.filters import load_filters

    names = read_model_card("sed-cnn").get("input", {}).get("filters") or []
    wave = np.asarray(cube.wave, dtype=np.float64)
    return bool(names) and all(
        wave[0] <= np.asarray(f.wavelength)[0] and wave[-1] >= np.asarray(f.wavelength)[-1]
        for f in load_filters([str(name) for name in names])
    )


def map_model_for(source: Any, model: str, redshift: float | None = None) -> str:
    """The model that maps ``source`` (``model``: one of :data:`MAP_MODELS`).

    ``"auto"``: the SED CNN for narrow-band stacks; for IFU cubes
    :data:`DEFAULT_CUBE_MODEL`, except that a cube the SED CNN cannot read (its filters
    need 3762-9100 A observed: every MUSE cube) or one above
    :data:`SED_CNN_MAX_REDSHIFT` (``redshift``, else the header's) goes to
    ``spaxel-spectra``. A stack cannot take ``spaxel-spectra``.
    """
    if model not in MAP_MODELS:
        raise GalamInputError(f"unknown map model {model!r}; use one of {', '.join(MAP_MODELS)}")
    if hasattr(source, "filter_names"):  # a narrow-band stack
        if model == "spaxel-spectra":
            raise GalamInputError(
                f"narrow-band stack {', '.join(str(p) for p in source.paths)}: the spaxel-spectra "
                "model reads spectra; map narrow-band stacks with --model sed-cnn (or auto)"
            )
        return "sed-cnn"
    if model != "auto":
        return model
    if DEFAULT_CUBE_MODEL == "sed-cnn" and (
        cube_redshift(source, redshift)[0] > SED_CNN_MAX_REDSHIFT or not sed_cnn_reads(source)
    ):
        return "spaxel-spectra"
    return DEFAULT_CUBE_MODEL


def cube_redshift(cube: Any, redshift: float | None) -> tuple[float, str]:
    """The redshift to map ``cube`` at and where it came from.

    ``redshift`` when given; else the first of :data:`REDSHIFT_KEYWORDS` in the cube's
    headers; else 0 (``"assumed"``).
    """
    if redshift is not None:
        return float(redshift), "given"
    for header in (getattr(cube, "header", None), getattr(cube, "primary_header", None)):
        if header is None:
            continue
        for key in REDSHIFT_KEYWORDS:
            try:
                value = float(header[key])
            except (KeyError, TypeError, ValueError):
                continue
            if key in _VELOCITY_KEYWORDS:
                value /= 299792.458
            if np.isfinite(value) and 0 <= value < 1:
                return value, f"header {key}"
    return 0.0, "assumed (no redshift keyword; give one with --redshift)"


def rows_per_block(n_wave: int, nx: int) -> int:
    """Rows of spaxels per block so that flux, variance and mask take ~:data:`BLOCK_BYTES`."""
    return int(max(1, BLOCK_BYTES // max(1, n_wave * nx * 9)))


def _read_rows(cube: Any, rows: slice) -> tuple[NDArray[np.float32], Any, Any]:
    """Flux, variance and mask of rows ``rows`` as ``(n_spaxels, n_wave)`` arrays."""

    def flat(array: Any, dtype: Any) -> NDArray[Any]:
        block = np.asarray(array[:, rows, :], dtype=dtype)
        return block.reshape(block.shape[0], -1).T

    flux = flat(cube.data, np.float32)
    variance = None if cube.variance is None else flat(cube.variance, np.float32)
    mask = None if cube.mask is None else flat(cube.mask, bool)
    return flux, variance, mask


def _what(cube: Any) -> str:
    path = getattr(cube, "path", None)
    return str(path) if path is not None else str(getattr(cube, "name", "cube"))


def _plan_for(cube: Any, redshift: float | None) -> tuple[Any, float, str, str]:
    """The cube's input plan, its redshift and origin, and its name; refuses unusable axes."""
    what = _what(cube)
    z, origin = cube_redshift(cube, redshift)
    medium = getattr(cube, "wave_medium", "air")
    plan = spectral_input_plan(
        cube.wave, redshift=z, layout=getattr(cube, "layout", "generic"),
        medium="vacuum" if medium == "vacuum" else "air", what=what,
    )  # fmt: skip
    if plan.reachable < MIN_COVERAGE:
        lo, hi = 10.0 ** MODEL_LOGLAM[[0, -1]]
        raise GalamInputError(
            f"{what}: its wavelengths {cube.wave[0]:.0f}-{cube.wave[-1]:.0f} A at z = {z:g} "
            f"cover {plan.reachable:.0%} of the rest {lo:.0f}-{hi:.0f} A range the "
            f"spaxel-spectra model reads; it needs at least {MIN_COVERAGE:.0%} "
            "(check the redshift, or map it with --model sed-cnn)"
        )
    return plan, z, origin, what


def _paint(maps: dict[str, Any], where: Any, prediction: Any, index: Any) -> None:
    """Put the prediction's rows ``index`` into the maps at ``where``."""
    for name in ("log_age", "mh", "log_age_err", "mh_err"):
        maps[name][where] = np.asarray(getattr(prediction, name), np.float32)[index]
    maps["ood"][where] = np.asarray(prediction.ood_reason, np.uint8)[index]


def _good_pixels(flux: Any, variance: Any, mask: Any) -> NDArray[np.bool_]:
    good = np.isfinite(flux)
    if variance is not None:
        good &= np.isfinite(variance) & (variance > 0)
    if mask is not None:
        good &= ~mask
    return good


def _iter_bin_spectra(
    cube: Any, bin_id: NDArray[np.int32], n_bins: int, step: int
) -> ProgressGenerator[tuple[Any, Any, Any]]:
    """Mean spectrum, its variance and bad pixels of each bin, summed block by block."""
    n_wave, ny, _ = cube.shape
    total = np.zeros((n_bins, n_wave), np.float32)
    total_var = np.zeros((n_bins, n_wave), np.float32)
    count = np.zeros((n_bins, n_wave), np.float32)
    for start in range(0, ny, step):
        rows = slice(start, min(ny, start + step))
        ids = bin_id[rows].reshape(-1)
        inside = np.nonzero(ids >= 0)[0]
        if inside.size:
            flux, variance, mask = _read_rows(cube, rows)
            good = _good_pixels(flux, variance, mask)
            member = sparse.csr_matrix(
                (np.ones(inside.size, np.float32), (ids[inside], inside)), shape=(n_bins, ids.size)
            )
            total += member @ np.where(good, flux, 0.0).astype(np.float32)
            count += member @ good.astype(np.float32)
            if variance is not None:
                total_var += member @ np.where(good, variance, 0.0).astype(np.float32)
        yield Progress("binned spectra", rows.stop, ny)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        variance = total_var / count**2 if cube.variance is not None else None
    return mean, variance, count == 0


def iter_spectra_maps(
    cube: Any,
    predict_spectra: Callable[..., Any],
    *,
    min_snr: float = 3.0,
    target_snr: float | None = None,
    redshift: float | None = None,
    block_rows: int | None = None,
) -> ProgressGenerator[dict[str, Any]]:
    """Map ``cube`` (a :class:`~napari_galam.io.cubes.SpectralCube`) block by block.

    Yields ``Progress("spectra", rows_done, ny)``; returns a dict of ``(ny, nx)`` maps
    (``log_age``, ``mh``, ``snr``, ``log_age_err``, ``mh_err``, ``ood``, ``light``,
    ``bin_id``) and ``meta`` (redshift and its origin, layout, counts per NaN reason).
    With ``target_snr`` the kept spaxels are Voronoi-binned
    (:func:`napari_galam.core.spaxels.voronoi_bins` on their S/N) and each bin's mean
    spectrum, gathered in a second pass over the cube, is mapped instead.

    Raises
    ------
    GalamInputError
        When the cube's wavelength axis cannot be used by the model at this redshift
        (names the file, its range and what the model needs).
    """
    plan, z, origin, what = _plan_for(cube, redshift)
    n_wave, ny, nx = cube.shape
    names = ("log_age", "mh", "snr", "log_age_err", "mh_err", "light")
    maps: dict[str, Any] = {name: np.full((ny, nx), np.nan, dtype=np.float32) for name in names}
    maps["ood"] = np.zeros((ny, nx), dtype=np.uint8)
    kept = np.zeros((ny, nx), dtype=bool)
    counts = dict.fromkeys(NAN_REASONS, 0)
    step = block_rows or rows_per_block(n_wave, nx)
    yield Progress("spectra", 0, ny)
    for start in range(0, ny, step):
        rows = slice(start, min(ny, start + step))
        flux, variance, mask = _read_rows(cube, rows)
        inputs = spectral_inputs(plan, flux, variance, mask)
        shape = (rows.stop - rows.start, nx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            maps["light"][rows] = np.nanmean(np.where(np.isfinite(flux), flux, np.nan), axis=1).reshape(shape)
        has_data = np.isfinite(flux).any(axis=1)
        if mask is not None:
            has_data &= ~mask.all(axis=1)
        covered = inputs.coverage >= MIN_COVERAGE
        bright = ~(inputs.snr < min_snr)  # NaN S/N (no variance) is kept
        keep = has_data & covered & bright & inputs.usable
        counts["no data"] += int((~has_data).sum())
        counts["coverage"] += int((has_data & ~covered).sum())
        counts["low S/N"] += int((has_data & covered & ~bright).sum())
        counts["bad flux"] += int((has_data & covered & bright & ~inputs.usable).sum())
        maps["snr"][rows] = inputs.snr.reshape(shape)
        kept[rows] = keep.reshape(shape)
        if keep.any() and target_snr is None:
            prediction = predict_spectra(inputs.x[keep], snr=inputs.snr[keep])
            local = np.nonzero(keep)[0]
            _paint(maps, (start + local // nx, local % nx), prediction, slice(None))
        yield Progress("spectra", rows.stop, ny)
    if target_snr is None:
        bin_id = np.where(kept, np.arange(ny * nx).reshape(ny, nx), -1).astype(np.int32)
    else:
        bin_id = yield from _iter_map_bins(cube, plan, predict_spectra, maps, kept, min_snr, target_snr, step)
    meta = {
        "redshift": z,
        "redshift_origin": origin,
        "layout": plan.layout,
        "nan_reasons": counts,
        "source": Path(what).name,
    }
    return {**maps, "bin_id": bin_id, "meta": meta}


def _iter_map_bins(
    cube: Any, plan: Any, predict: Callable[..., Any], maps: dict[str, Any],
    kept: NDArray[np.bool_], min_snr: float, target_snr: float, step: int,
) -> ProgressGenerator[NDArray[np.int32]]:
    """Voronoi-bin the kept spaxels, map each bin's mean spectrum; return the bin map."""
    from napari_galam.core.spaxels import voronoi_bins

    signal = np.where(kept, maps["light"], np.nan)
    if not np.isfinite(maps["snr"][kept]).any():
        raise GalamInputError(f"{_what(cube)}: Voronoi binning needs S/N, but the cube has no variance")
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = np.where(kept, signal / maps["snr"], np.nan)
    try:
        bins = voronoi_bins(signal, noise, target_snr=target_snr, min_snr=min_snr)
    except ValueError as exc:  # vorbin: the whole cube does not reach the target
        raise GalamInputError(
            f"{_what(cube)}: cannot Voronoi-bin to S/N {target_snr:g}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from None
    if bins.n_bins == 0:
        return bins.bin_id
    flux, variance, bad = yield from _iter_bin_spectra(cube, bins.bin_id, bins.n_bins, step)
    inputs = spectral_inputs(plan, flux, variance, bad)
    usable = np.nonzero(inputs.usable)[0]
    bin_id = np.where(np.isin(bins.bin_id, usable), bins.bin_id, -1).astype(np.int32)
    if usable.size:
        prediction = predict(inputs.x[usable], snr=inputs.snr[usable])
        lookup = np.full(bins.n_bins, -1)
        lookup[usable] = np.arange(usable.size)
        painted = bin_id >= 0
        _paint(maps, np.nonzero(painted), prediction, lookup[bin_id[painted]])
    return bin_id
