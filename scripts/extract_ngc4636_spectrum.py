"""Write the real SDSS DR12 spectrum of NGC 4636 that napari-galam ships, from pPXF 8.2.6.

The current pPXF ships two real SDSS spectra (NGC 3073, NGC 3522); the 8.2.6 source
distribution also has ``ppxf/spectra/NGC4636_SDSS_DR12.fits``, a giant elliptical at
z = 0.003, the old, metal-rich end that the other two lack. This script keeps what
:func:`napari_galam.io.spectra.read_sdss_spectrum` and the reference fits use: the
primary header, the ``COADD`` table (loglam, flux, ivar, and_mask, wdisp) and the
redshift, class and S/N of ``SPECOBJ``; the per-exposure tables are dropped.

Usage: ``python scripts/extract_ngc4636_spectrum.py ppxf-8.2.6.tar.gz``
(``pip download --no-deps --no-binary :all: ppxf==8.2.6`` fetches the tarball).
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

MEMBER = "ppxf-8.2.6/ppxf/spectra/NGC4636_SDSS_DR12.fits"
OUT = Path(__file__).resolve().parents[1] / "src/napari_galam/data/NGC4636_SDSS_DR12.fits"
COADD_COLUMNS = ("loglam", "flux", "ivar", "and_mask", "wdisp")
SPECOBJ_COLUMNS = ("Z", "Z_ERR", "ZWARNING", "CLASS", "SN_MEDIAN_ALL", "PLUG_RA", "PLUG_DEC")


def main() -> None:
    from astropy.io import fits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help="ppxf-8.2.6.tar.gz")
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    with tarfile.open(args.sdist) as tar:
        raw = tar.extractfile(MEMBER).read()
    with fits.open(io.BytesIO(raw)) as hdul:
        coadd = hdul["COADD"].data
        specobj = hdul["SPECOBJ"].data
        columns = [
            fits.Column(name=name, format=coadd.columns[name].format, array=coadd[name])
            for name in COADD_COLUMNS
        ]
        keep = [
            fits.Column(name=name, format=specobj.columns[name].format, array=specobj[name])
            for name in SPECOBJ_COLUMNS
        ]
        primary = fits.PrimaryHDU(header=hdul[0].header)
        primary.header["HISTORY"] = f"napari-galam: trimmed from {MEMBER}"
        out = fits.HDUList(
            [
                primary,
                fits.BinTableHDU.from_columns(columns, name="COADD"),
                fits.BinTableHDU.from_columns(keep, name="SPECOBJ"),
            ]
        )
        out.writeto(args.output, overwrite=True, checksum=True)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
