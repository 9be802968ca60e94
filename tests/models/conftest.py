"""Fixtures for the model tests (no TensorFlow or napari at import)."""

from __future__ import annotations

import h5py
import pytest
from galam_model_helpers import TINY, make_toy_galaxies


@pytest.fixture
def tiny_config():
    return TINY


@pytest.fixture
def toy_galaxy_h5(tmp_path):
    """A real HDF5 file in the documented training layout."""
    arrays = make_toy_galaxies(160)
    path = tmp_path / "toy_galaxies.h5"
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
        handle.attrs["card"] = '{"name": "toy", "seed": 0}'
    return path
