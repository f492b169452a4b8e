"""The generic job queue every step shares: enqueue, claim, renew, complete, fail.

A job is one unit of work of one step on one subject (an observation, an MS, a
mosaic ...), unique per (step, subject).  Claiming is one conditional
``UPDATE ... RETURNING`` inside ``BEGIN IMMEDIATE`` and takes the oldest
*observation* first (requirement I5), never the oldest registration.  A claim
bumps ``fence``; completing or failing checks owner and fence, so a worker whose
lease expired while it was merely slow cannot overwrite the worker that took the
job over (requirement O4).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from contimg.state.db import Database

STATES = ("pending", "running", "done", "failed", "dead")


class LeaseLost(RuntimeError):
    """The caller no longer holds the job's lease: its result must be discarded."""


@dataclass(frozen=True)
class Job:
    id: int
    step: str
    subject: str
    obs_mjd: float
    state: str
    attempts: int
    max_attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    fence: int
    last_error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class NextJob:
    """A job to enqueue in the same transaction that completes another."""

    step: str
    subject: str
    obs_mjd: float


def add_event(conn: sqlite3.Connection, kind: str, message: str, *, step: str | None = None,
              subject: str | None = None, data: dict | None = None, now: float | None = None) -> None:
    conn.execute(
        "INSERT INTO events (at, kind, step, subject, message, data) VALUES (?, ?, ?, ?, ?, ?)",
        (now or time.time(), kind, step, subject, message,
         json.dumps(data) if data is not None else None),
    )


def enqueue_in(conn: sqlite3.Connection, step: str, subject: str, obs_mjd: float, *,
               max_attempts: int = 5, now: float | None = None) -> bool:
    """Insert a pending job unless (step, subject) exists; True if it was new."""
    now = now or time.time()
    cur = conn.execute(
        "INSERT INTO jobs (step, subject, obs_mjd, max_attempts, next_attempt_at, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (step, subject) DO NOTHING",
        (step, subject, obs_mjd, max_attempts, now, now),
    )
    if cur.rowcount:
        add_event(conn, "enqueued", f"{step} job for {subject} queued", step=step,
                  subject=subject, now=now)
    return bool(cur.rowcount)


def enqueue(db: Database, step: str, subject: str, obs_mjd: float, *, max_attempts: int = 5) -> bool:
    with db.transaction() as conn:
        return enqueue_in(conn, step, subject, obs_mjd, max_attempts=max_attempts)


_CLAIMABLE = (
    "((state IN ('pending', 'failed') AND next_attempt_at <= :now)"
    " OR (state = 'running' AND lease_expires_at < :now))"
)


def claim(db: Database, step: str, owner: str, lease_s: float, *,
          subject: str | None = None, exclude: Sequence[int] = (),
          now: float | None = None) -> Job | None:
    """Claim the oldest-observation claimable job of ``step`` (or the given subject).

    A job whose lease expired counts as claimable: its worker died or stalled.
    Jobs in backoff are claimable by name only.  ``exclude``: job IDs the caller has
    just deferred, so a short recheck interval cannot make it spin on them.
    """
    now = now or time.time()
    params = {"step": step, "owner": owner, "exp": now + lease_s, "now": now,
              "subject": subject}
    where = "step = :step AND " + _CLAIMABLE
    if exclude:
        where += f" AND id NOT IN ({', '.join(str(int(i)) for i in exclude)})"
    if subject is not None:
        # Asked for by name: an operator's explicit request skips the backoff wait.
        where = ("step = :step AND subject = :subject AND (state IN ('pending', 'failed')"
                 " OR (state = 'running' AND lease_expires_at < :now))")
    with db.transaction() as conn:
        row = conn.execute(
            "UPDATE jobs SET state = 'running', lease_owner = :owner,"
            " lease_expires_at = :exp, fence = fence + 1, updated_at = :now"
            f" WHERE id = (SELECT id FROM jobs WHERE {where} ORDER BY obs_mjd, id LIMIT 1)"
            " RETURNING *",
            params,
        ).fetchone()
        if row is None:
            return None
        job = Job.from_row(row)
        add_event(conn, "claimed", f"{step} {job.subject} claimed by {owner}", step=step,
                  subject=job.subject, data={"fence": job.fence}, now=now)
        return job


