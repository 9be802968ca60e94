"""Batched inference with the shipped models: per galaxy and per spaxel.

These functions import TensorFlow (through :func:`napari_galam.models.registry.load_model`)
the first time a model is needed, so they are meant to run in the model worker process
(:class:`napari_galam.models.worker.ModelWorker`) or in any process without a napari
viewer (command line, Dask workers, tests marked ``tensorflow``). The result classes
are plain frozen dataclasses of numpy arrays, importable and unpicklable without
TensorFlow.

- Per galaxy (Wang et al. 2025): gri cutouts ``(n, 128, 128, 3)`` ``uint8`` ->
  :func:`~napari_galam.core.preprocess.preprocess_images` at the model's input size ->
  ``mmlforgalam`` (M2 + M3 -> M4) or ``image-only`` (M3); or spectra ``(n, 4171)`` on
  the 1 Å 3830-8000 Å grid -> min-max -> ``spectra-only`` (M1). ``model="auto"`` picks
  the spectra-only model when spectra are given (the paper's recommendation: its SD is
  the lowest) and MMLforGalAM otherwise.
- Per spaxel (Liew-Cain et al. 2021): SEDs ``(..., n_filters)`` ->
  :func:`~napari_galam.core.preprocess.normalise_seds` -> ``sed-cnn`` -> maps of log
  age and [M/H] with the leading shape of the input; unusable spaxels are NaN.

Batches are padded to the next power of two (at most ``batch_size``) so that the
compiled prediction function is traced for a handful of shapes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.preprocess import normalise_seds, preprocess_images, preprocess_spectra
from napari_galam.errors import GalamInputError
from napari_galam.models.galaxy_uncertainty import feature_model, head_inputs, ood_reasons
from napari_galam.models.registry import (
    load_model,
    load_uncertainty_head,
    ood_settings,
    read_model_card,
    spectrum_frame,
)

__all__ = [
    "GALAXY_MODELS",
    "SED_MODEL",
    "GalaxyPrediction",
    "SpaxelPrediction",
    "resolve_galaxy_model",
    "model_input_spec",
    "predict_batches",
    "predict_galaxies",
    "spectrum_frame",
    "predict_seds",
    "SPECTRA_MODEL",
    "predict_spectra",
]

#: Per-galaxy model names accepted by :func:`predict_galaxies` (besides ``"auto"``).
GALAXY_MODELS: tuple[str, ...] = ("mmlforgalam", "image-only", "spectra-only")
#: Registry name of the per-spaxel model.
SED_MODEL = "sed-cnn"
#: The per-spaxel errors are kept within this range (dex): 5 dex says "no information".
SED_ERROR_RANGE = (1e-4, 5.0)


@dataclass(frozen=True)
class GalaxyPrediction:
    """Per-galaxy predictions: one value per input galaxy, in input order.

    ``log_age_err`` and ``mh_err`` are calibrated 1-sigma errors (finite and positive
    wherever a value is); ``ood`` marks inputs outside what the model was trained on and
    ``ood_reason`` says why ("" when not flagged). A flagged value is still given.
    """

    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    model: str
    log_age_err: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    mh_err: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    ood: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    ood_reason: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.log_age.size)


@dataclass(frozen=True)
class SpaxelPrediction:
    """Per-spaxel maps with the leading shape of the input SEDs; NaN where not ``valid``.

    Attributes
    ----------
    log_age, mh
        The predictions (log10(age/yr), dex).
    valid
        Where an SED was usable (a value exists).
    model
        The model's name.
    log_age_err, mh_err
        Calibrated 1-sigma errors (dex), finite and positive wherever a value exists.
    ood
        True where the SED lies outside the training data (the value is still given).
    ood_reason
        Why, as bits of :mod:`napari_galam.models.sed_uncertainty` (``OOD_LOW_SNR``,
        ``OOD_SHAPE``, ``OOD_BAD_FLUX``; ``describe_ood`` spells them out); 0 in range.
    """

    log_age: NDArray[np.float32]
    mh: NDArray[np.float32]
    valid: NDArray[np.bool_]
    model: str
    log_age_err: NDArray[np.float32] | None = None
    mh_err: NDArray[np.float32] | None = None
    ood: NDArray[np.bool_] | None = None
    ood_reason: NDArray[np.uint8] | None = None


def resolve_galaxy_model(model: str, *, have_images: bool, have_spectra: bool) -> str:
    """Turn ``"auto"`` or a model name into the registry name to use, checking inputs."""
    if model == "auto":
        if have_spectra:
            return "spectra-only"
        if have_images:
            return "mmlforgalam"
        raise GalamInputError("predict_galaxies: give images, spectra or both")
    if model not in GALAXY_MODELS:
        raise GalamInputError(
            f"predict_galaxies: unknown model {model!r}; use 'auto' or one of {', '.join(GALAXY_MODELS)}"
        )
    if model == "spectra-only" and not have_spectra:
        raise GalamInputError("predict_galaxies: model 'spectra-only' needs spectra")
    if model != "spectra-only" and not have_images:
        raise GalamInputError(f"predict_galaxies: model {model!r} needs images (n, 128, 128, 3)")
    return model


def model_input_spec(name: str, configuration: dict[str, Any]) -> dict[str, Any]:
    """The ``input`` entry of a model card: kind, shape, dtype and preprocessing.

    Parameters
    ----------
    name : str
        Registry name (``"mmlforgalam"``, ``"image-only"``, ``"spectra-only"``,
        ``"sed-cnn"``).
    configuration : dict
        :meth:`~napari_galam.models.architectures.ArchitectureConfig.to_dict` (for
        ``"sed-cnn"`` with ``sed_n_filters`` set to the trained number of filters and
        ``sed_filters`` to their names, which become ``input.filters``).
    """
    if name in ("mmlforgalam", "image-only"):
        size = int(configuration["image_size"])
        return {
            "kind": "image",
            "shape": [size, size, 3],
            "dtype": "float32",
            "raw_input": "uint8 gri cutouts (n, 128, 128, 3), i->R r->G g->B, masked and cropped",
            "preprocessing": f"napari_galam.core.preprocess.preprocess_images(size={size}): /255, {128 // size}x{128 // size} block mean",
        }
    if name == "spectra-only":
        frame = configuration.get("spectrum_frame", "observed")
        rest = frame == "rest"
        return {
            "kind": "spectrum",
            "frame": frame,
            "shape": [int(configuration["n_spectrum_points"])],
            "dtype": "float32",
            "raw_input": "observed spectrum (any flux unit) and the galaxy's redshift"
            if rest
            else "observed-frame spectrum, any flux unit",
            "preprocessing": "napari_galam.core.preprocess.rest_frame_spectrum: wavelengths / (1 + z), linear onto 1 A grid 3800-7000 A, min-max to [0, 1]"
            if rest
            else "napari_galam.core.preprocess.preprocess_spectrum: linear onto 1 A grid 3830-8000 A, min-max to [0, 1]",
        }
    if name == SED_MODEL:
        return {
            "kind": "sed",
            "filters": list(configuration.get("sed_filters", [])),
            "shape": [int(configuration["sed_n_filters"])],
            "dtype": "float32",
            "raw_input": "linear fluxes per narrow-band filter (..., n_filters)",
            "preprocessing": "napari_galam.core.preprocess.normalise_seds: divide by the mean flux over filters",
        }
    raise GalamInputError(f"no input specification for model {name!r}")


def _bucket(n: int, batch_size: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return min(size, batch_size)


def predict_batches(
    model: Any, inputs: NDArray[Any], *, batch_size: int = 256
) -> NDArray[np.float32]:
    """Run ``model`` over ``inputs`` in batches; return the stacked float32 outputs.

    The last (or only) batch is zero-padded to a power of two so repeated calls with
    different sizes reuse a few compiled shapes; padded rows are dropped.
    """
    data = np.asarray(inputs, dtype=np.float32)
    n = data.shape[0]
    if n == 0:
        out_shape = tuple(int(d) for d in model.outputs[0].shape[1:])
        return np.zeros((0, *out_shape), dtype=np.float32)
    outputs = []
    for start in range(0, n, batch_size):
        chunk = data[start : start + batch_size]
        size = _bucket(chunk.shape[0], batch_size)
        if size != chunk.shape[0]:
            pad = np.zeros((size - chunk.shape[0], *chunk.shape[1:]), dtype=np.float32)
            chunk_in = np.concatenate([chunk, pad], axis=0)
        else:
            chunk_in = chunk
        result = np.asarray(model.predict_on_batch(chunk_in), dtype=np.float32)
        outputs.append(result[: chunk.shape[0]])
    return np.concatenate(outputs, axis=0)


def _input_shape(name: str) -> tuple[int, ...]:
    card = read_model_card(name)
    try:
        return tuple(int(v) for v in card["input"]["shape"])
    except (KeyError, TypeError, ValueError):
        raise GalamInputError(f"model card of {name!r} has no usable input shape") from None


def predict_galaxies(
    images: NDArray[Any] | None = None,
    spectra: NDArray[Any] | None = None,
    *,
    model: str = "auto",
    batch_size: int = 256,
    redshift: Any = None,
    problems: Any = None,
) -> GalaxyPrediction:
    """Predict log age and [M/H] for a batch of galaxies.

    Parameters
    ----------
    images : (n, 128, 128, 3) uint8 array, optional
        gri cutouts after masking and cropping (one galaxy per cutout).
    spectra : (n, m) array or sequence of spectra, optional
        Spectra on the grid of the spectra-only model's frame (:func:`spectrum_frame`):
        ``model_spectrum(wave, flux, redshift=z, frame=spectrum_frame())`` of
        :mod:`napari_galam.core.preprocess` makes them (rest frame: 3201 points over
        3800-7000 Å; observed: 4171 over 3830-8000 Å). A list of spectrum objects
        (``specutils.Spectrum`` with its ``redshift``, ``SdssSpectrum``, ``Spectrum1D``)
        is prepared here (:func:`napari_galam.io.specutils_bridge.spectra_model_inputs`).
    model : str
        ``"auto"``, ``"mmlforgalam"``, ``"image-only"`` or ``"spectra-only"``.
    batch_size : int
        Largest batch handed to the model.
    redshift : sequence of float, optional
        The galaxies' redshifts (NaN: unknown), checked against the training range.
    problems : sequence of (str or list of str), optional
        Reasons the caller found per galaxy (e.g. :mod:`napari_galam.io.quality`, a QA
        warning); they flag the prediction as out of distribution too.

    Returns
    -------
    GalaxyPrediction
        With calibrated 1-sigma errors and the out-of-distribution flag
        (:mod:`napari_galam.models.galaxy_uncertainty`).
    """
    if spectra is not None and not isinstance(spectra, np.ndarray):
        if redshift is None:
            redshift = [float(getattr(s, "redshift", np.nan)) for s in spectra]
        from napari_galam.io.specutils_bridge import spectra_model_inputs

        spectra = spectra_model_inputs(list(spectra), frame=spectrum_frame("spectra-only"))
    name = resolve_galaxy_model(
        model, have_images=images is not None, have_spectra=spectra is not None
    )
    if images is not None and spectra is not None and len(images) != len(spectra):
        raise GalamInputError(
            f"predict_galaxies: {len(images)} images but {len(spectra)} spectra; give one of each per galaxy"
        )
    shape = _input_shape(name)
    if name == "spectra-only":
        x = preprocess_spectra(spectra, frame=spectrum_frame(name))
        if x.shape[1:] != shape:
            raise GalamInputError(
                f"model {name!r} expects spectra of shape {shape}, got {x.shape[1:]}"
            )
    else:
        x = preprocess_images(images, size=shape[0])
    keras_model = load_model(name)
    head = load_uncertainty_head(name)
    out = predict_batches(feature_model(name, keras_model), x, batch_size=batch_size)
    features = head_inputs(name, out[:, :-2], x)
    sigma = head.sigma(features).astype(np.float32)
    reasons = ood_reasons(
        name,
        x,
        head.distance(features),
        ood_settings(name),
        raw=spectra if name == "spectra-only" else None,
        redshift=redshift,
    )
    for i, extra in enumerate(problems if problems is not None else []):
        if i < len(reasons) and extra:
            reasons[i].extend([extra] if isinstance(extra, str) else list(extra))
    return GalaxyPrediction(
        log_age=out[:, -2].copy(),
        mh=out[:, -1].copy(),
        model=name,
        log_age_err=sigma[:, 0].copy(),
        mh_err=sigma[:, 1].copy(),
        ood=np.array([bool(r) for r in reasons], dtype=bool),
        ood_reason=tuple("; ".join(r) for r in reasons),
    )


def predict_seds(
    seds: NDArray[Any], *, snr: NDArray[Any] | None = None, batch_size: int = 65536
) -> SpaxelPrediction:
    """Predict log age and [M/H], their errors and an out-of-distribution flag per spaxel.

    Parameters
    ----------
    seds : (..., n_filters) array
        Linear fluxes through the narrow-band filters the model was trained on
        (``n_filters`` must match its card); any leading shape, e.g. (ny, nx).
    snr : (...) array, optional
        Each SED's median S/N over the filters (the maps' ``SNR``); spaxels below the
        training range are flagged (``OOD_LOW_SNR``), and the card's per-S/N error
        scales apply (``calibration.uncertainty.by_snr_scale``). None: not checked,
        the overall scales apply.
    batch_size : int
        Largest batch handed to the model.

    Returns
    -------
    SpaxelPrediction
        Maps of the leading shape; NaN where an SED is unusable (non-finite or not
        positive on average). Errors are the network's own, scaled by the card's
        ``calibration.uncertainty``; flags follow its ``calibration.ood``.
    """
    from napari_galam.models.sed_uncertainty import (
        OOD_SHAPE,
        bad_flux_codes,
        low_snr_codes,
        mahalanobis_squared,
        sed_calibration,
    )

    data = np.asarray(seds)
    (n_filters,) = _input_shape(SED_MODEL)
    if data.ndim < 1 or data.shape[-1] != n_filters:
        raise GalamInputError(
            f"predict_seds: the model takes {n_filters} filter fluxes per spaxel (last axis), got shape {data.shape}"
        )
    lead = data.shape[:-1]
    if snr is not None and np.shape(snr) != lead:
        raise GalamInputError(
            f"predict_seds: snr has shape {np.shape(snr)}, the SEDs' leading shape is {lead}"
        )
    calibration = sed_calibration(read_model_card(SED_MODEL), SED_MODEL)
    normalised, valid = normalise_seds(data)
    flat = normalised.reshape(-1, n_filters)
    flat_valid = valid.reshape(-1)
    out = np.full((flat.shape[0], 4), np.nan, dtype=np.float32)
    codes = bad_flux_codes(data).reshape(-1)
    if np.any(flat_valid):
        keras_model = load_model(SED_MODEL)
        raw = predict_batches(keras_model, flat[flat_valid], batch_size=batch_size)
        if raw.shape[1] != 4:
            raise GalamInputError(
                f"model {SED_MODEL!r} gives {raw.shape[1]} outputs per spaxel; expected 4 "
                "(log age, [M/H] and their errors): run scripts/calibrate_sed_uncertainty.py"
            )
        rows_snr = None if snr is None else np.asarray(snr, np.float64).reshape(-1)[flat_valid]
        scale = calibration.scales(rows_snr, n=len(raw)).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            sigma = np.nan_to_num(raw[:, 2:] * scale, nan=np.inf)  # an overflow: no information
        raw[:, 2:] = np.clip(sigma, SED_ERROR_RANGE[0], SED_ERROR_RANGE[1])
        out[flat_valid] = raw
        distance = mahalanobis_squared(flat[flat_valid], calibration.mean, calibration.precision)
        codes[flat_valid] |= np.where(distance > calibration.max_distance2, OOD_SHAPE, 0).astype(
            np.uint8
        )
    if snr is not None:
        codes |= low_snr_codes(snr, calibration.min_snr).reshape(-1)
    return SpaxelPrediction(
        log_age=out[:, 0].reshape(lead),
        mh=out[:, 1].reshape(lead),
        valid=valid,
        model=SED_MODEL,
        log_age_err=out[:, 2].reshape(lead),
        mh_err=out[:, 3].reshape(lead),
        ood=(codes > 0).reshape(lead),
        ood_reason=codes.reshape(lead),
    )


#: Registry name of the per-spaxel spectral model.
SPECTRA_MODEL = "spaxel-spectra"
_SPECTRA_FEATURES: dict[int, Any] = {}


def _spectra_feature_model(model: Any) -> Any:
    """``input -> concat(features layer, outputs)`` of the spectral model, cached."""
    key = id(model)
    if key not in _SPECTRA_FEATURES:
        import keras

        joined = keras.layers.Concatenate()([model.get_layer("features").output, model.output])
        _SPECTRA_FEATURES[key] = keras.Model(model.inputs, joined)
    return _SPECTRA_FEATURES[key]


def predict_spectra(
    inputs: NDArray[Any],
    *,
    snr: NDArray[Any] | None = None,
    layout: str | None = None,
    batch_size: int = 4096,
) -> SpaxelPrediction:
    """Per-spaxel log age and [M/H] with calibrated errors from spectra (``spaxel-spectra``).

    Parameters
    ----------
    inputs : (n, n_pixels, 2) array
        :func:`napari_galam.core.spectral_input.spectral_inputs` ``.x``: the rest-frame
        spectra at the common resolution on the model grid and their weights.
    snr : (n,) array, optional
        Median S/N per observed pixel; spaxels below the training range are flagged.
    layout : str, optional
        The cube's instrument layout (``CALIFA``, ``MaNGA``, ``MUSE``), which picks the
        card's cube terms for it (the pooled ones for any other or None).
    batch_size : int
        Largest batch handed to the model.

    Returns
    -------
    SpaxelPrediction
        NaN where a spectrum has no weight at all; errors are the network's own
        (its log-variance output) times the card's ``calibration.uncertainty`` scales,
        with its cube terms where the card has them
        (:mod:`napari_galam.models.cube_calibration`: this model maps cubes);
        ``ood_reason`` bits as for :func:`predict_seds`.
    """
    from napari_galam.models.cube_calibration import cube_terms_for
    from napari_galam.models.sed_uncertainty import OOD_SHAPE, low_snr_codes

    data = np.asarray(inputs, dtype=np.float32)
    shape = _input_shape(SPECTRA_MODEL)
    if data.ndim != 3 or data.shape[1:] != shape:
        raise GalamInputError(
            f"predict_spectra: the model takes spectra of shape (n, {shape[0]}, {shape[1]}) "
            f"(napari_galam.core.spectral_input.spectral_inputs), got {data.shape}"
        )
    card = read_model_card(SPECTRA_MODEL)
    try:
        label_mean = np.asarray(card["configuration"]["label_mean"], np.float32)
        label_sd = np.asarray(card["configuration"]["label_sd"], np.float32)
        unc, ood = card["calibration"]["uncertainty"], card["calibration"]["ood"]
        scale = np.array([unc["log_age"]["scale"], unc["mh"]["scale"]], np.float32)
        terms = cube_terms_for(unc, SPECTRA_MODEL, layout)
        features = ood["features"]
        ref_mean = np.asarray(features["mean"], np.float64)
        precision = np.asarray(features["precision"], np.float64)
        max_distance2, min_snr = float(features["max_distance2"]), float(ood["min_snr"])
    except (KeyError, TypeError, ValueError):
        raise GalamInputError(
            f"model card of {SPECTRA_MODEL!r} lacks its label scaling or calibration; "
            "retrain it with scripts/train_spaxel_spectra.py"
        ) from None
    n = data.shape[0]
    valid = data[:, :, 1].max(axis=1) > 0 if n else np.zeros(0, bool)
    out = np.full((n, 4), np.nan, dtype=np.float32)
    codes = np.zeros(n, dtype=np.uint8)
    if valid.any():
        joined = predict_batches(
            _spectra_feature_model(load_model(SPECTRA_MODEL)), data[valid], batch_size=batch_size
        )
        feats, raw = joined[:, :-4].astype(np.float64), joined[:, -4:]
        out[valid, :2] = raw[:, :2] * label_sd + label_mean
        with np.errstate(over="ignore"):
            sigma = np.exp(0.5 * np.clip(raw[:, 2:], -12.0, 6.0)) * label_sd * scale
        sigma = terms.apply(sigma, None if snr is None else np.asarray(snr).reshape(-1)[valid])
        out[valid, 2:] = np.clip(sigma, SED_ERROR_RANGE[0], SED_ERROR_RANGE[1])
        centred = feats - ref_mean
        distance = np.einsum("ij,jk,ik->i", centred, precision, centred)
        codes[valid] |= np.where(distance > max_distance2, OOD_SHAPE, 0).astype(np.uint8)
    if snr is not None:
        codes |= low_snr_codes(np.asarray(snr).reshape(-1), min_snr).reshape(-1)
    return SpaxelPrediction(
        log_age=out[:, 0],
        mh=out[:, 1],
        valid=valid,
        model=SPECTRA_MODEL,
        log_age_err=out[:, 2],
        mh_err=out[:, 3],
        ood=codes > 0,
        ood_reason=codes,
    )
