"""``galam map``: age and [M/H] maps of IFU cubes and narrow-band stacks, per spaxel.

The same pipeline as the Spaxel maps dock (:mod:`napari_galam.pipeline.maps`), run over
many files: each cube's maps are written atomically to ``OUT/<name>.maps.fits`` with the
cube's celestial WCS; a rerun skips cubes whose maps exist, so an interrupted run
resumes; a file that cannot be mapped gets a row with the reason in
``OUT/map_summary.ecsv`` and does not stop the others.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_galam._cli.predict import add_dask_arguments, wants_dask

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam map``."""
    parser = subparsers.add_parser(
        "map",
        help="per-spaxel age and [M/H] maps of IFU cubes or narrow-band stacks",
        description=(
            "Measure each spaxel's narrow-band SED in the SED model's filters, leave out "
            "spaxels below a S/N floor (or Voronoi-bin them), predict log age and [M/H], "
            "and write the maps as FITS with the cube's WCS."
        ),
    )
    parser.add_argument("cubes", nargs="+", type=Path, help="cube or narrow-band FITS files")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.add_argument("--min-snr", type=float, default=3.0, help="S/N floor per spaxel")
    parser.add_argument(
        "--target-snr", type=float, default=None, help="Voronoi-bin to this S/N (default: no)"
    )
    parser.add_argument("--overwrite", action="store_true", help="redo cubes already mapped")
    add_dask_arguments(parser, unit="cubes", default_size=1)
    parser.set_defaults(func=run)


def _map_one(path: Path, out: Path, args: argparse.Namespace, predict: object) -> dict:
    from napari_galam.pipeline.distributed import map_cube_to_file

    return map_cube_to_file(
        path, out, min_snr=args.min_snr, target_snr=args.target_snr, predict=predict
    )


def _run_dask(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_galam.io.writers import write_table
    from napari_galam.pipeline.distributed import (
        iter_run_partitions,
        map_partition,
        merge_partitions,
        open_partitions_dir,
        partition_inputs,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    cubes = [str(Path(c).resolve()) for c in args.cubes]
    if args.overwrite and (args.out / ".partitions").is_dir():
        import shutil

        shutil.rmtree(args.out / ".partitions")  # redo every cube, not only the maps
    parts_dir = open_partitions_dir(
        args.out / ".partitions",
        cubes,
        partition_size=args.partition_size,
        options={"min_snr": args.min_snr, "target_snr": args.target_snr},
    )
    partitions = partition_inputs(cubes, partition_size=args.partition_size)
    with tqdm(total=len(cubes), desc="galam map", unit="cube") as bar:
        for item in iter_run_partitions(
            partitions,
            map_partition,
            parts_dir,
            kind="map",
            scheduler=args.scheduler,
            n_workers=args.workers,
            out=str(args.out.resolve()),
            min_snr=args.min_snr,
            target_snr=args.target_snr,
            overwrite=args.overwrite,
        ):
            if isinstance(item, tuple):
                bar.update(item[0] - bar.n)
    table = merge_partitions(partitions, parts_dir, kind="map")
    summary = write_table(args.out / "map_summary.ecsv", table)
    failed = int((table["status"] == "failed").sum())
    print(
        f"galam map: {len(table) - failed} of {len(table)} cubes mapped; summary in {summary} "
        f"(partitions kept in {parts_dir})"
    )
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    """Map every cube; return 0 when all were mapped (or already were), 1 otherwise."""
    if wants_dask(args):
        return _run_dask(args)
    from astropy.table import Table
    from tqdm import tqdm

    from napari_galam.errors import GalamError
    from napari_galam.io.writers import write_table
    from napari_galam.models.inference import predict_seds

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in tqdm(args.cubes, desc="galam map", unit="cube"):
        name = path.name.split(".fits")[0].split(".fit")[0]
        target = args.out / f"{name}.maps.fits"
        row = {
            "source": str(path),
            "maps": str(target),
            "status": "ok",
            "reason": "",
            "n_mapped": -1,
        }
        if target.exists() and not args.overwrite:
            row["status"] = "done before"
        else:
            try:
                row.update(_map_one(path, target, args, predict_seds))
            except GalamError as exc:
                row.update(status="failed", reason=str(exc), maps="")
        rows.append(row)
    table = Table(rows=rows, names=["source", "maps", "status", "reason", "n_mapped"])
    summary = write_table(args.out / "map_summary.ecsv", table)
    failed = sum(r["status"] == "failed" for r in rows)
    print(f"galam map: {len(rows) - failed} of {len(rows)} cubes mapped; summary in {summary}")
    return 1 if failed else 0
