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


# --------------------------------------------------------------------------------------
# FITS cutouts in g, r, i -> the models' gri composite; SDSS-size JPEGs


@pytest.fixture(scope="module")
def simulated_cutout():
    from napari_galam.simulate.datasets import simulate_sdss_galaxy

    return simulate_sdss_galaxy(np.random.default_rng(1), blend_probability=0.0).cutout


def test_composite_constants_are_the_simulators() -> None:
    from napari_galam.io import composite
    from napari_galam.simulate import imaging

    np.testing.assert_array_equal(composite.GRI_BAND_SCALES, imaging.RGB_BAND_SCALES)
    assert composite.ASTROPY_STRETCH == pytest.approx(
        composite.ASTROPY_Q * composite.SIMULATOR_STRETCH / composite.SIMULATOR_Q
    )


@pytest.mark.parametrize("layout", ["stack", "extensions", "triple"])
def test_fits_stack_of_a_simulated_galaxy_gives_its_training_jpeg(
    tmp_path: Path, simulated_cutout, layout: str
) -> None:
    from astropy.io import fits

    from napari_galam.io.composite import read_model_cutout

    g, r, i = simulated_cutout.images
    if layout == "stack":  # planes in i, r, g order, named by FILTERn
        header = fits.Header([("FILTER1", "i'"), ("FILTER2", "r'"), ("FILTER3", "g'")])
        fits.PrimaryHDU(np.stack([i, r, g]), header=header).writeto(tmp_path / "s.fits")
        path = tmp_path / "s.fits"
    elif layout == "extensions":
        hdus = [fits.PrimaryHDU()] + [
            fits.ImageHDU(image, header=fits.Header([("FILTER", band)]))
            for image, band in ((r, "r"), (g, "g"), (i, "i"))
        ]
        fits.HDUList(hdus).writeto(tmp_path / "e.fits")
        path = tmp_path / "e.fits"
    else:
        for image, band in ((g, "g"), (r, "r"), (i, "i")):
            fits.PrimaryHDU(image).writeto(tmp_path / f"NGC1_{band}.fits")
        path = tmp_path / "NGC1_g.fits"
    cutout = read_model_cutout(path)
    assert cutout.kind == "rgb" and cutout.data.dtype == np.uint8
    assert cutout.band_names == ("g", "r", "i")
    difference = np.abs(cutout.data.astype(int) - simulated_cutout.rgb.astype(int))
    assert difference.max() <= 1  # the training JPEG's pixels, to rounding


def test_simulator_mapping_and_astropy_mapping_agree_on_many_galaxies() -> None:
    from napari_galam.io.composite import gri_composite
    from napari_galam.simulate.datasets import simulate_sdss_galaxy

    rng = np.random.default_rng(7)
    for _ in range(4):
        cutout = simulate_sdss_galaxy(rng, blend_probability=0.5).cutout
        made = gri_composite(*cutout.images)
        assert np.abs(made.astype(int) - cutout.rgb.astype(int)).max() <= 1


def test_single_band_fits_needs_g_r_and_i(tmp_path: Path) -> None:
    from astropy.io import fits

    from napari_galam.io.composite import read_model_cutout

    image = np.ones((32, 32), dtype=np.float32)
    fits.PrimaryHDU(image, header=fits.Header([("FILTER", "r")])).writeto(tmp_path / "a.fits")
    with pytest.raises(
        GalamInputError, match=r"a\.fits: a single-band image \(band r\).*needs g, r and i bands"
    ):
        read_model_cutout(tmp_path / "a.fits")
    # two of three siblings are not a triple
    fits.PrimaryHDU(image).writeto(tmp_path / "b-g.fits")
    fits.PrimaryHDU(image).writeto(tmp_path / "b-r.fits")
    with pytest.raises(GalamInputError, match="needs g, r and i bands"):
        read_model_cutout(tmp_path / "b-r.fits")
    header = fits.Header([("FILTER1", "u"), ("FILTER2", "g"), ("FILTER3", "z")])
    fits.PrimaryHDU(np.ones((3, 32, 32), np.float32), header=header).writeto(tmp_path / "c.fits")
    with pytest.raises(GalamInputError, match="planes named u, g, z.*needs g, r and i bands"):
        read_model_cutout(tmp_path / "c.fits")
    grey = tmp_path / "grey.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(grey)
    with pytest.raises(GalamInputError, match="grey 20x20 image.*needs g, r and i bands"):
        read_model_cutout(grey)


def test_band_triples_fold_into_one_input(tmp_path: Path) -> None:
    from napari_galam.io.composite import merge_band_files, sdss_band

    files = [tmp_path / n for n in ("x-g.fits", "x-i.fits", "x-r.fits", "y-r.fits", "z.jpg")]
    for file in files:
        file.touch()
    kept, names = merge_band_files(files)
    assert kept == [tmp_path / "x-r.fits", tmp_path / "y-r.fits", tmp_path / "z.jpg"]
    assert names == {tmp_path / "x-r.fits": "x"}
    assert [sdss_band(v) for v in ("g", "SDSS r", "i'", "gp", "R-band", "Ha", "")] == [
        "g", "r", "i", "g", "r", None, None,
    ]  # fmt: skip


def test_an_sdss_size_jpeg_without_metadata_is_taken_as_sdss(tmp_path: Path) -> None:
    from napari_galam.io.images import sdss_cutout_assumption

    pixels = _rgb(shape=(128, 128, 3))
    Image.fromarray(pixels).save(tmp_path / "sdss.jpg", quality=95)
    note = sdss_cutout_assumption(read_cutout(tmp_path / "sdss.jpg"))
    assert "SDSS gri" in note and '0.396"/px' in note and "'sdss'" in note
    Image.fromarray(pixels).save(tmp_path / "lossless.png")
    Image.fromarray(_rgb(shape=(100, 128, 3))).save(tmp_path / "other.jpg")
    exif = Image.Exif()
    exif[0x010F] = "a camera maker"
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", exif=exif)
    for name in ("lossless.png", "other.jpg", "photo.jpg"):
        assert sdss_cutout_assumption(read_cutout(tmp_path / name)) == "", name


def test_asinh_top_in_one_channel_is_not_a_saturated_core() -> None:
    from napari_galam.io.quality import cutout_problems

    rgb = np.full((64, 64, 3), 40, np.uint8)
    rgb[24:40, 24:40] = (255, 200, 150)  # bright core: largest channel at the top, colour kept
    assert cutout_problems(rgb) == []
    rgb[24:40, 24:40] = 255  # clipped white core
    assert cutout_problems(rgb)
