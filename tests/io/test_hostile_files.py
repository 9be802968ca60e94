"""Every hostile file through every reader: a GalamInputError or a flag, never a hang.

The corpus is ``tests/hostile_files.py``. Each call runs in a daemon thread with a
generous limit, so a reader that blocks (a FIFO opened for reading) fails its test
instead of hanging the run; the limit is a hang detector, not a speed requirement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_files import HostileFile, write_hostile_files, write_valid_files

from napari_galam._layerdata import PROBLEMS_KEY
from napari_galam._reader import read_path
from napari_galam.errors import GalamInputError
from napari_galam.io.images import read_cutout
from napari_galam.io.quality import input_problems
from napari_galam.io.sources import open_source
from napari_galam.io.spectra import looks_like_sdss_spectrum, read_sdss_spectrum

HANG_LIMIT_S = 60.0

READERS: dict[str, Callable[[Path], Any]] = {
    "image": read_cutout,
    "spectrum": read_sdss_spectrum,
    "cube": open_source,
}


def call_or_hang(func: Callable[[Path], Any], path: Path) -> tuple[str, Any]:
    """``("ok", result)``, ``("error", exception)`` or ``("hang", None)``."""
    outcome: list[tuple[str, Any]] = []

    def run() -> None:
        try:
            outcome.append(("ok", func(path)))
        except BaseException as exc:  # noqa: BLE001 - the test inspects every exception
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_LIMIT_S)
    return outcome[0] if outcome else ("hang", None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[HostileFile]:
    return write_hostile_files(tmp_path_factory.mktemp("hostile"))


def test_corpus_covers_the_classes_of_the_issue(corpus: list[HostileFile]) -> None:
    kinds = {f.kind for f in corpus}
    issue_classes = {
        "bitpix-7", "naxis-999", "huge-declared-size", "truncated-fits", "text-as-fits",
        "empty-jpeg", "png-bomb", "jpeg-bomb", "gzip-bomb", "fifo", "directory",
        "descending-wavelength-cube", "all-nan-cube", "negative-flux-spectrum",
        "saturated-cutout", "spectrum-without-wavelength",
    }  # fmt: skip
    assert issue_classes <= kinds
    assert len(kinds) >= len(issue_classes) + 10  # and more of our own
    assert {f.expect for f in corpus} == {"error", "flag"}


def _check_refused(hostile: HostileFile, func: Callable[[Path], Any], check_message: bool) -> None:
    status, value = call_or_hang(func, hostile.path)
    assert status != "hang", f"{func.__name__} blocked on {hostile.kind}"
    assert status == "error", f"{func.__name__} accepted {hostile.kind}: {value!r}"
    assert isinstance(value, GalamInputError), (
        f"{func.__name__} on {hostile.kind} raised {type(value).__name__}: {value}"
    )
    assert hostile.path.name in str(value)
    if check_message:
        assert hostile.message in str(value).lower(), (hostile.kind, str(value))


def test_every_reader_refuses_or_flags_every_hostile_file(corpus: list[HostileFile]) -> None:
    for hostile in corpus:
        for role, func in READERS.items():
            aimed = hostile.role in (role, "any")
            if hostile.expect == "flag" and hostile.role == role:
                status, value = call_or_hang(func, hostile.path)
                assert status == "ok", (hostile.kind, value)
                problems = input_problems(value)
                assert problems and hostile.message in " ".join(problems).lower(), hostile.kind
            else:
                _check_refused(hostile, func, check_message=aimed and hostile.expect == "error")
        status, value = call_or_hang(looks_like_sdss_spectrum, hostile.path)
        assert status == "ok" and value is (hostile.role == "spectrum")


def test_napari_read_path_gives_the_aimed_reader_s_reason(corpus: list[HostileFile]) -> None:
    for hostile in corpus:
        if hostile.expect == "error":
            _check_refused(hostile, read_path, check_message=True)
            continue
        status, layers = call_or_hang(read_path, hostile.path)
        assert status == "ok", (hostile.kind, layers)
        problems = layers[0][1]["metadata"][PROBLEMS_KEY]
        assert hostile.message in " ".join(problems).lower()


def test_broken_cube_reports_the_cube_reader_s_reason(corpus: list[HostileFile]) -> None:
    by_kind = {f.kind: f for f in corpus}
    for kind in ("descending-wavelength-cube", "all-nan-cube"):
        for func in (read_path, read_cutout, open_source):
            status, error = call_or_hang(func, by_kind[kind].path)
            assert status == "error" and "open it as a cube" not in str(error)
    _, error = call_or_hang(open_source, by_kind["descending-wavelength-cube"].path)
    assert "strictly increasing" in str(error)


def test_valid_files_read_without_problems(tmp_path: Path) -> None:
    paths = write_valid_files(tmp_path)
    suffixes = sorted(p.suffix for p in paths)
    assert suffixes == [".fits", ".fits", ".jpg", ".png"]
    for path in paths:
        layers = read_path(path)
        assert layers, path
        metadata = layers[0][1]["metadata"]
        if PROBLEMS_KEY in metadata:
            assert metadata[PROBLEMS_KEY] == [], (path, metadata[PROBLEMS_KEY])
    cube = open_source(tmp_path / "cube.fits")
    assert cube.shape[1:] == (12, 12)
