"""Per-spaxel narrow-band SEDs from a cube, masks, S/N and Voronoi binning."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.core.spaxels import bin_seds, cube_to_seds, filters_within, voronoi_bins
from napari_galam.errors import GalamInputError
from napari_galam.sps.filters import jpas_filters, load_filters
from napari_galam.sps.library import load_ssp_library
from napari_galam.sps.photometry import synthetic_fluxes


@pytest.fixture(scope="module")
def califa_like():
    """A 12 x 10 spaxel cube at CALIFA V500 sampling made of a real E-MILES SSP."""
    lib = load_ssp_library()
    wave = 3749.0 + 2.0 * np.arange(1877)
    spectrum = np.interp(wave, lib.wave, lib.templates[:, 18, 4].astype(float))
    spectrum /= np.median(spectrum)
    yy, xx = np.mgrid[:12, :10]
    amplitude = 10.0 * np.exp(-np.hypot(yy - 6, xx - 5) / 3.0)
    cube = spectrum[:, None, None] * amplitude[None]
    variance = np.broadcast_to((0.05 * amplitude[None]) ** 2 + 1e-4, cube.shape).copy()
    return wave, cube, variance, spectrum, amplitude


def test_seds_equal_direct_photometry(califa_like) -> None:
    wave, cube, variance, spectrum, amplitude = califa_like
    jpas = jpas_filters()
    names = filters_within(wave, jpas)
    assert 30 <= len(names) <= 40  # Liew-Cain et al.: 36 J-PAS filters in CALIFA's range
    filters = load_filters(names)
    seds = cube_to_seds(wave, cube, filters, variance=variance, rows_per_block=5)
    assert seds.flux.shape == (len(names), 12, 10)
    direct = synthetic_fluxes(wave, spectrum, filters)
    np.testing.assert_allclose(seds.flux[:, 6, 5], direct * amplitude[6, 5], rtol=1e-5)
    assert np.all(seds.valid)
    assert seds.snr[6, 5] > seds.snr[0, 0]  # brighter centre, higher S/N
    assert list(seds.band_names) == names
    assert np.all(np.diff(seds.band_centres) > 0)


def test_bad_pixels_are_left_out_not_zeroed(califa_like) -> None:
    wave, cube, variance, spectrum, amplitude = califa_like
    filters = load_filters(filters_within(wave, jpas_filters()))
    damaged = cube.copy()
    damaged[400:403, 3, 3] = np.nan  # a few bad channels
    mask = np.zeros(cube.shape, bool)
    mask[800:802, 4, 4] = True
    seds = cube_to_seds(wave, damaged, filters, variance=variance, mask=mask)
    clean = cube_to_seds(wave, cube, filters, variance=variance)
    np.testing.assert_allclose(seds.flux[:, 3, 3], clean.flux[:, 3, 3], rtol=0.02)
    np.testing.assert_allclose(seds.flux[:, 4, 4], clean.flux[:, 4, 4], rtol=0.02)
    dead = cube.copy()
    dead[:, 0, 0] = np.nan
    assert not cube_to_seds(wave, dead, filters).valid[0, 0]


def test_shape_errors_name_the_cube(califa_like) -> None:
    wave, cube, *_ = califa_like
    filters = load_filters(filters_within(wave, jpas_filters()))
    with pytest.raises(GalamInputError, match="mycube.*channels"):
        cube_to_seds(wave[:-5], cube, filters, what="mycube")
    with pytest.raises(GalamInputError, match="3-D"):
        cube_to_seds(wave, cube[0], filters)
    with pytest.raises(GalamInputError, match="not covered"):
        cube_to_seds(wave, cube, jpas_filters())  # J-PAS reaches 9100 A, CALIFA 7500 A


def test_voronoi_binning_reaches_the_target(califa_like) -> None:
    _, _, _, _, amplitude = califa_like
    noise = np.full(amplitude.shape, 0.5)
    bins = voronoi_bins(amplitude, noise, target_snr=10.0, min_snr=0.5)
    assert bins.n_bins > 1
    assert np.all(bins.bin_id[amplitude / noise < 0.5] == -1)
    assert np.median(bins.snr) >= 7.0
    # bright spaxels that already reach the target stay alone
    alone = voronoi_bins(amplitude, noise / 100, target_snr=5.0)
    assert alone.n_bins == amplitude.size
    with pytest.raises(GalamInputError, match="positive"):
        voronoi_bins(amplitude, noise, target_snr=0)


def test_bin_seds_averages_members(califa_like) -> None:
    wave, cube, variance, *_ = califa_like
    filters = load_filters(filters_within(wave, jpas_filters())[:5])
    seds = cube_to_seds(wave, cube, filters, variance=variance)
    bins = voronoi_bins(np.ones((12, 10)), np.full((12, 10), 0.5), target_snr=2.0)
    binned = bin_seds(seds, bins)
    assert binned.shape == (bins.n_bins, 5)
    members = bins.bin_id == 0
    np.testing.assert_allclose(binned[0], seds.flux[:, members].mean(axis=1), rtol=1e-5)