def _holds(conn: sqlite3.Connection, job: Job) -> bool:
    row = conn.execute(
        "SELECT 1 FROM jobs WHERE id = ? AND state = 'running' AND lease_owner = ? AND fence = ?",
        (job.id, job.lease_owner, job.fence),
    ).fetchone()
    return row is not None


def renew(db: Database, job: Job, lease_s: float, *, now: float | None = None) -> bool:
    """Extend the lease if still held; False means another worker has the job now."""
    now = now or time.time()
    with db.transaction() as conn:
        cur = conn.execute(
            "UPDATE jobs SET lease_expires_at = ?, updated_at = ? WHERE id = ? AND"
            " state = 'running' AND lease_owner = ? AND fence = ?",
            (now + lease_s, now, job.id, job.lease_owner, job.fence),
        )
        return bool(cur.rowcount)


def complete(db: Database, job: Job, *, record: Callable[[sqlite3.Connection], None] | None = None,
             next_jobs: Iterable[NextJob] = (), message: str = "done") -> None:
    """Mark done, write the step's result rows and enqueue what follows, atomically.

    Raises LeaseLost (and writes nothing) when the lease is no longer ours.
    """
    now = time.time()
    with db.transaction() as conn:
        if not _holds(conn, job):
            raise LeaseLost(f"{job.step} {job.subject}: lease lost (fence {job.fence}); "
                            "result discarded")
        if record is not None:
            record(conn)
        for nxt in next_jobs:
            enqueue_in(conn, nxt.step, nxt.subject, nxt.obs_mjd, now=now)
        conn.execute(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL,"
            " last_error = NULL, updated_at = ? WHERE id = ?",
            (now, job.id),
        )
        add_event(conn, "done", f"{job.step} {job.subject}: {message}", step=job.step,
                  subject=job.subject, now=now)


