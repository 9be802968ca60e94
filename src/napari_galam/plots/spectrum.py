"""Plot a fibre spectrum: flux against observed wavelength, with its key absorption lines."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ABSORPTION_LINES", "plot_spectrum"]

#: Rest-frame (air) wavelengths in Angstrom of the stellar absorption features an
#: astronomer looks for first in an old or intermediate-age population.
ABSORPTION_LINES: dict[str, float] = {
    "Ca K": 3933.7,
    "Ca H": 3968.5,
    "G band": 4304.4,
    "Hβ": 4861.3,
    "Mg b": 5175.4,
    "Fe 5270": 5270.0,
    "Na D": 5892.9,
    "Hα": 6562.8,
}


def plot_spectrum(
    ax: Any,
    spectrum: Any,
    *,
    color: str = "C0",
    label_lines: bool = True,
    text_color: str | None = None,
) -> None:
    """Draw ``spectrum`` on ``ax``: flux and 1-sigma noise against observed wavelength.

    Parameters
    ----------
    ax
        A matplotlib Axes.
    spectrum
        An object with ``wave``, ``flux``, ``ivar``, ``redshift``, ``name`` and
        ``snr_median`` (for example :class:`napari_galam.io.spectra.SdssSpectrum`).
    color
        Line colour of the flux.
    label_lines
        Mark the main absorption lines at their redshifted positions.
    text_color
        Colour of the line labels (defaults to the axes' text colour).
    """
    wave = np.asarray(spectrum.wave)
    flux = np.asarray(spectrum.flux, dtype=float)
    ivar = np.asarray(spectrum.ivar, dtype=float)
    good = ivar > 0
    shown = np.where(good, flux, np.nan)
    sigma = np.where(good, 1.0 / np.sqrt(np.where(good, ivar, 1.0)), np.nan)
    marker = "o" if wave.size <= 100 else None  # an SED: show each filter
    ax.plot(wave, shown, color=color, lw=0.7, marker=marker, ms=3, label="flux")
    ax.plot(wave, sigma, color="0.55", lw=0.6, label="1σ noise")
    z = float(spectrum.redshift)
    snr = float(spectrum.snr_median)
    z_text = f"z = {z:.4f}" if np.isfinite(z) else "z unknown"
    snr_text = f"median S/N = {snr:.1f}" if np.isfinite(snr) else "median S/N unknown"
    ax.set_title(f"{spectrum.name}\n{z_text}   {snr_text}", fontsize=9)
    ax.set_xlabel("observed wavelength [Å]")
    unit = getattr(spectrum, "flux_unit", "")
    ax.set_ylabel(f"flux [{unit}]" if unit else "flux")
    if np.any(np.isfinite(shown)):
        lo, hi = np.nanpercentile(shown, [0.5, 99.5])
        pad = 0.08 * (hi - lo if hi > lo else 1.0)
        ax.set_ylim(min(lo - pad, 0.0), hi + 3 * pad)
    ax.set_xlim(wave[0], wave[-1])
    if label_lines and np.isfinite(z):
        ymax = ax.get_ylim()[1]
        for name, rest in ABSORPTION_LINES.items():
            observed = rest * (1.0 + z)
            if wave[0] < observed < wave[-1]:
                ax.axvline(observed, color="0.5", lw=0.5, ls=":")
                ax.text(
                    observed,
                    ymax,
                    name,
                    rotation=90,
                    va="top",
                    ha="right",
                    fontsize=7,
                    color=text_color or ax.xaxis.label.get_color(),
                )
    ax.legend(loc="lower right", fontsize=7, frameon=False)
