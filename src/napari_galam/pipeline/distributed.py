"""The partition runner: any batch job in partitions, resumable, in-process or on Dask.

A batch job is described by a :class:`PartitionJob` (its row layout, how to run one
partition, how to key and order its inputs, the row of an input whose partition
crashed); this module knows nothing else about kinds of job. ``galam predict``
(:data:`napari_galam.pipeline.catalogue.PREDICT_JOB`), ``galam map``
(:data:`napari_galam.pipeline.maps.MAP_JOB`) and ``galam qa`` each hand their job to
:func:`run_batch`.

The inputs are sorted and cut into partitions of a fixed size, so the same input list
always gives the same partitions. Each partition's task writes its rows atomically to
``PARTS/part-NNNNN.ecsv`` (a temporary file moved into place), either in this process
one after the other (``engine="local"``) or on ``dask.distributed`` workers
(``engine="dask"``). A rerun skips partitions whose file exists, so a run that was
killed resumes and loses nothing (the one resume mechanism of every batch); at the end
the partitions are merged into one table with exactly one row per input (checked).
``PARTS/manifest.json`` records a hash of the input list, the partition size and the
options, and a rerun with anything different is refused with a message saying so.

A bad input is a row with its reason (each job catches every error of one input, so
one file never costs the others their rows); a partition whose task raises anyway (a
worker killed) is recorded as the job's crash rows (``status = failed`` with the error)
for each of its inputs, and the run goes on. A rerun retries what failed: the inputs
whose rows have the job's ``retry_status`` are run again as a smaller partition
(``PARTS/retry-NNNNN.ecsv``) and their new rows replace the old ones in the partition
file; the other rows are kept. On Dask, TensorFlow is imported by the workers only: the
client process (the CLI) never imports it. The workers read the inputs and write the
partition files themselves, so workers of an existing cluster must see the same file
system paths. Every Dask client of the package is opened by :func:`dask_client`
(:mod:`napari_galam.pipeline.dask_cluster`: a LocalCluster with TLS on temporary
credentials, or an existing scheduler).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.dask_cluster import dask_client, start_client
from napari_galam.progress import Progress, ProgressGenerator, run_to_end

__all__ = [
    "PartitionJob",
    "Partition",
    "RunSummary",
    "ENGINES",
    "partition_inputs",
    "input_fingerprint",
    "open_partitions_dir",
    "partition_path",
    "write_rows",
    "inputs_to_retry",
    "start_client",
    "dask_client",
    "load_models_on_worker",
    "iter_run_partitions",
    "run_partitions",
    "merge_partitions",
    "run_batch",
    "iter_batch",
    "run_partition_here",
]

#: Where the partitions run: in this process one after the other, or on Dask.
ENGINES = ("local", "dask")
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PartitionJob:
    """What a partitioned batch does; the runner knows nothing else about kinds of job.

    Attributes
    ----------
    name
        The job's name in messages and progress ("predict", "map", "qa").
    columns
        Row layout of each partition file.
    run
        Module-level (picklable) ``run(items, path, **options) -> rows written``: runs
        one partition and writes its rows atomically to ``path``
        (see :func:`write_rows`).
    sort_key
        Stable text key of one input (orders the inputs and fingerprints the list).
    crash_row
        ``crash_row(item, reason) -> row``: the row of one input whose partition task
        raised.
    input_key, row_key
        Identity of an input and of a table row: the merge checks that each partition
        file holds exactly its inputs' rows, in order.
    restart_on_new_inputs
        A rerun with a different input list starts the partitions afresh instead of
        being refused (for jobs whose own outputs say what is done, e.g. maps files);
        different options or partition size are still refused.
    retry_status
        Rows with this ``status`` (e.g. ``"failed"``: an unexpected error, or a crashed
        partition) are run again by a rerun; None: never.
    """

    name: str
    columns: tuple[str, ...]
    run: Callable[..., int]
    sort_key: Callable[[Any], str]
    crash_row: Callable[[Any, str], dict[str, Any]]
    input_key: Callable[[Any], Any]
    row_key: Callable[[Any], Any]
    restart_on_new_inputs: bool = False
    retry_status: str | None = "failed"


@dataclass(frozen=True)
class Partition:
    """A slice of the sorted inputs.

    Attributes
    ----------
    index
        Position of the partition (names its file ``part-NNNNN.ecsv``).
    items
        The inputs in it, in sorted order.
    """

    index: int
    items: tuple[Any, ...]


@dataclass(frozen=True)
class RunSummary:
    """What a partitioned run did.

    Attributes
    ----------
    n_partitions, n_skipped, n_crashed
        Partitions in all, found finished from an earlier run, and whose task raised.
    directory
        The partitions folder.
    n_retried
        Inputs an earlier run had failed, run again.
    """

    n_partitions: int
    n_skipped: int
    n_crashed: int
    directory: Path
    n_retried: int = 0


# --------------------------------------------------------------- partitions and manifest


def partition_inputs(
    items: Sequence[Any], job: PartitionJob, *, partition_size: int
) -> list[Partition]:
    """Sort the inputs by ``job.sort_key`` and cut them into partitions of ``partition_size``.

    Parameters
    ----------
    items
        The job's inputs (galaxies, cube paths, cutouts).
    job
        The job (its sort key).
    partition_size
        Inputs per partition (the last one may be smaller).

    Returns
    -------
    list of Partition
    """
    if partition_size < 1:
        raise GalamInputError(f"partition size: expected a positive integer, got {partition_size}.")
    ordered = sorted(items, key=job.sort_key)
    return [
        Partition(k, tuple(ordered[start : start + partition_size]))
        for k, start in enumerate(range(0, len(ordered), partition_size))
    ]


def input_fingerprint(items: Sequence[Any], job: PartitionJob) -> str:
    """SHA-256 of the sorted input list (files named, not their contents)."""
    digest = hashlib.sha256()
    for key in sorted(job.sort_key(item) for item in items):
        digest.update(key.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def partition_path(directory: str | os.PathLike, index: int) -> Path:
    """The file of partition ``index``."""
    return Path(directory) / f"part-{index:05d}.ecsv"


_MANIFEST_NAMES = {
    "n_inputs": "input list",
    "inputs_sha256": "input list",
    "partition_size": "partition size",
    "options": "options",
}


def _read_manifest(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise GalamInputError(f"{file}: unreadable resume manifest ({exc}).") from exc


def _mixing_runs_error(
    directory: Path, old: dict[str, Any], manifest: dict[str, Any]
) -> GalamInputError:
    what = list(
        dict.fromkeys(_MANIFEST_NAMES[k] for k in manifest if old.get(k) != manifest[k])
    )
    return GalamInputError(
        f"{directory}: holds partitions of an earlier run with a different "
        f"{' and '.join(what)} (earlier: "
        f"{old.get('n_inputs')} inputs, partition size {old.get('partition_size')}, "
        f"options {old.get('options')}; now: {manifest['n_inputs']} inputs, partition size "
        f"{manifest['partition_size']}, options {manifest['options']}). Resuming would mix "
        "the two runs: delete that folder to start again, or write to another output."
    )


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{_MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, directory / _MANIFEST)


def open_partitions_dir(
    directory: str | os.PathLike,
    items: Sequence[Any],
    job: PartitionJob,
    *,
    partition_size: int,
    options: dict[str, Any],
) -> Path:
    """Create the partitions folder with its manifest, or check an existing one.

    Raises
    ------
    GalamInputError
        When the folder holds partitions of a different input list, partition size or
        options (resuming would mix two runs). A job with
        ``restart_on_new_inputs`` starts afresh on a different input list instead.
    """
    directory = Path(directory)
    manifest = {
        "n_inputs": len(items),
        "inputs_sha256": input_fingerprint(items, job),
        "partition_size": int(partition_size),
        "options": {k: options[k] for k in sorted(options)},
    }
    file = directory / _MANIFEST
    if not file.exists():
        _write_manifest(directory, manifest)
        return directory
    old = _read_manifest(file)
    if old != manifest:
        same_settings = all(old.get(k) == manifest[k] for k in ("partition_size", "options"))
        if not (job.restart_on_new_inputs and same_settings):
            raise _mixing_runs_error(directory, old, manifest)
        for part in [*directory.glob("part-*.ecsv"), *directory.glob("retry-*.ecsv")]:
            part.unlink()  # another input list: start afresh
        _write_manifest(directory, manifest)
    for stale in [*directory.glob(".part-*.tmp*"), *directory.glob(".retry-*.tmp*")]:
        stale.unlink(missing_ok=True)  # left by a run killed mid-write
    return directory


def write_rows(path: str | os.PathLike, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write a partition's rows atomically to ``path`` (ECSV, the columns in order)."""
    from astropy.table import Table

    from napari_galam.io.writers import write_table

    table = Table(rows=[[row[c] for c in columns] for row in rows], names=columns)
    write_table(Path(path), table)


