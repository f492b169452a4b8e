"""Phase-only self-calibration of one observation against its own CLEAN model, in memory.

Why: the gains carried from a calibrator transit do not follow the antennas' phase
jitter on minute scales (7 deg rms on the realistic sky), and every bright source then
carries antenna-based errors into its sidelobes.  With this array's 0.48 north-south
sidelobes those errors are what CLEAN turned into "sources" 20-35 arcsec from bright
ones and what set the noise near them.  The deconvolved model of the observation
itself is the best sky model there is (deeper than any survey catalogue at the
observation's own epoch, positions and beam), so one round of phase-only solutions
against it, one per antenna every ``solint_s``, is applied to the visibilities in
memory and CLEAN continues on the corrected data (deconvolve.clean).  Phase only:
the flux scale stays the calibrator's.

Convention (the MS's): V_ij = g_i conj(g_j) M_ij with i = ANTENNA1; corrected
V_ij conj(g_i) g_j for |g| = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contimg.calib import solvers


@dataclass(frozen=True)
class SelfcalOptions:
    """solint_s: one phase per antenna per this many seconds; min_snr: solutions below it
    are replaced by interpolation from the antenna's good ones (1 when it has none);
    min_phase_deg: the solutions are applied only if their rms exceeds this and twice
    their own noise (:func:`worth_applying`)."""

    solint_s: float = 60.0
    min_snr: float = 5.0
    min_phase_deg: float = 1.0


def worth_applying(figures: dict, opts: SelfcalOptions) -> tuple[bool, str]:
    """Whether solved phases are worth a second CLEAN: their rms must exceed
    ``min_phase_deg`` and twice the noise of one solution (1 / median SNR radians).
    Why: applying costs a full CLEAN from scratch (deconvolve.clean), and where the
    transit gains already hold (the end-to-end test's sky: 0.05 deg rms at SNR 850) it
    changes nothing but the time."""
    if not figures["median_snr"] > 0:
        return False, "no usable solutions (nothing above the model threshold): not applied"
    noise_deg = float(np.degrees(1.0 / figures["median_snr"]))
    floor = max(float(opts.min_phase_deg), 2.0 * noise_deg)
    if figures["phase_rms_deg"] > floor:
        return True, f"phase rms {figures['phase_rms_deg']:.2f} deg > {floor:.2f}"
    return False, f"phase rms {figures['phase_rms_deg']:.2f} deg <= {floor:.2f} (min_phase_deg or 2x the solutions' noise): not applied"


def solution_bins(time_s: np.ndarray, solint_s: float) -> tuple[np.ndarray, int]:
    """Bin index of every row (consecutive solint_s-long bins from the first
    integration, empty ones dropped) and the number of bins."""
    k = np.floor((time_s - time_s.min()) / max(float(solint_s), 1e-6)).astype(np.int64)
    used, inv = np.unique(k, return_inverse=True)
    return inv.astype(np.int64), int(used.size)


def fill_failed(g: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(nbin, nant) phases where failed ones are interpolated in time from the antenna's
    good ones (held beyond them), 1 where it has none: a solution never flags data."""
    out = np.where(ok, g, 1.0 + 0j)
    x = np.arange(g.shape[0])
    for a in np.flatnonzero(ok.any(0) & ~ok.all(0)):
        good = ok[:, a]
        ph = np.interp(x, x[good], np.unwrap(np.angle(g[good, a])))
        out[:, a] = np.where(good, g[:, a], np.exp(1j * ph))
    return out


def solve(parts: list[dict], model_vis: list[np.ndarray], ant1: np.ndarray, ant2: np.ndarray,
          time_s: np.ndarray, opts: SelfcalOptions) -> tuple[np.ndarray, np.ndarray, dict]:
    """Phase per (bin, antenna) from the data against the model, all channels together.

    parts: one per sub-band over all rows (vis, iw); model_vis: their predictions.
    Returns (gains (nbin, nant), bin of each row, figures)."""
    nant = int(max(ant1.max(), ant2.max())) + 1
    bins, nbin = solution_bins(time_s, opts.solint_s)
    bl = ant1.astype(np.int64) * nant + ant2
    ubl, bl_idx = np.unique(bl, return_inverse=True)
    key = bins * ubl.size + bl_idx
    size = nbin * ubl.size
    xr, xi, w = np.zeros(size), np.zeros(size), np.zeros(size)
    for p, mv in zip(parts, model_vis):
        x_row = (p["iw"] * p["vis"] * np.conj(mv)).sum(axis=1)
        xr += np.bincount(key, x_row.real, size)
        xi += np.bincount(key, x_row.imag, size)
        w += np.bincount(key, (p["iw"] * np.abs(mv) ** 2).sum(axis=1), size)
    ratio = np.where(w > 0, (xr + 1j * xi) / np.where(w > 0, w, 1.0), 0).reshape(nbin, ubl.size)
    weight = w.reshape(nbin, ubl.size)
    a1, a2 = (ubl // nant).astype(int), (ubl % nant).astype(int)
    g, den = solvers.stefcal(ratio, weight, a1, a2, nant, phase_only=True)
    snr = solvers.noise_snr(ratio, weight, a1, a2, g, den, nant)
    ok = (snr >= opts.min_snr) & solvers.min_baselines_ok(weight, a1, a2, nant)
    present = np.union1d(a1, a2)
    g = fill_failed(g, ok)
    # the phase of one antenna is free: remove the mean phase over antennas per bin
    mean = np.angle(np.exp(1j * np.angle(g[:, present])).mean(axis=1))
    g = g * np.exp(-1j * mean)[:, None]
    phases = np.degrees(np.angle(g[:, present]))
    figures = {"solint_s": float(opts.solint_s), "bins": nbin, "antennas": int(present.size),
               "failed_fraction": round(float(1 - ok[:, present].mean()), 4),
               "phase_rms_deg": round(float(np.sqrt(np.mean(phases ** 2))), 2),
               "median_snr": round(float(np.median(snr[:, present])), 1)}
    return g, bins, figures


def apply(parts: list[dict], gains: np.ndarray, bins: np.ndarray, ant1: np.ndarray,
          ant2: np.ndarray) -> None:
    """Correct every part's visibilities in place: V conj(g_i) g_j."""
    corr = (np.conj(gains[bins, ant1]) * gains[bins, ant2]).astype(np.complex64)
    for p in parts:
        p["vis"] *= corr[:, None]
