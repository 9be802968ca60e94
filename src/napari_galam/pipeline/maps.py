"""Map a cube: per-spaxel age and [M/H] from its spectra or from narrow-band SEDs.

The one home of "map a cube". Two models: ``spaxel-spectra`` reads each spaxel's
spectrum (any IFU layout and coverage, streamed by blocks of rows:
:mod:`napari_galam.pipeline.spectral_maps`); ``sed-cnn`` (Liew-Cain et al. 2021) reads
narrow-band SEDs, and ``"auto"`` picks by source (:func:`map_model_for`). For the SED
CNN, IFU cubes (CALIFA, MaNGA, MUSE, generic) first go through
the narrow-band filters the SED model was trained on (synthetic photometry,
:mod:`napari_galam.core.spaxels`); narrow-band stacks give their SEDs directly, matched
to the model's filters by name. Spaxels below a S/N floor are left out; optionally the
rest are binned to a target S/N (Voronoi or PowerBin:
:func:`napari_galam.pipeline.binning.spaxel_bins`). The model itself is any callable
``predict_seds(seds, snr=...) -> prediction`` with ``log_age`` and ``mh`` arrays of the SEDs'
leading shape: in napari, :meth:`napari_galam.models.worker.ModelWorker.predict_seds`,
so that TensorFlow stays out of the viewer's process.

:func:`iter_map_source` maps an opened source (from
:func:`napari_galam.io.sources.open_source`): the Spaxel maps dock calls it, and so does
:func:`map_cube_to_file`, which ``galam map`` runs per cube in partitions
(:data:`MAP_JOB` for the partition runner of :mod:`napari_galam.pipeline.distributed`,
in this process or on Dask). Big cubes (``distributed_min_spaxels``) are split over Dask
workers by blocks of rows, with either model (:func:`iter_map_cube_distributed`;
:func:`napari_galam.pipeline.spectral_maps.iter_spectra_maps_distributed`), unless binned.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.spaxels import SpaxelSEDs, bin_seds
from napari_galam.errors import GalamError, GalamInputError
from napari_galam.models.sed_uncertainty import ood_bits_note
from napari_galam.pipeline.batch_files import (
    input_path_problem,
    resolved_path,
    unexpected_error_reason,
)
from napari_galam.pipeline.binning import BINNING_LABELS, check_binning, spaxel_bins
from napari_galam.pipeline.distributed import PartitionJob, dask_client, write_rows
from napari_galam.pipeline.spectral_maps import (
    DEFAULT_CUBE_MODEL,
    MAP_MODELS,
    iter_spectra_source,
    map_model_for,
)
from napari_galam.progress import Progress, ProgressGenerator, run_to_end

__all__ = [
    "SpaxelMaps",
    "iter_seds_from_cube",
    "seds_from_cube",
    "seds_from_narrowband",
    "iter_map_cube_distributed",
    "iter_map_seds",
    "iter_map_source",
    "sed_model_filters",
    "map_seds",
    "map_cube_to_file",
    "map_partition",
    "maps_target",
    "MAP_COLUMNS",
    "MAP_JOB",
    "DEFAULT_CUBES_PER_PARTITION",
    "MAP_MODELS",
    "DEFAULT_CUBE_MODEL",
    "map_model_for",
]

MAP_COLUMNS = ("source", "maps", "status", "reason", "n_mapped")
#: Cubes per partition of ``galam map`` (``--partition-size``).
DEFAULT_CUBES_PER_PARTITION = 1
#: The units of the maps' FITS extensions.
MAP_UNITS = {"LOG_AGE": "dex", "MH": "dex", "SNR": "", "BIN_ID": "",
             "LOG_AGE_ERR": "dex", "MH_ERR": "dex", "OOD": ""}  # fmt: skip


@dataclass(frozen=True)
class SpaxelMaps:
    """Age and metallicity maps on a cube's spaxel grid.

    Attributes
    ----------
    log_age, mh
        ``(ny, nx)`` log10(age/yr) and [M/H] in dex; NaN where no prediction was made.
    snr
        ``(ny, nx)`` median S/N of the SED per spaxel (NaN without variance).
    bin_id
        ``(ny, nx)`` bin of each spaxel (-1: left out); the spaxel index when not binned.
    band_names
        The filters the SEDs were measured in.
    model
        The model's name.
    meta
        Provenance: source file, S/N floor and target, binner, number of spaxels mapped.
    light
        ``(ny, nx)`` collapsed light of the source (mean SED flux; the middle plane of
        a cube mapped on Dask), for the galaxy's ellipse and R_e; None when not made.
    log_age_err, mh_err
        ``(ny, nx)`` calibrated 1-sigma errors (dex) where a value exists, NaN elsewhere;
        None when the model gives none.
    ood
        ``(ny, nx)`` uint8 out-of-distribution reasons of each mapped spaxel (bits of
        :mod:`napari_galam.models.sed_uncertainty`; 0: in the training range or not
        mapped); None when the model gives none.
    """

    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    snr: NDArray[np.float32]
    bin_id: NDArray[np.int32]
    band_names: tuple[str, ...]
    model: str
    meta: dict[str, Any] = field(default_factory=dict)
    light: NDArray[np.float64] | None = None
    log_age_err: NDArray[np.float32] | None = None
    mh_err: NDArray[np.float32] | None = None
    ood: NDArray[np.uint8] | None = None

    @property
    def n_mapped(self) -> int:
        """Number of spaxels with a prediction."""
        return int(np.isfinite(self.log_age).sum())

    def as_dict(self) -> dict[str, NDArray[Any]]:
        """The maps by FITS extension name, for :func:`napari_galam.io.writers.write_maps`.

        ``LOG_AGE_ERR``, ``MH_ERR`` and ``OOD`` are included when the model gave them.
        """
        maps = {"LOG_AGE": self.log_age, "MH": self.mh, "SNR": self.snr, "BIN_ID": self.bin_id}
        extra = {"LOG_AGE_ERR": self.log_age_err, "MH_ERR": self.mh_err, "OOD": self.ood}
        maps.update({name: value for name, value in extra.items() if value is not None})
        return maps


def sed_model_filters(model: str = "sed-cnn") -> list[str]:
    """The narrow-band filter names a shipped SED model takes, in order (from its card)."""
    from napari_galam.models.registry import read_model_card

    card = read_model_card(model)
    names = card.get("input", {}).get("filters")
    if not names:
        raise GalamInputError(
            f"model {model!r}: its card does not list the filters it was trained on "
            "(input.filters); retrain or re-save it with the filter names."
        )
    return [str(name) for name in names]


def iter_seds_from_cube(cube: Any, filters: Any) -> ProgressGenerator[SpaxelSEDs]:
    """Synthetic photometry of every spaxel of a :class:`io.cubes.SpectralCube`.

    Yields ``Progress("photometry", rows_done, ny)`` and returns the :class:`SpaxelSEDs`.
    """
    from napari_galam.core.spaxels import iter_cube_to_seds

    return (
        yield from iter_cube_to_seds(
            cube.wave, cube.data, filters, variance=cube.variance, mask=cube.mask,
            what=cube.name,
        )
    )  # fmt: skip


def seds_from_cube(cube: Any, filters: Any) -> SpaxelSEDs:
    """Run :func:`iter_seds_from_cube` to the end and return the SEDs."""
    return run_to_end(iter_seds_from_cube(cube, filters))


def seds_from_narrowband(stack: Any, band_names: Sequence[str]) -> SpaxelSEDs:
    """The SEDs of a :class:`io.narrowband.NarrowBandStack`, in the order of ``band_names``.

    Raises
    ------
    GalamInputError
        When the stack lacks filters the model needs (the message lists them).
    """
    available = {name.lower(): i for i, name in enumerate(stack.filter_names)}
    missing = [name for name in band_names if name.lower() not in available]
    if missing:
        raise GalamInputError(
            f"narrow-band stack {', '.join(str(p) for p in stack.paths)}: the model needs "
            f"filters {', '.join(missing[:6])}{'...' if len(missing) > 6 else ''} "
            f"({len(missing)} missing); the stack has {', '.join(stack.filter_names[:6])}..."
        )
    order = [available[name.lower()] for name in band_names]
    flux = np.stack([np.asarray(stack.data[i], dtype=np.float32) for i in order])
    if stack.variance is not None:
        variance = np.stack([np.asarray(stack.variance[i], dtype=np.float32) for i in order])
        error = np.sqrt(np.where(variance > 0, variance, np.nan)).astype(np.float32)
    else:
        error = np.full_like(flux, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = flux / error
    snr = (
        np.nanmedian(ratio, axis=0).astype(np.float32)
        if np.isfinite(ratio).any()
        else np.full(flux.shape[1:], np.nan, np.float32)
    )
    centres = np.asarray(stack.wavelength, float)[order]
    return SpaxelSEDs(flux, error, snr, tuple(band_names), centres)


def _training_min_snr(model: str) -> float | None:
    """The lowest S/N the SED model was trained on (its card), or None when not calibrated."""
    from napari_galam.models.registry import read_model_card
    from napari_galam.models.sed_uncertainty import sed_calibration

    try:
        return sed_calibration(read_model_card(model), model).min_snr
    except GalamError:
        return None


class _MapPainter:
    """Maps of values, errors and flags filled from one prediction of spaxels or bins."""

    def __init__(self, shape: tuple[int, int], min_snr: float | None) -> None:
        self.log_age = np.full(shape, np.nan, dtype=np.float32)
        self.mh = np.full(shape, np.nan, dtype=np.float32)
        self.log_age_err: NDArray[np.float32] | None = None
        self.mh_err: NDArray[np.float32] | None = None
        self.ood: NDArray[np.uint8] | None = None
        self.shape = shape
        self.min_snr = min_snr

    def paint(self, where: Any, prediction: Any, index: Any, snr: Any) -> None:
        """Put ``prediction``'s rows ``index`` (spaxels or bins of S/N ``snr``) at ``where``."""
        from napari_galam.models.sed_uncertainty import low_snr_codes

        self.log_age[where] = np.asarray(prediction.log_age, dtype=np.float32)[index]
        self.mh[where] = np.asarray(prediction.mh, dtype=np.float32)[index]
        errors = getattr(prediction, "log_age_err", None), getattr(prediction, "mh_err", None)
        if errors[0] is None or errors[1] is None:
            return
        self.log_age_err = np.full(self.shape, np.nan, dtype=np.float32)
        self.mh_err = np.full(self.shape, np.nan, dtype=np.float32)
        self.log_age_err[where] = np.asarray(errors[0], dtype=np.float32)[index]
        self.mh_err[where] = np.asarray(errors[1], dtype=np.float32)[index]
        reason = getattr(prediction, "ood_reason", None)
        codes = np.zeros(np.size(prediction.log_age), np.uint8)
        if reason is not None:
            codes |= np.asarray(reason, dtype=np.uint8).reshape(-1)
        if self.min_snr is not None:
            codes |= low_snr_codes(snr, self.min_snr)
        self.ood = np.zeros(self.shape, dtype=np.uint8)
        self.ood[where] = codes[index]
        self.ood[~np.isfinite(self.log_age)] = 0

    def extras(self) -> dict[str, Any]:
        """The error and flag maps (None when the prediction gave none)."""
        return {"log_age_err": self.log_age_err, "mh_err": self.mh_err, "ood": self.ood}


