"""Stokes I visibilities of one MS, read in row blocks and channel-averaged in memory.

The ducc backend grids from numpy arrays, so the MS is read once with casatools'
table tool (CASA is already loaded in the imaging process; python-casacore must not
be) in blocks of rows: the raw column of a full observation is ~1.4 GB (768 channels x
2 correlations x 112 k rows) and is never held whole.  Each block is reduced at once
to what imaging needs: Stokes I = weighted mean of the two parallel hands (a flagged
hand gets weight 0), averaged over ``chanbin`` adjacent channels with the same
weights, Stokes-I weight = the sum of the weights (1/sigma^2 of the mean).  What is
kept for a full observation: 21 M complex64 visibilities + float32 weights (~260 MB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .options import ImagingError

BLOCK_BYTES = 64 * 1024**2  # raw column bytes per read: bounds the transient memory
PARALLEL_HANDS = ((9, 12), (5, 8), (1, 4))  # (XX, YY), (RR, LL), (I, V)-style fallbacks


def _hands(corr_types) -> tuple[int, int]:
    """Indices of the two parallel hands in the correlation axis."""
    corr = [int(c) for c in np.ravel(corr_types)]
    for a, b in PARALLEL_HANDS:
        if a in corr and b in corr:
            return corr.index(a), corr.index(b)
    if len(corr) == 1:
        return 0, 0
    raise ImagingError(f"no parallel-hand correlations (XX/YY or RR/LL) among CORR_TYPE {corr}")


def read_stokes_i(tools, ms: Path, column: str, chanbin: int) -> dict:
    """Unflagged cross-correlations of ``ms`` as Stokes I.

    column: "corrected" or "data".  Returns uvw (nrow, 3) float64 metres, vis (nrow,
    nchan_out) complex64, weight (nrow, nchan_out) float32 (0 = flagged), freqs (nchan_out,)
    Hz (means of the averaged channels).
    """
    colname = "CORRECTED_DATA" if column == "corrected" else "DATA"
    tb = tools.table()
    try:
        tb.open(str(ms / "SPECTRAL_WINDOW"))
        if tb.nrows() != 1:
            raise ImagingError(f"{ms}: {tb.nrows()} spectral windows; the ducc backend images one "
                               "(use image.backend = tclean)")
        freqs = np.asarray(tb.getcol("CHAN_FREQ"), float).ravel()
        tb.close()
        tb.open(str(ms / "POLARIZATION"))
        hands = _hands(tb.getcol("CORR_TYPE")[:, 0])
        tb.close()
        tb.open(str(ms))
        nrow = tb.nrows()
        keep = (tb.getcol("ANTENNA1") != tb.getcol("ANTENNA2")) & ~tb.getcol("FLAG_ROW")
        uvw_all = np.asarray(tb.getcol("UVW"), float).T
        has_wspec = "WEIGHT_SPECTRUM" in tb.colnames() and tb.iscelldefined("WEIGHT_SPECTRUM", 0)
        nchan = freqs.size
        if nchan % chanbin:
            raise ImagingError(f"{ms}: {nchan} channels do not divide into bins of {chanbin}")
        nout = nchan // chanbin
        rows = np.flatnonzero(keep)
        vis = np.zeros((rows.size, nout), np.complex64)
        wgt = np.zeros((rows.size, nout), np.float32)
        npol = max(hands) + 1
        step = max(1, BLOCK_BYTES // (8 * nchan * max(npol, 2)))
        out = 0
        for start in range(0, nrow, step):
            n = min(step, nrow - start)
            sel = keep[start:start + n]
            k = int(sel.sum())
            if k == 0:
                continue
            data = tb.getcol(colname, start, n)  # (npol, nchan, n)
            flag = tb.getcol("FLAG", start, n)
            if has_wspec:
                w = tb.getcol("WEIGHT_SPECTRUM", start, n)
            else:
                w = np.broadcast_to(tb.getcol("WEIGHT", start, n)[:, None, :], flag.shape)
            num = np.zeros((nchan, k), np.complex64)
            den = np.zeros((nchan, k), np.float32)
            for p in sorted(set(hands)):
                wp = np.where(flag[p][:, sel], 0.0, w[p][:, sel]).astype(np.float32)
                num += wp * data[p][:, sel]
                den += wp
            num = num.reshape(nout, chanbin, k).sum(axis=1)
            den = den.reshape(nout, chanbin, k).sum(axis=1)
            vis[out:out + k] = (num / np.where(den > 0, den, 1.0)).T
            wgt[out:out + k] = den.T
            out += k
    except RuntimeError as exc:
        raise ImagingError(f"{ms}: cannot read {colname} ({exc})") from exc
    finally:
        tb.done()
    if not np.any(wgt > 0):
        raise ImagingError(f"{ms}: every cross-correlation visibility is flagged or has zero weight")
    return {"uvw": np.ascontiguousarray(uvw_all[rows]), "vis": vis, "weight": wgt,
            "freqs": freqs.reshape(nout, chanbin).mean(axis=1)}
