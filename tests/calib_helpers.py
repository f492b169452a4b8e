"""Helpers for the calibration tests: data built and CASA run in child processes.

The simulator and the MS writer load python-casacore (via pyuvdata); contimg.calib
loads casatools.  Every step runs in its own child Python (``child``) so the
pytest process never holds both.  The functions below named for a step are what
the children run; they take and return JSON-able values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent


def child(fn: str, timeout: float = 900, **kw):
    """Run ``calib_helpers.<fn>(**kw)`` in a fresh Python and return its JSON result."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import calib_helpers as h; "
            "r = getattr(h, sys.argv[2])(**json.loads(sys.argv[3])); "
            "print('RESULT=' + json.dumps(r))")
    proc = subprocess.run([sys.executable, "-c", code, str(TESTS), fn, json.dumps(kw, default=str)],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=kw.get("state", None) or os.getcwd(), check=False)
    assert proc.returncode == 0, f"{fn} failed:\n{proc.stderr[-4000:]}"
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT="):])


_SERVE = """
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
import calib_helpers as h
for line in sys.stdin:
    req = json.loads(line)
    try:
        out = {"result": getattr(h, req["fn"])(**req["kw"])}
    except BaseException:
        out = {"error": traceback.format_exc()}
    print("RESULT=" + json.dumps(out), flush=True)
"""


class Worker:
    """One child Python that runs ``calib_helpers.<fn>(**kw)`` calls one after another.

    Same isolation as ``child`` (never the pytest process; one side of the casatools /
    python-casacore split per worker) without paying the interpreter, import and
    CASA start-up for every call: a module keeps one worker per side.
    """

    def __init__(self, cwd: str | None = None):
        import tempfile

        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVE, str(TESTS)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     cwd=cwd or os.getcwd())

    def __call__(self, fn: str, timeout: float = 900, **kw):
        import threading

        self.proc.stdin.write(json.dumps({"fn": fn, "kw": kw}, default=str) + "\n")
        self.proc.stdin.flush()
        timer = threading.Timer(timeout, self.proc.kill)  # a hung call ends the worker
        timer.start()
        try:
            for line in self.proc.stdout:
                if line.startswith("RESULT="):
                    out = json.loads(line[len("RESULT="):])
                    assert "error" not in out, f"{fn} failed:\n{out.get('error')}\n{self._stderr()}"
                    return out["result"]
        finally:
            timer.cancel()
        raise AssertionError(f"{fn}: worker ended (killed after {timeout} s?):\n{self._stderr()}")

    def _stderr(self) -> str:
        self._err.seek(0)
        return self._err.read()[-4000:]

    def close(self) -> None:
        """Every result is read: end the child at once (CASA's orderly exit takes seconds)."""
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()
        self._err.close()


# ---- run in children -------------------------------------------------------------------

def built_sim(tmp_path_factory, name: str, opts: dict, obs: list[int]):
    """Module-fixture body: simulate + build_ms in a python-casacore child; yields build()'s result."""
    w = Worker()
    try:
        yield w("build", out=str(tmp_path_factory.mktemp(name)), opts=opts, obs=obs)
    finally:
        w.close()


def casa_child(tmp_path_factory):
    """Module-fixture body: one CASA child (started once) called like ``child(fn, **kw)``."""
    w = Worker(cwd=str(tmp_path_factory.mktemp("casa_state")))
    try:
        yield w
    finally:
        w.close()


def build(out: str, opts: dict, obs: list[int]) -> dict:
    """simulate() into out/raw, then one MS per requested observation (python-casacore side)."""
    from contimg.msio import build_ms
    from contimg.sim import SimOptions, simulate

    out_p = Path(out)
    res = simulate(out_p / "raw", SimOptions(**opts))
    mss = {}
    for o in res.observations:
        if o["index"] in obs:
            files = [out_p / "raw" / name for name in o["files"].values()]
            mss[str(o["index"])] = str(build_ms(files, out_p / f"obs{o['index']}.ms").path)
    return {"manifest": str(res.manifest), "ms": mss}


