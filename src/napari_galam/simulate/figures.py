"""Pictures of simulated data for people: cutouts with their truth, spectra, cubes and maps.

Drawing functions take a matplotlib ``Axes`` and a result object, so the same plots can
be used in reports and docks; :func:`save_example_figures` writes the PNGs kept under
``docs/simulated/``. Matplotlib is imported only here, with the Agg backend when saving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_galam.simulate.cubes import CALIFA_WAVE, IFUCube, NarrowBandCube
from napari_galam.simulate.imaging import Cutout
from napari_galam.simulate.spectra import FibreSpectrum

__all__ = [
    "ABSORPTION_LINES",
    "draw_cutout",
    "draw_spectrum",
    "draw_cube_maps",
    "save_example_figures",
]

#: Rest-frame (air) wavelengths of strong stellar absorption features, A.
ABSORPTION_LINES: dict[str, float] = {
    "Ca II K": 3933.7,
    "Ca II H": 3968.5,
    "H$\\delta$": 4101.7,
    "G band": 4304.4,
    "H$\\gamma$": 4340.5,
    "H$\\beta$": 4861.3,
    "Mg b": 5175.4,
    "Fe 5270": 5269.5,
    "Na D": 5892.9,
    "H$\\alpha$": 6562.8,
    "Ca II triplet": 8542.1,
}


def draw_cutout(ax: Any, cutout: Cutout, *, show_truth: bool = True, title: str = "") -> None:
    """Show a cutout's RGB picture with the target ellipse and other footprints' outlines."""
    from matplotlib.patches import Ellipse

    ax.imshow(cutout.rgb, origin="upper")
    if show_truth:
        e = cutout.truth.ellipse
        ax.add_patch(
            Ellipse(
                (e.x, e.y),
                2 * e.semi_major,
                2 * e.semi_minor,
                angle=e.theta_deg,
                fill=False,
                color="lime" if not cutout.truth.blended else "red",
                lw=0.8,
            )
        )
        others = cutout.truth.segmentation > 1
        if others.any():
            ax.contour(others, levels=[0.5], colors="cyan", linewidths=0.5)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_spectrum(ax: Any, spectrum: FibreSpectrum, *, label_lines: bool = True) -> None:
    """Plot a fibre spectrum (noisy and model) with absorption features marked."""
    wave = spectrum.wave
    good = spectrum.ivar > 0
    ax.plot(wave[good], spectrum.flux[good], color="0.55", lw=0.5, label="simulated SDSS spectrum")
    ax.plot(wave, spectrum.model, color="k", lw=0.8, label="noiseless model")
    top = float(np.percentile(spectrum.model, 99.5)) * 1.35
    ax.set_ylim(0, top)
    ax.set_xlim(wave[0], wave[-1])
    if label_lines:
        for name, rest in ABSORPTION_LINES.items():
            observed = rest * (1 + spectrum.redshift) * 1.00028
            if wave[0] < observed < wave[-1]:
                ax.axvline(observed, color="tab:red", lw=0.5, alpha=0.6)
                ax.text(
                    observed,
                    top * 0.97,
                    name,
                    rotation=90,
                    fontsize=6,
                    va="top",
                    ha="right",
                    color="tab:red",
                )
    ax.set_xlabel("observed vacuum wavelength (Å)")
    ax.set_ylabel("$f_\\lambda$ ($10^{-17}$ erg s$^{-1}$ cm$^{-2}$ Å$^{-1}$)")
    ax.set_title(
        f"z = {spectrum.redshift:.3f}, S/N = {spectrum.snr:.0f}, σ = {spectrum.velocity_dispersion_kms:.0f} km/s; "
        f"fibre labels: log age = {spectrum.log_age:.2f}, [M/H] = {spectrum.mh:+.2f}",
        fontsize=8,
    )
    ax.legend(loc="lower right", fontsize=7)


def draw_cube_maps(axes: Any, cube: IFUCube) -> None:
    """Four panels: a cube slice, the true log age and [M/H] maps and the age gradient."""
    truth = cube.truth
    good = cube.badpix.mean(axis=0) < 0.5
    window = (CALIFA_WAVE > 5590) & (CALIFA_WAVE < 5680)
    image = np.where(good, cube.flux[window].mean(axis=0), np.nan)
    panels = (
        (np.log10(np.clip(image, 1e-4, None)), "log flux 5590-5680 Å (cube slice)", "magma"),
        (np.where(good, truth.log_age, np.nan), "true log(age/yr)", "viridis"),
        (np.where(good, truth.mh, np.nan), "true [M/H]", "plasma"),
    )
    for ax, (data, title, cmap) in zip(axes[:3], panels, strict=False):
        low, high = np.nanpercentile(data, [2, 99.8])
        shown = ax.imshow(data, origin="lower", cmap=cmap, vmin=low, vmax=high)
        ax.contour(truth.r_over_re, levels=[1.0, 2.0], colors="w", linewidths=0.6)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.figure.colorbar(shown, ax=ax, fraction=0.046)
    ax = axes[3]
    other = ax.twinx()
    r = truth.r_over_re[good]
    inner = r <= 1
    for axis, values, colour, slope, name in (
        (ax, truth.log_age[good], "k", truth.observed_gradient_log_age, "log age"),
        (other, truth.mh[good], "tab:blue", truth.observed_gradient_mh, "[M/H]"),
    ):
        axis.plot(r, values, "x", color=colour, ms=2, alpha=0.35)
        intercept = np.mean(values[inner]) - slope * np.mean(r[inner])
        xs = np.array([0.0, 1.0])
        axis.plot(
            xs, intercept + slope * xs, color=colour, lw=1.8, label=f"{name}: {slope:+.3f} dex/R_e"
        )
        axis.set_ylabel(name, color=colour)
    ax.axvline(1.0, color="0.3", ls=":", lw=0.8)
    ax.set_xlim(0, 2.5)
    ax.set_xlabel("deprojected R / R_e")
    ax.set_title("true radial gradients (fits inside R_e)", fontsize=8)
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower left")


def save_example_figures(folder: str | Path, *, seed: int = 1) -> list[Path]:
    """Write the example PNGs (cutouts with blends, a spectrum, a cube, a field, J-PAS)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_galam.simulate.datasets import galaxy_rngs, simulate_sdss_galaxy
    from napari_galam.simulate.populations import default_library

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    library = default_library()
    written = []

    sims = [
        simulate_sdss_galaxy(rng, library=library, blend_probability=0.4)
        for rng in galaxy_rngs(seed, 24)
    ]
    written += _save_sdss_figures(plt, sims, folder)
    written += _save_califa_figures(plt, seed, library, folder)
    written.append(_save_field_figure(plt, seed, folder))
    written.append(_save_jpas_figure(plt, seed, folder))
    return written


