"""Applied calibration against the simulator's true gains, per observation of a finished run.

Usage:  python bench/bench_gains.py HOME [--json]

Why: the calibration issue asks for gain errors against the truth of at most 1 % in
amplitude and 2 deg in phase, within 30 minutes of a transit and between transits, and
for no trend of the flux scale with time from transit above 1 % per 30 minutes.  Images
mix that with sky-model, beam and imaging errors; this looks at the gains alone.

What: per calibrated observation, the product J of the tables applycal applied (state DB
applications: tables and interp, in order; bandpass x gain x amplitude / phase-cal), at
the integration times (nearest, or linear in amplitude and phase, held beyond the
solutions) on every channel, against T = gain(t) x bandpass(nu) from
contimg.sim.corruptions (checked against the manifest).  The MS holds the conjugate of
the simulator's visibilities, so a perfect J = conj(T): R = J / conj(T) per time,
antenna, channel and pol, flagged solutions left out.  The circular mean phase of R over
antennas (per time, channel, pol: undeterminable) is removed.  Figures: phase rms (deg;
also observation-mean J against observation-mean T: what one solution per observation
could reach); amplitude scale (median |R| - 1, %; corrected fluxes go as |R|^-2: flux %);
amplitude rms about it (%, all samples; and band-averaged per antenna: the gain part).
Summary: medians within 30 min of the gain transit and beyond, the worst observation
(largest of amp rms / 1 %, |scale| / 1 %, phase rms / 2 deg), and slopes of the scale
and flux against |time from the transit that set the amplitude|, % per 30 min.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from contimg.sim.corruptions import Corruptions

MJD_JD = 2400000.5
NEAR_MIN = 30.0  # "within 30 minutes of a transit"
TARGET_AMP_PCT, TARGET_PHASE_DEG = 1.0, 2.0


def compare(applied: np.ndarray, truth: np.ndarray) -> dict:
    """Errors of ``applied`` against ``truth`` (same convention, arrays (time, antenna, channel,
    pol); NaN = no solution).  One phase per (time, channel, pol) is removed (circular mean over
    antennas); amplitude: scale = median |ratio| - 1, rms of |ratio| / median - 1 over everything
    and over antennas, times and pols of the band-averaged |ratio|."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # wholly flagged antennas: NaN, left out
        r = applied / truth
        r = np.where(np.isfinite(r) & (np.abs(r) > 0), r, np.nan)
        ref = np.angle(np.nan_to_num(r / np.abs(r)).sum(axis=1, keepdims=True))  # undeterminable phase
        ph = np.degrees(np.angle(r * np.exp(-1j * ref)))
        amp = np.abs(r)
        med = np.nanmedian(amp)
        band = np.nanmean(amp, axis=2)  # per antenna, band-averaged: the gain part alone
    return {"amp_rms_pct": float(100 * np.sqrt(np.nanmean((amp / med - 1) ** 2))),
            "amp_rms_bandavg_pct": float(100 * np.sqrt(np.nanmean((band / med - 1) ** 2))),
            "amp_scale_pct": float(100 * (med - 1)),
            "flux_pct": float(100 * (med ** -2 - 1)),
            "phase_rms_deg": float(np.sqrt(np.nanmean(ph ** 2))),
            "n_compared": int(np.isfinite(amp).sum())}


def interp_time(sol_t: np.ndarray, sol: np.ndarray, t: np.ndarray, how: str) -> np.ndarray:
    """Solutions (len(sol_t), ...) at times ``t`` like applycal: 'nearest', or 'linear' in
    amplitude and (unwrapped) phase; held at the first/last solution outside their span."""
    sol_t = np.asarray(sol_t, float)
    if sol_t.size == 1:
        return np.repeat(sol[:1], len(t), axis=0)
    if how.startswith("nearest"):
        return sol[np.abs(np.asarray(t)[:, None] - sol_t[None, :]).argmin(axis=1)]
    flat = sol.reshape(len(sol_t), -1)
    amp = np.abs(flat)
    ph = np.unwrap(np.nan_to_num(np.angle(flat)), axis=0)
    out = np.empty((len(t), flat.shape[1]), complex)
    for k in range(flat.shape[1]):
        a = np.interp(t, sol_t, amp[:, k])  # NaN (flagged) neighbours stay NaN
        out[:, k] = a * np.exp(1j * np.interp(t, sol_t, ph[:, k]))
    return out.reshape((len(t),) + sol.shape[1:])


_TABLES: dict = {}


def read_table(path: str) -> dict:
    """Times (MJD s), CPARAM (time, antenna, chan, pol; flagged = NaN), antenna names, freqs."""
    if path not in _TABLES:
        from casacore.tables import table

        with table(path, ack=False) as tb:
            t, a = tb.getcol("TIME"), tb.getcol("ANTENNA1")
            c = np.where(tb.getcol("FLAG"), np.nan, tb.getcol("CPARAM"))  # (row, chan, pol)
        with table(f"{path}/ANTENNA", ack=False) as tb:
            names = [str(n) for n in tb.getcol("NAME")]
        with table(f"{path}/SPECTRAL_WINDOW", ack=False) as tb:
            freqs = tb.getcol("CHAN_FREQ")[0]
        ut = np.unique(t)
        cube = np.full((ut.size, len(names)) + c.shape[1:], np.nan, complex)
        cube[np.searchsorted(ut, t), a] = c
        _TABLES[path] = {"times": ut, "cparam": cube, "names": names, "freqs": freqs}
    return _TABLES[path]