def _casa(state: str):
    from contimg import casa

    casa.start(Path(state))
    return casa


def _manifest(path: str) -> dict:
    return json.loads(Path(path).read_text())


def catalogue_model(ms: str, min_apparent_jy: float = 0.01) -> list:
    """What the pipeline models: compact catalogue sources in the beam during ``ms``."""
    from contimg import calib
    from contimg.astro.catalog import load_calibrators

    return calib.sources_in_beam(Path(ms), load_calibrators(compact_only=True), min_apparent_jy)


def model_vs_data(state: str, ms: str, manifest: str) -> dict:
    """write_model with every source of the truth sky, then compare MODEL_DATA with DATA."""
    casa = _casa(state)
    from contimg import calib

    srcs = [calib.CalSource.from_any(s) for s in _manifest(manifest)["sources"]]
    info = calib.write_model(Path(ms), srcs)
    tb = casa.tools().table()
    tb.open(ms)
    d, m = tb.getcol("DATA"), tb.getcol("MODEL_DATA")
    cross = tb.getcol("ANTENNA1") != tb.getcol("ANTENNA2")
    tb.close()
    d, m = d[..., cross], m[..., cross]
    diff = np.abs(m - d)
    return {"info": info, "max_rel_to_mean": float(diff.max() / np.abs(d).mean()),
            "max_rel_per_vis": float((diff / np.abs(d)).max()),
            "rms_rel": float(np.sqrt((diff ** 2).mean() / (np.abs(d) ** 2).mean())),
            "n_sources": len(srcs)}


def solve_vs_truth(state: str, ms: str, manifest: str, obs_index: int, out_dir: str,
                   set_name: str, refants: list[str], flag_first: bool = False) -> dict:
    """solve() with the catalogue model, then compare bandpass x gain with the truth manifest.

    Truth convention: V_ij = g_i conj(g_j) V_true (pyuvdata).  The MS writer
    conjugates the data, so CASA's solution for antenna i is conj(g_i b_i(nu)),
    referenced to the reference antenna (its solution phase is zero) and averaged
    over the scan (solint 'inf').
    """
    casa = _casa(state)
    from contimg import calib
    from contimg.calib.tables import read_solutions

    if flag_first:  # the realistic sky: RFI flagged as the pipeline does, on a copy
        import shutil

        from contimg.calib import flagging

        work = Path(out_dir) / "flagged.ms"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ms, work)
        flagging.flag(work, "aoflagger")
        ms = str(work)
    model = catalogue_model(ms)
    res = calib.solve(Path(ms), Path(out_dir), set_name, model, calib.SolveOptions(refants=refants))
    man = _manifest(manifest)
    tb = casa.tools().table()
    b = read_solutions(tb, res.tables["bandpass"])
    g = read_solutions(tb, res.tables["gain"])
    names, nums = man["gain_antennas"]["names"], man["gain_antennas"]["numbers"]
    o = man["observations"][obs_index]
    gt = np.array(o["gains_re"]) + 1j * np.array(o["gains_im"])  # (t, ant, pol)
    bp = np.array(man["bandpass"]["re"]) + 1j * np.array(man["bandpass"]["im"])  # (ant, chan, pol)
    bp = bp[:, np.argsort(man["bandpass"]["freqs_hz"])]  # MS channels ascend
    r = names.index(res.refant)
    gref = (gt * np.conj(gt[:, r:r + 1]) / np.abs(gt[:, r:r + 1])).mean(axis=0)  # (ant, pol)
    truth = gref[:, None, :] * bp * np.conj(bp[r:r + 1]) / np.abs(bp[r:r + 1])
    amp_err, ph_err = [], []
    for n in man["antennas"]["numbers"]:
        row_b = np.flatnonzero(b["antenna1"] == n)[0]
        row_g = np.flatnonzero(g["antenna1"] == n)[0]
        sol = b["cparam"][row_b] * g["cparam"][row_g][:, :1]  # (pol, chan)
        ok = ~(b["flag"][row_b] | g["flag"][row_g][:, :1])
        ratio = (sol / np.conj(truth[nums.index(n)]).T)[ok]
        amp_err.append(np.abs(ratio) - 1)
        ph_err.append(np.degrees(np.angle(ratio)))
    a, p = np.concatenate(amp_err), np.concatenate(ph_err)
    return {"result": res.to_dict(), "model": [s.name for s in model],
            "amp_max": float(np.abs(a).max()), "amp_rms": float(np.sqrt((a ** 2).mean())),
            "phase_max_deg": float(np.abs(p).max()), "phase_rms_deg": float(np.sqrt((p ** 2).mean())),
            "n_compared": int(a.size), "n_expected": int(len(man["antennas"]["numbers"]) * 2 * bp.shape[1]),
            "sigma_jy": man["noise"]["sigma_jy"]}


