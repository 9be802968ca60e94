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
    fit_snr_curve,
    fit_variance_scale,
    low_snr_codes,
    mahalanobis_squared,
    sed_calibration,
    shape_reference,
    snr_windows,
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


def _noisy_spaxels(seed: int, n: int = 80_000, slope: float = 0.25) -> dict:
    """Raw errors that are right only at S/N 30: too small below it, too large above."""
    rng = np.random.default_rng(seed)
    snr = np.exp(rng.uniform(np.log(3.0), np.log(600.0), n))
    raw = 0.1 + 0.5 / snr
    factor = np.clip(1.0 - slope * np.log(snr / 30.0), 0.5, 2.0)  # 1.58 at S/N 3, 0.5 at 600
    residual = factor * raw * rng.standard_normal(n)
    return {"snr": snr, "raw": raw, "factor": factor, "residual": residual}


def test_the_scale_curve_follows_the_snr_and_covers_every_bin() -> None:
    data = _noisy_spaxels(4)
    snr, raw, residual = data["snr"], data["raw"], data["residual"]
    nodes, scales = fit_snr_curve(
        np.column_stack([residual, 2 * residual]), np.column_stack([raw, raw]), snr,
        min_spaxels=3000,
    )  # fmt: skip
    assert scales.shape == (len(nodes), 2) and np.all(np.diff(nodes) > 0)
    expected = np.clip(1.0 - 0.25 * np.log(np.array(nodes) / 30.0), 0.5, 2.0)
    assert np.allclose(scales[:, 0], expected, rtol=0.06)
    assert np.allclose(scales[:, 1], 2 * expected, rtol=0.06)
    card = _card(by_snr_scale={"snr": nodes, "log_age": scales[:, 0].tolist(),
                               "mh": scales[:, 1].tolist()})  # fmt: skip
    calibration = sed_calibration(card)
    factors = calibration.scales(snr)
    cover = coverage_by_snr(residual, factors[:, 0] * raw, snr)
    for c in cover["by_snr"].values():
        assert c["within_68"] == pytest.approx(0.683, abs=0.025)
    one = fit_variance_scale(residual, raw)  # a single factor misses both ends
    by_bin = coverage_by_snr(residual, one * raw, snr)["by_snr"]
    assert by_bin["3-10"]["within_68"] < 0.6 and by_bin[">=320"]["within_68"] > 0.8
    # unknown or non-positive S/N: the overall scales; beyond the nodes: the end scales
    assert calibration.scales([np.nan, 0.0]).tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert calibration.scales([1.0, 1e6]).tolist() == [scales[0].tolist(), scales[-1].tolist()]
    assert calibration.scales(None, n=2).shape == (2, 2)


def test_a_population_at_the_top_of_a_wide_bin_gets_its_own_factor() -> None:
    """The cause of over-covered S/N 20-40 within 2 R_e: those spaxels lie at S/N 30-40,
    where the factor needed is smaller than the bin's mean; the curve gives it to them."""
    data = _noisy_spaxels(5, n=200_000, slope=0.6)  # 1.24 at S/N 20, 0.83 at 40
    snr, raw, residual = data["snr"], data["raw"], data["residual"]
    edges = (3.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, np.inf)
    top = (snr >= 30.0) & (snr < 40.0)
    wide = (snr >= 20.0) & (snr < 40.0)
    step = fit_variance_scale(residual[wide], raw[wide])
    stepped = coverage_by_snr(residual[top], step * raw[top], snr[top], edges)
    assert stepped["within_68"] > 0.73  # the bin's mean factor is too large up there
    nodes, scales = fit_snr_curve(residual, raw, snr, min_spaxels=5000)
    card = _card(
        by_snr_scale={"snr": nodes, "log_age": scales[:, 0].tolist(), "mh": [1.0] * len(nodes)}
    )
    curve = sed_calibration(card).scales(snr[top])[:, 0]
    assert coverage_by_snr(residual[top], curve * raw[top], snr[top])["within_68"] == (
        pytest.approx(0.683, abs=0.015)
    )


def test_sparse_snr_windows_join_their_neighbours() -> None:
    snr = np.concatenate([np.full(100, 3.5), np.full(100, 5.0), np.full(5, 9.0), [500.0]])
    # empty windows join the one below; from 6 up only 9.0 (x5) and 500 are left
    assert snr_windows(snr, ratio=2.0, min_spaxels=1) == (3.0, 6.0, 384.0, np.inf)
    # 9.0 (5 values) and 500 (1) are too few alone: they join the window below them
    assert snr_windows(snr, ratio=2.0, min_spaxels=50) == (3.0, np.inf)
    assert snr_windows(snr, ratio=1.5, min_spaxels=50) == (3.0, 4.5, np.inf)
    assert snr_windows([], min_spaxels=10) == (3.0, np.inf)
    with pytest.raises(GalamError, match="ratio"):
        snr_windows(snr, ratio=1.0)


def test_a_broken_snr_curve_is_refused() -> None:
    assert sed_calibration(_card()).snr_scale is None
    broken = [
        {"edges": [3, 10, 1e9], "log_age": [1.0, 1.0], "mh": [1.0, 1.0]},  # old step table
        {"snr": [10, 5], "log_age": [1.0, 1.0], "mh": [1.0, 1.0]},  # not increasing
        {"snr": [0, 5], "log_age": [1.0, 1.0], "mh": [1.0, 1.0]},  # S/N 0
        {"snr": [5, 10], "log_age": [1.0], "mh": [1.0]},  # a node without a scale
        {"snr": [5, 10], "log_age": [1.0, -1.0], "mh": [1.0, 1.0]},  # negative scale
        {"snr": [5, 10], "log_age": [1.0, np.nan], "mh": [1.0, 1.0]},
        {"snr": [], "log_age": [], "mh": []},
        {"snr": "5", "log_age": [1.0], "mh": [1.0, 2.0]},
        [1.0, 2.0],
    ]
    for by_snr in broken:
        with pytest.raises(GalamError, match="by_snr_scale"):
            sed_calibration(_card(by_snr_scale=by_snr))
    one = sed_calibration(_card(by_snr_scale={"snr": [20.0], "log_age": [3.0], "mh": [4.0]}))
    assert one.scales([5.0, 500.0]).tolist() == [[3.0, 4.0], [3.0, 4.0]]
