"""Keras 3 architectures of the two seed systems, in a paper and a compact configuration.

MMLforGalAM (Wang et al. 2025, Sect. 3), per galaxy:

- **M1**, spectral feature extractor and the *spectra-only* model: a 1-D CNN on the
  4171-point spectrum; four blocks of two ``Conv1D`` (kernel 3, ReLU, L2) with 16, 32, 64
  and 128 filters, max-pooling (size 3, as in the authors' released code) after each
  block; flatten; dense 2048 -> dense 1024 (the *spectral feature*, layer
  ``"spectral_feature"``); linear output (log age, [M/H]).
- **M2**, simulated spectral features: a 2-D CNN on the cutout; four ``Conv2D`` (3 x 3,
  ReLU) with 32, 64, 128, 256 filters, each followed by 2 x 2 max-pooling; flatten; one
  dense layer; a linear 1024-vector (layer ``"simulated_spectral_feature"``) regressed
  on M1's features.
- **M3**, image feature extractor and the *image-only* model: four blocks of three
  ``Conv2D`` (3 x 3, ReLU, L2) with 32, 64, 128, 256 filters and 2 x 2 max-pooling; flatten;
  two dense layers, the last (1024, layer ``"image_feature"``) is the image feature;
  linear output.
- **M4**, multi-modal attention regression: query = spectral features S (from M2),
  key = value = image features I (from M3); linear projections and scaled dot-product
  attention with 8 heads (``keras.layers.MultiHeadAttention``); residual S + attention;
  layer normalisation; dropout; the fused 1024-vector goes through five dense layers to
  a linear output.

Attention over single vectors. S and I are one 1024-vector each per galaxy. Taken as a
single query token and a single key token, the softmax runs over one key and is always
1, so "attention" would reduce to a linear map of I and no weighting would happen at all.
We therefore cut each feature vector into ``m4_tokens`` consecutive chunks (16 tokens of
64 features in the paper configuration) with a plain ``Reshape``: every spectral chunk
queries all 16 image chunks, the 8 heads each look at their own learnt 8-dimensional
projection of the chunks (64 / 8, the d_model / h of Vaswani et al. 2017), and the
softmax weights really choose which parts of the image feature to use. The residual,
layer normalisation (over each token's features) and dropout act on the tokens, which
are flattened back to the 1024-vector fused feature. Chunks rather than 1024 scalar
tokens because scalar tokens give 1024 x 1024 attention maps per head and sample
(about 8 M scores per galaxy) for little gain, and chunks keep the cost negligible.

Liew-Cain et al. 2021 (Sect. 3.1, released code), per spaxel: the SED CNN
``Conv1D(16, k=6, same) -> Conv1D(16, k=8, same) -> MaxPool(8) -> Flatten ->
Dense(40, ReLU) -> linear``, one network for log age and a separate one for [M/H];
:func:`combine_sed_cnns` puts the two side by side in one model with two outputs so
that one call maps a cube.

Choices the papers leave open (documented here, recorded in each model card through
:meth:`ArchitectureConfig.to_dict`): ``"same"`` padding everywhere; He-normal
initialisation of the ReLU layers; L2 factor 1e-4 on
the regularised convolutions; M2's hidden dense layer 1024 wide; M3's first dense layer
2048 wide (mirroring M1); M4's five dense layers 512-256-128-64-32 with ReLU; dropout 0.1.
Every regression model ends with :class:`TargetScaling` (registered, serializable, no
weights) that maps the network's standardised output back to dex with the training
labels' mean and standard deviation, so training starts near the label mean and the
loss is an MSE in dex like the paper's. Output layers are float32 under mixed precision.

Two configurations (:data:`PAPER`, :data:`COMPACT`): ``compact`` keeps every layer type
and the staged structure but uses 64 x 64 images (2 x 2 block means of the 128 x 128
cutouts), half the convolution filters, and 256-wide features (8 tokens of 32 for M4),
so that M1-M4 train together on about 10 000 galaxies on a 2-core CPU in about an hour
(roughly 50 M multiply-adds per galaxy forward for all four models, against about 3 G
for ``paper``).

TensorFlow and Keras are imported inside the functions, never at module import.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from napari_galam.errors import GalamInputError

__all__ = [
    "ArchitectureConfig",
    "PAPER",
    "COMPACT",
    "CONFIGS",
    "get_config",
    "custom_objects",
    "build_m1",
    "build_m2",
    "build_m3",
    "build_m4",
    "build_mmlforgalam",
    "build_sed_cnn",
    "combine_sed_cnns",
    "feature_extractor",
    "SPECTRAL_FEATURE_LAYER",
    "SIMULATED_FEATURE_LAYER",
    "IMAGE_FEATURE_LAYER",
]

SPECTRAL_FEATURE_LAYER = "spectral_feature"
SIMULATED_FEATURE_LAYER = "simulated_spectral_feature"
IMAGE_FEATURE_LAYER = "image_feature"
#: He initialisation for every ReLU layer (Keras's default Glorot lets activations fade
#: through M1's eight and M3's twelve ReLU convolutions; the papers do not say which).
_RELU_INIT = "he_normal"


@dataclass(frozen=True)
class ArchitectureConfig:
    """Sizes of every network; the defaults are the papers' (:data:`PAPER`).

    Attributes
    ----------
    name : str
        ``"paper"``, ``"compact"`` or a custom name (tests use tiny ones).
    n_spectrum_points : int
        Length of M1's input (4171 on the observed 1 Å 3830-8000 Å grid; 3201 on the
        rest-frame 3800-7000 Å grid).
    spectrum_frame : str
        ``"observed"`` (the paper's) or ``"rest"``: which grid M1 reads (see
        :mod:`napari_galam.core.preprocess`); recorded in the model card's input.
    image_size : int
        Side of the square gri input of M2 and M3 (128 in the paper).
    m1_filters, m1_convs_per_block, m1_kernel, m1_pool, m1_dense
        M1: filters per block, convolutions per block, kernel, pool size, dense widths
        (the last one is the spectral feature size).
    m2_filters, m2_dense
        M2: filters of its four convolutions and the width of its hidden dense layer.
    m3_filters, m3_convs_per_block, m3_dense
        M3: filters per block, convolutions per block and the two dense widths (the
        last one is the image feature size).
    m4_tokens, m4_heads, m4_dropout, m4_dense
        M4: tokens each feature vector is cut into, attention heads, dropout rate after
        the layer normalisation, and the widths of the five dense layers.
    l2 : float
        L2 factor of the regularised convolutions (M1, M3).
    sed_conv_filters, sed_kernels, sed_pool, sed_dense, sed_n_filters
        SED CNN: filters and kernels of the two convolutions, pool size, dense width and
        the default number of narrow-band filters in the input.
    """

    name: str = "paper"
    n_spectrum_points: int = 4171
    spectrum_frame: str = "observed"
    image_size: int = 128
    m1_filters: tuple[int, ...] = (16, 32, 64, 128)
    m1_convs_per_block: int = 2
    m1_kernel: int = 3
    m1_pool: int = 3
    m1_dense: tuple[int, ...] = (2048, 1024)
    m2_filters: tuple[int, ...] = (32, 64, 128, 256)
    m2_dense: int = 1024
    m3_filters: tuple[int, ...] = (32, 64, 128, 256)
    m3_convs_per_block: int = 3
    m3_dense: tuple[int, ...] = (2048, 1024)
    m4_tokens: int = 16
    m4_heads: int = 8
    m4_dropout: float = 0.1
    m4_dense: tuple[int, ...] = (512, 256, 128, 64, 32)
    l2: float = 1e-4
    sed_conv_filters: tuple[int, int] = (16, 16)
    sed_kernels: tuple[int, int] = (6, 8)
    sed_pool: int = 8
    sed_dense: int = 40
    sed_n_filters: int = 54
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.spectrum_frame not in ("observed", "rest"):
            raise GalamInputError(
                f"architecture config {self.name!r}: spectrum_frame must be 'observed' or "
                f"'rest', got {self.spectrum_frame!r}"
            )
        feature = self.m1_dense[-1] if self.m1_dense else 0
        if not self.m1_dense or not self.m3_dense or self.m3_dense[-1] != feature:
            raise GalamInputError(
                f"architecture config {self.name!r}: M1's and M3's last dense widths (the "
                f"spectral and image features) must be equal, got {self.m1_dense} and {self.m3_dense}"
            )
        if feature % self.m4_tokens:
            raise GalamInputError(
                f"architecture config {self.name!r}: feature size {feature} must divide into "
                f"m4_tokens={self.m4_tokens} tokens"
            )
        if (feature // self.m4_tokens) % self.m4_heads:
            raise GalamInputError(
                f"architecture config {self.name!r}: token width {feature // self.m4_tokens} "
                f"must divide into m4_heads={self.m4_heads} heads"
            )
        divisor = 2 ** max(len(self.m2_filters), len(self.m3_filters))
        if self.image_size % divisor:
            raise GalamInputError(
                f"architecture config {self.name!r}: image_size {self.image_size} must be a "
                f"multiple of {divisor} (one 2 x 2 pooling per block)"
            )

    @property
    def feature_size(self) -> int:
        """Length of the spectral and image feature vectors (1024 in the paper)."""
        return int(self.m1_dense[-1])

    @property
    def token_width(self) -> int:
        """Features per attention token in M4."""
        return self.feature_size // self.m4_tokens

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists), for model cards."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ArchitectureConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(
            **{
                key: tuple(value) if isinstance(value, list) else value
                for key, value in values.items()
            }
        )


PAPER = ArchitectureConfig(
    name="paper", notes="Wang et al. 2025 Sect. 3; Liew-Cain et al. 2021 Sect. 3.1"
)
COMPACT = ArchitectureConfig(
    name="compact",
    image_size=64,
    m1_filters=(8, 16, 32, 64),
    m1_dense=(512, 256),
    m2_filters=(16, 32, 64, 128),
    m2_dense=256,
    m3_filters=(8, 16, 32, 64),
    m3_dense=(512, 256),
    m4_tokens=8,
    m4_dense=(256, 128, 64, 32, 16),
    notes="CPU-sized: 64 x 64 images, half the filters, 256-wide features",
)
#: The compact sizes with M1 reading rest-frame spectra (the shipped spectra-only model).
COMPACT_REST = replace(
    COMPACT,
    name="compact-rest",
    n_spectrum_points=3201,
    spectrum_frame="rest",
    notes=COMPACT.notes + "; M1 reads rest-frame spectra, 1 A over 3800-7000 A",
)
CONFIGS: dict[str, ArchitectureConfig] = {
    "paper": PAPER,
    "compact": COMPACT,
    "compact-rest": COMPACT_REST,
}


def get_config(name: str | ArchitectureConfig) -> ArchitectureConfig:
    """Return the configuration called ``name`` (``"paper"`` or ``"compact"``)."""
    if isinstance(name, ArchitectureConfig):
        return name
    try:
        return CONFIGS[name]
    except KeyError:
        raise GalamInputError(
            f"unknown model configuration {name!r}; available: {', '.join(sorted(CONFIGS))}"
        ) from None


@functools.lru_cache(maxsize=1)
def custom_objects() -> dict[str, type]:
    """The project's serializable Keras classes, defined and registered on first call.

    Returns a dict usable as ``custom_objects`` in ``keras.saving.load_model``. The
    classes are registered under the package name ``"napari_galam"``, so files written
    with them load with ``safe_mode=True`` once this function has run.
    """
    import keras

    @keras.saving.register_keras_serializable(package="napari_galam")
    class TargetScaling(keras.layers.Layer):
        """Map standardised outputs back to label units: ``y = x * scale + offset``.

        ``offset`` and ``scale`` are the training labels' mean and standard deviation,
        one per output; they are part of the layer's config (no weights), so the saved
        model carries its own label scaling.
        """

        def __init__(self, offset: Sequence[float], scale: Sequence[float], **kwargs: Any) -> None:
            kwargs.setdefault("dtype", "float32")
            super().__init__(**kwargs)
            self.offset = [float(v) for v in offset]
            self.scale = [float(v) for v in scale]

        def call(self, inputs: Any) -> Any:
            x = keras.ops.cast(inputs, "float32")
            return x * keras.ops.convert_to_tensor(
                self.scale, "float32"
            ) + keras.ops.convert_to_tensor(self.offset, "float32")

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            config = super().get_config()
            config.update({"offset": self.offset, "scale": self.scale})
            return config

    return {"napari_galam>TargetScaling": TargetScaling, "TargetScaling": TargetScaling}


def _target_scaling(
    n_outputs: int, mean: Sequence[float] | None, std: Sequence[float] | None, name: str
) -> Any:
    cls = custom_objects()["TargetScaling"]
    offset = [0.0] * n_outputs if mean is None else [float(v) for v in mean]
    scale = [1.0] * n_outputs if std is None else [max(float(v), 1e-6) for v in std]
    if len(offset) != n_outputs or len(scale) != n_outputs:
        raise GalamInputError(f"{name}: target mean and std need {n_outputs} values each")
    return cls(offset, scale, name=name)


def build_m1(
    config: ArchitectureConfig | str = PAPER,
    *,
    target_mean: Sequence[float] | None = None,
    target_std: Sequence[float] | None = None,
    name: str = "m1",
) -> Any:
    """Build M1, the spectral CNN (also the spectra-only model).

    Parameters
    ----------
    config : ArchitectureConfig or str
        Sizes; :data:`PAPER` by default.
    target_mean, target_std : sequence of 2 floats, optional
        Mean and standard deviation of (log age, [M/H]) in the training set, used by the
        final :class:`TargetScaling` layer (identity when omitted).
    name : str
        Keras model name.

    Returns
    -------
    keras.Model
        Input ``(batch, n_spectrum_points)`` float32 spectra (min-max normalised on the
        1 Å grid); output ``(batch, 2)``: log10(age/yr), [M/H]. The layer named
        ``"spectral_feature"`` holds the spectral feature.
    """
    import keras
    from keras import layers

    cfg = get_config(config)
    reg = keras.regularizers.L2(cfg.l2)
    inputs = keras.Input(shape=(cfg.n_spectrum_points,), name="spectrum")
    x = layers.Reshape((cfg.n_spectrum_points, 1), name="m1_channels")(inputs)
    for block, filters in enumerate(cfg.m1_filters, start=1):
        for conv in range(1, cfg.m1_convs_per_block + 1):
            x = layers.Conv1D(
                filters,
                cfg.m1_kernel,
                padding="same",
                activation="relu",
                kernel_regularizer=reg,
                kernel_initializer=_RELU_INIT,
                name=f"m1_block{block}_conv{conv}",
            )(x)
        x = layers.MaxPooling1D(cfg.m1_pool, name=f"m1_block{block}_pool")(x)
    x = layers.Flatten(name="m1_flatten")(x)
    for i, width in enumerate(cfg.m1_dense[:-1], start=1):
        x = layers.Dense(
            width, activation="relu", kernel_initializer=_RELU_INIT, name=f"m1_dense{i}"
        )(x)
    x = layers.Dense(
        cfg.m1_dense[-1],
        activation="relu",
        kernel_initializer=_RELU_INIT,
        name=SPECTRAL_FEATURE_LAYER,
    )(x)
    x = layers.Dense(2, dtype="float32", name="m1_output")(x)
    outputs = _target_scaling(2, target_mean, target_std, "log_age_mh")(x)
    return keras.Model(inputs, outputs, name=name)


def build_m2(config: ArchitectureConfig | str = PAPER, *, name: str = "m2") -> Any:
    """Build M2, which maps a cutout to simulated spectral features.

    Returns
    -------
    keras.Model
        Input ``(batch, image_size, image_size, 3)`` float32 in [0, 1]; output
        ``(batch, feature_size)`` float32, trained by MSE on M1's spectral features.
    """
    import keras
    from keras import layers

    cfg = get_config(config)
    inputs = keras.Input(shape=(cfg.image_size, cfg.image_size, 3), name="image")
    x = inputs
    for i, filters in enumerate(cfg.m2_filters, start=1):
        x = layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            kernel_initializer=_RELU_INIT,
            name=f"m2_conv{i}",
        )(x)
        x = layers.MaxPooling2D(2, name=f"m2_pool{i}")(x)
    x = layers.Flatten(name="m2_flatten")(x)
    x = layers.Dense(
        cfg.m2_dense, activation="relu", kernel_initializer=_RELU_INIT, name="m2_dense"
    )(x)
    outputs = layers.Dense(cfg.feature_size, dtype="float32", name=SIMULATED_FEATURE_LAYER)(x)
    return keras.Model(inputs, outputs, name=name)


def build_m3(
    config: ArchitectureConfig | str = PAPER,
    *,
    target_mean: Sequence[float] | None = None,
    target_std: Sequence[float] | None = None,
    name: str = "m3",
) -> Any:
    """Build M3, the image CNN (also the image-only model).

    Returns
    -------
    keras.Model
        Input ``(batch, image_size, image_size, 3)`` float32 in [0, 1]; output
        ``(batch, 2)``: log age, [M/H]. The layer ``"image_feature"`` holds the image
        feature.
    """
    import keras
    from keras import layers

    cfg = get_config(config)
    reg = keras.regularizers.L2(cfg.l2)
    inputs = keras.Input(shape=(cfg.image_size, cfg.image_size, 3), name="image")
    x = inputs
    for block, filters in enumerate(cfg.m3_filters, start=1):
        for conv in range(1, cfg.m3_convs_per_block + 1):
            x = layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_regularizer=reg,
                kernel_initializer=_RELU_INIT,
                name=f"m3_block{block}_conv{conv}",
            )(x)
        x = layers.MaxPooling2D(2, name=f"m3_block{block}_pool")(x)
    x = layers.Flatten(name="m3_flatten")(x)
    for i, width in enumerate(cfg.m3_dense[:-1], start=1):
        x = layers.Dense(
            width, activation="relu", kernel_initializer=_RELU_INIT, name=f"m3_dense{i}"
        )(x)
    x = layers.Dense(
        cfg.m3_dense[-1], activation="relu", kernel_initializer=_RELU_INIT, name=IMAGE_FEATURE_LAYER
    )(x)
    x = layers.Dense(2, dtype="float32", name="m3_output")(x)
    outputs = _target_scaling(2, target_mean, target_std, "log_age_mh")(x)
    return keras.Model(inputs, outputs, name=name)


def build_m4(
    config: ArchitectureConfig | str = PAPER,
    *,
    target_mean: Sequence[float] | None = None,
    target_std: Sequence[float] | None = None,
    name: str = "m4",
) -> Any:
    """Build M4, the multi-modal attention regression (see the module notes on tokens).

    Returns
    -------
    keras.Model
        Inputs ``[spectral_features, image_features]``, each ``(batch, feature_size)``
        (from M2, or M1 for the real-feature ablation, and from M3); output
        ``(batch, 2)``: log age, [M/H]. The layer ``"fused_feature"`` is the fused
        vector.
    """
    import keras
    from keras import layers

    cfg = get_config(config)
    tokens, width = cfg.m4_tokens, cfg.token_width
    spectral = keras.Input(shape=(cfg.feature_size,), name="spectral_features")
    image = keras.Input(shape=(cfg.feature_size,), name="image_features")
    query = layers.Reshape((tokens, width), name="spectral_tokens")(spectral)
    key_value = layers.Reshape((tokens, width), name="image_tokens")(image)
    attended = layers.MultiHeadAttention(
        num_heads=cfg.m4_heads, key_dim=width // cfg.m4_heads, name="cross_attention"
    )(query, key_value, key_value)
    x = layers.Add(name="residual")([query, attended])
    x = layers.LayerNormalization(name="layer_norm")(x)
    x = layers.Dropout(cfg.m4_dropout, name="dropout")(x)
    x = layers.Flatten(name="fused_feature")(x)
    for i, width_i in enumerate(cfg.m4_dense, start=1):
        x = layers.Dense(
            width_i, activation="relu", kernel_initializer=_RELU_INIT, name=f"m4_dense{i}"
        )(x)
    x = layers.Dense(2, dtype="float32", name="m4_output")(x)
    outputs = _target_scaling(2, target_mean, target_std, "log_age_mh")(x)
    return keras.Model([spectral, image], outputs, name=name)


def feature_extractor(model: Any, layer_name: str, *, name: str | None = None) -> Any:
    """A model sharing ``model``'s layers that outputs the layer ``layer_name``.

    Used for M1's spectral features (``"spectral_feature"``) and M3's image features
    (``"image_feature"``).
    """
    import keras

    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise GalamInputError(f"model {model.name!r} has no layer named {layer_name!r}") from None
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, layer.output, name=name or f"{model.name}_{layer_name}")


def build_mmlforgalam(m2: Any, m3: Any, m4: Any, *, name: str = "mmlforgalam") -> Any:
    """Chain trained M2, M3 and M4 into one image -> (log age, [M/H]) model.

    The image goes through M2 (simulated spectral features) and M3's feature extractor
    (image features); M4 fuses them. The result is one Keras model for saving and
    serving; its sub-models keep their weights.
    """
    import keras

    image = keras.Input(shape=tuple(m3.inputs[0].shape[1:]), name="image")
    spectral = m2(image)
    image_features = feature_extractor(m3, IMAGE_FEATURE_LAYER, name="m3_features")(image)
    outputs = m4([spectral, image_features])
    return keras.Model(image, outputs, name=name)


def build_sed_cnn(
    config: ArchitectureConfig | str = PAPER,
    *,
    n_filters: int | None = None,
    target_mean: float | None = None,
    target_std: float | None = None,
    name: str = "sed_cnn",
) -> Any:
    """Build the narrow-band SED CNN of Liew-Cain et al. (2021) for one target.

    Parameters
    ----------
    config : ArchitectureConfig or str
        Sizes (the two configurations share the paper's SED CNN).
    n_filters : int, optional
        Number of narrow-band fluxes per SED (``config.sed_n_filters`` by default; 34 in
        the paper: the J-PAS bands inside CALIFA's range minus the two around H-alpha).
    target_mean, target_std : float, optional
        Label mean and standard deviation for :class:`TargetScaling`.
    name : str
        Keras model name.

    Returns
    -------
    keras.Model
        Input ``(batch, n_filters)`` normalised SEDs; output ``(batch, 1)``.
    """
    import keras
    from keras import layers

    cfg = get_config(config)
    n = int(cfg.sed_n_filters if n_filters is None else n_filters)
    if n < cfg.sed_pool:
        raise GalamInputError(f"SED CNN: needs at least {cfg.sed_pool} filters, got n_filters={n}")
    inputs = keras.Input(shape=(n,), name="sed")
    x = layers.Reshape((n, 1), name="sed_channels")(inputs)
    for i, (filters, kernel) in enumerate(
        zip(cfg.sed_conv_filters, cfg.sed_kernels, strict=True), start=1
    ):
        x = layers.Conv1D(
            filters,
            kernel,
            padding="same",
            activation="relu",
            kernel_initializer=_RELU_INIT,
            name=f"sed_conv{i}",
        )(x)
    x = layers.MaxPooling1D(cfg.sed_pool, name="sed_pool")(x)
    x = layers.Flatten(name="sed_flatten")(x)
    x = layers.Dense(
        cfg.sed_dense, activation="relu", kernel_initializer=_RELU_INIT, name="sed_dense"
    )(x)
    x = layers.Dense(1, dtype="float32", name="sed_output")(x)
    mean = None if target_mean is None else [target_mean]
    std = None if target_std is None else [target_std]
    outputs = _target_scaling(1, mean, std, "target")(x)
    return keras.Model(inputs, outputs, name=name)


def combine_sed_cnns(age_model: Any, mh_model: Any, *, name: str = "sed_cnn") -> Any:
    """Put the separate age and [M/H] SED CNNs side by side: one input, output (batch, 2)."""
    import keras

    if tuple(age_model.inputs[0].shape[1:]) != tuple(mh_model.inputs[0].shape[1:]):
        raise GalamInputError(
            "SED CNNs: the age and [M/H] networks take different numbers of filters"
        )
    sed = keras.Input(shape=tuple(age_model.inputs[0].shape[1:]), name="sed")
    both = keras.layers.Concatenate(name="log_age_mh", dtype="float32")(
        [age_model(sed), mh_model(sed)]
    )
    return keras.Model(sed, both, name=name)