def solve_only(state: str, ms: str, out_dir: str, set_name: str, refants: list[str],
               minsnr: float = 3.0) -> dict:
    """solve() with the catalogue model; CalibError comes back as {"error", "message"}."""
    _casa(state)
    from contimg import calib

    try:
        res = calib.solve(Path(ms), Path(out_dir), set_name, catalogue_model(ms),
                          calib.SolveOptions(refants=refants, minsnr=minsnr))
    except calib.CalibError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return res.to_dict()


def apply_vs_ideal(state: str, ms: str, ideal_ms: str, tables: list[str]) -> dict:
    """apply() to ``ms``; compare its CORRECTED_DATA with DATA of the gain-free twin."""
    casa = _casa(state)
    from contimg import calib

    out = calib.apply(Path(ms), [Path(t) for t in tables])
    tb = casa.tools().table()
    tb.open(ms)
    c, f = tb.getcol("CORRECTED_DATA"), tb.getcol("FLAG")
    cross = tb.getcol("ANTENNA1") != tb.getcol("ANTENNA2")
    tb.close()
    tb.open(ideal_ms)
    d = tb.getcol("DATA")
    tb.close()
    ok = ~f & cross[None, None, :]
    ratio = c[ok] / d[ok]
    return {"apply": out, "amp_rms": float(np.sqrt(((np.abs(ratio) - 1) ** 2).mean())),
            "phase_rms_deg": float(np.sqrt((np.degrees(np.angle(ratio)) ** 2).mean())),
            "amp_max": float(np.abs(np.abs(ratio) - 1).max()),
            "unflagged_fraction": float(ok.sum() / (ok.size * cross.mean()))}


def _snapshot(tb, ms: str) -> dict:
    tb.open(ms)
    try:
        cols = ["CORRECTED_DATA", "FLAG", "WEIGHT", "SIGMA"]
        if "WEIGHT_SPECTRUM" in tb.colnames():
            cols.append("WEIGHT_SPECTRUM")
        return {c: np.asarray(tb.getcol(c)) for c in cols}
    finally:
        tb.close()


def apply_twice(state: str, ms: str, tables: list[str]) -> dict:
    """apply() twice; report the largest change of every written column between the runs."""
    casa = _casa(state)
    from contimg import calib

    tb = casa.tools().table()
    first = calib.apply(Path(ms), [Path(t) for t in tables])
    a = _snapshot(tb, ms)
    second = calib.apply(Path(ms), [Path(t) for t in tables])
    b = _snapshot(tb, ms)
    diffs = {k: float(np.abs(a[k].astype(complex) - b[k].astype(complex)).max()) for k in a}
    w = a["WEIGHT"]
    return {"first": first, "second": second, "max_change": diffs,
            "weight_range": [float(w.min()), float(w.max())]}


def try_apply(state: str, ms: str, tables: list[str]) -> dict:
    """apply(), with CalibError returned as {"error", "message", "retryable"}."""
    _casa(state)
    from contimg import calib

    try:
        return {"ok": calib.apply(Path(ms), [Path(t) for t in tables])}
    except calib.CalibError as exc:
        return {"error": type(exc).__name__, "message": str(exc),
                "retryable": bool(getattr(exc, "retryable", False))}


