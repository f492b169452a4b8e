"""Benchmark: contimg.msio.build_ms against plain pyuvdata on one full observation.

Usage:  python bench/bench_convert.py [--cache DIR] [--nants 96] [--nchan 48]

Simulates (or reuses from --cache) one observation of 16 subband files and runs,
each in its own child process so that peak RSS is measured separately (ru_maxrss
of that child, via os.wait4):
  build_ms        contimg.msio.build_ms (h5py streaming, re-phase, MS)
  pyuvdata        read each file (uvh5, run_check=False, uvw -> float64),
                  fast_concat along frequency in ascending order, write_ms(force_phase=True)
  read-h5py       only read every dataset of every file with h5py (reference)
  read-pyuvdata   only read every file with pyuvdata (reference)
Files are read from the page cache after the first run (warm-cache figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MODES = ("read-h5py", "read-pyuvdata", "build_ms", "pyuvdata")


def ensure_data(cache: Path, nants: int, nchan: int) -> list[Path]:
    """Simulated files in ``cache`` (made once; noise on, default sky, gains on)."""
    d = cache / f"obs_{nants}ant_{nchan}ch"
    files = sorted(d.glob("*_sb??.hdf5"))
    if len(files) == 16:
        return files
    from contimg.sim import SimOptions, simulate

    shutil.rmtree(d, ignore_errors=True)
    t0 = time.monotonic()
    res = simulate(d, SimOptions(nants=nants, nchan=nchan, seed=7))
    print(f"simulated {len(res.files)} files in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return sorted(d.glob("*_sb??.hdf5"))


def child(mode: str, files: list[Path], out: Path) -> dict:
    """Run one mode in this (child) process and return its timings."""
    t0 = time.monotonic()
    step: dict[str, float] = {}
    if mode == "read-h5py":
        import h5py

        for f in files:
            with h5py.File(f, "r") as h:
                for k in ("visdata", "flags", "nsamples"):
                    h["Data"][k][()]
    elif mode == "read-pyuvdata":
        from pyuvdata import UVData

        for f in files:
            uv = UVData()
            uv.read(str(f), file_type="uvh5", run_check=False)
    elif mode == "build_ms":
        from contimg.msio import build_ms

        build_ms(files, out)
    elif mode == "pyuvdata":
        import numpy as np
        from pyuvdata import UVData

        uvs = []
        for f in files:
            uv = UVData()
            uv.read(str(f), file_type="uvh5", run_check=False)
            uv.uvw_array = uv.uvw_array.astype(np.float64)
            uv.check(run_check_acceptability=False)
            uvs.append(uv)
        step["read"] = time.monotonic() - t0
        uvs.sort(key=lambda u: u.freq_array.min())
        for u in uvs:
            u.reorder_freqs(channel_order="freq")
        uv = uvs[0].fast_concat(uvs[1:], "freq", run_check=False)
        del uvs
        step["concat"] = time.monotonic() - t0 - step["read"]
        uv.write_ms(str(out), force_phase=True, run_check=False)
        step["write_ms"] = time.monotonic() - t0 - step["read"] - step["concat"]
    return {"mode": mode, "seconds": time.monotonic() - t0, "steps": step}


def run_mode(mode: str, files: list[Path], work: Path) -> dict:
    out = work / f"bench_{mode}.ms"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", mode, "--out", str(out), *map(str, files)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    text = proc.stdout.read()
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"mode": mode, "error": f"exit {proc.returncode}"}
    res = json.loads(text.strip().splitlines()[-1])
    res["peak_rss_gb"] = rusage.ru_maxrss / 2**20  # ru_maxrss is KiB on Linux
    if out.exists():
        res["ms_gb"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**30
        shutil.rmtree(out, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/contimg_bench"))
    ap.add_argument("--nants", type=int, default=96)
    ap.add_argument("--nchan", type=int, default=48)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--child")
    ap.add_argument("--out", type=Path)
    ap.add_argument("files", nargs="*", type=Path)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.files, a.out)))
        return
    files = ensure_data(a.cache, a.nants, a.nchan)
    gb = sum(f.stat().st_size for f in files) / 2**30
    print(f"{len(files)} files, {gb:.2f} GB, {a.nants} antennas, {a.nchan} channels/subband")
    print(f"{'mode':<15}{'seconds':>9}{'peak RSS GB':>13}{'MS GB':>8}  steps")
    for mode in a.modes.split(","):
        r = run_mode(mode, files, a.cache)
        if "error" in r:
            print(f"{mode:<15} failed: {r['error']}")
            continue
        steps = " ".join(f"{k} {v:.1f}s" for k, v in r["steps"].items())
        print(f"{mode:<15}{r['seconds']:>9.1f}{r['peak_rss_gb']:>13.2f}"
              f"{r.get('ms_gb', 0):>8.2f}  {steps}", flush=True)


if __name__ == "__main__":
    main()
