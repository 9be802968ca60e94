"""``galam predict``: age and [M/H] of galaxies from cutouts and/or SDSS spectra.

The galaxies run in partitions through the partition runner
(:func:`napari_galam.pipeline.distributed.run_batch` with
:data:`napari_galam.pipeline.catalogue.PREDICT_JOB`): in this process, or on Dask with
``--dask``/``--workers``/``--scheduler``. Either way the partitions are kept in
``.<output>.partitions`` next to the table, and running the same command again resumes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "add_dask_arguments", "wants_dask", "engine_of", "progress_bar", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="age and [M/H] of galaxies from cutouts and/or SDSS spectra",
        description=(
            "Inputs: cutouts (JPEG/PNG/FITS), SDSS spec-*.fits spectra, folders of them, or "
            "a CSV/ECSV catalogue with columns image and/or spectrum. An image and a "
            "spectrum with the same stem are one galaxy. Every input gets a row; rejected "
            "ones (blend, no ellipse, unreadable) say why."
        ),
    )
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, help="results .csv or .ecsv")
    parser.add_argument(
        "--model",
        choices=("auto", "mmlforgalam", "image-only", "spectra-only"),
        default="auto",
        help="auto = spectra-only when a spectrum exists, else MMLforGalAM",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dask_arguments(parser, unit="galaxies", default_size=256)
    parser.set_defaults(func=run)


def add_dask_arguments(parser: argparse.ArgumentParser, *, unit: str, default_size: int) -> None:
    """The options of the Dask path, shared by ``galam predict``, ``map`` and ``qa``."""
    group = parser.add_argument_group(
        "Partitions and Dask",
        "The inputs run in partitions (in this process, or on dask.distributed with "
        "--dask). Each partition's rows are written to a .partitions folder as it "
        "finishes; running the same command again resumes a killed run, skipping "
        "finished partitions. Rows come in input order.",
    )
    group.add_argument(
        "--dask", action="store_true", help="run on Dask (implied by --scheduler/--workers)"
    )
    group.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: CPU cores)"
    )
    group.add_argument(
        "--scheduler", default=None, help="address of a running scheduler, tcp://host:port"
    )
    group.add_argument(
        "--partition-size",
        type=int,
        default=default_size,
        help=f"{unit} per partition (default {default_size})",
    )


def wants_dask(args: argparse.Namespace) -> bool:
    """Whether the Dask options ask for the Dask path."""
    return bool(args.dask or args.scheduler or args.workers is not None)


def engine_of(args: argparse.Namespace) -> str:
    """The partition runner's engine the options ask for: ``"dask"`` or ``"local"``."""
    return "dask" if wants_dask(args) else "local"


def progress_bar(
    total: int, *, desc: str, unit: str, disable: bool = False
) -> tuple[Any, Callable[[Any], Any]]:
    """A ``tqdm`` bar and the ``on_progress`` callback that moves it to ``Progress.done``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, disable=disable)
    return bar, lambda step: bar.update(step.done - bar.n)


def run(args: argparse.Namespace) -> int:
    """Predict every galaxy and write the table; 0 when all were predicted, else 1."""
    from napari_galam.io.writers import write_table
    from napari_galam.pipeline.catalogue import PREDICT_JOB, collect_inputs
    from napari_galam.pipeline.distributed import run_batch

    inputs = collect_inputs(args.inputs)
    output = Path(args.output)
    bar, on_progress = progress_bar(
        len(inputs), desc="galam predict", unit="galaxy", disable=args.quiet
    )
    with bar:
        table, summary = run_batch(
            inputs,
            PREDICT_JOB,
            output.parent / f".{output.name}.partitions",
            partition_size=args.partition_size,
            options={"model": args.model},
            engine=engine_of(args),
            scheduler=args.scheduler,
            n_workers=args.workers,
            on_progress=on_progress,
            model=args.model,
        )
    path = write_table(output, table)
    ok = int((table["status"] == "ok").sum())
    print(
        f"galam predict: {ok} of {len(table)} galaxies predicted; table in {path} "
        f"({summary.n_partitions} partitions, {summary.n_skipped} done before, "
        f"{summary.n_crashed} crashed; partitions kept in {summary.directory})"
    )
    return 0 if ok == len(table) else 1
