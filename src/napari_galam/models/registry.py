"""The registry of shipped model weights: Keras files with model cards, checked on load.

Every shipped model is two files in :func:`weights_dir` (``src/napari_galam/models/weights``
unless the environment variable ``NAPARI_GALAM_WEIGHTS_DIR`` points elsewhere):

- ``<name>.keras``: the Keras 3 archive (no pickle inside; loaded with
  ``safe_mode=True``, so no Lambda layers; the project's own layers are registered
  serializable classes from :func:`napari_galam.models.architectures.custom_objects`);
- ``<name>.json``: the model card, a JSON object with at least these keys:

  ``name``; ``file`` (the ``.keras`` file name); ``sha256`` (of that file);
  ``architecture`` (what the network is, e.g. ``"mmlforgalam"``); ``configuration``
  (:meth:`ArchitectureConfig.to_dict`); ``input`` (kind ``"image"``, ``"spectrum"``
  or ``"sed"``, shape, dtype and the preprocessing applied before the model, e.g.
  ``{"kind": "image", "shape": [64, 64, 3], "preprocessing": "preprocess_images(size=64)"}``);
  ``outputs`` (``["log_age", "mh"]``, units); ``training_data`` (the data card and sizes
  of the splits); ``metrics``; ``frameworks`` (versions of TensorFlow, Keras, numpy,
  Python, napari-galam); ``created`` (UTC, ISO 8601).

A per-galaxy model also ships ``<name>.uncertainty.npz``: the variance head of
:mod:`napari_galam.models.uncertainty` named, with its SHA-256, in the card's
``calibration.uncertainty.head``; ``calibration.ood`` holds the thresholds of the
out-of-distribution flag. :func:`load_model` refuses a card without
``calibration.uncertainty`` (:func:`check_calibration`).

Names in use: ``"mmlforgalam"``, ``"image-only"``, ``"spectra-only"`` (per galaxy) and
``"sed-cnn"`` (per spaxel). Loading checks the file's SHA-256 against the card, so a
changed, truncated or replaced file fails with :class:`~napari_galam.errors.GalamError`
before any of it is deserialised. Loaded models are cached per (file, hash); a cached
model is returned without re-hashing while the file's size, mtime and inode are
unchanged.
TensorFlow is imported only inside :func:`load_model` and :func:`save_model_with_card`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from napari_galam.errors import GalamError, GalamInputError

__all__ = [
    "WEIGHTS_DIR_ENV",
    "MODEL_NAMES",
    "weights_dir",
    "available_models",
    "read_model_card",
    "spectrum_frame",
    "training_redshift_range",
    "gradient_model_sd",
    "interval_95",
    "interval_95_keywords",
    "interval_95_note",
    "write_card_section",
    "check_calibration",
    "install_uncertainty",
    "load_uncertainty_head",
    "ood_settings",
    "file_sha256",
    "load_model",
    "save_model_with_card",
    "clear_model_cache",
]

#: Environment variable that overrides where weights are looked for (tests, user models).
WEIGHTS_DIR_ENV = "NAPARI_GALAM_WEIGHTS_DIR"
#: The model names the rest of the project asks for.
MODEL_NAMES: tuple[str, ...] = (
    "mmlforgalam", "image-only", "spectra-only", "sed-cnn", "spaxel-spectra",
)  # fmt: skip

_CACHE: dict[tuple[str, str], Any] = {}
_VERIFIED: dict[tuple[Any, ...], Any] = {}
_CACHE_LOCK = threading.Lock()


def weights_dir() -> Path:
    """Folder holding ``<name>.keras`` + ``<name>.json`` pairs."""
    override = os.environ.get(WEIGHTS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "weights"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise GalamInputError(
            f"model name {name!r} is not a valid name (letters, digits, '-', '_')"
        )


def available_models(directory: str | os.PathLike | None = None) -> list[str]:
    """Names of the models that have both a card and a weights file, sorted."""
    folder = Path(directory) if directory is not None else weights_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.keras").is_file())


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unknown_model(name: str, folder: Path) -> GalamError:
    names = available_models(folder)
    listing = ", ".join(names) if names else "none (no weights shipped in this folder)"
    return GalamError(f"no model named {name!r} in {folder}; available models: {listing}")


def read_model_card(name: str, *, directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read and check the model card ``<name>.json`` (no TensorFlow needed).

    Raises
    ------
    GalamError
        If there is no such model, or the card is not a JSON object with the keys
        ``name``, ``file`` and ``sha256``.
    """
    _check_name(name)
    folder = Path(directory) if directory is not None else weights_dir()
    card_path = folder / f"{name}.json"
    if not card_path.is_file() or not (folder / f"{name}.keras").is_file():
        raise _unknown_model(name, folder)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GalamError(f"model card {card_path} is not readable JSON: {exc}") from None
    if not isinstance(card, dict):
        raise GalamError(f"model card {card_path} is not a JSON object")
    missing = [key for key in ("name", "file", "sha256") if key not in card]
    if missing:
        raise GalamError(f"model card {card_path} lacks the keys {missing}")
    if card["file"] != f"{name}.keras":
        raise GalamError(
            f"model card {card_path} describes {card['file']!r}, not {name}.keras; the card and "
            "the weights do not belong together"
        )
    return card


