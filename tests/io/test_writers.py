"""Map and table writers: round trips, WCS and units kept, atomic replacement, refusals."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.wcs import WCS
from survey_files import write_muse_cube

from napari_galam.errors import GalamInputError
from napari_galam.io.cubes import read_cube
from napari_galam.io.writers import read_maps, read_table, write_maps, write_table


def _maps(shape=(20, 18), seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    log_age = rng.uniform(8.5, 10.2, shape).astype(np.float32)
    log_age[0, 0] = np.nan
    return {
        "LOG_AGE": log_age,
        "MH": rng.uniform(-1.5, 0.2, shape).astype(np.float32),
        "LOG_AGE_ERR": np.full(shape, 0.1, np.float32),
        "MH_ERR": np.full(shape, 0.15, np.float64),
        "SNR": rng.uniform(0, 50, shape),
        "BIN_ID": np.arange(np.prod(shape)).reshape(shape) - 1,
        "good": rng.random(shape) > 0.5,
    }


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_maps_round_trip_with_cube_wcs(tmp_path: Path, suffix: str) -> None:
    cube = read_cube(write_muse_cube(tmp_path / "cube.fits", nwave=10).path)
    maps = _maps(cube.shape[1:])
    units = {"LOG_AGE": "log(yr)", "MH": u.dex, "SNR": u.dimensionless_unscaled}
    path = write_maps(
        tmp_path / f"maps{suffix}",
        maps,
        celestial_wcs=cube.celestial_wcs,
        units=units,
        header_extra={"CUBEFILE": cube.path.name, "MODEL": "sed-cnn", "SNR_TARGET": 20.0},
    )
    assert path == tmp_path / f"maps{suffix}"
    back = read_maps(path)
    assert list(back.maps) == ["LOG_AGE", "MH", "LOG_AGE_ERR", "MH_ERR", "SNR", "BIN_ID", "GOOD"]
    for name, array in maps.items():
        np.testing.assert_array_equal(
            back.maps[name.upper()], array.astype(back.maps[name.upper()].dtype)
        )
    assert back.maps["LOG_AGE"].dtype == np.float32 and back.maps["MH_ERR"].dtype == np.float64
    assert back.maps["BIN_ID"].dtype == np.int32 and back.maps["GOOD"].dtype == np.uint8
    assert np.isnan(back.maps["LOG_AGE"][0, 0])
    assert back.units["MH"] == u.dex and back.units["SNR"] == u.dimensionless_unscaled
    assert back.headers["LOG_AGE"]["BUNIT"] == "log(yr)"
    assert back.units["LOG_AGE_ERR"] is None
    assert back.header["CUBEFILE"] == "cube.fits" and back.header["SNR_TARGET"] == 20.0
    assert back.header["ORIGIN"] == "napari-galam"
    # the same sky position at every pixel, in every extension
    pixels = np.array([[0, 0], [17, 19], [5.5, 3.25]])
    expected = cube.celestial_wcs.wcs_pix2world(pixels, 0)
    np.testing.assert_allclose(back.celestial_wcs.wcs_pix2world(pixels, 0), expected, atol=1e-10)
    with fits.open(path) as hdul:
        np.testing.assert_allclose(WCS(hdul["SNR"].header).wcs_pix2world(pixels, 0), expected)
    assert not list(tmp_path.glob(".maps*"))  # no temporary file left behind


def test_maps_accept_a_3d_wcs_and_no_wcs(tmp_path: Path) -> None:
    cube = read_cube(write_muse_cube(tmp_path / "cube.fits", nwave=10).path)
    full = WCS(cube.header)  # 3-D: reduced to its celestial part
    back = read_maps(write_maps(tmp_path / "a.fits", _maps(cube.shape[1:]), celestial_wcs=full))
    assert back.celestial_wcs.naxis == 2
    bare = read_maps(write_maps(tmp_path / "b.fits", {"SNR": np.ones((3, 4))}))
    assert bare.celestial_wcs is None


def test_write_maps_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_maps(tmp_path / "maps.fits", {"SNR": np.ones((4, 5))})
    before = path.read_bytes()

    def broken_writeto(self, name, **kwargs):
        Path(name).write_bytes(b"SIMPLE  =  half a file")
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", broken_writeto)
    with pytest.raises(OSError, match="disk full"):
        write_maps(path, {"SNR": np.zeros((4, 5))})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.fits"]


def test_write_maps_refusals(tmp_path: Path) -> None:
    good = {"SNR": np.ones((4, 5))}
    cases = [
        (tmp_path / "m.fits", {}, {}, "no maps"),
        (tmp_path / "m.png", good, {}, "expected a name ending in .fits"),
        (tmp_path / "m.fits", {"A": np.ones((4, 5)), "B": np.ones((4, 6))}, {}, "share one shape"),
        (tmp_path / "m.fits", {"CUBE": np.ones((2, 4, 5))}, {}, "expected a 2-D image"),
        (
            tmp_path / "m.fits",
            {"mh": np.ones((4, 5)), "MH": np.ones((4, 5))},
            {},
            "both named 'MH'",
        ),
        (tmp_path / "m.fits", {"S": np.array([["a"]])}, {}, "expected numbers"),
        (tmp_path / "m.fits", good, {"units": {"OTHER": "dex"}}, "do not exist"),
        (tmp_path / "m.fits", good, {"header_extra": {"LIST": [1, 2]}}, "expected a string"),
        (tmp_path / "no" / "m.fits", good, {}, "does not exist"),
    ]
    for path, maps, kwargs, match in cases:
        with pytest.raises(GalamInputError, match=match):
            write_maps(path, maps, **kwargs)
    spectral = WCS(naxis=1)
    spectral.wcs.ctype = ["WAVE"]
    with pytest.raises(GalamInputError, match="2-D celestial"):
        write_maps(tmp_path / "m.fits", good, celestial_wcs=spectral)
    write_maps(tmp_path / "keep.fits", good)
    with pytest.raises(GalamInputError, match="overwrite=True"):
        write_maps(tmp_path / "keep.fits", good, overwrite=False)


def test_read_maps_refusals(tmp_path: Path) -> None:
    with pytest.raises(GalamInputError, match="file not found"):
        read_maps(tmp_path / "none.fits")
    table_only = tmp_path / "t.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({"a": [1, 2]}))]).writeto(table_only)
    with pytest.raises(GalamInputError, match="no 2-D image"):
        read_maps(table_only)


def _results() -> QTable:
    table = QTable()
    table["id"] = [1, 2, 3]
    table["x"] = [10.5, 20.25, 30.0] * u.pix
    table["log_age"] = [9.1, 9.8, 10.0]
    table["mh"] = [-0.3, 0.0, 0.1] * u.dex
    table["blended"] = [False, True, False]
    table["name"] = ["a", "b", "c"]
    table.meta["model"] = "m2+m3->m4"
    return table


def test_table_ecsv_round_trip_keeps_units_and_meta(tmp_path: Path) -> None:
    path = write_table(tmp_path / "results.ecsv", _results())
    back = read_table(path)
    assert back.colnames == ["id", "x", "log_age", "mh", "blended", "name"]
    assert back["x"].unit == u.pix and back["mh"].unit == u.dex
    assert back["blended"].dtype == bool
    assert back.meta["model"] == "m2+m3->m4"
    np.testing.assert_allclose(back["log_age"], [9.1, 9.8, 10.0])


def test_table_csv_and_plain_inputs(tmp_path: Path) -> None:
    path = write_table(tmp_path / "results.csv", _results())
    text = path.read_text().splitlines()
    assert text[0] == "id,x,log_age,mh,blended,name" and len(text) == 4
    back = read_table(path)
    np.testing.assert_allclose(back["x"], [10.5, 20.25, 30.0])
    rows = write_table(tmp_path / "rows.csv", [{"a": 1, "b": 2.5}, {"a": 2, "b": 3.5}])
    assert list(read_table(rows)["b"]) == [2.5, 3.5]
    columns = write_table(tmp_path / "cols.ecsv", {"a": [1, 2]})
    assert list(read_table(columns)["a"]) == [1, 2]


def test_table_refusals_and_atomicity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GalamInputError, match="ECSV or CSV"):
        write_table(tmp_path / "t.txt", _results())
    with pytest.raises(GalamInputError, match="cannot turn"):
        write_table(tmp_path / "t.csv", 42)
    path = write_table(tmp_path / "t.ecsv", _results())
    before = path.read_text()
    with pytest.raises(GalamInputError, match="overwrite=True"):
        write_table(path, _results(), overwrite=False)

    def broken_write(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Table, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_table(path, Table({"a": [1]}))
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.ecsv"]
    with pytest.raises(GalamInputError, match="file not found"):
        read_table(tmp_path / "none.csv")