def iter_map_seds(
    seds: SpaxelSEDs,
    predict_seds: Callable[..., Any],
    *,
    min_snr: float = 3.0,
    target_snr: float | None = None,
    model: str = "sed-cnn",
    meta: dict[str, Any] | None = None,
    binning: str = "voronoi",
) -> ProgressGenerator[SpaxelMaps]:
    """Predict maps from SEDs, yielding ``Progress`` ("binning", "prediction"); return them.

    Parameters
    ----------
    seds
        The spaxels' SEDs in the model's filters.
    predict_seds
        ``(n, n_filters), snr=(n,) -> prediction`` with ``log_age`` and ``mh`` of length
        ``n`` (``snr``: each input's S/N, NaN where unknown; it sets the error scale).
    min_snr
        Spaxels with a median S/N below this are left out (ignored when the SEDs have
        no errors, i.e. S/N is NaN everywhere).
    target_snr, binning
        When ``target_snr`` is given, bin the kept spaxels to it with ``binning``
        ("voronoi" or "powerbin", :func:`~napari_galam.pipeline.binning.spaxel_bins`) and
        predict per bin from its mean SED.
    model, meta
        Recorded in the result (``meta["source"]`` names the cube in errors).
    """
    check_binning(binning)
    ny, nx = seds.flux.shape[1:]
    have_snr = bool(np.isfinite(seds.snr).any())
    keep = seds.valid & (seds.snr >= min_snr if have_snr else True)
    if target_snr is not None and not have_snr:
        raise GalamInputError(f"{BINNING_LABELS[binning]} needs S/N; the cube has no variance.")
    painter = _MapPainter((ny, nx), _training_min_snr(model))
    bin_id = np.full((ny, nx), -1, dtype=np.int32)
    if target_snr is not None and keep.any():
        yield Progress("binning", 0, 1)
        signal = np.where(keep, np.nanmean(seds.flux, axis=0), np.nan)
        bins = spaxel_bins(signal, np.where(keep, seds.snr, np.nan), target_snr=target_snr,
                           min_snr=min_snr, binning=binning,
                           what=str((meta or {}).get("source", "cube")))  # fmt: skip
        bin_id = bins.bin_id
        inputs = bin_seds(seds, bins)
        yield Progress("binning", 1, 1)
        prediction = predict_seds(inputs, snr=bins.snr)
        yield Progress("prediction", bins.n_bins, bins.n_bins)
        painted = bin_id >= 0
        painter.paint(np.nonzero(painted), prediction, bin_id[painted], bins.snr)
    elif keep.any():
        rows, cols = np.nonzero(keep)
        bin_id[rows, cols] = np.arange(rows.size, dtype=np.int32)
        inputs = seds.flux[:, rows, cols].T.copy()
        yield Progress("prediction", 0, rows.size)
        prediction = predict_seds(inputs, snr=seds.snr[rows, cols])
        painter.paint((rows, cols), prediction, slice(None), seds.snr[rows, cols])
        yield Progress("prediction", rows.size, rows.size)
    info = dict(meta or {})
    info.update(
        {"min_snr": min_snr, "target_snr": target_snr, "n_kept": int(keep.sum()), "model": model,
         "binning": None if target_snr is None else binning}
    )  # fmt: skip
    return SpaxelMaps(
        log_age=painter.log_age,
        mh=painter.mh,
        snr=seds.snr.astype(np.float32),
        bin_id=bin_id,
        band_names=seds.band_names,
        model=model,
        meta=info,
        **painter.extras(),
    )


