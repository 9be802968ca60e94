"""Plot a radial gradient the way Liew-Cain et al. (2021, Fig. 9) do.

Grey crosses for the spaxels, thin red lines for the bootstrap fits, a black line for
the mean fit, and the slope with its bootstrap standard deviation in dex/R_e.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_gradient"]


def plot_gradient(
    ax: Any,
    fit: Any,
    *,
    ylabel: str,
    title: str = "",
    point_color: str = "0.6",
    max_points: int = 20_000,
) -> None:
    """Draw a :class:`napari_galam.core.gradients.GradientFit` on ``ax``.

    Parameters
    ----------
    ax
        A matplotlib Axes.
    fit
        The bootstrap fit (its points are drawn even when the fit failed).
    ylabel
        The quantity, e.g. ``"log age [yr]"``.
    title
        Prefix of the title; the slope ± SD (or the reason there is none) follows.
    point_color
        Colour of the crosses.
    max_points
        Draw at most this many crosses (an evenly spaced subset) to keep it fast.
    """
    radius, values = np.asarray(fit.radius), np.asarray(fit.values)
    step = max(1, radius.size // max_points)
    ax.plot(radius[::step], values[::step], "x", color=point_color, ms=3, mew=0.6, zorder=1)
    ax.axvline(fit.max_radius, color="0.5", lw=0.6, ls="--", zorder=0)
    if fit.ok:
        grid = np.array([0.0, fit.max_radius])
        for slope, intercept in zip(fit.slopes, fit.intercepts, strict=True):
            ax.plot(grid, intercept + slope * grid, color="red", lw=0.4, alpha=0.35, zorder=2)
        ax.plot(grid, fit.intercept + fit.slope * grid, color="black", lw=1.6, zorder=3)
        error = fit.slope_err if np.isfinite(fit.slope_err) else fit.slope_sd
        mark = "" if fit.model_sd > 0 else " (stat.)"
        summary = f"∇ = {fit.slope:+.3f} ± {error:.3f}{mark} dex/R$_e$"
    else:
        summary = f"no fit: {fit.reason}"
    ax.set_title(f"{title}   {summary}".strip(), fontsize=9)
    ax.set_xlabel("R / R$_e$ (deprojected)")
    ax.set_ylabel(ylabel)
    if radius.size:
        ax.set_xlim(0, max(float(np.nanmax(radius)), fit.max_radius) * 1.02)
