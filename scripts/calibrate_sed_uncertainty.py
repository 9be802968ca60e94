"""Give the SED CNN per-spaxel errors and an out-of-distribution flag, calibrated on unseen cubes.

Usage (a few minutes on a 2-core CPU)::

    galam simulate --kind cubes -n 200 --seed 1513 --no-cubes -o head.h5   # fits the head
    galam simulate --kind cubes -n 100 --seed 1511 --no-cubes -o cal.h5    # calibrates
    galam simulate --kind cubes -n 200 --seed 1514 --no-cubes -o cal2.h5   # (more of it)
    galam simulate --kind cubes -n 100 --seed 1512 --no-cubes -o test.h5   # checks coverage
    python scripts/calibrate_sed_uncertainty.py head.h5 cal.h5 cal2.h5 test.h5 --ship

With ``--keep-head`` the shipped variance head stays (its ``.keras`` is not rewritten) and
only the scales, the out-of-distribution reference, ``z95`` and the coverage are fitted
again. With ``--keep-scales`` (implies ``--keep-head``; the head file is not read) the
card's scales, S/N curve and out-of-distribution reference stay too, so the quoted errors
do not change: only ``z95`` and the coverage are measured again (80 s on 2 shared
cores for 900 calibration cubes and 100 test cubes, most of it reading and predicting
their 3 million spaxels)::

    python scripts/calibrate_sed_uncertainty.py head.h5 cal.h5 cal2.h5 test.h5 --keep-scales --ship

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
Spaxels of unknown S/N keep the overall factor. The 95% interval is ``z95`` of these
errors, not 1.96: the 95% quantile of |error| / sigma of the same calibration spaxels
with the final errors (scales and S/N curve applied), per quantity (``<quantity>.z95``,
split conformal at that level). So the scales and S/N factors aim at 68% alone
(``--scale-levels 68``, the default); aiming them at both levels at 1.96 sigma
(``--scale-levels 68+95``, how they were fitted while the 95% interval was 1.96 sigma)
left the 1-sigma errors about 2 points too wide (70.0% / 69.8% on the calibration
spaxels) to make up for the tails.
``z95`` is fitted over every shown calibration spaxel, the spaxels the scales are fitted
on. Calibration cubes are whole
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
``calibration.uncertainty`` and ``calibration.ood``. The gradient calibration
(``scripts/calibrate_gradient_errors.py``) does not depend on these errors: its bootstrap
over resolution elements does not draw the spaxels' own errors.
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
        family = _family_codes(handle)
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
        "family": np.broadcast_to(family[:, None, None], use.shape)[use],
        "cubes": int(flux.shape[0]),
    }


def _family_codes(handle) -> np.ndarray:
    """Each galaxy's history family as its index in ``SFH_FAMILIES`` (-1: not recorded)."""
    from napari_galam.simulate.families import SFH_FAMILIES

    n = handle["maps/log_age"].shape[0]
    if "truth/family" not in handle or "family_names" not in handle.attrs:
        return np.full(n, -1, np.int8)
    names = json.loads(handle.attrs["family_names"])
    index = handle["truth/family"][()].astype(np.int64)
    return np.asarray([SFH_FAMILIES.index(names[i]) for i in index], np.int8)


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


def _coverage_table(
    data: dict, out: np.ndarray, factors: np.ndarray, ood: np.ndarray, z95: dict
) -> dict:
    """Coverage of the final errors: 1 sigma and the 95% interval (``z95[key]`` sigma)."""
    from napari_galam.models.sed_uncertainty import coverage_by_snr

    within = data["radius"] <= 2.0
    snr = data["snr"]
    table = {}
    for k, key in enumerate(QUANTITIES):
        residual = out[:, k] - data["labels"][:, k]
        sigma = out[:, 2 + k] * factors[:, k]
        z = z95[key]
        table[key] = {
            **coverage_by_snr(residual, sigma, snr, z95=z),
            "within_2re": coverage_by_snr(residual[within], sigma[within], snr[within], z95=z),
            "in_distribution": coverage_by_snr(residual[~ood], sigma[~ood], snr[~ood], z95=z),
        }
    return table


def _final_errors(data: dict, out: np.ndarray, factors: np.ndarray) -> tuple:
    """``(n, 2)`` residuals and final (scaled) 1-sigma errors of log age and [M/H]."""
    return out[:, :2] - data["labels"], out[:, 2:] * factors


