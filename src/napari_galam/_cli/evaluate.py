"""``galam evaluate``: the shipped models on unseen simulated galaxies, as the papers compare."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam evaluate``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="metrics of the shipped models on unseen simulated galaxies",
        description=(
            "Per galaxy: MMLforGalAM, image-only and spectra-only on a `galam simulate "
            "--kind cutouts` file (QA first, as at inference; SD, bias, MSE, MAE overall "
            "and by S/N). Per spaxel: the SED CNN on a `--kind cubes` file (robust SD of "
            "the maps and error of the radial gradients); with --survey-cubes, the maps of "
            "`galam map` (default model auto) of every cube file in a folder written by "
            "`galam simulate --kind cubes --layout ...`, against their truth maps (accuracy, "
            "coverage of the quoted errors per spectral S/N bin and layout, gradient "
            "errors). Real spectra (--real): the spectra-only "
            "model against pPXF fits with the same E-MILES library on the real SDSS spectra "
            "of NGC 3073, NGC 3522 and NGC 4636."
        ),
    )
    parser.add_argument("--cutouts", type=Path, help="simulated cutout dataset (.h5)")
    parser.add_argument("--cubes", type=Path, help="simulated cube dataset (.h5)")
    parser.add_argument(
        "--survey-cubes",
        type=Path,
        help="folder of simulated CALIFA/MaNGA/MUSE cube files with their truth table",
    )
    parser.add_argument(
        "--model",
        default="auto",
        choices=("auto", "spaxel-spectra", "sed-cnn"),
        help="--survey-cubes: the map model, as for galam map (default auto)",
    )
    parser.add_argument(
        "--real",
        action="store_true",
        help="compare the spectra-only model with pPXF on the real SDSS spectra available offline",
    )
    parser.add_argument("-o", "--output", type=Path, help="write the tables here (.ecsv / .json)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N galaxies")
    parser.add_argument("--plot", type=Path, help="save predicted-vs-true plots here (.png)")
    parser.set_defaults(func=run)


def _print_table(table, float_format: str) -> None:
    for column in table.colnames:
        if table[column].dtype.kind == "f":
            table[column].format = float_format
    table.pprint(max_width=-1)


def _print_gradient_coverage(result: dict) -> None:
    """One line per quantity: how often the true slope lies inside the quoted errors."""
    print(
        f"gradient errors on {result['gradient_galaxies']} cubes (PSF FWHM "
        f"{result['psf_fwhm_pix']:g} px): truth within 1 / 1.96 sigma (nominal 68% / 95%)"
    )
    for key, cover in result["gradient_coverage"].items():
        quoted, stat = cover["quoted"], cover["statistical_only"]
        paper = cover["paper_subsample_sd"]
        print(
            f"  {key:8s} quoted (median {cover['median_quoted']:.3f} dex/R_e, model part "
            f"{cover['model_sd']:.3f}): {quoted['within_68']:.0%} / {quoted['within_95']:.0%};"
            f"  statistical part alone: {stat['within_68']:.0%} / {stat['within_95']:.0%};"
            f"  paper's subsample SD: {paper['within_68']:.0%} / {paper['within_95']:.0%}"
        )


def _cube_spread(cover: dict, brief: bool = False) -> str:
    """How well a 1-sigma coverage is known, when it says (spaxels of a cube err together):
    its cubes and the 90% interval from resampling them (``brief``: ``, N cubes, lo-hi``)."""
    if "groups" not in cover:
        return ""
    low, high = cover["interval_68"]
    if brief:
        return f", {cover['groups']} cubes, {low:.0%}-{high:.0%}"
    return (
        f";  {cover['groups']} cubes: {low:.0%}-{high:.0%} resampling cubes (90%), "
        f"{cover['per_group_68']:.0%} a cube"
    )


def _print_spaxel_coverage(result: dict) -> None:
    """Per quantity and S/N bin: how often a spaxel's truth lies within its quoted errors."""
    coverage = result.get("spaxel_coverage")
    if coverage is None:
        return
    print(
        f"per-spaxel errors on {result['spaxels']} spaxels: truth within 1 sigma / the 95% "
        f"interval (z95 = {coverage['log_age'].get('z95', 1.96):.2f} / "
        f"{coverage['mh'].get('z95', 1.96):.2f} sigma, from the model card; nominal 68% / "
        f"95%); {coverage['flagged_share']:.1%} flagged out of distribution"
    )
    for key in ("log_age", "mh"):
        cover = coverage[key]
        rows = [("all", cover), *cover["by_snr"].items()]
        for label, c in rows:
            ok = coverage[key]["in_distribution"]["by_snr"].get(label) if label != "all" else None
            ok = coverage[key]["in_distribution"] if label == "all" else ok
            tail = f";  not flagged: {ok['within_68']:.0%} / {ok['within_95']:.0%}" if ok else ""
            print(
                f"  {key:8s} S/N {label:8s} n={c['n']:7d}  {c['within_68']:6.1%} / "
                f"{c['within_95']:6.1%}  (median sigma {c['median_sigma']:.3f} dex){tail}"
                f"{_cube_spread(c)}"
            )
    every = {key: coverage[key].get("every_mapped") for key in ("log_age", "mh")}
    if all(every.values()):
        print("every mapped spaxel (any radius, the maps' S/N floor and above):")
        for key, cover in every.items():
            bins = "; ".join(
                f"S/N {label} {c['within_68']:.1%} / {c['within_95']:.1%} (n {c['n']})"
                for label, c in cover["by_snr"].items()
            )
            print(f"  {key:8s} all {cover['within_68']:.1%} / {cover['within_95']:.1%} "
                  f"(n {cover['n']}); {bins}")  # fmt: skip


