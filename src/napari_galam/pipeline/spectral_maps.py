"""Map an IFU cube from its spectra, streaming through it by blocks of spaxel rows.

The spectral path of :func:`napari_galam.pipeline.maps.iter_map_source` (model
``spaxel-spectra``): one :class:`~napari_galam.core.spectral_input.SpectralInputPlan`
per cube (its wavelengths, layout and redshift), then for each block of rows the
spaxels' spectra with their variance and mask are read from the (memory-mapped or
lazy) cube, turned into model inputs (:func:`~napari_galam.core.spectral_input.spectral_inputs`)
and handed to the model, any callable ``predict_spectra(x, snr=..., layout=...)`` (in
napari, the model worker's; the layout picks the card's cube terms for that instrument).
A block is a few tens of MB, so a 1.3 GB MUSE cube is never held whole.

A spaxel without a prediction is NaN, counted by reason (:data:`NAN_REASONS`).

A big cube can also be split over Dask workers by blocks of rows
(:func:`iter_spectra_maps_distributed`): the redshift is resolved once here, and each
worker opens the cube from its file, maps its rows with
:func:`napari_galam.models.inference.predict_spectra` (:func:`iter_spectra_maps` with
``rows``) and sends back those rows' maps and NaN counts, which are put together into
the same maps as in this process. Binning (Voronoi or PowerBin,
:func:`napari_galam.pipeline.binning.spaxel_bins`) needs the whole field and stays here.
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
from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.binning import BINNING_LABELS, check_binning, spaxel_bins
from napari_galam.progress import Progress, ProgressGenerator

__all__ = [
    "MAP_MODELS",
    "DEFAULT_CUBE_MODEL",
    "NAN_REASONS",
    "REDSHIFT_KEYWORDS",
    "map_model_for",
    "cube_redshift",
    "rows_per_block",
    "iter_spectra_maps",
    "iter_spectra_source",
    "iter_spectra_maps_distributed",
    "DASK_ROWS_PER_TASK",
]

#: The models a cube can be mapped with (``galam map --model``; "auto": by source).
MAP_MODELS = ("auto", "spaxel-spectra", "sed-cnn")
#: The model "auto" picks for IFU cubes (narrow-band stacks always use "sed-cnn"). On
#: simulated CALIFA cubes with emission lines of all five star-formation-history families
#: (scripts/evaluate_spaxel_spectra_cubes.py --family all), spaxel-spectra reads log age
#: with robust SD 0.040-0.074 dex and biases within 0.041, the SED CNN 0.047-0.113 with
#: biases up to +0.18 (bursty); and the SED CNN's observed-frame filters cannot read MUSE
#: nor galaxies above z ~ 0.05.
DEFAULT_CUBE_MODEL = "spaxel-spectra"

#: Why a spaxel has no value, in the order they are checked.
NAN_REASONS: tuple[str, ...] = ("no data", "coverage", "low S/N", "bad flux")
#: Header keywords read (in this order) for the galaxy's redshift: redshifts, then
#: systemic velocities in km/s (CALIFA's ``MED_VEL``).
REDSHIFT_KEYWORDS: tuple[str, ...] = ("Z", "REDSHIFT", "NSA_Z", "MED_VEL", "VSYS")
_VELOCITY_KEYWORDS = ("MED_VEL", "VSYS")
#: Bytes of flux, variance and mask read per block of rows (about).
BLOCK_BYTES = 24 * 1024**2
#: Rows of spaxels per Dask task of :func:`iter_spectra_maps_distributed` (each task
#: still reads them by blocks of :func:`rows_per_block`).
DASK_ROWS_PER_TASK = 16


def map_model_for(source: Any, model: str, redshift: float | None = None) -> str:
    """The model that maps ``source`` (``model``: one of :data:`MAP_MODELS`).

    ``"auto"``: the SED CNN for narrow-band stacks, :data:`DEFAULT_CUBE_MODEL` for IFU
    cubes. ``"sed-cnn"`` on a cube it cannot read (its filters need 3762-9100 A
    observed: every MUSE cube) fails with the filter that is not covered. A stack cannot
    take ``spaxel-spectra``. ``redshift`` is accepted for symmetry with the mapping call
    and not needed to choose.
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


