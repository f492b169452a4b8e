"""Radio-frequency interference and bad data for the realistic simulation, and its truth mask.

Kinds (all added to the sky-referred data before the antenna gains):
- persistent narrow-band: a few channels hit at every time on every baseline
  (20-60 Jy, random phase per baseline and integration; autocorrelations get the power);
- intermittent broad-band bursts: per observation a Poisson(1) number of bursts, each
  1-2 integrations long over a contiguous block of 4-16 subbands (5-20 Jy);
- one dead antenna: no correlated signal on its baselines, only noise of 3 sigma;
- one bad baseline: a constant spurious correlation (crosstalk) of 3-8 Jy.

The mask is stored factorised in the truth manifest (``rfi`` entry):
channels (file-order indices over 16 x nchan), bursts (obs, first/last integration,
first/last channel), antennas and baselines (station numbers, 0-based);
:func:`expand_mask` turns it into (Nblts, Nf) booleans for one file.
"""

from __future__ import annotations

import numpy as np

from contimg.astro import freqs as fq


def draw_plan(seed: int, nchan: int, observations: int, ntimes: int, stations: np.ndarray) -> dict:
    """The RFI description (JSON-ready) for a run."""
    r = np.random.default_rng([seed, 0xAF1])
    nall = fq.N_SUBBANDS * nchan
    n_narrow = 3 if nall >= 16 else 1
    chans = sorted(int(c) for c in r.choice(nall, n_narrow, replace=False))
    bursts = []
    for k in range(observations):
        for _ in range(int(r.poisson(1.0))):
            t0 = int(r.integers(0, ntimes - 1))
            nsb = int(r.integers(4, fq.N_SUBBANDS + 1))
            sb0 = int(r.integers(0, fq.N_SUBBANDS - nsb + 1))
            bursts.append({"obs": k, "t_first": t0, "t_last": min(ntimes - 1, t0 + int(r.integers(0, 2))),
                           "chan_first": sb0 * nchan, "chan_last": (sb0 + nsb) * nchan - 1,
                           "amp_jy": float(r.uniform(5, 20))})
    st = [int(s) for s in stations]
    # the dead antenna and the bad baseline avoid the first station (longest-baseline pair)
    dead = int(r.choice(st[2:])) if len(st) > 4 else None
    others = [s for s in st[1:] if s != dead]
    pair = sorted(int(s) for s in r.choice(others, 2, replace=False)) if len(others) >= 3 else None
    return {
        "channels": chans,
        "channel_amp_jy": [float(a) for a in r.uniform(20, 60, len(chans))],
        "bursts": bursts,
        "antennas": [dead] if dead is not None else [],
        "baselines": [pair] if pair else [],
        "baseline_amp_jy": float(r.uniform(3, 8)),
        "dead_antenna_sigma_factor": 3.0,
        "mask_convention": "True = corrupted; channel indices in file order (sb00 channel 0 first); "
                           "times are integration indices within the observation; stations 0-based",
    }


def _file_parts(plan: dict, obs: int, sb: int, nchan: int, a1: np.ndarray, a2: np.ndarray):
    lo = sb * nchan
    chans = np.array([c - lo for c in plan["channels"] if lo <= c < lo + nchan], dtype=int)
    amps = [a for c, a in zip(plan["channels"], plan["channel_amp_jy"]) if lo <= c < lo + nchan]
    bursts = []
    for b in plan["bursts"]:
        if b["obs"] == obs and b["chan_first"] < lo + nchan and b["chan_last"] >= lo:
            bursts.append((b["t_first"], b["t_last"], max(0, b["chan_first"] - lo),
                           min(nchan - 1, b["chan_last"] - lo), b["amp_jy"]))
    dead = (np.isin(a1, plan["antennas"]) | np.isin(a2, plan["antennas"])) & (a1 != a2)
    bad = np.zeros(a1.size, bool)
    for p, q in plan["baselines"]:
        bad |= (a1 == p) & (a2 == q)
    return chans, amps, bursts, dead, bad


