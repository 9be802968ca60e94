"""Full-spectrum pPXF fits of spectra and of the bins of IFU cubes, as a batch job.

The one home of "fit with pPXF": :func:`fit_spectrum` fits one spectrum with
:func:`napari_galam.sps.reference_fit.fit_population` (the shipped E-MILES library:
kinematics, gas lines fitted or masked, light-weighted log age and [M/H], bootstrap
errors and regularisation as options, :class:`FitOptions`). The Spectrum dock calls it
for the shown spectrum, ``galam fit`` for each SDSS/BOSS spectrum, and
:func:`fit_partition` for the bins of a cube, so the numbers are the same everywhere.

A cube is binned to a target S/N (:mod:`napari_galam.pipeline.binning`, PowerBin) and
its bins are fitted through the partition runner (:data:`FIT_JOB`,
:func:`napari_galam.pipeline.distributed.iter_batch`: in this process or on Dask,
resumable, with progress): :func:`iter_fit_cube` returns the bins' rows and the maps
(:class:`PpxfMaps`) painted on the spaxel grid. A spectrum or bin that cannot be fitted
(too few good pixels, outside the library's range, a failed fit) is a row with its
status and reason and NaNs; the others go on.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.batch_files import unexpected_error_reason
from napari_galam.pipeline.binning import CubeBins, bin_cube, bin_spectrum, iter_cube_snr_map
from napari_galam.pipeline.distributed import PartitionJob, iter_batch, write_rows
from napari_galam.progress import ProgressGenerator, run_to_end

__all__ = [
    "FitOptions",
    "FitItem",
    "PpxfMaps",
    "CubeFit",
    "FIT_COLUMNS",
    "FIT_JOB",
    "PPXF_MAP_UNITS",
    "INSTRUMENT_FWHM",
    "cube_redshift",
    "cube_fwhm",
    "fit_spectrum",
    "fit_arrays",
    "fit_partition",
    "fit_row",
    "iter_fit_cube",
    "fit_cube",
    "maps_from_rows",
    "finished_rows",
    "write_cube_outputs",
]

#: Instrumental FWHM in observed Angstrom by cube layout (CALIFA V500 6.0 A, Sanchez
#: et al. 2012; MaNGA about 2.8 A near 5500 A; MUSE about 2.65 A). Generic cubes
#: need ``fwhm``.
INSTRUMENT_FWHM = {"CALIFA": 6.0, "MaNGA": 2.8, "MUSE": 2.65}
#: Default instrumental FWHM of SDSS/BOSS spectra (observed Angstrom), as ``galam evaluate``.
SDSS_FWHM = 2.76

FIT_COLUMNS = (
    "source", "bin_id", "n_spaxels", "status", "reason", "snr", "log_age", "log_age_err",
    "mh", "mh_err", "log_age_mass", "mh_mass", "velocity", "sigma", "gas_velocity",
    "gas_sigma", "chi2", "n_fitted", "redshift", "seconds",
)  # fmt: skip
_VALUE_COLUMNS = FIT_COLUMNS[5:]
#: Units of the maps' FITS extensions.
PPXF_MAP_UNITS = {
    "LOG_AGE": "dex", "LOG_AGE_ERR": "dex", "MH": "dex", "MH_ERR": "dex",
    "VELOCITY": "km/s", "SIGMA": "km/s", "CHI2": "", "SNR": "", "BIN_ID": "",
}  # fmt: skip


@dataclass(frozen=True)
class FitOptions:
    """How a spectrum is fitted (the same in the dock, ``galam fit`` and the cube bins).

    Attributes
    ----------
    gas
        ``"fit"``: emission lines fitted with gas templates; ``"mask"``: left out.
    regul
        pPXF regularisation (0: none).
    n_bootstrap
        Bootstrap refits for the errors (0: none).
    seed
        Seed of the bootstrap.
    mdegree
        Degree of the multiplicative polynomial.
    ftol
        pPXF's fractional chi^2 tolerance of the non-linear fit (see
        :func:`~napari_galam.sps.reference_fit.fit_population`).
    """

    gas: str = "fit"
    regul: float = 0.0
    n_bootstrap: int = 0
    seed: int = 0
    mdegree: int = 10
    ftol: float = 1e-3

    def __post_init__(self) -> None:
        if self.gas not in ("fit", "mask"):
            raise GalamInputError(f"gas: expected 'fit' or 'mask', got {self.gas!r}.")
        if not (np.isfinite(self.regul) and self.regul >= 0):
            raise GalamInputError(f"regul: expected a number >= 0, got {self.regul}.")
        if self.n_bootstrap < 0:
            raise GalamInputError(f"bootstrap: expected >= 0 refits, got {self.n_bootstrap}.")
        if not (np.isfinite(self.ftol) and 0 < self.ftol < 1):
            raise GalamInputError(f"ftol: expected a number between 0 and 1, got {self.ftol}.")

    def as_dict(self) -> dict[str, Any]:
        """The options as plain values (for manifests and tasks)."""
        return asdict(self)

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~napari_galam.sps.reference_fit.fit_population`."""
        return {
            "fit_gas": self.gas == "fit", "mask_emission_lines": True, "regul": self.regul,
            "n_bootstrap": self.n_bootstrap, "seed": self.seed, "mdegree": self.mdegree,
            "ftol": self.ftol,
        }  # fmt: skip


