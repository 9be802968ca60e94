"""``galam qa``: batch galaxy QA of a folder or catalogue of cutouts.

Writes ``qa.ecsv``/``qa.csv`` (file, status, ellipse, number of sources, blended,
reason) and contact-sheet PNGs into ``--out``. The cutouts run in partitions through the
partition runner (:func:`napari_galam.pipeline.qa_batch.iter_qa` with
:data:`napari_galam.pipeline.qa_batch.QA_JOB`), in this process or on Dask with
``--dask``/``--workers``/``--scheduler``; an interrupted run resumes when rerun with the
same ``--out`` (and the files that failed are tried again). ``--out`` is checked before
any work, and an earlier ``qa.ecsv`` there is merged, not replaced. The QA parameters'
options are generated from :class:`napari_galam.pipeline.qa_parameters.QAParameters`
(their names, defaults, ranges and help are written there once).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_galam._cli.predict import add_dask_arguments, engine_of, open_client, progress_bar
from napari_galam._cli.qa_options import add_parameter_options, parameters_from_args
from napari_galam.pipeline.qa_parameters import QA_PARTITION_SIZE

__all__ = ["add_parser", "add_parameter_options", "parameters_from_args", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam qa``."""
    parser = subparsers.add_parser(
        "qa",
        help="mask, deblend and check a folder or catalogue of galaxy cutouts",
        description=(
            "Run the MMLforGalAM image preprocessing (masking ellipse, photutils blend "
            "detection, 128x128 crop) on every cutout and write a table and contact sheets. "
            "Rerunning with the same --out skips the files already done."
        ),
    )
    parser.add_argument(
        "source",
        type=Path,
        help="a folder of cutouts, a catalogue .csv/.ecsv, or a `galam simulate` .h5 file",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-sheets", action="store_true", help="do not draw contact sheets")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_parameter_options(parser)
    add_dask_arguments(parser, unit="cutouts", default_size=QA_PARTITION_SIZE)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the QA; print a summary; return 0."""
    from napari_galam.pipeline.batch_files import check_output_folder
    from napari_galam.pipeline.qa_batch import iter_qa
    from napari_galam.progress import Progress, run_to_end

    params = parameters_from_args(args)
    bar, _ = progress_bar(0, desc="qa", unit="cutout", disable=args.quiet)
    stage = ["qa"]
    check_output_folder(args.out)
    with bar, open_client(args) as client:

        def show(step: Progress) -> None:
            if step.stage != stage[0]:  # a new stage: the contact sheets drawn at the end
                stage[0] = step.stage
                bar.set_description(step.stage)
                bar.reset(total=step.total)
            bar.total = step.total
            bar.update(step.done - bar.n)

        result = run_to_end(
            iter_qa(
                args.source,
                args.out,
                params,
                contact_sheets=not args.no_sheets,
                workers=args.workers,
                engine=engine_of(args),
                client=client,
                partition_size=args.partition_size,
            ),
            on_progress=show,
        )
    summary = ", ".join(f"{status} {n}" for status, n in result.counts.items())
    resumed = f" ({len(result.resumed)} already done)" if result.resumed else ""
    print(f"{len(result.table)} cutouts{resumed}: {summary}")
    print(f"table: {args.out / 'qa.ecsv'} and {args.out / 'qa.csv'}")
    if not args.no_sheets:
        print(f"contact sheets: {args.out / 'contact_sheets'}")
    return 0
