"""Predict a catalogue: cutouts and/or SDSS spectra in, one row per galaxy out.

Inputs are files (JPEG/PNG/FITS cutouts, ``spec-*.fits`` spectra), folders of them, or a
CSV/ECSV catalogue with columns ``image`` and/or ``spectrum`` (paths relative to the
catalogue). Without a catalogue, an image and a spectrum are the same galaxy when they
share a stem (``NGC1234.jpg`` + ``NGC1234.fits``). Each galaxy goes through the same
steps as a click in napari: the image QA (masking, blend check, 128x128 crop) and/or the
spectrum preprocessing (1 A grid over 3830-8000 A, min-max), then one batched model
call. ``auto`` uses the spectra-only model when a spectrum exists (the paper's best) and
MMLforGalAM otherwise. Every input gets a row; unreadable or rejected ones say why
(``rejected``), and one whose reading, QA or model call raised an unexpected error is
``failed`` with that error (a rerun of ``galam predict`` tries it again). A spectrum is
rejected only when no model input can be built from it (:func:`spectrum_model_input`);
one whose redshift the pipeline flags (``ZWARNING``) or lies outside the model card's
range, or whose flux is mostly negative, is predicted and its row flagged (``ood``,
``ood_reason``, beside the model's own reasons); so is a cutout with a saturated core
that the QA accepts (a rejected one's reason names the saturation too). Folders, FIFOs
and broken symbolic links named like inputs (``x.fits``), in a folder or on the command
line, are inputs too: they get their row without being opened.

``galam predict`` runs this in partitions (:data:`PREDICT_JOB` for the partition runner
of :mod:`napari_galam.pipeline.distributed`), in this process or on Dask.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.batch_files import (
    input_path_problem,
    resolved_path,
    unexpected_error_reason,
)
from napari_galam.pipeline.distributed import PartitionJob, write_rows
from napari_galam.progress import Progress, ProgressGenerator, run_to_end

__all__ = [
    "GalaxyInput",
    "collect_inputs",
    "iter_predict_catalogue",
    "predict_partition",
    "PREDICT_COLUMNS",
    "answer_row",
    "spectrum_model_input",
    "PREDICT_JOB",
    "DEFAULT_GALAXIES_PER_PARTITION",
]

PREDICT_COLUMNS = (
    "source",
    "image",
    "spectrum",
    "model",
    "log_age",
    "log_age_err",
    "mh",
    "mh_err",
    "ood",
    "ood_reason",
    "status",
    "reason",
)
#: Galaxies per partition of ``galam predict`` (``--partition-size``).
DEFAULT_GALAXIES_PER_PARTITION = 256
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_FITS_SUFFIXES = (".fits", ".fits.gz", ".fit")


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


def _named_like_input(path: Path) -> bool:
    return path.name.lower().endswith(_IMAGE_SUFFIXES + _FITS_SUFFIXES)


def _files_in(paths: Sequence[Path]) -> list[Path]:
    """The inputs of command-line paths: a folder's entries, or the path itself.

    A folder named like an input (``x.fits``) is an input (it gets a row saying what it
    is); in a folder, regular files and anything else named like an input are listed.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir() and not _named_like_input(path):
            files.extend(sorted(p for p in path.iterdir() if p.is_file() or _named_like_input(p)))
        else:
            files.append(path)
    return files


def _kind_of(file: Path) -> str | None:
    """``"image"``, ``"spectrum"`` or None (not an input) from the name (and a FITS header)."""
    from napari_galam.io.spectra import looks_like_sdss_spectrum

    name = file.name.lower()
    if name.endswith(_IMAGE_SUFFIXES):
        return "image"
    if not name.endswith(_FITS_SUFFIXES):
        return None
    if input_path_problem(file) is not None:
        return "image"  # never opened: its row says what it is
    try:
        return "spectrum" if looks_like_sdss_spectrum(file) else "image"
    except Exception:  # noqa: BLE001 - a damaged file: its reader gives the reason
        return "image"


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
    paths = [Path(p) for p in paths]
    inputs: list[GalaxyInput] = []
    loose: list[Path] = []
    for path in paths:
        if path.suffix.lower() in (".csv", ".ecsv") and path.is_file():
            inputs.extend(_from_catalogue(path))
        else:
            loose.append(path)
    from napari_galam.io.composite import merge_band_files

    groups: dict[str, dict[str, Path]] = {}
    # NAME-g/-r/-i.fits side by side: one galaxy NAME, its r file stands for the three
    files, band_sets = merge_band_files(_files_in(loose))
    for file in files:
        kind = _kind_of(file)
        if kind is None:
            continue
        stem = band_sets.get(file) or _stem(file)
        slot = groups.setdefault(stem, {})
        if kind in slot:  # two images of one stem: keep both as separate galaxies
            groups.setdefault(f"{stem} ({file.name})", {})[kind] = file
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


