"""Per-galaxy age and [M/H]: cutout around a position -> QA -> model, one or many at once.

The same steps the click-to-predict dock and ``galam predict`` run: a cutout of the
field around each position (:func:`napari_galam.core.cutout.cutout_around`), the
MMLforGalAM image preprocessing and blend check
(:func:`napari_galam.pipeline.qa.assess_galaxy`), then one batched call of a model
(any ``predict_galaxies(images, model=...)`` callable with ``log_age`` and ``mh`` in its
answer, in practice the worker process's). Rejected galaxies (no ellipse, blended) get
a result with the reason, never silence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.cutout import cutout_around
from napari_galam.errors import GalamInputError
from napari_galam.pipeline.catalogue import answer_row
from napari_galam.pipeline.qa import GalaxyQA, QAParameters, assess_galaxy, with_field_psf
from napari_galam.progress import Progress, ProgressGenerator, run_to_end

__all__ = [
    "GalaxyResult",
    "assess_at",
    "detect_galaxies",
    "iter_predict_positions",
    "iter_predict_positions_distributed",
    "predict_positions",
]

#: SDSS cutouts in the paper are 128 x 128 pixels of 0.396 arcsec.
CUTOUT_SIZE = 128


@dataclass(frozen=True)
class GalaxyResult:
    """What the pipeline says about one galaxy.

    Attributes
    ----------
    row, col
        Position in the field (the ellipse centre when one was found, else the input).
    status, reason
        The QA status (``accepted``, ``blended``, ``no_ellipse``...) or ``failed``; the
        reason is empty when a prediction was made.
    model
        The model used ("" when none ran).
    log_age, mh
        log10(age/yr) and [M/H] (NaN when not predicted).
    log_age_err, mh_err
        Their calibrated 1-sigma errors (NaN when not predicted).
    ood, ood_reason
        Whether the input lies outside what the model was trained on, and why.
    qa
        The QA result (ellipse, segments, saddles, model input), for display.
    """

    row: float
    col: float
    status: str
    reason: str
    model: str = ""
    log_age: float = float("nan")
    mh: float = float("nan")
    qa: GalaxyQA | None = None
    log_age_err: float = float("nan")
    mh_err: float = float("nan")
    ood: bool = False
    ood_reason: str = ""

    @property
    def predicted(self) -> bool:
        """True when the model gave numbers."""
        return bool(np.isfinite(self.log_age))

    def row_dict(self) -> dict[str, Any]:
        """A table row."""
        return {
            "row": self.row,
            "col": self.col,
            "status": self.status,
            "reason": self.reason,
            "model": self.model,
            "log_age": self.log_age,
            "log_age_err": self.log_age_err,
            "mh": self.mh,
            "mh_err": self.mh_err,
            "ood": self.ood,
            "ood_reason": self.ood_reason,
        }


def assess_at(
    image: NDArray[Any],
    row: float,
    col: float,
    *,
    size: int = CUTOUT_SIZE,
    params: QAParameters | None = None,
) -> tuple[GalaxyQA, tuple[float, float]]:
    """QA of the galaxy at (row, col) of a field; returns it and the galaxy's centre.

    The centre is the masking ellipse's centre in field pixels, or (row, col) when
    there is no ellipse.
    """
    cutout = cutout_around(image, row, col, size)
    qa = assess_galaxy(cutout.data, params)
    ellipse = qa.masking.target if qa.masking is not None else None
    if ellipse is not None:
        (r,), (c,) = cutout.to_parent([ellipse.y], [ellipse.x])
        return qa, (float(r), float(c))
    return qa, (float(row), float(col))


def detect_galaxies(
    image: NDArray[Any],
    *,
    nsigma: float = 3.0,
    n_pixels: int = 20,
    max_sources: int = 500,
    edge: int = 8,
) -> NDArray[np.float64]:
    """Positions (row, col) of the sources in a field, brightest first.

    A plain photutils detection on the grey, smoothed field (background from sigma-
    clipped statistics); sources within ``edge`` pixels of the border are dropped.
    """
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import SourceCatalog, detect_sources

    from napari_galam.core.background import smooth_image
    from napari_galam.core.deblend import to_single_band

    grey = to_single_band(image)
    if grey.size == 0 or not np.isfinite(grey).any():
        return np.zeros((0, 2))
    filled = np.nan_to_num(grey, nan=float(np.nanmedian(grey)))
    _, median, std = sigma_clipped_stats(filled, sigma=3.0)
    if not std > 0:
        return np.zeros((0, 2))
    smoothed = smooth_image(filled - median)
    segments = detect_sources(smoothed, nsigma * std, n_pixels)
    if segments is None:
        return np.zeros((0, 2))
    catalogue = SourceCatalog(filled - median, segments)
    centroids = np.atleast_2d(np.asarray(catalogue.centroid, dtype=float))  # (x, y)
    order = np.argsort(-np.asarray(catalogue.segment_flux, dtype=float))
    positions = centroids[order][:, ::-1]
    ny, nx = grey.shape
    inside = (
        (positions[:, 0] >= edge)
        & (positions[:, 0] < ny - edge)
        & (positions[:, 1] >= edge)
        & (positions[:, 1] < nx - edge)
        & np.all(np.isfinite(positions), axis=1)
    )
    return positions[inside][:max_sources]


def iter_predict_positions(
    image: NDArray[Any],
    positions: Sequence[tuple[float, float]] | NDArray[Any],
    predict_galaxies: Callable[..., Any] | None,
    *,
    model: str = "mmlforgalam",
    size: int = CUTOUT_SIZE,
    params: QAParameters | None = None,
    predict_blended: bool = False,
) -> ProgressGenerator[list[GalaxyResult]]:
    """QA every position, then predict the accepted galaxies in one batch.

    Yields ``Progress("QA", done, total)`` after each QA and returns the results (one
    per position, in order). With ``predict_galaxies=None`` only the QA runs.
    """
    positions = np.asarray(positions, dtype=float).reshape(-1, 2)
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise GalamInputError(f"image of shape {image.shape}: expected (ny, nx) or (ny, nx, 3).")
    params = with_field_psf(image, params)  # the star check's PSF: the whole field's
    results: list[GalaxyResult] = []
    inputs: list[NDArray[Any]] = []
    warnings: list[list[str]] = []
    to_predict: list[int] = []
    for index, (row, col) in enumerate(positions):
        try:
            qa, (r, c) = assess_at(image, row, col, size=size, params=params)
        except GalamInputError as exc:
            results.append(GalaxyResult(float(row), float(col), "failed", str(exc)))
        else:
            usable = qa.model_input is not None and (
                qa.status == "accepted" or (predict_blended and qa.status == "blended")
            )
            results.append(GalaxyResult(r, c, qa.status, "" if usable else qa.reason, qa=qa))
            if usable:
                to_predict.append(index)
                inputs.append(qa.model_input)
                warnings.append(_input_warnings(qa))
        yield Progress("QA", index + 1, len(positions))
    if predict_galaxies is not None and inputs:
        answer = predict_galaxies(np.stack(inputs), model=model, problems=warnings)
        used = getattr(answer, "model", model)
        for k, index in enumerate(to_predict):
            old = results[index]
            results[index] = dataclasses.replace(old, model=used, **answer_row(answer, k))
    return results


def _input_warnings(qa: GalaxyQA) -> list[str]:
    """What makes an input the QA let through unlike the training galaxies."""
    from napari_galam.io.quality import cutout_problems

    found = [] if qa.status == "accepted" else [f"QA {qa.status}: {qa.reason}"]
    return found + cutout_problems(qa.model_input)


def predict_positions(
    image: NDArray[Any],
    positions: Sequence[tuple[float, float]] | NDArray[Any],
    predict_galaxies: Callable[..., Any] | None,
    **options: Any,
) -> list[GalaxyResult]:
    """Run :func:`iter_predict_positions` to the end and return the results."""
    return run_to_end(iter_predict_positions(image, positions, predict_galaxies, **options))


def _predict_positions_on_worker(
    image: NDArray[Any], positions: NDArray[Any], model: str, size: int, predict_blended: bool
) -> list[GalaxyResult]:
    """Dask task: QA and predict one partition of positions with this worker's models."""
    from napari_galam.models.inference import predict_galaxies

    results = predict_positions(
        image, positions, predict_galaxies, model=model, size=size, predict_blended=predict_blended
    )
    return [dataclasses.replace(result, qa=None) for result in results]  # keep replies small