def load_model(
    name: str,
    *,
    directory: str | os.PathLike | None = None,
    require_calibration: bool = True,
) -> Any:
    """Load a shipped model by name, after checking its file against its model card.

    Parameters
    ----------
    name : str
        One of :func:`available_models`.
    directory : path, optional
        Weights folder; :func:`weights_dir` by default.
    require_calibration : bool
        Refuse a card without ``calibration.uncertainty`` (False only for the script
        that calibrates it).

    Returns
    -------
    keras.Model
        Loaded with ``safe_mode=True`` and without its optimizer; cached, so a second
        call returns the same object.

    Raises
    ------
    GalamError
        Unknown name (the message lists the available ones), a card without a calibrated
        uncertainty (:func:`check_calibration`), a file whose SHA-256 differs from the
        card (changed or replaced), or a file that is not a Keras model.
    """
    card = read_model_card(name, directory=directory)
    folder = Path(directory) if directory is not None else weights_dir()
    if require_calibration:
        check_calibration(card, folder / f"{name}.json")
    path = folder / card["file"]
    info = path.stat()
    # A warm model is returned without re-hashing while the file's identity (size,
    # mtime, inode) and the card's hash are unchanged; any change re-checks the hash.
    fast_key = (str(path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino, card["sha256"])
    with _CACHE_LOCK:
        if fast_key in _VERIFIED:
            return _VERIFIED[fast_key]
    actual = file_sha256(path)
    if actual != card["sha256"]:
        raise GalamError(
            f"weights file {path} does not match its model card: sha256 {actual[:16]}... "
            f"instead of {str(card['sha256'])[:16]}...; the file was changed or replaced. "
            "Reinstall napari-galam or re-save the model with save_model_with_card."
        )
    key = (str(path.resolve()), actual)
    with _CACHE_LOCK:
        if key in _CACHE:
            _VERIFIED[fast_key] = _CACHE[key]
            return _CACHE[key]
    from napari_galam.models.tensorflow_runtime import import_tensorflow

    import_tensorflow()
    import keras

    from napari_galam.models.architectures import custom_objects

    try:
        model = keras.saving.load_model(
            path, custom_objects=custom_objects(), compile=False, safe_mode=True
        )
    except Exception as exc:  # noqa: BLE001 - any failure means "not a model we can load"
        raise GalamError(
            f"weights file {path} could not be loaded as a Keras model "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no details'}); "
            "it is not a napari-galam model file"
        ) from None
    with _CACHE_LOCK:
        _CACHE[key] = model
        _VERIFIED[fast_key] = model
    return model


def clear_model_cache() -> None:
    """Forget every loaded model (tests; freeing memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _VERIFIED.clear()
        _HEADS.clear()


def _framework_versions() -> dict[str, str]:
    from napari_galam.models.tensorflow_runtime import import_tensorflow

    import_tensorflow()
    import keras
    import numpy
    import tensorflow as tf

    from napari_galam import __version__

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "napari_galam": __version__,
    }


def save_model_with_card(
    model: Any,
    name: str,
    *,
    architecture: str,
    configuration: dict[str, Any],
    input_spec: dict[str, Any],
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
    notes: str = "",
    directory: str | os.PathLike | None = None,
) -> Path:
    """Write ``<name>.keras`` and its model card ``<name>.json``, each atomically.

    Both files are first written under temporary names in the target folder and then
    moved into place with :func:`os.replace` (weights first, then the card), so a reader
    never sees a half-written file; a crash between the two moves leaves a card whose
    hash does not match, which :func:`load_model` reports instead of loading.

    Parameters
    ----------
    model : keras.Model
        The model to save (without Lambda layers).
    name : str
        Registry name, e.g. ``"mmlforgalam"``.
    architecture : str
        What the network is (``"mmlforgalam"``, ``"m3"``, ``"m1"``, ``"sed-cnn"``...).
    configuration : dict
        :meth:`ArchitectureConfig.to_dict` plus anything else needed to rebuild it.
    input_spec : dict
        ``kind``, ``shape``, ``dtype``, ``preprocessing`` (see the module docstring).
    training_data, metrics : dict, optional
        Data card with split sizes; evaluation metrics.
    outputs : list of str, optional
        Output columns, ``["log_age", "mh"]`` by default.
    notes : str
        Free text.
    directory : path, optional
        Target folder; :func:`weights_dir` by default.

    Returns
    -------
    Path
        The card's path.
    """
    _check_name(name)
    folder = Path(directory) if directory is not None else weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / f"{name}.keras"
    card_path = folder / f"{name}.json"
    handle, tmp_weights = tempfile.mkstemp(prefix=f".{name}-", suffix=".keras", dir=folder)
    os.close(handle)
    tmp_card = None
    try:
        model.save(tmp_weights, overwrite=True)
        card = {
            "name": name,
            "file": weights_path.name,
            "sha256": file_sha256(tmp_weights),
            "size_bytes": os.path.getsize(tmp_weights),
            "architecture": architecture,
            "configuration": configuration,
            "input": input_spec,
            **_card_provenance(model, outputs, training_data, metrics),
            "notes": notes,
        }
        tmp_card = _write_card_file(card, folder, name)
        for tmp in (tmp_weights, tmp_card):
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; shipped files are world-readable
        os.replace(tmp_weights, weights_path)
        os.replace(tmp_card, card_path)
    finally:
        for leftover in (tmp_weights, tmp_card):
            if leftover is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
    return card_path


def _card_provenance(
    model: Any,
    outputs: list[str] | None,
    training_data: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
) -> dict[str, Any]:
    """The card's outputs, training data, metrics, size, framework versions and date."""
    return {
        "outputs": outputs or ["log_age", "mh"],
        "output_units": {"log_age": "log10(age / yr)", "mh": "dex ([M/H])"},
        "training_data": training_data or {},
        "metrics": metrics or {},
        "n_parameters": int(model.count_params()),
        "frameworks": _framework_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _write_card_file(card: dict[str, Any], folder: Path, name: str) -> str:
    """Write ``card`` as sorted, indented JSON to a new temporary file in ``folder``."""
    handle, tmp_card = tempfile.mkstemp(prefix=f".{name}-", suffix=".json", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(card, out, indent=2, sort_keys=True)
        out.write("\n")
    return tmp_card


def spectrum_frame(
    name: str = "spectra-only", *, directory: str | os.PathLike | None = None
) -> str:
    """``"observed"`` or ``"rest"``: the spectrum frame model ``name`` reads (its card).

    Reads only the JSON card, so the napari process may call it to prepare inputs
    (:func:`napari_galam.core.preprocess.model_spectrum`) without TensorFlow. Cards
    without ``input.frame`` (older ones) mean the paper's observed frame.
    """
    entry = read_model_card(name, directory=directory).get("input", {})
    frame = entry.get("frame", "observed") if isinstance(entry, dict) else "observed"
    if frame not in ("observed", "rest"):
        raise GalamInputError(f"model card of {name!r}: unknown spectrum frame {frame!r}")
    return str(frame)


def training_redshift_range(
    name: str = "spectra-only", *, directory: str | os.PathLike | None = None
) -> tuple[float, float] | None:
    """The redshifts model ``name`` was trained on, from its card, or None if unrecorded.

    Read from ``training_data.parameter_ranges.redshift`` (the data card of
    :mod:`napari_galam.simulate.datasets` carries it; ``galam train`` copies it into the
    model card). Reads only the JSON card, like :func:`spectrum_frame`.
    """
    ranges = read_model_card(name, directory=directory).get("training_data", {})
    ranges = ranges.get("parameter_ranges") if isinstance(ranges, dict) else None
    if isinstance(ranges, str):  # HDF5 attributes keep nested dicts as JSON text
        try:
            ranges = json.loads(ranges)
        except ValueError:
            return None
    bounds = ranges.get("redshift") if isinstance(ranges, dict) else None
    try:
        low, high = (float(v) for v in bounds)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (low, high) if low < high else None


def gradient_model_sd(
    name: str, *, directory: str | os.PathLike | None = None
) -> dict[str, float] | None:
    """The model's own error on a radial gradient, in dex/R_e, from its card, or None.

    Read from ``calibration.gradient`` (``{"log_age": sd, "mh": sd, ...}``), written by
    ``scripts/calibrate_gradient_errors.py`` from maps of simulated cubes the model never
    saw. Reads only the JSON card. None when the card has no such calibration (maps of
    that model then get statistical gradient errors only, and say so).
    """
    section = read_model_card(name, directory=directory).get("calibration", {})
    gradient = section.get("gradient") if isinstance(section, dict) else None
    if not isinstance(gradient, dict):
        return None
    try:
        values = {key: float(gradient[key]) for key in ("log_age", "mh")}
    except (KeyError, TypeError, ValueError):
        return None
    if not all(np.isfinite(v) and v >= 0 for v in values.values()):
        raise GalamError(
            f"model card of {name}: calibration.gradient holds {values}; expected errors >= 0"
        )
    return values


def write_card_section(
    name: str, key: str, value: Any, *, directory: str | os.PathLike | None = None
) -> Path:
    """Set ``card[key] = value`` in model ``name``'s card, atomically; return its path.

    For what is measured after training (calibrations): the weights and their hash stay.
    """
    card = read_model_card(name, directory=directory)
    folder = Path(directory) if directory is not None else weights_dir()
    card[key] = value
    tmp = _write_card_file(card, folder, name)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; shipped files are world-readable
    os.replace(tmp, folder / f"{name}.json")
    return folder / f"{name}.json"


def _calibration_script(card: dict[str, Any]) -> str:
    if card.get("name") == "sed-cnn" or card.get("architecture") == "sed-cnn":
        return "scripts/calibrate_sed_uncertainty.py"
    return "scripts/calibrate_galaxy_uncertainty.py"


def check_calibration(card: dict[str, Any], card_path: str | os.PathLike) -> None:
    """Refuse a model card whose predictions would come without a calibrated uncertainty.

    The card must hold ``calibration.uncertainty`` with ``method`` and a positive, finite
    ``scale`` for ``log_age`` and ``mh`` (written by
    ``scripts/calibrate_galaxy_uncertainty.py``, ``scripts/calibrate_sed_uncertainty.py``
    or by training).

    Raises
    ------
    GalamError
        Naming the card and what is missing.
    """
    section = card.get("calibration")
    entry = section.get("uncertainty") if isinstance(section, dict) else None
    if not isinstance(entry, dict):
        raise GalamError(
            f"model card {card_path} has no calibration.uncertainty: its predictions would "
            f"come without a calibrated error. Calibrate it ({_calibration_script(card)}) "
            "or reinstall napari-galam."
        )
    missing = [key for key in ("method", "log_age", "mh") if key not in entry]
    scales = []
    for key in ("log_age", "mh"):
        try:
            scales.append(float(entry[key]["scale"]))
        except (KeyError, TypeError, ValueError):
            missing.append(f"{key}.scale")
    if missing or not all(np.isfinite(v) and v > 0 for v in scales):
        raise GalamError(
            f"model card {card_path}: calibration.uncertainty lacks {missing or 'nothing'} "
            f"or holds scales {scales}; expected a method and positive log_age/mh scales"
        )
    from napari_galam.models.uncertainty import interval_95_factors

    interval_95_factors(entry, f"model card {card_path}: calibration.uncertainty")
    if "cube" in entry:  # the spectral model's terms for cubes, checked like the rest
        from napari_galam.models.cube_calibration import cube_terms_for

        cube_terms_for(entry, str(card_path))


def interval_95(
    name: str,
    *,
    cube: bool = False,
    layout: str | None = None,
    directory: str | os.PathLike | None = None,
) -> np.ndarray:
    """Half-width of model ``name``'s 95% intervals in its 1-sigma errors: ``(log age, [M/H])``.

    From the card's calibration (``calibration.uncertainty.<quantity>.z95``; for the
    spaxels of a cube (``cube``) mapped by a model with cube terms, those of the cube's
    ``layout``, or the pooled ones); 1.96 where the card gives none. The interval
    ``value +- z95 * error`` is what the coverage tables call the 95% interval. Reads
    only the JSON card.
    """
    from napari_galam.models.uncertainty import interval_95_factors

    card = read_model_card(name, directory=directory)
    section = card.get("calibration", {})
    entry = section.get("uncertainty") if isinstance(section, dict) else None
    if not isinstance(entry, dict):
        return interval_95_factors(None, name)
    if cube and "cube" in entry:
        from napari_galam.models.cube_calibration import cube_terms_for

        return np.asarray(cube_terms_for(entry, name, layout).z95, np.float64)
    return interval_95_factors(entry, f"model card of {name}: calibration.uncertainty")


def install_uncertainty(
    name: str,
    uncertainty: dict[str, Any],
    ood: dict[str, Any],
    head_file: str | os.PathLike | None,
    *,
    directory: str | os.PathLike | None = None,
) -> Path:
    """Ship a calibration: copy the head beside the weights and write the card's sections.

    ``head_file`` (a :class:`~napari_galam.models.uncertainty.VarianceHead` ``.npz``) is
    copied to ``<name>.uncertainty.npz`` in the weights folder and its SHA-256 written to
    ``uncertainty["head"]``; ``calibration.uncertainty`` and ``calibration.ood`` are set
    in the card and every other ``calibration`` entry (e.g. ``gradient``) is kept.
    """
    import shutil

    card = read_model_card(name, directory=directory)
    folder = Path(directory) if directory is not None else weights_dir()
    entry = dict(uncertainty)
    if head_file is not None:
        target = folder / f"{name}.uncertainty.npz"
        if Path(head_file).resolve() != target.resolve():
            tmp = folder / f".tmp-{target.name}"
            shutil.copyfile(head_file, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        entry["head"] = {
            **dict(entry.get("head", {})),
            "file": target.name,
            "sha256": file_sha256(target),
        }
    calibration = dict(card.get("calibration") or {})
    calibration["uncertainty"] = entry
    calibration["ood"] = dict(ood)
    return write_card_section(name, "calibration", calibration, directory=directory)


_HEADS: dict[tuple[str, str], Any] = {}


def load_uncertainty_head(name: str, *, directory: str | os.PathLike | None = None) -> Any:
    """The model's :class:`~napari_galam.models.uncertainty.VarianceHead`, hash-checked.

    Raises
    ------
    GalamError
        The card names no head file, the file is missing or its SHA-256 differs from the
        card's, or it is not a head.
    """
    from napari_galam.models.uncertainty import VarianceHead

    card = read_model_card(name, directory=directory)
    folder = Path(directory) if directory is not None else weights_dir()
    check_calibration(card, folder / f"{name}.json")
    head = card["calibration"]["uncertainty"].get("head")
    if not isinstance(head, dict) or "file" not in head or "sha256" not in head:
        raise GalamError(f"model card {folder / name}.json names no uncertainty head file")
    _check_name(Path(str(head["file"])).stem)
    path = folder / Path(str(head["file"])).name
    if not path.is_file():
        raise GalamError(f"uncertainty head {path} of model {name!r} is missing")
    actual = file_sha256(path)
    if actual != head["sha256"]:
        raise GalamError(
            f"uncertainty head {path} does not match its model card (sha256 {actual[:16]}... "
            f"instead of {str(head['sha256'])[:16]}...); it was changed or replaced"
        )
    key = (str(path.resolve()), actual)
    with _CACHE_LOCK:
        if key not in _HEADS:
            _HEADS[key] = VarianceHead.load(path)
        return _HEADS[key]


def ood_settings(name: str, *, directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The card's ``calibration.ood`` (thresholds of the out-of-distribution flag), or {}."""
    section = read_model_card(name, directory=directory).get("calibration")
    ood = section.get("ood") if isinstance(section, dict) else None
    return dict(ood) if isinstance(ood, dict) else {}


def interval_95_keywords(name: str, layout: str | None = None) -> dict[str, float]:
    """FITS keywords of maps made by model ``name`` from a cube of ``layout``.

    ``Z95AGE`` and ``Z95MH``: the 95% interval of a spaxel is its value +- this many times
    its ``LOG_AGE_ERR`` / ``MH_ERR`` (:func:`interval_95`); none for an unknown model.
    """
    if name not in available_models():
        return {}
    z95 = interval_95(name, cube=True, layout=layout)
    return {"Z95AGE": round(float(z95[0]), 4), "Z95MH": round(float(z95[1]), 4)}


def interval_95_note(models: Any) -> dict[str, Any]:
    """A prediction table's ``interval_95`` metadata: each model's 95% interval.

    ``value +- z95 * err`` holds the truth 95% of the time on unseen simulated galaxies
    (:func:`interval_95`); the ``*_err`` columns are 1-sigma (68%) errors. ``models``
    are the table's model names; unknown ones (a failed row's "") are left out.
    """
    known = set(available_models())
    names = sorted({str(m) for m in models} & known)
    return {
        "meaning": "log_age_err and mh_err are 1-sigma (68%) errors; the 95% interval is "
        "value +- z95 * err with each model's z95 below (from its model card)",
        "z95": {
            name: dict(zip(("log_age", "mh"), map(float, interval_95(name)), strict=True))
            for name in names
        },
    }
