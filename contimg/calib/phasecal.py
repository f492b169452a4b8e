"""Per-observation phase-only calibration against a reference-catalogue sky model.

Why: the transit gains are carried for up to an hour, and antenna phases drift
(and jitter on minute scales) in between.  Each observation is therefore
phase-calibrated on its own field: the model is the catalogue's brightest
sources in the beam (apparent positions, the drift-averaged Airy beam at every
integration, spectral indices), corrupted by the bandpass and gains already
solved (so the band can be averaged whole), and one phase per antenna and
polarisation is solved every ``solint_s`` (about a minute) with StEFCal in
phase-only mode.  The catalogue never sets the flux scale: |g| = 1 by
construction.  Solutions are a CASA "G Jones" table applied after the
bandpass and gain tables.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from contimg.astro.refcat import RefCatalog

from .average import accumulate
from .fastsolve import antenna_names, solve_arrays, usable_refs
from .model import sources_in_beam
from .tables import read_solutions, write_table
from .types import CalibrationError, Source


def catalogue_sources(ms: Path, cat: RefCatalog, *, max_sources: int = 12,
                      min_apparent_jy: float = 0.02) -> list[Source]:
    """The ``max_sources`` brightest sources in the beam during ``ms`` (apparent flux) of the
    catalogue plus the packaged calibrators it lacks: a survey that misses a bright
    calibrator in the field (the simulated one drops 5 % of its sources; seed 2 dropped
    3C286) left 15 Jy out of the model and the phases at its transit 60 deg off."""
    from contimg.astro.catalog import load_calibrators

    cands = [Source(f"ref{i}", float(cat.ra_deg[i]), float(cat.dec_deg[i]), float(cat.flux_jy[i]),
                    float(cat.spectral_index[i])) for i in range(len(cat))]
    cals = [Source(c.name, c.ra_deg, c.dec_deg, c.flux_jy, c.spectral_index)
            for c in load_calibrators(compact_only=True)]
    out: dict[str, Source] = {}
    for src in sources_in_beam(ms, cands + cals, min_apparent_jy):   # brightest first
        src = precise(src)           # a catalogue entry at a calibrator takes its name: one of each
        out.setdefault(src.name, src)
        if len(out) == max_sources:
            break
    return list(out.values())


def precise(src: Source, match_arcsec: float = 20.0) -> Source:
    """A catalogue source that is a packaged calibrator takes the calibrator's position (VLA
    calibrator positions are good to milliarcseconds; survey positions to arcseconds, and 2
    arcsec is ~40 deg of phase on DSA-110's longest baselines).  Flux stays the catalogue's."""
    from contimg.astro.catalog import load_calibrators

    dec = np.radians(src.dec_deg)
    for c in load_calibrators(compact_only=True):
        d = np.hypot((c.ra_deg - src.ra_deg) * np.cos(dec), c.dec_deg - src.dec_deg) * 3600.0
        if d <= match_arcsec:
            return Source(c.name, c.ra_deg, c.dec_deg, src.flux_jy, src.spectral_index)
    return src


def jones_from_tables(tables: list[Path], nant: int, nchan: int) -> np.ndarray:
    """Product of the applied solutions per antenna, channel and polarisation: (nant, nchan, 2)."""
    from contimg import casa

    tb = casa.tools().table()
    J = np.ones((nant, nchan, 2), np.complex64)
    for path in tables:
        sol = read_solutions(tb, Path(path))  # cparam (nrow, npol, nchan_table)
        c = np.where(sol["flag"], 0.0, sol["cparam"])  # flagged: no weight
        for row, ant in enumerate(sol["antenna1"]):
            if ant < nant:
                J[ant] *= np.broadcast_to(c[row].T, (nchan, c.shape[1])).astype(np.complex64)
    return J


def fill_failed(g: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Solutions (bins first) where the failed ones (``ok`` False) are interpolated in time
    from the same antenna and polarisation's good ones (held constant beyond them), or 1
    where it has none.

    Why: applycal flags the data of a flagged solution. A minute with too little flux in
    the catalogue model would then flag an antenna's data outright (on the realistic sky
    with 48 antennas: 22 % of the data flagged instead of 12 %, and the changed beam held
    the mosaic); the transit gains alone are what the data had before, so the phase
    calibration may only improve on them, never lose data.
    """
    out = np.where(ok, g, 1.0 + 0j).astype(g.dtype)
    nbin = g.shape[0]
    flat_g, flat_ok, flat_out = (a.reshape(nbin, -1) for a in (g, ok, out))
    x = np.arange(nbin)
    for k in np.flatnonzero(flat_ok.any(0) & ~flat_ok.all(0)):
        good = flat_ok[:, k]
        z = flat_g[good, k]
        re, im = np.interp(x, x[good], z.real), np.interp(x, x[good], z.imag)
        amp = np.hypot(re, im)
        flat_out[:, k] = np.where(good, flat_g[:, k], (re + 1j * im) / np.where(amp > 0, amp, 1.0))
    return flat_out.reshape(g.shape)


def solve_phase(ms: Path, out: Path, sources: list[Source], applied: list[Path], *,
                refants: list[str], solint_s: float = 26.0, minsnr: float = 3.0,
                uv_min_lambda: float = 100.0) -> dict:
    """Phase-only solutions of ``ms`` against ``sources`` on top of ``applied`` tables; writes ``out``."""
    t0 = time.monotonic()
    if not sources:
        raise CalibrationError(f"{ms}: no reference-catalogue source is bright enough in the beam")
    names = antenna_names(ms)
    from .model import ms_geometry

    nchan = ms_geometry(ms)["freqs"].size
    J = jones_from_tables(applied, len(names), nchan)
    avg = accumulate(ms, sources, chanbin=nchan, uv_min_lambda=uv_min_lambda, bin_seconds=solint_s,
                     jones=J)
    t_avg = time.monotonic() - t0
    refs = usable_refs(avg, names, refants)[:10]
    if not refs:
        raise CalibrationError(f"{ms}: no usable reference antenna among {refants[:10]}")
    ids = {n: i for i, n in enumerate(names)}
    g, ok, snr, _ = solve_arrays(avg, len(names), [ids[r] for r in refs], minsnr, phase_only=True)
    filled = fill_failed(g, ok)
    # (nbin, 1, nh, nant) -> (nbin, nant, nh, 1)
    tab = lambda a: np.transpose(a[:, 0], (0, 2, 1))[..., None]  # noqa: E731
    write_table(ms, out, "G Jones", tab(filled), tab(np.zeros_like(ok)), tab(snr), ids[refs[0]],
                avg.bin_times, avg.bin_span_s)
    phases = np.degrees(np.angle(g[ok])) if ok.any() else np.zeros(1)
    return {"sources": len(sources), "model_flux_jy": round(sum(s.flux_jy for s in sources), 3),
            "bins": int(avg.bin_times.size), "solint_s": solint_s, "refant": refs[0],
            "flagged_fraction": float(1 - ok[..., np.union1d(avg.a1, avg.a2)].mean()),  # failed, then filled
            "phase_rms_deg": float(np.sqrt(np.mean(phases ** 2))),
            "average_s": round(t_avg, 2), "seconds": round(time.monotonic() - t0, 2)}
