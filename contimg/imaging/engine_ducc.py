"""The ducc backend: MS -> Stokes I (visread) -> Briggs weights -> ducc0 2-D gridding and
radler deconvolution (deconvolve) -> restored image and residual with a FITS header.

The w-term is not resampled: for a coplanar snapshot an image made without w shows a
source at (l + a(n-1), m + b(n-1)) (wterm.py), which is exactly the generalised SIN
projection of Calabretta & Greisen (2002, sect. 5.1.5) with PV2_1 = -a, PV2_2 = -b:
x = l + xi (1 - n), y = m + eta (1 - n).  Writing those two header terms makes every
WCS-aware reader (astropy, reproject in the mosaic, ds9) put each pixel where it
belongs, so the mosaic's regridding is the one and only resampling.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import deconvolve, gridder, pbeam, selfcal, visread
from .engine_tclean import stdout_to_stderr
from .options import ImageOptions, ImagingError


def threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def subbands(nchan: int, n: int) -> list[slice]:
    """``n`` contiguous, nearly equal channel ranges (fewer if there are fewer channels)."""
    edges = np.linspace(0, nchan, min(n, nchan) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def header(summary: dict, cell: float, shape, freqs: np.ndarray, beam, plane: dict | None):
    """4-D FITS header like tclean's exportfits (RA, Dec, FREQ, STOKES), Jy/beam."""
    from astropy.io import fits

    ny, nx = shape
    h = fits.Header()
    h["BUNIT"] = "Jy/beam"
    h["BMAJ"], h["BMIN"], h["BPA"] = beam[0] / 3600.0, beam[1] / 3600.0, beam[2]
    axes = [("RA---SIN", summary["ra0_deg"], -cell / 3600.0, nx / 2 + 1, "deg"),
            ("DEC--SIN", summary["dec0_deg"], cell / 3600.0, ny / 2 + 1, "deg"),
            ("FREQ", 0.5 * (freqs.min() + freqs.max()), summary["f_hi"] - summary["f_lo"], 1.0, "Hz"),
            ("STOKES", 1.0, 1.0, 1.0, "")]
    for i, (ctype, crval, cdelt, crpix, cunit) in enumerate(axes, start=1):
        h[f"CTYPE{i}"], h[f"CRVAL{i}"], h[f"CDELT{i}"] = ctype, float(crval), float(cdelt)
        h[f"CRPIX{i}"], h[f"CUNIT{i}"] = float(crpix), cunit
    if plane is not None:  # generalised SIN: the coplanar w-term (module docstring)
        h["PV2_1"], h["PV2_2"] = -float(plane["a"]), -float(plane["b"])
    h["RADESYS"], h["EQUINOX"] = "FK5", 2000.0
    h["SPECSYS"], h["RESTFRQ"] = "TOPOCENT", float(0.5 * (freqs.min() + freqs.max()))
    h["TELESCOP"] = "DSA-110"
    h["ORIGIN"] = "contimg ducc backend (ducc0 wgridder + radler)"
    return h


def interval_spans(time_s: np.ndarray, intervals: list[np.ndarray]) -> list[tuple[float, float]]:
    """(start, end) MJD of each interval: its first and last integration, padded by half
    the integration time (the median step between integrations)."""
    ut = np.unique(time_s)
    half = 0.5 * float(np.median(np.diff(ut))) if ut.size > 1 else 0.0
    return [((time_s[r].min() - half) / 86400.0, (time_s[r].max() + half) / 86400.0) for r in intervals]