@dataclass(frozen=True)
class FitItem:
    """One input of :data:`FIT_JOB`: a spectrum file (``bin_id = -1``) or one bin of a cube.

    Attributes
    ----------
    source
        The file.
    bin_id
        The bin (-1: the file is a spectrum).
    spaxels
        The bin's ``(y, x)`` spaxels.
    """

    source: str
    bin_id: int = -1
    spaxels: tuple[tuple[int, int], ...] = field(default=(), compare=False)


# ----------------------------------------------------------------------------- one fit


def fit_arrays(
    wave: NDArray[Any],
    flux: NDArray[Any],
    noise: NDArray[Any] | None,
    *,
    redshift: float,
    fwhm: float | None,
    vacuum: bool,
    options: FitOptions,
) -> Any:
    """Fit one spectrum given as arrays; returns a ``PopulationFit`` (raises on bad input)."""
    from napari_galam.sps.reference_fit import fit_population

    return fit_population(
        wave, flux, noise=noise, redshift=redshift, fwhm_gal=fwhm, vacuum=vacuum,
        **options.fit_kwargs(),
    )  # fmt: skip


def fit_spectrum(
    spectrum: Any,
    options: FitOptions | None = None,
    *,
    redshift: float | None = None,
    fwhm: float | None = None,
    vacuum: bool | None = None,
) -> Any:
    """Fit an ``SdssSpectrum`` or ``Spectrum1D`` (a spaxel) with pPXF.

    Pixels with ``ivar <= 0`` are left out. SDSS spectra are in vacuum at their pipeline
    redshift with :data:`SDSS_FWHM`; a spaxel needs ``redshift`` (else 0) and ``fwhm``
    (else :data:`SDSS_FWHM`) from its cube.

    Raises
    ------
    GalamInputError
        When the spectrum cannot be fitted (too few good pixels in the library's range...).
    """
    from napari_galam.io.spectra import SdssSpectrum

    options = options or FitOptions()
    ivar = np.asarray(spectrum.ivar, dtype=np.float64)
    good = np.isfinite(ivar) & (ivar > 0)
    noise = np.full(ivar.shape, np.inf)
    noise[good] = 1.0 / np.sqrt(ivar[good])
    is_sdss = isinstance(spectrum, SdssSpectrum)
    if redshift is None:
        redshift = float(spectrum.redshift) if np.isfinite(spectrum.redshift) else 0.0
    return fit_arrays(
        np.asarray(spectrum.wave, dtype=np.float64),
        np.asarray(spectrum.flux, dtype=np.float64),
        noise,
        redshift=redshift,
        fwhm=SDSS_FWHM if fwhm is None else fwhm,
        vacuum=is_sdss if vacuum is None else vacuum,
        options=options,
    )


