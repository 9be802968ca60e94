"""The shipped spectra-only model against pPXF on real SDSS spectra (Wang et al. 2025's yardstick).

Labels in the paper are pPXF fits with MILES SSPs; here pPXF fits the same real spectra
with the very E-MILES library the simulator trained the model on. The target is agreement
within :data:`napari_galam.pipeline.evaluate.REAL_AGREEMENT_DEX` (0.2 dex in age, 0.15 in
[M/H]) galaxy by galaxy, which the shipped rest-frame model meets for all three (README,
"The shipped models"); these tests hold it, and pPXF's age order. The observed-frame
model shipped before was off by up to 0.28 dex in age and 0.25 in [M/H] (0 of 3 within
the target), and the one before it by 0.44-0.78 dex in age.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.pipeline.evaluate import REAL_AGREEMENT_DEX, compare_real_spectra

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def comparison():
    from napari_galam.models.inference import predict_galaxies

    return compare_real_spectra(predict_galaxies, reguls=(0.0,))


def test_three_real_galaxies_span_young_to_old(comparison):
    assert list(comparison["galaxy"]) == ["NGC3073", "NGC3522", "NGC4636"]
    # pPXF's own reading: a young star-forming dwarf, an intermediate and an old elliptical.
    ages = dict(zip(comparison["galaxy"], comparison["ppxf_log_age"], strict=True))
    assert ages["NGC3073"] < 9.0 < ages["NGC3522"] < ages["NGC4636"]
    assert np.all(comparison["snr"] > 30)


@pytest.mark.parametrize("galaxy", ["NGC3073", "NGC3522", "NGC4636"])
def test_spectra_only_agrees_with_ppxf(comparison, galaxy):
    row = comparison[list(comparison["galaxy"]).index(galaxy)]
    described = dict(zip(row.colnames, row, strict=True))
    assert abs(row["d_log_age"]) <= REAL_AGREEMENT_DEX["log_age"], described
    assert abs(row["d_mh"]) <= REAL_AGREEMENT_DEX["mh"], described
    assert row["agrees"], described


def test_the_shipped_model_reads_rest_frame_spectra():
    from napari_galam.models.registry import read_model_card, spectrum_frame

    assert spectrum_frame() == "rest"
    assert read_model_card("spectra-only")["input"]["shape"] == [3201]


def test_model_orders_the_galaxies_by_age_as_ppxf_does(comparison):
    # NGC 3522 and NGC 4636 differ by 0.25 dex in pPXF's age: the dwarf must come first.
    young = int(np.argmin(comparison["model_log_age"]))
    assert comparison["galaxy"][young] == "NGC3073"
    assert comparison["model_log_age"][young] < 9.2
