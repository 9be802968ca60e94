"""The narrow-band stack reader: multi-extension FITS, cube + FILTERS table, files."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from survey_files import (
    celestial_header,
    write_califa_cube,
    write_narrowband_cube_with_table,
    write_narrowband_files,
    write_narrowband_mef,
)

from napari_galam.errors import GalamInputError
from napari_galam.io.cubes import sniff_cube_layout
from napari_galam.io.narrowband import read_narrowband, sniff_narrowband

FLAM = u.erg / u.s / u.cm**2 / u.AA


@pytest.mark.parametrize("lazy", [True, False])
def test_mef_stack(tmp_path: Path, lazy: bool) -> None:
    written = write_narrowband_mef(tmp_path / "jpas_tile.fits", n_filters=6)
    assert sniff_narrowband(written.path) == "mef"
    assert sniff_cube_layout(written.path) is None
    stack = read_narrowband(written.path, lazy=lazy)
    assert stack.layout == "mef" and stack.name == "jpas_tile"
    assert stack.shape == (6, 16, 15)
    assert list(stack.filter_names) == written.extra["names"]
    np.testing.assert_allclose(stack.wavelength, written.wave)
    np.testing.assert_allclose(stack.fwhm, 145.0)
    np.testing.assert_allclose(np.asarray(stack.data), written.flux)
    np.testing.assert_allclose(np.asarray(stack.variance), written.variance, rtol=1e-6)
    assert isinstance(stack.data, da.Array) == lazy
    assert stack.unit == FLAM
    assert stack.pixel_scale_arcsec == pytest.approx(0.456)
    assert stack.celestial_wcs.naxis == 2


def test_mef_without_wavelengths_or_variance(tmp_path: Path) -> None:
    written = write_narrowband_mef(
        tmp_path / "s.fits", n_filters=3, with_variance=False, with_wavelengths=False
    )
    stack = read_narrowband(written.path)
    assert stack.variance is None
    assert np.isnan(stack.wavelength).all() and np.isnan(stack.fwhm).all()


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_cube_with_filter_table(tmp_path: Path, suffix: str) -> None:
    written = write_narrowband_cube_with_table(tmp_path / f"stack{suffix}", n_filters=8)
    assert sniff_narrowband(written.path) == "cube+table"
    assert sniff_cube_layout(written.path) is None  # not mistaken for an IFU cube
    stack = read_narrowband(written.path)
    assert stack.layout == "cube+table" and stack.shape == (8, 12, 13)
    assert list(stack.filter_names) == written.extra["names"]
    np.testing.assert_allclose(stack.wavelength, written.wave)
    np.testing.assert_allclose(stack.fwhm, written.extra["fwhm"])
    np.testing.assert_allclose(np.asarray(stack.data), written.flux)
    np.testing.assert_allclose(np.asarray(stack.variance), written.variance, rtol=1e-6)


def test_filter_table_in_nanometres_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "nm.fits"
    table = Table({"Filter": ["a", "b"], "Wave": [400.0, 500.0]})
    table["Wave"].unit = "nm"
    hdu = fits.table_to_hdu(table)
    hdu.name = "FILTERS"
    fits.HDUList([fits.PrimaryHDU(np.ones((2, 4, 5), np.float32)), hdu]).writeto(path)
    stack = read_narrowband(path)
    np.testing.assert_allclose(stack.wavelength, [4000.0, 5000.0])
    assert np.isnan(stack.fwhm).all() and stack.filter_names == ("a", "b")


@pytest.mark.parametrize("as_list", [False, True])
def test_folder_or_list_of_files_sorted_by_wavelength(tmp_path: Path, as_list: bool) -> None:
    written = write_narrowband_files(tmp_path / "tiles", n_filters=5)
    source = sorted((tmp_path / "tiles").glob("*.fits"), reverse=True) if as_list else written.path
    assert sniff_narrowband(source) == "files"
    stack = read_narrowband(source)
    assert stack.layout == "files" and stack.shape == (5, 10, 9)
    assert list(stack.filter_names) == written.extra["names"]
    assert np.all(np.diff(stack.wavelength) > 0)
    np.testing.assert_allclose(np.asarray(stack.data), written.flux)
    assert stack.variance is None


def test_single_filter_image_is_not_sniffed_as_stack(tmp_path: Path) -> None:
    written = write_narrowband_files(tmp_path / "one", n_filters=1)
    only = next((tmp_path / "one").glob("*.fits"))
    assert sniff_narrowband(only) is None
    stack = read_narrowband(only)  # but it reads as a one-plane stack when asked
    assert stack.shape[0] == 1 and stack.filter_names == tuple(written.extra["names"])


def test_sniff_refuses_ifu_cubes_and_images(tmp_path: Path) -> None:
    cube = write_califa_cube(tmp_path / "c.fits", nwave=20).path
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(image)
    for path in (cube, image, tmp_path / "missing.fits", [image]):
        assert sniff_narrowband(path) is None


# ---------------------------------------------------------------------------------------
# Malformed stacks


def test_refuses_table_rows_not_matching_planes(tmp_path: Path) -> None:
    written = write_narrowband_cube_with_table(tmp_path / "s.fits", n_filters=4)
    with fits.open(written.path) as hdul:
        hdul["FILTERS"] = fits.BinTableHDU(hdul["FILTERS"].data[:3], name="FILTERS")
        hdul.writeto(tmp_path / "short.fits")
    path = tmp_path / "short.fits"
    with pytest.raises(GalamInputError, match="3 rows but the cube.*4 planes") as info:
        read_narrowband(path)
    assert str(path) in str(info.value)


def test_refuses_table_without_wavelength(tmp_path: Path) -> None:
    path = tmp_path / "nowave.fits"
    hdu = fits.table_to_hdu(Table({"name": ["a", "b"]}))
    hdu.name = "FILTERS"
    fits.HDUList([fits.PrimaryHDU(np.ones((2, 3, 3), np.float32)), hdu]).writeto(path)
    with pytest.raises(GalamInputError, match="expected 'name' and 'wavelength'"):
        read_narrowband(path)


def test_refuses_images_of_different_shape_or_grid(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    write_narrowband_files(folder, n_filters=3)
    header = celestial_header(11, 9, scale_arcsec=0.456)
    header["FILTER"], header["WAVELEN"] = "odd", 9000.0
    fits.PrimaryHDU(np.zeros((11, 9), np.float32), header=header).writeto(folder / "odd.fits")
    with pytest.raises(GalamInputError, match=r"odd\.fits.*shape"):
        read_narrowband(folder)
    (folder / "odd.fits").unlink()
    header = celestial_header(10, 9, scale_arcsec=0.456, ra=151.0)
    header["FILTER"], header["WAVELEN"] = "shifted", 9000.0
    fits.PrimaryHDU(np.zeros((10, 9), np.float32), header=header).writeto(folder / "shift.fits")
    with pytest.raises(GalamInputError, match=r"shift\.fits.*same pixel grid"):
        read_narrowband(folder)


def test_refuses_duplicate_names_and_non_stacks(tmp_path: Path) -> None:
    path = tmp_path / "dup.fits"
    header = fits.Header()
    header["FILTER"] = "J0400"
    hdus = [fits.PrimaryHDU()] + [
        fits.ImageHDU(np.zeros((3, 3), np.float32), header=header) for _ in range(2)
    ]
    fits.HDUList(hdus).writeto(path)
    with pytest.raises(GalamInputError, match="unique.*J0400"):
        read_narrowband(path)
    image = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(image)
    with pytest.raises(GalamInputError, match="not a narrow-band stack") as info:
        read_narrowband(image)
    assert str(image) in str(info.value)
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(GalamInputError, match="no FITS files"):
        read_narrowband(empty)
