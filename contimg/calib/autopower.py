"""Gain amplitude drift since the flux-scale transit, followed with the autocorrelations.

Why: the amplitudes of a flux-scale calibrator are carried for hours, and antenna gains
wander by a few per cent an hour.  The catalogue must never set the flux scale, but an
antenna's autocorrelation is its total power, |g|^2 x (SEFD + sky), measured at every
integration with a signal-to-noise of thousands: the ratio of an observation's
autocorrelations to those recorded at the calibrator's transit is |g(t)|^2 / |g(t0)|^2
for a steady system temperature.  Its square root, per antenna and polarisation, is
applied as an amplitude-only table on top of the transit tables.

Limits, said where they are used (docs/calibration.md): a change of system temperature
(the Galactic plane or the Sun in the beam, a warm receiver) reads as a gain change;
the 15 Jy of 3C286 at transit against a dish SEFD of about 5800 Jy makes the
observations away from it read 0.13 % low in amplitude (0.26 % in flux).  A correction beyond ``max_change`` is not trusted: that antenna keeps 1.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .fastsolve import antenna_names
from .tables import write_table
from .types import CalibrationError


def auto_power(ms: Path) -> tuple[np.ndarray, float, float]:
    """Median over time of each antenna's unflagged autocorrelation power.

    Returns (P, mid_time_s, span_s): P is (nant, 2, nchan) over the ANTENNA table (NaN
    where an antenna has no unflagged autocorrelation).  Raises CalibrationError when the
    MS has no autocorrelations at all."""
    from contimg import casa

    tb = casa.tools().table()
    tb.open(str(ms))
    try:
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        rows = np.flatnonzero(a1 == a2)
        if rows.size == 0:
            raise CalibrationError(f"{ms}: no autocorrelations")
        times = tb.getcol("TIME")
        sel = tb.selectrows(rows.tolist())
        try:
            data = np.asarray(sel.getcol("DATA"))   # (ncorr, nchan, nrow)
            flag = np.asarray(sel.getcol("FLAG"), bool)
        finally:
            sel.close()
    finally:
        tb.close()
    nant = len(antenna_names(ms))
    hands = [0, data.shape[0] - 1]                  # XX and YY of 2 or 4 correlations
    power = np.where(flag[hands], np.nan, data[hands].real)
    ants = a1[rows]
    out = np.full((nant, 2, data.shape[1]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an antenna wholly flagged: NaN
        for a in np.unique(ants):
            out[a] = np.nanmedian(power[..., ants == a], axis=-1)
    if not np.isfinite(out).any():
        raise CalibrationError(f"{ms}: no unflagged autocorrelations")
    return out, float(0.5 * (times.min() + times.max())), float(np.ptp(times)) or 1.0


def write_reference(ms: Path, out: Path) -> dict:
    """Record the autocorrelation power of the calibrator observation ``ms`` (a CASA
    "B Jones"-shaped table: one row per antenna, the power per polarisation and channel)."""
    power, mid, span = auto_power(ms)
    p = power[None]                                  # (1, nant, 2, nchan)
    bad = ~np.isfinite(p)
    write_table(ms, out, "B Jones", np.where(bad, 0, p).astype(complex), bad, np.ones(p.shape),
                0, np.array([mid]), np.array([span]))
    return {"antennas": int(np.isfinite(power).any(axis=(1, 2)).sum())}


def read_reference(path: Path) -> np.ndarray:
    """(nant, 2, nchan) power from ``write_reference``; NaN where flagged."""
    from contimg import casa

    from .tables import read_solutions

    if not (Path(path) / "table.dat").is_file():
        raise CalibrationError(f"{path}: no reference autocorrelations (solved before they were recorded)")
    sol = read_solutions(casa.tools().table(), Path(path))
    power = np.where(sol["flag"], np.nan, sol["cparam"].real)     # (nrow, 2, nchan)
    out = np.full((int(sol["antenna1"].max()) + 1,) + power.shape[1:], np.nan)
    out[sol["antenna1"]] = power
    return out


def correction(ms: Path, reference: Path, out: Path, *, max_change: float = 0.2) -> dict:
    """Write ``out``: the amplitude-only table sqrt(P_obs / P_ref) per antenna and
    polarisation (median over channels of the per-channel ratio, so the bandpass and
    narrow-band RFI cancel), never flagging data.  Returns the figures for the registry."""
    ref = read_reference(reference)
    obs, mid, span = auto_power(ms)
    if ref.shape[1:] != obs.shape[1:]:
        raise CalibrationError(f"{ms}: autocorrelations have {obs.shape[2]} channels, the reference "
                               f"{reference.name} {ref.shape[2]}")
    n = min(ref.shape[0], obs.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ratio = np.full(obs.shape[:2], np.nan)
        ratio[:n] = np.nanmedian(obs[:n] / ref[:n], axis=-1)
        amp = np.sqrt(ratio)
    measured = np.isfinite(amp) & (amp > 0)
    held = measured & (np.abs(amp - 1) > max_change)
    use = measured & ~held
    gain = np.where(use, amp, 1.0)[None, ..., None]      # (1, nant, 2, 1)
    write_table(ms, out, "G Jones", gain.astype(complex), np.zeros(gain.shape, bool),
                np.ones(gain.shape), 0, np.array([mid]), np.array([span]))
    change = 100 * (amp[use] - 1) if use.any() else np.zeros(1)
    return {"table": str(out), "reference": str(reference), "antennas": int(use.any(axis=1).sum()),
            "median_change_pct": round(float(np.median(change)), 3),
            "rms_change_pct": round(float(np.sqrt(np.mean(change ** 2))), 3),
            "max_change_pct": round(float(np.abs(change).max()), 3),
            "held": int(held.sum()), "max_change": max_change}