def trained_redshift_range(layout: str, card: dict[str, Any] | None = None) -> tuple[float, float]:
    """The redshifts at which the spectral model saw spectra of ``layout``.

    From the card's ``training_data.redshift_range`` (per layout); a layout it does not
    name (``generic``) gets the widest range of any. Cards without the entry: (0, inf).
    """
    if card is None:
        from napari_galam.models.registry import read_model_card

        card = read_model_card("spaxel-spectra")
    ranges = card.get("training_data", {}).get("redshift_range") or {}
    try:
        pairs = {str(k): (float(v[0]), float(v[1])) for k, v in ranges.items()}
    except (TypeError, ValueError, IndexError, AttributeError):
        pairs = {}
    if layout in pairs:
        return pairs[layout]
    if not pairs:
        return 0.0, float("inf")
    return min(lo for lo, _ in pairs.values()), max(hi for _, hi in pairs.values())


def _redshift_code(plan: Any) -> int:
    """:data:`~napari_galam.models.sed_uncertainty.OOD_REDSHIFT` when the model never saw
    this instrument's spectra at the plan's redshift, else 0 (every mapped spaxel of the
    cube shares it: an extrapolation, still mapped)."""
    from napari_galam.models.sed_uncertainty import OOD_REDSHIFT

    lo, hi = trained_redshift_range(plan.layout)
    return 0 if lo - 1e-6 <= plan.redshift <= hi + 1e-6 else OOD_REDSHIFT


def _paint(
    maps: dict[str, Any], where: Any, prediction: Any, index: Any, cube_code: int = 0
) -> None:
    """Put the prediction's rows ``index`` into the maps at ``where``, adding the cube's own
    out-of-distribution bits ``cube_code`` (:func:`_redshift_code`) to each spaxel's."""
    for name in ("log_age", "mh", "log_age_err", "mh_err"):
        maps[name][where] = np.asarray(getattr(prediction, name), np.float32)[index]
    maps["ood"][where] = np.asarray(prediction.ood_reason, np.uint8)[index] | np.uint8(cube_code)


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


def _maps_meta(z: float, origin: str, plan: Any, counts: dict[str, int], what: Any) -> dict:
    """What the spectral maps record: redshift and its origin, layout, NaN reasons, file."""
    return {
        "redshift": z,
        "redshift_origin": origin,
        "layout": plan.layout,
        "training_redshifts": trained_redshift_range(plan.layout),
        "nan_reasons": counts,
        "source": Path(what).name,
    }


