"""Benchmark: simulate one full-size DSA-110 observation (96 antennas, 16 x 48 channels,
24 integrations; 111,744 rows per file) into a temporary directory.

Usage: python bench/bench_simulate.py [--runs N] [--nants 96] [--nchan 48] [--keep DIR]
       [--sky realistic --flux-floor 0.002 --workers 2 --observations 1]
(the science benchmark's size: --sky realistic --nants 48 --nchan 8 --flux-floor 0.002)
Prints the wall time (median of N runs) and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from contimg.sim import SimOptions, simulate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--nants", type=int, default=96)
    ap.add_argument("--nchan", type=int, default=48)
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the files")
    ap.add_argument("--sky", choices=["default", "realistic"], default="default")
    ap.add_argument("--flux-floor", type=float, default=1e-3, help="realistic sky's apparent-flux floor, Jy")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--observations", type=int, default=1)
    args = ap.parse_args(argv)
    walls = []
    for _ in range(args.runs):
        out = args.keep or Path(tempfile.mkdtemp(prefix="contimg-bench-"))
        try:
            t0 = time.perf_counter()
            res = simulate(out, SimOptions(nants=args.nants, nchan=args.nchan, sky=args.sky,
                                           flux_floor_jy=args.flux_floor, workers=args.workers,
                                           observations=args.observations))
            walls.append(time.perf_counter() - t0)
            size = sum(p.stat().st_size for p in res.files)
        finally:
            if args.keep is None:
                shutil.rmtree(out, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"simulate: sky={args.sky} nants={args.nants} nchan={args.nchan} observations={args.observations} "
          f"workers={args.workers} files={16 * args.observations} size={size / 1e9:.2f} GB")
    print(f"wall time: median {statistics.median(walls):.1f} s over {len(walls)} run(s) "
          f"(min {min(walls):.1f}, max {max(walls):.1f})")
    print(f"peak memory (ru_maxrss): {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
