"""``galam map``: age and [M/H] maps of IFU cubes and narrow-band stacks, per spaxel.

The same pipeline as the Spaxel maps dock (:func:`napari_galam.pipeline.maps.iter_map_source`),
run over many files in partitions by the partition runner
(:func:`napari_galam.pipeline.distributed.run_batch` with
:data:`napari_galam.pipeline.maps.MAP_JOB`), in this process or on Dask with ``--dask``:
each cube's maps are written atomically to ``OUT/<name>.maps.fits`` with the cube's
celestial WCS; a rerun skips cubes whose maps exist, so an interrupted run resumes, and
tries the failed cubes again; a file that cannot be mapped (a folder or FIFO named like a
cube included) gets a row with the reason in ``OUT/map_summary.ecsv`` and does not stop
the others. ``--out`` is checked before any work. The summary keeps the rows of earlier
runs into the same ``--out`` (this run's cubes first); ``--overwrite`` redoes the cubes
given and starts the summary afresh.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_galam._cli.predict import add_dask_arguments, engine_of, open_client, progress_bar
from napari_galam.pipeline.binning import BINNINGS

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam map``."""
    parser = subparsers.add_parser(
        "map",
        help="per-spaxel age and [M/H] maps of IFU cubes or narrow-band stacks",
        description=(
            "Predict each spaxel's log age and [M/H] from its spectrum (spaxel-spectra, the "
            "default for IFU cubes) or from its narrow-band SED in the SED model's filters "
            "(sed-cnn, the model of narrow-band stacks), leave out spaxels below a S/N floor "
            "(or bin them to a target S/N with Voronoi binning or PowerBin and map each bin's "
            "mean), and write the maps as FITS with the cube's WCS."
        ),
    )
    parser.add_argument("cubes", nargs="+", type=Path, help="cube or narrow-band FITS files")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.add_argument("--min-snr", type=float, default=3.0, help="S/N floor per spaxel")
    parser.add_argument(
        "--target-snr",
        type=float,
        default=None,
        help="bin the spaxels to this S/N and map each bin's mean spectrum or SED (default: "
        "no binning)",
    )
    parser.add_argument(
        "--binning",
        choices=BINNINGS,
        default=BINNINGS[0],
        help="the binner of --target-snr: voronoi (Cappellari & Copin 2003) or powerbin "
        "(Cappellari 2025), on the S/N the model measures (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        choices=("auto", "spaxel-spectra", "sed-cnn"),
        default="auto",
        help="spaxel-spectra: the per-spaxel spectral model (IFU cubes, any coverage); "
        "sed-cnn: narrow-band SEDs (Liew-Cain et al. 2021; needs filters from 3762 A); "
        "auto: spaxel-spectra for IFU cubes, sed-cnn for narrow-band stacks",
    )
    parser.add_argument(
        "--redshift",
        type=float,
        default=None,
        help="the galaxies' redshift for spaxel-spectra (default: the cube header's Z or "
        "REDSHIFT keyword, else 0)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="redo cubes already mapped, and start map_summary.ecsv afresh (by default it "
        "keeps the rows of earlier runs)",
    )
    add_dask_arguments(parser, unit="cubes", default_size=1)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Map every cube; return 0 when all were mapped (or already were), 1 otherwise."""
    from napari_galam.io.writers import write_table
    from napari_galam.pipeline.batch_files import (
        check_earlier_table,
        check_output_folder,
        merge_with_earlier,
        resolved_path,
    )
    from napari_galam.pipeline.distributed import run_batch
    from napari_galam.pipeline.maps import MAP_COLUMNS, MAP_JOB

    check_output_folder(args.out)
    summary_path = args.out / "map_summary.ecsv"
    earlier = None if args.overwrite else check_earlier_table(summary_path, MAP_COLUMNS)
    cubes = [str(resolved_path(c)) for c in args.cubes]
    parts_dir = args.out / ".partitions"
    if args.overwrite and parts_dir.is_dir():
        import shutil

        shutil.rmtree(parts_dir)  # redo every cube, not only the maps
    bar, on_progress = progress_bar(len(cubes), desc="galam map", unit="cube")
    with bar, open_client(args) as client:
        table, _summary = run_batch(
            cubes,
            MAP_JOB,
            parts_dir,
            partition_size=args.partition_size,
            options={
                "min_snr": args.min_snr,
                "target_snr": args.target_snr,
                "model": args.model,
                "redshift": args.redshift,
                # the binner matters only with a target (and older manifests lack it)
                **({} if args.target_snr is None else {"binning": args.binning}),
            },
            engine=engine_of(args),
            client=client,
            on_progress=on_progress,
            out=str(args.out.resolve()),
            min_snr=args.min_snr,
            target_snr=args.target_snr,
            overwrite=args.overwrite,
            model=args.model,
            redshift=args.redshift,
            binning=args.binning,
        )
    merged = merge_with_earlier(table, earlier, ("source",))
    summary = write_table(summary_path, merged)
    failed = int((table["status"] == "failed").sum())
    kept = (
        f", with {len(merged) - len(table)} rows of earlier runs"
        if len(merged) > len(table)
        else ""
    )
    print(
        f"galam map: {len(table) - failed} of {len(table)} cubes mapped; summary in {summary}"
        f"{kept} (partitions kept in {parts_dir})"
    )
    return 1 if failed else 0