def pick_refant(state: str, ms: str, candidates: list[str], flag: list[str] = ()) -> dict:
    """Flag every row of the named antennas (table tool, by ANTENNA-table index), then run
    reference_antenna()."""
    casa = _casa(state)
    from contimg import calib

    tb = casa.tools().table()
    tb.open(f"{ms}/ANTENNA")
    ids = {str(n): i for i, n in enumerate(tb.getcol("NAME"))}
    tb.close()
    if flag:
        tb.open(ms, nomodify=False)
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        rows = np.isin(a1, [ids[n] for n in flag]) | np.isin(a2, [ids[n] for n in flag])
        f = tb.getcol("FLAG")
        f[..., rows] = True
        tb.putcol("FLAG", f)
        tb.close()
    try:
        return {"refant": calib.reference_antenna(Path(ms), candidates)}
    except calib.CalibError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


def model_with_moved_centre(state: str, ms: str, shift_deg: float) -> dict:
    """Shift the FIELD phase centre (uvw unchanged), then write_model: must refuse."""
    casa = _casa(state)
    from contimg import calib

    tb = casa.tools().table()
    tb.open(f"{ms}/FIELD", nomodify=False)
    d = tb.getcol("PHASE_DIR")
    d[1] += np.radians(shift_deg)
    tb.putcol("PHASE_DIR", d)
    tb.close()
    try:
        calib.write_model(Path(ms), [calib.CalSource("X", 0.0, 0.0, 1.0, 0.0)])
    except calib.CalibError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"ok": True}


def rfi_truth_rows(plan: dict, tidx: np.ndarray, a1: np.ndarray, a2: np.ndarray, nchan_ms: int,
                   obs: int = 0) -> np.ndarray:
    """The simulator's RFI truth mask in MS layout: (nrow, nchan) booleans, MS channels ascending.

    File channel index i (sb00 first, frequencies descending) is MS channel nchan-1-i;
    MS antenna IDs are 0-based station numbers, as in the plan.
    """
    m = np.zeros((a1.size, nchan_ms), bool)
    for c in plan["channels"]:
        m[:, nchan_ms - 1 - c] = True
    for b in plan["bursts"]:
        if b["obs"] != obs:
            continue
        rows = (tidx >= b["t_first"]) & (tidx <= b["t_last"])
        lo, hi = nchan_ms - 1 - b["chan_last"], nchan_ms - 1 - b["chan_first"]
        m[np.ix_(rows, np.arange(lo, hi + 1))] = True
    dead = np.isin(a1, plan["antennas"]) | np.isin(a2, plan["antennas"])
    for p, q in plan["baselines"]:
        dead |= ((a1 == p) & (a2 == q)) | ((a1 == q) & (a2 == p))
    m[dead & (a1 != a2)] = True
    return m


def flag_vs_truth(state: str, ms: str, manifest: str, engine: str, strategy: str = "generic-default",
                  **settings) -> dict:
    """Copy ``ms``, flag the copy with ``engine`` (``settings``: flagging.flag's AOFlagger
    settings), score against the RFI truth (cross-correlations)."""
    import shutil

    casa = _casa(state)
    from contimg.calib import flagging

    work = Path(state) / f"flag_{engine}.ms"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ms, work)
    fig = flagging.flag(work, engine, strategy=strategy, **settings)
    tb = casa.tools().table()
    tb.open(str(work))
    a1, a2, t = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2"), tb.getcol("TIME")
    flag = tb.getcol("FLAG").any(axis=0).T  # (nrow, nchan)
    tb.close()
    shutil.rmtree(work, ignore_errors=True)
    man = _manifest(manifest)
    truth = rfi_truth_rows(man.get("rfi") or man["instrument"]["rfi"], np.unique(t, return_inverse=True)[1], a1, a2,
                           flag.shape[1])
    cross = a1 != a2
    f, tr = flag[cross], truth[cross]
    plan = man.get("rfi") or man["instrument"]["rfi"]
    parts = {}
    for name, sub in (("channels", {**plan, "bursts": [], "antennas": [], "baselines": []}),
                      ("bursts", {**plan, "channels": [], "antennas": [], "baselines": []}),
                      ("antennas", {**plan, "channels": [], "bursts": [], "baselines": []}),
                      ("baselines", {**plan, "channels": [], "bursts": [], "antennas": []})):
        m = rfi_truth_rows(sub, np.unique(t, return_inverse=True)[1], a1, a2, flag.shape[1])[cross]
        parts[name] = round(float((f & m).sum() / max(1, m.sum())), 4)
    return {**fig, "recall_by_kind": parts, "recall": float((f & tr).sum() / max(1, tr.sum())),
            "clean_flagged": float((f & ~tr).sum() / max(1, (~tr).sum())),
            "truth_fraction": float(tr.mean())}


