"""``galam predict``: age and [M/H] of galaxies from cutouts and/or SDSS spectra.

The galaxies run in partitions through the partition runner
(:func:`napari_galam.pipeline.distributed.run_batch` with
:data:`napari_galam.pipeline.catalogue.PREDICT_JOB`): in this process, or on Dask with
``--dask``/``--workers``/``--scheduler``. Either way the partitions are kept in
``.<output>.partitions`` next to the table, and running the same command again resumes
(and retries the galaxies that failed). The output's folder is checked before any work,
and a table an earlier run left at ``-o`` is merged with this run's rows, not replaced.
The image QA takes the options of ``galam qa`` (``--psf-fwhm``, ``--no-star-check``...,
generated from :class:`napari_galam.pipeline.qa_parameters.QAParameters`).

This module also holds the Dask options shared by ``galam predict``, ``map`` and ``qa``
(:func:`add_dask_arguments`, :func:`open_client`): a local cluster reachable only with
this run's temporary TLS credentials, or a running scheduler with the user's TLS files.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "add_parser",
    "add_dask_arguments",
    "wants_dask",
    "engine_of",
    "open_client",
    "progress_bar",
    "run",
]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="age and [M/H] of galaxies from cutouts and/or SDSS spectra",
        description=(
            "Inputs: cutouts (JPEG/PNG/FITS), SDSS spec-*.fits spectra, folders of them, or "
            "a CSV/ECSV catalogue with columns image and/or spectrum. An image and a "
            "spectrum with the same stem are one galaxy. Every input gets a row; rejected "
            "ones (blend, no ellipse, unreadable) say why. Each prediction comes with "
            "calibrated 1-sigma errors (log_age_err, mh_err) and an out-of-distribution flag "
            "(ood, ood_reason: low S/N, redshift or shape unlike the training galaxies)."
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
    from napari_galam._cli.qa_options import add_parameter_options

    add_parameter_options(parser)
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
        "--scheduler",
        default=None,
        help="address of a running scheduler, tls://host:port (with the --tls-* options "
        "or --security) or tcp://host:port",
    )
    group.add_argument(
        "--partition-size",
        type=int,
        default=default_size,
        help=f"{unit} per partition (default {default_size})",
    )
    group.add_argument(
        "--dashboard",
        action="store_true",
        help="serve the local cluster's Dask dashboard on 127.0.0.1 (off by default; "
        "any local user can read it)",
    )
    tls = parser.add_argument_group(
        "TLS of --scheduler",
        "A local cluster (--dask, --workers) always uses TLS with credentials made for the "
        "run. A running scheduler needs this client's: PEM files of the CA and of a "
        "certificate and key it signed, or a YAML file in Dask's config layout "
        "(distributed: comm: tls: ca-file, client: cert, key).",
    )
    tls.add_argument("--tls-ca-file", type=Path, default=None, help="CA certificate (PEM)")
    tls.add_argument("--tls-cert", type=Path, default=None, help="client certificate (PEM)")
    tls.add_argument("--tls-key", type=Path, default=None, help="client private key (PEM)")
    tls.add_argument(
        "--security", type=Path, default=None, help="YAML file with distributed.comm.tls settings"
    )


def wants_dask(args: argparse.Namespace) -> bool:
    """Whether the Dask options ask for the Dask path."""
    return bool(args.dask or args.scheduler or args.workers is not None)


def engine_of(args: argparse.Namespace) -> str:
    """The partition runner's engine the options ask for: ``"dask"`` or ``"local"``."""
    return "dask" if wants_dask(args) else "local"