def map_seds(
    seds: SpaxelSEDs,
    predict_seds: Callable[..., Any],
    **options: Any,
) -> SpaxelMaps:
    """Run :func:`iter_map_seds` to the end and return the maps."""
    return run_to_end(iter_map_seds(seds, predict_seds, **options))


def _map_cube_rows(
    path: str, filter_names: list[str], start: int, stop: int, min_snr: float, model: str
) -> tuple[int, SpaxelMaps]:
    """Dask task: maps of rows ``start:stop`` of the cube at ``path`` (read on the worker)."""
    from napari_galam.core.spaxels import cube_to_seds
    from napari_galam.io.cubes import read_cube
    from napari_galam.models.inference import predict_seds
    from napari_galam.sps.filters import load_filters

    cube = read_cube(path)
    rows = slice(start, stop)
    seds = cube_to_seds(
        cube.wave,
        cube.data[:, rows, :],
        load_filters(filter_names),
        variance=None if cube.variance is None else cube.variance[:, rows, :],
        mask=None if cube.mask is None else cube.mask[:, rows, :],
        what=cube.name,
    )
    return start, map_seds(seds, predict_seds, min_snr=min_snr, model=model)


def iter_map_cube_distributed(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    filter_names: Sequence[str],
    *,
    min_snr: float = 3.0,
    rows_per_partition: int = 16,
    model: str = "sed-cnn",
    client: Any = None,
    n_workers: int | None = None,
    scheduler: str | None = None,
) -> ProgressGenerator[SpaxelMaps]:
    """Map a big cube on Dask: each worker reads and maps blocks of rows from the file.

    The same steps as :func:`iter_seds_from_cube` + :func:`iter_map_seds` (without
    Voronoi binning, which needs the whole field at once). Yields
    ``Progress("rows", done, ny)`` and returns the assembled :class:`SpaxelMaps`. The
    client comes from :func:`~napari_galam.pipeline.distributed.dask_client`.
    """
    from distributed import as_completed

    _, ny, nx = shape
    with dask_client(client, scheduler=scheduler, n_workers=n_workers) as client:
        blocks = [(r, min(ny, r + rows_per_partition)) for r in range(0, ny, rows_per_partition)]
        futures = [
            client.submit(
                _map_cube_rows, str(path), list(filter_names), a, b, min_snr, model, pure=False
            )
            for a, b in blocks
        ]
        names = ("log_age", "mh", "snr", "log_age_err", "mh_err")
        full = {name: np.full((ny, nx), np.nan, dtype=np.float32) for name in names}
        ood = np.zeros((ny, nx), dtype=np.uint8)
        with_errors = True
        bin_id = np.full((ny, nx), -1, dtype=np.int32)
        done = 0
        for future in as_completed(futures):
            start, part = future.result()
            stop = start + part.log_age.shape[0]
            with_errors &= part.log_age_err is not None and part.ood is not None
            for name in names:
                value = getattr(part, name)
                if value is not None:
                    full[name][start:stop] = value
            if part.ood is not None:
                ood[start:stop] = part.ood
            kept = part.bin_id >= 0
            bin_id[start:stop][kept] = part.bin_id[kept] + start * nx  # unique across blocks
            done += stop - start
            yield Progress("rows", done, ny)
    log_age = full["log_age"]
    return SpaxelMaps(
        log_age=log_age,
        mh=full["mh"],
        snr=full["snr"],
        bin_id=bin_id,
        band_names=tuple(filter_names),
        model=model,
        meta={"min_snr": min_snr, "target_snr": None, "n_kept": int(np.isfinite(log_age).sum()),
              "model": model, "source": str(path), "engine": "dask", "binning": None},
        log_age_err=full["log_age_err"] if with_errors else None,
        mh_err=full["mh_err"] if with_errors else None,
        ood=ood if with_errors else None,
    )  # fmt: skip


