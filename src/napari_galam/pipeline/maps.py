"""Map a cube: per-spaxel age and [M/H] from narrow-band SEDs (Liew-Cain et al. 2021).

IFU cubes (CALIFA, MaNGA, MUSE, generic) first go through the narrow-band filters the
SED model was trained on (synthetic photometry, :mod:`napari_galam.core.spaxels`);
narrow-band stacks give their SEDs directly, matched to the model's filters by name.
Spaxels below a S/N floor are left out; optionally the rest are Voronoi-binned to a
target S/N. The model itself is any callable ``predict_seds(seds) -> prediction`` with
``log_age`` and ``mh`` arrays of the SEDs' leading shape: in napari and on the command
line, :meth:`napari_galam.models.worker.ModelWorker.predict_seds`, so that TensorFlow
stays out of the calling process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.spaxels import SpaxelSEDs, bin_seds, voronoi_bins
from napari_galam.errors import GalamInputError

__all__ = [
    "SpaxelMaps",
    "iter_seds_from_cube",
    "seds_from_cube",
    "seds_from_narrowband",
    "iter_map_cube_distributed",
    "iter_map_seds",
    "sed_model_filters",
    "map_seds",
]

Progress = tuple[str, int, int]


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
        ``(ny, nx)`` Voronoi bin of each spaxel (-1: left out); the spaxel index when
        not binned.
    band_names
        The filters the SEDs were measured in.
    model
        The model's name.
    meta
        Provenance: source file, S/N floor and target, number of spaxels mapped.
    """

    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    snr: NDArray[np.float32]
    bin_id: NDArray[np.int32]
    band_names: tuple[str, ...]
    model: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_mapped(self) -> int:
        """Number of spaxels with a prediction."""
        return int(np.isfinite(self.log_age).sum())

    def as_dict(self) -> dict[str, NDArray[Any]]:
        """The maps by FITS extension name, for :func:`napari_galam.io.writers.write_maps`."""
        return {"LOG_AGE": self.log_age, "MH": self.mh, "SNR": self.snr, "BIN_ID": self.bin_id}


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


def iter_seds_from_cube(cube: Any, filters: Any) -> Iterator[Progress | SpaxelSEDs]:
    """Synthetic photometry of every spaxel of a :class:`io.cubes.SpectralCube`.

    Yields ``("photometry", rows_done, ny)`` progress, then the :class:`SpaxelSEDs`.
    """
    from napari_galam.core.spaxels import iter_cube_to_seds

    for item in iter_cube_to_seds(
        cube.wave, cube.data, filters, variance=cube.variance, mask=cube.mask, what=cube.name
    ):
        if isinstance(item, tuple):
            yield ("photometry", *item)
        else:
            yield item


def seds_from_cube(cube: Any, filters: Any) -> SpaxelSEDs:
    """Run :func:`iter_seds_from_cube` to the end and return the SEDs."""
    *_progress, seds = iter_seds_from_cube(cube, filters)
    return seds


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