def fit_row(item: FitItem, fit: Any = None, *, status: str = "ok", reason: str = "",
            snr: float = np.nan, seconds: float = np.nan) -> dict[str, Any]:  # fmt: skip
    """The table row of one spectrum or bin: the fit's numbers, or NaNs with the reason."""
    row: dict[str, Any] = {name: np.nan for name in _VALUE_COLUMNS}
    row.update(source=item.source, bin_id=int(item.bin_id), status=status, reason=reason,
               n_spaxels=len(item.spaxels), snr=float(snr), seconds=float(seconds),
               n_fitted=-1)  # fmt: skip
    if fit is not None:
        for name in ("log_age", "log_age_err", "mh", "mh_err", "log_age_mass", "mh_mass",
                     "velocity", "sigma", "gas_velocity", "gas_sigma", "chi2", "redshift"):  # fmt: skip
            row[name] = float(getattr(fit, name))
        row["n_fitted"] = int(fit.n_fitted)
    return row


def _guarded_fit(item: FitItem, fit: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``fit(*args, **kwargs)`` and turn it, or its error, into the item's row."""
    started = time.perf_counter()
    try:
        result = fit(*args, **kwargs)
    except GalamError as exc:
        return fit_row(item, status="failed", reason=f"{item.source}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a failed fit is that spectrum's row
        return fit_row(item, status="failed", reason=unexpected_error_reason(item.source, exc))
    snr = float(np.nanmedian(result.galaxy[result.fitted] / _noise_of(result)))
    return fit_row(item, result, snr=snr, seconds=time.perf_counter() - started)


def _noise_of(fit: Any) -> NDArray[np.float64]:
    """The rms of the residuals over the fitted pixels (for the row's S/N)."""
    residual = (fit.galaxy - fit.best_fit)[fit.fitted]
    return np.full(residual.size, max(float(np.std(residual)), 1e-12))


# ------------------------------------------------------------------------------ cubes


def cube_redshift(cube: Any) -> float:
    """The cube's systemic redshift from its headers (CALIFA ``MED_VEL`` in km/s, or
    ``Z``/``REDSHIFT``); 0 when none is given."""
    from napari_galam.sps.reference_fit import SPEED_OF_LIGHT_KMS

    for header in (cube.primary_header, cube.header):
        if header is None:
            continue
        if "MED_VEL" in header:
            return float(header["MED_VEL"]) / SPEED_OF_LIGHT_KMS
        for key in ("Z", "REDSHIFT"):
            if key in header:
                return float(header[key])
    return 0.0


def cube_fwhm(cube: Any) -> float:
    """The instrumental FWHM of a cube's layout (:data:`INSTRUMENT_FWHM`); generic cubes
    get the templates' 2.51 Angstrom (give ``fwhm`` when it is known)."""
    return INSTRUMENT_FWHM.get(cube.layout, 2.51)


def _read_bins(cube: Any, items: Sequence[FitItem]) -> dict[int, tuple[Any, Any]]:
    """The summed spectrum and noise of each bin of ``items``, read as one block."""
    ys = [y for item in items for y, _ in item.spaxels]
    xs = [x for item in items for _, x in item.spaxels]
    rows = slice(min(ys), max(ys) + 1)
    cols = slice(min(xs), max(xs) + 1)
    flux = np.asarray(cube.data[:, rows, cols], dtype=np.float64)
    var = None if cube.variance is None else np.asarray(cube.variance[:, rows, cols], np.float64)
    bad = None if cube.mask is None else np.asarray(cube.mask[:, rows, cols], dtype=bool)
    spectra = {}
    for item in items:
        y = np.array([s[0] for s in item.spaxels]) - rows.start
        x = np.array([s[1] for s in item.spaxels]) - cols.start
        spectra[item.bin_id] = bin_spectrum(
            flux[:, y, x], None if var is None else var[:, y, x],
            None if bad is None else bad[:, y, x],
        )  # fmt: skip
    return spectra


def _fit_cube_items(
    source: str, items: Sequence[FitItem], options: FitOptions, redshift: float | None,
    fwhm: float | None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of the bins of one cube (read once)."""
    from napari_galam.io.cubes import read_cube

    try:
        cube = read_cube(source)
        spectra = _read_bins(cube, items)
    except Exception as exc:  # noqa: BLE001 - an unreadable cube fails its bins
        reason = str(exc) if isinstance(exc, GalamError) else unexpected_error_reason(source, exc)
        return [fit_row(item, status="failed", reason=reason) for item in items]
    z = cube_redshift(cube) if redshift is None else redshift
    resolution = cube_fwhm(cube) if fwhm is None else fwhm
    rows = []
    for item in items:
        flux, noise = spectra[item.bin_id]
        rows.append(
            _guarded_fit(
                item,
                fit_arrays,
                cube.wave,
                flux,
                noise,
                redshift=z,
                fwhm=resolution,
                vacuum=cube.wave_medium == "vacuum",
                options=options,
            )  # fmt: skip
        )
    return rows


#: glibc ``mallopt`` parameters (``malloc.h``) and the values glibc's own dynamic
#: thresholds reach on 64-bit Linux (``DEFAULT_MMAP_THRESHOLD_MAX``, twice that for trim).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP_MMAP_THRESHOLD = 32 * 2**20
_HEAP_TRIM_THRESHOLD = 64 * 2**20
_GLIBC_MMAP_THRESHOLD = 128 * 2**10


@contextmanager
def _large_arrays_on_heap() -> Iterator[bool]:
    """Let glibc reuse freed memory for pPXF's arrays on a Dask worker; yields whether
    it changed anything.

    Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``). Setting any threshold turns off glibc's
    dynamic mmap threshold, so every array over 128 KiB is a fresh ``mmap`` whose pages
    the kernel zero-fills on first touch; pPXF makes thousands of such temporaries per
    fit (templates x pixels), and a bin's fit took twice the CPU time in a worker that
    it takes in a plain process (half a million page faults and about a second of
    system time per CALIFA bin). For the partition the
    thresholds are set to the values glibc's dynamic rule would reach, and restored to
    the worker's, with the freed memory trimmed, afterwards. Elsewhere (not on a worker,
    not glibc, or no such variable) nothing is done.
    """
    libc = _worker_libc()
    if libc is None:
        yield False
        return
    trim = int(os.environ["MALLOC_TRIM_THRESHOLD_"])
    libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, _HEAP_TRIM_THRESHOLD)
    try:
        yield True
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, trim)
        libc.malloc_trim(0)


def _worker_libc() -> Any:
    """glibc's ``ctypes`` handle in a Dask worker started with a small
    ``MALLOC_TRIM_THRESHOLD_``; None otherwise."""
    value = os.environ.get("MALLOC_TRIM_THRESHOLD_", "")
    if not (sys.platform.startswith("linux") and value.isdigit()):
        return None
    if int(value) >= _HEAP_TRIM_THRESHOLD or "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:  # a process that opened a cluster has the variable too
        return None
    import ctypes

    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def fit_partition(
    items: Sequence[FitItem],
    path: str | os.PathLike,
    *,
    fit_options: dict[str, Any],
    redshift: float | None = None,
    fwhm: float | None = None,
) -> int:
    """Fit each spectrum or cube bin of one partition; write the rows to ``path``.

    The partition task of :data:`FIT_JOB`. Returns the number of rows written. On a
    Dask worker the fits run with glibc's usual memory thresholds
    (:func:`_large_arrays_on_heap`): with Dask's they cost twice as much.
    """
    from napari_galam.io.spectra import read_sdss_spectrum

    options = FitOptions(**fit_options)
    rows_by_item: dict[FitItem, dict[str, Any]] = {}
    cubes: dict[str, list[FitItem]] = {}

    def fit_file(source: str) -> Any:
        return fit_spectrum(read_sdss_spectrum(source), options, redshift=redshift, fwhm=fwhm)

    with _large_arrays_on_heap():
        for item in items:
            if item.bin_id >= 0:
                cubes.setdefault(item.source, []).append(item)
            else:
                rows_by_item[item] = _guarded_fit(item, fit_file, item.source)
        for source, members in cubes.items():
            fitted = _fit_cube_items(source, members, options, redshift, fwhm)
            rows_by_item.update(zip(members, fitted, strict=True))
    write_rows(path, [rows_by_item[item] for item in items], FIT_COLUMNS)
    return len(items)


def _item_key(item: FitItem) -> tuple[str, int]:
    return (str(item.source), int(item.bin_id))


def _row_key(row: Any) -> tuple[str, int]:
    return (str(row["source"]), int(row["bin_id"]))


def _sort_key(item: FitItem) -> str:
    return f"{item.source}#{item.bin_id:07d}"


def _crash_row(item: FitItem, reason: str) -> dict[str, Any]:
    return fit_row(item, status="failed", reason=reason)


#: ``galam fit`` (and the maps dock's pPXF maps) for the partition runner.
FIT_JOB = PartitionJob(
    name="pPXF",
    columns=FIT_COLUMNS,
    run=fit_partition,
    sort_key=_sort_key,
    crash_row=_crash_row,
    input_key=_item_key,
    row_key=_row_key,
)


@dataclass(frozen=True, eq=False)
class PpxfMaps:
    """pPXF maps of a binned cube: each bin's numbers painted on its spaxels.

    Attributes
    ----------
    maps
        ``{"LOG_AGE", "LOG_AGE_ERR", "MH", "MH_ERR", "VELOCITY", "SIGMA", "CHI2", "SNR",
        "BIN_ID"}`` -> ``(ny, nx)`` arrays (NaN, or -1 for ``BIN_ID``, where not fitted).
    n_bins, n_fitted
        Bins in all and bins fitted.
    """

    maps: dict[str, NDArray[Any]]
    n_bins: int
    n_fitted: int

    @property
    def log_age(self) -> NDArray[np.float32]:
        """Light-weighted log10(age/yr) per spaxel."""
        return self.maps["LOG_AGE"]

    @property
    def mh(self) -> NDArray[np.float32]:
        """Light-weighted [M/H] per spaxel."""
        return self.maps["MH"]


def maps_from_rows(rows: Any, bins: CubeBins) -> PpxfMaps:
    """Paint the rows of fitted bins (a table or list of rows) on the bin map."""
    columns = {"LOG_AGE": "log_age", "LOG_AGE_ERR": "log_age_err", "MH": "mh",
               "MH_ERR": "mh_err", "VELOCITY": "velocity", "SIGMA": "sigma", "CHI2": "chi2"}  # fmt: skip
    per_bin = {name: np.full(bins.n_bins, np.nan) for name in columns}
    fitted = 0
    for row in rows:
        k = int(row["bin_id"])
        if 0 <= k < bins.n_bins and str(row["status"]) == "ok":
            fitted += 1
            for name, column in columns.items():
                per_bin[name][k] = float(row[column])
    inside = bins.bin_id >= 0
    maps: dict[str, NDArray[Any]] = {}
    for name in columns:
        painted = np.full(bins.bin_id.shape, np.nan, dtype=np.float32)
        painted[inside] = per_bin[name][bins.bin_id[inside]]
        maps[name] = painted
    maps["SNR"] = bins.snr.astype(np.float32)
    maps["BIN_ID"] = bins.bin_id.astype(np.int32)
    return PpxfMaps(maps, bins.n_bins, fitted)


def finished_rows(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of the partitions finished so far in ``directory`` (for partial maps)."""
    from napari_galam.io.writers import read_table

    rows: list[dict[str, Any]] = []
    for file in sorted(Path(directory).glob("part-*.ecsv")):
        try:
            table = read_table(file)
        except Exception:  # noqa: BLE001 - a partition being written is skipped
            continue
        rows.extend({name: row[name] for name in ("bin_id", "status", *_VALUE_COLUMNS)}
                    for row in table)  # fmt: skip
    return rows


@dataclass(frozen=True, eq=False)
class CubeFit:
    """The pPXF fit of a binned cube: its bins, one row per bin and the maps."""

    bins: CubeBins
    table: Any
    maps: PpxfMaps
    source: str


def iter_fit_cube(
    cube: Any,
    directory: str | os.PathLike,
    *,
    target_snr: float = 20.0,
    min_snr: float = 3.0,
    options: FitOptions | None = None,
    redshift: float | None = None,
    fwhm: float | None = None,
    partition_size: int = 4,
    engine: str = "local",
    client: Any = None,
    n_workers: int | None = None,
) -> ProgressGenerator[CubeFit]:
    """Bin a cube to ``target_snr`` and fit every bin with pPXF; yield ``Progress``.

    Parameters
    ----------
    cube
        An opened ``SpectralCube`` (its file is read again by the partition tasks).
    directory
        The partitions folder: a rerun with the same bins and options resumes there.
    target_snr, min_snr
        The binning (:func:`napari_galam.pipeline.binning.bin_cube`).
    options
        How each bin is fitted.
    redshift, fwhm
        The cube's redshift and instrumental FWHM (observed Angstrom); None: from its
        headers (:func:`cube_redshift`) and layout (:func:`cube_fwhm`).
    partition_size, engine, client, n_workers
        Bins per partition and where they run
        (:func:`napari_galam.pipeline.distributed.iter_batch`).

    Returns
    -------
    CubeFit
    """
    options = options or FitOptions()
    snr = yield from iter_cube_snr_map(cube)
    bins = bin_cube(snr, target_snr=target_snr, min_snr=min_snr)
    source = str(Path(cube.path).resolve())
    items = [FitItem(source, k, bins.spaxels(k)) for k in range(bins.n_bins)]
    manifest = {"bins": bins.fingerprint(), "target_snr": target_snr, "min_snr": min_snr,
                "redshift": redshift, "fwhm": fwhm, **options.as_dict()}  # fmt: skip
    table, _summary = yield from iter_batch(
        items, FIT_JOB, directory, partition_size=partition_size, options=manifest,
        engine=engine, client=client, n_workers=n_workers, fit_options=options.as_dict(),
        redshift=redshift, fwhm=fwhm,
    )  # fmt: skip
    return CubeFit(bins, table, maps_from_rows(table, bins), source)


def fit_cube(cube: Any, directory: str | os.PathLike, **options: Any) -> CubeFit:
    """Run :func:`iter_fit_cube` to the end."""
    return run_to_end(iter_fit_cube(cube, directory, **options))


def write_cube_outputs(result: CubeFit, cube: Any, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``OUT/<name>.ppxf_bins.ecsv`` (one row per bin) and ``OUT/<name>.ppxf_maps.fits``
    (the maps with the cube's celestial WCS, including ``BIN_ID``)."""
    from napari_galam.io.writers import write_maps, write_table

    out = Path(out)
    table_path = write_table(out / f"{cube.name}.ppxf_bins.ecsv", result.table)
    maps_path = write_maps(
        out / f"{cube.name}.ppxf_maps.fits", result.maps.maps, celestial_wcs=cube.celestial_wcs,
        units=PPXF_MAP_UNITS,
        header_extra={"SOURCE": Path(cube.path).name, "TARGSNR": result.bins.target_snr,
                      "NBINS": result.maps.n_bins, "NFITTED": result.maps.n_fitted,
                      "METHOD": "pPXF E-MILES"},
    )  # fmt: skip
    return table_path, maps_path