# ------------------------------------------------------------------------ a whole source


def _is_narrowband(source: Any) -> bool:
    from napari_galam.io.narrowband import NarrowBandStack

    return isinstance(source, NarrowBandStack)


def _mean_light(seds: SpaxelSEDs) -> NDArray[np.float64]:
    """The collapsed light of the spaxels: their mean SED flux (NaN where none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # spaxels without any flux
        return np.nanmean(seds.flux, axis=0)


def iter_map_source(
    source: Any,
    predict_seds: Callable[..., Any],
    *,
    min_snr: float = 3.0,
    target_snr: float | None = None,
    model: str = "sed-cnn",
    meta: dict[str, Any] | None = None,
    distributed_min_spaxels: int | None = None,
    n_workers: int | None = None,
    client: Any = None,
    predict_spectra: Callable[..., Any] | None = None,
    redshift: float | None = None,
    binning: str = "voronoi",
) -> ProgressGenerator[SpaxelMaps]:
    """Map an opened cube or narrow-band stack; yield ``Progress``, return the maps.

    The SED model's filters (:func:`sed_model_filters`), the SEDs of the source
    (:func:`iter_seds_from_cube` or :func:`seds_from_narrowband`), then
    :func:`iter_map_seds`. The maps carry the source's collapsed light
    (:attr:`SpaxelMaps.light`).

    Parameters
    ----------
    source
        A :class:`~napari_galam.io.cubes.SpectralCube` or
        :class:`~napari_galam.io.narrowband.NarrowBandStack`
        (:func:`napari_galam.io.sources.open_source`).
    predict_seds
        ``(n, n_filters) -> prediction`` with ``log_age`` and ``mh`` of length ``n``
        (not called on the Dask path, whose workers use their own models).
    min_snr, target_snr, binning, model, meta
        As for :func:`iter_map_seds` (``binning`` also for ``spaxel-spectra``).
    distributed_min_spaxels
        A cube with at least this many spaxels is mapped on Dask by blocks of rows
        (:func:`iter_map_cube_distributed`, or for ``spaxel-spectra``
        :func:`napari_galam.pipeline.spectral_maps.iter_spectra_maps_distributed`), unless
        ``target_snr`` asks for binning; None: never. The workers open the cube
        from its file, so a cube whose ``path`` is not a file is mapped here.
    n_workers, client
        The Dask cluster of that path (see
        :func:`~napari_galam.pipeline.distributed.dask_client`).
    predict_spectra, redshift
        With ``model="spaxel-spectra"`` (or ``"auto"`` for a cube): the spectral model
        (:func:`napari_galam.models.inference.predict_spectra` or the worker's; not
        called on the Dask path) and the galaxy's redshift (None: from the header, else
        0); the cube is streamed by blocks of rows
        (:mod:`napari_galam.pipeline.spectral_maps`).
    """
    model = map_model_for(source, model, redshift)
    check_binning(binning)
    if model == "spaxel-spectra":
        _, ny, nx = source.shape
        big = distributed_min_spaxels is not None and ny * nx >= distributed_min_spaxels
        on_disk = Path(getattr(source, "path", "") or "").is_file()
        dask = {"client": client, "n_workers": n_workers}
        out = yield from iter_spectra_source(
            source, predict_spectra, min_snr, target_snr, redshift, meta,
            dask if big and on_disk and target_snr is None else None, binning,
        )  # fmt: skip
        return SpaxelMaps(
            log_age=out["log_age"], mh=out["mh"], snr=out["snr"], bin_id=out["bin_id"],
            band_names=("spectrum 3500-9000 A (rest)",), model="spaxel-spectra",
            meta=out["meta"], light=out["light"].astype(np.float64),
            log_age_err=out["log_age_err"], mh_err=out["mh_err"], ood=out["ood"],
        )  # fmt: skip
    filters = sed_model_filters(model)
    if _is_narrowband(source):
        seds = seds_from_narrowband(source, filters)
    else:
        _, ny, nx = source.shape
        big = distributed_min_spaxels is not None and ny * nx >= distributed_min_spaxels
        if big and target_snr is None:
            maps = yield from iter_map_cube_distributed(
                source.path, source.shape, filters, min_snr=min_snr, model=model,
                n_workers=n_workers, client=client,
            )  # fmt: skip
            light = np.asarray(source.data[source.shape[0] // 2], dtype=float)
            return dataclasses.replace(maps, light=light)
        from napari_galam.sps.filters import load_filters

        seds = yield from iter_seds_from_cube(source, load_filters(filters))
    maps = yield from iter_map_seds(seds, predict_seds, min_snr=min_snr, target_snr=target_snr,
                                    model=model, meta=meta, binning=binning)  # fmt: skip
    return dataclasses.replace(maps, light=_mean_light(seds))


# ---------------------------------------------------------------------------- galam map


def maps_target(cube: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Where the maps of ``cube`` go: ``OUT/<name>.maps.fits``."""
    name = Path(cube).name.split(".fits")[0].split(".fit")[0]
    return Path(out) / f"{name}.maps.fits"


