"""Architectures: the paper configuration's shapes and parameter counts, worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.models import architectures as arch

pytestmark = pytest.mark.tensorflow


def conv_params(kernel_elems: int, c_in: int, c_out: int) -> int:
    return kernel_elems * c_in * c_out + c_out


def dense_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def test_m1_paper_shapes_and_hand_counted_parameters():
    model = arch.build_m1(arch.PAPER)
    # Four blocks of two Conv1D (k=3) with 16/32/64/128 filters; pool 3 after each block.
    convs = (
        conv_params(3, 1, 16)
        + conv_params(3, 16, 16)  # 64 + 784
        + conv_params(3, 16, 32)
        + conv_params(3, 32, 32)  # 1568 + 3104
        + conv_params(3, 32, 64)
        + conv_params(3, 64, 64)  # 6208 + 12352
        + conv_params(3, 64, 128)
        + conv_params(3, 128, 128)  # 24704 + 49280
    )
    length = 4171
    for _ in range(4):
        length //= 3  # 1390, 463, 154, 51
    assert length == 51
    flat = 51 * 128
    dense = dense_params(flat, 2048) + dense_params(2048, 1024) + dense_params(1024, 2)
    assert convs == 98_064
    assert model.count_params() == convs + dense == 15_569_682
    assert tuple(model.input.shape) == (None, 4171)
    assert tuple(model.output.shape) == (None, 2)
    assert tuple(model.get_layer("m1_flatten").output.shape) == (None, flat)
    assert tuple(model.get_layer(arch.SPECTRAL_FEATURE_LAYER).output.shape) == (None, 1024)


@pytest.mark.parametrize("n_filters, expected", [(34, 4_817), (54, 6_097)])
def test_sed_cnn_hand_counted_parameters(n_filters, expected):
    model = arch.build_sed_cnn(arch.PAPER, n_filters=n_filters)
    pooled = n_filters // 8  # MaxPool(8) after two 'same' convolutions
    hand = (
        conv_params(6, 1, 16)  # 112
        + conv_params(8, 16, 16)  # 2064
        + dense_params(pooled * 16, 40)
        + dense_params(40, 1)
    )
    assert hand == expected
    assert model.count_params() == expected
    assert tuple(model.output.shape) == (None, 1)
    out = model(np.ones((3, n_filters), np.float32)).numpy()
    assert out.shape == (3, 1) and np.all(np.isfinite(out))


def test_m2_m3_m4_paper_shapes_and_counts():
    m2, m3, m4 = arch.build_m2(arch.PAPER), arch.build_m3(arch.PAPER), arch.build_m4(arch.PAPER)
    # M2: one 3x3 conv per stage, 32/64/128/256, each followed by 2x2 pooling: 128 -> 8.
    m2_hand = (
        conv_params(9, 3, 32)
        + conv_params(9, 32, 64)
        + conv_params(9, 64, 128)
        + conv_params(9, 128, 256)
        + dense_params(8 * 8 * 256, 1024)
        + dense_params(1024, 1024)
    )
    assert m2.count_params() == m2_hand == 18_216_256
    assert tuple(m2.output.shape) == (None, 1024)
    # M3: three 3x3 convs per block.
    m3_convs = 0
    c_in = 3
    for filters in (32, 64, 128, 256):
        m3_convs += conv_params(9, c_in, filters) + 2 * conv_params(9, filters, filters)
        c_in = filters
    m3_hand = (
        m3_convs + dense_params(16384, 2048) + dense_params(2048, 1024) + dense_params(1024, 2)
    )
    assert m3.count_params() == m3_hand
    assert tuple(m3.get_layer(arch.IMAGE_FEATURE_LAYER).output.shape) == (None, 1024)
    # M4: 16 tokens of 64; 8 heads of 8 dims: Q, K, V and output projections 64x64 + bias.
    attention = 4 * (64 * 64 + 64)
    m4_hand = (
        attention
        + 2 * 64  # layer norm
        + dense_params(1024, 512)
        + dense_params(512, 256)
        + dense_params(256, 128)
        + dense_params(128, 64)
        + dense_params(64, 32)
        + dense_params(32, 2)
    )
    assert m4.count_params() == m4_hand == 716_194
    attn = m4.get_layer("cross_attention")
    assert attn.num_heads == 8
    assert tuple(m4.get_layer("fused_feature").output.shape) == (None, 1024)
    assert [tuple(t.shape) for t in m4.inputs] == [(None, 1024), (None, 1024)]


def test_compact_mmlforgalam_runs_end_to_end():
    cfg = arch.COMPACT
    full = arch.build_mmlforgalam(arch.build_m2(cfg), arch.build_m3(cfg), arch.build_m4(cfg))
    assert tuple(full.input.shape) == (None, 64, 64, 3)
    out = full(np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)).numpy()
    assert out.shape == (2, 2) and np.all(np.isfinite(out))
    # Compact really is smaller: under 2 M parameters per model.
    assert arch.build_m1(cfg).count_params() < 2_000_000


def test_target_scaling_maps_back_to_label_units():
    model = arch.build_m1(arch.COMPACT, target_mean=[9.5, -0.3], target_std=[0.4, 0.2])
    layer = model.get_layer("log_age_mh")
    out = layer(np.array([[0.0, 0.0], [1.0, -1.0]], np.float32)).numpy()
    np.testing.assert_allclose(out, [[9.5, -0.3], [9.9, -0.5]], atol=1e-6)
    assert layer.get_config()["offset"] == [9.5, -0.3]


def test_attention_over_tokens_is_not_trivial():
    """With one key per query the softmax would be 1; with 16 tokens it varies."""
    import keras

    m4 = arch.build_m4(arch.PAPER)
    attn = m4.get_layer("cross_attention")
    rng = np.random.default_rng(0)
    q = rng.normal(size=(1, 16, 64)).astype(np.float32)
    kv = rng.normal(size=(1, 16, 64)).astype(np.float32)
    _, scores = attn(q, kv, kv, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)
    assert scores.shape == (1, 8, 16, 16)
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, atol=1e-5)
    assert scores.max() < 0.99 and scores.std() > 0


def test_config_validation_and_lookup():
    assert arch.get_config("paper") is arch.PAPER
    with pytest.raises(GalamInputError, match="available"):
        arch.get_config("huge")
    with pytest.raises(GalamInputError, match="equal"):
        arch.ArchitectureConfig(name="bad", m1_dense=(64, 32), m3_dense=(64, 16))
    with pytest.raises(GalamInputError, match="heads"):
        arch.ArchitectureConfig(name="bad", m4_tokens=256)
    cfg = arch.ArchitectureConfig.from_dict(arch.COMPACT.to_dict())
    assert cfg == arch.COMPACT
