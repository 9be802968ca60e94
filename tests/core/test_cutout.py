"""Cutouts around a click, and crop + nearest-neighbour resize to 128x128."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.core.cutout import (
    crop_and_resize,
    cutout_around,
    nonblack_bounding_box,
    resize_nearest,
)
from napari_galam.errors import GalamInputError


def test_cutout_inside_the_image_is_a_plain_window():
    field = np.arange(100 * 120).reshape(100, 120)
    cut = cutout_around(field, 50.2, 60.7, 10)
    assert cut.data.shape == (10, 10) and not cut.clipped
    assert cut.origin == (45, 56)
    assert cut.data[5, 5] == field[50, 61]
    rows, cols = cut.to_parent([5], [5])
    assert (rows[0], cols[0]) == (50.0, 61.0)


def test_cutout_at_the_edge_is_padded():
    field = np.ones((50, 50, 3), dtype=np.uint8)
    cut = cutout_around(field, 0, 49, 20)
    assert cut.data.shape == (20, 20, 3) and cut.clipped
    assert cut.data[10, 10].tolist() == [1, 1, 1]
    assert cut.data[0, 10].tolist() == [0, 0, 0] and cut.data[10, 19].tolist() == [0, 0, 0]
    assert cut.data.sum() == 10 * 11 * 3


def test_cutout_outside_or_too_small_raises():
    with pytest.raises(GalamInputError, match="outside"):
        cutout_around(np.zeros((10, 10)), 12, 3, 4)
    with pytest.raises(GalamInputError, match="at least 2"):
        cutout_around(np.zeros((10, 10)), 3, 3, 1)
    with pytest.raises(GalamInputError, match="not an image"):
        cutout_around(np.zeros(10), 3, 3, 4)


def test_resize_nearest_only_copies_values():
    image = np.random.default_rng(0).integers(0, 255, (37, 53)).astype(np.uint8)
    out = resize_nearest(image, 128)
    assert out.shape == (128, 128) and out.dtype == np.uint8
    assert set(np.unique(out)) <= set(np.unique(image))
    # Up-sampling by an integer factor repeats each pixel.
    small = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(resize_nearest(small, 4), np.kron(small, np.ones((2, 2))))


def test_crop_and_resize_keeps_the_axis_ratio():
    masked = np.zeros((128, 128), dtype=np.float32)
    masked[54:74, 34:94] = 1.0  # 20 rows x 60 columns
    assert nonblack_bounding_box(masked) == (slice(54, 74), slice(34, 94))
    out = crop_and_resize(masked)
    assert out.shape == (128, 128)
    rows = np.flatnonzero(out.any(axis=1))
    cols = np.flatnonzero(out.any(axis=0))
    assert cols.size == 128 and abs(rows.size - 128 / 3) <= 2
    stretched = crop_and_resize(masked, square=False)
    assert stretched.all()


def test_crop_of_an_all_black_image_raises():
    with pytest.raises(GalamInputError, match="black"):
        crop_and_resize(np.zeros((16, 16, 3), dtype=np.uint8))
    assert nonblack_bounding_box(np.full((4, 4), np.nan)) is None


def test_cutout_of_a_lazy_field_reads_only_the_window():
    da = pytest.importorskip("dask.array")
    field = da.zeros((20000, 20000), dtype=np.float32, chunks=(1000, 1000))
    field = field + da.arange(20000, dtype=np.float32, chunks=1000)[None, :]
    cut = cutout_around(field, 10000.0, 19990.0, 64)
    assert isinstance(cut.data, np.ndarray) and cut.data.shape == (64, 64)
    assert cut.clipped and cut.data[32, 32] == 19990.0 and cut.data[32, 63] == 0.0
