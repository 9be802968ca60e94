"""Fixtures for the simulator tests: the shipped SSP library and a few small galaxies."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def library():
    from napari_galam.sps.library import load_ssp_library

    return load_ssp_library()


@pytest.fixture(scope="session")
def califa_galaxy(library):
    from napari_galam.simulate.galaxy import draw_galaxy

    return draw_galaxy(np.random.default_rng(11), survey="califa", library=library)