def load_models_on_worker(names: Sequence[str]) -> int:
    """Load the named models into this process's cache (for ``client.run``); returns pid."""
    from napari_galam.models.registry import load_model

    for name in names:
        load_model(name)
    return os.getpid()


# ------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class _Task:
    """One task of a run: a partition to write, or the failed inputs of one to retry.

    ``partition.items`` are the inputs the task runs; for a retry, ``rows`` are the
    positions of those inputs in the partition file.
    """

    partition: Partition
    path: str
    rows: tuple[int, ...] | None = None


#: What an engine yields per finished task: the task and the error it raised.
_Finished = tuple[_Task, BaseException | None]


def _retry_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"retry-{index:05d}.ecsv"


def _read_partition(file: Path) -> Any:
    from astropy.table import Table

    table = Table.read(file, format="ascii.ecsv")
    for name in table.colnames:  # ECSV reads empty strings back as masked
        if table[name].dtype.kind in "US" and hasattr(table[name], "filled"):
            table[name] = table[name].filled("")
    return table


def _failed_positions(file: Path, partition: Partition, job: PartitionJob) -> list[int] | None:
    """Positions of the rows of ``file`` to retry ([] none); None: the file must be redone."""
    if job.retry_status is None:
        return []
    try:
        if job.retry_status not in file.read_text(errors="replace"):
            return []  # cheap: no row can have that status
        table = _read_partition(file)
    except Exception:  # noqa: BLE001 - an unreadable partition file is simply redone
        return None
    if [job.row_key(row) for row in table] != [job.input_key(i) for i in partition.items]:
        return None
    return [k for k, status in enumerate(table["status"]) if str(status) == job.retry_status]


