"""Project exceptions: errors a user can cause, with messages that say what to fix."""

from __future__ import annotations

__all__ = ["GalamError", "GalamInputError"]


class GalamError(Exception):
    """Base class for every error napari-galam raises on purpose."""


class GalamInputError(GalamError, ValueError):
    """Bad input: a file, a layer or a parameter that is not what was expected.

    The message names the file or layer and what was expected, so that the widgets can
    show it as a notification and the command line can print it without a traceback.
    """
