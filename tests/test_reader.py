"""The npe2 reader contribution: what it claims, what it refuses, how it reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from napari_galam._reader import napari_get_reader


def test_returns_none_for_files_it_does_not_handle(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path / "table.csv")) is None
    assert napari_get_reader(str(tmp_path)) is None  # a folder
    assert napari_get_reader([]) is None
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    assert napari_get_reader([str(tmp_path / "a.png"), str(tmp_path / "notes.txt")]) is None


def test_reads_cutouts_and_spectra_into_layer_data(
    tmp_path: Path, fits_image_file, sdss_spectrum_file
) -> None:
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(tmp_path / "galaxy.jpg")
    paths = [
        str(tmp_path / "galaxy.jpg"),
        str(fits_image_file()),
        str(fits_image_file("gri.fits", bands=3)),
        str(sdss_spectrum_file()),
    ]
    reader = napari_get_reader(paths)
    assert callable(reader)
    layers = reader(paths)
    kinds = [layer[2] for layer in layers]
    # the g, r, i stack opens as its bands and as the models' gri composite
    assert kinds == ["image", "image", "image", "image", "points"]
    composite = layers[3]
    assert composite[1]["name"] == "gri gri" and composite[1]["rgb"] is True
    assert composite[0].shape == (64, 80, 3) and composite[1]["metadata"]["sdss_like"] is True
    assert layers[0][1]["rgb"] is True
    assert "wcs" in layers[1][1]["metadata"] and "fits_header" in layers[1][1]["metadata"]
    assert layers[2][1]["channel_axis"] == 0 and len(layers[2][1]["name"]) == 3
    lo, hi = layers[1][1]["contrast_limits"]
    assert lo < hi
    spectrum = layers[4][1]["metadata"]["galam_spectrum"]
    assert spectrum.redshift > 0


def test_bad_files_become_notifications_not_tracebacks(tmp_path: Path) -> None:
    from napari.utils.notifications import notification_manager

    bad = tmp_path / "broken.fits"
    bad.write_text("SIMPLE = nonsense")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    before = len(notification_manager.records)
    reader = napari_get_reader([str(bad), str(empty), str(good)])
    layers = reader([str(bad), str(empty), str(good)])
    assert [layer[1]["name"] for layer in layers] == ["ok"]  # the good file still opens
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("broken.fits" in m for m in messages)
    assert any("empty.jpg" in m and "empty" in m for m in messages)

    only_bad = reader([str(bad)])
    assert only_bad == [(None,)]  # napari's "nothing to add" sentinel: no second error


def test_reads_cubes_and_narrowband_stacks(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "io"))
    from survey_files import (
        write_califa_cube,
        write_manga_logcube,
        write_narrowband_cube_with_table,
        write_narrowband_files,
        write_narrowband_mef,
    )

    califa = write_califa_cube(tmp_path / "A.V500.rscube.fits")
    manga = write_manga_logcube(tmp_path / "manga-1-2-LOGCUBE.fits")
    mef = write_narrowband_mef(tmp_path / "jpas_mef.fits")
    table = write_narrowband_cube_with_table(tmp_path / "jpas_cube.fits")
    for written, key, label in (
        (califa, "galam_cube", "wavelength [Å]"),
        (manga, "galam_cube", "channel"),  # log-lambda grid: channels, wave in metadata
        (mef, "galam_narrowband", "filter"),
        (table, "galam_narrowband", "filter"),
    ):
        [(data, kwargs, kind)] = napari_get_reader(str(written.path))(str(written.path))
        assert kind == "image" and key in kwargs["metadata"], written.path.name
        assert kwargs["axis_labels"][0] == label
        assert data.shape == written.flux.shape
        assert len(kwargs["metadata"]["wave"]) == data.shape[0]
    files = write_narrowband_files(tmp_path / "stack", n_filters=5)
    paths = sorted(str(p) for p in (tmp_path / "stack").glob("*.fits"))
    [(data, kwargs, _)] = napari_get_reader(paths)(paths)
    assert data.shape == files.flux.shape
    assert len(kwargs["metadata"]["filter_names"]) == 5
    assert np.all(np.diff(kwargs["metadata"]["wave"]) > 0)  # sorted by wavelength
