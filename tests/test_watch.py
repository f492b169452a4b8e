"""`contimg watch`: signals, kill -9 and several watchers on one database (O2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline_helpers import age, sim

from contimg.state import Database


def _start_watch(home: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "contimg", "--home", str(home), "watch", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def _wait(pred, timeout: float = 180) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _running(db: Database, step: str) -> bool:
    return bool(db.query("SELECT 1 FROM jobs WHERE step = ? AND state = 'running'", (step,)))


def _setup(cli, **kw) -> Database:
    inc = cli.home / "incoming"
    sim(inc, **kw)
    age(list(inc.iterdir()))
    cli.json("status")
    return Database(cli.home / "state.sqlite3")


def test_o2_sigterm_lets_the_running_conversion_finish(cli) -> None:
    db = _setup(cli, observations=2, nants=24, nchan=8)
    w = _start_watch(cli.home, "--interval", "1", "--grace", "120")
    assert _wait(lambda: _running(db, "convert")), "watch never started converting"
    w.send_signal(signal.SIGTERM)
    out, err = w.communicate(timeout=180)
    assert w.returncode == 0, err
    assert "stop requested" in out
    states = [r["state"] for r in db.query("SELECT state FROM jobs WHERE step = 'convert' ORDER BY obs_mjd")]
    assert states[0] == "done" and "running" not in states
    assert db.query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] >= 1


def test_o2_grace_expiry_releases_the_job_and_the_next_run_completes_it(cli) -> None:
    db = _setup(cli, observations=1, nants=32, nchan=8)
    w = _start_watch(cli.home, "--interval", "1", "--grace", "0.2")
    assert _wait(lambda: _running(db, "convert"))
    w.send_signal(signal.SIGTERM)
    out, _ = w.communicate(timeout=60)
    assert "released for the next run" in out
    job = db.query("SELECT state, attempts FROM jobs WHERE step = 'convert'")[0]
    assert (job["state"], job["attempts"]) == ("pending", 0)
    ms_dir = cli.home / "staging" / "ms"
    assert not [p for p in ms_dir.glob("*.ms")], "no MS half-written at the final path"
    res = cli("convert")  # in-process: the next run, not its process, is under test
    assert res.exit_code == 0 and "\tdone\t" in res.stdout
    assert not [p for p in ms_dir.iterdir() if ".tmp" in p.name], "leftovers removed"


def test_o2_kill9_of_the_watcher_is_recovered_by_the_next_run(cli) -> None:
    db = _setup(cli, observations=2, nants=24, nchan=8)
    env = {"CONTIMG_JOBS_LEASE_S": "2"}
    w = _start_watch(cli.home, "--interval", "1", env=env)
    assert _wait(lambda: _running(db, "convert"))
    os.kill(w.pid, signal.SIGKILL)
    w.wait()
    time.sleep(0.5)
    workers = subprocess.run(["pgrep", "-f", f"contimg.steps.worker.*{cli.home}"], capture_output=True)
    assert workers.returncode == 1, "the worker died with its watcher"
    time.sleep(2.0)   # the lease expires
    res = cli("convert", env=env)  # in-process: the next run, not its process, is under test
    assert res.exit_code == 0, res.output
    rows = db.query("SELECT state FROM jobs WHERE step = 'convert'")
    assert [r["state"] for r in rows] == ["done", "done"]
    assert db.query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] == 2
    done = db.query("SELECT COUNT(*) AS n FROM events WHERE step = 'convert' AND kind = 'done'")[0]["n"]
    assert done == 2, "each conversion committed once"


def test_o2_two_watchers_share_one_database(cli) -> None:
    """Every step runs (small images keep it quick); each job is done exactly once."""
    db = _setup(cli, observations=3, nants=16)
    env = {"CONTIMG_IMAGE_IMSIZE": "128", "CONTIMG_IMAGE_NITER": "20", "CONTIMG_MOSAIC_N": "3"}
    ws = [_start_watch(cli.home, "--once", env=env) for _ in range(2)]
    outs = [w.communicate(timeout=900) for w in ws]
    assert [w.returncode for w in ws] == [0, 0], outs
    done = db.query("SELECT step, subject, COUNT(*) AS n FROM events WHERE kind = 'done'"
                    " GROUP BY step, subject")
    assert all(r["n"] == 1 for r in done), [tuple(r) for r in done]
    steps = {r["step"] for r in done}
    assert {"convert", "calibrate", "image"} <= steps, steps
    assert db.query("SELECT COUNT(*) AS n FROM jobs WHERE state != 'done'")[0]["n"] == 0
    assert db.query("SELECT COUNT(*) AS n FROM measurement_sets")[0]["n"] == 3
    assert db.query("SELECT COUNT(*) AS n FROM images")[0]["n"] == 3