def pipeline_flags_vs_truth(state: str, ms: str, manifest: str, refants: list[str] | None = None) -> dict:
    """Flag (aoflagger), solve on the catalogue model (fast path) and apply, on a copy of ``ms``;
    score the final FLAG (flagger + flagged solutions applied by applycal) against the truth."""
    import shutil

    casa = _casa(state)
    from contimg import calib
    from contimg.calib import flagging

    work = Path(state) / "pipeline_flags.ms"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ms, work)
    fl = flagging.flag(work, "aoflagger")
    from contimg.steps.calibrate import refant_candidates

    opts = calib.SolveOptions(refants=refants or refant_candidates([]))
    res = calib.solve(work, Path(state) / "pf_cal", "pf", catalogue_model(str(work)), opts)
    ap = calib.apply(work, [res.tables["bandpass"], res.tables["gain"]])
    tb = casa.tools().table()
    tb.open(str(work))
    a1, a2, t = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2"), tb.getcol("TIME")
    flag = tb.getcol("FLAG").any(axis=0).T
    tb.close()
    shutil.rmtree(work, ignore_errors=True)
    man = _manifest(manifest)
    truth = rfi_truth_rows(man.get("rfi") or man["instrument"]["rfi"], np.unique(t, return_inverse=True)[1],
                           a1, a2, flag.shape[1])
    cross = a1 != a2
    f, tr = flag[cross], truth[cross]
    return {"flag": fl, "apply_flagged": ap["flagged_fraction"], "solve_s": res.params["elapsed_s"],
            "recall": float((f & tr).sum() / max(1, tr.sum())),
            "clean_flagged": float((f & ~tr).sum() / max(1, (~tr).sum()))}


def gain_amplitudes(state: str, ms: str, out_dir: str, set_name: str, refants: list[str],
                    calmode: str, write_amplitude: bool) -> dict:
    """Fast solve with ``gain_calmode``; the gain (and amplitude table) |G| of antennas with data."""
    casa = _casa(state)
    from contimg import calib
    from contimg.calib.tables import read_solutions

    res = calib.solve(Path(ms), Path(out_dir), set_name, catalogue_model(ms),
                      calib.SolveOptions(refants=refants, gain_calmode=calmode,
                                         write_amplitude=write_amplitude))
    tb = casa.tools().table()
    g = read_solutions(tb, res.tables["gain"])
    b = read_solutions(tb, res.tables["bandpass"])
    ok = ~g["flag"][:, :, 0].any(axis=1)
    out = {"gain_amp": np.abs(g["cparam"][ok, :, 0]).ravel().tolist(),
           "bandpass_mean_amp": float(np.abs(b["cparam"][ok]).mean()),
           "amplitude_table": res.params["amplitude_table"]}
    if res.params["amplitude_table"]:
        a = read_solutions(tb, Path(res.params["amplitude_table"]))
        out["acal"] = a["cparam"][ok, :, 0].ravel().tolist()
        out["acal"] = [[float(np.real(x)), float(np.imag(x))] for x in a["cparam"][ok, :, 0].ravel()]
    return out


