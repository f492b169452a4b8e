"""Benchmark: contimg.imaging.image_ms on one full-size observation.

Usage:  python bench/bench_image.py [--cache DIR] [--nants 96] [--nchan 48]
                                    [--niter N] [--imsize N] [--cell ARCSEC] [--prepare-only]

One observation (96 antennas, 16 x 48 channels, 24 integrations; default sky around
3C286, thermal noise on, gains off so DATA is already "calibrated") is simulated and
converted with contimg.msio.build_ms in a child process, once, and cached under
bench/.cache/.  image_ms then runs in its own child process (CASA must not share a
process with python-casacore, which build_ms loads); its wall time per stage comes
from ImageResult.timings and its peak memory from the child's ru_maxrss (os.wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
res = image_ms(Path(args["ms"]), Path(args["out"]), "bench", ImageOptions(**args["opts"]),
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


def run_child(code: str, arg: str) -> tuple[str, float, float]:
    """Run ``code`` in a child Python; return its stdout, wall time (s) and peak RSS (MB)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, arg], stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed (status {status}):\n{text[-3000:]}")
    return text, wall, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=HERE / ".cache")
    ap.add_argument("--nants", type=int, default=96)
    ap.add_argument("--nchan", type=int, default=48)
    ap.add_argument("--niter", type=int, default=None)
    ap.add_argument("--imsize", type=int, default=None)
    ap.add_argument("--cell", type=float, default=None, help="cell in arcsec")
    ap.add_argument("--prepare-only", action="store_true")
    args = ap.parse_args(argv)
    info = ensure_ms(args.cache, args.nants, args.nchan)
    print(f"MS: {info['path']} ({info['size_bytes'] / 1e9:.2f} GB; simulate "
          f"{info['simulate_s']:.0f} s, build_ms {info['build_ms_s']:.0f} s when prepared)")
    if args.prepare_only:
        return 0
    opts = {k: v for k, v in (("niter", args.niter), ("imsize", args.imsize),
                              ("cell_arcsec", args.cell)) if v is not None}
    with tempfile.TemporaryDirectory(prefix="bench-image-", dir=args.cache) as tmp:
        kw = {k: info[k] for k in ("pointing_dec_deg", "mid_mjd", "start_mjd", "end_mjd")}
        payload = json.dumps({"state": str(Path(tmp) / "state"), "ms": info["path"],
                              "out": str(Path(tmp) / "images"), "opts": opts, "kw": kw})
        text, wall, rss = run_child(IMAGE, payload)
    res = json.loads([ln for ln in text.splitlines() if ln.startswith("RESULT=")][-1][7:])
    print(f"image_ms: wall {wall:.1f} s (child process incl. imports), peak RSS {rss:.0f} MB")
    for k, v in res["timings"].items():
        print(f"  {k:<18} {v:8.1f}" if isinstance(v, float) else f"  {k:<18} {v}")
    print(f"beam {res['beam_major_arcsec']:.1f} x {res['beam_minor_arcsec']:.1f} arcsec "
          f"pa {res['beam_pa_deg']:.0f} deg; noise {res['noise_jy'] * 1e3:.3f} mJy/beam; "
          f"peak {res['peak_jy']:.3f} Jy/beam; DR {res['dynamic_range']:.0f}; "
          f"{len(res['sources'])} sources")
    for s in res["sources"][:10]:
        print(f"  RA {s['ra_deg']:.4f} Dec {s['dec_deg']:.4f} pbcor peak {s['flux_jy']:.3f} Jy "
              f"(snr {s['snr']:.0f}, pb {s['pb']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
