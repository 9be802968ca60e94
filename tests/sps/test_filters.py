"""Tests of the SDSS and J-PAS-like filter sets."""

from __future__ import annotations

import numpy as np
import pytest
import speclite.filters

from napari_galam.errors import GalamInputError
from napari_galam.sps.filters import (
    JPAS_FWHM,
    jpas_band_names,
    jpas_centres,
    jpas_filters,
    jpas_response,
    load_filters,
    sdss_filters,
)


def test_jpas_centres_follow_liew_cain_2021():
    centres = jpas_centres()
    assert centres.size == 54
    assert centres[0] == 3785 and centres[-1] == 9085
    np.testing.assert_allclose(np.diff(centres), 100.0)
    names = jpas_band_names()
    assert names[0] == "galam_jpas-J0378" and names[-1] == "galam_jpas-J0908"
    assert len(set(names)) == 54


def test_jpas_bands_are_smooth_top_hats_of_fwhm_145():
    filters = jpas_filters()
    assert len(filters) == 54
    for response, centre in zip(filters, jpas_centres(), strict=True):
        wave = np.arange(centre - 200, centre + 200, 0.01)
        curve = response(wave)
        above_half = wave[curve >= 0.5 * curve.max()]
        assert above_half[-1] - above_half[0] == pytest.approx(JPAS_FWHM, abs=0.05)
        assert response.effective_wavelength.value == pytest.approx(centre, abs=2.0)
        # flat top, steep edges, nothing far out
        assert response(np.array([centre - 30.0, centre + 30.0])) == pytest.approx(1.0, abs=1e-3)
        assert np.all(response(np.array([centre - 130.0, centre + 130.0])) < 1e-6)
    # neighbours overlap only in their wings: the crossing is at the 50 A mark
    assert jpas_response(np.array([3835.0]), 3785.0)[0] == pytest.approx(
        jpas_response(np.array([3835.0]), 3885.0)[0]
    )


def test_jpas_bands_are_registered_with_speclite():
    jpas_filters()
    response = speclite.filters.load_filter("galam_jpas-J0658")
    assert response.effective_wavelength.value == pytest.approx(6585.0, abs=2.0)


def test_sdss_filters_are_ugriz():
    filters = sdss_filters()
    assert filters.names == [f"sdss2010-{band}" for band in "ugriz"]


def test_load_filters_by_names_and_groups():
    assert load_filters("sdss2010-r").names == ["sdss2010-r"]
    assert load_filters(["galam_jpas-J0908", "sdss2010-g"]).names == [
        "galam_jpas-J0908",
        "sdss2010-g",
    ]
    assert len(load_filters("galam_jpas-*")) == 54
    assert load_filters("bessell-*").names[2] == "bessell-V"


@pytest.mark.parametrize("name", ["sdss2010-w", "galam_jpas-J0000", "nonsense", ""])
def test_unknown_filter_raises_and_lists_known_ones(name):
    with pytest.raises(GalamInputError, match="known filters: sdss2010-u") as info:
        load_filters([name])
    assert "galam_jpas-J0378" in str(info.value)


def test_empty_list_raises():
    with pytest.raises(GalamInputError, match="no filter name"):
        load_filters([])