def inputs_to_retry(
    partitions: Sequence[Partition], directory: str | os.PathLike, job: PartitionJob
) -> dict[int, list[int]]:
    """The finished partitions holding rows to retry: ``{index: [row positions]}``.

    A partition file that cannot be read or does not match its inputs is listed with
    all its positions (it is redone).
    """
    directory = Path(directory)
    found: dict[int, list[int]] = {}
    for partition in partitions:
        file = partition_path(directory, partition.index)
        if not file.exists():
            continue
        positions = _failed_positions(file, partition, job)
        if positions is None:
            positions = list(range(len(partition.items)))
        if positions:
            found[partition.index] = positions
    return found


def _tasks(
    partitions: Sequence[Partition], directory: Path, job: PartitionJob
) -> tuple[list[_Task], int]:
    """The tasks of a run and the inputs retried.

    An unwritten partition, or one whose every row failed, is run whole into its file;
    the failed inputs of another partition are run into ``retry-NNNNN.ecsv``.
    """
    retry = inputs_to_retry(partitions, directory, job)
    tasks = []
    n_retried = 0
    for partition in partitions:
        file = partition_path(directory, partition.index)
        rows = tuple(retry.get(partition.index, ()))
        n_retried += len(rows)
        if not file.exists() or len(rows) == len(partition.items):
            tasks.append(_Task(partition, str(file.resolve())))
        elif rows:
            items = tuple(partition.items[k] for k in rows)
            path = str(_retry_path(directory, partition.index).resolve())
            tasks.append(_Task(Partition(partition.index, items), path, rows))
    return tasks, n_retried


def _iter_local(
    todo: Sequence[_Task], job: PartitionJob, options: dict[str, Any]
) -> Iterator[_Finished]:
    """Run the tasks one after the other in this process."""
    for task in todo:
        try:
            job.run(task.partition.items, task.path, **options)
        except Exception as exc:  # noqa: BLE001 - a crashed partition becomes its rows
            yield task, exc
        else:
            yield task, None


def _iter_dask(
    todo: Sequence[_Task],
    job: PartitionJob,
    options: dict[str, Any],
    *,
    client: Any,
    scheduler: str | None,
    n_workers: int | None,
    max_in_flight: int | None,
) -> Iterator[_Finished]:
    """Run the tasks on Dask, ``max_in_flight`` at a time, as they finish."""
    from distributed import as_completed

    with dask_client(client, scheduler=scheduler, n_workers=n_workers) as client:
        if max_in_flight is None:
            max_in_flight = 4 * (sum(client.nthreads().values()) or 1)
        waiting = list(reversed(todo))
        by_key: dict[str, _Task] = {}

        def submit() -> Any:
            task = waiting.pop()
            items = task.partition.items
            future = client.submit(
                run_partition_here, job.run, items, task.path, pure=False, **options
            )
            by_key[future.key] = task
            return future

        running = as_completed([submit() for _ in range(min(max_in_flight, len(waiting)))])
        for future in running:
            task = by_key.pop(future.key)
            error = future.exception()
            future.release()
            yield task, error
            if waiting:
                running.add(submit())