class _Failed(Exception):
    """An unexpected error while preparing one file (its reason names the file)."""


def _guarded(path: Path, prepare: Callable[[], Any]) -> Any:
    """``prepare()``, with the file checked first and any error given its file.

    Raises
    ------
    GalamInputError
        When ``path`` is not a regular file, or ``prepare`` raised a ``GalamError``.
    _Failed
        When ``prepare`` raised anything else.
    """
    problem = input_path_problem(path)
    if problem is not None:
        raise GalamInputError(problem)
    try:
        return prepare()
    except GalamError:
        raise
    except Exception as exc:  # noqa: BLE001 - one file's error is that file's row
        raise _Failed(unexpected_error_reason(path, exc)) from exc


def _image_input(path: Path, params: Any) -> tuple[Any, str, list[str]]:
    """The model input of a cutout (or None), the reason when there is none, and why the
    cutout lies outside the training images.

    FITS cutouts become the gri composite (:func:`~napari_galam.io.composite.read_model_cutout`).
    A cutout the models were not trained on but can still read (a saturated core:
    :func:`~napari_galam.io.quality.cutout_problems`) is predicted when the QA accepts
    it, with those reasons as its out-of-distribution flags, as a clicked galaxy is.
    """
    from napari_galam.io.composite import read_model_cutout
    from napari_galam.io.quality import cutout_problems
    from napari_galam.pipeline.qa import assess_galaxy, cutout_array

    def prepare() -> tuple[Any, list[str]]:
        cutout = read_model_cutout(path)
        return assess_galaxy(cutout_array(cutout.data, cutout.kind), params), cutout_problems(
            cutout
        )

    qa, flags = _guarded(path, prepare)
    if qa.status == "accepted":
        return qa.model_input, "", flags
    return None, "; ".join([f"image {qa.status}: {qa.reason}", *flags]), flags


def spectrum_model_input(
    spectrum: Any, frame: str, z_range: tuple[float, float] | None
) -> tuple[NDArray[np.float32], list[str]]:
    """The spectra-only model's input of one spectrum, and why it is out of distribution.

    A spectrum is predicted whenever an input can be built from it; what makes the
    answer doubtful comes back as out-of-distribution reasons for its row
    (:func:`~napari_galam.io.quality.spectrum_flags`: mostly negative flux, a redshift
    the pipeline flags or one outside ``z_range``), which :func:`answer_row` merges with
    the model's own (low S/N, padded or interpolated coverage, unusual features).

    Parameters
    ----------
    spectrum
        An ``SdssSpectrum`` or ``Spectrum1D`` (``wave``, ``flux``, ``ivar``,
        ``redshift``; ``path`` or ``name`` for the messages).
    frame
        The model's frame (:func:`napari_galam.models.registry.spectrum_frame`).
    z_range
        The model's training redshifts
        (:func:`napari_galam.models.registry.training_redshift_range`), or None.

    Returns
    -------
    (input, flags)
        The model input on the frame's grid and the out-of-distribution reasons.

    Raises
    ------
    GalamInputError
        Nothing to predict from: no finite flux or no pixel with a positive inverse
        variance (:func:`~napari_galam.io.quality.spectrum_unusable`), no redshift for a
        rest-frame model, or a rest-frame coverage that misses the model's grid by more
        than :data:`~napari_galam.core.preprocess.REST_EDGE_TOLERANCE` (z above about
        0.49 for BOSS's 3600-10400 Å, 0.32 for SDSS's 3800-9200 Å). Shorter gaps are
        padded with the edge value; the model flags a padded end over 100 Å.
    """
    from napari_galam.core.preprocess import model_spectrum
    from napari_galam.io.quality import spectrum_flags, spectrum_unusable

    problems = spectrum_unusable(spectrum)
    if problems:
        raise GalamInputError("; ".join(problems))
    path = getattr(spectrum, "path", None)
    label = Path(path).name if path is not None else str(getattr(spectrum, "name", "spectrum"))
    good = np.asarray(spectrum.ivar) > 0
    try:
        x = model_spectrum(
            np.asarray(spectrum.wave)[good],
            np.asarray(spectrum.flux)[good],
            redshift=spectrum.redshift,
            frame=frame,
        )
    except GalamError as exc:
        raise GalamInputError(f"{label}: {exc}") from exc
    return x, spectrum_flags(spectrum, z_range)