def _shipped_scales() -> tuple[dict, dict, tuple]:
    """The card's scales, S/N curve and OOD reference (``--keep-scales``), unchanged."""
    from napari_galam.models.registry import read_model_card
    from napari_galam.models.sed_uncertainty import sed_calibration

    card = read_model_card("sed-cnn")
    shipped = sed_calibration(card)
    by_snr = card["calibration"]["uncertainty"].get("by_snr_scale")
    if by_snr is None:
        raise SystemExit("--keep-scales: the card has no by_snr_scale; fit the scales again")
    ood = (shipped.min_snr, shipped.mean, shipped.precision, shipped.max_distance2)
    return dict(shipped.scale), by_snr, ood


def _check_kept(cal: dict, out_cal: np.ndarray, factors: np.ndarray) -> None:
    """Warn when the card's scales meet other calibration spaxels than they were fitted on."""
    from napari_galam.models.registry import read_model_card
    from napari_galam.models.sed_uncertainty import coverage

    recorded = read_model_card("sed-cnn")["calibration"]["uncertainty"].get(
        "calibration_coverage", {}
    )
    residual, sigma = _final_errors(cal, out_cal, factors)
    for k, key in enumerate(QUANTITIES):
        now = coverage(residual[:, k], sigma[:, k])
        was = recorded.get(key, {})
        if was.get("n") != now["n"] or abs(was.get("within_68", -1) - now["within_68"]) > 1e-4:
            print(
                f"warning: {key}: the kept scales give n {now['n']}, 1 sigma "
                f"{now['within_68']:.4f} on these calibration cubes; the card recorded "
                f"n {was.get('n')}, {was.get('within_68')}"
            )


def _print_table(table: dict, part: str | None = None) -> None:
    """Markdown coverage table of every spaxel, or of ``table[key][part]`` (e.g. within 2 R_e)."""
    print("| quantity | S/N bin | n | within 1 sigma | within z95 sigma | median sigma |")
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