def run_partition_here(run: Callable[..., int], items: Any, path: str, **options: Any) -> int:
    """Run one partition task with dask computing in this process (on a Dask worker).

    Inside a task on a ``distributed`` worker, dask's default scheduler is the cluster
    itself: a lazy (dask) cube array indexed by the task would be sent back to the
    scheduler as a new graph holding the file's cached bytes (40 MiB per partition for
    a gzipped CALIFA-size cube) and computed on any worker. The inputs are already on
    this worker's file system, so their chunks are read here, synchronously.
    """
    import dask

    with dask.config.set(scheduler="synchronous"):
        return run(items, path, **options)


def _crash_rows(job: PartitionJob, partition: Partition, error: BaseException) -> list[dict]:
    reason = f"partition {partition.index} crashed: {type(error).__name__}: {error}"
    return [job.crash_row(item, reason) for item in partition.items]


def _table_rows(table: Any, columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: row[c] for c in columns} for row in table]


def _splice_retry(directory: Path, task: _Task, job: PartitionJob) -> None:
    """Put the retried rows of ``task`` in place of the failed ones in the partition file."""
    file = partition_path(directory, task.partition.index)
    rows = _table_rows(_read_partition(file), job.columns)
    retried = _table_rows(_read_partition(Path(task.path)), job.columns)
    if [job.row_key(row) for row in retried] != [job.input_key(i) for i in task.partition.items]:
        raise GalamError(f"{task.path}: the retried rows do not match their inputs.")
    for position, row in zip(task.rows or (), retried, strict=True):
        rows[position] = row
    write_rows(file, rows, job.columns)
    Path(task.path).unlink()


def _record(directory: Path, task: _Task, job: PartitionJob, error: BaseException | None) -> None:
    """After a task: its crash rows if it raised, and a retry's rows put in place."""
    if error is not None:
        write_rows(task.path, _crash_rows(job, task.partition, error), job.columns)
    if task.rows is not None:
        _splice_retry(directory, task, job)


def iter_run_partitions(
    partitions: Sequence[Partition],
    job: PartitionJob,
    directory: str | os.PathLike,
    *,
    engine: str = "local",
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    max_in_flight: int | None = None,
    **task_options: Any,
) -> ProgressGenerator[RunSummary]:
    """Run the unfinished partitions and retry failed inputs; yield ``Progress``.

    ``Progress(job.name, inputs_done, n_inputs)``: the inputs of finished partitions
    (retried ones count when their retry is done).

    Parameters
    ----------
    partitions
        From :func:`partition_inputs`.
    job
        What to run: ``job.run(items, path, **task_options)`` writes a partition file.
    directory
        The partitions folder (see :func:`open_partitions_dir`).
    engine
        ``"local"``: in this process, one partition after the other; ``"dask"``: on
        Dask workers.
    client, scheduler, n_workers
        Dask only: an existing ``distributed.Client``; else one on ``scheduler``; else a
        new LocalCluster of ``n_workers`` (see :func:`dask_client`), closed at the end.
    max_in_flight
        Dask only: partitions submitted at a time (default: 4 per worker thread).

    Returns
    -------
    RunSummary
    """
    if engine not in ENGINES:
        raise GalamInputError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}.")
    if engine == "local" and (client is not None or scheduler):
        raise GalamInputError("a Dask client or scheduler needs engine='dask'.")
    directory = Path(directory)
    n_inputs = sum(len(p.items) for p in partitions)
    todo, n_retried = _tasks(partitions, directory, job)
    done = n_inputs - sum(len(t.partition.items) for t in todo)
    crashed = 0
    yield Progress(job.name, done, n_inputs)
    if todo:
        if engine == "local":
            finished = _iter_local(todo, job, task_options)
        else:
            finished = _iter_dask(
                todo, job, task_options, client=client, scheduler=scheduler,
                n_workers=n_workers, max_in_flight=max_in_flight,
            )  # fmt: skip
        for task, error in finished:
            crashed += error is not None
            _record(directory, task, job, error)
            done += len(task.partition.items)
            yield Progress(job.name, done, n_inputs)
    n_skipped = len(partitions) - len(todo)
    return RunSummary(len(partitions), n_skipped, crashed, directory, n_retried)


