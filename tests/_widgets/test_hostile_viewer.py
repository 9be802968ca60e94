"""Hostile files in a real viewer: one clear notification each, no traceback, and the
viewer still works; the Spaxel maps dock on a cube it cannot map says so once.

The corpus is ``tests/hostile_files.py``. Files go through ``viewer.open(path,
plugin="napari-galam")``; folders (which the manifest does not accept) and broken
symlinks (which napari reports as missing before any plugin runs) go through the
reader hook itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hostile_files import write_hostile_files

from napari_galam._reader import napari_get_reader
from napari_galam._widgets._model_worker import stop_shared_worker
from napari_galam._widgets.maps_dock import MapsDock
from napari_galam.models.registry import available_models


@pytest.fixture
def notifications(monkeypatch):
    """Every error and warning notification shown, as (kind, message)."""
    import napari.utils.notifications as nn

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(nn, "show_error", lambda m: shown.append(("error", str(m))))
    monkeypatch.setattr(nn, "show_warning", lambda m: shown.append(("warning", str(m))))
    return shown


def test_each_hostile_file_is_one_notification(
    make_napari_viewer, tmp_path: Path, notifications
) -> None:
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    corpus = write_hostile_files(tmp_path)
    errors_before = len([r for r in notification_manager.records if r.severity == "error"])
    added = 0
    for hostile in corpus:
        before = len(notifications)
        if hostile.path.is_dir() or not hostile.path.exists():
            # napari refuses these itself (folders: not accepted by the manifest; a
            # symlink loop or a dangling link: "does not exist") before any plugin
            reader = napari_get_reader(str(hostile.path))
            assert reader is not None, hostile.kind  # claimed by name, to say what it is
            assert reader(str(hostile.path)) == [(None,)]
        else:
            n_layers = len(viewer.layers)
            viewer.open(str(hostile.path), plugin="napari-galam")
            added += len(viewer.layers) - n_layers
        shown = notifications[before:]
        assert len(shown) == 1, (hostile.kind, shown)
        kind, message = shown[0]
        assert kind == ("error" if hostile.expect == "error" else "warning"), (hostile.kind, shown)
        assert hostile.path.name in message and "Traceback" not in message
        assert hostile.message in message.lower(), (hostile.kind, message)
    assert added == sum(f.expect == "flag" for f in corpus)  # flagged files still open
    # no traceback reached napari's own error handling, and the viewer still works
    assert len([r for r in notification_manager.records if r.severity == "error"]) == errors_before
    layer = viewer.add_image(np.arange(16.0).reshape(4, 4), name="after the corpus")
    assert viewer.layers[-1] is layer and viewer.layers.selection.active is layer


@pytest.fixture
def worker_cleanup():
    yield
    stop_shared_worker()
    assert "tensorflow" not in sys.modules


@pytest.mark.skipif("sed-cnn" not in available_models(), reason="no shipped SED model")
def test_maps_dock_on_an_unmappable_cube_is_one_notification(
    make_napari_viewer, qtbot, tmp_path: Path, notifications, worker_cleanup
) -> None:
    # a readable cube in the near infrared, where the SED model has no filter
    path = tmp_path / "infrared_cube.fits"
    header = fits.Header()
    header["CTYPE3"], header["CUNIT3"] = "WAVE", "Angstrom"
    header["CRPIX3"], header["CRVAL3"], header["CDELT3"] = 1.0, 20000.0, 2.0
    flux = np.random.default_rng(0).normal(1.0, 0.05, (100, 8, 8)).astype(np.float32)
    fits.PrimaryHDU(flux, header=header).writeto(path)
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-galam")
    assert notifications == []
    errors_before = len([r for r in notification_manager.records if r.severity == "error"])
    dock = MapsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Spaxel maps")
    dock.start_mapping()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=120_000)
    qtbot.wait(200)  # let any re-raised exception reach Qt's event loop
    assert dock.maps is None
    assert len(notifications) == 1, notifications
    kind, message = notifications[0]
    assert kind == "error" and "Traceback" not in message
    assert message.startswith("Spaxel maps") and "20000" in message  # the cube's range
    # nothing re-raised into Qt: napari's own handler recorded no error
    assert len([r for r in notification_manager.records if r.severity == "error"]) == errors_before
