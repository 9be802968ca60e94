"""Write a corpus of hostile files, and a few valid ones, for the readers and the CLIs.

:func:`write_hostile_files` writes one file (or FIFO, folder, symlink) per class of
damage that issue #22 found or that a reader must survive: unsupported BITPIX and NAXIS,
a header declaring terabytes, truncated and non-FITS content, empty files, PNG/JPEG
decompression bombs, a gzip bomb, special files named like FITS files, cubes that are
readable FITS but not usable cubes, and inputs that read fine but are wrong for the
models (negative flux, a saturated core). Each comes back as a :class:`HostileFile`
saying what a reader must do with it:

* ``expect == "error"``: every reader that claims the file raises
  :class:`napari_galam.errors.GalamInputError` (or the napari reader shows one error
  notification), within a few seconds and without allocating what the file declares;
* ``expect == "flag"``: the file reads, and
  :func:`napari_galam.io.quality.input_problems` of what was read gives a reason.

:func:`write_valid_files` writes files every reader accepts without a flag: two SDSS-like
cutouts (JPEG and PNG), an SDSS spectrum and a small CALIFA-like cube, all simulated.

Tests import it as ``hostile_files`` (``tests/`` is on ``sys.path`` through the
rootdir ``conftest.py``).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = [
    "HostileFile",
    "write_hostile_files",
    "write_valid_files",
    "GZIP_BOMB_INFLATED_BYTES",
]

#: How many bytes the gzip bomb inflates to (2 GiB of FITS).
GZIP_BOMB_INFLATED_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class HostileFile:
    """One hostile input and what a reader must do with it.

    Attributes
    ----------
    path
        The file (or FIFO, folder, symlink) written.
    kind
        A short identifier of the class of damage, e.g. ``"bitpix-7"``.
    expect
        ``"error"`` (refused with a GalamInputError) or ``"flag"`` (reads, with a
        reason from ``input_problems``).
    role
        What the file pretends to be: ``"image"`` (a cutout), ``"spectrum"``, ``"cube"``
        or ``"any"`` (a file no reader can use).
    message
        A lower-case fragment the error or flag reason must contain (``""``: no check).
    """

    path: Path
    kind: str
    expect: str
    role: str = "any"
    message: str = ""


# --------------------------------------------------------------------------------------
# Raw building blocks


def _raw_fits(cards: list[tuple[str, object]], data: bytes = b"") -> bytes:
    """A FITS file from header cards written as given (no validation) and raw data."""
    header = fits.Header()
    for key, value in cards:
        header.append(fits.Card(key, value), end=True)
    padding = b"\0" * (-len(data) % 2880)
    return header.tostring().encode("ascii") + data + padding


def _image_cards(bitpix: object, axes: list[object]) -> list[tuple[str, object]]:
    cards: list[tuple[str, object]] = [("SIMPLE", True), ("BITPIX", bitpix), ("NAXIS", len(axes))]
    cards += [(f"NAXIS{i + 1}", n) for i, n in enumerate(axes)]
    return cards


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def _png_bilevel_bomb(width: int, height: int) -> bytes:
    """A real 1-bit grey PNG of ``width x height`` black pixels (small on disk)."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 256) for _ in range(height // 256)]
    parts.append(compressor.compress(row * (height % 256)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_with_declared_size(width: int, height: int) -> bytes:
    """A small grey JPEG whose frame header (SOF0) claims ``width x height`` pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gzip_bomb(path: Path, inflated_bytes: int) -> None:
    """A gzipped FITS image of zeros that inflates to ``inflated_bytes``.

    The zeros are deflated once per MiB with a full flush, so the compressed block can
    be repeated as is: the file is about a thousandth of what it inflates to.
    """
    chunk = 1024**2
    n_chunks = inflated_bytes // chunk - 1
    side = int(np.sqrt(n_chunks * chunk))
    header = _raw_fits(_image_cards(8, [side, n_chunks * chunk // side]))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    zeros = compressor.compress(b"\0" * chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    block = b"\0" * chunk
    for _ in range(n_chunks):
        crc = zlib.crc32(block, crc)
    size = len(header) + n_chunks * chunk
    with open(path, "wb") as fh:
        fh.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        fh.write(head)
        for _ in range(n_chunks):
            fh.write(zeros)
        fh.write(tail)
        fh.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))


def _sdss_spectrum(
    path: Path,
    *,
    flux_sign: float = 1.0,
    columns: tuple[str, ...] = ("loglam", "flux", "ivar"),
    ivar_scale: float = 1.0,
    seed: int = 0,
) -> Path:
    """A spectrum in the SDSS DR8+ layout (COADD + SPECOBJ) with chosen faults."""
    rng = np.random.default_rng(seed)
    loglam = 3.58 + 1e-4 * np.arange(3800)
    wave = 10**loglam
    continuum = 50.0 * (wave / 5000.0) ** 0.5
    sigma = continuum / 20.0
    flux = flux_sign * continuum + rng.normal(0, sigma)
    values = {
        "loglam": loglam.astype(np.float32),
        "flux": flux.astype(np.float32),
        "ivar": (ivar_scale / sigma**2).astype(np.float32),
    }
    coadd = fits.BinTableHDU.from_columns(
        [fits.Column(name=name, format="E", array=values[name]) for name in columns],
        name="COADD",
    )
    specobj = fits.BinTableHDU.from_columns(
        [fits.Column(name="Z", format="E", array=np.array([0.05], np.float32))], name="SPECOBJ"
    )
    fits.HDUList([fits.PrimaryHDU(), coadd, specobj]).writeto(path, overwrite=True)
    return path


def _generic_cube(path: Path, flux: np.ndarray, *, crval3: float, cdelt3: float) -> Path:
    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CRPIX1"], header["CRPIX2"] = 5.0, 5.0
    header["CRVAL1"], header["CRVAL2"] = 150.1, 2.2
    header["CDELT1"], header["CDELT2"] = -1 / 3600, 1 / 3600
    header["CTYPE3"], header["CUNIT3"] = "WAVE", "Angstrom"
    header["CRPIX3"], header["CRVAL3"], header["CDELT3"] = 1.0, crval3, cdelt3
    header["BUNIT"] = "1e-16 erg/(s cm2 Angstrom)"
    fits.PrimaryHDU(flux.astype(np.float32), header=header).writeto(path, overwrite=True)
    return path


def _galaxy_rgb(shape: tuple[int, int] = (128, 128), peak: float = 180.0) -> np.ndarray:
    rows, cols = np.indices(shape, dtype=float)
    radius = np.hypot((rows - shape[0] / 2) / 0.7, cols - shape[1] / 2)
    light = peak * np.exp(-radius / 8.0)
    noise = np.random.default_rng(1).normal(0, 2.0, (*shape, 3))
    rgb = light[..., None] * np.array([1.0, 0.85, 0.7]) + 12.0 + noise
    return np.clip(rgb, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# The corpus


def _fits_classes(folder: Path) -> list[HostileFile]:
    out = []

    def raw(name: str, content: bytes, kind: str, message: str, role: str = "image") -> None:
        path = folder / name
        path.write_bytes(content)
        out.append(HostileFile(path, kind, "error", role, message))

    small = np.zeros(16 * 16, np.uint8).tobytes()
    raw("bitpix7.fits", _raw_fits(_image_cards(7, [16, 16]), small), "bitpix-7", "bitpix")
    raw(
        "bitpix_text.fits", _raw_fits(_image_cards("abc", [16, 16]), small), "bitpix-text", "bitpix"
    )
    raw(
        "naxis999.fits", _raw_fits(_image_cards(8, [])[:2] + [("NAXIS", 999)]), "naxis-999", "naxis"
    )
    raw(
        "naxis_negative.fits",
        _raw_fits(_image_cards(8, [-16, 16]), small),
        "naxis-negative",
        "naxis",
    )
    raw(
        "naxis_text.fits",
        _raw_fits(_image_cards(8, ["ten", 16]), small),
        "naxis-text",
        "naxis",
    )
    raw(
        "huge_declared.fits",
        _raw_fits(_image_cards(-32, [10**6, 10**6]), b"\0" * 2880 * 4),
        "huge-declared-size",
        "declares",
    )
    raw(
        "huge_cube_declared.fits",
        _raw_fits(
            _image_cards(-32, [10**4, 10**4, 10**4])
            + [("CTYPE3", "WAVE"), ("CRVAL3", 4000.0), ("CDELT3", 1.0), ("CRPIX3", 1.0)],
            b"\0" * 2880 * 4,
        ),
        "huge-declared-cube",
        "declares",
        role="cube",
    )
    valid = _raw_fits(_image_cards(-32, [64, 64]), np.ones((64, 64), ">f4").tobytes())
    raw("truncated.fits", valid[: 2880 + 5000], "truncated-fits", "truncated")
    raw("truncated_header.fits", valid[:1200], "truncated-header", "fits")
    raw("text.fits", b"this is a text file, not FITS\n" * 40, "text-as-fits", "fits", role="any")
    raw("empty.fits", b"", "empty-fits", "empty", role="any")
    raw("zeros.fits", b"\0" * 5760, "zeros-as-fits", "fits", role="any")
    raw("not_gzip.fits.gz", b"plain text named .fits.gz\n" * 20, "not-gzip", "fits", role="any")
    noisy = np.random.default_rng(3).normal(0, 1, (64, 64)).astype(">f4").tobytes()
    packed = zlib_gzip(_raw_fits(_image_cards(-32, [64, 64]), noisy))
    raw("gzip_truncated.fits.gz", packed[: len(packed) // 2], "gzip-truncated", "", role="image")
    raw(
        "bscale_text.fits",
        _raw_fits(_image_cards(16, [16, 16]) + [("BSCALE", "abc")], b"\0" * 512),
        "bscale-text",
        "",
    )
    raw(
        "four_d.fits",
        _raw_fits(_image_cards(8, [4, 4, 4, 4]), b"\0" * 256),
        "four-d-image",
        "dimensions",
    )
    bomb = folder / "gzip_bomb.fits.gz"
    _gzip_bomb(bomb, GZIP_BOMB_INFLATED_BYTES)
    out.append(HostileFile(bomb, "gzip-bomb", "error", "image", "gzip"))
    return out


def zlib_gzip(content: bytes) -> bytes:
    """``content`` gzip-compressed (a complete, valid gzip member)."""
    import gzip

    return gzip.compress(content, mtime=0)


def _raster_classes(folder: Path) -> list[HostileFile]:
    from PIL import Image

    out = []

    def raw(name: str, content: bytes, kind: str, message: str) -> None:
        path = folder / name
        path.write_bytes(content)
        out.append(HostileFile(path, kind, "error", "image", message))

    raw("empty.jpg", b"", "empty-jpeg", "empty")
    raw("text.jpg", b"not a jpeg at all\n" * 10, "text-as-jpeg", "image")
    raw("png_bomb.png", _png_bilevel_bomb(20000, 20000), "png-bomb", "pixels")
    raw("png_bomb_warning.png", _png_bilevel_bomb(12000, 12000), "png-bomb-warning", "pixels")
    raw("jpeg_bomb.jpg", _jpeg_with_declared_size(65000, 65000), "jpeg-bomb", "pixels")
    raw(
        "jpeg_bomb_warning.jpg",
        _jpeg_with_declared_size(10000, 10000),
        "jpeg-bomb-warning",
        "pixels",
    )
    buffer = io.BytesIO()
    Image.fromarray(_galaxy_rgb()).save(buffer, format="PNG")
    raw("truncated.png", buffer.getvalue()[:400], "truncated-png", "")
    buffer = io.BytesIO()
    Image.fromarray(_galaxy_rgb()).save(buffer, format="JPEG")
    raw("truncated.jpg", buffer.getvalue()[:300], "truncated-jpeg", "")
    raw("one_pixel.png", _one_pixel_png(), "one-pixel-image", "2x2")
    saturated = _galaxy_rgb(peak=900.0)  # a core clipped at 255 over hundreds of pixels
    path = folder / "saturated.png"
    Image.fromarray(saturated).save(path)
    out.append(HostileFile(path, "saturated-cutout", "flag", "image", "saturat"))
    return out


def _one_pixel_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _special_classes(folder: Path) -> list[HostileFile]:
    out = []
    for name in ("folder.fits", "folder.jpg"):
        path = folder / name
        path.mkdir()
        (path / "inside.txt").write_text("a folder, not a file\n")
        out.append(HostileFile(path, "directory", "error", "any", "folder"))
    if hasattr(os, "mkfifo"):
        fifo = folder / "fifo.fits"
        os.mkfifo(fifo)
        out.append(HostileFile(fifo, "fifo", "error", "any", "regular file"))
    loop = folder / "loop.fits"
    os.symlink(loop.name, loop)
    out.append(HostileFile(loop, "symlink-loop", "error", "any", "symbolic link"))
    dangling = folder / "dangling.jpg"
    os.symlink("no_such_target.jpg", dangling)
    out.append(HostileFile(dangling, "dangling-symlink", "error", "any", "not found"))
    return out


def _spectrum_and_cube_classes(folder: Path) -> list[HostileFile]:
    out = [
        HostileFile(
            _sdss_spectrum(folder / "spec-negative.fits", flux_sign=-1.0),
            "negative-flux-spectrum",
            "flag",
            "spectrum",
            "negative",
        ),
        HostileFile(
            _sdss_spectrum(folder / "spec-nowave.fits", columns=("flux", "ivar")),
            "spectrum-without-wavelength",
            "error",
            "spectrum",
            "wavelength",
        ),
        HostileFile(
            _sdss_spectrum(folder / "spec-noivar.fits", ivar_scale=0.0),
            "spectrum-without-good-pixels",
            "flag",
            "spectrum",
            "inverse variance",
        ),
    ]
    flux = np.random.default_rng(2).normal(1.0, 0.05, (200, 9, 9))
    out.append(
        HostileFile(
            _generic_cube(folder / "descending_wave.fits", flux, crval3=7000.0, cdelt3=-2.0),
            "descending-wavelength-cube",
            "error",
            "cube",
            "increasing",
        )
    )
    out.append(
        HostileFile(
            _generic_cube(
                folder / "all_nan_cube.fits",
                np.full((200, 9, 9), np.nan),
                crval3=4000.0,
                cdelt3=2.0,
            ),
            "all-nan-cube",
            "error",
            "cube",
            "finite",
        )
    )
    bad_wcs = folder / "cube_crval_text.fits"
    cards = _image_cards(-32, [9, 9, 50]) + [("CRVAL3", "abc"), ("CDELT3", 2.0), ("CRPIX3", 1.0)]
    bad_wcs.write_bytes(_raw_fits(cards, np.ones((50, 9, 9), ">f4").tobytes()))
    out.append(HostileFile(bad_wcs, "cube-wcs-text", "error", "cube", ""))
    return out


def write_hostile_files(folder: str | os.PathLike) -> list[HostileFile]:
    """Write the hostile corpus into ``folder`` (created if needed).

    Parameters
    ----------
    folder
        An empty folder, or one that does not exist yet.

    Returns
    -------
    list of HostileFile
        One entry per file, FIFO, folder or symlink written (about 40; the gzip bomb is
        about 2 MB on disk and inflates to 2 GiB).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        *_fits_classes(folder),
        *_raster_classes(folder),
        *_special_classes(folder),
        *_spectrum_and_cube_classes(folder),
    ]


def write_valid_files(folder: str | os.PathLike, *, seed: int = 5) -> list[Path]:
    """Write valid inputs into ``folder``: two cutouts, an SDSS spectrum, a small cube.

    The cutouts and the spectrum are simulated SDSS galaxies (``G0.jpg``, ``G1.png`` and
    ``G1.fits``, the spectrum of the galaxy of ``G1.png``, so ``galam predict`` pairs
    them); the cube is a CALIFA-like 12 x 12 spaxel cube (``cube.fits``).
    """
    from PIL import Image

    from napari_galam.simulate.cubes import render_califa_cube
    from napari_galam.simulate.datasets import simulate_sdss_galaxy
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.writers import write_califa_cube, write_jpeg, write_sdss_spectrum
    from napari_galam.sps.library import load_ssp_library

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    library = load_ssp_library()
    first = simulate_sdss_galaxy(rng, library=library, blend_probability=0.0)
    second = simulate_sdss_galaxy(rng, library=library, blend_probability=0.0)
    paths = [write_jpeg(folder / "G0.jpg", first.cutout.rgb)]
    Image.fromarray(second.cutout.rgb).save(folder / "G1.png")
    paths.append(folder / "G1.png")
    paths.append(write_sdss_spectrum(folder / "G1.fits", second.spectrum))
    galaxy = draw_galaxy(rng, survey="califa", library=library)
    cube = render_califa_cube(galaxy, rng=rng, library=library, shape=(12, 12))
    paths.append(write_califa_cube(folder / "cube.fits", cube))
    return paths