def _print_galaxy_coverage(table) -> None:
    """Per model and S/N bin: how often the truth lies within 1 sigma and the 95% interval."""
    print(
        "coverage of the quoted errors: truth within 1 sigma / the 95% interval (z95 sigma, "
        "from each model card; nominal 68% / 95%)"
    )
    for row in table:
        print(
            f"  {row['model']:13s} S/N {row['snr_bin']:9s} n={row['n']:5d}  log age "
            f"{row['age_within_68']:6.1%} / {row['age_within_95']:6.1%}  [M/H] "
            f"{row['mh_within_68']:6.1%} / {row['mh_within_95']:6.1%}  flagged "
            f"{row['ood_fraction']:6.1%}"
        )


def _print_survey_cubes(result: dict) -> None:
    """The per-file table, then accuracy, coverage and gradients pooled."""
    from astropy.table import Table

    print(
        f"survey cubes in {result['folder']}: {result['mapped']} of {result['files']} files "
        f"mapped ({', '.join(result['model']) or 'no model'}; S/N >= {result['min_snr']:g})"
    )
    columns = ("file", "layout", "family", "redshift", "status", "mapped", "log_age_robust_sd",
               "mh_robust_sd", "gradient_log_age_error", "gradient_mh_error")  # fmt: skip
    defaults = {"family": "", "mapped": 0}
    rows = [{c: r.get(c, defaults.get(c, np.nan)) for c in columns} for r in result["rows"]]
    for row in rows:
        row["status"] = "ok" if row["status"] == "ok" else "failed"
    _print_table(Table(rows=rows, names=columns), ".3f")
    for r in result["rows"]:
        if r["status"] != "ok":
            print(f"failed: {r['status']}")
    acc = result["accuracy"]
    print(
        f"per spaxel within {result['max_radius']:g} R_e at spectral S/N >= 10: "
        + "; ".join(
            f"{k} robust SD {v['robust_sd']:.3f} dex (bias {v['bias']:+.3f}, n {v['n']})"
            for k, v in acc.items()
        )
    )
    print(
        "per-spaxel errors: truth within 1 sigma / the 95% interval (z95 sigma, from the "
        "model card for each cube's layout; nominal 68% / 95%; in brackets the spaxels, the "
        "cubes and the 90% interval of the 68% share from resampling whole cubes)"
    )
    for group, table in result["coverage"].items():
        for key, cover in table.items():
            cells = [f"all {cover['within_68']:.1%} / {cover['within_95']:.1%} "
                     f"(n {cover['n']}{_cube_spread(cover, brief=True)})"]  # fmt: skip
            cells += [
                f"S/N {b} {c['within_68']:.1%} / {c['within_95']:.1%} "
                f"(n {c['n']}{_cube_spread(c, brief=True)})"
                for b, c in cover["by_snr"].items()
                if c["n"]
            ]
            print(f"  {group:7s} {key:8s} " + "; ".join(cells))
    for key, g in result["gradients"].items():
        print(
            f"gradient {key}: {g['cubes']} cubes, SD of (fitted - true) {g['sd']:.3f} dex/R_e "
            f"(mean {g['mean']:+.3f}); truth within the quoted 1 / 1.96 sigma "
            f"{g['within_68']:.0%} / {g['within_95']:.0%}"
        )


