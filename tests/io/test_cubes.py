"""The IFU cube reader on files written in the CALIFA, MaNGA, MUSE and generic layouts."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
from astropy.io import fits
from survey_files import (
    write_califa_cube,
    write_generic_cube,
    write_manga_logcube,
    write_muse_cube,
    write_narrowband_cube_with_table,
    write_sparse_muse_cube,
)

from napari_galam.errors import GalamInputError
from napari_galam.io.cubes import SpectralCube, read_cube, sniff_cube_layout, spaxel_spectrum
from napari_galam.io.headers import parse_flux_unit

FLAM = u.erg / u.s / u.cm**2 / u.AA


def _assert_round_trip(cube: SpectralCube, written) -> None:
    np.testing.assert_allclose(cube.wave, written.wave, rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(cube.data), written.flux)
    if written.variance is not None:
        np.testing.assert_allclose(np.asarray(cube.variance), written.variance, rtol=1e-6)
    if written.bad is not None:
        np.testing.assert_array_equal(np.asarray(cube.mask), written.bad)


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_califa_cube(tmp_path: Path, suffix: str) -> None:
    written = write_califa_cube(tmp_path / f"TOY.V500.rscube{suffix}", nwave=250)
    assert sniff_cube_layout(written.path) == "CALIFA"
    cube = read_cube(written.path)
    assert cube.layout == "CALIFA"
    assert cube.shape == (250, 14, 12)
    assert cube.name == "TOY.V500.rscube"
    # linear V500 grid: 3749 A + 2 A per plane
    np.testing.assert_allclose(cube.wave[:3], [3749.0, 3751.0, 3753.0])
    assert cube.unit == u.Unit(1e-16 * FLAM)
    assert cube.pixel_scale_arcsec == pytest.approx(1.0)
    assert cube.wave_medium == "air"
    assert cube.celestial_wcs.naxis == 2 and cube.celestial_wcs.has_celestial
    assert cube.celestial_wcs.wcs.crval[0] == pytest.approx(150.1)
    if suffix == ".fits":
        assert isinstance(cube.data, np.memmap)
    else:  # gzip cannot be memory-mapped: dask reads slabs on demand
        assert isinstance(cube.data, da.Array)
    assert isinstance(cube.variance, da.Array) and isinstance(cube.mask, da.Array)
    _assert_round_trip(cube, written)  # variance = ERROR**2, mask = BADPIX == 1
    assert np.asarray(cube.mask).sum() == 20


def test_califa_with_ctype3_and_no_bunit_uses_survey_unit(tmp_path: Path) -> None:
    written = write_califa_cube(tmp_path / "c.fits", ctype3="AWAV", bunit=None, nwave=40)
    cube = read_cube(written.path)
    np.testing.assert_allclose(cube.wave, written.wave)
    assert cube.unit == u.Unit(1e-16 * FLAM)


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_manga_logcube(tmp_path: Path, suffix: str) -> None:
    written = write_manga_logcube(tmp_path / f"manga-9999-1901-LOGCUBE{suffix}")
    assert sniff_cube_layout(written.path) == "MaNGA"
    cube = read_cube(written.path)
    assert cube.layout == "MaNGA" and cube.wave_medium == "vacuum"
    # logarithmic grid: constant step in log10(lambda) of 1e-4
    np.testing.assert_allclose(np.diff(np.log10(cube.wave)), 1e-4, rtol=1e-6)
    assert cube.unit == u.Unit(1e-17 * FLAM)  # "/spaxel" dropped, "Ang" = Angstrom
    assert cube.pixel_scale_arcsec == pytest.approx(0.5)
    _assert_round_trip(cube, written)
    variance = np.asarray(cube.variance)
    ivar = written.extra["ivar"]
    assert np.all(np.isinf(variance[ivar == 0]))
    np.testing.assert_allclose(
        variance[ivar > 0], 1.0 / ivar[ivar > 0].astype(np.float64), rtol=1e-6
    )
    mask = np.asarray(cube.mask)
    bits = written.extra["mask"]
    assert mask[(bits & (1 << 10)) != 0].all()  # DONOTUSE
    nocov_only = (bits == 1) & (ivar > 0)
    assert nocov_only.any() and not mask[nocov_only].any()  # bit 0 alone is not DONOTUSE


@pytest.mark.parametrize("wave_in_m", [False, True])
def test_muse_cube_wavelength_in_angstrom_or_metres(tmp_path: Path, wave_in_m: bool) -> None:
    written = write_muse_cube(tmp_path / "DATACUBE_FINAL.fits", wave_in_m=wave_in_m)
    assert sniff_cube_layout(written.path) == "MUSE"
    cube = read_cube(written.path)
    assert cube.layout == "MUSE" and cube.wave_medium == "air"
    np.testing.assert_allclose(cube.wave[:2], [4749.76, 4751.01], rtol=1e-9)
    np.testing.assert_allclose(np.diff(cube.wave), 1.25, rtol=1e-6)
    assert cube.unit == u.Unit(1e-20 * FLAM)
    assert cube.pixel_scale_arcsec == pytest.approx(0.2)
    assert isinstance(cube.data, np.memmap) and isinstance(cube.variance, np.memmap)
    _assert_round_trip(cube, written)


def test_muse_cube_without_dq_has_no_mask(tmp_path: Path) -> None:
    written = write_muse_cube(tmp_path / "cube.fits", with_dq=False, nwave=30)
    cube = read_cube(written.path)
    assert cube.mask is None
    _assert_round_trip(cube, written)


def test_generic_cube_in_nanometres(tmp_path: Path) -> None:
    written = write_generic_cube(tmp_path / "generic.fits")
    assert sniff_cube_layout(written.path) == "generic"
    cube = read_cube(written.path)
    assert cube.layout == "generic"
    np.testing.assert_allclose(cube.wave[:2], [4500.0, 4502.5])
    assert cube.unit == FLAM
    assert cube.pixel_scale_arcsec == pytest.approx(0.3)
    assert cube.mask is None
    _assert_round_trip(cube, written)  # variance from the ERR extension, squared


def test_lazy_false_reads_native_numpy(tmp_path: Path) -> None:
    written = write_califa_cube(tmp_path / "c.fits.gz", nwave=30)
    cube = read_cube(written.path, lazy=False)
    for array in (cube.data, cube.variance, cube.mask):
        assert type(array) is np.ndarray and array.dtype.isnative
    _assert_round_trip(cube, written)


def test_big_muse_cube_opens_without_reading_data(tmp_path: Path) -> None:
    """A 300 x 300 x 3700 float32 cube (2 x 1.3 GB, sparse on disk) stays on disk."""
    path = write_sparse_muse_cube(tmp_path / "big_DATACUBE.fits")
    try:
        assert os.path.getsize(path) > 2.6e9
        cube = read_cube(path)
        assert cube.shape == (3700, 300, 300)
        assert isinstance(cube.data, np.memmap) and isinstance(cube.variance, np.memmap)
        assert cube.data.dtype == np.dtype(">f4")
        assert cube.wave.size == 3700
        # one plane and one spectrum read on demand
        assert float(np.asarray(cube.data[1234]).sum()) == 0.0
        wave, flux, variance = spaxel_spectrum(cube, 150, 150)
        assert flux.shape == (3700,) and variance.shape == (3700,)
        del cube, flux, variance
    finally:
        path.unlink()


def test_spaxel_spectrum_masks_bad_pixels(tmp_path: Path) -> None:
    written = write_califa_cube(tmp_path / "c.fits", nwave=60, n_bad=200)
    cube = read_cube(written.path)
    y, x = np.argwhere(written.bad.any(axis=0))[0]
    wave, flux, variance = spaxel_spectrum(cube, y, x)
    bad = written.bad[:, y, x]
    assert np.isnan(flux[bad]).all() and np.isnan(variance[bad]).all()
    np.testing.assert_allclose(flux[~bad], written.flux[~bad, y, x])
    np.testing.assert_allclose(wave, written.wave)
    with pytest.raises(GalamInputError, match="outside the cube"):
        spaxel_spectrum(cube, 14, 0)


def test_sniff_refuses_other_files(tmp_path: Path) -> None:
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((5, 6), np.float32)).writeto(image)
    stack = write_narrowband_cube_with_table(tmp_path / "nb.fits").path
    text = tmp_path / "notes.fits"
    text.write_text("not a FITS file\n" * 200)
    for path in (image, stack, text, tmp_path / "missing.fits"):
        assert sniff_cube_layout(path) is None


# ---------------------------------------------------------------------------------------
# Malformed files: refused with a message naming the file and what was expected


def _refused(path: Path, match: str) -> str:
    with pytest.raises(GalamInputError, match=match) as info:
        read_cube(path)
    assert str(path) in str(info.value)
    assert sniff_cube_layout(path) is None
    return str(info.value)


def test_refuses_missing_extension(tmp_path: Path) -> None:
    califa = write_califa_cube(tmp_path / "c.fits", nwave=20, omit=("BADPIX",)).path
    _refused(califa, "lacks extension.*BADPIX")
    manga = write_manga_logcube(tmp_path / "m.fits", nwave=20, omit=("WAVE",)).path
    _refused(manga, "lacks extension.*WAVE")


def test_refuses_wrong_naxis(tmp_path: Path) -> None:
    path = write_manga_logcube(tmp_path / "m.fits", nwave=20).path
    with fits.open(path) as hdul:
        hdul["FLUX"].data = hdul["FLUX"].data[0]
        hdul.writeto(tmp_path / "flat.fits")
    _refused(tmp_path / "flat.fits", "NAXIS = 2; expected a 3-D cube")


def test_refuses_mismatched_shapes(tmp_path: Path) -> None:
    path = write_manga_logcube(tmp_path / "m.fits", nwave=20).path
    with fits.open(path) as hdul:
        hdul["IVAR"].data = hdul["IVAR"].data[:, :-1, :]
        hdul.writeto(tmp_path / "bad_ivar.fits")
    _refused(tmp_path / "bad_ivar.fits", "IVAR has shape.*expected")
    with fits.open(path) as hdul:
        hdul["WAVE"].data = hdul["WAVE"].data[:-3]
        hdul.writeto(tmp_path / "bad_wave.fits")
    _refused(tmp_path / "bad_wave.fits", "one wavelength per plane")


def test_refuses_cube_without_spectral_axis(tmp_path: Path) -> None:
    path = tmp_path / "stack.fits"
    header = fits.Header()
    header["CTYPE3"] = "FREQ"
    fits.PrimaryHDU(np.zeros((4, 5, 6), np.float32), header=header).writeto(path)
    _refused(path, "no spectral axis")
    bare = tmp_path / "bare.fits"
    fits.PrimaryHDU(np.zeros((4, 5, 6), np.float32)).writeto(bare)
    _refused(bare, "no spectral axis")


def test_refuses_implausible_wavelengths(tmp_path: Path) -> None:
    # a spectral axis claiming metres but holding Angstrom values
    path = write_generic_cube(tmp_path / "g.fits", cunit3="m", crval3=4500.0, cdelt3=1.0).path
    _refused(path, "expected optical/infrared")


def test_refuses_truncated_files(tmp_path: Path) -> None:
    path = write_muse_cube(tmp_path / "cube.fits", nwave=60).path
    data = path.read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(data[: len(data) - 20000])
    _refused(cut, "truncated")
    cut_gz = tmp_path / "cut.fits.gz"
    compressed = gzip.compress(data)
    cut_gz.write_bytes(compressed[: len(compressed) // 2])
    _refused(cut_gz, "truncated|damaged")


def test_refuses_non_fits_and_empty(tmp_path: Path) -> None:
    text = tmp_path / "notes.fits"
    text.write_text("SIMPLE is not enough\n" * 300)
    _refused(text, "not a readable FITS|not an IFU cube|no HDU")
    empty = tmp_path / "empty.fits"
    empty.touch()
    _refused(empty, "empty")
    with pytest.raises(GalamInputError, match="not found"):
        read_cube(tmp_path / "nothing.fits")


def test_refuses_2d_image_with_listing(tmp_path: Path) -> None:
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((5, 6), np.float32)).writeto(path)
    message = _refused(path, "not an IFU cube")
    assert "PRIMARY (2-D)" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10**(-20)*erg/s/cm**2/Angstrom", 1e-20 * FLAM),
        ("1E-17 erg/s/cm^2/Ang/spaxel", 1e-17 * FLAM),
        ("10^-16 erg/s/cm^2/A", 1e-16 * FLAM),
        ("erg/(s cm2 Angstrom)", FLAM),
    ],
)
def test_parse_flux_unit(text: str, expected) -> None:
    assert parse_flux_unit(text) == u.Unit(expected)


def test_parse_flux_unit_falls_back_to_default() -> None:
    default = u.Unit(1e-16 * FLAM)
    assert parse_flux_unit("counts", default=default) == default
    assert parse_flux_unit("not a unit at all", default=default) == default
    assert parse_flux_unit(None) is None


@pytest.mark.parametrize(
    ("writer", "name"),
    [
        (write_califa_cube, "c.fits.gz"),
        (write_manga_logcube, "m.fits"),
        (write_manga_logcube, "m.fits.gz"),
        (write_muse_cube, "mu.fits"),
    ],
)
def test_spaxel_fast_path_matches_full_arrays(tmp_path: Path, writer, name: str) -> None:
    written = writer(tmp_path / name, nwave=40)
    lazy, eager = read_cube(written.path), read_cube(written.path, lazy=False)
    assert lazy.spaxel_reader is not None and eager.spaxel_reader is None
    bad = written.bad if written.bad is not None else np.zeros(written.flux.shape, bool)
    for y, x in [(0, 0), (3, 5), tuple(np.argwhere(bad.any(axis=0))[0])]:
        fast, full = spaxel_spectrum(lazy, y, x), spaxel_spectrum(eager, y, x)
        for a, b in zip(fast, full, strict=True):
            np.testing.assert_array_equal(a, b)
        expected = written.flux[:, y, x].astype(np.float64)
        expected[bad[:, y, x]] = np.nan
        np.testing.assert_array_equal(fast[1], expected)


def test_refuses_tile_compressed_cube(tmp_path: Path) -> None:
    written = write_muse_cube(tmp_path / "cube.fits", nwave=12, with_dq=False)
    with fits.open(written.path) as hdul:
        packed = fits.HDUList(
            [hdul[0].copy()]
            + [fits.CompImageHDU(h.data, header=h.header, name=h.name) for h in hdul[1:]]
        )
        packed.writeto(tmp_path / "cube.fits.fz")
    _refused(tmp_path / "cube.fits.fz", "tile-compressed")


def test_dask_arrays_report_the_dtype_they_hold(tmp_path: Path) -> None:
    cube = read_cube(write_califa_cube(tmp_path / "c.fits.gz", nwave=30).path)
    assert cube.data.dtype == np.asarray(cube.data[:2]).dtype == np.float32
    assert cube.mask.dtype == np.asarray(cube.mask[:2]).dtype == bool
