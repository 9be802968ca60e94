"""Run ``galam predict`` and ``galam map`` in partitions on Dask, resumable.

The inputs (galaxies or cubes) are sorted and cut into partitions of a fixed size, so
the same input list always gives the same partitions. Each partition runs the very
functions a single click runs (:func:`~napari_galam.pipeline.catalogue.iter_predict_catalogue`
for galaxies, :func:`map_cube_to_file` for cubes) on a ``dask.distributed`` worker,
which writes the partition's rows atomically to ``PARTS/part-NNNNN.ecsv`` (a temporary
file moved into place). A rerun skips partitions whose file exists, so a run that was
killed resumes and loses nothing; at the end the partitions are merged into one table
with exactly one row per input (checked). ``PARTS/manifest.json`` records a hash of the
input list, the partition size and the options, and a rerun with anything different is
refused with a message saying so.

A bad input is a row with its reason (as always); a partition whose task raises is
recorded as rows ``status = failed`` with the error for each of its inputs, and the run
goes on. TensorFlow is imported by the workers only: the client process (the CLI)
never imports it. The workers read the inputs and write the partition files
themselves, so workers of an existing cluster must see the same file system paths.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_galam.errors import GalamError, GalamInputError

__all__ = [
    "DEFAULT_GALAXIES_PER_PARTITION",
    "DEFAULT_CUBES_PER_PARTITION",
    "MAP_COLUMNS",
    "Partition",
    "RunSummary",
    "partition_inputs",
    "input_fingerprint",
    "open_partitions_dir",
    "partition_path",
    "predict_partition",
    "map_partition",
    "map_cube_to_file",
    "maps_target",
    "start_client",
    "dask_client",
    "load_models_on_worker",
    "iter_run_partitions",
    "run_partitions",
    "merge_partitions",
]

DEFAULT_GALAXIES_PER_PARTITION = 256
DEFAULT_CUBES_PER_PARTITION = 1
MAP_COLUMNS = ("source", "maps", "status", "reason", "n_mapped")
_MANIFEST = "manifest.json"


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
    """

    n_partitions: int
    n_skipped: int
    n_crashed: int
    directory: Path


def _sort_key(item: Any) -> str:
    """A stable text key of a galaxy input or a cube path."""
    if isinstance(item, os.PathLike | str):
        return str(Path(item).resolve())
    image = "" if item.image is None else str(Path(item.image).resolve())
    spectrum = "" if item.spectrum is None else str(Path(item.spectrum).resolve())
    return f"{image}\t{spectrum}\t{item.source}"


def partition_inputs(items: Sequence[Any], *, partition_size: int) -> list[Partition]:
    """Sort the inputs and cut them into partitions of ``partition_size``.

    Parameters
    ----------
    items
        :class:`~napari_galam.pipeline.catalogue.GalaxyInput` objects or cube paths.
    partition_size
        Inputs per partition (the last one may be smaller).

    Returns
    -------
    list of Partition
    """
    if partition_size < 1:
        raise GalamInputError(f"partition size: expected a positive integer, got {partition_size}.")
    ordered = sorted(items, key=_sort_key)
    return [
        Partition(k, tuple(ordered[start : start + partition_size]))
        for k, start in enumerate(range(0, len(ordered), partition_size))
    ]


