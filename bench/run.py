"""Run every benchmark in bench/ and print their figures (`make bench`).

Each benchmark is its own script (see its docstring for options); this runner
just calls them in pipeline order so one command prints every figure.  Pass
names to run a subset: `python bench/run.py simulate convert`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("simulate", "convert", "calibrate", "image", "mosaic")


def main(argv: list[str]) -> int:
    chosen = argv or [n for n in ORDER if (HERE / f"bench_{n}.py").is_file()]
    failed = 0
    for name in chosen:
        script = HERE / f"bench_{name}.py"
        if not script.is_file():
            print(f"== {name}: no bench/bench_{name}.py", flush=True)
            failed += 1
            continue
        print(f"== {name} ({script.name})", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, str(script)])
        print(f"== {name}: exit {code}, {time.monotonic() - t0:.1f} s wall", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
