"""Training of MMLforGalAM (staged, M1 -> M2, M3 -> M4) and of the per-spaxel SED CNN.

Input layout. :func:`open_galaxy_hdf5` and :func:`open_spaxel_hdf5` read the files
``galam simulate`` writes (:mod:`napari_galam.simulate.datasets`) as they are:

==========================  =====================  =======  ===================================
dataset                     shape                  dtype    meaning
==========================  =====================  =======  ===================================
``images/rgb``              (N, 128, 128, 3)       uint8    gri cutouts, i->R, r->G, g->B
``spectra/flux``            (N, 4171)              float32  fibre spectrum, 3830-8000 Å, 1 Å
``labels/log_age``          (N,)                   float32  luminosity-weighted log10(age/yr)
``labels/mh``               (N,)                   float32  luminosity-weighted [M/H] (dex)
``truth/blended``           (N,)                   bool     blended: left out of the splits
``seds/flux``               (G, ny, nx, n_filt)    float32  narrow-band fluxes per spaxel
``maps/log_age``, ``maps/mh``  (G, ny, nx)         float32  per-spaxel labels (NaN: none)
==========================  =====================  =======  ===================================

One row of a cutout file is one galaxy (its row number is its id); one cube is one
galaxy for the spaxel splits. A flat layout works too and so do numpy arrays in memory:
:class:`GalaxyArrays` (``cutouts`` (N, 128, 128, 3) uint8, ``spectra`` (N, 4171) on the
1 Å grid, ``log_age``, ``mh``, ``galaxy_id``) and :class:`SpaxelArrays` (``seds``
(M, n_filters) linear fluxes, ``log_age``, ``mh``, ``galaxy_id`` per spaxel). Spectra
are min-max normalised and cutouts scaled and shrunk batch by batch with
:mod:`napari_galam.core.preprocess` (the same functions inference uses); cutouts and
spectra stay on disk and are read batch by batch; labels are read into memory.
Without spectra only M3 (image-only) trains.

Order of training (Wang et al. 2025, Sect. 3 and Fig. 4): M1 on spectra -> M1's spectral
features for every galaxy -> M2 from images onto those features; M3 on images -> M2's
simulated spectral features and M3's image features -> M4 on both. Adam with the
papers' learning rates (1e-4 for M1, M3, M4; 1e-3 for M2), MSE, 8:1:1 split by galaxy.
Each stage keeps ``last.keras`` (with its optimizer), ``best.keras`` (lowest validation
loss) and ``state.json`` in its folder under ``workdir``; running the same call again
continues from the last finished epoch and skips finished stages. Early stopping stops a
stage after ``patience`` epochs without a better validation loss and keeps the best
epoch. Mixed precision (``mixed_float16``) and XLA (``jit_compile``) are switched on
only when TensorFlow sees a GPU, unless :class:`TrainingSettings` forces them.

The SED CNN (Liew-Cain et al. 2021, Sect. 3) trains one network for log age and one
for [M/H] on Set A (:func:`split_spaxels_within_galaxies`: the spaxels of every galaxy
spread over the three subsets, optimistic) or Set B (:func:`split_by_galaxy`: whole
galaxies held out, realistic).

Long work follows the house pattern: ``iter_train_*`` yields :class:`TrainingProgress`
after every epoch and finally a :class:`TrainingResult`; ``train_*`` runs it to the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.preprocess import (
    normalise_seds,
    preprocess_images,
    preprocess_spectra,
    rest_frame_spectra,
)
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
    build_sed_cnn,
    combine_sed_cnns,
    feature_extractor,
    get_config,
)
from napari_galam.models.inference import model_input_spec, predict_batches

__all__ = [
    "GalaxyArrays",
    "SpaxelArrays",
    "SplitIndices",
    "TrainingSettings",
    "TrainingProgress",
    "TrainingResult",
    "open_galaxy_hdf5",
    "open_spaxel_hdf5",
    "dataset_spectra",
    "split_by_galaxy",
    "split_spaxels_within_galaxies",
    "regression_metrics",
    "make_dataset",
    "gpu_available",
    "iter_train_mmlforgalam",
    "train_mmlforgalam",
    "iter_train_sed_cnn",
    "train_sed_cnn",
    "export_trained_models",
]


@dataclass(frozen=True)
class GalaxyArrays:
    """Per-galaxy training data (see the module docstring for the layout).

    ``cutouts`` and ``spectra`` may be numpy arrays or h5py datasets. ``usable`` (one
    flag per row, optional) leaves rows out of the splits, e.g. blended galaxies.
    """

    cutouts: Any
    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    galaxy_id: NDArray[np.int64]
    spectra: Any | None = None
    card: dict[str, Any] = field(default_factory=dict)
    usable: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        n = len(self.log_age)
        if self.usable is not None and len(self.usable) != n:
            raise GalamInputError("galaxy arrays: 'usable' needs one flag per galaxy")
        shapes = {
            "cutouts": len(self.cutouts),
            "mh": len(self.mh),
            "galaxy_id": len(self.galaxy_id),
        }
        if self.spectra is not None:
            shapes["spectra"] = len(self.spectra)
        wrong = {key: value for key, value in shapes.items() if value != n}
        if wrong:
            raise GalamInputError(
                f"galaxy arrays: {n} labels but lengths {wrong}; every array needs one row per galaxy"
            )
        if len(self.cutouts.shape) != 4 or self.cutouts.shape[-1] != 3:
            raise GalamInputError(
                f"galaxy arrays: cutouts must be (N, H, W, 3), got {self.cutouts.shape}"
            )

    @property
    def labels(self) -> NDArray[np.float32]:
        """(N, 2) float32: log age, [M/H]."""
        return np.stack([self.log_age, self.mh], axis=1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.log_age)


@dataclass(frozen=True)
class SpaxelArrays:
    """Per-spaxel training data: SEDs (M, n_filters), labels and galaxy ids.

    ``filter_names`` (one per SED column, e.g. the simulator's ``galam_jpas-J0388``) go
    into the trained model's card (``input.filters``), so that cubes can be put through
    the same filters at inference.
    """

    seds: Any
    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    galaxy_id: NDArray[np.int64]
    card: dict[str, Any] = field(default_factory=dict)
    filter_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.log_age)
        if len(self.seds) != n or len(self.mh) != n or len(self.galaxy_id) != n:
            raise GalamInputError(
                "spaxel arrays: seds, log_age, mh and galaxy_id need one row per spaxel"
            )
        if len(self.seds.shape) != 2:
            raise GalamInputError(
                f"spaxel arrays: seds must be (M, n_filters), got {self.seds.shape}"
            )
        if self.filter_names and len(self.filter_names) != self.seds.shape[1]:
            raise GalamInputError(
                f"spaxel arrays: {len(self.filter_names)} filter names for "
                f"{self.seds.shape[1]} SED columns"
            )

    def __len__(self) -> int:
        return len(self.log_age)


def _h5_group(path: str | os.PathLike, group: str | None) -> tuple[Any, Any]:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise GalamInputError(f"{path}: not a readable HDF5 file ({exc})") from None
    node = handle[group] if group else handle
    return handle, node


def _need(node: Any, key: str, path: str | os.PathLike) -> Any:
    if key not in node:
        raise GalamInputError(f"{path}: HDF5 dataset {key!r} missing; found {sorted(node.keys())}")
    return node[key]


def _attrs_card(node: Any) -> dict[str, Any]:
    """The dataset card stored as HDF5 attributes (JSON strings decoded), or ``card``."""
    if "card" in node.attrs:
        return json.loads(node.attrs["card"])
    card: dict[str, Any] = {}
    for key, value in node.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        elif isinstance(value, np.generic):
            value = value.item()
        card[key] = value
    return card


def open_galaxy_hdf5(
    path: str | os.PathLike,
    *,
    group: str | None = None,
    exclude_blended: bool = True,
    spectrum_frame: str = "observed",
) -> GalaxyArrays:
    """Open per-galaxy training data from HDF5; cutouts and spectra stay on disk.

    Reads the layout ``galam simulate`` writes (``images/rgb``, ``spectra/flux``,
    ``labels/log_age``, ``labels/mh``, ``truth/blended``; one galaxy per row, so the row
    number is the galaxy id) or the flat layout of the module docstring (``cutouts``,
    ``spectra``, ``log_age``, ``mh``, ``galaxy_id``). The file stays open while the arrays
    are used; its attributes become :attr:`GalaxyArrays.card`.

    Parameters
    ----------
    path : path
    group : str, optional
        HDF5 group holding the datasets (the root by default).
    exclude_blended : bool
        Leave galaxies flagged ``truth/blended`` out of training, as the paper rejects
        blended images (Wang et al. 2025, Sect. 2.2.2).
    spectrum_frame : str
        ``"observed"``: ``spectra/flux`` as stored (the paper's grid). ``"rest"``: the
        SDSS-grid spectra ``spectra/loglam_flux`` de-redshifted with ``truth/redshift``
        onto the rest-frame grid (:func:`dataset_spectra`), read into memory.
    """
    _, node = _h5_group(path, group)
    card = _attrs_card(node)
    if "images/rgb" in node:
        log_age = np.asarray(_need(node, "labels/log_age", path)[()], dtype=np.float32)
        usable = np.isfinite(log_age)
        if exclude_blended and "truth/blended" in node:
            usable &= ~np.asarray(node["truth/blended"][()], dtype=bool)
        return GalaxyArrays(
            cutouts=node["images/rgb"],
            log_age=log_age,
            mh=np.asarray(_need(node, "labels/mh", path)[()], dtype=np.float32),
            galaxy_id=np.asarray(node["truth/galaxy_id"][()], dtype=np.int64)
            if "truth/galaxy_id" in node
            else np.arange(log_age.size, dtype=np.int64),
            spectra=dataset_spectra(node, spectrum_frame, path) if "spectra/flux" in node else None,
            card=card,
            usable=usable,
        )
    return GalaxyArrays(
        cutouts=_need(node, "cutouts", path),
        log_age=np.asarray(_need(node, "log_age", path)[()], dtype=np.float32),
        mh=np.asarray(_need(node, "mh", path)[()], dtype=np.float32),
        galaxy_id=np.asarray(_need(node, "galaxy_id", path)[()], dtype=np.int64),
        spectra=node["spectra"] if "spectra" in node else None,
        card=card,
    )


def dataset_spectra(
    node: Any, frame: str, path: str | os.PathLike = "", *, n: int | None = None
) -> Any:
    """The spectra of a ``galam simulate --kind cutouts`` file in ``frame``.

    ``"observed"``: the ``spectra/flux`` dataset (on disk; its first ``n`` rows read
    into memory when ``n`` is given); ``"rest"``: the SDSS-grid ``spectra/loglam_flux``
    moved to the rest frame with ``truth/redshift``, as an ``(N, 3201)`` float32 array in
    [0, 1] (:func:`napari_galam.core.preprocess.rest_frame_spectra`).
    """
    if frame == "observed":
        stored = _need(node, "spectra/flux", path)
        return stored if n is None else np.asarray(stored[:n], dtype=np.float32)
    if frame != "rest":
        raise GalamInputError(f"spectrum frame {frame!r}: expected 'observed' or 'rest'")
    loglam = np.asarray(_need(node, "spectra/loglam", path)[()], dtype=np.float64)
    flux = _need(node, "spectra/loglam_flux", path)
    redshift = np.asarray(_need(node, "truth/redshift", path)[()], dtype=np.float64)
    if n is not None:
        redshift = redshift[:n]
    out = []
    for start in range(0, redshift.size, 2048):
        stop = start + 2048
        out.append(rest_frame_spectra(10.0**loglam, flux[start:stop], redshift[start:stop]))
    return np.concatenate(out) if out else np.zeros((0, 3201), np.float32)


def open_spaxel_hdf5(path: str | os.PathLike, *, group: str | None = None) -> SpaxelArrays:
    """Read per-spaxel training data from HDF5 into memory, one row per usable spaxel.

    Reads the layout ``galam simulate --kind cubes`` writes (``seds/flux``
    (n, ny, nx, n_filters), ``maps/log_age`` and ``maps/mh`` (n, ny, nx); the galaxy id
    is the cube's index) or the flat layout (``seds`` (M, n_filters), ``log_age``,
    ``mh``, ``galaxy_id``). Spaxels with a non-finite label or an unusable SED (see
    :func:`~napari_galam.core.preprocess.normalise_seds`) are dropped.
    """
    handle, node = _h5_group(path, group)
    card = _attrs_card(node)
    with handle:
        if "seds/flux" in node:
            flux = node["seds/flux"]
            n_filters = flux.shape[-1]
            seds_parts, age_parts, mh_parts, id_parts = [], [], [], []
            for index in range(flux.shape[0]):  # one cube at a time keeps memory bounded
                sed = np.asarray(flux[index], dtype=np.float32).reshape(-1, n_filters)
                age = np.asarray(node["maps/log_age"][index], dtype=np.float32).reshape(-1)
                mh = np.asarray(node["maps/mh"][index], dtype=np.float32).reshape(-1)
                keep = normalise_seds(sed)[1] & np.isfinite(age) & np.isfinite(mh)
                seds_parts.append(sed[keep])
                age_parts.append(age[keep])
                mh_parts.append(mh[keep])
                id_parts.append(np.full(int(keep.sum()), index, dtype=np.int64))
            seds = np.concatenate(seds_parts)
            log_age, mh, galaxy_id = (np.concatenate(p) for p in (age_parts, mh_parts, id_parts))
            names = node["seds/filter_names"][()] if "seds/filter_names" in node else []
        else:
            seds = np.asarray(_need(node, "seds", path)[()], dtype=np.float32)
            log_age = np.asarray(_need(node, "log_age", path)[()], dtype=np.float32)
            mh = np.asarray(_need(node, "mh", path)[()], dtype=np.float32)
            galaxy_id = np.asarray(_need(node, "galaxy_id", path)[()], dtype=np.int64)
            names = node["filter_names"][()] if "filter_names" in node else []
    filter_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return SpaxelArrays(
        seds=seds,
        log_age=log_age,
        mh=mh,
        galaxy_id=galaxy_id,
        card=card,
        filter_names=filter_names,
    )


@dataclass(frozen=True)
class SplitIndices:
    """Row indices of the training, validation and test subsets (sorted)."""

    train: NDArray[np.int64]
    val: NDArray[np.int64]
    test: NDArray[np.int64]

    def sizes(self) -> dict[str, int]:
        """Rows per subset."""
        return {
            "train": int(self.train.size),
            "val": int(self.val.size),
            "test": int(self.test.size),
        }


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if (
        len(fractions) != 3
        or min(fractions) < 0
        or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6)
    ):
        raise GalamInputError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def _cut(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    if n >= 3 and fractions[1] > 0 and fractions[2] > 0:
        n_train = min(max(n_train, 1), n - 2)
        n_val = min(max(n_val, 1), n - n_train - 1)
    return n_train, n_train + n_val


def split_by_galaxy(
    galaxy_id: NDArray[Any],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> SplitIndices:
    """Split rows into train/val/test so that every galaxy's rows land in one subset.

    The galaxies (unique ids) are shuffled with ``numpy.random.default_rng(seed)`` and cut
    by ``fractions`` of the number of galaxies (8:1:1 as in Wang et al. 2025); the same
    ids and seed always give the same split. This is Set B of Liew-Cain et al. (2021)
    when the rows are spaxels.
    """
    fr = _check_fractions(fractions)
    ids = np.asarray(galaxy_id)
    unique = np.unique(ids)
    if unique.size < 3:
        raise GalamInputError(f"split by galaxy: need at least 3 galaxies, got {unique.size}")
    order = np.random.default_rng(seed).permutation(unique)
    a, b = _cut(unique.size, fr)
    rows = np.arange(ids.size, dtype=np.int64)
    return SplitIndices(
        train=rows[np.isin(ids, order[:a])],
        val=rows[np.isin(ids, order[a:b])],
        test=rows[np.isin(ids, order[b:])],
    )


def split_spaxels_within_galaxies(
    galaxy_id: NDArray[Any],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> SplitIndices:
    """Set A of Liew-Cain et al. (2021): each galaxy's spaxels spread over all subsets.

    Within every galaxy the spaxels are shuffled and cut by ``fractions``, so the test
    set contains spaxels of galaxies seen in training (the optimistic case).
    """
    fr = _check_fractions(fractions)
    ids = np.asarray(galaxy_id)
    rng = np.random.default_rng(seed)
    parts: list[list[NDArray[np.int64]]] = [[], [], []]
    for gid in np.unique(ids):
        rows = rng.permutation(np.flatnonzero(ids == gid)).astype(np.int64)
        a, b = _cut(rows.size, fr)
        for part, chunk in zip(parts, (rows[:a], rows[a:b], rows[b:]), strict=True):
            part.append(chunk)
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return SplitIndices(train=train, val=val, test=test)


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


def label_balance_weights(
    labels: NDArray[Any],
    rows: NDArray[np.int64],
    *,
    bin_dex: float = 0.1,
    max_weight: float = 10.0,
) -> NDArray[np.float32]:
    """Sample weights that flatten the label distribution of the training rows.

    Every galaxy (all ``labels``, not only ``rows``) gets ``N / (K * n_cell)``, where
    ``n_cell`` is the number of training rows in its cell of a ``bin_dex`` grid over the
    label columns, ``N`` the number of training rows and ``K`` the number of occupied
    cells; a weight is at most ``max_weight``. Cells no training row reaches get the
    weight of the rarest occupied cell. On the training rows the weights average about 1
    (exactly 1 when nothing is capped), so learning rates keep their meaning.

    Parameters
    ----------
    labels : (N_all, n_labels) array
    rows : int array
        The training split.
    bin_dex : float
        Cell width in every label (dex).
    max_weight : float
        Cap, so that a lone galaxy in a corner cannot dominate a batch.
    """
    values = np.asarray(labels, dtype=np.float64)
    if values.ndim != 2 or len(rows) == 0:
        raise GalamInputError("label weights: need (N, n_labels) labels and a non-empty split")
    if not (bin_dex > 0 and max_weight >= 1):
        raise GalamInputError(
            f"label weights: bin_dex must be > 0 and max_weight >= 1, got {bin_dex}, {max_weight}"
        )
    low = values[rows].min(axis=0)
    cells = np.floor((values - low) / bin_dex).astype(np.int64)
    _, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse[rows], minlength=int(inverse.max()) + 1).astype(np.float64)
    occupied = int(np.count_nonzero(counts))
    per_cell = np.where(counts > 0, len(rows) / (occupied * np.maximum(counts, 1)), np.nan)
    per_cell = np.where(np.isnan(per_cell), np.nanmax(per_cell), per_cell)
    return np.minimum(per_cell[inverse], max_weight).astype(np.float32)


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
class TrainingProgress:
    """One finished epoch (or a stage event) of a training run.

    ``loss`` is the training loss (MSE plus any L2 penalty); ``val_loss`` and
    ``best_val_loss`` are validation MSEs (in dex^2 for the label models), the quantity
    early stopping watches.
    """

    stage: str
    epoch: int
    epochs: int
    loss: float
    val_loss: float
    best_val_loss: float
    message: str = ""


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
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _resolve_acceleration(settings: TrainingSettings) -> tuple[bool, bool]:
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


def _take(source: Any, rows: NDArray[np.int64]) -> NDArray[Any]:
    """Rows of a numpy array or h5py dataset (``rows`` sorted, as h5py requires)."""
    if isinstance(source, np.ndarray):
        return source[rows]
    return np.asarray(source[rows])


def make_dataset(
    inputs: Sequence[tuple[Any, Callable[[NDArray[Any]], NDArray[Any]] | None]],
    targets: NDArray[Any],
    rows: NDArray[np.int64],
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    weights: NDArray[Any] | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(inputs, targets)`` batches read from arrays or HDF5.

    Parameters
    ----------
    inputs : sequence of (source, transform)
        Each source is a numpy array or h5py dataset indexed by row; ``transform`` (e.g.
        :func:`~napari_galam.core.preprocess.preprocess_images`) turns a batch of raw
        rows into model input, or ``None`` for as-is float32.
    targets : (N, ...) array in memory
    rows : int array
        Which rows to use (one split).
    batch_size : int
    shuffle : bool
        Reshuffle the rows at every pass (seeded: ``seed`` + pass number).
    seed : int
    weights : (N,) array, optional
        Per-row sample weights; when given the dataset yields ``(x, y, w)``.

    Returns
    -------
    tf.data.Dataset
        Yields ``(x, y)`` (or ``(x, y, w)``) where ``x`` is one array or a tuple when
        there are several inputs; prefetched. Rows inside a batch are in increasing order.
    """
    import tensorflow as tf

    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise GalamInputError("training data: a split is empty; use more galaxies")
    target_array = np.asarray(targets, dtype=np.float32)
    weight_array = None if weights is None else np.asarray(weights, dtype=np.float32)
    if weight_array is not None and weight_array.shape != (len(target_array),):
        raise GalamInputError(
            f"training data: {weight_array.shape} sample weights for {len(target_array)} rows"
        )
    transforms = [(src, fn or (lambda a: np.asarray(a, dtype=np.float32))) for src, fn in inputs]
    passes = [0]

    def batches() -> Iterator[Any]:
        order = rows
        if shuffle:
            order = np.random.default_rng(seed + passes[0]).permutation(rows)
        passes[0] += 1
        for start in range(0, order.size, batch_size):
            chunk = np.sort(order[start : start + batch_size])
            xs = tuple(fn(_take(src, chunk)) for src, fn in transforms)
            x = xs[0] if len(xs) == 1 else xs
            if weight_array is None:
                yield x, target_array[chunk]
            else:
                yield x, target_array[chunk], weight_array[chunk]

    probe = next(iter(batches()))
    probe_x, probe_y = probe[0], probe[1]
    passes[0] = 0
    n_batches = -(-rows.size // batch_size)

    def spec(a: NDArray[Any]) -> Any:
        return tf.TensorSpec(shape=(None, *a.shape[1:]), dtype=tf.as_dtype(a.dtype))

    x_spec = spec(probe_x) if isinstance(probe_x, np.ndarray) else tuple(spec(a) for a in probe_x)
    signature = (x_spec, spec(probe_y))
    if weight_array is not None:
        signature = (*signature, tf.TensorSpec(shape=(None,), dtype=tf.float32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    return dataset.prefetch(2)


# --------------------------------------------------------------------------- stages


def _atomic_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _atomic_save(model: Any, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    model.save(tmp, overwrite=True)
    os.replace(tmp, path)


def _load(path: Path, *, compile: bool) -> Any:
    import keras

    from napari_galam.models.architectures import custom_objects

    return keras.saving.load_model(
        path, custom_objects=custom_objects(), compile=compile, safe_mode=True
    )


def _iter_stage(
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
) -> Iterator[TrainingProgress]:
    """Train one model with checkpoints; resumes from ``workdir/stage``; leaves ``best.keras``.

    ``weighted``: the datasets carry sample weights; early stopping watches the
    weighted validation MSE (``val_wmse``) instead of the plain one.
    """
    import keras

    folder = workdir / stage
    folder.mkdir(parents=True, exist_ok=True)
    state_path, last_path, best_path = (
        folder / "state.json",
        folder / "last.keras",
        folder / "best.keras",
    )
    state = {"epoch": 0, "best_val_loss": math.inf, "wait": 0, "done": False, "history": []}
    if state_path.is_file():
        state.update(json.loads(state_path.read_text(encoding="utf-8")))
    if state["done"] and best_path.is_file():
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
    if state["epoch"] > 0 and last_path.is_file():
        model = _load(last_path, compile=True)
        message = f"resumed after epoch {state['epoch']}"
    else:
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
        message = "started"
    train_ds, val_ds = train_data(), val_data()
    for epoch in range(state["epoch"], settings.epochs):
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
        improved = val_loss < state["best_val_loss"] - settings.min_delta
        if improved:
            state["best_val_loss"], state["wait"] = val_loss, 0
            _atomic_save(model, best_path)
        else:
            state["wait"] += 1
        _atomic_save(model, last_path)
        state["epoch"] = epoch + 1
        state["history"].append(
            {
                "epoch": epoch + 1,
                "loss": loss,
                "mse": float(history.history["mse"][-1]),
                "val_loss": float(history.history["val_loss"][-1]),
                "val_mse": float(history.history["val_mse"][-1]),
                **({"val_wmse": val_loss} if weighted else {}),
            }
        )
        stop = state["wait"] >= patience or epoch + 1 >= settings.epochs
        state["done"] = stop
        _atomic_json(state_path, state)
        yield TrainingProgress(
            stage, epoch + 1, settings.epochs, loss, val_loss, state["best_val_loss"], message
        )
        message = ""
        if stop:
            break
    if not state["done"]:
        state["done"] = True
        _atomic_json(state_path, state)


def _predict(
    model: Any,
    data: Any,
    rows: NDArray[np.int64],
    transform: Callable[[NDArray[Any]], NDArray[Any]] | None,
    batch_size: int,
) -> NDArray[np.float32]:
    outputs = []
    for start in range(0, rows.size, batch_size):
        chunk = rows[start : start + batch_size]
        x = _take(data, chunk)
        x = transform(x) if transform is not None else np.asarray(x, dtype=np.float32)
        outputs.append(predict_batches(model, x, batch_size=batch_size))
    return np.concatenate(outputs, axis=0)


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


def iter_train_mmlforgalam(
    data: GalaxyArrays,
    workdir: str | os.PathLike,
    *,
    config: ArchitectureConfig | str = "compact",
    settings: TrainingSettings | None = None,
    image_transform: Callable[[NDArray[np.uint8]], NDArray[np.uint8]] | None = None,
    spectra_only: bool = False,
) -> Iterator[TrainingProgress | TrainingResult]:
    """Train M1 -> M2, M3 -> M4 in the papers' order; yield progress, then the result.

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
    TrainingResult
        Last: paths of ``spectra-only`` (M1), ``image-only`` (M3) and ``mmlforgalam``
        (M2 + M3 + M4) under ``workdir/final``, split sizes and test-set metrics,
        including M4 fed with M1's real features (the paper's ablation).
    """
    cfg = get_config(config)
    opts = settings or TrainingSettings()
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    mixed, jit = _resolve_acceleration(opts)
    candidates = (
        np.arange(len(data), dtype=np.int64)
        if data.usable is None
        else np.flatnonzero(np.asarray(data.usable, dtype=bool)).astype(np.int64)
    )
    inner = split_by_galaxy(data.galaxy_id[candidates], fractions=opts.fractions, seed=opts.seed)
    split = SplitIndices(candidates[inner.train], candidates[inner.val], candidates[inner.test])
    labels = data.labels
    mean, std = _label_stats(labels[split.train])
    all_rows = np.arange(len(data), dtype=np.int64)
    bs = opts.batch_size
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

    def images(batch: NDArray[Any]) -> NDArray[np.float32]:
        if image_transform is not None:
            batch = image_transform(batch)
        return preprocess_images(batch, size=cfg.image_size)

    def stage(
        name: str,
        build: Callable[[], Any],
        lr: float,
        inputs: list[tuple[Any, Any]],
        targets: NDArray[Any],
    ) -> Iterator[TrainingProgress]:
        return _iter_stage(
            name,
            root,
            build,
            lr,
            lambda: make_dataset(
                inputs,
                targets,
                split.train,
                batch_size=bs,
                shuffle=True,
                seed=opts.seed,
                weights=weights,
            ),
            lambda: make_dataset(
                inputs, targets, split.val, batch_size=bs, shuffle=False, weights=weights
            ),
            opts,
            patience=opts.patience,
            mixed=mixed,
            jit=jit,
            weighted=weights is not None,
        )

    final = root / "final"
    final.mkdir(exist_ok=True)
    paths: dict[str, Path] = {}
    metrics: dict[str, Any] = {}
    test_labels = labels[split.test]

    def spectra(batch: NDArray[Any]) -> NDArray[np.float32]:
        return preprocess_spectra(batch, frame=cfg.spectrum_frame)

    def finished() -> TrainingResult:
        return TrainingResult(
            workdir=root,
            model_paths=paths,
            split_sizes=split.sizes(),
            metrics=metrics,
            configuration=cfg.to_dict(),
            settings={
                **dataclasses.asdict(opts),
                "mixed_precision_used": mixed,
                "jit_compile_used": jit,
            },
        )

    if spectra_only and data.spectra is None:
        raise GalamInputError("training spectra-only: the data hold no spectra")
    if data.spectra is not None:
        yield from stage(
            "m1",
            lambda: build_m1(cfg, target_mean=mean, target_std=std),
            opts.lr_m1,
            [(data.spectra, spectra)],
            labels,
        )
        m1 = _load(root / "m1" / "best.keras", compile=False)
        paths["spectra-only"] = final / "spectra-only.keras"
        m1.save(paths["spectra-only"])
        metrics["spectra-only"] = regression_metrics(
            _predict(m1, data.spectra, split.test, spectra, bs), test_labels
        )
    if spectra_only:
        _atomic_json(root / "metrics.json", metrics)
        yield finished()
        return
    if data.spectra is not None:
        m1_features = _cached_features(
            root / "features_m1.npy",
            lambda: _predict(
                feature_extractor(m1, SPECTRAL_FEATURE_LAYER),
                data.spectra,
                all_rows,
                spectra,
                bs,
            ),
        )
        yield from stage(
            "m2", lambda: build_m2(cfg), opts.lr_m2, [(data.cutouts, images)], m1_features
        )
        m2 = _load(root / "m2" / "best.keras", compile=False)

    yield from stage(
        "m3",
        lambda: build_m3(cfg, target_mean=mean, target_std=std),
        opts.lr_m3,
        [(data.cutouts, images)],
        labels,
    )
    m3 = _load(root / "m3" / "best.keras", compile=False)
    paths["image-only"] = final / "image-only.keras"
    m3.save(paths["image-only"])
    metrics["image-only"] = regression_metrics(
        _predict(m3, data.cutouts, split.test, images, bs), test_labels
    )

    if data.spectra is not None:
        m2_features = _cached_features(
            root / "features_m2.npy", lambda: _predict(m2, data.cutouts, all_rows, images, bs)
        )
        m3_features = _cached_features(
            root / "features_m3.npy",
            lambda: _predict(
                feature_extractor(m3, IMAGE_FEATURE_LAYER), data.cutouts, all_rows, images, bs
            ),
        )
        r2_mean, r2_weighted = _feature_r2(m2_features[split.test], m1_features[split.test])
        metrics["m2_feature_r2_mean"] = r2_mean
        metrics["m2_feature_r2_weighted"] = r2_weighted
        yield from stage(
            "m4",
            lambda: build_m4(cfg, target_mean=mean, target_std=std),
            opts.lr_m4,
            [(m2_features, None), (m3_features, None)],
            labels,
        )
        m4 = _load(root / "m4" / "best.keras", compile=False)
        combined = build_mmlforgalam(m2, m3, m4)
        paths["mmlforgalam"] = final / "mmlforgalam.keras"
        combined.save(paths["mmlforgalam"])
        metrics["mmlforgalam"] = regression_metrics(
            _predict(combined, data.cutouts, split.test, images, bs), test_labels
        )
        real = m4.predict_on_batch([m1_features[split.test], m3_features[split.test]])  # one call
        metrics["m4-real-m1-features"] = regression_metrics(np.asarray(real), test_labels)
    _atomic_json(root / "metrics.json", metrics)
    yield finished()


def _run_to_end(iterator: Iterator[Any]) -> TrainingResult:
    last = None
    for item in iterator:
        last = item
    if not isinstance(last, TrainingResult):  # pragma: no cover - defensive
        raise RuntimeError("training ended without a result")
    return last


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
    return _run_to_end(
        iter_train_mmlforgalam(
            data,
            workdir,
            config=config,
            settings=settings,
            image_transform=image_transform,
            spectra_only=spectra_only,
        )
    )


def iter_train_sed_cnn(
    data: SpaxelArrays,
    workdir: str | os.PathLike,
    *,
    split: str = "B",
    config: ArchitectureConfig | str = "compact",
    settings: TrainingSettings | None = None,
) -> Iterator[TrainingProgress | TrainingResult]:
    """Train the age and the [M/H] SED CNNs on Set A or Set B; yield progress, then the result.

    Parameters
    ----------
    data : SpaxelArrays
    workdir : path
        Checkpoints (``sed_log_age/``, ``sed_mh/``) and ``final/sed-cnn.keras`` (the two
        networks side by side, output (batch, 2)).
    split : {"A", "B"}
        Set A: spaxels of each galaxy spread over the subsets; Set B: galaxies held out.
    config, settings
        As for :func:`iter_train_mmlforgalam`; the SED CNN is the same in both configs.
    """
    cfg = get_config(config)
    opts = settings or TrainingSettings()
    if split not in ("A", "B"):
        raise GalamInputError(
            f"SED CNN split must be 'A' (spaxels mixed) or 'B' (galaxies held out), got {split!r}"
        )
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    mixed, jit = _resolve_acceleration(opts)
    splitter = split_spaxels_within_galaxies if split == "A" else split_by_galaxy
    rows = splitter(data.galaxy_id, fractions=opts.fractions, seed=opts.seed)
    seds, valid = normalise_seds(np.asarray(data.seds))
    keep = np.flatnonzero(valid)
    rows = SplitIndices(*(np.intersect1d(r, keep) for r in (rows.train, rows.val, rows.test)))
    n_filters = seds.shape[1]
    targets = {
        "log_age": np.asarray(data.log_age, np.float32)[:, None],
        "mh": np.asarray(data.mh, np.float32)[:, None],
    }
    models = {}
    for target, values in targets.items():
        mean, std = float(values[rows.train].mean()), float(values[rows.train].std())
        name = f"sed_{target}"
        yield from _iter_stage(
            name,
            root,
            lambda mean=mean, std=std, name=name: build_sed_cnn(
                cfg, n_filters=n_filters, target_mean=mean, target_std=std, name=name
            ),
            opts.lr_sed,
            lambda values=values: make_dataset(
                [(seds, None)],
                values,
                rows.train,
                batch_size=opts.batch_size,
                shuffle=True,
                seed=opts.seed,
            ),
            lambda values=values: make_dataset(
                [(seds, None)], values, rows.val, batch_size=opts.batch_size, shuffle=False
            ),
            opts,
            patience=opts.patience_sed,
            mixed=mixed,
            jit=jit,
        )
        models[target] = _load(root / name / "best.keras", compile=False)
    combined = combine_sed_cnns(models["log_age"], models["mh"])
    final = root / "final"
    final.mkdir(exist_ok=True)
    path = final / "sed-cnn.keras"
    combined.save(path)
    truth = np.concatenate([targets["log_age"], targets["mh"]], axis=1)[rows.test]
    metrics = {
        "sed-cnn": regression_metrics(_predict(combined, seds, rows.test, None, 4096), truth),
        "split": split,
    }
    _atomic_json(root / "metrics.json", metrics)
    yield TrainingResult(
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
    return _run_to_end(
        iter_train_sed_cnn(data, workdir, split=split, config=config, settings=settings)
    )


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
        model = _load(path, compile=False)
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
    return cards