def map_cube_to_file(
    path: str | os.PathLike,
    target: str | os.PathLike,
    *,
    min_snr: float = 3.0,
    target_snr: float | None = None,
    predict: Callable[..., Any] | None = None,
    model: str = "auto",
    redshift: float | None = None,
    binning: str = "voronoi",
) -> dict[str, Any]:
    """Map one cube or narrow-band stack and write its maps atomically to ``target``.

    :func:`~napari_galam.io.sources.open_source`, :func:`iter_map_source` and
    :func:`~napari_galam.io.writers.write_maps` (with the source's celestial WCS).

    Parameters
    ----------
    predict
        The SED model (default: :func:`napari_galam.models.inference.predict_seds`
        in this process).
    model, redshift, min_snr, target_snr, binning
        As for :func:`iter_map_source` (``"auto"``: by the kind of source); a binned
        map's header records ``TARGSNR`` and ``BINNING``.

    Returns
    -------
    dict
        ``{"n_mapped": spaxels with a prediction}``.

    Raises
    ------
    GalamInputError
        When the file is not a regular file, is neither a cube nor a narrow-band stack
        this package reads, ``binning`` is unknown, or no spaxel of it could be mapped
        (then nothing is written).
    """
    from napari_galam.io.sources import open_source
    from napari_galam.io.writers import write_maps
    from napari_galam.models.registry import interval_95_keywords

    path = Path(path)
    problem = input_path_problem(path)
    if problem is not None:
        raise GalamInputError(problem)
    source = open_source(path)
    if predict is None:
        from napari_galam.models.inference import predict_seds as predict
    maps = run_to_end(
        iter_map_source(
            source, predict, min_snr=min_snr, target_snr=target_snr, meta={"source": path.name},
            model=model, redshift=redshift, binning=binning,
        )
    )  # fmt: skip
    if maps.n_mapped == 0:
        raise GalamInputError(
            f"{path}: no spaxel could be mapped: none has a finite SED with S/N above "
            f"{min_snr:g} (see --min-snr)."
        )
    write_maps(
        target,
        maps.as_dict(),
        celestial_wcs=source.celestial_wcs,
        units=MAP_UNITS,
        header_extra={
            "MODEL": maps.model,
            "SOURCE": path.name,
            "MINSNR": min_snr,
            "OODBITS": ood_bits_note(),
            **interval_95_keywords(maps.model, getattr(source, "layout", None)),
            **({} if target_snr is None else {"TARGSNR": target_snr, "BINNING": binning}),
            **_spectra_header(maps.meta),
        },
    )
    return {"n_mapped": maps.n_mapped}


