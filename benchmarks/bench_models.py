"""Benchmark: model inference through the worker process, with the compact configuration.

Targets (issue 5, on the 2-core CPU): one galaxy warm <= 100 ms round trip through the
worker; image path (batched) >= 200 galaxies/s; per spaxel >= 20 000 spaxels/s; the
spectra path at least 1000x faster than a pPXF fit of the same spectra (timed side by
side in the same run, on simulated SDSS-like spectra).
Untrained compact weights are used (speed does not depend on the weights). The weights
are written, and the same predictions timed in-process for comparison, by a child
interpreter, so this script's own process never imports TensorFlow, like napari's.
``--training`` also times training steps of the compact M1-M4 and extrapolates an epoch
on 8 000 training galaxies (the 8:1:1 split of 10 000).

Run: python benchmarks/bench_models.py [--training]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).parent))
from _table import median_seconds, print_table  # noqa: E402

N_SED_FILTERS = 54


def calibrate_untrained(name: str, model, config: dict, folder: str) -> None:
    """A variance head on random inputs (speed does not depend on it), so the card loads."""
    from napari_galam.models.galaxy_uncertainty import calibrate_galaxy_model
    from napari_galam.models.registry import install_uncertainty

    rng = np.random.default_rng(3)
    shape = (64, config["n_spectrum_points"]) if name == "spectra-only" else (64, config["image_size"], config["image_size"], 3)
    x = rng.random(shape, dtype=np.float32)
    truth = rng.normal((9.5, -0.5), 0.3, (64, 2))
    head = Path(folder) / f".{name}-head.npz"
    _, section, ood = calibrate_galaxy_model(
        name, model, (x[:32], truth[:32]), (x[32:], truth[32:]), None, snr_edges=(0.0, np.inf),
        splits={}, redshift_range=None, head_path=head, steps=50,
    )  # fmt: skip
    install_uncertainty(name, section, ood, head, directory=folder)


def write_compact_weights(folder: str, with_training: bool) -> dict:
    """Child side: save untrained compact models with cards; time them in-process."""
    import keras

    from napari_galam.core.preprocess import preprocess_images
    from napari_galam.models import architectures as arch
    from napari_galam.models.inference import model_input_spec, predict_batches
    from napari_galam.models.registry import save_model_with_card, write_card_section
    from napari_galam.models.train_sed_cnn import build_sed_uncertainty_model

    cfg = arch.COMPACT
    mean, std = (9.5, -0.5), (0.3, 0.3)
    m2, m3, m4 = (
        arch.build_m2(cfg),
        arch.build_m3(cfg, target_mean=mean, target_std=std),
        arch.build_m4(cfg),
    )
    models = {
        "mmlforgalam": arch.build_mmlforgalam(m2, m3, m4),
        "image-only": m3,
        # The shipped spectra-only model reads rest-frame spectra (3201 points).
        "spectra-only": arch.build_m1(arch.COMPACT_REST, target_mean=mean, target_std=std),
        "sed-cnn": build_sed_uncertainty_model(
            arch.combine_sed_cnns(
                arch.build_sed_cnn(cfg, n_filters=N_SED_FILTERS, name="sed_log_age"),
                arch.build_sed_cnn(cfg, n_filters=N_SED_FILTERS, name="sed_mh"),
            )
        )[1],
    }
    configuration = {**cfg.to_dict(), "sed_n_filters": N_SED_FILTERS}
    for name, model in models.items():
        config = arch.COMPACT_REST.to_dict() if name == "spectra-only" else configuration
        save_model_with_card(
            model,
            name,
            architecture=name,
            configuration=config,
            input_spec=model_input_spec(name, config),
            training_data={"name": "untrained (benchmark)"},
            directory=folder,
        )
        if name != "sed-cnn":
            calibrate_untrained(name, model, config, folder)
    eye = np.eye(N_SED_FILTERS).tolist()  # unit scales and a flat-SED reference, so it loads
    write_card_section("sed-cnn", "calibration", {
        "uncertainty": {"method": "benchmark", "log_age": {"scale": 1.0}, "mh": {"scale": 1.0}},
        "ood": {"min_snr": 5.0, "shape": {"mean": [1.0] * N_SED_FILTERS, "precision": eye,
                                          "max_distance2": 100.0}},
    }, directory=folder)  # fmt: skip
    rng = np.random.default_rng(0)
    one = preprocess_images(
        rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8), size=cfg.image_size
    )
    many = preprocess_images(
        rng.integers(0, 256, (1024, 128, 128, 3), dtype=np.uint8), size=cfg.image_size
    )
    out = {
        "inproc_one_mmlforgalam_s": median_seconds(
            lambda: predict_batches(models["mmlforgalam"], one), repeat=30
        ),
        "inproc_1024_mmlforgalam_s": median_seconds(
            lambda: predict_batches(models["mmlforgalam"], many), repeat=3, warmup=1
        ),
        "params": {name: int(m.count_params()) for name, m in models.items()},
    }
    if with_training:
        out["train_step_s"] = {}
        batch = 32
        labels = rng.normal(size=(batch, 2)).astype(np.float32)
        images = many[:batch]
        spectra = rng.random((batch, cfg.n_spectrum_points), dtype=np.float32)
        feats = rng.random((batch, cfg.feature_size), dtype=np.float32)
        cases = {
            "m1": (arch.build_m1(cfg), spectra, labels),
            "m2": (arch.build_m2(cfg), images, feats),
            "m3": (arch.build_m3(cfg), images, labels),
            "m4": (arch.build_m4(cfg), [feats, feats], labels),
        }
        for name, (model, x, y) in cases.items():
            model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
            out["train_step_s"][name] = median_seconds(
                lambda m=model, x=x, y=y: m.train_on_batch(x, y), repeat=10
            )
    return out


def ppxf_seconds_per_spectrum(n: int = 4) -> tuple[float, NDArray]:
    """Median pPXF fit time on ``n`` simulated SDSS-like spectra; also their rest-frame
    model inputs (1 A, 3800-7000 A)."""
    import h5py

    from napari_galam.core.preprocess import rest_frame_spectra
    from napari_galam.simulate.datasets import simulate_dataset
    from napari_galam.sps.reference_fit import fit_population

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spectra.h5"
        simulate_dataset(path, kind="cutouts", n=n, seed=11)
        with h5py.File(path, "r") as handle:
            wave = 10.0 ** handle["spectra/loglam"][()]
            flux = handle["spectra/loglam_flux"][()]
            ivar = handle["spectra/loglam_ivar"][()]
            redshift = handle["truth/redshift"][()]
    on_grid = rest_frame_spectra(wave, flux, redshift)
    times = []
    for i in range(n):
        noise = np.where(ivar[i] > 0, 1.0 / np.sqrt(np.maximum(ivar[i], 1e-30)), np.inf)
        start = time.perf_counter()
        fit_population(wave, flux[i], noise=noise, redshift=float(redshift[i]), fwhm_gal=None)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), on_grid


def main() -> None:
    with_training = "--training" in sys.argv
    from napari_galam.models.worker import ModelWorker

    with tempfile.TemporaryDirectory() as folder:
        code = (
            f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_models as b; print('RESULT' + json.dumps(b.write_compact_weights({folder!r}, {with_training})))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        child = json.loads(done.stdout.split("RESULT", 1)[1])

        rng = np.random.default_rng(1)
        one_image = rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
        images = rng.integers(0, 256, (1024, 128, 128, 3), dtype=np.uint8)
        ppxf_s, sim_spectra = ppxf_seconds_per_spectrum()
        one_spectrum = rng.random((1, sim_spectra.shape[1]))
        spectra = np.resize(sim_spectra, (1024, sim_spectra.shape[1])).astype(np.float32)
        cube = rng.random((200, 200, N_SED_FILTERS)).astype(np.float32) + 0.1

        start = time.perf_counter()
        with ModelWorker(
            weights_dir=folder, preload=("mmlforgalam", "spectra-only", "sed-cnn")
        ) as worker:
            startup = time.perf_counter() - start
            one_mml = median_seconds(
                lambda: worker.predict_galaxies(one_image), repeat=30, warmup=3
            )
            one_spec = median_seconds(
                lambda: worker.predict_galaxies(None, one_spectrum), repeat=30, warmup=3
            )
            batch_mml = median_seconds(lambda: worker.predict_galaxies(images), repeat=3, warmup=1)
            batch_img = median_seconds(
                lambda: worker.predict_galaxies(images, model="image-only"), repeat=3, warmup=1
            )
            batch_spec = median_seconds(
                lambda: worker.predict_galaxies(None, spectra), repeat=3, warmup=1
            )
            one_real = median_seconds(
                lambda: worker.predict_galaxies(None, spectra[:1]), repeat=30, warmup=3
            )
            seds = median_seconds(lambda: worker.predict_seds(cube), repeat=3, warmup=1)
            assert "tensorflow" not in sys.modules

    n_spaxels = cube.shape[0] * cube.shape[1]
    print_table(
        "Model inference through the worker (compact configuration, untrained weights; medians)",
        ["measurement", "time", "rate", "target"],
        [
            ["worker start + load 3 models", f"{startup:.1f} s", "", ""],
            ["one galaxy, MMLforGalAM (warm)", f"{one_mml * 1e3:.1f} ms", "", "<= 100 ms"],
            ["  same, in-process (no worker)", f"{child['inproc_one_mmlforgalam_s'] * 1e3:.1f} ms",
             f"worker/in-process = {one_mml / child['inproc_one_mmlforgalam_s']:.2f}", ""],
            ["one galaxy, spectra-only (warm)", f"{one_spec * 1e3:.1f} ms", "", "<= 100 ms"],
            ["1024 galaxies, MMLforGalAM", f"{batch_mml:.2f} s", f"{1024 / batch_mml:.0f} galaxies/s", ">= 200/s"],
            ["  same, in-process (no worker)", f"{child['inproc_1024_mmlforgalam_s']:.2f} s",
             f"{1024 / child['inproc_1024_mmlforgalam_s']:.0f} galaxies/s", ""],
            ["1024 galaxies, image-only", f"{batch_img:.2f} s", f"{1024 / batch_img:.0f} galaxies/s", ">= 200/s"],
            ["1024 spectra, spectra-only", f"{batch_spec:.2f} s", f"{1024 / batch_spec:.0f} spectra/s", ""],
            [f"{n_spaxels} spaxels x {N_SED_FILTERS} filters, SED CNN", f"{seds:.2f} s",
             f"{n_spaxels / seds:.0f} spaxels/s", ">= 20000/s"],
        ],
    )  # fmt: skip
    per_spectrum = batch_spec / 1024
    print_table(
        "Spectra path vs pPXF on the same simulated SDSS-like spectra (side by side, this run)",
        ["method", "time per spectrum", "pPXF / method"],
        [
            ["pPXF fit (E-MILES, median of 4)", f"{ppxf_s * 1e3:.0f} ms", "1"],
            ["spectra-only, batch of 1024 (worker)", f"{per_spectrum * 1e3:.3f} ms",
             f"{ppxf_s / per_spectrum:.0f}x (target >= 1000x)"],
            ["spectra-only, one spectrum (worker)", f"{one_real * 1e3:.1f} ms", f"{ppxf_s / one_real:.0f}x"],
        ],
    )  # fmt: skip
    print_table(
        "Parameters (compact)",
        ["model", "parameters"],
        [[k, f"{v:,}"] for k, v in child["params"].items()],
    )
    if with_training:
        rows = []
        total = 0.0
        for name, step in child["train_step_s"].items():
            epoch = step * 8000 / 32
            total += epoch
            rows.append(
                [name, f"{step * 1e3:.0f} ms", f"{32 / step:.0f}/s", f"{epoch / 60:.1f} min"]
            )
        rows.append(["all four", "", "", f"{total / 60:.1f} min per epoch"])
        print_table(
            "Compact training steps (batch 32) -> one epoch on 8 000 training galaxies",
            ["model", "step", "samples/s", "epoch"],
            rows,
        )


if __name__ == "__main__":
    main()
