"""What the two trainers share: settings, progress, the checkpointed training stage, metrics.

One *stage* trains one network (M1, M2, M3, M4 of MMLforGalAM, or one SED CNN) with Adam
and MSE, keeping ``last.keras`` (with its optimizer), ``best.keras`` (lowest validation
loss) and ``state.json`` in its folder under the run's work folder; running it again
continues from the last finished epoch, and a finished stage is skipped. Early stopping
stops a stage after ``patience`` epochs without a better validation loss and keeps the
best epoch. Mixed precision (``mixed_float16``) and XLA (``jit_compile``) are switched on
only when TensorFlow sees a GPU, unless :class:`TrainingSettings` forces them.

The trainers are :mod:`napari_galam.models.train_mmlforgalam` and
:mod:`napari_galam.models.train_sed_cnn`; their data come from
:mod:`napari_galam.models.datasets`. TensorFlow is imported only inside functions.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.models.datasets import take_rows
from napari_galam.models.inference import model_input_spec, predict_batches
from napari_galam.progress import Progress, ProgressGenerator

__all__ = [
    "TrainingSettings",
    "TrainingProgress",
    "TrainingResult",
    "gpu_available",
    "resolve_acceleration",
    "regression_metrics",
    "atomic_json",
    "load_keras_model",
    "iter_stage",
    "predict_rows",
    "export_trained_models",
]


@dataclass(frozen=True)
class TrainingSettings:
    """How to train; learning rates are the papers' (Wang et al. 2025, Sect. 3).

    ``mixed_precision`` and ``jit_compile``: ``None`` = on only when a GPU is visible;
    ``True``/``False`` force them (``True`` also works on a CPU, slowly).
    ``lr_sed`` is Keras's Adam default (Liew-Cain et al. tuned theirs with Hyperas and do
    not list it); ``patience_sed`` is their 25.

    ``balance_labels`` weights every galaxy by the inverse number of training galaxies in
    its (log age, [M/H]) cell of ``balance_bin_dex`` dex (see
    :func:`label_balance_weights`), capped at ``balance_max_weight``: the loss then sees
    a flat label distribution, so the rare old and metal-rich galaxies at the grid's edge
    are not pulled towards the middle of the training set. Early stopping then watches
    the weighted validation MSE. Not in the papers (their labels are a real survey's).
    Tried on the 16 000-galaxy set with observed-frame spectra, it made [M/H] worse
    (mid-training bias -0.18 dex at z < 0.02, SD 0.22 vs 0.19), because the flattened
    prior puts much weight on the sparse young, metal-poor corner; the shipped models
    do not use it.
    """

    epochs: int = 100
    batch_size: int = 32
    patience: int = 10
    patience_sed: int = 25
    min_delta: float = 0.0
    lr_m1: float = 1e-4
    lr_m2: float = 1e-3
    lr_m3: float = 1e-4
    lr_m4: float = 1e-4
    lr_sed: float = 1e-3
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    mixed_precision: bool | None = None
    jit_compile: bool | None = None
    shuffle_buffer_batches: int = 0
    balance_labels: bool = False
    balance_bin_dex: float = 0.1
    balance_max_weight: float = 10.0


@dataclass(frozen=True)
class TrainingProgress(Progress):
    """One finished epoch (or a stage event) of a training run: ``done`` of ``total`` epochs.

    ``loss`` is the training loss (MSE plus any L2 penalty); ``val_loss`` and
    ``best_val_loss`` are validation MSEs (in dex^2 for the label models), the quantity
    early stopping watches.
    """

    loss: float
    val_loss: float
    best_val_loss: float
    message: str = ""

    @property
    def epoch(self) -> int:
        """The epoch just finished (``done``)."""
        return self.done

    @property
    def epochs(self) -> int:
        """The most epochs the stage may run (``total``)."""
        return self.total


@dataclass(frozen=True)
class TrainingResult:
    """The end of a training run: final model files, split sizes and test metrics."""

    workdir: Path
    model_paths: dict[str, Path]
    split_sizes: dict[str, int]
    metrics: dict[str, Any]
    configuration: dict[str, Any]
    settings: dict[str, Any]


def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU (imports TensorFlow)."""
    from napari_galam.models.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_acceleration(settings: TrainingSettings) -> tuple[bool, bool]:
    """``(mixed_precision, jit_compile)`` to use: the settings', or whether a GPU is seen."""
    need_probe = settings.mixed_precision is None or settings.jit_compile is None
    has_gpu = gpu_available() if need_probe else False
    mixed = has_gpu if settings.mixed_precision is None else bool(settings.mixed_precision)
    jit = has_gpu if settings.jit_compile is None else bool(settings.jit_compile)
    return mixed, jit


@contextlib.contextmanager
def _dtype_policy(mixed: bool) -> Iterator[None]:
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def regression_metrics(
    predicted: NDArray[Any], true: NDArray[Any], names: Sequence[str] = ("log_age", "mh")
) -> dict[str, dict[str, float]]:
    """MSE, MAE, bias (mean of pred - true) and SD of (pred - true) per target (Wang et al. Eqs. 8-11)."""
    pred = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    ref = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(names[: pred.shape[1]]):
        diff = pred[:, i] - ref[:, i]
        out[name] = {
            "mse": float(np.mean(diff**2)),
            "mae": float(np.mean(np.abs(diff))),
            "bias": float(np.mean(diff)),
            "sd": float(np.std(diff)),
            "robust_sd": float(1.4826 * np.median(np.abs(diff - np.median(diff)))),
            "n": int(diff.size),
        }
    return out


def atomic_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON under a temporary name, then move it into place.

    NumPy numbers are written as plain floats.
    """
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float), encoding="utf-8")
    os.replace(tmp, path)


def _atomic_save(model: Any, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    model.save(tmp, overwrite=True)
    os.replace(tmp, path)


def load_keras_model(path: Path, *, compile: bool) -> Any:
    """Load a Keras archive of this package's networks (``safe_mode``, own layers registered)."""
    import keras

    from napari_galam.models.architectures import custom_objects

    return keras.saving.load_model(
        path, custom_objects=custom_objects(), compile=compile, safe_mode=True
    )


# --------------------------------------------------------------------------- one stage


def _read_stage_state(state_path: Path) -> dict[str, Any]:
    """The stage's ``state.json`` (epoch, best validation loss, patience count, history)."""
    state = {"epoch": 0, "best_val_loss": math.inf, "wait": 0, "done": False, "history": []}
    if state_path.is_file():
        state.update(json.loads(state_path.read_text(encoding="utf-8")))
    return state


def _resume_or_build(
    state: dict[str, Any],
    last_path: Path,
    build: Callable[[], Any],
    learning_rate: float,
    settings: TrainingSettings,
    *,
    mixed: bool,
    jit: bool,
    weighted: bool,
) -> tuple[Any, str]:
    """The model to train (``last.keras`` when an epoch finished, else a new one) and a note.

    A new model resets ``state`` to epoch 0.
    """
    import keras

    if state["epoch"] > 0 and last_path.is_file():
        return load_keras_model(last_path, compile=True), f"resumed after epoch {state['epoch']}"
    keras.utils.set_random_seed(settings.seed)
    with _dtype_policy(mixed):
        model = build()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="mse",
        metrics=[keras.metrics.MeanSquaredError(name="mse")],
        weighted_metrics=[keras.metrics.MeanSquaredError(name="wmse")] if weighted else None,
        jit_compile=jit,
    )
    state.update(epoch=0, best_val_loss=math.inf, wait=0, history=[])
    return model, "started"


