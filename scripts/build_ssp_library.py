"""Build the SSP library that napari-galam ships, from the E-MILES spectra inside ppxf 8.2.6.

The source distribution ``ppxf-8.2.6.tar.gz`` (PyPI) carries, in ``ppxf/miles_models/``,
150 E-MILES single-stellar-population spectra (Vazdekis et al. 2016; 25 ages from
0.063 to 15.85 Gyr x 6 metallicities [M/H] from -1.71 to +0.22; unimodal IMF of slope
1.3, baseFe, Padova+00 isochrones) and the Vazdekis et al. (2012) table of stellar
masses of the same models. This script reads them straight from the tarball (nothing is
unpacked or downloaded), trims the spectra to the rest-frame range the project needs,
and writes one compressed npz in pPXF's ``sps_lib`` layout:

``templates[npix, n_ages, n_metals]`` (float32, L_sun / Angstrom per M_sun of initial
mass, as in the E-MILES files), ``lam[npix]`` (Angstrom), ``fwhm[npix]`` (Angstrom, the
E-MILES line-spread function), ``ages[n_ages]`` (Gyr), ``metals[n_metals]`` ([M/H]) and
``masses[n_ages, n_metals]`` (mass in living stars + remnants per unit initial mass).
pPXF ignores one more key, ``ir_extrapolated[n_ages, n_metals]`` (bool): the young SSPs
whose spectrum E-MILES leaves at zero above 8950 A and that were given the infrared
continuum of the youngest complete SSP of the same [M/H] (see ``_fill_missing_infrared``).

Run it again with::

    pip download ppxf==8.2.6 --no-deps --no-binary :all: -d /tmp/ppxf826
    python scripts/build_ssp_library.py --sdist /tmp/ppxf826/ppxf-8.2.6.tar.gz

The wavelength range and its reasons are documented in
``src/napari_galam/data/EMILES_README.md``.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tarfile
from pathlib import Path

import numpy as np
from astropy.io import fits

DEFAULT_OUTPUT = (
    Path(__file__).resolve().parents[1] / "src" / "napari_galam" / "data" / "emiles_ssp.npz"
)

# Rest-frame range kept (Angstrom); see EMILES_README.md for the reasoning.
DEFAULT_LAM_MIN = 2750.0
DEFAULT_LAM_MAX = 11300.0

# E-MILES line-spread function (Vazdekis et al. 2016, Sect. 2): FWHM = 5 A in the NGSL
# ultraviolet part, 2.51 A across the MILES + CaT range, sigma = 60 km/s in the IRTF part.
EMILES_UV_FWHM = 5.0
EMILES_OPTICAL_FWHM = 2.51
EMILES_OPTICAL_RANGE = (3540.5, 8950.0)
EMILES_IR_SIGMA_KMS = 60.0
SPEED_OF_LIGHT_KMS = 299792.458

SPECTRUM_NAME = re.compile(
    r"Eun1\.30Z(?P<sign>[mp])(?P<metal>\d\.\d\d)T(?P<age>\d\d\.\d{4})_iPp0\.00_baseFe_linear_FWHM_variable\.fits$"
)
MASS_TABLE_NAME = "Vazdekis2012_ssp_mass_Padova00_UN_baseFe_v10.0.txt"
IMF_SLOPE = 1.30


def emiles_fwhm(lam: np.ndarray) -> np.ndarray:
    """Return the E-MILES instrumental FWHM (Angstrom) at each wavelength ``lam``."""
    lam = np.asarray(lam, dtype=float)
    fwhm_ir = 2.0 * np.sqrt(2.0 * np.log(2.0)) * EMILES_IR_SIGMA_KMS / SPEED_OF_LIGHT_KMS * lam
    lo, hi = EMILES_OPTICAL_RANGE
    return np.where(lam < lo, EMILES_UV_FWHM, np.where(lam <= hi, EMILES_OPTICAL_FWHM, fwhm_ir))


def _read_members(sdist: Path) -> tuple[dict[tuple[float, float], fits.HDUList], np.ndarray]:
    """Read the SSP FITS files and the mass table from the sdist, keyed by (age, metal)."""
    spectra: dict[tuple[float, float], fits.HDUList] = {}
    mass_rows = None
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if "/miles_models/" not in member.name:
                continue
            match = SPECTRUM_NAME.match(name)
            if match is not None:
                sign = -1.0 if match["sign"] == "m" else 1.0
                key = (float(match["age"]), sign * float(match["metal"]))
                data = tar.extractfile(member).read()
                spectra[key] = fits.open(io.BytesIO(data))
            elif name == MASS_TABLE_NAME:
                text = tar.extractfile(member).read().decode()
                mass_rows = np.loadtxt(io.StringIO(text), usecols=[1, 2, 3, 5], comments="#")
    if not spectra:
        raise SystemExit(f"{sdist}: no E-MILES spectra found under ppxf/miles_models/")
    if mass_rows is None:
        raise SystemExit(f"{sdist}: {MASS_TABLE_NAME} not found under ppxf/miles_models/")
    return spectra, mass_rows


def _fill_missing_infrared(lam: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Extend the young SSPs that E-MILES leaves at zero above 8950 A; return which.

    E-MILES gives no IRTF-based spectrum for the youngest ages (below 0.1-0.25 Gyr,
    depending on [M/H]): their flux is exactly zero redwards of 8950 A. For each such
    SSP the infrared part is copied from the youngest complete SSP of the same [M/H],
    scaled to the same mean flux in 8750-8950 A, so that the z band, the reddest
    narrow bands and the red end of low-z spectra see a continuous continuum instead
    of a cliff. Modified in place.
    """
    infrared = lam > EMILES_OPTICAL_RANGE[1]
    join = (lam >= 8750.0) & (lam <= EMILES_OPTICAL_RANGE[1])
    missing = np.any(templates[infrared] <= 0, axis=0)
    for j in range(templates.shape[2]):
        complete = np.flatnonzero(~missing[:, j])
        if complete.size == 0:
            raise SystemExit(f"no complete infrared spectrum for metallicity index {j}")
        reference = templates[:, complete[0], j]
        for i in np.flatnonzero(missing[:, j]):
            empty = infrared & (templates[:, i, j] <= 0)
            scale = templates[join, i, j].mean() / reference[join].mean()
            templates[empty, i, j] = reference[empty] * scale
    return missing


