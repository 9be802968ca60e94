"""The QA parameters as command-line options, shared by ``galam qa`` and ``galam predict``.

One option per field of :class:`napari_galam.pipeline.qa_parameters.QAParameters`,
generated from its :func:`napari_galam.parameters.parameter_specs` (names, defaults,
ranges and help are written there once), and the checked parameters back from the
parsed arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from napari_galam.parameters import ParameterSpec, parameter_specs
from napari_galam.pipeline.qa_parameters import QAParameters

__all__ = ["OPTION_ALIASES", "add_parameter_options", "parameters_from_args"]

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