def phasecal_vs_truth(state: str, ms: str, manifest: str, out_dir: str, refants: list[str]) -> dict:
    """Flag, fast solve, then per-observation phase calibration against the simulator's reference
    catalogue; compare B G P (per channel, per phase-cal bin) with the truth averaged over each
    bin, and B G alone (transit gains only) with the same truth."""
    import shutil

    casa = _casa(state)
    from contimg import calib
    from contimg.astro.refcat import read_refcat
    from contimg.calib import flagging
    from contimg.calib.phasecal import catalogue_sources, solve_phase
    from contimg.calib.tables import read_solutions

    out = Path(out_dir)
    work = out / "work.ms"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ms, work)
    flagging.flag(work, "aoflagger")
    res = calib.solve(work, out, "pc", catalogue_model(str(work)), calib.SolveOptions(refants=refants))
    man = _manifest(manifest)
    cat = read_refcat(Path(manifest).parent / man["reference_catalogue"]["csv"])
    srcs = catalogue_sources(work, cat)
    fig = solve_phase(work, out / "pc.pcal", srcs, [res.tables["bandpass"], res.tables["gain"]],
                      refants=refants)
    tb = casa.tools().table()
    b, g = read_solutions(tb, res.tables["bandpass"]), read_solutions(tb, res.tables["gain"])
    p = read_solutions(tb, out / "pc.pcal")
    names, nums = man["gain_antennas"]["names"], man["gain_antennas"]["numbers"]
    o = man["observations"][0]
    gt = np.array(o["gains_re"]) + 1j * np.array(o["gains_im"])  # (t, ant, pol)
    jd = np.array(o["times_jd"])
    bp = np.array(man["bandpass"]["re"]) + 1j * np.array(man["bandpass"]["im"])
    bp = bp[:, np.argsort(man["bandpass"]["freqs_hz"])]
    r = names.index(fig["refant"])
    bref = bp * np.conj(bp[r:r + 1]) / np.abs(bp[r:r + 1])
    ptimes = np.unique(p["time"])
    edges = np.r_[ptimes[:-1] + np.diff(ptimes) / 2, np.inf]
    t_s = (jd - 2400000.5) * 86400.0
    errs_p, errs_t = [], []
    for k, pt in enumerate(ptimes):
        sel = (t_s < edges[k]) & (t_s >= (edges[k - 1] if k else -np.inf))
        gref = (gt[sel] * np.conj(gt[sel, r:r + 1]) / np.abs(gt[sel, r:r + 1])).mean(axis=0)
        for n in man["antennas"]["numbers"]:
            rb, rg = np.flatnonzero(b["antenna1"] == n)[0], np.flatnonzero(g["antenna1"] == n)[0]
            rp = np.flatnonzero((p["antenna1"] == n) & (p["time"] == pt))[0]
            truth = np.conj(gref[nums.index(n)][None, :] * bref[nums.index(n)]).T  # (pol, chan)
            base = b["cparam"][rb] * g["cparam"][rg][:, :1]
            ok = ~(b["flag"][rb] | g["flag"][rg][:, :1] | p["flag"][rp][:, :1])
            errs_p.append(np.degrees(np.angle(base * p["cparam"][rp][:, :1] / truth))[ok])
            errs_t.append(np.degrees(np.angle(base / truth))[ok])
    ep, et = np.concatenate(errs_p), np.concatenate(errs_t)
    shutil.rmtree(work, ignore_errors=True)
    return {"phasecal": fig, "bins": int(ptimes.size),
            "phase_rms_with_phasecal_deg": float(np.sqrt((ep ** 2).mean())),
            "phase_rms_transit_only_deg": float(np.sqrt((et ** 2).mean())),
            "phase_p95_with_phasecal_deg": float(np.percentile(np.abs(ep), 95)),
            "phase_p95_transit_only_deg": float(np.percentile(np.abs(et), 95))}


