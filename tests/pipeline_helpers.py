"""Small simulated observations and products for pipeline tests (real HDF5 files, real
database)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from contimg.paths import sha256_file
from contimg.sim import SimOptions, simulate
from contimg.state import Database, NextJob, jobs, mosaics
from contimg.steps.grouping import mosaic_id

SMALL = dict(nants=6, nchan=2, sefd_jy=None, gains=False, bandpass=False, n_field_sources=0)


def sim(out: Path, **kw):
    opts = SimOptions(**{**SMALL, **kw})
    return simulate(out, opts)


def age(paths, seconds: float = 60.0) -> None:
    """Make files look settled (written a while ago) without sleeping."""
    past = time.time() - seconds
    for p in paths:
        os.utime(p, (past, past))


def wait_for(pred, timeout: float = 120) -> bool:
    """Poll ``pred`` every 0.2 s until it is true (True) or ``timeout`` seconds pass (False)."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def copy_aged(files, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        target = dest / Path(f).name
        shutil.copy2(f, target)
        out.append(target)
    age(out)
    return out


def make_product(home: Path, *, qa: str = "passed", validation: str = "valid", tag: str = "a",
                 members: list[str] | None = None) -> str:
    """A finished mosaic with real files in staging, registered the way the mosaic step does
    (of the given registered observations, or of three new ones)."""
    db = Database(home / "state.sqlite3")
    if members is None:
        members = [f"2025061{tag}T0{k}0000" for k in range(3)]
        with db.transaction() as conn:
            for k, m in enumerate(members):
                conn.execute("INSERT INTO observations (id, obs_mjd, first_seen_at, last_seen_at)"
                             " VALUES (?, ?, 0, 0)", (m, 60841.0 + k))
    mid = mosaic_id(members)
    mosaics.form_group(db, mosaic_id=mid, mode="tiles", members=members, dec_deg=30.5,
                       start_mjd=60841.0, end_mjd=60843.0, overlap=0, warning=None, max_attempts=3)
    staged = home / "staging" / "mosaics" / mid
    staged.mkdir(parents=True)
    files = {}
    for name, size in ((f"{mid}.fits", 300_000), (f"{mid}.weight.fits", 200_000), (f"{mid}.png", 5_000)):
        (staged / name).write_bytes(os.urandom(size))
        files[name] = str(staged / name)
    sums = {n: sha256_file(Path(p)) for n, p in files.items()}
    job = jobs.claim(db, "mosaic", "test", 60)
    jobs.complete(db, job, next_jobs=[NextJob("publish", mid, 60841.0)],
                  record=lambda conn: mosaics.finish_mosaic_in(
                      conn, mid, dir=str(staged), files=files, checksums=sums,
                      validation={"status": validation}, qa={"status": qa}))
    return mid