def _spectra_header(meta: dict[str, Any]) -> dict[str, Any]:
    """FITS keywords of a spectral map: redshift used and spaxels left NaN per reason."""
    if "nan_reasons" not in meta:
        return {}
    keys = {
        "no data": "NANNODAT",
        "coverage": "NANCOVER",
        "low S/N": "NANLOSNR",
        "bad flux": "NANBADFL",
    }
    return {"REDSHIFT": meta["redshift"], **{keys[k]: v for k, v in meta["nan_reasons"].items()}}


def map_partition(
    cubes: Sequence[str | os.PathLike],
    path: str | os.PathLike,
    *,
    out: str | os.PathLike,
    overwrite: bool = False,
    **options: Any,
) -> int:
    """Map each cube of one partition into ``out``; write the summary rows to ``path``.

    ``options`` go to :func:`map_cube_to_file` (``min_snr``, ``target_snr``, ``binning``,
    ``model``, ``redshift``). A cube whose maps exist is ``done before`` (unless
    ``overwrite``); one that cannot be mapped, for any error, is ``failed`` with the reason
    (the other cubes go on). Returns the number of rows written.
    """
    rows = []
    for cube in cubes:
        target = maps_target(cube, out)
        row = {"source": str(cube), "maps": str(target), "status": "ok", "reason": ""}
        row["n_mapped"] = -1
        if target.is_file() and not overwrite and input_path_problem(cube) is None:
            row["status"] = "done before"
        else:
            try:
                row.update(map_cube_to_file(cube, target, **options))
            except GalamError as exc:
                row.update(status="failed", reason=str(exc), maps="")
            except Exception as exc:  # noqa: BLE001 - one cube's error is that cube's row
                row.update(status="failed", reason=unexpected_error_reason(cube, exc), maps="")
        rows.append(row)
    write_rows(path, rows, MAP_COLUMNS)
    return len(rows)


def _cube_sort_key(cube: str | os.PathLike) -> str:
    """A stable text key of a cube: its resolved path."""
    return str(resolved_path(cube))


def _cube_crash_row(cube: str | os.PathLike, reason: str) -> dict[str, Any]:
    """The summary row of a cube whose partition task raised."""
    return {"source": str(cube), "maps": "", "status": "failed", "reason": reason, "n_mapped": -1}


def _row_source(row: Any) -> str:
    return str(row["source"])


#: ``galam map`` for the partition runner (:func:`~napari_galam.pipeline.distributed.run_batch`).
#: The maps files say which cubes are done, so another list of cubes starts afresh.
MAP_JOB = PartitionJob(
    name="map",
    columns=MAP_COLUMNS,
    run=map_partition,
    sort_key=_cube_sort_key,
    crash_row=_cube_crash_row,
    input_key=str,
    row_key=_row_source,
    restart_on_new_inputs=True,
)
