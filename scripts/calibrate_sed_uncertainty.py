"""Give the SED CNN per-spaxel errors and an out-of-distribution flag, calibrated on unseen cubes.

Usage (a few minutes on a 2-core CPU)::

    galam simulate --kind cubes -n 200 --seed 1513 --no-cubes -o head.h5   # fits the head
    galam simulate --kind cubes -n 100 --seed 1511 --no-cubes -o cal.h5    # calibrates
    galam simulate --kind cubes -n 200 --seed 1514 --no-cubes -o cal2.h5   # (more of it)
    galam simulate --kind cubes -n 100 --seed 1512 --no-cubes -o test.h5   # checks coverage
    python scripts/calibrate_sed_uncertainty.py head.h5 cal.h5 cal2.h5 test.h5 --ship

With ``--keep-head`` the shipped variance head stays (its ``.keras`` is not rewritten) and
only the scales, the out-of-distribution reference and the coverage are fitted again.

Method. The age and [M/H] networks keep their MSE weights (their means, metrics and the
gradient calibration stay valid); a small variance head on their frozen last hidden
features plus a learned roughness of the normalised SED is fitted with the Gaussian
negative log-likelihood on cubes neither network saw (``head``). One variance scale per
quantity is then fitted on other cubes (``cal``, one or more files): the factor that
brings the 68% and 95% intervals closest to their nominal coverage. The factor needed
changes with the SED's S/N (for [M/H] from 0.9 at S/N 4 to 1.25 at 17 and 0.7 above
500), so the same factor is also fitted in S/N windows a factor ``--window-ratio`` wide
(windows of fewer than ``--min-window-spaxels`` spaxels join a neighbour) and placed at
each window's median S/N; a spaxel's factor is interpolated between these nodes
linearly in log S/N (``by_snr_scale``). Steps one reporting bin wide gave every spaxel
its bin's mean factor, too large for spaxels crowded at a bin's upper end: those within
2 R_e at S/N 20-40 lie at S/N 30-40 and were covered 79-83% at 1 sigma on one test set.
Spaxels of unknown S/N keep the overall factor. Calibration cubes are whole
galaxies, and a galaxy's spaxels err together, so the factors are only as good as the
number of galaxies: 300 are used for the shipped model. The coverage of the scaled errors is
measured on a third set (``test``), overall and per bin of the SED's S/N. All three use
the spaxels a map shows: a usable SED with S/N >= ``--min-snr`` (the maps' floor).

Out of distribution: S/N below the 0.5th percentile of the spaxels within 2 R_e (those
the networks were trained on), and SED shapes whose Mahalanobis distance from the head
set's normalised SEDs is above the 99.5th percentile of the calibration spaxels within
2 R_e.

With ``--ship`` the model (outputs: log age, [M/H], their raw errors) replaces
``sed-cnn.keras``; its card keeps everything it had and gains
``calibration.uncertainty`` and ``calibration.ood``. Rerun
``scripts/calibrate_gradient_errors.py`` afterwards (the gradient bootstrap now draws
each spaxel's error).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

QUANTITIES = ("log_age", "mh")


def read_spaxels(path: Path, *, min_snr: float) -> dict:
    """The shown spaxels of a simulated cube dataset: SEDs, labels, S/N, radius, galaxy."""
    import h5py

    from napari_galam.core.preprocess import normalise_seds

    with h5py.File(path, "r") as handle:
        if "seds/snr" not in handle:
            raise SystemExit(f"{path}: no seds/snr; simulate it again with this version")
        flux = handle["seds/flux"][()]
        snr = handle["seds/snr"][()]
        labels = np.stack([handle["maps/log_age"][()], handle["maps/mh"][()]], axis=-1)
        radius = handle["maps/r_over_re"][()]
    normalised, valid = normalise_seds(flux)
    with np.errstate(invalid="ignore"):
        use = valid & (snr >= min_snr) & np.all(np.isfinite(labels), axis=-1)
    galaxy = np.broadcast_to(np.arange(flux.shape[0])[:, None, None], use.shape)
    return {
        "flux": flux[use],
        "seds": normalised[use],
        "labels": labels[use].astype(np.float32),
        "snr": snr[use],
        "radius": radius[use],
        "galaxy": galaxy[use],
        "cubes": int(flux.shape[0]),
    }


def _join(parts: list[dict]) -> dict:
    """Spaxels of several files as one set (galaxy ids kept apart)."""
    if len(parts) == 1:
        return parts[0]
    offset = np.cumsum([0] + [p["cubes"] for p in parts[:-1]])
    joined = {
        key: np.concatenate([p[key] for p in parts]) for key in parts[0] if key not in ("cubes", "galaxy")
    }  # fmt: skip
    joined["galaxy"] = np.concatenate([p["galaxy"] + o for p, o in zip(parts, offset, strict=True)])
    joined["cubes"] = int(sum(p["cubes"] for p in parts))
    return joined


def _mean_model():
    """The shipped SED CNN straight from its file (whatever its card says so far)."""
    import keras

    from napari_galam.models.architectures import custom_objects
    from napari_galam.models.registry import read_model_card, weights_dir

    card = read_model_card("sed-cnn")
    path = weights_dir() / card["file"]
    return keras.saving.load_model(path, custom_objects=custom_objects(), compile=False)


def _raw(model, seds: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(seds, batch_size=8192, verbose=0), dtype=np.float64)


def _factors(snr: np.ndarray, scale: dict, by_snr: dict) -> np.ndarray:
    """``(n, 2)`` error factors of spaxels of S/N ``snr`` (the S/N curve, else overall)."""
    from napari_galam.models.sed_uncertainty import SedCalibration

    calibration = SedCalibration(
        scale=scale, min_snr=0.0, mean=np.zeros(1), precision=np.eye(1), max_distance2=1.0,
        snr_nodes=tuple(by_snr["snr"]),
        snr_scale=np.column_stack([by_snr[key] for key in QUANTITIES]),
    )  # fmt: skip
    return calibration.scales(snr)


def _coverage_table(data: dict, out: np.ndarray, factors: np.ndarray, ood: np.ndarray) -> dict:
    from napari_galam.models.sed_uncertainty import coverage_by_snr

    within = data["radius"] <= 2.0
    table = {}
    for k, key in enumerate(QUANTITIES):
        residual = out[:, k] - data["labels"][:, k]
        sigma = out[:, 2 + k] * factors[:, k]
        table[key] = {
            **coverage_by_snr(residual, sigma, data["snr"]),
            "within_2re": coverage_by_snr(residual[within], sigma[within], data["snr"][within]),
            "in_distribution": coverage_by_snr(residual[~ood], sigma[~ood], data["snr"][~ood]),
        }
    return table


def _print_table(table: dict, part: str | None = None) -> None:
    """Markdown coverage table of every spaxel, or of ``table[key][part]`` (e.g. within 2 R_e)."""
    print("| quantity | S/N bin | n | within 1 sigma | within 1.96 sigma | median sigma |")
    print("|---|---|---|---|---|---|")
    for key, whole in table.items():
        cover = whole if part is None else whole[part]
        rows = [("all", cover), *cover["by_snr"].items()]
        for label, c in rows:
            print(
                f"| {key} | {label} | {c['n']} | {c['within_68']:.1%} | {c['within_95']:.1%} "
                f"| {c['median_sigma']:.3f} |"
            )


def _ood_codes(data: dict, min_snr_train: float, mean, precision, cut: float) -> np.ndarray:
    from napari_galam.models.sed_uncertainty import (
        OOD_SHAPE,
        bad_flux_codes,
        low_snr_codes,
        mahalanobis_squared,
    )

    codes = bad_flux_codes(data["flux"]) | low_snr_codes(data["snr"], min_snr_train)
    distance = mahalanobis_squared(data["seds"], mean, precision)
    return codes | np.where(distance > cut, OOD_SHAPE, 0).astype(np.uint8)


def _fit_head(args: argparse.Namespace, head: dict):
    """The model with a variance head fitted on the head cubes (or the shipped one kept)."""
    from napari_galam.models.train_sed_cnn import iter_train_sed_uncertainty

    start = time.perf_counter()
    mean_model = _mean_model()
    if args.keep_head:
        if mean_model.output_shape[-1] != 4:
            raise SystemExit("--keep-head: the shipped sed-cnn has no variance head to keep")
        return mean_model, None
    rng = np.random.default_rng(0)
    galaxies = np.unique(head["galaxy"])
    val_galaxies = rng.choice(galaxies, max(1, galaxies.size // 8), replace=False)
    is_val = np.isin(head["galaxy"], val_galaxies)
    training = iter_train_sed_uncertainty(
        mean_model, head["seds"], head["labels"], np.flatnonzero(~is_val),
        np.flatnonzero(is_val), epochs=args.epochs,
    )  # fmt: skip
    while True:
        try:
            step = next(training)
        except StopIteration as stop:
            return stop.value, time.perf_counter() - start
        print(f"epoch {step.done}: NLL {step.loss:.4f}, validation {step.val_loss:.4f}")


def _snr_curve(cal: dict, out_cal: np.ndarray, args: argparse.Namespace) -> dict:
    """``by_snr_scale``: the scales at S/N nodes (:func:`fit_snr_curve`) and how they were cut."""
    from napari_galam.models.sed_uncertainty import fit_snr_curve

    nodes, scales = fit_snr_curve(
        out_cal[:, :2] - cal["labels"], out_cal[:, 2:], cal["snr"], lo=args.min_snr,
        ratio=args.window_ratio, min_spaxels=args.min_window_spaxels,
    )  # fmt: skip
    return {
        "snr": nodes,
        **{key: scales[:, k].tolist() for k, key in enumerate(QUANTITIES)},
        "interpolation": "linear in log S/N between the nodes, the end nodes' scales beyond",
        "windows": {"from": args.min_snr, "ratio": args.window_ratio,
                    "min_spaxels": args.min_window_spaxels},
    }  # fmt: skip


def _ship(model, head_path: Path, calibration: dict, head: dict) -> Path:
    from napari_galam.models.registry import (
        read_model_card,
        save_model_with_card,
        write_card_section,
    )

    card = read_model_card("sed-cnn")
    training = dict(card.get("training_data", {}))
    training["uncertainty_head"] = head
    save_model_with_card(
        model,
        "sed-cnn",
        architecture=card["architecture"],
        configuration=card["configuration"],
        input_spec=card["input"],
        training_data=training,
        metrics=card.get("metrics"),
        outputs=["log_age", "mh", "log_age_raw_sd", "mh_raw_sd"],
        notes=card.get("notes", "")
        + "; variance head (Gaussian NLL on frozen features) fitted on "
        + head_path.name,
    )
    section = {**card.get("calibration", {}), **calibration}
    return write_card_section("sed-cnn", "calibration", section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("head", type=Path, help="cubes (HDF5) that fit the variance head")
    parser.add_argument(
        "calibration",
        type=Path,
        nargs="+",
        help="other cubes that fit the scales (one or more files)",
    )
    parser.add_argument("test", type=Path, help="other cubes that measure the coverage")
    parser.add_argument("--min-snr", type=float, default=3.0, help="the maps' S/N floor")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--window-ratio",
        type=float,
        default=2.0,
        help="width of the S/N windows the scale curve is fitted in (upper/lower S/N)",
    )
    parser.add_argument(
        "--min-window-spaxels",
        type=int,
        default=20000,
        help="an S/N window with fewer calibration spaxels joins its neighbour",
    )
    parser.add_argument(
        "--keep-head",
        action="store_true",
        help="keep the shipped variance head; fit only the scales (and the OOD reference)",
    )
    parser.add_argument("--ship", action="store_true", help="write the model and its card")
    args = parser.parse_args(argv)

    from napari_galam.models.registry import read_model_card, write_card_section
    from napari_galam.models.sed_uncertainty import fit_variance_scale, shape_reference

    start = time.perf_counter()
    head, test = (read_spaxels(p, min_snr=args.min_snr) for p in (args.head, args.test))
    cal = _join([read_spaxels(p, min_snr=args.min_snr) for p in args.calibration])
    model, fit_seconds = _fit_head(args, head)
    if fit_seconds is None:  # the head kept: its fitting time stays what the card says
        card = read_model_card("sed-cnn")
        fit_seconds = float(card["calibration"]["uncertainty"].get("head_fit_seconds", np.nan))
        fitted_on = card.get("training_data", {}).get("uncertainty_head", {}).get("dataset")
        if fitted_on != args.head.name:
            print(f"warning: the kept head was fitted on {fitted_on}, not on {args.head.name}")

    out_cal = _raw(model, cal["seds"])
    scale = {
        key: fit_variance_scale(out_cal[:, k] - cal["labels"][:, k], out_cal[:, 2 + k])
        for k, key in enumerate(QUANTITIES)
    }
    # the head's raw errors track noise imperfectly: a factor that follows the SED's S/N
    by_snr = _snr_curve(cal, out_cal, args)
    within = head["radius"] <= 2.0
    min_snr_train = float(np.percentile(head["snr"][within], 0.5))
    mean, precision = shape_reference(head["seds"][within])
    from napari_galam.models.sed_uncertainty import mahalanobis_squared

    cal_within = cal["radius"] <= 2.0
    distance = mahalanobis_squared(cal["seds"][cal_within], mean, precision)
    cut = float(np.percentile(distance, 99.5))
    ood_cal = _ood_codes(cal, min_snr_train, mean, precision, cut) > 0
    out_test = _raw(model, test["seds"])
    ood_test = _ood_codes(test, min_snr_train, mean, precision, cut) > 0
    cal_table = _coverage_table(cal, out_cal, _factors(cal["snr"], scale, by_snr), ood_cal)
    test_table = _coverage_table(test, out_test, _factors(test["snr"], scale, by_snr), ood_test)
    seconds = time.perf_counter() - start
    print(f"scales at S/N {np.round(by_snr['snr'], 1).tolist()}: " + "; ".join(
        f"{key} {np.round(by_snr[key], 3).tolist()}" for key in QUANTITIES))  # fmt: skip
    print(
        f"variance scales {scale}; training S/N floor {min_snr_train:.1f}; shape cut d2 {cut:.1f}"
    )
    print(f"flagged: calibration {ood_cal.mean():.1%}, test {ood_test.mean():.1%}")
    print(f"test cubes {args.test.name}: coverage of the scaled errors")
    _print_table(test_table)
    print(f"test cubes {args.test.name}, spaxels within 2 R_e: coverage of the scaled errors")
    _print_table(test_table, "within_2re")
    head_note = "kept" if args.keep_head else f"fitted in {fit_seconds:.0f} s"
    print(f"head {head_note}, {seconds:.0f} s in all")

    def _seed(path: Path):
        try:
            return int(json.loads(path.with_suffix(".json").read_text())["seed"])
        except (OSError, KeyError, TypeError, ValueError):
            return None

    def _split(paths: list[Path], data: dict) -> dict:
        seeds = [_seed(p) for p in paths]
        return {"dataset": ", ".join(p.name for p in paths), "seed": seeds[0] if len(seeds) == 1 else seeds,
                "cubes": data["cubes"], "spaxels": int(data["seeds_spaxels"])}  # fmt: skip

    splits = {
        name: _split(paths, {**d, "seeds_spaxels": d["seds"].shape[0]})
        for name, paths, d in (("head", [args.head], head), ("calibration", args.calibration, cal),
                               ("test", [args.test], test))
    }  # fmt: skip
    calibration = {
        "uncertainty": {
            "method": (
                "variance head on the frozen MSE networks' last hidden features and a "
                "learned SED roughness, fitted with the Gaussian NLL on the head cubes; one "
                "variance scale per quantity on the calibration cubes (the factor that "
                "brings 68% and 95% coverage closest to nominal), and the same factor in "
                f"S/N windows (a factor {args.window_ratio:.3g} wide, at least "
                f"{args.min_window_spaxels} spaxels) at each window's median S/N, "
                "interpolated linearly in log S/N (by_snr_scale; the overall one where the "
                "S/N is unknown); coverage on the test cubes; spaxels with a usable SED and "
                f"S/N >= {args.min_snr:g}"
            ),
            **{key: {"scale": scale[key]} for key in QUANTITIES},
            "by_snr_scale": by_snr,
            "splits": splits,
            "coverage": {
                key: {
                    "within_68": test_table[key]["within_68"],
                    "within_95": test_table[key]["within_95"],
                    "n": test_table[key]["n"],
                    "by_snr": test_table[key]["by_snr"],
                    "within_2re": test_table[key]["within_2re"],
                    "in_distribution": test_table[key]["in_distribution"],
                }
                for key in QUANTITIES
            },
            "calibration_coverage": {
                key: {k: cal_table[key][k] for k in ("n", "within_68", "within_95")}
                for key in QUANTITIES
            },
            "head_fit_seconds": round(fit_seconds, 1),
        },
        "ood": {
            "method": (
                "bits: 1 = SED S/N below min_snr (0.5th percentile of the head cubes' spaxels "
                "within 2 R_e, the networks' training selection); 2 = squared Mahalanobis "
                "distance of the normalised SED from the head cubes' spaxels within 2 R_e "
                "above max_distance2 (99.5th percentile of the calibration spaxels within 2 R_e); 4 = "
                "negative or mostly non-finite flux"
            ),
            "min_snr": min_snr_train,
            "shape": {
                "mean": mean.tolist(),
                "precision": precision.tolist(),
                "max_distance2": cut,
                "percentile": 99.5,
            },
            "flagged_share": {"calibration": float(ood_cal.mean()), "test": float(ood_test.mean())},
        },
    }
    if args.ship and args.keep_head:
        section = {**read_model_card("sed-cnn").get("calibration", {}), **calibration}
        print(f"wrote {write_card_section('sed-cnn', 'calibration', section)}")
    elif args.ship:
        head_card = {
            "dataset": args.head.name,
            "seed": _seed(args.head),
            "spaxels": int(head["seds"].shape[0]),
        }
        print(f"wrote {_ship(model, args.head, calibration, head_card)}")
    else:
        print(json.dumps(calibration["uncertainty"]["coverage"], indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
