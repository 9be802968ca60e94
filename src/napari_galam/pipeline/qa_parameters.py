"""The parameters of the galaxy QA, each written once with its label, range and help.

:class:`QAParameters` is what :func:`napari_galam.pipeline.qa.assess_galaxy` takes. Each
field is declared with :func:`napari_galam.parameters.parameter`, from which ``galam qa``
generates its options and the QA dock its form
(:func:`napari_galam.parameters.parameter_specs`). This module imports nothing heavy, so
that building the ``galam`` command line stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari_galam.parameters import parameter

__all__ = [
    "COMPANION_CHECK_DEFAULT",
    "QA_PARTITION_SIZE",
    "SDSS_PSF_FWHM_PX",
    "STAR_CHECK_DEFAULT",
    "QAParameters",
]

#: Cutouts per partition of the batch QA (:mod:`napari_galam.pipeline.qa_batch`): eight
#: contact-sheet pages of 30, a few seconds of work.
QA_PARTITION_SIZE = 240

#: SDSS median r-band seeing (1.4 arcsec) in SDSS pixels of 0.396 arcsec: the default
#: PSF FWHM of the star check (the same value as ``core.pointsource.SDSS_PSF_FWHM_PX``,
#: written here so that building the command line imports nothing heavy).
SDSS_PSF_FWHM_PX = round(1.4 / 0.396, 2)

#: Whether the star (point-source) check is on by default.
STAR_CHECK_DEFAULT = True

#: Whether the rotation-residual companion check is on by default (see QAParameters).
COMPANION_CHECK_DEFAULT = False


@dataclass(frozen=True)
class QAParameters:
    """Parameters of the masking and blend detection (defaults: the released pipeline).

    Each field carries its label, allowed range and a one-line help
    (:func:`napari_galam.parameters.parameter_specs` reads them). What some of them do:

    Attributes
    ----------
    edges
        Contours of the binary image: ``"outline"`` or ``"canny"`` (see
        :func:`napari_galam.core.masking.fit_contour_ellipses`).
    box_size
        Background box in pixels (None: 50 px per 128 px).
    method
        ``"fast"`` (exact re-implementation) or ``"photutils"`` deblending.
    companion_check
        The extended blend check (False gives the published procedure exactly). The
        target is also called blended when its 180-degree-rotation residual holds a
        companion (:func:`napari_galam.core.companions.find_companions`): a neighbour on
        the slope of the target with no peak of its own, which the published peak-based
        deblending cannot split; or when the masking ellipse is centred more than
        ``max_centre_offset`` pixels from the cutout centre (two galaxies of similar
        brightness closer than about 3 PSF FWHM merge into one peak and one ellipse
        centred between them). Deblended sources holding less than
        ``min_source_share`` of the brightest target source's light are not counted
        (spiral galaxies' clumps). Off by default: on the Hubble Deep Field it also
        flags isolated galaxies' own asymmetries (spiral arms, knots, saturated cores),
        see the QA benchmark notes.
    companion_nsigma, companion_min_pixels
        Residual threshold (in units of the larger of its pixel noise and the robust
        spread of the residual inside the mask) and the smallest companion above it
        (pixels). A low threshold with a large minimum size finds the broad, shallow
        residual of a neighbour and not the small, sharp ones of noise and clumps.
    companion_min_fraction, companion_max_fraction
        Lowest and highest non-symmetric share of the light at the companion's residual
        peak (above 1 the mirror pixel is below the background: outskirt noise).
    max_centre_offset
        With ``companion_check``: largest distance (pixels) of the masking ellipse's
        centre from the cutout centre; None skips the test (a cutout taken around a
        click is not centred on the galaxy's catalogue position).
    intruder_check
        With ``companion_check``: also call the target blended when a deblended
        neighbour whose peak lies outside the masking ellipse has a segment reaching
        ``n_pixels`` or more into it (its light enters the model input). Off by
        default: on simulated pairs it adds no recall and some false flags.
    star_check
        Reject a target that is a point source (status ``"star"``), measured against a
        PSF of ``psf_fwhm`` pixels (:mod:`napari_galam.core.pointsource`): adaptive
        moments at most ``star_max_size`` times the PSF's and rounder than
        ``star_min_axis_ratio``; or a saturated core whose wings fall at least as
        steeply as ``r^star_max_wing_slope``; or four diffraction spikes of at least
        ``star_min_spikes`` (continuous along each arm); with a known PSF also a
        saturated core whose light outside falls as a Moffat of the PSF's FWHM with
        beta at least ``star_min_wing_beta``. Size and that profile are judged only
        when the PSF is known (given, or from the image's stellar locus). The thresholds were chosen on
        simulated SDSS stars and galaxies (seeds 0-2 of ``benchmarks/bench_qa.py``) and
        the Hubble Deep Field's 60 brightest sources (its 3 spiked stars and no galaxy).
    psf_fwhm
        The image's PSF FWHM in pixels; None (default): estimated from the image's
        stellar locus (the field's, in the docks), or SDSS's median 1.4" seeing at
        0.396"/px where there is none (a lone SDSS cutout; then only spikes and
        saturated cores with steep wings mark a star).
    """

    tolerance: float = parameter(
        36.0,
        label="tolerance",
        help="isodata convergence tolerance in grey levels, 0-255",
        range=(0.5, 255.0),
    )
    mask_scale: float = parameter(
        1.5,
        label="mask scale",
        help="mask outside the target ellipse enlarged by this factor",
        range=(0.5, 5.0),
    )
    edges: str = parameter(
        "outline",
        label="contours",
        help="contours of the binary image: region outlines, or its Canny edges (the "
        "released pipeline; gaps make open arcs on noisy cutouts)",
        choices=("outline", "canny"),
    )
    nsigma: float = parameter(
        1.5,
        label="detection sigma",
        help="detection threshold in background RMS",
        range=(0.1, 100.0),
    )
    box_size: int | None = parameter(
        None,
        label="background box",
        help="background box in pixels (none: 50 px per 128 px of cutout)",
        range=(4, 4096),
        expert=True,
    )
    kernel_fwhm: float = parameter(
        3.0,
        label="kernel FWHM",
        help="FWHM of the Gaussian smoothing kernel, pixels",
        range=(0.5, 20.0),
        expert=True,
    )
    kernel_size: int = parameter(
        5,
        label="kernel size",
        help="side of the Gaussian smoothing kernel, pixels",
        range=(1, 51),
        expert=True,
    )
    n_pixels: int = parameter(
        10,
        label="pixels",
        help="minimum connected pixels of a source",
        range=(1, 10000),
    )
    n_levels: int = parameter(
        90,
        label="levels",
        help="deblending levels (photutils n_levels)",
        range=(1, 512),
    )
    contrast: float = parameter(
        1e-6,
        label="contrast",
        help="deblending contrast: minimum flux fraction of a deblended source",
        range=(0.0, 1.0),
    )
    method: str = parameter(
        "fast",
        label="deblending",
        help="deblending implementation: fast (an exact re-implementation) or photutils; "
        "results are identical",
        choices=("fast", "photutils"),
    )
    companion_check: bool = parameter(
        COMPANION_CHECK_DEFAULT,
        label="Extended blend check (rotation residual)",
        help="the extended blend check: also flag companions without a peak of their own "
        "(the target's 180-degree rotation residual) and galaxies whose ellipse sits more "
        "than 3 px off the cutout centre, and do not count deblended knots with under 5% "
        "of the light (off: the published procedure)",
    )
    companion_nsigma: float = parameter(
        1.5,
        label="companion sigma",
        help="rotation-residual threshold of the companion check",
        range=(0.5, 50.0),
    )
    companion_min_pixels: int = parameter(
        60,
        label="companion pixels",
        help="smallest companion above the rotation-residual threshold, pixels",
        range=(1, 10000),
        expert=True,
    )
    companion_min_fraction: float = parameter(
        0.2,
        label="companion min share",
        help="lowest non-symmetric share of the light at a companion's residual peak",
        range=(0.0, 1.0),
        expert=True,
    )
    companion_max_fraction: float = parameter(
        1.2,
        label="companion max share",
        help="highest non-symmetric share of the light at a companion's residual peak "
        "(above 1: outskirt noise)",
        range=(0.0, 10.0),
        expert=True,
    )
    companion_min_separation: float = parameter(
        6.0,
        label="companion min distance",
        help="smallest distance of a companion from the centre, pixels",
        range=(0.0, 1000.0),
        expert=True,
    )
    min_source_share: float = parameter(
        0.05,
        label="min source share",
        help="with the extended check: smallest light of a deblended source inside the "
        "mask, as a share of the brightest one's, for it to count",
        range=(0.0, 1.0),
        expert=True,
    )
    max_centre_offset: float | None = parameter(
        3.0,
        label="max centre offset",
        help="with the extended check: largest distance of the masking ellipse's centre "
        "from the cutout centre, pixels (none: no such test)",
        range=(0.0, 1000.0),
        expert=True,
    )
    intruder_check: bool = parameter(
        False,
        label="intruder check",
        help="with the extended check: also flag a neighbour segment reaching n_pixels or "
        "more into the masking ellipse",
        expert=True,
    )
    star_check: bool = parameter(
        STAR_CHECK_DEFAULT,
        label="Reject stars (point sources)",
        help="reject a target whose image is the PSF's (size and roundness), or that has "
        "diffraction spikes or a saturated core with a PSF's wings",
    )
    psf_fwhm: float | None = parameter(
        None,
        label="PSF FWHM (px)",
        help="the image's seeing FWHM in pixels; none: estimated from the image's compact "
        'sources, else SDSS\'s 1.4" at 0.396"/px = 3.54 px',
        range=(0.5, 50.0),
    )
    star_max_size: float = parameter(
        1.25,
        label="star max size",
        help="largest adaptive-moment size of a star, in units of the PSF's",
        range=(0.5, 5.0),
        expert=True,
    )
    star_min_axis_ratio: float = parameter(
        0.6,
        label="star min axis ratio",
        help="smallest axis ratio (b/a) of a star's moments",
        range=(0.0, 1.0),
        expert=True,
    )
    star_max_wing_slope: float = parameter(
        -0.6,
        label="star wing slope",
        help="a saturated core is a star's when the picture's grey level falls at least "
        "as steeply as r^slope just outside the plateau",
        range=(-10.0, 0.0),
        expert=True,
    )
    star_min_wing_beta: float = parameter(
        2.35,
        label="star wing beta",
        help="with a known PSF, a saturated core is a star's when the light outside it "
        "falls as a Moffat of the PSF's FWHM with at least this beta (stars: 2.5-4.7)",
        range=(0.5, 20.0),
        expert=True,
    )
    star_min_spikes: float = parameter(
        0.7,
        label="star spike contrast",
        help="smallest contrast of diffraction spikes (3 of 4 arms) that marks a star",
        range=(0.1, 100.0),
        expert=True,
    )
