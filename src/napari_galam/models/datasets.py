"""Training data of the models: the HDF5 files ``galam simulate`` writes, splits, batches.

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
spectra stay on disk and are read batch by batch (:func:`make_dataset`); labels are read
into memory. Without spectra only M3 (image-only) trains.

Splits: :func:`split_by_galaxy` (8:1:1 by galaxy, Wang et al. 2025; Set B of Liew-Cain et
al. 2021 when the rows are spaxels) and :func:`split_spaxels_within_galaxies` (Set A).
:func:`label_balance_weights` gives sample weights that flatten the label distribution.
TensorFlow is imported only inside :func:`make_dataset`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.preprocess import normalise_seds, rest_frame_spectra
from napari_galam.errors import GalamInputError

__all__ = [
    "GalaxyArrays",
    "SpaxelArrays",
    "SplitIndices",
    "open_galaxy_hdf5",
    "open_spaxel_hdf5",
    "dataset_spectra",
    "split_by_galaxy",
    "split_spaxels_within_galaxies",
    "label_balance_weights",
    "take_rows",
    "make_dataset",
]


@dataclass(frozen=True)
class GalaxyArrays:
    """Per-galaxy training data (see the module docstring for the layout).

    ``cutouts`` and ``spectra`` may be numpy arrays or h5py datasets. ``usable`` (one
    flag per row, optional) leaves rows out of the splits, e.g. blended galaxies.
    ``test_rows`` (one flag per row, optional) makes the flagged usable rows the test split
    and keeps them out of training and validation, whatever the split's fractions: a
    family of galaxies held out (``scripts/leave_one_family_out.py``).
    """

    cutouts: Any
    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    galaxy_id: NDArray[np.int64]
    spectra: Any | None = None
    card: dict[str, Any] = field(default_factory=dict)
    usable: NDArray[np.bool_] | None = None
    test_rows: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        n = len(self.log_age)
        for name in ("usable", "test_rows"):
            flags = getattr(self, name)
            if flags is not None and len(flags) != n:
                raise GalamInputError(f"galaxy arrays: {name!r} needs one flag per galaxy")
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
        stop = min(start + 2048, redshift.size)
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


def take_rows(source: Any, rows: NDArray[np.int64]) -> NDArray[Any]:
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
    from napari_galam.models.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()
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
            xs = tuple(fn(take_rows(src, chunk)) for src, fn in transforms)
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