def _spectrum_input(
    path: Path, frame: str, z_range: tuple[float, float] | None
) -> tuple[NDArray[np.float32], list[str]]:
    """The model input of an SDSS spectrum and its out-of-distribution reasons."""
    from napari_galam.io.spectra import read_sdss_spectrum

    return _guarded(path, lambda: spectrum_model_input(read_sdss_spectrum(path), frame, z_range))


@dataclass
class _Prepared:
    """Model inputs of one galaxy and what was found preparing them."""

    image: Any = None
    spectrum: Any = None
    flags: list[str] = field(default_factory=list)  # the spectrum's OOD reasons
    image_flags: list[str] = field(default_factory=list)  # the cutout's OOD reasons
    reason: str = ""
    failed: bool = False  # a file raised an unexpected error (the reason names it)


def _prepare(
    galaxy: GalaxyInput, params: Any, frame: str, z_range: tuple[float, float] | None
) -> _Prepared:
    """Model inputs of one galaxy (see :class:`_Prepared`).

    ``frame`` and ``z_range`` are the spectra-only model's (``"rest"`` needs the file's
    redshift).
    """
    image = spectrum = None
    flags: list[str] = []
    image_flags: list[str] = []
    reasons = []
    failed = False
    if galaxy.image is not None:
        try:
            image, reason, image_flags = _image_input(Path(galaxy.image), params)
        except (GalamError, _Failed) as exc:
            reasons.append(str(exc))
            failed = failed or isinstance(exc, _Failed)
        else:
            if reason:
                reasons.append(reason)
    if galaxy.spectrum is not None:
        try:
            spectrum, flags = _spectrum_input(Path(galaxy.spectrum), frame, z_range)
        except (GalamError, _Failed) as exc:
            reasons.append(str(exc))
            failed = failed or isinstance(exc, _Failed)
    return _Prepared(image, spectrum, flags, image_flags, "; ".join(reasons), failed)


def _galaxy_flags(spectrum_flags: list[str]) -> list[str]:
    """The spectrum's flags that concern the galaxy, for an image model's row: its
    redshift outside the training range (the images were drawn at those redshifts too)."""
    from napari_galam.io.quality import OUTSIDE_TRAINING_REDSHIFTS

    return [flag for flag in spectrum_flags if OUTSIDE_TRAINING_REDSHIFTS in flag]


def _empty_row(galaxy: GalaxyInput) -> dict[str, Any]:
    """A galaxy's row before prediction: rejected, no model, NaN values."""
    return {
        "source": galaxy.source,
        "image": str(galaxy.image or ""),
        "spectrum": str(galaxy.spectrum or ""),
        "model": "",
        "log_age": float("nan"),
        "log_age_err": float("nan"),
        "mh": float("nan"),
        "mh_err": float("nan"),
        "ood": False,
        "ood_reason": "",
        "status": "rejected",
        "reason": "",
    }


