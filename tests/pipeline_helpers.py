"""Small simulated observations for pipeline tests (real HDF5 files, real database)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from contimg.sim import SimOptions, simulate

SMALL = dict(nants=6, nchan=2, sefd_jy=None, gains=False, bandpass=False, n_field_sources=0)


def sim(out: Path, **kw):
    opts = SimOptions(**{**SMALL, **kw})
    return simulate(out, opts)


def age(paths, seconds: float = 60.0) -> None:
    """Make files look settled (written a while ago) without sleeping."""
    past = time.time() - seconds
    for p in paths:
        os.utime(p, (past, past))


def copy_aged(files, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        target = dest / Path(f).name
        shutil.copy2(f, target)
        out.append(target)
    age(out)
    return out
