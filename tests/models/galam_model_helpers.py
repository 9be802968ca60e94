"""Helpers shared by the model tests: a tiny architecture, toy galaxies, a tiny registry.

The toy relation is learnable on purpose: the cutout colours and the spectrum's slope
and line depth are linear in (log age, [M/H]), so a few epochs must lower the loss.
Importing this module imports neither TensorFlow nor napari.
"""

from __future__ import annotations

import numpy as np

from napari_galam.core.preprocess import N_SPECTRUM_POINTS, SPECTRUM_WAVELENGTH
from napari_galam.models.architectures import ArchitectureConfig

TINY = ArchitectureConfig(
    name="tiny",
    image_size=16,
    m1_filters=(4, 4, 4, 4),
    m1_pool=4,
    m1_dense=(16, 8),
    m2_filters=(4, 4, 4, 4),
    m2_dense=8,
    m3_filters=(4, 4, 4, 4),
    m3_convs_per_block=1,
    m3_dense=(16, 8),
    m4_tokens=2,
    m4_heads=2,
    m4_dense=(8, 8, 8, 8, 8),
)


def make_toy_galaxies(n: int = 200, *, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Cutouts (n, size, size, 3) uint8, spectra (n, 4171), labels and ids."""
    rng = np.random.default_rng(seed)
    log_age = rng.uniform(9.0, 10.0, n).astype(np.float32)
    mh = rng.uniform(-1.0, 0.0, n).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 6) ** 2))
    colour = np.stack(
        [60 + 150 * (log_age - 9.0), 60 + 150 * (mh + 1.0), 120 - 40 * (log_age - 9.0)], axis=1
    )
    cutouts = blob[None, :, :, None] * colour[:, None, None, :] + rng.normal(
        0, 3, (n, size, size, 3)
    )
    cutouts = np.clip(cutouts, 0, 255).astype(np.uint8)
    x = (SPECTRUM_WAVELENGTH - SPECTRUM_WAVELENGTH[0]) / np.ptp(SPECTRUM_WAVELENGTH)
    line = np.exp(-0.5 * ((SPECTRUM_WAVELENGTH - 5175.0) / 20.0) ** 2)
    spectra = (
        1.0
        + (log_age[:, None] - 9.0) * x[None, :]
        - 0.5 * (mh[:, None] + 1.0) * line[None, :]
        + rng.normal(0, 0.01, (n, N_SPECTRUM_POINTS))
    ).astype(np.float32)
    return {
        "cutouts": cutouts,
        "spectra": spectra,
        "log_age": log_age,
        "mh": mh,
        "galaxy_id": np.arange(n, dtype=np.int64) + 1000,
    }


TINY_SED_FILTERS = 12


def write_tiny_registry(directory) -> list[str]:
    """Save untrained tiny versions of the four shipped models with cards (imports TF).

    Called from TensorFlow-marked tests, or in a subprocess by the worker tests.
    """
    from napari_galam.models import architectures as arch
    from napari_galam.models.inference import model_input_spec
    from napari_galam.models.registry import save_model_with_card
    from napari_galam.models.train_sed_cnn import build_sed_uncertainty_model

    mean, std = (9.5, -0.5), (0.3, 0.3)
    models = {
        "image-only": arch.build_m3(TINY, target_mean=mean, target_std=std),
        "spectra-only": arch.build_m1(TINY, target_mean=mean, target_std=std),
        "mmlforgalam": arch.build_mmlforgalam(
            arch.build_m2(TINY),
            arch.build_m3(TINY, target_mean=mean, target_std=std),
            arch.build_m4(TINY, target_mean=mean, target_std=std),
        ),
        "sed-cnn": build_sed_uncertainty_model(
            arch.combine_sed_cnns(
                arch.build_sed_cnn(
                    TINY,
                    n_filters=TINY_SED_FILTERS,
                    target_mean=9.5,
                    target_std=0.3,
                    name="sed_log_age",
                ),
                arch.build_sed_cnn(
                    TINY, n_filters=TINY_SED_FILTERS, target_mean=-0.5, target_std=0.3, name="sed_mh"
                ),
            )
        )[1],
    }
    configuration = {
        **TINY.to_dict(),
        "sed_n_filters": TINY_SED_FILTERS,
        "sed_filters": [f"tiny-F{i:02d}" for i in range(TINY_SED_FILTERS)],
    }
    for name, model in models.items():
        save_model_with_card(
            model,
            name,
            architecture=name,
            configuration=configuration,
            input_spec=model_input_spec(name, configuration),
            training_data={"name": "untrained test model"},
            directory=directory,
        )
        if name != "sed-cnn":
            calibrate_tiny_model(name, model, directory)
        else:
            calibrate_tiny_sed_model(directory)
    return sorted(models)


def calibrate_tiny_sed_model(directory) -> None:
    """Give the tiny SED CNN the calibration sections ``predict_seds`` reads (unit scales,
    an S/N floor of 5 and a Mahalanobis reference of flat SEDs)."""
    from napari_galam.models.registry import write_card_section

    eye = np.eye(TINY_SED_FILTERS)
    section = {
        "uncertainty": {"method": "test: unit scales", "log_age": {"scale": 1.0}, "mh": {"scale": 1.0}},
        "ood": {
            "min_snr": 5.0,
            "shape": {
                "mean": [1.0] * TINY_SED_FILTERS,
                "precision": (eye / 0.01).tolist(),
                "max_distance2": 100.0,
            },
        },
    }
    write_card_section("sed-cnn", "calibration", section, directory=directory)


def calibrate_tiny_model(name: str, model, directory) -> None:
    """Give a tiny model a real (if meaningless) calibrated uncertainty on toy galaxies."""
    from pathlib import Path

    from napari_galam.core.preprocess import preprocess_images, preprocess_spectra
    from napari_galam.models.galaxy_uncertainty import calibrate_galaxy_model
    from napari_galam.models.registry import install_uncertainty

    toy = make_toy_galaxies(48, size=128, seed=7)
    x = (
        preprocess_spectra(toy["spectra"])
        if name == "spectra-only"
        else preprocess_images(toy["cutouts"], size=TINY.image_size)
    )
    truth = np.column_stack([toy["log_age"], toy["mh"]])
    head_path = Path(directory) / f".{name}-head.npz"
    _, section, ood = calibrate_galaxy_model(
        name,
        model,
        (x[:24], truth[:24]),
        (x[24:], truth[24:]),
        None,
        snr_edges=(0.0, np.inf),
        splits={"fit": {"galaxies": 24}, "calibrate": {"galaxies": 24}},
        redshift_range=(0.0, 0.3),
        head_path=head_path,
        steps=50,
    )
    install_uncertainty(name, section, ood, head_path, directory=directory)
    head_path.unlink()
