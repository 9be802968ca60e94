"""Batch galaxy QA: every cutout of a folder, catalogue or simulated dataset, resumable.

:func:`iter_qa` / :func:`run_qa` run :func:`napari_galam.pipeline.qa.assess_galaxy` on
each cutout that :func:`list_qa_inputs` finds, through the partition runner
(:func:`napari_galam.pipeline.distributed.iter_batch` with :data:`QA_JOB`: in this
process, or on Dask), and write, into an output folder,

- ``.partitions/``: the rows of each finished partition of cutouts and the run's
  manifest, so an interrupted run resumes where it stopped (finished partitions are
  skipped) and a rerun with other parameters is refused;
- ``qa.ecsv`` and ``qa.csv``: the table (file, status, ellipse, number of sources,
  blended, reason; :data:`napari_galam.pipeline.qa.QA_COLUMNS`) in input order,
  written atomically at the end;
- ``contact_sheets/page_NNNN.png``: pages of galaxies with the target ellipse coloured
  by status, the other fitted ellipses thinner, and the saddle points and peaks marked
  (:mod:`napari_galam.plots.contact_sheets`), so a person can page through thousands of
  cutouts. A partition draws the pages that lie wholly inside it; the pages still
  missing at the end are drawn then.

Every input gets a row: a file that cannot be read (or a folder, FIFO or broken link
named like a cutout) is ``unreadable`` with the reason, and one whose reading or QA
raised an unexpected error is ``failed`` with the error; a rerun runs the ``failed``
inputs again (and redraws their pages). The output folder is checked before any work,
and a ``qa.ecsv`` left by an earlier run is merged with this run's rows (the rows of
files this run did not have are kept), never overwritten.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.pipeline.batch_files import (
    check_earlier_table,
    check_output_folder,
    input_path_problem,
    merge_with_earlier,
    unexpected_error_reason,
)
from napari_galam.pipeline.distributed import (
    PartitionJob,
    inputs_to_retry,
    iter_batch,
    partition_inputs,
    partition_path,
    write_rows,
)
from napari_galam.pipeline.qa import (
    QA_COLUMNS,
    QA_STATUSES,
    STATUS_COLOURS,
    QAParameters,
    assess_galaxy,
    cutout_array,
    qa_row,
)
from napari_galam.pipeline.qa_parameters import QA_PARTITION_SIZE
from napari_galam.plots.contact_sheets import (
    SHEET_COLUMNS,
    SHEET_ROWS,
    GalaxyTile,
    galaxy_tile,
    unreadable_tile,
    write_contact_sheet,
)
from napari_galam.progress import Progress, ProgressGenerator, run_to_end

__all__ = [
    "IMAGE_SUFFIXES",
    "HDF5_SUFFIXES",
    "HDF5_IMAGES",
    "QA_JOB",
    "QA_PARTITION_SIZE",
    "QAInput",
    "QABatchResult",
    "list_qa_inputs",
    "read_qa_image",
    "assess_file",
    "qa_partition",
    "write_qa_table",
    "iter_qa",
    "run_qa",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
HDF5_SUFFIXES = (".h5", ".hdf5")
#: Dataset holding the cutouts in a ``galam simulate --kind cutouts`` file.
HDF5_IMAGES = "images/rgb"
#: Galaxies per contact-sheet page.
PER_PAGE = SHEET_COLUMNS * SHEET_ROWS
#: Status of the inputs of a partition whose task raised (besides :data:`QA_STATUSES`).
FAILED = "failed"


@dataclass(frozen=True)
class QAInput:
    """One cutout of a batch: its position in the input list and its file.

    The position orders the partitions, so that each holds consecutive inputs (and
    whole contact-sheet pages) and the merged rows come in input order.
    """

    index: int
    file: str


@dataclass(frozen=True)
class QABatchResult:
    """What :func:`iter_qa` did.

    Attributes
    ----------
    table
        The QA table (astropy ``Table``, one row per input, in input order), as written
        to ``qa.ecsv``.
    resumed
        The inputs an earlier run had already done (not assessed again).
    out_dir
        The output folder.
    """

    table: Any = field(repr=False)
    resumed: tuple[str, ...]
    out_dir: Path

    @property
    def counts(self) -> dict[str, int]:
        """Number of inputs per status, by status name."""
        return dict(sorted(Counter(str(s) for s in self.table["status"]).items()))


# ------------------------------------------------------------------------------ inputs


def _split_hdf5_item(name: str) -> tuple[Path, int] | None:
    """``"file.h5#12"`` -> (file.h5, 12); None for plain file names."""
    base, sep, index = name.rpartition("#")
    if sep and base.lower().endswith(HDF5_SUFFIXES) and index.isdigit():
        return Path(base), int(index)
    return None


def _read_hdf5_cutout(source: Path, index: int) -> NDArray[Any]:
    import h5py

    try:
        with h5py.File(source, "r") as handle:
            images = handle[HDF5_IMAGES]
            if index >= images.shape[0]:
                raise GalamInputError(
                    f"{source}: no cutout {index} ({images.shape[0]} in {HDF5_IMAGES})."
                )
            return np.asarray(images[index])
    except (OSError, KeyError) as exc:
        raise GalamInputError(f"{source}: cannot read {HDF5_IMAGES} ({exc}).") from exc


def read_qa_image(path: str | os.PathLike) -> NDArray[Any]:
    """The image of one input of :func:`list_qa_inputs` (a file or ``file.h5#index``).

    Raises
    ------
    GalamInputError
        When it cannot be read as an image.
    """
    item = _split_hdf5_item(str(path))
    problem = input_path_problem(item[0] if item is not None else path)
    if problem is not None:
        raise GalamInputError(problem)
    if item is not None:
        return _read_hdf5_cutout(*item)
    from napari_galam.io.images import read_cutout

    cutout = read_cutout(Path(path))
    return cutout_array(cutout.data, cutout.kind)


def _list_hdf5(source: Path) -> list[Path]:
    import h5py

    try:
        with h5py.File(source, "r") as handle:
            if HDF5_IMAGES not in handle:
                raise GalamInputError(
                    f"{source}: no {HDF5_IMAGES} dataset; expected a file written by "
                    "`galam simulate --kind cutouts`."
                )
            n_images = int(handle[HDF5_IMAGES].shape[0])
    except OSError as exc:
        raise GalamInputError(f"{source}: not a readable HDF5 file ({exc}).") from exc
    if n_images == 0:
        raise GalamInputError(f"{source}: {HDF5_IMAGES} holds no cutouts.")
    return [Path(f"{source}#{index}") for index in range(n_images)]


def _is_image(path: Path) -> bool:
    """Named like a cutout (a folder, FIFO or broken link so named is an input too)."""
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def _list_folder(source: Path) -> list[Path]:
    files = sorted(p for p in source.rglob("*") if _is_image(p))
    if not files:
        raise GalamInputError(f"{source}: the folder holds no cutouts ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def _list_catalogue(source: Path) -> list[Path]:
    from astropy.table import Table

    try:
        table = Table.read(source, format="ascii.ecsv" if source.suffix == ".ecsv" else "csv")
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise GalamInputError(f"{source}: not a readable catalogue ({exc}).") from exc
    column = next((c for c in ("file", "path", "filename", "image") if c in table.colnames), None)
    if column is None:
        raise GalamInputError(
            f"{source}: the catalogue needs a column 'file' (or 'path', 'filename', "
            f"'image'); it has {', '.join(table.colnames) or 'none'}."
        )
    files = []
    for value in table[column]:
        path = Path(str(value))
        files.append(path if path.is_absolute() else source.parent / path)
    if not files:
        raise GalamInputError(f"{source}: the catalogue lists no files.")
    return files


def list_qa_inputs(source: str | os.PathLike) -> list[Path]:
    """The cutout files of a folder (sorted), those listed in a catalogue, or a dataset.

    A catalogue (``.csv``/``.ecsv``) needs a column ``file``, ``path``, ``filename`` or
    ``image``; relative paths are taken relative to the catalogue's folder. An HDF5 file
    written by ``galam simulate --kind cutouts`` gives one item per cutout of its
    ``images/rgb`` dataset, named ``file.h5#index``.

    Raises
    ------
    GalamInputError
        When ``source`` does not exist, holds no images, or the catalogue has no file
        column.
    """
    source = Path(source)
    if not source.exists():
        raise GalamInputError(f"{source}: no such folder or catalogue.")
    if source.is_dir():
        return _list_folder(source)
    if source.suffix.lower() in HDF5_SUFFIXES:
        return _list_hdf5(source)
    if source.suffix.lower() not in (".csv", ".ecsv"):
        raise GalamInputError(
            f"{source}: expected a folder of cutouts or a catalogue (.csv or .ecsv)."
        )
    return _list_catalogue(source)


# ------------------------------------------------------------------------ one file


def assess_file(path: str, params: QAParameters) -> tuple[dict[str, Any], GalaxyTile]:
    """QA one input: its table row and its contact-sheet tile.

    A file that cannot be read is a row of status ``unreadable`` with the reason; one
    whose reading, QA or tile raised an unexpected error is ``failed`` with the error.
    """
    label = Path(path).name
    try:
        image = read_qa_image(path)
        qa = assess_galaxy(image, params)
        colour = STATUS_COLOURS.get(qa.status, "#d62728")
        return qa.row(path), galaxy_tile(image, qa, label=label, colour=colour)
    except GalamInputError as exc:
        status, reason = "unreadable", str(exc)
    except Exception as exc:  # noqa: BLE001 - one file's error is that file's row
        status, reason = FAILED, unexpected_error_reason(path, exc)
    tile = unreadable_tile(label, status, STATUS_COLOURS["unreadable"])
    return qa_row(path, None, status, reason), tile


# ----------------------------------------------------------------- contact sheets


def _page_path(sheets_dir: str | os.PathLike, page: int) -> Path:
    return Path(sheets_dir) / f"page_{page + 1:04d}.png"


def _page_span(page: int, per_page: int, n_inputs: int) -> range:
    """Input positions on ``page``."""
    return range(page * per_page, min((page + 1) * per_page, n_inputs))


def _pages_within(first: int, last: int, per_page: int, n_inputs: int) -> range:
    """The pages whose inputs all lie between positions ``first`` and ``last``."""
    start = math.ceil(first / per_page)
    stop = (last + 1) // per_page if last + 1 < n_inputs else math.ceil(n_inputs / per_page)
    return range(start, max(start, stop))


def _draw_partition_pages(
    items: Sequence[QAInput],
    tiles: Sequence[GalaxyTile],
    sheets_dir: str | os.PathLike,
    per_page: int,
    n_inputs: int,
) -> None:
    """Write the pages whose galaxies are all among ``items`` (a partition, or a retry)."""
    by_index = {item.index: tile for item, tile in zip(items, tiles, strict=True)}
    for page in _pages_within(items[0].index, items[-1].index, per_page, n_inputs):
        span = _page_span(page, per_page, n_inputs)
        if all(i in by_index for i in span):
            write_contact_sheet(_page_path(sheets_dir, page), [by_index[i] for i in span])


def _tile_of_row(row: Any, params: QAParameters) -> GalaxyTile:
    """The tile of a finished input: assessed again, or empty when its partition failed."""
    if str(row["status"]) == FAILED:
        return unreadable_tile(Path(str(row["file"])).name, FAILED, STATUS_COLOURS["unreadable"])
    return assess_file(str(row["file"]), params)[1]


def _iter_missing_pages(
    table: Any, sheets_dir: Path, params: QAParameters, per_page: int
) -> ProgressGenerator[int]:
    """Draw the pages not yet on disk (their galaxies assessed again); return how many."""
    n_inputs = len(table)
    pages = [
        page
        for page in range(math.ceil(n_inputs / per_page) if per_page > 0 else 0)
        if not _page_path(sheets_dir, page).exists()
    ]
    for done, page in enumerate(pages):
        yield Progress("contact sheets", done, len(pages))
        tiles = [_tile_of_row(table[i], params) for i in _page_span(page, per_page, n_inputs)]
        write_contact_sheet(_page_path(sheets_dir, page), tiles)
    if pages:
        yield Progress("contact sheets", len(pages), len(pages))
    return len(pages)


# ------------------------------------------------------------------ the partition job


def qa_partition(
    items: Sequence[QAInput],
    path: str | os.PathLike,
    *,
    params: QAParameters,
    sheets_dir: str | None = None,
    per_page: int = PER_PAGE,
    n_inputs: int = 0,
) -> int:
    """QA one partition of cutouts and write its rows atomically to ``path``.

    Parameters
    ----------
    items
        Consecutive inputs of the batch.
    path
        The partition file.
    params
        Masking/detection parameters.
    sheets_dir, per_page, n_inputs
        With a folder: also draw there the contact-sheet pages of ``per_page`` galaxies
        that lie wholly inside this partition (``n_inputs``: inputs of the whole batch).

    Returns
    -------
    int
        Rows written.
    """
    results = [assess_file(item.file, params) for item in items]
    if sheets_dir is not None and items:
        tiles = [tile for _, tile in results]
        _draw_partition_pages(items, tiles, sheets_dir, per_page, n_inputs)
    write_rows(path, [row for row, _ in results], QA_COLUMNS)
    return len(results)


def _input_sort_key(item: QAInput) -> str:
    return f"{item.index:012d}\t{item.file}"


def _failed_row(item: QAInput, reason: str) -> dict[str, Any]:
    return qa_row(item.file, None, FAILED, reason)


def _input_file(item: QAInput) -> str:
    return item.file


def _row_file(row: Any) -> str:
    return str(row["file"])


#: ``galam qa`` for the partition runner (:func:`napari_galam.pipeline.distributed.iter_batch`).
QA_JOB = PartitionJob(
    name="qa",
    columns=QA_COLUMNS,
    run=qa_partition,
    sort_key=_input_sort_key,
    crash_row=_failed_row,
    input_key=_input_file,
    row_key=_row_file,
)


# -------------------------------------------------------------------- the table


def _qa_table(rows: Iterable[Any], params: QAParameters) -> Any:
    """The QA table of ``rows`` (missing values: NaN, -1 or ""), with its metadata."""
    from astropy.table import Table

    rows = list(rows)
    columns = {}
    for name in QA_COLUMNS:
        values = [row[name] for row in rows]
        if name in ("file", "status", "reason"):
            columns[name] = np.array([str(v or "") for v in values], dtype=str)
        elif name == "blended":
            columns[name] = np.array([bool(v) for v in values], dtype=bool)
        elif name.startswith("n_"):
            columns[name] = np.array([int(v) if v is not None else -1 for v in values])
        else:
            columns[name] = np.array([float("nan") if v is None else float(v) for v in values])
    table = Table(columns, names=list(QA_COLUMNS))
    table.meta["description"] = "napari-galam galaxy QA (MMLforGalAM Sect. 2.2.2)"
    table.meta["parameters"] = asdict(params)
    table.meta["statuses"] = dict(QA_STATUSES)
    if FAILED in columns["status"]:
        table.meta["statuses"][FAILED] = "the QA of its partition raised an error (see reason)"
    for name, fmt in (
        ("x", ".3f"),
        ("y", ".3f"),
        ("semi_major", ".3f"),
        ("semi_minor", ".3f"),
        ("angle_deg", ".2f"),
        ("axis_ratio", ".4f"),
        ("threshold", ".2f"),
        ("shape_angle_deg", ".2f"),
        ("shape_axis_ratio", ".4f"),
    ):
        table[name].format = fmt
    return table


def write_qa_table(rows: Iterable[Any], out_dir: str | os.PathLike, params: QAParameters) -> Any:
    """Write ``qa.ecsv`` and ``qa.csv`` of ``rows`` (one mapping per input) into ``out_dir``.

    Returns
    -------
    astropy.table.Table
        The table written (atomically, each file).
    """
    table = _qa_table(rows, params)
    _write_qa_files(table, out_dir)
    return table


def _write_qa_files(table: Any, out_dir: str | os.PathLike) -> None:
    from napari_galam.io.writers import write_table

    for suffix in (".ecsv", ".csv"):
        write_table(Path(out_dir) / f"qa{suffix}", table)


# ------------------------------------------------------------------------ the run


def _input_names(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    if isinstance(inputs, str | os.PathLike):
        return [str(p) for p in list_qa_inputs(inputs)]
    return [str(p) for p in inputs]


def _finished_before(
    items: list[QAInput], parts_dir: Path, partition_size: int
) -> tuple[tuple[str, ...], list[QAInput]]:
    """The inputs an earlier run finished, and those it failed (a rerun retries them)."""
    partitions = partition_inputs(items, QA_JOB, partition_size=partition_size)
    retry = inputs_to_retry(partitions, parts_dir, QA_JOB) if parts_dir.is_dir() else {}
    finished, failed = [], []
    for partition in partitions:
        if not partition_path(parts_dir, partition.index).exists():
            continue
        positions = set(retry.get(partition.index, ()))
        for k, item in enumerate(partition.items):
            (failed if k in positions else finished).append(item)
    return tuple(item.file for item in finished), failed


def _normalised(values: Any) -> Any:
    import json

    return json.loads(json.dumps(values, default=str, sort_keys=True))


def _earlier_qa_table(out_dir: Path, params: QAParameters) -> Any:
    """The ``qa.ecsv`` of an earlier run (None), refused if made with other parameters."""
    path = out_dir / "qa.ecsv"
    earlier = check_earlier_table(path, QA_COLUMNS)
    if earlier is None:
        return None
    before = _normalised(earlier.meta.get("parameters", {}))
    now = _normalised(asdict(params))
    if before != now:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise GalamInputError(
            f"{path}: holds the QA of an earlier run with different options "
            f"({', '.join(changed)}); merging would mix the two runs: move it away, or "
            "write to another --out."
        )
    return earlier


def _forget_pages(items: Sequence[QAInput], sheets_dir: Path, per_page: int) -> None:
    """Remove the contact-sheet pages of ``items`` (redrawn by this run)."""
    for page in {item.index // per_page for item in items} if per_page > 0 else ():
        _page_path(sheets_dir, page).unlink(missing_ok=True)


def iter_qa(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    params: QAParameters | None = None,
    *,
    contact_sheets: bool = True,
    workers: int | None = 1,
    engine: str | None = None,
    scheduler: str | None = None,
    client: Any = None,
    partition_size: int = QA_PARTITION_SIZE,
    per_page: int = PER_PAGE,
) -> ProgressGenerator[QABatchResult]:
    """QA every cutout of a folder, catalogue or list, in partitions; resumable.

    The output folder is checked first (created, writable). The partitions' rows go to
    ``out_dir/.partitions`` as they finish; a rerun skips the finished partitions and
    retries the failed inputs, so rerunning after an interruption resumes (a rerun with
    other parameters is refused). At the end the table, merged with the rows an earlier
    ``qa.ecsv`` had of other files, is written as ``qa.ecsv`` and ``qa.csv``, and the
    contact-sheet pages that are not yet on disk are drawn.

    Parameters
    ----------
    inputs
        A folder of cutouts, a catalogue (``.csv``/``.ecsv`` with a ``file`` column), a
        ``galam simulate`` ``.h5`` file, or a list of paths.
    out_dir
        Output folder (created).
    params
        Masking/detection parameters.
    contact_sheets
        Draw the PNG pages.
    workers
        Worker processes (1: in this process; None with ``engine="dask"``: the CPU
        cores).
    engine
        ``"local"`` or ``"dask"`` (see
        :func:`napari_galam.pipeline.distributed.iter_run_partitions`); default: Dask
        when ``workers`` > 1 or a ``scheduler`` is given.
    scheduler
        Address of a running Dask scheduler.
    client
        An open ``distributed.Client`` to run on (implies ``engine="dask"``; see
        :func:`napari_galam.pipeline.distributed.dask_client`).
    partition_size
        Cutouts per partition (a multiple of ``per_page`` lets each partition draw its
        own pages).
    per_page
        Galaxies per contact-sheet page.

    Yields
    ------
    Progress
        ``qa``: cutouts done (those of an earlier run included) of all; then
        ``contact sheets``: pages drawn at the end, if any.

    Returns
    -------
    QABatchResult
        Its table holds this run's inputs (the files may hold earlier rows too).
    """
    params = params or QAParameters()
    if engine is None:
        engine = "dask" if (workers or 1) > 1 or scheduler or client is not None else "local"
    out_dir = check_output_folder(out_dir)
    earlier = _earlier_qa_table(out_dir, params)
    files = _input_names(inputs)
    parts_dir = out_dir / ".partitions"
    sheets_dir = out_dir / "contact_sheets"
    items = [QAInput(index, name) for index, name in enumerate(files)]
    resumed, failed_before = _finished_before(items, parts_dir, partition_size)
    if contact_sheets:
        _forget_pages(failed_before, sheets_dir, per_page)
    merged, _summary = yield from iter_batch(
        items,
        QA_JOB,
        parts_dir,
        partition_size=partition_size,
        options=asdict(params),
        engine=engine,
        client=client,
        scheduler=scheduler,
        n_workers=workers if engine == "dask" else None,
        params=params,
        sheets_dir=str(sheets_dir.resolve()) if contact_sheets else None,
        per_page=per_page,
        n_inputs=len(items),
    )
    table = _qa_table(merged, params)
    _write_qa_files(merge_with_earlier(table, earlier, ("file",)), out_dir)
    if contact_sheets:
        yield from _iter_missing_pages(table, sheets_dir, params, per_page)
    return QABatchResult(table, resumed, out_dir)


def run_qa(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    params: QAParameters | None = None,
    **options: Any,
) -> Any:
    """Run :func:`iter_qa` to the end and return the QA table (astropy ``Table``).

    ``options`` are those of :func:`iter_qa` (``contact_sheets``, ``workers``...).
    """
    from astropy.table import Table

    run_to_end(iter_qa(inputs, out_dir, params, **options))
    return Table.read(Path(out_dir) / "qa.ecsv", format="ascii.ecsv")
