"""``galam predict``: age and [M/H] of galaxies from cutouts and/or SDSS spectra."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Predict every galaxy and write the table; 0 when all were predicted, else 1."""
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
