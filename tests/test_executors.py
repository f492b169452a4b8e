"""Issue 16: one step shape (prepare -> work -> record), work without the database, the
executor seam, and Dask (a real scheduler and real workers, killed for real)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from pipeline_helpers import age, sim, wait_for as _wait_for

from contimg.config import load_config
from contimg.state import Database, jobs
from contimg.steps import convert, ingest
from contimg.steps.contract import Decision, Outcome, WorkOrder
from contimg.steps.registry import PIPELINE
from contimg.steps.runner import StepContext, make_owner, step_module
from contimg.steps.worker import run_isolated

BIN = Path(sys.executable).parent


def test_issue16_every_queued_step_has_prepare_work_record() -> None:
    for spec in PIPELINE:
        mod = step_module(spec.name)
        assert callable(mod.prepare) and callable(mod.work) and callable(mod.record), spec.name


def test_issue16_outcomes_use_one_vocabulary() -> None:
    assert Outcome("x", "held", "QA").status == "held"
    with pytest.raises(ValueError):
        Outcome("x", "finished", "not a word of the vocabulary")


def test_issue16_work_process_may_not_open_the_database(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    code = ("from contimg.steps.worker import forbid_database\nforbid_database()\n"
            f"import sqlite3\nsqlite3.connect({str(db)!r})\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 1 and "work() may not open a database" in res.stderr
    assert not db.exists()


def _one_observation(home: Path):
    sim(home / "incoming", observations=1)
    age(list((home / "incoming").iterdir()))
    cfg = load_config(home=home, environ={})
    cfg.ensure_dirs()
    db = Database(cfg.db_path)
    ingest.scan(cfg, db)
    return cfg, db


def test_issue16_convert_order_is_plain_data_and_work_runs_without_the_database(tmp_path: Path) -> None:
    home = tmp_path / "h"
    cfg, db = _one_observation(home)
    ctx = StepContext(cfg, db, make_owner())
    job = jobs.claim(db, "convert", ctx.owner, 60)
    order = convert.prepare(ctx, job)
    assert isinstance(order, WorkOrder) and not isinstance(order, Decision)
    blob = pickle.dumps(order)
    assert b"state.sqlite3" not in blob and pickle.loads(blob) == order
    # a fresh child process that refuses any database connection does the work
    result = run_isolated(order, str(home), str(tmp_path / "work.log"))
    assert Path(result["path"]).is_dir() and len(result["subbands"]) == 16
    assert jobs.get(db, job.id).state == "running"      # work recorded nothing
    out = convert.record(ctx, job, order, result)
    assert out.status == "done" and jobs.get(db, job.id).state == "done"
    assert db.query("SELECT path FROM measurement_sets")[0]["path"] == result["path"]
    assert "work: convert" in (tmp_path / "work.log").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scheduler(port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "dask"), "scheduler", "--port", str(port), "--no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
                            env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})


def _work_children() -> dict[int, str]:
    """pid -> command line of every contimg work process running now."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "contimg.steps.worker" in cmd and "contimg-order-" in cmd:
                out[int(d.name)] = cmd
    return out


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_issue16_dask_worker_killed_mid_job_and_scheduler_restarted(tmp_path: Path) -> None:
    """A Dask worker SIGKILLed in the middle of a calibrate job: the job runs again exactly
    once and lands once.  The scheduler SIGKILLed and started again: watch survives and
    submits its unfinished work again.  The examples' worker script starts the workers."""
    home = tmp_path / "h"
    sim(home / "incoming", observations=3, nants=8, nchan=1)
    age(list((home / "incoming").iterdir()))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", CONTIMG_FLAG_ENGINE="none", CONTIMG_IMAGE_IMSIZE="256",
               CONTIMG_IMAGE_NITER="50", CONTIMG_MOSAIC_N="3")
    sched = _scheduler(port, tmp_path / "scheduler.log")
    workers = subprocess.Popen(["bash", str(REPO / "examples" / "dask-worker.sh"), address, "2"],
                               stdout=subprocess.DEVNULL, stderr=open(tmp_path / "workers.log", "ab"),
                               env=env, start_new_session=True)
    watch = None
    try:
        subprocess.run([str(BIN / "contimg"), "--home", str(home), "init"], env=env, check=True,
                       capture_output=True)
        watch = subprocess.Popen([str(BIN / "contimg"), "--home", str(home), "watch", "--once",
                                  "--executor", "dask", "--scheduler", address, "--workers", "2"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        # 1. kill the Dask worker process that runs a calibrate job
        assert _wait_for(lambda: any("calibrate" in _order_step(c) for c in _work_children().values()), 600)
        child, cmd = next((p, c) for p, c in _work_children().items() if "calibrate" in _order_step(c))
        subject = _order_subject(cmd)
        os.kill(_parent(child), signal.SIGKILL)
        # 2. once an image job runs, kill the scheduler and start it again on the same port
        assert _wait_for(lambda: any("image" in _order_step(c) for c in _work_children().values()), 900)
        sched.send_signal(signal.SIGKILL)
        sched.wait()
        time.sleep(3)
        sched = _scheduler(port, tmp_path / "scheduler.log")
        out, _ = watch.communicate(timeout=1800)
    finally:
        for p in (watch, workers, sched):
            if p is not None and p.poll() is None:
                (os.killpg(p.pid, signal.SIGTERM) if p is workers else p.terminate())
                p.wait(timeout=60)
    assert watch.returncode == 0, out[-3000:]
    db = Database(home / "state.sqlite3")
    states = {(r["step"], r["subject"]): r["state"] for r in db.query("SELECT step, subject, state FROM jobs")}
    assert set(states.values()) == {"done"}, states
    # the killed calibrate was started twice (killed; run again once), finished once, and
    # was recorded once
    log = (home / "logs" / "jobs" / "calibrate" / f"{subject}.log").read_text()
    assert log.count(f"--- calibrate {subject} on ") == 2, log[-2000:]
    assert log.count(f"work: calibrate {subject} done") == 1, log[-2000:]
    done = db.query("SELECT step, subject, COUNT(*) AS n FROM events WHERE kind = 'done'"
                    " GROUP BY step, subject")
    assert len(done) == len(states) and {r["n"] for r in done} == {1}, [dict(r) for r in done]
    assert db.query("SELECT COUNT(*) AS n FROM applications")[0]["n"] == 3
    products = db.query("SELECT id, state FROM products")
    assert len(products) == 1 and products[0]["state"] in ("published", "held"), products
    leftovers = [p for p in home.rglob("*") if ".tmp" in p.name or "imaging-" in p.name]
    assert not leftovers, leftovers
    assert "executor dask" in out


def _order_step(cmd: str) -> str:
    """The step of a running work process, from the order it was given."""
    return _order(cmd).step


def _order_subject(cmd: str) -> str:
    return _order(cmd).subject


def _order(cmd: str):
    path = next(a for a in cmd.split() if a.endswith("/order"))
    try:
        return pickle.loads(Path(path).read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError):
        return WorkOrder("?", "?", root="/")


@pytest.mark.slow
def test_issue16_dask_one_host_example_runs_the_pipeline(tmp_path: Path) -> None:
    home = tmp_path / "h"
    sim(home / "incoming", observations=1, nants=8, nchan=1)
    age(list((home / "incoming").iterdir()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", CONTIMG_HOME=str(home), CONTIMG_FLAG_ENGINE="none",
               CONTIMG_IMAGE_IMSIZE="256", CONTIMG_IMAGE_NITER="50")
    res = subprocess.run(["bash", str(REPO / "examples" / "dask-one-host.sh")], env=env,
                         capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    assert "executor dask" in res.stdout
    db = Database(home / "state.sqlite3")
    assert {r["step"]: r["state"] for r in db.query("SELECT step, state FROM jobs")} == \
        {"convert": "done", "calibrate": "done", "image": "done"}
    assert len(db.query("SELECT * FROM images")) == 1


@pytest.mark.slow
def test_issue16_reprocess_makes_a_second_image_version_while_watch_goes_on(tmp_path: Path) -> None:
    home, later = tmp_path / "h", tmp_path / "later"
    sim(later, observations=2, nants=8, nchan=1)
    files = sorted(p for p in later.iterdir() if p.suffix == ".hdf5")  # by time: 16 per observation
    assert len(files) == 32
    first, second = files[:16], files[16:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", CONTIMG_HOME=str(home), CONTIMG_FLAG_ENGINE="none",
               CONTIMG_IMAGE_IMSIZE="256", CONTIMG_IMAGE_NITER="50")

    def contimg(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "contimg"), *args], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=1800, **kw)

    assert contimg("init").returncode == 0
    (home / "incoming").mkdir(exist_ok=True)
    for p in first:
        os.replace(p, home / "incoming" / p.name)
    age(list((home / "incoming").iterdir()))
    assert contimg("watch", "--once").returncode == 0
    db = Database(home / "state.sqlite3")
    obs1 = db.query("SELECT observation_id FROM images")[0]["observation_id"]
    # new data arrives; watch runs continuously while the first observation is reprocessed
    for p in second:
        os.replace(p, home / "incoming" / p.name)
    age(list((home / "incoming").iterdir()))
    watch = subprocess.Popen([str(BIN / "contimg"), "watch", "--interval", "1"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             stdin=subprocess.DEVNULL)
    try:
        res = contimg("reprocess", "image", obs1, "--set", "image.robust=-1", "--note", "test")
        assert res.returncode == 0 and "version 2" in res.stdout, (res.stdout, res.stderr)
        assert _wait_for(lambda: len(db.query("SELECT * FROM images")) == 2, 1200)
    finally:
        watch.send_signal(signal.SIGTERM)
        out, _ = watch.communicate(timeout=300)
    assert watch.returncode == 0, out[-2000:]
    listed = json.loads(contimg("reprocess", "image", "--list", "--json", obs1).stdout)
    assert [(v["version"], v["current"]) for v in listed] == [(1, False), (2, True)], listed
    assert listed[1]["options"] == {"image.robust": "-1"} and listed[1]["note"] == "test"
    v1, v2 = (Path(v["files"]["image_fits"]) for v in listed)
    assert v1.is_file() and v2.is_file() and v1.parent != v2.parent
    from astropy.io import fits

    # another weighting: another synthesized beam and other pixels (v1 untouched); the beam
    # fit is deterministic, so any change shows the option was used (ducc,
    # 8 antennas and 1 channel: 2.3 % narrower at robust -1; tclean: more than 5 %)
    b1, b2 = fits.getheader(v1)["BMAJ"], fits.getheader(v2)["BMAJ"]
    assert abs(b2 - b1) > 0.01 * b1, (b1, b2)
    assert not np.array_equal(fits.getdata(v1), fits.getdata(v2))
    assert listed[0]["figures"]["beam_major_arcsec"] == pytest.approx(b1 * 3600, rel=1e-3)
    current = db.query("SELECT dir, version FROM images WHERE observation_id = ?", (obs1,))[0]
    assert current["version"] == 2 and Path(current["dir"]) == v2.parent
