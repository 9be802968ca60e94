"""Tests of the numpy preprocessing that feeds the models (no TensorFlow)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_galam.core import preprocess as pp
from napari_galam.errors import GalamInputError


def test_grid_is_the_papers_1A_grid():
    assert pp.N_SPECTRUM_POINTS == 4171
    assert pp.SPECTRUM_WAVELENGTH[0] == 3830.0
    assert pp.SPECTRUM_WAVELENGTH[-1] == 8000.0
    assert np.all(np.diff(pp.SPECTRUM_WAVELENGTH) == 1.0)


def test_preprocess_spectrum_resamples_linearly_and_normalises():
    wave = np.linspace(3700.0, 8200.0, 3000)
    flux = 2.0 + 0.001 * wave  # linear: interpolation is exact
    out = pp.preprocess_spectrum(wave, flux)
    assert out.shape == (4171,) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
    expected = (pp.SPECTRUM_WAVELENGTH - 3830.0) / (8000.0 - 3830.0)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_preprocess_spectrum_drops_nan_and_rejects_bad_input():
    wave = np.linspace(3800.0, 8100.0, 500)
    flux = np.sin(wave / 300.0) + 3
    flux[10] = np.nan
    assert np.all(np.isfinite(pp.preprocess_spectrum(wave, flux)))
    with pytest.raises(GalamInputError, match="increasing"):
        pp.preprocess_spectrum(wave[::-1], flux)
    with pytest.raises(GalamInputError, match="same|one length"):
        pp.preprocess_spectrum(wave, flux[:-1])


def test_minmax_is_idempotent_and_flat_spectra_become_zero():
    rng = np.random.default_rng(1)
    spectra = rng.normal(5, 2, (4, 4171))
    once = pp.preprocess_spectra(spectra)
    np.testing.assert_allclose(pp.preprocess_spectra(once), once, atol=1e-6)
    assert np.allclose(once.min(axis=1), 0) and np.allclose(once.max(axis=1), 1)
    flat = pp.minmax_normalise(np.ones((2, 10)))
    assert np.all(flat == 0)
    with pytest.raises(GalamInputError, match="4171"):
        pp.preprocess_spectra(np.zeros((2, 4000)))


def test_rest_frame_spectrum_puts_a_line_at_its_rest_wavelength():
    assert pp.N_REST_POINTS == 3201 and pp.REST_WAVELENGTH[[0, -1]].tolist() == [3800.0, 7000.0]
    z = 0.12
    wave = np.linspace(3800.0, 9200.0, 6000)  # SDSS's observed range
    # A continuum falling to the red and an emission line at rest H-beta (4861.3 A).
    flux = 5.0 - wave / 3000.0 + 4.0 * np.exp(-0.5 * ((wave - 4861.3 * (1 + z)) / 3.0) ** 2)
    rest = pp.rest_frame_spectrum(wave, flux, z)
    assert rest.shape == (3201,) and rest.dtype == np.float32
    assert rest.min() == 0.0 and rest.max() == pytest.approx(1.0)
    assert pp.REST_WAVELENGTH[np.argmax(rest)] == pytest.approx(4861.0, abs=1.0)
    # The batch form agrees row by row; model_spectrum dispatches on the frame.
    batch = pp.rest_frame_spectra(wave, np.stack([flux, flux]), [z, z])
    np.testing.assert_array_equal(batch[1], rest)
    np.testing.assert_array_equal(pp.model_spectrum(wave, flux, redshift=z, frame="rest"), rest)
    observed = pp.model_spectrum(wave, flux, redshift=z, frame="observed")
    np.testing.assert_array_equal(observed, pp.preprocess_spectrum(wave, flux))
    np.testing.assert_allclose(pp.preprocess_spectra(batch, frame="rest"), batch, atol=1e-6)


def test_rest_frame_spectrum_says_what_it_needs():
    wave = np.linspace(3800.0, 9200.0, 2000)
    flux = np.ones_like(wave)
    for bad in (None, float("nan"), "z", 2.0):
        with pytest.raises(GalamInputError, match="redshift"):
            pp.rest_frame_spectrum(wave, flux, bad)
    # At z = 0.5 the red end reaches only 6133 A in the rest frame.
    with pytest.raises(GalamInputError, match="3800-7000"):
        pp.rest_frame_spectrum(wave, flux, 0.5)
    with pytest.raises(GalamInputError, match="rest_frame_spectrum"):
        pp.preprocess_spectra(np.zeros((2, 4171)), frame="rest")
    with pytest.raises(GalamInputError, match="frame"):
        pp.model_spectrum(wave, flux, frame="sideways")
    with pytest.raises(GalamInputError, match="needs"):
        pp.model_spectrum(wave, flux, frame="rest")


def test_preprocess_images_scales_and_block_averages():
    images = np.zeros((2, 128, 128, 3), dtype=np.uint8)
    images[0, :2, :2, 0] = 255  # one 2x2 block, fully on -> 1.0 after 2x2 mean
    images[1, 0, 0, 1] = 255  # a quarter of a block -> 0.25
    same = pp.preprocess_images(images)
    assert same.shape == (2, 128, 128, 3) and same.dtype == np.float32
    assert same.max() == 1.0
    half = pp.preprocess_images(images, size=64)
    assert half.shape == (2, 64, 64, 3)
    assert half[0, 0, 0, 0] == pytest.approx(1.0)
    assert half[1, 0, 0, 1] == pytest.approx(0.25)
    assert half.sum() == pytest.approx(1.25)
    assert images[0, 0, 0, 0] == 255  # input untouched


def test_preprocess_images_rejects_what_it_cannot_use():
    with pytest.raises(GalamInputError, match="multiple"):
        pp.preprocess_images(np.zeros((1, 100, 100, 3), np.uint8), size=64)
    with pytest.raises(GalamInputError, match=r"\(n, height, width, 3\)"):
        pp.preprocess_images(np.zeros((1, 128, 128), np.uint8))
    with pytest.raises(GalamInputError, match=r"\[0, 1\]"):
        pp.preprocess_images(np.full((1, 64, 64, 3), 7.0), size=64)


def test_normalise_seds_keeps_shape_and_flags_bad_spaxels():
    seds = np.ones((3, 4, 10))
    seds[0, 0] *= 5.0  # brighter, same shape -> same normalised SED
    seds[1, 1, 3] = np.nan
    seds[2, 2] = 0.0
    out, valid = pp.normalise_seds(seds)
    assert out.shape == (3, 4, 10) and valid.shape == (3, 4)
    np.testing.assert_allclose(out[0, 0], out[0, 1])
    assert not valid[1, 1] and not valid[2, 2] and valid.sum() == 10
    assert np.all(out[~valid] == 0)


def test_module_imports_without_tensorflow():
    assert "napari_galam.core.preprocess" in sys.modules
    import subprocess

    code = "import napari_galam.core.preprocess, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
