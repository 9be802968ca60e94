"""Parameters written once: a dataclass field carries its default, range, label and help.

A parameters dataclass (e.g. :class:`napari_galam.pipeline.qa.QAParameters`) declares
each field with :func:`parameter`; :func:`parameter_specs` reads them back as
:class:`ParameterSpec` objects, from which the command line builds its options and a
dock builds its form. A default, a range or a help text is therefore typed in one place.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

__all__ = ["ParameterSpec", "parameter", "parameter_specs"]

_KEY = "galam_parameter"


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of a parameters dataclass, as the CLI and the docks need it.

    Attributes
    ----------
    name
        The field name (the CLI option is ``--name-with-dashes``).
    kind
        ``float``, ``int``, ``bool`` or ``str``.
    default
        The field's default.
    label
        A short label for a form.
    help
        One sentence for ``--help`` and the form's tooltip.
    range
        ``(low, high)`` allowed values of a number, or None.
    choices
        The allowed values of a ``str``, or None.
    optional
        The field also takes None (e.g. "skip this test").
    expert
        Kept out of the compact dock form and the short CLI help (still settable).
    """

    name: str
    kind: type
    default: Any
    label: str
    help: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False
    expert: bool = False

    @property
    def option(self) -> str:
        """The command-line option, e.g. ``--mask-scale``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """``value`` converted to :attr:`kind`, or ValueError saying what is accepted."""
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{self.name}: a value is required.")
        value = self.kind(value)
        if self.range is not None and not (self.range[0] <= value <= self.range[1]):
            raise ValueError(
                f"{self.name}: expected {self.range[0]:g} to {self.range[1]:g}, got {value!r}."
            )
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name}: expected one of {', '.join(self.choices)}, got {value!r}.")
        return value


def parameter(
    default: Any,
    *,
    label: str,
    help: str,  # noqa: A002 - the word argparse uses
    range: tuple[float, float] | None = None,  # noqa: A002
    choices: tuple[str, ...] | None = None,
    expert: bool = False,
) -> Any:
    """A dataclass field with the metadata :func:`parameter_specs` reads."""
    info = {"label": label, "help": help, "range": range, "choices": choices, "expert": expert}
    return dataclasses.field(default=default, metadata={_KEY: info})


def _kind_of(annotation: Any) -> tuple[type, bool]:
    """(base type, takes None) of a field annotation such as ``float | None``."""
    args = typing.get_args(annotation)
    if args:
        kinds = [a for a in args if a is not type(None)]
        return kinds[0], len(kinds) < len(args)
    return annotation, False


def parameter_specs(cls: type) -> list[ParameterSpec]:
    """The :class:`ParameterSpec` of every field of ``cls`` declared with :func:`parameter`."""
    hints = typing.get_type_hints(cls)
    specs = []
    for item in dataclasses.fields(cls):
        info = item.metadata.get(_KEY)
        if info is None:
            continue
        kind, optional = _kind_of(hints[item.name])
        specs.append(
            ParameterSpec(
                name=item.name,
                kind=kind,
                default=item.default,
                label=info["label"],
                help=info["help"],
                range=info["range"],
                choices=info["choices"],
                optional=optional,
                expert=info["expert"],
            )
        )
    return specs