def _save_sdss_figures(plt: Any, sims: list[Any], folder: Path) -> list[Path]:
    """The cutout grid, the cutouts with their truth, and the spectrum of an old galaxy."""
    written = []
    fig, axes = plt.subplots(4, 6, figsize=(12, 8.4))
    for ax, sim in zip(axes.ravel(), sims, strict=True):
        draw_cutout(ax, sim.cutout, show_truth=False, title=_cutout_title(sim))
    fig.suptitle(
        "Simulated SDSS gri cutouts (128×128, 0.396″/px, i→R r→G g→B, asinh stretch)", fontsize=10
    )
    fig.tight_layout()
    written.append(_save(fig, folder / "cutouts.png", dpi=85))

    fig, axes = plt.subplots(2, 6, figsize=(12, 4.4))
    for ax, sim in zip(axes.ravel(), sims[:12], strict=True):
        draw_cutout(ax, sim.cutout, show_truth=True, title=_cutout_title(sim))
    fig.suptitle(
        "Ground truth: target ellipse (green; red = blended), other sources' footprints (cyan)",
        fontsize=10,
    )
    fig.tight_layout()
    written.append(_save(fig, folder / "cutouts_truth.png", dpi=85))

    old = max(sims, key=lambda s: s.spectrum.log_age if s.spectrum.snr > 20 else 0)
    fig, ax = plt.subplots(figsize=(12, 4.2))
    draw_spectrum(ax, old.spectrum)
    fig.tight_layout()
    written.append(_save(fig, folder / "spectrum.png"))
    return written


