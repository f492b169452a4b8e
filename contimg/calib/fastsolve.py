"""The fast calibrator solve: one streamed pass (average.accumulate), numpy solvers, CASA tables.

Sequence on a calibrator observation:
 1. V' = sum w V conj(M) / sum w |M|^2 over the whole scan per baseline and
    channel (M = calibrator + catalogue sources in the beam, never written);
    baselines shorter than ``uv_min_lambda`` and autocorrelations left out.
 2. StEFCal per channel and polarisation: g_i(nu), referenced to the first
    usable reference antenna; solutions below ``minsnr`` (or antennas with
    fewer than 4 baselines) flagged.
 2b. (``phase_track_s``) a second pass, the model corrupted by that g, band-averaged in
    bins of about ``phase_track_s``: phase-only solutions phi_i(t); each baseline's scan
    average is divided by its decorrelation |sum_t w_t exp(i (phi_i - phi_j))| / sum_t w_t
    and step 2 is solved again, so phase wander within the scan no longer lowers the
    amplitudes.
 3. Split g = B G: G_i = mean_nu |g_i| exp(i arg sum_nu w g_i) (the gain, one per
    scan and polarisation, carries the flux scale); B = g / G has mean amplitude
    ~1 (CASA's solnorm).  With ``gain_calmode="p"`` G keeps only its phase and
    the amplitude scale is *not* set by this calibrator (see docs: PB17).
 4. Both written as CASA "B Jones" / "G Jones" tables (tables.write_table), so
    applycal and every check stay as they were.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from .average import accumulate
from .solvers import min_baselines_ok, noise_snr, reference, stefcal
from .tables import write_table
from .types import CalibrationError, Source, SolveOptions


def antenna_names(ms: Path) -> list[str]:
    from contimg import casa

    tb = casa.tools().table()
    tb.open(f"{ms}/ANTENNA")
    try:
        return [str(n) for n in tb.getcol("NAME")]
    finally:
        tb.close()


def solve_arrays(avg, nant_table: int, refs: list[int], minsnr: float, *, phase_only: bool = False):
    """Gains for every bin, channel and parallel hand: (nbin, nchan, nh, nant_table) arrays.

    Returns g (referenced), ok (unflagged), snr and the reference id used per problem.
    """
    ants = np.union1d(avg.a1, avg.a2)
    k1, k2 = np.searchsorted(ants, avg.a1), np.searchsorted(ants, avg.a2)
    hands = np.flatnonzero(avg.hands)
    vis = avg.vis[..., hands]  # (nbin, nbl, nchan, nh)
    w = avg.weight[..., hands]
    nbin, nbl, nchan, nh = vis.shape
    V = np.moveaxis(vis, 1, -1).reshape(-1, nbl)  # (nbin*nchan*nh, nbl)
    W = np.moveaxis(w, 1, -1).reshape(-1, nbl)
    g, den = stefcal(V, W, k1, k2, ants.size, phase_only=phase_only)
    snr = noise_snr(V, W, k1, k2, g, den, ants.size)
    ok = (den > 0) & min_baselines_ok(W, k1, k2, ants.size) & (snr >= minsnr)
    kref = [int(np.searchsorted(ants, r)) for r in refs if r in ants]
    g, used = reference(g, ok, kref)
    ok &= (used >= 0)[:, None]
    full = lambda a, fill: _to_table_order(a, ants, nant_table, (nbin, nchan, nh), fill)  # noqa: E731
    return full(g, 1.0 + 0j), full(ok, False), full(snr, 0.0), used


def _to_table_order(a: np.ndarray, ants: np.ndarray, nant_table: int, shape, fill) -> np.ndarray:
    out = np.full((*shape, nant_table), fill, dtype=a.dtype)
    out[..., ants] = a.reshape(*shape, ants.size)
    return out


def weak_antennas(g: np.ndarray, ok: np.ndarray, factor: float = 0.3) -> np.ndarray:
    """Antennas whose median gain amplitude is below ``factor`` x the array median: a dead or
    disconnected antenna correlates with nothing, so its fitted gain is ~noise.  (nant,) bool."""
    amp = np.where(ok, np.abs(g), np.nan)
    with warnings.catch_warnings():  # antennas without any solution: NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        per_ant = np.nanmedian(amp.reshape(-1, amp.shape[-1]), axis=0)
    have = np.isfinite(per_ant)
    if not have.any():
        return np.zeros(g.shape[-1], bool)
    return have & (per_ant < factor * np.nanmedian(per_ant[have]))


def usable_refs(avg, names: list[str], candidates: list[str]) -> list[str]:
    """Candidates (names, order kept) that have weighted data in the average."""
    ids = {n: i for i, n in enumerate(names)}
    have = set(np.union1d(avg.a1[(avg.weight > 0).any(axis=(0, 2, 3))],
                          avg.a2[(avg.weight > 0).any(axis=(0, 2, 3))]).tolist())
    return [c for c in candidates if str(c) in ids and ids[str(c)] in have]


def bandpass_and_gain(ms: Path, sources: list[Source], opts: SolveOptions, paths: dict) -> dict:
    """Steps 1-4 of the module docstring; writes paths["bandpass"], paths["gain"]; returns figures."""
    t0 = time.monotonic()
    timings = {}
    avg = accumulate(ms, sources, nbins=1, chanbin=1, uv_min_lambda=opts.uv_min_lambda)
    timings["average"] = time.monotonic() - t0
    names = antenna_names(ms)
    refs = usable_refs(avg, names, opts.refants)[:10]
    if not refs:
        raise CalibrationError(
            f"{ms}: none of the reference antenna candidates {list(opts.refants)[:12]} has unflagged "
            "cross-correlation data; give other candidates (SolveOptions.refants)")
    ids = {n: i for i, n in enumerate(names)}
    g, ok, snr, _used = solve_arrays(avg, len(names), [ids[r] for r in refs], opts.minsnr)
    timings["solve"] = time.monotonic() - t0 - sum(timings.values())
    track = {}
    if opts.phase_track_s > 0 and avg.figures["integrations"] > 1:
        track = undo_decorrelation(ms, sources, opts, avg, g[0], ok[0], [ids[r] for r in refs])
        g, ok, snr, _used = solve_arrays(avg, len(names), [ids[r] for r in refs], opts.minsnr)
        timings["phase_track"] = time.monotonic() - t0 - sum(timings.values())
    g, ok, snr = g[0], ok[0], snr[0]  # one bin: (nchan, nh, nant)
    ok &= ~weak_antennas(g, ok)[None, None, :]
    wsum = np.where(ok, snr ** 2, 0.0)
    n_ok = ok.sum(axis=0)
    amp = np.where(n_ok > 0, (np.abs(g) * ok).sum(axis=0) / np.maximum(n_ok, 1), 1.0)
    ph = np.angle((wsum * g).sum(axis=0))
    full_gain = amp * np.exp(1j * ph)  # (nh, nant)
    B = np.where(ok, g / full_gain[None], 1.0 + 0j)
    G = full_gain if opts.gain_calmode == "ap" else np.exp(1j * ph)  # "p": no amplitude scale
    g_ok = n_ok > 0
    g_snr = np.sqrt(wsum.sum(axis=0))
    t_mid, span = float(avg.bin_times[0]), float(avg.bin_span_s[0])
    table = lambda a: np.transpose(a, (2, 1, 0))[None]  # (nchan, nh, nant) -> (1, nant, nh, nchan)  # noqa: E731
    ref_id = ids[refs[0]]
    write_table(ms, paths["bandpass"], "B Jones", table(B), table(~ok), table(snr), ref_id, [t_mid], [span])
    write_table(ms, paths["gain"], "G Jones", table(G[None]), table(~g_ok[None]), table(g_snr[None]),
                ref_id, [t_mid], [span])
    if "amplitude" in paths and opts.gain_calmode == "ap":  # |G| alone: the flux scale, for transfer
        write_table(ms, paths["amplitude"], "G Jones", table(np.abs(G)[None].astype(complex)),
                    table(~g_ok[None]), table(g_snr[None]), ref_id, [t_mid], [span])
    timings["write"] = time.monotonic() - t0 - sum(timings.values())
    return {"refs": refs, "averaging": {**avg.figures, "phase_track": track}, "timings": timings}


def undo_decorrelation(ms: Path, sources: list[Source], opts: SolveOptions, avg, g: np.ndarray,
                       ok: np.ndarray, refs: list[int]) -> dict:
    """Step 2b: divide ``avg.vis`` (in place) by each baseline's decorrelation over the scan.

    ``g`` (nchan, nh, nant) is the first solve; phases per bin come from a band-averaged
    pass with the model corrupted by it, so they are the wander about the scan mean."""
    hands = np.flatnonzero(avg.hands)
    nchan, nant = g.shape[0], g.shape[-1]
    J = np.ones((nant, nchan, avg.hands.size), np.complex64)
    J[..., hands] = np.moveaxis(np.where(ok, g, 0), -1, 0)        # flagged: no weight
    per = accumulate(ms, sources, chanbin=nchan, uv_min_lambda=opts.uv_min_lambda,
                     bin_seconds=opts.phase_track_s, jones=J)
    if per.vis.shape[0] < 2:
        return {"bins": int(per.vis.shape[0]), "median_decorrelation": 1.0}
    gp, okp, _snr, _used = solve_arrays(per, nant, refs, opts.minsnr, phase_only=True)
    ph = np.where(okp, gp, 1.0)[:, 0]                              # (nbin, nh, nant)
    k1, k2 = avg.a1, avg.a2
    w = per.weight[:, :, 0, :][..., hands]                          # (nbin, nbl, nh)
    fringe = ph[:, :, k1] * np.conj(ph[:, :, k2])                  # (nbin, nh, nbl)
    num = np.abs((w * np.moveaxis(fringe, 1, 2)).sum(axis=0))      # (nbl, nh)
    den = w.sum(axis=0)
    D = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    D = np.clip(D, 0.5, 1.0)                                       # beyond that: not trusted
    avg.vis[..., hands] /= D[None, :, None, :]
    avg.weight[..., hands] *= (D ** 2)[None, :, None, :]
    cross = avg.a1 != avg.a2
    return {"bins": int(per.vis.shape[0]), "median_decorrelation": round(float(np.median(D[cross])), 5),
            "min_decorrelation": round(float(D[cross].min()), 5)}