def iter_predict_positions_distributed(
    image: NDArray[Any],
    positions: Sequence[tuple[float, float]] | NDArray[Any],
    *,
    model: str = "mmlforgalam",
    size: int = CUTOUT_SIZE,
    partition_size: int = 256,
    predict_blended: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
) -> ProgressGenerator[list[GalaxyResult]]:
    """:func:`iter_predict_positions` on Dask, for fields with many galaxies.

    The field is sent to every worker once; the positions go out in partitions, each
    run by the same :func:`predict_positions` with the worker's own models (TensorFlow
    stays in the workers). Yields ``Progress("QA and prediction", done, total)`` as
    partitions finish and returns the results in input order (without the QA arrays).
    A partition that fails gives ``failed`` results with the error, and the others go
    on. The client is opened and closed by
    :func:`napari_galam.pipeline.distributed.dask_client`.
    """
    from distributed import as_completed

    from napari_galam.pipeline.distributed import dask_client

    positions = np.asarray(positions, dtype=float).reshape(-1, 2)
    if partition_size < 1:
        raise GalamInputError(f"partition size must be positive, got {partition_size}.")
    with dask_client(client, scheduler=scheduler, n_workers=n_workers) as client:
        field = client.scatter(np.asarray(image), broadcast=True)
        chunks = [
            positions[i : i + partition_size] for i in range(0, len(positions), partition_size)
        ]
        futures = {
            client.submit(
                _predict_positions_on_worker, field, chunk, model, size, predict_blended, pure=False
            ): index
            for index, chunk in enumerate(chunks)
        }
        parts: list[list[GalaxyResult]] = [[] for _ in chunks]
        done = 0
        for future in as_completed(futures):
            index = futures[future]
            try:
                parts[index] = future.result()
            except Exception as exc:  # noqa: BLE001 - a failed partition must not stop the rest
                reason = f"partition failed: {type(exc).__name__}: {exc}"
                parts[index] = [
                    GalaxyResult(float(r), float(c), "failed", reason) for r, c in chunks[index]
                ]
            done += len(chunks[index])
            yield Progress("QA and prediction", done, len(positions))
        return [result for part in parts for result in part]
