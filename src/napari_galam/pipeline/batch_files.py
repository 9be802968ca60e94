"""Inputs and outputs of the batch commands: what is not a readable file, where results go.

``galam predict``, ``galam qa`` and ``galam map`` share three rules, kept here:

- every input gets a row: :func:`input_path_problem` says, from ``os.stat`` alone (no
  open, so a FIFO cannot block), why a path is not a regular file: a folder, a FIFO or
  other special file, a symbolic link that loops or points nowhere;
- the output folder is checked before any work starts (:func:`check_output_folder`:
  it exists or can be made, and a file can be created in it);
- a summary table is merged with the one an earlier run left, never overwritten
  (:func:`check_earlier_table` before the run, :func:`merge_with_earlier` after it):
  the rows of this run, then the earlier rows of inputs this run did not have.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_galam.errors import GalamInputError

__all__ = [
    "input_path_problem",
    "resolved_path",
    "unexpected_error_reason",
    "check_output_folder",
    "check_earlier_table",
    "merge_with_earlier",
]


def input_path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a regular file to read, or None when it is one.

    Only ``os.stat``/``os.lstat`` are called: a FIFO or device is never opened.

    Returns
    -------
    str or None
        ``"<path>: <what it is instead>"``.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path}: a symbolic link that loops; expected a file."
        if os.path.islink(path):
            return f"{path}: not found (a symbolic link to {os.readlink(path)!r}, which does not exist)."
        if exc.errno == errno.ENOENT:
            return f"{path}: not found."
        return f"{path}: cannot be read ({exc.strerror or exc})."
    if stat.S_ISDIR(mode):
        return f"{path}: is a folder; expected a file."
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket or device"
        return f"{path}: {kind}, not a regular file."
    return None


def resolved_path(path: str | os.PathLike) -> Path:
    """``path`` made absolute with its links resolved; a broken or looping link is kept.

    (``Path.resolve`` raises on a link that loops, and names the missing target of a
    dangling one; the row of such an input must name the input.)
    """
    path = Path(path)
    if input_path_problem(path) is None or not os.path.islink(path):
        try:
            return path.resolve()
        except (OSError, RuntimeError):
            pass
    return Path(os.path.abspath(path))


def unexpected_error_reason(path: str | os.PathLike, exc: BaseException) -> str:
    """The reason of an input whose reading or assessment raised an unexpected error."""
    return f"{path}: {type(exc).__name__}: {exc}"


def check_output_folder(folder: str | os.PathLike, *, option: str = "--out") -> Path:
    """Make sure results can be written into ``folder`` before any work starts.

    The folder is created (with its parents) if needed, and a temporary file is created
    in it and removed.

    Parameters
    ----------
    folder
        The output folder.
    option
        How the command line names it (in messages).

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    GalamInputError
        When it is a file, cannot be created, or is not writable.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GalamInputError(f"{option} {folder}: is a file; expected a folder for the results.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GalamInputError(
            f"{option} {folder}: the folder cannot be created ({exc.strerror or exc})."
        ) from exc
    try:
        handle, name = tempfile.mkstemp(prefix=".galam-write-check.", dir=folder)
    except OSError as exc:
        raise GalamInputError(
            f"{option} {folder}: cannot write into this folder ({exc.strerror or exc})."
        ) from exc
    os.close(handle)
    os.unlink(name)
    return folder


def check_earlier_table(path: str | os.PathLike, columns: Sequence[str]) -> Any:
    """Read the summary an earlier run left at ``path`` (None if there is none).

    Called before the run, so that a summary that could not be merged stops it before
    any work.

    Raises
    ------
    GalamInputError
        When ``path`` exists but is not a table with ``columns``.
    """
    from napari_galam.io.writers import read_table

    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        raise GalamInputError(f"{path}: is not a file; expected the results table (or nothing).")
    try:
        table = read_table(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure of the user's file
        raise GalamInputError(
            f"{path}: an earlier results table that cannot be read ({exc}); move it away "
            "or write to another output, so that its rows are not lost."
        ) from exc
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise GalamInputError(
            f"{path}: an earlier results table without the column(s) {', '.join(missing)}; "
            "move it away or write to another output, so that its rows are not lost."
        )
    return table


def _column_like(values: Any, like: Any) -> Any:
    """``values`` converted to the dtype of column ``like`` (masked -> "", NaN or -1)."""
    kind = like.dtype.kind
    if kind in "US":
        filled = values.filled("") if hasattr(values, "filled") else values
        return np.array(["" if v is None else str(v) for v in filled], dtype=str)
    if kind == "f":
        filled = values.filled(np.nan) if hasattr(values, "filled") else values
        return np.asarray(filled, dtype=float)
    if kind in "iu":
        filled = values.filled(-1) if hasattr(values, "filled") else values
        return np.asarray(filled, dtype=like.dtype)
    if kind == "b":
        filled = values.filled(False) if hasattr(values, "filled") else values
        return np.array([str(v).lower() in ("true", "1") for v in filled], dtype=bool)
    return np.asarray(values)


def _row_keys(table: Any, key_columns: Sequence[str]) -> list[tuple[str, ...]]:
    columns = [_column_like(table[c], np.array([""])) for c in key_columns]
    return list(zip(*columns, strict=True)) if columns else []


def merge_with_earlier(table: Any, earlier: Any, key_columns: Sequence[str]) -> Any:
    """This run's rows, then the earlier rows whose key this run does not have.

    Parameters
    ----------
    table
        This run's table (astropy ``Table``).
    earlier
        The earlier table (from :func:`check_earlier_table`) or None.
    key_columns
        The columns naming an input (e.g. ``("source",)``).

    Returns
    -------
    astropy.table.Table
        A new table with ``table``'s columns and metadata.
    """
    from astropy.table import Table, vstack

    if earlier is None or not len(earlier):
        return table
    seen = set(_row_keys(table, key_columns))
    keep = [k for k, key in enumerate(_row_keys(earlier, key_columns)) if key not in seen]
    if not keep:
        return table
    old = Table(
        [_column_like(earlier[name][keep], table[name]) for name in table.colnames],
        names=table.colnames,
    )
    merged = vstack([table, old], join_type="exact", metadata_conflicts="silent")
    merged.meta.clear()
    merged.meta.update(table.meta)
    for name in table.colnames:
        merged[name].format = table[name].format
    return merged
