"""Training of MMLforGalAM in the papers' stages: M1 -> M2, M3 -> M4.

Order of training (Wang et al. 2025, Sect. 3 and Fig. 4): M1 on spectra -> M1's spectral
features for every galaxy -> M2 from images onto those features; M3 on images -> M2's
simulated spectral features and M3's image features -> M4 on both. Adam with the
papers' learning rates (1e-4 for M1, M3, M4; 1e-3 for M2), MSE, 8:1:1 split by galaxy
(:func:`~napari_galam.models.datasets.split_by_galaxy`). Each stage checkpoints and
resumes in its folder under ``workdir`` (:func:`~napari_galam.models.training_loop.iter_stage`);
the features every later stage reads are cached there as ``features_m*.npy``, so
running the same call again continues where it stopped and skips finished stages.

:func:`iter_train_mmlforgalam` yields a
:class:`~napari_galam.models.training_loop.TrainingProgress` after every epoch and returns
a :class:`~napari_galam.models.training_loop.TrainingResult`;
:func:`train_mmlforgalam` runs it to the end.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.preprocess import preprocess_images, preprocess_spectra
from napari_galam.errors import GalamInputError
from napari_galam.models.architectures import (
    IMAGE_FEATURE_LAYER,
    SPECTRAL_FEATURE_LAYER,
    ArchitectureConfig,
    build_m1,
    build_m2,
    build_m3,
    build_m4,
    build_mmlforgalam,
    feature_extractor,
    get_config,
)
from napari_galam.models.datasets import (
    GalaxyArrays,
    SplitIndices,
    label_balance_weights,
    make_dataset,
    split_by_galaxy,
)
from napari_galam.models.galaxy_uncertainty import calibrate_galaxy_model
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

__all__ = ["iter_train_mmlforgalam", "train_mmlforgalam"]


def _cached_features(path: Path, compute: Callable[[], NDArray[np.float32]]) -> NDArray[np.float32]:
    if path.is_file():
        return np.load(path, allow_pickle=False)
    values = compute()
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as handle:
        np.save(handle, values, allow_pickle=False)
    os.replace(tmp, path)
    return values


def _feature_r2(predicted: NDArray[np.float32], true: NDArray[np.float32]) -> tuple[float, float]:
    """R^2 of M2's features against M1's: mean over components (the paper's number,
    Sect. 4) and variance-weighted (1 - total SSE / total SS, robust to near-constant
    components); components constant in ``true`` are skipped."""
    total = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
    used = total > 1e-12 * max(float(total.max(initial=0.0)), 1e-30)
    if not np.any(used):
        return math.nan, math.nan
    residual = ((predicted - true) ** 2).sum(axis=0)
    mean = float(np.mean(1.0 - residual[used] / total[used]))
    weighted = float(1.0 - residual[used].sum() / total[used].sum())
    return mean, weighted


def _label_stats(labels: NDArray[np.float32]) -> tuple[list[float], list[float]]:
    return labels.mean(axis=0).tolist(), labels.std(axis=0).tolist()


def _usable_split(data: GalaxyArrays, opts: TrainingSettings) -> SplitIndices:
    """The 8:1:1 split by galaxy over the usable rows, as row numbers of ``data``.

    With ``data.test_rows`` the flagged usable rows are the test split and the others are
    split into train and validation in the ratio of the first two fractions.
    """
    usable = np.ones(len(data), bool) if data.usable is None else np.asarray(data.usable, bool)
    if data.test_rows is not None:
        held_out = usable & np.asarray(data.test_rows, bool)
        pool = np.flatnonzero(usable & ~held_out).astype(np.int64)
        test = np.flatnonzero(held_out).astype(np.int64)
        if not test.size:
            raise GalamInputError("galaxy arrays: no usable row is flagged in 'test_rows'")
        train_fraction = opts.fractions[0] / (opts.fractions[0] + opts.fractions[1])
        inner = split_by_galaxy(
            data.galaxy_id[pool], fractions=(train_fraction, 1.0 - train_fraction, 0.0),
            seed=opts.seed,
        )  # fmt: skip
        return SplitIndices(pool[inner.train], pool[inner.val], test)
    candidates = np.flatnonzero(usable).astype(np.int64)
    inner = split_by_galaxy(data.galaxy_id[candidates], fractions=opts.fractions, seed=opts.seed)
    return SplitIndices(candidates[inner.train], candidates[inner.val], candidates[inner.test])


@dataclass
class _Run:
    """One MMLforGalAM training run: its data, split, settings and what it has produced."""

    data: GalaxyArrays
    cfg: ArchitectureConfig
    opts: TrainingSettings
    root: Path
    split: SplitIndices
    labels: NDArray[np.float32]
    mean: list[float]
    std: list[float]
    weights: NDArray[np.float32] | None
    mixed: bool
    jit: bool
    image_transform: Callable[[NDArray[np.uint8]], NDArray[np.uint8]] | None
    paths: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> Path:
        """Where the final models go."""
        return self.root / "final"

    @property
    def all_rows(self) -> NDArray[np.int64]:
        """Every row of the data (features are computed for all galaxies)."""
        return np.arange(len(self.data), dtype=np.int64)

    @property
    def test_labels(self) -> NDArray[np.float32]:
        """The labels of the test split."""
        return self.labels[self.split.test]

    def images(self, batch: NDArray[Any]) -> NDArray[np.float32]:
        """Model input from a batch of raw cutouts (the QA step first, if any)."""
        if self.image_transform is not None:
            batch = self.image_transform(batch)
        return preprocess_images(batch, size=self.cfg.image_size)

    def spectra(self, batch: NDArray[Any]) -> NDArray[np.float32]:
        """Model input from a batch of stored spectra."""
        return preprocess_spectra(batch, frame=self.cfg.spectrum_frame)

    def predict(
        self, model: Any, source: Any, rows: NDArray[np.int64], transform: Any
    ) -> NDArray[np.float32]:
        """``model`` on ``source[rows]``, in batches of the run's batch size."""
        return predict_rows(model, source, rows, transform, self.opts.batch_size)

    def iter_split_stage(
        self,
        name: str,
        build: Callable[[], Any],
        lr: float,
        inputs: list[tuple[Any, Any]],
        targets: NDArray[Any],
    ) -> ProgressGenerator[None]:
        """Train stage ``name`` on ``inputs`` -> ``targets`` over the run's split."""
        split, opts, weights = self.split, self.opts, self.weights
        return iter_stage(
            name,
            self.root,
            build,
            lr,
            lambda: make_dataset(
                inputs,
                targets,
                split.train,
                batch_size=opts.batch_size,
                shuffle=True,
                seed=opts.seed,
                weights=weights,
            ),
            lambda: make_dataset(
                inputs,
                targets,
                split.val,
                batch_size=opts.batch_size,
                shuffle=False,
                weights=weights,
            ),
            opts,
            patience=opts.patience,
            mixed=self.mixed,
            jit=self.jit,
            weighted=weights is not None,
        )

    def result(self) -> TrainingResult:
        """The run's result as it stands."""
        return TrainingResult(
            workdir=self.root,
            model_paths=self.paths,
            split_sizes=self.split.sizes(),
            metrics=self.metrics,
            configuration=self.cfg.to_dict(),
            settings={
                **dataclasses.asdict(self.opts),
                "mixed_precision_used": self.mixed,
                "jit_compile_used": self.jit,
            },
        )


