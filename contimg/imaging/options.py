"""Options and result of :func:`contimg.imaging.image_ms` (the image step maps onto these)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

GRIDDERS = ("coplanar", "wproject", "standard")
BACKENDS = ("ducc", "tclean")
DRIFT_MODELS = ("beam", "images")
NITER_DEFAULT = {"tclean": 1000, "ducc": 100_000}  # tclean: a time bound; ducc: only a guard
THRESHOLD_DEFAULT = {"tclean": 4.0, "ducc": 2.0}  # tclean: x global rms; ducc: x local rms


class ImagingError(RuntimeError):
    """An MS that cannot be imaged (missing, unreadable, no data) or a CASA failure."""


@dataclass
class ImageOptions:
    """How to image one observation.

    backend: "tclean" (default, CASA) or "ducc": ducc0's wgridder in 2-D for gridding,
        degridding and the PSF, radler (WSClean's deconvolver) for the minor cycle,
        joined-channel over ``nsubbands`` sub-bands with a ``spectral_terms`` polynomial, inside an automatic
        mask (components found down to ``mask_sigma`` x the rms) down to
        ``threshold_sigma`` x the rms, the rms re-measured every major cycle;
        ``rms_window`` > 0 uses radler's local rms in windows of that many beams instead
        (off: in radler 1.2 it left bright sources under-cleaned, docs/imaging.md).  The
        w-term is written into the FITS header (PV2_1/PV2_2), not resampled.
        ducc is not the default yet: it meets the catalogue bounds on the realistic sky, but
        its images are not pixel-identical between runs (docs/imaging.md).
    robust: Briggs robustness (0 = between natural and uniform).
    imsize: pixels per side; None = derive: the field where the HA- and band-averaged
        primary beam is >= pb_cutoff (about 4 deg across, wider in RA by the drift), plus
        a 5 % margin; the image is then rectangular (RA x Dec).
    cell_arcsec: None = c / f_max / uv_max / 3 (tclean; ducc / 4.5, geometry.py).
    niter: CLEAN iteration bound (None: 1000 for tclean, where it bounds the time;
        100000 for ducc, where it is only a guard and the record says if it bound);
        nmajor: major-cycle bound (each costs a full degrid + grid of the data: ~20-40 s
        for a full observation with tclean, a few s with ducc).
    cyclefactor: tclean's; 0.5 lets each minor cycle go deeper than the default 1.0.
        Safe here: the standard gridder's PSF is position-invariant and Hogbom subtracts
        the full PSF, and the DSA-110 PSF's high pedestal (~0.3) otherwise forces a major
        cycle for every factor ~3 in peak residual.
    threshold_sigma: CLEAN stops at this many times the robust rms of the residual
        (tclean's nsigma: re-measured every major cycle; None = 4; ducc: None = 2).
    major_gain: fraction of the peak residual cleaned per minor cycle (ducc; WSClean's
        mgain).  multiscale: radler's multi-scale CLEAN instead of Hogbom-style (ducc).
    time_intervals: ducc models the observation as this many contiguous time intervals,
        because the drift through the primary beam makes every off-meridian source's
        flux change during the observation (deconvolve.py; 1 = a constant sky under one
        PSF, which left 3x the thermal residual and the north-south sidelobe bump of
        docs/imaging.md).
    drift: how ducc models that drift: "beam" (default) = one image per sub-band, each
        time interval predicted through its primary beam over the mean one, evaluated at
        the model's pixels (memory of one interval; single 10 Jy source 1.5 deg out, 6
        intervals: residual 0.54 mJy against 1.49 with one PSF, 20 s against 124 s);
        "images" = the (interval, sub-band) images cleaned jointly, one PSF each (4 x 2:
        0.53 mJy in 50 s, but ~55 bytes per pixel per image in radler: 2.8 GB there).
    selfcal: ducc: one round of phase-only self-calibration against the observation's
        own CLEAN model (one phase per antenna every ``selfcal_solint_s``, applied in
        memory; selfcal.py), then CLEAN starts again from an empty model on the
        corrected data.  Needs drift "beam" (or one interval).  The flux scale stays the
        calibrator's.
    selfcal_model_sigma: the model self-calibration solves against is CLEANed (and
        masked) only down to this many times the rms, so that it holds what is
        certainly sky, not what the phase errors made (deconvolve.py).
    selfcal_min_phase_deg: the solutions are applied (and CLEAN restarted) only if their
        rms exceeds this and twice their own noise; otherwise CLEAN continues from the
        model, which then costs no more than no self-calibration (selfcal.worth_applying).
    gridder: "coplanar" (default) = tclean's standard gridder plus an exact image-plane
        correction of the w-term for a coplanar snapshot (the DSA-110 is flat to
        ~0.7 m rms and an observation lasts 5 min; docs/imaging.md); "wproject" = CASA
        w-projection with ``wprojplanes`` (correct but ~10x slower); "standard" = no
        w-correction (sources 1-2 deg out land 6-20 arcsec off; for comparison only).
    pb_cutoff: primary-beam level below which the corrected image is blanked (NaN).
    datacolumn: "corrected", falling back to "data" when the MS has no CORRECTED_DATA.
    find_snr: source-finding threshold (x noise).
    avg_chan_width_hz: channels are averaged (mstransform, in the staging area) up to this
        width before imaging, for speed (gridding cost is per visibility): 244 kHz -> 977
        kHz on real data; bandwidth smearing then lowers peaks < 1 % at 2.5 deg with a
        ~40 arcsec beam (PITFALLS: keep ~1 MHz or finer).  None = no averaging.
    """

    robust: float = 0.0
    imsize: int | None = None
    cell_arcsec: float | None = None
    niter: int | None = None
    nmajor: int = 10
    cyclefactor: float = 0.5
    threshold_sigma: float | None = None
    backend: str = "tclean"
    mask_sigma: float = 4.0
    rms_window: float = 0.0
    nsubbands: int = 2
    spectral_terms: int = 2
    time_intervals: int = 6
    drift: str = "beam"
    selfcal: bool = True
    selfcal_solint_s: float = 60.0
    selfcal_model_sigma: float = 10.0
    selfcal_min_phase_deg: float = 1.0
    major_gain: float = 0.8
    multiscale: bool = False
    gridder: str = "coplanar"
    wprojplanes: int = -1
    pb_cutoff: float = 0.2
    datacolumn: str = "corrected"
    find_snr: float = 10.0
    avg_chan_width_hz: float | None = 1.0e6

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"image backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.nsubbands < 1 or self.spectral_terms < 1 or self.time_intervals < 1:
            raise ValueError("nsubbands, spectral_terms and time_intervals must be >= 1")
        if self.drift not in DRIFT_MODELS:
            raise ValueError(f"drift must be one of {', '.join(DRIFT_MODELS)}, got {self.drift!r}")
        if self.selfcal_solint_s <= 0:
            raise ValueError("selfcal_solint_s must be > 0")
        if self.selfcal_model_sigma <= 0:
            raise ValueError("selfcal_model_sigma must be > 0")
        if self.selfcal_min_phase_deg < 0:
            raise ValueError("selfcal_min_phase_deg must be >= 0")
        if not 0 < self.major_gain <= 1:
            raise ValueError("major_gain must be in (0, 1]")
        if self.gridder not in GRIDDERS:
            raise ValueError(f"gridder must be one of {GRIDDERS}, got {self.gridder!r}")
        if self.datacolumn not in ("corrected", "data"):
            raise ValueError(f"datacolumn must be 'corrected' or 'data', got {self.datacolumn!r}")
        if not 0 < self.pb_cutoff < 1:
            raise ValueError("pb_cutoff must be in (0, 1)")
        if self.niter is not None and self.niter < 0:
            raise ValueError("niter must be >= 0")
        if self.cyclefactor <= 0:
            raise ValueError("cyclefactor must be > 0")

    def niter_for(self, backend: str) -> int:
        return NITER_DEFAULT[backend] if self.niter is None else int(self.niter)

    def threshold_sigma_for(self, backend: str) -> float:
        return THRESHOLD_DEFAULT[backend] if self.threshold_sigma is None else float(self.threshold_sigma)


@dataclass
class ImageResult:
    """Outputs and figures of one imaged observation (sources sorted by flux, brightest first).

    noise_jy: 1.4826 x MAD of the residual where pb >= pb_cutoff (Jy/beam).
    peak_jy: largest value of the (not pb-corrected) image in that area.
    sources: dicts with ra_deg, dec_deg, flux_jy (pb-corrected peak, Jy), peak_jy (apparent),
        pb, snr, x, y (0-based pixels).
    datacolumn: the column actually imaged; datacolumn_note says why if it differs.
    backend: the engine that made the images (records older than the ducc backend: tclean).
    deconvolution: major_cycles, iterations, stopped_by ("threshold", "niter", "nmajor"),
        cap_bound (True when a cap, not the threshold, stopped CLEAN), per-cycle timings.
    """

    image_fits: Path
    residual_fits: Path
    pb_fits: Path
    pbcor_fits: Path
    png: Path
    beam_major_arcsec: float
    beam_minor_arcsec: float
    beam_pa_deg: float
    noise_jy: float
    peak_jy: float
    dynamic_range: float
    sources: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    datacolumn: str = "corrected"
    datacolumn_note: str = ""
    freq_hz: float = 0.0
    cell_arcsec: float = 0.0
    shape: list[int] = field(default_factory=list)
    gridder: str = "coplanar"
    wterm: dict = field(default_factory=dict)
    chanbin: int = 1
    geometry: dict = field(default_factory=dict)
    backend: str = "tclean"
    deconvolution: dict = field(default_factory=dict)
    reused: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        return d

    @classmethod
    def from_dict(cls, d: dict, base: Path | None = None) -> ImageResult:
        """Inverse of :meth:`to_dict`; relative paths are taken relative to ``base``."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("image_fits", "residual_fits", "pb_fits", "pbcor_fits", "png"):
            p = Path(kw[k])
            kw[k] = (base / p) if (base is not None and not p.is_absolute()) else p
        return cls(**kw)
