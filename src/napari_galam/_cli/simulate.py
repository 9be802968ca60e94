"""``galam simulate``: write a synthetic-galaxy dataset (HDF5 plus a JSON dataset card)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from napari_galam.errors import GalamInputError
from napari_galam.simulate.families import SFH_FAMILIES, parse_families

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam simulate``."""
    parser = subparsers.add_parser(
        "simulate",
        help="write a dataset of synthetic galaxies with exact age and [M/H] labels",
        description=(
            "Simulate galaxies built from E-MILES stellar populations and write them to HDF5: "
            "'cutouts' = SDSS-like gri cutouts + fibre spectra + labels + truth (MMLforGalAM); "
            "'cubes' = CALIFA-like cubes + truth maps + gradients + narrow-band SEDs. "
            "The same seed gives the same data."
        ),
    )
    parser.add_argument("--kind", choices=("cutouts", "cubes"), default="cutouts")
    parser.add_argument("-n", "--number", type=int, default=100, help="number of galaxies")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output .h5 file (--layout: a folder)"
    )
    parser.add_argument(
        "--blend-probability",
        type=float,
        default=0.25,
        help="cutouts: chance of a close neighbour (default 0.25, as in the paper's sample)",
    )
    parser.add_argument(
        "--store-gri", action="store_true", help="cutouts: also store float g, r, i images"
    )
    parser.add_argument(
        "--nearby-fraction",
        type=float,
        default=0.2,
        help="cutouts: share of galaxies from the nearby end of SDSS, z < 0.02 (default 0.2)",
    )
    parser.add_argument(
        "--broad-populations",
        type=float,
        default=0.3,
        help="cutouts: share of galaxies with ages and [M/H] uniform over the SSP grid "
        "(default 0.3)",
    )
    parser.add_argument(
        "--no-emission",
        action="store_true",
        help="cutouts: spectra without nebular emission lines",
    )
    parser.add_argument(
        "--calibration-rms",
        type=float,
        default=0.03,
        help="cutouts: rms of a smooth flux-calibration error in the spectra (default 0.03)",
    )
    parser.add_argument(
        "--no-cubes",
        action="store_true",
        help="cubes: store only maps, gradients and SEDs, not the spectral cubes",
    )
    parser.add_argument(
        "--cube-emission",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cubes (and --layout): nebular emission lines spaxel by spaxel, strong where "
        "the light is young; the truth stays stellar (default on, as the shipped SED CNN was "
        "trained; --no-cube-emission: stellar light only)",
    )
    parser.add_argument(
        "--family",
        default="all",
        help="star-formation-history families, drawn uniformly per galaxy: 'all' (default) "
        f"or a comma-separated list of {', '.join(SFH_FAMILIES)}; stored as truth/family",
    )
    parser.add_argument(
        "--snr-range",
        default=None,
        help="cutouts: the spectra's S/N per pixel, log-uniform in LOW:HIGH (default 5:50); "
        "cubes: the S/N per pixel at R_e, uniform in LOW:HIGH (default 10:40, the range "
        "the shipped models were trained on)",
    )
    parser.add_argument(
        "--layout",
        choices=("califa", "manga", "muse"),
        help="cubes: write one FITS file per galaxy in this survey's layout (CALIFA V500, MaNGA "
        "LOGCUBE, MUSE WFM cut-out) into the --output folder, plus a truth table, "
        "instead of the HDF5 training set",
    )
    parser.add_argument(
        "--redshift",
        help="--layout: the galaxies' redshift, Z or a range LOW:HIGH drawn uniformly, "
        "0 < z <= 0.2 (default the survey's: CALIFA 0.005:0.03, MaNGA 0.01:0.15, MUSE 0.02:0.2)",
    )
    parser.add_argument(
        "--shape",
        help="--layout: cube size NY,NX in spaxels (default the survey's: CALIFA 73,78, "
        "MUSE 56,56, MaNGA the bundle's box)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _redshift(text: str | None) -> float | tuple[float, float] | None:
    """``Z`` or ``LOW:HIGH`` as numbers (the simulator checks the values)."""
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(":"))
    except ValueError:
        values = ()
    if len(values) not in (1, 2):
        raise GalamInputError(
            f"--redshift: expected Z or LOW:HIGH such as 0.1 or 0.01:0.2, got {text!r}"
        )
    return values[0] if len(values) == 1 else (values[0], values[1])


