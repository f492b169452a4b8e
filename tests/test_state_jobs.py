"""The job queue: exactly-once claiming, observation-time order, leases, fencing, retries."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from contimg.state import Database, LeaseLost, NextJob, jobs


def _worker(db_path: str, owner: str, out: "mp.Queue") -> None:
    db = Database(Path(db_path))
    done = []
    while True:
        job = jobs.claim(db, "convert", owner, lease_s=300)
        if job is None:
            break
        jobs.complete(db, job)
        done.append(job.subject)
    out.put(done)


def test_o2_eight_processes_claim_each_of_1000_jobs_exactly_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite3")
    with db.transaction() as conn:
        for i in range(1000):
            jobs.enqueue_in(conn, "convert", f"obs{i:04d}", 60000 + i)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(db.path), f"w{k}", out)) for k in range(8)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = [s for r in results for s in r]
    assert len(claimed) == 1000
    assert len(set(claimed)) == 1000
    assert sum(1 for r in results if r) >= 2, "work should spread over processes"
    assert jobs.counts(db)["convert"]["done"] == 1000
    done_events = db.query("SELECT COUNT(*) AS n FROM events WHERE kind = 'done'")[0]["n"]
    assert done_events == 1000


def test_i5_claim_follows_observation_time_not_registration_order(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    # registered newest night first
    for subject, mjd in [("night2-a", 61001.1), ("night2-b", 61001.2), ("night1-a", 61000.1),
                         ("night1-b", 61000.2)]:
        jobs.enqueue(db, "convert", subject, mjd)
    order = []
    while (job := jobs.claim(db, "convert", "w", 60)) is not None:
        order.append(job.subject)
        jobs.complete(db, job)
    assert order == ["night1-a", "night1-b", "night2-a", "night2-b"]


def test_i3_enqueue_is_idempotent(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    assert jobs.enqueue(db, "convert", "a", 1.0) is True
    assert jobs.enqueue(db, "convert", "a", 1.0) is False
    assert len(jobs.list_jobs(db)) == 1


def test_o4_expired_lease_is_reclaimed_and_stale_worker_cannot_complete(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    jobs.enqueue(db, "image", "ms1", 1.0)
    slow = jobs.claim(db, "image", "slow", lease_s=0.2)
    assert slow is not None
    assert jobs.claim(db, "image", "other", lease_s=60) is None, "lease still held"
    time.sleep(0.3)
    assert [j.id for j in jobs.expired_leases(db)] == [slow.id]
    fast = jobs.claim(db, "image", "fast", lease_s=60)
    assert fast is not None and fast.id == slow.id and fast.fence == slow.fence + 1
    wrote = []
    with pytest.raises(LeaseLost):
        jobs.complete(db, slow, record=lambda conn: wrote.append("stale"),
                      next_jobs=[NextJob("mosaic", "ms1", 1.0)])
    assert wrote == [] and jobs.find(db, "mosaic", "ms1") is None
    assert jobs.renew(db, slow, 60) is False
    with pytest.raises(LeaseLost):
        jobs.fail(db, slow, "late failure")
    jobs.complete(db, fast, next_jobs=[NextJob("mosaic", "ms1", 1.0)])
    assert jobs.get(db, fast.id).state == "done"
    assert jobs.find(db, "mosaic", "ms1").state == "pending"


def test_o4_complete_and_next_enqueue_are_one_transaction(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    jobs.enqueue(db, "convert", "o1", 1.0)
    job = jobs.claim(db, "convert", "w", 60)

    def broken(conn):
        conn.execute("INSERT INTO events (at, kind, message) VALUES (0, 'x', 'y')")
        raise RuntimeError("crash while recording")

    with pytest.raises(RuntimeError):
        jobs.complete(db, job, record=broken, next_jobs=[NextJob("calibrate", "o1", 1.0)])
    assert jobs.get(db, job.id).state == "running"
    assert jobs.find(db, "calibrate", "o1") is None
    assert db.query("SELECT COUNT(*) AS n FROM events WHERE kind = 'x'")[0]["n"] == 0


def test_o2_backoff_then_dead_then_cli_retry(tmp_path: Path, cli) -> None:
    db = Database(cli.home / "state.sqlite3")
    jobs.enqueue(db, "convert", "obsX", 1.0, max_attempts=3)
    delays = []
    for attempt in range(1, 4):
        job = jobs.claim(db, "convert", "w", 60, now=time.time() + 10**6 * attempt)
        assert job is not None, f"attempt {attempt} should be claimable after its backoff"
        now = time.time()
        state = jobs.fail(db, job, f"boom {attempt}", base_s=10, max_s=1000, now=now)
        delays.append(jobs.get(db, job.id).next_attempt_at - now)
        assert state == ("dead" if attempt == 3 else "failed")
    assert 10 <= delays[0] <= 12.5 and 20 <= delays[1] <= 25
    assert jobs.claim(db, "convert", "w", 60, now=time.time() + 10**8) is None, "dead is final"
    status = cli.json("status")
    assert status["counts"]["convert"]["dead"] == 1
    assert status["failures"][0]["last_error"] == "boom 3"
    result = cli("retry", input=f"{job.id}\n")
    assert result.exit_code == 0
    assert "obsX" in result.stdout
    again = jobs.get(db, job.id)
    assert again.state == "pending" and again.attempts == 0
    assert jobs.claim(db, "convert", "w", 60) is not None


def test_o3_retry_by_step_and_usage_errors(cli) -> None:
    db = Database(cli.home / "state.sqlite3")
    for s in ("a", "b"):
        jobs.enqueue(db, "image", s, 1.0, max_attempts=1)
        jobs.fail(db, jobs.claim(db, "image", "w", 60), "bad")
    assert cli("retry", "notanumber").exit_code == 2
    res = cli("retry", "--step", "image", "--dead")
    assert res.exit_code == 0 and len(res.stdout.strip().splitlines()) == 2
    assert jobs.counts(db)["image"]["pending"] == 2