def drift_ratios(hdr, shape, freqs: np.ndarray, bands: list[slice], time_s: np.ndarray,
                 intervals: list[np.ndarray], pointing_dec_deg: float):
    """pbeam.drift_ratios on this image's grid, per sub-band, over the data's own
    intervals weighted by their numbers of rows (deconvolve: drift 'beam')."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs2 = WCS(hdr).celestial
    bands_hz = [pbeam.band_samples(freqs[b].min(), freqs[b].max(), 4) for b in bands]
    return pbeam.drift_ratios(wcs2, shape, spans_mjd=interval_spans(time_s, intervals),
                              weights=[r.size for r in intervals], bands_hz=bands_hz,
                              pointing_dec_deg=pointing_dec_deg)


def selfcal_step(ant1: np.ndarray, ant2: np.ndarray, time_s: np.ndarray, sc_opts):
    """deconvolve.clean's self-calibration hook: solve against the model and, if the
    phases are worth it (selfcal.worth_applying), correct the data in place; the
    figures' ``applied`` says which."""
    def run(parts: list[dict], model_vis: list[np.ndarray]) -> dict:
        gains, bins, figures = selfcal.solve(parts, model_vis, ant1, ant2, time_s, sc_opts)
        figures["applied"], figures["decision"] = selfcal.worth_applying(figures, sc_opts)
        if figures["applied"]:
            selfcal.apply(parts, gains, bins, ant1, ant2)
        return figures
    return run


def ducc_images(ms: Path, column: str, summary: dict, cell: float, imsize: list[int],
                chanbin: int, plane: dict, opts: ImageOptions, work: Path, lap,
                beam_kw: dict | None = None) -> tuple:
    """(4-D header, restored image, residual, deconvolution info).  ``lap(key)`` times a
    stage.  beam_kw (its pointing_dec_deg) is needed for drift 'beam'."""
    if opts.gridder == "wproject":
        raise ImagingError("gridder 'wproject' is tclean's: use image.backend = tclean for it")
    shape = (int(imsize[1]), int(imsize[0]))  # (ny, nx): imsize is [nx (RA), ny (Dec)]
    if min(shape) < 32 or shape[0] % 2 or shape[1] % 2:
        raise ImagingError(f"image size {imsize} must be even and >= 32 pixels for the ducc gridder")
    cell_rad = np.radians(cell / 3600.0)
    nthreads = threads()
    data = visread.read_stokes_i(ms, column, chanbin, work)
    lap("read")
    data["iw"] = gridder.briggs_weights(data["uvw"], data["freqs"], data.pop("weight"), opts.robust,
                                        shape, cell_rad)
    lap("weights")
    bands = subbands(data["freqs"].size, opts.nsubbands)
    time_s, ant1, ant2 = data.pop("time"), data.pop("ant1"), data.pop("ant2")
    intervals = deconvolve.time_intervals(time_s, opts.time_intervals)
    freqs = data["freqs"]
    hdr = header(summary, cell, shape, freqs, (0.0, 0.0, 0.0), plane if opts.gridder == "coplanar" else None)
    ratios = None
    if opts.drift == "beam" and len(intervals) > 1:
        if beam_kw is None:
            raise ImagingError("drift 'beam' needs the pointing declination (beam_kw)")
        ratios = drift_ratios(hdr, shape, freqs, bands, time_s, intervals, beam_kw["pointing_dec_deg"])
        lap("drift_beams")
    self_calibrate = None
    if opts.selfcal and (ratios is not None or len(intervals) == 1):
        sc_opts = selfcal.SelfcalOptions(opts.selfcal_solint_s, min_phase_deg=opts.selfcal_min_phase_deg)
        self_calibrate = selfcal_step(ant1, ant2, time_s, sc_opts)
    with stdout_to_stderr():  # radler reports each cycle on fd 1: keep stdout for --json callers
        out = deconvolve.clean(data, bands, shape, cell_rad, opts, opts.niter_for("ducc"), nthreads,
                               intervals, ratios, self_calibrate)
    del data, ratios, time_s, ant1, ant2
    lap("clean")
    img = deconvolve.restore(out["model"], out["residual"], out["beam"], cell_rad)
    lap("restore")
    hdr["BMAJ"], hdr["BMIN"], hdr["BPA"] = out["beam"][0] / 3600.0, out["beam"][1] / 3600.0, out["beam"][2]
    info = dict(out["deconvolution"], psf_and_dirty_s=out["psf_s"], threads=nthreads,
                wterm="header PV2_1/PV2_2" if opts.gridder == "coplanar" else "none")
    return hdr, img, out["residual"], info
