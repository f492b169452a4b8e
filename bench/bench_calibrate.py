"""Benchmark: flagging, calibrator solve and apply, new path beside the old one, in one run.

Usage:  python bench/bench_calibrate.py [--cache DIR] [--nants 96] [--nchan 48] [--json]

New path: RFI flagging (AOFlagger, default settings) + the fast solve (one streamed
model-weighted average, numpy StEFCal, CASA tables) + applycal.  Old path: no
flagging, MODEL_DATA on the full MS + CASA gaincal/bandpass/gaincal + applycal.
The new path also runs the per-observation phase calibration (catalogue sources
in the beam as the sky model, 60 s solutions, applied last); the old path had
neither flagging nor phase calibration (null).  --json prints {solve_s,
phasecal_s, flag_s, apply_s, peak_rss_mb, old: {...}}.

Simulates (once, cached) one observation with 3C286 at transit, default noise,
gains and bandpasses; builds its MS; then, each in its own child process so that
peak RSS (ru_maxrss of that child, CASA included: modular CASA runs in-process)
is measured separately:
  solve_old  write_model + phase-only gaincal + bandpass + gaincal (CASA, full MS)
  flag       AOFlagger on every baseline (new path only)
  solve      the fast solve (catalogue sources in the beam as the model)
  phasecal   per-observation phase-only solve on top of bandpass + gain
  apply      check_tables + applycal (DATA -> CORRECTED_DATA, calwt) + flag summary
Each path works on its own copy of the cached MS.  Default 96 antennas x 768
channels: the full-size observation (2.0 GB MS).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ensure_ms(cache: Path, nants: int, nchan: int) -> Path:
    """The cached MS of the benchmark observation (simulated and converted once)."""
    d = cache / f"cal_{nants}ant_{nchan}ch"
    ms = d / "obs0.ms"
    if (ms / "table.dat").exists():
        return ms
    from contimg.msio import build_ms
    from contimg.sim import SimOptions, simulate

    shutil.rmtree(d, ignore_errors=True)
    t0 = time.monotonic()
    res = simulate(d / "raw", SimOptions(nants=nants, nchan=nchan, seed=7))
    t1 = time.monotonic()
    build_ms(sorted(p for p in res.files if p.name.endswith(".hdf5")), ms)
    print(f"simulated in {t1 - t0:.0f} s, converted in {time.monotonic() - t1:.0f} s",
          file=sys.stderr)
    return ms


def child(mode: str, ms: Path, state: Path, out: Path) -> dict:
    """Run one mode in this process (CASA only; no python-casacore loaded here)."""
    from contimg import calib, casa
    from contimg.astro.catalog import load_calibrators

    casa.start(state)
    casa.tasks()  # import cost is not part of the figures
    t0 = time.monotonic()
    if mode in ("solve", "solve_old"):
        model = calib.sources_in_beam(ms, load_calibrators(compact_only=True), 0.01)
        t_sel = time.monotonic() - t0
        name = "bench" if mode == "solve" else "bench_old"
        res = calib.solve(ms, out, name, model, calib.SolveOptions(average=mode == "solve"))
        fig = {"select_sources_s": round(t_sel, 2), "timings_s": res.params["timings_s"],
               "refant": res.refant, "quality": res.quality, "model": [s.name for s in model]}
    elif mode == "phasecal":
        from contimg.calib.phasecal import solve_phase

        model = calib.sources_in_beam(ms, load_calibrators(compact_only=True), 0.02)[:12]
        applied = [calib.final_paths(out, "bench")[k] for k in ("bandpass", "gain")]
        fig = solve_phase(ms, out / "bench.pcal", model, applied, refants=calib.DEFAULT_REFANTS)
    elif mode == "flag":
        from contimg.calib import flagging

        fig = flagging.flag(ms, "aoflagger")
    else:
        name = "bench" if mode == "apply" else "bench_old"
        tables = [calib.final_paths(out, name)[k] for k in ("bandpass", "gain")]
        if mode == "apply" and (out / "bench.pcal").is_dir():
            tables.append(out / "bench.pcal")
        fig = calib.apply(ms, tables)
    fig["elapsed_s"] = round(time.monotonic() - t0, 2)
    fig["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/contimg-bench-calibrate"))
    ap.add_argument("--nants", type=int, default=96)
    ap.add_argument("--json", action="store_true", help="print one JSON object of the headline figures")
    ap.add_argument("--nchan", type=int, default=48, help="channels per subband (x 16)")
    ap.add_argument("--child", choices=("solve", "solve_old", "flag", "phasecal", "apply", "apply_old"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--ms", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    state, out = args.cache / "state", args.cache / "caltables"
    if args.child:
        print("RESULT=" + json.dumps(child(args.child, args.ms, state, out)))
        return
    # build in a child too: python-casacore (msio) and casatools never share a process
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bench_calibrate as b; from pathlib "
            "import Path; print('MS=' + str(b.ensure_ms(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO / "bench"), str(args.cache),
                           str(args.nants), str(args.nchan)], capture_output=True, text=True, check=True)
    ms = Path([ln for ln in proc.stdout.splitlines() if ln.startswith("MS=")][-1][3:])
    size_mb = sum(f.stat().st_size for f in ms.rglob("*") if f.is_file()) / 2**20
    report = {"nants": args.nants, "nchan_total": 16 * args.nchan, "ms_mb_before": round(size_mb)}
    # each path on its own copy of the cached MS (flagging and applying change it)
    work = args.cache / "work.ms"
    for label, modes in (("new", ("flag", "solve", "phasecal", "apply")), ("old", ("solve_old", "apply_old"))):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ms, work)
        for mode in modes:
            p = subprocess.run([sys.executable, __file__, "--cache", str(args.cache), "--child", mode,
                                "--ms", str(work)], capture_output=True, text=True, cwd=args.cache, check=False)
            if p.returncode:
                sys.exit(f"{mode} failed:\n{p.stderr[-3000:]}")
            report[mode] = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("RESULT=")][-1][7:])
            print(f"{mode}: {report[mode]['elapsed_s']} s, peak RSS {report[mode]['peak_rss_mb']} MB",
                  file=sys.stderr, flush=True)  # progress: the old path alone takes minutes
        report[f"ms_mb_after_{label}"] = round(sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) / 2**20)
    shutil.rmtree(work, ignore_errors=True)
    r = report
    headline = {"solve_s": r["solve"]["elapsed_s"], "phasecal_s": r["phasecal"]["elapsed_s"], "flag_s": r["flag"]["elapsed_s"],
                "apply_s": r["apply"]["elapsed_s"],
                "peak_rss_mb": max(r[m]["peak_rss_mb"] for m in ("flag", "solve", "phasecal", "apply")),
                "old": {"solve_s": r["solve_old"]["elapsed_s"], "phasecal_s": None, "flag_s": None,
                        "apply_s": r["apply_old"]["elapsed_s"],
                        "peak_rss_mb": max(r[m]["peak_rss_mb"] for m in ("solve_old", "apply_old"))}}
    if args.json:
        print(json.dumps(headline))
        return
    print(json.dumps(report, indent=1))
    print(f"\n{'':12s}{'old':>10s}{'new':>10s}{'ratio':>8s}")
    for k in ("solve_s", "phasecal_s", "flag_s", "apply_s", "peak_rss_mb"):
        o, n = headline["old"][k], headline[k]
        ratio = f"{o / n:.1f}x" if o and n else "-"
        print(f"{k:12s}{o if o is not None else '-':>10}{n:>10}{ratio:>8s}")
    print("(old: no flagging and no per-observation phase calibration existed)")


if __name__ == "__main__":
    main()
