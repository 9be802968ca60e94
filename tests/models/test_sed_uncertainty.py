"""The SED CNN's error calibration and out-of-distribution codes, on known distributions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.errors import GalamError
from napari_galam.models.sed_uncertainty import (
    OOD_BAD_FLUX,
    OOD_LOW_SNR,
    bad_flux_codes,
    coverage_by_snr,
    describe_ood,
    fit_snr_scales,
    fit_variance_scale,
    low_snr_codes,
    mahalanobis_squared,
    sed_calibration,
    shape_reference,
)


def test_the_variance_scale_undoes_errors_quoted_twice_too_wide() -> None:
    rng = np.random.default_rng(0)
    truth_sigma = rng.uniform(0.05, 0.3, 50_000)
    residual = truth_sigma * rng.standard_normal(truth_sigma.size)
    scale = fit_variance_scale(residual, 2.0 * truth_sigma)
    assert scale == pytest.approx(0.5, rel=0.03)
    cover = coverage_by_snr(residual, scale * 2.0 * truth_sigma, 1.0 / truth_sigma)
    assert cover["within_68"] == pytest.approx(0.683, abs=0.01)
    assert cover["within_95"] == pytest.approx(0.95, abs=0.01)
    assert cover["n"] == 50_000 and sum(b["n"] for b in cover["by_snr"].values()) == 50_000


def test_bad_flux_and_low_snr_codes() -> None:
    good = np.ones(10)
    negative = np.where(np.arange(10) < 3, -1.0, 2.0)  # 3 of 10 negative, positive mean
    holes = np.where(np.arange(10) < 6, np.nan, 1.0)  # mostly non-finite
    codes = bad_flux_codes(np.stack([good, negative, holes, np.zeros(10)]))
    assert codes.tolist() == [0, OOD_BAD_FLUX, OOD_BAD_FLUX, OOD_BAD_FLUX]
    assert low_snr_codes([2.0, 50.0, np.nan], 30.0).tolist() == [OOD_LOW_SNR, 0, 0]
    assert describe_ood(OOD_LOW_SNR | OOD_BAD_FLUX).count(";") == 1 and describe_ood(0) == ""


def test_mahalanobis_distance_separates_unlike_shapes() -> None:
    rng = np.random.default_rng(2)
    shapes = 1.0 + 0.02 * rng.standard_normal((5000, 8))
    mean, precision = shape_reference(shapes)
    d_in = mahalanobis_squared(shapes[:100], mean, precision)
    d_out = mahalanobis_squared(np.linspace(0.2, 1.8, 8)[None], mean, precision)
    assert np.median(d_in) == pytest.approx(8, rel=0.3)  # chi-square with 8 dof
    assert d_out[0] > 100 * np.percentile(d_in, 99.5)


def test_a_card_without_calibration_is_refused_with_a_message() -> None:
    with pytest.raises(GalamError, match="calibration.uncertainty"):
        sed_calibration({"calibration": {"gradient": {}}})
    bad = {"uncertainty": {"log_age": {"scale": -1}, "mh": {"scale": 1}},
           "ood": {"min_snr": 3, "shape": {"mean": [1, 1], "precision": [[1, 0], [0, 1]],
                                           "max_distance2": 9}}}  # fmt: skip
    with pytest.raises(GalamError, match="unusable"):
        sed_calibration({"calibration": bad})


def _card(**uncertainty) -> dict:
    return {"calibration": {
        "uncertainty": {"log_age": {"scale": 1.0}, "mh": {"scale": 2.0}, **uncertainty},
        "ood": {"min_snr": 3, "shape": {"mean": [1, 1], "precision": [[1, 0], [0, 1]],
                                        "max_distance2": 9}},
    }}  # fmt: skip


def test_errors_too_small_at_low_snr_get_their_own_scale() -> None:
    """Raw errors right at high S/N but half the truth at low S/N: one factor per bin."""
    rng = np.random.default_rng(4)
    snr = np.exp(rng.uniform(np.log(3.0), np.log(300.0), 60_000))
    raw = 0.1 + 0.5 / snr
    true_sigma = np.where(snr < 10, 2.0, 1.0) * raw
    residual = true_sigma * rng.standard_normal(snr.size)
    edges = (3.0, 10.0, 40.0, np.inf)
    scales = fit_snr_scales(residual, raw, snr, edges)
    assert scales[0] == pytest.approx(2.0, rel=0.05) and scales[1] == pytest.approx(1.0, rel=0.05)
    calibration = sed_calibration(
        _card(by_snr_scale={"edges": list(edges), "log_age": scales, "mh": scales})
    )
    factors = calibration.scales(snr)
    cover = coverage_by_snr(residual, factors[:, 0] * raw, snr, edges)
    for c in cover["by_snr"].values():
        assert c["within_68"] == pytest.approx(0.683, abs=0.02)
    one = fit_variance_scale(residual, raw)  # a single factor misses the low-S/N bin
    assert coverage_by_snr(residual, one * raw, snr, edges)["by_snr"]["3-10"]["within_68"] < 0.6
    # unknown S/N, below the bins, or none given: the overall scales
    assert calibration.scales([np.nan, 1.0]).tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert calibration.scales(None, n=2).shape == (2, 2)
    few = fit_snr_scales(residual[:500], raw[:500], snr[:500], edges, overall=1.5)
    assert few == [1.5, 1.5, 1.5]  # bins too sparse to trust keep the overall factor


def test_a_broken_per_snr_table_is_refused() -> None:
    assert sed_calibration(_card()).snr_scale is None
    with pytest.raises(GalamError, match="by_snr_scale"):
        sed_calibration(_card(by_snr_scale={"edges": [3, 10, 1e9], "log_age": [1.0], "mh": [1.0]}))
    with pytest.raises(GalamError, match="by_snr_scale"):
        sed_calibration(_card(by_snr_scale={"edges": [3, 10], "log_age": [-1.0], "mh": [1.0]}))
