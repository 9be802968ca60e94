"""Train, calibrate, evaluate and ship the per-spaxel spectral model ``spaxel-spectra``.

Usage (about 13 minutes on a 2-core CPU: 2.5 simulating, 10 training)::

    python scripts/train_spaxel_spectra.py --compare-sed-cnn   # the shipped model

Data (:mod:`napari_galam.simulate.spaxel_spectra`): SSP mixtures observed through the
CALIFA V500, MaNGA, MUSE and SDSS layouts (their real wavelength grids, media and
line-spread functions), z 0-0.2, stellar dispersion 0-350 km/s, S/N 3-100 per pixel,
masked pixels, sky-line residuals and trimmed ranges; then
:mod:`napari_galam.core.spectral_input` (the model's input, the same code the maps use).

``--history-fraction`` and ``--emission-fraction`` (0.5 each by default) give that share of every set's spectra the star-formation histories of
the families (:mod:`napari_galam.simulate.families`) instead of SSP mixtures, and
nebular emission lines as in the IFU cubes; the card's ``training_data`` records both,
and the table is also split by family and by lines (``by_kind``).

Every layout is drawn at z = 0-0.2 (:data:`MAX_TRAINING_REDSHIFT`; the card records it,
so that maps beyond it are flagged). The test spectra (another seed) are each layout at
z = 0.03, 0.1 and 0.2; the table gives the robust SD (1.4826 MAD) and the
median bias per layout and redshift at S/N >= 10, and the same for the SED CNN on the
same spectra where its filters are covered (``--compare-sed-cnn``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from napari_galam.core.spectral_input import spectral_input_plan, spectral_inputs
from napari_galam.progress import run_to_end
from napari_galam.simulate.families import HISTORY_FAMILIES
from napari_galam.simulate.spaxel_spectra import spectrum_groups

LAYOUTS = ("CALIFA", "MaNGA", "MUSE", "SDSS")
TEST_REDSHIFTS = (0.03, 0.1, 0.2)
#: The largest redshift each layout's training spectra are drawn at (from 0); the card
#: records it so that maps at other redshifts are flagged (``OOD_REDSHIFT``).
MAX_TRAINING_REDSHIFT = {"CALIFA": 0.2, "MaNGA": 0.2, "MUSE": 0.2, "SDSS": 0.2}


def make_set(layout: str, n: int, seed: int, **options: Any) -> dict[str, np.ndarray]:
    """Simulated spectra of one layout as model inputs with labels and conditions."""
    keys = ("x", "y", "snr", "z", "sigma", "usable", "family", "lines")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    raw: list[Any] = []
    keep_raw = options.pop("keep_raw", False)
    for group in spectrum_groups(layout, n, seed=seed, **options):
        plan = spectral_input_plan(
            group.wave, redshift=group.redshift, layout=layout, medium=group.medium
        )
        inputs = spectral_inputs(plan, group.flux, group.variance, group.mask)
        parts["x"].append(inputs.x.astype(np.float16))
        parts["y"].append(np.stack([group.log_age, group.mh], axis=1))
        parts["snr"].append(inputs.snr)
        parts["z"].append(np.full(len(group.flux), group.redshift, np.float32))
        parts["sigma"].append(np.full(len(group.flux), group.sigma_kms, np.float32))
        parts["usable"].append(inputs.usable)
        parts["family"].append(group.family)
        parts["lines"].append(group.ew_halpha > 0)
        if keep_raw:
            raw.append(group)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["layout"] = np.array([layout] * len(out["y"]))
    if raw:
        out["raw"] = raw  # type: ignore[assignment]
    return out


def merge(sets: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = [k for k in sets[0] if k != "raw"]
    return {k: np.concatenate([s[k] for s in sets]) for k in keys}


def predict(model: Any, x: np.ndarray, label_mean: np.ndarray, label_sd: np.ndarray):
    raw = model.predict(x.astype(np.float32), batch_size=1024, verbose=0)
    mean = raw[:, :2] * label_sd + label_mean
    sigma = np.exp(0.5 * np.clip(raw[:, 2:], -12, 6)) * label_sd
    return mean, sigma


def sed_cnn_on(group_sets: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The SED CNN's predictions of the raw test spectra (None when not covered)."""
    from napari_galam.core.spaxels import cube_to_seds
    from napari_galam.errors import GalamError
    from napari_galam.models.inference import predict_seds
    from napari_galam.pipeline.maps import sed_model_filters
    from napari_galam.sps.filters import load_filters

    filters = load_filters(sed_model_filters("sed-cnn"))
    out = []
    for group in group_sets:
        flux = np.where(group.mask, np.nan, group.flux).T[:, :, None]
        try:
            seds = cube_to_seds(group.wave, flux, filters, variance=group.variance.T[:, :, None])
        except GalamError:
            return None
        prediction = predict_seds(seds.flux[:, :, 0].T)
        out.append(np.stack([prediction.log_age, prediction.mh], axis=1))
    pred = np.concatenate(out)
    return pred, np.zeros_like(pred)


