"""Predict a catalogue: cutouts and/or SDSS spectra in, one row per galaxy out.

Inputs are files (JPEG/PNG/FITS cutouts, ``spec-*.fits`` spectra), folders of them, or a
CSV/ECSV catalogue with columns ``image`` and/or ``spectrum`` (paths relative to the
catalogue). Without a catalogue, an image and a spectrum are the same galaxy when they
share a stem (``NGC1234.jpg`` + ``NGC1234.fits``). Each galaxy goes through the same
steps as a click in napari: the image QA (masking, blend check, 128x128 crop) and/or the
spectrum preprocessing (1 A grid over 3830-8000 A, min-max), then one batched model
call. ``auto`` uses the spectra-only model when a spectrum exists (the paper's best) and
MMLforGalAM otherwise. Every input gets a row; unreadable or rejected ones say why.

``galam predict`` runs this in partitions (:data:`PREDICT_JOB` for the partition runner
of :mod:`napari_galam.pipeline.distributed`), in this process or on Dask.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.distributed import PartitionJob, write_rows
from napari_galam.progress import Progress, ProgressGenerator, run_to_end

__all__ = [
    "GalaxyInput",
    "collect_inputs",
    "iter_predict_catalogue",
    "predict_partition",
    "PREDICT_COLUMNS",
    "PREDICT_JOB",
    "DEFAULT_GALAXIES_PER_PARTITION",
]

PREDICT_COLUMNS = ("source", "image", "spectrum", "model", "log_age", "mh", "status", "reason")
#: Galaxies per partition of ``galam predict`` (``--partition-size``).
DEFAULT_GALAXIES_PER_PARTITION = 256
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class GalaxyInput:
    """One galaxy's files (either may be None)."""

    source: str
    image: Path | None = None
    spectrum: Path | None = None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".fits.gz", ".fits", ".fit", ".jpeg", ".jpg", ".png"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _files_in(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file()))
        else:
            files.append(path)
    return files


def _catalogue_path(row: Any, column: str | None, base: Path) -> Path | None:
    """A file named in a catalogue cell, relative to the catalogue's folder."""
    if column is None:
        return None
    value = str(row[column]).strip()
    if not value or value in ("--", "nan", "None"):
        return None
    file = Path(value)
    return file if file.is_absolute() else base / file


def _from_catalogue(path: Path) -> list[GalaxyInput]:
    from astropy.table import Table

    try:
        table = Table.read(path, format="ascii.ecsv" if path.suffix == ".ecsv" else "ascii.csv")
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds here
        raise GalamInputError(f"{path}: not a readable CSV/ECSV catalogue ({exc}).") from exc
    columns = {c.lower(): c for c in table.colnames}
    if not ({"image", "spectrum"} & set(columns)):
        raise GalamInputError(
            f"{path}: the catalogue needs a column 'image' and/or 'spectrum' "
            f"(found {', '.join(table.colnames)})."
        )
    inputs = []
    for index, row in enumerate(table):
        image = _catalogue_path(row, columns.get("image"), path.parent)
        spectrum = _catalogue_path(row, columns.get("spectrum"), path.parent)
        if "source" in columns:
            source = str(row[columns["source"]])
        else:
            source = _stem(image or spectrum or Path(f"row{index}"))
        inputs.append(GalaxyInput(source, image, spectrum))
    return inputs


def collect_inputs(paths: Sequence[str | os.PathLike]) -> list[GalaxyInput]:
    """Group the given files, folders and catalogues into galaxies (see module docs)."""
    from napari_galam.io.spectra import looks_like_sdss_spectrum

    paths = [Path(p) for p in paths]
    inputs: list[GalaxyInput] = []
    loose: list[Path] = []
    for path in paths:
        if path.suffix.lower() in (".csv", ".ecsv") and path.is_file():
            inputs.extend(_from_catalogue(path))
        else:
            loose.append(path)
    groups: dict[str, dict[str, Path]] = {}
    for file in _files_in(loose):
        name = file.name.lower()
        kind = None
        if name.endswith(_IMAGE_SUFFIXES):
            kind = "image"
        elif name.endswith((".fits", ".fits.gz", ".fit")):
            kind = "spectrum" if looks_like_sdss_spectrum(file) else "image"
        if kind is None:
            continue
        slot = groups.setdefault(_stem(file), {})
        if kind in slot:  # two images of one stem: keep both as separate galaxies
            groups.setdefault(f"{_stem(file)} ({file.name})", {})[kind] = file
        else:
            slot[kind] = file
    for stem, files in groups.items():
        inputs.append(GalaxyInput(stem, files.get("image"), files.get("spectrum")))
    if not inputs:
        raise GalamInputError(
            "no cutouts or spectra found in "
            + ", ".join(str(p) for p in paths)
            + " (expected .jpg/.png/.fits files, folders of them, or a CSV catalogue)."
        )
    return inputs


