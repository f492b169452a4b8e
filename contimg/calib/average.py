"""Model-weighted averaging: the sufficient statistics of a gain solve, in one pass over DATA.

Why: solving on the full-resolution observation cost 168 s on the full array
(MODEL_DATA written for 2 GB of visibilities, CASA bandpass over every
integration).  For gains constant within an averaging bin the least-squares
problem V = g_i conj(g_j) M has the sufficient statistics

    X_ij(nu) = sum_t w V conj(M)     Y_ij(nu) = sum_t w |M|^2

per baseline and channel (group), and V' = X / Y with weight Y against a unit
model is the *same* least-squares problem on N_t-times fewer visibilities.
Unlike plain time averaging this does not decorrelate sources away from the
phase centre (their fringe is in M) nor mix the beam-attenuated flux, which
changes ~10 % across a drift scan.  M is computed block by block in memory
(model.Predictor) and never written to disk.  Baselines shorter than
``uv_min_lambda`` (per channel) and autocorrelations get zero weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contimg import casa

from .model import Predictor
from .types import CalibrationError, Source

C_M_S = 299792458.0
BLOCK_VIS = 6_000_000  # visibilities read per block (~50 MB complex64 + model)


@dataclass
class Averaged:
    """V' (nbin, nbl, nchan_out, npol) and its weight Y; baselines a1 < or > a2 as in the MS."""

    vis: np.ndarray
    weight: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    freqs: np.ndarray      # output channel centres (Hz)
    bin_times: np.ndarray  # mean MJD seconds of each bin
    bin_span_s: np.ndarray
    hands: np.ndarray      # bool per MS correlation: parallel hand (carries the model)
    figures: dict


def time_bins(ut: np.ndarray, nbins: int) -> list[np.ndarray]:
    """Unique times split into ``nbins`` contiguous groups (fewer if there are fewer times)."""
    return [b for b in np.array_split(ut, max(1, min(int(nbins), ut.size))) if b.size]


def accumulate(ms: Path, sources: list[Source], *, nbins: int = 1, chanbin: int = 1,
               uv_min_lambda: float = 100.0, bin_seconds: float | None = None,
               jones: np.ndarray | None = None) -> Averaged:
    """One streamed pass over ``ms``: V' = sum w V conj(M) / sum w |M|^2 per bin/baseline/channel group.

    ``nbins`` contiguous time bins (or bins of about ``bin_seconds``), ``chanbin``
    channels per output channel.  Weights are the MS WEIGHT per row and
    correlation times the unflagged mask (WEIGHT_SPECTRUM is not read: it would
    add a third of the I/O for a weighting refinement).  ``jones`` (nant, nchan, npol):
    known solutions to corrupt the model with (M_ij J_i conj(J_j)), so that what is
    solved is the residual on top of them.  Needs casa.start().
    """
    ms = Path(ms)
    srcs = [Source.from_any(s) for s in sources]
    if not srcs:
        raise CalibrationError(f"{ms}: no model sources given")
    tb = casa.tools().table()
    tb.open(str(ms))
    src = tb
    try:
        times = tb.getcol("TIME")
        if np.any(np.diff(times) < 0):  # the streamed pass wants integrations contiguous
            src = tb.query("", sortlist="TIME")
            times = src.getcol("TIME")
        ut, first = np.unique(times, return_index=True)
        if bin_seconds:
            span = ut[-1] - ut[0] + np.median(np.diff(ut)) if ut.size > 1 else 1.0
            nbins = max(1, int(round(span / bin_seconds)))
        bins = time_bins(ut, nbins)
        pred = Predictor(src, ms, srcs, times)
        nchan, npol = pred.freqs.size, pred.hands.size
        if nchan % chanbin:
            raise CalibrationError(f"{ms}: {nchan} channels do not divide into groups of {chanbin}")
        nout = nchan // chanbin
        bin_of_time = np.searchsorted(np.array([b[-1] for b in bins]), ut)
        a1_all, a2_all = src.getcol("ANTENNA1"), src.getcol("ANTENNA2")
        keys = np.unique(a1_all.astype(np.int64) * 4096 + a2_all)  # autocorrelations get no weight
        a1b, a2b = keys // 4096, keys % 4096
        nbl = keys.size
        X = np.zeros((len(bins), nbl, nout, npol), np.complex128)
        Y = np.zeros((len(bins), nbl, nout, npol), np.float64)
        uvdist = np.zeros(nbl)
        par = pred.hands.astype(np.float32)  # cross hands carry no model: zero weight
        bounds = np.r_[first, times.size]
        for ti in range(ut.size):
            r0, n = int(bounds[ti]), int(bounds[ti + 1] - bounds[ti])
            a1, a2 = a1_all[r0:r0 + n], a2_all[r0:r0 + n]
            bl = np.searchsorted(keys, a1.astype(np.int64) * 4096 + a2)
            uvw = src.getcol("UVW", r0, n)
            uvdist[bl] = np.hypot(uvw[0], uvw[1])
            d = src.getcol("DATA", r0, n).T  # (n, nchan, npol), C-contiguous view
            w = (~src.getcol("FLAG", r0, n).T).astype(np.float32)
            w *= (src.getcol("WEIGHT", r0, n).T * par)[:, None, :]
            m = pred.rows_at(a1, a2, uvw[2], ti)[..., None]  # (n, nchan, 1) complex64
            if jones is not None:
                m = m * (jones[a1] * np.conj(jones[a2]))[..., :npol]
            d *= np.conj(m)
            d *= w
            w *= (m.real ** 2 + m.imag ** 2)
            if chanbin > 1:
                d = d.reshape(n, nout, chanbin, npol).sum(axis=2)
                w = w.reshape(n, nout, chanbin, npol).sum(axis=2)
            k = bin_of_time[ti]
            if n == nbl and np.array_equal(bl, np.arange(nbl)):
                X[k] += d
                Y[k] += w
            else:  # within one integration each baseline appears once
                X[k, bl] += d
                Y[k, bl] += w
    finally:
        if src is not tb:
            src.close()
        tb.close()
    Y[:, a1b == a2b] = 0.0
    freqs = pred.freqs.reshape(nout, chanbin).mean(axis=1)
    short = (uvdist[:, None] * freqs[None, :] / C_M_S) < uv_min_lambda  # (nbl, nout)
    short[a1b == a2b] = False  # (autocorrelations are out already; keep the figure about baselines)
    Y[:, short, :] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        vis = np.where(Y > 0, X / np.where(Y > 0, Y, 1), 0)
    bin_times = np.array([b.mean() for b in bins])
    step = float(np.median(np.diff(ut))) if ut.size > 1 else 0.0
    fig = {"rows_read": int(times.size), "bins": len(bins), "chanbin": int(chanbin), "integrations": int(ut.size),
           "baselines": int(nbl), "channels_out": int(nout), "uv_min_lambda": float(uv_min_lambda),
           "short_excluded_fraction": float(short[a1b != a2b].mean()),
           "zero_weight_fraction": float((Y[:, a1b != a2b][..., pred.hands] <= 0).mean()),
           "pointing_dec_deg": float(np.degrees(pred.dec0))}
    return Averaged(vis=vis, weight=Y, a1=a1b.astype(int), a2=a2b.astype(int), freqs=freqs,
                    bin_times=bin_times, bin_span_s=np.array([b[-1] - b[0] + step for b in bins]),
                    hands=pred.hands, figures=fig)