def evaluate_table(model: Any, tests: dict[tuple[str, float], dict], label: tuple, compare: bool):
    from napari_galam.models.train_spaxel_spectra import robust_metrics

    rows = []
    for (layout, z), data in tests.items():
        good = data["usable"] & (data["snr"] >= 10)
        mean, _ = predict(model, data["x"][good], *label)
        row = {"layout": layout, "z": z, "n": int(good.sum())}
        for q, key in enumerate(("log_age", "mh")):
            m = robust_metrics(data["y"][good, q], mean[:, q])
            row[f"{key}_sd"], row[f"{key}_bias"] = m["robust_sd"], m["bias"]
        if compare:
            sed = sed_cnn_on(data["raw"])
            if sed is not None:
                good_all = data["snr"] >= 10
                for q, key in enumerate(("log_age", "mh")):
                    m = robust_metrics(data["y"][good_all, q], sed[0][good_all, q])
                    row[f"sedcnn_{key}_sd"], row[f"sedcnn_{key}_bias"] = m["robust_sd"], m["bias"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def kind_table(data: dict[str, np.ndarray], mean: np.ndarray) -> dict[str, dict]:
    """Robust SD and bias of usable spectra at S/N >= 10 by family and with/without lines.

    ``mean`` holds the predictions of ``data``'s usable spectra."""
    from napari_galam.models.train_spaxel_spectra import robust_metrics

    usable = data["usable"]
    bright = data["snr"][usable] >= 10
    y, family, lines = data["y"][usable], data["family"][usable], data["lines"][usable]
    kinds = {str(name): family == name for name in np.unique(family)}
    kinds |= {"emission lines": lines, "no emission lines": ~lines}
    table = {}
    for name, chosen in kinds.items():
        sel = chosen & bright
        if sel.any():
            table[name] = {
                key: robust_metrics(y[sel, q], mean[sel, q])
                for q, key in enumerate(("log_age", "mh"))
            }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-layout", type=int, default=20000)
    parser.add_argument("--test-per-cell", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=32)
    parser.add_argument("--max-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--compare-sed-cnn", action="store_true")
    parser.add_argument(
        "--history-fraction",
        type=float,
        default=0.5,
        help="share of spectra from the families' star-formation histories",
    )
    parser.add_argument("--emission-fraction", type=float, default=0.5,
                        help="share of spectra with nebular emission lines")  # fmt: skip
    parser.add_argument(
        "--hold-out-family",
        choices=HISTORY_FAMILIES,
        help="draw no training or calibration history of this family (the test sets still "
        "do: its row of the by-kind table is a family never seen); use with --out",
    )
    parser.add_argument("--out", default=None, help="weights folder (default: the package's)")
    args = parser.parse_args()

    from napari_galam.models.registry import save_model_with_card, write_card_section
    from napari_galam.models.train_spaxel_spectra import (
        SPAXEL_SPECTRA_MODEL,
        calibration_sections,
        fit_feature_reference,
        iter_train_spaxel_spectra,
        robust_metrics,
        spaxel_spectra_input_spec,
    )

    started = time.time()
    shares = {
        "history_fraction": args.history_fraction,
        "emission_fraction": args.emission_fraction,
    }
    seen = {
        **shares,
        "history_families": tuple(f for f in HISTORY_FAMILIES if f != args.hold_out_family),
    }
    sets, calib_sets = [], []
    for i, layout in enumerate(LAYOUTS):
        zmax = MAX_TRAINING_REDSHIFT[layout]
        sets.append(make_set(layout, args.per_layout, args.seed * 100 + i, redshift_range=(0, zmax),
                             **seen))  # fmt: skip
        calib_sets.append(make_set(layout, args.per_layout // 6, args.seed * 100 + 50 + i,
                                   redshift_range=(0, zmax), **seen))  # fmt: skip
    train, calib = merge(sets), merge(calib_sets)
    tests = {
        (layout, z): make_set(layout, args.test_per_cell, 9000 + 10 * i + j, fixed_redshift=z,
                              keep_raw=args.compare_sed_cnn, **shares)
        for i, layout in enumerate(LAYOUTS) for j, z in enumerate(TEST_REDSHIFTS)
    }  # fmt: skip
    simulated = time.time() - started
    print(f"simulated {len(train['y'])} train, {len(calib['y'])} calibration spectra in {simulated:.0f} s "
          f"(history fraction {args.history_fraction:g}: {np.mean(train['family'] != 'mixture'):.3f} "
          f"drawn; emission fraction {args.emission_fraction:g}: {np.mean(train['lines']):.3f} drawn)")  # fmt: skip

    keep = train["usable"]
    x, y = train["x"][keep], train["y"][keep]
    label_mean, label_sd = y.mean(axis=0), y.std(axis=0)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    n_val = len(y) // 10
    val, fit = order[:n_val], order[n_val:]
    ys = (y - label_mean) / label_sd
    trainer = iter_train_spaxel_spectra(
        x[fit], ys[fit], x[val], ys[val], epochs=args.epochs, max_seconds=args.max_minutes * 60
    )
    t0 = time.time()

    def report(step: Any) -> None:
        print(f"epoch {step.epoch}: loss {step.loss:.4f} val {step.val_loss:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)  # fmt: skip

    model = run_to_end(trainer, on_progress=report)
    train_minutes = (time.time() - t0) / 60
    label = (label_mean, label_sd)

    import keras

    features = keras.Model(model.inputs, model.get_layer("features").output)
    reference = fit_feature_reference(
        features.predict(x[fit[:20000]].astype(np.float32), verbose=0)
    )
    cal = calib["usable"]
    mean_c, sigma_c = predict(model, calib["x"][cal], *label)
    f_cal = features.predict(calib["x"][cal].astype(np.float32), verbose=0) - reference[0]
    max_d2 = float(np.percentile(np.einsum("ij,jk,ik->i", f_cal, reference[1], f_cal), 99.5))
    test_all = merge(list(tests.values()))
    tu = test_all["usable"]
    mean_t, sigma_t = predict(model, test_all["x"][tu], *label)
    uncertainty, ood = calibration_sections(
        {"error": calib["y"][cal] - mean_c, "sigma": sigma_c},
        {"error": test_all["y"][tu] - mean_t, "sigma": sigma_t},
        (reference[0], reference[1], max_d2),
        min_snr=3.0,
        splits={"calibration": int(cal.sum()), "test": int(tu.sum()), "train": int(len(fit)),
                "validation": int(len(val))},
    )  # fmt: skip
    print("calibration", json.dumps({k: uncertainty[k] for k in ("log_age", "mh", "coverage")}))
    table = evaluate_table(model, tests, label, args.compare_sed_cnn)
    by_sigma = {}
    for lo, hi in ((0, 100), (100, 200), (200, 350)):
        sel = (
            (test_all["sigma"][tu] >= lo)
            & (test_all["sigma"][tu] < hi)
            & (test_all["snr"][tu] >= 10)
        )
        by_sigma[f"[{lo},{hi})"] = {
            key: robust_metrics(test_all["y"][tu][sel, q], mean_t[sel, q]) for q, key in enumerate(("log_age", "mh"))
        }  # fmt: skip
    print("by dispersion", json.dumps(by_sigma))
    by_kind = kind_table(test_all, mean_t)
    print("by kind", json.dumps(by_kind))
    configuration = {
        "label_mean": [float(v) for v in label_mean],
        "label_sd": [float(v) for v in label_sd],
        "outputs_raw": ["log_age_std", "mh_std", "log_age_log_var_std", "mh_log_var_std"],
    }
    metrics = {"held_out": table, "by_dispersion": by_sigma, "by_kind": by_kind,
               "training_minutes_cpu": round(train_minutes, 2),
               "simulation_seconds": round(simulated, 1)}  # fmt: skip
    save_model_with_card(
        model, SPAXEL_SPECTRA_MODEL, architecture="spaxel-spectra-cnn1d",
        configuration=configuration, input_spec=spaxel_spectra_input_spec(),
        training_data={"simulator": "napari_galam.simulate.spaxel_spectra", "layouts": list(LAYOUTS),
                       "train": int(len(fit)), "validation": int(len(val)),
                       "held_out": args.hold_out_family or "none", "seed": args.seed, **shares,
                       "redshift_range": {k: [0.0, v] for k, v in MAX_TRAINING_REDSHIFT.items()},
                       "history_families": list(seen["history_families"])},
        metrics=metrics, outputs=["log_age", "mh", "log_age_err", "mh_err"],
        notes="Per-spaxel log age and [M/H] from IFU/fibre spectra at any coverage; see "
        "napari_galam.core.spectral_input for the input.", directory=args.out,
    )  # fmt: skip
    write_card_section(SPAXEL_SPECTRA_MODEL, "calibration", {"uncertainty": uncertainty, "ood": ood},
                       directory=args.out)  # fmt: skip
    print(f"done in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
