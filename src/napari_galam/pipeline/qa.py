"""Galaxy QA of one cutout: masking, blend detection, the 128x128 model input and a verdict.

:func:`assess_galaxy` runs the MMLforGalAM image preprocessing (Sect. 2.2.2) on one
cutout and says whether the galaxy is accepted, blended, a star (the point-source test of
:mod:`napari_galam.core.pointsource`, run after the masking ellipse), or rejected by the
masking step and why (:data:`QA_STATUSES`), with the masking and detection parameters of
:class:`QAParameters` (declared in :mod:`napari_galam.pipeline.qa_parameters`). The
batch run over a folder or catalogue of cutouts, with its table and contact sheets, is
:mod:`napari_galam.pipeline.qa_batch`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from napari_galam.core.background import smoothed_noise
from napari_galam.core.companions import Companions, find_companions
from napari_galam.core.cutout import crop_and_resize
from napari_galam.core.deblend import DeblendResult, detect_blends
from napari_galam.core.masking import Ellipse, MaskingResult, fit_target_ellipse, moment_ellipse
from napari_galam.core.pointsource import (
    SDSS_PSF_FWHM_PX,
    PointSource,
    estimate_psf_fwhm,
    measure_point_source,
    point_source_reason,
)
from napari_galam.errors import GalamInputError
from napari_galam.pipeline.qa_parameters import COMPANION_CHECK_DEFAULT, QAParameters

#: Where the PSF came from when the image has no stellar locus and none was given: the
#: star check then rejects on spikes and saturated cores only (see ``image_psf``).
PSF_SOURCE_DEFAULT = "SDSS default"

__all__ = [
    "PSF_SOURCE_DEFAULT",
    "QAParameters",
    "COMPANION_CHECK_DEFAULT",
    "GalaxyQA",
    "QA_STATUSES",
    "STATUS_COLOURS",
    "QA_COLUMNS",
    "assess_galaxy",
    "image_psf",
    "with_field_psf",
    "blend_reasons",
    "source_shares",
    "cutout_array",
]

#: Final verdicts, with what they mean.
QA_STATUSES = {
    "accepted": "one source inside the masking ellipse: usable",
    "blended": "more than one deblended source, or a companion in the rotation residual, "
    "inside the masking ellipse",
    "no_ellipse": "no fitted ellipse contains the image centre",
    "no_contour": "the threshold found no contour to fit",
    "flat": "the image has no contrast",
    "black_mask": "the masking ellipse holds only black pixels",
    "star": "the target is a point source: the PSF's size and shape, diffraction spikes, or "
    "a saturated core with a PSF's wings",
    "unreadable": "the file could not be read as an image",
}

#: Display colours of each verdict (contact sheets and the napari dock).
STATUS_COLOURS = {
    "accepted": "#2ca02c",
    "blended": "#ff7f0e",
    "no_ellipse": "#d62728",
    "no_contour": "#d62728",
    "flat": "#d62728",
    "black_mask": "#d62728",
    "star": "#e377c2",
    "unreadable": "#7f7f7f",
}

#: Columns of the QA table, in order (:meth:`GalaxyQA.row`).
QA_COLUMNS = (
    "file",
    "status",
    "x",
    "y",
    "semi_major",
    "semi_minor",
    "angle_deg",
    "axis_ratio",
    "n_sources",
    "n_segments",
    "n_saddles",
    "n_companions",
    "blended",
    "threshold",
    "n_candidates",
    "shape_angle_deg",
    "shape_axis_ratio",
    "psf_size_ratio",
    "n_saturated",
    "spike_score",
    "reason",
)


@dataclass(frozen=True)
class GalaxyQA:
    """The QA of one cutout.

    Attributes
    ----------
    status, reason
        A key of :data:`QA_STATUSES` and a sentence saying why (empty when accepted).
    masking
        The masking result (ellipses, mask, threshold).
    deblend
        The blend detection (segments, peaks, saddles); ``None`` when the image is flat.
    model_input
        The masked cutout, cropped and resized to 128x128 (``None`` without an ellipse).
    companions
        Companions found in the rotation residual (``None`` when the check is off or
        there is no target).
    shape
        Light-weighted second-moment ellipse of the target (its position angle is more
        robust than the contour ellipse's for b/a > 0.7); ``None`` without a target.
    point_source
        The target measured against the PSF (size, saturated core, spikes); ``None``
        when the star check is off or there is no target.
    """

    status: str
    reason: str
    masking: MaskingResult
    deblend: DeblendResult | None = field(repr=False)
    model_input: NDArray[Any] | None = field(repr=False)
    companions: Companions | None = field(default=None, repr=False)
    shape: Ellipse | None = None
    point_source: PointSource | None = None

    def row(self, file: str = "") -> dict[str, Any]:
        """The table row of this galaxy (see :data:`QA_COLUMNS`)."""
        return qa_row(file, self)


def qa_row(file: str, qa: GalaxyQA | None, status: str = "", reason: str = "") -> dict[str, Any]:
    """The table row (:data:`QA_COLUMNS`) of ``qa``, or of a file with no QA (``qa`` None)."""
    nan = float("nan")
    row: dict[str, Any] = dict.fromkeys(QA_COLUMNS, nan)
    row.update(file=file, status=status, reason=reason, blended=False)
    row.update(n_sources=-1, n_segments=-1, n_saddles=-1, n_candidates=0, n_companions=-1)
    row["n_saturated"] = -1
    if qa is None:
        return row
    row.update(status=qa.status, reason=qa.reason)
    masking = qa.masking
    row["threshold"] = float(masking.threshold)
    row["n_candidates"] = len(masking.candidates)
    if masking.target is not None:
        row.update(masking.target.as_dict())
        row["axis_ratio"] = masking.target.axis_ratio
    if qa.deblend is not None and qa.deblend.status != "flat":
        row["n_segments"] = qa.deblend.n_segments
        row["n_saddles"] = int(qa.deblend.saddle_level.size)
        if masking.ok:
            row["n_sources"] = qa.deblend.n_sources
            row["blended"] = qa.status == "blended"
    if qa.companions is not None:
        row["n_companions"] = qa.companions.n_companions
    if qa.shape is not None:
        row["shape_angle_deg"] = qa.shape.angle_deg
        row["shape_axis_ratio"] = qa.shape.axis_ratio
    if qa.point_source is not None:
        row["psf_size_ratio"] = qa.point_source.size_ratio
        row["n_saturated"] = qa.point_source.n_saturated
        row["spike_score"] = qa.point_source.spikes
    return {key: _plain(value) for key, value in row.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _detect(
    image: NDArray[Any], masking: MaskingResult, params: QAParameters, deblend_all: bool
) -> DeblendResult:
    """Detect and deblend the sources, counting those inside the masking ellipse."""
    return detect_blends(
        image,
        target_mask=masking.mask if masking.ok else None,
        box_size=params.box_size,
        nsigma=params.nsigma,
        kernel_fwhm=params.kernel_fwhm,
        kernel_size=params.kernel_size,
        n_pixels=params.n_pixels,
        n_levels=params.n_levels,
        contrast=params.contrast,
        method=params.method,
        deblend_all=deblend_all or not masking.ok,
    )


def _residual_companions(
    masking: MaskingResult, deblend: DeblendResult, params: QAParameters
) -> Companions:
    """Companions of the target in its 180-degree rotation residual."""
    target = masking.target
    return find_companions(
        deblend.smoothed,
        smoothed_noise(
            deblend.threshold / params.nsigma,
            kernel_fwhm=params.kernel_fwhm,
            kernel_size=params.kernel_size,
        ),
        masking.mask,
        (target.y, target.x),
        nsigma=params.companion_nsigma,
        n_pixels=params.companion_min_pixels,
        min_separation=params.companion_min_separation,
        min_fraction=params.companion_min_fraction,
        max_fraction=params.companion_max_fraction,
        structure_noise=True,
    )


def image_psf(
    image: NDArray[Any], params: QAParameters, exclude: NDArray[np.bool_] | None = None
) -> tuple[float, str]:
    """The PSF FWHM (pixels) the star check uses on ``image``, and where it came from.

    ``params.psf_fwhm`` when given; otherwise the image's stellar locus
    (:func:`napari_galam.core.pointsource.estimate_psf_fwhm`, leaving out ``exclude``,
    the target); otherwise SDSS's median seeing (a lone SDSS cutout has no other star),
    with the source :data:`PSF_SOURCE_DEFAULT`: the star check then does not judge by
    size (a compact galaxy in good seeing is a star's size in median seeing).
    """
    if params.psf_fwhm is not None:
        return float(params.psf_fwhm), "given"
    estimate = estimate_psf_fwhm(image, exclude)
    if estimate is None:
        return SDSS_PSF_FWHM_PX, PSF_SOURCE_DEFAULT
    fwhm, n_sources = estimate
    return fwhm, f"from {n_sources} compact sources"


def with_field_psf(field_image: NDArray[Any], params: QAParameters | None = None) -> QAParameters:
    """``params`` with the PSF of a whole field filled in when it is to be estimated.

    Cutouts of a field (a click, "predict all") hold few other sources; the field's
    stellar locus (:func:`image_psf` on all of it) is estimated once instead. Unchanged
    when the star check is off, the PSF is given, or the field has no stellar locus.
    """
    params = params if params is not None else QAParameters()
    if not params.star_check or params.psf_fwhm is not None:
        return params
    estimate = estimate_psf_fwhm(field_image)
    return params if estimate is None else replace(params, psf_fwhm=round(estimate[0], 2))


def _point_source(
    image: NDArray[Any], masking: MaskingResult, deblend: DeblendResult, params: QAParameters
) -> tuple[PointSource, str | None]:
    """The target measured against the PSF, and why it is a star (``None``: it is not)."""
    if deblend.status == "ok":
        region = masking.mask & np.isin(deblend.segments, deblend.target_labels)
        sky = deblend.segments == 0
    else:
        region, sky = masking.mask, ~masking.mask
    target = masking.target
    fwhm, source = image_psf(image, params, masking.mask)
    measured = measure_point_source(
        image, region, deblend.smoothed, sky, (target.y, target.x), fwhm, source
    )
    reason = point_source_reason(
        measured,
        max_size_ratio=params.star_max_size,
        min_axis_ratio=params.star_min_axis_ratio,
        max_wing_slope=params.star_max_wing_slope,
        min_spikes=params.star_min_spikes,
        min_wing_beta=params.star_min_wing_beta,
        psf_known=source != PSF_SOURCE_DEFAULT,
    )
    return measured, reason


def _counted_sources_reason(
    masking: MaskingResult, deblend: DeblendResult, params: QAParameters
) -> str | None:
    """More than one deblended source inside the ellipse (with the extended check: only
    sources with at least ``min_source_share`` of the brightest one's light count)."""
    if not deblend.blended:
        return None
    n_counted = deblend.n_sources
    if params.companion_check:
        shares = source_shares(deblend, masking.mask)
        n_counted = int(np.count_nonzero(shares >= params.min_source_share))
    if n_counted > 1:
        return f"{n_counted} deblended sources inside the masking ellipse"
    return None


def _intruder_reason(
    masking: MaskingResult, deblend: DeblendResult, params: QAParameters
) -> str | None:
    """A neighbour whose own peak is outside the ellipse but whose deblended segment
    reaches ``n_pixels`` or more into it: its light enters the model input."""
    labels = deblend.segments[masking.mask]
    counts = np.bincount(labels[labels > 0])
    intruders = [
        int(label)
        for label in np.flatnonzero(counts >= params.n_pixels)
        if int(label) not in deblend.target_labels
    ]
    if not intruders:
        return None
    return (
        f"{len(intruders)} neighbour segment{'s' if len(intruders) > 1 else ''} "
        f"reaching {params.n_pixels}+ px into the masking ellipse"
    )


def _centre_offset_reason(masking: MaskingResult, max_offset: float) -> str | None:
    """The masking ellipse centred more than ``max_offset`` pixels from the cutout centre."""
    target = masking.target
    ny, nx = masking.mask.shape
    offset = math.hypot(target.x - (nx - 1) / 2.0, target.y - (ny - 1) / 2.0)
    if offset <= max_offset:
        return None
    return (
        f"the masking ellipse is centred {offset:.1f} px from the cutout centre "
        f"(more than {max_offset:g}): a merged neighbour, or a cutout not centred on the "
        "galaxy"
    )


def blend_reasons(
    masking: MaskingResult,
    deblend: DeblendResult,
    companions: Companions | None,
    params: QAParameters,
) -> list[str]:
    """Why a galaxy with a masking ellipse is blended (empty: it is not).

    In this order: too many deblended sources inside the ellipse; with the extended
    check, neighbour segments reaching into it (``intruder_check``) and an ellipse off
    the cutout centre (``max_centre_offset``); companions in the rotation residual.
    """
    reasons = [_counted_sources_reason(masking, deblend, params)]
    if params.companion_check and params.intruder_check and deblend.status == "ok":
        reasons.append(_intruder_reason(masking, deblend, params))
    if params.companion_check and params.max_centre_offset is not None:
        reasons.append(_centre_offset_reason(masking, params.max_centre_offset))
    found = companions.n_companions if companions is not None else 0
    if found:
        reasons.append(
            f"{found} companion{'s' if found > 1 else ''} without a peak of its own in the "
            "rotation residual"
        )
    return [reason for reason in reasons if reason]


def assess_galaxy(
    image: NDArray[Any],
    params: QAParameters | None = None,
    *,
    deblend_all: bool = False,
) -> GalaxyQA:
    """Mask, deblend and crop one cutout, and decide whether it is usable.

    Parameters
    ----------
    image
        ``(ny, nx)`` single band or ``(ny, nx, 3)`` RGB cutout with the galaxy at the
        centre.
    params
        Masking and detection parameters (default :class:`QAParameters`).
    deblend_all
        Deblend every segment, also those outside the target (for display); the
        verdict does not change.

    Returns
    -------
    GalaxyQA

    Raises
    ------
    GalamInputError
        When ``image`` is not an image of a usable shape.
    """
    params = params or QAParameters()
    masking = fit_target_ellipse(
        image, tolerance=params.tolerance, mask_scale=params.mask_scale, edges=params.edges
    )
    if masking.status == "flat":
        return GalaxyQA("flat", masking.reason, masking, None, None)
    deblend = _detect(image, masking, params, deblend_all)
    if not masking.ok:
        return GalaxyQA(masking.status, masking.reason, masking, deblend, None)
    point_source = None
    if params.star_check and deblend.status != "flat":
        point_source, star = _point_source(image, masking, deblend, params)
        if star is not None:
            return GalaxyQA("star", star, masking, deblend, None, point_source=point_source)
    try:
        model_input = crop_and_resize(masking.apply(image))
    except GalamInputError as exc:
        return GalaxyQA("black_mask", str(exc), masking, deblend, None)
    companions = shape = None
    if deblend.status == "ok":
        region = masking.mask & np.isin(deblend.segments, deblend.target_labels)
        shape = moment_ellipse(deblend.smoothed, region)
        if params.companion_check:
            companions = _residual_companions(masking, deblend, params)
    verdict = GalaxyQA(
        "accepted", "", masking, deblend, model_input, companions, shape, point_source
    )
    reasons = blend_reasons(masking, deblend, companions, params)
    if reasons:
        return replace(verdict, status="blended", reason="; ".join(reasons))
    return verdict


def source_shares(deblend: DeblendResult, mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Light of each target source inside ``mask`` (smoothed image, its segment), as a
    share of the brightest one's; descending, so the first is 1 (empty: no light)."""
    labels = np.asarray(deblend.target_labels, dtype=np.int64)
    if labels.size == 0:
        return np.empty(0)
    light = np.where(mask & np.isfinite(deblend.smoothed), deblend.smoothed, 0.0)
    sums = np.sort(np.asarray(ndimage.sum_labels(light, deblend.segments, index=labels)))[::-1]
    if not sums[0] > 0:
        return np.empty(0)
    return sums / sums[0]


def cutout_array(data: NDArray[Any], kind: str = "") -> NDArray[Any]:
    """Turn what a reader returned into a 2-D or ``(ny, nx, 3)`` image for QA.

    A multi-band stack ``(n_bands, ny, nx)`` becomes the NaN-mean of its bands.
    """
    array = np.asarray(data)
    if kind == "multiband" or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        if array.ndim != 3:
            raise GalamInputError(f"multi-band image of shape {array.shape}: expected 3-D.")
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(array.astype(np.float64), axis=0)
    return array