def _shape(text: str | None) -> tuple[int, int] | None:
    """``NY,NX`` as two integers (the renderer checks the values)."""
    if text is None:
        return None
    try:
        ny, nx = (int(part) for part in text.split(","))
    except ValueError:
        raise GalamInputError(
            f"--shape: expected NY,NX in spaxels such as 40,40, got {text!r}"
        ) from None
    return ny, nx


def _run_layout(args: argparse.Namespace) -> int:
    """``--layout``: one FITS file per galaxy in a survey's layout and a truth table."""
    from napari_galam.progress import run_to_end
    from napari_galam.simulate.survey_datasets import iter_simulate_survey_cubes, truth_table_name

    if args.layout is None:
        raise GalamInputError("--redshift and --shape apply to --layout cubes; add --layout")
    if args.kind != "cubes" or args.no_cubes:
        raise GalamInputError(
            "--layout writes spectral cubes: use it with --kind cubes, without --no-cubes"
        )
    if args.snr_range is not None:
        raise GalamInputError(
            "--snr-range does not apply to --layout cubes: they take the survey's own S/N"
        )
    steps = iter_simulate_survey_cubes(
        args.output, layout=args.layout, n=args.number, seed=args.seed,
        redshift=_redshift(args.redshift), families=parse_families(args.family),
        shape=_shape(args.shape), emission=args.cube_emission,
    )  # fmt: skip
    if args.quiet:
        table = run_to_end(steps)
    else:
        from tqdm import tqdm

        with tqdm(total=args.number, desc=f"simulating {args.layout} cubes", unit="galaxy") as bar:
            table = run_to_end(steps, on_progress=lambda _: bar.update(1))
    print(f"wrote {len(table)} {table.meta['layout']} cubes to {args.output} (seed {args.seed})")
    print(f"truth table: {args.output / truth_table_name(args.layout, args.seed)}")
    return 0


def _snr_range(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` as two floats with 0 < LOW <= HIGH, checked before anything is drawn."""
    parts = text.split(":")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise GalamInputError(
            f"--snr-range: expected LOW:HIGH such as 3:100, got {text!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise GalamInputError(f"--snr-range: expected 0 < low <= high, got {text!r}")
    return low, high


def run(args: argparse.Namespace) -> int:
    """Run ``galam simulate``."""
    if args.layout is not None or args.redshift is not None or args.shape is not None:
        return _run_layout(args)
    from napari_galam.simulate.datasets import simulate_dataset

    options: dict[str, object] = {}
    if args.kind == "cutouts":
        options = {
            "blend_probability": args.blend_probability,
            "store_gri": args.store_gri,
            "nearby_fraction": args.nearby_fraction,
            "broad_populations": args.broad_populations,
            "emission": not args.no_emission,
            "calibration_rms": args.calibration_rms,
            "snr_range": _snr_range(args.snr_range or "5:50"),
        }
    else:
        options = {"store_cubes": not args.no_cubes, "emission": args.cube_emission}
        if args.snr_range is not None:
            options["snr_range"] = _snr_range(args.snr_range)
    options["families"] = parse_families(args.family)
    card = simulate_dataset(
        args.output,
        kind=args.kind,
        n=args.number,
        seed=args.seed,
        progress=not args.quiet,
        **options,
    )
    print(f"wrote {args.output} ({card['n']} {card['kind']}, seed {card['seed']})")
    print(f"dataset card: {Path(args.output).with_suffix('.json')}")
    if not args.quiet:
        print(json.dumps(card["sizes"]))
    return 0
