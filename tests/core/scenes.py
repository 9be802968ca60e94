"""Synthetic cutouts shared by the blend-detection tests: galaxies as Sersic-like blobs."""

from __future__ import annotations

import numpy as np
from galaxy_blobs import blob

__all__ = ["blob", "random_scene", "faint_companion_scene"]


def random_scene(rng, shape=(128, 128)):
    image = blob(
        shape,
        64,
        64,
        rng.uniform(30, 200),
        rng.uniform(3, 9),
        rng.uniform(0.3, 1),
        rng.uniform(0, 180),
    )
    for _ in range(rng.integers(0, 4)):
        if rng.random() < 0.5:
            row, col = 64 + rng.uniform(-14, 14, 2)
        else:
            row, col = rng.uniform(8, 120, 2)
        image += blob(
            shape,
            row,
            col,
            rng.uniform(5, 80),
            rng.uniform(1.5, 6),
            rng.uniform(0.4, 1),
            rng.uniform(0, 180),
        )
    return image + rng.normal(0, 1, shape)


def faint_companion_scene(seed=3, amplitude=30.0):
    """A b/a 0.75 galaxy with a companion on its slope that makes no peak of its own."""
    rng = np.random.default_rng(seed)
    image = blob((128, 128), 63.5, 63.5, 200.0, 8.0, 0.75, 30.0)
    if amplitude:
        image = image + blob((128, 128), 72.5, 54.5, amplitude, 3.0)
    return image + rng.normal(0, 1, (128, 128))
