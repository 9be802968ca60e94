"""``galam qa``: batch galaxy QA of a folder or catalogue of cutouts.

Writes ``qa.ecsv``/``qa.csv`` (file, status, ellipse, number of sources, blended,
reason) and contact-sheet PNGs into ``--out``; an interrupted run resumes when rerun
with the same ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


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
    parser.add_argument(
        "--tolerance",
        type=float,
        default=36.0,
        help="isodata tolerance in grey levels, 0-255 (default 36)",
    )
    parser.add_argument(
        "--mask-scale",
        type=float,
        default=1.5,
        help="mask outside the ellipse enlarged by this factor (default 1.5)",
    )
    parser.add_argument(
        "--edges",
        choices=("outline", "canny"),
        default="outline",
        help="contours of the binary image: region outlines (default) or its Canny edges "
        "(the released pipeline; gaps make open arcs on noisy cutouts)",
    )
    parser.add_argument(
        "--nsigma",
        type=float,
        default=1.5,
        help="detection threshold in background RMS (default 1.5)",
    )
    parser.add_argument(
        "--npixels", type=int, default=10, help="minimum connected pixels of a source (default 10)"
    )
    parser.add_argument("--nlevels", type=int, default=90, help="deblending levels (default 90)")
    parser.add_argument(
        "--contrast", type=float, default=1e-6, help="deblending contrast (default 1e-6)"
    )
    parser.add_argument(
        "--method",
        choices=("fast", "photutils"),
        default="fast",
        help="deblending implementation (default fast; results are identical)",
    )
    parser.add_argument(
        "--companion-check",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the extended blend check: also flag companions without a peak of their "
        "own (the target's 180-degree rotation residual) and galaxies whose ellipse sits "
        "more than 3 px off the cutout centre, and do not count deblended knots with "
        "under 5%% of the light (default off: the seed's procedure)",
    )
    parser.add_argument(
        "--companion-nsigma",
        type=float,
        default=1.5,
        help="rotation-residual threshold of the companion check (default 1.5)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--no-sheets", action="store_true", help="do not draw contact sheets")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the QA; print a summary; return 0."""
    from collections import Counter

    from tqdm import tqdm

    from napari_galam.errors import GalamInputError
    from napari_galam.pipeline.qa import QAParameters, iter_qa

    if args.workers < 1:
        raise GalamInputError(f"--workers: must be >= 1, got {args.workers}.")
    if not args.companion_nsigma > 0:
        raise GalamInputError(f"--companion-nsigma: must be > 0, got {args.companion_nsigma}.")
    params = QAParameters(
        tolerance=args.tolerance,
        mask_scale=args.mask_scale,
        edges=args.edges,
        nsigma=args.nsigma,
        n_pixels=args.npixels,
        n_levels=args.nlevels,
        contrast=args.contrast,
        method=args.method,
        companion_check=args.companion_check,
        companion_nsigma=args.companion_nsigma,
    )
    counts: Counter[str] = Counter()
    n_skipped = 0
    with tqdm(desc="galaxy QA", unit="cutout", disable=args.quiet) as bar:
        for step in iter_qa(
            args.source,
            args.out,
            params,
            contact_sheets=not args.no_sheets,
            workers=args.workers,
        ):
            bar.total = step.total
            bar.update(1)
            counts[str(step.row["status"])] += 1
            n_skipped += step.skipped
    summary = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    resumed = f" ({n_skipped} already done)" if n_skipped else ""
    print(f"{sum(counts.values())} cutouts{resumed}: {summary}")
    print(f"table: {args.out / 'qa.ecsv'} and {args.out / 'qa.csv'}")
    if not args.no_sheets:
        print(f"contact sheets: {args.out / 'contact_sheets'}")
    return 0
