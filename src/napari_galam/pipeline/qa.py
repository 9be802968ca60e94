"""Galaxy QA: masking, blend detection and the 128x128 model input, per galaxy and in batch.

:func:`assess_galaxy` runs the MMLforGalAM image preprocessing (Sect. 2.2.2) on one
cutout and says whether the galaxy is accepted, blended, or rejected by the masking step
and why. :func:`iter_qa` / :func:`run_qa` do that for a folder or a catalogue of cutouts
and write, into an output folder,

- ``qa_partial.jsonl``: one line per finished file, appended and flushed as the run goes,
  so an interrupted run resumes where it stopped (files already in it are skipped);
- ``qa.ecsv`` and ``qa.csv``: the table (file, status, ellipse, number of sources,
  blended, reason), written atomically at the end;
- ``contact_sheets/page_NNNN.png``: pages of galaxies with the target ellipse coloured
  by status, the other fitted ellipses thinner, and the saddle points and peaks marked,
  so a person can page through thousands of cutouts.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from napari_galam.core.cutout import crop_and_resize, resize_nearest
from napari_galam.core.deblend import (
    Companions,
    DeblendResult,
    detect_blends,
    find_companions,
    smoothed_noise,
)
from napari_galam.core.masking import Ellipse, MaskingResult, fit_target_ellipse, moment_ellipse
from napari_galam.errors import GalamInputError

__all__ = [
    "QAParameters",
    "COMPANION_CHECK_DEFAULT",
    "GalaxyQA",
    "QAProgress",
    "QA_STATUSES",
    "STATUS_COLOURS",
    "QA_COLUMNS",
    "IMAGE_SUFFIXES",
    "HDF5_SUFFIXES",
    "assess_galaxy",
    "source_shares",
    "cutout_array",
    "list_qa_inputs",
    "iter_qa",
    "run_qa",
    "draw_galaxy_qa",
    "write_contact_sheet",
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
    "unreadable": "#7f7f7f",
}

#: Columns of the QA table, in order.
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
    "reason",
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")

_PARTIAL_NAME = "qa_partial.jsonl"
_SHEET_COLUMNS, _SHEET_ROWS = 6, 5


#: Whether the rotation-residual companion check is on by default (see QAParameters).
COMPANION_CHECK_DEFAULT = False


@dataclass(frozen=True)
class QAParameters:
    """Parameters of the masking and blend detection (defaults: the released pipeline).

    Attributes
    ----------
    tolerance
        Isodata convergence tolerance, grey levels on a 0-255 scale.
    mask_scale
        Factor enlarging the target ellipse for the mask.
    edges
        Contours of the binary image: ``"outline"`` or ``"canny"`` (see
        :func:`napari_galam.core.masking.fit_contour_ellipses`).
    nsigma
        Detection threshold in background RMS.
    box_size
        Background box in pixels (None: 50 px per 128 px).
    kernel_fwhm, kernel_size
        Gaussian smoothing kernel.
    n_pixels, n_levels, contrast
        Minimum source size, deblending levels and contrast.
    method
        ``"fast"`` (exact re-implementation) or ``"photutils"`` deblending.
    companion_check
        The extended blend check (False gives the seed's procedure exactly). The target
        is also called blended when its 180-degree-rotation residual holds a companion
        (:func:`napari_galam.core.deblend.find_companions`): a neighbour on the slope of
        the target with no peak of its own, which the seed's peak-based deblending
        cannot split; or when the masking ellipse is centred more than
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
    companion_min_separation
        Smallest distance of a companion from the centre (pixels).
    min_source_share
        With ``companion_check``: smallest light of a deblended source inside the
        mask, as a share of the brightest one's (smoothed image), for it to count.
    max_centre_offset
        With ``companion_check``: largest distance (pixels) of the masking ellipse's
        centre from the cutout centre; None skips the test (a cutout taken around a
        click is not centred on the galaxy's catalogue position).
    intruder_check
        With ``companion_check``: also call the target blended when a deblended
        neighbour whose peak lies outside the masking ellipse has a segment reaching
        ``n_pixels`` or more into it (its light enters the model input). Off by
        default: on simulated pairs it adds no recall and some false flags.
    """

    tolerance: float = 36.0
    mask_scale: float = 1.5
    edges: str = "outline"
    nsigma: float = 1.5
    box_size: int | None = None
    kernel_fwhm: float = 3.0
    kernel_size: int = 5
    n_pixels: int = 10
    n_levels: int = 90
    contrast: float = 1e-6
    method: str = "fast"
    companion_check: bool = COMPANION_CHECK_DEFAULT
    companion_nsigma: float = 1.5
    companion_min_pixels: int = 60
    companion_min_fraction: float = 0.2
    companion_max_fraction: float = 1.2
    companion_min_separation: float = 6.0
    min_source_share: float = 0.05
    max_centre_offset: float | None = 3.0
    intruder_check: bool = False


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
    """

    status: str
    reason: str
    masking: MaskingResult
    deblend: DeblendResult | None = field(repr=False)
    model_input: NDArray[Any] | None = field(repr=False)
    companions: Companions | None = field(default=None, repr=False)
    shape: Ellipse | None = None

    def row(self, file: str = "") -> dict[str, Any]:
        """The table row of this galaxy (see :data:`QA_COLUMNS`)."""
        return _row(file, self)


@dataclass(frozen=True)
class QAProgress:
    """One step of :func:`iter_qa`: ``done`` of ``total`` files, and the row just made.

    ``skipped`` is True for rows that an earlier run had already written.
    """

    done: int
    total: int
    row: dict[str, Any]
    skipped: bool = False


def _row(file: str, qa: GalaxyQA | None, status: str = "", reason: str = "") -> dict[str, Any]:
    nan = float("nan")
    row: dict[str, Any] = dict.fromkeys(QA_COLUMNS, nan)
    row.update(file=file, status=status, reason=reason, blended=False)
    row.update(n_sources=-1, n_segments=-1, n_saddles=-1, n_candidates=0, n_companions=-1)
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
    return {key: _plain(value) for key, value in row.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


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
    deblend = detect_blends(
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
    if not masking.ok:
        return GalaxyQA(masking.status, masking.reason, masking, deblend, None)
    try:
        model_input = crop_and_resize(masking.apply(image))
    except GalamInputError as exc:
        return GalaxyQA("black_mask", str(exc), masking, deblend, None)
    target = masking.target
    companions = shape = None
    if deblend.status == "ok":
        region = masking.mask & np.isin(deblend.segments, deblend.target_labels)
        shape = moment_ellipse(deblend.smoothed, region)
        if params.companion_check:
            companions = find_companions(
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
    found = companions.n_companions if companions is not None else 0
    verdict = GalaxyQA("accepted", "", masking, deblend, model_input, companions, shape)
    reasons = []
    if deblend.blended:
        n_counted = deblend.n_sources
        if params.companion_check:
            shares = source_shares(deblend, masking.mask)
            n_counted = int(np.count_nonzero(shares >= params.min_source_share))
        if n_counted > 1:
            reasons.append(f"{n_counted} deblended sources inside the masking ellipse")
    if params.companion_check and params.intruder_check and deblend.status == "ok":
        # A neighbour whose own peak is outside the ellipse but whose deblended segment
        # reaches into it puts its light into the model input.
        labels = deblend.segments[masking.mask]
        counts = np.bincount(labels[labels > 0])
        intruders = [
            int(label)
            for label in np.flatnonzero(counts >= params.n_pixels)
            if int(label) not in deblend.target_labels
        ]
        if intruders:
            reasons.append(
                f"{len(intruders)} neighbour segment{'s' if len(intruders) > 1 else ''} "
                f"reaching {params.n_pixels}+ px into the masking ellipse"
            )
    if params.companion_check and params.max_centre_offset is not None:
        ny, nx = masking.mask.shape
        offset = math.hypot(target.x - (nx - 1) / 2.0, target.y - (ny - 1) / 2.0)
        if offset > params.max_centre_offset:
            reasons.append(
                f"the masking ellipse is centred {offset:.1f} px from the cutout centre "
                f"(more than {params.max_centre_offset:g}): a merged neighbour, or a "
                "cutout not centred on the galaxy"
            )
    if found:
        reasons.append(
            f"{found} companion{'s' if found > 1 else ''} without a peak of its own in the "
            "rotation residual"
        )
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
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanmean(array.astype(np.float64), axis=0)
    return array


HDF5_SUFFIXES = (".h5", ".hdf5")
#: Dataset holding the cutouts in a ``galam simulate --kind cutouts`` file.
HDF5_IMAGES = "images/rgb"


def _split_hdf5_item(name: str) -> tuple[Path, int] | None:
    """``"file.h5#12"`` -> (file.h5, 12); None for plain file names."""
    base, sep, index = name.rpartition("#")
    if sep and base.lower().endswith(HDF5_SUFFIXES) and index.isdigit():
        return Path(base), int(index)
    return None


def _read_image(path: Path) -> NDArray[Any]:
    item = _split_hdf5_item(str(path))
    if item is not None:
        import h5py

        source, index = item
        try:
            with h5py.File(source, "r") as handle:
                images = handle[HDF5_IMAGES]
                if index >= images.shape[0]:
                    raise GalamInputError(
                        f"{source}: no cutout {index} ({images.shape[0]} in {HDF5_IMAGES})."
                    )
                return np.asarray(images[index])
        except (OSError, KeyError) as exc:
            raise GalamInputError(f"{source}: cannot read {HDF5_IMAGES} ({exc}).") from exc
    from napari_galam.io.images import read_cutout

    cutout = read_cutout(path)
    return cutout_array(cutout.data, cutout.kind)


def _list_hdf5(source: Path) -> list[Path]:
    import h5py

    try:
        with h5py.File(source, "r") as handle:
            if HDF5_IMAGES not in handle:
                raise GalamInputError(
                    f"{source}: no {HDF5_IMAGES} dataset; expected a file written by "
                    "`galam simulate --kind cutouts`."
                )
            n_images = int(handle[HDF5_IMAGES].shape[0])
    except OSError as exc:
        raise GalamInputError(f"{source}: not a readable HDF5 file ({exc}).") from exc
    if n_images == 0:
        raise GalamInputError(f"{source}: {HDF5_IMAGES} holds no cutouts.")
    return [Path(f"{source}#{index}") for index in range(n_images)]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def list_qa_inputs(source: str | os.PathLike) -> list[Path]:
    """The cutout files of a folder (sorted), those listed in a catalogue, or a dataset.

    A catalogue (``.csv``/``.ecsv``) needs a column ``file``, ``path``, ``filename`` or
    ``image``; relative paths are taken relative to the catalogue's folder. An HDF5 file
    written by ``galam simulate --kind cutouts`` gives one item per cutout of its
    ``images/rgb`` dataset, named ``file.h5#index``.

    Raises
    ------
    GalamInputError
        When ``source`` does not exist, holds no images, or the catalogue has no file
        column.
    """
    source = Path(source)
    if not source.exists():
        raise GalamInputError(f"{source}: no such folder or catalogue.")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if _is_image(p))
        if not files:
            raise GalamInputError(
                f"{source}: the folder holds no cutouts ({', '.join(IMAGE_SUFFIXES)})."
            )
        return files
    if source.suffix.lower() in HDF5_SUFFIXES:
        return _list_hdf5(source)
    if source.suffix.lower() not in (".csv", ".ecsv"):
        raise GalamInputError(
            f"{source}: expected a folder of cutouts or a catalogue (.csv or .ecsv)."
        )
    from astropy.table import Table

    try:
        table = Table.read(source, format="ascii.ecsv" if source.suffix == ".ecsv" else "csv")
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise GalamInputError(f"{source}: not a readable catalogue ({exc}).") from exc
    column = next((c for c in ("file", "path", "filename", "image") if c in table.colnames), None)
    if column is None:
        raise GalamInputError(
            f"{source}: the catalogue needs a column 'file' (or 'path', 'filename', "
            f"'image'); it has {', '.join(table.colnames) or 'none'}."
        )
    files = []
    for value in table[column]:
        path = Path(str(value))
        files.append(path if path.is_absolute() else source.parent / path)
    if not files:
        raise GalamInputError(f"{source}: the catalogue lists no files.")
    return files


def _assess_file(args: tuple[str, QAParameters]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Worker: QA one file; returns its row and a small drawing record for sheets."""
    path, params = args
    try:
        image = _read_image(Path(path))
        qa = assess_galaxy(image, params)
    except GalamInputError as exc:
        return _row(path, None, "unreadable", str(exc)), None
    return qa.row(path), _sheet_record(image, qa)


def _display_image(image: NDArray[Any]) -> NDArray[np.uint8]:
    """An 8-bit view of a cutout for contact sheets: 8-bit pictures (JPEG/PNG, already
    stretched) as they are, other data asinh-stretched between percentiles."""
    if np.asarray(image).dtype == np.uint8:
        return np.asarray(image)
    data = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape[:2], dtype=np.uint8)
    lo, hi = np.percentile(data[finite], [1.0, 99.7])
    if not hi > lo:
        hi = lo + 1.0
    scaled = np.clip(np.where(finite, (data - lo) / (hi - lo), 0.0), 0.0, 1.0)
    stretched = np.arcsinh(10.0 * scaled) / np.arcsinh(10.0)
    return np.round(stretched * 255).astype(np.uint8)


def _sheet_record(image: NDArray[Any], qa: GalaxyQA) -> dict[str, Any]:
    """What a contact-sheet tile needs, at most 128 px a side."""
    ny, nx = np.shape(image)[:2]
    factor = min(1.0, 128.0 / max(ny, nx))
    display = _display_image(image)
    if factor < 1.0:
        display = resize_nearest(display, 128)
    record: dict[str, Any] = {
        "image": display,
        "scale": (display.shape[0] / ny, display.shape[1] / nx),
        "status": qa.status,
        "target": qa.masking.target,
        "candidates": qa.masking.candidates,
        "saddles": np.empty((0, 2)),
        "peaks": np.empty((0, 2)),
    }
    if qa.deblend is not None:
        # Only the saddles that touch a source of the target matter for the verdict.
        touching = np.isin(qa.deblend.saddle_labels, qa.deblend.target_labels).any(axis=1)
        record["saddles"] = (
            qa.deblend.saddle_yx[touching] if qa.masking.ok else qa.deblend.saddle_yx
        )
        keep = np.isin(qa.deblend.peak_label, qa.deblend.target_labels)
        record["peaks"] = qa.deblend.peak_yx[keep] if qa.masking.ok else qa.deblend.peak_yx
    if qa.companions is not None and qa.companions.n_companions:
        record["companions"] = qa.companions.yx
    return record


def draw_galaxy_qa(ax: Any, record: dict[str, Any], title: str = "") -> None:
    """Draw one galaxy's QA on a matplotlib ``Axes``.

    ``record`` holds ``image`` (display array), ``scale`` (row, col factors from the
    cutout to the display), ``status``, ``target`` and ``candidates`` (ellipses), and
    ``saddles`` / ``peaks`` (and optionally ``companions``, drawn as gold rings) as
    ``(n, 2)`` row/col arrays in cutout pixels.
    """
    from matplotlib.patches import Ellipse as EllipsePatch

    image = record["image"]
    sy, sx = record["scale"]
    colour = STATUS_COLOURS.get(record["status"], "#d62728")
    ax.imshow(
        image, cmap="gray" if image.ndim == 2 else None, origin="upper", interpolation="nearest"
    )
    for ellipse in record["candidates"]:
        if ellipse == record["target"]:
            continue
        ax.add_patch(
            EllipsePatch(
                ((ellipse.x + 0.5) * sx - 0.5, (ellipse.y + 0.5) * sy - 0.5),
                2 * ellipse.semi_major * sx,
                2 * ellipse.semi_minor * sy,
                angle=ellipse.angle_deg,
                fill=False,
                lw=0.5,
                ec="#1f77b4",
            )
        )
    target = record["target"]
    if target is not None:
        ax.add_patch(
            EllipsePatch(
                ((target.x + 0.5) * sx - 0.5, (target.y + 0.5) * sy - 0.5),
                2 * target.semi_major * sx,
                2 * target.semi_minor * sy,
                angle=target.angle_deg,
                fill=False,
                lw=1.5,
                ec=colour,
            )
        )

    def mark(yx: NDArray[Any], marker: str, **style: Any) -> None:
        if len(yx):
            ax.plot((yx[:, 1] + 0.5) * sx - 0.5, (yx[:, 0] + 0.5) * sy - 0.5, marker, **style)

    mark(record["peaks"], "+", color="#17becf", ms=5, mew=1)
    mark(record["saddles"], "x", color="#ff00ff", ms=5, mew=1.2)
    mark(
        record.get("companions", np.empty((0, 2))), "o", mfc="none", color="#ffd700", ms=7, mew=1.2
    )
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
    if title:
        ax.set_title(title, fontsize=6, color=colour)


def write_contact_sheet(
    path: str | os.PathLike,
    items: Sequence[tuple[str, dict[str, Any] | None, str]],
    *,
    columns: int = _SHEET_COLUMNS,
    rows: int = _SHEET_ROWS,
) -> Path:
    """Write one page of galaxies as a PNG (atomically).

    Parameters
    ----------
    path
        The PNG to write.
    items
        ``(label, record, status)`` per galaxy; ``record`` None draws an empty tile
        (unreadable files).
    columns, rows
        Grid of the page.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    figure = Figure(figsize=(columns * 1.6, rows * 1.75), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        if index >= len(items):
            ax.set_axis_off()
            continue
        label, record, status = items[index]
        title = f"{label[:22]}\n{status}"
        if record is None:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=6, color=STATUS_COLOURS.get(status, "#7f7f7f"))
            ax.text(
                0.5, 0.5, "unreadable", ha="center", va="center", fontsize=7, transform=ax.transAxes
            )
            continue
        draw_galaxy_qa(ax, record, title)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_partial(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that file is redone
            if isinstance(row, dict) and "file" in row:
                done[str(row["file"])] = row
    return done


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_table(rows: list[dict[str, Any]], out_dir: Path, params: QAParameters):
    from astropy.table import Table

    columns = {}
    for name in QA_COLUMNS:
        values = [row.get(name) for row in rows]
        if name in ("file", "status", "reason"):
            columns[name] = np.array([str(v or "") for v in values], dtype=str)
        elif name == "blended":
            columns[name] = np.array([bool(v) for v in values], dtype=bool)
        elif name.startswith("n_"):
            columns[name] = np.array([int(v) if v is not None else -1 for v in values])
        else:
            columns[name] = np.array([float("nan") if v is None else float(v) for v in values])
    table = Table(columns, names=list(QA_COLUMNS))
    table.meta["description"] = "napari-galam galaxy QA (MMLforGalAM Sect. 2.2.2)"
    table.meta["parameters"] = asdict(params)
    table.meta["statuses"] = dict(QA_STATUSES)
    for name, fmt in (
        ("x", ".3f"),
        ("y", ".3f"),
        ("semi_major", ".3f"),
        ("semi_minor", ".3f"),
        ("angle_deg", ".2f"),
        ("axis_ratio", ".4f"),
        ("threshold", ".2f"),
        ("shape_angle_deg", ".2f"),
        ("shape_axis_ratio", ".4f"),
    ):
        table[name].format = fmt
    for suffix, fmt in ((".ecsv", "ascii.ecsv"), (".csv", "csv")):
        final = out_dir / f"qa{suffix}"
        fd, tmp = tempfile.mkstemp(prefix=".tmp_qa", suffix=suffix, dir=out_dir)
        os.close(fd)
        try:
            table.write(tmp, format=fmt, overwrite=True)
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return table


def _page_path(out_dir: Path, page: int) -> Path:
    return out_dir / "contact_sheets" / f"page_{page + 1:04d}.png"


def iter_qa(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    params: QAParameters | None = None,
    *,
    contact_sheets: bool = True,
    workers: int = 1,
    per_page: int = _SHEET_COLUMNS * _SHEET_ROWS,
) -> Iterator[QAProgress]:
    """QA every cutout of a folder, catalogue or list, yielding progress file by file.

    Rows go to ``out_dir/qa_partial.jsonl`` as they are made; a file already listed
    there is skipped, so rerunning after an interruption resumes. At the end the table
    is written as ``qa.ecsv`` and ``qa.csv`` and the contact-sheet pages that are not
    yet on disk are drawn.

    Parameters
    ----------
    inputs
        A folder of cutouts, a catalogue (``.csv``/``.ecsv`` with a ``file`` column) or
        a list of paths.
    out_dir
        Output folder (created).
    params
        Masking/detection parameters.
    contact_sheets
        Draw the PNG pages.
    workers
        Processes to use (1: in this process).
    per_page
        Galaxies per contact-sheet page.

    Yields
    ------
    QAProgress
    """
    params = params or QAParameters()
    if isinstance(inputs, (str, os.PathLike)):
        files = [str(p) for p in list_qa_inputs(inputs)]
    else:
        files = [str(p) for p in inputs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial_path = out_dir / _PARTIAL_NAME
    done = _read_partial(partial_path)
    total = len(files)
    records: dict[str, dict[str, Any] | None] = {}
    n_pages = math.ceil(total / per_page) if per_page > 0 else 0
    pending_pages = {
        page for page in range(n_pages) if contact_sheets and not _page_path(out_dir, page).exists()
    }
    finished = 0
    for name in files:
        if name in done:
            finished += 1
            yield QAProgress(finished, total, done[name], skipped=True)
    todo = [name for name in dict.fromkeys(files) if name not in done]

    def results() -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        jobs = ((name, params) for name in todo)
        if workers > 1 and len(todo) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers) as pool:
                yield from pool.map(_assess_file, jobs, chunksize=8)
        else:
            yield from map(_assess_file, jobs)

    position = {name: index for index, name in reversed(list(enumerate(files)))}

    def draw_page(page: int) -> None:
        names = files[page * per_page : (page + 1) * per_page]
        items = []
        for name in names:
            if name not in records:  # done by an earlier run: assess it again to draw it
                _, records[name] = _assess_file((name, params))
            items.append((Path(name).name, records[name], str(done[name]["status"])))
        write_contact_sheet(_page_path(out_dir, page), items)
        pending_pages.discard(page)
        for name in names:
            records.pop(name, None)

    with open(partial_path, "a", encoding="utf-8") as partial:
        for row, record in results():
            partial.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")
            partial.flush()
            done[row["file"]] = row
            page = position[row["file"]] // per_page
            if page in pending_pages:
                records[row["file"]] = record
                if all(n in done for n in files[page * per_page : (page + 1) * per_page]):
                    draw_page(page)
            finished += 1
            yield QAProgress(finished, total, row)
        os.fsync(partial.fileno())

    _write_table([done[name] for name in files], out_dir, params)
    for page in sorted(pending_pages):
        draw_page(page)


def run_qa(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    params: QAParameters | None = None,
    *,
    contact_sheets: bool = True,
    workers: int = 1,
):
    """Run :func:`iter_qa` to the end and return the QA table (astropy ``Table``)."""
    from astropy.table import Table

    for _ in iter_qa(inputs, out_dir, params, contact_sheets=contact_sheets, workers=workers):
        pass
    return Table.read(Path(out_dir) / "qa.ecsv", format="ascii.ecsv")