def _fit_epoch(
    model: Any, train_ds: Any, val_ds: Any, epoch: int, *, stage: str, weighted: bool
) -> dict[str, float]:
    """Train one epoch; return its history entry (``val_wmse`` too when ``weighted``)."""
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epoch + 1,
        initial_epoch=epoch,
        shuffle=False,
        verbose=0,
    )
    loss = float(history.history["loss"][-1])
    # Early stopping and "best" use the validation MSE alone (the paper's metric),
    # not the loss, which also holds the L2 penalty of M1's and M3's convolutions.
    watched = "val_wmse" if weighted else "val_mse"
    val_loss = float(history.history[watched][-1])
    if not math.isfinite(loss):
        raise GalamInputError(
            f"training {stage}: the loss became {loss} at epoch {epoch + 1}; lower the learning rate or check the data for NaN"
        )
    return {
        "epoch": epoch + 1,
        "loss": loss,
        "mse": float(history.history["mse"][-1]),
        "val_loss": float(history.history["val_loss"][-1]),
        "val_mse": float(history.history["val_mse"][-1]),
        **({"val_wmse": val_loss} if weighted else {}),
    }


def _checkpoint_epoch(
    model: Any,
    state: dict[str, Any],
    record: dict[str, float],
    val_loss: float,
    folder: Path,
    *,
    settings: TrainingSettings,
    patience: int,
) -> bool:
    """Keep a finished epoch: ``best.keras`` if it improved, ``last.keras``, ``state.json``.

    Returns whether the stage stops here (patience used up, or the last epoch).
    """
    improved = val_loss < state["best_val_loss"] - settings.min_delta
    if improved:
        state["best_val_loss"], state["wait"] = val_loss, 0
        _atomic_save(model, folder / "best.keras")
    else:
        state["wait"] += 1
    _atomic_save(model, folder / "last.keras")
    state["epoch"] = int(record["epoch"])
    state["history"].append(record)
    stop = state["wait"] >= patience or state["epoch"] >= settings.epochs
    state["done"] = stop
    atomic_json(folder / "state.json", state)
    return stop