def input_fingerprint(items: Sequence[Any]) -> str:
    """SHA-256 of the sorted input list (files named, not their contents)."""
    digest = hashlib.sha256()
    for key in sorted(_sort_key(item) for item in items):
        digest.update(key.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def partition_path(directory: Path, index: int) -> Path:
    """The file of partition ``index``."""
    return Path(directory) / f"part-{index:05d}.ecsv"


def open_partitions_dir(
    directory: str | os.PathLike,
    items: Sequence[Any],
    *,
    partition_size: int,
    options: dict[str, Any],
) -> Path:
    """Create the partitions folder with its manifest, or check an existing one.

    Raises
    ------
    GalamInputError
        When the folder holds partitions of a different input list, partition size or
        options (resuming would mix two runs).
    """
    directory = Path(directory)
    manifest = {
        "n_inputs": len(items),
        "inputs_sha256": input_fingerprint(items),
        "partition_size": int(partition_size),
        "options": {k: options[k] for k in sorted(options)},
    }
    file = directory / _MANIFEST
    if file.exists():
        try:
            old = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise GalamInputError(f"{file}: unreadable resume manifest ({exc}).") from exc
        if old != manifest:
            names = {
                "n_inputs": "input list",
                "inputs_sha256": "input list",
                "partition_size": "partition size",
                "options": "options",
            }
            what = list(dict.fromkeys(names[k] for k in manifest if old.get(k) != manifest[k]))
            raise GalamInputError(
                f"{directory}: holds partitions of an earlier run with a different "
                f"{' and '.join(what)} (earlier: "
                f"{old.get('n_inputs')} inputs, partition size {old.get('partition_size')}, "
                f"options {old.get('options')}; now: {len(items)} inputs, partition size "
                f"{partition_size}, options {manifest['options']}). Resuming would mix the two "
                "runs: delete that folder to start again, or write to another output."
            )
        for stale in directory.glob(".part-*.tmp*"):  # left by a run killed mid-write
            stale.unlink(missing_ok=True)
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{_MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, file)
    return directory


def _write_rows(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    from astropy.table import Table

    from napari_galam.io.writers import write_table

    table = Table(rows=[[row[c] for c in columns] for row in rows], names=columns)
    write_table(path, table)


# --------------------------------------------------------------------- worker-side tasks


def predict_partition(
    galaxies: Sequence[Any], path: str | os.PathLike, *, model: str = "auto"
) -> int:
    """Predict one partition of galaxies and write its rows atomically to ``path``.

    Runs :func:`~napari_galam.pipeline.catalogue.iter_predict_catalogue` with the
    models of this process (loaded once per process by the registry).

    Returns
    -------
    int
        Rows written.
    """
    from napari_galam.models.inference import predict_galaxies
    from napari_galam.pipeline.catalogue import PREDICT_COLUMNS, iter_predict_catalogue

    rows: list[dict[str, Any]] = []
    for item in iter_predict_catalogue(list(galaxies), predict_galaxies, model=model):
        if not isinstance(item, tuple):
            rows = item
    _write_rows(Path(path), rows, PREDICT_COLUMNS)
    return len(rows)


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
) -> dict[str, Any]:
    """Map one cube or narrow-band stack and write its maps atomically to ``target``.

    Returns
    -------
    dict
        ``{"n_mapped": spaxels with a prediction}``.

    Raises
    ------
    GalamInputError
        When the file is neither a cube nor a narrow-band stack this package reads.
    """
    from napari_galam.io.cubes import read_cube, sniff_cube_layout
    from napari_galam.io.narrowband import read_narrowband, sniff_narrowband
    from napari_galam.io.writers import write_maps
    from napari_galam.pipeline.maps import (
        map_seds,
        sed_model_filters,
        seds_from_cube,
        seds_from_narrowband,
    )
    from napari_galam.sps.filters import load_filters

    path = Path(path)
    if predict is None:
        from napari_galam.models.inference import predict_seds as predict
    filters = sed_model_filters()
    if sniff_narrowband(path) is not None:
        source = read_narrowband(path)
        seds = seds_from_narrowband(source, filters)
    elif sniff_cube_layout(path) is not None:
        source = read_cube(path)
        seds = seds_from_cube(source, load_filters(filters))
    else:
        raise GalamInputError(f"{path}: not an IFU cube or narrow-band stack this tool reads.")
    maps = map_seds(
        seds, predict, min_snr=min_snr, target_snr=target_snr, meta={"source": path.name}
    )
    write_maps(
        target,
        maps.as_dict(),
        celestial_wcs=source.celestial_wcs,
        units={"LOG_AGE": "dex", "MH": "dex", "SNR": "", "BIN_ID": ""},
        header_extra={"MODEL": maps.model, "SOURCE": path.name, "MINSNR": min_snr},
    )
    return {"n_mapped": maps.n_mapped}


def map_partition(
    cubes: Sequence[str | os.PathLike],
    path: str | os.PathLike,
    *,
    out: str | os.PathLike,
    min_snr: float = 3.0,
    target_snr: float | None = None,
    overwrite: bool = False,
) -> int:
    """Map each cube of one partition into ``out``; write the summary rows to ``path``.

    A cube whose maps exist is ``done before`` (unless ``overwrite``); one that cannot be
    mapped is ``failed`` with the reason. Returns the number of rows written.
    """
    rows = []
    for cube in cubes:
        target = maps_target(cube, out)
        row = {"source": str(cube), "maps": str(target), "status": "ok", "reason": ""}
        row["n_mapped"] = -1
        if target.exists() and not overwrite:
            row["status"] = "done before"
        else:
            try:
                row.update(map_cube_to_file(cube, target, min_snr=min_snr, target_snr=target_snr))
            except GalamError as exc:
                row.update(status="failed", reason=str(exc), maps="")
        rows.append(row)
    _write_rows(Path(path), rows, MAP_COLUMNS)
    return len(rows)


def load_models_on_worker(names: Sequence[str]) -> int:
    """Load the named models into this process's cache (for ``client.run``); returns pid."""
    from napari_galam.models.registry import load_model

    for name in names:
        load_model(name)
    return os.getpid()


# ------------------------------------------------------------------------- client side


def start_client(*, scheduler: str | None = None, n_workers: int | None = None) -> tuple[Any, Any]:
    """A Dask client: on ``scheduler`` if given, else on a new LocalCluster.

    The LocalCluster has ``n_workers`` processes (default: the CPU cores this process
    may use) of one thread each, listening on 127.0.0.1 only, with no dashboard.

    Returns
    -------
    (client, cluster)
        ``cluster`` is None for an existing scheduler; close both when done.

    Raises
    ------
    GalamInputError
        When the scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise GalamInputError(
                f"--scheduler {scheduler}: no Dask scheduler answered there ({exc})."
            ) from exc
    if n_workers is None:
        n_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        n_workers = n_workers or os.cpu_count() or 1
    if n_workers < 1:
        raise GalamInputError(f"--workers: expected a positive integer, got {n_workers}.")
    one_thread = {
        name: "1"
        for name in (
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS",
        )
    }
    one_thread["TF_CPP_MIN_LOG_LEVEL"] = "2"
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        env=one_thread,
    )
    return Client(cluster), cluster


@contextmanager
def dask_client(
    client: Any = None, *, scheduler: str | None = None, n_workers: int | None = None
) -> Iterator[Any]:
    """A Dask client for the ``with`` block: ``client`` as given, else a new one.

    The one place that opens and closes a client (see :func:`start_client`): a client
    passed in is used and left open; one made here is closed with its LocalCluster.
    """
    if client is not None:
        yield client
        return
    client, cluster = start_client(scheduler=scheduler, n_workers=n_workers)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _crash_rows(partition: Partition, kind: str, error: BaseException) -> list[dict[str, Any]]:
    reason = f"partition {partition.index} crashed: {type(error).__name__}: {error}"
    if kind == "map":
        return [
            {"source": str(c), "maps": "", "status": "failed", "reason": reason, "n_mapped": -1}
            for c in partition.items
        ]
    return [
        {
            "source": g.source,
            "image": str(g.image or ""),
            "spectrum": str(g.spectrum or ""),
            "model": "",
            "log_age": float("nan"),
            "mh": float("nan"),
            "status": "failed",
            "reason": reason,
        }
        for g in partition.items
    ]


def iter_run_partitions(
    partitions: Sequence[Partition],
    task: Callable[..., int],
    directory: str | os.PathLike,
    *,
    kind: str,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    max_in_flight: int | None = None,
    **task_options: Any,
) -> Iterator[tuple[int, int] | RunSummary]:
    """Run the unfinished partitions on Dask; yield ``(inputs_done, n_inputs)``, then a summary.

    Parameters
    ----------
    partitions
        From :func:`partition_inputs`.
    task
        :func:`predict_partition` or :func:`map_partition`: ``task(items, path, **options)``
        writes the partition file.
    directory
        The partitions folder (see :func:`open_partitions_dir`).
    kind
        ``"predict"`` or ``"map"``: the row layout of a crashed partition.
    client, scheduler, n_workers
        An existing ``distributed.Client``; else one on ``scheduler``; else a new
        LocalCluster of ``n_workers`` (see :func:`start_client`), closed at the end.
    max_in_flight
        Partitions submitted at a time (default: 4 per worker thread).
    """
    from distributed import as_completed

    directory = Path(directory)
    n_inputs = sum(len(p.items) for p in partitions)
    todo = [p for p in partitions if not partition_path(directory, p.index).exists()]
    done = n_inputs - sum(len(p.items) for p in todo)
    crashed = 0
    yield (done, n_inputs)
    if todo:
        own = client is None
        cluster = None
        if own:
            client, cluster = start_client(scheduler=scheduler, n_workers=n_workers)
        try:
            if max_in_flight is None:
                threads = sum(client.nthreads().values()) or 1
                max_in_flight = 4 * threads
            waiting = list(reversed(todo))
            by_key: dict[str, Partition] = {}

            def submit() -> Any:
                partition = waiting.pop()
                future = client.submit(
                    task,
                    partition.items,
                    str(partition_path(directory, partition.index).resolve()),
                    pure=False,
                    **task_options,
                )
                by_key[future.key] = partition
                return future

            running = as_completed([submit() for _ in range(min(max_in_flight, len(waiting)))])
            for future in running:
                partition = by_key.pop(future.key)
                error = future.exception()
                if error is not None:
                    crashed += 1
                    _write_rows(
                        partition_path(directory, partition.index),
                        _crash_rows(partition, kind, error),
                        MAP_COLUMNS if kind == "map" else _predict_columns(),
                    )
                future.release()
                done += len(partition.items)
                yield (done, n_inputs)
                if waiting:
                    running.add(submit())
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
    yield RunSummary(len(partitions), len(partitions) - len(todo), crashed, directory)


def _predict_columns() -> tuple[str, ...]:
    from napari_galam.pipeline.catalogue import PREDICT_COLUMNS

    return PREDICT_COLUMNS


def run_partitions(
    partitions: Sequence[Partition],
    task: Callable[..., int],
    directory: str | os.PathLike,
    **options: Any,
) -> RunSummary:
    """Run :func:`iter_run_partitions` to the end and return its summary."""
    *_progress, summary = iter_run_partitions(partitions, task, directory, **options)
    return summary


def merge_partitions(
    partitions: Sequence[Partition],
    directory: str | os.PathLike,
    *,
    kind: str,
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
        table = Table.read(file, format="ascii.ecsv")
        for name in table.colnames:  # ECSV reads empty strings back as masked
            if table[name].dtype.kind in "US" and hasattr(table[name], "filled"):
                table[name] = table[name].filled("")
        if kind == "map":
            expected = [str(c) for c in partition.items]
            found = [str(s) for s in table["source"]]
        else:
            expected = [(str(g.image or ""), str(g.spectrum or "")) for g in partition.items]
            found = [
                (str(i), str(s)) for i, s in zip(table["image"], table["spectrum"], strict=True)
            ]
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