def _fit_head(args: argparse.Namespace, head: dict, mean_model=None):
    """The model with a variance head fitted on the head cubes (or the shipped one kept).

    ``mean_model``: the SED CNN to give a head (default the shipped one).
    """
    from napari_galam.models.train_sed_cnn import iter_train_sed_uncertainty

    start = time.perf_counter()
    mean_model = _mean_model() if mean_model is None else mean_model
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
        ratio=args.window_ratio, min_spaxels=args.min_window_spaxels, levels=args.scale_levels,
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
    parser.add_argument(
        "--keep-scales",
        action="store_true",
        help="keep the shipped head, scales, S/N curve and OOD reference; fit only z95 "
        "(the 95%% interval's half-width) and measure the coverage (the head file is not read)",
    )
    parser.add_argument(
        "--scale-levels",
        choices=("68", "68+95"),
        default="68",
        help="what the scales and S/N factors are fitted to hold: 68%% alone (the 95%% "
        "interval gets its own z95), or both 68%% and 95%% at 1.96 sigma (the earlier method)",
    )
    parser.add_argument("--ship", action="store_true", help="write the model and its card")
    args = parser.parse_args(argv)
    args.keep_head = args.keep_head or args.keep_scales

    from napari_galam.models.registry import read_model_card, write_card_section
    from napari_galam.models.sed_uncertainty import (
        coverage,
        fit_interval_95,
        fit_variance_scale,
        mahalanobis_squared,
        shape_reference,
    )

    start = time.perf_counter()
    head = None if args.keep_scales else read_spaxels(args.head, min_snr=args.min_snr)
    test = read_spaxels(args.test, min_snr=args.min_snr)
    cal = _join([read_spaxels(p, min_snr=args.min_snr) for p in args.calibration])
    model, fit_seconds = _fit_head(args, head)
    if fit_seconds is None:  # the head kept: its fitting time stays what the card says
        card = read_model_card("sed-cnn")
        fit_seconds = float(card["calibration"]["uncertainty"].get("head_fit_seconds", np.nan))
        fitted_on = card.get("training_data", {}).get("uncertainty_head", {}).get("dataset")
        if fitted_on != args.head.name:
            print(f"warning: the kept head was fitted on {fitted_on}, not on {args.head.name}")

    out_cal = _raw(model, cal["seds"])
    cal_within = cal["radius"] <= 2.0
    if args.keep_scales:
        scale, by_snr, (min_snr_train, mean, precision, cut) = _shipped_scales()
    else:
        scale = {
            key: fit_variance_scale(
                out_cal[:, k] - cal["labels"][:, k], out_cal[:, 2 + k], levels=args.scale_levels
            )
            for k, key in enumerate(QUANTITIES)
        }
        # the head's raw errors track noise imperfectly: a factor that follows the SED's S/N
        by_snr = _snr_curve(cal, out_cal, args)
        within = head["radius"] <= 2.0
        min_snr_train = float(np.percentile(head["snr"][within], 0.5))
        mean, precision = shape_reference(head["seds"][within])
        distance = mahalanobis_squared(cal["seds"][cal_within], mean, precision)
        cut = float(np.percentile(distance, 99.5))
    cal_factors = _factors(cal["snr"], scale, by_snr)
    if args.keep_scales:
        _check_kept(cal, out_cal, cal_factors)
    # the 95% interval: z95 of the final errors on the spaxels the scales were fitted on
    cal_residual, cal_sigma = _final_errors(cal, out_cal, cal_factors)
    z95 = dict(zip(QUANTITIES, fit_interval_95(cal_residual, cal_sigma), strict=True))
    z95_within = fit_interval_95(cal_residual[cal_within], cal_sigma[cal_within])
    ood_cal = _ood_codes(cal, min_snr_train, mean, precision, cut) > 0
    out_test = _raw(model, test["seds"])
    ood_test = _ood_codes(test, min_snr_train, mean, precision, cut) > 0
    test_factors = _factors(test["snr"], scale, by_snr)
    cal_table = _coverage_table(cal, out_cal, cal_factors, ood_cal, z95)
    test_table = _coverage_table(test, out_test, test_factors, ood_test, z95)
    seconds = time.perf_counter() - start
    print(f"scales at S/N {np.round(by_snr['snr'], 1).tolist()}: " + "; ".join(
        f"{key} {np.round(by_snr[key], 3).tolist()}" for key in QUANTITIES))  # fmt: skip
    print(
        f"variance scales {scale}; training S/N floor {min_snr_train:.1f}; shape cut d2 {cut:.1f}"
    )
    print(
        f"z95 (every calibration spaxel) {z95}; fitted within 2 R_e alone it would be "
        f"{dict(zip(QUANTITIES, np.round(z95_within, 3).tolist(), strict=True))}"
    )
    test_residual, test_sigma = _final_errors(test, out_test, test_factors)
    for k, key in enumerate(QUANTITIES):
        gaussian = coverage(test_residual[:, k], test_sigma[:, k])["within_95"]
        print(
            f"{key}: 95% interval on the test cubes {test_table[key]['within_95']:.1%} at "
            f"{z95[key]:.3f} sigma, {gaussian:.1%} at 1.96 sigma"
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
                               ("test", [args.test], test)) if d is not None
    }  # fmt: skip
    if head is None:  # --keep-scales: the head split is the card's
        splits["head"] = read_model_card("sed-cnn")["calibration"]["uncertainty"]["splits"]["head"]
    windows = by_snr["windows"]
    calibration = {
        "uncertainty": {
            "method": (
                "variance head on the frozen MSE networks' last hidden features and a "
                "learned SED roughness, fitted with the Gaussian NLL on the head cubes; one "
                "variance scale per quantity on the calibration cubes ("
                + (
                    "the 68.27% quantile of |error| / sigma"
                    if args.scale_levels == "68"
                    else "the factor that brings 68% and 95% at 1.96 sigma closest to nominal"
                )
                + "), and the same factor in "
                f"S/N windows (a factor {windows['ratio']:.3g} wide, at least "
                f"{windows['min_spaxels']} spaxels) at each window's median S/N, "
                "interpolated linearly in log S/N (by_snr_scale; the overall one where the "
                "S/N is unknown); the 95% interval is z95 sigma, z95 the 95% quantile of "
                "|error| / sigma of the calibration spaxels with these final errors; "
                "coverage (1 sigma and z95 sigma) on the test cubes; spaxels with a usable "
                f"SED and S/N >= {windows['from']:g}"
            ),
            **{key: {"scale": scale[key], "z95": z95[key]} for key in QUANTITIES},
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
                key: {
                    **{k: cal_table[key][k] for k in ("n", "within_68", "within_95")},
                    "within_2re": {
                        k: cal_table[key]["within_2re"][k] for k in ("n", "within_68", "within_95")
                    },
                }
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
