"""End to end (slow): simulated hour -> `contimg watch --once` on a Dask LocalCluster of two
worker processes -> a published mosaic that matches the truth; and the same hour with the
local executor, killed with SIGKILL at least 10 times over all steps, ends in the same
state with pixel-identical images and mosaic (issue 8, O2; issue 16: one run per executor).  Left out of a plain `pytest`; select them with
`pytest -m slow` (`-m fault` for the SIGKILL run alone); `make test` and CI run them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_helpers import compare_with_truth
from pipeline_helpers import age

from contimg.ops.status import collect_status, is_clean
from contimg.sim import SimOptions, simulate
from contimg.state import Database

pytestmark = pytest.mark.slow

SIM = dict(observations=12, nants=24, nchan=2, seed=42, gains_vary=False)
STEPS = ("convert", "calibrate", "image", "mosaic", "publish")


def _simulate(home: Path) -> Path:
    res = simulate(home / "incoming", SimOptions(**SIM))
    age(list((home / "incoming").iterdir()))
    return res.manifest


# The ideal sky has no RFI: RFI flagging is judged on the realistic sky (bench/science.py).
# Here, with 24 antennas, AOFlagger's array-wide extension flagged part of the two
# observations at 3C286's transit and their beams no longer matched the others (the mosaic
# was held by validation): an open defect of the flagging, not of orchestration.
NO_RFI_ENV = {"CONTIMG_FLAG_ENGINE": "none"}


def _watch(home: Path, env: dict | None = None, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "contimg", "--home", str(home), "watch", "--once",
                             "--workers", "2", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **NO_RFI_ENV, **(env or {})})


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e")
    manifest = _simulate(home)
    t0 = time.monotonic()
    w = _watch(home, None, "--executor", "dask")
    out, _ = w.communicate(timeout=3600)
    elapsed = time.monotonic() - t0
    (home / "watch-output.txt").write_text(out)
    return home, manifest, w.returncode, out, elapsed


def _state(home: Path) -> dict:
    """What must be identical between an uninterrupted and an interrupted run."""
    db = Database(home / "state.sqlite3")
    def q(sql: str) -> list[tuple]:
        return sorted(tuple(str(v).replace(str(home), "<home>") for v in r) for r in db.query(sql))

    files = sorted(str(p.relative_to(home)) for root in ("staging", "products")
                   for p in (home / root).rglob("*") if p.is_file() and "caltables" not in p.parts
                   and "/ms/" not in f"/{p.relative_to(home)}")
    return {
        "jobs": q("SELECT step, subject, state FROM jobs"),
        "ms": q("SELECT observation_id, path FROM measurement_sets"),
        "caltables": q("SELECT set_name, kind, path FROM caltables"),
        "applications": q("SELECT observation_id FROM applications"),
        "images": q("SELECT observation_id FROM images"),
        "mosaics": q("SELECT id, state FROM mosaics"),
        "members": q("SELECT mosaic_id, observation_id FROM mosaic_members"),
        "products": q("SELECT id, state, published_dir FROM products"),
        "files": files,
        "done_once": q("SELECT step, subject, COUNT(*) FROM events WHERE kind = 'done' GROUP BY step, subject"),
    }


def test_issue16_e2e_dask_watch_once_publishes_a_mosaic_matching_the_truth(clean_run) -> None:
    home, manifest, code, out, elapsed = clean_run
    assert code == 0, out[-3000:]
    assert "executor dask" in out and "(job" in out
    db = Database(home / "state.sqlite3")
    report = collect_status(db)
    assert is_clean(report), json.dumps(report, default=str)[:3000]
    products = db.query("SELECT id, state, published_dir FROM products")
    assert len(products) == 1 and products[0]["state"] == "published"
    pid, pdir = products[0]["id"], Path(products[0]["published_dir"])
    assert (pdir / f"{pid}.png").is_file()
    found = compare_with_truth(pdir / f"{pid}.fits", pdir / f"{pid}.noise.fits", manifest)
    assert len(found) >= 5, found
    bad = [f for f in found if f["offset_arcsec"] > 2.0 or abs(f["flux_ratio"] - 1) > 0.05]
    assert not bad, bad
    observed_s = SIM["observations"] * 24 * 12.8849
    print(f"\nend-to-end: {elapsed:.0f} s for {observed_s:.0f} s observed "
          f"(real-time factor {elapsed / observed_s:.2f}); {len(found)} sources checked")


def _running_step(db: Database) -> set[str]:
    return {r["step"] for r in db.query("SELECT step FROM jobs WHERE state = 'running'")}


def _kill_cycle(home: Path, env: dict, pick, delay: float, wait_s: float = 900) -> str | None:
    """Start a watcher, wait until a job of a step chosen by ``pick`` runs, then after
    ``delay`` seconds SIGKILL the watcher.  Returns what was running, or None if the
    watcher finished first."""
    w = _watch(home, env)
    db_path = home / "state.sqlite3"
    end = time.time() + wait_s
    while time.time() < end and w.poll() is None:
        if db_path.exists() and pick(_running_step(Database(db_path))):
            break
        time.sleep(0.05)
    time.sleep(delay)
    if w.poll() is not None:
        return None
    hit = sorted(_running_step(Database(db_path)))
    os.kill(w.pid, signal.SIGKILL)
    w.wait()
    time.sleep(4.5)    # the dead watcher's leases expire
    return ",".join(hit) or "(idle)"


@pytest.mark.fault
def test_o2_sigkill_at_random_moments_ends_identical_to_an_uninterrupted_run(clean_run, tmp_path) -> None:
    ref_home = clean_run[0]
    home = tmp_path / "killed"
    home.mkdir()
    _simulate(home)
    env = {"CONTIMG_JOBS_LEASE_S": "4"}
    rng = random.Random(7)
    kills: list[str] = []
    # kills aimed at every step in turn, at random moments inside the running job; two
    # more than the ten required, since a short job may finish before its kill lands
    plan = [("convert", 3.0), ("calibrate", 2.0), ("convert", 3.0), ("calibrate", 2.0),
            ("convert", 3.0), ("image", 20.0), ("image", 40.0), ("image", 20.0),
            ("image", 40.0), ("mosaic", 10.0), ("mosaic", 30.0), ("publish", 0.0)]
    for step, longest in plan:
        hit = _kill_cycle(home, env, lambda running, s=step: s in running, rng.uniform(0.0, longest))
        if hit is not None:
            kills.append(hit)
    w = _watch(home, env)
    out, _ = w.communicate(timeout=3600)
    killed_in = {step for k in kills for step in k.split(",") if step in STEPS}
    assert len(kills) >= 10 and len(killed_in) >= 4, kills
    assert _state(home) == _state(ref_home), out[-2000:]
    differ = _pixel_differences(home, ref_home)
    assert not differ, f"local and Dask runs differ: {differ}"
    leftovers = [p for p in home.rglob("*") if ".tmp" in p.name or "imaging-" in p.name]
    assert not leftovers, leftovers
    print(f"\nkills: {kills}")


def _pixel_differences(home: Path, ref_home: Path) -> list[str]:
    """FITS images and mosaics of two runs whose pixels are not identical (issue 16)."""
    import numpy as np
    from astropy.io import fits

    def same(a, b) -> bool:
        if a is None or b is None:
            return a is None and b is None
        if a.dtype.names:  # a catalogue table: column by column
            return len(a) == len(b) and all(
                np.array_equal(np.asarray(a[c]), np.asarray(b[c]),
                               equal_nan=np.asarray(a[c]).dtype.kind == "f") for c in a.dtype.names)
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)

    differ = []
    fitses = sorted(p.relative_to(ref_home) for root in ("staging/images", "products")
                    for p in (ref_home / root).rglob("*.fits"))
    assert fitses, "no FITS products to compare"
    for rel in fitses:
        with fits.open(ref_home / rel) as a, fits.open(home / rel) as b:
            if len(a) != len(b):
                differ.append(f"{rel} (HDU count)")
            differ += [f"{rel} HDU {i}" for i, (ha, hb) in enumerate(zip(a, b)) if not same(ha.data, hb.data)]
    return differ