def _start_run(
    data: GalaxyArrays,
    workdir: str | os.PathLike,
    config: ArchitectureConfig | str,
    settings: TrainingSettings | None,
    image_transform: Callable[[NDArray[np.uint8]], NDArray[np.uint8]] | None,
) -> _Run:
    """Make the work folders, the split, the label statistics and the sample weights."""
    cfg = get_config(config)
    opts = settings or TrainingSettings()
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    mixed, jit = resolve_acceleration(opts)
    split = _usable_split(data, opts)
    labels = data.labels
    mean, std = _label_stats(labels[split.train])
    weights = (
        label_balance_weights(
            labels,
            split.train,
            bin_dex=opts.balance_bin_dex,
            max_weight=opts.balance_max_weight,
        )
        if opts.balance_labels
        else None
    )
    run = _Run(
        data, cfg, opts, root, split, labels, mean, std, weights, mixed, jit, image_transform
    )
    run.final.mkdir(exist_ok=True)
    return run


def _calibrate(run: _Run, name: str, model: Any, inputs: Any, transform: Any) -> None:
    """A first calibrated uncertainty for a just-trained model, beside it in ``final``.

    The variance head (:mod:`napari_galam.models.galaxy_uncertainty`) is fitted on the
    validation split and scaled on the test split, where its coverage is also measured
    (the shipped models are recalibrated on fresh galaxies by
    ``scripts/calibrate_galaxy_uncertainty.py``). Writes ``<name>.uncertainty.npz`` and
    ``<name>.calibration.json``, which
    :func:`~napari_galam.models.training_loop.export_trained_models` installs.
    """
    split = run.split

    def part(rows: NDArray[np.int64]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return transform(np.asarray(inputs[np.sort(rows)])), run.labels[np.sort(rows)]

    test_x, test_y = part(split.test)
    z_range = run.data.card.get("parameter_ranges", {}) if isinstance(run.data.card, dict) else {}
    z_range = z_range.get("redshift") if isinstance(z_range, dict) else None
    _, section, ood = calibrate_galaxy_model(
        name,
        model,
        part(split.val),
        (test_x, test_y),
        (test_x, test_y, np.full(len(test_y), np.nan)),
        snr_edges=(0.0, np.inf),
        splits={
            "fit": {"split": "validation", "galaxies": int(split.val.size)},
            "calibrate": {"split": "test", "galaxies": int(split.test.size)},
            "test": {
                "split": "test (the calibration split itself)",
                "galaxies": int(split.test.size),
            },
        },
        redshift_range=tuple(z_range) if z_range is not None else None,
        head_path=run.final / f"{name}.uncertainty.npz",
        batch_size=run.opts.batch_size,
        seed=run.opts.seed,
    )
    atomic_json(run.final / f"{name}.calibration.json", {"uncertainty": section, "ood": ood})


def _ship_single_model(run: _Run, stage: str, name: str, inputs: Any, transform: Any) -> Any:
    """Load a stage's best model, save it as the shipped model ``name`` with test metrics
    and a first calibration of its uncertainty."""
    model = load_keras_model(run.root / stage / "best.keras", compile=False)
    run.paths[name] = run.final / f"{name}.keras"
    model.save(run.paths[name])
    run.metrics[name] = regression_metrics(
        run.predict(model, inputs, run.split.test, transform), run.test_labels
    )
    _calibrate(run, name, model, inputs, transform)
    return model


def _iter_train_m1(run: _Run) -> ProgressGenerator[Any]:
    """M1 on the spectra; saves the spectra-only model and its test metrics; returns M1."""
    data, cfg = run.data, run.cfg
    yield from run.iter_split_stage(
        "m1",
        lambda: build_m1(cfg, target_mean=run.mean, target_std=run.std),
        run.opts.lr_m1,
        [(data.spectra, run.spectra)],
        run.labels,
    )
    return _ship_single_model(run, "m1", "spectra-only", data.spectra, run.spectra)


def _iter_train_m2(run: _Run, m1: Any) -> ProgressGenerator[tuple[NDArray[np.float32], Any]]:
    """M1's features of every galaxy, then M2 from images onto them; returns both."""
    data = run.data
    m1_features = _cached_features(
        run.root / "features_m1.npy",
        lambda: run.predict(
            feature_extractor(m1, SPECTRAL_FEATURE_LAYER), data.spectra, run.all_rows, run.spectra
        ),
    )
    yield from run.iter_split_stage(
        "m2",
        lambda: build_m2(run.cfg),
        run.opts.lr_m2,
        [(data.cutouts, run.images)],
        m1_features,
    )
    m2 = load_keras_model(run.root / "m2" / "best.keras", compile=False)
    return m1_features, m2


def _iter_train_m3(run: _Run) -> ProgressGenerator[Any]:
    """M3 on the images; saves the image-only model and its test metrics; returns M3."""
    data, cfg = run.data, run.cfg
    yield from run.iter_split_stage(
        "m3",
        lambda: build_m3(cfg, target_mean=run.mean, target_std=run.std),
        run.opts.lr_m3,
        [(data.cutouts, run.images)],
        run.labels,
    )
    return _ship_single_model(run, "m3", "image-only", data.cutouts, run.images)


def _iter_train_m4(
    run: _Run, m1_features: NDArray[np.float32], m2: Any, m3: Any
) -> ProgressGenerator[None]:
    """M4 on M2's and M3's features; saves MMLforGalAM (M2 + M3 + M4) and its metrics.

    Also scores M2's features against M1's (R^2) and M4 fed with M1's real features
    (the paper's ablation).
    """
    data, test = run.data, run.split.test
    m2_features = _cached_features(
        run.root / "features_m2.npy",
        lambda: run.predict(m2, data.cutouts, run.all_rows, run.images),
    )
    m3_features = _cached_features(
        run.root / "features_m3.npy",
        lambda: run.predict(
            feature_extractor(m3, IMAGE_FEATURE_LAYER), data.cutouts, run.all_rows, run.images
        ),
    )
    r2_mean, r2_weighted = _feature_r2(m2_features[test], m1_features[test])
    run.metrics["m2_feature_r2_mean"] = r2_mean
    run.metrics["m2_feature_r2_weighted"] = r2_weighted
    yield from run.iter_split_stage(
        "m4",
        lambda: build_m4(run.cfg, target_mean=run.mean, target_std=run.std),
        run.opts.lr_m4,
        [(m2_features, None), (m3_features, None)],
        run.labels,
    )
    m4 = load_keras_model(run.root / "m4" / "best.keras", compile=False)
    combined = build_mmlforgalam(m2, m3, m4)
    run.paths["mmlforgalam"] = run.final / "mmlforgalam.keras"
    combined.save(run.paths["mmlforgalam"])
    _calibrate(run, "mmlforgalam", combined, data.cutouts, run.images)
    run.metrics["mmlforgalam"] = regression_metrics(
        run.predict(combined, data.cutouts, test, run.images), run.test_labels
    )
    real = m4.predict_on_batch([m1_features[test], m3_features[test]])  # one call
    run.metrics["m4-real-m1-features"] = regression_metrics(np.asarray(real), run.test_labels)


def iter_train_mmlforgalam(
    data: GalaxyArrays,
    workdir: str | os.PathLike,
    *,
    config: ArchitectureConfig | str = "compact",
    settings: TrainingSettings | None = None,
    image_transform: Callable[[NDArray[np.uint8]], NDArray[np.uint8]] | None = None,
    spectra_only: bool = False,
) -> ProgressGenerator[TrainingResult]:
    """Train M1 -> M2, M3 -> M4 in the papers' order; yield progress, return the result.

    Parameters
    ----------
    data : GalaxyArrays
        Cutouts, spectra (needed for M1/M2/M4; without spectra only M3 trains), labels
        and galaxy ids.
    workdir : path
        Checkpoints, features and final models; rerunning with the same folder resumes.
    config : ArchitectureConfig or str
        ``"compact"`` (default, CPU) or ``"paper"``.
    settings : TrainingSettings, optional
    image_transform : callable, optional
        Applied to every batch of raw ``uint8`` cutouts (n, 128, 128, 3) before
        :func:`~napari_galam.core.preprocess.preprocess_images`: pass the QA step
        (ellipse masking, crop, nearest-neighbour resize to 128) so that training sees
        what inference will see. ``None`` uses the cutouts as stored.
    spectra_only : bool
        Train M1 only and return the spectra-only model (e.g. to retrain it in another
        spectrum frame, ``config.spectrum_frame``, without the image models).

    Yields
    ------
    TrainingProgress
        After every epoch of every stage.

    Returns
    -------
    TrainingResult
        Paths of ``spectra-only`` (M1), ``image-only`` (M3) and ``mmlforgalam``
        (M2 + M3 + M4) under ``workdir/final``, split sizes and test-set metrics,
        including M4 fed with M1's real features (the paper's ablation).
    """
    run = _start_run(data, workdir, config, settings, image_transform)
    if spectra_only and data.spectra is None:
        raise GalamInputError("training spectra-only: the data hold no spectra")
    with_spectra = data.spectra is not None
    if with_spectra:
        m1 = yield from _iter_train_m1(run)
    if spectra_only:
        atomic_json(run.root / "metrics.json", run.metrics)
        return run.result()
    if with_spectra:
        m1_features, m2 = yield from _iter_train_m2(run, m1)
    m3 = yield from _iter_train_m3(run)
    if with_spectra:
        yield from _iter_train_m4(run, m1_features, m2, m3)
    atomic_json(run.root / "metrics.json", run.metrics)
    return run.result()


def train_mmlforgalam(
    data: GalaxyArrays,
    workdir: str | os.PathLike,
    *,
    config: ArchitectureConfig | str = "compact",
    settings: TrainingSettings | None = None,
    image_transform: Callable[[NDArray[np.uint8]], NDArray[np.uint8]] | None = None,
    spectra_only: bool = False,
) -> TrainingResult:
    """Run :func:`iter_train_mmlforgalam` to the end and return its result."""
    return run_to_end(
        iter_train_mmlforgalam(
            data,
            workdir,
            config=config,
            settings=settings,
            image_transform=image_transform,
            spectra_only=spectra_only,
        )
    )
