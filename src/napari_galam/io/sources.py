"""One entry point for spatially resolved data: :func:`open_source` picks the reader.

An IFU cube (CALIFA, MaNGA, MUSE, generic spectral FITS) opens as a
:class:`~napari_galam.io.cubes.SpectralCube`; a narrow-band stack (one multi-extension
file, a cube with a filter table, or one file per filter) as a
:class:`~napari_galam.io.narrowband.NarrowBandStack`. The napari reader and the mapping
pipeline both call it, so a file that opens in the viewer maps on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from napari_galam.errors import GalamInputError

__all__ = ["open_source", "sniff_source"]

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]


def sniff_source(path_or_paths: PathOrPaths) -> str | None:
    """``"narrowband"``, ``"cube"`` or None (not a source this package maps); never raises."""
    from napari_galam.io.cubes import sniff_cube_layout
    from napari_galam.io.narrowband import sniff_narrowband

    if sniff_narrowband(path_or_paths) is not None:
        return "narrowband"
    if isinstance(path_or_paths, str | os.PathLike) and sniff_cube_layout(path_or_paths):
        return "cube"
    return None


def open_source(path_or_paths: PathOrPaths, *, lazy: bool = True) -> Any:
    """Open a cube or a narrow-band stack, whichever the file(s) hold.

    Parameters
    ----------
    path_or_paths
        One FITS file, or the files of one narrow-band stack (one per filter).
    lazy
        Keep the pixels on disk (memory-mapped or read by slabs) until used.

    Returns
    -------
    SpectralCube or NarrowBandStack

    Raises
    ------
    GalamInputError
        When the file is neither; the message names it and what was expected. A single
        file that no sniffer claims gets the cube reader's own message (a broken cube
        says what is broken, any other file which HDUs it has instead).
    """
    from napari_galam.io.cubes import read_cube
    from napari_galam.io.narrowband import read_narrowband

    kind = sniff_source(path_or_paths)
    if kind == "narrowband":
        return read_narrowband(path_or_paths, lazy=lazy)
    if kind == "cube":
        return read_cube(path_or_paths, lazy=lazy)
    if isinstance(path_or_paths, str | os.PathLike):
        # neither sniffer claims the file: the cube reader says what is wrong with it
        # (missing, not FITS, a broken cube, or which HDUs it has instead of a cube)
        return read_cube(path_or_paths, lazy=lazy)
    what = ", ".join(str(p) for p in path_or_paths)
    raise GalamInputError(
        f"{what}: not an IFU cube (CALIFA, MaNGA, MUSE or a FITS cube with a spectral "
        "WCS) nor a narrow-band stack (FILTER keywords or a FILTERS table)."
    )