def load_truth(home: Path) -> tuple[dict, Corruptions]:
    paths = sorted((home / "incoming").glob("*_truth.json"))
    if not paths:
        raise SystemExit(f"bench_gains: no *_truth.json in {home / 'incoming'}")
    man = json.loads(paths[0].read_text())
    o = man["options"]
    corr = Corruptions.draw(o["seed"], o["gains"], o["bandpass"], o["gains_vary"],
                            phase_noise_deg=float(man["instrument"]["phase_noise_deg"]))
    return man, corr


def true_gains(man: dict, corr: Corruptions, obs: dict, freqs: np.ndarray) -> np.ndarray:
    """gain(t) x bandpass(nu) of the antennas with data: (time, antenna, channel, pol),
    regenerated by the simulator's own code and checked against the manifest."""
    st = np.asarray(man["antennas"]["numbers"])
    jd = np.asarray(obs["times_jd"])
    g = corr.gains((jd - man["gains_t0_jd"]) * 24.0, st)
    bp = corr.bandpass(freqs, st)
    gi = [man["gain_antennas"]["numbers"].index(n) for n in st]
    rec_g = (np.asarray(obs["gains_re"]) + 1j * np.asarray(obs["gains_im"]))[:, gi]
    mf = np.asarray(man["bandpass"]["freqs_hz"])
    ci = [int(np.argmin(np.abs(mf - f))) for f in freqs]
    rec_b = (np.asarray(man["bandpass"]["re"]) + 1j * np.asarray(man["bandpass"]["im"]))[gi][:, ci]
    dev = max(np.abs(g - rec_g).max(), np.abs(bp - rec_b).max())
    if dev > 1e-6:
        raise SystemExit(f"bench_gains: contimg.sim.corruptions no longer reproduces the manifest "
                         f"(max deviation {dev:.2g}); the simulator changed since this run")
    return g[:, :, None, :] * bp[None]


def applications(home: Path) -> list[dict]:
    """Per calibrated observation: tables and interp as applied, mid MJD, transits (MJD)."""
    out, db = [], sqlite3.connect(f"file:{home / 'state.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    rows = db.execute("SELECT a.observation_id, a.figures, a.provenance, m.mid_mjd, c.transit_mjd, c.calibrator"
                      " FROM applications a JOIN measurement_sets m USING (observation_id)"
                      " JOIN caltables c ON c.id = a.gain_id ORDER BY m.mid_mjd").fetchall()
    db.close()
    for r in rows:
        fig, prov = json.loads(r["figures"]), json.loads(r["provenance"] or "{}")
        amp = prov.get("tables", {}).get("amplitude")
        out.append({"id": r["observation_id"], "mid_mjd": r["mid_mjd"], "tables": fig["tables"],
                    "interp": fig["interp"], "transit_mjd": r["transit_mjd"], "calibrator": r["calibrator"],
                    "amp_transit_mjd": amp["transit_mjd"] if amp else r["transit_mjd"],
                    "amp_calibrator": amp["calibrator"] if amp else r["calibrator"]})
    return out


def measure_observation(app: dict, man: dict, corr: Corruptions) -> dict:
    jd_mid = app["mid_mjd"] + MJD_JD
    obs = next((o for o in man["observations"] if o["start_jd"] <= jd_mid <= o["end_jd"]), None)
    if obs is None:
        raise SystemExit(f"bench_gains: {app['id']} is not an observation of the truth manifest")
    t_s = (np.asarray(obs["times_jd"]) - MJD_JD) * 86400.0
    tabs = [read_table(p) for p in app["tables"]]
    freqs = max((t["freqs"] for t in tabs), key=len)
    names = man["antennas"]["names"]
    J = np.ones((t_s.size, len(names), freqs.size, 2), complex)
    for tab, how in zip(tabs, app["interp"]):
        ants = [tab["names"].index(n) for n in names]
        J *= interp_time(tab["times"], tab["cparam"][:, ants], t_s, how)  # 1 channel broadcasts
    T = true_gains(man, corr, obs, freqs)
    res = compare(J, np.conj(T))
    wrong = compare(J, T)["phase_rms_deg"]  # the other convention, as a check: should be large
    scan = compare(J.mean(axis=0, keepdims=True), np.conj(T.mean(axis=0, keepdims=True)))["phase_rms_deg"]
    good = np.isfinite(J)
    dt = (np.mean(obs["times_jd"]) - MJD_JD - app["transit_mjd"]) * 1440.0
    dta = (np.mean(obs["times_jd"]) - MJD_JD - app["amp_transit_mjd"]) * 1440.0
    return {"observation": app["id"], "calibrator": app["calibrator"], "dt_transit_min": round(dt, 2),
            "amp_calibrator": app["amp_calibrator"], "dt_amp_transit_min": round(dta, 2),
            **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()},
            "phase_rms_obs_mean_deg": round(scan, 3), "phase_rms_unconjugated_deg": round(wrong, 1),
            "flagged_pct": round(100 * (1 - good.mean()), 2), "antpol_flagged": int((~good.any(axis=(0, 2))).sum()),
            "badness": round(max(res["amp_rms_pct"] / TARGET_AMP_PCT, abs(res["amp_scale_pct"]) / TARGET_AMP_PCT,
                                 res["phase_rms_deg"] / TARGET_PHASE_DEG), 2)}