def answer_row(answer: Any, k: int, flags: Sequence[str] = ()) -> dict[str, Any]:
    """Galaxy ``k`` of a :class:`~napari_galam.models.inference.GalaxyPrediction` as table
    values: log age and [M/H] with their 1-sigma errors and the out-of-distribution flag.

    ``flags`` are the input's own out-of-distribution reasons (:func:`spectrum_model_input`):
    they flag the row too, after the model's reasons in ``ood_reason``.
    """
    errors = {
        key: getattr(answer, key, None) for key in ("log_age_err", "mh_err", "ood", "ood_reason")
    }
    own = str(errors["ood_reason"][k]) if errors["ood_reason"] else ""
    model_ood = (
        bool(errors["ood"][k]) if errors["ood"] is not None and len(errors["ood"]) else False
    )
    return {
        "log_age": float(answer.log_age[k]),
        "mh": float(answer.mh[k]),
        **{
            key: float(errors[key][k]) if errors[key] is not None and len(errors[key]) else np.nan
            for key in ("log_age_err", "mh_err")
        },
        "ood": model_ood or any(flags),
        "ood_reason": "; ".join(reason for reason in (own, *flags) if reason),
    }


def _predict_batches(
    rows: list[dict[str, Any]],
    pending: dict[str, list[tuple[int, Any, list[str]]]],
    predict_galaxies: Callable[..., Any],
    batch_size: int,
) -> None:
    """One model call per batch of prepared inputs; the answers go into ``rows``.

    ``pending`` holds, per model, (row index, model input, the input's own OOD reasons).
    A batch whose call raises is ``failed`` with the error (the other batches go on).
    """
    for choice, items in pending.items():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            try:
                stacked = np.stack([x for _, x, _ in chunk])
                kwargs = {"spectra": stacked} if choice == "spectra-only" else {"images": stacked}
                answer = predict_galaxies(model=choice, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the batch's rows say what happened
                reason = (
                    str(exc)
                    if isinstance(exc, GalamError)
                    else (f"model {choice}: {type(exc).__name__}: {exc}")
                )
                for index, _, _ in chunk:
                    rows[index].update(status="failed", reason=reason)
                continue
            for k, (index, _, flags) in enumerate(chunk):
                rows[index].update(answer_row(answer, k, flags))


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
    pending: dict[str, list[tuple[int, Any, list[str]]]] = {}
    frame, z_range = "observed", None
    if any(galaxy.spectrum is not None for galaxy in inputs):
        from napari_galam.models.registry import spectrum_frame, training_redshift_range

        frame, z_range = spectrum_frame(), training_redshift_range("spectra-only")
    for index, galaxy in enumerate(inputs):
        try:
            prepared = _prepare(galaxy, params, frame, z_range)
        except Exception as exc:  # noqa: BLE001 - a last guard: one galaxy, one row
            prepared = _Prepared(reason=unexpected_error_reason(galaxy.source, exc), failed=True)
        reason = prepared.reason
        row = _empty_row(galaxy)
        row["reason"] = reason
        if prepared.failed:
            row["status"] = "failed"
        choice = model
        if model == "auto":
            choice = "spectra-only" if prepared.spectrum is not None else "mmlforgalam"
        spectral = choice == "spectra-only"
        needs = prepared.spectrum if spectral else prepared.image
        if needs is not None:
            pending.setdefault(choice, []).append(
                (
                    index,
                    needs,
                    prepared.flags
                    if spectral
                    else prepared.image_flags + _galaxy_flags(prepared.flags),
                )
            )
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
    galaxies: Sequence[GalaxyInput],
    path: str | os.PathLike,
    *,
    model: str = "auto",
    params: Any = None,
) -> int:
    """Predict one partition of galaxies and write its rows atomically to ``path``.

    Runs :func:`iter_predict_catalogue` with the models of this process (loaded once
    per process by the registry) and the image QA's ``params`` (a
    :class:`~napari_galam.pipeline.qa_parameters.QAParameters`; None: the defaults).

    Returns
    -------
    int
        Rows written.
    """
    from napari_galam.models.inference import predict_galaxies

    rows = run_to_end(
        iter_predict_catalogue(list(galaxies), predict_galaxies, model=model, params=params)
    )
    write_rows(path, rows, PREDICT_COLUMNS)
    return len(rows)


def _galaxy_sort_key(galaxy: GalaxyInput) -> str:
    """A stable text key of a galaxy: its image and spectrum paths, then its name."""
    image = "" if galaxy.image is None else str(resolved_path(galaxy.image))
    spectrum = "" if galaxy.spectrum is None else str(resolved_path(galaxy.spectrum))
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