@contextmanager
def open_client(args: argparse.Namespace) -> Iterator[Any]:
    """The Dask client the options ask for (None for the local engine), closed at the end.

    Raises
    ------
    GalamInputError
        When TLS options come without ``--scheduler``, ``--dashboard`` with it, or the
        scheduler cannot be reached.
    """
    import sys

    from napari_galam.errors import GalamInputError
    from napari_galam.pipeline.dask_cluster import dask_client, security_from_options

    tls = {
        "tls_ca_file": args.tls_ca_file,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "security_file": args.security,
    }
    if any(v is not None for v in tls.values()) and not args.scheduler:
        raise GalamInputError(
            "--tls-ca-file, --tls-cert, --tls-key and --security are for --scheduler; a "
            "local cluster makes its own credentials."
        )
    if args.dashboard and args.scheduler:
        raise GalamInputError("--dashboard is for a local cluster; a scheduler serves its own.")
    if not wants_dask(args):
        yield None
        return
    security = security_from_options(**tls) if args.scheduler else None
    with dask_client(
        scheduler=args.scheduler,
        n_workers=args.workers,
        security=security,
        dashboard=args.dashboard,
    ) as client:
        if args.dashboard:
            print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client


def progress_bar(
    total: int, *, desc: str, unit: str, disable: bool = False
) -> tuple[Any, Callable[[Any], Any]]:
    """A ``tqdm`` bar and the ``on_progress`` callback that moves it to ``Progress.done``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, disable=disable)
    return bar, lambda step: bar.update(step.done - bar.n)


def run(args: argparse.Namespace) -> int:
    """Predict every galaxy and write the table; 0 when all were predicted, else 1.

    The table holds this run's galaxies, then the rows an earlier table at ``-o`` had of
    other galaxies.
    """
    from napari_galam._cli.qa_options import parameters_from_args
    from napari_galam.io.writers import write_table
    from napari_galam.pipeline.batch_files import (
        check_earlier_table,
        check_output_folder,
        merge_with_earlier,
    )
    from napari_galam.pipeline.catalogue import PREDICT_COLUMNS, PREDICT_JOB, collect_inputs
    from napari_galam.pipeline.distributed import run_batch

    params = parameters_from_args(args)
    output = _checked_output(Path(args.output))
    check_output_folder(output.parent, option="-o")
    earlier = check_earlier_table(output, PREDICT_COLUMNS)
    inputs = collect_inputs(args.inputs)
    bar, on_progress = progress_bar(
        len(inputs), desc="galam predict", unit="galaxy", disable=args.quiet
    )
    with bar, open_client(args) as client:
        table, summary = run_batch(
            inputs,
            PREDICT_JOB,
            output.parent / f".{output.name}.partitions",
            partition_size=args.partition_size,
            options=_manifest_options(args.model, params),
            engine=engine_of(args),
            client=client,
            on_progress=on_progress,
            model=args.model,
            params=params,
        )
    from napari_galam.models.registry import interval_95_note

    merged = merge_with_earlier(table, earlier, ("image", "spectrum"))
    merged.meta["interval_95"] = interval_95_note(merged["model"])
    path = write_table(output, merged)
    ok = int((table["status"] == "ok").sum())
    print(
        f"galam predict: {ok} of {len(table)} galaxies predicted; table in {path} "
        f"({summary.n_partitions} partitions, {summary.n_skipped} done before, "
        f"{summary.n_crashed} crashed, {summary.n_retried} retried; partitions kept in "
        f"{summary.directory})"
    )
    return 0 if ok == len(table) else 1


def _manifest_options(model: str, params: Any) -> dict[str, Any]:
    """What the partitions' manifest records of a run: the model, and the QA parameters
    that differ from the defaults (so that a folder of a run with the defaults, written
    before ``galam predict`` took QA options, still resumes)."""
    from dataclasses import asdict

    from napari_galam.pipeline.qa_parameters import QAParameters

    defaults = asdict(QAParameters())
    changed = {k: v for k, v in asdict(params).items() if v != defaults[k]}
    return {"model": model, **({"qa": changed} if changed else {})}


def _checked_output(output: Path) -> Path:
    """``-o``: a .csv or .ecsv file name (not a folder)."""
    from napari_galam.errors import GalamInputError

    if output.suffix.lower() not in (".csv", ".ecsv"):
        raise GalamInputError(f"-o {output}: expected a .csv or .ecsv file name.")
    if output.is_dir():
        raise GalamInputError(f"-o {output}: is a folder; expected a .csv or .ecsv file name.")
    return output
