"""``galam predict``: age and [M/H] of galaxies from cutouts and/or SDSS spectra."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "add_dask_arguments", "wants_dask", "run"]


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
    """The options of the Dask path, shared by ``galam predict`` and ``galam map``."""
    group = parser.add_argument_group(
        "Dask",
        "Run in partitions on dask.distributed. Each partition's rows are written to "
        "a .partitions folder as it finishes; running the same command again resumes "
        "a killed run, skipping finished partitions. Rows come in sorted input order.",
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


def _run_dask(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_galam.io.writers import write_table
    from napari_galam.pipeline.catalogue import collect_inputs
    from napari_galam.pipeline.distributed import (
        iter_run_partitions,
        merge_partitions,
        open_partitions_dir,
        partition_inputs,
        predict_partition,
    )

    inputs = collect_inputs(args.inputs)
    output = Path(args.output)
    parts_dir = open_partitions_dir(
        output.parent / f".{output.name}.partitions",
        inputs,
        partition_size=args.partition_size,
        options={"model": args.model},
    )
    partitions = partition_inputs(inputs, partition_size=args.partition_size)
    with tqdm(total=len(inputs), desc="galam predict", unit="galaxy", disable=args.quiet) as bar:
        for item in iter_run_partitions(
            partitions,
            predict_partition,
            parts_dir,
            kind="predict",
            scheduler=args.scheduler,
            n_workers=args.workers,
            model=args.model,
        ):
            if isinstance(item, tuple):
                bar.update(item[0] - bar.n)
            else:
                summary = item
    table = merge_partitions(partitions, parts_dir, kind="predict")
    if len(table) != len(inputs):
        raise RuntimeError(f"merged {len(table)} rows for {len(inputs)} inputs")
    path = write_table(output, table)
    ok = int((table["status"] == "ok").sum())
    print(
        f"galam predict: {ok} of {len(table)} galaxies predicted; table in {path} "
        f"({summary.n_partitions} partitions, {summary.n_skipped} done before, "
        f"{summary.n_crashed} crashed; partitions kept in {parts_dir})"
    )
    return 0 if ok == len(table) else 1


def run(args: argparse.Namespace) -> int:
    """Predict every galaxy and write the table; 0 when all were predicted, else 1."""
    if wants_dask(args):
        return _run_dask(args)
    from astropy.table import Table
    from tqdm import tqdm

    from napari_galam.io.writers import write_table
    from napari_galam.models.inference import predict_galaxies
    from napari_galam.pipeline.catalogue import (
        PREDICT_COLUMNS,
        collect_inputs,
        iter_predict_catalogue,
    )

    inputs = collect_inputs(args.inputs)
    rows = []
    with tqdm(total=len(inputs), desc="galam predict", unit="galaxy", disable=args.quiet) as bar:
        for item in iter_predict_catalogue(inputs, predict_galaxies, model=args.model):
            if isinstance(item, tuple):
                bar.update(1)
            else:
                rows = item
    path = write_table(args.output, Table(rows=rows, names=PREDICT_COLUMNS))
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"galam predict: {ok} of {len(rows)} galaxies predicted; table in {path}")
    return 0 if ok == len(rows) else 1