def run(args: argparse.Namespace) -> int:
    """Print (and optionally write) the evaluation tables."""
    from napari_galam.errors import GalamInputError
    from napari_galam.models.inference import predict_galaxies, predict_seds
    from napari_galam.pipeline.evaluate import (
        compare_real_spectra,
        evaluate_galaxies,
        evaluate_spaxels,
        plot_predicted_vs_true,
    )

    if args.cutouts is None and args.cubes is None and args.survey_cubes is None and not args.real:
        raise GalamInputError(
            "give --cutouts, --cubes and/or --survey-cubes (written by galam simulate), "
            "and/or --real."
        )
    if args.cutouts is not None:
        table = evaluate_galaxies(args.cutouts, predict_galaxies, limit=args.limit)
        shown = table[table["snr_bin"] == "all"]
        print(
            f"per galaxy, {table.meta['galaxies']} simulated galaxies, QA: {table.meta['qa_statuses']}"
        )
        _print_table(shown, ".4f")
        _print_galaxy_coverage(table)
        if args.plot is not None:
            plot_predicted_vs_true(table, args.plot)
            print(f"predicted-vs-true plots: {args.plot}")
        if args.output is not None:
            from napari_galam.io.writers import write_table

            del table.meta["predictions"]  # arrays: not for the ECSV header
            write_table(args.output.with_suffix(".galaxies.ecsv"), table)
    if args.cubes is not None:
        from napari_galam.models.registry import gradient_model_sd

        result = evaluate_spaxels(args.cubes, predict_seds, model_sd=gradient_model_sd("sed-cnn"))
        del result["gradient_errors"]  # per-cube arrays: not for the summary
        print(json.dumps(result, indent=1, default=float))
        _print_spaxel_coverage(result)
        _print_gradient_coverage(result)
        if args.output is not None:
            args.output.with_suffix(".spaxels.json").write_text(
                json.dumps(result, indent=1, default=float)
            )
    if args.survey_cubes is not None:
        from napari_galam.models.inference import predict_spectra
        from napari_galam.pipeline.evaluate_cubes import evaluate_survey_cubes

        result = evaluate_survey_cubes(
            args.survey_cubes, predict_seds=predict_seds, predict_spectra=predict_spectra,
            model=args.model, limit=args.limit,
        )  # fmt: skip
        _print_survey_cubes(result)
        if args.output is not None:
            _write_json(args.output.with_suffix(".survey.json"), result)
        if result["mapped"] == 0:
            raise GalamInputError(f"{args.survey_cubes}: no cube could be mapped and judged")
    if args.real:
        table = compare_real_spectra(predict_galaxies)
        limits = table.meta["agreement_dex"]
        print(
            f"real SDSS spectra: spectra-only model vs pPXF (E-MILES); agreement = "
            f"|d log age| <= {limits['log_age']} and |d [M/H]| <= {limits['mh']} dex: "
            f"{int(table['agrees'].sum())}/{len(table)} galaxies"
        )
        _print_table(table, ".3f")
        if args.output is not None:
            from napari_galam.io.writers import write_table

            write_table(args.output.with_suffix(".real.ecsv"), table)
    return 0


def _write_json(path: Path, result: dict) -> None:
    """Write ``result`` atomically (a part file renamed into place)."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")
    part.replace(path)
