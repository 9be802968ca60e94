"""Plots of pPXF fits: the fit over the data with its residuals, and network vs pPXF maps.

:func:`plot_ppxf_fit` draws a :class:`napari_galam.sps.reference_fit.PopulationFit` on
two Axes (rest-frame spectrum, stellar and total best fit, gas emission, pixels left
out of the fit shaded; residuals below). :func:`plot_map_scatter` draws the network's
map against pPXF's map, spaxel by spaxel (or bin by bin), with the 1:1 line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_ppxf_fit", "plot_map_scatter", "masked_spans"]


def masked_spans(wave: Any, fitted: Any) -> list[tuple[float, float]]:
    """The wavelength ranges of consecutive pixels left out of the fit."""
    wave = np.asarray(wave, dtype=float)
    out = ~np.asarray(fitted, dtype=bool)
    if not out.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], out.astype(int), [0]])))
    return [(float(wave[a]), float(wave[min(b, wave.size) - 1])) for a, b in edges.reshape(-1, 2)]


def plot_ppxf_fit(
    ax: Any, ax_residuals: Any, fit: Any, *, title: str = "", text_color: str | None = None
) -> None:
    """Draw a pPXF fit: data, best fit, gas and masked pixels on ``ax``; residuals below.

    Parameters
    ----------
    ax, ax_residuals
        Matplotlib Axes for the spectrum and for the residuals (sharing the x axis).
    fit
        A ``PopulationFit`` (``wave_rest``, ``galaxy``, ``best_fit``, ``gas_best_fit``,
        ``fitted``, ``log_age``, ``mh`` and their errors).
    title
        Shown above the spectrum, before the fitted numbers.
    text_color
        Colour of the title (default: the axes' label colour).
    """
    wave = np.asarray(fit.wave_rest)
    ax.plot(wave, fit.galaxy, color="0.6", lw=0.6, label="data")
    ax.plot(wave, fit.best_fit, color="#e53935", lw=0.8, label="pPXF best fit")
    if fit.gas_best_fit is not None:
        ax.plot(wave, fit.gas_best_fit, color="#43a047", lw=0.7, label="gas")
    for lo, hi in masked_spans(wave, fit.fitted):
        ax.axvspan(lo, hi, color="#90a4ae", alpha=0.25, lw=0)
        ax_residuals.axvspan(lo, hi, color="#90a4ae", alpha=0.25, lw=0)
    residuals = fit.residuals
    ax_residuals.plot(wave, residuals, color="#1e88e5", lw=0.5, marker=".", ms=1, ls="none")
    ax_residuals.axhline(0.0, color="0.4", lw=0.6)
    good = np.isfinite(residuals)
    if good.any():
        spread = 5.0 * float(np.std(residuals[good])) or 1.0
        ax_residuals.set_ylim(-spread, spread)
    ax_residuals.set_ylabel("residual")
    ax_residuals.set_xlabel("rest-frame wavelength [Å]")
    ax.set_ylabel("flux / median")
    ax.set_xlim(wave[0], wave[-1])
    age_err = f" ± {fit.log_age_err:.3f}" if np.isfinite(fit.log_age_err) else ""
    mh_err = f" ± {fit.mh_err:.3f}" if np.isfinite(fit.mh_err) else ""
    numbers = (
        f"log age {fit.log_age:.3f}{age_err}, [M/H] {fit.mh:+.3f}{mh_err}, "
        f"σ {fit.sigma:.0f} km/s, χ² {fit.chi2:.2f}"
    )
    ax.set_title(f"{title}\n{numbers}" if title else numbers, fontsize=8,
                 color=text_color or ax.xaxis.label.get_color())  # fmt: skip
    ax.legend(loc="upper right", fontsize=7, frameon=False, ncols=3)


def plot_map_scatter(
    ax: Any,
    network: Any,
    ppxf: Any,
    *,
    label: str,
    span: tuple[float, float],
    color: str = "C0",
) -> None:
    """Network map against pPXF map, one point per finite spaxel pair, with the 1:1 line.

    Parameters
    ----------
    ax
        A matplotlib Axes.
    network, ppxf
        Maps (or values) of one quantity on one grid.
    label
        The quantity with its unit, e.g. ``"log age [yr]"``.
    span
        Axis limits of both axes.
    """
    network = np.asarray(network, dtype=float).ravel()
    ppxf = np.asarray(ppxf, dtype=float).ravel()
    both = np.isfinite(network) & np.isfinite(ppxf)
    ax.plot(ppxf[both], network[both], ".", ms=3, alpha=0.6, color=color)
    ax.plot(span, span, "-", color="0.5", lw=0.8, label="1:1")
    ax.set_xlim(span)
    ax.set_ylim(span)
    ax.set_xlabel(f"pPXF {label}", fontsize=8)
    ax.set_ylabel(f"network {label}", fontsize=8)
    if both.any():
        diff = network[both] - ppxf[both]
        ax.set_title(f"network − pPXF\n{np.mean(diff):+.3f} ± {np.std(diff):.3f} dex, "
                     f"{both.sum()} spaxels", fontsize=7)  # fmt: skip
    ax.tick_params(labelsize=7)
