"""Benchmark: contimg.imaging.image_ms on one full-size observation, both backends.

Usage:  python bench/bench_image.py [--cache DIR] [--nants 96] [--nchan 48] [--backends ducc,tclean]
                                    [--repeat N] [--imsize N] [--cell ARCSEC] [--json] [--prepare-only]

One observation (96 antennas, 16 x 48 channels, 24 integrations; default sky around
3C286, thermal noise on, gains off so DATA is already "calibrated") is simulated and
converted with contimg.msio.build_ms in a child process, once, and cached under
bench/.cache/.  image_ms then runs in its own child process per backend, on the same
MS in one run (CASA must not share a process with python-casacore, which build_ms
loads); wall time per stage comes from ImageResult.timings, peak memory and CPU time
from the child's rusage (os.wait4).  Printed side by side: wall time (median of
--repeat runs), CPU time, peak RSS, residual rms, the ducc backend's major cycles, and
the pb-corrected peak fluxes of the five brightest sources of the first backend,
matched by position.  ``--json``: one object keyed by backend.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PREPARE = """
import json, sys, time
from pathlib import Path
from contimg.sim import SimOptions, simulate
from contimg.msio import build_ms
d, nants, nchan = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0 = time.monotonic()
res = simulate(d / "raw", SimOptions(nants=nants, nchan=nchan, seed=7, gains=False,
                                     bandpass=False, gains_vary=False))
t1 = time.monotonic()
files = sorted(p for p in res.files if p.name.endswith(".hdf5") and "incomplete" not in p.name)
info = build_ms(files, d / "obs.ms")
t2 = time.monotonic()
for f in files:
    f.unlink()
meta = dict(info.to_dict(), manifest=str(res.manifest), simulate_s=t1 - t0, build_ms_s=t2 - t1)
(d / "ms_info.json").write_text(json.dumps(meta))
"""

IMAGE = """
import dataclasses, json, sys
from pathlib import Path
from contimg import casa
args = json.loads(sys.argv[1])
casa.start(Path(args["state"]))
from contimg.imaging import ImageOptions, image_ms
res = image_ms(Path(args["ms"]), Path(args["out"]), args["name"], ImageOptions(**args["opts"]),
               **args["kw"])
d = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(res).items()}
print("RESULT=" + json.dumps(d))
"""


def ensure_ms(cache: Path, nants: int, nchan: int) -> dict:
    """The cached MS and its info (simulated and converted once, in a child process)."""
    d = cache / f"image_{nants}ant_{nchan}ch"
    info = d / "ms_info.json"
    if not info.exists():
        d.mkdir(parents=True, exist_ok=True)
        print(f"preparing {d} (simulate + build_ms) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-c", PREPARE, str(d), str(nants), str(nchan)], check=True)
    return json.loads(info.read_text())


def run_child(code: str, arg: str) -> tuple[str, float, float, float]:
    """Run ``code`` in a child Python; return its stdout, wall time (s), peak RSS (MB) and
    CPU time (s, user + system: less sensitive than wall time to other load on the machine)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, arg], stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed (status {status}):\n{text[-3000:]}")
    return text, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def run_backend(backend: str, info: dict, opts: dict, tmp: Path, repeat: int) -> dict:
    """image_ms with ``backend`` ``repeat`` times; the median wall time, the largest peak RSS."""
    kw = {k: info[k] for k in ("pointing_dec_deg", "mid_mjd", "start_mjd", "end_mjd")}
    walls, cpus, rss, res = [], [], 0.0, None
    for i in range(repeat):
        payload = json.dumps({"state": str(tmp / "state"), "ms": info["path"], "name": f"{backend}{i}",
                              "out": str(tmp / f"images_{backend}_{i}"), "opts": dict(opts, backend=backend),
                              "kw": kw})
        text, wall, peak, cpu = run_child(IMAGE, payload)
        walls.append(wall)
        cpus.append(cpu)
        rss = max(rss, peak)
        res = json.loads([ln for ln in text.splitlines() if ln.startswith("RESULT=")][-1][7:])
        print(f"{backend} run {i + 1}/{repeat}: wall {wall:.1f} s, cpu {cpu:.1f} s, peak RSS {peak:.0f} MB",
              file=sys.stderr)
    return {"wall_s": round(statistics.median(walls), 2), "walls_s": [round(w, 2) for w in walls],
            "cpu_s": round(statistics.median(cpus), 2),
            "peak_rss_mb": round(rss), "residual_rms_jy": res["noise_jy"],
            "brightest5": [{k: s[k] for k in ("ra_deg", "dec_deg", "flux_jy", "peak_jy", "snr")}
                           for s in res["sources"][:5]],
            "bright20": [{k: s[k] for k in ("ra_deg", "dec_deg", "flux_jy")} for s in res["sources"][:20]],
            "n_sources": len(res["sources"]), "timings": res["timings"],
            "beam_arcsec": [round(res["beam_major_arcsec"], 1), round(res["beam_minor_arcsec"], 1)],
            "deconvolution": {k: v for k, v in res.get("deconvolution", {}).items() if k != "band_hz"}}