def iter_stage(
    stage: str,
    workdir: Path,
    build: Callable[[], Any],
    learning_rate: float,
    train_data: Callable[[], Any],
    val_data: Callable[[], Any],
    settings: TrainingSettings,
    *,
    patience: int,
    mixed: bool,
    jit: bool,
    weighted: bool = False,
) -> ProgressGenerator[None]:
    """Train one model with checkpoints; resumes from ``workdir/stage``; leaves ``best.keras``.

    Parameters
    ----------
    stage : str
        The stage's name and folder (``"m1"``, ``"sed_log_age"``...).
    workdir : Path
        The run's work folder.
    build : callable
        Makes the untrained network (called under the run's dtype policy).
    learning_rate : float
        Adam's learning rate.
    train_data, val_data : callable
        Make the ``tf.data`` datasets (:func:`~napari_galam.models.datasets.make_dataset`).
    settings : TrainingSettings
    patience : int
        Epochs without a better validation loss before the stage stops.
    mixed, jit : bool
        Mixed precision and XLA (:func:`resolve_acceleration`).
    weighted : bool
        The datasets carry sample weights; early stopping watches the weighted
        validation MSE (``val_wmse``) instead of the plain one.

    Yields
    ------
    TrainingProgress
        After every epoch, or once when the stage finished earlier.
    """
    folder = workdir / stage
    folder.mkdir(parents=True, exist_ok=True)
    state = _read_stage_state(folder / "state.json")
    if state["done"] and (folder / "best.keras").is_file():
        yield TrainingProgress(
            stage,
            state["epoch"],
            settings.epochs,
            math.nan,
            math.nan,
            state["best_val_loss"],
            "finished earlier; skipped",
        )
        return
    model, message = _resume_or_build(
        state,
        folder / "last.keras",
        build,
        learning_rate,
        settings,
        mixed=mixed,
        jit=jit,
        weighted=weighted,
    )
    train_ds, val_ds = train_data(), val_data()
    for epoch in range(state["epoch"], settings.epochs):
        record = _fit_epoch(model, train_ds, val_ds, epoch, stage=stage, weighted=weighted)
        val_loss = record["val_wmse" if weighted else "val_mse"]
        stop = _checkpoint_epoch(
            model, state, record, val_loss, folder, settings=settings, patience=patience
        )
        loss, best = record["loss"], state["best_val_loss"]
        yield TrainingProgress(stage, epoch + 1, settings.epochs, loss, val_loss, best, message)
        message = ""
        if stop:
            break
    if not state["done"]:
        state["done"] = True
        atomic_json(folder / "state.json", state)


def predict_rows(
    model: Any,
    data: Any,
    rows: NDArray[np.int64],
    transform: Callable[[NDArray[Any]], NDArray[Any]] | None,
    batch_size: int,
) -> NDArray[np.float32]:
    """Predict ``model`` on ``data[rows]`` (array or HDF5), ``transform``-ed batch by batch."""
    outputs = []
    for start in range(0, rows.size, batch_size):
        chunk = rows[start : start + batch_size]
        x = take_rows(data, chunk)
        x = transform(x) if transform is not None else np.asarray(x, dtype=np.float32)
        outputs.append(predict_batches(model, x, batch_size=batch_size))
    return np.concatenate(outputs, axis=0)


def export_trained_models(
    result: TrainingResult,
    *,
    training_data: dict[str, Any],
    directory: str | os.PathLike | None = None,
) -> list[Path]:
    """Copy a run's final models into the registry with model cards; return the card paths."""
    from napari_galam.models.registry import save_model_with_card

    cards = []
    for name, path in result.model_paths.items():
        model = load_keras_model(path, compile=False)
        cards.append(
            save_model_with_card(
                model,
                name,
                architecture=name,
                configuration=result.configuration,
                input_spec=model_input_spec(name, result.configuration),
                training_data={**training_data, "split_sizes": result.split_sizes},
                metrics=result.metrics.get(name, {}),
                notes=f"trained with {result.settings}",
                directory=directory,
            )
        )
        calibration = Path(path).with_name(f"{name}.calibration.json")
        if calibration.is_file():  # written by train_mmlforgalam: the model's uncertainty
            from napari_galam.models.registry import install_uncertainty

            section = json.loads(calibration.read_text(encoding="utf-8"))
            head = Path(path).with_name(f"{name}.uncertainty.npz")
            install_uncertainty(
                name,
                section["uncertainty"],
                section["ood"],
                head if head.is_file() else None,
                directory=directory,
            )
    return cards