def iter_map_seds(
    seds: SpaxelSEDs,
    predict_seds: Callable[[NDArray[np.float32]], Any],
    *,
    min_snr: float = 3.0,
    target_snr: float | None = None,
    model: str = "sed-cnn",
    meta: dict[str, Any] | None = None,
) -> Iterator[Progress | SpaxelMaps]:
    """Predict maps from SEDs, yielding ``(stage, done, total)`` progress, then the maps.

    Parameters
    ----------
    seds
        The spaxels' SEDs in the model's filters.
    predict_seds
        ``(n, n_filters) -> prediction`` with ``log_age`` and ``mh`` of length ``n``.
    min_snr
        Spaxels with a median S/N below this are left out (ignored when the SEDs have
        no errors, i.e. S/N is NaN everywhere).
    target_snr
        When given, Voronoi-bin the kept spaxels to this S/N and predict per bin.
    model, meta
        Recorded in the result.
    """
    ny, nx = seds.flux.shape[1:]
    have_snr = bool(np.isfinite(seds.snr).any())
    keep = seds.valid & (seds.snr >= min_snr if have_snr else True)
    if target_snr is not None and not have_snr:
        raise GalamInputError("Voronoi binning needs S/N, but the cube has no variance.")
    log_age = np.full((ny, nx), np.nan, dtype=np.float32)
    mh = np.full((ny, nx), np.nan, dtype=np.float32)
    bin_id = np.full((ny, nx), -1, dtype=np.int32)
    if target_snr is not None and keep.any():
        yield ("binning", 0, 1)
        signal = np.where(keep, np.nanmean(seds.flux, axis=0), np.nan)
        noise = np.where(keep, signal / np.where(keep, seds.snr, 1.0), np.nan)
        bins = voronoi_bins(signal, noise, target_snr=target_snr, min_snr=min_snr)
        bin_id = bins.bin_id
        inputs = bin_seds(seds, bins)
        yield ("binning", 1, 1)
        prediction = predict_seds(inputs)
        yield ("prediction", bins.n_bins, bins.n_bins)
        painted = bin_id >= 0
        log_age[painted] = np.asarray(prediction.log_age)[bin_id[painted]]
        mh[painted] = np.asarray(prediction.mh)[bin_id[painted]]
    elif keep.any():
        rows, cols = np.nonzero(keep)
        bin_id[rows, cols] = np.arange(rows.size, dtype=np.int32)
        inputs = seds.flux[:, rows, cols].T.copy()
        yield ("prediction", 0, rows.size)
        prediction = predict_seds(inputs)
        log_age[rows, cols] = np.asarray(prediction.log_age, dtype=np.float32)
        mh[rows, cols] = np.asarray(prediction.mh, dtype=np.float32)
        yield ("prediction", rows.size, rows.size)
    info = dict(meta or {})
    info.update(
        {"min_snr": min_snr, "target_snr": target_snr, "n_kept": int(keep.sum()), "model": model}
    )
    yield SpaxelMaps(
        log_age=log_age,
        mh=mh,
        snr=seds.snr.astype(np.float32),
        bin_id=bin_id,
        band_names=seds.band_names,
        model=model,
        meta=info,
    )


def map_seds(
    seds: SpaxelSEDs,
    predict_seds: Callable[[NDArray[np.float32]], Any],
    **options: Any,
) -> SpaxelMaps:
    """Run :func:`iter_map_seds` to the end and return the maps."""
    *_progress, maps = iter_map_seds(seds, predict_seds, **options)
    return maps


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
) -> Iterator[Progress | SpaxelMaps]:
    """Map a big cube on Dask: each worker reads and maps blocks of rows from the file.

    The same steps as :func:`iter_seds_from_cube` + :func:`iter_map_seds` (without
    Voronoi binning, which needs the whole field at once). Yields
    ``("rows", done, ny)`` progress, then the assembled :class:`SpaxelMaps`.
    """
    from distributed import as_completed

    from napari_galam.pipeline.distributed import start_client

    _, ny, nx = shape
    cluster = None
    if client is None:
        client, cluster = start_client(scheduler=scheduler, n_workers=n_workers)
    try:
        blocks = [(r, min(ny, r + rows_per_partition)) for r in range(0, ny, rows_per_partition)]
        futures = [
            client.submit(
                _map_cube_rows, str(path), list(filter_names), a, b, min_snr, model, pure=False
            )
            for a, b in blocks
        ]
        log_age = np.full((ny, nx), np.nan, dtype=np.float32)
        mh = np.full((ny, nx), np.nan, dtype=np.float32)
        snr = np.full((ny, nx), np.nan, dtype=np.float32)
        bin_id = np.full((ny, nx), -1, dtype=np.int32)
        done = 0
        for future in as_completed(futures):
            start, part = future.result()
            stop = start + part.log_age.shape[0]
            log_age[start:stop], mh[start:stop], snr[start:stop] = part.log_age, part.mh, part.snr
            kept = part.bin_id >= 0
            bin_id[start:stop][kept] = part.bin_id[kept] + start * nx  # unique across blocks
            done += stop - start
            yield ("rows", done, ny)
        yield SpaxelMaps(
            log_age=log_age,
            mh=mh,
            snr=snr,
            bin_id=bin_id,
            band_names=tuple(filter_names),
            model=model,
            meta={"min_snr": min_snr, "target_snr": None, "n_kept": int(np.isfinite(log_age).sum()),
                  "model": model, "source": str(path), "engine": "dask"},
        )  # fmt: skip
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
