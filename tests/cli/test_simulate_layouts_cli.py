"""``galam simulate --kind cubes --layout``: CALIFA, MaNGA and MUSE files the readers open.

The command runs in a subprocess, as a user runs it; ``galam map`` of a simulated MUSE
cube (spaxel-spectra, TensorFlow) too.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from galam_cli import galam

from napari_galam.cli import main
from napari_galam.io.cubes import detect_cube_layout, read_cube, spaxel_spectrum
from napari_galam.io.headers import FLAM, psf_fwhm_arcsec
from napari_galam.models.registry import available_models
from napari_galam.pipeline.spectral_maps import cube_redshift
from napari_galam.simulate.spaxel_spectra import layout_wavelengths
from napari_galam.sps.resolution import air_wavelength

#: layout -> (reader's name, medium, flux unit, arcsec per spaxel)
LAYOUTS = {
    "califa": ("CALIFA", "air", 1e-16, 1.0),
    "manga": ("MaNGA", "vacuum", 1e-17, 0.5),
    "muse": ("MUSE", "air", 1e-20, 0.2),
}
#: Absorption features (air, A): H-delta, H-gamma, H-beta, Mg b, Fe 5270, Na D, Ca H and K.
FEATURES = (4101.7, 4340.5, 4861.3, 5175.4, 5269.0, 5892.9, 3933.7, 3968.5)
REDSHIFT = 0.15


def _feature_depth(wave, flux, z):
    """Mean depth of the features at redshift ``z``: 1 - core / side bands."""
    depths = []
    for line in FEATURES:
        offset = np.abs(wave - line * (1 + z))
        core, side = offset < 4, (offset > 25) & (offset < 45)
        if core.sum() >= 2 and side.sum() >= 6:
            depths.append(1 - np.nanmean(flux[core]) / np.nanmean(flux[side]))
    return float(np.mean(depths))


def _simulate(out, layout, *extra):
    return galam("simulate", "--kind", "cubes", "--layout", layout, "-n", "1", "--seed", "2",
                 "--family", "bulge-disc", "--quiet", "-o", str(out), *extra)  # fmt: skip


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_written_by_galam_simulate_opens_with_the_readers(tmp_path, layout):
    name, medium, scale, pixel = LAYOUTS[layout]
    out = tmp_path / layout
    # stellar light only: the absorption features below find the redshift (the emission
    # lines' positions are tested in tests/simulate/test_cube_emission.py)
    run = _simulate(
        out, layout, "--redshift", str(REDSHIFT), "--shape", "15,15", "--no-cube-emission"
    )
    assert run.returncode == 0, run.stderr
    path = out / f"{layout}_2_0000.fits"
    truth = Table.read(out / f"{layout}_2_truth.ecsv")
    assert list(truth["file"]) == [path.name] and truth["redshift"][0] == REDSHIFT

    assert detect_cube_layout(path) == name
    cube = read_cube(path)
    assert cube.layout == name and cube.shape[1:] == (15, 15)
    np.testing.assert_allclose(cube.wave, layout_wavelengths(name)[0], rtol=1e-9)
    assert cube.wave_medium == medium
    assert cube.unit.is_equivalent(FLAM) and (1 * cube.unit).to_value(FLAM) == pytest.approx(scale)
    assert cube.unit != u.dimensionless_unscaled
    assert cube.pixel_scale_arcsec == pytest.approx(pixel)
    assert cube_redshift(cube, None)[0] == pytest.approx(REDSHIFT)
    assert psf_fwhm_arcsec([cube.primary_header, cube.header], name)[1].startswith("header")
    with fits.open(path) as hdus:
        for extension in ("TRUE_LOG_AGE", "TRUE_MH", "TRUE_R_RE"):
            assert hdus[extension].data.shape == (15, 15)
            assert np.isfinite(hdus[extension].data).all()
        assert hdus["TRUE_LOG_AGE"].header["REDSHIFT"] == REDSHIFT

    # the features of the brightest spaxel sit at (1 + z) x their rest wavelengths
    image = np.nanmedian(np.asarray(cube.data[1000:1200], dtype=np.float64), axis=0)
    y, x = np.unravel_index(np.nanargmax(image), image.shape)
    wave, flux, _ = spaxel_spectrum(cube, y, x)
    if medium == "vacuum":
        wave = air_wavelength(wave)
    trials = np.arange(0.0, 0.2501, 0.0005)
    depth = np.array([_feature_depth(wave, flux, z) for z in trials])
    assert abs(trials[np.argmax(depth)] - REDSHIFT) <= 0.002
    assert depth.max() > 0.05 and depth.max() > _feature_depth(wave, flux, 0.0) + 0.05


def test_bad_values_are_refused_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "never")
    for args, message in (
        (["--layout", "muse", "--redshift", "0.3"], "0 < z <= 0.2"),
        (["--layout", "muse", "--redshift", "0.2:0.1"], "low <= high"),
        (["--layout", "muse", "--redshift", "z"], "Z or LOW:HIGH"),
        (["--layout", "muse", "--shape", "40"], "NY,NX"),
        (["--layout", "muse", "--shape", "2,40"], "shape"),
        (["--redshift", "0.1"], "add --layout"),
        (["--layout", "manga", "--no-cubes"], "without --no-cubes"),
        (["--layout", "muse", "--snr-range", "10:12"], "survey's own S/N"),
        (["--snr-range", "12:10"], "0 < low <= high"),
    ):
        assert main(["simulate", "--kind", "cubes", "-o", out, *args]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and len(error.splitlines()) == 1, error
    assert main(["simulate", "--layout", "muse", "-o", out]) == 2  # --kind cutouts
    assert "--kind cubes" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


@pytest.mark.skipif(
    "spaxel-spectra" not in available_models(), reason="no shipped spaxel-spectra model"
)
def test_galam_map_reads_a_simulated_muse_cube_at_its_header_redshift(tmp_path):
    from napari_galam.io.writers import read_maps

    made = _simulate(tmp_path / "sim", "muse", "--redshift", "0.1", "--shape", "12,12")
    assert made.returncode == 0, made.stderr
    run = galam("map", str(tmp_path / "sim" / "muse_2_0000.fits"), "--out", str(tmp_path / "maps"))
    assert run.returncode == 0, run.stderr
    row = Table.read(tmp_path / "maps" / "map_summary.ecsv")[0]
    assert row["status"] == "ok" and row["n_mapped"] > 100
    maps = read_maps(row["maps"])
    assert maps.header["MODEL"] == "spaxel-spectra"
    assert maps.header["REDSHIFT"] == pytest.approx(0.1)  # from the file's Z keyword
    age = maps.maps["LOG_AGE"]
    assert np.all((age[np.isfinite(age)] > 7.5) & (age[np.isfinite(age)] < 10.5))
