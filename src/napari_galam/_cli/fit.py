"""``galam fit``: pPXF fits of SDSS/BOSS spectra and of the binned spaxels of IFU cubes.

The same fits as the Spectrum dock's "Fit with pPXF" and the Spaxel maps dock's "pPXF
maps" (:mod:`napari_galam.pipeline.fit`): the shipped E-MILES library, kinematics, gas
lines fitted (``--gas fit``) or masked, light-weighted log age and [M/H], bootstrap
errors (``--bootstrap N``) and regularisation (``--regul``) as options. Spectra run
together, cubes are binned to ``--target-snr`` with PowerBin and their bins fitted; both
go through the partition runner (in this process or on Dask), so a rerun resumes.

Outputs in ``--out``: ``fit_summary.ecsv`` (one row per input, with the fitted numbers of
a spectrum or the bins fitted of a cube, and the reason of anything that failed),
``<cube>.ppxf_bins.ecsv`` (one row per bin) and ``<cube>.ppxf_maps.fits`` (the maps with
the cube's celestial WCS, including ``BIN_ID``). Exit status 0 when every input was
fitted, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from napari_galam._cli.predict import add_dask_arguments, engine_of, open_client, progress_bar

__all__ = ["add_parser", "run", "SUMMARY_COLUMNS"]

SUMMARY_COLUMNS = ("source", "kind", "status", "reason", "n_bins", "n_fitted_bins",
                   "log_age", "log_age_err", "mh", "mh_err", "velocity", "sigma", "chi2",
                   "table", "maps")  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam fit``."""
    parser = subparsers.add_parser(
        "fit",
        help="pPXF fits (E-MILES) of SDSS/BOSS spectra and of binned IFU cubes",
        description=(
            "Fit each SDSS/BOSS spectrum, and each bin of each IFU cube (binned to a "
            "target S/N with PowerBin), with pPXF and the shipped E-MILES SSPs: stellar "
            "kinematics, gas lines, light-weighted log age and [M/H] with bootstrap errors."
        ),
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="spec-*.fits spectra or cubes")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.add_argument("--gas", choices=("fit", "mask"), default="fit",
                        help="fit the emission lines with gas templates, or mask them")  # fmt: skip
    parser.add_argument("--regul", type=float, default=0.0,
                        help="pPXF regularisation (0: none; pPXF's examples use 100)")  # fmt: skip
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="N bootstrap refits for the errors of log age and [M/H]")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--ftol", type=float, default=1e-3,
                        help="pPXF's fractional chi^2 tolerance of the non-linear fit "
                             "(default 1e-3; pPXF's own 1e-4 is slower for changes well "
                             "inside the errors)")  # fmt: skip
    parser.add_argument("--target-snr", type=float, default=30.0,
                        help="cubes: bin the spaxels to this S/N per pixel (default 30)")  # fmt: skip
    parser.add_argument("--min-snr", type=float, default=3.0,
                        help="cubes: leave out spaxels below this S/N per pixel")  # fmt: skip
    parser.add_argument("--redshift", type=float, default=None,
                        help="cubes: systemic redshift (default: the header's MED_VEL/Z, else 0)")  # fmt: skip
    parser.add_argument("--fwhm", type=float, default=None,
                        help="instrumental FWHM in observed Angstrom (default: by survey)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dask_arguments(parser, unit="spectra or bins", default_size=4)
    parser.set_defaults(func=run)


def _summary_row(source: str, kind: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {name: float("nan") for name in SUMMARY_COLUMNS}
    row.update(source=source, kind=kind, status="ok", reason="", n_bins=-1, n_fitted_bins=-1,
               table="", maps="")  # fmt: skip
    row.update(values)
    return row


def _spectrum_rows(table: Any) -> list[dict[str, Any]]:
    names = ("log_age", "log_age_err", "mh", "mh_err", "velocity", "sigma", "chi2")
    return [
        _summary_row(
            str(r["source"]),
            "spectrum",
            status=str(r["status"]),
            reason=str(r["reason"]),
            **{n: float(r[n]) for n in names},
        )  # fmt: skip
        for r in table
    ]


def _fit_cube_file(path: Path, args: argparse.Namespace, options: Any, client: Any) -> dict:
    from napari_galam.errors import GalamError
    from napari_galam.io.cubes import read_cube
    from napari_galam.pipeline.fit import iter_fit_cube, write_cube_outputs
    from napari_galam.progress import run_to_end

    try:
        cube = read_cube(path)
        bar, on_progress = progress_bar(0, desc=f"galam fit {cube.name}", unit="bin",
                                        disable=args.quiet)  # fmt: skip

        def show(step: Any) -> None:
            bar.total = step.total
            bar.set_description(f"{cube.name}: {step.stage}")
            on_progress(step)

        with bar:
            result = run_to_end(
                iter_fit_cube(
                    cube, args.out / ".partitions" / cube.name, target_snr=args.target_snr,
                    min_snr=args.min_snr, options=options, redshift=args.redshift,
                    fwhm=args.fwhm, partition_size=args.partition_size,
                    engine=engine_of(args), client=client,
                ),
                on_progress=show,
            )  # fmt: skip
        table_path, maps_path = write_cube_outputs(result, cube, args.out)
    except GalamError as exc:
        return _summary_row(str(path), "cube", status="failed", reason=str(exc))
    n_ok = result.maps.n_fitted
    status = "ok" if n_ok == result.maps.n_bins else "failed"
    reason = "" if status == "ok" else f"{result.maps.n_bins - n_ok} bins failed (see {table_path})"
    return _summary_row(str(path), "cube", status=status, reason=reason,
                        n_bins=result.maps.n_bins, n_fitted_bins=n_ok,
                        table=str(table_path), maps=str(maps_path))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Fit every input; return 0 when all were fitted, 1 otherwise."""
    from napari_galam.io.spectra import looks_like_sdss_spectrum
    from napari_galam.io.writers import write_table
    from napari_galam.pipeline.batch_files import (
        check_output_folder,
        input_path_problem,
        resolved_path,
    )
    from napari_galam.pipeline.distributed import run_batch
    from napari_galam.pipeline.fit import FIT_JOB, FitItem, FitOptions

    check_output_folder(args.out)
    options = FitOptions(gas=args.gas, regul=args.regul, n_bootstrap=args.bootstrap,
                         seed=args.seed, ftol=args.ftol)  # fmt: skip
    paths = [resolved_path(p) for p in args.inputs]
    rows: dict[str, dict[str, Any]] = {}
    spectra = []
    for path in paths:
        problem = input_path_problem(path)
        if problem is not None:
            rows[str(path)] = _summary_row(str(path), "unknown", status="failed", reason=problem)
        elif looks_like_sdss_spectrum(path):
            spectra.append(str(path))
    with open_client(args) as client:
        if spectra:
            bar, on_progress = progress_bar(len(spectra), desc="galam fit spectra",
                                            unit="spectrum", disable=args.quiet)  # fmt: skip
            with bar:
                table, _ = run_batch(
                    [FitItem(s) for s in spectra], FIT_JOB, args.out / ".partitions" / "spectra",
                    partition_size=args.partition_size,
                    options={"redshift": None, "fwhm": args.fwhm, **options.as_dict()},
                    engine=engine_of(args), client=client, on_progress=on_progress,
                    fit_options=options.as_dict(), fwhm=args.fwhm,
                )  # fmt: skip
            rows.update({row["source"]: row for row in _spectrum_rows(table)})
        for path in paths:
            if str(path) not in rows:
                rows[str(path)] = _fit_cube_file(path, args, options, client)
    ordered = [rows[str(p)] for p in paths]
    summary = write_table(args.out / "fit_summary.ecsv", ordered)
    failed = sum(row["status"] != "ok" for row in ordered)
    print(
        f"galam fit: {len(ordered) - failed} of {len(ordered)} inputs fitted; summary in {summary}"
    )
    return 1 if failed else 0