def _prepare(galaxy: GalaxyInput, params: Any, frame: str) -> tuple[Any, Any, str]:
    """Model inputs of one galaxy: (image or None, spectrum or None, reason if none).

    ``frame`` is the spectra-only model's (``"rest"`` needs the file's redshift).
    """
    from napari_galam.core.preprocess import model_spectrum
    from napari_galam.io.images import read_cutout
    from napari_galam.io.spectra import read_sdss_spectrum
    from napari_galam.pipeline.qa import assess_galaxy, cutout_array

    image = spectrum = None
    reasons = []
    if galaxy.image is not None:
        try:
            cutout = read_cutout(galaxy.image)
            qa = assess_galaxy(cutout_array(cutout.data, cutout.kind), params)
        except GalamError as exc:
            reasons.append(str(exc))
        else:
            if qa.status == "accepted":
                image = qa.model_input
            else:
                reasons.append(f"image {qa.status}: {qa.reason}")
    if galaxy.spectrum is not None:
        try:
            spec = read_sdss_spectrum(galaxy.spectrum)
        except GalamError as exc:
            reasons.append(str(exc))
        else:
            good = spec.ivar > 0
            try:
                spectrum = model_spectrum(
                    spec.wave[good], spec.flux[good], redshift=spec.redshift, frame=frame
                )
            except GalamError as exc:
                reasons.append(f"{Path(galaxy.spectrum).name}: {exc}")
    return image, spectrum, "; ".join(reasons)


def _empty_row(galaxy: GalaxyInput) -> dict[str, Any]:
    """A galaxy's row before prediction: rejected, no model, NaN values."""
    return {
        "source": galaxy.source,
        "image": str(galaxy.image or ""),
        "spectrum": str(galaxy.spectrum or ""),
        "model": "",
        "log_age": float("nan"),
        "mh": float("nan"),
        "status": "rejected",
        "reason": "",
    }


def _predict_batches(
    rows: list[dict[str, Any]],
    pending: dict[str, list[tuple[int, Any]]],
    predict_galaxies: Callable[..., Any],
    batch_size: int,
) -> None:
    """One model call per batch of prepared inputs; the answers go into ``rows``."""
    for choice, items in pending.items():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            stacked = np.stack([x for _, x in chunk])
            kwargs = {"spectra": stacked} if choice == "spectra-only" else {"images": stacked}
            try:
                answer = predict_galaxies(model=choice, **kwargs)
            except GalamError as exc:
                for index, _ in chunk:
                    rows[index].update(status="failed", reason=str(exc))
                continue
            for k, (index, _) in enumerate(chunk):
                rows[index].update(log_age=float(answer.log_age[k]), mh=float(answer.mh[k]))


def iter_predict_catalogue(
    inputs: Sequence[GalaxyInput],
    predict_galaxies: Callable[..., Any],
    *,
    model: str = "auto",
    params: Any = None,
    batch_size: int = 256,
) -> ProgressGenerator[list[dict[str, Any]]]:
    """Prepare every galaxy, predict in batches per model; return one row per galaxy.

    Yields ``Progress("galaxies", prepared, n)`` as each galaxy is prepared.
    """
    rows: list[dict[str, Any]] = []
    pending: dict[str, list[tuple[int, Any]]] = {}
    frame = "observed"
    if any(galaxy.spectrum is not None for galaxy in inputs):
        from napari_galam.models.registry import spectrum_frame

        frame = spectrum_frame()
    for index, galaxy in enumerate(inputs):
        image, spectrum, reason = _prepare(galaxy, params, frame)
        row = _empty_row(galaxy)
        row["reason"] = reason
        choice = model
        if model == "auto":
            choice = "spectra-only" if spectrum is not None else "mmlforgalam"
        needs = spectrum if choice == "spectra-only" else image
        if needs is not None:
            pending.setdefault(choice, []).append((index, needs))
            row["status"], row["model"] = "ok", choice
        elif not reason:
            row["reason"] = (
                f"model {choice} needs {'a spectrum' if choice == 'spectra-only' else 'an image'}"
            )
        rows.append(row)
        yield Progress("galaxies", index + 1, len(inputs))
    _predict_batches(rows, pending, predict_galaxies, batch_size)
    return rows


# ------------------------------------------------------------- the partitioned batch job


def predict_partition(
    galaxies: Sequence[GalaxyInput], path: str | os.PathLike, *, model: str = "auto"
) -> int:
    """Predict one partition of galaxies and write its rows atomically to ``path``.

    Runs :func:`iter_predict_catalogue` with the models of this process (loaded once
    per process by the registry).

    Returns
    -------
    int
        Rows written.
    """
    from napari_galam.models.inference import predict_galaxies

    rows = run_to_end(iter_predict_catalogue(list(galaxies), predict_galaxies, model=model))
    write_rows(path, rows, PREDICT_COLUMNS)
    return len(rows)


def _galaxy_sort_key(galaxy: GalaxyInput) -> str:
    """A stable text key of a galaxy: its image and spectrum paths, then its name."""
    image = "" if galaxy.image is None else str(Path(galaxy.image).resolve())
    spectrum = "" if galaxy.spectrum is None else str(Path(galaxy.spectrum).resolve())
    return f"{image}\t{spectrum}\t{galaxy.source}"


def _galaxy_crash_row(galaxy: GalaxyInput, reason: str) -> dict[str, Any]:
    """The row of a galaxy whose partition task raised."""
    row = _empty_row(galaxy)
    row.update(status="failed", reason=reason)
    return row


def _galaxy_key(galaxy: GalaxyInput) -> tuple[str, str]:
    return (str(galaxy.image or ""), str(galaxy.spectrum or ""))


def _row_galaxy_key(row: Any) -> tuple[str, str]:
    return (str(row["image"]), str(row["spectrum"]))


#: ``galam predict`` for the partition runner (:func:`~napari_galam.pipeline.distributed.run_batch`).
PREDICT_JOB = PartitionJob(
    name="predict",
    columns=PREDICT_COLUMNS,
    run=predict_partition,
    sort_key=_galaxy_sort_key,
    crash_row=_galaxy_crash_row,
    input_key=_galaxy_key,
    row_key=_row_galaxy_key,
)
