"""Galaxy QA benchmark: throughput of masking + deblending, and accuracy on simulated scenes.

Prints four tables:

1. throughput on 128x128 RGB cutouts with the released pipeline's parameters (median
   ms per cutout for each step; cutouts/s in one process and in two processes);
2. agreement of the fast deblending with ``photutils.segmentation.deblend_sources``;
3. blend recall by neighbour separation (in PSF FWHM) and flux ratio, the false-positive
   rate on isolated galaxies, and the precision of the blend flag;
4. ellipse centre and position-angle errors for isolated galaxies with b/a < 0.8;
5. verdicts on a paper-like simulated sample (25% close neighbours, stars, JPEG), next to
   the paper's rejection rates.

Scenes come from the synthetic universe (``napari_galam.simulate.imaging.render_cutout``):
an SDSS-like gri cutout (0.396"/px, Moffat PSF of 1.4" FWHM) turned into the 8-bit RGB
picture the paper's pipeline reads, with exact truth (the target's isophotal ellipse and
whether its footprint touches a neighbour's).

Usage: ``python benchmarks/bench_qa.py [--per-cell 12] [--isolated 80] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _table import median_seconds, print_table  # noqa: E402

from napari_galam.core.deblend import detect_blends  # noqa: E402
from napari_galam.core.masking import fit_target_ellipse  # noqa: E402
from napari_galam.pipeline.qa import assess_galaxy  # noqa: E402

PSF_FWHM_ARCSEC = 1.4
SEPARATIONS_FWHM = (1.5, 2.0, 3.0, 4.0, 6.0)
FLUX_RATIOS = (0.1, 0.3, 1.0)


def make_scenes(seed: int, n_isolated: int, per_cell: int):
    """Render isolated galaxies and target + one neighbour on a separation x flux grid."""
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.imaging import SDSS_PIXEL_SCALE, Neighbour, render_cutout
    from napari_galam.simulate.observe import observed_basis
    from napari_galam.simulate.populations import default_library

    library = default_library()
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n_isolated):
        galaxy = draw_galaxy(rng, library=library)
        basis = observed_basis(galaxy, library=library)
        offset = tuple(float(v) for v in rng.uniform(-0.5, 0.5, 2))
        cutout = render_cutout(
            galaxy,
            rng=rng,
            library=library,
            psf_fwhm_arcsec=PSF_FWHM_ARCSEC,
            centre_offset_px=offset,
            target_basis=basis,
        )
        scenes.append({"kind": "isolated", "cutout": cutout, "sep": None, "flux": None})
    for sep in SEPARATIONS_FWHM:
        for flux in FLUX_RATIOS:
            for _ in range(per_cell):
                galaxy = draw_galaxy(rng, library=library)
                basis = observed_basis(galaxy, library=library)
                other = draw_galaxy(rng, library=library)
                other = dataclasses.replace(other, mag_r=galaxy.mag_r - 2.5 * np.log10(flux))
                neighbour = Neighbour(other, sep * PSF_FWHM_ARCSEC, float(rng.uniform(0.0, 360.0)))
                cutout = render_cutout(
                    galaxy,
                    rng=rng,
                    library=library,
                    neighbours=(neighbour,),
                    psf_fwhm_arcsec=PSF_FWHM_ARCSEC,
                    target_basis=basis,
                )
                scenes.append({"kind": "pair", "cutout": cutout, "sep": sep, "flux": flux})
    print(
        f"{len(scenes)} scenes: {n_isolated} isolated, {len(scenes) - n_isolated} pairs "
        f'(PSF {PSF_FWHM_ARCSEC}" = {PSF_FWHM_ARCSEC / SDSS_PIXEL_SCALE:.1f} px)'
    )
    return scenes


def mask_and_deblend(image, method="fast", deblend_all=False):
    masking = fit_target_ellipse(image)
    return detect_blends(
        image,
        target_mask=masking.mask if masking.ok else None,
        method=method,
        deblend_all=deblend_all or not masking.ok,
    )


def _batch(images):
    for image in images:
        mask_and_deblend(image)
    return len(images)


def throughput(images) -> None:
    rows = []
    per = {}
    steps = {
        "masking only": lambda im: fit_target_ellipse(im),
        "masking + fast deblending (target segments)": lambda im: mask_and_deblend(im),
        "masking + photutils deblending (target segments)": lambda im: mask_and_deblend(
            im, "photutils"
        ),
        "masking + photutils deblending (all segments, as the seed)": lambda im: mask_and_deblend(
            im, "photutils", deblend_all=True
        ),
    }
    sample = images[:40]
    for name, func in steps.items():
        times = []
        for image in sample:
            times.append(median_seconds(lambda f=func, im=image: f(im), repeat=3, warmup=1))
        per[name] = float(np.median(times))
        rows.append([name, f"{1e3 * per[name]:.2f}", f"{1.0 / per[name]:.0f}"])
    base = per["masking + photutils deblending (all segments, as the seed)"]
    fast = per["masking + fast deblending (target segments)"]
    print_table(
        f"Throughput per 128x128 RGB cutout, one process (median over {len(sample)} "
        f"cutouts; fast is {base / fast:.1f}x the seed's plain photutils)",
        ["step", "median ms", "cutouts/s"],
        rows,
    )
    batch = list(images) * max(1, 400 // len(images))
    rows = []
    for workers in (1, 2):
        chunks = [batch[i::workers] for i in range(workers)]
        if workers == 1:
            start = time.perf_counter()
            _batch(batch)
            wall = time.perf_counter() - start
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                list(pool.map(_batch, [images[:2]] * workers))  # warm the workers
                start = time.perf_counter()
                list(pool.map(_batch, chunks))
                wall = time.perf_counter() - start
        rows.append([workers, len(batch), f"{wall:.2f}", f"{len(batch) / wall:.0f}"])
    print_table(
        "Batch throughput, masking + fast deblending, seed parameters "
        f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
        ["processes", "cutouts", "wall s", "cutouts/s"],
        rows,
    )


def agreement(images) -> None:
    same = 0
    split = 0
    for image in images:
        fast = mask_and_deblend(image, "fast", deblend_all=True)
        slow = mask_and_deblend(image, "photutils", deblend_all=True)
        same += bool(np.array_equal(fast.segments, slow.segments))
        split += fast.n_segments > fast.n_detected
    print_table(
        "Fast deblending vs photutils deblend_sources (all segments deblended)",
        ["cutouts", "identical segmentations", "cutouts where deblending split a segment"],
        [[len(images), same, split]],
    )


def why_missed(scene, qa, n_pixels: int = 10) -> str:
    """Why a truly blended pair was not flagged: the neighbour has no peak of its own in
    the smoothed image, or its island above the saddle is smaller than ``n_pixels``
    (then no multi-threshold deblending with that minimum size can split it), or other.
    """
    from scipy import ndimage

    deblend = qa.deblend
    if deblend is None or deblend.status != "ok" or qa.masking.target is None:
        return "other"
    sources = scene["cutout"].truth.sources
    row, col = float(sources["y"][1]), float(sources["x"][1])
    smoothed, inside = deblend.smoothed, deblend.segments > 0
    values = np.where(inside, smoothed, -np.inf)
    peaks = np.argwhere(inside & (values >= ndimage.maximum_filter(values, size=3)))
    if peaks.size == 0:
        return "no peak"
    distance = np.hypot(peaks[:, 0] - row, peaks[:, 1] - col)
    if distance.min() > 2.0:
        return "no peak"
    ny, nx = peaks[np.argmin(distance)]
    my, mx = np.unravel_index(np.argmax(values), values.shape)
    if (ny, nx) == (my, mx):
        return "other"
    largest = 0
    for level in np.linspace(smoothed[ny, nx], smoothed[inside].min(), 300):
        labels, _ = ndimage.label((smoothed > level) & inside, structure=np.ones((3, 3)))
        if labels[ny, nx] == 0:
            continue
        if labels[ny, nx] == labels[my, mx]:
            break
        largest = int(np.count_nonzero(labels == labels[ny, nx]))
    return "island < npixels" if largest < n_pixels else "other"


def accuracy(scenes) -> None:
    results = []
    for scene in scenes:
        qa = assess_galaxy(scene["cutout"].rgb)
        results.append(qa)
    # Blend flags by separation and flux ratio.
    rows = []
    tp = fp = fn = 0
    for sep in SEPARATIONS_FWHM:
        for flux in FLUX_RATIOS:
            cell = [
                (s, r)
                for s, r in zip(scenes, results, strict=True)
                if s["sep"] == sep and s["flux"] == flux
            ]
            truly = [r for s, r in cell if s["cutout"].truth.blended]
            flagged_true = sum(r.status == "blended" for r in truly)
            flagged_false = sum(
                r.status == "blended" for s, r in cell if not s["cutout"].truth.blended
            )
            rejected = sum(r.status not in ("accepted", "blended") for _, r in cell)
            reasons = [
                why_missed(s, r)
                for s, r in cell
                if s["cutout"].truth.blended and r.status == "accepted"
            ]
            recall = flagged_true / len(truly) if truly else float("nan")
            rows.append(
                [
                    sep,
                    flux,
                    len(cell),
                    len(truly),
                    flagged_true,
                    f"{recall:.2f}",
                    flagged_false,
                    rejected,
                    reasons.count("no peak"),
                    reasons.count("island < npixels"),
                    reasons.count("other"),
                ]
            )
            if sep > 2.0 and flux >= 0.1:
                tp += flagged_true
                fn += len(truly) - flagged_true
                fp += flagged_false
    print_table(
        "Blend detection on pairs (truth: the target's 1-sigma footprint touches the neighbour's)",
        [
            "sep/FWHM",
            "flux ratio",
            "scenes",
            "truly blended",
            "flagged",
            "recall",
            "flagged, not blended",
            "no ellipse",
            "missed: no peak",
            "missed: island < 10 px",
            "missed: other",
        ],
        rows,
    )
    isolated = [(s, r) for s, r in zip(scenes, results, strict=True) if s["kind"] == "isolated"]
    fp_isolated = sum(r.status == "blended" for _, r in isolated)
    rejected = sum(r.status not in ("accepted", "blended") for _, r in isolated)
    precision = tp / (tp + fp + fp_isolated) if tp + fp + fp_isolated else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    print_table(
        "Blend flag summary (pairs with sep > 2 FWHM and flux ratio >= 0.1, plus the "
        "isolated galaxies as negatives)",
        ["recall", "precision", "isolated flagged blended", "isolated without ellipse"],
        [
            [
                f"{recall:.3f} ({tp}/{tp + fn})",
                f"{precision:.3f}",
                f"{fp_isolated}/{len(isolated)}",
                f"{rejected}/{len(isolated)}",
            ]
        ],
    )
    # Ellipses of isolated, elongated galaxies.
    ratios, centre_err, pa_err = [], [], []
    for scene, qa in isolated:
        truth = scene["cutout"].truth.ellipse
        if truth.semi_minor / truth.semi_major >= 0.8 or qa.masking.target is None:
            continue
        target = qa.masking.target
        ratios.append(truth.semi_minor / truth.semi_major)
        centre_err.append(float(np.hypot(target.x - truth.x, target.y - truth.y)))
        pa_err.append(float(abs((target.angle_deg - truth.theta_deg + 90.0) % 180.0 - 90.0)))
    ratios, centre_err, pa_err = np.array(ratios), np.array(centre_err), np.array(pa_err)
    rows = []
    for low, high in ((0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.0, 0.8)):
        sel = (ratios >= low) & (ratios < high)
        if not sel.any():
            continue
        c, p = centre_err[sel], pa_err[sel]
        rows.append(
            [
                f"{low:.1f}-{high:.1f}",
                int(sel.sum()),
                f"{np.median(c):.2f}",
                f"{np.percentile(c, 90):.2f}",
                f"{np.mean(c <= 1.0):.2f}",
                f"{np.median(p):.2f}",
                f"{np.percentile(p, 90):.2f}",
                f"{np.mean(p <= 5.0):.2f}",
            ]
        )
    if rows:
        print_table(
            "Ellipse of isolated galaxies with b/a < 0.8 (truth: second moments of the "
            "target's own 1-sigma footprint), by true b/a",
            [
                "b/a",
                "galaxies",
                "centre err median px",
                "90th pct px",
                "within 1 px",
                "PA err median deg",
                "90th pct deg",
                "within 5 deg",
            ],
            rows,
        )


def population(seed: int, n: int) -> None:
    """Paper-like sample: galam simulate's scene mix (25% close neighbours, stars, edge
    galaxies, seeing 0.9-2"), JPEG-compressed like SkyServer cutouts."""
    from napari_galam.simulate.datasets import jpeg_roundtrip
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.imaging import draw_scene, render_cutout
    from napari_galam.simulate.observe import observed_basis
    from napari_galam.simulate.populations import default_library

    library = default_library()
    rng = np.random.default_rng(seed + 1000)
    counts: dict[str, int] = {}
    tp = fp = fn = tn = 0
    for _ in range(n):
        galaxy = draw_galaxy(rng, library=library)
        neighbours, stars = draw_scene(rng, galaxy, library=library)
        cutout = render_cutout(
            galaxy,
            rng=rng,
            library=library,
            neighbours=neighbours,
            stars=stars,
            psf_fwhm_arcsec=float(np.clip(rng.normal(1.4, 0.2), 0.9, 2.0)),
            target_basis=observed_basis(galaxy, library=library),
        )
        qa = assess_galaxy(jpeg_roundtrip(cutout.rgb, quality=90))
        counts[qa.status] = counts.get(qa.status, 0) + 1
        if qa.status in ("accepted", "blended"):
            flagged, truly = qa.status == "blended", cutout.truth.blended
            tp += flagged and truly
            fp += flagged and not truly
            fn += truly and not flagged
            tn += not flagged and not truly
    rows = [
        [
            n,
            f"{100 * counts.get('accepted', 0) / n:.1f}%",
            f"{100 * counts.get('blended', 0) / n:.1f}% (paper 25%)",
            f"{100 * (n - counts.get('accepted', 0) - counts.get('blended', 0)) / n:.1f}% "
            "(paper 0.58%)",
            f"{(tp + fn) / max(1, tp + fp + fn + tn):.2f}",
            f"{tp / max(1, tp + fn):.2f}",
            f"{tp / max(1, tp + fp):.2f}",
        ]
    ]
    print_table(
        "Paper-like simulated sample (JPEG q=90): verdicts, and the blend flag against "
        "truth (footprints touching at 1 sigma, any separation or flux ratio)",
        [
            "cutouts",
            "accepted",
            "blended",
            "no ellipse",
            "truly blended",
            "blend recall",
            "blend precision",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=12, help="pairs per grid cell")
    parser.add_argument("--isolated", type=int, default=80, help="isolated galaxies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--population", type=int, default=200, help="paper-like simulated cutouts (0: skip)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    scenes = make_scenes(args.seed, args.isolated, args.per_cell)
    print(f"rendered in {time.perf_counter() - start:.0f} s")
    images = [scene["cutout"].rgb for scene in scenes]
    throughput(images)
    agreement(images[:: max(1, len(images) // 60)])
    accuracy(scenes)
    if args.population > 0:
        population(args.seed, args.population)


if __name__ == "__main__":
    main()
