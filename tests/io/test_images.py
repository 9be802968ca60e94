"""The cutout reader on real JPEG, PNG and FITS files, and on broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_galam.errors import GalamInputError
from napari_galam.io.images import read_cutout


def _rgb(seed: int = 0, shape=(40, 50, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".JPEG"])
def test_reads_rgb_raster(tmp_path: Path, suffix: str) -> None:
    pixels = _rgb()
    path = tmp_path / f"cutout{suffix}"
    Image.fromarray(pixels).save(path, format="PNG" if suffix == ".png" else "JPEG", quality=95)
    cutout = read_cutout(path)
    assert cutout.kind == "rgb"
    assert cutout.data.shape == (40, 50, 3) and cutout.data.dtype == np.uint8
    assert cutout.name == "cutout"
    if suffix == ".png":  # lossless
        np.testing.assert_array_equal(cutout.data, pixels)


def test_reads_grey_16bit_and_rgba_png(tmp_path: Path) -> None:
    grey = (np.arange(30 * 20, dtype=np.uint16).reshape(30, 20) * 97).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    cutout = read_cutout(tmp_path / "grey16.png")
    assert cutout.kind == "grey" and cutout.data.shape == (30, 20)
    np.testing.assert_array_equal(cutout.data.astype(np.uint16), grey)

    rgba = np.dstack([_rgb(), np.full((40, 50), 255, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    assert read_cutout(tmp_path / "rgba.png").data.shape == (40, 50, 3)


def test_reads_2d_fits_with_header_and_wcs(fits_image_file) -> None:
    cutout = read_cutout(fits_image_file())
    assert cutout.kind == "grey"
    assert cutout.data.shape == (64, 80) and cutout.data.dtype == np.float32
    assert np.isnan(cutout.data[0, 0])
    assert cutout.header["BUNIT"] == "nanomaggy"
    assert cutout.wcs is not None and cutout.wcs.has_celestial
    ra, dec = cutout.wcs.pixel_to_world_values(39, 31)
    assert ra == pytest.approx(150.1, abs=1e-3) and dec == pytest.approx(2.2, abs=1e-3)


def test_reads_3d_fits_as_bands(fits_image_file) -> None:
    cutout = read_cutout(fits_image_file("gri.fits", bands=3))
    assert cutout.kind == "multiband"
    assert cutout.data.shape == (3, 64, 80)
    assert cutout.band_names == ("g", "r", "i")
    assert cutout.wcs is not None


def test_reads_gzipped_fits(fits_image_file, tmp_path: Path) -> None:
    import gzip

    plain = fits_image_file()
    packed = tmp_path / "frame-r.fits.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    cutout = read_cutout(packed)
    assert cutout.data.shape == (64, 80) and cutout.name == "frame-r"


def test_truncated_fits_is_refused_with_the_file_name(fits_image_file, tmp_path: Path) -> None:
    good = fits_image_file()
    bad = tmp_path / "truncated.fits"
    bad.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(GalamInputError, match="truncated.fits"):
        read_cutout(bad)


def test_text_named_fits_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.fits"
    bad.write_text("this is not a FITS file\n" * 10)
    with pytest.raises(GalamInputError, match=r"notes\.fits.*(not a (valid|readable) FITS|no 2-D)"):
        read_cutout(bad)


def test_empty_jpeg_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    with pytest.raises(GalamInputError, match=r"empty\.jpg.*empty"):
        read_cutout(bad)


def test_damaged_jpeg_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    with pytest.raises(GalamInputError, match=r"garbage\.jpg"):
        read_cutout(bad)


def test_tiny_and_odd_inputs_are_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(GalamInputError, match="at least 2x2"):
        read_cutout(tmp_path / "dot.png")
    with pytest.raises(GalamInputError, match="not a cutout file"):
        read_cutout(tmp_path / "table.csv")
    with pytest.raises(GalamInputError, match="file not found"):
        read_cutout(tmp_path / "missing.png")


def test_fits_without_image_is_refused(sdss_spectrum_file) -> None:
    with pytest.raises(GalamInputError, match="no 2-D or 3-D image"):
        read_cutout(sdss_spectrum_file())


def test_reader_does_not_modify_or_keep_file_open(fits_image_file) -> None:
    path = fits_image_file()
    before = path.read_bytes()
    read_cutout(path)
    assert path.read_bytes() == before
    path.unlink()  # would fail on some systems if a handle were still open
