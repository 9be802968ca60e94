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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_galam._cli.predict import add_dask_arguments, engine_of, open_client, progress_bar
from napari_galam.parameters import ParameterSpec, parameter_specs
from napari_galam.pipeline.qa_parameters import QA_PARTITION_SIZE, QAParameters

__all__ = ["add_parser", "add_parameter_options", "parameters_from_args", "run"]

#: Option names of earlier versions, kept working beside the generated ones.
OPTION_ALIASES = {"n_pixels": ("--npixels",), "n_levels": ("--nlevels",)}


def _shown(value: Any) -> str:
    """A default as ``--help`` shows it."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _converter(spec: ParameterSpec) -> Callable[[str], Any]:
    """Text of the command line -> the parameter's kind (``none`` for optional ones)."""

    def convert(text: str) -> Any:
        if spec.optional and text.strip().lower() == "none":
            return None
        return spec.kind(text)

    convert.__name__ = spec.kind.__name__  # argparse names it in "invalid float value"
    return convert


def add_parameter_options(
    parser: argparse.ArgumentParser, specs: list[ParameterSpec] | None = None
) -> None:
    """One option per QA parameter: the main ones, then a group of expert ones.

    A ``bool`` becomes ``--name/--no-name``, a ``str`` with choices takes one of them,
    an optional number also takes ``none``.
    """
    specs = parameter_specs(QAParameters) if specs is None else specs
    groups = {
        False: parser.add_argument_group("QA parameters"),
        True: parser.add_argument_group(
            "expert QA parameters", "Finer settings of the detection and the extended check."
        ),
    }
    for spec in specs:
        names = [spec.option, *OPTION_ALIASES.get(spec.name, ())]
        help_text = spec.help.replace("%", "%%")
        group = groups[spec.expert]
        if spec.kind is bool:
            group.add_argument(
                *names,
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=spec.default,
                help=f"{help_text} (default {'on' if spec.default else 'off'})",
            )
            continue
        extra: dict[str, Any] = {}
        if spec.choices is not None:
            extra["choices"] = spec.choices
        else:
            extra["metavar"] = spec.name.upper() + ("|none" if spec.optional else "")
        group.add_argument(
            *names,
            dest=spec.name,
            type=_converter(spec),
            default=spec.default,
            help=f"{help_text} (default {_shown(spec.default)})",
            **extra,
        )


def parameters_from_args(args: argparse.Namespace) -> QAParameters:
    """The :class:`QAParameters` of the command line, each value checked against its range.

    Raises
    ------
    GalamInputError
        Naming the option whose value is out of range.
    """
    from napari_galam.errors import GalamInputError

    if not args.companion_nsigma > 0:
        raise GalamInputError(f"--companion-nsigma: must be > 0, got {args.companion_nsigma}.")
    values = {}
    for spec in parameter_specs(QAParameters):
        try:
            values[spec.name] = spec.check(getattr(args, spec.name))
        except ValueError as exc:
            message = str(exc).removeprefix(f"{spec.name}: ")
            raise GalamInputError(f"{spec.option}: {message}") from exc
    return QAParameters(**values)


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
