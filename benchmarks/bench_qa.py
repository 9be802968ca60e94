"""Galaxy QA benchmark: throughput of masking + deblending, and accuracy on simulated scenes.

Prints four tables:

1. throughput on 128x128 RGB cutouts with the released pipeline's parameters (median
   ms per cutout for each step; cutouts/s in one process and in two processes);
2. agreement of the fast deblending with ``photutils.segmentation.deblend_sources``;
3. blend recall by neighbour separation (in PSF FWHM) and flux ratio, the false-positive
   rate on isolated galaxies (smooth, and spirals with arms and clumps), and the
   precision of the blend flag;
4. ellipse centre and position-angle errors for isolated galaxies with b/a < 0.8;
5. verdicts on a paper-like simulated sample (25% close neighbours, stars, JPEG), next to
   the paper's rejection rates;
6. (first) the star check: simulated stars rejected by brightness class, and isolated,
   compact and high-redshift galaxies lost as stars (``--stars``); the blend tables are
   run with the star check on (default) or off (``--no-star-check``) to compare.

Scenes come from the synthetic universe (``napari_galam.simulate.imaging.render_cutout``):
an SDSS-like gri cutout (0.396"/px, Moffat PSF of 1.4" FWHM) turned into the 8-bit RGB
picture the paper's pipeline reads, with exact truth (the target's isophotal ellipse and
whether its footprint touches a neighbour's).

Usage: ``python benchmarks/bench_qa.py [--per-cell 12] [--isolated 80] [--seed 0]
[--stars 50] [--no-star-check]``.
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
from napari_galam.pipeline.qa import QAParameters, assess_galaxy  # noqa: E402

SEED = QAParameters(companion_check=False)  # the paper's procedure, exactly
WITH_COMPANIONS = QAParameters(companion_check=True)  # the extended check, its defaults

PSF_FWHM_ARCSEC = 1.4
SEPARATIONS_FWHM = (1.5, 2.0, 3.0, 4.0, 6.0)
FLUX_RATIOS = (0.1, 0.3, 1.0)


def make_scenes(seed: int, n_isolated: int, per_cell: int, n_spirals: int = 0):
    """Render isolated galaxies, target + one neighbour on a separation x flux grid, and
    isolated disc galaxies with spiral arms and clumps (drawn after the rest, so the
    first two sets do not depend on ``n_spirals``)."""
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.imaging import (
        SDSS_PIXEL_SCALE,
        Neighbour,
        draw_disc_structure,
        render_cutout,
    )
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
    spirals = 0
    while spirals < n_spirals:
        galaxy = draw_galaxy(rng, library=library)
        structure = draw_disc_structure(rng, galaxy)
        if structure is None:
            continue
        cutout = render_cutout(
            galaxy,
            rng=rng,
            library=library,
            psf_fwhm_arcsec=PSF_FWHM_ARCSEC,
            centre_offset_px=tuple(float(v) for v in rng.uniform(-0.5, 0.5, 2)),
            target_structure=structure,
        )
        scenes.append({"kind": "spiral", "cutout": cutout, "sep": None, "flux": None})
        spirals += 1
    n_pairs = len(scenes) - n_isolated - n_spirals
    print(
        f"{len(scenes)} scenes: {n_isolated} isolated, {n_pairs} pairs, {n_spirals} isolated "
        "spirals (arms + clumps) "
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
        "assess_galaxy, seed (default)": lambda im: assess_galaxy(im, SEED),
        "assess_galaxy, seed, star check off": lambda im: assess_galaxy(
            im, dataclasses.replace(SEED, star_check=False)
        ),
        "assess_galaxy, seed, PSF given (star check by size)": lambda im: assess_galaxy(
            im, dataclasses.replace(SEED, psf_fwhm=PSF_FWHM_ARCSEC / 0.396)
        ),
        "assess_galaxy, extended check": lambda im: assess_galaxy(im, WITH_COMPANIONS),
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
    ratio = per["assess_galaxy, extended check"] / per["assess_galaxy, seed (default)"]
    print_table(
        f"Throughput per 128x128 RGB cutout, one process (median over {len(sample)} "
        f"cutouts; fast is {base / fast:.1f}x the published procedure's plain photutils; the extended "
        f"check costs {ratio:.2f}x, measured side by side)",
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


def neighbour_in_model_input(scene, qa) -> bool:
    """Truth B: the neighbour's centre lies inside the region the models see.

    Truth A (``CutoutTruth.blended``) calls a pair blended when the target's noiseless
    1-sigma footprint touches the neighbour's, which also holds for neighbours whose
    faint wings meet the target's far outside its 1.5x masking ellipse. Everything
    outside that ellipse is set to black before the models see the image, and the published procedure's
    rule counts the sources inside it, so such a neighbour neither contaminates the input
    nor is what the rule is about. B keeps the pairs of A whose neighbour centre is in
    the masked region (the published procedure's ellipse; the ellipse accuracy is measured separately).
    """
    if not scene["cutout"].truth.blended or not qa.masking.ok:
        return False
    sources = scene["cutout"].truth.sources
    row, col = int(round(float(sources["y"][1]))), int(round(float(sources["x"][1])))
    ny, nx = qa.masking.mask.shape
    return bool(0 <= row < ny and 0 <= col < nx and qa.masking.mask[row, col])


def accuracy(scenes) -> None:
    seed = [assess_galaxy(scene["cutout"].rgb, SEED) for scene in scenes]
    comp = [assess_galaxy(scene["cutout"].rgb, WITH_COMPANIONS) for scene in scenes]
    truth_a = [bool(s["cutout"].truth.blended) for s in scenes]
    truth_b = [neighbour_in_model_input(s, r) for s, r in zip(scenes, seed, strict=True)]
    rows = []
    for sep in SEPARATIONS_FWHM:
        for flux in FLUX_RATIOS:
            idx = [i for i, s in enumerate(scenes) if s["sep"] == sep and s["flux"] == flux]
            truly = [i for i in idx if truth_a[i]]
            inside = [i for i in idx if truth_b[i]]
            reasons = [
                why_missed(scenes[i], seed[i]) for i in truly if seed[i].status == "accepted"
            ]

            def recall(results, members):
                if not members:
                    return "-"
                return f"{np.mean([results[i].status == 'blended' for i in members]):.2f}"

            rows.append(
                [
                    sep,
                    flux,
                    len(idx),
                    len(truly),
                    recall(seed, truly),
                    recall(comp, truly),
                    len(inside),
                    recall(seed, inside),
                    recall(comp, inside),
                    sum(seed[i].status == "blended" for i in idx if not truth_a[i]),
                    sum(seed[i].status not in ("accepted", "blended") for i in idx),
                    reasons.count("no peak"),
                    reasons.count("island < npixels"),
                    reasons.count("other"),
                ]
            )
    print_table(
        "Blend detection on pairs. Truth A: the target's 1-sigma footprint touches the "
        "neighbour's; truth B: A and the neighbour's centre inside the masked region the "
        "models see. 'seed' = the paper's procedure, '+comp' = the extended check "
        "(rotation-residual companions, ellipse centre offset, sources under 5% of the light "
        "not counted); misses are the published procedure's, by truth A",
        [
            "sep/FWHM",
            "flux ratio",
            "scenes",
            "A",
            "recall A seed",
            "recall A +comp",
            "B",
            "recall B seed",
            "recall B +comp",
            "flagged, not A (seed)",
            "no ellipse",
            "missed: no peak",
            "missed: island < 10 px",
            "missed: other",
        ],
        rows,
    )
    pairs = [i for i, s in enumerate(scenes) if s["kind"] == "pair" and s["sep"] > 2.0]
    isolated = [i for i, s in enumerate(scenes) if s["kind"] == "isolated"]
    spirals = [i for i, s in enumerate(scenes) if s["kind"] == "spiral"]
    rows = []
    # Pairs in A but not in B (footprints touch, neighbour centre outside the masked
    # region) are neither a miss nor a false flag: the third truth leaves them out.
    truth_c = [truth_b[i] if truth_b[i] or not truth_a[i] else None for i in range(len(scenes))]
    for truth_name, truth in (
        ("A (footprints touch)", truth_a),
        ("B (in model input)", truth_b),
        ("B, A-not-B left out", truth_c),
    ):
        for name, results in (("seed", seed), ("extended check", comp)):
            flagged = [results[i].status == "blended" for i in range(len(scenes))]
            tp = sum(flagged[i] and truth[i] is True for i in pairs)
            fn = sum(truth[i] is True and not flagged[i] for i in pairs)
            fp_pairs = sum(flagged[i] and truth[i] is False for i in pairs)
            fp_iso = sum(flagged[i] for i in isolated)
            fp_spiral = sum(flagged[i] for i in spirals)

            def precision(false: int, tp: int = tp) -> str:
                return f"{tp / (tp + false):.3f}" if tp + false else "-"

            rows.append(
                [
                    truth_name,
                    name,
                    f"{tp / max(1, tp + fn):.3f} ({tp}/{tp + fn})",
                    precision(fp_pairs + fp_iso),
                    f"{fp_iso}/{len(isolated)}",
                    f"{fp_spiral}/{len(spirals)}" if spirals else "-",
                    precision(fp_pairs + fp_iso + fp_spiral) if spirals else "-",
                    sum(results[i].status not in ("accepted", "blended") for i in isolated),
                ]
            )
    print_table(
        "Blend flag summary (pairs with sep > 2 FWHM and flux ratio >= 0.1; the isolated "
        "galaxies count as negatives; the last precision also counts the isolated spirals; "
        "the third truth leaves out the pairs that A calls blended and B does not)",
        [
            "truth",
            "method",
            "recall",
            "precision",
            "isolated flagged",
            "spirals flagged",
            "precision with spirals",
            "isolated no ellipse",
        ],
        rows,
    )
    # Ellipses of isolated, elongated galaxies.
    ratios, centre_err, pa_err, shape_err = [], [], [], []
    for i in isolated:
        truth = scenes[i]["cutout"].truth.ellipse
        qa = seed[i]
        if truth.semi_minor / truth.semi_major >= 0.8 or qa.masking.target is None:
            continue
        target = qa.masking.target
        ratios.append(truth.semi_minor / truth.semi_major)
        centre_err.append(float(np.hypot(target.x - truth.x, target.y - truth.y)))
        pa_err.append(float(abs((target.angle_deg - truth.theta_deg + 90.0) % 180.0 - 90.0)))
        shape = qa.shape.angle_deg if qa.shape is not None else target.angle_deg + 90.0
        shape_err.append(float(abs((shape - truth.theta_deg + 90.0) % 180.0 - 90.0)))
    ratios, centre_err = np.array(ratios), np.array(centre_err)
    pa_err, shape_err = np.array(pa_err), np.array(shape_err)
    rows = []
    for low, high in ((0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.0, 0.8)):
        sel = (ratios >= low) & (ratios < high)
        if not sel.any():
            continue
        c, p, q = centre_err[sel], pa_err[sel], shape_err[sel]
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
                f"{np.median(q):.2f}",
                f"{np.percentile(q, 90):.2f}",
                f"{np.mean(q <= 5.0):.2f}",
            ]
        )
    if rows:
        print_table(
            "Ellipse of isolated galaxies with b/a < 0.8 (truth: second moments of the "
            "target's own 1-sigma footprint), by true b/a. 'contour' = the published procedure's masking "
            "ellipse; 'moments' = GalaxyQA.shape, light-weighted second moments of the "
            "target's segment inside the mask",
            [
                "b/a",
                "galaxies",
                "centre err median px",
                "90th pct px",
                "within 1 px",
                "contour PA err median deg",
                "90th pct deg",
                "within 5 deg",
                "moments PA err median deg",
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
    comp_counts = {"blended": 0, "tp": 0, "fp": 0}
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
        picture = jpeg_roundtrip(cutout.rgb, quality=90)
        qa = assess_galaxy(picture, SEED)
        counts[qa.status] = counts.get(qa.status, 0) + 1
        if qa.status in ("accepted", "blended"):
            flagged, truly = qa.status == "blended", cutout.truth.blended
            tp += flagged and truly
            fp += flagged and not truly
            fn += truly and not flagged
            tn += not flagged and not truly
            with_comp = assess_galaxy(picture, WITH_COMPANIONS).status == "blended"
            comp_counts["blended"] += with_comp
            comp_counts["tp"] += with_comp and truly
            comp_counts["fp"] += with_comp and not truly
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
            f"{100 * comp_counts['blended'] / n:.1f}%",
            f"{comp_counts['tp'] / max(1, tp + fn):.2f}",
            f"{comp_counts['tp'] / max(1, comp_counts['tp'] + comp_counts['fp']):.2f}",
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
            "blended +comp",
            "recall +comp",
            "precision +comp",
        ],
        rows,
    )


def star_rejection(seed: int, n: int) -> None:
    """Stars rejected by brightness class and galaxies lost to the star check.

    ``n`` stars per class (:data:`napari_galam.simulate.stars.STAR_BRIGHTNESS_CLASSES`)
    and ``3 n`` isolated galaxies, ``n`` compact ones (R_e under 0.8 PSF FWHM) and ``n``
    at z > 0.2, each in its own seeing (0.9-2.0"), given to the QA as ``psf_fwhm`` (an
    SDSS field's seeing is known) and, in the last column, left to the estimate (a lone
    cutout has no stellar locus, so the QA then rejects on spikes and saturated cores
    only, see :func:`napari_galam.pipeline.qa.image_psf`).
    """
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.imaging import SDSS_PIXEL_SCALE, render_cutout
    from napari_galam.simulate.populations import default_library
    from napari_galam.simulate.stars import STAR_BRIGHTNESS_CLASSES, draw_star, render_star_cutout

    def verdicts(image, seeing_arcsec):
        given = QAParameters(psf_fwhm=seeing_arcsec / SDSS_PIXEL_SCALE)
        return assess_galaxy(image, given).status, assess_galaxy(image, QAParameters()).status

    rng = np.random.default_rng(100 + seed)
    rows = []
    for name, mags in STAR_BRIGHTNESS_CLASSES.items():
        found = np.zeros(2)
        for _ in range(n):
            star = draw_star(rng, mags)
            cutout = render_star_cutout(star, rng=rng)
            found += [s == "star" for s in verdicts(cutout.rgb, star.psf_fwhm_arcsec)]
        rows.append([f"star {name}", n, f"{found[0] / n:.1%}", f"{found[1] / n:.1%}"])
    library = default_library()
    grng = np.random.default_rng(200 + seed)
    wanted = {"isolated galaxies": 3 * n, "compact galaxies": n, "galaxies at z > 0.2": n}
    seen = dict.fromkeys(wanted, 0)
    lost = {key: np.zeros(2) for key in wanted}
    while any(seen[key] < wanted[key] for key in wanted):
        galaxy = draw_galaxy(grng, library=library)
        seeing = float(np.clip(grng.normal(1.4, 0.25), 0.9, 2.0))
        kinds = [
            key
            for key, member in (
                ("isolated galaxies", True),
                ("compact galaxies", galaxy.re_arcsec < 0.8 * seeing),
                ("galaxies at z > 0.2", galaxy.redshift > 0.2),
            )
            if member and seen[key] < wanted[key]
        ]
        if not kinds:
            continue
        cutout = render_cutout(galaxy, rng=grng, library=library, psf_fwhm_arcsec=seeing)
        stars = np.array([s == "star" for s in verdicts(cutout.rgb, seeing)], dtype=float)
        for key in kinds:
            seen[key] += 1
            lost[key] += stars
    for key in wanted:
        share = lost[key] / wanted[key]
        rows.append([f"lost: {key}", wanted[key], f"{share[0]:.1%}", f"{share[1]:.1%}"])
    print_table(
        f"Star check (seed {seed}): stars rejected / galaxies lost as stars",
        ["scenes", "n", "PSF given", "PSF estimated"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=12, help="pairs per grid cell")
    parser.add_argument("--isolated", type=int, default=80, help="isolated galaxies")
    parser.add_argument(
        "--spirals", type=int, default=80, help="isolated disc galaxies with arms and clumps"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stars", type=int, default=50, help="stars per brightness class")
    parser.add_argument(
        "--no-star-check", action="store_true", help="blend tables with the star check off"
    )
    parser.add_argument(
        "--population", type=int, default=200, help="paper-like simulated cutouts (0: skip)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.no_star_check:
        global SEED, WITH_COMPANIONS
        SEED = dataclasses.replace(SEED, star_check=False)
        WITH_COMPANIONS = dataclasses.replace(WITH_COMPANIONS, star_check=False)
    if args.stars > 0:
        star_rejection(args.seed, args.stars)
    start = time.perf_counter()
    scenes = make_scenes(args.seed, args.isolated, args.per_cell, args.spirals)
    print(f"rendered in {time.perf_counter() - start:.0f} s")
    images = [scene["cutout"].rgb for scene in scenes]
    throughput(images)
    agreement(images[:: max(1, len(images) // 60)])
    accuracy(scenes)
    if args.population > 0:
        population(args.seed, args.population)


if __name__ == "__main__":
    main()