def expand_mask(plan: dict, obs: int, sb: int, nchan: int, ntimes: int, a1: np.ndarray,
                a2: np.ndarray) -> np.ndarray:
    """Boolean (ntimes * Nbls, nchan) mask of one file (rows time-major, baselines a1/a2 of one time)."""
    chans, _, bursts, dead, bad = _file_parts(plan, obs, sb, nchan, a1, a2)
    nbls = a1.size
    m = np.zeros((ntimes, nbls, nchan), bool)
    m[:, :, chans] = True
    for t0, t1, c0, c1, _ in bursts:
        m[t0:t1 + 1, :, c0:c1 + 1] = True
    m[:, dead | bad, :] = True
    return m.reshape(ntimes * nbls, nchan)


class RfiInjector:
    """Adds the plan's RFI to one file's sky-referred visibilities, integration by integration."""

    def __init__(self, plan: dict, obs: int, sb: int, nchan: int, a1, a2, sigma: float, rng):
        self.chans, self.amps, self.bursts, self.dead, self.bad = _file_parts(plan, obs, sb, nchan, a1, a2)
        self.autos = a1 == a2
        self.dead &= ~self.autos
        self.bad &= ~self.autos
        self.sigma = max(sigma, 0.1)
        self.dead_factor = plan["dead_antenna_sigma_factor"]
        self.bl_amp = plan["baseline_amp_jy"]
        self.rng = rng
        self.nbls = a1.size

    def _tone(self, amp, shape):
        ph = self.rng.uniform(0, 2 * np.pi, shape)
        v = (amp * np.exp(1j * ph)).astype(np.complex64)
        return v

    def apply(self, v: np.ndarray, t: int) -> None:
        """In place on v (Nbls, Nf, 2) for integration ``t``."""
        for c, a in zip(self.chans, self.amps):
            tone = self._tone(a, self.nbls)
            tone[self.autos] = a
            v[:, c, :] += tone[:, None]
        for t0, t1, c0, c1, a in self.bursts:
            if t0 <= t <= t1:
                tone = self._tone(a, (self.nbls, c1 - c0 + 1))
                tone[self.autos] = a
                v[:, c0:c1 + 1, :] += tone[:, :, None]
        if self.dead.any():
            n = self.rng.standard_normal((int(self.dead.sum()),) + v.shape[1:] + (2,)).astype(np.float32)
            s = self.dead_factor * self.sigma
            v[self.dead] = s * n[..., 0] + 1j * s * n[..., 1]
        if self.bad.any():
            v[self.bad] += np.complex64(self.bl_amp)


def mask_for_rows(plan: dict, obs: int, t_idx: np.ndarray, a1: np.ndarray, a2: np.ndarray,
                  chan_idx: np.ndarray) -> np.ndarray:
    """Truth mask (Nrows, Nchan) for arbitrary rows (integration index within observation
    ``obs``, stations a1/a2) and channels given as file-order indices (e.g. of an MS)."""
    t_idx, a1, a2, chan_idx = (np.asarray(x) for x in (t_idx, a1, a2, chan_idx))
    m = np.zeros((t_idx.size, chan_idx.size), bool)
    m[:, np.isin(chan_idx, plan["channels"])] = True
    for b in plan["bursts"]:
        if b["obs"] == obs:
            rows = (t_idx >= b["t_first"]) & (t_idx <= b["t_last"])
            cols = (chan_idx >= b["chan_first"]) & (chan_idx <= b["chan_last"])
            m[np.ix_(rows, cols)] = True
    bad = (np.isin(a1, plan["antennas"]) | np.isin(a2, plan["antennas"])) & (a1 != a2)
    for p, q in plan["baselines"]:
        bad |= ((a1 == p) & (a2 == q)) | ((a1 == q) & (a2 == p))
    m[bad] = True
    return m
