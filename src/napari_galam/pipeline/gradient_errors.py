"""What a map needs beside its values for a gradient error that covers the truth.

A radial gradient fitted on a map is wrong for three reasons, and its quoted error
(:func:`napari_galam.core.gradients.bootstrap_gradient`) needs to know each:

* neighbouring spaxels share light through the PSF, so the independent measurements are
  resolution elements about one PSF FWHM across (or the bins of a binned map), not
  spaxels: the spatial resolution in pixels, from the file's header or its survey's
  nominal value (:func:`napari_galam.io.headers.psf_fwhm_arcsec`);
* each spaxel has its own error (pPXF's bootstrap errors; per-spaxel network errors
  where a model gives them);
* the model reads some galaxies' gradients wrongly as a whole: its own gradient error,
  measured on simulated cubes it never saw and stored in its model card
  (``calibration.gradient``, ``scripts/calibrate_gradient_errors.py``). A map without
  one (pPXF, a user's own map) gets statistical errors only, and says so.

:func:`gradient_error_context` gathers these for one map; the Spaxel maps dock stores
the result on each map layer (``_layerdata.GRADIENT_ERRORS_KEY``) and the Gradients dock
reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.io.headers import psf_fwhm_arcsec

__all__ = ["GradientErrorContext", "gradient_error_context", "source_resolution_pix"]


@dataclass(frozen=True)
class GradientErrorContext:
    """Beside one map: what its gradient's error is made of.

    Attributes
    ----------
    model_sd
        The model's own gradient error, dex/R_e (0 when none is calibrated).
    model_note
        Where ``model_sd`` came from, or why there is none.
    resolution_pix
        PSF FWHM in pixels (independent elements are blocks two FWHM across), or None.
    resolution_note
        Where it came from ("header RFWHM", "nominal for CALIFA", "unknown").
    errors
        Per-spaxel 1-sigma errors of the map, or None.
    elements
        Per-spaxel labels of independent bins (a binned map), or None.
    """

    model_sd: float = 0.0
    model_note: str = "no calibrated model error"
    resolution_pix: float | None = None
    resolution_note: str = "unknown"
    errors: NDArray[np.float64] | None = None
    elements: NDArray[np.int64] | None = None

    def elements_for(self, shape: tuple[int, ...], resolution_pix: float | None = None) -> Any:
        """Labels of the independent elements of a map of ``shape``.

        Bins of several spaxels are elements of their own; every other spaxel belongs
        to a block (:func:`~napari_galam.core.gradients.resolution_elements`) for a PSF
        of ``resolution_pix`` (default: :attr:`resolution_pix`; when neither is known,
        each spaxel is its own element).
        """
        from napari_galam.core.gradients import resolution_elements

        size = resolution_pix if resolution_pix is not None else self.resolution_pix
        if size:
            blocks = resolution_elements(shape, size)
        else:
            blocks = np.arange(int(np.prod(shape[-2:]))).reshape(shape[-2:])
        if self.elements is None or self.elements.shape != blocks.shape:
            return blocks
        labels = self.elements
        counts = np.bincount(np.where(labels >= 0, labels, 0).ravel())
        alone = (labels < 0) | (counts[np.where(labels >= 0, labels, 0)] == 1)
        return np.where(alone, blocks + int(labels.max()) + 1, labels)


def source_resolution_pix(source: Any) -> tuple[float | None, str]:
    """PSF FWHM in pixels of an opened cube or narrow-band stack, and where it came from.

    Parameters
    ----------
    source
        A :class:`~napari_galam.io.cubes.SpectralCube` or
        :class:`~napari_galam.io.narrowband.NarrowBandStack` (anything with ``header``,
        ``layout`` and ``pixel_scale_arcsec``; ``primary_header`` is searched first).
    """
    headers = [getattr(source, "primary_header", None), getattr(source, "header", None)]
    layout = getattr(source, "layout", None)
    if layout not in (None, "CALIFA", "MaNGA", "MUSE", "generic"):
        layout = "J-PAS"  # the narrow-band stack layouts ("mef", "cube", "table")
    fwhm, note = psf_fwhm_arcsec(headers, layout)
    scale = getattr(source, "pixel_scale_arcsec", None)
    if fwhm is None:
        return None, note
    if not scale:
        return None, f"{note}, but the pixel scale is unknown"
    return fwhm / float(scale), f'{note}: {fwhm:g}" / {float(scale):g}" per pixel'


def gradient_error_context(
    *,
    model: str | None,
    quantity: str,
    source: Any = None,
    errors: Any = None,
    bin_id: Any = None,
) -> GradientErrorContext:
    """The context of one map of ``quantity`` (``"log_age"`` or ``"mh"``).

    Parameters
    ----------
    model
        The shipped model that made the map (its card gives the model's own gradient
        error), or None (pPXF or an unknown map: statistical errors only).
    source
        The cube or stack the map was made from (for the resolution), or None.
    errors
        Per-spaxel 1-sigma errors of the map, or None.
    bin_id
        Bin of each spaxel (negative: not binned in), for a binned map, or None.
    """
    model_sd, model_note = 0.0, "statistical only: no calibrated model error for this map"
    if model is not None:
        from napari_galam.errors import GalamError
        from napari_galam.models.registry import gradient_model_sd

        try:
            calibrated = gradient_model_sd(model)
        except GalamError as exc:
            calibrated, model_note = None, f"statistical only: {exc}"
        if calibrated is not None:
            model_sd = calibrated[quantity]
            model_note = f"{model}'s own gradient error, {model_sd:.3f} dex/R_e (model card)"
    resolution, resolution_note = (None, "unknown")
    if source is not None:
        resolution, resolution_note = source_resolution_pix(source)
    elements = None
    if bin_id is not None:
        labels = np.asarray(bin_id, dtype=np.int64)
        binned = labels[labels >= 0]
        if binned.size and np.unique(binned).size < binned.size:
            elements = labels  # some bins hold several spaxels: they are elements
    return GradientErrorContext(
        model_sd=model_sd,
        model_note=model_note,
        resolution_pix=resolution,
        resolution_note=resolution_note,
        errors=None if errors is None else np.asarray(errors, dtype=np.float64),
        elements=elements,
    )
