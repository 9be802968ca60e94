"""Training of the per-spaxel SED CNNs (Liew-Cain et al. 2021): one for log age, one for [M/H].

The two networks train on Set A (:func:`~napari_galam.models.datasets.split_spaxels_within_galaxies`:
the spaxels of every galaxy spread over the three subsets, optimistic) or Set B
(:func:`~napari_galam.models.datasets.split_by_galaxy`: whole galaxies held out,
realistic), each as a checkpointed stage (:func:`~napari_galam.models.training_loop.iter_stage`),
and are saved side by side as ``final/sed-cnn.keras`` (output (batch, 2)).

:func:`iter_train_sed_cnn` yields a
:class:`~napari_galam.models.training_loop.TrainingProgress` after every epoch and returns
a :class:`~napari_galam.models.training_loop.TrainingResult`; :func:`train_sed_cnn` runs
it to the end.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.preprocess import normalise_seds
from napari_galam.errors import GalamInputError
from napari_galam.models.architectures import (
    ArchitectureConfig,
    build_sed_cnn,
    combine_sed_cnns,
    get_config,
)
from napari_galam.models.datasets import (
    SpaxelArrays,
    SplitIndices,
    make_dataset,
    split_by_galaxy,
    split_spaxels_within_galaxies,
)
from napari_galam.models.training_loop import (
    TrainingResult,
    TrainingSettings,
    atomic_json,
    iter_stage,
    load_keras_model,
    predict_rows,
    regression_metrics,
    resolve_acceleration,
)
from napari_galam.progress import ProgressGenerator, run_to_end

__all__ = ["iter_train_sed_cnn", "train_sed_cnn"]


def _usable_spaxel_split(
    data: SpaxelArrays, split: str, opts: TrainingSettings
) -> tuple[SplitIndices, NDArray[np.float32]]:
    """Set A or Set B over the spaxels with a usable SED, and the normalised SEDs."""
    splitter = split_spaxels_within_galaxies if split == "A" else split_by_galaxy
    rows = splitter(data.galaxy_id, fractions=opts.fractions, seed=opts.seed)
    seds, valid = normalise_seds(np.asarray(data.seds))
    keep = np.flatnonzero(valid)
    rows = SplitIndices(*(np.intersect1d(r, keep) for r in (rows.train, rows.val, rows.test)))
    return rows, seds


def _iter_train_one_target(
    target: str,
    values: NDArray[np.float32],
    seds: NDArray[np.float32],
    rows: SplitIndices,
    root: Path,
    cfg: ArchitectureConfig,
    opts: TrainingSettings,
    *,
    mixed: bool,
    jit: bool,
) -> ProgressGenerator[Any]:
    """Train the SED CNN of one label (stage ``sed_<target>``); return its best model."""
    mean, std = float(values[rows.train].mean()), float(values[rows.train].std())
    name = f"sed_{target}"
    n_filters = seds.shape[1]
    yield from iter_stage(
        name,
        root,
        lambda: build_sed_cnn(
            cfg, n_filters=n_filters, target_mean=mean, target_std=std, name=name
        ),
        opts.lr_sed,
        lambda: make_dataset(
            [(seds, None)],
            values,
            rows.train,
            batch_size=opts.batch_size,
            shuffle=True,
            seed=opts.seed,
        ),
        lambda: make_dataset(
            [(seds, None)], values, rows.val, batch_size=opts.batch_size, shuffle=False
        ),
        opts,
        patience=opts.patience_sed,
        mixed=mixed,
        jit=jit,
    )
    return load_keras_model(root / name / "best.keras", compile=False)


def iter_train_sed_cnn(
    data: SpaxelArrays,
    workdir: str | os.PathLike,
    *,
    split: str = "B",
    config: ArchitectureConfig | str = "compact",
    settings: TrainingSettings | None = None,
) -> ProgressGenerator[TrainingResult]:
    """Train the age and the [M/H] SED CNNs on Set A or Set B; yield progress, return the result.

    Parameters
    ----------
    data : SpaxelArrays
    workdir : path
        Checkpoints (``sed_log_age/``, ``sed_mh/``) and ``final/sed-cnn.keras`` (the two
        networks side by side, output (batch, 2)).
    split : {"A", "B"}
        Set A: spaxels of each galaxy spread over the subsets; Set B: galaxies held out.
    config, settings
        As for :func:`~napari_galam.models.train_mmlforgalam.iter_train_mmlforgalam`; the
        SED CNN is the same in both configs.

    Yields
    ------
    TrainingProgress
        After every epoch of each of the two networks.

    Returns
    -------
    TrainingResult
        The path of ``sed-cnn``, split sizes and test-set metrics.
    """
    cfg = get_config(config)
    opts = settings or TrainingSettings()
    if split not in ("A", "B"):
        raise GalamInputError(
            f"SED CNN split must be 'A' (spaxels mixed) or 'B' (galaxies held out), got {split!r}"
        )
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    mixed, jit = resolve_acceleration(opts)
    rows, seds = _usable_spaxel_split(data, split, opts)
    n_filters = seds.shape[1]
    targets = {
        "log_age": np.asarray(data.log_age, np.float32)[:, None],
        "mh": np.asarray(data.mh, np.float32)[:, None],
    }
    models = {}
    for target, values in targets.items():
        models[target] = yield from _iter_train_one_target(
            target, values, seds, rows, root, cfg, opts, mixed=mixed, jit=jit
        )
    combined = combine_sed_cnns(models["log_age"], models["mh"])
    final = root / "final"
    final.mkdir(exist_ok=True)
    path = final / "sed-cnn.keras"
    combined.save(path)
    truth = np.concatenate([targets["log_age"], targets["mh"]], axis=1)[rows.test]
    metrics = {
        "sed-cnn": regression_metrics(predict_rows(combined, seds, rows.test, None, 4096), truth),
        "split": split,
    }
    atomic_json(root / "metrics.json", metrics)
    return TrainingResult(
        workdir=root,
        model_paths={"sed-cnn": path},
        split_sizes=rows.sizes(),
        metrics=metrics,
        configuration={
            **cfg.to_dict(),
            "sed_n_filters": n_filters,
            "sed_filters": list(data.filter_names),
        },
        settings={
            **dataclasses.asdict(opts),
            "mixed_precision_used": mixed,
            "jit_compile_used": jit,
        },
    )


def train_sed_cnn(
    data: SpaxelArrays,
    workdir: str | os.PathLike,
    *,
    split: str = "B",
    config: ArchitectureConfig | str = "compact",
    settings: TrainingSettings | None = None,
) -> TrainingResult:
    """Run :func:`iter_train_sed_cnn` to the end and return its result."""
    return run_to_end(
        iter_train_sed_cnn(data, workdir, split=split, config=config, settings=settings)
    )