def _save_califa_figures(plt: Any, seed: int, library: Any, folder: Path) -> list[Path]:
    """A simulated CALIFA cube's maps, and two of its spaxels' spectra."""
    from napari_galam.simulate.cubes import render_califa_cube
    from napari_galam.simulate.galaxy import draw_galaxy

    written = []
    rng = np.random.default_rng(seed)
    galaxy = draw_galaxy(rng, survey="califa", library=library)
    cube = render_califa_cube(galaxy, rng=rng, library=library, snr_at_re=25.0)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    draw_cube_maps(axes, cube)
    fig.suptitle(
        f"Simulated CALIFA V500 cube (z = {galaxy.redshift:.3f}, R_e = {galaxy.re_arcsec:.1f}″, "
        f"B/T = {galaxy.bulge.light_fraction:.2f}, i = {galaxy.inclination_deg:.0f}°)",
        fontsize=10,
    )
    fig.tight_layout()
    written.append(_save(fig, folder / "califa_cube.png"))

    fig, ax = plt.subplots(figsize=(12, 3.6))
    centre = (36, 39)
    ring = (
        int(36 + round(galaxy.re_arcsec * 0.0)),
        int(39 + round(min(galaxy.re_arcsec * 1.5, 30))),
    )
    for offset, ((y, x), colour) in enumerate(((centre, "k"), (ring, "tab:blue"))):
        ax.plot(
            cube.wave,
            cube.flux[:, y, x] / np.median(cube.flux[:, y, x]) - 0.8 * offset,
            color=colour,
            lw=0.6,
            label=f"spaxel ({x}, {y}): R/R_e = {cube.truth.r_over_re[y, x]:.2f}, "
            f"log age = {cube.truth.log_age[y, x]:.2f}, [M/H] = {cube.truth.mh[y, x]:+.2f}",
        )
    ax.set_xlabel("observed air wavelength (Å)")
    ax.set_ylabel("flux / median (2nd shifted by -0.8)")
    ax.legend(fontsize=7)
    ax.set_title("Two spaxels of the simulated CALIFA cube (centre and 1.5 R_e)", fontsize=9)
    fig.tight_layout()
    written.append(_save(fig, folder / "califa_spaxels.png"))
    return written


def _save_field_figure(plt: Any, seed: int, folder: Path) -> Path:
    """A simulated 512 x 512 SDSS field with its source ids."""
    from napari_galam.simulate.samples import simulated_sdss_field

    field = simulated_sdss_field(seed)
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(field.rgb)
    table = field.truth.sources
    for row in table:
        if row["kind"] != "star":
            ax.text(
                row["x"] + 6,
                row["y"] - 6,
                str(row["id"]),
                color="red" if row["blended"] else "w",
                fontsize=7,
            )
    ax.set_title("Simulated SDSS field, 512×512 (source ids; red = blended)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, folder / "sdss_field.png", dpi=80)


def _save_jpas_figure(plt: Any, seed: int, folder: Path) -> Path:
    """Four bands of a simulated J-PAS-like cube and the SEDs of two of its pixels."""
    from napari_galam.simulate.samples import simulated_jpas_cube

    jpas: NarrowBandCube = simulated_jpas_cube(seed)
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.4))
    for ax, index in zip(axes[:4], (2, 14, 28, 46), strict=True):
        scaled = np.arcsinh(jpas.flux[index] / np.median(jpas.error[index]))
        ax.imshow(scaled, origin="lower", cmap="gray", vmin=0, vmax=np.percentile(scaled, 99.8))
        ax.set_title(f"{jpas.filter_names[index]} ({jpas.centres_a[index]:.0f} Å)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[4]
    cy, cx = (np.array(jpas.flux.shape[1:]) - 1) // 2
    for dx, colour in ((0, "k"), (int(jpas.truth.re_pixels), "tab:blue")):
        norm = float(np.median(jpas.flux[:, cy, cx + dx]))
        ax.errorbar(
            jpas.centres_a,
            jpas.flux[:, cy, cx + dx] / norm,
            yerr=jpas.error[:, cy, cx + dx] / norm,
            fmt="o",
            ms=2,
            color=colour,
            lw=0.6,
            label=f"R/R_e = {jpas.truth.r_over_re[cy, cx + dx]:.2f}",
        )
    ax.set_xlabel("filter centre (Å)")
    ax.set_title("54-band SEDs of two pixels (each / its median)", fontsize=8)
    ax.legend(fontsize=7)
    fig.suptitle("Simulated J-PAS-like narrow-band cube (0.456″/px)", fontsize=10)
    fig.tight_layout()
    return _save(fig, folder / "jpas_cube.png")


def _cutout_title(sim: Any) -> str:
    s = sim.spectrum
    blend = " BLEND" if sim.cutout.truth.blended else ""
    return f"z={s.redshift:.3f} age={s.log_age:.2f} [M/H]={s.mh:+.2f}{blend}"


def _save(fig: Any, path: Path, dpi: int = 100) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