def backoff_seconds(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with up to +25 % jitter, so retries of many jobs spread out."""
    delay = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return delay * (1 + 0.25 * (rng or random).random())


def fail(db: Database, job: Job, error: str, *, base_s: float = 30.0, max_s: float = 3600.0,
         retryable: bool = True, max_attempts: int | None = None, now: float | None = None,
         record: Callable[[sqlite3.Connection, str], None] | None = None) -> str:
    """Record a failure; returns the new state ('failed' with backoff, or 'dead').

    ``max_attempts`` (the current configuration) overrides the value stored at enqueue;
    ``record(conn, state)`` updates the step's own rows in the same transaction.
    """
    now = now or time.time()
    limit = max_attempts or job.max_attempts
    with db.transaction() as conn:
        if not _holds(conn, job):
            raise LeaseLost(f"{job.step} {job.subject}: lease lost; failure not recorded")
        attempts = job.attempts + 1
        dead = (not retryable) or attempts >= limit
        state = "dead" if dead else "failed"
        nxt = now if dead else now + backoff_seconds(attempts, base_s, max_s)
        conn.execute(
            "UPDATE jobs SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?,"
            " max_attempts = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
            " WHERE id = ?",
            (state, attempts, nxt, error, limit, now, job.id),
        )
        if record is not None:
            record(conn, state)
        add_event(conn, state, f"{job.step} {job.subject}: {error}", step=job.step,
                  subject=job.subject, data={"attempts": attempts}, now=now)
        return state


def defer(db: Database, job: Job, reason: str, delay_s: float, *, now: float | None = None,
          record: Callable[[sqlite3.Connection], None] | None = None) -> None:
    """Put a job back to wait for something (not a failure: attempts unchanged); ``record``
    writes what was learnt meanwhile (a solution registered) in the same transaction."""
    now = now or time.time()
    with db.transaction() as conn:
        if not _holds(conn, job):
            raise LeaseLost(f"{job.step} {job.subject}: lease lost; not deferred")
        if record is not None:
            record(conn)
        conn.execute(
            "UPDATE jobs SET state = 'pending', next_attempt_at = ?, last_error = ?,"
            " lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?",
            (now + delay_s, reason, now, job.id),
        )


def release(db: Database, job: Job) -> bool:
    """Give a claimed job back untouched (shutdown); True if we still held it."""
    now = time.time()
    with db.transaction() as conn:
        if not _holds(conn, job):
            return False
        conn.execute(
            "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL,"
            " updated_at = ? WHERE id = ?",
            (now, job.id),
        )
        add_event(conn, "released", f"{job.step} {job.subject} released", step=job.step,
                  subject=job.subject, now=now)
        return True


def retry(db: Database, *, ids: Sequence[int] = (), step: str | None = None,
          dead_only: bool = False) -> list[Job]:
    """Reset failed/dead jobs to pending now, with a fresh attempt budget."""
    states = ("dead",) if dead_only else ("failed", "dead")
    where = [f"state IN ({','.join('?' * len(states))})"]
    params: list = list(states)
    if ids:
        where.append(f"id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    if step:
        where.append("step = ?")
        params.append(step)
    now = time.time()
    with db.transaction() as conn:
        rows = conn.execute(
            "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = 0,"
            f" updated_at = ? WHERE {' AND '.join(where)} RETURNING *",
            [now, *params],
        ).fetchall()
        jobs = [Job.from_row(r) for r in rows]
        for j in jobs:
            add_event(conn, "retry", f"{j.step} {j.subject} reset to pending", step=j.step,
                      subject=j.subject, now=now)
        return sorted(jobs, key=lambda j: j.id)


def get(db: Database, job_id: int) -> Job | None:
    row = db.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return Job.from_row(row) if row else None


def find(db: Database, step: str, subject: str) -> Job | None:
    row = db.conn.execute("SELECT * FROM jobs WHERE step = ? AND subject = ?",
                          (step, subject)).fetchone()
    return Job.from_row(row) if row else None


def list_jobs(db: Database, *, step: str | None = None, states: Sequence[str] = (),
              since: float | None = None, limit: int | None = None) -> list[Job]:
    where, params = ["1 = 1"], []
    if step:
        where.append("step = ?")
        params.append(step)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        params.extend(states)
    if since is not None:
        where.append("updated_at >= ?")
        params.append(since)
    sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY obs_mjd, id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [Job.from_row(r) for r in db.conn.execute(sql, params)]


def counts(db: Database) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in db.conn.execute("SELECT step, state, COUNT(*) AS n FROM jobs GROUP BY step, state"):
        out.setdefault(row["step"], {s: 0 for s in STATES})[row["state"]] = row["n"]
    return out


def expired_leases(db: Database, *, now: float | None = None) -> list[Job]:
    now = now or time.time()
    rows = db.conn.execute(
        "SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at < ? ORDER BY obs_mjd",
        (now,),
    )
    return [Job.from_row(r) for r in rows]


def recent_events(db: Database, *, kinds: Sequence[str] = (), since: float | None = None,
                  limit: int = 20) -> list[sqlite3.Row]:
    where, params = ["1 = 1"], []
    if kinds:
        where.append(f"kind IN ({','.join('?' * len(kinds))})")
        params.extend(kinds)
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    return db.conn.execute(
        f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()


def reopen(db: Database, step: str, subject: str) -> Job | None:
    """A done job back to pending (an operator re-publishing a held product by hand)."""
    now = time.time()
    with db.transaction() as conn:
        row = conn.execute(
            "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = ?"
            " WHERE step = ? AND subject = ? AND state = 'done' RETURNING *",
            (now, step, subject)).fetchone()
        if row is not None:
            add_event(conn, "reopened", f"{step} {subject} reopened by hand", step=step,
                      subject=subject, now=now)
        return Job.from_row(row) if row else None