def iter_spectra_maps(
    cube: Any,
    predict_spectra: Callable[..., Any],
    *,
    min_snr: float = 3.0,
    target_snr: float | None = None,
    redshift: float | None = None,
    block_rows: int | None = None,
    rows: tuple[int, int] | None = None,
    binning: str = "voronoi",
) -> ProgressGenerator[dict[str, Any]]:
    """Map ``cube`` (a :class:`~napari_galam.io.cubes.SpectralCube`) block by block.

    Yields ``Progress("spectra", rows_done, n_rows)``; returns a dict of ``(n_rows, nx)``
    maps (``log_age``, ``mh``, ``snr``, ``log_age_err``, ``mh_err``, ``ood``, ``light``,
    ``bin_id``) and ``meta`` (redshift and its origin, layout, counts per NaN reason).
    With ``target_snr`` the kept spaxels are binned on their S/N with ``binning``
    (``"voronoi"`` or ``"powerbin"``: :func:`napari_galam.pipeline.binning.spaxel_bins`)
    and each bin's mean spectrum, gathered in a second pass over the cube, is mapped
    instead.

    Parameters
    ----------
    rows
        ``(start, stop)``: map only these rows of spaxels (``n_rows = stop - start``; a
        Dask task of :func:`iter_spectra_maps_distributed`); ``bin_id`` keeps the
        spaxels' indices in the whole cube. None: every row (``n_rows = ny``). Cannot be
        combined with ``target_snr``.

    Raises
    ------
    GalamInputError
        When the cube's wavelength axis cannot be used by the model at this redshift
        (names the file, its range and what the model needs), ``rows`` is not a range
        of the cube's rows or comes with ``target_snr``, ``binning`` is unknown, or the
        binner cannot reach ``target_snr``.
    """
    check_binning(binning)
    plan, z, origin, what = _plan_for(cube, redshift)
    n_wave, ny, nx = cube.shape
    first, last = _row_range(what, ny, rows, target_snr, binning)
    n_rows = last - first
    names = ("log_age", "mh", "snr", "log_age_err", "mh_err", "light")
    maps: dict[str, Any] = {name: np.full((n_rows, nx), np.nan, dtype=np.float32) for name in names}
    maps["ood"] = np.zeros((n_rows, nx), dtype=np.uint8)
    cube_code = _redshift_code(plan)
    kept = np.zeros((n_rows, nx), dtype=bool)
    counts = dict.fromkeys(NAN_REASONS, 0)
    step = block_rows or rows_per_block(n_wave, nx)
    yield Progress("spectra", 0, n_rows)
    for start in range(first, last, step):
        block = slice(start, min(last, start + step))
        flux, variance, mask = _read_rows(cube, block)
        inputs = spectral_inputs(plan, flux, variance, mask)
        here = slice(block.start - first, block.stop - first)  # the block in the maps
        shape = (block.stop - block.start, nx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            maps["light"][here] = np.nanmean(
                np.where(np.isfinite(flux), flux, np.nan), axis=1
            ).reshape(shape)
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
        maps["snr"][here] = inputs.snr.reshape(shape)
        kept[here] = keep.reshape(shape)
        if keep.any() and target_snr is None:
            prediction = predict_spectra(inputs.x[keep], snr=inputs.snr[keep], layout=plan.layout)
            local = np.nonzero(keep)[0]
            _paint(maps, (here.start + local // nx, local % nx), prediction, slice(None),
                   cube_code)  # fmt: skip
        yield Progress("spectra", here.stop, n_rows)
    if target_snr is None:
        index = np.arange(first * nx, last * nx).reshape(n_rows, nx)
        bin_id = np.where(kept, index, -1).astype(np.int32)
    else:
        bin_id = yield from _iter_map_bins(
            cube, plan, predict_spectra, maps, kept, (min_snr, target_snr, binning), step
        )
    return {**maps, "bin_id": bin_id, "meta": _maps_meta(z, origin, plan, counts, what)}


def _row_range(
    what: str, ny: int, rows: tuple[int, int] | None, target_snr: float | None, binning: str
) -> tuple[int, int]:
    """``rows`` checked against the cube's ``ny`` rows (None: all of them)."""
    if rows is None:
        return 0, ny
    first, last = (int(r) for r in rows)
    if not 0 <= first < last <= ny:
        raise GalamInputError(f"{what}: rows {first}:{last} are not a range of its {ny} rows")
    if target_snr is not None:
        raise GalamInputError(
            f"{what}: {BINNING_LABELS[binning]} needs the whole field, not rows {first}:{last}"
        )
    return first, last


def _map_rows_task(
    path: str, start: int, stop: int, min_snr: float, redshift: float, block_rows: int | None
) -> dict[str, Any]:
    """Dask task: the maps of rows ``start:stop`` of the cube at ``path``, read here.

    The cube's lazy (dask) arrays are computed in this process: inside a task, dask's
    default scheduler would be the cluster itself (see
    :func:`napari_galam.pipeline.distributed.run_partition_here`).
    """
    import dask

    from napari_galam.io.cubes import read_cube
    from napari_galam.models.inference import predict_spectra
    from napari_galam.progress import run_to_end

    with dask.config.set(scheduler="synchronous"):
        cube = read_cube(path)
        return run_to_end(
            iter_spectra_maps(
                cube, predict_spectra, min_snr=min_snr, redshift=redshift,
                block_rows=block_rows, rows=(start, stop),
            )
        )  # fmt: skip


def _block_error(what: str, start: int, stop: int, exc: BaseException) -> GalamError:
    """The error of a Dask task that could not map rows ``start:stop`` of ``what``."""
    detail = str(exc).strip() or type(exc).__name__
    if detail.startswith(f"{what}: "):
        detail = detail[len(what) + 2 :]  # the file is named once
    elif not isinstance(exc, GalamError):
        detail = f"{type(exc).__name__}: {detail}"
    kind = GalamInputError if isinstance(exc, GalamInputError) else GalamError
    return kind(f"{what}: rows {start}:{stop} could not be mapped on a Dask worker: {detail}")


def iter_spectra_maps_distributed(
    cube: Any,
    *,
    min_snr: float = 3.0,
    redshift: float | None = None,
    rows_per_task: int = DASK_ROWS_PER_TASK,
    block_rows: int | None = None,
    client: Any = None,
    n_workers: int | None = None,
    scheduler: str | None = None,
) -> ProgressGenerator[dict[str, Any]]:
    """Map ``cube`` like :func:`iter_spectra_maps` (without binning), its rows split over Dask.

    The redshift is resolved here, once (the same way as in this process), and handed to
    every task as a number, so that all blocks share one input plan. Each task
    (:func:`iter_spectra_maps` with ``rows``) opens the cube from ``cube.path`` on its
    worker and maps ``rows_per_task`` rows with
    :func:`napari_galam.models.inference.predict_spectra` (so TensorFlow is imported by
    the workers only). Yields ``Progress("spectra", rows_done, ny)`` as tasks finish;
    returns the same dict as :func:`iter_spectra_maps`, with ``meta["engine"] = "dask"``.
    The client comes from :func:`napari_galam.pipeline.distributed.dask_client`
    (``client``, else ``scheduler``, else a new LocalCluster of ``n_workers``). Workers
    must see the cube's file at the same path.

    Raises
    ------
    GalamInputError
        When the model cannot read the cube's wavelengths at this redshift (before any
        task is sent), or a task fails on bad input.
    GalamError
        When a task fails for another reason (a worker killed included). Either names
        the file and the rows; the tasks still waiting are cancelled.
    """
    from distributed import as_completed

    from napari_galam.pipeline.distributed import dask_client

    plan, z, origin, what = _plan_for(cube, redshift)
    _, ny, nx = cube.shape
    step = max(1, int(rows_per_task))
    blocks = [(start, min(ny, start + step)) for start in range(0, ny, step)]
    names = ("log_age", "mh", "snr", "log_age_err", "mh_err", "light")
    maps: dict[str, Any] = {name: np.full((ny, nx), np.nan, dtype=np.float32) for name in names}
    maps["ood"] = np.zeros((ny, nx), dtype=np.uint8)
    bin_id = np.full((ny, nx), -1, dtype=np.int32)
    counts = dict.fromkeys(NAN_REASONS, 0)
    yield Progress("spectra", 0, ny)
    with dask_client(client, scheduler=scheduler, n_workers=n_workers) as client:
        futures = [
            client.submit(
                _map_rows_task, str(cube.path), start, stop, min_snr, z, block_rows, pure=False
            )
            for start, stop in blocks
        ]
        block_of = {future.key: block for future, block in zip(futures, blocks, strict=True)}
        done = 0
        try:
            for future in as_completed(futures):
                start, stop = block_of[future.key]
                try:
                    part = future.result()
                except Exception as exc:  # noqa: BLE001 - any failure names the file and rows
                    raise _block_error(what, start, stop, exc) from exc
                for name in (*names, "ood", "bin_id"):
                    (bin_id if name == "bin_id" else maps[name])[start:stop] = part[name]
                for reason, n in part["meta"]["nan_reasons"].items():
                    counts[reason] += int(n)
                done += stop - start
                yield Progress("spectra", done, ny)
        finally:
            client.cancel(futures)  # nothing left running when a task failed or we stopped
    meta = {
        **_maps_meta(z, origin, plan, counts, what),
        "engine": "dask",
        "dask_tasks": len(blocks),
    }
    return {**maps, "bin_id": bin_id, "meta": meta}


def _iter_map_bins(
    cube: Any,
    plan: Any,
    predict: Callable[..., Any],
    maps: dict[str, Any],
    kept: NDArray[np.bool_],
    settings: tuple[float, float, str],
    step: int,
) -> ProgressGenerator[NDArray[np.int32]]:
    """Bin the kept spaxels on their S/N (``settings``: minimum and target S/N, binner),
    map each bin's mean spectrum; return the bin map."""
    min_snr, target_snr, binning = settings
    if not np.isfinite(maps["snr"][kept]).any():
        raise GalamInputError(
            f"{_what(cube)}: {BINNING_LABELS[binning]} needs S/N, but the cube has no variance"
        )
    bins = spaxel_bins(
        np.where(kept, maps["light"], np.nan), np.where(kept, maps["snr"], np.nan),
        target_snr=target_snr, min_snr=min_snr, binning=binning, what=_what(cube),
    )  # fmt: skip
    if bins.n_bins == 0:
        return bins.bin_id
    flux, variance, bad = yield from _iter_bin_spectra(cube, bins.bin_id, bins.n_bins, step)
    inputs = spectral_inputs(plan, flux, variance, bad)
    usable = np.nonzero(inputs.usable)[0]
    bin_id = np.where(np.isin(bins.bin_id, usable), bins.bin_id, -1).astype(np.int32)
    if usable.size:
        prediction = predict(inputs.x[usable], snr=inputs.snr[usable], layout=plan.layout)
        lookup = np.full(bins.n_bins, -1)
        lookup[usable] = np.arange(usable.size)
        painted = bin_id >= 0
        _paint(maps, np.nonzero(painted), prediction, lookup[bin_id[painted]], _redshift_code(plan))
    return bin_id


def iter_spectra_source(
    cube: Any,
    predict: Callable[..., Any] | None,
    min_snr: float,
    target_snr: float | None,
    redshift: float | None,
    meta: dict[str, Any] | None,
    dask: dict[str, Any] | None = None,
    binning: str = "voronoi",
) -> ProgressGenerator[dict[str, Any]]:
    """The ``spaxel-spectra`` maps of a cube, per spaxel or per bin (the spectral
    branch of :func:`napari_galam.pipeline.maps.iter_map_source`, which makes them a
    ``SpaxelMaps``): the maps of :func:`iter_spectra_maps` with ``meta`` completed by
    ``meta`` given, the S/N settings, the binner (None when not binned), the model and
    the number of spaxels with a value.

    Streamed here (:func:`iter_spectra_maps`, with ``predict``; None:
    :func:`napari_galam.models.inference.predict_spectra`), or, when ``dask`` holds the
    client options (``client``, ``n_workers``), split over Dask workers by blocks of
    rows (:func:`iter_spectra_maps_distributed`, whose workers use their own model).
    """
    if dask is not None:
        out = yield from iter_spectra_maps_distributed(
            cube, min_snr=min_snr, redshift=redshift, **dask
        )
    else:
        if predict is None:
            from napari_galam.models.inference import predict_spectra as predict
        out = yield from iter_spectra_maps(
            cube, predict, min_snr=min_snr, target_snr=target_snr, redshift=redshift,
            binning=binning,
        )  # fmt: skip
    out["meta"] = {**(meta or {}), **out["meta"], "min_snr": min_snr, "target_snr": target_snr,
                   "binning": None if target_snr is None else binning,
                   "model": "spaxel-spectra", "n_kept": int(np.isfinite(out["log_age"]).sum())}  # fmt: skip
    return out
