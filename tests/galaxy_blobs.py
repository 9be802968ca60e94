"""A smooth Sersic-like blob: the galaxy of the synthetic QA and deblending scenes."""

from __future__ import annotations

import numpy as np

__all__ = ["blob"]


def blob(shape, row, col, amplitude, radius, axis_ratio=1.0, angle_deg=0.0):
    rows, cols = np.indices(shape, dtype=float)
    theta = np.radians(angle_deg)
    dx, dy = cols - col, rows - row
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = (-dx * np.sin(theta) + dy * np.cos(theta)) / axis_ratio
    return amplitude * np.exp(-((np.hypot(along, across) / radius) ** 0.8))
