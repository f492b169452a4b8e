"""Major/minor cycle: ducc0 2-D (de)gridding around radler's minor loop; PSF fit; restore.

radler is WSClean's deconvolution library.  It gets one residual, PSF and model image
per sub-band and cleans them jointly (peaks found on the weighted sum; component
fluxes fitted across sub-bands with a polynomial spectral term), inside an automatic
mask: it first cleans to ``mask_sigma`` x the local rms without a mask, records where
components went, then continues only there down to ``threshold_sigma`` x the local
rms (a map of rms in windows of ``rms_window`` beams), which is what lets CLEAN go
deep near bright sources without building up sidelobe components elsewhere.
Every major cycle re-predicts the whole model from the data (degrid per sub-band,
subtract, grid), so minor-cycle approximations never accumulate.

The DSA-110 does not track: during an observation every source off the meridian drifts
through the primary beam, so its visibilities are weighted by a gain that changes by up
to 5x in 309 s, while the uv points move with the rephasing.  No constant sky
reproduces that; one PSF for the whole observation left sources 1.5 deg out with 3x
the thermal residual and CLEAN components on the PSF's north-south sidelobes (the
"north-south bump").  Two remedies (``image.drift``, docs/imaging.md):
- "beam": radler cleans the mean apparent sky (one image per sub-band, one PSF), and
  every major cycle predicts each of ``time_intervals`` intervals from that model times
  the interval's primary beam over the mean one (pbeam.drift_ratios), so the residual
  is exact for the modelled beam and the memory stays that of one interval;
- "images": radler cleans all (interval, sub-band) images jointly, each with its own
  PSF, with no spectral constraint across them (a component keeps one position and
  takes each interval's own flux); memory grows with the number of images.

Self-calibration (``selfcal``, selfcal.py) solves against a model CLEANed only down to
``selfcal_model_sigma``, then CLEAN starts again from an empty model on the corrected
data (or, if the solutions were too small to apply, continues from that model).
Continuing from the first model kept what CLEAN had built from the phase errors: on the
realistic sky (seed 3, one observation) components at 3-4 % of a 1 Jy source on its
first southern sidelobe, 25 arcsec out, which the mosaic catalogue listed as sources;
restarted, 2.2-2.5 %, against 1-2 % with the simulator's true gains applied.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage, optimize, signal

from . import gridder

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
# Fit the PSF's main lobe above half power. tclean's psfcutoff (0.35) let the fit jump
# between 33 and 46 arcsec on the 48-antenna array, whose near sidelobes reach 0.34-0.44
# and join the connected region or not with each observation's flags; above 0.5 the two
# observations gave 31.6 and 30.9 arcsec (docs/imaging.md).
PSF_CUTOFF = 0.5
# A major cycle that leaves the peak residual this many times above the best one so far
# has diverged (seen on the end-to-end sky: 0.10 -> 0.59 Jy with +-2.5 Jy components):
# the best cycle's model and residual are kept and CLEAN stops ("diverging"; `status`).
DIVERGENCE_FACTOR = 1.5


def fit_beam(psf: np.ndarray, cell_rad: float, half: int = 64) -> tuple[float, float, float]:
    """Elliptical Gaussian fitted to the PSF main lobe (connected pixels >= PSF_CUTOFF
    around the centre): (major, minor FWHM arcsec, PA deg east of north)."""
    ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    box = psf[cy - half:cy + half, cx - half:cx + half] / psf[cy, cx]
    labels, _ = ndimage.label(box >= PSF_CUTOFF)
    lobe = labels == labels[half, half]
    y, x = np.nonzero(lobe)
    dx, dy, val = (x - half).astype(float), (y - half).astype(float), box[lobe]
    # pixel x grows westward: east is -x; model in (east, north) = (-dx, dy)
    e, n = -dx, dy

    def resid(p):
        sa, sb, th = p
        ca, sn = np.cos(th), np.sin(th)
        a = e * sn + n * ca  # along PA (from north through east)
        b = e * ca - n * sn
        return np.exp(-0.5 * ((a / sa) ** 2 + (b / sb) ** 2)) - val

    s0 = max(1.0, np.sqrt(lobe.sum() / np.pi) / 1.2)
    best = optimize.least_squares(resid, [s0 * 1.2, s0, 0.0]).x
    sa, sb, th = abs(best[0]), abs(best[1]), best[2]
    if sb > sa:
        sa, sb, th = sb, sa, th + np.pi / 2
    pa = (np.degrees(th) + 90.0) % 180.0 - 90.0
    scale = FWHM_PER_SIGMA * np.degrees(cell_rad) * 3600.0
    return float(sa * scale), float(sb * scale), float(pa)


def gaussian_kernel(beam: tuple[float, float, float], cell_rad: float) -> np.ndarray:
    """Peak-1 restoring beam on the pixel grid (FITS order, x westward), +-5 sigma."""
    cell_as = np.degrees(cell_rad) * 3600.0
    sa, sb = beam[0] / FWHM_PER_SIGMA / cell_as, beam[1] / FWHM_PER_SIGMA / cell_as
    th = np.radians(beam[2])
    r = int(np.ceil(5 * sa))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1].astype(float)
    e, n = -dx, dy
    a = e * np.sin(th) + n * np.cos(th)
    b = e * np.cos(th) - n * np.sin(th)
    return np.exp(-0.5 * ((a / sa) ** 2 + (b / sb) ** 2))


def restore(model: np.ndarray, residual: np.ndarray, beam, cell_rad: float) -> np.ndarray:
    """Model (Jy/pixel) convolved with the peak-1 fitted beam, plus the residual: Jy/beam."""
    conv = signal.fftconvolve(model.astype(np.float64), gaussian_kernel(beam, cell_rad), mode="same")
    return (conv + residual).astype(np.float32)


class BestCycle:
    """The model and residual of the major cycle with the lowest peak residual so far.

    ``diverged(peak, model, res)`` after each cycle: a new best is copied; a peak above
    DIVERGENCE_FACTOR x the best puts the best model and residual back into ``model``
    and ``res`` (in place) and returns True, so CLEAN stops with what it did well.
    """

    def __init__(self, peak: float, model: np.ndarray, res: np.ndarray):
        self.peak, self.model, self.res = peak, model.copy(), res.copy()

    def diverged(self, peak: float, model: np.ndarray, res: np.ndarray) -> bool:
        if peak <= self.peak:
            self.peak, self.model[...], self.res[...] = peak, model, res
            return False
        if peak > DIVERGENCE_FACTOR * self.peak:
            model[...], res[...] = self.model, self.res
            return True
        return False


def settings_for(opts, nparts: int, shape, cell_rad: float, niter: int, threads: int,
                 fit_spectrum: bool = True, model_sigma: float | None = None):
    """radler.Settings from ImageOptions (see ImageOptions for each option's reason).
    fit_spectrum: a polynomial across the images (sub-bands only); False when the images
    are also time intervals, whose fluxes differ by the primary-beam drift, not a spectrum.
    model_sigma: CLEAN (and mask) only down to this many sigma, if deeper than that: the
    self-calibration model."""
    import radler as rd

    s = rd.Settings()
    s.trimmed_image_width, s.trimmed_image_height = shape[1], shape[0]
    s.channels_out = nparts
    s.pixel_scale.x = s.pixel_scale.y = cell_rad
    s.thread_count = threads
    s.minor_iteration_count = int(niter)
    s.major_iteration_count = int(opts.nmajor)
    s.minor_loop_gain = 0.1
    s.major_loop_gain = float(opts.major_gain)
    s.auto_mask_sigma = float(opts.mask_sigma)
    s.auto_threshold_sigma = float(opts.threshold_sigma_for("ducc"))
    if model_sigma is not None:
        s.auto_mask_sigma = max(s.auto_mask_sigma, float(model_sigma))
        s.auto_threshold_sigma = max(s.auto_threshold_sigma, float(model_sigma))
    if opts.rms_window > 0:  # 0: thresholds against the global rms
        s.local_rms.method = rd.LocalRmsMethod.rms_window
        s.local_rms.window = float(opts.rms_window)
    if fit_spectrum:
        s.spectral_fitting.mode = rd.SpectralFittingMode.polynomial
        s.spectral_fitting.terms = min(int(opts.spectral_terms), nparts)
    else:
        s.spectral_fitting.mode = rd.SpectralFittingMode.no_fitting
    s.algorithm_type = rd.AlgorithmType.multiscale if opts.multiscale else rd.AlgorithmType.generic_clean
    return s


def time_intervals(time: np.ndarray, n: int) -> list[np.ndarray]:
    """Row indices of ``n`` contiguous intervals with (nearly) equal numbers of integrations
    (fewer if there are fewer integrations); rows keep their order."""
    ut, inv = np.unique(time, return_inverse=True)
    n = max(1, min(int(n), ut.size))
    group = inv * n // ut.size
    return [np.flatnonzero(group == k) for k in range(n)]


def split(data: dict, bands: list[slice], intervals: list[np.ndarray]) -> list[dict]:
    """One contiguous part per (time interval, sub-band): uvw, freqs, vis, iw (ducc0 is
    slow on strided input).  vis and iw are taken out of ``data``: the parts replace them."""
    parts = []
    for rows in intervals:
        whole = rows.size == data["uvw"].shape[0]
        uvw = data["uvw"] if whole else np.ascontiguousarray(data["uvw"][rows])
        for b in bands:
            vis = data["vis"][:, b] if whole else data["vis"][rows, b]
            iw = data["iw"][:, b] if whole else data["iw"][rows, b]
            parts.append({"uvw": uvw, "freqs": data["freqs"][b], "vis": np.ascontiguousarray(vis),
                          "iw": np.ascontiguousarray(iw)})
    del data["vis"], data["iw"]
    return parts


def rows_of(rows: np.ndarray):
    """A slice for a contiguous run of row indices (views, no copy), else the indices."""
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def predict(p: dict, model: np.ndarray, cell_rad: float, threads: int, intervals=None,
            ratios=None, band: int = 0) -> np.ndarray:
    """Model visibilities of one part; with ``ratios`` (pbeam.DriftRatios) each time
    interval's rows are predicted from the model times that interval's beam ratio in
    this band (the drift, module doc), evaluated at the model's non-zero pixels only."""
    if ratios is None:
        return gridder.degrid(p["uvw"], p["freqs"], model, cell_rad, threads)
    ys, xs = np.nonzero(model)
    flux = model[ys, xs]
    scaled = np.zeros_like(model)
    mv = np.empty_like(p["vis"])
    for k, rows in enumerate(intervals):
        scaled[ys, xs] = flux * ratios.at(k, band, ys, xs)
        sel = rows_of(rows)
        uvw = p["uvw"][sel] if isinstance(sel, slice) else np.ascontiguousarray(p["uvw"][sel])
        mv[sel] = gridder.degrid(uvw, p["freqs"], scaled, cell_rad, threads)
    return mv


def clean(data: dict, bands: list[slice], shape, cell_rad: float, opts, niter: int,
          threads: int, intervals: list[np.ndarray] | None = None, ratios=None,
          selfcal=None) -> dict:
    """Deconvolve; returns MFS restored/residual/model images, beam, per-cycle timings.

    data: uvw, vis, freqs, iw (imaging weights, 0 = flagged) from visread + briggs_weights;
    vis and iw are taken out of it (re-stored per part).  intervals: row indices of the
    time intervals (None: one).  ratios: None = one image per (interval, sub-band);
    else pbeam.DriftRatios (n_intervals x n_bands) and one image per sub-band, each
    interval predicted through its ratio (module doc).  selfcal: None, or
    f(parts, model_vis) -> figures, which corrects the parts' vis in place (selfcal.py;
    parts must span all rows); CLEAN then continues on the corrected data.
    """
    import radler as rd

    intervals = intervals or [np.arange(data["uvw"].shape[0])]
    joint = intervals if ratios is None else [np.arange(data["uvw"].shape[0])]
    if selfcal is not None and len(joint) > 1:
        raise ValueError("self-calibration needs parts over all rows (drift 'beam' or one interval)")
    parts = split(data, bands, joint)
    nb = len(parts)
    ny, nx = shape
    psf = np.zeros((nb, ny, nx), np.float32)
    res = np.zeros((nb, ny, nx), np.float32)
    model = np.zeros((nb, ny, nx), np.float32)
    norm = np.zeros(nb)
    t0 = time.monotonic()
    for i, p in enumerate(parts):
        g = gridder.grid(p["uvw"], p["freqs"], np.ones_like(p["vis"]), p["iw"], shape, cell_rad, threads)
        norm[i] = g[ny // 2, nx // 2]
        psf[i] = g / norm[i]

    def dirty() -> None:
        """res = the dirty images of the data as they are now (an empty model)."""
        for i, p in enumerate(parts):
            res[i] = gridder.grid(p["uvw"], p["freqs"], p["vis"], p["iw"], shape, cell_rad, threads) / norm[i]

    dirty()
    t_psf = time.monotonic() - t0
    wsum = norm / norm.sum()
    psf_mfs = np.tensordot(wsum, psf, axes=1)
    beam = fit_beam(psf_mfs, cell_rad)
    del psf_mfs
    fedges = np.array([[p["freqs"].min(), p["freqs"].max()] for p in parts])
    fit_spectrum = len(joint) == 1
    settings = settings_for(opts, nb, shape, cell_rad, niter, threads, fit_spectrum=fit_spectrum)

    def residual_from() -> None:
        """res = grid(V - the model's predicted visibilities)."""
        for i, p in enumerate(parts):
            mv = predict(p, model[i], cell_rad, threads, intervals, ratios, i)
            np.subtract(p["vis"], mv, out=mv)
            res[i] = gridder.grid(p["uvw"], p["freqs"], mv, p["iw"], shape, cell_rad, threads) / norm[i]

    def run_cycles(settings) -> dict:
        engine = rd.Radler(settings, psf, res, model, np.radians(beam[0] / 3600.0), nb, fedges, norm,
                           rd.Polarization.stokes_i)
        cycles, more, k, diverged = [], True, 0, False
        best = BestCycle(float(np.abs(np.tensordot(wsum, res, axes=1)).max()), model, res)
        while more and k < opts.nmajor:
            t1 = time.monotonic()
            more = engine.perform(k)
            t2 = time.monotonic()
            residual_from()  # full re-prediction: residual = grid(V - degrid(model))
            k += 1
            peak = float(np.abs(np.tensordot(wsum, res, axes=1)).max())
            cycles.append({"minor_s": round(t2 - t1, 2), "major_s": round(time.monotonic() - t2, 2),
                           "iterations": int(engine.iteration_number), "peak_residual_jy": peak})
            if best.diverged(peak, model, res):
                diverged = True
                break
        iters = int(engine.iteration_number)
        stop = "diverging" if diverged else ("niter" if iters >= niter else ("nmajor" if more else "threshold"))
        return {"major_cycles": k, "iterations": iters, "stopped_by": stop, "cycles": cycles}

    if selfcal is None:
        first = run_cycles(settings)
    else:  # the self-calibration model: only what is certainly there (module doc)
        first = run_cycles(settings_for(opts, nb, shape, cell_rad, niter, threads, fit_spectrum,
                                        model_sigma=opts.selfcal_model_sigma))
    out = dict(first)
    if selfcal is not None and first["stopped_by"] != "diverging":
        t3 = time.monotonic()
        model_vis = [predict(p, model[i], cell_rad, threads, intervals, ratios, i) for i, p in enumerate(parts)]
        figures = selfcal(parts, model_vis)
        del model_vis
        if figures.get("applied", True):
            model[...] = 0.0  # start again on the corrected data: nothing cleaned before the phases were right stays
            dirty()
        figures["seconds"] = round(time.monotonic() - t3, 2)
        figures["model_sigma"] = float(opts.selfcal_model_sigma)
        second = run_cycles(settings)
        out = {"major_cycles": first["major_cycles"] + second["major_cycles"],
               "iterations": first["iterations"] + second["iterations"],
               "stopped_by": second["stopped_by"], "cycles": first["cycles"] + second["cycles"],
               "selfcal": figures, "before_selfcal": {k: first[k] for k in ("major_cycles", "iterations")}}
    res_mfs = np.tensordot(wsum, res, axes=1).astype(np.float32)
    model_mfs = np.tensordot(wsum, model, axes=1).astype(np.float32)
    stop = out["stopped_by"]
    cycles = out.pop("cycles")
    return {"residual": res_mfs, "model": model_mfs, "beam": beam, "psf_s": round(t_psf, 2),
            "deconvolution": {**out, "cap_bound": stop in ("niter", "nmajor"), "niter_cap": int(niter),
                              "nmajor_cap": int(opts.nmajor), "subbands": len(bands),
                              "time_intervals": len(intervals),
                              "drift": "images" if ratios is None else "beam",
                              "band_hz": [[float(b.min()), float(b.max())] for b in
                                          (data["freqs"][s] for s in bands)], "cycles": cycles}}
