"""Synthetic galaxy cutouts for the QA tests: smooth blobs, pairs, a faint companion."""

from __future__ import annotations

import numpy as np
from galaxy_blobs import blob

__all__ = ["blob", "faint_companion", "pair", "single"]


def single(seed=0):
    rng = np.random.default_rng(seed)
    return blob((128, 128), 64, 64, 150, 5, 0.6, 30) + rng.normal(0, 1, (128, 128))


def pair(seed=0):
    rng = np.random.default_rng(seed)
    image = blob((128, 128), 64, 58, 150, 5) + blob((128, 128), 64, 72, 80, 4)
    return image + rng.normal(0, 1, (128, 128))


def faint_companion(amplitude=30.0, seed=3):
    rng = np.random.default_rng(seed)
    image = blob((128, 128), 63.5, 63.5, 200.0, 8.0, 0.75, 30.0)
    image = image + blob((128, 128), 72.5, 54.5, amplitude, 3.0)
    return image + rng.normal(0, 1, (128, 128))