def build_library(sdist: Path, lam_min: float, lam_max: float) -> dict[str, np.ndarray]:
    """Return the arrays of the ``sps_lib`` npz built from the ppxf 8.2.6 sdist."""
    spectra, mass_rows = _read_members(sdist)
    ages = np.array(sorted({age for age, _ in spectra}))
    metals = np.array(sorted({metal for _, metal in spectra}))
    if len(spectra) != ages.size * metals.size:
        raise SystemExit(f"incomplete grid: {len(spectra)} spectra for {ages.size} x {metals.size}")

    first = next(iter(spectra.values()))[0].header
    npix_full = first["NAXIS1"]
    lam_full = first["CRVAL1"] + first["CDELT1"] * (np.arange(npix_full) + 1 - first["CRPIX1"])
    keep = (lam_full >= lam_min) & (lam_full <= lam_max)
    lam = lam_full[keep]

    templates = np.empty((lam.size, ages.size, metals.size), dtype=np.float32)
    masses = np.empty((ages.size, metals.size))
    slope, mh_table, age_table, mass_table = mass_rows.T
    for (age, metal), hdul in spectra.items():
        header = hdul[0].header
        same_grid = (header["NAXIS1"], header["CRVAL1"], header["CDELT1"], header["CRPIX1"]) == (
            npix_full,
            first["CRVAL1"],
            first["CDELT1"],
            first["CRPIX1"],
        )
        if not same_grid:
            raise SystemExit(f"spectrum age={age} [M/H]={metal} is on a different wavelength grid")
        i, j = np.searchsorted(ages, age), np.searchsorted(metals, metal)
        templates[:, i, j] = hdul[0].data[keep]
        row = (
            (np.abs(slope - IMF_SLOPE) < 0.01)
            & (np.abs(age_table - age) < 0.001)
            & (np.abs(mh_table - metal) < 0.01)
        )
        if row.sum() != 1:
            raise SystemExit(f"mass table: {row.sum()} rows for age={age} [M/H]={metal}")
        masses[i, j] = mass_table[row][0]

    ir_extrapolated = _fill_missing_infrared(lam, templates)
    return {
        "templates": templates,
        "lam": lam,
        "fwhm": emiles_fwhm(lam),
        "ages": ages,
        "metals": metals,
        "masses": masses,
        "ir_extrapolated": ir_extrapolated,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, required=True, help="path to ppxf-8.2.6.tar.gz")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="npz to write")
    parser.add_argument("--lam-min", type=float, default=DEFAULT_LAM_MIN, help="Angstrom")
    parser.add_argument("--lam-max", type=float, default=DEFAULT_LAM_MAX, help="Angstrom")
    args = parser.parse_args(argv)

    arrays = build_library(args.sdist, args.lam_min, args.lam_max)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    size_mb = args.output.stat().st_size / 1e6
    lam = arrays["lam"]
    print(
        f"wrote {args.output} ({size_mb:.2f} MB): {arrays['templates'].shape} templates, "
        f"{lam[0]:.1f}-{lam[-1]:.1f} A, ages {arrays['ages'][0]}-{arrays['ages'][-1]} Gyr, "
        f"[M/H] {arrays['metals'].tolist()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