def match(src: dict, others: list[dict], tol_arcsec: float = 20.0) -> dict | None:
    """The source of ``others`` nearest to ``src`` if within tol."""
    best, sep = None, tol_arcsec
    for s in others:
        d = math.hypot((s["ra_deg"] - src["ra_deg"]) * math.cos(math.radians(src["dec_deg"])),
                       s["dec_deg"] - src["dec_deg"]) * 3600
        if d < sep:
            best, sep = dict(s, sep_arcsec=d), d
    return best


def render(out: dict) -> None:
    names = list(out)
    print(f"{'':<22}" + "".join(f"{n:>14}" for n in names) + (f"   {names[1]}/{names[0]}" if len(names) == 2 else ""))
    for key, label, fmt in (("wall_s", "wall (s)", "{:14.1f}"), ("cpu_s", "cpu (s)", "{:14.1f}"),
                            ("peak_rss_mb", "peak RSS (MB)", "{:14.0f}"),
                            ("residual_rms_jy", "residual rms (mJy)", "{:14.3f}")):
        vals = [out[n][key] * (1e3 if key == "residual_rms_jy" else 1) for n in names]
        ratio = f"   {vals[1] / vals[0]:.2f}x" if len(vals) == 2 and vals[0] else ""
        print(f"{label:<22}" + "".join(fmt.format(v) for v in vals) + ratio)
    print(f"{'sources found':<22}" + "".join(f"{out[n]['n_sources']:14d}" for n in names))
    ref = names[0]
    print(f"five brightest of {ref} (pb-corrected peak, Jy):")
    for s in out[ref]["brightest5"]:
        row = f"  RA {s['ra_deg']:9.4f} Dec {s['dec_deg']:8.4f}"
        for n in names:
            m = match(s, out[n]["bright20"])
            row += f"{m['flux_jy']:12.4f}" if m else f"{'-':>12}"
        print(row)
    for n in names:
        t = out[n]["timings"]
        print(f"{n} stages (s): " + ", ".join(f"{k} {v}" for k, v in t.items()))
        d = out[n]["deconvolution"]
        if d.get("cycles"):
            per = [c["major_s"] for c in d["cycles"]]
            minor = [c["minor_s"] for c in d["cycles"]]
            print(f"{n}: {d['major_cycles']} major cycles ({statistics.median(per):.1f} s median (de)gridding, "
                  f"{statistics.median(minor):.1f} s median minor cycle), {d['iterations']} iterations, "
                  f"stopped by {d['stopped_by']}; PSF + dirty {d.get('psf_and_dirty_s')} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=HERE / ".cache")
    ap.add_argument("--nants", type=int, default=96)
    ap.add_argument("--nchan", type=int, default=48)
    ap.add_argument("--backends", default="ducc,tclean",
                    help="comma-separated; ratios are second / first, sources matched to the first's")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--imsize", type=int, default=None)
    ap.add_argument("--cell", type=float, default=None, help="cell in arcsec")
    ap.add_argument("--json", action="store_true", help="print one JSON object keyed by backend")
    ap.add_argument("--prepare-only", action="store_true")
    args = ap.parse_args(argv)
    info = ensure_ms(args.cache, args.nants, args.nchan)
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    say(f"MS: {info['path']} ({info['size_bytes'] / 1e9:.2f} GB; simulate "
        f"{info['simulate_s']:.0f} s, build_ms {info['build_ms_s']:.0f} s when prepared)")
    if args.prepare_only:
        return 0
    opts = {k: v for k, v in (("imsize", args.imsize), ("cell_arcsec", args.cell)) if v is not None}
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-image-", dir=args.cache) as tmp:
        for backend in args.backends.split(","):
            out[backend] = run_backend(backend, info, opts, Path(tmp), max(1, args.repeat))
    if args.json:
        for v in out.values():
            v["brightest5_flux_jy"] = [s["flux_jy"] for s in v["brightest5"]]
            del v["bright20"]
        print(json.dumps(out))
        return 0
    render(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