def summarise(rows: list[dict]) -> dict:
    keys = ("amp_rms_pct", "amp_rms_bandavg_pct", "amp_scale_pct", "flux_pct", "phase_rms_deg",
            "phase_rms_obs_mean_deg")

    def med(sel):
        return {"n": len(sel), **{k: (round(float(np.median([r[k] for r in sel])), 3) if sel else None)
                                  for k in keys}}

    near = [r for r in rows if abs(r["dt_transit_min"]) <= NEAR_MIN]
    far = [r for r in rows if abs(r["dt_transit_min"]) > NEAR_MIN]
    x = np.abs([r["dt_amp_transit_min"] for r in rows])
    slope = lambda k: (round(float(np.polyfit(x, [r[k] for r in rows], 1)[0] * 30.0), 3)  # noqa: E731
                       if np.ptp(x) > 0 else None)
    worst = max(rows, key=lambda r: r["badness"])
    return {"within_30min": med(near), "beyond_30min": med(far),
            "worst": {k: worst[k] for k in ("observation", "dt_transit_min", *keys, "badness")},
            "amp_scale_slope_pct_per_30min": slope("amp_scale_pct"),
            "flux_slope_pct_per_30min": slope("flux_pct"),
            "meets_target": [r["observation"] for r in rows if r["badness"] <= 1.0],
            "targets": {"amp_pct": TARGET_AMP_PCT, "phase_deg": TARGET_PHASE_DEG, "slope_pct_per_30min": 1.0}}


def print_table(rows: list[dict], summary: dict, seconds: float) -> None:
    print(f"{'observation':16} {'gain cal':11} {'dt min':>6} {'amp cal':8} {'dt_a min':>8} {'amp rms%':>8} "
          f"{'band-avg':>8} {'scale%':>7} {'flux%':>6} {'ph rms':>6} {'obs-mean':>8} {'flag%':>5}")
    for r in rows:
        print(f"{r['observation']:16} {r['calibrator']:11} {r['dt_transit_min']:6.1f} {r['amp_calibrator']:8} "
              f"{r['dt_amp_transit_min']:8.1f} {r['amp_rms_pct']:8.2f} {r['amp_rms_bandavg_pct']:8.2f} "
              f"{r['amp_scale_pct']:7.2f} {r['flux_pct']:6.2f} {r['phase_rms_deg']:6.2f} "
              f"{r['phase_rms_obs_mean_deg']:8.2f} {r['flagged_pct']:5.1f}")
    for name in ("within_30min", "beyond_30min"):
        s = summary[name]
        if s["n"]:
            print(f"median {name:13} (n={s['n']}): amp rms {s['amp_rms_pct']:.2f} % (band-avg "
                  f"{s['amp_rms_bandavg_pct']:.2f}), scale {s['amp_scale_pct']:+.2f} %, flux {s['flux_pct']:+.2f} %, "
                  f"phase rms {s['phase_rms_deg']:.2f} deg (obs-mean {s['phase_rms_obs_mean_deg']:.2f})")
    w = summary["worst"]
    print(f"worst: {w['observation']} (dt {w['dt_transit_min']:+.1f} min): amp rms {w['amp_rms_pct']:.2f} %, "
          f"scale {w['amp_scale_pct']:+.2f} %, phase rms {w['phase_rms_deg']:.2f} deg ({w['badness']:.1f} x target)")
    print(f"slope against |dt| from the amplitude transit, % per 30 min: amplitude scale "
          f"{summary['amp_scale_slope_pct_per_30min']}, flux {summary['flux_slope_pct_per_30min']}")
    print(f"meeting 1 % / 2 deg: {len(summary['meets_target'])} of {len(rows)}; {seconds:.1f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    man, corr = load_truth(args.home)
    apps = applications(args.home)
    if not apps:
        raise SystemExit(f"bench_gains: no applied calibration in {args.home / 'state.sqlite3'}")
    rows = [measure_observation(a, man, corr) for a in apps]
    summary = summarise(rows)
    seconds = time.monotonic() - t0
    if args.json:
        print(json.dumps({"home": str(args.home), "per_observation": rows, "summary": summary,
                          "seconds": round(seconds, 2)}))
    else:
        print_table(rows, summary, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
