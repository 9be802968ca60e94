"""The ``galam`` command line.

Each subcommand lives in its own module that defines ``add_parser(subparsers)`` (which
registers the subcommand and sets ``func`` on it via ``set_defaults``). Heavy imports
(TensorFlow, napari) happen inside the subcommand's ``func``, never at import time, so
``galam --help`` is instant.

Errors a user can cause (:class:`napari_galam.errors.GalamError`) are printed as one
clear line on stderr with exit status 2, never as a traceback; so are errors of the
operating system while writing results (``OSError``: a disk full, a folder made
read-only during the run), which name the file.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from napari_galam import __version__
from napari_galam.errors import GalamError

__all__ = ["main", "build_parser"]

#: Modules that each contribute one subcommand through ``add_parser(subparsers)``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "napari_galam._cli.demo",
    "napari_galam._cli.qa",
    "napari_galam._cli.simulate",
    "napari_galam._cli.map",
    "napari_galam._cli.train",
    "napari_galam._cli.predict",
    "napari_galam._cli.evaluate",
    "napari_galam._cli.fit",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``galam`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="galam",
        description="Stellar age and metallicity of galaxies: cutouts, spectra and cubes.",
    )
    parser.add_argument("--version", action="version", version=f"galam {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``galam`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 1
    try:
        status = args.func(args)
    except GalamError as exc:
        print(f"galam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"galam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"galam {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
