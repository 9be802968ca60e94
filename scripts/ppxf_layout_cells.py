"""pPXF on the CALIFA leave-one-family-out cells: is the per-spaxel target reachable at all?

Usage (one process, one core; a killed run resumes from ``--workdir``)::

    OPENBLAS_NUM_THREADS=1 python scripts/ppxf_layout_cells.py \\
        --lofo-dir runs/layout-lofo --workdir runs/ppxf-layout-cells \\
        --out runs/ppxf-layout-cells.json
    python scripts/ppxf_layout_cells.py --families bursty --redshifts 0.2 --cubes 1
    python scripts/ppxf_layout_cells.py --cubes 6 --cached-only   # report what is cached

``scripts/evaluate_spaxel_spectra_layouts.py`` measures ``spaxel-spectra`` (the network
that never saw the cube's family) per spaxel at spectral S/N >= 10 on CALIFA-layout cubes
at z = 0.1 and 0.2. This script fits exactly the same spaxels of exactly the same cubes
with pPXF and the E-MILES library the simulator used (an idealised, template-matched
full-spectrum fit), so that the network's scatter can be set against what the spectra
allow.

For each chosen cube (``--cubes`` per family and z, taken index by index over every
family and z so that a run stopped early stays balanced) the cube is rendered as the
evaluation renders it (its ``render`` and ``cell_seed``; the truth maps are checked
against its cached ``<family>_califa_z<z>_<seed>_<index>.npz`` in ``--lofo-dir``), written
with :func:`~napari_galam.simulate.writers.write_survey_cube` and fitted through ``galam
fit``'s code (:mod:`napari_galam.pipeline.fit`, in this process, default
:class:`~napari_galam.pipeline.fit.FitOptions`: gas lines fitted, ftol 1e-3, no
regularisation unless ``--regul`` (then use another ``--workdir``); redshift from the
file's ``MED_VEL``, CALIFA's 6 A FWHM):

* the whole cube as ``galam fit --target-snr 10`` fits it
  (:func:`~napari_galam.pipeline.fit.fit_cube`, PowerBin bins to S/N 10 from S/N 3): the
  "binned" maps;
* every selected spaxel on its own (a one-spaxel :class:`~napari_galam.pipeline.fit.FitItem`
  through :data:`~napari_galam.pipeline.fit.FIT_JOB`), unless PowerBin already left it
  alone in a bin (then that bin's row is its fit). PowerBin does not keep every spaxel
  above the target alone: it pairs some with a faint neighbour, so the binned map is not a
  per-spaxel fit there.

The selected spaxels are the evaluation's: the cached ``snr`` (spaxel-spectra's spectral
S/N) >= 10 and finite ``ss_log_age``. Each cube's results are cached in ``--workdir``
(``<name>.ppxf.npz``, written atomically) and the cube file is deleted once fitted.

Tables (robust SD = 1.4826 MAD about the median, median bias; dex): per z pooled over
the families, per family pooled over z, and per family and z, for pPXF per spaxel
(light-weighted, as the truth is; and mass-weighted for comparison), spaxel-spectra on the
same spaxels, and the binned ``galam fit`` map on the same spaxels. Gradient errors
(fitted - true slope within R_e, as the evaluation fits them: every mapped spaxel within
2 R_e, at least 25) are given for spaxel-spectra's maps (S/N >= 3) and the binned pPXF
maps. No TensorFlow is imported: the network's numbers come from the cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LAYOUT = "califa"
REDSHIFTS = (0.1, 0.2)
QUANTITIES = ("log_age", "mh")
MIN_SNR = 10.0
TARGET_SNR = 10.0
BIN_MIN_SNR = 3.0
TARGETS = {"log_age": 0.10, "mh": 0.12, "bias": 0.05}
#: Per-spaxel pPXF columns kept: prefix ``pp_`` in the cache.
ROW_COLUMNS = ("log_age", "mh", "log_age_mass", "mh_mass", "chi2", "velocity", "seconds")
#: Estimates compared on the selected spaxels: cache prefix and label.
ESTIMATES = {
    "pp": "pPXF per spaxel",
    "ss": "spaxel-spectra",
    "pb": "galam fit binned map",
    "ppm": "pPXF mass-weighted",
}


def evaluation_module() -> Any:
    """``scripts/evaluate_spaxel_spectra_layouts.py`` as a module (render, seeds, gradients)."""
    path = Path(__file__).resolve().with_name("evaluate_spaxel_spectra_layouts.py")
    spec = importlib.util.spec_from_file_location("evaluate_spaxel_spectra_layouts", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cube_name(family: str, redshift: float, seed: int, index: int) -> str:
    return f"{family}_{LAYOUT}_z{redshift:g}_{seed}_{index}"


def selection(lofo: dict[str, np.ndarray]) -> np.ndarray:
    """The evaluation's spaxels: spaxel-spectra's S/N >= 10 and a finite estimate."""
    return (lofo["snr"] >= MIN_SNR) & np.isfinite(lofo["ss_log_age"])


def _rows_by_bin(table: Any) -> dict[int, Any]:
    return {int(row["bin_id"]): row for row in table}


def fit_cell_cube(
    ev: Any, family: str, redshift: float, index: int, *, first_seed: int, lofo_dir: Path,
    workdir: Path, library: Any, regul: float = 0.0,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Render, write and fit one cube; its per-spaxel results (cached, written atomically).

    A cache made with other fit options (e.g. another ``regul``) is refused, not reused.
    """
    from napari_galam.io.cubes import read_cube
    from napari_galam.pipeline.distributed import run_batch
    from napari_galam.pipeline.fit import (
        FIT_JOB,
        FitItem,
        FitOptions,
        cube_redshift,
        fit_cube,
    )
    from napari_galam.simulate.writers import survey_cube_filename, write_survey_cube

    seed = ev.cell_seed(first_seed, family, LAYOUT, redshift)
    name = cube_name(family, redshift, seed, index)
    cache = workdir / f"{name}.ppxf.npz"
    options = FitOptions(regul=regul)
    wanted = json.dumps(options.as_dict(), sort_keys=True)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["fit_options_json"]) != wanted:
                raise SystemExit(f"{cache} was fitted with other options; use another --workdir")
            return {key: saved[key] for key in saved.files}
    lofo_path = lofo_dir / f"{name}.npz"
    with np.load(lofo_path, allow_pickle=False) as saved:
        lofo = {key: saved[key] for key in saved.files}
    chosen = selection(lofo)

    start = time.perf_counter()
    cube = ev.render(family, LAYOUT, redshift, seed, index, library)
    truth_diff = max(
        float(np.nanmax(np.abs(np.asarray(cube.truth.log_age) - lofo["true_log_age"]))),
        float(np.nanmax(np.abs(np.asarray(cube.truth.mh) - lofo["true_mh"]))),
    )
    if truth_diff > 1e-4:
        raise SystemExit(f"{name}: rendered truth differs from {lofo_path} by {truth_diff:g}")
    render_seconds = time.perf_counter() - start
    data: dict[str, Any] = {
        "family": family, "redshift": redshift, "seed": seed, "index": index,
        "selected": chosen, "truth_max_diff": truth_diff, "render_seconds": render_seconds,
        "fit_options_json": json.dumps(options.as_dict(), sort_keys=True),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(dir=workdir) as temp:
        path = write_survey_cube(Path(temp) / survey_cube_filename(LAYOUT, seed, index), cube)
        del cube
        opened = read_cube(path)
        data["fit_redshift"] = cube_redshift(opened)
        start = time.perf_counter()
        binned = fit_cube(
            opened, Path(temp) / "bins", target_snr=TARGET_SNR, min_snr=BIN_MIN_SNR,
            options=options, engine="local",
        )  # fmt: skip
        data["bins_wall_seconds"] = time.perf_counter() - start
        bins = binned.bins
        sizes = np.bincount(bins.bin_id[bins.bin_id >= 0], minlength=bins.n_bins)
        rows = _rows_by_bin(binned.table)
        data["n_bins"] = bins.n_bins
        data["bin_fit_seconds"] = float(np.nansum([float(r["seconds"]) for r in rows.values()]))
        data["bin_failed"] = sum(str(r["status"]) != "ok" for r in rows.values())
        data["bin_id"] = bins.bin_id
        data["bin_size"] = np.where(bins.bin_id >= 0, sizes[np.maximum(bins.bin_id, 0)], 0)
        data["pb_log_age"] = binned.maps.maps["LOG_AGE"]
        data["pb_mh"] = binned.maps.maps["MH"]

        ny, nx = chosen.shape
        per_spaxel = {c: np.full((ny, nx), np.nan, np.float32) for c in ROW_COLUMNS}
        alone = chosen & (data["bin_size"] == 1)
        for y, x in zip(*np.nonzero(alone), strict=True):
            row = rows[int(bins.bin_id[y, x])]
            if str(row["status"]) == "ok":
                for column in ROW_COLUMNS:
                    per_spaxel[column][y, x] = float(row[column])
        merged = chosen & ~alone
        source = str(Path(opened.path).resolve())
        items = [FitItem(source, int(y * nx + x), ((int(y), int(x)),))
                 for y, x in zip(*np.nonzero(merged), strict=True)]  # fmt: skip
        start = time.perf_counter()
        failed = 0
        if items:
            table, _ = run_batch(
                items, FIT_JOB, Path(temp) / "spaxels", partition_size=4,
                options={"spaxels": [i.bin_id for i in items], **options.as_dict()},
                engine="local", fit_options=options.as_dict(), redshift=None, fwhm=None,
            )  # fmt: skip
            for key, row in _rows_by_bin(table).items():
                if str(row["status"]) != "ok":
                    failed += 1
                    continue
                for column in ROW_COLUMNS:
                    per_spaxel[column][key // nx, key % nx] = float(row[column])
        data["spaxel_wall_seconds"] = time.perf_counter() - start
        data["n_spaxel_fits"] = len(items)
        data["spaxel_failed"] = failed
        data["n_alone"] = int(alone.sum())
        for column in ROW_COLUMNS:
            data[f"pp_{column}"] = per_spaxel[column]
    data = {key: np.asarray(value) for key, value in data.items()}
    tmp = cache.with_name(cache.stem + ".part.npz")
    np.savez(tmp, **data)
    tmp.replace(cache)
    return data


def comparison_cube(lofo: dict[str, np.ndarray], fit: dict[str, np.ndarray]) -> dict[str, Any]:
    """The arrays the tables read: truth, spaxel-spectra, pPXF, on the selected spaxels."""
    cube = dict(lofo)
    cube.update({key: fit[key] for key in fit if key.startswith(("pp_", "pb_"))})
    cube["ppm_log_age"] = fit["pp_log_age_mass"]
    cube["ppm_mh"] = fit["pp_mh_mass"]
    cube["use"] = fit["selected"] & np.isfinite(fit["pp_log_age"])
    return cube


def metrics(cubes: list[dict[str, Any]]) -> dict[str, Any]:
    """Robust SD and median bias of each estimate on the spaxels every estimate has."""
    from napari_galam.models.train_spaxel_spectra import robust_metrics

    out: dict[str, Any] = {
        "cubes": len(cubes),
        "selected": int(sum(int(c["selected_n"]) for c in cubes)),
    }
    for prefix in ESTIMATES:
        out[prefix] = {}
        for key in QUANTITIES:
            diffs = [(c[f"{prefix}_{key}"] - c[f"true_{key}"])[c["use"]] for c in cubes]
            d = np.concatenate(diffs) if diffs else np.zeros(0)
            out[prefix][key] = robust_metrics(np.zeros(d.size), d)
    return out


def _fmt(entry: dict[str, float]) -> str:
    if not entry["n"]:
        return "-"
    return f"{entry['robust_sd']:.3f} ({entry['bias']:+.3f})"


def table(title: str, groups: dict[str, dict[str, Any]]) -> None:
    print(f"\n### {title}: robust SD (median bias), dex, same spaxels for every column\n")
    head = " | ".join(f"{label} {q}" for label in ESTIMATES.values()
                      for q in ("log age", "[M/H]"))  # fmt: skip
    print(f"| group | cubes | spaxels | {head} |")
    print("|---|---|---|" + "---|" * (2 * len(ESTIMATES)))
    for name, entry in groups.items():
        cells = " | ".join(_fmt(entry[p][q]) for p in ESTIMATES for q in QUANTITIES)
        print(f"| {name} | {entry['cubes']} | {entry['pp']['mh']['n']} | {cells} |")


def gradients(ev: Any, cubes: list[dict[str, Any]]) -> dict[str, Any]:
    """Gradient errors of spaxel-spectra's maps and of the binned pPXF maps."""
    return {label: ev.gradient_summary([ev.gradient_error(c, prefix) for c in cubes])
            for prefix, label in (("ss", "spaxel-spectra"), ("pb", "galam fit binned map"))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="all", help="'all' or names, comma-separated")
    parser.add_argument("--redshifts", default=",".join(f"{z:g}" for z in REDSHIFTS))
    parser.add_argument("--cubes", type=int, default=10, help="cubes per family and z")
    parser.add_argument("--seed", type=int, default=9000, help="SEED of the cells' seeds")
    parser.add_argument("--lofo-dir", type=Path, default=Path("runs/layout-lofo"),
                        help="the evaluation's per-cube cache (its --workdir)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=Path("runs/ppxf-layout-cells"))
    parser.add_argument("--out", type=Path, default=None, help="JSON of every table")
    parser.add_argument("--regul", type=float, default=0.0,
                        help="pPXF regularisation (0: none, the default of galam fit)")  # fmt: skip
    parser.add_argument("--cached-only", action="store_true",
                        help="fit nothing: report the cubes already in --workdir")  # fmt: skip
    args = parser.parse_args(argv)

    from napari_galam.simulate.families import parse_families

    ev = evaluation_module()
    families = list(parse_families(args.families))
    redshifts = [float(z) for z in args.redshifts.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    library = None
    if not args.cached_only:
        from napari_galam.simulate.populations import default_library

        library = default_library()

    start = time.perf_counter()
    done: dict[tuple[str, float], list[dict[str, Any]]] = {(f, z): [] for f in families
                                                            for z in redshifts}  # fmt: skip
    fits: list[dict[str, np.ndarray]] = []
    for index in range(args.cubes):
        for z in redshifts:
            for family in families:
                seed = ev.cell_seed(args.seed, family, LAYOUT, z)
                name = cube_name(family, z, seed, index)
                if args.cached_only and not (args.workdir / f"{name}.ppxf.npz").is_file():
                    continue
                fit = fit_cell_cube(ev, family, z, index, first_seed=args.seed,
                                    lofo_dir=args.lofo_dir, workdir=args.workdir,
                                    library=library, regul=args.regul)  # fmt: skip
                with np.load(args.lofo_dir / f"{name}.npz", allow_pickle=False) as saved:
                    lofo = {key: saved[key] for key in saved.files}
                cube = comparison_cube(lofo, fit)
                cube["selected_n"] = int(fit["selected"].sum())
                done[family, z].append(cube)
                fits.append(fit)
                print(f"{name}: {int(fit['n_bins'])} bins ({float(fit['bins_wall_seconds']):.0f}"
                      f" s), {int(fit['n_spaxel_fits'])} spaxel fits "
                      f"({float(fit['spaxel_wall_seconds']):.0f} s), "
                      f"{int(fit['selected'].sum())} selected, z_fit "
                      f"{float(fit['fit_redshift']):.4f}; {time.perf_counter() - start:.0f} s "
                      "in all", flush=True)  # fmt: skip

    fit_seconds = sum(float(f["bin_fit_seconds"]) for f in fits) + sum(
        float(np.nansum(np.where(f["selected"] & (f["bin_size"] != 1), f["pp_seconds"], 0)))
        for f in fits
    )
    n_fits = sum(int(f["n_bins"]) + int(f["n_spaxel_fits"]) for f in fits)
    failed = sum(int(f["bin_failed"]) + int(f["spaxel_failed"]) for f in fits)
    per_z = {f"z={z:g}": metrics([c for f in families for c in done[f, z]]) for z in redshifts}
    per_family = {f: metrics([c for z in redshifts for c in done[f, z]]) for f in families}
    per_cell = {f"{f} z={z:g}": metrics(done[f, z]) for z in redshifts for f in families}
    table("Per z, five families pooled", per_z)
    table("Per family, z pooled", per_family)
    table("Per family and z", per_cell)
    grads = {f"z={z:g}": gradients(ev, [c for f in families for c in done[f, z]])
             for z in redshifts}  # fmt: skip
    print("\n### Gradient error within R_e (fitted - true, dex/R_e): SD (mean), fitted/cubes\n")
    print("| z | spaxel-spectra log age | [M/H] | galam fit binned log age | [M/H] |")
    print("|---|---|---|---|---|")
    for key, by in grads.items():
        cells = [f"{by[m][q]['sd']:.3f} ({by[m][q]['mean']:+.3f}) {by[m]['fitted']}/"
                 f"{by[m]['cubes']}" for m in by for q in QUANTITIES]  # fmt: skip
        print(f"| {key} | " + " | ".join(cells) + " |")
    all_selected = sum(int(f["selected"].sum()) for f in fits)
    used = sum(int(c["use"].sum()) for cs in done.values() for c in cs)
    print(f"\n{len(fits)} cubes, {all_selected} selected spaxels ({used} fitted by pPXF), "
          f"{n_fits} pPXF fits ({failed} failed), {fit_seconds:.0f} s of fitting "
          f"({fit_seconds / max(n_fits, 1):.2f} s per fit); {time.perf_counter() - start:.0f} s "
          "this run")  # fmt: skip
    if args.out is not None:
        summary = {
            "settings": {
                "families": families, "redshifts": redshifts, "cubes": args.cubes,
                "seed": args.seed, "layout": LAYOUT, "min_snr": MIN_SNR,
                "target_snr": TARGET_SNR, "bin_min_snr": BIN_MIN_SNR, "targets": TARGETS,
                "estimates": ESTIMATES, "regul": args.regul,
            },
            "per_z": per_z, "per_family": per_family, "per_cell": per_cell,
            "gradients": grads,
            "cubes_fitted": len(fits), "selected_spaxels": all_selected,
            "ppxf_spaxels": used, "ppxf_fits": n_fits, "ppxf_failed": failed,
            "fit_seconds": round(fit_seconds, 1),
        }  # fmt: skip
        from napari_galam.models.training_loop import atomic_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_json(args.out, summary)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