def autopower_vs_truth(state: str, ref_ms: str, ms: str, manifest: str, ref_index: int,
                       obs_index: int, out: str, max_change: float = 0.2) -> dict:
    """autopower.correction of ``ms`` against ``ref_ms``'s reference, beside the true
    drift of each antenna's gain amplitude (observation means, from the manifest)."""
    casa = _casa(state)
    from contimg.calib.autopower import correction, write_reference
    from contimg.calib.tables import read_solutions

    out_p = Path(out)
    ref = out_p / "ref.apow"
    write_reference(Path(ref_ms), ref)
    fig = correction(Path(ms), ref, out_p / "obs.aucal", max_change=max_change)
    tb = casa.tools().table()
    sol = read_solutions(tb, out_p / "obs.aucal")
    tb.open(str(Path(ms) / "ANTENNA"))
    names = [str(n) for n in tb.getcol("NAME")]
    tb.close()
    man = _manifest(manifest)
    number = dict(zip(man["antennas"]["names"], man["antennas"]["numbers"]))
    gnum = man["gain_antennas"]["numbers"]

    def amp(i: int) -> np.ndarray:
        o = man["observations"][i]
        return np.abs(np.asarray(o["gains_re"]) + 1j * np.asarray(o["gains_im"])).mean(axis=0)

    truth = amp(obs_index) / amp(ref_index)                    # (gain antennas, pol)
    rows = []
    for row, a in enumerate(sol["antenna1"]):
        if names[a] in number:
            rows.append({"antenna": names[a], "measured": np.abs(sol["cparam"][row, :, 0]).tolist(),
                         "truth": truth[gnum.index(number[names[a]])].tolist(),
                         "flagged": bool(sol["flag"][row].any())})
    return {"figures": fig, "rows": rows}


def autopower_without_autos(state: str, ms: str, out: str) -> dict:
    """A copy of ``ms`` with every autocorrelation flagged (as a writer without them
    leaves nothing usable either): write_reference's error."""
    casa = _casa(state)
    import shutil

    from contimg.calib import CalibrationError
    from contimg.calib.autopower import write_reference

    copy = Path(out) / "noautos.ms"
    shutil.copytree(ms, copy)
    tb = casa.tools().table()
    tb.open(str(copy), nomodify=False)
    a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
    sel = tb.selectrows(np.flatnonzero(a1 == a2).tolist())
    sel.putcol("FLAG", np.ones(sel.getcol("FLAG").shape, bool))
    sel.close()
    tb.close()
    try:
        write_reference(copy, Path(out) / "x.apow")
    except CalibrationError as exc:
        return {"error": str(exc)}
    return {"error": None}


def amplitude_scale_vs_truth(state: str, ms: str, manifest: str, obs_index: int, out_dir: str,
                             refants: list[str], phase_track_s: float) -> dict:
    """solve() with the catalogue model; the median of |B G| / (scan-mean |g| x |b|) - 1 over
    antennas, channels and polarisations: the flux-scale error the solve makes."""
    casa = _casa(state)
    from contimg import calib
    from contimg.calib.tables import read_solutions

    res = calib.solve(Path(ms), Path(out_dir), f"track{int(phase_track_s)}", catalogue_model(ms),
                      calib.SolveOptions(refants=refants, phase_track_s=phase_track_s))
    man = _manifest(manifest)
    tb = casa.tools().table()
    b = read_solutions(tb, res.tables["bandpass"])
    g = read_solutions(tb, res.tables["gain"])
    nums = man["gain_antennas"]["numbers"]
    o = man["observations"][obs_index]
    amp_t = np.abs(np.array(o["gains_re"]) + 1j * np.array(o["gains_im"])).mean(axis=0)  # (ant, pol)
    bp = np.array(man["bandpass"]["re"]) + 1j * np.array(man["bandpass"]["im"])
    bp = np.abs(bp[:, np.argsort(man["bandpass"]["freqs_hz"])])  # (ant, chan, pol), MS order
    ratios = []
    for n in man["antennas"]["numbers"]:
        rb, rg = np.flatnonzero(b["antenna1"] == n)[0], np.flatnonzero(g["antenna1"] == n)[0]
        sol = np.abs(b["cparam"][rb] * g["cparam"][rg][:, :1])  # (pol, chan)
        ok = ~(b["flag"][rb] | g["flag"][rg][:, :1])
        truth = (amp_t[nums.index(n)][None, :] * bp[nums.index(n)]).T  # (pol, chan)
        ratios.append((sol / truth)[ok])
    r = np.concatenate(ratios)
    return {"scale_pct": float(100 * (np.median(r) - 1)),
            "phase_track": res.params["averaging"].get("phase_track")}
