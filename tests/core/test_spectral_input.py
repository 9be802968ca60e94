"""The spectral model's input: one common resolution, rest frame, weights (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.core.spectral_input import (
    MODEL_LOGLAM,
    spectral_input_plan,
    spectral_inputs,
)
from napari_galam.errors import GalamInputError
from napari_galam.simulate.spaxel_spectra import layout_wavelengths
from napari_galam.sps.resolution import (
    air_wavelength,
    gaussian_operator,
    instrument_sigma_kms,
    kms_to_dex,
)

#: A sharp rest-frame spectrum: a continuum with narrow absorption lines.
REST_LOGLAM = np.arange(np.log10(2900.0), np.log10(11000.0), 2e-5)
LINES = (3934.0, 3969.0, 4102.0, 4304.0, 4861.0, 5175.0, 5270.0, 5894.0, 6563.0, 8542.0)


def sharp_spectrum() -> np.ndarray:
    wave = 10.0**REST_LOGLAM
    flux = (wave / 5000.0) ** 0.5
    for line in LINES:
        flux *= 1.0 - 0.5 * np.exp(-0.5 * ((wave - line) / 0.8) ** 2)
    return flux


def observe(layout: str, z: float, dispersion: float = 0.0) -> tuple[np.ndarray, np.ndarray, str]:
    """The sharp spectrum seen through ``layout`` at redshift ``z`` (no noise)."""
    wave, medium = layout_wavelengths(layout)
    air = air_wavelength(wave) if medium == "vacuum" else wave
    sigma = kms_to_dex(np.hypot(instrument_sigma_kms(layout, wave), dispersion))
    operator = gaussian_operator(REST_LOGLAM + np.log10(1 + z), np.log10(air), sigma)
    flux = operator @ sharp_spectrum() / np.asarray(operator.sum(axis=1)).ravel()
    return wave, flux, medium


def model_input(layout: str, z: float) -> np.ndarray:
    wave, flux, medium = observe(layout, z)
    plan = spectral_input_plan(wave, redshift=z, layout=layout, medium=medium)
    return spectral_inputs(plan, flux[None, :]).x[0]


def test_layouts_and_redshifts_give_the_same_input_where_both_cover() -> None:
    reference = model_input("MaNGA", 0.0)
    for layout, z in (("CALIFA", 0.02), ("MUSE", 0.05), ("MUSE", 0.2), ("SDSS", 0.1)):
        other = model_input(layout, z)
        both = (reference[:, 1] > 0.99) & (other[:, 1] > 0.99)
        assert both.sum() > 400, layout
        difference = np.abs(other[both, 0] - reference[both, 0])
        # the lines are 50% deep: without the common resolution they differ by ~10%
        assert np.median(difference) < 0.01 and difference.max() < 0.05, (layout, z)


def test_without_common_resolution_the_layouts_would_differ() -> None:
    """The check above can fail: CALIFA's and MUSE's own line depths differ a lot."""
    califa_wave, califa, _ = observe("CALIFA", 0.0)
    muse_wave, muse, _ = observe("MUSE", 0.0)
    line = 5175.0
    depth_califa = np.interp(line, califa_wave, califa) / np.interp(line + 40, califa_wave, califa)
    depth_muse = np.interp(line, muse_wave, muse) / np.interp(line + 40, muse_wave, muse)
    assert abs(depth_califa - depth_muse) > 0.05


def test_weights_are_zero_off_range_on_masked_pixels_and_sky_lines() -> None:
    wave, flux, medium = observe("MUSE", 0.05)
    mask = np.zeros(wave.size, bool)
    mask[(wave > 6000) & (wave < 6100)] = True
    plan = spectral_input_plan(wave, redshift=0.05, layout="MUSE", medium=medium)
    inputs = spectral_inputs(plan, flux[None, :], np.full((1, wave.size), 1e-4), mask[None, :])
    rest = 10.0**MODEL_LOGLAM
    weight = inputs.x[0, :, 1]
    assert np.all(weight[rest < 4700 / 1.05] == 0)  # bluer than MUSE sees
    assert np.all(weight[(rest > 6010 / 1.05) & (rest < 6090 / 1.05)] == 0)  # masked
    assert weight[np.argmin(np.abs(rest - 5577.34 / 1.05))] == 0  # [O I] sky line
    assert np.all(inputs.x[0, weight == 0, 0] == 0)
    assert inputs.usable[0] and 0.5 < inputs.coverage[0] < 0.75
    assert inputs.snr[0] > 10


def test_bad_axes_and_unusable_spectra() -> None:
    with pytest.raises(GalamInputError, match="increasing"):
        spectral_input_plan(np.array([5000.0, 4000.0]), redshift=0.0, layout="MUSE")
    with pytest.raises(GalamInputError, match="redshift"):
        spectral_input_plan(np.linspace(4000, 8000, 100), redshift=-0.1, layout="MUSE")
    short = np.linspace(4000.0, 4400.0, 200)
    plan = spectral_input_plan(short, redshift=0.0, layout="CALIFA")
    assert plan.reachable < 0.2
    inputs = spectral_inputs(plan, np.ones((2, short.size)))
    assert not inputs.usable.any() and np.all(inputs.x == 0)
    wave, flux, _ = observe("MUSE", 0.0)
    plan = spectral_input_plan(wave, redshift=0.0, layout="MUSE")
    inputs = spectral_inputs(plan, np.stack([np.full(wave.size, np.nan), -flux]))
    assert not inputs.usable.any()