def run_partitions(
    partitions: Sequence[Partition],
    job: PartitionJob,
    directory: str | os.PathLike,
    **options: Any,
) -> RunSummary:
    """Run :func:`iter_run_partitions` to the end and return its summary."""
    return run_to_end(iter_run_partitions(partitions, job, directory, **options))


def merge_partitions(
    partitions: Sequence[Partition],
    directory: str | os.PathLike,
    job: PartitionJob,
) -> Any:
    """Read every partition file and stack them into one table, in sorted input order.

    Raises
    ------
    GalamError
        When a partition file is missing or does not hold exactly one row per input of
        its partition (it names the partition and what differs).
    """
    from astropy.table import Table, vstack

    directory = Path(directory)
    tables = []
    for partition in partitions:
        file = partition_path(directory, partition.index)
        if not file.exists():
            raise GalamError(f"{file}: missing; run again to finish partition {partition.index}.")
        table = _read_partition(file)
        expected = [job.input_key(item) for item in partition.items]
        found = [job.row_key(row) for row in table]
        if found != expected:
            raise GalamError(
                f"{file}: holds {len(found)} rows that do not match the {len(expected)} "
                f"inputs of partition {partition.index}; delete it and run again."
            )
        tables.append(table)
    if not tables:
        return Table()
    merged = vstack(tables, join_type="exact", metadata_conflicts="silent")
    merged.meta.clear()
    return merged


def _in_input_order(table: Any, items: Sequence[Any], job: PartitionJob) -> Any:
    """The merged rows (in sorted order) put back in the order of ``items``."""
    import numpy as np

    if not len(items):
        return table
    # the same stable sort as partition_inputs: merged row k is input by_sort[k]
    by_sort = sorted(range(len(items)), key=lambda i: job.sort_key(items[i]))
    row_of_input = np.empty(len(items), dtype=int)
    row_of_input[by_sort] = np.arange(len(items))
    return table[row_of_input]


def iter_batch(
    items: Sequence[Any],
    job: PartitionJob,
    directory: str | os.PathLike,
    *,
    partition_size: int,
    options: dict[str, Any],
    engine: str = "local",
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    **task_options: Any,
) -> ProgressGenerator[tuple[Any, RunSummary]]:
    """Run a batch job in partitions, resuming an earlier run; one row per input.

    Yields :class:`~napari_galam.progress.Progress` and returns the merged table
    (:func:`run_batch` runs it to the end).

    Opens (or checks) the partitions folder, runs the partitions that are not finished
    (:func:`iter_run_partitions`: the one resume mechanism) and merges them.

    Parameters
    ----------
    items
        The inputs.
    job
        What to do with them.
    directory
        The partitions folder, kept after the run (a rerun resumes from it).
    partition_size
        Inputs per partition.
    options
        What the manifest records: a rerun with other options is refused.
    engine, client, scheduler, n_workers
        Where the partitions run (see :func:`iter_run_partitions`).
    task_options
        Passed to ``job.run`` of every partition.

    Returns
    -------
    (astropy.table.Table, RunSummary)
        The rows in the order of ``items``, and what the run did.
    """
    folder = open_partitions_dir(
        directory, items, job, partition_size=partition_size, options=options
    )
    partitions = partition_inputs(items, job, partition_size=partition_size)
    summary = yield from iter_run_partitions(
        partitions, job, folder, engine=engine, client=client, scheduler=scheduler,
        n_workers=n_workers, **task_options,
    )  # fmt: skip
    table = merge_partitions(partitions, folder, job)
    if len(table) != len(items):
        raise GalamError(f"{folder}: merged {len(table)} rows for {len(items)} inputs.")
    return _in_input_order(table, items, job), summary


def run_batch(
    items: Sequence[Any],
    job: PartitionJob,
    directory: str | os.PathLike,
    *,
    on_progress: Callable[[Progress], Any] | None = None,
    **arguments: Any,
) -> tuple[Any, RunSummary]:
    """Run :func:`iter_batch` (same ``arguments``) to the end; ``on_progress`` sees each step."""
    return run_to_end(iter_batch(items, job, directory, **arguments), on_progress=on_progress)
