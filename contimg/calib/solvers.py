"""Antenna-gain solvers on model-divided, averaged visibilities (numpy, vectorised over channels).

Why numpy: on the averaged data CASA's bandpass task still spent ~40 s solving 768
channels x 2 polarisations one by one on the full array; the same least-squares
problem solved with StEFCal (Salvini & Wijnholds 2014: alternating per-antenna
updates, averaged every second iteration) for every channel at once takes a
few seconds.  Solutions are written as ordinary CASA tables (tables.write_table),
so applying is unchanged.

Convention (CASA's): V'_ij = g_i conj(g_j) against a unit model; solutions are
phase-referenced to the reference antenna.
"""

from __future__ import annotations

import numpy as np

CHUNK = 192  # independent problems solved together (memory ~ CHUNK * nant^2 * 24 bytes)


def stefcal(vis: np.ndarray, weight: np.ndarray, a1: np.ndarray, a2: np.ndarray, nant: int, *,
            niter: int = 200, tol: float = 1e-9, phase_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Solve V_ij = g_i conj(g_j) for every row of ``vis`` (F, nbl) with weights (F, nbl).

    a1/a2 are antenna indices 0..nant-1.  Returns gains (F, nant) and the per-antenna
    sum of weights times |g_j|^2 (F, nant), from which noise figures follow.
    ``phase_only`` keeps |g| = 1 (the amplitude is never fitted).
    """
    F = vis.shape[0]
    g_out = np.ones((F, nant), np.complex128)
    den_out = np.zeros((F, nant))
    for f0 in range(0, F, CHUNK):
        f1 = min(F, f0 + CHUNK)
        R = np.zeros((f1 - f0, nant, nant), np.complex128)
        W = np.zeros((f1 - f0, nant, nant))
        R[:, a1, a2], R[:, a2, a1] = vis[f0:f1], np.conj(vis[f0:f1])
        W[:, a1, a2], W[:, a2, a1] = weight[f0:f1], weight[f0:f1]
        WR = W * R
        g = np.ones((f1 - f0, nant), np.complex128)
        for it in range(niter):
            num = np.einsum("fij,fj->fi", WR, g)
            den = np.einsum("fij,fj->fi", W, np.abs(g) ** 2)
            new = np.where(den > 0, num / np.where(den > 0, den, 1), 0)
            if phase_only:
                new = np.where(np.abs(new) > 0, new / np.where(np.abs(new) > 0, np.abs(new), 1), 0)
            if it % 2:
                new = 0.5 * (new + g)
                if phase_only:
                    new = np.where(np.abs(new) > 0, new / np.where(np.abs(new) > 0, np.abs(new), 1), 0)
            change = np.abs(new - g).max() / max(np.abs(new).max(), 1e-30)
            g = new
            if change < tol:
                break
        g_out[f0:f1] = g
        den_out[f0:f1] = np.einsum("fij,fj->fi", W, np.abs(g) ** 2)
    return g_out, den_out


def noise_snr(vis, weight, a1, a2, g, den, nant: int) -> np.ndarray:
    """SNR per solution: |g_i| / sqrt(s / sum_j W_ij |g_j|^2), s the reduced chi^2 of the fit.

    The weights are relative (MS nsamples times |M|^2), so the noise scale s comes
    from the residuals of each problem, not from the weights.
    """
    resid = vis - g[:, a1] * np.conj(g[:, a2])
    chi2 = (weight * np.abs(resid) ** 2).sum(axis=1)
    nvis = (weight > 0).sum(axis=1)
    nfree = (den > 0).sum(axis=1)
    s = chi2 / np.maximum(1, 2 * nvis - 2 * nfree + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.abs(g) * np.sqrt(den / np.maximum(s, 1e-30)[:, None])
    return np.where(den > 0, snr, 0.0)


def reference(g: np.ndarray, ok: np.ndarray, refs: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Phase-reference each problem (row) to the first of ``refs`` with a valid solution there.

    Returns the referenced gains and the reference index used per row (-1: none).
    """
    used = np.full(g.shape[0], -1)
    for r in refs[::-1]:  # the first valid candidate wins
        used = np.where(ok[:, r], r, used)
    rows = np.flatnonzero(used >= 0)
    gr = g[rows, used[rows]]
    out = np.zeros_like(g)
    out[rows] = g[rows] * (np.conj(gr) / np.abs(gr))[:, None]
    return out, used


def min_baselines_ok(weight: np.ndarray, a1, a2, nant: int, min_bl: int = 4) -> np.ndarray:
    """(F, nant): an antenna needs at least ``min_bl`` weighted baselines for a solution."""
    cnt = np.zeros((weight.shape[0], nant), int)
    pos = weight > 0
    np.add.at(cnt.T, a1, pos.T)
    np.add.at(cnt.T, a2, pos.T)
    return cnt >= min_bl
